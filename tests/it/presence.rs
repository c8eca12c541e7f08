//! RFC 6121 roster and presence over raw XML: roster get/set/remove with pushes and versioning,
//! the subscription handshake both ways, pre-approval, probes, directed presence, unavailable
//! presence on disconnect.

use crate::harness::*;

#[tokio::test]
async fn roster_set_push_remove_and_versioning() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut a1, _) = login(&server, "alice", "alicepass1", "one").await;
    let (mut a2, _) = login(&server, "alice", "alicepass1", "two").await;
    // Both resources ask for the roster, so both get pushes.
    for (c, id) in [(&mut a1, "g1"), (&mut a2, "g2")] {
        c.send(&format!(
            "<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
        ))
        .await;
        let r = c.expect("</iq>").await;
        assert!(r.contains("type='result'") && r.contains("ver='"), "{r}");
    }
    a1.send("<iq type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='Bob@Localhost' name='Bob'><group>Friends</group></item></query></iq>").await;
    for c in [&mut a1, &mut a2] {
        let push = c.expect("</iq>").await;
        assert!(
            push.contains("type='set'")
                && push.contains("jid='bob@localhost'")
                && push.contains("<group>Friends</group>"),
            "{push}"
        );
        assert!(push.contains("subscription='none'"), "{push}");
    }
    let r = a1.expect_tag("id='s1'").await;
    assert!(r.contains("type='result'"), "{r}");
    a1.send("<iq type='get' id='g3'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let full = a1.expect("</iq>").await;
    assert!(full.contains("jid='bob@localhost'"), "{full}");
    let ver = attr(&full[full.find("<query").unwrap()..], "ver")
        .expect("ver")
        .to_string();
    // Same version: empty result.
    a1.send(&format!(
        "<iq type='get' id='g4'><query xmlns='jabber:iq:roster' ver='{ver}'/></iq>"
    ))
    .await;
    let r = a1.expect_tag("id='g4'").await;
    assert!(
        r.trim_end().ends_with("/>"),
        "same version: an empty result: {r}"
    );
    // Bad sets.
    a1.send("<iq type='set' id='s2'><query xmlns='jabber:iq:roster'><item jid='x@localhost'><group>G</group><group>G</group></item></query></iq>").await;
    assert!(a1.expect("</iq>").await.contains("<bad-request"));
    a1.send("<iq type='set' id='s3'><query xmlns='jabber:iq:roster'><item jid='x@localhost'/><item jid='y@localhost'/></query></iq>").await;
    assert!(a1.expect("</iq>").await.contains("<bad-request"));
    // Remove.
    a1.send("<iq type='set' id='s4'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>").await;
    let push = a2.expect("</iq>").await;
    assert!(push.contains("subscription='remove'"), "{push}");
}

#[tokio::test]
async fn subscription_handshake_presence_and_unavailable_on_disconnect() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    for c in [&mut a, &mut b] {
        c.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
            .await;
        c.expect_stanza("id=\'r\'").await;
        c.send("<presence/>").await;
        c.sync().await;
    }
    // Alice asks Bob.
    a.send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    let push = a.expect("</iq>").await;
    assert!(
        push.contains("jid='bob@localhost'") && push.contains("ask='subscribe'"),
        "{push}"
    );
    let req = b.expect("type='subscribe'").await;
    assert!(req.contains("from='alice@localhost'"), "{req}");
    // Bob approves and subscribes back.
    b.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    let push = b.expect("</iq>").await;
    assert!(
        push.contains("jid='alice@localhost'") && push.contains("subscription='from'"),
        "{push}"
    );
    let push = a.expect("subscription='to'").await;
    assert!(push.contains("jid='bob@localhost'"), "{push}");
    a.expect("type='subscribed'").await;
    // Bob is online: Alice receives his presence.
    a.expect("from='bob@localhost/b'").await;
    b.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    a.expect("type='subscribe'").await;
    a.send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    b.expect("subscription='both'").await;
    a.expect("subscription='both'").await;
    // Bob goes away: Alice sees unavailable.
    b.send("<presence><show>away</show></presence>").await;
    a.expect("<show>away</show>").await;
    drop(b);
    let gone = a.expect("type='unavailable'").await;
    assert!(gone.contains("from='bob@localhost/b'"), "{gone}");
    // Unsubscribe: Alice stops receiving Bob's presence.
    a.send("<presence to='bob@localhost' type='unsubscribe'/>")
        .await;
    a.expect("subscription='from'").await;
}

#[tokio::test]
async fn pre_approval_and_no_presence_leak_to_strangers() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    server.add_user("eve", "evepass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    a.expect_stanza("id=\'r\'").await;
    a.send("<presence/>").await;
    a.sync().await;
    // Alice pre-approves Bob (RFC 6121 §3.4).
    a.send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    let push = a.expect("</iq>").await;
    assert!(push.contains("approved='true'"), "{push}");
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send("<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    b.expect_stanza("id=\'r\'").await;
    b.send("<presence/>").await;
    b.sync().await;
    b.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    // Approved automatically: Bob gets 'subscribed' and Alice's presence without Alice acting.
    b.expect("type='subscribed'").await;
    b.expect("from='alice@localhost/a'").await;
    // A stranger probing gets nothing.
    let (mut e, _) = login(&server, "eve", "evepass12", "e").await;
    e.send("<presence to='alice@localhost' type='probe'/>")
        .await;
    e.expect_silence(400).await;
}

#[tokio::test]
async fn directed_presence_is_withdrawn_on_disconnect() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send("<presence/>").await;
    b.sync().await;
    a.send("<presence/>").await;
    a.sync().await;
    a.send("<presence to='bob@localhost/b'><status>just for you</status></presence>")
        .await;
    b.expect("just for you").await;
    drop(a);
    let gone = b.expect("type='unavailable'").await;
    assert!(gone.contains("from='alice@localhost/a'"), "{gone}");
}

/// Initial presence probes the contacts (RFC 6121 §4.2.2): a new session learns who is online,
/// and pending subscription requests wait for the next login (§3.1.3).
#[tokio::test]
async fn initial_presence_probes_contacts_and_redelivers_requests() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    server.add_user("carol", "carolpass1");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send("<presence><status>here</status></presence>").await;
    b.sync().await;
    // Alice subscribes to Bob; Bob approves.
    a.send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    b.expect("type='subscribe'").await;
    b.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    b.sync().await;
    a.sync().await;
    drop(a);
    // Carol asks Alice while Alice is offline.
    let (mut c, _) = login(&server, "carol", "carolpass1", "c").await;
    c.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    c.sync().await;
    // Alice comes back: her initial presence probes Bob, and Carol's request is delivered.
    let (mut a2, _) = login(&server, "alice", "alicepass1", "a2").await;
    a2.send("<presence/>").await;
    let got = a2
        .expect_one_of(&["<status>here</status>", "from='carol@localhost'"])
        .await;
    let rest = a2
        .expect_one_of(&["<status>here</status>", "from='carol@localhost'"])
        .await;
    let all = format!("{got}{rest}");
    assert!(
        all.contains("<status>here</status>") && all.contains("from='carol@localhost'"),
        "{all}"
    );
}

/// Shared roster groups from the config (`[modules.groups]`): members have each other in their
/// rosters with mutual subscription, so they see each other online without asking; an account
/// created while the server runs joins within a refresh.
#[tokio::test]
async fn configured_groups_share_rosters_and_presence() {
    let server = TestServer::start_with(
        "[modules.groups]\nrefresh_secs = 1\n[modules.groups.groups]\nStaff = [\"alice\", \"bob\", \"carol\"]\n",
    );
    let (mut a, mut b) = alice_and_bob(&server, false).await;
    // Created after the server started: the next refresh adds the items.
    a.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    a.expect_stanza("id='r1'").await;
    let push = a.expect_stanza("jid='bob@localhost'").await;
    assert!(
        push.contains("subscription='both'") && push.contains("<group>Staff</group>"),
        "{push}"
    );
    b.send("<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let roster = b.expect_stanza("id='r2'").await;
    assert!(
        roster.contains("jid='alice@localhost'")
            || b.expect_stanza("jid='alice@localhost'")
                .await
                .contains("both"),
        "{roster}"
    );
    // Presence flows both ways without any subscription request.
    a.send("<presence/>").await;
    b.send("<presence/>").await;
    // (The refresh's probes may bring an unavailable presence first.)
    for (c, other) in [(&mut b, "alice@localhost/a"), (&mut a, "bob@localhost/b")] {
        loop {
            let seen = c.expect_stanza(&format!("from='{other}'")).await;
            let tag = &seen[seen.rfind("<presence").unwrap_or_default()..];
            if !tag.contains("type=") {
                break;
            }
        }
    }
    // carol has no account: nobody has an item for her.
    a.send("<iq type='get' id='r3'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let roster = a.expect_stanza("id='r3'").await;
    assert!(!roster.contains("carol"), "{roster}");
}
