//! State-machine properties of the request tracker (`requests.rs`): random announcements,
//! scheduling rounds, answers (delivered, missing, not sent), late answers of requests to
//! peers that went away, disconnects and reconnects, checked after every step against a
//! model of what was asked of whom. At the end the tracker is drained (every request fails)
//! and must ask every transaction it still tracked of some announcer, then hold nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;

use super::*;

const PEERS: usize = 4;
const REGISTERS: usize = 2;
const IDS: u8 = 10;
const LIMITS: Limits = Limits {
    per_peer: 6,
    total: 10,
    in_flight_per_peer: 3,
};

/// A transaction (register, ID), and a request of one from a peer.
type Key = (String, ShortId);
type Ask = (String, Key);

#[derive(Clone, Copy, Debug)]
enum Outcome {
    Delivered,
    Missing,
    NotSent,
}

#[derive(Clone, Debug)]
enum Op {
    Announce {
        peer: usize,
        register: usize,
        ids: Vec<u8>,
    },
    Schedule {
        max_batch: usize,
    },
    /// Settles the `pick`-th request outstanding (modulo their number).
    Answer {
        pick: usize,
        outcome: Outcome,
    },
    /// Settles the `pick`-th request to a peer the tracker forgot (it comes back late).
    LateAnswer {
        pick: usize,
        delivered: bool,
    },
    Disconnect {
        peer: usize,
    },
    Connect {
        peer: usize,
        outbound: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        Just(Outcome::Delivered),
        Just(Outcome::Missing),
        Just(Outcome::NotSent)
    ];
    prop_oneof![
        4 => (0..PEERS, 0..REGISTERS, prop::collection::vec(0..IDS, 1..6))
            .prop_map(|(peer, register, ids)| Op::Announce { peer, register, ids }),
        3 => (1usize..4).prop_map(|max_batch| Op::Schedule { max_batch }),
        3 => (any::<usize>(), outcome).prop_map(|(pick, outcome)| Op::Answer { pick, outcome }),
        1 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, delivered)| Op::LateAnswer { pick, delivered }),
        1 => (0..PEERS).prop_map(|peer| Op::Disconnect { peer }),
        1 => (0..PEERS, any::<bool>()).prop_map(|(peer, outbound)| Op::Connect { peer, outbound }),
    ]
}

fn peer_name(n: usize) -> String {
    format!("p{n}")
}

fn key(register: usize, n: u8) -> Key {
    let mut id = [0; 16];
    id[0] = n;
    (format!("r{register}"), id)
}

/// The whole ID of a transaction whose short ID is `short`.
fn whole(short: &ShortId) -> [u8; 32] {
    let mut id = [0xab; 32];
    id[..16].copy_from_slice(short);
    id
}

/// Peers that do not speak short IDs: they announce whole IDs, and can be asked only by them.
fn speaks_whole_ids(peer: &str) -> bool {
    peer == "p1" || peer == "p2"
}

/// What the test knows: who is connected, who announced what, what is asked of whom.
struct Model {
    /// Connected peers, with whether they are outbound.
    connected: BTreeMap<String, bool>,
    /// Peers that announced each transaction and that the tracker may still remember.
    announced_by: HashMap<Key, BTreeSet<String>>,
    /// The request of each transaction the tracker counts as in flight.
    outstanding: BTreeMap<Key, String>,
    /// Requests to peers the tracker forgot (or whose transaction came from elsewhere), whose
    /// answers may still arrive.
    stale: Vec<Ask>,
    /// Announcers that answered "missing" for a transaction the tracker still tracks.
    failed_by: BTreeSet<Ask>,
}

impl Model {
    fn new() -> Model {
        Model {
            connected: (0..PEERS).map(|p| (peer_name(p), p % 2 == 0)).collect(),
            announced_by: HashMap::new(),
            outstanding: BTreeMap::new(),
            stale: Vec::new(),
            failed_by: BTreeSet::new(),
        }
    }

    fn rank(&self, peer: &str) -> Option<Rank> {
        self.connected.get(peer).map(|outbound| Rank {
            outbound: *outbound,
            score: 50.0,
        })
    }

    /// A scheduling round, checked: returns the transactions asked, by peer.
    fn schedule(
        &mut self,
        t: &mut RequestTracker,
        max_batch: usize,
    ) -> Result<Vec<Ask>, TestCaseError> {
        let assignments = t.schedule(|p| self.rank(p), max_batch);
        // Peers gone at this round are forgotten: their requests can only come back late.
        let gone: Vec<String> = self
            .outstanding
            .values()
            .filter(|p| !self.connected.contains_key(*p))
            .cloned()
            .collect();
        for peer in gone {
            let keys: Vec<_> = (self.outstanding.iter())
                .filter(|(_, p)| **p == peer)
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                self.outstanding.remove(&k);
                self.stale.push((peer.clone(), k));
            }
        }
        for announcers in self.announced_by.values_mut() {
            announcers.retain(|p| self.connected.contains_key(p));
        }
        self.failed_by
            .retain(|(p, _)| self.connected.contains_key(p));
        let mut asked = Vec::new();
        for a in assignments {
            let peer = a.peer.to_string();
            prop_assert!(
                self.connected.contains_key(&peer),
                "asked {peer}, who is not connected"
            );
            prop_assert!(
                !a.ids.is_empty() && a.ids.len() <= max_batch,
                "a batch of {} with max_batch {max_batch}",
                a.ids.len()
            );
            for id in &a.ids {
                // Each peer is asked in the form it announced.
                let expected = match speaks_whole_ids(&peer) {
                    true => TxRef::Full(whole(&id.short())),
                    false => TxRef::Short(id.short()),
                };
                prop_assert_eq!(*id, expected, "asked of {} in another form", &peer);
                let k = (a.register.to_string(), id.short());
                prop_assert!(
                    !self.outstanding.contains_key(&k),
                    "{k:?} asked of {peer} while in flight to {:?}",
                    self.outstanding.get(&k)
                );
                prop_assert!(
                    self.announced_by.get(&k).is_some_and(|s| s.contains(&peer)),
                    "{k:?} asked of {peer}, who did not announce it"
                );
                self.outstanding.insert(k.clone(), peer.clone());
                asked.push((peer.clone(), k));
            }
        }
        Ok(asked)
    }

    /// An answer from `peer` about `k`, as the gossip layer reports it.
    fn settle(&mut self, t: &mut RequestTracker, peer: &str, k: &Key, o: Outcome) {
        match o {
            Outcome::Delivered => {
                t.delivered(&k.0, &k.1);
                t.answered(peer);
                // Held now: a request for it elsewhere is moot.
                if let Some(other) = self.outstanding.remove(k) {
                    self.stale.push((other, k.clone()));
                }
                self.announced_by.remove(k);
                self.stale.retain(|(p, s)| !(p == peer && s == k));
            }
            Outcome::Missing | Outcome::NotSent => {
                if matches!(o, Outcome::Missing) {
                    t.strike(peer);
                    t.failed(peer, &k.0, &k.1);
                } else {
                    t.not_requested(peer, &k.0, &k.1);
                }
                // Answers are matched by peer and transaction.
                if self.outstanding.get(k).is_some_and(|p| p == peer) {
                    self.outstanding.remove(k);
                    if matches!(o, Outcome::Missing) {
                        self.failed_by.insert((peer.to_string(), k.clone()));
                    }
                }
            }
        }
    }

    /// What the tracker forgot, the model forgets too.
    fn forget_untracked(&mut self, t: &RequestTracker) {
        self.failed_by
            .retain(|(_, k)| !t.announcers(&k.0, &k.1).is_empty());
    }

    fn check(&self, t: &RequestTracker) -> Result<(), TestCaseError> {
        prop_assert!(t.announcements() <= LIMITS.total);
        let mut held: BTreeMap<String, usize> = BTreeMap::new();
        let mut records = 0;
        let mut registers = BTreeSet::new();
        for r in 0..REGISTERS {
            for n in 0..IDS {
                let (register, id) = key(r, n);
                let announcers = t.announcers(&register, &id);
                if !announcers.is_empty() {
                    registers.insert(r);
                }
                let distinct: BTreeSet<_> = announcers.iter().collect();
                prop_assert_eq!(distinct.len(), announcers.len(), "an announcer twice");
                records += announcers.len();
                for a in announcers {
                    *held.entry(a.to_string()).or_default() += 1;
                }
            }
        }
        prop_assert_eq!(records, t.announcements(), "announcement count drifted");
        prop_assert_eq!(
            t.registers(),
            registers.len(),
            "registers named beyond the tracked transactions"
        );
        for (peer, n) in &held {
            prop_assert!(*n <= LIMITS.per_peer, "{peer} holds {n} announcements");
        }
        for p in 0..PEERS {
            let peer = peer_name(p);
            let expected = self.outstanding.values().filter(|q| **q == peer).count();
            prop_assert_eq!(
                t.in_flight(&peer),
                expected,
                "in flight to {} (the model: {:?})",
                peer,
                self.outstanding
            );
            prop_assert!(t.in_flight(&peer) <= LIMITS.in_flight_per_peer);
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut t = RequestTracker::new(LIMITS);
    let mut m = Model::new();
    for op in ops {
        match op {
            Op::Announce {
                peer,
                register,
                ids,
            } => {
                let peer = peer_name(peer);
                // Only a connected peer's announcements reach the tracker.
                if m.connected.contains_key(&peer) {
                    let ids: Vec<ShortId> = ids.iter().map(|n| key(register, *n).1).collect();
                    let refs: Vec<TxRef> = (ids.iter())
                        .map(|id| match speaks_whole_ids(&peer) {
                            true => TxRef::Full(whole(id)),
                            false => TxRef::Short(*id),
                        })
                        .collect();
                    t.announce(&peer, &format!("r{register}"), &refs);
                    for id in ids {
                        let k = (format!("r{register}"), id);
                        m.announced_by.entry(k).or_default().insert(peer.clone());
                    }
                }
            }
            Op::Schedule { max_batch } => {
                m.schedule(&mut t, max_batch)?;
                for peer in (0..PEERS).map(peer_name) {
                    if !m.connected.contains_key(&peer) {
                        prop_assert_eq!(t.in_flight(&peer), 0, "{} is gone", peer);
                    }
                }
            }
            Op::Answer { pick, outcome } => {
                if !m.outstanding.is_empty() {
                    let (k, peer) = m
                        .outstanding
                        .iter()
                        .nth(pick % m.outstanding.len())
                        .map(|(k, p)| (k.clone(), p.clone()))
                        .expect("picked within bounds");
                    m.settle(&mut t, &peer, &k, outcome);
                }
            }
            Op::LateAnswer { pick, delivered } => {
                if !m.stale.is_empty() {
                    let (peer, k) = m.stale.remove(pick % m.stale.len());
                    let outcome = if delivered {
                        Outcome::Delivered
                    } else {
                        Outcome::Missing
                    };
                    m.settle(&mut t, &peer, &k, outcome);
                }
            }
            Op::Disconnect { peer } => {
                m.connected.remove(&peer_name(peer));
            }
            Op::Connect { peer, outbound } => {
                m.connected.insert(peer_name(peer), outbound);
            }
        }
        m.forget_untracked(&t);
        m.check(&t)?;
    }
    drain(&mut t, &mut m)
}

/// Every request fails from now on: whatever is tracked with a connected announcer is asked
/// of each such announcer once at most, of one at least, and then nothing is left.
fn drain(t: &mut RequestTracker, m: &mut Model) -> Result<(), TestCaseError> {
    let mut pending: BTreeSet<Key> = BTreeSet::new();
    for r in 0..REGISTERS {
        for n in 0..IDS {
            let k = key(r, n);
            let announcers = t.announcers(&k.0, &k.1);
            let askable = |a: &Arc<str>| {
                m.connected.contains_key(&**a) && !m.failed_by.contains(&(a.to_string(), k.clone()))
            };
            if announcers.iter().any(askable) && !m.outstanding.contains_key(&k) {
                pending.insert(k);
            }
        }
    }
    let mut asked: BTreeSet<Ask> = BTreeSet::new();
    for _ in 0..200 {
        for (peer, k) in std::mem::take(&mut m.stale) {
            m.settle(t, &peer, &k, Outcome::Missing);
        }
        let outstanding: Vec<_> = m
            .outstanding
            .iter()
            .map(|(k, p)| (p.clone(), k.clone()))
            .collect();
        for (peer, k) in outstanding {
            m.settle(t, &peer, &k, Outcome::Missing);
        }
        m.check(t)?;
        let round = m.schedule(t, 3)?;
        if round.is_empty() && m.outstanding.is_empty() {
            break;
        }
        for a in round {
            prop_assert!(asked.insert(a.clone()), "{a:?} asked twice after failing");
            pending.remove(&a.1);
        }
    }
    prop_assert!(pending.is_empty(), "never asked of anyone: {:?}", pending);
    prop_assert_eq!(t.len(), 0, "transactions left after every announcer failed");
    prop_assert_eq!(t.announcements(), 0);
    prop_assert_eq!(t.registers(), 0, "a register named with nothing tracked");
    Ok(())
}

proptest! {
    #![proptest_config(crate::props::config(400))]

    #[test]
    fn the_tracker_keeps_its_promises(ops in prop::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
