//! The REST calls the Sorcha platform's services make, answered in the shapes their clients
//! deserialize (the bodies are in `api/platform.rs`):
//! - `GET /api/peers/connected` (the API gateway's dashboard);
//! - `GET /api/registers/advertised`: what the Register service reported (for operators);
//! - `POST /api/registers/bulk-advertise` and `POST /api/registers/{id}/advertise` (the
//!   Register service reports the registers it holds: see `service::advertisements`);
//! - `POST /api/internal/peer/distribute/{registerId}` (the Blueprint service hands over a
//!   transaction submission, which enters the register's pool as `tx submit` does).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};

use super::{ApiError, ApiResult, Shared};
use crate::api::{
    AdvertiseRequest, AdvertiseResponse, AdvertisementDto, BulkAdvertiseRequest,
    BulkAdvertiseResponse, ConnectedPeersDto, DistributeResponse, PeerDto,
};
use crate::clock::now_ms;
use crate::peers::PeerState;
use crate::service::advertisements::{AdvertiseError, Advertisement};

/// Largest `bulk-advertise` body (about 5 000 registers with names and descriptions).
pub(crate) const MAX_ADVERTISE_BODY_BYTES: usize = 2 * 1024 * 1024;

impl From<AdvertiseError> for ApiError {
    fn from(e: AdvertiseError) -> ApiError {
        let status = match e {
            AdvertiseError::Invalid { .. } => axum::http::StatusCode::BAD_REQUEST,
            AdvertiseError::TooMany { .. } => axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        };
        ApiError(status, e.to_string())
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A JSON body with its `Content-Type` (a cross-site form cannot send one without the
/// browser asking first), or a 400/415 saying what is wrong.
fn json_request<T: serde::de::DeserializeOwned>(
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(t)| t)
        .map_err(|e| ApiError(e.status(), e.body_text()))
}

pub(super) async fn connected(State(state): Shared) -> ApiResult<ConnectedPeersDto> {
    let peers: Vec<PeerDto> = state
        .manager
        .list()
        .iter()
        .filter(|p| p.state == PeerState::Connected)
        .map(super::peers::peer_dto)
        .collect();
    Ok(Json(ConnectedPeersDto {
        connected_peer_count: peers.len() as u64,
        peers,
    }))
}

pub(super) async fn bulk_advertise(
    State(state): Shared,
    body: Result<Json<BulkAdvertiseRequest>, JsonRejection>,
) -> ApiResult<BulkAdvertiseResponse> {
    let request = json_request(body)?;
    let now = now_ms();
    let items = request
        .advertisements
        .into_iter()
        .map(|a| Advertisement {
            register_id: a.register_id,
            name: a.name,
            description: a.description,
            is_public: a.is_public,
            latest_version: a.latest_version,
            latest_docket_version: a.latest_docket_version,
            updated_at_ms: now,
        })
        .collect();
    let done = state.advertisements.bulk(items, request.full_sync)?;
    tracing::debug!(
        processed = done.processed,
        added = done.added,
        updated = done.updated,
        removed = done.removed,
        "platform register advertisements updated"
    );
    Ok(Json(BulkAdvertiseResponse {
        processed: done.processed as u64,
        added: done.added as u64,
        updated: done.updated as u64,
        removed: done.removed as u64,
    }))
}

/// `GET /api/registers/advertised`: what the Register service reported, by register.
pub(super) async fn advertised(State(state): Shared) -> ApiResult<Vec<AdvertisementDto>> {
    Ok(Json(
        state
            .advertisements
            .list()
            .into_iter()
            .map(|a| AdvertisementDto {
                register_id: a.register_id,
                name: a.name,
                description: a.description,
                is_public: a.is_public,
                latest_version: a.latest_version,
                latest_docket_version: a.latest_docket_version,
            })
            .collect(),
    ))
}

pub(super) async fn advertise(
    State(state): Shared,
    Path(id): Path<String>,
    body: Result<Json<AdvertiseRequest>, JsonRejection>,
) -> ApiResult<AdvertiseResponse> {
    let request = json_request(body)?;
    state.advertisements.set_public(Advertisement {
        register_id: id.clone(),
        name: request.name,
        description: request.description,
        is_public: request.is_public,
        latest_version: 0,
        latest_docket_version: 0,
        updated_at_ms: now_ms(),
    })?;
    Ok(Json(AdvertiseResponse {
        register_id: id,
        is_public: request.is_public,
    }))
}

/// The body must be a JSON object (the platform's submission); it is stored as the
/// transaction's payload, byte for byte, with the same checks and limits as `tx submit`.
pub(super) async fn distribute(
    State(state): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<DistributeResponse> {
    let parsed: serde_json::Value = json(&body)?;
    if !parsed.is_object() {
        return Err(ApiError::bad_request(
            "a transaction submission is a JSON object",
        ));
    }
    let done =
        crate::service::registers::distribute(&state.registers, &state.manager, &id, body.to_vec())
            .await?;
    Ok(Json(DistributeResponse {
        target_peer_count: done.target_peers as u64,
        accepted_count: 1,
        transaction_id: done.tx_id,
    }))
}
