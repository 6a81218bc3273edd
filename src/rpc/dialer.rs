//! Opening an outbound connection: the transport (TLS), the HTTP/2 channel, the session
//! stream and the dialling side of the handshake. Whom to dial, and running the session
//! after, is [`super::connections`].

use std::net::SocketAddr;

use super::budget::{BudgetedChannel, SessionGate};
use super::handshake::{self, HandshakeError};
use super::outbox::Outbox;
use super::pb::peer_session_client::PeerSessionClient;
use super::{MAX_MESSAGE_SIZE, Services, convert};
use crate::config::PeerTls;
use crate::identity;
use crate::peers::DialTarget;
use crate::protocol::Refusal;
use crate::transport::Connection;

pub(super) type Opened = (
    crate::peers::VerifiedPeer,
    SocketAddr,
    tonic::Streaming<super::pb::Frame>,
    Outbox,
    PeerSessionClient<BudgetedChannel>,
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
    let remote = resolve(&target.address).await?;
    if let Err(refusal) = manager.admit_address(remote.ip()) {
        return Err(HandshakeError::Refused(refusal));
    }
    let config = &services.config;
    let connection = connect(services, target, remote).await?;
    let tls_key = connection.peer_key;
    let channel = crate::transport::channel(connection.stream, remote)
        .await
        .map_err(|e| failed(format!("cannot start HTTP/2 with {remote}: {e}")))?;
    // The peer's answers stay small until it has proven its key (and always for a probe).
    let gate = SessionGate::default();
    let channel = BudgetedChannel::new(channel, gate.clone(), services.budget.clone());
    let mut client = PeerSessionClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    let (outbox, frames) = Outbox::new(config.peer_send_buffer);
    let local = handshake::local_info(services);
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
        .map_err(|status| session_refused(services, remote, &status))?;
    let mut incoming = response.into_inner();
    let ends = handshake::Ends {
        remote_ip: remote.ip(),
        tls_key,
    };
    let gate = (!dial_back).then_some(&gate);
    let peer =
        handshake::dial_handshake(services, ends, &local, &nonce, gate, &mut incoming, &outbox)
            .await?;
    Ok((peer, remote, incoming, outbox, client))
}

/// The first address `address` resolves to.
async fn resolve(address: &str) -> Result<SocketAddr, HandshakeError> {
    let failed = |m: String| HandshakeError::Failed(m);
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| failed(format!("cannot resolve {address}: {e}")))?
        .next()
        .ok_or_else(|| failed(format!("{address} resolves to no address")))
}

/// Opens the transport to `remote`. A refusal is counted, and logged (at most once per
/// interval) when this side refused.
async fn connect(
    services: &Services,
    target: &DialTarget,
    remote: SocketAddr,
) -> Result<Connection, HandshakeError> {
    let config = &services.config;
    // Dial from the address we listen on, so peers see the same IP we announce (this is what
    // lets IP bans and per-address views work on multi-address hosts and 127.0.0.x tests).
    let from = (!config.listen.ip().is_unspecified()
        && config.listen.ip().is_loopback() == remote.ip().is_loopback())
    .then(|| config.listen.ip());
    services
        .transport
        .connect(remote, from, target.expected_peer_id.as_deref())
        .await
        .map_err(|e| {
            if let Some(reason) = e.reason() {
                services.metrics.transport_refused("outbound", reason);
                if e.refused_here()
                    && services
                        .transport
                        .refusal_log()
                        .allow(remote.ip(), "outbound", reason)
                {
                    tracing::warn!(reason, "refused the peer at {remote}: {e}");
                }
            }
            HandshakeError::Failed(e.to_string())
        })
}

/// Why the peer at `remote` did not take the session stream, in words that say what to fix.
fn session_refused(
    services: &Services,
    remote: SocketAddr,
    status: &tonic::Status,
) -> HandshakeError {
    let failed = |m: String| HandshakeError::Failed(m);
    match status.code() {
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
    }
}
