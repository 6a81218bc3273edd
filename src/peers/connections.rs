//! Connections: who may connect, registering and closing sessions, and what each request to
//! a peer tells us about it (success, failure, penalties).

use super::*;

impl PeerManager {
    // ----- handshake gates -------------------------------------------------------------

    /// Whether a connection from `remote_ip` may even start a handshake.
    pub fn admit_address(&self, remote_ip: IpAddr) -> Result<(), Refusal> {
        let inner = self.lock();
        match inner.ban_matching(None, &[remote_ip], now_ms()) {
            Some(ban) => Err(Refusal::Banned(ban.reason.clone())),
            None => Ok(()),
        }
    }

    /// Admits an inbound TCP connection before anything is read from it: banned addresses
    /// and connections over the per-IP, per-subnet or total caps are refused. The slot is
    /// released when the returned guard is dropped (with the connection).
    pub fn admit_connection(
        &self,
        remote_ip: IpAddr,
    ) -> Result<admission::ConnectionSlot, Refusal> {
        if let Err(refusal) = self.admit_address(remote_ip) {
            self.metrics.connection_refused("banned");
            return Err(refusal);
        }
        self.limits.admit(remote_ip).map_err(|e| {
            self.metrics.connection_refused(e.label());
            self.metrics.limit_hit(e.label());
            Refusal::AddressFull
        })
    }

    /// Open inbound TCP connections on the peer port.
    pub fn open_connections(&self) -> usize {
        self.limits.open()
    }

    /// Makes room for a new inbound peer from `remote_ip`: refuses it when its address already
    /// has `max_inbound_per_ip` inbound peers, and when every inbound slot is taken evicts the
    /// least valuable inbound peer (see [`admission::select_eviction`]) or refuses when all are
    /// protected.
    fn make_inbound_room(&self, inner: &mut Inner, remote_ip: IpAddr) -> Result<(), Refusal> {
        let remote_ip = remote_ip.to_canonical();
        let from_ip = inner
            .connections
            .values()
            .filter(|c| {
                c.direction == Direction::Inbound && c.remote_ip.to_canonical() == remote_ip
            })
            .count();
        if from_ip >= self.config.max_inbound_per_ip {
            self.metrics.connection_refused("inbound_per_ip");
            self.metrics.limit_hit("inbound_per_ip");
            return Err(Refusal::AddressFull);
        }
        if inner.inbound_count() < self.config.max_inbound {
            return Ok(());
        }
        let candidates: Vec<admission::EvictionCandidate> = inner
            .connections
            .iter()
            .filter(|(_, c)| c.direction == Direction::Inbound)
            .filter_map(|(id, c)| {
                let peer = inner.peers.get(id)?;
                if peer.is_seed {
                    return None;
                }
                let quality = peer.quality.breakdown(now_ms());
                Some(admission::EvictionCandidate {
                    peer_id: id.clone(),
                    ip: c.remote_ip,
                    connected_at_ms: c.connected_at_ms,
                    latency_ms: peer.quality.latency().map(|l| l.1),
                    quality: quality.score,
                })
            })
            .collect();
        let Some(victim) = admission::select_eviction(candidates) else {
            self.metrics.connection_refused("inbound_full");
            return Err(Refusal::InboundFull);
        };
        if let Some(conn) = inner.connections.remove(&victim) {
            close_session(
                &conn,
                "evicted to make room for another inbound peer".into(),
            );
        }
        self.metrics.connection_refused("evicted");
        tracing::info!(peer = %victim, "inbound slots full: evicted an inbound peer");
        Ok(())
    }

    /// Registers a connection after a successful handshake, or refuses it. The dialler passes
    /// the target it dialled so its bookkeeping (seed, backoff) is settled.
    pub fn register_connection(
        &self,
        peer: VerifiedPeer,
        direction: Direction,
        remote_ip: IpAddr,
        dialed: Option<&DialTarget>,
    ) -> Result<SessionHandle, Refusal> {
        let now = now_ms();
        let mut inner = self.lock();
        let inner = &mut *inner;
        if peer.peer_id == self.identity.peer_id() {
            return Err(Refusal::SelfConnection);
        }
        let ips: Vec<IpAddr> = bans::address_ip(&peer.address)
            .into_iter()
            .chain([remote_ip])
            .collect();
        if let Some(ban) = inner.ban_matching(Some(&peer.peer_id), &ips, now) {
            return Err(Refusal::Banned(ban.reason.clone()));
        }
        if direction == Direction::Inbound && !inner.connections.contains_key(&peer.peer_id) {
            self.make_inbound_room(inner, remote_ip)?;
        }
        let dialer_id = match direction {
            Direction::Outbound => self.identity.peer_id().to_string(),
            Direction::Inbound => peer.peer_id.clone(),
        };
        if let Some(existing) = inner.connections.get(&peer.peer_id) {
            // Both ends keep the connection dialled by the smaller peer ID, so a simultaneous
            // dial in both directions settles on the same single connection. A new connection
            // from the same dialler replaces the old one (the old one is a stale leftover).
            if existing.dialer_id != dialer_id && existing.dialer_id < dialer_id {
                return Err(Refusal::Duplicate);
            }
            close_session(existing, "replaced by a newer connection".to_string());
        }

        if let Some(target) = dialed {
            // A hearsay entry that turned out to be someone else is dropped.
            if let Some(expected) = &target.expected_peer_id
                && *expected != peer.peer_id
                && inner
                    .peers
                    .get(expected)
                    .is_some_and(|p| p.public_key.is_empty())
            {
                tracing::info!(expected = %expected, actual = %peer.peer_id, address = %target.address,
                    "address belongs to a different peer than advertised; forgetting the advertised ID");
                inner.remove_peer(expected);
            }
            if target.seed
                && let Some(seed) = inner.seeds.iter_mut().find(|s| s.address == target.address)
            {
                seed.peer_id = Some(peer.peer_id.clone());
                seed.failures = 0;
                seed.dialing = false;
            }
        }

        // Every path that adds a record keeps the table within its bound.
        if !inner.peers.contains_key(&peer.peer_id)
            && inner.peers.len() >= self.config.max_known_peers
            && !self.evict_least_useful(inner, i64::MAX)
        {
            self.metrics.limit_hit("known_peers");
            return Err(Refusal::TableFull);
        }
        let record = inner
            .peers
            .entry(peer.peer_id.clone())
            .or_insert_with(|| Peer::new(peer.peer_id.clone(), peer.address.clone(), now, now));
        record.public_key = peer.public_key;
        record.name = peer.name;
        record.address = peer.address;
        record.software_version = Some(peer.software_version);
        record.remote_ip = Some(remote_ip);
        record.last_seen_ms = now;
        record.failure_count = 0;
        record.dialing = false;
        record.quality.record_success(None);
        if dialed.is_some_and(|t| t.seed) {
            record.is_seed = true;
        }
        inner.mark_dirty(&peer.peer_id);

        inner.next_conn_id += 1;
        let conn_id = inner.next_conn_id;
        let (tx, rx) = mpsc::channel(SESSION_COMMAND_QUEUE);
        inner.connections.insert(
            peer.peer_id.clone(),
            Connection {
                conn_id,
                direction,
                dialer_id,
                remote_ip,
                connected_at_ms: now,
                commands: tx,
            },
        );
        self.metrics
            .handshakes
            .get_or_create(&vec![("result", "accepted")])
            .inc();
        tracing::info!(peer = %peer.peer_id, direction = direction.as_str(), "peer connected");
        Ok(SessionHandle {
            conn_id,
            commands: rx,
        })
    }

    /// IDs of the peers connected right now.
    pub fn connected_ids(&self) -> HashSet<String> {
        self.lock().connections.keys().cloned().collect()
    }

    /// Counts a refused or failed handshake.
    pub fn handshake_failed(&self, refused: bool) {
        let result = if refused { "refused" } else { "failed" };
        self.metrics
            .handshakes
            .get_or_create(&vec![("result", result)])
            .inc();
    }

    /// A session ended. Only the session that registered `conn_id` can remove its entry.
    pub fn connection_closed(&self, peer_id: &str, conn_id: u64, outcome: &CloseOutcome) {
        let now = now_ms();
        let mut inner = self.lock();
        if inner.connections.get(peer_id).map(|c| c.conn_id) != Some(conn_id) {
            return;
        }
        inner.connections.remove(peer_id);
        let failed = matches!(outcome, CloseOutcome::Failed(_));
        if failed {
            self.metrics.peer_failures.inc();
        }
        let delay = if failed {
            let failures = inner.peers.get(peer_id).map_or(1, |p| p.failure_count + 1);
            self.backoff(failures)
        } else {
            self.backoff(1)
        };
        if let Some(peer) = inner.peers.get_mut(peer_id) {
            peer.last_seen_ms = now;
            if failed {
                peer.failure_count += 1;
                peer.quality.record_failure();
            }
            peer.next_dial_ms = now + delay.as_millis() as i64;
            let is_seed = peer.is_seed;
            inner.mark_dirty(peer_id);
            if is_seed
                && let Some(seed) = inner
                    .seeds
                    .iter_mut()
                    .find(|s| s.peer_id.as_deref() == Some(peer_id))
            {
                seed.next_attempt_ms = now + delay.as_millis() as i64;
            }
        }
        match outcome {
            CloseOutcome::Graceful(reason) => {
                tracing::info!(peer = %peer_id, %reason, "peer disconnected")
            }
            CloseOutcome::Failed(reason) => {
                tracing::warn!(peer = %peer_id, %reason, "peer connection failed")
            }
        }
    }

    // ----- observations ----------------------------------------------------------------

    /// A request to the peer succeeded (with its round trip when measured).
    pub fn record_success(&self, peer_id: &str, rtt: Option<Duration>) {
        if let Some(rtt) = rtt {
            self.metrics.heartbeat_latency.observe(rtt.as_secs_f64());
        }
        let mut inner = self.lock();
        if let Some(peer) = inner.peers.get_mut(peer_id) {
            peer.failure_count = 0;
            peer.last_seen_ms = now_ms();
            peer.quality
                .record_success(rtt.map(|d| d.as_secs_f64() * 1000.0));
            inner.mark_dirty(peer_id);
        }
    }

    /// A request to the peer failed. Returns true when the peer has now failed `max_failures`
    /// times in a row and must be disconnected.
    pub fn record_failure(&self, peer_id: &str, reason: &str) -> bool {
        self.metrics.peer_failures.inc();
        let mut inner = self.lock();
        let Some(peer) = inner.peers.get_mut(peer_id) else {
            return false;
        };
        peer.failure_count += 1;
        peer.quality.record_failure();
        let count = peer.failure_count;
        inner.mark_dirty(peer_id);
        tracing::debug!(peer = %peer_id, failures = count, %reason, "request to peer failed");
        count >= self.config.max_failures
    }

    /// Lowers a peer's validity score (bad data, protocol violations) and records why.
    pub fn penalize(&self, peer_id: &str, amount: f64, reason: &str) {
        let mut inner = self.lock();
        if let Some(peer) = inner.peers.get_mut(peer_id) {
            peer.quality.penalize(amount, reason, now_ms());
            inner.mark_dirty(peer_id);
            tracing::warn!(peer = %peer_id, %reason, "peer penalised");
        }
    }
}
