//! Dial-backs, the network half of address verification (the decisions are in
//! [`crate::reachability`]): a peer asks "dial me back at X"; if the address book admits it
//! (X is the IP the peer connects from, and it has not asked too recently) this node opens a
//! real connection to X with a `dial_back` handshake, and answers whether the peer's own key
//! answered there.

use std::net::SocketAddr;

use super::dialer;
use super::frames::{frame, push};
use super::handshake::HandshakeError;
use super::outbox::Outbox;
use super::pb::{self, frame::Body};
use super::{Services, convert};
use crate::clock::now_ms;
use crate::peers::DialTarget;
use crate::reachability::DialBackRefusal;

/// Handles a peer's `DialBackRequest`: refuses at once, or dials in a task of its own and
/// answers when done (so the session loop never waits on it).
pub(crate) fn handle_request(
    services: &Services,
    peer_id: &str,
    outbox: &Outbox,
    request: pb::DialBackRequest,
) {
    let manager = &services.peers;
    let admitted = match manager.remote_ip(peer_id) {
        Some(ip) => manager
            .addresses()
            .admit_dial_back(ip, &request.address, now_ms()),
        None => return, // the session is closing
    };
    let address = match admitted {
        Ok(address) => address,
        Err(refusal) => {
            services.metrics.dial_back("asked", "refused");
            if matches!(refusal, DialBackRefusal::TooSoon { .. }) {
                services.metrics.limit_hit("dial_back_rate");
            }
            tracing::info!(peer = %peer_id, requested = %convert::peer_text(&request.address, convert::MAX_PEER_TEXT), %refusal, "dial-back refused");
            answer(outbox, request.request_id, refusal.to_string());
            return;
        }
    };
    let services = services.clone();
    let peer_id = peer_id.to_string();
    let outbox = outbox.clone();
    services.tasks.clone().spawn(async move {
        let error = match probe(&services, address, &peer_id).await {
            Ok(()) => {
                services.metrics.dial_back("asked", "verified");
                String::new()
            }
            Err(e) => {
                services.metrics.dial_back("asked", "failed");
                e.to_string()
            }
        };
        tracing::debug!(peer = %peer_id, %address, %error, "dial-back done");
        answer(&outbox, request.request_id, error);
    });
}

fn answer(outbox: &Outbox, request_id: u64, error: String) {
    let reply = frame(Body::DialBackResponse(pb::DialBackResponse {
        request_id,
        error,
    }));
    if let Err(e) = push(outbox, reply) {
        tracing::debug!("dial-back answer not delivered: {e}");
    }
}

/// Why a dial-back did not prove the asker reachable (sent back to it as text).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialBackError {
    #[error("no answer from {address} within {timeout:?}")]
    Timeout {
        address: SocketAddr,
        timeout: std::time::Duration,
    },
    #[error("{address} is another node ({found}), not you")]
    OtherNode { address: SocketAddr, found: String },
    #[error("{address} refused: {reason}")]
    Refused { address: SocketAddr, reason: String },
    #[error("{address}: {reason}")]
    Failed { address: SocketAddr, reason: String },
}

/// Dials `address` and runs a `dial_back` handshake; `Ok` when the node there proves it is
/// `expected`.
pub(crate) async fn probe(
    services: &Services,
    address: SocketAddr,
    expected: &str,
) -> Result<(), DialBackError> {
    let target = DialTarget {
        address: address.to_string(),
        expected_peer_id: Some(expected.to_string()),
        seed: false,
    };
    let timeout = services.config.connect_timeout;
    let opened = tokio::time::timeout(timeout, dialer::open(services, &target, true))
        .await
        .map_err(|_| DialBackError::Timeout { address, timeout })?;
    match opened {
        Ok((peer, ..)) if peer.peer_id == expected => Ok(()),
        Ok((peer, ..)) => Err(DialBackError::OtherNode {
            address,
            found: peer.peer_id,
        }),
        Err(HandshakeError::Refused(r)) => Err(DialBackError::Refused {
            address,
            reason: r.to_string(),
        }),
        Err(HandshakeError::Failed(reason)) => Err(DialBackError::Failed { address, reason }),
    }
}
