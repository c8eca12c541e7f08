-- Accounts, rosters, pending subscription requests, offline messages.
-- Everything a user owns references accounts(username) ON DELETE CASCADE: deleting an account
-- erases its data.
CREATE TABLE accounts (
    username TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    roster_version INTEGER NOT NULL DEFAULT 0,
    sha1_salt BLOB NOT NULL,
    sha1_iterations INTEGER NOT NULL,
    sha1_stored_key BLOB NOT NULL,
    sha1_server_key BLOB NOT NULL,
    sha256_salt BLOB NOT NULL,
    sha256_iterations INTEGER NOT NULL,
    sha256_stored_key BLOB NOT NULL,
    sha256_server_key BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE roster (
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    name TEXT,
    subscription TEXT NOT NULL,
    ask INTEGER NOT NULL,
    approved INTEGER NOT NULL,
    -- group names joined by U+001F, which XML cannot carry, so no name contains it
    groups TEXT NOT NULL,
    PRIMARY KEY (username, contact)
) WITHOUT ROWID;

CREATE TABLE pending_in (
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    stanza TEXT NOT NULL,
    PRIMARY KEY (username, contact)
) WITHOUT ROWID;

CREATE TABLE offline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    stamp INTEGER NOT NULL,
    stanza TEXT NOT NULL
);
CREATE INDEX offline_by_user ON offline(username, id);
