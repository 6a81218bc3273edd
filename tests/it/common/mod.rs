//! Test harness: nodes on loopback addresses handed out by [`TestCluster`], port-0 listeners and millisecond intervals, polling
//! helpers with hard time limits, and a throwaway PostgreSQL cluster.

#![allow(dead_code)]

pub mod cluster;
pub mod faults;
pub mod hostile;
pub mod postgres;
pub mod serve;
pub mod stranger;
pub mod tools;
pub mod webdriver;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sorcha_peer::api::PeerDto;
use sorcha_peer::client::AdminClient;
use sorcha_peer::config::Config;
use sorcha_peer::node::{self, Listeners, NodeHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cluster::TestCluster;

/// Heartbeat interval used by test nodes.
pub const HEARTBEAT: Duration = Duration::from_millis(100);
/// Upper bound for anything a test waits for; failures show well before.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A configuration for a test node on `ip`, with fast intervals.
pub fn test_config(data_dir: &Path, ip: &str) -> Config {
    let mut c = Config::defaults().expect("defaults");
    c.data_dir = data_dir.to_path_buf();
    c.listen = format!("{ip}:0").parse().expect("listen");
    c.admin_listen = "127.0.0.1:0".parse().expect("admin");
    c.heartbeat_interval = HEARTBEAT;
    c.exchange_interval = Duration::from_millis(200);
    c.dial_interval = Duration::from_millis(50);
    c.connect_timeout = Duration::from_secs(2);
    c.reconnect_backoff_min = Duration::from_millis(50);
    c.reconnect_backoff_max = Duration::from_millis(400);
    c.seal_interval = Duration::from_millis(100);
    c.request_timeout = Duration::from_secs(10);
    c.log_level = "warn".into();
    c
}

/// One node running inside the test process.
pub struct TestNode {
    pub config: Config,
    pub handle: Option<NodeHandle>,
    pub client: AdminClient,
    pub peer_id: String,
    pub peer_addr: SocketAddr,
    pub admin_url: String,
    pub token: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestNode {
    /// Starts a node on `ip` with its own temporary data directory.
    pub async fn start(ip: &str, adjust: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path(), ip);
        adjust(&mut config);
        let mut node = TestNode::start_with(config).await;
        node._dir = Some(dir);
        node
    }

    /// Starts a node on a peer listener the caller bound already (so other nodes can be given
    /// its address before it starts), with its own temporary data directory.
    pub async fn start_on(peer: TcpListener, adjust: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let ip = peer.local_addr().expect("bound address").ip().to_string();
        let mut config = test_config(dir.path(), &ip);
        adjust(&mut config);
        let mut node = TestNode::start_listening(config, peer).await;
        node._dir = Some(dir);
        node
    }

    /// Starts a node from a full configuration (its data dir is the caller's).
    pub async fn start_with(config: Config) -> TestNode {
        let peer = TcpListener::bind(config.listen)
            .await
            .expect("bind peer listener");
        TestNode::start_listening(config, peer).await
    }

    async fn start_listening(config: Config, peer: TcpListener) -> TestNode {
        sorcha_peer::telemetry::init_logging(
            &std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        let listeners = Listeners {
            peer,
            admin: TcpListener::bind(config.admin_listen)
                .await
                .expect("bind admin listener"),
        };
        let handle = node::start(config.clone(), listeners, CancellationToken::new())
            .await
            .expect("node starts");
        let admin_url = handle.admin_url();
        let client =
            AdminClient::new(&admin_url, Some(handle.admin_token.clone())).expect("client");
        TestNode {
            peer_id: handle.peer_id.clone(),
            peer_addr: handle.peer_addr,
            token: handle.admin_token.clone(),
            admin_url,
            client,
            config,
            handle: Some(handle),
            _dir: None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// "host:port" other nodes use as a seed.
    pub fn seed(&self) -> String {
        self.peer_addr.to_string()
    }

    /// Stops the node (sessions say goodbye, data is flushed).
    pub async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }

    /// Stops and starts again on the same data directory and peer address.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut config = self.config.clone();
        config.listen = self.peer_addr;
        let dir = self._dir.take();
        let restarted = TestNode::start_with(config).await;
        let config = self.config.clone();
        *self = restarted;
        self.config = config;
        self._dir = dir;
    }

    /// This node's view of peer `id`, if it knows it.
    pub async fn view_of(&self, id: &str) -> Option<PeerDto> {
        self.client
            .peers(None, None, None)
            .await
            .expect("list peers")
            .into_iter()
            .find(|p| p.peer_id == id)
    }

    /// The state this node shows for peer `id` ("unknown" if it does not know it).
    pub async fn state_of(&self, id: &str) -> String {
        self.view_of(id)
            .await
            .map(|p| p.state)
            .unwrap_or_else(|| "unknown".into())
    }

    /// This node's view of a register it holds.
    pub async fn register(&self, id: &str) -> Option<sorcha_peer::api::RegisterDto> {
        self.client
            .registers()
            .await
            .expect("list registers")
            .into_iter()
            .find(|r| r.register_id == id)
    }

    /// Waits until this node holds `register` at `version` (sealed transactions).
    pub async fn wait_for_version(&self, register: &str, version: u64, within: Duration) {
        let what = format!("{register} to reach version {version} on {}", self.peer_id);
        wait_until(&what, within, || async {
            self.register(register)
                .await
                .is_some_and(|r| r.latest_version >= version)
        })
        .await;
    }

    /// Whether this node holds transaction `tx` of `register` sealed.
    pub async fn is_sealed(&self, register: &str, tx: &str) -> bool {
        self.client
            .transaction(register, tx)
            .await
            .is_ok_and(|t| t.state == "sealed")
    }

    /// Waits until this node holds transaction `tx` of `register` sealed.
    pub async fn wait_sealed(&self, register: &str, tx: &str, within: Duration) {
        let what = format!("{tx} to be sealed on {}", self.peer_id);
        wait_until(&what, within, || self.is_sealed(register, tx)).await;
    }

    pub async fn wait_for_state(&self, id: &str, state: &str, within: Duration) {
        let what = format!("peer {id} to be {state} on {}", self.peer_id);
        wait_until(&what, within, || async { self.state_of(id).await == state }).await;
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if self.handle.is_some() {
            // A test that panicked: the runtime is going away anyway; nothing to await.
            eprintln!("note: test node {} dropped while running", self.peer_id);
        }
    }
}

/// Polls `check` every 25 ms until it holds; panics with `what` after `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        if start.elapsed() > within {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `probe` every 25 ms until it yields a value; panics with `what` after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if start.elapsed() > within {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Asserts that `check` holds during the whole of `period` (sampled every 25 ms).
pub async fn holds_for<F, Fut>(what: &str, period: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < period {
        assert!(check().await, "expected {what} to keep holding");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A `sorcha-peer serve` of the built binary in `dir`, listening on `ip` (port 0) with its
/// admin API on 127.0.0.1:0, RUST_LOG unset, no colour, stderr piped (its log).
pub fn serve_command(dir: &Path, ip: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("sorcha-peer"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen",
            &format!("{ip}:0"),
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

/// The value of a metric (first sample of that name) in Prometheus text, 0 if absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = rest.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

/// Subscribes every node after the first to `register` as a full replica, in order, each once
/// the previous one holds it (in a line, a node's only source is its predecessor), and waits
/// until all are fully replicated.
pub async fn replicate_along(nodes: &[&TestNode], register: &str) {
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let previous = nodes[i - 1];
        wait_until(&format!("node {i} to see {register}"), PATIENCE, || async {
            previous.register(register).await.is_some()
                && node.client.available_registers().await.is_ok_and(|r| {
                    r.iter()
                        .any(|a| a.register_id == register && a.peer_count > 0)
                })
        })
        .await;
        node.client
            .subscribe(register, "full-replica")
            .await
            .expect("subscribe");
    }
    for (i, node) in nodes.iter().enumerate().skip(1) {
        wait_until(
            &format!("node {i} to be fully replicated"),
            PATIENCE,
            || async {
                node.register(register)
                    .await
                    .is_some_and(|r| r.sync_state == "fully-replicated")
            },
        )
        .await;
    }
}

/// The `sorcha-peer` binary built for these tests.
pub fn bin() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("sorcha-peer").expect("binary");
    cmd.env_remove("SORCHA_PEER_NODE")
        .env_remove("SORCHA_PEER_TOKEN")
        .env_remove("SORCHA_PEER_DATA_DIR")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(30));
    cmd
}

/// Runs the CLI against `node` and returns (exit code, stdout, stderr).
pub async fn cli(node: &TestNode, args: &[&str]) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.args(["--node", &node.admin_url, "--token", &node.token])
        .args(args);
    run_cmd(cmd).await
}

/// Runs a prepared command off the async runtime.
pub async fn run_cmd(mut cmd: assert_cmd::Command) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = cmd.output().expect("run sorcha-peer");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .expect("join")
}
