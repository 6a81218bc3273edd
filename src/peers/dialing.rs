//! Whom to dial and when: seeds (always, with backoff) and known peers for free outbound slots.

use super::*;

impl PeerManager {
    // ----- dialling --------------------------------------------------------------------

    /// Decides whom to dial now: seeds that are not connected (always, with backoff) and known
    /// peers to fill the outbound slots. Marks each as being dialled.
    pub fn plan_dials(&self) -> Vec<DialTarget> {
        let now = now_ms();
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut targets = Vec::new();

        let connected_addresses: HashSet<String> = inner
            .connections
            .keys()
            .filter_map(|id| inner.peers.get(id).map(|p| p.address.clone()))
            .collect();
        for i in 0..inner.seeds.len() {
            let seed = &inner.seeds[i];
            if seed.dialing
                || now < seed.next_attempt_ms
                || connected_addresses.contains(&seed.address)
            {
                continue;
            }
            if let Some(id) = &seed.peer_id
                && inner.connections.contains_key(id)
            {
                continue;
            }
            let ips: Vec<IpAddr> = bans::address_ip(&seed.address).into_iter().collect();
            if inner
                .ban_matching(seed.peer_id.as_deref(), &ips, now)
                .is_some()
            {
                continue;
            }
            inner.seeds[i].dialing = true;
            targets.push(DialTarget {
                address: inner.seeds[i].address.clone(),
                expected_peer_id: inner.seeds[i].peer_id.clone(),
                seed: true,
            });
        }

        let seed_addresses: HashSet<&str> =
            inner.seeds.iter().map(|s| s.address.as_str()).collect();
        let busy = inner.outbound_count()
            + inner.peers.values().filter(|p| p.dialing).count()
            + targets.len();
        let slots = self.config.max_outbound.saturating_sub(busy);
        if slots > 0 {
            let mut candidates: Vec<&Peer> = inner
                .peers
                .values()
                .filter(|p| {
                    !p.dialing
                        && p.next_dial_ms <= now
                        && !p.address.is_empty()
                        && !inner.connections.contains_key(&p.peer_id)
                        && !seed_addresses.contains(p.address.as_str())
                        && !connected_addresses.contains(&p.address)
                        && inner.peer_ban(p, now).is_none()
                })
                .collect();
            candidates.sort_by(|a, b| {
                a.failure_count
                    .cmp(&b.failure_count)
                    .then(b.last_seen_ms.cmp(&a.last_seen_ms))
            });
            let chosen: Vec<(String, String)> = candidates
                .into_iter()
                .take(slots)
                .map(|p| (p.peer_id.clone(), p.address.clone()))
                .collect();
            for (id, address) in chosen {
                if let Some(p) = inner.peers.get_mut(&id) {
                    p.dialing = true;
                }
                targets.push(DialTarget {
                    address,
                    expected_peer_id: Some(id),
                    seed: false,
                });
            }
        }
        targets
    }

    /// A dial (connect or handshake) failed: count it and back off.
    pub fn dial_failed(&self, target: &DialTarget, reason: &str) {
        self.metrics.peer_failures.inc();
        let now = now_ms();
        let mut inner = self.lock();
        if target.seed
            && let Some(seed) = inner.seeds.iter_mut().find(|s| s.address == target.address)
        {
            seed.dialing = false;
            seed.failures += 1;
            let delay = self.backoff(seed.failures);
            seed.next_attempt_ms = now + delay.as_millis() as i64;
            tracing::warn!(seed = %target.address, %reason, retry_in = ?delay, "cannot reach seed");
        }
        if let Some(id) = &target.expected_peer_id
            && let Some(peer) = inner.peers.get_mut(id)
        {
            peer.dialing = false;
            peer.failure_count += 1;
            peer.quality.record_failure();
            let delay = self.backoff(peer.failure_count);
            peer.next_dial_ms = now + delay.as_millis() as i64;
            inner.mark_dirty(id);
            tracing::debug!(peer = %id, %reason, retry_in = ?delay, "dial failed");
        }
    }

    /// A dial ended without a connection and without being the peer's fault (refused as a
    /// duplicate or self-connection): clear the in-progress marks.
    pub fn dial_abandoned(&self, target: &DialTarget) {
        let now = now_ms();
        let retry = now + self.config.reconnect_backoff_max.as_millis() as i64;
        let mut inner = self.lock();
        if target.seed
            && let Some(seed) = inner.seeds.iter_mut().find(|s| s.address == target.address)
        {
            seed.dialing = false;
            seed.next_attempt_ms = retry;
        }
        if let Some(id) = &target.expected_peer_id
            && let Some(peer) = inner.peers.get_mut(id)
        {
            peer.dialing = false;
            peer.next_dial_ms = retry;
        }
    }
}
