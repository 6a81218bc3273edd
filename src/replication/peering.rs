//! What peers ask of this node and push to it: serving dockets, following, pushed dockets
//! (completed from local payloads or pulled once), and the verified, serialised append that
//! every received docket goes through.

use super::*;

impl Registers {
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
        let dockets = self
            .store
            .dockets(register_id, from, limit)
            .await
            .map_err(|e| format!("storage error: {e}"))?;
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
    /// Only held public registers get a follower set (a peer naming anything else creates
    /// nothing), and a set never holds more followers than the node has connections: when it
    /// is full, entries of peers that went away are dropped before the new one is refused.
    pub fn set_follower(&self, peer_id: &str, register_id: &str, follow: bool) {
        let public = self
            .lock()
            .held
            .get(register_id)
            .is_some_and(|h| h.is_public);
        if !(follow && public) {
            let mut inner = self.lock();
            if let Some(set) = inner.followers.get_mut(register_id) {
                set.remove(peer_id);
                if set.is_empty() {
                    inner.followers.remove(register_id);
                }
            }
            return;
        }
        if self.add_follower(peer_id, register_id, None) {
            return;
        }
        // Asked outside this lock: the peer manager has its own.
        let connected = self.peers.connected_ids();
        if !self.add_follower(peer_id, register_id, Some(&connected)) {
            self.metrics.limit_hit("followers");
        }
    }

    /// Follower entries over all registers (what peers' `Follow` frames make this node hold).
    pub fn follower_entries(&self) -> usize {
        self.lock().followers.values().map(HashSet::len).sum()
    }

    /// Adds a follower unless the register's set is full (after keeping only `connected`
    /// peers, when given). Returns whether the peer is now a follower.
    fn add_follower(
        &self,
        peer_id: &str,
        register_id: &str,
        connected: Option<&HashSet<String>>,
    ) -> bool {
        let limit = self.config.max_inbound + self.config.max_outbound;
        let mut inner = self.lock();
        let set = inner.followers.entry(register_id.to_string()).or_default();
        if let Some(connected) = connected {
            set.retain(|id| connected.contains(id));
        }
        if set.contains(peer_id) || set.len() < limit {
            set.insert(peer_id.to_string());
            return true;
        }
        false
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
            .pool
            .payloads(register_id, &hex_ids)
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
        if missing.iter().any(|id| self.pool.is_claimed(id)) {
            // Gossip is fetching some of these right now: give it a moment (woken as soon as
            // it is done) rather than pulling the same payloads a second time.
            self.pool.wait_released(&missing, GOSSIP_GRACE).await;
            let arrived = self
                .pool
                .payloads(
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
                .await
                .map_err(|e| e.to_string())?
            {
                PeerResponse::Transactions(Ok(served)) => {
                    self.metrics
                        .docket_payloads_received
                        .inc_by(served.payloads.len() as u64);
                    for payload in served.payloads {
                        have.insert(ledger::tx_id(&payload), payload);
                    }
                }
                PeerResponse::Transactions(Err(e)) => return Err(e.to_string()),
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
    pub(super) async fn apply(
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
        let mut sealed_ids = Vec::new();
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
                    sealed_ids.push(hash);
                    (hex::encode(hash), p.clone())
                })
                .collect();
            rows.push((entry.docket.clone(), txs));
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
                .append(&next.to_record(), &rows)
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
            self.pool.included(register_id, &sealed_ids);
            for entry in verified {
                self.push_to_followers(register_id, Arc::new(CompactDocket::from_full(&entry)));
            }
        }
        match failure {
            Some(reason) => Err(ApplyError::Verify(reason)),
            None => Ok(stored),
        }
    }
}
