//! A `sorcha-peer serve` process whose log (stderr) is collected as it runs, for tests that
//! check what a node tells its operator; killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};

use sorcha_peer::client::AdminClient;

use super::{PATIENCE, serve_command, wait_for, wait_until};

pub struct Serve {
    child: Child,
    log: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
}

impl Serve {
    /// Starts a node in a fresh data directory on `ip`, logging at `info`, dialling and
    /// redialling fast, with `env` set and `seeds`.
    pub fn start(ip: &str, env: &[(&str, &str)], seeds: &[String]) -> Serve {
        Serve::start_in(tempfile::tempdir().expect("tempdir"), ip, env, seeds)
    }

    /// The same in `dir` (which may hold the node key already).
    pub fn start_in(
        dir: tempfile::TempDir,
        ip: &str,
        env: &[(&str, &str)],
        seeds: &[String],
    ) -> Serve {
        let mut cmd = serve_command(dir.path(), ip);
        cmd.args(["--log-level", "info"])
            .env("SORCHA_PEER_DIAL_INTERVAL", "50ms")
            .env("SORCHA_PEER_RECONNECT_BACKOFF_MIN", "50ms")
            .env("SORCHA_PEER_RECONNECT_BACKOFF_MAX", "200ms");
        for seed in seeds {
            cmd.args(["--seed", seed]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        Serve { child, log, dir }
    }

    /// Waits until the node's admin API answers, and returns a client of it.
    pub async fn client(&self) -> AdminClient {
        wait_for("the node to start", PATIENCE, || async {
            // The files may be there (or half written) before the API answers.
            let url = read(self.dir.path(), "admin.url")?;
            let token = read(self.dir.path(), "admin.token")?;
            let client = AdminClient::new(&url, Some(token)).ok()?;
            client.status().await.ok().map(|_| client)
        })
        .await
    }

    /// Waits until the node serves, and returns its peer address.
    pub async fn peer_address(&self) -> String {
        self.client().await.status().await.expect("status").listen
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until a line of the log holds every one of `needles`.
    pub async fn wait_log_line(&self, what: &str, needles: &[&str]) {
        wait_until(what, PATIENCE, || async {
            self.log()
                .lines()
                .any(|line| needles.iter().all(|n| line.contains(n)))
        })
        .await;
    }

    pub async fn wait_log(&self, what: &str, needle: &str) {
        self.wait_log_line(what, &[needle]).await;
    }
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty())
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
