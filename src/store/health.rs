//! Storage health as the node reports it: a read round trip is not enough (a full disk or a
//! read-only file still answers reads), so every write records its outcome here, and a health
//! check that has seen no recent successful write makes one small probe write of its own.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::events::{EventKind, Events};

use super::{Store, StoreError};

/// A health check waits this long for the database before calling it failing (PostgreSQL
/// that is down would otherwise hold the answer for the pool's whole acquire timeout).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// A health check probes with a write of its own when no write succeeded for this long (or
/// the last one failed), so an idle node still notices a read-only or full disk, and a
/// recovered one says so without waiting for traffic.
pub const PROBE_AFTER: Duration = Duration::from_secs(5);

/// What a health check concludes about storage.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageHealth {
    Ok,
    /// Reads or writes fail; the reason is the last error.
    Failing(String),
}

/// The last write failure, while it has not been followed by a successful write.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteFailure {
    pub reason: String,
    /// When writes started failing (ms since the epoch).
    pub since_ms: i64,
}

/// Outcomes of the store's writes, shared by all of them.
#[derive(Default)]
pub struct WriteHealth {
    state: Mutex<State>,
    /// Where a change between failing and working is told (the node attaches its bus).
    events: OnceLock<Arc<Events>>,
}

impl std::fmt::Debug for WriteHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteHealth")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    failure: Option<WriteFailure>,
    last_success: Option<Instant>,
}

impl WriteHealth {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain fields: a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells `events` when storage starts failing and when it recovers (set once, by the node
    /// that owns the store; later calls are ignored).
    pub fn attach_events(&self, events: Arc<Events>) {
        let _ = self.events.set(events);
    }

    fn publish(&self, kind: EventKind) {
        if let Some(events) = self.events.get() {
            events.publish(kind);
        }
    }

    /// Records one write's outcome. Errors the database gives for the data itself (a
    /// constraint) say nothing about storage and leave the state as it is.
    pub fn record<T>(&self, outcome: &Result<T, StoreError>) {
        match outcome {
            Ok(_) => {
                let recovered = {
                    let mut state = self.state();
                    state.last_success = Some(Instant::now());
                    state.failure.take()
                };
                if let Some(failure) = recovered {
                    tracing::info!(
                        "storage accepts writes again (failing since {} ms): last error was: {}",
                        failure.since_ms,
                        failure.reason
                    );
                    self.publish(EventKind::StorageRecovered {
                        failing_since: crate::clock::to_rfc3339(failure.since_ms),
                        last_error: failure.reason,
                    });
                }
            }
            Err(e) if e.is_storage_fault() => {
                let reason = e.to_string();
                let started = {
                    let mut state = self.state();
                    let previous = state.failure.take();
                    let started = previous.is_none();
                    let since_ms = previous.map_or_else(crate::clock::now_ms, |f| f.since_ms);
                    state.failure = Some(WriteFailure {
                        reason: reason.clone(),
                        since_ms,
                    });
                    started
                };
                if started {
                    self.publish(EventKind::StorageFailing { reason });
                }
            }
            Err(_) => {}
        }
    }

    /// The current failure, if the last write that reached storage failed.
    pub fn failure(&self) -> Option<WriteFailure> {
        self.state().failure.clone()
    }

    /// Whether a health check should probe with a write of its own.
    fn needs_probe(&self) -> bool {
        let state = self.state();
        state.failure.is_some()
            || state
                .last_success
                .is_none_or(|at| at.elapsed() >= PROBE_AFTER)
    }
}

/// Storage health: a bounded read round trip, then (when writes failed or none succeeded
/// lately) a bounded probe write, then the recorded write outcome.
pub async fn check(store: &dyn Store) -> StorageHealth {
    match tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await {
        Err(_) => {
            let last = store
                .write_health()
                .failure()
                .map(|f| format!(" (last write error: {})", f.reason))
                .unwrap_or_default();
            return StorageHealth::Failing(format!(
                "the database did not answer within {CHECK_TIMEOUT:?}{last}"
            ));
        }
        Ok(Err(e)) => return StorageHealth::Failing(e.to_string()),
        Ok(Ok(())) => {}
    }
    if store.write_health().needs_probe() {
        // The probe records its own outcome. One that cannot get its turn in time (a long
        // write holds the writer lock) leaves the recorded state to speak.
        match tokio::time::timeout(CHECK_TIMEOUT, store.probe_write()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("storage probe write failed: {e}"),
            Err(_) => {
                tracing::debug!("storage probe write did not finish within {CHECK_TIMEOUT:?}")
            }
        }
    }
    match store.write_health().failure() {
        Some(failure) => StorageHealth::Failing(failure.reason),
        None => StorageHealth::Ok,
    }
}
