//! Admin handlers for peers and bans: the peer list and views, quality and health figures,
//! bans, unbans and resets. Rules live in `peers/` and `service/`; this file translates.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AdminState, ApiError, ApiResult, Shared, json_body};
use crate::api::*;
use crate::clock::{now_ms, to_rfc3339};
use crate::config::split_host_port;
use crate::peers::{Ban, BanTarget, PeerSnapshot, PeerState};
use crate::service::bans::BanOrder;
use crate::service::health;

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
        recent_requests: q.recent_requests,
        recent_successful_requests: q.recent_successful_requests,
        last_penalty: q.last_penalty.as_ref().map(|p| PenaltyDto {
            at: to_rfc3339(p.at_ms),
            reason: p.reason.clone(),
        }),
    }
}

/// What `qualityRating` says of a banned peer.
const BANNED_RATING: &str = "Banned";

/// Whole milliseconds, as the platform's clients read latencies (integers, never null): 0
/// without a figure, which the `latency` object beside it tells apart.
pub(super) fn whole_ms(figure: Option<f64>) -> u64 {
    figure.map_or(0, |ms| ms.round().max(0.0) as u64)
}

/// The peer's round trips, when it has them.
fn latency(s: &PeerSnapshot) -> Option<LatencyDto> {
    let q = &s.quality;
    Some(LatencyDto {
        average_ms: q.average_latency_ms?,
        min_ms: q.min_latency_ms?,
        max_ms: q.max_latency_ms?,
    })
}

pub(super) fn peer_dto(s: &PeerSnapshot) -> PeerDto {
    let connected = (s.state == PeerState::Connected).then_some(());
    let (host, port) = split_host_port(&s.address);
    PeerDto {
        peer_id: s.peer_id.clone(),
        name: s.name.clone(),
        address: host.to_string(),
        port: port.unwrap_or(0),
        endpoint: s.address.clone(),
        state: s.state.as_str().to_string(),
        direction: s.direction.map(|d| d.as_str().to_string()),
        connected_since: s.connected_since_ms.map(to_rfc3339),
        first_seen: to_rfc3339(s.first_seen_ms),
        last_seen: to_rfc3339(s.last_seen_ms),
        failure_count: s.failure_count,
        is_seed_node: s.is_seed,
        software_version: s.software_version.clone(),
        // Latency is a figure of now: a peer not connected has none (its last-seen says when).
        average_latency_ms: whole_ms(connected.and(s.quality.average_latency_ms)),
        latency: connected.and_then(|()| latency(s)),
        success_rate: s.quality.success_rate,
        quality_score: s.quality.score,
        // A banned peer is not rated: it is used for nothing, whatever its record says.
        quality_rating: if s.ban.is_some() {
            BANNED_RATING.to_string()
        } else {
            s.quality.rating.to_string()
        },
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
                sync_state: if r.full_replica || r.is_origin {
                    "FullyReplicated"
                } else {
                    "Active"
                }
                .to_string(),
                is_public: true,
            })
            .collect(),
        advertised_register_count: s.advertised.len(),
        clock_offset_ms: s.clock_offset_ms,
        platform_address: s.platform_address.clone(),
    }
}

/// `names`: peer ID → name, of the peers this node knows.
fn ban_dto(b: &Ban, now: i64, names: &HashMap<String, String>) -> BanDto {
    BanDto {
        target: b.target.key(),
        name: peer_id_of(&b.target)
            .and_then(|id| names.get(&id).cloned())
            .filter(|name| !name.is_empty()),
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
    sort: Option<String>,
}

/// Sort keys accepted by `GET /api/peers?sort=`.
pub(super) const SORT_KEYS: &[&str] = &[
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

pub(super) async fn list_peers(
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

pub(super) async fn get_peer(State(state): Shared, Path(id): Path<String>) -> ApiResult<PeerDto> {
    Ok(axum::Json(peer_dto(&state.manager.get(&id)?)))
}

pub(super) async fn peers_quality(State(state): Shared) -> ApiResult<Vec<PeerQualityDto>> {
    let mut rows: Vec<PeerQualityDto> = state
        .manager
        .list()
        .iter()
        .filter(|p| p.quality.total_requests > 0)
        .map(|p| PeerQualityDto {
            peer_id: p.peer_id.clone(),
            average_latency_ms: whole_ms(p.quality.average_latency_ms),
            min_latency_ms: whole_ms(p.quality.min_latency_ms),
            max_latency_ms: whole_ms(p.quality.max_latency_ms),
            latency: latency(p),
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

pub(super) async fn peers_stats(State(state): Shared) -> ApiResult<PeerStatsDto> {
    let s = health::peer_stats(&state.manager.list());
    let pending = queue_size(&state);
    Ok(axum::Json(PeerStatsDto {
        timestamp: to_rfc3339(now_ms()),
        peer_stats: PeerStatsInnerDto {
            total_peers: s.total_peers,
            healthy_peers: s.healthy_peers,
            unhealthy_peers: s.total_peers - s.healthy_peers,
            seed_nodes: s.seed_nodes,
            average_latency_ms: whole_ms(s.latency.mean_ms),
            latency_peers: s.latency.peers,
            total_failures: s.total_failures,
        },
        quality_stats: QualityStatsDto {
            total_tracked_peers: s.rated_peers,
            excellent_peers: s.excellent_peers,
            good_peers: s.good_peers,
            fair_peers: s.fair_peers,
            poor_peers: s.poor_peers,
            average_quality_score: s.average_quality_score.unwrap_or(0.0),
        },
        queue_stats: QueueStatsDto {
            queue_size: pending,
            is_empty: pending == 0,
        },
        circuit_breaker_stats: CircuitBreakerStatsDto::default(),
    }))
}

/// Transactions waiting here to be sealed (registers this node originates): what the platform's
/// clients read as the queue.
pub(super) fn queue_size(state: &AdminState) -> u64 {
    state.registers.list().iter().map(|r| r.pending).sum()
}

pub(super) async fn peers_health(State(state): Shared) -> ApiResult<PeersHealthDto> {
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
                address: split_host_port(&p.address).0.to_string(),
                port: split_host_port(&p.address).1.unwrap_or(0),
                endpoint: p.address.clone(),
                last_seen: to_rfc3339(p.last_seen_ms),
                average_latency_ms: whole_ms(p.quality.average_latency_ms),
            })
            .collect(),
    }))
}

pub(super) async fn list_bans(State(state): Shared) -> ApiResult<Vec<BanDto>> {
    let now = now_ms();
    let names: HashMap<String, String> = state
        .manager
        .list()
        .into_iter()
        .map(|s| (s.peer_id, s.name))
        .collect();
    Ok(axum::Json(
        state
            .manager
            .bans()
            .iter()
            .map(|b| ban_dto(b, now, &names))
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
        duration: match (request.duration, request.duration_minutes) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "give `duration` or `durationMinutes`, not both",
                ));
            }
            (None, Some(0)) => {
                return Err(ApiError::bad_request(
                    "`durationMinutes` must be at least 1",
                ));
            }
            (None, Some(minutes)) => Some(format!("{minutes}m")),
            (text, None) => text,
        },
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

pub(super) async fn ban_peer(
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

pub(super) async fn create_ban(State(state): Shared, body: Bytes) -> Response {
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

pub(super) async fn unban_peer(
    State(state): Shared,
    Path(id): Path<String>,
) -> ApiResult<UnbanResponse> {
    do_unban(&state, &id).await
}

pub(super) async fn delete_ban(
    State(state): Shared,
    Path(target): Path<String>,
) -> ApiResult<UnbanResponse> {
    do_unban(&state, &target).await
}

pub(super) async fn reset_peer(
    State(state): Shared,
    Path(id): Path<String>,
) -> ApiResult<ResetResponse> {
    let (peer_id, previous) = state.manager.reset(&id).await?;
    Ok(axum::Json(ResetResponse {
        peer_id,
        failure_count: 0,
        previous_failure_count: previous,
    }))
}

/// `POST /api/peers` `{"address": "HOST:PORT"}`: dial that node once, now (see
/// `service::connect`). 201 with the peer reached, 200 when it was connected already.
pub(super) async fn connect_peer(State(state): Shared, body: Bytes) -> Response {
    let result = async {
        let request: ConnectRequest = json_body(&body)?;
        let address = request.address.ok_or_else(|| {
            ApiError::bad_request("`address` is required: host:port of a node's peer protocol")
        })?;
        let connected = crate::service::connect::connect(
            &state.manager,
            &state.config,
            &*state.dialer,
            &address,
        )
        .await?;
        Ok::<_, ApiError>((address, connected))
    }
    .await;
    match result {
        Ok((address, connected)) => {
            let status = if connected.already {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let body = ConnectResponse {
                peer_id: connected.peer_id,
                address: address.trim().to_string(),
                already_connected: connected.already,
            };
            (status, axum::Json(body)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /api/peers/{id}/disconnect`: close the session, no ban (the peer may come back).
pub(super) async fn disconnect_peer(
    State(state): Shared,
    Path(id): Path<String>,
) -> ApiResult<DisconnectResponse> {
    let peer_id = crate::service::connect::disconnect(&state.manager, &id)?;
    Ok(axum::Json(DisconnectResponse {
        peer_id,
        disconnected: true,
        is_banned: false,
    }))
}
