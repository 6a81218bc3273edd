//! The chaos nodes: `sorcha-peer serve` processes, each in its own namespace, on fixed ports
//! so that a restarted node comes back at the same address, with their logs in files outside
//! the data directories (one of which is a tmpfs the test fills).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use sorcha_peer::client::AdminClient;

use crate::net::{ADMIN_PORT, PEER_PORT, node_ip};

pub struct Node {
    pub index: usize,
    ns: String,
    data: PathBuf,
    log: PathBuf,
    seeds: Vec<String>,
    child: Option<Child>,
    /// Set by the workload and the checker from [`Node::client`].
    pub client: Option<AdminClient>,
}

impl Node {
    pub fn new(index: usize, ns: String, data: PathBuf, log: PathBuf, nodes: usize) -> Node {
        let seeds = (0..nodes)
            .filter(|&j| j != index)
            .map(|j| format!("{}:{PEER_PORT}", node_ip(j)))
            .collect();
        Node {
            index,
            ns,
            data,
            log,
            seeds,
            child: None,
            client: None,
        }
    }

    /// Starts the process (its log is appended to, across restarts).
    pub fn spawn(&mut self) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("log {}: {e}", self.log.display()))?;
        let ip = node_ip(self.index);
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.ns,
            env!("CARGO_BIN_EXE_sorcha-peer"),
            "serve",
        ])
        .arg("--data-dir")
        .arg(&self.data)
        .args(["--listen", &format!("{ip}:{PEER_PORT}")])
        .args(["--admin-listen", &format!("{ip}:{ADMIN_PORT}")])
        .args(["--log-level", "warn"])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("SORCHA_PEER_SEAL_INTERVAL", "200ms")
        .env("SORCHA_PEER_DIAL_INTERVAL", "100ms")
        .env("SORCHA_PEER_RECONNECT_BACKOFF_MIN", "100ms")
        .env("SORCHA_PEER_RECONNECT_BACKOFF_MAX", "1s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
        for seed in &self.seeds {
            cmd.args(["--seed", seed]);
        }
        // `ip netns exec` execs the node, so the child's PID is the node's.
        self.child = Some(cmd.spawn().map_err(|e| format!("spawn node: {e}"))?);
        self.client = None;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (KILL, STOP, CONT) to the process, which is not reaped yet.
    pub fn signal(&self, signal: Signal) -> Result<(), String> {
        let child = self.child.as_ref().ok_or("node not running")?;
        rustix::process::kill_process(rustix::process::Pid::from_child(child), signal)
            .map_err(|e| format!("kill -{signal:?} {}: {e}", child.id()))
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) -> Result<(), String> {
        self.signal(Signal::KILL)?;
        if let Some(mut child) = self.child.take() {
            child.wait().map_err(|e| format!("wait: {e}"))?;
        }
        self.client = None;
        Ok(())
    }

    /// Whether the process has exited by itself (a crash), with how.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot tell: {e}")),
        }
    }

    /// The peak resident set size of the running process, in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Waits (up to `within`) until the admin API answers, and keeps a client of it.
    pub async fn connect(&mut self, within: Duration) -> Result<AdminClient, String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(client) = self.try_client().await {
                self.client = Some(client.clone());
                return Ok(client);
            }
            if let Some(how) = self.exited() {
                return Err(format!("node {} exited: {how}", self.index));
            }
            if Instant::now() > deadline {
                return Err(format!("node {}'s admin API did not answer", self.index));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn try_client(&self) -> Option<AdminClient> {
        let token = read(&self.data, "admin.token")?;
        let url = format!("http://{}:{ADMIN_PORT}", node_ip(self.index));
        let client = AdminClient::new(&url, Some(token))
            .ok()?
            .with_timeout(Duration::from_secs(3))
            .ok()?;
        client.status().await.ok().map(|_| client)
    }

    /// The last lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process must be continued to die promptly.
            let _ = child.kill();
            let pid = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process(pid, Signal::CONT);
            let _ = child.wait();
        }
    }
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}
