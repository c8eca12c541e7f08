-- Personal Eventing (XEP-0163): each account's pubsub nodes and their items. The rowid of an
-- item orders the node (the newest last).
CREATE TABLE pubsub_nodes (
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    node TEXT NOT NULL,
    -- The node configuration as `key=value` lines.
    config TEXT NOT NULL,
    PRIMARY KEY (username, node)
) WITHOUT ROWID;

CREATE TABLE pubsub_items (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    node TEXT NOT NULL,
    item_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    FOREIGN KEY (username, node) REFERENCES pubsub_nodes (username, node) ON DELETE CASCADE
);
CREATE UNIQUE INDEX pubsub_items_by_id ON pubsub_items (username, node, item_id);
CREATE INDEX pubsub_items_in_order ON pubsub_items (username, node, id);
