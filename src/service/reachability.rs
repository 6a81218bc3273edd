//! The loop that keeps this node's announced address current (decisions in
//! [`crate::reachability`]): every `reachability_interval` it asks a reporting peer to dial
//! back the address enough peers agree on, looks up the interface that routes to the seeds when
//! listening on an unspecified address, and asks STUN servers and HTTP lookups (when
//! configured) while no observed address is verified. The network probing is the edge's,
//! through [`AddressProbe`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::Config;
use crate::peers::PeerManager;
use crate::protocol::{PeerRequest, PeerResponse};
use crate::reachability::DialBackPlan;
use crate::tasks::Service;
use crate::telemetry::Metrics;

/// A STUN or HTTP answer is trusted this long before it is asked again.
pub(crate) const LOOKUP_REFRESH: Duration = Duration::from_secs(600);
/// A failed dial-back candidate is retried after this many `reachability_interval`s.
pub(crate) const DIAL_BACK_RETRY_INTERVALS: u32 = 10;

/// Why a lookup of this node's address failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LookupError {
    #[error("cannot resolve {server}: {reason}")]
    Resolve { server: String, reason: String },
    #[error("{server}: {reason}")]
    Io { server: String, reason: String },
    #[error("{server} gave no answer within {timeout:?}")]
    Timeout { server: String, timeout: Duration },
    #[error("{server} answered something that is not an address: {reason}")]
    BadAnswer { server: String, reason: String },
}

/// Network lookups of this node's own address: implemented by the `netprobe` edge.
#[async_trait::async_trait]
pub(crate) trait AddressProbe: Send + Sync {
    /// The local IP the routing table would use towards the first of `targets` (host:port)
    /// that resolves; no packet is sent.
    async fn interface_toward(&self, targets: &[String]) -> Option<IpAddr>;
    /// Asks a STUN server (host:port) for the address it sees us at.
    async fn stun(
        &self,
        server: &str,
        from: SocketAddr,
        timeout: Duration,
    ) -> Result<IpAddr, LookupError>;
    /// Asks an HTTP "what is my IP" service.
    async fn http(&self, url: &str, timeout: Duration) -> Result<IpAddr, LookupError>;
}

/// The loop, as a node service: the peer facade for sessions and the address book, and its
/// own settings and metrics.
pub(crate) struct Reachability {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub peers: Arc<PeerManager>,
    pub probe: Arc<dyn AddressProbe>,
}

impl Service for Reachability {
    const NAME: &'static str = "reachability";

    async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.reachability_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut looked_up: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let book = self.peers.addresses();
            if book.listen().ip().is_unspecified() {
                book.set_interface(self.probe.interface_toward(&self.config.seeds).await);
            }
            if !book.has_verified()
                && looked_up.is_none_or(|at| at.elapsed() >= LOOKUP_REFRESH)
                && self.lookup().await
            {
                looked_up = Some(Instant::now());
            }
            if let Some(plan) = book.next_dial_back(now_ms()) {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    () = self.dial_back(plan) => {}
                }
            }
        }
    }
}

impl Reachability {
    /// STUN servers in order, then HTTP lookups; stops at the first answer. Returns whether one
    /// answered.
    async fn lookup(&self) -> bool {
        let config = &self.config;
        let manager = &self.peers;
        let probe = &self.probe;
        let timeout = config.connect_timeout;
        let from = SocketAddr::new(
            if config.listen.ip().is_unspecified() || config.listen.ip().is_loopback() {
                // Any local address: the reply must come back the way the server sees us.
                match config.listen {
                    SocketAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
                    SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
                }
            } else {
                config.listen.ip()
            },
            0,
        );
        for server in &config.stun_servers {
            match probe.stun(server, from, timeout).await {
                Ok(ip) => {
                    tracing::info!(%server, %ip, "STUN server reports this node's address");
                    manager.addresses().set_stun(ip);
                    return true;
                }
                Err(e) => tracing::warn!("STUN lookup failed: {e}"),
            }
        }
        for url in &config.ip_lookup_urls {
            match probe.http(url, timeout).await {
                Ok(ip) => {
                    tracing::info!(%url, %ip, "HTTP lookup reports this node's address");
                    manager.addresses().set_http(ip);
                    return true;
                }
                Err(e) => tracing::warn!("HTTP address lookup failed: {e}"),
            }
        }
        false
    }

    /// Asks one connected peer among the reporters to dial back the candidate.
    async fn dial_back(&self, plan: DialBackPlan) {
        let config = &self.config;
        let manager = &self.peers;
        let retry = now_ms()
            + (config.reachability_interval * DIAL_BACK_RETRY_INTERVALS).as_millis() as i64;
        let connected = manager.connected_ids();
        let mut reporters: Vec<&String> = plan
            .reporters
            .iter()
            .filter(|id| connected.contains(*id))
            .collect();
        reporters.shuffle(&mut rand::thread_rng());
        let Some(asked) = reporters.first() else {
            // Nobody to ask right now: try again at the next tick.
            manager.addresses().dial_back_failed(plan.address, now_ms());
            return;
        };
        let request = PeerRequest::DialBack {
            address: plan.address.to_string(),
        };
        // The peer dials with its own connect timeout; allow for that and the answer.
        let timeout =
            config.connect_timeout * 2 + config.request_timeout.min(Duration::from_secs(5));
        let outcome = match manager.request(asked, request, timeout).await {
            Ok(PeerResponse::DialBack(Ok(()))) => Ok(()),
            Ok(PeerResponse::DialBack(Err(e))) | Err(e) => Err(e.to_string()),
            Ok(_) => Err("the peer answered something else".to_string()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(address = %plan.address, peer = %asked, "address verified by a dial-back; announcing it");
                self.metrics.dial_back("asker", "verified");
                manager.addresses().dial_back_succeeded(plan.address);
            }
            Err(reason) => {
                tracing::warn!(address = %plan.address, peer = %asked, %reason, "dial-back failed; not announcing the observed address");
                self.metrics.dial_back("asker", "failed");
                manager.addresses().dial_back_failed(plan.address, retry);
            }
        }
    }
}
