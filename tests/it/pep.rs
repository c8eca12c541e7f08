//! Personal Eventing (XEP-0163) over raw XML: publish-options and preconditions (the way
//! OMEMO publishes), access models, node configuration, notifications filtered by verified
//! entity caps, the last item on coming online, and the server's own caps.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::harness::*;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";

fn publish(id: &str, node: &str, item: &str, payload: &str, access: Option<&str>) -> String {
    let options = access
        .map(|a| {
            format!(
                "<publish-options><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>\
                 <field var='pubsub#access_model'><value>{a}</value></field></x></publish-options>"
            )
        })
        .unwrap_or_default();
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{item}'>{payload}</item></publish>{options}</pubsub></iq>"
    )
}

fn items(id: &str, to: &str, node: &str) -> String {
    format!(
        "<iq type='get' id='{id}' to='{to}'><pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub></iq>"
    )
}

/// The XEP-0115 verification string of a client with these features.
fn caps_ver(features: &[&str]) -> String {
    let mut s = String::from("client/phone//test<");
    let mut f = features.to_vec();
    f.sort_unstable();
    for x in f {
        s.push_str(x);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
}

/// Sends available presence with caps and answers the server's disco#info like a client.
async fn presence_with_caps(c: &mut Raw, features: &[&str]) {
    let ver = caps_ver(features);
    c.send(&format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://test.example' ver='{ver}'/></presence>"
    ))
    .await;
    let query = c.expect_stanza("<iq").await;
    assert!(
        query.contains(&format!("node='https://test.example#{ver}'")),
        "{query}"
    );
    let id = query
        .split("id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let features: String = features
        .iter()
        .map(|f| format!("<feature var='{f}'/>"))
        .collect();
    c.send(&format!(
        "<iq type='result' id='{id}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='https://test.example#{ver}'><identity category='client' type='phone' name='test'/>{features}</query></iq>"
    ))
    .await;
}

#[tokio::test]
async fn omemo_style_publish_options_and_preconditions() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    let node = "eu.siacs.conversations.axolotl.bundles:123";
    a.send(&publish(
        "p1",
        node,
        "current",
        "<bundle xmlns='eu.siacs.conversations.axolotl'/>",
        Some("open"),
    ))
    .await;
    let r = a.expect_stanza("id='p1'").await;
    assert!(
        r.contains("type='result'") && r.contains("<item id='current'/>"),
        "{r}"
    );
    // The configuration reads back as published (what the Conversations compliance tester checks).
    a.send(&format!("<iq type='get' id='c1'><pubsub xmlns='{PUBSUB}#owner'><configure node='{node}'/></pubsub></iq>"))
        .await;
    let c = a.expect_stanza("id='c1'").await;
    assert!(
        c.contains("var='pubsub#access_model'") && c.contains("<value>open</value>"),
        "{c}"
    );
    // A conflicting precondition is refused.
    a.send(&publish(
        "p2",
        node,
        "current",
        "<bundle xmlns='eu.siacs.conversations.axolotl'/>",
        Some("whitelist"),
    ))
    .await;
    let e = a.expect_stanza("id='p2'").await;
    assert!(
        e.contains("<conflict")
            && e.contains(
                "<precondition-not-met xmlns='http://jabber.org/protocol/pubsub#errors'/>"
            ),
        "{e}"
    );
    // Anyone may read an open node; nobody but the owner may publish to it.
    b.send(&items("i1", "alice@localhost", node)).await;
    let got = b.expect_stanza("id='i1'").await;
    assert!(
        got.contains("<bundle xmlns='eu.siacs.conversations.axolotl'/>"),
        "{got}"
    );
    b.send(&format!(
        "<iq type='set' id='p3' to='alice@localhost'><pubsub xmlns='{PUBSUB}'><publish node='{node}'><item><x xmlns='y'/></item></publish></pubsub></iq>"
    ))
    .await;
    assert!(b.expect_stanza("id='p3'").await.contains("<forbidden"));
    a.send(&format!("<iq type='set' id='d1'><pubsub xmlns='{PUBSUB}#owner'><delete node='{node}'/></pubsub></iq>"))
        .await;
    assert!(a.expect_stanza("id='d1'").await.contains("type='result'"));
    b.send(&items("i2", "alice@localhost", node)).await;
    assert!(b.expect_stanza("id='i2'").await.contains("<item-not-found"));
}

#[tokio::test]
async fn presence_access_and_bad_requests() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    a.send(&publish(
        "p1",
        "urn:xmpp:avatar:metadata",
        "abc",
        "<metadata xmlns='urn:xmpp:avatar:metadata'/>",
        None,
    ))
    .await;
    a.expect_stanza("id='p1'").await;
    b.send(&items("i1", "alice@localhost", "urn:xmpp:avatar:metadata"))
        .await;
    let e = b.expect_stanza("id='i1'").await;
    assert!(
        e.contains("<not-authorized") && e.contains("presence-subscription-required"),
        "{e}"
    );
    a.send(&format!(
        "<iq type='set' id='p2'><pubsub xmlns='{PUBSUB}'><publish node='x'/></pubsub></iq>"
    ))
    .await;
    assert!(a.expect_stanza("id='p2'").await.contains("item-required"));
    a.send(&format!(
        "<iq type='set' id='p3'><pubsub xmlns='{PUBSUB}'><publish/></pubsub></iq>"
    ))
    .await;
    assert!(a.expect_stanza("id='p3'").await.contains("nodeid-required"));
    // Bookmarks the XEP-0402 way: max_items=max, whitelist.
    a.send(&format!(
        "<iq type='set' id='bm'><pubsub xmlns='{PUBSUB}'><publish node='urn:xmpp:bookmarks:1'><item id='room@conference.localhost'><conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/></item></publish>\
         <publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>\
         <field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#max_items'><value>max</value></field>\
         <field var='pubsub#send_last_published_item'><value>never</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub></iq>"
    ))
    .await;
    assert!(a.expect_stanza("id='bm'").await.contains("type='result'"));
}

/// `x` subscribes to `y`'s presence and `y` approves.
async fn subscribe(x: &mut Raw, y: &mut Raw, x_jid: &str, y_jid: &str) {
    x.send(&format!("<presence to='{y_jid}' type='subscribe'/>"))
        .await;
    y.expect("type='subscribe'").await;
    y.send(&format!("<presence to='{x_jid}' type='subscribed'/>"))
        .await;
    y.sync().await;
    x.sync().await;
}

#[tokio::test]
async fn notifications_follow_verified_caps_and_last_items_come_online() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    // Mutual presence subscription.
    for c in [&mut a, &mut b] {
        c.send("<presence/>").await;
        c.sync().await;
    }
    subscribe(&mut a, &mut b, "alice@localhost", "bob@localhost").await;
    subscribe(&mut b, &mut a, "bob@localhost", "alice@localhost").await;
    a.send("<presence/>").await;
    a.sync().await;
    presence_with_caps(
        &mut b,
        &[
            "http://jabber.org/protocol/tune+notify",
            "http://jabber.org/protocol/caps",
        ],
    )
    .await;
    b.sync().await;
    a.send(&publish(
        "t1",
        "http://jabber.org/protocol/tune",
        "current",
        "<tune xmlns='http://jabber.org/protocol/tune'><title>Song</title></tune>",
        None,
    ))
    .await;
    a.expect_stanza("id='t1'").await;
    let event = b.expect_stanza("<message from='alice@localhost'").await;
    assert!(
        event.contains("<event xmlns='http://jabber.org/protocol/pubsub#event'>")
            && event.contains("<title>Song</title>"),
        "{event}"
    );
    // No +notify for moods: no mood notifications.
    a.send(&publish(
        "m1",
        "http://jabber.org/protocol/mood",
        "current",
        "<mood xmlns='http://jabber.org/protocol/mood'><happy/></mood>",
        None,
    ))
    .await;
    a.expect_stanza("id='m1'").await;
    b.sync().await;
    b.expect_silence(300).await;
    // Bob comes back online with a new client: it gets the last tune (caps now cached, so no
    // disco#info round trip).
    drop(b);
    let (mut b2, _) = login(&server, "bob", "bobpass12", "b2").await;
    let ver = caps_ver(&[
        "http://jabber.org/protocol/tune+notify",
        "http://jabber.org/protocol/caps",
    ]);
    b2.send(&format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://test.example' ver='{ver}'/></presence>"
    ))
    .await;
    let last = b2.expect_stanza("<message from='alice@localhost'").await;
    assert!(last.contains("<title>Song</title>"), "{last}");
}

#[tokio::test]
async fn the_server_advertises_its_caps_and_the_account_its_pep_service() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    c.starttls(&server.tls_connector()).await;
    c.plain_auth("alice", "alicepass1").await;
    let features = c.open().await;
    let ver = features
        .split("<c xmlns='http://jabber.org/protocol/caps'")
        .nth(1)
        .expect("caps feature")
        .split("ver='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    c.bind("r").await;
    c.send(&format!("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='https://hearth.invalid/caps#{ver}'/></iq>"))
        .await;
    let info = c.expect_stanza("id='d1'").await;
    assert!(
        info.contains("type='result'") && info.contains("urn:xmpp:carbons:2"),
        "{info}"
    );
    c.send("<iq type='get' id='d2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let account = c.expect_stanza("id='d2'").await;
    assert!(
        account.contains("category='pubsub' type='pep'"),
        "{account}"
    );
    for f in [
        "#publish-options",
        "#config-node-max",
        "urn:xmpp:bookmarks:1#compat-pep",
        "urn:xmpp:mam:2",
        "urn:xmpp:push:0",
    ] {
        assert!(account.contains(f), "{f}: {account}");
    }
}

#[tokio::test]
async fn a_pep_avatar_becomes_the_vcard_photo() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    // sha1("hello"), base64 "aGVsbG8=".
    let id = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";
    a.send(&publish(
        "d",
        "urn:xmpp:avatar:data",
        id,
        "<data xmlns='urn:xmpp:avatar:data'>aGVsbG8=</data>",
        Some("open"),
    ))
    .await;
    a.expect_stanza("id='d'").await;
    a.send(&publish(
        "m",
        "urn:xmpp:avatar:metadata",
        id,
        &format!("<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='5' id='{id}' type='image/png'/></metadata>"),
        Some("open"),
    ))
    .await;
    a.expect_stanza("id='m'").await;
    b.send("<iq type='get' id='v' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await;
    let card = b.expect_stanza("id='v'").await;
    assert!(
        card.contains("<BINVAL>aGVsbG8=</BINVAL>") && card.contains("<TYPE>image/png</TYPE>"),
        "{card}"
    );
    a.send("<presence to='bob@localhost/b'/>").await;
    let p = b.expect_stanza("<presence").await;
    assert!(p.contains(&format!("<photo>{id}</photo>")), "{p}");
}

#[tokio::test]
async fn a_vcard_photo_becomes_the_pep_avatar() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    let id = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";
    let card = "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard>";
    for round in ["v1", "v2"] {
        a.send(&format!("<iq type='set' id='{round}'>{card}</iq>"))
            .await;
        let r = a.expect_stanza(&format!("id='{round}'")).await;
        assert!(r.contains("type='result'"), "{r}");
    }
    // Anyone may read it, as anyone may read the vCard.
    b.send(&items("md", "alice@localhost", "urn:xmpp:avatar:metadata"))
        .await;
    let md = b.expect_stanza("id='md'").await;
    assert!(
        md.contains(&format!("<item id='{id}'>"))
            && md.contains(&format!("<info bytes='5' id='{id}' type='image/png'/>")),
        "{md}"
    );
    b.send(&items("d", "alice@localhost", "urn:xmpp:avatar:data"))
        .await;
    let data = b.expect_stanza("id='d'").await;
    assert!(
        data.contains("<data xmlns='urn:xmpp:avatar:data'>aGVsbG8=</data>"),
        "{data}"
    );
    assert_eq!(data.matches("<item ").count(), 1, "{data}");
}

#[tokio::test]
async fn bookmarks_agree_in_all_three_places() {
    let server = TestServer::start();
    let (mut a, _b) = alice_and_bob(&server, false).await;
    let (mut other, _) = login(&server, "alice", "alicepass1", "other").await;
    other.send("<presence/>").await;
    other.sync().await;
    // A legacy client stores bookmarks in private XML.
    a.send("<iq type='set' id='s1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='room@conference.localhost' name='Room' autojoin='true'><nick>Al</nick></conference></storage></query></iq>")
        .await;
    assert!(a.expect_stanza("id='s1'").await.contains("type='result'"));
    // A modern client reads them as XEP-0402 items, and was notified.
    let event = other.expect_stanza("<message from='alice@localhost'").await;
    assert!(
        event.contains("urn:xmpp:bookmarks:1") || event.contains("storage:bookmarks"),
        "{event}"
    );
    a.send(&items("i1", "alice@localhost", "urn:xmpp:bookmarks:1"))
        .await;
    let got = a.expect_stanza("id='i1'").await;
    assert!(
        got.contains("<item id='room@conference.localhost'>") && got.contains("<nick>Al</nick>"),
        "{got}"
    );
    // The modern client adds one; the legacy views follow.
    a.send(&publish(
        "p1",
        "urn:xmpp:bookmarks:1",
        "other@conference.localhost",
        "<conference xmlns='urn:xmpp:bookmarks:1' autojoin='false' name='Other'/>",
        None,
    ))
    .await;
    a.expect_stanza("id='p1'").await;
    a.send("<iq type='get' id='g1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
        .await;
    let private = a.expect_stanza("id='g1'").await;
    assert!(
        private.contains("jid='room@conference.localhost'")
            && private.contains("jid='other@conference.localhost'"),
        "{private}"
    );
    a.send(&items("i2", "alice@localhost", "storage:bookmarks"))
        .await;
    let legacy = a.expect_stanza("id='i2'").await;
    assert!(
        legacy.contains("jid='other@conference.localhost'"),
        "{legacy}"
    );
    // Retracting in XEP-0402 removes it from the legacy document too.
    a.send(&format!("<iq type='set' id='r1'><pubsub xmlns='{PUBSUB}'><retract node='urn:xmpp:bookmarks:1'><item id='room@conference.localhost'/></retract></pubsub></iq>"))
        .await;
    a.expect_stanza("id='r1'").await;
    a.send("<iq type='get' id='g2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>")
        .await;
    let private = a.expect_stanza("id='g2'").await;
    assert!(
        !private.contains("jid='room@conference.localhost'"),
        "{private}"
    );
}

#[tokio::test]
async fn vcard4_is_a_pep_node() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    a.send(&publish(
        "v4",
        "urn:xmpp:vcard4",
        "current",
        "<vcard xmlns='urn:ietf:params:xml:ns:vcard-4.0'><fn><text>Alice</text></fn></vcard>",
        Some("open"),
    ))
    .await;
    a.expect_stanza("id='v4'").await;
    b.send(&items("i", "alice@localhost", "urn:xmpp:vcard4"))
        .await;
    assert!(
        b.expect_stanza("id='i'")
            .await
            .contains("<text>Alice</text>")
    );
}
