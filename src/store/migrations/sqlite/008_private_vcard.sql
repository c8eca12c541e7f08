-- Private XML Storage (XEP-0049): one document per account and namespace, stored as the
-- concatenated XML of its elements.
CREATE TABLE private_xml (
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    xml TEXT NOT NULL,
    PRIMARY KEY (username, namespace)
) WITHOUT ROWID;

-- vCard-temp (XEP-0054), one per account, with the SHA-1 of its photo (XEP-0153) kept apart so
-- presence can carry it without reading the vCard.
CREATE TABLE vcards (
    username TEXT PRIMARY KEY REFERENCES accounts(username) ON DELETE CASCADE,
    xml TEXT NOT NULL,
    photo_sha1 TEXT
) WITHOUT ROWID;
