//! Lag (`service::lag`) reports each way it can fail by its cause, as the admin API's status:
//! a malformed address, a node that cannot be reached, a register the other node does not
//! advertise; and measures a node that can be asked.

use sorcha_peer::client::ClientError;

use crate::common::{PATIENCE, TestCluster, TestNode, cli, replicate_along};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_failures_are_reported_by_cause() {
    let mut net = TestCluster::new();
    let a = net.start(|_| {}).await;
    let (code, _, err) = cli(&a, &["registers", "create", "orders", "--public"]).await;
    assert_eq!(code, 0, "{err}");

    match a.client.lag("no port here", None).await {
        Err(ClientError::BadRequest(message)) => assert!(!message.is_empty()),
        other => panic!("a malformed address is the operator's mistake: {other:?}"),
    }

    // Nothing listens on port 1.
    match a.client.lag(&format!("{}:1", net.ip()), None).await {
        Err(ClientError::RemoteUnreachable(message)) => {
            assert!(
                message.contains("cannot connect to ") && message.contains(":1"),
                "{message}"
            )
        }
        other => panic!("an unreachable node is a gateway failure: {other:?}"),
    }

    match a.client.lag(&a.seed(), Some("nope")).await {
        Err(ClientError::NotFound(message)) => assert!(
            message.contains("does not advertise register 'nope'"),
            "{message}"
        ),
        other => panic!("a register the other node lacks is not found: {other:?}"),
    }

    // Against itself: held, nothing behind, no fork.
    let rows = a.client.lag(&a.seed(), Some("orders")).await.expect("lag");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.register_id, "orders");
    assert!(row.held_locally);
    assert_eq!((row.dockets_behind, row.transactions_behind), (0, 0));
    assert!(!row.diverged);
}

/// Submits `payloads` to `register` at `node` and waits until all are sealed there.
async fn seal_all(node: &TestNode, register: &str, payloads: &[&str]) {
    let payloads: Vec<String> = payloads.iter().map(|p| p.to_string()).collect();
    let ids = node
        .client
        .submit_batch(register, payloads)
        .await
        .expect("submit")
        .transaction_ids;
    for id in &ids {
        node.wait_sealed(register, id, PATIENCE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn a_failed_lag_check_says_why_for_each_register() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let mut b = net.start(|_| {}).await;
    // ledger: created on both while they are strangers (a fork from the genesis on; once
    // connected, a node refuses to create a register a peer originates).
    a.client
        .create_register("ledger", true)
        .await
        .expect("ledger");
    b.client
        .create_register("ledger", true)
        .await
        .expect("ledger");
    b.client.connect_peer(&a.seed()).await.expect("connect");
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;

    // orders: replicated to b, which then stops following while a seals more (behind).
    a.client
        .create_register("orders", true)
        .await
        .expect("orders");
    seal_all(&a, "orders", &["o1"]).await;
    replicate_along(&[&a, &b], "orders").await;
    b.wait_for_version("orders", 1, PATIENCE).await;
    b.client
        .unsubscribe("orders", false)
        .await
        .expect("unsubscribe");
    seal_all(&a, "orders", &["o2", "o3"]).await;
    // audit: only a holds it.
    a.client
        .create_register("audit", true)
        .await
        .expect("audit");
    seal_all(&a, "audit", &["a1"]).await;

    let rows = b.client.lag(&a.seed(), None).await.expect("lag");
    let row = |id: &str| rows.iter().find(|r| r.register_id == id).expect("row");
    let orders = row("orders");
    assert!(orders.held_locally && !orders.diverged, "{orders:?}");
    assert!(
        orders.dockets_behind >= 1 && orders.transactions_behind == 2,
        "{orders:?}"
    );
    let ledger = row("ledger");
    assert!(ledger.diverged, "{ledger:?}");
    assert_eq!(ledger.diverged_at_docket_version, Some(0));

    let against = a.seed();
    // By default only the registers held here are judged: audit is shown, not failed.
    let (code, out, err) = cli(&b, &["lag", "--against", &against, "--max-lag", "0"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("orders") && out.contains("audit"),
        "the table shows all: {out}"
    );
    assert!(err.contains("failed for 2 registers:"), "{err}");
    assert!(!err.contains("audit"), "{err}");
    // --register can be repeated; a named register is judged whether held or not, and one
    // the other node does not advertise is not found (exit 5).
    let (code, _, err) = cli(
        &b,
        &[
            "lag",
            "--against",
            &against,
            "--register",
            "orders",
            "--register",
            "audit",
            "--max-lag",
            "0",
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("failed for 2 registers:") && err.contains("audit: not held"),
        "{err}"
    );
    assert!(!err.contains("ledger"), "{err}");
    let (code, _, err) = cli(
        &b,
        &[
            "lag",
            "--against",
            &against,
            "--register",
            "orders",
            "--register",
            "nowhere",
        ],
    )
    .await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("nowhere"), "{err}");
    // --all judges every register the other node advertises.
    let (code, out, err) = cli(
        &b,
        &["lag", "--against", &against, "--max-lag", "0", "--all"],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("orders"), "the table still shows: {out}");
    let dockets = match orders.dockets_behind {
        1 => "1 docket".to_string(),
        n => format!("{n} dockets"),
    };
    for expected in [
        format!("lag check against {against} failed for 3 registers:"),
        format!("\n  orders: behind by {dockets} / 2 transactions (over --max-lag 0)\n"),
        "\n  ledger: diverged (fork): the nodes hold different dockets at height 0\n".into(),
        "\n  audit: not held here; the other node has 1 docket / 1 transaction (over\n    \
         --max-lag 0)\n"
            .into(),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    for line in err.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    // Within the limit, only the fork fails; with -o json the reasons still reach stderr.
    let (code, out, err) = cli(
        &b,
        &["lag", "--against", &against, "--max-lag", "5", "-o", "json"],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    let _: serde_json::Value = serde_json::from_str(&out).expect("stdout is one JSON document");
    assert!(err.contains("failed for 1 register:"), "{err}");
    assert!(err.contains("  ledger: diverged (fork)"), "{err}");
    assert!(!err.contains("orders"), "{err}");

    b.stop().await;
    a.stop().await;
}
