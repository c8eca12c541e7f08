-- Blocking Command (XEP-0191): the JIDs each account blocks.
CREATE TABLE blocklist (
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    PRIMARY KEY (username, jid)
) WITHOUT ROWID;
