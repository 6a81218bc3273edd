//! [`PeerManager`]: the one entry point to the peer domain. It composes the peer table, the ban
//! list, the links and the seeds (all behind one lock, see [`super::state`]) with the store and
//! the metrics, and turns what the network edge observed into changes of those parts. Each
//! method is a short sequence of calls on the parts' own APIs.
//!
//! Its surface is about forty operations, each a few lines of lock, delegate, count, log. The
//! connections (`manager/connections.rs`) and the operator's views and actions
//! (`manager/operator.rs`) are `impl PeerManager` blocks in child modules, which see its
//! private fields and nothing else does.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::admission::{self, ConnectionLimits, ConnectionSlot};
use super::banlist::{self, BanStore};
use super::dialing::{self, Seeds};
use super::links::{LinkInfo, Links, Queued, SESSION_COMMAND_QUEUE, SessionHandle};
use super::manual::{DialOutcome, ManualDials};
use super::state::State;
use super::table::{LearnRules, PeerTable};
use super::{
    Ban, BanOutcome, BanSource, BanTarget, CloseOutcome, DialTarget, Direction, PeerCounts,
    PeerError, PeerSnapshot, VerifiedPeer, bans,
};
use crate::clock::Clock;
use crate::config::Config;
use crate::events::{EventKind, Events};
use crate::identity::{Identity, is_peer_id};
use crate::protocol::{
    KnownAddress, PeerMessage, PeerRequest, PeerResponse, Refusal, RegisterHeight, RequestError,
};
use crate::reachability::{AddressBook, Observed};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

/// Validity lost each time a peer serves data that fails verification.
const VERIFICATION_PENALTY: f64 = 0.5;
/// At most one queue-pressure event per peer in this period.
const PRESSURE_EVENT_EVERY: Duration = Duration::from_secs(1);

/// The log target of the whole facade, child modules included: operators filter and read
/// its lines (`sorcha_peer::peers::manager`) as before the split.
const LOG_TARGET: &str = module_path!();

mod connections;
mod operator;

/// The peer domain's facade: the peer state behind its lock, with where it persists, what it
/// counts, and the inbound TCP limits.
pub struct PeerManager {
    /// "Now" for every rule of the peer domain (bans, backoff, retention, quality).
    clock: Clock,
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
    /// bans). `clock` is what "now" means to every rule of the peer domain.
    pub async fn load(
        identity: Arc<Identity>,
        config: Arc<Config>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        events: Arc<Events>,
        clock: Clock,
    ) -> Result<PeerManager, StoreError> {
        let table = PeerTable::load(store.load_peers().await?, identity.peer_id());
        let ban_store = BanStore::new(store.clone());
        let bans = ban_store.load(clock.now_ms()).await?;
        let state = State {
            table,
            bans,
            links: Links::default(),
            seeds: Seeds::new(&config.seeds),
        };
        Ok(PeerManager {
            clock,
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

    /// "Now" by the clock the peer domain runs on: what a rule comparing it with peers' times
    /// (last seen, connected since) must read.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    // ----- this node's own address -----------------------------------------------------

    /// This node's address book of itself (see [`crate::reachability`]).
    pub fn addresses(&self) -> &AddressBook {
        &self.addresses
    }

    /// Where other nodes' platform services are to dial this node's, as it tells its peers: the
    /// configured `platform_advertise_address`, else `platform_listen`, its unspecified host
    /// replaced by the host of the announced peer address. `None` without a platform listener.
    pub fn platform_announcement(&self) -> Option<String> {
        let listen = self.config.platform_listen?;
        if let Some(address) = &self.config.platform_advertise_address {
            return Some(address.clone());
        }
        if !listen.ip().is_unspecified() {
            return Some(listen.to_string());
        }
        let announced = self.announced_address();
        let host = announced
            .rsplit_once(':')
            .map_or(announced.as_str(), |(h, _)| h);
        Some(format!("{host}:{}", listen.port()))
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
            .observe(peer_id, reporter_ip, observed, self.clock.now_ms())
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
        let expired = self.lock().bans.expired(self.clock.now_ms());
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
        let now = self.clock.now_ms();
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

    // ----- observations ----------------------------------------------------------------

    /// A request to the peer succeeded (with its round trip when measured).
    pub fn record_success(&self, peer_id: &str, rtt: Option<Duration>) {
        if let Some(rtt) = rtt {
            self.metrics.heartbeat_latency.observe(rtt.as_secs_f64());
        }
        let rtt_ms = rtt.map(|d| d.as_secs_f64() * 1000.0);
        self.lock().table.update(peer_id, |peer| {
            peer.request_succeeded(rtt_ms, self.clock.now_ms())
        });
    }

    /// A heartbeat from the peer said when it was sent, by its clock.
    pub fn record_clock(&self, peer_id: &str, sent_at_ms: i64) {
        let offset = sent_at_ms.saturating_sub(self.clock.now_ms());
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
            peer.quality.penalize(amount, reason, self.clock.now_ms());
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
        let now = self.clock.now_ms();
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
        self.lock()
            .plan_dials(self.clock.now_ms(), self.config.max_outbound)
    }

    /// A dial (connect or handshake) failed: count it and back off.
    pub fn dial_failed(&self, target: &DialTarget, reason: &str) {
        self.manual
            .settle(&target.address, DialOutcome::Failed(reason.to_string()));
        self.metrics.peer_failures.inc();
        let now = self.clock.now_ms();
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
        let retry = self.clock.now_ms() + self.config.reconnect_backoff_max.as_millis() as i64;
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
        let now = self.clock.now_ms();
        let max_failures = self.config.max_failures;
        self.lock().with_standing(now, |table, standing, _| {
            table.exchange_entries(requester, max, max_failures, now, standing)
        })
    }

    /// Adds addresses a peer told us about (see [`PeerTable::learn`]). Returns how many were
    /// new.
    pub fn learn(&self, from: &str, entries: Vec<KnownAddress>) -> usize {
        let now = self.clock.now_ms();
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
        self.lock().carriers(register_id, self.clock.now_ms())
    }

    /// Every public register advertised by connected, unbanned peers, with the advertisers.
    pub fn advertised_registers(&self) -> BTreeMap<String, Vec<RegisterHeight>> {
        self.lock().advertised_registers(self.clock.now_ms())
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
}

#[cfg(test)]
mod tests;
