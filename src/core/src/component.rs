//! External components (XEP-0114): a gateway or bot connects to `components.listen`, names the
//! domain it serves in its stream header (`jabber:component:accept`), proves the shared secret
//! with `<handshake/>` (SHA-1 of the stream id and the secret, so the secret never crosses the
//! wire), and then exchanges stanzas for that domain.
//!
//! Each configured domain is a service domain of the router: stanzas to it or to any JID at it
//! go to the component's connection, or are answered `service-unavailable` while it is not
//! connected. Stanzas from a component must come from its domain and are routed like those of
//! another server (local users with their usual hooks, MUC, other components, federation).
//! One connection per domain: a second one is refused with `conflict`, so the component that
//! works keeps working and a misconfigured second instance cannot take its traffic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_xml::{StreamEvent, StreamHeader};
use minidom::Element;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::ComponentsConfig;
use crate::module::{DiscoItem, Registrations, ServiceFn};
use crate::ns;
use crate::s2s::wire::{Broken, Wire};
use crate::server::Server;
use crate::stanza::{Condition, Stanza, StanzaError};
use crate::streams::{addressed_stanza, random_id, stream_error};
use crate::transport::Transport;

pub const NS_ACCEPT: &str = "jabber:component:accept";

/// Connections open at once on the component listeners: authenticated ones are at most one per
/// configured domain, the rest are handshakes in progress.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// Why a component's stream ends: a stream error to send, or none (it closed or vanished).
type Close = Option<(&'static str, String)>;

/// The connected components: the queue of each one's connection, by domain.
#[derive(Default)]
pub struct Components {
    connected: Mutex<HashMap<String, mpsc::Sender<Stanza>>>,
}

impl Components {
    /// Makes `queue` the connection of `domain`; `false` when another connection has it.
    fn attach(&self, domain: &str, queue: &mpsc::Sender<Stanza>) -> bool {
        let mut connected = self.connected.lock().expect("components lock");
        if connected.get(domain).is_some_and(|q| !q.is_closed()) {
            return false;
        }
        connected.insert(domain.to_string(), queue.clone());
        true
    }

    /// Removes `queue` as the connection of `domain` (if it still is).
    fn detach(&self, domain: &str, queue: &mpsc::Sender<Stanza>) {
        let mut connected = self.connected.lock().expect("components lock");
        if connected.get(domain).is_some_and(|q| q.same_channel(queue)) {
            connected.remove(domain);
        }
    }

    fn queue(&self, domain: &str) -> Option<mpsc::Sender<Stanza>> {
        self.connected
            .lock()
            .expect("components lock")
            .get(domain)
            .cloned()
    }
}

/// Makes each configured component's domain a service domain, listed in the server's
/// disco#items; fails when a module serves the domain already.
pub(crate) fn register(config: &ComponentsConfig, regs: &mut Registrations) -> anyhow::Result<()> {
    for (domain, host) in &config.hosts {
        anyhow::ensure!(
            !regs.services.contains_key(domain),
            "components.hosts.\"{domain}\": a module serves this domain already (such as group \
             chat on conference.* or the bytestream proxy on proxy.*): give the component \
             another domain, or turn that module off"
        );
        let service_domain = domain.clone();
        let service: ServiceFn = Arc::new(move |cx, stanza| {
            let domain = service_domain.clone();
            Box::pin(async move { deliver(&cx.server, &domain, stanza).await })
        });
        regs.services.insert(domain.clone(), service);
        regs.disco_items.push(DiscoItem {
            jid: domain.clone(),
            node: None,
            name: host.name.clone(),
        });
    }
    Ok(())
}

/// Hands a stanza for `domain` to its component's connection.
async fn deliver(server: &Arc<Server>, domain: &str, stanza: Stanza) {
    let Some(queue) = server.components.queue(domain) else {
        let err = StanzaError::new(Condition::ServiceUnavailable)
            .with_text(format!("{domain} is not connected"));
        return server.undeliverable(&stanza, err).await;
    };
    match queue.try_send(stanza) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(stanza)) => {
            let limit = server.config.components.max_queued_stanzas;
            tracing::warn!(component = %domain, limit, "too many stanzas waiting for a component (components.max_queued_stanzas); bouncing");
            let err = StanzaError::new(Condition::ResourceConstraint)
                .with_text(format!("too many stanzas are waiting for {domain}"));
            server.bounce(&stanza, err).await;
        }
        Err(mpsc::error::TrySendError::Closed(stanza)) => {
            let err = StanzaError::new(Condition::ServiceUnavailable)
                .with_text(format!("{domain} is not connected"));
            server.undeliverable(&stanza, err).await;
        }
    }
}

/// Serves one connection on a component listener.
pub(crate) async fn serve(server: Arc<Server>, tcp: TcpStream, peer: SocketAddr) {
    let cfg = &server.config.components;
    let mut wire =
        Wire::with_namespace(Transport::Plain(tcp), peer, cfg.max_stanza_size, NS_ACCEPT);
    tracing::debug!(%peer, "component connection");
    let close = match authenticate(&server, &mut wire).await {
        Err(close) => close,
        Ok(domain) => {
            let (tx, mut rx) = mpsc::channel(cfg.max_queued_stanzas.max(1));
            if server.components.attach(&domain, &tx) {
                tracing::info!(%peer, component = %domain, "component authenticated and connected");
                wire.out.extend_from_slice(b"<handshake/>");
                let close = exchange(&server, &mut wire, &domain, &mut rx).await;
                server.components.detach(&domain, &tx);
                let reason = close
                    .as_ref()
                    .map_or("the component closed its stream", |c| c.1.as_str());
                tracing::info!(%peer, component = %domain, reason, "component disconnected");
                // What it was not given is answered as for a component that is not connected.
                rx.close();
                while let Ok(stanza) = rx.try_recv() {
                    let err = StanzaError::new(Condition::ServiceUnavailable)
                        .with_text(format!("{domain} disconnected"));
                    server.undeliverable(&stanza, err).await;
                }
                close
            } else {
                tracing::warn!(%peer, component = %domain, "a second connection for a component that is connected already; refusing it (the first one stays)");
                Some(("conflict", format!("{domain} is connected already")))
            }
        }
    };
    match close {
        Some((condition, text)) => {
            tracing::debug!(%peer, condition, text, "closing component stream");
            wire.out
                .extend_from_slice(stream_error(condition, Some(&text)).as_bytes());
        }
        None => wire.out.extend_from_slice(b"</stream:stream>"),
    }
    wire.close().await;
}

/// Reads the component's stream header and handshake (within `c2s.handshake_timeout_secs`),
/// answering the header; the component's domain when its secret is right.
async fn authenticate(server: &Server, wire: &mut Wire) -> Result<String, Close> {
    let peer = wire.peer;
    let deadline = Instant::now() + Duration::from_secs(server.config.c2s.handshake_timeout_secs);
    let header = match wire.next_event(deadline).await {
        Ok(StreamEvent::Header(h)) => h,
        Ok(_) => return Err(None),
        Err(broken) => {
            tracing::debug!(%peer, reason = %broken.reason, "component connection closed before its stream header");
            // RFC 6120 §4.9.1.2: an error before the stream opens follows a header of ours.
            send_header(wire, None, &random_id());
            return Err(timeout_error(&broken));
        }
    };
    let requested = header.to.as_deref().map(str::to_ascii_lowercase);
    let stream_id = random_id();
    send_header(wire, requested.as_deref(), &stream_id);
    if header.name != "stream"
        || header.ns != ns::STREAM
        || header.default_ns.as_deref() != Some(NS_ACCEPT)
    {
        return Err(Some((
            "invalid-namespace",
            format!("expected <stream:stream> in {NS_ACCEPT}"),
        )));
    }
    let hosts = &server.config.components.hosts;
    let Some((domain, host)) = requested.and_then(|d| hosts.get_key_value(&d)) else {
        tracing::warn!(%peer, requested = ?header.to, "a component asked for a domain that is not in components.hosts; refusing");
        return Err(Some((
            "host-unknown",
            "no component of that name is configured here".into(),
        )));
    };
    if wire.flush().await.is_err() {
        return Err(None);
    }
    let handshake = match wire.next_element(deadline).await {
        Ok(el) => el,
        Err(broken) => {
            tracing::info!(%peer, component = %domain, reason = %broken.reason, "component handshake failed");
            return Err(timeout_error(&broken));
        }
    };
    // The parser reads `jabber:component:accept` as `jabber:client` (see `Wire`).
    if !handshake.is("handshake", ns::CLIENT) {
        return Err(Some((
            "not-authorized",
            "authenticate with <handshake/> first".into(),
        )));
    }
    if !handshake_valid(&stream_id, &host.secret, &handshake) {
        tracing::warn!(%peer, component = %domain, "component handshake with a wrong secret; refusing");
        return Err(Some(("not-authorized", "wrong handshake".into())));
    }
    Ok(domain.clone())
}

/// A `connection-timeout` stream error when the component took too long, else none.
fn timeout_error(broken: &Broken) -> Close {
    broken
        .timed_out
        .then(|| ("connection-timeout", "no handshake in time".into()))
}

/// hearth's stream header for a component: `from` its domain, and the id the handshake hashes.
fn send_header(wire: &mut Wire, from: Option<&str>, id: &str) {
    let header = StreamHeader {
        name: "stream".into(),
        ns: ns::STREAM.into(),
        default_ns: Some(NS_ACCEPT.into()),
        from: from.map(str::to_string),
        id: Some(id.to_string()),
        ..StreamHeader::default()
    };
    wire.out
        .extend_from_slice(hearth_xml::stream_header(&header).as_bytes());
}

/// XEP-0114 §3: the handshake is lowercase hex SHA-1(stream id + secret); compared in constant
/// time.
fn handshake_valid(stream_id: &str, secret: &str, handshake: &Element) -> bool {
    use sha1::{Digest, Sha1};
    use subtle::ConstantTimeEq;
    let digest = Sha1::new()
        .chain_update(stream_id.as_bytes())
        .chain_update(secret.as_bytes())
        .finalize();
    let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let received = handshake.text().trim().to_ascii_lowercase();
    expected.len() == received.len() && bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

/// Exchanges stanzas with an authenticated component until its stream ends.
async fn exchange(
    server: &Arc<Server>,
    wire: &mut Wire,
    domain: &str,
    queue: &mut mpsc::Receiver<Stanza>,
) -> Close {
    let mut shutdown = server.shutdown_signal();
    loop {
        loop {
            let event = match wire.parser.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => return Some((e.condition(), e.to_string())),
            };
            match event {
                StreamEvent::Element(el) => {
                    if let Err(close) = from_component(server, domain, el).await {
                        tracing::warn!(peer = %wire.peer, component = %domain, condition = close.0, text = %close.1, "closing a component's stream");
                        return Some(close);
                    }
                }
                StreamEvent::End => return None,
                StreamEvent::Header(_) => {
                    return Some(("invalid-xml", "a second stream header".into()));
                }
            }
        }
        if wire.flush().await.is_err() {
            return None;
        }
        wire.parser.idle_shrink();
        tokio::select! {
            read = wire.read_some() => match read {
                Ok(true) => {}
                _ => return None,
            },
            Some(stanza) = queue.recv() => {
                wire.out.extend_from_slice(&stanza.to_client_bytes());
                // What else waits goes out in the same write, up to a batch.
                while wire.out.len() < 64 * 1024 {
                    match queue.try_recv() {
                        Ok(stanza) => wire.out.extend_from_slice(&stanza.to_client_bytes()),
                        Err(_) => break,
                    }
                }
            }
            _ = shutdown.changed() => {
                return Some(("system-shutdown", "the server is shutting down".into()));
            }
        }
    }
}

/// A stanza the component sent: from its own domain (XEP-0114 §3), routed like a stanza from
/// another server.
async fn from_component(
    server: &Arc<Server>,
    domain: &str,
    el: Element,
) -> Result<(), (&'static str, String)> {
    let (stanza, from, _) = addressed_stanza(el)?;
    if from != domain {
        return Err((
            "invalid-from",
            format!("this component may only send from {domain} and addresses at it"),
        ));
    }
    server.process_from_remote(stanza, from).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_is_lowercase_hex_sha1_of_id_and_secret() {
        // XEP-0114 §3's stream id with the secret "secret" (`sha1sum` of "3BF96D32secret").
        let el = |text: &str| {
            Element::builder("handshake", NS_ACCEPT)
                .append(text)
                .build()
        };
        let expected = "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136";
        assert!(handshake_valid("3BF96D32", "secret", &el(expected)));
        assert!(handshake_valid(
            "3BF96D32",
            "secret",
            &el(&expected.to_uppercase())
        ));
        assert!(!handshake_valid("3BF96D32", "secreT", &el(expected)));
        assert!(!handshake_valid("3BF96D33", "secret", &el(expected)));
        assert!(!handshake_valid("3BF96D32", "secret", &el(&expected[1..])));
        assert!(!handshake_valid("3BF96D32", "secret", &el("")));
    }
}
