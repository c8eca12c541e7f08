use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sasl::client::Mechanism as _;
use sasl::client::mechanisms::Scram;
use sasl::common::scram::{ScramProvider, Sha1, Sha256};
use sasl::common::{ChannelBinding, Credentials as ClientCredentials};

use super::*;
use crate::scram::{ClientFirst, Hash};

fn creds_with_salt(hash: Hash, password: &str, salt_b64: &str) -> Credentials {
    // Both slots hold the hash-under-test's keys with the RFC's salt and 4096 iterations.
    let keys = hash.keys(password, B64.decode(salt_b64).unwrap(), 4096);
    Credentials {
        sha1: keys.clone(),
        sha256: keys,
    }
}

/// RFC 5802 §5 and RFC 7677 §3: the exact exchange for user/pencil.
#[test]
fn rfc_test_vectors() {
    let cases = [
        (
            Hash::Sha1,
            "QSXCR+Q6sek8bf92",
            "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
            "3rfcNHYJY1ZVvWVs7j",
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
            "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        ),
        (
            Hash::Sha256,
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
        ),
    ];
    for (hash, salt, client_first, server_nonce, client_final, server_final) in cases {
        let creds = creds_with_salt(hash, "pencil", salt);
        let first =
            ClientFirst::parse(client_first, hash, false, &ChannelBindings::default()).unwrap();
        assert_eq!(first.username, "user");
        let (server_first, challenge) = first.answer_with_nonce(Some(&creds), server_nonce);
        let challenge = String::from_utf8(challenge).unwrap();
        assert!(
            challenge.contains(&format!("s={salt},i=4096")),
            "{challenge}"
        );
        let (user, v) = server_first.verify(client_final).unwrap();
        assert_eq!(user, "user");
        assert_eq!(String::from_utf8(v).unwrap(), server_final);
    }
}

/// Runs a whole exchange between `SaslServer` and the `sasl` crate's client.
fn exchange<S: ScramProvider>(
    mech: Mechanism,
    server_cb: ChannelBindings,
    client_cb: ChannelBinding,
    stored: &str,
    tried: &str,
) -> Result<String, SaslFailure> {
    let creds = derive_credentials(stored, 4096).unwrap();
    let client_creds = ClientCredentials::default()
        .with_username("alice")
        .with_password(tried)
        .with_channel_binding(client_cb);
    let mut client = Scram::<S>::from_credentials(client_creds).unwrap();
    let mut server = SaslServer::new(mech, server_cb);
    let Step::NeedCredentials { username } = server.start(&client.initial())? else {
        panic!("expected NeedCredentials")
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
            Ok(username)
        }
        other => panic!("{other:?}"),
    }
}

fn exporter_cb() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(vec![7; 32]),
        tls_server_end_point: Some(vec![9; 32]),
    }
}

#[test]
fn end_to_end_with_the_sasl_crate_client() {
    assert_eq!(
        exchange::<Sha1>(
            Mechanism::ScramSha1,
            ChannelBindings::default(),
            ChannelBinding::None,
            "secret",
            "secret"
        )
        .unwrap(),
        "alice"
    );
    assert_eq!(
        exchange::<Sha256>(
            Mechanism::ScramSha256,
            ChannelBindings::default(),
            ChannelBinding::None,
            "secret",
            "secret"
        )
        .unwrap(),
        "alice"
    );
    assert_eq!(
        exchange::<Sha256>(
            Mechanism::ScramSha256Plus,
            exporter_cb(),
            ChannelBinding::TlsExporter(vec![7; 32]),
            "secret",
            "secret"
        )
        .unwrap(),
        "alice"
    );
    assert_eq!(
        exchange::<Sha1>(
            Mechanism::ScramSha1Plus,
            exporter_cb(),
            ChannelBinding::TlsExporter(vec![7; 32]),
            "secret",
            "secret"
        )
        .unwrap(),
        "alice"
    );
}

#[test]
fn failures() {
    let wrong = exchange::<Sha256>(
        Mechanism::ScramSha256,
        ChannelBindings::default(),
        ChannelBinding::None,
        "secret",
        "guess",
    )
    .unwrap_err();
    assert_eq!(wrong.condition, Condition::NotAuthorized);
    assert_eq!(wrong.username.as_deref(), Some("alice"));
    // Tampered channel-binding data.
    let tampered = exchange::<Sha256>(
        Mechanism::ScramSha256Plus,
        exporter_cb(),
        ChannelBinding::TlsExporter(vec![8; 32]),
        "secret",
        "secret",
    );
    assert_eq!(tampered.unwrap_err().condition, Condition::NotAuthorized);
    // 'y' while the server offers -PLUS: downgrade.
    let downgrade = exchange::<Sha256>(
        Mechanism::ScramSha256,
        exporter_cb(),
        ChannelBinding::Unsupported,
        "secret",
        "secret",
    );
    assert_eq!(downgrade.unwrap_err().condition, Condition::NotAuthorized);
    // 'y' without any binding available is fine.
    assert!(
        exchange::<Sha256>(
            Mechanism::ScramSha256,
            ChannelBindings::default(),
            ChannelBinding::Unsupported,
            "secret",
            "secret"
        )
        .is_ok()
    );
    // Binding requested with a non-PLUS mechanism.
    let mut s = SaslServer::new(Mechanism::ScramSha256, exporter_cb());
    assert!(s.start(b"p=tls-exporter,,n=alice,r=abc").is_err());
    // -PLUS without binding.
    let mut s = SaslServer::new(Mechanism::ScramSha256Plus, exporter_cb());
    assert!(s.start(b"n,,n=alice,r=abc").is_err());
    // Unknown binding type.
    let mut s = SaslServer::new(Mechanism::ScramSha256Plus, exporter_cb());
    assert!(s.start(b"p=tls-unique,,n=alice,r=abc").is_err());
    // authzid for someone else.
    let mut s = SaslServer::new(Mechanism::ScramSha256, ChannelBindings::default());
    assert_eq!(
        s.start(b"n,a=bob@example.com,n=alice,r=abc")
            .unwrap_err()
            .condition,
        Condition::InvalidAuthzid
    );
    // Malformed.
    for bad in [
        &b"garbage"[..],
        b"n,,r=abc",
        b"n,,n=alice",
        b"n,,m=ext,n=a,r=b",
        b"n,,n=a=ZZ,r=b",
        b"\xff\xfe",
    ] {
        let mut s = SaslServer::new(Mechanism::ScramSha1, ChannelBindings::default());
        assert!(s.start(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn unknown_user_fails_only_at_the_proof() {
    let mut server = SaslServer::new(Mechanism::ScramSha256, ChannelBindings::default());
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
    // The salt for a given unknown name is stable, like a real account's.
    let mut again = SaslServer::new(Mechanism::ScramSha256, ChannelBindings::default());
    again.start(b"n,,n=ghost,r=zzz").unwrap();
    let Step::Challenge(c2) = again.credentials(None).unwrap() else {
        panic!()
    };
    let salt = |c: &[u8]| {
        String::from_utf8_lossy(c)
            .split(',')
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(salt(&c1), salt(&c2));
    let response = client.response(&c1).unwrap();
    assert_eq!(
        server.step(&response).unwrap_err().condition,
        Condition::NotAuthorized
    );
}

#[test]
fn plain() {
    let creds = derive_credentials("pässword", 4096).unwrap();
    let mut s = SaslServer::new(Mechanism::Plain, ChannelBindings::default());
    assert_eq!(
        s.start(b"\0alice\0p\xc3\xa4ssword").unwrap(),
        Step::NeedCredentials {
            username: "alice".into()
        }
    );
    assert_eq!(
        s.credentials(Some(&creds)).unwrap(),
        Step::Success {
            username: "alice".into(),
            additional: None
        }
    );
    let mut s = SaslServer::new(Mechanism::Plain, ChannelBindings::default());
    s.start(b"\0alice\0wrong").unwrap();
    assert_eq!(
        s.credentials(Some(&creds)).unwrap_err().condition,
        Condition::NotAuthorized
    );
    let mut s = SaslServer::new(Mechanism::Plain, ChannelBindings::default());
    s.start(b"\0alice\0x").unwrap();
    assert_eq!(
        s.credentials(None).unwrap_err().condition,
        Condition::NotAuthorized
    );
    for bad in [&b"\0alice\0"[..], b"\0\0pw", b"only", b"a\0b\0c\0d"] {
        let mut s = SaslServer::new(Mechanism::Plain, ChannelBindings::default());
        assert!(s.start(bad).is_err(), "{bad:?}");
    }
    let mut s = SaslServer::new(Mechanism::Plain, ChannelBindings::default());
    assert_eq!(
        s.start(b"bob\0alice\0pw").unwrap_err().condition,
        Condition::InvalidAuthzid
    );
    assert!(verify_plain(&creds, "pässword"));
    assert!(!verify_plain(&creds, "password"));
}

#[test]
fn offered_mechanisms_and_binding_names() {
    let none = offered_mechanisms(&ChannelBindings::default(), false);
    assert_eq!(none, vec![Mechanism::ScramSha256, Mechanism::ScramSha1]);
    let all = offered_mechanisms(&exporter_cb(), true);
    assert_eq!(all.first(), Some(&Mechanism::ScramSha256Plus));
    assert_eq!(all.last(), Some(&Mechanism::Plain));
    assert_eq!(
        exporter_cb().type_names(),
        vec!["tls-exporter", "tls-server-end-point"]
    );
    for m in all {
        assert_eq!(Mechanism::from_name(m.name()), Some(m));
    }
}

#[test]
fn throttle_counts_failures_per_ip_and_account() {
    let t = Throttle::new(3, 2, std::time::Duration::from_secs(60));
    let ip: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let other: std::net::IpAddr = "192.0.2.2".parse().unwrap();
    assert!(t.check(ip, Some("alice")));
    t.record_failure(ip, Some("alice"));
    t.record_failure(other, Some("alice"));
    assert!(!t.check(ip, Some("alice")), "account limit reached");
    assert!(t.check(ip, Some("bob")));
    t.record_failure(ip, Some("bob"));
    t.record_failure(ip, None);
    assert!(!t.check(ip, None), "address limit reached");
    assert!(t.check(other, Some("bob")));
    t.record_success("alice");
    assert!(t.check(other, Some("alice")));
    let unlimited = Throttle::new(0, 0, std::time::Duration::from_secs(60));
    for _ in 0..10 {
        unlimited.record_failure(ip, Some("a"));
    }
    assert!(unlimited.check(ip, Some("a")));
    let short = Throttle::new(1, 0, std::time::Duration::from_millis(1));
    short.record_failure(ip, None);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert!(short.check(ip, None), "window expired");
}
