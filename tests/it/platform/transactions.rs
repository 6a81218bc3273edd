//! `TransactionDistribution` on real nodes: a submission at a replica spreads to the origin and
//! is sealed; notifications, lookups and chunked streams answer from the transaction pool; a
//! submission the node does not take is answered `accepted: false`; bad input is refused and
//! changes nothing.

use futures::TryStreamExt;
use sorcha_peer::ledger::tx_id;
use sorcha_peer::platform::pb::transaction as pb;
use sorcha_peer::platform::pb::transaction::transaction_distribution_client::TransactionDistributionClient;
use tonic::Code;
use tonic::transport::Channel;

use super::{code, now_ms, platform, platform_follower, platform_on};
use crate::common::{PATIENCE, TestCluster, replicate_along};

fn client(channel: &Channel) -> TransactionDistributionClient<Channel> {
    TransactionDistributionClient::new(channel.clone())
        .max_decoding_message_size(16 * 1024 * 1024)
        .max_encoding_message_size(16 * 1024 * 1024)
}

fn submission(register: &str, json: &[u8]) -> pb::SubmitTransactionRequest {
    pb::SubmitTransactionRequest {
        register_id: register.into(),
        submission_json: json.to_vec(),
        origin_peer_id: "blueprint-service".into(),
        submitted_at_unix_ms: now_ms(),
    }
}

async fn submit(
    channel: &Channel,
    request: pb::SubmitTransactionRequest,
) -> Result<pb::SubmitTransactionResponse, tonic::Status> {
    client(channel)
        .submit_transaction(request)
        .await
        .map(|r| r.into_inner())
}

fn notification(register: &str, hash: &str) -> pb::TransactionNotification {
    pb::TransactionNotification {
        transaction_hash: hash.into(),
        sender_peer_id: "old-node".into(),
        timestamp: now_ms() / 1000,
        transaction_size: 10,
        register_id: register.into(),
    }
}

async fn notify(
    channel: &Channel,
    request: pb::TransactionNotification,
) -> Result<pb::NotificationAck, tonic::Status> {
    client(channel)
        .notify_transaction(request)
        .await
        .map(|r| r.into_inner())
}

fn lookup(register: &str, hash: &str) -> pb::TransactionRequest {
    pb::TransactionRequest {
        transaction_hash: hash.into(),
        requesting_peer_id: "old-node".into(),
        register_id: register.into(),
    }
}

async fn get(
    channel: &Channel,
    request: pb::TransactionRequest,
) -> Result<pb::TransactionResponse, tonic::Status> {
    client(channel)
        .get_transaction(request)
        .await
        .map(|r| r.into_inner())
}

async fn chunks(
    channel: &Channel,
    request: pb::TransactionRequest,
) -> Result<Vec<pb::TransactionChunk>, tonic::Status> {
    let stream = client(channel)
        .stream_transaction(request)
        .await?
        .into_inner();
    stream.try_collect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_distribution_submits_spreads_and_serves_transactions() {
    let mut net = TestCluster::new();
    let mut a = net.start(platform_on).await;
    let mut b = platform_follower(&mut net, &a).await;
    a.client.create_register("td", true).await.expect("create");
    let first = a
        .client
        .submit("td", b"{\"first\":1}".to_vec())
        .await
        .expect("submit");
    a.wait_sealed("td", &first.transaction_id, PATIENCE).await;
    replicate_along(&[&a, &b], "td").await;
    let (on_a, on_b) = (platform(&a).await, platform(&b).await);

    // Submitted at the replica: pending there, gossiped to the origin, sealed, replicated.
    let json = br#"{"blueprintId":"bp-1","payload":"hello"}"#;
    let answer = submit(&on_b, submission("td", json)).await.expect("submit");
    assert!(answer.accepted, "{answer:?}");
    assert!(answer.reject_reason.is_empty());
    assert!(!answer.receiver_is_validator);
    let id = tx_id(json);
    a.wait_sealed("td", &id, PATIENCE).await;
    b.wait_sealed("td", &id, PATIENCE).await;
    // At the origin the receiver is the validator; the same submission again changes nothing.
    let again = submit(&on_a, submission("td", json)).await.expect("submit");
    assert!(again.accepted && again.receiver_is_validator);

    // Notifications: known with or without the register; unknown, the node will take it.
    let known = notify(&on_b, notification("td", &id)).await.expect("ack");
    assert!(known.already_known && !known.will_request);
    let known = notify(&on_b, notification("", &id)).await.expect("ack");
    assert!(known.already_known);
    let other = "cd".repeat(32);
    let new = notify(&on_b, notification("td", &other))
        .await
        .expect("ack");
    assert!(!new.already_known && new.will_request);
    let oversized = pb::TransactionNotification {
        transaction_size: 2 * 1024 * 1024,
        ..notification("td", &other)
    };
    let too_big = notify(&on_b, oversized).await.expect("ack");
    assert!(!too_big.already_known && !too_big.will_request);

    // Lookups, with and without the register.
    let found = get(&on_b, lookup("td", &id)).await.expect("get");
    assert!(found.found);
    assert_eq!(found.transaction_data, json);
    assert_eq!(found.transaction_hash, id);
    let found = get(&on_a, lookup("", &id.to_uppercase()))
        .await
        .expect("get");
    assert_eq!(found.transaction_data, json);
    let missing = get(&on_a, lookup("td", &other)).await.expect("get");
    assert!(!missing.found && missing.transaction_data.is_empty());

    // A large transaction streamed in bounded chunks.
    let big = format!("{{\"pad\":\"{}\"}}", "y".repeat(200 * 1024)).into_bytes();
    let answer = submit(&on_a, submission("td", &big)).await.expect("submit");
    assert!(answer.accepted);
    let parts = chunks(&on_b, lookup("", &tx_id(&big))).await;
    let parts = match parts {
        // Not replicated to B yet: the origin has it.
        Err(_) => chunks(&on_a, lookup("td", &tx_id(&big)))
            .await
            .expect("chunks"),
        Ok(parts) => parts,
    };
    let expected = big.len().div_ceil(64 * 1024);
    assert_eq!(parts.len(), expected);
    let mut joined = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part.chunk_index, i as i32);
        assert_eq!(part.total_chunks, expected as i32);
        assert!(part.chunk_data.len() <= 64 * 1024);
        joined.extend_from_slice(&part.chunk_data);
    }
    assert_eq!(joined, big);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn transaction_distribution_refuses_bad_input_and_changes_nothing() {
    let mut net = TestCluster::new();
    let mut a = net.start(platform_on).await;
    a.client.create_register("td", false).await.expect("create");
    let held = a
        .client
        .submit("td", b"{\"held\":1}".to_vec())
        .await
        .expect("submit");
    a.wait_sealed("td", &held.transaction_id, PATIENCE).await;
    let ch = platform(&a).await;
    let before = a.register("td").await.expect("held");
    let long = "z".repeat(300);

    // Well-formed, not taken: answered, with the reason.
    let elsewhere = submit(&ch, submission("other", b"{}"))
        .await
        .expect("answered");
    assert!(!elsewhere.accepted && elsewhere.reject_reason.contains("does not carry"));
    let huge = format!("{{\"pad\":\"{}\"}}", "q".repeat(1024 * 1024)).into_bytes();
    let too_large = submit(&ch, submission("td", &huge))
        .await
        .expect("answered");
    assert!(!too_large.accepted, "{too_large:?}");
    assert!(too_large.reject_reason.contains("max_transaction_size"));
    assert!(too_large.receiver_is_validator);
    // Malformed: refused.
    for bad in [
        submission("td", b""),
        submission("td", b"not json"),
        submission("td", b"[1,2]"),
        submission("bad/name", b"{}"),
        submission("", b"{}"),
        pb::SubmitTransactionRequest {
            origin_peer_id: long.clone(),
            ..submission("td", b"{}")
        },
        pb::SubmitTransactionRequest {
            submitted_at_unix_ms: -1,
            ..submission("td", b"{}")
        },
    ] {
        assert_eq!(code(submit(&ch, bad).await), Code::InvalidArgument);
    }

    let id = held.transaction_id.clone();
    assert_eq!(
        code(notify(&ch, notification("nope", &id)).await),
        Code::NotFound
    );
    for bad in [
        notification("td", "xyz"),
        notification("td", ""),
        notification("td", &long),
        notification("bad/name", &id),
        pb::TransactionNotification {
            transaction_size: -5,
            ..notification("td", &id)
        },
        pb::TransactionNotification {
            sender_peer_id: long.clone(),
            ..notification("td", &id)
        },
    ] {
        assert_eq!(code(notify(&ch, bad).await), Code::InvalidArgument);
    }

    assert_eq!(code(get(&ch, lookup("nope", &id)).await), Code::NotFound);
    assert_eq!(code(chunks(&ch, lookup("nope", &id)).await), Code::NotFound);
    let unknown = "ef".repeat(32);
    assert_eq!(
        code(chunks(&ch, lookup("td", &unknown)).await),
        Code::NotFound
    );
    for bad in [
        lookup("td", "g".repeat(64).as_str()),
        lookup("td", ""),
        lookup("td", &"ab".repeat(33)),
        pb::TransactionRequest {
            requesting_peer_id: long.clone(),
            ..lookup("td", &id)
        },
    ] {
        assert_eq!(code(get(&ch, bad.clone()).await), Code::InvalidArgument);
        assert_eq!(code(chunks(&ch, bad).await), Code::InvalidArgument);
    }

    // Nothing was stored by any of them.
    let after = a.register("td").await.expect("held");
    assert_eq!(after.latest_version, before.latest_version);
    assert_eq!(after.pending_transactions, before.pending_transactions);
    let metrics = a.client.metrics().await.expect("metrics");
    assert!(
        metrics.contains("limit=\"max_transaction_size\""),
        "{metrics}"
    );
    a.stop().await;
}
