//! Peers as the platform sees them: `PeerInfo` with the host and the port as separate fields,
//! `last_seen` in unix seconds, and the capabilities every node of this network has; and the
//! reverse, a caller's `PeerInfo` checked into a candidate address.

use super::errors::{self, PlatformError};
use super::pb::discovery as pb;
use crate::config::split_host_port;
use crate::identity::is_peer_id;
use crate::peers::PeerSnapshot;
use crate::protocol::{KnownAddress, RegisterHeight};

/// The protocol every node here speaks to its peers.
pub(crate) const PEER_PROTOCOL: &str = "sorcha.peer.v1";

/// `host:port` split for the platform: the host without IPv6 brackets, the port as a number
/// (0 when the text has none).
pub(crate) fn split_address(address: &str) -> (String, i32) {
    let (host, port) = split_host_port(address);
    (host.to_string(), port.map_or(0, i32::from))
}

/// A known peer as `PeerInfo`. A peer that serves the platform's services is listed at the
/// address it announced for them, with `supports_transaction_distribution`: a Validator dials
/// that address. Any other peer is listed at its peer-protocol address, which answers none of
/// the platform's services, so without that capability.
pub(crate) fn peer_info(peer: &PeerSnapshot, last_seen_ms: i64) -> pb::PeerInfo {
    let serves_platform = peer.platform_address.is_some();
    let (address, port) = split_address(peer.platform_address.as_deref().unwrap_or(&peer.address));
    pb::PeerInfo {
        peer_id: peer.peer_id.clone(),
        address,
        port,
        supported_protocols: vec![PEER_PROTOCOL.to_string()],
        last_seen: last_seen_ms.div_euclid(1000),
        capabilities: Some(capabilities(serves_platform)),
        advertised_registers: peer.advertised.iter().map(advertisement).collect(),
        is_seed_node: peer.is_seed,
        node_name: peer.name.clone(),
    }
}

/// An address from peer exchange as `PeerInfo` (only what exchange knows of it).
pub(crate) fn address_info(entry: KnownAddress) -> pb::PeerInfo {
    let (address, port) = split_address(&entry.address);
    pb::PeerInfo {
        peer_id: entry.peer_id,
        address,
        port,
        supported_protocols: vec![PEER_PROTOCOL.to_string()],
        last_seen: entry.last_seen_ms.div_euclid(1000),
        // Exchange knows peer-protocol addresses only: nothing there serves the platform.
        capabilities: Some(capabilities(false)),
        ..Default::default()
    }
}

/// Every node streams its sessions; transactions can be distributed through it by the
/// platform only where it serves the platform's services. The largest transaction a peer takes
/// is its own setting, not known here: 0.
fn capabilities(serves_platform: bool) -> pb::PeerCapabilities {
    pb::PeerCapabilities {
        supports_streaming: true,
        supports_transaction_distribution: serves_platform,
        max_transaction_size: 0,
    }
}

/// Peers advertise only public registers.
fn advertisement(h: &RegisterHeight) -> pb::PeerRegisterAdvertisement {
    pb::PeerRegisterAdvertisement {
        register_id: h.register_id.clone(),
        has_full_replica: h.full_replica,
        latest_version: i64::try_from(h.latest_version).unwrap_or(i64::MAX),
        is_public: true,
    }
}

/// A caller's `PeerInfo` as a candidate address: a well-formed peer ID, a host and a port.
/// `last_seen` (seconds) becomes milliseconds; anything else it claims is not taken.
pub(crate) fn candidate(info: &pb::PeerInfo, now_ms: i64) -> Result<KnownAddress, PlatformError> {
    if info.peer_id.is_empty() {
        return Err(PlatformError::Missing { field: "peer_id" });
    }
    errors::bounded("peer_id", &info.peer_id)?;
    if !is_peer_id(&info.peer_id) {
        return Err(PlatformError::Invalid {
            field: "peer_id",
            problem: "not a peer ID (32 lower-case hex characters)".into(),
        });
    }
    errors::bounded("address", &info.address)?;
    let port = u16::try_from(info.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| PlatformError::Invalid {
            field: "port",
            problem: format!("{} is not a port (1-65535)", info.port),
        })?;
    let host = info.address.trim();
    let address = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    crate::config::validate_host_port(&address).map_err(|e| PlatformError::Invalid {
        field: "address",
        problem: e.to_string(),
    })?;
    let last_seen_ms = match info.last_seen {
        s if s > 0 => s.saturating_mul(1000).min(now_ms),
        _ => now_ms,
    };
    Ok(KnownAddress {
        peer_id: info.peer_id.clone(),
        address,
        last_seen_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(peer_id: &str, address: &str, port: i32) -> pb::PeerInfo {
        pb::PeerInfo {
            peer_id: peer_id.into(),
            address: address.into(),
            port,
            ..Default::default()
        }
    }

    #[test]
    fn addresses_split_and_join() {
        assert_eq!(split_address("10.0.0.1:5000"), ("10.0.0.1".into(), 5000));
        assert_eq!(split_address("[::1]:5000"), ("::1".into(), 5000));
        let id = "0123456789abcdef0123456789abcdef";
        let c = candidate(&info(id, "::1", 5000), 10_000).expect("valid");
        assert_eq!(c.address, "[::1]:5000");
        assert_eq!(c.last_seen_ms, 10_000);
        let c = candidate(&info(id, "node.example", 7), 10_000).expect("valid");
        assert_eq!(c.address, "node.example:7");
        assert!(candidate(&info("", "h", 1), 0).is_err());
        assert!(candidate(&info("nope", "h", 1), 0).is_err());
        assert!(candidate(&info(id, "", 1), 0).is_err());
        assert!(candidate(&info(id, "h", 0), 0).is_err());
        assert!(candidate(&info(id, "h", 70_000), 0).is_err());
        assert!(candidate(&info(id, "a b", 1), 0).is_err());
    }
}
