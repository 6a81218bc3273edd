//! Where each subscription stands: its state and last error as the operator sees them, the
//! peers it follows, and the handles of its task (wake-up, cancellation). Plain bookkeeping:
//! the task itself is in [`super::sync`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::events::{EventKind, Events};
use crate::ledger::Mode;
use crate::protocol::RegisterHeight;

/// Where a subscription stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    Subscribing,
    Syncing,
    FullyReplicated,
    Active,
    Error,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Subscribing => "subscribing",
            SyncState::Syncing => "syncing",
            SyncState::FullyReplicated => "fully-replicated",
            SyncState::Active => "active",
            SyncState::Error => "error",
        }
    }
}

/// A subscription as the operator sees it.
#[derive(Clone, Debug)]
pub(super) struct Status {
    pub mode: Mode,
    pub state: SyncState,
    pub error: Option<String>,
    pub failures: u32,
    pub created_at_ms: i64,
    /// When dockets were last stored for it, or it was last found at the head of its
    /// sources (a forward-only subscription at the head is in sync without storing anything).
    pub last_sync_at_ms: Option<i64>,
    /// Docket number of the head being synced to: the best height seen among sources (the
    /// views never show it below the height held).
    pub target_height: Option<u64>,
    /// Transaction version at that head (the best seen among sources).
    pub target_version: Option<u64>,
    /// The catch-up under way, if any (for its completion log line).
    run: Option<SyncRun>,
}

/// A catch-up from the moment a subscription started syncing until it is at the head.
#[derive(Clone, Debug)]
struct SyncRun {
    started: Instant,
    from_height: u64,
    from_version: u64,
}

struct Subscription {
    status: Status,
    following: HashSet<String>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
}

/// A subscription that was just removed: its task is cancelled; these peers still push to us.
pub(super) struct Removed {
    pub following: HashSet<String>,
}

/// At most one progress event per register in this period (the one at the target is always
/// sent).
const PROGRESS_EVENT_EVERY: Duration = Duration::from_millis(250);

pub(super) struct Subscriptions {
    inner: Mutex<HashMap<String, Subscription>>,
    events: Arc<Events>,
    /// Dates the last sync of each subscription.
    clock: Clock,
}

impl Subscriptions {
    pub(super) fn new(events: Arc<Events>, clock: Clock) -> Subscriptions {
        Subscriptions {
            inner: Mutex::default(),
            events,
            clock,
        }
    }

    /// Tells a state change (callers pass what changed; nothing is published when it did not).
    fn state_changed(&self, register_id: &str, state: SyncState, error: Option<String>) {
        self.events.publish(EventKind::SubscriptionState {
            register_id: register_id.to_string(),
            state: state.as_str().to_string(),
            error,
        });
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Subscription>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new subscription; returns the wake-up its task listens to.
    pub(super) fn insert(
        &self,
        register_id: &str,
        mode: Mode,
        created_at_ms: i64,
        cancel: CancellationToken,
    ) -> Arc<Notify> {
        let wake = Arc::new(Notify::new());
        self.lock().insert(
            register_id.to_string(),
            Subscription {
                status: Status {
                    mode,
                    state: SyncState::Subscribing,
                    error: None,
                    failures: 0,
                    created_at_ms,
                    last_sync_at_ms: None,
                    target_height: None,
                    target_version: None,
                    run: None,
                },
                following: HashSet::new(),
                wake: wake.clone(),
                cancel,
            },
        );
        self.state_changed(register_id, SyncState::Subscribing, None);
        wake
    }

    /// Removes a subscription and cancels its task.
    pub(super) fn remove(&self, register_id: &str) -> Option<Removed> {
        let sub = self.lock().remove(register_id)?;
        sub.cancel.cancel();
        Some(Removed {
            following: sub.following,
        })
    }

    pub(super) fn contains(&self, register_id: &str) -> bool {
        self.lock().contains_key(register_id)
    }

    /// Subscribed registers, by name.
    pub(super) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }

    pub(super) fn status(&self, register_id: &str) -> Option<Status> {
        self.lock().get(register_id).map(|s| s.status.clone())
    }

    pub(super) fn set_state(&self, register_id: &str, state: SyncState, target: Option<u64>) {
        let changed = match self.lock().get_mut(register_id) {
            Some(sub) => {
                if target.is_some() {
                    sub.status.target_height = target;
                }
                std::mem::replace(&mut sub.status.state, state) != state
            }
            None => false,
        };
        if changed {
            self.state_changed(register_id, state, None);
        }
    }

    /// A round starts pulling dockets towards `target` (docket number and transaction version,
    /// the best among sources) from `held` (the same, as held here).
    pub(super) fn syncing(&self, register_id: &str, held: (u64, u64), target: (u64, u64)) {
        let state = SyncState::Syncing;
        let changed = match self.lock().get_mut(register_id) {
            Some(sub) => {
                sub.status.target_height = Some(target.0);
                sub.status.target_version = Some(target.1);
                sub.status.run.get_or_insert_with(|| SyncRun {
                    started: Instant::now(),
                    from_height: held.0,
                    from_version: held.1,
                });
                std::mem::replace(&mut sub.status.state, state) != state
            }
            None => false,
        };
        if changed {
            self.state_changed(register_id, state, None);
        }
    }

    /// A round failed: the state shows it (logged when the message changes).
    pub(super) fn set_error(&self, register_id: &str, message: &str) {
        let changed = match self.lock().get_mut(register_id) {
            Some(sub) => {
                let changed = sub.status.error.as_deref() != Some(message);
                if changed {
                    tracing::warn!(
                        register = register_id,
                        "replication problem (retrying): {message}"
                    );
                }
                sub.status.state = SyncState::Error;
                sub.status.error = Some(message.to_string());
                sub.status.failures += 1;
                changed
            }
            None => false,
        };
        if changed {
            self.state_changed(register_id, SyncState::Error, Some(message.to_string()));
        }
    }

    /// Dockets were stored: the register's head is now docket `height` at transaction
    /// `version`.
    pub(super) fn synced(&self, register_id: &str, height: u64, version: u64) {
        let (target, target_version) = match self.lock().get_mut(register_id) {
            Some(sub) => {
                sub.status.last_sync_at_ms = Some(self.clock.now_ms());
                // What is held is reached, whatever a source said before.
                if sub.status.target_height.is_some_and(|t| t < height) {
                    sub.status.target_height = Some(height);
                }
                if sub.status.target_version.is_some_and(|t| t < version) {
                    sub.status.target_version = Some(version);
                }
                (sub.status.target_height, sub.status.target_version)
            }
            None => return,
        };
        // Progress means something only against a known target.
        let Some(t) = target else {
            return;
        };
        let percent = if t > 0 {
            (height.min(t) as f64 / t as f64 * 100.0 * 10.0).round() / 10.0
        } else {
            100.0
        };
        let event = EventKind::SubscriptionProgress {
            register_id: register_id.to_string(),
            height,
            target,
            percent,
            version: Some(version),
            target_version,
        };
        if height >= t {
            self.events.publish(event);
        } else {
            self.events.publish_throttled(
                &format!("progress:{register_id}"),
                PROGRESS_EVENT_EVERY,
                event,
            );
        }
    }

    /// At the head (docket `head`; `held`: the docket number and transaction version held
    /// here): marks the state and the time, logs the catch-up that got here if there was one,
    /// follows exactly the given carriers, and returns those not followed before (to be asked
    /// to push).
    pub(super) fn at_head(
        &self,
        register_id: &str,
        head: u64,
        held: (u64, u64),
        carriers: &[String],
    ) -> Vec<String> {
        let mut inner = self.lock();
        let Some(sub) = inner.get_mut(register_id) else {
            return Vec::new();
        };
        sub.status.target_height = Some(head);
        if let Some(run) = sub.status.run.take() {
            log_sync_complete(register_id, &run, held);
        }
        sub.status.last_sync_at_ms = Some(self.clock.now_ms());
        let state = match sub.status.mode {
            Mode::FullReplica => SyncState::FullyReplicated,
            Mode::ForwardOnly => SyncState::Active,
        };
        if std::mem::replace(&mut sub.status.state, state) != state {
            self.events.publish(EventKind::SubscriptionState {
                register_id: register_id.to_string(),
                state: state.as_str().to_string(),
                error: None,
            });
        }
        sub.status.error = None;
        sub.status.failures = 0;
        sub.following.retain(|p| carriers.contains(p));
        let newly: Vec<String> = carriers
            .iter()
            .filter(|id| !sub.following.contains(*id))
            .cloned()
            .collect();
        sub.following.extend(newly.iter().cloned());
        newly
    }

    /// The wake-up of a register's subscription task.
    pub(super) fn wake_handle(&self, register_id: &str) -> Option<Arc<Notify>> {
        self.lock().get(register_id).map(|s| s.wake.clone())
    }

    /// A peer advertised `heights` (`ours`: our height of each, if held): wakes every
    /// subscription it is ahead on, or that does not follow it yet (anti-entropy).
    pub(super) fn advertised(&self, peer_id: &str, heights: &[(RegisterHeight, Option<u64>)]) {
        let inner = self.lock();
        for (h, ours) in heights {
            if let Some(sub) = inner.get(&h.register_id)
                && (ours.is_none_or(|n| h.height > n) || !sub.following.contains(peer_id))
            {
                sub.wake.notify_one();
            }
        }
    }
}

/// The info line a completed catch-up leaves: how much, how long, how fast.
fn log_sync_complete(register_id: &str, run: &SyncRun, held: (u64, u64)) {
    let seconds = run.started.elapsed().as_secs_f64();
    let dockets = held.0.saturating_sub(run.from_height);
    let transactions = held.1.saturating_sub(run.from_version);
    let rate = if seconds > 0.0 {
        transactions as f64 / seconds
    } else {
        0.0
    };
    tracing::info!(
        register = %register_id,
        dockets,
        transactions,
        seconds = %format!("{seconds:.2}"),
        transactions_per_second = %format!("{rate:.0}"),
        "sync complete: {dockets} dockets, {transactions} transactions in {seconds:.2}s \
         ({rate:.0} transactions/s)"
    );
}
