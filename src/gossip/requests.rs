//! Which announced transactions to request, from whom — modelled on Bitcoin Core's
//! `TxRequestTracker`.
//!
//! Every announcement (a peer saying "I have transaction X of register R") is recorded, per
//! transaction, with the set of peers that announced it. Each transaction is requested from one
//! announcer at a time: the best one (outbound before inbound, fewer recent failures, higher
//! quality score) that still has room for requests in flight. When that request fails (the
//! peer answered "missing", refused, timed out or went away) the announcer is marked as tried
//! and the transaction goes straight back to be requested from the next announcer; once every
//! announcer has been tried it is forgotten (a later announcement starts over). So what one
//! peer announces never holds up the same transaction announced by another for longer than
//! one request deadline, and a peer's own large batch only ever occupies that peer's slots.
//!
//! Everything is bounded: announcements held per peer, announcements held in total (when full,
//! the peer holding the most gives way, so a flood from some peers cannot keep out others), and
//! transactions in flight per peer. This is plain bookkeeping with no I/O; [`super::Gossip`]
//! drives it.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::ledger::ShortId;
use crate::protocol::TxRef;

/// A tracked transaction: its register and short ID (the same payload can be in two
/// registers). Peers that speak short IDs announce only those.
pub(crate) type TxKey = (Arc<str>, ShortId);

/// Transactions to request, grouped by (peer, register).
type Groups = HashMap<(Arc<str>, Arc<str>), Vec<TxRef>>;

/// The bounds of a tracker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Announcements held for one peer (tried or not).
    pub per_peer: usize,
    /// Announcements held in total.
    pub total: usize,
    /// Transactions requested from one peer and not answered yet.
    pub in_flight_per_peer: usize,
}

/// How much a connected peer is preferred as a source; `None` from the ranking function means
/// the peer is gone (not connected or banned) and its announcements are dropped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rank {
    pub outbound: bool,
    /// The peer's quality score (0-100).
    pub score: f64,
}

/// What happened to one announcement message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// Announcements recorded (new transaction, or a new announcer of a tracked one).
    pub added: usize,
    /// Dropped because the announcing peer already holds `per_peer` announcements.
    pub peer_limited: usize,
    /// Dropped because `total` was reached and this peer holds as many as anyone.
    pub total_limited: usize,
    /// Other peers' announcements dropped to make room (they held the most).
    pub evicted: usize,
}

/// Transactions to request from one peer now.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Assignment {
    pub peer: Arc<str>,
    pub register: Arc<str>,
    /// Each as this peer announced it: by its whole ID from a peer that does not speak short
    /// IDs (it can be asked only that way), else by its short ID.
    pub ids: Vec<TxRef>,
}

struct Announcer {
    peer: Arc<str>,
    tried: bool,
    /// The whole ID, if this peer named it so. Kept per announcer, so each is asked for what it
    /// said it has: a whole ID made up to match a short one costs only its maker.
    whole: Option<[u8; 32]>,
}

struct Entry {
    announcers: Vec<Announcer>,
    /// The announcer it is requested from right now.
    in_flight: Option<Arc<str>>,
    /// In the waiting queue (not in flight).
    queued: bool,
}

#[derive(Default)]
struct PeerStats {
    /// Transactions this peer announced that are still tracked.
    keys: HashSet<TxKey>,
    /// Transactions requested from it and not answered yet.
    in_flight: usize,
    /// Failed requests, halved by each good answer: ranks peers that stall below others.
    strikes: u32,
}

/// The request tracker of one node.
pub(crate) struct RequestTracker {
    limits: Limits,
    entries: HashMap<TxKey, Entry>,
    peers: HashMap<Arc<str>, PeerStats>,
    /// Transactions waiting to be requested, oldest first.
    waiting: VecDeque<TxKey>,
    /// Announcement records held (the sum of every peer's `keys`).
    total: usize,
}

impl RequestTracker {
    pub(crate) fn new(limits: Limits) -> RequestTracker {
        RequestTracker {
            limits,
            entries: HashMap::new(),
            peers: HashMap::new(),
            waiting: VecDeque::new(),
            total: 0,
        }
    }

    /// Transactions tracked.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Announcement records held.
    #[cfg(test)]
    pub(crate) fn announcements(&self) -> usize {
        self.total
    }

    /// Peers holding announcements (to rank before [`schedule`](Self::schedule)).
    pub(crate) fn peer_ids(&self) -> Vec<Arc<str>> {
        self.peers.keys().cloned().collect()
    }

    /// The peers that announced a tracked transaction (none if it is not tracked).
    pub(crate) fn announcers(&self, register: &Arc<str>, id: &ShortId) -> Vec<Arc<str>> {
        self.entries
            .get(&(register.clone(), *id))
            .map(|e| e.announcers.iter().map(|a| a.peer.clone()).collect())
            .unwrap_or_default()
    }

    /// Transactions requested from `peer` and not answered yet.
    #[cfg(test)]
    pub(crate) fn in_flight(&self, peer: &str) -> usize {
        self.peers.get(peer).map_or(0, |p| p.in_flight)
    }

    /// Records that `peer` announced `ids` of `register`.
    pub(crate) fn announce(&mut self, peer: &str, register: &str, ids: &[TxRef]) -> Admitted {
        let mut out = Admitted::default();
        let register: Arc<str> = Arc::from(register);
        let peer: Arc<str> = match self.peers.get_key_value(peer) {
            Some((k, _)) => k.clone(),
            None => Arc::from(peer),
        };
        for id in ids {
            let key: TxKey = (register.clone(), id.short());
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.announcers.iter().any(|a| a.peer == peer))
            {
                continue; // announced again by the same peer: nothing new
            }
            let held = self.peers.get(&peer).map_or(0, |p| p.keys.len());
            if held >= self.limits.per_peer {
                out.peer_limited += 1;
                continue;
            }
            if self.total >= self.limits.total {
                if self.evict_from_largest(&peer, held) {
                    out.evicted += 1;
                } else {
                    out.total_limited += 1;
                    continue;
                }
            }
            let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
                announcers: Vec::new(),
                in_flight: None,
                queued: false,
            });
            entry.announcers.push(Announcer {
                peer: peer.clone(),
                tried: false,
                whole: id.full(),
            });
            if entry.in_flight.is_none() && !entry.queued {
                entry.queued = true;
                self.waiting.push_back(key.clone());
            }
            self.peers.entry(peer.clone()).or_default().keys.insert(key);
            self.total += 1;
            out.added += 1;
        }
        out
    }

    /// Makes room for one announcement of `peer` (holding `held`) by dropping one of the peer
    /// holding the most, if that is someone else holding more. Announcements in flight stay.
    fn evict_from_largest(&mut self, peer: &Arc<str>, held: usize) -> bool {
        let Some((largest, _)) = self
            .peers
            .iter()
            .filter(|(p, s)| *p != peer && s.keys.len() > held + 1)
            .max_by_key(|(_, s)| s.keys.len())
        else {
            return false;
        };
        let largest = largest.clone();
        let victim = self.peers.get(&largest).and_then(|s| {
            s.keys
                .iter()
                .find(|k| {
                    self.entries
                        .get(*k)
                        .is_some_and(|e| e.in_flight.as_ref() != Some(&largest))
                })
                .cloned()
        });
        match victim {
            Some(key) => {
                self.remove_announcer(&largest, &key);
                true
            }
            None => false,
        }
    }

    /// Drops `peer`'s announcement of `key`; the transaction is forgotten when nobody else
    /// announced it.
    fn remove_announcer(&mut self, peer: &Arc<str>, key: &TxKey) {
        if let Some(stats) = self.peers.get_mut(peer)
            && stats.keys.remove(key)
        {
            self.total -= 1;
        }
        if let Some(entry) = self.entries.get_mut(key) {
            entry.announcers.retain(|a| &a.peer != peer);
            if entry.in_flight.as_ref() == Some(peer) {
                entry.in_flight = None;
            }
            if entry.announcers.is_empty() {
                self.entries.remove(key);
            } else if entry.in_flight.is_none() && !entry.queued {
                entry.queued = true;
                self.waiting.push_back(key.clone());
            }
        }
    }

    /// Removes a transaction and every announcement of it (stored, or found already held).
    fn forget(&mut self, key: &TxKey) {
        let Some(entry) = self.entries.remove(key) else {
            return;
        };
        for a in entry.announcers {
            if let Some(stats) = self.peers.get_mut(&a.peer)
                && stats.keys.remove(key)
            {
                self.total -= 1;
            }
        }
        if let Some(peer) = entry.in_flight
            && let Some(stats) = self.peers.get_mut(&peer)
        {
            stats.in_flight = stats.in_flight.saturating_sub(1);
        }
    }

    /// Forgets a peer that went away: its announcements are dropped and what was in flight
    /// from it goes back to the other announcers.
    pub(crate) fn forget_peer(&mut self, peer: &str) {
        let Some((peer, stats)) = self.peers.remove_entry(peer) else {
            return;
        };
        for key in stats.keys {
            self.total -= 1;
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.announcers.retain(|a| a.peer != peer);
                if entry.in_flight.as_ref() == Some(&peer) {
                    entry.in_flight = None;
                }
                if entry.announcers.is_empty() {
                    self.entries.remove(&key);
                } else if entry.in_flight.is_none() && !entry.queued {
                    entry.queued = true;
                    self.waiting.push_back(key);
                }
            }
        }
    }

    /// Picks what to request now: every waiting transaction goes to its best untried
    /// announcer that has room in flight, at most `max_batch` per assignment. Peers `rank`
    /// says are gone are forgotten first. Returned transactions count as in flight until
    /// [`delivered`](Self::delivered), [`failed`](Self::failed) or
    /// [`not_requested`](Self::not_requested) is called for each.
    pub(crate) fn schedule(
        &mut self,
        mut rank: impl FnMut(&str) -> Option<Rank>,
        max_batch: usize,
    ) -> Vec<Assignment> {
        let mut ranks: HashMap<Arc<str>, Rank> = HashMap::new();
        let gone: Vec<Arc<str>> = self
            .peers
            .keys()
            .filter(|p| match rank(p) {
                Some(r) => {
                    ranks.insert((*p).clone(), r);
                    false
                }
                None => true,
            })
            .cloned()
            .collect();
        for peer in gone {
            self.forget_peer(&peer);
        }
        let mut groups = Groups::new();
        let mut still_waiting = VecDeque::new();
        // Once no peer has room in flight, nothing more can be assigned: the rest of the queue
        // waits as it is, unread (under load this runs on every answer, so it must not walk
        // the whole queue each time).
        let limit = self.limits.in_flight_per_peer;
        let mut with_room = self.peers.values().filter(|s| s.in_flight < limit).count();
        while with_room > 0
            && let Some(key) = self.waiting.pop_front()
        {
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.in_flight.is_some() {
                entry.queued = false;
                continue;
            }
            let mut best: Option<(&Announcer, Preference)> = None;
            let mut untried = false;
            for a in entry.announcers.iter().filter(|a| !a.tried) {
                untried = true;
                let Some(stats) = self.peers.get(&a.peer) else {
                    continue;
                };
                if stats.in_flight >= self.limits.in_flight_per_peer {
                    continue;
                }
                let r = ranks.get(&a.peer).copied().unwrap_or(Rank {
                    outbound: false,
                    score: 0.0,
                });
                let candidate = (r.outbound, stats.strikes, r.score);
                if best.is_none_or(|(_, b)| prefer(&candidate, &b) == Ordering::Greater) {
                    best = Some((a, candidate));
                }
            }
            match best {
                Some((announcer, _)) => {
                    let peer = announcer.peer.clone();
                    let id = announcer.whole.map_or(TxRef::Short(key.1), TxRef::Full);
                    entry.in_flight = Some(peer.clone());
                    entry.queued = false;
                    if let Some(stats) = self.peers.get_mut(&peer) {
                        stats.in_flight += 1;
                        if stats.in_flight == limit {
                            with_room -= 1;
                        }
                    }
                    groups.entry((peer, key.0.clone())).or_default().push(id);
                }
                None if untried => still_waiting.push_back(key),
                None => self.forget(&key),
            }
        }
        still_waiting.append(&mut self.waiting);
        self.waiting = still_waiting;
        let mut out = Vec::new();
        for ((peer, register), ids) in groups {
            for chunk in ids.chunks(max_batch.max(1)) {
                out.push(Assignment {
                    peer: peer.clone(),
                    register: register.clone(),
                    ids: chunk.to_vec(),
                });
            }
        }
        out
    }

    /// The transaction is here now (pulled from `peer`, or found already held): forget it.
    pub(crate) fn delivered(&mut self, register: &str, id: &ShortId) {
        let key: TxKey = (Arc::from(register), *id);
        self.forget(&key);
    }

    /// A good answer from `peer`: its failure record heals.
    pub(crate) fn answered(&mut self, peer: &str) {
        if let Some(stats) = self.peers.get_mut(peer) {
            stats.strikes /= 2;
        }
    }

    /// A request to `peer` failed (refused, timed out, peer gone): one strike against it.
    pub(crate) fn strike(&mut self, peer: &str) {
        if let Some(stats) = self.peers.get_mut(peer) {
            stats.strikes = stats.strikes.saturating_add(1);
        }
    }

    /// `peer` did not deliver the transaction (answered "missing", failed or timed out): it is
    /// not asked for it again, and the next announcer is tried at once.
    pub(crate) fn failed(&mut self, peer: &str, register: &str, id: &ShortId) {
        self.finish(peer, register, id, true);
    }

    /// An assignment that was not sent after all (someone else is fetching the transaction
    /// right now): it waits for the next round, nobody's fault.
    pub(crate) fn not_requested(&mut self, peer: &str, register: &str, id: &ShortId) {
        self.finish(peer, register, id, false);
    }

    fn finish(&mut self, peer: &str, register: &str, id: &ShortId, tried: bool) {
        let key: TxKey = (Arc::from(register), *id);
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        if entry.in_flight.as_deref() != Some(peer) {
            return; // stale: the peer was forgotten meanwhile and the entry moved on
        }
        entry.in_flight = None;
        if let Some(stats) = self.peers.get_mut(peer) {
            stats.in_flight = stats.in_flight.saturating_sub(1);
        }
        if tried {
            for a in entry.announcers.iter_mut().filter(|a| &*a.peer == peer) {
                a.tried = true;
            }
        }
        if entry.announcers.iter().all(|a| a.tried) {
            self.forget(&key);
        } else {
            entry.queued = true;
            if tried {
                // Straight to the front: its next announcer is asked in the very next round.
                self.waiting.push_front(key);
            } else {
                self.waiting.push_back(key);
            }
        }
    }
}

/// A candidate announcer's (outbound, strikes, score).
type Preference = (bool, u32, f64);

/// Orders candidates: outbound first, then fewer strikes, then the higher score.
fn prefer(a: &Preference, b: &Preference) -> Ordering {
    a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.total_cmp(&b.2))
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "requests_props.rs"]
mod props;
