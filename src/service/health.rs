//! Health policy: when the node counts as healthy or unhealthy and what it warns of, when it is ready
//! for traffic (`/readyz`), which peers count as healthy, and the figures the health and
//! statistics views report.

use std::sync::Mutex;
use std::time::Duration;

use crate::clock::now_ms;
use crate::peers::quality::UNKNOWN_RATING;
use crate::peers::{PeerCounts, PeerManager, PeerSnapshot, PeerState};
use crate::store::{StorageHealth, Store};

/// Most peers listed in a [`PeersHealth`].
pub const HEALTH_PEER_LIMIT: usize = 10;

/// The node's overall health, as the platform reads it: whether the service works. What else
/// needs the operator is in [`NodeHealth::warnings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// Storage works (a node with no peer yet, or with warnings, still serves).
    Healthy,
    /// Storage fails (reads or writes).
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// The warning a node with no connected peer gives.
pub const NO_PEER_WARNING: &str = "no peer is connected: nothing is replicated or gossiped";

/// What `/api/health` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHealth {
    pub status: HealthStatus,
    /// Why storage fails, when it does.
    pub storage_error: Option<String>,
    /// What else needs the operator while the node works.
    pub warnings: Vec<String>,
    pub total_peers: usize,
    /// Connected peers.
    pub healthy_peers: usize,
    pub latency: LatencyAverage,
}

/// The mean round trip over the connected peers with a figure.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencyAverage {
    /// Milliseconds, to four decimals; `None` when `peers` is 0.
    pub mean_ms: Option<f64>,
    /// The peers it is the mean of.
    pub peers: usize,
}

/// The node's health: storage (reads and writes, see `store::health`; a full or read-only
/// disk still reads), and the standing `warnings` with one more when no peer is connected.
pub async fn node(
    counts: &PeerCounts,
    peers: &[PeerSnapshot],
    store: &dyn Store,
    mut warnings: Vec<String>,
) -> NodeHealth {
    let storage_error = storage_error(store).await;
    let status = match storage_error {
        Some(_) => HealthStatus::Unhealthy,
        None => HealthStatus::Healthy,
    };
    if counts.connected == 0 {
        warnings.insert(0, NO_PEER_WARNING.to_string());
    }
    NodeHealth {
        status,
        storage_error,
        warnings,
        total_peers: counts.known,
        healthy_peers: counts.connected,
        latency: average_latency(peers),
    }
}

/// Storage checked now (see `store::health`): `None` while it takes reads and writes, else
/// why not.
async fn storage_error(store: &dyn Store) -> Option<String> {
    match crate::store::health::check(store).await {
        StorageHealth::Ok => None,
        StorageHealth::Failing(reason) => Some(reason),
    }
}

/// Which checks a probe counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// `/readyz` and `status`: every check.
    Readiness,
    /// The platform gateway's health check: storage and listeners; a node with no peer yet is
    /// still a working service.
    PlatformHealth,
}

impl ProbeKind {
    fn counts(self, check: &str) -> bool {
        match self {
            ProbeKind::Readiness => true,
            ProbeKind::PlatformHealth => check != "peers",
        }
    }
}

/// Where a probe reads the node from.
pub struct ProbeSources<'a> {
    pub store: &'a dyn Store,
    pub manager: &'a PeerManager,
    pub listeners: &'a Listeners,
    pub seeds: &'a [String],
    /// `readiness_peer_grace`.
    pub peer_grace: Duration,
    /// Unix ms at start (peers seen before it do not count).
    pub started_ms: i64,
}

/// A probe's outcome: every check (counted or not), and whether the counted ones pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub ok: bool,
    /// Why storage fails, when it does: one check serves the probe and the storage fields.
    pub storage_error: Option<String>,
    pub readiness: Readiness,
    /// Why the probe fails, one entry per failing counted check.
    pub reasons: Vec<String>,
}

/// Checks storage now and decides [`readiness`] from it, the peers and the listeners; `kind`
/// says which checks count.
pub async fn probe(sources: &ProbeSources<'_>, kind: ProbeKind) -> Probe {
    let storage_error = storage_error(sources.store).await;
    let peers = sources.manager.list();
    let readiness = readiness(&ReadinessInputs {
        storage_error: storage_error.clone(),
        peer_listener: sources.listeners.peer(),
        seeds: sources.seeds,
        connected_peers: sources.manager.counts().connected,
        last_connected_ms: last_connected_ms(&peers, sources.started_ms),
        now_ms: now_ms(),
        peer_grace: sources.peer_grace,
    });
    let reasons = readiness.failing(kind);
    Probe {
        ok: reasons.is_empty(),
        reasons,
        storage_error,
        readiness,
    }
}

/// Where one of the node's servers is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// The node has not finished starting.
    Starting,
    Serving,
    /// It stopped: the node is shutting down, or the server failed (the reason says which).
    Stopped(String),
}

/// The state of the node's listeners, kept by the node as its servers start and stop and read
/// by `/readyz`.
#[derive(Debug)]
pub struct Listeners {
    peer: Mutex<ServerState>,
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            peer: Mutex::new(ServerState::Starting),
        }
    }
}

impl Listeners {
    pub fn set_peer(&self, state: ServerState) {
        *self.peer.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    /// Marks the peer listener serving, unless it stopped already (a shutdown during start-up).
    pub fn peer_started(&self) {
        let mut state = self.peer.lock().unwrap_or_else(|e| e.into_inner());
        if *state == ServerState::Starting {
            *state = ServerState::Serving;
        }
    }

    pub fn peer(&self) -> ServerState {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What readiness is decided from.
#[derive(Clone, Debug)]
pub struct ReadinessInputs<'a> {
    /// Why storage fails, when it does (see `store::health`).
    pub storage_error: Option<String>,
    pub peer_listener: ServerState,
    pub seeds: &'a [String],
    pub connected_peers: usize,
    /// The last time (unix ms) this node was connected to a peer since it started, if ever.
    pub last_connected_ms: Option<i64>,
    pub now_ms: i64,
    /// How long the node stays ready after its last peer went (`readiness_peer_grace`).
    pub peer_grace: Duration,
}

/// One readiness check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// `storage`, `listeners` or `peers`.
    pub name: &'static str,
    /// `None` when it passes, else why not.
    pub problem: Option<String>,
}

/// `/readyz`: ready when every check passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|c| c.problem.is_none())
    }

    /// Why a probe of `kind` fails, one line per failing check it counts (empty: it passes).
    pub fn failing(&self, kind: ProbeKind) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| kind.counts(c.name))
            .filter_map(|c| c.problem.clone())
            .collect()
    }

    /// Why the node is not ready, one line per failing check.
    pub fn reasons(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| c.problem.clone())
            .collect()
    }
}

/// Ready for traffic when storage takes reads and writes, the peer listener is serving, and,
/// when seeds are configured, the node is in the network: a peer is connected, or one was
/// within `peer_grace` (a peer that restarts does not take the node out of rotation). A node
/// with seeds is not ready until its first peer connects: until then it has not joined.
pub fn readiness(inputs: &ReadinessInputs<'_>) -> Readiness {
    let storage = inputs
        .storage_error
        .as_ref()
        .map(|reason| format!("storage failing: {reason}"));
    let listeners = match &inputs.peer_listener {
        ServerState::Serving => None,
        ServerState::Starting => Some("the node is still starting".to_string()),
        ServerState::Stopped(reason) => Some(format!("the peer listener is down: {reason}")),
    };
    let peers = if inputs.seeds.is_empty() || inputs.connected_peers > 0 {
        None
    } else {
        let seeds = inputs.seeds.join(", ");
        match inputs.last_connected_ms {
            None => Some(format!("no peer connected yet (seeds: {seeds})")),
            Some(last) => {
                let gone = Duration::from_millis(inputs.now_ms.saturating_sub(last).max(0) as u64);
                (gone >= inputs.peer_grace).then(|| {
                    format!(
                        "no peer connected for {} (seeds: {seeds})",
                        crate::clock::format_duration(Duration::from_secs(gone.as_secs()))
                    )
                })
            }
        }
    };
    Readiness {
        checks: vec![
            Check {
                name: "storage",
                problem: storage,
            },
            Check {
                name: "listeners",
                problem: listeners,
            },
            Check {
                name: "peers",
                problem: peers,
            },
        ],
    }
}

/// The last time (unix ms) this node was connected to a peer since `started_ms`: a peer's
/// last-seen time is "now" while it is connected and the moment it went when it disconnects
/// (peers learnt from others carry times no later than the exchange that brought them, which
/// needed a connection).
pub fn last_connected_ms(peers: &[PeerSnapshot], started_ms: i64) -> Option<i64> {
    peers
        .iter()
        .map(|p| p.last_seen_ms)
        .filter(|&seen| seen >= started_ms)
        .max()
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
    pub latency: LatencyAverage,
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
        latency: average_latency(peers),
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

/// Over connected peers only: a latency is a figure of now.
fn average_latency(peers: &[PeerSnapshot]) -> LatencyAverage {
    let figures: Vec<f64> = peers
        .iter()
        .filter(|p| is_healthy(p))
        .filter_map(|p| p.quality.average_latency_ms)
        .collect();
    LatencyAverage {
        mean_ms: average(figures.iter().copied()),
        peers: figures.len(),
    }
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
            clock_offset_ms: None,
            platform_address: None,
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
                recent_requests: requests.min(20) as u32,
                recent_successful_requests: requests.min(20) as u32,
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
        // Latency is a figure of now: the disconnected peers' last figures are left out.
        assert_eq!(
            s.latency,
            LatencyAverage {
                mean_ms: Some(1.5),
                peers: 2
            }
        );
        assert_eq!(peer_stats(&[]).latency, LatencyAverage::default());
    }

    fn inputs(seeds: &[String]) -> ReadinessInputs<'_> {
        ReadinessInputs {
            storage_error: None,
            peer_listener: ServerState::Serving,
            seeds,
            connected_peers: 0,
            last_connected_ms: None,
            now_ms: 100_000,
            peer_grace: Duration::from_secs(30),
        }
    }

    #[test]
    fn readiness_names_each_failing_check() {
        let none: Vec<String> = Vec::new();
        assert!(
            readiness(&inputs(&none)).is_ready(),
            "no seeds: no peer needed"
        );

        let mut i = inputs(&none);
        i.storage_error = Some("database or disk is full".into());
        i.peer_listener = ServerState::Stopped("shutting down".into());
        let r = readiness(&i);
        assert!(!r.is_ready());
        assert_eq!(
            r.reasons(),
            vec![
                "storage failing: database or disk is full".to_string(),
                "the peer listener is down: shutting down".to_string()
            ]
        );
        i.storage_error = None;
        i.peer_listener = ServerState::Starting;
        assert_eq!(
            readiness(&i).reasons(),
            vec!["the node is still starting".to_string()]
        );
    }

    #[test]
    fn with_seeds_a_peer_is_needed_after_a_grace() {
        let seeds = vec!["a.example:5000".to_string(), "b.example:5000".to_string()];
        let mut i = inputs(&seeds);
        assert_eq!(
            readiness(&i).reasons(),
            vec!["no peer connected yet (seeds: a.example:5000, b.example:5000)".to_string()]
        );
        i.connected_peers = 1;
        assert!(readiness(&i).is_ready());
        // The last peer went 10 s ago: within the 30 s grace.
        i.connected_peers = 0;
        i.last_connected_ms = Some(90_000);
        assert!(readiness(&i).is_ready());
        i.last_connected_ms = Some(40_000);
        assert_eq!(
            readiness(&i).reasons(),
            vec!["no peer connected for 1m (seeds: a.example:5000, b.example:5000)".to_string()]
        );
        i.peer_grace = Duration::ZERO;
        i.last_connected_ms = Some(100_000);
        assert!(!readiness(&i).is_ready(), "a zero grace: not ready at once");
    }

    #[test]
    fn the_platform_health_probe_does_not_count_peers() {
        let seeds = vec!["a.example:5000".to_string()];
        let mut i = inputs(&seeds);
        let r = readiness(&i);
        assert_eq!(r.failing(ProbeKind::Readiness).len(), 1, "no peer yet");
        assert!(r.failing(ProbeKind::PlatformHealth).is_empty());
        i.storage_error = Some("disk full".into());
        let r = readiness(&i);
        assert_eq!(
            r.failing(ProbeKind::PlatformHealth),
            vec!["storage failing: disk full".to_string()]
        );
        assert_eq!(r.failing(ProbeKind::Readiness), r.reasons());
    }

    #[test]
    fn last_connection_counts_only_since_start() {
        let mut old = peer(1, PeerState::Disconnected, 50.0, 1);
        old.last_seen_ms = 500;
        let mut recent = peer(2, PeerState::Disconnected, 50.0, 1);
        recent.last_seen_ms = 2_000;
        assert_eq!(last_connected_ms(&[old.clone()], 1_000), None);
        assert_eq!(last_connected_ms(&[old, recent], 1_000), Some(2_000));
    }

    #[test]
    fn averages_round_to_four_decimals_and_need_values() {
        assert_eq!(average([1.0, 2.0, 2.0].into_iter()), Some(1.6667));
        assert_eq!(average(std::iter::empty()), None);
    }
}
