//! Shared roster groups: which roster items hearth manages (added because both users are in a
//! group), as opposed to items users added themselves.

use crate::{Result, Store};

impl Store {
    /// Every managed item, as (username, contact), in key order.
    pub async fn shared_roster_items(&self) -> Result<Vec<(String, String)>> {
        dispatch!(self.shared_roster_items())
    }

    pub async fn shared_roster_mark(&self, username: &str, contact: &str) -> Result<()> {
        dispatch!(self.shared_roster_mark(username, contact))
    }

    pub async fn shared_roster_unmark(&self, username: &str, contact: &str) -> Result<()> {
        dispatch!(self.shared_roster_unmark(username, contact))
    }
}
