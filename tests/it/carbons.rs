//! Message Carbons (XEP-0280) over raw XML, with three clients of one account.

use crate::harness::*;

const ENABLE: &str = "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>";

async fn client(server: &TestServer, resource: &str, carbons: bool) -> Raw {
    let (mut c, _) = login(server, "alice", "alicepass1", resource).await;
    if carbons {
        c.send(ENABLE).await;
        c.expect_stanza("id='c1'").await;
    }
    c.send("<presence/>").await;
    c.sync().await;
    c
}

async fn setup(server: &TestServer) -> (Raw, Raw, Raw, Raw) {
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let a1 = client(server, "one", true).await;
    let a2 = client(server, "two", true).await;
    let a3 = client(server, "three", false).await;
    let (b, _) = login(server, "bob", "bobpass12", "b").await;
    (a1, a2, a3, b)
}

/// Skips presence the clients see of each other.
async fn next_message(c: &mut Raw, needle: &str) -> String {
    c.expect(needle).await;
    c.expect("</message>").await
}

#[tokio::test]
async fn received_and_sent_copies_reach_the_other_enabled_clients_only() {
    let server = TestServer::start();
    let (mut a1, mut a2, mut a3, mut b) = setup(&server).await;
    b.send("<message to='alice@localhost/one' type='chat' id='m1'><body>to one</body></message>")
        .await;
    let original = a1.expect_stanza("id='m1'").await;
    assert!(!original.contains("urn:xmpp:carbons:2"), "{original}");
    let copy = a2
        .expect_stanza("<message from='alice@localhost' to='alice@localhost/two'")
        .await;
    assert!(
        copy.contains(
            "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message"
        ) && copy.contains("to one"),
        "{copy}"
    );
    a1.send("<message to='bob@localhost/b' type='chat' id='m2'><body>from one</body></message>")
        .await;
    b.expect("from one").await;
    let copy = next_message(&mut a2, "<sent xmlns='urn:xmpp:carbons:2'>").await;
    assert!(copy.contains("from one"), "{copy}");
    // Opting out of carbons for one message.
    a1.send("<message to='bob@localhost/b' type='chat'><body>private</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>")
        .await;
    b.expect("private").await;
    b.sync().await;
    a2.sync().await;
    a3.send("<message to='bob@localhost/b' type='chat'><body>from three</body></message>")
        .await;
    b.expect("from three").await;
    let copy = next_message(&mut a1, "<sent").await;
    assert!(
        copy.contains("from three") && !copy.contains(">private<"),
        "{copy}"
    );
    // The client without carbons saw nothing it was not sent.
    b.send("<message to='alice@localhost/three' type='chat'><body>marker</body></message>")
        .await;
    let seen = a3.expect("marker").await;
    assert!(!seen.contains("urn:xmpp:carbons:2"), "{seen}");
}

#[tokio::test]
async fn negative_priority_clients_get_copies_of_bare_messages_and_disable_works() {
    let server = TestServer::start();
    let (mut a1, mut a2, _a3, mut b) = setup(&server).await;
    a2.send("<presence><priority>-1</priority></presence>")
        .await;
    a2.sync().await;
    b.send("<message to='alice@localhost' type='chat'><body>to all</body></message>")
        .await;
    a1.expect("to all").await;
    let copy = next_message(&mut a2, "<received").await;
    assert!(copy.contains("to all"), "{copy}");
    a2.send("<iq type='set' id='off'><disable xmlns='urn:xmpp:carbons:2'/></iq>")
        .await;
    a2.expect_stanza("id='off'").await;
    b.send("<message to='alice@localhost/one' type='chat'><body>again</body></message>")
        .await;
    a1.expect("again").await;
    a2.sync().await;
    a2.expect_silence(300).await;
}

#[tokio::test]
async fn carbons_stay_enabled_across_a_restart_with_resumption() {
    let mut server = TestServer::start();
    let (a1, mut a2, _a3, b) = setup(&server).await;
    a2.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = a2.expect_tag("<enabled").await;
    let id = enabled
        .split("id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_string();
    // One stanza since enabling: the answer to this ping.
    a2.sync().await;
    server.stop();
    drop((a1, b));
    let server = TestServer::restart_from(&server);
    let (mut a1, _) = login(&server, "alice", "alicepass1", "one").await;
    let mut a2 = Raw::connect(server.addr).await;
    a2.open().await;
    a2.starttls(&server.tls_connector()).await;
    a2.plain_auth("alice", "alicepass1").await;
    a2.open().await;
    a2.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>"
    ))
    .await;
    let resumed = a2
        .expect_one_of(&["<resumed", "<failed", "handled-count"])
        .await;
    assert!(resumed.ends_with("<resumed"), "{resumed}");
    a1.send("<message to='bob@localhost' type='chat'><body>after restart</body></message>")
        .await;
    let copy = next_message(&mut a2, "<sent").await;
    assert!(copy.contains("after restart"), "{copy}");
}
