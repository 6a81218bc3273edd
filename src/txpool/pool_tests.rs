//! The transaction pool on a manual clock and an in-memory store: when a replica's pending
//! transaction counts as stale (and is announced again) is checked at the exact millisecond.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::TxPool;
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::events::Events;
use crate::tasks::Tasks;
use crate::telemetry::Metrics;

/// The pool, and the tasks its committer runs under (dropping them stops it).
async fn pool(clock: &ManualClock) -> (Arc<TxPool>, Tasks) {
    let store = crate::store::open_in_memory().await.expect("store");
    let tasks = Tasks::new();
    let (pool, committer) = TxPool::new(
        store,
        Clock::Manual(clock.clone()),
        &Config::defaults().expect("defaults"),
        Arc::new(Metrics::new()),
        Arc::new(Events::new()),
    );
    tasks.start(committer, &CancellationToken::new());
    (pool, tasks)
}

/// The IDs queued for announcement, per register, taken out of the queue.
fn announced(pool: &TxPool) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = (pool.take_announcements(|_| Some(()), 100))
        .into_iter()
        .map(|(_, a)| (a.register_id, a.tx_ids.len()))
        .collect();
    out.sort();
    out
}

fn tx(payload: &[u8]) -> (String, Vec<u8>) {
    (crate::ledger::tx_id(payload), payload.to_vec())
}

#[tokio::test]
async fn a_replicas_pending_transaction_is_announced_again_once_it_is_older_than_asked() {
    let clock = ManualClock::new(1_800_000_000_000);
    let (pool, _tasks) = pool(&clock).await;
    pool.open("replica", true, false);
    pool.open("origin", true, true);
    for register in ["replica", "origin"] {
        let stored = pool
            .accept_gossiped(register, vec![tx(register.as_bytes())], HashMap::new())
            .await
            .expect("stored");
        assert_eq!(stored, 1);
    }
    assert_eq!(
        announced(&pool),
        [("origin".to_string(), 1), ("replica".to_string(), 1)],
        "announced when stored"
    );
    let minute = Duration::from_secs(60);

    clock.advance(minute);
    pool.requeue_stale(minute, 100).await.expect("requeue");
    assert!(
        announced(&pool).is_empty(),
        "exactly a minute old is not older"
    );

    clock.advance(Duration::from_millis(1));
    pool.requeue_stale(minute, 100).await.expect("requeue");
    assert_eq!(
        announced(&pool),
        [("replica".to_string(), 1)],
        "the replica's, not the origin's (it seals its own)"
    );
}

/// Payloads stored a moment ago are served from memory and older ones from the store, each
/// once, whatever mix is asked; a register closed here serves none from memory.
#[tokio::test]
async fn payloads_come_from_memory_or_the_store_alike_and_leave_with_their_register() {
    let clock = ManualClock::new(1_800_000_000_000);
    let (pool, _tasks) = pool(&clock).await;
    pool.open("r", true, false);
    // 6 MB in all: more than the payloads kept, so the first ones are read back from the store.
    let txs: Vec<(String, Vec<u8>)> = (0..30u8).map(|n| tx(&vec![n; 200_000])).collect();
    for chunk in txs.chunks(5) {
        pool.accept_gossiped("r", chunk.to_vec(), HashMap::new())
            .await
            .expect("stored");
    }
    let mut asked: Vec<String> = txs.iter().map(|(id, _)| id.clone()).collect();
    asked.push(txs[29].0.clone());
    asked.push(crate::ledger::tx_id(b"never stored"));
    let sorted = |mut found: Vec<(String, Vec<u8>)>| {
        found.sort();
        found
    };
    let mut expected = txs.clone();
    expected.sort();
    assert_eq!(
        sorted(pool.payloads("r", &asked).await.expect("payloads")),
        expected,
        "every one, once"
    );

    pool.close("r");
    pool.store.purge("r").await.expect("purge");
    pool.open("r", true, false);
    assert!(
        pool.payloads("r", &asked)
            .await
            .expect("payloads")
            .is_empty(),
        "nothing of a purged register is served"
    );
}
