//! XMPP over BOSH (XEP-0124, XEP-0206) at `/http-bind`: the client POSTs `<body/>` wrappers
//! carrying its stanzas; each request is held until hearth has something to send or `wait`
//! runs out, and answered with a `<body/>` of what was written meanwhile. Like WebSocket, the
//! stream is served by the c2s code through a [`Pipe`].
//!
//! Requests are taken in `rid` order (a request ahead of a missing one waits for it); a
//! request repeated after a lost answer gets the same answer again; with `hold='1'` a new
//! request releases the one held before it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use minidom::Element;
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, mpsc, watch};

use super::framing::{STREAM_CLOSE, Splitter, Unit, stream_header};
use crate::ns;
use crate::server::Server;
use crate::transport::Pipe;

const NS_HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
const NS_XBOSH: &str = "urn:xmpp:xbosh";
/// Requests a client may have open at once (`hold` + 1).
const REQUESTS: u64 = 2;
/// Answers kept for retransmission.
const CACHED_ANSWERS: usize = REQUESTS as usize + 1;

pub(super) fn router(server: &Arc<Server>) -> Router<Arc<Server>> {
    let sessions = Arc::new(Sessions::default());
    let limit = server.config.c2s.max_stanza_size * 2;
    Router::new()
        .route("/http-bind", post(request))
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(sessions))
}

#[derive(Default)]
struct Sessions(Mutex<HashMap<String, Arc<Session>>>);

impl Sessions {
    fn get(&self, sid: &str) -> Option<Arc<Session>> {
        self.0.lock().expect("bosh sessions lock").get(sid).cloned()
    }
}

struct Session {
    sid: String,
    /// Where the client's elements go, in rid order; `None` once the client terminated.
    to_stream: tokio::sync::Mutex<Option<mpsc::Sender<Bytes>>>,
    /// The rid expected next; requests ahead of it wait for it to change.
    next_rid: watch::Sender<u64>,
    state: Mutex<Output>,
    /// Signalled when output arrives or the stream ends.
    output: Notify,
    wait: Duration,
}

#[derive(Default)]
struct Output {
    /// Elements written by hearth and not yet sent to the client.
    pending: Vec<Vec<u8>>,
    /// The stream has ended (closed by hearth, or gone).
    ended: bool,
    /// The stream error hearth closed the stream with, if any.
    stream_error: bool,
    /// When the client last made a request; with none held for `inactivity`, the session ends.
    last_request: Option<Instant>,
    held: usize,
    answers: VecDeque<(u64, Bytes)>,
}

async fn request(
    State(server): State<Arc<Server>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(body) = std::str::from_utf8(&body)
        .ok()
        .and_then(|b| b.parse::<Element>().ok())
        .filter(|b| b.is("body", NS_HTTPBIND))
    else {
        return terminate("bad-request");
    };
    let Some(rid) = body.attr("rid").and_then(|r| r.parse::<u64>().ok()) else {
        return terminate("bad-request");
    };
    match body.attr("sid") {
        None => {
            let peer = super::client_address(&server, peer, &headers);
            create(server, &sessions, &body, rid, peer).await
        }
        Some(sid) => match sessions.get(sid) {
            Some(session) => {
                let answer = session.request(&server, &body, rid).await;
                if session.state.lock().expect("bosh state").ended {
                    sessions.0.lock().expect("bosh sessions lock").remove(sid);
                }
                answer
            }
            None => terminate("item-not-found"),
        },
    }
}

/// The session creation request (XEP-0124 §7.1, XEP-0206 §3).
async fn create(
    server: Arc<Server>,
    sessions: &Arc<Sessions>,
    body: &Element,
    rid: u64,
    peer: SocketAddr,
) -> Response {
    let cfg = &server.config.http;
    let to = body.attr("to").unwrap_or_default();
    if !server.is_local_domain(to) {
        return terminate("host-unknown");
    }
    let wait = body
        .attr("wait")
        .and_then(|w| w.parse().ok())
        .unwrap_or(cfg.bosh_max_wait_secs)
        .clamp(1, cfg.bosh_max_wait_secs);
    let Ok(slot) = server.c2s_slots.clone().try_acquire_owned() else {
        tracing::warn!(%peer, setting = "c2s.max_connections", "connection limit reached; refusing a BOSH client");
        return terminate("remote-connection-failed");
    };
    let (pipe, ends) = Pipe::new();
    tokio::spawn(crate::c2s::serve_bridged(server.clone(), pipe, peer, slot));
    let sid = crate::streams::random_id();
    let session = Arc::new(Session {
        sid: sid.clone(),
        to_stream: tokio::sync::Mutex::new(Some(ends.to_stream)),
        next_rid: watch::channel(rid + 1).0,
        state: Mutex::new(Output {
            last_request: Some(Instant::now()),
            ..Default::default()
        }),
        output: Notify::new(),
        wait: Duration::from_secs(wait),
    });
    let held = session.hold();
    let header = stream_header(Some(to), Some("1.0"), body.attr_ns(rxml::XMLNS_XML, "lang"));
    session.send(Bytes::from(header)).await;
    let authid = Arc::new(std::sync::OnceLock::new());
    tokio::spawn(session.clone().pump(
        ends.from_stream,
        authid.clone(),
        Duration::from_secs(cfg.bosh_inactivity_secs),
        sessions.clone(),
    ));
    sessions
        .0
        .lock()
        .expect("bosh sessions lock")
        .insert(sid.clone(), session.clone());
    tracing::debug!(%peer, %sid, "BOSH session created");
    // The stream header and features arrive together; answer with the features.
    let elements = session.collect(rid + 1).await;
    drop(held);
    let attrs = format!(
        " sid='{sid}' wait='{wait}' inactivity='{}' polling='1' requests='{REQUESTS}' hold='1' \
         ver='1.11' from='{}' authid='{}' xmpp:version='1.0' xmpp:restartlogic='true' \
         xmlns:xmpp='{NS_XBOSH}'",
        cfg.bosh_inactivity_secs,
        server.domain(),
        authid.get().map(String::as_str).unwrap_or_default(),
    );
    let answer = session.answer(rid, &attrs, elements);
    respond(answer)
}

impl Session {
    /// Hands bytes to the stream (in order: callers hold the turn for their rid).
    async fn send(&self, bytes: Bytes) {
        if let Some(tx) = self.to_stream.lock().await.as_ref() {
            let _ = tx.send(bytes).await;
        }
    }

    async fn request(&self, server: &Server, body: &Element, rid: u64) -> Response {
        let expected = *self.next_rid.borrow();
        match place(rid, expected) {
            Place::Past => {
                // A retransmission of a request whose answer was lost (XEP-0124 §14.3).
                let cached = self
                    .state
                    .lock()
                    .expect("bosh state")
                    .answers
                    .iter()
                    .find(|(r, _)| *r == rid)
                    .map(|(_, answer)| answer.clone());
                return match cached {
                    Some(answer) => respond(answer),
                    // The latest request, never answered: its connection dropped while it was
                    // held. Its content went to the stream then; answer it now.
                    None if rid + 1 == expected => {
                        let held = self.hold();
                        let elements = self.collect(rid + 1).await;
                        drop(held);
                        respond(self.answer(rid, "", elements))
                    }
                    None => self.fail("item-not-found").await,
                };
            }
            Place::Beyond => return self.fail("item-not-found").await,
            Place::Window => {}
        }
        let held = self.hold();
        // A request that overtook an earlier one waits its turn.
        let mut turn = self.next_rid.subscribe();
        let in_turn = tokio::time::timeout(self.wait, turn.wait_for(|n| *n >= rid))
            .await
            .is_ok_and(|r| r.is_ok());
        if !in_turn {
            drop(held);
            return self.fail("item-not-found").await;
        }
        let mut input = Vec::new();
        if body.attr_ns(NS_XBOSH, "restart") == Some("true") {
            let to = body.attr("to").unwrap_or(server.domain());
            input.extend_from_slice(
                stream_header(Some(to), Some("1.0"), body.attr_ns(rxml::XMLNS_XML, "lang"))
                    .as_bytes(),
            );
        }
        for child in body.children() {
            hearth_xml::write_element(child, ns::CLIENT, &mut input);
        }
        let terminating = body.attr("type") == Some("terminate");
        if terminating {
            input.extend_from_slice(STREAM_CLOSE.as_bytes());
        }
        if !input.is_empty() {
            self.send(Bytes::from(input)).await;
        }
        if terminating {
            self.to_stream.lock().await.take();
        }
        self.next_rid.send_replace(rid + 1);
        let elements = if terminating {
            Vec::new()
        } else {
            self.collect(rid + 1).await
        };
        drop(held);
        let mut state = self.state.lock().expect("bosh state");
        if terminating {
            state.ended = true;
        }
        drop(state);
        let attrs = if terminating { " type='terminate'" } else { "" };
        respond(self.answer(rid, attrs, elements))
    }

    /// Ends the session on a binding error (XEP-0124 §14.3, §17.2): the client is told why,
    /// and the stream sees a lost connection (so Stream Management can still resume it).
    async fn fail(&self, condition: &str) -> Response {
        tracing::debug!(sid = %self.sid, condition, "BOSH request out of order; ending the session");
        self.state.lock().expect("bosh state").ended = true;
        self.output.notify_waiters();
        self.to_stream.lock().await.take();
        terminate(condition)
    }

    /// Counts a request as held until the guard is dropped: when it is answered, or when its
    /// connection closes first (hyper then drops the request's future), so a client that
    /// vanished mid-request still ends its session after `inactivity`.
    fn hold(&self) -> Held<'_> {
        let mut state = self.state.lock().expect("bosh state");
        state.held += 1;
        state.last_request = Some(Instant::now());
        Held(self)
    }

    /// Waits until hearth has written something, the stream ended, a newer request took over
    /// (`next_rid` moved past `after`), or `wait` passed; takes what is pending.
    async fn collect(&self, after: u64) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut newer = self.next_rid.subscribe();
        loop {
            let notified = self.output.notified();
            {
                let mut state = self.state.lock().expect("bosh state");
                if !state.pending.is_empty() || state.ended {
                    return std::mem::take(&mut state.pending);
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = newer.wait_for(|n| *n > after) => return Vec::new(),
                _ = tokio::time::sleep_until(deadline) => return Vec::new(),
            }
        }
    }

    /// A `<body/>` answer, kept for retransmission. Once the stream has ended it terminates the
    /// session, naming a stream error if hearth closed the stream with one.
    fn answer(&self, rid: u64, attrs: &str, elements: Vec<Vec<u8>>) -> Bytes {
        let mut state = self.state.lock().expect("bosh state");
        let mut out = format!(
            "<body xmlns='{NS_HTTPBIND}' xmlns:stream='{}'{attrs}",
            ns::STREAM
        )
        .into_bytes();
        if state.ended && attrs.is_empty() {
            let condition = if state.stream_error {
                "remote-stream-error"
            } else {
                "undefined-condition"
            };
            out.extend_from_slice(format!(" type='terminate' condition='{condition}'").as_bytes());
        }
        out.push(b'>');
        for el in elements {
            out.extend_from_slice(&el);
        }
        out.extend_from_slice(b"</body>");
        let out = Bytes::from(out);
        state.answers.push_back((rid, out.clone()));
        if state.answers.len() > CACHED_ANSWERS {
            state.answers.pop_front();
        }
        out
    }

    /// Moves what hearth writes into `pending`, and ends the session when the client stops
    /// making requests.
    async fn pump(
        self: Arc<Self>,
        mut from_stream: tokio::io::ReadHalf<tokio::io::SimplexStream>,
        authid: Arc<std::sync::OnceLock<String>>,
        inactivity: Duration,
        sessions: Arc<Sessions>,
    ) {
        let mut splitter = Splitter::default();
        let mut buf = Vec::with_capacity(8192);
        loop {
            buf.clear();
            let read = tokio::time::timeout(inactivity, from_stream.read_buf(&mut buf)).await;
            let mut state = self.state.lock().expect("bosh state");
            match read {
                Err(_) => {
                    let idle = state.last_request.is_none_or(|t| t.elapsed() >= inactivity);
                    if state.held == 0 && idle {
                        tracing::debug!(sid = %self.sid, "BOSH client made no request within http.bosh_inactivity_secs; ending its session");
                        break;
                    }
                    continue;
                }
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => splitter.feed(&buf),
            }
            while let Some(unit) = splitter.next_unit() {
                match unit {
                    Unit::Open { id } => {
                        let _ = authid.set(id);
                    }
                    Unit::Element(el) => {
                        state.stream_error |= el.starts_with(b"<stream:error");
                        state.pending.push(el);
                    }
                    Unit::Close => state.ended = true,
                }
            }
            drop(state);
            self.output.notify_waiters();
        }
        self.state.lock().expect("bosh state").ended = true;
        self.output.notify_waiters();
        // Dropping the sender ends the c2s stream (as a lost connection, so a session with
        // Stream Management can still be resumed).
        self.to_stream.lock().await.take();
        sessions
            .0
            .lock()
            .expect("bosh sessions lock")
            .remove(&self.sid);
    }
}

struct Held<'a>(&'a Session);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().expect("bosh state");
        state.held -= 1;
        state.last_request = Some(Instant::now());
    }
}

/// Where a request's rid falls, given the rid expected next.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// Already answered: a retransmission.
    Past,
    /// Expected, or ahead by less than the number of requests a client may have open.
    Window,
    /// Further ahead than any client following the protocol can be.
    Beyond,
}

fn place(rid: u64, expected: u64) -> Place {
    if rid < expected {
        Place::Past
    } else if rid - expected < REQUESTS {
        Place::Window
    } else {
        Place::Beyond
    }
}

fn respond(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// A terminal binding error (XEP-0124 §17.2).
fn terminate(condition: &str) -> Response {
    respond(Bytes::from(format!(
        "<body xmlns='{NS_HTTPBIND}' type='terminate' condition='{condition}'/>"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rids_are_placed_relative_to_the_expected_one() {
        assert_eq!(place(9, 10), Place::Past);
        assert_eq!(place(10, 10), Place::Window);
        assert_eq!(place(10 + REQUESTS - 1, 10), Place::Window);
        assert_eq!(place(10 + REQUESTS, 10), Place::Beyond);
        assert_eq!(place(u64::MAX, 10), Place::Beyond);
    }
}
