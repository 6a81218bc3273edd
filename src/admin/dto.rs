//! JSON bodies of the admin API, shared by the server (`admin/`) and the typed client
//! (`client.rs`). Field names are camelCase and part of the contract scripts rely on: change
//! them only with a version note.

use serde::{Deserialize, Serialize};

/// `{"error": "..."}`, the body of every non-2xx answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PenaltyDto {
    pub at: String,
    pub reason: String,
}

/// How the quality score was made: each input and the points it earned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualityComponentsDto {
    /// Recent success rate, 0–1 (exponentially weighted over roughly the last 20 requests).
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
    pub total_requests: u64,
    pub successful_requests: u64,
    pub failed_requests: u64,
    pub last_penalty: Option<PenaltyDto>,
}

/// A peer, as listed by `GET /api/peers` and `GET /api/peers/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerDto {
    pub peer_id: String,
    pub name: String,
    pub address: String,
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
    pub average_latency_ms: Option<f64>,
    pub min_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub success_rate: f64,
    pub quality_score: f64,
    pub quality_rating: String,
    pub quality_components: QualityComponentsDto,
    pub is_banned: bool,
    pub banned_at: Option<String>,
    pub ban_reason: Option<String>,
    pub ban_expires_at: Option<String>,
    /// Registers the peer advertises (filled once register replication exists).
    pub advertised_registers: Vec<serde_json::Value>,
}

/// A ban, as listed by `GET /api/bans`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BanDto {
    pub target: String,
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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BanRequest {
    /// Peer ID (or unique prefix), IP address or CIDR subnet; only for `POST /api/bans`.
    pub target: Option<String>,
    pub reason: Option<String>,
    /// How long, like `1h` or `7d`; absent means until unbanned.
    pub duration: Option<String>,
}

/// Answer to a ban.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnbanResponse {
    pub peer_id: Option<String>,
    pub target: String,
    pub kind: String,
    pub is_banned: bool,
}

/// Answer to `POST /api/peers/{id}/reset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetResponse {
    pub peer_id: String,
    pub failure_count: u32,
    pub previous_failure_count: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerCountsDto {
    pub known: usize,
    pub connected: usize,
    pub connecting: usize,
    pub disconnected: usize,
    pub banned: usize,
    pub inbound: usize,
    pub outbound: usize,
}

/// `GET /api/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDto {
    pub peer_id: String,
    pub name: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub listen: String,
    pub advertised_address: String,
    pub admin_listen: String,
    pub storage: String,
    pub peers: PeerCountsDto,
    pub bans: usize,
    pub seeds: Vec<String>,
    /// Registers held by this node (filled once register replication exists).
    pub registers: Vec<serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthMetricsDto {
    pub total_peers: usize,
    pub healthy_peers: usize,
    pub unhealthy_peers: usize,
    pub average_latency_ms: Option<f64>,
}

/// `GET /api/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthDto {
    /// `healthy`, `degraded` (no connected peer) or `unhealthy` (storage failing).
    pub status: String,
    pub service: String,
    pub version: String,
    pub timestamp: String,
    pub uptime_seconds: u64,
    pub storage: String,
    pub metrics: HealthMetricsDto,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthyPeerDto {
    pub peer_id: String,
    pub address: String,
    pub last_seen: String,
    pub average_latency_ms: Option<f64>,
}

/// `GET /api/peers/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeersHealthDto {
    pub total_peers: usize,
    pub healthy_peers: usize,
    pub unhealthy_peers: usize,
    pub health_percentage: f64,
    pub peers: Vec<HealthyPeerDto>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatsInnerDto {
    pub total_peers: usize,
    pub healthy_peers: usize,
    pub unhealthy_peers: usize,
    pub seed_nodes: usize,
    pub average_latency_ms: Option<f64>,
    pub total_failures: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualityStatsDto {
    pub total_tracked_peers: usize,
    pub excellent_peers: usize,
    pub good_peers: usize,
    pub fair_peers: usize,
    pub poor_peers: usize,
    pub average_quality_score: Option<f64>,
}

/// `GET /api/peers/stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatsDto {
    pub timestamp: String,
    pub peer_stats: PeerStatsInnerDto,
    pub quality_stats: QualityStatsDto,
}

/// One row of `GET /api/peers/quality`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerQualityDto {
    pub peer_id: String,
    pub average_latency_ms: Option<f64>,
    pub min_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub success_rate: f64,
    pub total_requests: u64,
    pub successful_requests: u64,
    pub failed_requests: u64,
    pub quality_score: f64,
    pub quality_rating: String,
    pub quality_components: QualityComponentsDto,
}
