//! The node as a whole: status, health and readiness probes, errors, recent events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::RegisterDto;

/// `{"error": "..."}`, the body of every non-2xx answer.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusDto {
    /// `ready` or `failing`, as `/readyz` answers, with its reasons (empty when ready).
    #[serde(default)]
    pub readiness: String,
    #[serde(default)]
    pub readiness_reasons: Vec<String>,
    pub peer_id: String,
    pub name: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub listen: String,
    pub advertised_address: String,
    /// The address this node announces to peers (same as `advertisedAddress`).
    pub announced_address: String,
    /// Where it came from: `configured`, `observed` (verified by a dial-back), `stun`, `http`,
    /// `interface` or `listen`.
    pub address_source: String,
    /// `public` (verified, or a public address configured), `private` (private or loopback
    /// and unverified) or `unknown`.
    pub reachability: String,
    /// How peer connections are protected: `node-key` (TLS 1.3 with node-key certificates),
    /// `ca` (TLS 1.3 with CA-issued certificates) or `off` (plaintext).
    pub peer_tls: String,
    /// With `ca`: when this node's certificate expires (RFC 3339).
    pub peer_certificate_expires: Option<String>,
    /// With `ca`: set when the certificate expires within `tls_expiry_warning`, or has.
    pub peer_certificate_warning: Option<String>,
    /// With `ca`: set while the revocation list file is refused (the previous list stays in
    /// force), saying why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_list_problem: Option<String>,
    pub admin_listen: String,
    pub storage: String,
    /// `full` (every commit synced before it is acknowledged: a 201 survives power loss) or
    /// `fast` (a crash of the process loses nothing; a power cut can lose the last commits).
    #[serde(default)]
    pub durability: String,
    /// `ok`, or `failing` while reads or writes fail (then `storageError` says why), as
    /// `/api/health` and `/readyz` report it.
    #[serde(default)]
    pub storage_health: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_error: Option<String>,
    pub peers: PeerCountsDto,
    pub bans: usize,
    pub seeds: Vec<String>,
    /// Registers held by this node.
    pub registers: Vec<RegisterDto>,
    /// Transactions per second arriving in the registers held here (sealed here or
    /// replicated), over the last `rateWindowSeconds`, sampled every second on the node; null
    /// until two samples are in the window.
    #[serde(default)]
    pub transactions_per_second: Option<f64>,
    #[serde(default)]
    pub rate_window_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthMetricsDto {
    pub total_peers: usize,
    pub healthy_peers: usize,
    pub unhealthy_peers: usize,
    /// Over the connected peers with a figure, whole milliseconds; 0 when `latencyPeers` is 0.
    pub average_latency_ms: u64,
    /// The peers `averageLatencyMs` is the average of.
    #[serde(default)]
    pub latency_peers: usize,
    /// Transactions accepted and not yet sealed in the registers this node is the origin of (it
    /// seals them; a replica's pending transactions wait for their origin and are not counted).
    #[serde(default)]
    pub queue_size: u64,
}

/// `GET /api/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthDto {
    /// `healthy` while the service works, as the platform reads it (a lone node works), or
    /// `unhealthy` (storage failing; answered with 503). What else needs the operator, such as
    /// no connected peer, is in `warnings`.
    pub status: String,
    /// `peer-service`: the platform's name for the service this node provides.
    pub service: String,
    pub version: String,
    pub timestamp: String,
    /// Since this node started, as `d.hh:mm:ss` (the platform reads this text).
    #[serde(default)]
    pub uptime: String,
    pub uptime_seconds: u64,
    /// `ok`, or `failing` while reads or writes fail (then `storageError` says why).
    pub storage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_error: Option<String>,
    /// What needs the operator while the node works: no connected peer, a revocation list
    /// that was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub metrics: HealthMetricsDto,
}

/// `GET /healthz` (`alive`) and `GET /readyz` (`ready`, or `failing` with 503 and the
/// `reasons`: storage failing, with `storageError` saying why; listeners not serving; no peer
/// although seeds are configured).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeDto {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_error: Option<String>,
    /// `/readyz`: each check (`storage`, `listeners`, `peers`) as `ok` or why it fails.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, String>,
    /// `/readyz`: why the node is not ready, one entry per failing check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthyPeerDto {
    pub peer_id: String,
    /// The host alone; `endpoint` is `host:port`.
    pub address: String,
    pub port: u16,
    #[serde(default)]
    pub endpoint: String,
    pub last_seen: String,
    /// Whole milliseconds; 0 without a figure.
    pub average_latency_ms: u64,
}

/// `GET /api/peers/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeersHealthDto {
    pub total_peers: usize,
    pub healthy_peers: usize,
    pub unhealthy_peers: usize,
    pub health_percentage: f64,
    pub peers: Vec<HealthyPeerDto>,
}

/// Recent events (`GET /api/events/recent`), oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentEventsDto {
    /// Sequence number of the node's latest event (0 before the first).
    pub latest_seq: u64,
    pub events: Vec<crate::events::Event>,
}

/// `GET /api/doctor`: every item checked, and the worst verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoctorDto {
    /// The worst verdict: `ok`, `unknown`, `warning` or `failing`.
    pub status: String,
    pub findings: Vec<FindingDto>,
}

/// One item `doctor` checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingDto {
    pub item: String,
    /// `ok`, `unknown` (could not be measured), `warning` or `failing`.
    pub verdict: String,
    pub detail: String,
    /// What to do about it; absent when ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}
