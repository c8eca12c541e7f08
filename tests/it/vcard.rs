//! Private XML storage (XEP-0049) and vCard-temp (XEP-0054) with the photo hash in presence
//! (XEP-0153) over raw XML.

use crate::harness::*;

#[tokio::test]
async fn private_storage_is_per_account_and_refuses_reserved_namespaces() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    a.send("<iq type='get' id='g0'><query xmlns='jabber:iq:private'><prefs xmlns='my:prefs'/></query></iq>")
        .await;
    let empty = a.expect_stanza("id='g0'").await;
    assert!(empty.contains("<prefs xmlns='my:prefs'/>"), "{empty}");
    a.send("<iq type='set' id='s1'><query xmlns='jabber:iq:private'><prefs xmlns='my:prefs'><nick>Al</nick></prefs></query></iq>")
        .await;
    assert!(a.expect_stanza("id='s1'").await.contains("type='result'"));
    a.send("<iq type='get' id='g1'><query xmlns='jabber:iq:private'><prefs xmlns='my:prefs'/></query></iq>")
        .await;
    assert!(a.expect_stanza("id='g1'").await.contains("<nick>Al</nick>"));
    for (id, payload) in [
        ("r1", "<vCard xmlns='vcard-temp'/>"),
        ("r2", "<query xmlns='jabber:iq:roster'/>"),
        ("r3", ""),
    ] {
        a.send(&format!(
            "<iq type='set' id='{id}'><query xmlns='jabber:iq:private'>{payload}</query></iq>"
        ))
        .await;
        let err = a.expect_stanza(&format!("id='{id}'")).await;
        assert!(err.contains("<not-acceptable"), "{err}");
    }
    b.send("<iq type='get' id='o1' to='alice@localhost'><query xmlns='jabber:iq:private'><prefs xmlns='my:prefs'/></query></iq>")
        .await;
    let err = b.expect_stanza("id='o1'").await;
    assert!(err.contains("<forbidden") && !err.contains("Al<"), "{err}");
}

#[tokio::test]
async fn vcards_are_read_by_anyone_and_written_by_their_owner() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    a.send("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard></iq>")
        .await;
    assert!(a.expect_stanza("id='v1'").await.contains("type='result'"));
    b.send("<iq type='get' id='v2' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await;
    let card = b.expect_stanza("id='v2'").await;
    assert!(
        card.contains("<FN>Alice</FN>") && card.contains("aGVsbG8="),
        "{card}"
    );
    b.send("<iq type='set' id='v3' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>")
        .await;
    assert!(b.expect_stanza("id='v3'").await.contains("<forbidden"));
    b.send("<iq type='get' id='v4'><vCard xmlns='vcard-temp'/></iq>")
        .await;
    assert!(
        b.expect_stanza("id='v4'")
            .await
            .contains("<vCard xmlns='vcard-temp'/>")
    );
    b.send("<iq type='get' id='v5' to='nobody@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await;
    assert!(
        b.expect_stanza("id='v5'")
            .await
            .contains("<service-unavailable")
    );
    // The photo's hash rides on alice's available presence (sha1 of "hello").
    a.send("<presence to='bob@localhost/b'/>").await;
    let p = b.expect_stanza("<presence").await;
    assert!(
        p.contains("<photo>aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d</photo>"),
        "{p}"
    );
}

#[tokio::test]
async fn oversized_vcards_are_refused() {
    let server = TestServer::start_with("[modules.vcard]\nmax_bytes = 100\n");
    let (mut a, _) = alice_and_bob(&server, false).await;
    let big = "x".repeat(200);
    a.send(&format!(
        "<iq type='set' id='big'><vCard xmlns='vcard-temp'><NOTE>{big}</NOTE></vCard></iq>"
    ))
    .await;
    let err = a.expect_stanza("id='big'").await;
    assert!(err.contains("<not-acceptable"), "{err}");
}
