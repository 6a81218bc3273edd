//! Ingest benchmark: N separate `serve` processes (one origin, the rest full replicas, peer TLS
//! on, default settings), transactions submitted with `tx submit --lines` at every node at
//! once. Prints, as JSON: accepted and sealed-everywhere rates, CPU time per transaction per
//! node, RSS per node, and beside them the raw rate of the storage itself, measured in the same
//! run (rows of the same sizes inserted into a bare SQLite table through the same driver, 1 000
//! rows per commit, 250 rows per statement, with `synchronous=FULL` (the node's default
//! durability) and `NORMAL`; and one row per statement, as the node wrote before batching).
//! Then a fresh full replica, a process of its own, catches up on everything from the origin:
//! its rate beside the first raw rate (as many rows, `FULL`, 250 per statement).
//!
//!     cargo bench --bench ingest                         # 5 nodes, 20 000 transactions
//!     cargo bench --bench ingest -- --backend postgres   # the same on a PostgreSQL cluster
//!     cargo bench --bench ingest -- --binary old/sorcha-peer   # another build, to alternate runs

#[allow(dead_code)] // the bench uses only the cluster that it can stop and restart
#[path = "../tests/it/common/postgres.rs"]
mod postgres;
#[path = "common/raw_sqlite.rs"]
mod raw_sqlite;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sorcha_peer::client::AdminClient;
use sqlx::Connection;

#[derive(Debug, Parser)]
#[command(about = "Measure transaction ingest across separate serve processes")]
struct Args {
    /// Nodes (separate processes): one origin, the others full replicas
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Transactions submitted in all, split evenly over the nodes
    #[arg(long, default_value_t = 20_000)]
    transactions: usize,
    /// Smallest payload, bytes
    #[arg(long, default_value_t = 100)]
    min_bytes: usize,
    /// Largest payload, bytes
    #[arg(long, default_value_t = 300)]
    max_bytes: usize,
    /// sqlite (each node's own file) or postgres (a throwaway cluster, one database per node)
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// The `sorcha-peer` binary to run (default: the one this bench was built with)
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Extra environment for every node, KEY=VALUE (repeatable), e.g.
    /// SORCHA_PEER_DURABILITY=fast
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The register's ID (the platform's are 32 hex digits, a GUID without dashes)
    #[arg(long, default_value = "ingest")]
    register: String,
    /// Seed of the payloads
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up waiting after this many seconds
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("ingest bench: {what}");
    std::process::exit(1)
}

struct Node {
    child: Child,
    dir: tempfile::TempDir,
    client: AdminClient,
    url: String,
    token: String,
    /// The register this run writes.
    register: String,
}

impl Node {
    async fn start(args: &Args, binary: &Path, seeds: &[String], database: Option<String>) -> Node {
        let dir = tempfile::tempdir().unwrap_or_else(|e| fail(format!("tempdir: {e}")));
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .env_remove("RUST_LOG")
            .env("SORCHA_PEER_LOG_LEVEL", "warn")
            // Every node connects from 127.0.0.1: lift the caps that protect a node from
            // strangers sharing one address.
            .env("SORCHA_PEER_MAX_INBOUND_PER_IP", "64")
            .env("SORCHA_PEER_MAX_CONNECTIONS_PER_IP", "128")
            .env("SORCHA_PEER_MAX_CONNECTIONS_PER_SUBNET", "128")
            .env("SORCHA_PEER_DIAL_INTERVAL", "100ms")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for seed in seeds {
            command.args(["--seed", seed]);
        }
        if let Some(url) = database {
            command.env("SORCHA_PEER_DATABASE_URL", url);
        }
        for pair in &args.env {
            match pair.split_once('=') {
                Some((k, v)) => command.env(k, v),
                None => fail(format!("--env {pair}: expected KEY=VALUE")),
            };
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| fail(format!("start {}: {e}", binary.display())));
        let deadline = Instant::now() + Duration::from_secs(60);
        let (url, token) = loop {
            let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).ok();
            if let (Some(u), Some(t)) = (read("admin.url"), read("admin.token"))
                && !u.trim().is_empty()
                && !t.trim().is_empty()
            {
                break (u.trim().to_string(), t.trim().to_string());
            }
            if Instant::now() > deadline {
                fail("a node did not start within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let client = AdminClient::new(&url, Some(token.clone()))
            .unwrap_or_else(|e| fail(format!("admin client: {e}")));
        while client.status().await.is_err() {
            if Instant::now() > deadline {
                fail("a node's admin API did not answer within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Node {
            child,
            dir,
            client,
            url,
            token,
            register: args.register.clone(),
        }
    }

    /// Waits until this node has a connected peer; `what` names it if it never does.
    async fn wait_connected(&self, deadline: Instant, what: &str) {
        while self
            .client
            .peers(Some("connected"), None, None)
            .await
            .map_or(0, |p| p.len())
            == 0
        {
            if Instant::now() > deadline {
                fail(format!("{what} did not connect"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn sealed(&self) -> u64 {
        match self.client.registers().await {
            Ok(registers) => registers
                .iter()
                .find(|r| r.register_id == self.register)
                .map_or(0, |r| r.latest_version),
            Err(_) => 0,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill(); // already gone is fine
        let _ = self.child.wait();
    }
}

/// CPU time (user + system, all threads) of a process so far.
fn cpu_time(pid: u32, ticks_per_second: f64) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / ticks_per_second)
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Payloads of random sizes in `min..=max` bytes, each unique, one text line each.
fn payloads(args: &Args) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    (0..args.transactions)
        .map(|i| {
            let size = rng.gen_range(args.min_bytes..=args.max_bytes.max(args.min_bytes));
            let head = format!("tx-{}-{i:09}-", args.seed);
            let fill: String = (head.len()..size)
                .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
                .collect();
            head + &fill
        })
        .collect()
}

async fn submit_all(binary: &Path, nodes: &[Node], payloads: &[String]) -> Duration {
    let share = payloads.len().div_ceil(nodes.len());
    let mut children = Vec::new();
    let started = Instant::now();
    for (node, part) in nodes.iter().zip(payloads.chunks(share)) {
        let file = node.dir.path().join("submit.txt");
        std::fs::write(&file, part.join("\n") + "\n")
            .unwrap_or_else(|e| fail(format!("write {}: {e}", file.display())));
        let child = Command::new(binary)
            .args(["--node", &node.url, "--token", &node.token])
            .args(["tx", "submit", "--lines", &node.register])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| fail(format!("start tx submit: {e}")));
        children.push(child);
    }
    for mut child in children {
        match child.wait() {
            Ok(status) if status.success() => {}
            other => fail(format!("tx submit --lines failed: {other:?}")),
        }
    }
    started.elapsed()
}

/// A fresh full replica, started after the run, replicates the whole register from the origin:
/// the time from its subscription until it holds every transaction, verified and stored.
async fn catch_up(
    args: &Args,
    binary: &Path,
    origin: &str,
    database: Option<String>,
    total: u64,
    deadline: Instant,
) -> (Node, Duration) {
    let joiner = Node::start(args, binary, &[origin.to_string()], database).await;
    joiner.wait_connected(deadline, "the late replica").await;
    let started = Instant::now();
    while let Err(e) = joiner
        .client
        .subscribe(&args.register, "full-replica")
        .await
    {
        if Instant::now() > deadline {
            fail(format!("the late replica's subscribe: {e}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while joiner.sealed().await < total {
        if Instant::now() > deadline {
            fail(format!(
                "the late replica holds {} of {total}",
                joiner.sealed().await
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (joiner, started.elapsed())
}

// The script of one benchmark run, read top to bottom: set up, measure, report.
#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() {
    let args = Args::parse();
    let binary = args
        .binary
        .clone()
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sorcha-peer").into());
    let n = args.nodes.max(1);
    let ticks = clock_ticks();
    let payloads = payloads(&args);
    let payload_bytes: usize = payloads.iter().map(String::len).sum();

    eprintln!("measuring the raw SQLite reference");
    let raw = vec![
        raw_sqlite::measure(&payloads, "FULL", 250).await,
        raw_sqlite::measure(&payloads, "NORMAL", 250).await,
        raw_sqlite::measure(&payloads, "FULL", 1).await,
    ];

    let pg = match args.backend.as_str() {
        "sqlite" => None,
        "postgres" => Some(
            postgres::OwnCluster::start()
                .unwrap_or_else(|| fail("PostgreSQL could not be started (see above)")),
        ),
        other => fail(format!("--backend {other}: expected sqlite or postgres")),
    };
    let mut databases = Vec::new();
    if let Some(pg) = &pg {
        let mut conn = sqlx::PgConnection::connect(&pg.url("postgres"))
            .await
            .unwrap_or_else(|e| fail(format!("PostgreSQL: {e}")));
        // The test harness starts its clusters without syncing (fsync=off); a figure beside
        // SQLite's durable default needs commits that reach the disk, as in production.
        for setting in [
            "ALTER SYSTEM SET fsync = on",
            "ALTER SYSTEM SET full_page_writes = on",
            "SELECT pg_reload_conf()",
        ] {
            sqlx::query(setting)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| fail(format!("PostgreSQL: {e}")));
        }
        // One more for the late replica that measures catch-up.
        for i in 0..=n {
            sqlx::query(&format!("CREATE DATABASE ingest_{i}"))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| fail(format!("PostgreSQL: {e}")));
            databases.push(Some(pg.url(&format!("ingest_{i}"))));
        }
    } else {
        databases.resize(n + 1, None);
    }

    eprintln!("starting {n} nodes ({})", binary.display());
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let origin = Node::start(&args, &binary, &[], databases[0].take()).await;
    let origin_addr = origin
        .client
        .status()
        .await
        .unwrap_or_else(|e| fail(format!("status: {e}")))
        .listen;
    nodes.push(origin);
    for database in databases.iter_mut().take(n).skip(1) {
        let node = Node::start(
            &args,
            &binary,
            std::slice::from_ref(&origin_addr),
            database.take(),
        )
        .await;
        nodes.push(node);
    }
    nodes[0]
        .client
        .create_register(&args.register, true)
        .await
        .unwrap_or_else(|e| fail(format!("create register: {e}")));
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    for node in &nodes[1..] {
        loop {
            match node.client.subscribe(&args.register, "full-replica").await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => fail(format!("subscribe: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    // Every replica connected to the origin and following it before the clock starts.
    for node in &nodes[1..] {
        node.wait_connected(deadline, "a replica").await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle: Vec<f64> = nodes.iter().map(|node| rss_mb(node.pid())).collect();
    let cpu_before: Vec<Duration> = nodes
        .iter()
        .map(|node| cpu_time(node.pid(), ticks))
        .collect();

    eprintln!("submitting {} transactions at {n} nodes", payloads.len());
    let started = Instant::now();
    let accepted = submit_all(&binary, &nodes, &payloads).await;
    let total = payloads.len() as u64;
    for node in &nodes {
        while node.sealed().await < total {
            if Instant::now() > deadline {
                fail(format!(
                    "timed out: sealed {:?} of {total}",
                    futures::future::join_all(nodes.iter().map(Node::sealed)).await
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let sealed = started.elapsed();
    let cpu: Vec<f64> = nodes
        .iter()
        .zip(&cpu_before)
        .map(|(node, before)| (cpu_time(node.pid(), ticks) - *before).as_secs_f64())
        .collect();
    let rss: Vec<f64> = nodes.iter().map(|node| rss_mb(node.pid())).collect();
    let mut gossip = Vec::new();
    for node in &nodes {
        let text = node.client.metrics().await.unwrap_or_default();
        let figures: serde_json::Map<String, serde_json::Value> = text
            .lines()
            .filter(|l| l.starts_with("sorcha_peer_gossip_") || l.starts_with("sorcha_peer_sync_"))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), json!(value.parse::<f64>().ok()?)))
            })
            .collect();
        gossip.push(figures);
    }
    eprintln!("a late full replica catching up on {total} transactions");
    let (joiner, catch_up_time) = catch_up(
        &args,
        &binary,
        &origin_addr,
        databases[n].take(),
        total,
        deadline,
    )
    .await;
    drop(joiner);
    let raw_rate = raw[0]["rowsPerSecond"].as_f64().unwrap_or(0.0);
    let catch_up_rate = total as f64 / catch_up_time.as_secs_f64();
    let cpu_us_per_tx_node = cpu.iter().sum::<f64>() * 1e6 / (total as f64 * n as f64);
    let report = json!({
        "version": sorcha_peer::VERSION,
        "binary": binary.display().to_string(),
        "register": args.register,
        "backend": args.backend,
        "nodes": n,
        "transactions": total,
        "payloadBytesMean": payload_bytes as f64 / total.max(1) as f64,
        "nodeEnv": args.env,
        "acceptedSeconds": accepted.as_secs_f64(),
        "acceptedTxPerSecond": total as f64 / accepted.as_secs_f64(),
        "sealedEverywhereSeconds": sealed.as_secs_f64(),
        "sealedEverywhereTxPerSecond": total as f64 / sealed.as_secs_f64(),
        "cpuSecondsPerNode": cpu,
        "cpuMicrosecondsPerTxPerNode": cpu_us_per_tx_node,
        "rssMbIdle": rss_idle,
        "rssMbAfter": rss,
        "rawSqlite": raw,
        "catchUp": {
            "transactions": total,
            "seconds": catch_up_time.as_secs_f64(),
            "transactionsPerSecond": catch_up_rate.round(),
            "rawSqliteRowsPerSecond": raw_rate.round(),
            "percentOfRaw": (catch_up_rate * 100.0 / raw_rate).round(),
        },
        "gossipAndSyncMetrics": gossip,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_else(|e| e.to_string())
    );
}
