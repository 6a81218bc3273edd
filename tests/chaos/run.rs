//! One chaos run: the cluster, the registers, the figures, the workload under the seeded
//! faults, the settling and the checks.

use std::time::{Duration, Instant};

use rustix::process::Signal;
use serde_json::json;
use sorcha_peer::client::AdminClient;
use tokio_util::sync::CancellationToken;

use crate::check::{self, Placement};
use crate::faults::Tmpfs;
use crate::history::{self, Target};
use crate::net::{Net, Rule};
use crate::nodes::Node;
use crate::schedule::{self, Fault};
use crate::{TEST, delay, figures};

pub const NODES: usize = 5;
/// The node whose data directory is on a small filesystem that the disk fault fills.
const DISK_NODE: usize = 3;
/// Peak resident memory allowed to any node.
const RSS_BUDGET: u64 = 256 << 20;
const STARTUP: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(120);
const CLIENTS: usize = 4;

/// Builds the network, moves this thread into the bridge's namespace (the harness's own
/// address is there), and runs the scenario on a runtime whose threads start here.
pub fn in_harness(seed: u64) {
    let net = Net::create(NODES).expect("the chaos network");
    delay::enter(&net.bridge_ns()).expect("enter the bridge namespace");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(scenario(net, seed));
}

// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn scenario(mut net: Net, seed: u64) {
    let Some(disk) = Tmpfs::mount(TEST, "64m") else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..NODES)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let logs = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            let data = if i == DISK_NODE {
                disk.path().join("data")
            } else {
                dirs[i].path().to_path_buf()
            };
            let log = logs.path().join(format!("node{i}.log"));
            Node::new(i, net.node_ns(i), data, log, NODES)
        })
        .collect();
    for node in &mut nodes {
        node.spawn().expect("start a node");
    }
    let mut clients = Vec::new();
    for i in 0..NODES {
        match nodes[i].connect(STARTUP).await {
            Ok(client) => clients.push(client),
            Err(e) => fail(&nodes_logs(&nodes), &e),
        }
    }
    wait_connected(&clients, &nodes).await;
    let placements = place_registers(&clients).await;

    let (clean, mut probes) = figures::reach(&clients, "chaos-a", seed, "clean").await;
    let mut rules = Vec::new();
    for node in 0..NODES {
        rules.push(Rule::Loss { node, percent: 5 });
        net.delay(
            node,
            Duration::from_millis(50),
            Duration::from_millis(20),
            seed + node as u64,
        )
        .expect("delay");
    }
    net.set_rules(&rules).expect("loss");
    let (faulty, more) = figures::reach(&clients, "chaos-a", seed, "loss+delay").await;
    probes.extend(more);
    net.heal().expect("heal");

    let targets = placements
        .iter()
        .map(|p| Target {
            register: p.register.clone(),
            writers: p.full.clone(),
        })
        .collect();
    let stop = CancellationToken::new();
    let workload = tokio::spawn(history::run(
        CLIENTS,
        clients.clone(),
        targets,
        seed,
        stop.clone(),
    ));
    for step in schedule::draw(seed, NODES) {
        println!("chaos: {:?} for {:?}", step.fault, step.lasts);
        inject(&mut net, &mut nodes, &disk, &step.fault, seed).await;
        tokio::time::sleep(step.lasts).await;
        heal(&mut net, &mut nodes, &disk, &step.fault).await;
        tokio::time::sleep(step.then).await;
    }
    stop.cancel();
    let mut ops = workload
        .await
        .expect("workload")
        .lock()
        .expect("history")
        .clone();
    let healed = Instant::now();
    ops.extend(probes);
    let settled = settle(&clients, &placements, &ops).await;
    let converged = healed.elapsed();

    let mut problems = Vec::new();
    if let Err(e) = settled {
        problems.push(e);
    }
    problems.extend(check::check(&clients, &placements, &ops).await);
    problems.extend(health(&clients, &mut nodes).await);
    if let Err(e) = check::self_test(&clients, &placements, &ops).await {
        problems.push(e);
    }
    let (acked, refused, unknown) = history::counts(&ops);
    let rss: Vec<u64> = nodes
        .iter()
        .map(|n| n.peak_rss().unwrap_or(0) >> 20)
        .collect();
    println!(
        "{}",
        json!({
            "seed": seed,
            "operations": {"acknowledged": acked, "refused": refused, "indeterminate": unknown},
            "whyNotAcknowledged": history::reasons(&ops),
            "reachMs": {"clean": figures::summary(&clean), "loss5pctDelay50ms": figures::summary(&faulty)},
            "convergeAfterHealMs": converged.as_millis() as u64,
            "peakRssMiB": rss,
        })
    );
    if !problems.is_empty() {
        fail(&nodes_logs(&nodes), &problems.join("\n"));
    }
}

/// Every node has a session with every other.
async fn wait_connected(clients: &[AdminClient], nodes: &[Node]) {
    let deadline = Instant::now() + STARTUP;
    loop {
        let mut all = true;
        for client in clients {
            let connected = client
                .status()
                .await
                .map(|s| s.peers.connected)
                .unwrap_or(0);
            all &= connected >= NODES - 1;
        }
        if all {
            return;
        }
        if Instant::now() > deadline {
            fail(&nodes_logs(nodes), "the nodes did not all connect");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `chaos-a`: origin node 0, full replicas everywhere else. `chaos-b`: origin node 1, full
/// replicas 0, 2 and 3, and node 4 forward-only from its head at subscription (genesis).
async fn place_registers(clients: &[AdminClient]) -> Vec<Placement> {
    let a = Placement {
        register: "chaos-a".into(),
        full: vec![0, 1, 2, 3, 4],
        forward_only: vec![],
    };
    let b = Placement {
        register: "chaos-b".into(),
        full: vec![1, 0, 2, 3],
        forward_only: vec![(4, 0)],
    };
    for placement in [&a, &b] {
        let id = &placement.register;
        clients[placement.full[0]]
            .create_register(id, true)
            .await
            .expect("create a register");
        let replicas = placement.full[1..]
            .iter()
            .map(|&n| (n, "full-replica"))
            .chain(
                placement
                    .forward_only
                    .iter()
                    .map(|&(n, _)| (n, "forward-only")),
            );
        for (node, mode) in replicas {
            let deadline = Instant::now() + STARTUP;
            while let Err(e) = clients[node].subscribe(id, mode).await {
                assert!(
                    Instant::now() < deadline,
                    "node {node} cannot subscribe to {id}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    vec![a, b]
}

async fn inject(net: &mut Net, nodes: &mut [Node], disk: &Tmpfs, fault: &Fault, seed: u64) {
    let result = match fault {
        Fault::Partition(side) => {
            let rest: std::collections::BTreeSet<usize> =
                (0..NODES).filter(|n| !side.contains(n)).collect();
            net.set_rules(&[
                Rule::Block {
                    from: side.clone(),
                    to: rest.clone(),
                },
                Rule::Block {
                    from: rest,
                    to: side.clone(),
                },
            ])
        }
        Fault::OneWay { from, to } => net.set_rules(&[Rule::Block {
            from: [*from].into(),
            to: [*to].into(),
        }]),
        Fault::Loss => net.set_rules(
            &(0..NODES)
                .map(|node| Rule::Loss { node, percent: 5 })
                .collect::<Vec<_>>(),
        ),
        Fault::Delay(node) => net.delay(
            *node,
            Duration::from_millis(50),
            Duration::from_millis(20),
            seed,
        ),
        Fault::Crash(node) => nodes[*node].kill(),
        Fault::Freeze(node) => nodes[*node].signal(Signal::STOP),
        Fault::DiskFull => fill(disk),
    };
    result.unwrap_or_else(|e| panic!("inject {fault:?}: {e}"));
}

async fn heal(net: &mut Net, nodes: &mut [Node], disk: &Tmpfs, fault: &Fault) {
    let result = match fault {
        Fault::Crash(node) => match nodes[*node].spawn() {
            Ok(()) => nodes[*node].connect(STARTUP).await.map(|_| ()),
            Err(e) => Err(e),
        },
        Fault::Freeze(node) => nodes[*node].signal(Signal::CONT),
        Fault::DiskFull => std::fs::remove_file(ballast(disk)).map_err(|e| e.to_string()),
        _ => net.heal(),
    };
    result.unwrap_or_else(|e| panic!("heal {fault:?}: {e}"));
}

fn ballast(disk: &Tmpfs) -> std::path::PathBuf {
    disk.path().join("ballast")
}

/// Writes until the filesystem is full.
fn fill(disk: &Tmpfs) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::File::create(ballast(disk)).map_err(|e| e.to_string())?;
    let chunk = vec![0u8; 1 << 20];
    loop {
        match file.write(&chunk) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Waits until every replica of every register has the same head, nothing is pending at the
/// origins, and every acknowledged transaction is sealed at its origin.
async fn settle(
    clients: &[AdminClient],
    placements: &[Placement],
    ops: &[history::Op],
) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE;
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut settled = true;
        for placement in placements {
            let holders = placement
                .full
                .iter()
                .copied()
                .chain(placement.forward_only.iter().map(|(n, _)| *n));
            let mut heads = std::collections::BTreeSet::new();
            for node in holders {
                let held = clients[node].registers().await.ok().and_then(|list| {
                    list.into_iter()
                        .find(|r| r.register_id == placement.register)
                });
                match held {
                    Some(r) if r.pending_transactions == 0 => {
                        heads.insert((r.latest_version, r.head_hash));
                    }
                    other => {
                        settled = false;
                        last = format!("node {node}: {other:?}");
                    }
                }
            }
            if heads.len() > 1 {
                settled = false;
                last = format!("{}: heads {heads:?}", placement.register);
            }
        }
        if settled {
            match check::unsealed_at_origin(clients, placements, ops).await {
                0 => return Ok(()),
                n => last = format!("{n} acknowledged transactions not sealed at their origin"),
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!(
        "the cluster did not settle within {SETTLE:?}: {last}"
    ))
}

/// No node crashed, banned an honest peer, failed a verification or outgrew its budget.
async fn health(clients: &[AdminClient], nodes: &mut [Node]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        if let Some(how) = node.exited() {
            problems.push(format!("node {i} exited by itself: {how}"));
        }
        match clients[i].bans().await {
            Ok(bans) if bans.is_empty() => {}
            Ok(bans) => problems.push(format!("node {i} banned honest peers: {bans:?}")),
            Err(e) => problems.push(format!("node {i}: bans: {e}")),
        }
        match clients[i].metrics().await {
            Ok(text) => {
                let failures = figures::metric(&text, "sorcha_peer_verification_failures_total");
                if failures != 0.0 {
                    problems.push(format!("node {i}: {failures} verification failures"));
                }
            }
            Err(e) => problems.push(format!("node {i}: metrics: {e}")),
        }
        if let Some(rss) = node.peak_rss().filter(|&rss| rss > RSS_BUDGET) {
            problems.push(format!("node {i}: peak RSS {} MiB", rss >> 20));
        }
    }
    problems
}

fn nodes_logs(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| {
            format!(
                "--- node {} log (last lines) ---\n{}",
                n.index,
                n.log_tail(40)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn fail(logs: &str, why: &str) -> ! {
    panic!("{why}\n{logs}");
}
