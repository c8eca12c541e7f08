//! Server-to-server federation (RFC 6120, XEP-0220 dialback, XEP-0178 certificates, XEP-0368
//! direct TLS).
//!
//! Outgoing: one link per (local domain, remote domain), created on first use by a task that
//! owns the connection; stanzas wait in the link's bounded queue while it connects. A link
//! that cannot be established within `connect_timeout_secs` (DNS, TCP, TLS and authentication
//! retried with backoff, DNS asked again every time) bounces what waits to the senders. A link
//! closes after `idle_timeout_secs` without traffic; one that breaks with stanzas waiting
//! reconnects.
//!
//! Incoming: a connection is accepted on the s2s listeners, must use TLS (unless
//! `require_encryption` is off), and carries stanzas only for the (remote, local) domain pairs
//! it authenticated, by SASL EXTERNAL with a certificate valid for the remote domain or by
//! dialback verified with the remote domain's authoritative server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use hickory_resolver::Resolver;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::config::{S2sAuth, S2sConfig};
use crate::server::Server;
use crate::stanza::{Condition, Stanza, StanzaError};

mod acks;
mod incoming;
mod outgoing;
mod pki;
pub(crate) mod wire;

pub(crate) use incoming::serve as serve_incoming;

pub const NS_SERVER: &str = "jabber:server";
pub const NS_DIALBACK: &str = "jabber:server:dialback";
const NS_DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
/// XEP-0288 stream feature and request.
const NS_BIDI_FEATURE: &str = "urn:xmpp:features:bidi";
const NS_BIDI: &str = "urn:xmpp:bidi";

/// The federation state of a running server.
pub struct S2s {
    /// Dialback keys are HMACs keyed with this (XEP-0185).
    key_secret: [u8; 32],
    pub(crate) tls: pki::S2sTls,
    links: Mutex<HashMap<(String, String), Link>>,
    next_link_id: AtomicU64,
    /// Authenticated incoming connections per remote domain.
    incoming: Mutex<HashMap<String, usize>>,
    resolver: OnceLock<Option<Resolver<TokioRuntimeProvider>>>,
}

pub(crate) struct S2sCounts {
    /// The state of each outgoing link.
    pub outgoing_by_state: Vec<&'static str>,
    pub queued: usize,
    pub incoming: usize,
}

/// The router's side of an outgoing link.
struct Link {
    id: u64,
    queue: mpsc::Sender<Stanza>,
    status: Arc<Mutex<LinkStatus>>,
}

/// What an outgoing link is doing, for the status report (SIGUSR1).
#[derive(Debug, Clone)]
pub(crate) struct LinkStatus {
    pub state: &'static str,
    pub since: std::time::Instant,
    pub peer: Option<std::net::SocketAddr>,
    pub acks: bool,
    pub last_error: Option<String>,
}

impl LinkStatus {
    fn new(state: &'static str, peer: Option<std::net::SocketAddr>) -> Self {
        LinkStatus {
            state,
            since: std::time::Instant::now(),
            peer,
            acks: false,
            last_error: None,
        }
    }

    pub fn set(&mut self, state: &'static str) {
        self.state = state;
        self.since = std::time::Instant::now();
    }
}

impl S2s {
    pub fn new(cfg: &S2sConfig, tls: &crate::tls::Tls) -> anyhow::Result<Self> {
        let key_secret = match &cfg.dialback_secret {
            Some(secret) => Sha256::digest(secret.as_bytes()).into(),
            None => rand::random(),
        };
        Ok(Self {
            key_secret,
            tls: pki::S2sTls::new(tls, cfg)?,
            links: Mutex::default(),
            next_link_id: AtomicU64::new(1),
            incoming: Mutex::default(),
            resolver: OnceLock::new(),
        })
    }

    /// The dialback key for a stream from `originating` to `receiving` with id `stream_id`
    /// (XEP-0185: HMAC-SHA256 over the two domains and the id, hex).
    fn dialback_key(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key_secret).expect("any key length");
        mac.update(receiving.as_bytes());
        mac.update(b" ");
        mac.update(originating.as_bytes());
        mac.update(b" ");
        mac.update(stream_id.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn key_is_valid(&self, receiving: &str, originating: &str, stream_id: &str, key: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.dialback_key(receiving, originating, stream_id);
        expected.len() == key.len() && bool::from(expected.as_bytes().ct_eq(key.as_bytes()))
    }

    /// The resolver for remote domains (created on first use; `None` when the system's DNS
    /// configuration cannot be read, then only `s2s.peers` addresses work).
    fn resolver(&self, cfg: &S2sConfig) -> Option<&Resolver<TokioRuntimeProvider>> {
        self.resolver
            .get_or_init(|| match crate::dns::resolver(cfg.dns_server, true) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "federation cannot resolve other servers' names; only s2s.peers addresses can be reached");
                    None
                }
            })
            .as_ref()
    }

    /// Makes an incoming bidirectional stream (XEP-0288) the link for (local, remote): stanzas
    /// for `remote` then go out through `queue`. `None` when a link is there already (it stays).
    fn adopt(
        &self,
        local: &str,
        remote: &str,
        queue: &mpsc::Sender<Stanza>,
        peer: std::net::SocketAddr,
    ) -> Option<u64> {
        let mut links = self.links.lock().expect("links lock");
        let key = (local.to_string(), remote.to_string());
        if links.get(&key).is_some_and(|l| !l.queue.is_closed()) {
            return None;
        }
        let id = self.next_link_id.fetch_add(1, Ordering::Relaxed);
        let status = LinkStatus::new("up (the peer's bidirectional stream)", Some(peer));
        let link = Link {
            id,
            queue: queue.clone(),
            status: Arc::new(Mutex::new(status)),
        };
        links.insert(key, link);
        Some(id)
    }

    /// Counts an incoming connection authenticated for `domain`; `false` (not counted) when
    /// `max` are open already.
    fn admit_incoming(&self, domain: &str, max: usize) -> bool {
        let mut incoming = self.incoming.lock().expect("incoming lock");
        let open = incoming.entry(domain.to_string()).or_default();
        if *open >= max {
            return false;
        }
        *open += 1;
        true
    }

    fn release_incoming(&self, domain: &str) {
        let mut incoming = self.incoming.lock().expect("incoming lock");
        if let Some(open) = incoming.get_mut(domain) {
            *open -= 1;
            if *open == 0 {
                incoming.remove(domain);
            }
        }
    }

    /// Logs the state of every link (on SIGUSR1): outgoing links with their queue and last
    /// error, and the incoming connections per domain.
    /// The figures `/metrics` reports.
    pub(crate) fn counts(&self) -> S2sCounts {
        let links = self.links.lock().expect("links lock");
        S2sCounts {
            outgoing_by_state: links
                .values()
                .map(|l| l.status.lock().expect("status lock").state)
                .collect(),
            queued: links
                .values()
                .map(|l| l.queue.max_capacity() - l.queue.capacity())
                .sum(),
            incoming: self.incoming.lock().expect("incoming lock").values().sum(),
        }
    }

    pub fn log_status(&self) {
        let links: Vec<_> = self
            .links
            .lock()
            .expect("links lock")
            .iter()
            .map(|((local, remote), link)| {
                let queued = link.queue.max_capacity() - link.queue.capacity();
                let status = link.status.lock().expect("status lock").clone();
                (local.clone(), remote.clone(), queued, status)
            })
            .collect();
        tracing::info!(outgoing = links.len(), "server-to-server status");
        for (local, remote, queued, status) in links {
            tracing::info!(
                %local,
                %remote,
                state = status.state,
                for_secs = status.since.elapsed().as_secs(),
                peer = ?status.peer,
                acks = status.acks,
                queued,
                last_error = status.last_error.as_deref().unwrap_or("none"),
                "outgoing link"
            );
        }
        for (remote, open) in self.incoming.lock().expect("incoming lock").iter() {
            tracing::info!(%remote, connections = open, "incoming from");
        }
    }
}

impl Server {
    /// Whether this server answers for `domain` on server-to-server streams: its own domain
    /// and the domains of its services (MUC…) and external components.
    pub fn serves_domain(&self, domain: &str) -> bool {
        self.is_local_domain(domain) || self.regs.services.contains_key(domain)
    }

    /// Hands a stanza for another server to its link, creating the link on first use.
    pub(crate) async fn send_remote(self: &Arc<Self>, stanza: Stanza) {
        let cfg = &self.config.s2s;
        let (Some(remote), Some(local)) = (
            stanza.to().map(|j| j.domain().to_string()),
            stanza.from().map(|j| j.domain().to_string()),
        ) else {
            return;
        };
        if !cfg.enabled {
            let err = StanzaError::new(Condition::RemoteServerNotFound)
                .with_text("this server does not federate with other servers");
            return self.bounce(&stanza, err).await;
        }
        if cfg.policy(&remote) == S2sAuth::Refuse {
            let err = StanzaError::new(Condition::RemoteServerNotFound).with_text(format!(
                "the administrator of this server does not allow federation with {remote}"
            ));
            return self.bounce(&stanza, err).await;
        }
        if !self.serves_domain(&local) {
            // Only the server's own addresses may speak to other servers.
            return self.bounce(&stanza, Condition::NotAllowed.into()).await;
        }
        let key = (local, remote);
        let mut stanza = stanza;
        // Twice at most: a link that just retired closed its queue; the second try makes a new one.
        for _ in 0..2 {
            let queue = {
                let mut links = self.s2s.links.lock().expect("links lock");
                match links.get(&key) {
                    Some(link) if !link.queue.is_closed() => link.queue.clone(),
                    _ => {
                        let id = self.s2s.next_link_id.fetch_add(1, Ordering::Relaxed);
                        let (tx, rx) = mpsc::channel(cfg.max_queued_stanzas.max(1));
                        let status = Arc::new(Mutex::new(LinkStatus::new("connecting", None)));
                        let link = Link {
                            id,
                            queue: tx.clone(),
                            status: status.clone(),
                        };
                        links.insert(key.clone(), link);
                        let (local, remote) = key.clone();
                        tokio::spawn(outgoing::run_link(
                            self.clone(),
                            outgoing::LinkId {
                                id,
                                local,
                                remote,
                                status,
                            },
                            rx,
                        ));
                        tx
                    }
                }
            };
            match queue.try_send(stanza) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(st)) => {
                    tracing::warn!(remote = %key.1, limit = cfg.max_queued_stanzas, "too many stanzas waiting for a remote server (s2s.max_queued_stanzas); bouncing");
                    let err = StanzaError::new(Condition::ResourceConstraint)
                        .with_text(format!("too many stanzas are waiting for {}", key.1));
                    return self.bounce(&st, err).await;
                }
                Err(mpsc::error::TrySendError::Closed(st)) => stanza = st,
            }
        }
        let err = StanzaError::new(Condition::RemoteServerTimeout);
        self.bounce(&stanza, err).await
    }

    /// Removes link `id` from the pool (if it is still the one there).
    pub(crate) fn retire_link(&self, local: &str, remote: &str, id: u64) {
        let mut links = self.s2s.links.lock().expect("links lock");
        let key = (local.to_string(), remote.to_string());
        if links.get(&key).is_some_and(|l| l.id == id) {
            links.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialback_keys_bind_domains_and_stream() {
        let cfg = S2sConfig {
            dialback_secret: Some("s3cr3t".into()),
            ..S2sConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::config::Config::parse("domain = \"a.example\"").unwrap();
        config.data_dir = dir.path().to_path_buf();
        let tls = crate::tls::Tls::load(&config).unwrap();
        let s2s = S2s::new(&cfg, &tls).unwrap();
        let key = s2s.dialback_key("b.example", "a.example", "id1");
        assert_eq!(key.len(), 64);
        assert!(s2s.key_is_valid("b.example", "a.example", "id1", &key));
        assert!(!s2s.key_is_valid("b.example", "a.example", "id2", &key));
        assert!(!s2s.key_is_valid("c.example", "a.example", "id1", &key));
        assert!(!s2s.key_is_valid("b.example", "a.example", "id1", &key[1..]));
        // The same secret gives the same keys on another start (or another node).
        let again = S2s::new(&cfg, &tls).unwrap();
        assert_eq!(again.dialback_key("b.example", "a.example", "id1"), key);
    }
}
