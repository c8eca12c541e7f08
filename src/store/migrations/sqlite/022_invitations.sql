-- Invitations (XEP-0401): a random token that lets its holder register an account while in-band
-- registration is off, a given number of times until it expires. `username` fixes the account
-- name (and is reserved meanwhile); `reset` invitations set a new password for that existing
-- account; `inviter` becomes a mutual contact of each account registered with it. Expired
-- invitations are swept; used-up and revoked ones stay until then so their page can say so.
CREATE TABLE invitations (
    token TEXT PRIMARY KEY,
    creator TEXT NOT NULL,
    inviter TEXT REFERENCES accounts(username) ON DELETE CASCADE,
    username TEXT,
    reset INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    max_uses INTEGER NOT NULL,
    uses_left INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    note TEXT
) WITHOUT ROWID;

CREATE INDEX invitations_expires ON invitations(expires);
CREATE INDEX invitations_username ON invitations(username) WHERE username IS NOT NULL;
CREATE INDEX invitations_inviter ON invitations(inviter) WHERE inviter IS NOT NULL;
