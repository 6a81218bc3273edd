//! A peer connection from start to end, in both directions: inbound streams go through the
//! accepting handshake, outbound ones are dialled every `dial_interval` as the manager plans
//! (seeds that are down, known peers for free outbound slots) and opened by
//! [`super::dialer`]; either way a welcomed peer then runs the [`super::session`] loop. Kept
//! apart from the handshake and the dialler so those never depend on the session (which
//! depends on them through dial-backs).

use tokio_util::sync::CancellationToken;
use tonic::Streaming;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::admission::PeerConnectInfo;
use super::budget::SessionGate;
use super::dialer::open;
use super::frames::{refuse, say_goodbye};
use super::handshake::{Accepted, HandshakeError, accept_handshake, failed};
use super::outbox::Outbox;
use super::{Services, pb, session};
use crate::peers::{DialTarget, Direction};
use crate::protocol::Refusal;
use crate::tasks::Service;

/// Accepting side: runs the handshake for an inbound stream (opening `gate` once the peer is
/// welcomed), then the session.
pub(crate) async fn accept(
    services: Services,
    connection: PeerConnectInfo,
    gate: SessionGate,
    mut incoming: Streaming<pb::Frame>,
    outbox: Outbox,
    shutdown: CancellationToken,
) {
    let manager = services.peers.clone();
    let remote = connection.remote;
    let remote_ip = remote.ip();
    let timeout = services.config.connect_timeout;
    let span = handshake_span("inbound", &remote.to_string());
    let handshake = tokio::time::timeout(
        timeout,
        accept_handshake(&services, &connection, &gate, &mut incoming, &outbox),
    )
    .instrument(span.clone())
    .await
    .unwrap_or_else(|_| Err(failed("handshake timed out")));
    match &handshake {
        Ok(Accepted::Session(peer, _)) => handshake_done(span, Some(peer), Ok("completed")),
        Ok(Accepted::Probe(peer)) => handshake_done(span, Some(peer), Ok("dial-back probe")),
        Err(e) => handshake_done(span, None, Err(e)),
    }
    match handshake {
        Ok(Accepted::Session(peer_id, handle)) => {
            session::run(services, peer_id, handle, incoming, outbox, shutdown, false).await
        }
        Ok(Accepted::Probe(peer)) => {
            tracing::debug!(%peer, %remote, "answered a dial-back probe");
        }
        Err(HandshakeError::Refused(refusal)) => {
            tracing::debug!(%remote_ip, %refusal, "inbound handshake refused");
            manager.handshake_failed(true);
            refuse(&outbox, &refusal);
        }
        Err(HandshakeError::Failed(reason)) => {
            tracing::debug!(%remote_ip, %reason, "inbound handshake did not complete");
            manager.handshake_failed(false);
            say_goodbye(&outbox, &reason);
        }
    }
}

/// Dials what the peer manager plans, every `dial_interval`, as a node service.
pub(crate) struct DialLoop(pub Services);

impl Service for DialLoop {
    const NAME: &'static str = "dialer";

    async fn run(self, shutdown: CancellationToken) {
        run_dialer(self.0, shutdown).await;
    }
}

async fn run_dialer(services: Services, shutdown: CancellationToken) {
    let manager = services.peers.clone();
    let mut tick = tokio::time::interval(services.config.dial_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {
                for target in manager.plan_dials() {
                    services
                        .tasks
                        .spawn(dial(services.clone(), target, shutdown.clone()));
                }
            }
        }
    }
}

/// Dials one target; on success runs the session until it ends.
pub(crate) async fn dial(services: Services, target: DialTarget, shutdown: CancellationToken) {
    let manager = services.peers.clone();
    let timeout = services.config.connect_timeout;
    let span = handshake_span("outbound", &target.address);
    let attempt = tokio::time::timeout(timeout, open(&services, &target, false))
        .instrument(span.clone())
        .await;
    let opened = match attempt {
        Err(_) => Err(HandshakeError::Failed("timed out".into())),
        Ok(result) => result,
    };
    match &opened {
        Ok((peer, ..)) => handshake_done(span, Some(&peer.peer_id), Ok("completed")),
        Err(e) => handshake_done(span, None, Err(e)),
    }
    let (peer, remote, incoming, outbox, client) = match opened {
        Ok(parts) => parts,
        Err(HandshakeError::Refused(Refusal::Duplicate | Refusal::SelfConnection)) => {
            manager.dial_abandoned(&target);
            return;
        }
        Err(HandshakeError::Refused(refusal)) => {
            manager.handshake_failed(true);
            manager.dial_failed(&target, &refusal.to_string());
            return;
        }
        Err(HandshakeError::Failed(reason)) => {
            manager.handshake_failed(false);
            manager.dial_failed(&target, &reason);
            return;
        }
    };
    let peer_id = peer.peer_id.clone();
    let handle =
        match manager.register_connection(peer, Direction::Outbound, remote.ip(), Some(&target)) {
            Ok(handle) => handle,
            Err(refusal) => {
                refuse(&outbox, &refusal);
                match refusal {
                    Refusal::Duplicate | Refusal::SelfConnection => manager.dial_abandoned(&target),
                    other => manager.dial_failed(&target, &other.to_string()),
                }
                return;
            }
        };
    // "After the handshake the node asks it for peers."
    let exchange_first = services.config.exchange_enabled();
    // Keep the client (and its connection) alive for as long as the session runs.
    let _client = client;
    session::run(
        services,
        peer_id,
        handle,
        incoming,
        outbox,
        shutdown,
        exchange_first,
    )
    .await;
}

/// The `handshake` span of a connection (`direction`: inbound or outbound), ended by
/// [`handshake_done`] before the session starts (so the session's spans are not under it).
fn handshake_span(direction: &'static str, remote: &str) -> Span {
    tracing::info_span!(
        "handshake",
        direction,
        network.peer.address = %remote,
        peer.id = Empty,
        outcome = Empty,
        error = Empty,
    )
}

/// Ends a `handshake` span: the peer when it proved who it is, and the outcome
/// (`completed`, `dial-back probe`) or what went wrong (`refused` or `failed`, and why).
fn handshake_done(span: Span, peer: Option<&str>, result: Result<&str, &HandshakeError>) {
    if let Some(peer) = peer {
        span.record("peer.id", peer);
    }
    match result {
        Ok(outcome) => span.record("outcome", outcome),
        Err(e) => {
            let (outcome, why) = match e {
                HandshakeError::Refused(r) => ("refused", r.to_string()),
                HandshakeError::Failed(m) => ("failed", m.clone()),
            };
            span.record("outcome", outcome);
            span.record("error", why.as_str())
        }
    };
}
