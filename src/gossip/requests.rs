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
use std::collections::{HashMap, HashSet, VecDeque, hash_map};
use std::sync::Arc;

use super::slots::{Slot, Slots};
use crate::ledger::ShortId;
use crate::protocol::TxRef;

/// A tracked transaction: its register's slot and its short ID (the same payload can be in
/// two registers). Peers that speak short IDs announce only those.
type TxKey = (Slot, ShortId);

/// Transactions to request, grouped by (peer, register) slots.
type Groups = HashMap<(Slot, Slot), Vec<TxRef>>;

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
    peer: Slot,
    tried: bool,
    /// The whole ID, if this peer named it so. Kept per announcer, so each is asked for what it
    /// said it has: a whole ID made up to match a short one costs only its maker.
    whole: Option<[u8; 32]>,
}

struct Entry {
    announcers: Vec<Announcer>,
    /// The announcer it is requested from right now.
    in_flight: Option<Slot>,
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
    /// Peers that announced, until they are forgotten (gone, or ranked gone).
    peers: Slots<PeerStats>,
    /// Registers of tracked transactions, each with its count of entries (freed at none).
    registers: Slots<usize>,
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
            peers: Slots::new(),
            registers: Slots::new(),
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

    /// Registers named by tracked transactions.
    #[cfg(test)]
    pub(crate) fn registers(&self) -> usize {
        self.registers.len()
    }

    /// Peers holding announcements (to rank before [`schedule`](Self::schedule)).
    pub(crate) fn peer_ids(&self) -> Vec<Arc<str>> {
        self.peers.iter().map(|(_, name, _)| name.clone()).collect()
    }

    /// The peers that announced a tracked transaction (none if it is not tracked).
    pub(crate) fn announcers(&self, register: &str, id: &ShortId) -> Vec<Arc<str>> {
        (self.registers.find(register))
            .and_then(|r| self.entries.get(&(r, *id)))
            .map(|e| {
                (e.announcers.iter())
                    .filter_map(|a| self.peers.name(a.peer).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Transactions requested from `peer` and not answered yet.
    #[cfg(test)]
    pub(crate) fn in_flight(&self, peer: &str) -> usize {
        (self.peers.find(peer))
            .and_then(|p| self.peers.get(p))
            .map_or(0, |p| p.in_flight)
    }

    /// Records that `peer` announced `ids` of `register`.
    pub(crate) fn announce(&mut self, peer: &str, register: &str, ids: &[TxRef]) -> Admitted {
        let mut out = Admitted::default();
        let peer = self.peers.find_or_insert(peer, PeerStats::default);
        // Counted once more for the length of this call, so making room cannot free it.
        let register = self.registers.find_or_insert(register, || 0);
        self.count_register(register, 1);
        for id in ids {
            let key: TxKey = (register, id.short());
            if (self.entries.get(&key)).is_some_and(|e| e.announcers.iter().any(|a| a.peer == peer))
            {
                continue; // announced again by the same peer: nothing new
            }
            let held = self.peers.get(peer).map_or(0, |p| p.keys.len());
            if held >= self.limits.per_peer {
                out.peer_limited += 1;
                continue;
            }
            if self.total >= self.limits.total {
                if self.evict_from_largest(peer, held) {
                    out.evicted += 1;
                } else {
                    out.total_limited += 1;
                    continue;
                }
            }
            let entry = match self.entries.entry(key) {
                hash_map::Entry::Occupied(known) => known.into_mut(),
                hash_map::Entry::Vacant(new) => {
                    if let Some(count) = self.registers.get_mut(register) {
                        *count += 1;
                    }
                    new.insert(Entry {
                        announcers: Vec::new(),
                        in_flight: None,
                        queued: false,
                    })
                }
            };
            entry.announcers.push(Announcer {
                peer,
                tried: false,
                whole: id.full(),
            });
            if entry.in_flight.is_none() && !entry.queued {
                entry.queued = true;
                self.waiting.push_back(key);
            }
            if let Some(stats) = self.peers.get_mut(peer) {
                stats.keys.insert(key);
            }
            self.total += 1;
            out.added += 1;
        }
        self.count_register(register, -1);
        out
    }

    /// Adds `by` to the entries counted for `register`, freeing its slot at none.
    fn count_register(&mut self, register: Slot, by: isize) {
        if let Some(count) = self.registers.get_mut(register) {
            *count = count.saturating_add_signed(by);
            if *count == 0 {
                self.registers.remove(register);
            }
        }
    }

    /// Removes a tracked transaction's entry (its announcers' records are the caller's).
    fn remove_entry(&mut self, key: &TxKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.count_register(key.0, -1);
        Some(entry)
    }

    /// Makes room for one announcement of `peer` (holding `held`) by dropping one of the peer
    /// holding the most, if that is someone else holding more. Announcements in flight stay.
    fn evict_from_largest(&mut self, peer: Slot, held: usize) -> bool {
        let Some((largest, _, _)) = (self.peers.iter())
            .filter(|(p, _, s)| *p != peer && s.keys.len() > held + 1)
            .max_by_key(|(_, _, s)| s.keys.len())
        else {
            return false;
        };
        let victim = self.peers.get(largest).and_then(|s| {
            (s.keys.iter())
                .find(|k| (self.entries.get(*k)).is_some_and(|e| e.in_flight != Some(largest)))
                .copied()
        });
        match victim {
            Some(key) => {
                self.remove_announcer(largest, &key);
                true
            }
            None => false,
        }
    }

    /// Drops `peer`'s announcement of `key`; the transaction is forgotten when nobody else
    /// announced it.
    fn remove_announcer(&mut self, peer: Slot, key: &TxKey) {
        if let Some(stats) = self.peers.get_mut(peer)
            && stats.keys.remove(key)
        {
            self.total -= 1;
        }
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.announcers.retain(|a| a.peer != peer);
        if entry.in_flight == Some(peer) {
            entry.in_flight = None;
        }
        if entry.announcers.is_empty() {
            self.remove_entry(key);
        } else if entry.in_flight.is_none() && !entry.queued {
            entry.queued = true;
            self.waiting.push_back(*key);
        }
    }

    /// Removes a transaction and every announcement of it (stored, or found already held).
    fn forget(&mut self, key: &TxKey) {
        let Some(entry) = self.remove_entry(key) else {
            return;
        };
        for a in entry.announcers {
            if let Some(stats) = self.peers.get_mut(a.peer)
                && stats.keys.remove(key)
            {
                self.total -= 1;
            }
        }
        if let Some(peer) = entry.in_flight
            && let Some(stats) = self.peers.get_mut(peer)
        {
            stats.in_flight = stats.in_flight.saturating_sub(1);
        }
    }

    /// Forgets a peer that went away: its announcements are dropped and what was in flight
    /// from it goes back to the other announcers.
    pub(crate) fn forget_peer(&mut self, peer: &str) {
        let Some(slot) = self.peers.find(peer) else {
            return;
        };
        let Some((_, stats)) = self.peers.remove(slot) else {
            return;
        };
        for key in stats.keys {
            self.total -= 1;
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            entry.announcers.retain(|a| a.peer != slot);
            if entry.in_flight == Some(slot) {
                entry.in_flight = None;
            }
            if entry.announcers.is_empty() {
                self.remove_entry(&key);
            } else if entry.in_flight.is_none() && !entry.queued {
                entry.queued = true;
                self.waiting.push_back(key);
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
        let mut ranks: Vec<Option<Rank>> = vec![None; self.peers.bound()];
        let gone: Vec<Arc<str>> = (self.peers.iter())
            .filter(|(slot, name, _)| match rank(name) {
                Some(r) => {
                    ranks[*slot] = Some(r);
                    false
                }
                None => true,
            })
            .map(|(_, name, _)| name.clone())
            .collect();
        for peer in gone {
            self.forget_peer(&peer);
        }
        let groups = self.assign(&ranks);
        let mut out = Vec::new();
        for ((peer, register), ids) in groups {
            // Both named still: the peer was ranked present, and the register's transactions
            // assigned here are tracked until answered.
            let (Some(peer), Some(register)) =
                (self.peers.name(peer), self.registers.name(register))
            else {
                continue;
            };
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

    /// Assigns waiting transactions to their best announcers with room, ranked by `ranks`.
    fn assign(&mut self, ranks: &[Option<Rank>]) -> Groups {
        let mut groups = Groups::new();
        let mut still_waiting = VecDeque::new();
        // Once no peer has room in flight, nothing more can be assigned: the rest of the queue
        // waits as it is, unread (under load this runs on every answer, so it must not walk
        // the whole queue each time).
        let limit = self.limits.in_flight_per_peer;
        let mut with_room = (self.peers.iter())
            .filter(|(_, _, s)| s.in_flight < limit)
            .count();
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
                let Some(stats) = self.peers.get(a.peer) else {
                    continue;
                };
                if stats.in_flight >= limit {
                    continue;
                }
                let r = ranks.get(a.peer).copied().flatten().unwrap_or(Rank {
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
                    let peer = announcer.peer;
                    let id = announcer.whole.map_or(TxRef::Short(key.1), TxRef::Full);
                    entry.in_flight = Some(peer);
                    entry.queued = false;
                    if let Some(stats) = self.peers.get_mut(peer) {
                        stats.in_flight += 1;
                        if stats.in_flight == limit {
                            with_room -= 1;
                        }
                    }
                    groups.entry((peer, key.0)).or_default().push(id);
                }
                None if untried => still_waiting.push_back(key),
                None => self.forget(&key),
            }
        }
        still_waiting.append(&mut self.waiting);
        self.waiting = still_waiting;
        groups
    }

    /// The transaction is here now (pulled from `peer`, or found already held): forget it.
    pub(crate) fn delivered(&mut self, register: &str, id: &ShortId) {
        if let Some(register) = self.registers.find(register) {
            self.forget(&(register, *id));
        }
    }

    /// A good answer from `peer`: its failure record heals.
    pub(crate) fn answered(&mut self, peer: &str) {
        if let Some(stats) = self.peer_mut(peer) {
            stats.strikes /= 2;
        }
    }

    /// A request to `peer` failed (refused, timed out, peer gone): one strike against it.
    pub(crate) fn strike(&mut self, peer: &str) {
        if let Some(stats) = self.peer_mut(peer) {
            stats.strikes = stats.strikes.saturating_add(1);
        }
    }

    fn peer_mut(&mut self, peer: &str) -> Option<&mut PeerStats> {
        let slot = self.peers.find(peer)?;
        self.peers.get_mut(slot)
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
        let (Some(peer), Some(register)) = (self.peers.find(peer), self.registers.find(register))
        else {
            return; // stale: the peer or every transaction of the register was forgotten
        };
        let key: TxKey = (register, *id);
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        if entry.in_flight != Some(peer) {
            return; // stale: the peer was forgotten meanwhile and the entry moved on
        }
        entry.in_flight = None;
        if tried {
            for a in entry.announcers.iter_mut().filter(|a| a.peer == peer) {
                a.tried = true;
            }
        }
        let all_tried = entry.announcers.iter().all(|a| a.tried);
        if !all_tried {
            entry.queued = true;
        }
        if let Some(stats) = self.peers.get_mut(peer) {
            stats.in_flight = stats.in_flight.saturating_sub(1);
        }
        if all_tried {
            self.forget(&key);
        } else if tried {
            // Straight to the front: its next announcer is asked in the very next round.
            self.waiting.push_front(key);
        } else {
            self.waiting.push_back(key);
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
