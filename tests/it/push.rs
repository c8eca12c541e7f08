//! Push Notifications (XEP-0357) over raw XML: a local client plays the app server.

use crate::harness::*;

const APP: &str = "app@localhost/svc";

fn enable(node: &str) -> String {
    format!(
        "<iq type='set' id='push-on'><enable xmlns='urn:xmpp:push:0' jid='{APP}' node='{node}'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         <field var='secret'><value>s3cret</value></field></x></enable></iq>"
    )
}

async fn setup(server: &TestServer) -> (Raw, Raw, Raw) {
    for (user, pw) in [
        ("alice", "alicepass1"),
        ("bob", "bobpass12"),
        ("app", "apppass12"),
    ] {
        server.add_user(user, pw);
    }
    let (mut a, _) = login(server, "alice", "alicepass1", "phone").await;
    a.send(&enable("node1")).await;
    a.expect("id='push-on'").await;
    let (b, _) = login(server, "bob", "bobpass12", "pc").await;
    let (app, _) = login(server, "app", "apppass12", "svc").await;
    (a, b, app)
}

fn chat(body: &str) -> String {
    format!("<message to='alice@localhost' type='chat'><body>{body}</body></message>")
}

#[tokio::test]
async fn enable_needs_a_node_and_is_advertised() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut a, _) = login(&server, "alice", "alicepass1", "phone").await;
    a.send(&format!(
        "<iq type='set' id='e1'><enable xmlns='urn:xmpp:push:0' jid='{APP}'/></iq>"
    ))
    .await;
    let err = a.expect_stanza("id='e1'").await;
    assert!(err.contains("<bad-request"), "{err}");
    a.send("<iq type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let info = a.expect_stanza("id='d1'").await;
    assert!(info.contains("var='urn:xmpp:push:0'"), "{info}");
}

#[tokio::test]
async fn offline_user_is_woken_once_per_sender_without_the_body() {
    let server = TestServer::start();
    let (mut a, mut b, mut app) = setup(&server).await;
    a.send("</stream:stream>").await;
    a.closed().await;
    b.send(&chat("secret text")).await;
    b.send(&chat("more")).await;
    let push = app.expect_stanza("<iq").await;
    assert!(
        push.contains("type='set'") && push.contains("from='localhost'"),
        "{push}"
    );
    assert!(push.contains("node='node1'"), "{push}");
    assert!(
        push.contains("<value>urn:xmpp:push:summary</value>"),
        "{push}"
    );
    assert!(push.contains("<value>bob@localhost/pc</value>"), "{push}");
    assert!(
        push.contains("<value>s3cret</value>"),
        "publish-options: {push}"
    );
    assert!(!push.contains("secret text"), "no body by default: {push}");
    // Rate limit: the second message from the same sender does not push again.
    app.expect_silence(500).await;
    let id = push
        .split("id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    app.send(&format!("<iq type='result' id='{id}' to='localhost'/>"))
        .await;
    b.sync().await;
}

#[tokio::test]
async fn hibernated_session_is_woken_and_chat_states_are_not_pushed() {
    let server = TestServer::start();
    let (mut a, mut b, mut app) = setup(&server).await;
    a.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/><presence/>")
        .await;
    a.expect("<enabled").await;
    a.sync().await;
    drop(a);
    b.send("<message to='alice@localhost' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    b.sync().await;
    app.expect_silence(300).await;
    b.send(&chat("wake up")).await;
    let push = app.expect_stanza("<iq").await;
    assert!(push.contains("node='node1'"), "{push}");
}

#[tokio::test]
async fn an_app_server_error_disables_the_registration() {
    let server = TestServer::start();
    let (mut a, mut b, mut app) = setup(&server).await;
    a.send("</stream:stream>").await;
    a.closed().await;
    b.send(&chat("one")).await;
    let push = app.expect_stanza("<iq").await;
    let id = push
        .split("id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    app.send(&format!(
        "<iq type='error' id='{id}' to='localhost'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ))
    .await;
    app.sync().await;
    // Another sender would push again, were the registration still there.
    server.add_user("carol", "carolpass1");
    let (mut c, _) = login(&server, "carol", "carolpass1", "c").await;
    c.send(&chat("two")).await;
    c.sync().await;
    app.expect_silence(500).await;
    assert!(server.log().contains("disabling that registration"));
}
