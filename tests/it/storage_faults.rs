//! Durability under storage faults: a data directory that fills up, a database that turns
//! read-only, PostgreSQL restarted under load. Success must mean committed: every transaction
//! answered with an ID survives, the node recovers by itself when the fault clears, and
//! `/api/health` says `failing` meanwhile.

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sorcha_peer::client::{AdminClient, ClientError};

use crate::common::faults::{self, Tmpfs};
use crate::common::{PATIENCE, TestCluster, TestNode, postgres, test_config, wait_until};

/// Payload size of the submissions that fill the disk.
pub(crate) const PAYLOAD: usize = 20_000;
/// `storage_flap_window` of the nodes that recover from a fault here.
const FLAP_WINDOW: Duration = Duration::from_secs(1);
/// One submission may take this long before the test counts it as failed (not acknowledged).
const SUBMIT_DEADLINE: Duration = Duration::from_secs(5);

/// A unique payload of [`PAYLOAD`] bytes.
pub(crate) fn payload(tag: &str, i: usize) -> Vec<u8> {
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
pub(crate) async fn submit(
    node: &TestNode,
    register: &str,
    payload: Vec<u8>,
) -> Result<String, String> {
    submit_to(&node.client, register, payload).await
}

async fn submit_to(
    client: &AdminClient,
    register: &str,
    payload: Vec<u8>,
) -> Result<String, String> {
    match tokio::time::timeout(SUBMIT_DEADLINE, client.submit(register, payload)).await {
        Ok(Ok(done)) => Ok(done.transaction_id),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {SUBMIT_DEADLINE:?}")),
    }
}

/// `/api/health` whatever its status code: (code, `storage`, `storageError`).
pub(crate) async fn health(node: &TestNode) -> (u16, String, Option<String>) {
    let response = reqwest::get(format!("{}/api/health", node.admin_url))
        .await
        .expect("GET /api/health");
    let code = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("health JSON");
    let storage = body["storage"].as_str().unwrap_or_default().to_string();
    let reason = body["storageError"].as_str().map(str::to_string);
    (code, storage, reason)
}

/// `/readyz`: (code, `status`).
pub(crate) async fn readiness(node: &TestNode) -> (u16, String) {
    let response = reqwest::get(format!("{}/readyz", node.admin_url))
        .await
        .expect("GET /readyz");
    let code = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("readyz JSON");
    (
        code,
        body["status"].as_str().unwrap_or_default().to_string(),
    )
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

/// Waits until the node has sealed everything it accepted; returns the register's version.
async fn sealed_version(node: &TestNode, register: &str) -> u64 {
    wait_until(
        "every accepted transaction to be sealed",
        PATIENCE,
        || async {
            node.register(register)
                .await
                .is_some_and(|r| r.pending_transactions == 0)
        },
    )
    .await;
    node.register(register)
        .await
        .expect("register")
        .latest_version
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
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn full_disk_loses_nothing_acknowledged_and_recovers_without_restart() {
    let test = "full_disk_loses_nothing_acknowledged_and_recovers_without_restart";
    let Some(disk) = Tmpfs::mount(test, "3m") else {
        return;
    };
    let mut config = test_config(disk.path(), &TestCluster::new().ip());
    config.seal_interval = Duration::from_millis(50);
    // Writes flip between failing and working while the disk fills, so storage is flapping
    // afterwards: a short window lets recovery show (`storage_health.rs` tests flapping).
    config.storage_flap_window = FLAP_WINDOW;
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
    let ready_while_full = readiness(&node).await;

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
    let mut failures_after_recovery = Vec::new();
    if recovered {
        for k in 0..5 {
            match submit(&node, "full", payload("more", k)).await {
                Ok(id) => acknowledged.push(id),
                Err(e) => failures_after_recovery.push(e),
            }
        }
        healthy_again = health_becomes(&node, "ok", Duration::from_secs(5) + FLAP_WINDOW).await;
    }
    let ready_again = readiness(&node).await;

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
    assert_eq!(
        ready_while_full,
        (503, "failing".to_string()),
        "/readyz while full"
    );
    assert!(recovered, "writes must succeed again once space is back");
    assert!(
        failures_after_recovery.is_empty(),
        "writes must keep succeeding once space is back: {failures_after_recovery:?}"
    );
    assert_eq!(
        ready_again,
        (200, "ready".to_string()),
        "/readyz after recovery"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn postgres_restart_under_load_loses_nothing_acknowledged_and_reconnects() {
    let mut net = TestCluster::new();
    let Some(cluster) = postgres::OwnCluster::start() else {
        return;
    };
    let url = cluster.url("postgres");
    let mut node = net
        .start(|c| {
            c.database_url = Some(url.clone());
            c.seal_interval = Duration::from_millis(50);
            // Pooled connections fail one by one after the restart: recovery, not flapping.
            c.storage_flap_window = FLAP_WINDOW;
        })
        .await;
    node.client
        .create_register("pg", false)
        .await
        .expect("create register");

    // Three clients submit all along; every ID answered is recorded.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut submitters = Vec::new();
    for worker in 0..3 {
        let (client, acknowledged, failures, stop) = (
            node.client.clone(),
            acknowledged.clone(),
            failures.clone(),
            stop.clone(),
        );
        submitters.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let mut p = payload(&format!("w{worker}"), i);
                p.truncate(1_000);
                match submit_to(&client, "pg", p).await {
                    Ok(id) => acknowledged.lock().expect("ids").push(id),
                    Err(e) => {
                        failures.lock().expect("failures").push(e);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    let count = || acknowledged.lock().expect("ids").len();
    wait_until("submissions before the restart", PATIENCE, || async {
        count() >= 30
    })
    .await;

    // Stop PostgreSQL under load: health says failing while it is down.
    tokio::task::block_in_place(|| cluster.stop_server()).expect("stop PostgreSQL");
    let before_outage = count();
    assert!(
        health_becomes(&node, "failing", Duration::from_secs(6)).await,
        "health must say storage failing while PostgreSQL is down"
    );
    let (_, _, reason) = health(&node).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| cluster.start_server()).expect("start PostgreSQL");

    // The node reconnects by itself: submissions succeed again, health is ok again.
    let after_outage = count();
    wait_until(
        "submissions to succeed after the restart",
        PATIENCE,
        || async { count() >= after_outage + 30 },
    )
    .await;
    assert!(
        health_becomes(&node, "ok", Duration::from_secs(10) + FLAP_WINDOW).await,
        "health must say ok again once PostgreSQL is back"
    );
    stop.store(true, Ordering::SeqCst);
    for s in submitters {
        s.await.expect("submitter");
    }
    let acknowledged = acknowledged.lock().expect("ids").clone();
    let failures = failures.lock().expect("failures").clone();
    eprintln!(
        "acknowledged {} ({before_outage} before the outage), {} failed; health while down: {reason:?}",
        acknowledged.len(),
        failures.len()
    );
    assert!(
        !failures.is_empty(),
        "no submission failed: PostgreSQL was not really down"
    );

    // Every acknowledged transaction is there, sealed, before and after a node restart.
    let version = sealed_version(&node, "pg").await;
    assert_eq!(
        present(&node, "pg", &acknowledged, 2).await,
        acknowledged.len()
    );
    assert!(version as usize >= acknowledged.len());
    node.restart().await;
    assert_eq!(
        present(&node, "pg", &acknowledged, 1).await,
        acknowledged.len()
    );
    let after = node.register("pg").await.expect("register").latest_version;
    assert!(
        after >= version,
        "the register went back from {version} to {after}"
    );
    node.stop().await;
}

/// Sets or clears the immutable attribute of `path` (root, and a filesystem that has it: the
/// tests' tmpfs does). A file that cannot be opened for writing is how a read-only database
/// looks to SQLite, whoever runs the node (root ignores permission bits, not this attribute).
fn set_immutable(path: &std::path::Path, on: bool) -> Result<(), String> {
    let out = std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .output()
        .map_err(|e| format!("run chattr: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn read_only_database_acknowledges_nothing_and_recovers_without_restart() {
    let test = "read_only_database_acknowledges_nothing_and_recovers_without_restart";
    let Some(disk) = Tmpfs::mount(test, "64m") else {
        return;
    };
    let mut node = TestNode::start_with(test_config(disk.path(), &TestCluster::new().ip())).await;
    node.client
        .create_register("ro", false)
        .await
        .expect("create register");
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        acknowledged.push(
            submit(&node, "ro", payload("before", i))
                .await
                .expect("submit"),
        );
    }
    let version = sealed_version(&node, "ro").await;

    // The database file becomes read-only; the node starts on it all the same.
    node.stop().await;
    let db = node.config.sqlite_path();
    if let Err(e) = set_immutable(&db, true) {
        faults::skip(
            test,
            &format!("cannot make {} read-only: {e}", db.display()),
        );
        return;
    }
    struct Writable(std::path::PathBuf);
    impl Drop for Writable {
        fn drop(&mut self) {
            if let Err(e) = set_immutable(&self.0, false) {
                eprintln!(
                    "warning: cannot make {} writable again: {e}",
                    self.0.display()
                );
            }
        }
    }
    let writable = Writable(db.clone());
    node.restart().await;
    assert_eq!(
        present(&node, "ro", &acknowledged, 2).await,
        acknowledged.len(),
        "reads still work"
    );

    // Health says failing even before anyone writes; every write fails clearly.
    assert!(
        health_becomes(&node, "failing", Duration::from_secs(5)).await,
        "health must say storage failing on a read-only database"
    );
    let (_, _, reason) = health(&node).await;
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("readonly")),
        "health must give the reason: {reason:?}"
    );
    // The event stream tells it too.
    let recent = node.client.recent_events(1000).await.expect("events");
    assert!(
        recent.events.iter().any(|e| matches!(&e.kind,
            sorcha_peer::events::EventKind::StorageFailing { reason } if reason.contains("readonly"))),
        "a storageFailing event: {:?}",
        recent.events
    );
    for i in 0..5 {
        let refused = submit(&node, "ro", payload("refused", i)).await;
        let Err(e) = refused else {
            panic!("a write to a read-only database was acknowledged: {refused:?}");
        };
        assert!(e.contains("503") && e.contains("readonly"), "{e}");
    }

    // Writable again: the node takes writes without a restart, health is ok again.
    drop(writable);
    let mut recovered = None;
    let start = Instant::now();
    let mut j = 0;
    while recovered.is_none() && start.elapsed() < Duration::from_secs(10) {
        j += 1;
        recovered = submit(&node, "ro", payload("after", j)).await.ok();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acknowledged.push(recovered.expect("writes must succeed again without a restart"));
    for k in 0..5 {
        acknowledged.push(
            submit(&node, "ro", payload("more", k))
                .await
                .expect("writes keep succeeding"),
        );
    }
    assert!(
        health_becomes(&node, "ok", Duration::from_secs(5)).await,
        "health must say ok again"
    );
    let recent = node.client.recent_events(1000).await.expect("events");
    assert!(
        recent.events.iter().any(|e| matches!(&e.kind,
            sorcha_peer::events::EventKind::StorageRecovered { last_error, .. } if last_error.contains("readonly"))),
        "a storageRecovered event: {:?}",
        recent.events
    );
    let after = sealed_version(&node, "ro").await;
    assert!(after >= version + 6, "version {version} -> {after}");
    node.restart().await;
    assert_eq!(
        present(&node, "ro", &acknowledged, 1).await,
        acknowledged.len()
    );
    node.stop().await;
}
