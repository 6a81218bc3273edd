//! The transaction pool: every transaction this node accepts passes through here, below both
//! gossip and replication (which depend on it, never on each other). It owns:
//! - admission: which registers take transactions here (public ones also through gossip),
//!   told by replication as registers are created, replicated and purged;
//! - pending transactions: storing them through one committer that groups concurrent writes
//!   into one commit ([`commit`]), their count per register this node originates, and the
//!   wake-up for the sealer when a docket's worth waits;
//! - the seen-set ([`seen`]) and the in-flight claims ([`claims`]) that keep a payload from
//!   being fetched twice, and what the register holds, from memory where it can (`held.rs`);
//! - the payloads of the transactions stored most recently (`payloads.rs`), so the pulls it
//!   serves under load are answered without reading them back;
//! - the announcement queue ([`queue`]) gossip drains;
//! - the transaction events ([`TxEvent`]): accepted here, and sealed in a docket held here.

pub(crate) mod claims;
mod commit;
mod held;
mod newest;
mod payloads;
pub(crate) use commit::Committer;
#[cfg(test)]
mod pool_props;
#[cfg(test)]
mod pool_tests;
mod queue;
mod recent;
pub(crate) mod seen;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::clock::Clock;
use crate::config::Config;
use crate::ledger;
use crate::protocol::TxRef;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
pub(crate) use claims::Claim;
use claims::Claims;
use payloads::RecentPayloads;
use queue::AnnouncementQueue;
pub(crate) use queue::{Announcements, Holders};
use recent::RecentSet;
use seen::SeenSet;

/// Seen-set generation size.
const SEEN_CAPACITY: usize = 200_000;
/// Transactions remembered exactly as stored here (about 60 bytes each).
const RECENT_CAPACITY: usize = 100_000;
/// Payload bytes kept of the transactions stored most recently, to serve pulls from: at ten
/// thousand transactions of 200 bytes a second, the last two seconds.
const RECENT_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;
/// Events buffered per observer before the oldest are dropped. Each names a commit group's or
/// a docket's transactions, and an observer that falls further behind is told it lagged and
/// reads the store instead (`platform/live.rs`). Every slot is written when the pool is made:
/// 16 K of them held 1 MiB of an idle node's memory.
const EVENT_BUFFER: usize = 1024;
/// Most transactions of a batch submission handed to the committer at once.
const STORE_CHUNK_TRANSACTIONS: usize = 1000;
/// Most payload bytes of a batch submission handed to the committer at once (a chunk holds
/// at least one transaction, whatever its size).
const STORE_CHUNK_BYTES: usize = 1024 * 1024;
/// Pending transactions of a register queued for announcement at start, at most.
const RESTORE_ANNOUNCEMENTS: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum TxPoolError {
    #[error("this node does not carry register '{0}'")]
    UnknownRegister(String),
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A batch that failed part-way: the chunks before the failure stay stored (valid pending
/// transactions, sealed as usual) and `stored` names them, in submission order.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PartialAccept {
    pub stored: Vec<String>,
    #[source]
    pub error: TxPoolError,
}

/// Transactions submitted at this node and stored (see [`TxPool::accept_local`]).
#[derive(Debug)]
pub struct Accepted {
    /// Their IDs, in submission order.
    pub ids: Vec<String>,
    /// How many were held already (pending or sealed, or twice in the submission): a
    /// transaction is stored once, so these changed nothing.
    pub already_held: usize,
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

/// How a register takes transactions here.
struct Admission {
    /// Takes part in gossip (private registers never do).
    public: bool,
    /// This node seals the register's transactions.
    origin: bool,
    /// Transactions accepted but not yet sealed (origin only).
    pending: u64,
}

/// The transaction pool of one node.
pub struct TxPool {
    store: Arc<dyn Store>,
    clock: Clock,
    max_docket_transactions: u64,
    seen: SeenSet,
    recent: RecentSet,
    recent_payloads: RecentPayloads,
    claims: Claims,
    queue: AnnouncementQueue,
    registers: Mutex<HashMap<String, Admission>>,
    seal_wake: Notify,
    events: tokio::sync::broadcast::Sender<TxEvent>,
    /// Writes of pending transactions, to the committer.
    commits: mpsc::Sender<commit::Request>,
}

impl TxPool {
    /// The pool, and the committer that writes its pending transactions (a node service to
    /// start before anything is committed); `clock` dates what is stored and decides what is
    /// stale.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        config: &Config,
        metrics: Arc<Metrics>,
        node_events: Arc<crate::events::Events>,
    ) -> (Arc<TxPool>, Committer) {
        let (commits, requests) = mpsc::channel(commit::QUEUED_REQUESTS);
        let pool = Arc::new(TxPool {
            queue: AnnouncementQueue::new(metrics, node_events, config.gossip_queue_limit),
            store,
            clock,
            max_docket_transactions: config.max_docket_transactions as u64,
            seen: SeenSet::new(SEEN_CAPACITY),
            recent: RecentSet::new(RECENT_CAPACITY),
            recent_payloads: RecentPayloads::new(RECENT_PAYLOAD_BYTES),
            claims: Claims::default(),
            registers: Mutex::new(HashMap::new()),
            seal_wake: Notify::new(),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
            commits,
        });
        let committer = Committer {
            pool: pool.clone(),
            requests,
        };
        (pool, committer)
    }

    /// The clock this pool reads "now" from; the registers it serves read the same one.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Admission>> {
        self.registers.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ----- admission ----------------------------------------------------------------------

    /// A register held since before this start: takes transactions again, with the pending
    /// ones already stored counted (when this node is its origin) and, when public, queued
    /// for announcement again (a restart may have cut their spread short).
    pub async fn restore(
        &self,
        register_id: &str,
        public: bool,
        origin: bool,
    ) -> Result<(), StoreError> {
        let pending = if origin {
            self.store.count_pending(register_id).await?.max(0) as u64
        } else {
            0
        };
        self.lock().insert(
            register_id.to_string(),
            Admission {
                public,
                origin,
                pending,
            },
        );
        if public {
            let ids = self
                .store
                .pending_before(register_id, i64::MAX, RESTORE_ANNOUNCEMENTS)
                .await?;
            self.queue.push(register_id, &unheld(&ids));
        }
        Ok(())
    }

    /// A register new here (created or first replicated) takes transactions from now on.
    pub fn open(&self, register_id: &str, public: bool, origin: bool) {
        self.lock().insert(
            register_id.to_string(),
            Admission {
                public,
                origin,
                pending: 0,
            },
        );
    }

    /// A register no longer held here.
    pub fn close(&self, register_id: &str) {
        self.lock().remove(register_id);
        self.recent.forget_register(register_id);
        self.recent_payloads.forget_register(register_id);
    }

    /// Whether the register is held here and public (takes part in gossip).
    pub fn is_public(&self, register_id: &str) -> bool {
        self.lock().get(register_id).is_some_and(|a| a.public)
    }

    /// Transactions accepted and not yet sealed here (registers this node originates).
    pub fn pending_count(&self, register_id: &str) -> u64 {
        self.lock().get(register_id).map_or(0, |a| a.pending)
    }

    // ----- accepting ----------------------------------------------------------------------

    /// Accepts transactions submitted at this node: handed to the committer in chunks of at
    /// most `STORE_CHUNK_TRANSACTIONS` transactions and `STORE_CHUNK_BYTES` bytes, each
    /// committed before the next is sent, so other writers (single submissions, sealing,
    /// replication) are served between chunks. Returns the IDs in order. Payloads are checked
    /// by the caller.
    pub async fn accept_local(
        &self,
        register_id: &str,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Accepted, PartialAccept> {
        if !self.lock().contains_key(register_id) {
            return Err(PartialAccept {
                stored: Vec::new(),
                error: TxPoolError::UnknownRegister(register_id.to_string()),
            });
        }
        let mut stored = Vec::with_capacity(payloads.len());
        let mut already_held = 0;
        let mut chunk: Vec<(String, Vec<u8>)> = Vec::new();
        let mut chunk_bytes = 0;
        let mut payloads = payloads.into_iter().peekable();
        while let Some(payload) = payloads.next() {
            chunk_bytes += payload.len();
            chunk.push((ledger::tx_id(&payload), payload));
            let full = chunk.len() >= STORE_CHUNK_TRANSACTIONS
                || payloads
                    .peek()
                    .is_none_or(|next| chunk_bytes + next.len() > STORE_CHUNK_BYTES);
            if !full {
                continue;
            }
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            let sent = chunk.len();
            let new = match self
                .commit(register_id, std::mem::take(&mut chunk), HashMap::new())
                .await
            {
                Ok(new) => new,
                Err(error) => return Err(PartialAccept { stored, error }),
            };
            already_held += sent - new.len();
            stored.extend(ids);
            chunk_bytes = 0;
        }
        Ok(Accepted {
            ids: stored,
            already_held,
        })
    }

    /// Transactions pulled through gossip (IDs already checked against their payloads), each
    /// with the peers known to hold it (the one that served it and the others that announced
    /// it), which are not told about it. Only public registers take part in gossip: a private
    /// register that shares its name with someone's public one must not absorb that
    /// register's transactions. Returns how many were new here.
    pub async fn accept_gossiped(
        &self,
        register_id: &str,
        txs: Vec<(String, Vec<u8>)>,
        holders: HashMap<String, Holders>,
    ) -> Result<usize, TxPoolError> {
        if !self.is_public(register_id) || txs.is_empty() {
            return Ok(0);
        }
        Ok(self.commit(register_id, txs, holders).await?.len())
    }

    /// Bookkeeping for newly stored pending transactions (run by the committer): mark them
    /// seen, wake the sealer when a docket's worth waits, queue their announcement (not back
    /// to the peers known to hold them) and tell observers.
    fn accepted(
        &self,
        register_id: &str,
        new: Vec<String>,
        txs: Vec<(String, Vec<u8>)>,
        holders: &HashMap<String, Holders>,
    ) {
        if new.is_empty() {
            return;
        }
        // Each ID parsed once, kept beside its hex (which holders and payloads are named by).
        let parsed: Vec<(&str, [u8; 32])> = (new.iter())
            .filter_map(|hex| Some((hex.as_str(), parse_id(hex)?)))
            .collect();
        let ids: Vec<[u8; 32]> = parsed.iter().map(|&(_, id)| id).collect();
        for id in &ids {
            self.seen.insert(id);
        }
        let (seal_now, public) = match self.lock().get_mut(register_id) {
            // Stored after the register was closed (a purge raced with this commit): it is
            // not held as far as the pool is concerned.
            None => return,
            Some(a) if a.origin => {
                a.pending += new.len() as u64;
                (a.pending >= self.max_docket_transactions, a.public)
            }
            Some(a) => (false, a.public),
        };
        self.recent.insert(register_id, &ids, false);
        if seal_now {
            self.seal_wake.notify_one();
        }
        if public {
            // Peers pull what is announced: the payloads are kept to serve them.
            let new_ids: HashMap<&str, [u8; 32]> = parsed.iter().copied().collect();
            let payloads = (txs.into_iter())
                .filter_map(|(hex, payload)| Some((*new_ids.get(hex.as_str())?, payload)))
                .collect();
            self.recent_payloads.insert(register_id, payloads);
            let entries: Vec<([u8; 32], Holders)> = (parsed.iter())
                .map(|&(hex, id)| (id, holders.get(hex).cloned().unwrap_or_else(no_holders)))
                .collect();
            self.queue.push(register_id, &entries);
        }
        self.emit(register_id, new, false);
    }

    // ----- events -------------------------------------------------------------------------

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

    // ----- sealing ------------------------------------------------------------------------

    /// Resolves when a register this node originates has a docket's worth pending.
    pub async fn seal_wanted(&self) {
        self.seal_wake.notified().await
    }

    /// Registers this node originates with transactions pending.
    pub fn sealable(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, a)| a.origin && a.pending > 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The oldest pending transactions of a register, up to `limit`, as (tx_id, payload).
    pub async fn oldest_pending(
        &self,
        register_id: &str,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, TxPoolError> {
        let pending = self.store.pending(register_id, limit as i64).await?;
        if pending.is_empty()
            && let Some(a) = self.lock().get_mut(register_id)
        {
            a.pending = 0;
        }
        Ok(pending)
    }

    /// Transactions this node sealed into a docket (already stored). Returns whether a
    /// docket's worth is still waiting.
    pub fn sealed_here(&self, register_id: &str, tx_ids: Vec<String>) -> bool {
        let ids = parse_ids(&tx_ids);
        self.recent.insert(register_id, &ids, true);
        self.queue.remove(register_id, &ids);
        let more = match self.lock().get_mut(register_id) {
            Some(a) => {
                a.pending = a.pending.saturating_sub(tx_ids.len() as u64);
                a.pending >= self.max_docket_transactions
            }
            None => false,
        };
        self.emit(register_id, tx_ids, true);
        more
    }

    /// Transactions that arrived sealed in a replicated docket (already stored).
    pub fn included(&self, register_id: &str, tx_ids: &[[u8; 32]]) {
        for id in tx_ids {
            self.seen.insert(id);
        }
        self.recent.insert(register_id, tx_ids, true);
        self.queue.remove(register_id, tx_ids);
        self.emit(
            register_id,
            tx_ids.iter().map(crate::ledger::to_hex).collect(),
            true,
        );
    }

    // ----- in-flight claims ---------------------------------------------------------------

    /// Claims transactions for fetching; see [`Claims::claim`].
    pub fn claim(&self, ids: Vec<TxRef>) -> (Claim<'_>, Vec<TxRef>) {
        self.claims.claim(ids)
    }

    /// Waits (at most `within`) until nobody is fetching any of `ids`; see
    /// [`Claims::wait_released`].
    pub async fn wait_released(&self, ids: &[[u8; 32]], within: Duration) -> bool {
        self.claims.wait_released(ids, within).await
    }

    pub fn is_claimed(&self, id: &[u8; 32]) -> bool {
        self.claims.is_claimed(id)
    }

    // ----- announcements ------------------------------------------------------------------

    /// Resolves when transactions were accepted since the last call (there is something new
    /// to announce).
    pub async fn announcements_waiting(&self) {
        self.queue.wait().await
    }

    /// Takes up to `per_register` queued announcements of each public register for which
    /// `ready` answers something (handed out with that answer); the others stay queued.
    /// Queued entries of private or unknown registers are dropped.
    pub fn take_announcements<T>(
        &self,
        ready: impl FnMut(&str) -> Option<T>,
        per_register: usize,
    ) -> Vec<(T, Announcements)> {
        self.queue
            .take(|register| self.is_public(register), ready, per_register)
    }

    /// The pending transactions of `register_id` to tell a peer that has just started a
    /// session (at most `limit`): none unless this node replicates the register and it is
    /// public (an origin seals its own; a private register is not gossiped).
    pub async fn pending_for_new_session(
        &self,
        register_id: &str,
        limit: i64,
    ) -> Result<Vec<[u8; 32]>, TxPoolError> {
        let replicated = self
            .lock()
            .get(register_id)
            .is_some_and(|a| !a.origin && a.public);
        if !replicated {
            return Ok(Vec::new());
        }
        let ids = self
            .store
            .pending_before(register_id, self.clock.now_ms().saturating_add(1), limit)
            .await?;
        Ok(parse_ids(&ids))
    }

    /// Queues another announcement for up to `limit` transactions per replicated register
    /// that have stayed pending longer than `older_than` (the origin has not sealed them yet,
    /// so they may not have reached it).
    pub async fn requeue_stale(&self, older_than: Duration, limit: i64) -> Result<(), TxPoolError> {
        let cutoff = self.clock.now_ms() - older_than.as_millis() as i64;
        let replicas: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, a)| !a.origin)
            .map(|(id, _)| id.clone())
            .collect();
        for register in replicas {
            let stale = self.store.pending_before(&register, cutoff, limit).await?;
            if !stale.is_empty() {
                tracing::debug!(register = %register, count = stale.len(), "re-announcing pending transactions");
                self.queue.push(&register, &unheld(&stale));
            }
        }
        Ok(())
    }
}

/// A transaction ID (hex, as this node stores it) as bytes; a malformed one is logged and
/// skipped (only a damaged store holds one).
fn parse_id(id: &str) -> Option<[u8; 32]> {
    let parsed = crate::ledger::hash_from_hex(id);
    if parsed.is_none() {
        tracing::error!(%id, "malformed stored transaction ID; not announcing it");
    }
    parsed
}

/// Transaction IDs as bytes, each as [`parse_id`] reads it.
fn parse_ids(ids: &[String]) -> Vec<[u8; 32]> {
    ids.iter().filter_map(|id| parse_id(id)).collect()
}

fn no_holders() -> Holders {
    Arc::from([])
}

/// Transactions to announce to every carrier (none known to hold them).
fn unheld(ids: &[String]) -> Vec<([u8; 32], Holders)> {
    parse_ids(ids)
        .into_iter()
        .map(|id| (id, no_holders()))
        .collect()
}
