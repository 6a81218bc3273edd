//! A platform message as peers carry it (the relay rules are in `crate::messages`).

use sha2::{Digest, Sha256};

use crate::identity::is_peer_id;

/// The recipient that means every node.
pub const BROADCAST: &str = "*";

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
    pub hops_left: u32,
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
}
