//! JSON bodies of the admin API, shared by the server (`admin/`) and the typed client
//! (`client/`). Field names are camelCase and part of the contract scripts rely on: change
//! them only with a version note.

use std::collections::BTreeMap;

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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerDto {
    pub peer_id: String,
    pub name: String,
    pub address: String,
    /// The port of `address`, apart (the platform's clients read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
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
    /// Public registers the peer advertises (while connected).
    pub advertised_registers: Vec<AdvertisedRegisterDto>,
    #[serde(default)]
    pub advertised_register_count: usize,
}

/// A register as a peer advertises it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdvertisedRegisterDto {
    pub register_id: String,
    pub latest_version: u64,
    pub latest_docket_version: u64,
    pub head_hash: String,
    pub full_replica: bool,
    pub is_origin: bool,
}

/// A ban, as listed by `GET /api/bans`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// `ok`, or `failing` while reads or writes fail (then `storageError` says why).
    pub storage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_error: Option<String>,
    /// What needs the operator while the node works (then `status` is at best `degraded`):
    /// e.g. a revocation list that was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub metrics: HealthMetricsDto,
}

/// `GET /healthz` (`alive`) and `GET /readyz` (`ready`, or `failing` with 503 and the
/// `reasons`: storage failing, with `storageError` saying why; listeners not serving; no peer
/// although seeds are configured).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// A register held by this node (`GET /api/registers`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterDto {
    pub register_id: String,
    pub is_public: bool,
    /// `origin`, `full-replica` or `forward-only`.
    pub role: String,
    /// `origin`, `subscribing`, `syncing`, `fully-replicated`, `active`, `error` or `stopped`
    /// (replica data kept after unsubscribing).
    pub sync_state: String,
    /// Version of the newest sealed transaction held (0: none).
    pub latest_version: u64,
    /// Number of the newest docket held (dockets are numbered from 0, the genesis).
    pub latest_docket_version: u64,
    /// Dockets stored here, the first one (genesis, or the anchor of a forward-only replica)
    /// included: what a purge removes.
    pub docket_count: u64,
    pub head_hash: String,
    /// Sealed transactions held here.
    pub transaction_count: u64,
    /// Accepted but not yet sealed (origin only).
    pub pending_transactions: u64,
    pub sync_progress_percent: f64,
    pub created_at: String,
}

/// Body of `POST /api/registers`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRegisterRequest {
    pub register_id: Option<String>,
    #[serde(default)]
    pub is_public: bool,
}

/// A public register advertised by connected peers (`GET /api/registers/available`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AvailableRegisterDto {
    pub register_id: String,
    pub is_public: bool,
    /// Connected peers advertising it.
    pub peer_count: usize,
    /// Of those, how many hold the full chain (origin or full replica).
    pub full_replica_peer_count: usize,
    pub latest_version: u64,
    pub latest_docket_version: u64,
    /// How this node holds it, if it does.
    pub local_role: Option<String>,
    /// As the platform's Register service reported it (`bulk-advertise`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A subscription (`GET /api/registers/subscriptions`), with the original's fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDto {
    pub register_id: String,
    pub mode: String,
    pub sync_state: String,
    /// Number of the newest docket held (dockets are numbered from 0, the genesis).
    pub last_synced_docket_version: Option<u64>,
    pub last_synced_transaction_version: Option<u64>,
    /// Number of the head docket being synced to (the best its sources advertise), never
    /// below `lastSyncedDocketVersion`.
    pub target_docket_version: Option<u64>,
    /// Dockets in the source chain, genesis included: `targetDocketVersion + 1`.
    pub total_dockets_in_chain: Option<u64>,
    /// Transaction version at that head (the best its sources advertise), never below
    /// `lastSyncedTransactionVersion`.
    #[serde(default)]
    pub target_transaction_version: Option<u64>,
    pub sync_progress_percent: f64,
    pub can_participate_in_validation: bool,
    pub is_receiving: bool,
    pub created_at: String,
    /// When dockets were last stored, or the subscription was last found at its sources' head.
    pub last_sync_at: Option<String>,
    pub consecutive_failures: u32,
    pub error_message: Option<String>,
}

/// Body of `POST /api/registers/{id}/subscribe`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscribeRequest {
    pub mode: Option<String>,
}

/// Answer to unsubscribe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscribeResponse {
    pub register_id: String,
    pub unsubscribed: bool,
    pub cache_retained: bool,
    pub transactions_removed: Option<u64>,
    pub dockets_removed: Option<u64>,
}

/// Answer to `DELETE /api/registers/{id}/cache`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeResponse {
    pub register_id: String,
    pub purged: bool,
    pub transactions_removed: u64,
    pub dockets_removed: u64,
}

/// One row of `GET /api/registers/cache` (the original's replica cache view).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheDto {
    pub register_id: String,
    pub transaction_count: u64,
    pub docket_count: u64,
    pub latest_transaction_version: u64,
    pub latest_docket_version: u64,
}

/// Body of `POST /api/peers`: the node to dial.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectRequest {
    /// host:port of the node's peer protocol.
    pub address: Option<String>,
}

/// Answer to `POST /api/peers`: the peer reached at the address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectResponse {
    pub peer_id: String,
    pub address: String,
    /// A session with it was open already; nothing was dialled.
    pub already_connected: bool,
}

/// Answer to `POST /api/peers/{id}/disconnect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisconnectResponse {
    pub peer_id: String,
    pub disconnected: bool,
    /// Always false: a disconnected peer may be dialled again and may connect again.
    pub is_banned: bool,
}

/// Answer to a transaction submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitResponse {
    pub transaction_id: String,
    pub register_id: String,
    /// `pending` until sealed, then `sealed` (as in [`TransactionDto`]).
    #[serde(default)]
    pub state: String,
    /// True when the payload was held already (pending or sealed): nothing was stored, and
    /// `state`, `version` and `docketNumber` say where the first submission stands.
    #[serde(default)]
    pub already_held: bool,
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub docket_number: Option<u64>,
}

/// Body of `POST /api/registers/{id}/transactions/batch`: UTF-8 payloads, one transaction each.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchSubmitRequest {
    pub payloads: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchSubmitResponse {
    pub register_id: String,
    pub transaction_ids: Vec<String>,
    /// How many of them were held already (pending or sealed): stored once, unchanged.
    #[serde(default)]
    pub already_held: usize,
    /// For each of `transactionIds`, in order, what a single submission answers: its state,
    /// whether it was held already, and its version and docket once sealed.
    #[serde(default)]
    pub transactions: Vec<SubmitResponse>,
}

/// A batch submission that failed after some of its chunks were stored: the error, and the
/// IDs of the transactions that were stored (in submission order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchFailureBody {
    pub error: String,
    pub register_id: String,
    pub transaction_ids: Vec<String>,
}

/// A transaction's state (`GET /api/registers/{id}/transactions/{tx}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionDto {
    pub transaction_id: String,
    pub register_id: String,
    /// `pending` until sealed, then `sealed`.
    pub state: String,
    pub version: Option<u64>,
    pub docket_number: Option<u64>,
    pub size: u64,
    pub received_at: String,
}

/// One register's lag against another node (`GET /api/lag`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LagDto {
    pub register_id: String,
    pub local_version: u64,
    pub remote_version: u64,
    pub local_docket_version: u64,
    pub remote_docket_version: u64,
    pub transactions_behind: u64,
    pub dockets_behind: u64,
    pub diverged: bool,
    /// When diverged: the docket number at which the chains differ (the lower head; the
    /// fork is there or before).
    #[serde(default)]
    pub diverged_at_docket_version: Option<u64>,
    pub held_locally: bool,
}

/// Recent events (`GET /api/events/recent`), oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentEventsDto {
    /// Sequence number of the node's latest event (0 before the first).
    pub latest_seq: u64,
    pub events: Vec<crate::events::Event>,
}
