-- A room's vCard-temp, which carries its avatar (XEP-0486).
ALTER TABLE muc_rooms ADD COLUMN vcard TEXT;
