//! TLS for client connections: certificate loading (or a self-signed one on first start),
//! reload on SIGHUP without touching live sessions, and channel-binding data for SCRAM-PLUS.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::Digest;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// What `hearth check` and the startup log tell about the certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub self_signed: bool,
    pub path: Option<PathBuf>,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    /// RFC 5929 tls-server-end-point: the hash of the leaf certificate.
    end_point: Vec<u8>,
    info: CertInfo,
}

/// Where the certificate comes from.
#[derive(Clone)]
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned { dir: PathBuf, domain: String },
}

struct Resolver(ArcSwap<Loaded>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().key.clone())
    }
}

#[derive(Clone)]
pub struct Tls {
    source: Source,
    resolver: Arc<Resolver>,
    starttls: TlsAcceptor,
    direct: TlsAcceptor,
}

fn provider() -> Arc<CryptoProvider> {
    // One explicit provider: ring builds faster than aws-lc-rs and needs no cmake.
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    pub fn load(cfg: &Config) -> anyhow::Result<Self> {
        let source = match (&cfg.tls.certificate, &cfg.tls.key) {
            (Some(cert), Some(key)) => Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => Source::SelfSigned {
                dir: cfg.data_dir.join("tls"),
                domain: cfg.domain.clone(),
            },
        };
        let loaded = load(&source)?;
        let resolver = Arc::new(Resolver(ArcSwap::from_pointee(loaded)));
        let acceptor = |alpn: &[&[u8]]| -> anyhow::Result<TlsAcceptor> {
            let mut config = rustls::ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_cert_resolver(resolver.clone());
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(Self {
            starttls: acceptor(&[])?,
            direct: acceptor(&[b"xmpp-client"])?,
            resolver,
            source,
        })
    }

    /// Re-reads the certificate; on error the current one stays in use.
    pub fn reload(&self) -> anyhow::Result<()> {
        let loaded = load(&self.source)?;
        self.resolver.0.store(Arc::new(loaded));
        Ok(())
    }

    pub fn starttls_acceptor(&self) -> TlsAcceptor {
        self.starttls.clone()
    }

    /// XEP-0368: ALPN `xmpp-client` offered; a client offering only other protocols is refused
    /// by the handshake (RFC 7301), one offering none is accepted.
    pub fn direct_tls_acceptor(&self) -> TlsAcceptor {
        self.direct.clone()
    }

    /// (tls-exporter, tls-server-end-point) for a finished handshake. tls-exporter only on
    /// TLS 1.3: on 1.2 it is safe only with extended master secret, which rustls does not
    /// report (RFC 9266 §3). The end-point hash is that of the certificate being served; a
    /// reload racing a handshake could mismatch it, which makes that one -PLUS login fail
    /// safely (the client retries).
    pub fn channel_binding_data(
        &self,
        conn: &rustls::ServerConnection,
    ) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let exporter = if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            let mut out = vec![0u8; 32];
            let exported = conn
                .export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None)
                .is_ok();
            exported.then_some(out)
        } else {
            None
        };
        (exporter, Some(self.resolver.0.load().end_point.clone()))
    }

    pub fn certificate_info(&self) -> CertInfo {
        self.resolver.0.load().info.clone()
    }
}

fn load(source: &Source) -> anyhow::Result<Loaded> {
    let (chain, key, path, self_signed_here) = match source {
        Source::Files { cert, key } => (read_chain(cert)?, read_key(key)?, cert.clone(), false),
        Source::SelfSigned { dir, domain } => {
            let (cert, key) = (dir.join("selfsigned.crt"), dir.join("selfsigned.key"));
            if !cert.exists() || !key.exists() {
                generate_self_signed(dir, domain, &cert, &key)?;
            }
            tracing::warn!(
                certificate = %cert.display(),
                "USING A SELF-SIGNED CERTIFICATE: clients will warn or refuse to connect. Configure a real one with \
                 [tls] certificate = \"…/fullchain.pem\" and key = \"…/privkey.pem\" in hearth.toml (e.g. from Let's Encrypt, \
                 see contrib/certbot-deploy-hook.sh)"
            );
            (read_chain(&cert)?, read_key(&key)?, cert, true)
        }
    };
    let leaf = chain[0].clone();
    let mut info = parse_cert_info(&leaf)
        .with_context(|| format!("cannot read certificate {}", path.display()))?;
    info.self_signed |= self_signed_here;
    info.path = Some(path.clone());
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        anyhow::anyhow!(
            "the key does not fit the certificate {}: {e}",
            path.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        end_point: end_point_hash(&leaf),
        info,
    })
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("cannot read certificate file {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!("certificate file {} is not valid PEM: {e}", path.display())
        })?;
    anyhow::ensure!(
        !chain.is_empty(),
        "no certificate found in {}",
        path.display()
    );
    Ok(chain)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read a private key from {}: {e} (PKCS#8, PKCS#1 or SEC1 PEM expected)",
            path.display()
        )
    })
}

fn generate_self_signed(dir: &Path, domain: &str, cert: &Path, key: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let names = vec![
        domain.to_string(),
        format!("conference.{domain}"),
        format!("upload.{domain}"),
    ];
    let generated = rcgen::generate_simple_self_signed(names)
        .context("cannot generate a self-signed certificate")?;
    write_private(key, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, generated.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    tracing::warn!(certificate = %cert.display(), "generated a self-signed certificate for {domain}");
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// RFC 5929 §4.1: SHA-256, unless the certificate is signed with SHA-384 or SHA-512.
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
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_string),
        );
    }
    let time = |t: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
    };
    Ok(CertInfo {
        names,
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
        self_signed: cert.subject() == cert.issuer(),
        path: None,
    })
}

/// RFC 6125 §6.4: case-insensitive; a wildcard only as the whole left-most label, matching
/// exactly one label.
pub fn name_matches(pattern: &str, domain: &str) -> bool {
    let (pattern, domain) = (pattern.to_ascii_lowercase(), domain.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(rest) => domain
            .split_once('.')
            .is_some_and(|(label, parent)| !label.is_empty() && parent == rest),
        None => pattern == domain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config::parse(&format!(
            "domain = \"example.com\"\ndata_dir = \"{}\"",
            dir.display()
        ))
        .unwrap()
    }

    #[test]
    fn wildcard_rules() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(name_matches("Example.COM", "example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("a.example.com", "b.example.com"));
    }

    #[test]
    fn self_signed_is_generated_once_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::load(&config(dir.path())).unwrap();
        let info = tls.certificate_info();
        assert!(info.self_signed);
        assert!(
            info.names.contains(&"example.com".to_string())
                && info.names.contains(&"conference.example.com".to_string())
        );
        let pem = std::fs::read(dir.path().join("tls/selfsigned.crt")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls/selfsigned.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Tls::load(&config(dir.path())).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("tls/selfsigned.crt")).unwrap(),
            pem,
            "kept across restarts"
        );
        again.reload().unwrap();
    }

    #[test]
    fn broken_files_keep_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["example.com".into()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
        let cfg = Config::parse(&format!(
            "domain = \"example.com\"\ndata_dir = \"{}\"\n[tls]\ncertificate = \"{}\"\nkey = \"{}\"",
            dir.path().display(),
            cert.display(),
            key.display()
        ))
        .unwrap();
        let tls = Tls::load(&cfg).unwrap();
        let before = tls.certificate_info().not_after;
        std::fs::write(&cert, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.certificate_info().not_after, before);
        // A key that does not belong to the certificate is refused.
        let other = rcgen::generate_simple_self_signed(vec!["example.com".into()]).unwrap();
        std::fs::write(&cert, generated.cert.pem()).unwrap();
        std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
        let err = tls.reload().unwrap_err();
        assert!(format!("{err:#}").contains("does not fit"), "{err:#}");
    }

    #[tokio::test]
    async fn handshake_channel_bindings_match_the_client() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::load(&config(dir.path())).unwrap();
        let pem = dir.path().join("tls/selfsigned.crt");
        for (versions, expect_exporter) in [
            (&[&rustls::version::TLS13][..], true),
            (&[&rustls::version::TLS12][..], false),
        ] {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(&pem).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let client = rustls::ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
            let (a, b) = tokio::io::duplex(64 * 1024);
            let server = tls.starttls_acceptor();
            let (c, s) = tokio::join!(
                connector.connect("example.com".try_into().unwrap(), a),
                server.accept(b)
            );
            let (c, s) = (c.unwrap(), s.unwrap());
            let (exporter, end_point) = tls.channel_binding_data(s.get_ref().1);
            assert_eq!(exporter.is_some(), expect_exporter);
            if let Some(e) = exporter {
                let mut theirs = vec![0u8; 32];
                c.get_ref()
                    .1
                    .export_keying_material(&mut theirs, b"EXPORTER-Channel-Binding", None)
                    .unwrap();
                assert_eq!(e, theirs);
            }
            let leaf = c.get_ref().1.peer_certificates().unwrap()[0].clone();
            assert_eq!(end_point.unwrap(), sha2::Sha256::digest(&leaf).to_vec());
        }
    }
}
