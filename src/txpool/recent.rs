//! The transactions stored here most recently, exactly, per register. Under load most
//! announcements a node receives are of transactions it took a moment ago from another peer;
//! the seen-set can only say "maybe" for those, and each "maybe" costs a database look-up.
//! This set answers them without one. Bounded by count (the oldest leave first), so its memory
//! is fixed; a register no longer held leaves it at once, so it never claims what the store
//! does not hold.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

pub(super) struct RecentSet {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_register: HashMap<Arc<str>, HashSet<[u8; 32]>>,
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

    /// Records transactions just stored (pending or sealed) in `register`.
    pub(super) fn insert(&self, register: &str, ids: &[[u8; 32]]) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let register = match inner.by_register.get_key_value(register) {
            Some((name, _)) => name.clone(),
            None => Arc::from(register),
        };
        let set = inner.by_register.entry(register.clone()).or_default();
        for id in ids {
            if set.insert(*id) {
                inner.order.push_back((register.clone(), *id));
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
            .is_some_and(|set| set.contains(id))
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
        recent.insert("a", &[[1; 32], [2; 32]]);
        recent.insert("b", &[[1; 32], [3; 32]]);
        assert!(!recent.contains("a", &[1; 32]), "the oldest left");
        assert!(recent.contains("a", &[2; 32]));
        assert!(recent.contains("b", &[1; 32]));
        assert!(!recent.contains("a", &[3; 32]), "per register");
        recent.forget_register("b");
        assert!(!recent.contains("b", &[1; 32]) && !recent.contains("b", &[3; 32]));
        assert!(recent.contains("a", &[2; 32]));
    }
}
