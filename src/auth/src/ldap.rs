//! Logins against an LDAP directory (OpenLDAP, Active Directory) with `ldap3`, and what else
//! the directory knows: users, groups (shared rosters) and vCard fields.
//!
//! A login binds as the user: directly with a DN template (`uid={user},ou=people,…`, or
//! `{user}@corp.example.org` for Active Directory), or after finding the user's entry with
//! `user_filter` (search-then-bind). The filter also decides who may log in (a group, say).
//! Binds run on a pool of at most `pool_size` connections kept open between logins, so a login
//! seldom costs TCP and TLS handshakes with the directory; a pooled connection serves logins
//! only (the bind, and with a DN template the user's read of their own entry). Searches run on
//! one shared connection bound as the service account (or anonymously), reopened when it fails. SCRAM needs keys derived from the password, which a
//! directory does not give out, so with LDAP the server offers PLAIN (inside TLS only).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use serde::Deserialize;
use tokio::sync::{Semaphore, SemaphorePermit};

/// `[auth.ldap]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://dc.example.org` (TLS), or `ldap://…` with `starttls = true`. Plain `ldap://`
    /// without StartTLS is accepted only for a directory on this host (loopback).
    pub url: String,
    #[serde(default)]
    pub starttls: bool,
    /// PEM certificates trusted for the directory's certificate (a company CA), in addition to
    /// the system's store.
    pub ca_file: Option<PathBuf>,
    /// Bind as the user with this DN, `{user}` standing for the username:
    /// `uid={user},ou=people,dc=example,dc=org`, or `{user}@corp.example.org` for Active
    /// Directory. Unset: the user's entry is searched with `user_filter` (search-then-bind).
    pub user_dn: Option<String>,
    /// The service account searches run as (users, groups, vCards). Unset: anonymous.
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    /// Where users are searched.
    pub base_dn: String,
    /// Who may log in, `{user}` standing for the username (escaped):
    /// `(&(objectClass=inetOrgPerson)(uid={user})(memberOf=cn=xmpp,ou=groups,dc=example,dc=org))`.
    #[serde(default = "default_user_filter")]
    pub user_filter: String,
    /// The attribute holding the username, the part before `@` in the user's address:
    /// `uid` (OpenLDAP), `sAMAccountName` (Active Directory).
    #[serde(default = "default_login_attribute")]
    pub login_attribute: String,
    /// Seconds a directory operation may take before the login fails with
    /// `temporary-auth-failure`.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Connections for user binds, kept open between logins: at most this many at once; a
    /// login waits (within `timeout_secs`) for a free one. The search connection comes on top.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Directory attributes shown in users' vCards; an empty name leaves that field out.
    #[serde(default)]
    pub vcard: VcardAttributes,
    /// Shared roster groups from directory groups: members of a group see each other (read
    /// every `modules.groups.refresh_secs`).
    pub groups: Option<GroupsConfig>,
}

fn default_user_filter() -> String {
    "(&(objectClass=inetOrgPerson)(uid={user}))".into()
}

fn default_login_attribute() -> String {
    "uid".into()
}

fn default_timeout() -> u64 {
    5
}

fn default_pool_size() -> usize {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VcardAttributes {
    pub full_name: String,
    pub email: String,
    pub phone: String,
    /// A JPEG picture (`jpegPhoto`, or `thumbnailPhoto` in Active Directory).
    pub photo: String,
}

impl Default for VcardAttributes {
    fn default() -> Self {
        Self {
            full_name: "cn".into(),
            email: "mail".into(),
            phone: "telephoneNumber".into(),
            photo: "jpegPhoto".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupsConfig {
    /// Where groups are searched.
    pub base_dn: String,
    #[serde(default = "default_group_filter")]
    pub filter: String,
    /// The group's name, shown as the roster group.
    #[serde(default = "default_group_name")]
    pub name_attribute: String,
    /// Members: DNs (`member`, `uniqueMember`) or usernames (`memberUid`).
    #[serde(default = "default_member_attribute")]
    pub member_attribute: String,
}

fn default_group_filter() -> String {
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))".into()
}

fn default_group_name() -> String {
    "cn".into()
}

fn default_member_attribute() -> String {
    "member".into()
}

/// The directory could not answer (down, unreachable, timed out, refused the service account).
#[derive(Debug, thiserror::Error)]
#[error("LDAP directory {url}: {reason}")]
pub struct DirectoryError {
    url: String,
    reason: String,
}

/// vCard fields from the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryCard {
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub photo: Option<Vec<u8>>,
}

pub struct Directory {
    cfg: LdapConfig,
    tls: Arc<rustls::ClientConfig>,
    /// The shared search connection, bound as the service account; `None` until first used or
    /// after it failed.
    service: tokio::sync::Mutex<Option<Ldap>>,
    /// The connections user binds run on.
    binds: BindPool,
}

/// How long a bind connection may sit idle and still be reused: well under what directories
/// and firewalls allow (Active Directory closes idle connections after 15 minutes), so a
/// login seldom meets a connection closed behind hearth's back.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// Connections for user binds: at most `pool_size` open, kept between logins.
struct BindPool {
    /// One permit for each connection that may be open (in use or idle).
    slots: Semaphore,
    /// Connections given back after a bind, the most recently used last.
    idle: std::sync::Mutex<Vec<IdleConnection>>,
}

struct IdleConnection {
    ldap: Ldap,
    since: Instant,
}

impl BindPool {
    fn new(size: usize) -> Self {
        Self {
            slots: Semaphore::new(size.min(Semaphore::MAX_PERMITS)),
            idle: Default::default(),
        }
    }

    /// The most recently used idle connection, if one is still open; connections the
    /// directory closed or that sat idle too long are closed and left out.
    fn take_idle(&self) -> Option<Ldap> {
        let mut idle = self.idle.lock().expect("LDAP bind pool lock");
        idle.retain_mut(|c| c.since.elapsed() < MAX_IDLE && !c.ldap.is_closed());
        idle.pop().map(|c| c.ldap)
    }
}

/// A bind connection in use. Dropping it closes the connection and frees its slot (after an
/// error, or when a timed-out login is abandoned); `give_back` keeps it for the next login.
struct Lease<'a> {
    ldap: Ldap,
    /// Taken from the idle ones rather than opened for this login.
    reused: bool,
    pool: &'a BindPool,
    _slot: SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn give_back(self) {
        let Lease { ldap, pool, .. } = self;
        pool.idle
            .lock()
            .expect("LDAP bind pool lock")
            .push(IdleConnection {
                ldap,
                since: Instant::now(),
            });
    }
}

/// Whether an operation failed because its connection, opened before, had been closed by the
/// directory meanwhile (a restart, an idle limit): then it is worth one more try on a new
/// connection. A directory that does not answer in time is not asked twice.
fn closed_meanwhile(reused: bool, e: &LdapError) -> bool {
    reused && !matches!(e, LdapError::Timeout { .. })
}

impl Directory {
    /// Checks the configuration and prepares TLS; connects only when first used, so hearth
    /// starts while the directory is down.
    pub fn new(cfg: LdapConfig) -> anyhow::Result<Self> {
        let secure = cfg.url.starts_with("ldaps://") || cfg.starttls;
        let host = cfg
            .url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or_default())
            .unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        anyhow::ensure!(
            cfg.url.starts_with("ldaps://") || cfg.url.starts_with("ldap://"),
            "auth.ldap.url must start with ldaps:// or ldap://, not {:?}",
            cfg.url
        );
        anyhow::ensure!(
            secure || loopback,
            "auth.ldap.url {} is not encrypted: passwords would cross the network in clear. \
             Use ldaps://, or set auth.ldap.starttls = true",
            cfg.url
        );
        anyhow::ensure!(
            cfg.user_dn.is_some() || cfg.user_filter.contains("{user}"),
            "auth.ldap.user_filter must contain {{user}} (or set auth.ldap.user_dn)"
        );
        anyhow::ensure!(
            cfg.bind_dn.is_some() == cfg.bind_password.is_some(),
            "auth.ldap.bind_dn and auth.ldap.bind_password must be set together"
        );
        anyhow::ensure!(cfg.pool_size > 0, "auth.ldap.pool_size must be above 0");
        let tls = Arc::new(client_tls(cfg.ca_file.as_deref())?);
        Ok(Self {
            binds: BindPool::new(cfg.pool_size),
            cfg,
            tls,
            service: Default::default(),
        })
    }

    pub fn config(&self) -> &LdapConfig {
        &self.cfg
    }

    fn error(&self, reason: impl std::fmt::Display) -> DirectoryError {
        DirectoryError {
            url: self.cfg.url.clone(),
            reason: reason.to_string(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_secs.max(1))
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.cfg.starttls)
            .set_config(self.tls.clone());
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url)
            .await
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// The search connection, opened and bound on first use, and whether it was open before.
    async fn service(&self) -> Result<(Ldap, bool), DirectoryError> {
        let mut service = self.service.lock().await;
        if let Some(ldap) = service.as_mut()
            && !ldap.is_closed()
        {
            return Ok((ldap.clone(), true));
        }
        let mut ldap = self.connect().await?;
        if let (Some(dn), Some(password)) = (&self.cfg.bind_dn, &self.cfg.bind_password) {
            let bound = ldap
                .with_timeout(self.timeout())
                .simple_bind(dn, password)
                .await;
            match bound.map(|r| r.success()) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) | Err(e) => {
                    return Err(self.error(format!(
                        "the service account auth.ldap.bind_dn cannot bind: {e}"
                    )));
                }
            }
        }
        *service = Some(ldap.clone());
        Ok((ldap, false))
    }

    /// Runs a search on the shared connection; a failed connection is reopened next time, or
    /// at once if the directory had closed it.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let (mut ldap, reused) = self.service().await?;
        let mut searched = ldap
            .with_timeout(self.timeout())
            .search(base, scope, filter, attrs.clone())
            .await;
        if let Err(e) = &searched
            && closed_meanwhile(reused, e)
        {
            tracing::debug!(error = %e, "the LDAP search connection was closed; reconnecting");
            self.service.lock().await.take();
            (ldap, _) = self.service().await?;
            searched = ldap
                .with_timeout(self.timeout())
                .search(base, scope, filter, attrs)
                .await;
        }
        match searched {
            Ok(result) => match result.success() {
                Ok((entries, _)) => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
                // No such base: nothing found, and a configuration error worth a log line.
                Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => {
                    tracing::warn!(
                        base,
                        "LDAP search base does not exist; check auth.ldap.base_dn"
                    );
                    Ok(Vec::new())
                }
                Err(e) => Err(self.error(format!("search failed: {e}"))),
            },
            Err(e) => {
                self.service.lock().await.take();
                Err(self.error(format!("search failed: {e}")))
            }
        }
    }

    fn user_filter(&self, username: &str) -> String {
        self.cfg
            .user_filter
            .replace("{user}", &ldap3::ldap_escape(username))
    }

    /// Whether `password` is `username`'s and the user may log in. `Err` when the directory
    /// cannot tell (then the login fails with `temporary-auth-failure`).
    pub async fn login(&self, username: &str, password: &str) -> Result<bool, DirectoryError> {
        // An empty password would be an unauthenticated bind, which succeeds (RFC 4513 §5.1.2).
        if password.is_empty() {
            return Ok(false);
        }
        tokio::time::timeout(self.timeout(), self.bind_as_user(username, password))
            .await
            .unwrap_or_else(|_| Err(self.error("no answer within auth.ldap.timeout_secs")))
    }

    async fn bind_as_user(&self, username: &str, password: &str) -> Result<bool, DirectoryError> {
        let dn = match &self.cfg.user_dn {
            Some(template) => template.replace("{user}", &ldap3::dn_escape(username)),
            None => {
                let filter = self.user_filter(username);
                let found = self
                    .search(&self.cfg.base_dn, Scope::Subtree, &filter, vec!["1.1"])
                    .await?;
                match found.as_slice() {
                    [entry] => entry.dn.clone(),
                    [] => return Ok(false),
                    _ => {
                        tracing::warn!(
                            account = username,
                            filter,
                            "several LDAP entries match one username; refusing the login (make auth.ldap.user_filter unique)"
                        );
                        return Ok(false);
                    }
                }
            }
        };
        let mut lease = self.bind_connection().await?;
        let bound = match lease.ldap.simple_bind(&dn, password).await {
            Err(e) if closed_meanwhile(lease.reused, &e) => {
                tracing::debug!(error = %e, "a pooled LDAP connection was closed; binding on a new one");
                lease.ldap = self.connect().await?;
                lease.ldap.simple_bind(&dn, password).await
            }
            bound => bound,
        }
        .map_err(|e| self.error(format!("bind failed: {e}")))?;
        let allowed = match bound.rc {
            0 if self.cfg.user_dn.is_some() => {
                // Bound by template: the filter still decides who may log in, read as the
                // user on their own entry.
                let filter = self.user_filter(username);
                let own = lease
                    .ldap
                    .search(&dn, Scope::Base, &filter, vec!["1.1"])
                    .await;
                match own.map(|r| r.success()) {
                    Ok(Ok((entries, _))) => !entries.is_empty(),
                    Ok(Err(_)) => false,
                    Err(e) => return Err(self.error(format!("search failed: {e}"))),
                }
            }
            0 => true,
            // invalidCredentials; also what a disabled Active Directory account answers.
            49 => false,
            rc => {
                tracing::warn!(account = username, rc, text = %bound.text, "LDAP bind refused");
                false
            }
        };
        // Whoever the connection is now bound as, the next login's bind replaces it.
        lease.give_back();
        Ok(allowed)
    }

    /// A connection for a user bind: an idle one, else a new one while fewer than `pool_size`
    /// are open, else the first one given back (the caller's timeout bounds the wait).
    async fn bind_connection(&self) -> Result<Lease<'_>, DirectoryError> {
        let slot = self
            .binds
            .slots
            .acquire()
            .await
            .expect("the bind pool's semaphore is never closed");
        let (ldap, reused) = match self.binds.take_idle() {
            Some(ldap) => (ldap, true),
            None => (self.connect().await?, false),
        };
        Ok(Lease {
            ldap,
            reused,
            pool: &self.binds,
            _slot: slot,
        })
    }

    /// Usernames of everyone allowed to log in.
    pub async fn users(&self) -> Result<Vec<String>, DirectoryError> {
        let filter = self.cfg.user_filter.replace("{user}", "*");
        let attr = self.cfg.login_attribute.as_str();
        let entries = self
            .search(&self.cfg.base_dn, Scope::Subtree, &filter, vec![attr])
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| first(&e, attr).map(str::to_lowercase))
            .collect())
    }

    /// The directory's vCard fields for `username`; `None` if the directory has no such user.
    pub async fn card(&self, username: &str) -> Result<Option<DirectoryCard>, DirectoryError> {
        let v = &self.cfg.vcard;
        let attrs: Vec<&str> = [&v.full_name, &v.email, &v.phone, &v.photo]
            .into_iter()
            .map(String::as_str)
            .filter(|a| !a.is_empty())
            .collect();
        let filter = self.user_filter(username);
        let found = self
            .search(&self.cfg.base_dn, Scope::Subtree, &filter, attrs)
            .await?;
        let Some(entry) = found.into_iter().next() else {
            return Ok(None);
        };
        let text = |attr: &str| first(&entry, attr).map(str::to_string);
        Ok(Some(DirectoryCard {
            full_name: text(&v.full_name),
            email: text(&v.email),
            phone: text(&v.phone),
            photo: entry
                .bin_attrs
                .get(&v.photo)
                .and_then(|p| p.first().cloned()),
        }))
    }

    /// The directory's groups and their members' usernames (for shared rosters).
    pub async fn groups(&self) -> Result<Vec<(String, Vec<String>)>, DirectoryError> {
        let Some(g) = &self.cfg.groups else {
            return Ok(Vec::new());
        };
        let entries = self
            .search(
                &g.base_dn,
                Scope::Subtree,
                &g.filter,
                vec![g.name_attribute.as_str(), g.member_attribute.as_str()],
            )
            .await?;
        let mut groups = Vec::new();
        for entry in entries {
            let Some(name) = first(&entry, &g.name_attribute).map(str::to_string) else {
                continue;
            };
            let mut members = Vec::new();
            for member in entry.attrs.get(&g.member_attribute).into_iter().flatten() {
                if let Some(user) = self.member_username(member).await? {
                    members.push(user);
                }
            }
            groups.push((name, members));
        }
        Ok(groups)
    }

    /// A group member as a username: `memberUid` values are usernames; DNs are read for the
    /// login attribute (and must pass `user_filter`: someone who may not log in is left out).
    async fn member_username(&self, member: &str) -> Result<Option<String>, DirectoryError> {
        if !member.contains('=') {
            return Ok(Some(member.to_lowercase()));
        }
        let attr = self.cfg.login_attribute.as_str();
        let filter = self.cfg.user_filter.replace("{user}", "*");
        let entries = self
            .search(member, Scope::Base, &filter, vec![attr])
            .await?;
        Ok(entries
            .first()
            .and_then(|e| first(e, attr))
            .map(str::to_lowercase))
    }
}

fn first<'a>(entry: &'a SearchEntry, attr: &str) -> Option<&'a str> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

/// TLS to the directory: the system's trust store plus `ca_file`.
fn client_tls(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("auth.ldap.ca_file {}: {e}", path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "auth.ldap.ca_file {} holds no PEM certificate",
            path.display()
        );
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| anyhow::anyhow!("auth.ldap.ca_file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// LDAPResult success, after the protocolOp's tag.
    const SUCCESS: [u8; 8] = [0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];

    /// A directory on loopback that lets everyone bind and finds every entry searched for; with
    /// `first_dies`, it closes its first connection when that one gets its second bind (as a
    /// restarted directory's connection turns out dead on its next use). Counts connections.
    async fn fake_directory(first_dies: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
                tokio::spawn(serve(stream, first_dies && first));
            }
        });
        (url, accepted)
    }

    async fn serve(mut stream: TcpStream, dies_at_second_bind: bool) {
        let mut binds = 0;
        while let Some(message) = read_message(&mut stream).await {
            let (_, contents, _) = split_tlv(&message);
            let (id, _, rest) = split_tlv(contents);
            let (op, body, _) = split_tlv(rest);
            let replies = match op[0] {
                // BindRequest
                0x60 => {
                    binds += 1;
                    if dies_at_second_bind && binds == 2 {
                        return;
                    }
                    vec![[&[0x61][..], &SUCCESS].concat()]
                }
                // SearchRequest: its base DN (the first field) is the entry found.
                0x63 => {
                    let (_, dn, _) = split_tlv(body);
                    let entry = [
                        &[0x64, 4 + dn.len() as u8, 0x04, dn.len() as u8],
                        dn,
                        &[0x30, 0],
                    ];
                    vec![entry.concat(), [&[0x65][..], &SUCCESS].concat()]
                }
                _ => return,
            };
            for op in replies {
                let len = (id.len() + op.len()) as u8;
                let message = [&[0x30, len][..], id, &op].concat();
                stream.write_all(&message).await.unwrap();
            }
        }
    }

    /// The next LDAPMessage, whole.
    async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut message = vec![0u8; 2];
        stream.read_exact(&mut message).await.ok()?;
        let length_bytes = usize::from(message[1]).saturating_sub(0x80);
        message.resize(2 + length_bytes, 0);
        stream.read_exact(&mut message[2..]).await.ok()?;
        let (start, len) = header(&message);
        message.resize(start + len, 0);
        stream.read_exact(&mut message[start..]).await.ok()?;
        Some(message)
    }

    /// (where the contents of the BER element at the start of `ber` begin, their length).
    fn header(ber: &[u8]) -> (usize, usize) {
        match ber[1] {
            short @ 0..0x80 => (2, usize::from(short)),
            long => {
                let start = 2 + usize::from(long - 0x80);
                let len = ber[2..start]
                    .iter()
                    .fold(0, |n, b| n << 8 | usize::from(*b));
                (start, len)
            }
        }
    }

    /// (the BER element at the start of `ber`, its contents, what follows it).
    fn split_tlv(ber: &[u8]) -> (&[u8], &[u8], &[u8]) {
        let (start, len) = header(ber);
        (
            &ber[..start + len],
            &ber[start..start + len],
            &ber[start + len..],
        )
    }

    fn directory(url: String, pool_size: usize) -> Directory {
        Directory::new(LdapConfig {
            url,
            starttls: false,
            ca_file: None,
            user_dn: Some("uid={user},ou=people,dc=example,dc=org".into()),
            bind_dn: None,
            bind_password: None,
            base_dn: "ou=people,dc=example,dc=org".into(),
            user_filter: default_user_filter(),
            login_attribute: default_login_attribute(),
            timeout_secs: 5,
            pool_size,
            vcard: VcardAttributes::default(),
            groups: None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_pooled_connection_the_directory_closed_is_replaced_within_the_login() {
        let (url, accepted) = fake_directory(true).await;
        let directory = directory(url, 1);
        assert!(directory.login("alice", "secret").await.unwrap());
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // The pooled connection dies at this bind: the login goes on on a new one.
        assert!(directory.login("bob", "secret").await.unwrap());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert!(directory.login("carol", "secret").await.unwrap());
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_logins_share_at_most_pool_size_connections() {
        let (url, accepted) = fake_directory(false).await;
        let directory = Arc::new(directory(url, 2));
        let mut logins = tokio::task::JoinSet::new();
        for i in 0..10 {
            let directory = directory.clone();
            logins.spawn(async move { directory.login(&format!("user{i}"), "secret").await });
        }
        while let Some(allowed) = logins.join_next().await {
            assert!(allowed.unwrap().unwrap());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn pool_size_must_be_above_zero() {
        let cfg = LdapConfig {
            pool_size: 0,
            ..directory("ldap://127.0.0.1".into(), 1).cfg
        };
        let refused = Directory::new(cfg).err().unwrap();
        assert_eq!(refused.to_string(), "auth.ldap.pool_size must be above 0");
    }
}
