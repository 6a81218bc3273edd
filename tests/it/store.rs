//! One conformance story for the `Store` trait, run against SQLite and PostgreSQL alike.

use sorcha_peer::ledger::{Docket, DocketHeader, Role};
use sorcha_peer::store::{self, BanRow, Durability, PeerRow, PendingBatch, RegisterRecord, Store};

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
    assert_eq!(
        store.write_health().failure(),
        None,
        "a write the database refuses for its data is not a storage failure"
    );
    store.probe_write(0).await.expect("probe write");
    store
        .probe_write(64 << 10)
        .await
        .expect("probe write with filler");
    assert_eq!(store.write_health().failure(), None);
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

    registers_and_transactions(store).await;
    store.close().await;
}

fn docket(number: u64, first_version: u64, tx_count: u32) -> Docket {
    docket_of("r", number, first_version, tx_count)
}

fn docket_of(register: &str, number: u64, first_version: u64, tx_count: u32) -> Docket {
    Docket {
        header: DocketHeader {
            register_id: register.into(),
            number,
            previous_hash: [0; 32],
            merkle_root: [0x11; 32],
            tx_count,
            first_version,
            sealed_at_ms: 7,
        },
        signature: vec![0x22; 64],
    }
}

// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn registers_and_transactions(store: &dyn Store) {
    let mut head = RegisterRecord {
        register_id: "r".into(),
        is_public: true,
        role: Role::Origin,
        origin_key: [0x33; 32],
        created_at_ms: 1,
        height: 0,
        head_hash: docket(0, 1, 0).header.hash(),
        latest_version: 0,
        base_height: 0,
    };
    store
        .put_register(&head, &docket(0, 1, 0))
        .await
        .expect("register");
    assert_eq!(
        store.load_registers().await.expect("registers"),
        vec![head.clone()]
    );

    let txs = vec![(id("a1"), b"one".to_vec()), (id("a2"), b"two".to_vec())];
    let new = store
        .accept_pending(&[batch("r", &txs)], 10)
        .await
        .expect("accept");
    assert_eq!(new, vec![vec![id("a1"), id("a2")]]);
    assert_eq!(
        store
            .accept_pending(&[batch("r", &txs[..1])], 11)
            .await
            .expect("again"),
        vec![Vec::<String>::new()]
    );
    for (prefix, limit, expected) in [
        ("a", 10, vec![id("a1"), id("a2")]),
        ("a", 1, vec![id("a1")]),
        ("a2", 10, vec![id("a2")]),
        (&id("a2")[..63], 10, vec![id("a2")]),
        ("b", 10, vec![]),
        ("A", 10, vec![]),
    ] {
        assert_eq!(
            store
                .transaction_ids_with_prefix("r", prefix, limit)
                .await
                .expect("by prefix"),
            expected,
            "{prefix} (at most {limit})"
        );
    }
    let existing = store
        .existing_transactions("r", &[id("a1"), id("a3")])
        .await
        .expect("existing");
    assert_eq!(existing.into_iter().collect::<Vec<_>>(), vec![id("a1")]);
    let payloads = store
        .payloads_by_id("r", &[id("a2"), id("a9")])
        .await
        .expect("payloads");
    assert_eq!(payloads, vec![(id("a2"), b"two".to_vec())]);

    // Text that spells no ID finds nothing, and a write holding one is refused whole.
    assert!(store.transaction("r", "t2").await.expect("tx").is_none());
    let half_bad = [(id("a5"), b"five".to_vec()), ("t5".into(), b"x".to_vec())];
    assert!(
        store
            .accept_pending(&[batch("r", &half_bad)], 12)
            .await
            .is_err()
    );
    assert_eq!(store.count_pending("r").await.expect("count"), 2);
    assert_eq!(
        store.pending_before("r", 11, 10).await.expect("before"),
        vec![id("a1"), id("a2")]
    );
    head.height = 1;
    head.latest_version = 2;
    store
        .seal(&head, &docket(1, 1, 2), &[id("a1"), id("a2")])
        .await
        .expect("seal");
    let t2 = store
        .transaction("r", &id("a2"))
        .await
        .expect("tx")
        .expect("t2");
    assert_eq!((t2.version, t2.docket_number), (Some(2), Some(1)));
    assert_eq!(
        store.payloads("r", 1, 2).await.expect("payloads"),
        vec![b"one".to_vec(), b"two".to_vec()]
    );
    assert!(
        store
            .seal(&head, &docket(2, 3, 1), &[id("a1")])
            .await
            .is_err(),
        "sealing twice fails"
    );
    assert_eq!(
        store.dockets("r", 0, 10).await.expect("dockets"),
        vec![docket(0, 1, 0), docket(1, 1, 2)],
        "and changes nothing"
    );
    assert_eq!(
        store.docket_hash("r", 1).await.expect("hash"),
        Some(docket(1, 1, 2).header.hash())
    );
    assert_eq!(store.docket_hash("r", 2).await.expect("hash"), None);
    assert_eq!(store.purge("r").await.expect("purge"), (2, 2));
    assert!(store.load_registers().await.expect("registers").is_empty());
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("peer.db");
    let store = store::open(None, &path, Durability::Full)
        .await
        .expect("open");
    many_rows(store.as_ref()).await;
    story(store.as_ref()).await;
    // Data survives reopening (and migrations are idempotent).
    let store = store::open(None, &path, Durability::Fast)
        .await
        .expect("reopen");
    assert_eq!(store.load_bans().await.expect("bans").len(), 1);
}

/// Makes `pool`'s database as the migrations before transaction IDs were stored as bytes
/// (0001 to 0007 of `backend`) left it, holding a pending and a sealed transaction.
async fn old_database<DB>(pool: &sqlx::Pool<DB>, dir: &std::path::Path, backend: &str)
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let old = dir.join("migrations");
    std::fs::create_dir(&old).expect("dir");
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(all).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        if name.as_str() < "0008" {
            std::fs::copy(&path, old.join(&name)).expect("copy");
        }
    }
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("old migrations")
        .run(pool)
        .await
        .expect("old schema");
    sqlx::query(
        "INSERT INTO transactions (register_id, tx_id, payload, received_at_ms, version, \
         docket_number) VALUES ('r', $1, $2, 10, NULL, NULL), ('r', $3, $4, 10, 1, 1)",
    )
    .bind(id("a1"))
    .bind(b"one".as_slice())
    .bind(id("a2"))
    .bind(b"two".as_slice())
    .execute(pool)
    .await
    .expect("old rows");
}

/// The old rows, read through the store after its migrations ran: the same IDs, payloads and
/// states, found by ID and by prefix.
async fn old_rows_read_the_same(store: &dyn Store) {
    assert_eq!(
        store.pending("r", 10).await.expect("pending"),
        vec![(id("a1"), b"one".to_vec())]
    );
    let sealed = store.transaction("r", &id("a2")).await.expect("tx");
    assert_eq!(sealed.and_then(|t| t.version), Some(1));
    assert_eq!(
        store
            .transaction_ids_with_prefix("r", "a", 10)
            .await
            .expect("prefix"),
        vec![id("a1"), id("a2")]
    );
    assert_eq!(
        store.payloads("r", 1, 1).await.expect("payloads"),
        vec![b"two".to_vec()]
    );
}

#[tokio::test]
async fn sqlite_hex_ids_migrate_to_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("peer.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.expect("pool");
    old_database(&pool, dir.path(), "sqlite").await;
    pool.close().await;
    let store = store::open(None, &path, Durability::Full)
        .await
        .expect("open");
    old_rows_read_the_same(store.as_ref()).await;
}

#[tokio::test]
async fn postgres_hex_ids_migrate_to_bytes() {
    let Some(url) = crate::common::postgres::fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    old_database(&pool, dir.path(), "postgres").await;
    pool.close().await;
    let store = store::open(Some(&url), std::path::Path::new("unused"), Durability::Full)
        .await
        .expect("open");
    old_rows_read_the_same(store.as_ref()).await;
}

#[tokio::test]
async fn postgres_store_conforms() {
    let Some(url) = crate::common::postgres::fresh_database().await else {
        return;
    };
    let store = store::open(Some(&url), std::path::Path::new("unused"), Durability::Full)
        .await
        .expect("open");
    many_rows(store.as_ref()).await;
    story(store.as_ref()).await;
    let store = store::open(Some(&url), std::path::Path::new("unused"), Durability::Fast)
        .await
        .expect("reopen");
    assert_eq!(store.load_bans().await.expect("bans").len(), 1);
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let err = match store::open(
        Some("postgres://nobody:secret@127.0.0.1:1/none"),
        std::path::Path::new("x"),
        Durability::Full,
    )
    .await
    {
        Ok(_) => panic!("opened a database that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("cannot open the database (postgres)"), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
}

/// A transaction ID (64 lowercase hex characters, as the store requires) starting with
/// `prefix`.
fn id(prefix: &str) -> String {
    format!("{prefix:0<64}")
}

fn batch(register: &str, txs: &[(String, Vec<u8>)]) -> PendingBatch {
    PendingBatch {
        register_id: register.into(),
        txs: txs.to_vec(),
    }
}

/// Writes of many rows, which run as several multi-row statements: several callers' batches in
/// one commit, each answered with its own new IDs in its order; a seal of hundreds of rows; a
/// seal that finds one row not pending changes nothing; replicated dockets of many rows.
async fn many_rows(store: &dyn Store) {
    let mut head = RegisterRecord {
        register_id: "big".into(),
        is_public: true,
        role: Role::Origin,
        origin_key: [0x44; 32],
        created_at_ms: 1,
        height: 0,
        head_hash: [0; 32],
        latest_version: 0,
        base_height: 0,
    };
    store
        .put_register(&head, &docket_of("big", 0, 1, 0))
        .await
        .expect("register");
    let txs: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (id(&format!("b{i:04}")), format!("payload {i}").into_bytes()))
        .collect();
    let mut second = txs[250..].to_vec();
    second.push((id("b0299"), b"payload 299".to_vec())); // twice in one batch
    second.push((id("c0000"), b"new".to_vec()));
    let news = store
        .accept_pending(&[batch("big", &txs[..260]), batch("big", &second)], 5)
        .await
        .expect("accept");
    let first_ids: Vec<String> = txs[..260].iter().map(|(id, _)| id.clone()).collect();
    let mut second_ids: Vec<String> = txs[260..].iter().map(|(id, _)| id.clone()).collect();
    second_ids.push(id("c0000"));
    assert_eq!(news, vec![first_ids, second_ids]);
    assert_eq!(store.count_pending("big").await.expect("count"), 301);

    // One row not pending: the whole seal fails and nothing changes.
    let mut ids: Vec<String> = txs.iter().map(|(id, _)| id.clone()).collect();
    ids[299] = id("e"); // an ID, but held by no row
    head.height = 1;
    head.latest_version = 300;
    assert!(
        store
            .seal(&head, &docket_of("big", 1, 1, 300), &ids)
            .await
            .is_err()
    );
    assert_eq!(store.count_pending("big").await.expect("count"), 301);
    ids[299] = id("b0299");
    store
        .seal(&head, &docket_of("big", 1, 1, 300), &ids)
        .await
        .expect("seal 300");
    assert_eq!(store.count_pending("big").await.expect("count"), 1);
    let t = store
        .transaction("big", &id("b0257"))
        .await
        .expect("tx")
        .expect("held");
    assert_eq!((t.version, t.docket_number), (Some(258), Some(1)));

    // Replicated: 270 rows, one of them held as pending already (sealed in place).
    let sealed: Vec<(String, Vec<u8>)> = std::iter::once((id("c0000"), b"new".to_vec()))
        .chain((0..269).map(|i| (id(&format!("d{i:04}")), vec![7; 10])))
        .collect();
    head.height = 2;
    head.latest_version = 570;
    store
        .append(&head, &[(docket_of("big", 2, 301, 270), sealed)])
        .await
        .expect("append");
    assert_eq!(store.count_pending("big").await.expect("count"), 0);
    let t = store
        .transaction("big", &id("d0268"))
        .await
        .expect("tx")
        .expect("held");
    assert_eq!((t.version, t.docket_number), (Some(570), Some(2)));
    assert_eq!(store.purge("big").await.expect("purge"), (570, 3));
}
