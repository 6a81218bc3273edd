//! The admin HTTP API (axum): routes with their auth policies (checked in `auth.rs`), and the translation between domain
//! values and the JSON bodies in [`crate::api`]. No rules here: peer rules are in `peers/`, the ones
//! spanning domains (ban guards, health, lag) in `service/`.

pub mod auth;
mod dashboard;
pub(crate) mod deadline;
mod doctor;
mod events;
mod host;
mod linger;
mod peers;
pub(crate) mod platform;
mod registers;
pub(crate) mod tls;
mod trace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::*;
use crate::clock::{now_ms, to_rfc3339};
use crate::config::Config;
use crate::peers::{PeerError, PeerManager};
use crate::replication::Registers;
use crate::service::bans::BanError;
use crate::service::health::{self, HealthStatus, ProbeKind};
use crate::service::lag::{HeightsProbe, LagError};
use crate::store::Store;
use crate::telemetry::Metrics;
use auth::{Authenticator, Policy};
pub use events::EventSlots;

/// Largest request body accepted by default (single transactions and batches have their own).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest plain-text error body (from axum's rejections) turned into a JSON message.
const MAX_ERROR_TEXT_BYTES: usize = 4096;

/// Everything the handlers need.
pub struct AdminState {
    pub manager: Arc<PeerManager>,
    pub registers: Arc<Registers>,
    /// Asks other nodes for their heights (lag).
    pub heights: Arc<dyn HeightsProbe>,
    /// Dials addresses operators ask for (`peers connect`).
    pub dialer: Arc<dyn crate::service::connect::Dialer>,
    /// Handed to `service::health`, which checks it; no handler reads or writes it.
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub events: Arc<crate::events::Events>,
    /// Registers the platform's Register service reports (`bulk-advertise`, `advertise`).
    pub advertisements: Arc<crate::service::advertisements::Advertisements>,
    pub config: Arc<Config>,
    /// Turns requests into principals; the routes' policies use it.
    pub auth: Arc<Authenticator>,
    /// Places on the event stream (`GET /api/events`), by kind of client.
    pub event_slots: Arc<EventSlots>,
    pub started: Instant,
    /// Unix ms at start (peers seen before it do not count towards readiness).
    pub started_ms: i64,
    /// Whether the node's listeners are serving (readiness).
    pub listeners: Arc<health::Listeners>,
    /// The peer transport: in CA mode, this node's certificate expiry and whether the
    /// revocation list was refused.
    pub transport: Arc<crate::transport::Transport>,
    /// The node's trace scope: each request's span is made under it (`trace.rs`).
    pub trace_scope: tracing::Span,
    /// Samples of the transaction count, for the rate `status` reports.
    pub tx_rate: Arc<crate::service::rates::TxRate>,
}

pub(crate) type Shared = State<Arc<AdminState>>;

/// An error answer: status plus `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, axum::Json(ErrorBody { error: self.1 })).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<PeerError> for ApiError {
    fn from(e: PeerError) -> ApiError {
        let status = match &e {
            PeerError::NotFound(_) | PeerError::NoBan(_) => StatusCode::NOT_FOUND,
            PeerError::Ambiguous { .. } | PeerError::Invalid(_) => StatusCode::BAD_REQUEST,
            PeerError::Conflict(_) | PeerError::SelfBan(_) => StatusCode::CONFLICT,
            PeerError::Store(store) => {
                tracing::error!("admin request failed on storage: {store}");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        ApiError(status, e.to_string())
    }
}

impl From<BanError> for ApiError {
    fn from(e: BanError) -> ApiError {
        match e {
            BanError::Peer(peer) => peer.into(),
            BanError::Duration(_) => ApiError::bad_request(e.to_string()),
            BanError::SoleSource { .. } => ApiError(StatusCode::CONFLICT, e.to_string()),
        }
    }
}

impl From<crate::service::connect::ConnectError> for ApiError {
    fn from(e: crate::service::connect::ConnectError) -> ApiError {
        use crate::service::connect::ConnectError as E;
        let status = match &e {
            E::InvalidAddress(_) | E::OwnAddress(_) => StatusCode::BAD_REQUEST,
            E::Busy => StatusCode::SERVICE_UNAVAILABLE,
            E::Abandoned { .. } => StatusCode::CONFLICT,
            E::Failed { .. } | E::TimedOut { .. } => StatusCode::BAD_GATEWAY,
        };
        ApiError(status, e.to_string())
    }
}

impl From<LagError> for ApiError {
    fn from(e: LagError) -> ApiError {
        let status = match &e {
            LagError::InvalidAddress(_) => StatusCode::BAD_REQUEST,
            LagError::Probe(_) => StatusCode::BAD_GATEWAY,
            LagError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            LagError::NotAdvertised { .. } => StatusCode::NOT_FOUND,
        };
        ApiError(status, e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// The admin router. Routes are grouped by [`Policy`] (see `auth.rs`), one function per
/// group named for it below, and each group is guarded by its policy here.
pub fn router(state: Arc<AdminState>) -> Router {
    let max_transaction_size = state.config.max_transaction_size;
    Router::new()
        .merge(auth::guard(monitoring_routes(), &state, Policy::Monitoring))
        .merge(auth::guard(read_routes(), &state, Policy::Read))
        .merge(auth::guard(
            authenticated_routes(max_transaction_size),
            &state,
            Policy::Authenticated,
        ))
        .merge(auth::guard(
            manage_peer_routes(),
            &state,
            Policy::ManagePeers,
        ))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(json_errors))
        // Before any answer (DNS rebinding); its refusal too waits for the body, in the span.
        .layer(middleware::from_fn_with_state(state.clone(), host::check))
        .layer(middleware::from_fn(linger::drain_refused_bodies))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            trace::request,
        ))
        .with_state(state)
}

/// Open to everyone from anywhere: probes, metrics, health, peer counts.
fn monitoring_routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/health", get(platform_health))
        .route("/metrics", get(metrics))
        .route("/api/health", get(health))
        .route("/api/peers/stats", get(peers::peers_stats))
        // The dashboard's files (no data in them; the page reads with the operator's token).
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/style.css", get(dashboard::style))
}

/// Open from `admin_open_cidrs`, elsewhere any valid token.
fn read_routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/doctor", get(doctor::doctor))
        .route("/api/peers", get(peers::list_peers))
        .route("/api/peers/quality", get(peers::peers_quality))
        .route("/api/peers/health", get(peers::peers_health))
        .route("/api/peers/{id}", get(peers::get_peer))
        .route("/api/bans", get(peers::list_bans))
        .route("/api/registers", get(registers::list))
        .route("/api/registers/available", get(registers::available))
        .route(
            "/api/registers/subscriptions",
            get(registers::subscriptions),
        )
        .route("/api/registers/cache", get(registers::cache))
        .route(
            "/api/registers/{id}/transactions/{tx}",
            get(registers::transaction),
        )
        .route("/api/lag", get(registers::lag))
        .route("/api/events", get(events::stream))
        .route("/api/events/recent", get(events::recent))
        .route("/api/peers/connected", get(platform::connected))
        .route("/api/registers/advertised", get(platform::advertised))
        // The platform's Register service reports its registers without a token (its client
        // has none); these change only what is shown for them, never data held here. JSON
        // bodies only, so a cross-site form cannot post them.
        .route(
            "/api/registers/bulk-advertise",
            post(platform::bulk_advertise).layer(axum::extract::DefaultBodyLimit::max(
                platform::MAX_ADVERTISE_BODY_BYTES,
            )),
        )
        .route("/api/registers/{id}/advertise", post(platform::advertise))
}

/// Any valid token: changes to registers and their transactions.
fn authenticated_routes(max_transaction_size: usize) -> Router<Arc<AdminState>> {
    Router::new()
        .route("/api/registers", post(registers::create))
        .route(
            "/api/registers/{id}/subscribe",
            post(registers::subscribe).delete(registers::unsubscribe),
        )
        .route(
            "/api/registers/{id}/cache",
            axum::routing::delete(registers::purge),
        )
        .route(
            "/api/registers/{id}/transactions",
            post(registers::submit).layer(axum::extract::DefaultBodyLimit::max(
                max_transaction_size + 1,
            )),
        )
        .route(
            "/api/internal/peer/distribute/{id}",
            post(platform::distribute).layer(axum::extract::DefaultBodyLimit::max(
                max_transaction_size + 1,
            )),
        )
        .route(
            "/api/registers/{id}/transactions/batch",
            // The handler reads the body itself, within `max_batch_bytes`.
            post(registers::submit_batch).layer(axum::extract::DefaultBodyLimit::disable()),
        )
}

/// `CanManagePeers`: bans, resets, connections.
fn manage_peer_routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route(
            "/api/peers/{id}/ban",
            post(peers::ban_peer).delete(peers::unban_peer),
        )
        .route("/api/peers/{id}/reset", post(peers::reset_peer))
        .route("/api/peers", post(peers::connect_peer))
        .route("/api/peers/{id}/disconnect", post(peers::disconnect_peer))
        .route("/api/bans", post(peers::create_ban))
        .route(
            "/api/bans/{target}",
            axum::routing::delete(peers::delete_ban),
        )
}

/// The admin API server as a node service, over TLS when `tls` is given.
pub struct AdminServer {
    pub listener: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub state: Arc<AdminState>,
}

impl crate::tasks::Service for AdminServer {
    const NAME: &'static str = "admin API server";

    async fn run(self, shutdown: CancellationToken) {
        let send_timeout = self.state.config.admin_send_timeout;
        let metrics = self.state.metrics.clone();
        let router = router(self.state);
        let served = serve(
            self.listener,
            self.tls,
            router,
            send_timeout,
            metrics,
            shutdown,
        );
        if let Err(e) = served.await {
            tracing::error!("admin API server failed: {e}");
        }
    }
}

/// Serves `router` on `listener`, over TLS when `tls` is given, until `shutdown` is cancelled.
/// A client that reads nothing for `send_timeout` is disconnected (`deadline.rs`).
async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    send_timeout: std::time::Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    // `tap_io` only so axum hands the client's address to the handlers as it does for a plain
    // TCP listener.
    match tls {
        None => {
            let listener =
                deadline::DeadlineListener::new(listener, send_timeout, metrics).tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
        Some(config) => {
            let listener = deadline::DeadlineListener::new(
                tls::TlsListener::new(listener, config),
                send_timeout,
                metrics,
            )
            .tap_io(|_| {});
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        }
    }
}

/// Makes every error answer `{"error": …}`: axum's own answers (a body over the limit, a path
/// that is not UTF-8, a method the route lacks) are plain text or empty; they keep their status
/// and headers and get their text (or the status's name) as the message.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut answer = ApiError(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().append(name.clone(), value.clone());
        }
    }
    answer
}

/// Parses an optional JSON body; an empty body means all defaults.
pub(crate) fn json_body<T: Default + serde::de::DeserializeOwned>(
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

// ----- conversions ---------------------------------------------------------------------

async fn health(State(state): Shared) -> Response {
    let counts = state.manager.counts();
    let peers = state.manager.list();
    let warnings = state
        .transport
        .ca()
        .and_then(|ca| ca.crl_problem())
        .into_iter()
        .collect();
    let node = health::node(&counts, &peers, &*state.store, warnings).await;
    let uptime_seconds = state.started.elapsed().as_secs();
    let body = HealthDto {
        status: node.status.as_str().to_string(),
        service: "peer-service".to_string(),
        version: crate::VERSION.to_string(),
        timestamp: to_rfc3339(now_ms()),
        uptime: crate::clock::day_clock(uptime_seconds),
        uptime_seconds,
        storage: if node.storage_error.is_some() {
            "failing"
        } else {
            "ok"
        }
        .to_string(),
        storage_error: node.storage_error,
        warnings: node.warnings,
        metrics: HealthMetricsDto {
            total_peers: node.total_peers,
            healthy_peers: node.healthy_peers,
            unhealthy_peers: node.total_peers - node.healthy_peers,
            average_latency_ms: peers::whole_ms(node.latency.mean_ms),
            latency_peers: node.latency.peers,
            queue_size: peers::queue_size(&state),
        },
    };
    let code = if node.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(body)).into_response()
}

/// Liveness: the admin API answers.
async fn healthz() -> axum::Json<ProbeDto> {
    axum::Json(ProbeDto {
        status: "alive".into(),
        storage: None,
        storage_error: None,
        checks: Default::default(),
        reasons: Vec::new(),
    })
}

/// Readiness (see `service::health::readiness`): 200 `ready`, or 503 `failing` with the
/// reasons; `storage` and `storageError` as `/api/health` reports them.
async fn readyz(State(state): Shared) -> Response {
    let (ready, mut body) = probe(&state, ProbeKind::Readiness).await;
    body.status = if ready { "ready" } else { "failing" }.into();
    answer_probe(ready, body)
}

/// The platform gateway's health check: 200 `healthy` while this service works (storage and
/// listeners; a node with no peer yet is still a working service), else 503 `unhealthy` with
/// the reasons.
async fn platform_health(State(state): Shared) -> Response {
    let (healthy, mut body) = probe(&state, ProbeKind::PlatformHealth).await;
    body.status = if healthy { "healthy" } else { "unhealthy" }.into();
    answer_probe(healthy, body)
}

fn answer_probe(ok: bool, body: ProbeDto) -> Response {
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// The probe body (`status` left for the caller) of [`health::probe`]: every check's outcome,
/// the reasons of the counted ones, and `storage`/`storageError` as `/api/health` reports them.
pub(super) async fn probe(state: &AdminState, kind: ProbeKind) -> (bool, ProbeDto) {
    let sources = health::ProbeSources {
        store: &*state.store,
        manager: &state.manager,
        listeners: &state.listeners,
        seeds: &state.config.seeds,
        peer_grace: state.config.readiness_peer_grace,
        started_ms: state.started_ms,
    };
    let probed = health::probe(&sources, kind).await;
    let body = ProbeDto {
        status: String::new(),
        storage: Some(
            if probed.storage_error.is_some() {
                "failing"
            } else {
                "ok"
            }
            .into(),
        ),
        storage_error: probed.storage_error,
        checks: probed
            .readiness
            .checks
            .into_iter()
            .map(|c| (c.name.to_string(), c.problem.unwrap_or_else(|| "ok".into())))
            .collect(),
        reasons: probed.reasons,
    };
    (probed.ok, body)
}

async fn status(State(state): Shared) -> ApiResult<StatusDto> {
    let (ready, probed) = probe(&state, ProbeKind::Readiness).await;
    let c = state.manager.counts();
    let announced = state.manager.addresses().announcement();
    let ca = state.transport.ca();
    // One storage check serves readiness and the storage fields alike.
    let storage_error = probed.storage_error;
    Ok(axum::Json(StatusDto {
        readiness: if ready { "ready" } else { "failing" }.into(),
        readiness_reasons: probed.reasons,
        peer_id: state.manager.identity().peer_id().to_string(),
        name: state.config.name.clone(),
        version: crate::VERSION.to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        listen: state.config.listen.to_string(),
        advertised_address: announced.address.clone(),
        announced_address: announced.address,
        address_source: announced.source.as_str().to_string(),
        reachability: announced.reachability.as_str().to_string(),
        peer_tls: state.config.peer_tls.to_string(),
        peer_certificate_expires: ca
            .map(|ca| crate::clock::to_rfc3339(ca.not_after.saturating_mul(1000))),
        peer_certificate_warning: ca.and_then(|ca| {
            crate::transport::watch::expiry_problem(
                ca.not_after,
                crate::clock::now_ms() / 1000,
                state.config.tls_expiry_warning,
            )
        }),
        revocation_list_problem: ca.and_then(|ca| ca.crl_problem()),
        admin_listen: state.config.admin_listen.to_string(),
        storage: state.config.storage_description(),
        durability: state.config.durability.to_string(),
        storage_health: if storage_error.is_some() {
            "failing"
        } else {
            "ok"
        }
        .to_string(),
        storage_error,
        peers: PeerCountsDto {
            known: c.known,
            connected: c.connected,
            connecting: c.connecting,
            disconnected: c.disconnected,
            banned: c.banned,
            inbound: c.inbound,
            outbound: c.outbound,
        },
        bans: c.bans,
        seeds: state.config.seeds.clone(),
        registers: state
            .registers
            .list()
            .iter()
            .map(registers::register_dto)
            .collect(),
        transactions_per_second: state.tx_rate.per_second(crate::clock::now_ms()),
        rate_window_seconds: crate::service::rates::RATE_WINDOW.as_secs(),
    }))
}

async fn metrics(State(state): Shared, headers: HeaderMap) -> Response {
    crate::service::metrics::refresh(&state.manager, &state.registers, &state.metrics);
    let format = crate::telemetry::exposition::Format::negotiate(
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()),
    );
    match state.metrics.render(format) {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(e) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}"),
        )
        .into_response(),
    }
}
