//! Subscriptions: subscribe, unsubscribe, purge, and the per-subscription task that finds a
//! source, verifies and stores batches, anchors forward-only replicas and follows live.

use super::*;

impl Registers {
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
            .put_subscription(&SubscriptionRecord {
                register_id: register_id.to_string(),
                mode,
                created_at_ms: now,
            })
            .await?;
        self.start_subscription(register_id, mode, now);
        tracing::info!(register = register_id, mode = mode.as_str(), "subscribed");
        self.subscription(register_id)
            .ok_or_else(|| RegisterError::NotFound(register_id.to_string()))
    }

    pub(super) fn start_subscription(
        self: &Arc<Self>,
        register_id: &str,
        mode: Mode,
        created_at_ms: i64,
    ) {
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
        self.pool.close(register_id);
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
            };
            self.store
                .put_register(&held.to_record(), &anchor)
                .await
                .map_err(|e| format!("storage error: {e}"))?;
            self.pool.open(register_id, true, false);
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
}
