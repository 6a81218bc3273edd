//! How gossip names a transaction on the wire: whole 32-byte IDs, or short IDs (their first 16
//! bytes, `ledger::ShortId`) packed one after another, to a peer that speaks them
//! (`rpc::SHORT_TX_IDS`). The domain sends whole IDs where it knows them; each session picks the
//! form its peer reads.

use super::TxRef;
use super::convert::{WireError, ids_from_wire};
use super::pb;
use crate::ledger::{SHORT_ID_LEN, ShortId, short_id};

/// An announcement of `ids` for a peer: short IDs if it speaks them, else whole ones.
pub fn announce_to_wire(register_id: String, ids: &[[u8; 32]], short: bool) -> pb::Announce {
    if short {
        pb::Announce {
            register_id,
            tx_ids: Vec::new(),
            short_ids: ids.iter().flat_map(short_id).collect(),
        }
    } else {
        pb::Announce {
            register_id,
            tx_ids: ids.iter().map(|id| id.to_vec()).collect(),
            short_ids: Vec::new(),
        }
    }
}

/// References as the two fields that carry them: whole IDs, and packed short IDs. To a peer
/// that speaks short IDs every reference goes short (fewer bytes, and it answers either). To one
/// that does not, only whole IDs can go: a short reference to it is left out. That cannot
/// happen from gossip, which asks a peer only for what the peer announced (in whole IDs if it
/// does not speak short ones).
pub fn refs_to_wire(refs: &[TxRef], short: bool) -> (Vec<Vec<u8>>, Vec<u8>) {
    if short {
        (Vec::new(), refs.iter().flat_map(TxRef::short).collect())
    } else {
        let whole = refs
            .iter()
            .filter_map(|r| match r {
                TxRef::Full(id) => Some(id.to_vec()),
                TxRef::Short(_) => None,
            })
            .collect();
        (whole, Vec::new())
    }
}

/// Transactions a peer asked for and this node does not hold, each in the form it was asked by
/// (whole IDs, packed short IDs).
pub fn missing_to_wire(missing: &[TxRef]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut whole = Vec::new();
    let mut short = Vec::new();
    for r in missing {
        match r {
            TxRef::Full(id) => whole.push(id.to_vec()),
            TxRef::Short(id) => short.extend_from_slice(id),
        }
    }
    (whole, short)
}

/// References read from the two fields: each whole ID must be 32 bytes, and the packed short
/// IDs a whole number of 16-byte IDs.
pub fn refs_from_wire(whole: &[Vec<u8>], short: &[u8]) -> Result<Vec<TxRef>, WireError> {
    if !short.len().is_multiple_of(SHORT_ID_LEN) {
        return Err(WireError::ShortIdsLength(short.len()));
    }
    let mut refs = Vec::with_capacity(whole.len() + short.len() / SHORT_ID_LEN);
    refs.extend(ids_from_wire(whole)?.into_iter().map(TxRef::Full));
    for chunk in short.chunks_exact(SHORT_ID_LEN) {
        let mut id: ShortId = [0; SHORT_ID_LEN];
        id.copy_from_slice(chunk);
        refs.push(TxRef::Short(id));
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tx_hash;
    use proptest::prelude::*;

    #[test]
    fn short_ids_that_do_not_divide_into_sixteen_bytes_are_refused() {
        for len in [1, 15, 17, 31, 33] {
            assert_eq!(
                refs_from_wire(&[], &vec![0; len]),
                Err(WireError::ShortIdsLength(len))
            );
        }
        let bad = refs_from_wire(&[vec![0; 31]], &[]);
        assert!(matches!(
            bad,
            Err(WireError::NotA32ByteValue { len: 31, .. })
        ));
    }

    #[test]
    fn a_peer_without_short_ids_is_sent_whole_ones() {
        let ids = [tx_hash(b"a"), tx_hash(b"b")];
        let old = announce_to_wire("r".into(), &ids, false);
        assert_eq!(old.tx_ids, vec![ids[0].to_vec(), ids[1].to_vec()]);
        assert!(old.short_ids.is_empty());
        let new = announce_to_wire("r".into(), &ids, true);
        assert!(new.tx_ids.is_empty());
        assert_eq!(new.short_ids.len(), 32);
    }

    proptest! {
        #![proptest_config(crate::props::config(500))]

        /// What goes out comes back as the same transactions, in whichever form the peer reads:
        /// every reference when it speaks short IDs (as short ones), the whole ones otherwise.
        #[test]
        fn references_round_trip_in_the_form_the_peer_reads(
            refs in prop::collection::vec(
                prop_oneof![
                    any::<[u8; 32]>().prop_map(TxRef::Full),
                    any::<[u8; 16]>().prop_map(TxRef::Short),
                ],
                0..40,
            ),
            short in any::<bool>(),
        ) {
            let (whole, packed) = refs_to_wire(&refs, short);
            let back = refs_from_wire(&whole, &packed).expect("well formed");
            let expected: Vec<TxRef> = if short {
                refs.iter().map(|r| TxRef::Short(r.short())).collect()
            } else {
                refs.iter().filter(|r| matches!(r, TxRef::Full(_))).copied().collect()
            };
            prop_assert_eq!(back, expected);
        }
    }
}
