//! Admin handlers for registers, transactions, subscriptions and lag.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::{ApiError, ApiResult, Shared, json_body};
use crate::api::*;
use crate::clock::to_rfc3339;
use crate::replication::{Mode, RegisterError, RegisterView, Role, SubscriptionView, SyncState};

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> ApiError {
        let status = match &e {
            RegisterError::Invalid(_) => StatusCode::BAD_REQUEST,
            RegisterError::NotFound(_) => StatusCode::NOT_FOUND,
            RegisterError::Conflict(_) => StatusCode::CONFLICT,
            RegisterError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            RegisterError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            RegisterError::Store(store) => {
                tracing::error!("admin request failed on storage: {store}");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        ApiError(status, e.to_string())
    }
}

fn created<T: serde::Serialize>(body: T) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

pub(super) fn register_dto(v: &RegisterView) -> RegisterDto {
    RegisterDto {
        register_id: v.register_id.clone(),
        is_public: v.is_public,
        role: v.role.as_str().to_string(),
        sync_state: v.sync_state.clone(),
        latest_version: v.latest_version,
        latest_docket_version: v.height,
        docket_count: v.docket_count,
        head_hash: hex::encode(v.head_hash),
        transaction_count: v.transaction_count,
        pending_transactions: v.pending,
        sync_progress_percent: v.sync_progress_percent,
        created_at: to_rfc3339(v.created_at_ms),
    }
}

/// A subscription mode as the platform's clients name it (their enum, in PascalCase).
pub(super) fn platform_mode(mode: Mode) -> &'static str {
    match mode {
        Mode::FullReplica => "FullReplica",
        Mode::ForwardOnly => "ForwardOnly",
    }
}

/// A subscription state as the platform's clients name it (their enum, in PascalCase).
pub(super) fn platform_sync_state(state: SyncState) -> &'static str {
    match state {
        SyncState::Subscribing => "Subscribing",
        SyncState::Syncing => "Syncing",
        SyncState::FullyReplicated => "FullyReplicated",
        SyncState::Active => "Active",
        SyncState::Error => "Error",
    }
}

fn subscription_dto(s: &SubscriptionView) -> SubscriptionDto {
    SubscriptionDto {
        register_id: s.register_id.clone(),
        mode: platform_mode(s.mode).to_string(),
        sync_state: platform_sync_state(s.state).to_string(),
        // The platform reads these as integers: 0 stands for "nothing yet" there, and the
        // `held…`/`target…` fields beside them say which it is.
        last_synced_docket_version: s.height.unwrap_or(0),
        last_synced_transaction_version: s.latest_version.unwrap_or(0),
        total_dockets_in_chain: s.target_height.map_or(0, |t| t.saturating_add(1)),
        held_docket_version: s.height,
        held_transaction_version: s.latest_version,
        target_docket_version: s.target_height,
        target_transaction_version: s.target_version,
        sync_progress_percent: s.progress_percent,
        can_participate_in_validation: s.state == SyncState::FullyReplicated,
        is_receiving: matches!(s.state, SyncState::FullyReplicated | SyncState::Active),
        created_at: to_rfc3339(s.created_at_ms),
        last_sync_at: s.last_sync_at_ms.map(to_rfc3339),
        consecutive_failures: s.failures,
        error_message: s.error.clone(),
    }
}

pub(super) async fn list(State(state): Shared) -> ApiResult<Vec<RegisterDto>> {
    Ok(axum::Json(
        state.registers.list().iter().map(register_dto).collect(),
    ))
}

pub(super) async fn create(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let request: CreateRegisterRequest = json_body(&body)?;
    let id = request
        .register_id
        .ok_or_else(|| ApiError::bad_request("`registerId` is required"))?;
    let view = state.registers.create(&id, request.is_public).await?;
    Ok(created(register_dto(&view)))
}

pub(super) async fn available(State(state): Shared) -> ApiResult<Vec<AvailableRegisterDto>> {
    let available = crate::service::registers::available(
        &state.manager,
        &state.registers,
        &state.advertisements,
    );
    Ok(axum::Json(
        available
            .into_iter()
            .map(|a| AvailableRegisterDto {
                register_id: a.register_id,
                // Peers advertise public registers only, and only public local ones are listed.
                is_public: true,
                peer_count: a.peer_count,
                full_replica_peer_count: a.full_replica_peer_count,
                latest_version: a.latest_version,
                latest_docket_version: a.latest_docket_version,
                local_role: a.local_role.map(|r| r.as_str().to_string()),
                name: a.name,
                description: a.description,
            })
            .collect(),
    ))
}

pub(super) async fn subscriptions(State(state): Shared) -> ApiResult<Vec<SubscriptionDto>> {
    Ok(axum::Json(
        state
            .registers
            .subscriptions()
            .iter()
            .map(subscription_dto)
            .collect(),
    ))
}

pub(super) async fn cache(State(state): Shared) -> ApiResult<Vec<CacheDto>> {
    Ok(axum::Json(
        state
            .registers
            .list()
            .iter()
            .filter(|r| r.role != Role::Origin)
            .map(|r| CacheDto {
                register_id: r.register_id.clone(),
                transaction_count: r.transaction_count,
                docket_count: r.docket_count,
                latest_transaction_version: r.latest_version,
                latest_docket_version: r.height,
            })
            .collect(),
    ))
}

pub(super) async fn subscribe(
    State(state): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SubscribeRequest = json_body(&body)?;
    // No mode means a full replica, the mode that holds everything.
    let mode = match request.mode {
        None => Mode::FullReplica,
        Some(text) => Mode::parse(&text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid mode '{text}': use full-replica or forward-only"
            ))
        })?,
    };
    let (view, made) = state.registers.subscribe(&id, mode).await?;
    Ok(if made {
        created(subscription_dto(&view))
    } else {
        axum::Json(subscription_dto(&view)).into_response()
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnsubscribeQuery {
    #[serde(default)]
    purge: bool,
}

pub(super) async fn unsubscribe(
    State(state): Shared,
    Path(id): Path<String>,
    query: Result<Query<UnsubscribeQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<UnsubscribeResponse> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let purged = state.registers.unsubscribe(&id, query.purge).await?;
    Ok(axum::Json(UnsubscribeResponse {
        register_id: id,
        unsubscribed: true,
        cache_retained: purged.is_none(),
        transactions_removed: purged.as_ref().map(|p| p.transactions),
        dockets_removed: purged.as_ref().map(|p| p.dockets),
    }))
}

pub(super) async fn purge(
    State(state): Shared,
    Path(id): Path<String>,
) -> ApiResult<PurgeResponse> {
    let purged = state.registers.purge(&id).await?;
    Ok(axum::Json(PurgeResponse {
        register_id: id,
        purged: true,
        transactions_removed: purged.transactions,
        dockets_removed: purged.dockets,
    }))
}

pub(super) async fn submit(
    State(state): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let submitted = state.registers.submit(&id, body.to_vec()).await?;
    Ok(match submitted.existing {
        // Held already: nothing was created.
        Some(tx) => axum::Json(SubmitResponse {
            transaction_id: submitted.tx_id,
            register_id: id,
            state: tx_state(tx.version).into(),
            already_held: true,
            version: tx.version,
            docket_number: tx.docket_number,
        })
        .into_response(),
        None => created(SubmitResponse {
            transaction_id: submitted.tx_id,
            register_id: id,
            state: tx_state(None).into(),
            already_held: false,
            version: None,
            docket_number: None,
        }),
    })
}

/// A transaction's state by its version: `pending` until sealed.
fn tx_state(version: Option<u64>) -> &'static str {
    if version.is_some() {
        "sealed"
    } else {
        "pending"
    }
}

/// `POST /api/registers/{id}/transactions/batch`: at most `max_batch_bytes` of body and
/// `max_batch_transactions` payloads (413 naming the limit otherwise, nothing stored). Every
/// payload is checked before anything is stored; storing then goes in chunks (see
/// [`crate::replication::Registers::submit_many`]), so other requests are served meanwhile. A
/// storage failure part-way answers with the error and the IDs stored before it.
pub(super) async fn submit_batch(
    State(state): Shared,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = state.config.max_batch_bytes;
    let body = Bytes::from(read_limited(body, limit).await?);
    let request: BatchSubmitRequest = json_body(&body)?;
    drop(body);
    if request.payloads.is_empty() {
        return Err(ApiError::bad_request("`payloads` is empty"));
    }
    let max = state.config.max_batch_transactions;
    if request.payloads.len() > max {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the batch has {} transactions; at most {max} are accepted per request \
                 (max_batch_transactions): split it (`tx submit --lines` does)",
                request.payloads.len()
            ),
        ));
    }
    // Validate everything first, so a bad entry changes nothing.
    if let Some((i, p)) = request
        .payloads
        .iter()
        .enumerate()
        .find(|(_, p)| p.is_empty() || p.len() > state.config.max_transaction_size)
    {
        return Err(ApiError::bad_request(format!(
            "payload {} is {} bytes; each must be 1 to {} bytes",
            i + 1,
            p.len(),
            state.config.max_transaction_size
        )));
    }
    let payloads = request
        .payloads
        .into_iter()
        .map(String::into_bytes)
        .collect();
    match state.registers.submit_many(&id, payloads).await {
        Ok(batch) => {
            let transactions = batch
                .ids
                .iter()
                .zip(&batch.held)
                .map(|(tx_id, held)| SubmitResponse {
                    transaction_id: tx_id.clone(),
                    register_id: id.clone(),
                    state: tx_state(held.and_then(|h| h.version)).into(),
                    already_held: held.is_some(),
                    version: held.and_then(|h| h.version),
                    docket_number: held.and_then(|h| h.docket_number),
                })
                .collect();
            Ok(created(BatchSubmitResponse {
                register_id: id,
                transaction_ids: batch.ids,
                already_held: batch.already_held,
                transactions,
            }))
        }
        Err(e) if e.stored.is_empty() => Err(e.error.into()),
        Err(e) => {
            let ApiError(status, message) = e.error.into();
            let body = BatchFailureBody {
                error: format!(
                    "{message} ({} of the batch's transactions were stored before the failure; \
                     their IDs are in `transactionIds`)",
                    e.stored.len()
                ),
                register_id: id,
                transaction_ids: e.stored,
            };
            Ok((status, axum::Json(body)).into_response())
        }
    }
}

/// Reads a request body of at most `limit` bytes; a larger one is refused (413, naming
/// `max_batch_bytes`) as soon as it passes the limit, without reading the rest.
async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the batch body is larger than {limit} bytes (max_batch_bytes): split it \
                 (`tx submit --lines` does)"
            ),
        )
    };
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub(super) async fn transaction(
    State(state): Shared,
    Path((id, tx)): Path<(String, String)>,
) -> ApiResult<TransactionDto> {
    let view = state.registers.transaction(&id, &tx).await?;
    Ok(axum::Json(TransactionDto {
        transaction_id: view.tx_id,
        register_id: view.register_id,
        state: tx_state(view.version).to_string(),
        version: view.version,
        docket_number: view.docket_number,
        size: view.size,
        received_at: to_rfc3339(view.received_at_ms),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LagQuery {
    against: Option<String>,
    register: Option<String>,
}

pub(super) async fn lag(
    State(state): Shared,
    query: Result<Query<LagQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Vec<LagDto>> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let against = query.against.ok_or_else(|| {
        ApiError::bad_request("`against` (host:port of the other node's peer protocol) is required")
    })?;
    let rows = crate::service::lag::measure(
        &state.registers,
        &*state.heights,
        &against,
        query.register.as_deref(),
        state.config.request_timeout,
    )
    .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| LagDto {
                register_id: r.register_id,
                local_version: r.local_version,
                remote_version: r.remote_version,
                local_docket_version: r.local_docket_version,
                remote_docket_version: r.remote_docket_version,
                transactions_behind: r.transactions_behind,
                dockets_behind: r.dockets_behind,
                diverged: r.diverged,
                diverged_at_docket_version: r.diverged_at,
                held_locally: r.held_locally,
            })
            .collect(),
    ))
}
