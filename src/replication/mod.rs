//! Registers this node holds and how they stay in step with the network: creating registers
//! (this node is then their origin), accepting transactions, sealing them into signed dockets,
//! serving dockets to peers, and subscriptions that replicate registers from peers — verified
//! docket by docket, checkpointed after every batch, followed live by push, repaired by
//! anti-entropy when a heartbeat shows a peer ahead.

pub mod lag;
mod origin;
pub use origin::BatchError;
mod peering;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Config;
use crate::identity::Identity;
use crate::ledger::{self, CompactDocket, Docket, DocketHeader, DocketWithTransactions, Hash};
pub use crate::ledger::{Mode, Role};
use crate::peers::{PeerManager, PeerMessage, PeerRequest, PeerResponse, RegisterHeight};
use crate::store::{RegisterRecord, Store, StoreError, SubscriptionRecord};
use crate::telemetry::Metrics;
use crate::txpool::{TxEvent, TxPool, TxPoolError};

/// Most payload bytes in one docket, and in one batch served to a peer, so every message stays
/// well under the 16 MiB frame limit.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// First retry delay of a failing subscription; doubles up to [`SYNC_RETRY_MAX`].
const SYNC_RETRY_MIN: Duration = Duration::from_millis(200);
const SYNC_RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a pushed docket waits for payloads gossip is already fetching.
const GOSSIP_GRACE: Duration = Duration::from_secs(1);
/// A subscription at the head re-checks its sources at least this often (anti-entropy also
/// wakes it as soon as a heartbeat shows a peer ahead).
const IDLE_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("payload of {size} bytes is larger than max_transaction_size ({limit} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TxPoolError> for RegisterError {
    fn from(e: TxPoolError) -> RegisterError {
        match e {
            TxPoolError::UnknownRegister(_) => RegisterError::NotFound(e.to_string()),
            TxPoolError::Store(e) => RegisterError::Store(e),
        }
    }
}

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    Subscribing,
    Syncing,
    FullyReplicated,
    Active,
    Error,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Subscribing => "subscribing",
            SyncState::Syncing => "syncing",
            SyncState::FullyReplicated => "fully-replicated",
            SyncState::Active => "active",
            SyncState::Error => "error",
        }
    }
}

/// A register held here.
#[derive(Clone, Debug)]
struct Held {
    is_public: bool,
    role: Role,
    origin_key: [u8; 32],
    created_at_ms: i64,
    head: DocketHeader,
    head_hash: Hash,
    /// Dockets up to this number are not held with transactions (forward-only start).
    base_height: u64,
    /// Version of the last transaction sealed at `base_height` (not held here).
    base_version: u64,
}

impl Held {
    fn latest_version(&self) -> u64 {
        self.head.first_version + self.head.tx_count as u64 - 1
    }

    fn to_record(&self) -> RegisterRecord {
        RegisterRecord {
            register_id: self.head.register_id.clone(),
            is_public: self.is_public,
            role: self.role,
            origin_key: self.origin_key,
            created_at_ms: self.created_at_ms,
            height: self.head.number,
            head_hash: self.head_hash,
            latest_version: self.latest_version(),
            base_height: self.base_height,
        }
    }

    fn height(&self) -> RegisterHeight {
        RegisterHeight {
            register_id: self.head.register_id.clone(),
            height: self.head.number,
            head_hash: self.head_hash,
            latest_version: self.latest_version(),
            full_replica: self.role != Role::ForwardOnly,
            is_origin: self.role == Role::Origin,
        }
    }
}

struct Subscription {
    mode: Mode,
    state: SyncState,
    error: Option<String>,
    failures: u32,
    created_at_ms: i64,
    last_sync_at_ms: Option<i64>,
    /// Best height seen among sources.
    target_height: Option<u64>,
    following: HashSet<String>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Inner {
    held: HashMap<String, Held>,
    /// Serialises writes to each register's chain.
    writers: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    followers: HashMap<String, HashSet<String>>,
    subscriptions: HashMap<String, Subscription>,
}

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
    pub height: Option<u64>,
    pub latest_version: Option<u64>,
    pub target_height: Option<u64>,
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

/// What [`Registers`] is built from.
pub struct RegistersDeps {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    pub config: Arc<Config>,
    pub peers: Arc<PeerManager>,
    pub metrics: Arc<Metrics>,
    /// Pending transactions, shared with gossip.
    pub pool: Arc<TxPool>,
}

/// The register and replication service of one node.
pub struct Registers {
    store: Arc<dyn Store>,
    identity: Arc<Identity>,
    config: Arc<Config>,
    peers: Arc<PeerManager>,
    metrics: Arc<Metrics>,
    /// Pending transactions (shared with gossip).
    pool: Arc<TxPool>,
    inner: Mutex<Inner>,
    shutdown: CancellationToken,
}

/// What one round of syncing achieved.
enum Progress {
    Advanced,
    AtHead,
}

impl Registers {
    /// Loads the registers and subscriptions this node holds.
    pub async fn load(
        deps: RegistersDeps,
        shutdown: CancellationToken,
    ) -> Result<Arc<Registers>, StoreError> {
        let RegistersDeps {
            store,
            identity,
            config,
            peers,
            metrics,
            pool,
        } = deps;
        let mut inner = Inner::default();
        for row in store.load_registers().await? {
            let head = store
                .dockets(&row.register_id, row.height, 1)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("register {} has no head docket", row.register_id))
                })?
                .header;
            let base_version = if row.base_height > 0 {
                let anchor = store.dockets(&row.register_id, row.base_height, 1).await?;
                match anchor.first() {
                    Some(a) => {
                        (a.header.first_version + u64::from(a.header.tx_count)).saturating_sub(1)
                    }
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "register {} lost its anchor docket",
                            row.register_id
                        )));
                    }
                }
            } else {
                0
            };
            pool.restore(&row.register_id, row.is_public, row.role == Role::Origin)
                .await?;
            inner.held.insert(
                row.register_id.clone(),
                Held {
                    is_public: row.is_public,
                    role: row.role,
                    origin_key: row.origin_key,
                    created_at_ms: row.created_at_ms,
                    head_hash: head.hash(),
                    head,
                    base_height: row.base_height,
                    base_version,
                },
            );
        }
        let subscriptions = store.load_subscriptions().await?;
        let registers = Arc::new(Registers {
            store,
            identity,
            config,
            peers,
            metrics,
            pool,
            inner: Mutex::new(inner),
            shutdown,
        });
        for sub in subscriptions {
            registers.start_subscription(&sub.register_id, sub.mode, sub.created_at_ms);
        }
        Ok(registers)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn apply_lock(&self, register_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock()
            .writers
            .entry(register_id.to_string())
            .or_default()
            .clone()
    }

    // ----- what we advertise ------------------------------------------------------------

    /// Public registers held here, as advertised to peers. Private ones are never included.
    pub fn public_heights(&self) -> Vec<RegisterHeight> {
        let inner = self.lock();
        let mut out: Vec<RegisterHeight> = inner
            .held
            .values()
            .filter(|h| h.is_public)
            .map(Held::height)
            .collect();
        out.sort_by(|a, b| a.register_id.cmp(&b.register_id));
        out
    }

    fn advertise(&self) {
        self.peers
            .broadcast(PeerMessage::Advertise(self.public_heights()));
    }

    /// Hash of docket `number` of a public register held here (for lag's fork check).
    pub async fn hash_at(
        &self,
        register_id: &str,
        number: u64,
    ) -> Result<Option<Hash>, StoreError> {
        let public = self
            .lock()
            .held
            .get(register_id)
            .is_some_and(|h| h.is_public);
        if !public {
            return Ok(None);
        }
        self.store.docket_hash(register_id, number).await
    }

    // ----- views --------------------------------------------------------------------------

    fn view_of(&self, inner: &Inner, register_id: &str, held: &Held) -> RegisterView {
        let sub = inner.subscriptions.get(register_id);
        let sync_state = match (held.role, sub) {
            (Role::Origin, _) => "origin".to_string(),
            (_, Some(s)) => s.state.as_str().to_string(),
            (_, None) => "stopped".to_string(),
        };
        RegisterView {
            register_id: register_id.to_string(),
            is_public: held.is_public,
            role: held.role,
            sync_state,
            height: held.head.number,
            head_hash: held.head_hash,
            latest_version: held.latest_version(),
            base_height: held.base_height,
            transaction_count: held.latest_version() - held.base_version,
            pending: self.pool.pending_count(register_id),
            created_at_ms: held.created_at_ms,
            sync_progress_percent: progress(
                held.head.number,
                sub.and_then(|s| s.target_height),
                held.role,
                sub.map(|s| s.state),
            ),
        }
    }

    pub fn view(&self, register_id: &str) -> Option<RegisterView> {
        let inner = self.lock();
        inner
            .held
            .get(register_id)
            .map(|h| self.view_of(&inner, register_id, h))
    }

    /// Every register held here, by name.
    pub fn list(&self) -> Vec<RegisterView> {
        let inner = self.lock();
        let mut out: Vec<RegisterView> = inner
            .held
            .iter()
            .map(|(id, h)| self.view_of(&inner, id, h))
            .collect();
        out.sort_by(|a, b| a.register_id.cmp(&b.register_id));
        out
    }

    pub fn subscription(&self, register_id: &str) -> Option<SubscriptionView> {
        let inner = self.lock();
        let sub = inner.subscriptions.get(register_id)?;
        let held = inner.held.get(register_id);
        Some(SubscriptionView {
            register_id: register_id.to_string(),
            mode: sub.mode,
            state: sub.state,
            error: sub.error.clone(),
            failures: sub.failures,
            created_at_ms: sub.created_at_ms,
            last_sync_at_ms: sub.last_sync_at_ms,
            height: held.map(|h| h.head.number),
            latest_version: held.map(Held::latest_version),
            target_height: sub.target_height,
            progress_percent: progress(
                held.map_or(0, |h| h.head.number),
                sub.target_height,
                sub.mode.role(),
                Some(sub.state),
            ),
        })
    }

    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        let mut ids: Vec<String> = self.lock().subscriptions.keys().cloned().collect();
        ids.sort();
        ids.iter().filter_map(|id| self.subscription(id)).collect()
    }

    /// A transaction's state.
    pub async fn transaction(
        &self,
        register_id: &str,
        tx_id: &str,
    ) -> Result<TxView, RegisterError> {
        if !self.lock().held.contains_key(register_id) {
            return Err(RegisterError::NotFound(format!(
                "this node does not carry register '{register_id}'"
            )));
        }
        let tx_id = tx_id.trim().to_ascii_lowercase();
        if tx_id.len() != 64 || !tx_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RegisterError::Invalid(format!(
                "'{tx_id}' is not a transaction ID (64 hex characters)"
            )));
        }
        match self.store.transaction(register_id, &tx_id).await? {
            Some(tx) => Ok(TxView {
                register_id: register_id.to_string(),
                tx_id: tx.tx_id,
                size: tx.size,
                received_at_ms: tx.received_at_ms,
                version: tx.version,
                docket_number: tx.docket_number,
            }),
            None => Err(RegisterError::NotFound(format!(
                "no transaction {tx_id} in '{register_id}'"
            ))),
        }
    }
}

enum ApplyError {
    Verify(String),
    Store(StoreError),
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
