//! `peers connect HOST:PORT` and `peers disconnect PEER`, as bitcoin-cli's `addnode … onetry`
//! and `disconnectnode`: a dial now that reports the peer reached or why not, and a
//! disconnection that bans nothing.

use sorcha_peer::events::EventKind;

use crate::common::{PATIENCE, TestCluster, cli, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_connects_and_disconnects_peers_by_hand() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let mut b = net.start(|c| c.name = "node-b".into()).await;
    assert_eq!(
        a.state_of(&b.peer_id).await,
        "unknown",
        "no seeds: strangers"
    );

    // Connect: the peer ID reached on stdout, a sentence on stderr.
    let (code, out, err) = cli(&a, &["peers", "connect", &b.seed()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), b.peer_id);
    assert!(
        err.contains(&format!("Connected to {}", b.peer_id)),
        "{err}"
    );
    assert_eq!(a.state_of(&b.peer_id).await, "connected");
    // Again: said so, nothing dialled.
    let (code, out, err) = cli(&a, &["peers", "connect", &b.seed(), "-o", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(answer["peerId"], b.peer_id.as_str());
    assert_eq!(answer["alreadyConnected"], true);

    // Disconnect by name: the session closes in good order, no ban, and the output says the
    // peer may come back.
    let (code, _, err) = cli(&a, &["peers", "disconnect", "node-b"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("(not banned)") && err.contains("may reconnect"),
        "{err}"
    );
    for line in err.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
    wait_until("the disconnection to be recorded", PATIENCE, || async {
        a.client.recent_events(100).await.is_ok_and(|recent| {
            recent.events.iter().any(|e| {
                matches!(&e.kind, EventKind::PeerDisconnected { peer_id, reason, failed: false }
                    if *peer_id == b.peer_id && reason.contains("disconnected by the operator"))
            })
        })
    })
    .await;
    assert!(a.client.bans().await.expect("bans").is_empty());
    let peer = a.view_of(&b.peer_id).await.expect("still known");
    assert!(!peer.is_banned);

    // Failures say why, with the documented exit codes.
    let nobody = format!("{}:1", net.ip());
    // Exit 6, not 3: the node answered; it is the address it was asked to dial that is dead.
    let (code, _, err) = cli(&a, &["peers", "connect", &nobody]).await;
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains(&format!("cannot connect to {nobody}")),
        "{err}"
    );
    assert_eq!(
        err.matches("cannot connect to").count(),
        1,
        "said once: {err}"
    );
    let (code, _, err) = cli(&a, &["peers", "connect", "no-port-here"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = cli(&a, &["peers", "connect", &a.seed()]).await;
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("own address") || err.contains("this node itself"),
        "{err}"
    );
    b.stop().await;
    wait_until("b to be disconnected", PATIENCE, || async {
        a.state_of(&b.peer_id).await == "disconnected"
    })
    .await;
    let (code, _, err) = cli(&a, &["peers", "disconnect", &b.peer_id[..8]]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not connected"), "{err}");
    let (code, _, err) = cli(&a, &["peers", "disconnect", "nobody"]).await;
    assert_eq!(code, 5, "{err}");
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_and_disconnecting_need_the_manage_peers_policy() {
    let mut net = TestCluster::new();
    let mut a = net.start(|_| {}).await;
    let b = net.start(|_| {}).await;
    // No token: refused before anything is dialled.
    let anonymous = sorcha_peer::client::AdminClient::new(&a.admin_url, None).expect("client");
    match anonymous.connect_peer(&b.seed()).await {
        Err(sorcha_peer::client::ClientError::Unauthorized(_)) => {}
        other => panic!("{other:?}"),
    }
    match anonymous.disconnect_peer(&b.peer_id).await {
        Err(sorcha_peer::client::ClientError::Unauthorized(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(a.state_of(&b.peer_id).await, "unknown");
    let mut b = b;
    b.stop().await;
    a.stop().await;
}
