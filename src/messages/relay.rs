//! The relay rules, without the network: what a received message is (dropped, delivered here,
//! forwarded) and what a locally sent one is stamped with. Duplicates are recognised by ID in a
//! bounded set; every sending peer and every origin has token buckets (messages, and bytes
//! for origins); the hop limit ends a message's travel however the overlay is shaped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use ed25519_dalek::SigningKey;

use super::{
    MAX_AGE_MS, MAX_HOPS, MAX_PAYLOAD_BYTES, MAX_SOURCES, Message, ORIGIN_BYTES_RATE, ORIGIN_RATE,
    PEER_RATE, Recipient, SEEN_CAPACITY,
};

/// Why a received message went no further. The label of its metric is [`Dropped::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Seen already (or this node's own, come back).
    Duplicate,
    /// Older than [`MAX_AGE_MS`], or that far in the future.
    Stale,
    /// The sending peer is over its rate.
    PeerRate,
    /// The origin is over its rate (messages or bytes).
    OriginRate,
    /// Addressed to another node: direct messages are sent only to connected peers.
    Misdirected,
    /// Sent with no hops left.
    HopLimit,
    /// Not signed by the node it names as its origin.
    Forged,
}

impl Dropped {
    pub fn reason(self) -> &'static str {
        match self {
            Dropped::Duplicate => "duplicate",
            Dropped::Stale => "stale",
            Dropped::PeerRate => "peer_rate",
            Dropped::OriginRate => "origin_rate",
            Dropped::Misdirected => "misdirected",
            Dropped::HopLimit => "hop_limit",
            Dropped::Forged => "forged",
        }
    }
}

/// What to do with a message that was not dropped.
#[derive(Debug, PartialEq)]
pub struct Verdict {
    /// Hand it to this node's platform subscribers.
    pub deliver: bool,
    /// Send it (with one hop fewer) to the other connected peers.
    pub forward: bool,
}

/// A token bucket: `rate` a second, at most `burst` saved, taken all or nothing.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, rate: f64, burst: f64) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(burst);
        self.last = now;
    }
}

/// An origin's buckets: messages and payload bytes.
struct OriginBuckets {
    messages: Bucket,
    bytes: Bucket,
}

/// The relay's memory: seen IDs, buckets per sending peer and per origin, the next nonce.
pub struct Relay {
    key: SigningKey,
    local: String,
    seen: HashSet<[u8; 32]>,
    seen_order: VecDeque<[u8; 32]>,
    peers: HashMap<String, Bucket>,
    origins: HashMap<String, OriginBuckets>,
    nonce: u64,
}

impl Relay {
    /// The rules for the node whose key is `key`.
    pub fn new(key: SigningKey) -> Relay {
        Relay {
            local: crate::identity::peer_id_for(key.verifying_key().as_bytes()),
            key,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            peers: HashMap::new(),
            origins: HashMap::new(),
            // Random start: a restarted node does not repeat the IDs of its earlier messages.
            nonce: rand::random(),
        }
    }

    /// Stamps a message this node's platform sends, if its own origin rate allows it.
    pub fn originate(
        &mut self,
        recipient: Recipient,
        message_type: i32,
        payload: Vec<u8>,
        now_ms: i64,
    ) -> Option<Message> {
        let local = self.local.clone();
        if !self.origin_allows(&local, payload.len()) {
            return None;
        }
        self.nonce = self.nonce.wrapping_add(1);
        let mut message = Message {
            origin: local,
            nonce: self.nonce,
            recipient,
            message_type,
            payload,
            timestamp_ms: now_ms,
            hops_left: MAX_HOPS,
            origin_key: [0; 32],
            signature: Vec::new(),
        };
        message.sign(&self.key);
        self.remember(message.id());
        Some(message)
    }

    /// The rules for a message received from the connected peer `from`. When it is to be
    /// forwarded its `hops_left` is counted down here.
    pub fn receive(
        &mut self,
        from: &str,
        message: &mut Message,
        now_ms: i64,
    ) -> Result<Verdict, Dropped> {
        if !self.peer_allows(from) {
            return Err(Dropped::PeerRate);
        }
        // abs_diff: the timestamp is the sender's, any i64; a difference can overflow i64.
        if now_ms.abs_diff(message.timestamp_ms) > MAX_AGE_MS.unsigned_abs() {
            return Err(Dropped::Stale);
        }
        let id = message.id();
        if self.seen.contains(&id) || message.origin == self.local {
            return Err(Dropped::Duplicate);
        }
        if message.hops_left == 0 {
            return Err(Dropped::HopLimit);
        }
        let for_here = match &message.recipient {
            Recipient::All => false,
            Recipient::Peer(id) if *id == self.local => true,
            Recipient::Peer(_) => return Err(Dropped::Misdirected),
        };
        // Checked once the cheap rules passed; a forgery is not remembered, so it cannot stand
        // in for the real message.
        if !message.is_signed_by_origin(&id) {
            return Err(Dropped::Forged);
        }
        // Not remembered when over the rate: a copy from another path may still come in time.
        if !self.origin_allows(&message.origin, message.payload.len()) {
            return Err(Dropped::OriginRate);
        }
        self.remember(id);
        let hops = message.hops_left.min(MAX_HOPS) - 1;
        let forward = !for_here && hops > 0;
        if forward {
            message.hops_left = hops;
        }
        Ok(Verdict {
            deliver: true,
            forward,
        })
    }

    fn remember(&mut self, id: [u8; 32]) {
        if !self.seen.insert(id) {
            return;
        }
        self.seen_order.push_back(id);
        while self.seen_order.len() > SEEN_CAPACITY {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    fn peer_allows(&mut self, peer: &str) -> bool {
        if !self.peers.contains_key(peer) && !make_room(&mut self.peers, |b| b.last) {
            return false;
        }
        let bucket = self
            .peers
            .entry(peer.to_string())
            .or_insert_with(|| Bucket::full(PEER_RATE * 2.0));
        bucket.refill(PEER_RATE, PEER_RATE * 2.0);
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }

    fn origin_allows(&mut self, origin: &str, bytes: usize) -> bool {
        if !self.origins.contains_key(origin) && !make_room(&mut self.origins, |b| b.messages.last)
        {
            return false;
        }
        let b = self
            .origins
            .entry(origin.to_string())
            .or_insert_with(|| OriginBuckets {
                messages: Bucket::full(ORIGIN_RATE * 2.0),
                bytes: Bucket::full(ORIGIN_BYTES_RATE * 2.0),
            });
        b.messages.refill(ORIGIN_RATE, ORIGIN_RATE * 2.0);
        b.bytes.refill(ORIGIN_BYTES_RATE, ORIGIN_BYTES_RATE * 2.0);
        let bytes = bytes as f64;
        if b.messages.tokens < 1.0 || b.bytes.tokens < bytes {
            return false;
        }
        b.messages.tokens -= 1.0;
        b.bytes.tokens -= bytes;
        true
    }
}

/// Room for one more source in `map` (at most [`MAX_SOURCES`]): buckets idle long enough to
/// have filled up again are forgotten first. False when every one is still in use.
fn make_room<T>(map: &mut HashMap<String, T>, last: impl Fn(&T) -> Instant) -> bool {
    if map.len() < MAX_SOURCES {
        return true;
    }
    map.retain(|_, b| last(b).elapsed().as_secs() < super::SOURCE_IDLE_SECS);
    map.len() < MAX_SOURCES
}

/// Whether a payload's size is one the overlay carries.
pub fn payload_fits(len: usize) -> bool {
    len <= MAX_PAYLOAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u8 = 1;
    const B: u8 = 2;
    const C: u8 = 3;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn id(n: u8) -> String {
        crate::identity::peer_id_for(key(n).verifying_key().as_bytes())
    }

    fn relay(n: u8) -> Relay {
        Relay::new(key(n))
    }

    fn from_a(relay_a: &mut Relay, recipient: Recipient, now: i64) -> Message {
        relay_a
            .originate(recipient, 1, b"docket".to_vec(), now)
            .expect("within the rate")
    }

    #[test]
    fn a_broadcast_is_delivered_and_forwarded_once_with_one_hop_fewer() {
        let now = 1_000_000;
        let mut a = relay(A);
        let mut b = relay(B);
        let original = from_a(&mut a, Recipient::All, now);
        assert_eq!(original.hops_left, MAX_HOPS);
        let mut m = original.clone();
        let verdict = b.receive(&id(A), &mut m, now).expect("new");
        assert_eq!(
            verdict,
            Verdict {
                deliver: true,
                forward: true
            }
        );
        assert_eq!(m.hops_left, MAX_HOPS - 1);
        assert_eq!(m.id(), original.id(), "the hop count is not part of the ID");
        // The same message by another path, and back at its origin: duplicates.
        assert_eq!(
            b.receive(&id(C), &mut m.clone(), now),
            Err(Dropped::Duplicate)
        );
        assert_eq!(a.receive(&id(B), &mut m, now), Err(Dropped::Duplicate));
        // The same payload sent again is another message.
        let mut again = from_a(&mut a, Recipient::All, now);
        assert_ne!(again.id(), original.id());
        assert!(b.receive(&id(A), &mut again, now).is_ok());
    }

    /// A timestamp at the ends of i64 (crafted for the `peer_frame` fuzz target) made
    /// `now - timestamp` overflow: a panic in debug builds, and in release one timestamp
    /// wrapped to a difference that passed as fresh.
    #[test]
    fn a_timestamp_at_the_ends_of_time_is_stale() {
        let now: i64 = 1_800_000_000_000;
        for timestamp in [i64::MIN, i64::MAX, now.wrapping_add(i64::MIN)] {
            let mut a = relay(A);
            let mut m = Message {
                timestamp_ms: timestamp,
                ..from_a(&mut a, Recipient::All, now)
            };
            m.sign(&key(A));
            assert_eq!(
                relay(B).receive(&id(A), &mut m, now),
                Err(Dropped::Stale),
                "{timestamp}"
            );
        }
    }

    #[test]
    fn hops_run_out() {
        let now = 5_000;
        let mut a = relay(A);
        let mut m = from_a(&mut a, Recipient::All, now);
        m.hops_left = 1;
        let verdict = relay(B).receive(&id(A), &mut m.clone(), now);
        assert_eq!(
            verdict,
            Ok(Verdict {
                deliver: true,
                forward: false
            }),
            "the last hop is not forwarded"
        );
        m.hops_left = 0;
        let verdict = relay(C).receive(&id(B), &mut m.clone(), now);
        assert_eq!(verdict, Err(Dropped::HopLimit));
        // A claim of more hops than the limit is cut to it.
        m.hops_left = 1000;
        assert!(relay(C).receive(&id(B), &mut m, now).is_ok());
        assert_eq!(m.hops_left, MAX_HOPS - 1);
    }

    #[test]
    fn direct_messages_stop_at_their_recipient_and_stale_ones_anywhere() {
        let now = 10_000_000;
        let mut a = relay(A);
        let to_b = from_a(&mut a, Recipient::Peer(id(B)), now);
        let verdict = relay(B).receive(&id(A), &mut to_b.clone(), now);
        assert_eq!(
            verdict,
            Ok(Verdict {
                deliver: true,
                forward: false
            })
        );
        let verdict = relay(C).receive(&id(A), &mut to_b.clone(), now);
        assert_eq!(verdict, Err(Dropped::Misdirected));
        let mut old = from_a(&mut a, Recipient::All, now - MAX_AGE_MS - 1);
        let verdict = relay(B).receive(&id(A), &mut old, now);
        assert_eq!(verdict, Err(Dropped::Stale));
        let mut future = from_a(&mut a, Recipient::All, now + MAX_AGE_MS + 1);
        let verdict = relay(B).receive(&id(A), &mut future, now);
        assert_eq!(verdict, Err(Dropped::Stale));
    }

    /// The first attempt refused, among `2 * burst` (buckets refill while the loop runs, so
    /// a refusal comes at `burst` or a little after, never before).
    fn first_refused(burst: usize, mut attempt: impl FnMut(usize) -> bool) -> Option<usize> {
        (0..2 * burst).find(|&i| !attempt(i))
    }

    #[test]
    fn origins_and_sending_peers_are_held_to_their_rates() {
        let now = 1_000;
        let mut a = relay(A);
        let burst = (ORIGIN_RATE * 2.0) as usize;
        let refused = first_refused(burst, |_| {
            a.originate(Recipient::All, 1, vec![0], now).is_some()
        });
        assert!(refused.is_some_and(|i| i >= burst), "{refused:?}");

        // Bytes too: a burst's worth of payload bytes, then refused.
        let mut c = relay(C);
        let big = MAX_PAYLOAD_BYTES;
        let fits = (ORIGIN_BYTES_RATE * 2.0) as usize / big;
        let refused = first_refused(fits, |_| {
            c.originate(Recipient::All, 1, vec![0; big], now).is_some()
        });
        assert!(refused.is_some_and(|i| i >= fits), "{refused:?}");

        // A peer relaying many origins' messages is held to its own rate (checked before
        // anything else, so even unsigned ones count).
        let mut b = relay(B);
        let peer_burst = (PEER_RATE * 2.0) as usize;
        let refused = first_refused(peer_burst, |i| {
            let mut m = Message {
                origin: format!("{i:032x}"),
                nonce: 1,
                recipient: Recipient::All,
                message_type: 1,
                payload: vec![1],
                timestamp_ms: now,
                hops_left: 3,
                origin_key: [0; 32],
                signature: Vec::new(),
            };
            b.receive(&id(C), &mut m, now) != Err(Dropped::PeerRate)
        });
        assert!(refused.is_some_and(|i| i >= peer_burst), "{refused:?}");
    }

    #[test]
    fn only_the_origin_can_sign_for_itself() {
        let now = 77_000;
        let genuine = from_a(&mut relay(A), Recipient::All, now);
        // Changed on the way: the signature no longer matches.
        let mut altered = genuine.clone();
        altered.payload = b"another docket".to_vec();
        // Re-signed by C but still naming A: the key is not A's.
        let mut claimed = genuine.clone();
        let signed_by_c = from_a(&mut relay(C), Recipient::All, now);
        claimed.origin_key = signed_by_c.origin_key;
        claimed.signature = signed_by_c.signature;
        let mut b = relay(B);
        for mut forged in [altered, claimed] {
            assert_eq!(b.receive(&id(C), &mut forged, now), Err(Dropped::Forged));
        }
        // A forgery is not remembered: the genuine message still goes through.
        assert!(b.receive(&id(A), &mut genuine.clone(), now).is_ok());
        assert_eq!(genuine.origin, id(A));
    }

    #[test]
    fn the_seen_set_is_bounded() {
        let mut r = relay(A);
        for i in 0..(SEEN_CAPACITY + 10) as u64 {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&i.to_le_bytes());
            r.remember(id);
        }
        assert_eq!(r.seen.len(), SEEN_CAPACITY);
        assert_eq!(r.seen_order.len(), SEEN_CAPACITY);
        assert!(
            !r.seen.contains(&[0u8; 32]),
            "the oldest is forgotten first"
        );
    }
}
