//! Shutdown stops every task of a node before its store is closed, whatever the node is doing:
//! no catch-up, gossip pull or session can touch the store afterwards.

use crate::common::{PATIENCE, TestCluster, TestNode, metric, wait_until};

/// Loads `count` transactions into `register` at `node`, in batches.
async fn load(node: &TestNode, register: &str, count: usize) {
    let payloads: Vec<String> = (0..count).map(|i| format!("{register}-{i:08}")).collect();
    for chunk in payloads.chunks(1000) {
        node.client
            .submit_batch(register, chunk.to_vec())
            .await
            .expect("batch");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_catch_up_leaves_no_task_running() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.max_docket_transactions = 10).await;
    a.client
        .create_register("deep", true)
        .await
        .expect("register");
    load(&a, "deep", 5000).await;
    a.wait_for_version("deep", 5000, PATIENCE).await;
    let mut b = net
        .start(|c| {
            c.seeds = vec![a.seed()];
            c.sync_batch_dockets = 1;
        })
        .await;
    b.wait_for_state(&a.peer_id, "connected", PATIENCE).await;
    b.client
        .subscribe("deep", "full-replica")
        .await
        .expect("subscribe");
    wait_until("B to be catching up", PATIENCE, || async {
        b.register("deep")
            .await
            .is_some_and(|r| r.latest_docket_version > 0)
    })
    .await;
    let handle = b.handle.take().expect("running");
    let tasks = handle.tasks();
    assert!(tasks.running() > 0);
    handle.shutdown().await;
    assert_eq!(tasks.running(), 0, "a task outlived the store");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_gossip_leaves_no_task_running() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    a.client
        .create_register("busy", true)
        .await
        .expect("register");
    let mut b = net.start(|c| c.seeds = vec![a.seed()]).await;
    wait_until(
        "B to subscribe once A advertises 'busy'",
        PATIENCE,
        || async { b.client.subscribe("busy", "forward-only").await.is_ok() },
    )
    .await;
    wait_until("B to follow", PATIENCE, || async {
        b.register("busy")
            .await
            .is_some_and(|r| r.sync_state == "active")
    })
    .await;
    // Transactions flow from B to A by gossip while B shuts down.
    let submitter = {
        let client = b.client.clone();
        tokio::spawn(async move {
            for i in 0..100_000u32 {
                if client
                    .submit("busy", format!("gossiped-{i}").into_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    wait_until("gossip to reach A", PATIENCE, || async {
        let text = a.client.metrics().await.expect("metrics");
        metric(&text, "sorcha_peer_gossip_payloads_pulled_total") > 0.0
    })
    .await;
    let handle = b.handle.take().expect("running");
    let tasks = handle.tasks();
    handle.shutdown().await;
    assert_eq!(tasks.running(), 0, "a task outlived the store");
    submitter.abort();
    a.stop().await;
}
