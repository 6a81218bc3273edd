//! Registers, subscriptions, transactions and lag.

use serde::{Deserialize, Serialize};

/// A register held by this node (`GET /api/registers`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRegisterRequest {
    pub register_id: Option<String>,
    #[serde(default)]
    pub is_public: bool,
}

/// A public register advertised by connected peers (`GET /api/registers/available`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// A subscription (`GET /api/registers/subscriptions`, and the subscribe answer), in the
/// platform's shape: its clients read `mode`, `syncState` and the three counts (enum names in
/// PascalCase, integers never null). This node's own figures (`held…`, `target…`) are beside
/// them and are `null` while unknown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDto {
    pub register_id: String,
    /// `FullReplica` or `ForwardOnly`.
    pub mode: String,
    /// `Subscribing`, `Syncing`, `FullyReplicated`, `Active` or `Error`.
    pub sync_state: String,
    /// Number of the newest docket held (dockets are numbered from 0, the genesis); 0 also
    /// while nothing is held, as the platform reads it: `heldDocketVersion` tells the two apart.
    pub last_synced_docket_version: u64,
    /// Version of the newest transaction held; 0 also while nothing is held.
    pub last_synced_transaction_version: u64,
    /// Dockets in the source chain, genesis included (`targetDocketVersion + 1`); 0 while no
    /// source has been heard.
    pub total_dockets_in_chain: u64,
    /// Number of the newest docket held; `null` while nothing is held.
    #[serde(default)]
    pub held_docket_version: Option<u64>,
    /// Version of the newest transaction held; `null` while nothing is held.
    #[serde(default)]
    pub held_transaction_version: Option<u64>,
    /// Number of the head docket being synced to (the best its sources advertise), never
    /// below `heldDocketVersion`; `null` while no source has been heard.
    pub target_docket_version: Option<u64>,
    /// Transaction version at that head (the best its sources advertise), never below
    /// `heldTransactionVersion`.
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
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscribeRequest {
    pub mode: Option<String>,
}

/// Answer to unsubscribe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnsubscribeResponse {
    pub register_id: String,
    pub unsubscribed: bool,
    pub cache_retained: bool,
    pub transactions_removed: Option<u64>,
    pub dockets_removed: Option<u64>,
}

/// Answer to `DELETE /api/registers/{id}/cache`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeResponse {
    pub register_id: String,
    pub purged: bool,
    pub transactions_removed: u64,
    pub dockets_removed: u64,
}

/// One row of `GET /api/registers/cache` (the original's replica cache view).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheDto {
    pub register_id: String,
    pub transaction_count: u64,
    pub docket_count: u64,
    pub latest_transaction_version: u64,
    pub latest_docket_version: u64,
}

/// Answer to a transaction submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchSubmitRequest {
    pub payloads: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchFailureBody {
    pub error: String,
    pub register_id: String,
    pub transaction_ids: Vec<String>,
}

/// A transaction's state (`GET /api/registers/{id}/transactions/{tx}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
