//! Transaction gossip: every transaction a node accepts (submitted locally or pulled from a
//! peer) is announced by ID to connected peers that carry its register, up to the fanout, in
//! batches. A peer that does not have it pulls the payload once from one announcer, checks the
//! ID against the payload, stores it as pending and announces it onward — so a transaction
//! reaches every node carrying the register however many hops away, the origin included.
//!
//! Announcements wait in a persisted queue (bounded; the oldest are dropped with a log line
//! and a metric) until some carrier is connected. Pending transactions that stay pending are
//! announced again every `reannounce_interval`, so nothing accepted is lost to a crash or a
//! dropped message. Per-peer token buckets keep one noisy peer from starving the others.

pub mod seen;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Config;
use crate::ledger;
use crate::peers::{PeerManager, PeerMessage, PeerRequest, PeerResponse, ServedTransactions};
use crate::replication::Registers;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;
pub use seen::SeenSet;

/// Queue entries handled per round.
const QUEUE_BATCH: i64 = 5000;
/// IDs per announcement message.
const ANNOUNCE_CHUNK: usize = 1000;
/// IDs per pull request.
const PULL_CHUNK: usize = 500;
/// Validity lost for announcing transactions and then not serving them.
const UNSERVED_PENALTY: f64 = 0.1;
/// Per-peer rate state unused this long is forgotten.
const BUCKET_IDLE: Duration = Duration::from_secs(600);
/// Seen-set generation size.
const SEEN_CAPACITY: usize = 200_000;

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes up to `want` tokens; returns how many were granted.
    fn take(&mut self, want: usize, rate: f64, burst: f64) -> usize {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(burst);
        self.last = now;
        let granted = (want as f64).min(self.tokens.floor()).max(0.0);
        self.tokens -= granted;
        granted as usize
    }
}

/// The per-peer limits.
#[derive(Clone, Copy)]
enum Limit {
    /// Transaction IDs accepted from a peer's announcements.
    Announce,
    /// Payloads served to a peer.
    Pull,
}

#[derive(Default)]
struct Inner {
    announce_buckets: HashMap<String, Bucket>,
    pull_buckets: HashMap<String, Bucket>,
}

/// The gossip service of one node.
pub struct Gossip {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    peers: Arc<PeerManager>,
    registers: Arc<Registers>,
    metrics: Arc<Metrics>,
    seen: Arc<SeenSet>,
    wake: Arc<Notify>,
    inner: Mutex<Inner>,
}

/// A queued transaction ID (hex, written by this node) as bytes.
fn parse_id(id: &str) -> Option<[u8; 32]> {
    let parsed = hex::decode(id).ok().and_then(|b| b.try_into().ok());
    if parsed.is_none() {
        tracing::error!(%id, "malformed transaction ID in the announcement queue; dropping it");
    }
    parsed
}

impl Gossip {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        peers: Arc<PeerManager>,
        registers: Arc<Registers>,
        metrics: Arc<Metrics>,
        seen: Arc<SeenSet>,
        wake: Arc<Notify>,
    ) -> Arc<Gossip> {
        Arc::new(Gossip {
            store,
            config,
            peers,
            registers,
            metrics,
            seen,
            wake,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// A seen-set sized for a node.
    pub fn seen_set() -> Arc<SeenSet> {
        Arc::new(SeenSet::new(SEEN_CAPACITY))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends queued announcements every `gossip_interval` (or when woken) and re-queues
    /// transactions that stay pending. Runs until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut reannounce = tokio::time::interval(self.config.reannounce_interval);
        reannounce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reannounce.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.gossip_interval) => {}
                _ = reannounce.tick() => {
                    self.tidy(BUCKET_IDLE);
                    if let Err(e) = self.reannounce().await {
                        tracing::error!("cannot re-queue pending transactions (will retry): {e}");
                    }
                }
            }
            if let Err(e) = self.flush_queue().await {
                tracing::error!("cannot send queued announcements (will retry): {e}");
            }
        }
    }

    /// Announces queued transactions to connected carriers of their registers. Entries for
    /// registers with no connected carrier stay queued.
    async fn flush_queue(&self) -> Result<(), StoreError> {
        // Idle nodes do one cheap count per round; nothing is written unless there is work.
        let depth = self.store.announcement_queue_len().await?;
        self.metrics.gossip_queue_depth.set(depth);
        if depth == 0 {
            return Ok(());
        }
        if depth > self.config.gossip_queue_limit as i64 {
            let dropped = self
                .store
                .trim_announcements(self.config.gossip_queue_limit as i64)
                .await?;
            self.metrics.gossip_queue_dropped.inc_by(dropped);
            tracing::warn!(
                dropped,
                limit = self.config.gossip_queue_limit,
                "announcement queue full: dropped the oldest entries (their transactions are \
                 still stored and are re-announced while pending)"
            );
        }
        // Per register, so entries waiting for an unreachable register's carriers are neither
        // re-read every round nor in the way of other registers' entries.
        let mut sent = Vec::new();
        for register in self.store.queued_registers().await? {
            let public = self.registers.is_public(&register);
            let mut carriers: Vec<String> = self
                .peers
                .carriers(&register)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            if public && carriers.is_empty() {
                continue;
            }
            let items = self
                .store
                .queued_announcements(&register, QUEUE_BATCH)
                .await?;
            if public {
                // Private registers never leave this node, not even as transaction IDs (a
                // peer may carry a public register of the same name): they are only dropped.
                let parsed: Vec<([u8; 32], Option<&str>)> = items
                    .iter()
                    .filter_map(|(id, source)| Some((parse_id(id)?, source.as_deref())))
                    .collect();
                carriers.shuffle(&mut rand::thread_rng());
                carriers.truncate(self.config.gossip_fanout);
                for peer in &carriers {
                    // Never tell a peer about what it told us.
                    let ids: Vec<[u8; 32]> = parsed
                        .iter()
                        .filter(|(_, source)| *source != Some(peer.as_str()))
                        .map(|(id, _)| *id)
                        .collect();
                    self.announce(peer, &register, &ids);
                }
            }
            sent.extend(items.into_iter().map(|(id, _)| (register.clone(), id)));
        }
        self.store.remove_announcements(&sent).await?;
        self.metrics
            .gossip_queue_depth
            .set(depth - sent.len() as i64);
        Ok(())
    }

    fn announce(&self, peer: &str, register: &str, ids: &[[u8; 32]]) {
        for chunk in ids.chunks(ANNOUNCE_CHUNK) {
            let message = PeerMessage::Announce {
                register_id: register.to_string(),
                tx_ids: chunk.to_vec(),
            };
            if self.peers.send(peer, message) {
                self.metrics
                    .gossip_announcements_sent
                    .inc_by(chunk.len() as u64);
                self.metrics
                    .gossip_announce_bytes
                    .inc_by((chunk.len() * 32 + register.len() + 8) as u64);
            }
        }
    }

    /// Queues another announcement for transactions that have stayed pending (the origin
    /// has not sealed them yet, so they may not have reached it).
    async fn reannounce(&self) -> Result<(), StoreError> {
        let cutoff = now_ms() - self.config.reannounce_interval.as_millis() as i64;
        for register in self.registers.replicated_registers() {
            let stale = self
                .store
                .pending_before(&register, cutoff, QUEUE_BATCH)
                .await?;
            if !stale.is_empty() {
                tracing::debug!(register = %register, count = stale.len(), "re-announcing pending transactions");
                self.store
                    .enqueue_announcements(&register, &stale, now_ms())
                    .await?;
            }
        }
        Ok(())
    }

    /// A peer announced transactions. Rate-limited per peer; new ones are pulled in the
    /// background from this announcer.
    pub fn on_announce(self: &Arc<Self>, peer_id: &str, register_id: String, ids: Vec<[u8; 32]>) {
        self.metrics
            .gossip_announcements_received
            .inc_by(ids.len() as u64);
        let granted = self.grant(Limit::Announce, peer_id, ids.len());
        if granted < ids.len() {
            self.metrics
                .gossip_rate_limited
                .inc_by((ids.len() - granted) as u64);
        }
        let ids: Vec<[u8; 32]> = ids.into_iter().take(granted).collect();
        if ids.is_empty() || !self.registers.is_public(&register_id) {
            return;
        }
        let this = self.clone();
        let peer = peer_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = this.fetch(&peer, &register_id, ids).await {
                tracing::warn!(peer = %peer, register = %register_id, "gossip pull failed: {e}");
            }
        });
    }

    /// Pulls the announced transactions this node does not have yet.
    async fn fetch(&self, peer: &str, register_id: &str, ids: Vec<[u8; 32]>) -> Result<(), String> {
        // Claim first, then check: whoever held a claim stored the payload (and marked it
        // seen) before releasing it, so nothing slips between the check and the claim.
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            if self.seen.claim(&id) {
                claimed.push(id);
            } else {
                self.metrics.gossip_duplicates_avoided.inc();
            }
        }
        // Bloom "no" is reliable; a "maybe" is confirmed against the store, in one query.
        let maybe: Vec<String> = claimed
            .iter()
            .filter(|id| self.seen.maybe_contains(id))
            .map(hex::encode)
            .collect();
        let held = if maybe.is_empty() {
            Ok(HashSet::new())
        } else {
            self.store.existing_transactions(register_id, &maybe).await
        };
        let held = match held {
            Ok(held) => held,
            Err(e) => {
                for id in &claimed {
                    self.seen.release(id);
                }
                return Err(e.to_string());
            }
        };
        let mut wanted = Vec::with_capacity(claimed.len());
        for id in claimed {
            if held.contains(&hex::encode(id)) {
                self.seen.release(&id);
                self.metrics.gossip_duplicates_avoided.inc();
            } else {
                wanted.push(id);
            }
        }
        let result = self.pull(peer, register_id, &wanted).await;
        for id in &wanted {
            self.seen.release(id);
        }
        result
    }

    async fn pull(&self, peer: &str, register_id: &str, wanted: &[[u8; 32]]) -> Result<(), String> {
        for chunk in wanted.chunks(PULL_CHUNK) {
            let request = PeerRequest::Transactions {
                register_id: register_id.to_string(),
                tx_ids: chunk.to_vec(),
            };
            let ServedTransactions { payloads, missing } = match self
                .peers
                .request(peer, request, self.config.request_timeout)
                .await?
            {
                PeerResponse::Transactions(result) => result?,
                _ => return Err("unexpected answer".into()),
            };
            let asked: HashSet<&[u8; 32]> = chunk.iter().collect();
            let mut good = Vec::with_capacity(payloads.len());
            for payload in payloads {
                let id = ledger::tx_hash(&payload);
                if !asked.contains(&id) {
                    // A payload that is not what was announced: bad data, not a mix-up.
                    self.peers
                        .verification_failed(
                            peer,
                            "served a transaction payload that does not match its ID",
                        )
                        .await;
                    continue;
                }
                if payload.len() > self.config.max_transaction_size {
                    self.peers.penalize(
                        peer,
                        UNSERVED_PENALTY,
                        "served a transaction larger than max_transaction_size",
                    );
                    continue;
                }
                good.push((hex::encode(id), payload));
            }
            if !missing.is_empty() {
                self.peers.penalize(
                    peer,
                    UNSERVED_PENALTY,
                    &format!(
                        "announced {} transaction(s) it then could not serve",
                        missing.len()
                    ),
                );
            }
            self.metrics
                .gossip_payloads_pulled
                .inc_by(good.len() as u64);
            let stored = self
                .registers
                .accept_gossiped(register_id, good, peer)
                .await
                .map_err(|e| e.to_string())?;
            if stored > 0 {
                self.metrics
                    .gossip_transactions_received
                    .get_or_create(&vec![("register", register_id.to_string())])
                    .inc_by(stored as u64);
                self.wake.notify_one();
            }
        }
        Ok(())
    }

    /// Serves a peer's pull: payloads of a public register held here, rate-limited per peer.
    pub async fn serve(
        &self,
        peer_id: &str,
        register_id: &str,
        ids: Vec<[u8; 32]>,
    ) -> Result<ServedTransactions, String> {
        if !self.registers.is_public(register_id) {
            return Err(format!("register '{register_id}' is not available here"));
        }
        let granted = self.grant(Limit::Pull, peer_id, ids.len());
        if granted < ids.len() {
            self.metrics
                .gossip_rate_limited
                .inc_by((ids.len() - granted) as u64);
            return Err(format!(
                "rate limited: at most {} transactions a second per peer",
                self.config.gossip_pull_rate
            ));
        }
        let hex_ids: Vec<String> = ids.iter().map(hex::encode).collect();
        let found = self
            .store
            .payloads_by_id(register_id, &hex_ids)
            .await
            .map_err(|e| format!("storage error: {e}"))?;
        let have: HashSet<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
        let missing = ids
            .iter()
            .zip(&hex_ids)
            .filter(|(_, h)| !have.contains(h.as_str()))
            .map(|(id, _)| *id)
            .collect();
        Ok(ServedTransactions {
            payloads: found.into_iter().map(|(_, p)| p).collect(),
            missing,
        })
    }

    /// Takes up to `want` tokens from `peer`'s bucket for `limit`; returns how many it got.
    fn grant(&self, limit: Limit, peer: &str, want: usize) -> usize {
        let rate = match limit {
            Limit::Announce => self.config.gossip_announce_rate,
            Limit::Pull => self.config.gossip_pull_rate,
        } as f64;
        let burst = rate * 2.0;
        let mut inner = self.lock();
        let buckets = match limit {
            Limit::Announce => &mut inner.announce_buckets,
            Limit::Pull => &mut inner.pull_buckets,
        };
        buckets
            .entry(peer.to_string())
            .or_insert(Bucket {
                tokens: burst,
                last: Instant::now(),
            })
            .take(want, rate, burst)
    }

    /// Forgets per-peer state of peers that are gone (called periodically).
    fn tidy(&self, idle: Duration) {
        let mut inner = self.lock();
        inner
            .announce_buckets
            .retain(|_, b| b.last.elapsed() < idle);
        inner.pull_buckets.retain(|_, b| b.last.elapsed() < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_their_rate_and_cap_at_burst() {
        let mut b = Bucket {
            tokens: 10.0,
            last: Instant::now(),
        };
        assert_eq!(b.take(25, 100.0, 10.0), 10);
        assert_eq!(b.take(5, 100.0, 10.0), 0);
        std::thread::sleep(Duration::from_millis(50));
        let refilled = b.take(100, 100.0, 10.0);
        assert!((4..=10).contains(&refilled), "{refilled}");
    }
}
