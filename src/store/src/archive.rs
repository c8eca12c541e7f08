//! Message Archive Management (XEP-0313): per-account archives with paging, filters and
//! full-text search, and archiving preferences.

use crate::{PendingWrites, Result, Store};

/// A message to archive.
#[derive(Debug, Clone)]
pub struct NewArchived {
    pub stanza_id: String,
    /// Milliseconds since the Unix epoch.
    pub stamp: i64,
    /// The other party.
    pub with_bare: String,
    pub with_resource: Option<String>,
    pub outgoing: bool,
    pub body: Option<String>,
    pub stanza_xml: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub stanza_id: String,
    pub stamp: i64,
    pub stanza_xml: String,
}

/// Which messages, and which page of them.
#[derive(Debug, Clone, Default)]
pub struct ArchiveQuery {
    pub with_bare: Option<String>,
    pub with_resource: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Only messages after / before these (stanza ids); an unknown id is an error.
    pub after: Option<String>,
    pub before: Option<String>,
    pub ids: Option<Vec<String>>,
    /// FTS5 query text, already quoted by the caller.
    pub fulltext: Option<String>,
    /// Page from the end (RSM `<before/>`): the newest matching messages.
    pub from_end: bool,
    pub max: usize,
}

/// A page of results, oldest first, and whether it reaches the end in paging direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    pub messages: Vec<Archived>,
    pub complete: bool,
}

/// Whose archives: accounts' (1:1 messages) or rooms' (keyed by the room's bare JID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveOwners {
    Accounts,
    Rooms,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePrefs {
    /// `always`, `never` or `roster`.
    pub default_mode: String,
    pub always: Vec<String>,
    pub never: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveQueryError {
    #[error("no archived message has the id {0}")]
    UnknownId(String),
    #[error("the full-text query cannot be understood")]
    BadFulltext,
    #[error(transparent)]
    Store(#[from] crate::StoreError),
}

impl Store {
    /// Archives a message for an account (by username) or a stored room (by bare room JID),
    /// unless it does not exist; returns whether it did.
    pub async fn archive_append(&self, username: &str, message: NewArchived) -> Result<bool> {
        dispatch!(self.archive_append(username, message))
    }

    /// [`Self::archive_append`] in one transaction with the writes `pending` holds, which
    /// commit with it or fail with it.
    pub async fn archive_append_with(
        &self,
        pending: &PendingWrites,
        username: &str,
        message: NewArchived,
    ) -> Result<bool> {
        dispatch!(self.archive_append_with(pending, username, message))
    }

    /// Archives a message with the next write made through `pending`, or when it is committed
    /// (a failure is logged then).
    pub async fn archive_append_later(
        &self,
        pending: &PendingWrites,
        username: &str,
        message: NewArchived,
    ) {
        dispatch!(self.archive_append_later(pending, username, message))
    }

    pub async fn archive_query(
        &self,
        username: &str,
        query: ArchiveQuery,
    ) -> std::result::Result<ArchivePage, ArchiveQueryError> {
        dispatch!(self.archive_query(username, query))
    }

    /// Adds what was archived since the last call to the full-text index, in one batch
    /// (cheaper than a row at a time); returns how many bodies. Full-text queries do this
    /// first themselves, so calling it only bounds the work they may find pending.
    pub async fn archive_index_pending(&self) -> Result<usize> {
        dispatch!(self.archive_index_pending())
    }

    /// Replaces an archived message with a tombstone (a retraction or moderation, XEP-0424,
    /// XEP-0425): the stored stanza becomes `stanza_xml` and the body, also for search, goes.
    /// Returns whether the message was there.
    pub async fn archive_tombstone(
        &self,
        username: &str,
        stanza_id: &str,
        stanza_xml: String,
    ) -> Result<bool> {
        dispatch!(self.archive_tombstone(username, stanza_id, stanza_xml))
    }

    /// The oldest and newest archived messages.
    pub async fn archive_bounds(&self, username: &str) -> Result<Option<(Archived, Archived)>> {
        dispatch!(self.archive_bounds(username))
    }

    /// Deletes up to `batch` of the oldest messages older than `before` (milliseconds since
    /// the epoch) from the archives of every account, or of every room; returns how many.
    pub async fn archive_expire(
        &self,
        owners: ArchiveOwners,
        before: i64,
        batch: usize,
    ) -> Result<usize> {
        dispatch!(self.archive_expire(owners, before, batch))
    }

    /// Deletes up to `batch` messages of one archive (an account's or a room's); returns how
    /// many.
    pub async fn archive_clear(&self, username: &str, batch: usize) -> Result<usize> {
        dispatch!(self.archive_clear(username, batch))
    }

    pub async fn archive_prefs(&self, username: &str) -> Result<Option<ArchivePrefs>> {
        dispatch!(self.archive_prefs(username))
    }

    pub async fn archive_set_prefs(&self, username: &str, prefs: ArchivePrefs) -> Result<()> {
        dispatch!(self.archive_set_prefs(username, prefs))
    }
}
