//! Blocking Command (XEP-0191): the JIDs an account blocks.

use crate::{Result, Store};

impl Store {
    pub async fn blocklist(&self, username: &str) -> Result<Vec<String>> {
        dispatch!(self.blocklist(username))
    }

    pub async fn blocklist_add(&self, username: &str, jids: Vec<String>) -> Result<()> {
        dispatch!(self.blocklist_add(username, jids))
    }

    /// Removes `jids`, or every entry when `None`.
    pub async fn blocklist_remove(&self, username: &str, jids: Option<Vec<String>>) -> Result<()> {
        dispatch!(self.blocklist_remove(username, jids))
    }
}
