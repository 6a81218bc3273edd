//! The gauges that mirror the node's state, refreshed when `/metrics` is scraped (counters are
//! counted where things happen; gauges are read from the owners here, so no domain keeps
//! metrics up to date on a timer).

use crate::peers::{PeerManager, PeerState};
use crate::replication::Registers;
use crate::telemetry::Metrics;

/// Sets the peer, connection and ban gauges from the peer table, and the registers' lag.
pub(crate) fn refresh(peers: &PeerManager, registers: &Registers, metrics: &Metrics) {
    let c = peers.counts();
    for (state, n) in [
        (PeerState::Connected, c.connected),
        (PeerState::Connecting, c.connecting),
        (PeerState::Disconnected, c.disconnected),
        (PeerState::Banned, c.banned),
    ] {
        metrics
            .peers
            .get_or_create(&vec![("state", state.as_str())])
            .set(n as i64);
    }
    for (direction, n) in [("inbound", c.inbound), ("outbound", c.outbound)] {
        metrics
            .connections
            .get_or_create(&vec![("direction", direction)])
            .set(n as i64);
    }
    metrics.bans_active.set(c.bans as i64);
    registers.refresh_metrics();
}
