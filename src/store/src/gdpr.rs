//! Data protection (GDPR): everything held about one account, read at once (for an export);
//! erasing it, also from other accounts' and rooms' lists; erasure scheduled after a grace
//! period; removal of offline messages past the retention period.

use std::time::SystemTime;

use crate::{
    ArchivePrefs, Archived, OfflineMessage, PubsubItem, PushRegistration, Result, RosterItem,
    Store, StoredAffiliation, Upload,
};

/// A PEP node with its configuration (`key=value` lines) and its items, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PepNode {
    pub node: String,
    pub config: String,
    pub items: Vec<PubsubItem>,
}

/// The account's affiliation with a room (and the nickname it registered there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MucMembership {
    /// The bare room JID.
    pub room: String,
    pub affiliation: StoredAffiliation,
}

/// What the server holds about one account, read in one transaction. Credentials and FAST
/// tokens are left out on purpose: they are secrets, not the user's data.
#[derive(Debug, Clone)]
pub struct AccountData {
    pub created: SystemTime,
    pub disabled: bool,
    /// When the account is to be erased, if that is scheduled.
    pub delete_at: Option<SystemTime>,
    pub roster: Vec<RosterItem>,
    /// Subscription requests waiting for the user's answer, as presence stanzas.
    pub pending_in: Vec<String>,
    pub vcard: Option<String>,
    /// (namespace, stored XML).
    pub private: Vec<(String, String)>,
    pub pep: Vec<PepNode>,
    pub offline: Vec<OfflineMessage>,
    /// The 1:1 archive, oldest first.
    pub archive: Vec<Archived>,
    pub archive_prefs: Option<ArchivePrefs>,
    pub blocklist: Vec<String>,
    /// Slots and stored files, oldest first.
    pub uploads: Vec<Upload>,
    pub muc: Vec<MucMembership>,
    pub push: Vec<PushRegistration>,
}

impl Store {
    /// Everything held about the account `username` (whose bare JID is `jid`, as rooms list
    /// it), consistently; `None` when there is no such account.
    pub async fn account_data(&self, username: &str, jid: &str) -> Result<Option<AccountData>> {
        dispatch!(self.account_data(username, jid))
    }

    /// Erases the account and everything it owns, its affiliations and registered nicknames in
    /// rooms, and the subscription requests it sent that others have not answered. Returns the
    /// ids of its uploads, whose files the caller removes. Fails with
    /// [`StoreError::NoSuchAccount`](crate::StoreError::NoSuchAccount).
    ///
    /// Its archive goes with it in one statement: erase it first in batches with
    /// [`Store::archive_clear`] to keep the write short.
    pub async fn account_erase(&self, username: &str, jid: &str) -> Result<Vec<String>> {
        dispatch!(self.account_erase(username, jid))
    }

    /// Disables the account and schedules its erasure at `at`. Fails with
    /// [`StoreError::NoSuchAccount`](crate::StoreError::NoSuchAccount).
    pub async fn account_schedule_erasure(&self, username: &str, at: SystemTime) -> Result<()> {
        dispatch!(self.account_schedule_erasure(username, at))
    }

    /// Cancels a scheduled erasure and enables the account again; `false` if none was
    /// scheduled (the account is left as it is). Fails with
    /// [`StoreError::NoSuchAccount`](crate::StoreError::NoSuchAccount).
    pub async fn account_cancel_erasure(&self, username: &str) -> Result<bool> {
        dispatch!(self.account_cancel_erasure(username))
    }

    /// The accounts whose erasure is due at `now`.
    pub async fn accounts_due_for_erasure(&self, now: SystemTime) -> Result<Vec<String>> {
        dispatch!(self.accounts_due_for_erasure(now))
    }

    /// Deletes up to `batch` of the oldest offline messages (all accounts) stored before
    /// `before`; returns how many.
    pub async fn offline_expire(&self, before: SystemTime, batch: usize) -> Result<usize> {
        dispatch!(self.offline_expire(before, batch))
    }
}
