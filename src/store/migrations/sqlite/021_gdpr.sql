-- Data protection (GDPR): accounts scheduled for erasure, and the indexes that erasure, export
-- and retention read through.
-- Unix seconds at which the server erases the account (it is disabled until then); NULL when
-- no erasure is scheduled.
ALTER TABLE accounts ADD COLUMN delete_at INTEGER;
CREATE INDEX accounts_delete_at ON accounts (delete_at) WHERE delete_at IS NOT NULL;
-- Retention removes the oldest messages of every archive, and of offline storage, by date.
CREATE INDEX archive_stamp ON archive (stamp);
CREATE INDEX offline_stamp ON offline (stamp);
-- One account's entries in every room (export, erasure), and the subscription requests it
-- sent that others have yet to answer (erasure).
CREATE INDEX muc_affiliations_jid ON muc_affiliations (jid, room);
CREATE INDEX pending_in_contact ON pending_in (contact);
