//! A hand-built peer that lies about who it is, or speaks garbage, gets nowhere.

use sorcha_peer::config::PeerTls;
use sorcha_peer::identity::{self, Identity, Role, peer_id_for};
use sorcha_peer::protocol::pb::{self, frame::Body, peer_session_client::PeerSessionClient};
use sorcha_peer::transport::Transport;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::common::hostile::{info, session_as};
use crate::common::{HEARTBEAT, TestCluster, TestNode, metric};

/// Runs a handshake where the dialler presents `claimed` key bytes but signs with `signer`
/// (and, over TLS, proves `signer`'s key in its certificate). Returns the frames the node sent
/// back.
async fn attempt(
    node: &TestNode,
    tls: PeerTls,
    claimed: Vec<u8>,
    signer: &Identity,
    version: u32,
) -> Vec<Body> {
    let transport = Transport::new(tls, signer).expect("transport");
    let connection = transport
        .connect(node.peer_addr, None, None)
        .await
        .expect("connect");
    let channel = sorcha_peer::transport::channel(connection.stream, node.peer_addr)
        .await
        .expect("channel");
    let mut client = PeerSessionClient::new(channel);
    let (tx, rx) = mpsc::channel(8);
    let local = info(claimed, version);
    let nonce = identity::nonce();
    tx.send(pb::Frame {
        body: Some(Body::Hello(pb::Hello {
            node_info: local.clone(),
            nonce: nonce.clone(),
            ..Default::default()
        })),
    })
    .await
    .expect("send hello");
    let mut incoming = client
        .session(ReceiverStream::new(rx))
        .await
        .expect("open")
        .into_inner();
    let mut seen = Vec::new();
    while let Ok(Ok(Some(frame))) = tokio::time::timeout(HEARTBEAT * 20, incoming.message()).await {
        let Some(body) = frame.body else { continue };
        if let Body::HelloAck(ack) = &body {
            let t = identity::transcript(&local, &nonce, &ack.node_info, &ack.nonce);
            let signature = signer.sign_transcript(Role::Dialer, &t);
            tx.send(pb::Frame {
                body: Some(Body::Auth(pb::Auth { signature })),
            })
            .await
            .expect("send auth");
        }
        let done = matches!(body, Body::Goodbye(_) | Body::Welcome(_));
        seen.push(body);
        if done {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn a_peer_cannot_claim_an_identity_whose_key_it_does_not_hold() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let victim = Identity::generate();
    let mallory = Identity::generate();

    // Over TLS, Mallory's certificate proves her own key: claiming another is refused at once.
    let frames = attempt(
        &a,
        PeerTls::NodeKey,
        victim.public_key().to_vec(),
        &mallory,
        1,
    )
    .await;
    assert!(
        matches!(frames.as_slice(), [Body::Goodbye(g)] if g.reason.contains("TLS certificate proves")),
        "{frames:?}"
    );
    assert_eq!(
        a.state_of(&peer_id_for(&victim.public_key())).await,
        "unknown"
    );
    let text = a.client.metrics().await.expect("metrics");
    assert_eq!(
        metric(
            &text,
            "sorcha_peer_transport_refusals_total{direction=\"inbound\",reason=\"wrong_key\"}"
        ),
        1.0,
        "{text}"
    );

    // Without TLS the handshake signatures alone catch the forgery: the node answers, then
    // refuses the dialler's signature.
    let mut plain = net.start(|c| c.peer_tls = PeerTls::Off).await;
    let frames = attempt(
        &plain,
        PeerTls::Off,
        victim.public_key().to_vec(),
        &mallory,
        1,
    )
    .await;
    assert!(
        matches!(frames.first(), Some(Body::HelloAck(_))),
        "{frames:?}"
    );
    assert!(
        !frames.iter().any(|f| matches!(f, Body::Welcome(_))),
        "forged identity must not be welcomed: {frames:?}"
    );
    assert_eq!(
        plain.state_of(&peer_id_for(&victim.public_key())).await,
        "unknown"
    );
    plain.stop().await;

    // Garbage node info and an unknown protocol version are refused too.
    let frames = attempt(&a, PeerTls::NodeKey, vec![1, 2, 3], &mallory, 1).await;
    assert!(
        !frames
            .iter()
            .any(|f| matches!(f, Body::Welcome(_) | Body::HelloAck(_))),
        "{frames:?}"
    );
    let frames = attempt(
        &a,
        PeerTls::NodeKey,
        mallory.public_key().to_vec(),
        &mallory,
        99,
    )
    .await;
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Body::Goodbye(g) if g.reason.contains("protocol version"))),
        "{frames:?}"
    );

    // The honest version of the same exchange is welcomed and shows up as a peer.
    let frames = attempt(
        &a,
        PeerTls::NodeKey,
        mallory.public_key().to_vec(),
        &mallory,
        1,
    )
    .await;
    assert!(
        frames.iter().any(|f| matches!(f, Body::Welcome(_))),
        "{frames:?}"
    );
    assert!(a.view_of(mallory.peer_id()).await.is_some());
    assert!(a.client.peers(None, None, None).await.expect("peers").len() == 1);
    a.stop().await;
}

/// A peer announcing transactions for a register this node holds privately gets nothing: the
/// node does not pull (so it cannot be fed data into a private register), but still answers
/// heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_for_private_registers_are_ignored() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    a.client
        .create_register("vault", false)
        .await
        .expect("private register");
    let mallory = Identity::generate();
    let (tx, mut incoming) = session_as(&a, &mallory).await;
    let announce = Body::Announce(pb::Announce {
        register_id: "vault".into(),
        tx_ids: vec![sorcha_peer::ledger::tx_hash(b"smuggled").to_vec()],
        short_ids: Vec::new(),
    });
    tx.send(pb::Frame {
        body: Some(announce),
    })
    .await
    .expect("announce");
    let ping = Body::Ping(pb::Ping {
        sequence: 7,
        sent_at_ms: 0,
        registers: vec![],
    });
    tx.send(pb::Frame { body: Some(ping) }).await.expect("ping");
    // Collect what A sends for a while: a pong, never a pull.
    let mut pong = false;
    let deadline = tokio::time::Instant::now() + HEARTBEAT * 10;
    while let Ok(Ok(Some(frame))) = tokio::time::timeout_at(deadline, incoming.message()).await {
        match frame.body {
            Some(Body::PullTransactions(p)) => {
                panic!("A tried to pull into its private register: {p:?}")
            }
            Some(Body::Pong(p)) if p.sequence == 7 => pong = true,
            _ => {}
        }
    }
    assert!(pong, "the session stayed up and answered");
    drop(tx);
    a.stop().await;
}
