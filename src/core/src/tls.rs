//! TLS for client connections: certificate loading (or a self-signed one on first start),
//! reload on SIGHUP without touching live sessions, and channel-binding data for SCRAM-PLUS.
//!
//! TLS 1.2 and 1.3 only, by construction: rustls implements nothing older.
//!
//! Memory (measured with rustls 0.23.46 / tokio-rustls 0.26.6 and a counting allocator, TLS 1.3,
//! loopback TCP): an idle server session costs ~1.2 KiB inline (`TlsStream`) plus ~6.3 KiB of
//! heap, 4 KiB of which is rustls' read buffer (a fixed `READ_SIZE`, kept between reads and not
//! configurable); the rest is mostly the AEAD key state. After a 16 KiB record the buffer grows
//! to ~17 KiB and shrinks back at the next read that finds nothing buffered. Going lower would
//! take rustls' unbuffered API with our own buffers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::Digest;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// What `hearth check` and the startup log tell about the certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// DNS names in the subjectAltName extension (the subject CN when there is none).
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub self_signed: bool,
    /// The certificate file; `None` for a certificate parsed from memory.
    pub path: Option<PathBuf>,
}

/// ALPN protocol of direct-TLS client connections (XEP-0368).
const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// Warn this long before the certificate expires.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// One loaded certificate with what is precomputed from it.
struct Loaded {
    key: Arc<CertifiedKey>,
    /// RFC 5929 tls-server-end-point: the hash of the leaf certificate.
    end_point: Vec<u8>,
    info: CertInfo,
}

/// Where the certificate comes from.
enum Source {
    /// `[tls] certificate` and `key` from the configuration.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated on first start in `data_dir/tls`.
    SelfSigned {
        cert: PathBuf,
        key: PathBuf,
        domain: String,
    },
}

impl Source {
    fn new(cfg: &Config) -> Self {
        match (&cfg.tls.certificate, &cfg.tls.key) {
            (Some(cert), Some(key)) => Self::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            // `Config::parse` guarantees both or neither are set.
            _ => {
                let dir = cfg.data_dir.join("tls");
                Self::SelfSigned {
                    cert: dir.join("selfsigned.crt"),
                    key: dir.join("selfsigned.key"),
                    domain: cfg.domain.clone(),
                }
            }
        }
    }

    fn paths(&self) -> (&Path, &Path) {
        match self {
            Self::Files { cert, key } | Self::SelfSigned { cert, key, .. } => (cert, key),
        }
    }

    fn read(&self, provider: &CryptoProvider) -> anyhow::Result<Loaded> {
        let (cert, key) = self.paths();
        let mut loaded = read_pair(cert, key, provider)?;
        loaded.info.self_signed |= matches!(self, Self::SelfSigned { .. });
        Ok(loaded)
    }
}

/// Serves whichever certificate is current; `reload` swaps it atomically.
struct Resolver(ArcSwap<Loaded>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // One certificate for every name (domain, conference., upload.): SNI is not consulted.
        Some(self.0.load().key.clone())
    }
}

/// The server's TLS state; cheap to clone and share.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    provider: Arc<CryptoProvider>,
    resolver: Arc<Resolver>,
    starttls: TlsAcceptor,
    direct: TlsAcceptor,
    https: TlsAcceptor,
}

/// One explicit provider: ring builds faster than aws-lc-rs and needs no cmake, and with an
/// explicit provider it does not matter which providers other dependencies enable.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    resolver: &Arc<Resolver>,
    client_auth: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    alpn: &[&[u8]],
) -> anyhow::Result<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_client_cert_verifier(client_auth)
        .with_cert_resolver(resolver.clone());
    // No session resumption. A resumed session skips the certificate resolver, so after a reload
    // the tls-server-end-point binding we report (the current certificate's) would not be the one
    // the client saw in the original handshake and SCRAM-PLUS would fail. Resumption also buys
    // little here: XMPP sessions are long-lived, a full TLS 1.3 handshake costs well under a
    // millisecond of CPU, and rustls' default stateful cache (256 entries, ~190 bytes per live
    // session measured) would rarely hit with thousands of clients. With no tickets sent,
    // handshakes are also a little shorter.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    // With protocols listed, rustls refuses a client whose ALPN list has none of them
    // (no_application_protocol alert, RFC 7301 §3.2); a client sending no ALPN is accepted.
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

impl Tls {
    /// Loads the configured certificate and key, or (none configured) the self-signed one in
    /// `data_dir/tls`, generating it on first start.
    pub fn load(cfg: &Config) -> anyhow::Result<Self> {
        let source = Source::new(cfg);
        if let Source::SelfSigned { cert, key, domain } = &source
            && !(cert.exists() && key.exists())
        {
            generate_self_signed(domain, cert, key)?;
        }
        let provider = provider();
        let loaded = source.read(&provider)?;
        log_loaded(&loaded.info, "TLS certificate loaded");
        let resolver = Arc::new(Resolver(ArcSwap::from_pointee(loaded)));
        let no_auth = Arc::new(rustls::server::NoClientAuth);
        let starttls = server_config(&provider, &resolver, no_auth.clone(), &[])?;
        let direct = server_config(&provider, &resolver, no_auth.clone(), &[ALPN_XMPP_CLIENT])?;
        let https = server_config(&provider, &resolver, no_auth, &[b"http/1.1"])?;
        Ok(Self {
            inner: Arc::new(Inner {
                source,
                starttls: TlsAcceptor::from(Arc::new(starttls)),
                direct: TlsAcceptor::from(Arc::new(direct)),
                https: TlsAcceptor::from(Arc::new(https)),
                provider,
                resolver,
            }),
        })
    }

    /// Reads and checks the certificate `load` would use, without generating one and without
    /// logging; `None` when no certificate is configured and the self-signed one does not exist
    /// yet (the server generates it on first start). For `hearth check`.
    pub fn inspect(cfg: &Config) -> anyhow::Result<Option<CertInfo>> {
        let source = Source::new(cfg);
        let (cert, key) = source.paths();
        if matches!(source, Source::SelfSigned { .. }) && !(cert.exists() && key.exists()) {
            return Ok(None);
        }
        Ok(Some(source.read(&provider())?.info))
    }

    /// Re-reads the files (SIGHUP). On error the old certificate stays in use and the error is
    /// returned. Live sessions are unaffected; new handshakes use the new certificate.
    pub fn reload(&self) -> anyhow::Result<()> {
        let loaded = self.inner.source.read(&self.inner.provider)?;
        log_loaded(&loaded.info, "TLS certificate reloaded");
        self.inner.resolver.0.store(Arc::new(loaded));
        Ok(())
    }

    /// For STARTTLS (RFC 6120 §5): no ALPN.
    pub fn starttls_acceptor(&self) -> TlsAcceptor {
        self.inner.starttls.clone()
    }

    /// For direct TLS (XEP-0368): ALPN `xmpp-client` offered; a client offering only other
    /// protocols is refused by the handshake (RFC 7301), one offering none is accepted.
    pub fn direct_tls_acceptor(&self) -> TlsAcceptor {
        self.inner.direct.clone()
    }

    /// For the HTTPS listeners: ALPN `http/1.1` (WebSocket upgrades need HTTP/1.1).
    pub fn https_acceptor(&self) -> TlsAcceptor {
        self.inner.https.clone()
    }

    /// (tls-exporter, tls-server-end-point) for a finished server handshake.
    ///
    /// tls-exporter (RFC 9266) only on TLS 1.3: on 1.2 it is safe only with the extended master
    /// secret, which rustls does not report per connection (RFC 9266 §3).
    ///
    /// rustls does not tell which certificate a connection presented, so the end-point hash is
    /// that of the current certificate. A reload landing between the moment the resolver picked
    /// the certificate (ClientHello) and this call (right after the handshake, a round trip or
    /// two later) gives that one client the new certificate's hash:
    /// its SCRAM-PLUS login with tls-server-end-point fails safely (binding mismatch) and
    /// succeeds on reconnection. tls-exporter is not affected.
    pub fn channel_binding_data(
        &self,
        conn: &rustls::ServerConnection,
    ) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let exporter = (conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3))
            .then(|| {
                conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .ok()
            })
            .flatten();
        let end_point = self.inner.resolver.0.load().end_point.clone();
        (exporter, Some(end_point))
    }

    /// The certificate and key in use, for hearth's own connections to other servers.
    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        self.inner.resolver.0.load().key.clone()
    }

    pub(crate) fn provider(&self) -> &Arc<CryptoProvider> {
        &self.inner.provider
    }

    /// A server configuration serving the current certificate, for other listeners (s2s).
    pub(crate) fn server_config_with(
        &self,
        client_auth: Arc<dyn rustls::server::danger::ClientCertVerifier>,
        alpn: &[&[u8]],
    ) -> anyhow::Result<rustls::ServerConfig> {
        server_config(
            &self.inner.provider,
            &self.inner.resolver,
            client_auth,
            alpn,
        )
    }

    /// Facts about the certificate in use.
    pub fn certificate_info(&self) -> CertInfo {
        self.inner.resolver.0.load().info.clone()
    }
}

fn log_loaded(info: &CertInfo, what: &str) {
    let path = info.path.as_deref().unwrap_or(Path::new("")).display();
    let names = info.names.join(", ");
    let expires = format_time(info.not_after);
    if info.self_signed {
        tracing::warn!(
            certificate = %path,
            %names,
            "USING A SELF-SIGNED CERTIFICATE: clients will warn or refuse to connect. Configure a \
             real one in hearth.toml: [tls] certificate = \"/etc/hearth/tls/fullchain.pem\" and \
             key = \"/etc/hearth/tls/privkey.pem\", e.g. from Let's Encrypt (certbot, with \
             contrib/certbot-deploy-hook.sh as deploy hook), then reload hearth"
        );
    } else {
        tracing::info!(certificate = %path, %names, %expires, "{what}");
    }
    match info.not_after.duration_since(SystemTime::now()) {
        Err(_) => tracing::error!(
            certificate = %path,
            %expires,
            "the TLS certificate has EXPIRED: clients will refuse to connect; renew it and reload hearth"
        ),
        Ok(left) if left < EXPIRY_WARNING => tracing::warn!(
            certificate = %path,
            %expires,
            "the TLS certificate expires in {} days: renew it and reload hearth",
            left.as_secs() / 86_400
        ),
        Ok(_) => {}
    }
}

/// A UTC date for humans, e.g. `Mar  1 12:00:00 2027 +00:00`.
pub fn format_time(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    x509_parser::time::ASN1Time::from_timestamp(secs)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{secs} seconds after 1970"))
}

/// Reads a PEM certificate chain (leaf first) and its private key, and checks they belong
/// together. Errors name the file and the problem.
fn read_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> anyhow::Result<Loaded> {
    let chain = read_chain(cert_path)?;
    let key = read_key(key_path)?;
    let leaf = chain[0].clone();
    let mut info = parse_cert_info(&leaf)
        .with_context(|| format!("certificate file {}", cert_path.display()))?;
    info.path = Some(cert_path.to_path_buf());
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| {
        anyhow::anyhow!(
            "private key file {} holds a key hearth cannot use: {e} (RSA, ECDSA P-256/P-384 or Ed25519 expected)",
            key_path.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // `Unknown`: the key type cannot report its public key; the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => anyhow::bail!(
            "the private key {} does not match the certificate {} (is the first certificate in \
             the file the server's own, as in certbot's fullchain.pem? do both files come from \
             the same renewal?)",
            key_path.display(),
            cert_path.display()
        ),
    }
    Ok(Loaded {
        key: Arc::new(certified),
        end_point: end_point_hash(&leaf),
        info,
    })
}

fn read_file(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => " (file missing: check the path in [tls])",
            std::io::ErrorKind::PermissionDenied => {
                " (permission denied: the user hearth runs as must be able to read it)"
            }
            _ => "",
        };
        anyhow::anyhow!("cannot read {what} file {}: {e}{hint}", path.display())
    })
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!("certificate file {} is not valid PEM: {e}", path.display())
        })?;
    if chain.is_empty() {
        let hint = if PrivateKeyDer::from_pem_slice(&pem).is_ok() {
            " — it holds a private key: are [tls] certificate and key swapped?"
        } else {
            " (expected a PEM \"BEGIN CERTIFICATE\" block)"
        };
        anyhow::bail!("no certificate found in {}{hint}", path.display());
    }
    Ok(chain)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = read_file(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => anyhow::anyhow!(
            "no private key found in {} (expected a PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" \
             or \"BEGIN EC PRIVATE KEY\" block)",
            path.display()
        ),
        e => anyhow::anyhow!("private key file {} is not valid PEM: {e}", path.display()),
    })
}

/// Generates the self-signed certificate for `domain` and its `conference.`/`upload.`
/// subdomains, ECDSA P-256. rcgen's default validity (until year 4096) is kept on purpose:
/// clients that were told to trust this certificate keep trusting it.
fn generate_self_signed(domain: &str, cert: &Path, key: &Path) -> anyhow::Result<()> {
    if let Some(dir) = cert.parent() {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create {} for the self-signed certificate",
                dir.display()
            )
        })?;
    }
    let names = vec![
        domain.to_string(),
        format!("conference.{domain}"),
        format!("upload.{domain}"),
    ];
    let mut params = rcgen::CertificateParams::new(names)
        .with_context(|| format!("cannot make a certificate for {domain:?}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, domain);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "hearth self-signed");
    let signing_key = rcgen::KeyPair::generate().context("cannot generate a key pair")?;
    let generated = params
        .self_signed(&signing_key)
        .context("cannot sign the self-signed certificate")?;
    // The key first: a crash before the certificate is written leaves no certificate, so the
    // next start generates both again.
    crate::files::write_private(key, signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, generated.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    tracing::warn!(certificate = %cert.display(), "generated a self-signed certificate for {domain}");
    Ok(())
}

/// RFC 5929 §4.1: SHA-256, unless the certificate is signed with SHA-384 or SHA-512 (then that
/// hash). Signatures with no single hash (Ed25519) or with the hash in parameters (RSA-PSS) use
/// SHA-256, as Prosody and the clients we test against do.
fn end_point_hash(der: &[u8]) -> Vec<u8> {
    let oid = x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c.signature_algorithm.algorithm.to_id_string())
        .unwrap_or_default();
    match oid.as_str() {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => sha2::Sha384::digest(der).to_vec(),
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => sha2::Sha512::digest(der).to_vec(),
        _ => sha2::Sha256::digest(der).to_vec(),
    }
}

/// Names, validity and whether the certificate is self-issued, from a DER certificate.
pub fn parse_cert_info(der: &[u8]) -> anyhow::Result<CertInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("not an X.509 certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(n) = name {
                names.push(n.to_string());
            }
        }
    }
    // Only certificates without DNS names fall back to the subject CN (RFC 6125 §6.4.4).
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_string),
        );
    }
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        let abs = Duration::from_secs(secs.unsigned_abs());
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + abs
        } else {
            SystemTime::UNIX_EPOCH - abs
        }
    };
    Ok(CertInfo {
        names,
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
        self_signed: cert.subject() == cert.issuer(),
        path: None,
    })
}

/// RFC 6125 §6.4: case-insensitive, trailing dots ignored; a wildcard only as the whole
/// left-most label, matching exactly one non-empty label, and never directly under a
/// top-level domain (`*.com`).
pub fn name_matches(pattern: &str, domain: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(parent) if parent.contains('.') => domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        Some(_) => false,
        None => pattern == domain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn config(dir: &Path) -> Config {
        Config::parse(&format!(
            "domain = \"example.com\"\ndata_dir = \"{}\"",
            dir.display()
        ))
        .unwrap()
    }

    /// A configuration with `[tls]` files in `dir`, filled with a fresh self-signed pair.
    fn files_config(dir: &Path, alg: &'static rcgen::SignatureAlgorithm) -> (Config, PathBuf) {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        write_pair(&cert, &key, alg);
        let cfg = Config::parse(&format!(
            "domain = \"example.com\"\ndata_dir = \"{}\"\n[tls]\ncertificate = \"{}\"\nkey = \"{}\"",
            dir.display(),
            cert.display(),
            key.display()
        ))
        .unwrap();
        (cfg, cert)
    }

    fn write_pair(cert: &Path, key: &Path, alg: &'static rcgen::SignatureAlgorithm) {
        let signing_key = rcgen::KeyPair::generate_for(alg).unwrap();
        let generated = rcgen::CertificateParams::new(vec!["example.com".to_string()])
            .unwrap()
            .self_signed(&signing_key)
            .unwrap();
        std::fs::write(cert, generated.pem()).unwrap();
        std::fs::write(key, signing_key.serialize_pem()).unwrap();
    }

    fn connector(
        ca_pem: &Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca_pem).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let mut client = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(client))
    }

    type Pair = (
        tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
        tokio_rustls::server::TlsStream<tokio::io::DuplexStream>,
    );

    async fn handshake(
        connector: &tokio_rustls::TlsConnector,
        acceptor: &TlsAcceptor,
    ) -> std::io::Result<Pair> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (c, s) = tokio::join!(
            connector.connect("example.com".try_into().unwrap(), a),
            acceptor.accept(b)
        );
        Ok((c?, s?))
    }

    #[test]
    fn wildcard_rules() {
        for (pattern, domain, expected) in [
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "A.Example.COM", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "a.b.example.com", false),
            ("*.example.com", ".example.com", false),
            ("a.*.example.com", "a.b.example.com", false),
            ("*.com", "example.com", false),
            ("Example.COM", "example.com", true),
            ("example.com.", "example.com", true),
            ("a.example.com", "b.example.com", false),
        ] {
            assert_eq!(
                name_matches(pattern, domain),
                expected,
                "{pattern} vs {domain}"
            );
        }
    }

    #[test]
    fn self_signed_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        assert!(
            Tls::inspect(&cfg).unwrap().is_none(),
            "inspect generates nothing"
        );
        assert!(!dir.path().join("tls").exists());
        let tls = Tls::load(&cfg).unwrap();
        let info = tls.certificate_info();
        assert!(info.self_signed);
        for name in [
            "example.com",
            "conference.example.com",
            "upload.example.com",
        ] {
            assert!(info.names.iter().any(|n| n == name), "{:?}", info.names);
        }
        let pem = std::fs::read(dir.path().join("tls/selfsigned.crt")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls/selfsigned.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Tls::load(&cfg).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("tls/selfsigned.crt")).unwrap(),
            pem,
            "kept across restarts"
        );
        again.reload().unwrap();
        assert!(Tls::inspect(&cfg).unwrap().unwrap().self_signed);
    }

    #[test]
    fn broken_files_keep_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, cert) = files_config(dir.path(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let key = dir.path().join("key.pem");
        let tls = Tls::load(&cfg).unwrap();
        let good = std::fs::read(&cert).unwrap();
        let before = tls.certificate_info().not_after;
        let reload_error = |tls: &Tls| format!("{:#}", tls.reload().unwrap_err());

        std::fs::write(&cert, "garbage").unwrap();
        let err = reload_error(&tls);
        assert!(
            err.contains("no certificate found in") && err.contains("cert.pem"),
            "{err}"
        );
        assert_eq!(tls.certificate_info().not_after, before);

        std::fs::remove_file(&cert).unwrap();
        let err = reload_error(&tls);
        assert!(err.contains("cert.pem") && err.contains("missing"), "{err}");

        // Swapped paths are spotted.
        std::fs::write(&cert, std::fs::read(&key).unwrap()).unwrap();
        assert!(reload_error(&tls).contains("swapped"));

        std::fs::write(&cert, &good).unwrap();
        std::fs::write(&key, "no key here").unwrap();
        let err = reload_error(&tls);
        assert!(err.contains("no private key found in"), "{err}");

        // A key that does not belong to the certificate is refused.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, other.serialize_pem()).unwrap();
        let err = reload_error(&tls);
        assert!(err.contains("does not match the certificate"), "{err}");
        assert!(
            !err.contains(&other.serialize_pem()[30..60]),
            "no key material in errors"
        );

        assert_eq!(tls.certificate_info().not_after, before);
        assert!(Tls::load(&cfg).is_err());
    }

    #[tokio::test]
    async fn handshake_channel_bindings_match_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::load(&config(dir.path())).unwrap();
        let pem = dir.path().join("tls/selfsigned.crt");
        for (version, expect_exporter) in [
            (&rustls::version::TLS13, true),
            (&rustls::version::TLS12, false),
        ] {
            let (c, s) = handshake(&connector(&pem, &[version], &[]), &tls.starttls_acceptor())
                .await
                .unwrap();
            let (exporter, end_point) = tls.channel_binding_data(s.get_ref().1);
            assert_eq!(exporter.is_some(), expect_exporter);
            if let Some(e) = exporter {
                let theirs = c
                    .get_ref()
                    .1
                    .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .unwrap();
                assert_eq!(e, theirs);
            }
            let leaf = c.get_ref().1.peer_certificates().unwrap()[0].clone();
            assert_eq!(end_point.unwrap(), sha2::Sha256::digest(&leaf).to_vec());
        }
    }

    #[tokio::test]
    async fn reload_applies_to_new_handshakes_and_spares_live_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, cert) = files_config(dir.path(), &rcgen::PKCS_ECDSA_P256_SHA256);
        let tls = Tls::load(&cfg).unwrap();
        let old_ca = dir.path().join("old.pem");
        std::fs::copy(&cert, &old_ca).unwrap();
        let (mut c, mut s) = handshake(
            &connector(&old_ca, &[&rustls::version::TLS13], &[]),
            &tls.starttls_acceptor(),
        )
        .await
        .unwrap();

        write_pair(
            &cert,
            &dir.path().join("key.pem"),
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        tls.reload().unwrap();

        // The live session still works.
        c.write_all(b"<presence/>").await.unwrap();
        c.flush().await.unwrap();
        let mut buf = [0u8; 11];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"<presence/>");
        // A new handshake gets the new certificate (a client trusting only the old one fails).
        let acceptor = tls.starttls_acceptor();
        let old_client = connector(&old_ca, &[&rustls::version::TLS13], &[]);
        assert!(handshake(&old_client, &acceptor).await.is_err());
        let (c, s) = handshake(
            &connector(&cert, &[&rustls::version::TLS13], &[]),
            &acceptor,
        )
        .await
        .unwrap();
        let leaf = c.get_ref().1.peer_certificates().unwrap()[0].clone();
        let (_, end_point) = tls.channel_binding_data(s.get_ref().1);
        assert_eq!(end_point.unwrap(), sha2::Sha256::digest(&leaf).to_vec());
    }

    #[tokio::test]
    async fn direct_tls_alpn() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::load(&config(dir.path())).unwrap();
        let pem = dir.path().join("tls/selfsigned.crt");
        let v13 = &[&rustls::version::TLS13][..];
        let direct = tls.direct_tls_acceptor();

        let (_, s) = handshake(&connector(&pem, v13, &[b"xmpp-client"]), &direct)
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"xmpp-client"[..]));

        let (_, s) = handshake(&connector(&pem, v13, &[]), &direct)
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), None);

        let err = handshake(&connector(&pem, v13, &[b"h2", b"http/1.1"]), &direct)
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("NoApplicationProtocol"),
            "{err:?}"
        );

        // STARTTLS ignores ALPN altogether.
        let (_, s) = handshake(&connector(&pem, v13, &[b"h2"]), &tls.starttls_acceptor())
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), None);
    }

    #[tokio::test]
    async fn tls_1_1_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::load(&config(dir.path())).unwrap();
        // A TLS 1.1 ClientHello: legacy_version 3.2, no supported_versions extension, two
        // TLS 1.0/1.1 cipher suites (ECDHE-ECDSA-AES128-SHA, RSA-AES128-SHA), no compression,
        // and only the signature_algorithms extension (ecdsa_secp256r1_sha256), which rustls
        // looks for before the version.
        let mut body = vec![0x03, 0x02];
        body.extend_from_slice(&[7u8; 32]);
        body.extend_from_slice(&[0x00, 0x00, 0x04, 0xc0, 0x09, 0x00, 0x2f, 0x01, 0x00]);
        body.extend_from_slice(&[0x00, 0x08, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
        let mut hello = vec![0x01, 0x00, 0x00, body.len() as u8];
        hello.extend_from_slice(&body);
        let mut record = vec![0x16, 0x03, 0x02, 0x00, hello.len() as u8];
        record.extend_from_slice(&hello);

        let (mut client, server) = tokio::io::duplex(4096);
        client.write_all(&record).await.unwrap();
        let err = tls.starttls_acceptor().accept(server).await.unwrap_err();
        assert!(format!("{err:?}").contains("Tls12NotOffered"), "{err:?}");
        // The client is told: alert record, fatal (2), protocol_version (70).
        let mut alert = [0u8; 7];
        client.read_exact(&mut alert).await.unwrap();
        assert_eq!((alert[0], alert[5], alert[6]), (0x15, 2, 70), "{alert:?}");
    }

    #[test]
    fn end_point_hash_follows_the_signature_hash() {
        let dir = tempfile::tempdir().unwrap();
        for (alg, len) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, 32),
            (&rcgen::PKCS_ECDSA_P384_SHA384, 48),
            (&rcgen::PKCS_ED25519, 32),
        ] {
            let (cfg, cert) = files_config(dir.path(), alg);
            let tls = Tls::load(&cfg).unwrap();
            let der = CertificateDer::from_pem_file(&cert).unwrap();
            let end_point = tls.inner.resolver.0.load().end_point.clone();
            assert_eq!(end_point.len(), len);
            let expected = match len {
                48 => sha2::Sha384::digest(&der).to_vec(),
                _ => sha2::Sha256::digest(&der).to_vec(),
            };
            assert_eq!(end_point, expected);
        }
    }
}
