//! Bound client sessions: who is online with which resources, and the per-session presence state
//! RFC 6121 delivery rules need (availability, priority, directed presence).

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use minidom::Element;
use tokio::sync::mpsc;

use crate::jid::{BareJid, Jid};

/// How soon a client must see a stanza (XEP-0352): an inactive client gets urgent ones at once
/// and the rest when it becomes active again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Urgent,
    Lazy,
    /// Presence from one sender (a hash of its address): only the latest one held is kept.
    Presence(u64),
}

/// What a connection task is asked to write.
#[derive(Debug)]
pub enum Outgoing {
    /// A serialised stanza.
    Stanza(Bytes, Urgency),
    /// The session resumes on another connection (XEP-0198): hand it over and close.
    Detach,
    /// Close the stream with this stream error condition (RFC 6120 §4.9.3) and optional text.
    Close {
        condition: &'static str,
        text: Option<String>,
    },
}

#[derive(Debug, Default)]
pub struct PresenceState {
    /// Initial presence sent and not yet withdrawn (RFC 6121 §4.2).
    pub available: bool,
    pub priority: i8,
    /// The last broadcast available presence, re-sent in answer to probes.
    pub last: Option<Element>,
    /// Entities this session sent directed presence to (RFC 6121 §4.6), told when it goes offline.
    pub directed: HashSet<Jid>,
    /// Requested the roster, so it gets roster pushes (RFC 6121 §2.1.6 "interested resource").
    pub interested: bool,
}

pub struct Session {
    pub id: u64,
    pub jid: Jid,
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    pub presence: Mutex<PresenceState>,
    /// Stream Management keeps the session while its connection is gone (XEP-0198 §5).
    hibernated: AtomicBool,
    /// The client said it is inactive (XEP-0352).
    inactive: AtomicBool,
    /// Per-session state of modules (carbons enabled, entity caps), keyed by type. Empty and
    /// unallocated for a session no module touched.
    ext: Mutex<Vec<(TypeId, Box<dyn Any + Send>)>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({}, {})", self.id, self.jid)
    }
}

/// The receiving half, owned by the connection task.
pub struct SessionQueue {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<AtomicUsize>,
}

impl SessionQueue {
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.recv().await;
        if matches!(item, Some(Outgoing::Stanza(..))) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        item
    }

    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let item = self.rx.try_recv().ok();
        if matches!(item, Some(Outgoing::Stanza(..))) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        item
    }
}

impl Session {
    /// Queues a stanza. A client that does not read while stanzas pile up past the configured
    /// bound is disconnected instead of growing the server's memory without limit.
    pub fn send(&self, bytes: Bytes, urgency: Urgency) -> bool {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(jid = %self.jid, limit = self.max_queued, "client is not reading its stanzas; disconnecting it (c2s.max_queued_stanzas)");
            self.close("policy-violation", Some("too many unread stanzas".into()));
            return false;
        }
        self.tx.send(Outgoing::Stanza(bytes, urgency)).is_ok()
    }

    pub(crate) fn detach(&self) {
        let _ = self.tx.send(Outgoing::Detach);
    }

    pub fn close(&self, condition: &'static str, text: Option<String>) {
        let _ = self.tx.send(Outgoing::Close { condition, text });
    }

    pub fn is_available(&self) -> bool {
        self.presence.lock().expect("presence lock").available
    }

    pub fn priority(&self) -> i8 {
        self.presence.lock().expect("presence lock").priority
    }

    /// Whether the session is kept by Stream Management while its client is disconnected:
    /// stanzas are queued for resumption, and the user should be woken by a push.
    pub fn is_hibernated(&self) -> bool {
        self.hibernated.load(Ordering::Relaxed)
    }

    pub(crate) fn set_hibernated(&self, on: bool) {
        self.hibernated.store(on, Ordering::Relaxed);
    }

    /// Whether the client declared itself inactive (XEP-0352).
    pub fn is_inactive(&self) -> bool {
        self.inactive.load(Ordering::Relaxed)
    }

    pub(crate) fn set_inactive(&self, on: bool) {
        self.inactive.store(on, Ordering::Relaxed);
    }

    /// A copy of the module state of type `T`, if set.
    pub fn ext<T: Clone + Send + 'static>(&self) -> Option<T> {
        let ext = self.ext.lock().expect("ext lock");
        ext.iter()
            .find(|(id, _)| *id == TypeId::of::<T>())
            .and_then(|(_, v)| v.downcast_ref::<T>().cloned())
    }

    /// Runs `f` on the module state of type `T`, created with `Default` if missing.
    pub fn with_ext<T: Default + Send + 'static, R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut ext = self.ext.lock().expect("ext lock");
        let pos = match ext.iter().position(|(id, _)| *id == TypeId::of::<T>()) {
            Some(p) => p,
            None => {
                ext.push((TypeId::of::<T>(), Box::new(T::default())));
                ext.len() - 1
            }
        };
        f(ext[pos].1.downcast_mut::<T>().expect("ext type"))
    }

    /// Removes the module state of type `T`.
    pub fn remove_ext<T: 'static>(&self) {
        let mut ext = self.ext.lock().expect("ext lock");
        ext.retain(|(id, _)| *id != TypeId::of::<T>());
    }
}

#[derive(Default)]
pub struct Sessions {
    by_bare: RwLock<HashMap<BareJid, Vec<Arc<Session>>>>,
    next_id: AtomicU64,
}

impl Sessions {
    /// Binds `jid` (full). An existing session with the same full JID is told `conflict` and
    /// replaced: the new session wins (RFC 6120 §7.7.2.2, the policy most clients expect).
    pub fn bind(&self, jid: Jid, max_queued: usize) -> (Arc<Session>, SessionQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let session = Arc::new(Session {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            jid: jid.clone(),
            tx,
            queued: queued.clone(),
            max_queued,
            presence: Mutex::new(PresenceState::default()),
            hibernated: AtomicBool::new(false),
            inactive: AtomicBool::new(false),
            ext: Mutex::new(Vec::new()),
        });
        let mut map = self.by_bare.write().expect("sessions lock");
        let list = map.entry(jid.bare().clone()).or_default();
        if let Some(pos) = list.iter().position(|s| s.jid == jid) {
            let old = list.swap_remove(pos);
            tracing::info!(jid = %jid, "resource conflict: the new session replaces the old one");
            old.close(
                "conflict",
                Some("replaced by a new connection with the same resource".into()),
            );
        }
        list.push(session.clone());
        (session, SessionQueue { rx, queued })
    }

    /// Removes the session if it is still the one bound (it may have been replaced already).
    /// Returns whether it was removed.
    pub fn unbind(&self, session: &Session) -> bool {
        let mut map = self.by_bare.write().expect("sessions lock");
        let Some(list) = map.get_mut(session.jid.bare()) else {
            return false;
        };
        let Some(pos) = list.iter().position(|s| s.id == session.id) else {
            return false;
        };
        list.swap_remove(pos);
        if list.is_empty() {
            map.remove(session.jid.bare());
        }
        true
    }

    pub fn get(&self, full: &Jid) -> Option<Arc<Session>> {
        let map = self.by_bare.read().expect("sessions lock");
        map.get(full.bare())?
            .iter()
            .find(|s| s.jid == *full)
            .cloned()
    }

    /// All sessions of an account.
    pub fn of(&self, bare: &BareJid) -> Vec<Arc<Session>> {
        let map = self.by_bare.read().expect("sessions lock");
        map.get(bare).cloned().unwrap_or_default()
    }

    /// Every bound session (resumable ones waiting for their client included).
    pub fn all(&self) -> Vec<Arc<Session>> {
        let map = self.by_bare.read().expect("sessions lock");
        map.values().flatten().cloned().collect()
    }

    /// The accounts with at least one bound session, sorted.
    pub fn accounts(&self) -> Vec<BareJid> {
        let map = self.by_bare.read().expect("sessions lock");
        let mut accounts: Vec<BareJid> = map.keys().cloned().collect();
        accounts.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        accounts
    }

    pub fn count(&self) -> usize {
        self.by_bare
            .read()
            .expect("sessions lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// A fresh resource for clients that let the server pick (RFC 6120 §7.6.2.1).
    pub fn generate_resource() -> String {
        use rand::Rng;
        let n: u64 = rand::rng().random();
        format!("hearth-{n:016x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conflict_replaces_old_session() {
        let sessions = Sessions::default();
        let jid = Jid::parse("a@b/r").unwrap();
        let (old, mut old_q) = sessions.bind(jid.clone(), 10);
        let (new, _q) = sessions.bind(jid.clone(), 10);
        assert!(matches!(
            old_q.recv().await,
            Some(Outgoing::Close {
                condition: "conflict",
                ..
            })
        ));
        assert!(!sessions.unbind(&old), "old session is no longer bound");
        assert_eq!(sessions.get(&jid).unwrap().id, new.id);
        let (other, _q2) = sessions.bind(Jid::parse("a@b/s").unwrap(), 10);
        assert_eq!(sessions.all().len(), 2);
        assert_eq!(sessions.accounts().len(), 1);
        assert!(sessions.unbind(&other));
        assert!(sessions.unbind(&new));
        assert_eq!(sessions.count(), 0);
        assert!(sessions.accounts().is_empty());
    }

    #[test]
    fn module_state_by_type() {
        #[derive(Clone, Default, PartialEq, Debug)]
        struct Carbons(bool);
        let sessions = Sessions::default();
        let (s, _q) = sessions.bind(Jid::parse("a@b/r").unwrap(), 2);
        assert_eq!(s.ext::<Carbons>(), None);
        s.with_ext(|c: &mut Carbons| c.0 = true);
        assert_eq!(s.ext::<Carbons>(), Some(Carbons(true)));
        s.remove_ext::<Carbons>();
        assert_eq!(s.ext::<Carbons>(), None);
    }

    #[tokio::test]
    async fn slow_reader_is_closed() {
        let sessions = Sessions::default();
        let (s, mut q) = sessions.bind(Jid::parse("a@b/r").unwrap(), 2);
        let a = || Bytes::from_static(b"<a/>");
        assert!(s.send(a(), Urgency::Urgent));
        assert!(s.send(a(), Urgency::Lazy));
        assert!(!s.send(a(), Urgency::Urgent));
        assert!(matches!(q.recv().await, Some(Outgoing::Stanza(..))));
        assert!(matches!(q.recv().await, Some(Outgoing::Stanza(..))));
        assert!(matches!(
            q.recv().await,
            Some(Outgoing::Close {
                condition: "policy-violation",
                ..
            })
        ));
    }
}
