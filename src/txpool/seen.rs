//! The seen-set: a rotating Bloom filter of transaction IDs this node already holds.
//!
//! Two generations: new IDs go into the current filter; when it has taken `capacity` IDs it
//! becomes the previous one and a fresh filter starts, so memory stays bounded and old IDs age
//! out. A "no" is reliable (the node never saw the ID since it started) and skips a database
//! look-up; a "maybe" is confirmed against the store, so a false positive never loses a
//! transaction. IDs are SHA-256 digests already, so the bit positions are taken straight from
//! their bytes (double hashing), with no further hashing.

use std::sync::Mutex;

use crate::ledger::{ShortId, short_id};

/// Bits per expected entry and probes per lookup: about a 1 % false-positive rate.
const BITS_PER_ENTRY: usize = 10;
const PROBES: u64 = 7;

struct Bloom {
    bits: Vec<u64>,
    len: usize,
}

impl Bloom {
    fn new(capacity: usize) -> Bloom {
        let words = (capacity.max(64) * BITS_PER_ENTRY).div_ceil(64);
        Bloom {
            bits: vec![0; words],
            len: 0,
        }
    }

    /// From the short ID only, so a short ID finds what its whole ID put in.
    fn positions(&self, id: &ShortId) -> impl Iterator<Item = usize> + use<> {
        let h1 = u64::from_le_bytes(id[0..8].try_into().unwrap_or_default());
        let h2 = u64::from_le_bytes(id[8..16].try_into().unwrap_or_default()) | 1;
        let m = (self.bits.len() * 64) as u64;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn insert(&mut self, id: &ShortId) {
        for p in self.positions(id) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
        self.len += 1;
    }

    fn contains(&self, id: &ShortId) -> bool {
        self.positions(id)
            .all(|p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }
}

/// Thread-safe rotating Bloom filter.
pub(crate) struct SeenSet {
    capacity: usize,
    filters: Mutex<(Bloom, Bloom)>,
}

impl SeenSet {
    /// `capacity`: IDs per generation (memory ≈ 2 × capacity × 10 bits).
    pub(crate) fn new(capacity: usize) -> SeenSet {
        SeenSet {
            capacity,
            filters: Mutex::new((Bloom::new(capacity), Bloom::new(capacity))),
        }
    }

    pub(crate) fn insert(&self, id: &[u8; 32]) {
        let mut f = self.filters.lock().unwrap_or_else(|p| p.into_inner());
        if f.0.len >= self.capacity {
            let fresh = Bloom::new(self.capacity);
            f.1 = std::mem::replace(&mut f.0, fresh);
        }
        f.0.insert(&short_id(id));
    }

    /// False: certainly not seen since start (or since it aged out). True: probably seen.
    pub(crate) fn maybe_contains(&self, id: &[u8; 32]) -> bool {
        self.maybe_contains_short(&short_id(id))
    }

    /// Whether a transaction with this short ID may have been seen ("no" is certain).
    pub(crate) fn maybe_contains_short(&self, id: &ShortId) -> bool {
        let f = self.filters.lock().unwrap_or_else(|p| p.into_inner());
        f.0.contains(id) || f.1.contains(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tx_hash;

    #[test]
    fn inserted_ids_are_always_found() {
        let seen = SeenSet::new(1000);
        let ids: Vec<[u8; 32]> = (0..1000)
            .map(|i| tx_hash(format!("tx-{i}").as_bytes()))
            .collect();
        for id in &ids {
            seen.insert(id);
        }
        assert!(ids.iter().all(|id| seen.maybe_contains(id)));
    }

    #[test]
    fn false_positives_stay_rare() {
        let seen = SeenSet::new(10_000);
        for i in 0..10_000 {
            seen.insert(&tx_hash(format!("in-{i}").as_bytes()));
        }
        let false_positives = (0..10_000)
            .filter(|i| seen.maybe_contains(&tx_hash(format!("out-{i}").as_bytes())))
            .count();
        assert!(
            false_positives < 300,
            "{false_positives} false positives in 10 000"
        );
    }

    #[test]
    fn old_generations_age_out() {
        let seen = SeenSet::new(100);
        let first = tx_hash(b"first");
        seen.insert(&first);
        for i in 0..250 {
            seen.insert(&tx_hash(format!("later-{i}").as_bytes()));
        }
        // Two rotations later the first ID is gone (barring a false positive, which this
        // particular ID does not hit).
        assert!(!seen.maybe_contains(&first));
    }
}
