-- FAST (XEP-0484): tokens for one-round-trip logins, per account and client (its SASL2
-- user-agent id). Two slots per client (XEP-0484 §"Implementation Notes"): the token last
-- issued (fresh = 1) until the client first uses it, then the one in use (fresh = 0).
-- The token itself is the HMAC key of the HT mechanisms, so it is stored as issued.
CREATE TABLE fast_tokens (
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    client TEXT NOT NULL,
    fresh INTEGER NOT NULL,
    mechanism TEXT NOT NULL,
    token TEXT NOT NULL,
    -- Unix seconds.
    expiry INTEGER NOT NULL,
    PRIMARY KEY (username, client, fresh)
) WITHOUT ROWID;

-- A new password ends every token: a stolen device must not stay logged in.
CREATE TRIGGER fast_tokens_end_with_password AFTER UPDATE OF sha256_stored_key ON accounts
BEGIN
    DELETE FROM fast_tokens WHERE username = NEW.username;
END;
