//! Health policy: when the node counts as healthy or unhealthy and what it warns of, when it is ready
//! for traffic (`/readyz`), which peers count as healthy, and the figures the health and
//! statistics views report.

use std::sync::Mutex;
use std::time::Duration;

use crate::peers::quality::UNKNOWN_RATING;
use crate::peers::{PeerCounts, PeerManager, PeerSnapshot, PeerState};
use crate::store::{StorageHealth, Store};

/// Most peers listed in a [`PeersHealth`].
pub(crate) const HEALTH_PEER_LIMIT: usize = 10;

/// The node's overall health, as the platform reads it: whether the service works. What else
/// needs the operator is in [`NodeHealth::warnings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HealthStatus {
    /// Storage works (a node with no peer yet, or with warnings, still serves).
    Healthy,
    /// Storage fails (reads or writes).
    Unhealthy,
}

impl HealthStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// The warning a node with no connected peer gives.
pub(crate) const NO_PEER_WARNING: &str = "no peer is connected: nothing is replicated or gossiped";

/// What `/api/health` reports.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NodeHealth {
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
pub(crate) struct LatencyAverage {
    /// Milliseconds, to four decimals; `None` when `peers` is 0.
    pub mean_ms: Option<f64>,
    /// The peers it is the mean of.
    pub peers: usize,
}

/// The node's health: storage (reads and writes, see `store::health`; a full or read-only
/// disk still reads), and the standing `warnings` with one more when no peer is connected.
pub(crate) async fn node(
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
pub(crate) enum ProbeKind {
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
pub(crate) struct ProbeSources<'a> {
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
pub(crate) struct Probe {
    pub ok: bool,
    /// Why storage fails, when it does: one check serves the probe and the storage fields.
    pub storage_error: Option<String>,
    pub readiness: Readiness,
    /// Why the probe fails, one entry per failing counted check.
    pub reasons: Vec<String>,
}

/// Checks storage now and decides [`readiness`] from it, the peers and the listeners; `kind`
/// says which checks count.
pub(crate) async fn probe(sources: &ProbeSources<'_>, kind: ProbeKind) -> Probe {
    let storage_error = storage_error(sources.store).await;
    let peers = sources.manager.list();
    let readiness = readiness(&ReadinessInputs {
        storage_error: storage_error.clone(),
        peer_listener: sources.listeners.peer(),
        seeds: sources.seeds,
        connected_peers: sources.manager.counts().connected,
        last_connected_ms: last_connected_ms(&peers, sources.started_ms),
        // The peers' times come from the manager's clock: "now" must too.
        now_ms: sources.manager.now_ms(),
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
pub(crate) struct ReadinessInputs<'a> {
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
pub(crate) struct Check {
    /// `storage`, `listeners` or `peers`.
    pub name: &'static str,
    /// `None` when it passes, else why not.
    pub problem: Option<String>,
}

/// `/readyz`: ready when every check passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub checks: Vec<Check>,
}

impl Readiness {
    #[cfg(test)]
    pub(crate) fn is_ready(&self) -> bool {
        self.checks.iter().all(|c| c.problem.is_none())
    }

    /// Why a probe of `kind` fails, one line per failing check it counts (empty: it passes).
    pub(crate) fn failing(&self, kind: ProbeKind) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| kind.counts(c.name))
            .filter_map(|c| c.problem.clone())
            .collect()
    }

    /// Why the node is not ready, one line per failing check.
    #[cfg(test)]
    pub(crate) fn reasons(&self) -> Vec<String> {
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
pub(crate) fn readiness(inputs: &ReadinessInputs<'_>) -> Readiness {
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
pub(crate) fn last_connected_ms(peers: &[PeerSnapshot], started_ms: i64) -> Option<i64> {
    peers
        .iter()
        .map(|p| p.last_seen_ms)
        .filter(|&seen| seen >= started_ms)
        .max()
}

/// A peer counts as healthy while it is connected.
pub(crate) fn is_healthy(peer: &PeerSnapshot) -> bool {
    peer.state == PeerState::Connected
}

/// Peer figures for `/api/peers/stats`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PeerStats {
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

pub(crate) fn peer_stats(peers: &[PeerSnapshot]) -> PeerStats {
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
pub(crate) struct PeersHealth {
    pub total_peers: usize,
    pub healthy_peers: usize,
    /// Healthy peers in per cent of known peers, to two decimals (0 with no peers).
    pub health_percentage: f64,
    /// At most [`HEALTH_PEER_LIMIT`] healthy peers, best quality first.
    pub best: Vec<PeerSnapshot>,
}

pub(crate) fn peers_health(peers: Vec<PeerSnapshot>) -> PeersHealth {
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
#[path = "health_tests.rs"]
mod tests;
