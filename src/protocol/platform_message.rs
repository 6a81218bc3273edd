//! A platform message as peers carry it (the relay rules are in `crate::messages`): signed by
//! its origin node, so no relay can speak for another node.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::identity::{is_peer_id, peer_id_for};

/// What an origin signs: this tag, then the message ID (a signature means nothing elsewhere).
const SIGNING_TAG: &[u8] = b"sorcha-peer platform message v1";

/// The recipient that means every node.
pub const BROADCAST: &str = "*";

/// Largest payload carried, in bytes (a docket the Validator proposes, as JSON).
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Whom a message is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    All,
    Peer(String),
}

impl Recipient {
    /// `"*"` or a peer ID; anything else is not a recipient.
    pub fn parse(text: &str) -> Option<Recipient> {
        if text == BROADCAST {
            Some(Recipient::All)
        } else if is_peer_id(text) {
            Some(Recipient::Peer(text.to_string()))
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Recipient::All => BROADCAST,
            Recipient::Peer(id) => id,
        }
    }
}

/// A message from a platform service, carried between nodes (rules in `crate::messages`).
#[derive(Clone, Debug, PartialEq)]
pub struct PlatformMessage {
    /// The node whose platform sent it.
    pub origin: String,
    pub nonce: u64,
    pub recipient: Recipient,
    /// `sorcha.peer.communication.MessageType`, carried as it came.
    pub message_type: i32,
    pub payload: Vec<u8>,
    pub timestamp_ms: i64,
    /// Forwards still allowed (not signed: every relay counts it down; capped on receipt).
    pub hops_left: u32,
    /// The origin's public key (its peer ID is derived from it).
    pub origin_key: [u8; 32],
    /// The origin's Ed25519 signature over [`SIGNING_TAG`] and the ID.
    pub signature: Vec<u8>,
}

impl PlatformMessage {
    /// The ID: SHA-256 of every field but the hop count (which changes on the way).
    pub fn id(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        for text in [self.origin.as_bytes(), self.recipient.as_str().as_bytes()] {
            h.update((text.len() as u64).to_le_bytes());
            h.update(text);
        }
        h.update(self.nonce.to_le_bytes());
        h.update(self.message_type.to_le_bytes());
        h.update(self.timestamp_ms.to_le_bytes());
        h.update((self.payload.len() as u64).to_le_bytes());
        h.update(&self.payload);
        h.finalize().into()
    }

    /// Makes `key` the origin and signs.
    pub fn sign(&mut self, key: &SigningKey) {
        self.origin_key = key.verifying_key().to_bytes();
        self.origin = peer_id_for(&self.origin_key);
        let signed = signed_bytes(&self.id());
        self.signature = key.sign(&signed).to_bytes().to_vec();
    }

    /// Whether the origin's key is the origin's and signed this message, whose ID is `id`
    /// (worked out once by the caller: hashing a large payload is the costly part).
    pub fn is_signed_by_origin(&self, id: &[u8; 32]) -> bool {
        if peer_id_for(&self.origin_key) != self.origin {
            return false;
        }
        let Ok(key) = VerifyingKey::from_bytes(&self.origin_key) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify(&signed_bytes(id), &signature).is_ok()
    }
}

fn signed_bytes(id: &[u8; 32]) -> Vec<u8> {
    [SIGNING_TAG, id.as_slice()].concat()
}
