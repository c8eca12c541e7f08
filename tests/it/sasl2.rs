//! SASL2 (XEP-0388) with Bind2 (XEP-0386) over raw XML: one round trip from TLS to a bound
//! session with carbons and Stream Management on, inline resumption, failures.

use base64::Engine as _;

use crate::harness::*;

pub(crate) const AGENT: &str = "<user-agent id='d4565fa7-4d72-4749-b3d3-740edbf87770'><software>Test</software><device>Phone</device></user-agent>";

pub(crate) fn plain(user: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// TLS, then the SASL2 features.
pub(crate) async fn secure(server: &TestServer) -> (Raw, String) {
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    let features = c.starttls(&server.tls_connector()).await;
    (c, features)
}

pub(crate) fn authenticate(user: &str, password: &str, inner: &str) -> String {
    format!(
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>{}</initial-response>{AGENT}{inner}</authenticate>",
        plain(user, password)
    )
}

pub(crate) const BIND: &str = "<bind xmlns='urn:xmpp:bind:0'><tag>Test</tag><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>";

#[tokio::test]
async fn one_round_trip_to_a_bound_session_with_carbons_and_sm() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut c, features) = secure(&server).await;
    assert!(
        features.contains(
            "<authentication xmlns='urn:xmpp:sasl:2'><mechanism>SCRAM-SHA-256-PLUS</mechanism>"
        ),
        "{features}"
    );
    assert!(
        features.contains("<feature var='urn:xmpp:carbons:2'/>")
            && features.contains("<feature var='urn:xmpp:sm:3'/>"),
        "{features}"
    );
    c.send(&authenticate("alice", "alicepass1", BIND)).await;
    let success = c.expect("</success>").await;
    assert!(
        success.contains("<success xmlns='urn:xmpp:sasl:2'>"),
        "{success}"
    );
    let jid = text_of(&success, "authorization-identifier")
        .unwrap()
        .to_string();
    assert!(jid.starts_with("alice@localhost/Test."), "{jid}");
    assert!(
        success.contains("<bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3'"),
        "{success}"
    );
    // No stream restart: the bound stream's (empty) features follow, and stanzas flow at once.
    c.expect("<stream:features/>").await;
    c.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    c.expect("id='p'").await;
    // The same device gets the same resource next time.
    let (mut again, _) = secure(&server).await;
    again
        .send(&authenticate(
            "alice",
            "alicepass1",
            "<bind xmlns='urn:xmpp:bind:0'><tag>Test</tag></bind>",
        ))
        .await;
    let success = again.expect("</success>").await;
    assert!(
        success.contains(&format!(
            "<authorization-identifier>{jid}</authorization-identifier>"
        )),
        "{success}"
    );
}

#[tokio::test]
async fn carbons_enabled_inline_work() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut c, _) = secure(&server).await;
    c.send(&authenticate("alice", "alicepass1", BIND)).await;
    c.expect("</success>").await;
    c.send("<presence/>").await;
    let (mut other, _) = login(&server, "alice", "alicepass1", "desktop").await;
    other
        .send("<message to='bob@localhost' type='chat'><body>from desktop</body></message>")
        .await;
    let copy = c.expect("from desktop").await;
    assert!(copy.contains("<sent xmlns='urn:xmpp:carbons:2'>"), "{copy}");
}

#[tokio::test]
async fn failures_and_challenges_use_the_sasl2_namespace() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut c, _) = secure(&server).await;
    c.send(&authenticate("alice", "wrong", BIND)).await;
    let failure = c.expect("</failure>").await;
    assert!(failure.contains("<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"), "{failure}");
    let first = base64::engine::general_purpose::STANDARD.encode("n,,n=alice,r=abcdefghijklmnop");
    c.send(&format!("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'><initial-response>{first}</initial-response></authenticate>")).await;
    c.expect("<challenge xmlns='urn:xmpp:sasl:2'>").await;
    c.send("<abort xmlns='urn:xmpp:sasl:2'/>").await;
    c.expect("<failure xmlns='urn:xmpp:sasl:2'><aborted").await;
}

#[tokio::test]
async fn inline_resumption_after_a_dropped_connection() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut c, _) = secure(&server).await;
    c.send(&authenticate("alice", "alicepass1", BIND)).await;
    let success = c.expect("</success>").await;
    let id = attr(success.split("<enabled").nth(1).unwrap(), "id")
        .unwrap()
        .to_string();
    c.send("<presence/>").await;
    c.sync().await;
    drop(c);
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send("<message to='alice@localhost' type='chat'><body>while away</body></message>")
        .await;
    b.sync().await;
    let (mut c, _) = secure(&server).await;
    c.send(&authenticate(
        "alice",
        "alicepass1",
        &format!("<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>{BIND}"),
    ))
    .await;
    let success = c.expect("</success>").await;
    assert!(
        success.contains(&format!("<resumed xmlns='urn:xmpp:sm:3' previd='{id}'")),
        "{success}"
    );
    assert!(
        !success.contains("<bound"),
        "resumed, so not bound anew: {success}"
    );
    c.expect("while away").await;
}
