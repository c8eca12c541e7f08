//! Offline messages (XEP-0160). A session lists them, delivers them, then removes up to the
//! last id delivered: a failure midway delivers again rather than losing.

use std::time::SystemTime;

use crate::{Result, Store};

#[derive(Debug, Clone)]
pub struct OfflineMessage {
    /// Increases with every message stored; never reused.
    pub id: i64,
    /// When the message was stored.
    pub stamp: SystemTime,
    pub stanza_xml: String,
}

impl Store {
    /// Stores a message unless the user already has `max_per_user`: `false` then, and nothing
    /// is stored. The check and the insert are atomic.
    pub async fn offline_push(
        &self,
        username: &str,
        stanza_xml: &str,
        max_per_user: usize,
    ) -> Result<bool> {
        dispatch!(self.offline_push(username, stanza_xml, max_per_user))
    }

    /// The user's messages, oldest first.
    pub async fn offline_list(&self, username: &str) -> Result<Vec<OfflineMessage>> {
        dispatch!(self.offline_list(username))
    }

    /// Removes the user's messages with `id <= up_to_id`; returns how many.
    pub async fn offline_remove(&self, username: &str, up_to_id: i64) -> Result<usize> {
        dispatch!(self.offline_remove(username, up_to_id))
    }

    pub async fn offline_count(&self, username: &str) -> Result<usize> {
        dispatch!(self.offline_count(username))
    }
}
