//! Places on the event stream with real nodes: clients without a token, however many and from
//! however many addresses, leave the operator a stream; a client that stops reading loses its
//! place. The clients are raw TCP connections that send the request and never read.

use std::net::SocketAddr;
use std::time::Duration;

use sorcha_peer::events::EventKind;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{PATIENCE, TestCluster, TestNode, metric, wait_until};
use crate::events::expect_event;

/// Opens `GET /api/events` from `source` (with `token` when given) and never reads.
async fn unread_stream(
    admin: SocketAddr,
    source: &str,
    token: Option<&str>,
    receive_buffer: Option<u32>,
) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).expect("receive buffer");
    }
    socket
        .bind(format!("{source}:0").parse().expect("source address"))
        .expect("bind the source address");
    let mut stream = socket.connect(admin).await.expect("connect");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: {admin}\r\nAccept: text/event-stream\r\n{auth}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    stream
}

/// The node's refusals of event streams so far, under all three limits.
async fn refusals(node: &TestNode) -> f64 {
    let text = node.client.metrics().await.expect("metrics");
    [
        "max_event_clients",
        "max_anonymous_event_clients",
        "max_anonymous_event_clients_per_ip",
    ]
    .iter()
    .map(|limit| {
        metric(
            &text,
            &format!("sorcha_peer_limit_hits_total{{limit=\"{limit}\"}}"),
        )
    })
    .sum()
}

fn admin_addr(node: &TestNode) -> SocketAddr {
    node.handle.as_ref().expect("running").admin_addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_gets_a_stream_while_200_streams_without_a_token_sit_unread() {
    let mut net = TestCluster::new();
    // Default places: 32 in all, 8 without a token, 4 of those per address.
    let mut node = net.start(|_| {}).await;
    let admin = admin_addr(&node);
    let events = node.handle.as_ref().expect("running").events.clone();
    // 200: the first 20 from one address, the rest from 49 others (all loopback, in
    // admin_open_cidrs, so reads need no token).
    let sources: Vec<String> = (0..50).map(|_| net.ip()).collect();
    let mut unread = Vec::new();
    for n in 0..200 {
        let source = if n < 20 {
            &sources[0]
        } else {
            &sources[1 + n % 49]
        };
        unread.push(unread_stream(admin, source, None, None).await);
        if n + 1 == 20 || n + 1 == 200 {
            // The first address's streams are all answered before the others come.
            wait_until("the node to answer them", PATIENCE, || async {
                events.subscribers() as f64 + refusals(&node).await >= (n + 1) as f64
            })
            .await;
        }
    }
    assert_eq!(
        events.subscribers(),
        node.config.max_anonymous_event_clients,
        "streams without a token get at most their own places"
    );
    let text = node.client.metrics().await.expect("metrics");
    assert_eq!(
        metric(
            &text,
            "sorcha_peer_limit_hits_total{limit=\"max_anonymous_event_clients_per_ip\"}"
        ),
        16.0,
        "one address gets {} places",
        node.config.max_anonymous_event_clients_per_ip
    );

    // The operator (admin token, as the CLI and the dashboard with a token send it) still
    // gets a stream, and events on it.
    let mut operator = node
        .client
        .event_stream(None)
        .await
        .expect("the operator's stream opens");
    node.client
        .ban("10.16.5.5", Some("lockout test"), None)
        .await
        .expect("ban");
    expect_event(
        &mut operator,
        "the ban",
        PATIENCE,
        |e| matches!(&e.kind, EventKind::PeerBanned { target, .. } if target == "10.16.5.5"),
    )
    .await;

    // One more without a token, from a fresh address, is refused and told what to do.
    let fresh = net.ip();
    let client = reqwest::Client::builder()
        .local_address(Some(fresh.parse().expect("ip")))
        .build()
        .expect("client");
    let refused = client
        .get(format!("{}/api/events", node.admin_url))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("json error");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("max_anonymous_event_clients") && error.contains("token"),
        "{body}"
    );
    drop(unread);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_place() {
    let mut net = TestCluster::new();
    let mut node = net
        .start(|c| {
            c.max_event_clients = 1;
            c.max_anonymous_event_clients = 0;
            c.admin_send_timeout = Duration::from_millis(300);
        })
        .await;
    let events = node.handle.as_ref().expect("running").events.clone();
    let source = net.ip();
    // With the operator's token, a small receive buffer, and never read.
    let stuck = unread_stream(admin_addr(&node), &source, Some(&node.token), Some(4096)).await;
    wait_until(
        "the stuck client to hold the only place",
        PATIENCE,
        || async { events.subscribers() == 1 },
    )
    .await;
    assert!(
        node.client.event_stream(None).await.is_err(),
        "the place is taken"
    );

    // Events the client never reads fill its socket; then the write waits past the deadline.
    let big = "x".repeat(8 * 1024);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while events.subscribers() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a client that reads nothing still holds its place after {PATIENCE:?}"
        );
        for _ in 0..16 {
            events.publish(EventKind::StorageFailing {
                reason: big.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut operator = node
        .client
        .event_stream(Some(events.latest_seq()))
        .await
        .expect("the freed place is the operator's");
    events.publish(EventKind::PeerUnbanned {
        target: "10.16.6.6".into(),
        expired: false,
    });
    expect_event(
        &mut operator,
        "a live event",
        PATIENCE,
        |e| matches!(&e.kind, EventKind::PeerUnbanned { target, .. } if target == "10.16.6.6"),
    )
    .await;
    let text = node.client.metrics().await.expect("metrics");
    assert!(
        metric(
            &text,
            "sorcha_peer_limit_hits_total{limit=\"admin_send_timeout\"}"
        ) >= 1.0,
        "the drop is counted"
    );
    drop(stuck);
    node.stop().await;
}
