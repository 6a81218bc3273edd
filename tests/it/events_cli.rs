//! The commands that read the event stream, with real nodes: `sorcha-peer events` (history,
//! then `--follow`) and `peers list --watch`.

use crate::common::{PATIENCE, TestCluster, TestNode, wait_until};

/// A CLI command left running (`--follow`, `--watch`), read line by line; killed when dropped.
struct Running {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Running {
    fn start(node: &TestNode, args: &[&str]) -> Running {
        let mut child = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("sorcha-peer"))
            .args(["--node", &node.admin_url, "--token", &node.token])
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("SORCHA_PEER_NODE")
            .env_remove("SORCHA_PEER_TOKEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start sorcha-peer");
        let stdout = child.stdout.take().expect("stdout");
        use tokio::io::AsyncBufReadExt;
        Running {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    /// Reads lines until one satisfies `wanted`; panics with `what` after `PATIENCE`.
    async fn line_where(&mut self, what: &str, mut wanted: impl FnMut(&str) -> bool) -> String {
        let mut seen = Vec::new();
        let read = async {
            while let Some(line) = self.lines.next_line().await.expect("read stdout") {
                if wanted(&line) {
                    return Some(line);
                }
                seen.push(line);
            }
            None
        };
        match tokio::time::timeout(PATIENCE, read).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("output ended before {what}; saw {seen:#?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
        }
    }
}

fn json_line(line: &str) -> serde_json::Value {
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_command_prints_history_then_follows_until_the_node_stops() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;

    // Without --follow: the history, then exit.
    let (code, stdout, stderr) = crate::common::cli(&a, &["events"]).await;
    assert_eq!(code, 0, "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.contains("peerConnected"))
        .unwrap_or_else(|| panic!("no peerConnected line: {stdout}"));
    // Peer IDs short, as in the tables, so a line fits a terminal; in full with -o wide.
    assert!(
        line.contains(&b.peer_id[..12])
            && !line.contains(&b.peer_id)
            && line.contains("connected (inbound"),
        "{line}"
    );
    let (code, stdout, stderr) = crate::common::cli(&a, &["events", "-o", "wide"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("peerConnected") && l.contains(&b.peer_id)),
        "{stdout}"
    );
    let (code, stdout, stderr) =
        crate::common::cli(&a, &["events", "-o", "json", "--limit", "1"]).await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let event = json_line(lines[0]);
    assert!(event["seq"].as_u64().is_some_and(|s| s > 0) && event["type"].is_string());

    // --follow: what happens next, one JSON object per line.
    let mut follow = Running::start(&a, &["events", "--follow", "-o", "json", "--limit", "0"]);
    // Once it reads the stream (what it printed as history is not printed again).
    let events = a.handle.as_ref().expect("running").events.clone();
    wait_until("events --follow to subscribe", PATIENCE, || async {
        events.subscribers() == 1
    })
    .await;
    a.client
        .ban(&b.peer_id, Some("cli follow test"), None)
        .await
        .expect("ban");
    let line = follow
        .line_where("the ban", |l| l.contains("\"peerBanned\""))
        .await;
    let event = json_line(&line);
    assert_eq!(event["target"], b.peer_id.as_str());
    assert_eq!(event["reason"], "cli follow test");
    follow
        .line_where("the disconnection", |l| l.contains("\"peerDisconnected\""))
        .await;

    // The node stops: the stream ends and the command says the node went away (exit 3).
    b.stop().await;
    a.stop().await;
    let status = tokio::time::timeout(PATIENCE, follow.child.wait())
        .await
        .expect("events --follow ends when the node stops")
        .expect("wait");
    assert_eq!(status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_list_watch_redraws_when_a_peer_is_banned() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;

    let state_of = |line: &str, id: &str| -> Option<String> {
        json_line(line)
            .as_array()
            .expect("an array of peers per line")
            .iter()
            .find(|p| p["peerId"] == id)
            .and_then(|p| p["state"].as_str().map(str::to_string))
    };
    let mut watch = Running::start(&a, &["peers", "list", "--watch", "-o", "json"]);
    watch
        .line_where("b listed as connected", |l| {
            state_of(l, &b.peer_id).as_deref() == Some("connected")
        })
        .await;
    a.client
        .ban(&b.peer_id, Some("watch test"), None)
        .await
        .expect("ban");
    watch
        .line_where("b redrawn as banned", |l| {
            state_of(l, &b.peer_id).as_deref() == Some("banned")
        })
        .await;

    // The table form redraws too (piped: one table after another).
    let mut table = Running::start(&a, &["peers", "list", "--watch"]);
    let short = &b.peer_id[..8];
    table
        .line_where("b in the table", |l| {
            l.contains(short) && l.contains("banned")
        })
        .await;
    a.client.unban(&b.peer_id).await.expect("unban");
    table
        .line_where("b back after the unban", |l| {
            l.contains(short) && !l.contains("banned")
        })
        .await;
    drop(watch);
    drop(table);
    b.stop().await;
    a.stop().await;
}
