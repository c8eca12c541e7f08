//! Messaging and server services over raw XML: delivery rules, offline storage, disco, version,
//! errors for unknown users, IQs and domains.

use crate::harness::*;

async fn two_users(server: &TestServer) -> (Raw, Raw) {
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(server, "alice", "alicepass1", "a").await;
    let (mut b, _) = login(server, "bob", "bobpass12", "b").await;
    for c in [&mut a, &mut b] {
        c.send("<presence/>").await;
        c.sync().await;
    }
    (a, b)
}

#[tokio::test]
async fn chat_between_two_users_with_stamped_from() {
    let server = TestServer::start();
    let (mut a, mut b) = two_users(&server).await;
    a.send("<message to='bob@localhost' type='chat' id='m1'><body>hello bob</body></message>")
        .await;
    let got = b.expect("</message>").await;
    assert!(got.contains("from='alice@localhost/a'"), "{got}");
    assert!(got.contains("<body>hello bob</body>"), "{got}");
    b.send("<message to='alice@localhost/a' type='chat' id='m2'><body>hi alice</body></message>")
        .await;
    let got = a.expect("<body>hi alice</body>").await;
    assert!(got.contains("from='bob@localhost/b'"), "{got}");
    // Message bodies never reach the log.
    assert!(!server.log().contains("hello bob"));
}

#[tokio::test]
async fn negative_priority_resources_get_no_bare_messages() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    let (mut bob_low, _) = login(&server, "bob", "bobpass12", "low").await;
    bob_low
        .send("<presence><priority>-1</priority></presence>")
        .await;
    let (mut bob_high, _) = login(&server, "bob", "bobpass12", "high").await;
    bob_high
        .send("<presence><priority>5</priority></presence>")
        .await;
    a.send("<message to='bob@localhost' type='chat'><body>to bare</body></message>")
        .await;
    bob_high.expect("<body>to bare</body>").await;
    a.send("<message to='bob@localhost/low' type='chat'><body>to full</body></message>")
        .await;
    let got = bob_low.expect("</message>").await;
    assert!(
        got.contains("<body>to full</body>"),
        "a full-JID message reaches even a negative-priority resource: {got}"
    );
}

#[tokio::test]
async fn offline_messages_are_stored_and_delivered_with_delay() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send("<message to='bob@localhost' type='chat' id='off1'><body>while you were away</body></message>").await;
    a.send("<message to='bob@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>").await;
    a.send("<message to='bob@localhost/gone' type='chat' id='off2'><body>second</body></message>")
        .await;
    a.expect_silence(300).await;
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.expect_silence(200).await;
    b.send("<presence/>").await;
    b.sync().await;
    let first = b.expect("</message>").await;
    assert!(
        first.contains("while you were away") && first.contains("<delay xmlns='urn:xmpp:delay'"),
        "{first}"
    );
    assert!(
        first.contains("from='localhost'") && first.contains("stamp='"),
        "{first}"
    );
    let second = b.expect("</message>").await;
    assert!(second.contains("<body>second</body>"), "{second}");
    b.expect_silence(300).await;
    // Delivered messages are gone: a new session does not get them again.
    let (mut b2, _) = login(&server, "bob", "bobpass12", "b2").await;
    b2.send("<presence/>").await;
    b2.sync().await;
    b2.expect_stanza("from='bob@localhost/b'").await;
    b2.expect_silence(300).await;
}

#[tokio::test]
async fn offline_storage_survives_restart_and_has_a_limit() {
    let mut server = TestServer::start_with("[modules.offline]\nmax_messages_per_user = 2\n");
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    for i in 0..3 {
        a.send(&format!(
            "<message to='bob@localhost' type='chat' id='q{i}'><body>n{i}</body></message>"
        ))
        .await;
    }
    let bounce = a.expect("</message>").await;
    assert!(
        bounce.contains("id='q2'")
            && bounce.contains("type='error'")
            && bounce.contains("<service-unavailable"),
        "{bounce}"
    );
    drop(a);
    assert!(server.stop().success());
    // Same data directory, new process.
    let server2 = restart(&server);
    let (mut b, _) = login(&server2, "bob", "bobpass12", "b").await;
    b.send("<presence/>").await;
    b.sync().await;
    b.expect("<body>n0</body>").await;
    b.expect("<body>n1</body>").await;
}

#[tokio::test]
async fn stored_offline_message_survives_a_crash() {
    let mut server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send(
        "<message to='bob@localhost' type='chat' id='c1'><body>before the crash</body></message>",
    )
    .await;
    // The ping is answered after the message was handled, i.e. after it was committed.
    a.sync().await;
    server.kill();
    let server2 = restart(&server);
    let (mut b, _) = login(&server2, "bob", "bobpass12", "b").await;
    b.send("<presence/>").await;
    b.expect("<body>before the crash</body>").await;
}

fn restart(old: &TestServer) -> TestServer {
    TestServer::restart_from(old)
}

#[tokio::test]
async fn errors_for_unknown_users_iqs_and_remote_domains() {
    // Federation off: other domains are answered at once (see federation.rs for the rest).
    let server = TestServer::start_federating(DOMAIN, "enabled = false\n", "");
    server.add_user("alice", "alicepass1");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send("<message to='nobody@localhost' type='chat' id='e1'><body>x</body></message>")
        .await;
    let r = a.expect("</message>").await;
    assert!(
        r.contains("type='error'")
            && r.contains("<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{r}"
    );
    a.send("<iq type='get' id='e2' to='localhost'><query xmlns='urn:example:unknown'/></iq>")
        .await;
    let r = a.expect("</iq>").await;
    assert!(
        r.contains("id='e2'") && r.contains("<service-unavailable"),
        "{r}"
    );
    a.send("<message to='someone@remote.example' type='chat' id='e3'><body>x</body></message>")
        .await;
    let r = a.expect("</message>").await;
    assert!(r.contains("<remote-server-not-found"), "{r}");
    assert!(r.contains("does not federate"), "{r}");
    a.send("<iq type='get' id='e4'><a xmlns='x'/><b xmlns='x'/></iq>")
        .await;
    let r = a.expect("</iq>").await;
    assert!(r.contains("id='e4'") && r.contains("<bad-request"), "{r}");
    a.send("<message to='bad@@jid' id='e5'><body>x</body></message>")
        .await;
    let r = a.expect("</message>").await;
    assert!(r.contains("<jid-malformed"), "{r}");
}

#[tokio::test]
async fn disco_version_ping() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let r = a.expect("</iq>").await;
    for f in [
        "msgoffline",
        "jabber:iq:version",
        "urn:xmpp:ping",
        "http://jabber.org/protocol/disco#info",
        "jabber:iq:register",
    ] {
        assert!(
            r.contains(&format!("<feature var='{f}'/>")),
            "{f} missing: {r}"
        );
    }
    assert!(
        r.contains("<identity category='server' name='hearth' type='im'/>"),
        "{r}"
    );
    a.send("<iq type='get' id='d2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>").await;
    let r = a.expect("</iq>").await;
    assert!(r.contains("type='result'"), "{r}");
    a.send("<iq type='get' id='d3'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let r = a.expect("</iq>").await;
    assert!(
        r.contains("<identity category='account' type='registered'/>"),
        "{r}"
    );
    a.send("<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
        .await;
    let r = a.expect("</iq>").await;
    assert!(
        r.contains("<name>hearth</name>") && !r.contains("<os>"),
        "{r}"
    );
    a.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let r = a.expect_stanza("id='p1'").await;
    assert!(r.contains("id='p1'") && r.contains("type='result'"), "{r}");
    // Another account's disco is not shown to strangers.
    server.add_user("carol", "carolpass1");
    a.send("<iq type='get' id='d4' to='carol@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>").await;
    let r = a.expect("</iq>").await;
    assert!(r.contains("<service-unavailable"), "{r}");
}

#[tokio::test]
async fn in_band_registration_when_enabled() {
    // Without invitations, nothing opens registration (with them, a token does: test_invite.py).
    let closed = TestServer::start_with("[modules.invite]\nenabled = false\n");
    let mut c = Raw::connect(closed.addr).await;
    c.open().await;
    let features = c.starttls(&closed.tls_connector()).await;
    assert!(!features.contains("iq-register"), "{features}");
    c.send("<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>eve</username><password>evepassword</password></query></iq>").await;
    let r = c.expect_stanza("id='r1'").await;
    assert!(r.contains("<service-unavailable"), "{r}");

    let open = TestServer::start_with("[modules.register]\nallow_registration = true\n");
    let mut c = Raw::connect(open.addr).await;
    c.open().await;
    let features = c.starttls(&open.tls_connector()).await;
    assert!(
        features.contains("<register xmlns='http://jabber.org/features/iq-register'/>"),
        "{features}"
    );
    c.send("<iq type='get' id='r0'><query xmlns='jabber:iq:register'/></iq>")
        .await;
    let r = c.expect("</iq>").await;
    assert!(
        r.contains("<username/>") && r.contains("<password/>"),
        "{r}"
    );
    c.send("<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>Eve</username><password>evepassword</password></query></iq>").await;
    let r = c.expect_stanza("id='r1'").await;
    assert!(r.contains("type='result'"), "{r}");
    c.send("<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>eve</username><password>evepassword</password></query></iq>").await;
    let r = c.expect_stanza("id='r2'").await;
    assert!(r.contains("<conflict"), "{r}");
    c.send("<iq type='set' id='r3'><query xmlns='jabber:iq:register'><username>frank</username><password>short</password></query></iq>").await;
    let r = c.expect_stanza("id='r3'").await;
    assert!(r.contains("<not-acceptable"), "{r}");
    let (mut e, jid) = login(&open, "eve", "evepassword", "x").await;
    assert_eq!(jid, "eve@localhost/x");
    // Password change, then account removal closes the session.
    e.send("<iq type='set' id='pw' to='localhost'><query xmlns='jabber:iq:register'><username>eve</username><password>newpassword</password></query></iq>").await;
    assert!(e.expect_stanza("id='pw'").await.contains("type='result'"));
    e.send("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await;
    let r = e.expect_tag("id='rm'").await;
    assert!(r.contains("type='result'"), "{r}");
    e.expect_stream_error("not-authorized").await;
    let (ok, out) = open.cli(&["user", "list"], "");
    assert!(ok && !out.contains("eve@"), "{out}");
}
