//! Typed reading of configuration values: the winning layer's raw TOML value (or the key's
//! default) turned into the field's type, with errors that name the key and where the value
//! came from. A number that does not fit its field is an error, never a truncation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{ConfigError, KEYS, Layers, Secret, Source, default_data_dir};
use crate::clock::parse_duration;

/// Reads typed values from the merged layers, naming the key and its source in every error.
pub(super) struct Resolver<'a> {
    pub layers: &'a Layers,
}

impl Resolver<'_> {
    /// The winning raw value of `key` and its source; the default when no layer set it.
    pub(super) fn raw(&self, key: &'static str) -> Option<(toml::Value, Source)> {
        if let Some((value, source)) = self.layers.values.get(key) {
            return Some((value.clone(), source.clone()));
        }
        let def = KEYS.iter().find(|k| k.name == key)?;
        let literal = def.default?;
        let table: toml::Table = format!("v = {literal}").parse().ok()?;
        table.get("v").map(|v| (v.clone(), Source::Default))
    }

    pub(super) fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
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

    fn opt_string(&self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.raw(key) {
            None => Ok(None),
            Some((toml::Value::String(s), _)) if s.trim().is_empty() => Ok(None),
            Some((toml::Value::String(s), _)) => Ok(Some(s)),
            Some((other, _)) => Err(self.invalid(key, format!("expected text, found {other}"))),
        }
    }

    fn string(&self, key: &'static str) -> Result<String, ConfigError> {
        Ok(self.opt_string(key)?.unwrap_or_default())
    }

    fn addr(&self, key: &'static str) -> Result<SocketAddr, ConfigError> {
        let text = self
            .opt_string(key)?
            .ok_or_else(|| self.invalid(key, "an address is required"))?;
        text.parse()
            .map_err(|_| self.invalid(key, format!("'{text}' is not an IP:port address")))
    }

    fn duration(&self, key: &'static str) -> Result<Duration, ConfigError> {
        match self.raw(key) {
            Some((toml::Value::String(s), _)) => {
                parse_duration(&s).map_err(|e| self.invalid(key, e.to_string()))
            }
            Some((toml::Value::Integer(0), _)) => Ok(Duration::ZERO),
            Some((other, _)) => Err(self.invalid(
                key,
                format!("expected a duration like \"10s\", found {other}"),
            )),
            None => Err(self.invalid(key, "a duration is required")),
        }
    }

    fn count(&self, key: &'static str) -> Result<u64, ConfigError> {
        match self.raw(key) {
            Some((toml::Value::Integer(n), _)) if n >= 0 => Ok(n.unsigned_abs()),
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

    fn boolean(&self, key: &'static str) -> Result<bool, ConfigError> {
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
    fn list(&self, key: &'static str) -> Result<Vec<String>, ConfigError> {
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
}

/// A field type a configuration value can be read as.
pub(super) trait FromValue: Sized {
    fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError>;
}

/// Types read by one [`Resolver`] method each.
macro_rules! read_with {
    ($($t:ty => $method:ident),* $(,)?) => {$(
        impl FromValue for $t {
            fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
                r.$method(key)
            }
        }
    )*};
}
read_with!(
    String => string,
    Option<String> => opt_string,
    SocketAddr => addr,
    Vec<String> => list,
    Duration => duration,
    bool => boolean,
);

/// An optional address (a listener that is off unless set).
impl FromValue for Option<SocketAddr> {
    fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
        match r.opt_string(key)? {
            None => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| r.invalid(key, format!("'{text}' is not an IP:port address"))),
        }
    }
}

/// A directory; unset means the per-user data directory.
impl FromValue for PathBuf {
    fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
        Ok(r.opt_string(key)?
            .map(PathBuf::from)
            .unwrap_or_else(default_data_dir))
    }
}

/// An optional file.
impl FromValue for Option<PathBuf> {
    fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
        Ok(r.opt_string(key)?.map(PathBuf::from))
    }
}

/// A secret: text, never echoed in an error.
impl FromValue for Option<Secret> {
    fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
        match r.raw(key) {
            None => Ok(None),
            Some((toml::Value::String(s), _)) if s.trim().is_empty() => Ok(None),
            Some((toml::Value::String(s), _)) => Ok(Some(Secret::new(s))),
            Some(_) => Err(r.invalid(key, "expected text (the value is not shown)")),
        }
    }
}

/// Networks: `10.0.0.0/8`, `::1/128`, or a single address meaning just that host.
impl FromValue for Vec<IpNet> {
    fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
        r.list(key)?
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        r.invalid(
                            key,
                            format!("'{text}' is not a network like 10.0.0.0/8 or an IP address"),
                        )
                    })
            })
            .collect()
    }
}

/// The peer transport mode: `node-key`, `ca` or `off`.
impl FromValue for super::PeerTls {
    fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
        let text = r.string(key)?;
        text.parse()
            .map_err(|e: super::UnknownPeerTls| r.invalid(key, e.to_string()))
    }
}

/// The durability setting: `full` or `fast`.
impl FromValue for super::Durability {
    fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
        let text = r.string(key)?;
        text.parse()
            .map_err(|e: super::UnknownDurability| r.invalid(key, e.to_string()))
    }
}

macro_rules! counts {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn read(r: &Resolver<'_>, key: &'static str) -> Result<Self, ConfigError> {
                let n = r.count(key)?;
                <$t>::try_from(n).map_err(|_| {
                    r.invalid(key, format!("{n} is too large (at most {})", <$t>::MAX))
                })
            }
        }
    )*};
}
counts!(u32, u64, usize);
