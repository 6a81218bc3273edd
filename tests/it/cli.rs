//! The CLI as an operator uses it: exit codes, messages, finding the local node.

use crate::common::{PATIENCE, TestCluster, bin, cli, run_cmd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_follow_the_contract() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;

    // Unknown peer: exit 5 with a clear message.
    let (code, _, err) = cli(&a, &["peers", "get", "ffffffffff"]).await;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("no peer matches 'ffffffffff'"), "{err}");
    let (code, _, _) = cli(&a, &["peers", "reset", "ffffffffff"]).await;
    assert_eq!(code, 5);
    let (code, _, err) = cli(&a, &["peers", "unban", "10.1.2.3"]).await;
    assert_eq!(code, 5);
    assert!(err.contains("no ban on '10.1.2.3'"), "{err}");

    // Bad duration: a usage error, exit 2, nothing sent.
    let (code, _, err) = cli(&a, &["peers", "ban", "10.1.2.3", "--duration", "forever"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid duration"), "{err}");
    assert!(a.client.bans().await.expect("bans").is_empty());

    // Wrong token: exit 4.
    let mut cmd = bin();
    cmd.args([
        "--node",
        &a.admin_url,
        "--token",
        "wrong",
        "peers",
        "ban",
        "10.1.2.3",
    ]);
    let (code, _, err) = run_cmd(cmd).await;
    assert_eq!(code, 4, "{err}");

    // Already banned: the operation failed, exit 1.
    assert_eq!(cli(&a, &["peers", "ban", "10.1.2.3"]).await.0, 0);
    let (code, _, err) = cli(&a, &["peers", "ban", "10.1.2.3"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already banned"), "{err}");

    // Node unreachable: exit 3 (the admin port of a node that is gone).
    let url = a.admin_url.clone();
    a.stop().await;
    let mut cmd = bin();
    cmd.args(["--node", &url, "status"]);
    let (code, _, err) = run_cmd(cmd).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot reach the node"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_finds_the_local_node_through_its_data_dir() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    // No --node, no --token: both come from the files the node wrote.
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(a.data_dir())
        .args(["peers", "ban", "10.7.7.7", "--reason", "local"]);
    let (code, _, err) = run_cmd(cmd).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Banned ip 10.7.7.7"), "{err}");
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(a.data_dir())
        .args(["status", "-o", "json"]);
    let (code, out, _) = run_cmd(cmd).await;
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(status["peerId"], a.peer_id.as_str());
    for field in [
        "name",
        "version",
        "uptimeSeconds",
        "listen",
        "adminListen",
        "storage",
        "peers",
        "registers",
    ] {
        assert!(status.get(field).is_some(), "{field} missing from {status}");
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_and_json_keep_stdout_for_data() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    let (code, out, err) = cli(&a, &["-q", "peers", "ban", &b.peer_id[..6]]).await;
    assert_eq!(code, 0);
    assert!(out.is_empty() && err.is_empty(), "quiet: {out:?} {err:?}");
    let (code, out, _) = cli(&a, &["peers", "get", &b.peer_id[..6], "-o", "json"]).await;
    assert_eq!(code, 0);
    let peer: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(peer["isBanned"], true);
    assert_eq!(peer["state"], "banned");
    assert!(peer["qualityComponents"]["validityPoints"].is_number());
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_rejects_bad_configuration_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = bin();
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("SORCHA_PEER_HEARTBEAT_INTERVAL", "often");
    let (code, _, err) = run_cmd(cmd).await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("heartbeat_interval") && err.contains("SORCHA_PEER_HEARTBEAT_INTERVAL"),
        "{err}"
    );

    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "max_outbund = 3\n").expect("write");
    let mut cmd = bin();
    cmd.args(["serve", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config);
    let (code, _, err) = run_cmd(cmd).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("max_outbund"), "{err}");

    let mut cmd = bin();
    cmd.args(["config", "default"]);
    let (code, out, _) = run_cmd(cmd).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("heartbeat_interval = \"10s\"") && out.contains("exchange_interval"),
        "{out}"
    );
}

/// The options every command shares sit under their own heading, after the command's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_options_have_their_own_heading() {
    let (code, help, _) = run_cmd({
        let mut cmd = bin();
        cmd.args(["peers", "list", "--help"]);
        cmd
    })
    .await;
    assert_eq!(code, 0);
    let heading = help
        .find("Global options:")
        .expect("a Global options heading");
    let own = help.find("--state").expect("--state");
    let global = help.find("--node").expect("--node");
    assert!(own < heading && heading < global, "{help}");
}
