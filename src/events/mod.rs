//! The node's event bus: typed events (peers, bans, verification, subscriptions, dockets,
//! queue pressure, storage) published by the domain that owns each happening, kept in a
//! bounded history and fanned out to live subscribers (`GET /api/events`, the dashboard,
//! `sorcha-peer events --follow`), each of which may ask for some types or one peer only
//! ([`EventFilter`]).
//!
//! Ground floor: every domain publishes here without importing anything above it. One
//! [`Events`] per node (no process global), so several nodes run in one test process.
//!
//! Bounds: the history is two rings, one per [`EventClass`], so that replication progress
//! (many events, stale in seconds) never pushes a ban or a disconnection out: the audit ring
//! keeps the last `event_history` events (default [`EVENT_HISTORY`]), the progress ring the
//! last [`PROGRESS_HISTORY`]. Sequence numbers are shared, and replay merges the two in order.
//! Each live subscriber has a backlog of [`EVENT_BACKLOG`] events, and one that falls further behind skips ahead and is
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

mod filter;
mod kind;

pub use filter::{EventFilter, type_choices};
pub use kind::{EVENT_TYPES, EventClass, EventKind};

/// Audit events kept for history and `?since=` replay, unless `event_history` says otherwise.
pub const EVENT_HISTORY: usize = 1000;
/// Progress events kept for history and replay (the latest progress is what matters).
pub const PROGRESS_HISTORY: usize = 200;
/// Events one live subscriber may fall behind before it skips ahead (and gets `lagged`).
pub const EVENT_BACKLOG: usize = 256;
/// Throttle keys remembered; past this the throttle forgets and starts over (at worst one
/// extra event per key).
const MAX_THROTTLE_KEYS: usize = 4096;

/// One event: its sequence number (increasing by one per event of this node, from 1; it
/// starts again when the node restarts), when it happened and what happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// 0 for `lagged`, which is not part of the node's sequence (it is per subscriber).
    pub seq: u64,
    /// RFC 3339.
    pub time: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

struct Inner {
    next_seq: u64,
    /// Audit events, oldest first, at most `audit_limit`.
    audit: VecDeque<Arc<Event>>,
    audit_limit: usize,
    /// Progress events, oldest first, at most [`PROGRESS_HISTORY`].
    progress: VecDeque<Arc<Event>>,
    /// Last publication (ms) per throttle key.
    throttle: HashMap<String, i64>,
}

impl Inner {
    /// The events of both rings that `keep` lets through, oldest first.
    fn history(&self, keep: impl Fn(&Event) -> bool) -> Vec<Arc<Event>> {
        let mut events: Vec<Arc<Event>> = self
            .audit
            .iter()
            .chain(self.progress.iter())
            .filter(|e| keep(e))
            .cloned()
            .collect();
        events.sort_by_key(|e| e.seq);
        events
    }
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
        Events::with_history(EVENT_HISTORY)
    }

    /// A bus keeping the last `audit` audit events (`event_history`, at least 1).
    pub fn with_history(audit: usize) -> Events {
        let (sender, _) = broadcast::channel(EVENT_BACKLOG);
        Events {
            inner: Mutex::new(Inner {
                next_seq: 1,
                audit: VecDeque::new(),
                audit_limit: audit.max(1),
                progress: VecDeque::new(),
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
        let (ring, limit) = match event.kind.class() {
            EventClass::Audit => (&mut inner.audit, inner.audit_limit),
            EventClass::Progress => (&mut inner.progress, PROGRESS_HISTORY),
        };
        while ring.len() >= limit {
            ring.pop_front();
        }
        ring.push_back(event.clone());
        // Sent under the lock, so live subscribers see the ring's order. No receiver is fine.
        let _ = self.sender.send(event);
        seq
    }

    /// The most recent events (at most `limit`), oldest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Event>> {
        self.recent_matching(limit, &EventFilter::default(), None)
    }

    /// The most recent events that `filter` lets through and that came after `since` (at
    /// most `limit`), oldest first.
    pub fn recent_matching(
        &self,
        limit: usize,
        filter: &EventFilter,
        since: Option<u64>,
    ) -> Vec<Arc<Event>> {
        let inner = self.lock();
        let mut events = inner.history(|e| since.is_none_or(|s| e.seq > s) && filter.matches(e));
        let skip = events.len().saturating_sub(limit);
        events.drain(..skip);
        events
    }

    /// The most events the history holds (both classes).
    pub fn capacity(&self) -> usize {
        self.lock().audit_limit + PROGRESS_HISTORY
    }

    /// Sequence number of the latest event (0 before the first).
    pub fn latest_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Live subscribers right now.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Subscribes: the stream yields the events after `since` still in the history (all of
    /// it when `since` is `None` or names a sequence number this node has not reached, e.g.
    /// one from before a restart; a `lagged` event first when some after `since` have left
    /// the history), then live events. Counted in [`Events::subscribers`] until dropped; the
    /// caller decides who may subscribe.
    pub fn subscribe(&self, since: Option<u64>) -> Subscription {
        self.subscribe_matching(since, EventFilter::default())
    }

    /// [`Events::subscribe`] to the events `filter` lets through (and `lagged` notices).
    pub fn subscribe_matching(&self, since: Option<u64>, filter: EventFilter) -> Subscription {
        self.subscribers.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.subscribers.clone());
        // Ring snapshot and receiver under one lock: no event is missed or seen twice.
        let inner = self.lock();
        let receiver = self.sender.subscribe();
        let latest = inner.next_seq - 1;
        let since = since.filter(|s| *s <= latest);
        let mut backlog: VecDeque<Event> = VecDeque::new();
        if let Some(since) = since {
            // Every event after `since` went into one ring; those no ring holds have left.
            let held = inner.history(|e| e.seq > since).len() as u64;
            let missed = (latest - since).saturating_sub(held);
            if missed > 0 {
                backlog.push_back(lagged(missed));
            }
        }
        backlog.extend(
            inner
                .history(|e| since.is_none_or(|s| e.seq > s) && filter.matches(e))
                .iter()
                .map(|e| (**e).clone()),
        );
        drop(inner);
        Subscription {
            backlog,
            filter,
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
    /// Live events it lets through are sent on (the backlog was filtered already).
    filter: EventFilter,
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
        loop {
            let received = tokio::select! {
                _ = self.closed.cancelled() => return None,
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(event) if self.filter.matches(&event) => return Some((*event).clone()),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => return Some(lagged(missed)),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
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

    fn progress(height: u64) -> EventKind {
        EventKind::SubscriptionProgress {
            register_id: "orders".into(),
            height,
            target: Some(1_000_000),
            percent: 0.0,
            version: None,
            target_version: None,
        }
    }

    #[tokio::test]
    async fn progress_never_pushes_audit_events_out_of_the_history() {
        let events = Events::with_history(50);
        events.publish(unbanned(1));
        for h in 0..(PROGRESS_HISTORY as u64 * 10) {
            events.publish(progress(h));
        }
        let recent = events.recent(usize::MAX);
        assert_eq!(recent.len(), 1 + PROGRESS_HISTORY);
        assert_eq!(recent[0].seq, 1, "the ban event is still there");
        assert!(recent.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
        let audit = EventFilter::default().with_types(["audit"]).unwrap();
        let only = events.recent_matching(10, &audit, None);
        assert_eq!(only.len(), 1);
        // Replay from the start: what left the progress ring is reported as missed.
        let mut sub = events.subscribe_matching(Some(0), audit.clone());
        let missed = PROGRESS_HISTORY as u64 * 9;
        assert_eq!(sub.next().await.unwrap().kind, EventKind::Lagged { missed });
        assert_eq!(sub.next().await.unwrap().seq, 1);
        // Live events pass the filter too.
        events.publish(progress(1));
        events.publish(unbanned(2));
        assert_eq!(sub.next().await.unwrap().kind, unbanned(2));
        // The audit ring keeps its own bound.
        for n in 0..60 {
            events.publish(unbanned(n));
        }
        assert_eq!(events.recent_matching(usize::MAX, &audit, None).len(), 50);
        assert_eq!(events.capacity(), 50 + PROGRESS_HISTORY);
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
