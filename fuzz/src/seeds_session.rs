//! The `session` target's seeds: frames of every kind a peer sends inside a session, made
//! with the node's own conversions, about the registers the target's node holds and follows
//! (`fuzz_targets/session_input.rs`). An answer with request ID 0 is given the ID of the
//! node's latest request of its kind by the target.

use std::path::Path;

use sorcha_peer::identity;
use sorcha_peer::ledger::{self, CompactDocket};
use sorcha_peer::protocol::convert;
use sorcha_peer::protocol::pb::{self, frame::Body};

use super::session_input::{
    FOLLOWED_REGISTER, Input, LOCAL_PAYLOAD, LOCAL_REGISTER, chain, height,
};
use super::{platform_message, put};

fn frame(body: Body) -> pb::Frame {
    pb::Frame { body: Some(body) }
}

pub fn session(dir: &Path) {
    let chain = chain();
    let local_tx = ledger::tx_hash(LOCAL_PAYLOAD).to_vec();
    let followed_txs: Vec<Vec<u8>> = chain
        .iter()
        .flat_map(|d| d.transactions.iter().map(|t| ledger::tx_hash(t).to_vec()))
        .collect();
    let address = pb::PeerAddress {
        peer_id: identity::peer_id_for(&[6; 32]),
        address: "192.0.2.9:5000".into(),
        last_seen_ms: sorcha_peer::clock::now_ms(),
    };
    let advertise = frame(Body::Advertise(pb::Advertise {
        registers: vec![height()],
    }));
    let docket_batch = frame(Body::DocketBatch(pb::DocketBatch {
        request_id: 0,
        register_id: FOLLOWED_REGISTER.into(),
        dockets: chain.iter().map(convert::docket_to_wire).collect(),
        error: String::new(),
    }));
    let announce = frame(Body::Announce(pb::Announce {
        register_id: FOLLOWED_REGISTER.into(),
        tx_ids: followed_txs.clone(),
        short_ids: Vec::new(),
    }));
    let transactions_batch = frame(Body::TransactionsBatch(pb::TransactionsBatch {
        request_id: 0,
        register_id: FOLLOWED_REGISTER.into(),
        payloads: chain.iter().flat_map(|d| d.transactions.clone()).collect(),
        missing: vec![],
        missing_short: vec![],
        error: String::new(),
    }));
    let seeds: Vec<(&str, u8, Vec<pb::Frame>)> = vec![
        (
            "ping",
            0,
            vec![frame(Body::Ping(pb::Ping {
                sequence: 7,
                sent_at_ms: sorcha_peer::clock::now_ms(),
                registers: vec![height()],
            }))],
        ),
        ("pong", 0, vec![frame(Body::Pong(pb::Pong { sequence: 1 }))]),
        ("advertise", 0, vec![advertise.clone()]),
        // The node asks for the followed register's dockets; the batch answers it.
        ("sync", 0, vec![advertise.clone(), docket_batch.clone()]),
        (
            "docket_request",
            0,
            vec![frame(Body::DocketRequest(pb::DocketRequest {
                request_id: 5,
                register_id: LOCAL_REGISTER.into(),
                from_number: 0,
                max_dockets: 10,
                headers_only: false,
                max_bytes: 1 << 20,
            }))],
        ),
        (
            "docket_push",
            1,
            vec![frame(Body::DocketPush(pb::DocketPush {
                docket: Some(convert::compact_to_wire(&CompactDocket::from_full(
                    &chain[1],
                ))),
            }))],
        ),
        (
            "follow",
            0,
            vec![frame(Body::Follow(pb::Follow {
                register_id: LOCAL_REGISTER.into(),
                follow: true,
            }))],
        ),
        // The node pulls what is announced; the batch answers the pull.
        (
            "announce",
            2,
            vec![advertise.clone(), announce, transactions_batch],
        ),
        (
            "pull_transactions",
            0,
            vec![frame(Body::PullTransactions(pb::PullTransactions {
                request_id: 6,
                register_id: LOCAL_REGISTER.into(),
                tx_ids: vec![local_tx.clone(), followed_txs[0].clone()],
                short_ids: Vec::new(),
            }))],
        ),
        (
            "pull_transactions_short",
            0,
            vec![frame(Body::PullTransactions(pb::PullTransactions {
                request_id: 6,
                register_id: LOCAL_REGISTER.into(),
                tx_ids: Vec::new(),
                short_ids: [&local_tx[..16], &followed_txs[0][..16]].concat(),
            }))],
        ),
        (
            "exchange_request",
            0,
            vec![frame(Body::ExchangeRequest(pb::PeerExchangeRequest {
                request_id: 3,
                peers: vec![address.clone()],
                max_peers: 50,
            }))],
        ),
        (
            "exchange_response",
            0,
            vec![frame(Body::ExchangeResponse(pb::PeerExchangeResponse {
                request_id: 0,
                peers: vec![address],
            }))],
        ),
        (
            "dial_back_request",
            3,
            vec![frame(Body::DialBackRequest(pb::DialBackRequest {
                request_id: 4,
                address: "127.0.0.1:1".into(),
            }))],
        ),
        (
            "dial_back_response",
            0,
            vec![frame(Body::DialBackResponse(pb::DialBackResponse {
                request_id: 0,
                error: String::new(),
            }))],
        ),
        (
            "platform_message",
            0,
            vec![frame(Body::PlatformMessage(convert::platform_to_wire(
                &platform_message(sorcha_peer::clock::now_ms()),
            )))],
        ),
        (
            "goodbye",
            0,
            vec![frame(Body::Goodbye(pb::Goodbye {
                reason: "leaving".into(),
                ..Default::default()
            }))],
        ),
        // Frames that break the protocol: a handshake frame again, an empty frame.
        (
            "late_hello",
            1,
            vec![
                frame(Body::Hello(pb::Hello::default())),
                pb::Frame { body: None },
            ],
        ),
    ];
    for (name, identity, frames) in seeds {
        put(dir, name, Input { identity, frames }.encode());
    }
}
