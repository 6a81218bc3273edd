//! Rules a configured value must meet, named by the key declarations in `keys.rs` (one value)
//! or applied across keys by [`across`]. Each says what is wrong in words an operator can act
//! on; the caller adds the key and where the value came from.

use std::time::Duration;

use super::{
    Config, MAX_NAME_LEN, MAX_TRANSACTION_SIZE_LIMIT, MIN_BATCH_BYTES, MIN_JWT_KEY_BYTES, Secret,
    validate_host_port,
};

/// What is wrong with a value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Problem(pub String);

/// Values that may not be zero: counts, limits, intervals.
pub(super) trait Positive {
    fn is_positive(&self) -> bool;
    /// How to say it ("must be at least 1" for counts, "must be greater than 0" for durations).
    const RULE: &'static str;
}

impl Positive for Duration {
    fn is_positive(&self) -> bool {
        !self.is_zero()
    }
    const RULE: &'static str = "must be greater than 0";
}

macro_rules! positive_count {
    ($($t:ty),*) => {$(
        impl Positive for $t {
            fn is_positive(&self) -> bool {
                *self > 0
            }
            const RULE: &'static str = "must be at least 1";
        }
    )*};
}
positive_count!(u32, u64, usize);

pub(super) fn positive<T: Positive>(value: &T) -> Result<(), Problem> {
    if value.is_positive() {
        Ok(())
    } else {
        Err(Problem(T::RULE.to_string()))
    }
}

/// Most audit events `event_history` may keep (each holds a few hundred bytes at most).
pub(super) const MAX_EVENT_HISTORY: usize = 100_000;

pub(super) fn event_history(count: &usize) -> Result<(), Problem> {
    if *count == 0 || *count > MAX_EVENT_HISTORY {
        return Err(Problem(format!(
            "must be between 1 and {MAX_EVENT_HISTORY} events"
        )));
    }
    Ok(())
}

pub(super) fn transaction_size(size: &usize) -> Result<(), Problem> {
    if *size == 0 || *size > MAX_TRANSACTION_SIZE_LIMIT {
        return Err(Problem(format!(
            "must be between 1 and {MAX_TRANSACTION_SIZE_LIMIT} bytes (16 MiB)"
        )));
    }
    Ok(())
}

pub(super) fn batch_bytes(bytes: &usize) -> Result<(), Problem> {
    if *bytes < MIN_BATCH_BYTES {
        return Err(Problem(format!("must be at least {MIN_BATCH_BYTES} bytes")));
    }
    Ok(())
}

/// Bounds of `sync_batch_bytes` (the upper one is the replication layer's own batch bound).
pub(super) const SYNC_BATCH_BYTES_RANGE: (usize, usize) = (1024, 8 * 1024 * 1024);

pub(super) fn sync_batch_bytes(bytes: &usize) -> Result<(), Problem> {
    let (min, max) = SYNC_BATCH_BYTES_RANGE;
    if *bytes < min || *bytes > max {
        return Err(Problem(format!(
            "must be between {min} and {max} bytes (1 KiB to 8 MiB)"
        )));
    }
    Ok(())
}

/// Least `max_inbound_bytes_in_flight`: room for a default catch-up batch (1 MiB of payloads).
pub(super) const MIN_INBOUND_BYTES_IN_FLIGHT: usize = 1024 * 1024;

pub(super) fn inbound_bytes_in_flight(bytes: &usize) -> Result<(), Problem> {
    if *bytes < MIN_INBOUND_BYTES_IN_FLIGHT {
        return Err(Problem(format!(
            "must be at least {MIN_INBOUND_BYTES_IN_FLIGHT} bytes (1 MiB)"
        )));
    }
    Ok(())
}

pub(super) fn ban_duration(duration: &Duration) -> Result<(), Problem> {
    if duration.is_zero() {
        return Err(Problem("must be greater than 0".to_string()));
    }
    if *duration > super::MAX_BAN_DURATION {
        return Err(Problem(format!(
            "must be at most {}",
            crate::clock::format_duration(super::MAX_BAN_DURATION)
        )));
    }
    Ok(())
}

pub(super) fn name_length(name: &str) -> Result<(), Problem> {
    if name.chars().count() > MAX_NAME_LEN {
        return Err(Problem(format!("at most {MAX_NAME_LEN} characters")));
    }
    Ok(())
}

pub(super) fn host_ports(addresses: &[String]) -> Result<(), Problem> {
    addresses
        .iter()
        .try_for_each(|a| validate_host_port(a).map_err(|e| Problem(e.to_string())))
}

/// Host names (`admin_allowed_hosts`): DNS names without port or scheme.
pub(super) fn host_names(names: &[String]) -> Result<(), Problem> {
    for name in names {
        let labels_ok = name.len() <= 253
            && name.trim_end_matches('.').split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok {
            return Err(Problem(format!(
                "'{name}' is not a host name (letters, digits, '-' and '.', no port; IP addresses are always accepted)"
            )));
        }
    }
    Ok(())
}

/// Plain-HTTP URLs (the "what is my IP" lookups; the node's HTTP client has no TLS).
pub(super) fn http_urls(urls: &[String]) -> Result<(), Problem> {
    for url in urls {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(Problem(format!(
                "'{url}' is not an http:// URL (https lookups are not supported)"
            )));
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(Problem(format!("'{url}' names no host")));
        }
    }
    Ok(())
}

pub(super) fn otlp_endpoint(url: &Option<String>) -> Result<(), Problem> {
    let Some(url) = url else { return Ok(()) };
    if url.starts_with("https://") {
        return Err(Problem(format!(
            "'{url}': TLS to the collector is not supported; use http:// (a collector on this host or \
             a private network)"
        )));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(Problem(format!(
            "'{url}' is not an http:// URL (OTLP over gRPC, e.g. http://127.0.0.1:4317)"
        )));
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(Problem(format!(
            "'{url}' must be http://host:port with no path (OTLP over gRPC)"
        )));
    }
    if tonic::transport::Endpoint::from_shared(url.clone()).is_err() {
        return Err(Problem(format!("'{url}' is not a valid URL")));
    }
    Ok(())
}

pub(super) fn service_name(name: &str) -> Result<(), Problem> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME_LEN
        || name.chars().any(char::is_control)
    {
        return Err(Problem(format!(
            "must be 1 to {MAX_NAME_LEN} characters without control characters"
        )));
    }
    Ok(())
}

pub(super) fn host_port(address: &Option<String>) -> Result<(), Problem> {
    match address {
        Some(a) => validate_host_port(a).map_err(|e| Problem(e.to_string())),
        None => Ok(()),
    }
}

pub(super) fn database_scheme(url: &Option<String>) -> Result<(), Problem> {
    match url {
        Some(url)
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:")) =>
        {
            Err(Problem(
                "must start with postgres:// (or sqlite: for an explicit SQLite file)".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// Says what is wrong without ever repeating the key.
pub(super) fn jwt_key(key: &Option<Secret>) -> Result<(), Problem> {
    match key {
        Some(key) if key.expose().len() < MIN_JWT_KEY_BYTES => Err(Problem(format!(
            "must be at least {MIN_JWT_KEY_BYTES} bytes (HS256 needs a 256-bit key); the value is not shown"
        ))),
        _ => Ok(()),
    }
}

/// The log formats `log_format` accepts.
pub const LOG_FORMATS: [&str; 2] = ["text", "json"];

/// A tracing `EnvFilter` (what `log_level` and `RUST_LOG` hold). A bare log format name is
/// refused: as a filter it would name a target and silence everything else.
pub(super) fn log_filter(filter: &str) -> Result<(), Problem> {
    if filter.trim().is_empty() {
        return Err(Problem(
            "must not be empty (use \"off\" to turn logging off)".into(),
        ));
    }
    if let Some(format) = filter
        .split(',')
        .map(str::trim)
        .find(|d| LOG_FORMATS.contains(&d.to_ascii_lowercase().as_str()))
    {
        return Err(Problem(format!(
            "'{format}' is a log format, not a filter: set log_format = \"{}\" (SORCHA_PEER_LOG_FORMAT, \
             --log-format) and give log_level a level such as \"info\"",
            format.to_ascii_lowercase()
        )));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(drop)
        .map_err(|e| {
            Problem(format!(
                "'{filter}' is not a log filter ({e}); use a level (error, warn, info, debug, trace, off) \
                 or directives such as \"info,sorcha_peer::replication=debug\""
            ))
        })
}

pub(super) fn log_format(format: &str) -> Result<(), Problem> {
    if LOG_FORMATS.contains(&format) {
        Ok(())
    } else {
        Err(Problem(format!(
            "'{format}' is not a log format (one of: {})",
            LOG_FORMATS.join(", ")
        )))
    }
}

/// Rules between keys; the error names the key to change.
pub(super) fn across(c: &Config) -> Result<(), (&'static str, Problem)> {
    if c.jwt_key.is_some() && c.jwt_key_file.is_some() {
        return Err((
            "jwt_key_file",
            Problem("set either jwt_key or jwt_key_file, not both".into()),
        ));
    }
    both_or_neither(
        ("admin_tls_cert_file", c.admin_tls_cert_file.is_some()),
        ("admin_tls_key_file", c.admin_tls_key_file.is_some()),
    )?;
    both_or_neither(
        ("platform_tls_cert_file", c.platform_tls_cert_file.is_some()),
        ("platform_tls_key_file", c.platform_tls_key_file.is_some()),
    )?;
    platform_keys(c)?;
    peer_tls_keys(c)?;
    jwt_claim_keys(c)?;
    limit_keys(c)
}

/// A certificate and its key file: both set, or neither.
fn both_or_neither(
    (cert_key, cert_set): (&'static str, bool),
    (key_key, key_set): (&'static str, bool),
) -> Result<(), (&'static str, Problem)> {
    match (cert_set, key_set) {
        (true, false) => Err((
            cert_key,
            Problem(format!("is set but {key_key} is not: set both or neither")),
        )),
        (false, true) => Err((
            key_key,
            Problem(format!("is set but {cert_key} is not: set both or neither")),
        )),
        _ => Ok(()),
    }
}

/// The platform listener's keys that need another one set.
fn platform_keys(c: &Config) -> Result<(), (&'static str, Problem)> {
    if c.platform_advertise_address.is_some() && c.platform_listen.is_none() {
        return Err((
            "platform_advertise_address",
            Problem("is set but platform_listen is not: nothing would serve there".into()),
        ));
    }
    if c.platform_require_jwt && c.jwt_key.is_none() && c.jwt_key_file.is_none() {
        return Err((
            "platform_require_jwt",
            Problem("needs the key JWTs are checked with: set jwt_key or jwt_key_file".into()),
        ));
    }
    Ok(())
}

/// The `tls_*` files: the CA and certificate required with `peer_tls = "ca"`, and none of them
/// set in another mode (where they would be ignored).
fn peer_tls_keys(c: &Config) -> Result<(), (&'static str, Problem)> {
    let ca_mode = c.peer_tls == super::PeerTls::Ca;
    for (key, value) in [
        ("tls_ca_file", &c.tls_ca_file),
        ("tls_cert_file", &c.tls_cert_file),
    ] {
        if ca_mode && value.is_none() {
            return Err((key, Problem("is required with peer_tls = \"ca\"".into())));
        }
    }
    for (key, value) in [
        ("tls_ca_file", &c.tls_ca_file),
        ("tls_cert_file", &c.tls_cert_file),
        ("tls_key_file", &c.tls_key_file),
        ("tls_crl_file", &c.tls_crl_file),
    ] {
        if !ca_mode && value.is_some() {
            return Err((
                key,
                Problem(format!(
                    "is set but peer_tls is \"{}\": it is used only with peer_tls = \"ca\"",
                    c.peer_tls
                )),
            ));
        }
    }
    Ok(())
}

/// JWT claims to check need a key to check the token with.
fn jwt_claim_keys(c: &Config) -> Result<(), (&'static str, Problem)> {
    let has_jwt_key = c.jwt_key.is_some() || c.jwt_key_file.is_some();
    if !c.jwt_audiences.is_empty() && !has_jwt_key {
        return Err((
            "jwt_audiences",
            Problem("is set but no JWT key is configured (jwt_key or jwt_key_file)".into()),
        ));
    }
    for (key, value) in [
        ("jwt_issuer", &c.jwt_issuer),
        ("jwt_audience", &c.jwt_audience),
    ] {
        if value.is_some() && !has_jwt_key {
            return Err((
                key,
                Problem("is set but no JWT key is configured (jwt_key or jwt_key_file)".into()),
            ));
        }
    }
    Ok(())
}

/// Limits that must leave room for one another.
fn limit_keys(c: &Config) -> Result<(), (&'static str, Problem)> {
    if c.max_anonymous_event_clients >= c.max_event_clients {
        return Err((
            "max_anonymous_event_clients",
            Problem(format!(
                "must be less than max_event_clients ({}): clients with a token need places of their own",
                c.max_event_clients
            )),
        ));
    }
    if c.reconnect_backoff_min > c.reconnect_backoff_max {
        return Err((
            "reconnect_backoff_max",
            Problem("must not be shorter than reconnect_backoff_min".into()),
        ));
    }
    // Connected peers always keep their records, so the table must have room beyond them.
    let connected = c.max_inbound.saturating_add(c.max_outbound);
    if c.max_known_peers <= connected {
        return Err((
            "max_known_peers",
            Problem(format!(
                "must be greater than max_inbound + max_outbound ({connected})"
            )),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Layers, Source};
    use super::*;

    #[test]
    fn allowed_hosts_are_names_without_a_port() {
        let names =
            |list: &[&str]| host_names(&list.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        assert!(names(&["peer1.example.net", "peer-service", "node.", "10.0.0.5"]).is_ok());
        for bad in [
            "peer1:5080",
            "http://peer1",
            "*.example.net",
            "",
            "a..b",
            "[::1]",
        ] {
            assert!(names(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn streams_with_a_token_keep_places_of_their_own() {
        let mut c = Config::defaults().expect("defaults");
        c.max_event_clients = 8;
        c.max_anonymous_event_clients = 8;
        let (key, _) = across(&c).expect_err("no place left for tokens");
        assert_eq!(key, "max_anonymous_event_clients");
        c.max_anonymous_event_clients = 7;
        assert!(across(&c).is_ok());
    }

    fn refusal(toml: &str) -> String {
        let mut layers = Layers::default();
        layers.add_toml(toml, Source::Default).expect("parse");
        layers.resolve().expect_err(toml).to_string()
    }

    #[test]
    fn the_platform_listener_settings_are_checked_together() {
        let err = refusal("platform_tls_cert_file = \"/c.pem\"");
        assert!(err.contains("`platform_tls_cert_file`"), "{err}");
        let err = refusal("platform_tls_key_file = \"/k.pem\"");
        assert!(err.contains("`platform_tls_key_file`"), "{err}");
        let err = refusal("platform_require_jwt = true");
        assert!(
            err.contains("`platform_require_jwt`") && err.contains("jwt_key"),
            "{err}"
        );
        let err = refusal("platform_listen = \"not an address\"");
        assert!(err.contains("`platform_listen`"), "{err}");
        let err = refusal("platform_advertise_address = \"peer-a.example:5001\"");
        assert!(
            err.contains("`platform_advertise_address`") && err.contains("platform_listen"),
            "{err}"
        );
        let err = refusal("platform_listen = \"0.0.0.0:5001\"\nplatform_advertise_address = \"x\"");
        assert!(err.contains("`platform_advertise_address`"), "{err}");
        let mut layers = Layers::default();
        let ok = "platform_listen = \"127.0.0.1:5001\"\nplatform_require_jwt = true\n\
                  jwt_key = \"0123456789abcdef0123456789abcdef\"";
        layers.add_toml(ok, Source::Default).expect("parse");
        let c = layers.resolve().expect("valid");
        assert_eq!(
            c.platform_listen,
            Some("127.0.0.1:5001".parse().expect("addr"))
        );
        assert!(c.platform_require_jwt);
        let defaults = crate::config::Config::defaults().expect("defaults");
        assert_eq!(defaults.platform_listen, None, "off unless set");
        assert_eq!(defaults.platform_allowed_cidrs.len(), 6);
    }
}
