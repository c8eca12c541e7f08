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
mod gdpr;
mod invitations;
mod muc;
mod offline;
mod pending;
mod private;
mod pubsub;
mod push;
mod resumable;
mod roster;
mod settings;
mod shared_roster;
mod sqlite;
mod upload;

pub use archive::{
    ArchiveOwners, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveQueryError, Archived,
    NewArchived,
};
pub use fast::FastToken;
pub use gdpr::{AccountData, MucMembership, PepNode};
pub use invitations::Invitation;
pub use muc::{StoredAffiliation, StoredRoom};
pub use offline::OfflineMessage;
pub use pending::PendingWrites;
pub use pubsub::PubsubItem;
pub use push::PushRegistration;
pub use resumable::ResumableSession;
pub use roster::{RosterItem, Subscription};
pub use upload::{OverQuota, Upload};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// How long storage calls take, from the caller's side (queueing included), for `/metrics`.
#[derive(Default)]
pub struct Latency {
    pub read: LatencyHistogram,
    pub write: LatencyHistogram,
}

/// Counts of durations at or below each of [`LatencyHistogram::BOUNDS`], plus their sum.
#[derive(Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LatencyHistogram::BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Upper bounds of the buckets, in seconds.
    pub const BOUNDS: [f64; 10] = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ];

    fn record(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = Self::BOUNDS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, [(upper bound, count in that bucket)]), the last bucket
    /// unbounded (`f64::INFINITY`).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let count = self.count.load(Ordering::Relaxed);
        let mut buckets: Vec<(f64, u64)> = Self::BOUNDS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| (*bound, n.load(Ordering::Relaxed)))
            .collect();
        let bounded: u64 = buckets.iter().map(|(_, n)| n).sum();
        buckets.push((f64::INFINITY, count.saturating_sub(bounded)));
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, count, buckets)
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

    /// How long reads and writes have taken since the store was opened.
    pub fn latency(&self) -> &Latency {
        match &*self.backend {
            Backend::Sqlite(db) => &db.latency,
        }
    }

    /// Commits the writes already queued and stops the writer; later writes fail.
    pub async fn close(&self) {
        dispatch!(self.close())
    }
}

#[cfg(test)]
mod tests;
