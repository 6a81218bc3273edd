//! Gossip by short transaction IDs (the first 16 bytes of each): announcements, pulls and their
//! answers take them with a peer that says it speaks them, and whole IDs with one that does not,
//! so a node of an older version still gossips with this one. Real nodes on loopback, and
//! hand-built peers that read the frames as they are sent.

use std::time::Duration;

use sorcha_peer::identity::Identity;
use sorcha_peer::ledger::tx_hash;
use sorcha_peer::protocol::pb::{self, frame::Body};
use sorcha_peer::rpc::SHORT_TX_IDS;
use tokio::sync::mpsc;

use crate::common::stranger::{self, Claims};
use crate::common::{PATIENCE, TestCluster, TestNode, metric, wait_until};

/// A hand-built peer that carries `register` (it advertises it), speaking short IDs or not. A
/// task of its own answers the node's pings at once, whatever the test is doing, and hands every
/// other frame to the test.
struct Carrier {
    peer_id: String,
    outgoing: mpsc::Sender<pb::Frame>,
    frames: mpsc::UnboundedReceiver<Body>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Carrier {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Carrier {
    async fn join(node: &TestNode, register: &str, short_ids: bool) -> Carrier {
        let me = Identity::generate();
        let claims = Claims {
            capabilities: if short_ids {
                vec![SHORT_TX_IDS.to_string()]
            } else {
                Vec::new()
            },
            ..Claims::default()
        };
        let channel = stranger::channel_from(node.peer_addr, "127.0.0.1", &me)
            .await
            .expect("connect");
        let session = stranger::open_session(channel, &me, &claims)
            .await
            .expect("handshake");
        let (to_test, frames) = mpsc::unbounded_channel();
        let (pongs, mut incoming) = (session.outgoing.clone(), session.incoming);
        let reader = tokio::spawn(async move {
            while let Ok(Some(frame)) = incoming.message().await {
                let body = match frame.body {
                    Some(Body::Ping(p)) => Body::Pong(pb::Pong {
                        sequence: p.sequence,
                    }),
                    Some(other) => {
                        if to_test.send(other).is_err() {
                            break;
                        }
                        continue;
                    }
                    None => continue,
                };
                if pongs.send(pb::Frame { body: Some(body) }).await.is_err() {
                    break;
                }
            }
        });
        let carrier = Carrier {
            peer_id: session.peer_id,
            outgoing: session.outgoing,
            frames,
            reader,
        };
        let advert = pb::RegisterHeight {
            register_id: register.into(),
            height: 0,
            head_hash: vec![0; 32],
            latest_version: 0,
            full_replica: false,
            is_origin: false,
        };
        carrier
            .send(Body::Advertise(pb::Advertise {
                registers: vec![advert],
            }))
            .await;
        carrier
    }

    async fn send(&self, body: Body) {
        self.outgoing
            .send(pb::Frame { body: Some(body) })
            .await
            .expect("the session is open");
    }

    /// The next frame `pick` takes; panics after `PATIENCE` or when the session ends.
    async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(Body) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let body = tokio::time::timeout_at(deadline, self.frames.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {PATIENCE:?}"))
                .unwrap_or_else(|| panic!("the session ended before {what}"));
            if let Some(found) = pick(body) {
                return found;
            }
        }
    }

    async fn announcement(&mut self) -> pb::Announce {
        self.next("announcement", |b| match b {
            Body::Announce(a) => Some(a),
            _ => None,
        })
        .await
    }

    async fn pull(
        &mut self,
        request_id: u64,
        register: &str,
        tx_ids: Vec<Vec<u8>>,
        short_ids: Vec<u8>,
    ) -> pb::TransactionsBatch {
        self.send(Body::PullTransactions(pb::PullTransactions {
            request_id,
            register_id: register.into(),
            tx_ids,
            short_ids,
        }))
        .await;
        self.next("answer to the pull", |b| match b {
            Body::TransactionsBatch(t) if t.request_id == request_id => Some(t),
            _ => None,
        })
        .await
    }
}

/// A node announces a transaction by its short ID to a peer that speaks them and by its whole
/// ID to one that does not, and serves a pull by either, answering "missing" in the form asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_peer_is_told_and_asked_in_the_form_it_speaks() {
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.exchange_interval = Duration::ZERO).await;
    a.client
        .create_register("mixed", true)
        .await
        .expect("create");
    let mut new = Carrier::join(&a, "mixed", true).await;
    let mut old = Carrier::join(&a, "mixed", false).await;
    wait_until("A to see both carriers", PATIENCE, || async {
        a.client.available_registers().await.is_ok_and(|r| {
            r.iter()
                .any(|x| x.register_id == "mixed" && x.peer_count >= 2)
        })
    })
    .await;

    let payload = b"told in two forms".to_vec();
    let whole = tx_hash(&payload);
    a.client
        .submit("mixed", payload.clone())
        .await
        .expect("submit");

    let to_new = new.announcement().await;
    assert_eq!(to_new.short_ids, whole[..16].to_vec(), "16 bytes, not 32");
    assert!(to_new.tx_ids.is_empty());
    let to_old = old.announcement().await;
    assert_eq!(to_old.tx_ids, vec![whole.to_vec()]);
    assert!(to_old.short_ids.is_empty(), "an older peer reads whole IDs");

    // Served by short ID; what is not here comes back missing, as a short ID.
    let unknown = tx_hash(b"never submitted");
    let asked: Vec<u8> = [&whole[..16], &unknown[..16]].concat();
    let answer = new.pull(1, "mixed", Vec::new(), asked).await;
    assert_eq!(answer.error, "");
    assert_eq!(answer.payloads, vec![payload.clone()]);
    assert_eq!(answer.missing_short, unknown[..16].to_vec());
    assert!(answer.missing.is_empty());

    // Served by whole ID, as before.
    let answer = old
        .pull(
            2,
            "mixed",
            vec![whole.to_vec(), unknown.to_vec()],
            Vec::new(),
        )
        .await;
    assert_eq!(answer.payloads, vec![payload]);
    assert_eq!(answer.missing, vec![unknown.to_vec()]);
    assert!(answer.missing_short.is_empty());

    // A short ID that does not divide into 16 bytes is a malformed announcement.
    new.send(Body::Announce(pb::Announce {
        register_id: "mixed".into(),
        tx_ids: Vec::new(),
        short_ids: vec![1; 17],
    }))
    .await;
    wait_until(
        "the malformed announcement to cost its peer",
        PATIENCE,
        || async {
            a.view_of(&new.peer_id).await.is_some_and(|p| {
                p.quality_components
                    .last_penalty
                    .is_some_and(|l| l.reason.contains("malformed announcement"))
            })
        },
    )
    .await;
    drop((new, old));
    a.stop().await;
}

/// Between two nodes of this version every announced transaction costs 16 bytes and a little
/// framing: under 20 bytes an ID, where whole IDs cost 34 (32 and their protobuf tag and
/// length). The metric counts the bytes as encoded for the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_between_nodes_cost_half_the_bytes_of_whole_ids() {
    let mut net = TestCluster::new();
    let (mut a, mut b) = net.replicated_pair("halved").await;
    let payloads: Vec<String> = (0..300).map(|i| format!("halved-{i}")).collect();
    let answer = b
        .client
        .submit_batch("halved", payloads)
        .await
        .expect("submit");
    for tx in &answer.transactions {
        a.wait_sealed("halved", &tx.transaction_id, PATIENCE).await;
    }
    let text = b.client.metrics().await.expect("metrics");
    let ids = metric(&text, "sorcha_peer_gossip_announcements_sent_total");
    let bytes = metric(&text, "sorcha_peer_gossip_announce_bytes_total");
    assert!(ids >= 300.0, "B announced {ids} IDs");
    let per_id = bytes / ids;
    assert!(
        (16.0..20.0).contains(&per_id),
        "{per_id:.1} bytes an announced ID ({bytes} bytes for {ids} IDs)"
    );
    b.stop().await;
    a.stop().await;
}
