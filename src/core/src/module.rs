//! The module interface. A module is loaded once at startup: `init` gets its typed config section
//! (`[modules.<NAME>]`) and registers what it provides on the `Registrar` — stanza hooks, IQ
//! handlers, disco features, stream features, background workers. The core owns the registrations
//! and knows no module by name; `hearth-modules` lists the modules to load.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use minidom::Element;
use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::router::{Context, Flow, IqResult};
use crate::server::Server;
use crate::stanza::Stanza;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How far hearth implements a specification; feeds `hearth xeps` and `xeps/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupportStatus {
    Complete,
    Partial,
}

impl SupportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SupportStatus::Complete => "complete",
            SupportStatus::Partial => "partial",
        }
    }
}

/// A specification a module implements: `"XEP-0199"` or `"RFC 6121"`, the version implemented,
/// the status and a short note on deviations.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub id: &'static str,
    pub version: &'static str,
    pub status: SupportStatus,
    pub note: &'static str,
}

pub trait Module: Send + Sync + Sized + 'static {
    /// Config key (`[modules.NAME]`) and log target.
    const NAME: &'static str;
    /// What it implements.
    const SPECS: &'static [Spec];
    /// Loaded unless `[modules.NAME] enabled = false` (or, when false here, unless `enabled = true`).
    const ENABLED_BY_DEFAULT: bool = true;
    type Config: DeserializeOwned + Default;
    fn init(config: Self::Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>>;
}

/// Where a disco feature or identity is advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoScope {
    /// The server's own JID (the domain).
    Host,
    /// Every account's bare JID (PEP, MAM, push live there).
    Account,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub category: String,
    pub type_: String,
    pub name: Option<String>,
}

/// An entity listed in the server's disco#items (a MUC service, an upload service), or an item
/// of a node (an ad-hoc command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoItem {
    pub jid: String,
    pub node: Option<String>,
    pub name: Option<String>,
}

/// The identities and features of a disco node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub identities: Vec<Identity>,
    pub features: Vec<String>,
}

/// Disco nodes of the server's JID that a module answers for (XEP-0030 §3.2, §4.2), such as
/// the list of ad-hoc commands. Answers may depend on who asks.
pub trait DiscoNodes: Send + Sync + 'static {
    /// The node's identities and features, or the error to answer with (`forbidden` for a
    /// node `requester` may not use); `None` when this module has no such node.
    fn info(
        &self,
        server: &Server,
        requester: &crate::jid::Jid,
        node: &str,
    ) -> Option<Result<NodeInfo, crate::stanza::StanzaError>>;
    /// The node's items; `None` when this module has no such node for `requester`.
    fn items(
        &self,
        server: &Server,
        requester: &crate::jid::Jid,
        node: &str,
    ) -> Option<Vec<DiscoItem>>;
}

/// When a stream feature is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeaturePhase {
    /// After TLS, before authentication (e.g. in-band registration).
    PreAuth,
    /// After authentication, beside resource binding (e.g. roster versioning).
    PostAuth,
}

/// Events about sessions, for modules that keep per-session behaviour (presence broadcast on
/// disconnect, offline delivery on first presence).
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A resource was bound.
    Bound(crate::jid::Jid),
    /// A session ended and is no longer bound; `was_available` tells whether it had sent
    /// available presence. `session` still holds its last presence state (directed presence).
    Closed {
        jid: crate::jid::Jid,
        was_available: bool,
        reason: String,
        session: Arc<crate::session::Session>,
    },
}

pub(crate) type HookFn = Arc<dyn Fn(Context, Stanza) -> BoxFuture<Flow> + Send + Sync>;
pub(crate) type IqFn = Arc<dyn Fn(Context, Stanza) -> BoxFuture<IqResult> + Send + Sync>;
pub(crate) type SessionFn = Arc<dyn Fn(Arc<Server>, SessionEvent) -> BoxFuture<()> + Send + Sync>;
pub(crate) type InlineFn =
    Arc<dyn Fn(Context, Element) -> BoxFuture<Option<Element>> + Send + Sync>;
pub(crate) type StateExportFn =
    Arc<dyn Fn(&crate::session::Session) -> Option<String> + Send + Sync>;
pub(crate) type StateImportFn = Arc<dyn Fn(&crate::session::Session, &str) + Send + Sync>;
pub(crate) type ShutdownFn = Arc<dyn Fn(Arc<Server>) -> BoxFuture<()> + Send + Sync>;
pub(crate) type ServiceFn = Arc<dyn Fn(Context, Stanza) -> BoxFuture<()> + Send + Sync>;
pub(crate) type WorkerFn = Box<dyn FnOnce(Arc<Server>) -> BoxFuture<anyhow::Result<()>> + Send>;
pub(crate) type StartFn = Box<dyn FnOnce(&Config) -> anyhow::Result<()> + Send + Sync>;
pub(crate) type ListenerFn =
    Box<dyn FnOnce(Arc<Server>, Vec<tokio::net::TcpListener>) -> BoxFuture<()> + Send>;

/// Sockets a module serves itself (the bytestream proxy), bound with the server's own.
pub(crate) struct ModuleListener {
    /// The config key naming the addresses, for error messages.
    pub setting: &'static str,
    pub addrs: Vec<std::net::SocketAddr>,
    pub serve: ListenerFn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqType {
    Get,
    Set,
}

/// Who answers an IQ: `Host` for the domain, `Account` for a bare account JID (including an IQ
/// without `to`, which RFC 6120 §10.3.3 addresses to the sender's own account), `Unauthenticated`
/// for IQs on a secured stream before login (in-band registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqTarget {
    Host,
    Account,
    Unauthenticated,
}

/// Everything the modules registered, owned by the server.
#[derive(Default)]
pub struct Registrations {
    pub(crate) hooks: std::collections::HashMap<String, Vec<(i32, HookFn)>>,
    pub(crate) iq: std::collections::HashMap<(IqType, IqTarget, String, String), IqFn>,
    pub(crate) session_hooks: Vec<SessionFn>,
    /// Service domains (such as a MUC service) and who takes every stanza addressed to them.
    pub(crate) services: std::collections::HashMap<String, ServiceFn>,
    pub(crate) workers: std::sync::Mutex<Vec<(&'static str, WorkerFn)>>,
    pub(crate) on_start: Vec<StartFn>,
    pub(crate) listeners: std::sync::Mutex<Vec<ModuleListener>>,
    pub(crate) on_shutdown: Vec<ShutdownFn>,
    pub features: Vec<(DiscoScope, String)>,
    pub identities: Vec<(DiscoScope, Identity)>,
    pub disco_items: Vec<DiscoItem>,
    pub(crate) disco_nodes: Vec<Arc<dyn DiscoNodes>>,
    /// Data forms extending disco#info (XEP-0128), such as contact addresses (XEP-0157).
    pub disco_forms: Vec<(DiscoScope, Element)>,
    pub(crate) stream_features: Vec<(FeaturePhase, Element)>,
    pub(crate) bind2_inline: Vec<(String, InlineFn)>,
    pub(crate) session_state: Vec<(&'static str, StateExportFn, StateImportFn)>,
    pub specs: Vec<(&'static str, Spec)>,
    pub loaded: Vec<&'static str>,
    /// Routes served by the built-in web server (file upload); the server state is theirs.
    pub(crate) http_routes: Vec<axum::Router<Arc<Server>>>,
    /// What `/metrics` reports besides the core's figures.
    pub(crate) metrics: prometheus_client::registry::Registry,
}

pub struct Registrar<'a> {
    config: &'a Config,
    regs: Registrations,
    shared: Vec<Arc<dyn std::any::Any + Send + Sync>>,
}

impl<'a> Registrar<'a> {
    pub fn new(config: &'a Config) -> Self {
        Self {
            config,
            regs: Registrations::default(),
            shared: Vec::new(),
        }
    }

    /// The one `T` shared by every module that asks for it, created on first use: how modules
    /// cooperate without the core knowing them (a registry of ad-hoc commands that other
    /// modules add to and one module serves).
    pub fn shared<T: Default + Send + Sync + 'static>(&mut self) -> Arc<T> {
        if let Some(found) = self
            .shared
            .iter()
            .find_map(|s| s.clone().downcast::<T>().ok())
        {
            return found;
        }
        let created = Arc::new(T::default());
        self.shared.push(created.clone());
        created
    }

    pub fn config(&self) -> &Config {
        self.config
    }

    /// Loads module `M` if enabled: deserializes its section (unknown keys are errors) and runs
    /// `init`. Returns the module instance, or `None` when disabled.
    pub fn load<M: Module>(&mut self) -> anyhow::Result<Option<Arc<M>>> {
        let Some(cfg) = module_config::<M>(self.config)? else {
            tracing::debug!(module = M::NAME, "module disabled");
            return Ok(None);
        };
        let module = M::init(cfg, self)
            .map_err(|e| e.context(format!("module {} failed to start", M::NAME)))?;
        for spec in M::SPECS {
            self.regs.specs.push((M::NAME, *spec));
        }
        self.regs.loaded.push(M::NAME);
        Ok(Some(module))
    }

    /// Hooks a stanza event (`message/bare`, `pre-presence/full`, or a custom event another module
    /// fires, such as `message/offline`). Higher priority runs first; a handler returning
    /// `Flow::Stop` ends the chain.
    pub fn hook<F, Fut>(&mut self, event: &str, priority: i32, f: F)
    where
        F: Fn(Context, Stanza) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Flow> + Send + 'static,
    {
        let f: HookFn = Arc::new(move |cx, st| Box::pin(f(cx, st)));
        let list = self.regs.hooks.entry(event.to_string()).or_default();
        list.push((priority, f));
        list.sort_by_key(|(p, _)| std::cmp::Reverse(*p));
    }

    /// `hook` for a handler that needs the module's state: `f` gets its own `Arc` of `state`.
    pub fn hook_with<T, F, Fut>(&mut self, event: &str, priority: i32, state: &Arc<T>, f: F)
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>, Context, Stanza) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Flow> + Send + 'static,
    {
        let state = state.clone();
        self.hook(event, priority, move |cx, st| f(state.clone(), cx, st));
    }

    /// `iq` for a handler that needs the module's state.
    pub fn iq_with<T, F, Fut>(
        &mut self,
        type_: IqType,
        target: IqTarget,
        ns: &str,
        name: &str,
        state: &Arc<T>,
        f: F,
    ) where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>, Context, Stanza) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = IqResult> + Send + 'static,
    {
        let state = state.clone();
        self.iq(type_, target, ns, name, move |cx, st| {
            f(state.clone(), cx, st)
        });
    }

    /// Claims IQs of `type_` to `target` whose payload is `<name xmlns=ns>`. The handler's
    /// `Ok(payload)` becomes the `result`, `Err` the `error` reply.
    pub fn iq<F, Fut>(&mut self, type_: IqType, target: IqTarget, ns: &str, name: &str, f: F)
    where
        F: Fn(Context, Stanza) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = IqResult> + Send + 'static,
    {
        let key = (type_, target, ns.to_string(), name.to_string());
        let f: IqFn = Arc::new(move |cx, st| Box::pin(f(cx, st)));
        let previous = self.regs.iq.insert(key.clone(), f);
        assert!(previous.is_none(), "two modules claim IQ {key:?}");
    }

    pub fn on_session<F, Fut>(&mut self, f: F)
    where
        F: Fn(Arc<Server>, SessionEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.regs
            .session_hooks
            .push(Arc::new(move |s, e| Box::pin(f(s, e))));
    }

    /// A background task started once the server runs (expiry, timers).
    pub fn worker<F, Fut>(&mut self, name: &'static str, f: F)
    where
        F: FnOnce(Arc<Server>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.regs
            .workers
            .lock()
            .expect("workers lock")
            .push((name, Box::new(move |s| Box::pin(f(s)))));
    }

    /// Runs once as the server starts, before it serves (not when a command such as `hearth
    /// xeps` only loads the modules): for what a module keeps in `data_dir`. An error stops
    /// the start.
    pub fn on_start<F>(&mut self, f: F)
    where
        F: FnOnce(&Config) -> anyhow::Result<()> + Send + Sync + 'static,
    {
        self.regs.on_start.push(Box::new(f));
    }

    /// TCP listeners on `addrs`, bound at startup with the server's own (an address in use
    /// stops startup, naming `setting`); `serve` gets them once the server runs.
    pub fn listener<F, Fut>(
        &mut self,
        setting: &'static str,
        addrs: Vec<std::net::SocketAddr>,
        serve: F,
    ) where
        F: FnOnce(Arc<Server>, Vec<tokio::net::TcpListener>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.regs
            .listeners
            .lock()
            .expect("listeners lock")
            .push(ModuleListener {
                setting,
                addrs,
                serve: Box::new(move |s, l| Box::pin(serve(s, l))),
            });
    }

    /// Runs when the server is asked to stop, before client streams close, so a module can
    /// still tell clients something (rooms tell occupants they are shutting down). It gets a
    /// couple of seconds.
    pub fn on_shutdown<F, Fut>(&mut self, f: F)
    where
        F: Fn(Arc<Server>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.regs
            .on_shutdown
            .push(Arc::new(move |s| Box::pin(f(s))));
    }

    pub fn feature(&mut self, scope: DiscoScope, var: &str) {
        self.regs.features.push((scope, var.to_string()));
    }

    pub fn identity(&mut self, scope: DiscoScope, category: &str, type_: &str, name: Option<&str>) {
        let id = Identity {
            category: category.into(),
            type_: type_.into(),
            name: name.map(Into::into),
        };
        self.regs.identities.push((scope, id));
    }

    /// Hosts a service on its own domain (a subdomain such as `conference.example.org`):
    /// every stanza addressed to that domain or to a JID at it goes to `f`, after the sender's
    /// `pre-*` hooks, instead of the account events. Fails if the domain is taken.
    pub fn service<F, Fut>(&mut self, domain: &str, f: F) -> anyhow::Result<()>
    where
        F: Fn(Context, Stanza) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        anyhow::ensure!(
            domain != self.config.domain && !self.regs.services.contains_key(domain),
            "the service domain {domain} is already in use"
        );
        let f: ServiceFn = Arc::new(move |cx, st| Box::pin(f(cx, st)));
        self.regs.services.insert(domain.to_string(), f);
        Ok(())
    }

    pub fn disco_item(&mut self, jid: &str, name: Option<&str>) {
        self.regs.disco_items.push(DiscoItem {
            jid: jid.into(),
            node: None,
            name: name.map(Into::into),
        });
    }

    /// Answers disco#info and disco#items queries for nodes of the server's JID.
    pub fn disco_nodes(&mut self, nodes: Arc<dyn DiscoNodes>) {
        self.regs.disco_nodes.push(nodes);
    }

    /// Adds a data form (`<x xmlns='jabber:x:data' type='result'/>` with a FORM_TYPE) to the
    /// disco#info of `scope` (XEP-0128).
    pub fn disco_form(&mut self, scope: DiscoScope, form: Element) {
        self.regs.disco_forms.push((scope, form));
    }

    /// Serves `router`'s routes on the HTTP listeners (`[http]`), beside WebSocket and BOSH.
    /// Paths should start with the module's name (`/upload/...`).
    pub fn http_routes(&mut self, router: axum::Router<Arc<Server>>) {
        self.regs.http_routes.push(router);
    }

    /// Where a module registers its Prometheus metrics (names start with `hearth_`).
    pub fn metrics(&mut self) -> &mut prometheus_client::registry::Registry {
        &mut self.regs.metrics
    }

    pub fn stream_feature(&mut self, phase: FeaturePhase, el: Element) {
        self.regs.stream_features.push((phase, el));
    }

    /// Offers a feature a client may enable inline when it binds with Bind2 (XEP-0386), such as
    /// carbons: the namespace is listed in `<inline/>`, and when the client's `<bind/>` carries
    /// an element of that namespace, `f` runs with the new session as origin; its answer, if
    /// any, goes into `<bound/>`.
    pub fn bind2_inline<F, Fut>(&mut self, ns: &str, f: F)
    where
        F: Fn(Context, Element) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Element>> + Send + 'static,
    {
        let f: InlineFn = Arc::new(move |cx, el| Box::pin(f(cx, el)));
        self.regs.bind2_inline.push((ns.to_string(), f));
    }

    /// Per-session state that must survive a restart with a resumable session (XEP-0198), such
    /// as carbons being enabled: `export` turns it into a string when the session is saved at
    /// shutdown, `import` sets it again on the restored session.
    pub fn session_state<E, I>(&mut self, name: &'static str, export: E, import: I)
    where
        E: Fn(&crate::session::Session) -> Option<String> + Send + Sync + 'static,
        I: Fn(&crate::session::Session, &str) + Send + Sync + 'static,
    {
        self.regs
            .session_state
            .push((name, Arc::new(export), Arc::new(import)));
    }

    /// Disco features registered so far (a module loaded last can hash them for entity caps).
    pub fn features(&self) -> &[(DiscoScope, String)] {
        &self.regs.features
    }

    /// Disco identities registered so far.
    pub fn identities(&self) -> &[(DiscoScope, Identity)] {
        &self.regs.identities
    }

    pub fn disco_forms(&self) -> &[(DiscoScope, Element)] {
        &self.regs.disco_forms
    }

    pub fn finish(self) -> Registrations {
        self.regs
    }
}

/// What the core itself implements (stream layer, TLS, SASL, binding), for `hearth xeps`.
pub const CORE_SPECS: &[Spec] = &[
    Spec {
        id: "RFC 6120",
        version: "",
        status: SupportStatus::Complete,
        note: "c2s streams, STARTTLS required, SASL, resource binding; s2s streams with STARTTLS (required by default), SASL EXTERNAL, SRV resolution, one pooled link per domain pair",
    },
    Spec {
        id: "RFC 7590",
        version: "",
        status: SupportStatus::Complete,
        note: "TLS 1.2 and 1.3 only (rustls)",
    },
    Spec {
        id: "RFC 7622",
        version: "",
        status: SupportStatus::Partial,
        note: "bare JIDs by RFC 6122 stringprep (as Prosody and ejabberd); resources by resourceprep, else PRECIS OpaqueString",
    },
    Spec {
        id: "RFC 9266",
        version: "",
        status: SupportStatus::Complete,
        note: "tls-exporter channel binding on TLS 1.3",
    },
    Spec {
        id: "XEP-0198",
        version: "1.6.3",
        status: SupportStatus::Complete,
        note: "acks and resumption; unacknowledged messages go to offline storage when a session is not resumed; resumable sessions are saved at shutdown and resumable after a restart. On server links: acks without resumption, unacknowledged stanzas sent again on the next connection",
    },
    Spec {
        id: "XEP-0178",
        version: "1.2",
        status: SupportStatus::Complete,
        note: "SASL EXTERNAL between servers, offered and used when the certificate is valid for the domain (system roots, s2s.ca_file; DNS-ID names)",
    },
    Spec {
        id: "XEP-0288",
        version: "1.0.1",
        status: SupportStatus::Complete,
        note: "offered on incoming streams (which then carry hearth's stanzas for the authenticated pairs, with acks when the peer enables them) and requested on outgoing ones when offered (Prosody, hearth)",
    },
    Spec {
        id: "XEP-0220",
        version: "1.1.1",
        status: SupportStatus::Complete,
        note: "dialback as the fallback to certificates, keys by XEP-0185 (HMAC-SHA256 of a secret), verification on a separate stream, dialback errors; a certificate valid for the domain is accepted without asking back (XEP-0344)",
    },
    Spec {
        id: "XEP-0352",
        version: "1.0.0",
        status: SupportStatus::Complete,
        note: "presence and chat states held for inactive clients (newest presence per contact); bodies, encrypted messages, calls and IQs flush",
    },
    Spec {
        id: "XEP-0386",
        version: "1.1.0",
        status: SupportStatus::Complete,
        note: "Bind2 inside SASL2: resources stable per device (tag and user-agent id), carbons and Stream Management enabled inline",
    },
    Spec {
        id: "XEP-0388",
        version: "1.0.4",
        status: SupportStatus::Partial,
        note: "the SASL mechanisms of SASL1 with inline Bind2, Stream Management resumption and FAST; no tasks, no upgrades",
    },
    Spec {
        id: "XEP-0484",
        version: "0.2.0",
        status: SupportStatus::Complete,
        note: "HT-SHA-256-EXPR, -ENDP and -NONE; tokens per device in two slots, rotated at half their lifetime (auth.fast), ended on logout and on a new password; no TLS 0-RTT",
    },
    Spec {
        id: "XEP-0368",
        version: "1.1.0",
        status: SupportStatus::Complete,
        note: "direct TLS on c2s.direct_tls_listen (ALPN xmpp-client) and s2s.direct_tls_listen (xmpp-server); _xmpps-server and _xmpp-server records tried in one order",
    },
    Spec {
        id: "XEP-0440",
        version: "1.0.0",
        status: SupportStatus::Complete,
        note: "tls-exporter and tls-server-end-point advertised",
    },
    Spec {
        id: "RFC 7395",
        version: "",
        status: SupportStatus::Complete,
        note: "XMPP over WebSocket at /xmpp-websocket on the HTTPS listeners (subprotocol xmpp required), the same session features as TCP (SASL, SM resumption, CSI)",
    },
    Spec {
        id: "XEP-0124",
        version: "1.11.2",
        status: SupportStatus::Partial,
        note: "BOSH at /http-bind: requests taken in rid order, answers repeated for retransmitted rids, hold 1 and requests 2 whatever the client asks, terminal conditions; no ack attribute, pause, key sequences or several streams per session",
    },
    Spec {
        id: "XEP-0206",
        version: "1.4",
        status: SupportStatus::Complete,
        note: "XMPP over BOSH with stream restarts (xmpp:restart)",
    },
    Spec {
        id: "XEP-0156",
        version: "1.4.0",
        status: SupportStatus::Complete,
        note: "/.well-known/host-meta and host-meta.json list the BOSH and WebSocket URLs (from http.external_url); browsers look them up on https://DOMAIN/, so serve hearth there or proxy those paths; no DNS TXT records (deprecated)",
    },
    Spec {
        id: "XEP-0114",
        version: "1.6",
        status: SupportStatus::Complete,
        note: "jabber:component:accept on components.listen (loopback by default, no TLS), one connection per configured domain (a second one gets conflict), from addresses checked against the component's domain; components are reachable from local users, rooms, other components and federation, and listed in the server's disco#items",
    },
    Spec {
        id: "XEP-0199",
        version: "2.0.1",
        status: SupportStatus::Complete,
        note: "the server pings silent clients (c2s.ping_after_secs) and closes dead connections",
    },
];

/// Module `M`'s section of the configuration, deserialized (unknown keys are errors); `None`
/// when the module is disabled. Also for commands that work without the server running.
pub fn module_config<M: Module>(config: &Config) -> anyhow::Result<Option<M::Config>> {
    let mut table = config.module_section(M::NAME);
    let enabled = match table.remove("enabled") {
        None => M::ENABLED_BY_DEFAULT,
        Some(toml::Value::Boolean(b)) => b,
        Some(_) => anyhow::bail!("modules.{}.enabled must be true or false", M::NAME),
    };
    if !enabled {
        return Ok(None);
    }
    let de = toml::Value::Table(table);
    serde_path_to_error::deserialize(de)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("modules.{}.{}: {}", M::NAME, e.path(), e.inner()))
}

/// A DOAP description (the XSF's `xmpp:SupportedXep` vocabulary) of what `specs` implement,
/// for `xeps/hearth.doap`. RFCs are listed as `implements` links.
pub fn doap(specs: &[(&str, Spec)]) -> String {
    let mut out = String::from(concat!(
        "<?xml version='1.0' encoding='UTF-8'?>\n",
        "<rdf:RDF xmlns='http://usefulinc.com/ns/doap#' xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'\n",
        "         xmlns:foaf='http://xmlns.com/foaf/0.1/' xmlns:xmpp='https://linkmauve.fr/ns/xmpp-doap#'>\n",
        "  <Project>\n",
        "    <name>hearth</name>\n",
        "    <shortdesc>A self-hosted XMPP server</shortdesc>\n",
        "    <license rdf:resource='https://www.apache.org/licenses/LICENSE-2.0'/>\n",
        "    <programming-language>Rust</programming-language>\n",
        "    <category rdf:resource='https://linkmauve.fr/ns/xmpp-doap#category-server'/>\n",
    ));
    let mut seen = std::collections::BTreeSet::new();
    for (_, s) in specs {
        if !seen.insert(s.id) {
            continue;
        }
        if let Some(rfc) = s.id.strip_prefix("RFC ") {
            out.push_str(&format!(
                "    <implements rdf:resource='https://www.rfc-editor.org/info/rfc{rfc}'/>\n"
            ));
        } else if let Some(xep) = s.id.strip_prefix("XEP-") {
            out.push_str(&format!(
                concat!(
                    "    <implements>\n      <xmpp:SupportedXep>\n",
                    "        <xmpp:xep rdf:resource='https://xmpp.org/extensions/xep-{}.html'/>\n",
                    "        <xmpp:version>{}</xmpp:version>\n        <xmpp:status>{}</xmpp:status>\n",
                    "        <xmpp:note>{}</xmpp:note>\n",
                    "      </xmpp:SupportedXep>\n    </implements>\n"
                ),
                xep,
                s.version,
                s.status.as_str(),
                s.note.replace('&', "&amp;").replace('<', "&lt;")
            ));
        }
    }
    out.push_str("  </Project>\n</rdf:RDF>\n");
    out
}
