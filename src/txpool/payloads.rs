//! The payloads of the transactions stored here most recently, by register and whole ID. Under
//! load nearly every pull a node serves asks for transactions it stored a moment ago; this
//! answers those without reading them back from the store. Bounded in bytes (the oldest leave
//! first), so a flood of large payloads costs at most the bound; filled only after a commit
//! succeeded, and a register no longer held leaves it at once, so it never serves what the
//! store does not hold.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// What one entry costs beyond its payload: its key in the map and in the order queue, and the
/// map's own slot, rounded up.
pub(super) const ENTRY_OVERHEAD: usize = 128;

pub(super) struct RecentPayloads {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

/// One register's payloads, by whole ID.
type Payloads = HashMap<[u8; 32], Box<[u8]>>;

#[derive(Default)]
struct Inner {
    by_register: HashMap<Arc<str>, Payloads>,
    /// Every entry, oldest first.
    order: VecDeque<(Arc<str>, [u8; 32])>,
    /// The cost of every entry held, payload and [`ENTRY_OVERHEAD`].
    bytes: usize,
}

fn cost(payload: &[u8]) -> usize {
    payload.len() + ENTRY_OVERHEAD
}

impl RecentPayloads {
    pub(super) fn new(max_bytes: usize) -> RecentPayloads {
        RecentPayloads {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each change below leaves the set whole before it could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the payloads of transactions just committed in `register`, each under its ID (the
    /// hash of its bytes). One larger than the whole bound is not kept.
    pub(super) fn insert(&self, register: &str, txs: Vec<([u8; 32], Vec<u8>)>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let register = match inner.by_register.get_key_value(register) {
            Some((name, _)) => name.clone(),
            None => Arc::from(register),
        };
        let set = inner.by_register.entry(register.clone()).or_default();
        for (id, payload) in txs {
            if cost(&payload) > self.max_bytes {
                continue;
            }
            if let Entry::Vacant(slot) = set.entry(id) {
                inner.bytes += cost(&payload);
                slot.insert(payload.into_boxed_slice());
                inner.order.push_back((register.clone(), id));
            }
        }
        if set.is_empty() {
            inner.by_register.remove(&register);
        }
        while inner.bytes > self.max_bytes {
            let Some((r, id)) = inner.order.pop_front() else {
                break;
            };
            if let Some(set) = inner.by_register.get_mut(&r) {
                if let Some(payload) = set.remove(&id) {
                    inner.bytes -= cost(&payload);
                }
                if set.is_empty() {
                    inner.by_register.remove(&r);
                }
            }
        }
    }

    /// The payload of each of `ids` held here (`None`: not here; the store may hold it).
    pub(super) fn get(&self, register: &str, ids: &[Option<[u8; 32]>]) -> Vec<Option<Vec<u8>>> {
        let inner = self.lock();
        let set = inner.by_register.get(register);
        (ids.iter())
            .map(|id| Some(set?.get(id.as_ref()?)?.to_vec()))
            .collect()
    }

    /// The register is no longer held here: none of its payloads is served from here.
    pub(super) fn forget_register(&self, register: &str) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(set) = inner.by_register.remove(register) {
            inner.bytes -= set.values().map(|p| cost(p)).sum::<usize>();
            inner.order.retain(|(r, _)| &**r != register);
        }
    }

    /// The cost of what is held now, in bytes (never above the bound).
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: u8, len: usize) -> Vec<u8> {
        vec![n; len]
    }

    #[test]
    fn holds_the_newest_within_its_bytes_and_forgets_a_register_at_once() {
        let each = cost(&payload(0, 100));
        let kept = RecentPayloads::new(2 * each);
        kept.insert(
            "a",
            vec![([1; 32], payload(1, 100)), ([2; 32], payload(2, 100))],
        );
        kept.insert("b", vec![([1; 32], payload(3, 100))]);
        assert_eq!(
            kept.get("a", &[Some([1; 32]), Some([2; 32]), None]),
            [None, Some(payload(2, 100)), None],
            "the oldest left"
        );
        assert_eq!(kept.get("b", &[Some([1; 32])]), [Some(payload(3, 100))]);
        assert_eq!(kept.bytes(), 2 * each);
        kept.forget_register("b");
        assert_eq!(kept.get("b", &[Some([1; 32])]), [None]);
        assert_eq!(kept.bytes(), each);
        kept.insert("c", vec![([9; 32], payload(9, 2 * each))]);
        assert_eq!(
            kept.get("c", &[Some([9; 32])]),
            [None],
            "larger than the bound"
        );
        assert_eq!(kept.get("a", &[Some([2; 32])]), [Some(payload(2, 100))]);
    }

    #[test]
    fn a_second_insert_of_an_id_keeps_the_first_and_costs_nothing() {
        let kept = RecentPayloads::new(10_000);
        kept.insert("a", vec![([1; 32], payload(1, 10))]);
        let bytes = kept.bytes();
        kept.insert("a", vec![([1; 32], payload(1, 10))]);
        assert_eq!(kept.bytes(), bytes);
        assert_eq!(kept.get("a", &[Some([1; 32])]), [Some(payload(1, 10))]);
    }
}
