//! Storage health as the node reports it. A read round trip is not enough (a full disk or a
//! read-only file still answers reads), so every write records its outcome here, by class: on
//! a nearly full disk small writes (peer records) still succeed while transactions fail, so a
//! failed class stays failing until a write of that same class succeeds, or a probe write as
//! large as the one that failed. A state that recovers more than once within [`FLAP_WINDOW`]
//! stays failing until it has been stable that long, and a damaged database file stays failing
//! until the node restarts (and, for SQLite, passes the start-up check again).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::events::{EventKind, Events};

use super::{Store, StoreError};

/// A health check waits this long for the database before calling it failing (PostgreSQL
/// that is down would otherwise hold the answer for the pool's whole acquire timeout).
pub(crate) const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// A health check probes with a write of its own when no write succeeded for this long (or
/// a class of writes fails), so an idle node still notices a read-only or full disk, and a
/// recovered one says so without waiting for traffic.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(5);
/// The largest probe write: a failed write larger than this is cleared by a probe of this
/// size (a health check must not write megabytes to a disk that is failing).
pub(crate) const PROBE_MAX_BYTES: usize = 1 << 20;
/// Storage that recovers twice within this window is flapping: it is reported failing until
/// it has gone this long without recovering again (the node sets `storage_flap_window`).
pub(crate) const FLAP_WINDOW: Duration = Duration::from_secs(60);

/// What a health check concludes about storage.
#[derive(Clone, Debug, PartialEq)]
pub enum StorageHealth {
    Ok,
    /// Reads or writes fail; the reason is the last error.
    Failing(String),
}

/// The kinds of write whose health is kept apart: one kind succeeding says little about
/// another (a peer record is a few hundred bytes, a transaction up to megabytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteClass {
    /// Submitted or relayed transactions with their payloads.
    Transactions,
    /// Dockets: sealing, appending replicated ones, a register's genesis or anchor.
    Dockets,
    /// Peer records, bans, subscriptions, the announcement queue, purges.
    Other,
    /// A health check's probe write ([`Store::probe_write`]).
    Probe,
}

impl WriteClass {
    /// The slot whose failure this class's outcome sets (a failed probe counts as `Other`).
    fn slot(self) -> usize {
        match self {
            WriteClass::Transactions => 0,
            WriteClass::Dockets => 1,
            WriteClass::Other | WriteClass::Probe => 2,
        }
    }

    fn describe(slot: usize) -> &'static str {
        match slot {
            0 => "transaction writes fail",
            1 => "docket writes fail",
            _ => "writes fail",
        }
    }
}

/// One write as health sees it: its class and roughly how many bytes it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    pub class: WriteClass,
    pub bytes: usize,
}

impl Write {
    pub fn new(class: WriteClass, bytes: usize) -> Write {
        Write { class, bytes }
    }
}

/// Storage failing, as reported: why, and since when.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteFailure {
    pub reason: String,
    /// When storage started failing (ms since the epoch).
    pub since_ms: i64,
}

/// Outcomes of the store's writes (and damage found by its reads), shared by all of them.
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

/// A class of writes that failed and has not succeeded since.
#[derive(Clone, Debug)]
struct ClassFailure {
    reason: String,
    bytes: usize,
    since_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    failing: [Option<ClassFailure>; 3],
    /// The database file is damaged: failing until the node restarts.
    corrupt: Option<String>,
    last_success: Option<Instant>,
    /// The last time no class was failing any more after one was.
    last_recovery: Option<Instant>,
    /// Reported failing until then: storage recovered twice within [`FLAP_WINDOW`].
    flapping_until: Option<Instant>,
    /// The last storage error, for the flapping and recovery messages.
    last_error: Option<String>,
    /// The failure last told (event and log), while the reported state is failing.
    told: Option<WriteFailure>,
    /// [`FLAP_WINDOW`] unless set.
    flap_window: Option<Duration>,
}

/// What changed in the reported state, told after the lock is released.
enum Change {
    Failing(String),
    Recovered(WriteFailure),
}

impl State {
    fn any_failing(&self) -> bool {
        self.failing.iter().any(Option::is_some)
    }

    fn flap_window(&self) -> Duration {
        self.flap_window.unwrap_or(FLAP_WINDOW)
    }

    /// Records that storage, failing, fails no more: twice within the window is flapping.
    fn recovered(&mut self, now: Instant) {
        let window = self.flap_window();
        if self
            .last_recovery
            .is_some_and(|at| now.saturating_duration_since(at) < window)
        {
            self.flapping_until = Some(now + window);
        }
        self.last_recovery = Some(now);
    }

    /// The reported state at `now`: damage, then a failing class, then flapping.
    fn verdict(&self, now: Instant) -> Option<WriteFailure> {
        let since = |fallback: i64| self.told.as_ref().map_or(fallback, |t| t.since_ms);
        if let Some(reason) = &self.corrupt {
            return Some(WriteFailure {
                reason: reason.clone(),
                since_ms: since(crate::clock::now_ms()),
            });
        }
        if let Some((slot, f)) = self
            .failing
            .iter()
            .enumerate()
            .find_map(|(slot, f)| f.as_ref().map(|f| (slot, f)))
        {
            return Some(WriteFailure {
                reason: format!("{}: {}", WriteClass::describe(slot), f.reason),
                since_ms: since(f.since_ms),
            });
        }
        let until = self.flapping_until.filter(|&until| now < until)?;
        let window = crate::clock::short_duration(self.flap_window());
        Some(WriteFailure {
            reason: format!(
                "storage is flapping: writes failed and recovered again within {window} (last \
                 error: {}); reported failing until it has been stable for {window} (another {})",
                self.last_error.as_deref().unwrap_or("unknown"),
                crate::clock::short_duration(until.saturating_duration_since(now)),
            ),
            since_ms: since(crate::clock::now_ms()),
        })
    }

    /// Compares the verdict with what was told last; returns what is to be told now.
    fn settle(&mut self, now: Instant) -> Option<Change> {
        let verdict = self.verdict(now);
        match (&self.told, verdict) {
            (None, Some(failure)) => {
                let reason = failure.reason.clone();
                self.told = Some(failure);
                Some(Change::Failing(reason))
            }
            (Some(_), None) => self.told.take().map(Change::Recovered),
            (Some(_), Some(failure)) => {
                if let Some(told) = &mut self.told {
                    told.reason = failure.reason;
                }
                None
            }
            (None, None) => None,
        }
    }
}

impl WriteHealth {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain fields, each change complete under the lock: a panic elsewhere cannot leave
        // them inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells `events` when storage starts failing and when it recovers (set once, by the node
    /// that owns the store; later calls are ignored).
    pub fn attach_events(&self, events: Arc<Events>) {
        let _ = self.events.set(events);
    }

    /// How long storage must work after flapping before it is reported working
    /// (`storage_flap_window`; zero turns flapping detection off).
    pub fn set_flap_window(&self, window: Duration) {
        self.state().flap_window = Some(window);
    }

    fn tell(&self, change: Option<Change>) {
        let Some(change) = change else { return };
        let kind = match change {
            Change::Failing(reason) => {
                tracing::warn!("storage failing: {reason}");
                EventKind::StorageFailing { reason }
            }
            Change::Recovered(failure) => {
                tracing::info!(
                    "storage accepts writes again (failing since {} ms): last error was: {}",
                    failure.since_ms,
                    failure.reason
                );
                EventKind::StorageRecovered {
                    failing_since: crate::clock::to_rfc3339(failure.since_ms),
                    last_error: failure.reason,
                }
            }
        };
        if let Some(events) = self.events.get() {
            events.publish(kind);
        }
    }

    /// Records one write's outcome. Errors the database gives for the data itself (a
    /// constraint) say nothing about storage and leave the state as it is.
    pub fn record<T>(&self, write: Write, outcome: &Result<T, StoreError>) {
        self.record_at(write, outcome, Instant::now());
    }

    fn record_at<T>(&self, write: Write, outcome: &Result<T, StoreError>, now: Instant) {
        let change = {
            let mut state = self.state();
            match outcome {
                Ok(_) => {
                    state.last_success = Some(now);
                    let was_failing = state.any_failing();
                    let bytes = write.bytes.min(PROBE_MAX_BYTES);
                    for failure in &mut state.failing {
                        let cleared = match write.class {
                            // A probe clears what failed with no more bytes than it wrote.
                            WriteClass::Probe => failure
                                .as_ref()
                                .is_some_and(|f| f.bytes.min(PROBE_MAX_BYTES) <= bytes),
                            _ => false,
                        };
                        if cleared {
                            *failure = None;
                        }
                    }
                    if write.class != WriteClass::Probe {
                        state.failing[write.class.slot()] = None;
                    }
                    if was_failing && !state.any_failing() {
                        state.recovered(now);
                    }
                }
                Err(e @ StoreError::Damaged(_)) => {
                    state.last_error = Some(e.to_string());
                    state.corrupt.get_or_insert_with(|| damaged_reason(e));
                }
                Err(e) if e.is_storage_fault() => {
                    let reason = e.to_string();
                    state.last_error = Some(reason.clone());
                    let slot = &mut state.failing[write.class.slot()];
                    let since_ms = slot
                        .as_ref()
                        .map_or_else(crate::clock::now_ms, |f| f.since_ms);
                    *slot = Some(ClassFailure {
                        reason,
                        bytes: write.bytes,
                        since_ms,
                    });
                }
                Err(_) => {}
            }
            state.settle(now)
        };
        self.tell(change);
    }

    /// Notes a read's error: a damaged database found by a read is storage failing like one
    /// found by a write (other read errors are the caller's to report).
    pub fn record_read(&self, error: &StoreError) {
        if let e @ StoreError::Damaged(_) = error {
            let change = {
                let mut state = self.state();
                state.last_error = Some(e.to_string());
                state.corrupt.get_or_insert_with(|| damaged_reason(e));
                state.settle(Instant::now())
            };
            self.tell(change);
        }
    }

    /// Storage failing as reported now, if it is.
    pub fn failure(&self) -> Option<WriteFailure> {
        self.failure_at(Instant::now())
    }

    fn failure_at(&self, now: Instant) -> Option<WriteFailure> {
        let (verdict, change) = {
            let mut state = self.state();
            let change = state.settle(now);
            (state.told.clone(), change)
        };
        self.tell(change);
        verdict
    }

    /// The size of the probe write a health check should make now, if any: as large as the
    /// largest failed write (up to [`PROBE_MAX_BYTES`]) while a class fails, a small one when
    /// no write succeeded lately, none for a damaged database (no write can mend it).
    pub fn probe_bytes(&self) -> Option<usize> {
        self.probe_bytes_at(Instant::now())
    }

    fn probe_bytes_at(&self, now: Instant) -> Option<usize> {
        let state = self.state();
        if state.corrupt.is_some() {
            return None;
        }
        let failed = state.failing.iter().flatten().map(|f| f.bytes).max();
        match failed {
            Some(bytes) => Some(bytes.min(PROBE_MAX_BYTES)),
            None => state
                .last_success
                .is_none_or(|at| now.saturating_duration_since(at) >= PROBE_AFTER)
                .then_some(0),
        }
    }
}

/// What an operator reads for a damaged database: the error and what to do.
fn damaged_reason(e: &StoreError) -> String {
    format!(
        "{e}; the node keeps reporting storage failing until it is restarted on a repaired \
         database (restore it from a backup, or for SQLite recover it with `sqlite3 FILE \
         .recover`)"
    )
}

/// Storage health: a bounded read round trip, then (when a class of writes fails or none
/// succeeded lately) a bounded probe write, then the recorded state.
pub(crate) async fn check(store: &dyn Store) -> StorageHealth {
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
    if let Some(bytes) = store.write_health().probe_bytes() {
        // The probe records its own outcome. One that cannot get its turn in time (a long
        // write holds the writer lock) leaves the recorded state to speak.
        match tokio::time::timeout(CHECK_TIMEOUT, store.probe_write(bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("storage probe write of {bytes} bytes failed: {e}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "database or disk is full";

    fn full() -> Result<(), StoreError> {
        Err(StoreError::Query(FULL.into()))
    }

    fn tx(bytes: usize) -> Write {
        Write::new(WriteClass::Transactions, bytes)
    }

    fn peers() -> Write {
        Write::new(WriteClass::Other, 300)
    }

    fn probe(bytes: usize) -> Write {
        Write::new(WriteClass::Probe, bytes)
    }

    fn told(events: &Events) -> Vec<&'static str> {
        events.recent(100).iter().map(|e| e.kind.name()).collect()
    }

    #[test]
    fn a_failed_class_stays_failing_while_small_writes_of_another_succeed() {
        let health = WriteHealth::default();
        let events = Arc::new(Events::new());
        health.attach_events(events.clone());
        let t0 = Instant::now();
        health.record_at(tx(20_000), &full(), t0);
        for i in 1..10 {
            let at = t0 + Duration::from_secs(i);
            health.record_at(peers(), &Ok(()), at);
            health.record_at(Write::new(WriteClass::Dockets, 500), &Ok(()), at);
            let failure = health.failure_at(at).expect("still failing");
            assert_eq!(
                failure.reason,
                format!("transaction writes fail: database error: {FULL}")
            );
        }
        // A probe smaller than the failed write says nothing about it; one as large does.
        assert_eq!(health.probe_bytes_at(t0), Some(20_000));
        health.record_at(probe(0), &Ok(()), t0 + Duration::from_secs(10));
        assert!(health.failure_at(t0 + Duration::from_secs(10)).is_some());
        health.record_at(probe(20_000), &Ok(()), t0 + Duration::from_secs(11));
        assert_eq!(health.failure_at(t0 + Duration::from_secs(11)), None);
        assert_eq!(told(&events), ["storageFailing", "storageRecovered"]);
    }

    #[test]
    fn a_success_of_the_same_class_clears_it() {
        let health = WriteHealth::default();
        let t0 = Instant::now();
        health.record_at(tx(20_000), &full(), t0);
        health.record_at(Write::new(WriteClass::Dockets, 100), &full(), t0);
        health.record_at(tx(20_000), &Ok(()), t0);
        let failure = health.failure_at(t0).expect("dockets still fail");
        assert_eq!(
            failure.reason,
            format!("docket writes fail: database error: {FULL}")
        );
        health.record_at(Write::new(WriteClass::Dockets, 100), &Ok(()), t0);
        assert_eq!(health.failure_at(t0), None);
    }

    #[test]
    fn a_probe_is_bounded_and_a_bounded_probe_clears_a_larger_failure() {
        let health = WriteHealth::default();
        let t0 = Instant::now();
        assert_eq!(health.probe_bytes_at(t0), Some(0), "no write yet: probe");
        health.record_at(peers(), &Ok(()), t0);
        assert_eq!(health.probe_bytes_at(t0), None, "a write just succeeded");
        assert_eq!(health.probe_bytes_at(t0 + PROBE_AFTER), Some(0));
        health.record_at(tx(16 << 20), &full(), t0);
        assert_eq!(health.probe_bytes_at(t0), Some(PROBE_MAX_BYTES));
        health.record_at(probe(PROBE_MAX_BYTES), &Ok(()), t0);
        assert_eq!(health.failure_at(t0), None);
    }

    #[test]
    fn flapping_stays_failing_until_stable_for_the_window() {
        let health = WriteHealth::default();
        let events = Arc::new(Events::new());
        health.attach_events(events.clone());
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        // Fails and recovers once: ok at once.
        health.record_at(tx(20_000), &full(), at(0));
        health.record_at(tx(100), &Ok(()), at(1));
        assert_eq!(health.failure_at(at(1)), None);
        // And again within the window: flapping, failing although the last write succeeded.
        health.record_at(tx(20_000), &full(), at(2));
        health.record_at(tx(100), &Ok(()), at(3));
        for secs in [3, 30, 62] {
            let failure = health.failure_at(at(secs)).expect("flapping");
            assert!(failure.reason.contains("flapping"), "{}", failure.reason);
            assert!(failure.reason.contains(FULL), "{}", failure.reason);
        }
        // A further recovery within the window starts the minute again.
        health.record_at(tx(20_000), &full(), at(40));
        health.record_at(tx(100), &Ok(()), at(41));
        assert!(health.failure_at(at(100)).is_some());
        assert_eq!(health.failure_at(at(101)), None, "stable for the window");
        // Recovered is told once it is reported, not at each flip.
        assert_eq!(
            told(&events),
            [
                "storageFailing",
                "storageRecovered",
                "storageFailing",
                "storageRecovered"
            ]
        );
    }

    #[test]
    fn recoveries_further_apart_than_the_window_are_not_flapping() {
        let health = WriteHealth::default();
        let t0 = Instant::now();
        for i in 0..3 {
            let at = t0 + FLAP_WINDOW * i;
            health.record_at(tx(1), &full(), at);
            health.record_at(tx(1), &Ok(()), at + Duration::from_secs(1));
            assert_eq!(health.failure_at(at + Duration::from_secs(1)), None);
        }
    }

    #[test]
    fn a_zero_window_turns_flapping_detection_off() {
        let health = WriteHealth::default();
        health.set_flap_window(Duration::ZERO);
        let t0 = Instant::now();
        for i in 0..3 {
            let at = t0 + Duration::from_millis(i);
            health.record_at(tx(1), &full(), at);
            health.record_at(tx(1), &Ok(()), at);
            assert_eq!(health.failure_at(at), None);
        }
    }

    #[test]
    fn a_damaged_database_fails_until_restart() {
        let health = WriteHealth::default();
        let t0 = Instant::now();
        let damaged = StoreError::Damaged("database disk image is malformed".into());
        health.record_read(&damaged);
        health.record_at(tx(10), &Ok(()), t0 + Duration::from_secs(600));
        health.record_at(probe(10), &Ok(()), t0 + Duration::from_secs(600));
        let failure = health.failure_at(t0 + Duration::from_secs(600));
        let reason = failure.expect("still failing").reason;
        assert!(
            reason.contains("malformed") && reason.contains(".recover"),
            "{reason}"
        );
        assert_eq!(health.probe_bytes_at(t0), None, "no write can mend it");
    }

    #[test]
    fn refused_data_and_other_read_errors_leave_the_state_alone() {
        let health = WriteHealth::default();
        let t0 = Instant::now();
        health.record_at(
            tx(1),
            &Err::<(), _>(StoreError::Constraint("unique".into())),
            t0,
        );
        health.record_read(&StoreError::Query("timed out".into()));
        assert_eq!(health.failure_at(t0), None);
    }
}
