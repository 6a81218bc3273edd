//! Platform messages across the overlay (`PeerCommunication`): what the platform's Validator
//! sends to every node (`"*"`: proposed and confirmed dockets, behaviour reports) or to one
//! peer, carried as messages, never stored.
//!
//! A broadcast floods: each node delivers it to its local listeners once and forwards it once
//! to its other connected peers, until its hops run out; duplicates are known by ID, and the
//! origin node signs each message so no relay speaks for another node. Every
//! sending peer and every origin is held to a rate, payloads to a size. A direct message goes
//! only to a connected peer, on its session. The rules are in [`relay`] (pure), the local
//! listeners in [`subscribers`]; this module wires them to the peer sessions and the metrics.
//! The platform edge (`platform::communication`) only checks and translates.

pub mod relay;
pub(crate) mod subscribers;

use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::now_ms;
use crate::identity::Identity;
use crate::peers::PeerManager;
use crate::protocol::PeerMessage;
pub use crate::protocol::{BROADCAST, MAX_PAYLOAD_BYTES, PlatformMessage as Message, Recipient};
use crate::telemetry::Metrics;
use relay::{Dropped, Relay};
use subscribers::Subscribers;
pub use subscribers::{Full, Subscription};

/// Hops a broadcast may travel: enough for any overlay this network builds (peers keep several
/// connections), small enough that a loop ends quickly.
pub const MAX_HOPS: u32 = 8;
/// A message older than this (or this far ahead of the clock) is dropped, so a replay finds
/// its ID still remembered or is refused for its age.
pub const MAX_AGE_MS: i64 = 2 * 60 * 1000;
/// Message IDs remembered (32 bytes each, twice: about 4 MiB).
pub const SEEN_CAPACITY: usize = 65_536;
/// Messages a second one origin may send, across the overlay (twice that in a burst).
pub const ORIGIN_RATE: f64 = 100.0;
/// Payload bytes a second one origin may send (twice that in a burst).
pub const ORIGIN_BYTES_RATE: f64 = 4.0 * 1024.0 * 1024.0;
/// Messages a second one connected peer may hand this node, whatever their origin.
pub const PEER_RATE: f64 = 500.0;
/// Origins and sending peers whose buckets are kept at once (each map).
pub const MAX_SOURCES: usize = 4096;
/// A bucket idle this long is full again, and may be forgotten.
pub const SOURCE_IDLE_SECS: u64 = 60;
/// Messages queued for one local listener before it counts as too slow and is dropped.
pub const SUBSCRIBER_QUEUE: usize = 256;
/// Local listeners (`Stream` calls) at once.
pub const MAX_SUBSCRIBERS: usize = 16;
/// A message this node's platform may not send now.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(
        "this node sends at most {ORIGIN_RATE} messages and {} KiB of payload a second; try again shortly",
        ORIGIN_BYTES_RATE as u64 / 1024
    )]
    RateLimited,
    #[error("the payload is {0} bytes; at most {MAX_PAYLOAD_BYTES} are carried")]
    TooLarge(usize),
}

/// The messaging service of one node.
pub struct Messages {
    local: String,
    peers: Arc<PeerManager>,
    metrics: Arc<Metrics>,
    relay: Mutex<Relay>,
    subscribers: Mutex<Subscribers>,
}

impl Messages {
    pub fn new(
        peers: Arc<PeerManager>,
        identity: &Identity,
        metrics: Arc<Metrics>,
    ) -> Arc<Messages> {
        let local = identity.peer_id().to_string();
        Arc::new(Messages {
            relay: Mutex::new(Relay::new(identity.signing_key().clone())),
            local,
            peers,
            metrics,
            subscribers: Mutex::default(),
        })
    }

    fn relay(&self) -> MutexGuard<'_, Relay> {
        self.relay.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subscribers(&self) -> MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A local listener for the messages addressed to this node or to every node.
    pub fn subscribe(&self) -> Result<Subscription, Full> {
        self.subscribers().subscribe().inspect_err(|_| {
            self.metrics.limit_hit("platform_message_streams");
        })
    }

    /// Sends what this node's platform sends. `Ok(true)` when it was handed to at least one
    /// peer session (for a broadcast, to each connected peer; for a peer ID, to that peer's
    /// session) or, addressed to this node, to a local listener. It is not an acknowledgement
    /// from the other end.
    pub fn send(
        &self,
        recipient: Recipient,
        message_type: i32,
        payload: Vec<u8>,
    ) -> Result<bool, SendError> {
        if !relay::payload_fits(payload.len()) {
            return Err(SendError::TooLarge(payload.len()));
        }
        let peer = match &recipient {
            Recipient::Peer(id)
                if *id != self.local && !self.peers.message_carriers().contains(id) =>
            {
                // Not connected (or an older node): nothing is sent, nor counted in the rate.
                return Ok(false);
            }
            Recipient::Peer(id) => Some(id.clone()),
            Recipient::All => None,
        };
        let Some(message) = self
            .relay()
            .originate(recipient, message_type, payload, now_ms())
        else {
            self.dropped(Dropped::OriginRate);
            return Err(SendError::RateLimited);
        };
        let message = Arc::new(message);
        Ok(match peer {
            Some(id) if id == self.local => self.deliver(&message) > 0,
            Some(id) => self.send_to(&id, &message),
            None => self.forward(&message, None) > 0,
        })
    }

    /// A message a connected peer sent: dropped, or delivered here and forwarded.
    pub fn on_peer_message(&self, from: &str, mut message: Message) {
        let verdict = self.relay().receive(from, &mut message, now_ms());
        match verdict {
            Err(dropped) => self.dropped(dropped),
            Ok(verdict) => {
                let message = Arc::new(message);
                if verdict.deliver {
                    self.deliver(&message);
                }
                if verdict.forward {
                    self.forward(&message, Some(from));
                }
            }
        }
    }

    /// A frame a peer sent that is not a message (bad size, recipient or origin).
    pub fn malformed(&self) {
        self.count_drop("malformed");
    }

    fn dropped(&self, why: Dropped) {
        self.count_drop(why.reason());
        if matches!(why, Dropped::OriginRate | Dropped::PeerRate) {
            self.metrics.limit_hit("platform_message_rate");
        }
    }

    fn count_drop(&self, reason: &'static str) {
        self.metrics
            .messages_dropped
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    fn deliver(&self, message: &Arc<Message>) -> usize {
        let (delivered, slow) = self.subscribers().deliver(message);
        self.metrics.messages_delivered.inc_by(delivered as u64);
        if slow > 0 {
            self.metrics
                .messages_dropped
                .get_or_create(&vec![("reason", "slow_reader")])
                .inc_by(slow as u64);
            self.metrics.limit_hit("platform_message_stream_queue");
            tracing::warn!(
                listeners = slow,
                "platform message stream dropped: its reader did not keep up"
            );
        }
        delivered
    }

    fn send_to(&self, peer: &str, message: &Arc<Message>) -> bool {
        let sent = self
            .peers
            .send(peer, PeerMessage::Platform(message.clone()));
        if sent {
            self.metrics.messages_sent.inc();
        }
        sent
    }

    /// Sends to every connected peer that carries platform messages but `from` and the
    /// origin; returns how many took it.
    fn forward(&self, message: &Arc<Message>, from: Option<&str>) -> usize {
        self.peers
            .message_carriers()
            .iter()
            .filter(|id| Some(id.as_str()) != from && **id != message.origin)
            .filter(|id| self.send_to(id, message))
            .count()
    }
}
