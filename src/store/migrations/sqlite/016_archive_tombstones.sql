-- A retracted or moderated message (XEP-0424, XEP-0425) keeps its place in the archive as a
-- tombstone: its stanza is replaced and its body removed, and so must its full-text entry be.
CREATE TRIGGER archive_fts_update AFTER UPDATE OF body ON archive
WHEN old.id <= (SELECT indexed_up_to FROM archive_fts_progress) BEGIN
    INSERT INTO archive_fts (archive_fts, rowid, body)
        SELECT 'delete', old.id, old.body WHERE old.body IS NOT NULL;
    INSERT INTO archive_fts (rowid, body) SELECT new.id, new.body WHERE new.body IS NOT NULL;
END;
