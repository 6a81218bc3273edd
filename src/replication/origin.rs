//! Registers this node originates: creating them, accepting transactions (locally and through
//! gossip) and sealing pending transactions into signed dockets.

use super::*;

/// Most transactions stored in one database transaction of a batch submission.
const STORE_CHUNK_TRANSACTIONS: usize = 500;
/// Most payload bytes stored in one database transaction of a batch submission (a chunk holds
/// at least one transaction, whatever its size).
const STORE_CHUNK_BYTES: usize = 1024 * 1024;

/// A batch submission that failed. Batches are stored in chunks, each its own database
/// transaction, so the store's writer is free between chunks: the chunks before the failure
/// stay stored (valid pending transactions, sealed as usual) and `stored` names them. A batch
/// refused before anything was written (bad payload, unknown register) has `stored` empty.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct BatchError {
    /// IDs of the transactions stored before the failure, in submission order.
    pub stored: Vec<String>,
    #[source]
    pub error: RegisterError,
}

impl From<RegisterError> for BatchError {
    fn from(error: RegisterError) -> BatchError {
        BatchError {
            stored: Vec::new(),
            error,
        }
    }
}

impl Registers {
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
        let mut ids = self
            .submit_many(register_id, vec![payload])
            .await
            .map_err(|e| e.error)?;
        ids.pop()
            .ok_or_else(|| RegisterError::Invalid("no transaction given".into()))
    }

    /// Accepts many transactions: every payload is checked first (a bad one stores nothing),
    /// then they are stored in chunks of at most `STORE_CHUNK_TRANSACTIONS` transactions and
    /// `STORE_CHUNK_BYTES` bytes, each in its own database transaction, so other writers
    /// (single submissions, sealing, replication) are served between chunks. Returns the IDs
    /// in order; on a failure part-way, [`BatchError::stored`] names what was stored.
    pub async fn submit_many(
        &self,
        register_id: &str,
        payloads: Vec<Vec<u8>>,
    ) -> Result<Vec<String>, BatchError> {
        for p in &payloads {
            self.check_size(p)?;
        }
        if !self.holds(register_id) {
            return Err(RegisterError::NotFound(format!(
                "this node does not carry register '{register_id}'"
            ))
            .into());
        }
        let mut stored = Vec::with_capacity(payloads.len());
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
            let new = match self
                .store
                .accept_pending(register_id, &chunk, None, now_ms())
                .await
            {
                Ok(new) => new,
                Err(e) => {
                    return Err(BatchError {
                        stored,
                        error: e.into(),
                    });
                }
            };
            self.accepted(register_id, &new);
            stored.extend(chunk.drain(..).map(|(id, _)| id));
            chunk_bytes = 0;
            // Let requests waiting for the runtime (not only for the writer) go first.
            tokio::task::yield_now().await;
        }
        Ok(stored)
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

    pub(super) fn emit(&self, register_id: &str, tx_ids: Vec<String>, sealed: bool) {
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

    pub(super) fn push_to_followers(&self, register_id: &str, entry: Arc<CompactDocket>) {
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
}
