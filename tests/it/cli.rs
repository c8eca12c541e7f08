//! The `hearth` command line: account management and `hearth check`.

use crate::harness::*;

#[tokio::test]
async fn user_add_list_passwd_del() {
    let server = TestServer::start();
    let (ok, out) = server.cli(&["user", "add", "Alice"], "first password\n");
    assert!(ok, "{out}");
    let (ok, out) = server.cli(&["user", "add", "alice"], "again\n");
    assert!(!ok && out.contains("already exists"), "{out}");
    let (ok, out) = server.cli(
        &["user", "add", "--stdin"],
        "bob pass-bob\ncarol pass-carol\nalice dup\n",
    );
    assert!(ok && out.contains("created 2 of 3"), "{out}");
    let (ok, out) = server.cli(&["user", "list"], "");
    assert!(
        ok && out.contains("alice@localhost")
            && out.contains("bob@localhost")
            && out.contains("carol@localhost"),
        "{out}"
    );
    // Passwords are stored as SCRAM keys only.
    let db = std::fs::read(server.dir.path().join("data/hearth.sqlite")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("first password"));
    let (ok, out) = server.cli(&["user", "passwd", "alice"], "second password\n");
    assert!(ok, "{out}");
    let mut c = Raw::connect(server.addr).await;
    c.open().await;
    c.starttls(&server.tls_connector()).await;
    assert!(
        c.plain_auth("alice", "first password")
            .await
            .contains("<not-authorized/>")
    );
    assert!(
        c.plain_auth("alice", "second password")
            .await
            .contains("<success")
    );
    let (ok, out) = server.cli(&["user", "del", "bob"], "");
    assert!(ok, "{out}");
    let (ok, out) = server.cli(&["user", "del", "bob"], "");
    assert!(!ok && out.contains("no such account"), "{out}");
    let (ok, out) = server.cli(&["user", "add", "bad user"], "x\n");
    assert!(!ok && out.contains("not a valid username"), "{out}");
}

#[test]
fn check_reports_on_config_certificate_and_dns() {
    let server = TestServer::start();
    let (ok, out) = server.cli(&["check"], "");
    assert!(ok, "check of a working setup must pass: {out}");
    assert!(out.contains("self-signed"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "domain = \"example.com\"\n[c2s]\nmax_stanza = 1\n").unwrap();
    let (ok, out) = run_cli(&bad, &["check"], "");
    assert!(!ok && out.contains("max_stanza"), "{out}");
    let missing = dir.path().join("missing.toml");
    std::fs::write(&missing, format!("domain = \"example.com\"\ndata_dir = \"{}\"\n[tls]\ncertificate = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n", dir.path().display())).unwrap();
    let (ok, out) = run_cli(&missing, &["check"], "");
    assert!(!ok && out.contains("/nonexistent/cert.pem"), "{out}");
}

#[test]
fn example_config_parses() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/hearth.toml");
    let (_, out) = run_cli(std::path::Path::new(example), &["xeps"], "");
    assert!(
        out.contains("XEP-0160"),
        "the annotated example config must load with every module: {out}"
    );
}

#[test]
fn xeps_listing_matches_committed_doap() {
    let (ok, doap) = run_cli(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/hearth.toml")),
        &["xeps", "--doap"],
        "",
    );
    assert!(ok, "{doap}");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/xeps/hearth.doap")).unwrap();
    assert_eq!(
        doap, committed,
        "xeps/hearth.doap is stale: run `cargo run -- --config config/hearth.toml xeps --doap > xeps/hearth.doap`"
    );
}

/// A module's port already in use stops startup with the setting's name, like the server's
/// own ports, instead of running without the service.
#[test]
fn a_modules_port_in_use_stops_startup() {
    let ip = "127.0.0.90";
    let taken = std::net::TcpListener::bind((ip, 0)).unwrap();
    let busy = taken.local_addr().unwrap();
    let [c2s, tls, s2s, https, internal] = free_ports(ip);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(
        &config,
        format!(
            "domain = \"localhost\"\ndata_dir = \"{}\"\n[c2s]\nlisten = [\"{ip}:{c2s}\"]\ndirect_tls_listen = [\"{ip}:{tls}\"]\n[s2s]\nlisten = [\"{ip}:{s2s}\"]\n[http]\nlisten = [\"{ip}:{https}\"]\ninternal_listen = [\"{ip}:{internal}\"]\n[modules.proxy65]\nlisten = [\"{busy}\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let (ok, out) = run_cli(&config, &["serve"], "");
    assert!(!ok && out.contains("modules.proxy65.listen"), "{out}");
    assert!(out.contains(&format!("cannot listen on {busy}")), "{out}");
}
