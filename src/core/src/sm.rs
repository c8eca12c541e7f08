//! Stream Management (XEP-0198): counting stanzas both ways, acknowledgements, and resumption.
//!
//! A resumable session whose connection drops is parked here, still bound: stanzas for it keep
//! queueing. A client that resumes takes it over (detaching a connection the server did not yet
//! see die); one that does not resume in time loses the session, and its unacknowledged and
//! unsent messages go to offline storage instead of being dropped. At shutdown the parked
//! sessions are saved, and restored as parked at the next start, so resumption survives a
//! restart.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use minidom::Element;
use tokio::sync::oneshot;

use crate::jid::Jid;
use crate::module::SessionEvent;
use crate::router::{Context, Flow, OFFLINE_EVENT, Origin};
use crate::server::Server;
use crate::session::{Outgoing, Session, SessionQueue};
use crate::stanza::{Condition, Kind, Stanza};

pub(crate) const NS: &str = "urn:xmpp:sm:3";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// How long a resuming client waits for its old connection to hand the session over.
const DETACH_WAIT: Duration = Duration::from_secs(10);

/// The counters and unacknowledged stanzas of one session with Stream Management enabled.
pub(crate) struct SmState {
    /// Resumption id, when the client asked for resumption.
    pub id: Option<String>,
    pub timeout: Duration,
    /// Stanzas received from the client.
    pub h_in: u32,
    /// Stanzas sent to the client.
    pub h_out: u32,
    /// Sent and not yet acknowledged, oldest first; the last has number `h_out`.
    pub unacked: VecDeque<Bytes>,
    /// An `<r/>` is outstanding.
    pub awaiting_ack: bool,
}

impl SmState {
    pub fn new(id: Option<String>, timeout: Duration) -> Self {
        Self {
            id,
            timeout,
            h_in: 0,
            h_out: 0,
            unacked: VecDeque::new(),
            awaiting_ack: false,
        }
    }

    pub fn received(&mut self) {
        self.h_in = self.h_in.wrapping_add(1);
    }

    pub fn sent(&mut self, stanza: Bytes) {
        self.h_out = self.h_out.wrapping_add(1);
        self.unacked.push_back(stanza);
    }

    /// Applies the client's count of handled stanzas (modulo 2^32, XEP-0198 §4). `Err` when it
    /// claims more than was sent.
    pub fn ack(&mut self, h: u32) -> Result<(), ()> {
        let acked_before = self.h_out.wrapping_sub(self.unacked.len() as u32);
        let newly = h.wrapping_sub(acked_before) as usize;
        if newly > self.unacked.len() {
            return Err(());
        }
        self.unacked.drain(..newly);
        Ok(())
    }
}

/// A session kept without a connection.
pub(crate) struct Parked {
    pub session: Arc<Session>,
    pub queue: SessionQueue,
    pub sm: Box<SmState>,
    /// Stanzas held back for the client (XEP-0352) and never sent, oldest first.
    pub unsent: Vec<Bytes>,
}

struct Entry {
    session: Arc<Session>,
    parked: Option<Parked>,
    generation: u64,
    /// A resuming connection waiting for the live one to detach.
    waiter: Option<oneshot::Sender<Parked>>,
}

pub(crate) enum ParkOutcome {
    /// Parked; expire it at `generation` after its timeout.
    Parked { generation: u64 },
    /// A resuming connection took it.
    HandedOver,
}

/// Resumable sessions by resumption id.
#[derive(Default)]
pub(crate) struct Resumable {
    entries: Mutex<HashMap<String, Entry>>,
    generations: AtomicU64,
}

impl Resumable {
    pub fn register(&self, id: &str, session: Arc<Session>) {
        self.lock().insert(
            id.to_string(),
            Entry {
                session,
                parked: None,
                generation: 0,
                waiter: None,
            },
        );
    }

    /// The SM session ended for good.
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Keeps the session of a dropped connection, or hands it to a connection resuming it.
    pub fn park(&self, id: &str, parked: Parked) -> ParkOutcome {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let mut entries = self.lock();
        let entry = entries.entry(id.to_string()).or_insert_with(|| Entry {
            session: parked.session.clone(),
            parked: None,
            generation,
            waiter: None,
        });
        let parked = match entry.waiter.take() {
            Some(waiter) => match waiter.send(parked) {
                Ok(()) => return ParkOutcome::HandedOver,
                Err(parked) => parked,
            },
            None => parked,
        };
        parked.session.set_hibernated(true);
        entry.generation = generation;
        entry.parked = Some(parked);
        ParkOutcome::Parked { generation }
    }

    /// Takes the session `id` of account `username` for resumption: at once if parked, else by
    /// detaching its live connection.
    pub async fn take(&self, id: &str, username: &str) -> Option<Parked> {
        let wait = {
            let mut entries = self.lock();
            let entry = entries.get_mut(id)?;
            if entry.session.jid.node() != Some(username) {
                return None;
            }
            if let Some(parked) = entry.parked.take() {
                entries.remove(id);
                return Some(parked);
            }
            let (tx, rx) = oneshot::channel();
            entry.waiter = Some(tx);
            entry.session.detach();
            rx
        };
        let parked = tokio::time::timeout(DETACH_WAIT, wait).await.ok()?.ok()?;
        self.lock().remove(id);
        Some(parked)
    }

    /// Removes the session if it is still parked since `generation`.
    pub fn expire(&self, id: &str, generation: u64) -> Option<Parked> {
        let mut entries = self.lock();
        let entry = entries.get_mut(id)?;
        if entry.generation != generation || entry.parked.is_none() {
            return None;
        }
        entries.remove(id).and_then(|e| e.parked)
    }

    /// Removes a parked session with this full JID: a new session just took the resource.
    pub fn take_replaced(&self, jid: &Jid) -> Option<Parked> {
        let mut entries = self.lock();
        let id = entries
            .iter()
            .find(|(_, e)| e.parked.is_some() && e.session.jid == *jid)
            .map(|(id, _)| id.clone())?;
        entries.remove(&id).and_then(|e| e.parked)
    }

    /// Removes the session with this session id if it is parked.
    pub fn take_parked(&self, session_id: u64) -> Option<Parked> {
        let mut entries = self.lock();
        let id = entries
            .iter()
            .find(|(_, e)| e.parked.is_some() && e.session.id == session_id)
            .map(|(id, _)| id.clone())?;
        entries.remove(&id).and_then(|e| e.parked)
    }

    pub fn parked_count(&self) -> usize {
        self.lock().values().filter(|e| e.parked.is_some()).count()
    }

    /// Every parked session with its id, for saving at shutdown.
    pub fn drain_parked(&self) -> Vec<(String, Parked)> {
        let mut entries = self.lock();
        let ids: Vec<String> = entries
            .iter()
            .filter(|(_, e)| e.parked.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| {
                let parked = entries.remove(&id)?.parked?;
                Some((id, parked))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().expect("resumable sessions lock")
    }
}

/// Parses stanzas serialised for a client stream (`jabber:client` as default namespace).
pub(crate) fn parse_stanzas(bytes: &[u8]) -> Vec<Element> {
    let mut parser = hearth_xml::StreamParser::new(hearth_xml::Limits {
        max_stanza_size: 1 << 30,
        max_depth: 1024,
        max_attributes: 1024,
    });
    parser.feed(
        format!(
            "<stream:stream xmlns='{}' xmlns:stream='{}' version='1.0'>",
            crate::ns::CLIENT,
            crate::ns::STREAM
        )
        .as_bytes(),
    );
    parser.feed(bytes);
    let mut out = Vec::new();
    while let Ok(Some(event)) = parser.next_event() {
        if let hearth_xml::StreamEvent::Element(el) = event {
            out.push(el);
        }
    }
    out
}

fn concat(stanzas: impl IntoIterator<Item = Bytes>) -> String {
    let bytes: Vec<u8> = stanzas.into_iter().flat_map(|b| b.to_vec()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl Server {
    /// Expires a parked session after its timeout unless it was resumed (or parked anew).
    pub(crate) fn expire_later(self: &Arc<Self>, id: String, generation: u64, after: Duration) {
        let server = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(parked) = server.resumable.expire(&id, generation) {
                tracing::info!(jid = %parked.session.jid, "session not resumed in time; ending it");
                server.end_parked(parked, "not resumed in time").await;
            }
        });
    }

    /// Ends a session on the server's initiative (an administrator ended it, disabled or deleted
    /// its account): a connected client gets the stream error `condition` and its session does
    /// not wait for resumption (XEP-0198); a session already waiting for it ends at once.
    pub async fn disconnect(
        self: &Arc<Self>,
        session: &Arc<Session>,
        condition: &'static str,
        text: &str,
    ) {
        match self.resumable.take_parked(session.id) {
            Some(parked) => self.end_parked(parked, text).await,
            None => session.close(condition, Some(text.to_string())),
        }
    }

    /// Ends a parked session: the session closes for its contacts, and what it never delivered
    /// goes to offline storage.
    pub(crate) async fn end_parked(self: &Arc<Self>, parked: Parked, reason: &str) {
        let Parked {
            session,
            mut queue,
            sm,
            unsent,
        } = parked;
        session.set_hibernated(false);
        let mut leftover: Vec<Bytes> = sm.unacked.into_iter().chain(unsent).collect();
        self.end_session(&session, reason, &mut queue, &mut leftover)
            .await;
    }

    /// Unbinds `session`, tells the modules, and re-routes what it did not deliver: the
    /// `leftover` stanzas and whatever is still queued.
    pub(crate) async fn end_session(
        self: &Arc<Self>,
        session: &Arc<Session>,
        reason: &str,
        queue: &mut SessionQueue,
        leftover: &mut Vec<Bytes>,
    ) {
        // A session replaced by a newer one with the same resource (conflict) is already
        // unbound; telling contacts it went away would contradict the new session.
        if self.sessions.unbind(session) {
            let was_available = session.is_available();
            tracing::info!(jid = %session.jid, reason, "session closed");
            self.session_event(SessionEvent::Closed {
                jid: session.jid.clone(),
                was_available,
                reason: reason.to_string(),
                session: session.clone(),
            })
            .await;
        }
        while let Some(item) = queue.try_recv() {
            if let Outgoing::Stanza(bytes, _) = item {
                leftover.push(bytes);
            }
        }
        if !leftover.is_empty() {
            self.reroute_undelivered(std::mem::take(leftover)).await;
        }
    }

    /// Stanzas a session received but whose client never confirmed them: messages go to
    /// offline storage (the event the offline module handles), requests are answered with an
    /// error, the rest is dropped. Copies (carbons, archive results) are not stored again.
    async fn reroute_undelivered(self: &Arc<Self>, stanzas: Vec<Bytes>) {
        let count = stanzas.len();
        let mut stored = 0;
        for el in stanzas.iter().flat_map(|b| parse_stanzas(b)) {
            let Ok(stanza) = Stanza::from_element(el) else {
                continue;
            };
            match (stanza.kind(), stanza.stanza_type()) {
                (Kind::Message, "chat" | "normal") if !is_copy(stanza.element()) => {
                    let cx = Context::new(self.clone(), Origin::Server);
                    let has_body = stanza.body().is_some();
                    match self.fire(OFFLINE_EVENT, cx, stanza).await {
                        Flow::Stop => stored += 1,
                        Flow::Continue(st) if has_body => {
                            self.bounce(&st, Condition::RecipientUnavailable.into())
                                .await
                        }
                        Flow::Continue(_) => {}
                    }
                }
                (Kind::Iq, "get" | "set") => {
                    self.bounce(&stanza, Condition::RecipientUnavailable.into())
                        .await
                }
                _ => {}
            }
        }
        tracing::debug!(
            count,
            stored,
            "stanzas the client never acknowledged were re-routed"
        );
    }

    /// Saves the parked sessions so clients can resume them after the restart.
    pub(crate) async fn save_parked(self: &Arc<Self>) {
        let parked = self.resumable.drain_parked();
        if parked.is_empty() {
            return;
        }
        let now = SystemTime::now();
        let mut records = Vec::with_capacity(parked.len());
        for (id, mut p) in parked {
            let Some(username) = p.session.jid.node() else {
                continue;
            };
            let mut unsent = std::mem::take(&mut p.unsent);
            while let Some(item) = p.queue.try_recv() {
                if let Outgoing::Stanza(bytes, _) = item {
                    unsent.push(bytes);
                }
            }
            let (presence, priority) = {
                let state = p.session.presence.lock().expect("presence lock");
                let presence = state.last.as_ref().filter(|_| state.available).map(|el| {
                    let mut out = Vec::new();
                    hearth_xml::write_element(el, crate::ns::CLIENT, &mut out);
                    String::from_utf8_lossy(&out).into_owned()
                });
                (presence, state.priority)
            };
            records.push(hearth_store::ResumableSession {
                id,
                username: username.to_string(),
                resource: p.session.jid.resource().unwrap_or_default().to_string(),
                expires: now + p.sm.timeout,
                h_in: p.sm.h_in,
                h_out: p.sm.h_out,
                unacked: concat(std::mem::take(&mut p.sm.unacked)),
                unsent: concat(unsent),
                presence,
                priority,
                module_state: self.export_session_state(&p.session),
            });
        }
        let count = records.len();
        match self.store.resumable_save(records).await {
            Ok(()) => tracing::info!(
                count,
                "saved resumable sessions: their clients can resume after the restart"
            ),
            Err(e) => {
                tracing::error!(error = %e, "could not save resumable sessions; their clients will log in anew")
            }
        }
    }

    /// Restores the sessions saved at the last shutdown, parked, with their original timeouts.
    pub(crate) async fn restore_parked(self: &Arc<Self>) {
        let records = match self.store.resumable_take_all().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "could not read saved resumable sessions; their clients will log in anew");
                return;
            }
        };
        for r in &records {
            let Ok(jid) = Jid::parse(&format!("{}@{}/{}", r.username, self.domain(), r.resource))
            else {
                continue;
            };
            let (session, queue) = self.sessions.bind(jid, self.config.c2s.max_queued_stanzas);
            if let Some(el) = r
                .presence
                .as_deref()
                .and_then(|p| parse_stanzas(p.as_bytes()).pop())
            {
                let mut state = session.presence.lock().expect("presence lock");
                state.available = true;
                state.priority = r.priority;
                state.last = Some(el);
            }
            self.import_session_state(&session, &r.module_state);
            let to_bytes = |xml: &str| -> Vec<Bytes> {
                parse_stanzas(xml.as_bytes())
                    .iter()
                    .map(|el| hearth_xml::element_to_bytes(el, crate::ns::CLIENT))
                    .collect()
            };
            let timeout = r
                .expires
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let mut sm = Box::new(SmState::new(Some(r.id.clone()), timeout));
            sm.h_in = r.h_in;
            sm.h_out = r.h_out;
            sm.unacked = to_bytes(&r.unacked).into();
            let parked = Parked {
                session,
                queue,
                sm,
                unsent: to_bytes(&r.unsent),
            };
            if let ParkOutcome::Parked { generation } = self.resumable.park(&r.id, parked) {
                self.expire_later(r.id.clone(), generation, timeout);
            }
        }
        if !records.is_empty() {
            tracing::info!(
                count = records.len(),
                "restored resumable sessions from before the restart"
            );
        }
    }
}

/// A forwarded copy (carbon, archive result) rather than a message of its own.
fn is_copy(el: &Element) -> bool {
    el.children()
        .any(|c| c.children().any(|cc| cc.is("forwarded", NS_FORWARD)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_count_modulo_2_32() {
        let mut sm = SmState::new(None, Duration::from_secs(1));
        sm.h_out = u32::MAX - 1;
        for s in ["a", "b", "c"] {
            sm.sent(Bytes::from(s));
        }
        assert_eq!(sm.h_out, 1);
        assert!(sm.ack(u32::MAX).is_ok());
        assert_eq!(sm.unacked, ["b", "c"].map(Bytes::from));
        assert!(sm.ack(u32::MAX).is_ok(), "the same ack again is harmless");
        assert!(sm.ack(2).is_err(), "more than was sent");
        assert!(sm.ack(1).is_ok());
        assert!(sm.unacked.is_empty());
    }

    #[test]
    fn stored_stanzas_parse_back() {
        let els = parse_stanzas(
            b"<message to='a@b/c'><body>1</body></message><iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(els.len(), 2);
        assert_eq!(els[0].ns(), crate::ns::CLIENT);
        assert!(!is_copy(&els[0]));
        let carbon = parse_stanzas(b"<message><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'/></received></message>");
        assert!(is_copy(&carbon[0]));
    }
}
