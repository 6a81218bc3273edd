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
    serve_doing(cmd, dir, |_| {})
}

/// [`serve_briefly`], running `during` (given the data directory) once the node has started
/// and before it is stopped.
fn serve_doing(cmd: Command, dir: &Path, during: impl FnOnce(&Path)) -> (i32, String) {
    let mut during = Some(during);
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
            if let Some(during) = during.take() {
                during(dir);
            }
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
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
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
        .find(|l| l["fields"]["message"] == "node ready")
        .expect("ready line");
    assert!(
        ready["fields"]["listen"]
            .as_str()
            .is_some_and(|a| a.starts_with(&ip)),
        "the event's fields apart from the logger's: {ready}"
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

/// A JSON value read with duplicate keys refused at any depth (`serde_json::Value` keeps the
/// last of two and says nothing).
struct Strict(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(items.into())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some((key, Strict(value))) = map.next_entry::<String, Strict>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_have_no_duplicate_keys_and_carry_span_fields() {
    let ip = TestCluster::new().ip();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let mut cmd = serve_command(&path, &ip);
    cmd.args(["--log-format", "json"]);
    let (code, stderr) = tokio::task::spawn_blocking(move || {
        serve_doing(cmd, &path, |dir| {
            // A ban: its line has a field named `target`, as the logger's metadata does.
            let out = bin()
                .arg("--data-dir")
                .arg(dir)
                .args(["peers", "ban", "203.0.113.0/24", "--reason", "log test"])
                .output()
                .expect("run ban");
            assert!(out.status.success(), "{out:?}");
        })
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| match serde_json::from_str::<Strict>(l) {
            Ok(Strict(v)) => v,
            Err(e) => panic!("not one clean JSON object ({e}): {l}"),
        })
        .collect();
    let ban = lines
        .iter()
        .find(|l| l["fields"]["message"] == "banned")
        .unwrap_or_else(|| panic!("no ban line: {stderr}"));
    assert_eq!(ban["fields"]["target"], "203.0.113.0/24", "{ban}");
    assert_eq!(ban["fields"]["reason"], "log test", "{ban}");
    assert_eq!(ban["target"], "sorcha_peer::peers::manager", "{ban}");
    assert_eq!(ban["level"], "WARN", "{ban}");
    // The span fields the text log shows: here the admin request's method and route.
    let spans = ban["spans"]
        .as_array()
        .unwrap_or_else(|| panic!("no spans: {ban}"));
    let request = spans
        .iter()
        .find(|s| s["name"] == "admin request")
        .unwrap_or_else(|| panic!("no admin request span: {ban}"));
    assert_eq!(request["http.request.method"], "POST", "{ban}");
    assert!(
        request["http.route"]
            .as_str()
            .is_some_and(|r| r.contains("ban")),
        "{ban}"
    );
    assert!(
        spans.iter().all(|s| s["name"] != "node"),
        "the trace scope span stays hidden: {ban}"
    );
}
