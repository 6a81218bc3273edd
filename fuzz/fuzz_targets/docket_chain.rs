//! Docket and transaction verification (`ledger`), as a replica runs it on a chain pulled from
//! a peer: genesis, then each docket against the one before, with payloads (`verify_next`) or
//! with IDs (`verify_next_ids`, live pushes), after a trip over the wire (`protocol::convert`).
//!
//! Two modes. `Chain`: a real chain sealed with an origin key, one field of it changed; the
//! verifier must accept the chain untouched and never accept a changed one (but a prefix). `Raw`: an
//! arbitrary previous header, docket and transaction IDs; the verifier must not panic, and
//! whatever it accepts must link to the previous header.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use sorcha_peer::ledger::{
    self, CompactDocket, Docket, DocketHeader, DocketWithTransactions, Hash, merkle_root,
};
use sorcha_peer::protocol::convert;
use sorcha_peer::protocol::pb;

mod docket_chain_input;
use docket_chain_input::{Change, Input, RawHeader};

const REGISTER: &str = "fuzz-register";
const MAX_DOCKETS: usize = 6;
const MAX_TXS: usize = 5;

fuzz_target!(|input: Input| match input {
    Input::Chain { batches, change } => chain(batches, change),
    Input::Raw {
        previous,
        docket,
        signature,
        origin_key,
        leaves,
    } => raw(previous, docket, signature, origin_key, leaves),
});

fn header(r: RawHeader) -> DocketHeader {
    DocketHeader {
        register_id: r.register_id,
        number: r.number,
        previous_hash: r.previous_hash,
        merkle_root: r.merkle_root,
        tx_count: r.tx_count,
        first_version: r.first_version,
        sealed_at_ms: r.sealed_at_ms,
    }
}

fn raw(
    previous: RawHeader,
    docket: RawHeader,
    signature: Vec<u8>,
    origin_key: [u8; 32],
    leaves: Vec<Hash>,
) {
    let previous = header(previous);
    let docket = Docket {
        header: header(docket),
        signature,
    };
    let _ = ledger::verify_anchor(&origin_key, &docket);
    if ledger::verify_next_ids(&origin_key, &previous, &docket, &leaves).is_ok() {
        let h = &docket.header;
        assert_eq!(h.register_id, previous.register_id);
        assert_eq!(Some(h.number), previous.number.checked_add(1));
        assert_eq!(h.previous_hash, previous.hash());
        assert_eq!(h.merkle_root, merkle_root(&leaves));
        assert_eq!(h.tx_count as usize, leaves.len());
    }
}

fn chain(batches: Vec<Vec<Vec<u8>>>, change: Change) {
    let key = SigningKey::from_bytes(&[1; 32]);
    let original = seal(&key, batches);
    assert_eq!(
        verify(&original),
        Ok(()),
        "a chain sealed by its origin verifies"
    );
    let mut changed = original.clone();
    apply(&mut changed, change);
    if verify(&changed).is_ok() {
        // Dropping the last docket leaves a valid, shorter chain: a prefix is all it may be.
        assert!(
            original.starts_with(&changed),
            "only the chain the origin sealed is accepted"
        );
    }
}

fn seal(key: &SigningKey, batches: Vec<Vec<Vec<u8>>>) -> Vec<DocketWithTransactions> {
    let genesis = ledger::genesis(key, REGISTER, 1_000);
    let mut previous = genesis.header.clone();
    let mut out = vec![DocketWithTransactions {
        docket: genesis,
        origin_key: Some(key.verifying_key().to_bytes()),
        transactions: Vec::new(),
    }];
    for (i, mut batch) in batches.into_iter().take(MAX_DOCKETS).enumerate() {
        batch.truncate(MAX_TXS);
        batch.sort();
        batch.dedup();
        if batch.is_empty() {
            continue;
        }
        let payloads: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        let docket = ledger::seal_next(key, &previous, &payloads, 2_000 + i as i64);
        previous = docket.header.clone();
        out.push(DocketWithTransactions {
            docket,
            origin_key: None,
            transactions: batch,
        });
    }
    out
}

/// The chain as a full replica checks it, each docket having crossed the wire.
fn verify(chain: &[DocketWithTransactions]) -> Result<(), String> {
    let over_the_wire = |e: &DocketWithTransactions| {
        let bytes = convert::docket_to_wire(e).encode_to_vec();
        let entry = pb::DocketEntry::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
        convert::docket_from_wire(entry).map_err(|e| e.to_string())
    };
    let (first, rest) = chain.split_first().ok_or("no genesis")?;
    let genesis = over_the_wire(first)?;
    let key = ledger::verify_genesis(REGISTER, &genesis).map_err(|e| e.to_string())?;
    let mut previous = genesis.docket.header;
    for entry in rest {
        let entry = over_the_wire(entry)?;
        let by_ids = ledger::verify_next_ids(
            &key,
            &previous,
            &entry.docket,
            &CompactDocket::from_full(&entry).tx_ids,
        );
        // The IDs it returns are the ones the compact docket carries.
        let by_payloads = ledger::verify_next(&key, &previous, &entry).map(|ids| {
            assert_eq!(ids, CompactDocket::from_full(&entry).tx_ids);
        });
        assert_eq!(by_ids, by_payloads, "both paths judge a docket alike");
        by_payloads.map_err(|e| e.to_string())?;
        previous = entry.docket.header;
    }
    Ok(())
}

fn pick<T>(items: &mut [T], at: u8) -> Option<&mut T> {
    let len = items.len();
    (len > 0).then(|| &mut items[at as usize % len])
}

fn flip(bytes: &mut [u8], at: u8, xor: u8) {
    if let Some(b) = pick(bytes, at) {
        *b ^= xor;
    }
}

fn apply(chain: &mut Vec<DocketWithTransactions>, change: Change) {
    let len = chain.len();
    let at = |i: u8| i as usize % len;
    match change {
        Change::Number(i, v) => chain[at(i)].docket.header.number = v,
        Change::PreviousHash(i, b, x) => flip(&mut chain[at(i)].docket.header.previous_hash, b, x),
        Change::MerkleRoot(i, b, x) => flip(&mut chain[at(i)].docket.header.merkle_root, b, x),
        Change::TxCount(i, v) => chain[at(i)].docket.header.tx_count = v,
        Change::FirstVersion(i, v) => chain[at(i)].docket.header.first_version = v,
        Change::SealedAt(i, v) => chain[at(i)].docket.header.sealed_at_ms = v,
        Change::RegisterId(i, v) => chain[at(i)].docket.header.register_id = v,
        Change::Signature(i, b, x) => flip(&mut chain[at(i)].docket.signature, b, x),
        Change::Payload(i, t, b, x) => {
            if let Some(p) = pick(&mut chain[at(i)].transactions, t) {
                let len = p.len();
                if len > 0 {
                    p[b as usize % len] ^= x;
                } else {
                    p.push(x);
                }
            }
        }
        Change::DropTransaction(i, t) => {
            let txs = &mut chain[at(i)].transactions;
            if !txs.is_empty() {
                let n = t as usize % txs.len();
                txs.remove(n);
            }
        }
        Change::RepeatTransaction(i, t) => {
            let txs = &mut chain[at(i)].transactions;
            if let Some(p) = pick(txs, t).cloned() {
                txs.push(p);
            }
        }
        Change::SwapTransactions(i, a, b) => {
            let txs = &mut chain[at(i)].transactions;
            if !txs.is_empty() {
                let (a, b) = (a as usize % txs.len(), b as usize % txs.len());
                txs.swap(a, b);
            }
        }
        Change::DropDocket(i) => {
            chain.remove(at(i));
        }
        Change::SwapDockets(a, b) => chain.swap(at(a), at(b)),
        Change::OriginKey(b, x) => {
            if let Some(key) = chain[0].origin_key.as_mut() {
                flip(key, b, x);
            }
        }
        Change::ResignedByAnother(i) => {
            let other = SigningKey::from_bytes(&[2; 32]);
            let d = &mut chain[at(i)].docket;
            *d = ledger::sign(&other, d.header.clone());
        }
    }
}
