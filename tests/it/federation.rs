//! Federation between two hearth instances (domains a.test and b.test on their own loopback
//! addresses, found through `s2s.peers`), and the s2s protocol over raw XML.

use std::time::{Duration, Instant};

use crate::harness::*;

fn peer(domain: &str, server: &TestServer) -> String {
    format!(
        "[s2s.peers.\"{domain}\"]\naddress = \"{}\"\n",
        server.s2s_addr
    )
}

/// a.test and b.test, each knowing where the other listens.
struct Pair {
    a: TestServer,
    b: TestServer,
    /// The first process of `a` (stopped), which owns its files.
    _a_files: TestServer,
}

/// Starts the pair. `a` starts with a placeholder address for `b` (not listening yet), so it
/// is restarted once with the real one.
fn pair(s2s_keys: &str) -> Pair {
    let placeholder = "[s2s.peers.\"b.test\"]\naddress = \"127.0.0.1:9\"\n";
    let mut first = TestServer::start_federating("a.test", s2s_keys, placeholder);
    let b = TestServer::start_federating("b.test", s2s_keys, &peer("a.test", &first));
    first.stop();
    let text = std::fs::read_to_string(&first.config)
        .unwrap()
        .replace("127.0.0.1:9", &b.s2s_addr.to_string());
    std::fs::write(&first.config, text).unwrap();
    let a = TestServer::restart_from(&first);
    Pair {
        a,
        b,
        _a_files: first,
    }
}

#[tokio::test]
async fn a_burst_of_messages_crosses_the_link_in_order() {
    let Pair { a, b, _a_files } = pair("");
    a.add_user("alice", "alicepass1");
    b.add_user("bob", "bobpass12");
    let (mut alice, _) = login(&a, "alice", "alicepass1", "phone").await;
    let (mut bob, _) = login(&b, "bob", "bobpass12", "desk").await;
    for c in [&mut alice, &mut bob] {
        c.send("<presence/>").await;
        c.sync().await;
    }
    const N: usize = 1000;
    let mut burst = String::new();
    for i in 0..N {
        burst.push_str(&format!(
            "<message to='bob@b.test/desk' type='chat' id='m{i}'><body>n{i}</body></message>"
        ));
    }
    alice.send(&burst).await;
    for i in 0..N {
        let got = bob.expect_stanza("<message").await;
        assert!(
            got.contains(&format!("<body>n{i}</body>")),
            "message {i} out of order: {got}"
        );
        assert!(got.contains("from='alice@a.test/phone'"), "{got}");
    }
    // And back, over b's own link to a.
    bob.send(
        "<message to='alice@a.test/phone' type='chat' id='r1'><body>got them</body></message>",
    )
    .await;
    let got = alice.expect_stanza("<message").await;
    assert!(got.contains("from='bob@b.test/desk'"), "{got}");
    assert!(a.log().contains("server-to-server link established"));
    assert!(
        b.log().contains("remote server authenticated by dialback"),
        "{}",
        b.log()
    );
}

#[tokio::test]
async fn an_unreachable_server_bounces_within_the_configured_time() {
    // Nothing listens on port 9 of 127.0.0.1: every attempt is refused until the deadline.
    let a = TestServer::start_federating(
        "a.test",
        "connect_timeout_secs = 2\n",
        "[s2s.peers.\"down.test\"]\naddress = \"127.0.0.1:9\"\n",
    );
    a.add_user("alice", "alicepass1");
    let (mut alice, _) = login(&a, "alice", "alicepass1", "phone").await;
    let started = Instant::now();
    alice
        .send("<message to='carol@down.test' type='chat' id='lost1'><body>hello?</body></message>")
        .await;
    let got = alice.expect_stanza("<message").await;
    assert!(
        got.contains("type='error'") && got.contains("id='lost1'"),
        "{got}"
    );
    assert!(got.contains("<remote-server-not-found"), "{got}");
    assert!(got.contains("cannot reach down.test"), "{got}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}
