//! What the operator sees of the registers and subscriptions held here (read-only snapshots,
//! built from the chain, the subscription states and the transaction pool).

use super::chain::Held;
use super::subscriptions::Status;
use super::{Mode, Role, SyncState};
use crate::ledger::Hash;

/// Operator view of a register held here.
#[derive(Clone, Debug)]
pub struct RegisterView {
    pub register_id: String,
    pub is_public: bool,
    pub role: Role,
    pub sync_state: String,
    pub height: u64,
    pub head_hash: Hash,
    pub latest_version: u64,
    pub base_height: u64,
    /// Dockets stored here: from the genesis (or, forward-only, the anchor) to the head.
    pub docket_count: u64,
    pub transaction_count: u64,
    pub pending: u64,
    pub created_at_ms: i64,
    pub sync_progress_percent: f64,
}

/// Operator view of a subscription.
#[derive(Clone, Debug)]
pub struct SubscriptionView {
    pub register_id: String,
    pub mode: Mode,
    pub state: SyncState,
    pub error: Option<String>,
    pub failures: u32,
    pub created_at_ms: i64,
    pub last_sync_at_ms: Option<i64>,
    /// Docket number of the newest docket held.
    pub height: Option<u64>,
    pub latest_version: Option<u64>,
    /// Docket number of the head being synced to, never below `height`.
    pub target_height: Option<u64>,
    /// Transaction version at that head, never below `latest_version`.
    pub target_version: Option<u64>,
    pub progress_percent: f64,
}

/// A transaction's state for `tx get`.
#[derive(Clone, Debug)]
pub struct TxView {
    pub register_id: String,
    pub tx_id: String,
    /// Payload size in bytes.
    pub size: u64,
    pub received_at_ms: i64,
    /// Set once sealed.
    pub version: Option<u64>,
    pub docket_number: Option<u64>,
}

/// Outcome of a purge.
#[derive(Clone, Debug)]
pub struct Purged {
    pub transactions: u64,
    pub dockets: u64,
}

pub(super) fn register_view(held: &Held, sub: Option<&Status>, pending: u64) -> RegisterView {
    let sync_state = match (held.role, sub) {
        (Role::Origin, _) => "origin".to_string(),
        (_, Some(s)) => s.state.as_str().to_string(),
        (_, None) => "stopped".to_string(),
    };
    RegisterView {
        register_id: held.head.register_id.clone(),
        is_public: held.is_public,
        role: held.role,
        sync_state,
        height: held.head.number,
        head_hash: held.head_hash,
        latest_version: held.latest_version(),
        base_height: held.base_height,
        docket_count: held.head.number.saturating_sub(held.base_height) + 1,
        transaction_count: held.latest_version() - held.base_version,
        pending,
        created_at_ms: held.created_at_ms,
        sync_progress_percent: progress(
            held.head.number,
            sub.and_then(|s| s.target_height)
                .map(|t| t.max(held.head.number)),
            held.role,
            sub.map(|s| s.state),
        ),
    }
}

pub(super) fn subscription_view(
    register_id: &str,
    sub: &Status,
    held: Option<&Held>,
) -> SubscriptionView {
    let height = held.map(|h| h.head.number);
    // Dockets pushed after the last round can take the head past the target seen then.
    let target_height = match (sub.target_height, height) {
        (Some(t), Some(h)) => Some(t.max(h)),
        (t, h) => t.or(h),
    };
    let latest_version = held.map(Held::latest_version);
    let target_version = match (sub.target_version, latest_version) {
        (Some(t), Some(v)) => Some(t.max(v)),
        (t, v) => t.or(v),
    };
    SubscriptionView {
        register_id: register_id.to_string(),
        mode: sub.mode,
        state: sub.state,
        error: sub.error.clone(),
        failures: sub.failures,
        created_at_ms: sub.created_at_ms,
        last_sync_at_ms: sub.last_sync_at_ms,
        height,
        latest_version,
        target_height,
        target_version,
        progress_percent: progress(
            height.unwrap_or(0),
            target_height,
            sub.mode.role(),
            Some(sub.state),
        ),
    }
}

fn progress(height: u64, target: Option<u64>, role: Role, state: Option<SyncState>) -> f64 {
    match (role, state) {
        (Role::Origin, _) => 100.0,
        (_, Some(SyncState::FullyReplicated | SyncState::Active)) => 100.0,
        (_, _) => match target {
            Some(t) if t > 0 => ((height as f64 / t as f64) * 1000.0).round().min(1000.0) / 10.0,
            _ => 0.0,
        },
    }
}
