//! The announcement queue: transaction IDs waiting to be announced to peers, persisted in the
//! store (so a restart announces what a crash interrupted) and bounded by
//! `gossip_queue_limit` (the oldest entries are dropped with a log line and a metric; their
//! transactions stay stored and are re-announced while pending). Entries wait per register
//! until the caller is ready to announce them (some carrier is connected); entries of private
//! or unknown registers are dropped, never handed out.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::events::{EventKind, Events};
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

/// Queued IDs of one register, ready to be announced.
pub struct Announcements {
    pub register_id: String,
    /// (transaction ID, the peer it came from: never announce it back there).
    pub tx_ids: Vec<([u8; 32], Option<String>)>,
}

pub(super) struct AnnouncementQueue {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    events: Arc<Events>,
    limit: usize,
    waiting: Notify,
}

/// A queued transaction ID (hex, written by this node) as bytes.
fn parse_id(id: &str) -> Option<[u8; 32]> {
    let parsed = hex::decode(id).ok().and_then(|b| b.try_into().ok());
    if parsed.is_none() {
        tracing::error!(%id, "malformed transaction ID in the announcement queue; dropping it");
    }
    parsed
}

impl AnnouncementQueue {
    pub(super) fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        events: Arc<Events>,
        limit: usize,
    ) -> Self {
        AnnouncementQueue {
            store,
            metrics,
            events,
            limit,
            waiting: Notify::new(),
        }
    }

    /// Something was queued: wakes the announcer.
    pub(super) fn queued(&self) {
        self.waiting.notify_one();
    }

    /// Resolves when something was queued since the last call.
    pub(super) async fn wait(&self) {
        self.waiting.notified().await
    }

    /// Takes up to `per_register` queued entries of each register out of the queue: public
    /// ones (per `is_public`) for which `ready` answers something are handed out with that
    /// answer; public ones it is not ready for stay queued; the rest are dropped.
    pub(super) async fn take<T>(
        &self,
        is_public: impl Fn(&str) -> bool,
        mut ready: impl FnMut(&str) -> Option<T>,
        per_register: i64,
    ) -> Result<Vec<(T, Announcements)>, StoreError> {
        // Idle nodes do one cheap count per round; nothing is written unless there is work.
        let depth = self.store.announcement_queue_len().await?;
        self.metrics.gossip_queue_depth.set(depth);
        if depth == 0 {
            return Ok(Vec::new());
        }
        if depth > self.limit as i64 {
            let dropped = self.store.trim_announcements(self.limit as i64).await?;
            self.metrics.gossip_queue_dropped.inc_by(dropped);
            self.metrics.limit_hit("gossip_queue_limit");
            self.events.publish(EventKind::QueuePressure {
                queue: "announcements".into(),
                peer_id: None,
                depth: depth as u64,
                limit: self.limit as u64,
                dropped,
            });
            tracing::warn!(
                dropped,
                limit = self.limit,
                "announcement queue full: dropped the oldest entries (their transactions are \
                 still stored and are re-announced while pending)"
            );
        }
        // Per register, so entries waiting for an unreachable register's carriers are neither
        // re-read every round nor in the way of other registers' entries.
        let mut out = Vec::new();
        let mut taken = Vec::new();
        for register in self.store.queued_registers().await? {
            let public = is_public(&register);
            let answer = if public {
                match ready(&register) {
                    Some(answer) => Some(answer),
                    None => continue,
                }
            } else {
                None
            };
            let items = self
                .store
                .queued_announcements(&register, per_register)
                .await?;
            if let Some(answer) = answer {
                // Private registers never leave this node, not even as transaction IDs (a
                // peer may carry a public register of the same name): they are only dropped.
                // Only pending transactions are announced: one sealed meanwhile reaches
                // replicas in its docket, and a forward-only replica must not be handed
                // history from before its anchor.
                let tx_ids = items
                    .iter()
                    .filter(|q| q.pending)
                    .filter_map(|q| Some((parse_id(&q.tx_id)?, q.source_peer.clone())))
                    .collect();
                out.push((
                    answer,
                    Announcements {
                        register_id: register.clone(),
                        tx_ids,
                    },
                ));
            }
            taken.extend(items.into_iter().map(|q| (register.clone(), q.tx_id)));
        }
        self.store.remove_announcements(&taken).await?;
        self.metrics
            .gossip_queue_depth
            .set(depth - taken.len() as i64);
        Ok(out)
    }

    /// Queues another announcement (from this node) for the given transactions (the caller
    /// flushes the queue next).
    pub(super) async fn requeue(
        &self,
        register_id: &str,
        tx_ids: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.store
            .enqueue_announcements(register_id, tx_ids, now_ms)
            .await
    }
}
