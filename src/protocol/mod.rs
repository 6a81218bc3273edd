//! The peer protocol in one place: the messages as the node speaks them (one-way messages,
//! requests and their answers), the protobuf code generated from `proto/sorcha/peer/v1`
//! (`pb`), and the mapping between the two, where what a peer sends is checked for shape
//! (`convert.rs`). The session edge (`rpc/`) carries them; the domain sends and answers them.

pub mod convert;
mod platform_message;
pub mod tx_refs;

pub use platform_message::{BROADCAST, MAX_PAYLOAD_BYTES, PlatformMessage, Recipient};

use std::sync::Arc;
use std::time::Duration;

use crate::ledger::{CompactDocket, DocketWithTransactions, ShortId, short_id};

/// Generated protobuf and gRPC code for `proto/sorcha/peer/v1`.
// tonic-build writes each service's routing as one long match: generated, not ours to split.
#[allow(clippy::too_many_lines)]
pub mod pb {
    tonic::include_proto!("sorcha.peer.v1");
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
    /// Payloads of transactions, by whole ID or, where only that was announced, by short ID.
    Transactions {
        register_id: String,
        tx_ids: Vec<TxRef>,
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
    /// Transactions asked for that the peer does not hold.
    pub missing: Vec<TxRef>,
}

/// A transaction as a peer named it: by its whole ID, or by its short ID (see
/// [`tx_refs`]). Both name one transaction: two payloads that share a short ID take about
/// 2^64 hashes to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxRef {
    Full([u8; 32]),
    Short(ShortId),
}

impl TxRef {
    pub fn short(&self) -> ShortId {
        match self {
            TxRef::Full(id) => short_id(id),
            TxRef::Short(short) => *short,
        }
    }

    /// The whole ID, when the peer gave it.
    pub fn full(&self) -> Option<[u8; 32]> {
        match self {
            TxRef::Full(id) => Some(*id),
            TxRef::Short(_) => None,
        }
    }
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

/// An address handed over in peer exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct KnownAddress {
    pub peer_id: String,
    pub address: String,
    pub last_seen_ms: i64,
}

/// Why a request to a peer got no usable answer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("peer {0} is not connected")]
    NotConnected(String),
    #[error("peer {0} disconnected")]
    Disconnected(String),
    #[error("peer {0} disconnected before answering")]
    NoAnswer(String),
    #[error("peer {peer} did not answer within {timeout:?}")]
    TimedOut { peer: String, timeout: Duration },
    /// The peer answered with a refusal (its text, cut to a bounded length).
    #[error("{0}")]
    Refused(String),
    /// The peer's answer does not decode.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
}

impl RequestError {
    /// Whether the failure is the peer's (it went away or stayed silent after taking the
    /// request), as opposed to there being no session to ask.
    pub fn counts_against_peer(&self) -> bool {
        matches!(
            self,
            RequestError::NoAnswer(_) | RequestError::TimedOut { .. }
        )
    }
}
