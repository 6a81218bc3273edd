//! Catching up a register in batches bounded by bytes as well as dockets (`sync_batch_bytes`,
//! enforced by the serving node and asked for by the requester), with progress in dockets and
//! transactions, and a log line when the catch-up is done.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use sorcha_peer::events::EventKind;

use crate::common::{
    PATIENCE, TestCluster, TestNode, bin, metric, replicate_along, run_cmd, serve_command,
};

/// Transactions in the chain caught up, and their payload size: 12 kB in all.
const TRANSACTIONS: usize = 120;
const PAYLOAD_BYTES: usize = 100;
/// A batch bound well below the chain's size (the smallest allowed).
const SMALL_BATCH: usize = 1024;

/// Creates `orders` at `origin` with [`TRANSACTIONS`] transactions sealed in dockets of ten.
async fn fill(origin: &TestNode) {
    origin
        .client
        .create_register("orders", true)
        .await
        .expect("register");
    let payloads: Vec<String> = (0..TRANSACTIONS)
        .map(|i| format!("{i:04}-{}", "x".repeat(PAYLOAD_BYTES - 5)))
        .collect();
    origin
        .client
        .submit_batch("orders", payloads)
        .await
        .expect("submit");
    origin
        .wait_for_version("orders", TRANSACTIONS as u64, PATIENCE)
        .await;
}

/// A replica of `orders` catches up from an origin, each with its own `sync_batch_bytes`;
/// returns the batches the replica received.
async fn batches_to_catch_up(origin_bytes: usize, replica_bytes: usize) -> f64 {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            c.max_docket_transactions = 10;
            c.sync_batch_bytes = origin_bytes;
        })
        .await;
    fill(&a).await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.sync_batch_bytes = replica_bytes;
        })
        .await;
    replicate_along(&[&a, &b], "orders").await;
    b.wait_for_version("orders", TRANSACTIONS as u64, PATIENCE)
        .await;
    let batches = metric(
        &b.client.metrics().await.expect("metrics"),
        "sorcha_peer_sync_batches_received_total",
    );
    // The last progress event tells dockets and transactions, against their targets.
    let recent = b.client.recent_events(500).await.expect("events");
    let last = recent
        .events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::SubscriptionProgress {
                version,
                target_version,
                ..
            } => Some((*version, *target_version)),
            _ => None,
        })
        .expect("a progress event");
    let total = Some(TRANSACTIONS as u64);
    assert_eq!(last, (total, total), "transactions in the progress event");
    b.stop().await;
    a.stop().await;
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_batches_are_bounded_by_bytes_on_either_side() {
    let default = sorcha_peer::config::Config::defaults()
        .expect("defaults")
        .sync_batch_bytes;
    // Each batch carries at most SMALL_BATCH bytes of payloads (a docket is 1 kB here), so
    // 12 kB take at least 12 batches, whichever side sets the bound.
    let minimum = (TRANSACTIONS * PAYLOAD_BYTES / SMALL_BATCH) as f64;
    let served = batches_to_catch_up(SMALL_BATCH, default).await;
    assert!(served >= minimum, "the server's bound: {served} batches");
    let asked = batches_to_catch_up(default, SMALL_BATCH).await;
    assert!(asked >= minimum, "the requester's bound: {asked} batches");
    // The defaults take the whole chain in one batch (12 dockets, under both bounds).
    let whole = batches_to_catch_up(default, default).await;
    assert!(whole < minimum, "{whole} batches with the defaults");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_catch_up_is_logged_with_its_rate() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            c.max_docket_transactions = 10;
            c.sync_batch_bytes = SMALL_BATCH;
        })
        .await;
    fill(&a).await;

    // The replica is a real `serve` process, so its log is what an operator reads.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = serve_command(dir.path(), &net.ip())
        .args(["--seed", &a.seed(), "--log-level", "info"])
        .spawn()
        .expect("spawn serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    while !dir.path().join("admin.url").exists() {
        assert!(started.elapsed() < PATIENCE, "serve did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client_for = |args: &[&str]| {
        let mut cmd = bin();
        cmd.arg("--data-dir").arg(dir.path()).args(args);
        cmd
    };
    // Wait until the origin's register is visible, then subscribe and wait (no terminal: no
    // bar, one line at the end).
    let started = Instant::now();
    loop {
        let (_, out, _) = run_cmd(client_for(&["registers", "available", "-o", "json"])).await;
        if out.contains("\"orders\"") {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "orders never advertised");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, _, err) = run_cmd(client_for(&[
        "registers",
        "subscribe",
        "orders",
        "--mode",
        "full-replica",
        "--wait",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("fully-replicated"), "{err}");

    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    let log = reader.join().expect("stderr");
    let line = log
        .lines()
        .find(|l| l.contains("sync complete"))
        .unwrap_or_else(|| panic!("no completion line in:\n{log}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(line.contains("register=orders"), "{line}");
    assert!(
        line.contains(&format!("{TRANSACTIONS} transactions in")),
        "{line}"
    );
    assert!(line.contains("transactions/s"), "{line}");
    a.stop().await;
}
