//! The platform listener's request messages (`platform/`): the first byte picks an RPC of the
//! six services, the rest is its request as protobuf. Each is decoded, must survive a trip
//! through prost, and goes through the field checks its handler makes before it reads any
//! state (the same functions, through `sorcha_peer::fuzzing`). What a check accepts must be
//! what it promises: register names the node's rules allow, transaction IDs that are the hex
//! they came as, counts within their bounds, candidate addresses a node can dial.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use sorcha_peer::config::validate_host_port;
use sorcha_peer::fuzzing::{
    platform_answer_size, platform_bounded, platform_candidate, platform_docket_range,
    platform_heartbeat, platform_message, platform_non_negative, platform_register_id,
    platform_tx_id,
};
use sorcha_peer::identity::is_peer_id;
use sorcha_peer::ledger::validate_register_id;
use sorcha_peer::messages::MAX_PAYLOAD_BYTES;
use sorcha_peer::platform::pb::{
    communication, discovery, docket_sync, heartbeat, sync, transaction,
};
use sorcha_peer::platform::{MAX_ID_BYTES, MAX_PEERS_PER_ANSWER};
use tonic::{Code, Status};

const NOW_MS: i64 = 1_800_000_000_000;

/// Decodes `T`, checks the prost round trip, and hands it over.
fn decode<T: Message + Default + PartialEq + std::fmt::Debug>(body: &[u8]) -> Option<T> {
    let value = T::decode(body).ok()?;
    let again = T::decode(value.encode_to_vec().as_slice()).expect("re-decodes");
    assert_eq!(again, value);
    Some(value)
}

/// A heartbeat, whose metrics are floats: NaN is not equal to itself, so they are compared
/// as bits (its map is compared as a map, in no order).
fn decode_heartbeat(body: &[u8]) -> Option<heartbeat::PeerHeartbeatRequest> {
    let bits = |r: &heartbeat::PeerHeartbeatRequest| {
        let mut r = r.clone();
        let m = r.metrics.take().unwrap_or_default();
        // Bit for bit, except that -0.0 is compared as 0.0: prost leaves out a double equal
        // to its default, so a decoded -0.0 is encoded as nothing and comes back as 0.0.
        let floats = [m.cpu_usage_percent, m.memory_usage_mb, m.disk_usage_percent]
            .map(|f| if f == 0.0 { 0 } else { f.to_bits() });
        (
            r,
            floats,
            m.active_connections,
            m.register_count,
            m.pending_syncs,
            m.is_syncing,
            m.uptime_seconds,
        )
    };
    let value = heartbeat::PeerHeartbeatRequest::decode(body).ok()?;
    let again = heartbeat::PeerHeartbeatRequest::decode(value.encode_to_vec().as_slice())
        .expect("re-decodes");
    assert!(bits(&again) == bits(&value), "{again:?} != {value:?}");
    Some(value)
}

fn refused<T>(result: Result<T, Status>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(status) => {
            assert_ne!(status.code(), Code::Ok);
            assert_ne!(
                status.code(),
                Code::Internal,
                "a bad request is the caller's fault"
            );
            None
        }
    }
}

fn register(text: &str) -> Option<()> {
    let id = refused(platform_register_id(text))?;
    assert!(!id.is_empty() && id.len() <= MAX_ID_BYTES && validate_register_id(id).is_ok());
    Some(())
}

fn bounded(text: &str) -> Option<()> {
    let t = refused(platform_bounded(text))?;
    assert!(t.len() <= MAX_ID_BYTES);
    Some(())
}

fn tx_id(text: &str) -> Option<()> {
    let id = refused(platform_tx_id(text))?;
    assert_eq!(hex::encode(id), text.to_ascii_lowercase());
    Some(())
}

fn non_negative(value: i64) -> Option<u64> {
    let v = refused(platform_non_negative(value))?;
    assert_eq!(i64::try_from(v).ok(), Some(value));
    Some(v)
}

fn answer_size(asked: i32) -> Option<usize> {
    let n = refused(platform_answer_size(asked))?;
    assert!(n > 0 && n <= MAX_PEERS_PER_ANSWER);
    Some(n)
}

fn candidate(info: &discovery::PeerInfo) -> Option<()> {
    let entry = refused(platform_candidate(info, NOW_MS))?;
    assert!(is_peer_id(&entry.peer_id));
    assert!(
        validate_host_port(&entry.address).is_ok(),
        "{}",
        entry.address
    );
    assert!(entry.address.ends_with(&format!(":{}", info.port)));
    assert!(entry.last_seen_ms <= NOW_MS);
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let Some((&rpc, body)) = data.split_first() else {
        return;
    };
    let _ = run(rpc % 16, body);
});

fn run(rpc: u8, body: &[u8]) -> Option<()> {
    match rpc {
        0 => register(&decode::<docket_sync::GetLatestDocketNumberRequest>(body)?.register_id),
        1 => {
            let r: docket_sync::SyncDocketsRequest = decode(body)?;
            let (id, next, last, remaining) = refused(platform_docket_range(r.clone()))?;
            assert_eq!(id, r.register_id);
            assert!(
                next >= 1 && last >= next && remaining >= 1,
                "{next}..={last} ({remaining})"
            );
            Some(())
        }
        2 => {
            let r: discovery::PeerListRequest = decode(body)?;
            bounded(&r.requesting_peer_id)?;
            answer_size(r.max_peers).map(drop)
        }
        3 => candidate(
            decode::<discovery::RegisterPeerRequest>(body)?
                .peer_info
                .as_ref()?,
        ),
        4 => bounded(&decode::<discovery::PingRequest>(body)?.peer_id),
        5 => {
            let r: discovery::PeerExchangeRequest = decode(body)?;
            bounded(&r.peer_id)?;
            answer_size(r.max_peers)?;
            r.known_peers.iter().try_for_each(candidate)
        }
        6 => {
            let r: discovery::FindPeersForRegisterRequest = decode(body)?;
            register(&r.register_id)?;
            bounded(&r.requesting_peer_id)?;
            answer_size(r.max_peers).map(drop)
        }
        7 => {
            let r = decode_heartbeat(body)?;
            refused(platform_heartbeat(&r, 16))?;
            assert!(r.register_versions.len() <= 16 && r.advertised_registers.len() <= 16);
            Some(())
        }
        8 => {
            let m: communication::PeerMessage = decode(body)?;
            let recipient = refused(platform_message(&m))?;
            assert_eq!(recipient.as_str(), m.recipient_peer_id);
            assert!(m.payload.len() <= MAX_PAYLOAD_BYTES);
            Some(())
        }
        9 => {
            let r: sync::DocketChainRequest = decode(body)?;
            register(&r.register_id)?;
            bounded(&r.peer_id)?;
            non_negative(r.from_version)?;
            non_negative(r.max_dockets.into()).map(drop)
        }
        10 => {
            let r: sync::DocketTransactionRequest = decode(body)?;
            register(&r.register_id)?;
            bounded(&r.peer_id)?;
            r.transaction_ids.iter().try_for_each(|id| tx_id(id))
        }
        11 => {
            let r: sync::RegisterSubscriptionRequest = decode(body)?;
            register(&r.register_id)?;
            bounded(&r.peer_id)?;
            non_negative(r.from_version).map(drop)
        }
        12 => {
            let r: sync::RegisterSyncStatusRequest = decode(body)?;
            register(&r.register_id)?;
            bounded(&r.peer_id)
        }
        13 => {
            let r: transaction::TransactionNotification = decode(body)?;
            tx_id(&r.transaction_hash)?;
            bounded(&r.sender_peer_id)?;
            non_negative(r.transaction_size)?;
            if r.register_id.is_empty() {
                Some(())
            } else {
                register(&r.register_id)
            }
        }
        14 => {
            let r: transaction::TransactionRequest = decode(body)?;
            tx_id(&r.transaction_hash)?;
            bounded(&r.requesting_peer_id)
        }
        _ => {
            let r: transaction::SubmitTransactionRequest = decode(body)?;
            register(&r.register_id)?;
            bounded(&r.origin_peer_id)?;
            non_negative(r.submitted_at_unix_ms).map(drop)
        }
    }
}
