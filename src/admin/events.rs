//! The event stream: `GET /api/events` as Server-Sent Events (one `data:` line of JSON per
//! event, `id:` its sequence number, keep-alive comments while idle; `?since=<seq>` or the
//! `Last-Event-ID` header replays what the ring still holds), and `GET /api/events/recent`
//! (the same events as one JSON document, for `sorcha-peer events` without `--follow`).
//!
//! Reads, so the same auth as every other read. The dashboard reads the stream with `fetch`
//! (not `EventSource`), so a token travels in the `Authorization` header, never in a URL.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::dto::RecentEventsDto;
use super::{ApiError, ApiResult, Shared};
use crate::events::{EVENT_HISTORY, Event};

/// Events `/api/events/recent` answers with unless asked for fewer.
const DEFAULT_RECENT: usize = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamQuery {
    since: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecentQuery {
    limit: Option<usize>,
    since: Option<u64>,
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// `GET /api/events`: live events as Server-Sent Events.
pub(super) async fn stream(
    State(state): Shared,
    headers: HeaderMap,
    query: QueryResult<StreamQuery>,
) -> Response {
    let since = match query {
        Ok(Query(q)) => q.since,
        Err(e) => return ApiError::bad_request(e.body_text()).into_response(),
    };
    let since = match since {
        Some(since) => Some(since),
        None => match headers.get("last-event-id").map(|v| v.to_str()) {
            None => None,
            Some(Ok(text)) => match text.trim().parse::<u64>() {
                Ok(seq) => Some(seq),
                Err(_) => {
                    return ApiError::bad_request("Last-Event-ID must be an event sequence number")
                        .into_response();
                }
            },
            Some(Err(_)) => {
                return ApiError::bad_request("Last-Event-ID must be an event sequence number")
                    .into_response();
            }
        },
    };
    let subscription = match state
        .events
        .subscribe(since, state.config.max_event_clients)
    {
        Ok(subscription) => subscription,
        Err(e) => {
            state.metrics.limit_hit("max_event_clients");
            return ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
        }
    };
    let events = subscription.into_stream().map(|event| {
        let mut sse = SseEvent::default();
        if event.seq > 0 {
            sse = sse.id(event.seq.to_string());
        }
        // An event is plain data with string keys: it always serialises.
        let data = serde_json::to_string(&event).unwrap_or_else(|e| {
            tracing::error!("cannot serialise event {}: {e}", event.seq);
            String::from("{}")
        });
        Ok::<_, Infallible>(sse.data(data))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.config.event_keepalive_interval))
        .into_response();
    // Proxies (nginx) must pass events on as they come.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

/// `GET /api/events/recent?limit=N&since=SEQ`: the latest events (oldest first) as JSON.
pub(super) async fn recent(
    State(state): Shared,
    query: QueryResult<RecentQuery>,
) -> ApiResult<RecentEventsDto> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_RECENT).min(EVENT_HISTORY);
    let latest_seq = state.events.latest_seq();
    let events: Vec<Event> = state
        .events
        .recent(EVENT_HISTORY)
        .into_iter()
        .filter(|e| q.since.is_none_or(|s| s > latest_seq || e.seq > s))
        .map(|e| (*e).clone())
        .collect();
    let skip = events.len().saturating_sub(limit);
    Ok(axum::Json(RecentEventsDto {
        latest_seq,
        events: events.into_iter().skip(skip).collect(),
    }))
}
