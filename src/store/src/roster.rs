//! Rosters (RFC 6121 §2) with one version counter per user (XEP-0237), and inbound
//! subscription requests awaiting the user's answer (RFC 6121 §3.1.3).
//!
//! Contacts are bare JIDs, normalised by the caller.

use crate::{Result, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    None,
    To,
    From,
    Both,
}

impl Subscription {
    /// The value of the `subscription` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }
}

impl std::str::FromStr for Subscription {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "none" => Subscription::None,
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            _ => anyhow::bail!("unknown subscription state {s:?}"),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID, normalised.
    pub contact: String,
    pub name: Option<String>,
    pub subscription: Subscription,
    /// An outbound subscription request is pending.
    pub ask: bool,
    /// Inbound subscription pre-approved (RFC 6121 §3.4).
    pub approved: bool,
    /// Group names; none contains U+001F (XML cannot carry it).
    pub groups: Vec<String>,
}

impl Store {
    /// The roster's version and its items, sorted by contact, read consistently.
    pub async fn roster(&self, username: &str) -> Result<(u64, Vec<RosterItem>)> {
        dispatch!(self.roster(username))
    }

    pub async fn roster_item(&self, username: &str, contact: &str) -> Result<Option<RosterItem>> {
        dispatch!(self.roster_item(username, contact))
    }

    /// Inserts or replaces the item; returns the new roster version.
    pub async fn roster_put(&self, username: &str, item: &RosterItem) -> Result<u64> {
        dispatch!(self.roster_put(username, item))
    }

    /// Removes the item: `None` if there was none (the version is unchanged), else the new
    /// roster version.
    pub async fn roster_remove(&self, username: &str, contact: &str) -> Result<Option<u64>> {
        dispatch!(self.roster_remove(username, contact))
    }

    /// The current version; 0 for a user who never had a roster change.
    pub async fn roster_version(&self, username: &str) -> Result<u64> {
        dispatch!(self.roster_version(username))
    }

    pub async fn roster_count(&self, username: &str) -> Result<usize> {
        dispatch!(self.roster_count(username))
    }

    /// Keeps an inbound subscription request (replacing an earlier one from the same contact)
    /// until the user answers it, whether or not the contact is in the roster.
    pub async fn pending_in_put(
        &self,
        username: &str,
        contact: &str,
        stanza_xml: &str,
    ) -> Result<()> {
        dispatch!(self.pending_in_put(username, contact, stanza_xml))
    }

    /// `true` if a request was removed.
    pub async fn pending_in_remove(&self, username: &str, contact: &str) -> Result<bool> {
        dispatch!(self.pending_in_remove(username, contact))
    }

    /// The pending requests as `(contact, stanza xml)`, sorted by contact.
    pub async fn pending_in_list(&self, username: &str) -> Result<Vec<(String, String)>> {
        dispatch!(self.pending_in_list(username))
    }
}
