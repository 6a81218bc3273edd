//! Peer liveness: when a session's silence ends it, and what breaking the protocol costs a
//! peer. The session (`rpc::session`) keeps the counters and reports each event here.

use std::time::Duration;

use crate::config::Config;
use crate::peers::PeerManager;

/// Validity penalty for a frame that breaks the protocol after the handshake.
pub(crate) const PROTOCOL_VIOLATION_PENALTY: f64 = 0.2;

/// What to do with a session after a heartbeat went unanswered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    /// Say goodbye with this reason and count the session as failed.
    Disconnect(String),
}

/// A heartbeat went unanswered, the `missed`-th in a row. It counts as a failed request; the
/// session ends when `missed_heartbeats` went unanswered in a row or the peer has failed
/// `max_failures` requests in a row.
pub(crate) fn heartbeat_missed(
    peers: &PeerManager,
    config: &Config,
    peer_id: &str,
    missed: u32,
) -> Verdict {
    let too_many_failures = peers.record_failure(peer_id, "missed heartbeat");
    if missed >= config.missed_heartbeats || too_many_failures {
        Verdict::Disconnect(format!("{missed} heartbeats unanswered"))
    } else {
        Verdict::Keep
    }
}

/// How long a peer-exchange request may stay unanswered: as long as the heartbeats a session
/// may miss.
pub(crate) fn exchange_deadline(config: &Config) -> Duration {
    // Saturating: both numbers are operator input.
    config
        .heartbeat_interval
        .saturating_mul(config.missed_heartbeats)
}

/// A peer-exchange request went unanswered past [`exchange_deadline`]: a failed request.
pub(crate) fn exchange_unanswered(peers: &PeerManager, peer_id: &str) {
    peers.record_failure(peer_id, "peer exchange unanswered");
}

/// The peer sent a frame that breaks the protocol: lower its validity.
pub(crate) fn protocol_violation(peers: &PeerManager, peer_id: &str, what: &str) {
    peers.penalize(
        peer_id,
        PROTOCOL_VIOLATION_PENALTY,
        &format!("protocol violation: {what}"),
    );
}
