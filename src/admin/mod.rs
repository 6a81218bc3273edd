//! The admin HTTP API (axum): routes, bearer-token auth, and the translation between domain
//! values and the JSON bodies in [`dto`]. No rules here: peer rules are in `peers/`, the ones
//! spanning domains (ban guards, health, lag) in `service/`.

pub mod dto;
mod linger;
mod registers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::clock::{now_ms, to_rfc3339};
use crate::config::Config;
use crate::peers::{Ban, BanTarget, PeerError, PeerManager, PeerSnapshot, PeerState};
use crate::replication::Registers;
use crate::service::bans::{BanError, BanOrder};
use crate::service::health::{self, HealthStatus};
use crate::service::lag::{HeightsProbe, LagError};
use crate::store::{StorageHealth, Store};
use crate::telemetry::Metrics;
use dto::*;

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
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    pub token: String,
    pub started: Instant,
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

/// The admin router with auth applied.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/status", get(status))
        .route("/api/peers", get(list_peers))
        .route("/api/peers/quality", get(peers_quality))
        .route("/api/peers/stats", get(peers_stats))
        .route("/api/peers/health", get(peers_health))
        .route("/api/peers/{id}", get(get_peer))
        .route("/api/peers/{id}/ban", post(ban_peer).delete(unban_peer))
        .route("/api/peers/{id}/reset", post(reset_peer))
        .route("/api/bans", get(list_bans).post(create_ban))
        .route("/api/bans/{target}", axum::routing::delete(delete_ban))
        .route(
            "/api/registers",
            get(registers::list).post(registers::create),
        )
        .route("/api/registers/available", get(registers::available))
        .route(
            "/api/registers/subscriptions",
            get(registers::subscriptions),
        )
        .route("/api/registers/cache", get(registers::cache))
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
                state.config.max_transaction_size + 1,
            )),
        )
        .route(
            "/api/registers/{id}/transactions/batch",
            // The handler reads the body itself, within `max_batch_bytes`.
            post(registers::submit_batch).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/api/registers/{id}/transactions/{tx}",
            get(registers::transaction),
        )
        .route("/api/lag", get(registers::lag))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(json_errors))
        .layer(middleware::from_fn(linger::drain_refused_bodies))
        .with_state(state)
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

/// Mutating requests need the bearer token; reads are open from loopback when configured.
async fn authorize(
    State(state): Shared,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let read_only = matches!(*request.method(), Method::GET | Method::HEAD);
    let presented = request.headers().contains_key(header::AUTHORIZATION);
    // A token that is presented is always checked, so a wrong one shows up on the first read
    // rather than on the first ban.
    let open = read_only && !presented && state.config.admin_read_open && remote.ip().is_loopback();
    if !open && !bearer_matches(request.headers(), &state.token) {
        let message = if request.headers().contains_key(header::AUTHORIZATION) {
            "invalid admin token"
        } else {
            "this request needs the admin token (Authorization: Bearer <token>; see <data-dir>/admin.token)"
        };
        return ApiError(StatusCode::UNAUTHORIZED, message.into()).into_response();
    }
    next.run(request).await
}

/// Compares the presented bearer token in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    presented.trim().as_bytes().ct_eq(token.as_bytes()).into()
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

fn components(s: &PeerSnapshot) -> QualityComponentsDto {
    let q = &s.quality;
    QualityComponentsDto {
        success_rate: q.success_rate,
        success_points: q.success_points,
        latency_score: q.latency_score,
        latency_points: q.latency_points,
        validity: q.validity,
        validity_points: q.validity_points,
        total_requests: q.total_requests,
        successful_requests: q.successful_requests,
        failed_requests: q.total_requests.saturating_sub(q.successful_requests),
        last_penalty: q.last_penalty.as_ref().map(|p| PenaltyDto {
            at: to_rfc3339(p.at_ms),
            reason: p.reason.clone(),
        }),
    }
}

fn peer_dto(s: &PeerSnapshot) -> PeerDto {
    PeerDto {
        peer_id: s.peer_id.clone(),
        name: s.name.clone(),
        address: s.address.clone(),
        state: s.state.as_str().to_string(),
        direction: s.direction.map(|d| d.as_str().to_string()),
        connected_since: s.connected_since_ms.map(to_rfc3339),
        first_seen: to_rfc3339(s.first_seen_ms),
        last_seen: to_rfc3339(s.last_seen_ms),
        failure_count: s.failure_count,
        is_seed_node: s.is_seed,
        software_version: s.software_version.clone(),
        average_latency_ms: s.quality.average_latency_ms,
        min_latency_ms: s.quality.min_latency_ms,
        max_latency_ms: s.quality.max_latency_ms,
        success_rate: s.quality.success_rate,
        quality_score: s.quality.score,
        quality_rating: s.quality.rating.to_string(),
        quality_components: components(s),
        is_banned: s.ban.is_some(),
        banned_at: s.ban.as_ref().map(|b| to_rfc3339(b.banned_at_ms)),
        ban_reason: s.ban.as_ref().map(|b| b.reason.clone()),
        ban_expires_at: s.ban.as_ref().and_then(|b| b.expires_at_ms).map(to_rfc3339),
        advertised_registers: s
            .advertised
            .iter()
            .map(|r| AdvertisedRegisterDto {
                register_id: r.register_id.clone(),
                latest_version: r.latest_version,
                latest_docket_version: r.height,
                head_hash: hex::encode(r.head_hash),
                full_replica: r.full_replica,
                is_origin: r.is_origin,
            })
            .collect(),
    }
}

fn ban_dto(b: &Ban, now: i64) -> BanDto {
    BanDto {
        target: b.target.key(),
        kind: b.target.kind().as_str().to_string(),
        reason: b.reason.clone(),
        source: b.source.as_str().to_string(),
        banned_at: to_rfc3339(b.banned_at_ms),
        expires_at: b.expires_at_ms.map(to_rfc3339),
        remaining_seconds: b
            .expires_at_ms
            .map(|at| at.saturating_sub(now).max(0).saturating_add(999) / 1000),
    }
}

fn peer_id_of(target: &BanTarget) -> Option<String> {
    match target {
        BanTarget::Peer(id) => Some(id.clone()),
        _ => None,
    }
}

// ----- handlers ------------------------------------------------------------------------

async fn health(State(state): Shared) -> Response {
    let counts = state.manager.counts();
    let peers = state.manager.list();
    let node = health::node(&counts, &peers, &*state.store).await;
    let body = HealthDto {
        status: node.status.as_str().to_string(),
        service: "sorcha-peer".to_string(),
        version: crate::VERSION.to_string(),
        timestamp: to_rfc3339(now_ms()),
        uptime_seconds: state.started.elapsed().as_secs(),
        storage: if node.storage_error.is_some() {
            "failing"
        } else {
            "ok"
        }
        .to_string(),
        storage_error: node.storage_error,
        metrics: HealthMetricsDto {
            total_peers: node.total_peers,
            healthy_peers: node.healthy_peers,
            unhealthy_peers: node.total_peers - node.healthy_peers,
            average_latency_ms: node.average_latency_ms,
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
    })
}

/// Readiness: storage takes reads and writes (`/api/health`'s storage check); 503 `failing`
/// with the reason otherwise.
async fn readyz(State(state): Shared) -> Response {
    let (code, status, storage_error) = match crate::store::health::check(&*state.store).await {
        StorageHealth::Ok => (StatusCode::OK, "ready", None),
        StorageHealth::Failing(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, "failing", Some(reason))
        }
    };
    let storage = if storage_error.is_some() {
        "failing"
    } else {
        "ok"
    };
    let body = ProbeDto {
        status: status.into(),
        storage: Some(storage.into()),
        storage_error,
    };
    (code, axum::Json(body)).into_response()
}

async fn status(State(state): Shared) -> ApiResult<StatusDto> {
    let c = state.manager.counts();
    Ok(axum::Json(StatusDto {
        peer_id: state.manager.identity().peer_id().to_string(),
        name: state.config.name.clone(),
        version: crate::VERSION.to_string(),
        uptime_seconds: state.started.elapsed().as_secs(),
        listen: state.config.listen.to_string(),
        advertised_address: state.config.announced_address(),
        admin_listen: state.config.admin_listen.to_string(),
        storage: state.config.storage_description(),
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
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
    sort: Option<String>,
}

/// Sort keys accepted by `GET /api/peers?sort=`.
pub const SORT_KEYS: &[&str] = &[
    "id",
    "name",
    "address",
    "state",
    "latency",
    "score",
    "failures",
    "last-seen",
    "first-seen",
];

async fn list_peers(
    State(state): Shared,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Vec<PeerDto>> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let wanted = match query.state.as_deref().unwrap_or("all") {
        "all" => None,
        text => Some(
            PeerState::ALL
                .into_iter()
                .find(|s| s.as_str() == text)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown state '{text}'; use connected, connecting, disconnected, banned or all"
                    ))
                })?,
        ),
    };
    let mut peers: Vec<PeerSnapshot> = state
        .manager
        .list()
        .into_iter()
        .filter(|p| wanted.is_none_or(|w| p.state == w))
        .collect();
    let sort = query.sort.as_deref().unwrap_or("id");
    let latency = |p: &PeerSnapshot| p.quality.average_latency_ms.unwrap_or(f64::INFINITY);
    match sort {
        "id" => {}
        "name" => peers.sort_by(|a, b| a.name.cmp(&b.name)),
        "address" => peers.sort_by(|a, b| a.address.cmp(&b.address)),
        "state" => peers.sort_by_key(|p| p.state),
        "latency" => peers.sort_by(|a, b| latency(a).total_cmp(&latency(b))),
        "score" => peers.sort_by(|a, b| b.quality.score.total_cmp(&a.quality.score)),
        "failures" => peers.sort_by_key(|p| std::cmp::Reverse(p.failure_count)),
        "last-seen" => peers.sort_by_key(|p| std::cmp::Reverse(p.last_seen_ms)),
        "first-seen" => peers.sort_by_key(|p| p.first_seen_ms),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown sort key '{other}'; use one of {}",
                SORT_KEYS.join(", ")
            )));
        }
    }
    if let Some(limit) = query.limit {
        peers.truncate(limit);
    }
    Ok(axum::Json(peers.iter().map(peer_dto).collect()))
}

async fn get_peer(State(state): Shared, Path(id): Path<String>) -> ApiResult<PeerDto> {
    Ok(axum::Json(peer_dto(&state.manager.get(&id)?)))
}

async fn peers_quality(State(state): Shared) -> ApiResult<Vec<PeerQualityDto>> {
    let mut rows: Vec<PeerQualityDto> = state
        .manager
        .list()
        .iter()
        .filter(|p| p.quality.total_requests > 0)
        .map(|p| PeerQualityDto {
            peer_id: p.peer_id.clone(),
            average_latency_ms: p.quality.average_latency_ms,
            min_latency_ms: p.quality.min_latency_ms,
            max_latency_ms: p.quality.max_latency_ms,
            success_rate: p.quality.success_rate,
            total_requests: p.quality.total_requests,
            successful_requests: p.quality.successful_requests,
            failed_requests: p.quality.total_requests - p.quality.successful_requests,
            quality_score: p.quality.score,
            quality_rating: p.quality.rating.to_string(),
            quality_components: components(p),
        })
        .collect();
    rows.sort_by(|a, b| b.quality_score.total_cmp(&a.quality_score));
    Ok(axum::Json(rows))
}

async fn peers_stats(State(state): Shared) -> ApiResult<PeerStatsDto> {
    let s = health::peer_stats(&state.manager.list());
    Ok(axum::Json(PeerStatsDto {
        timestamp: to_rfc3339(now_ms()),
        peer_stats: PeerStatsInnerDto {
            total_peers: s.total_peers,
            healthy_peers: s.healthy_peers,
            unhealthy_peers: s.total_peers - s.healthy_peers,
            seed_nodes: s.seed_nodes,
            average_latency_ms: s.average_latency_ms,
            total_failures: s.total_failures,
        },
        quality_stats: QualityStatsDto {
            total_tracked_peers: s.rated_peers,
            excellent_peers: s.excellent_peers,
            good_peers: s.good_peers,
            fair_peers: s.fair_peers,
            poor_peers: s.poor_peers,
            average_quality_score: s.average_quality_score,
        },
    }))
}

async fn peers_health(State(state): Shared) -> ApiResult<PeersHealthDto> {
    let h = health::peers_health(state.manager.list());
    Ok(axum::Json(PeersHealthDto {
        total_peers: h.total_peers,
        healthy_peers: h.healthy_peers,
        unhealthy_peers: h.total_peers - h.healthy_peers,
        health_percentage: h.health_percentage,
        peers: h
            .best
            .iter()
            .map(|p| HealthyPeerDto {
                peer_id: p.peer_id.clone(),
                address: p.address.clone(),
                last_seen: to_rfc3339(p.last_seen_ms),
                average_latency_ms: p.quality.average_latency_ms,
            })
            .collect(),
    }))
}

async fn list_bans(State(state): Shared) -> ApiResult<Vec<BanDto>> {
    let now = now_ms();
    Ok(axum::Json(
        state
            .manager
            .bans()
            .iter()
            .map(|b| ban_dto(b, now))
            .collect(),
    ))
}

async fn do_ban(
    state: &AdminState,
    target_text: &str,
    request: BanRequest,
) -> ApiResult<BanResponse> {
    let order = BanOrder {
        target: target_text.to_string(),
        reason: request.reason,
        duration: request.duration,
        force: request.force,
    };
    let outcome = crate::service::bans::ban(&state.manager, &state.registers, order).await?;
    let ban = &outcome.ban;
    Ok(axum::Json(BanResponse {
        peer_id: peer_id_of(&ban.target),
        target: ban.target.key(),
        kind: ban.target.kind().as_str().to_string(),
        is_banned: true,
        banned_at: to_rfc3339(ban.banned_at_ms),
        ban_reason: ban.reason.clone(),
        ban_expires_at: ban.expires_at_ms.map(to_rfc3339),
        source: ban.source.as_str().to_string(),
        affected_peers: outcome.peer_ids,
        disconnected_peers: outcome.disconnected,
    }))
}

async fn ban_peer(
    State(state): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<BanResponse> {
    let request: BanRequest = json_body(&body)?;
    if request.target.is_some() {
        return Err(ApiError::bad_request(
            "the target is in the path; omit `target` here",
        ));
    }
    do_ban(&state, &id, request).await
}

async fn create_ban(State(state): Shared, body: Bytes) -> Response {
    let result = async {
        let mut request: BanRequest = json_body(&body)?;
        let target = request.target.take().ok_or_else(|| {
            ApiError::bad_request("`target` is required: a peer ID, IP address or CIDR subnet")
        })?;
        do_ban(&state, &target, request).await
    }
    .await;
    match result {
        Ok(body) => (StatusCode::CREATED, body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn do_unban(state: &AdminState, text: &str) -> ApiResult<UnbanResponse> {
    let ban = state.manager.unban(text).await?;
    Ok(axum::Json(UnbanResponse {
        peer_id: peer_id_of(&ban.target),
        target: ban.target.key(),
        kind: ban.target.kind().as_str().to_string(),
        is_banned: false,
    }))
}

async fn unban_peer(State(state): Shared, Path(id): Path<String>) -> ApiResult<UnbanResponse> {
    do_unban(&state, &id).await
}

async fn delete_ban(State(state): Shared, Path(target): Path<String>) -> ApiResult<UnbanResponse> {
    do_unban(&state, &target).await
}

async fn reset_peer(State(state): Shared, Path(id): Path<String>) -> ApiResult<ResetResponse> {
    let (peer_id, previous) = state.manager.reset(&id).await?;
    Ok(axum::Json(ResetResponse {
        peer_id,
        failure_count: 0,
        previous_failure_count: previous,
    }))
}

async fn metrics(State(state): Shared) -> Response {
    crate::service::metrics::refresh(&state.manager, &state.registers, &state.metrics);
    match state.metrics.render() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render metrics: {e}"),
        )
        .into_response(),
    }
}
