//! The network edge of address discovery (the decisions are in [`crate::reachability`], the
//! loop in [`crate::service::reachability`]): the local interface that routes towards the
//! seeds (a connected UDP socket, no packet sent), STUN binding requests ([`stun`]) and plain
//! HTTP "what is my IP" lookups.

pub(crate) mod stun;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::service::reachability::{AddressProbe, LookupError};

/// Largest HTTP lookup answer read (an address is a few dozen bytes).
pub(crate) const MAX_HTTP_ANSWER: usize = 256;

/// The [`AddressProbe`] that uses the real network.
pub(crate) struct NetProbe;

#[async_trait::async_trait]
impl AddressProbe for NetProbe {
    async fn interface_toward(&self, targets: &[String]) -> Option<IpAddr> {
        for target in targets {
            let Ok(mut addrs) = tokio::net::lookup_host(target.as_str()).await else {
                continue;
            };
            let Some(remote) = addrs.next() else {
                continue;
            };
            if let Some(ip) = route_source(remote).await {
                return Some(ip);
            }
        }
        None
    }

    async fn stun(
        &self,
        server: &str,
        from: SocketAddr,
        timeout: Duration,
    ) -> Result<IpAddr, LookupError> {
        stun::mapped_address(server, from, timeout)
            .await
            .map(|a| a.ip())
    }

    async fn http(&self, url: &str, timeout: Duration) -> Result<IpAddr, LookupError> {
        let io = |reason: String| LookupError::Io {
            server: url.to_string(),
            reason,
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| io(e.to_string()))?;
        let mut response = client
            .get(url)
            .send()
            .await
            .map_err(|e| io(e.to_string()))?;
        if !response.status().is_success() {
            return Err(io(format!("HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| io(e.to_string()))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_HTTP_ANSWER {
                return Err(LookupError::BadAnswer {
                    server: url.to_string(),
                    reason: format!("longer than {MAX_HTTP_ANSWER} bytes"),
                });
            }
        }
        let text = String::from_utf8_lossy(&body);
        text.trim()
            .parse::<IpAddr>()
            .map_err(|e| LookupError::BadAnswer {
                server: url.to_string(),
                reason: format!("'{}': {e}", crate::text::escape_control(text.trim())),
            })
    }
}

/// The source address the kernel picks for traffic to `remote`: connect a UDP socket (which
/// only consults the routing table) and read its local address.
async fn route_source(remote: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = match remote {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(any).await.ok()?;
    socket.connect(remote).await.ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}
