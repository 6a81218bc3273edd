//! Platform listener benchmark (figures, not timed tests), beside references the same run
//! measures:
//! - `SyncDockets`: transactions per second streamed from genesis to the head (the Register
//!   service's start-up recovery), against the node's own full-replica catch-up of the same
//!   chain (another node subscribing);
//! - `GetPeerList`: the latency of each call with `--known-peers` peers in the table.
//!
//! ```text
//! cargo bench --bench platform
//! cargo bench --bench platform -- --transactions 50000 --known-peers 5000
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use sorcha_peer::config::Config;
use sorcha_peer::node::{self, Listeners, NodeHandle};
use sorcha_peer::platform::pb;
use sorcha_peer::protocol::KnownAddress;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const REGISTER: &str = "bench-sync";

#[derive(Debug, Parser)]
#[command(about = "Measure the platform listener's SyncDockets and GetPeerList")]
struct Args {
    /// Transactions in the chain that SyncDockets streams
    #[arg(long, default_value_t = 20_000)]
    transactions: usize,
    /// Payload size in bytes
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Peers in the table when GetPeerList is timed
    #[arg(long, default_value_t = 1_000)]
    known_peers: usize,
    /// GetPeerList calls timed
    #[arg(long, default_value_t = 500)]
    calls: usize,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

fn config(dir: &std::path::Path, seeds: Vec<String>) -> Config {
    let mut c = Config::defaults().expect("defaults");
    c.data_dir = dir.to_path_buf();
    c.listen = "127.0.0.1:0".parse().expect("addr");
    c.admin_listen = "127.0.0.1:0".parse().expect("addr");
    c.platform_listen = Some("127.0.0.1:0".parse().expect("addr"));
    c.seeds = seeds;
    c.exchange_interval = Duration::ZERO;
    c.dial_interval = Duration::from_millis(100);
    c.seal_interval = Duration::from_millis(100);
    c.log_level = "error".into();
    c
}

async fn start(config: Config) -> NodeHandle {
    let listeners = Listeners {
        peer: TcpListener::bind(config.listen).await.expect("bind peer"),
        admin: TcpListener::bind(config.admin_listen)
            .await
            .expect("bind admin"),
    };
    node::start(config, listeners, CancellationToken::new())
        .await
        .expect("node starts")
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        if started.elapsed() > Duration::from_secs(600) {
            eprintln!("timed out waiting for {what}");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn channel(node: &NodeHandle) -> Channel {
    let addr = node.platform_addr.expect("platform listener on");
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("h2c channel")
}

/// Streams every docket after genesis, 100 at a time as the Register service asks; returns
/// (transactions, seconds).
async fn sync_all(channel: &Channel, head: i64) -> (u64, f64) {
    use pb::docket_sync::docket_sync_service_client::DocketSyncServiceClient;
    let mut client =
        DocketSyncServiceClient::new(channel.clone()).max_decoding_message_size(16 << 20);
    let started = Instant::now();
    let (mut from, mut transactions) = (0i64, 0u64);
    while from < head {
        let request = pb::docket_sync::SyncDocketsRequest {
            register_id: REGISTER.into(),
            from_docket_number: from,
            to_docket_number: head,
            max_count: 100,
        };
        let mut stream = client
            .sync_dockets(request)
            .await
            .expect("SyncDockets")
            .into_inner();
        while let Some(entry) = stream.message().await.expect("an entry") {
            transactions += u64::try_from(entry.transaction_count).unwrap_or(0);
            from = entry.docket_number;
        }
    }
    (transactions, started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted
        .get(rank)
        .map_or(0.0, |v| (v * 1000.0).round() / 1000.0)
}

// The script of one benchmark run, read top to bottom: set up, measure, report.
#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    let origin = start(config(dirs[0].path(), vec![])).await;
    origin
        .registers
        .create(REGISTER, true)
        .await
        .expect("create the register");
    let padding = "x".repeat(args.payload_bytes.saturating_sub(20));
    let payloads: Vec<Vec<u8>> = (0..args.transactions)
        .map(|i| format!("sync-{i:09}-{padding}").into_bytes())
        .collect();
    for chunk in payloads.chunks(1000) {
        origin
            .registers
            .submit_many(REGISTER, chunk.to_vec())
            .await
            .expect("load the origin");
    }
    let total = args.transactions as u64;
    wait_until("the origin to seal everything", || {
        origin
            .registers
            .view(REGISTER)
            .is_some_and(|v| v.latest_version >= total)
    })
    .await;
    let head = origin.registers.view(REGISTER).map_or(0, |v| v.height) as i64;

    // The reference: the node's own catch-up of the same chain, by a full replica.
    let joiner = start(config(dirs[1].path(), vec![origin.peer_addr.to_string()])).await;
    wait_until("the joiner to see the register", || {
        !joiner.manager.carriers(REGISTER).is_empty()
    })
    .await;
    let started = Instant::now();
    joiner
        .registers
        .subscribe(REGISTER, sorcha_peer::replication::Mode::FullReplica)
        .await
        .expect("subscribe");
    wait_until("the joiner to catch up", || {
        joiner
            .registers
            .view(REGISTER)
            .is_some_and(|v| v.latest_version >= total)
    })
    .await;
    let catch_up = total as f64 / started.elapsed().as_secs_f64();

    let platform = channel(&origin).await;
    let (streamed, seconds) = sync_all(&platform, head).await;
    assert_eq!(streamed, total, "SyncDockets streamed every transaction");
    let sync_rate = streamed as f64 / seconds;

    // GetPeerList with the table full of known peers (learnt as from peer exchange).
    let now = sorcha_peer::clock::now_ms();
    let known: Vec<KnownAddress> = (0..args.known_peers)
        .map(|i| KnownAddress {
            peer_id: format!("{:032x}", i + 1),
            address: format!("10.{}.{}.{}:5000", (i >> 16) & 255, (i >> 8) & 255, i & 255),
            last_seen_ms: now,
        })
        .collect();
    for chunk in known.chunks(50) {
        origin.manager.learn(&joiner.peer_id, chunk.to_vec());
    }
    let in_table = origin.manager.counts().known;
    let mut client =
        pb::discovery::peer_discovery_client::PeerDiscoveryClient::new(platform.clone());
    let mut latencies = Vec::with_capacity(args.calls);
    for _ in 0..args.calls {
        let started = Instant::now();
        client
            .get_peer_list(pb::discovery::PeerListRequest {
                requesting_peer_id: "bench".into(),
                max_peers: 100,
            })
            .await
            .expect("GetPeerList");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "syncDockets": {
                "transactions": streamed,
                "dockets": head,
                "transactionsPerSecond": sync_rate.round(),
                "reference": {"nodeCatchUpTransactionsPerSecond": catch_up.round()},
                "percentOfCatchUp": (sync_rate * 100.0 / catch_up).round(),
                "target": "50 % or more of the node's own catch-up",
            },
            "getPeerList": {
                "knownPeers": in_table,
                "calls": args.calls,
                "p50Ms": percentile(&latencies, 50.0),
                "p99Ms": percentile(&latencies, 99.0),
                "maxMs": percentile(&latencies, 100.0),
                "target": "10 ms or less",
            },
        })
    );
    origin.shutdown().await;
    joiner.shutdown().await;
}
