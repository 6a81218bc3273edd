//! Peers: the peer list and details, quality, bans, connect and disconnect.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PenaltyDto {
    pub at: String,
    pub reason: String,
}

/// How the quality score was made: each input and the points it earned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QualityComponentsDto {
    /// Share of the recent requests that succeeded, 0–1: exactly
    /// `recentSuccessfulRequests / recentRequests` (the last 20 requests).
    pub success_rate: f64,
    /// 60 × success rate.
    pub success_points: f64,
    /// From average round trip: < 50 ms 1.0, < 100 ms 0.8, < 200 ms 0.6, < 500 ms 0.4, else 0.2.
    pub latency_score: f64,
    /// 25 × latency score.
    pub latency_points: f64,
    /// 1.0 unless penalised for bad data or protocol violations; recovers over time.
    pub validity: f64,
    /// 15 × validity.
    pub validity_points: f64,
    /// Requests since first contact (all of them, not only the recent ones).
    pub total_requests: u64,
    pub successful_requests: u64,
    pub failed_requests: u64,
    /// The requests `successRate` is computed from (the most recent, up to 20).
    pub recent_requests: u32,
    pub recent_successful_requests: u32,
    pub last_penalty: Option<PenaltyDto>,
}

/// A peer, as listed by `GET /api/peers` and `GET /api/peers/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerDto {
    pub peer_id: String,
    pub name: String,
    /// The host alone, as the platform's clients read it (they print `address:port`).
    pub address: String,
    pub port: u16,
    /// `host:port` as this node dials it (what the CLI and the dashboard show).
    #[serde(default)]
    pub endpoint: String,
    /// `connected`, `connecting`, `disconnected` or `banned`.
    pub state: String,
    /// `inbound` or `outbound` while connected.
    pub direction: Option<String>,
    pub connected_since: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub failure_count: u32,
    pub is_seed_node: bool,
    pub software_version: Option<String>,
    /// Whole milliseconds, as the platform's clients read it; 0 while there is no figure
    /// (not connected, or no round trip measured yet): `latency` is `null` then.
    pub average_latency_ms: u64,
    /// The round trips measured while connected; `null` without a figure.
    #[serde(default)]
    pub latency: Option<LatencyDto>,
    pub success_rate: f64,
    pub quality_score: f64,
    pub quality_rating: String,
    pub quality_components: QualityComponentsDto,
    pub is_banned: bool,
    pub banned_at: Option<String>,
    pub ban_reason: Option<String>,
    pub ban_expires_at: Option<String>,
    /// Public registers the peer advertises (while connected).
    pub advertised_registers: Vec<AdvertisedRegisterDto>,
    #[serde(default)]
    pub advertised_register_count: usize,
    /// While connected: the peer's clock minus this node's, in milliseconds, from the send time
    /// of its last heartbeat (the one-way delay included).
    #[serde(default)]
    pub clock_offset_ms: Option<i64>,
    /// While connected: where it serves the platform's services (its announcement), which
    /// `GetPeerList` hands to a Validator; absent when it serves none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_address: Option<String>,
}

/// Round trips to a peer, in milliseconds (fractions kept).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyDto {
    pub average_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

/// A register as a peer advertises it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvertisedRegisterDto {
    pub register_id: String,
    pub latest_version: u64,
    pub latest_docket_version: u64,
    pub head_hash: String,
    pub full_replica: bool,
    pub is_origin: bool,
    /// As the platform names it: `FullyReplicated` for a peer holding the whole chain (origin
    /// or full replica), else `Active`.
    #[serde(default)]
    pub sync_state: String,
    /// Always true: peers advertise public registers only.
    #[serde(default)]
    pub is_public: bool,
}

/// A ban, as listed by `GET /api/bans`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BanDto {
    pub target: String,
    /// The banned peer's name, when the target is a peer this node knows by a name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `peer`, `ip` or `cidr`.
    pub kind: String,
    pub reason: String,
    /// `manual` or `automatic`.
    pub source: String,
    pub banned_at: String,
    /// `null`: until unbanned.
    pub expires_at: Option<String>,
    pub remaining_seconds: Option<i64>,
}

/// Body of `POST /api/bans` and `POST /api/peers/{id}/ban` (all fields optional there).
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BanRequest {
    /// Peer ID (or unique prefix), IP address or CIDR subnet; only for `POST /api/bans`.
    pub target: Option<String>,
    pub reason: Option<String>,
    /// How long, like `1h` or `7d`; absent means until unbanned.
    pub duration: Option<String>,
    /// The same in minutes, as the platform's clients send it (not with `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u64>,
    /// Ban even if the peer is the only source of an active subscription.
    #[serde(default)]
    pub force: bool,
}

/// Answer to a ban.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BanResponse {
    /// The banned peer, when the target is a peer ID.
    pub peer_id: Option<String>,
    pub target: String,
    pub kind: String,
    pub is_banned: bool,
    pub banned_at: String,
    pub ban_reason: String,
    pub ban_expires_at: Option<String>,
    pub source: String,
    /// Known peers the ban covers.
    pub affected_peers: Vec<String>,
    /// Connections closed because of it.
    pub disconnected_peers: Vec<String>,
}

/// Answer to an unban.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnbanResponse {
    pub peer_id: Option<String>,
    pub target: String,
    pub kind: String,
    pub is_banned: bool,
}

/// Answer to `POST /api/peers/{id}/reset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetResponse {
    pub peer_id: String,
    pub failure_count: u32,
    pub previous_failure_count: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatsInnerDto {
    pub total_peers: usize,
    pub healthy_peers: usize,
    pub unhealthy_peers: usize,
    pub seed_nodes: usize,
    /// Over the connected peers with a figure, whole milliseconds; 0 when `latencyPeers` is 0.
    pub average_latency_ms: u64,
    /// The peers `averageLatencyMs` is the average of.
    #[serde(default)]
    pub latency_peers: usize,
    pub total_failures: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QualityStatsDto {
    pub total_tracked_peers: usize,
    pub excellent_peers: usize,
    pub good_peers: usize,
    pub fair_peers: usize,
    pub poor_peers: usize,
    /// Over the rated peers; 0 when `totalTrackedPeers` is 0.
    pub average_quality_score: f64,
}

/// Transactions waiting in this node (the platform's clients read it as their distribution
/// queue).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatsDto {
    /// Transactions accepted and not yet sealed in the registers this node is the origin of (it
    /// seals them; a replica's pending transactions wait for their origin and are not counted).
    pub queue_size: u64,
    pub is_empty: bool,
}

/// The platform's clients read this object. This node has no circuit breakers (a failing peer
/// is dialled again after a backoff, see a peer's `failureCount`), so every count is 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerStatsDto {
    pub total_circuit_breakers: u64,
    pub open_circuits: u64,
    pub half_open_circuits: u64,
    pub closed_circuits: u64,
}

/// `GET /api/peers/stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatsDto {
    pub timestamp: String,
    pub peer_stats: PeerStatsInnerDto,
    pub quality_stats: QualityStatsDto,
    #[serde(default)]
    pub queue_stats: QueueStatsDto,
    #[serde(default)]
    pub circuit_breaker_stats: CircuitBreakerStatsDto,
}

/// One row of `GET /api/peers/quality`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerQualityDto {
    pub peer_id: String,
    /// Whole milliseconds, 0 without a figure (then `latency` is `null`), as the platform's
    /// clients read them.
    pub average_latency_ms: u64,
    pub min_latency_ms: u64,
    pub max_latency_ms: u64,
    #[serde(default)]
    pub latency: Option<LatencyDto>,
    pub success_rate: f64,
    pub total_requests: u64,
    pub successful_requests: u64,
    pub failed_requests: u64,
    pub quality_score: f64,
    pub quality_rating: String,
    pub quality_components: QualityComponentsDto,
}

/// Body of `POST /api/peers`: the node to dial.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectRequest {
    /// host:port of the node's peer protocol.
    pub address: Option<String>,
}

/// Answer to `POST /api/peers`: the peer reached at the address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectResponse {
    pub peer_id: String,
    pub address: String,
    /// A session with it was open already; nothing was dialled.
    pub already_connected: bool,
}

/// Answer to `POST /api/peers/{id}/disconnect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisconnectResponse {
    pub peer_id: String,
    pub disconnected: bool,
    /// Always false: a disconnected peer may be dialled again and may connect again.
    pub is_banned: bool,
}
