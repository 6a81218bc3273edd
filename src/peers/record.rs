//! One peer's record: what this node knows about a peer (persisted as a [`PeerRow`]) plus the
//! memory-only facts about its current dial and its last advertisement. A plain value; the
//! collection of records and every rule over it live in [`super::table::PeerTable`].

use std::net::IpAddr;

use super::bans;
use super::quality::{PenaltyEvent, QualityTracker};
use crate::protocol::RegisterHeight;
use crate::store::PeerRow;

/// Successful requests after which a peer counts as useful, so a full peer table forgets it
/// only after every peer without such a history.
const USEFUL_AFTER_REQUESTS: u64 = 20;

/// One peer's record.
#[derive(Clone, Debug)]
pub(super) struct Peer {
    pub peer_id: String,
    pub public_key: String,
    pub name: String,
    pub address: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub is_seed: bool,
    pub failure_count: u32,
    pub quality: QualityTracker,
    pub software_version: Option<String>,
    /// The address its last connection came from (memory only).
    pub remote_ip: Option<IpAddr>,
    /// Earliest time to dial it again (memory only).
    pub next_dial_ms: i64,
    /// A dial to it is in progress (memory only).
    pub dialing: bool,
    /// Public registers it advertised in its last heartbeat (memory only).
    pub advertised: Vec<RegisterHeight>,
    /// When it recently served data that failed verification (memory only).
    pub verification_failures: Vec<i64>,
    /// Its clock minus ours, from the send time in its last heartbeat (memory only; includes
    /// the one-way delay, milliseconds on a working link).
    pub clock_offset_ms: Option<i64>,
    /// Where it serves the platform's services, as its last handshake said (memory only).
    pub platform_address: Option<String>,
}

impl Peer {
    pub(super) fn new(
        peer_id: String,
        address: String,
        first_seen_ms: i64,
        last_seen_ms: i64,
    ) -> Peer {
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
            clock_offset_ms: None,
            platform_address: None,
        }
    }

    pub(super) fn from_row(row: PeerRow) -> Peer {
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

    pub(super) fn to_row(&self) -> PeerRow {
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
            success_rate: self.quality.success_rate(),
            avg_latency_ms: latency.map(|l| l.1),
            min_latency_ms: latency.map(|l| l.0),
            max_latency_ms: latency.map(|l| l.2),
            penalty: self.quality.penalty,
            penalty_updated_ms: self.quality.penalty_updated_ms,
            last_penalty_reason: self.quality.last_penalty.as_ref().map(|p| p.reason.clone()),
            last_penalty_at_ms: self.quality.last_penalty.as_ref().map(|p| p.at_ms),
        }
    }

    /// A request to the peer succeeded (with its round trip in ms when measured).
    pub(super) fn request_succeeded(&mut self, rtt_ms: Option<f64>, now_ms: i64) {
        self.failure_count = 0;
        self.last_seen_ms = now_ms;
        self.quality.record_success(rtt_ms);
    }

    /// A request to the peer (or a dial, or a session) failed; returns the failures in a row.
    pub(super) fn request_failed(&mut self) -> u32 {
        self.failure_count += 1;
        self.quality.record_failure();
        self.failure_count
    }

    /// Its session ended at `now_ms` (`failed`: by its fault); dial it again at `retry_ms`.
    pub(super) fn disconnected(&mut self, failed: bool, now_ms: i64, retry_ms: i64) {
        self.last_seen_ms = now_ms;
        if failed {
            self.request_failed();
        }
        self.next_dial_ms = retry_ms;
    }

    /// A dial to it ended without a session; dial it again at `retry_ms`.
    pub(super) fn dial_ended(&mut self, retry_ms: i64) {
        self.dialing = false;
        self.next_dial_ms = retry_ms;
    }

    /// A fresh start (operator reset): no failures, no penalties, dial at once.
    pub(super) fn reset(&mut self) {
        self.failure_count = 0;
        self.quality.clear_penalties();
        self.next_dial_ms = 0;
    }

    /// Whether this node has a history of good answers from the peer.
    pub(super) fn has_proved_useful(&self) -> bool {
        !self.public_key.is_empty() && self.quality.successful_requests >= USEFUL_AFTER_REQUESTS
    }

    /// Every IP this peer is known by: its announced address and where it last connected from.
    pub(super) fn ips(&self) -> Vec<IpAddr> {
        bans::address_ip(&self.address)
            .into_iter()
            .chain(self.remote_ip)
            .collect()
    }
}
