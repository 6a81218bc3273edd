//! Health policy: when the node counts as healthy, degraded or unhealthy, which peers count as
//! healthy, and the figures the health and statistics views report.

use crate::peers::quality::UNKNOWN_RATING;
use crate::peers::{PeerCounts, PeerSnapshot, PeerState};
use crate::store::{StorageHealth, Store};

/// Most peers listed in a [`PeersHealth`].
pub const HEALTH_PEER_LIMIT: usize = 10;

/// The node's overall health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// Storage works and at least one peer is connected.
    Healthy,
    /// Storage works but no peer is connected.
    Degraded,
    /// Storage fails (reads or writes).
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// What `/api/health` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHealth {
    pub status: HealthStatus,
    /// Why storage fails, when it does.
    pub storage_error: Option<String>,
    pub total_peers: usize,
    /// Connected peers.
    pub healthy_peers: usize,
    pub average_latency_ms: Option<f64>,
}

/// The node's health: storage (reads and writes, see `store::health`; a full or read-only
/// disk still reads) and whether any peer is connected.
pub async fn node(counts: &PeerCounts, peers: &[PeerSnapshot], store: &dyn Store) -> NodeHealth {
    let storage_error = match crate::store::health::check(store).await {
        StorageHealth::Ok => None,
        StorageHealth::Failing(reason) => Some(reason),
    };
    let status = match (&storage_error, counts.connected) {
        (Some(_), _) => HealthStatus::Unhealthy,
        (None, 0) => HealthStatus::Degraded,
        (None, _) => HealthStatus::Healthy,
    };
    NodeHealth {
        status,
        storage_error,
        total_peers: counts.known,
        healthy_peers: counts.connected,
        average_latency_ms: average_latency(peers),
    }
}

/// A peer counts as healthy while it is connected.
pub fn is_healthy(peer: &PeerSnapshot) -> bool {
    peer.state == PeerState::Connected
}

/// Peer figures for `/api/peers/stats`.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStats {
    pub total_peers: usize,
    pub healthy_peers: usize,
    pub seed_nodes: usize,
    pub average_latency_ms: Option<f64>,
    pub total_failures: u64,
    /// Peers with a rating (at least one request exchanged).
    pub rated_peers: usize,
    pub excellent_peers: usize,
    pub good_peers: usize,
    pub fair_peers: usize,
    pub poor_peers: usize,
    pub average_quality_score: Option<f64>,
}

pub fn peer_stats(peers: &[PeerSnapshot]) -> PeerStats {
    let rated: Vec<&PeerSnapshot> = peers
        .iter()
        .filter(|p| p.quality.rating != UNKNOWN_RATING)
        .collect();
    let count = |r: &str| rated.iter().filter(|p| p.quality.rating == r).count();
    PeerStats {
        total_peers: peers.len(),
        healthy_peers: peers.iter().filter(|p| is_healthy(p)).count(),
        seed_nodes: peers.iter().filter(|p| p.is_seed).count(),
        average_latency_ms: average_latency(peers),
        total_failures: peers.iter().map(|p| p.failure_count as u64).sum(),
        rated_peers: rated.len(),
        excellent_peers: count("Excellent"),
        good_peers: count("Good"),
        fair_peers: count("Fair"),
        poor_peers: count("Poor"),
        average_quality_score: average(rated.iter().map(|p| p.quality.score)),
    }
}

/// The healthy share of the peer table and the best healthy peers.
#[derive(Clone, Debug)]
pub struct PeersHealth {
    pub total_peers: usize,
    pub healthy_peers: usize,
    /// Healthy peers in per cent of known peers, to two decimals (0 with no peers).
    pub health_percentage: f64,
    /// At most [`HEALTH_PEER_LIMIT`] healthy peers, best quality first.
    pub best: Vec<PeerSnapshot>,
}

pub fn peers_health(peers: Vec<PeerSnapshot>) -> PeersHealth {
    let total_peers = peers.len();
    let mut healthy: Vec<PeerSnapshot> = peers.into_iter().filter(is_healthy).collect();
    healthy.sort_by(|a, b| b.quality.score.total_cmp(&a.quality.score));
    let healthy_peers = healthy.len();
    healthy.truncate(HEALTH_PEER_LIMIT);
    PeersHealth {
        total_peers,
        healthy_peers,
        health_percentage: if total_peers == 0 {
            0.0
        } else {
            (healthy_peers as f64 * 10_000.0 / total_peers as f64).round() / 100.0
        },
        best: healthy,
    }
}

fn average_latency(peers: &[PeerSnapshot]) -> Option<f64> {
    average(peers.iter().filter_map(|p| p.quality.average_latency_ms))
}

/// The mean to four decimals, `None` for no values.
fn average(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| (sum / n as f64 * 10_000.0).round() / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::quality::{QualityBreakdown, rating};

    fn peer(id: usize, state: PeerState, score: f64, requests: u64) -> PeerSnapshot {
        PeerSnapshot {
            peer_id: format!("{id:032x}"),
            name: String::new(),
            address: format!("127.0.0.{id}:5000"),
            state,
            direction: None,
            connected_since_ms: None,
            first_seen_ms: 0,
            last_seen_ms: 0,
            failure_count: id as u32,
            is_seed: id == 1,
            software_version: None,
            quality: QualityBreakdown {
                score,
                rating: if requests == 0 {
                    UNKNOWN_RATING
                } else {
                    rating(score)
                },
                success_rate: 1.0,
                success_points: 0.0,
                average_latency_ms: Some(id as f64),
                min_latency_ms: None,
                max_latency_ms: None,
                latency_score: 0.0,
                latency_points: 0.0,
                validity: 1.0,
                validity_points: 0.0,
                total_requests: requests,
                successful_requests: requests,
                last_penalty: None,
            },
            ban: None,
            advertised: Vec::new(),
        }
    }

    #[test]
    fn connected_peers_are_the_healthy_ones_best_first_and_bounded() {
        let mut peers: Vec<PeerSnapshot> = (1..=HEALTH_PEER_LIMIT + 2)
            .map(|i| peer(i, PeerState::Connected, i as f64, 1))
            .collect();
        peers.push(peer(40, PeerState::Disconnected, 99.0, 1));
        peers.push(peer(41, PeerState::Banned, 99.0, 1));
        let health = peers_health(peers);
        assert_eq!((health.total_peers, health.healthy_peers), (14, 12));
        assert_eq!(health.health_percentage, 85.71);
        assert_eq!(health.best.len(), HEALTH_PEER_LIMIT);
        assert_eq!(health.best[0].quality.score, 12.0);
        assert!(health.best.iter().all(is_healthy));
        assert_eq!(peers_health(Vec::new()).health_percentage, 0.0);
    }

    #[test]
    fn stats_count_ratings_of_peers_with_requests_only() {
        let peers = vec![
            peer(1, PeerState::Connected, 90.0, 5),
            peer(2, PeerState::Connected, 65.0, 5),
            peer(3, PeerState::Disconnected, 10.0, 5),
            peer(4, PeerState::Disconnected, 100.0, 0),
        ];
        let s = peer_stats(&peers);
        assert_eq!((s.total_peers, s.healthy_peers, s.seed_nodes), (4, 2, 1));
        assert_eq!(s.total_failures, 10);
        assert_eq!(s.rated_peers, 3);
        assert_eq!(
            (s.excellent_peers, s.good_peers, s.fair_peers, s.poor_peers),
            (1, 1, 0, 1)
        );
        assert_eq!(s.average_quality_score, Some(55.0));
        assert_eq!(s.average_latency_ms, Some(2.5));
    }

    #[test]
    fn averages_round_to_four_decimals_and_need_values() {
        assert_eq!(average([1.0, 2.0, 2.0].into_iter()), Some(1.6667));
        assert_eq!(average(std::iter::empty()), None);
    }
}
