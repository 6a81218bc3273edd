//! The platform listener's seeds: one real request of each RPC (see `platform_request`).

use std::path::Path;

use prost::Message;
use sorcha_peer::identity;
use sorcha_peer::ledger;
use sorcha_peer::platform::pb::{
    communication, discovery, docket_sync, heartbeat, sync, transaction,
};

use super::put;

pub fn platform_request(dir: &Path) {
    let reg = "seed-register".to_string();
    let peer = identity::peer_id_for(&[6; 32]);
    let tx = hex::encode(ledger::tx_hash(b"tx one"));
    let info = discovery::PeerInfo {
        peer_id: peer.clone(),
        address: "198.51.100.4".into(),
        port: 5000,
        last_seen: 1_700_000_000,
        ..Default::default()
    };
    let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "latest",
            0,
            docket_sync::GetLatestDocketNumberRequest {
                register_id: reg.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "sync_dockets",
            1,
            docket_sync::SyncDocketsRequest {
                register_id: reg.clone(),
                from_docket_number: 0,
                to_docket_number: 10,
                max_count: 5,
            }
            .encode_to_vec(),
        ),
        (
            "peer_list",
            2,
            discovery::PeerListRequest {
                requesting_peer_id: peer.clone(),
                max_peers: 20,
            }
            .encode_to_vec(),
        ),
        (
            "register_peer",
            3,
            discovery::RegisterPeerRequest {
                peer_info: Some(info.clone()),
            }
            .encode_to_vec(),
        ),
        (
            "ping",
            4,
            discovery::PingRequest {
                peer_id: peer.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "exchange",
            5,
            discovery::PeerExchangeRequest {
                peer_id: peer.clone(),
                known_peers: vec![info],
                max_peers: 0,
            }
            .encode_to_vec(),
        ),
        (
            "find",
            6,
            discovery::FindPeersForRegisterRequest {
                register_id: reg.clone(),
                requesting_peer_id: peer.clone(),
                require_full_replica: true,
                max_peers: 3,
            }
            .encode_to_vec(),
        ),
        (
            "heartbeat",
            7,
            heartbeat::PeerHeartbeatRequest {
                peer_id: peer.clone(),
                timestamp: 1,
                sequence_number: 2,
                register_versions: [(reg.clone(), 3)].into(),
                build_version: "1.0".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "message",
            8,
            communication::PeerMessage {
                sender_peer_id: "validator".into(),
                recipient_peer_id: "*".into(),
                message_type: 1,
                payload: b"{}".to_vec(),
                timestamp: 1,
            }
            .encode_to_vec(),
        ),
        (
            "chain",
            9,
            sync::DocketChainRequest {
                register_id: reg.clone(),
                peer_id: peer.clone(),
                from_version: 0,
                max_dockets: 10,
            }
            .encode_to_vec(),
        ),
        (
            "transactions",
            10,
            sync::DocketTransactionRequest {
                register_id: reg.clone(),
                peer_id: peer.clone(),
                transaction_ids: vec![tx.clone()],
            }
            .encode_to_vec(),
        ),
        (
            "subscribe",
            11,
            sync::RegisterSubscriptionRequest {
                register_id: reg.clone(),
                peer_id: peer.clone(),
                from_version: 1,
                filters: None,
            }
            .encode_to_vec(),
        ),
        (
            "status",
            12,
            sync::RegisterSyncStatusRequest {
                register_id: reg.clone(),
                peer_id: peer.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "notify",
            13,
            transaction::TransactionNotification {
                transaction_hash: tx.clone(),
                sender_peer_id: peer.clone(),
                timestamp: 1,
                transaction_size: 6,
                register_id: reg.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "get_tx",
            14,
            transaction::TransactionRequest {
                transaction_hash: tx.to_uppercase(),
                requesting_peer_id: peer.clone(),
                register_id: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "submit",
            15,
            transaction::SubmitTransactionRequest {
                register_id: reg,
                origin_peer_id: peer,
                submitted_at_unix_ms: 1,
                submission_json: b"{\"a\":1}".to_vec(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ];
    for (name, rpc, body) in seeds {
        put(dir, name, [&[rpc][..], &body].concat());
    }
}
