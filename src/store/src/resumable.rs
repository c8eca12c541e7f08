//! Stream Management sessions saved at shutdown so clients can resume them after a restart
//! (XEP-0198 §5 with state that outlives the process).

use std::time::SystemTime;

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumableSession {
    /// The resumption id the client holds (`previd`).
    pub id: String,
    pub username: String,
    pub resource: String,
    /// When the session may no longer be resumed.
    pub expires: SystemTime,
    /// Stanzas received from the client (its `h` as the server counts it).
    pub h_in: u32,
    /// Stanzas sent to the client.
    pub h_out: u32,
    /// Stanzas sent and not acknowledged, as concatenated XML elements.
    pub unacked: String,
    /// Stanzas queued and not yet sent, as concatenated XML elements.
    pub unsent: String,
    /// The last available presence the client broadcast, if it was available.
    pub presence: Option<String>,
    pub priority: i8,
    /// Modules' per-session state (carbons enabled …), as they exported it.
    pub module_state: String,
}

impl Store {
    /// Saves sessions (replacing any with the same id) in one transaction.
    pub async fn resumable_save(&self, sessions: Vec<ResumableSession>) -> Result<()> {
        dispatch!(self.resumable_save(sessions))
    }

    /// Returns every saved session that has not expired and removes them all: a session is
    /// restored once, into memory, where it lives until resumed or expired.
    pub async fn resumable_take_all(&self) -> Result<Vec<ResumableSession>> {
        dispatch!(self.resumable_take_all())
    }
}
