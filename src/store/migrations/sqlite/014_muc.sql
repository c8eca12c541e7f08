-- Multi-User Chat (XEP-0045): persistent rooms and their affiliations. Temporary rooms live
-- in memory only.
CREATE TABLE muc_rooms (
    -- The bare room JID.
    jid TEXT PRIMARY KEY,
    -- Listed in the room directory.
    public INTEGER NOT NULL,
    -- The room configuration, as `key=value` lines (the MUC module reads it).
    config TEXT NOT NULL,
    subject_nick TEXT,
    subject TEXT
) WITHOUT ROWID;
CREATE INDEX muc_rooms_public ON muc_rooms (public);

CREATE TABLE muc_affiliations (
    room TEXT NOT NULL REFERENCES muc_rooms(jid) ON DELETE CASCADE,
    -- A bare JID.
    jid TEXT NOT NULL,
    affiliation TEXT NOT NULL,
    reason TEXT,
    -- The nickname registered in the room (XEP-0045 §7.10), reserved for this JID.
    nick TEXT,
    PRIMARY KEY (room, jid)
) WITHOUT ROWID;
