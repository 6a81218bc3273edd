//! The chains of the registers held here: their heads in memory (what this node advertises,
//! reports and syncs from) and the one serialised place where a register's chain grows — verified dockets from peers ([`Chain::apply`]) and
//! dockets sealed here ([`Chain::append_sealed`]) — and where it starts and ends (genesis,
//! adopted replica, purge). Every change of a register's transaction admission goes to the
//! transaction pool from here, so the two never disagree for longer than one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Role;
use crate::clock::Clock;
use crate::events::{EventKind, Events};
use crate::identity::Identity;
use crate::ledger::{self, CompactDocket, Docket, DocketHeader, DocketWithTransactions, Hash};
use crate::protocol::RegisterHeight;
use crate::store::{RegisterRecord, Store, StoreError};
use crate::telemetry::Metrics;
use crate::txpool::TxPool;

/// A register held here.
#[derive(Clone, Debug)]
pub(super) struct Held {
    pub is_public: bool,
    pub role: Role,
    pub origin_key: [u8; 32],
    pub created_at_ms: i64,
    pub head: DocketHeader,
    pub head_hash: Hash,
    /// Dockets up to this number are not held with transactions (forward-only start).
    pub base_height: u64,
    /// Version of the last transaction sealed at `base_height` (not held here).
    pub base_version: u64,
}

impl Held {
    /// A register starting at `anchor` (its genesis, or a forward-only replica's anchor),
    /// held here from `created_at_ms`.
    pub(super) fn new(
        is_public: bool,
        role: Role,
        origin_key: [u8; 32],
        anchor: &DocketHeader,
        base_height: u64,
        created_at_ms: i64,
    ) -> Held {
        Held {
            is_public,
            role,
            origin_key,
            created_at_ms,
            head_hash: anchor.hash(),
            head: anchor.clone(),
            base_height,
            base_version: if base_height > 0 {
                anchor.last_version()
            } else {
                0
            },
        }
    }

    pub(super) fn latest_version(&self) -> u64 {
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

    pub(super) fn height(&self) -> RegisterHeight {
        RegisterHeight {
            register_id: self.head.register_id.clone(),
            height: self.head.number,
            head_hash: self.head_hash,
            latest_version: self.latest_version(),
            // Whether every docket from the genesis is held (a source for full replicas),
            // whatever the subscription's mode now.
            full_replica: self.base_height == 0,
            is_origin: self.role == Role::Origin,
        }
    }
}

/// What [`Chain::apply`] did with a batch.
pub(super) struct Applied {
    /// The dockets stored (the verified prefix), to pass on to followers.
    pub stored: Vec<Arc<CompactDocket>>,
    /// Why the rest of the batch was refused, if it was.
    pub invalid: Option<ledger::VerifyError>,
}

impl Applied {
    /// Nothing stored, and why (`None`: nothing to refuse either).
    fn refused(invalid: Option<ledger::VerifyError>) -> Applied {
        Applied {
            stored: Vec::new(),
            invalid,
        }
    }
}

/// A docket with its transactions (hex ID, payload), as [`Store::append`] takes it.
type DocketRow = (Docket, Vec<(String, Vec<u8>)>);

/// A batch of dockets verified on top of a header, ready for [`Chain::store_checked`].
pub(super) struct Checked {
    /// The header the batch was verified to follow.
    after: DocketHeader,
    /// The last header verified (`after` when none was).
    pub last: DocketHeader,
    /// The verified dockets with their transactions, as the store takes them.
    rows: Vec<DocketRow>,
    /// The same dockets with their transaction IDs, to pass on to followers.
    compact: Vec<Arc<CompactDocket>>,
    sealed_ids: Vec<Hash>,
    /// Why the rest of the batch was refused, if it was.
    pub invalid: Option<ledger::VerifyError>,
}

impl Checked {
    /// Verifies `batch` in order on top of `after` (dockets at or below it are skipped) and
    /// keeps the verified prefix. It needs no lock, so a pull verifies the next batch while
    /// the store is still writing the previous one.
    pub(super) fn new(
        origin_key: &[u8; 32],
        after: DocketHeader,
        batch: Vec<DocketWithTransactions>,
    ) -> Checked {
        let mut checked = Checked {
            last: after.clone(),
            after,
            rows: Vec::new(),
            compact: Vec::new(),
            sealed_ids: Vec::new(),
            invalid: None,
        };
        for entry in batch
            .into_iter()
            .filter(|e| e.docket.header.number > checked.after.number)
        {
            // The IDs the check hashed are the ones stored and passed on to followers.
            let ids = match ledger::verify_next(origin_key, &checked.last, &entry) {
                Ok(ids) => ids,
                Err(e) => {
                    checked.invalid = Some(e);
                    break;
                }
            };
            checked.last = entry.docket.header.clone();
            checked.sealed_ids.extend_from_slice(&ids);
            let txs: Vec<(String, Vec<u8>)> = ids
                .iter()
                .map(crate::ledger::to_hex)
                .zip(entry.transactions)
                .collect();
            checked.compact.push(Arc::new(CompactDocket {
                docket: entry.docket.clone(),
                tx_ids: ids,
            }));
            checked.rows.push((entry.docket, txs));
        }
        checked
    }

    /// How many dockets were verified.
    pub(super) fn dockets(&self) -> usize {
        self.compact.len()
    }
}

#[derive(Default)]
struct Inner {
    held: HashMap<String, Held>,
    /// Serialises writes to each register's chain.
    writers: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

/// The registers held here and their chains.
pub(super) struct Chain {
    store: Arc<dyn Store>,
    pool: Arc<TxPool>,
    metrics: Arc<Metrics>,
    events: Arc<Events>,
    /// Dates what is created here (genesis dockets, registers held).
    clock: Clock,
    inner: Mutex<Inner>,
}

impl Chain {
    /// Loads the registers this node holds, and opens them in the transaction pool; `clock`
    /// dates what is created from now on.
    pub(super) async fn load(
        store: Arc<dyn Store>,
        pool: Arc<TxPool>,
        metrics: Arc<Metrics>,
        events: Arc<Events>,
        clock: Clock,
    ) -> Result<Chain, StoreError> {
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
        Ok(Chain {
            store,
            pool,
            metrics,
            events,
            clock,
            inner: Mutex::new(inner),
        })
    }

    /// Now, by the clock this chain dates what it creates with.
    pub(super) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn writer(&self, register_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.lock()
            .writers
            .entry(register_id.to_string())
            .or_default()
            .clone()
    }

    // ----- reading ------------------------------------------------------------------------

    pub(super) fn get(&self, register_id: &str) -> Option<Held> {
        self.lock().held.get(register_id).cloned()
    }

    pub(super) fn holds(&self, register_id: &str) -> bool {
        self.lock().held.contains_key(register_id)
    }

    pub(super) fn is_public(&self, register_id: &str) -> bool {
        self.lock()
            .held
            .get(register_id)
            .is_some_and(|h| h.is_public)
    }

    /// Every register held here, by name.
    pub(super) fn all(&self) -> Vec<Held> {
        let mut out: Vec<Held> = self.lock().held.values().cloned().collect();
        out.sort_by(|a, b| a.head.register_id.cmp(&b.head.register_id));
        out
    }

    /// Public registers held here, as advertised to peers. Private ones are never included.
    pub(super) fn public_heights(&self) -> Vec<RegisterHeight> {
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

    /// Up to `limit` dockets of a register from `from` on.
    pub(super) async fn dockets(
        &self,
        register_id: &str,
        from: u64,
        limit: i64,
    ) -> Result<Vec<Docket>, StoreError> {
        self.store.dockets(register_id, from, limit).await
    }

    /// Hash of docket `number` of a register held here (public or not).
    pub(super) async fn hash_at(
        &self,
        register_id: &str,
        number: u64,
    ) -> Result<Option<Hash>, StoreError> {
        self.store.docket_hash(register_id, number).await
    }

    // ----- starting and ending ------------------------------------------------------------

    /// Starts a register originated by this node from its genesis.
    pub(super) async fn create(
        &self,
        identity: &Identity,
        register_id: &str,
        is_public: bool,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let genesis = ledger::genesis(identity.signing_key(), register_id, now);
        let held = Held::new(
            is_public,
            Role::Origin,
            identity.public_key(),
            &genesis.header,
            0,
            now,
        );
        self.adopt(held, &genesis).await
    }

    /// Starts holding a register at `anchor` (a verified genesis, or a forward-only anchor).
    pub(super) async fn adopt(&self, held: Held, anchor: &Docket) -> Result<(), StoreError> {
        self.store.put_register(&held.to_record(), anchor).await?;
        let register_id = held.head.register_id.clone();
        self.pool
            .open(&register_id, held.is_public, held.role == Role::Origin);
        self.lock().held.insert(register_id, held);
        Ok(())
    }

    /// Records the role a new subscription gives a register held here (its data is unchanged).
    pub(super) async fn set_role(&self, register_id: &str, role: Role) -> Result<(), StoreError> {
        let writer = self.writer(register_id);
        let _writer = writer.lock().await;
        let Some(mut held) = self.get(register_id) else {
            return Ok(());
        };
        if held.role == role {
            return Ok(());
        }
        held.role = role;
        self.store.append(&held.to_record(), &[]).await?;
        if let Some(h) = self.lock().held.get_mut(register_id) {
            h.role = role;
        }
        Ok(())
    }

    /// Deletes a register's data; returns (transactions, dockets) deleted.
    pub(super) async fn remove(&self, register_id: &str) -> Result<(u64, u64), StoreError> {
        let deleted = self.store.purge(register_id).await?;
        self.lock().held.remove(register_id);
        self.pool.close(register_id);
        Ok(deleted)
    }

    // ----- growing ------------------------------------------------------------------------

    /// Stores a docket this node sealed from pending transactions `tx_ids` on top of `previous`
    /// (the sealer is the only writer of registers this node originates).
    pub(super) async fn append_sealed(
        &self,
        previous: &Held,
        docket: &Docket,
        tx_ids: &[String],
    ) -> Result<(), StoreError> {
        let mut next = previous.clone();
        next.head_hash = docket.header.hash();
        next.head = docket.header.clone();
        self.store.seal(&next.to_record(), docket, tx_ids).await?;
        self.metrics.dockets_sealed.inc();
        if let Some(held) = self.lock().held.get_mut(&docket.header.register_id) {
            held.head = next.head;
            held.head_hash = next.head_hash;
        }
        self.events.publish(EventKind::DocketSealed {
            register_id: docket.header.register_id.clone(),
            docket_number: docket.header.number,
            transactions: u64::from(docket.header.tx_count),
        });
        Ok(())
    }

    /// Verifies `batch` in order on top of the register's head and stores the verified prefix
    /// (with the new head) in one transaction. A verification failure after a valid prefix
    /// still stores the prefix and reports the failure in [`Applied::invalid`].
    pub(super) async fn apply(
        &self,
        register_id: &str,
        batch: Vec<DocketWithTransactions>,
    ) -> Result<Applied, StoreError> {
        // One writer per register: the same docket can arrive from a pull and from several
        // pushes at once; whoever comes second finds it already stored and skips it.
        let writer = self.writer(register_id);
        let _writer = writer.lock().await;
        let Some(held) = self.get(register_id) else {
            return Ok(Applied::refused(None));
        };
        let checked = Checked::new(&held.origin_key, held.head.clone(), batch);
        self.store_locked(held, checked).await
    }

    /// Stores a batch verified without the writer (see [`Checked::new`]), on top of the head
    /// it was verified against. When the head has moved since (a push stored dockets), nothing
    /// is stored: the caller pulls again from the new head. Why the batch was refused is
    /// reported either way, since it was checked against this register's verified chain.
    pub(super) async fn store_checked(&self, checked: Checked) -> Result<Applied, StoreError> {
        let register_id = checked.after.register_id.clone();
        let writer = self.writer(&register_id);
        let _writer = writer.lock().await;
        let Some(held) = self.get(&register_id) else {
            return Ok(Applied::refused(None));
        };
        let moved =
            held.head.number != checked.after.number || held.head_hash != checked.after.hash();
        if moved {
            return Ok(Applied::refused(checked.invalid));
        }
        self.store_locked(held, checked).await
    }

    /// Stores `checked` on top of `held`, which the caller holds the writer of.
    async fn store_locked(&self, held: Held, checked: Checked) -> Result<Applied, StoreError> {
        let register_id = held.head.register_id.clone();
        if checked.compact.is_empty() {
            return Ok(Applied::refused(checked.invalid));
        }
        let mut next = held;
        next.head_hash = checked.last.hash();
        next.head = checked.last;
        self.store.append(&next.to_record(), &checked.rows).await?;
        // Counted once committed, like a pushed docket sealed in place.
        self.metrics
            .dockets_replicated
            .inc_by(checked.compact.len() as u64);
        if let Some(h) = self.lock().held.get_mut(&register_id) {
            // Only move forward: a concurrent apply of the same dockets is harmless.
            if next.head.number > h.head.number {
                h.head = next.head.clone();
                h.head_hash = next.head_hash;
            }
        }
        self.pool.included(&register_id, &checked.sealed_ids);
        self.events.publish(EventKind::DocketReplicated {
            register_id,
            docket_number: next.head.number,
            dockets: checked.compact.len() as u64,
            transactions: checked.sealed_ids.len() as u64,
        });
        Ok(Applied {
            stored: checked.compact,
            invalid: checked.invalid,
        })
    }

    /// Applies a pushed docket whose transactions are all pending here: verified from their
    /// IDs (each was checked against its payload when it was stored) and sealed in place, so
    /// no payload is read or written again. Not the next docket (stored meanwhile, or ahead):
    /// nothing happens. A row no longer pending fails the store's seal, which changes nothing.
    pub(super) async fn apply_held(&self, compact: &CompactDocket) -> Result<Applied, StoreError> {
        let register_id = compact.docket.header.register_id.as_str();
        let writer = self.writer(register_id);
        let _writer = writer.lock().await;
        let Some(held) = self.get(register_id) else {
            return Ok(Applied::refused(None));
        };
        if held.head.number.checked_add(1) != Some(compact.docket.header.number) {
            return Ok(Applied::refused(None));
        }
        let verified = ledger::verify_next_ids(
            &held.origin_key,
            &held.head,
            &compact.docket,
            &compact.tx_ids,
        );
        if let Err(e) = verified {
            return Ok(Applied::refused(Some(e)));
        }
        let mut next = held;
        next.head_hash = compact.docket.header.hash();
        next.head = compact.docket.header.clone();
        let hex_ids: Vec<String> = compact.tx_ids.iter().map(crate::ledger::to_hex).collect();
        self.store
            .seal(&next.to_record(), &compact.docket, &hex_ids)
            .await?;
        self.metrics.dockets_replicated.inc();
        if let Some(h) = self.lock().held.get_mut(register_id)
            && next.head.number > h.head.number
        {
            h.head = next.head.clone();
            h.head_hash = next.head_hash;
        }
        self.pool.included(register_id, &compact.tx_ids);
        self.events.publish(EventKind::DocketReplicated {
            register_id: register_id.to_string(),
            docket_number: next.head.number,
            dockets: 1,
            transactions: compact.tx_ids.len() as u64,
        });
        Ok(Applied {
            stored: vec![Arc::new(compact.clone())],
            invalid: None,
        })
    }
}
