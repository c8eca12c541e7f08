//! hearth-store: storage behind one [`Store`] handle, used by the core and the modules.
//!
//! `Store` wraps an enum of backends and every public method dispatches on it, so a PostgreSQL
//! backend (a `postgres` cargo feature) can be added later without touching callers. The
//! methods are grouped by capability (`accounts.rs`, `roster.rs`, `offline.rs`); each backend
//! keeps its SQL in its own directory (`sqlite/`) under the same method names.
//!
//! Accounts are keyed by the normalised local part (`username`); everything a user owns
//! references the account and is erased with it.

/// Calls the method of the same name on the backend in use.
macro_rules! dispatch {
    ($store:ident . $method:ident ( $($arg:expr),* )) => {
        match &*$store.backend {
            $crate::Backend::Sqlite(db) => db.$method($($arg),*).await,
        }
    };
}

mod accounts;
mod archive;
mod blocklist;
mod fast;
mod muc;
mod offline;
mod private;
mod pubsub;
mod push;
mod resumable;
mod roster;
mod sqlite;

pub use archive::{
    ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveQueryError, Archived, NewArchived,
};
pub use fast::FastToken;
pub use muc::{StoredAffiliation, StoredRoom};
pub use offline::OfflineMessage;
pub use pubsub::PubsubItem;
pub use push::PushRegistration;
pub use resumable::ResumableSession;
pub use roster::{RosterItem, Subscription};

use std::path::Path;
use std::sync::Arc;

/// SCRAM credentials for one hash function (RFC 5802 §3): the server never stores the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// What is stored per account: one key set per SCRAM hash offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub sha1: ScramKeys,
    pub sha256: ScramKeys,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("account already exists")]
    AccountExists,
    #[error("no such account")]
    NoSuchAccount,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `synchronous=FULL`: a commit survives power loss, at the cost of an fsync per commit.
    /// The default, `NORMAL`, survives crashes of the process.
    pub synchronous_full: bool,
    /// Connections in the read pool (at least one is opened).
    pub read_connections: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            synchronous_full: false,
            read_connections: 4,
        }
    }
}

enum Backend {
    Sqlite(sqlite::SqliteBackend),
}

/// The storage handle: cheap to clone, shared by the core and the modules. Dropping the last
/// clone commits the writes already queued, like [`Store::close`].
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

impl Store {
    /// Opens (creating it and its directory if missing) and migrates the SQLite database at
    /// `path`. Errors name the path and what the administrator can do about them.
    pub fn open(path: &Path, opts: StoreOptions) -> anyhow::Result<Store> {
        let backend = Backend::Sqlite(sqlite::SqliteBackend::open(path, &opts)?);
        Ok(Store {
            backend: Arc::new(backend),
        })
    }

    /// Commits the writes already queued and stops the writer; later writes fail.
    pub async fn close(&self) {
        dispatch!(self.close())
    }
}

#[cfg(test)]
mod tests;
