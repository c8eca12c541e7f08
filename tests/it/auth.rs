//! SASL: SCRAM with and without channel binding (driven by the `sasl` crate's client), PLAIN,
//! failures and throttling.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sasl::client::Mechanism as _;
use sasl::client::mechanisms::Scram;
use sasl::common::scram::{ScramProvider, Sha1, Sha256};
use sasl::common::{ChannelBinding, Credentials};

use crate::harness::*;

async fn tls_stream(server: &TestServer) -> Raw {
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    c.starttls(&server.tls_connector()).await;
    c
}

/// Runs a SCRAM exchange; returns the server's last element (success or failure).
async fn scram<S: ScramProvider>(
    c: &mut Raw,
    mech_name: &str,
    user: &str,
    password: &str,
    cb: ChannelBinding,
) -> String {
    let creds = Credentials::default()
        .with_username(user)
        .with_password(password)
        .with_channel_binding(cb);
    let mut mech = Scram::<S>::from_credentials(creds).unwrap();
    let first = mech.initial();
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mech_name}'>{}</auth>",
        B64.encode(first)
    ))
    .await;
    let reply = c.expect_one_of(&["</challenge>", "</failure>"]).await;
    let Some(start) = reply.find("<challenge") else {
        return reply;
    };
    let body = &reply[reply[start..].find('>').unwrap() + start + 1..reply.rfind("</").unwrap()];
    let response = mech
        .response(&B64.decode(body).unwrap())
        .expect("client accepts challenge");
    c.send(&format!(
        "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
        B64.encode(response)
    ))
    .await;
    let reply = c.expect_one_of(&["</success>", "</failure>"]).await;
    if reply.contains("<success") {
        let body = &reply[reply.find('>').unwrap() + 1..reply.rfind("</").unwrap()];
        mech.success(&B64.decode(body).unwrap())
            .expect("server signature verifies");
        reply
    } else {
        reply
    }
}

#[tokio::test]
async fn scram_mechanisms_log_in() {
    let server = TestServer::start();
    server.add_user("alice", "correct horse");
    let mut c = tls_stream(&server).await;
    let r = scram::<Sha1>(
        &mut c,
        "SCRAM-SHA-1",
        "alice",
        "correct horse",
        ChannelBinding::None,
    )
    .await;
    assert!(r.contains("<success"), "{r}");
    let mut c = tls_stream(&server).await;
    let r = scram::<Sha256>(
        &mut c,
        "SCRAM-SHA-256",
        "alice",
        "correct horse",
        ChannelBinding::None,
    )
    .await;
    assert!(r.contains("<success"), "{r}");
    c.open().await;
    assert_eq!(c.bind("scram").await, "alice@localhost/scram");
    assert!(
        server.log().contains("mechanism=\"SCRAM-SHA-256\"")
            || server.log().contains("mechanism=SCRAM-SHA-256"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn scram_plus_with_tls_exporter() {
    let server = TestServer::start();
    server.add_user("alice", "correct horse");
    for (name, sha256) in [("SCRAM-SHA-256-PLUS", true), ("SCRAM-SHA-1-PLUS", false)] {
        let mut c = tls_stream(&server).await;
        let cb = ChannelBinding::TlsExporter(c.tls_exporter());
        let r = if sha256 {
            scram::<Sha256>(&mut c, name, "alice", "correct horse", cb).await
        } else {
            scram::<Sha1>(&mut c, name, "alice", "correct horse", cb).await
        };
        assert!(r.contains("<success"), "{name}: {r}");
    }
    // Wrong channel-binding data (a man in the middle would have other keys) fails.
    let mut c = tls_stream(&server).await;
    let r = scram::<Sha256>(
        &mut c,
        "SCRAM-SHA-256-PLUS",
        "alice",
        "correct horse",
        ChannelBinding::TlsExporter(vec![0; 32]),
    )
    .await;
    assert!(r.contains("<failure"), "{r}");
    // Claiming the server lacks channel binding while it offers -PLUS is a downgrade: refused.
    let mut c = tls_stream(&server).await;
    let r = scram::<Sha256>(
        &mut c,
        "SCRAM-SHA-256",
        "alice",
        "correct horse",
        ChannelBinding::Unsupported,
    )
    .await;
    assert!(r.contains("<failure"), "{r}");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let server = TestServer::start();
    server.add_user("alice", "correct horse");
    let mut c = tls_stream(&server).await;
    let wrong = scram::<Sha256>(
        &mut c,
        "SCRAM-SHA-256",
        "alice",
        "wrong",
        ChannelBinding::None,
    )
    .await;
    assert!(wrong.contains("<not-authorized/>"), "{wrong}");
    let mut c = tls_stream(&server).await;
    let unknown = scram::<Sha256>(
        &mut c,
        "SCRAM-SHA-256",
        "nobody",
        "wrong",
        ChannelBinding::None,
    )
    .await;
    assert!(unknown.contains("<not-authorized/>"), "{unknown}");
    let mut c = tls_stream(&server).await;
    let r = c.plain_auth("alice", "wrong").await;
    assert!(r.contains("<not-authorized/>"), "{r}");
    // Retry on the same stream after a failure works (RFC 6120 §6.4.5).
    let r = c.plain_auth("alice", "correct horse").await;
    assert!(r.contains("<success"), "{r}");
    assert!(!server.log().contains("correct horse"), "password in log");
}

#[tokio::test]
async fn invalid_mechanism_and_encoding() {
    let server = TestServer::start();
    let mut c = tls_stream(&server).await;
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>")
        .await;
    assert!(
        c.expect("</failure>")
            .await
            .contains("<invalid-mechanism/>")
    );
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!not base64</auth>")
        .await;
    assert!(
        c.expect("</failure>")
            .await
            .contains("<incorrect-encoding/>")
    );
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>")
        .await;
    let r = c.expect_one_of(&["</challenge>", "</failure>"]).await;
    assert!(
        r.contains("<challenge"),
        "an empty initial response gets an empty challenge: {r}"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account() {
    let server =
        TestServer::start_with("[auth]\nmax_failures_per_account = 3\nmax_failures_per_ip = 0\n");
    server.add_user("alice", "correct horse");
    for _ in 0..3 {
        let mut c = tls_stream(&server).await;
        assert!(
            c.plain_auth("alice", "guess")
                .await
                .contains("<not-authorized/>")
        );
    }
    let mut c = tls_stream(&server).await;
    let r = c.plain_auth("alice", "correct horse").await;
    assert!(
        r.contains("<temporary-auth-failure/>"),
        "throttled login must be refused: {r}"
    );
    // Other accounts are unaffected.
    server.add_user("bob", "bob password");
    let mut c = tls_stream(&server).await;
    assert!(
        c.plain_auth("bob", "bob password")
            .await
            .contains("<success")
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_ip() {
    let server = TestServer::start_with("[auth]\nmax_failures_per_ip = 2\n");
    server.add_user("alice", "correct horse");
    for user in ["x", "y"] {
        let mut c = tls_stream(&server).await;
        assert!(
            c.plain_auth(user, "guess")
                .await
                .contains("<not-authorized/>")
        );
    }
    let mut c = tls_stream(&server).await;
    let r = c.plain_auth("alice", "correct horse").await;
    assert!(r.contains("<temporary-auth-failure/>"), "{r}");
}

/// SCRAM-SHA-256-PLUS bound with tls-server-end-point (RFC 5929): the `sasl` crate knows only
/// tls-unique and tls-exporter, so this test computes the client side itself (RFC 5802 §3).
#[tokio::test]
async fn scram_plus_with_tls_server_end_point() {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let hmac = |key: &[u8], data: &[u8]| {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    };
    let server = TestServer::start();
    server.add_user("alice", "correct horse");
    for (cb_data_ok, expect_success) in [(true, true), (false, false)] {
        let mut c = tls_stream(&server).await;
        let leaf = c.tls().peer_certificates().unwrap()[0].clone();
        let mut cb_data = Sha256::digest(&leaf).to_vec();
        if !cb_data_ok {
            cb_data[0] ^= 1;
        }
        let gs2 = "p=tls-server-end-point,,";
        let bare = "n=alice,r=clientnonce123";
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>{}</auth>",
            B64.encode(format!("{gs2}{bare}"))
        ))
        .await;
        let reply = c.expect("</challenge>").await;
        let body = &reply[reply.find("'>").unwrap() + 2..reply.rfind("</").unwrap()];
        let server_first = String::from_utf8(B64.decode(body).unwrap()).unwrap();
        let field = |k: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(k))
                .unwrap()
                .to_string()
        };
        let (nonce, salt, iterations) = (
            field("r="),
            B64.decode(field("s=")).unwrap(),
            field("i=").parse::<u32>().unwrap(),
        );
        let salted = pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(b"correct horse", &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let mut cbind = gs2.as_bytes().to_vec();
        cbind.extend_from_slice(&cb_data);
        let without_proof = format!("c={},r={nonce}", B64.encode(&cbind));
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        c.send(&format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(format!("{without_proof},p={}", B64.encode(proof)))
        ))
        .await;
        let r = c.expect_one_of(&["</success>", "</failure>"]).await;
        assert_eq!(r.contains("<success"), expect_success, "{r}");
    }
}
