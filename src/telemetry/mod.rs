//! The node's Prometheus metrics, logging set-up (`logging.rs`) and OpenTelemetry traces
//! (`traces.rs` turns spans into span data, `otlp.rs` exports them). Each node owns its own [`Metrics`]
//! (no process-global registry), so several nodes can run in one test process.
//! `exposition.rs` turns the registry into the text a scraper asked for; `process.rs` reads the
//! standard `process_*` metrics from `/proc`.

pub(crate) mod exposition;
pub(crate) mod logging;
pub(crate) mod otlp;
pub(crate) mod process;
pub(crate) mod traces;

pub use logging::{
    LOG_FLUSH_TIMEOUT, LogFormat, LogSetupError, flush_logs, init_logging, init_node_logging,
};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A metric label set such as `[("state", "connected")]`.
pub type Labels = Vec<(&'static str, &'static str)>;

/// Round-trip buckets in seconds: loopback is sub-millisecond, WAN links hundreds of ms.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every metric one node exports at `/metrics`.
pub struct Metrics {
    /// The root: `process_*` metrics, and under it the node's own, prefixed `sorcha_peer_`.
    registry: Registry,
    /// Known peers by state (refreshed when scraped).
    pub peers: Family<Labels, Gauge>,
    /// Live connections by direction (refreshed when scraped).
    pub connections: Family<Labels, Gauge>,
    /// Heartbeat round-trip time.
    pub heartbeat_latency: Histogram,
    /// Handshakes by result (`accepted`, `refused`, `failed`).
    pub handshakes: Family<Labels, Counter>,
    /// Dial-backs by role (`asker`: this node asked a peer; `asked`: a peer asked this node) and
    /// outcome (`verified`, `failed`, `refused`).
    pub dial_backs: Family<Labels, Counter>,
    /// Failed requests to peers (missed heartbeats, failed dials, dropped connections).
    pub peer_failures: Counter,
    /// Bans in force (refreshed when scraped).
    pub bans_active: Gauge,
    /// Bans imposed, by source (`manual`, `automatic`).
    pub bans_total: Family<Labels, Counter>,
    /// Peers learnt through peer exchange.
    pub peers_learned: Counter,
    /// Per replicated register: dockets behind the best height peers advertise.
    pub register_dockets_behind: Family<RegisterLabel, Gauge>,
    /// Per replicated register: transactions behind the best version peers advertise.
    pub register_transactions_behind: Family<RegisterLabel, Gauge>,
    /// Dockets sealed by this node as origin.
    pub dockets_sealed: Counter,
    /// Dockets received from peers that passed verification and were stored.
    pub dockets_replicated: Counter,
    /// Dockets or transactions from peers that failed verification.
    pub verification_failures: Counter,
    /// Payloads received over the network for replicated dockets (not already here by gossip).
    pub docket_payloads_received: Counter,
    /// Batches of dockets received while catching up.
    pub sync_batches_received: Counter,
    /// Transaction IDs announced to peers.
    pub gossip_announcements_sent: Counter,
    /// Transaction IDs announced by peers.
    pub gossip_announcements_received: Counter,
    /// Bytes of announcement messages handed to peer sessions, encoded as each peer reads
    /// them (before TLS and HTTP/2 framing).
    pub gossip_announce_bytes: Counter,
    /// Transaction payloads pulled from peers (and accepted).
    pub gossip_payloads_pulled: Counter,
    /// Announced transactions not pulled because this node had them or was already pulling.
    pub gossip_duplicates_avoided: Counter,
    /// Announcements waiting for peers.
    pub gossip_queue_depth: Gauge,
    /// Announcements dropped because the queue was full.
    pub gossip_queue_dropped: Counter,
    /// Announced IDs ignored and pulls refused because a peer exceeded its rate.
    pub gossip_rate_limited: Counter,
    /// New transactions received through gossip, per register.
    pub gossip_transactions_received: Family<RegisterLabel, Counter>,
    /// Times a bound on what peers can make this node hold was hit, by limit.
    pub limit_hits: Family<Labels, Counter>,
    /// Bytes reserved by large inbound peer messages not yet whole (`max_inbound_bytes_in_flight`).
    pub inbound_bytes_in_flight: Gauge,
    /// Inbound connections refused or evicted before or at the handshake, by reason.
    pub connections_refused: Family<Labels, Counter>,
    /// Peer connections refused at the transport (TLS) layer, by direction and reason.
    pub transport_refusals: Family<Labels, Counter>,
    /// Unix time this node's CA-issued peer certificate expires (0 outside CA mode).
    /// Registered in CA mode only ([`Metrics::with_ca_certificate_expiry`]).
    pub tls_certificate_expiry: Gauge,
    /// Revocation list files refused (not parsed, not signed by the CA): the previous list
    /// stays in force.
    pub tls_crl_reload_failures: Counter,
    /// Peer sessions closed because a certificate (the peer's or this node's) expired.
    pub tls_sessions_expired: Counter,
    /// Announced transactions waiting to be (or being) requested.
    pub gossip_tracked: Gauge,
    /// Announcements not remembered, by bound hit (`peer_limit`, `total_limit`) or given way
    /// to others (`evicted`).
    pub gossip_announcements_dropped: Family<Labels, Counter>,
    /// Transaction requests that did not deliver, by reason (`missing`, `timeout`, `refused`,
    /// `disconnected`, `storage`).
    pub gossip_requests_failed: Family<Labels, Counter>,
    /// Platform messages handed to peer sessions (sent from here or forwarded).
    pub messages_sent: Counter,
    /// Platform messages handed to this node's `Stream` listeners.
    pub messages_delivered: Counter,
    /// Platform messages (or listeners, `slow_reader`) dropped, by reason.
    pub messages_dropped: Family<Labels, Counter>,
}

/// A metric label set naming one register.
pub type RegisterLabel = Vec<(&'static str, String)>;

impl Metrics {
    /// With the gauge of when this node's CA-issued certificate expires. Only in CA mode: in
    /// node-key mode there is nothing to expire, and a 0 would set off every expiry alert.
    pub fn with_ca_certificate_expiry(mut self) -> Metrics {
        self.registry
            .sub_registry_with_prefix("sorcha_peer")
            .register(
                "tls_certificate_expiry_timestamp_seconds",
                "Unix time this node's CA-issued peer TLS certificate expires (peer_tls = ca only)",
                self.tls_certificate_expiry.clone(),
            );
        self
    }

    pub fn new() -> Metrics {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let mut metrics = Metrics::unregistered();
        // Registered in this order, which is the order `/metrics` lists them in.
        let registry = root.sub_registry_with_prefix("sorcha_peer");
        register_build_info(registry);
        metrics.register_peers(registry);
        metrics.register_replication(registry);
        metrics.register_gossip(registry);
        metrics.register_admission(registry);
        metrics.register_transport(registry);
        metrics.register_gossip_requests(registry);
        metrics.register_messages(registry);
        metrics.registry = root;
        metrics
    }

    /// Every metric, registered nowhere yet (the registry is an empty placeholder).
    fn unregistered() -> Metrics {
        Metrics {
            registry: Registry::default(),
            peers: Family::<Labels, Gauge>::default(),
            connections: Family::<Labels, Gauge>::default(),
            heartbeat_latency: Histogram::new(LATENCY_BUCKETS),
            handshakes: Family::<Labels, Counter>::default(),
            peer_failures: Counter::default(),
            bans_active: Gauge::default(),
            bans_total: Family::<Labels, Counter>::default(),
            peers_learned: Counter::default(),
            register_dockets_behind: Family::<RegisterLabel, Gauge>::default(),
            register_transactions_behind: Family::<RegisterLabel, Gauge>::default(),
            dockets_sealed: Counter::default(),
            dockets_replicated: Counter::default(),
            docket_payloads_received: Counter::default(),
            sync_batches_received: Counter::default(),
            verification_failures: Counter::default(),
            gossip_announcements_sent: Counter::default(),
            gossip_announcements_received: Counter::default(),
            gossip_announce_bytes: Counter::default(),
            gossip_payloads_pulled: Counter::default(),
            gossip_duplicates_avoided: Counter::default(),
            gossip_queue_depth: Gauge::default(),
            gossip_queue_dropped: Counter::default(),
            gossip_rate_limited: Counter::default(),
            gossip_transactions_received: Family::<RegisterLabel, Counter>::default(),
            dial_backs: Family::<Labels, Counter>::default(),
            limit_hits: Family::<Labels, Counter>::default(),
            inbound_bytes_in_flight: Gauge::default(),
            connections_refused: Family::<Labels, Counter>::default(),
            tls_certificate_expiry: Gauge::default(),
            tls_crl_reload_failures: Counter::default(),
            tls_sessions_expired: Counter::default(),
            transport_refusals: Family::<Labels, Counter>::default(),
            gossip_tracked: Gauge::default(),
            gossip_announcements_dropped: Family::<Labels, Counter>::default(),
            gossip_requests_failed: Family::<Labels, Counter>::default(),
            messages_sent: Counter::default(),
            messages_delivered: Counter::default(),
            messages_dropped: Family::<Labels, Counter>::default(),
        }
    }

    /// Peers known and connected, heartbeats, handshakes and bans.
    fn register_peers(&self, registry: &mut Registry) {
        registry.register("peers", "Known peers by state", self.peers.clone());
        registry.register(
            "connections",
            "Live peer connections by direction",
            self.connections.clone(),
        );
        registry.register(
            "heartbeat_latency_seconds",
            "Heartbeat round-trip time",
            self.heartbeat_latency.clone(),
        );
        registry.register(
            "handshakes",
            "Peer handshakes by result",
            self.handshakes.clone(),
        );
        registry.register(
            "peer_failures",
            "Failed requests to peers (missed heartbeats, failed dials, dropped connections)",
            self.peer_failures.clone(),
        );
        registry.register("bans_active", "Bans in force", self.bans_active.clone());
        registry.register("bans", "Bans imposed, by source", self.bans_total.clone());
        registry.register(
            "peers_learned",
            "Peers learnt through peer exchange",
            self.peers_learned.clone(),
        );
    }

    /// Registers replicated here: lag, dockets sealed and received.
    fn register_replication(&self, registry: &mut Registry) {
        registry.register(
            "register_dockets_behind",
            "Replication lag per register, in dockets behind the best advertised height",
            self.register_dockets_behind.clone(),
        );
        registry.register(
            "register_transactions_behind",
            "Replication lag per register, in transactions behind the best advertised version",
            self.register_transactions_behind.clone(),
        );
        registry.register(
            "dockets_sealed",
            "Dockets sealed as origin",
            self.dockets_sealed.clone(),
        );
        registry.register(
            "dockets_replicated",
            "Dockets received from peers, verified and stored",
            self.dockets_replicated.clone(),
        );
        registry.register(
            "docket_payloads_received",
            "Transaction payloads received over the network for replicated dockets (catch-up batches and pushes whose payloads were not already here)",
            self.docket_payloads_received.clone(),
        );
        registry.register(
            "sync_batches_received",
            "Batches of dockets received from peers while catching up a register (each bounded by sync_batch_dockets and sync_batch_bytes)",
            self.sync_batches_received.clone(),
        );
        registry.register(
            "verification_failures",
            "Data from peers that failed verification",
            self.verification_failures.clone(),
        );
    }

    /// Announcements and the payloads pulled after them.
    fn register_gossip(&self, registry: &mut Registry) {
        registry.register(
            "gossip_announcements_sent",
            "Transaction IDs announced to peers",
            self.gossip_announcements_sent.clone(),
        );
        registry.register(
            "gossip_announcements_received",
            "Transaction IDs announced by peers",
            self.gossip_announcements_received.clone(),
        );
        registry.register(
            "gossip_announce_bytes",
            "Bytes of announcement messages sent, as encoded for each peer",
            self.gossip_announce_bytes.clone(),
        );
        registry.register(
            "gossip_payloads_pulled",
            "Transaction payloads pulled from peers",
            self.gossip_payloads_pulled.clone(),
        );
        registry.register(
            "gossip_duplicates_avoided",
            "Announced transactions not pulled because they were already held or being pulled",
            self.gossip_duplicates_avoided.clone(),
        );
        registry.register(
            "gossip_queue_depth",
            "Announcements waiting for peers",
            self.gossip_queue_depth.clone(),
        );
        registry.register(
            "gossip_queue_dropped",
            "Announcements dropped because the queue was full",
            self.gossip_queue_dropped.clone(),
        );
        registry.register(
            "gossip_rate_limited",
            "Announced IDs ignored and pulled IDs refused because a peer exceeded its rate",
            self.gossip_rate_limited.clone(),
        );
        registry.register(
            "gossip_transactions_received",
            "New transactions received through gossip, per register",
            self.gossip_transactions_received.clone(),
        );
    }

    /// Dial-backs, and the bounds on what peers can make this node hold.
    fn register_admission(&self, registry: &mut Registry) {
        registry.register(
            "dial_backs",
            "Dial-backs (reachability checks) by role (asker, asked) and outcome (verified, failed, refused)",
            self.dial_backs.clone(),
        );
        registry.register(
            "limit_hits",
            "Times a bound on what peers can make this node hold was reached (the excess was refused, cut or evicted), by limit",
            self.limit_hits.clone(),
        );
        registry.register(
            "inbound_bytes_in_flight",
            "Bytes reserved by large inbound peer messages still arriving (at most max_inbound_bytes_in_flight)",
            self.inbound_bytes_in_flight.clone(),
        );
        registry.register(
            "connections_refused",
            "Inbound peer connections refused or evicted by admission control, by reason",
            self.connections_refused.clone(),
        );
    }

    /// The transport (TLS) layer. The certificate expiry gauge is registered in CA mode only
    /// ([`Metrics::with_ca_certificate_expiry`]).
    fn register_transport(&self, registry: &mut Registry) {
        registry.register(
            "tls_crl_reload_failures",
            "Times tls_crl_file was refused (unreadable, no CRL, not issued or not signed by the CA); the previous revocation list stays in force",
            self.tls_crl_reload_failures.clone(),
        );
        registry.register(
            "tls_sessions_expired",
            "Peer sessions this node closed because the peer's CA-issued certificate expired",
            self.tls_sessions_expired.clone(),
        );
        registry.register(
            "transport_refusals",
            "Peer connections refused at the transport (TLS) layer, by direction (inbound, outbound) and reason (peer_tls_mismatch, bad_certificate, wrong_key, tls_handshake, revoked)",
            self.transport_refusals.clone(),
        );
    }

    /// The request tracker: announcements remembered, requests that did not deliver.
    fn register_gossip_requests(&self, registry: &mut Registry) {
        registry.register(
            "gossip_tracked",
            "Announced transactions waiting to be (or being) requested",
            self.gossip_tracked.clone(),
        );
        registry.register(
            "gossip_announcements_dropped",
            "Announcements not remembered, by bound hit (peer_limit, total_limit) or given way to others (evicted)",
            self.gossip_announcements_dropped.clone(),
        );
        registry.register(
            "gossip_requests_failed",
            "Transaction requests to peers that did not deliver, by reason",
            self.gossip_requests_failed.clone(),
        );
    }

    /// Platform messages carried across the overlay.
    fn register_messages(&self, registry: &mut Registry) {
        registry.register(
            "platform_messages_sent",
            "Platform messages (PeerCommunication) handed to peer sessions, sent from here or forwarded",
            self.messages_sent.clone(),
        );
        registry.register(
            "platform_messages_delivered",
            "Platform messages handed to this node's PeerCommunication.Stream listeners",
            self.messages_delivered.clone(),
        );
        registry.register(
            "platform_messages_dropped",
            "Platform messages dropped, by reason (duplicate, stale, peer_rate, origin_rate, misdirected, hop_limit, forged, malformed), and listeners dropped as too slow (slow_reader)",
            self.messages_dropped.clone(),
        );
    }

    /// Counts one dial-back by role and outcome.
    pub fn dial_back(&self, role: &'static str, outcome: &'static str) {
        self.dial_backs
            .get_or_create(&vec![("role", role), ("outcome", outcome)])
            .inc();
    }

    /// Counts one hit of the named bound (`followers`, `known_peers`, …).
    pub fn limit_hit(&self, limit: &'static str) {
        self.limit_hits.get_or_create(&vec![("limit", limit)]).inc();
    }

    /// Counts one inbound connection refused (or evicted) for `reason`.
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// Counts one peer connection refused at the transport layer.
    pub fn transport_refused(&self, direction: &'static str, reason: &'static str) {
        self.transport_refusals
            .get_or_create(&vec![("direction", direction), ("reason", reason)])
            .inc();
    }

    /// Every metric in `format` (see [`exposition`]).
    pub fn render(&self, format: exposition::Format) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(match format {
            exposition::Format::OpenMetrics => out,
            exposition::Format::Text => exposition::openmetrics_to_text(&out),
        })
    }
}

/// `build_info`: always 1, labelled with the version and commit this node runs.
fn register_build_info(registry: &mut Registry) {
    let build_info = Family::<RegisterLabel, Gauge>::default();
    registry.register(
        "build_info",
        "Always 1; the labels say which version and commit this node runs",
        build_info.clone(),
    );
    build_info
        .get_or_create(&vec![
            ("version", crate::VERSION.to_string()),
            ("commit", crate::COMMIT.to_string()),
        ])
        .set(1);
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
