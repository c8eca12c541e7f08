//! Push Notifications (XEP-0357): app servers registered per account.

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRegistration {
    /// The XMPP Push Service's JID.
    pub service: String,
    pub node: String,
    /// Resource of the session that enabled it.
    pub resource: String,
    /// The publish-options data form, as XML.
    pub options: Option<String>,
}

impl Store {
    /// Adds or replaces the registration for (service, node), unless the user already has
    /// `max_per_user` others: `false` then.
    pub async fn push_enable(
        &self,
        username: &str,
        registration: PushRegistration,
        max_per_user: usize,
    ) -> Result<bool> {
        dispatch!(self.push_enable(username, registration, max_per_user))
    }

    /// Removes the registrations with `service` (only `node`'s, if given); returns how many.
    pub async fn push_disable(
        &self,
        username: &str,
        service: &str,
        node: Option<&str>,
    ) -> Result<usize> {
        dispatch!(self.push_disable(username, service, node))
    }

    pub async fn push_list(&self, username: &str) -> Result<Vec<PushRegistration>> {
        dispatch!(self.push_list(username))
    }
}
