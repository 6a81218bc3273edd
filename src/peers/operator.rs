//! Operator views and actions: listing, prefix resolution, bans, unbans, resets, counts.

use super::*;

impl PeerManager {
    // ----- operator views and actions --------------------------------------------------

    fn snapshot(&self, inner: &Inner, peer: &Peer, now: i64) -> PeerSnapshot {
        let conn = inner.connections.get(&peer.peer_id);
        PeerSnapshot {
            peer_id: peer.peer_id.clone(),
            name: peer.name.clone(),
            address: peer.address.clone(),
            state: inner.state_of(peer, now),
            direction: conn.map(|c| c.direction),
            connected_since_ms: conn.map(|c| c.connected_at_ms),
            first_seen_ms: peer.first_seen_ms,
            last_seen_ms: if conn.is_some() {
                now.max(peer.last_seen_ms)
            } else {
                peer.last_seen_ms
            },
            failure_count: peer.failure_count,
            is_seed: peer.is_seed,
            software_version: peer.software_version.clone(),
            quality: peer.quality.breakdown(now),
            ban: inner.peer_ban(peer, now).cloned(),
            advertised: if conn.is_some() {
                peer.advertised.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Every known peer, ordered by peer ID.
    pub fn list(&self) -> Vec<PeerSnapshot> {
        let now = now_ms();
        let inner = self.lock();
        let mut out: Vec<PeerSnapshot> = inner
            .peers
            .values()
            .map(|p| self.snapshot(&inner, p, now))
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }

    /// One peer by ID or unique prefix.
    pub fn get(&self, prefix: &str) -> Result<PeerSnapshot, PeerError> {
        let now = now_ms();
        let inner = self.lock();
        let id = inner.resolve(prefix)?;
        let peer = inner
            .peers
            .get(&id)
            .ok_or_else(|| PeerError::NotFound(id.clone()))?;
        Ok(self.snapshot(&inner, peer, now))
    }

    /// Bans in force, oldest first.
    pub fn bans(&self) -> Vec<Ban> {
        let now = now_ms();
        let inner = self.lock();
        let mut bans: Vec<Ban> = inner
            .bans
            .values()
            .filter(|b| !b.is_expired(now))
            .cloned()
            .collect();
        bans.sort_by(|a, b| {
            a.banned_at_ms
                .cmp(&b.banned_at_ms)
                .then(a.target.key().cmp(&b.target.key()))
        });
        bans
    }

    /// Turns operator text into a ban target: an IP, a CIDR, a known peer's unique ID prefix, or
    /// a full peer ID not yet known (a pre-emptive ban).
    pub fn parse_target(&self, text: &str) -> Result<BanTarget, PeerError> {
        let text = text.trim();
        if let Some(target) = BanTarget::parse_network(text) {
            return Ok(target);
        }
        if text.contains('/') || text.contains('.') || text.contains(':') {
            return Err(PeerError::Invalid(format!(
                "'{text}' is not a valid peer ID, IP address or CIDR subnet"
            )));
        }
        let inner = self.lock();
        match inner.resolve(text) {
            Ok(id) => Ok(BanTarget::Peer(id)),
            Err(PeerError::NotFound(_)) if is_peer_id(&text.to_ascii_lowercase()) => {
                Ok(BanTarget::Peer(text.to_ascii_lowercase()))
            }
            Err(e) => Err(e),
        }
    }

    /// Refuses a ban that would turn against this node: its own peer ID, one of its own
    /// addresses (peer listen, admin listen, announced), or a subnet that covers everyone. The
    /// operator can still force it.
    pub fn check_not_self(&self, target: &BanTarget) -> Result<(), PeerError> {
        let mut own_ips = vec![self.config.listen.ip(), self.config.admin_listen.ip()];
        own_ips.extend(bans::address_ip(&self.config.announced_address()));
        match target.self_ban(self.identity.peer_id(), &own_ips) {
            Some(refusal) => Err(PeerError::SelfBan(refusal)),
            None => Ok(()),
        }
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
        let reason = reason
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| DEFAULT_BAN_REASON.to_string());
        if reason.chars().count() > bans::MAX_REASON_LEN {
            return Err(PeerError::Invalid(format!(
                "the reason is longer than {} characters",
                bans::MAX_REASON_LEN
            )));
        }
        let now = now_ms();
        let expires_at_ms = duration
            .map(|d| bans::expiry(now, d))
            .transpose()
            .map_err(|e| PeerError::Invalid(e.to_string()))?;
        let key = target.key();
        {
            let inner = self.lock();
            if let Some(existing) = inner.bans.get(&key).filter(|b| !b.is_expired(now)) {
                return Err(PeerError::Conflict(format!(
                    "{key} is already banned ({}); unban it first to change the ban",
                    existing.reason
                )));
            }
        }
        let ban = Ban {
            target,
            reason,
            source,
            banned_at_ms: now,
            expires_at_ms,
        };
        // An expired ban on the same target may still be in the table; replace it.
        self.store.delete_ban(&key).await?;
        self.store.insert_ban(&ban.to_row()).await?;
        let mut inner = self.lock();
        inner.bans.insert(key.clone(), ban.clone());
        let disconnected = inner.enforce_ban(&ban, now);
        let peer_ids = inner
            .peers
            .values()
            .filter(|p| ban.target.matches(Some(&p.peer_id), &p.ips()))
            .map(|p| p.peer_id.clone())
            .collect();
        self.metrics
            .bans_total
            .get_or_create(&vec![("source", source.as_str())])
            .inc();
        tracing::warn!(target = %key, reason = %ban.reason, source = source.as_str(), "banned");
        Ok(BanOutcome {
            ban,
            peer_ids,
            disconnected,
        })
    }

    /// Lifts the ban on a target (IP, CIDR, or peer ID prefix). Returns the lifted ban.
    pub async fn unban(&self, text: &str) -> Result<Ban, PeerError> {
        let text = text.trim();
        let key = match BanTarget::parse_network(text) {
            Some(target) => target.key(),
            None => {
                let inner = self.lock();
                let lower = text.to_ascii_lowercase();
                let banned_ids: Vec<&String> = inner
                    .bans
                    .iter()
                    .filter(|(_, b)| b.target.kind() == BanKind::Peer)
                    .map(|(k, _)| k)
                    .filter(|k| k.starts_with(&lower))
                    .collect();
                match banned_ids.as_slice() {
                    [one] => (*one).clone(),
                    [] => return Err(PeerError::NoBan(text.to_string())),
                    many => {
                        return Err(PeerError::Ambiguous {
                            prefix: lower,
                            matches: many.iter().take(5).map(|s| s.to_string()).collect(),
                        });
                    }
                }
            }
        };
        let ban = self
            .lock()
            .bans
            .get(&key)
            .cloned()
            .ok_or_else(|| PeerError::NoBan(key.clone()))?;
        self.store.delete_ban(&key).await?;
        let mut inner = self.lock();
        inner.bans.remove(&key);
        // Restored to normal treatment: eligible for dialling straight away.
        for peer in inner.peers.values_mut() {
            if ban.target.matches(Some(&peer.peer_id), &peer.ips()) {
                peer.next_dial_ms = 0;
            }
        }
        for seed in inner.seeds.iter_mut() {
            seed.next_attempt_ms = 0;
        }
        tracing::info!(target = %key, "unbanned");
        Ok(ban)
    }

    /// Sets a peer's failure count and penalties to zero; returns (peer ID, previous count).
    pub async fn reset(&self, prefix: &str) -> Result<(String, u32), PeerError> {
        let (id, previous, row) = {
            let mut inner = self.lock();
            let id = inner.resolve(prefix)?;
            let peer = inner
                .peers
                .get_mut(&id)
                .ok_or_else(|| PeerError::NotFound(id.clone()))?;
            let previous = peer.failure_count;
            let mut updated = peer.clone();
            updated.failure_count = 0;
            updated.quality.clear_penalties();
            updated.next_dial_ms = 0;
            (id, previous, updated)
        };
        self.store.upsert_peers(&[row.to_row()]).await?;
        let mut inner = self.lock();
        if let Some(peer) = inner.peers.get_mut(&id) {
            peer.failure_count = 0;
            peer.quality.clear_penalties();
            peer.next_dial_ms = 0;
        }
        for seed in inner.seeds.iter_mut() {
            if seed.peer_id.as_deref() == Some(id.as_str()) {
                seed.failures = 0;
                seed.next_attempt_ms = 0;
            }
        }
        tracing::info!(peer = %id, previous_failures = previous, "peer reset");
        Ok((id, previous))
    }
}
