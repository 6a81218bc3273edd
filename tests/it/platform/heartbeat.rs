//! `PeerHeartbeat`: this node's registers and health in every answer, unary and streamed.

use futures::StreamExt;
use sorcha_peer::platform::pb::heartbeat;
use tonic::Code;

use super::{beat, code, now_ms, platform, platform_on};
use crate::common::{PATIENCE, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_answer_with_registers_and_health() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            platform_on(c);
            c.max_advertised_registers = 5;
        })
        .await;
    a.client
        .create_register("open", true)
        .await
        .expect("create");
    a.client
        .create_register("closed", false)
        .await
        .expect("create");
    let tx = a
        .client
        .submit("open", b"one".to_vec())
        .await
        .expect("submit");
    a.wait_sealed("open", &tx.transaction_id, PATIENCE).await;
    let mut client = heartbeat::peer_heartbeat_client::PeerHeartbeatClient::new(platform(&a).await);

    let answer = client
        .send_heartbeat(beat(1, 2))
        .await
        .expect("heartbeat")
        .into_inner();
    assert!(answer.success);
    assert_eq!(answer.peer_id, a.peer_id);
    assert!((answer.timestamp - now_ms()).abs() < 60_000, "milliseconds");
    assert_eq!(answer.register_versions.get("open"), Some(&1));
    assert_eq!(answer.register_versions.get("closed"), Some(&0));
    let open = answer
        .advertised_registers
        .iter()
        .find(|r| r.register_id == "open")
        .expect("advertised");
    assert!(open.is_public);
    assert_eq!(open.latest_version, 1);
    assert_eq!(
        open.sync_state,
        heartbeat::SyncStateProto::FullyReplicated as i32
    );
    let m = answer.metrics.expect("metrics");
    assert_eq!(m.register_count, 2);
    assert!(m.memory_usage_mb > 0.0, "{m:?}");
    assert!(
        m.disk_usage_percent > 0.0 && m.disk_usage_percent <= 100.0,
        "{m:?}"
    );
    assert!(m.cpu_usage_percent >= 0.0 && m.uptime_seconds >= 0, "{m:?}");
    assert_eq!((m.pending_syncs, m.is_syncing), (0, false));
    let bad = client.send_heartbeat(beat(2, 6)).await;
    assert_eq!(code(bad), Code::InvalidArgument);

    // The stream: one answer per heartbeat; a malformed one ends it with its status.
    let outgoing = futures::stream::iter(vec![beat(1, 1), beat(2, 1), beat(3, 6), beat(4, 1)]);
    let mut answers = client
        .stream_heartbeat(outgoing)
        .await
        .expect("stream")
        .into_inner();
    for _ in 0..2 {
        let answer = answers.next().await.expect("an answer").expect("ok");
        assert_eq!(answer.peer_id, a.peer_id);
    }
    let refused = answers.next().await.expect("a refusal");
    assert_eq!(code(refused), Code::InvalidArgument);
    assert!(answers.next().await.is_none(), "nothing after the refusal");
    a.stop().await;
}
