//! Transaction gossip: every transaction a node accepts (submitted locally or pulled from a
//! peer) is announced by ID to connected peers that carry its register, up to the fanout, in
//! batches. A peer that does not have it pulls the payload once from one announcer, checks the
//! ID against the payload, stores it as pending and announces it onward — so a transaction
//! reaches every node carrying the register however many hops away, the origin included.
//!
//! Announcements wait in the transaction pool's persisted queue ([`crate::txpool`]; bounded,
//! the oldest are dropped with a log line and a metric) until some carrier is connected. Pending transactions that stay pending are
//! announced again every `reannounce_interval`, so nothing accepted is lost to a crash or a
//! dropped message. Per-peer token buckets keep one noisy peer from starving the others.

mod new_session;
mod pull;
mod rate;
pub(crate) mod requests;
mod slots;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::peers::{Direction, PeerManager, PeerState};
use crate::protocol::{PeerMessage, ServedTransactions, TxRef};
use crate::tasks::{Service, Tasks};
use crate::telemetry::Metrics;
use crate::txpool::{TxPool, TxPoolError};
use rate::{Limit, RateLimits};
use requests::{Assignment, Limits, Rank, RequestTracker};

/// Queue entries handled per round.
const QUEUE_BATCH: usize = 5000;
/// IDs per announcement message.
const ANNOUNCE_CHUNK: usize = 1000;
/// IDs per pull request.
const PULL_CHUNK: usize = 500;
/// Validity lost for announcing transactions and then not serving them.
const UNSERVED_PENALTY: f64 = 0.1;
/// Validity lost for announcing transactions and then not answering their request in time.
const UNANSWERED_PENALTY: f64 = 0.05;
/// The request loop runs at least this often (peers that went away, transactions that waited
/// for a busy peer).
const REQUEST_RECHECK: Duration = Duration::from_millis(500);
/// Per-peer rate state unused this long is forgotten.
const BUCKET_IDLE: Duration = Duration::from_secs(600);
/// Newly queued announcements wait a random time up to this (or `gossip_interval`, if shorter)
/// before they go, as Bitcoin Core's trickle does. Nodes that took the same transaction at the
/// same moment then seldom announce it to each other: the first to send tells the others, who
/// note it as a holder before their own turn.
const TRICKLE: Duration = Duration::from_millis(20);

struct Inner {
    tracker: RequestTracker,
}

/// A refused pull (the text goes back to the peer).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("register '{0}' is not available here")]
    Unavailable(String),
    #[error("rate limited: at most {0} transactions a second per peer")]
    RateLimited(u64),
    #[error("storage error: {0}")]
    Pool(#[from] TxPoolError),
}

/// The gossip service of one node.
pub struct Gossip {
    config: Arc<Config>,
    peers: Arc<PeerManager>,
    pool: Arc<TxPool>,
    metrics: Arc<Metrics>,
    rates: RateLimits,
    /// The node's tasks (each pull runs as one).
    tasks: Tasks,
    /// Wakes the request loop.
    requests_wake: Notify,
    inner: Mutex<Inner>,
}

/// Gossip as a node service: the announcer and the request loop, until `shutdown`.
impl Service for Arc<Gossip> {
    const NAME: &'static str = "gossip";

    async fn run(self, shutdown: CancellationToken) {
        tokio::join!(
            self.clone().run_requests(shutdown.clone()),
            self.run_announcer(shutdown.clone())
        );
    }
}

impl Gossip {
    pub fn new(
        config: Arc<Config>,
        peers: Arc<PeerManager>,
        pool: Arc<TxPool>,
        metrics: Arc<Metrics>,
        tasks: Tasks,
    ) -> Arc<Gossip> {
        let limits = Limits {
            per_peer: config.gossip_max_peer_announcements,
            total: config.gossip_max_announcements,
            in_flight_per_peer: config.gossip_max_peer_requests,
        };
        let rates = RateLimits::new(
            config.gossip_announce_rate as f64,
            config.gossip_pull_rate as f64,
        );
        Arc::new(Gossip {
            rates,
            config,
            peers,
            pool,
            metrics,
            tasks,
            requests_wake: Notify::new(),
            inner: Mutex::new(Inner {
                tracker: RequestTracker::new(limits),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends queued announcements every `gossip_interval` (or when woken) and re-queues
    /// transactions that stay pending. Runs until `shutdown`.
    async fn run_announcer(&self, shutdown: CancellationToken) {
        let mut reannounce = tokio::time::interval(self.config.reannounce_interval);
        reannounce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reannounce.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.pool.announcements_waiting() => {
                    let most = TRICKLE.min(self.config.gossip_interval);
                    let wait = most.mul_f64(rand::random::<f64>());
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                _ = tokio::time::sleep(self.config.gossip_interval) => {}
                _ = reannounce.tick() => {
                    self.rates.tidy(BUCKET_IDLE);
                    if let Err(e) = self
                        .pool
                        .requeue_stale(self.config.reannounce_interval, QUEUE_BATCH as i64)
                        .await
                    {
                        tracing::error!("cannot re-queue pending transactions (will retry): {e}");
                    }
                }
            }
            self.flush_queue();
        }
    }

    /// Announces queued transactions to connected carriers of their registers, up to the
    /// fanout. Entries for registers with no connected carrier stay queued.
    fn flush_queue(&self) {
        let ready = |register: &str| {
            let carriers: Vec<String> = self
                .peers
                .carriers(register)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            (!carriers.is_empty()).then_some(carriers)
        };
        for (mut carriers, queued) in self.pool.take_announcements(ready, QUEUE_BATCH) {
            carriers.shuffle(&mut rand::thread_rng());
            carriers.truncate(self.config.gossip_fanout);
            for peer in &carriers {
                // Never tell a peer about what it told us (or served us).
                let ids: Vec<[u8; 32]> = queued
                    .tx_ids
                    .iter()
                    .filter(|(_, holders)| !holders.iter().any(|h| **h == **peer))
                    .map(|(id, _)| *id)
                    .collect();
                self.announce(peer, &queued.register_id, &ids);
            }
        }
    }

    fn announce(&self, peer: &str, register: &str, ids: &[[u8; 32]]) {
        for chunk in ids.chunks(ANNOUNCE_CHUNK) {
            let message = PeerMessage::Announce {
                register_id: register.to_string(),
                tx_ids: chunk.to_vec(),
            };
            // Their bytes are counted as they go out, in the form the peer reads.
            if self.peers.send(peer, message) {
                self.metrics
                    .gossip_announcements_sent
                    .inc_by(chunk.len() as u64);
            }
        }
    }

    /// A peer announced transactions. Rate-limited per peer; the new ones are recorded with
    /// their announcers and requested by the request loop (see [`requests`]).
    pub fn on_announce(&self, peer_id: &str, register_id: String, mut ids: Vec<TxRef>) {
        self.metrics
            .gossip_announcements_received
            .inc_by(ids.len() as u64);
        let granted = self.rates.grant(Limit::Announce, peer_id, ids.len());
        if granted < ids.len() {
            self.metrics
                .gossip_rate_limited
                .inc_by((ids.len() - granted) as u64);
        }
        if granted == 0 || !self.pool.is_public(&register_id) {
            return;
        }
        ids.truncate(granted);
        // Under load most announcements are of transactions stored here a moment ago: they
        // are settled here, without the tracker (or the store).
        let known = self.pool.announced_by(&register_id, &mut ids, peer_id);
        self.metrics.gossip_duplicates_avoided.inc_by(known as u64);
        if ids.is_empty() {
            return;
        }
        // IDs this node holds are kept too: a Bloom "maybe" is only settled by the store,
        // which is asked when the transaction is about to be requested.
        let (admitted, tracked) = {
            let mut inner = self.lock();
            let admitted = inner.tracker.announce(peer_id, &register_id, &ids);
            (admitted, inner.tracker.len())
        };
        self.metrics.gossip_tracked.set(tracked as i64);
        for (reason, n) in [
            ("peer_limit", admitted.peer_limited),
            ("total_limit", admitted.total_limited),
            ("evicted", admitted.evicted),
        ] {
            if n > 0 {
                self.metrics
                    .gossip_announcements_dropped
                    .get_or_create(&vec![("reason", reason)])
                    .inc_by(n as u64);
            }
        }
        if admitted.peer_limited > 0 {
            self.metrics.limit_hit("gossip_max_peer_announcements");
        }
        if admitted.total_limited + admitted.evicted > 0 {
            self.metrics.limit_hit("gossip_max_announcements");
        }
        if admitted.peer_limited + admitted.total_limited > 0 {
            tracing::debug!(
                peer = %peer_id,
                peer_limited = admitted.peer_limited,
                total_limited = admitted.total_limited,
                "announcements ignored: request tracker full (they come back when re-announced)"
            );
        }
        if admitted.added > 0 {
            self.requests_wake.notify_one();
        }
    }

    /// Sends requests for announced transactions whenever something changed (announcements,
    /// answers, deadlines) and at least every `REQUEST_RECHECK`. Runs until `shutdown`.
    async fn run_requests(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.requests_wake.notified() => {}
                _ = tokio::time::sleep(REQUEST_RECHECK) => {}
            }
            self.dispatch();
        }
    }

    /// One scheduling round: asks the tracker what to request from whom and sends it.
    fn dispatch(self: &Arc<Self>) {
        let tracked = self.lock().tracker.peer_ids();
        // Ranked outside the gossip lock (the peer manager has its own).
        let ranks: HashMap<Arc<str>, Rank> = tracked
            .into_iter()
            .filter_map(|peer| {
                let snapshot = self.peers.get(&peer).ok()?;
                (snapshot.state == PeerState::Connected).then(|| {
                    let rank = Rank {
                        outbound: snapshot.direction == Some(Direction::Outbound),
                        score: snapshot.quality.score,
                    };
                    (peer, rank)
                })
            })
            .collect();
        let (assignments, tracked) = {
            let mut inner = self.lock();
            let assignments = inner
                .tracker
                .schedule(|p| ranks.get(p).copied(), PULL_CHUNK);
            (assignments, inner.tracker.len())
        };
        self.metrics.gossip_tracked.set(tracked as i64);
        for assignment in assignments {
            let this = self.clone();
            // Owned by the node: shutdown waits for (or stops) pulls before closing the store.
            self.tasks
                .spawn(async move { this.request(assignment).await });
        }
    }

    /// Requests one assignment from its peer and settles each transaction in the tracker:
    /// delivered (stored, or found already here), failed (the next announcer is asked), or
    /// not requested (someone else is fetching it right now).
    async fn request(&self, assignment: Assignment) {
        let Assignment {
            peer,
            register,
            ids,
        } = assignment;
        let (peer, register) = (&*peer, &*register);
        // Claim first, then check: whoever held a claim stored the payload (and marked it
        // seen) before releasing it, so nothing slips between the check and the claim.
        let (claim, taken) = self.pool.claim(ids);
        for id in &taken {
            self.metrics.gossip_duplicates_avoided.inc();
            self.lock()
                .tracker
                .not_requested(peer, register, &id.short());
        }
        let claimed = claim.ids().to_vec();
        let span = tracing::info_span!(
            "gossip pull",
            peer.id = %peer,
            register.id = %register,
            tx.count = claimed.len(),
            delivered = tracing::field::Empty,
            failed = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let outcome = self
            .pull_claimed(peer, register, &claimed)
            .instrument(span.clone())
            .await;
        match &outcome {
            Ok(settled) => {
                span.record("delivered", settled.delivered.len());
                span.record("failed", settled.failed.len());
            }
            Err(e) => {
                span.record("error", tracing::field::display(e));
            }
        }
        drop(span);
        // Released (and waiting docket pushes woken) once stored or failed.
        drop(claim);
        let progressed = {
            let mut inner = self.lock();
            match outcome {
                Ok(settled) => {
                    let progressed = !settled.delivered.is_empty() || !settled.failed.is_empty();
                    for id in &settled.delivered {
                        inner.tracker.delivered(register, id);
                    }
                    for id in &settled.failed {
                        inner.tracker.failed(peer, register, id);
                    }
                    if settled.failed.is_empty() {
                        inner.tracker.answered(peer);
                    } else if settled.peer_at_fault {
                        inner.tracker.strike(peer);
                    }
                    progressed
                }
                Err(e) => {
                    // Retried by the next periodic round, not at once (a failing disk must
                    // not turn this into a busy loop).
                    tracing::warn!(peer = %peer, register = %register, "gossip pull failed: {e}");
                    for id in &claimed {
                        inner.tracker.not_requested(peer, register, &id.short());
                    }
                    false
                }
            }
        };
        if progressed {
            self.requests_wake.notify_one();
        }
    }

    fn request_failed(&self, reason: &'static str, n: usize) {
        self.metrics
            .gossip_requests_failed
            .get_or_create(&vec![("reason", reason)])
            .inc_by(n as u64);
    }

    /// Serves a peer's pull: payloads of a public register held here, rate-limited per peer.
    /// What is not held is answered missing, named as the peer named it.
    pub async fn serve(
        &self,
        peer_id: &str,
        register_id: &str,
        ids: Vec<TxRef>,
    ) -> Result<ServedTransactions, ServeError> {
        if !self.pool.is_public(register_id) {
            return Err(ServeError::Unavailable(register_id.to_string()));
        }
        let granted = self.rates.grant(Limit::Pull, peer_id, ids.len());
        if granted < ids.len() {
            self.metrics
                .gossip_rate_limited
                .inc_by((ids.len() - granted) as u64);
            return Err(ServeError::RateLimited(self.config.gossip_pull_rate));
        }
        let whole = self.pool.whole_ids(register_id, &ids).await?;
        let found = self.pool.payloads_of(register_id, &whole).await?;
        let mut served = HashSet::with_capacity(ids.len());
        let mut payloads = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for ((id, whole), payload) in ids.iter().zip(&whole).zip(found) {
            match (whole, payload) {
                // An ID named twice is served once.
                (Some(whole), Some(payload)) => {
                    if served.insert(*whole) {
                        payloads.push(payload);
                    }
                }
                _ => missing.push(*id),
            }
        }
        Ok(ServedTransactions { payloads, missing })
    }
}
