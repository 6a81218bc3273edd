//! The node's task tracker. Every task a node starts is spawned through [`Tasks`], so shutdown
//! can stop all of them before the store is closed: it waits for them to end, aborts those
//! still running when the grace period is over, and waits until the aborted ones have really
//! stopped. Once draining has begun, nothing new is started.
//!
//! Long-running parts of the node are [`Service`]s, all started the same way
//! ([`Tasks::start`]) and all stopped by the node's one shutdown token. Handles that start work
//! on request (a subscription's sync, an operator's dial) spawn through [`Tasks`] too, and hold
//! the node's token only to stop that work with it.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A long-running part of the node, built from its own dependencies (its settings, handles and
/// metrics). `run` returns once `shutdown` is cancelled, or when the service fails for good
/// (it logs why).
pub trait Service: Send + 'static {
    /// What logs call it.
    const NAME: &'static str;

    fn run(self, shutdown: CancellationToken) -> impl Future<Output = ()> + Send;
}

#[derive(Default)]
struct TaskSet {
    set: JoinSet<()>,
    draining: bool,
}

/// A cloneable handle on one node's tasks.
#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Mutex<TaskSet>>,
    /// The span every task runs in: the node's trace scope when it exports traces
    /// (`telemetry/traces.rs`), else none.
    scope: tracing::Span,
}

impl Default for Tasks {
    fn default() -> Self {
        Tasks::with_scope(tracing::Span::none())
    }
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Tasks that all run inside `scope`.
    pub fn with_scope(scope: tracing::Span) -> Tasks {
        Tasks {
            inner: Arc::default(),
            scope,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TaskSet> {
        // A panic while holding this lock is a bug; the set itself stays consistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `task` as one of the node's. Returns `None` (and drops the task unstarted) once
    /// the node is shutting down.
    pub fn spawn<F>(&self, task: F) -> Option<AbortHandle>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut inner = self.lock();
        if inner.draining {
            tracing::debug!("not starting a task: the node is shutting down");
            return None;
        }
        // Finished tasks are collected here, so the set holds only live ones.
        while let Some(result) = inner.set.try_join_next() {
            report(result);
        }
        Some(inner.set.spawn(task.instrument(self.scope.clone())))
    }

    /// Starts `service` as one of the node's tasks, to stop when `shutdown` is cancelled.
    pub fn start<S: Service>(&self, service: S, shutdown: &CancellationToken) {
        let shutdown = shutdown.clone();
        let started = self.spawn(async move {
            service.run(shutdown).await;
            tracing::debug!(service = S::NAME, "service stopped");
        });
        if started.is_none() {
            tracing::debug!(service = S::NAME, "not started: the node is shutting down");
        }
    }

    /// Tasks not known to have finished.
    pub fn running(&self) -> usize {
        let mut inner = self.lock();
        while let Some(result) = inner.set.try_join_next() {
            report(result);
        }
        inner.set.len()
    }

    /// Stops accepting tasks, waits up to `grace` for the running ones to end, then aborts the
    /// rest and waits until they have stopped. When this returns, no task of the node runs.
    pub async fn drain(&self, grace: Duration) {
        let mut set = {
            let mut inner = self.lock();
            inner.draining = true;
            std::mem::take(&mut inner.set)
        };
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = set.join_next() => match next {
                    Some(result) => report(result),
                    None => return,
                },
                _ = &mut deadline => break,
            }
        }
        tracing::warn!(
            "shutdown grace period over; stopping {} task(s) that had not finished",
            set.len()
        );
        set.abort_all();
        while let Some(result) = set.join_next().await {
            report(result);
        }
    }
}

fn report(result: Result<(), JoinError>) {
    if let Err(e) = result
        && e.is_panic()
    {
        tracing::error!("a node task panicked: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drain_waits_for_tasks_then_aborts_stragglers_and_refuses_new_ones() {
        let tasks = Tasks::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tasks.spawn(async move {
            let _ = done_tx.send(());
        });
        tasks.spawn(std::future::pending());
        tasks.drain(Duration::from_millis(50)).await;
        assert!(done_rx.await.is_ok(), "the quick task ran to the end");
        assert_eq!(tasks.running(), 0, "the stuck one was stopped");
        assert!(
            tasks.spawn(async {}).is_none(),
            "nothing starts after drain"
        );
    }

    struct UntilShutdown(tokio::sync::oneshot::Sender<()>);

    impl Service for UntilShutdown {
        const NAME: &'static str = "test";

        async fn run(self, shutdown: CancellationToken) {
            shutdown.cancelled().await;
            let _ = self.0.send(());
        }
    }

    #[tokio::test]
    async fn a_service_runs_until_the_shutdown_signal_and_none_starts_after_drain() {
        let tasks = Tasks::new();
        let shutdown = CancellationToken::new();
        let (stopped_tx, mut stopped_rx) = tokio::sync::oneshot::channel();
        tasks.start(UntilShutdown(stopped_tx), &shutdown);
        tokio::task::yield_now().await;
        assert_eq!(tasks.running(), 1);
        assert!(
            stopped_rx.try_recv().is_err(),
            "still running before the signal"
        );
        shutdown.cancel();
        tasks.drain(Duration::from_secs(5)).await;
        assert!(
            stopped_rx.await.is_ok(),
            "stopped by the signal, not aborted"
        );
        let (late_tx, late_rx) = tokio::sync::oneshot::channel();
        tasks.start(UntilShutdown(late_tx), &shutdown);
        assert!(late_rx.await.is_err(), "dropped unstarted after drain");
    }

    #[tokio::test]
    async fn finished_tasks_do_not_accumulate() {
        let tasks = Tasks::new();
        for _ in 0..100 {
            tasks.spawn(async {});
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(tasks.running(), 0);
    }
}
