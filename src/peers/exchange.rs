//! Peer exchange: what this node hands out, and how addresses learnt from others are taken in
//! (never changing an existing record).

use super::*;

impl PeerManager {
    // ----- peer exchange ---------------------------------------------------------------

    /// Entries to hand to `requester`: connected peers first (seen now), then the most
    /// recently seen; never banned peers, peers failing right now, the requester or ourselves.
    pub fn exchange_entries(&self, requester: &str, max: usize) -> Vec<KnownAddress> {
        let now = now_ms();
        let inner = self.lock();
        let mut entries: Vec<(bool, KnownAddress)> = inner
            .peers
            .values()
            .filter(|p| p.peer_id != requester && !p.address.is_empty())
            .filter_map(|p| {
                let connected = inner.connections.contains_key(&p.peer_id);
                let usable = connected || p.failure_count < self.config.max_failures;
                if !usable || inner.peer_ban(p, now).is_some() || p.public_key.is_empty() {
                    // Only peers we verified ourselves are passed on.
                    return None;
                }
                let last_seen_ms = if connected { now } else { p.last_seen_ms };
                Some((
                    connected,
                    KnownAddress {
                        peer_id: p.peer_id.clone(),
                        address: p.address.clone(),
                        last_seen_ms,
                    },
                ))
            })
            .collect();
        entries.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.last_seen_ms.cmp(&a.1.last_seen_ms))
                .then(a.1.peer_id.cmp(&b.1.peer_id))
        });
        entries.into_iter().take(max).map(|(_, e)| e).collect()
    }

    /// Adds addresses a peer told us about. Existing records are never changed by hearsay;
    /// malformed, banned, stale or self entries are skipped. Returns how many were new.
    pub fn learn(&self, from: &str, entries: Vec<KnownAddress>) -> usize {
        let now = now_ms();
        let retention = self.config.peer_retention.as_millis() as i64;
        let own_address = self.config.announced_address();
        let mut inner = self.lock();
        let mut added = 0;
        for entry in entries.into_iter().take(self.config.exchange_max_entries) {
            if !is_peer_id(&entry.peer_id)
                || entry.peer_id == self.identity.peer_id()
                || entry.address == own_address
                || validate_host_port(&entry.address).is_err()
                || bans::address_ip(&entry.address).is_some_and(|ip| ip.is_unspecified())
                || inner.peers.contains_key(&entry.peer_id)
            {
                continue;
            }
            // A peer cannot make an address look fresher than now.
            let last_seen_ms = entry.last_seen_ms.min(now);
            if now - last_seen_ms > retention {
                continue;
            }
            let ips: Vec<IpAddr> = bans::address_ip(&entry.address).into_iter().collect();
            if inner
                .ban_matching(Some(&entry.peer_id), &ips, now)
                .is_some()
            {
                continue;
            }
            if inner.peers.len() >= self.config.max_known_peers
                && !self.evict_least_useful(&mut inner, last_seen_ms)
            {
                continue;
            }
            tracing::debug!(peer = %entry.peer_id, address = %entry.address, from = %from, "learnt peer");
            let peer = Peer::new(entry.peer_id.clone(), entry.address, now, last_seen_ms);
            inner.peers.insert(entry.peer_id.clone(), peer);
            inner.mark_dirty(&entry.peer_id);
            added += 1;
        }
        self.metrics.peers_learned.inc_by(added as u64);
        added
    }

    /// Forgets the least useful peer that may be forgotten (never a seed, a peer being dialled,
    /// a connected or a banned one), if it was seen before `than_ms`. Peers that never proved
    /// useful go first (hearsay entries, identities that only ever completed a handshake or
    /// two), then the least recently seen: a burst of fresh identities displaces each other,
    /// not the peers this node has a history with.
    pub(super) fn evict_least_useful(&self, inner: &mut Inner, than_ms: i64) -> bool {
        let now = now_ms();
        let victim = inner
            .peers
            .values()
            .filter(|p| {
                !p.is_seed
                    && !p.dialing
                    && !inner.connections.contains_key(&p.peer_id)
                    && inner.peer_ban(p, now).is_none()
                    && p.last_seen_ms < than_ms
            })
            .min_by_key(|p| (p.has_proved_useful(), p.last_seen_ms))
            .map(|p| p.peer_id.clone());
        match victim {
            Some(id) => {
                tracing::debug!(peer = %id, "peer table full: forgetting the least useful peer");
                inner.remove_peer(&id);
                self.metrics.limit_hit("known_peers");
                true
            }
            None => false,
        }
    }

    /// Asks up to `exchange_peers` random connected peers for their peer lists.
    pub fn start_exchange_round(&self) -> usize {
        let inner = self.lock();
        let mut ids: Vec<&String> = inner.connections.keys().collect();
        let count = self.config.exchange_peers.min(ids.len());
        let (chosen, _) = ids.partial_shuffle(&mut rand::thread_rng(), count);
        let mut asked = 0;
        for id in chosen.iter() {
            if let Some(conn) = inner.connections.get(*id)
                && conn
                    .commands
                    .try_send(SessionCommand::ExchangePeers)
                    .is_ok()
            {
                asked += 1;
            }
        }
        asked
    }
}
