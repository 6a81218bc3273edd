//! The peer manager's operator views and actions: the peer list and one peer, bans and their
//! targets, connect and disconnect, reset.

use super::*;

impl PeerManager {
    // ----- operator views and actions --------------------------------------------------

    /// Every known peer, ordered by peer ID.
    pub fn list(&self) -> Vec<PeerSnapshot> {
        let now = self.clock.now_ms();
        let state = self.lock();
        let mut out: Vec<PeerSnapshot> = state
            .table
            .values()
            .map(|p| state.snapshot(p, now))
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }

    /// One peer by ID, unique ID prefix or name (see `PeerTable::resolve`).
    pub fn get(&self, prefix: &str) -> Result<PeerSnapshot, PeerError> {
        let state = self.lock();
        let id = state.table.resolve(prefix)?;
        let peer = state.table.get(&id).ok_or(PeerError::NotFound(id))?;
        Ok(state.snapshot(peer, self.clock.now_ms()))
    }

    /// Bans in force, oldest first.
    pub fn bans(&self) -> Vec<Ban> {
        self.lock().bans.in_force(self.clock.now_ms())
    }

    /// Counts for status, health and metrics.
    pub fn counts(&self) -> PeerCounts {
        self.lock().counts(self.clock.now_ms())
    }

    /// Turns operator text into a ban target: an IP, a CIDR, a known peer (unique ID prefix or
    /// name, see `PeerTable::resolve`), or a full peer ID not yet known (a pre-emptive ban).
    pub fn parse_target(&self, text: &str) -> Result<BanTarget, PeerError> {
        let text = text.trim();
        if let Some(target) = BanTarget::parse_network(text) {
            return Ok(target);
        }
        match self.lock().table.resolve(text) {
            Ok(id) => Ok(BanTarget::Peer(id)),
            Err(PeerError::NotFound(_)) if is_peer_id(&text.to_ascii_lowercase()) => {
                Ok(BanTarget::Peer(text.to_ascii_lowercase()))
            }
            Err(PeerError::NotFound(_))
                if text.contains('/') || text.contains('.') || text.contains(':') =>
            {
                Err(PeerError::Invalid(format!(
                    "'{text}' is not a valid peer ID, peer name, IP address or CIDR subnet"
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Refuses a ban that would turn against this node: its own peer ID, one of its own
    /// addresses (peer listen, admin listen, announced), or a subnet that covers everyone. The
    /// operator can still force it.
    pub fn check_not_self(&self, target: &BanTarget) -> Result<(), PeerError> {
        let mut own_ips = vec![self.config.listen.ip(), self.config.admin_listen.ip()];
        own_ips.extend(bans::address_ip(&self.announced_address()));
        match target.self_ban(self.identity.peer_id(), &own_ips) {
            Some(refusal) => Err(PeerError::SelfBan(refusal)),
            None => Ok(()),
        }
    }

    /// Peer IDs a ban target covers among known peers (and the target itself when it is a
    /// peer ID).
    pub fn peers_matching(&self, target: &BanTarget) -> Vec<String> {
        let mut ids = self.lock().table.covered_by(target);
        if let BanTarget::Peer(id) = target
            && !ids.contains(id)
        {
            ids.push(id.clone());
        }
        ids
    }

    /// Bans a target. Persisted first: if the store refuses, nothing changes. Matching
    /// connections are closed at once.
    pub async fn ban(
        &self,
        target: BanTarget,
        reason: Option<String>,
        duration: Option<Duration>,
        source: BanSource,
    ) -> Result<BanOutcome, PeerError> {
        let now = self.clock.now_ms();
        let ban = banlist::new_ban(target, reason, duration, source, now)?;
        let key = ban.target.key();
        self.lock().bans.check_free(&key, now)?;
        self.ban_store.save(&ban).await?;
        let (peer_ids, disconnected) = self.lock().impose(ban.clone(), now);
        self.metrics
            .bans_total
            .get_or_create(&vec![("source", source.as_str())])
            .inc();
        tracing::warn!(target: LOG_TARGET, target = %key, reason = %ban.reason, source = source.as_str(), "banned");
        self.events.publish(EventKind::PeerBanned {
            target: key.clone(),
            kind: ban.target.kind().as_str().to_string(),
            reason: ban.reason.clone(),
            source: source.as_str().to_string(),
            expires_at: ban.expires_at_ms.map(crate::clock::to_rfc3339),
            peer_ids: peer_ids.clone(),
        });
        Ok(BanOutcome {
            ban,
            peer_ids,
            disconnected,
        })
    }

    /// Lifts the ban on a target (IP, CIDR, peer ID prefix or peer name). Returns the lifted ban.
    pub async fn unban(&self, text: &str) -> Result<Ban, PeerError> {
        let ban = {
            let state = self.lock();
            let key = state.bans.key_for_unban(text, &state.table.named(text))?;
            state.bans.get(&key).cloned().ok_or(PeerError::NoBan(key))?
        };
        let key = ban.target.key();
        self.ban_store.delete(&key).await?;
        let mut state = self.lock();
        state.bans.remove(&key);
        // Restored to normal treatment: eligible for dialling straight away.
        state.table.ban_lifted(&ban.target);
        state.seeds.retry_all_now();
        drop(state);
        tracing::info!(target: LOG_TARGET, target = %key, "unbanned");
        self.events.publish(EventKind::PeerUnbanned {
            target: key,
            expired: false,
        });
        Ok(ban)
    }

    /// Waits for the end of the next dial to `address` (see [`ManualDials::watch`]).
    pub fn watch_dial(&self, address: &str) -> Option<oneshot::Receiver<DialOutcome>> {
        self.manual.watch(address)
    }

    /// The connected peer whose address is `address`, if any.
    pub fn connected_at(&self, address: &str) -> Option<String> {
        let state = self.lock();
        state
            .links
            .ids()
            .find(|id| state.table.get(id).is_some_and(|p| p.address == address))
            .cloned()
    }

    /// Closes the session with a peer (ID, unique ID prefix or name) without banning it: it
    /// may be dialled again, and may connect again. Returns its ID.
    pub fn disconnect(&self, text: &str) -> Result<String, PeerError> {
        let state = self.lock();
        let id = state.table.resolve(text)?;
        if !state.links.is_connected(&id) {
            return Err(PeerError::Conflict(format!("peer {id} is not connected")));
        }
        state.links.close(&id, "disconnected by the operator");
        drop(state);
        tracing::info!(target: LOG_TARGET, peer = %id, "disconnected by the operator");
        Ok(id)
    }

    /// Sets a peer's failure count and penalties to zero; returns (peer ID, previous count).
    /// Persisted first: if the store refuses, nothing changes.
    pub async fn reset(&self, prefix: &str) -> Result<(String, u32), PeerError> {
        let (id, previous, row) = {
            let state = self.lock();
            let id = state.table.resolve(prefix)?;
            let peer = state
                .table
                .get(&id)
                .ok_or_else(|| PeerError::NotFound(id.clone()))?;
            let mut updated = peer.clone();
            updated.reset();
            (id, peer.failure_count, updated.to_row())
        };
        self.store.upsert_peers(&[row]).await?;
        let mut state = self.lock();
        if let Some(peer) = state.table.get_mut(&id) {
            peer.reset();
        }
        state.seeds.reset(&id);
        tracing::info!(target: LOG_TARGET, peer = %id, previous_failures = previous, "peer reset");
        Ok((id, previous))
    }
}
