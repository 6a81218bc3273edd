//! A hand-built peer: it speaks the real protocol from any loopback address with any identity
//! and any claims, then behaves as the test (or the attack benchmark) wants. Shared by
//! `tests/it/hostile.rs`, `benches/attack.rs` and the `session` fuzz target (`fuzz/`), so it
//! uses only the library's public API.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prost::Message;
use sorcha_peer::config::PeerTls;
use sorcha_peer::identity::{self, Identity, Role};
use sorcha_peer::protocol::pb::{self, frame::Body, peer_session_client::PeerSessionClient};
use sorcha_peer::transport::Transport;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Codec;
use tonic::codegen::{Bytes, Service, http};
use tonic::transport::Channel;

/// How long a hand-built peer waits for each handshake answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// What a hand-built peer says about itself.
pub struct Claims {
    pub listen_address: String,
    pub name: String,
    pub software_version: String,
    /// None by default: a stranger speaks the protocol as its first version did.
    pub capabilities: Vec<String>,
}

impl Default for Claims {
    fn default() -> Self {
        Claims {
            listen_address: "0.0.0.0:1".into(),
            name: "stranger".into(),
            software_version: "0".into(),
            capabilities: Vec::new(),
        }
    }
}

pub fn node_info(me: &Identity, claims: &Claims) -> Vec<u8> {
    pb::NodeInfo {
        public_key: me.public_key().to_vec(),
        listen_address: claims.listen_address.clone(),
        name: claims.name.clone(),
        protocol_version: sorcha_peer::rpc::PROTOCOL_VERSION,
        software_version: claims.software_version.clone(),
        capabilities: claims.capabilities.clone(),
        platform_address: String::new(),
    }
    .encode_to_vec()
}

/// A `Hello` frame for `me`.
pub fn hello(me: &Identity, claims: &Claims) -> pb::Frame {
    pb::Frame {
        body: Some(Body::Hello(pb::Hello {
            node_info: node_info(me, claims),
            nonce: identity::nonce(),
            ..Default::default()
        })),
    }
}

/// A channel to the peer port `to` whose connection comes from `from`, over the default
/// transport (TLS with `me`'s node-key certificate, as a real node dials).
pub async fn channel_from(to: SocketAddr, from: &str, me: &Identity) -> Result<Channel, String> {
    let from = from
        .parse()
        .map_err(|e| format!("bad address {from}: {e}"))?;
    let transport = Transport::new(PeerTls::NodeKey, me).map_err(|e| e.to_string())?;
    let connection = tokio::time::timeout(
        Duration::from_secs(2),
        transport.connect(to, Some(from), None),
    )
    .await
    .map_err(|_| format!("no connection to {to} within 2s"))?
    .map_err(|e| e.to_string())?;
    sorcha_peer::transport::channel(connection.stream, to)
        .await
        .map_err(|e| e.to_string())
}

/// An established session, before deciding how to behave.
pub struct Session {
    pub outgoing: mpsc::Sender<pb::Frame>,
    pub incoming: tonic::Streaming<pb::Frame>,
    pub peer_id: String,
}

/// Runs the handshake as `me` over `channel`. `Err` carries the node's goodbye (or the
/// failure) when it refused.
pub async fn open_session(
    channel: Channel,
    me: &Identity,
    claims: &Claims,
) -> Result<Session, String> {
    let mut client = PeerSessionClient::new(channel)
        .max_decoding_message_size(sorcha_peer::rpc::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(sorcha_peer::rpc::MAX_MESSAGE_SIZE);
    let (tx, rx) = mpsc::channel(64);
    let local = node_info(me, claims);
    let nonce = identity::nonce();
    tx.send(pb::Frame {
        body: Some(Body::Hello(pb::Hello {
            node_info: local.clone(),
            nonce: nonce.clone(),
            ..Default::default()
        })),
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut incoming = client
        .session(ReceiverStream::new(rx))
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let auth = |frame| {
        let tx = tx.clone();
        async move { tx.send(frame).await.map_err(|e| e.to_string()) }
    };
    answer_handshake(me, &local, &nonce, &mut incoming, auth).await?;
    Ok(Session {
        outgoing: tx,
        incoming,
        peer_id: me.peer_id().to_string(),
    })
}

/// The dialling side of the handshake after `Hello` went out: answers the `HelloAck` with
/// `Auth` (through `send`) and waits for `Welcome`. `Err` carries the node's goodbye.
async fn answer_handshake<F, Fut>(
    me: &Identity,
    local: &[u8],
    nonce: &[u8],
    incoming: &mut tonic::Streaming<pb::Frame>,
    mut send: F,
) -> Result<(), String>
where
    F: FnMut(pb::Frame) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        let frame = tokio::time::timeout(ANSWER_TIMEOUT, incoming.message())
            .await
            .map_err(|_| "no answer".to_string())?
            .map_err(|s| s.message().to_string())?
            .ok_or("stream closed")?;
        match frame.body {
            Some(Body::HelloAck(ack)) => {
                let t = identity::transcript(local, nonce, &ack.node_info, &ack.nonce);
                let signature = me.sign_transcript(Role::Dialer, &t);
                send(pb::Frame {
                    body: Some(Body::Auth(pb::Auth { signature })),
                })
                .await?;
            }
            Some(Body::Welcome(_)) => return Ok(()),
            Some(Body::Goodbye(g)) => return Err(g.reason),
            _ => {}
        }
    }
}

/// A session kept up by a background task: it either answers pings (and ignores the rest) or
/// never reads another byte. Dropping it ends the session.
pub struct Stranger {
    outgoing: mpsc::Sender<pb::Frame>,
    pub peer_id: String,
    task: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Keeps the session alive by answering the node's pings.
    pub fn answering(self) -> Stranger {
        let Session {
            outgoing,
            mut incoming,
            peer_id,
        } = self;
        let pong = outgoing.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(frame)) = incoming.message().await {
                if let Some(Body::Ping(p)) = frame.body {
                    let body = Body::Pong(pb::Pong {
                        sequence: p.sequence,
                    });
                    if pong.send(pb::Frame { body: Some(body) }).await.is_err() {
                        break;
                    }
                }
            }
        });
        Stranger {
            outgoing,
            peer_id,
            task,
        }
    }

    /// Holds the stream open without reading from it again.
    pub fn silent(self) -> Stranger {
        let Session {
            outgoing,
            incoming,
            peer_id,
        } = self;
        let task = tokio::spawn(async move {
            let _held = incoming;
            std::future::pending::<()>().await;
        });
        Stranger {
            outgoing,
            peer_id,
            task,
        }
    }
}

impl Session {
    /// Stalls transaction requests: answers heartbeats (so the node keeps it) and every pull
    /// of announced transactions only after `delay`, and then with every asked ID "missing".
    pub fn stalling(self, delay: Duration) -> StallingPeer {
        let Session {
            outgoing,
            mut incoming,
            peer_id,
        } = self;
        let pulls = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(AtomicUsize::new(0));
        let task = {
            let outgoing = outgoing.clone();
            let (pulls, answers) = (pulls.clone(), answers.clone());
            tokio::spawn(async move {
                while let Ok(Some(frame)) = incoming.message().await {
                    match frame.body {
                        Some(Body::Ping(ping)) => {
                            let pong = Body::Pong(pb::Pong {
                                sequence: ping.sequence,
                            });
                            if outgoing.send(pb::Frame { body: Some(pong) }).await.is_err() {
                                break;
                            }
                        }
                        Some(Body::PullTransactions(pull)) => {
                            pulls.fetch_add(pull.tx_ids.len(), Ordering::SeqCst);
                            let (outgoing, answers) = (outgoing.clone(), answers.clone());
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                answers.fetch_add(1, Ordering::SeqCst);
                                let answer = Body::TransactionsBatch(pb::TransactionsBatch {
                                    request_id: pull.request_id,
                                    register_id: pull.register_id,
                                    payloads: vec![],
                                    missing: pull.tx_ids,
                                    missing_short: pull.short_ids,
                                    error: String::new(),
                                });
                                // The session may be gone by then; that is fine.
                                let _ = outgoing.send(pb::Frame { body: Some(answer) }).await;
                            });
                        }
                        _ => {}
                    }
                }
            })
        };
        StallingPeer {
            stranger: Stranger {
                outgoing,
                peer_id,
                task,
            },
            pulls,
            answers,
        }
    }
}

/// A session that stalls every transaction request (see [`Session::stalling`]).
pub struct StallingPeer {
    pub stranger: Stranger,
    pulls: Arc<AtomicUsize>,
    answers: Arc<AtomicUsize>,
}

impl StallingPeer {
    pub fn peer_id(&self) -> &str {
        &self.stranger.peer_id
    }

    /// Announces `ids` of `register`, at most 1 000 per message (as nodes do).
    pub async fn announce(&self, register: &str, ids: &[[u8; 32]]) -> Result<(), String> {
        for chunk in ids.chunks(1000) {
            let announce = Body::Announce(pb::Announce {
                register_id: register.into(),
                tx_ids: chunk.iter().map(|id| id.to_vec()).collect(),
                short_ids: Vec::new(),
            });
            self.stranger.send(announce).await?;
        }
        Ok(())
    }

    /// Transaction IDs the node has asked this peer for so far.
    pub fn pulled(&self) -> usize {
        self.pulls.load(Ordering::SeqCst)
    }

    /// Pulls this peer has answered so far (each after its stall).
    pub fn answered(&self) -> usize {
        self.answers.load(Ordering::SeqCst)
    }
}

impl Stranger {
    pub async fn send(&self, body: Body) -> Result<(), String> {
        self.outgoing
            .send(pb::Frame { body: Some(body) })
            .await
            .map_err(|_| "session closed".to_string())
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Handshakes as a fresh identity from `from` and answers pings.
pub async fn connect(to: SocketAddr, from: &str, claims: &Claims) -> Result<Stranger, String> {
    let me = Identity::generate();
    let channel = channel_from(to, from, &me).await?;
    Ok(open_session(channel, &me, claims).await?.answering())
}

/// A gRPC call on the peer protocol whose request body the hand-built peer writes byte by byte,
/// framing included: it can announce a message and send only part of it.
pub struct RawCall {
    /// The request body; dropping it ends the body.
    pub body: mpsc::Sender<Bytes>,
    /// The node's answer: its response headers, once sent.
    pub response: tokio::task::JoinHandle<Result<http::Response<tonic::body::Body>, String>>,
}

/// A request body fed from a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(http_body::Frame::data(data))))
    }
}

/// Starts a call of `method` (`Session`, `GetRegisterHeights`) on `channel`.
pub fn raw_call(channel: Channel, method: &str) -> RawCall {
    let (body, chunks) = mpsc::channel(16);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("/sorcha.peer.v1.PeerSession/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(ChannelBody(chunks)));
    let response = tokio::spawn(async move {
        let request = request.map_err(|e| e.to_string())?;
        let mut channel = channel;
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| e.to_string())?;
        channel.call(request).await.map_err(|e| e.to_string())
    });
    RawCall { body, response }
}

/// The 5-byte gRPC prefix that announces a message of `len` bytes.
pub fn grpc_prefix(len: u32) -> Bytes {
    let mut prefix = vec![0];
    prefix.extend_from_slice(&len.to_be_bytes());
    Bytes::from(prefix)
}

/// `frame` as a whole gRPC message, prefix included.
pub fn grpc_message(frame: &pb::Frame) -> Bytes {
    let encoded = frame.encode_to_vec();
    let mut message = grpc_prefix(encoded.len() as u32).to_vec();
    message.extend(encoded);
    Bytes::from(message)
}

/// A whole gRPC message of `padding` bytes and a few more that a node in a session ignores: a
/// `Pong` answering no ping, padded with a field the protocol does not have (decoders skip
/// unknown fields).
pub fn padded_pong(padding: usize) -> Bytes {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut pong = Vec::with_capacity(padding + 16);
    encode_key(15, WireType::LengthDelimited, &mut pong);
    encode_varint(padding as u64, &mut pong);
    pong.resize(pong.len() + padding, 0);
    let mut frame = Vec::with_capacity(pong.len() + 16);
    encode_key(7, WireType::LengthDelimited, &mut frame);
    encode_varint(pong.len() as u64, &mut frame);
    frame.extend(pong);
    let mut message = grpc_prefix(frame.len() as u32).to_vec();
    message.extend(frame);
    Bytes::from(message)
}

/// The node's answer to a [`RawCall`] as a stream of frames (`Err`: the call was refused).
pub async fn raw_frames(
    call: RawCall,
) -> Result<(mpsc::Sender<Bytes>, tonic::Streaming<pb::Frame>), String> {
    let response = call.response.await.map_err(|e| e.to_string())??;
    if let Some(status) = tonic::Status::from_header_map(response.headers()) {
        return Err(status.message().to_string());
    }
    let status = response.status();
    let decoder = tonic_prost::ProstCodec::<pb::Frame, pb::Frame>::default().decoder();
    let incoming = tonic::Streaming::new_response(
        decoder,
        response.into_body(),
        status,
        None,
        Some(sorcha_peer::rpc::MAX_MESSAGE_SIZE),
    );
    Ok((call.body, incoming))
}

/// A session over a [`RawCall`]: after the handshake the hand-built peer writes raw bytes.
pub struct RawSession {
    pub body: mpsc::Sender<Bytes>,
    pub incoming: tonic::Streaming<pb::Frame>,
    pub peer_id: String,
}

/// Runs the handshake as `me` over a raw session call on `channel`.
pub async fn open_raw_session(
    channel: Channel,
    me: &Identity,
    claims: &Claims,
) -> Result<RawSession, String> {
    let call = raw_call(channel, "Session");
    let local = node_info(me, claims);
    let nonce = identity::nonce();
    let hello = pb::Frame {
        body: Some(Body::Hello(pb::Hello {
            node_info: local.clone(),
            nonce: nonce.clone(),
            ..Default::default()
        })),
    };
    call.body
        .send(grpc_message(&hello))
        .await
        .map_err(|e| e.to_string())?;
    let (body, mut incoming) = raw_frames(call).await?;
    let auth = |frame| {
        let body = body.clone();
        async move {
            body.send(grpc_message(&frame))
                .await
                .map_err(|e| e.to_string())
        }
    };
    answer_handshake(me, &local, &nonce, &mut incoming, auth).await?;
    Ok(RawSession {
        body,
        incoming,
        peer_id: me.peer_id().to_string(),
    })
}

/// A response body that yields its chunks and then holds the stream open.
struct HoldingBody(std::collections::VecDeque<Bytes>);

impl http_body::Body for HoldingBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.pop_front() {
            Some(data) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
            None => std::task::Poll::Pending,
        }
    }
}

/// The peer protocol as a hand-built acceptor speaks it: every call is answered with the same
/// raw bytes, and the answer is never finished.
#[derive(Clone)]
struct RawAnswer(Arc<Vec<Bytes>>);

impl tonic::server::NamedService for RawAnswer {
    const NAME: &'static str = "sorcha.peer.v1.PeerSession";
}

impl Service<http::Request<tonic::body::Body>> for RawAnswer {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: http::Request<tonic::body::Body>) -> Self::Future {
        let body = HoldingBody(self.0.iter().cloned().collect());
        let mut response = http::Response::new(tonic::body::Body::new(body));
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        std::future::ready(Ok(response))
    }
}

/// A plaintext peer port on `ip` (for nodes with `peer_tls = "off"`) that answers every call
/// with `answer`, raw bytes framing included, and never finishes. Serves until dropped.
pub async fn raw_acceptor(ip: &str, answer: Vec<Bytes>) -> (SocketAddr, AbortOnDrop) {
    let listener =
        tokio::net::TcpListener::bind((ip.parse::<std::net::IpAddr>().expect("an IP address"), 0))
            .await
            .expect("bind");
    let address = listener.local_addr().expect("bound address");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .add_service(RawAnswer(Arc::new(answer)))
        .serve_with_incoming(incoming);
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            eprintln!("hand-built acceptor stopped: {e}");
        }
    });
    (address, AbortOnDrop(task))
}

/// A task that ends when dropped.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
