//! Memory held for strangers: tonic buffers a gRPC message whole, so a peer that announces a
//! large message and sends all but its last byte makes the node hold it. Hand-built peers
//! write the gRPC framing by hand; the node refuses large messages before a session and, in
//! sessions, lets large messages in only within one shared budget of bytes in flight, while
//! honest nodes and the admin API keep working.

use std::time::Duration;

use sorcha_peer::identity::Identity;
use sorcha_peer::rpc::MAX_MESSAGE_SIZE;
use sorcha_peer::rpc::budget::SMALL_MESSAGE;
use tonic::codegen::Bytes;
use tonic::transport::Channel;

use crate::common::stranger::{self, Claims, RawSession};
use crate::common::{PATIENCE, TestCluster, TestNode, metric, wait_until};

async fn channel_from(node: &TestNode, from: &str, me: &Identity) -> Channel {
    stranger::channel_from(node.peer_addr, from, me)
        .await
        .expect("connect")
}

async fn metrics_of(node: &TestNode) -> String {
    node.client.metrics().await.expect("metrics")
}

async fn is_connected(node: &TestNode, peer_id: &str) -> bool {
    node.client
        .peers(Some("connected"), None, None)
        .await
        .expect("peers")
        .iter()
        .any(|p| p.peer_id == peer_id)
}

async fn limit_hits(node: &TestNode, limit: &str) -> f64 {
    let name = format!("sorcha_peer_limit_hits_total{{limit=\"{limit}\"}}");
    metric(&metrics_of(node).await, &name)
}

async fn in_flight(node: &TestNode) -> f64 {
    metric(
        &metrics_of(node).await,
        "sorcha_peer_inbound_bytes_in_flight",
    )
}

/// Starts a node seeded with `victim` and waits until the victim lists it as connected.
async fn honest_node_connects(net: &mut TestCluster, victim: &TestNode) -> TestNode {
    let honest = net.start(|c| c.seeds = vec![victim.seed()]).await;
    let id = honest.peer_id.clone();
    wait_until("the honest node is connected", PATIENCE, || async {
        is_connected(victim, &id).await
    })
    .await;
    honest
}

/// The attack of issue 16: a stranger with a throwaway certificate announces 16 MiB messages
/// on every stream it may open (height queries, and a session before its handshake) and sends
/// part of each, never the last byte. The node refuses each one at its prefix, while the body
/// is still open, instead of waiting to buffer it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_before_a_session_are_refused_at_their_prefix() {
    let mut net = TestCluster::new();
    let mut victim = net.start(|_| {}).await;
    let me = Identity::generate();
    let queries = channel_from(&victim, "127.0.0.230", &me).await;
    let mut calls = Vec::new();
    for _ in 0..sorcha_peer::rpc::MAX_STREAMS_PER_CONNECTION {
        calls.push(stranger::raw_call(queries.clone(), "GetRegisterHeights"));
    }
    for call in &calls {
        call.body
            .send(stranger::grpc_prefix(MAX_MESSAGE_SIZE as u32))
            .await
            .expect("the prefix goes out");
        // Refused streams stop taking bytes: a failed send is the node saying no.
        let _ = call.body.send(Bytes::from(vec![0u8; 256 * 1024])).await;
    }
    for call in calls {
        let body = call.body;
        let response = tokio::time::timeout(PATIENCE, call.response)
            .await
            .expect("the node answers before the message is whole")
            .expect("the call task")
            .expect("a response while the body is still open");
        let status = tonic::Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        drop(body);
    }
    // A session stream gets no further: a 16 MiB `Hello` is refused the same way.
    let session = stranger::raw_call(channel_from(&victim, "127.0.0.230", &me).await, "Session");
    session
        .body
        .send(stranger::grpc_prefix(MAX_MESSAGE_SIZE as u32))
        .await
        .expect("the prefix goes out");
    let _ = session.body.send(Bytes::from(vec![0u8; 256 * 1024])).await;
    let (_body, mut incoming) = stranger::raw_frames(session)
        .await
        .expect("a session stream");
    let goodbye = tokio::time::timeout(PATIENCE, incoming.message())
        .await
        .expect("the node answers before the message is whole")
        .expect("a frame")
        .and_then(|frame| frame.body);
    match goodbye {
        Some(sorcha_peer::protocol::pb::frame::Body::Goodbye(g)) => {
            assert!(g.reason.contains("before a session"), "{}", g.reason)
        }
        other => panic!("expected a goodbye, got {other:?}"),
    }
    assert_eq!(limit_hits(&victim, "pre_session_message_size").await, 5.0);
    assert_eq!(in_flight(&victim).await, 0.0);
    // Small messages still pass before a session: a real height query is answered.
    let heights = sorcha_peer::rpc::HeightsClient {
        transport: std::sync::Arc::new(
            sorcha_peer::transport::Transport::new(sorcha_peer::config::PeerTls::NodeKey, &me)
                .expect("transport"),
        ),
    };
    let remote = sorcha_peer::service::lag::HeightsProbe::heights(
        &heights,
        &victim.seed(),
        vec![("open".into(), 0)],
        PATIENCE,
    )
    .await
    .expect("heights");
    assert_eq!(remote.peer_id, victim.peer_id);
    let mut honest = honest_node_connects(&mut net, &victim).await;
    honest.stop().await;
    victim.stop().await;
}

/// A stranger who has completed a handshake half-sends a large message: it holds its
/// declared size of the shared budget, a second stranger's large message no longer fits and
/// is refused (its session ends), honest nodes still connect, and the budget comes back when
/// the first message is whole, with that session carrying on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_in_sessions_share_one_budget_and_past_it_are_refused() {
    let mut net = TestCluster::new();
    let mut victim = net
        .start(|c| {
            c.max_inbound_bytes_in_flight = 1024 * 1024;
            // A peer cannot answer pings in the middle of a message; keep it for the test.
            c.missed_heartbeats = 10_000;
        })
        .await;
    let first = raw_session(&victim, "127.0.0.231").await;
    let large = stranger::padded_pong(700 * 1024);
    let declared = (large.len() - 5) as f64;
    assert!(declared > SMALL_MESSAGE as f64);
    let (sent, rest) = (large.slice(..300 * 1024), large.slice(300 * 1024..));
    first.body.send(sent).await.expect("send");
    wait_until("the half-sent message holds its size", PATIENCE, || async {
        in_flight(&victim).await == declared
    })
    .await;

    let second = raw_session(&victim, "127.0.0.232").await;
    let too_much = stranger::padded_pong(400 * 1024);
    // Refused at the prefix: the rest may no longer be taken.
    let _ = second.body.send(too_much).await;
    wait_until("the second large message is refused", PATIENCE, || async {
        limit_hits(&victim, "max_inbound_bytes_in_flight").await == 1.0
    })
    .await;
    wait_until("the refused session has ended", PATIENCE, || async {
        !is_connected(&victim, &second.peer_id).await
    })
    .await;
    assert_eq!(in_flight(&victim).await, declared);
    let mut honest = honest_node_connects(&mut net, &victim).await;

    first.body.send(rest).await.expect("send");
    wait_until("the budget is given back", PATIENCE, || async {
        in_flight(&victim).await == 0.0
    })
    .await;
    assert!(is_connected(&victim, &first.peer_id).await);
    // With the budget free, the message refused before is taken whole from a third stranger.
    let third = raw_session(&victim, "127.0.0.233").await;
    let fits = stranger::padded_pong(400 * 1024);
    let fits_declared = (fits.len() - 5) as f64;
    third.body.send(fits.slice(..1024)).await.expect("send");
    wait_until("the third message holds its size", PATIENCE, || async {
        in_flight(&victim).await == fits_declared
    })
    .await;
    third.body.send(fits.slice(1024..)).await.expect("send");
    wait_until("the budget is given back again", PATIENCE, || async {
        in_flight(&victim).await == 0.0
    })
    .await;
    assert_eq!(
        limit_hits(&victim, "max_inbound_bytes_in_flight").await,
        1.0
    );
    assert!(is_connected(&victim, &third.peer_id).await);
    drop((first, second, third));
    honest.stop().await;
    victim.stop().await;
}

/// The answers of a peer this node dials are read the same way: a hand-built acceptor that
/// answers the `Hello` with a 16 MiB message it never finishes is refused at the prefix (the
/// dial fails as soon as it is refused, not when the handshake times out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialled_peer_cannot_half_send_a_large_answer() {
    let mut net = TestCluster::new();
    let mut victim = net
        .start(|c| {
            c.peer_tls = sorcha_peer::config::PeerTls::Off;
            c.connect_timeout = Duration::from_secs(60);
        })
        .await;
    let answer = vec![
        stranger::grpc_prefix(MAX_MESSAGE_SIZE as u32),
        Bytes::from(vec![0u8; 256 * 1024]),
    ];
    let (acceptor, _serving) = stranger::raw_acceptor("127.0.0.234", answer).await;
    let dial = tokio::time::timeout(PATIENCE, victim.client.connect_peer(&acceptor.to_string()))
        .await
        .expect("the dial ends before its handshake deadline");
    assert!(dial.is_err(), "{dial:?}");
    assert_eq!(limit_hits(&victim, "pre_session_message_size").await, 1.0);
    assert_eq!(in_flight(&victim).await, 0.0);
    victim.stop().await;
}

async fn raw_session(node: &TestNode, from: &str) -> RawSession {
    let me = Identity::generate();
    let channel = channel_from(node, from, &me).await;
    let session = stranger::open_raw_session(channel, &me, &Claims::default())
        .await
        .expect("handshake");
    let id = session.peer_id.clone();
    wait_until("the stranger is connected", PATIENCE, || async {
        is_connected(node, &id).await
    })
    .await;
    session
}
