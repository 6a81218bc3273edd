//! Connections an operator asks for (bitcoin-cli's `addnode … onetry` and `disconnectnode`):
//! dial an address once now and report the peer reached, or why not; close a session without
//! banning. The dial itself is the dialler's, through the [`Dialer`] the network edge provides,
//! so an operator's dial is admitted, handshaken and recorded like any other.

use std::time::Duration;

use crate::config::{AddressError, Config, validate_host_port};
use crate::peers::manual::DialOutcome;
use crate::peers::{DialTarget, PeerError, PeerManager};

/// Time allowed beyond `connect_timeout` for a dial to report its end (the session is
/// registered right after the handshake).
const SETTLE_MARGIN: Duration = Duration::from_secs(2);

/// Starts dials: implemented by the network edge (the dialler's own `dial`).
pub trait Dialer: Send + Sync {
    /// Dials `target` in the background; its end is reported to the peer manager.
    fn dial(&self, target: DialTarget);
}

/// A peer reached by [`connect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Connected {
    pub peer_id: String,
    /// A session with the peer at that address was open already; nothing was dialled.
    pub already: bool,
}

/// Why [`connect`] reached no peer.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    InvalidAddress(#[from] AddressError),
    #[error("{0} is this node's own address")]
    OwnAddress(String),
    #[error("too many connections asked for at once; try again when they are done")]
    Busy,
    #[error("cannot connect to {address}: {reason}")]
    Failed { address: String, reason: String },
    #[error(
        "nothing new at {address}: the node there is this node itself, or a peer connected \
         already under another address"
    )]
    Abandoned { address: String },
    #[error("no answer from the dial to {address} within {after:?}")]
    TimedOut { address: String, after: Duration },
}

/// Dials `address` (host:port of a node's peer protocol) once, now, and waits (within
/// `connect_timeout`) for the outcome. The peer is then known like any other: the dialler may
/// dial it again later to fill outbound slots.
pub(crate) async fn connect(
    manager: &PeerManager,
    config: &Config,
    dialer: &dyn Dialer,
    address: &str,
) -> Result<Connected, ConnectError> {
    let address = address.trim();
    validate_host_port(address)?;
    if address == manager.announced_address() || address == config.listen.to_string() {
        return Err(ConnectError::OwnAddress(address.to_string()));
    }
    if let Some(peer_id) = manager.connected_at(address) {
        return Ok(Connected {
            peer_id,
            already: true,
        });
    }
    let outcome = manager.watch_dial(address).ok_or(ConnectError::Busy)?;
    dialer.dial(DialTarget {
        address: address.to_string(),
        expected_peer_id: None,
        seed: false,
    });
    let within = config.connect_timeout + SETTLE_MARGIN;
    match tokio::time::timeout(within, outcome).await {
        Ok(Ok(DialOutcome::Connected(peer_id))) => {
            tracing::info!(peer = %peer_id, %address, "connected as the operator asked");
            Ok(Connected {
                peer_id,
                already: false,
            })
        }
        Ok(Ok(DialOutcome::Failed(reason))) => Err(ConnectError::Failed {
            address: address.to_string(),
            reason: reason_once(address, &reason),
        }),
        Ok(Ok(DialOutcome::Abandoned)) => match manager.connected_at(address) {
            Some(peer_id) => Ok(Connected {
                peer_id,
                already: true,
            }),
            None => Err(ConnectError::Abandoned {
                address: address.to_string(),
            }),
        },
        // The sender went away without an answer (the node is stopping), or time ran out.
        Ok(Err(_)) | Err(_) => Err(ConnectError::TimedOut {
            address: address.to_string(),
            after: within,
        }),
    }
}

/// Closes the session with a peer (ID, unique ID prefix or name) without banning it. Returns
/// its ID.
pub(crate) fn disconnect(manager: &PeerManager, peer: &str) -> Result<String, PeerError> {
    manager.disconnect(peer)
}

/// The dialler's reason without what [`ConnectError::Failed`] says already: the transport's
/// reasons may start with "cannot connect to ADDRESS: ", name the address again ("ADDRESS
/// does not answer in TLS"), or say "cannot resolve ADDRESS: ".
fn reason_once(address: &str, reason: &str) -> String {
    let reason = reason
        .strip_prefix(&format!("cannot connect to {address}: "))
        .unwrap_or(reason);
    if let Some(rest) = reason.strip_prefix(&format!("{address} ")) {
        return format!("it {rest}");
    }
    if let Some(rest) = reason.strip_prefix(&format!("cannot resolve {address}: ")) {
        return format!("cannot resolve the host name: {rest}");
    }
    reason.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_and_the_prefix_are_said_once() {
        let address = "node-b.example:5000";
        for (reason, want) in [
            (
                "cannot connect to node-b.example:5000: Connection refused (os error 111)",
                "Connection refused (os error 111)",
            ),
            (
                "node-b.example:5000 does not answer in TLS: a plaintext node",
                "it does not answer in TLS: a plaintext node",
            ),
            (
                "cannot resolve node-b.example:5000: failed to lookup address information",
                "cannot resolve the host name: failed to lookup address information",
            ),
            ("handshake refused: banned", "handshake refused: banned"),
        ] {
            let said = ConnectError::Failed {
                address: address.into(),
                reason: reason_once(address, reason),
            }
            .to_string();
            assert_eq!(said, format!("cannot connect to {address}: {want}"));
            assert_eq!(said.matches(address).count(), 1, "{said}");
        }
    }
}
