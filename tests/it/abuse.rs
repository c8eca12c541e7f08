//! Hostile clients: spoofed addresses, half-open connections, connections dropped mid-stanza.
//! Each must be refused or cleaned up while other users keep chatting.

use crate::harness::*;

#[tokio::test]
async fn spoofed_from_closes_only_that_stream() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut mallory, _) = login(&server, "alice", "alicepass1", "m").await;
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send("<presence/>").await;
    b.sync().await;
    // RFC 6121 §4.2.2: the broadcast comes back to its sender too.
    b.expect_stanza("to='bob@localhost/b'").await;
    mallory.send("<message from='bob@localhost/b' to='bob@localhost' type='chat'><body>fake</body></message>").await;
    mallory.expect_stream_error("invalid-from").await;
    b.expect_silence(300).await;
    // Claiming one's own bare JID is fine (RFC 6120 §8.1.2.1), and 'from' is stamped full.
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send("<message from='alice@localhost' to='bob@localhost' type='chat'><body>real</body></message>").await;
    let got = b.expect("</message>").await;
    assert!(got.contains("from='alice@localhost/a'"), "{got}");
}

#[tokio::test]
async fn half_open_and_dropped_connections_do_not_disturb_others() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    server.add_user("bob", "bobpass12");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    let (mut b, _) = login(&server, "bob", "bobpass12", "b").await;
    b.send("<presence/>").await;
    b.sync().await;

    // 200 connections opened and dropped at every stage of the handshake.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let addr = server.addr;
        let connector = server.tls_connector();
        tasks.push(tokio::spawn(async move {
            let mut c = Raw::connect(addr).await;
            match i % 4 {
                0 => {}
                1 => {
                    c.try_send(b"<?xml version='1.0'?><stream:stream to='local").await;
                }
                2 => {
                    c.open().await;
                }
                _ => {
                    c.open().await;
                    c.starttls(&connector).await;
                    c.try_send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>bixu").await;
                }
            }
            drop(c);
        }));
    }
    for (n, t) in tasks.into_iter().enumerate() {
        a.send(&format!(
            "<message to='bob@localhost' type='chat'><body>n{n}</body></message>"
        ))
        .await;
        t.await.unwrap();
    }
    for n in 0..200 {
        b.expect(&format!("<body>n{n}</body>")).await;
    }
}

#[tokio::test]
async fn unclosed_stanza_at_eof_ends_the_session_cleanly() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (mut a, _) = login(&server, "alice", "alicepass1", "a").await;
    a.send("<presence/><message to='alice@localhost' type='chat'><body>half")
        .await;
    drop(a);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The resource is free again: binding it causes no conflict for anyone.
    let (mut again, jid) = login(&server, "alice", "alicepass1", "a").await;
    assert_eq!(jid, "alice@localhost/a");
    again
        .send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    again.expect_stanza("id=\'p\'").await;
    assert!(server.log().contains("session closed"), "{}", server.log());
}

#[tokio::test]
async fn handshake_timeout_closes_idle_unauthenticated_connections() {
    let server = TestServer::start_with("handshake_timeout_secs = 1\n");
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    c.expect_stream_error("connection-timeout").await;
}
