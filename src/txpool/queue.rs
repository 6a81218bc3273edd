//! The announcement queue: transaction IDs waiting to be announced to peers, in memory and
//! bounded by `gossip_queue_limit` (the oldest entries are dropped with a log line, an event and
//! a metric; their transactions stay stored and are re-announced while pending).
//!
//! Nothing here is written to disk: the pending transactions themselves are the durable record
//! of what is still to spread. A restart queues them again ([`super::TxPool::restore`]), and
//! pending transactions are re-queued every `reannounce_interval` while they stay pending, so
//! a transaction costs one write, not three (its row, a queue row, and the queue row's delete).
//!
//! Entries wait per register until the caller is ready to announce them (some carrier is
//! connected); entries of private or unknown registers are dropped, never handed out. A
//! transaction sealed meanwhile leaves the queue ([`AnnouncementQueue::remove`]): it reaches
//! replicas in its docket, and a forward-only replica must not be handed history from before
//! its anchor.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::events::{EventKind, Events};
use crate::telemetry::Metrics;

/// Peers known to hold a transaction already (they announced it to this node, or served
/// it): it is never announced to them.
pub(crate) type Holders = Arc<[Arc<str>]>;

/// Queued IDs of one register, ready to be announced.
pub struct Announcements {
    pub register_id: String,
    /// (transaction ID, the peers known to hold it).
    pub tx_ids: Vec<([u8; 32], Holders)>,
}

struct Queued {
    /// Order of arrival across all registers (the oldest go first when the queue is full).
    seq: u64,
    id: [u8; 32],
}

#[derive(Default)]
struct RegisterQueue {
    entries: VecDeque<Queued>,
    /// Each queued ID with its holders, kept here so a peer that announces it while it waits
    /// is added (and not told about it).
    ids: HashMap<[u8; 32], Holders>,
}

#[derive(Default)]
struct State {
    registers: HashMap<String, RegisterQueue>,
    len: usize,
    next_seq: u64,
}

impl State {
    /// Drops the oldest entries (across registers) until at most `limit` remain; returns how
    /// many were dropped.
    fn trim(&mut self, limit: usize) -> usize {
        let mut dropped = 0;
        while self.len > limit {
            // The register holding the oldest entry, and the oldest entry of any other: all of
            // that register older than the latter can go at once.
            let mut oldest: Option<(u64, &String)> = None;
            let mut others = u64::MAX;
            for (register, q) in &self.registers {
                let Some(front) = q.entries.front() else {
                    continue;
                };
                match oldest {
                    Some((seq, _)) if seq <= front.seq => others = others.min(front.seq),
                    _ => {
                        if let Some((seq, _)) = oldest {
                            others = others.min(seq);
                        }
                        oldest = Some((front.seq, register));
                    }
                }
            }
            let Some(register) = oldest.map(|(_, r)| r.clone()) else {
                break;
            };
            let Some(q) = self.registers.get_mut(&register) else {
                break;
            };
            while self.len > limit && q.entries.front().is_some_and(|e| e.seq <= others) {
                if let Some(entry) = q.entries.pop_front() {
                    q.ids.remove(&entry.id);
                }
                self.len -= 1;
                dropped += 1;
            }
            if q.entries.is_empty() {
                self.registers.remove(&register);
            }
        }
        dropped
    }
}

pub(super) struct AnnouncementQueue {
    metrics: Arc<Metrics>,
    events: Arc<Events>,
    limit: usize,
    waiting: Notify,
    state: Mutex<State>,
}

impl AnnouncementQueue {
    pub(super) fn new(metrics: Arc<Metrics>, events: Arc<Events>, limit: usize) -> Self {
        AnnouncementQueue {
            metrics,
            events,
            limit,
            waiting: Notify::new(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change below leaves the state whole before it can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues announcements of transactions, each with the peers known to hold it (not told;
    /// ones already queued are left where they are), and wakes the announcer.
    pub(super) fn push(&self, register_id: &str, ids: &[([u8; 32], Holders)]) {
        if ids.is_empty() {
            return;
        }
        let (depth, dropped) = {
            let mut state = self.lock();
            let mut seq = state.next_seq;
            let q = state.registers.entry(register_id.to_string()).or_default();
            let before = q.entries.len();
            for (id, holders) in ids {
                if let Entry::Vacant(new) = q.ids.entry(*id) {
                    new.insert(holders.clone());
                    q.entries.push_back(Queued { seq, id: *id });
                    seq += 1;
                }
            }
            let added = q.entries.len() - before;
            state.next_seq = seq;
            state.len += added;
            let depth = state.len;
            (depth, state.trim(self.limit))
        };
        self.metrics
            .gossip_queue_depth
            .set((depth - dropped) as i64);
        if dropped > 0 {
            self.dropped(depth, dropped);
        }
        self.waiting.notify_one();
    }

    /// `peer` announced `ids` of `register`, which this node holds: those still queued are not
    /// announced to it. Crossing announcements cancel this way within one `gossip_interval`.
    pub(super) fn note_holder(&self, register_id: &str, ids: &[[u8; 32]], peer: &str) {
        let mut state = self.lock();
        let Some(q) = state.registers.get_mut(register_id) else {
            return;
        };
        for id in ids {
            if let Some(holders) = q.ids.get_mut(id)
                && !holders.iter().any(|h| &**h == peer)
            {
                *holders = holders.iter().cloned().chain([Arc::from(peer)]).collect();
            }
        }
    }

    fn dropped(&self, depth: usize, dropped: usize) {
        self.metrics.gossip_queue_dropped.inc_by(dropped as u64);
        self.metrics.limit_hit("gossip_queue_limit");
        self.events.publish(EventKind::QueuePressure {
            queue: "announcements".into(),
            peer_id: None,
            depth: depth as u64,
            limit: self.limit as u64,
            dropped: dropped as u64,
        });
        tracing::warn!(
            dropped,
            limit = self.limit,
            "announcement queue full: dropped the oldest entries (their transactions are \
             still stored and are re-announced while pending)"
        );
    }

    /// Resolves when something was queued since the last call.
    pub(super) async fn wait(&self) {
        self.waiting.notified().await
    }

    /// Takes the given transactions out of the queue (they were sealed).
    pub(super) fn remove(&self, register_id: &str, ids: &[[u8; 32]]) {
        let depth = {
            let mut state = self.lock();
            let Some(q) = state.registers.get_mut(register_id) else {
                return;
            };
            let gone: HashSet<[u8; 32]> = ids
                .iter()
                .filter(|id| q.ids.remove(*id).is_some())
                .copied()
                .collect();
            if gone.is_empty() {
                return;
            }
            q.entries.retain(|e| !gone.contains(&e.id));
            if q.entries.is_empty() {
                state.registers.remove(register_id);
            }
            state.len -= gone.len();
            state.len
        };
        self.metrics.gossip_queue_depth.set(depth as i64);
    }

    /// Takes up to `per_register` queued entries of each register out of the queue: public
    /// ones (per `is_public`) for which `ready` answers something are handed out with that
    /// answer; public ones it is not ready for stay queued; the rest are dropped.
    pub(super) fn take<T>(
        &self,
        is_public: impl Fn(&str) -> bool,
        mut ready: impl FnMut(&str) -> Option<T>,
        per_register: usize,
    ) -> Vec<(T, Announcements)> {
        let mut out = Vec::new();
        let depth = {
            let mut state = self.lock();
            let mut taken = 0;
            state.registers.retain(|register, q| {
                let answer = if is_public(register) {
                    match ready(register) {
                        Some(answer) => Some(answer),
                        None => return true,
                    }
                } else {
                    // Private registers never leave this node, not even as transaction IDs (a
                    // peer may carry a public register of the same name): only dropped.
                    None
                };
                let n = if answer.is_some() {
                    per_register.min(q.entries.len())
                } else {
                    q.entries.len()
                };
                let items: Vec<([u8; 32], Holders)> = (q.entries.drain(..n))
                    .filter_map(|e| Some((e.id, q.ids.remove(&e.id)?)))
                    .collect();
                taken += n;
                if let Some(answer) = answer {
                    out.push((
                        answer,
                        Announcements {
                            register_id: register.clone(),
                            tx_ids: items,
                        },
                    ));
                }
                !q.entries.is_empty()
            });
            state.len -= taken;
            state.len
        };
        self.metrics.gossip_queue_depth.set(depth as i64);
        out
    }

    /// Entries queued in all.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(limit: usize) -> AnnouncementQueue {
        AnnouncementQueue::new(Arc::new(Metrics::new()), Arc::new(Events::new()), limit)
    }

    fn id(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// Entries of the given IDs, held by `holders`.
    fn entries(ns: &[u8], holders: &[&str]) -> Vec<([u8; 32], Holders)> {
        let holders: Holders = holders.iter().map(|h| Arc::from(*h)).collect();
        ns.iter().map(|n| (id(*n), holders.clone())).collect()
    }

    fn ids(taken: &[(u8, Announcements)]) -> Vec<(String, Vec<u8>)> {
        taken
            .iter()
            .map(|(_, a)| {
                (
                    a.register_id.clone(),
                    a.tx_ids.iter().map(|(i, _)| i[0]).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn entries_are_handed_out_once_in_order_with_their_holders() {
        let q = queue(100);
        q.push("r", &entries(&[1, 2], &["peer-a"]));
        q.push("r", &entries(&[2, 3], &[]));
        assert_eq!(q.len(), 3, "an ID already queued is not queued twice");
        let taken = q.take(|_| true, |_| Some(0u8), 2);
        assert_eq!(ids(&taken), vec![("r".into(), vec![1, 2])]);
        assert_eq!(&*taken[0].1.tx_ids[0].1[0], "peer-a");
        let taken = q.take(|_| true, |_| Some(0u8), 2);
        assert_eq!(ids(&taken), vec![("r".into(), vec![3])]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_peer_that_announces_a_queued_transaction_is_added_to_its_holders_once() {
        let q = queue(100);
        q.push("r", &entries(&[1, 2], &["peer-a"]));
        q.note_holder("r", &[id(1), id(9)], "peer-b");
        q.note_holder("r", &[id(1)], "peer-b");
        q.note_holder("r", &[id(2)], "peer-a");
        q.note_holder("other", &[id(2)], "peer-c");
        assert_eq!(q.len(), 2, "noting queues nothing");
        let taken = q.take(|_| true, |_| Some(0u8), 10);
        let holders: Vec<Vec<&str>> = (taken[0].1.tx_ids.iter())
            .map(|(_, h)| h.iter().map(|p| &**p).collect())
            .collect();
        assert_eq!(holders, [vec!["peer-a", "peer-b"], vec!["peer-a"]]);
    }

    #[test]
    fn registers_not_ready_wait_and_private_ones_are_dropped() {
        let q = queue(100);
        q.push("waits", &entries(&[1], &[]));
        q.push("private", &entries(&[2], &[]));
        let taken = q.take(|r| r != "private", |_| None::<u8>, 10);
        assert!(taken.is_empty());
        assert_eq!(
            q.len(),
            1,
            "the private entry is gone, the waiting one stays"
        );
        let taken = q.take(|_| true, |_| Some(0u8), 10);
        assert_eq!(ids(&taken), vec![("waits".into(), vec![1])]);
    }

    #[test]
    fn the_oldest_entries_across_registers_go_when_full() {
        let q = queue(3);
        q.push("a", &entries(&[1], &[]));
        q.push("b", &entries(&[2], &[]));
        q.push("a", &entries(&[3], &[]));
        q.push("b", &entries(&[4, 5], &[]));
        assert_eq!(q.len(), 3);
        let mut taken = ids(&q.take(|_| true, |_| Some(0u8), 10));
        taken.sort();
        assert_eq!(taken, vec![("a".into(), vec![3]), ("b".into(), vec![4, 5])]);
    }

    #[test]
    fn sealed_transactions_leave_the_queue() {
        let q = queue(10);
        q.push("r", &entries(&[1, 2, 3], &[]));
        q.remove("r", &[id(2), id(9)]);
        assert_eq!(q.len(), 2);
        let taken = q.take(|_| true, |_| Some(0u8), 10);
        assert_eq!(ids(&taken), vec![("r".into(), vec![1, 3])]);
    }
}
