//! Strangers on an open network: a key costs nothing, so a completed handshake earns no trust.
//! Hand-built peers flood a real node with identities, connections, streams, long strings and
//! frames; the node keeps every structure within its bound and honest nodes keep getting in.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sorcha_peer::identity::Identity;
use sorcha_peer::protocol::pb::{self, frame::Body, peer_session_client::PeerSessionClient};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::common::stranger::{self, Claims, Stranger};
use crate::common::{HEARTBEAT, PATIENCE, TestCluster, TestNode, holds_for, metric, wait_until};

/// A connection from `from` whose TLS certificate is `me`'s.
async fn channel_from(node: &TestNode, from: &str, me: &Identity) -> Channel {
    stranger::channel_from(node.peer_addr, from, me)
        .await
        .expect("connect")
}

async fn handshake(channel: Channel, me: &Identity, claims: &Claims) -> Result<Stranger, String> {
    Ok(stranger::open_session(channel, me, claims)
        .await?
        .answering())
}

async fn metrics_of(node: &TestNode) -> String {
    node.client.metrics().await.expect("metrics")
}

async fn connected_ids(node: &TestNode) -> Vec<String> {
    node.client
        .peers(Some("connected"), None, None)
        .await
        .expect("peers")
        .into_iter()
        .map(|p| p.peer_id)
        .collect()
}

/// 64 self-made identities from one address would fill every inbound slot; the per-address cap
/// stops them at a few, and an honest node from another address still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_from_one_address_cannot_fill_the_inbound_slots() {
    let mut net = TestCluster::new();
    let mut victim = net
        .start(|c| {
            c.max_inbound = 8;
            c.max_inbound_per_ip = 3;
            c.max_connections_per_ip = 64;
        })
        .await;
    let mut strangers = Vec::new();
    let mut refused = 0;
    for _ in 0..16 {
        let me = Identity::generate();
        let channel = channel_from(&victim, "127.0.0.202", &me).await;
        match handshake(channel, &me, &Claims::default()).await {
            Ok(s) => strangers.push(s),
            Err(_) => refused += 1,
        }
    }
    assert_eq!(strangers.len(), 3, "refused {refused}");
    let mut honest = net.start(|c| c.seeds = vec![victim.seed()]).await;
    let honest_id = honest.peer_id.clone();
    wait_until("the honest node is connected", PATIENCE, || async {
        connected_ids(&victim).await.contains(&honest_id)
    })
    .await;
    let text = metrics_of(&victim).await;
    assert!(
        metric(
            &text,
            "sorcha_peer_connections_refused_total{reason=\"inbound_per_ip\"}"
        ) >= 13.0,
        "{text}"
    );
    drop(strangers);
    honest.stop().await;
    victim.stop().await;
}

/// When every inbound slot is taken by strangers from several addresses, a newcomer evicts the
/// newest of them rather than being turned away, and a peer connected for long stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_evicts_the_newest_stranger_for_a_newcomer() {
    let mut net = TestCluster::new();
    let mut victim = net
        .start(|c| {
            c.max_inbound = 6;
            c.max_inbound_per_ip = 2;
        })
        .await;
    // An old friend, connected first.
    let mut friend = net.start(|c| c.seeds = vec![victim.seed()]).await;
    let friend_id = friend.peer_id.clone();
    wait_until("the friend is connected", PATIENCE, || async {
        connected_ids(&victim).await.contains(&friend_id)
    })
    .await;
    let mut strangers = Vec::new();
    for ip in ["127.0.0.206", "127.0.0.207", "127.0.0.208"] {
        for _ in 0..2 {
            let me = Identity::generate();
            let channel = channel_from(&victim, ip, &me).await;
            if let Ok(s) = handshake(channel, &me, &Claims::default()).await {
                strangers.push(s);
            }
        }
    }
    // The friend plus five strangers fill the six slots; the sixth stranger evicted one.
    assert_eq!(strangers.len(), 6);
    wait_until("six inbound peers", PATIENCE, || async {
        connected_ids(&victim).await.len() == 6
    })
    .await;
    let mut newcomer = net.start(|c| c.seeds = vec![victim.seed()]).await;
    let newcomer_id = newcomer.peer_id.clone();
    wait_until("the newcomer is connected", PATIENCE, || async {
        connected_ids(&victim).await.contains(&newcomer_id)
    })
    .await;
    let connected = connected_ids(&victim).await;
    assert!(connected.contains(&friend_id), "{connected:?}");
    assert!(connected.len() <= 6, "{connected:?}");
    let text = metrics_of(&victim).await;
    assert!(
        metric(
            &text,
            "sorcha_peer_connections_refused_total{reason=\"evicted\"}"
        ) >= 1.0
    );
    drop(strangers);
    newcomer.stop().await;
    friend.stop().await;
    victim.stop().await;
}

/// Handshakes with fresh keys add peer records; the table cap holds on that path too (the
/// least useful records go), in memory and in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_identities_cannot_grow_the_peer_table_past_its_cap() {
    let mut net = TestCluster::new();
    let mut victim = net
        .start(|c| {
            c.max_known_peers = 12;
            c.max_inbound = 4;
            c.max_outbound = 2;
            c.max_inbound_per_ip = 64;
        })
        .await;
    for _ in 0..40 {
        let me = Identity::generate();
        let channel = channel_from(&victim, "127.0.0.211", &me).await;
        let stranger = handshake(channel, &me, &Claims::default())
            .await
            .expect("handshake");
        drop(stranger);
    }
    let known = victim
        .client
        .peers(Some("all"), None, None)
        .await
        .expect("peers");
    assert!(known.len() <= 12, "{} peers known", known.len());
    let text = metrics_of(&victim).await;
    assert!(metric(&text, "sorcha_peer_limit_hits_total{limit=\"known_peers\"}") >= 1.0);
    victim.restart().await;
    let known = victim
        .client
        .peers(Some("all"), None, None)
        .await
        .expect("peers");
    assert!(known.len() <= 12, "{} peers stored", known.len());
    victim.stop().await;
}

/// Strings from peers have bounds: a megabyte-long listen address fails the handshake, and
/// exchanged addresses that long are not learnt. Control characters never reach the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_or_dirty_strings_from_peers_are_refused_or_cleaned() {
    let mut net = TestCluster::new();
    let mut victim = net.start(|_| {}).await;
    let long = Claims {
        listen_address: format!("{}:1", "a".repeat(1024 * 1024)),
        ..Claims::default()
    };
    let me = Identity::generate();
    let channel = channel_from(&victim, "127.0.0.213", &me).await;
    let refused = handshake(channel, &me, &long).await;
    assert!(refused.is_err(), "a 1 MB address was accepted");

    let dirty = Claims {
        name: "\u{1b}[2Jevil".into(),
        software_version: "v\u{1b}]0;pwned\u{7}".into(),
        ..Claims::default()
    };
    let me = Identity::generate();
    let channel = channel_from(&victim, "127.0.0.213", &me).await;
    let stranger = handshake(channel, &me, &dirty).await.expect("handshake");
    let entries = (0..20)
        .map(|i| pb::PeerAddress {
            peer_id: hex::encode([i as u8; 16]),
            address: format!("{}.example:5000", "b".repeat(300 * 1024)),
            last_seen_ms: 0,
        })
        .collect();
    stranger
        .send(Body::ExchangeRequest(pb::PeerExchangeRequest {
            request_id: 1,
            peers: entries,
            max_peers: 10,
        }))
        .await
        .expect("send");
    let id = stranger.peer_id.clone();
    let view = crate::common::wait_for("the stranger's record", PATIENCE, || async {
        victim.view_of(&id).await
    })
    .await;
    assert!(!view.name.contains('\u{1b}'), "{:?}", view.name);
    holds_for("no long address is learnt", HEARTBEAT * 5, || async {
        let all = victim
            .client
            .peers(Some("all"), None, None)
            .await
            .expect("peers");
        all.iter().all(|p| p.endpoint.len() < 300)
    })
    .await;
    drop(stranger);
    victim.stop().await;
}

/// A peer may list any number of registers in its advertisements; the node remembers a bounded
/// number of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertised_registers_per_peer_are_bounded() {
    let mut net = TestCluster::new();
    let mut victim = net.start(|c| c.max_advertised_registers = 10).await;
    let me = Identity::generate();
    let channel = channel_from(&victim, "127.0.0.215", &me).await;
    let stranger = handshake(channel, &me, &Claims::default())
        .await
        .expect("handshake");
    let registers = (0..5000)
        .map(|i| pb::RegisterHeight {
            register_id: format!("reg-{i}"),
            height: 1,
            head_hash: vec![0; 32],
            latest_version: 1,
            full_replica: true,
            is_origin: true,
        })
        .collect();
    stranger
        .send(Body::Advertise(pb::Advertise { registers }))
        .await
        .expect("send");
    let id = stranger.peer_id.clone();
    wait_until("the advertisement arrived", PATIENCE, || async {
        victim
            .view_of(&id)
            .await
            .is_some_and(|p| !p.advertised_registers.is_empty())
    })
    .await;
    let view = victim.view_of(&id).await.expect("view");
    assert_eq!(view.advertised_registers.len(), 10);
    drop(stranger);
    victim.stop().await;
}

/// `Follow` frames for registers the node does not hold create nothing; for a held public
/// register a follower set never outgrows the node's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_frames_for_unknown_registers_are_not_kept() {
    let mut net = TestCluster::new();
    let mut victim = net.start(|_| {}).await;
    victim
        .client
        .create_register("open", true)
        .await
        .expect("register");
    let me = Identity::generate();
    let channel = channel_from(&victim, "127.0.0.217", &me).await;
    let stranger = handshake(channel, &me, &Claims::default())
        .await
        .expect("handshake");
    for i in 0..2000 {
        stranger
            .send(Body::Follow(pb::Follow {
                register_id: format!("{i}-{}", "x".repeat(1000)),
                follow: true,
            }))
            .await
            .expect("send");
    }
    stranger
        .send(Body::Follow(pb::Follow {
            register_id: "open".into(),
            follow: true,
        }))
        .await
        .expect("send");
    let registers = victim.handle.as_ref().expect("running").registers.clone();
    wait_until("the stranger follows 'open'", PATIENCE, || async {
        registers.follower_entries() == 1
    })
    .await;
    drop(stranger);
    victim.stop().await;
}

/// Opens a raw TCP connection to the node's peer port from `from`.
async fn raw_connection(node: &TestNode, from: &str) -> tokio::net::TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().expect("ip"), 0))
        .expect("bind");
    socket.connect(node.peer_addr).await.expect("connect")
}

/// Whether the node closed the connection within `within` (EOF or reset on read).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Connections that never send the HTTP/2 preface are closed after the deadline, connections
/// over the per-address cap at once, and an honest node gets in throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_capped_and_closed_after_the_preface_deadline() {
    let mut net = TestCluster::new();
    let mut victim = net
        .start(|c| {
            c.connect_timeout = Duration::from_millis(500);
            c.max_connections_per_ip = 5;
        })
        .await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(raw_connection(&victim, "127.0.0.219").await);
    }
    // Beyond the cap, closed before anything is read.
    for extra in &mut silent[5..] {
        assert!(closed_within(extra, Duration::from_millis(300)).await);
    }
    let mut honest = net.start(|c| c.seeds = vec![victim.seed()]).await;
    let honest_id = honest.peer_id.clone();
    wait_until("the honest node is connected", PATIENCE, || async {
        connected_ids(&victim).await.contains(&honest_id)
    })
    .await;
    // The admitted ones are closed once the preface deadline passes.
    for admitted in &mut silent[..5] {
        assert!(closed_within(admitted, Duration::from_secs(3)).await);
    }
    let manager = victim.handle.as_ref().expect("running").manager.clone();
    wait_until("only the honest connection is open", PATIENCE, || async {
        manager.open_connections() <= 1
    })
    .await;
    let text = metrics_of(&victim).await;
    assert!(
        metric(
            &text,
            "sorcha_peer_connections_refused_total{reason=\"connections_per_ip\"}"
        ) >= 15.0
    );
    honest.stop().await;
    victim.stop().await;
}

/// One connection cannot open thousands of session streams: the node lets only a few run at a
/// time, so only a few handshakes start however many streams the client queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_gets_only_a_few_concurrent_streams() {
    let mut net = TestCluster::new();
    let mut victim = net
        .start(|c| {
            c.connect_timeout = Duration::from_secs(10);
        })
        .await;
    let me = std::sync::Arc::new(Identity::generate());
    let channel = channel_from(&victim, "127.0.0.222", &me).await;
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let mut streams = Vec::new();
    for _ in 0..40 {
        let mut client = PeerSessionClient::new(channel.clone());
        let acks_tx = acks_tx.clone();
        let me = me.clone();
        streams.push(tokio::spawn(async move {
            let (tx, rx) = mpsc::channel(4);
            let _ = tx.send(stranger::hello(&me, &Claims::default())).await;
            if let Ok(response) = client.session(ReceiverStream::new(rx)).await {
                let mut incoming = response.into_inner();
                if let Ok(Some(_)) = incoming.message().await {
                    let _ = acks_tx.send(());
                }
                // Never answer: hold the stream open.
                std::future::pending::<()>().await;
                drop(tx);
            }
        }));
    }
    let mut answered = 0;
    while let Ok(Some(())) = tokio::time::timeout(Duration::from_secs(1), acks.recv()).await {
        answered += 1;
    }
    assert!(
        answered <= sorcha_peer::rpc::MAX_STREAMS_PER_CONNECTION as usize,
        "{answered} streams got a handshake answer"
    );
    assert!(answered >= 1);
    for s in streams {
        s.abort();
    }
    victim.stop().await;
}

/// A peer that asks for dockets and never reads the answers is disconnected once its unread
/// answers reach the send buffer, instead of making the node hold them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_read_its_answers_is_disconnected() {
    let mut net = TestCluster::new();
    let mut victim = net
        .start(|c| {
            c.peer_send_buffer = 1024 * 1024;
            c.max_docket_transactions = 2;
        })
        .await;
    victim
        .client
        .create_register("bulky", true)
        .await
        .expect("register");
    for i in 0..20u8 {
        victim
            .client
            .submit("bulky", vec![i; 100 * 1024])
            .await
            .expect("submit");
    }
    victim.wait_for_version("bulky", 20, PATIENCE).await;
    let me = Identity::generate();
    let channel = channel_from(&victim, "127.0.0.224", &me).await;
    let stranger = stranger::open_session(channel, &me, &Claims::default())
        .await
        .expect("handshake")
        .silent();
    for request_id in 0..100 {
        stranger
            .send(Body::DocketRequest(pb::DocketRequest {
                request_id,
                register_id: "bulky".into(),
                from_number: 0,
                max_dockets: 100,
                headers_only: false,
                max_bytes: 0,
            }))
            .await
            .expect("send");
    }
    let id = stranger.peer_id.clone();
    wait_until("the stranger is disconnected", PATIENCE, || async {
        !connected_ids(&victim).await.contains(&id)
    })
    .await;
    drop(stranger);
    victim.stop().await;
}
