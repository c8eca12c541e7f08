-- Service administration (XEP-0133): accounts an administrator disabled (kept, but no login),
-- and server-wide settings changed at run time, such as the message of the day.
ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

CREATE TABLE server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
