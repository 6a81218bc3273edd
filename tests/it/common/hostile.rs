//! A hand-built peer speaking the real protocol with a fresh identity, for hostile behaviour:
//! it completes the handshake itself and then does whatever a test makes it do.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message;
use sorcha_peer::identity::{self, Identity, Role};
use sorcha_peer::rpc::pb::{self, frame::Body, peer_session_client::PeerSessionClient};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::TestNode;

/// Encoded `NodeInfo` of a hand-built peer.
pub fn info(public_key: Vec<u8>, version: u32) -> Vec<u8> {
    pb::NodeInfo {
        public_key,
        listen_address: "127.0.0.40:1".into(),
        name: "mallory".into(),
        protocol_version: version,
        software_version: "evil".into(),
        capabilities: vec![],
    }
    .encode_to_vec()
}

/// Completes a real handshake as `me` and returns the open session (outgoing sender and
/// incoming stream), so a test can speak the protocol as a hand-built peer.
pub async fn session_as(
    node: &TestNode,
    me: &Identity,
) -> (mpsc::Sender<pb::Frame>, tonic::Streaming<pb::Frame>) {
    let mut client = PeerSessionClient::connect(format!("http://{}", node.peer_addr))
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(8);
    let local = info(me.public_key().to_vec(), 1);
    let nonce = identity::nonce();
    let hello = Body::Hello(pb::Hello {
        node_info: local.clone(),
        nonce: nonce.clone(),
    });
    tx.send(pb::Frame { body: Some(hello) })
        .await
        .expect("hello");
    let mut incoming = client
        .session(ReceiverStream::new(rx))
        .await
        .expect("open")
        .into_inner();
    loop {
        let frame = incoming
            .message()
            .await
            .expect("frame")
            .expect("open stream");
        match frame.body {
            Some(Body::HelloAck(ack)) => {
                let t = identity::transcript(&local, &nonce, &ack.node_info, &ack.nonce);
                let signature = me.sign_transcript(Role::Dialer, &t);
                let auth = Body::Auth(pb::Auth { signature });
                tx.send(pb::Frame { body: Some(auth) }).await.expect("auth");
            }
            Some(Body::Welcome(_)) => return (tx, incoming),
            other => panic!("unexpected frame during handshake: {other:?}"),
        }
    }
}

/// A connected peer that stalls transaction requests: it answers heartbeats (so the node keeps
/// it), and answers every pull of announced transactions only after `delay`, and then with
/// every asked ID "missing".
pub struct StallingPeer {
    pub peer_id: String,
    outbox: mpsc::Sender<pb::Frame>,
    pulls: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl StallingPeer {
    pub async fn connect(node: &TestNode, delay: Duration) -> StallingPeer {
        let me = Identity::generate();
        let (outbox, mut incoming) = session_as(node, &me).await;
        let pulls = Arc::new(AtomicUsize::new(0));
        let task = {
            let outbox = outbox.clone();
            let pulls = pulls.clone();
            tokio::spawn(async move {
                while let Ok(Some(frame)) = incoming.message().await {
                    match frame.body {
                        Some(Body::Ping(ping)) => {
                            let pong = Body::Pong(pb::Pong {
                                sequence: ping.sequence,
                            });
                            if outbox.send(pb::Frame { body: Some(pong) }).await.is_err() {
                                break;
                            }
                        }
                        Some(Body::PullTransactions(pull)) => {
                            pulls.fetch_add(pull.tx_ids.len(), Ordering::SeqCst);
                            let outbox = outbox.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let answer = Body::TransactionsBatch(pb::TransactionsBatch {
                                    request_id: pull.request_id,
                                    register_id: pull.register_id,
                                    payloads: vec![],
                                    missing: pull.tx_ids,
                                    error: String::new(),
                                });
                                // The session may be gone by then; that is fine.
                                let _ = outbox.send(pb::Frame { body: Some(answer) }).await;
                            });
                        }
                        _ => {}
                    }
                }
            })
        };
        StallingPeer {
            peer_id: me.peer_id().to_string(),
            outbox,
            pulls,
            task,
        }
    }

    /// Announces `ids` of `register`, at most 1 000 per message (as nodes do).
    pub async fn announce(&self, register: &str, ids: &[[u8; 32]]) {
        for chunk in ids.chunks(1000) {
            let announce = Body::Announce(pb::Announce {
                register_id: register.into(),
                tx_ids: chunk.iter().map(|id| id.to_vec()).collect(),
            });
            self.outbox
                .send(pb::Frame {
                    body: Some(announce),
                })
                .await
                .expect("announce");
        }
    }

    /// Transaction IDs the node has asked this peer for so far.
    pub fn pulled(&self) -> usize {
        self.pulls.load(Ordering::SeqCst)
    }
}

impl Drop for StallingPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
