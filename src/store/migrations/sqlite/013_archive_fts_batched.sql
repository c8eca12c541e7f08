-- FTS5 writes a new index segment for every transaction that adds to it, which was a sixth of
-- the CPU of each chat message. Bodies are now indexed in batches instead: every few seconds,
-- and always before a full-text query, so searches still see every message.
DROP TRIGGER archive_fts_insert;
-- Archive ids up to this one are in the full-text index.
CREATE TABLE archive_fts_progress (indexed_up_to INTEGER NOT NULL);
INSERT INTO archive_fts_progress SELECT coalesce(max(id), 0) FROM archive;
-- Only indexed rows may be deleted from the index (FTS5 external content).
DROP TRIGGER archive_fts_delete;
CREATE TRIGGER archive_fts_delete AFTER DELETE ON archive
WHEN old.body IS NOT NULL AND old.id <= (SELECT indexed_up_to FROM archive_fts_progress) BEGIN
    INSERT INTO archive_fts (archive_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
