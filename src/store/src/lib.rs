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
