//! `PeerDiscovery`: the peer list the Validator asks for, peers for a register, ping, and
//! candidates from callers that are never trusted without a handshake.

use std::time::Duration;

use sorcha_peer::platform::pb::discovery::{self, peer_discovery_client::PeerDiscoveryClient};
use tonic::Code;
use tonic::transport::Channel;

use super::{code, now_ms, peer_info, platform, platform_on};
use crate::common::{PATIENCE, TestCluster, TestNode, holds_for, wait_until};

/// A and B, its connected peer, both named and with their platform listeners on.
async fn two_nodes(net: &mut TestCluster) -> (TestNode, TestNode) {
    let a = net
        .start(|c| {
            platform_on(c);
            c.name = "node-a".into();
        })
        .await;
    let seed = a.seed();
    let b = net
        .start(|c| {
            c.seeds = vec![seed];
            c.name = "node-b".into();
            platform_on(c);
        })
        .await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    (a, b)
}

async fn client(node: &TestNode) -> PeerDiscoveryClient<Channel> {
    PeerDiscoveryClient::new(platform(node).await)
}

fn list(max_peers: i32) -> discovery::PeerListRequest {
    discovery::PeerListRequest {
        requesting_peer_id: "validator-1".into(),
        max_peers,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_list_has_connected_peers_as_the_validator_dials_them() {
    let mut net = TestCluster::new();
    let (mut a, mut b) = two_nodes(&mut net).await;
    let mut client = client(&a).await;
    // C serves no platform services: listed after B, at its peer port, which a Validator
    // cannot use.
    let seed = a.seed();
    let mut c = net.start(|c| c.seeds = vec![seed]).await;
    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;
    let answer = client.get_peer_list(list(100)).await.expect("list");
    let answer = answer.into_inner();
    assert_eq!(answer.total_peers, 2);
    // B at the address it announced for its platform services: the one a Validator dials.
    let peer = &answer.peers[0];
    assert_eq!(peer.peer_id, b.peer_id);
    let b_platform = super::platform_addr(&b);
    assert_eq!(peer.address, b_platform.ip().to_string());
    assert_eq!(peer.port, i32::from(b_platform.port()));
    assert_eq!(peer.node_name, "node-b");
    assert!(!peer.is_seed_node);
    assert!((peer.last_seen - now_ms() / 1000).abs() < 60, "seconds");
    let caps = peer.capabilities.expect("capabilities");
    assert!(caps.supports_transaction_distribution);
    let other = &answer.peers[1];
    assert_eq!(other.peer_id, c.peer_id);
    assert_eq!(other.port, i32::from(c.peer_addr.port()));
    assert!(
        !other
            .capabilities
            .is_some_and(|c| c.supports_transaction_distribution),
        "{other:?}"
    );
    // The same address in the operator's view.
    let view = a.view_of(&b.peer_id).await.expect("A knows B");
    assert_eq!(view.platform_address, Some(b_platform.to_string()));
    c.stop().await;
    assert_eq!(
        code(client.get_peer_list(list(-1)).await),
        Code::InvalidArgument
    );

    // Ping answers with this node's ID, in seconds; an oversized ID is refused.
    let ping = |peer_id: String| discovery::PingRequest { peer_id };
    let pong = client
        .ping(ping("x".into()))
        .await
        .expect("ping")
        .into_inner();
    assert_eq!(pong.peer_id, a.peer_id);
    assert_eq!(pong.status, discovery::PeerStatus::Online as i32);
    assert!((pong.timestamp - now_ms() / 1000).abs() < 60, "seconds");
    let bad = client.ping(ping("x".repeat(1000))).await;
    assert_eq!(code(bad), Code::InvalidArgument);

    // FindPeersForRegister: B carries "carried" as its origin (a full replica).
    b.client
        .create_register("carried", true)
        .await
        .expect("create");
    let find = |register: &str, full: bool| discovery::FindPeersForRegisterRequest {
        register_id: register.into(),
        requesting_peer_id: "register-service".into(),
        require_full_replica: full,
        max_peers: 10,
    };
    let b_id = b.peer_id.clone();
    wait_until("A to see B carry the register", PATIENCE, || {
        let (mut client, b_id) = (client.clone(), b_id.clone());
        async move {
            client
                .find_peers_for_register(find("carried", true))
                .await
                .is_ok_and(|r| r.into_inner().peers.iter().any(|p| p.peer_id == b_id))
        }
    })
    .await;
    let none = client
        .find_peers_for_register(find("elsewhere", false))
        .await;
    assert_eq!(none.expect("find").into_inner().total_peers, 0);
    let bad = client.find_peers_for_register(find("a b", false)).await;
    assert_eq!(code(bad), Code::InvalidArgument);
    b.stop().await;
    a.stop().await;
}

fn register(info: Option<discovery::PeerInfo>) -> discovery::RegisterPeerRequest {
    discovery::RegisterPeerRequest { peer_info: info }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_from_callers_are_proven_by_a_handshake_never_trusted() {
    let mut net = TestCluster::new();
    let (mut a, mut b) = two_nodes(&mut net).await;
    // C runs, but nobody knows it: only RegisterPeer introduces it.
    let mut c = net.start(|c| c.exchange_interval = Duration::ZERO).await;
    let mut client = client(&a).await;

    // A false ID at C's address is taken only as a candidate, and never connects as such.
    let forged = "0123456789abcdef0123456789abcdef";
    let answer = client.register_peer(register(Some(peer_info(forged, &c.peer_addr))));
    let answer = answer.await.expect("register").into_inner();
    assert!(answer.success, "{}", answer.message);
    // C's real ID, told the same way, is dialled and proven by the handshake.
    let answer = client.register_peer(register(Some(peer_info(&c.peer_id, &c.peer_addr))));
    assert!(answer.await.expect("register").into_inner().success);
    a.wait_for_state(&c.peer_id, "connected", PATIENCE).await;
    holds_for(
        "the forged ID not to connect",
        Duration::from_millis(500),
        || async {
            a.view_of(forged)
                .await
                .is_none_or(|p| p.state != "connected")
        },
    )
    .await;
    // What a caller says does not change a known peer's record.
    let again = client.register_peer(register(Some(peer_info(&c.peer_id, &b.peer_addr))));
    assert!(!again.await.expect("register").into_inner().success);
    let known = a.view_of(&c.peer_id).await.expect("known");
    assert_eq!(known.endpoint, c.peer_addr.to_string());
    let zero_port = discovery::PeerInfo {
        port: 0,
        ..peer_info(forged, &c.peer_addr)
    };
    for bad in [
        None,
        Some(peer_info("not-an-id", &c.peer_addr)),
        Some(zero_port),
    ] {
        let refused = client.register_peer(register(bad)).await;
        assert_eq!(code(refused), Code::InvalidArgument);
    }

    // ExchangePeers: bounded both ways, all or nothing.
    let exchange = |known_peers, max_peers| discovery::PeerExchangeRequest {
        peer_id: "old-node".into(),
        known_peers,
        max_peers,
    };
    let answer = client.exchange_peers(exchange(vec![], 1)).await;
    let answer = answer.expect("exchange").into_inner();
    assert!(answer.success);
    assert_eq!(answer.known_peers.len(), 1);
    let unseen = "fedcba9876543210fedcba9876543210";
    let half_bad = vec![
        peer_info(unseen, &c.peer_addr),
        peer_info("not-an-id", &c.peer_addr),
    ];
    let refused = client.exchange_peers(exchange(half_bad, 10)).await;
    assert_eq!(code(refused), Code::InvalidArgument);
    assert!(
        a.view_of(unseen).await.is_none(),
        "nothing learnt from a refused call"
    );
    let too_many = (0..a.config.exchange_max_entries + 1)
        .map(|i| peer_info(&format!("{i:032x}"), &c.peer_addr))
        .collect();
    let refused = client.exchange_peers(exchange(too_many, 10)).await;
    assert_eq!(code(refused), Code::InvalidArgument);
    c.stop().await;
    b.stop().await;
    a.stop().await;
}
