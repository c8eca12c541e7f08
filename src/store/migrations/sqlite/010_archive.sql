-- Message Archive Management (XEP-0313): each account's messages, both directions. The rowid
-- orders the archive (it grows with time); `stanza_id` is what clients see (XEP-0359).
CREATE TABLE archive (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    stanza_id TEXT NOT NULL,
    stamp INTEGER NOT NULL,
    with_bare TEXT NOT NULL,
    with_resource TEXT,
    outgoing INTEGER NOT NULL,
    body TEXT,
    stanza TEXT NOT NULL
);
-- Paging the whole archive, paging with one contact, id look-ups, time bounds.
CREATE INDEX archive_user ON archive (username, id);
CREATE INDEX archive_user_with ON archive (username, with_bare, id);
CREATE UNIQUE INDEX archive_user_stanza_id ON archive (username, stanza_id);
CREATE INDEX archive_user_stamp ON archive (username, stamp);

-- Full-text search of bodies (XEP-0431), kept in step with the archive by triggers.
CREATE VIRTUAL TABLE archive_fts USING fts5 (body, content = 'archive', content_rowid = 'id');
CREATE TRIGGER archive_fts_insert AFTER INSERT ON archive WHEN new.body IS NOT NULL BEGIN
    INSERT INTO archive_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER archive_fts_delete AFTER DELETE ON archive WHEN old.body IS NOT NULL BEGIN
    INSERT INTO archive_fts (archive_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

-- Archiving preferences (XEP-0313 §6); no row: the server's default.
CREATE TABLE archive_prefs (
    username TEXT PRIMARY KEY REFERENCES accounts(username) ON DELETE CASCADE,
    default_mode TEXT NOT NULL,
    -- JIDs joined by U+001F, which XML cannot carry.
    always TEXT NOT NULL,
    never TEXT NOT NULL
) WITHOUT ROWID;
