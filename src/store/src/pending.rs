//! Writes deferred while a stanza is handled, so that its writes share one transaction.

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::sqlite::Job;
use crate::{Result, Store, StoreError};

/// Writes made while handling one stanza that need not commit before the handling goes on
/// (the sender's archive copy of a chat message). They commit in the transaction of the next
/// write the handling waits for through the same `PendingWrites` (the recipient's copy), or
/// when the handling ends ([`Store::commit_pending`]): one transaction where there were two,
/// which is most of the database's cost per message.
pub struct PendingWrites(Mutex<State>);

struct State {
    /// Not sent to the writer yet.
    queued: Vec<Job>,
    /// Everything deferred, to wait for at the end.
    deferred: Vec<Deferred>,
    committed: bool,
}

impl PendingWrites {
    /// For a stanza's handling, which calls [`Store::commit_pending`] when it ends.
    pub fn new() -> Self {
        Self::with_state(false)
    }

    /// For work that nothing commits at its end: every write is made at once.
    pub fn immediate() -> Self {
        Self::with_state(true)
    }

    fn with_state(committed: bool) -> Self {
        PendingWrites(Mutex::new(State {
            queued: Vec::new(),
            deferred: Vec::new(),
            committed,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the vectors consistent.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a write for later; hands it back once this was committed.
    pub(crate) fn queue(
        &self,
        job: Job,
        deferred: Deferred,
    ) -> std::result::Result<(), (Job, Deferred)> {
        let mut state = self.state();
        if state.committed {
            return Err((job, deferred));
        }
        state.queued.push(job);
        state.deferred.push(deferred);
        Ok(())
    }

    /// The writes not sent yet, to send with another one.
    pub(crate) fn take_queued(&self) -> Vec<Job> {
        std::mem::take(&mut self.state().queued)
    }

    /// Marks this committed; returns what is left to send and everything to wait for.
    pub(crate) fn close(&self) -> (Vec<Job>, Vec<Deferred>) {
        let mut state = self.state();
        state.committed = true;
        (
            std::mem::take(&mut state.queued),
            std::mem::take(&mut state.deferred),
        )
    }
}

impl Default for PendingWrites {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a write has no answer: its writer went away first.
pub(crate) const UNCOMMITTED: &str =
    "the database closed, or its writer failed (see the log), before this write committed";

/// A deferred write's answer, and what to tell the administrator if it failed (no one waits
/// for it who could report it).
pub(crate) struct Deferred {
    what: &'static str,
    account: String,
    answer: oneshot::Receiver<Result<()>>,
}

impl Deferred {
    pub(crate) fn new(
        what: &'static str,
        account: &str,
        answer: oneshot::Receiver<Result<()>>,
    ) -> Self {
        Deferred {
            what,
            account: account.to_owned(),
            answer,
        }
    }

    /// Waits for the write's commit; logs a failure.
    pub(crate) async fn wait(self) {
        let failure = match self.answer.await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => StoreError::Other(anyhow::anyhow!(UNCOMMITTED)),
        };
        tracing::error!(error = %failure, account = %self.account, "cannot store {}", self.what);
    }
}

impl Store {
    /// Commits the writes deferred in `pending` and waits for them; failures are logged. Writes
    /// deferred in it afterwards are made at once.
    pub async fn commit_pending(&self, pending: &PendingWrites) {
        dispatch!(self.commit_pending(pending))
    }
}
