//! Registers replicated between real nodes: verified, resumable, pushed live, and visible
//! through `registers`, `tx` and `lag`.

use std::time::Duration;

use sorcha_peer::client::ClientError;

use crate::common::{PATIENCE, TestCluster, TestNode, cli, metric, postgres, wait_for, wait_until};

/// Submits `n` transactions `prefix-1 … prefix-n` at `node` in batches.
async fn load(node: &TestNode, register: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let payloads: Vec<String> = (1..=n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in payloads.chunks(1000) {
        let done = node
            .client
            .submit_batch(register, chunk.to_vec())
            .await
            .expect("submit batch");
        ids.extend(done.transaction_ids);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn full_and_forward_only_replicas_follow_the_origin() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "origin".into()).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    let mut c = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;

    let (code, _, err) = cli(&a, &["registers", "create", "orders", "--public"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = cli(&a, &["registers", "create", "secret"]).await;
    assert_eq!(code, 0);
    load(&a, "orders", "order", 5000).await;
    a.wait_for_version("orders", 5000, PATIENCE).await;

    // B sees the public register (never the private one) and replicates all of it.
    wait_until("orders to be available on B", PATIENCE, || async {
        b.client.available_registers().await.is_ok_and(|r| {
            r.iter()
                .any(|a| a.register_id == "orders" && a.latest_version == 5000)
        })
    })
    .await;
    let available = b.client.available_registers().await.expect("available");
    assert!(
        available.iter().all(|r| r.register_id != "secret"),
        "{available:?}"
    );
    let orders = available
        .iter()
        .find(|r| r.register_id == "orders")
        .expect("orders");
    assert_eq!((orders.peer_count, orders.full_replica_peer_count), (1, 1));

    let (code, out, err) = cli(
        &b,
        &[
            "registers",
            "subscribe",
            "orders",
            "--mode",
            "full-replica",
            "--wait",
            "--timeout",
            "60s",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let on_a = a.register("orders").await.expect("A holds orders");
    let on_b = b.register("orders").await.expect("B holds orders");
    assert_eq!(on_b.head_hash, on_a.head_hash);
    assert_eq!(on_b.latest_version, 5000);
    assert_eq!(on_b.transaction_count, 5000);
    assert_eq!(on_b.role, "full-replica");
    assert_eq!(on_b.sync_state, "fully-replicated");

    // lag against the origin: nothing behind, exit 0 under --max-lag 0.
    let (code, json, err) = cli(
        &b,
        &[
            "lag",
            "--against",
            &a.seed(),
            "--max-lag",
            "0",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&json).expect("json");
    let row = &rows[0];
    assert_eq!(row["registerId"], "orders");
    assert_eq!(row["transactionsBehind"], 0);
    assert_eq!(row["docketsBehind"], 0);
    assert_eq!(row["diverged"], false);
    assert_eq!(row["localVersion"], 5000);

    // Lag is exported for monitoring too.
    let metrics = b.client.metrics().await.expect("metrics");
    assert!(
        metrics.contains("sorcha_peer_register_dockets_behind{register=\"orders\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sorcha_peer_register_transactions_behind{register=\"orders\"} 0"),
        "{metrics}"
    );

    // C starts at the head and does not pull history. (First the announcements A and B queued
    // while loading are sent: they would reach C as soon as it carries the register, and a
    // transaction pulled that way counts as held.)
    for node in [&a, &b] {
        wait_until("the announcement queues to drain", PATIENCE, || async {
            let text = node.client.metrics().await.expect("metrics");
            metric(&text, "sorcha_peer_gossip_queue_depth") == 0.0
        })
        .await;
    }
    let sub = c
        .client
        .subscribe("orders", "forward-only")
        .await
        .expect("subscribe");
    assert_eq!(sub.mode, "ForwardOnly");
    wait_until("C to be active", PATIENCE, || async {
        c.register("orders")
            .await
            .is_some_and(|r| r.sync_state == "active")
    })
    .await;
    assert_eq!(
        c.register("orders")
            .await
            .expect("orders")
            .transaction_count,
        0
    );

    // New transactions reach both replicas within seconds, pushed live.
    let tx = a
        .client
        .submit("orders", b"fresh".to_vec())
        .await
        .expect("submit")
        .transaction_id;
    let pending = a.client.transaction("orders", &tx).await.expect("tx");
    assert!(pending.state == "pending" || pending.state == "sealed");
    for node in [&a, &b, &c] {
        node.wait_sealed("orders", &tx, Duration::from_secs(5))
            .await;
        let sealed = node.client.transaction("orders", &tx).await.expect("tx");
        assert_eq!(sealed.version, Some(5001));
    }
    assert_eq!(
        c.register("orders")
            .await
            .expect("orders")
            .transaction_count,
        1
    );

    // A submission at a replica travels to the origin by gossip and comes back sealed.
    // (An empty input is refused as bad input, changing nothing.)
    let (code, _, err) = cli(&b, &["tx", "submit", "orders", "-"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot be empty"), "{err}");
    let forwarded = b
        .client
        .submit("orders", b"via-b".to_vec())
        .await
        .expect("forwarded")
        .transaction_id;
    c.wait_sealed("orders", &forwarded, Duration::from_secs(5))
        .await;

    // A lagging view: C compared with B shows no divergence.
    let lag = c.client.lag(&b.seed(), Some("orders")).await.expect("lag");
    assert!(!lag[0].diverged, "{lag:?}");

    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// Subscription rules, on either backend for the subscribing node.
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn subscription_rules(database_url: Option<String>) {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.database_url = database_url.clone();
        })
        .await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.client
        .create_register("ledger", true)
        .await
        .expect("create");
    load(&a, "ledger", "entry", 250).await;
    a.wait_for_version("ledger", 250, PATIENCE).await;
    // At A's full height: a subscription that starts from an older advertisement is "fully
    // replicated" at that height until the next heartbeat.
    wait_until("B to see ledger at version 250", PATIENCE, || async {
        b.client.available_registers().await.is_ok_and(|r| {
            r.iter()
                .any(|x| x.register_id == "ledger" && x.latest_version == 250)
        })
    })
    .await;

    // Unknown register: 404 / exit 5. Invalid mode: exit 2.
    let (code, _, err) = cli(
        &b,
        &["registers", "subscribe", "nope", "--mode", "full-replica"],
    )
    .await;
    assert_eq!(code, 5, "{err}");
    let (code, _, _) = cli(
        &b,
        &["registers", "subscribe", "ledger", "--mode", "sideways"],
    )
    .await;
    assert_eq!(code, 2);
    let (code, _, err) = cli(
        &b,
        &[
            "registers",
            "subscribe",
            "ledger",
            "--mode",
            "full-replica",
            "--wait",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    // Again in the same mode (the default): a no-op that succeeds. In the other mode: 409 /
    // exit 1, saying what to do.
    let (code, _, err) = cli(&b, &["registers", "subscribe", "ledger"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(
        &b,
        &["registers", "subscribe", "ledger", "--mode", "forward-only"],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("already subscribed") && err.contains("unsubscribe first"),
        "{err}"
    );

    // Banning the only source is refused unless forced.
    let (code, _, err) = cli(&b, &["peers", "ban", &a.peer_id[..8]]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("only source") && err.contains("ledger"),
        "{err}"
    );
    assert!(b.client.bans().await.expect("bans").is_empty());

    // Purge refuses while subscribed; unsubscribe keeps data; purge removes and reports it.
    let refused = b.client.purge("ledger").await;
    assert!(
        matches!(refused, Err(ClientError::Conflict(_))),
        "{refused:?}"
    );
    let done = b
        .client
        .unsubscribe("ledger", false)
        .await
        .expect("unsubscribe");
    assert!(done.cache_retained);
    let kept = b.register("ledger").await.expect("data kept");
    assert_eq!(kept.transaction_count, 250);
    assert_eq!(kept.sync_state, "stopped");
    let (code, json, _) = cli(&b, &["registers", "purge", "ledger", "-o", "json"]).await;
    assert_eq!(code, 0);
    let purged: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(purged["transactionsRemoved"], 250);
    assert!(b.register("ledger").await.is_none());
    let again = b.client.unsubscribe("ledger", false).await;
    assert!(matches!(again, Err(ClientError::NotFound(_))));

    // The origin's own data cannot be purged; oversized payloads are refused.
    assert!(matches!(
        a.client.purge("ledger").await,
        Err(ClientError::Conflict(_))
    ));
    let big = vec![b'x'; a.config.max_transaction_size + 1];
    let refused = a.client.submit("ledger", big).await;
    assert!(
        matches!(refused, Err(ClientError::Server { status: 413, .. })),
        "{refused:?}"
    );

    // With no subscription left, a forced ban is allowed anyway.
    let (code, _, err) = cli(&b, &["peers", "ban", &a.peer_id[..8], "--force"]).await;
    assert_eq!(code, 0, "{err}");

    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_rules_on_sqlite() {
    subscription_rules(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_rules_on_postgres() {
    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    subscription_rules(Some(url)).await;
}

/// A replica killed with SIGKILL in the middle of catching up on 60 000 transactions resumes
/// from its last checkpoint and ends with exactly the origin's transactions and head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn a_replica_killed_mid_catch_up_resumes_without_gaps_or_duplicates() {
    let mut net = TestCluster::new();
    use std::process::{Command, Stdio};

    const TOTAL: u64 = 60_000;
    let mut a = net.start(|_| {}).await;
    a.client
        .create_register("bulk", true)
        .await
        .expect("create");
    load(&a, "bulk", "tx", TOTAL as usize).await;
    a.wait_for_version("bulk", TOTAL, Duration::from_secs(60))
        .await;
    let origin = a.register("bulk").await.expect("bulk");

    let dir = tempfile::tempdir().expect("tempdir");
    let b_listen = format!("{}:0", net.ip());
    let spawn_b = || {
        Command::new(crate::common::bin().get_program())
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args([
                "--listen",
                &b_listen,
                "--admin-listen",
                "127.0.0.1:0",
                "--seed",
                &a.seed(),
            ])
            .env("SORCHA_PEER_HEARTBEAT_INTERVAL", "100ms")
            .env("SORCHA_PEER_DIAL_INTERVAL", "50ms")
            .env("SORCHA_PEER_SYNC_BATCH_DOCKETS", "1")
            .env("SORCHA_PEER_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn B")
    };
    // B's admin client, from the files the node writes in its data directory.
    let client_of_b = || async {
        let url = std::fs::read_to_string(dir.path().join("admin.url")).ok()?;
        let token = std::fs::read_to_string(dir.path().join("admin.token")).ok()?;
        let client =
            sorcha_peer::client::AdminClient::new(url.trim(), Some(token.trim().to_string()))
                .ok()?;
        client.status().await.ok().map(|_| client)
    };

    let mut b = spawn_b();
    let client = wait_for("B to come up", PATIENCE, client_of_b).await;
    wait_until("B to see bulk", PATIENCE, || async {
        client
            .available_registers()
            .await
            .is_ok_and(|r| r.iter().any(|x| x.register_id == "bulk"))
    })
    .await;
    client
        .subscribe("bulk", "full-replica")
        .await
        .expect("subscribe");
    let at_kill = wait_for(
        "B to be part-way through",
        Duration::from_secs(60),
        || async {
            client
                .registers()
                .await
                .ok()
                .and_then(|r| r.into_iter().find(|x| x.register_id == "bulk"))
                .map(|r| r.latest_version)
                .filter(|v| *v >= 5_000)
        },
    )
    .await;
    b.kill().expect("SIGKILL B");
    b.wait().expect("reap B");
    assert!(
        at_kill < TOTAL,
        "catch-up finished before it could be interrupted"
    );
    let _ = std::fs::remove_file(dir.path().join("admin.url"));

    // Restarted, B resumes the persisted subscription from its checkpoint.
    let mut b = spawn_b();
    let client = wait_for("B to come back", PATIENCE, client_of_b).await;
    wait_until(
        "B to finish catching up",
        Duration::from_secs(120),
        || async {
            client
                .registers()
                .await
                .ok()
                .and_then(|r| r.into_iter().find(|x| x.register_id == "bulk"))
                .is_some_and(|r| r.latest_version == TOTAL && r.sync_state == "fully-replicated")
        },
    )
    .await;
    let held = client.registers().await.expect("registers");
    let held = held.iter().find(|r| r.register_id == "bulk").expect("bulk");
    assert_eq!(held.head_hash, origin.head_hash);
    b.kill().expect("stop B");
    b.wait().expect("reap B");

    // Exactly the origin's transactions: every version once, nothing else.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&format!(
            "sqlite://{}",
            dir.path().join("sorcha-peer.db").display()
        ))
        .await
        .expect("open B's database");
    let (rows, versions, min, max): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT version), MIN(version), MAX(version) FROM transactions WHERE register_id = 'bulk'",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(
        (rows, versions, min, max),
        (TOTAL as i64, TOTAL as i64, 1, TOTAL as i64)
    );
    pool.close().await;
    a.stop().await;
}
