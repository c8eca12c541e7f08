//! TLS between servers. Certificates are not checked during the handshake: a peer with a
//! self-signed certificate may still authenticate with Server Dialback, so the handshake
//! accepts any certificate (its signatures are checked) and the stream layer asks afterwards
//! whether the chain is valid for the domain the peer claims (XEP-0178, RFC 6125 DNS-ID).

use std::sync::Arc;

use anyhow::Context as _;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::S2sConfig;
use crate::tls::Tls;

/// ALPN protocol of direct-TLS server connections (XEP-0368).
const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

pub struct S2sTls {
    pub starttls: TlsAcceptor,
    pub direct: TlsAcceptor,
    /// Outgoing connections; direct TLS sends ALPN `xmpp-server`.
    pub connector: TlsConnector,
    pub direct_connector: TlsConnector,
    /// Checks a peer's chain against the trusted roots and a domain.
    pkix: Arc<rustls::client::WebPkiServerVerifier>,
    /// The certificates of `s2s.ca_file`: one presented as a peer's own certificate is trusted
    /// as itself (a pinned self-signed certificate, which WebPKI refuses when it is marked as a
    /// CA, as `openssl req -x509` makes them).
    pinned: Vec<CertificateDer<'static>>,
}

impl S2sTls {
    pub fn new(tls: &Tls, cfg: &S2sConfig) -> anyhow::Result<Self> {
        let provider = tls.provider().clone();
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(
                "no trusted root certificates found on this system (install ca-certificates): other servers can only authenticate with dialback"
            );
        }
        let mut pinned = Vec::new();
        if let Some(path) = &cfg.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read s2s.ca_file {}", path.display()))?;
            pinned.clone_from(&certs);
            let (added, ignored) = roots.add_parsable_certificates(certs);
            anyhow::ensure!(
                added > 0 && ignored == 0,
                "s2s.ca_file {}: {ignored} of {} certificates unusable as trust anchors",
                path.display(),
                added + ignored
            );
        }
        let pkix = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .context("s2s trust anchors")?;
        let any_cert = Arc::new(AnyCertificate(provider.clone()));
        let acceptor = |alpn: &[&[u8]]| -> anyhow::Result<TlsAcceptor> {
            Ok(TlsAcceptor::from(Arc::new(
                tls.server_config_with(any_cert.clone(), alpn)?,
            )))
        };
        let connector = |alpn: &[u8]| -> anyhow::Result<TlsConnector> {
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .context("TLS protocol versions")?
                .dangerous()
                .with_custom_certificate_verifier(any_cert.clone())
                .with_client_cert_resolver(Arc::new(OwnCertificate(tls.clone())));
            if !alpn.is_empty() {
                config.alpn_protocols = vec![alpn.to_vec()];
            }
            Ok(TlsConnector::from(Arc::new(config)))
        };
        Ok(Self {
            starttls: acceptor(&[])?,
            direct: acceptor(&[ALPN_XMPP_SERVER])?,
            connector: connector(&[])?,
            direct_connector: connector(ALPN_XMPP_SERVER)?,
            pkix,
            pinned,
        })
    }

    /// Whether `chain` (leaf first) is a valid certificate for `domain`; the error says why not.
    pub fn check(
        &self,
        chain: Option<&[CertificateDer<'static>]>,
        domain: &str,
    ) -> Result<(), String> {
        let Some((leaf, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return Err("no certificate presented".into());
        };
        if self.pinned.contains(leaf) {
            let info = crate::tls::parse_cert_info(leaf).map_err(|e| e.to_string())?;
            let now = std::time::SystemTime::now();
            if !(info.not_before..info.not_after).contains(&now) {
                return Err("the pinned certificate is outside its validity period".into());
            }
            return match info
                .names
                .iter()
                .any(|n| crate::tls::name_matches(n, domain))
            {
                true => Ok(()),
                false => Err(format!("the pinned certificate is not for {domain}")),
            };
        }
        let name = ServerName::try_from(domain.to_string()).map_err(|e| e.to_string())?;
        self.pkix
            .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Accepts any certificate in the handshake (checking only the handshake signatures), as a
/// server for incoming streams and as a client for outgoing ones; see the module note.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    fn schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for AnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes()
    }
}

/// hearth's current certificate as its client certificate on outgoing streams, so that the
/// peer can offer SASL EXTERNAL (it follows SIGHUP reloads).
struct OwnCertificate(Tls);

impl std::fmt::Debug for OwnCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnCertificate")
    }
}

impl rustls::client::ResolvesClientCert for OwnCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_self_signed_certificate_counts_for_its_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x.test".to_string()]).unwrap();
        // As `openssl req -x509` makes them: WebPKI alone would refuse it as an end entity.
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let ca_file = dir.path().join("pinned.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        let mut config = crate::config::Config::parse("domain = \"a.example\"").unwrap();
        config.data_dir = dir.path().to_path_buf();
        config.s2s.ca_file = Some(ca_file);
        let tls = Tls::load(&config).unwrap();
        let s2s = S2sTls::new(&tls, &config.s2s).unwrap();
        let chain = [cert.der().clone()];
        assert_eq!(s2s.check(Some(&chain), "x.test"), Ok(()));
        assert!(s2s.check(Some(&chain), "y.test").is_err());
        assert!(s2s.check(None, "x.test").is_err());
        // Another self-signed certificate for the same name is not trusted.
        let other = rcgen::CertificateParams::new(vec!["x.test".to_string()])
            .unwrap()
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap();
        assert!(s2s.check(Some(&[other.der().clone()]), "x.test").is_err());
    }
}
