//! A peer-protocol frame as a peer sends it: the prost decode, then every conversion the
//! session applies to a decoded frame (`protocol::convert`) and the relay rules a platform message
//! meets (`messages::relay`). Checks that decoding round-trips and that what the conversions
//! accept has the shape they promise.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use sorcha_peer::messages::relay::Relay;
use sorcha_peer::messages::{MAX_AGE_MS, MAX_HOPS, MAX_PAYLOAD_BYTES};
use sorcha_peer::protocol::convert::{self, MAX_PEER_TEXT};
use sorcha_peer::protocol::tx_refs;
use sorcha_peer::protocol::pb::{self, frame::Body};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = pb::Frame::decode(data) else {
        return;
    };
    let again = pb::Frame::decode(frame.encode_to_vec().as_slice()).expect("re-decodes");
    assert_eq!(again, frame, "a frame survives encode and decode");
    match frame.body {
        Some(Body::Goodbye(g)) => text(&g.reason),
        Some(Body::Ping(p)) => heights(p.registers),
        Some(Body::Advertise(a)) => heights(a.registers),
        Some(Body::ExchangeRequest(r)) => addresses(r.peers),
        Some(Body::ExchangeResponse(r)) => addresses(r.peers),
        Some(Body::DocketBatch(b)) => {
            text(&b.error);
            b.dockets.into_iter().for_each(docket);
        }
        Some(Body::DocketPush(p)) => {
            if let Some(entry) = p.docket {
                compact(entry);
            }
        }
        Some(Body::Announce(a)) => refs(&a.tx_ids, &a.short_ids),
        Some(Body::PullTransactions(p)) => refs(&p.tx_ids, &p.short_ids),
        Some(Body::TransactionsBatch(b)) => {
            refs(&b.missing, &b.missing_short);
            text(&b.error);
        }
        Some(Body::DialBackResponse(r)) => text(&r.error),
        Some(Body::PlatformMessage(m)) => platform(m),
        _ => {}
    }
});

fn text(t: &str) {
    let kept = convert::peer_text(t, MAX_PEER_TEXT);
    assert!(kept.chars().count() <= MAX_PEER_TEXT);
    assert!(
        !kept.chars().any(char::is_control),
        "no control character is kept"
    );
}

fn heights(wire: Vec<pb::RegisterHeight>) {
    let total = wire.len();
    let (good, bad) = convert::heights_from_wire(wire);
    assert_eq!(good.len() + bad, total);
    for h in &good {
        assert!(sorcha_peer::ledger::validate_register_id(&h.register_id).is_ok());
    }
    let (back, none_bad) = convert::heights_from_wire(convert::heights_to_wire(good.clone()));
    assert_eq!((back, none_bad), (good, 0), "accepted heights round-trip");
}

fn addresses(wire: Vec<pb::PeerAddress>) {
    let taken = convert::addresses_from_wire(wire.clone());
    assert_eq!(convert::addresses_to_wire(taken), wire);
}

/// Transactions named by whole and short IDs: accepted exactly when every whole ID is 32 bytes
/// and the short ones divide into 16-byte IDs, and then they go back out as they came.
fn refs(whole: &[Vec<u8>], short: &[u8]) {
    match tx_refs::refs_from_wire(whole, short) {
        Ok(refs) => {
            assert_eq!(refs.len(), whole.len() + short.len() / 16);
            assert_eq!(tx_refs::missing_to_wire(&refs), (whole.to_vec(), short.to_vec()));
        }
        Err(_) => assert!(whole.iter().any(|id| id.len() != 32) || short.len() % 16 != 0),
    }
}

fn docket(entry: pb::DocketEntry) {
    let tx_ids_sent = entry.tx_ids.is_empty();
    if let Ok(full) = convert::docket_from_wire(entry.clone()) {
        let back = convert::docket_to_wire(&full);
        if tx_ids_sent {
            assert_eq!(back, entry, "an accepted docket round-trips");
        }
        assert_eq!(convert::docket_from_wire(back), Ok(full));
    }
}

fn compact(entry: pb::DocketEntry) {
    if let Ok(c) = convert::compact_from_wire(entry.clone()) {
        assert!(entry.transactions.is_empty(), "a push carries no payloads");
        assert_eq!(
            convert::compact_from_wire(convert::compact_to_wire(&c)),
            Ok(c)
        );
    }
}

fn platform(m: pb::PlatformMessage) {
    let Ok(mut message) = convert::platform_from_wire(m) else {
        return;
    };
    assert!(message.payload.len() <= MAX_PAYLOAD_BYTES);
    let wire = convert::platform_to_wire(&message);
    assert_eq!(convert::platform_from_wire(wire).as_ref(), Ok(&message));
    // An unsigned message is signed by some other origin, so the rules after the signature
    // check run too.
    if message.signature.is_empty() {
        message.sign(&SigningKey::from_bytes(&[9; 32]));
    }
    // A fresh relay each time: the rate limits would otherwise end every run at the first rule.
    let mut relay = Relay::new(SigningKey::from_bytes(&[7; 32]));
    let id = message.id();
    let signed = message.is_signed_by_origin(&id);
    let now = 1_800_000_000_000;
    if let Ok(verdict) = relay.receive("peer", &mut message, now) {
        assert!(
            signed,
            "the relay delivers only messages their origin signed"
        );
        assert!(
            message.timestamp_ms.abs_diff(now) <= MAX_AGE_MS as u64,
            "nor stale ones"
        );
        if verdict.forward {
            assert!(
                message.hops_left < MAX_HOPS,
                "a forward spends a hop, within the cap"
            );
        }
    }
}
