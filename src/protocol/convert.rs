//! Protobuf ⇄ domain translations for the peer protocol. Anything a peer sends is checked for
//! shape here (hash lengths, sizes); whether it is *true* is checked by `ledger`.

use super::pb;
use crate::ledger::{CompactDocket, Docket, DocketHeader, DocketWithTransactions};
use crate::protocol::{
    KnownAddress, MAX_PAYLOAD_BYTES, PeerMessage, PeerRequest, PlatformMessage, Recipient, Refusal,
    RegisterHeight,
};

/// Longest free text kept from a peer (a goodbye reason, an error in an answer).
pub const MAX_PEER_TEXT: usize = 256;

/// Text a peer sent, made safe to keep, log and show: control characters dropped, cut to
/// `max` characters.
pub fn peer_text(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A refusal as the goodbye that tells the peer: the kind to act on, the text to show (all an
/// older peer reads).
pub fn refusal_to_wire(refusal: &Refusal) -> pb::Goodbye {
    use pb::RefusalKind as Kind;
    let kind = match refusal {
        Refusal::Banned(_) => Kind::Banned,
        Refusal::SelfConnection => Kind::SelfConnection,
        Refusal::InboundFull => Kind::InboundFull,
        Refusal::AddressFull => Kind::AddressFull,
        Refusal::TableFull => Kind::TableFull,
        Refusal::Duplicate => Kind::Duplicate,
        Refusal::Invalid(_) => Kind::Invalid,
    };
    pb::Goodbye {
        reason: refusal.to_string(),
        kind: kind.into(),
    }
}

/// The refusal a goodbye carries, known by its kind alone. No kind (an older peer, or a goodbye
/// that is no refusal) or one this node does not know is `Invalid` with the peer's text.
pub fn refusal_from_wire(goodbye: &pb::Goodbye) -> Refusal {
    use pb::RefusalKind as Kind;
    let text = |t: &str| peer_text(t, MAX_PEER_TEXT);
    // `kind()` reads a value this node does not know as unspecified.
    match goodbye.kind() {
        Kind::Banned => {
            // The text is the ban's `Display`; keep only the ban's own reason.
            let prefix = Refusal::Banned(String::new()).to_string();
            let reason = goodbye.reason.strip_prefix(prefix.as_str());
            Refusal::Banned(text(reason.unwrap_or(&goodbye.reason)))
        }
        Kind::SelfConnection => Refusal::SelfConnection,
        Kind::InboundFull => Refusal::InboundFull,
        Kind::AddressFull => Refusal::AddressFull,
        Kind::TableFull => Refusal::TableFull,
        Kind::Duplicate => Refusal::Duplicate,
        Kind::Invalid | Kind::Unspecified => Refusal::Invalid(text(&goodbye.reason)),
    }
}

/// A message for a peer, as the body of its frame; `short_ids`: the peer speaks them.
pub fn message_to_wire(message: PeerMessage, short_ids: bool) -> pb::frame::Body {
    use pb::frame::Body;
    match message {
        PeerMessage::Advertise(heights) => Body::Advertise(pb::Advertise {
            registers: heights_to_wire(heights),
        }),
        PeerMessage::Follow {
            register_id,
            follow,
        } => Body::Follow(pb::Follow {
            register_id,
            follow,
        }),
        PeerMessage::Push(compact) => Body::DocketPush(pb::DocketPush {
            docket: Some(compact_to_wire(&compact)),
        }),
        PeerMessage::Announce {
            register_id,
            tx_ids,
        } => Body::Announce(super::tx_refs::announce_to_wire(
            register_id,
            &tx_ids,
            short_ids,
        )),
        PeerMessage::Platform(m) => Body::PlatformMessage(platform_to_wire(&m)),
    }
}

/// A request to a peer, as the body of its frame under `request_id`; `short_ids`: the peer
/// speaks them.
pub fn request_to_wire(request_id: u64, request: PeerRequest, short_ids: bool) -> pb::frame::Body {
    use pb::frame::Body;
    match request {
        PeerRequest::Dockets {
            register_id,
            from,
            max,
            headers_only,
            max_bytes,
        } => Body::DocketRequest(pb::DocketRequest {
            request_id,
            register_id,
            from_number: from,
            max_dockets: max,
            headers_only,
            max_bytes,
        }),
        PeerRequest::Transactions {
            register_id,
            tx_ids,
        } => {
            let (tx_ids, short_ids) = super::tx_refs::refs_to_wire(&tx_ids, short_ids);
            Body::PullTransactions(pb::PullTransactions {
                request_id,
                register_id,
                tx_ids,
                short_ids,
            })
        }
        PeerRequest::DialBack { address } => Body::DialBackRequest(pb::DialBackRequest {
            request_id,
            address,
        }),
    }
}

/// A frame whose shape is wrong (its content is judged by `ledger`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{what} is {len} bytes, expected 32")]
    NotA32ByteValue { what: &'static str, len: usize },
    #[error("packed short IDs are {0} bytes, not a multiple of 16")]
    ShortIdsLength(usize),
    #[error("a pushed docket carries payloads, expected IDs")]
    PayloadsInPush,
    #[error("a platform message payload is {0} bytes, over {MAX_PAYLOAD_BYTES}")]
    PayloadTooLarge(usize),
    #[error("a platform message's {0} is not a peer ID")]
    NotAPeer(&'static str),
}

fn hash32(bytes: &[u8], what: &'static str) -> Result<[u8; 32], WireError> {
    bytes.try_into().map_err(|_| WireError::NotA32ByteValue {
        what,
        len: bytes.len(),
    })
}

pub fn heights_to_wire(heights: Vec<RegisterHeight>) -> Vec<pb::RegisterHeight> {
    heights
        .into_iter()
        .map(|h| pb::RegisterHeight {
            register_id: h.register_id,
            height: h.height,
            head_hash: h.head_hash.to_vec(),
            latest_version: h.latest_version,
            full_replica: h.full_replica,
            is_origin: h.is_origin,
        })
        .collect()
}

/// Heights from a peer; malformed entries are dropped (and reported by the caller).
pub fn heights_from_wire(heights: Vec<pb::RegisterHeight>) -> (Vec<RegisterHeight>, usize) {
    let total = heights.len();
    let good: Vec<RegisterHeight> = heights
        .into_iter()
        .filter(|h| crate::ledger::validate_register_id(&h.register_id).is_ok())
        .filter_map(|h| {
            Some(RegisterHeight {
                head_hash: hash32(&h.head_hash, "head hash").ok()?,
                register_id: h.register_id,
                height: h.height,
                latest_version: h.latest_version,
                full_replica: h.full_replica,
                is_origin: h.is_origin,
            })
        })
        .collect();
    let bad = total - good.len();
    (good, bad)
}

pub fn docket_to_wire(entry: &DocketWithTransactions) -> pb::DocketEntry {
    let h = &entry.docket.header;
    pb::DocketEntry {
        register_id: h.register_id.clone(),
        number: h.number,
        previous_hash: h.previous_hash.to_vec(),
        merkle_root: h.merkle_root.to_vec(),
        tx_count: h.tx_count,
        first_version: h.first_version,
        sealed_at_ms: h.sealed_at_ms,
        signature: entry.docket.signature.clone(),
        transactions: entry.transactions.clone(),
        origin_key: entry.origin_key.map(|k| k.to_vec()).unwrap_or_default(),
        tx_ids: Vec::new(),
    }
}

pub fn docket_from_wire(e: pb::DocketEntry) -> Result<DocketWithTransactions, WireError> {
    let origin_key = if e.origin_key.is_empty() {
        None
    } else {
        Some(hash32(&e.origin_key, "origin key")?)
    };
    Ok(DocketWithTransactions {
        docket: Docket {
            header: DocketHeader {
                register_id: e.register_id,
                number: e.number,
                previous_hash: hash32(&e.previous_hash, "previous hash")?,
                merkle_root: hash32(&e.merkle_root, "Merkle root")?,
                tx_count: e.tx_count,
                first_version: e.first_version,
                sealed_at_ms: e.sealed_at_ms,
            },
            signature: e.signature,
        },
        origin_key,
        transactions: e.transactions,
    })
}

pub fn addresses_to_wire(entries: Vec<KnownAddress>) -> Vec<pb::PeerAddress> {
    entries
        .into_iter()
        .map(|e| pb::PeerAddress {
            peer_id: e.peer_id,
            address: e.address,
            last_seen_ms: e.last_seen_ms,
        })
        .collect()
}

pub fn addresses_from_wire(entries: Vec<pb::PeerAddress>) -> Vec<KnownAddress> {
    entries
        .into_iter()
        .map(|e| KnownAddress {
            peer_id: e.peer_id,
            address: e.address,
            last_seen_ms: e.last_seen_ms,
        })
        .collect()
}

/// Transaction IDs from the wire: each must be 32 bytes.
pub fn ids_from_wire(ids: &[Vec<u8>]) -> Result<Vec<[u8; 32]>, WireError> {
    ids.iter().map(|id| hash32(id, "transaction ID")).collect()
}

pub fn compact_to_wire(c: &CompactDocket) -> pb::DocketEntry {
    let mut entry = docket_to_wire(&DocketWithTransactions {
        docket: c.docket.clone(),
        origin_key: None,
        transactions: Vec::new(),
    });
    entry.tx_ids = c.tx_ids.iter().map(|id| id.to_vec()).collect();
    entry
}

pub fn compact_from_wire(mut e: pb::DocketEntry) -> Result<CompactDocket, WireError> {
    let tx_ids = ids_from_wire(&std::mem::take(&mut e.tx_ids))?;
    let full = docket_from_wire(e)?;
    if !full.transactions.is_empty() {
        return Err(WireError::PayloadsInPush);
    }
    Ok(CompactDocket {
        docket: full.docket,
        tx_ids,
    })
}

pub fn platform_to_wire(m: &PlatformMessage) -> pb::PlatformMessage {
    pb::PlatformMessage {
        origin_peer_id: m.origin.clone(),
        nonce: m.nonce,
        recipient: m.recipient.as_str().to_string(),
        message_type: m.message_type,
        payload: m.payload.clone(),
        timestamp_ms: m.timestamp_ms,
        hops_left: m.hops_left,
        origin_key: m.origin_key.to_vec(),
        signature: m.signature.clone(),
    }
}

/// A platform message from a peer: its size, origin and recipient checked.
pub fn platform_from_wire(m: pb::PlatformMessage) -> Result<PlatformMessage, WireError> {
    if m.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(WireError::PayloadTooLarge(m.payload.len()));
    }
    if !crate::identity::is_peer_id(&m.origin_peer_id) {
        return Err(WireError::NotAPeer("origin"));
    }
    let recipient = Recipient::parse(&m.recipient).ok_or(WireError::NotAPeer("recipient"))?;
    Ok(PlatformMessage {
        origin: m.origin_peer_id,
        nonce: m.nonce,
        recipient,
        message_type: m.message_type,
        payload: m.payload,
        timestamp_ms: m.timestamp_ms,
        hops_left: m.hops_left,
        origin_key: hash32(&m.origin_key, "origin key")?,
        signature: m.signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_refusal() -> Vec<Refusal> {
        vec![
            Refusal::Banned("spam from 192.0.2.7".into()),
            Refusal::Banned(String::new()),
            Refusal::SelfConnection,
            Refusal::InboundFull,
            Refusal::AddressFull,
            Refusal::TableFull,
            Refusal::Duplicate,
            Refusal::Invalid("unsupported protocol version 9".into()),
        ]
    }

    #[test]
    fn every_refusal_comes_back_as_itself_from_the_wire() {
        for refusal in every_refusal() {
            let goodbye = refusal_to_wire(&refusal);
            assert_eq!(goodbye.reason, refusal.to_string(), "text for people");
            assert_ne!(goodbye.kind(), pb::RefusalKind::Unspecified, "{refusal:?}");
            assert_eq!(refusal_from_wire(&goodbye), refusal);
        }
    }

    #[test]
    fn every_kind_but_unspecified_is_one_refusal() {
        let mut kinds: Vec<i32> = every_refusal()
            .iter()
            .map(|r| refusal_to_wire(r).kind)
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds, (1..=7).collect::<Vec<i32>>());
    }

    /// An older peer sends text only: even a text naming another refusal is not taken as it.
    #[test]
    fn a_goodbye_without_a_kind_is_invalid_with_its_text() {
        for reason in ["node shutting down", "duplicate connection", ""] {
            let old = pb::Goodbye {
                reason: reason.into(),
                ..Default::default()
            };
            assert_eq!(refusal_from_wire(&old), Refusal::Invalid(reason.into()));
        }
        let unknown = pb::Goodbye {
            reason: "a kind from a newer node".into(),
            kind: 99,
        };
        assert_eq!(
            refusal_from_wire(&unknown),
            Refusal::Invalid("a kind from a newer node".into())
        );
    }

    /// Text is made safe, and a refusal read from any goodbye is read the same when sent on.
    #[test]
    fn peer_text_in_a_refusal_is_cleaned_and_stable() {
        let long = format!("banned: {}\u{1b}[2J{}", "x".repeat(10), "y".repeat(400));
        for kind in [pb::RefusalKind::Banned, pb::RefusalKind::Invalid] {
            let first = refusal_from_wire(&pb::Goodbye {
                reason: long.clone(),
                kind: kind.into(),
            });
            let (Refusal::Banned(text) | Refusal::Invalid(text)) = &first else {
                panic!("{first:?}");
            };
            assert_eq!(text.chars().count(), MAX_PEER_TEXT);
            assert!(!text.chars().any(char::is_control), "{text:?}");
            assert_eq!(refusal_from_wire(&refusal_to_wire(&first)), first);
        }
    }
}
