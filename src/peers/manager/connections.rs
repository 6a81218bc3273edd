//! The peer manager's connections: admission of a TCP connection before any byte is read,
//! the session registered once a handshake completes (inbound room made by eviction), and its
//! end.

use super::*;

impl PeerManager {
    // ----- admission ---------------------------------------------------------------------

    /// Whether a connection from `remote_ip` may even start a handshake.
    pub fn admit_address(&self, remote_ip: IpAddr) -> Result<(), Refusal> {
        match self
            .lock()
            .bans
            .matching(None, &[remote_ip], self.clock.now_ms())
        {
            Some(ban) => Err(Refusal::Banned(ban.reason.clone())),
            None => Ok(()),
        }
    }

    /// Admits an inbound TCP connection before anything is read from it: banned addresses
    /// and connections over the per-IP, per-subnet or total caps are refused. The slot is
    /// released when the returned guard is dropped (with the connection).
    pub fn admit_connection(&self, remote_ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
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
    fn make_inbound_room(&self, state: &mut State, remote_ip: IpAddr) -> Result<(), Refusal> {
        if state.links.inbound_from(remote_ip) >= self.config.max_inbound_per_ip {
            self.metrics.connection_refused("inbound_per_ip");
            self.metrics.limit_hit("inbound_per_ip");
            return Err(Refusal::AddressFull);
        }
        if state.links.inbound_count() < self.config.max_inbound {
            return Ok(());
        }
        let candidates = state.eviction_candidates(self.clock.now_ms());
        let Some(victim) = admission::select_eviction(candidates) else {
            self.metrics.connection_refused("inbound_full");
            return Err(Refusal::InboundFull);
        };
        state
            .links
            .evict(&victim, "evicted to make room for another inbound peer");
        self.metrics.connection_refused("evicted");
        tracing::info!(target: LOG_TARGET, peer = %victim, "inbound slots full: evicted an inbound peer");
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
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let state = &mut *state;
        if peer.peer_id == self.identity.peer_id() {
            return Err(Refusal::SelfConnection);
        }
        let ips: Vec<IpAddr> = bans::address_ip(&peer.address)
            .into_iter()
            .chain([remote_ip])
            .collect();
        if let Some(ban) = state.bans.matching(Some(&peer.peer_id), &ips, now) {
            return Err(Refusal::Banned(ban.reason.clone()));
        }
        if direction == Direction::Inbound && !state.links.is_connected(&peer.peer_id) {
            self.make_inbound_room(state, remote_ip)?;
        }
        let dialer_id = match direction {
            Direction::Outbound => self.identity.peer_id().to_string(),
            Direction::Inbound => peer.peer_id.clone(),
        };
        state.links.supersede(&peer.peer_id, &dialer_id)?;

        if let Some(target) = dialed {
            // A hearsay entry that turned out to be someone else is dropped.
            if let Some(expected) = &target.expected_peer_id
                && *expected != peer.peer_id
                && state
                    .table
                    .get(expected)
                    .is_some_and(|p| p.public_key.is_empty())
            {
                tracing::info!(target: LOG_TARGET, expected = %expected, actual = %peer.peer_id, address = %target.address,
                    "address belongs to a different peer than advertised; forgetting the advertised ID");
                state.table.remove(expected);
            }
            if target.seed {
                state.seeds.connected(&target.address, &peer.peer_id);
            }
        }

        // Every path that adds a record keeps the table within its bound.
        if !state.table.contains(&peer.peer_id) && state.table.len() >= self.config.max_known_peers
        {
            if !state.evict_least_useful(i64::MAX, now) {
                self.metrics.limit_hit("known_peers");
                return Err(Refusal::TableFull);
            }
            self.metrics.limit_hit("known_peers");
        }
        let peer_id = peer.peer_id.clone();
        let seed = dialed.is_some_and(|t| t.seed);
        let (platform_messages, short_ids) = (peer.platform_messages, peer.short_ids);
        state.table.handshake_completed(peer, remote_ip, seed, now);
        let link = LinkInfo {
            direction,
            remote_ip,
            connected_at_ms: now,
            platform_messages,
            short_ids,
        };
        let handle = state.links.insert(&peer_id, link, dialer_id);
        self.metrics
            .handshakes
            .get_or_create(&vec![("result", "accepted")])
            .inc();
        tracing::info!(target: LOG_TARGET, peer = %peer_id, direction = direction.as_str(), "peer connected");
        let address = state
            .table
            .get(&peer_id)
            .map(|p| p.address.clone())
            .unwrap_or_default();
        if let Some(target) = dialed {
            self.manual
                .settle(&target.address, DialOutcome::Connected(peer_id.clone()));
        }
        self.events.publish(EventKind::PeerConnected {
            peer_id,
            address,
            direction: direction.as_str().to_string(),
        });
        Ok(handle)
    }

    /// IDs of the peers connected right now.
    pub fn connected_ids(&self) -> HashSet<String> {
        self.lock().links.ids().cloned().collect()
    }

    /// IDs of the connected peers that carry platform messages.
    pub fn message_carriers(&self) -> HashSet<String> {
        self.lock()
            .links
            .all()
            .filter(|(_, info)| info.platform_messages)
            .map(|(id, _)| id.clone())
            .collect()
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
        let now = self.clock.now_ms();
        let mut state = self.lock();
        if !state.links.remove(peer_id, conn_id) {
            return;
        }
        let failed = matches!(outcome, CloseOutcome::Failed(_));
        if failed {
            self.metrics.peer_failures.inc();
        }
        let failures = match state.table.get(peer_id) {
            Some(p) if failed => p.failure_count + 1,
            _ => 1,
        };
        let retry_ms = now + dialing::backoff(&self.config, failures).as_millis() as i64;
        let was_seed = state.table.update(peer_id, |peer| {
            peer.disconnected(failed, now, retry_ms);
            peer.is_seed
        });
        if was_seed == Some(true) {
            state.seeds.disconnected(peer_id, retry_ms);
        }
        drop(state);
        let reason = match outcome {
            CloseOutcome::Graceful(reason) => {
                tracing::info!(target: LOG_TARGET, peer = %peer_id, %reason, "peer disconnected");
                reason
            }
            CloseOutcome::Failed(reason) => {
                tracing::warn!(target: LOG_TARGET, peer = %peer_id, %reason, "peer connection failed");
                reason
            }
        };
        self.events.publish(EventKind::PeerDisconnected {
            peer_id: peer_id.to_string(),
            reason: reason.to_string(),
            failed,
        });
    }
}
