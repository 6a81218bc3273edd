//! Logging as an operator meets it, through the real binary: JSON lines, `--log-level`, bad
//! filters refused naming the key, unknown `SORCHA_PEER_*` variables never ignored in silence.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::{TestCluster, bin, run_cmd, serve_command};

/// Longest a `serve` under test may take to start, and then to stop.
const WITHIN: Duration = Duration::from_secs(15);

fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs `serve` until it has started (its `admin.url` appears), stops it with SIGTERM, and
/// returns its exit code and stderr. A `serve` that refuses to start returns at once.
fn serve_briefly(cmd: Command, dir: &Path) -> (i32, String) {
    let mut cmd = cmd;
    let mut child = cmd.spawn().expect("spawn serve");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code().unwrap_or(-1);
        }
        if dir.join("admin.url").exists() {
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(sent.success());
            match wait_exit(&mut child, WITHIN) {
                Some(code) => break code,
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("serve did not stop within {WITHIN:?} of SIGTERM");
                }
            }
        }
        if started.elapsed() > WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve neither started nor exited within {WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, reader.join().expect("stderr reader"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_and_the_level_filters() {
    let ip = TestCluster::new().ip();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let mut cmd = serve_command(&path, &ip);
    cmd.args(["--log-format", "json", "--log-level", "debug"]);
    let (code, stderr) = tokio::task::spawn_blocking(move || serve_briefly(cmd, &path))
        .await
        .expect("join");
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for want in [
        "starting node",
        "node ready",
        "shutting down",
        "node stopped",
    ] {
        assert!(messages.contains(&want), "{want} missing: {stderr}");
    }
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["target"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "--log-level debug shows debug lines: {stderr}"
    );
    let ready = lines
        .iter()
        .find(|l| l["message"] == "node ready")
        .expect("ready line");
    assert!(
        ready["listen"].as_str().is_some_and(|a| a.starts_with(&ip)),
        "fields are top-level: {ready}"
    );

    // `--log-level warn` (here through the environment): nothing below WARN.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let mut cmd = serve_command(&path, &ip);
    cmd.env("SORCHA_PEER_LOG_LEVEL", "warn")
        .env("SORCHA_PEER_LOG_FORMAT", "json");
    let (code, stderr) = tokio::task::spawn_blocking(move || serve_briefly(cmd, &path))
        .await
        .expect("join");
    assert_eq!(code, 0, "{stderr}");
    for line in stderr.lines() {
        let line: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert!(
            line["level"] == "WARN" || line["level"] == "ERROR",
            "below warn: {line}"
        );
    }
}

/// What `serve` says (and its exit code) when started with `args` and `env`.
async fn refused(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let ip = TestCluster::new().ip();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let mut cmd = serve_command(&path, &ip);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (code, stderr) = tokio::task::spawn_blocking(move || serve_briefly(cmd, &path))
        .await
        .expect("join");
    assert!(
        !dir.path().join("node.key").exists(),
        "a refused start creates nothing: {stderr}"
    );
    (code, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_log_filter_is_refused_naming_the_key() {
    for (args, env, names) in [
        (
            vec!["--log-level", "sorcha_peer=loud"],
            vec![],
            vec!["`log_level`", "--log-level", "sorcha_peer=loud"],
        ),
        (
            vec![],
            vec![("SORCHA_PEER_LOG_LEVEL", "json")],
            vec!["`log_level`", "SORCHA_PEER_LOG_LEVEL", "log_format"],
        ),
        (vec![], vec![("RUST_LOG", "x=[")], vec!["RUST_LOG", "x=["]),
        (
            vec!["--log-format", "yaml"],
            vec![],
            vec!["`log_format`", "--log-format", "text, json"],
        ),
    ] {
        let (code, stderr) = refused(&args, &env).await;
        assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
        for name in names {
            assert!(
                stderr.contains(name),
                "{args:?} {env:?}: {name} missing: {stderr}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sorcha_peer_variables_are_never_silent() {
    // The old name of `log_level`: it used to silence every log line.
    let (code, stderr) = refused(&[], &[("SORCHA_PEER_LOG", "json")]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unknown environment variable SORCHA_PEER_LOG ")
            && stderr.contains("SORCHA_PEER_LOG_FORMAT")
            && stderr.contains("SORCHA_PEER_LOG_LEVEL"),
        "{stderr}"
    );
    let (code, stderr) = refused(&[], &[("SORCHA_PEER_HEARTBEAT_INTERVALL", "1s")]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "SORCHA_PEER_HEARTBEAT_INTERVALL (did you mean SORCHA_PEER_HEARTBEAT_INTERVAL?)"
        ),
        "{stderr}"
    );

    // A client command warns and carries on; the CLI's own variables are known.
    let mut cmd = bin();
    cmd.arg("version")
        .env("SORCHA_PEER_TOKN", "x")
        .env("SORCHA_PEER_NODE", "http://127.0.0.1:1");
    let (code, stdout, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("sorcha-peer "), "{stdout}");
    assert_eq!(
        stderr.trim(),
        "warning: unknown environment variable SORCHA_PEER_TOKN (did you mean SORCHA_PEER_TOKEN?)"
    );
}
