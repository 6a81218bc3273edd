//! `RegisterSync` on real nodes: the chain and its transactions from the origin and from a
//! replica, the register's state, a live subscription that catches up from a version and then
//! follows the register, a slow subscriber dropped, and bad input refused.

use futures::{StreamExt, TryStreamExt};
use sorcha_peer::platform::pb::sync as pb;
use sorcha_peer::platform::pb::sync::register_sync_client::RegisterSyncClient;
use tonic::Code;
use tonic::transport::Channel;

use super::{code, platform, platform_follower, platform_on};
use crate::common::{PATIENCE, TestCluster, replicate_along, wait_until};

fn client(channel: &Channel) -> RegisterSyncClient<Channel> {
    RegisterSyncClient::new(channel.clone()).max_decoding_message_size(16 * 1024 * 1024)
}

fn chain_request(register: &str, from: i64, max: i32) -> pb::DocketChainRequest {
    pb::DocketChainRequest {
        register_id: register.into(),
        peer_id: "register-service".into(),
        from_version: from,
        max_dockets: max,
    }
}

async fn chain(
    channel: &Channel,
    request: pb::DocketChainRequest,
) -> Result<Vec<pb::DocketEntry>, tonic::Status> {
    let stream = client(channel)
        .pull_docket_chain(request)
        .await?
        .into_inner();
    stream.try_collect().await
}

async fn transactions(
    channel: &Channel,
    register: &str,
    ids: Vec<String>,
) -> Result<Vec<pb::TransactionEntry>, tonic::Status> {
    let request = pb::DocketTransactionRequest {
        register_id: register.into(),
        peer_id: String::new(),
        transaction_ids: ids,
    };
    let stream = client(channel)
        .pull_docket_transactions(request)
        .await?
        .into_inner();
    stream.try_collect().await
}

async fn status(
    channel: &Channel,
    register: &str,
) -> Result<pb::RegisterSyncStatus, tonic::Status> {
    client(channel)
        .get_register_sync_status(pb::RegisterSyncStatusRequest {
            register_id: register.into(),
            peer_id: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

fn subscription(register: &str, from: i64) -> pb::RegisterSubscriptionRequest {
    pb::RegisterSubscriptionRequest {
        register_id: register.into(),
        peer_id: "register-service".into(),
        from_version: from,
        filters: None,
    }
}

async fn subscribe(
    channel: &Channel,
    request: pb::RegisterSubscriptionRequest,
) -> Result<tonic::Streaming<pb::LiveTransactionEvent>, tonic::Status> {
    client(channel)
        .subscribe_to_register(request)
        .await
        .map(|r| r.into_inner())
}

/// The next event of a subscription, within the limit.
async fn next_event(
    stream: &mut tonic::Streaming<pb::LiveTransactionEvent>,
) -> pb::LiveTransactionEvent {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an event within the limit")
        .expect("the stream goes on")
        .expect("an event, not an error")
}

/// (type, version) of an event, with its transaction ID.
fn kind(e: &pb::LiveTransactionEvent) -> (pb::LiveEventType, i64) {
    (e.event_type(), e.version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn register_sync_serves_the_chain_transactions_state_and_a_live_stream() {
    let mut net = TestCluster::new();
    let mut a = net.start(platform_on).await;
    let mut b = platform_follower(&mut net, &a).await;
    a.client.create_register("rs", true).await.expect("create");
    let mut ids = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..4 {
        let payload = format!("{{\"n\":{i}}}").into_bytes();
        let tx = a
            .client
            .submit("rs", payload.clone())
            .await
            .expect("submit");
        // Sealed one by one: docket n holds version n.
        a.wait_sealed("rs", &tx.transaction_id, PATIENCE).await;
        ids.push(tx.transaction_id);
        payloads.push(payload);
    }
    replicate_along(&[&a, &b], "rs").await;
    let (on_a, on_b) = (platform(&a).await, platform(&b).await);

    let entries = chain(&on_a, chain_request("rs", 0, 0))
        .await
        .expect("chain");
    assert_eq!(entries.len(), 4);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.version, i as i64 + 1);
        assert_eq!(e.register_id, "rs");
        assert_eq!(e.transaction_ids, vec![ids[i].clone()]);
        assert!(e.created_at > 0 && e.docket_hash.len() == 64);
        if i > 0 {
            assert_eq!(e.previous_hash, entries[i - 1].docket_hash);
        }
        let records: Vec<serde_json::Value> =
            serde_json::from_slice(&e.docket_data).expect("docket_data is a JSON list");
        assert_eq!(records[0]["txId"], ids[i].as_str());
    }
    // The replica serves the same chain; max_dockets pages it.
    let page = chain(&on_b, chain_request("rs", 1, 2))
        .await
        .expect("chain");
    let hashes: Vec<&str> = page.iter().map(|e| e.docket_hash.as_str()).collect();
    assert_eq!(hashes, [&entries[1].docket_hash, &entries[2].docket_hash]);
    assert!(
        chain(&on_b, chain_request("rs", 4, 0))
            .await
            .expect("at head")
            .is_empty()
    );

    // Transactions by ID, in the order asked; one not held is skipped.
    let unknown = "ab".repeat(32);
    let asked = vec![ids[2].clone(), unknown, ids[0].clone()];
    let got = transactions(&on_b, "rs", asked)
        .await
        .expect("transactions");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].transaction_id, ids[2]);
    assert_eq!(got[0].checksum, ids[2]);
    assert_eq!(got[0].transaction_data, payloads[2]);
    assert_eq!(got[1].transaction_data, payloads[0]);
    assert!(got[1].created_at > 0);

    let at_a = status(&on_a, "rs").await.expect("status");
    assert_eq!(at_a.sync_state(), pb::SyncState::Active);
    assert_eq!(
        (
            at_a.latest_version,
            at_a.latest_docket_version,
            at_a.total_transactions,
            at_a.total_dockets
        ),
        (4, 4, 4, 5)
    );
    assert!(at_a.can_serve_full_replica);
    let at_b = status(&on_b, "rs").await.expect("status");
    assert!(matches!(
        at_b.sync_state(),
        pb::SyncState::FullyReplicated | pb::SyncState::Active
    ));
    assert_eq!((at_b.latest_version, at_b.total_dockets), (4, 5));
    assert!(at_b.can_serve_full_replica && at_b.last_sync_at > 0);

    // A subscription on the replica from version 2: versions 3 and 4 with their dockets...
    let mut live = subscribe(&on_b, subscription("rs", 2))
        .await
        .expect("subscribe");
    let (tx, docket) = (pb::LiveEventType::Transaction, pb::LiveEventType::Docket);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_event(&mut live).await);
    }
    let kinds: Vec<_> = seen.iter().map(kind).collect();
    assert_eq!(kinds, [(tx, 3), (docket, 3), (tx, 4), (docket, 4)]);
    assert_eq!(seen[0].transaction_id, ids[2]);
    assert_eq!(seen[0].transaction_data, payloads[2]);
    assert_eq!(seen[0].sender_peer_id, b.peer_id);
    assert_eq!(seen[1].checksum, entries[2].docket_hash);
    // Other starting points: everything, after the first, the last one.
    for (from, first) in [(0, 1), (1, 2), (3, 4)] {
        let mut from_there = subscribe(&on_a, subscription("rs", from))
            .await
            .expect("subscribe");
        let event = next_event(&mut from_there).await;
        assert_eq!(kind(&event), (tx, first), "from {from}");
        assert_eq!(event.transaction_id, ids[first as usize - 1]);
    }
    // From the head: nothing until the next docket.
    let mut at_head = subscribe(&on_a, subscription("rs", 4))
        .await
        .expect("subscribe");
    // ... then, live, what the origin seals and the replica receives.
    let fifth = a
        .client
        .submit("rs", b"{\"n\":5}".to_vec())
        .await
        .expect("submit");
    let event = next_event(&mut live).await;
    assert_eq!(kind(&event), (tx, 5));
    assert_eq!(event.transaction_id, fifth.transaction_id);
    assert_eq!(kind(&next_event(&mut live).await), (docket, 5));
    let event = next_event(&mut at_head).await;
    assert_eq!(kind(&event), (tx, 5));
    assert_eq!(event.sender_peer_id, a.peer_id);
    // A node that stops ends its live streams, saying why.
    b.stop().await;
    let end = tokio::time::timeout(PATIENCE, live.next())
        .await
        .expect("the stream ends within the limit");
    let status = end.expect("a status").expect_err("not an event");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_dropped_and_counted() {
    let mut net = TestCluster::new();
    let mut a = net.start(platform_on).await;
    a.client
        .create_register("slow", false)
        .await
        .expect("create");
    let on_a = platform(&a).await;
    let mut live = subscribe(&on_a, subscription("slow", 0))
        .await
        .expect("subscribe");
    // Large payloads fill the HTTP/2 windows, many small ones the subscriber's buffer.
    for i in 0..12 {
        let big = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(512 * 1024));
        a.client
            .submit("slow", big.into_bytes())
            .await
            .expect("submit");
    }
    let small: Vec<String> = (0..200).map(|i| format!("{{\"small\":{i}}}")).collect();
    a.client.submit_batch("slow", small).await.expect("batch");
    wait_until("the slow subscriber to be dropped", PATIENCE, || async {
        a.client
            .metrics()
            .await
            .is_ok_and(|m| m.contains("limit=\"platform_subscriber_slow\""))
    })
    .await;
    // What was buffered still arrives, then the reason.
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match live.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    })
    .await
    .expect("the stream ends within the limit");
    let status = ended.expect("ended with a status");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // The node goes on serving.
    assert_eq!(code(status_of(&on_a).await), Code::Ok);
    a.stop().await;
}

async fn status_of(channel: &Channel) -> Result<pb::RegisterSyncStatus, tonic::Status> {
    status(channel, "slow").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_sync_refuses_bad_input_with_the_right_status() {
    let mut net = TestCluster::new();
    let mut a = net.start(platform_on).await;
    a.client.create_register("rs", false).await.expect("create");
    let tx = a.client.submit("rs", b"{}".to_vec()).await.expect("submit");
    a.wait_sealed("rs", &tx.transaction_id, PATIENCE).await;
    let ch = platform(&a).await;
    let long = "p".repeat(300);

    assert_eq!(
        code(chain(&ch, chain_request("nope", 0, 0)).await),
        Code::NotFound
    );
    for bad in [
        chain_request("bad/name", 0, 0),
        chain_request("", 0, 0),
        chain_request("rs", -1, 0),
        chain_request("rs", 0, -1),
        pb::DocketChainRequest {
            peer_id: long.clone(),
            ..chain_request("rs", 0, 0)
        },
    ] {
        assert_eq!(code(chain(&ch, bad).await), Code::InvalidArgument);
    }

    let id = tx.transaction_id.clone();
    assert_eq!(
        code(transactions(&ch, "nope", vec![id.clone()]).await),
        Code::NotFound
    );
    let too_many = vec![id.clone(); 1001];
    for (register, ids) in [
        ("rs", too_many),
        ("rs", vec!["xyz".to_string()]),
        ("rs", vec![String::new()]),
        ("rs", vec!["a".repeat(300)]),
        ("bad/name", vec![id.clone()]),
    ] {
        assert_eq!(
            code(transactions(&ch, register, ids).await),
            Code::InvalidArgument
        );
    }

    assert_eq!(
        code(subscribe(&ch, subscription("nope", 0)).await),
        Code::NotFound
    );
    let filtered =
        |types: Vec<String>, participants: Vec<String>| pb::RegisterSubscriptionRequest {
            filters: Some(pb::RegisterSubscriptionFilters {
                transaction_types: types,
                participant_ids: participants,
            }),
            ..subscription("rs", 0)
        };
    for bad in [
        subscription("rs", -1),
        subscription("", 0),
        filtered(vec!["payment".into()], vec![]),
        filtered(vec![], vec!["alice".into()]),
    ] {
        assert_eq!(code(subscribe(&ch, bad).await), Code::InvalidArgument);
    }
    // Empty filters are no filters.
    let mut fine = subscribe(&ch, filtered(vec![], vec![]))
        .await
        .expect("subscribe");
    assert_eq!(next_event(&mut fine).await.transaction_id, id);

    assert_eq!(code(status(&ch, "nope").await), Code::NotFound);
    assert_eq!(code(status(&ch, "").await), Code::InvalidArgument);
    assert_eq!(code(status(&ch, &long).await), Code::InvalidArgument);
    // Nothing changed.
    let after = status(&ch, "rs").await.expect("status");
    assert_eq!((after.latest_version, after.total_dockets), (1, 2));
    a.stop().await;
}
