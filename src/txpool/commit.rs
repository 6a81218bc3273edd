//! Group commit: every write of pending transactions (local submissions and gossip pulls, from
//! any number of callers) goes through one committer task, which stores whatever has queued up
//! while the previous commit ran in one database transaction. With `durability = "full"` each
//! commit is synced to disk, so the sync is paid once per group instead of once per caller,
//! and SQLite's one writer runs a few large statements instead of many small ones.
//!
//! A caller is answered only after the commit that holds its transactions succeeded. The
//! bookkeeping that follows a commit (seen-set, pending count, announcements, events) runs in
//! the committer, so a caller that gives up waiting cannot leave stored transactions
//! unannounced or uncounted. A group that fails is retried one caller at a time, so each
//! caller gets its own answer and one bad write cannot fail the others.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Holders, TxPool, TxPoolError};
use crate::store::{PendingBatch, StoreError};

/// Requests waiting for the committer at most (callers beyond it wait to send: back-pressure).
pub(super) const QUEUED_REQUESTS: usize = 16;
/// Most payload bytes one commit takes from the queue (a group holds at least one request).
const GROUP_BYTES: usize = 8 * 1024 * 1024;

/// One caller's transactions and where to send the outcome.
pub(super) struct Request {
    batch: PendingBatch,
    /// Per transaction (hex ID), the peers known to hold it (not told about it); none for
    /// transactions submitted here.
    holders: HashMap<String, Holders>,
    reply: oneshot::Sender<Result<Vec<String>, StoreError>>,
}

impl Request {
    fn bytes(&self) -> usize {
        self.batch
            .txs
            .iter()
            .map(|(id, p)| id.len() + p.len())
            .sum()
    }
}

/// The pool's one writer of pending transactions, as a node service.
pub struct Committer {
    pub(super) pool: Arc<TxPool>,
    pub(super) requests: mpsc::Receiver<Request>,
}

impl crate::tasks::Service for Committer {
    const NAME: &'static str = "transaction committer";

    async fn run(self, shutdown: CancellationToken) {
        self.pool.run_committer(self.requests, shutdown).await;
    }
}

impl TxPool {
    /// Stores `txs` as pending through the committer; returns the IDs that were new.
    pub(super) async fn commit(
        &self,
        register_id: &str,
        txs: Vec<(String, Vec<u8>)>,
        holders: HashMap<String, Holders>,
    ) -> Result<Vec<String>, TxPoolError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            batch: PendingBatch {
                register_id: register_id.to_string(),
                txs,
            },
            holders,
            reply,
        };
        self.commits
            .send(request)
            .await
            .map_err(|_| TxPoolError::ShuttingDown)?;
        // A dropped reply means the committer stopped (shutdown) before this request's turn.
        Ok(answer.await.map_err(|_| TxPoolError::ShuttingDown)??)
    }

    /// The committer: runs until `shutdown`. Then it takes no new request (callers get
    /// [`TxPoolError::ShuttingDown`]) but commits the ones already queued, so a caller that
    /// got in before the shutdown is answered as usual.
    async fn run_committer(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<Request>,
        shutdown: CancellationToken,
    ) {
        let mut closed = false;
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown.cancelled(), if !closed => {
                    requests.close();
                    closed = true;
                    continue;
                }
                request = requests.recv() => match request {
                    Some(request) => request,
                    // Closed and drained (or every sender gone).
                    None => break,
                },
            };
            let mut bytes = first.bytes();
            let mut group = vec![first];
            while bytes < GROUP_BYTES
                && let Ok(request) = requests.try_recv()
            {
                bytes += request.bytes();
                group.push(request);
            }
            self.commit_group(group).await;
        }
    }

    async fn commit_group(&self, group: Vec<Request>) {
        let (batches, callers): (Vec<PendingBatch>, Vec<Caller>) = group
            .into_iter()
            .map(|r| (r.batch, (r.holders, r.reply)))
            .unzip();
        let outcomes = match self
            .store
            .accept_pending(&batches, self.clock.now_ms())
            .await
        {
            Ok(news) => news.into_iter().map(Ok).collect(),
            Err(e) if batches.len() == 1 => vec![Err(e)],
            Err(_) => {
                let mut outcomes = Vec::with_capacity(batches.len());
                for batch in &batches {
                    let alone = self
                        .store
                        .accept_pending(std::slice::from_ref(batch), self.clock.now_ms())
                        .await;
                    outcomes.push(alone.map(|mut news| news.pop().unwrap_or_default()));
                }
                outcomes
            }
        };
        for ((batch, (holders, reply)), outcome) in batches.into_iter().zip(callers).zip(outcomes) {
            if let Ok(new) = &outcome {
                self.accepted(&batch.register_id, new.clone(), batch.txs, &holders);
            }
            // A caller that stopped waiting is fine: the bookkeeping is done.
            let _ = reply.send(outcome);
        }
    }
}

/// Who asked: the peers known to hold the transactions and where the answer goes.
type Caller = (
    HashMap<String, Holders>,
    oneshot::Sender<Result<Vec<String>, StoreError>>,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Durability};
    use crate::events::Events;
    use crate::tasks::Tasks;
    use crate::telemetry::Metrics;

    /// On a single-threaded runtime the committer first runs when the test awaits, so a
    /// request is queued before the committer sees the shutdown: it is committed and
    /// answered; one sent after the shutdown is refused, and nothing of it is stored.
    #[tokio::test(flavor = "current_thread")]
    async fn a_request_queued_before_shutdown_is_committed_and_a_later_one_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open(None, &dir.path().join("c.db"), Durability::Fast)
            .await
            .expect("store");
        let config = Config::defaults().expect("defaults");
        let shutdown = CancellationToken::new();
        let tasks = Tasks::new();
        let (pool, committer) = TxPool::new(
            store.clone(),
            crate::clock::Clock::System,
            &config,
            Arc::new(Metrics::new()),
            Arc::new(Events::new()),
        );
        tasks.start(committer, &shutdown);
        pool.open("r", true, true);
        shutdown.cancel();
        let tx = |p: &[u8]| (crate::ledger::tx_id(p), p.to_vec());
        let stored = pool
            .commit("r", vec![tx(b"queued first")], HashMap::new())
            .await;
        assert_eq!(stored.expect("committed").len(), 1);
        let refused = pool
            .commit("r", vec![tx(b"too late")], HashMap::new())
            .await;
        assert!(
            matches!(refused, Err(TxPoolError::ShuttingDown)),
            "{refused:?}"
        );
        assert_eq!(store.count_pending("r").await.expect("count"), 1);
        assert_eq!(
            pool.pending_count("r"),
            1,
            "the committer did the bookkeeping"
        );
    }
}
