//! `DocketSyncService` as the Register service's recovery calls it: the head, then the
//! dockets after its own, chained, with the transactions as the platform's records.

use sorcha_peer::platform::pb::docket_sync::SyncDocketEntry;
use sorcha_peer::platform::pb::sync::RegisterSubscriptionRequest;
use sorcha_peer::platform::pb::sync::register_sync_client::RegisterSyncClient;
use tonic::Code;

use super::{code, latest, platform, platform_follower, platform_on, sync, sync_request};
use crate::common::{PATIENCE, TestCluster, replicate_along, wait_until};

/// Checks what the Register service relies on: numbers from 1 in order, each entry chained to
/// the one before, the origin as validator, and `docket_data` a JSON list of records whose
/// count is `transaction_count`. Returns the transaction IDs in the order they came.
fn check_chain(entries: &[SyncDocketEntry], origin: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.docket_number, i as i64 + 1);
        assert_eq!(e.docket_hash.len(), 64);
        assert_eq!(e.merkle_root.len(), 64);
        if i > 0 {
            assert_eq!(e.previous_docket_hash, entries[i - 1].docket_hash);
        }
        assert_eq!(e.validator_id, origin);
        assert!(!e.validator_signature.is_empty() && e.sealed_at.is_some());
        let records: Vec<serde_json::Value> =
            serde_json::from_slice(&e.docket_data).expect("docket_data is a JSON list");
        assert_eq!(records.len() as i32, e.transaction_count);
        for r in records {
            assert_eq!(r["registerId"], "plat");
            assert_eq!(r["docketNumber"], e.docket_number);
            assert!(r["payloads"][0]["data"].is_string());
            seen.push(r["txId"].as_str().expect("txId").to_string());
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn docket_sync_streams_the_chain_as_the_register_service_reads_it() {
    let mut net = TestCluster::new();
    let mut a = net.start(platform_on).await;
    let mut b = platform_follower(&mut net, &a).await;
    a.client
        .create_register("plat", true)
        .await
        .expect("create");
    let mut ids = Vec::new();
    for i in 0..5 {
        let payload = format!("payload {i}").into_bytes();
        let tx = a.client.submit("plat", payload).await.expect("submit");
        // Sealed one by one, so the chain has several dockets.
        a.wait_sealed("plat", &tx.transaction_id, PATIENCE).await;
        ids.push(tx.transaction_id);
    }
    replicate_along(&[&a, &b], "plat").await;
    let head = a
        .register("plat")
        .await
        .expect("held")
        .latest_docket_version as i64;
    assert!(head >= 2, "several dockets");
    let on_a = platform(&a).await;

    let answer = latest(&on_a, "plat").await.expect("latest");
    assert_eq!(answer.latest_docket_number, head);
    assert_eq!(answer.source_peer_id, a.peer_id);
    assert!(answer.network_available);
    assert!(answer.queried_at.is_some());

    // The Register service's recovery: from its height − 1 (exclusive) to the head.
    let entries = sync(&on_a, sync_request("plat", 0, head, 100))
        .await
        .expect("sync");
    assert_eq!(entries.len() as i64, head);
    assert_eq!(
        check_chain(&entries, &a.peer_id),
        ids,
        "each once, in order"
    );

    // A replica serves the same chain, and paging follows max_count.
    let on_b = platform(&b).await;
    let answer = latest(&on_b, "plat").await.expect("latest");
    assert!(answer.network_available);
    assert_eq!(answer.source_peer_id, b.peer_id);
    let first = sync(&on_b, sync_request("plat", 0, 0, 1))
        .await
        .expect("sync");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].docket_hash, entries[0].docket_hash);
    let rest = sync(&on_b, sync_request("plat", 1, 0, 0))
        .await
        .expect("sync");
    assert_eq!(rest.len() as i64, head - 1);
    assert_eq!(rest[0].previous_docket_hash, entries[0].docket_hash);
    let at_head = sync(&on_b, sync_request("plat", head, 0, 0)).await;
    assert_eq!(at_head.expect("level").len(), 0);

    // A forward-only replica holds the chain from its anchor: older dockets are refused.
    let mut c = platform_follower(&mut net, &a).await;
    wait_until("C to see the register", PATIENCE, || async {
        c.client.subscribe("plat", "forward-only").await.is_ok()
    })
    .await;
    wait_until("C to follow the register", PATIENCE, || async {
        c.register("plat")
            .await
            .is_some_and(|r| r.sync_state == "active")
    })
    .await;
    let on_c = platform(&c).await;
    assert!(
        latest(&on_c, "plat")
            .await
            .expect("latest")
            .network_available
    );
    let before = sync(&on_c, sync_request("plat", 0, 0, 0)).await;
    assert_eq!(code(before), Code::FailedPrecondition);
    // Nor are its transactions streamed from before its anchor (RegisterSync).
    let live = RegisterSyncClient::new(on_c.clone())
        .subscribe_to_register(RegisterSubscriptionRequest {
            register_id: "plat".into(),
            from_version: 0,
            ..Default::default()
        })
        .await;
    assert_eq!(code(live), Code::FailedPrecondition);
    c.stop().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docket_sync_refuses_bad_input_with_the_right_status() {
    let mut net = TestCluster::new();
    let mut a = net.start(platform_on).await;
    a.client
        .create_register("plat", false)
        .await
        .expect("create");
    let on_a = platform(&a).await;
    // A private register is the platform's own: it is served here.
    assert_eq!(code(latest(&on_a, "plat").await), Code::Ok);
    assert_eq!(code(latest(&on_a, "nope").await), Code::NotFound);
    assert_eq!(code(latest(&on_a, "bad/name").await), Code::InvalidArgument);
    assert_eq!(code(latest(&on_a, "").await), Code::InvalidArgument);
    let unknown = sync(&on_a, sync_request("nope", 0, 0, 0)).await;
    assert_eq!(code(unknown), Code::NotFound);
    for bad in [
        sync_request("plat", -1, 0, 0),
        sync_request("plat", 0, -1, 0),
        sync_request("plat", 0, 0, -5),
        sync_request("plat", 3, 3, 0),
        sync_request("plat", 4, 2, 0),
        sync_request(&"x".repeat(300), 0, 0, 0),
    ] {
        assert_eq!(code(sync(&on_a, bad).await), Code::InvalidArgument);
    }
    a.stop().await;
}
