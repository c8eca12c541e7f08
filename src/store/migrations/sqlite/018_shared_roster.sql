-- Roster items hearth added for shared roster groups (everyone in a group sees the others), so
-- that only those are removed when someone leaves a group; items users added stay theirs.
CREATE TABLE shared_roster_items (
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    PRIMARY KEY (username, contact)
) WITHOUT ROWID;
