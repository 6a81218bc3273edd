//! The JSON the platform's own clients read (its UI's admin models, its CLI, the gateway), held
//! against a model of what they declare (`reference/platform-rest-shapes.md`): System.Text.Json
//! ignores unknown fields but throws on a `null` or a fraction in an integer field and on an enum
//! value it does not know. Checked on a lone node, on two connected nodes with a replicated
//! register, and after a peer left.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin_auth::call;
use crate::common::{PATIENCE, TestCluster, TestNode, wait_until};

/// What a platform client declares for a field.
enum Kind {
    /// `int`/`long`: a JSON integer, never null.
    Int,
    /// `double`: any JSON number, never null.
    Number,
    Bool,
    Text,
    /// An enum: one of these names.
    OneOf(&'static [&'static str]),
    Object(&'static [(&'static str, Kind)]),
    List(&'static [(&'static str, Kind)]),
}
use Kind::*;

const SYNC_STATES: &[&str] = &[
    "Subscribing",
    "Syncing",
    "FullyReplicated",
    "Active",
    "Error",
];

const PEER: &[(&str, Kind)] = &[
    ("peerId", Text),
    ("address", Text),
    ("port", Int),
    ("firstSeen", Text),
    ("lastSeen", Text),
    ("failureCount", Int),
    ("isSeedNode", Bool),
    ("averageLatencyMs", Int),
    ("isBanned", Bool),
    ("qualityScore", Number),
    ("qualityRating", Text),
    ("advertisedRegisterCount", Int),
    (
        "advertisedRegisters",
        List(&[
            ("registerId", Text),
            ("syncState", OneOf(SYNC_STATES)),
            ("latestVersion", Int),
            ("isPublic", Bool),
        ]),
    ),
];

const QUALITY: &[(&str, Kind)] = &[
    ("peerId", Text),
    ("averageLatencyMs", Int),
    ("minLatencyMs", Int),
    ("maxLatencyMs", Int),
    ("successRate", Number),
    ("totalRequests", Int),
    ("successfulRequests", Int),
    ("failedRequests", Int),
    ("qualityScore", Number),
    ("qualityRating", Text),
];

const STATS: &[(&str, Kind)] = &[
    ("timestamp", Text),
    (
        "peerStats",
        Object(&[
            ("totalPeers", Int),
            ("healthyPeers", Int),
            ("unhealthyPeers", Int),
            ("seedNodes", Int),
            ("averageLatencyMs", Number),
            ("totalFailures", Int),
        ]),
    ),
    (
        "qualityStats",
        Object(&[
            ("totalTrackedPeers", Int),
            ("excellentPeers", Int),
            ("goodPeers", Int),
            ("fairPeers", Int),
            ("poorPeers", Int),
            ("averageQualityScore", Number),
        ]),
    ),
    (
        "queueStats",
        Object(&[("queueSize", Int), ("isEmpty", Bool)]),
    ),
    (
        "circuitBreakerStats",
        Object(&[
            ("totalCircuitBreakers", Int),
            ("openCircuits", Int),
            ("halfOpenCircuits", Int),
            ("closedCircuits", Int),
        ]),
    ),
];

const PEERS_HEALTH: &[(&str, Kind)] = &[
    ("totalPeers", Int),
    ("healthyPeers", Int),
    ("unhealthyPeers", Int),
    ("healthPercentage", Number),
    (
        "peers",
        List(&[
            ("peerId", Text),
            ("address", Text),
            ("port", Int),
            ("lastSeen", Text),
            ("averageLatencyMs", Int),
        ]),
    ),
];

const HEALTH: &[(&str, Kind)] = &[
    // The UI shows anything else as "Offline" and hides the panel.
    ("status", OneOf(&["healthy"])),
    ("service", OneOf(&["peer-service"])),
    ("timestamp", Text),
    ("version", Text),
    ("uptime", Text),
    (
        "metrics",
        Object(&[
            ("totalPeers", Int),
            ("healthyPeers", Int),
            ("unhealthyPeers", Int),
            ("averageLatencyMs", Number),
            ("queueSize", Int),
        ]),
    ),
];

const SUBSCRIPTION: &[(&str, Kind)] = &[
    ("registerId", Text),
    ("mode", OneOf(&["FullReplica", "ForwardOnly"])),
    ("syncState", OneOf(SYNC_STATES)),
    ("lastSyncedDocketVersion", Int),
    ("lastSyncedTransactionVersion", Int),
    ("totalDocketsInChain", Int),
    ("syncProgressPercent", Number),
    ("canParticipateInValidation", Bool),
    ("isReceiving", Bool),
    ("consecutiveFailures", Int),
];

const CONNECTED: &[(&str, Kind)] = &[
    ("connectedPeerCount", Int),
    (
        "peers",
        List(&[
            ("peerId", Text),
            ("address", Text),
            ("port", Int),
            ("lastSeen", Text),
            ("averageLatencyMs", Int),
            ("isSeedNode", Bool),
        ]),
    ),
];

/// Every way `value` would make a client declaring `model` throw, by field path.
fn breaks(value: &Value, model: &[(&str, Kind)], at: &str, out: &mut Vec<String>) {
    for (name, kind) in model {
        let path = format!("{at}.{name}");
        let field = &value[*name];
        let fine = match kind {
            Int => field.is_i64() || field.is_u64(),
            Number => field.is_number(),
            Bool => field.is_boolean(),
            Text => field.is_string(),
            OneOf(names) => field.as_str().is_some_and(|v| names.contains(&v)),
            Object(inner) => {
                breaks(field, inner, &path, out);
                field.is_object()
            }
            List(inner) => {
                for (i, item) in field.as_array().into_iter().flatten().enumerate() {
                    breaks(item, inner, &format!("{path}[{i}]"), out);
                }
                field.is_array()
            }
        };
        if !fine {
            out.push(format!("{path} = {field}"));
        }
    }
}

/// Reads `path` on `node` with its token and checks every item (or the object) against `model`.
async fn read_as_platform(node: &TestNode, path: &str, model: &[(&str, Kind)]) -> Value {
    let (status, body) = call(node, Method::GET, path, Some(&node.token), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let mut found = Vec::new();
    match body.as_array() {
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                breaks(item, model, &format!("{path}[{i}]"), &mut found);
            }
        }
        None => breaks(&body, model, path, &mut found),
    }
    assert!(
        found.is_empty(),
        "the platform's clients throw on {found:?}"
    );
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn the_platform_clients_read_every_field_they_declare() {
    let mut net = TestCluster::new();
    let a = net.start(|c| c.name = "origin".into()).await;

    // A lone node works: `healthy`, with the missing peer as a warning, and no nulls in the
    // figures that need peers.
    let health = read_as_platform(&a, "/api/health", HEALTH).await;
    assert!(
        health["warnings"][0]
            .as_str()
            .is_some_and(|w| w.contains("no peer")),
        "{health}"
    );
    let uptime = health["uptime"].as_str().unwrap_or_default();
    let (days, clock) = uptime.split_once('.').unwrap_or_default();
    assert!(
        days.parse::<u64>().is_ok() && clock.len() == 8 && clock.split(':').count() == 3,
        "d.hh:mm:ss: {uptime}"
    );
    let stats = read_as_platform(&a, "/api/peers/stats", STATS).await;
    assert_eq!(stats["peerStats"]["latencyPeers"], 0, "{stats}");
    assert_eq!(
        stats["queueStats"],
        json!({"queueSize": 0, "isEmpty": true})
    );

    a.client
        .create_register("shapes", true)
        .await
        .expect("create");
    a.client
        .submit("shapes", b"{\"n\":1}".to_vec())
        .await
        .expect("submit");
    let seed = a.seed();
    let mut b = net.start(|c| c.seeds = vec![seed.clone()]).await;
    wait_until("B to see the register", PATIENCE, || async {
        b.client.available_registers().await.is_ok_and(|r| {
            r.iter()
                .any(|a| a.register_id == "shapes" && a.peer_count > 0)
        })
    })
    .await;
    // The subscribe answer, before anything is held.
    let (status, created) = call(
        &b,
        Method::POST,
        "/api/registers/shapes/subscribe",
        Some(&b.token),
        Some(json!({"mode": "full-replica"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let mut found = Vec::new();
    breaks(&created, SUBSCRIPTION, "subscribe", &mut found);
    assert!(
        found.is_empty(),
        "the platform's clients throw on {found:?}"
    );
    wait_until("B to be fully replicated", PATIENCE, || async {
        b.client
            .subscriptions()
            .await
            .is_ok_and(|s| s.iter().any(|s| s.sync_state == "FullyReplicated"))
    })
    .await;
    let subs = read_as_platform(&b, "/api/registers/subscriptions", SUBSCRIPTION).await;
    assert_eq!(
        subs[0]["heldDocketVersion"],
        subs[0]["lastSyncedDocketVersion"]
    );
    assert_eq!(subs[0]["mode"], "FullReplica");
    wait_until("A to measure B's round trips", PATIENCE, || async {
        a.view_of(&b.peer_id)
            .await
            .is_some_and(|p| p.latency.is_some())
    })
    .await;
    for (path, model) in [
        ("/api/peers", PEER),
        (&format!("/api/peers/{}", b.peer_id) as &str, PEER),
        ("/api/peers/quality", QUALITY),
        ("/api/peers/stats", STATS),
        ("/api/peers/health", PEERS_HEALTH),
        ("/api/peers/connected", CONNECTED),
        ("/api/health", HEALTH),
    ] {
        read_as_platform(&a, path, model).await;
    }
    let on_b = read_as_platform(&b, "/api/peers", PEER).await;
    assert_eq!(
        on_b[0]["advertisedRegisters"][0]["syncState"], "FullyReplicated",
        "A is the origin: {on_b}"
    );
    let view = a.view_of(&b.peer_id).await.expect("A knows B");
    let exact = view.latency.as_ref().map(|l| l.average_ms).unwrap_or(-1.0);
    assert_eq!(
        view.average_latency_ms as f64,
        exact.round(),
        "whole milliseconds of the exact figure: {view:?}"
    );

    // A peer that left has no latency now: 0, and `latency` says there is no figure.
    b.stop().await;
    a.wait_for_state(&b.peer_id, "disconnected", PATIENCE).await;
    let peers = read_as_platform(&a, "/api/peers", PEER).await;
    assert_eq!(peers[0]["averageLatencyMs"], 0, "{peers}");
    assert_eq!(peers[0]["latency"], Value::Null, "{peers}");
    read_as_platform(&a, "/api/health", HEALTH).await;
}
