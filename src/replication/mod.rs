//! Registers this node holds and how they stay in step with the network: creating registers
//! (this node is then their origin), accepting transactions, sealing them into signed dockets,
//! serving dockets to peers, and subscriptions that replicate registers from peers — verified
//! docket by docket, checkpointed after every batch, followed live by push, repaired by
//! anti-entropy when a heartbeat shows a peer ahead.

pub mod lag;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Config;
use crate::gossip::SeenSet;
use crate::identity::Identity;
use crate::ledger::{self, CompactDocket, Docket, DocketHeader, DocketWithTransactions, Hash};
use crate::peers::{PeerManager, PeerMessage, PeerRequest, PeerResponse, RegisterHeight};
use crate::store::{DocketRow, RegisterRow, Store, StoreError, SubscriptionRow, TxRow};
use crate::telemetry::Metrics;

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

/// How this node holds a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Origin,
    FullReplica,
    ForwardOnly,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Origin => "origin",
            Role::FullReplica => "full-replica",
            Role::ForwardOnly => "forward-only",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "origin" => Some(Role::Origin),
            "full-replica" => Some(Role::FullReplica),
            "forward-only" => Some(Role::ForwardOnly),
            _ => None,
        }
    }
}

/// A subscription's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    FullReplica,
    ForwardOnly,
}

impl Mode {
    /// Accepts `full-replica`/`forward-only` (also without the dash, any case).
    pub fn parse(text: &str) -> Option<Mode> {
        match text.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "fullreplica" => Some(Mode::FullReplica),
            "forwardonly" => Some(Mode::ForwardOnly),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::FullReplica => "full-replica",
            Mode::ForwardOnly => "forward-only",
        }
    }

    fn role(self) -> Role {
        match self {
            Mode::FullReplica => Role::FullReplica,
            Mode::ForwardOnly => Role::ForwardOnly,
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
    /// Transactions accepted but not yet sealed (origin only).
    pending: u64,
}

impl Held {
    fn latest_version(&self) -> u64 {
        self.head.first_version + self.head.tx_count as u64 - 1
    }

    fn to_row(&self) -> RegisterRow {
        RegisterRow {
            register_id: self.head.register_id.clone(),
            is_public: self.is_public,
            role: self.role.as_str().to_string(),
            origin_key: hex::encode(self.origin_key),
            created_at_ms: self.created_at_ms,
            height: self.head.number as i64,
            head_hash: hex::encode(self.head_hash),
            latest_version: self.latest_version() as i64,
            base_height: self.base_height as i64,
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
    pub row: TxRow,
}

/// What happened to transactions at this node, for observers (the cluster benchmark; a
/// streaming API later). Sent on a broadcast channel; a slow observer misses events, never
/// slows the node down.
#[derive(Clone, Debug)]
pub struct TxEvent {
    pub register_id: String,
    pub tx_ids: Arc<Vec<String>>,
    /// False: stored as pending; true: sealed in a docket held here.
    pub sealed: bool,
}

/// Events buffered per observer before the oldest are dropped.
const EVENT_BUFFER: usize = 16 * 1024;

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
    /// Transactions this node holds, shared with gossip.
    pub seen: Arc<SeenSet>,
    /// Wakes gossip when there is something new to announce.
    pub gossip_wake: Arc<Notify>,
}

/// The register and replication service of one node.
pub struct Registers {
    store: Arc<dyn Store>,
    identity: Arc<Identity>,
    config: Arc<Config>,
    peers: Arc<PeerManager>,
    metrics: Arc<Metrics>,
    /// Transactions this node holds (shared with gossip).
    seen: Arc<SeenSet>,
    /// Wakes gossip when there is something new to announce.
    gossip_wake: Arc<Notify>,
    inner: Mutex<Inner>,
    seal_wake: Notify,
    shutdown: CancellationToken,
    events: tokio::sync::broadcast::Sender<TxEvent>,
}

fn hex32(text: &str) -> Result<Hash, StoreError> {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("'{text}' is not a 32-byte hex value")))
}

fn docket_row(d: &Docket) -> DocketRow {
    let h = &d.header;
    DocketRow {
        register_id: h.register_id.clone(),
        number: h.number as i64,
        previous_hash: hex::encode(h.previous_hash),
        merkle_root: hex::encode(h.merkle_root),
        tx_count: h.tx_count as i64,
        first_version: h.first_version as i64,
        sealed_at_ms: h.sealed_at_ms,
        hash: hex::encode(h.hash()),
        signature: hex::encode(&d.signature),
    }
}

fn docket_from_row(r: &DocketRow) -> Result<Docket, StoreError> {
    Ok(Docket {
        header: DocketHeader {
            register_id: r.register_id.clone(),
            number: r.number as u64,
            previous_hash: hex32(&r.previous_hash)?,
            merkle_root: hex32(&r.merkle_root)?,
            tx_count: r.tx_count as u32,
            first_version: r.first_version as u64,
            sealed_at_ms: r.sealed_at_ms,
        },
        signature: hex::decode(&r.signature).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
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
            seen,
            gossip_wake,
        } = deps;
        let mut inner = Inner::default();
        for row in store.load_registers().await? {
            let role = Role::parse(&row.role)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown role '{}'", row.role)))?;
            let head_row = store
                .dockets(&row.register_id, row.height, 1)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("register {} has no head docket", row.register_id))
                })?;
            let head = docket_from_row(&head_row)?.header;
            let base_version = if row.base_height > 0 {
                let anchor = store.dockets(&row.register_id, row.base_height, 1).await?;
                match anchor.first() {
                    Some(a) => (a.first_version + a.tx_count - 1).max(0) as u64,
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
            let pending = if role == Role::Origin {
                store.count_pending(&row.register_id).await? as u64
            } else {
                0
            };
            inner.held.insert(
                row.register_id.clone(),
                Held {
                    is_public: row.is_public,
                    role,
                    origin_key: hex32(&row.origin_key)?,
                    created_at_ms: row.created_at_ms,
                    head_hash: head.hash(),
                    head,
                    base_height: row.base_height as u64,
                    base_version,
                    pending,
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
            seen,
            gossip_wake,
            inner: Mutex::new(inner),
            seal_wake: Notify::new(),
            shutdown,
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
        });
        for sub in subscriptions {
            let mode = Mode::parse(&sub.mode).ok_or_else(|| {
                StoreError::Corrupt(format!("unknown subscription mode '{}'", sub.mode))
            })?;
            registers.start_subscription(&sub.register_id, mode, sub.created_at_ms);
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
        let rows = self.store.dockets(register_id, number as i64, 1).await?;
        match rows.first() {
            Some(r) if r.number as u64 == number => Ok(Some(hex32(&r.hash)?)),
            _ => Ok(None),
        }
    }

    // ----- origin side ------------------------------------------------------------------

    /// Creates a register originated by this node.
    pub async fn create(
        &self,
        register_id: &str,
        is_public: bool,
    ) -> Result<RegisterView, RegisterError> {
        ledger::validate_register_id(register_id).map_err(RegisterError::Invalid)?;
        if self.lock().held.contains_key(register_id) {
            return Err(RegisterError::Conflict(format!(
                "register '{register_id}' already exists on this node"
            )));
        }
        if self
            .peers
            .carriers(register_id)
            .iter()
            .any(|(_, h)| h.is_origin)
        {
            return Err(RegisterError::Conflict(format!(
                "a connected peer already originates a register named '{register_id}'"
            )));
        }
        let now = now_ms();
        let genesis = ledger::genesis(self.identity.signing_key(), register_id, now);
        let held = Held {
            is_public,
            role: Role::Origin,
            origin_key: self.identity.public_key(),
            created_at_ms: now,
            head_hash: genesis.header.hash(),
            head: genesis.header.clone(),
            base_height: 0,
            base_version: 0,
            pending: 0,
        };
        self.store
            .put_register(&held.to_row(), &docket_row(&genesis))
            .await?;
        self.lock().held.insert(register_id.to_string(), held);
        tracing::info!(
            register = register_id,
            public = is_public,
            "register created"
        );
        if is_public {
            self.advertise();
        }
        self.view(register_id)
            .ok_or_else(|| RegisterError::NotFound(register_id.into()))
    }

    fn check_size(&self, payload: &[u8]) -> Result<(), RegisterError> {
        if payload.len() > self.config.max_transaction_size {
            return Err(RegisterError::TooLarge {
                size: payload.len(),
                limit: self.config.max_transaction_size,
            });
        }
        if payload.is_empty() {
            return Err(RegisterError::Invalid(
                "a transaction payload cannot be empty".into(),
            ));
        }
        Ok(())
    }

    /// Accepts a transaction at this node (origin or replica): stored as pending and queued
    /// for gossip, which carries it to the origin for sealing. Returns the transaction ID.
    pub async fn submit(
        &self,
        register_id: &str,
        payload: Vec<u8>,
    ) -> Result<String, RegisterError> {
        let mut ids = self.submit_many(register_id, vec![payload]).await?;
        ids.pop()
            .ok_or_else(|| RegisterError::Invalid("no transaction given".into()))
    }

    /// Accepts many transactions at once, in one database transaction (all or nothing).
    /// Returns their IDs in order.
    pub async fn submit_many(
        &self,
        register_id: &str,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<String>, RegisterError> {
        for p in &payloads {
            self.check_size(p)?;
        }
        if !self.holds(register_id) {
            return Err(RegisterError::NotFound(format!(
                "this node does not carry register '{register_id}'"
            )));
        }
        let txs: Vec<(String, Vec<u8>)> = payloads
            .into_iter()
            .map(|p| (ledger::tx_id(&p), p))
            .collect();
        let new = self
            .store
            .accept_pending(register_id, &txs, None, now_ms())
            .await?;
        self.accepted(register_id, &new);
        Ok(txs.into_iter().map(|(id, _)| id).collect())
    }

    /// Transactions pulled from `source` through gossip (IDs already checked against their
    /// payloads). Only public registers take part in gossip: a private register that shares
    /// its name with someone's public one must not absorb that register's transactions.
    /// Returns how many were new here.
    pub async fn accept_gossiped(
        &self,
        register_id: &str,
        txs: Vec<(String, Vec<u8>)>,
        source: &str,
    ) -> Result<usize, RegisterError> {
        if !self.is_public(register_id) || txs.is_empty() {
            return Ok(0);
        }
        let new = self
            .store
            .accept_pending(register_id, &txs, Some(source), now_ms())
            .await?;
        self.accepted(register_id, &new);
        Ok(new.len())
    }

    /// Bookkeeping for newly stored pending transactions: mark them seen, wake the sealer
    /// (origin) when a docket's worth waits, and wake gossip to announce them.
    fn accepted(&self, register_id: &str, new: &[String]) {
        for id in new {
            if let Ok(Ok(hash)) = hex::decode(id).map(<[u8; 32]>::try_from) {
                self.seen.insert(&hash);
            }
        }
        let seal_now = {
            let mut inner = self.lock();
            match inner.held.get_mut(register_id) {
                Some(held) if held.role == Role::Origin => {
                    held.pending += new.len() as u64;
                    held.pending >= self.config.max_docket_transactions as u64
                }
                _ => false,
            }
        };
        if seal_now {
            self.seal_wake.notify_one();
        }
        if !new.is_empty() {
            self.gossip_wake.notify_one();
            self.emit(register_id, new.to_vec(), false);
        }
    }

    /// Observes transactions stored and sealed here.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<TxEvent> {
        self.events.subscribe()
    }

    fn emit(&self, register_id: &str, tx_ids: Vec<String>, sealed: bool) {
        if !tx_ids.is_empty() && self.events.receiver_count() > 0 {
            let _ = self.events.send(TxEvent {
                register_id: register_id.to_string(),
                tx_ids: Arc::new(tx_ids),
                sealed,
            }); // no observer listening is fine
        }
    }

    /// Whether this node holds the register (as origin or replica).
    pub fn holds(&self, register_id: &str) -> bool {
        self.lock().held.contains_key(register_id)
    }

    /// Whether the register is held here and public (served to peers).
    pub fn is_public(&self, register_id: &str) -> bool {
        self.lock()
            .held
            .get(register_id)
            .is_some_and(|h| h.is_public)
    }

    /// Registers held as a replica (whose pending transactions still have to reach the origin).
    pub fn replicated_registers(&self) -> Vec<String> {
        self.lock()
            .held
            .iter()
            .filter(|(_, h)| h.role != Role::Origin)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Seals pending transactions of every register this node originates, every
    /// `seal_interval` or as soon as `max_docket_transactions` are waiting. Runs until shutdown.
    pub async fn run_sealer(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.seal_interval) => {}
                _ = self.seal_wake.notified() => {}
            }
            let origins: Vec<String> = self
                .lock()
                .held
                .iter()
                .filter(|(_, h)| h.role == Role::Origin && h.pending > 0)
                .map(|(id, _)| id.clone())
                .collect();
            for register_id in origins {
                loop {
                    match self.seal_once(&register_id).await {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            tracing::error!(register = %register_id, "sealing failed (will retry): {e}");
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Seals one docket from the oldest pending transactions. Returns whether more are waiting
    /// for an immediate next docket.
    async fn seal_once(&self, register_id: &str) -> Result<bool, RegisterError> {
        let max = self.config.max_docket_transactions;
        let mut pending = self.store.pending(register_id, max as i64).await?;
        if pending.is_empty() {
            if let Some(h) = self.lock().held.get_mut(register_id) {
                h.pending = 0;
            }
            return Ok(false);
        }
        // Keep every docket (and so every batch served to peers) within the byte budget.
        let mut bytes = 0;
        let keep = pending
            .iter()
            .take_while(|(_, p)| {
                bytes += p.len();
                bytes <= MAX_BATCH_BYTES
            })
            .count()
            .max(1);
        pending.truncate(keep);
        let Some(previous) = self.lock().held.get(register_id).cloned() else {
            return Ok(false);
        };
        let payloads: Vec<&[u8]> = pending.iter().map(|(_, p)| p.as_slice()).collect();
        let docket = ledger::seal_next(
            self.identity.signing_key(),
            &previous.head,
            &payloads,
            now_ms(),
        );
        let mut next = previous.clone();
        next.head_hash = docket.header.hash();
        next.head = docket.header.clone();
        let ids: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect();
        self.store
            .seal(&next.to_row(), &docket_row(&docket), &ids)
            .await?;
        self.metrics.dockets_sealed.inc();
        self.emit(register_id, ids.clone(), true);
        let more = {
            let mut inner = self.lock();
            let Some(held) = inner.held.get_mut(register_id) else {
                return Ok(false);
            };
            held.head = next.head.clone();
            held.head_hash = next.head_hash;
            held.pending = held.pending.saturating_sub(ids.len() as u64);
            held.pending >= max as u64
        };
        tracing::debug!(register = %register_id, docket = docket.header.number, transactions = ids.len(), "sealed docket");
        let entry = DocketWithTransactions {
            docket,
            origin_key: None,
            transactions: pending.into_iter().map(|(_, p)| p).collect(),
        };
        self.push_to_followers(register_id, Arc::new(CompactDocket::from_full(&entry)));
        Ok(more)
    }

    fn push_to_followers(&self, register_id: &str, entry: Arc<CompactDocket>) {
        let followers: Vec<String> = self
            .lock()
            .followers
            .get(register_id)
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default();
        let mut gone = Vec::new();
        for peer in followers {
            if !self.peers.send(&peer, PeerMessage::Push(entry.clone())) {
                gone.push(peer);
            }
        }
        if !gone.is_empty()
            && let Some(set) = self.lock().followers.get_mut(register_id)
        {
            for peer in gone {
                set.remove(&peer);
            }
        }
    }

    // ----- serving peers ----------------------------------------------------------------

    /// Dockets `from..` of a public register for a peer, within the batch limits.
    pub async fn serve_dockets(
        &self,
        register_id: &str,
        from: u64,
        max: u32,
        headers_only: bool,
    ) -> Result<Vec<DocketWithTransactions>, String> {
        let (held_public, origin_key, base) = {
            let inner = self.lock();
            match inner.held.get(register_id) {
                Some(h) => (h.is_public, h.origin_key, h.base_height),
                None => (false, [0; 32], 0),
            }
        };
        if !held_public {
            // Private and unknown registers get the same answer: nothing about them leaks.
            return Err(format!("register '{register_id}' is not available here"));
        }
        if !headers_only && from <= base && base > 0 {
            return Err(format!(
                "this node holds '{register_id}' only from docket {}",
                base + 1
            ));
        }
        let limit = max.clamp(1, self.config.sync_batch_dockets.max(1)) as i64;
        let rows = self
            .store
            .dockets(register_id, from as i64, limit)
            .await
            .map_err(|e| format!("storage error: {e}"))?;
        let mut dockets = Vec::with_capacity(rows.len());
        for row in &rows {
            dockets.push(docket_from_row(row).map_err(|e| e.to_string())?);
        }
        let mut out = Vec::with_capacity(dockets.len());
        let with_txs: Vec<&Docket> = dockets.iter().filter(|d| d.header.tx_count > 0).collect();
        let mut payloads = if headers_only || with_txs.is_empty() {
            Vec::new()
        } else {
            let first = with_txs[0].header.first_version as i64;
            let last = with_txs[with_txs.len() - 1].header.last_version() as i64;
            self.store
                .payloads(register_id, first, last)
                .await
                .map_err(|e| format!("storage error: {e}"))?
        }
        .into_iter();
        let mut bytes = 0usize;
        for docket in dockets {
            let transactions: Vec<Vec<u8>> = if headers_only {
                Vec::new()
            } else {
                payloads
                    .by_ref()
                    .take(docket.header.tx_count as usize)
                    .collect()
            };
            if !headers_only && transactions.len() != docket.header.tx_count as usize {
                return Err(format!(
                    "incomplete data for docket {}",
                    docket.header.number
                ));
            }
            bytes += transactions.iter().map(Vec::len).sum::<usize>();
            if bytes > MAX_BATCH_BYTES && !out.is_empty() {
                break;
            }
            out.push(DocketWithTransactions {
                origin_key: (docket.header.number == 0).then_some(origin_key),
                docket,
                transactions,
            });
        }
        Ok(out)
    }

    /// A peer wants (or no longer wants) new dockets of a public register pushed to it.
    pub fn set_follower(&self, peer_id: &str, register_id: &str, follow: bool) {
        let mut inner = self.lock();
        let public = inner.held.get(register_id).is_some_and(|h| h.is_public);
        let set = inner.followers.entry(register_id.to_string()).or_default();
        if follow && public {
            set.insert(peer_id.to_string());
        } else {
            set.remove(peer_id);
        }
    }

    /// A peer advertised its registers: wake any subscription it is ahead on (anti-entropy).
    pub fn on_advertisement(&self, peer_id: &str, heights: Vec<RegisterHeight>) {
        let inner = self.lock();
        for h in &heights {
            if let Some(sub) = inner.subscriptions.get(&h.register_id) {
                let ours = inner.held.get(&h.register_id).map(|x| x.head.number);
                if ours.is_none_or(|n| h.height > n) || !sub.following.contains(peer_id) {
                    sub.wake.notify_one();
                }
            }
        }
        drop(inner);
        self.peers.set_advertised(peer_id, heights);
    }

    /// A pushed docket (transaction IDs only): when it is the next one, its payloads are taken
    /// from this node's store (usually already here through gossip) or pulled from the pusher,
    /// then it is verified and applied. A docket further ahead wakes the catch-up instead.
    pub async fn on_push(&self, peer_id: &str, compact: CompactDocket) {
        let register_id = compact.docket.header.register_id.clone();
        let (held, wake) = {
            let inner = self.lock();
            let Some(sub) = inner.subscriptions.get(&register_id) else {
                return;
            };
            (inner.held.get(&register_id).cloned(), sub.wake.clone())
        };
        let Some(held) = held else {
            wake.notify_one();
            return;
        };
        let number = compact.docket.header.number;
        if number <= held.head.number {
            return; // already have it
        }
        if number > held.head.number + 1 {
            wake.notify_one();
            return;
        }
        let entry = match self.resolve_payloads(peer_id, &register_id, compact).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::debug!(peer = %peer_id, register = %register_id, "cannot complete pushed docket: {e}");
                wake.notify_one();
                return;
            }
        };
        if let Err(e) = self.apply(&register_id, vec![entry]).await {
            match e {
                ApplyError::Verify(reason) => {
                    self.peers.verification_failed(peer_id, &reason).await
                }
                ApplyError::Store(e) => {
                    tracing::error!(register = %register_id, "cannot store pushed docket: {e}")
                }
            }
            wake.notify_one();
        }
    }

    /// Fills in a compact docket's payloads: local ones first, the rest pulled from `peer`.
    async fn resolve_payloads(
        &self,
        peer: &str,
        register_id: &str,
        compact: CompactDocket,
    ) -> Result<DocketWithTransactions, String> {
        let hex_ids: Vec<String> = compact.tx_ids.iter().map(hex::encode).collect();
        let mut have: HashMap<String, Vec<u8>> = self
            .store
            .payloads_by_id(register_id, &hex_ids)
            .await
            .map_err(|e| format!("storage error: {e}"))?
            .into_iter()
            .collect();
        let missing: Vec<[u8; 32]> = compact
            .tx_ids
            .iter()
            .zip(&hex_ids)
            .filter(|(_, h)| !have.contains_key(*h))
            .map(|(id, _)| *id)
            .collect();
        if missing.iter().any(|id| self.seen.is_claimed(id)) {
            // Gossip is fetching some of these right now: give it a moment rather than pulling
            // the same payloads a second time.
            let deadline = tokio::time::Instant::now() + GOSSIP_GRACE;
            while missing.iter().any(|id| self.seen.is_claimed(id))
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let arrived = self
                .store
                .payloads_by_id(
                    register_id,
                    &missing.iter().map(hex::encode).collect::<Vec<_>>(),
                )
                .await
                .map_err(|e| format!("storage error: {e}"))?;
            have.extend(arrived);
        }
        let missing: Vec<[u8; 32]> = missing
            .into_iter()
            .filter(|id| !have.contains_key(&hex::encode(id)))
            .collect();
        if !missing.is_empty() {
            let request = PeerRequest::Transactions {
                register_id: register_id.to_string(),
                tx_ids: missing.clone(),
            };
            match self
                .peers
                .request(peer, request, self.config.request_timeout)
                .await?
            {
                PeerResponse::Transactions(Ok(served)) => {
                    self.metrics
                        .docket_payloads_received
                        .inc_by(served.payloads.len() as u64);
                    for payload in served.payloads {
                        have.insert(ledger::tx_id(&payload), payload);
                    }
                }
                PeerResponse::Transactions(Err(e)) => return Err(e),
                _ => return Err("unexpected answer".into()),
            }
        }
        // Any payload still missing (or not matching) makes verification fail below, which
        // is what it is: the pusher announced a docket it could not back.
        let transactions = hex_ids.iter().filter_map(|h| have.remove(h)).collect();
        Ok(DocketWithTransactions {
            docket: compact.docket,
            origin_key: None,
            transactions,
        })
    }

    /// Verifies `batch` in order on top of `held` and stores the verified prefix (with the new
    /// head) in one transaction. Returns how many dockets were stored; a verification failure
    /// after a valid prefix still stores the prefix and then reports the failure.
    async fn apply(
        &self,
        register_id: &str,
        batch: Vec<DocketWithTransactions>,
    ) -> Result<usize, ApplyError> {
        // One writer per register: the same docket can arrive from a pull and from several
        // pushes at once; whoever comes second finds it already stored and skips it.
        let lock = self.apply_lock(register_id);
        let _writer = lock.lock().await;
        let Some(held) = self.lock().held.get(register_id).cloned() else {
            return Ok(0);
        };
        let held = &held;
        let batch: Vec<DocketWithTransactions> = batch
            .into_iter()
            .filter(|e| e.docket.header.number > held.head.number)
            .collect();
        let mut previous = held.head.clone();
        let mut rows = Vec::new();
        let mut verified = Vec::new();
        let mut failure = None;
        for entry in batch {
            if let Err(e) = ledger::verify_next(&held.origin_key, &previous, &entry) {
                failure = Some(e.to_string());
                break;
            }
            let txs: Vec<(String, Vec<u8>)> = entry
                .transactions
                .iter()
                .map(|p| {
                    let hash = ledger::tx_hash(p);
                    self.seen.insert(&hash);
                    (hex::encode(hash), p.clone())
                })
                .collect();
            rows.push((docket_row(&entry.docket), txs));
            previous = entry.docket.header.clone();
            verified.push(entry);
        }
        let stored = verified.len();
        self.metrics.dockets_replicated.inc_by(stored as u64);
        if stored > 0 {
            let mut next = held.clone();
            next.head_hash = previous.hash();
            next.head = previous;
            self.store
                .append(&next.to_row(), &rows)
                .await
                .map_err(ApplyError::Store)?;
            {
                let mut inner = self.lock();
                if let Some(h) = inner.held.get_mut(register_id) {
                    // Only move forward: a concurrent apply of the same dockets is harmless.
                    if next.head.number > h.head.number {
                        h.head = next.head.clone();
                        h.head_hash = next.head_hash;
                    }
                }
                if let Some(sub) = inner.subscriptions.get_mut(register_id) {
                    sub.last_sync_at_ms = Some(now_ms());
                }
            }
            let sealed_ids: Vec<String> = rows
                .iter()
                .flat_map(|(_, txs)| txs.iter().map(|(id, _)| id.clone()))
                .collect();
            self.emit(register_id, sealed_ids, true);
            for entry in verified {
                self.push_to_followers(register_id, Arc::new(CompactDocket::from_full(&entry)));
            }
        }
        match failure {
            Some(reason) => Err(ApplyError::Verify(reason)),
            None => Ok(stored),
        }
    }

    // ----- subscriptions ----------------------------------------------------------------

    /// Subscribes to a register some connected peer advertises.
    pub async fn subscribe(
        self: &Arc<Self>,
        register_id: &str,
        mode: Mode,
    ) -> Result<SubscriptionView, RegisterError> {
        ledger::validate_register_id(register_id).map_err(RegisterError::Invalid)?;
        {
            let inner = self.lock();
            if inner.subscriptions.contains_key(register_id) {
                return Err(RegisterError::Conflict(format!(
                    "already subscribed to '{register_id}'"
                )));
            }
            if inner
                .held
                .get(register_id)
                .is_some_and(|h| h.role == Role::Origin)
            {
                return Err(RegisterError::Conflict(format!(
                    "this node is the origin of '{register_id}'"
                )));
            }
        }
        if self.peers.carriers(register_id).is_empty() {
            return Err(RegisterError::NotFound(format!(
                "no connected peer advertises register '{register_id}'"
            )));
        }
        let now = now_ms();
        self.store
            .put_subscription(&SubscriptionRow {
                register_id: register_id.to_string(),
                mode: mode.as_str().to_string(),
                created_at_ms: now,
            })
            .await?;
        self.start_subscription(register_id, mode, now);
        tracing::info!(register = register_id, mode = mode.as_str(), "subscribed");
        self.subscription(register_id)
            .ok_or_else(|| RegisterError::NotFound(register_id.to_string()))
    }

    fn start_subscription(self: &Arc<Self>, register_id: &str, mode: Mode, created_at_ms: i64) {
        let wake = Arc::new(Notify::new());
        let cancel = self.shutdown.child_token();
        self.lock().subscriptions.insert(
            register_id.to_string(),
            Subscription {
                mode,
                state: SyncState::Subscribing,
                error: None,
                failures: 0,
                created_at_ms,
                last_sync_at_ms: None,
                target_height: None,
                following: HashSet::new(),
                wake: wake.clone(),
                cancel: cancel.clone(),
            },
        );
        // The task ends when the subscription is cancelled (unsubscribe or node shutdown).
        let this = self.clone();
        let register_id = register_id.to_string();
        tokio::spawn(async move { this.run_subscription(register_id, mode, wake, cancel).await });
    }

    /// Stops a subscription at once; the data stays unless `purge`.
    pub async fn unsubscribe(
        &self,
        register_id: &str,
        purge: bool,
    ) -> Result<Option<Purged>, RegisterError> {
        let sub = self.lock().subscriptions.remove(register_id);
        let Some(sub) = sub else {
            return Err(RegisterError::NotFound(format!(
                "not subscribed to '{register_id}'"
            )));
        };
        sub.cancel.cancel();
        for peer in &sub.following {
            self.peers.send(
                peer,
                PeerMessage::Follow {
                    register_id: register_id.to_string(),
                    follow: false,
                },
            );
        }
        self.store.delete_subscription(register_id).await?;
        tracing::info!(register = register_id, purge, "unsubscribed");
        if purge {
            self.purge(register_id).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Deletes a replicated register's data. Refused for registers this node originates and
    /// while a subscription is active.
    pub async fn purge(&self, register_id: &str) -> Result<Purged, RegisterError> {
        {
            let inner = self.lock();
            match inner.held.get(register_id) {
                None => {
                    return Err(RegisterError::NotFound(format!(
                        "no data held for '{register_id}'"
                    )));
                }
                Some(h) if h.role == Role::Origin => {
                    return Err(RegisterError::Conflict(format!(
                        "this node is the origin of '{register_id}'; its data cannot be purged"
                    )));
                }
                Some(_) => {}
            }
            if inner.subscriptions.contains_key(register_id) {
                return Err(RegisterError::Conflict(format!(
                    "'{register_id}' is still subscribed; unsubscribe first (or use unsubscribe --purge)"
                )));
            }
        }
        let (transactions, dockets) = self.store.purge(register_id).await?;
        {
            let mut inner = self.lock();
            inner.held.remove(register_id);
            inner.followers.remove(register_id);
        }
        self.advertise();
        tracing::info!(register = register_id, transactions, dockets, "purged");
        Ok(Purged {
            transactions,
            dockets,
        })
    }

    /// Registers (among `registers`) for which the given peers are the only connected source
    /// of an active subscription: banning them would cut replication off.
    pub fn sole_source_of(&self, peer_ids: &[String]) -> Vec<String> {
        let subscribed: Vec<String> = self.lock().subscriptions.keys().cloned().collect();
        subscribed
            .into_iter()
            .filter(|register_id| {
                let carriers = self.peers.carriers(register_id);
                !carriers.is_empty() && carriers.iter().all(|(id, _)| peer_ids.contains(id))
            })
            .collect()
    }

    async fn run_subscription(
        self: Arc<Self>,
        register_id: String,
        mode: Mode,
        wake: Arc<Notify>,
        cancel: CancellationToken,
    ) {
        let mut retry = SYNC_RETRY_MIN;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let wait = match self.sync_once(&register_id, mode).await {
                Ok(Progress::Advanced) => {
                    retry = SYNC_RETRY_MIN;
                    continue;
                }
                Ok(Progress::AtHead) => {
                    retry = SYNC_RETRY_MIN;
                    self.at_head(&register_id, mode);
                    IDLE_RECHECK
                }
                Err(message) => {
                    self.set_error(&register_id, &message);
                    let wait = retry;
                    retry = (retry * 2).min(SYNC_RETRY_MAX);
                    wait
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn set_state(&self, register_id: &str, state: SyncState, target: Option<u64>) {
        if let Some(sub) = self.lock().subscriptions.get_mut(register_id) {
            sub.state = state;
            if target.is_some() {
                sub.target_height = target;
            }
        }
    }

    fn set_error(&self, register_id: &str, message: &str) {
        let mut inner = self.lock();
        if let Some(sub) = inner.subscriptions.get_mut(register_id) {
            if sub.error.as_deref() != Some(message) {
                tracing::warn!(
                    register = register_id,
                    "replication problem (retrying): {message}"
                );
            }
            sub.state = SyncState::Error;
            sub.error = Some(message.to_string());
            sub.failures += 1;
        }
    }

    /// At the head: mark the state and ask every carrier to push new dockets.
    fn at_head(&self, register_id: &str, mode: Mode) {
        let carriers = self.peers.carriers(register_id);
        let newly: Vec<String> = {
            let mut inner = self.lock();
            let Some(sub) = inner.subscriptions.get_mut(register_id) else {
                return;
            };
            sub.state = match mode {
                Mode::FullReplica => SyncState::FullyReplicated,
                Mode::ForwardOnly => SyncState::Active,
            };
            sub.error = None;
            sub.failures = 0;
            sub.following
                .retain(|p| carriers.iter().any(|(id, _)| id == p));
            let newly: Vec<String> = carriers
                .iter()
                .map(|(id, _)| id.clone())
                .filter(|id| !sub.following.contains(id))
                .collect();
            sub.following.extend(newly.iter().cloned());
            newly
        };
        for peer in newly {
            self.peers.send(
                &peer,
                PeerMessage::Follow {
                    register_id: register_id.to_string(),
                    follow: true,
                },
            );
        }
    }

    /// One round: fetch genesis/anchor if needed, then one batch from the best source ahead of
    /// us. Sources that fail are counted (and penalised for bad data) and the next is tried.
    async fn sync_once(&self, register_id: &str, mode: Mode) -> Result<Progress, String> {
        let carriers = self.peers.carriers(register_id);
        if carriers.is_empty() {
            return Err(format!("no connected peer advertises '{register_id}'"));
        }
        let held = self.lock().held.get(register_id).cloned();
        let Some(held) = held else {
            self.set_state(register_id, SyncState::Subscribing, None);
            return self.start_chain(register_id, mode, &carriers).await;
        };
        let best = carriers.iter().map(|(_, h)| h.height).max().unwrap_or(0);
        if held.head.number >= best {
            return Ok(Progress::AtHead);
        }
        self.set_state(register_id, SyncState::Syncing, Some(best));
        let mut last_error = String::new();
        for (peer, advertised) in carriers.iter().filter(|(_, h)| h.height > held.head.number) {
            // A previous source may have delivered a verified prefix: continue from there.
            let ours = self
                .lock()
                .held
                .get(register_id)
                .map_or(held.head.number, |h| h.head.number);
            if advertised.height <= ours {
                continue;
            }
            let request = PeerRequest::Dockets {
                register_id: register_id.to_string(),
                from: ours + 1,
                max: self.config.sync_batch_dockets,
                headers_only: false,
            };
            let batch = match self
                .peers
                .request(peer, request, self.config.request_timeout)
                .await
            {
                Ok(PeerResponse::Dockets(Ok(batch))) => {
                    let payloads: usize = batch.iter().map(|e| e.transactions.len()).sum();
                    self.metrics
                        .docket_payloads_received
                        .inc_by(payloads as u64);
                    batch
                }
                Ok(PeerResponse::Dockets(Err(e))) | Err(e) => {
                    last_error = format!("{peer}: {e}");
                    continue;
                }
                Ok(_) => {
                    last_error = format!("{peer}: unexpected answer");
                    continue;
                }
            };
            if batch.is_empty() {
                self.peers
                    .record_failure(peer, "advertised dockets it did not serve");
                last_error = format!(
                    "{peer} advertised height {} but served nothing",
                    advertised.height
                );
                continue;
            }
            match self.apply(register_id, batch).await {
                Ok(_) => return Ok(Progress::Advanced),
                Err(ApplyError::Verify(reason)) => {
                    // The bad data is discarded (a verified prefix was kept); try the next
                    // source straight away.
                    self.peers.verification_failed(peer, &reason).await;
                    last_error = format!("{peer} served invalid data: {reason}");
                    continue;
                }
                Err(ApplyError::Store(e)) => return Err(format!("storage error: {e}")),
            }
        }
        Err(format!(
            "no source could serve '{register_id}' ({last_error})"
        ))
    }

    /// First contact with a register: verify its genesis (learning the origin key) and, for a
    /// forward-only subscription, anchor at the current head of the best source.
    async fn start_chain(
        &self,
        register_id: &str,
        mode: Mode,
        carriers: &[(String, RegisterHeight)],
    ) -> Result<Progress, String> {
        let mut last_error = String::from("no carrier holds the genesis docket");
        for (peer, advertised) in carriers.iter().filter(|(_, h)| h.full_replica) {
            let request = PeerRequest::Dockets {
                register_id: register_id.to_string(),
                from: 0,
                max: 1,
                headers_only: false,
            };
            let genesis = match self
                .peers
                .request(peer, request, self.config.request_timeout)
                .await
            {
                Ok(PeerResponse::Dockets(Ok(mut batch))) if !batch.is_empty() => batch.remove(0),
                Ok(PeerResponse::Dockets(Ok(_))) => {
                    last_error = format!("{peer} served no genesis");
                    continue;
                }
                Ok(PeerResponse::Dockets(Err(e))) | Err(e) => {
                    last_error = format!("{peer}: {e}");
                    continue;
                }
                Ok(_) => continue,
            };
            let origin_key = match ledger::verify_genesis(register_id, &genesis) {
                Ok(key) => key,
                Err(e) => {
                    self.peers.verification_failed(peer, &e.to_string()).await;
                    last_error = format!("{peer} served an invalid genesis: {e}");
                    continue;
                }
            };
            let (anchor, base_height) = match mode {
                Mode::FullReplica => (genesis.docket, 0),
                Mode::ForwardOnly if advertised.height == 0 => (genesis.docket, 0),
                Mode::ForwardOnly => match self
                    .fetch_anchor(peer, register_id, advertised.height, &origin_key)
                    .await
                {
                    Ok(anchor) => {
                        let number = anchor.header.number;
                        (anchor, number)
                    }
                    Err(e) => {
                        last_error = e;
                        continue;
                    }
                },
            };
            let held = Held {
                is_public: true,
                role: mode.role(),
                origin_key,
                created_at_ms: now_ms(),
                head_hash: anchor.header.hash(),
                base_version: if base_height > 0 {
                    anchor.header.last_version()
                } else {
                    0
                },
                head: anchor.header.clone(),
                base_height,
                pending: 0,
            };
            self.store
                .put_register(&held.to_row(), &docket_row(&anchor))
                .await
                .map_err(|e| format!("storage error: {e}"))?;
            self.lock().held.insert(register_id.to_string(), held);
            self.advertise();
            return Ok(Progress::Advanced);
        }
        Err(last_error)
    }

    /// The signed header of docket `height`, checked against the origin key.
    async fn fetch_anchor(
        &self,
        peer: &str,
        register_id: &str,
        height: u64,
        origin_key: &[u8; 32],
    ) -> Result<Docket, String> {
        let request = PeerRequest::Dockets {
            register_id: register_id.to_string(),
            from: height,
            max: 1,
            headers_only: true,
        };
        match self
            .peers
            .request(peer, request, self.config.request_timeout)
            .await
        {
            Ok(PeerResponse::Dockets(Ok(batch))) => {
                let entry = batch
                    .into_iter()
                    .next()
                    .filter(|e| {
                        e.docket.header.number == height
                            && e.docket.header.register_id == register_id
                    })
                    .ok_or_else(|| format!("{peer} did not serve docket {height}"))?;
                if let Err(e) = ledger::verify_anchor(origin_key, &entry.docket) {
                    self.peers.verification_failed(peer, &e.to_string()).await;
                    return Err(format!("{peer} served an invalid head: {e}"));
                }
                Ok(entry.docket)
            }
            Ok(PeerResponse::Dockets(Err(e))) | Err(e) => Err(format!("{peer}: {e}")),
            Ok(_) => Err(format!("{peer}: unexpected answer")),
        }
    }

    /// Refreshes the per-register lag gauges (called when `/metrics` is scraped).
    pub fn refresh_metrics(&self) {
        let replicas: Vec<(String, u64, u64)> = self
            .lock()
            .held
            .iter()
            .filter(|(_, h)| h.role != Role::Origin)
            .map(|(id, h)| (id.clone(), h.head.number, h.latest_version()))
            .collect();
        for (register_id, height, version) in replicas {
            let carriers = self.peers.carriers(&register_id);
            let best_height = carriers
                .iter()
                .map(|(_, c)| c.height)
                .max()
                .unwrap_or(height);
            let best_version = carriers
                .iter()
                .map(|(_, c)| c.latest_version)
                .max()
                .unwrap_or(version);
            let label = vec![("register", register_id)];
            self.metrics
                .register_dockets_behind
                .get_or_create(&label)
                .set(best_height.saturating_sub(height) as i64);
            self.metrics
                .register_transactions_behind
                .get_or_create(&label)
                .set(best_version.saturating_sub(version) as i64);
        }
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
            pending: held.pending,
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
            Some(row) => Ok(TxView {
                register_id: register_id.to_string(),
                row,
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
