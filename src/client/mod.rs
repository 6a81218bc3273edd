//! Typed client for the admin API, used by the CLI and by the tests. It knows URLs, JSON
//! bodies and what each HTTP status means; it knows nothing about tables.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::*;

/// How long the CLI waits for the node before calling it unreachable.
mod events;
pub use events::{EventStream, EventsWanted, SseParser};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An event stream runs until it is dropped; this only replaces the per-request timeout.
const STREAM_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// What can go wrong talking to a node; each maps to one CLI exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the node at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The node could not reach the other node it was asked about (`lag --against`).
    #[error("{0}")]
    RemoteUnreachable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the node answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("unexpected answer from the node: {0}")]
    Decode(String),
    /// The client cannot be set up as asked (an unusable `--cacert` file).
    #[error("{0}")]
    Setup(String),
    /// A batch submission failed part-way; the transactions in `stored` were stored before
    /// the failure (the rest of the batch was not).
    #[error("{message}")]
    PartlyStored {
        stored: Vec<String>,
        message: String,
    },
}

/// Admin API client for one node.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    /// The CAs trusted for https (from `--cacert`); no others are.
    roots: Vec<reqwest::Certificate>,
    http: reqwest::Client,
}

impl AdminClient {
    /// `base` is like `http://127.0.0.1:5080`; `token` (the admin token or a JWT) is sent as a
    /// bearer token when given.
    pub fn new(base: &str, token: Option<String>) -> Result<AdminClient, ClientError> {
        AdminClient::connect(base, token, None)
    }

    /// [`AdminClient::new`], trusting for `https://` the CA certificates (PEM) in `cacert`.
    /// Only those are trusted: no certificates are built in, so an `https://` node needs one.
    pub fn connect(
        base: &str,
        token: Option<String>,
        cacert: Option<&Path>,
    ) -> Result<AdminClient, ClientError> {
        let roots = match cacert {
            Some(path) => read_ca_bundle(path)?,
            None => Vec::new(),
        };
        let base = base.trim_end_matches('/').to_string();
        let http = http_client(&base, &roots, REQUEST_TIMEOUT, CONNECT_TIMEOUT)?;
        Ok(AdminClient {
            base,
            token,
            roots,
            http,
        })
    }

    /// The same client with `limit` for connecting and for each whole request (completion
    /// must not keep a shell waiting). It trusts the same CAs.
    pub fn with_timeout(self, limit: Duration) -> Result<AdminClient, ClientError> {
        let http = http_client(&self.base, &self.roots, limit, limit)?;
        Ok(AdminClient { http, ..self })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        self.finish(request).await
    }

    /// Sends a prepared request and decodes the answer (or the error body).
    async fn finish<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            message: describe(&e),
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: describe(&e),
            })?;
        Self::answer(status, &bytes)
    }

    /// Decodes an answer: the value on success, else the error its status and body say.
    fn answer<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ClientError> {
        if status.is_success() {
            let value =
                serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
            return Ok(value);
        }
        if let Ok(partial) = serde_json::from_slice::<BatchFailureBody>(bytes) {
            return Err(ClientError::PartlyStored {
                stored: partial.transaction_ids,
                message: partial.error,
            });
        }
        let message = serde_json::from_slice::<ErrorBody>(bytes)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(bytes).trim().to_string());
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Unauthorized(message),
            StatusCode::NOT_FOUND => ClientError::NotFound(message),
            StatusCode::CONFLICT => ClientError::Conflict(message),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                ClientError::BadRequest(message)
            }
            StatusCode::BAD_GATEWAY => ClientError::RemoteUnreachable(message),
            other => ClientError::Server {
                status: other.as_u16(),
                message,
            },
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn health(&self) -> Result<HealthDto, ClientError> {
        self.get("/api/health").await
    }

    pub async fn status(&self) -> Result<StatusDto, ClientError> {
        self.get("/api/status").await
    }

    /// The node's own checks, each judged with its fix (`sorcha-peer doctor`).
    pub async fn doctor(&self) -> Result<DoctorDto, ClientError> {
        self.get("/api/doctor").await
    }

    /// `state`: connected, connecting, disconnected, banned or all; `sort`: see the API.
    pub async fn peers(
        &self,
        state: Option<&str>,
        limit: Option<usize>,
        sort: Option<&str>,
    ) -> Result<Vec<PeerDto>, ClientError> {
        let mut query = Vec::new();
        if let Some(s) = state {
            query.push(format!("state={}", encode(s)));
        }
        if let Some(l) = limit {
            query.push(format!("limit={l}"));
        }
        if let Some(s) = sort {
            query.push(format!("sort={}", encode(s)));
        }
        let suffix = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        self.get(&format!("/api/peers{suffix}")).await
    }

    pub async fn peer(&self, id: &str) -> Result<PeerDto, ClientError> {
        self.get(&format!("/api/peers/{}", segment(id)?)).await
    }

    pub async fn peers_quality(&self) -> Result<Vec<PeerQualityDto>, ClientError> {
        self.get("/api/peers/quality").await
    }

    pub async fn peers_stats(&self) -> Result<PeerStatsDto, ClientError> {
        self.get("/api/peers/stats").await
    }

    pub async fn peers_health(&self) -> Result<PeersHealthDto, ClientError> {
        self.get("/api/peers/health").await
    }

    pub async fn bans(&self) -> Result<Vec<BanDto>, ClientError> {
        self.get("/api/bans").await
    }

    /// Bans a peer ID (or unique prefix), an IP address or a CIDR subnet.
    pub async fn ban(
        &self,
        target: &str,
        reason: Option<&str>,
        duration: Option<&str>,
    ) -> Result<BanResponse, ClientError> {
        self.ban_with(target, reason, duration, false).await
    }

    /// [`AdminClient::ban`], with `force` to ban even the only source of a subscription.
    pub async fn ban_with(
        &self,
        target: &str,
        reason: Option<&str>,
        duration: Option<&str>,
        force: bool,
    ) -> Result<BanResponse, ClientError> {
        let body = BanRequest {
            target: Some(target.to_string()),
            reason: reason.map(String::from),
            duration: duration.map(String::from),
            duration_minutes: None,
            force,
        };
        self.call(Method::POST, "/api/bans", Some(&body)).await
    }

    pub async fn unban(&self, target: &str) -> Result<UnbanResponse, ClientError> {
        self.call(
            Method::DELETE,
            &format!("/api/bans/{}", segment(target)?),
            None::<&()>,
        )
        .await
    }

    pub async fn reset(&self, id: &str) -> Result<ResetResponse, ClientError> {
        self.call(
            Method::POST,
            &format!("/api/peers/{}/reset", segment(id)?),
            None::<&()>,
        )
        .await
    }

    /// Asks the node to dial `address` (host:port of a node's peer protocol) once, now.
    pub async fn connect_peer(&self, address: &str) -> Result<ConnectResponse, ClientError> {
        let body = ConnectRequest {
            address: Some(address.to_string()),
        };
        self.call(Method::POST, "/api/peers", Some(&body)).await
    }

    /// Closes the session with a peer (ID, unique prefix or name) without banning it.
    pub async fn disconnect_peer(&self, peer: &str) -> Result<DisconnectResponse, ClientError> {
        let path = format!("/api/peers/{}/disconnect", segment(peer)?);
        self.call(Method::POST, &path, None::<&()>).await
    }

    pub async fn registers(&self) -> Result<Vec<RegisterDto>, ClientError> {
        self.get("/api/registers").await
    }

    pub async fn available_registers(&self) -> Result<Vec<AvailableRegisterDto>, ClientError> {
        self.get("/api/registers/available").await
    }

    /// `GET /api/registers/cache`: replicated data held, per register.
    pub async fn get_cache(&self) -> Result<Vec<CacheDto>, ClientError> {
        self.get("/api/registers/cache").await
    }

    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionDto>, ClientError> {
        self.get("/api/registers/subscriptions").await
    }

    pub async fn create_register(
        &self,
        id: &str,
        is_public: bool,
    ) -> Result<RegisterDto, ClientError> {
        let body = CreateRegisterRequest {
            register_id: Some(id.to_string()),
            is_public,
        };
        self.call(Method::POST, "/api/registers", Some(&body)).await
    }

    /// `mode`: `full-replica` or `forward-only`.
    pub async fn subscribe(&self, id: &str, mode: &str) -> Result<SubscriptionDto, ClientError> {
        let body = SubscribeRequest {
            mode: Some(mode.to_string()),
        };
        let path = format!("/api/registers/{}/subscribe", segment(id)?);
        self.call(Method::POST, &path, Some(&body)).await
    }

    pub async fn unsubscribe(
        &self,
        id: &str,
        purge: bool,
    ) -> Result<UnsubscribeResponse, ClientError> {
        let path = format!("/api/registers/{}/subscribe?purge={purge}", segment(id)?);
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    pub async fn purge(&self, id: &str) -> Result<PurgeResponse, ClientError> {
        let path = format!("/api/registers/{}/cache", segment(id)?);
        self.call(Method::DELETE, &path, None::<&()>).await
    }

    /// Submits one transaction (any bytes).
    pub async fn submit(
        &self,
        register: &str,
        payload: Vec<u8>,
    ) -> Result<SubmitResponse, ClientError> {
        let url = format!(
            "{}/api/registers/{}/transactions",
            self.base,
            segment(register)?
        );
        let mut request = self.http.post(&url).body(payload);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        self.finish(request).await
    }

    /// Submits many UTF-8 payloads, one transaction each.
    pub async fn submit_batch(
        &self,
        register: &str,
        payloads: Vec<String>,
    ) -> Result<BatchSubmitResponse, ClientError> {
        self.submit_batch_of(register, &payloads).await
    }

    /// [`submit_batch`](Self::submit_batch) from borrowed payloads. The node refuses (413)
    /// batches over its `max_batch_transactions` / `max_batch_bytes`, storing nothing.
    pub async fn submit_batch_of(
        &self,
        register: &str,
        payloads: &[String],
    ) -> Result<BatchSubmitResponse, ClientError> {
        #[derive(Serialize)]
        struct Batch<'a> {
            payloads: &'a [String],
        }
        let path = format!("/api/registers/{}/transactions/batch", segment(register)?);
        self.call(Method::POST, &path, Some(&Batch { payloads }))
            .await
    }

    pub async fn transaction(
        &self,
        register: &str,
        tx_id: &str,
    ) -> Result<TransactionDto, ClientError> {
        self.get(&format!(
            "/api/registers/{}/transactions/{}",
            segment(register)?,
            segment(tx_id)?
        ))
        .await
    }

    /// Lag of this node against the node whose peer protocol listens at `against`.
    pub async fn lag(
        &self,
        against: &str,
        register: Option<&str>,
    ) -> Result<Vec<LagDto>, ClientError> {
        let mut path = format!("/api/lag?against={}", encode(against));
        if let Some(r) = register {
            path.push_str(&format!("&register={}", encode(r)));
        }
        self.get(&path).await
    }

    /// The Prometheus text at `/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let url = format!("{}/metrics", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: describe(&e),
            })?;
        response
            .text()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// One path segment (a peer ID, a ban target such as `10.0.0.0/8`, a register name),
/// percent-encoded. `.`, `..` and the empty string cannot travel as a segment: URL parsing
/// folds them away, even percent-encoded, so the request would reach another endpoint.
fn segment(text: &str) -> Result<String, ClientError> {
    if matches!(text, "" | "." | "..") {
        return Err(ClientError::BadRequest(format!(
            "'{text}' cannot be sent in a URL path; no peer, ban or register has that name"
        )));
    }
    Ok(encode(text))
}

/// Percent-encodes a path segment or query value (IDs, IPs, `10.0.0.0/8`).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTTP client trusting only `roots` for https.
fn http_client(
    base: &str,
    roots: &[reqwest::Certificate],
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    let builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .timeout(timeout)
        .connect_timeout(connect_timeout);
    roots
        .iter()
        .fold(builder, |builder, root| {
            builder.add_root_certificate(root.clone())
        })
        .build()
        .map_err(|e| ClientError::Unreachable {
            url: base.to_string(),
            message: describe(&e),
        })
}

/// The CA certificates in a PEM file (`--cacert`).
fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, ClientError> {
    let problem =
        |message: String| ClientError::Setup(format!("--cacert {}: {message}", path.display()));
    let pem = std::fs::read(path).map_err(|e| problem(format!("cannot read: {e}")))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| problem(format!("not a PEM certificate bundle: {}", root_cause(&e))))?;
    if certificates.is_empty() {
        return Err(problem(
            "no PEM certificate (BEGIN CERTIFICATE) in the file".into(),
        ));
    }
    Ok(certificates)
}

/// Why a request did not get an answer, in words that say what to do: a TLS certificate the
/// client does not trust is a certificate problem (fixed with `--cacert`), not a dead node.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    match tls_error(e) {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => format!(
            "certificate problem: {tls}; to trust the CA that issued the node's certificate, \
             pass --cacert FILE (or set SORCHA_PEER_CACERT)"
        ),
        Some(tls @ rustls::Error::InvalidMessage(_)) => format!(
            "TLS handshake failed: {tls} (does the node serve https? use http:// for a node without TLS)"
        ),
        Some(tls) => format!("TLS handshake failed: {tls}"),
        None => root_cause(e),
    }
}

/// The rustls error somewhere in the chain, if any. An `io::Error` hides the error it wraps
/// from `source()` (and hyper-rustls wraps one `io::Error` in another), so those are opened.
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// reqwest wraps the interesting part ("Connection refused") several levels deep.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(super::encode("10.0.0.0/8"), "10.0.0.0%2F8");
        assert_eq!(super::encode("::1"), "%3A%3A1");
        assert_eq!(super::encode("ab12"), "ab12");
        assert_eq!(super::segment("a.b").expect("plain"), "a.b");
        for unsendable in ["", ".", ".."] {
            assert!(super::segment(unsendable).is_err(), "{unsendable:?}");
        }
    }
}
