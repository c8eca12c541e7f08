//! The server configuration: `hearth.toml`, typed. Every section denies unknown keys so a typo is an
//! error at startup (and in `hearth check`), not a silently ignored setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The embedded default: `localhost`, data in `./data`, self-signed certificate, SQLite.
pub const DEFAULT_CONFIG: &str = r#"
domain = "localhost"
data_dir = "./data"
"#;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The XMPP domain served (the part after `@` in user addresses).
    pub domain: String,
    /// Where the database and the generated certificate live. Relative paths are taken from the
    /// directory hearth is started in.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Accounts of this domain allowed to administer the server (ad-hoc commands of XEP-0133),
    /// as bare JIDs. Normalised when the configuration is parsed.
    #[serde(default)]
    pub admins: Vec<String>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub c2s: C2sConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub s2s: S2sConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub components: ComponentsConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// `[modules.<name>]` sections, each deserialized by its module into its own typed config.
    #[serde(default)]
    pub modules: BTreeMap<String, toml::Table>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter such as `info,hearth_core=debug`.
    /// The `RUST_LOG` environment variable overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain for the domain (leaf first). When both `certificate` and `key` are
    /// unset, hearth generates a self-signed certificate in `data_dir` on first start.
    pub certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C2sConfig {
    /// Client listeners with STARTTLS (RFC 6120). TLS is required before authentication.
    pub listen: Vec<SocketAddr>,
    /// Client listeners with direct TLS (XEP-0368, ALPN `xmpp-client`).
    pub direct_tls_listen: Vec<SocketAddr>,
    /// Largest stanza accepted, in bytes; larger ones close the stream with `policy-violation`.
    pub max_stanza_size: usize,
    /// Deepest element nesting accepted inside a stanza.
    pub max_depth: usize,
    /// Most attributes accepted on one element.
    pub max_attributes: usize,
    /// Seconds a new connection has to authenticate and bind before it is closed.
    pub handshake_timeout_secs: u64,
    /// Seconds of silence after which the server pings the client (XEP-0199).
    pub ping_after_secs: u64,
    /// Seconds to wait for any traffic after that ping before the connection is declared dead.
    pub ping_timeout_secs: u64,
    /// Most stanzas queued for one client before it is disconnected as too slow.
    pub max_queued_stanzas: usize,
    /// Most connections open at once; further ones are refused at accept time.
    pub max_connections: usize,
    pub stream_management: StreamManagementConfig,
    pub csi: CsiConfig,
}

/// Stream Management (XEP-0198): acknowledgements and resumption of dropped sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamManagementConfig {
    pub enabled: bool,
    /// Seconds a dropped session waits to be resumed (a client may ask for less). When it
    /// expires, its unacknowledged messages go to offline storage.
    pub resume_timeout_secs: u64,
    /// Save resumable sessions at shutdown so clients resume them after a restart.
    pub persist_across_restart: bool,
}

impl Default for StreamManagementConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            resume_timeout_secs: 300,
            persist_across_restart: true,
        }
    }
}

/// Client State Indication (XEP-0352): what an inactive client (a phone with its screen off) is
/// spared until it becomes active or something urgent arrives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsiConfig {
    pub enabled: bool,
    /// Stanzas held back for one inactive client before they are all sent anyway.
    pub max_held_stanzas: usize,
}

impl Default for CsiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_held_stanzas: 100,
        }
    }
}

impl Default for C2sConfig {
    fn default() -> Self {
        Self {
            listen: vec!["[::]:5222".parse().expect("literal")],
            direct_tls_listen: vec!["[::]:5223".parse().expect("literal")],
            max_stanza_size: 256 * 1024,
            max_depth: 32,
            max_attributes: 64,
            handshake_timeout_secs: 60,
            ping_after_secs: 300,
            ping_timeout_secs: 60,
            max_queued_stanzas: 10_000,
            max_connections: 20_000,
            stream_management: StreamManagementConfig::default(),
            csi: CsiConfig::default(),
        }
    }
}

/// Server-to-server federation (RFC 6120, XEP-0220, XEP-0178, XEP-0368).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S2sConfig {
    /// Federate at all. Off: no s2s listener, and stanzas to other domains are answered with
    /// `remote-server-not-found`.
    pub enabled: bool,
    /// Listeners for other servers with STARTTLS (`_xmpp-server._tcp`, port 5269).
    pub listen: Vec<SocketAddr>,
    /// Listeners with direct TLS (XEP-0368, `_xmpps-server._tcp`, ALPN `xmpp-server`).
    pub direct_tls_listen: Vec<SocketAddr>,
    /// Refuse streams that are not encrypted (both directions).
    pub require_encryption: bool,
    /// How other servers must prove their identity unless `peers` says otherwise.
    pub authentication: S2sAuth,
    /// Secret the dialback keys (XEP-0185) are derived from. Unset: a random one per start,
    /// which is right for a single server.
    pub dialback_secret: Option<String>,
    /// Extra PEM certificates trusted for other servers' certificates, in addition to the
    /// system's store (a company CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// A DNS server to ask instead of the system's resolvers (`/etc/hosts` is read either way).
    pub dns_server: Option<SocketAddr>,
    /// Seconds a remote server has to become reachable (DNS, TCP, TLS, authentication, with
    /// retries) before the stanzas waiting for it are bounced to their senders.
    pub connect_timeout_secs: u64,
    /// Seconds an outgoing link with no traffic stays open.
    pub idle_timeout_secs: u64,
    /// Seconds between whitespace keep-alives on a quiet outgoing link (dead-peer detection).
    pub keepalive_secs: u64,
    /// Stanzas queued for one remote domain (while connecting or when it reads slowly); more
    /// are bounced with `resource-constraint`.
    pub max_queued_stanzas: usize,
    /// Incoming s2s connections open at once (all domains together).
    pub max_connections: usize,
    /// Incoming connections authenticated for one remote domain at once.
    pub max_connections_per_domain: usize,
    /// Stanzas per second read from one incoming connection (bursts of twice that); beyond it
    /// hearth reads more slowly, so a flooding server is slowed down, nothing is dropped.
    /// 0: no limit.
    pub max_stanzas_per_second: u32,
    /// Largest stanza accepted from another server, in bytes.
    pub max_stanza_size: usize,
    /// Domains never federated with (neither direction).
    pub blocked_domains: Vec<String>,
    /// Per remote domain: a static address (for LANs without DNS records) and/or an
    /// authentication policy.
    pub peers: BTreeMap<String, S2sPeer>,
}

/// What a remote server must show to be accepted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum S2sAuth {
    /// A certificate valid for its domain (SASL EXTERNAL), or else Server Dialback.
    Any,
    /// Only a certificate valid for its domain.
    Certificate,
    /// No federation with this domain.
    Refuse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S2sPeer {
    /// `host:port` or `ip:port` to connect to instead of asking DNS.
    pub address: Option<String>,
    /// Whether `address` speaks TLS from the first byte (XEP-0368).
    #[serde(default)]
    pub direct_tls: bool,
    pub authentication: Option<S2sAuth>,
}

impl Default for S2sConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: vec!["[::]:5269".parse().expect("literal")],
            direct_tls_listen: Vec::new(),
            require_encryption: true,
            authentication: S2sAuth::Any,
            dialback_secret: None,
            ca_file: None,
            dns_server: None,
            connect_timeout_secs: 30,
            idle_timeout_secs: 600,
            keepalive_secs: 60,
            max_queued_stanzas: 10_000,
            max_connections: 1_000,
            max_connections_per_domain: 8,
            max_stanzas_per_second: 500,
            max_stanza_size: 512 * 1024,
            blocked_domains: Vec::new(),
            peers: BTreeMap::new(),
        }
    }
}

impl S2sConfig {
    /// The authentication policy for `domain`; blocked domains are refused.
    pub fn policy(&self, domain: &str) -> S2sAuth {
        if self.blocked_domains.iter().any(|d| d == domain) {
            return S2sAuth::Refuse;
        }
        self.peers
            .get(domain)
            .and_then(|p| p.authentication)
            .unwrap_or(self.authentication)
    }
}

/// External components (XEP-0114): gateways and bots that connect over TCP with a shared secret
/// and serve a domain of their own, such as `irc.example.org`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComponentsConfig {
    /// Listeners for components (port 5347 by custom). The handshake proves the secret without
    /// sending it, but everything after it travels in clear: keep this on loopback, or on a
    /// private network or tunnel. Nothing listens while no component is configured.
    pub listen: Vec<SocketAddr>,
    /// Largest stanza accepted from a component, in bytes.
    pub max_stanza_size: usize,
    /// Stanzas waiting for one component (when it reads slowly); more are bounced with
    /// `resource-constraint`.
    pub max_queued_stanzas: usize,
    /// The components allowed to connect, by their domain.
    pub hosts: BTreeMap<String, ComponentHost>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentHost {
    /// The secret shared with the component.
    pub secret: String,
    /// The name the server's service discovery shows for it (disco#items).
    pub name: Option<String>,
}

impl Default for ComponentsConfig {
    fn default() -> Self {
        Self {
            listen: vec!["127.0.0.1:5347".parse().expect("literal")],
            max_stanza_size: 512 * 1024,
            max_queued_stanzas: 10_000,
            hosts: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// PBKDF2 iterations used when a password is set (SCRAM; at least 4096).
    pub scram_iterations: u32,
    /// Offer PLAIN (always only inside TLS). Needed by some old clients; SCRAM is preferred.
    pub allow_plain: bool,
    /// Failed logins allowed from one IP address per `throttle_window_secs`; 0 disables the limit.
    pub max_failures_per_ip: u32,
    /// Failed logins allowed for one account per `throttle_window_secs`; 0 disables the limit.
    pub max_failures_per_account: u32,
    pub throttle_window_secs: u64,
    pub fast: FastConfig,
    /// Check passwords against an LDAP directory (Active Directory, OpenLDAP) instead of the
    /// accounts hearth stores.
    pub ldap: Option<hearth_auth::ldap::LdapConfig>,
}

/// FAST (XEP-0484): tokens a client logs in with in one round trip after a password login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FastConfig {
    pub enabled: bool,
    /// Seconds a token stays valid; a device offline longer logs in with its password again.
    pub token_lifetime_secs: u64,
}

impl Default for FastConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            // Three weeks: a phone left in a drawer over a holiday still reconnects.
            token_lifetime_secs: 21 * 86_400,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            scram_iterations: 10_000,
            allow_plain: true,
            max_failures_per_ip: 20,
            max_failures_per_account: 10,
            throttle_window_secs: 300,
            fast: FastConfig::default(),
            ldap: None,
        }
    }
}

/// The built-in web server: WebSocket (RFC 7395) and BOSH (XEP-0206) for browser clients,
/// host-meta (XEP-0156), and what modules serve over HTTP (file upload).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// HTTPS listeners, with the XMPP certificate.
    pub listen: Vec<SocketAddr>,
    /// Plain HTTP listeners for a reverse proxy that terminates TLS in front of hearth. Bind
    /// them to loopback: what arrives here is treated as encrypted (logins are allowed).
    pub plain_listen: Vec<SocketAddr>,
    /// The address clients use, without a trailing slash, such as `https://chat.example.org`
    /// behind a reverse proxy. Unset: `https://DOMAIN:PORT` with the first HTTPS listener's port.
    pub external_url: Option<String>,
    /// Listeners for `/health` and `/metrics` (Prometheus), kept off the public ports.
    pub internal_listen: Vec<SocketAddr>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (for login throttling and logs).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Web origins allowed to call hearth from a browser (CORS); `["*"]` allows every site.
    pub cors_origins: Vec<String>,
    /// Most HTTP connections open at once.
    pub max_connections: usize,
    /// Serve XMPP over WebSocket at `/xmpp-websocket`.
    pub websocket: bool,
    /// Serve XMPP over BOSH at `/http-bind`.
    pub bosh: bool,
    /// Longest a BOSH request is held waiting for something to send, in seconds.
    pub bosh_max_wait_secs: u64,
    /// Seconds without a request after which a BOSH session is considered gone.
    pub bosh_inactivity_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: vec!["[::]:5443".parse().expect("literal")],
            plain_listen: Vec::new(),
            external_url: None,
            internal_listen: vec!["127.0.0.1:5281".parse().expect("literal")],
            trusted_proxies: Vec::new(),
            cors_origins: vec!["*".into()],
            max_connections: 10_000,
            websocket: true,
            bosh: true,
            bosh_max_wait_secs: 60,
            bosh_inactivity_secs: 60,
        }
    }
}

impl HttpConfig {
    /// The base URL clients are given (host-meta, upload slots).
    pub fn base_url(&self, domain: &str) -> String {
        match &self.external_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => match self.listen.first() {
                Some(a) if a.port() == 443 => format!("https://{domain}"),
                Some(a) => format!("https://{domain}:{}", a.port()),
                None => format!("https://{domain}"),
            },
        }
    }
}

/// How long chat data is kept (data protection): what is older is removed at startup and then
/// every `check_interval_secs`. 0 keeps it until the user or an administrator deletes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days 1:1 messages stay in users' archives (XEP-0313).
    pub archive_days: u64,
    /// Days messages stay in rooms' archives.
    pub muc_archive_days: u64,
    /// Days uploaded files are kept; when shorter than `modules.upload.expire_after_secs`
    /// (or that is 0), it applies instead.
    pub upload_days: u64,
    /// Days undelivered messages wait in offline storage.
    pub offline_days: u64,
    /// Seconds between runs of retention and of the erasure of accounts whose grace period
    /// (`hearth user delete --grace-days`) ended.
    pub check_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            archive_days: 0,
            muc_archive_days: 0,
            upload_days: 0,
            offline_days: 0,
            check_interval_secs: 3600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// SQLite database file; relative to `data_dir`.
    pub sqlite: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            sqlite: PathBuf::from("hearth.sqlite"),
        }
    }
}

impl Config {
    /// Parses a configuration text; errors name the offending key (`c2s.max_depth: invalid type`).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let de = toml::Deserializer::parse(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut cfg: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner().message()))?;
        cfg.domain = normalise_domain(&cfg.domain)?;
        cfg.components.hosts = std::mem::take(&mut cfg.components.hosts)
            .into_iter()
            .map(|(domain, host)| {
                let normalised = normalise_domain(&domain)
                    .with_context(|| format!("components.hosts.\"{domain}\""))?;
                Ok((normalised, host))
            })
            .collect::<anyhow::Result<_>>()?;
        cfg.admins = cfg
            .admins
            .iter()
            .map(|a| normalise_admin(a, &cfg.domain))
            .collect::<anyhow::Result<_>>()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads `path`, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            None => Self::parse(DEFAULT_CONFIG),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read config file {}", p.display()))?;
                Self::parse(&text).with_context(|| format!("in config file {}", p.display()))
            }
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.auth.scram_iterations >= 4096,
            "auth.scram_iterations must be at least 4096 (RFC 7677)"
        );
        anyhow::ensure!(
            self.tls.certificate.is_some() == self.tls.key.is_some(),
            "tls.certificate and tls.key must be set together"
        );
        anyhow::ensure!(
            self.c2s.max_stanza_size >= 10_000,
            "c2s.max_stanza_size must be at least 10000 (RFC 6120 §13.12)"
        );
        anyhow::ensure!(
            self.c2s.stream_management.resume_timeout_secs >= 1,
            "c2s.stream_management.resume_timeout_secs must be at least 1"
        );
        anyhow::ensure!(
            self.auth.fast.token_lifetime_secs >= 2,
            "auth.fast.token_lifetime_secs must be at least 2"
        );
        anyhow::ensure!(
            self.s2s.max_stanza_size >= 10_000,
            "s2s.max_stanza_size must be at least 10000 (RFC 6120 §13.12)"
        );
        anyhow::ensure!(
            self.s2s.connect_timeout_secs >= 1 && self.s2s.keepalive_secs >= 1,
            "s2s.connect_timeout_secs and s2s.keepalive_secs must be at least 1"
        );
        for (domain, peer) in &self.s2s.peers {
            if let Some(address) = &peer.address {
                anyhow::ensure!(
                    address
                        .rsplit_once(':')
                        .is_some_and(|(_, p)| p.parse::<u16>().is_ok()),
                    "s2s.peers.\"{domain}\".address must be host:port, not {address:?}"
                );
            }
        }
        if let Some(url) = &self.http.external_url {
            anyhow::ensure!(
                url.starts_with("https://") || url.starts_with("http://"),
                "http.external_url must start with https:// (or http://), not {url:?}"
            );
        }
        anyhow::ensure!(
            self.http.bosh_max_wait_secs >= 1 && self.http.bosh_inactivity_secs >= 2,
            "http.bosh_max_wait_secs must be at least 1 and http.bosh_inactivity_secs at least 2"
        );
        anyhow::ensure!(
            self.components.max_stanza_size >= 10_000,
            "components.max_stanza_size must be at least 10000 (RFC 6120 §13.12)"
        );
        for (domain, host) in &self.components.hosts {
            anyhow::ensure!(
                *domain != self.domain,
                "components.hosts.\"{domain}\": a component cannot take the server's own domain; give it a subdomain such as irc.{domain}"
            );
            anyhow::ensure!(
                !host.secret.is_empty(),
                "components.hosts.\"{domain}\".secret must not be empty"
            );
        }
        anyhow::ensure!(
            self.retention.check_interval_secs >= 1,
            "retention.check_interval_secs must be at least 1"
        );
        // Days become timestamps: keep them within what a clock can hold.
        for (days, key) in [
            (self.retention.archive_days, "archive_days"),
            (self.retention.muc_archive_days, "muc_archive_days"),
            (self.retention.upload_days, "upload_days"),
            (self.retention.offline_days, "offline_days"),
        ] {
            anyhow::ensure!(days <= 100 * 365, "retention.{key} must be under 100 years");
        }
        anyhow::ensure!(self.c2s.max_depth >= 4, "c2s.max_depth must be at least 4");
        anyhow::ensure!(
            self.c2s.max_attributes >= 8,
            "c2s.max_attributes must be at least 8"
        );
        Ok(())
    }

    /// `storage.sqlite` resolved against `data_dir`.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join(&self.storage.sqlite)
    }

    /// The raw `[modules.<name>]` table, empty when absent.
    pub fn module_section(&self, name: &str) -> toml::Table {
        self.modules.get(name).cloned().unwrap_or_default()
    }
}

/// An administrator's address as a normalised bare JID, which must be an account of `domain`.
fn normalise_admin(admin: &str, domain: &str) -> anyhow::Result<String> {
    let bare = jid::BareJid::new(admin)
        .map_err(|e| anyhow::anyhow!("admins: {admin:?} is not a valid address: {e}"))?;
    anyhow::ensure!(
        bare.node().is_some() && bare.domain().as_str() == domain,
        "admins: {admin:?} must be an account of this server, such as \"alice@{domain}\""
    );
    Ok(bare.to_string())
}

/// Lower-cases and IDNA-checks the configured domain the way JIDs are normalised.
fn normalise_domain(domain: &str) -> anyhow::Result<String> {
    let bare = jid::BareJid::new(domain)
        .map_err(|e| anyhow::anyhow!("domain {domain:?} is not a valid XMPP domain: {e}"))?;
    anyhow::ensure!(
        bare.node().is_none(),
        "domain {domain:?} must not contain '@'"
    );
    Ok(bare.domain().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let cfg = Config::load(None).unwrap();
        assert_eq!(cfg.domain, "localhost");
        assert_eq!(cfg.c2s.max_stanza_size, 256 * 1024);
        assert_eq!(cfg.sqlite_path(), PathBuf::from("./data/hearth.sqlite"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("domain = \"a.example\"\n[c2s]\nmax_stanza = 5\n").unwrap_err();
        assert!(format!("{err:#}").contains("max_stanza"), "{err:#}");
    }

    #[test]
    fn component_domains_are_normalised_and_checked() {
        let cfg = Config::parse(
            "domain = \"a.example\"\n[components.hosts.\"IRC.a.example\"]\nsecret = \"s\"\n",
        )
        .unwrap();
        assert!(cfg.components.hosts.contains_key("irc.a.example"));
        let err = Config::parse(
            "domain = \"a.example\"\n[components.hosts.\"A.example\"]\nsecret = \"s\"\n",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("server's own domain"),
            "{err:#}"
        );
        let err = Config::parse(
            "domain = \"a.example\"\n[components.hosts.\"u@b.example\"]\nsecret = \"s\"\n",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("u@b.example"), "{err:#}");
    }

    #[test]
    fn admins_are_local_accounts() {
        let cfg =
            Config::parse("domain = \"example.com\"\nadmins = [\"Alice@Example.com\"]\n").unwrap();
        assert_eq!(cfg.admins, ["alice@example.com"]);
        for wrong in ["alice@other.org", "example.com", "not a jid@"] {
            let text = format!("domain = \"example.com\"\nadmins = [\"{wrong}\"]\n");
            let err = Config::parse(&text).unwrap_err();
            assert!(format!("{err:#}").contains("admins"), "{err:#}");
        }
    }

    #[test]
    fn domain_is_lowercased() {
        assert_eq!(
            Config::parse("domain = \"Example.COM\"").unwrap().domain,
            "example.com"
        );
    }
}
