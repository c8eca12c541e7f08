//! Incoming server-to-server streams: TLS, then authentication of the remote domain by SASL
//! EXTERNAL (a certificate valid for it) or dialback, then stanzas for the authenticated
//! (remote, local) domain pairs, handed to the router in the order they arrive.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hearth_xml::{StreamEvent, StreamHeader};
use minidom::Element;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::acks::Sent;
use super::wire::Wire;
use super::{NS_BIDI, NS_BIDI_FEATURE, NS_DIALBACK, NS_DIALBACK_FEATURE, NS_SERVER};
use crate::config::S2sAuth;
use crate::ns;
use crate::server::Server;
use crate::stanza::Stanza;
use crate::streams::{addressed_stanza, random_id, stream_error, xml_escape};
use crate::transport::Transport;

/// Dialback verifications one connection may have in flight.
const MAX_PENDING_VERIFICATIONS: usize = 16;

/// A dialback verification's outcome: (remote, local, valid).
type Verdict = (String, String, bool);

/// Why the stream ends: a stream error to send, or none (the peer closed or vanished).
type Close = Option<(&'static str, String)>;

/// What the connection must do when `run` returns.
enum Step {
    /// `<proceed/>` was sent: the TLS handshake follows.
    StartTls,
    Close(Close),
}

struct Incoming {
    server: Arc<Server>,
    wire: Wire,
    stream_id: String,
    /// The domain the peer says it is (stream header `from`).
    claimed: Option<String>,
    /// Remote domain authenticated by SASL EXTERNAL, valid with every local domain.
    sasl_domain: Option<String>,
    /// (remote, local) pairs authenticated by dialback.
    verified: HashSet<(String, String)>,
    pending: usize,
    verdicts: (mpsc::Sender<Verdict>, mpsc::Receiver<Verdict>),
    /// Stanzas handled since the peer enabled acknowledgements (XEP-0198), modulo 2^32.
    handled: Option<u32>,
    /// Remote domains this connection counts for (`s2s.max_connections_per_domain`).
    counted: HashSet<String>,
    /// `s2s.max_stanzas_per_second`.
    bucket: crate::rate::Bucket,
    /// The domain the stream was opened to.
    local: Option<String>,
    /// The peer asked for a bidirectional stream (XEP-0288).
    bidi: bool,
    /// Between hearth's stream header and a SASL success (after which the stream restarts):
    /// when stanzas may be written.
    open: bool,
    /// Once this stream carries hearth's stanzas too: the pool's links it serves (id, local,
    /// remote), their shared queue, and what was written.
    outbound: Option<Outbound>,
}

/// hearth's side of a bidirectional incoming stream.
struct Outbound {
    links: Vec<(u64, String, String)>,
    queue: (mpsc::Sender<Stanza>, mpsc::Receiver<Stanza>),
    sent: Sent,
}

pub(crate) async fn serve(server: Arc<Server>, tcp: TcpStream, peer: SocketAddr, direct_tls: bool) {
    let cfg = server.config.s2s.clone();
    let handshake = Duration::from_secs(server.config.c2s.handshake_timeout_secs);
    let io = if direct_tls {
        match tokio::time::timeout(handshake, server.s2s.tls.direct.accept(tcp)).await {
            Ok(Ok(tls)) => Transport::Tls(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "s2s direct TLS handshake failed");
                return;
            }
            Err(_) => return,
        }
    } else {
        Transport::Plain(tcp)
    };
    let mut conn = Incoming {
        server,
        wire: Wire::new(io, peer, cfg.max_stanza_size),
        stream_id: random_id(),
        claimed: None,
        sasl_domain: None,
        verified: HashSet::new(),
        pending: 0,
        verdicts: mpsc::channel(MAX_PENDING_VERIFICATIONS),
        handled: None,
        counted: HashSet::new(),
        bucket: crate::rate::Bucket::full(
            2.0 * f64::from(cfg.max_stanzas_per_second),
            std::time::Instant::now(),
        ),
        local: None,
        bidi: false,
        open: false,
        outbound: None,
    };
    let close = loop {
        match conn.run().await {
            Step::Close(close) => break close,
            Step::StartTls => {
                let Transport::Plain(tcp) = conn.wire.io else {
                    return;
                };
                match tokio::time::timeout(handshake, conn.server.s2s.tls.starttls.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => {
                        conn.wire =
                            Wire::new(Transport::Tls(Box::new(tls)), peer, cfg.max_stanza_size);
                        conn.stream_id = random_id();
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "s2s STARTTLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    };
    for domain in &conn.counted {
        conn.server.s2s.release_incoming(domain);
    }
    if let Some(outbound) = conn.outbound.take() {
        hand_back(&conn.server, outbound).await;
    }
    let mut wire = conn.wire;
    match close {
        Some((condition, text)) => {
            tracing::debug!(%peer, condition, text, "closing incoming s2s stream");
            wire.out
                .extend_from_slice(stream_error(condition, Some(&text)).as_bytes());
        }
        None => wire.out.extend_from_slice(b"</stream:stream>"),
    }
    wire.close().await;
}

impl Incoming {
    async fn run(&mut self) -> Step {
        match self.serve_stream().await {
            Ok(()) => Step::StartTls,
            Err(close) => Step::Close(close),
        }
    }

    /// Handles the stream until it ends (`Err`) or STARTTLS starts (`Ok`).
    async fn serve_stream(&mut self) -> Result<(), Close> {
        let cfg = self.server.config.s2s.clone();
        let mut shutdown = self.server.shutdown_signal();
        // A peer keeps its stream busy or sends keep-alives; silence this long means it is gone.
        let silence = Duration::from_secs(cfg.idle_timeout_secs.saturating_mul(2).max(60));
        // Until it authenticates, a stream has as long as a client has to log in.
        let handshake_deadline =
            Instant::now() + Duration::from_secs(self.server.config.c2s.handshake_timeout_secs);
        let mut last_read = Instant::now();
        loop {
            loop {
                let event = match self.wire.parser.next_event() {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break,
                    Err(e) => return Err(Some((e.condition(), e.to_string()))),
                };
                match event {
                    StreamEvent::Header(h) => self.open_stream(h)?,
                    StreamEvent::End => return Err(None),
                    StreamEvent::Element(el) => {
                        if el.is("starttls", ns::TLS) && !self.wire.io.is_encrypted() {
                            return self.proceed().await;
                        }
                        self.handle_element(el).await?;
                    }
                }
            }
            if self.wire.flush().await.is_err() {
                return Err(None);
            }
            self.wire.parser.idle_shrink();
            let authenticated = self.sasl_domain.is_some() || !self.verified.is_empty();
            let deadline = if authenticated {
                last_read + silence
            } else {
                handshake_deadline.min(last_read + silence)
            };
            let ack_due = self.outbound.as_ref().and_then(|o| o.sent.due);
            tokio::select! {
                read = self.wire.read_some() => match read {
                    Ok(true) => last_read = Instant::now(),
                    _ => return Err(None),
                },
                _ = sleep_until(ack_due.unwrap_or_else(Instant::now)), if ack_due.is_some() => {
                    if let Some(outbound) = self.outbound.as_mut() {
                        outbound.sent.request(&mut self.wire);
                    }
                }
                Some(st) = recv(&mut self.outbound), if self.open => self.write_outbound(st),
                Some((remote, local, valid)) = self.verdicts.1.recv() => {
                    self.pending -= 1;
                    self.dialback_verdict(remote, local, valid)?;
                }
                _ = sleep_until(deadline) => {
                    let why = if authenticated { "no traffic on this stream" } else { "authentication took too long" };
                    return Err(Some(("connection-timeout", why.into())));
                }
                _ = shutdown.changed() => {
                    return Err(Some(("system-shutdown", "the server is shutting down".into())));
                }
            }
        }
    }

    fn open_stream(&mut self, h: StreamHeader) -> Result<(), Close> {
        let to = h.to.as_deref().map(str::to_ascii_lowercase);
        let local = to
            .clone()
            .unwrap_or_else(|| self.server.domain().to_string());
        self.claimed = h.from.as_deref().map(str::to_ascii_lowercase);
        self.wire.send_header(
            Some(&local),
            self.claimed.as_deref(),
            Some(self.stream_id.clone()),
        );
        if h.name != "stream" || h.ns != ns::STREAM || h.default_ns.as_deref() != Some(NS_SERVER) {
            return Err(Some((
                "invalid-namespace",
                "expected <stream:stream> in jabber:server".into(),
            )));
        }
        if h.version.as_deref() != Some("1.0") {
            return Err(Some((
                "unsupported-version",
                "hearth speaks XMPP 1.0 (RFC 6120)".into(),
            )));
        }
        if !self.server.serves_domain(&local) {
            return Err(Some((
                "host-unknown",
                format!("this server does not serve {local}"),
            )));
        }
        if let Some(remote) = &self.claimed
            && self.server.config.s2s.policy(remote) == S2sAuth::Refuse
        {
            tracing::info!(peer = %self.wire.peer, %remote, "refusing a stream from a blocked domain");
            return Err(Some((
                "policy-violation",
                format!("{local} does not federate with {remote}"),
            )));
        }
        self.send_features();
        self.open = true;
        Ok(())
    }

    fn send_features(&mut self) {
        let cfg = &self.server.config.s2s;
        let mut features = Element::bare("features", ns::STREAM);
        // Children only: the wrapper is written with the stream prefix.
        if !self.wire.io.is_encrypted() {
            let mut starttls = Element::bare("starttls", ns::TLS);
            if cfg.require_encryption {
                starttls.append_child(Element::bare("required", ns::TLS));
            }
            features.append_child(starttls);
        }
        if self.sasl_domain.is_none() && self.wire.io.is_encrypted() && !self.bidi {
            features.append_child(Element::bare("bidi", NS_BIDI_FEATURE));
        }
        if self.sasl_domain.is_none() {
            if let Some(remote) = &self.claimed
                && self.certificate_valid_for(remote)
            {
                features.append_child(
                    Element::builder("mechanisms", ns::SASL)
                        .append(Element::builder("mechanism", ns::SASL).append("EXTERNAL"))
                        .build(),
                );
            }
            let dialback_allowed = self
                .claimed
                .as_deref()
                .is_none_or(|remote| cfg.policy(remote) == S2sAuth::Any);
            if dialback_allowed && (self.wire.io.is_encrypted() || !cfg.require_encryption) {
                features.append_child(
                    Element::builder("dialback", NS_DIALBACK_FEATURE)
                        .append(Element::bare("errors", NS_DIALBACK_FEATURE))
                        .build(),
                );
            }
        }
        // Acknowledgements (XEP-0198, without resumption) once the stream is encrypted: the
        // peer enables them after authenticating, and resends what a broken link never confirmed.
        if self.wire.io.is_encrypted() {
            features.append_child(Element::bare("sm", crate::sm::NS));
        }
        self.wire.out.extend_from_slice(b"<stream:features>");
        for feature in features.children() {
            self.wire.send_element(feature);
        }
        self.wire.out.extend_from_slice(b"</stream:features>");
    }

    fn certificate_valid_for(&self, domain: &str) -> bool {
        self.server
            .s2s
            .tls
            .check(self.wire.io.peer_certificates(), domain)
            .is_ok()
    }

    /// Answers `<starttls/>`; the caller then runs the handshake.
    async fn proceed(&mut self) -> Result<(), Close> {
        self.wire
            .out
            .extend_from_slice(format!("<proceed xmlns='{}'/>", ns::TLS).as_bytes());
        if self.wire.flush().await.is_err() {
            return Err(None);
        }
        // Bytes pipelined after <starttls/> would be taken as if they came over TLS.
        if self.wire.parser.has_buffered() {
            tracing::warn!(peer = %self.wire.peer, "server sent data after <starttls/> before the TLS handshake; closing");
            return Err(None);
        }
        Ok(())
    }

    async fn handle_element(&mut self, el: Element) -> Result<(), Close> {
        let encrypted = self.wire.io.is_encrypted();
        let require = self.server.config.s2s.require_encryption;
        if el.is("auth", ns::SASL) {
            return self.sasl_external(&el);
        }
        if el.ns() == NS_DIALBACK {
            if require && !encrypted {
                return Err(Some((
                    "policy-violation",
                    "use TLS (STARTTLS) before dialback".into(),
                )));
            }
            match el.name() {
                "result" => self.dialback_result(&el)?,
                "verify" => self.dialback_verify(&el),
                _ => {}
            }
            return Ok(());
        }
        if el.ns() == ns::CLIENT {
            self.shape().await;
            self.stanza(el).await?;
            if let Some(handled) = &mut self.handled {
                *handled = handled.wrapping_add(1);
            }
            return Ok(());
        }
        if el.ns() == crate::sm::NS {
            return self.acknowledgements(&el);
        }
        if el.is("bidi", NS_BIDI)
            && encrypted
            && self.sasl_domain.is_none()
            && self.verified.is_empty()
        {
            self.bidi = true;
            return Ok(());
        }
        Err(Some((
            "unsupported-stanza-type",
            format!("<{}/> is not expected here", el.name()),
        )))
    }

    fn sasl_external(&mut self, el: &Element) -> Result<(), Close> {
        let failure = |wire: &mut Wire, condition: &str| {
            wire.out.extend_from_slice(
                format!("<failure xmlns='{}'><{condition}/></failure>", ns::SASL).as_bytes(),
            );
        };
        if el.attr("mechanism") != Some("EXTERNAL") || !self.wire.io.is_encrypted() {
            failure(&mut self.wire, "invalid-mechanism");
            return Ok(());
        }
        let text = el.text();
        let authzid = match text.trim() {
            "" | "=" => self.claimed.clone(),
            encoded => B64
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .map(|s| s.to_ascii_lowercase()),
        };
        let Some(domain) = authzid.filter(|d| self.claimed.as_ref().is_none_or(|c| c == d)) else {
            failure(&mut self.wire, "invalid-authzid");
            return Ok(());
        };
        if self.server.config.s2s.policy(&domain) == S2sAuth::Refuse
            || !self.certificate_valid_for(&domain)
        {
            tracing::info!(peer = %self.wire.peer, %domain, "SASL EXTERNAL refused: certificate not valid for the domain");
            failure(&mut self.wire, "not-authorized");
            return Ok(());
        }
        self.count(&domain)?;
        tracing::debug!(peer = %self.wire.peer, %domain, "remote server authenticated by certificate");
        if let Some(local) = self.local.clone() {
            self.adopt(&local, &domain);
        }
        self.wire
            .out
            .extend_from_slice(format!("<success xmlns='{}'/>", ns::SASL).as_bytes());
        self.sasl_domain = Some(domain);
        self.open = false;
        self.wire.parser.reset();
        self.stream_id = random_id();
        Ok(())
    }

    /// Counts this connection for `remote` (once), refusing it beyond
    /// `s2s.max_connections_per_domain`.
    fn count(&mut self, remote: &str) -> Result<(), Close> {
        if self.counted.contains(remote) {
            return Ok(());
        }
        let max = self.server.config.s2s.max_connections_per_domain;
        if !self.server.s2s.admit_incoming(remote, max) {
            tracing::warn!(peer = %self.wire.peer, %remote, max, "too many connections from one server (s2s.max_connections_per_domain); refusing");
            return Err(Some((
                "policy-violation",
                format!("too many connections from {remote}"),
            )));
        }
        self.counted.insert(remote.to_string());
        Ok(())
    }

    /// Waits while the peer sends faster than `s2s.max_stanzas_per_second` (reading stops
    /// meanwhile, so TCP slows the peer down).
    async fn shape(&mut self) {
        let rate = f64::from(self.server.config.s2s.max_stanzas_per_second);
        if rate == 0.0 {
            return;
        }
        while !self
            .bucket
            .take(rate, 2.0 * rate, std::time::Instant::now())
        {
            tokio::time::sleep(self.bucket.until_next(rate)).await;
        }
    }

    /// `<enable/>` and `<r/>` (XEP-0198 §3, §4); resumption is not offered on server links.
    fn acknowledgements(&mut self, el: &Element) -> Result<(), Close> {
        let authenticated = self.sasl_domain.is_some() || !self.verified.is_empty();
        if el.name() == "a" {
            // For what hearth sent on a bidirectional stream.
            let h = el.attr("h").and_then(|h| h.parse().ok());
            if let (Some(h), Some(outbound)) = (h, self.outbound.as_mut()) {
                outbound
                    .sent
                    .acknowledged(h)
                    .map_err(|e| Some(("undefined-condition", e.reason)))?;
            }
            return Ok(());
        }
        let reply = match (el.name(), self.handled) {
            ("enable", None) if authenticated && self.wire.io.is_encrypted() => {
                self.handled = Some(0);
                // A peer that acknowledges stanzas is asked to, for hearth's on this stream.
                if let Some(outbound) = self.outbound.as_mut() {
                    outbound.sent.start_acks();
                }
                format!("<enabled xmlns='{}'/>", crate::sm::NS)
            }
            ("enable", _) => format!(
                "<failed xmlns='{}'><unexpected-request xmlns='{}'/></failed>",
                crate::sm::NS,
                ns::STANZAS
            ),
            ("r", Some(h)) => format!("<a xmlns='{}' h='{h}'/>", crate::sm::NS),
            _ => return Ok(()),
        };
        self.wire.out.extend_from_slice(reply.as_bytes());
        Ok(())
    }

    /// On a bidirectional stream, a newly authenticated pair becomes the pool's link from
    /// `local` to `remote`, unless hearth has one already.
    fn adopt(&mut self, local: &str, remote: &str) {
        if !self.bidi {
            return;
        }
        let max = self.server.config.s2s.max_queued_stanzas.max(1);
        let acks = self.handled.is_some();
        let outbound = self.outbound.get_or_insert_with(|| Outbound {
            links: Vec::new(),
            queue: mpsc::channel(max),
            sent: Sent::new(acks, Default::default()),
        });
        if let Some(id) = self
            .server
            .s2s
            .adopt(local, remote, &outbound.queue.0, self.wire.peer)
        {
            tracing::debug!(peer = %self.wire.peer, %local, %remote, "the peer's bidirectional stream now carries hearth's stanzas too");
            outbound
                .links
                .push((id, local.to_string(), remote.to_string()));
        }
    }

    /// Writes a stanza hearth routes to the peer (and what else waits, up to a batch).
    fn write_outbound(&mut self, st: Stanza) {
        let Some(outbound) = self.outbound.as_mut() else {
            return;
        };
        outbound.sent.write(&mut self.wire, st);
        while self.wire.out.len() < 64 * 1024 {
            match outbound.queue.1.try_recv() {
                Ok(st) => outbound.sent.write(&mut self.wire, st),
                Err(_) => break,
            }
        }
        outbound.sent.after_write(&mut self.wire);
    }

    /// `<db:result/>`: the peer claims `from` and wants to send to `to` (XEP-0220 §2.1).
    fn dialback_result(&mut self, el: &Element) -> Result<(), Close> {
        let (Some(remote), Some(local)) = (el.attr("from"), el.attr("to")) else {
            return Ok(());
        };
        let (remote, local) = (remote.to_ascii_lowercase(), local.to_ascii_lowercase());
        let key = el.text();
        let policy = self.server.config.s2s.policy(&remote);
        let refuse = |this: &mut Self, condition: &str| {
            this.wire.out.extend_from_slice(
                format!(
                    "<db:result from='{}' to='{}' type='error'><error type='cancel'><{condition} xmlns='{}'/></error></db:result>",
                    xml_escape(&local),
                    xml_escape(&remote),
                    ns::STANZAS
                )
                .as_bytes(),
            );
        };
        if !self.server.serves_domain(&local) {
            refuse(self, "item-not-found");
            return Ok(());
        }
        if policy == S2sAuth::Refuse {
            refuse(self, "not-allowed");
            return Ok(());
        }
        // A certificate valid for the domain proves it without asking back (XEP-0344 §2.4).
        if self.certificate_valid_for(&remote) {
            return self.dialback_verdict(remote, local, true);
        }
        if policy == S2sAuth::Certificate {
            tracing::info!(peer = %self.wire.peer, %remote, "dialback refused: s2s policy for this domain requires a valid certificate");
            refuse(self, "not-authorized");
            return Ok(());
        }
        if key.is_empty() || self.pending >= MAX_PENDING_VERIFICATIONS {
            refuse(self, "policy-violation");
            return Ok(());
        }
        self.pending += 1;
        let server = self.server.clone();
        let verdicts = self.verdicts.0.clone();
        let stream_id = self.stream_id.clone();
        tokio::spawn(async move {
            let valid = match super::outgoing::verify_key(
                &server, &local, &remote, &stream_id, &key,
            )
            .await
            {
                Ok(valid) => valid,
                Err(e) => {
                    tracing::info!(%remote, reason = %e.reason, "cannot verify a dialback key with the remote domain's server");
                    false
                }
            };
            let _ = verdicts.send((remote, local, valid)).await;
        });
        Ok(())
    }

    fn dialback_verdict(
        &mut self,
        remote: String,
        local: String,
        valid: bool,
    ) -> Result<(), Close> {
        if valid {
            self.count(&remote)?;
        }
        let kind = if valid { "valid" } else { "invalid" };
        self.wire.out.extend_from_slice(
            format!(
                "<db:result from='{}' to='{}' type='{kind}'/>",
                xml_escape(&local),
                xml_escape(&remote)
            )
            .as_bytes(),
        );
        if valid {
            tracing::debug!(peer = %self.wire.peer, %remote, %local, "remote server authenticated by dialback");
            self.adopt(&local, &remote);
            self.verified.insert((remote, local));
        } else {
            tracing::info!(peer = %self.wire.peer, %remote, "dialback key not confirmed by the remote domain's server; stanzas from it are refused");
        }
        Ok(())
    }

    /// `<db:verify/>`: another server asks whether a key is hearth's (XEP-0220 §2.3).
    fn dialback_verify(&mut self, el: &Element) {
        let (Some(receiving), Some(originating), Some(id)) =
            (el.attr("from"), el.attr("to"), el.attr("id"))
        else {
            return;
        };
        let valid = self.server.serves_domain(originating)
            && self
                .server
                .s2s
                .key_is_valid(receiving, originating, id, &el.text());
        self.wire.out.extend_from_slice(
            format!(
                "<db:verify from='{}' to='{}' id='{}' type='{}'/>",
                xml_escape(originating),
                xml_escape(receiving),
                xml_escape(id),
                if valid { "valid" } else { "invalid" }
            )
            .as_bytes(),
        );
    }

    async fn stanza(&mut self, el: Element) -> Result<(), Close> {
        let (stanza, remote, local) = addressed_stanza(el).map_err(Some)?;
        if !self.server.serves_domain(&local) {
            return Err(Some((
                "host-unknown",
                format!("this server does not serve {local}"),
            )));
        }
        let authenticated = self.sasl_domain.as_deref() == Some(remote.as_str())
            || self.verified.contains(&(remote.clone(), local));
        if !authenticated {
            tracing::info!(peer = %self.wire.peer, %remote, "stanza from a domain this stream did not authenticate");
            return Err(Some((
                "invalid-from",
                format!("this stream is not authenticated for {remote}"),
            )));
        }
        self.server.process_from_remote(stanza, remote).await;
        Ok(())
    }
}

async fn recv(outbound: &mut Option<Outbound>) -> Option<Stanza> {
    match outbound {
        Some(o) => o.queue.1.recv().await,
        None => std::future::pending().await,
    }
}

/// The stream ends: its links leave the pool, and what it did not deliver for certain (not
/// acknowledged, or still queued) is routed again, through a link of hearth's own.
async fn hand_back(server: &Arc<Server>, outbound: Outbound) {
    let Outbound {
        links,
        queue: (_, mut queue),
        sent,
    } = outbound;
    for (id, local, remote) in &links {
        server.retire_link(local, remote, *id);
    }
    queue.close();
    let mut again = sent.unacknowledged();
    while let Ok(st) = queue.try_recv() {
        again.push_back(st);
    }
    if !again.is_empty() {
        tracing::debug!(
            count = again.len(),
            "a bidirectional stream closed with stanzas for its peer: routing them again"
        );
    }
    for st in again {
        server.send_remote(st).await;
    }
}
