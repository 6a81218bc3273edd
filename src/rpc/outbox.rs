//! The queue of frames waiting to be written to one peer, bounded in frames and in bytes. The
//! gRPC layer takes a frame only when the peer's HTTP/2 window lets it through, so a peer that
//! stops reading fills this queue; it is then told it is not keeping up (and disconnected)
//! instead of making this node hold its unread answers without limit.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::pb;

/// Frames queued for one peer at most, whatever their size.
const MAX_FRAMES: usize = 256;

/// Why a frame could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutboxError {
    #[error("peer is not reading (outgoing queue full)")]
    Full,
    #[error("stream closed")]
    Closed,
}

/// The sending side, shared by a session's loop and its workers.
#[derive(Clone)]
pub(crate) struct Outbox {
    frames: mpsc::Sender<(pb::Frame, OwnedSemaphorePermit)>,
    bytes: Arc<Semaphore>,
    budget: usize,
}

impl Outbox {
    /// A queue holding at most `budget` bytes of encoded frames (a single larger frame still
    /// goes when the queue is empty), and the stream the gRPC layer sends from.
    pub(crate) fn new(budget: usize) -> (Outbox, impl Stream<Item = pb::Frame> + Send + 'static) {
        let budget = budget.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::channel(MAX_FRAMES);
        let outbox = Outbox {
            frames: tx,
            bytes: Arc::new(Semaphore::new(budget)),
            budget,
        };
        // The bytes are given back as the gRPC layer takes each frame to encode it.
        let stream = ReceiverStream::new(rx).map(|(frame, _permit)| frame);
        (outbox, stream)
    }

    /// Queues a frame without waiting.
    pub(crate) fn push(&self, frame: pb::Frame) -> Result<(), OutboxError> {
        if self.frames.is_closed() {
            return Err(OutboxError::Closed);
        }
        let size = frame.encoded_len().clamp(1, self.budget);
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        let permit = self
            .bytes
            .clone()
            .try_acquire_many_owned(size)
            .map_err(|_| OutboxError::Full)?;
        self.frames.try_send((frame, permit)).map_err(|e| match e {
            TrySendError::Full(_) => OutboxError::Full,
            TrySendError::Closed(_) => OutboxError::Closed,
        })
    }

    /// Bytes queued right now.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.budget - self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: usize) -> pb::Frame {
        pb::Frame {
            body: Some(pb::frame::Body::Goodbye(pb::Goodbye {
                reason: "x".repeat(bytes),
                ..Default::default()
            })),
        }
    }

    #[tokio::test]
    async fn bytes_are_bounded_and_come_back_when_frames_are_taken() {
        let (outbox, mut stream) = Outbox::new(10_000);
        outbox.push(frame(4_000)).expect("first");
        outbox.push(frame(4_000)).expect("second");
        assert_eq!(outbox.push(frame(4_000)), Err(OutboxError::Full));
        assert!(outbox.queued_bytes() > 8_000);
        stream.next().await.expect("a frame");
        outbox.push(frame(4_000)).expect("room again");
    }

    #[tokio::test]
    async fn one_frame_larger_than_the_budget_goes_alone() {
        let (outbox, mut stream) = Outbox::new(1_000);
        outbox.push(frame(50_000)).expect("alone");
        assert_eq!(outbox.push(frame(10)), Err(OutboxError::Full));
        stream.next().await.expect("the big one");
        outbox.push(frame(10)).expect("then the next");
    }

    #[tokio::test]
    async fn a_closed_stream_is_reported() {
        let (outbox, stream) = Outbox::new(1_000);
        drop(stream);
        assert_eq!(outbox.push(frame(10)), Err(OutboxError::Closed));
    }
}
