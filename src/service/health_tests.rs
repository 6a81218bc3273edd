//! Unit tests of the health policy; readiness on a manual clock at the exact millisecond.

use std::sync::Arc;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::events::Events;
use crate::identity::Identity;
use crate::peers::quality::{QualityBreakdown, rating};
use crate::peers::{CloseOutcome, Direction, VerifiedPeer};
use crate::telemetry::Metrics;

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

/// The grace runs from the moment the last peer went, by the peer domain's clock: ready up to
/// its last millisecond, failing from its end with the reason.
#[tokio::test]
async fn readiness_fails_exactly_when_the_grace_after_the_last_peer_runs_out() {
    let clock = ManualClock::new(1_800_000_000_000);
    let store = crate::store::open_in_memory().await.expect("store");
    let manager = PeerManager::load(
        Arc::new(Identity::generate()),
        Arc::new(Config::defaults().expect("defaults")),
        store.clone(),
        Arc::new(Metrics::new()),
        Arc::new(Events::new()),
        Clock::Manual(clock.clone()),
    )
    .await
    .expect("load");
    let listeners = Listeners::default();
    listeners.peer_started();
    let seeds = vec!["seed.example:5000".to_string()];
    let grace = Duration::from_secs(30);
    let sources = ProbeSources {
        store: &*store,
        manager: &manager,
        listeners: &listeners,
        seeds: &seeds,
        peer_grace: grace,
        started_ms: clock.now_ms(),
    };
    let reasons = || async { probe(&sources, ProbeKind::Readiness).await.reasons };
    let joined_yet = "no peer connected yet (seeds: seed.example:5000)".to_string();
    assert_eq!(reasons().await, vec![joined_yet]);

    let peer = Identity::generate();
    let verified = VerifiedPeer {
        peer_id: peer.peer_id().to_string(),
        public_key: hex::encode(peer.public_key()),
        name: String::new(),
        address: "192.0.2.9:5000".into(),
        software_version: String::new(),
        platform_messages: false,
        short_ids: false,
        platform_address: None,
    };
    let ip = "192.0.2.9".parse().expect("ip");
    let session = manager
        .register_connection(verified, Direction::Inbound, ip, None)
        .expect("registered");
    clock.advance(Duration::from_secs(600));
    assert!(reasons().await.is_empty(), "a connected peer");
    let closed = CloseOutcome::Graceful("bye".into());
    manager.connection_closed(peer.peer_id(), session.conn_id, &closed);

    clock.advance(grace - Duration::from_millis(1));
    assert!(
        reasons().await.is_empty(),
        "ready to the grace's last millisecond"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        reasons().await,
        vec!["no peer connected for 30s (seeds: seed.example:5000)".to_string()]
    );
}
