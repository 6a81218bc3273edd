//! Registers peers advertise, and messages and requests sent to peers over their sessions.

use super::*;

impl PeerManager {
    // ----- registers and requests ---------------------------------------------------

    /// Records the registers a peer advertised (replacing what it said before).
    pub fn set_advertised(&self, peer_id: &str, mut registers: Vec<RegisterHeight>) {
        if registers.len() > self.config.max_advertised_registers {
            registers.truncate(self.config.max_advertised_registers);
            self.metrics.limit_hit("advertised_registers");
        }
        if let Some(peer) = self.lock().peers.get_mut(peer_id) {
            peer.advertised = registers;
        }
    }

    /// Connected, unbanned peers advertising `register_id`, best quality first, with what they
    /// advertise.
    pub fn carriers(&self, register_id: &str) -> Vec<(String, RegisterHeight)> {
        let now = now_ms();
        let inner = self.lock();
        let mut out: Vec<(f64, String, RegisterHeight)> = inner
            .connections
            .keys()
            .filter_map(|id| inner.peers.get(id))
            .filter(|p| inner.peer_ban(p, now).is_none())
            .filter_map(|p| {
                p.advertised
                    .iter()
                    .find(|r| r.register_id == register_id)
                    .map(|r| (p.quality.breakdown(now).score, p.peer_id.clone(), r.clone()))
            })
            .collect();
        out.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        out.into_iter().map(|(_, id, r)| (id, r)).collect()
    }

    /// Every public register advertised by connected, unbanned peers, with the advertisers.
    pub fn advertised_registers(&self) -> BTreeMap<String, Vec<RegisterHeight>> {
        let now = now_ms();
        let inner = self.lock();
        let mut out: BTreeMap<String, Vec<RegisterHeight>> = BTreeMap::new();
        for id in inner.connections.keys() {
            if let Some(p) = inner.peers.get(id)
                && inner.peer_ban(p, now).is_none()
            {
                for r in &p.advertised {
                    out.entry(r.register_id.clone())
                        .or_default()
                        .push(r.clone());
                }
            }
        }
        out
    }

    /// Sends a one-way message to a connected peer; false if it is not connected (or its
    /// session cannot take more right now).
    pub fn send(&self, peer_id: &str, message: PeerMessage) -> bool {
        let inner = self.lock();
        inner
            .connections
            .get(peer_id)
            .is_some_and(|c| c.commands.try_send(SessionCommand::Send(message)).is_ok())
    }

    /// Sends a message to every connected peer.
    pub fn broadcast(&self, message: PeerMessage) {
        let inner = self.lock();
        for conn in inner.connections.values() {
            // A session whose queue is full misses one advertisement; the next heartbeat
            // carries the same information.
            let _ = conn
                .commands
                .try_send(SessionCommand::Send(message.clone()));
        }
    }

    /// Sends a request to a connected peer and waits (at most `timeout`) for its answer. A
    /// transport failure counts as a failed request to that peer.
    pub async fn request(
        &self,
        peer_id: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, String> {
        let (tx, rx) = oneshot::channel();
        let sender = self
            .lock()
            .connections
            .get(peer_id)
            .map(|c| c.commands.clone())
            .ok_or_else(|| format!("peer {peer_id} is not connected"))?;
        sender
            .send(SessionCommand::Request { request, reply: tx })
            .await
            .map_err(|_| format!("peer {peer_id} disconnected"))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(response)) => {
                self.record_success(peer_id, None);
                Ok(response)
            }
            Ok(Err(_)) => {
                self.record_failure(peer_id, "disconnected before answering");
                Err(format!("peer {peer_id} disconnected before answering"))
            }
            Err(_) => {
                self.record_failure(peer_id, "request timed out");
                Err(format!("peer {peer_id} did not answer within {timeout:?}"))
            }
        }
    }

    /// Peer IDs a ban target covers among known peers.
    pub fn peers_matching(&self, target: &BanTarget) -> Vec<String> {
        let inner = self.lock();
        let mut ids: Vec<String> = inner
            .peers
            .values()
            .filter(|p| target.matches(Some(&p.peer_id), &p.ips()))
            .map(|p| p.peer_id.clone())
            .collect();
        if let BanTarget::Peer(id) = target
            && !ids.contains(id)
        {
            ids.push(id.clone());
        }
        ids
    }

    /// A peer served data that failed verification: lower its validity and, when it happens
    /// `verification_ban_threshold` times within `verification_ban_window`, ban it
    /// automatically for `automatic_ban_duration`.
    pub async fn verification_failed(&self, peer_id: &str, reason: &str) {
        self.metrics.verification_failures.inc();
        self.penalize(
            peer_id,
            VERIFICATION_PENALTY,
            &format!("served data that failed verification: {reason}"),
        );
        let now = now_ms();
        let window = self.config.verification_ban_window.as_millis() as i64;
        let count = {
            let mut inner = self.lock();
            let Some(peer) = inner.peers.get_mut(peer_id) else {
                return;
            };
            peer.verification_failures.retain(|at| now - at < window);
            peer.verification_failures.push(now);
            peer.verification_failures.len()
        };
        if count >= self.config.verification_ban_threshold as usize {
            let reason = format!(
                "automatic: served data that failed verification {count} times within {} (last: {reason})",
                crate::clock::format_duration(self.config.verification_ban_window)
            );
            match self
                .ban(
                    BanTarget::Peer(peer_id.to_string()),
                    Some(reason),
                    Some(self.config.automatic_ban_duration),
                    BanSource::Automatic,
                )
                .await
            {
                Ok(_) | Err(PeerError::Conflict(_)) => {}
                Err(e) => tracing::error!(peer = %peer_id, "cannot record automatic ban: {e}"),
            }
        }
    }

    /// Counts for status, health and metrics.
    pub fn counts(&self) -> PeerCounts {
        let now = now_ms();
        let inner = self.lock();
        let mut counts = PeerCounts {
            known: inner.peers.len(),
            inbound: inner.inbound_count(),
            outbound: inner.outbound_count(),
            bans: inner.bans.values().filter(|b| !b.is_expired(now)).count(),
            seeds: inner.seeds.len(),
            ..PeerCounts::default()
        };
        for peer in inner.peers.values() {
            match inner.state_of(peer, now) {
                PeerState::Connected => counts.connected += 1,
                PeerState::Connecting => counts.connecting += 1,
                PeerState::Disconnected => counts.disconnected += 1,
                PeerState::Banned => counts.banned += 1,
            }
        }
        counts
    }

    /// Refreshes the gauges that mirror the peer table (called when `/metrics` is scraped).
    pub fn refresh_metrics(&self) {
        let c = self.counts();
        for (state, n) in [
            (PeerState::Connected, c.connected),
            (PeerState::Connecting, c.connecting),
            (PeerState::Disconnected, c.disconnected),
            (PeerState::Banned, c.banned),
        ] {
            self.metrics
                .peers
                .get_or_create(&vec![("state", state.as_str())])
                .set(n as i64);
        }
        self.metrics
            .connections
            .get_or_create(&vec![("direction", "inbound")])
            .set(c.inbound as i64);
        self.metrics
            .connections
            .get_or_create(&vec![("direction", "outbound")])
            .set(c.outbound as i64);
        self.metrics.bans_active.set(c.bans as i64);
    }
}
