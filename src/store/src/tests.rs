use super::*;

fn keys(n: u8) -> Credentials {
    let k = ScramKeys {
        salt: vec![n; 16],
        iterations: 4096,
        stored_key: vec![n; 32],
        server_key: vec![n; 32],
    };
    Credentials {
        sha1: k.clone(),
        sha256: k,
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(
        &dir.path().join("sub/hearth.sqlite"),
        StoreOptions::default(),
    )
    .unwrap()
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

#[tokio::test]
async fn accounts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.create_account("alice", &keys(1)).await.unwrap();
    assert!(matches!(
        s.create_account("alice", &keys(2)).await,
        Err(StoreError::AccountExists)
    ));
    assert!(s.account_exists("alice").await.unwrap());
    assert!(!s.account_exists("bob").await.unwrap());
    assert_eq!(s.credentials("alice").await.unwrap(), Some(keys(1)));
    assert_eq!(s.credentials("bob").await.unwrap(), None);
    s.set_credentials("alice", &keys(3)).await.unwrap();
    assert_eq!(s.credentials("alice").await.unwrap(), Some(keys(3)));
    assert!(matches!(
        s.set_credentials("bob", &keys(3)).await,
        Err(StoreError::NoSuchAccount)
    ));
    let bulk: Vec<_> = ["carol", "alice", "dave"]
        .iter()
        .map(|u| (u.to_string(), keys(4)))
        .collect();
    assert_eq!(s.create_accounts(&bulk).await.unwrap(), 2);
    assert_eq!(
        s.list_accounts().await.unwrap(),
        vec!["alice", "carol", "dave"]
    );
    s.delete_account("carol").await.unwrap();
    assert!(matches!(
        s.delete_account("carol").await,
        Err(StoreError::NoSuchAccount)
    ));
    s.close().await;
}

#[tokio::test]
async fn roster_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.create_account("alice", &keys(1)).await.unwrap();
    assert_eq!(s.roster("alice").await.unwrap(), (0, vec![]));
    let v1 = s
        .roster_put("alice", &item("bob@example.com"))
        .await
        .unwrap();
    let v2 = s
        .roster_put(
            "alice",
            &RosterItem {
                groups: vec![],
                ..item("carol@example.com")
            },
        )
        .await
        .unwrap();
    assert!(v2 > v1);
    let (v, items) = s.roster("alice").await.unwrap();
    assert_eq!(v, v2);
    assert_eq!(
        items,
        vec![
            item("bob@example.com"),
            RosterItem {
                groups: vec![],
                ..item("carol@example.com")
            }
        ]
    );
    assert_eq!(
        s.roster_item("alice", "bob@example.com").await.unwrap(),
        Some(item("bob@example.com"))
    );
    assert_eq!(s.roster_count("alice").await.unwrap(), 2);
    assert_eq!(
        s.roster_remove("alice", "nobody@example.com")
            .await
            .unwrap(),
        None
    );
    let v3 = s
        .roster_remove("alice", "bob@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(v3 > v2);
    assert_eq!(s.roster_version("alice").await.unwrap(), v3);
    assert!(
        s.roster_put("ghost", &item("x@y")).await.is_err(),
        "no roster for a missing account"
    );
    s.pending_in_put("alice", "eve@example.com", "<presence type='subscribe'/>")
        .await
        .unwrap();
    s.pending_in_put(
        "alice",
        "eve@example.com",
        "<presence type='subscribe' id='2'/>",
    )
    .await
    .unwrap();
    assert_eq!(
        s.pending_in_list("alice").await.unwrap(),
        vec![(
            "eve@example.com".to_string(),
            "<presence type='subscribe' id='2'/>".to_string()
        )]
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
}

#[tokio::test]
async fn offline_limit_and_removal() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.create_account("bob", &keys(1)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.offline_push("bob", &format!("<message id='{i}'/>"), 150)
                .await
                .unwrap()
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap() as usize;
    }
    assert_eq!(stored, 150, "the limit is exact under concurrency");
    let list = s.offline_list("bob").await.unwrap();
    assert_eq!(list.len(), 150);
    assert!(list.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(s.offline_remove("bob", list[99].id).await.unwrap(), 100);
    assert_eq!(s.offline_count("bob").await.unwrap(), 50);
}

#[tokio::test]
async fn group_commit_isolates_failures_and_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.create_account("alice", &keys(1)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            if i % 10 == 0 {
                s.create_account("alice", &keys(2)).await.is_err()
            } else {
                s.offline_push("alice", "<message/>", 1000).await.unwrap()
            }
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap());
    }
    s.roster_put("alice", &item("bob@example.com"))
        .await
        .unwrap();
    s.close().await;
    let s = open(&dir);
    assert_eq!(s.offline_count("alice").await.unwrap(), 90);
    assert_eq!(s.roster("alice").await.unwrap().1.len(), 1);
    // Deleting the account erases everything it owns.
    s.pending_in_put("alice", "x@y", "<presence/>")
        .await
        .unwrap();
    s.delete_account("alice").await.unwrap();
    s.create_account("alice", &keys(1)).await.unwrap();
    assert_eq!(s.offline_count("alice").await.unwrap(), 0);
    assert_eq!(s.roster("alice").await.unwrap(), (0, vec![]));
    assert!(s.pending_in_list("alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn bulk_create_is_fast() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let bulk: Vec<_> = (0..5000).map(|i| (format!("user{i}"), keys(1))).collect();
    let start = std::time::Instant::now();
    assert_eq!(s.create_accounts(&bulk).await.unwrap(), 5000);
    let took = start.elapsed();
    println!("bulk create of 5000 accounts: {took:?}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

/// Every query the server serves is answered from an index, not a table scan.
#[test]
fn queries_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.sqlite");
    let s = Store::open(&path, StoreOptions::default()).unwrap();
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    for q in [
        "SELECT 1 FROM accounts WHERE username = 'a'",
        "SELECT contact FROM roster WHERE username = 'a' ORDER BY contact",
        "SELECT contact FROM roster WHERE username = 'a' AND contact = 'b'",
        "SELECT stanza FROM pending_in WHERE username = 'a' ORDER BY contact",
        "SELECT id, stamp, stanza FROM offline WHERE username = 'a' ORDER BY id",
        "SELECT count(*) FROM offline WHERE username = 'a'",
        "DELETE FROM offline WHERE username = 'a' AND id <= 5",
    ] {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {q}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let plan = plan.join("; ");
        assert!(
            !plan.contains("SCAN") || plan.contains("USING"),
            "{q}: {plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{q}: {plan}");
    }
}
