//! Every configuration key, declared once: its field type, its default (as the TOML literal
//! `config default` prints), its help text, the rule its value must meet and, for the few set
//! on the command line, its `serve` flag. [`declare_keys!`] turns the declarations into the
//! [`Config`] struct, the [`KEYS`] table that drives the file, the environment, the flags and
//! `config default`, and the typed, validated resolution of the layers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::check;
use super::values::{FromValue, Resolver};
use super::{ConfigError, Durability, PeerTls, Secret};

/// One configuration key: its name in the file, its default as a TOML literal (`None` when the
/// default is "unset" or computed), the comment printed above it by `config default`, and its
/// `serve` flag if it has one.
pub struct KeyDef {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
    pub flag: Option<KeyFlag>,
}

/// A `serve` flag that sets a key.
pub struct KeyFlag {
    /// Without the leading `--`.
    pub long: &'static str,
    pub value_name: &'static str,
    pub help: &'static str,
}

impl KeyDef {
    /// A list key: its flag may be repeated.
    pub fn is_list(&self) -> bool {
        self.default == Some("[]")
    }
}

/// Declares the keys: `name: Type { default, help, [check,] [flag: (long, VALUE, help),] }`.
macro_rules! declare_keys {
    ($(
        $name:ident : $ty:ty {
            default: $default:expr,
            help: $help:expr,
            $(check: $check:expr,)?
            $(flag: ($long:expr, $value_name:expr, $flag_help:expr),)?
        },
    )*) => {
        /// The fully resolved configuration of one node.
        #[derive(Clone, PartialEq)]
        pub struct Config {
            $(pub $name: $ty,)*
        }

        /// All keys, in the order `config default` prints them.
        pub const KEYS: &[KeyDef] = &[$(
            KeyDef {
                name: stringify!($name),
                default: $default,
                help: $help,
                flag: declare_keys!(@flag $(($long, $value_name, $flag_help))?),
            },
        )*];

        impl Config {
            /// Reads every key as its type and applies each key's rule, then the rules
            /// across keys.
            pub(super) fn read(r: &Resolver<'_>) -> Result<Config, ConfigError> {
                let config = Config {
                    $($name: <$ty as FromValue>::read(r, stringify!($name))?,)*
                };
                $($(
                    $check(&config.$name)
                        .map_err(|problem| r.invalid(stringify!($name), problem.to_string()))?;
                )?)*
                check::across(&config)
                    .map_err(|(key, problem)| r.invalid(key, problem.to_string()))?;
                Ok(config)
            }
        }
    };
    (@flag) => { None };
    (@flag ($long:expr, $value_name:expr, $help:expr)) => {
        Some(KeyFlag { long: $long, value_name: $value_name, help: $help })
    };
}

declare_keys! {
    data_dir: PathBuf {
        default: None,
        help: "Where the node keeps its key, admin token and SQLite database.\nDefault: the per-user data directory (e.g. ~/.local/share/sorcha-peer).",
    },
    listen: SocketAddr {
        default: Some("\"0.0.0.0:5000\""),
        help: "Address for the peer protocol (gRPC).",
        flag: ("listen", "ADDR", "Peer protocol address [default: 0.0.0.0:5000]"),
    },
    admin_listen: SocketAddr {
        default: Some("\"127.0.0.1:5080\""),
        help: "Address for the admin HTTP API used by the CLI. Keep it on loopback unless it serves TLS (admin_tls_cert_file).",
        flag: ("admin-listen", "ADDR", "Admin API address [default: 127.0.0.1:5080]"),
    },
    peer_tls: PeerTls {
        default: Some("\"node-key\""),
        help: "How peer connections are protected. \"node-key\" (default): TLS 1.3, both ends proving their node key\nwith a certificate made from it; no CA or files needed. \"ca\": TLS 1.3 with certificates a CA issued for\nthe node keys (tls_ca_file, tls_cert_file; `sorcha-peer tls` makes them). \"off\": plaintext (warned at\nstart), for networks protected otherwise. Nodes must agree: one of each fails with a message naming the mismatch.",
        flag: ("peer-tls", "node-key|ca|off", "How peer connections are protected [default: node-key]"),
    },
    tls_ca_file: Option<PathBuf> {
        default: None,
        help: "With peer_tls = \"ca\": the CA certificate(s) (PEM) peer certificates must chain to.",
    },
    tls_cert_file: Option<PathBuf> {
        default: None,
        help: "With peer_tls = \"ca\": this node's certificate (PEM, then any intermediates), issued for its node key\n(`sorcha-peer tls issue`).",
    },
    tls_key_file: Option<PathBuf> {
        default: None,
        help: "With peer_tls = \"ca\": the certificate's private key (PEM). It must be the node key itself\n(node.key is used when unset).",
    },
    tls_crl_file: Option<PathBuf> {
        default: None,
        help: "With peer_tls = \"ca\": revoked certificates (PEM CRLs from the CA). Re-read when the file changes;\npeers whose certificate it revokes are disconnected at once and refused afterwards. Only CRLs the CA in\ntls_ca_file signed are taken (nothing revoked is a signed, empty CRL): another file stops the node at start,\nand later is refused while the previous list stays in force (error log, health and status warn,\nsorcha_peer_tls_crl_reload_failures_total).",
    },
    tls_expiry_warning: Duration {
        default: Some("\"30d\""),
        help: "With peer_tls = \"ca\": warn (log, status, sorcha_peer_tls_certificate_expiry_timestamp_seconds)\nwhen this node's certificate expires within this long.",
    },
    advertise_address: Option<String> {
        default: None,
        help: "host:port other nodes should dial to reach this one. Default: discovered (an address enough peers\nobserve and one dialled back, else STUN/HTTP lookups when configured, else on 0.0.0.0 the interface\nthat routes to the seeds, else the listen address).",
        check: check::host_port,
        flag: ("advertise-address", "HOST:PORT", "Address peers should dial to reach this node [default: discovered, see README \"Reachability\"]"),
    },
    seeds: Vec<String> {
        default: Some("[]"),
        help: "First contacts, as host:port. Only used to join the network; re-dialled with backoff while down.",
        check: check::host_ports,
        flag: ("seed", "HOST:PORT", "A node to join through (repeatable)"),
    },
    reachability_min_peers: usize {
        default: Some("3"),
        help: "Peers that must report the same address for this node (each from another network: IPv4 /16,\nIPv6 /32, each loopback address its own) before one is asked to dial it back; only a\nsuccessful dial-back makes it the announced address.",
        check: check::positive,
    },
    reachability_interval: Duration {
        default: Some("\"30s\""),
        help: "How often the node reconsiders its announced address (observations, dial-back, interface,\nSTUN and HTTP lookups). A failed dial-back is retried after ten of these.",
        check: check::positive,
    },
    stun_servers: Vec<String> {
        default: Some("[]"),
        help: "STUN servers (host:port, UDP) asked for this node's public IP when no observed address is\nverified, e.g. [\"stun.l.google.com:19302\"]. Off when empty.",
        check: check::host_ports,
    },
    ip_lookup_urls: Vec<String> {
        default: Some("[]"),
        help: "http:// URLs answering with the caller's IP as text (\"what is my IP\"), tried after STUN,\ne.g. [\"http://checkip.amazonaws.com\"]. Off when empty.",
        check: check::http_urls,
    },
    database_url: Option<String> {
        default: None,
        help: "postgres://user:password@host/db to store on PostgreSQL. Default: SQLite file in data_dir.",
        check: check::database_scheme,
        flag: ("database-url", "URL", "postgres://user:password@host/db to store on PostgreSQL [default: SQLite in the data dir]"),
    },
    durability: Durability {
        default: Some("\"full\""),
        help: "What an acknowledged write survives. \"full\" (default): every commit is synced to disk before the node\nanswers, so a power cut loses nothing acknowledged (SQLite synchronous=FULL; PostgreSQL as its server is set,\nsynchronous_commit=on by default); concurrent writes share one commit and one sync. \"fast\": SQLite\nsynchronous=NORMAL and PostgreSQL synchronous_commit=off: a crash of the process loses nothing, but a power cut\nor kernel crash can roll back the last commits, acknowledged ones included.",
        flag: ("durability", "full|fast", "What an acknowledged write survives [default: full]"),
    },
    name: String {
        default: Some("\"\""),
        help: "A label shown to operators. Not an identity: the peer ID comes from the node key.",
        check: check::name_length,
        flag: ("name", "NAME", "A label for operators (not an identity)"),
    },
    heartbeat_interval: Duration {
        default: Some("\"10s\""),
        help: "How often each connected peer is pinged (latency is measured from these).",
        check: check::positive,
    },
    missed_heartbeats: u32 {
        default: Some("3"),
        help: "Unanswered heartbeats in a row after which a peer is marked disconnected.",
        check: check::positive,
    },
    max_failures: u32 {
        default: Some("5"),
        help: "Consecutive failed requests after which a peer is disconnected and backed off.",
        check: check::positive,
    },
    exchange_interval: Duration {
        default: Some("\"60s\""),
        help: "How often peer lists are swapped with random connected peers. 0 turns peer exchange off.",
    },
    exchange_peers: usize {
        default: Some("3"),
        help: "How many connected peers each exchange round talks to.",
    },
    exchange_max_entries: usize {
        default: Some("50"),
        help: "Most peer entries sent or accepted in one exchange message.",
    },
    max_known_peers: usize {
        default: Some("1000"),
        help: "Most peers remembered; the least recently seen are forgotten first (never seeds; banned ones only\nwhen nothing else can go, their bans staying in force).",
    },
    max_outbound: usize {
        default: Some("8"),
        help: "Outbound connections the node aims to keep.",
    },
    max_inbound: usize {
        default: Some("64"),
        help: "Inbound connections accepted at most.",
    },
    max_inbound_per_ip: usize {
        default: Some("4"),
        help: "Inbound peers accepted from one IP address. Beyond it, a new identity from that address is refused.",
        check: check::positive,
    },
    max_connections_per_ip: usize {
        default: Some("8"),
        help: "Open TCP connections to the peer port from one IP address, counted before any handshake.",
        check: check::positive,
    },
    max_connections_per_subnet: usize {
        default: Some("32"),
        help: "Open TCP connections to the peer port from one /24 (IPv4) or /64 (IPv6) subnet.\nLoopback addresses each count as their own subnet.",
        check: check::positive,
    },
    max_pending_connections: usize {
        default: Some("64"),
        help: "Inbound TCP connections beyond max_inbound that may be open at once (handshakes in progress,\nprobes); further ones are closed at accept. A connection without the HTTP/2 preface within\nconnect_timeout, or silent without a session, is closed.",
        check: check::positive,
    },
    max_advertised_registers: usize {
        default: Some("1000"),
        help: "Registers remembered per peer from its advertisements; the rest are ignored.",
    },
    peer_send_buffer: usize {
        default: Some("16777216"),
        help: "Bytes of outgoing messages queued for one peer. A peer that does not read them is disconnected\n(a single message larger than this is still sent when the queue is empty).",
        check: check::positive,
    },
    max_inbound_bytes_in_flight: usize {
        default: Some("67108864"),
        help: "Bytes of large peer messages (over 128 KiB) being received at once, across all sessions. A message\nreserves its declared size when its first bytes arrive and gives it back once whole; one that does\nnot fit is refused and its stream ends, unbuffered. Before a session exists every message is at\nmost 128 KiB. At least 1 MiB; keep it above the largest message peers send (up to 16 MiB).",
        check: check::inbound_bytes_in_flight,
    },
    dial_interval: Duration {
        default: Some("\"1s\""),
        help: "How often the node checks whether it should dial seeds or more peers.",
        check: check::positive,
    },
    connect_timeout: Duration {
        default: Some("\"5s\""),
        help: "Time allowed for a TCP connect plus the identity handshake.",
        check: check::positive,
    },
    reconnect_backoff_min: Duration {
        default: Some("\"1s\""),
        help: "First retry delay after a failed dial; doubles per failure, with jitter.",
        check: check::positive,
    },
    reconnect_backoff_max: Duration {
        default: Some("\"60s\""),
        help: "Longest retry delay after repeated failed dials.",
    },
    peer_retention: Duration {
        default: Some("\"7d\""),
        help: "Peers not seen for this long are forgotten (seeds and banned peers are kept).",
    },
    seal_interval: Duration {
        default: Some("\"1s\""),
        help: "An origin seals pending transactions into a docket at least this often.",
        check: check::positive,
    },
    max_docket_transactions: usize {
        default: Some("1000"),
        help: "An origin seals at once when this many transactions are pending (and never puts more in one docket).",
        check: check::positive,
    },
    max_transaction_size: usize {
        default: Some("1048576"),
        help: "Largest transaction payload accepted, in bytes (at most 16 MiB).",
        check: check::transaction_size,
    },
    sync_batch_dockets: u32 {
        default: Some("100"),
        help: "Dockets pulled per request while catching up a full replica.",
        check: check::positive,
    },
    sync_batch_bytes: usize {
        default: Some("1048576"),
        help: "Most transaction payload bytes in one batch of dockets while catching up, both served to\npeers and asked of them (the smaller of the two sides' values applies; a batch always\ncarries at least one docket). Smaller batches show progress sooner, larger ones take fewer\nround trips. 1 KiB to 8 MiB.",
        check: check::sync_batch_bytes,
    },
    request_timeout: Duration {
        default: Some("\"30s\""),
        help: "How long a request to a peer (a batch of dockets, a forwarded transaction) may take.",
        check: check::positive,
    },
    verification_ban_threshold: u32 {
        default: Some("3"),
        help: "A peer that serves data failing verification this many times within verification_ban_window is banned automatically.",
        check: check::positive,
    },
    verification_ban_window: Duration {
        default: Some("\"1h\""),
        help: "Window for verification_ban_threshold.",
    },
    automatic_ban_duration: Duration {
        default: Some("\"24h\""),
        help: "How long an automatic ban lasts.",
        check: check::ban_duration,
    },
    gossip_interval: Duration {
        default: Some("\"100ms\""),
        help: "How often queued transaction announcements are sent (they are batched in between).",
        check: check::positive,
    },
    gossip_fanout: usize {
        default: Some("8"),
        help: "Most peers each transaction is announced to (among connected peers carrying its register).",
        check: check::positive,
    },
    gossip_queue_limit: usize {
        default: Some("10000"),
        help: "Most announcements kept waiting for peers; beyond it the oldest are dropped (their transactions stay stored and are re-announced while pending).",
        check: check::positive,
    },
    gossip_announce_rate: u64 {
        default: Some("10000"),
        help: "Transaction IDs a second accepted from one peer's announcements; the rest are ignored.",
        check: check::positive,
    },
    gossip_pull_rate: u64 {
        default: Some("10000"),
        help: "Transaction payloads a second served to one peer.",
        check: check::positive,
    },
    gossip_request_timeout: Duration {
        default: Some("\"2s\""),
        help: "How long one peer may take to serve announced transactions; then they are requested from the next peer that announced them (and the slow one is penalised).",
        check: check::positive,
    },
    gossip_max_peer_announcements: usize {
        default: Some("20000"),
        help: "Announced transactions remembered per peer (waiting to be requested); further announcements from that peer are ignored until some are served.\nMemory is bounded by gossip_max_announcements, shared by all peers; this keeps one peer from taking all of it.",
        check: check::positive,
    },
    gossip_max_announcements: usize {
        default: Some("50000"),
        help: "Announced transactions remembered in total; when full, the peer holding the most gives way.",
        check: check::positive,
    },
    gossip_max_peer_requests: usize {
        default: Some("500"),
        help: "Transactions requested from one peer and not yet answered.",
        check: check::positive,
    },
    max_batch_transactions: usize {
        default: Some("10000"),
        help: "Most transactions in one batch submission to the admin API (`tx submit --lines` splits larger inputs).",
        check: check::positive,
    },
    max_batch_bytes: usize {
        default: Some("16777216"),
        help: "Largest batch submission body to the admin API, in bytes (`tx submit --lines` splits larger inputs).",
        check: check::batch_bytes,
    },
    reannounce_interval: Duration {
        default: Some("\"10s\""),
        help: "Transactions still pending after this long are announced again (repairs lost announcements).",
        check: check::positive,
    },
    // ----- admin API authentication (admin/auth.rs) -----
    admin_open_cidrs: Vec<IpNet> {
        default: Some("[\"127.0.0.0/8\", \"::1/128\"]"),
        help: "Networks (CIDR, or single addresses) whose clients may read the admin API without a token:\nstatus, the peer list and details, bans, registers, lag. Monitoring (/healthz, /readyz, /metrics,\n/api/health, /api/peers/stats) is open from anywhere; changes always need a token. [] closes reads.",
    },
    jwt_key: Option<Secret> {
        default: None,
        help: "HS256 key that JWT bearer tokens are checked with (the text itself, at least 32 bytes), as the\nplatform issues them. Best given as SORCHA_PEER_JWT_KEY or through jwt_key_file; never printed.\nWithout a key, only the admin token is accepted.",
        check: check::jwt_key,
    },
    jwt_key_file: Option<PathBuf> {
        default: None,
        help: "File holding the HS256 JWT key (its text; a trailing newline is ignored). Instead of jwt_key.",
    },
    jwt_issuer: Option<String> {
        default: None,
        help: "When set, a JWT's `iss` claim must equal it.",
    },
    jwt_audience: Option<String> {
        default: None,
        help: "When set, a JWT's `aud` claim must be or contain it (one audience; jwt_audiences takes a list).",
    },
    jwt_audiences: Vec<String> {
        default: Some("[]"),
        help: "Audiences a JWT's `aud` may name, any of them (with jwt_audience). The platform's four tiers:
[\"INST:consumer\", \"INST:platform\", \"INST:service\", \"INST:enrol-session\"] for installation INST.
A token whose audience is a consumer or enrol-session tier only reads: it never changes anything.",
    },
    jwt_max_lifetime: Duration {
        default: Some("\"24h\""),
        help: "Longest lifetime (exp - iat) a JWT may have. Tokens that live longer, that have no `iat`, or whose\n`iat` is in the future are refused, so a stolen long-lived token is not good for years. Set it\nto at least the longest lifetime of the tokens your platform issues.",
        check: check::positive,
    },
    admin_allowed_hosts: Vec<String> {
        default: Some("[]"),
        help: "Host names the admin API may be reached by (the HTTP Host header, without port), e.g.\n[\"peer1.example.net\"]. IP addresses and `localhost` are always accepted; a request naming\nanother host is refused with 421, so a web page cannot read the API through DNS rebinding.\nAdd the names in `--node` URLs, in Prometheus targets and in a proxy's upstream.",
        check: check::host_names,
    },
    admin_send_timeout: Duration {
        default: Some("\"30s\""),
        help: "How long an answer may wait on an admin API client that reads nothing. A client that stops\nreading (an event stream left unread) is disconnected, and its event stream's place freed.",
        check: check::positive,
    },
    admin_tls_cert_file: Option<PathBuf> {
        default: None,
        help: "PEM certificate chain for the admin API: when set (with admin_tls_key_file), it serves https only.\nThe CLI then needs --node https://… and, for a private CA, --cacert.",
    },
    admin_tls_key_file: Option<PathBuf> {
        default: None,
        help: "PEM private key of admin_tls_cert_file.",
    },
    // ----- the platform interface (platform/) --------------------------------------------
    platform_listen: Option<SocketAddr> {
        default: None,
        help: "Address for the Sorcha platform's gRPC services (the original peer service's six: DocketSyncService,\nPeerDiscovery, PeerHeartbeat, ...), e.g. \"0.0.0.0:5001\". Plaintext HTTP/2 (h2c) unless\nplatform_tls_cert_file is set. Unset: off. Never served on the peer port.",
        flag: ("platform-listen", "ADDR", "Serve the Sorcha platform's gRPC services on this address [default: off]"),
    },
    platform_advertise_address: Option<String> {
        default: None,
        help: "host:port other nodes tell their platform services (a Validator's GetPeerList) to dial for this node's\nplatform services. Default: platform_listen, its host replaced by the host peers reach this node at\nwhen it listens on 0.0.0.0 or [::].",
        check: check::host_port,
    },
    platform_tls_cert_file: Option<PathBuf> {
        default: None,
        help: "PEM certificate chain for the platform listener (any usual RSA or ECDSA certificate): when set (with\nplatform_tls_key_file), it serves TLS with ALPN h2 and asks for no client certificate.",
    },
    platform_tls_key_file: Option<PathBuf> {
        default: None,
        help: "PEM private key of platform_tls_cert_file.",
    },
    platform_allowed_cidrs: Vec<IpNet> {
        default: Some("[\"127.0.0.0/8\", \"::1/128\", \"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\", \"fc00::/7\"]"),
        help: "Networks (CIDR, or single addresses) whose clients may connect to the platform listener; a connection\nfrom elsewhere is closed before anything is read. Default: loopback and the private ranges.",
    },
    platform_require_jwt: bool {
        default: Some("false"),
        help: "Platform calls must carry a JWT signed with jwt_key (as the platform's services send them) in the\n`authorization: Bearer` metadata; others get UNAUTHENTICATED. Needs jwt_key or jwt_key_file.",
    },
    // ----- events and dashboard ---------------------------------------------------------
    max_event_clients: usize {
        default: Some("32"),
        help: "Most clients reading the event stream (`GET /api/events`: the dashboard, `events --follow`,\n`peers list --watch`) at once; more are refused with 503. The places beyond\nmax_anonymous_event_clients are kept for clients with a token.",
        check: check::positive,
    },
    max_anonymous_event_clients: usize {
        default: Some("8"),
        help: "Of max_event_clients, how many may read the event stream without a token (from admin_open_cidrs).\nMust be less than max_event_clients, so streams with the admin token or a JWT always find a place.",
    },
    max_anonymous_event_clients_per_ip: usize {
        default: Some("4"),
        help: "Event streams without a token from one IP address.",
        check: check::positive,
    },
    event_history: usize {
        default: Some("1000"),
        help: "Audit events kept for `events` and replay (`?since=`): connections, bans, verification failures,\nsubscription states, queues at their bound, storage (at most 100000). Progress events (replication\nprogress, dockets sealed and replicated) have a history of their own, the last 200, so they never push these out.",
        check: check::event_history,
    },
    event_keepalive_interval: Duration {
        default: Some("\"15s\""),
        help: "How often an idle event stream sends a keep-alive comment (it also notices a client that went away).",
        check: check::positive,
    },
    // ----- observability: probes, logs, traces -------------------------------------------
    log_level: String {
        default: Some("\"info\""),
        help: "Log filter: a level (error, warn, info, debug, trace) or tracing EnvFilter directives,\ne.g. \"info,sorcha_peer::replication=debug\". RUST_LOG wins when set. Logs go to stderr.",
        check: check::log_filter,
        flag: ("log-level", "FILTER", "Log filter: a level or EnvFilter directives, e.g. info,sorcha_peer=debug [default: info]"),
    },
    log_format: String {
        default: Some("\"text\""),
        help: "Log line format: \"text\" for people, \"json\" for one JSON object per line (log collectors):\ntimestamp, level, target (the module), the event's own fields under \"fields\", its spans under \"spans\".",
        check: check::log_format,
        flag: ("log-format", "text|json", "Log line format [default: text]"),
    },
    otlp_endpoint: Option<String> {
        default: None,
        help: "OpenTelemetry collector to send traces to over OTLP/gRPC, e.g. \"http://127.0.0.1:4317\". Unset: no traces.\nSpans: admin requests, handshakes, heartbeats, peer exchanges, gossip pulls, sync batches, seals.\nExport runs in the background from a bounded queue: a slow or absent collector loses spans, never slows the node.",
        check: check::otlp_endpoint,
        flag: ("otlp-endpoint", "URL", "Send OpenTelemetry traces to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317"),
    },
    otlp_service_name: String {
        default: Some("\"sorcha-peer\""),
        help: "The service.name traces carry (each node is told apart by service.instance.id, its peer ID).",
        check: check::service_name,
    },
    readiness_peer_grace: Duration {
        default: Some("\"30s\""),
        help: "With seeds configured, /readyz answers 503 until the first peer connects, and again once no peer\nhas been connected for this long (a peer restarting does not take the node out of rotation).\n0 makes it not ready as soon as no peer is connected. Without seeds no peer is needed.",
    },
    storage_flap_window: Duration {
        default: Some("\"60s\""),
        help: "Storage that starts working again twice within this long is flapping: /api/health and /readyz\nreport it failing until it has worked this long without failing again. 0 turns this off.",
    },
}
