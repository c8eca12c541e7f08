-- The archive also holds persistent rooms' messages (XEP-0313 on a MUC room), keyed by the
-- bare room JID where an account's are keyed by username (the two cannot collide: a room
-- JID has an '@'). The foreign key to accounts goes; triggers erase an account's or a room's
-- messages with it instead.
CREATE TABLE archive_new (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    stanza_id TEXT NOT NULL,
    stamp INTEGER NOT NULL,
    with_bare TEXT NOT NULL,
    with_resource TEXT,
    outgoing INTEGER NOT NULL,
    body TEXT,
    stanza TEXT NOT NULL
);
INSERT INTO archive_new SELECT id, username, stanza_id, stamp, with_bare, with_resource,
    outgoing, body, stanza FROM archive;
DROP TABLE archive;
ALTER TABLE archive_new RENAME TO archive;
CREATE INDEX archive_user ON archive (username, id);
CREATE INDEX archive_user_with ON archive (username, with_bare, id);
CREATE UNIQUE INDEX archive_user_stanza_id ON archive (username, stanza_id);
CREATE INDEX archive_user_stamp ON archive (username, stamp);
CREATE TRIGGER archive_fts_delete AFTER DELETE ON archive
WHEN old.body IS NOT NULL AND old.id <= (SELECT indexed_up_to FROM archive_fts_progress) BEGIN
    INSERT INTO archive_fts (archive_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER archive_account_deleted AFTER DELETE ON accounts BEGIN
    DELETE FROM archive WHERE username = old.username;
END;
CREATE TRIGGER archive_room_deleted AFTER DELETE ON muc_rooms BEGIN
    DELETE FROM archive WHERE username = old.jid;
END;
