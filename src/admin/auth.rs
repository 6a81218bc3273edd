//! Who is asking, and may they: the one place the admin API looks at credentials.
//!
//! A request becomes a [`Principal`]: the node's admin token, a JWT verified with the
//! configured HS256 key (as the platform issues them), or nobody (from a network in
//! `admin_open_cidrs` or not). Every route is guarded by one [`Policy`], applied by
//! [`guard`] around the routes of that policy; handlers never see a token.
//!
//! A credential that is presented is always checked, even where none is needed, so a wrong
//! or expired token shows up on the first request rather than on the first ban.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use subtle::ConstantTimeEq;

use super::{AdminState, ApiError};
use crate::config::{Config, MIN_JWT_KEY_BYTES};
use crate::telemetry::Metrics;

/// Clock difference tolerated on a JWT's `exp` and `nbf`.
pub const JWT_LEEWAY: Duration = Duration::from_secs(30);
/// Longest `Authorization` header looked at; a longer one is refused unread (and counted as
/// the `admin_authorization_bytes` limit).
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Open to everyone from anywhere: probes, metrics, health, peer counts.
    Monitoring,
    /// Open from `admin_open_cidrs`; elsewhere any valid token.
    Read,
    /// Any valid token (the admin token or a JWT): subscriptions, registers, transactions.
    Authenticated,
    /// `CanManagePeers`: the admin token, or a JWT with a non-empty `org_id` string or
    /// `token_type = "service"`. Bans, unbans, resets.
    ManagePeers,
}

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credentials. `open_network`: the client's address is in `admin_open_cidrs`.
    Anonymous { open_network: bool },
    /// The node's own admin token.
    AdminToken,
    /// A JWT signed with the configured key, within its validity.
    Jwt {
        subject: Option<String>,
        /// `CanManagePeers`: an `org_id` claim or `token_type = "service"`, and not a reader
        /// tier.
        manages_peers: bool,
        /// The audience is a consumer or enrol-session tier: reads only.
        reads_only: bool,
    },
}

/// Why a request was refused: 401 for credentials that are missing or not valid, 403 for a
/// valid one that the route's policy does not allow.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this request needs a token: Authorization: Bearer <admin token or JWT> (the admin token is in <data-dir>/admin.token)"
    )]
    Missing,
    #[error("the Authorization header must be `Bearer <token>`")]
    NotBearer,
    #[error("the Authorization header is longer than {MAX_AUTHORIZATION_BYTES} bytes")]
    TooLong,
    #[error("invalid admin token")]
    WrongAdminToken,
    #[error("JWTs are not accepted: this node has no JWT key configured (jwt_key or jwt_key_file)")]
    NoJwtKey,
    #[error("invalid JWT: {0}")]
    Jwt(&'static str),
    #[error("invalid JWT: token has no `{0}` claim")]
    MissingClaim(String),
    #[error(
        "invalid JWT: token lifetime (exp - iat) of {lifetime} is longer than jwt_max_lifetime ({max})"
    )]
    TooLongLived { lifetime: String, max: String },
    #[error("token lacks CanManagePeers: needs an org_id claim or token_type=service")]
    LacksManagePeers,
    #[error("a consumer or enrol-session token only reads: it cannot change anything")]
    ReaderTier,
}

impl AuthError {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::LacksManagePeers | AuthError::ReaderTier => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        ApiError(e.status(), e.to_string())
    }
}

/// A problem with the authentication settings, found at start.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot read jwt_key_file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "jwt_key_file {path} holds {len} bytes; the key must be at least {MIN_JWT_KEY_BYTES} bytes (HS256 needs a 256-bit key)"
    )]
    KeyTooShort { path: PathBuf, len: usize },
}

/// Turns requests into principals. Built once per node from its configuration.
pub struct Authenticator {
    admin_token: String,
    jwt: Option<JwtVerifier>,
    open_networks: Vec<IpNet>,
}

/// Checks JWTs against the configured key, issuer and audience.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    /// `jwt_max_lifetime`.
    max_lifetime: Duration,
}

impl JwtVerifier {
    /// The verifier the configuration asks for (`None` without a JWT key). Reads
    /// `jwt_key_file`, so a node can check it before it writes anything.
    pub fn from_config(config: &Config) -> Result<Option<JwtVerifier>, AuthSetupError> {
        let key = match (&config.jwt_key, &config.jwt_key_file) {
            (Some(key), _) => key.expose().as_bytes().to_vec(),
            (None, Some(path)) => read_key_file(path)?,
            (None, None) => return Ok(None),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = JWT_LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &config.jwt_issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        let audiences: Vec<&String> = config
            .jwt_audience
            .iter()
            .chain(config.jwt_audiences.iter())
            .collect();
        if audiences.is_empty() {
            // No audience configured: the node does not judge one.
            validation.validate_aud = false;
        } else {
            validation.set_audience(&audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(Some(JwtVerifier {
            key: DecodingKey::from_secret(&key),
            validation,
            max_lifetime: config.jwt_max_lifetime,
        }))
    }

    /// `jwt_max_lifetime`: `iat` is required, not in the future (beyond the leeway), and
    /// `exp - iat` is at most the maximum. With `iat` not in the future this also bounds `exp`
    /// to now plus the maximum. `now` is in unix seconds; `exp` was checked by the decoder.
    fn check_lifetime(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        now: i64,
    ) -> Result<(), AuthError> {
        let iat = match claims.get("iat") {
            None | Some(serde_json::Value::Null) => {
                return Err(AuthError::MissingClaim("iat".into()));
            }
            Some(value) => value
                .as_f64()
                .ok_or(AuthError::Jwt("`iat` is not a number of seconds"))?,
        };
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_f64())
            .ok_or(AuthError::Jwt("`exp` is not a number of seconds"))?;
        if iat > (now as f64) + JWT_LEEWAY.as_secs_f64() {
            return Err(AuthError::Jwt("token issued in the future (its iat)"));
        }
        let lifetime = exp - iat;
        if lifetime > self.max_lifetime.as_secs_f64() {
            return Err(AuthError::TooLongLived {
                lifetime: humantime::format_duration(Duration::from_secs(lifetime as u64))
                    .to_string(),
                max: humantime::format_duration(self.max_lifetime).to_string(),
            });
        }
        Ok(())
    }
}

impl Authenticator {
    pub fn new(config: &Config, admin_token: String, jwt: Option<JwtVerifier>) -> Authenticator {
        Authenticator {
            admin_token,
            jwt,
            open_networks: config.admin_open_cidrs.clone(),
        }
    }

    /// Who sent a request with these headers from `remote`.
    pub fn principal(&self, headers: &HeaderMap, remote: IpAddr) -> Result<Principal, AuthError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            let remote = remote.to_canonical();
            let open_network = self.open_networks.iter().any(|net| net.contains(&remote));
            return Ok(Principal::Anonymous { open_network });
        };
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(AuthError::TooLong);
        }
        let token = value
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or(AuthError::NotBearer)?;
        if bool::from(token.as_bytes().ct_eq(self.admin_token.as_bytes())) {
            return Ok(Principal::AdminToken);
        }
        if token.split('.').count() != 3 {
            return Err(AuthError::WrongAdminToken);
        }
        let jwt = self.jwt.as_ref().ok_or(AuthError::NoJwtKey)?;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &jwt.key,
            &jwt.validation,
        )
        .map_err(|e| rejection(e.into_kind()))?;
        let claims = data.claims;
        jwt.check_lifetime(&claims, crate::clock::now_ms() / 1000)?;
        // As the platform's policy reads it: a non-empty string, nothing else.
        let org_id = claims
            .get("org_id")
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.trim().is_empty());
        let service = claims
            .get("token_type")
            .and_then(|v| v.as_str())
            .is_some_and(|t| t == "service");
        let reader = reader_tier(claims.get("aud"));
        Ok(Principal::Jwt {
            subject: claims.get("sub").and_then(|v| v.as_str()).map(String::from),
            manages_peers: !reader && (org_id || service),
            reads_only: reader,
        })
    }
}

/// Whether a token's audience is one of the platform's tiers that never change anything:
/// `{installation}:consumer` and `{installation}:enrol-session`.
fn reader_tier(aud: Option<&serde_json::Value>) -> bool {
    let is_reader = |a: &str| a.ends_with(":consumer") || a.ends_with(":enrol-session");
    match aud {
        Some(serde_json::Value::String(a)) => is_reader(a),
        Some(serde_json::Value::Array(list)) => {
            list.iter().filter_map(|a| a.as_str()).any(is_reader)
        }
        _ => false,
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235) and may be followed by any run of spaces; the token must not be empty.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once([' ', '\t'])?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The JWT key file's text, without the trailing newline editors add.
fn read_key_file(path: &Path) -> Result<Vec<u8>, AuthSetupError> {
    let mut key = std::fs::read(path).map_err(|source| AuthSetupError::KeyFile {
        path: path.to_path_buf(),
        source,
    })?;
    while key.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
        key.pop();
    }
    if key.len() < MIN_JWT_KEY_BYTES {
        return Err(AuthSetupError::KeyTooShort {
            path: path.to_path_buf(),
            len: key.len(),
        });
    }
    Ok(key)
}

/// Why a JWT was not accepted, in words that never include the key.
fn rejection(kind: ErrorKind) -> AuthError {
    AuthError::Jwt(match kind {
        ErrorKind::InvalidSignature => "signature does not match the configured key",
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid (its nbf is in the future)",
        ErrorKind::InvalidIssuer => "token issuer (iss) is not the configured jwt_issuer",
        ErrorKind::InvalidAudience => {
            "token audience (aud) does not match the configured jwt_audience"
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "token is not signed with HS256"
        }
        ErrorKind::MissingRequiredClaim(claim) => return AuthError::MissingClaim(claim),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "token is not a well-formed JWT",
        _ => "token could not be verified",
    })
}

impl Policy {
    /// Whether `who` may make a request guarded by this policy.
    pub fn check(self, who: &Principal) -> Result<(), AuthError> {
        match (self, who) {
            (Policy::Monitoring, _) => Ok(()),
            (Policy::Read, Principal::Anonymous { open_network: true }) => Ok(()),
            (_, Principal::Anonymous { .. }) => Err(AuthError::Missing),
            (Policy::Authenticated | Policy::ManagePeers, Principal::Jwt { reads_only, .. })
                if *reads_only =>
            {
                Err(AuthError::ReaderTier)
            }
            (Policy::ManagePeers, Principal::Jwt { manages_peers, .. }) if !manages_peers => {
                Err(AuthError::LacksManagePeers)
            }
            _ => Ok(()),
        }
    }
}

/// What the guard middleware of one policy holds.
#[derive(Clone)]
struct Guard {
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    policy: Policy,
}

/// Puts every route of `routes` behind `policy`. The principal is added to the request's
/// extensions for handlers that want to say who acted.
pub(crate) fn guard(
    routes: Router<Arc<AdminState>>,
    state: &Arc<AdminState>,
    policy: Policy,
) -> Router<Arc<AdminState>> {
    let guard = Guard {
        auth: state.auth.clone(),
        metrics: state.metrics.clone(),
        policy,
    };
    routes.route_layer(middleware::from_fn_with_state(guard, require))
}

async fn require(
    State(guard): State<Guard>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    super::trace::name_route(&request);
    let checked = guard
        .auth
        .principal(request.headers(), remote.ip())
        .and_then(|who| guard.policy.check(&who).map(|()| who));
    match checked {
        Ok(who) => {
            request.extensions_mut().insert(who);
            next.run(request).await
        }
        Err(e) => {
            if e == AuthError::TooLong {
                guard.metrics.limit_hit("admin_authorization_bytes");
            }
            ApiError::from(e).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(open_network: bool) -> Principal {
        Principal::Anonymous { open_network }
    }

    fn jwt(manages_peers: bool) -> Principal {
        Principal::Jwt {
            subject: None,
            manages_peers,
            reads_only: false,
        }
    }

    #[test]
    fn consumer_and_enrol_session_tiers_only_read() {
        use serde_json::json;
        for aud in [
            json!("inst:consumer"),
            json!("inst:enrol-session"),
            json!(["x", "inst:consumer"]),
        ] {
            assert!(reader_tier(Some(&aud)), "{aud}");
        }
        for aud in [
            json!("inst:platform"),
            json!("inst:service"),
            json!(["inst:service"]),
        ] {
            assert!(!reader_tier(Some(&aud)), "{aud}");
        }
        assert!(!reader_tier(None));
        let reader = Principal::Jwt {
            subject: None,
            manages_peers: false,
            reads_only: true,
        };
        assert_eq!(Policy::Read.check(&reader), Ok(()));
        for policy in [Policy::Authenticated, Policy::ManagePeers] {
            assert_eq!(policy.check(&reader), Err(AuthError::ReaderTier));
        }
        assert_eq!(AuthError::ReaderTier.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn policies_allow_what_the_original_did() {
        use Policy::*;
        for policy in [Monitoring, Read, Authenticated, ManagePeers] {
            assert_eq!(policy.check(&Principal::AdminToken), Ok(()), "{policy:?}");
        }
        assert_eq!(Monitoring.check(&who(false)), Ok(()));
        assert_eq!(Read.check(&who(true)), Ok(()));
        assert_eq!(Read.check(&who(false)), Err(AuthError::Missing));
        assert_eq!(Authenticated.check(&who(true)), Err(AuthError::Missing));
        assert_eq!(ManagePeers.check(&who(true)), Err(AuthError::Missing));
        assert_eq!(Read.check(&jwt(false)), Ok(()));
        assert_eq!(Authenticated.check(&jwt(false)), Ok(()));
        assert_eq!(
            ManagePeers.check(&jwt(false)),
            Err(AuthError::LacksManagePeers)
        );
        assert_eq!(ManagePeers.check(&jwt(true)), Ok(()));
        assert_eq!(AuthError::LacksManagePeers.status(), StatusCode::FORBIDDEN);
        assert_eq!(AuthError::Missing.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_not_empty() {
        for value in ["Bearer t.k", "bearer t.k", "BEARER  t.k ", "bEaReR\tt.k"] {
            assert_eq!(bearer_token(value), Some("t.k"), "{value:?}");
        }
        for value in ["Basic dXNlcg==", "Bearer", "Bearer   ", "Bearert.k", "t.k"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn a_jwt_lives_at_most_the_maximum_from_an_iat_not_in_the_future() {
        let mut config = Config::defaults().expect("defaults");
        config.jwt_key = Some(crate::config::Secret::new("k".repeat(MIN_JWT_KEY_BYTES)));
        config.jwt_max_lifetime = Duration::from_secs(3600);
        let verifier = JwtVerifier::from_config(&config)
            .expect("settings")
            .expect("a key");
        let now = 1_000_000;
        let claims = |value: serde_json::Value| value.as_object().expect("object").clone();
        let check = |value| verifier.check_lifetime(&claims(value), now);
        assert_eq!(
            check(serde_json::json!({"iat": now, "exp": now + 3600})),
            Ok(())
        );
        assert_eq!(
            check(serde_json::json!({"iat": now - 60, "exp": now + 60})),
            Ok(())
        );
        assert_eq!(
            check(serde_json::json!({"exp": now + 60})),
            Err(AuthError::MissingClaim("iat".into()))
        );
        assert!(matches!(
            check(serde_json::json!({"iat": now, "exp": now + 3601})),
            Err(AuthError::TooLongLived { .. })
        ));
        // The year 9999.
        assert!(matches!(
            check(serde_json::json!({"iat": now, "exp": 253_402_300_799i64})),
            Err(AuthError::TooLongLived { .. })
        ));
        // A short lifetime that starts far ahead would still be valid for years.
        assert_eq!(
            check(serde_json::json!({"iat": 253_402_300_000i64, "exp": 253_402_300_799i64})),
            Err(AuthError::Jwt("token issued in the future (its iat)"))
        );
        assert!(check(serde_json::json!({"iat": "yesterday", "exp": now})).is_err());
    }
}
