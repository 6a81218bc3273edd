//! Frame helpers shared by the handshake, the session loop and dial-backs: wrapping a body,
//! queueing it on a peer's outbox without waiting, and the best-effort goodbye.

use super::outbox::{Outbox, OutboxError};
use super::pb::{self, frame::Body};

pub fn frame(body: Body) -> pb::Frame {
    pb::Frame { body: Some(body) }
}

fn goodbye(reason: &str) -> pb::Frame {
    frame(Body::Goodbye(pb::Goodbye {
        reason: reason.to_string(),
        ..Default::default()
    }))
}

/// Tells the peer why we are closing. Best effort by design: the stream is closed right after
/// either way, so a full or closed outbox only means the peer learns it from the closed stream.
pub fn say_goodbye(outbox: &Outbox, reason: &str) {
    if push(outbox, goodbye(reason)).is_err() {
        tracing::debug!(%reason, "goodbye not delivered (stream already gone)");
    }
}

/// Queues a frame without waiting: a peer that does not drain its stream is not keeping up.
pub fn push(outbox: &Outbox, f: pb::Frame) -> Result<(), OutboxError> {
    outbox.push(f)
}
