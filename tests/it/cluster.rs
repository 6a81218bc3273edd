//! Discovery, exchange, heartbeats and reconnection with real nodes on loopback.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{HEARTBEAT, PATIENCE, TestCluster, bin, cli, holds_for, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn nodes_seeded_with_a_learn_each_other_through_peer_exchange() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "A".into()).await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.name = "B".into();
            c.seeds = vec![seed.clone()];
        })
        .await;
    let mut c = net
        .start(|c| {
            c.name = "C".into();
            c.seeds = vec![seed.clone()];
        })
        .await;

    // B was only given A, yet ends up connected to C.
    b.wait_for_state(&c.peer_id, "connected", PATIENCE).await;
    c.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    let view = b.view_of(&c.peer_id).await.expect("B knows C");
    assert_eq!(view.endpoint, c.seed(), "C's address as it announced it");
    let seed = c.seed();
    let (host, port) = seed.rsplit_once(':').expect("host:port");
    assert_eq!(
        (view.address.as_str(), view.port.to_string().as_str()),
        (host, port),
        "apart, as the platform reads them"
    );
    assert_eq!(view.name, "C");
    // Latency needs one heartbeat round trip.
    wait_until("a latency sample for C on B", PATIENCE, || async {
        b.view_of(&c.peer_id)
            .await
            .is_some_and(|p| p.latency.is_some())
    })
    .await;
    let view = b.view_of(&c.peer_id).await.expect("B knows C");
    assert!(view.quality_score > 0.0, "{view:?}");
    assert!(!view.is_seed_node, "C was learnt, not configured");
    let a_on_b = b.view_of(&a.peer_id).await.expect("B knows A");
    assert!(a_on_b.is_seed_node, "A is B's seed");

    // The same, as an operator sees it.
    let (code, table, _) = cli(&b, &["peers", "list"]).await;
    assert_eq!(code, 0);
    let row = table
        .lines()
        .find(|l| l.contains(&c.peer_id[..12]))
        .unwrap_or_else(|| panic!("C missing from table:\n{table}"));
    assert!(row.contains("connected") && row.contains("ms"), "{row}");
    let (code, json, _) = cli(&b, &["peers", "list", "--state", "connected", "-o", "json"]).await;
    assert_eq!(code, 0);
    let peers: serde_json::Value = serde_json::from_str(&json).expect("one JSON document");
    let c_json = peers
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["peerId"] == c.peer_id.as_str())
        .expect("C listed as connected");
    assert_eq!(c_json["state"], "connected");
    assert!(
        c_json["averageLatencyMs"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0)
    );
    assert!(c_json["qualityScore"].as_f64().is_some_and(|s| s > 0.0));
    for field in [
        "name",
        "address",
        "firstSeen",
        "lastSeen",
        "failureCount",
        "isSeedNode",
        "successRate",
        "qualityRating",
        "qualityComponents",
        "isBanned",
        "bannedAt",
        "banReason",
        "banExpiresAt",
        "advertisedRegisters",
    ] {
        assert!(
            c_json.get(field).is_some(),
            "field {field} missing: {c_json}"
        );
    }

    c.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_off_keeps_a_node_to_its_seed() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.exchange_interval = Duration::ZERO;
            c.seeds = vec![seed.clone()];
        })
        .await;
    let mut c = net
        .start(|c| {
            c.exchange_interval = Duration::ZERO;
            c.seeds = vec![seed.clone()];
        })
        .await;
    b.wait_for_state(&a.peer_id, "connected", PATIENCE).await;
    c.wait_for_state(&a.peer_id, "connected", PATIENCE).await;
    // With exchange off, B never hears of C.
    holds_for("B not to know C", HEARTBEAT * 5, || async {
        b.state_of(&c.peer_id).await == "unknown"
    })
    .await;
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

/// A node process killed with SIGKILL is shown as not connected within a few heartbeats, and
/// reconnects when started again on the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_marked_down_and_reconnects_after_restart() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let b_listen = format!("{}:0", net.ip());
    let spawn_b = |seed: String| {
        let program = bin().get_program().to_owned();
        Command::new(program)
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args([
                "--listen",
                &b_listen,
                "--admin-listen",
                "127.0.0.1:0",
                "--seed",
                &seed,
            ])
            .env("SORCHA_PEER_HEARTBEAT_INTERVAL", "100ms")
            .env("SORCHA_PEER_DIAL_INTERVAL", "50ms")
            .env("SORCHA_PEER_RECONNECT_BACKOFF_MIN", "50ms")
            .env("SORCHA_PEER_RECONNECT_BACKOFF_MAX", "400ms")
            .env("SORCHA_PEER_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn node B")
    };
    let mut b = spawn_b(a.seed());
    // B's identity is in its key file; wait for the connection, then learn B's ID from A.
    wait_until("B to connect to A", PATIENCE, || async {
        a.client
            .peers(Some("connected"), None, None)
            .await
            .is_ok_and(|p| p.len() == 1)
    })
    .await;
    let b_id = a
        .client
        .peers(Some("connected"), None, None)
        .await
        .expect("list")[0]
        .peer_id
        .clone();

    b.kill().expect("SIGKILL B");
    b.wait().expect("reap B");
    // Three missed heartbeats at most; in practice the broken stream is noticed at once.
    a.wait_for_state(&b_id, "disconnected", HEARTBEAT * 10)
        .await;

    let mut b = spawn_b(a.seed());
    a.wait_for_state(&b_id, "connected", PATIENCE).await;
    b.kill().expect("SIGKILL B");
    b.wait().expect("reap B");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_peer_accumulates_failures_and_reset_reports_them() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    b.stop().await;
    // A keeps trying to dial B (it fills outbound slots from known peers) and counts failures.
    wait_until("failures for the stopped B", PATIENCE, || async {
        a.view_of(&b.peer_id)
            .await
            .is_some_and(|p| p.failure_count >= 2)
    })
    .await;
    let (code, json, _) = cli(&a, &["peers", "reset", &b.peer_id[..8], "-o", "json"]).await;
    assert_eq!(code, 0);
    let reset: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(
        reset["previousFailureCount"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{reset}"
    );
    assert_eq!(reset["failureCount"], 0);
    assert_eq!(reset["peerId"], b.peer_id.as_str());
    a.stop().await;
}
