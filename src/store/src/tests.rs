//! Tests of the public API, on a temporary database. They go through `Store` only, so they can
//! run against every backend.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;

fn keys(n: u8) -> Credentials {
    let k = |len| ScramKeys {
        salt: vec![n; 16],
        iterations: 4096 + u32::from(n),
        stored_key: vec![n; len],
        server_key: vec![n.wrapping_add(1); len],
    };
    Credentials {
        sha1: k(20),
        sha256: k(32),
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    // A missing directory is created.
    Store::open(
        &dir.path().join("data/hearth.sqlite"),
        StoreOptions::default(),
    )
    .unwrap()
}

async fn with_user(dir: &tempfile::TempDir, username: &str) -> Store {
    let s = open(dir);
    s.create_account(username, &keys(1)).await.unwrap();
    s
}

fn item(contact: &str) -> RosterItem {
    RosterItem {
        contact: contact.into(),
        name: Some("Bob".into()),
        subscription: Subscription::Both,
        ask: false,
        approved: false,
        groups: vec!["Friends".into(), "Work & Play".into()],
    }
}

#[test]
fn store_is_a_shareable_handle() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<Store>();
}

#[tokio::test]
async fn accounts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.create_account("alice", &keys(1)).await.unwrap();
    assert!(matches!(
        s.create_account("alice", &keys(2)).await,
        Err(StoreError::AccountExists)
    ));
    assert_eq!(s.credentials("alice").await.unwrap(), Some(keys(1)));
    assert!(s.account_exists("alice").await.unwrap());
    assert!(!s.account_exists("bob").await.unwrap());
    assert_eq!(s.credentials("bob").await.unwrap(), None);

    s.set_credentials("alice", &keys(3)).await.unwrap();
    assert_eq!(s.credentials("alice").await.unwrap(), Some(keys(3)));
    assert!(matches!(
        s.set_credentials("bob", &keys(3)).await,
        Err(StoreError::NoSuchAccount)
    ));

    let bulk: Vec<_> = ["dave", "alice", "carol"]
        .iter()
        .map(|u| (u.to_string(), keys(4)))
        .collect();
    assert_eq!(s.create_accounts(&bulk).await.unwrap(), 2, "alice exists");
    assert_eq!(s.credentials("alice").await.unwrap(), Some(keys(3)));
    assert_eq!(s.list_accounts().await.unwrap(), ["alice", "carol", "dave"]);

    s.delete_account("carol").await.unwrap();
    assert!(!s.account_exists("carol").await.unwrap());
    assert!(matches!(
        s.delete_account("carol").await,
        Err(StoreError::NoSuchAccount)
    ));
    assert_eq!(s.list_accounts().await.unwrap(), ["alice", "dave"]);
    assert_eq!(s.count_accounts().await.unwrap(), 2);
}

#[tokio::test]
async fn disabled_accounts_keep_their_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    assert!(!s.is_disabled("alice").await.unwrap());
    s.set_disabled("alice", true).await.unwrap();
    assert!(s.is_disabled("alice").await.unwrap());
    assert!(s.credentials("alice").await.unwrap().is_some());
    s.set_disabled("alice", false).await.unwrap();
    assert!(!s.is_disabled("alice").await.unwrap());
    assert!(!s.is_disabled("bob").await.unwrap());
    assert!(matches!(
        s.set_disabled("bob", true).await,
        Err(StoreError::NoSuchAccount)
    ));
}

#[tokio::test]
async fn server_settings() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    assert_eq!(s.setting("motd").await.unwrap(), None);
    s.set_setting("motd", Some("hello")).await.unwrap();
    s.set_setting("motd", Some("hello again")).await.unwrap();
    assert_eq!(
        s.setting("motd").await.unwrap().as_deref(),
        Some("hello again")
    );
    s.set_setting("motd", None).await.unwrap();
    assert_eq!(s.setting("motd").await.unwrap(), None);
}

#[tokio::test]
async fn invitations_are_used_up_revoked_and_swept() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let invitation = |token: &str, uses: u32| Invitation {
        token: token.into(),
        creator: "alice@example.org".into(),
        inviter: Some("alice".into()),
        username: None,
        reset: false,
        created: now,
        expires: now + Duration::from_secs(3600),
        max_uses: uses,
        uses_left: uses,
        revoked: false,
        note: Some("for Bob".into()),
    };
    s.invitation_create(&invitation("two", 2)).await.unwrap();
    assert!(matches!(
        s.invitation_create(&Invitation {
            inviter: Some("nobody".into()),
            ..invitation("orphan", 1)
        })
        .await,
        Err(StoreError::NoSuchAccount)
    ));
    assert_eq!(
        s.invitation("two").await.unwrap().unwrap(),
        invitation("two", 2)
    );
    assert!(s.invitation_take_use("two", now).await.unwrap());
    assert!(s.invitation_take_use("two", now).await.unwrap());
    assert!(!s.invitation_take_use("two", now).await.unwrap(), "used up");
    s.invitation_give_back_use("two").await.unwrap();
    s.invitation_give_back_use("two").await.unwrap();
    s.invitation_give_back_use("two").await.unwrap();
    assert_eq!(s.invitation("two").await.unwrap().unwrap().uses_left, 2);
    let later = now + Duration::from_secs(3600);
    assert!(
        !s.invitation_take_use("two", later).await.unwrap(),
        "expired"
    );

    let named = Invitation {
        username: Some("bob".into()),
        ..invitation("named", 1)
    };
    s.invitation_create(&named).await.unwrap();
    assert_eq!(
        s.invitation_reserving("bob", now).await.unwrap().as_deref(),
        Some("named")
    );
    assert!(s.invitation_revoke("named").await.unwrap());
    assert!(!s.invitation_revoke("missing").await.unwrap());
    assert!(s.invitation("named").await.unwrap().unwrap().revoked);
    assert_eq!(s.invitation_reserving("bob", now).await.unwrap(), None);
    assert!(!s.invitation_take_use("named", now).await.unwrap());

    assert_eq!(s.invitations().await.unwrap().len(), 2);
    assert_eq!(s.invitations_expire(later).await.unwrap(), 2);
    assert!(s.invitations().await.unwrap().is_empty());
    // An inviter's invitations go with their account.
    s.invitation_create(&invitation("gone", 1)).await.unwrap();
    s.delete_account("alice").await.unwrap();
    assert_eq!(s.invitation("gone").await.unwrap(), None);
}

#[tokio::test]
async fn data_of_a_missing_account_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    assert!(matches!(
        s.roster_put("ghost", &item("x@y")).await,
        Err(StoreError::NoSuchAccount)
    ));
    assert!(matches!(
        s.pending_in_put("ghost", "x@y", "<presence/>").await,
        Err(StoreError::NoSuchAccount)
    ));
    assert!(matches!(
        s.offline_push("ghost", "<message/>", 10).await,
        Err(StoreError::NoSuchAccount)
    ));
    assert_eq!(s.roster("ghost").await.unwrap(), (0, vec![]));
    assert_eq!(s.offline_count("ghost").await.unwrap(), 0);
}

#[test]
fn subscription_names() {
    use std::str::FromStr;
    for s in [
        Subscription::None,
        Subscription::To,
        Subscription::From,
        Subscription::Both,
    ] {
        assert_eq!(Subscription::from_str(s.as_str()).unwrap(), s);
    }
    assert!("remove".parse::<Subscription>().is_err());
}

#[tokio::test]
async fn roster_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    assert_eq!(s.roster("alice").await.unwrap(), (0, vec![]));
    assert_eq!(s.roster_version("alice").await.unwrap(), 0);

    let carol = RosterItem {
        name: None,
        subscription: Subscription::None,
        ask: true,
        approved: true,
        groups: vec![],
        ..item("carol@example.com")
    };
    let v1 = s
        .roster_put("alice", &item("bob@example.com"))
        .await
        .unwrap();
    let v2 = s.roster_put("alice", &carol).await.unwrap();
    assert!(v1 > 0 && v2 > v1);
    assert_eq!(
        s.roster("alice").await.unwrap(),
        (v2, vec![item("bob@example.com"), carol.clone()])
    );
    assert_eq!(
        s.roster_item("alice", "carol@example.com").await.unwrap(),
        Some(carol)
    );
    assert_eq!(
        s.roster_item("alice", "nobody@example.com").await.unwrap(),
        None
    );
    assert_eq!(s.roster_count("alice").await.unwrap(), 2);

    // Replacing an item bumps the version too.
    let bob = RosterItem {
        subscription: Subscription::To,
        groups: vec!["Solo".into()],
        ..item("bob@example.com")
    };
    let v3 = s.roster_put("alice", &bob).await.unwrap();
    assert!(v3 > v2);
    assert_eq!(
        s.roster_item("alice", "bob@example.com").await.unwrap(),
        Some(bob)
    );
    assert_eq!(s.roster_count("alice").await.unwrap(), 2);

    assert_eq!(
        s.roster_remove("alice", "nobody@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.roster_version("alice").await.unwrap(), v3, "unchanged");
    let v4 = s
        .roster_remove("alice", "bob@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(v4 > v3);
    assert_eq!(s.roster_version("alice").await.unwrap(), v4);
    assert_eq!(s.roster_count("alice").await.unwrap(), 1);
}

#[tokio::test]
async fn pending_subscription_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    assert!(s.pending_in_list("alice").await.unwrap().is_empty());
    let first = "<presence type='subscribe' id='1'/>";
    let again = "<presence type='subscribe' id='2'/>";
    // Kept though eve is not in the roster; a second request replaces the first.
    s.pending_in_put("alice", "eve@example.com", first)
        .await
        .unwrap();
    s.pending_in_put("alice", "eve@example.com", again)
        .await
        .unwrap();
    s.pending_in_put("alice", "dan@example.com", first)
        .await
        .unwrap();
    assert_eq!(
        s.pending_in_list("alice").await.unwrap(),
        [
            ("dan@example.com".to_string(), first.to_string()),
            ("eve@example.com".to_string(), again.to_string())
        ]
    );
    assert!(
        s.pending_in_remove("alice", "eve@example.com")
            .await
            .unwrap()
    );
    assert!(
        !s.pending_in_remove("alice", "eve@example.com")
            .await
            .unwrap()
    );
    assert_eq!(s.pending_in_list("alice").await.unwrap().len(), 1);
}

#[tokio::test]
async fn offline_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "bob").await;
    let before = SystemTime::now() - Duration::from_secs(1);
    for i in 0..5 {
        assert!(
            s.offline_push("bob", &format!("<message id='{i}'/>"), 10)
                .await
                .unwrap()
        );
    }
    let list = s.offline_list("bob").await.unwrap();
    assert_eq!(list.len(), 5);
    assert!(list.windows(2).all(|w| w[0].id < w[1].id));
    for (i, m) in list.iter().enumerate() {
        assert_eq!(m.stanza_xml, format!("<message id='{i}'/>"), "oldest first");
        assert!(m.stamp >= before && m.stamp <= SystemTime::now());
    }
    // Delivered up to the third; one more arrived meanwhile: only the delivered ones go.
    s.offline_push("bob", "<message id='late'/>", 10)
        .await
        .unwrap();
    assert_eq!(s.offline_remove("bob", list[2].id).await.unwrap(), 3);
    let left = s.offline_list("bob").await.unwrap();
    assert_eq!(left.len(), 3);
    assert_eq!(left[0].id, list[3].id);
    assert_eq!(left[2].stanza_xml, "<message id='late'/>");
    assert_eq!(s.offline_count("bob").await.unwrap(), 3);
    assert_eq!(s.offline_remove("bob", list[2].id).await.unwrap(), 0);
    assert_eq!(s.offline_remove("bob", i64::MAX).await.unwrap(), 3);
    // Ids are never reused, so an old `up_to_id` cannot remove a newer message.
    s.offline_push("bob", "<message/>", 10).await.unwrap();
    assert!(s.offline_list("bob").await.unwrap()[0].id > left[2].id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_limit_is_exact_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "bob").await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.offline_push("bob", &format!("<message id='{i}'/>"), 150)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut stored = 0;
    for t in tasks {
        stored += usize::from(t.await.unwrap());
    }
    assert_eq!(stored, 150);
    assert_eq!(s.offline_count("bob").await.unwrap(), 150);
    assert!(!s.offline_push("bob", "<message/>", 150).await.unwrap());
    assert!(!s.offline_push("bob", "<message/>", 0).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_all_land_and_a_failure_spoils_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    let tasks: Vec<_> = (0..220)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                if i % 11 == 0 {
                    // Fails inside the same batches as the pushes around it.
                    matches!(
                        s.create_account("alice", &keys(2)).await,
                        Err(StoreError::AccountExists)
                    )
                } else {
                    s.offline_push("alice", &format!("<message id='{i}'/>"), 1000)
                        .await
                        .unwrap()
                }
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(s.offline_count("alice").await.unwrap(), 200);
    assert_eq!(s.credentials("alice").await.unwrap(), Some(keys(1)));
}

#[tokio::test]
async fn deleting_an_account_erases_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    s.create_account("bob", &keys(2)).await.unwrap();
    for user in ["alice", "bob"] {
        s.roster_put(user, &item("carol@example.com"))
            .await
            .unwrap();
        s.pending_in_put(user, "eve@example.com", "<presence type='subscribe'/>")
            .await
            .unwrap();
        s.offline_push(user, "<message/>", 10).await.unwrap();
    }
    s.delete_account("alice").await.unwrap();
    s.create_account("alice", &keys(1)).await.unwrap();
    assert_eq!(s.roster("alice").await.unwrap(), (0, vec![]));
    assert!(s.pending_in_list("alice").await.unwrap().is_empty());
    assert_eq!(s.offline_count("alice").await.unwrap(), 0);
    // Bob keeps his.
    assert_eq!(s.roster_count("bob").await.unwrap(), 1);
    assert_eq!(s.pending_in_list("bob").await.unwrap().len(), 1);
    assert_eq!(s.offline_count("bob").await.unwrap(), 1);
}

#[tokio::test]
async fn data_survives_close_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    let v = s
        .roster_put("alice", &item("bob@example.com"))
        .await
        .unwrap();
    s.close().await;
    assert!(
        s.offline_push("alice", "<message/>", 10).await.is_err(),
        "writes fail once closed"
    );

    let s = open(&dir);
    assert_eq!(s.credentials("alice").await.unwrap(), Some(keys(1)));
    assert_eq!(
        s.roster("alice").await.unwrap(),
        (v, vec![item("bob@example.com")])
    );
    // Writes still queued when the last handle is dropped are committed.
    let pushes: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.offline_push("alice", "<message/>", 100).await })
        })
        .collect();
    drop(s);
    for p in pushes {
        assert!(p.await.unwrap().unwrap());
    }
    let s = open(&dir);
    assert_eq!(s.offline_count("alice").await.unwrap(), 50);
}

#[tokio::test]
async fn bulk_create_of_5000_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let bulk: Vec<_> = (0..5000).map(|i| (format!("user{i}"), keys(1))).collect();
    let start = Instant::now();
    assert_eq!(s.create_accounts(&bulk).await.unwrap(), 5000);
    let took = start.elapsed();
    println!("bulk create of 5000 accounts: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(s.create_accounts(&bulk).await.unwrap(), 0);
    assert_eq!(s.list_accounts().await.unwrap().len(), 5000);
}

/// Prints write throughput; `cargo test --release -p hearth-store -- --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_push_throughput() {
    for synchronous_full in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            synchronous_full,
            ..StoreOptions::default()
        };
        let s = Store::open(&dir.path().join("t.sqlite"), opts).unwrap();
        let (one_by_one, concurrent) = push_rates(&s).await;
        let sync = if synchronous_full { "FULL" } else { "NORMAL" };
        println!(
            "offline_push, synchronous={sync}: {one_by_one:.0}/s from one caller awaiting each, {concurrent:.0}/s from 100 concurrent callers"
        );
        assert!(
            synchronous_full || concurrent >= 1000.0,
            "{concurrent:.0}/s"
        );
    }
}

/// Pushes per second from one caller, then from 100 concurrent ones.
async fn push_rates(s: &Store) -> (f64, f64) {
    let users: Vec<_> = (0..100).map(|i| (format!("u{i}"), keys(1))).collect();
    s.create_accounts(&users).await.unwrap();
    let stanza = format!(
        "<message type='chat'><body>{}</body></message>",
        "x".repeat(200)
    );

    let start = Instant::now();
    for _ in 0..200 {
        assert!(s.offline_push("u0", &stanza, 100_000).await.unwrap());
    }
    let one_by_one = 200.0 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let tasks: Vec<_> = users
        .into_iter()
        .map(|(u, _)| {
            let (s, stanza) = (s.clone(), stanza.clone());
            tokio::spawn(async move {
                for _ in 0..100 {
                    assert!(s.offline_push(&u, &stanza, 100_000).await.unwrap());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (one_by_one, 10_000.0 / start.elapsed().as_secs_f64())
}

#[tokio::test]
async fn resumable_sessions_are_taken_once_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_user(&dir, "alice").await;
    let now = std::time::SystemTime::now();
    let session = |id: &str, expires| ResumableSession {
        id: id.into(),
        username: "alice".into(),
        resource: "phone".into(),
        expires,
        h_in: 7,
        h_out: u32::MAX,
        unacked: "<message to='alice@localhost/phone'><body>hi</body></message>".into(),
        unsent: String::new(),
        presence: Some("<presence/>".into()),
        priority: -3,
        module_state: "{}".into(),
    };
    let live = session("a", now + std::time::Duration::from_secs(300));
    let expired = session("b", now - std::time::Duration::from_secs(1));
    store
        .resumable_save(vec![live.clone(), expired])
        .await
        .unwrap();
    let taken = store.resumable_take_all().await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, "a");
    assert_eq!(taken[0].h_out, u32::MAX);
    assert_eq!(taken[0].priority, -3);
    assert!(store.resumable_take_all().await.unwrap().is_empty());
}

#[tokio::test]
async fn push_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_user(&dir, "alice").await;
    let reg = |service: &str, node: &str| PushRegistration {
        service: service.into(),
        node: node.into(),
        resource: "phone".into(),
        options: Some("<x xmlns='jabber:x:data' type='submit'/>".into()),
    };
    assert!(
        store
            .push_enable("alice", reg("p.example", "a"), 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .push_enable("alice", reg("p.example", "b"), 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .push_enable("alice", reg("q.example", "c"), 2)
            .await
            .unwrap(),
        "limit"
    );
    assert!(
        store
            .push_enable("alice", reg("p.example", "a"), 2)
            .await
            .unwrap(),
        "replacing is not adding"
    );
    assert_eq!(store.push_list("alice").await.unwrap().len(), 2);
    assert_eq!(
        store
            .push_disable("alice", "p.example", Some("a"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .push_disable("alice", "p.example", None)
            .await
            .unwrap(),
        1
    );
    assert!(store.push_list("alice").await.unwrap().is_empty());
    assert!(
        store
            .push_enable("nobody", reg("p.example", "a"), 2)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn private_xml_and_vcards() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_user(&dir, "alice").await;
    assert_eq!(
        store
            .private_get("alice", "storage:bookmarks")
            .await
            .unwrap(),
        None
    );
    store
        .private_set(
            "alice",
            "storage:bookmarks",
            "<storage xmlns='storage:bookmarks'/>",
        )
        .await
        .unwrap();
    assert!(
        store
            .private_get("alice", "storage:bookmarks")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.vcard_photo_sha1("alice").await.unwrap(), None);
    store
        .vcard_set("alice", "<vCard xmlns='vcard-temp'/>", None)
        .await
        .unwrap();
    assert_eq!(store.vcard_photo_sha1("alice").await.unwrap(), Some(None));
    store
        .vcard_set("alice", "<vCard xmlns='vcard-temp'/>", Some("ab"))
        .await
        .unwrap();
    assert_eq!(
        store.vcard_photo_sha1("alice").await.unwrap(),
        Some(Some("ab".into()))
    );
    assert!(store.vcard_get("alice").await.unwrap().is_some());
    store.delete_account("alice").await.unwrap();
    assert_eq!(store.vcard_get("alice").await.unwrap(), None);
}

#[tokio::test]
async fn blocklists() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_user(&dir, "alice").await;
    store
        .blocklist_add(
            "alice",
            vec!["spam.example".into(), "eve@evil.example".into()],
        )
        .await
        .unwrap();
    store
        .blocklist_add("alice", vec!["spam.example".into()])
        .await
        .unwrap();
    assert_eq!(
        store.blocklist("alice").await.unwrap(),
        ["eve@evil.example", "spam.example"]
    );
    store
        .blocklist_remove("alice", Some(vec!["spam.example".into()]))
        .await
        .unwrap();
    assert_eq!(
        store.blocklist("alice").await.unwrap(),
        ["eve@evil.example"]
    );
    store.blocklist_remove("alice", None).await.unwrap();
    assert!(store.blocklist("alice").await.unwrap().is_empty());
}

fn archived(i: i64, with: &str, body: &str) -> NewArchived {
    NewArchived {
        stanza_id: format!("id{i}"),
        stamp: 1_000_000 + i * 1000,
        with_bare: with.into(),
        with_resource: Some("r".into()),
        outgoing: i % 2 == 0,
        body: Some(body.into()),
        stanza_xml: format!("<message xmlns='jabber:client'><body>{body}</body></message>"),
    }
}

fn ids(page: &ArchivePage) -> Vec<String> {
    page.messages.iter().map(|m| m.stanza_id.clone()).collect()
}

/// A deferred archive copy commits with the next archive write made through the same
/// `PendingWrites`, or when it is committed; afterwards, deferring writes at once.
#[tokio::test]
async fn deferred_archive_copies() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_user(&dir, "alice").await;
    store.create_account("bob", &keys(2)).await.unwrap();
    let count = |user: &'static str| {
        let store = store.clone();
        async move {
            let q = ArchiveQuery {
                max: 50,
                ..Default::default()
            };
            store.archive_query(user, q).await.unwrap().messages.len()
        }
    };
    let pending = PendingWrites::new();
    store
        .archive_append_later(&pending, "alice", archived(1, "bob@x", "hi"))
        .await;
    assert_eq!(count("alice").await, 0, "deferred");
    assert!(
        store
            .archive_append_with(&pending, "bob", archived(2, "alice@x", "hi"))
            .await
            .unwrap()
    );
    assert_eq!((count("alice").await, count("bob").await), (1, 1));
    store
        .archive_append_later(&pending, "alice", archived(3, "carol@x", "hi"))
        .await;
    store.commit_pending(&pending).await;
    assert_eq!(count("alice").await, 2);
    store
        .archive_append_later(&pending, "alice", archived(4, "carol@x", "hi"))
        .await;
    assert_eq!(count("alice").await, 3, "written at once after the commit");
    let immediate = PendingWrites::immediate();
    store
        .archive_append_later(&immediate, "bob", archived(5, "carol@x", "hi"))
        .await;
    assert_eq!(count("bob").await, 2);
}

#[tokio::test]
async fn archive_paging_filters_and_search() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_user(&dir, "alice").await;
    for i in 1..=10 {
        let with = if i <= 5 { "bob@x" } else { "carol@x" };
        let body = if i == 7 {
            "the quick brown fox"
        } else {
            "hello"
        };
        assert!(
            store
                .archive_append("alice", archived(i, with, body))
                .await
                .unwrap()
        );
    }
    assert!(
        !store
            .archive_append("nobody", archived(99, "bob@x", "x"))
            .await
            .unwrap()
    );
    let q = |f: &dyn Fn(&mut ArchiveQuery)| {
        let mut q = ArchiveQuery {
            max: 3,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let page = store.archive_query("alice", q(&|_| {})).await.unwrap();
    assert_eq!(ids(&page), ["id1", "id2", "id3"]);
    assert!(!page.complete);
    let page = store
        .archive_query("alice", q(&|q| q.after = Some("id9".into())))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["id10"]);
    assert!(page.complete);
    let page = store
        .archive_query("alice", q(&|q| q.from_end = true))
        .await
        .unwrap();
    assert_eq!(
        ids(&page),
        ["id8", "id9", "id10"],
        "last page, oldest first"
    );
    let page = store
        .archive_query("alice", q(&|q| q.before = Some("id3".into())))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["id1", "id2"]);
    assert!(page.complete);
    let page = store
        .archive_query("alice", q(&|q| q.with_bare = Some("carol@x".into())))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["id6", "id7", "id8"]);
    let page = store
        .archive_query(
            "alice",
            q(&|q| {
                q.start = Some(1_004_000);
                q.end = Some(1_005_000);
            }),
        )
        .await
        .unwrap();
    assert_eq!(ids(&page), ["id4", "id5"]);
    let page = store
        .archive_query(
            "alice",
            q(&|q| q.ids = Some(vec!["id2".into(), "id9".into()])),
        )
        .await
        .unwrap();
    assert_eq!(ids(&page), ["id2", "id9"]);
    let page = store
        .archive_query("alice", q(&|q| q.fulltext = Some("\"brown\"".into())))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["id7"]);
    assert!(matches!(
        store
            .archive_query("alice", q(&|q| q.after = Some("nope".into())))
            .await,
        Err(ArchiveQueryError::UnknownId(_))
    ));
    assert!(matches!(
        store
            .archive_query("alice", q(&|q| q.fulltext = Some("AND OR (".into())))
            .await,
        Err(ArchiveQueryError::BadFulltext)
    ));
    let (first, last) = store.archive_bounds("alice").await.unwrap().unwrap();
    assert_eq!(
        (first.stanza_id.as_str(), last.stanza_id.as_str()),
        ("id1", "id10")
    );
    // Retention removes the oldest, and their search entries.
    assert_eq!(
        store
            .archive_expire(ArchiveOwners::Accounts, 1_008_000, 100)
            .await
            .unwrap(),
        7
    );
    let page = store
        .archive_query("alice", q(&|q| q.fulltext = Some("\"brown\"".into())))
        .await
        .unwrap();
    assert!(page.messages.is_empty());
    store.delete_account("alice").await.unwrap();
}

#[tokio::test]
async fn archive_prefs() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_user(&dir, "alice").await;
    assert_eq!(store.archive_prefs("alice").await.unwrap(), None);
    let prefs = ArchivePrefs {
        default_mode: "roster".into(),
        always: vec!["a@x".into(), "b@x".into()],
        never: vec![],
    };
    store
        .archive_set_prefs("alice", prefs.clone())
        .await
        .unwrap();
    assert_eq!(store.archive_prefs("alice").await.unwrap(), Some(prefs));
}

#[tokio::test]
async fn pubsub_nodes_and_items() {
    let dir = tempfile::tempdir().unwrap();
    let store = with_user(&dir, "alice").await;
    let item = |id: &str| PubsubItem {
        id: id.into(),
        payload: format!("<p xmlns='x'>{id}</p>"),
    };
    assert!(
        store
            .pubsub_publish("alice", "n", item("1"), 10)
            .await
            .is_err(),
        "no node yet"
    );
    store
        .pubsub_put_node("alice", "n", "max_items=2")
        .await
        .unwrap();
    for id in ["1", "2", "3"] {
        store
            .pubsub_publish("alice", "n", item(id), 2)
            .await
            .unwrap();
    }
    let ids = |items: Vec<PubsubItem>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.pubsub_items("alice", "n", None, None).await.unwrap()),
        ["2", "3"]
    );
    store
        .pubsub_publish("alice", "n", item("2"), 2)
        .await
        .unwrap();
    assert_eq!(
        ids(store
            .pubsub_items("alice", "n", Some(1), None)
            .await
            .unwrap()),
        ["2"],
        "republished is newest"
    );
    assert_eq!(
        ids(store
            .pubsub_items("alice", "n", None, Some(vec!["3".into(), "9".into()]))
            .await
            .unwrap()),
        ["3"]
    );
    assert!(store.pubsub_retract("alice", "n", "3").await.unwrap());
    assert!(!store.pubsub_retract("alice", "n", "3").await.unwrap());
    store.pubsub_purge("alice", "n").await.unwrap();
    assert!(
        store
            .pubsub_items("alice", "n", None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.pubsub_nodes("alice").await.unwrap().len(), 1);
    assert!(store.pubsub_delete_node("alice", "n").await.unwrap());
    assert_eq!(store.pubsub_node("alice", "n").await.unwrap(), None);
}

#[tokio::test]
async fn fast_tokens_rotate_through_two_slots_and_end_with_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    let token = |t: &str, expiry| FastToken {
        mechanism: "HT-SHA-256-NONE".into(),
        token: t.into(),
        expiry,
        fresh: true,
    };
    let names = |v: Vec<FastToken>| {
        v.into_iter()
            .map(|t| format!("{}{}", t.token, if t.fresh { "*" } else { "" }))
            .collect::<Vec<_>>()
    };
    s.fast_issue("alice", "phone", token("a", 10))
        .await
        .unwrap();
    // An unused fresh token is replaced by the next one issued.
    s.fast_issue("alice", "phone", token("b", 20))
        .await
        .unwrap();
    assert_eq!(
        names(s.fast_tokens("alice", "phone").await.unwrap()),
        ["b*"]
    );
    s.fast_used("alice", "phone", true, false).await.unwrap();
    s.fast_issue("alice", "phone", token("c", 30))
        .await
        .unwrap();
    assert_eq!(
        names(s.fast_tokens("alice", "phone").await.unwrap()),
        ["c*", "b"]
    );
    // Using the fresh one ends the older one.
    s.fast_used("alice", "phone", true, false).await.unwrap();
    assert_eq!(names(s.fast_tokens("alice", "phone").await.unwrap()), ["c"]);
    // Using the current one changes nothing; other clients are separate.
    s.fast_used("alice", "phone", false, false).await.unwrap();
    s.fast_issue("alice", "laptop", token("d", 30))
        .await
        .unwrap();
    assert_eq!(names(s.fast_tokens("alice", "phone").await.unwrap()), ["c"]);
    // Logging out ends the client's tokens.
    s.fast_issue("alice", "phone", token("e", 40))
        .await
        .unwrap();
    s.fast_used("alice", "phone", false, true).await.unwrap();
    assert!(s.fast_tokens("alice", "phone").await.unwrap().is_empty());
    // A new password ends them all; so does deleting the account.
    s.set_credentials("alice", &keys(2)).await.unwrap();
    assert!(s.fast_tokens("alice", "laptop").await.unwrap().is_empty());
    s.fast_issue("alice", "laptop", token("f", 50))
        .await
        .unwrap();
    s.delete_account("alice").await.unwrap();
    s.create_account("alice", &keys(1)).await.unwrap();
    assert!(s.fast_tokens("alice", "laptop").await.unwrap().is_empty());
}

#[tokio::test]
async fn muc_rooms_and_affiliations() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let room = |public, subject: Option<(&str, &str)>| StoredRoom {
        jid: "team@conference.localhost".into(),
        public,
        config: "name=Team".into(),
        subject: subject.map(|(n, t)| (n.into(), t.into())),
        vcard: None,
    };
    assert!(
        s.muc_room("team@conference.localhost")
            .await
            .unwrap()
            .is_none()
    );
    s.muc_put_room(room(true, None)).await.unwrap();
    let aff = |jid: &str, a: &str, reason: Option<&str>| StoredAffiliation {
        jid: jid.into(),
        affiliation: a.into(),
        reason: reason.map(Into::into),
        nick: (a == "owner").then(|| "Alice".into()),
    };
    s.muc_set_affiliation(
        "team@conference.localhost",
        "alice@localhost",
        Some(aff("alice@localhost", "owner", None)),
    )
    .await
    .unwrap();
    s.muc_set_affiliation(
        "team@conference.localhost",
        "eve@evil.example",
        Some(aff("eve@evil.example", "outcast", Some("spam"))),
    )
    .await
    .unwrap();
    s.muc_put_room(room(false, Some(("Alice", "Plans"))))
        .await
        .unwrap();
    let (stored, mut affiliations) = s
        .muc_room("team@conference.localhost")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, room(false, Some(("Alice", "Plans"))));
    affiliations.sort_by(|a, b| a.jid.cmp(&b.jid));
    assert_eq!(
        affiliations,
        [
            aff("alice@localhost", "owner", None),
            aff("eve@evil.example", "outcast", Some("spam"))
        ]
    );
    assert!(s.muc_public_rooms().await.unwrap().is_empty());
    s.muc_set_affiliation("team@conference.localhost", "eve@evil.example", None)
        .await
        .unwrap();
    // A stored room has an archive, keyed by its JID, which goes with it.
    let room_jid = "team@conference.localhost";
    assert!(
        s.archive_append(room_jid, archived(1, room_jid, "hi"))
            .await
            .unwrap()
    );
    assert!(
        !s.archive_append("gone@conference.localhost", archived(2, "x@y", "hi"))
            .await
            .unwrap()
    );
    let all = || ArchiveQuery {
        max: 10,
        ..Default::default()
    };
    assert_eq!(
        ids(&s.archive_query(room_jid, all()).await.unwrap()),
        ["id1"]
    );
    s.muc_delete_room("team@conference.localhost")
        .await
        .unwrap();
    assert!(
        s.archive_query(room_jid, all())
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert!(
        s.muc_room("team@conference.localhost")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn upload_slots_quota_completion_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let slot = |id: &str, size: u64| Upload {
        id: id.into(),
        username: "alice".into(),
        filename: "cat.jpg".into(),
        size,
        content_type: Some("image/jpeg".into()),
        created: t0,
        put_deadline: t0 + Duration::from_secs(300),
        completed: None,
    };
    assert_eq!(
        s.upload_slot_create(slot("a", 600), 1000, t0)
            .await
            .unwrap(),
        Ok(())
    );
    // The open slot counts against the quota.
    assert_eq!(
        s.upload_slot_create(slot("b", 500), 1000, t0)
            .await
            .unwrap(),
        Err(OverQuota {
            used: 600,
            oldest: None
        })
    );
    assert!(
        s.upload_complete("a", None, t0 + Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert!(
        !s.upload_complete("a", None, t0).await.unwrap(),
        "completed twice"
    );
    let stored = s.upload_get("a").await.unwrap().unwrap();
    assert_eq!(stored.completed, Some(t0 + Duration::from_secs(10)));
    assert_eq!(stored.content_type, None);
    assert_eq!(
        s.upload_slot_create(slot("b", 500), 1000, t0)
            .await
            .unwrap(),
        Err(OverQuota {
            used: 600,
            oldest: stored.completed
        })
    );
    // 0 is no quota; a slot past its deadline no longer counts.
    s.upload_slot_create(slot("b", 500), 0, t0)
        .await
        .unwrap()
        .unwrap();
    let later = t0 + Duration::from_secs(400);
    let fresh = Upload {
        put_deadline: later + Duration::from_secs(300),
        ..slot("c", 400)
    };
    s.upload_slot_create(fresh, 1000, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.upload_ids().await.unwrap().len(), 3);
    // Files are kept; "b" was abandoned.
    assert_eq!(
        s.upload_expire(None, later).await.unwrap(),
        vec!["b".to_string()]
    );
    assert_eq!(
        s.upload_expire(Some(t0 + Duration::from_secs(11)), t0)
            .await
            .unwrap(),
        vec!["a".to_string()]
    );
    assert!(s.upload_get("a").await.unwrap().is_none());
    // Deleting the account deletes its uploads.
    s.delete_account("alice").await.unwrap();
    assert!(s.upload_ids().await.unwrap().is_empty());
    assert!(matches!(
        s.upload_slot_create(slot("d", 1), 0, t0).await,
        Err(StoreError::NoSuchAccount)
    ));
}

/// An account with something of every kind, and bob, who shares a room and a roster with it.
async fn populated(dir: &tempfile::TempDir) -> Store {
    let s = with_user(dir, "alice").await;
    s.create_account("bob", &keys(2)).await.unwrap();
    s.roster_put("alice", &item("bob@x")).await.unwrap();
    s.roster_put("bob", &item("alice@x")).await.unwrap();
    s.pending_in_put("alice", "carol@y", "<presence type='subscribe'/>")
        .await
        .unwrap();
    // A request alice sent that bob has yet to answer.
    s.pending_in_put("bob", "alice@x", "<presence type='subscribe'/>")
        .await
        .unwrap();
    s.vcard_set(
        "alice",
        "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>",
        None,
    )
    .await
    .unwrap();
    s.private_set("alice", "storage:x", "<x xmlns='storage:x'/>")
        .await
        .unwrap();
    s.pubsub_put_node("alice", "urn:xmpp:avatar:metadata", "access_model=presence")
        .await
        .unwrap();
    for id in ["old", "new"] {
        let item = PubsubItem {
            id: id.into(),
            payload: format!("<metadata xmlns='urn:xmpp:avatar:metadata' id='{id}'/>"),
        };
        s.pubsub_publish("alice", "urn:xmpp:avatar:metadata", item, 10)
            .await
            .unwrap();
    }
    s.offline_push("alice", "<message><body>later</body></message>", 100)
        .await
        .unwrap();
    for i in 1..=3 {
        s.archive_append("alice", archived(i, "bob@x", "hello"))
            .await
            .unwrap();
    }
    s.blocklist_add("alice", vec!["eve@evil.example".into()])
        .await
        .unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let upload = Upload {
        id: "slot1".into(),
        username: "alice".into(),
        filename: "cat.jpg".into(),
        size: 10,
        content_type: Some("image/jpeg".into()),
        created: t0,
        put_deadline: t0 + Duration::from_secs(300),
        completed: None,
    };
    s.upload_slot_create(upload, 0, t0).await.unwrap().unwrap();
    s.muc_put_room(StoredRoom {
        jid: "team@conference.x".into(),
        public: true,
        config: String::new(),
        subject: None,
        vcard: None,
    })
    .await
    .unwrap();
    for (jid, nick) in [("alice@x", "Al"), ("bob@x", "Bob")] {
        let affiliation = StoredAffiliation {
            jid: jid.into(),
            affiliation: "member".into(),
            reason: None,
            nick: Some(nick.into()),
        };
        s.muc_set_affiliation("team@conference.x", jid, Some(affiliation))
            .await
            .unwrap();
    }
    s.push_enable(
        "alice",
        PushRegistration {
            service: "push.example".into(),
            node: "n1".into(),
            resource: "phone".into(),
            options: None,
        },
        5,
    )
    .await
    .unwrap();
    s
}

#[tokio::test]
async fn account_data_holds_everything_of_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(&dir).await;
    let data = s.account_data("alice", "alice@x").await.unwrap().unwrap();
    assert!(!data.disabled && data.delete_at.is_none());
    assert_eq!(data.roster, [item("bob@x")]);
    assert_eq!(data.pending_in, ["<presence type='subscribe'/>"]);
    assert!(data.vcard.unwrap().contains("<FN>Alice</FN>"));
    assert_eq!(data.private[0].0, "storage:x");
    assert_eq!(data.pep.len(), 1);
    assert_eq!(data.pep[0].config, "access_model=presence");
    let items: Vec<_> = data.pep[0].items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(items, ["old", "new"], "oldest first");
    assert_eq!(data.offline.len(), 1);
    let archive: Vec<_> = data.archive.iter().map(|m| m.stanza_id.as_str()).collect();
    assert_eq!(archive, ["id1", "id2", "id3"]);
    assert_eq!(data.blocklist, ["eve@evil.example"]);
    assert_eq!(data.uploads[0].filename, "cat.jpg");
    assert_eq!(data.muc.len(), 1);
    assert_eq!(data.muc[0].room, "team@conference.x");
    assert_eq!(data.muc[0].affiliation.nick.as_deref(), Some("Al"));
    assert_eq!(data.push[0].node, "n1");
    assert!(
        s.account_data("nobody", "nobody@x")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn erasing_an_account_leaves_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(&dir).await;
    while s.archive_clear("alice", 2).await.unwrap() > 0 {}
    assert!(s.archive_bounds("alice").await.unwrap().is_none());
    assert_eq!(
        s.account_erase("alice", "alice@x").await.unwrap(),
        ["slot1"]
    );
    assert!(s.account_data("alice", "alice@x").await.unwrap().is_none());
    assert!(s.upload_ids().await.unwrap().is_empty());
    // Gone from the room's list and from bob's requests; bob's roster stays his.
    let (_, affiliations) = s.muc_room("team@conference.x").await.unwrap().unwrap();
    let jids: Vec<_> = affiliations.iter().map(|a| a.jid.as_str()).collect();
    assert_eq!(jids, ["bob@x"]);
    assert!(s.pending_in_list("bob").await.unwrap().is_empty());
    assert_eq!(s.roster("bob").await.unwrap().1, [item("alice@x")]);
    assert!(matches!(
        s.account_erase("alice", "alice@x").await,
        Err(StoreError::NoSuchAccount)
    ));
}

#[tokio::test]
async fn erasure_is_scheduled_cancelled_and_due() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    s.create_account("bob", &keys(2)).await.unwrap();
    let now = SystemTime::now();
    let at = now + Duration::from_secs(86_400);
    s.account_schedule_erasure("alice", at).await.unwrap();
    assert!(s.is_disabled("alice").await.unwrap());
    let data = s.account_data("alice", "alice@x").await.unwrap().unwrap();
    assert_eq!(
        data.delete_at
            .map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()),
        Some(at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
    );
    assert!(s.accounts_due_for_erasure(now).await.unwrap().is_empty());
    assert_eq!(
        s.accounts_due_for_erasure(at + Duration::from_secs(1))
            .await
            .unwrap(),
        ["alice"]
    );
    assert!(s.account_cancel_erasure("alice").await.unwrap());
    assert!(!s.is_disabled("alice").await.unwrap());
    assert!(s.accounts_due_for_erasure(at).await.unwrap().is_empty());
    // Nothing scheduled: nothing changes (an administrator's disabling stays).
    s.set_disabled("bob", true).await.unwrap();
    assert!(!s.account_cancel_erasure("bob").await.unwrap());
    assert!(s.is_disabled("bob").await.unwrap());
    assert!(matches!(
        s.account_schedule_erasure("nobody", at).await,
        Err(StoreError::NoSuchAccount)
    ));
    assert!(matches!(
        s.account_cancel_erasure("nobody").await,
        Err(StoreError::NoSuchAccount)
    ));
}

#[tokio::test]
async fn retention_removes_only_what_is_older_and_only_of_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let s = with_user(&dir, "alice").await;
    s.muc_put_room(StoredRoom {
        jid: "team@conference.x".into(),
        public: true,
        config: String::new(),
        subject: None,
        vcard: None,
    })
    .await
    .unwrap();
    for i in 1..=5 {
        s.archive_append("alice", archived(i, "bob@x", "quick brown fox"))
            .await
            .unwrap();
        s.archive_append("team@conference.x", archived(i, "team@conference.x", "hi"))
            .await
            .unwrap();
    }
    s.archive_index_pending().await.unwrap();
    // Batches of two until nothing before the cut-off (messages 1 to 3) is left.
    let cutoff = 1_004_000;
    let mut batches = Vec::new();
    loop {
        let n = s
            .archive_expire(ArchiveOwners::Accounts, cutoff, 2)
            .await
            .unwrap();
        batches.push(n);
        if n < 2 {
            break;
        }
    }
    assert_eq!(batches, [2, 1]);
    let left = |owner: &'static str| {
        let s = s.clone();
        async move {
            let q = ArchiveQuery {
                max: 50,
                ..Default::default()
            };
            ids(&s.archive_query(owner, q).await.unwrap())
        }
    };
    assert_eq!(left("alice").await, ["id4", "id5"]);
    assert_eq!(left("team@conference.x").await.len(), 5, "rooms untouched");
    // Their full-text entries went with them.
    let q = ArchiveQuery {
        fulltext: Some("\"brown\"".into()),
        max: 50,
        ..Default::default()
    };
    assert_eq!(
        ids(&s.archive_query("alice", q).await.unwrap()),
        ["id4", "id5"]
    );
    assert_eq!(
        s.archive_expire(ArchiveOwners::Rooms, cutoff, 100)
            .await
            .unwrap(),
        3
    );
    assert_eq!(left("team@conference.x").await, ["id4", "id5"]);

    s.offline_push("alice", "<message/>", 100).await.unwrap();
    let stored = SystemTime::now();
    assert_eq!(
        s.offline_expire(stored - Duration::from_secs(60), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.offline_expire(stored + Duration::from_secs(1), 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.offline_count("alice").await.unwrap(), 0);
}
