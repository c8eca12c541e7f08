//! FAST (XEP-0484) over raw XML, computing the HT-SHA-256 client side as Conversations does:
//! a token from a password login, one-round-trip logins bound to the TLS channel, rotation,
//! expiry, logging out, and tokens ending with a new password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::harness::*;
use crate::sasl2::{AGENT, BIND, authenticate, secure};

const OTHER_AGENT: &str = "<user-agent id='0b6c1a5e-8c8e-4a8f-9f0e-2f4b8f6a7c11'/>";

fn hmac(token: &str, label: &[u8], binding: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes()).unwrap();
    m.update(label);
    m.update(binding);
    m.finalize().into_bytes().to_vec()
}

/// The channel-binding data the HT mechanism `mech` mixes in, on connection `c`.
fn binding(c: &Raw, mech: &str) -> Vec<u8> {
    match mech {
        "HT-SHA-256-EXPR" => c.tls_exporter(),
        "HT-SHA-256-ENDP" => Sha256::digest(&c.tls().peer_certificates().unwrap()[0]).to_vec(),
        _ => Vec::new(),
    }
}

/// Logs alice in with her password, asking for a token for `mech`; returns the `<token/>`.
async fn token_from_password(server: &TestServer, mech: &str) -> String {
    let (mut c, _) = secure(server).await;
    c.send(&authenticate(
        "alice",
        "alicepass1",
        &format!("<request-token xmlns='urn:xmpp:fast:0' mechanism='{mech}'/>"),
    ))
    .await;
    let success = c.expect("</success>").await;
    success
        .split("<token xmlns='urn:xmpp:fast:0'")
        .nth(1)
        .unwrap_or_else(|| panic!("no token: {success}"))
        .to_string()
}

/// A FAST login as alice with `token`, its proof bound to `proof_from`'s channel (the new
/// connection's own if `None`). Returns the connection and the server's success or failure.
async fn fast_login(
    server: &TestServer,
    mech: &str,
    token: &str,
    agent: &str,
    inside: &str,
    proof_from: Option<&Raw>,
) -> (Raw, String) {
    let (mut c, _) = secure(server).await;
    let cb = binding(proof_from.unwrap_or(&c), mech);
    let mut initial = b"alice\0".to_vec();
    initial.extend(hmac(token, b"Initiator", &cb));
    c.send(&format!(
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='{mech}'><initial-response>{}</initial-response>{agent}{inside}</authenticate>",
        B64.encode(initial)
    ))
    .await;
    let reply = c.expect_one_of(&["</success>", "</failure>"]).await;
    (c, reply)
}

const FAST: &str = "<fast xmlns='urn:xmpp:fast:0'/>";

#[tokio::test]
async fn a_token_logs_in_and_binds_in_one_round_trip() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    let (_, features) = secure(&server).await;
    assert!(
        features.contains("<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-EXPR</mechanism><mechanism>HT-SHA-256-ENDP</mechanism><mechanism>HT-SHA-256-NONE</mechanism></fast>"),
        "{features}"
    );
    let issued = token_from_password(&server, "HT-SHA-256-EXPR").await;
    let token = attr(&issued, "token").unwrap().to_string();
    let expiry = attr(&issued, "expiry").unwrap();
    assert!(expiry.len() == 20 && expiry.ends_with('Z'), "{expiry}");

    let (mut c, success) = fast_login(
        &server,
        "HT-SHA-256-EXPR",
        &token,
        AGENT,
        &format!("{FAST}{BIND}"),
        None,
    )
    .await;
    assert!(success.contains("<success"), "{success}");
    // The server proves it holds the token too, bound to the same channel.
    let responder = hmac(&token, b"Responder", &c.tls_exporter());
    assert_eq!(
        text_of(&success, "additional-data"),
        Some(B64.encode(responder).as_str())
    );
    assert!(
        text_of(&success, "authorization-identifier")
            .unwrap()
            .starts_with("alice@localhost/Test."),
        "{success}"
    );
    assert!(
        success.contains("<bound xmlns='urn:xmpp:bind:0'>"),
        "{success}"
    );
    // A fresh token is not rotated.
    assert!(!success.contains("<token"), "{success}");
    c.expect("<stream:features/>").await;
    c.send("<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    c.expect("id='p'").await;
    assert!(server.log().contains("HT-SHA-256-EXPR"), "{}", server.log());

    // A proof made for another TLS channel (a relayed or replayed login) fails.
    let (elsewhere, _) = secure(&server).await;
    let (_, r) = fast_login(
        &server,
        "HT-SHA-256-EXPR",
        &token,
        AGENT,
        FAST,
        Some(&elsewhere),
    )
    .await;
    assert!(
        r.contains("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
        "{r}"
    );
    // The token is bound to its mechanism and to the client it was issued to.
    let (_, r) = fast_login(&server, "HT-SHA-256-NONE", &token, AGENT, FAST, None).await;
    assert!(r.contains("<not-authorized"), "{r}");
    let (_, r) = fast_login(&server, "HT-SHA-256-EXPR", &token, OTHER_AGENT, FAST, None).await;
    assert!(r.contains("<not-authorized"), "{r}");
    // Still good after those failures.
    let (_, r) = fast_login(&server, "HT-SHA-256-EXPR", &token, AGENT, FAST, None).await;
    assert!(r.contains("<success"), "{r}");
}

#[tokio::test]
async fn end_point_and_unbound_tokens_and_requests_without_a_client_id() {
    let server = TestServer::start();
    server.add_user("alice", "alicepass1");
    for mech in ["HT-SHA-256-ENDP", "HT-SHA-256-NONE"] {
        let issued = token_from_password(&server, mech).await;
        let token = attr(&issued, "token").unwrap().to_string();
        let (c, r) = fast_login(&server, mech, &token, AGENT, FAST, None).await;
        let responder = hmac(&token, b"Responder", &binding(&c, mech));
        assert_eq!(
            text_of(&r, "additional-data"),
            Some(B64.encode(responder).as_str()),
            "{mech}: {r}"
        );
    }
    // Without a user-agent id a token could not be told apart from other devices': none.
    let (mut c, _) = secure(&server).await;
    c.send(&format!(
        "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>{}</initial-response><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>",
        crate::sasl2::plain("alice", "alicepass1")
    ))
    .await;
    let success = c.expect("</success>").await;
    assert!(!success.contains("<token"), "{success}");
}

#[tokio::test]
async fn tokens_rotate_expire_log_out_and_end_with_a_new_password() {
    let server = TestServer::start_with("[auth.fast]\ntoken_lifetime_secs = 6\n");
    server.add_user("alice", "alicepass1");
    let mech = "HT-SHA-256-NONE";
    let first = token_from_password(&server, mech).await;
    let first = attr(&first, "token").unwrap().to_string();
    // Past half its lifetime, a login with it brings the next token.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let (_, r) = fast_login(&server, mech, &first, AGENT, FAST, None).await;
    let second = attr(r.split("<token").nth(1).expect("rotated"), "token")
        .unwrap()
        .to_string();
    assert_ne!(second, first);
    // The first stays good until the second is used (the client may have missed it) …
    let (_, r) = fast_login(&server, mech, &first, AGENT, FAST, None).await;
    assert!(r.contains("<success"), "{r}");
    let third = attr(r.split("<token").nth(1).expect("rotated"), "token")
        .unwrap()
        .to_string();
    // … which ends it. An unused token is replaced by the next one issued.
    let (_, r) = fast_login(&server, mech, &third, AGENT, FAST, None).await;
    assert!(r.contains("<success") && !r.contains("<token"), "{r}");
    for ended in [&first, &second] {
        let (_, r) = fast_login(&server, mech, ended, AGENT, FAST, None).await;
        assert!(r.contains("<not-authorized"), "{r}");
    }
    // An expired token says so, and the client falls back to its password.
    tokio::time::sleep(std::time::Duration::from_millis(6200)).await;
    let (_, r) = fast_login(&server, mech, &third, AGENT, FAST, None).await;
    assert!(r.contains("<credentials-expired"), "{r}");

    // Logging out ends the token, and no new one comes unless asked for.
    let token = token_from_password(&server, mech).await;
    let token = attr(&token, "token").unwrap().to_string();
    let logout = "<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>";
    let (_, r) = fast_login(&server, mech, &token, AGENT, logout, None).await;
    assert!(r.contains("<success") && !r.contains("<token"), "{r}");
    let (_, r) = fast_login(&server, mech, &token, AGENT, FAST, None).await;
    assert!(r.contains("<not-authorized"), "{r}");

    // A new password ends every token.
    let token = token_from_password(&server, mech).await;
    let token = attr(&token, "token").unwrap().to_string();
    let (ok, out) = server.cli(&["user", "passwd", "alice"], "a new password\n");
    assert!(ok, "{out}");
    let (_, r) = fast_login(&server, mech, &token, AGENT, FAST, None).await;
    assert!(r.contains("<not-authorized"), "{r}");
}

#[tokio::test]
async fn fast_can_be_turned_off() {
    let server = TestServer::start_with("[auth.fast]\nenabled = false\n");
    server.add_user("alice", "alicepass1");
    let (_, features) = secure(&server).await;
    assert!(!features.contains("urn:xmpp:fast:0"), "{features}");
    let (_, r) = fast_login(&server, "HT-SHA-256-NONE", "any", AGENT, FAST, None).await;
    assert!(r.contains("<invalid-mechanism"), "{r}");
}
