//! Storage health that tells the truth: a class of writes that fails keeps storage failing in
//! `/api/health`, `/readyz` and `status` however many small writes succeed meanwhile, and a
//! damaged database file is found before the node serves from it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::faults::Tmpfs;
use crate::common::webdriver::Browser;
use crate::common::{PATIENCE, TestCluster, TestNode, cli, serve_command, test_config};
use crate::dashboard::TEXT;
use crate::storage_faults::{health, payload, readiness, submit};

/// Room left on the disk: enough for many small writes, not for one large transaction.
const LEFT: u64 = 512 << 10;
/// A transaction larger than [`LEFT`] (and within the default `max_transaction_size`).
const LARGE: usize = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_stays_failing_while_transactions_fail_though_small_writes_succeed() {
    let test = "full_disk_stays_failing_while_transactions_fail_though_small_writes_succeed";
    let Some(disk) = Tmpfs::mount(test, "16m") else {
        return;
    };
    let mut node = TestNode::start_with(test_config(disk.path(), &TestCluster::new().ip())).await;
    node.client
        .create_register("full", false)
        .await
        .expect("create register");
    for i in 0..5 {
        let id = submit(&node, "full", payload("before", i))
            .await
            .expect("submit");
        node.wait_sealed("full", &id, PATIENCE).await;
    }
    // Another file takes all but a little of the disk.
    let filler = vec![7u8; (disk.free_bytes() - LEFT) as usize];
    std::fs::write(disk.path().join("filler"), filler).expect("fill the disk");

    // Each round: a large transaction fails, then small writes (a ban and its removal, a row
    // each) succeed. Storage must be reported failing after them all the same, everywhere.
    for round in 0..5 {
        let mut large = payload("large", round);
        large.resize(LARGE, b'x');
        let refused = submit(&node, "full", large).await;
        let Err(error) = refused else {
            panic!("round {round}: a {LARGE}-byte transaction fit in {LEFT} bytes");
        };
        assert!(error.contains("503") && error.contains("full"), "{error}");
        let target = format!("10.{round}.0.0/16");
        node.client
            .ban(&target, Some("small write"), None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: a small write fails too: {e}"));
        node.client
            .unban(&target)
            .await
            .unwrap_or_else(|e| panic!("round {round}: a small write fails too: {e}"));

        let (code, storage, reason) = health(&node).await;
        assert_eq!(
            (code, storage.as_str()),
            (503, "failing"),
            "round {round}: /api/health after small writes succeeded ({reason:?})"
        );
        let reason = reason.unwrap_or_default();
        assert!(
            reason.contains("transaction") && reason.contains("full"),
            "round {round}: the reason names the failing writes: {reason}"
        );
        assert_eq!(
            readiness(&node).await,
            (503, "failing".to_string()),
            "round {round}: /readyz"
        );
        let status = node.client.status().await.expect("status");
        assert_eq!(
            (
                status.storage_health.as_str(),
                status.storage_error.is_some()
            ),
            ("failing", true),
            "round {round}: status"
        );
        if round == 0 {
            dashboard_shows_storage_failing(&node).await;
            let (code, out, err) = cli(&node, &["status"]).await;
            assert_eq!(code, 0, "{err}");
            assert!(
                out.lines()
                    .any(|l| l.contains("Storage failing") && l.contains("full")),
                "`status` shows storage failing: {out}"
            );
        }
    }
    node.stop().await;
}

/// The dashboard's node facts say storage is failing (in a real headless Chromium).
async fn dashboard_shows_storage_failing(node: &TestNode) {
    let test = "full_disk_stays_failing_while_transactions_fail_though_small_writes_succeed";
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    browser.goto(&format!("{}/", node.admin_url)).await;
    browser
        .wait_for(
            "storage failing in the node facts",
            TEXT,
            json!([
                "#node-facts",
                ["unhealthy", "failing: transaction writes fail"]
            ]),
        )
        .await;
}

/// Waits for `child` to exit; kills it and returns `None` if it is still running after
/// `within`.
fn exit_within(child: &mut Child, within: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_found_at_start_and_the_node_refuses_it() {
    let ip = TestCluster::new().ip();
    let mut node = TestNode::start(&ip, |_| {}).await;
    node.client
        .create_register("kept", false)
        .await
        .expect("create register");
    for i in 0..200 {
        submit(&node, "kept", payload("kept", i))
            .await
            .expect("submit");
    }
    node.stop().await;

    // 4 kB of garbage in the middle of the stopped node's database file.
    let db = node.config.sqlite_path();
    let len = std::fs::metadata(&db).expect("database file").len();
    assert!(
        len > 1 << 20,
        "a database of {len} bytes is too small to damage"
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .expect("open database file");
    file.seek(SeekFrom::Start(len / 2)).expect("seek");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    file.write_all(&garbage).expect("write garbage");
    file.sync_all().expect("sync");
    drop(file);

    let dir = node.data_dir();
    let mut child = serve_command(&dir, &ip).spawn().expect("spawn serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let code = tokio::task::spawn_blocking(move || exit_within(&mut child, PATIENCE))
        .await
        .expect("join");
    let stderr = reader.join().expect("stderr reader");
    eprintln!("serve on the damaged database: exit {code:?}\n{stderr}");
    let Some(code) = code else {
        panic!("serve started on a damaged database (still running after {PATIENCE:?})");
    };
    assert_ne!(code, 0, "serve must fail on a damaged database");
    assert!(
        stderr.contains(&db.display().to_string()),
        "the error names the file: {stderr}"
    );
    assert!(
        stderr.contains(".recover") && stderr.contains("backup"),
        "the error says what to do: {stderr}"
    );
}
