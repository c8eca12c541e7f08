//! Multi-User Chat (XEP-0045) over raw XML: creating and configuring a room, entering with the
//! presence broadcasts and status codes the XEP prescribes, nick conflicts, groupchat, private
//! messages, history, subject, leaving, the directory, self-ping and destroying.

use crate::harness::*;

const ROOM: &str = "room@conference.localhost";

fn enter(nick: &str, inner: &str) -> String {
    format!(
        "<presence to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>{inner}</x></presence>"
    )
}

const INSTANT: &str = "<iq type='set' id='cfg' to='room@conference.localhost'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query></iq>";

/// alice creates and unlocks the room as "Alice"; returns what she received while entering.
async fn create(a: &mut Raw) -> String {
    a.send(&enter("Alice", "")).await;
    let own = a.expect_stanza(&format!("from='{ROOM}/Alice'")).await;
    a.expect_stanza("<subject").await;
    a.send(INSTANT).await;
    let r = a.expect_stanza("id='cfg'").await;
    assert!(r.contains("type='result'"), "{r}");
    own
}

/// alice enters as "Alice", creating the room, and submits its configuration with `fields`.
async fn configure(a: &mut Raw, fields: &[(&str, &str)]) {
    a.send(&enter("Alice", "")).await;
    a.expect_stanza("<subject").await;
    let fields: String = fields
        .iter()
        .map(|(var, value)| format!("<field var='{var}'><value>{value}</value></field>"))
        .collect();
    a.send(&format!(
        "<iq type='set' id='cfg' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'>{fields}</x></query></iq>"
    ))
    .await;
    let r = a.expect_stanza("id='cfg'").await;
    assert!(r.contains("type='result'"), "{r}");
}

#[tokio::test]
async fn create_enter_talk_and_leave() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    let own = create(&mut a).await;
    for part in [
        "affiliation='owner'",
        "role='moderator'",
        "<status code='110'/>",
        "<status code='201'/>",
        "jid='alice@localhost/a'",
    ] {
        assert!(own.contains(part), "{part}: {own}");
    }

    // bob enters: alice's presence first (no real JID: the room is semi-anonymous), then his
    // own with 110, then the empty subject.
    b.send(&enter("Bob", "")).await;
    let alice = b.expect_stanza(&format!("from='{ROOM}/Alice'")).await;
    assert!(
        alice.contains("role='moderator'") && !alice.contains("jid="),
        "{alice}"
    );
    let own = b.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(
        own.contains("<status code='110'/>") && own.contains("role='participant'"),
        "{own}"
    );
    let subject = b.expect_stanza("<subject").await;
    assert!(subject.contains(&format!("from='{ROOM}'")), "{subject}");
    // The moderator sees bob's real JID.
    let seen = a.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(seen.contains("jid='bob@localhost/b'"), "{seen}");

    // Someone else may not take a nick that is in use.
    let (mut c, _) = login(&server, "alice", "alicepass1", "c").await;
    server.add_user("carol", "carolpass1");
    let (mut carol, _) = login(&server, "carol", "carolpass1", "c").await;
    carol.send(&enter("Bob", "")).await;
    let refused = carol.expect_stanza("type='error'").await;
    assert!(refused.contains("<conflict"), "{refused}");

    // Groupchat reaches everyone, from the sender's occupant JID.
    a.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='m1'><body>hello room</body></message>"
    ))
    .await;
    for x in [&mut a, &mut b] {
        let m = x.expect_stanza(&format!("from='{ROOM}/Alice'")).await;
        assert!(m.contains("<body>hello room</body>"), "{m}");
    }
    // A non-occupant may not speak.
    c.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='m2'><body>sneaky</body></message>"
    ))
    .await;
    let e = c.expect_stanza("id='m2'").await;
    assert!(e.contains("<not-acceptable"), "{e}");
    // Only a moderator changes the subject.
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='s1'><subject>mine</subject></message>"
    ))
    .await;
    let e = b.expect_stanza("id='s1'").await;
    assert!(e.contains("<forbidden"), "{e}");
    a.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='s2'><subject>Plans</subject></message>"
    ))
    .await;
    b.expect("<subject>Plans</subject>").await;

    // A private message goes to one occupant, from the sender's occupant JID.
    b.send(&format!(
        "<message to='{ROOM}/Alice' type='chat' id='pm'><body>psst</body></message>"
    ))
    .await;
    let pm = a.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(
        pm.contains("<body>psst</body>") && pm.contains("http://jabber.org/protocol/muc#user"),
        "{pm}"
    );

    // Carol enters later: she gets the history with delays, then the subject.
    carol.send(&enter("Carol", "")).await;
    let history = carol.expect_stanza("id='m1'").await;
    assert!(
        history.contains("<body>hello room</body>")
            && history.contains("<delay xmlns='urn:xmpp:delay'"),
        "{history}"
    );
    carol.expect("<subject>Plans</subject>").await;
    // …unless she asks for none.
    let (mut carol2, _) = login(&server, "carol", "carolpass1", "c2").await;
    carol2
        .send(&enter("Carol", "<history maxstanzas='0'/>"))
        .await;
    let got = carol2.expect("<subject>Plans</subject>").await;
    assert!(!got.contains("hello room"), "{got}");

    // Self-ping (XEP-0410) answers for an occupant, and not for others.
    b.send(&format!(
        "<iq type='get' id='sp' to='{ROOM}/Bob'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    assert!(b.expect_stanza("id='sp'").await.contains("type='result'"));
    c.send(&format!(
        "<iq type='get' id='sp2' to='{ROOM}/Alice'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    assert!(
        c.expect_stanza("id='sp2'")
            .await
            .contains("<not-acceptable")
    );

    // bob leaves: he is told with 110, the others see role none.
    b.send(&format!("<presence to='{ROOM}/Bob' type='unavailable'/>"))
        .await;
    let gone = b.expect_stanza("type='unavailable'").await;
    assert!(gone.contains("<status code='110'/>"), "{gone}");
    let gone = a.expect_stanza("type='unavailable'").await;
    assert!(
        gone.contains(&format!("from='{ROOM}/Bob'")) && gone.contains("role='none'"),
        "{gone}"
    );
}

#[tokio::test]
async fn locked_rooms_the_directory_nick_changes_and_destruction() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    // A new room is locked until its owner configures it.
    a.send(&enter("Alice", "")).await;
    a.expect_stanza("<subject").await;
    b.send(&enter("Bob", "")).await;
    let refused = b.expect_stanza("type='error'").await;
    assert!(refused.contains("<item-not-found"), "{refused}");
    a.send(
        "<iq type='get' id='f' to='room@conference.localhost'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>",
    )
    .await;
    let form = a.expect_stanza("id='f'").await;
    assert!(form.contains("var='muc#roomconfig_roomname'"), "{form}");
    a.send(
        "<iq type='set' id='cfg' to='room@conference.localhost'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_roomname'><value>Team</value></field><field var='muc#roomconfig_whois'><value>anyone</value></field></x></query></iq>",
    )
    .await;
    assert!(a.expect_stanza("id='cfg'").await.contains("type='result'"));
    // Only the owner configures.
    b.send(
        "<iq type='get' id='f2' to='room@conference.localhost'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>",
    )
    .await;
    assert!(b.expect_stanza("id='f2'").await.contains("<forbidden"));

    // The service is listed by the server, the room by the service, with its features.
    a.send("<iq type='get' id='i' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    assert!(
        a.expect_stanza("id='i'")
            .await
            .contains("jid='conference.localhost'")
    );
    a.send("<iq type='get' id='s' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let info = a.expect_stanza("id='s'").await;
    assert!(
        info.contains("category='conference'")
            && info.contains("var='http://jabber.org/protocol/muc'"),
        "{info}"
    );
    a.send("<iq type='get' id='r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    let items = a.expect_stanza("id='r'").await;
    assert!(
        items.contains(&format!("jid='{ROOM}'")) && items.contains("name='Team'"),
        "{items}"
    );
    a.send(&format!("<iq type='get' id='ri' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
        .await;
    let info = a.expect_stanza("id='ri'").await;
    for f in [
        "muc_nonanonymous",
        "muc_temporary",
        "muc_open",
        "muc#roominfo",
    ] {
        assert!(info.contains(f), "{f}: {info}");
    }

    // In a non-anonymous room everyone sees real JIDs, and is told so (100).
    b.send(&enter("Bob", "")).await;
    let own = b.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(own.contains("<status code='100'/>"), "{own}");
    b.expect_stanza("<subject").await;
    a.expect_stanza(&format!("from='{ROOM}/Bob'")).await;

    // A nick change: unavailable with 303 and the new nick, then presence under it.
    b.send(&format!("<presence to='{ROOM}/Robert'/>")).await;
    let gone = a.expect_stanza("type='unavailable'").await;
    assert!(
        gone.contains("<status code='303'/>") && gone.contains("nick='Robert'"),
        "{gone}"
    );
    a.expect_stanza(&format!("from='{ROOM}/Robert'")).await;
    b.expect_stanza(&format!("from='{ROOM}/Robert'")).await;

    // Destroying tells everyone where to go.
    a.send(&format!(
        "<iq type='set' id='d' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy jid='new@conference.localhost'><reason>moved</reason></destroy></query></iq>"
    ))
    .await;
    let notice = b.expect_stanza("type='unavailable'").await;
    assert!(
        notice.contains("<destroy jid='new@conference.localhost'>")
            && notice.contains("<reason>moved</reason>"),
        "{notice}"
    );
    assert!(a.expect_stanza("id='d'").await.contains("type='result'"));
    a.send("<iq type='get' id='r2' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    assert!(!a.expect_stanza("id='r2'").await.contains(ROOM));
}

#[tokio::test]
async fn a_dropped_connection_leaves_the_room() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    create(&mut a).await;
    b.send(&enter("Bob", "")).await;
    b.expect_stanza("<subject").await;
    a.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    drop(b);
    let gone = a.expect_stanza("type='unavailable'").await;
    assert!(
        gone.contains(&format!("from='{ROOM}/Bob'")) && gone.contains("role='none'"),
        "{gone}"
    );
}

#[tokio::test]
async fn persistent_rooms_survive_a_restart() {
    let mut server = TestServer::start();
    let (mut a, b) = alice_and_bob(&server, true).await;
    configure(
        &mut a,
        &[
            ("muc#roomconfig_roomname", "Kept"),
            ("muc#roomconfig_persistentroom", "1"),
        ],
    )
    .await;
    a.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='s'><subject>Still here</subject></message>"
    ))
    .await;
    a.expect("<subject>Still here</subject>").await;
    // Everyone leaves; a persistent room stays.
    a.send(&format!("<presence to='{ROOM}/Alice' type='unavailable'/>"))
        .await;
    a.expect_stanza("type='unavailable'").await;
    drop((a, b));

    server.stop();
    let server = TestServer::restart_from(&server);
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send("<iq type='get' id='r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    let items = b.expect_stanza("id='r'").await;
    assert!(items.contains("name='Kept'"), "{items}");
    // Not locked, the subject kept, and alice still its owner.
    b.send(&enter("Bob", "")).await;
    b.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    b.expect("<subject>Still here</subject>").await;
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send(&enter("Alice", "")).await;
    let own = a.expect_stanza(&format!("from='{ROOM}/Alice'")).await;
    assert!(
        own.contains("affiliation='owner'") && !own.contains("code='201'"),
        "{own}"
    );
    // Destroying removes it for good.
    a.send(&format!(
        "<iq type='set' id='d' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><destroy/></query></iq>"
    ))
    .await;
    assert!(a.expect_stanza("id='d'").await.contains("type='result'"));
    b.send("<iq type='get' id='r2' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    assert!(!b.expect_stanza("id='r2'").await.contains("Kept"));
}

#[tokio::test]
async fn an_idle_persistent_room_leaves_memory_and_comes_back_whole() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    configure(&mut a, &[("muc#roomconfig_persistentroom", "1")]).await;
    a.send(&format!(
        "<message to='{ROOM}' type='groupchat'><subject>Idle</subject></message>"
    ))
    .await;
    a.expect("<subject>Idle</subject>").await;
    a.send(&format!(
        "<message to='{ROOM}' type='groupchat'><body>before the nap</body></message>"
    ))
    .await;
    a.expect("before the nap").await;
    a.send(&format!("<presence to='{ROOM}/Alice' type='unavailable'/>"))
        .await;
    a.expect_stanza("type='unavailable'").await;
    a.sync().await;
    let unloaded = |log: &str| log.matches("idle persistent room unloaded").count();
    assert_eq!(unloaded(&server.log()), 1);
    // A request from outside loads it and lets it go again.
    b.send(&format!(
        "<iq type='get' id='i' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ))
    .await;
    assert!(b.expect_stanza("id='i'").await.contains("muc_persistent"));
    b.sync().await;
    assert_eq!(unloaded(&server.log()), 2);
    // Reloaded on entry: subject, history (from the archive) and ownership intact.
    b.send(&enter("Bob", "")).await;
    b.expect("before the nap").await;
    b.expect("<subject>Idle</subject>").await;
    a.send(&enter("Alice", "")).await;
    let own = a.expect_stanza(&format!("from='{ROOM}/Alice'")).await;
    assert!(
        own.contains("affiliation='owner'") && !own.contains("code='201'"),
        "{own}"
    );
}

#[tokio::test]
async fn iqs_to_occupants_are_relayed_without_real_jids() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    b.send("<iq type='set' id='vc'><vCard xmlns='vcard-temp'><FN>Bob B.</FN></vCard></iq>")
        .await;
    assert!(b.expect_stanza("id='vc'").await.contains("type='result'"));
    create(&mut a).await;
    b.send(&enter("Bob", "")).await;
    b.expect_stanza("<subject").await;

    // A vCard request goes to bob's account, which answers; alice gets it from Bob's nick.
    a.send(&format!(
        "<iq type='get' id='v1' to='{ROOM}/Bob'><vCard xmlns='vcard-temp'/></iq>"
    ))
    .await;
    let card = a.expect_stanza("id='v1'").await;
    assert!(
        card.contains("type='result'")
            && card.contains(&format!("from='{ROOM}/Bob'"))
            && card.contains("<FN>Bob B.</FN>"),
        "{card}"
    );

    // Anything else goes to bob's client, from Alice's nick, under the room's own id.
    a.send(&format!(
        "<iq type='get' id='ver' to='{ROOM}/Bob'><query xmlns='jabber:iq:version'/></iq>"
    ))
    .await;
    let asked = b.expect_stanza("jabber:iq:version").await;
    assert!(
        asked.contains(&format!("from='{ROOM}/Alice'"))
            && !asked.contains("alice@localhost")
            && !asked.contains("id='ver'"),
        "{asked}"
    );
    let id = attr(&asked, "id").unwrap().to_string();
    // An answer from someone the room did not ask is dropped.
    a.send(&format!(
        "<iq type='result' id='{id}' to='{ROOM}/Alice'><query xmlns='jabber:iq:version'><name>forged</name></query></iq>"
    ))
    .await;
    b.send(&format!(
        "<iq type='result' id='{id}' to='{ROOM}/Alice'><query xmlns='jabber:iq:version'><name>BobClient</name></query></iq>"
    ))
    .await;
    let answer = a.expect_stanza("id='ver'").await;
    assert!(
        answer.contains("BobClient")
            && answer.contains(&format!("from='{ROOM}/Bob'"))
            && !answer.contains("bob@localhost"),
        "{answer}"
    );
    assert!(!answer.contains("forged"), "{answer}");

    // No such nick: item-not-found; not in the room: not-acceptable.
    a.send(&format!(
        "<iq type='get' id='nn' to='{ROOM}/Nobody'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    assert!(a.expect_stanza("id='nn'").await.contains("<item-not-found"));
    b.send(&format!("<presence to='{ROOM}/Bob' type='unavailable'/>"))
        .await;
    b.expect_stanza("type='unavailable'").await;
    b.send(&format!(
        "<iq type='get' id='out' to='{ROOM}/Alice'><vCard xmlns='vcard-temp'/></iq>"
    ))
    .await;
    assert!(
        b.expect_stanza("id='out'")
            .await
            .contains("<not-acceptable")
    );
}

fn admin(id: &str, item: &str) -> String {
    format!(
        "<iq type='set' id='{id}' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>{item}</query></iq>"
    )
}

#[tokio::test]
async fn kicks_voice_bans_membership_and_lists_survive_a_restart() {
    let mut server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    server.add_user("carol", "carolpass1");
    let (mut c, _) = login(&server, "carol", "carolpass1", "c").await;
    configure(
        &mut a,
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_moderatedroom", "1"),
        ],
    )
    .await;
    for (x, nick) in [(&mut b, "Bob"), (&mut c, "Carol")] {
        x.send(&enter(nick, "")).await;
        x.expect_stanza("<subject").await;
        a.expect_stanza(&format!("from='{ROOM}/{nick}'")).await;
    }
    // A moderated room: newcomers without affiliation are visitors and may not speak.
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='v1'><body>hi</body></message>"
    ))
    .await;
    assert!(b.expect_stanza("id='v1'").await.contains("<forbidden"));
    // Voice, by nick.
    a.send(&admin("voice", "<item nick='Bob' role='participant'/>"))
        .await;
    assert!(
        a.expect_stanza("id='voice'")
            .await
            .contains("type='result'")
    );
    let p = b.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(p.contains("role='participant'"), "{p}");
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='v2'><body>now I may</body></message>"
    ))
    .await;
    b.expect("<body>now I may</body>").await;
    // Only moderators change roles; admins and owners cannot be kicked.
    b.send(&admin("k1", "<item nick='Carol' role='none'/>"))
        .await;
    assert!(b.expect_stanza("id='k1'").await.contains("<forbidden"));
    a.send(&admin("k2", "<item nick='Alice' role='none'/>"))
        .await;
    assert!(a.expect_stanza("id='k2'").await.contains("<not-allowed"));
    // A kick, with the reason for everyone.
    a.send(&admin(
        "k3",
        "<item nick='Carol' role='none'><reason>calm down</reason></item>",
    ))
    .await;
    let kicked = c.expect_stanza("type='unavailable'").await;
    for part in [
        "<status code='307'/>",
        "<status code='110'/>",
        "<reason>calm down</reason>",
    ] {
        assert!(kicked.contains(part), "{part}: {kicked}");
    }
    let seen = b.expect_stanza("type='unavailable'").await;
    assert!(seen.contains("<status code='307'/>"), "{seen}");
    assert!(a.expect_stanza("id='k3'").await.contains("type='result'"));
    // Membership and a ban, by JID; only admins and owners see the lists.
    a.send(&admin(
        "m",
        "<item jid='bob@localhost' affiliation='member'/>",
    ))
    .await;
    assert!(a.expect_stanza("id='m'").await.contains("type='result'"));
    a.send(&admin(
        "ban",
        "<item jid='carol@localhost' affiliation='outcast'><reason>spam</reason></item>",
    ))
    .await;
    assert!(a.expect_stanza("id='ban'").await.contains("type='result'"));
    b.send(&format!("<iq type='get' id='l1' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query></iq>"))
        .await;
    assert!(b.expect_stanza("id='l1'").await.contains("<forbidden"));
    // The last owner stays.
    a.send(&admin(
        "o",
        "<item jid='alice@localhost' affiliation='none'/>",
    ))
    .await;
    assert!(a.expect_stanza("id='o'").await.contains("<conflict"));
    drop((a, b, c));

    server.stop();
    let server = TestServer::restart_from(&server);
    let (mut c, _) = login(&server, "carol", "carolpass1", "c").await;
    c.send(&enter("Carol", "")).await;
    let refused = c.expect_stanza("type='error'").await;
    assert!(refused.contains("<forbidden"), "{refused}");
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send(&enter("Bob", "")).await;
    let own = b.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(
        own.contains("affiliation='member'") && own.contains("role='participant'"),
        "{own}"
    );
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send(&enter("Alice", "")).await;
    a.expect_stanza("<subject").await;
    a.send(&format!("<iq type='get' id='l2' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query></iq>"))
        .await;
    let list = a.expect_stanza("id='l2'").await;
    assert!(list.contains("jid='carol@localhost'"), "{list}");
    a.send(&format!("<iq type='get' id='l3' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query></iq>"))
        .await;
    assert!(
        a.expect_stanza("id='l3'")
            .await
            .contains("jid='bob@localhost'")
    );
}

#[tokio::test]
async fn look_alike_nicknames_are_refused() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    create(&mut a).await;
    // Case, surrounding spaces, an invisible space and a direction override cannot make a
    // second "Alice".
    for impostor in [
        "ALICE",
        "Alice%20",
        "%20alice",
        "Al&#x200B;ice",
        "&#x202E;ecilA",
    ] {
        let nick = impostor.replace("%20", " ");
        b.send(&format!(
            "<presence to='{ROOM}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
        .await;
        let refused = b.expect_stanza("type='error'").await;
        assert!(
            refused.contains("<conflict") || refused.contains("<jid-malformed"),
            "{impostor}: {refused}"
        );
    }
    // A nick the room adjusts is confirmed with 210.
    b.send(&format!(
        "<presence to='{ROOM}/  Bob  '><x xmlns='http://jabber.org/protocol/muc'/></presence>"
    ))
    .await;
    let own = b.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(own.contains("<status code='210'/>"), "{own}");
}

#[tokio::test]
async fn a_registered_nickname_is_reserved_across_a_restart() {
    let mut server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    configure(&mut a, &[("muc#roomconfig_persistentroom", "1")]).await;
    b.send(&format!(
        "<iq type='get' id='g' to='{ROOM}'><query xmlns='jabber:iq:register'/></iq>"
    ))
    .await;
    let form = b.expect_stanza("id='g'").await;
    assert!(form.contains("var='muc#register_roomnick'"), "{form}");
    b.send(&format!(
        "<iq type='set' id='reg' to='{ROOM}'><query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>Bobby</value></field></x></query></iq>"
    ))
    .await;
    assert!(b.expect_stanza("id='reg'").await.contains("type='result'"));
    drop((a, b));
    server.stop();
    let server = TestServer::restart_from(&server);
    server.add_user("mallory", "mallorypass");
    let (mut m, _) = login(&server, "mallory", "mallorypass", "m").await;
    for nick in ["Bobby", "bobby"] {
        m.send(&enter(nick, "")).await;
        let refused = m.expect_stanza("type='error'").await;
        assert!(refused.contains("<conflict"), "{nick}: {refused}");
    }
    // Nor may an occupant change to it.
    m.send(&enter("Mal", "")).await;
    m.expect_stanza(&format!("from='{ROOM}/Mal'")).await;
    m.send(&format!("<presence to='{ROOM}/Bobby'/>")).await;
    let refused = m.expect_stanza("type='error'").await;
    assert!(refused.contains("<conflict"), "a nick change: {refused}");
    // Bob finds his nick (x-roomuser-item), is a member, and enters with it.
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send(&format!("<iq type='get' id='n' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/></iq>"))
        .await;
    assert!(b.expect_stanza("id='n'").await.contains("name='Bobby'"));
    b.send(&enter("Bobby", "")).await;
    let own = b.expect_stanza(&format!("from='{ROOM}/Bobby'")).await;
    assert!(own.contains("affiliation='member'"), "{own}");
}

#[tokio::test]
async fn occupant_ids_are_stable_and_cannot_be_forged() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    create(&mut a).await;
    b.send(&enter("Bob", "")).await;
    b.expect_stanza("<subject").await;
    let p = a.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    let id = attr(p.split("<occupant-id").nth(1).expect("occupant-id"), "id")
        .unwrap()
        .to_string();
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat'><body>x</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>"
    ))
    .await;
    let m = a.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(
        !m.contains("forged") && m.contains(&format!("id='{id}'")),
        "{m}"
    );
    // Another nick, the same id.
    b.send(&format!("<presence to='{ROOM}/Robert'/>")).await;
    let p = a.expect_stanza(&format!("from='{ROOM}/Robert'")).await;
    assert!(
        p.contains(&format!(
            "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='{id}'/>"
        )),
        "{p}"
    );
}

#[tokio::test]
async fn invitations_declines_voice_requests_and_private_message_rules() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    configure(
        &mut a,
        &[
            ("muc#roomconfig_membersonly", "1"),
            ("muc#roomconfig_moderatedroom", "1"),
            ("muc#roomconfig_allowpm", "moderators"),
        ],
    )
    .await;
    // An invitation or a decline addressed to a room (this one too) cannot tie the room up.
    for (kind, to) in [
        ("invite", ROOM),
        ("decline", ROOM),
        ("invite", "other@conference.localhost"),
    ] {
        a.send(&format!(
            "<message to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><{kind} to='{to}'/></x></message>"
        ))
        .await;
    }
    a.send(&format!(
        "<iq type='get' id='alive' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ))
    .await;
    assert!(
        a.expect_stanza("id='alive'")
            .await
            .contains("type='result'")
    );
    // Not a member yet: refused.
    b.send(&enter("Bob", "")).await;
    assert!(
        b.expect_stanza("type='error'")
            .await
            .contains("<registration-required")
    );
    // The owner's invitation makes bob a member and reaches him from the room.
    a.send(&format!(
        "<message to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='bob@localhost'><reason>join us</reason></invite></x></message>"
    ))
    .await;
    let invite = b.expect_stanza(&format!("from='{ROOM}'")).await;
    assert!(
        invite.contains("<invite from='alice@localhost'>")
            && invite.contains("<reason>join us</reason>"),
        "{invite}"
    );
    // A decline goes back to the inviter.
    b.send(&format!(
        "<message to='{ROOM}'><x xmlns='http://jabber.org/protocol/muc#user'><decline to='alice@localhost/a'><reason>busy</reason></decline></x></message>"
    ))
    .await;
    let decline = a.expect_stanza(&format!("from='{ROOM}'")).await;
    assert!(
        decline.contains("<decline from='bob@localhost'>"),
        "{decline}"
    );
    // Members enter as participants even in a moderated room; private messages are for
    // moderators here.
    b.send(&enter("Bob", "")).await;
    let own = b.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    assert!(own.contains("affiliation='member'"), "{own}");
    b.expect_stanza("<subject").await;
    a.expect_stanza(&format!("from='{ROOM}/Bob'")).await;
    b.send(&format!(
        "<message to='{ROOM}/Alice' type='chat' id='pm'><body>hi</body></message>"
    ))
    .await;
    assert!(b.expect_stanza("id='pm'").await.contains("<not-acceptable"));

    // A visitor asks for voice; the moderator approves.
    let voice_request = |id: &str| {
        format!(
            "<message to='{ROOM}' id='{id}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field></x></message>"
        )
    };
    let mute_bob = async |a: &mut Raw, b: &mut Raw, id: &str| {
        a.send(&admin(id, "<item nick='Bob' role='visitor'/>"))
            .await;
        a.expect_stanza(&format!("id='{id}'")).await;
        b.expect_stanza("role='visitor'").await;
    };
    mute_bob(&mut a, &mut b, "mute").await;
    b.send(&voice_request("vr1")).await;
    let request = a.expect_stanza("<message").await;
    assert!(
        request.contains("var='muc#request_allow'") && request.contains("<value>Bob</value>"),
        "{request}"
    );
    a.send(&format!(
        "<message to='{ROOM}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field><field var='muc#role'><value>participant</value></field><field var='muc#roomnick'><value>Bob</value></field><field var='muc#request_allow'><value>true</value></field></x></message>"
    ))
    .await;
    let p = b.expect_stanza("role='participant'").await;
    assert!(p.contains(&format!("from='{ROOM}/Bob'")), "{p}");

    // With voice requests switched off, a visitor's request is refused.
    a.send(&format!(
        "<iq type='set' id='novr' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_allowvoicerequests'><value>0</value></field></x></query></iq>"
    ))
    .await;
    assert!(a.expect_stanza("id='novr'").await.contains("type='result'"));
    mute_bob(&mut a, &mut b, "mute2").await;
    b.send(&voice_request("vr2")).await;
    assert!(b.expect_stanza("id='vr2'").await.contains("<not-allowed"));
}

#[tokio::test]
async fn persistent_rooms_are_archived_and_history_outlives_a_restart() {
    let mut server = TestServer::start();
    let (mut a, b) = alice_and_bob(&server, true).await;
    configure(&mut a, &[("muc#roomconfig_persistentroom", "1")]).await;
    for i in 1..=3 {
        a.send(&format!(
            "<message to='{ROOM}' type='groupchat' id='g{i}'><body>note {i}</body><stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='forged'/></message>"
        ))
        .await;
        let echo = a.expect_stanza(&format!("id='g{i}'")).await;
        assert!(
            echo.contains(&format!(
                "<stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='"
            )) && !echo.contains("forged"),
            "{echo}"
        );
    }
    a.send(&format!("<iq type='get' id='di' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
        .await;
    assert!(
        a.expect_stanza("id='di'")
            .await
            .contains("var='urn:xmpp:mam:2'")
    );
    drop((a, b));
    server.stop();
    let server = TestServer::restart_from(&server);
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send(&enter("Bob", "<history maxstanzas='2'/>")).await;
    let entered = b.expect("<subject").await;
    assert!(
        !entered.contains("note 1") && entered.contains("note 2") && entered.contains("note 3"),
        "{entered}"
    );
    // The room's archive pages like an account's.
    b.send(&format!(
        "<iq type='set' id='q' to='{ROOM}'><query xmlns='urn:xmpp:mam:2' queryid='x'><set xmlns='http://jabber.org/protocol/rsm'><max>2</max></set></query></iq>"
    ))
    .await;
    let results = b.expect_stanza("id='q'").await;
    assert!(
        results.contains("<body>note 1</body>")
            && results.contains("<body>note 2</body>")
            && !results.contains("note 3")
            && results.contains(&format!("from='{ROOM}'")),
        "{results}"
    );
    // Someone banned may not read it.
    server.add_user("eve", "evepass123");
    let (mut e, _) = login(&server, "eve", "evepass123", "e").await;
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send(&enter("Alice", "")).await;
    a.expect_stanza("<subject").await;
    a.send(&admin(
        "ban",
        "<item jid='eve@localhost' affiliation='outcast'/>",
    ))
    .await;
    a.expect_stanza("id='ban'").await;
    e.send(&format!(
        "<iq type='set' id='q2' to='{ROOM}'><query xmlns='urn:xmpp:mam:2'/></iq>"
    ))
    .await;
    assert!(e.expect_stanza("id='q2'").await.contains("<forbidden"));
}

#[tokio::test]
async fn a_flooding_occupant_is_slowed_down() {
    let server = TestServer::start_with("[modules.muc]\noccupant_messages_per_second = 1.0\n");
    let (mut a, _b) = alice_and_bob(&server, true).await;
    create(&mut a).await;
    for i in 0..4 {
        a.send(&format!(
            "<message to='{ROOM}' type='groupchat' id='f{i}'><body>flood {i}</body></message>"
        ))
        .await;
    }
    // A burst of two passes; the rest is refused, saying why.
    let got = a.expect_stanza("id='f3'").await;
    assert!(got.contains("<body>flood 1</body>"), "{got}");
    assert!(
        got.contains("<resource-constraint")
            && got.contains("type='wait'")
            && got.contains("slow down"),
        "{got}"
    );
}

#[tokio::test]
async fn moderators_and_authors_take_messages_back() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    configure(&mut a, &[("muc#roomconfig_persistentroom", "1")]).await;
    b.send(&enter("Bob", "")).await;
    b.expect_stanza("<subject").await;
    let sid = |m: &str| {
        attr(m.split("<stanza-id").nth(1).expect("stanza-id"), "id")
            .unwrap()
            .to_string()
    };
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='spam'><body>buy potions</body></message>"
    ))
    .await;
    let spam = sid(&b.expect_stanza("id='spam'").await);
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='oops'><body>typo</body></message>"
    ))
    .await;
    let oops = sid(&b.expect_stanza("id='oops'").await);
    // Only moderators moderate.
    let moderate = |id: &str, iq: &str| {
        format!(
            "<iq type='set' id='{iq}' to='{ROOM}'><moderate xmlns='urn:xmpp:message-moderate:1' id='{id}'><retract xmlns='urn:xmpp:message-retract:1'/><reason>no ads</reason></moderate></iq>"
        )
    };
    b.send(&moderate(&oops, "m1")).await;
    assert!(b.expect_stanza("id='m1'").await.contains("<forbidden"));
    a.send(&moderate(&spam, "m2")).await;
    let notice = b.expect("</message>").await;
    assert!(
        notice.contains(&format!("from='{ROOM}'"))
            && notice.contains(&format!(
                "<retract xmlns='urn:xmpp:message-retract:1' id='{spam}'>"
            ))
            && notice.contains("by='room@conference.localhost/Alice'")
            && notice.contains("no ads"),
        "{notice}"
    );
    assert!(a.expect_stanza("id='m2'").await.contains("type='result'"));
    // The author retracts their own; someone else may not.
    a.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='r1'><retract xmlns='urn:xmpp:message-retract:1' id='{oops}'/></message>"
    ))
    .await;
    assert!(a.expect_stanza("id='r1'").await.contains("<forbidden"));
    b.send(&format!(
        "<message to='{ROOM}' type='groupchat' id='r2'><retract xmlns='urn:xmpp:message-retract:1' id='{oops}'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/><body>retracted</body></message>"
    ))
    .await;
    a.expect_stanza("id='r2'").await;
    // The archive keeps tombstones in their places.
    a.send(&format!(
        "<iq type='set' id='q' to='{ROOM}'><query xmlns='urn:xmpp:mam:2'/></iq>"
    ))
    .await;
    let results = a.expect_stanza("id='q'").await;
    assert!(
        !results.contains("buy potions")
            && !results.contains("<body>typo</body>")
            && results.matches("<retracted").count() == 2
            && results.contains("by='room@conference.localhost/Alice'"),
        "{results}"
    );
}

#[tokio::test]
async fn room_avatars_are_the_room_vcard_and_survive_a_restart() {
    let mut server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    configure(&mut a, &[("muc#roomconfig_persistentroom", "1")]).await;
    b.send(&enter("Bob", "")).await;
    b.expect_stanza("<subject").await;
    let card = "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVsbG8=</BINVAL></PHOTO></vCard>";
    // Only owners set it.
    b.send(&format!("<iq type='set' id='v1' to='{ROOM}'>{card}</iq>"))
        .await;
    assert!(b.expect_stanza("id='v1'").await.contains("<forbidden"));
    a.send(&format!("<iq type='set' id='v2' to='{ROOM}'>{card}</iq>"))
        .await;
    assert!(a.expect_stanza("id='v2'").await.contains("type='result'"));
    // Occupants are told, with the photo's hash (sha1 of "hello").
    let hash = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";
    b.expect("<status code='104'/>").await;
    b.expect(&format!("<photo>{hash}</photo>")).await;
    drop((a, b));
    server.stop();
    let server = TestServer::restart_from(&server);
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send(&format!("<iq type='get' id='i' to='{ROOM}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"))
        .await;
    let info = b.expect_stanza("id='i'").await;
    assert!(
        info.contains("var='muc#roominfo_avatarhash'") && info.contains(hash),
        "{info}"
    );
    b.send(&format!(
        "<iq type='get' id='g' to='{ROOM}'><vCard xmlns='vcard-temp'/></iq>"
    ))
    .await;
    assert!(
        b.expect_stanza("id='g'")
            .await
            .contains("<BINVAL>aGVsbG8=</BINVAL>")
    );
}

#[tokio::test]
async fn occupants_are_told_when_the_service_shuts_down() {
    let mut server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    create(&mut a).await;
    b.send(&enter("Bob", "")).await;
    b.expect_stanza("<subject").await;
    server.signal("TERM");
    let gone = b
        .expect_stanza(&format!(
            "from='{ROOM}/Bob' to='bob@localhost/b' type='unavailable'"
        ))
        .await;
    assert!(
        gone.contains("<status code='332'/>") && gone.contains("<status code='110'/>"),
        "{gone}"
    );
    b.expect_stream_error("system-shutdown").await;
    server.stop();
}
