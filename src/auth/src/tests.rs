use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sasl::client::Mechanism as _;
use sasl::client::mechanisms::Scram;
use sasl::common::scram::{ScramProvider, Sha1, Sha256};
use sasl::common::{ChannelBinding, Credentials as ClientCredentials};
use sha2::Digest;

use super::*;
use crate::scram::Hash;

fn no_cb() -> ChannelBindings {
    ChannelBindings::default()
}

fn both_cb() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(vec![7; 32]),
        tls_server_end_point: Some(vec![9; 32]),
    }
}

fn condition(r: Result<Step, SaslFailure>) -> Condition {
    r.expect_err("expected a failure").condition
}

/// Real keys for both hashes, with one given salt and 4096 iterations.
fn creds_with_salt(password: &str, salt_b64: &str) -> Credentials {
    let salt = B64.decode(salt_b64).unwrap();
    Credentials {
        sha1: Hash::Sha1.keys(password, salt.clone(), 4096),
        sha256: Hash::Sha256.keys(password, salt, 4096),
    }
}

/// RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256): the exact exchange for user/pencil, byte for
/// byte, through `SaslServer` with the RFC's server nonce. The proof and server signature
/// check the key derivation (SaltedPassword, ClientKey, StoredKey, ServerKey).
#[test]
fn rfc_test_vectors() {
    let cases = [
        (
            Mechanism::ScramSha1,
            "QSXCR+Q6sek8bf92",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ),
        (
            Mechanism::ScramSha256,
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ),
    ];
    for (mech, salt, client_first, nonce, server_first, client_final, server_final) in cases {
        let creds = creds_with_salt("pencil", salt);
        let mut server = SaslServer::new(mech, no_cb());
        server.fixed_nonce = Some(nonce);
        assert_eq!(
            server.start(client_first.as_bytes()).unwrap(),
            Step::NeedCredentials {
                username: "user".into()
            }
        );
        assert_eq!(
            server.credentials(Some(&creds)).unwrap(),
            Step::Challenge(server_first.into())
        );
        assert_eq!(
            server.step(client_final.as_bytes()).unwrap(),
            Step::Success {
                username: "user".into(),
                additional: Some(server_final.into())
            }
        );
        assert!(verify_plain(&creds, "pencil"));
        assert!(!verify_plain(&creds, "pencils"));
    }
}

#[test]
fn derive_credentials_makes_independent_key_sets() {
    let c = derive_credentials("secret", 4096).unwrap();
    assert_eq!((c.sha1.iterations, c.sha256.iterations), (4096, 4096));
    assert_eq!((c.sha1.salt.len(), c.sha256.salt.len()), (16, 16));
    assert_ne!(c.sha1.salt, c.sha256.salt);
    assert_eq!((c.sha1.stored_key.len(), c.sha1.server_key.len()), (20, 20));
    assert_eq!(
        (c.sha256.stored_key.len(), c.sha256.server_key.len()),
        (32, 32)
    );
    let again = derive_credentials("secret", 4096).unwrap();
    assert_ne!(c.sha256.salt, again.sha256.salt, "salts are random");
    assert!(verify_plain(&c, "secret"));
    assert!(derive_credentials("secret", 0).is_err());
    // SASLprep (RFC 4013 §3): soft hyphen maps to nothing, so both spellings are one password.
    let prepped = derive_credentials("I\u{ad}X", 4096).unwrap();
    assert!(verify_plain(&prepped, "IX"));
    assert!(
        derive_credentials("a\u{7}b", 4096).is_err(),
        "prohibited character"
    );
}

/// Runs a whole exchange between `SaslServer` and the `sasl` crate's client.
fn exchange<S: ScramProvider>(
    mech: Mechanism,
    server_cb: ChannelBindings,
    client_cb: ChannelBinding,
    stored: &str,
    tried: &str,
    empty_auth: bool,
) -> Result<String, SaslFailure> {
    let creds = derive_credentials(stored, 4096).unwrap();
    let client_creds = ClientCredentials::default()
        .with_username("alice")
        .with_password(tried)
        .with_channel_binding(client_cb);
    let mut client = Scram::<S>::from_credentials(client_creds).unwrap();
    let mut server = SaslServer::new(mech, server_cb);
    let first = if empty_auth {
        // No initial response in <auth/>: an empty challenge asks for it.
        assert_eq!(server.start(b"")?, Step::Challenge(Vec::new()));
        server.step(&client.initial())?
    } else {
        server.start(&client.initial())?
    };
    let Step::NeedCredentials { username } = first else {
        panic!("expected NeedCredentials, got {first:?}")
    };
    assert_eq!(username, "alice");
    let Step::Challenge(challenge) = server.credentials(Some(&creds))? else {
        panic!("expected a challenge")
    };
    let response = client.response(&challenge).unwrap();
    match server.step(&response)? {
        Step::Success {
            username,
            additional: Some(v),
        } => {
            client
                .success(&v)
                .expect("client verifies the server signature");
            // The exchange is over.
            assert_eq!(
                condition(server.step(b"again")),
                Condition::MalformedRequest
            );
            Ok(username)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn end_to_end_with_the_sasl_crate_client() {
    let exporter = || ChannelBinding::TlsExporter(vec![7; 32]);
    for empty_auth in [false, true] {
        let ok = |r: Result<String, SaslFailure>| assert_eq!(r.unwrap(), "alice");
        ok(exchange::<Sha1>(
            Mechanism::ScramSha1,
            no_cb(),
            ChannelBinding::None,
            "secret",
            "secret",
            empty_auth,
        ));
        ok(exchange::<Sha256>(
            Mechanism::ScramSha256,
            no_cb(),
            ChannelBinding::None,
            "secret",
            "secret",
            empty_auth,
        ));
        ok(exchange::<Sha256>(
            Mechanism::ScramSha256Plus,
            both_cb(),
            exporter(),
            "secret",
            "secret",
            empty_auth,
        ));
        ok(exchange::<Sha1>(
            Mechanism::ScramSha1Plus,
            both_cb(),
            exporter(),
            "secret",
            "secret",
            empty_auth,
        ));
        // A client that cannot bind may use plain SCRAM even where -PLUS is offered.
        ok(exchange::<Sha256>(
            Mechanism::ScramSha256,
            both_cb(),
            ChannelBinding::None,
            "secret",
            "secret",
            empty_auth,
        ));
        // 'y' where the server has no binding is fine.
        ok(exchange::<Sha256>(
            Mechanism::ScramSha256,
            no_cb(),
            ChannelBinding::Unsupported,
            "secret",
            "secret",
            empty_auth,
        ));
    }
}

#[test]
fn scram_failures_against_the_sasl_crate_client() {
    for (mech, server_cb, client_cb, tried) in [
        // Wrong password, both hashes.
        (
            Mechanism::ScramSha256,
            no_cb(),
            ChannelBinding::None,
            "guess",
        ),
        (Mechanism::ScramSha1, no_cb(), ChannelBinding::None, "guess"),
        (
            Mechanism::ScramSha256Plus,
            both_cb(),
            ChannelBinding::TlsExporter(vec![7; 32]),
            "guess",
        ),
        // Tampered channel-binding data (a MITM terminating TLS sees other keying material).
        (
            Mechanism::ScramSha256Plus,
            both_cb(),
            ChannelBinding::TlsExporter(vec![8; 32]),
            "secret",
        ),
        // The client binds to tls-exporter but this connection has none.
        (
            Mechanism::ScramSha256Plus,
            ChannelBindings {
                tls_exporter: None,
                tls_server_end_point: Some(vec![9; 32]),
            },
            ChannelBinding::TlsExporter(vec![7; 32]),
            "secret",
        ),
        // Unknown binding type.
        (
            Mechanism::ScramSha256Plus,
            both_cb(),
            ChannelBinding::TlsUnique(vec![1; 12]),
            "secret",
        ),
    ] {
        let err = exchange::<Sha256>(mech, server_cb, client_cb, "secret", tried, false)
            .expect_err("must fail");
        assert_eq!(err.condition, Condition::NotAuthorized, "{err}");
    }
    // The failure names the account for throttling once it is known.
    let err = exchange::<Sha256>(
        Mechanism::ScramSha256,
        no_cb(),
        ChannelBinding::None,
        "secret",
        "guess",
        false,
    )
    .unwrap_err();
    assert_eq!(err.username.as_deref(), Some("alice"));
}

#[test]
fn gs2_header_rules() {
    let start = |mech, cb, msg: &[u8]| SaslServer::new(mech, cb).start(msg);
    // 'y' while the server offers -PLUS: the offer was stripped (downgrade, RFC 5802 §6).
    assert_eq!(
        condition(start(
            Mechanism::ScramSha256,
            both_cb(),
            b"y,,n=alice,r=abc"
        )),
        Condition::NotAuthorized
    );
    // Binding requested with a non-PLUS mechanism.
    assert_eq!(
        condition(start(
            Mechanism::ScramSha256,
            both_cb(),
            b"p=tls-exporter,,n=alice,r=abc"
        )),
        Condition::NotAuthorized
    );
    // -PLUS without binding.
    for flag in ["n", "y"] {
        let msg = format!("{flag},,n=alice,r=abc");
        assert_eq!(
            condition(start(Mechanism::ScramSha1Plus, both_cb(), msg.as_bytes())),
            Condition::NotAuthorized
        );
    }
    // Unknown binding type.
    assert_eq!(
        condition(start(
            Mechanism::ScramSha256Plus,
            both_cb(),
            b"p=tls-unique,,n=alice,r=abc"
        )),
        Condition::NotAuthorized
    );
    // authzid: the account itself (bare name or bare JID) is fine, anyone else is not.
    for ok in [
        &b"n,a=alice,n=alice,r=abc"[..],
        b"n,a=alice@example.com,n=alice,r=abc",
    ] {
        assert!(start(Mechanism::ScramSha256, no_cb(), ok).is_ok());
    }
    for other in [
        &b"n,a=bob@example.com,n=alice,r=abc"[..],
        b"n,a=bob,n=alice,r=abc",
        b"n,a=alice@example.com/res,n=alice,r=abc",
    ] {
        let err = start(Mechanism::ScramSha256, no_cb(), other).unwrap_err();
        assert_eq!(err.condition, Condition::InvalidAuthzid);
        assert_eq!(err.username.as_deref(), Some("alice"));
    }
    // `=2C` / `=3D` escapes in the name (and in the authzid).
    assert_eq!(
        start(
            Mechanism::ScramSha1,
            no_cb(),
            b"n,a=a=2Cb=3Dc,n=a=2Cb=3Dc,r=abc"
        )
        .unwrap(),
        Step::NeedCredentials {
            username: "a,b=c".into()
        }
    );
    // SASLprep of the name.
    assert_eq!(
        start(
            Mechanism::ScramSha1,
            no_cb(),
            "n,,n=al\u{ad}ice,r=abc".as_bytes()
        )
        .unwrap(),
        Step::NeedCredentials {
            username: "alice".into()
        }
    );
    assert_eq!(
        condition(start(Mechanism::ScramSha1, no_cb(), b"\xff\xfe")),
        Condition::IncorrectEncoding
    );
    for bad in [
        &b"garbage"[..],
        b"n,,r=abc",
        b"n,,n=alice",
        b"n,,r=abc,n=alice",
        b"n,,n=alice,r=",
        b"n,,n=,r=abc",
        b"n,,m=ext,n=a,r=b",
        b"n,,n=a=ZZ,r=b",
        b"n,,n=a=2,r=b",
        b"n,x,n=a,r=b",
        b"q,,n=a,r=b",
        "n,,n=a,r=b\u{e9}".as_bytes(),
        "n,,n=a\u{7},r=b".as_bytes(),
    ] {
        assert_eq!(
            condition(start(Mechanism::ScramSha1, no_cb(), bad)),
            Condition::MalformedRequest,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// Iteration count and salt come from the stored keys of the mechanism's own hash.
#[test]
fn each_hash_uses_its_own_salt_and_iterations() {
    let creds = Credentials {
        sha1: Hash::Sha1.keys("pw", vec![1; 16], 4096),
        sha256: Hash::Sha256.keys("pw", vec![2; 16], 5000),
    };
    for (mech, expected) in [
        (
            Mechanism::ScramSha1,
            format!("s={},i=4096", B64.encode([1; 16])),
        ),
        (
            Mechanism::ScramSha256,
            format!("s={},i=5000", B64.encode([2; 16])),
        ),
    ] {
        let mut s = SaslServer::new(mech, no_cb());
        s.start(b"n,,n=alice,r=abc").unwrap();
        let Step::Challenge(c) = s.credentials(Some(&creds)).unwrap() else {
            panic!()
        };
        let c = String::from_utf8(c).unwrap();
        assert!(c.ends_with(&expected), "{c}");
        // Client nonce, then at least 24 random bytes of server nonce.
        let nonce = c.split(',').next().unwrap().strip_prefix("r=abc").unwrap();
        assert!(B64.decode(nonce).unwrap().len() >= 24, "{c}");
    }
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// A hand-made SCRAM-SHA-256 client (the `sasl` crate has no tls-server-end-point): answers
/// `server_first`, returning the client-final message and the expected server-final message.
fn sha256_client_final(
    password: &str,
    gs2_header: &str,
    cb_data: &[u8],
    client_first_bare: &str,
    server_first: &str,
    tamper: impl Fn(&str) -> String,
) -> (String, String) {
    let attr = |k: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(k))
            .unwrap()
            .to_string()
    };
    let salt = B64.decode(attr("s=")).unwrap();
    let iterations: u32 = attr("i=").parse().unwrap();
    let salted =
        pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password.as_bytes(), &salt, iterations);
    let client_key = hmac256(&salted, b"Client Key");
    let stored_key = sha2::Sha256::digest(&client_key);
    let mut cbind = gs2_header.as_bytes().to_vec();
    cbind.extend_from_slice(cb_data);
    let without_proof = tamper(&format!("c={},r={}", B64.encode(cbind), attr("r=")));
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac256(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_signature = hmac256(&hmac256(&salted, b"Server Key"), auth_message.as_bytes());
    (
        format!("{without_proof},p={}", B64.encode(proof)),
        format!("v={}", B64.encode(server_signature)),
    )
}

/// Runs SCRAM-SHA-256(-PLUS) with the hand-made client; `tamper` edits c=/r= before signing.
fn manual_exchange(
    mech: Mechanism,
    gs2_header: &str,
    cb_data: &[u8],
    tamper: impl Fn(&str) -> String,
) -> Result<Step, SaslFailure> {
    let creds = derive_credentials("secret", 4096).unwrap();
    let bare = "n=alice,r=0123456789abcdef";
    let mut server = SaslServer::new(mech, both_cb());
    server.start(format!("{gs2_header}{bare}").as_bytes())?;
    let Step::Challenge(c) = server.credentials(Some(&creds))? else {
        panic!()
    };
    let c = String::from_utf8(c).unwrap();
    let (client_final, v) = sha256_client_final("secret", gs2_header, cb_data, bare, &c, tamper);
    let step = server.step(client_final.as_bytes())?;
    assert_eq!(
        step,
        Step::Success {
            username: "alice".into(),
            additional: Some(v.into_bytes())
        }
    );
    Ok(step)
}

#[test]
fn tls_server_end_point_and_client_final_checks() {
    let same = |s: &str| s.to_string();
    let endpoint = "p=tls-server-end-point,,";
    manual_exchange(Mechanism::ScramSha256Plus, endpoint, &[9; 32], same).unwrap();
    manual_exchange(
        Mechanism::ScramSha256Plus,
        "p=tls-exporter,,",
        &[7; 32],
        same,
    )
    .unwrap();
    // Binding data of the other type, or altered.
    for data in [[7; 32], [10; 32]] {
        assert_eq!(
            condition(manual_exchange(
                Mechanism::ScramSha256Plus,
                endpoint,
                &data,
                same
            )),
            Condition::NotAuthorized
        );
    }
    // A correct proof over a nonce other than the combined one.
    assert_eq!(
        condition(manual_exchange(Mechanism::ScramSha256, "n,,", &[], |s| s
            .replace(",r=0123456789abcdef", ",r=0123456789abcdeX"))),
        Condition::NotAuthorized
    );
    // c= naming a GS2 header other than the one sent.
    assert_eq!(
        condition(manual_exchange(Mechanism::ScramSha256, "n,,", &[], |s| {
            s.replacen(&format!("c={}", B64.encode("n,,")), "c=eSws", 1)
        })),
        Condition::NotAuthorized
    );
    // Extensions after r= are allowed (and signed).
    manual_exchange(Mechanism::ScramSha256, "n,,", &[], |s| format!("{s},x=1")).unwrap();

    // Syntax of the client-final message.
    let creds = derive_credentials("secret", 4096).unwrap();
    let final_condition = |msg: &[u8]| {
        let mut s = SaslServer::new(Mechanism::ScramSha256, no_cb());
        s.start(b"n,,n=alice,r=abc").unwrap();
        s.credentials(Some(&creds)).unwrap();
        let err = s.step(msg).unwrap_err();
        assert_eq!(err.username.as_deref(), Some("alice"));
        err.condition
    };
    assert_eq!(
        final_condition(b"c=biws,r=abc,p=!!!"),
        Condition::IncorrectEncoding
    );
    assert_eq!(
        final_condition(b"c=%%,r=abc,p=AAAA"),
        Condition::IncorrectEncoding
    );
    assert_eq!(final_condition(b"\xff"), Condition::IncorrectEncoding);
    for bad in [
        &b"c=biws,r=abc"[..],
        b"r=abc,c=biws,p=AAAA",
        b"c=biws,p=AAAA",
        b"",
    ] {
        assert_eq!(final_condition(bad), Condition::MalformedRequest);
    }
    // Wrong-length proof.
    assert_eq!(
        final_condition(b"c=biws,r=abc,p=AAAA"),
        Condition::NotAuthorized
    );
}

#[test]
fn unknown_user_fails_only_at_the_proof() {
    let salt_of = |name: &str| {
        let mut s = SaslServer::new(Mechanism::ScramSha256, no_cb());
        s.start(format!("n,,n={name},r=zzz").as_bytes()).unwrap();
        let Step::Challenge(c) = s.credentials(None).unwrap() else {
            panic!()
        };
        let c = String::from_utf8(c).unwrap();
        let salt = c.split(',').nth(1).unwrap().strip_prefix("s=").unwrap();
        B64.decode(salt).unwrap()
    };
    // Like a real account: a 16-byte salt, stable per name.
    assert_eq!(salt_of("ghost").len(), 16);
    assert_eq!(salt_of("ghost"), salt_of("ghost"));
    assert_ne!(salt_of("ghost"), salt_of("phantom"));

    let mut server = SaslServer::new(Mechanism::ScramSha256, no_cb());
    let client_creds = ClientCredentials::default()
        .with_username("ghost")
        .with_password("x")
        .with_channel_binding(ChannelBinding::None);
    let mut client = Scram::<Sha256>::from_credentials(client_creds).unwrap();
    assert!(matches!(
        server.start(&client.initial()),
        Ok(Step::NeedCredentials { .. })
    ));
    let Step::Challenge(c1) = server.credentials(None).unwrap() else {
        panic!()
    };
    let response = client.response(&c1).unwrap();
    let err = server.step(&response).unwrap_err();
    assert_eq!(err.condition, Condition::NotAuthorized);
    assert_eq!(err.text, Some("wrong username or password"));
    assert_eq!(err.username.as_deref(), Some("ghost"));
}

#[test]
fn plain() {
    let creds = derive_credentials("pässword", 4096).unwrap();
    let plain = |msg: &[u8], creds: Option<&Credentials>| {
        let mut s = SaslServer::new(Mechanism::Plain, no_cb());
        let Step::NeedCredentials { username } = s.start(msg)? else {
            panic!()
        };
        assert_eq!(username, "alice");
        s.credentials(creds)
    };
    let success = Step::Success {
        username: "alice".into(),
        additional: None,
    };
    assert_eq!(
        plain("\0alice\0pässword".as_bytes(), Some(&creds)).unwrap(),
        success
    );
    // authzid naming the account itself; SASLprep of name and password.
    assert_eq!(
        plain(
            "alice@example.com\0al\u{ad}ice\0pä\u{ad}ssword".as_bytes(),
            Some(&creds)
        )
        .unwrap(),
        success
    );
    let wrong = plain(b"\0alice\0wrong", Some(&creds)).unwrap_err();
    assert_eq!(wrong.condition, Condition::NotAuthorized);
    assert_eq!(wrong.username.as_deref(), Some("alice"));
    // Unknown account: the same answer.
    assert_eq!(
        plain(b"\0alice\0x", None).unwrap_err().text,
        Some("wrong username or password")
    );
    // No initial response: the credentials come in the next response.
    let mut s = SaslServer::new(Mechanism::Plain, no_cb());
    assert_eq!(s.start(b"").unwrap(), Step::Challenge(Vec::new()));
    s.step("\0alice\0pässword".as_bytes()).unwrap();
    assert_eq!(s.credentials(Some(&creds)).unwrap(), success);
    // An empty response to the empty challenge is not a way to loop.
    let mut s = SaslServer::new(Mechanism::Plain, no_cb());
    s.start(b"").unwrap();
    assert!(s.step(b"").is_err());

    let start = |msg: &[u8]| SaslServer::new(Mechanism::Plain, no_cb()).start(msg);
    assert_eq!(condition(start(b"\0alice\0")), Condition::NotAuthorized);
    // Maps to nothing under SASLprep: still empty.
    assert_eq!(
        condition(start("\0alice\0\u{ad}".as_bytes())),
        Condition::NotAuthorized
    );
    assert_eq!(
        condition(start(b"bob\0alice\0pw")),
        Condition::InvalidAuthzid
    );
    assert_eq!(
        condition(start(b"\0alice\0\xff")),
        Condition::IncorrectEncoding
    );
    for bad in [
        &b"\0\0pw"[..],
        b"only",
        b"a\0b",
        b"a\0b\0c\0d",
        b"\0al\x07ice\0pw",
    ] {
        assert_eq!(
            condition(start(bad)),
            Condition::MalformedRequest,
            "{bad:?}"
        );
    }
    // Out-of-order calls.
    let mut s = SaslServer::new(Mechanism::Plain, no_cb());
    assert!(s.credentials(Some(&creds)).is_err());
    let mut s = SaslServer::new(Mechanism::Plain, no_cb());
    s.start(b"\0alice\0pw").unwrap();
    assert!(s.start(b"\0alice\0pw").is_err());
}

fn stored(allow_plain: bool) -> PasswordCheck {
    PasswordCheck::Stored { allow_plain }
}

#[test]
fn offered_mechanisms_and_binding_names() {
    assert_eq!(
        offered_mechanisms(&no_cb(), stored(false)),
        vec![Mechanism::ScramSha256, Mechanism::ScramSha1]
    );
    assert_eq!(
        offered_mechanisms(&both_cb(), stored(true)),
        vec![
            Mechanism::ScramSha256Plus,
            Mechanism::ScramSha1Plus,
            Mechanism::ScramSha256,
            Mechanism::ScramSha1,
            Mechanism::Plain
        ]
    );
    assert_eq!(
        both_cb().type_names(),
        vec!["tls-exporter", "tls-server-end-point"]
    );
    let endpoint_only = ChannelBindings {
        tls_exporter: None,
        tls_server_end_point: Some(vec![1]),
    };
    assert_eq!(endpoint_only.type_names(), vec!["tls-server-end-point"]);
    assert_eq!(
        offered_mechanisms(&endpoint_only, stored(false))[0],
        Mechanism::ScramSha256Plus
    );
    assert!(no_cb().type_names().is_empty());
    for m in offered_mechanisms(&both_cb(), stored(true)) {
        assert_eq!(Mechanism::from_name(m.name()), Some(m));
    }
    // A directory needs the password itself, channel binding or not.
    assert_eq!(
        offered_mechanisms(&both_cb(), PasswordCheck::Directory),
        vec![Mechanism::Plain]
    );
    assert_eq!(Mechanism::from_name("scram-sha-1"), None);
    assert_eq!(Mechanism::from_name("DIGEST-MD5"), None);
    assert_eq!(Condition::NotAuthorized.element_name(), "not-authorized");
    assert_eq!(
        Condition::TemporaryAuthFailure.element_name(),
        "temporary-auth-failure"
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn throttle_counts_failures_per_ip_and_account() {
    let t = Throttle::new(3, 2, Duration::from_secs(60));
    let a = ip("192.0.2.1");
    let b = ip("192.0.2.2");
    assert!(t.check(a, Some("alice")));
    t.record_failure(a, Some("alice"));
    t.record_failure(b, Some("Alice"));
    assert!(
        !t.check(a, Some("alice")),
        "account limit, across addresses"
    );
    assert!(!t.check(ip("198.51.100.1"), Some("ALICE")), "any case");
    assert!(t.check(a, Some("bob")));
    assert!(t.check(a, None));
    t.record_failure(a, Some("bob"));
    t.record_failure(a, None);
    assert!(!t.check(a, None), "address limit reached");
    assert!(!t.check(a, Some("carol")));
    assert!(t.check(b, Some("bob")));
    // Success clears the account, not the address.
    t.record_success("alice");
    assert!(t.check(b, Some("alice")));
    assert!(!t.check(a, None));

    let unlimited = Throttle::new(0, 0, Duration::from_secs(60));
    for _ in 0..10 {
        unlimited.record_failure(a, Some("x"));
    }
    assert!(unlimited.check(a, Some("x")));

    let short = Throttle::new(1, 1, Duration::from_millis(1));
    short.record_failure(a, Some("x"));
    std::thread::sleep(Duration::from_millis(5));
    assert!(short.check(a, Some("x")), "window expired");
}

#[test]
fn throttle_groups_addresses() {
    let t = Throttle::new(2, 0, Duration::from_secs(60));
    // One IPv6 /64 is one host.
    t.record_failure(ip("2001:db8:1:2::1"), None);
    t.record_failure(ip("2001:db8:1:2:ffff::9"), None);
    assert!(!t.check(ip("2001:db8:1:2::abcd"), None));
    assert!(t.check(ip("2001:db8:1:3::1"), None));
    // IPv4-mapped IPv6 is the IPv4 address.
    t.record_failure(ip("::ffff:192.0.2.7"), None);
    t.record_failure(ip("192.0.2.7"), None);
    assert!(!t.check(ip("192.0.2.7"), None));
    assert!(!t.check(ip("::ffff:192.0.2.7"), None));
}

#[test]
fn throttle_memory_is_bounded_and_keeps_heavy_hitters() {
    let t = Throttle::small(5, 5, 100);
    let target = ip("192.0.2.1");
    for _ in 0..5 {
        t.record_failure(target, Some("alice"));
    }
    // A flood of distinct addresses and names, one failure each.
    for i in 0..1000u32 {
        let ip = IpAddr::V4((0x0a00_0000 + i).into());
        t.record_failure(ip, Some(&format!("user{i}")));
        let (ips, accounts) = t.tracked();
        assert!(ips <= 100 && accounts <= 100);
    }
    assert!(
        !t.check(target, None),
        "the attacking address stays throttled"
    );
    assert!(
        !t.check(ip("192.0.2.9"), Some("alice")),
        "and the attacked account"
    );
}

#[test]
fn throttle_is_shared_across_threads() {
    let t = Throttle::new(1000, 0, Duration::from_secs(60));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..250 {
                    t.record_failure(ip("192.0.2.1"), Some("alice"));
                }
            });
        }
    });
    assert!(!t.check(ip("192.0.2.1"), None));
}
