//! [`PeerManager`]: the one entry point to the peer domain. It composes the peer table, the ban
//! list, the links and the seeds (all behind one lock, see [`super::state`]) with the store and
//! the metrics, and turns what the network edge observed into changes of those parts. Each
//! method is a short sequence of calls on the parts' own APIs.
//!
//! Longer than 600 lines on purpose: it is the domain's whole surface (about forty operations,
//! each a few lines of lock, delegate, count, log). Splitting it by file would bring back
//! `impl PeerManager` blocks spread over files sharing its private fields.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::admission::{self, ConnectionLimits, ConnectionSlot};
use super::banlist::{self, BanStore};
use super::dialing::{self, Seeds};
use super::links::{LinkInfo, Links, Queued, RequestError, SESSION_COMMAND_QUEUE, SessionHandle};
use super::manual::{DialOutcome, ManualDials};
use super::state::State;
use super::table::{LearnRules, PeerTable};
use super::{
    Ban, BanOutcome, BanSource, BanTarget, CloseOutcome, DialTarget, Direction, KnownAddress,
    PeerCounts, PeerError, PeerMessage, PeerRequest, PeerResponse, PeerSnapshot, Refusal,
    RegisterHeight, VerifiedPeer, bans,
};
use crate::clock::now_ms;
use crate::config::Config;
use crate::events::{EventKind, Events};
use crate::identity::{Identity, is_peer_id};
use crate::reachability::{AddressBook, Observed};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

/// Validity lost each time a peer serves data that fails verification.
const VERIFICATION_PENALTY: f64 = 0.5;
/// At most one queue-pressure event per peer in this period.
const PRESSURE_EVENT_EVERY: Duration = Duration::from_secs(1);

/// The peer domain's facade: the peer state behind its lock, with where it persists, what it
/// counts, and the inbound TCP limits.
pub struct PeerManager {
    identity: Arc<Identity>,
    config: Arc<Config>,
    store: Arc<dyn Store>,
    ban_store: BanStore,
    metrics: Arc<Metrics>,
    events: Arc<Events>,
    /// Open inbound TCP connections, counted apart from the peer state (its own lock, taken
    /// before any handshake and never together with the state lock).
    limits: Arc<ConnectionLimits>,
    /// This node's own address: observations, verification, what it announces.
    addresses: AddressBook,
    /// Operators waiting for the outcome of a dial (`peers connect`); its own lock.
    manual: ManualDials,
    state: Mutex<State>,
}

impl PeerManager {
    /// Loads peers and bans from the store (see [`BanStore::load`] for expired and corrupt
    /// bans).
    pub async fn load(
        identity: Arc<Identity>,
        config: Arc<Config>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        events: Arc<Events>,
    ) -> Result<PeerManager, StoreError> {
        let table = PeerTable::load(store.load_peers().await?, identity.peer_id());
        let ban_store = BanStore::new(store.clone());
        let bans = ban_store.load(now_ms()).await?;
        let state = State {
            table,
            bans,
            links: Links::default(),
            seeds: Seeds::new(&config.seeds),
        };
        Ok(PeerManager {
            limits: Arc::new(ConnectionLimits::new(&config)),
            addresses: AddressBook::new(&config),
            identity,
            config,
            store,
            ban_store,
            metrics,
            events,
            manual: ManualDials::default(),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; keep serving with the state as it is.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    // ----- this node's own address -----------------------------------------------------

    /// This node's address book of itself (see [`crate::reachability`]).
    pub fn addresses(&self) -> &AddressBook {
        &self.addresses
    }

    /// The address this node announces in handshakes.
    pub fn announced_address(&self) -> String {
        self.addresses.announcement().address
    }

    /// A peer that proved its identity (connected from `reporter_ip`) says it sees this node
    /// at `observed`.
    pub fn observed_by(&self, peer_id: &str, reporter_ip: IpAddr, observed: &str) {
        if self
            .addresses
            .observe(peer_id, reporter_ip, observed, now_ms())
            == Observed::RecordedEvicting
        {
            self.metrics.limit_hit("reachability_observers");
        }
    }

    /// The IP a connected peer's session comes from.
    pub fn remote_ip(&self, peer_id: &str) -> Option<IpAddr> {
        self.lock().links.info(peer_id).map(|i| i.remote_ip)
    }

    // ----- maintenance -----------------------------------------------------------------

    /// Deletes bans that have run out. Their effect already ended at expiry (matching ignores
    /// expired bans); this only tidies the table.
    pub async fn expire_bans(&self) -> Result<(), StoreError> {
        let expired = self.lock().bans.expired(now_ms());
        for target in expired {
            self.ban_store.delete(&target).await?;
            self.lock().bans.remove(&target);
            tracing::info!(%target, "ban expired");
            self.events.publish(EventKind::PeerUnbanned {
                target,
                expired: true,
            });
        }
        Ok(())
    }

    /// Forgets ordinary peers not seen within `peer_retention`.
    pub fn prune(&self) {
        let now = now_ms();
        let cutoff = now - self.config.peer_retention.as_millis() as i64;
        for id in self.lock().prune(cutoff, now) {
            tracing::info!(peer = %id, "forgetting peer not seen within the retention period");
        }
    }

    /// Writes changed peer records to the store. On error the changes stay pending and are
    /// retried on the next flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (rows, removed) = self.lock().table.take_changes();
        let result = async {
            if !rows.is_empty() {
                self.store.upsert_peers(&rows).await?;
            }
            for id in &removed {
                self.store.delete_peer(id).await?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if result.is_err() {
            self.lock().table.restore_changes(&rows, removed);
        }
        result
    }

    /// Asks one peer's session to close (it may be dialled again; a ban, or a transport that
    /// refuses it, is what keeps it out).
    pub fn close_session(&self, peer_id: &str, reason: &str) {
        self.lock().links.close(peer_id, reason);
    }

    /// Asks every session to close (node shutdown).
    pub fn close_all(&self, reason: &str) {
        self.lock().links.close_all(reason);
    }

    /// Live connection count (shutdown waits for it to reach zero).
    pub fn connection_count(&self) -> usize {
        self.lock().links.len()
    }

    // ----- admission ---------------------------------------------------------------------

    /// Whether a connection from `remote_ip` may even start a handshake.
    pub fn admit_address(&self, remote_ip: IpAddr) -> Result<(), Refusal> {
        match self.lock().bans.matching(None, &[remote_ip], now_ms()) {
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
        let candidates = state.eviction_candidates(now_ms());
        let Some(victim) = admission::select_eviction(candidates) else {
            self.metrics.connection_refused("inbound_full");
            return Err(Refusal::InboundFull);
        };
        state
            .links
            .evict(&victim, "evicted to make room for another inbound peer");
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
                tracing::info!(expected = %expected, actual = %peer.peer_id, address = %target.address,
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
        let platform_messages = peer.platform_messages;
        state.table.handshake_completed(peer, remote_ip, seed, now);
        let link = LinkInfo {
            direction,
            remote_ip,
            connected_at_ms: now,
            platform_messages,
        };
        let handle = state.links.insert(&peer_id, link, dialer_id);
        self.metrics
            .handshakes
            .get_or_create(&vec![("result", "accepted")])
            .inc();
        tracing::info!(peer = %peer_id, direction = direction.as_str(), "peer connected");
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
        let now = now_ms();
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
                tracing::info!(peer = %peer_id, %reason, "peer disconnected");
                reason
            }
            CloseOutcome::Failed(reason) => {
                tracing::warn!(peer = %peer_id, %reason, "peer connection failed");
                reason
            }
        };
        self.events.publish(EventKind::PeerDisconnected {
            peer_id: peer_id.to_string(),
            reason: reason.to_string(),
            failed,
        });
    }

    // ----- observations ----------------------------------------------------------------

    /// A request to the peer succeeded (with its round trip when measured).
    pub fn record_success(&self, peer_id: &str, rtt: Option<Duration>) {
        if let Some(rtt) = rtt {
            self.metrics.heartbeat_latency.observe(rtt.as_secs_f64());
        }
        let rtt_ms = rtt.map(|d| d.as_secs_f64() * 1000.0);
        self.lock()
            .table
            .update(peer_id, |peer| peer.request_succeeded(rtt_ms, now_ms()));
    }

    /// A heartbeat from the peer said when it was sent, by its clock.
    pub fn record_clock(&self, peer_id: &str, sent_at_ms: i64) {
        let offset = sent_at_ms.saturating_sub(now_ms());
        // Memory only: not a change to persist.
        if let Some(peer) = self.lock().table.get_mut(peer_id) {
            peer.clock_offset_ms = Some(offset);
        }
    }

    /// A request to the peer failed. Returns true when the peer has now failed `max_failures`
    /// times in a row and must be disconnected.
    pub fn record_failure(&self, peer_id: &str, reason: &str) -> bool {
        self.metrics.peer_failures.inc();
        let count = self
            .lock()
            .table
            .update(peer_id, |peer| peer.request_failed());
        let Some(count) = count else {
            return false;
        };
        tracing::debug!(peer = %peer_id, failures = count, %reason, "request to peer failed");
        count >= self.config.max_failures
    }

    /// Lowers a peer's validity score (bad data, protocol violations) and records why.
    pub fn penalize(&self, peer_id: &str, amount: f64, reason: &str) {
        let penalised = self.lock().table.update(peer_id, |peer| {
            peer.quality.penalize(amount, reason, now_ms());
        });
        if penalised.is_some() {
            tracing::warn!(peer = %peer_id, %reason, "peer penalised");
        }
    }

    /// A peer served data that failed verification: lower its validity and, when it happens
    /// `verification_ban_threshold` times within `verification_ban_window`, ban it
    /// automatically for `automatic_ban_duration`.
    pub async fn verification_failed(
        &self,
        peer_id: &str,
        register_id: Option<&str>,
        reason: &str,
    ) {
        self.metrics.verification_failures.inc();
        self.events.publish(EventKind::VerificationFailed {
            peer_id: peer_id.to_string(),
            register_id: register_id.map(str::to_string),
            reason: reason.to_string(),
        });
        self.penalize(
            peer_id,
            VERIFICATION_PENALTY,
            &format!("served data that failed verification: {reason}"),
        );
        let now = now_ms();
        let window = self.config.verification_ban_window.as_millis() as i64;
        let Some(count) = self
            .lock()
            .table
            .verification_failures(peer_id, now, window)
        else {
            return;
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

    /// Records the registers a peer advertised (replacing what it said before).
    pub fn set_advertised(&self, peer_id: &str, mut registers: Vec<RegisterHeight>) {
        if registers.len() > self.config.max_advertised_registers {
            registers.truncate(self.config.max_advertised_registers);
            self.metrics.limit_hit("advertised_registers");
        }
        if let Some(peer) = self.lock().table.get_mut(peer_id) {
            peer.advertised = registers;
        }
    }

    // ----- dialling ----------------------------------------------------------------------

    /// Decides whom to dial now: seeds that are not connected (always, with backoff) and known
    /// peers to fill the outbound slots. Marks each as being dialled.
    pub fn plan_dials(&self) -> Vec<DialTarget> {
        self.lock().plan_dials(now_ms(), self.config.max_outbound)
    }

    /// A dial (connect or handshake) failed: count it and back off.
    pub fn dial_failed(&self, target: &DialTarget, reason: &str) {
        self.manual
            .settle(&target.address, DialOutcome::Failed(reason.to_string()));
        self.metrics.peer_failures.inc();
        let now = now_ms();
        let mut state = self.lock();
        if target.seed
            && let Some(delay) = state.seeds.failed(&target.address, now, &self.config)
        {
            tracing::warn!(seed = %target.address, %reason, retry_in = ?delay, "cannot reach seed");
        }
        if let Some(id) = &target.expected_peer_id
            && let Some(delay) = state.table.update(id, |peer| {
                let delay = dialing::backoff(&self.config, peer.request_failed());
                peer.dial_ended(now + delay.as_millis() as i64);
                delay
            })
        {
            tracing::debug!(peer = %id, %reason, retry_in = ?delay, "dial failed");
        }
    }

    /// A dial ended without a connection and without being the peer's fault (refused as a
    /// duplicate or self-connection): clear the in-progress marks.
    pub fn dial_abandoned(&self, target: &DialTarget) {
        self.manual.settle(&target.address, DialOutcome::Abandoned);
        let retry = now_ms() + self.config.reconnect_backoff_max.as_millis() as i64;
        let mut state = self.lock();
        if target.seed {
            state.seeds.abandoned(&target.address, retry);
        }
        if let Some(id) = &target.expected_peer_id
            && let Some(peer) = state.table.get_mut(id)
        {
            peer.dial_ended(retry);
        }
    }

    // ----- peer exchange -----------------------------------------------------------------

    /// Entries to hand to `requester` (see [`PeerTable::exchange_entries`]).
    pub fn exchange_entries(&self, requester: &str, max: usize) -> Vec<KnownAddress> {
        let now = now_ms();
        let max_failures = self.config.max_failures;
        self.lock().with_standing(now, |table, standing, _| {
            table.exchange_entries(requester, max, max_failures, now, standing)
        })
    }

    /// Adds addresses a peer told us about (see [`PeerTable::learn`]). Returns how many were
    /// new.
    pub fn learn(&self, from: &str, entries: Vec<KnownAddress>) -> usize {
        let now = now_ms();
        let own_address = self.announced_address();
        let (added, evicted) = self.lock().with_standing(now, |table, standing, bans| {
            let banned = |id: &str, address: &str| bans.covers_address(Some(id), address, now);
            let rules = LearnRules {
                own_id: self.identity.peer_id(),
                own_address: &own_address,
                now_ms: now,
                retention_ms: self.config.peer_retention.as_millis() as i64,
                max_entries: self.config.exchange_max_entries,
                max_known_peers: self.config.max_known_peers,
                banned: &banned,
            };
            table.learn(from, entries, &rules, standing)
        });
        for _ in 0..evicted {
            self.metrics.limit_hit("known_peers");
        }
        self.metrics.peers_learned.inc_by(added as u64);
        added
    }

    /// Asks up to `exchange_peers` random connected peers for their peer lists.
    pub fn start_exchange_round(&self) -> usize {
        self.lock().links.ask_exchange(self.config.exchange_peers)
    }

    // ----- messages and requests -----------------------------------------------------------

    /// Connected, unbanned peers advertising `register_id`, best quality first, with what they
    /// advertise.
    pub fn carriers(&self, register_id: &str) -> Vec<(String, RegisterHeight)> {
        self.lock().carriers(register_id, now_ms())
    }

    /// Every public register advertised by connected, unbanned peers, with the advertisers.
    pub fn advertised_registers(&self) -> BTreeMap<String, Vec<RegisterHeight>> {
        self.lock().advertised_registers(now_ms())
    }

    /// Sends a one-way message to a connected peer; false if it is not connected (or its
    /// session cannot take more right now).
    pub fn send(&self, peer_id: &str, message: PeerMessage) -> bool {
        let queued = self.lock().links.send(peer_id, message);
        if queued == Queued::Full {
            self.send_queue_full(peer_id);
        }
        queued == Queued::Yes
    }

    /// A peer's session queue was full and a message was not sent: counted, and told as queue
    /// pressure (at most once a second per peer).
    fn send_queue_full(&self, peer_id: &str) {
        self.metrics.limit_hit("session_command_queue");
        self.events.publish_throttled(
            &format!("peerSend:{peer_id}"),
            PRESSURE_EVENT_EVERY,
            EventKind::QueuePressure {
                queue: "peerSend".into(),
                peer_id: Some(peer_id.to_string()),
                depth: SESSION_COMMAND_QUEUE as u64,
                limit: SESSION_COMMAND_QUEUE as u64,
                dropped: 1,
            },
        );
    }

    /// Sends a message to every connected peer.
    pub fn broadcast(&self, message: PeerMessage) {
        let full = self.lock().links.broadcast(message);
        for peer_id in full {
            self.send_queue_full(&peer_id);
        }
    }

    /// Sends a request to a connected peer and waits (at most `timeout`) for its answer. A
    /// peer that takes the request and then stays silent or goes away has failed a request.
    pub async fn request(
        &self,
        peer_id: &str,
        request: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, RequestError> {
        let requester = self.lock().links.requester(peer_id)?;
        match requester.ask(request, timeout).await {
            Ok(response) => {
                self.record_success(peer_id, None);
                Ok(response)
            }
            Err(e) => {
                if e.counts_against_peer() {
                    self.record_failure(peer_id, &e.to_string());
                }
                Err(e)
            }
        }
    }

    // ----- operator views and actions --------------------------------------------------

    /// Every known peer, ordered by peer ID.
    pub fn list(&self) -> Vec<PeerSnapshot> {
        let now = now_ms();
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
        Ok(state.snapshot(peer, now_ms()))
    }

    /// Bans in force, oldest first.
    pub fn bans(&self) -> Vec<Ban> {
        self.lock().bans.in_force(now_ms())
    }

    /// Counts for status, health and metrics.
    pub fn counts(&self) -> PeerCounts {
        self.lock().counts(now_ms())
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
        let now = now_ms();
        let ban = banlist::new_ban(target, reason, duration, source, now)?;
        let key = ban.target.key();
        self.lock().bans.check_free(&key, now)?;
        self.ban_store.save(&ban).await?;
        let (peer_ids, disconnected) = self.lock().impose(ban.clone(), now);
        self.metrics
            .bans_total
            .get_or_create(&vec![("source", source.as_str())])
            .inc();
        tracing::warn!(target = %key, reason = %ban.reason, source = source.as_str(), "banned");
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
        tracing::info!(target = %key, "unbanned");
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
        tracing::info!(peer = %id, "disconnected by the operator");
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
        tracing::info!(peer = %id, previous_failures = previous, "peer reset");
        Ok((id, previous))
    }
}
