//! The decisions of sync and push, without a network: what a round does from the carriers'
//! advertisements, whom it asks first, how long a failing one waits, where a pushed docket
//! stands and which served payloads are taken; and the subscription bookkeeping they drive
//! (whom to follow, when an advertisement wakes a subscription), on a manual clock.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use super::push::{Place, as_asked, place};
use super::subscriptions::{Subscriptions, SyncState};
use super::sync::{Plan, confirm_order, next_retry, plan};
use crate::clock::{Clock, ManualClock};
use crate::events::Events;
use crate::ledger::{self, Mode};
use crate::protocol::RegisterHeight;

fn carrier(peer: &str, height: u64, version: u64, is_origin: bool) -> (String, RegisterHeight) {
    let advertised = RegisterHeight {
        register_id: "ledger".into(),
        height,
        head_hash: [0; 32],
        latest_version: version,
        full_replica: true,
        is_origin,
    };
    (peer.to_string(), advertised)
}

#[test]
fn a_round_catches_up_only_when_a_carrier_advertises_more_than_is_held() {
    let carriers = [carrier("a", 4, 10, false), carrier("b", 6, 9, false)];
    assert_eq!(plan(6, &carriers), Plan::Confirm, "level with the best");
    assert_eq!(plan(7, &carriers), Plan::Confirm, "ahead of every one");
    // The target takes the highest docket and the highest version, whoever advertised them.
    assert_eq!(plan(5, &carriers), Plan::CatchUp { target: (6, 10) });
    assert_eq!(plan(0, &[]), Plan::Confirm);
}

#[test]
fn the_head_is_confirmed_with_the_origin_first_then_the_highest() {
    let carriers = [
        carrier("low", 3, 3, false),
        carrier("high", 9, 9, false),
        carrier("origin", 2, 2, true),
        carrier("high too", 9, 9, false),
    ];
    let order: Vec<&str> = (confirm_order(&carriers).into_iter())
        .map(|(peer, _)| peer.as_str())
        .collect();
    assert_eq!(order, ["origin", "high", "high too", "low"]);
}

#[test]
fn a_failing_subscription_waits_twice_as_long_each_time_up_to_its_cap() {
    let mut waits = Vec::new();
    let mut retry = Duration::from_millis(200);
    for _ in 0..10 {
        waits.push(retry.as_millis());
        retry = next_retry(retry);
    }
    assert_eq!(
        waits,
        [
            200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000
        ]
    );
}

#[test]
fn a_pushed_docket_is_applied_only_when_it_is_the_next() {
    assert_eq!(place(5, 4), Place::Held);
    assert_eq!(place(5, 5), Place::Held);
    assert_eq!(place(5, 6), Place::Next);
    assert_eq!(place(5, 7), Place::Ahead);
    assert_eq!(place(0, 1), Place::Next);
    assert_eq!(
        place(u64::MAX, u64::MAX),
        Place::Held,
        "no overflow at the end"
    );
}

#[test]
fn only_the_payloads_asked_for_are_taken_from_a_pusher() {
    let asked = vec![ledger::tx_hash(b"t1"), ledger::tx_hash(b"t2")];
    let served = vec![b"t2".to_vec(), b"not asked".to_vec(), b"t1".to_vec()];
    assert_eq!(
        as_asked(asked, served),
        [
            (ledger::tx_id(b"t2"), b"t2".to_vec()),
            (ledger::tx_id(b"t1"), b"t1".to_vec()),
        ]
    );
}

fn subscriptions(clock: &ManualClock) -> Subscriptions {
    Subscriptions::new(Arc::new(Events::new()), Clock::Manual(clock.clone()))
}

/// Whether the subscription's task was woken (the wake-up is taken).
fn woken(wake: &tokio::sync::Notify) -> bool {
    wake.notified().now_or_never().is_some()
}

#[test]
fn an_advertisement_wakes_a_subscription_it_is_ahead_on_or_that_does_not_follow_it() {
    let clock = ManualClock::new(1_800_000_000_000);
    let subs = subscriptions(&clock);
    let wake = subs.insert("ledger", Mode::FullReplica, 0, CancellationToken::new());
    subs.at_head("ledger", 5, (5, 5), &["a".to_string()]);
    let at = |height| vec![(carrier("a", height, height, false).1, Some(5))];

    subs.advertised("a", &at(5));
    assert!(!woken(&wake), "a followed peer level with us");
    subs.advertised("a", &at(4));
    assert!(!woken(&wake), "a followed peer behind us");
    subs.advertised("a", &at(6));
    assert!(woken(&wake), "a peer ahead");
    subs.advertised("b", &at(5));
    assert!(woken(&wake), "a peer not followed yet, though level");
    subs.advertised("a", &[(carrier("a", 0, 0, false).1, None)]);
    assert!(woken(&wake), "nothing held yet");
    let mut other = carrier("a", 9, 9, false).1;
    other.register_id = "other".into();
    subs.advertised("a", &[(other, None)]);
    assert!(!woken(&wake), "another register's advertisement");
}

#[test]
fn at_the_head_a_subscription_follows_exactly_its_carriers_and_notes_the_time() {
    let clock = ManualClock::new(1_800_000_000_000);
    let subs = subscriptions(&clock);
    subs.insert("full", Mode::FullReplica, 0, CancellationToken::new());
    subs.insert("forward", Mode::ForwardOnly, 0, CancellationToken::new());
    subs.set_error("full", "no source");
    let peers = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    clock.advance(Duration::from_millis(7));
    assert_eq!(
        subs.at_head("full", 3, (3, 3), &peers(&["a", "b"])),
        ["a", "b"]
    );
    let status = subs.status("full").expect("status");
    assert_eq!(status.state, SyncState::FullyReplicated);
    assert_eq!(status.last_sync_at_ms, Some(1_800_000_000_007));
    assert_eq!((status.error, status.failures), (None, 0));
    assert_eq!(
        (subs.status("forward").expect("status")).last_sync_at_ms,
        None
    );

    assert!(
        subs.at_head("full", 3, (3, 3), &peers(&["b", "a"]))
            .is_empty()
    );
    assert_eq!(subs.at_head("full", 3, (3, 3), &peers(&["b", "c"])), ["c"]);
    assert_eq!(
        subs.at_head("full", 3, (3, 3), &peers(&["a", "b", "c"])),
        ["a"],
        "a carrier gone and back is asked again"
    );
    subs.at_head("forward", 3, (3, 3), &peers(&["a"]));
    assert_eq!(
        subs.status("forward").expect("status").state,
        SyncState::Active
    );
    assert_eq!(subs.remove("full").expect("removed").following.len(), 3);
    assert!(subs.at_head("full", 3, (3, 3), &peers(&["a"])).is_empty());
}

#[test]
fn dockets_stored_mark_the_time_and_raise_a_target_below_what_is_held() {
    let clock = ManualClock::new(1_800_000_000_000);
    let subs = subscriptions(&clock);
    subs.insert("ledger", Mode::FullReplica, 0, CancellationToken::new());
    subs.syncing("ledger", (0, 0), (4, 8));
    clock.advance(Duration::from_millis(1));
    subs.synced("ledger", 2, 4);
    let status = subs.status("ledger").expect("status");
    assert_eq!(status.last_sync_at_ms, Some(1_800_000_000_001));
    assert_eq!(
        (status.target_height, status.target_version),
        (Some(4), Some(8))
    );
    subs.synced("ledger", 6, 12);
    let status = subs.status("ledger").expect("status");
    assert_eq!(
        (status.target_height, status.target_version),
        (Some(6), Some(12))
    );
}
