//! Cluster benchmark: N real nodes in one process on loopback, each with a handful of
//! neighbours (a ring plus chords, not a full mesh), one register replicated everywhere.
//! Transactions are submitted at random nodes; the program prints, as JSON, how fast they
//! reach every node and get sealed, how many payload copies and announcement bytes that
//! costs, sustained throughput, full-replica catch-up rate and memory per node.
//!
//!     cargo bench --bench cluster                     # defaults: about a minute on 2 cores
//!     cargo bench --bench cluster -- --nodes 64 --transactions 5000 --rate 1000

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/raw_sqlite.rs"]
mod raw_sqlite;

use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sorcha_peer::config::Config;
use sorcha_peer::node::{self, Listeners, NodeHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    about = "Start a loopback cluster in one process and measure transaction gossip and replication"
)]
struct Args {
    /// Nodes in the cluster
    #[arg(long, default_value_t = 32)]
    nodes: usize,
    /// Extra random neighbours each node dials besides its ring predecessor
    #[arg(long, default_value_t = 2)]
    chords: usize,
    /// Transactions submitted (at random nodes)
    #[arg(long, default_value_t = 2000)]
    transactions: usize,
    /// Submission rate, transactions per second (100 is sustainable for 32 nodes sharing
    /// 2 cores; 200 saturates such a machine)
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Payload size in bytes
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Transactions the late joiner catches up on (origin-side load before it joins)
    #[arg(long, default_value_t = 20_000)]
    catch_up_transactions: usize,
    /// After the measured phase, submit this many transactions at once at the origin and time
    /// until every node holds them sealed (0: skip)
    #[arg(long, default_value_t = 0)]
    burst: usize,
    /// Peer transport: node-key (TLS 1.3, the default) or off (plaintext, to see what TLS costs)
    #[arg(long, default_value = "node-key")]
    peer_tls: sorcha_peer::config::PeerTls,
    /// Seed of the topology's chords and of which node each transaction is submitted at: the
    /// same seed gives the same cluster, so runs of two builds compare like with like
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The origin seals pending transactions this often, in milliseconds. Sooner dockets also
    /// mean more docket applies at every node, which share the store's writer with gossip
    #[arg(long, default_value_t = 100)]
    seal_interval_ms: u64,
    /// Give up waiting after this many seconds
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

const REGISTER: &str = "bench";

fn config(
    dir: &std::path::Path,
    port: u16,
    seeds: Vec<String>,
    max_outbound: usize,
    args: &Args,
) -> Config {
    let mut c = Config::defaults().expect("defaults");
    c.peer_tls = args.peer_tls;
    c.data_dir = dir.to_path_buf();
    c.listen = format!("127.0.0.1:{port}").parse().expect("addr");
    c.admin_listen = "127.0.0.1:0".parse().expect("addr");
    c.seeds = seeds;
    c.exchange_interval = Duration::ZERO;
    c.max_outbound = max_outbound;
    // Every node of this cluster connects from 127.0.0.1: lift the per-address caps that
    // protect a node from strangers sharing one address.
    c.max_inbound_per_ip = c.max_inbound;
    c.max_connections_per_ip = c.max_inbound + c.max_pending_connections;
    c.max_connections_per_subnet = c.max_connections_per_ip;
    c.heartbeat_interval = Duration::from_secs(1);
    c.dial_interval = Duration::from_millis(100);
    c.reconnect_backoff_min = Duration::from_millis(100);
    c.reconnect_backoff_max = Duration::from_secs(2);
    c.gossip_interval = Duration::from_millis(20);
    c.seal_interval = Duration::from_millis(args.seal_interval_ms.max(1));
    c.log_level = "error".into();
    c
}

/// Starts a node on an already-bound peer listener (bound up front, so ring neighbours know
/// each other's ports and no port is lost to a race).
async fn start(config: Config, peer: TcpListener) -> NodeHandle {
    let listeners = Listeners {
        peer,
        admin: TcpListener::bind(config.admin_listen)
            .await
            .expect("bind admin port"),
    };
    node::start(config, listeners, CancellationToken::new())
        .await
        .expect("node starts")
}

async fn bind() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind peer port");
    let port = listener.local_addr().expect("local address").port();
    (listener, port)
}

async fn wait_until<F: FnMut() -> bool>(what: &str, timeout: Duration, check: F) {
    wait_until_every(what, timeout, Duration::from_millis(20), check).await
}

/// [`wait_until`], checking every `every`.
async fn wait_until_every<F: FnMut() -> bool>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > timeout {
            eprintln!("timed out waiting for {what}");
            std::process::exit(1);
        }
        tokio::time::sleep(every).await;
    }
}

/// Submits `count` transactions at the origin in batches of 1000 (one database transaction
/// each), with payloads `<label>-<n>-xxx…` of about `payload_bytes`.
async fn load_origin(origin: &NodeHandle, label: &str, count: usize, payload_bytes: usize) {
    let padding = "x".repeat(payload_bytes.saturating_sub(label.len() + 10));
    let payloads: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("{label}-{i:08}-{padding}").into_bytes())
        .collect();
    for chunk in payloads.chunks(1000) {
        origin
            .registers
            .submit_many(REGISTER, chunk.to_vec())
            .await
            .expect("load the origin");
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    (sorted[rank] * 10.0).round() / 10.0
}

fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// When each node first stored each transaction, and when it held it sealed.
#[derive(Default)]
struct Arrivals {
    stored: HashMap<(usize, String), Instant>,
    sealed: HashMap<(usize, String), Instant>,
}

// The script of one benchmark run, read top to bottom: set up, measure, report.
#[allow(clippy::too_many_lines)]
#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let n = args.nodes.max(2);
    let timeout = Duration::from_secs(args.timeout_secs);
    let dirs: Vec<tempfile::TempDir> = (0..=n)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut listeners = Vec::with_capacity(n);
    for _ in 0..n {
        listeners.push(bind().await);
    }
    let ports: Vec<u16> = listeners.iter().map(|(_, p)| *p).collect();

    // Topology: ring predecessor plus `chords` random others per node.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut nodes = Vec::with_capacity(n);
    for (i, (listener, _)) in listeners.into_iter().enumerate() {
        let mut seeds = vec![format!("127.0.0.1:{}", ports[(i + n - 1) % n])];
        while seeds.len() < 1 + args.chords.min(n - 2) {
            let j = rng.gen_range(0..n);
            let seed = format!("127.0.0.1:{}", ports[j]);
            if j != i && !seeds.contains(&seed) {
                seeds.push(seed);
            }
        }
        let max_outbound = seeds.len();
        nodes.push(
            start(
                config(dirs[i].path(), ports[i], seeds, max_outbound, &args),
                listener,
            )
            .await,
        );
    }
    let setup = Instant::now();
    eprintln!("started {n} nodes; wiring the topology");
    wait_until("every node to connect", timeout, || {
        nodes.iter().all(|h| h.manager.counts().connected >= 2)
    })
    .await;
    let edges: usize = nodes
        .iter()
        .map(|h| h.manager.counts().connected)
        .sum::<usize>()
        / 2;

    nodes[0]
        .registers
        .create(REGISTER, true)
        .await
        .expect("create register");
    // History for the late joiner to catch up on, loaded before the replicas subscribe (they
    // take it in their initial sync, not through gossip).
    eprintln!(
        "loading {} transactions of history at the origin",
        args.catch_up_transactions
    );
    load_origin(
        &nodes[0],
        "catch-up",
        args.catch_up_transactions,
        args.payload_bytes,
    )
    .await;
    let history = args.catch_up_transactions as u64;
    wait_until("the origin to seal the history", timeout, || {
        nodes[0]
            .registers
            .view(REGISTER)
            .is_some_and(|v| v.latest_version >= history)
    })
    .await;
    // Subscribe everywhere; nodes further from the origin retry until a neighbour holds it.
    for handle in &nodes[1..] {
        loop {
            match handle
                .registers
                .subscribe(REGISTER, sorcha_peer::replication::Mode::FullReplica)
                .await
            {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            if setup.elapsed() > timeout {
                eprintln!("timed out subscribing");
                std::process::exit(1);
            }
        }
    }
    // Every replica holds the whole history (a subscription can be "fully replicated" early,
    // while the neighbours it follows are still catching up themselves).
    wait_until("every replica to hold the history", timeout, || {
        nodes[1..].iter().all(|h| {
            h.registers
                .view(REGISTER)
                .is_some_and(|v| v.latest_version >= history)
                && h.registers.subscription(REGISTER).is_some_and(|s| {
                    s.state == sorcha_peer::replication::SyncState::FullyReplicated
                })
        })
    })
    .await;
    // Let the origin's announcements of the history drain before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    eprintln!(
        "topology ready in {:.1}s ({edges} links); submitting {} transactions at {}/s",
        setup.elapsed().as_secs_f64(),
        args.transactions,
        args.rate
    );

    // Counters before the measured phase (the initial sync moved history around too).
    let counters = |h: &NodeHandle| {
        [
            h.metrics.gossip_payloads_pulled.get(),
            h.metrics.docket_payloads_received.get(),
            h.metrics.gossip_announce_bytes.get(),
            h.metrics.gossip_duplicates_avoided.get(),
            h.metrics.sync_batches_received.get(),
        ]
    };
    let before: Vec<[u64; 5]> = nodes.iter().map(counters).collect();

    // Observe every node.
    let arrivals = Arc::new(Mutex::new(Arrivals::default()));
    for (i, handle) in nodes.iter().enumerate() {
        let mut events = handle.registers.events();
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) => {
                        let now = Instant::now();
                        let mut a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
                        for id in e.tx_ids.iter() {
                            a.stored.entry((i, id.clone())).or_insert(now);
                            if e.sealed {
                                a.sealed.entry((i, id.clone())).or_insert(now);
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                        eprintln!("warning: observer of node {i} missed {k} events");
                    }
                    Err(_) => break,
                }
            }
        });
    }

    // Submit at random nodes at the requested rate; each submission runs as its own task so a
    // slow one does not hold back the schedule.
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let started = Instant::now();
    let mut submissions = tokio::task::JoinSet::new();
    for k in 0..args.transactions {
        let target = started + interval * k as u32;
        if let Some(wait) = target.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let mut payload = vec![0u8; args.payload_bytes.max(16)];
        rng.fill(&mut payload[..]);
        let registers = nodes[rng.gen_range(0..n)].registers.clone();
        submissions.spawn(async move {
            let submit_time = Instant::now();
            let id = registers
                .submit(REGISTER, payload)
                .await
                .expect("submit")
                .tx_id;
            (id, submit_time)
        });
    }
    let mut submitted: Vec<(String, Instant)> = Vec::with_capacity(args.transactions);
    while let Some(done) = submissions.join_next().await {
        submitted.push(done.expect("submission task"));
    }
    let submit_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "submitted in {submit_secs:.1}s; waiting for every node to hold every transaction sealed"
    );
    let total = n * submitted.len();
    wait_until("every transaction sealed at every node", timeout, || {
        arrivals
            .lock()
            .map(|a| a.sealed.len() >= total)
            .unwrap_or(false)
    })
    .await;

    let (mut reach_ms, mut sealed_ms, last_sealed) = {
        let a = arrivals.lock().unwrap_or_else(|p| p.into_inner());
        let mut reach_ms = Vec::new();
        let mut sealed_ms = Vec::new();
        let mut last_sealed = started;
        for (id, at) in &submitted {
            let reach = (0..n)
                .filter_map(|i| a.stored.get(&(i, id.clone())))
                .max()
                .copied()
                .unwrap_or(*at);
            let sealed = (0..n)
                .filter_map(|i| a.sealed.get(&(i, id.clone())))
                .max()
                .copied()
                .unwrap_or(*at);
            reach_ms.push(reach.duration_since(*at).as_secs_f64() * 1000.0);
            sealed_ms.push(sealed.duration_since(*at).as_secs_f64() * 1000.0);
            last_sealed = last_sealed.max(sealed);
        }
        (reach_ms, sealed_ms, last_sealed)
    };
    reach_ms.sort_by(f64::total_cmp);
    sealed_ms.sort_by(f64::total_cmp);
    let throughput = submitted.len() as f64 / last_sealed.duration_since(started).as_secs_f64();

    let delta = |k: usize| {
        nodes
            .iter()
            .zip(&before)
            .map(|(h, b)| counters(h)[k] - b[k])
            .sum::<u64>() as f64
    };
    let per_node_tx = (n * submitted.len()) as f64;
    let gossip_copies = delta(0) / per_node_tx;
    let docket_copies = delta(1) / per_node_tx;
    let announce_bytes = delta(2) / submitted.len() as f64;
    let duplicates_avoided = delta(3) / submitted.len() as f64;
    // Batches pulled by subscriptions while following live (pushes overtaken, heads behind).
    let sync_batches = delta(4) / n as f64;

    // Optional burst at the origin: how long until the whole cluster holds it sealed.
    let mut burst_secs = None;
    if args.burst > 0 {
        eprintln!("bursting {} transactions at the origin", args.burst);
        let target = (args.catch_up_transactions + submitted.len() + args.burst) as u64;
        let burst_start = Instant::now();
        load_origin(&nodes[0], "burst", args.burst, args.payload_bytes).await;
        wait_until("every node to hold the burst sealed", timeout, || {
            nodes.iter().all(|h| {
                h.registers
                    .view(REGISTER)
                    .is_some_and(|v| v.latest_version >= target)
            })
        })
        .await;
        burst_secs = Some(burst_start.elapsed().as_secs_f64());
    }

    // Catch-up: a fresh node joins and replicates the whole register.
    let expected = (args.transactions + args.catch_up_transactions + args.burst) as u64;
    let (listener, port) = bind().await;
    let joiner = start(
        config(
            dirs[n].path(),
            port,
            vec![format!("127.0.0.1:{}", ports[0])],
            1,
            &args,
        ),
        listener,
    )
    .await;
    wait_until("the joiner to connect", timeout, || {
        joiner.manager.counts().connected >= 1
    })
    .await;
    wait_until("the joiner to see the register", timeout, || {
        !joiner.manager.carriers(REGISTER).is_empty()
    })
    .await;
    let catch_up_start = Instant::now();
    joiner
        .registers
        .subscribe(REGISTER, sorcha_peer::replication::Mode::FullReplica)
        .await
        .expect("joiner subscribes");
    // Catching up takes a few hundred milliseconds here: checked every 20 ms, its end would be
    // seen about 10 ms late on average, a few percent of the figure.
    let every = Duration::from_millis(1);
    wait_until_every("the joiner to catch up", timeout, every, || {
        joiner
            .registers
            .view(REGISTER)
            .is_some_and(|v| v.latest_version >= expected)
    })
    .await;
    let catch_up_secs = catch_up_start.elapsed().as_secs_f64();
    let rss = rss_mib();
    // The storage's own batched insert rate for as many rows of the same size, in this run
    // (synchronous=FULL, the nodes' default durability).
    let rows: Vec<String> = (0..expected)
        .map(|i| format!("raw-{i:08}-{}", "x".repeat(args.payload_bytes.max(16))))
        .collect();
    let raw = raw_sqlite::measure(&rows, "FULL", 250).await;
    let raw_rate = raw["rowsPerSecond"].as_f64().unwrap_or(0.0);

    let report = json!({
        "peerTls": args.peer_tls.to_string(),
        "seed": args.seed,
        "sealIntervalMs": args.seal_interval_ms,
        "nodes": n,
        "links": edges,
        "averageDegree": (2 * edges) as f64 / n as f64,
        "transactions": submitted.len(),
        "payloadBytes": args.payload_bytes.max(16),
        "submitRatePerSecond": args.rate,
        "reachAllNodesMs": {"p50": percentile(&reach_ms, 50.0), "p99": percentile(&reach_ms, 99.0), "max": percentile(&reach_ms, 100.0)},
        "sealedAtAllNodesMs": {"p50": percentile(&sealed_ms, 50.0), "p99": percentile(&sealed_ms, 99.0), "max": percentile(&sealed_ms, 100.0)},
        "gossipPayloadCopiesPerNodePerTx": (gossip_copies * 1000.0).round() / 1000.0,
        "docketPayloadCopiesPerNodePerTx": (docket_copies * 1000.0).round() / 1000.0,
        "announcementBytesPerTx": announce_bytes.round(),
        "duplicatePullsAvoidedPerTx": (duplicates_avoided * 10.0).round() / 10.0,
        "docketBatchesPulledPerNode": (sync_batches * 10.0).round() / 10.0,
        "sustainedThroughputTxPerSecond": throughput.round(),
        "burst": burst_secs.map(|secs| json!({
            "transactions": args.burst,
            "secondsUntilSealedEverywhere": (secs * 1000.0).round() / 1000.0,
        })),
        "catchUp": {
            "transactions": expected,
            "seconds": (catch_up_secs * 1000.0).round() / 1000.0,
            "transactionsPerSecond": (expected as f64 / catch_up_secs).round(),
            "rawSqliteRowsPerSecond": raw_rate.round(),
            "percentOfRaw": ((expected as f64 / catch_up_secs) * 100.0 / raw_rate).round(),
        },
        "memoryPerNodeMiB": rss.map(|r| ((r / (n + 1) as f64) * 10.0).round() / 10.0),
        "processRssMiB": rss.map(|r| r.round()),
        "notes": "all nodes share one process: memory per node is process RSS divided by nodes; reach = first stored (pending or sealed) at the last node; docket copies are payloads fetched again for sealed dockets (pushes carry IDs; payloads already received by gossip are not sent twice); announcement bytes are all nodes' announcements of a transaction as encoded for each peer (protobuf, before TLS and HTTP/2 framing)",
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );

    joiner.shutdown().await;
    for handle in nodes {
        handle.shutdown().await;
    }
}
