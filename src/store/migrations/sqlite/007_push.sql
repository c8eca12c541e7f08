-- Push Notifications (XEP-0357): the app servers a user's devices registered.
CREATE TABLE push_registrations (
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    service TEXT NOT NULL,
    node TEXT NOT NULL,
    -- The resource of the session that enabled it: its device, to wake when that session
    -- is hibernated.
    resource TEXT NOT NULL,
    -- The publish-options form given when enabling (the app server's secret), as XML.
    options TEXT,
    PRIMARY KEY (username, service, node)
) WITHOUT ROWID;
