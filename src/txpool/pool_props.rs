//! State-machine properties of the transaction pool's in-memory parts, each against a plain
//! model: the announcement queue (pushes, removals of sealed IDs, takes with registers ready,
//! waiting or private), the recent set (inserts, registers dropped), the recent payloads (the
//! same, bounded in bytes), the seen-set (no false "no" for the IDs of its current window) and
//! the in-flight claims (claims and releases in any order).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use proptest::prelude::*;

use super::claims::{Claim, Claims};
use super::payloads::{ENTRY_OVERHEAD, RecentPayloads};
use super::queue::{AnnouncementQueue, Holders};
use super::recent::RecentSet;
use super::seen::SeenSet;
use crate::events::Events;
use crate::ledger::tx_hash;
use crate::protocol::TxRef;
use crate::telemetry::Metrics;

const REGISTERS: usize = 3;
const QUEUE_LIMIT: usize = 8;

fn id(n: u8) -> [u8; 32] {
    tx_hash(&[n])
}

fn register(n: usize) -> String {
    format!("r{n}")
}

#[derive(Clone, Debug)]
enum QueueOp {
    Push {
        register: usize,
        ids: Vec<u8>,
        holder: u8,
    },
    /// The IDs were sealed.
    Remove { register: usize, ids: Vec<u8> },
    /// Bit `r` of `ready`: a carrier of register `r` is connected; of `private`: it is private.
    Take {
        per_register: usize,
        ready: u8,
        private: u8,
    },
}

fn queue_op() -> impl Strategy<Value = QueueOp> {
    let ids = || prop::collection::vec(0u8..16, 1..6);
    prop_oneof![
        4 => (0..REGISTERS, ids(), 0u8..3)
            .prop_map(|(register, ids, holder)| QueueOp::Push { register, ids, holder }),
        1 => (0..REGISTERS, ids()).prop_map(|(register, ids)| QueueOp::Remove { register, ids }),
        2 => (1usize..4, any::<u8>(), prop_oneof![3 => Just(0u8), 1 => any::<u8>()])
            .prop_map(|(per_register, ready, private)| QueueOp::Take { per_register, ready, private }),
    ]
}

/// The queue as a list in arrival order: (register, ID, holder).
type QueueModel = VecDeque<(String, [u8; 32], String)>;

// One match over the operations against the model: the steps read best side by side.
#[allow(clippy::too_many_lines)]
fn run_queue(ops: Vec<QueueOp>) -> Result<(), TestCaseError> {
    let q = AnnouncementQueue::new(
        Arc::new(Metrics::new()),
        Arc::new(Events::new()),
        QUEUE_LIMIT,
    );
    let mut m = QueueModel::new();
    for op in ops {
        match op {
            QueueOp::Push {
                register: r,
                ids,
                holder,
            } => {
                let holder = format!("peer{holder}");
                let holders: Holders = Arc::from(vec![Arc::<str>::from(holder.as_str())]);
                let entries: Vec<([u8; 32], Holders)> =
                    ids.iter().map(|n| (id(*n), holders.clone())).collect();
                q.push(&register(r), &entries);
                for (i, _) in &entries {
                    if !m.iter().any(|(reg, x, _)| *reg == register(r) && x == i) {
                        m.push_back((register(r), *i, holder.clone()));
                    }
                }
                // Full: the oldest go first, whatever their register.
                while m.len() > QUEUE_LIMIT {
                    m.pop_front();
                }
            }
            QueueOp::Remove { register: r, ids } => {
                let ids: Vec<[u8; 32]> = ids.iter().map(|n| id(*n)).collect();
                q.remove(&register(r), &ids);
                m.retain(|(reg, x, _)| !(*reg == register(r) && ids.contains(x)));
            }
            QueueOp::Take {
                per_register,
                ready,
                private,
            } => {
                let bit = |mask: u8, reg: &str| {
                    let n: usize = reg[1..].parse().unwrap_or(0);
                    mask & (1 << n) != 0
                };
                let taken = q.take(
                    |reg| !bit(private, reg),
                    |reg| bit(ready, reg).then_some(()),
                    per_register,
                );
                let mut got: BTreeMap<String, Vec<([u8; 32], String)>> = BTreeMap::new();
                for ((), a) in taken {
                    prop_assert!(
                        !bit(private, &a.register_id),
                        "private {} handed out",
                        a.register_id
                    );
                    prop_assert!(!got.contains_key(&a.register_id), "a register twice");
                    let items = a
                        .tx_ids
                        .iter()
                        .map(|(i, h)| (*i, h.first().map(|p| p.to_string()).unwrap_or_default()))
                        .collect();
                    got.insert(a.register_id.clone(), items);
                }
                let mut want: BTreeMap<String, Vec<([u8; 32], String)>> = BTreeMap::new();
                let mut kept = QueueModel::new();
                for (reg, i, h) in m.drain(..) {
                    if bit(private, &reg) {
                        continue; // dropped, never handed out
                    }
                    if !bit(ready, &reg) {
                        kept.push_back((reg, i, h));
                        continue;
                    }
                    let out = want.entry(reg.clone()).or_default();
                    if out.len() < per_register {
                        out.push((i, h));
                    } else {
                        kept.push_back((reg, i, h));
                    }
                }
                m = kept;
                prop_assert_eq!(got, want, "handed out");
            }
        }
        prop_assert!(q.len() <= QUEUE_LIMIT, "{} queued", q.len());
        prop_assert_eq!(q.len(), m.len(), "queued: the model has {:?}", m);
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum RecentOp {
    Insert { register: usize, ids: Vec<u8> },
    Forget { register: usize },
}

fn recent_op() -> impl Strategy<Value = RecentOp> {
    prop_oneof![
        5 => (0..REGISTERS, prop::collection::vec(0u8..12, 1..5))
            .prop_map(|(register, ids)| RecentOp::Insert { register, ids }),
        1 => (0..REGISTERS).prop_map(|register| RecentOp::Forget { register }),
    ]
}

const RECENT_CAPACITY: usize = 6;
const SEEN_CAPACITY: usize = 5;

fn run_recent_and_seen(ops: Vec<RecentOp>) -> Result<(), TestCaseError> {
    let recent = RecentSet::new(RECENT_CAPACITY);
    let seen = SeenSet::new(SEEN_CAPACITY);
    let mut m: VecDeque<(String, [u8; 32])> = VecDeque::new();
    // Every ID inserted into the seen-set, newest last.
    let mut inserted: Vec<[u8; 32]> = Vec::new();
    for op in ops {
        match op {
            RecentOp::Insert { register: r, ids } => {
                let ids: Vec<[u8; 32]> = ids.iter().map(|n| id(*n)).collect();
                recent.insert(&register(r), &ids, false);
                for i in &ids {
                    seen.insert(i);
                    inserted.push(*i);
                    if !m.iter().any(|(reg, x)| *reg == register(r) && x == i) {
                        m.push_back((register(r), *i));
                    }
                }
                while m.len() > RECENT_CAPACITY {
                    m.pop_front();
                }
            }
            RecentOp::Forget { register: r } => {
                recent.forget_register(&register(r));
                m.retain(|(reg, _)| *reg != register(r));
            }
        }
        for r in 0..REGISTERS {
            for n in 0..12 {
                let expected = m.iter().any(|(reg, x)| *reg == register(r) && *x == id(n));
                prop_assert_eq!(
                    recent.contains(&register(r), &id(n)),
                    expected,
                    "r{} id {}: the model holds {:?}",
                    r,
                    n,
                    m
                );
            }
        }
        // A "no" from the seen-set is reliable for its current window.
        for i in inserted.iter().rev().take(SEEN_CAPACITY) {
            prop_assert!(seen.maybe_contains(i), "a recent ID is not seen");
        }
    }
    Ok(())
}

/// The payload stored under `id(n)`: lengths differ, so the byte bound lets a varying number
/// stay.
fn payload(n: u8) -> Vec<u8> {
    vec![n; usize::from(n) * 37 % 300]
}

const PAYLOAD_BYTES: usize = 4 * ENTRY_OVERHEAD + 400;

/// The recent payloads against a list, oldest first, trimmed from the front to the byte bound:
/// each ID's payload is served exactly while the list holds it, and never more bytes.
fn run_recent_payloads(ops: Vec<RecentOp>) -> Result<(), TestCaseError> {
    let kept = RecentPayloads::new(PAYLOAD_BYTES);
    let cost = |n: u8| payload(n).len() + ENTRY_OVERHEAD;
    let mut m: VecDeque<(String, u8)> = VecDeque::new();
    for op in ops {
        match op {
            RecentOp::Insert { register: r, ids } => {
                kept.insert(
                    &register(r),
                    ids.iter().map(|n| (id(*n), payload(*n))).collect(),
                );
                for n in ids {
                    if !m.iter().any(|(reg, x)| *reg == register(r) && *x == n) {
                        m.push_back((register(r), n));
                    }
                }
                while m.iter().map(|(_, n)| cost(*n)).sum::<usize>() > PAYLOAD_BYTES {
                    m.pop_front();
                }
            }
            RecentOp::Forget { register: r } => {
                kept.forget_register(&register(r));
                m.retain(|(reg, _)| *reg != register(r));
            }
        }
        prop_assert_eq!(kept.bytes(), m.iter().map(|(_, n)| cost(*n)).sum::<usize>());
        prop_assert!(kept.bytes() <= PAYLOAD_BYTES);
        for r in 0..REGISTERS {
            let asked: Vec<Option<[u8; 32]>> = (0..12).map(|n| Some(id(n))).collect();
            let expected: Vec<Option<Vec<u8>>> = (0..12u8)
                .map(|n| {
                    (m.iter().any(|(reg, x)| *reg == register(r) && *x == n)).then(|| payload(n))
                })
                .collect();
            prop_assert_eq!(kept.get(&register(r), &asked), expected, "r{}: {:?}", r, m);
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum ClaimOp {
    Claim(Vec<u8>),
    /// Drops the `n`-th claim held (modulo their number).
    Release(usize),
}

fn claim_op() -> impl Strategy<Value = ClaimOp> {
    prop_oneof![
        prop::collection::vec(0u8..8, 0..5).prop_map(ClaimOp::Claim),
        any::<usize>().prop_map(ClaimOp::Release),
    ]
}

fn run_claims(ops: Vec<ClaimOp>) -> Result<(), TestCaseError> {
    let claims = Claims::default();
    let mut held: Vec<Claim<'_>> = Vec::new();
    let mut m: BTreeSet<TxRef> = BTreeSet::new();
    for op in ops {
        match op {
            ClaimOp::Claim(ns) => {
                let ids: Vec<TxRef> = ns.iter().map(|n| TxRef::Full(id(*n))).collect();
                let (claim, taken) = claims.claim(ids.clone());
                let (mut want_claimed, mut want_taken) = (Vec::new(), Vec::new());
                for i in ids {
                    if m.insert(i) {
                        want_claimed.push(i);
                    } else {
                        want_taken.push(i);
                    }
                }
                prop_assert_eq!(claim.ids(), &want_claimed[..]);
                prop_assert_eq!(taken, want_taken);
                held.push(claim);
            }
            ClaimOp::Release(n) => {
                if !held.is_empty() {
                    let claim = held.remove(n % held.len());
                    for i in claim.ids() {
                        m.remove(i);
                    }
                }
            }
        }
        for n in 0..8 {
            prop_assert_eq!(claims.is_claimed(&id(n)), m.contains(&TxRef::Full(id(n))));
        }
    }
    drop(held);
    prop_assert!(
        (0..8).all(|n| !claims.is_claimed(&id(n))),
        "a claim outlived its guard"
    );
    Ok(())
}

proptest! {
    #![proptest_config(crate::props::config(300))]

    #[test]
    fn the_announcement_queue_is_a_bounded_fifo_per_register(
        ops in prop::collection::vec(queue_op(), 1..50)
    ) {
        run_queue(ops)?;
    }

    #[test]
    fn the_recent_set_is_exact_and_the_seen_set_never_misses_its_window(
        ops in prop::collection::vec(recent_op(), 1..50)
    ) {
        run_recent_and_seen(ops)?;
    }

    #[test]
    fn the_recent_payloads_are_exact_and_within_their_bytes(
        ops in prop::collection::vec(recent_op(), 1..50)
    ) {
        run_recent_payloads(ops)?;
    }

    #[test]
    fn each_id_is_claimed_once_until_its_guard_goes(
        ops in prop::collection::vec(claim_op(), 1..40)
    ) {
        run_claims(ops)?;
    }
}
