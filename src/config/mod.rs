//! Node configuration: defaults < TOML file < `SORCHA_PEER_*` environment < `serve` flags.
//!
//! Every key is declared once, in `keys.rs` (type, default, help text, rule, `serve` flag). That
//! one declaration drives the [`Config`] struct, parsing of every layer, validation, the error
//! messages (which always name the key and where the bad value came from), the `serve` flags
//! and `sorcha-peer config default`, so none of them can drift from what the node really uses.
//! `values.rs` reads raw values as typed ones; `check.rs` holds the rules.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::format_duration;

mod check;
mod durability;
pub mod env;
mod keys;
mod values;

pub use check::LOG_FORMATS;
pub use durability::{Durability, UnknownDurability};
pub use keys::{Config, KEYS, KeyDef, KeyFlag};
use values::Resolver;

/// Prefix of every configuration environment variable (`SORCHA_PEER_HEARTBEAT_INTERVAL`, …).
pub const ENV_PREFIX: &str = "SORCHA_PEER_";

/// The largest `max_transaction_size` that may be configured.
pub const MAX_TRANSACTION_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// The longest `host:port` accepted from anyone (a DNS name is at most 253 bytes).
pub const MAX_ADDRESS_LEN: usize = 262;
/// The smallest `max_batch_bytes` that may be configured.
pub const MIN_BATCH_BYTES: usize = 1024;

/// How peer connections are protected (`peer_tls`; see `transport/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerTls {
    /// TLS 1.3 with certificates made from the node keys (the default; no CA).
    NodeKey,
    /// TLS 1.3 with certificates a CA issued for the node keys (`tls_*_file`).
    Ca,
    /// Plaintext, for networks protected otherwise.
    Off,
}

impl PeerTls {
    pub const NAMES: [&str; 3] = ["node-key", "ca", "off"];

    pub fn name(self) -> &'static str {
        match self {
            PeerTls::NodeKey => "node-key",
            PeerTls::Ca => "ca",
            PeerTls::Off => "off",
        }
    }
}

impl fmt::Display for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `peer_tls` value that names no mode.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a peer transport mode (one of: node-key, ca, off)")]
pub struct UnknownPeerTls(String);

impl std::str::FromStr for PeerTls {
    type Err = UnknownPeerTls;

    fn from_str(text: &str) -> Result<PeerTls, UnknownPeerTls> {
        match text {
            "node-key" => Ok(PeerTls::NodeKey),
            "ca" => Ok(PeerTls::Ca),
            "off" => Ok(PeerTls::Off),
            other => Err(UnknownPeerTls(other.to_string())),
        }
    }
}

/// The shortest HS256 JWT key accepted (256 bits, as the platform's issuer also requires).
pub const MIN_JWT_KEY_BYTES: usize = 32;

/// Text that must never be shown, such as a key: `Debug` prints `***`, and reading a value of
/// the wrong type says so without echoing it. The text itself is read with [`Secret::expose`].
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The longest operator-chosen node name.
pub const MAX_NAME_LEN: usize = 64;

/// The longest ban with an end: 100 years (of 365.25 days, as `100y` is read). Longer ones are
/// refused, since a ban without a duration already lasts until unbanned. Declared here, below
/// the peer domain that enforces it, because `automatic_ban_duration` is checked against it.
pub const MAX_BAN_DURATION: std::time::Duration = std::time::Duration::from_secs(100 * 31_557_600);

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
        Config::read(&Resolver { layers: self })
    }
}
/// What is wrong with `host:port` text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddressError {
    #[error("address is {0} bytes long (at most {MAX_ADDRESS_LEN})")]
    TooLong(usize),
    #[error("address contains control characters or spaces")]
    Unprintable,
    #[error("'{0}' is not host:port")]
    NotHostPort(String),
    #[error("'{0}' has no host")]
    NoHost(String),
    #[error("'{0}' has no valid port")]
    NoPort(String),
}

/// Checks `host:port` text (a seed or an announced address).
pub fn validate_host_port(text: &str) -> Result<(), AddressError> {
    if text.len() > MAX_ADDRESS_LEN {
        return Err(AddressError::TooLong(text.len()));
    }
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AddressError::Unprintable);
    }
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| AddressError::NotHostPort(text.to_string()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(AddressError::NoHost(text.to_string()));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(AddressError::NoPort(text.to_string())),
    }
}

/// `host:port` text apart: the host without IPv6 brackets, and the port when there is one.
pub fn split_host_port(text: &str) -> (&str, Option<u16>) {
    match text.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (
            host.trim_start_matches('[').trim_end_matches(']'),
            port.parse().ok(),
        ),
        _ => (text, None),
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
mod tests;
