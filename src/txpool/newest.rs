//! Entries kept per register, the oldest leaving first once their total cost passes a bound:
//! what the recent set (each entry costs 1, so the bound is a count) and the kept payloads
//! (each costs its bytes) share. A register forgotten leaves at once, entries and costs.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

pub(super) struct Newest<K, V> {
    max_cost: usize,
    /// What one entry costs; it must not change while the entry is held.
    cost: fn(&V) -> usize,
    by_register: HashMap<Arc<str>, HashMap<K, V>>,
    /// Every entry, oldest first.
    order: VecDeque<(Arc<str>, K)>,
    /// The cost of every entry held (never above `max_cost` between calls).
    total: usize,
}

impl<K: Copy + Eq + Hash, V> Newest<K, V> {
    pub(super) fn new(max_cost: usize, cost: fn(&V) -> usize) -> Newest<K, V> {
        Newest {
            max_cost,
            cost,
            by_register: HashMap::new(),
            order: VecDeque::new(),
            total: 0,
        }
    }

    /// The entries of `register` held now.
    pub(super) fn register(&self, register: &str) -> Option<&HashMap<K, V>> {
        self.by_register.get(register)
    }

    /// Adds `entries` to `register`, then drops the oldest until within the bound. A key held
    /// already stays where it is in the order, and `merge` gets its value and the new one (it
    /// may change the held value, not its cost). An entry costing more than the whole bound is
    /// not kept.
    pub(super) fn insert(
        &mut self,
        register: &str,
        entries: impl IntoIterator<Item = (K, V)>,
        mut merge: impl FnMut(&mut V, V),
    ) {
        let register = match self.by_register.get_key_value(register) {
            Some((name, _)) => name.clone(),
            None => Arc::from(register),
        };
        let held = self.by_register.entry(register.clone()).or_default();
        for (key, value) in entries {
            match held.entry(key) {
                Entry::Occupied(mut known) => merge(known.get_mut(), value),
                Entry::Vacant(slot) => {
                    let cost = (self.cost)(&value);
                    if cost <= self.max_cost {
                        self.total += cost;
                        slot.insert(value);
                        self.order.push_back((register.clone(), key));
                    }
                }
            }
        }
        if held.is_empty() {
            self.by_register.remove(&register);
        }
        while self.total > self.max_cost {
            let Some((r, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(held) = self.by_register.get_mut(&r) {
                if let Some(value) = held.remove(&key) {
                    self.total -= (self.cost)(&value);
                }
                if held.is_empty() {
                    self.by_register.remove(&r);
                }
            }
        }
    }

    /// The register is no longer held here: none of its entries is.
    pub(super) fn forget_register(&mut self, register: &str) {
        if let Some(held) = self.by_register.remove(register) {
            self.total -= held.values().map(self.cost).sum::<usize>();
            self.order.retain(|(r, _)| &**r != register);
        }
    }

    /// The cost of every entry held.
    #[cfg(test)]
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Entries held, in all registers.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_len() -> Newest<u8, Vec<u8>> {
        Newest::new(10, |v: &Vec<u8>| v.len())
    }

    #[test]
    fn the_oldest_leave_first_once_the_cost_passes_the_bound() {
        let mut kept = by_len();
        kept.insert("a", [(1, vec![0; 4]), (2, vec![0; 4])], |_, _| {});
        kept.insert("b", [(1, vec![0; 4])], |_, _| {});
        assert!(!kept.register("a").is_some_and(|a| a.contains_key(&1)));
        assert!(kept.register("a").is_some_and(|a| a.contains_key(&2)));
        assert_eq!((kept.total(), kept.len()), (8, 2));
        kept.insert("c", [(9, vec![0; 11])], |_, _| {});
        assert!(kept.register("c").is_none(), "costlier than the bound");
        assert_eq!(kept.total(), 8);
    }

    #[test]
    fn a_held_key_is_merged_in_place_and_a_forgotten_register_costs_nothing() {
        let mut kept = by_len();
        kept.insert("a", [(1, vec![1, 1])], |_, _| {});
        kept.insert("b", [(1, vec![0; 3])], |_, _| {});
        kept.insert("a", [(1, vec![2, 2])], |held, new| *held = new);
        assert_eq!(
            kept.register("a").and_then(|a| a.get(&1)),
            Some(&vec![2, 2])
        );
        assert_eq!((kept.total(), kept.len()), (5, 2));
        kept.forget_register("a");
        assert!(kept.register("a").is_none());
        assert_eq!((kept.total(), kept.len()), (3, 1));
        kept.forget_register("a");
        assert_eq!(kept.total(), 3);
    }
}
