//! The transactions stored here most recently, exactly, per register. Under load most
//! announcements a node receives are of transactions it took a moment ago from another peer;
//! the seen-set can only say "maybe" for those, and each "maybe" costs a database look-up.
//! This set answers them without one. It also knows whether each is still pending, so a
//! replicated docket whose transactions gossip brought is sealed without asking the store which
//! are pending. Bounded by count (the oldest leave first), so its memory is fixed; a register
//! no longer held leaves it at once, so it never claims what the store does not hold.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

pub(super) struct RecentSet {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Per register, each ID and whether it is sealed (else pending).
    by_register: HashMap<Arc<str>, HashMap<[u8; 32], bool>>,
    /// Every entry, oldest first.
    order: VecDeque<(Arc<str>, [u8; 32])>,
}

impl RecentSet {
    pub(super) fn new(capacity: usize) -> RecentSet {
        RecentSet {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each change below leaves the set whole before it could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records transactions just stored in `register`, pending or `sealed`. A sealed one never
    /// becomes pending again.
    pub(super) fn insert(&self, register: &str, ids: &[[u8; 32]], sealed: bool) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let register = match inner.by_register.get_key_value(register) {
            Some((name, _)) => name.clone(),
            None => Arc::from(register),
        };
        let set = inner.by_register.entry(register.clone()).or_default();
        for id in ids {
            match set.entry(*id) {
                Entry::Occupied(mut known) => *known.get_mut() |= sealed,
                Entry::Vacant(new) => {
                    new.insert(sealed);
                    inner.order.push_back((register.clone(), *id));
                }
            }
        }
        while inner.order.len() > self.capacity {
            let Some((r, id)) = inner.order.pop_front() else {
                break;
            };
            if let Some(set) = inner.by_register.get_mut(&r) {
                set.remove(&id);
                if set.is_empty() {
                    inner.by_register.remove(&r);
                }
            }
        }
    }

    /// Whether `id` was stored in `register` recently (a "no" says nothing).
    pub(super) fn contains(&self, register: &str, id: &[u8; 32]) -> bool {
        self.lock()
            .by_register
            .get(register)
            .is_some_and(|set| set.contains_key(id))
    }

    /// Whether every one of `ids` is known here, exactly, as pending in `register` (a "no"
    /// says nothing: the store may still hold them pending).
    pub(super) fn all_pending(&self, register: &str, ids: &[[u8; 32]]) -> bool {
        let inner = self.lock();
        let Some(set) = inner.by_register.get(register) else {
            return false;
        };
        ids.iter().all(|id| set.get(id) == Some(&false))
    }

    /// Splits `ids` into those stored in `register` recently (returned) and the rest (left in
    /// `ids`, in their order). One lock for the whole batch.
    pub(super) fn take_known(&self, register: &str, ids: &mut Vec<[u8; 32]>) -> Vec<[u8; 32]> {
        let inner = self.lock();
        let Some(set) = inner.by_register.get(register) else {
            return Vec::new();
        };
        let mut known = Vec::new();
        ids.retain(|id| {
            let held = set.contains_key(id);
            if held {
                known.push(*id);
            }
            !held
        });
        known
    }

    /// The register is no longer held here: none of its transactions is.
    pub(super) fn forget_register(&self, register: &str) {
        let mut inner = self.lock();
        if inner.by_register.remove(register).is_some() {
            inner.order.retain(|(r, _)| &**r != register);
        }
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
        let mut ids = vec![[1; 32], [2; 32], [3; 32], [4; 32], [5; 32]];
        assert_eq!(
            recent.take_known("a", &mut ids),
            [[1; 32], [3; 32], [5; 32]]
        );
        assert_eq!(ids, [[2; 32], [4; 32]]);
        let mut other = vec![[1; 32]];
        assert!(
            recent.take_known("b", &mut other).is_empty(),
            "another register"
        );
        assert_eq!(other, [[1; 32]]);
    }
}
