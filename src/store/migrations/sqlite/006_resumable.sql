-- Stream Management sessions kept across a restart (XEP-0198 resumption): written at shutdown,
-- read and emptied at startup. Stanzas are stored as concatenated XML elements.
CREATE TABLE resumable_sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    resource TEXT NOT NULL,
    expires INTEGER NOT NULL,
    h_in INTEGER NOT NULL,
    h_out INTEGER NOT NULL,
    unacked TEXT NOT NULL,
    unsent TEXT NOT NULL,
    presence TEXT,
    priority INTEGER NOT NULL,
    module_state TEXT NOT NULL
) WITHOUT ROWID;
-- For ON DELETE CASCADE when an account is deleted.
CREATE INDEX resumable_sessions_username ON resumable_sessions (username);
