//! External components (XEP-0114) over raw XML: the handshake and its failures, routing between
//! a component and local users, and what happens while it is away or misbehaves.

use sha1::{Digest, Sha1};

use crate::harness::*;

const COMPONENT: &str = "irc.localhost";
const SECRET: &str = "bridge-s3cret";

fn start() -> TestServer {
    TestServer::start_with(&format!(
        "[components.hosts.\"{COMPONENT}\"]\nsecret = \"{SECRET}\"\nname = \"IRC gateway\"\n"
    ))
}

/// Opens a component stream to `domain`; returns the connection and hearth's stream header.
async fn open(server: &TestServer, domain: &str) -> (Raw, String) {
    let mut c = Raw::connect_to(server.component_addr, domain).await;
    c.send(&format!(
        "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
    ))
    .await;
    let header = c.expect_tag("<stream:stream").await;
    (c, header)
}

/// Sends the handshake for `secret` on a stream opened with `header`.
async fn handshake(c: &mut Raw, header: &str, secret: &str) {
    let id = attr(header, " id").expect("stream id");
    let digest = Sha1::digest(format!("{id}{secret}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    c.send(&format!("<handshake>{hex}</handshake>")).await;
}

/// A component connected and authenticated as `COMPONENT`.
async fn connect(server: &TestServer) -> Raw {
    connect_as(server, COMPONENT).await
}

async fn connect_as(server: &TestServer, domain: &str) -> Raw {
    let (mut c, header) = open(server, domain).await;
    handshake(&mut c, &header, SECRET).await;
    c.expect("<handshake/>").await;
    c
}

#[tokio::test]
async fn a_component_authenticates_with_the_shared_secret() {
    let server = start();
    let (mut c, header) = open(&server, COMPONENT).await;
    assert!(
        header.contains("xmlns='jabber:component:accept'")
            && header.contains(&format!("from='{COMPONENT}'")),
        "{header}"
    );
    handshake(&mut c, &header, SECRET).await;
    c.expect("<handshake/>").await;
    assert!(server.log().contains("component authenticated"));
}

#[tokio::test]
async fn a_wrong_secret_is_not_authorized() {
    let server = start();
    let (mut c, header) = open(&server, COMPONENT).await;
    handshake(&mut c, &header, "guess").await;
    c.expect_stream_error("not-authorized").await;
    let log = server.log();
    assert!(log.contains("wrong secret"), "{log}");
    assert!(!log.contains(SECRET), "the secret must not be logged");
}

#[tokio::test]
async fn an_unknown_domain_is_host_unknown() {
    let server = start();
    let (mut c, _) = open(&server, "matrix.localhost").await;
    c.expect_stream_error("host-unknown").await;
}

#[tokio::test]
async fn a_client_stream_on_the_component_port_is_invalid_namespace() {
    let server = start();
    let mut c = Raw::connect(server.component_addr).await;
    c.send(&header_to(COMPONENT)).await;
    c.expect_stream_error("invalid-namespace").await;
}

#[tokio::test]
async fn users_and_the_component_exchange_messages() {
    let server = start();
    server.add_user("alice", "alicepass1");
    let (mut alice, jid) = login(&server, "alice", "alicepass1", "a").await;
    let mut bridge = connect(&server).await;

    alice
        .send(&format!(
            "<message to='bot@{COMPONENT}' type='chat' id='m1'><body>hello bot</body></message>"
        ))
        .await;
    let got = bridge.expect_stanza("<message").await;
    assert!(
        got.contains(&format!("from='{jid}'"))
            && got.contains(&format!("to='bot@{COMPONENT}'"))
            && got.contains("<body>hello bot</body>"),
        "{got}"
    );
    // Written in the component's namespace: no jabber:client declaration on the stanza.
    assert!(!got.contains("jabber:client"), "{got}");

    bridge
        .send(&format!(
            "<message from='bot@{COMPONENT}/irc' to='{jid}' type='chat' id='r1'><body>hello alice</body></message>"
        ))
        .await;
    let reply = alice.expect_stanza("id='r1'").await;
    assert!(
        reply.contains(&format!("from='bot@{COMPONENT}/irc'"))
            && reply.contains("<body>hello alice</body>"),
        "{reply}"
    );

    // The server lists the component in its disco#items, with its name.
    alice
        .send("<iq type='get' id='items' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    let items = alice.expect_stanza("id='items'").await;
    assert!(
        items.contains(&format!("jid='{COMPONENT}'")) && items.contains("name='IRC gateway'"),
        "{items}"
    );
}

#[tokio::test]
async fn stanzas_to_a_component_that_is_away_are_service_unavailable() {
    let server = start();
    server.add_user("alice", "alicepass1");
    let (mut alice, _) = login(&server, "alice", "alicepass1", "a").await;
    alice
        .send(&format!(
            "<iq type='get' id='v1' to='{COMPONENT}'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await;
    let reply = alice.expect_stanza("id='v1'").await;
    assert!(
        reply.contains("type='error'") && reply.contains("<service-unavailable"),
        "{reply}"
    );
    // Presence is dropped, not bounced.
    alice
        .send(&format!("<presence to='bot@{COMPONENT}'/>"))
        .await;
    alice.sync().await;
    alice.expect_silence(200).await;
}

#[tokio::test]
async fn a_spoofed_from_closes_the_components_stream() {
    let server = start();
    server.add_user("alice", "alicepass1");
    let (mut alice, jid) = login(&server, "alice", "alicepass1", "a").await;
    let mut bridge = connect(&server).await;
    bridge
        .send(&format!(
            "<message from='admin@localhost' to='{jid}' type='chat'><body>trust me</body></message>"
        ))
        .await;
    bridge.expect_stream_error("invalid-from").await;
    alice.sync().await;
    alice.expect_silence(200).await;
}

#[tokio::test]
async fn a_second_connection_for_a_connected_component_is_a_conflict() {
    let server = start();
    server.add_user("alice", "alicepass1");
    let (mut alice, jid) = login(&server, "alice", "alicepass1", "a").await;
    let mut first = connect(&server).await;
    let (mut second, header) = open(&server, COMPONENT).await;
    handshake(&mut second, &header, SECRET).await;
    second.expect_stream_error("conflict").await;
    // The first connection still works.
    first
        .send(&format!(
            "<message from='bot@{COMPONENT}' to='{jid}' id='still'><body>still here</body></message>"
        ))
        .await;
    alice.expect_stanza("id='still'").await;
    // Once it is gone, the component can connect again.
    first.send("</stream:stream>").await;
    first.closed().await;
    connect(&server).await;
}

#[test]
fn a_component_cannot_take_a_modules_domain() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(
        &config,
        format!(
            "domain = \"localhost\"\ndata_dir = \"{}\"\n[components.hosts.\"conference.localhost\"]\nsecret = \"s\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let (ok, out) = run_cli(&config, &["serve"], "");
    assert!(
        !ok && out.contains("components.hosts.\"conference.localhost\": a module serves"),
        "{out}"
    );
}

#[tokio::test]
async fn users_of_other_servers_reach_the_component_through_federation() {
    let irc = "irc.a.test";
    let crate::federation::Pair { a, b, _a_files } =
        crate::federation::pair_serving(&[irc], "", |domain| {
            if domain == "a.test" {
                format!("[components.hosts.\"{irc}\"]\nsecret = \"{SECRET}\"\n")
            } else {
                String::new()
            }
        });
    b.add_user("bob", "bobpass12");
    let (mut bob, jid) = login(&b, "bob", "bobpass12", "desk").await;
    let mut bridge = connect_as(&a, irc).await;
    bob.send(&format!(
        "<message to='chan@{irc}' type='chat' id='f1'><body>from afar</body></message>"
    ))
    .await;
    let got = bridge.expect_stanza("id='f1'").await;
    assert!(got.contains(&format!("from='{jid}'")), "{got}");
    bridge
        .send(&format!(
            "<message from='chan@{irc}' to='{jid}' type='chat' id='f2'><body>welcome</body></message>"
        ))
        .await;
    let reply = bob.expect_stanza("id='f2'").await;
    assert!(reply.contains("<body>welcome</body>"), "{reply}");
}
