//! Attack benchmark: runs the hostile-network attacks of issue 7 against a real node process
//! (the built `sorcha-peer serve`, release profile under `cargo bench`) on loopback and prints,
//! as JSON, what each cost the node: peak RSS, peak open descriptors against its limit, whether
//! (and how fast) an honest node from another address connected while the attack was on, and
//! how long a transaction pre-announced by a stalling attacker took to be sealed; and for the
//! half-sent messages of issue 16 what the node refused and whether an honest peer connected
//! before the attack kept its session.
//!
//!     cargo bench --bench attack                       # every attack, a few minutes
//!     cargo bench --bench attack -- --only follow-flood,identity-flood
//!     cargo bench --bench attack -- --only half-sent-messages --attacker-ips 4
//!
//! Figures are meant to be compared release to release; the process is measured through
//! /proc, so this runs on Linux only.

#[path = "attack/half_sent.rs"]
mod half_sent;
#[path = "../tests/it/common/stranger.rs"]
mod stranger;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use sorcha_peer::client::AdminClient;
use sorcha_peer::identity::Identity;
use sorcha_peer::protocol::pb::{self, frame::Body, peer_session_client::PeerSessionClient};
use stranger::Claims;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, Parser)]
#[command(about = "Run hostile-peer attacks against a node process and print what they cost it")]
struct Args {
    /// Comma-separated attacks to run (default: all): silent-connections, stream-flood,
    /// identity-flood, inbound-slots, follow-flood, long-strings, unread-answers, gossip-stall,
    /// half-sent-messages, half-sent-in-session
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Addresses the half-sent-message attacks come from, each up to its per-address caps
    /// (8 connections, 4 sessions): 15 leaves the honest node one of the 128 connection slots
    #[arg(long, default_value_t = 15)]
    attacker_ips: u8,
    /// How long an honest node may take to connect during an attack before it counts as
    /// shut out
    #[arg(long, default_value_t = 15)]
    honest_timeout_secs: u64,
    /// How long the stalling attacker waits before answering each pull with "missing"
    #[arg(long, default_value_t = 25)]
    stall_secs: u64,
    /// The `sorcha-peer` binary to attack [default: the one built with this benchmark], so
    /// an older release can be measured the same way
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

const ALL: [&str; 10] = [
    "silent-connections",
    "stream-flood",
    "identity-flood",
    "inbound-slots",
    "follow-flood",
    "long-strings",
    "unread-answers",
    "gossip-stall",
    "half-sent-messages",
    "half-sent-in-session",
];
const VICTIM_IP: &str = "127.0.0.150";
const ATTACKER_IP: &str = "127.0.0.151";
const REGISTER: &str = "open";

/// Settings for every node process: fast enough that an attack round takes seconds.
const NODE_ENV: [(&str, &str); 7] = [
    ("SORCHA_PEER_HEARTBEAT_INTERVAL", "1s"),
    ("SORCHA_PEER_DIAL_INTERVAL", "100ms"),
    ("SORCHA_PEER_RECONNECT_BACKOFF_MIN", "100ms"),
    ("SORCHA_PEER_RECONNECT_BACKOFF_MAX", "1s"),
    ("SORCHA_PEER_SEAL_INTERVAL", "200ms"),
    ("SORCHA_PEER_GOSSIP_INTERVAL", "20ms"),
    ("SORCHA_PEER_LOG_LEVEL", "error"),
];

/// A node running as its own process.
struct NodeProcess {
    binary: std::path::PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
    client: AdminClient,
    peer_id: String,
    peer_addr: SocketAddr,
}

impl NodeProcess {
    async fn start(binary: &Path, ip: &str, name: &str, seeds: &[SocketAddr]) -> NodeProcess {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", &format!("{ip}:0")])
            .args(["--admin-listen", "127.0.0.1:0", "--name", name])
            .envs(NODE_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for seed in seeds {
            command.args(["--seed", &seed.to_string()]);
        }
        let child = command.spawn().expect("start sorcha-peer serve");
        let (url, token) = wait_for_files(dir.path()).await;
        let client = AdminClient::new(&url, Some(token)).expect("admin client");
        let status = client.status().await.expect("status");
        NodeProcess {
            binary: binary.to_path_buf(),
            child,
            _dir: dir,
            client,
            peer_id: status.peer_id,
            peer_addr: status.listen.parse().expect("listen address"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn connected(&self) -> Vec<String> {
        self.client
            .peers(Some("connected"), None, None)
            .await
            .map(|peers| peers.into_iter().map(|p| p.peer_id).collect())
            .unwrap_or_default()
    }
}

async fn wait_for_files(dir: &Path) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = std::fs::read_to_string(dir.join("admin.url"));
        let token = std::fs::read_to_string(dir.join("admin.token"));
        if let (Ok(url), Ok(token)) = (url, token) {
            return (url.trim().to_string(), token.trim().to_string());
        }
        assert!(Instant::now() < deadline, "the node did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // Killed, not stopped: the figures are taken, and a benchmark must not leave nodes.
        if let Err(e) = self.child.kill() {
            eprintln!("cannot stop node {}: {e}", self.peer_id);
        }
        let _ = self.child.wait(); // reaps it; the exit status of a killed node says nothing
    }
}

/// Resident memory (KiB) and open descriptors of a process.
/// Usage once the node has closed what the attacker held (its descriptors back to about where
/// they were), at most `SETTLE` after the attacker let go: sampled at once, "after" would say
/// how far the node's teardown had got.
async fn settled_usage(pid: u32, fds_before: usize) -> (u64, usize) {
    const SETTLE: Duration = Duration::from_secs(3);
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = usage(pid).unwrap_or((0, 0));
        if now.1 <= fds_before + 2 || Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn usage(pid: u32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

fn fd_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

/// Peak usage of a process over a window, sampled every 20 ms.
struct Sampler {
    peak: Arc<Mutex<(u64, usize)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let peak = Arc::new(Mutex::new((0, 0)));
        let shared = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some((rss, fds)) = usage(pid)
                    && let Ok(mut p) = shared.lock()
                {
                    p.0 = p.0.max(rss);
                    p.1 = p.1.max(fds);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Sampler { peak, task }
    }

    fn stop(self) -> (u64, usize) {
        self.task.abort();
        self.peak.lock().map(|p| *p).unwrap_or((0, 0))
    }
}

/// Starts an honest node on `ip` seeded with the victim and returns how long until the victim
/// listed it as connected (`None`: not within the timeout).
async fn honest_connects(victim: &NodeProcess, ip: &str, timeout: Duration) -> Option<u128> {
    let started = Instant::now();
    let honest = NodeProcess::start(&victim.binary, ip, "honest", &[victim.peer_addr]).await;
    while started.elapsed() < timeout {
        if victim.connected().await.contains(&honest.peer_id) {
            return Some(started.elapsed().as_millis());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// What one attack holds open while the honest node tries to connect (dropped after).
type Held = Vec<Box<dyn Send>>;

fn hold<T: Send + 'static>(items: Vec<T>) -> Held {
    items
        .into_iter()
        .map(|item| Box::new(item) as Box<dyn Send>)
        .collect()
}

/// A task that ends when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn hold_tasks(tasks: Vec<tokio::task::JoinHandle<()>>) -> Held {
    hold(tasks.into_iter().map(AbortOnDrop).collect())
}

async fn raw_connection(to: SocketAddr, from: &str) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from.parse().ok()?, 0)).ok()?;
    socket.connect(to).await.ok()
}

/// Runs one attack; returns what it holds open and figures of its own. One arm per attack,
/// side by side so they can be compared.
#[allow(clippy::too_many_lines)]
async fn attack(name: &str, victim: &NodeProcess, args: &Args) -> (Held, Value) {
    let to = victim.peer_addr;
    match name {
        "silent-connections" => {
            let mut sockets = Vec::new();
            for _ in 0..1100 {
                if let Some(s) = raw_connection(to, ATTACKER_IP).await {
                    sockets.push(s);
                }
            }
            let opened = sockets.len();
            (hold(sockets), json!({ "connectionsOpened": opened }))
        }
        "stream-flood" => {
            let Ok(channel) = stranger::channel_from(to, ATTACKER_IP, &Identity::generate()).await
            else {
                return (Held::new(), json!({ "error": "cannot connect" }));
            };
            let mut tasks = Vec::new();
            for _ in 0..5000 {
                let mut client = PeerSessionClient::new(channel.clone());
                tasks.push(tokio::spawn(async move {
                    let (tx, rx) = mpsc::channel(1);
                    let me = Identity::generate();
                    let _ = tx.send(stranger::hello(&me, &Claims::default())).await;
                    if let Ok(response) = client.session(ReceiverStream::new(rx)).await {
                        let _held = (response, tx);
                        std::future::pending::<()>().await;
                    }
                }));
            }
            (hold_tasks(tasks), json!({ "streamsRequested": 5000 }))
        }
        "identity-flood" => {
            let mut completed = 0;
            for _ in 0..3000 {
                if stranger::connect(to, ATTACKER_IP, &Claims::default())
                    .await
                    .is_ok()
                {
                    completed += 1;
                }
            }
            let known = victim
                .client
                .peers(Some("all"), None, None)
                .await
                .map(|p| p.len())
                .unwrap_or(0);
            (
                Held::new(),
                json!({ "handshakesCompleted": completed, "peersKnownAfter": known }),
            )
        }
        "inbound-slots" => {
            let mut strangers = Vec::new();
            for _ in 0..64 {
                if let Ok(s) = stranger::connect(to, ATTACKER_IP, &Claims::default()).await {
                    strangers.push(s);
                }
            }
            let admitted = strangers.len();
            (hold(strangers), json!({ "identitiesAdmitted": admitted }))
        }
        "follow-flood" => {
            let Ok(s) = stranger::connect(to, ATTACKER_IP, &Claims::default()).await else {
                return (Held::new(), json!({ "error": "handshake refused" }));
            };
            let mut sent = 0;
            for i in 0..2000 {
                let register_id = format!("{i}-{}", "f".repeat(60 * 1024));
                let follow = Body::Follow(pb::Follow {
                    register_id,
                    follow: true,
                });
                if s.send(follow).await.is_err() {
                    break;
                }
                sent += 1;
            }
            (hold(vec![s]), json!({ "followFramesSent": sent }))
        }
        "long-strings" => {
            let long = Claims {
                listen_address: format!("{}:1", "a".repeat(1024 * 1024)),
                ..Claims::default()
            };
            let long_refused = stranger::connect(to, ATTACKER_IP, &long).await.is_err();
            let Ok(s) = stranger::connect(to, ATTACKER_IP, &Claims::default()).await else {
                return (Held::new(), json!({ "error": "handshake refused" }));
            };
            for request_id in 0..20u64 {
                let peers = (0..10)
                    .map(|i| pb::PeerAddress {
                        peer_id: hex::encode([(request_id * 10 + i) as u8; 16]),
                        address: format!("{}.example:5000", "b".repeat(300 * 1024)),
                        last_seen_ms: 0,
                    })
                    .collect();
                let request = Body::ExchangeRequest(pb::PeerExchangeRequest {
                    request_id,
                    peers,
                    max_peers: 10,
                });
                if s.send(request).await.is_err() {
                    break;
                }
            }
            let longest = victim
                .client
                .peers(Some("all"), None, None)
                .await
                .map(|p| p.iter().map(|p| p.endpoint.len()).max().unwrap_or(0))
                .unwrap_or(0);
            (
                hold(vec![s]),
                json!({ "megabyteAddressRefused": long_refused, "longestStoredAddress": longest }),
            )
        }
        "unread-answers" => {
            let me = Identity::generate();
            let Ok(channel) = stranger::channel_from(to, ATTACKER_IP, &me).await else {
                return (Held::new(), json!({ "error": "cannot connect" }));
            };
            let Ok(session) = stranger::open_session(channel, &me, &Claims::default()).await else {
                return (Held::new(), json!({ "error": "handshake refused" }));
            };
            let s = session.silent();
            for request_id in 0..1000 {
                let request = Body::DocketRequest(pb::DocketRequest {
                    request_id,
                    register_id: REGISTER.into(),
                    from_number: 0,
                    max_dockets: 100,
                    headers_only: false,
                    max_bytes: 0,
                });
                if s.send(request).await.is_err() {
                    break;
                }
            }
            (hold(vec![s]), json!({ "docketRequestsSent": 1000 }))
        }
        "gossip-stall" => gossip_stall(victim, args).await,
        "half-sent-messages" => half_sent::before_a_session(victim, args.attacker_ips).await,
        "half-sent-in-session" => half_sent::in_sessions(victim, args.attacker_ips).await,
        other => (
            Held::new(),
            json!({ "error": format!("unknown attack {other}") }),
        ),
    }
}

/// The attacker pre-announces a transaction it does not have, hidden behind 1 999 dummy IDs,
/// and answers each pull only after `stall_secs`, with "missing". The transaction is then
/// submitted at an honest node that carries the register; the figure is how long the victim
/// (the register's origin) takes to seal it.
async fn gossip_stall(victim: &NodeProcess, args: &Args) -> (Held, Value) {
    let honest = NodeProcess::start(
        &victim.binary,
        "127.0.0.160",
        "submitter",
        &[victim.peer_addr],
    )
    .await;
    if let Err(e) = honest.client.subscribe(REGISTER, "forward-only").await {
        return (Held::new(), json!({ "error": format!("subscribe: {e}") }));
    }
    let payload = format!("victim transaction {}", hex::encode(rand_bytes()));
    let victim_id = sorcha_peer::ledger::tx_hash(payload.as_bytes());
    let me = Identity::generate();
    let Ok(channel) = stranger::channel_from(victim.peer_addr, ATTACKER_IP, &me).await else {
        return (Held::new(), json!({ "error": "cannot connect" }));
    };
    let Ok(session) = stranger::open_session(channel, &me, &Claims::default()).await else {
        return (Held::new(), json!({ "error": "handshake refused" }));
    };
    let stall = Duration::from_secs(args.stall_secs);
    let staller = session.stalling(stall);
    let mut ids = vec![victim_id];
    ids.extend((0..1999u32).map(|i| {
        sorcha_peer::ledger::tx_hash(format!("dummy {i} {}", hex::encode(rand_bytes())).as_bytes())
    }));
    if let Err(e) = staller.announce(REGISTER, &ids).await {
        return (Held::new(), json!({ "error": format!("announce: {e}") }));
    }
    // Let the victim take in the announcement (and ask the attacker) before the honest copy
    // exists anywhere.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let submitted = Instant::now();
    if let Err(e) = honest.client.submit(REGISTER, payload.into_bytes()).await {
        return (Held::new(), json!({ "error": format!("submit: {e}") }));
    }
    let id = hex::encode(victim_id);
    let limit = stall * 6;
    let mut sealed_ms = None;
    while submitted.elapsed() < limit {
        if let Ok(tx) = victim.client.transaction(REGISTER, &id).await
            && tx.state == "sealed"
        {
            sealed_ms = Some(submitted.elapsed().as_millis());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pulled = staller.pulled();
    (
        hold(vec![staller]),
        json!({
            "victimSealedMs": sealed_ms,
            "stallSeconds": args.stall_secs,
            "idsPulledFromAttacker": pulled,
        }),
    )
}

fn rand_bytes() -> [u8; 16] {
    rand::random()
}

// The script of one benchmark run, read top to bottom: set up, measure, report.
#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() {
    let args = Args::parse();
    let attacks: Vec<String> = if args.only.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.only.clone()
    };
    let honest_timeout = Duration::from_secs(args.honest_timeout_secs);
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sorcha-peer").into());
    let mut results = Vec::new();
    for (i, name) in attacks.iter().enumerate() {
        // A fresh victim per attack, so one attack's leftovers do not blur the next's figures.
        let victim = NodeProcess::start(&binary, VICTIM_IP, "victim", &[]).await;
        if let Err(e) = victim.client.create_register(REGISTER, true).await {
            eprintln!("cannot create the register: {e}");
            std::process::exit(1);
        }
        let payloads: Vec<String> = (0..200u32)
            .map(|n| format!("{n:06}-{}", "p".repeat(10_000)))
            .collect();
        if let Err(e) = victim.client.submit_batch(REGISTER, payloads).await {
            eprintln!("cannot load the register: {e}");
            std::process::exit(1);
        }
        let pid = victim.pid();
        let (rss_before, fds_before) = usage(pid).unwrap_or((0, 0));
        let sampler = Sampler::start(pid);
        let started = Instant::now();
        let (held, figures) = attack(name, &victim, &args).await;
        let honest_ip = format!("127.0.0.{}", 170 + i);
        let honest_ms = honest_connects(&victim, &honest_ip, honest_timeout).await;
        drop(held);
        let (rss_peak, fds_peak) = sampler.stop();
        let (rss_after, fds_after) = settled_usage(pid, fds_before).await;
        let result = json!({
            "attack": name,
            "seconds": started.elapsed().as_secs_f64(),
            "rssMbBefore": rss_before as f64 / 1024.0,
            "rssMbPeak": rss_peak as f64 / 1024.0,
            "rssMbAfter": rss_after as f64 / 1024.0,
            "fdsBefore": fds_before,
            "fdsPeak": fds_peak,
            "fdsAfter": fds_after,
            "fdLimit": fd_limit(pid),
            "honestConnected": honest_ms.is_some(),
            "honestConnectMs": honest_ms,
            "figures": figures,
        });
        eprintln!("{result}");
        results.push(result);
    }
    let report = json!({ "version": sorcha_peer::VERSION, "attacks": results });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_else(|e| e.to_string())
    );
}
