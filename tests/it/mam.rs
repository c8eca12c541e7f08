//! Message Archive Management (XEP-0313) with stanza ids (XEP-0359) and full-text search
//! (XEP-0431) over raw XML.

use crate::harness::*;

fn chat(to: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat'><body>{body}</body></message>")
}

/// Runs a query and returns the result messages' text and the `<fin/>` IQ.
async fn query(c: &mut Raw, id: &str, inner: &str) -> (String, String) {
    c.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='{id}'>{inner}</query></iq>"
    ))
    .await;
    let results = c.expect(&format!(" id='{id}' type='")).await;
    let rest = c.expect("</iq>").await;
    let split = results.rfind("<iq").unwrap();
    (
        results[..split].to_string(),
        format!("{}{rest}", &results[split..]),
    )
}

fn form(fields: &str) -> String {
    format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>{fields}</x>"
    )
}

fn rsm(inner: &str) -> String {
    format!("<set xmlns='http://jabber.org/protocol/rsm'>{inner}</set>")
}

fn bodies(results: &str) -> Vec<String> {
    results
        .split("<body>")
        .skip(1)
        .map(|s| s.split("</body>").next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn both_sides_are_archived_and_incoming_messages_stamped() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    // A stanza-id claiming to come from bob's archive is removed before delivery.
    a.send("<message to='bob@localhost/b' type='chat'><body>hello</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/></message>")
        .await;
    let got = b.expect_stanza("<message").await;
    assert!(!got.contains("forged"), "{got}");
    let sid = got.split("<stanza-id").nth(1).expect("stamped").to_string();
    assert!(sid.contains("by='bob@localhost'"), "{got}");
    let (results, fin) = query(&mut a, "q1", "").await;
    assert_eq!(bodies(&results), ["hello"]);
    assert!(fin.contains("complete='true'"), "{fin}");
    assert!(
        results.contains("<delay xmlns='urn:xmpp:delay' stamp="),
        "{results}"
    );
    let (results, _) = query(&mut b, "q2", "").await;
    assert_eq!(bodies(&results), ["hello"]);
    let id = sid
        .split("id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(
        results.contains(&format!("id='{id}'")),
        "the archive id is the stamped one: {results}"
    );
    // Chat states and no-store messages are not archived.
    a.send("<message to='bob@localhost/b' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    a.send("<message to='bob@localhost/b' type='chat'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>")
        .await;
    b.expect("secret").await;
    let (results, _) = query(&mut b, "q3", "").await;
    assert_eq!(bodies(&results), ["hello"]);
}

#[tokio::test]
async fn paging_both_ways_filters_and_errors() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    server.add_user("carol", "carolpass1");
    let (mut c, _) = login(&server, "carol", "carolpass1", "c").await;
    for i in 1..=30 {
        let from = if i % 3 == 0 { &mut c } else { &mut b };
        from.send(&chat("alice@localhost", &format!("m{i}"))).await;
        from.sync().await;
    }
    a.expect("m30").await;
    // Forward pages of 10.
    let (r, fin) = query(&mut a, "p1", &rsm("<max>10</max>")).await;
    assert_eq!(
        bodies(&r),
        (1..=10).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(!fin.contains("complete="), "{fin}");
    let last = text_of(&fin, "last").unwrap().to_string();
    let (r, _) = query(
        &mut a,
        "p2",
        &rsm(&format!("<max>10</max><after>{last}</after>")),
    )
    .await;
    assert_eq!(bodies(&r)[0], "m11");
    // The last page, then backwards from its first.
    let (r, fin) = query(&mut a, "p3", &rsm("<max>10</max><before/>")).await;
    assert_eq!(
        bodies(&r),
        (21..=30).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    let first = text_of(&fin, "first").unwrap().to_string();
    let (r, _) = query(
        &mut a,
        "p4",
        &rsm(&format!("<max>10</max><before>{first}</before>")),
    )
    .await;
    assert_eq!(bodies(&r)[9], "m20");
    // flip-page reverses a page.
    let (r, _) = query(
        &mut a,
        "p5",
        &format!("{}<flip-page/>", rsm("<max>3</max><before/>")),
    )
    .await;
    assert_eq!(bodies(&r), ["m30", "m29", "m28"]);
    // With one contact.
    let (r, fin) = query(
        &mut a,
        "w1",
        &form("<field var='with'><value>carol@localhost</value></field>"),
    )
    .await;
    assert_eq!(
        bodies(&r),
        [
            "m3", "m6", "m9", "m12", "m15", "m18", "m21", "m24", "m27", "m30"
        ]
    );
    assert!(fin.contains("complete='true'"));
    // Unknown ids, bad fields, index paging.
    let (_, err) = query(&mut a, "e1", &rsm("<after>nope</after>")).await;
    assert!(err.contains("<item-not-found"), "{err}");
    let (_, err) = query(
        &mut a,
        "e2",
        &form("<field var='color'><value>red</value></field>"),
    )
    .await;
    assert!(err.contains("<bad-request"), "{err}");
    let (_, err) = query(&mut a, "e3", &rsm("<index>3</index>")).await;
    assert!(err.contains("<feature-not-implemented"), "{err}");
    let (_, err) = query(
        &mut a,
        "e4",
        &form("<field var='start'><value>yesterday</value></field>"),
    )
    .await;
    assert!(err.contains("<bad-request"), "{err}");
    // Someone else's archive is not theirs to read.
    b.send("<iq type='set' id='x1' to='alice@localhost'><query xmlns='urn:xmpp:mam:2'/></iq>")
        .await;
    assert!(b.expect_stanza("id='x1'").await.contains("<forbidden"));
}

#[tokio::test]
async fn ids_metadata_fulltext_and_prefs() {
    let server = TestServer::start();
    let (mut a, mut b) = alice_and_bob(&server, true).await;
    for body in ["the quick brown fox", "lazy dogs sleep", "a brown bear"] {
        b.send(&chat("alice@localhost", body)).await;
    }
    a.expect("brown bear").await;
    let (r, _) = query(
        &mut a,
        "f1",
        &form("<field var='{urn:xmpp:fulltext:0}fulltext'><value>brown</value></field>"),
    )
    .await;
    assert_eq!(bodies(&r), ["the quick brown fox", "a brown bear"]);
    let (r, _) = query(
        &mut a,
        "f2",
        &form("<field var='{urn:xmpp:fulltext:0}fulltext'><value>brown \"fox OR (</value></field>"),
    )
    .await;
    assert!(
        bodies(&r).is_empty(),
        "operators are words, not syntax: {r}"
    );
    a.send("<iq type='get' id='md'><metadata xmlns='urn:xmpp:mam:2'/></iq>")
        .await;
    let md = a.expect_stanza("id='md'").await;
    let start = attr(md.split("<start").nth(1).unwrap(), "id")
        .unwrap()
        .to_string();
    assert!(md.contains("<end id='"), "{md}");
    let (r, _) = query(
        &mut a,
        "i1",
        &form(&format!("<field var='ids'><value>{start}</value></field>")),
    )
    .await;
    assert_eq!(bodies(&r), ["the quick brown fox"]);
    let (r, _) = query(
        &mut a,
        "i2",
        &form(&format!(
            "<field var='after-id'><value>{start}</value></field>"
        )),
    )
    .await;
    assert_eq!(bodies(&r).len(), 2);
    a.send("<iq type='get' id='form'><query xmlns='urn:xmpp:mam:2'/></iq>")
        .await;
    let f = a.expect_stanza("id='form'").await;
    assert!(
        f.contains("var='{urn:xmpp:fulltext:0}fulltext'") && f.contains("var='before-id'"),
        "{f}"
    );
    // Preferences: never archive bob.
    a.send("<iq type='set' id='pr'><prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never><jid>bob@localhost</jid></never></prefs></iq>")
        .await;
    let p = a.expect_stanza("id='pr'").await;
    assert!(p.contains("<jid>bob@localhost</jid>"), "{p}");
    b.send(&chat("alice@localhost", "unarchived")).await;
    a.expect("unarchived").await;
    let rest = a.expect("</message>").await;
    assert!(!rest.contains("stanza-id"), "{rest}");
    let (r, _) = query(&mut a, "f3", "").await;
    assert_eq!(bodies(&r).len(), 3);
}

#[tokio::test]
async fn messages_that_arrived_offline_are_in_the_archive_after_a_restart() {
    let mut server = TestServer::start();
    let (a, mut b) = alice_and_bob(&server, true).await;
    drop(a);
    b.sync().await;
    for i in 1..=3 {
        b.send(&chat("alice@localhost", &format!("while away {i}")))
            .await;
    }
    b.sync().await;
    server.stop();
    let server = TestServer::restart_from(&server);
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    let (r, _) = query(&mut a, "q", "").await;
    assert_eq!(bodies(&r), ["while away 1", "while away 2", "while away 3"]);
}
