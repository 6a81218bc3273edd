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
pub(crate) mod quality;
mod record;
mod state;
#[cfg(test)]
mod state_props;
mod table;
#[cfg(test)]
mod table_tests;

use crate::protocol::RegisterHeight;
use crate::store::StoreError;
pub use bans::{Ban, BanKind, BanSource, BanTarget};
pub use links::{SessionCommand, SessionHandle};
pub use manager::PeerManager;
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
    /// It said in the handshake that it speaks short transaction IDs (`rpc::SHORT_TX_IDS`).
    pub short_ids: bool,
    /// Where its platform services are served (checked, dialable), if it serves them.
    pub platform_address: Option<String>,
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
