//! The payloads of the transactions stored here most recently, by register and whole ID. Under
//! load nearly every pull a node serves asks for transactions it stored a moment ago; this
//! answers those without reading them back from the store. Bounded in bytes (the oldest leave
//! first), so a flood of large payloads costs at most the bound; filled only after a commit
//! succeeded, and a register no longer held leaves it at once, so it never serves what the
//! store does not hold.

use std::sync::{Mutex, MutexGuard};

use super::newest::Newest;

/// What one entry costs beyond its payload: its key in the map and in the order queue, and the
/// map's own slot, rounded up.
pub(super) const ENTRY_OVERHEAD: usize = 128;

pub(super) struct RecentPayloads {
    inner: Mutex<Newest<[u8; 32], Box<[u8]>>>,
}

impl RecentPayloads {
    pub(super) fn new(max_bytes: usize) -> RecentPayloads {
        RecentPayloads {
            inner: Mutex::new(Newest::new(max_bytes, |payload| {
                payload.len() + ENTRY_OVERHEAD
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Newest<[u8; 32], Box<[u8]>>> {
        // Each change below leaves the set whole before it could panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the payloads of transactions just committed in `register`, each under its ID (the
    /// hash of its bytes, so a second one under the same ID is the same and is not kept
    /// again). One larger than the whole bound is not kept.
    pub(super) fn insert(&self, register: &str, txs: Vec<([u8; 32], Vec<u8>)>) {
        let txs = (txs.into_iter()).map(|(id, payload)| (id, payload.into_boxed_slice()));
        self.lock().insert(register, txs, |_, _| {});
    }

    /// The payload of each of `ids` held here (`None`: not here; the store may hold it).
    pub(super) fn get(&self, register: &str, ids: &[Option<[u8; 32]>]) -> Vec<Option<Vec<u8>>> {
        let inner = self.lock();
        let held = inner.register(register);
        (ids.iter())
            .map(|id| Some(held?.get(id.as_ref()?)?.to_vec()))
            .collect()
    }

    /// The register is no longer held here: none of its payloads is served from here.
    pub(super) fn forget_register(&self, register: &str) {
        self.lock().forget_register(register);
    }

    /// The cost of what is held now, in bytes (never above the bound).
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.lock().total()
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
        let each = 100 + ENTRY_OVERHEAD;
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
