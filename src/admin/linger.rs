//! Refusals that come before the request body was read (a body over its limit, a missing
//! token) are sent only after the rest of the body has been read and thrown away, up to a
//! bound. Otherwise the connection closes under a client still sending, and it sees a reset
//! instead of the answer, which it cannot tell from a crashed node.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use http_body::Frame;

/// Bytes of a refused body read and discarded before the answer; beyond this the connection is
/// cut without reading on.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// The request body, readable by the handler and, once it answered, by this layer.
struct SharedBody(Arc<Mutex<Body>>);

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(|p| p.into_inner());
        Pin::new(&mut *body).poll_frame(cx)
    }
}

/// Middleware: runs the request, and when the answer is a client error, reads what is left of
/// the request body (at most [`DRAIN_LIMIT`]) before sending it.
pub(super) async fn drain_refused_bodies(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let shared = Arc::new(Mutex::new(body));
    let request = Request::from_parts(parts, Body::new(SharedBody(shared.clone())));
    let response = next.run(request).await;
    if response.status().is_client_error() {
        let rest = std::mem::replace(
            &mut *shared.lock().unwrap_or_else(|p| p.into_inner()),
            Body::empty(),
        );
        let mut stream = rest.into_data_stream();
        let mut drained = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            drained += chunk.len();
            if drained > DRAIN_LIMIT {
                break;
            }
        }
    }
    response
}
