//! RFC 6120 stream layer: headers, features, TLS, stream errors, keep-alives, closing.

use crate::harness::*;

#[tokio::test]
async fn starttls_is_required_and_offered_first() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.addr).await;
    let features = c.open().await;
    assert!(features.contains("from='localhost'"), "{features}");
    assert!(
        features
            .contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"),
        "{features}"
    );
    assert!(
        !features.contains("mechanisms"),
        "SASL must not be offered before TLS: {features}"
    );
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>")
        .await;
    c.expect("<encryption-required/>").await;
    c.send("<message to='a@localhost'><body>x</body></message>")
        .await;
    c.expect_stream_error("not-authorized").await;
}

#[tokio::test]
async fn features_after_tls_list_scram_plus_and_channel_bindings() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    let features = c.starttls(&server.tls_connector()).await;
    for m in [
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "PLAIN",
    ] {
        assert!(
            features.contains(&format!("<mechanism>{m}</mechanism>")),
            "{m} missing: {features}"
        );
    }
    assert!(
        features.contains("<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"),
        "{features}"
    );
    assert!(
        features.contains("<channel-binding type='tls-exporter'/>"),
        "{features}"
    );
    assert!(
        features.contains("<channel-binding type='tls-server-end-point'/>"),
        "{features}"
    );
    // Stanzas before authentication are refused.
    c.send("<presence/>").await;
    c.expect_stream_error("not-authorized").await;
}

#[tokio::test]
async fn direct_tls_with_alpn() {
    let server = TestServer::start();
    let connector = tls_connector(&server.cert_path(), &[b"xmpp-client"]);
    let tcp = tokio::net::TcpStream::connect(server.tls_addr)
        .await
        .unwrap();
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from(DOMAIN).unwrap(),
            tcp,
        )
        .await
        .expect("direct TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"xmpp-client"[..]));
    let mut c = Raw::from_tls(tls);
    let features = c.open().await;
    assert!(
        features.contains("<mechanism>SCRAM-SHA-256-PLUS</mechanism>"),
        "{features}"
    );
    assert!(!features.contains("starttls"), "{features}");
}

#[tokio::test]
async fn stream_header_errors() {
    let server = TestServer::start();
    let cases = [
        (
            "<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
            "invalid-namespace",
        ),
        (
            "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='urn:wrong'>",
            "invalid-namespace",
        ),
        (
            "<stream:stream to='elsewhere.example' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            "host-unknown",
        ),
        (
            "<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            "unsupported-version",
        ),
    ];
    for (header, condition) in cases {
        let mut c = Raw::connect(server.addr).await;
        c.send(header).await;
        c.expect_stream_error(condition).await;
    }
}

/// Each hostile or broken input closes only its own stream, with the RFC 6120 §4.9.3 condition.
#[tokio::test]
async fn bad_xml_gets_stream_errors() {
    let server =
        TestServer::start_with("max_stanza_size = 10000\nmax_depth = 8\nmax_attributes = 10\n");
    let deep = format!("{}{}", "<a xmlns='x'>".repeat(20), "</a>".repeat(20));
    let attrs: String = (0..20).map(|i| format!(" a{i}='v'")).collect();
    let big = format!(
        "<message to='a@localhost'><body>{}</body></message>",
        "x".repeat(20_000)
    );
    let bomb = "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>";
    let cases: Vec<(String, &[&str])> = vec![
        ("<message><body></message>".into(), &["not-well-formed"]),
        (
            "<message to='a@localhost'><body>&lol;</body></message>".into(),
            &["not-well-formed", "restricted-xml"],
        ),
        (
            "<?evil processing-instruction?>".into(),
            &["restricted-xml", "not-well-formed"],
        ),
        ("<!-- a comment -->".into(), &["restricted-xml"]),
        (bomb.into(), &["restricted-xml", "not-well-formed"]),
        (
            "<message xmlns:p='u'><q:body/></message>".into(),
            &["not-well-formed", "invalid-namespace"],
        ),
        ("<message id='1' id='2'/>".into(), &["not-well-formed"]),
        (big, &["policy-violation"]),
        (deep, &["policy-violation"]),
        (format!("<message{attrs}/>"), &["policy-violation"]),
        ("\u{0}".into(), &["not-well-formed"]),
    ];
    for (input, conditions) in cases {
        let mut c = Raw::connect(server.addr).await;
        c.open().await;
        c.try_send(input.as_bytes()).await;
        let rest = c.closed().await;
        assert!(
            conditions.iter().any(|cond| rest.contains(&format!(
                "<{cond} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            ))),
            "input {:?}: expected one of {conditions:?}, got {rest:?}",
            &input[..input.len().min(80)]
        );
    }
    // A DTD before the stream header is refused too.
    let mut c = Raw::connect(server.addr).await;
    c.try_send(
        format!(
            "<?xml version='1.0'?>{}{}",
            "<!DOCTYPE x [<!ENTITY a 'b'>]>",
            header().trim_start_matches("<?xml version='1.0'?>")
        )
        .as_bytes(),
    )
    .await;
    let rest = c.closed().await;
    assert!(rest.contains("<stream:error>"), "{rest:?}");
    // The server is still fine.
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
}

#[tokio::test]
async fn starttls_with_pipelined_plaintext_is_refused() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message to='a@localhost'/>")
        .await;
    let rest = c.closed().await;
    assert!(rest.contains("<proceed"), "{rest}");
}

#[tokio::test]
async fn whitespace_keepalive_and_graceful_close() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut c, _) = login(&server, "alice", "alicepass1", "ws").await;
    c.send(" \n \t ").await;
    c.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    c.expect_stanza("id=\'p1\'").await;
    c.send("</stream:stream>").await;
    let rest = c.closed().await;
    assert!(rest.trim_end().ends_with("</stream:stream>"), "{rest:?}");
    assert!(!rest.contains("<stream:error>"), "{rest:?}");
}

#[tokio::test]
async fn server_pings_silent_clients_and_drops_dead_ones() {
    let server = TestServer::start_with("ping_after_secs = 1\nping_timeout_secs = 1\n");
    server.add_user("alice", "alicepass1");
    let (mut c, _) = login(&server, "alice", "alicepass1", "idle").await;
    let ping = c.expect("<ping xmlns='urn:xmpp:ping'/>").await;
    assert!(ping.contains("type='get'"), "{ping}");
    // No answer: the connection is declared dead.
    c.expect_stream_error("connection-timeout").await;
}

#[tokio::test]
async fn resource_conflict_new_session_wins_and_generated_resources() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut first, jid1) = login(&server, "alice", "alicepass1", "phone").await;
    assert_eq!(jid1, "alice@localhost/phone");
    let (mut second, jid2) = login(&server, "alice", "alicepass1", "phone").await;
    assert_eq!(jid2, jid1);
    first.expect_stream_error("conflict").await;
    second
        .send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    second.expect_stanza("id=\'p\'").await;

    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    c.starttls(&server.tls_connector()).await;
    assert!(
        c.plain_auth("alice", "alicepass1")
            .await
            .contains("<success")
    );
    let features = c.open().await;
    assert!(
        features.contains("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
        "{features}"
    );
    assert!(
        features
            .contains("<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"),
        "{features}"
    );
    c.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await;
    let reply = c.expect("</iq>").await;
    assert!(reply.contains("<jid>alice@localhost/"), "{reply}");
    c.send("<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        .await;
    let reply = c.expect_tag("id='s'").await;
    assert!(reply.contains("type='result'"), "{reply}");
}

#[tokio::test]
async fn sighup_reloads_certificate_without_dropping_sessions() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut c, _) = login(&server, "alice", "alicepass1", "r").await;
    server.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    c.send("<iq type='get' id='after-hup' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    c.expect_stanza("id=\'after-hup\'").await;
    assert!(server.log().contains("reloaded"), "{}", server.log());
    // New handshakes still work.
    let _ = login(&server, "alice", "alicepass1", "r2").await;
}

#[tokio::test]
async fn sigterm_closes_streams_with_system_shutdown() {
    let mut server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut c, _) = login(&server, "alice", "alicepass1", "r").await;
    let status = server.stop();
    assert!(status.success(), "{status}");
    c.expect_stream_error("system-shutdown").await;
}
