//! Durability under storage faults: a data directory that fills up, a database that turns
//! read-only, PostgreSQL restarted under load. Success must mean committed: every transaction
//! answered with an ID survives, the node recovers by itself when the fault clears, and
//! `/api/health` says `failing` meanwhile.

use std::time::{Duration, Instant};

use sorcha_peer::client::ClientError;

use crate::common::faults::Tmpfs;
use crate::common::{PATIENCE, TestNode, test_config};

/// Payload size of the submissions that fill the disk.
const PAYLOAD: usize = 20_000;
/// One submission may take this long before the test counts it as failed (not acknowledged).
const SUBMIT_DEADLINE: Duration = Duration::from_secs(5);

/// A unique payload of [`PAYLOAD`] bytes.
fn payload(tag: &str, i: usize) -> Vec<u8> {
    let mut p = format!("{tag}-{i}-").into_bytes();
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    while p.len() < PAYLOAD {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push(b'a' + (x % 26) as u8);
    }
    p
}

/// Submits one payload; `Ok(id)` only if the node answered success within the deadline.
async fn submit(node: &TestNode, register: &str, payload: Vec<u8>) -> Result<String, String> {
    match tokio::time::timeout(SUBMIT_DEADLINE, node.client.submit(register, payload)).await {
        Ok(Ok(done)) => Ok(done.transaction_id),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {SUBMIT_DEADLINE:?}")),
    }
}

/// `/api/health` whatever its status code: (code, `storage`, `storageError`).
async fn health(node: &TestNode) -> (u16, String, Option<String>) {
    let response = reqwest::get(format!("{}/api/health", node.admin_url))
        .await
        .expect("GET /api/health");
    let code = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("health JSON");
    let storage = body["storage"].as_str().unwrap_or_default().to_string();
    let reason = body["storageError"].as_str().map(str::to_string);
    (code, storage, reason)
}

/// Whether health comes to report `storage` (`ok` or `failing`, with 200 or 503) within
/// `within`; prints the last answer when it does not.
async fn health_becomes(node: &TestNode, storage: &str, within: Duration) -> bool {
    let want_code = if storage == "ok" { 200 } else { 503 };
    let mut last = (0, String::new(), None);
    let start = Instant::now();
    while start.elapsed() < within {
        last = health(node).await;
        if last.0 == want_code && last.1 == storage {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("health never said storage {storage} within {within:?}; last answer: {last:?}");
    false
}

/// How many of `ids` the node returns, each read `reads` times (every read must find it:
/// pooled connections must agree).
async fn present(node: &TestNode, register: &str, ids: &[String], reads: usize) -> usize {
    let mut found = 0;
    for id in ids {
        let mut all = true;
        for _ in 0..reads {
            match node.client.transaction(register, id).await {
                Ok(_) => {}
                Err(ClientError::NotFound(_)) => all = false,
                Err(e) => panic!("reading {id}: {e}"),
            }
        }
        if all {
            found += 1;
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_loses_nothing_acknowledged_and_recovers_without_restart() {
    let test = "full_disk_loses_nothing_acknowledged_and_recovers_without_restart";
    let Some(disk) = Tmpfs::mount(test, "3m") else {
        return;
    };
    let mut config = test_config(disk.path(), "127.0.0.1");
    config.seal_interval = Duration::from_millis(50);
    let mut node = TestNode::start_with(config).await;
    node.client
        .create_register("full", false)
        .await
        .expect("create register");

    // Fill the disk: every ID answered is recorded; stop after a run of failures.
    let mut acknowledged = Vec::new();
    let mut failures = Vec::new();
    let mut consecutive = 0;
    let mut i = 0;
    while consecutive < 8 && i < 400 {
        i += 1;
        match submit(&node, "full", payload("fill", i)).await {
            Ok(id) => {
                acknowledged.push(id);
                consecutive = 0;
            }
            Err(e) => {
                failures.push(e);
                consecutive += 1;
            }
        }
    }
    let acked_while_filling = acknowledged.len();
    eprintln!(
        "disk full after {i} submissions: {acked_while_filling} acknowledged, {} failed; \
         first failure: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(!failures.is_empty(), "the 3 MB disk never filled up");
    assert!(
        acked_while_filling > 0,
        "nothing was accepted before the disk filled up"
    );
    let errors_are_clear = failures
        .iter()
        .all(|e| e.contains("503") && (e.contains("full") || e.contains("disk")));

    // Health says failing while writes fail (the fault has not cleared).
    let failing_reported = health_becomes(&node, "failing", Duration::from_secs(5)).await;
    let (_, _, reason) = health(&node).await;

    // Free space: the node must take writes again by itself, without a restart.
    disk.remount("size=64m");
    let mut recovered = false;
    let start = Instant::now();
    let mut j = 0;
    while start.elapsed() < Duration::from_secs(15) {
        j += 1;
        if let Ok(id) = submit(&node, "full", payload("after", j)).await {
            acknowledged.push(id);
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut healthy_again = false;
    if recovered {
        for k in 0..5 {
            let id = submit(&node, "full", payload("more", k))
                .await
                .expect("writes keep succeeding once space is back");
            acknowledged.push(id);
        }
        healthy_again = health_becomes(&node, "ok", Duration::from_secs(5)).await;
    }

    // Everything acknowledged is readable (from every pooled connection) and gets sealed.
    let visible_before_restart = present(&node, "full", &acknowledged, 3).await;
    let sealed_before_restart = tokio::time::timeout(PATIENCE, async {
        loop {
            if node
                .register("full")
                .await
                .is_some_and(|r| r.pending_transactions == 0)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .is_ok();
    let version_before = node
        .register("full")
        .await
        .expect("register")
        .latest_version;

    node.restart().await;
    let after_restart = present(&node, "full", &acknowledged, 1).await;
    let version_after = node
        .register("full")
        .await
        .expect("register")
        .latest_version;
    node.stop().await;
    eprintln!(
        "acknowledged {} (while filling {acked_while_filling}); visible before restart \
         {visible_before_restart}; present after restart {after_restart}; version {version_before} \
         -> {version_after}; health failing while full: {failing_reported} ({reason:?}); \
         recovered without restart: {recovered}; health ok again: {healthy_again}",
        acknowledged.len()
    );

    assert!(
        errors_are_clear,
        "failed submissions must be 503 naming the full disk: {failures:?}"
    );
    assert!(
        failing_reported,
        "health must say storage failing while writes fail"
    );
    assert!(
        reason.is_some_and(|r| r.contains("full")),
        "health must give the reason"
    );
    assert!(recovered, "writes must succeed again once space is back");
    assert!(healthy_again, "health must say ok again after recovery");
    assert_eq!(
        visible_before_restart,
        acknowledged.len(),
        "every acknowledged transaction must be readable"
    );
    assert!(
        sealed_before_restart,
        "pending transactions must get sealed"
    );
    assert_eq!(
        after_restart,
        acknowledged.len(),
        "every acknowledged transaction must survive a restart"
    );
    assert!(
        version_after >= version_before,
        "the register went back from version {version_before} to {version_after}"
    );
    assert!(
        version_after as usize >= acknowledged.len(),
        "version {version_after} for {} acknowledged transactions",
        acknowledged.len()
    );
}
