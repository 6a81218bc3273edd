//! Bad input and operator-facing hygiene: ban durations and self-bans, JSON errors everywhere,
//! path-safe register names, odd data directories, one node per data directory, shutdown with
//! stderr gone, a closed stdout, and control characters from elsewhere kept off the terminal.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sorcha_peer::node::{self, Listeners};
use sorcha_peer::store::{self, BanRow};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::common::{PATIENCE, TestCluster, TestNode, bin, cli, run_cmd, test_config};

/// How long SIGTERM may take to stop a node.
const STOP_WITHIN: Duration = Duration::from_secs(5);

/// An error answer from the admin API: its status and its `error` text (the body must be JSON).
async fn json_error(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("{status}: not JSON ({e}), content-type {content_type}: {text:?}")
    });
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` in {body}"))
        .to_string();
    (status, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_durations_are_bounded_and_absurd_stored_expiries_still_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    // What an old release stored for `--duration 8000y`: an expiry past the year 9999, which
    // RFC 3339 cannot write (listing it panicked).
    let store = store::open(
        None,
        &dir.path().join("sorcha-peer.db"),
        store::Durability::Full,
    )
    .await
    .expect("store");
    store
        .insert_ban(&BanRow {
            target: "9.9.9.9".into(),
            kind: "ip".into(),
            reason: "from an old release".into(),
            source: "manual".into(),
            banned_at_ms: 1_700_000_000_000,
            expires_at_ms: Some(i64::MAX / 2),
        })
        .await
        .expect("old ban");
    store.close().await;
    let mut a = TestNode::start_with(test_config(dir.path(), &TestCluster::new().ip())).await;

    let bans = a
        .client
        .bans()
        .await
        .expect("bans list despite the old row");
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(
        bans[0].expires_at.as_deref(),
        Some("9999-12-31T23:59:59.999Z")
    );
    let (code, table, err) = cli(&a, &["peers", "bans"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("from an old release"), "{table}");

    // Too long: a usage error before the node is asked, at any size.
    for absurd in ["8000y", "101y", "300000000y"] {
        let (code, _, err) = cli(&a, &["peers", "ban", "9.9.9.10", "--duration", absurd]).await;
        assert_eq!(code, 2, "{absurd}: {err}");
        assert!(err.contains("--duration"), "{absurd}: {err}");
    }
    let (_, _, err) = cli(&a, &["peers", "ban", "9.9.9.10", "--duration", "8000y"]).await;
    assert!(err.contains("maximum of 100years"), "{err}");

    // The API refuses the same with a 400, and stores nothing.
    let http = reqwest::Client::new();
    for absurd in ["8000y", "300000000y"] {
        let response = http
            .post(format!("{}/api/bans", a.admin_url))
            .bearer_auth(&a.token)
            .json(&serde_json::json!({"target": "9.9.9.10", "duration": absurd}))
            .send()
            .await
            .expect("send");
        let (status, message) = json_error(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{absurd}: {message}");
    }
    assert_eq!(a.client.bans().await.expect("bans").len(), 1);

    // The maximum itself is fine and lists with its time remaining.
    let (code, _, err) = cli(&a, &["peers", "ban", "9.9.9.10", "--duration", "100y"]).await;
    assert_eq!(code, 0, "{err}");
    let bans = a.client.bans().await.expect("bans");
    let ban = bans
        .iter()
        .find(|b| b.target == "9.9.9.10")
        .expect("new ban");
    let remaining = ban.remaining_seconds.expect("has an end");
    assert!(
        (3_155_000_000..=3_155_760_000).contains(&remaining),
        "{ban:?}"
    );

    // And all of it survives a restart.
    a.restart().await;
    assert_eq!(a.client.bans().await.expect("bans after restart").len(), 2);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_against_the_node_itself_need_force() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let own_id = a.peer_id.clone();
    let own_ip = a.peer_addr.ip().to_string();
    let own_subnet = net.subnet();
    let other_ip = net.ip();
    // Its own ID, its peer address, its admin address (127.0.0.1), a subnet holding its
    // address, and subnets that cover (almost) everyone.
    for target in [
        own_id.as_str(),
        own_ip.as_str(),
        "127.0.0.1",
        own_subnet.as_str(),
        "0.0.0.0/0",
        "::/0",
        "64.0.0.0/2",
    ] {
        let (code, _, err) = cli(&a, &["peers", "ban", target]).await;
        assert_eq!(code, 1, "{target}: {err}");
        assert!(err.contains("--force"), "{target}: {err}");
        let response = reqwest::Client::new()
            .post(format!("{}/api/bans", a.admin_url))
            .bearer_auth(&a.token)
            .json(&serde_json::json!({ "target": target }))
            .send()
            .await
            .expect("send");
        let (status, message) = json_error(response).await;
        assert_eq!(status, StatusCode::CONFLICT, "{target}: {message}");
    }
    let (_, _, err) = cli(&a, &["peers", "ban", "0.0.0.0/0"]).await;
    assert!(err.contains("covers too much"), "{err}");
    let (_, _, err) = cli(&a, &["peers", "ban", &own_id]).await;
    assert!(err.contains("own peer ID"), "{err}");
    let (_, _, err) = cli(&a, &["peers", "ban", &own_ip]).await;
    assert!(err.contains(&format!("own address {own_ip}")), "{err}");
    assert!(a.client.bans().await.expect("bans").is_empty());

    // Ordinary targets need no force; the operator can still insist on the others.
    let (code, _, err) = cli(&a, &["peers", "ban", &other_ip]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&a, &["peers", "ban", "0.0.0.0/0", "--force"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(a.client.bans().await.expect("bans").len(), 2);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_error_is_json() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.max_transaction_size = 1024).await;
    a.client
        .create_register("small", true)
        .await
        .expect("register");
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", a.admin_url);

    // Bodies over the limits (the default one and a route's own).
    let response = http
        .post(url("/api/bans"))
        .bearer_auth(&a.token)
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .expect("send");
    let (status, message) = json_error(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{message}");
    assert!(message.contains("length limit"), "{message}");
    let response = http
        .post(url("/api/registers/small/transactions"))
        .bearer_auth(&a.token)
        .body(vec![b'x'; 4096])
        .send()
        .await
        .expect("send");
    assert_eq!(json_error(response).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    // A path that is not UTF-8, and a body that is not.
    let response = http
        .get(url("/api/peers/%FF%FE"))
        .send()
        .await
        .expect("send");
    assert_eq!(json_error(response).await.0, StatusCode::BAD_REQUEST);
    let response = http
        .post(url("/api/bans"))
        .bearer_auth(&a.token)
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .expect("send");
    assert_eq!(json_error(response).await.0, StatusCode::BAD_REQUEST);

    // A method the route does not have keeps its Allow header.
    let response = http
        .delete(url("/api/status"))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("send");
    assert!(response.headers().contains_key(reqwest::header::ALLOW));
    let (status, message) = json_error(response).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(message, "method not allowed");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_names_travel_in_a_url_path() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    for name in [".", ".."] {
        let (code, _, err) = cli(&a, &["registers", "create", name, "--public"]).await;
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains("invalid register name"), "{name}: {err}");
        // And through the API directly.
        let response = reqwest::Client::new()
            .post(format!("{}/api/registers", a.admin_url))
            .bearer_auth(&a.token)
            .json(&serde_json::json!({ "registerId": name, "isPublic": true }))
            .send()
            .await
            .expect("send");
        assert_eq!(
            json_error(response).await.0,
            StatusCode::BAD_REQUEST,
            "{name}"
        );
        // Per-register commands say so instead of reaching some other endpoint.
        let (code, _, err) = cli(&a, &["registers", "purge", name]).await;
        assert_eq!(code, 2, "{name}: {err}");
        assert!(
            err.contains("cannot be sent in a URL path"),
            "{name}: {err}"
        );
    }
    assert!(a.client.registers().await.expect("list").is_empty());

    // Names made only of dots and other allowed characters work end to end.
    let (code, _, err) = cli(&a, &["registers", "create", "...", "--public"]).await;
    assert_eq!(code, 0, "{err}");
    let mut cmd = bin();
    cmd.args([
        "--node",
        &a.admin_url,
        "--token",
        &a.token,
        "tx",
        "submit",
        "...",
    ])
    .write_stdin("dots");
    let (code, id, err) = run_cmd(cmd).await;
    assert_eq!(code, 0, "{err}");
    let (code, shown, err) = cli(&a, &["tx", "get", "...", id.trim()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(shown.contains("..."), "{shown}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directories_may_hold_url_characters() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("odd?dir#x%41 y");
    let mut a = TestNode::start_with(test_config(&dir, &TestCluster::new().ip())).await;
    a.client
        .create_register("kept", true)
        .await
        .expect("register");
    // The CLI finds the node (admin.url and token) through the same directory.
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(&dir)
        .args(["status", "-o", "json"]);
    let (code, out, err) = run_cmd(cmd).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&a.peer_id), "{out}");
    a.restart().await;
    assert!(
        a.register("kept").await.is_some(),
        "the database is in that directory"
    );
    a.stop().await;

    // A store that cannot open leaves no key or token behind for a node that never ran.
    let broken = parent.path().join("broken");
    std::fs::create_dir_all(broken.join("sorcha-peer.db")).expect("a directory where the db goes");
    let config = test_config(&broken, &TestCluster::new().ip());
    let listeners = Listeners {
        peer: TcpListener::bind(config.listen).await.expect("bind"),
        admin: TcpListener::bind(config.admin_listen).await.expect("bind"),
    };
    let refused = node::start(config, listeners, CancellationToken::new()).await;
    assert!(refused.is_err(), "a directory is no database");
    for file in ["node.key", "admin.token", "admin.url"] {
        assert!(
            !broken.join(file).exists(),
            "{file} written before the store opened"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_data_directory_is_refused() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let dir = a.data_dir();

    // In the same process.
    let config = test_config(&dir, &TestCluster::new().ip());
    let listeners = Listeners {
        peer: TcpListener::bind(config.listen).await.expect("bind"),
        admin: TcpListener::bind(config.admin_listen).await.expect("bind"),
    };
    let refused = node::start(config, listeners, CancellationToken::new())
        .await
        .err()
        .expect("second node refused")
        .to_string();
    assert!(
        refused.contains("in use by another running node")
            && refused.contains(&format!("pid {}", std::process::id()))
            && refused.contains(&a.admin_url),
        "{refused}"
    );

    // As a second `serve` process, which also leaves the first one's files alone.
    let mut cmd = bin();
    cmd.arg("serve").arg("--data-dir").arg(&dir).args([
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    let (code, _, err) = run_cmd(cmd).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("in use by another running node") && err.contains(&a.admin_url),
        "{err}"
    );
    let url = std::fs::read_to_string(dir.join("admin.url")).expect("first node's admin.url");
    assert_eq!(url.trim(), a.admin_url);
    a.client.status().await.expect("the first node carries on");

    // Once the first node has stopped, the directory is free again.
    a.restart().await;
    a.client
        .status()
        .await
        .expect("restarted on the same directory");
    a.stop().await;
}

/// Sends `signal` (e.g. "TERM") to a process with the `kill` command.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits up to `within` for `child` to exit; kills it (and fails) if it does not.
fn wait_exit(child: &mut std::process::Child, within: Duration, what: &str) -> i32 {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.code().unwrap_or(-1);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `serve` process on `dir` with its stderr piped, once it has said it is ready: the child
/// and the rest of its stderr, line by line.
fn spawn_serve(dir: &Path) -> (Child, Lines<BufReader<ChildStderr>>) {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("sorcha-peer"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let ready = lines
        .by_ref()
        .take(20)
        .map_while(Result::ok)
        .any(|l| l.contains("node ready"));
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the node never said it was ready");
    }
    (child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_stop_serve_when_stderr_is_closed() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let signal = signal.to_string();
        tokio::task::spawn_blocking(move || {
            let (mut child, lines) = spawn_serve(&path);
            // The reader goes away, as `| head -4` does.
            drop(lines);
            send_signal(child.id(), &signal);
            let code = wait_exit(&mut child, STOP_WITHIN, &format!("serve after SIG{signal}"));
            assert_eq!(code, 0, "SIG{signal}");
            assert!(
                !path.join("admin.url").exists(),
                "drained: admin.url removed"
            );
        })
        .await
        .expect("join");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_log_escapes_control_characters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let (mut child, lines) = tokio::task::spawn_blocking(move || spawn_serve(&path))
        .await
        .expect("join");
    let admin_url = std::fs::read_to_string(dir.path().join("admin.url")).expect("admin.url");
    let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("token");
    let client = sorcha_peer::client::AdminClient::new(admin_url.trim(), Some(token.trim().into()))
        .expect("client");
    // The ban is logged with its reason.
    client
        .ban(
            "10.9.9.9",
            Some("x\u{1b}]0;owned\u{7}\u{1b}[2J\nFAKE ERROR line"),
            None,
        )
        .await
        .expect("ban");
    let pid = child.id();
    let logged = tokio::task::spawn_blocking(move || {
        let line = lines
            .map_while(Result::ok)
            .find(|l| l.contains("10.9.9.9"))
            .expect("the ban is logged");
        send_signal(pid, "TERM");
        let code = wait_exit(&mut child, STOP_WITHIN, "serve");
        assert_eq!(code, 0);
        line
    })
    .await
    .expect("join");
    assert!(!logged.chars().any(|c| c.is_control()), "{logged:?}");
    assert!(
        logged.contains("\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{a}FAKE ERROR line"),
        "{logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_ends_the_cli_quietly() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    let admin_url = a.admin_url.clone();
    let token = a.token.clone();
    tokio::task::spawn_blocking(move || {
        for args in [
            vec!["completions", "bash"],
            vec!["config", "default"],
            vec!["--node", &admin_url, "--token", &token, "peers", "list"],
            vec![
                "--node", &admin_url, "--token", &token, "-o", "json", "peers", "list",
            ],
            vec!["--node", &admin_url, "--token", &token, "status"],
        ] {
            let mut child = Command::new(assert_cmd::cargo::cargo_bin("sorcha-peer"))
                .args(&args)
                .env("NO_COLOR", "1")
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            // The reader is gone before the command writes anything.
            drop(child.stdout.take());
            let code = wait_exit(&mut child, Duration::from_secs(30), "cli");
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
                .expect("stderr");
            assert_eq!(code, 0, "{args:?}: {err}");
            assert!(err.is_empty(), "{args:?}: quiet, got {err}");
        }
    })
    .await
    .expect("join");
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_never_reach_the_terminal() {
    let mut net = TestCluster::new();
    const ESC: char = '\u{1b}';
    let hostile = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31mred\u{202e}";
    let mut a = net.start(|c| c.name = format!("node{hostile}")).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;

    let reason = format!("spam {hostile} end");
    let (code, out, err) = cli(&a, &["peers", "ban", &b.peer_id, "--reason", &reason]).await;
    assert_eq!(code, 0, "{err}");
    let mut outputs = vec![out, err];
    for args in [
        vec!["peers", "bans"],
        vec!["peers", "get", &b.peer_id],
        vec!["peers", "list"],
        vec!["status"],
        // An error that echoes what it was given.
        vec!["peers", "get", hostile],
    ] {
        let (_, out, err) = cli(&a, &args).await;
        outputs.push(out);
        outputs.push(err);
    }
    for text in &outputs {
        assert!(
            !text
                .chars()
                .any(|c| c == ESC || c == '\u{7}' || c == '\u{9b}' || c == '\u{202e}'),
            "raw control characters printed: {text:?}"
        );
    }
    let all = outputs.concat();
    assert!(
        all.contains("\\u{1b}]0;owned\\u{7}"),
        "shown escaped: {all}"
    );
    // JSON keeps the exact text, with every control character written as a JSON escape.
    let (_, json, _) = cli(&a, &["peers", "bans", "-o", "json"]).await;
    assert!(
        !json
            .chars()
            .any(|c| c == ESC || c == '\u{9b}' || c == '\u{202e}'),
        "{json}"
    );
    let bans: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(bans[0]["reason"].as_str(), Some(reason.as_str()));
    b.stop().await;
    a.stop().await;
}
