//! Client-to-server streams (RFC 6120): stream headers and features, STARTTLS, SASL, resource
//! binding, then the bound session's read/write loop with keep-alive pings. One task per
//! connection; it owns its buffers and hands complete stanzas to the router.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures_util::FutureExt;
use hearth_auth::{ChannelBindings, Mechanism, SaslServer, Step};
use hearth_xml::{StreamEvent, StreamHeader, StreamParser};
use minidom::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use crate::csi::Held;
use crate::jid::Jid;
use crate::module::{FeaturePhase, IqTarget, IqType, SessionEvent};
use crate::ns;
use crate::router::{Context, Origin};
use crate::server::Server;
use crate::session::{Outgoing, Session, SessionQueue, Sessions, Urgency};
use crate::sm::{ParkOutcome, Parked, SmState};
use crate::stanza::{Condition, EnvelopeError, Kind, Stanza, StanzaError, ncname};
use crate::streams::{random_id, stream_error as stream_error_xml, xml_escape};
use crate::transport::Transport;

/// What a successful resumption hands back: the `<resumed/>` answer, the session's queue, and
/// what to send after the answer.
type Resumed = (String, SessionQueue, Resend);

/// Stanzas to send again after `<resumed/>`: the unacknowledged ones (already counted), then
/// those never sent.
struct Resend {
    unacked: Vec<Bytes>,
    unsent: Vec<Bytes>,
}

mod fast;
mod sasl2;

/// Failed SASL attempts allowed on one stream before it is closed.
const MAX_SASL_ATTEMPTS: u32 = 5;
/// Write buffer size at which queued stanzas are flushed even if more are waiting.
const WRITE_BATCH: usize = 64 * 1024;

/// Why the stream ends.
#[derive(Debug)]
enum End {
    /// The client closed its stream: answer `</stream:stream>` if still open.
    Graceful,
    /// The connection broke without the stream being closed (or stopped answering pings): a
    /// resumable session waits for its client to come back (XEP-0198).
    Lost,
    /// The session was resumed on another connection.
    Detached,
    /// Close with a stream error (RFC 6120 §4.9.3 condition).
    Error {
        condition: &'static str,
        text: Option<String>,
    },
}

fn stream_error(condition: &'static str, text: impl Into<String>) -> End {
    End::Error {
        condition,
        text: Some(text.into()),
    }
}

/// What the connection loop must do after an element was handled.
enum Action {
    Continue,
    StartTls,
    Bound(SessionQueue),
}

/// Numbers the client streams, for `Origin::Unauthenticated`.
static STREAMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

struct Conn {
    server: Arc<Server>,
    peer: SocketAddr,
    /// This stream's number among the server's client streams.
    serial: u64,
    parser: StreamParser,
    out: Vec<u8>,
    header_sent: bool,
    secure: bool,
    cb: ChannelBindings,
    /// Authenticated account (local part) once SASL succeeded.
    user: Option<String>,
    sasl: Option<(SaslServer, Mechanism)>,
    sasl_failures: u32,
    session: Option<Arc<Session>>,
    ping_id: Option<String>,
    /// Stream Management state once the client enabled it.
    sm: Option<Box<SmState>>,
    /// Stanzas held back while the client is inactive (XEP-0352).
    held: Held,
    /// The `<authenticate/>` of a SASL2 exchange in progress (XEP-0388).
    sasl2: Option<Box<Element>>,
}

pub(crate) async fn serve(server: Arc<Server>, tcp: TcpStream, peer: SocketAddr, direct_tls: bool) {
    let handshake = Duration::from_secs(server.config.c2s.handshake_timeout_secs);
    let io = if direct_tls {
        let acceptor = server.tls.direct_tls_acceptor();
        match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Transport::Tls(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "direct TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "direct TLS handshake timed out");
                return;
            }
        }
    } else {
        Transport::Plain(tcp)
    };
    run(server, io, peer, direct_tls).await;
}

/// Serves a stream carried by a web binding (WebSocket, BOSH): it arrived over HTTPS (or from a
/// TLS-terminating proxy), so it counts as encrypted and STARTTLS is not offered.
/// `slot` is its place under `c2s.max_connections`, held while it lasts.
pub(crate) async fn serve_bridged(
    server: Arc<Server>,
    pipe: crate::transport::Pipe,
    peer: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    run(server, Transport::Pipe(Box::new(pipe)), peer, true).await;
    drop(slot);
}

async fn run(server: Arc<Server>, io: Transport, peer: SocketAddr, secure: bool) {
    let c2s = &server.config.c2s;
    let limits = hearth_xml::Limits {
        max_stanza_size: c2s.max_stanza_size,
        max_depth: c2s.max_depth,
        max_attributes: c2s.max_attributes,
    };
    let mut conn = Conn {
        server: server.clone(),
        peer,
        serial: STREAMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        parser: StreamParser::new(limits),
        out: Vec::new(),
        header_sent: false,
        secure: false,
        cb: ChannelBindings {
            tls_exporter: None,
            tls_server_end_point: None,
        },
        user: None,
        sasl: None,
        sasl_failures: 0,
        session: None,
        ping_id: None,
        sm: None,
        held: Held::default(),
        sasl2: None,
    };
    if secure {
        conn.secured(&io);
    }
    conn.run(io).await;
}

impl Conn {
    async fn run(&mut self, mut io: Transport) {
        let cfg = self.server.config.c2s.clone();
        let handshake_deadline = Instant::now() + Duration::from_secs(cfg.handshake_timeout_secs);
        let mut shutdown = self.server.shutdown_signal();
        let mut queue: Option<SessionQueue> = None;
        let mut last_read = Instant::now();
        let end = 'conn: loop {
            // Handle everything already buffered before waiting for more input.
            loop {
                let event = match self.parser.next_event() {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, error = %e, "closing stream on bad XML");
                        break 'conn End::Error {
                            condition: e.condition(),
                            text: Some(e.to_string()),
                        };
                    }
                };
                match Box::pin(self.handle_event(event)).await {
                    Ok(Action::Continue) => {}
                    Ok(Action::StartTls) => match Box::pin(self.start_tls(io)).await {
                        Ok(tls) => io = tls,
                        Err(()) => return,
                    },
                    Ok(Action::Bound(q)) => queue = Some(q),
                    Err(end) => break 'conn end,
                }
            }
            if self
                .sm
                .as_ref()
                .is_some_and(|sm| sm.unacked.len() > cfg.max_queued_stanzas)
            {
                tracing::warn!(peer = %self.peer, limit = cfg.max_queued_stanzas, "client does not acknowledge its stanzas (XEP-0198); closing its stream (c2s.max_queued_stanzas)");
                break stream_error("policy-violation", "too many unacknowledged stanzas");
            }
            self.request_ack();
            if self.flush(&mut io).await.is_err() {
                break End::Lost;
            }
            // Before waiting: the parser's token buffer (8 KiB in rxml) is not kept while idle.
            self.parser.idle_shrink();
            let deadline = if self.session.is_none() {
                handshake_deadline
            } else if self.ping_id.is_some() {
                last_read + Duration::from_secs(cfg.ping_after_secs + cfg.ping_timeout_secs)
            } else {
                last_read + Duration::from_secs(cfg.ping_after_secs)
            };
            tokio::select! {
                ready = io.readable() => {
                    if ready.is_err() {
                        break End::Lost;
                    }
                    let mut rbuf = Vec::with_capacity(4096);
                    // Readiness can be spurious: then the read is not ready and we wait again.
                    match io.read_buf(&mut rbuf).now_or_never() {
                        None => {}
                        Some(Ok(0) | Err(_)) => break End::Lost,
                        Some(Ok(_)) => {
                            self.parser.feed(&rbuf);
                            last_read = Instant::now();
                            self.ping_id = None;
                        }
                    }
                },
                item = recv(&mut queue) => match item {
                    Some(Outgoing::Stanza(bytes, urgency)) => {
                        self.emit(bytes, urgency);
                        while self.out.len() < WRITE_BATCH {
                            match queue.as_mut().and_then(SessionQueue::try_recv) {
                                Some(Outgoing::Stanza(b, u)) => self.emit(b, u),
                                Some(Outgoing::Close { condition, text }) => break 'conn End::Error { condition, text },
                                Some(Outgoing::Detach) => break 'conn End::Detached,
                                None => break,
                            }
                        }
                    }
                    Some(Outgoing::Close { condition, text }) => break End::Error { condition, text },
                    Some(Outgoing::Detach) => break End::Detached,
                    None => break End::Graceful,
                },
                _ = sleep_until(deadline) => {
                    if self.session.is_none() {
                        break stream_error("connection-timeout", "authentication took too long");
                    } else if self.ping_id.is_some() {
                        tracing::debug!(peer = %self.peer, "no answer to ping; closing dead connection");
                        break stream_error("connection-timeout", "no answer to ping");
                    } else {
                        self.send_ping();
                    }
                },
                _ = shutdown.changed() => {
                    // What modules said as the server stops (rooms telling occupants) goes
                    // out before the stream ends.
                    while let Some(Outgoing::Stanza(bytes, urgency)) =
                        queue.as_mut().and_then(SessionQueue::try_recv)
                    {
                        self.emit(bytes, urgency);
                    }
                    break stream_error("system-shutdown", "the server is shutting down");
                }
            }
        };
        Box::pin(self.close(&mut io, end, queue)).await;
    }

    /// Marks the stream as encrypted and computes its channel-binding data.
    fn secured(&mut self, io: &Transport) {
        self.secure = true;
        if let Some(conn) = io.tls() {
            let (tls_exporter, tls_server_end_point) = self.server.tls.channel_binding_data(conn);
            self.cb = ChannelBindings {
                tls_exporter,
                tls_server_end_point,
            };
        }
    }

    async fn start_tls(&mut self, mut io: Transport) -> Result<Transport, ()> {
        self.out
            .extend_from_slice(format!("<proceed xmlns='{}'/>", ns::TLS).as_bytes());
        if self.flush(&mut io).await.is_err() {
            return Err(());
        }
        // Bytes pipelined after <starttls/> would be taken as if they came over TLS (CVE-2011-1431 class).
        if self.parser.has_buffered() {
            tracing::warn!(peer = %self.peer, "client sent data after <starttls/> before the TLS handshake; closing");
            return Err(());
        }
        let Transport::Plain(tcp) = io else {
            return Err(());
        };
        let timeout = Duration::from_secs(self.server.config.c2s.handshake_timeout_secs);
        match tokio::time::timeout(timeout, self.server.tls.starttls_acceptor().accept(tcp)).await {
            Ok(Ok(tls)) => {
                let io = Transport::Tls(Box::new(tls));
                self.secured(&io);
                self.parser.reset();
                self.header_sent = false;
                Ok(io)
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "STARTTLS handshake failed");
                Err(())
            }
            Err(_) => Err(()),
        }
    }

    async fn handle_event(&mut self, event: StreamEvent) -> Result<Action, End> {
        match event {
            StreamEvent::Header(h) => self.open_stream(h).map(|()| Action::Continue),
            StreamEvent::End => Err(End::Graceful),
            StreamEvent::Element(el) => self.handle_element(el).await,
        }
    }

    fn open_stream(&mut self, h: StreamHeader) -> Result<(), End> {
        self.send_header(h.lang.as_deref());
        if h.name != "stream" || h.ns != ns::STREAM {
            return Err(stream_error(
                "invalid-namespace",
                "expected <stream:stream> in http://etherx.jabber.org/streams",
            ));
        }
        if h.default_ns.as_deref() != Some(ns::CLIENT) {
            return Err(stream_error(
                "invalid-namespace",
                "client streams use the jabber:client namespace",
            ));
        }
        if h.version.as_deref() != Some("1.0") {
            return Err(stream_error(
                "unsupported-version",
                "hearth speaks XMPP 1.0 (RFC 6120)",
            ));
        }
        if let Some(to) = &h.to {
            let known = Jid::domain_jid(to)
                .map(|j| self.server.is_local_domain(j.domain()))
                .unwrap_or(false);
            if !known {
                return Err(stream_error(
                    "host-unknown",
                    format!("this server does not serve {to}"),
                ));
            }
        }
        self.send_features();
        Ok(())
    }

    fn send_header(&mut self, lang: Option<&str>) {
        if self.header_sent {
            return;
        }
        self.header_sent = true;
        let header = StreamHeader {
            name: "stream".into(),
            ns: ns::STREAM.into(),
            default_ns: Some(ns::CLIENT.into()),
            to: None,
            from: Some(self.server.domain().to_string()),
            id: Some(random_id()),
            version: Some("1.0".into()),
            lang: Some(lang.unwrap_or("en").to_string()),
        };
        self.out
            .extend_from_slice(hearth_xml::stream_header(&header).as_bytes());
    }

    fn send_features(&mut self) {
        let mut features: Vec<Element> = Vec::new();
        if !self.secure {
            features.push(
                Element::builder("starttls", ns::TLS)
                    .append(Element::bare("required", ns::TLS))
                    .build(),
            );
        } else if self.user.is_none() {
            let mut mechs = Element::bare("mechanisms", ns::SASL);
            for m in hearth_auth::offered_mechanisms(&self.cb, self.server.password_check()) {
                mechs.append_child(
                    Element::builder("mechanism", ns::SASL)
                        .append(m.name())
                        .build(),
                );
            }
            features.push(mechs);
            let mut cb = Element::bare("sasl-channel-binding", ns::SASL_CB);
            for t in self.cb.type_names() {
                cb.append_child(
                    Element::builder("channel-binding", ns::SASL_CB)
                        .attr(ncname("type"), t)
                        .build(),
                );
            }
            features.push(cb);
            features.push(self.sasl2_feature());
            features.extend(self.server.stream_features(FeaturePhase::PreAuth).cloned());
        } else {
            features.push(Element::bare("bind", ns::BIND));
            features.push(
                Element::builder("session", ns::SESSION)
                    .append(Element::bare("optional", ns::SESSION))
                    .build(),
            );
            if self.server.config.c2s.stream_management.enabled {
                features.push(Element::bare("sm", crate::sm::NS));
            }
            if self.server.config.c2s.csi.enabled {
                features.push(Element::bare("csi", crate::csi::NS));
            }
            features.extend(self.server.stream_features(FeaturePhase::PostAuth).cloned());
        }
        self.out.extend_from_slice(b"<stream:features>");
        for f in &features {
            hearth_xml::write_element(f, ns::CLIENT, &mut self.out);
        }
        self.out.extend_from_slice(b"</stream:features>");
    }

    async fn handle_element(&mut self, el: Element) -> Result<Action, End> {
        let ns = el.ns();
        if ns == crate::sm::NS && self.secure && self.user.is_some() {
            return self.handle_sm(el).await;
        }
        if let Some(session) = self.session.clone() {
            if ns == crate::csi::NS && self.server.config.c2s.csi.enabled {
                self.client_state(&session, el.name());
                return Ok(Action::Continue);
            }
            if let Some(sm) = self.sm.as_mut() {
                sm.received();
            }
            return self
                .handle_stanza(&session, el)
                .await
                .map(|()| Action::Continue);
        }
        match (el.name(), ns.as_str()) {
            ("starttls", ns::TLS) if !self.secure => Ok(Action::StartTls),
            ("auth", ns::SASL) if !self.secure => {
                self.sasl_failure(
                    hearth_auth::Condition::EncryptionRequired,
                    Some("use STARTTLS first"),
                );
                Ok(Action::Continue)
            }
            ("auth" | "response" | "abort", ns::SASL) if self.user.is_none() => {
                self.handle_sasl(el).await
            }
            ("authenticate" | "response" | "abort", sasl2::NS)
                if self.user.is_none() && self.secure =>
            {
                if el.name() == "authenticate" {
                    self.sasl2 = Some(Box::new(el.clone()));
                }
                self.handle_sasl(el).await
            }
            ("iq", ns::CLIENT) => self.handle_pre_session_iq(el).await,
            ("message" | "presence", ns::CLIENT) => Err(stream_error(
                "not-authorized",
                "authenticate and bind a resource before sending stanzas",
            )),
            (name, _) => Err(stream_error(
                "unsupported-stanza-type",
                format!("<{name}/> is not expected here"),
            )),
        }
    }

    /// A top-level element on a bound session: a stanza, stamped and handed to the router.
    async fn handle_stanza(&mut self, session: &Arc<Session>, el: Element) -> Result<(), End> {
        let mut stanza = match Stanza::from_element(el) {
            Ok(st) => st,
            Err(EnvelopeError::NotAStanza(name)) => {
                return Err(stream_error(
                    "unsupported-stanza-type",
                    format!("<{name}/> is not a stanza this server understands"),
                ));
            }
            Err(EnvelopeError::BadAddress { attr, stanza }) => {
                let err = StanzaError::new(Condition::JidMalformed)
                    .with_text(format!("the '{attr}' address is not a valid JID"));
                if let Some(mut reply) = stanza.error_reply(err) {
                    reply.set_to(None);
                    self.write_stanza(&reply);
                }
                return Ok(());
            }
        };
        // RFC 6120 §8.1.2.1: the server stamps 'from'; a client claiming another address is cut off.
        if let Some(from) = stanza.from()
            && *from != session.jid
            && *from != session.jid.to_bare()
        {
            tracing::warn!(jid = %session.jid, claimed = %from, "client sent a stanza with a spoofed 'from'; closing its stream");
            return Err(stream_error(
                "invalid-from",
                "the 'from' address does not match this session",
            ));
        }
        if stanza.kind() == Kind::Iq
            && matches!(stanza.type_attr(), Some("result" | "error"))
            && stanza.id().is_some()
            && stanza.id() == self.ping_id.as_deref()
        {
            return Ok(());
        }
        // The legacy session IQ (RFC 3921) some clients send after binding: a no-op.
        if stanza.kind() == Kind::Iq
            && stanza.type_attr() == Some("set")
            && stanza
                .iq_payload()
                .is_some_and(|p| p.is("session", ns::SESSION))
        {
            let mut reply = stanza.iq_result(None);
            reply.set_to(Some(session.jid.clone()));
            self.write_stanza(&reply);
            return Ok(());
        }
        stanza.set_from(Some(session.jid.clone()));
        // Boxed: the connection task's future stays small while idle (memory per session).
        Box::pin(self.server.process_from_client(session, stanza)).await;
        Ok(())
    }

    /// IQs before a resource is bound: resource binding and the legacy session after login,
    /// and pre-authentication IQs (in-band registration) that a module offers.
    async fn handle_pre_session_iq(&mut self, el: Element) -> Result<Action, End> {
        let stanza = match Stanza::from_element(el) {
            Ok(st) => st,
            Err(_) => return Err(stream_error("bad-format", "malformed IQ before binding")),
        };
        if !self.secure {
            return Err(stream_error(
                "not-authorized",
                "use STARTTLS and authenticate first",
            ));
        }
        let iq_type = match stanza.type_attr() {
            Some("get") => IqType::Get,
            Some("set") => IqType::Set,
            _ => return Ok(Action::Continue),
        };
        let Some(user) = self.user.clone() else {
            let cx = Context::new(self.server.clone(), Origin::Unauthenticated(self.serial));
            let reply = match self
                .server
                .call_iq(cx, iq_type, IqTarget::Unauthenticated, &stanza)
                .await
            {
                Some(Ok(payload)) => Some(stanza.iq_result(payload)),
                Some(Err(err)) => stanza.error_reply(err),
                None => {
                    return Err(stream_error(
                        "not-authorized",
                        "authenticate before sending stanzas",
                    ));
                }
            };
            if let Some(mut reply) = reply {
                reply.set_from(None);
                self.write_stanza(&reply);
            }
            return Ok(Action::Continue);
        };
        let payload = stanza.iq_payload().cloned();
        match (iq_type, payload) {
            (IqType::Set, Some(p)) if p.is("bind", ns::BIND) => self.bind(&user, &stanza, &p).await,
            (IqType::Set, Some(p)) if p.is("session", ns::SESSION) => {
                self.write_stanza(&stanza.iq_result(None));
                Ok(Action::Continue)
            }
            _ => Err(stream_error(
                "not-authorized",
                "bind a resource before sending stanzas",
            )),
        }
    }

    async fn bind(&mut self, user: &str, iq: &Stanza, payload: &Element) -> Result<Action, End> {
        let requested = payload
            .get_child("resource", ns::BIND)
            .map(Element::text)
            .filter(|r| !r.trim().is_empty());
        let account = Jid::parse(&format!("{user}@{}", self.server.domain())).map_err(|_| {
            stream_error("internal-server-error", "account name is not a valid JID")
        })?;
        let resource = requested.unwrap_or_else(Sessions::generate_resource);
        let jid = match account.with_resource(&resource) {
            Ok(j) => j,
            Err(_) => {
                let err = StanzaError::new(Condition::BadRequest)
                    .with_text("this resource is not allowed (RFC 7622)");
                if let Some(reply) = iq.error_reply(err) {
                    self.write_stanza(&reply);
                }
                return Ok(Action::Continue);
            }
        };
        let mut reply = iq.iq_result(Some(
            Element::builder("bind", ns::BIND)
                .append(
                    Element::builder("jid", ns::BIND)
                        .append(jid.to_string())
                        .build(),
                )
                .build(),
        ));
        reply.set_to(None);
        self.write_stanza(&reply);
        Ok(Action::Bound(self.bind_session(jid).await))
    }

    /// Binds `jid` to this connection (classic bind and Bind2).
    async fn bind_session(&mut self, jid: Jid) -> SessionQueue {
        let (session, queue) = self
            .server
            .sessions
            .bind(jid.clone(), self.server.config.c2s.max_queued_stanzas);
        tracing::info!(jid = %jid, peer = %self.peer, "session bound");
        self.session = Some(session);
        self.server.session_event(SessionEvent::Bound(jid)).await;
        queue
    }

    async fn handle_sasl(&mut self, el: Element) -> Result<Action, End> {
        let step = match el.name() {
            "abort" => {
                self.sasl = None;
                self.sasl_failure(hearth_auth::Condition::Aborted, None);
                return Ok(Action::Continue);
            }
            "auth" | "authenticate" => {
                if self.throttled(None) {
                    return Ok(Action::Continue);
                }
                if el.name() == "authenticate"
                    && let Some(ht) = self.fast_mechanism(el.attr("mechanism"))
                {
                    return self.fast_authenticate(ht, &el).await;
                }
                let offered =
                    hearth_auth::offered_mechanisms(&self.cb, self.server.password_check());
                let Some(mech) = el
                    .attr("mechanism")
                    .and_then(Mechanism::from_name)
                    .filter(|m| offered.contains(m))
                else {
                    self.sasl_failure(hearth_auth::Condition::InvalidMechanism, None);
                    return Ok(Action::Continue);
                };
                // SASL2 carries the initial response in its own element (XEP-0388 §2.2).
                let initial = match el.get_child("initial-response", sasl2::NS) {
                    Some(r) => r.text(),
                    None if el.name() == "authenticate" => String::new(),
                    None => el.text(),
                };
                let Some(data) = decode_sasl(&initial) else {
                    self.sasl_failure(hearth_auth::Condition::IncorrectEncoding, None);
                    return Ok(Action::Continue);
                };
                let mut sasl = SaslServer::new(mech, self.cb.clone());
                let step = sasl.start(&data);
                self.sasl = Some((sasl, mech));
                step
            }
            _ => {
                let Some((sasl, _)) = self.sasl.as_mut() else {
                    return Err(stream_error(
                        "policy-violation",
                        "SASL response without an exchange in progress",
                    ));
                };
                let Some(data) = decode_sasl(&el.text()) else {
                    self.sasl = None;
                    self.sasl_failure(hearth_auth::Condition::IncorrectEncoding, None);
                    return Ok(Action::Continue);
                };
                sasl.step(&data)
            }
        };
        self.sasl_step(step).await
    }

    /// Drives the SASL exchange through credential look-ups until it needs the client again.
    async fn sasl_step(
        &mut self,
        mut step: Result<Step, hearth_auth::SaslFailure>,
    ) -> Result<Action, End> {
        let ip = self.peer.ip();
        loop {
            match step {
                Ok(Step::NeedCredentials { username }) => {
                    if self.throttled(Some(&username)) {
                        self.sasl = None;
                        return Ok(Action::Continue);
                    }
                    if let Some(directory) = self.server.directory.clone() {
                        let Some((sasl, _)) = self.sasl.as_mut() else {
                            return Ok(Action::Continue);
                        };
                        step = sasl.check_with_directory(&directory).await;
                        if let Ok(Step::Success { username, .. }) = &step
                            && let Err(e) =
                                crate::accounts::ensure_exists(&self.server, username).await
                        {
                            tracing::error!(account = %username, error = %e, "cannot create the local account of a directory user");
                            self.sasl = None;
                            self.sasl_failure(hearth_auth::Condition::TemporaryAuthFailure, None);
                            return Ok(Action::Continue);
                        }
                        continue;
                    }
                    let creds = match self.server.store.credentials(&username).await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::error!(error = %e, "credential look-up failed");
                            self.sasl = None;
                            self.sasl_failure(hearth_auth::Condition::TemporaryAuthFailure, None);
                            return Ok(Action::Continue);
                        }
                    };
                    let Some((sasl, _)) = self.sasl.as_mut() else {
                        return Ok(Action::Continue);
                    };
                    step = sasl.credentials(creds.as_ref());
                }
                Ok(Step::Challenge(data)) => {
                    let ns = if self.sasl2.is_some() {
                        sasl2::NS
                    } else {
                        ns::SASL
                    };
                    self.out.extend_from_slice(
                        format!("<challenge xmlns='{ns}'>{}</challenge>", B64.encode(data))
                            .as_bytes(),
                    );
                    return Ok(Action::Continue);
                }
                Ok(Step::Success {
                    username,
                    additional,
                }) => {
                    let mech = self.sasl.take().map(|(_, m)| m.name()).unwrap_or("?");
                    if self.refuse_if_disabled(&username).await {
                        return Ok(Action::Continue);
                    }
                    self.server.throttle.record_success(&username);
                    tracing::info!(account = %username, %ip, mechanism = mech, "authenticated");
                    if let Some(authenticate) = self.sasl2.take() {
                        return self
                            .sasl2_success(username, additional, *authenticate, None)
                            .await;
                    }
                    let data = additional.map(|d| B64.encode(d)).unwrap_or_default();
                    self.out.extend_from_slice(
                        format!("<success xmlns='{}'>{data}</success>", ns::SASL).as_bytes(),
                    );
                    self.user = Some(username);
                    // RFC 6120 §6.4.6: a new stream follows; the client may already have sent its header.
                    self.parser.reset();
                    self.header_sent = false;
                    return Ok(Action::Continue);
                }
                Err(failure) => {
                    self.sasl = None;
                    // A directory that is down is nobody's guessing.
                    if failure.condition != hearth_auth::Condition::TemporaryAuthFailure {
                        self.server
                            .throttle
                            .record_failure(ip, failure.username.as_deref());
                    }
                    tracing::info!(%ip, account = failure.username.as_deref().unwrap_or("-"), condition = failure.condition.element_name(), "authentication failed");
                    self.sasl_failure(failure.condition, failure.text);
                    self.sasl_failures += 1;
                    if self.sasl_failures >= MAX_SASL_ATTEMPTS {
                        return Err(stream_error(
                            "policy-violation",
                            "too many failed authentication attempts",
                        ));
                    }
                    return Ok(Action::Continue);
                }
            }
        }
    }

    /// Refuses a login with the right credentials to an account an administrator disabled
    /// (`account-disabled`, RFC 6120 §6.5.1). Returns whether it did.
    async fn refuse_if_disabled(&mut self, username: &str) -> bool {
        let ip = self.peer.ip();
        let (condition, text) = match self.server.store.is_disabled(username).await {
            Ok(false) => return false,
            Ok(true) => {
                tracing::info!(account = %username, %ip, "login refused: the account is disabled");
                (
                    hearth_auth::Condition::AccountDisabled,
                    "this account is disabled; ask the server's administrator",
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "looking up whether the account is disabled failed");
                (
                    hearth_auth::Condition::TemporaryAuthFailure,
                    "the account database is unavailable; try again",
                )
            }
        };
        self.sasl_failure(condition, Some(text));
        true
    }

    /// Whether logins from this address (or to `account`) are refused for now after too many
    /// failures; if so, says so to the client.
    fn throttled(&mut self, account: Option<&str>) -> bool {
        let ip = self.peer.ip();
        if self.server.throttle.check(ip, account) {
            return false;
        }
        match account {
            Some(account) => {
                tracing::warn!(%ip, account, "too many failed logins for this account; refusing for now")
            }
            None => {
                tracing::warn!(%ip, "too many failed logins from this address; refusing for now")
            }
        }
        self.sasl_failure(
            hearth_auth::Condition::TemporaryAuthFailure,
            Some("too many failed attempts; try again later"),
        );
        true
    }

    fn sasl_failure(&mut self, condition: hearth_auth::Condition, text: Option<&str>) {
        let text = text
            .map(|t| format!("<text xml:lang='en'>{}</text>", xml_escape(t)))
            .unwrap_or_default();
        let condition = condition.element_name();
        // SASL2 wraps the same conditions, in the SASL namespace, in its own <failure/>.
        let failure = match self.sasl2.take() {
            Some(_) => format!(
                "<failure xmlns='{}'><{condition} xmlns='{}'/>{text}</failure>",
                sasl2::NS,
                ns::SASL
            ),
            None => format!(
                "<failure xmlns='{}'><{condition}/>{text}</failure>",
                ns::SASL
            ),
        };
        self.out.extend_from_slice(failure.as_bytes());
    }

    fn send_ping(&mut self) {
        let Some(session) = &self.session else { return };
        let id = format!("ping-{}", random_id());
        let mut ping = Stanza::new(Kind::Iq);
        ping.set_type(Some("get"));
        ping.set_id(Some(&id));
        ping.set_from(Jid::domain_jid(self.server.domain()).ok());
        ping.set_to(Some(session.jid.clone()));
        ping.element_mut()
            .append_child(Element::bare("ping", ns::PING));
        self.write_stanza(&ping);
        self.ping_id = Some(id);
    }

    /// Writes a stanza the connection itself generates (counted for Stream Management).
    fn write_stanza(&mut self, stanza: &Stanza) {
        self.write_counted(stanza.to_client_bytes());
    }

    fn write_counted(&mut self, bytes: Bytes) {
        self.out.extend_from_slice(&bytes);
        if let Some(sm) = self.sm.as_mut() {
            sm.sent(bytes);
        }
    }

    /// Writes a routed stanza, or holds it while the client is inactive and it can wait.
    fn emit(&mut self, bytes: Bytes, urgency: Urgency) {
        let inactive = self.session.as_ref().is_some_and(|s| s.is_inactive());
        if inactive {
            if urgency != Urgency::Urgent {
                self.held.hold(bytes, urgency);
                if self.held.len() > self.server.config.c2s.csi.max_held_stanzas {
                    self.release_held("limit reached");
                }
                return;
            }
            self.release_held("urgent stanza");
        }
        self.write_counted(bytes);
    }

    fn release_held(&mut self, why: &'static str) {
        let count = self.held.len();
        if count == 0 {
            return;
        }
        for bytes in self.held.take() {
            self.write_counted(bytes);
        }
        tracing::debug!(peer = %self.peer, count, why, superseded_presences = self.held.superseded, "sending stanzas held for an inactive client");
    }

    /// XEP-0352 `<active/>` and `<inactive/>`.
    fn client_state(&mut self, session: &Session, state: &str) {
        match state {
            "inactive" => session.set_inactive(true),
            "active" => {
                session.set_inactive(false);
                self.release_held("client active");
            }
            _ => {}
        }
    }

    /// Asks the client to acknowledge what it was sent, one request at a time.
    fn request_ack(&mut self) {
        if let Some(sm) = self.sm.as_mut()
            && !sm.awaiting_ack
            && !sm.unacked.is_empty()
            && !self.out.is_empty()
        {
            sm.awaiting_ack = true;
            self.out
                .extend_from_slice(format!("<r xmlns='{}'/>", crate::sm::NS).as_bytes());
        }
    }

    fn sm_failed(&mut self, condition: &str) {
        self.out.extend_from_slice(sm_failed(condition).as_bytes());
    }

    /// `<enable/>` (XEP-0198 §3), also inline in Bind2: the `<enabled/>` or `<failed/>` answer.
    fn sm_enable(&mut self, el: &Element) -> String {
        let cfg = &self.server.config.c2s.stream_management;
        if !cfg.enabled {
            return sm_failed("feature-not-implemented");
        }
        let Some(session) = self.session.clone().filter(|_| self.sm.is_none()) else {
            return sm_failed("unexpected-request");
        };
        let resume = matches!(el.attr("resume"), Some("true" | "1"));
        let max = el
            .attr("max")
            .and_then(|m| m.parse::<u64>().ok())
            .filter(|m| *m > 0)
            .map_or(cfg.resume_timeout_secs, |m| m.min(cfg.resume_timeout_secs));
        let id = resume.then(random_id);
        let mut enabled = format!("<enabled xmlns='{}'", crate::sm::NS);
        if let Some(id) = &id {
            self.server.resumable.register(id, session);
            enabled.push_str(&format!(" id='{id}' resume='true' max='{max}'"));
        }
        enabled.push_str("/>");
        self.sm = Some(Box::new(SmState::new(id, Duration::from_secs(max))));
        enabled
    }

    /// Stream Management nonzas (XEP-0198): enable, resume, ack requests and acks.
    async fn handle_sm(&mut self, el: Element) -> Result<Action, End> {
        let h_attr = || el.attr("h").and_then(|h| h.parse::<u32>().ok());
        match el.name() {
            "enable" => {
                let answer = self.sm_enable(&el);
                self.out.extend_from_slice(answer.as_bytes());
                Ok(Action::Continue)
            }
            "r" => {
                match self.sm.as_ref() {
                    Some(sm) => {
                        let a = format!("<a xmlns='{}' h='{}'/>", crate::sm::NS, sm.h_in);
                        self.out.extend_from_slice(a.as_bytes());
                    }
                    None => self.sm_failed("unexpected-request"),
                }
                Ok(Action::Continue)
            }
            "a" => {
                let (Some(sm), Some(h)) = (self.sm.as_mut(), h_attr()) else {
                    return Err(stream_error(
                        "undefined-condition",
                        "acknowledgement without Stream Management enabled, or without a valid 'h'",
                    ));
                };
                sm.awaiting_ack = false;
                self.ack(h)
            }
            "resume" => {
                let (Some(user), None, Some(previd), Some(h)) = (
                    self.user.clone(),
                    &self.session,
                    el.attr("previd"),
                    h_attr(),
                ) else {
                    self.sm_failed("unexpected-request");
                    return Ok(Action::Continue);
                };
                match self.resume(&user, previd, h).await? {
                    Ok((resumed, queue, resend)) => {
                        self.out.extend_from_slice(resumed.as_bytes());
                        self.resend(resend);
                        Ok(Action::Bound(queue))
                    }
                    Err(failed) => {
                        self.out.extend_from_slice(failed.as_bytes());
                        Ok(Action::Continue)
                    }
                }
            }
            _ => Err(stream_error(
                "unsupported-stanza-type",
                format!("<{}/> is not a Stream Management element", el.name()),
            )),
        }
    }

    fn ack(&mut self, h: u32) -> Result<Action, End> {
        let Some(sm) = self.sm.as_mut() else {
            return Ok(Action::Continue);
        };
        if sm.ack(h).is_err() {
            let sent = sm.h_out;
            return Err(self.handled_count_too_high(h, sent));
        }
        Ok(Action::Continue)
    }

    /// XEP-0198 §4: the client acknowledged more than it was sent.
    fn handled_count_too_high(&mut self, h: u32, sent: u32) -> End {
        tracing::warn!(peer = %self.peer, h, sent, "client acknowledged more stanzas than were sent; closing its stream");
        self.out.extend_from_slice(
            format!(
                "<stream:error><undefined-condition xmlns='{}'/><handled-count-too-high xmlns='{}' h='{h}' send-count='{sent}'/></stream:error>",
                ns::STREAMS_ERRORS,
                crate::sm::NS
            )
            .as_bytes(),
        );
        // The error is written; what follows is the stream's end tag.
        End::Graceful
    }

    /// Takes over a parked (or just detached) session (XEP-0198 §5), also inline in SASL2:
    /// `Ok(Err(failed))` when there is none to resume.
    async fn resume(
        &mut self,
        user: &str,
        previd: &str,
        h: u32,
    ) -> Result<Result<Resumed, String>, End> {
        let Some(parked) = self.server.resumable.take(previd, user).await else {
            tracing::debug!(peer = %self.peer, account = %user, "resumption refused: unknown or expired session");
            return Ok(Err(sm_failed("item-not-found")));
        };
        let Parked {
            session,
            queue,
            mut sm,
            unsent,
        } = parked;
        if sm.ack(h).is_err() {
            let sent = sm.h_out;
            let parked = Parked {
                session,
                queue,
                sm,
                unsent,
            };
            self.server
                .end_parked(parked, "bad acknowledgement on resumption")
                .await;
            return Err(self.handled_count_too_high(h, sent));
        }
        session.set_hibernated(false);
        session.set_inactive(false);
        self.server.resumable.register(previd, session.clone());
        tracing::info!(jid = %session.jid, peer = %self.peer, "session resumed");
        let resumed = format!(
            "<resumed xmlns='{}' previd='{previd}' h='{}'/>",
            crate::sm::NS,
            sm.h_in
        );
        let resend = Resend {
            unacked: sm.unacked.iter().cloned().collect(),
            unsent,
        };
        self.session = Some(session);
        self.sm = Some(sm);
        Ok(Ok((resumed, queue, resend)))
    }

    fn resend(&mut self, resend: Resend) {
        for bytes in &resend.unacked {
            self.out.extend_from_slice(bytes);
        }
        for bytes in resend.unsent {
            self.write_counted(bytes);
        }
    }

    async fn flush(&mut self, io: &mut Transport) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = async {
            io.write_all(&self.out).await?;
            io.flush().await
        }
        .await;
        // Idle sessions keep no write buffer; a busy one re-allocates, which costs little
        // next to encrypting what it writes.
        self.out = Vec::new();
        r
    }

    async fn close(&mut self, io: &mut Transport, end: End, queue: Option<SessionQueue>) {
        match &end {
            End::Error { condition, text } => {
                self.send_header(None);
                self.out
                    .extend_from_slice(stream_error_xml(condition, text.as_deref()).as_bytes());
            }
            End::Detached => self.out.extend_from_slice(
                stream_error_xml(
                    "conflict",
                    Some("the session was resumed on another connection"),
                )
                .as_bytes(),
            ),
            End::Graceful if self.header_sent => self.out.extend_from_slice(b"</stream:stream>"),
            End::Graceful | End::Lost => {}
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.flush(io).await;
            let _ = io.shutdown().await;
        })
        .await;
        let (Some(session), Some(mut queue)) = (self.session.take(), queue) else {
            return;
        };
        let sm = self.sm.take();
        let keep = match &end {
            End::Lost | End::Detached => true,
            // A dead connection is a lost one; at shutdown the session is saved for the restart.
            End::Error { condition, .. } => {
                matches!(*condition, "connection-timeout" | "system-shutdown")
            }
            End::Graceful => false,
        };
        let sm = match sm {
            Some(sm) if sm.id.is_some() && keep => {
                let id = sm.id.clone().unwrap_or_default();
                let parked = Parked {
                    session,
                    queue,
                    sm,
                    unsent: self.held.take().collect(),
                };
                return self.park(id, parked);
            }
            Some(sm) => {
                if let Some(id) = &sm.id {
                    self.server.resumable.forget(id);
                }
                Some(sm)
            }
            None => None,
        };
        let reason = match &end {
            End::Graceful => "closed by client",
            End::Lost => "connection lost",
            End::Detached => "resumed elsewhere",
            End::Error { condition, .. } => condition,
        };
        if self.held.held > 0 {
            tracing::debug!(jid = %session.jid, held = self.held.held, superseded_presences = self.held.superseded, "stanzas held back while the client was inactive");
        }
        let mut leftover: Vec<Bytes> = sm.map(|sm| sm.unacked.into()).unwrap_or_default();
        leftover.extend(self.held.take());
        self.server
            .end_session(&session, reason, &mut queue, &mut leftover)
            .await;
    }

    fn park(&self, id: String, parked: Parked) {
        let jid = parked.session.jid.clone();
        let timeout = parked.sm.timeout;
        match self.server.resumable.park(&id, parked) {
            ParkOutcome::Parked { generation } => {
                tracing::info!(%jid, peer = %self.peer, timeout_secs = timeout.as_secs(), "connection lost; session kept for resumption");
                self.server.expire_later(id, generation, timeout);
            }
            ParkOutcome::HandedOver => {
                tracing::debug!(%jid, "session handed to the connection resuming it")
            }
        }
    }
}

/// A Stream Management `<failed/>` with a stanza error condition (XEP-0198 §3, §5).
fn sm_failed(condition: &str) -> String {
    format!(
        "<failed xmlns='{}'><{condition} xmlns='{}'/></failed>",
        crate::sm::NS,
        ns::STANZAS
    )
}

/// Decodes a SASL payload: `=` is an empty response (RFC 6120 §6.4.2).
fn decode_sasl(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text == "=" || text.is_empty() {
        return Some(Vec::new());
    }
    B64.decode(text).ok()
}

async fn recv(queue: &mut Option<SessionQueue>) -> Option<Outgoing> {
    match queue {
        Some(q) => q.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection task lives as long as the session: its size is paid per idle connection.
    #[tokio::test]
    async fn connection_task_is_small() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = crate::config::Config::parse(&format!(
            "domain = \"localhost\"\ndata_dir = \"{}\"",
            dir.path().display()
        ))
        .unwrap();
        let store = hearth_store::Store::open(&cfg.sqlite_path(), Default::default()).unwrap();
        let tls = crate::tls::Tls::load(&cfg).unwrap();
        let server = Server::new(cfg, store, tls, Default::default()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        let task = serve(server, tcp, peer, false);
        let size = std::mem::size_of_val(&task);
        println!(
            "c2s task future: {size} bytes; Conn: {} bytes; StreamParser: {} bytes",
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<StreamParser>()
        );
        assert!(size < 4096, "{size}");
        drop(client);
    }
}
