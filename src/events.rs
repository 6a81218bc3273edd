//! The node's event bus: typed events (peers, bans, verification, subscriptions, dockets,
//! queue pressure, storage) published by the domain that owns each happening, kept in a
//! bounded ring for history and fanned out to live subscribers (`GET /api/events`, the
//! dashboard, `sorcha-peer events --follow`).
//!
//! Ground floor: every domain publishes here without importing anything above it. One
//! [`Events`] per node (no process global), so several nodes run in one test process.
//!
//! Bounds: the ring keeps the last [`EVENT_HISTORY`] events; each live subscriber has a
//! backlog of [`EVENT_BACKLOG`] events, and one that falls further behind skips ahead and is
//! told how many it missed ([`EventKind::Lagged`]) instead of holding memory for it.
//! Subscribers themselves are counted here and admitted by the admin API (`admin/events.rs`:
//! places per kind of client).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::clock::{now_ms, to_rfc3339};

/// Recent events kept for history and `?since=` replay.
pub const EVENT_HISTORY: usize = 1000;
/// Events one live subscriber may fall behind before it skips ahead (and gets `lagged`).
pub const EVENT_BACKLOG: usize = 256;
/// Throttle keys remembered; past this the throttle forgets and starts over (at worst one
/// extra event per key).
const MAX_THROTTLE_KEYS: usize = 4096;

/// One event: its sequence number (increasing by one per event of this node, from 1; it
/// starts again when the node restarts), when it happened and what happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// 0 for `lagged`, which is not part of the node's sequence (it is per subscriber).
    pub seq: u64,
    /// RFC 3339.
    pub time: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened. Serialised with a `type` tag and camelCase fields, e.g.
/// `{"seq":7,"time":"…","type":"peerBanned","target":"…","reason":"…","source":"manual",…}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum EventKind {
    /// A handshake completed and the peer is connected.
    PeerConnected {
        peer_id: String,
        address: String,
        /// `inbound` or `outbound`.
        direction: String,
    },
    /// A peer's session ended.
    PeerDisconnected {
        peer_id: String,
        reason: String,
        /// True when the session failed rather than closed in good order.
        failed: bool,
    },
    /// A ban was imposed: by the operator (`source` `manual`) or automatically (`automatic`,
    /// the reason says why).
    PeerBanned {
        target: String,
        /// `peer`, `ip` or `cidr`.
        kind: String,
        reason: String,
        source: String,
        expires_at: Option<String>,
        /// Known peers the ban covers.
        peer_ids: Vec<String>,
    },
    /// A ban ended: lifted by the operator, or run out (`expired`).
    PeerUnbanned { target: String, expired: bool },
    /// A peer served data that failed verification.
    VerificationFailed {
        peer_id: String,
        register_id: Option<String>,
        reason: String,
    },
    /// A subscription changed state (`subscribing`, `syncing`, `fully-replicated`, `active`,
    /// `error`).
    SubscriptionState {
        register_id: String,
        state: String,
        error: Option<String>,
    },
    /// A subscription stored dockets (throttled per register; the last one at the target is
    /// always sent).
    SubscriptionProgress {
        register_id: String,
        /// Docket number now held.
        height: u64,
        /// Best docket number seen among sources.
        target: Option<u64>,
        percent: f64,
        /// Transaction version now held.
        #[serde(default)]
        version: Option<u64>,
        /// Best transaction version seen among sources.
        #[serde(default)]
        target_version: Option<u64>,
    },
    /// This node (the origin) sealed a docket.
    DocketSealed {
        register_id: String,
        docket_number: u64,
        transactions: u64,
    },
    /// Dockets from peers were verified and stored (one event per stored batch).
    DocketReplicated {
        register_id: String,
        /// The new head's docket number.
        docket_number: u64,
        dockets: u64,
        transactions: u64,
    },
    /// A bounded queue is at its bound (`announcements`: the persisted announcement queue
    /// dropped its oldest entries; `peerSend`: a peer's session queue is full and a message
    /// was not sent).
    QueuePressure {
        queue: String,
        peer_id: Option<String>,
        depth: u64,
        limit: u64,
        dropped: u64,
    },
    /// Storage stopped accepting writes.
    StorageFailing { reason: String },
    /// Storage accepts writes again.
    StorageRecovered {
        failing_since: String,
        last_error: String,
    },
    /// This subscriber fell behind and skipped `missed` events (not part of the sequence).
    Lagged { missed: u64 },
}

impl EventKind {
    /// The `type` tag.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::PeerConnected { .. } => "peerConnected",
            EventKind::PeerDisconnected { .. } => "peerDisconnected",
            EventKind::PeerBanned { .. } => "peerBanned",
            EventKind::PeerUnbanned { .. } => "peerUnbanned",
            EventKind::VerificationFailed { .. } => "verificationFailed",
            EventKind::SubscriptionState { .. } => "subscriptionState",
            EventKind::SubscriptionProgress { .. } => "subscriptionProgress",
            EventKind::DocketSealed { .. } => "docketSealed",
            EventKind::DocketReplicated { .. } => "docketReplicated",
            EventKind::QueuePressure { .. } => "queuePressure",
            EventKind::StorageFailing { .. } => "storageFailing",
            EventKind::StorageRecovered { .. } => "storageRecovered",
            EventKind::Lagged { .. } => "lagged",
        }
    }

    /// One line for people (not escaped: the caller escapes before a terminal).
    pub fn summary(&self) -> String {
        self.summary_with(&|id| id.to_string())
    }

    /// [`EventKind::summary`] with peer IDs and ban targets written by `id` (e.g. shortened).
    pub fn summary_with(&self, id: &dyn Fn(&str) -> String) -> String {
        match self {
            EventKind::PeerConnected {
                peer_id,
                address,
                direction,
            } => format!("{} connected ({direction}, {address})", id(peer_id)),
            EventKind::PeerDisconnected {
                peer_id,
                reason,
                failed,
            } => {
                let how = if *failed { "failed" } else { "disconnected" };
                format!("{} {how}: {reason}", id(peer_id))
            }
            EventKind::PeerBanned {
                target,
                reason,
                source,
                expires_at,
                ..
            } => {
                let until = expires_at
                    .as_deref()
                    .map_or_else(|| "until unbanned".to_string(), |t| format!("until {t}"));
                format!("{} banned ({source}, {until}): {reason}", id(target))
            }
            EventKind::PeerUnbanned { target, expired } => {
                if *expired {
                    format!("ban on {} expired", id(target))
                } else {
                    format!("{} unbanned", id(target))
                }
            }
            EventKind::VerificationFailed {
                peer_id,
                register_id,
                reason,
            } => match register_id {
                Some(r) => format!("{} served bad data for {r}: {reason}", id(peer_id)),
                None => format!("{} served bad data: {reason}", id(peer_id)),
            },
            EventKind::SubscriptionState {
                register_id,
                state,
                error,
            } => match error {
                Some(e) => format!("{register_id} {state}: {e}"),
                None => format!("{register_id} {state}"),
            },
            EventKind::SubscriptionProgress {
                register_id,
                height,
                target,
                percent,
                version,
                target_version,
            } => {
                let dockets = match target {
                    Some(t) => format!("{register_id} docket {height} of {t} ({percent:.0}%)"),
                    None => format!("{register_id} docket {height}"),
                };
                match (version, target_version) {
                    (Some(v), Some(t)) => format!("{dockets}, transaction {v} of {t}"),
                    _ => dockets,
                }
            }
            EventKind::DocketSealed {
                register_id,
                docket_number,
                transactions,
            } => format!("{register_id} sealed docket {docket_number} ({transactions} tx)"),
            EventKind::DocketReplicated {
                register_id,
                docket_number,
                dockets,
                transactions,
            } => format!(
                "{register_id} replicated {dockets} docket(s) to {docket_number} ({transactions} tx)"
            ),
            EventKind::QueuePressure {
                queue,
                peer_id,
                depth,
                limit,
                dropped,
            } => {
                let whose = peer_id
                    .as_deref()
                    .map(|p| format!(" to {}", id(p)))
                    .unwrap_or_default();
                format!("{queue} queue{whose} at its bound ({depth}/{limit}, {dropped} dropped)")
            }
            EventKind::StorageFailing { reason } => format!("storage failing: {reason}"),
            EventKind::StorageRecovered {
                failing_since,
                last_error,
            } => format!("storage recovered (failing since {failing_since}: {last_error})"),
            EventKind::Lagged { missed } => format!("fell behind: missed {missed} event(s)"),
        }
    }
}

struct Inner {
    next_seq: u64,
    ring: VecDeque<Arc<Event>>,
    /// Last publication (ms) per throttle key.
    throttle: HashMap<String, i64>,
}

/// The event bus of one node.
pub struct Events {
    inner: Mutex<Inner>,
    sender: broadcast::Sender<Arc<Event>>,
    subscribers: Arc<AtomicUsize>,
    /// Cancelled when the node stops: every subscription ends.
    closed: CancellationToken,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    pub fn new() -> Events {
        let (sender, _) = broadcast::channel(EVENT_BACKLOG);
        Events {
            inner: Mutex::new(Inner {
                next_seq: 1,
                ring: VecDeque::with_capacity(EVENT_HISTORY),
                throttle: HashMap::new(),
            }),
            sender,
            subscribers: Arc::new(AtomicUsize::new(0)),
            closed: CancellationToken::new(),
        }
    }

    /// Ends every subscription (node shutdown: open streams must not hold the server up).
    pub fn close(&self) {
        self.closed.cancel();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain bookkeeping; a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes an event; returns its sequence number.
    pub fn publish(&self, kind: EventKind) -> u64 {
        let mut inner = self.lock();
        self.publish_locked(&mut inner, kind)
    }

    /// Publishes unless an event with the same `key` was published less than `every` ago.
    /// Returns whether it was published.
    pub fn publish_throttled(&self, key: &str, every: Duration, kind: EventKind) -> bool {
        let now = now_ms();
        let mut inner = self.lock();
        if let Some(last) = inner.throttle.get(key)
            && now - last < every.as_millis() as i64
        {
            return false;
        }
        if inner.throttle.len() >= MAX_THROTTLE_KEYS {
            inner.throttle.clear();
        }
        inner.throttle.insert(key.to_string(), now);
        self.publish_locked(&mut inner, kind);
        true
    }

    fn publish_locked(&self, inner: &mut Inner, kind: EventKind) -> u64 {
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let event = Arc::new(Event {
            seq,
            time: to_rfc3339(now_ms()),
            kind,
        });
        if inner.ring.len() >= EVENT_HISTORY {
            inner.ring.pop_front();
        }
        inner.ring.push_back(event.clone());
        // Sent under the lock, so live subscribers see the ring's order. No receiver is fine.
        let _ = self.sender.send(event);
        seq
    }

    /// The most recent events (at most `limit`), oldest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Event>> {
        let inner = self.lock();
        let skip = inner.ring.len().saturating_sub(limit);
        inner.ring.iter().skip(skip).cloned().collect()
    }

    /// Sequence number of the latest event (0 before the first).
    pub fn latest_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Live subscribers right now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Subscribes: the stream yields the events after `since` still in the ring (all of the
    /// ring when `since` is `None` or names a sequence number this node has not reached, e.g.
    /// one from before a restart; a `lagged` event first when some after `since` have left
    /// the ring), then live events. Counted in [`Events::subscribers`] until dropped; the
    /// caller decides who may subscribe.
    pub fn subscribe(&self, since: Option<u64>) -> Subscription {
        self.subscribers.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.subscribers.clone());
        // Ring snapshot and receiver under one lock: no event is missed or seen twice.
        let inner = self.lock();
        let receiver = self.sender.subscribe();
        let latest = inner.next_seq - 1;
        let since = since.filter(|s| *s <= latest);
        let mut backlog: VecDeque<Event> = VecDeque::new();
        if let Some(since) = since {
            let oldest = inner.ring.front().map_or(latest + 1, |e| e.seq);
            if since + 1 < oldest {
                backlog.push_back(lagged(oldest - since - 1));
            }
        }
        backlog.extend(
            inner
                .ring
                .iter()
                .filter(|e| since.is_none_or(|s| e.seq > s))
                .map(|e| (**e).clone()),
        );
        drop(inner);
        Subscription {
            backlog,
            receiver,
            closed: self.closed.clone(),
            _slot: slot,
        }
    }
}

fn lagged(missed: u64) -> Event {
    Event {
        seq: 0,
        time: to_rfc3339(now_ms()),
        kind: EventKind::Lagged { missed },
    }
}

/// Uncounts a subscriber when dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One subscriber's view: replayed events, then live ones.
pub struct Subscription {
    backlog: VecDeque<Event>,
    receiver: broadcast::Receiver<Arc<Event>>,
    closed: CancellationToken,
    _slot: Slot,
}

impl Subscription {
    /// The next event; `None` once the bus is closed (node stopping).
    pub async fn next(&mut self) -> Option<Event> {
        if self.closed.is_cancelled() {
            return None;
        }
        if let Some(event) = self.backlog.pop_front() {
            return Some(event);
        }
        let received = tokio::select! {
            _ = self.closed.cancelled() => return None,
            received = self.receiver.recv() => received,
        };
        match received {
            Ok(event) => Some((*event).clone()),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(lagged(missed)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The subscription as a stream (ends when the bus is gone).
    pub fn into_stream(self) -> impl Stream<Item = Event> + Send + 'static {
        futures::stream::unfold(self, |mut sub| async move {
            let event = sub.next().await?;
            Some((event, sub))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unbanned(n: u64) -> EventKind {
        EventKind::PeerUnbanned {
            target: format!("10.0.0.{n}"),
            expired: false,
        }
    }

    #[test]
    fn serialises_tagged_camel_case_with_seq_and_time() {
        let events = Events::new();
        events.publish(EventKind::PeerDisconnected {
            peer_id: "ab".into(),
            reason: "bye".into(),
            failed: false,
        });
        let event = &events.recent(10)[0];
        let json = serde_json::to_value(&**event).unwrap();
        assert_eq!(json["type"], "peerDisconnected");
        assert_eq!(json["peerId"], "ab");
        assert_eq!(json["seq"], 1);
        assert!(crate::clock::from_rfc3339(json["time"].as_str().unwrap()).is_some());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(&back, &**event);
    }

    #[test]
    fn the_ring_keeps_the_latest_history_only() {
        let events = Events::new();
        for n in 0..(EVENT_HISTORY as u64 + 10) {
            events.publish(unbanned(n));
        }
        let recent = events.recent(usize::MAX);
        assert_eq!(recent.len(), EVENT_HISTORY);
        assert_eq!(recent[0].seq, 11);
        assert_eq!(recent.last().unwrap().seq, EVENT_HISTORY as u64 + 10);
    }

    #[tokio::test]
    async fn since_replays_later_events_and_reports_what_left_the_ring() {
        let events = Events::new();
        for n in 0..5 {
            events.publish(unbanned(n));
        }
        let mut sub = events.subscribe(Some(3));
        assert_eq!(sub.next().await.unwrap().seq, 4);
        assert_eq!(sub.next().await.unwrap().seq, 5);
        events.publish(unbanned(9));
        assert_eq!(sub.next().await.unwrap().seq, 6);

        for n in 0..(EVENT_HISTORY as u64) {
            events.publish(unbanned(n));
        }
        // Events 2..=6 have left the ring.
        let mut old = events.subscribe(Some(1));
        let first = old.next().await.unwrap();
        assert_eq!(first.kind, EventKind::Lagged { missed: 5 });
        assert_eq!(old.next().await.unwrap().seq, 7);
        // A sequence number from a previous run replays the whole ring.
        let mut future = events.subscribe(Some(1_000_000));
        assert_eq!(future.next().await.unwrap().seq, 7);
    }

    #[tokio::test]
    async fn a_slow_subscriber_skips_ahead_and_is_told_how_many_it_missed() {
        let events = Events::new();
        let mut sub = events.subscribe(None);
        let extra = 40u64;
        for n in 0..(EVENT_BACKLOG as u64 + extra) {
            events.publish(unbanned(n));
        }
        let first = sub.next().await.unwrap();
        assert_eq!(first.kind, EventKind::Lagged { missed: extra });
        assert_eq!(sub.next().await.unwrap().seq, extra + 1);
    }

    #[tokio::test]
    async fn closing_ends_every_subscription() {
        let events = Events::new();
        let mut sub = events.subscribe(None);
        events.close();
        assert_eq!(sub.next().await, None);
    }

    #[test]
    fn subscribers_are_counted_until_dropped() {
        let events = Events::new();
        let a = events.subscribe(None);
        let _b = events.subscribe(None);
        assert_eq!(events.subscribers(), 2);
        drop(a);
        assert_eq!(events.subscribers(), 1);
    }

    #[test]
    fn throttled_events_are_published_at_most_once_per_period_and_key() {
        let events = Events::new();
        let every = Duration::from_secs(60);
        assert!(events.publish_throttled("a", every, unbanned(1)));
        assert!(!events.publish_throttled("a", every, unbanned(2)));
        assert!(events.publish_throttled("b", every, unbanned(3)));
        assert_eq!(events.latest_seq(), 2);
    }
}
