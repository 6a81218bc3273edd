//! One peer session: the handshake on each side, then the loop that exchanges heartbeats and
//! peer lists until either side leaves, heartbeats go unanswered, or the stream breaks.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tonic::Streaming;

use super::pb::{self, frame::Body};
use super::{CAPABILITIES, PROTOCOL_VERSION};
use crate::clock::now_ms;
use crate::config::{MAX_NAME_LEN, validate_host_port};
use crate::identity::{self, NONCE_LEN, Role, peer_id_for};
use crate::peers::{
    CloseOutcome, Direction, KnownAddress, PeerManager, Refusal, SessionCommand, SessionHandle,
    VerifiedPeer,
};

/// Validity penalty for a frame that breaks the protocol after the handshake.
const PROTOCOL_VIOLATION_PENALTY: f64 = 0.2;

/// Why a handshake did not produce a session.
#[derive(Debug)]
pub enum HandshakeError {
    /// The other side or this node refused on purpose (ban, duplicate, self, full).
    Refused(Refusal),
    /// Anything else: bad frames, bad signature, broken stream.
    Failed(String),
}

fn failed(message: impl Into<String>) -> HandshakeError {
    HandshakeError::Failed(message.into())
}

/// This node's `NodeInfo`, encoded as it is signed.
pub fn local_info(manager: &PeerManager) -> Vec<u8> {
    let config = manager.config();
    pb::NodeInfo {
        public_key: manager.identity().public_key().to_vec(),
        listen_address: config.announced_address(),
        name: config.name.clone(),
        protocol_version: PROTOCOL_VERSION,
        software_version: crate::VERSION.to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    }
    .encode_to_vec()
}

/// Decodes and checks the other side's `NodeInfo`; `seen_from` replaces an unspecified host.
fn verify_info(
    bytes: &[u8],
    nonce: &[u8],
    seen_from: IpAddr,
) -> Result<(pb::NodeInfo, String), HandshakeError> {
    let info =
        pb::NodeInfo::decode(bytes).map_err(|e| failed(format!("malformed node info: {e}")))?;
    if info.public_key.len() != 32 {
        return Err(failed("node info carries no valid public key"));
    }
    if nonce.len() != NONCE_LEN {
        return Err(failed("handshake nonce has the wrong length"));
    }
    if info.protocol_version != PROTOCOL_VERSION {
        return Err(HandshakeError::Refused(Refusal::Invalid(format!(
            "unsupported protocol version {} (this node speaks {PROTOCOL_VERSION})",
            info.protocol_version
        ))));
    }
    let address = match info.listen_address.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => {
            SocketAddr::new(seen_from, addr.port()).to_string()
        }
        Ok(addr) => addr.to_string(),
        Err(_) => {
            validate_host_port(&info.listen_address)
                .map_err(|e| failed(format!("bad listen address: {e}")))?;
            info.listen_address.clone()
        }
    };
    Ok((info, address))
}

fn verified_peer(info: pb::NodeInfo, address: String) -> VerifiedPeer {
    let name: String = info
        .name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_LEN)
        .collect();
    VerifiedPeer {
        peer_id: peer_id_for(&info.public_key),
        public_key: hex::encode(&info.public_key),
        name,
        address,
        software_version: info.software_version.chars().take(MAX_NAME_LEN).collect(),
    }
}

fn frame(body: Body) -> pb::Frame {
    pb::Frame { body: Some(body) }
}

fn goodbye(reason: &str) -> pb::Frame {
    frame(Body::Goodbye(pb::Goodbye {
        reason: reason.to_string(),
    }))
}

/// Queues a frame without waiting: a peer that does not drain its stream is not keeping up.
fn push(outbox: &mpsc::Sender<pb::Frame>, f: pb::Frame) -> Result<(), String> {
    outbox.try_send(f).map_err(|e| match e {
        TrySendError::Full(_) => "peer is not reading (outgoing queue full)".to_string(),
        TrySendError::Closed(_) => "stream closed".to_string(),
    })
}

async fn next_body(incoming: &mut Streaming<pb::Frame>) -> Result<Body, HandshakeError> {
    match incoming.message().await {
        Ok(Some(pb::Frame { body: Some(body) })) => Ok(body),
        Ok(Some(_)) => Err(failed("empty frame")),
        Ok(None) => Err(failed("stream closed during handshake")),
        Err(status) => Err(failed(format!(
            "stream error during handshake: {}",
            status.message()
        ))),
    }
}

/// A goodbye received during the handshake, as a refusal.
fn refusal_from_goodbye(reason: String) -> HandshakeError {
    let refusal = if reason == Refusal::Duplicate.to_string() {
        Refusal::Duplicate
    } else if reason == Refusal::SelfConnection.to_string() {
        Refusal::SelfConnection
    } else {
        Refusal::Invalid(format!("refused by peer: {reason}"))
    };
    HandshakeError::Refused(refusal)
}

/// Accepting side: runs the handshake for an inbound stream, then the session.
pub async fn accept(
    manager: Arc<PeerManager>,
    remote_ip: IpAddr,
    mut incoming: Streaming<pb::Frame>,
    outbox: mpsc::Sender<pb::Frame>,
    shutdown: CancellationToken,
) {
    let timeout = manager.config().connect_timeout;
    let handshake = tokio::time::timeout(
        timeout,
        accept_handshake(&manager, remote_ip, &mut incoming, &outbox),
    )
    .await
    .unwrap_or_else(|_| Err(failed("handshake timed out")));
    match handshake {
        Ok((peer_id, handle)) => {
            run(manager, peer_id, handle, incoming, outbox, shutdown, false).await
        }
        Err(e) => {
            let (refused, reason) = match e {
                HandshakeError::Refused(r) => (true, r.to_string()),
                HandshakeError::Failed(m) => (false, m),
            };
            tracing::debug!(%remote_ip, %reason, "inbound handshake did not complete");
            manager.handshake_failed(refused);
            let _ = push(&outbox, goodbye(&reason)); // best effort: the peer may be gone already
        }
    }
}

async fn accept_handshake(
    manager: &PeerManager,
    remote_ip: IpAddr,
    incoming: &mut Streaming<pb::Frame>,
    outbox: &mpsc::Sender<pb::Frame>,
) -> Result<(String, SessionHandle), HandshakeError> {
    let Body::Hello(hello) = next_body(incoming).await? else {
        return Err(failed("expected Hello"));
    };
    let (info, address) = verify_info(&hello.node_info, &hello.nonce, remote_ip)?;
    let local = local_info(manager);
    let nonce = identity::nonce();
    let transcript = identity::transcript(&hello.node_info, &hello.nonce, &local, &nonce);
    let signature = manager
        .identity()
        .sign_transcript(Role::Acceptor, &transcript);
    push(
        outbox,
        frame(Body::HelloAck(pb::HelloAck {
            node_info: local,
            nonce,
            signature,
        })),
    )
    .map_err(failed)?;
    let auth = match next_body(incoming).await? {
        Body::Auth(auth) => auth,
        Body::Goodbye(g) => return Err(refusal_from_goodbye(g.reason)),
        _ => return Err(failed("expected Auth")),
    };
    identity::verify_transcript(&info.public_key, Role::Dialer, &transcript, &auth.signature)
        .map_err(|e| failed(e.to_string()))?;
    let peer = verified_peer(info, address);
    let peer_id = peer.peer_id.clone();
    let handle = manager
        .register_connection(peer, Direction::Inbound, remote_ip, None)
        .map_err(HandshakeError::Refused)?;
    push(outbox, frame(Body::Welcome(pb::Welcome {}))).map_err(failed)?;
    Ok((peer_id, handle))
}

/// Dialling side of the handshake over an already opened stream. Returns the verified peer,
/// not yet registered (the dialler registers it with its dial target).
pub async fn dial_handshake(
    manager: &PeerManager,
    remote_ip: IpAddr,
    local: &[u8],
    nonce: &[u8],
    incoming: &mut Streaming<pb::Frame>,
    outbox: &mpsc::Sender<pb::Frame>,
) -> Result<VerifiedPeer, HandshakeError> {
    let ack = match next_body(incoming).await? {
        Body::HelloAck(ack) => ack,
        Body::Goodbye(g) => return Err(refusal_from_goodbye(g.reason)),
        _ => return Err(failed("expected HelloAck")),
    };
    let (info, address) = verify_info(&ack.node_info, &ack.nonce, remote_ip)?;
    let transcript = identity::transcript(local, nonce, &ack.node_info, &ack.nonce);
    identity::verify_transcript(
        &info.public_key,
        Role::Acceptor,
        &transcript,
        &ack.signature,
    )
    .map_err(|e| failed(e.to_string()))?;
    let peer = verified_peer(info, address);
    if peer.peer_id == manager.identity().peer_id() {
        let _ = push(outbox, goodbye(&Refusal::SelfConnection.to_string()));
        return Err(HandshakeError::Refused(Refusal::SelfConnection));
    }
    let signature = manager
        .identity()
        .sign_transcript(Role::Dialer, &transcript);
    push(outbox, frame(Body::Auth(pb::Auth { signature }))).map_err(failed)?;
    match next_body(incoming).await? {
        Body::Welcome(_) => Ok(peer),
        Body::Goodbye(g) => Err(refusal_from_goodbye(g.reason)),
        _ => Err(failed("expected Welcome")),
    }
}

/// The `Hello` frame that opens a dial.
pub fn hello(local: Vec<u8>, nonce: Vec<u8>) -> pb::Frame {
    frame(Body::Hello(pb::Hello {
        node_info: local,
        nonce,
    }))
}

fn to_wire(entries: Vec<KnownAddress>) -> Vec<pb::PeerAddress> {
    entries
        .into_iter()
        .map(|e| pb::PeerAddress {
            peer_id: e.peer_id,
            address: e.address,
            last_seen_ms: e.last_seen_ms,
        })
        .collect()
}

fn from_wire(entries: Vec<pb::PeerAddress>) -> Vec<KnownAddress> {
    entries
        .into_iter()
        .map(|e| KnownAddress {
            peer_id: e.peer_id,
            address: e.address,
            last_seen_ms: e.last_seen_ms,
        })
        .collect()
}

/// The session loop, the same on both sides once the handshake is done.
pub async fn run(
    manager: Arc<PeerManager>,
    peer_id: String,
    handle: SessionHandle,
    mut incoming: Streaming<pb::Frame>,
    outbox: mpsc::Sender<pb::Frame>,
    shutdown: CancellationToken,
    exchange_first: bool,
) {
    let config = manager.config().clone();
    let SessionHandle {
        conn_id,
        mut commands,
    } = handle;
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence = 0u64;
    let mut outstanding: Option<(u64, Instant)> = None;
    let mut missed = 0u32;
    let mut exchange_pending: Option<(u64, Instant)> = None;
    let exchange_timeout = config.heartbeat_interval * config.missed_heartbeats;
    let mut exchange_first = exchange_first;

    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                let _ = push(&outbox, goodbye("node shutting down"));
                break CloseOutcome::Graceful("node shutting down".into());
            }
            command = async { if exchange_first { Some(SessionCommand::ExchangePeers) } else { commands.recv().await } } => match command {
                Some(SessionCommand::Close(reason)) => {
                    let _ = push(&outbox, goodbye(&reason));
                    break CloseOutcome::Graceful(reason);
                }
                Some(SessionCommand::ExchangePeers) => {
                    exchange_first = false;
                    if exchange_pending.is_some() {
                        continue;
                    }
                    sequence += 1;
                    let peers = to_wire(manager.exchange_entries(&peer_id, config.exchange_max_entries));
                    let request = pb::PeerExchangeRequest {
                        request_id: sequence,
                        peers,
                        max_peers: config.exchange_max_entries as u32,
                    };
                    if let Err(e) = push(&outbox, frame(Body::ExchangeRequest(request))) {
                        break CloseOutcome::Failed(e);
                    }
                    exchange_pending = Some((sequence, Instant::now()));
                }
                // The manager dropped this connection (replaced by a newer one).
                None => break CloseOutcome::Graceful("replaced by a newer connection".into()),
            },
            _ = heartbeat.tick() => {
                if outstanding.take().is_some() {
                    missed += 1;
                    let too_many_failures = manager.record_failure(&peer_id, "missed heartbeat");
                    if missed >= config.missed_heartbeats || too_many_failures {
                        let reason = format!("{missed} heartbeats unanswered");
                        let _ = push(&outbox, goodbye(&reason));
                        break CloseOutcome::Failed(reason);
                    }
                }
                if exchange_pending.is_some_and(|(_, at)| at.elapsed() > exchange_timeout) {
                    exchange_pending = None;
                    manager.record_failure(&peer_id, "peer exchange unanswered");
                }
                sequence += 1;
                let ping = pb::Ping { sequence, sent_at_ms: now_ms() };
                if let Err(e) = push(&outbox, frame(Body::Ping(ping))) {
                    break CloseOutcome::Failed(e);
                }
                outstanding = Some((sequence, Instant::now()));
            }
            message = incoming.message() => match message {
                Ok(Some(pb::Frame { body: Some(body) })) => {
                    if let Err(e) = handle_frame(&manager, &peer_id, body, &outbox, &mut outstanding, &mut missed, &mut exchange_pending) {
                        break e;
                    }
                }
                Ok(Some(_)) => manager.penalize(&peer_id, PROTOCOL_VIOLATION_PENALTY, "protocol violation: empty frame"),
                Ok(None) => break CloseOutcome::Failed("stream ended without goodbye".into()),
                Err(status) => break CloseOutcome::Failed(format!("stream error: {}", status.message())),
            },
        }
    };
    manager.connection_closed(&peer_id, conn_id, &outcome);
}

/// Handles one frame of an established session. `Err` ends the session with that outcome.
fn handle_frame(
    manager: &PeerManager,
    peer_id: &str,
    body: Body,
    outbox: &mpsc::Sender<pb::Frame>,
    outstanding: &mut Option<(u64, Instant)>,
    missed: &mut u32,
    exchange_pending: &mut Option<(u64, Instant)>,
) -> Result<(), CloseOutcome> {
    match body {
        Body::Ping(ping) => push(
            outbox,
            frame(Body::Pong(pb::Pong {
                sequence: ping.sequence,
            })),
        )
        .map_err(CloseOutcome::Failed),
        Body::Pong(pong) => {
            // A pong for an older ping (answered after we gave up on it) is ignored.
            if let Some((sequence, sent)) = *outstanding
                && sequence == pong.sequence
            {
                *outstanding = None;
                *missed = 0;
                manager.record_success(peer_id, Some(sent.elapsed()));
            }
            Ok(())
        }
        Body::ExchangeRequest(request) => {
            // With exchange off this node neither learns nor shares, but still answers (with
            // nothing) so the asking peer does not count a failure.
            let peers = if manager.config().exchange_enabled() {
                manager.learn(peer_id, from_wire(request.peers));
                let max = (request.max_peers as usize).min(manager.config().exchange_max_entries);
                to_wire(manager.exchange_entries(peer_id, max))
            } else {
                Vec::new()
            };
            let response = pb::PeerExchangeResponse {
                request_id: request.request_id,
                peers,
            };
            push(outbox, frame(Body::ExchangeResponse(response))).map_err(CloseOutcome::Failed)
        }
        Body::ExchangeResponse(response) => {
            match *exchange_pending {
                Some((id, _)) if id == response.request_id => {
                    *exchange_pending = None;
                    manager.learn(peer_id, from_wire(response.peers));
                    manager.record_success(peer_id, None);
                }
                _ => manager.penalize(
                    peer_id,
                    PROTOCOL_VIOLATION_PENALTY,
                    "protocol violation: unsolicited peer-exchange response",
                ),
            }
            Ok(())
        }
        Body::Goodbye(g) => Err(CloseOutcome::Graceful(format!(
            "peer said goodbye: {}",
            g.reason
        ))),
        Body::Hello(_) | Body::HelloAck(_) | Body::Auth(_) | Body::Welcome(_) => {
            manager.penalize(
                peer_id,
                PROTOCOL_VIOLATION_PENALTY,
                "protocol violation: handshake frame after the handshake",
            );
            Ok(())
        }
    }
}
