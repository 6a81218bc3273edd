//! The peer table and every rule about peers: who may connect, whom to dial and when, what
//! counts as a failure, quality, peer exchange, and bans.
//!
//! [`PeerManager`] is the single owner of this state. The network edge (`rpc/`) reports what it
//! observed (a handshake completed, a heartbeat came back, a connection dropped) and asks for
//! decisions (may this peer in? whom should I dial?); the admin API asks for views and operator
//! actions. Only this node's own observations change a peer's record: what a peer says about a
//! third peer can add an unknown address, never touch an existing record.

pub mod bans;
pub mod discovery;
pub mod quality;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use rand::seq::SliceRandom;
use tokio::sync::{mpsc, oneshot};

use crate::clock::now_ms;
use crate::config::{Config, validate_host_port};
use crate::identity::{Identity, is_peer_id};
use crate::ledger::{CompactDocket, DocketWithTransactions};
use crate::store::{PeerRow, Store, StoreError};
use crate::telemetry::Metrics;
pub use bans::{Ban, BanKind, BanSource, BanTarget};
use quality::{PenaltyEvent, QualityBreakdown, QualityTracker};

/// Commands a session accepts from the manager, queued per connection.
const SESSION_COMMAND_QUEUE: usize = 16;
/// Jitter applied to reconnect delays (±20 %), so peers that dropped together do not redial
/// in lock-step.
const BACKOFF_JITTER: f64 = 0.2;
/// Validity lost each time a peer serves data that fails verification.
const VERIFICATION_PENALTY: f64 = 0.5;
/// Default reason recorded for an operator ban given without one.
const DEFAULT_BAN_REASON: &str = "banned by operator";

/// Errors of operator actions on peers and bans.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("no peer matches '{0}'")]
    NotFound(String),
    #[error("no ban on '{0}'")]
    NoBan(String),
    #[error("'{prefix}' matches {} peers ({}); give more characters", .matches.len(), .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which side opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A peer's state as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerState {
    Connected,
    Connecting,
    Disconnected,
    Banned,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Connected => "connected",
            PeerState::Connecting => "connecting",
            PeerState::Disconnected => "disconnected",
            PeerState::Banned => "banned",
        }
    }

    pub const ALL: [PeerState; 4] = [
        PeerState::Connected,
        PeerState::Connecting,
        PeerState::Disconnected,
        PeerState::Banned,
    ];
}

/// Why a connection was refused or closed by this node. The text goes to the peer in `Goodbye`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("banned: {0}")]
    Banned(String),
    #[error("connection to self")]
    SelfConnection,
    #[error("too many inbound connections")]
    InboundFull,
    #[error("duplicate connection")]
    Duplicate,
    #[error("{0}")]
    Invalid(String),
}

/// What the manager asks a live session to do.
#[derive(Debug)]
pub enum SessionCommand {
    /// Send our peer list and ask for theirs.
    ExchangePeers,
    /// Say goodbye with this reason and close.
    Close(String),
    /// Send a one-way message.
    Send(PeerMessage),
    /// Send a request and deliver the peer's answer to `reply`.
    Request {
        request: PeerRequest,
        reply: oneshot::Sender<PeerResponse>,
    },
}

/// A public register as a peer advertises it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterHeight {
    pub register_id: String,
    /// Number of the newest docket held.
    pub height: u64,
    pub head_hash: [u8; 32],
    /// Version of the newest sealed transaction (0: none).
    pub latest_version: u64,
    /// Holds the chain from genesis (origin or full replica), so it can serve a full sync.
    pub full_replica: bool,
    pub is_origin: bool,
}

/// One-way messages between nodes.
#[derive(Clone, Debug)]
pub enum PeerMessage {
    /// Our public registers changed.
    Advertise(Vec<RegisterHeight>),
    /// Start or stop pushing new dockets of a register to us.
    Follow { register_id: String, follow: bool },
    /// A newly sealed docket, with transaction IDs in place of payloads.
    Push(Arc<CompactDocket>),
    /// Transactions we hold (gossip announcement).
    Announce {
        register_id: String,
        tx_ids: Vec<[u8; 32]>,
    },
}

/// Requests one node makes of another.
#[derive(Clone, Debug)]
pub enum PeerRequest {
    /// Dockets `from`, `from + 1`, … (at most `max`) with their transactions.
    Dockets {
        register_id: String,
        from: u64,
        max: u32,
        headers_only: bool,
    },
    /// Payloads of announced transactions.
    Transactions {
        register_id: String,
        tx_ids: Vec<[u8; 32]>,
    },
}

/// Answers to [`PeerRequest`]s; `Err` carries the peer's refusal or a transport failure.
#[derive(Clone, Debug)]
pub enum PeerResponse {
    Dockets(Result<Vec<DocketWithTransactions>, String>),
    Transactions(Result<ServedTransactions, String>),
}

/// A peer's answer to a pull of announced transactions.
#[derive(Clone, Debug, Default)]
pub struct ServedTransactions {
    pub payloads: Vec<Vec<u8>>,
    /// IDs asked for that the peer does not hold.
    pub missing: Vec<[u8; 32]>,
}

/// How a session ended.
#[derive(Clone, Debug)]
pub enum CloseOutcome {
    /// Either side said goodbye, or we shut down: not the peer's fault.
    Graceful(String),
    /// The stream broke or heartbeats went unanswered: counts as a failure.
    Failed(String),
}

/// A peer that proved its identity in a handshake.
#[derive(Clone, Debug)]
pub struct VerifiedPeer {
    pub peer_id: String,
    pub public_key: String,
    pub name: String,
    /// The address it listens on, with an unspecified host replaced by the one we saw.
    pub address: String,
    pub software_version: String,
}

/// An address handed over in peer exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct KnownAddress {
    pub peer_id: String,
    pub address: String,
    pub last_seen_ms: i64,
}

/// Someone to dial: a seed (address only) or a known peer.
#[derive(Clone, Debug, PartialEq)]
pub struct DialTarget {
    pub address: String,
    pub expected_peer_id: Option<String>,
    pub seed: bool,
}

/// What a session needs from the manager once registered.
pub struct SessionHandle {
    pub conn_id: u64,
    pub commands: mpsc::Receiver<SessionCommand>,
}

/// One peer's record.
#[derive(Clone, Debug)]
struct Peer {
    peer_id: String,
    public_key: String,
    name: String,
    address: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    is_seed: bool,
    failure_count: u32,
    quality: QualityTracker,
    software_version: Option<String>,
    /// The address its last connection came from (memory only).
    remote_ip: Option<IpAddr>,
    /// Earliest time to dial it again (memory only).
    next_dial_ms: i64,
    /// A dial to it is in progress (memory only).
    dialing: bool,
    /// Public registers it advertised in its last heartbeat (memory only).
    advertised: Vec<RegisterHeight>,
    /// When it recently served data that failed verification (memory only).
    verification_failures: Vec<i64>,
}

impl Peer {
    fn new(peer_id: String, address: String, first_seen_ms: i64, last_seen_ms: i64) -> Peer {
        Peer {
            peer_id,
            public_key: String::new(),
            name: String::new(),
            address,
            first_seen_ms,
            last_seen_ms,
            is_seed: false,
            failure_count: 0,
            quality: QualityTracker::default(),
            software_version: None,
            remote_ip: None,
            next_dial_ms: 0,
            dialing: false,
            advertised: Vec::new(),
            verification_failures: Vec::new(),
        }
    }

    fn from_row(row: PeerRow) -> Peer {
        let latency = match (row.min_latency_ms, row.avg_latency_ms, row.max_latency_ms) {
            (Some(min), Some(avg), Some(max)) => Some((min, avg, max)),
            _ => None,
        };
        let last_penalty = match (row.last_penalty_reason, row.last_penalty_at_ms) {
            (Some(reason), Some(at_ms)) => Some(PenaltyEvent {
                at_ms,
                reason,
                amount: 0.0,
            }),
            _ => None,
        };
        Peer {
            quality: QualityTracker::restore(
                row.total_requests.max(0) as u64,
                row.successful_requests.max(0) as u64,
                row.success_rate,
                latency,
                row.penalty,
                row.penalty_updated_ms,
                last_penalty,
            ),
            public_key: row.public_key,
            name: row.name,
            is_seed: row.is_seed,
            failure_count: row.failure_count.clamp(0, u32::MAX as i64) as u32,
            ..Peer::new(
                row.peer_id,
                row.address,
                row.first_seen_ms,
                row.last_seen_ms,
            )
        }
    }

    fn to_row(&self) -> PeerRow {
        let latency = self.quality.latency();
        PeerRow {
            peer_id: self.peer_id.clone(),
            public_key: self.public_key.clone(),
            name: self.name.clone(),
            address: self.address.clone(),
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            is_seed: self.is_seed,
            failure_count: self.failure_count as i64,
            total_requests: self.quality.total_requests as i64,
            successful_requests: self.quality.successful_requests as i64,
            success_rate: self.quality.success_rate,
            avg_latency_ms: latency.map(|l| l.1),
            min_latency_ms: latency.map(|l| l.0),
            max_latency_ms: latency.map(|l| l.2),
            penalty: self.quality.penalty,
            penalty_updated_ms: self.quality.penalty_updated_ms,
            last_penalty_reason: self.quality.last_penalty.as_ref().map(|p| p.reason.clone()),
            last_penalty_at_ms: self.quality.last_penalty.as_ref().map(|p| p.at_ms),
        }
    }

    /// Every IP this peer is known by: its announced address and where it last connected from.
    fn ips(&self) -> Vec<IpAddr> {
        bans::address_ip(&self.address)
            .into_iter()
            .chain(self.remote_ip)
            .collect()
    }
}

struct Connection {
    conn_id: u64,
    direction: Direction,
    /// Peer ID of the side that dialled, used to settle duplicate connections the same way on
    /// both ends.
    dialer_id: String,
    remote_ip: IpAddr,
    connected_at_ms: i64,
    commands: mpsc::Sender<SessionCommand>,
}

struct Seed {
    address: String,
    peer_id: Option<String>,
    failures: u32,
    next_attempt_ms: i64,
    dialing: bool,
}

#[derive(Default)]
struct Inner {
    peers: HashMap<String, Peer>,
    bans: BTreeMap<String, Ban>,
    connections: HashMap<String, Connection>,
    seeds: Vec<Seed>,
    dirty: HashSet<String>,
    removed: HashSet<String>,
    next_conn_id: u64,
}

impl Inner {
    fn ban_matching(&self, peer_id: Option<&str>, ips: &[IpAddr], now: i64) -> Option<&Ban> {
        self.bans
            .values()
            .find(|b| !b.is_expired(now) && b.target.matches(peer_id, ips))
    }

    fn peer_ban(&self, peer: &Peer, now: i64) -> Option<&Ban> {
        let mut ips = peer.ips();
        if let Some(conn) = self.connections.get(&peer.peer_id) {
            ips.push(conn.remote_ip);
        }
        self.ban_matching(Some(&peer.peer_id), &ips, now)
    }

    fn state_of(&self, peer: &Peer, now: i64) -> PeerState {
        if self.peer_ban(peer, now).is_some() {
            PeerState::Banned
        } else if self.connections.contains_key(&peer.peer_id) {
            PeerState::Connected
        } else if peer.dialing {
            PeerState::Connecting
        } else {
            PeerState::Disconnected
        }
    }

    fn outbound_count(&self) -> usize {
        self.connections
            .values()
            .filter(|c| c.direction == Direction::Outbound)
            .count()
    }

    fn inbound_count(&self) -> usize {
        self.connections.len() - self.outbound_count()
    }

    /// Resolves a unique peer-ID prefix (case-insensitive) to a full ID.
    fn resolve(&self, prefix: &str) -> Result<String, PeerError> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PeerError::NotFound(prefix));
        }
        if self.peers.contains_key(&prefix) {
            return Ok(prefix);
        }
        let mut matches: Vec<String> = self
            .peers
            .keys()
            .filter(|id| id.starts_with(&prefix))
            .cloned()
            .collect();
        match matches.len() {
            0 => Err(PeerError::NotFound(prefix)),
            1 => Ok(matches.remove(0)),
            _ => {
                matches.sort();
                matches.truncate(5);
                Err(PeerError::Ambiguous { prefix, matches })
            }
        }
    }

    fn mark_dirty(&mut self, peer_id: &str) {
        self.removed.remove(peer_id);
        self.dirty.insert(peer_id.to_string());
    }

    fn remove_peer(&mut self, peer_id: &str) {
        self.peers.remove(peer_id);
        self.dirty.remove(peer_id);
        self.removed.insert(peer_id.to_string());
    }

    /// Closes every connection a ban covers; returns the peer IDs affected.
    fn enforce_ban(&mut self, ban: &Ban, now: i64) -> Vec<String> {
        let hit: Vec<String> = self
            .connections
            .iter()
            .filter(|(id, conn)| {
                let mut ips = vec![conn.remote_ip];
                if let Some(p) = self.peers.get(*id) {
                    ips.extend(p.ips());
                }
                !ban.is_expired(now) && ban.target.matches(Some(id), &ips)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &hit {
            if let Some(conn) = self.connections.get(id) {
                close_session(conn, format!("banned: {}", ban.reason));
            }
        }
        hit
    }
}

/// Asks a session to close; a full command queue means it is stuck, so the cancel path of
/// `connection_closed` cleans up when its stream ends anyway.
fn close_session(conn: &Connection, reason: String) {
    if let Err(e) = conn.commands.try_send(SessionCommand::Close(reason)) {
        tracing::warn!(conn = conn.conn_id, "could not ask session to close: {e}");
    }
}

/// Operator view of one peer.
#[derive(Clone, Debug)]
pub struct PeerSnapshot {
    pub peer_id: String,
    pub name: String,
    pub address: String,
    pub state: PeerState,
    pub direction: Option<Direction>,
    pub connected_since_ms: Option<i64>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub failure_count: u32,
    pub is_seed: bool,
    pub software_version: Option<String>,
    pub quality: QualityBreakdown,
    pub ban: Option<Ban>,
    pub advertised: Vec<RegisterHeight>,
}

/// Peer counts for `status`, health and metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerCounts {
    pub known: usize,
    pub connected: usize,
    pub connecting: usize,
    pub disconnected: usize,
    pub banned: usize,
    pub inbound: usize,
    pub outbound: usize,
    pub bans: usize,
    pub seeds: usize,
}

/// Result of an operator ban.
#[derive(Clone, Debug)]
pub struct BanOutcome {
    pub ban: Ban,
    /// Peers the ban applies to (known by ID or address).
    pub peer_ids: Vec<String>,
    /// Connections closed because of it.
    pub disconnected: Vec<String>,
}

/// Owner of the peer table, the connection registry and the bans.
pub struct PeerManager {
    identity: Arc<Identity>,
    config: Arc<Config>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

impl PeerManager {
    /// Loads peers and bans from the store. Bans that expired while the node was down are
    /// deleted; a corrupt ban row stops start-up rather than silently letting a peer back in.
    pub async fn load(
        identity: Arc<Identity>,
        config: Arc<Config>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) -> Result<PeerManager, StoreError> {
        let now = now_ms();
        let mut inner = Inner::default();
        for row in store.load_peers().await? {
            if row.peer_id != identity.peer_id() {
                inner.peers.insert(row.peer_id.clone(), Peer::from_row(row));
            }
        }
        for row in store.load_bans().await? {
            let ban = Ban::from_row(&row).map_err(StoreError::Corrupt)?;
            if ban.is_expired(now) {
                store.delete_ban(&row.target).await?;
                tracing::info!(target = %row.target, "ban expired while the node was down");
            } else {
                inner.bans.insert(row.target.clone(), ban);
            }
        }
        inner.seeds = config
            .seeds
            .iter()
            .map(|address| Seed {
                address: address.clone(),
                peer_id: None,
                failures: 0,
                next_attempt_ms: 0,
                dialing: false,
            })
            .collect();
        Ok(PeerManager {
            identity,
            config,
            store,
            metrics,
            inner: Mutex::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock is a bug; keep serving with the state as it is.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn backoff(&self, failures: u32) -> Duration {
        let min = self.config.reconnect_backoff_min.as_secs_f64();
        let max = self.config.reconnect_backoff_max.as_secs_f64();
        let exp = min * 2f64.powi(failures.saturating_sub(1).min(30) as i32);
        let jitter = 1.0 + rand::thread_rng().gen_range(-BACKOFF_JITTER..=BACKOFF_JITTER);
        Duration::from_secs_f64((exp * jitter).clamp(min, max))
    }

    // ----- handshake gates -------------------------------------------------------------

    /// Whether a connection from `remote_ip` may even start a handshake.
    pub fn admit_address(&self, remote_ip: IpAddr) -> Result<(), Refusal> {
        let inner = self.lock();
        match inner.ban_matching(None, &[remote_ip], now_ms()) {
            Some(ban) => Err(Refusal::Banned(ban.reason.clone())),
            None => Ok(()),
        }
    }

    /// Registers a connection after a successful handshake, or refuses it. The dialler passes
    /// the target it dialled so its bookkeeping (seed, backoff) is settled.
    pub fn register_connection(
        &self,
        peer: VerifiedPeer,
        direction: Direction,
        remote_ip: IpAddr,
        dialed: Option<&DialTarget>,
    ) -> Result<SessionHandle, Refusal> {
        let now = now_ms();
        let mut inner = self.lock();
        let inner = &mut *inner;
        if peer.peer_id == self.identity.peer_id() {
            return Err(Refusal::SelfConnection);
        }
        let ips: Vec<IpAddr> = bans::address_ip(&peer.address)
            .into_iter()
            .chain([remote_ip])
            .collect();
        if let Some(ban) = inner.ban_matching(Some(&peer.peer_id), &ips, now) {
            return Err(Refusal::Banned(ban.reason.clone()));
        }
        if direction == Direction::Inbound
            && !inner.connections.contains_key(&peer.peer_id)
            && inner.inbound_count() >= self.config.max_inbound
        {
            return Err(Refusal::InboundFull);
        }
        let dialer_id = match direction {
            Direction::Outbound => self.identity.peer_id().to_string(),
            Direction::Inbound => peer.peer_id.clone(),
        };
        if let Some(existing) = inner.connections.get(&peer.peer_id) {
            // Both ends keep the connection dialled by the smaller peer ID, so a simultaneous
            // dial in both directions settles on the same single connection. A new connection
            // from the same dialler replaces the old one (the old one is a stale leftover).
            if existing.dialer_id != dialer_id && existing.dialer_id < dialer_id {
                return Err(Refusal::Duplicate);
            }
            close_session(existing, "replaced by a newer connection".to_string());
        }

        if let Some(target) = dialed {
            // A hearsay entry that turned out to be someone else is dropped.
            if let Some(expected) = &target.expected_peer_id
                && *expected != peer.peer_id
                && inner
                    .peers
                    .get(expected)
                    .is_some_and(|p| p.public_key.is_empty())
            {
                tracing::info!(expected = %expected, actual = %peer.peer_id, address = %target.address,
                    "address belongs to a different peer than advertised; forgetting the advertised ID");
                inner.remove_peer(expected);
            }
            if target.seed
                && let Some(seed) = inner.seeds.iter_mut().find(|s| s.address == target.address)
            {
                seed.peer_id = Some(peer.peer_id.clone());
                seed.failures = 0;
                seed.dialing = false;
            }
        }

        let record = inner
            .peers
            .entry(peer.peer_id.clone())
            .or_insert_with(|| Peer::new(peer.peer_id.clone(), peer.address.clone(), now, now));
        record.public_key = peer.public_key;
        record.name = peer.name;
        record.address = peer.address;
        record.software_version = Some(peer.software_version);
        record.remote_ip = Some(remote_ip);
        record.last_seen_ms = now;
        record.failure_count = 0;
        record.dialing = false;
        record.quality.record_success(None);
        if dialed.is_some_and(|t| t.seed) {
            record.is_seed = true;
        }
        inner.mark_dirty(&peer.peer_id);

        inner.next_conn_id += 1;
        let conn_id = inner.next_conn_id;
        let (tx, rx) = mpsc::channel(SESSION_COMMAND_QUEUE);
        inner.connections.insert(
            peer.peer_id.clone(),
            Connection {
                conn_id,
                direction,
                dialer_id,
                remote_ip,
                connected_at_ms: now,
                commands: tx,
            },
        );
        self.metrics
            .handshakes
            .get_or_create(&vec![("result", "accepted")])
            .inc();
        tracing::info!(peer = %peer.peer_id, direction = direction.as_str(), "peer connected");
        Ok(SessionHandle {
            conn_id,
            commands: rx,
        })
    }

    /// Counts a refused or failed handshake.
    pub fn handshake_failed(&self, refused: bool) {
        let result = if refused { "refused" } else { "failed" };
        self.metrics
            .handshakes
            .get_or_create(&vec![("result", result)])
            .inc();
    }

    /// A session ended. Only the session that registered `conn_id` can remove its entry.
    pub fn connection_closed(&self, peer_id: &str, conn_id: u64, outcome: &CloseOutcome) {
        let now = now_ms();
        let mut inner = self.lock();
        if inner.connections.get(peer_id).map(|c| c.conn_id) != Some(conn_id) {
            return;
        }
        inner.connections.remove(peer_id);
        let failed = matches!(outcome, CloseOutcome::Failed(_));
        if failed {
            self.metrics.peer_failures.inc();
        }
        let delay = if failed {
            let failures = inner.peers.get(peer_id).map_or(1, |p| p.failure_count + 1);
            self.backoff(failures)
        } else {
            self.backoff(1)
        };
        if let Some(peer) = inner.peers.get_mut(peer_id) {
            peer.last_seen_ms = now;
            if failed {
                peer.failure_count += 1;
                peer.quality.record_failure();
            }
            peer.next_dial_ms = now + delay.as_millis() as i64;
            let is_seed = peer.is_seed;
            inner.mark_dirty(peer_id);
            if is_seed
                && let Some(seed) = inner
                    .seeds
                    .iter_mut()
                    .find(|s| s.peer_id.as_deref() == Some(peer_id))
            {
                seed.next_attempt_ms = now + delay.as_millis() as i64;
            }
        }
        match outcome {
            CloseOutcome::Graceful(reason) => {
                tracing::info!(peer = %peer_id, %reason, "peer disconnected")
            }
            CloseOutcome::Failed(reason) => {
                tracing::warn!(peer = %peer_id, %reason, "peer connection failed")
            }
        }
    }

    // ----- observations ----------------------------------------------------------------

    /// A request to the peer succeeded (with its round trip when measured).
    pub fn record_success(&self, peer_id: &str, rtt: Option<Duration>) {
        if let Some(rtt) = rtt {
            self.metrics.heartbeat_latency.observe(rtt.as_secs_f64());
        }
        let mut inner = self.lock();
        if let Some(peer) = inner.peers.get_mut(peer_id) {
            peer.failure_count = 0;
            peer.last_seen_ms = now_ms();
            peer.quality
                .record_success(rtt.map(|d| d.as_secs_f64() * 1000.0));
            inner.mark_dirty(peer_id);
        }
    }

    /// A request to the peer failed. Returns true when the peer has now failed `max_failures`
    /// times in a row and must be disconnected.
    pub fn record_failure(&self, peer_id: &str, reason: &str) -> bool {
        self.metrics.peer_failures.inc();
        let mut inner = self.lock();
        let Some(peer) = inner.peers.get_mut(peer_id) else {
            return false;
        };
        peer.failure_count += 1;
        peer.quality.record_failure();
        let count = peer.failure_count;
        inner.mark_dirty(peer_id);
        tracing::debug!(peer = %peer_id, failures = count, %reason, "request to peer failed");
        count >= self.config.max_failures
    }

    /// Lowers a peer's validity score (bad data, protocol violations) and records why.
    pub fn penalize(&self, peer_id: &str, amount: f64, reason: &str) {
        let mut inner = self.lock();
        if let Some(peer) = inner.peers.get_mut(peer_id) {
            peer.quality.penalize(amount, reason, now_ms());
            inner.mark_dirty(peer_id);
            tracing::warn!(peer = %peer_id, %reason, "peer penalised");
        }
    }

    // ----- peer exchange ---------------------------------------------------------------

    /// Entries to hand to `requester`: connected peers first (seen now), then the most
    /// recently seen; never banned peers, peers failing right now, the requester or ourselves.
    pub fn exchange_entries(&self, requester: &str, max: usize) -> Vec<KnownAddress> {
        let now = now_ms();
        let inner = self.lock();
        let mut entries: Vec<(bool, KnownAddress)> = inner
            .peers
            .values()
            .filter(|p| p.peer_id != requester && !p.address.is_empty())
            .filter_map(|p| {
                let connected = inner.connections.contains_key(&p.peer_id);
                let usable = connected || p.failure_count < self.config.max_failures;
                if !usable || inner.peer_ban(p, now).is_some() || p.public_key.is_empty() {
                    // Only peers we verified ourselves are passed on.
                    return None;
                }
                let last_seen_ms = if connected { now } else { p.last_seen_ms };
                Some((
                    connected,
                    KnownAddress {
                        peer_id: p.peer_id.clone(),
                        address: p.address.clone(),
                        last_seen_ms,
                    },
                ))
            })
            .collect();
        entries.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.last_seen_ms.cmp(&a.1.last_seen_ms))
                .then(a.1.peer_id.cmp(&b.1.peer_id))
        });
        entries.into_iter().take(max).map(|(_, e)| e).collect()
    }

    /// Adds addresses a peer told us about. Existing records are never changed by hearsay;
    /// malformed, banned, stale or self entries are skipped. Returns how many were new.
    pub fn learn(&self, from: &str, entries: Vec<KnownAddress>) -> usize {
        let now = now_ms();
        let retention = self.config.peer_retention.as_millis() as i64;
        let own_address = self.config.announced_address();
        let mut inner = self.lock();
        let mut added = 0;
        for entry in entries.into_iter().take(self.config.exchange_max_entries) {
            if !is_peer_id(&entry.peer_id)
                || entry.peer_id == self.identity.peer_id()
                || entry.address == own_address
                || validate_host_port(&entry.address).is_err()
                || bans::address_ip(&entry.address).is_some_and(|ip| ip.is_unspecified())
                || inner.peers.contains_key(&entry.peer_id)
            {
                continue;
            }
            // A peer cannot make an address look fresher than now.
            let last_seen_ms = entry.last_seen_ms.min(now);
            if now - last_seen_ms > retention {
                continue;
            }
            let ips: Vec<IpAddr> = bans::address_ip(&entry.address).into_iter().collect();
            if inner
                .ban_matching(Some(&entry.peer_id), &ips, now)
                .is_some()
            {
                continue;
            }
            if inner.peers.len() >= self.config.max_known_peers
                && !self.evict_one(&mut inner, last_seen_ms)
            {
                continue;
            }
            tracing::debug!(peer = %entry.peer_id, address = %entry.address, from = %from, "learnt peer");
            let peer = Peer::new(entry.peer_id.clone(), entry.address, now, last_seen_ms);
            inner.peers.insert(entry.peer_id.clone(), peer);
            inner.mark_dirty(&entry.peer_id);
            added += 1;
        }
        self.metrics.peers_learned.inc_by(added as u64);
        added
    }

    /// Forgets the least recently seen ordinary peer if it was seen before `than_ms`.
    fn evict_one(&self, inner: &mut Inner, than_ms: i64) -> bool {
        let now = now_ms();
        let victim = inner
            .peers
            .values()
            .filter(|p| {
                !p.is_seed
                    && !p.dialing
                    && !inner.connections.contains_key(&p.peer_id)
                    && inner.peer_ban(p, now).is_none()
                    && p.last_seen_ms < than_ms
            })
            .min_by_key(|p| p.last_seen_ms)
            .map(|p| p.peer_id.clone());
        match victim {
            Some(id) => {
                inner.remove_peer(&id);
                true
            }
            None => false,
        }
    }

    /// Asks up to `exchange_peers` random connected peers for their peer lists.
    pub fn start_exchange_round(&self) -> usize {
        let inner = self.lock();
        let mut ids: Vec<&String> = inner.connections.keys().collect();
        let count = self.config.exchange_peers.min(ids.len());
        let (chosen, _) = ids.partial_shuffle(&mut rand::thread_rng(), count);
        let mut asked = 0;
        for id in chosen.iter() {
            if let Some(conn) = inner.connections.get(*id)
                && conn
                    .commands
                    .try_send(SessionCommand::ExchangePeers)
                    .is_ok()
            {
                asked += 1;
            }
        }
        asked
    }

    // ----- dialling --------------------------------------------------------------------

    /// Decides whom to dial now: seeds that are not connected (always, with backoff) and known
    /// peers to fill the outbound slots. Marks each as being dialled.
    pub fn plan_dials(&self) -> Vec<DialTarget> {
        let now = now_ms();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut targets = Vec::new();

        let connected_addresses: HashSet<String> = inner
            .connections
            .keys()
            .filter_map(|id| inner.peers.get(id).map(|p| p.address.clone()))
            .collect();
        for i in 0..inner.seeds.len() {
            let seed = &inner.seeds[i];
            if seed.dialing
                || now < seed.next_attempt_ms
                || connected_addresses.contains(&seed.address)
            {
                continue;
            }
            if let Some(id) = &seed.peer_id
                && inner.connections.contains_key(id)
            {
                continue;
            }
            let ips: Vec<IpAddr> = bans::address_ip(&seed.address).into_iter().collect();
            if inner
                .ban_matching(seed.peer_id.as_deref(), &ips, now)
                .is_some()
            {
                continue;
            }
            inner.seeds[i].dialing = true;
            targets.push(DialTarget {
                address: inner.seeds[i].address.clone(),
                expected_peer_id: inner.seeds[i].peer_id.clone(),
                seed: true,
            });
        }

        let seed_addresses: HashSet<&str> =
            inner.seeds.iter().map(|s| s.address.as_str()).collect();
        let busy = inner.outbound_count()
            + inner.peers.values().filter(|p| p.dialing).count()
            + targets.len();
        let slots = self.config.max_outbound.saturating_sub(busy);
        if slots > 0 {
            let mut candidates: Vec<&Peer> = inner
                .peers
                .values()
                .filter(|p| {
                    !p.dialing
                        && p.next_dial_ms <= now
                        && !p.address.is_empty()
                        && !inner.connections.contains_key(&p.peer_id)
                        && !seed_addresses.contains(p.address.as_str())
                        && !connected_addresses.contains(&p.address)
                        && inner.peer_ban(p, now).is_none()
                })
                .collect();
            candidates.sort_by(|a, b| {
                a.failure_count
                    .cmp(&b.failure_count)
                    .then(b.last_seen_ms.cmp(&a.last_seen_ms))
            });
            let chosen: Vec<(String, String)> = candidates
                .into_iter()
                .take(slots)
                .map(|p| (p.peer_id.clone(), p.address.clone()))
                .collect();
            for (id, address) in chosen {
                if let Some(p) = inner.peers.get_mut(&id) {
                    p.dialing = true;
                }
                targets.push(DialTarget {
                    address,
                    expected_peer_id: Some(id),
                    seed: false,
                });
            }
        }
        targets
    }

    /// A dial (connect or handshake) failed: count it and back off.
    pub fn dial_failed(&self, target: &DialTarget, reason: &str) {
        self.metrics.peer_failures.inc();
        let now = now_ms();
        let mut inner = self.lock();
        if target.seed
            && let Some(seed) = inner.seeds.iter_mut().find(|s| s.address == target.address)
        {
            seed.dialing = false;
            seed.failures += 1;
            let delay = self.backoff(seed.failures);
            seed.next_attempt_ms = now + delay.as_millis() as i64;
            tracing::warn!(seed = %target.address, %reason, retry_in = ?delay, "cannot reach seed");
        }
        if let Some(id) = &target.expected_peer_id
            && let Some(peer) = inner.peers.get_mut(id)
        {
            peer.dialing = false;
            peer.failure_count += 1;
            peer.quality.record_failure();
            let delay = self.backoff(peer.failure_count);
            peer.next_dial_ms = now + delay.as_millis() as i64;
            inner.mark_dirty(id);
            tracing::debug!(peer = %id, %reason, retry_in = ?delay, "dial failed");
        }
    }

    /// A dial ended without a connection and without being the peer's fault (refused as a
    /// duplicate or self-connection): clear the in-progress marks.
    pub fn dial_abandoned(&self, target: &DialTarget) {
        let now = now_ms();
        let retry = now + self.config.reconnect_backoff_max.as_millis() as i64;
        let mut inner = self.lock();
        if target.seed
            && let Some(seed) = inner.seeds.iter_mut().find(|s| s.address == target.address)
        {
            seed.dialing = false;
            seed.next_attempt_ms = retry;
        }
        if let Some(id) = &target.expected_peer_id
            && let Some(peer) = inner.peers.get_mut(id)
        {
            peer.dialing = false;
            peer.next_dial_ms = retry;
        }
    }

    // ----- maintenance -----------------------------------------------------------------

    /// Deletes bans that have run out. Their effect already ended at expiry (matching ignores
    /// expired bans); this only tidies the table.
    pub async fn expire_bans(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let expired: Vec<String> = {
            let inner = self.lock();
            inner
                .bans
                .iter()
                .filter(|(_, b)| b.is_expired(now))
                .map(|(k, _)| k.clone())
                .collect()
        };
        for target in expired {
            self.store.delete_ban(&target).await?;
            self.lock().bans.remove(&target);
            tracing::info!(%target, "ban expired");
        }
        Ok(())
    }

    /// Forgets ordinary peers not seen within `peer_retention`.
    pub fn prune(&self) {
        let now = now_ms();
        let cutoff = now - self.config.peer_retention.as_millis() as i64;
        let mut inner = self.lock();
        let stale: Vec<String> = inner
            .peers
            .values()
            .filter(|p| {
                !p.is_seed
                    && !p.dialing
                    && p.last_seen_ms < cutoff
                    && !inner.connections.contains_key(&p.peer_id)
                    && inner.peer_ban(p, now).is_none()
            })
            .map(|p| p.peer_id.clone())
            .collect();
        for id in stale {
            tracing::info!(peer = %id, "forgetting peer not seen within the retention period");
            inner.remove_peer(&id);
        }
    }

    /// Writes changed peer records to the store. On error the changes stay pending and are
    /// retried on the next flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (rows, removed) = {
            let mut inner = self.lock();
            let dirty: Vec<String> = inner.dirty.drain().collect();
            let rows: Vec<PeerRow> = dirty
                .iter()
                .filter_map(|id| inner.peers.get(id).map(Peer::to_row))
                .collect();
            let removed: Vec<String> = inner.removed.drain().collect();
            (rows, removed)
        };
        let result = async {
            if !rows.is_empty() {
                self.store.upsert_peers(&rows).await?;
            }
            for id in &removed {
                self.store.delete_peer(id).await?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if result.is_err() {
            let mut inner = self.lock();
            for row in &rows {
                if inner.peers.contains_key(&row.peer_id) {
                    inner.dirty.insert(row.peer_id.clone());
                }
            }
            inner.removed.extend(removed);
        }
        result
    }

    /// Asks every session to close (node shutdown).
    pub fn close_all(&self, reason: &str) {
        let inner = self.lock();
        for conn in inner.connections.values() {
            close_session(conn, reason.to_string());
        }
    }

    /// Live connection count (shutdown waits for it to reach zero).
    pub fn connection_count(&self) -> usize {
        self.lock().connections.len()
    }

    // ----- operator views and actions --------------------------------------------------

    fn snapshot(&self, inner: &Inner, peer: &Peer, now: i64) -> PeerSnapshot {
        let conn = inner.connections.get(&peer.peer_id);
        PeerSnapshot {
            peer_id: peer.peer_id.clone(),
            name: peer.name.clone(),
            address: peer.address.clone(),
            state: inner.state_of(peer, now),
            direction: conn.map(|c| c.direction),
            connected_since_ms: conn.map(|c| c.connected_at_ms),
            first_seen_ms: peer.first_seen_ms,
            last_seen_ms: if conn.is_some() {
                now.max(peer.last_seen_ms)
            } else {
                peer.last_seen_ms
            },
            failure_count: peer.failure_count,
            is_seed: peer.is_seed,
            software_version: peer.software_version.clone(),
            quality: peer.quality.breakdown(now),
            ban: inner.peer_ban(peer, now).cloned(),
            advertised: if conn.is_some() {
                peer.advertised.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Every known peer, ordered by peer ID.
    pub fn list(&self) -> Vec<PeerSnapshot> {
        let now = now_ms();
        let inner = self.lock();
        let mut out: Vec<PeerSnapshot> = inner
            .peers
            .values()
            .map(|p| self.snapshot(&inner, p, now))
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }

    /// One peer by ID or unique prefix.
    pub fn get(&self, prefix: &str) -> Result<PeerSnapshot, PeerError> {
        let now = now_ms();
        let inner = self.lock();
        let id = inner.resolve(prefix)?;
        let peer = inner
            .peers
            .get(&id)
            .ok_or_else(|| PeerError::NotFound(id.clone()))?;
        Ok(self.snapshot(&inner, peer, now))
    }

    /// Bans in force, oldest first.
    pub fn bans(&self) -> Vec<Ban> {
        let now = now_ms();
        let inner = self.lock();
        let mut bans: Vec<Ban> = inner
            .bans
            .values()
            .filter(|b| !b.is_expired(now))
            .cloned()
            .collect();
        bans.sort_by(|a, b| {
            a.banned_at_ms
                .cmp(&b.banned_at_ms)
                .then(a.target.key().cmp(&b.target.key()))
        });
        bans
    }

    /// Turns operator text into a ban target: an IP, a CIDR, a known peer's unique ID prefix, or
    /// a full peer ID not yet known (a pre-emptive ban).
    pub fn parse_target(&self, text: &str) -> Result<BanTarget, PeerError> {
        let text = text.trim();
        if let Some(target) = BanTarget::parse_network(text) {
            return Ok(target);
        }
        if text.contains('/') || text.contains('.') || text.contains(':') {
            return Err(PeerError::Invalid(format!(
                "'{text}' is not a valid peer ID, IP address or CIDR subnet"
            )));
        }
        let inner = self.lock();
        match inner.resolve(text) {
            Ok(id) => Ok(BanTarget::Peer(id)),
            Err(PeerError::NotFound(_)) if is_peer_id(&text.to_ascii_lowercase()) => {
                Ok(BanTarget::Peer(text.to_ascii_lowercase()))
            }
            Err(e) => Err(e),
        }
    }

    /// Bans a target. Persisted first: if the store refuses, nothing changes. Matching
    /// connections are closed at once.
    pub async fn ban(
        &self,
        target: BanTarget,
        reason: Option<String>,
        duration: Option<Duration>,
        source: BanSource,
    ) -> Result<BanOutcome, PeerError> {
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| DEFAULT_BAN_REASON.to_string());
        if reason.chars().count() > bans::MAX_REASON_LEN {
            return Err(PeerError::Invalid(format!(
                "the reason is longer than {} characters",
                bans::MAX_REASON_LEN
            )));
        }
        if duration.is_some_and(|d| d.is_zero()) {
            return Err(PeerError::Invalid(
                "a ban duration must be greater than zero".into(),
            ));
        }
        let now = now_ms();
        let key = target.key();
        {
            let inner = self.lock();
            if let Some(existing) = inner.bans.get(&key).filter(|b| !b.is_expired(now)) {
                return Err(PeerError::Conflict(format!(
                    "{key} is already banned ({}); unban it first to change the ban",
                    existing.reason
                )));
            }
        }
        let ban = Ban {
            target,
            reason,
            source,
            banned_at_ms: now,
            expires_at_ms: duration.map(|d| now + d.as_millis() as i64),
        };
        // An expired ban on the same target may still be in the table; replace it.
        self.store.delete_ban(&key).await?;
        self.store.insert_ban(&ban.to_row()).await?;
        let mut inner = self.lock();
        inner.bans.insert(key.clone(), ban.clone());
        let disconnected = inner.enforce_ban(&ban, now);
        let peer_ids = inner
            .peers
            .values()
            .filter(|p| ban.target.matches(Some(&p.peer_id), &p.ips()))
            .map(|p| p.peer_id.clone())
            .collect();
        self.metrics
            .bans_total
            .get_or_create(&vec![("source", source.as_str())])
            .inc();
        tracing::warn!(target = %key, reason = %ban.reason, source = source.as_str(), "banned");
        Ok(BanOutcome {
            ban,
            peer_ids,
            disconnected,
        })
    }

    /// Lifts the ban on a target (IP, CIDR, or peer ID prefix). Returns the lifted ban.
    pub async fn unban(&self, text: &str) -> Result<Ban, PeerError> {
        let text = text.trim();
        let key = match BanTarget::parse_network(text) {
            Some(target) => target.key(),
            None => {
                let inner = self.lock();
                let lower = text.to_ascii_lowercase();
                let banned_ids: Vec<&String> = inner
                    .bans
                    .iter()
                    .filter(|(_, b)| b.target.kind() == BanKind::Peer)
                    .map(|(k, _)| k)
                    .filter(|k| k.starts_with(&lower))
                    .collect();
                match banned_ids.as_slice() {
                    [one] => (*one).clone(),
                    [] => return Err(PeerError::NoBan(text.to_string())),
                    many => {
                        return Err(PeerError::Ambiguous {
                            prefix: lower,
                            matches: many.iter().take(5).map(|s| s.to_string()).collect(),
                        });
                    }
                }
            }
        };
        let ban = self
            .lock()
            .bans
            .get(&key)
            .cloned()
            .ok_or_else(|| PeerError::NoBan(key.clone()))?;
        self.store.delete_ban(&key).await?;
        let mut inner = self.lock();
        inner.bans.remove(&key);
        // Restored to normal treatment: eligible for dialling straight away.
        for peer in inner.peers.values_mut() {
            if ban.target.matches(Some(&peer.peer_id), &peer.ips()) {
                peer.next_dial_ms = 0;
            }
        }
        for seed in inner.seeds.iter_mut() {
            seed.next_attempt_ms = 0;
        }
        tracing::info!(target = %key, "unbanned");
        Ok(ban)
    }

    /// Sets a peer's failure count and penalties to zero; returns (peer ID, previous count).
    pub async fn reset(&self, prefix: &str) -> Result<(String, u32), PeerError> {
        let (id, previous, row) = {
            let mut inner = self.lock();
            let id = inner.resolve(prefix)?;
            let peer = inner
                .peers
                .get_mut(&id)
                .ok_or_else(|| PeerError::NotFound(id.clone()))?;
            let previous = peer.failure_count;
            let mut updated = peer.clone();
            updated.failure_count = 0;
            updated.quality.clear_penalties();
            updated.next_dial_ms = 0;
            (id, previous, updated)
        };
        self.store.upsert_peers(&[row.to_row()]).await?;
        let mut inner = self.lock();
        if let Some(peer) = inner.peers.get_mut(&id) {
            peer.failure_count = 0;
            peer.quality.clear_penalties();
            peer.next_dial_ms = 0;
        }
        for seed in inner.seeds.iter_mut() {
            if seed.peer_id.as_deref() == Some(id.as_str()) {
                seed.failures = 0;
                seed.next_attempt_ms = 0;
            }
        }
        tracing::info!(peer = %id, previous_failures = previous, "peer reset");
        Ok((id, previous))
    }

    // ----- registers and requests ---------------------------------------------------

    /// Records the registers a peer advertised (replacing what it said before).
    pub fn set_advertised(&self, peer_id: &str, registers: Vec<RegisterHeight>) {
        if let Some(peer) = self.lock().peers.get_mut(peer_id) {
            peer.advertised = registers;
        }
    }

    /// Connected, unbanned peers advertising `register_id`, best quality first, with what they
    /// advertise.
    pub fn carriers(&self, register_id: &str) -> Vec<(String, RegisterHeight)> {
        let now = now_ms();
        let inner = self.lock();
        let mut out: Vec<(f64, String, RegisterHeight)> = inner
            .connections
            .keys()
            .filter_map(|id| inner.peers.get(id))
            .filter(|p| inner.peer_ban(p, now).is_none())
            .filter_map(|p| {
                p.advertised
                    .iter()
                    .find(|r| r.register_id == register_id)
                    .map(|r| (p.quality.breakdown(now).score, p.peer_id.clone(), r.clone()))
            })
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.into_iter().map(|(_, id, r)| (id, r)).collect()
    }

    /// Every public register advertised by connected, unbanned peers, with the advertisers.
    pub fn advertised_registers(&self) -> BTreeMap<String, Vec<RegisterHeight>> {
        let now = now_ms();
        let inner = self.lock();
        let mut out: BTreeMap<String, Vec<RegisterHeight>> = BTreeMap::new();
        for id in inner.connections.keys() {
            if let Some(p) = inner.peers.get(id)
                && inner.peer_ban(p, now).is_none()
            {
                for r in &p.advertised {
                    out.entry(r.register_id.clone())
                        .or_default()
                        .push(r.clone());
                }
            }
        }
        out
    }

    /// Sends a one-way message to a connected peer; false if it is not connected (or its
    /// session cannot take more right now).
    pub fn send(&self, peer_id: &str, message: PeerMessage) -> bool {
        let inner = self.lock();
        inner
            .connections
            .get(peer_id)
            .is_some_and(|c| c.commands.try_send(SessionCommand::Send(message)).is_ok())
    }

    /// Sends a message to every connected peer.
    pub fn broadcast(&self, message: PeerMessage) {
        let inner = self.lock();
        for conn in inner.connections.values() {
            // A session whose queue is full misses one advertisement; the next heartbeat
            // carries the same information.
            let _ = conn
                .commands
                .try_send(SessionCommand::Send(message.clone()));
        }
    }

    /// Sends a request to a connected peer and waits (at most `timeout`) for its answer. A
    /// transport failure counts as a failed request to that peer.
    pub async fn request(
        &self,
        peer_id: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, String> {
        let (tx, rx) = oneshot::channel();
        let sender = self
            .lock()
            .connections
            .get(peer_id)
            .map(|c| c.commands.clone())
            .ok_or_else(|| format!("peer {peer_id} is not connected"))?;
        sender
            .send(SessionCommand::Request { request, reply: tx })
            .await
            .map_err(|_| format!("peer {peer_id} disconnected"))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(response)) => {
                self.record_success(peer_id, None);
                Ok(response)
            }
            Ok(Err(_)) => {
                self.record_failure(peer_id, "disconnected before answering");
                Err(format!("peer {peer_id} disconnected before answering"))
            }
            Err(_) => {
                self.record_failure(peer_id, "request timed out");
                Err(format!("peer {peer_id} did not answer within {timeout:?}"))
            }
        }
    }

    /// Peer IDs a ban target covers among known peers.
    pub fn peers_matching(&self, target: &BanTarget) -> Vec<String> {
        let inner = self.lock();
        let mut ids: Vec<String> = inner
            .peers
            .values()
            .filter(|p| target.matches(Some(&p.peer_id), &p.ips()))
            .map(|p| p.peer_id.clone())
            .collect();
        if let BanTarget::Peer(id) = target
            && !ids.contains(id)
        {
            ids.push(id.clone());
        }
        ids
    }

    /// A peer served data that failed verification: lower its validity and, when it happens
    /// `verification_ban_threshold` times within `verification_ban_window`, ban it
    /// automatically for `automatic_ban_duration`.
    pub async fn verification_failed(&self, peer_id: &str, reason: &str) {
        self.metrics.verification_failures.inc();
        self.penalize(
            peer_id,
            VERIFICATION_PENALTY,
            &format!("served data that failed verification: {reason}"),
        );
        let now = now_ms();
        let window = self.config.verification_ban_window.as_millis() as i64;
        let count = {
            let mut inner = self.lock();
            let Some(peer) = inner.peers.get_mut(peer_id) else {
                return;
            };
            peer.verification_failures.retain(|at| now - at < window);
            peer.verification_failures.push(now);
            peer.verification_failures.len()
        };
        if count >= self.config.verification_ban_threshold as usize {
            let reason = format!(
                "automatic: served data that failed verification {count} times within {} (last: {reason})",
                crate::clock::format_duration(self.config.verification_ban_window)
            );
            match self
                .ban(
                    BanTarget::Peer(peer_id.to_string()),
                    Some(reason),
                    Some(self.config.automatic_ban_duration),
                    BanSource::Automatic,
                )
                .await
            {
                Ok(_) | Err(PeerError::Conflict(_)) => {}
                Err(e) => tracing::error!(peer = %peer_id, "cannot record automatic ban: {e}"),
            }
        }
    }

    /// Counts for status, health and metrics.
    pub fn counts(&self) -> PeerCounts {
        let now = now_ms();
        let inner = self.lock();
        let mut counts = PeerCounts {
            known: inner.peers.len(),
            inbound: inner.inbound_count(),
            outbound: inner.outbound_count(),
            bans: inner.bans.values().filter(|b| !b.is_expired(now)).count(),
            seeds: inner.seeds.len(),
            ..PeerCounts::default()
        };
        for peer in inner.peers.values() {
            match inner.state_of(peer, now) {
                PeerState::Connected => counts.connected += 1,
                PeerState::Connecting => counts.connecting += 1,
                PeerState::Disconnected => counts.disconnected += 1,
                PeerState::Banned => counts.banned += 1,
            }
        }
        counts
    }

    /// Refreshes the gauges that mirror the peer table (called when `/metrics` is scraped).
    pub fn refresh_metrics(&self) {
        let c = self.counts();
        for (state, n) in [
            (PeerState::Connected, c.connected),
            (PeerState::Connecting, c.connecting),
            (PeerState::Disconnected, c.disconnected),
            (PeerState::Banned, c.banned),
        ] {
            self.metrics
                .peers
                .get_or_create(&vec![("state", state.as_str())])
                .set(n as i64);
        }
        self.metrics
            .connections
            .get_or_create(&vec![("direction", "inbound")])
            .set(c.inbound as i64);
        self.metrics
            .connections
            .get_or_create(&vec![("direction", "outbound")])
            .set(c.outbound as i64);
        self.metrics.bans_active.set(c.bans as i64);
    }
}
