//! Outgoing streams: finding the remote server, connecting, securing and authenticating a
//! link, then feeding it from its queue; and the short-lived streams that ask an authoritative
//! server to verify a dialback key.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hearth_xml::StreamEvent;
use minidom::Element;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::acks::Sent;
use super::wire::{Broken, Wire};
use super::{NS_BIDI, NS_BIDI_FEATURE, NS_DIALBACK};
use crate::config::S2sAuth;
use crate::dns::{Endpoint, ServerEndpoints};
use crate::ns;
use crate::server::Server;
use crate::stanza::{Condition, Stanza, StanzaError};
use crate::streams::xml_escape;
use crate::transport::Transport;

/// Longest wait for one TCP connection attempt.
const TCP_ATTEMPT: Duration = Duration::from_secs(10);
/// Delay before the next address is tried while an attempt is still pending (RFC 8305 §5).
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// Stanzas written before the link flushes, if more are waiting.
const WRITE_BATCH: usize = 64 * 1024;

/// Why a link ended.
enum Ended {
    /// Nothing to send for `idle_timeout_secs`, or the server stops.
    Idle,
    Broken(Broken),
}

/// The task owning the link (local → remote): connects, sends what its queue holds, and
/// reconnects when the connection breaks while stanzas wait. Boxed: the task routes stanzas,
/// which may start links, so its future type would otherwise contain itself.
pub(super) fn run_link(
    server: Arc<Server>,
    link: LinkId,
    queue: mpsc::Receiver<Stanza>,
) -> futures_util::future::BoxFuture<'static, ()> {
    Box::pin(run(server, link, queue))
}

/// Which link a task runs, and where it reports its state.
pub(super) struct LinkId {
    pub id: u64,
    pub local: String,
    pub remote: String,
    pub status: Arc<std::sync::Mutex<super::LinkStatus>>,
}

async fn run(server: Arc<Server>, link: LinkId, mut queue: mpsc::Receiver<Stanza>) {
    let LinkId {
        id,
        local,
        remote,
        status,
    } = link;
    let report = |f: &dyn Fn(&mut super::LinkStatus)| f(&mut status.lock().expect("status lock"));
    let cfg = server.config.s2s.clone();
    let mut shutdown = server.shutdown_signal();
    // Stanzas to send before the queue's: those a broken connection never acknowledged.
    let mut resend: VecDeque<Stanza> = VecDeque::new();
    loop {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(cfg.connect_timeout_secs);
        let mut backoff = Duration::from_millis(250);
        let established = loop {
            match establish(&server, &local, &remote, deadline).await {
                Ok(done) => break Ok(done),
                Err(e) if Instant::now() + backoff >= deadline => break Err(e),
                Err(e) => {
                    tracing::info!(%local, %remote, reason = %e.reason, retry_in_ms = backoff.as_millis() as u64, "cannot reach remote server yet; retrying");
                    report(&|s| {
                        s.set("retrying");
                        s.last_error = Some(e.reason.clone());
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => break Err(Broken::new("the server is shutting down")),
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
            }
        };
        let (wire, mode) = match established {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(%local, %remote, reason = %e.reason, waited_secs = started.elapsed().as_secs(), "giving up on remote server (s2s.connect_timeout_secs); bouncing what waited for it");
                server.retire_link(&local, &remote, id);
                queue.close();
                let condition = if e.timed_out {
                    Condition::RemoteServerTimeout
                } else {
                    Condition::RemoteServerNotFound
                };
                let text = format!("cannot reach {remote}: {}", e.reason);
                while let Some(st) = match resend.pop_front() {
                    Some(st) => Some(st),
                    None => queue.recv().await,
                } {
                    let err = StanzaError::new(condition).with_text(text.clone());
                    server.bounce(&st, err).await;
                }
                return;
            }
        };
        tracing::info!(%local, %remote, peer = %wire.peer, secs = started.elapsed().as_secs_f32(), auth = mode.auth, acks = mode.acks, bidi = mode.bidi, "server-to-server link established");
        report(&|s| {
            s.set("up");
            s.peer = Some(wire.peer);
            s.acks = mode.acks;
        });
        let mut sent = Sent::new(mode.acks, std::mem::take(&mut resend));
        let peer = Peer {
            local: &local,
            remote: &remote,
            bidi: mode.bidi,
            received: 0,
        };
        let ended = feed(&server, wire, &mut queue, &mut sent, peer, &mut shutdown).await;
        resend = sent.unacknowledged();
        match ended {
            Ended::Broken(e) if !resend.is_empty() || !queue.is_empty() => {
                tracing::info!(%local, %remote, reason = %e.reason, unacknowledged = resend.len(), "server-to-server link broke with stanzas waiting; reconnecting");
                report(&|s| {
                    s.set("connecting");
                    s.last_error = Some(e.reason.clone());
                });
                continue;
            }
            Ended::Broken(e) => {
                tracing::info!(%local, %remote, reason = %e.reason, "server-to-server link closed")
            }
            Ended::Idle => tracing::debug!(%local, %remote, "idle server-to-server link closed"),
        }
        server.retire_link(&local, &remote, id);
        queue.close();
        // What arrived while the link was closing goes to a new link; when the server stops,
        // what is not known to have arrived goes back to its senders instead.
        let stopping = *shutdown.borrow();
        while let Some(st) = match resend.pop_front() {
            Some(st) => Some(st),
            None => queue.recv().await,
        } {
            if stopping {
                let err = StanzaError::new(Condition::RemoteServerTimeout).with_text(format!(
                    "not delivered to {remote}: the server is shutting down"
                ));
                server.bounce(&st, err).await;
            } else {
                Box::pin(server.send_remote(st)).await;
            }
        }
        return;
    }
}

/// Writes queued stanzas to an established link until it is idle, breaks, or the server stops.
async fn feed(
    server: &Arc<Server>,
    mut wire: Wire,
    queue: &mut mpsc::Receiver<Stanza>,
    sent: &mut Sent,
    mut peer: Peer<'_>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Ended {
    let cfg = &server.config.s2s;
    let idle = Duration::from_secs(cfg.idle_timeout_secs);
    let keepalive = Duration::from_secs(cfg.keepalive_secs);
    let mut last_stanza = Instant::now();
    let mut last_write = Instant::now();
    let ended = loop {
        while wire.out.len() < WRITE_BATCH
            && let Some(st) = sent.first.pop_front()
        {
            sent.write(&mut wire, st);
        }
        if !wire.out.is_empty() {
            while wire.out.len() < WRITE_BATCH {
                match queue.try_recv() {
                    Ok(st) => sent.write(&mut wire, st),
                    Err(_) => break,
                }
            }
            sent.after_write(&mut wire);
            if let Err(e) = wire.flush().await {
                break Ended::Broken(Broken::new(format!("write failed: {e}")));
            }
            last_stanza = Instant::now();
            last_write = last_stanza;
            if !sent.first.is_empty() {
                continue;
            }
        }
        let ack_due = sent.due;
        tokio::select! {
            st = queue.recv() => match st {
                Some(st) => sent.write(&mut wire, st),
                None => break Ended::Idle,
            },
            _ = sleep_until(ack_due.unwrap_or_else(Instant::now)), if ack_due.is_some() => {
                sent.request(&mut wire);
                if let Err(e) = wire.flush().await {
                    break Ended::Broken(Broken::new(format!("write failed: {e}")));
                }
            }
            read = wire.read_some() => match read {
                Ok(true) => {
                    let stanzas = match drain_incoming(&mut wire, sent, &peer) {
                        Ok(stanzas) => stanzas,
                        Err(e) => break Ended::Broken(e),
                    };
                    // Traffic either way keeps the link open.
                    if !stanzas.is_empty() {
                        last_stanza = Instant::now();
                    }
                    if let Err(e) = peer.deliver(server, stanzas).await {
                        break Ended::Broken(e);
                    }
                }
                Ok(false) => break Ended::Broken(Broken::new("the peer closed the connection")),
                Err(e) => break Ended::Broken(Broken::new(format!("connection error: {e}"))),
            },
            _ = sleep_until(last_write + keepalive) => {
                // A whitespace keep-alive (RFC 6120 §4.6.1), or an ack request when stanzas
                // wait for one: keeps NATs open, and a dead peer shows up as a failed write
                // (or, with acks, as a request never answered: see below).
                if sent.acks && !sent.unacked.is_empty() {
                    if sent.requested {
                        break Ended::Broken(Broken {
                            reason: "the peer did not acknowledge stanzas within s2s.keepalive_secs".into(),
                            timed_out: true,
                        });
                    }
                    sent.request(&mut wire);
                } else {
                    wire.out.push(b' ');
                }
                if let Err(e) = wire.flush().await {
                    break Ended::Broken(Broken::new(format!("keep-alive failed: {e}")));
                }
                last_write = Instant::now();
            }
            _ = sleep_until(last_stanza + idle), if sent.unacked.is_empty() => break Ended::Idle,
            _ = shutdown.changed() => break Ended::Idle,
        }
    };
    if let Ended::Idle = ended {
        wire.out.extend_from_slice(b"</stream:stream>");
        wire.close().await;
    }
    ended
}

/// The other end of an established link, and what it may send back on it.
struct Peer<'a> {
    local: &'a str,
    remote: &'a str,
    bidi: bool,
    /// Stanzas received on this stream (XEP-0198 `h` for the peer's ack requests).
    received: u32,
}

impl Peer<'_> {
    /// Routes the stanzas the peer sent back on a bidirectional stream: only from its domain
    /// to this link's (XEP-0288 §2.2), like those of an incoming stream.
    async fn deliver(&mut self, server: &Arc<Server>, stanzas: Vec<Element>) -> Result<(), Broken> {
        for el in stanzas {
            let stanza = Stanza::from_element(el)
                .map_err(|e| Broken::new(format!("the peer sent a bad stanza: {e}")))?;
            let addressed = stanza.from().is_some_and(|f| f.domain() == self.remote)
                && stanza.to().is_some_and(|t| t.domain() == self.local);
            if !addressed {
                return Err(Broken::new(
                    "the peer sent a stanza outside the domain pair of this bidirectional stream",
                ));
            }
            server
                .process_from_remote(stanza, self.remote.to_string())
                .await;
            self.received = self.received.wrapping_add(1);
        }
        Ok(())
    }
}

/// Handles what a peer says on a stream hearth initiated once it is established: acks,
/// keep-alives, and on a bidirectional stream its stanzas (returned, to be routed); its end or
/// an error ends the link.
fn drain_incoming(
    wire: &mut Wire,
    sent: &mut Sent,
    peer: &Peer<'_>,
) -> Result<Vec<Element>, Broken> {
    let mut stanzas = Vec::new();
    loop {
        match wire.parser.next_event() {
            Ok(None) => return Ok(stanzas),
            Ok(Some(StreamEvent::End)) => return Err(Broken::new("the peer closed its stream")),
            Ok(Some(StreamEvent::Element(el))) if el.is("error", ns::STREAM) => {
                return Err(Broken::new("the peer sent a stream error"));
            }
            Ok(Some(StreamEvent::Element(el))) if el.is("a", crate::sm::NS) && sent.acks => {
                let h = el.attr("h").and_then(|h| h.parse().ok()).ok_or_else(|| {
                    Broken::new("the peer sent an acknowledgement without a valid h")
                })?;
                sent.acknowledged(h)?;
            }
            Ok(Some(StreamEvent::Element(el))) if el.is("r", crate::sm::NS) => {
                // Counted when routed; those still in `stanzas` are routed before this is sent.
                let h = peer.received.wrapping_add(stanzas.len() as u32);
                wire.out.extend_from_slice(
                    format!("<a xmlns='{}' h='{h}'/>", crate::sm::NS).as_bytes(),
                );
            }
            Ok(Some(StreamEvent::Element(el))) if el.ns() == ns::CLIENT && peer.bidi => {
                stanzas.push(el);
            }
            Ok(Some(StreamEvent::Element(el))) if el.ns() == ns::CLIENT => {
                return Err(Broken::new(format!(
                    "the peer sent <{}/> on a stream hearth initiated (not bidirectional)",
                    el.name()
                )));
            }
            Ok(Some(_)) => {}
            Err(e) => return Err(Broken::new(format!("bad XML from the peer: {e}"))),
        }
    }
}

/// Connects to `remote`'s server, authenticates `local` to it and enables acknowledgements
/// (XEP-0198) if the peer offers them: the link, and whether it has acks.
async fn establish(
    server: &Arc<Server>,
    local: &str,
    remote: &str,
    deadline: Instant,
) -> Result<(Wire, Mode), Broken> {
    let (mut wire, features, bidi, auth) = authenticate(server, local, remote, deadline).await?;
    let mut mode = Mode {
        acks: false,
        bidi,
        auth,
    };
    if features.get_child("sm", crate::sm::NS).is_none() {
        return Ok((wire, mode));
    }
    wire.out
        .extend_from_slice(format!("<enable xmlns='{}'/>", crate::sm::NS).as_bytes());
    flush(&mut wire).await?;
    loop {
        let el = wire.next_element(deadline).await?;
        if el.is("enabled", crate::sm::NS) || el.is("failed", crate::sm::NS) {
            mode.acks = el.name() == "enabled";
            return Ok((wire, mode));
        }
    }
}

/// What an established link does besides carrying hearth's stanzas.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// The peer acknowledges stanzas (XEP-0198).
    acks: bool,
    /// The peer may send its stanzas back on this stream (XEP-0288).
    bidi: bool,
    /// How hearth authenticated: `certificate` (SASL EXTERNAL) or `dialback`.
    auth: &'static str,
}

/// Authenticates `local` to `remote`'s server: the link, the features of its authenticated
/// stream (those before dialback, which does not restart the stream), whether the stream is
/// bidirectional (XEP-0288: asked for, before authenticating, when offered), and how hearth
/// was authenticated.
async fn authenticate(
    server: &Arc<Server>,
    local: &str,
    remote: &str,
    deadline: Instant,
) -> Result<(Wire, Element, bool, &'static str), Broken> {
    let (mut wire, stream_id, features) = open_secured(server, local, remote, deadline).await?;
    let bidi = wire.io.is_encrypted() && features.get_child("bidi", NS_BIDI_FEATURE).is_some();
    if bidi {
        // Sent with what follows: XEP-0288 §2.2, before SASL or dialback.
        wire.out
            .extend_from_slice(format!("<bidi xmlns='{NS_BIDI}'/>").as_bytes());
    }
    let policy = server.config.s2s.policy(remote);
    if policy == S2sAuth::Certificate {
        // Only certificates count for this domain, in both directions.
        server
            .s2s
            .tls
            .check(wire.io.peer_certificates(), remote)
            .map_err(|e| Broken::new(format!("its certificate is not valid for {remote}: {e}")))?;
    }
    let offers_external = features.get_child("mechanisms", ns::SASL).is_some_and(|m| {
        m.children()
            .any(|c| c.is("mechanism", ns::SASL) && c.text() == "EXTERNAL")
    });
    if offers_external && wire.io.is_encrypted() {
        match sasl_external(&mut wire, local, remote, deadline).await {
            Ok(features) => return Ok((wire, features, bidi, "certificate")),
            Err(e) if policy == S2sAuth::Certificate => return Err(e),
            Err(e) => {
                tracing::debug!(%local, %remote, reason = %e.reason, "SASL EXTERNAL refused; trying dialback")
            }
        }
    } else if policy == S2sAuth::Certificate {
        return Err(Broken::new(
            "the peer does not accept hearth's certificate (no SASL EXTERNAL offered)",
        ));
    }
    let key = server.s2s.dialback_key(remote, local, &stream_id);
    wire.out.extend_from_slice(
        format!(
            "<db:result from='{}' to='{}'>{key}</db:result>",
            xml_escape(local),
            xml_escape(remote)
        )
        .as_bytes(),
    );
    flush(&mut wire).await?;
    loop {
        let el = wire.next_element(deadline).await?;
        if !el.is("result", NS_DIALBACK) {
            continue;
        }
        return match el.attr("type") {
            Some("valid") => Ok((wire, features, bidi, "dialback")),
            Some("invalid") => Err(Broken::new(format!(
                "{remote} refused hearth's dialback key"
            ))),
            _ => Err(Broken::new(format!(
                "{remote} could not check hearth's dialback key (dialback error)"
            ))),
        };
    }
}

/// Asks `remote` (the authoritative server of the domain that claimed a stream to `local`)
/// whether `key` is its key for stream `stream_id` (XEP-0220 §2.3).
pub(super) async fn verify_key(
    server: &Arc<Server>,
    local: &str,
    remote: &str,
    stream_id: &str,
    key: &str,
) -> Result<bool, Broken> {
    let deadline = Instant::now() + Duration::from_secs(server.config.s2s.connect_timeout_secs);
    let (mut wire, _, _) = open_secured(server, local, remote, deadline).await?;
    wire.out.extend_from_slice(
        format!(
            "<db:verify from='{}' to='{}' id='{}'>{}</db:verify>",
            xml_escape(local),
            xml_escape(remote),
            xml_escape(stream_id),
            xml_escape(key)
        )
        .as_bytes(),
    );
    flush(&mut wire).await?;
    let valid = loop {
        let el = wire.next_element(deadline).await?;
        if el.is("verify", NS_DIALBACK) && el.attr("id") == Some(stream_id) {
            break el.attr("type") == Some("valid");
        }
    };
    wire.out.extend_from_slice(b"</stream:stream>");
    wire.close().await;
    Ok(valid)
}

/// TCP, stream header, STARTTLS (or direct TLS) and the features of the secured stream: the
/// connection, the peer's stream id and its features.
async fn open_secured(
    server: &Arc<Server>,
    local: &str,
    remote: &str,
    deadline: Instant,
) -> Result<(Wire, String, Element), Broken> {
    let mut failures = Vec::new();
    for endpoint in endpoints(server, remote).await? {
        let mut untried = happy_eyeballs_order(addresses(server, &endpoint).await);
        while let Some((tcp, addr)) = connect_first(&mut untried, deadline, &mut failures).await {
            let _ = tcp.set_nodelay(true);
            match negotiate(server, tcp, addr, &endpoint, local, remote, deadline).await {
                Ok(done) => return Ok(done),
                Err(e) => failures.push(format!("{addr}: {}", e.reason)),
            }
        }
    }
    let timed_out = Instant::now() >= deadline;
    if failures.is_empty() {
        failures.push(format!("no address found for {remote}"));
    }
    Err(Broken {
        reason: failures.join("; "),
        timed_out,
    })
}

/// RFC 8305 order: IPv6 and IPv4 addresses alternating, starting with IPv6.
fn happy_eyeballs_order(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let (mut v6, mut v4): (VecDeque<_>, VecDeque<_>) =
        addrs.into_iter().partition(SocketAddr::is_ipv6);
    let mut ordered = VecDeque::with_capacity(v6.len() + v4.len());
    while !v6.is_empty() || !v4.is_empty() {
        ordered.extend(v6.pop_front());
        ordered.extend(v4.pop_front());
    }
    ordered
}

/// Connects to the first of `untried` that answers, starting the next attempt every
/// [`ATTEMPT_DELAY`] (or as soon as one fails) while earlier ones are still pending (RFC 8305
/// "happy eyeballs": a dead IPv6 route costs a quarter second, not a timeout). Attempts not
/// started stay in `untried` for the caller's next try.
async fn connect_first(
    untried: &mut VecDeque<SocketAddr>,
    deadline: Instant,
    failures: &mut Vec<String>,
) -> Option<(TcpStream, SocketAddr)> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut running = FuturesUnordered::new();
    let mut next_start = Instant::now();
    loop {
        if running.is_empty() && untried.is_empty() || Instant::now() >= deadline {
            return None;
        }
        tokio::select! {
            Some((addr, result)) = running.next(), if !running.is_empty() => match result {
                Ok(Ok(tcp)) => return Some((tcp, addr)),
                Ok(Err(e)) => {
                    failures.push(format!("{addr}: {e}"));
                    next_start = Instant::now();
                }
                Err(_) => failures.push(format!("{addr}: no answer")),
            },
            _ = sleep_until(next_start), if !untried.is_empty() => {
                let addr = untried.pop_front().expect("checked: not empty");
                let attempt = (Instant::now() + TCP_ATTEMPT).min(deadline);
                running.push(async move {
                    (addr, tokio::time::timeout_at(attempt, TcpStream::connect(addr)).await)
                });
                next_start = Instant::now() + ATTEMPT_DELAY;
            }
            _ = sleep_until(deadline) => return None,
        }
    }
}

async fn negotiate(
    server: &Arc<Server>,
    tcp: TcpStream,
    addr: SocketAddr,
    endpoint: &Endpoint,
    local: &str,
    remote: &str,
    deadline: Instant,
) -> Result<(Wire, String, Element), Broken> {
    let cfg = &server.config.s2s;
    let name = ServerName::try_from(remote.to_string())
        .map_err(|e| Broken::new(format!("{remote} is not a valid server name: {e}")))?;
    let io = if endpoint.direct_tls {
        let tls = tokio::time::timeout_at(
            deadline,
            server.s2s.tls.direct_connector.connect(name.clone(), tcp),
        )
        .await
        .map_err(|_| timed_out("TLS handshake"))?
        .map_err(|e| Broken::new(format!("TLS handshake failed: {e}")))?;
        Transport::TlsClient(Box::new(tls))
    } else {
        Transport::Plain(tcp)
    };
    let mut wire = Wire::new(io, addr, cfg.max_stanza_size);
    let (mut stream_id, mut features) = restart(&mut wire, local, remote, deadline).await?;
    if !wire.io.is_encrypted() {
        if features.get_child("starttls", ns::TLS).is_some() {
            wire.out
                .extend_from_slice(format!("<starttls xmlns='{}'/>", ns::TLS).as_bytes());
            flush(&mut wire).await?;
            let el = wire.next_element(deadline).await?;
            if !el.is("proceed", ns::TLS) {
                return Err(Broken::new("the peer refused STARTTLS"));
            }
            let Transport::Plain(tcp) = wire.io else {
                unreachable!("checked: not encrypted")
            };
            let tls =
                tokio::time::timeout_at(deadline, server.s2s.tls.connector.connect(name, tcp))
                    .await
                    .map_err(|_| timed_out("TLS handshake"))?
                    .map_err(|e| Broken::new(format!("TLS handshake failed: {e}")))?;
            wire = Wire::new(
                Transport::TlsClient(Box::new(tls)),
                addr,
                cfg.max_stanza_size,
            );
            (stream_id, features) = restart(&mut wire, local, remote, deadline).await?;
        } else if cfg.require_encryption {
            return Err(Broken::new(
                "the peer does not offer TLS and s2s.require_encryption is on",
            ));
        }
    }
    Ok((wire, stream_id, features))
}

/// Opens a (new) stream and reads the peer's header and features.
async fn restart(
    wire: &mut Wire,
    local: &str,
    remote: &str,
    deadline: Instant,
) -> Result<(String, Element), Broken> {
    wire.parser.reset();
    wire.send_header(Some(local), Some(remote), None);
    flush(wire).await?;
    let header = wire.next_header(deadline).await?;
    let stream_id = header
        .id
        .ok_or_else(|| Broken::new("the peer's stream header has no id"))?;
    let features = wire.next_element(deadline).await?;
    if !features.is("features", ns::STREAM) {
        return Err(Broken::new("the peer sent no stream features"));
    }
    Ok((stream_id, features))
}

/// SASL EXTERNAL with hearth's certificate; the features of the restarted stream.
async fn sasl_external(
    wire: &mut Wire,
    local: &str,
    remote: &str,
    deadline: Instant,
) -> Result<Element, Broken> {
    wire.out.extend_from_slice(
        format!(
            "<auth xmlns='{}' mechanism='EXTERNAL'>{}</auth>",
            ns::SASL,
            B64.encode(local)
        )
        .as_bytes(),
    );
    flush(wire).await?;
    let el = wire.next_element(deadline).await?;
    if !el.is("success", ns::SASL) {
        return Err(Broken::new(format!(
            "{remote} refused hearth's certificate for {local} (SASL EXTERNAL)"
        )));
    }
    let (_, features) = restart(wire, local, remote, deadline).await?;
    Ok(features)
}

async fn flush(wire: &mut Wire) -> Result<(), Broken> {
    wire.flush()
        .await
        .map_err(|e| Broken::new(format!("write failed: {e}")))
}

fn timed_out(what: &str) -> Broken {
    Broken {
        reason: format!("{what} timed out"),
        timed_out: true,
    }
}

/// Where `remote` is served: the configured address, or DNS (SRV, else the domain on 5269).
async fn endpoints(server: &Server, remote: &str) -> Result<Vec<Endpoint>, Broken> {
    let cfg = &server.config.s2s;
    if let Some(peer) = cfg.peers.get(remote)
        && let Some(address) = &peer.address
        && let Some((host, port)) = address.rsplit_once(':')
    {
        return Ok(vec![Endpoint {
            host: host.trim_matches(['[', ']']).to_string(),
            port: port.parse().unwrap_or(crate::dns::S2S_PORT),
            direct_tls: peer.direct_tls,
        }]);
    }
    let Some(resolver) = server.s2s.resolver(cfg) else {
        return Err(Broken::new("DNS resolution is unavailable"));
    };
    match crate::dns::lookup_server(resolver, remote).await {
        ServerEndpoints::Found(found) => Ok(found),
        ServerEndpoints::NotOffered => Err(Broken::new(format!(
            "{remote} publishes no server-to-server service (SRV target '.')"
        ))),
        ServerEndpoints::Failed(e) => Err(Broken::new(format!("DNS lookup failed: {e}"))),
    }
}

/// The socket addresses of an endpoint (asked again on every attempt, so an address change
/// heals by itself).
async fn addresses(server: &Server, endpoint: &Endpoint) -> Vec<SocketAddr> {
    let host = endpoint.host.trim_end_matches('.');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![SocketAddr::new(ip, endpoint.port)];
    }
    let Some(resolver) = server.s2s.resolver(&server.config.s2s) else {
        return Vec::new();
    };
    match crate::dns::addresses(resolver, host).await {
        crate::dns::Answer::Found(ips) => ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, endpoint.port))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_alternate_families_starting_with_ipv6() {
        let a: Vec<SocketAddr> = [
            "10.0.0.1:1",
            "10.0.0.2:1",
            "[::1]:1",
            "[::2]:1",
            "10.0.0.3:1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let order: Vec<String> = happy_eyeballs_order(a)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            order,
            [
                "[::1]:1",
                "10.0.0.1:1",
                "[::2]:1",
                "10.0.0.2:1",
                "10.0.0.3:1"
            ]
        );
    }

    #[tokio::test]
    async fn a_silent_address_does_not_hold_up_the_next_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good = listener.local_addr().unwrap();
        // TEST-NET-1: nothing answers (or the route is refused at once).
        let silent: SocketAddr = "192.0.2.1:5269".parse().unwrap();
        let mut untried = VecDeque::from([silent, good]);
        let mut failures = Vec::new();
        let started = Instant::now();
        let deadline = started + Duration::from_secs(5);
        let (_, addr) = connect_first(&mut untried, deadline, &mut failures)
            .await
            .expect("the second address answers");
        assert_eq!(addr, good);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(untried.is_empty());
        // Nothing left to try.
        assert!(
            connect_first(&mut untried, deadline, &mut failures)
                .await
                .is_none()
        );
    }
}
