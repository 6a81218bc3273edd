//! Unit tests of the request tracker (`requests.rs`).

use super::*;

fn id(n: u32) -> ShortId {
    let mut id = [0; 16];
    id[..4].copy_from_slice(&n.to_le_bytes());
    id
}

/// Transaction `n` as a peer that speaks short IDs names it.
fn tx(n: u32) -> TxRef {
    TxRef::Short(id(n))
}

fn limits() -> Limits {
    Limits {
        per_peer: 100,
        total: 1000,
        in_flight_per_peer: 10,
    }
}

fn inbound(score: f64) -> Option<Rank> {
    Some(Rank {
        outbound: false,
        score,
    })
}

#[test]
fn each_transaction_goes_to_one_announcer_then_the_next_after_a_failure() {
    let mut t = RequestTracker::new(limits());
    t.announce("mallory", "r", &[tx(1)]);
    t.announce("honest", "r", &[tx(1)]);
    // Mallory looks better at first (higher score): she is asked, and only she.
    let ranks = |p: &str| inbound(if p == "mallory" { 90.0 } else { 50.0 });
    let a = t.schedule(ranks, 500);
    assert_eq!(a.len(), 1);
    assert_eq!(&*a[0].peer, "mallory");
    assert!(t.schedule(ranks, 500).is_empty(), "one request at a time");
    t.strike("mallory");
    t.failed("mallory", "r", &id(1));
    let a = t.schedule(ranks, 500);
    assert_eq!(a.len(), 1);
    assert_eq!(&*a[0].peer, "honest");
    t.delivered("r", &id(1));
    assert!(t.is_empty());
    assert_eq!(t.announcements(), 0);
}

#[test]
fn outbound_peers_and_peers_without_strikes_are_preferred() {
    let mut t = RequestTracker::new(limits());
    for p in ["a", "b", "c"] {
        t.announce(p, "r", &[tx(1), tx(2)]);
    }
    let ranks = |p: &str| {
        Some(Rank {
            outbound: p == "c",
            score: if p == "a" { 99.0 } else { 10.0 },
        })
    };
    let a = t.schedule(ranks, 500);
    assert!(a.iter().all(|x| &*x.peer == "c"), "{a:?}");
    t.strike("c");
    t.failed("c", "r", &id(1));
    t.failed("c", "r", &id(2));
    // Among the inbound ones, the higher score wins while strikes are equal...
    let a = t.schedule(ranks, 500);
    assert!(a.iter().all(|x| &*x.peer == "a"), "{a:?}");
    // ...and fewer strikes beat a higher score.
    let mut t = RequestTracker::new(limits());
    t.announce("a", "r", &[tx(3)]);
    t.announce("b", "r", &[tx(3)]);
    t.strike("a");
    let a = t.schedule(ranks, 500);
    assert_eq!(&*a[0].peer, "b");
}

#[test]
fn a_saturated_tracker_keeps_its_queue_in_order_and_resumes_where_it_stopped() {
    let mut t = RequestTracker::new(limits());
    let ids: Vec<TxRef> = (0..50).map(tx).collect();
    t.announce("p", "r", &ids);
    let first = t.schedule(|_| inbound(50.0), 500);
    assert_eq!(first[0].ids, ids[..10].to_vec());
    assert!(t.schedule(|_| inbound(50.0), 500).is_empty(), "no room");
    t.delivered("r", &id(3));
    let next = t.schedule(|_| inbound(50.0), 500);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].ids, vec![ids[10]], "the oldest waiting goes next");
    assert_eq!(t.len(), 49);
}

#[test]
fn a_full_peer_does_not_hold_up_what_others_announced() {
    let mut t = RequestTracker::new(limits());
    let dummies: Vec<TxRef> = (100..150).map(tx).collect();
    t.announce("mallory", "r", &dummies);
    t.announce("mallory", "r", &[tx(1)]);
    let ranks = |p: &str| inbound(if p == "mallory" { 90.0 } else { 50.0 });
    let a = t.schedule(ranks, 500);
    let asked: usize = a.iter().map(|x| x.ids.len()).sum();
    assert_eq!(asked, 10, "in flight per peer is bounded");
    assert_eq!(t.in_flight("mallory"), 10);
    // The victim, announced by an honest peer too, goes there at once.
    t.announce("honest", "r", &[tx(1)]);
    let a = t.schedule(ranks, 500);
    assert_eq!(a.len(), 1);
    assert_eq!(&*a[0].peer, "honest");
    assert_eq!(a[0].ids, vec![tx(1)]);
}

#[test]
fn announcements_are_bounded_per_peer_and_in_total() {
    let mut t = RequestTracker::new(Limits {
        per_peer: 5,
        total: 8,
        in_flight_per_peer: 10,
    });
    let r = t.announce("a", "r", &(0..7).map(tx).collect::<Vec<_>>());
    assert_eq!((r.added, r.peer_limited), (5, 2));
    let r = t.announce("b", "r", &(10..15).map(tx).collect::<Vec<_>>());
    // Three fit; then "a" (holding the most) gives way once, until both hold as many.
    assert_eq!((r.added, r.evicted, r.total_limited), (4, 1, 1));
    assert_eq!(t.announcements(), 8);
    let r = t.announce("c", "r", &[tx(20)]);
    assert_eq!((r.added, r.evicted), (1, 1));
    assert!(t.announcements() <= 8);
    // The same announcement twice counts once.
    let before = t.announcements();
    let r = t.announce("c", "r", &[tx(20)]);
    assert_eq!(r, Admitted::default());
    assert_eq!(t.announcements(), before);
}

#[test]
fn a_peer_that_goes_away_is_forgotten_and_its_requests_move_on() {
    let mut t = RequestTracker::new(limits());
    t.announce("a", "r", &[tx(1), tx(2)]);
    t.announce("b", "r", &[tx(1)]);
    let a = t.schedule(|p| inbound(if p == "a" { 90.0 } else { 1.0 }), 500);
    assert!(a.iter().all(|x| &*x.peer == "a"));
    let a = t.schedule(
        |p| {
            (p != "a").then_some(Rank {
                outbound: false,
                score: 1.0,
            })
        },
        500,
    );
    assert_eq!(a.len(), 1);
    assert_eq!((&*a[0].peer, a[0].ids.clone()), ("b", vec![tx(1)]));
    assert_eq!(t.len(), 1, "id 2 had no other announcer");
    // A late answer from the forgotten peer changes nothing.
    t.failed("a", "r", &id(1));
    assert_eq!(t.in_flight("b"), 1);
}

#[test]
fn transactions_not_requested_wait_without_a_strike() {
    let mut t = RequestTracker::new(limits());
    t.announce("a", "r", &[tx(1)]);
    let a = t.schedule(|_| inbound(1.0), 500);
    assert_eq!(a.len(), 1);
    t.not_requested("a", "r", &id(1));
    let a = t.schedule(|_| inbound(1.0), 500);
    assert_eq!(a.len(), 1, "asked again from the same peer");
}

#[test]
fn the_announcers_of_a_tracked_transaction_are_known_until_it_is_delivered() {
    let mut t = RequestTracker::new(limits());
    t.announce("a", "r", &[tx(1)]);
    t.announce("b", "r", &[tx(1)]);
    let mut peers: Vec<String> = (t.announcers("r", &id(1)).iter())
        .map(|p| p.to_string())
        .collect();
    peers.sort();
    assert_eq!(peers, vec!["a", "b"]);
    assert!(t.announcers("other", &id(1)).is_empty());
    t.delivered("r", &id(1));
    assert!(t.announcers("r", &id(1)).is_empty());
    assert_eq!(t.registers(), 0, "nothing tracked names the register");
}

#[test]
fn each_announcer_is_asked_for_what_it_announced() {
    let mut t = RequestTracker::new(limits());
    let (mut whole, mut made_up) = ([7; 32], [9; 32]);
    whole[..16].copy_from_slice(&id(1));
    made_up[..16].copy_from_slice(&id(1));
    // A made-up whole ID that shares the short one comes first, from another peer.
    t.announce("liar", "r", &[TxRef::Full(made_up)]);
    t.announce("new", "r", &[tx(1)]);
    t.announce("old", "r", &[TxRef::Full(whole)]);
    // Outbound before inbound, then the higher score: the liar, then "old", then "new".
    let ranks = |p: &str| {
        Some(Rank {
            outbound: p != "new",
            score: if p == "liar" { 90.0 } else { 50.0 },
        })
    };
    let a = t.schedule(ranks, 500);
    assert_eq!(&*a[0].peer, "liar");
    assert_eq!(a[0].ids, vec![TxRef::Full(made_up)]);
    t.failed("liar", "r", &id(1));
    let a = t.schedule(ranks, 500);
    assert_eq!(&*a[0].peer, "old");
    assert_eq!(
        a[0].ids,
        vec![TxRef::Full(whole)],
        "its own, not the liar's"
    );
    t.failed("old", "r", &id(1));
    let a = t.schedule(ranks, 500);
    assert_eq!(&*a[0].peer, "new");
    assert_eq!(a[0].ids, vec![tx(1)]);
}
