//! Stream Management (XEP-0198) and Client State Indication (XEP-0352) over raw XML: counts and
//! acks, resumption after a dropped connection, after a takeover, after a restart, and what
//! happens to unacknowledged messages when a session is not resumed.

use crate::harness::*;

const SM: &str = "urn:xmpp:sm:3";

/// Logs in without binding (for resumption).
async fn authenticate(server: &TestServer, user: &str, password: &str) -> (Raw, String) {
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    c.starttls(&server.tls_connector()).await;
    assert!(c.plain_auth(user, password).await.contains("<success"));
    let features = c.open().await;
    (c, features)
}

/// Enables resumable SM and returns the resumption id.
async fn enable(c: &mut Raw) -> String {
    c.send(&format!("<enable xmlns='{SM}' resume='true'/>"))
        .await;
    let enabled = c.expect_tag("<enabled").await;
    attr(&enabled, "id").expect("resumption id").to_string()
}

async fn setup(server: &TestServer) -> (Raw, Raw, String) {
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(server, "alice", "alicepass1", "phone").await;
    let id = enable(&mut a).await;
    a.send("<presence/>").await;
    let (mut b, _) = login(server, "bob", "bobpass12", "pc").await;
    b.send("<presence/>").await;
    b.expect_stanza("<presence").await;
    (a, b, id)
}

fn chat(n: u32) -> String {
    format!(
        "<message to='alice@localhost' type='chat' id='m{n}'><body>message {n}</body></message>"
    )
}

#[tokio::test]
async fn features_counts_and_acks() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (_, features) = authenticate(&server, "alice", "alicepass1").await;
    assert!(
        features.contains(&format!("<sm xmlns='{SM}'/>")),
        "{features}"
    );
    assert!(
        features.contains("<csi xmlns='urn:xmpp:csi:0'/>"),
        "{features}"
    );

    let (mut a, _) = login(&server, "alice", "alicepass1", "r").await;
    a.send(&format!("<enable xmlns='{SM}'/>")).await;
    let enabled = a.expect_tag("<enabled").await;
    assert!(
        !enabled.contains("resume="),
        "no resumption unless asked: {enabled}"
    );
    a.send(&format!("<r xmlns='{SM}'/>")).await;
    a.expect(&format!("<a xmlns='{SM}' h='0'/>")).await;
    a.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    a.expect("id='p1'").await;
    // The server asks for an acknowledgement of what it sent.
    a.expect(&format!("<r xmlns='{SM}'/>")).await;
    a.send(&format!("<a xmlns='{SM}' h='1'/><r xmlns='{SM}'/>"))
        .await;
    a.expect(&format!("<a xmlns='{SM}' h='1'/>")).await;
    // Enabling twice is refused.
    a.send(&format!("<enable xmlns='{SM}'/>")).await;
    a.expect("<unexpected-request").await;
    // Acknowledging more than was sent ends the stream (XEP-0198 §4).
    a.send(&format!("<a xmlns='{SM}' h='9'/>")).await;
    let rest = a.closed().await;
    assert!(
        rest.contains("<handled-count-too-high xmlns='urn:xmpp:sm:3' h='9' send-count='1'/>"),
        "{rest}"
    );
}

#[tokio::test]
async fn enable_before_bind_is_refused() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut c, _) = authenticate(&server, "alice", "alicepass1").await;
    c.send(&format!("<enable xmlns='{SM}'/>")).await;
    c.expect("<failed xmlns='urn:xmpp:sm:3'><unexpected-request")
        .await;
    c.send(&format!("<resume xmlns='{SM}' previd='nope' h='0'/>"))
        .await;
    c.expect("<failed xmlns='urn:xmpp:sm:3'><item-not-found")
        .await;
}

#[tokio::test]
async fn resumption_after_a_dropped_connection_loses_and_duplicates_nothing() {
    let server = TestServer::start();
    let (mut a, mut b, id) = setup(&server).await;
    for n in 1..=3 {
        b.send(&chat(n)).await;
    }
    a.expect("message 3").await;
    // The client handled its own presence and two of the three messages, then its network
    // went away.
    drop(a);
    b.send(&chat(4)).await;
    b.sync().await;
    let (mut a, _) = authenticate(&server, "alice", "alicepass1").await;
    a.send(&format!("<resume xmlns='{SM}' previd='{id}' h='3'/>"))
        .await;
    // One stanza (initial presence) came from the client before the drop.
    a.expect(&format!("<resumed xmlns='{SM}' previd='{id}' h='1'/>"))
        .await;
    let got = a.expect("message 4").await;
    assert!(got.contains("message 3"), "{got}");
    assert!(
        !got.contains("message 1") && !got.contains("message 2"),
        "{got}"
    );
    a.send(&format!("<a xmlns='{SM}' h='5'/>")).await;
    // The resumed session is live: it receives and sends.
    b.send(&chat(5)).await;
    let got = a.expect("message 5").await;
    assert!(!got.contains("message 3"), "no duplicate: {got}");
    a.send("<message to='bob@localhost' type='chat'><body>back</body></message>")
        .await;
    b.expect("<body>back</body>").await;
    assert!(server.log().contains("session resumed"));
}

#[tokio::test]
async fn resumption_takes_over_a_connection_the_server_thinks_alive() {
    let server = TestServer::start();
    let (mut old, mut b, id) = setup(&server).await;
    b.send(&chat(1)).await;
    old.expect("message 1").await;
    let (mut a, _) = authenticate(&server, "alice", "alicepass1").await;
    a.send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    a.expect("<resumed").await;
    a.expect("message 1").await;
    old.expect_stream_error("conflict").await;
    b.send(&chat(2)).await;
    a.expect("message 2").await;
}

#[tokio::test]
async fn unacknowledged_messages_go_offline_when_not_resumed() {
    let server = TestServer::start_with("[c2s.stream_management]\nresume_timeout_secs = 1\n");
    let (mut a, mut b, id) = setup(&server).await;
    b.send(&chat(1)).await;
    a.expect("message 1").await;
    drop(a);
    b.send(&chat(2)).await;
    b.sync().await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    // The session is gone: resumption fails, and bob sees alice leave.
    let (mut late, _) = authenticate(&server, "alice", "alicepass1").await;
    late.send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    late.expect("<item-not-found").await;
    let (mut a, _) = login(&server, "alice", "alicepass1", "phone").await;
    a.send("<presence/>").await;
    let got = a.expect("message 2").await;
    assert!(got.contains("message 1"), "{got}");
    assert!(got.contains("urn:xmpp:delay"), "{got}");
    b.expect_silence(300).await;
}

#[tokio::test]
async fn resumption_survives_a_restart() {
    let mut server = TestServer::start();
    let (mut a, mut b, id) = setup(&server).await;
    b.send(&chat(1)).await;
    a.expect("message 1").await;
    server.stop();
    a.expect_stream_error("system-shutdown").await;
    drop(b);
    let server = TestServer::restart_from(&server);
    let (mut b, _) = login(&server, "bob", "bobpass12", "pc").await;
    b.send("<presence/>").await;
    b.send(&chat(2)).await;
    b.sync().await;
    let (mut a, _) = authenticate(&server, "alice", "alicepass1").await;
    a.send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    a.expect(&format!("<resumed xmlns='{SM}' previd='{id}' h='1'/>"))
        .await;
    let got = a.expect("message 2").await;
    assert!(got.contains("message 1"), "{got}");
    assert!(server.log().contains("restored resumable sessions"));
    a.send("<message to='bob@localhost' type='chat'><body>still here</body></message>")
        .await;
    b.expect("still here").await;
}

#[tokio::test]
async fn inactive_clients_get_only_what_matters_until_active() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send("<presence/>").await;
    a.expect_stanza("<presence").await;
    a.send("<inactive xmlns='urn:xmpp:csi:0'/>").await;
    a.sync().await;
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    for status in ["first", "second"] {
        b.send(&format!(
            "<presence to='alice@localhost/a'><status>{status}</status></presence>"
        ))
        .await;
    }
    b.send("<message to='alice@localhost/a' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    b.sync().await;
    a.expect_silence(300).await;
    b.send("<message to='alice@localhost/a' type='chat'><body>wake up</body></message>")
        .await;
    let got = a.expect("wake up").await;
    assert!(
        !got.contains("first"),
        "a newer presence replaced it: {got}"
    );
    let (second, composing) = (got.find("second").unwrap(), got.find("composing").unwrap());
    assert!(second < composing, "held stanzas keep their order: {got}");
    // Active again: everything flows at once.
    a.send("<active xmlns='urn:xmpp:csi:0'/>").await;
    b.send("<message to='alice@localhost/a' type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    a.expect("paused").await;
}

#[tokio::test]
async fn a_client_that_never_acknowledges_is_cut_off_and_loses_nothing() {
    let server = TestServer::start_with("max_queued_stanzas = 3\n");
    let (mut a, mut b, _) = setup(&server).await;
    for n in 1..=3 {
        b.send(&chat(n)).await;
        b.sync().await;
    }
    a.expect_stream_error("policy-violation").await;
    // The three messages went to offline storage. Delivering them at once may again exceed the
    // tiny queue limit of this test; then what was not delivered stays stored for the next login.
    let (mut a, _) = login(&server, "alice", "alicepass1", "phone").await;
    a.send("<presence/>").await;
    let got = a.expect_one_of(&["message 3", "</stream:stream>"]).await;
    assert!(
        got.contains("message 1") && got.contains("message 2"),
        "{got}"
    );
    if !got.contains("message 3") {
        let (mut again, _) = login(&server, "alice", "alicepass1", "phone").await;
        again.send("<presence/>").await;
        let got = again.expect("message 3").await;
        assert!(!got.contains("message 1"), "{got}");
    }
}

#[tokio::test]
async fn binding_the_resource_of_a_parked_session_takes_its_messages() {
    let server = TestServer::start();
    let (mut a, mut b, _) = setup(&server).await;
    b.send(&chat(1)).await;
    a.expect("message 1").await;
    drop(a);
    b.send(&chat(2)).await;
    b.sync().await;
    // The client forgot its resumption id and binds the same resource anew.
    let (mut a, _) = login(&server, "alice", "alicepass1", "phone").await;
    a.send("<presence/>").await;
    let got = a.expect("message 2").await;
    assert!(got.contains("message 1"), "{got}");
}
