//! Registers, transactions and dockets: naming rules, hashing, Merkle roots, signing and
//! verification. Pure code with no I/O, so every rule that decides whether data is accepted
//! can be tested on its own.
//!
//! A register is a chain of dockets. Docket 0 (genesis) names the register and its origin's
//! public key; every later docket seals a batch of consecutive transactions (versions
//! `first_version ..= first_version + tx_count - 1`), links to its predecessor by hash, commits
//! to its transactions with a Merkle root and is signed by the origin. A replica accepts a
//! docket only if all of that checks out against the docket before it.

mod hex_ids;
mod holding;
pub use hex_ids::{hash_from_hex, hash_from_lower_hex, to_hex};
pub use holding::{Mode, Role};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Longest register name.
pub const MAX_REGISTER_ID_LEN: usize = 64;
const HEADER_DOMAIN: &[u8] = b"sorcha-peer/v1/docket";
const GENESIS_DOMAIN: &[u8] = b"sorcha-peer/v1/genesis";

pub type Hash = [u8; 32];

/// Why data was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("docket {got} does not follow docket {expected_previous}")]
    WrongNumber { expected_previous: u64, got: u64 },
    #[error("docket {0} does not link to the previous docket's hash")]
    BrokenLink(u64),
    #[error("docket {0} starts at the wrong transaction version")]
    WrongVersion(u64),
    #[error("docket {number} claims {claimed} transactions but carries {carried}")]
    WrongCount {
        number: u64,
        claimed: u32,
        carried: usize,
    },
    #[error("docket {0}: transactions do not match the Merkle root")]
    BadMerkleRoot(u64),
    #[error("docket {0}: the origin's signature is invalid")]
    BadSignature(u64),
    #[error("docket {0} belongs to another register")]
    WrongRegister(u64),
    #[error("docket {0} carries the same transaction twice")]
    DuplicateTransaction(u64),
    #[error("genesis docket is malformed: {0}")]
    BadGenesis(String),
}

/// Checks a register name: 1–64 of `A-Z a-z 0-9 . _ -`, and not `.` or `..`, which a URL
/// path cannot carry as a segment (they are read as "this" and "parent" directory), so no
/// per-register command could reach such a register.
pub fn validate_register_id(id: &str) -> Result<(), InvalidRegisterId> {
    if id == "." || id == ".." {
        return Err(InvalidRegisterId::DotName(id.to_string()));
    }
    let ok = !id.is_empty()
        && id.len() <= MAX_REGISTER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidRegisterId::Shape(id.to_string()))
    }
}

/// Why a register name is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRegisterId {
    #[error("invalid register name '{0}': '.' and '..' cannot be used as names")]
    DotName(String),
    #[error("invalid register name '{0}': use 1 to {MAX_REGISTER_ID_LEN} of A-Z a-z 0-9 . _ -")]
    Shape(String),
}

/// A transaction's ID: SHA-256 of its payload.
pub fn tx_hash(payload: &[u8]) -> Hash {
    Sha256::digest(payload).into()
}

/// The first 16 bytes of a transaction ID, which gossip announces and pulls by where the peer
/// speaks them (half the bytes of the whole ID). Two payloads that share one take about 2^64
/// hashes to find; a payload sharing one with a given transaction, about 2^128.
pub type ShortId = [u8; SHORT_ID_LEN];

/// Bytes in a [`ShortId`].
pub const SHORT_ID_LEN: usize = 16;

/// The short form of a transaction ID.
pub fn short_id(id: &Hash) -> ShortId {
    let mut short = [0; SHORT_ID_LEN];
    short.copy_from_slice(&id[..SHORT_ID_LEN]);
    short
}

/// The hex form of a transaction ID.
pub fn tx_id(payload: &[u8]) -> String {
    to_hex(tx_hash(payload))
}

/// Merkle root of transaction hashes: pairs hashed level by level, an odd last node carried up
/// as it is; the root of no transactions is SHA-256 of nothing.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Sha256::digest([]).into();
    }
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut h = Sha256::new();
                    h.update([1u8]); // inner-node tag, so a leaf can never pose as a node
                    h.update(left);
                    h.update(right);
                    h.finalize().into()
                }
                // An odd node moves up unchanged (no duplication, so [a, b, c] and
                // [a, b, c, c] cannot share a root).
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
    }
    level[0]
}

/// The signed part of a docket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocketHeader {
    pub register_id: String,
    pub number: u64,
    pub previous_hash: Hash,
    pub merkle_root: Hash,
    pub tx_count: u32,
    /// Version of the first transaction sealed in this docket (1-based; for genesis 1).
    pub first_version: u64,
    pub sealed_at_ms: i64,
}

impl DocketHeader {
    /// Canonical bytes: the docket hash is SHA-256 of these.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(HEADER_DOMAIN);
        out.extend_from_slice(&(self.register_id.len() as u32).to_be_bytes());
        out.extend_from_slice(self.register_id.as_bytes());
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.previous_hash);
        out.extend_from_slice(&self.merkle_root);
        out.extend_from_slice(&self.tx_count.to_be_bytes());
        out.extend_from_slice(&self.first_version.to_be_bytes());
        out.extend_from_slice(&self.sealed_at_ms.to_be_bytes());
        out
    }

    pub fn hash(&self) -> Hash {
        Sha256::digest(self.encode()).into()
    }

    /// Version of the last transaction sealed so far, counting this docket.
    /// (0 for a docket of no transactions starting at 0; saturating at the end of the range,
    /// so a header a peer sent cannot make it panic.)
    pub fn last_version(&self) -> u64 {
        self.first_version
            .saturating_add(u64::from(self.tx_count))
            .saturating_sub(1)
    }
}

/// A sealed docket: header plus the origin's signature over its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Docket {
    pub header: DocketHeader,
    pub signature: Vec<u8>,
}

/// A docket with the payloads of its transactions, in version order (what replicas pull).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocketWithTransactions {
    pub docket: Docket,
    /// For genesis: the origin's public key (the only thing genesis carries).
    pub origin_key: Option<[u8; 32]>,
    pub transactions: Vec<Vec<u8>>,
}

/// A docket announced with the IDs of its transactions instead of their payloads (live
/// pushes): a follower usually holds the payloads already, received through gossip, and pulls
/// only the ones it lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactDocket {
    pub docket: Docket,
    pub tx_ids: Vec<Hash>,
}

impl CompactDocket {
    pub fn from_full(entry: &DocketWithTransactions) -> CompactDocket {
        CompactDocket {
            docket: entry.docket.clone(),
            tx_ids: entry.transactions.iter().map(|p| tx_hash(p)).collect(),
        }
    }
}

/// Merkle root committed to by a genesis docket: the register's name and origin key.
fn genesis_root(register_id: &str, origin_key: &[u8; 32]) -> Hash {
    let mut h = Sha256::new();
    h.update(GENESIS_DOMAIN);
    h.update(register_id.as_bytes());
    h.update(origin_key);
    h.finalize().into()
}

/// Seals a docket header with the origin key.
pub fn sign(key: &SigningKey, header: DocketHeader) -> Docket {
    let signature = key.sign(&header.hash()).to_bytes().to_vec();
    Docket { header, signature }
}

/// Creates the genesis docket of a new register.
pub fn genesis(key: &SigningKey, register_id: &str, now_ms: i64) -> Docket {
    let origin_key = key.verifying_key().to_bytes();
    sign(
        key,
        DocketHeader {
            register_id: register_id.to_string(),
            number: 0,
            previous_hash: [0; 32],
            merkle_root: genesis_root(register_id, &origin_key),
            tx_count: 0,
            first_version: 1,
            sealed_at_ms: now_ms,
        },
    )
}

/// Seals the next docket after `previous` over `payloads` (non-empty).
pub fn seal_next(
    key: &SigningKey,
    previous: &DocketHeader,
    payloads: &[&[u8]],
    now_ms: i64,
) -> Docket {
    let leaves: Vec<Hash> = payloads.iter().map(|p| tx_hash(p)).collect();
    sign(
        key,
        DocketHeader {
            register_id: previous.register_id.clone(),
            number: previous.number + 1,
            previous_hash: previous.hash(),
            merkle_root: merkle_root(&leaves),
            tx_count: payloads.len() as u32,
            first_version: previous.first_version + previous.tx_count as u64,
            sealed_at_ms: now_ms,
        },
    )
}

fn verify_signature(origin_key: &[u8; 32], docket: &Docket) -> Result<(), VerifyError> {
    let number = docket.header.number;
    let key =
        VerifyingKey::from_bytes(origin_key).map_err(|_| VerifyError::BadSignature(number))?;
    let signature =
        Signature::from_slice(&docket.signature).map_err(|_| VerifyError::BadSignature(number))?;
    key.verify(&docket.header.hash(), &signature)
        .map_err(|_| VerifyError::BadSignature(number))
}

/// Verifies a genesis docket for `register_id` and returns the origin key it names.
pub fn verify_genesis(
    register_id: &str,
    entry: &DocketWithTransactions,
) -> Result<[u8; 32], VerifyError> {
    let h = &entry.docket.header;
    let key = entry
        .origin_key
        .ok_or_else(|| VerifyError::BadGenesis("no origin key".into()))?;
    if h.register_id != register_id {
        return Err(VerifyError::WrongRegister(0));
    }
    if h.number != 0 || h.previous_hash != [0; 32] || h.tx_count != 0 || h.first_version != 1 {
        return Err(VerifyError::BadGenesis("not a genesis header".into()));
    }
    if !entry.transactions.is_empty() {
        return Err(VerifyError::BadGenesis("carries transactions".into()));
    }
    if h.merkle_root != genesis_root(register_id, &key) {
        return Err(VerifyError::BadGenesis(
            "does not commit to its origin key".into(),
        ));
    }
    verify_signature(&key, &entry.docket)?;
    Ok(key)
}

/// Verifies that `entry` is the valid successor of `previous`, signed by `origin_key`, and
/// that its payloads are exactly the transactions it commits to. Returns their IDs, in order
/// (each payload is hashed once, here).
pub fn verify_next(
    origin_key: &[u8; 32],
    previous: &DocketHeader,
    entry: &DocketWithTransactions,
) -> Result<Vec<Hash>, VerifyError> {
    let leaves: Vec<Hash> = entry.transactions.iter().map(|p| tx_hash(p)).collect();
    verify_next_ids(origin_key, previous, &entry.docket, &leaves)?;
    Ok(leaves)
}

/// [`verify_next`] for a docket whose transactions are known by their IDs: for payloads held
/// here, whose IDs were checked against them when they were stored.
pub fn verify_next_ids(
    origin_key: &[u8; 32],
    previous: &DocketHeader,
    docket: &Docket,
    leaves: &[Hash],
) -> Result<(), VerifyError> {
    let h = &docket.header;
    if h.register_id != previous.register_id {
        return Err(VerifyError::WrongRegister(h.number));
    }
    // Checked: a previous header from a peer (a forward-only anchor) may sit at the very end
    // of the number or version space, and nothing follows it.
    if Some(h.number) != previous.number.checked_add(1) {
        return Err(VerifyError::WrongNumber {
            expected_previous: previous.number,
            got: h.number,
        });
    }
    if h.previous_hash != previous.hash() {
        return Err(VerifyError::BrokenLink(h.number));
    }
    if Some(h.first_version) != previous.first_version.checked_add(previous.tx_count as u64) {
        return Err(VerifyError::WrongVersion(h.number));
    }
    if h.tx_count as usize != leaves.len() || h.tx_count == 0 {
        return Err(VerifyError::WrongCount {
            number: h.number,
            claimed: h.tx_count,
            carried: leaves.len(),
        });
    }
    if merkle_root(leaves) != h.merkle_root {
        return Err(VerifyError::BadMerkleRoot(h.number));
    }
    let distinct: std::collections::HashSet<&Hash> = leaves.iter().collect();
    if distinct.len() != leaves.len() {
        return Err(VerifyError::DuplicateTransaction(h.number));
    }
    verify_signature(origin_key, docket)
}

/// Verifies a docket header's signature alone (a forward-only replica's starting point, whose
/// predecessors it does not hold).
pub fn verify_anchor(origin_key: &[u8; 32], docket: &Docket) -> Result<(), VerifyError> {
    verify_signature(origin_key, docket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn chain(key: &SigningKey, batches: &[&[&[u8]]]) -> Vec<DocketWithTransactions> {
        let g = genesis(key, "reg", 1);
        let mut out = vec![DocketWithTransactions {
            docket: g.clone(),
            origin_key: Some(key.verifying_key().to_bytes()),
            transactions: vec![],
        }];
        let mut prev = g.header;
        for batch in batches {
            let d = seal_next(key, &prev, batch, 2);
            prev = d.header.clone();
            out.push(DocketWithTransactions {
                docket: d,
                origin_key: None,
                transactions: batch.iter().map(|p| p.to_vec()).collect(),
            });
        }
        out
    }

    /// Found by the `docket_chain` fuzz target: a previous header at the end of the number or
    /// version space made `verify_next_ids` overflow (a panic in debug builds).
    #[test]
    fn nothing_follows_a_header_at_the_end_of_the_number_space() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let origin = key.verifying_key().to_bytes();
        let mut previous = genesis(&key, "reg", 1).header;
        previous.number = u64::MAX;
        let next = seal_next(&key, &genesis(&key, "reg", 1).header, &[b"tx"], 2);
        let leaves = [tx_hash(b"tx")];
        assert!(matches!(
            verify_next_ids(&origin, &previous, &next, &leaves),
            Err(VerifyError::WrongNumber { .. })
        ));
        let mut previous = next.header.clone();
        previous.first_version = u64::MAX;
        let mut after = seal_next(&key, &next.header, &[b"tx 2"], 3);
        after.header.previous_hash = previous.hash();
        let after = sign(&key, after.header);
        assert_eq!(
            verify_next_ids(&origin, &previous, &after, &[tx_hash(b"tx 2")]),
            Err(VerifyError::WrongVersion(2))
        );
    }

    /// A header a peer sends may start at version 0 or end past the last version: reading its
    /// last version never panics (found reading `last_version` after the fuzzing above).
    #[test]
    fn a_header_at_either_end_of_the_version_space_has_a_last_version() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let mut header = genesis(&key, "reg", 1).header;
        header.first_version = 0;
        header.tx_count = 0;
        assert_eq!(header.last_version(), 0);
        header.first_version = u64::MAX;
        header.tx_count = u32::MAX;
        assert_eq!(header.last_version(), u64::MAX - 1);
    }

    #[test]
    fn register_names_follow_the_rules() {
        assert!(validate_register_id("orders-2026.v1_A").is_ok());
        assert!(validate_register_id("...").is_ok() && validate_register_id(".a").is_ok());
        for bad in [
            "",
            "has space",
            "slash/",
            &"x".repeat(65),
            "ünïcode",
            ".",
            "..",
        ] {
            assert!(validate_register_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn merkle_roots_commit_to_order_and_content() {
        let a = tx_hash(b"a");
        let b = tx_hash(b"b");
        let c = tx_hash(b"c");
        assert_eq!(merkle_root(&[a]), a);
        assert_ne!(merkle_root(&[a, b]), merkle_root(&[b, a]));
        assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b]));
        assert_ne!(
            merkle_root(&[a, b, c]),
            merkle_root(&[a, b, c, c]),
            "odd duplication is not a second tx"
        );
        assert_eq!(
            tx_id(b"hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
    }

    #[test]
    fn a_valid_chain_verifies() {
        let key = SigningKey::generate(&mut OsRng);
        let c = chain(&key, &[&[b"t1", b"t2"], &[b"t3"]]);
        let origin = verify_genesis("reg", &c[0]).expect("genesis");
        verify_next(&origin, &c[0].docket.header, &c[1]).expect("docket 1");
        verify_next(&origin, &c[1].docket.header, &c[2]).expect("docket 2");
        assert_eq!(c[2].docket.header.first_version, 3);
        assert_eq!(c[2].docket.header.last_version(), 3);
    }

    /// A docket checked from the IDs of payloads held here takes the same checks.
    #[test]
    fn a_docket_verified_from_ids_takes_the_same_checks() {
        let key = SigningKey::generate(&mut OsRng);
        let c = chain(&key, &[&[b"t1", b"t2"]]);
        let origin = key.verifying_key().to_bytes();
        let prev = &c[0].docket.header;
        let ids = CompactDocket::from_full(&c[1]).tx_ids;
        verify_next_ids(&origin, prev, &c[1].docket, &ids).expect("valid");
        let mut swapped = ids.clone();
        swapped.swap(0, 1);
        assert_eq!(
            verify_next_ids(&origin, prev, &c[1].docket, &swapped),
            Err(VerifyError::BadMerkleRoot(1))
        );
        let other = vec![ids[0], tx_hash(b"not in it")];
        assert_eq!(
            verify_next_ids(&origin, prev, &c[1].docket, &other),
            Err(VerifyError::BadMerkleRoot(1))
        );
        assert!(matches!(
            verify_next_ids(&origin, prev, &c[1].docket, &ids[..1]),
            Err(VerifyError::WrongCount { .. })
        ));
        let mallory = SigningKey::generate(&mut OsRng).verifying_key().to_bytes();
        assert_eq!(
            verify_next_ids(&mallory, prev, &c[1].docket, &ids),
            Err(VerifyError::BadSignature(1))
        );
    }

    #[test]
    fn every_kind_of_tampering_is_refused() {
        let key = SigningKey::generate(&mut OsRng);
        let c = chain(&key, &[&[b"t1", b"t2"], &[b"t3"]]);
        let origin = key.verifying_key().to_bytes();
        let prev = &c[0].docket.header;

        let mut altered_payload = c[1].clone();
        altered_payload.transactions[0] = b"T1".to_vec();
        assert_eq!(
            verify_next(&origin, prev, &altered_payload),
            Err(VerifyError::BadMerkleRoot(1))
        );

        let mut dropped = c[1].clone();
        dropped.transactions.pop();
        assert!(matches!(
            verify_next(&origin, prev, &dropped),
            Err(VerifyError::WrongCount { .. })
        ));

        let mut reordered = c[1].clone();
        reordered.transactions.swap(0, 1);
        assert_eq!(
            verify_next(&origin, prev, &reordered),
            Err(VerifyError::BadMerkleRoot(1))
        );

        // A forger re-seals with its own key: the root matches, the signature does not.
        let mallory = SigningKey::generate(&mut OsRng);
        let forged = DocketWithTransactions {
            docket: seal_next(&mallory, prev, &[b"evil"], 3),
            origin_key: None,
            transactions: vec![b"evil".to_vec()],
        };
        assert_eq!(
            verify_next(&origin, prev, &forged),
            Err(VerifyError::BadSignature(1))
        );

        let mut header_edit = c[1].clone();
        header_edit.docket.header.sealed_at_ms += 1;
        assert_eq!(
            verify_next(&origin, prev, &header_edit),
            Err(VerifyError::BadSignature(1))
        );

        // Skipping or replaying dockets breaks the chain.
        assert!(matches!(
            verify_next(&origin, prev, &c[2]),
            Err(VerifyError::WrongNumber { .. })
        ));
        assert!(verify_next(&origin, &c[1].docket.header, &c[1]).is_err());

        // A genesis naming another key, or another register, is refused.
        let mut other_key = c[0].clone();
        other_key.origin_key = Some(mallory.verifying_key().to_bytes());
        assert!(verify_genesis("reg", &other_key).is_err());
        assert!(verify_genesis("other", &c[0]).is_err());
    }
}
