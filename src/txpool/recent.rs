//! The transactions stored here most recently, exactly, per register. Under load most
//! announcements a node receives are of transactions it took a moment ago from another peer;
//! the seen-set can only say "maybe" for those, and each "maybe" costs a database look-up.
//! This set answers them without one. It also knows whether each is still pending, so a
//! replicated docket whose transactions gossip brought is sealed without asking the store which
//! are pending. Bounded by count (the oldest leave first), so its memory is fixed; a register
//! no longer held leaves it at once, so it never claims what the store does not hold. Entries
//! are found by short ID (all a peer that speaks them announces) and keep the rest of the ID,
//! so a whole ID is matched exactly and a short one is resolved to its whole ID.

use std::sync::{Mutex, MutexGuard};

use super::newest::Newest;

use crate::ledger::{SHORT_ID_LEN, ShortId, short_id};
use crate::protocol::TxRef;

/// One transaction held: the ID's last 16 bytes, and whether it is sealed (else pending).
#[derive(Clone, Copy)]
struct Held {
    rest: [u8; 32 - SHORT_ID_LEN],
    sealed: bool,
}

impl Held {
    fn whole(&self, short: &ShortId) -> [u8; 32] {
        let mut id = [0; 32];
        id[..SHORT_ID_LEN].copy_from_slice(short);
        id[SHORT_ID_LEN..].copy_from_slice(&self.rest);
        id
    }

    /// Whether this is the transaction `r` names.
    fn is(&self, r: &TxRef) -> bool {
        match r {
            TxRef::Full(id) => id[SHORT_ID_LEN..] == self.rest,
            TxRef::Short(_) => true,
        }
    }
}

fn rest(id: &[u8; 32]) -> [u8; 32 - SHORT_ID_LEN] {
    let mut rest = [0; 32 - SHORT_ID_LEN];
    rest.copy_from_slice(&id[SHORT_ID_LEN..]);
    rest
}

pub(super) struct RecentSet {
    inner: Mutex<Newest<ShortId, Held>>,
}

impl RecentSet {
    pub(super) fn new(capacity: usize) -> RecentSet {
        RecentSet {
            inner: Mutex::new(Newest::new(capacity, |_| 1)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Newest<ShortId, Held>> {
        // Each change below leaves the set whole before it could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records transactions just stored in `register`, pending or `sealed`. A sealed one never
    /// becomes pending again.
    pub(super) fn insert(&self, register: &str, ids: &[[u8; 32]], sealed: bool) {
        let entries = ids.iter().map(|id| {
            let rest = rest(id);
            (short_id(id), Held { rest, sealed })
        });
        // Another ID with the same short one (2^64 hashes to find) keeps the first.
        self.lock().insert(register, entries, |held, new| {
            if held.rest == new.rest {
                held.sealed |= new.sealed;
            }
        });
    }

    /// Whether `id` was stored in `register` recently (a "no" says nothing).
    pub(super) fn contains(&self, register: &str, id: &[u8; 32]) -> bool {
        self.lock()
            .register(register)
            .and_then(|set| set.get(&short_id(id)))
            .is_some_and(|held| held.is(&TxRef::Full(*id)))
    }

    /// The whole ID of each of `refs` stored in `register` recently (`None`: not known here).
    pub(super) fn whole_ids(&self, register: &str, refs: &[TxRef]) -> Vec<Option<[u8; 32]>> {
        let inner = self.lock();
        let set = inner.register(register);
        (refs.iter())
            .map(|r| {
                let short = r.short();
                let held = set?.get(&short)?;
                held.is(r).then(|| held.whole(&short))
            })
            .collect()
    }

    /// Whether every one of `ids` is known here, exactly, as pending in `register` (a "no"
    /// says nothing: the store may still hold them pending).
    pub(super) fn all_pending(&self, register: &str, ids: &[[u8; 32]]) -> bool {
        let inner = self.lock();
        let Some(set) = inner.register(register) else {
            return false;
        };
        ids.iter().all(|id| {
            set.get(&short_id(id))
                .is_some_and(|held| held.is(&TxRef::Full(*id)) && !held.sealed)
        })
    }

    /// Splits `ids` into those stored in `register` recently (returned, as whole IDs) and the
    /// rest (left in `ids`, in their order). One lock for the whole batch.
    pub(super) fn take_known(&self, register: &str, ids: &mut Vec<TxRef>) -> Vec<[u8; 32]> {
        let inner = self.lock();
        let Some(set) = inner.register(register) else {
            return Vec::new();
        };
        let mut known = Vec::new();
        ids.retain(|r| {
            let short = r.short();
            match set.get(&short) {
                Some(held) if held.is(r) => {
                    known.push(held.whole(&short));
                    false
                }
                _ => true,
            }
        });
        known
    }

    /// The register is no longer held here: none of its transactions is.
    pub(super) fn forget_register(&self, register: &str) {
        self.lock().forget_register(register);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_newest_per_register_and_forgets_a_register_at_once() {
        let recent = RecentSet::new(3);
        recent.insert("a", &[[1; 32], [2; 32]], false);
        recent.insert("b", &[[1; 32], [3; 32]], false);
        assert!(!recent.contains("a", &[1; 32]), "the oldest left");
        assert!(recent.contains("a", &[2; 32]));
        assert!(recent.contains("b", &[1; 32]));
        assert!(!recent.contains("a", &[3; 32]), "per register");
        recent.forget_register("b");
        assert!(!recent.contains("b", &[1; 32]) && !recent.contains("b", &[3; 32]));
        assert!(recent.contains("a", &[2; 32]));
    }

    #[test]
    fn knows_what_is_pending_and_a_sealed_one_stays_sealed() {
        let recent = RecentSet::new(10);
        recent.insert("a", &[[1; 32], [2; 32]], false);
        assert!(recent.all_pending("a", &[[1; 32], [2; 32]]));
        assert!(!recent.all_pending("a", &[[1; 32], [9; 32]]), "one unknown");
        assert!(!recent.all_pending("b", &[[1; 32]]), "another register");
        recent.insert("a", &[[2; 32]], true);
        assert!(!recent.all_pending("a", &[[2; 32]]));
        recent.insert("a", &[[2; 32]], false);
        assert!(!recent.all_pending("a", &[[2; 32]]), "never pending again");
        assert!(recent.all_pending("a", &[[1; 32]]));
        assert!(recent.all_pending("a", &[]), "nothing to ask");
    }

    #[test]
    fn takes_out_the_known_ones_and_keeps_the_order_of_the_rest() {
        let recent = RecentSet::new(10);
        recent.insert("a", &[[1; 32], [3; 32]], false);
        recent.insert("a", &[[5; 32]], true);
        let mut ids = vec![
            TxRef::Full([1; 32]),
            TxRef::Full([2; 32]),
            TxRef::Short([3; 16]),
            TxRef::Full([4; 32]),
            TxRef::Full([5; 32]),
        ];
        assert_eq!(
            recent.take_known("a", &mut ids),
            [[1; 32], [3; 32], [5; 32]],
            "a short ID is resolved to its whole one"
        );
        assert_eq!(ids, [TxRef::Full([2; 32]), TxRef::Full([4; 32])]);
        let mut other = vec![TxRef::Full([1; 32])];
        assert!(
            recent.take_known("b", &mut other).is_empty(),
            "another register"
        );
        assert_eq!(other, [TxRef::Full([1; 32])]);
    }

    #[test]
    fn a_whole_id_is_matched_whole_and_a_short_one_finds_it() {
        let recent = RecentSet::new(10);
        let id = [1; 32];
        let mut twin = id;
        twin[31] = 2; // the same short ID, another transaction
        recent.insert("a", &[id], false);
        assert!(recent.contains("a", &id) && !recent.contains("a", &twin));
        assert!(!recent.all_pending("a", &[twin]));
        assert_eq!(
            recent.whole_ids("a", &[TxRef::Short([1; 16]), TxRef::Full(twin)]),
            [Some(id), None]
        );
        let mut named = vec![TxRef::Full(twin)];
        assert!(recent.take_known("a", &mut named).is_empty());
        recent.insert("a", &[twin], true);
        assert!(
            recent.all_pending("a", &[id]),
            "the first one keeps its place"
        );
    }
}
