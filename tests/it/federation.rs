//! Federation between two hearth instances (domains a.test and b.test on their own loopback
//! addresses, found through `s2s.peers`), and the s2s protocol over raw XML.

use std::time::{Duration, Instant};

use crate::harness::*;

fn peer(domain: &str, server: &TestServer) -> String {
    format!(
        "[s2s.peers.\"{domain}\"]\naddress = \"{}\"\n",
        server.s2s_addr
    )
}

/// a.test and b.test, each knowing where the other listens.
pub(crate) struct Pair {
    pub a: TestServer,
    pub b: TestServer,
    /// The first process of `a` (stopped), which owns its files.
    pub _a_files: TestServer,
}

/// Starts the pair. `a` starts with a placeholder address for `b` (not listening yet), so it
/// is restarted once with the real one. `extra(domain)` is added to each server's config.
fn pair(s2s_keys: &str, extra: impl Fn(&str) -> String) -> Pair {
    pair_serving(&[], s2s_keys, extra)
}

/// [`pair`] where `a` also serves `a_domains` (components), which `b` finds at `a`'s address.
pub(crate) fn pair_serving(
    a_domains: &[&str],
    s2s_keys: &str,
    extra: impl Fn(&str) -> String,
) -> Pair {
    let placeholder = "[s2s.peers.\"b.test\"]\naddress = \"127.0.0.1:9\"\n";
    let mut first = TestServer::start_federating(
        "a.test",
        s2s_keys,
        &format!("{placeholder}{}", extra("a.test")),
    );
    let a_peers: String = std::iter::once("a.test")
        .chain(a_domains.iter().copied())
        .map(|domain| peer(domain, &first))
        .collect();
    let b =
        TestServer::start_federating("b.test", s2s_keys, &format!("{a_peers}{}", extra("b.test")));
    first.stop();
    let text = std::fs::read_to_string(&first.config)
        .unwrap()
        .replace("127.0.0.1:9", &b.s2s_addr.to_string());
    std::fs::write(&first.config, text).unwrap();
    let a = TestServer::restart_from(&first);
    Pair {
        a,
        b,
        _a_files: first,
    }
}

#[tokio::test]
async fn a_burst_of_messages_crosses_the_link_in_order() {
    let Pair { a, b, _a_files } = pair("", |_| String::new());
    a.add_user("alice", "alicepass1");
    b.add_user("bob", "bobpass12");
    let (mut alice, _) = login(&a, "alice", "alicepass1", "phone").await;
    let (mut bob, _) = login(&b, "bob", "bobpass12", "desk").await;
    for c in [&mut alice, &mut bob] {
        c.send("<presence/>").await;
        c.sync().await;
    }
    const N: usize = 1000;
    let mut burst = String::new();
    for i in 0..N {
        burst.push_str(&format!(
            "<message to='bob@b.test/desk' type='chat' id='m{i}'><body>n{i}</body></message>"
        ));
    }
    alice.send(&burst).await;
    for i in 0..N {
        let got = bob.expect_stanza("<message").await;
        assert!(
            got.contains(&format!("<body>n{i}</body>")),
            "message {i} out of order: {got}"
        );
        assert!(got.contains("from='alice@a.test/phone'"), "{got}");
    }
    // And back, on the same connection: a asked for a bidirectional stream (XEP-0288).
    bob.send(
        "<message to='alice@a.test/phone' type='chat' id='r1'><body>got them</body></message>",
    )
    .await;
    let got = alice.expect_stanza("<message").await;
    assert!(got.contains("from='bob@b.test/desk'"), "{got}");
    assert!(a.log().contains("server-to-server link established"));
    let log_b = b.log();
    assert!(
        log_b.contains("remote server authenticated by dialback"),
        "{log_b}"
    );
    assert!(
        log_b.contains("now carries hearth's stanzas too"),
        "{log_b}"
    );
    assert!(
        !log_b.contains("server-to-server link established"),
        "{log_b}"
    );
    // The sysadmin's view of the links (SIGUSR1).
    for server in [&a, &b] {
        server.signal("USR1");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = |log: &str, remote: &str| -> String {
        log.lines()
            .find(|l| l.contains("outgoing link") && l.contains(&format!("remote={remote}")))
            .unwrap_or_else(|| panic!("no status of the link to {remote}:\n{log}"))
            .to_string()
    };
    let line = status(&a.log(), "b.test");
    assert!(
        line.contains("state=\"up\"") && line.contains("acks=true"),
        "{line}"
    );
    assert!(line.contains("queued=0"), "{line}");
    let log_b = b.log();
    let line = status(&log_b, "a.test");
    assert!(line.contains("the peer's bidirectional stream"), "{line}");
    assert!(
        log_b.lines().any(|l| l.contains("incoming from")
            && l.contains("remote=a.test")
            && l.contains("connections=1")),
        "{log_b}"
    );
}

#[tokio::test]
async fn an_unreachable_server_bounces_within_the_configured_time() {
    // Nothing listens on port 9 of 127.0.0.1: every attempt is refused until the deadline.
    let a = TestServer::start_federating(
        "a.test",
        "connect_timeout_secs = 2\n",
        "[s2s.peers.\"down.test\"]\naddress = \"127.0.0.1:9\"\n",
    );
    a.add_user("alice", "alicepass1");
    let (mut alice, _) = login(&a, "alice", "alicepass1", "phone").await;
    let started = Instant::now();
    alice
        .send("<message to='carol@down.test' type='chat' id='lost1'><body>hello?</body></message>")
        .await;
    let got = alice.expect_stanza("<message").await;
    assert!(
        got.contains("type='error'") && got.contains("id='lost1'"),
        "{got}"
    );
    assert!(got.contains("<remote-server-not-found"), "{got}");
    assert!(got.contains("cannot reach down.test"), "{got}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

/// A private CA (as a company has) and certificates from it for `domains`: (CA file, config
/// sections per domain using its certificate).
fn private_ca(dir: &std::path::Path) -> (std::path::PathBuf, impl Fn(&str) -> String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "hearth test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let dir = dir.to_path_buf();
    let issue = move |domain: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec![domain.to_string(), format!("conference.{domain}")])
                .unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &ca).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{domain}.crt")),
            dir.join(format!("{domain}.key")),
        );
        // The chain, CA included: the test clients trust what the file holds.
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca.pem())).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        format!(
            "[tls]\ncertificate = \"{}\"\nkey = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        )
    };
    (ca_file, issue)
}

#[tokio::test]
async fn certificates_from_a_trusted_ca_authenticate_without_dialback() {
    let certs = tempfile::tempdir().unwrap();
    let (ca_file, issue) = private_ca(certs.path());
    // Dialback is not even allowed: only certificates count.
    let keys = format!(
        "ca_file = \"{}\"\nauthentication = \"certificate\"\n",
        ca_file.display()
    );
    let Pair { a, b, _a_files } = pair(&keys, issue);
    a.add_user("alice", "alicepass1");
    b.add_user("bob", "bobpass12");
    let (mut alice, _) = login(&a, "alice", "alicepass1", "phone").await;
    let (mut bob, _) = login(&b, "bob", "bobpass12", "desk").await;
    alice
        .send("<message to='bob@b.test/desk' type='chat' id='c1'><body>signed</body></message>")
        .await;
    bob.expect("<body>signed</body>").await;
    bob.send("<message to='alice@a.test/phone' type='chat' id='c2'><body>sealed</body></message>")
        .await;
    alice.expect("<body>sealed</body>").await;
    for server in [&a, &b] {
        let log = server.log();
        assert!(
            log.contains("remote server authenticated by certificate"),
            "{log}"
        );
        assert!(!log.contains("authenticated by dialback"), "{log}");
    }
}

#[tokio::test]
async fn a_self_signed_peer_is_refused_where_certificates_are_required() {
    // b requires certificates from everyone; a has only its self-signed one.
    let certs = tempfile::tempdir().unwrap();
    let (ca_file, issue) = private_ca(certs.path());
    let a = TestServer::start_federating("a.test", "connect_timeout_secs = 3\n", "");
    let b_keys = format!(
        "ca_file = \"{}\"\nauthentication = \"certificate\"\n",
        ca_file.display()
    );
    let b = TestServer::start_federating(
        "b.test",
        &b_keys,
        &format!("{}{}", peer("a.test", &a), issue("b.test")),
    );
    let mut raw = Raw::connect_as_server(b.s2s_addr, "a.test", "b.test").await;
    let features = raw.open().await;
    assert!(
        features.contains("<required/>"),
        "TLS is required: {features}"
    );
    // Dialback before TLS is refused outright.
    raw.send("<db:result from='a.test' to='b.test'>0123</db:result>")
        .await;
    raw.expect_stream_error("policy-violation").await;
    let mut raw = Raw::connect_as_server(b.s2s_addr, "a.test", "b.test").await;
    raw.open().await;
    let features = raw.starttls(&tls_connector(&ca_file, &[])).await;
    assert!(
        !features.contains("EXTERNAL") && !features.contains("urn:xmpp:features:dialback"),
        "{features}"
    );
    raw.send("<db:result from='a.test' to='b.test'>0123</db:result>")
        .await;
    let r = raw.expect_stanza("<db:result").await;
    assert!(
        r.contains("type='error'") && r.contains("<not-authorized"),
        "{r}"
    );
    drop(a);
}

#[tokio::test]
async fn forged_dialback_keys_and_unauthenticated_stanzas_are_refused() {
    let Pair { a, b, _a_files } = pair("", |_| String::new());
    b.add_user("bob", "bobpass12");
    let (mut bob, _) = login(&b, "bob", "bobpass12", "desk").await;
    let connector = tls_connector(&b.cert_path(), &[]);

    // Stanzas before authenticating: the stream is closed.
    let mut raw = Raw::connect_as_server(b.s2s_addr, "a.test", "b.test").await;
    raw.open().await;
    let features = raw.starttls(&connector).await;
    assert!(
        features.contains("urn:xmpp:features:dialback"),
        "{features}"
    );
    raw.send("<message from='alice@a.test/x' to='bob@b.test/desk' type='chat'><body>sneaky</body></message>")
        .await;
    raw.expect_stream_error("invalid-from").await;

    // A key a.test never issued: b asks a.test's server, which says invalid.
    let mut raw = Raw::connect_as_server(b.s2s_addr, "a.test", "b.test").await;
    raw.open().await;
    raw.starttls(&connector).await;
    raw.send("<db:result from='a.test' to='b.test'>00deadbeef</db:result>")
        .await;
    let r = raw.expect_stanza("<db:result").await;
    assert!(r.contains("type='invalid'"), "{r}");
    raw.send("<message from='alice@a.test/x' to='bob@b.test/desk' type='chat'><body>forged</body></message>")
        .await;
    raw.expect_stream_error("invalid-from").await;

    // A stream for a domain b does not serve.
    let mut raw = Raw::connect_as_server(b.s2s_addr, "a.test", "elsewhere.test").await;
    raw.send("<?xml version='1.0'?><stream:stream from='a.test' to='elsewhere.test' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>")
        .await;
    raw.expect_stream_error("host-unknown").await;

    bob.expect_silence(300).await;
    drop(a);
}

#[tokio::test]
async fn stanzas_a_crashed_peer_never_acknowledged_are_sent_again() {
    let Pair { a, mut b, _a_files } = pair("", |_| String::new());
    a.add_user("alice", "alicepass1");
    b.add_user("bob", "bobpass12");
    let (mut alice, _) = login(&a, "alice", "alicepass1", "phone").await;
    let (mut bob, _) = login(&b, "bob", "bobpass12", "desk").await;
    bob.send("<presence/>").await;
    bob.sync().await;
    alice
        .send("<message to='bob@b.test' type='chat' id='m0'><body>link up</body></message>")
        .await;
    bob.expect("<body>link up</body>").await;
    // Acks are asked for within half a second: this one is confirmed before b freezes.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        a.log().contains("acks=true"),
        "acknowledgements enabled on the link"
    );
    // b freezes: what a writes now sits unread in b's socket, then b crashes with it.
    b.signal("STOP");
    for i in 0..20 {
        alice
            .send(&format!(
                "<message to='bob@b.test' type='chat' id='x{i}'><body>kept {i}</body></message>"
            ))
            .await;
    }
    alice.sync().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.kill();
    drop(bob);
    let b2 = TestServer::restart_from(&b);
    // a resends on a new link; b2 stores the messages for bob, who gets them on login.
    let (mut bob, _) = login(&b2, "bob", "bobpass12", "desk").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send("<presence/>").await;
    for i in 0..20 {
        let got = bob.expect_stanza("<message").await;
        assert!(
            got.contains(&format!("<body>kept {i}</body>")),
            "message {i}: {got}"
        );
    }
    assert!(a.log().contains("unacknowledged=20"), "{}", a.log());
}

/// A dialback key as hearth derives it (XEP-0185), for a test that knows the secret.
fn dialback_key(secret: &str, receiving: &str, originating: &str, stream_id: &str) -> String {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let mut mac = Hmac::<Sha256>::new_from_slice(&Sha256::digest(secret)).unwrap();
    mac.update(format!("{receiving} {originating} {stream_id}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A raw stream to `b` authenticated as a.test by dialback (b asks `a`, which shares the
/// test's secret).
async fn raw_from_a(b: &TestServer) -> Raw {
    let mut raw = Raw::connect_as_server(b.s2s_addr, "a.test", "b.test").await;
    raw.open().await;
    let features = raw.starttls(&tls_connector(&b.cert_path(), &[])).await;
    let id = attr(&features, "id").expect("stream id").to_string();
    let key = dialback_key("shared-secret", "b.test", "a.test", &id);
    raw.send(&format!(
        "<db:result from='a.test' to='b.test'>{key}</db:result>"
    ))
    .await;
    let r = raw.expect_stanza("<db:result").await;
    assert!(r.contains("type='valid'"), "{r}");
    raw
}

#[tokio::test]
async fn a_flooding_server_is_read_more_slowly_and_limited_in_connections() {
    let keys = "dialback_secret = \"shared-secret\"\nmax_stanzas_per_second = 40\nmax_connections_per_domain = 1\n";
    let Pair { a, b, _a_files } = pair(keys, |_| String::new());
    b.add_user("bob", "bobpass12");
    let (mut bob, _) = login(&b, "bob", "bobpass12", "desk").await;
    bob.send("<presence/>").await;
    bob.sync().await;
    let mut raw = raw_from_a(&b).await;
    let started = Instant::now();
    let mut flood = String::new();
    for i in 0..200 {
        flood.push_str(&format!(
            "<message from='mallory@a.test/x' to='bob@b.test/desk' type='chat'><body>f{i}</body></message>"
        ));
    }
    raw.send(&flood).await;
    for i in 0..200 {
        let got = bob.expect_stanza("<message").await;
        assert!(got.contains(&format!("<body>f{i}</body>")), "{got}");
    }
    // A burst of 80, then 40 per second: the other 120 take three seconds.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    // A second connection for a.test is one too many.
    let mut second = Raw::connect_as_server(b.s2s_addr, "a.test", "b.test").await;
    second.open().await;
    let features = second.starttls(&tls_connector(&b.cert_path(), &[])).await;
    let id = attr(&features, "id").expect("stream id").to_string();
    let key = dialback_key("shared-secret", "b.test", "a.test", &id);
    second
        .send(&format!(
            "<db:result from='a.test' to='b.test'>{key}</db:result>"
        ))
        .await;
    second.expect_stream_error("policy-violation").await;
    drop(a);
}

#[tokio::test]
async fn direct_tls_between_servers() {
    let ip_b = "127.0.1.5";
    let direct_b = format!("{ip_b}:{}", free_port(ip_b));
    let a = TestServer::start_federating(
        "a.test",
        "",
        &format!("[s2s.peers.\"b.test\"]\naddress = \"{direct_b}\"\ndirect_tls = true\n"),
    );
    let b = TestServer::start_federating(
        "b.test",
        &format!("direct_tls_listen = [\"{direct_b}\"]\n"),
        &peer("a.test", &a),
    );
    a.add_user("alice", "alicepass1");
    b.add_user("bob", "bobpass12");
    let (mut alice, _) = login(&a, "alice", "alicepass1", "phone").await;
    let (mut bob, _) = login(&b, "bob", "bobpass12", "desk").await;
    alice
        .send("<message to='bob@b.test/desk' type='chat'><body>straight to TLS</body></message>")
        .await;
    bob.expect("<body>straight to TLS</body>").await;
    assert!(
        a.log().contains(&format!("peer={direct_b}")),
        "a used b's direct TLS port:\n{}",
        a.log()
    );
}

/// A stand-in for another server, accepting hearth's outgoing stream: STARTTLS, then it offers
/// `features` and answers dialback as valid without checking.
async fn fake_peer_accepts(
    listener: &tokio::net::TcpListener,
    domain: &str,
    features: &str,
) -> tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut tcp, _) = listener.accept().await.unwrap();
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams' from='{domain}' id='s1' version='1.0'>"
    );
    let read_until = async |io: &mut (dyn tokio::io::AsyncRead + Unpin + Send), needle: &str| {
        let mut got = String::new();
        let mut buf = [0u8; 4096];
        while !got.contains(needle) {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0, "hearth closed the connection; got {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        got
    };
    read_until(&mut tcp, "<stream:stream").await;
    tcp.write_all(format!("{header}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>").as_bytes()).await.unwrap();
    read_until(&mut tcp, "<starttls").await;
    tcp.write_all(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![domain.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    let mut tls = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
        .accept(tcp)
        .await
        .unwrap();
    read_until(&mut tls, "<stream:stream").await;
    tls.write_all(format!("{header}<stream:features>{features}<dialback xmlns='urn:xmpp:features:dialback'/></stream:features>").as_bytes()).await.unwrap();
    let got = read_until(&mut tls, "</db:result>").await;
    assert_eq!(
        got.contains("<bidi xmlns='urn:xmpp:bidi'/>"),
        features.contains("bidi"),
        "hearth asks for a bidirectional stream exactly when offered: {got}"
    );
    tls.write_all(format!("<db:result from='{domain}' to='a.test' type='valid'/>").as_bytes())
        .await
        .unwrap();
    tls
}

#[tokio::test]
async fn a_bidirectional_stream_carries_the_peers_stanzas_back() {
    use tokio::io::AsyncWriteExt;
    let ip = "127.0.1.6";
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let fake = listener.local_addr().unwrap();
    let a = TestServer::start_federating(
        "a.test",
        "",
        &format!("[s2s.peers.\"fake.test\"]\naddress = \"{fake}\"\n"),
    );
    a.add_user("alice", "alicepass1");
    let (mut alice, _) = login(&a, "alice", "alicepass1", "phone").await;
    alice
        .send("<message to='bob@fake.test' type='chat' id='b1'><body>there?</body></message>")
        .await;
    let mut tls = fake_peer_accepts(
        &listener,
        "fake.test",
        "<bidi xmlns='urn:xmpp:features:bidi'/>",
    )
    .await;
    // The answer comes back on hearth's own connection.
    tls.write_all(b"<message from='bob@fake.test/x' to='alice@a.test/phone' type='chat'><body>here, same wire</body></message>")
        .await
        .unwrap();
    let got = alice.expect_stanza("<message").await;
    assert!(
        got.contains("<body>here, same wire</body>") && got.contains("from='bob@fake.test/x'"),
        "{got}"
    );
    // Only the stream's domain pair: anything else ends the link.
    tls.write_all(b"<message from='eve@elsewhere.test/x' to='alice@a.test/phone' type='chat'><body>spoof</body></message>")
        .await
        .unwrap();
    alice.expect_silence(500).await;
    assert!(a.log().contains("outside the domain pair"), "{}", a.log());
}

#[tokio::test]
async fn a_server_that_does_not_authenticate_is_cut_off() {
    // The limit clients have to log in applies to other servers' streams too.
    let b = TestServer::start_federating("b.test", "", "handshake_timeout_secs = 2\n");
    let mut raw = Raw::connect_as_server(b.s2s_addr, "a.test", "b.test").await;
    raw.open().await;
    raw.starttls(&tls_connector(&b.cert_path(), &[])).await;
    let started = Instant::now();
    raw.expect_stream_error("connection-timeout").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
