//! The peer table and every rule about peers: who may connect, whom to dial and when, what
//! counts as a failure, quality, peer exchange, and bans.
//!
//! [`PeerManager`] is the single owner of this state. The network edge (`rpc/`) reports what it
//! observed (a handshake completed, a heartbeat came back, a connection dropped) and asks for
//! decisions (may this peer in? whom should I dial?); the admin API asks for views and operator
//! actions. Only this node's own observations change a peer's record: what a peer says about a
//! third peer can add an unknown address, never touch an existing record.

pub mod admission;
pub mod bans;
mod connections;
mod dialing;
pub mod discovery;
mod exchange;
mod operator;
pub mod quality;
mod requests;

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
/// Successful requests after which a peer counts as useful, so a full peer table forgets it
/// only after every peer without such a history.
const USEFUL_AFTER_REQUESTS: u64 = 20;
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
    /// A ban that would turn against this node itself, refused unless forced.
    #[error(transparent)]
    SelfBan(#[from] bans::SelfBan),
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
    #[error("too many connections from this address")]
    AddressFull,
    #[error("peer table full")]
    TableFull,
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

    /// Whether this node has a history of good answers from the peer.
    fn has_proved_useful(&self) -> bool {
        !self.public_key.is_empty() && self.quality.successful_requests >= USEFUL_AFTER_REQUESTS
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
    /// Open inbound TCP connections, counted apart from the peer table (its own lock).
    limits: Arc<admission::ConnectionLimits>,
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
            limits: Arc::new(admission::ConnectionLimits::new(&config)),
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
}
