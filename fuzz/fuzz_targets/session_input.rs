//! The `session` target's input, shared with the seed writer (`src/seeds.rs`,
//! `src/seeds_session.rs`): one byte that picks the hand-built peer's identity, then frames,
//! each as a protobuf length-delimited `Frame` (a varint length, then the frame). An
//! undecodable frame is skipped. Also the registers the target's node holds and follows, and
//! the sealed chain of the followed one, which the seeds carry.

use ed25519_dalek::SigningKey;
use prost::Message;
use sorcha_peer::ledger::{self, DocketWithTransactions};
use sorcha_peer::protocol::pb;

/// A register the node holds as its origin, with one transaction ([`LOCAL_PAYLOAD`]), so
/// requests for it are served from real data.
pub const LOCAL_REGISTER: &str = "fuzz-local";
/// The one transaction of [`LOCAL_REGISTER`].
pub const LOCAL_PAYLOAD: &[u8] = br#"{"fuzz":1}"#;
/// A register the node follows as a full replica (the seed chain's), so an advertisement of
/// it makes the node ask the peer for dockets.
pub const FOLLOWED_REGISTER: &str = "seed-register";
/// Hand-built identities kept for the whole run; the rest of the inputs use a fresh one.
pub const REUSED_IDENTITIES: u8 = 3;
/// Most frames one input sends: keeps each input fast.
pub const MAX_FRAMES: usize = 64;

pub struct Input {
    /// 0: a fresh identity; 1..=REUSED_IDENTITIES: one kept across inputs.
    pub identity: u8,
    pub frames: Vec<pb::Frame>,
}

impl Input {
    pub fn parse(data: &[u8]) -> Input {
        let Some((first, mut rest)) = data.split_first() else {
            return Input {
                identity: 0,
                frames: Vec::new(),
            };
        };
        let mut frames = Vec::new();
        while !rest.is_empty() && frames.len() < MAX_FRAMES {
            let Ok(len) = prost::encoding::decode_varint(&mut rest) else {
                break;
            };
            let len = usize::try_from(len).unwrap_or(usize::MAX).min(rest.len());
            let (chunk, tail) = rest.split_at(len);
            rest = tail;
            if let Ok(frame) = pb::Frame::decode(chunk) {
                frames.push(frame);
            }
        }
        Input {
            identity: first % (REUSED_IDENTITIES + 1),
            frames,
        }
    }

    /// The bytes that [`Input::parse`] reads back as this input.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.identity];
        for frame in &self.frames {
            out.extend(frame.encode_length_delimited_to_vec());
        }
        out
    }
}

/// The followed register's chain: three dockets sealed by its origin.
pub fn chain() -> Vec<DocketWithTransactions> {
    let key = SigningKey::from_bytes(&[1; 32]);
    let genesis = ledger::genesis(&key, FOLLOWED_REGISTER, 1_000);
    let first = ledger::seal_next(&key, &genesis.header, &[b"tx one", b"tx two"], 2_000);
    let second = ledger::seal_next(&key, &first.header, &[b"tx three"], 3_000);
    vec![
        DocketWithTransactions {
            docket: genesis,
            origin_key: Some(key.verifying_key().to_bytes()),
            transactions: vec![],
        },
        DocketWithTransactions {
            docket: first,
            origin_key: None,
            transactions: vec![b"tx one".to_vec(), b"tx two".to_vec()],
        },
        DocketWithTransactions {
            docket: second,
            origin_key: None,
            transactions: vec![b"tx three".to_vec()],
        },
    ]
}

/// The head of [`chain`], as a peer that holds it advertises it.
pub fn height() -> pb::RegisterHeight {
    let chain = chain();
    let head = &chain[2].docket.header;
    pb::RegisterHeight {
        register_id: FOLLOWED_REGISTER.into(),
        height: head.number,
        head_hash: head.hash().to_vec(),
        latest_version: head.last_version(),
        full_replica: true,
        is_origin: false,
    }
}
