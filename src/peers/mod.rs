//! The peer domain: every rule about peers. Who may connect, whom to dial and when, what counts
//! as a failure, quality, peer exchange, and bans.
//!
//! Each concern has one owner: the peer table ([`table`]: records, quality, persistence,
//! eviction, exchange), the ban list ([`banlist`] over the pure rules in [`bans`]), the links
//! ([`links`]: live sessions, sends and typed requests), the seeds and dial choice
//! ([`dialing`]) and inbound admission ([`admission`]). They sit behind one lock in
//! [`state`], and [`PeerManager`] ([`manager`]) is the facade the rest of the node calls.
//!
//! The network edge (`rpc/`) reports what it observed (a handshake completed, a heartbeat came
//! back, a connection dropped) and asks for decisions (may this peer in? whom should I dial?);
//! the admin API asks for views and operator actions. Only this node's own observations change
//! a peer's record: what a peer says about a third peer can add an unknown address, never
//! touch an existing record.

pub(crate) mod admission;
pub(crate) mod banlist;
pub mod bans;
mod dialing;
pub(crate) mod discovery;
mod links;
mod manager;
pub(crate) mod manual;
mod platform_message;
pub(crate) mod quality;
mod record;
mod state;
#[cfg(test)]
mod state_props;
mod table;
#[cfg(test)]
mod table_tests;

use std::sync::Arc;

use crate::ledger::{CompactDocket, DocketWithTransactions};
use crate::store::StoreError;
pub use bans::{Ban, BanKind, BanSource, BanTarget};
pub use links::{RequestError, SessionCommand, SessionHandle};
pub use manager::PeerManager;
pub use platform_message::{BROADCAST, PlatformMessage, Recipient};
use quality::QualityBreakdown;

/// Errors of operator actions on peers and bans.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("no peer matches '{0}'")]
    NotFound(String),
    #[error("no ban on '{0}'")]
    NoBan(String),
    /// The text names several peers (as an ID prefix or a name), or several bans.
    #[error("'{text}' matches {total} peers: {}{}; give more of the peer ID", .candidates.join(", "), if .candidates.len() < *.total { ", ..." } else { "" })]
    Ambiguous {
        text: String,
        /// How many matched.
        total: usize,
        /// The first few, as "<ID start> (<name>)".
        candidates: Vec<String>,
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
    /// A platform message (see `crate::messages`), shared by every session it goes out on.
    Platform(Arc<PlatformMessage>),
}

/// Requests one node makes of another.
#[derive(Clone, Debug)]
pub enum PeerRequest {
    /// Dockets `from`, `from + 1`, … (at most `max`, and about `max_bytes` of payloads) with
    /// their transactions.
    Dockets {
        register_id: String,
        from: u64,
        max: u32,
        headers_only: bool,
        max_bytes: u64,
    },
    /// Payloads of announced transactions.
    Transactions {
        register_id: String,
        tx_ids: Vec<[u8; 32]>,
    },
    /// "Dial me back at `address`" (a reachability check).
    DialBack { address: String },
}

/// Answers to [`PeerRequest`]s; `Err` carries the peer's refusal or an answer that does not
/// decode.
#[derive(Clone, Debug)]
pub enum PeerResponse {
    Dockets(Result<Vec<DocketWithTransactions>, RequestError>),
    Transactions(Result<ServedTransactions, RequestError>),
    /// `Ok` when the peer reached this node at the address it was asked to dial.
    DialBack(Result<(), RequestError>),
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
    /// It said in the handshake that it carries platform messages (older nodes do not, and
    /// would count the frame as a protocol violation).
    pub platform_messages: bool,
    /// Where its platform services are served (checked, dialable), if it serves them.
    pub platform_address: Option<String>,
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
    /// While connected: its clock minus this node's, from its last heartbeat.
    pub clock_offset_ms: Option<i64>,
    /// While connected: where it serves the platform's services, as it announced it.
    pub platform_address: Option<String>,
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
