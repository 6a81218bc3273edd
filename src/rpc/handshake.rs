//! The identity handshake on each side of a new stream: `Hello` → `HelloAck` (signed by the
//! acceptor) → `Auth` (signed by the dialler) → `Welcome`, or a `Goodbye` with the refusal. What
//! a peer says about itself is checked for shape and bounds here; whether it may connect is
//! the peer domain's decision. [`super::connections`] runs the session loop after it.

use std::net::{IpAddr, SocketAddr};

use prost::Message;
use tonic::Streaming;

use super::Services;
use super::admission::PeerConnectInfo;
use super::budget::SessionGate;
use super::convert;
use super::frames::{frame, push, refuse};
use super::outbox::Outbox;
use super::pb::{self, frame::Body};
use super::{CAPABILITIES, PLATFORM_MESSAGES, PROTOCOL_VERSION, SHORT_TX_IDS};
use crate::config::{MAX_NAME_LEN, validate_host_port};
use crate::identity::{self, NONCE_LEN, Role, peer_id_for};
use crate::peers::{Direction, SessionHandle, VerifiedPeer};
use crate::protocol::Refusal;
use crate::telemetry::Metrics;

/// Why a handshake did not produce a session.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The other side or this node refused on purpose (ban, duplicate, self, full).
    Refused(Refusal),
    /// Anything else: bad frames, bad signature, broken stream.
    Failed(String),
}

pub(super) fn failed(message: impl Into<String>) -> HandshakeError {
    HandshakeError::Failed(message.into())
}

/// This node's `NodeInfo`, encoded as it is signed.
pub(crate) fn local_info(services: &Services) -> Vec<u8> {
    let (config, manager) = (&services.config, &services.peers);
    pb::NodeInfo {
        public_key: services.identity.public_key().to_vec(),
        listen_address: manager.announced_address(),
        name: config.name.clone(),
        protocol_version: PROTOCOL_VERSION,
        software_version: crate::VERSION.to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
        platform_address: manager.platform_announcement().unwrap_or_default(),
    }
    .encode_to_vec()
}

/// Decodes and checks the other side's `NodeInfo`; `seen_from` replaces an unspecified host.
pub(crate) fn verify_info(
    bytes: &[u8],
    nonce: &[u8],
    seen_from: IpAddr,
) -> Result<(pb::NodeInfo, String), HandshakeError> {
    let mut info =
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
    let address = dialable(&info.listen_address, seen_from)
        .map_err(|e| failed(format!("bad listen address: {e}")))?;
    if !info.platform_address.is_empty() {
        info.platform_address = dialable(&info.platform_address, seen_from)
            .map_err(|e| failed(format!("bad platform address: {e}")))?;
    }
    Ok((info, address))
}

/// An address a node announced for itself, as others can dial it: an unspecified host becomes
/// the one it was seen at.
fn dialable(announced: &str, seen_from: IpAddr) -> Result<String, String> {
    match announced.parse::<SocketAddr>() {
        // Nothing can dial port 0 (a node announces the port it bound, never 0); the host:port
        // form below refuses it too.
        Ok(addr) if addr.port() == 0 => Err("port 0".into()),
        Ok(addr) if addr.ip().is_unspecified() => {
            Ok(SocketAddr::new(seen_from, addr.port()).to_string())
        }
        Ok(addr) => Ok(addr.to_string()),
        Err(_) => {
            validate_host_port(announced).map_err(|e| e.to_string())?;
            Ok(announced.to_string())
        }
    }
}

/// The other end of a connection as the layers below the handshake see it.
#[derive(Clone, Copy)]
pub(crate) struct Ends {
    pub remote_ip: IpAddr,
    /// The node key the peer proved in the TLS handshake (`None` without TLS).
    pub tls_key: Option<[u8; 32]>,
}

/// Over TLS, the identity a peer claims in the handshake must be the key its certificate
/// proved: otherwise something between us terminated TLS with another key.
fn bound_to_transport(
    metrics: &Metrics,
    direction: &'static str,
    claimed: &[u8],
    tls_key: Option<[u8; 32]>,
) -> Result<(), HandshakeError> {
    match tls_key {
        Some(proven) if proven.as_slice() != claimed => {
            metrics.transport_refused(direction, "wrong_key");
            Err(failed(format!(
                "the peer claims to be {} but its TLS certificate proves {}: something between us holds another key",
                peer_id_for(claimed),
                peer_id_for(&proven)
            )))
        }
        _ => Ok(()),
    }
}

fn verified_peer(info: pb::NodeInfo, address: String) -> VerifiedPeer {
    VerifiedPeer {
        peer_id: peer_id_for(&info.public_key),
        public_key: hex::encode(&info.public_key),
        name: convert::peer_text(&info.name, MAX_NAME_LEN),
        address,
        software_version: convert::peer_text(&info.software_version, MAX_NAME_LEN),
        platform_messages: info.capabilities.iter().any(|c| c == PLATFORM_MESSAGES),
        short_ids: info.capabilities.iter().any(|c| c == SHORT_TX_IDS),
        platform_address: Some(info.platform_address).filter(|a| !a.is_empty()),
    }
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

/// A goodbye received during the handshake, as a refusal. A duplicate or a connection to self
/// is kept as it is (the dialler gives the dial up); any other is the peer's word, kept as text
/// that says whose it is, so it is never read as this node's own ban or limit.
fn refusal_from_goodbye(goodbye: &pb::Goodbye) -> HandshakeError {
    let refusal = match convert::refusal_from_wire(goodbye) {
        kept @ (Refusal::Duplicate | Refusal::SelfConnection) => kept,
        other => Refusal::Invalid(format!("refused by peer: {other}")),
    };
    HandshakeError::Refused(refusal)
}

/// What an accepted handshake leads to.
pub(super) enum Accepted {
    Session(String, SessionHandle),
    /// A dial-back probe from `peer`: proven, answered, no session.
    Probe(String),
}

/// Accepting side of the handshake; `gate` lets large messages in once the peer is welcomed
/// (never for a dial-back probe).
pub(super) async fn accept_handshake(
    services: &Services,
    connection: &PeerConnectInfo,
    gate: &SessionGate,
    incoming: &mut Streaming<pb::Frame>,
    outbox: &Outbox,
) -> Result<Accepted, HandshakeError> {
    let remote = connection.remote;
    let remote_ip = remote.ip();
    let Body::Hello(hello) = next_body(incoming).await? else {
        return Err(failed("expected Hello"));
    };
    let (info, address) = verify_info(&hello.node_info, &hello.nonce, remote_ip)?;
    bound_to_transport(
        &services.metrics,
        "inbound",
        &info.public_key,
        connection.peer_key,
    )?;
    let local = local_info(services);
    let nonce = identity::nonce();
    let transcript = identity::transcript(&hello.node_info, &hello.nonce, &local, &nonce);
    let signature = services
        .identity
        .sign_transcript(Role::Acceptor, &transcript);
    push(
        outbox,
        frame(Body::HelloAck(pb::HelloAck {
            node_info: local,
            nonce,
            signature,
            observed_address: remote.to_string(),
        })),
    )
    .map_err(|e| failed(e.to_string()))?;
    let auth = match next_body(incoming).await? {
        Body::Auth(auth) => auth,
        Body::Goodbye(g) => return Err(refusal_from_goodbye(&g)),
        _ => return Err(failed("expected Auth")),
    };
    identity::verify_transcript(&info.public_key, Role::Dialer, &transcript, &auth.signature)
        .map_err(|e| failed(e.to_string()))?;
    let peer = verified_peer(info, address);
    let peer_id = peer.peer_id.clone();
    if hello.dial_back {
        // Proven reachable here: say so and end, without a session.
        push(outbox, frame(Body::Welcome(pb::Welcome {}))).map_err(|e| failed(e.to_string()))?;
        return Ok(Accepted::Probe(peer_id));
    }
    let manager = &services.peers;
    let handle = manager
        .register_connection(peer, Direction::Inbound, remote_ip, None)
        .map_err(HandshakeError::Refused)?;
    // Before the welcome: the peer may send large messages as soon as it reads it.
    gate.open();
    push(outbox, frame(Body::Welcome(pb::Welcome {}))).map_err(|e| failed(e.to_string()))?;
    manager.observed_by(&peer_id, remote_ip, &hello.observed_address);
    Ok(Accepted::Session(peer_id, handle))
}

/// Dialling side of the handshake over an already opened stream, after a `Hello` with `local`
/// and `nonce`. Returns the verified peer, not yet registered (the dialler registers it with
/// its dial target). `gate`, when given, lets large answers in once the peer has
/// proven its key: with `Auth` sent, what follows may be session traffic.
pub(crate) async fn dial_handshake(
    services: &Services,
    ends: Ends,
    local: &[u8],
    nonce: &[u8],
    gate: Option<&SessionGate>,
    incoming: &mut Streaming<pb::Frame>,
    outbox: &Outbox,
) -> Result<VerifiedPeer, HandshakeError> {
    let ack = match next_body(incoming).await? {
        Body::HelloAck(ack) => ack,
        Body::Goodbye(g) => return Err(refusal_from_goodbye(&g)),
        _ => return Err(failed("expected HelloAck")),
    };
    let remote_ip = ends.remote_ip;
    let (info, address) = verify_info(&ack.node_info, &ack.nonce, remote_ip)?;
    bound_to_transport(
        &services.metrics,
        "outbound",
        &info.public_key,
        ends.tls_key,
    )?;
    let transcript = identity::transcript(local, nonce, &ack.node_info, &ack.nonce);
    identity::verify_transcript(
        &info.public_key,
        Role::Acceptor,
        &transcript,
        &ack.signature,
    )
    .map_err(|e| failed(e.to_string()))?;
    let peer = verified_peer(info, address);
    if peer.peer_id == services.identity.peer_id() {
        refuse(outbox, &Refusal::SelfConnection);
        return Err(HandshakeError::Refused(Refusal::SelfConnection));
    }
    let signature = services.identity.sign_transcript(Role::Dialer, &transcript);
    if let Some(gate) = gate {
        gate.open();
    }
    push(outbox, frame(Body::Auth(pb::Auth { signature }))).map_err(|e| failed(e.to_string()))?;
    match next_body(incoming).await? {
        Body::Welcome(_) => {
            services
                .peers
                .observed_by(&peer.peer_id, remote_ip, &ack.observed_address);
            Ok(peer)
        }
        Body::Goodbye(g) => Err(refusal_from_goodbye(&g)),
        _ => Err(failed("expected Welcome")),
    }
}

/// The `Hello` frame that opens a dial to `remote` (reported to the acceptor as what we see),
/// or a dial-back probe.
pub(crate) fn hello(
    local: Vec<u8>,
    nonce: Vec<u8>,
    remote: SocketAddr,
    dial_back: bool,
) -> pb::Frame {
    frame(Body::Hello(pb::Hello {
        node_info: local,
        nonce,
        observed_address: remote.to_string(),
        dial_back,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(listen: &str) -> Vec<u8> {
        pb::NodeInfo {
            public_key: vec![7; 32],
            listen_address: listen.into(),
            protocol_version: PROTOCOL_VERSION,
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// The dialler gives up on a duplicate or itself by the goodbye's kind, never its text.
    #[test]
    fn a_goodbye_in_the_handshake_is_read_by_its_kind() {
        let refused = |goodbye: pb::Goodbye| match refusal_from_goodbye(&goodbye) {
            HandshakeError::Refused(r) => r,
            other => panic!("{other:?}"),
        };
        for kept in [Refusal::Duplicate, Refusal::SelfConnection] {
            assert_eq!(refused(convert::refusal_to_wire(&kept)), kept);
        }
        let banned = convert::refusal_to_wire(&Refusal::Banned("spam".into()));
        assert_eq!(
            refused(banned),
            Refusal::Invalid("refused by peer: banned: spam".into())
        );
        let text_only = pb::Goodbye {
            reason: Refusal::Duplicate.to_string(),
            ..Default::default()
        };
        assert_eq!(
            refused(text_only),
            Refusal::Invalid("refused by peer: duplicate connection".into())
        );
    }

    /// Found by the `handshake` fuzz target: `[::]:0` was taken as "the address you see me
    /// at, port 0", and that undialable address was kept and handed out in peer exchange.
    #[test]
    fn a_listen_address_on_port_0_is_refused() {
        let seen: IpAddr = "192.0.2.7".parse().expect("ip");
        let nonce = [1; NONCE_LEN];
        for bad in ["[::]:0", "0.0.0.0:0", "198.51.100.4:0", "node.example:0"] {
            assert!(verify_info(&info(bad), &nonce, seen).is_err(), "{bad}");
        }
        let (_, address) = verify_info(&info("0.0.0.0:5000"), &nonce, seen).expect("taken");
        assert_eq!(address, "192.0.2.7:5000");
    }

    #[test]
    fn a_platform_address_is_taken_as_dialable_or_the_handshake_fails() {
        let seen: IpAddr = "192.0.2.7".parse().expect("ip");
        let nonce = [1; NONCE_LEN];
        let with = |platform: &str| {
            pb::NodeInfo {
                public_key: vec![7; 32],
                listen_address: "0.0.0.0:4000".into(),
                protocol_version: PROTOCOL_VERSION,
                platform_address: platform.into(),
                ..Default::default()
            }
            .encode_to_vec()
        };
        for (announced, taken) in [
            ("", ""),
            ("0.0.0.0:5001", "192.0.2.7:5001"),
            ("[::]:5001", "192.0.2.7:5001"),
            ("198.51.100.4:5001", "198.51.100.4:5001"),
            ("peer-a.example:5001", "peer-a.example:5001"),
        ] {
            let (info, _) = verify_info(&with(announced), &nonce, seen).expect(announced);
            assert_eq!(info.platform_address, taken, "{announced}");
        }
        for bad in ["0.0.0.0:0", "no port", "bad host!:5001", &"h".repeat(300)] {
            let refused = verify_info(&with(bad), &nonce, seen).err();
            assert!(
                matches!(&refused, Some(HandshakeError::Failed(m)) if m.contains("platform address")),
                "{bad}: {refused:?}"
            );
        }
    }
}
