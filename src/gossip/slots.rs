//! Names (peer IDs, register IDs) as small integers, for the request tracker's hot path: a name
//! is looked up once per call, and the work per announced transaction then hashes no string and
//! counts no shared reference. The caller frees a slot when nothing names it any more, so a
//! table holds only names in use; freed slots are taken again first.

use std::collections::HashMap;
use std::sync::Arc;

/// A name's place in its table.
pub(super) type Slot = usize;

pub(super) struct Slots<T> {
    by_name: HashMap<Arc<str>, Slot>,
    table: Vec<Option<(Arc<str>, T)>>,
    free: Vec<Slot>,
}

impl<T> Slots<T> {
    pub(super) fn new() -> Slots<T> {
        Slots {
            by_name: HashMap::new(),
            table: Vec::new(),
            free: Vec::new(),
        }
    }

    pub(super) fn find(&self, name: &str) -> Option<Slot> {
        self.by_name.get(name).copied()
    }

    /// The slot of `name`, given one with the value `make` returns if it has none.
    pub(super) fn find_or_insert(&mut self, name: &str, make: impl FnOnce() -> T) -> Slot {
        if let Some(slot) = self.find(name) {
            return slot;
        }
        let name: Arc<str> = Arc::from(name);
        let value = Some((name.clone(), make()));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.table[slot] = value;
                slot
            }
            None => {
                self.table.push(value);
                self.table.len() - 1
            }
        };
        self.by_name.insert(name, slot);
        slot
    }

    pub(super) fn name(&self, slot: Slot) -> Option<&Arc<str>> {
        Some(&self.table.get(slot)?.as_ref()?.0)
    }

    pub(super) fn get(&self, slot: Slot) -> Option<&T> {
        Some(&self.table.get(slot)?.as_ref()?.1)
    }

    pub(super) fn get_mut(&mut self, slot: Slot) -> Option<&mut T> {
        Some(&mut self.table.get_mut(slot)?.as_mut()?.1)
    }

    /// Frees `slot`: its name has none until given one again.
    pub(super) fn remove(&mut self, slot: Slot) -> Option<(Arc<str>, T)> {
        let (name, value) = self.table.get_mut(slot)?.take()?;
        self.by_name.remove(&name);
        self.free.push(slot);
        Some((name, value))
    }

    /// Every name held, with its slot and value.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Slot, &Arc<str>, &T)> {
        (self.table.iter().enumerate())
            .filter_map(|(slot, held)| held.as_ref().map(|(name, value)| (slot, name, value)))
    }

    /// One more than the largest slot ever given: a table indexed by slot has this length.
    pub(super) fn bound(&self) -> usize {
        self.table.len()
    }

    /// Names held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_name.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_slot_until_freed_and_a_freed_slot_is_taken_again() {
        let mut slots: Slots<u32> = Slots::new();
        let a = slots.find_or_insert("a", || 1);
        let b = slots.find_or_insert("b", || 2);
        assert_ne!(a, b);
        assert_eq!(slots.find_or_insert("a", || 9), a, "found, not made again");
        assert_eq!(slots.get(a), Some(&1));
        assert_eq!(
            slots.remove(a).map(|(n, v)| (n.to_string(), v)),
            Some(("a".into(), 1))
        );
        assert_eq!(
            (slots.find("a"), slots.get(a), slots.name(a)),
            (None, None, None)
        );
        assert_eq!(slots.remove(a), None, "freed once");
        let c = slots.find_or_insert("c", || 3);
        assert_eq!(c, a, "the freed slot");
        assert_eq!(slots.name(c).map(|n| n.to_string()), Some("c".into()));
        let held: Vec<(Slot, String, u32)> = slots
            .iter()
            .map(|(s, n, v)| (s, n.to_string(), *v))
            .collect();
        assert_eq!(held, [(c, "c".into(), 3), (b, "b".into(), 2)]);
        assert_eq!((slots.len(), slots.bound()), (2, 2));
    }
}
