//! Outbound connections: every `dial_interval` the manager says whom to dial (seeds that are
//! down, known peers for free outbound slots) and this module opens the connections.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use super::handshake::{self, HandshakeError};
use super::outbox::Outbox;
use super::pb::peer_session_client::PeerSessionClient;
use super::session;
use super::{MAX_MESSAGE_SIZE, Services, convert};
use crate::config::PeerTls;
use crate::identity;
use crate::peers::{DialTarget, Direction, Refusal};

/// Runs until `shutdown`, dialling what the manager plans.
pub async fn run(services: Services, shutdown: CancellationToken) {
    let manager = services.peers.clone();
    let mut tick = tokio::time::interval(manager.config().dial_interval);
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
pub async fn dial(services: Services, target: DialTarget, shutdown: CancellationToken) {
    let manager = services.peers.clone();
    let timeout = manager.config().connect_timeout;
    let attempt = tokio::time::timeout(timeout, open(&services, &target, false)).await;
    let opened = match attempt {
        Err(_) => Err(HandshakeError::Failed("timed out".into())),
        Ok(result) => result,
    };
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
                session::say_goodbye(&outbox, &refusal.to_string());
                match refusal {
                    Refusal::Duplicate | Refusal::SelfConnection => manager.dial_abandoned(&target),
                    other => manager.dial_failed(&target, &other.to_string()),
                }
                return;
            }
        };
    // "After the handshake the node asks it for peers."
    let exchange_first = manager.config().exchange_enabled();
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

pub(super) type Opened = (
    crate::peers::VerifiedPeer,
    SocketAddr,
    tonic::Streaming<super::pb::Frame>,
    Outbox,
    PeerSessionClient<tonic::transport::Channel>,
);

/// Connects to `target` and runs the dialling side of the handshake (a dial-back probe when
/// `dial_back`: the acceptor answers and closes without a session).
pub(super) async fn open(
    services: &Services,
    target: &DialTarget,
    dial_back: bool,
) -> Result<Opened, HandshakeError> {
    let manager = &services.peers;
    let failed = |m: String| HandshakeError::Failed(m);
    let remote = tokio::net::lookup_host(&target.address)
        .await
        .map_err(|e| failed(format!("cannot resolve {}: {e}", target.address)))?
        .next()
        .ok_or_else(|| failed(format!("{} resolves to no address", target.address)))?;
    if let Err(refusal) = manager.admit_address(remote.ip()) {
        return Err(HandshakeError::Refused(refusal));
    }
    let config = manager.config();
    // Dial from the address we listen on, so peers see the same IP we announce (this is what
    // lets IP bans and per-address views work on multi-address hosts and 127.0.0.x tests).
    let from = (!config.listen.ip().is_unspecified()
        && config.listen.ip().is_loopback() == remote.ip().is_loopback())
    .then(|| config.listen.ip());
    let connection = services
        .transport
        .connect(remote, from, target.expected_peer_id.as_deref())
        .await
        .map_err(|e| {
            if let Some(reason) = e.reason() {
                manager.metrics().transport_refused("outbound", reason);
            }
            failed(e.to_string())
        })?;
    let tls_key = connection.peer_key;
    let channel = crate::transport::channel(connection.stream, remote)
        .await
        .map_err(|e| failed(format!("cannot start HTTP/2 with {remote}: {e}")))?;
    let mut client = PeerSessionClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let (outbox, frames) = Outbox::new(config.peer_send_buffer);
    let local = handshake::local_info(manager);
    let nonce = identity::nonce();
    outbox
        .push(handshake::hello(
            local.clone(),
            nonce.clone(),
            remote,
            dial_back,
        ))
        .map_err(|e| failed(e.to_string()))?;
    let response = client
        .session(frames)
        .await
        .map_err(|status| match status.code() {
            tonic::Code::PermissionDenied => HandshakeError::Refused(Refusal::Invalid(format!(
                "refused by peer: {}",
                convert::peer_text(status.message(), convert::MAX_PEER_TEXT)
            ))),
            tonic::Code::Unavailable | tonic::Code::Unknown
                if services.transport.mode() == PeerTls::Off =>
            {
                failed(format!(
                    "{remote} closed the connection ({}): a node with peer_tls = \"node-key\" does that to plaintext peers, and this node has peer_tls = \"off\"",
                    status.message()
                ))
            }
            _ => failed(format!(
                "{} refused the session: {}",
                remote,
                status.message()
            )),
        })?;
    let mut incoming = response.into_inner();
    let ends = handshake::Ends {
        remote_ip: remote.ip(),
        tls_key,
    };
    let peer =
        handshake::dial_handshake(manager, ends, &local, &nonce, &mut incoming, &outbox).await?;
    Ok((peer, remote, incoming, outbox, client))
}
