//! Node configuration: defaults < TOML file < `SORCHA_PEER_*` environment < `serve` flags.
//!
//! Every key is declared once in [`KEYS`] (name, default, help text). That one table drives
//! parsing of every layer, the error messages (which always name the key and where the bad value
//! came from) and `sorcha-peer config default`, so the printed default file can never drift
//! from what the node really uses.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::{format_duration, parse_duration};

/// Prefix of every configuration environment variable (`SORCHA_PEER_HEARTBEAT_INTERVAL`, …).
pub const ENV_PREFIX: &str = "SORCHA_PEER_";

/// The largest `max_transaction_size` that may be configured.
pub const MAX_TRANSACTION_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// The longest `host:port` accepted from anyone (a DNS name is at most 253 bytes).
pub const MAX_ADDRESS_LEN: usize = 262;
/// The smallest `max_batch_bytes` that may be configured.
pub const MIN_BATCH_BYTES: usize = 1024;

/// The longest operator-chosen node name.
pub const MAX_NAME_LEN: usize = 64;

/// One configuration key: its name in the file, its default as a TOML literal (`None` when the
/// default is "unset" or computed), and the comment printed above it by `config default`.
pub struct KeyDef {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub help: &'static str,
}

/// All keys, in the order `config default` prints them.
pub const KEYS: &[KeyDef] = &[
    KeyDef {
        name: "data_dir",
        default: None,
        help: "Where the node keeps its key, admin token and SQLite database.\nDefault: the per-user data directory (e.g. ~/.local/share/sorcha-peer).",
    },
    KeyDef {
        name: "listen",
        default: Some("\"0.0.0.0:5000\""),
        help: "Address for the peer protocol (gRPC).",
    },
    KeyDef {
        name: "admin_listen",
        default: Some("\"127.0.0.1:5080\""),
        help: "Address for the admin HTTP API used by the CLI. Keep it on loopback unless you front it with TLS.",
    },
    KeyDef {
        name: "advertise_address",
        default: None,
        help: "host:port other nodes should dial to reach this one. Default: the listen address\n(a 0.0.0.0 host is replaced by each peer with the address it sees us connect from).",
    },
    KeyDef {
        name: "seeds",
        default: Some("[]"),
        help: "First contacts, as host:port. Only used to join the network; re-dialled with backoff while down.",
    },
    KeyDef {
        name: "database_url",
        default: None,
        help: "postgres://user:password@host/db to store on PostgreSQL. Default: SQLite file in data_dir.",
    },
    KeyDef {
        name: "name",
        default: Some("\"\""),
        help: "A label shown to operators. Not an identity: the peer ID comes from the node key.",
    },
    KeyDef {
        name: "heartbeat_interval",
        default: Some("\"10s\""),
        help: "How often each connected peer is pinged (latency is measured from these).",
    },
    KeyDef {
        name: "missed_heartbeats",
        default: Some("3"),
        help: "Unanswered heartbeats in a row after which a peer is marked disconnected.",
    },
    KeyDef {
        name: "max_failures",
        default: Some("5"),
        help: "Consecutive failed requests after which a peer is disconnected and backed off.",
    },
    KeyDef {
        name: "exchange_interval",
        default: Some("\"60s\""),
        help: "How often peer lists are swapped with random connected peers. 0 turns peer exchange off.",
    },
    KeyDef {
        name: "exchange_peers",
        default: Some("3"),
        help: "How many connected peers each exchange round talks to.",
    },
    KeyDef {
        name: "exchange_max_entries",
        default: Some("50"),
        help: "Most peer entries sent or accepted in one exchange message.",
    },
    KeyDef {
        name: "max_known_peers",
        default: Some("1000"),
        help: "Most peers remembered; the least recently seen are forgotten first (never seeds or banned ones).",
    },
    KeyDef {
        name: "max_outbound",
        default: Some("8"),
        help: "Outbound connections the node aims to keep.",
    },
    KeyDef {
        name: "max_inbound",
        default: Some("64"),
        help: "Inbound connections accepted at most.",
    },
    KeyDef {
        name: "max_inbound_per_ip",
        default: Some("4"),
        help: "Inbound peers accepted from one IP address. Beyond it, a new identity from that address is refused.",
    },
    KeyDef {
        name: "max_connections_per_ip",
        default: Some("8"),
        help: "Open TCP connections to the peer port from one IP address, counted before any handshake.",
    },
    KeyDef {
        name: "max_connections_per_subnet",
        default: Some("32"),
        help: "Open TCP connections to the peer port from one /24 (IPv4) or /64 (IPv6) subnet.\nLoopback addresses each count as their own subnet.",
    },
    KeyDef {
        name: "max_pending_connections",
        default: Some("64"),
        help: "Inbound TCP connections beyond max_inbound that may be open at once (handshakes in progress,\nprobes); further ones are closed at accept. A connection without the HTTP/2 preface within\nconnect_timeout, or silent without a session, is closed.",
    },
    KeyDef {
        name: "max_advertised_registers",
        default: Some("1000"),
        help: "Registers remembered per peer from its advertisements; the rest are ignored.",
    },
    KeyDef {
        name: "peer_send_buffer",
        default: Some("16777216"),
        help: "Bytes of outgoing messages queued for one peer. A peer that does not read them is disconnected\n(a single message larger than this is still sent when the queue is empty).",
    },
    KeyDef {
        name: "dial_interval",
        default: Some("\"1s\""),
        help: "How often the node checks whether it should dial seeds or more peers.",
    },
    KeyDef {
        name: "connect_timeout",
        default: Some("\"5s\""),
        help: "Time allowed for a TCP connect plus the identity handshake.",
    },
    KeyDef {
        name: "reconnect_backoff_min",
        default: Some("\"1s\""),
        help: "First retry delay after a failed dial; doubles per failure, with jitter.",
    },
    KeyDef {
        name: "reconnect_backoff_max",
        default: Some("\"60s\""),
        help: "Longest retry delay after repeated failed dials.",
    },
    KeyDef {
        name: "peer_retention",
        default: Some("\"7d\""),
        help: "Peers not seen for this long are forgotten (seeds and banned peers are kept).",
    },
    KeyDef {
        name: "seal_interval",
        default: Some("\"1s\""),
        help: "An origin seals pending transactions into a docket at least this often.",
    },
    KeyDef {
        name: "max_docket_transactions",
        default: Some("1000"),
        help: "An origin seals at once when this many transactions are pending (and never puts more in one docket).",
    },
    KeyDef {
        name: "max_transaction_size",
        default: Some("1048576"),
        help: "Largest transaction payload accepted, in bytes (at most 16 MiB).",
    },
    KeyDef {
        name: "sync_batch_dockets",
        default: Some("100"),
        help: "Dockets pulled per request while catching up a full replica.",
    },
    KeyDef {
        name: "request_timeout",
        default: Some("\"30s\""),
        help: "How long a request to a peer (a batch of dockets, a forwarded transaction) may take.",
    },
    KeyDef {
        name: "verification_ban_threshold",
        default: Some("3"),
        help: "A peer that serves data failing verification this many times within verification_ban_window is banned automatically.",
    },
    KeyDef {
        name: "verification_ban_window",
        default: Some("\"1h\""),
        help: "Window for verification_ban_threshold.",
    },
    KeyDef {
        name: "automatic_ban_duration",
        default: Some("\"24h\""),
        help: "How long an automatic ban lasts.",
    },
    KeyDef {
        name: "gossip_interval",
        default: Some("\"100ms\""),
        help: "How often queued transaction announcements are sent (they are batched in between).",
    },
    KeyDef {
        name: "gossip_fanout",
        default: Some("8"),
        help: "Most peers each transaction is announced to (among connected peers carrying its register).",
    },
    KeyDef {
        name: "gossip_queue_limit",
        default: Some("10000"),
        help: "Most announcements kept waiting for peers; beyond it the oldest are dropped (their transactions stay stored and are re-announced while pending).",
    },
    KeyDef {
        name: "gossip_announce_rate",
        default: Some("10000"),
        help: "Transaction IDs a second accepted from one peer's announcements; the rest are ignored.",
    },
    KeyDef {
        name: "gossip_pull_rate",
        default: Some("10000"),
        help: "Transaction payloads a second served to one peer.",
    },
    KeyDef {
        name: "gossip_request_timeout",
        default: Some("\"2s\""),
        help: "How long one peer may take to serve announced transactions; then they are requested from the next peer that announced them (and the slow one is penalised).",
    },
    KeyDef {
        name: "gossip_max_peer_announcements",
        default: Some("5000"),
        help: "Announced transactions remembered per peer (waiting to be requested); further announcements from that peer are ignored until some are served.",
    },
    KeyDef {
        name: "gossip_max_announcements",
        default: Some("50000"),
        help: "Announced transactions remembered in total; when full, the peer holding the most gives way.",
    },
    KeyDef {
        name: "gossip_max_peer_requests",
        default: Some("500"),
        help: "Transactions requested from one peer and not yet answered.",
    },
    KeyDef {
        name: "max_batch_transactions",
        default: Some("10000"),
        help: "Most transactions in one batch submission to the admin API (`tx submit --lines` splits larger inputs).",
    },
    KeyDef {
        name: "max_batch_bytes",
        default: Some("16777216"),
        help: "Largest batch submission body to the admin API, in bytes (`tx submit --lines` splits larger inputs).",
    },
    KeyDef {
        name: "reannounce_interval",
        default: Some("\"10s\""),
        help: "Transactions still pending after this long are announced again (repairs lost announcements).",
    },
    KeyDef {
        name: "admin_read_open",
        default: Some("true"),
        help: "Allow read-only admin requests from loopback without the token.",
    },
    KeyDef {
        name: "log",
        default: Some("\"info\""),
        help: "Log filter (tracing EnvFilter syntax), e.g. \"info\" or \"sorcha_peer=debug\". RUST_LOG wins when set.",
    },
];

/// The fully resolved configuration of one node.
#[derive(Clone, PartialEq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub advertise_address: Option<String>,
    pub seeds: Vec<String>,
    pub database_url: Option<String>,
    pub name: String,
    pub heartbeat_interval: Duration,
    pub missed_heartbeats: u32,
    pub max_failures: u32,
    pub exchange_interval: Duration,
    pub exchange_peers: usize,
    pub exchange_max_entries: usize,
    pub max_known_peers: usize,
    pub max_outbound: usize,
    pub max_inbound: usize,
    pub max_inbound_per_ip: usize,
    pub max_connections_per_ip: usize,
    pub max_connections_per_subnet: usize,
    pub max_pending_connections: usize,
    pub max_advertised_registers: usize,
    pub peer_send_buffer: usize,
    pub dial_interval: Duration,
    pub connect_timeout: Duration,
    pub reconnect_backoff_min: Duration,
    pub reconnect_backoff_max: Duration,
    pub peer_retention: Duration,
    pub seal_interval: Duration,
    pub max_docket_transactions: usize,
    pub max_transaction_size: usize,
    pub sync_batch_dockets: u32,
    pub request_timeout: Duration,
    pub verification_ban_threshold: u32,
    pub verification_ban_window: Duration,
    pub automatic_ban_duration: Duration,
    pub gossip_interval: Duration,
    pub gossip_fanout: usize,
    pub gossip_queue_limit: usize,
    pub gossip_announce_rate: u64,
    pub gossip_pull_rate: u64,
    pub gossip_request_timeout: Duration,
    pub gossip_max_peer_announcements: usize,
    pub gossip_max_announcements: usize,
    pub gossip_max_peer_requests: usize,
    pub max_batch_transactions: usize,
    pub max_batch_bytes: usize,
    pub reannounce_interval: Duration,
    pub admin_read_open: bool,
    pub log: String,
}

impl fmt::Debug for Config {
    // Hand-written so a PostgreSQL password never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("advertise_address", &self.advertise_address)
            .field("seeds", &self.seeds)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("name", &self.name)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("exchange_interval", &self.exchange_interval)
            .field("max_outbound", &self.max_outbound)
            .field("max_inbound", &self.max_inbound)
            .finish_non_exhaustive()
    }
}

/// Where a configuration value came from, for error messages.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "the default"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration problem, always naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown key `{key}` in {origin}")]
    UnknownKey { key: String, origin: Source },
    #[error("invalid value for `{key}` (from {origin}): {message}")]
    Invalid {
        key: String,
        origin: Source,
        message: String,
    },
}

/// The layers of raw values, merged by precedence before typed parsing.
#[derive(Default)]
pub struct Layers {
    values: BTreeMap<&'static str, (toml::Value, Source)>,
}

impl Layers {
    fn set(&mut self, key: &str, value: toml::Value, source: Source) -> Result<(), ConfigError> {
        let def = KEYS
            .iter()
            .find(|k| k.name == key)
            .ok_or_else(|| ConfigError::UnknownKey {
                key: key.to_string(),
                origin: source.clone(),
            })?;
        self.values.insert(def.name, (value, source));
        Ok(())
    }

    /// Adds the values of a TOML config file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        self.add_toml(&text, Source::File(path.to_path_buf()))
    }

    /// Adds the values of TOML text (used for files and tests).
    pub fn add_toml(&mut self, text: &str, source: Source) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: match &source {
                    Source::File(p) => p.clone(),
                    other => PathBuf::from(other.to_string()),
                },
                message: e.to_string(),
            })?;
        for (key, value) in table {
            self.set(&key, value, source.clone())?;
        }
        Ok(())
    }

    /// Adds every `SORCHA_PEER_<KEY>` variable found by `lookup` (the process environment in
    /// production, a map in tests).
    pub fn add_env(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for def in KEYS {
            let var = format!("{ENV_PREFIX}{}", def.name.to_ascii_uppercase());
            if let Some(text) = lookup(&var) {
                self.set(def.name, toml::Value::String(text), Source::Env(var))?;
            }
        }
        Ok(())
    }

    /// Adds a value given on the command line.
    pub fn add_flag(
        &mut self,
        key: &str,
        flag: &str,
        value: toml::Value,
    ) -> Result<(), ConfigError> {
        self.set(key, value, Source::Flag(flag.to_string()))
    }

    /// Resolves the layers into a validated [`Config`].
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let mut r = Resolver { layers: self };
        let data_dir = match r.opt_string("data_dir")? {
            Some(dir) => PathBuf::from(dir),
            None => default_data_dir(),
        };
        let config = Config {
            data_dir,
            listen: r.addr("listen")?,
            admin_listen: r.addr("admin_listen")?,
            advertise_address: r.opt_string("advertise_address")?,
            seeds: r.list("seeds")?,
            database_url: r.opt_string("database_url")?,
            name: r.string("name")?,
            heartbeat_interval: r.duration("heartbeat_interval")?,
            missed_heartbeats: r.count("missed_heartbeats")? as u32,
            max_failures: r.count("max_failures")? as u32,
            exchange_interval: r.duration("exchange_interval")?,
            exchange_peers: r.count("exchange_peers")? as usize,
            exchange_max_entries: r.count("exchange_max_entries")? as usize,
            max_known_peers: r.count("max_known_peers")? as usize,
            max_outbound: r.count("max_outbound")? as usize,
            max_inbound: r.count("max_inbound")? as usize,
            max_inbound_per_ip: r.count("max_inbound_per_ip")? as usize,
            max_connections_per_ip: r.count("max_connections_per_ip")? as usize,
            max_connections_per_subnet: r.count("max_connections_per_subnet")? as usize,
            max_pending_connections: r.count("max_pending_connections")? as usize,
            max_advertised_registers: r.count("max_advertised_registers")? as usize,
            peer_send_buffer: r.count("peer_send_buffer")? as usize,
            dial_interval: r.duration("dial_interval")?,
            connect_timeout: r.duration("connect_timeout")?,
            reconnect_backoff_min: r.duration("reconnect_backoff_min")?,
            reconnect_backoff_max: r.duration("reconnect_backoff_max")?,
            peer_retention: r.duration("peer_retention")?,
            seal_interval: r.duration("seal_interval")?,
            max_docket_transactions: r.count("max_docket_transactions")? as usize,
            max_transaction_size: r.count("max_transaction_size")? as usize,
            sync_batch_dockets: r.count("sync_batch_dockets")?.min(u32::MAX as u64) as u32,
            request_timeout: r.duration("request_timeout")?,
            verification_ban_threshold: r.count("verification_ban_threshold")? as u32,
            verification_ban_window: r.duration("verification_ban_window")?,
            automatic_ban_duration: r.duration("automatic_ban_duration")?,
            gossip_interval: r.duration("gossip_interval")?,
            gossip_fanout: r.count("gossip_fanout")? as usize,
            gossip_queue_limit: r.count("gossip_queue_limit")? as usize,
            gossip_announce_rate: r.count("gossip_announce_rate")?,
            gossip_pull_rate: r.count("gossip_pull_rate")?,
            gossip_request_timeout: r.duration("gossip_request_timeout")?,
            gossip_max_peer_announcements: r.count("gossip_max_peer_announcements")? as usize,
            gossip_max_announcements: r.count("gossip_max_announcements")? as usize,
            gossip_max_peer_requests: r.count("gossip_max_peer_requests")? as usize,
            max_batch_transactions: r.count("max_batch_transactions")? as usize,
            max_batch_bytes: r.count("max_batch_bytes")? as usize,
            reannounce_interval: r.duration("reannounce_interval")?,
            admin_read_open: r.boolean("admin_read_open")?,
            log: r.string("log")?,
        };
        r.validate(&config)?;
        Ok(config)
    }
}

struct Resolver<'a> {
    layers: &'a Layers,
}

impl Resolver<'_> {
    /// The winning raw value of `key` and its source; the default when no layer set it.
    fn raw(&self, key: &'static str) -> Option<(toml::Value, Source)> {
        if let Some((value, source)) = self.layers.values.get(key) {
            return Some((value.clone(), source.clone()));
        }
        let def = KEYS.iter().find(|k| k.name == key)?;
        let literal = def.default?;
        let table: toml::Table = format!("v = {literal}").parse().ok()?;
        table.get("v").map(|v| (v.clone(), Source::Default))
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let source = self
            .layers
            .values
            .get(key)
            .map(|(_, s)| s.clone())
            .unwrap_or(Source::Default);
        ConfigError::Invalid {
            key: key.to_string(),
            origin: source,
            message: message.into(),
        }
    }

    fn opt_string(&mut self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some((toml::Value::String(s), _)) if s.trim().is_empty() => Ok(None),
            Some((toml::Value::String(s), _)) => Ok(Some(s)),
            Some((other, _)) => Err(self.invalid(key, format!("expected text, found {other}"))),
        }
    }

    fn string(&mut self, key: &'static str) -> Result<String, ConfigError> {
        Ok(self.opt_string(key)?.unwrap_or_default())
    }

    fn addr(&mut self, key: &'static str) -> Result<SocketAddr, ConfigError> {
        let text = self
            .opt_string(key)?
            .ok_or_else(|| self.invalid(key, "an address is required"))?;
        text.parse()
            .map_err(|_| self.invalid(key, format!("'{text}' is not an IP:port address")))
    }

    fn duration(&mut self, key: &'static str) -> Result<Duration, ConfigError> {
        match self.raw(key) {
            Some((toml::Value::String(s), _)) => {
                parse_duration(&s).map_err(|e| self.invalid(key, e))
            }
            Some((toml::Value::Integer(0), _)) => Ok(Duration::ZERO),
            Some((other, _)) => Err(self.invalid(
                key,
                format!("expected a duration like \"10s\", found {other}"),
            )),
            None => Err(self.invalid(key, "a duration is required")),
        }
    }

    fn count(&mut self, key: &'static str) -> Result<u64, ConfigError> {
        match self.raw(key) {
            Some((toml::Value::Integer(n), _)) if n >= 0 => Ok(n as u64),
            Some((toml::Value::String(s), _)) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| self.invalid(key, format!("'{s}' is not a whole number"))),
            Some((other, _)) => {
                Err(self.invalid(key, format!("expected a whole number, found {other}")))
            }
            None => Err(self.invalid(key, "a number is required")),
        }
    }

    fn boolean(&mut self, key: &'static str) -> Result<bool, ConfigError> {
        match self.raw(key) {
            Some((toml::Value::Boolean(b), _)) => Ok(b),
            Some((toml::Value::String(s), _)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(self.invalid(key, format!("'{s}' is not true or false"))),
            },
            Some((other, _)) => {
                Err(self.invalid(key, format!("expected true or false, found {other}")))
            }
            None => Err(self.invalid(key, "true or false is required")),
        }
    }

    /// A list, written as a TOML array or (from the environment) comma-separated text.
    fn list(&mut self, key: &'static str) -> Result<Vec<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(Vec::new()),
            Some((toml::Value::String(s), _)) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()),
            Some((toml::Value::Array(items), _)) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s),
                    other => {
                        Err(self.invalid(key, format!("expected text entries, found {other}")))
                    }
                })
                .collect(),
            Some((other, _)) => Err(self.invalid(key, format!("expected a list, found {other}"))),
        }
    }

    fn validate(&self, c: &Config) -> Result<(), ConfigError> {
        if c.heartbeat_interval.is_zero() {
            return Err(self.invalid("heartbeat_interval", "must be greater than 0"));
        }
        if c.dial_interval.is_zero() {
            return Err(self.invalid("dial_interval", "must be greater than 0"));
        }
        if c.connect_timeout.is_zero() {
            return Err(self.invalid("connect_timeout", "must be greater than 0"));
        }
        if c.missed_heartbeats == 0 {
            return Err(self.invalid("missed_heartbeats", "must be at least 1"));
        }
        if c.max_failures == 0 {
            return Err(self.invalid("max_failures", "must be at least 1"));
        }
        if c.reconnect_backoff_min.is_zero() {
            return Err(self.invalid("reconnect_backoff_min", "must be greater than 0"));
        }
        if c.reconnect_backoff_min > c.reconnect_backoff_max {
            return Err(self.invalid(
                "reconnect_backoff_max",
                "must not be shorter than reconnect_backoff_min",
            ));
        }
        if c.seal_interval.is_zero() {
            return Err(self.invalid("seal_interval", "must be greater than 0"));
        }
        if c.max_docket_transactions == 0 {
            return Err(self.invalid("max_docket_transactions", "must be at least 1"));
        }
        if c.max_transaction_size == 0 || c.max_transaction_size > MAX_TRANSACTION_SIZE_LIMIT {
            return Err(self.invalid(
                "max_transaction_size",
                format!("must be between 1 and {MAX_TRANSACTION_SIZE_LIMIT} bytes (16 MiB)"),
            ));
        }
        if c.sync_batch_dockets == 0 {
            return Err(self.invalid("sync_batch_dockets", "must be at least 1"));
        }
        if c.request_timeout.is_zero() {
            return Err(self.invalid("request_timeout", "must be greater than 0"));
        }
        if c.verification_ban_threshold == 0 {
            return Err(self.invalid("verification_ban_threshold", "must be at least 1"));
        }
        for (key, value) in [
            ("gossip_interval", c.gossip_interval),
            ("reannounce_interval", c.reannounce_interval),
            ("gossip_request_timeout", c.gossip_request_timeout),
        ] {
            if value.is_zero() {
                return Err(self.invalid(key, "must be greater than 0"));
            }
        }
        for (key, value) in [
            ("gossip_fanout", c.gossip_fanout as u64),
            ("gossip_queue_limit", c.gossip_queue_limit as u64),
            ("gossip_announce_rate", c.gossip_announce_rate),
            ("gossip_pull_rate", c.gossip_pull_rate),
            (
                "gossip_max_peer_announcements",
                c.gossip_max_peer_announcements as u64,
            ),
            (
                "gossip_max_announcements",
                c.gossip_max_announcements as u64,
            ),
            (
                "gossip_max_peer_requests",
                c.gossip_max_peer_requests as u64,
            ),
            ("max_batch_transactions", c.max_batch_transactions as u64),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        if c.max_batch_bytes < MIN_BATCH_BYTES {
            return Err(self.invalid(
                "max_batch_bytes",
                format!("must be at least {MIN_BATCH_BYTES} bytes"),
            ));
        }
        for (key, value) in [
            ("max_inbound_per_ip", c.max_inbound_per_ip),
            ("max_connections_per_ip", c.max_connections_per_ip),
            ("max_connections_per_subnet", c.max_connections_per_subnet),
            ("max_pending_connections", c.max_pending_connections),
            ("peer_send_buffer", c.peer_send_buffer),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        // Connected peers always keep their records, so the table must have room beyond them.
        if c.max_known_peers <= c.max_inbound + c.max_outbound {
            return Err(self.invalid(
                "max_known_peers",
                format!(
                    "must be greater than max_inbound + max_outbound ({})",
                    c.max_inbound + c.max_outbound
                ),
            ));
        }
        crate::peers::bans::check_duration(c.automatic_ban_duration)
            .map_err(|e| self.invalid("automatic_ban_duration", e.to_string()))?;
        if c.name.chars().count() > MAX_NAME_LEN {
            return Err(self.invalid("name", format!("at most {MAX_NAME_LEN} characters")));
        }
        for seed in &c.seeds {
            validate_host_port(seed).map_err(|e| self.invalid("seeds", e))?;
        }
        if let Some(addr) = &c.advertise_address {
            validate_host_port(addr).map_err(|e| self.invalid("advertise_address", e))?;
        }
        if let Some(url) = &c.database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(self.invalid(
                "database_url",
                "must start with postgres:// (or sqlite: for an explicit SQLite file)",
            ));
        }
        Ok(())
    }
}

/// Checks `host:port` text (a seed or an announced address).
pub fn validate_host_port(text: &str) -> Result<(), String> {
    if text.len() > MAX_ADDRESS_LEN {
        return Err(format!(
            "address is {} bytes long (at most {MAX_ADDRESS_LEN})",
            text.len()
        ));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("address contains control characters or spaces".to_string());
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("'{text}' is not host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("'{text}' has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("'{text}' has no valid port")),
    }
}

/// The per-user data directory (`~/.local/share/sorcha-peer` on Linux).
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("sorcha-peer"))
        .unwrap_or_else(|| PathBuf::from("sorcha-peer-data"))
}

/// Hides the password in a database URL: `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl Config {
    /// Defaults only (no file, no environment); the base that tests adjust.
    pub fn defaults() -> Result<Config, ConfigError> {
        Layers::default().resolve()
    }

    /// The annotated default configuration file printed by `sorcha-peer config default`.
    pub fn default_file() -> String {
        let mut out = String::from(
            "# sorcha-peer configuration.\n\
             # Precedence: these defaults < this file < SORCHA_PEER_<KEY> environment variables\n\
             # < `sorcha-peer serve` flags. Durations are written like \"200ms\", \"10s\", \"7d\".\n\n",
        );
        for def in KEYS {
            for line in def.help.lines() {
                out.push_str("# ");
                out.push_str(line);
                out.push('\n');
            }
            match def.default {
                Some(literal) => out.push_str(&format!("{} = {literal}\n\n", def.name)),
                None => out.push_str(&format!("# {} = \"\"\n\n", def.name)),
            }
        }
        out
    }

    /// Peer exchange is off when its interval is zero.
    pub fn exchange_enabled(&self) -> bool {
        !self.exchange_interval.is_zero()
    }

    /// The address this node announces to peers.
    pub fn announced_address(&self) -> String {
        self.advertise_address
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// A short description of the storage backend for `status`, password redacted.
    pub fn storage_description(&self) -> String {
        match &self.database_url {
            Some(url) if !url.starts_with("sqlite:") => format!("postgres ({})", redact_url(url)),
            Some(url) => format!("sqlite ({url})"),
            None => format!("sqlite ({})", self.sqlite_path().display()),
        }
    }

    /// The SQLite database file used when no `database_url` is given.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("sorcha-peer.db")
    }

    /// Renders a duration for messages in the same syntax the config accepts.
    pub fn show(d: Duration) -> String {
        format_duration(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::defaults().expect("defaults");
        assert_eq!(c.listen, "0.0.0.0:5000".parse().expect("addr"));
        assert_eq!(c.admin_listen, "127.0.0.1:5080".parse().expect("addr"));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
        assert_eq!(c.exchange_interval, Duration::from_secs(60));
        assert_eq!((c.max_outbound, c.max_inbound), (8, 64));
        assert_eq!(c.max_known_peers, 1000);
        assert_eq!(c.exchange_max_entries, 50);
        assert_eq!(c.missed_heartbeats, 3);
        assert_eq!(c.max_failures, 5);
        assert!(c.seeds.is_empty());
        assert!(c.database_url.is_none());
    }

    #[test]
    fn precedence_is_default_file_env_flag() {
        let mut layers = Layers::default();
        layers
            .add_toml(
                "heartbeat_interval = \"2s\"\nmax_outbound = 4\nname = \"file\"\nseeds = [\"a:1\"]",
                Source::File("f.toml".into()),
            )
            .expect("file");
        layers
            .add_env(env_of(&[
                ("SORCHA_PEER_HEARTBEAT_INTERVAL", "200ms"),
                ("SORCHA_PEER_NAME", "env"),
                ("SORCHA_PEER_SEEDS", "b:2, c:3"),
            ]))
            .expect("env");
        layers
            .add_flag("name", "--name", toml::Value::String("flag".into()))
            .expect("flag");
        let c = layers.resolve().expect("resolve");
        assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(c.max_outbound, 4);
        assert_eq!(c.name, "flag");
        assert_eq!(c.seeds, vec!["b:2".to_string(), "c:3".to_string()]);
    }

    #[test]
    fn exchange_interval_zero_turns_exchange_off() {
        let mut layers = Layers::default();
        layers
            .add_toml("exchange_interval = 0", Source::Default)
            .expect("toml");
        assert!(!layers.resolve().expect("resolve").exchange_enabled());
        let mut layers = Layers::default();
        layers
            .add_env(env_of(&[("SORCHA_PEER_EXCHANGE_INTERVAL", "0")]))
            .expect("env");
        assert!(!layers.resolve().expect("resolve").exchange_enabled());
    }

    #[test]
    fn bad_values_name_the_key_and_the_source() {
        let mut layers = Layers::default();
        layers
            .add_env(env_of(&[("SORCHA_PEER_HEARTBEAT_INTERVAL", "often")]))
            .expect("env");
        let err = layers.resolve().expect_err("bad duration").to_string();
        assert!(err.contains("`heartbeat_interval`"), "{err}");
        assert!(err.contains("SORCHA_PEER_HEARTBEAT_INTERVAL"), "{err}");

        let mut layers = Layers::default();
        let err = layers
            .add_toml(
                "heartbeat_intervall = \"1s\"",
                Source::File("x.toml".into()),
            )
            .expect_err("typo")
            .to_string();
        assert!(err.contains("heartbeat_intervall"), "{err}");

        for (toml, key) in [
            ("max_outbound = \"many\"", "max_outbound"),
            ("listen = \"nowhere\"", "listen"),
            ("seeds = [\"no-port\"]", "seeds"),
            ("heartbeat_interval = \"0\"", "heartbeat_interval"),
            ("database_url = \"mysql://x\"", "database_url"),
            ("reconnect_backoff_min = \"2m\"", "reconnect_backoff_max"),
        ] {
            let mut layers = Layers::default();
            layers.add_toml(toml, Source::Default).expect("parse");
            let err = layers.resolve().expect_err(toml).to_string();
            assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
        }
    }

    #[test]
    fn printed_default_file_parses_to_the_defaults() {
        let mut layers = Layers::default();
        layers
            .add_toml(&Config::default_file(), Source::Default)
            .expect("default file parses");
        assert_eq!(
            layers.resolve().expect("resolve"),
            Config::defaults().expect("defaults")
        );
        for def in KEYS {
            assert!(
                Config::default_file().contains(def.name),
                "{} missing",
                def.name
            );
        }
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://peer:s3cret@db.local:5432/peer"),
            "postgres://peer:***@db.local:5432/peer"
        );
        let mut c = Config::defaults().expect("defaults");
        c.database_url = Some("postgres://peer:s3cret@db/peer".into());
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!c.storage_description().contains("s3cret"));
    }
}
