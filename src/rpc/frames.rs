//! Frame helpers shared by the handshake, the session loop and dial-backs: wrapping a body,
//! queueing it on a peer's outbox without waiting, and the best-effort goodbye.

use super::convert;
use super::outbox::{Outbox, OutboxError};
use super::pb::{self, frame::Body};
use crate::protocol::Refusal;

pub(crate) fn frame(body: Body) -> pb::Frame {
    pb::Frame { body: Some(body) }
}

/// Tells the peer why we are closing (not a refusal: see [`refuse`]). Best effort by design:
/// the stream is closed right after either way, so a full or closed outbox only means the peer
/// learns it from the closed stream.
pub(crate) fn say_goodbye(outbox: &Outbox, reason: &str) {
    send_goodbye(
        outbox,
        pb::Goodbye {
            reason: reason.to_string(),
            ..Default::default()
        },
    );
}

/// Tells the peer it is refused, with the kind it can act on; best effort as [`say_goodbye`].
pub(crate) fn refuse(outbox: &Outbox, refusal: &Refusal) {
    send_goodbye(outbox, convert::refusal_to_wire(refusal));
}

fn send_goodbye(outbox: &Outbox, goodbye: pb::Goodbye) {
    let reason = goodbye.reason.clone();
    if push(outbox, frame(Body::Goodbye(goodbye))).is_err() {
        tracing::debug!(%reason, "goodbye not delivered (stream already gone)");
    }
}

/// Queues a frame without waiting: a peer that does not drain its stream is not keeping up.
pub(crate) fn push(outbox: &Outbox, f: pb::Frame) -> Result<(), OutboxError> {
    outbox.push(f)
}
