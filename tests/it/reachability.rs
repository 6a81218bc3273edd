//! A node learns its own address: peers report what they observe, an agreed address is
//! announced only after a peer dialled it back, a node on 0.0.0.0 announces the interface that
//! routes to its seeds, a dial-back goes only to the asker's own IP, and STUN and HTTP lookups
//! (off by default) work against servers the test runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sorcha_peer::api::StatusDto;
use sorcha_peer::config::Config;
use sorcha_peer::identity::Identity;
use sorcha_peer::protocol::pb::{self, frame::Body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};

use crate::common::stranger::{self, Claims};
use crate::common::{PATIENCE, TestCluster, TestNode, cli, holds_for, metric, wait_for};

/// Reachability checks every 100 ms in these tests.
fn fast(c: &mut Config) {
    c.reachability_interval = Duration::from_millis(100);
}

async fn status(node: &TestNode) -> StatusDto {
    node.client.status().await.expect("status")
}

async fn dial_backs(node: &TestNode, role: &str, outcome: &str) -> f64 {
    let text = node.client.metrics().await.expect("metrics");
    metric(
        &text,
        &format!("sorcha_peer_dial_backs_total{{role=\"{role}\",outcome=\"{outcome}\"}}"),
    )
}

async fn stop_all(nodes: Vec<&mut TestNode>) {
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_three_peers_observe_is_verified_by_a_dial_back_and_announced() {
    let mut net = TestCluster::new();
    let mut x = net.start(fast).await;
    let seed = x.seed();
    let before = status(&x).await;
    assert_eq!(before.address_source, "listen");
    assert_eq!(before.reachability, "private", "loopback, unverified");

    let peer = |seed: String| {
        move |c: &mut Config| {
            fast(c);
            c.seeds = vec![seed];
        }
    };
    let mut p1 = net.start(peer(seed.clone())).await;
    let mut p2 = net.start(peer(seed.clone())).await;
    for p in [&p1, &p2] {
        x.wait_for_state(&p.peer_id, "connected", PATIENCE).await;
    }
    // Two peers are not enough (reachability_min_peers = 3).
    holds_for(
        "two peers not to be enough",
        Duration::from_millis(500),
        || async { status(&x).await.address_source == "listen" },
    )
    .await;
    assert_eq!(dial_backs(&x, "asker", "verified").await, 0.0);

    let mut p3 = net.start(peer(seed.clone())).await;
    let verified = wait_for("the observed address to be verified", PATIENCE, || async {
        let s = status(&x).await;
        (s.address_source == "observed").then_some(s)
    })
    .await;
    assert_eq!(verified.announced_address, x.peer_addr.to_string());
    assert_eq!(verified.advertised_address, verified.announced_address);
    assert_eq!(verified.reachability, "public", "verified by a dial-back");
    assert_eq!(dial_backs(&x, "asker", "verified").await, 1.0);
    // The peers verify their own addresses too (each has three others by now), so count
    // only that someone dialled back.
    let mut answered = 0.0;
    for p in [&p1, &p2, &p3] {
        answered += dial_backs(p, "asked", "verified").await;
    }
    assert!(answered >= 1.0, "a peer dialled X back");

    let (code, table, _) = cli(&x, &["status"]).await;
    assert_eq!(code, 0);
    assert!(table.contains("public (address from observed)"), "{table}");
    let (code, json, _) = cli(&x, &["status", "-o", "json"]).await;
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(json["addressSource"], "observed");
    assert_eq!(json["reachability"], "public");
    assert_eq!(json["announcedAddress"], x.peer_addr.to_string());
    stop_all(vec![&mut p1, &mut p2, &mut p3, &mut x]).await;
}

/// Forwards every connection to `target`, connecting from the client's own IP, so the target
/// sees the real peers while they see (and report) the relay's address.
async fn relay(listener: TcpListener, target: SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((mut client, from)) = listener.accept().await {
            conns.push(tokio::spawn(async move {
                let Ok(socket) = TcpSocket::new_v4() else {
                    return;
                };
                if socket.bind(SocketAddr::new(from.ip(), 0)).is_err() {
                    return;
                }
                let Ok(mut upstream) = socket.connect(target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }));
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observed_address_that_does_not_dial_back_is_not_announced() {
    let mut net = TestCluster::new();
    // No peer exchange: the peers know X only through the relay (learning X's own address
    // from each other could make one reconnect directly and report that instead).
    let quiet = |c: &mut Config| {
        fast(c);
        c.exchange_interval = Duration::ZERO;
    };
    let mut x = net.start(quiet).await;
    let relay_listener = net.listener().await;
    let relay_addr = relay_listener.local_addr().expect("relay address");
    let relay_task = relay(relay_listener, x.peer_addr).await;

    // The peers reach X only through the relay, so all three report the relay's IP; nothing
    // of X listens there on X's port, so the dial-back fails.
    let mut peers = Vec::new();
    for _ in 0..3 {
        let seed = relay_addr.to_string();
        peers.push(
            net.start(move |c| {
                quiet(c);
                c.seeds = vec![seed];
            })
            .await,
        );
    }
    for p in &peers {
        x.wait_for_state(&p.peer_id, "connected", PATIENCE).await;
    }
    wait_for("a failed dial-back", PATIENCE, || async {
        (dial_backs(&x, "asker", "failed").await >= 1.0).then_some(())
    })
    .await;
    holds_for(
        "X to keep announcing its listen address",
        Duration::from_millis(600),
        || async {
            let s = status(&x).await;
            s.address_source == "listen"
                && s.announced_address == x.peer_addr.to_string()
                && s.reachability == "private"
        },
    )
    .await;
    assert_eq!(dial_backs(&x, "asker", "verified").await, 0.0);
    let mut failed = 0.0;
    for p in &peers {
        failed += dial_backs(p, "asked", "failed").await;
    }
    assert!(failed >= 1.0, "a peer tried the relay's IP and failed");
    relay_task.abort();
    for p in &mut peers {
        p.stop().await;
    }
    x.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_all_interfaces_announces_an_address_its_peers_dial() {
    let mut net = TestCluster::new();
    let mut seed = net.start(fast).await;
    let seed_addr = seed.seed();
    let mut z = TestNode::start("0.0.0.0", |c| {
        fast(c);
        c.seeds = vec![seed_addr.clone()];
        // Z dials only its seed; whoever else connects to it dials it.
        c.max_outbound = 1;
    })
    .await;
    let announced = wait_for("Z to announce an interface address", PATIENCE, || async {
        let s = status(&z).await;
        (s.address_source == "interface").then_some(s)
    })
    .await;
    let addr: SocketAddr = announced
        .announced_address
        .parse()
        .expect("an IP address and port");
    assert!(!addr.ip().is_unspecified(), "{addr}");
    assert!(
        addr.ip().is_loopback(),
        "the interface towards a loopback seed"
    );
    assert_eq!(addr.port(), z.peer_addr.port());
    assert_eq!(announced.reachability, "private");

    // T learns Z from the seed through peer exchange, and dials the announced address.
    let mut t = net
        .start(|c| {
            fast(c);
            c.seeds = vec![seed_addr.clone()];
        })
        .await;
    t.wait_for_state(&z.peer_id, "connected", PATIENCE).await;
    let view = t.view_of(&z.peer_id).await.expect("T knows Z");
    assert_eq!(view.endpoint, announced.announced_address);
    assert_eq!(view.direction.as_deref(), Some("outbound"), "T dialled Z");
    stop_all(vec![&mut t, &mut z, &mut seed]).await;
}

/// A hand-built peer's session kept alive (pings answered) by a background task, with the
/// answers to its dial-back requests.
struct Asker {
    outgoing: tokio::sync::mpsc::Sender<pb::Frame>,
    answers: tokio::sync::mpsc::Receiver<pb::DialBackResponse>,
    task: tokio::task::JoinHandle<()>,
}

impl Asker {
    fn new(session: stranger::Session) -> Asker {
        let stranger::Session {
            outgoing,
            mut incoming,
            ..
        } = session;
        let (tx, answers) = tokio::sync::mpsc::channel(16);
        let pong = outgoing.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(frame)) = incoming.message().await {
                let delivered = match frame.body {
                    Some(Body::Ping(p)) => {
                        let body = Body::Pong(pb::Pong {
                            sequence: p.sequence,
                        });
                        pong.send(pb::Frame { body: Some(body) }).await.is_ok()
                    }
                    Some(Body::DialBackResponse(r)) => tx.send(r).await.is_ok(),
                    _ => true,
                };
                if !delivered {
                    break;
                }
            }
        });
        Asker {
            outgoing,
            answers,
            task,
        }
    }

    /// Asks to be dialled back at `address`; returns the answer's error text (empty: success).
    async fn ask(&mut self, id: u64, address: SocketAddr) -> String {
        let body = Body::DialBackRequest(pb::DialBackRequest {
            request_id: id,
            address: address.to_string(),
        });
        self.outgoing
            .send(pb::Frame { body: Some(body) })
            .await
            .expect("send request");
        let answer = tokio::time::timeout(PATIENCE, self.answers.recv())
            .await
            .expect("an answer in time")
            .expect("session open");
        assert_eq!(answer.request_id, id);
        answer.error
    }
}

impl Drop for Asker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener that counts the connections made to it.
async fn counting_listener(
    ip: &str,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, count, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_back_goes_only_to_the_askers_own_ip_and_not_too_often() {
    let mut net = TestCluster::new();
    let mut node = net.start(|_| {}).await;
    let (asker_ip, other_ip) = (net.ip(), net.ip());
    let (own, own_count, own_task) = counting_listener(&asker_ip).await;
    let (other, other_count, other_task) = counting_listener(&other_ip).await;
    let me = Identity::generate();
    let channel = stranger::channel_from(node.peer_addr, &asker_ip, &me)
        .await
        .expect("connect");
    let session = stranger::open_session(channel, &me, &Claims::default())
        .await
        .expect("handshake");
    let mut asker = Asker::new(session);

    let refusal = asker.ask(1, other).await;
    assert!(
        refusal.contains("not the address you connect from"),
        "{refusal}"
    );
    holds_for(
        "no connection to the other IP",
        Duration::from_millis(300),
        || async { other_count.load(Ordering::SeqCst) == 0 },
    )
    .await;

    // Its own IP, another port: dialled (nothing there speaks the protocol, so it fails).
    let failure = asker.ask(2, own).await;
    assert!(!failure.is_empty(), "nothing there answered the handshake");
    assert!(
        own_count.load(Ordering::SeqCst) >= 1,
        "the node dialled the asker's IP"
    );

    // At once again: refused by the rate limit.
    let limited = asker.ask(3, own).await;
    assert!(limited.contains("at most one per"), "{limited}");
    assert_eq!(other_count.load(Ordering::SeqCst), 0);
    assert_eq!(dial_backs(&node, "asked", "refused").await, 2.0);
    assert_eq!(dial_backs(&node, "asked", "failed").await, 1.0);
    let text = node.client.metrics().await.expect("metrics");
    assert_eq!(
        metric(
            &text,
            "sorcha_peer_limit_hits_total{limit=\"dial_back_rate\"}"
        ),
        1.0
    );
    own_task.abort();
    other_task.abort();
    drop(asker);
    node.stop().await;
}

/// A STUN server (RFC 5389) that answers every Binding request with `mapped`, as a server
/// behind which the node sits would; counts the valid requests.
async fn stun_server(
    ip: &str,
    mapped: SocketAddr,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind((ip, 0)).await.expect("bind UDP");
    let addr = socket.local_addr().expect("address");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let request = &buf[..n];
            let cookie = [0x21, 0x12, 0xA4, 0x42];
            if n < 20 || request[0..2] != [0, 1] || request[4..8] != cookie {
                continue;
            }
            counted.fetch_add(1, Ordering::SeqCst);
            let std::net::IpAddr::V4(v4) = mapped.ip() else {
                continue;
            };
            let port = mapped.port() ^ 0x2112;
            let mut value = vec![0, 1];
            value.extend_from_slice(&port.to_be_bytes());
            value.extend(v4.octets().iter().zip(cookie).map(|(b, k)| b ^ k));
            let mut response = vec![0x01, 0x01];
            response.extend_from_slice(&((value.len() + 4) as u16).to_be_bytes());
            response.extend_from_slice(&cookie);
            response.extend_from_slice(&request[8..20]);
            response.extend_from_slice(&[0x00, 0x20]);
            response.extend_from_slice(&(value.len() as u16).to_be_bytes());
            response.extend_from_slice(&value);
            let _ = socket.send_to(&response, from).await;
        }
    });
    (addr, count, task)
}

/// A "what is my IP" HTTP server answering `answer` as text.
async fn ip_lookup_server(
    ip: &str,
    answer: &'static str,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stun_and_http_lookups_are_fallbacks_against_local_servers() {
    let mut net = TestCluster::new();
    let stun_ip = net.ip();
    let (stun, stun_count, stun_task) =
        stun_server(&stun_ip, "198.51.100.23:4444".parse().expect("address")).await;
    let mut a = net
        .start(|c| {
            fast(c);
            c.stun_servers = vec![stun.to_string()];
        })
        .await;
    let s = wait_for("A to announce what STUN reports", PATIENCE, || async {
        let s = status(&a).await;
        (s.address_source == "stun").then_some(s)
    })
    .await;
    assert_eq!(
        s.announced_address,
        format!("198.51.100.23:{}", a.peer_addr.port()),
        "the mapped IP with the node's own listen port"
    );
    assert_eq!(s.reachability, "unknown", "not verified");
    assert!(stun_count.load(Ordering::SeqCst) >= 1);

    // A STUN server that never answers, then an HTTP lookup that does.
    let silent = UdpSocket::bind((net.ip().as_str(), 0)).await.expect("bind");
    let http_ip = net.ip();
    let (http, http_task) = ip_lookup_server(&http_ip, "198.51.100.24\n").await;
    let mut b = net
        .start(|c| {
            fast(c);
            c.connect_timeout = Duration::from_millis(600);
            c.stun_servers = vec![silent.local_addr().expect("address").to_string()];
            c.ip_lookup_urls = vec![format!("http://{http}/")];
        })
        .await;
    let s = wait_for(
        "B to announce what the HTTP lookup reports",
        PATIENCE,
        || async {
            let s = status(&b).await;
            (s.address_source == "http").then_some(s)
        },
    )
    .await;
    assert_eq!(
        s.announced_address,
        format!("198.51.100.24:{}", b.peer_addr.port())
    );

    // Off by default: a node without them keeps its listen address.
    let mut c = net.start(fast).await;
    holds_for(
        "no lookup by default",
        Duration::from_millis(300),
        || async { status(&c).await.address_source == "listen" },
    )
    .await;
    stun_task.abort();
    http_task.abort();
    stop_all(vec![&mut a, &mut b, &mut c]).await;
}
