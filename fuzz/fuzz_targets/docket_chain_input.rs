//! The `docket_chain` target's input, shared with the seed writer (`src/seeds.rs`).

use arbitrary::Arbitrary;
use sorcha_peer::ledger::Hash;

#[derive(Arbitrary, Debug)]
pub enum Input {
    Chain {
        batches: Vec<Vec<Vec<u8>>>,
        change: Change,
    },
    Raw {
        previous: RawHeader,
        docket: RawHeader,
        signature: Vec<u8>,
        origin_key: [u8; 32],
        leaves: Vec<Hash>,
    },
}

#[derive(Arbitrary, Debug)]
pub struct RawHeader {
    pub register_id: String,
    pub number: u64,
    pub previous_hash: Hash,
    pub merkle_root: Hash,
    pub tx_count: u32,
    pub first_version: u64,
    pub sealed_at_ms: i64,
}

/// One change to docket `at` (modulo the chain's length) of a valid chain.
#[derive(Arbitrary, Debug)]
pub enum Change {
    Number(u8, u64),
    PreviousHash(u8, u8, u8),
    MerkleRoot(u8, u8, u8),
    TxCount(u8, u32),
    FirstVersion(u8, u64),
    SealedAt(u8, i64),
    RegisterId(u8, String),
    Signature(u8, u8, u8),
    Payload(u8, u8, u16, u8),
    DropTransaction(u8, u8),
    RepeatTransaction(u8, u8),
    SwapTransactions(u8, u8, u8),
    DropDocket(u8),
    SwapDockets(u8, u8),
    OriginKey(u8, u8),
    /// Sealed again, validly, by another key.
    ResignedByAnother(u8),
}
