//! `PeerCommunication`: a Validator-like client broadcasts on one node and a `Stream` client
//! on a node two hops away receives it once; direct sends to a connected and to an unconnected
//! peer; a `Stream` client that sends; and bad input refused by every RPC, changing nothing.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use sorcha_peer::identity::Identity;
use sorcha_peer::messages::{MAX_HOPS, MAX_PAYLOAD_BYTES, PEER_RATE, SUBSCRIBER_QUEUE};
use sorcha_peer::platform::pb::communication::{
    self as pb, MessageType, peer_communication_client::PeerCommunicationClient,
};
use sorcha_peer::protocol::Recipient;
use sorcha_peer::protocol::convert::platform_to_wire;
use sorcha_peer::protocol::pb::frame::Body;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use super::{code, now_ms, platform, platform_on};
use crate::common::stranger::{self, Claims};
use crate::common::{PATIENCE, TestCluster, TestNode, metric, wait_until};

/// A, B and C in a line (A–B–C, peer exchange off), each with its platform listener on.
async fn line(net: &mut TestCluster) -> (TestNode, TestNode, TestNode) {
    let mut nodes: Vec<TestNode> = Vec::new();
    for _ in 0..3 {
        let seed = nodes.last().map(|n| n.seed());
        let node = net
            .start(|c| {
                platform_on(c);
                c.exchange_interval = Duration::ZERO;
                c.seeds = seed.into_iter().collect();
            })
            .await;
        nodes.push(node);
    }
    let c = nodes.pop().expect("c");
    let b = nodes.pop().expect("b");
    let a = nodes.pop().expect("a");
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    c.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    (a, b, c)
}

async fn client(node: &TestNode) -> PeerCommunicationClient<Channel> {
    PeerCommunicationClient::new(platform(node).await)
}

fn message(recipient: &str, kind: MessageType, payload: &[u8]) -> pb::PeerMessage {
    pb::PeerMessage {
        sender_peer_id: "validator-1".into(),
        recipient_peer_id: recipient.into(),
        message_type: kind as i32,
        payload: payload.to_vec(),
        timestamp: now_ms(),
    }
}

/// A `Stream` call: what the client writes goes through `sender`.
struct Listener {
    sender: mpsc::Sender<pb::PeerMessage>,
    incoming: Streaming<pb::PeerMessage>,
}

async fn listen(node: &TestNode) -> Listener {
    let (sender, rx) = mpsc::channel(16);
    let incoming = client(node)
        .await
        .stream(ReceiverStream::new(rx))
        .await
        .expect("stream opened")
        .into_inner();
    Listener { sender, incoming }
}

impl Listener {
    /// The next message delivered (its status when the stream ended with one).
    async fn next(&mut self) -> Result<pb::PeerMessage, tonic::Status> {
        match tokio::time::timeout(PATIENCE, self.incoming.message()).await {
            Ok(Ok(Some(m))) => Ok(m),
            Ok(Ok(None)) => panic!("the stream ended without a status"),
            Ok(Err(status)) => Err(status),
            Err(_) => panic!("nothing delivered within {PATIENCE:?}"),
        }
    }
}

async fn send(
    client: &mut PeerCommunicationClient<Channel>,
    m: pb::PeerMessage,
) -> Result<bool, tonic::Status> {
    client
        .send_message(m)
        .await
        .map(|r| r.into_inner().received)
}

async fn dropped(node: &TestNode, reason: &str) -> f64 {
    let text = node.client.metrics().await.expect("metrics");
    metric(
        &text,
        &format!("sorcha_peer_platform_messages_dropped_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_crosses_the_line_once_and_direct_sends_reach_only_connected_peers() {
    let mut net = TestCluster::new();
    let (a, b, c) = line(&mut net).await;
    let mut at_b = listen(&b).await;
    let mut at_c = listen(&c).await;
    let mut validator = client(&a).await;

    // The Validator's proposed docket, to every node: B and C get it, from A.
    let proposed = message(
        "*",
        MessageType::TransactionNotification,
        b"proposed docket 7",
    );
    assert!(send(&mut validator, proposed).await.expect("sent"));
    for listener in [&mut at_b, &mut at_c] {
        let got = listener.next().await.expect("delivered");
        assert_eq!(got.sender_peer_id, a.peer_id);
        assert_eq!(got.recipient_peer_id, "*");
        assert_eq!(
            got.message_type,
            MessageType::TransactionNotification as i32
        );
        assert_eq!(got.payload, b"proposed docket 7");
        assert!((got.timestamp - now_ms()).abs() < 60_000, "milliseconds");
    }

    // Direct to B (connected): B only. Direct to C (not connected to A): not delivered.
    let to_b = message(&b.peer_id, MessageType::PeerStatusUpdate, b"for b");
    assert!(send(&mut validator, to_b).await.expect("sent"));
    assert_eq!(at_b.next().await.expect("delivered").payload, b"for b");
    let to_c = message(&c.peer_id, MessageType::PeerStatusUpdate, b"for c");
    assert!(!send(&mut validator, to_c).await.expect("answered"));

    // A Stream client on C sends (a confirmed docket) to every node: A's listener gets it.
    let mut at_a = listen(&a).await;
    let confirmed = message("*", MessageType::TransactionResponse, b"confirmed docket 7");
    at_c.sender.send(confirmed).await.expect("written");
    let got = at_a.next().await.expect("delivered");
    assert_eq!(got.sender_peer_id, c.peer_id);
    assert_eq!(got.payload, b"confirmed docket 7");

    // Once: the next thing C's listener sees is the next broadcast, not a copy of the first
    // nor the message for C that was not delivered.
    let marker = message("*", MessageType::PeerStatusUpdate, b"marker");
    assert!(send(&mut validator, marker).await.expect("sent"));
    assert_eq!(at_c.next().await.expect("delivered").payload, b"marker");
    assert_eq!(
        at_b.next().await.expect("delivered").payload,
        b"confirmed docket 7"
    );
    assert_eq!(at_b.next().await.expect("delivered").payload, b"marker");
    let text = c.client.metrics().await.expect("metrics");
    assert_eq!(
        metric(&text, "sorcha_peer_platform_messages_delivered_total"),
        2.0
    );
}

/// A ring A–B–C–D–A: a broadcast from A reaches C by two paths (and D, after C, by two) and
/// is delivered once on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_around_a_ring_is_delivered_once_on_every_node() {
    let mut net = TestCluster::new();
    let mut nodes: Vec<TestNode> = Vec::new();
    for i in 0..4 {
        let mut seeds: Vec<String> = nodes.last().map(|n| n.seed()).into_iter().collect();
        if i == 3 {
            seeds.push(nodes[0].seed());
        }
        let node = net
            .start(|c| {
                platform_on(c);
                c.exchange_interval = Duration::ZERO;
                c.seeds = seeds;
            })
            .await;
        nodes.push(node);
    }
    for (x, y) in [(0, 1), (1, 2), (2, 3), (3, 0)] {
        nodes[x]
            .wait_for_state(&nodes[y].peer_id, "connected", PATIENCE)
            .await;
    }
    let mut listeners = Vec::new();
    for node in &nodes[1..] {
        listeners.push(listen(node).await);
    }
    let mut validator = client(&nodes[0]).await;
    let proposed = message("*", MessageType::TransactionNotification, b"proposed");
    assert!(send(&mut validator, proposed).await.expect("sent"));
    for listener in &mut listeners {
        assert_eq!(
            listener.next().await.expect("delivered").payload,
            b"proposed"
        );
    }
    // Whichever way the copies raced, one at least came to a node that had it already.
    wait_until("a second copy to be recognised", PATIENCE, || async {
        let mut duplicates = 0.0;
        for node in &nodes[1..] {
            duplicates += dropped(node, "duplicate").await;
        }
        duplicates >= 1.0
    })
    .await;
    let marker = message("*", MessageType::PeerStatusUpdate, b"marker");
    assert!(send(&mut validator, marker).await.expect("sent"));
    for listener in &mut listeners {
        assert_eq!(listener.next().await.expect("delivered").payload, b"marker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_by_every_rpc_and_changes_nothing() {
    let mut net = TestCluster::new();
    let (a, b, _c) = line(&mut net).await;
    let mut at_b = listen(&b).await;
    let mut validator = client(&a).await;

    let oversized = message(
        "*",
        MessageType::TransactionNotification,
        &vec![7; MAX_PAYLOAD_BYTES + 1],
    );
    let refused = send(&mut validator, oversized.clone()).await;
    assert_eq!(code(refused), Code::InvalidArgument);
    for recipient in ["", "someone", "ABCDEF0123456789ABCDEF0123456789"] {
        let bad = message(recipient, MessageType::TransactionNotification, b"x");
        let status = send(&mut validator, bad).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{recipient:?}");
        assert!(
            status.message().contains("recipient_peer_id"),
            "{}",
            status.message()
        );
    }
    let mut unknown = message("*", MessageType::Unknown, b"x");
    assert_eq!(
        code(send(&mut validator, unknown.clone()).await),
        Code::InvalidArgument
    );
    unknown.message_type = 99;
    assert_eq!(
        code(send(&mut validator, unknown).await),
        Code::InvalidArgument
    );

    // On a Stream, bad input ends the stream with its status.
    let mut writer = listen(&a).await;
    writer.sender.send(oversized).await.expect("written");
    let status = writer.next().await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("payload"), "{}", status.message());

    // Nothing of it went anywhere: B's next message is the good one sent after.
    let good = message("*", MessageType::PeerStatusUpdate, b"good");
    assert!(send(&mut validator, good).await.expect("sent"));
    assert_eq!(at_b.next().await.expect("delivered").payload, b"good");
    assert_eq!(dropped(&b, "malformed").await, 0.0);
}

/// A platform message frame as a hand-built peer sends it, signed by `origin`.
fn frame(origin: &SigningKey, nonce: u64, recipient: &str, payload: &[u8], at: i64) -> Body {
    let mut m = sorcha_peer::protocol::PlatformMessage {
        origin: String::new(),
        nonce,
        recipient: Recipient::parse(recipient).expect("a recipient"),
        message_type: MessageType::TransactionNotification as i32,
        payload: payload.to_vec(),
        timestamp_ms: at,
        hops_left: MAX_HOPS,
        origin_key: [0; 32],
        signature: Vec::new(),
    };
    m.sign(origin);
    Body::PlatformMessage(platform_to_wire(&m))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn a_hand_built_peer_gets_no_messages_unasked_and_cannot_replay_forge_or_flood_them() {
    let mut net = TestCluster::new();
    // Heartbeats slower than the tests' usual: the peer's pongs wait behind its own flood.
    let victim = net
        .start(|c| {
            platform_on(c);
            c.heartbeat_interval = Duration::from_secs(2);
        })
        .await;
    let mut reader = listen(&victim).await;
    let me = Identity::generate();
    let from = net.ip();
    let channel = stranger::channel_from(victim.peer_addr, &from, &me)
        .await
        .expect("connect");
    let peer = stranger::open_session(channel, &me, &Claims::default())
        .await
        .expect("handshake")
        .answering();
    let origin = me.signing_key().clone();

    // It did not say it carries platform messages (as an older node would not): nothing is
    // sent to it, though it is connected.
    victim
        .wait_for_state(&peer.peer_id, "connected", PATIENCE)
        .await;
    let to_it = message(&peer.peer_id, MessageType::PeerStatusUpdate, b"for you");
    let mut platform = client(&victim).await;
    assert!(!send(&mut platform, to_it).await.expect("answered"));

    // A good message is delivered, with its origin.
    let first = frame(&origin, 1, "*", b"first", now_ms());
    peer.send(first.clone()).await.expect("sent");
    let got = reader.next().await.expect("delivered");
    assert_eq!(
        (got.sender_peer_id.as_str(), got.payload.as_slice()),
        (peer.peer_id.as_str(), &b"first"[..])
    );

    // Replayed (the hop count changed), oversized, stale, misdirected and forged ones are not.
    peer.send(first.clone()).await.expect("sent");
    let Body::PlatformMessage(mut hopped) = first else {
        unreachable!()
    };
    hopped.hops_left = 2;
    peer.send(Body::PlatformMessage(hopped))
        .await
        .expect("sent");
    let huge = vec![0; MAX_PAYLOAD_BYTES + 1];
    peer.send(frame(&origin, 2, "*", &huge, now_ms()))
        .await
        .expect("sent");
    let old = now_ms() - 10 * 60 * 1000;
    peer.send(frame(&origin, 3, "*", b"old", old))
        .await
        .expect("sent");
    let elsewhere = Identity::generate().peer_id().to_string();
    peer.send(frame(&origin, 4, &elsewhere, b"not yours", now_ms()))
        .await
        .expect("sent");
    let Body::PlatformMessage(mut forged) = frame(&origin, 5, "*", b"forged", now_ms()) else {
        unreachable!()
    };
    forged.origin_peer_id = elsewhere.clone();
    peer.send(Body::PlatformMessage(forged))
        .await
        .expect("sent");
    peer.send(frame(&origin, 6, "*", b"marker", now_ms()))
        .await
        .expect("sent");
    assert_eq!(reader.next().await.expect("delivered").payload, b"marker");
    for (reason, count) in [
        ("duplicate", 2.0),
        ("malformed", 1.0),
        ("stale", 1.0),
        ("misdirected", 1.0),
        ("forged", 1.0),
    ] {
        assert_eq!(dropped(&victim, reason).await, count, "{reason}");
    }

    // A flood from many origins (each a key of its own) meets the per-peer rate; the readers,
    // which read nothing meanwhile, fall behind and are dropped.
    let flood = 2 * (PEER_RATE * 2.0) as u64;
    let payload = vec![1; 32 * 1024];
    for i in 0..flood {
        let mut seed = [9u8; 32];
        seed[..8].copy_from_slice(&i.to_le_bytes());
        peer.send(frame(
            &SigningKey::from_bytes(&seed),
            i,
            "*",
            &payload,
            now_ms(),
        ))
        .await
        .expect("sent");
    }
    wait_until("the flood to meet the per-peer rate", PATIENCE, || async {
        dropped(&victim, "peer_rate").await >= 1.0
    })
    .await;
    let text = victim.client.metrics().await.expect("metrics");
    assert!(
        metric(
            &text,
            "sorcha_peer_limit_hits_total{limit=\"platform_message_rate\"}"
        ) >= 1.0
    );
    assert!(dropped(&victim, "slow_reader").await >= 1.0);
    let mut read = 0;
    let status = loop {
        match reader.next().await {
            Ok(_) => read += 1,
            Err(status) => break status,
        }
        assert!(read <= flood, "the stream was never ended");
    };
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        read >= SUBSCRIBER_QUEUE as u64,
        "what was queued is read first ({read})"
    );
    // The node still answers: a new reader gets the next message once the peer's bucket has
    // refilled (sent again, as another message, until then).
    let mut again = listen(&victim).await;
    let start = std::time::Instant::now();
    for nonce in 7.. {
        assert!(
            start.elapsed() < PATIENCE,
            "no message reached a new reader"
        );
        let message = frame(&origin, nonce, "*", b"after", now_ms());
        peer.send(message).await.expect("sent");
        let next = tokio::time::timeout(Duration::from_millis(200), again.incoming.message());
        if let Ok(Ok(Some(m))) = next.await {
            assert_eq!(m.payload, b"after");
            break;
        }
    }
}
