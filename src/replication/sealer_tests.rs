//! The sealer on a manual clock and an in-memory store, one round at a time (the rounds' timer
//! is the node's): what a docket covers, in which order, at which instant, and when the
//! sealer is woken before its interval.

use std::time::Duration;

use futures::FutureExt;

use super::fixture::{Node, Origin, START_MS, node};
use super::sealer::docket_share;
use crate::clock::ManualClock;
use crate::ledger::{self, Docket};

const MS: Duration = Duration::from_millis(1);

/// A node originating `ledger`, sealing at most `max` transactions a docket.
async fn origin(clock: &ManualClock, max: usize) -> Node {
    let node = node(clock, |c| c.max_docket_transactions = max).await;
    node.registers.create("ledger", true).await.expect("create");
    node
}

/// Submits each payload on its own, a millisecond after the one before.
async fn submit_apart(node: &Node, clock: &ManualClock, payloads: &[Vec<u8>]) {
    for payload in payloads {
        clock.advance(MS);
        (node
            .registers
            .pool
            .accept_local("ledger", vec![payload.clone()]))
        .await
        .expect("accepted");
    }
}

/// The dockets after the genesis, each with its payloads.
async fn sealed(node: &Node) -> Vec<(Docket, Vec<Vec<u8>>)> {
    let dockets = node.store.dockets("ledger", 1, 100).await.expect("dockets");
    let mut out = Vec::new();
    for docket in dockets {
        let h = &docket.header;
        let payloads = (node.store)
            .payloads("ledger", h.first_version as i64, h.last_version() as i64)
            .await
            .expect("payloads");
        out.push((docket, payloads));
    }
    out
}

/// Seven payloads whose IDs sort the other way round from the order they are given in.
fn payloads_against_id_order() -> Vec<Vec<u8>> {
    let mut payloads: Vec<Vec<u8>> = (0..7).map(|i| format!("tx {i}").into_bytes()).collect();
    payloads.sort_by_key(|p| std::cmp::Reverse(ledger::tx_id(p)));
    payloads
}

#[tokio::test]
async fn nothing_pending_seals_nothing() {
    let clock = ManualClock::new(START_MS);
    let node = origin(&clock, 3).await;
    assert!(node.registers.pool.sealable().is_empty());
    node.registers.sealer.seal_all().await;
    let more = node
        .registers
        .sealer
        .seal_once("ledger")
        .await
        .expect("seal");
    assert!(!more);
    assert!(sealed(&node).await.is_empty());
    assert_eq!(
        node.registers
            .chain
            .get("ledger")
            .expect("held")
            .head
            .number,
        0
    );
}

#[tokio::test]
async fn a_docket_takes_the_oldest_pending_by_arrival_with_contiguous_versions() {
    let clock = ManualClock::new(START_MS);
    let node = origin(&clock, 3).await;
    let payloads = payloads_against_id_order();
    submit_apart(&node, &clock, &payloads).await;
    let sealer = &node.registers.sealer;

    clock.advance(Duration::from_secs(1));
    let first_at = clock.now_ms();
    assert!(sealer.seal_once("ledger").await.expect("seal"), "4 left");
    clock.advance(5 * MS);
    assert!(!sealer.seal_once("ledger").await.expect("seal"), "1 left");
    clock.advance(5 * MS);
    assert!(
        !sealer.seal_once("ledger").await.expect("seal"),
        "none left"
    );
    assert!(!sealer.seal_once("ledger").await.expect("seal"));

    let dockets = sealed(&node).await;
    assert_eq!(dockets.len(), 3, "nothing pending makes no docket");
    let origin_key = node.registers.identity.public_key();
    let mut previous = node.store.dockets("ledger", 0, 1).await.expect("genesis")[0]
        .header
        .clone();
    let mut next_version = 1;
    for (i, (docket, carried)) in dockets.iter().enumerate() {
        let h = &docket.header;
        assert_eq!(h.number, i as u64 + 1);
        assert_eq!(h.first_version, next_version, "versions are contiguous");
        assert_eq!(
            h.sealed_at_ms,
            first_at + 5 * i as i64,
            "sealed at the clock's now"
        );
        let expected = &payloads[3 * i..(3 * i + 3).min(payloads.len())];
        assert_eq!(carried, expected, "the oldest by arrival, in arrival order");
        let entry = ledger::DocketWithTransactions {
            docket: docket.clone(),
            origin_key: None,
            transactions: carried.clone(),
        };
        ledger::verify_next(&origin_key, &previous, &entry).expect("a valid successor");
        next_version = h.last_version() + 1;
        previous = h.clone();
    }
    assert_eq!(next_version, 8);
    let held = node.registers.chain.get("ledger").expect("held");
    assert_eq!((held.head.number, held.latest_version()), (3, 7));
    assert!(node.registers.pool.sealable().is_empty());
}

#[tokio::test]
async fn a_round_seals_full_dockets_back_to_back_and_leaves_the_rest_to_the_next() {
    let clock = ManualClock::new(START_MS);
    let node = origin(&clock, 3).await;
    let payloads = payloads_against_id_order();
    submit_apart(&node, &clock, &payloads).await;

    node.registers.sealer.seal_all().await;
    let counts: Vec<u32> = (sealed(&node).await.iter())
        .map(|(d, _)| d.header.tx_count)
        .collect();
    // A docket is sealed at once only while a full one's worth waits; the last transaction
    // waits for the next round (the interval).
    assert_eq!(counts, [3, 3]);
    assert_eq!(node.registers.pool.pending_count("ledger"), 1);
    assert_eq!(node.registers.pool.sealable(), ["ledger"]);

    node.registers.sealer.seal_all().await;
    let dockets = sealed(&node).await;
    assert_eq!(dockets.len(), 3);
    assert_eq!(dockets[2].1, payloads[6..]);
    assert!(node.registers.pool.sealable().is_empty());
}

#[tokio::test]
async fn exactly_a_full_docket_left_is_sealed_in_the_same_round() {
    let clock = ManualClock::new(START_MS);
    let node = origin(&clock, 3).await;
    submit_apart(&node, &clock, &payloads_against_id_order()[..6]).await;
    node.registers.sealer.seal_all().await;
    let counts: Vec<u32> = (sealed(&node).await.iter())
        .map(|(d, _)| d.header.tx_count)
        .collect();
    assert_eq!(counts, [3, 3]);
    assert_eq!(node.registers.pool.pending_count("ledger"), 0);
}

#[tokio::test]
async fn the_sealer_is_woken_as_soon_as_a_full_docket_waits() {
    let clock = ManualClock::new(START_MS);
    let node = origin(&clock, 3).await;
    let pool = &node.registers.pool;
    submit_apart(&node, &clock, &payloads_against_id_order()[..2]).await;
    assert!(pool.seal_wanted().now_or_never().is_none(), "2 of 3 wait");
    submit_apart(&node, &clock, &payloads_against_id_order()[2..3]).await;
    assert!(
        pool.seal_wanted().now_or_never().is_some(),
        "3 of 3 wake it"
    );
}

#[tokio::test]
async fn a_replicas_pending_transactions_are_never_sealed_here() {
    let clock = ManualClock::new(START_MS);
    let node = node(&clock, |c| c.max_docket_transactions = 1).await;
    let origin = Origin::new("ledger");
    origin.replicate_on(&node).await;
    let tx = (ledger::tx_id(b"t1"), b"t1".to_vec());
    let stored = (node.registers.pool)
        .accept_gossiped("ledger", vec![tx], Default::default())
        .await
        .expect("pending");
    assert_eq!(stored, 1);

    assert!(node.registers.pool.sealable().is_empty());
    assert!(node.registers.pool.seal_wanted().now_or_never().is_none());
    node.registers.sealer.seal_all().await;
    assert!(sealed(&node).await.is_empty());
    assert_eq!(
        node.store
            .pending("ledger", 10)
            .await
            .expect("pending")
            .len(),
        1
    );
}

#[test]
fn a_docket_takes_what_fits_in_its_bytes_and_always_one() {
    assert_eq!(docket_share([3, 3, 3], 9), 3, "exactly the budget fits");
    assert_eq!(docket_share([3, 3, 3], 8), 2);
    assert_eq!(docket_share([3, 3, 3], 6), 2);
    assert_eq!(docket_share([3, 3, 3], 5), 1);
    assert_eq!(docket_share([20, 1], 9), 1, "one too large is sealed alone");
    assert_eq!(
        docket_share([1, 20, 1], 9),
        1,
        "a large one waits for the next docket"
    );
    assert_eq!(docket_share([usize::MAX, usize::MAX], usize::MAX), 1);
}
