//! One span per admin request (`admin request`: method, route, status), so a request shows in
//! the traces of a node with `otlp_endpoint` set, named like `GET /api/peers/{id}`, and gives
//! context to the log lines its handler writes.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use super::AdminState;

/// Outermost layer: the request's span, under the node's trace scope, ended with the status.
pub(super) async fn request(
    State(state): State<Arc<AdminState>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let span = tracing::info_span!(
        parent: &state.trace_scope,
        "admin request",
        otel.kind = "server",
        otel.name = %method,
        http.request.method = %method,
        http.route = Empty,
        http.response.status_code = Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("error", response.status().as_str());
    }
    response
}

/// Names the matched route in the request's span (the outer layer runs before routing, so it
/// cannot see it). Called by every route's guard (`auth.rs`), which runs after routing; an
/// extra route layer just for this made the 60 000-payload batch test time out (seen, not
/// explained).
pub(super) fn name_route(request: &Request) {
    if let Some(path) = request.extensions().get::<MatchedPath>() {
        let span = tracing::Span::current();
        span.record("http.route", path.as_str());
        span.record(
            "otel.name",
            tracing::field::display(format_args!("{} {}", request.method(), path.as_str())),
        );
    }
}
