//! A minimal STUN client (RFC 5389): one Binding request over UDP, retransmitted a few times
//! within the timeout, and the XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS) of the matching success
//! response. Answers from another address or with another transaction ID are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand::RngCore;
use tokio::net::UdpSocket;

use crate::service::reachability::LookupError;

pub(crate) const MAGIC_COOKIE: u32 = 0x2112_A442;
pub(crate) const BINDING_REQUEST: u16 = 0x0001;
pub(crate) const BINDING_SUCCESS: u16 = 0x0101;
pub(crate) const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
pub(crate) const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// Requests sent per lookup (the timeout is shared between them).
const ATTEMPTS: u32 = 3;

/// A Binding request with the given transaction ID.
pub(crate) fn binding_request(transaction: &[u8; 12]) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Message length 0: no attributes.
    m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m[8..20].copy_from_slice(transaction);
    m
}

/// The mapped address in a Binding success response for `transaction`, if `packet` is one.
pub(crate) fn parse_response(packet: &[u8], transaction: &[u8; 12]) -> Option<SocketAddr> {
    if packet.len() < 20
        || u16::from_be_bytes([packet[0], packet[1]]) != BINDING_SUCCESS
        || packet[4..8] != MAGIC_COOKIE.to_be_bytes()
        || &packet[8..20] != transaction
    {
        return None;
    }
    let length = u16::from_be_bytes([packet[2], packet[3]]) as usize;
    let attrs = packet.get(20..20 + length)?;
    let mut i = 0;
    let mut mapped = None;
    while i + 4 <= attrs.len() {
        let kind = u16::from_be_bytes([attrs[i], attrs[i + 1]]);
        let len = u16::from_be_bytes([attrs[i + 2], attrs[i + 3]]) as usize;
        let value = attrs.get(i + 4..i + 4 + len)?;
        match kind {
            ATTR_XOR_MAPPED_ADDRESS => return decode_address(value, Some(transaction)),
            ATTR_MAPPED_ADDRESS => mapped = decode_address(value, None),
            _ => {}
        }
        i += 4 + len.div_ceil(4) * 4;
    }
    mapped
}

/// An address attribute's value (family, port, address), XOR-ed when `xor` carries the
/// transaction ID.
fn decode_address(v: &[u8], xor: Option<&[u8; 12]>) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut port = u16::from_be_bytes([*v.get(2)?, *v.get(3)?]);
    if xor.is_some() {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    let ip = match *v.get(1)? {
        0x01 => {
            let mut o: [u8; 4] = v.get(4..8)?.try_into().ok()?;
            if xor.is_some() {
                o.iter_mut().zip(cookie).for_each(|(b, k)| *b ^= k);
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        0x02 => {
            let mut o: [u8; 16] = v.get(4..20)?.try_into().ok()?;
            if let Some(t) = xor {
                let key: Vec<u8> = cookie.iter().chain(t.iter()).copied().collect();
                o.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Asks the STUN server at `server` (host:port) from a socket bound to `from`.
pub(crate) async fn mapped_address(
    server: &str,
    from: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr, LookupError> {
    let io = |reason: String| LookupError::Io {
        server: server.to_string(),
        reason,
    };
    let remote = tokio::net::lookup_host(server)
        .await
        .map_err(|e| LookupError::Resolve {
            server: server.to_string(),
            reason: e.to_string(),
        })?
        .find(|a| a.is_ipv4() == from.is_ipv4())
        .ok_or_else(|| LookupError::Resolve {
            server: server.to_string(),
            reason: "no address of the listen address's family".into(),
        })?;
    let socket = UdpSocket::bind(from).await.map_err(|e| io(e.to_string()))?;
    let mut transaction = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut transaction);
    let request = binding_request(&transaction);
    let per_attempt = timeout / ATTEMPTS;
    let mut buf = [0u8; 512];
    for _ in 0..ATTEMPTS {
        socket
            .send_to(&request, remote)
            .await
            .map_err(|e| io(e.to_string()))?;
        let deadline = tokio::time::Instant::now() + per_attempt;
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let Ok(result) = received else {
                break; // retransmit
            };
            let (n, from) = result.map_err(|e| io(e.to_string()))?;
            if from != remote {
                continue;
            }
            if let Some(mapped) = parse_response(&buf[..n], &transaction) {
                return Ok(mapped);
            }
        }
    }
    Err(LookupError::Timeout {
        server: server.to_string(),
        timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response as a server builds it: XOR-MAPPED-ADDRESS for `addr`.
    pub(super) fn response(transaction: &[u8; 12], addr: SocketAddr) -> Vec<u8> {
        let cookie = MAGIC_COOKIE.to_be_bytes();
        let mut value = vec![0u8, 0];
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        match addr.ip() {
            IpAddr::V4(v4) => {
                value[1] = 1;
                value.extend_from_slice(&port.to_be_bytes());
                value.extend(v4.octets().iter().zip(cookie).map(|(b, k)| b ^ k));
            }
            IpAddr::V6(v6) => {
                value[1] = 2;
                value.extend_from_slice(&port.to_be_bytes());
                let key: Vec<u8> = cookie.iter().chain(transaction.iter()).copied().collect();
                value.extend(v6.octets().iter().zip(key).map(|(b, k)| b ^ k));
            }
        }
        let mut m = Vec::new();
        m.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
        m.extend_from_slice(&((value.len() + 4) as u16).to_be_bytes());
        m.extend_from_slice(&cookie);
        m.extend_from_slice(transaction);
        m.extend_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
        m.extend_from_slice(&(value.len() as u16).to_be_bytes());
        m.extend_from_slice(&value);
        m
    }

    #[test]
    fn xor_mapped_addresses_round_trip() {
        let t = [7u8; 12];
        for addr in ["198.51.100.23:41234", "[2001:db8::42]:5000"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(parse_response(&response(&t, addr), &t), Some(addr));
        }
    }

    #[test]
    fn answers_to_other_requests_and_truncated_ones_are_ignored() {
        let t = [7u8; 12];
        let r = response(&t, "198.51.100.23:1".parse().unwrap());
        assert_eq!(parse_response(&r, &[8u8; 12]), None);
        assert_eq!(parse_response(&r[..r.len() - 1], &t), None);
        assert_eq!(parse_response(&binding_request(&t), &t), None);
    }
}
