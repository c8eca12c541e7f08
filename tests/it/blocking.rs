//! Blocking Command (XEP-0191) over raw XML.

use crate::harness::*;

const BLOCKED: &str = "<blocked xmlns='urn:xmpp:blocking:errors'/>";

#[tokio::test]
async fn blocked_contacts_cannot_write_and_are_not_written_to() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    a.send("<iq type='get' id='l1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    assert!(
        a.expect_stanza("id='l1'")
            .await
            .contains("<blocklist xmlns='urn:xmpp:blocking'/>")
    );
    a.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>")
        .await;
    // The push to this interested resource, and the result.
    let got = a.expect_stanza("id='b1'").await;
    assert!(got.contains("type='result'"), "{got}");
    b.send("<message to='alice@localhost/a' type='chat' id='m1'><body>hi</body></message>")
        .await;
    let err = b.expect_stanza("id='m1'").await;
    assert!(
        err.contains("type='error'") && err.contains("<service-unavailable"),
        "{err}"
    );
    b.send("<presence to='alice@localhost/a'/>").await;
    a.send("<message to='bob@localhost/b' type='chat' id='m2'><body>hi</body></message>")
        .await;
    let err = a.expect_stanza("id='m2'").await;
    assert!(
        err.contains("<not-acceptable") && err.contains(BLOCKED),
        "{err}"
    );
    a.send("<iq type='get' id='l2'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    let list = a.expect_stanza("id='l2'").await;
    assert!(list.contains("<item jid='bob@localhost'/>"), "{list}");
    assert!(
        !list.contains("<presence"),
        "no presence from the blocked contact: {list}"
    );
    a.send("<iq type='set' id='u1'><unblock xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    let got = a.expect_stanza("id='u1'").await;
    assert!(got.contains("type='result'"), "{got}");
    b.send("<message to='alice@localhost/a' type='chat'><body>back</body></message>")
        .await;
    a.expect("back").await;
}

#[tokio::test]
async fn domains_and_pushes_and_bad_requests() {
    let server = TestServer::start();
    let (mut a, _b) = alice_and_bob(&server, true).await;
    let (mut other, _) = login(&server, "alice", "alicepass1", "other").await;
    other
        .send("<iq type='get' id='l1'><blocklist xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    other.expect_stanza("id='l1'").await;
    a.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='spam.example'/></block></iq>")
        .await;
    a.expect_stanza("id='b1'").await;
    let push = other.expect_stanza("<iq").await;
    assert!(
        push.contains("type='set'") && push.contains("<item jid='spam.example'/>"),
        "{push}"
    );
    a.send("<message to='x@spam.example' type='chat' id='m1'><body>x</body></message>")
        .await;
    assert!(a.expect_stanza("id='m1'").await.contains(BLOCKED));
    a.send("<iq type='set' id='b2'><block xmlns='urn:xmpp:blocking'/></iq>")
        .await;
    assert!(a.expect_stanza("id='b2'").await.contains("<bad-request"));
    // The server itself is never blocked, even with its domain on the list.
    a.send("<iq type='set' id='b3'><block xmlns='urn:xmpp:blocking'><item jid='localhost'/></block></iq>")
        .await;
    a.expect_stanza("id='b3'").await;
    a.sync().await;
}

#[tokio::test]
async fn blocking_a_subscribed_contact_sends_it_unavailable() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    b.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    a.expect("type='subscribe'").await;
    a.send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    b.expect("from='alice@localhost/a'").await;
    b.sync().await;
    a.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>")
        .await;
    a.expect_stanza("id='b1'").await;
    let p = b.expect_stanza("type='unavailable'").await;
    assert!(p.contains("from='alice@localhost/a'"), "{p}");
    // Alice's later presence does not reach bob.
    a.send("<presence><status>away</status></presence>").await;
    a.sync().await;
    b.sync().await;
    b.expect_silence(300).await;
}
