-- HTTP File Upload (XEP-0363): one row per slot handed out. The file itself lives in the
-- upload directory under the slot id; a row whose `completed` is NULL is a slot still waiting
-- for its PUT (it counts against the quota until its deadline).
CREATE TABLE uploads (
    -- Random and unguessable: it is the file's name on disk and part of its URL.
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    -- The content type the slot was requested with, or the PUT's when it named none.
    content_type TEXT,
    -- Unix seconds: when the slot was handed out, and until when its PUT is accepted.
    created INTEGER NOT NULL,
    put_deadline INTEGER NOT NULL,
    -- Unix seconds at which the file was stored.
    completed INTEGER
) WITHOUT ROWID;
-- For the quota sum and for ON DELETE CASCADE when an account is deleted.
CREATE INDEX uploads_username ON uploads (username);
CREATE INDEX uploads_completed ON uploads (completed);
