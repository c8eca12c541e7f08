//! hearth-store: storage behind one `Store` handle. Backends are variants of an enum so a
//! PostgreSQL backend can be added without touching callers; SQLite is the default.

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

mod accounts;
mod offline;
mod roster;
mod sqlite;

pub use offline::OfflineMessage;
pub use roster::{RosterItem, Subscription};

use std::path::Path;
use std::sync::Arc;

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
    /// `synchronous=FULL`: survive power loss, at the cost of an fsync per commit. `NORMAL`
    /// (the default) survives process crashes.
    pub synchronous_full: bool,
    /// Read connections in the pool.
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
    Sqlite(sqlite::Sqlite),
}

/// The storage handle: cheap to clone, shared by the core and the modules.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
}

impl Store {
    pub fn open(path: &Path, opts: StoreOptions) -> anyhow::Result<Store> {
        Ok(Store {
            backend: Arc::new(Backend::Sqlite(sqlite::Sqlite::open(path, &opts)?)),
        })
    }

    /// Commits pending writes and stops the writer; later calls fail.
    pub async fn close(&self) {
        match &*self.backend {
            Backend::Sqlite(db) => db.close().await,
        }
    }

    fn sqlite(&self) -> &sqlite::Sqlite {
        match &*self.backend {
            Backend::Sqlite(db) => db,
        }
    }
}

#[cfg(test)]
mod tests;
