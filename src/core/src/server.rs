//! The running server: configuration, storage, sessions and the modules' registrations, plus the
//! listeners and signal handling that drive it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use minidom::Element;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::Config;
use crate::module::{DiscoScope, FeaturePhase, Identity, Registrations, SessionEvent};
use crate::session::Sessions;
use crate::tls::Tls;

pub struct Server {
    pub config: Config,
    pub store: hearth_store::Store,
    pub sessions: Sessions,
    pub tls: Tls,
    pub s2s: crate::s2s::S2s,
    pub components: crate::component::Components,
    pub throttle: hearth_auth::Throttle,
    /// The LDAP directory passwords are checked against (`[auth.ldap]`), if any.
    pub directory: Option<Arc<hearth_auth::ldap::Directory>>,
    pub(crate) regs: Registrations,
    pub(crate) resumable: crate::sm::Resumable,
    pub started: Instant,
    pub(crate) stanzas: crate::http::metrics::StanzaCounts,
    /// Client streams open at once, over sockets and web bindings alike (`c2s.max_connections`).
    pub(crate) c2s_slots: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    pub fn new(
        config: Config,
        store: hearth_store::Store,
        tls: Tls,
        mut regs: Registrations,
    ) -> anyhow::Result<Arc<Self>> {
        for start in std::mem::take(&mut regs.on_start) {
            start(&config)?;
        }
        crate::component::register(&config.components, &mut regs)?;
        let auth = &config.auth;
        let throttle = hearth_auth::Throttle::new(
            auth.max_failures_per_ip,
            auth.max_failures_per_account,
            Duration::from_secs(auth.throttle_window_secs),
        );
        let s2s = crate::s2s::S2s::new(&config.s2s, &tls)?;
        let directory = match &config.auth.ldap {
            Some(cfg) => Some(Arc::new(hearth_auth::ldap::Directory::new(cfg.clone())?)),
            None => None,
        };
        let c2s_slots = Arc::new(Semaphore::new(config.c2s.max_connections));
        Ok(Arc::new(Server {
            config,
            store,
            sessions: Sessions::default(),
            tls,
            s2s,
            components: Default::default(),
            throttle,
            directory,
            regs,
            resumable: Default::default(),
            started: Instant::now(),
            stanzas: Default::default(),
            c2s_slots,
            shutdown: watch::channel(false).0,
        }))
    }

    /// Where passwords are checked, which decides the SASL mechanisms offered.
    pub fn password_check(&self) -> hearth_auth::PasswordCheck {
        match self.directory {
            Some(_) => hearth_auth::PasswordCheck::Directory,
            None => hearth_auth::PasswordCheck::Stored {
                allow_plain: self.config.auth.allow_plain,
            },
        }
    }

    /// FAST tokens are not issued with a directory: every login is then checked by it, so an
    /// account disabled there cannot log in with a token.
    pub fn fast_enabled(&self) -> bool {
        self.config.auth.fast.enabled && self.directory.is_none()
    }

    pub fn domain(&self) -> &str {
        &self.config.domain
    }

    /// Whether `domain` is this server's accounts domain (not one of its service domains).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        domain == self.config.domain
    }

    pub fn features(&self, scope: DiscoScope) -> impl Iterator<Item = &str> {
        of(&self.regs.features, scope).map(String::as_str)
    }

    pub fn identities(&self, scope: DiscoScope) -> impl Iterator<Item = &Identity> {
        of(&self.regs.identities, scope)
    }

    pub fn disco_forms(&self, scope: DiscoScope) -> impl Iterator<Item = &Element> {
        of(&self.regs.disco_forms, scope)
    }

    pub fn disco_items(&self) -> &[crate::module::DiscoItem] {
        &self.regs.disco_items
    }

    pub fn disco_nodes(&self) -> &[Arc<dyn crate::module::DiscoNodes>] {
        &self.regs.disco_nodes
    }

    /// Whether `jid`'s account is one of the configured `admins`.
    pub fn is_admin(&self, jid: &crate::jid::Jid) -> bool {
        jid.domain() == self.config.domain
            && self
                .config
                .admins
                .iter()
                .any(|admin| *admin == jid.bare().to_string())
    }

    pub fn stream_features(&self, phase: FeaturePhase) -> impl Iterator<Item = &Element> {
        of(&self.regs.stream_features, phase)
    }

    /// Names of the loaded modules, in load order.
    pub fn loaded_modules(&self) -> &[&'static str] {
        &self.regs.loaded
    }

    pub(crate) async fn session_event(self: &Arc<Self>, event: SessionEvent) {
        // A client that binds the resource of its own parked session (it lost the resumption
        // id) replaces it: what the old one never delivered goes to offline storage, from
        // where the new session gets it.
        if let SessionEvent::Bound(jid) = &event
            && let Some(parked) = self.resumable.take_replaced(jid)
        {
            Box::pin(self.end_parked(parked, "replaced by a new session")).await;
        }
        for hook in &self.regs.session_hooks {
            hook(self.clone(), event.clone()).await;
        }
    }

    /// Modules' per-session state, for saving a resumable session (see `Registrar::session_state`).
    pub(crate) fn export_session_state(&self, session: &crate::session::Session) -> String {
        let table: toml::Table = self
            .regs
            .session_state
            .iter()
            .filter_map(|(name, export, _)| Some((name.to_string(), export(session)?.into())))
            .collect();
        table.to_string()
    }

    pub(crate) fn import_session_state(&self, session: &crate::session::Session, saved: &str) {
        let Ok(table) = saved.parse::<toml::Table>() else {
            return;
        };
        for (name, _, import) in &self.regs.session_state {
            if let Some(toml::Value::String(v)) = table.get(*name) {
                import(session, v);
            }
        }
    }

    /// A receiver that turns true when the server is shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Binds the listeners, starts the modules' workers and serves until SIGTERM/SIGINT. SIGHUP
    /// reloads the TLS certificate without touching live sessions; SIGUSR1 logs the state of
    /// the server-to-server links.
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let c2s_limit = self.c2s_slots.clone();
        let s2s_limit = Arc::new(Semaphore::new(self.config.s2s.max_connections));
        let component_limit = Arc::new(Semaphore::new(crate::component::MAX_CONNECTIONS));
        let s2s = &self.config.s2s;
        let (s2s_plain, s2s_direct) = if s2s.enabled {
            (&s2s.listen[..], &s2s.direct_tls_listen[..])
        } else {
            (&[][..], &[][..])
        };
        // Nothing to accept while no component is configured.
        let components = &self.config.components;
        let component_listen = if components.hosts.is_empty() {
            &[][..]
        } else {
            &components.listen[..]
        };
        let mut listeners = Vec::new();
        for (addrs, direct_tls, peers, limit) in [
            (
                &self.config.c2s.listen[..],
                false,
                Peers::Clients,
                &c2s_limit,
            ),
            (
                &self.config.c2s.direct_tls_listen[..],
                true,
                Peers::Clients,
                &c2s_limit,
            ),
            (s2s_plain, false, Peers::Servers, &s2s_limit),
            (s2s_direct, true, Peers::Servers, &s2s_limit),
            (component_listen, false, Peers::Components, &component_limit),
        ] {
            for addr in addrs {
                let l = listen(*addr).await?;
                tracing::info!(address = %addr, direct_tls, "listening for {}", peers.name());
                listeners.push((l, direct_tls, peers, limit.clone()));
            }
        }
        let http = crate::http::bind(&self).await?;
        let module_listeners =
            std::mem::take(&mut *self.regs.listeners.lock().expect("listeners lock"));
        let mut modules_bound = Vec::new();
        for ml in module_listeners {
            let mut bound = Vec::new();
            for addr in &ml.addrs {
                bound.push(listen(*addr).await.map_err(|e| e.context(ml.setting))?);
            }
            modules_bound.push((ml.serve, bound));
        }
        // After binding (a port in use fails before saved sessions are taken out of the
        // database) and before accepting: a client that connected at once waits in the
        // backlog until its session is back.
        self.restore_parked().await;
        for (serve, bound) in modules_bound {
            tokio::spawn(serve(self.clone(), bound));
        }
        let workers = std::mem::take(&mut *self.regs.workers.lock().expect("workers lock"));
        for (name, worker) in workers {
            let server = self.clone();
            tokio::spawn(async move {
                if let Err(e) = worker(server).await {
                    tracing::error!(worker = name, error = %e, "module worker stopped");
                }
            });
        }
        for (listener, direct_tls, peers, limit) in listeners {
            tokio::spawn(accept_loop(
                self.clone(),
                listener,
                direct_tls,
                peers,
                limit,
            ));
        }
        http.spawn();
        notify_ready();
        self.wait_for_signals().await;
        let goodbyes = self.regs.on_shutdown.iter().map(|f| f(self.clone()));
        if tokio::time::timeout(
            Duration::from_secs(2),
            futures_util::future::join_all(goodbyes),
        )
        .await
        .is_err()
        {
            tracing::warn!("modules took over 2 s to say goodbye at shutdown; stopping anyway");
        }
        let _ = self.shutdown.send(true);
        // Give connection tasks a moment to send their closing stream errors (resumable
        // sessions park themselves instead of ending).
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.sessions.count() > self.resumable.parked_count() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if self.config.c2s.stream_management.persist_across_restart {
            self.save_parked().await;
        } else {
            for (_, parked) in self.resumable.drain_parked() {
                self.end_parked(parked, "server shutdown").await;
            }
        }
        self.store.close().await;
        tracing::info!("hearth stopped");
        Ok(())
    }

    async fn wait_for_signals(&self) {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut hup), Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::user_defined1()),
        ) else {
            tracing::error!("cannot install signal handlers; stop hearth with SIGKILL");
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => match self.tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded; live sessions keep their connections"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: certificate reload failed; still using the previous certificate"),
                },
                _ = usr1.recv() => self.s2s.log_status(),
                _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); return }
                _ = int.recv() => { tracing::info!("SIGINT: shutting down"); return }
            }
        }
    }
}

/// The registrations made for `key` (a disco scope, a stream feature phase).
fn of<K: PartialEq + Copy, T>(items: &[(K, T)], key: K) -> impl Iterator<Item = &T> {
    items.iter().filter(move |(k, _)| *k == key).map(|(_, t)| t)
}

/// A TCP listener on `addr`, for the server's listeners and those modules ask for.
pub(crate) async fn listen(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr).map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e} — is another XMPP server running, or does hearth lack the right to bind this port?")
    })?;
    Ok(socket.listen(1024)?)
}

/// Who connects to a listener.
#[derive(Debug, Clone, Copy)]
enum Peers {
    Clients,
    Servers,
    /// External components (XEP-0114).
    Components,
}

impl Peers {
    fn name(self) -> &'static str {
        match self {
            Peers::Clients => "clients",
            Peers::Servers => "other servers",
            Peers::Components => "components",
        }
    }
}

async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    direct_tls: bool,
    peers: Peers,
    limit: Arc<Semaphore>,
) {
    let mut shutdown = server.shutdown_signal();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((tcp, peer)) => {
                backoff = Duration::from_millis(10);
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    let setting = match peers {
                        Peers::Clients => "c2s.max_connections",
                        Peers::Servers => "s2s.max_connections",
                        Peers::Components => "the component listeners' fixed limit",
                    };
                    tracing::warn!(%peer, setting, "connection limit reached; refusing connection");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let server = server.clone();
                tokio::spawn(async move {
                    match peers {
                        Peers::Clients => crate::c2s::serve(server, tcp, peer, direct_tls).await,
                        Peers::Servers => {
                            crate::s2s::serve_incoming(server, tcp, peer, direct_tls).await
                        }
                        Peers::Components => crate::component::serve(server, tcp, peer).await,
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::error!(error = %e, "accept failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Tells systemd (Type=notify) that hearth is ready; a no-op elsewhere.
fn notify_ready() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}
