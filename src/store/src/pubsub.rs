//! Personal Eventing Protocol (XEP-0163) storage: nodes per account with their configuration,
//! and their items.

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubItem {
    pub id: String,
    /// The payload element, as XML.
    pub payload: String,
}

impl Store {
    /// The node's configuration, if the node exists.
    pub async fn pubsub_node(&self, username: &str, node: &str) -> Result<Option<String>> {
        dispatch!(self.pubsub_node(username, node))
    }

    /// Every node of the account with its configuration.
    pub async fn pubsub_nodes(&self, username: &str) -> Result<Vec<(String, String)>> {
        dispatch!(self.pubsub_nodes(username))
    }

    /// Creates the node, or replaces its configuration.
    pub async fn pubsub_put_node(&self, username: &str, node: &str, config: &str) -> Result<()> {
        dispatch!(self.pubsub_put_node(username, node, config))
    }

    /// Deletes the node and its items; returns whether it existed.
    pub async fn pubsub_delete_node(&self, username: &str, node: &str) -> Result<bool> {
        dispatch!(self.pubsub_delete_node(username, node))
    }

    /// Stores an item (replacing one with the same id, which becomes the newest) and keeps
    /// only the newest `max_items`.
    pub async fn pubsub_publish(
        &self,
        username: &str,
        node: &str,
        item: PubsubItem,
        max_items: usize,
    ) -> Result<()> {
        dispatch!(self.pubsub_publish(username, node, item, max_items))
    }

    /// Items, oldest first: the newest `max` (all when `None`), or those with `ids`.
    pub async fn pubsub_items(
        &self,
        username: &str,
        node: &str,
        max: Option<usize>,
        ids: Option<Vec<String>>,
    ) -> Result<Vec<PubsubItem>> {
        dispatch!(self.pubsub_items(username, node, max, ids))
    }

    /// Removes an item; returns whether it existed.
    pub async fn pubsub_retract(&self, username: &str, node: &str, item_id: &str) -> Result<bool> {
        dispatch!(self.pubsub_retract(username, node, item_id))
    }

    pub async fn pubsub_purge(&self, username: &str, node: &str) -> Result<()> {
        dispatch!(self.pubsub_purge(username, node))
    }
}
