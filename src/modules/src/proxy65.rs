//! XEP-0065: SOCKS5 Bytestreams, the proxy side (§6 "Mediated Connection"). Two clients that
//! cannot reach each other directly (both behind NAT) each open a TCP connection to the proxy
//! and ask, in a cut-down SOCKS5 handshake, for the same address: the hex SHA-1 of the stream
//! id and the requester's and the target's JIDs. The requester then asks the proxy over XMPP to
//! activate the stream, and from then on the proxy relays bytes between the two connections.
//!
//! The service lives on its own domain (`proxy.<domain>` by default). Only this server's users
//! may request and activate streams (the proxy's bandwidth is the server's); the other party
//! may be anyone, as it only connects over TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_core::jid::Jid;
use hearth_core::module::{Identity, Module, Registrar, Spec, SupportStatus};
use hearth_core::ns::{DISCO_INFO, DISCO_ITEMS};
use hearth_core::rate::Bucket;
use hearth_core::router::Context;
use hearth_core::server::Server;
use hearth_core::stanza::{Condition, Kind, Stanza, StanzaError, ncname};
use minidom::Element;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

pub const NS: &str = "http://jabber.org/protocol/bytestreams";
const NAME: &str = "SOCKS5 Bytestreams Service";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The service's domain; empty means `proxy.<domain>`.
    pub domain: String,
    /// Where the SOCKS5 listener binds.
    pub listen: Vec<SocketAddr>,
    /// The host clients are told to connect to; empty means the server's domain.
    pub address: String,
    /// The port clients are told to connect to; 0 means the port of the first `listen` address.
    pub port: u16,
    /// SOCKS5 connections open at once (each stream takes two); further ones are refused.
    pub max_connections: usize,
    /// Seconds a connection has, from when it is accepted, to finish the handshake and be
    /// activated.
    pub handshake_timeout_secs: u64,
    /// Bytes per second relayed in each direction of a stream; 0 is unlimited.
    pub max_bytes_per_second: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            domain: String::new(),
            listen: vec![SocketAddr::from(([0u16; 8], 7777))],
            address: String::new(),
            port: 0,
            max_connections: 1000,
            handshake_timeout_secs: 60,
            max_bytes_per_second: 0,
        }
    }
}

pub struct Proxy65 {
    cfg: Config,
    /// The service's JID.
    jid: Jid,
    /// What `<streamhost/>` tells clients to connect to.
    host: String,
    port: u16,
    connections: Arc<Semaphore>,
    /// Connections past the handshake, by requested address, waiting for their peer and for
    /// activation: at most two per address.
    waiting: Mutex<HashMap<String, Vec<Waiting>>>,
    next_connection: AtomicU64,
}

/// A connection past the SOCKS5 handshake.
struct Waiting {
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    /// Its place under `max_connections`, held until the connection closes.
    permit: OwnedSemaphorePermit,
}

impl Module for Proxy65 {
    const NAME: &'static str = "proxy65";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0065",
        version: "1.8.2",
        status: SupportStatus::Partial,
        note: "the proxy (mediated connections) on its own domain, for this server's users: TCP only (no UDP mode), SOCKS5 without authentication; unactivated connections close after modules.proxy65.handshake_timeout_secs; optional bandwidth limit per stream and direction",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let server_domain = reg.config().domain.clone();
        let domain = match cfg.domain.as_str() {
            "" => format!("proxy.{server_domain}"),
            d => d.to_string(),
        };
        let jid = Jid::domain_jid(&domain).map_err(|e| {
            anyhow::anyhow!("modules.proxy65.domain {domain:?} is not a valid domain: {e}")
        })?;
        let Some(first) = cfg.listen.first() else {
            anyhow::bail!(
                "modules.proxy65.listen is empty: give it an address, or set enabled = false"
            );
        };
        let port = if cfg.port == 0 {
            first.port()
        } else {
            cfg.port
        };
        let host = match cfg.address.as_str() {
            "" => server_domain,
            a => a.to_string(),
        };
        anyhow::ensure!(
            cfg.max_connections >= 2,
            "modules.proxy65.max_connections must be at least 2 (a stream takes two)"
        );
        anyhow::ensure!(
            cfg.handshake_timeout_secs >= 1,
            "modules.proxy65.handshake_timeout_secs must be at least 1"
        );
        let proxy = Arc::new(Proxy65 {
            connections: Arc::new(Semaphore::new(cfg.max_connections)),
            cfg,
            jid,
            host,
            port,
            waiting: Mutex::default(),
            next_connection: AtomicU64::new(0),
        });
        let service = proxy.clone();
        reg.service(&domain, move |cx, st| {
            let service = service.clone();
            async move { service.handle(cx, st).await }
        })?;
        reg.disco_item(&domain, Some(NAME));
        let listener = proxy.clone();
        let addrs = listener.cfg.listen.clone();
        reg.listener("modules.proxy65.listen", addrs, move |server, bound| {
            listener.serve_listeners(server, bound)
        });
        Ok(proxy)
    }
}

impl Proxy65 {
    /// Every stanza to the service's domain.
    async fn handle(&self, cx: Context, st: Stanza) {
        let to_service = st
            .to()
            .is_some_and(|to| to.node().is_none() && to.is_bare());
        let result = match st.kind() {
            // Results and errors need no answer.
            Kind::Iq if !matches!(st.type_attr(), Some("get" | "set")) => return,
            Kind::Iq if to_service => self.iq(&cx, &st),
            _ => Err(StanzaError::new(Condition::ServiceUnavailable)),
        };
        match result {
            Ok(payload) => cx.send(st.iq_result(payload)).await,
            Err(e) => cx.server.bounce(&st, e).await,
        }
    }

    fn iq(&self, cx: &Context, st: &Stanza) -> Result<Option<Element>, StanzaError> {
        let payload = st
            .iq_payload()
            .expect("the router checked the IQ's payload");
        let get = st.type_attr() == Some("get");
        match (get, payload.ns().as_str(), payload.name()) {
            (true, DISCO_INFO, "query") => Ok(Some(info())),
            (true, DISCO_ITEMS, "query") => Ok(Some(Element::bare("query", DISCO_ITEMS))),
            (true, NS, "query") => {
                local_user(cx)?;
                Ok(Some(self.streamhost()))
            }
            (false, NS, "query") => {
                let requester = local_user(cx)?;
                self.activate(requester, payload)?;
                Ok(None)
            }
            _ => Err(StanzaError::new(Condition::ServiceUnavailable)),
        }
    }

    /// The network address (XEP-0065 §4).
    fn streamhost(&self) -> Element {
        Element::builder("query", NS)
            .append(
                Element::builder("streamhost", NS)
                    .attr(ncname("jid"), self.jid.to_string())
                    .attr(ncname("host"), self.host.as_str())
                    .attr(ncname("port"), self.port.to_string())
                    .build(),
            )
            .build()
    }

    /// Joins the two connections waiting for the stream `query` names (XEP-0065 §6.3.5). The
    /// address includes the sender's JID, so only the requester can activate its stream.
    fn activate(&self, requester: &Jid, query: &Element) -> Result<(), StanzaError> {
        let bad = |text: &str| StanzaError::new(Condition::BadRequest).with_text(text);
        let sid = query
            .attr("sid")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("the query needs a sid"))?;
        let target = query
            .get_child("activate", NS)
            .map(|a| a.text())
            .ok_or_else(|| bad("the query needs <activate/> with the target's JID"))?;
        let target = Jid::parse(target.trim()).map_err(|e| {
            StanzaError::new(Condition::JidMalformed).with_text(format!("<activate/>: {e}"))
        })?;
        let address = dst_addr(sid, &requester.to_string(), &target.to_string());
        let pair = {
            let mut waiting = self.waiting.lock().expect("waiting lock");
            match waiting.get(&address).map(Vec::len) {
                None => {
                    return Err(StanzaError::new(Condition::ItemNotFound)
                        .with_text("no connection is waiting for this stream"));
                }
                Some(1) => {
                    return Err(StanzaError::new(Condition::NotAllowed)
                        .with_text("only one party has connected to the proxy"));
                }
                Some(_) => waiting.remove(&address).expect("just looked up"),
            }
        };
        let [first, second] = <[Waiting; 2]>::try_from(pair)
            .unwrap_or_else(|_| unreachable!("at most two connections wait per address"));
        tracing::info!(%requester, %target, first = %first.peer, second = %second.peer, "bytestream activated");
        let rate = self.cfg.max_bytes_per_second;
        let requester = requester.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            match relay(first.stream, second.stream, rate).await {
                Ok((one_way, other_way)) => tracing::info!(
                    %requester,
                    %target,
                    bytes = one_way + other_way,
                    secs = started.elapsed().as_secs(),
                    "bytestream closed"
                ),
                Err(e) => tracing::info!(%requester, %target, error = %e, "bytestream broke off"),
            }
            // The permits go with the connections.
            drop((first.permit, second.permit));
        });
        Ok(())
    }

    /// Accepts on the SOCKS5 listeners until the server shuts down.
    async fn serve_listeners(self: Arc<Self>, server: Arc<Server>, listeners: Vec<TcpListener>) {
        for listener in listeners {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(address = %addr, "listening for SOCKS5 bytestreams");
            }
            tokio::spawn(self.clone().accept(listener, server.shutdown_signal()));
        }
    }

    async fn accept(self: Arc<Self>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = shutdown.changed() => return,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, setting = "modules.proxy65.max_connections", "connection limit reached; refusing SOCKS5 connection");
                        continue;
                    };
                    tokio::spawn(self.clone().serve(stream, peer, permit));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::error!(error = %e, "SOCKS5 accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// One SOCKS5 connection: the handshake, then waiting for its peer and activation until
    /// the handshake timeout, after which it is closed if it is still waiting.
    async fn serve(
        self: Arc<Self>,
        mut stream: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(self.cfg.handshake_timeout_secs);
        let address = match tokio::time::timeout_at(deadline, handshake(&mut stream)).await {
            Ok(Ok(address)) => address,
            Ok(Err(e)) => {
                tracing::debug!(%peer, reason = %e, "SOCKS5 handshake failed; closing");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "SOCKS5 handshake not finished in time; closing");
                return;
            }
        };
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        {
            let mut waiting = self.waiting.lock().expect("waiting lock");
            let pair = waiting.entry(address.clone()).or_default();
            if pair.len() == 2 {
                tracing::debug!(%peer, "a third connection asked for the address of a stream; closing it");
                return;
            }
            pair.push(Waiting {
                id,
                stream,
                peer,
                permit,
            });
        }
        tokio::time::sleep_until(deadline).await;
        let mut waiting = self.waiting.lock().expect("waiting lock");
        if let Some(pair) = waiting.get_mut(&address)
            && let Some(index) = pair.iter().position(|w| w.id == id)
        {
            pair.remove(index);
            if pair.is_empty() {
                waiting.remove(&address);
            }
            tracing::info!(%peer, timeout_secs = self.cfg.handshake_timeout_secs, "bytestream connection not activated in time; closing");
        }
    }
}

/// Who may use the proxy: a client of this server (not another server's user).
fn local_user(cx: &Context) -> Result<&Jid, StanzaError> {
    cx.session().map(|s| &s.jid).ok_or_else(|| {
        StanzaError::new(Condition::Forbidden).with_text("this proxy is for the server's own users")
    })
}

fn info() -> Element {
    let identity = Identity {
        category: "proxy".into(),
        type_: "bytestreams".into(),
        name: Some(NAME.into()),
    };
    crate::disco::info_result(
        std::iter::once(&identity),
        [NS, DISCO_INFO, DISCO_ITEMS].into_iter(),
        std::iter::empty(),
    )
}

/// The address both sides of a stream ask the proxy for (XEP-0065 §5.3.2): the hex SHA-1 of
/// the stream id, the requester's JID and the target's JID.
pub fn dst_addr(sid: &str, requester: &str, target: &str) -> String {
    let mut hash = Sha1::new();
    for part in [sid, requester, target] {
        hash.update(part.as_bytes());
    }
    crate::conversion::avatar::hex(&hash.finalize())
}

/// RFC 1928 values of the handshake.
const SOCKS5: u8 = 5;
const NO_AUTHENTICATION: u8 = 0x00;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CONNECT: u8 = 0x01;
const IPV4: u8 = 0x01;
const DOMAIN_NAME: u8 = 0x03;
const IPV6: u8 = 0x04;
const SUCCEEDED: u8 = 0x00;
const NOT_ALLOWED: u8 = 0x02;
const COMMAND_NOT_SUPPORTED: u8 = 0x07;
const ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("not SOCKS version 5 (version byte {0})")]
    Version(u8),
    #[error("the client offers no authentication method the proxy accepts (only \"none\")")]
    NoAcceptableMethod,
    /// A request the proxy answered with this RFC 1928 reply code.
    #[error("{1}")]
    Refused(u8, &'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The SOCKS5 handshake as XEP-0065 §5.3.2 restricts it: no authentication, then CONNECT to a
/// domain name that is a 40-digit hex SHA-1, port 0. Returns that address (in lower case),
/// after replying success. Reads exactly the handshake, so data a client sends right after it
/// stays unread until the stream is activated, and a refused request is read whole, so the
/// client gets the refusal rather than a reset.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<String, HandshakeError> {
    let [version, method_count] = read_array(stream).await?;
    if version != SOCKS5 {
        return Err(HandshakeError::Version(version));
    }
    let mut methods = vec![0; usize::from(method_count)];
    stream.read_exact(&mut methods).await?;
    if !methods.contains(&NO_AUTHENTICATION) {
        stream.write_all(&[SOCKS5, NO_ACCEPTABLE_METHOD]).await?;
        return Err(HandshakeError::NoAcceptableMethod);
    }
    stream.write_all(&[SOCKS5, NO_AUTHENTICATION]).await?;
    let request = async {
        let [version, command, _, address_type] = read_array(stream).await?;
        if version != SOCKS5 {
            return Err(HandshakeError::Version(version));
        }
        let len = match address_type {
            IPV4 => 4,
            IPV6 => 16,
            DOMAIN_NAME => {
                let [len] = read_array(stream).await?;
                usize::from(len)
            }
            _ => {
                return Err(HandshakeError::Refused(
                    ADDRESS_TYPE_NOT_SUPPORTED,
                    "unknown address type",
                ));
            }
        };
        let mut name = vec![0; len];
        stream.read_exact(&mut name).await?;
        let port = u16::from_be_bytes(read_array(stream).await?);
        let address = requested_address(command, address_type, &name, port)?;
        Ok((name, address))
    }
    .await;
    match request {
        Ok((name, address)) => {
            // BND.ADDR and BND.PORT repeat the request (XEP-0065 §5.3.2).
            let mut reply = vec![SOCKS5, SUCCEEDED, 0, DOMAIN_NAME, name.len() as u8];
            reply.extend_from_slice(&name);
            reply.extend_from_slice(&[0, 0]);
            stream.write_all(&reply).await?;
            Ok(address)
        }
        Err(HandshakeError::Refused(code, reason)) => {
            // An unspecified IPv4 address as BND.ADDR: there is nothing to bind to.
            stream
                .write_all(&[SOCKS5, code, 0, IPV4, 0, 0, 0, 0, 0, 0])
                .await?;
            Err(HandshakeError::Refused(code, reason))
        }
        Err(e) => Err(e),
    }
}

async fn read_array<const N: usize, S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<[u8; N]> {
    let mut buf = [0; N];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// The stream address a request names, if it is one: CONNECT to a hex SHA-1 as a domain name
/// (any case; returned in lower case), port 0.
fn requested_address(
    command: u8,
    address_type: u8,
    name: &[u8],
    port: u16,
) -> Result<String, HandshakeError> {
    if command != CONNECT {
        return Err(HandshakeError::Refused(
            COMMAND_NOT_SUPPORTED,
            "only CONNECT is supported",
        ));
    }
    if address_type != DOMAIN_NAME {
        return Err(HandshakeError::Refused(
            ADDRESS_TYPE_NOT_SUPPORTED,
            "the address must be a domain name (ATYP 3)",
        ));
    }
    if name.len() != 40 || !name.iter().all(u8::is_ascii_hexdigit) || port != 0 {
        return Err(HandshakeError::Refused(
            NOT_ALLOWED,
            "the address must be a hex SHA-1 with port 0 (XEP-0065)",
        ));
    }
    Ok(String::from_utf8_lossy(name).to_ascii_lowercase())
}

/// Relays between the two connections of an activated stream until both directions end (one
/// side closing its sending half is passed on to the other), or either fails. Returns the
/// bytes each way.
async fn relay(
    first: TcpStream,
    second: TcpStream,
    max_bytes_per_second: u64,
) -> std::io::Result<(u64, u64)> {
    let (first_in, first_out) = first.into_split();
    let (second_in, second_out) = second.into_split();
    tokio::try_join!(
        pump(first_in, second_out, max_bytes_per_second),
        pump(second_in, first_out, max_bytes_per_second),
    )
}

/// Copies one direction, at most `max_bytes_per_second` (0: unlimited) on average with bursts
/// of one second's worth, through a fixed buffer: a file is never held whole.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut from: R,
    mut to: W,
    max_bytes_per_second: u64,
) -> std::io::Result<u64> {
    const BUFFER: usize = 64 * 1024;
    let rate = max_bytes_per_second as f64;
    let limited = max_bytes_per_second > 0;
    // A read never asks for more than one burst, or it could never be let through.
    let chunk = if limited {
        BUFFER.min(usize::try_from(max_bytes_per_second).unwrap_or(BUFFER))
    } else {
        BUFFER
    };
    let mut buf = vec![0; chunk];
    let mut bucket = Bucket::full(rate, Instant::now());
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(total);
        }
        while limited && !bucket.take_many(n as f64, rate, rate, Instant::now()) {
            tokio::time::sleep(bucket.until(n as f64, rate)).await;
        }
        to.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_the_hex_sha1_of_sid_requester_and_target() {
        // python3 -c "import hashlib; print(hashlib.sha1(b'mySIDrequester@example.com/foo'
        //   b'target@example.org/bar').hexdigest())"
        assert_eq!(
            dst_addr(
                "mySID",
                "requester@example.com/foo",
                "target@example.org/bar"
            ),
            "2e45ce941bf465393585e33be9ccff347e00b430"
        );
    }

    #[test]
    fn requests_are_connect_to_a_hex_sha1_on_port_0() {
        let hash = "2E45CE941bf465393585e33be9ccff347e00b430";
        assert_eq!(
            requested_address(CONNECT, DOMAIN_NAME, hash.as_bytes(), 0).unwrap(),
            hash.to_ascii_lowercase()
        );
        let refusal = |command, address_type, name: &str, port| match requested_address(
            command,
            address_type,
            name.as_bytes(),
            port,
        ) {
            Err(HandshakeError::Refused(code, _)) => code,
            other => panic!("{name:?} {port}: {other:?}"),
        };
        assert_eq!(refusal(2, DOMAIN_NAME, hash, 0), COMMAND_NOT_SUPPORTED);
        assert_eq!(
            refusal(CONNECT, IPV4, "\x7f\0\0\x01", 0),
            ADDRESS_TYPE_NOT_SUPPORTED
        );
        assert_eq!(refusal(CONNECT, DOMAIN_NAME, hash, 1), NOT_ALLOWED);
        assert_eq!(refusal(CONNECT, DOMAIN_NAME, &hash[1..], 0), NOT_ALLOWED);
        let not_hex = "2e45ce941bf465393585e33be9ccff347e00b43g";
        assert_eq!(refusal(CONNECT, DOMAIN_NAME, not_hex, 0), NOT_ALLOWED);
        assert_eq!(refusal(CONNECT, DOMAIN_NAME, "example.com", 0), NOT_ALLOWED);
    }

    /// Runs the proxy's side of a handshake against `client_bytes`; returns its result and
    /// what the proxy answered.
    async fn exchange(client_bytes: &[u8]) -> (Result<String, HandshakeError>, Vec<u8>) {
        let (mut client, mut proxy) = tokio::io::duplex(1024);
        client.write_all(client_bytes).await.unwrap();
        client.shutdown().await.unwrap();
        let result = handshake(&mut proxy).await;
        drop(proxy);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        (result, answer)
    }

    fn request(name: &[u8], port: u16) -> Vec<u8> {
        let mut bytes = vec![
            5,
            2,
            0x02,
            0x00,
            5,
            CONNECT,
            0,
            DOMAIN_NAME,
            name.len() as u8,
        ];
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(&port.to_be_bytes());
        bytes
    }

    #[tokio::test]
    async fn a_valid_handshake_is_answered_with_the_same_address() {
        let hash = dst_addr("s", "a@example.com/r", "b@example.com/r");
        let mut bytes = request(hash.as_bytes(), 0);
        bytes.extend_from_slice(b"early data");
        let (result, answer) = exchange(&bytes).await;
        assert_eq!(result.unwrap(), hash);
        let mut expected = vec![5, NO_AUTHENTICATION, 5, SUCCEEDED, 0, DOMAIN_NAME, 40];
        expected.extend_from_slice(hash.as_bytes());
        expected.extend_from_slice(&[0, 0]);
        assert_eq!(answer, expected);
    }

    #[tokio::test]
    async fn malformed_handshakes_are_refused() {
        // Only username/password offered.
        let (result, answer) = exchange(&[5, 1, 0x02]).await;
        assert!(matches!(result, Err(HandshakeError::NoAcceptableMethod)));
        assert_eq!(answer, [5, NO_ACCEPTABLE_METHOD]);
        // SOCKS4 or HTTP: no answer at all.
        let (result, answer) = exchange(b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(matches!(result, Err(HandshakeError::Version(b'G'))));
        assert!(answer.is_empty());
        // Not a stream address.
        let (result, answer) = exchange(&request(b"example.com", 80)).await;
        assert!(matches!(
            result,
            Err(HandshakeError::Refused(NOT_ALLOWED, _))
        ));
        assert_eq!(answer[2..4], [5, NOT_ALLOWED]);
        // An IPv6 address: read whole, then refused.
        let mut ipv6 = vec![5, 1, 0, 5, CONNECT, 0, IPV6];
        ipv6.extend_from_slice(&[0; 18]);
        let (result, answer) = exchange(&ipv6).await;
        assert!(matches!(
            result,
            Err(HandshakeError::Refused(ADDRESS_TYPE_NOT_SUPPORTED, _))
        ));
        assert_eq!(answer[2..4], [5, ADDRESS_TYPE_NOT_SUPPORTED]);
        // Cut short.
        let (result, _) = exchange(&[5, 1, 0, 5, CONNECT]).await;
        assert!(matches!(result, Err(HandshakeError::Io(_))));
    }

    #[tokio::test]
    async fn the_relay_passes_bytes_and_the_end_of_the_stream() {
        let (mut sender, proxy_in) = tokio::io::duplex(4096);
        let (proxy_out, mut receiver) = tokio::io::duplex(4096);
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let copy = tokio::spawn(pump(proxy_in, proxy_out, 0));
        let send = data.clone();
        tokio::spawn(async move {
            sender.write_all(&send).await.unwrap();
            sender.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        receiver.read_to_end(&mut received).await.unwrap();
        assert_eq!(received, data);
        assert_eq!(copy.await.unwrap().unwrap(), data.len() as u64);
    }
}
