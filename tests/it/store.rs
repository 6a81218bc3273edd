//! One conformance story for the `Store` trait, run against SQLite and PostgreSQL alike.

use sorcha_peer::store::{self, BanRow, PeerRow, Store};

fn peer(id: &str, failures: i64) -> PeerRow {
    PeerRow {
        peer_id: id.into(),
        public_key: "ab".repeat(32),
        name: "node".into(),
        address: "127.0.0.1:5000".into(),
        first_seen_ms: 1_000,
        last_seen_ms: 2_000,
        is_seed: true,
        failure_count: failures,
        total_requests: 10,
        successful_requests: 9,
        success_rate: Some(0.9),
        avg_latency_ms: Some(0.25),
        min_latency_ms: Some(0.1),
        max_latency_ms: Some(0.5),
        penalty: 0.5,
        penalty_updated_ms: 1_500,
        last_penalty_reason: Some("forged docket".into()),
        last_penalty_at_ms: Some(1_500),
    }
}

async fn story(store: &dyn Store) {
    store.ping().await.expect("ping");
    assert!(store.load_peers().await.expect("load").is_empty());

    let a = peer("aaaa", 0);
    let mut b = peer("bbbb", 3);
    b.success_rate = None;
    b.avg_latency_ms = None;
    b.last_penalty_reason = None;
    b.last_penalty_at_ms = None;
    store
        .upsert_peers(&[a.clone(), b.clone()])
        .await
        .expect("insert");
    assert_eq!(
        store.load_peers().await.expect("load"),
        vec![a.clone(), b.clone()]
    );

    b.failure_count = 7;
    b.is_seed = false;
    store.upsert_peers(&[b.clone()]).await.expect("update");
    assert_eq!(
        store.load_peers().await.expect("load"),
        vec![a.clone(), b.clone()]
    );
    assert!(store.delete_peer("aaaa").await.expect("delete"));
    assert!(!store.delete_peer("aaaa").await.expect("delete again"));
    assert_eq!(store.load_peers().await.expect("load"), vec![b]);

    let ban = BanRow {
        target: "10.0.0.0/8".into(),
        kind: "cidr".into(),
        reason: "spam".into(),
        source: "manual".into(),
        banned_at_ms: 5,
        expires_at_ms: None,
    };
    store.insert_ban(&ban).await.expect("ban");
    assert!(
        store.insert_ban(&ban).await.is_err(),
        "a target is banned once"
    );
    let timed = BanRow {
        target: "cccc".into(),
        kind: "peer".into(),
        expires_at_ms: Some(99),
        banned_at_ms: 6,
        ..ban.clone()
    };
    store.insert_ban(&timed).await.expect("ban 2");
    assert_eq!(store.load_bans().await.expect("bans"), vec![ban, timed]);
    assert!(store.delete_ban("10.0.0.0/8").await.expect("unban"));
    assert!(!store.delete_ban("10.0.0.0/8").await.expect("unban again"));
    assert_eq!(store.load_bans().await.expect("bans").len(), 1);
    store.close().await;
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("peer.db");
    let store = store::open(None, &path).await.expect("open");
    story(store.as_ref()).await;
    // Data survives reopening (and migrations are idempotent).
    let store = store::open(None, &path).await.expect("reopen");
    assert_eq!(store.load_bans().await.expect("bans").len(), 1);
}

#[tokio::test]
async fn postgres_store_conforms() {
    let Some(url) = crate::common::postgres::fresh_database().await else {
        return;
    };
    let store = store::open(Some(&url), std::path::Path::new("unused"))
        .await
        .expect("open");
    story(store.as_ref()).await;
    let store = store::open(Some(&url), std::path::Path::new("unused"))
        .await
        .expect("reopen");
    assert_eq!(store.load_bans().await.expect("bans").len(), 1);
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let err = match store::open(
        Some("postgres://nobody:secret@127.0.0.1:1/none"),
        std::path::Path::new("x"),
    )
    .await
    {
        Ok(_) => panic!("opened a database that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("cannot open the database (postgres)"), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
}
