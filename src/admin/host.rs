//! The `Host` check (DNS rebinding): before any answer, the name a request was sent to must be
//! one this API is reached by. A web page the operator opens can make its own name resolve to
//! the node's address, but the browser still sends that name as `Host`, so naming the
//! accepted hosts keeps such a page from reading even the routes open without a token.
//!
//! Accepted: IP literals (v4, v6 in brackets, with or without a port), `localhost`, and the
//! names in `admin_allowed_hosts` (case-insensitive, a trailing dot ignored). Subdomains of
//! `localhost` are not accepted by default: not every resolver keeps them on loopback, so
//! they are listed like any other name when wanted. Anything else: 421 with the key to set.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AdminState, ApiError};

/// Longest `Host` value quoted back in a refusal.
const MAX_QUOTED_HOST: usize = 100;

/// Whether `host` (a `Host` header value: a name or IP, maybe with a port) is one the admin API
/// answers to, given the configured `allowed` names.
pub(super) fn allowed(host: &str, allowed: &[String]) -> bool {
    let Some(name) = without_port(host.trim()) else {
        return false;
    };
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return false;
    }
    name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| {
            let a = a.strip_suffix('.').unwrap_or(a);
            a.eq_ignore_ascii_case(name)
        })
}

/// The host part of `host[:port]` or `[v6][:port]`; `None` when the brackets or port are
/// malformed.
fn without_port(host: &str) -> Option<&str> {
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        return (after.is_empty() || port(after.strip_prefix(':')?)).then_some(inside);
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has colons and no brackets; it names no port.
        Some(_) if host.parse::<Ipv6Addr>().is_ok() => Some(host),
        Some((name, p)) => port(p).then_some(name),
        None => Some(host),
    }
}

fn port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// The middleware: every request, before routing and auth.
pub(super) async fn check(
    State(state): State<Arc<AdminState>>,
    request: Request,
    next: Next,
) -> Response {
    // HTTP/1.1 requires `Host`; an absolute-form target carries it in the URI instead.
    let host = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok().map(str::to_string),
        None => request.uri().authority().map(|a| a.as_str().to_string()),
    };
    let Some(host) = host else {
        return ApiError::bad_request("the request has no Host header").into_response();
    };
    if allowed(&host, &state.config.admin_allowed_hosts) {
        return next.run(request).await;
    }
    let quoted: String = host.chars().take(MAX_QUOTED_HOST).collect();
    ApiError(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this node does not answer to the host name {quoted:?}: IP addresses and localhost are accepted; \
             add the name to admin_allowed_hosts to reach the admin API by it"
        ),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_and_localhost_are_accepted_with_or_without_a_port() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:5080",
            "10.1.2.3:8080",
            "[::1]",
            "[::1]:5080",
            "[fe80::1]:80",
            "::1",
            "localhost",
            "LOCALHOST:5080",
            "localhost.:5080",
            "0.0.0.0:5080",
        ] {
            assert!(allowed(host, &[]), "{host}");
        }
    }

    #[test]
    fn other_names_need_admin_allowed_hosts() {
        let names = vec!["peer1.example.net".to_string(), "peer-service".to_string()];
        for host in [
            "evil.example",
            "evil.example:5080",
            "app.localhost",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
            ":5080",
            "[::1",
            "[evil]:80",
            "localhost:http",
            "peer1.example.net:99999999",
        ] {
            assert!(!allowed(host, &names), "{host}");
        }
        for host in [
            "peer1.example.net",
            "PEER1.Example.NET:5080",
            "peer1.example.net.",
            "peer-service:8080",
        ] {
            assert!(allowed(host, &names), "{host}");
        }
        assert!(!allowed("peer1.example.net", &[]));
    }
}
