//! `PeerCommunication`: the platform's messages across the overlay, through
//! [`crate::messages`]. `SendMessage` to `"*"` goes to every node, to a peer ID to that
//! connected peer; `received` says it was handed to at least one peer session (not that the
//! other end acknowledged it). `Stream` delivers the messages addressed to this node or to
//! `"*"` (`sender_peer_id` is the origin node's peer ID, `timestamp` its unix milliseconds)
//! and sends what the client writes as `SendMessage` would; a reader that does not keep up is
//! dropped with RESOURCE_EXHAUSTED. Every field is checked before anything is sent.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::PlatformDeps;
use super::errors::{self, PlatformError};
use super::pb::communication as pb;
use crate::clock::now_ms;
use crate::messages::{MAX_PAYLOAD_BYTES, Message, Recipient, SendError, Subscription};

#[derive(Clone)]
pub(crate) struct Communication {
    deps: PlatformDeps,
}

impl Communication {
    pub(crate) fn new(deps: PlatformDeps) -> Communication {
        Communication { deps }
    }

    /// Checks and sends one message; whether it was handed to a peer session (see the module).
    fn send(&self, message: pb::PeerMessage) -> Result<bool, PlatformError> {
        let recipient = check(&message)?;
        self.deps
            .messages
            .send(recipient, message.message_type, message.payload)
            .map_err(|e| match e {
                SendError::RateLimited => PlatformError::Exhausted(e.to_string()),
                SendError::TooLarge(len) => PlatformError::TooLong {
                    field: "payload",
                    len,
                    max: MAX_PAYLOAD_BYTES,
                },
            })
    }
}

/// A message's recipient, once every field a client sent is within bounds.
pub(crate) fn check(m: &pb::PeerMessage) -> Result<Recipient, PlatformError> {
    errors::bounded("sender_peer_id", &m.sender_peer_id)?;
    if m.recipient_peer_id.is_empty() {
        return Err(PlatformError::Missing {
            field: "recipient_peer_id",
        });
    }
    errors::bounded("recipient_peer_id", &m.recipient_peer_id)?;
    let recipient =
        Recipient::parse(&m.recipient_peer_id).ok_or_else(|| PlatformError::Invalid {
            field: "recipient_peer_id",
            problem: "neither \"*\" nor a peer ID (32 lower-case hex characters)".into(),
        })?;
    match pb::MessageType::try_from(m.message_type) {
        Ok(pb::MessageType::Unknown) => {
            return Err(PlatformError::Missing {
                field: "message_type",
            });
        }
        Ok(_) => {}
        Err(_) => {
            return Err(PlatformError::Invalid {
                field: "message_type",
                problem: format!("{} is not a message type", m.message_type),
            });
        }
    }
    if m.payload.len() > MAX_PAYLOAD_BYTES {
        return Err(PlatformError::TooLong {
            field: "payload",
            len: m.payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(recipient)
}

/// A delivered message as the platform reads it.
fn to_platform(m: &Message) -> pb::PeerMessage {
    pb::PeerMessage {
        sender_peer_id: m.origin.clone(),
        recipient_peer_id: m.recipient.as_str().to_string(),
        message_type: m.message_type,
        payload: m.payload.clone(),
        timestamp: m.timestamp_ms,
    }
}

/// Why the outgoing half of a `Stream` ends early (set by its incoming half).
type Ending = Arc<Mutex<Option<Status>>>;

/// The outgoing half of one `Stream`: delivered messages until the subscription is dropped
/// (too slow) or the incoming half ends it; the guard stops the incoming half when the client
/// goes away.
struct Outgoing {
    subscription: Subscription,
    ended: CancellationToken,
    ending: Ending,
    _stop_incoming: tokio_util::sync::DropGuard,
    done: bool,
}

async fn next_out(mut out: Outgoing) -> Option<(Result<pb::PeerMessage, Status>, Outgoing)> {
    if out.done {
        return None;
    }
    let item = tokio::select! {
        message = out.subscription.recv() => match message {
            Some(m) => Ok(to_platform(&m)),
            None if out.subscription.was_dropped() => Err(Status::resource_exhausted(
                "this stream did not read its messages fast enough and was dropped; open it again",
            )),
            None => Err(Status::unavailable("the node is shutting down")),
        },
        _ = out.ended.cancelled() => {
            let ending = out.ending.lock().unwrap_or_else(|p| p.into_inner()).take();
            Err(ending?)
        }
    };
    out.done = item.is_err();
    Some((item, out))
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<pb::PeerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_communication_server::PeerCommunication for Communication {
    async fn send_message(
        &self,
        request: Request<pb::PeerMessage>,
    ) -> Result<Response<pb::MessageAck>, Status> {
        let received = self.send(request.into_inner())?;
        Ok(Response::new(pb::MessageAck {
            received,
            timestamp: now_ms(),
        }))
    }

    type StreamStream = MessageStream;

    async fn stream(
        &self,
        request: Request<Streaming<pb::PeerMessage>>,
    ) -> Result<Response<MessageStream>, Status> {
        let subscription = self
            .deps
            .messages
            .subscribe()
            .map_err(|e| PlatformError::Exhausted(e.to_string()))?;
        let mut incoming = request.into_inner();
        let ended = CancellationToken::new();
        let ending = Ending::default();
        let (this, stop, why) = (self.clone(), ended.clone(), ending.clone());
        self.deps.tasks.spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => return,
                    next = incoming.message() => next,
                };
                match next {
                    Ok(Some(message)) => {
                        if let Err(refused) = this.send(message) {
                            *why.lock().unwrap_or_else(|p| p.into_inner()) = Some(refused.into());
                            stop.cancel();
                            return;
                        }
                    }
                    // The client sends no more; it still receives.
                    Ok(None) => return,
                    Err(_) => {
                        stop.cancel();
                        return;
                    }
                }
            }
        });
        let out = Outgoing {
            subscription,
            ended: ended.clone(),
            ending,
            _stop_incoming: ended.drop_guard(),
            done: false,
        };
        Ok(Response::new(Box::pin(futures::stream::unfold(
            out, next_out,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(recipient: &str, message_type: i32, payload: usize) -> pb::PeerMessage {
        pb::PeerMessage {
            sender_peer_id: "validator".into(),
            recipient_peer_id: recipient.into(),
            message_type,
            payload: vec![0; payload],
            timestamp: 1,
        }
    }

    #[test]
    fn every_field_is_checked() {
        let peer = "0123456789abcdef0123456789abcdef";
        assert_eq!(check(&message("*", 1, 10)).ok(), Some(Recipient::All));
        assert_eq!(
            check(&message(peer, 3, MAX_PAYLOAD_BYTES)).ok(),
            Some(Recipient::Peer(peer.into()))
        );
        for bad in [
            message("", 1, 1),
            message("someone", 1, 1),
            message(&"*".repeat(300), 1, 1),
            message("*", 0, 1),
            message("*", 99, 1),
            message("*", 1, MAX_PAYLOAD_BYTES + 1),
        ] {
            let status = Status::from(check(&bad).expect_err("refused"));
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
        let mut long_sender = message("*", 1, 1);
        long_sender.sender_peer_id = "x".repeat(1000);
        assert!(check(&long_sender).is_err());
    }
}
