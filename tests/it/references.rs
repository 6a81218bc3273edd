//! How an operator names things to the CLI: peers by name or ID prefix (an ambiguous text is an
//! error listing the candidates, never a silent choice), transactions by ID prefix, and a
//! payload submitted twice (stored once, and the second submission says where the first
//! stands).

use crate::common::{PATIENCE, TestCluster, cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_are_found_by_name_or_id_prefix_and_ambiguity_lists_the_candidates() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "alpha".into()).await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.name = "node-b".into();
        })
        .await;
    // A peer named like the start of b's ID: that text names two peers.
    let b_prefix = b.peer_id[..10].to_string();
    let mut c = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.name = b_prefix.clone();
        })
        .await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;

    // By name, whatever the case.
    for text in ["node-b", "NODE-B"] {
        let (code, out, err) = cli(&a, &["peers", "get", text, "-o", "json"]).await;
        assert_eq!(code, 0, "{text}: {err}");
        let peer: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(peer["peerId"], b.peer_id.as_str(), "{text}");
    }
    // By ID prefix (c's name does not look like an ID prefix of anyone).
    let (code, out, _) = cli(&a, &["peers", "get", &c.peer_id[..8], "-o", "json"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&c.peer_id), "{out}");

    // One peer's ID prefix and another's name: a usage error naming both, nothing chosen.
    let (code, _, err) = cli(&a, &["peers", "get", &b_prefix]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("matches 2 peers"), "{err}");
    assert!(err.contains(&b.peer_id[..14]), "b listed: {err}");
    assert!(
        err.contains(&format!("{} ({b_prefix})", &c.peer_id[..14])),
        "c listed with its name: {err}"
    );
    let (code, _, err) = cli(&a, &["peers", "ban", &b_prefix]).await;
    assert_eq!(code, 2, "{err}");
    assert!(a.client.bans().await.expect("bans").is_empty());

    // Ban, reset and unban by name.
    let (code, _, err) = cli(&a, &["peers", "ban", "node-b", "--reason", "by name"]).await;
    assert_eq!(code, 0, "{err}");
    let bans = a.client.bans().await.expect("bans");
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].target, b.peer_id);
    let (code, out, err) = cli(&a, &["peers", "reset", "node-b", "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&b.peer_id), "{out}");
    let (code, _, err) = cli(&a, &["peers", "unban", "Node-B"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(a.client.bans().await.expect("bans").is_empty());

    // Unknown names are not found (exit 5), and say what was asked.
    let (code, _, err) = cli(&a, &["peers", "get", "nobody.example"]).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("no peer matches 'nobody.example'"), "{err}");

    c.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_found_by_a_unique_id_prefix() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    a.client
        .create_register("orders", true)
        .await
        .expect("register");
    let id = a
        .client
        .submit("orders", b"by prefix".to_vec())
        .await
        .expect("submit")
        .transaction_id;

    for len in [8, 12, 64] {
        let (code, out, err) = cli(&a, &["tx", "get", "orders", &id[..len], "-o", "json"]).await;
        assert_eq!(code, 0, "{len}: {err}");
        let tx: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(tx["transactionId"], id.as_str());
    }
    let upper = id[..10].to_ascii_uppercase();
    let (code, out, _) = cli(&a, &["tx", "get", "orders", &upper]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&id), "{out}");

    // Too short to look up: a usage error saying how many characters are needed.
    let (code, _, err) = cli(&a, &["tx", "get", "orders", &id[..7]]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 8 hex characters"), "{err}");
    // A prefix nothing starts with: not found.
    let other = if id.starts_with("00000000") {
        "11111111"
    } else {
        "00000000"
    };
    let (code, _, err) = cli(&a, &["tx", "get", "orders", other]).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("starts with 00000000") || err.contains("starts with 11111111"));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn submitting_a_payload_again_says_where_it_stands_and_stores_nothing() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| c.seal_interval = std::time::Duration::from_secs(3600))
        .await;
    a.client
        .create_register("orders", true)
        .await
        .expect("register");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("payload");
    std::fs::write(&file, b"the same order").expect("write");
    let file = file.to_str().expect("utf-8 path");

    let (code, first, err) = cli(&a, &["tx", "submit", "orders", file]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("Already"), "{err}");
    let id = first.trim().to_string();

    // Pending (the sealer waits an hour): said so, exit 0, the same ID.
    let (code, out, err) = cli(&a, &["tx", "submit", "orders", file]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), id);
    assert!(err.contains("Already pending"), "{err}");
    let (code, out, _) = cli(&a, &["tx", "submit", "orders", file, "-o", "json"]).await;
    assert_eq!(code, 0);
    let answer: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(answer["alreadyHeld"], true);
    assert_eq!(answer["state"], "pending");
    let register = a.register("orders").await.expect("held");
    assert_eq!(register.pending_transactions, 1, "stored once");

    // Sealed: said where.
    a.stop().await;
    a.config.seal_interval = std::time::Duration::from_millis(50);
    a.restart().await;
    a.wait_sealed("orders", &id, PATIENCE).await;
    let tx = a.client.transaction("orders", &id).await.expect("tx");
    let (docket, version) = (
        tx.docket_number.expect("docket"),
        tx.version.expect("version"),
    );
    let (code, out, err) = cli(&a, &["tx", "submit", "orders", file]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), id);
    assert!(
        err.contains(&format!(
            "Already sealed in docket {docket} as version {version}"
        )),
        "{err}"
    );
    let register = a.register("orders").await.expect("held");
    assert_eq!(
        (register.transaction_count, register.pending_transactions),
        (1, 0)
    );

    // A new payload is created (201) and says nothing of the kind.
    std::fs::write(dir.path().join("other"), b"another order").expect("write");
    let other = dir.path().join("other");
    let (code, out, err) = cli(
        &a,
        &[
            "tx",
            "submit",
            "orders",
            other.to_str().expect("utf-8"),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(answer["alreadyHeld"], false);
    assert_eq!(answer["state"], "pending");

    // --lines: duplicates are counted in one message.
    let lines = dir.path().join("lines");
    std::fs::write(&lines, "the same order\nfresh line\nfresh line\n").expect("write");
    let (code, out, err) = cli(
        &a,
        &[
            "tx",
            "submit",
            "orders",
            "--lines",
            lines.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        err.contains("3 line(s) submitted: 1 stored, 2 held already"),
        "{err}"
    );
    a.stop().await;
}
