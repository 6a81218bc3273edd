//! Registers this node originates: creating them, accepting transactions submitted here and
//! sealing pending transactions into signed dockets.

use super::*;

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
        };
        self.store.put_register(&held.to_record(), &genesis).await?;
        self.pool.open(register_id, is_public, true);
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
    /// then the transaction pool stores them in chunks, each in its own database transaction
    /// (see [`TxPool::accept_local`]). Returns the IDs in order; on a failure part-way,
    /// [`BatchError::stored`] names what was stored.
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
        self.pool
            .accept_local(register_id, payloads)
            .await
            .map_err(|e| BatchError {
                stored: e.stored,
                error: e.error.into(),
            })
    }

    /// Observes transactions stored and sealed here.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<TxEvent> {
        self.pool.events()
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

    /// Seals pending transactions of every register this node originates, every
    /// `seal_interval` or as soon as `max_docket_transactions` are waiting. Runs until shutdown.
    pub async fn run_sealer(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.seal_interval) => {}
                _ = self.pool.seal_wanted() => {}
            }
            for register_id in self.pool.sealable() {
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
        let mut pending = self.pool.oldest_pending(register_id, max).await?;
        if pending.is_empty() {
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
        self.store.seal(&next.to_record(), &docket, &ids).await?;
        self.metrics.dockets_sealed.inc();
        let sealed = ids.len();
        let more = self.pool.sealed_here(register_id, ids);
        {
            let mut inner = self.lock();
            let Some(held) = inner.held.get_mut(register_id) else {
                return Ok(false);
            };
            held.head = next.head.clone();
            held.head_hash = next.head_hash;
        }
        tracing::debug!(register = %register_id, docket = docket.header.number, transactions = sealed, "sealed docket");
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
