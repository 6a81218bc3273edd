//! A live node's peer session fed with arbitrary frames. One real node runs per fuzzing
//! process; each input connects to it as a hand-built peer (`tests/it/common/stranger.rs`),
//! completes the real handshake over TLS, sends the input's frames and reads the answers.
//! Checks, besides no panic: the node answers only what it was asked and sends only
//! well-formed frames, the session ends cleanly when the peer leaves, the node stays healthy,
//! its peer table stays within `max_known_peers`, and an honest peer can still connect.
//! Every wait is bounded, so a stuck node fails an assertion rather than libFuzzer's timeout.
//! The node keeps its state across inputs (peers, bans, registers): a crash may need the
//! inputs before it to reproduce.
#![no_main]

#[path = "../../tests/it/common/stranger.rs"]
mod stranger;
// The seed writer uses the rest of it.
#[allow(dead_code)]
#[path = "session_input.rs"]
mod session_input;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use session_input::{FOLLOWED_REGISTER, Input, LOCAL_PAYLOAD, LOCAL_REGISTER, REUSED_IDENTITIES};
use sorcha_peer::client::AdminClient;
use sorcha_peer::config::{Config, Durability};
use sorcha_peer::identity::Identity;
use sorcha_peer::node::{self, Listeners, NodeHandle};
use sorcha_peer::peers::BanTarget;
use sorcha_peer::protocol::{convert, tx_refs};
use sorcha_peer::protocol::pb::{self, frame::Body};
use stranger::{Claims, Session};
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Longest any one step may take (connect, handshake, a send, an admin call, the close).
const BOUND: Duration = Duration::from_secs(2);
/// Longest an answer with request ID 0 waits for the node's request it then answers.
const REQUEST_WAIT: Duration = Duration::from_millis(100);
/// All such waits of one input together.
const WAIT_BUDGET: Duration = Duration::from_millis(300);
/// How long the node's answers are read after the last frame.
const LINGER: Duration = Duration::from_millis(10);
/// An honest peer checks every this many inputs that a handshake still succeeds.
const HONEST_EVERY: u64 = 16;
/// The node's `max_known_peers`: small, so inputs reach the bound.
const MAX_KNOWN_PEERS: usize = 32;
/// Where the hand-built peers connect from: fuzzed ones and the honest one apart, so the
/// per-address caps of one never refuse the other.
const FUZZ_FROM: &str = "127.0.0.1";
const HONEST_FROM: &str = "127.0.0.2";

struct Harness {
    rt: tokio::runtime::Runtime,
    _sigpipe: Signal,
    node: NodeHandle,
    admin: AdminClient,
    reused: Vec<Identity>,
    inputs: AtomicU64,
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let input = Input::parse(data);
    h.rt.block_on(run(h, input));
});

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // libFuzzer's C++ `main` does not ignore SIGPIPE as Rust's does, and a write (writev)
        // to a socket its peer closed would kill the process; a tokio handler takes it.
        let sigpipe = rt
            .block_on(async { signal(SignalKind::pipe()) })
            .expect("SIGPIPE handler");
        let (node, admin) = rt.block_on(start_node());
        Harness {
            rt,
            _sigpipe: sigpipe,
            node,
            admin,
            reused: (0..REUSED_IDENTITIES)
                .map(|_| Identity::generate())
                .collect(),
            inputs: AtomicU64::new(0),
        }
    })
}

/// A data directory of this process; those of fuzzing processes that are gone are removed
/// (the node is never stopped, so nothing else cleans them up).
fn data_dir() -> std::path::PathBuf {
    let prefix = "sorcha-fuzz-session-";
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(prefix)
            && !std::path::Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn start_node() -> (NodeHandle, AdminClient) {
    if let Ok(filter) = std::env::var("SORCHA_FUZZ_LOG") {
        sorcha_peer::telemetry::init_logging(&filter);
    }
    let mut c = Config::defaults().expect("defaults");
    c.data_dir = data_dir();
    c.listen = "127.0.0.1:0".parse().expect("listen");
    c.admin_listen = "127.0.0.1:0".parse().expect("admin");
    c.durability = Durability::Fast;
    c.heartbeat_interval = Duration::from_millis(100);
    c.exchange_interval = Duration::from_millis(200);
    c.dial_interval = Duration::from_millis(50);
    c.connect_timeout = Duration::from_secs(1);
    c.reconnect_backoff_min = Duration::from_millis(50);
    c.reconnect_backoff_max = Duration::from_millis(400);
    c.seal_interval = Duration::from_millis(100);
    c.request_timeout = Duration::from_secs(1);
    c.max_known_peers = MAX_KNOWN_PEERS;
    let listeners = Listeners {
        peer: TcpListener::bind(c.listen).await.expect("peer listener"),
        admin: TcpListener::bind(c.admin_listen)
            .await
            .expect("admin listener"),
    };
    let node = bounded(
        "starting",
        node::start(c, listeners, CancellationToken::new()),
    )
    .await
    .expect("node starts");
    let admin =
        AdminClient::new(&node.admin_url(), Some(node.admin_token.clone())).expect("client");
    bounded("creating", admin.create_register(LOCAL_REGISTER, true))
        .await
        .expect("create the local register");
    bounded(
        "submitting",
        admin.submit(LOCAL_REGISTER, LOCAL_PAYLOAD.to_vec()),
    )
    .await
    .expect("submit a transaction");
    follow_seed_register(&node, &admin).await;
    (node, admin)
}

/// Makes the node follow [`FOLLOWED_REGISTER`]: it follows only a register a connected peer
/// advertises, so a peer advertises it first and then leaves.
async fn follow_seed_register(node: &NodeHandle, admin: &AdminClient) {
    let me = Identity::generate();
    let channel = bounded(
        "connecting",
        stranger::channel_from(node.peer_addr, HONEST_FROM, &me),
    )
    .await
    .expect("connect");
    let session = bounded(
        "the handshake",
        stranger::open_session(channel, &me, &Claims::default()),
    )
    .await
    .expect("handshake");
    let advertise = Body::Advertise(pb::Advertise {
        registers: vec![session_input::height()],
    });
    let frame = pb::Frame {
        body: Some(advertise),
    };
    bounded("advertising", session.outgoing.send(frame))
        .await
        .expect("advertise");
    let start = Instant::now();
    while let Err(e) = bounded(
        "following",
        admin.subscribe(FOLLOWED_REGISTER, "full-replica"),
    )
    .await
    {
        assert!(
            start.elapsed() < BOUND,
            "cannot follow the seed register: {e}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `what` within [`BOUND`], or a failed assertion that names it.
async fn bounded<T>(what: &str, step: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, step).await {
        Ok(value) => value,
        Err(_) => panic!("the node hangs: {what} took over {BOUND:?}"),
    }
}

/// Polls `check` until it holds, failing after [`BOUND`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < BOUND, "not within {BOUND:?}: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn run(h: &Harness, input: Input) {
    let n = h.inputs.fetch_add(1, Ordering::Relaxed);
    let fresh = Identity::generate();
    let me = match input.identity {
        0 => &fresh,
        i => &h.reused[usize::from(i - 1)],
    };
    fuzz_session(h, me, input.frames).await;
    if n % HONEST_EVERY == 0 {
        honest_peer(h).await;
    }
    let health = bounded("GET /api/health", h.admin.health())
        .await
        .expect("the admin API answers");
    assert_eq!(health.storage, "ok", "storage fails: {health:?}");
    let counts = h.node.manager.counts();
    assert!(
        counts.known <= MAX_KNOWN_PEERS,
        "{} peers known, over max_known_peers ({MAX_KNOWN_PEERS})",
        counts.known
    );
}

fn banned(h: &Harness, peer_id: &str) -> bool {
    let target = BanTarget::Peer(peer_id.to_string());
    h.node.manager.bans().iter().any(|b| b.target == target)
}

/// Opens a session as `me` from `from`.
async fn open(h: &Harness, me: &Identity, from: &str) -> Result<Session, String> {
    let channel = bounded(
        "connecting",
        stranger::channel_from(h.node.peer_addr, from, me),
    )
    .await
    .map_err(|e| format!("connect: {e}"))?;
    bounded(
        "the handshake",
        stranger::open_session(channel, me, &Claims::default()),
    )
    .await
}

/// Leaves a session (if the node has not ended it) and waits until the node has let it go.
async fn leave(h: &Harness, outgoing: mpsc::Sender<pb::Frame>, peer_id: &str) {
    let goodbye = pb::Frame {
        body: Some(Body::Goodbye(pb::Goodbye {
            reason: "fuzz input done".into(),
            ..Default::default()
        })),
    };
    // An error: the node closed the session already.
    let _ = bounded("sending goodbye", outgoing.send(goodbye)).await;
    drop(outgoing);
    eventually("the node ends a session its peer left", || {
        !h.node.manager.connected_ids().contains(peer_id)
    })
    .await;
}

/// A well-behaved newcomer still completes a handshake.
async fn honest_peer(h: &Harness) {
    let me = Identity::generate();
    let session = open(h, &me, HONEST_FROM)
        .await
        .unwrap_or_else(|e| panic!("an honest peer cannot connect: {e}"));
    leave(h, session.outgoing, &session.peer_id).await;
    drop(session.incoming);
}

/// What the hand-built peer asked, so the node's answers can be checked against it.
#[derive(Default)]
struct Sent {
    pings: HashSet<u64>,
    exchanges: HashSet<u64>,
    dockets: HashSet<u64>,
    transactions: HashSet<u64>,
    dial_backs: HashSet<u64>,
}

/// The latest request of each kind the node sent: a fuzzed answer with request ID 0 is given
/// its ID (the node's IDs start at 1), so answers reach the code that takes them.
#[derive(Clone, Copy, Default)]
struct Asked {
    exchange: Option<u64>,
    dockets: Option<u64>,
    transactions: Option<u64>,
    dial_back: Option<u64>,
}

async fn fuzz_session(h: &Harness, me: &Identity, frames: Vec<pb::Frame>) {
    let was_banned = banned(h, me.peer_id());
    let session = match open(h, me, FUZZ_FROM).await {
        Ok(session) => session,
        Err(e) => {
            assert!(
                was_banned || banned(h, me.peer_id()),
                "a peer that is not banned cannot connect: {e}"
            );
            return;
        }
    };
    let Session {
        outgoing,
        incoming,
        peer_id,
    } = session;
    let sent = Arc::new(Mutex::new(Sent::default()));
    let (asked_tx, mut asked) = watch::channel(Asked::default());
    let reader = tokio::spawn(read_answers(
        incoming,
        outgoing.clone(),
        sent.clone(),
        asked_tx,
    ));
    let mut budget = WAIT_BUDGET;
    for mut frame in frames {
        if let Some(body) = &mut frame.body {
            fill_request_id(body, &mut asked, &mut budget).await;
            record(body, &mut sent.lock().expect("sent"));
        }
        if bounded("sending a frame", outgoing.send(frame))
            .await
            .is_err()
        {
            break; // the node ended the session
        }
    }
    tokio::time::sleep(LINGER).await;
    leave(h, outgoing, &peer_id).await;
    let answers = bounded("the node's answer stream to end", reader)
        .await
        .expect("the reader");
    if let Err(e) = answers {
        panic!("the node sent what it should not: {e}");
    }
}

async fn fill_request_id(
    body: &mut Body,
    asked: &mut watch::Receiver<Asked>,
    budget: &mut Duration,
) {
    let (id, pick): (&mut u64, fn(&Asked) -> Option<u64>) = match body {
        Body::ExchangeResponse(r) => (&mut r.request_id, |a| a.exchange),
        Body::DocketBatch(b) => (&mut b.request_id, |a| a.dockets),
        Body::TransactionsBatch(b) => (&mut b.request_id, |a| a.transactions),
        Body::DialBackResponse(r) => (&mut r.request_id, |a| a.dial_back),
        _ => return,
    };
    if *id != 0 {
        return;
    }
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + REQUEST_WAIT.min(*budget);
    loop {
        if let Some(found) = pick(&asked.borrow_and_update()) {
            *id = found;
            break;
        }
        match tokio::time::timeout_at(deadline, asked.changed()).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    *budget = budget.saturating_sub(start.elapsed());
}

fn record(body: &Body, sent: &mut Sent) {
    match body {
        Body::Ping(p) => sent.pings.insert(p.sequence),
        Body::ExchangeRequest(r) => sent.exchanges.insert(r.request_id),
        Body::DocketRequest(r) => sent.dockets.insert(r.request_id),
        Body::PullTransactions(r) => sent.transactions.insert(r.request_id),
        Body::DialBackRequest(r) => sent.dial_backs.insert(r.request_id),
        _ => false,
    };
}

/// Reads the node's frames until the session ends: answers its pings (so heartbeats keep the
/// session), notes its requests, and checks that each frame is one the node may send.
async fn read_answers(
    mut incoming: tonic::Streaming<pb::Frame>,
    outgoing: mpsc::Sender<pb::Frame>,
    sent: Arc<Mutex<Sent>>,
    asked: watch::Sender<Asked>,
) -> Result<(), String> {
    while let Ok(Some(frame)) = incoming.message().await {
        let Some(body) = frame.body else {
            return Err("an empty frame".into());
        };
        let answered = |set: fn(&Sent) -> &HashSet<u64>, id: u64, what: &str| {
            if set(&sent.lock().expect("sent")).contains(&id) {
                Ok(())
            } else {
                Err(format!("{what} {id} that was never asked for"))
            }
        };
        match body {
            Body::Ping(p) => {
                well_formed_heights(p.registers)?;
                let pong = Body::Pong(pb::Pong {
                    sequence: p.sequence,
                });
                // The session may be ending; that is fine.
                let _ = outgoing.try_send(pb::Frame { body: Some(pong) });
            }
            Body::Advertise(a) => well_formed_heights(a.registers)?,
            Body::Announce(a) => {
                tx_refs::refs_from_wire(&a.tx_ids, &a.short_ids)
                    .map_err(|e| format!("an announcement: {e}"))?;
            }
            Body::ExchangeRequest(r) => asked.send_modify(|a| a.exchange = Some(r.request_id)),
            Body::DocketRequest(r) => asked.send_modify(|a| a.dockets = Some(r.request_id)),
            Body::PullTransactions(r) => {
                tx_refs::refs_from_wire(&r.tx_ids, &r.short_ids)
                    .map_err(|e| format!("a pull: {e}"))?;
                asked.send_modify(|a| a.transactions = Some(r.request_id));
            }
            Body::DialBackRequest(r) => asked.send_modify(|a| a.dial_back = Some(r.request_id)),
            Body::Pong(p) => answered(|s| &s.pings, p.sequence, "a pong for ping")?,
            Body::ExchangeResponse(r) => {
                answered(|s| &s.exchanges, r.request_id, "a peer exchange answer")?
            }
            Body::DocketBatch(b) => answered(|s| &s.dockets, b.request_id, "a docket batch")?,
            Body::TransactionsBatch(b) => {
                answered(|s| &s.transactions, b.request_id, "a transactions batch")?
            }
            Body::DialBackResponse(r) => {
                answered(|s| &s.dial_backs, r.request_id, "a dial-back answer")?
            }
            Body::Hello(_) | Body::HelloAck(_) | Body::Auth(_) | Body::Welcome(_) => {
                return Err("a handshake frame inside the session".into());
            }
            Body::Follow(_) | Body::DocketPush(_) | Body::PlatformMessage(_) | Body::Goodbye(_) => {
            }
        }
    }
    Ok(())
}

/// Register heights the node sends are ones it would itself take from a peer.
fn well_formed_heights(heights: Vec<pb::RegisterHeight>) -> Result<(), String> {
    match convert::heights_from_wire(heights) {
        (_, 0) => Ok(()),
        (_, bad) => Err(format!("{bad} malformed register heights")),
    }
}
