//! Examples of the peer table's eviction choice that the properties (`state_props.rs`) do not
//! pin down: the exact millisecond of "seen before", the number of requests that makes a peer
//! useful, and which peers are never chosen.

use super::record::Peer;
use super::table::{PeerTable, Standing};

/// A peer last seen at `last_seen_ms` that answered `requests` requests after a handshake.
fn peer(table: &mut PeerTable, n: u8, last_seen_ms: i64, requests: u64) -> String {
    let id = format!("{n:02x}").repeat(16);
    let record: &mut Peer = table.entry(&id, &format!("10.0.0.{n}:7000"), last_seen_ms);
    record.public_key = "key".into();
    record.quality.successful_requests = requests;
    id
}

const FREE: Standing<'static> = Standing {
    connected: &|_| false,
    banned: &|_| false,
};

#[test]
fn a_peer_seen_at_the_exact_millisecond_given_is_not_seen_before_it() {
    let mut table = PeerTable::default();
    let a = peer(&mut table, 1, 100, 0);
    peer(&mut table, 2, 200, 0);
    assert_eq!(table.evict_least_useful(100, &FREE), None);
    assert_eq!(table.len(), 2);
    assert_eq!(table.evict_least_useful(101, &FREE), Some(a));
    assert_eq!(table.len(), 1);
}

#[test]
fn a_peer_useful_after_twenty_requests_outlives_fresher_ones() {
    let mut table = PeerTable::default();
    let almost = peer(&mut table, 1, 1, 19);
    let useful = peer(&mut table, 2, 2, 20);
    let fresh = peer(&mut table, 3, 1_000, 0);
    // Nineteen requests prove nothing yet: that peer goes first, as the one seen longest ago.
    assert_eq!(table.evict_least_useful(i64::MAX, &FREE), Some(almost));
    assert_eq!(table.evict_least_useful(i64::MAX, &FREE), Some(fresh));
    assert_eq!(table.evict_least_useful(i64::MAX, &FREE), Some(useful));
    assert_eq!(table.evict_least_useful(i64::MAX, &FREE), None);
}

#[test]
fn connected_dialled_seed_and_banned_peers_are_never_chosen() {
    let mut table = PeerTable::default();
    let connected = peer(&mut table, 1, 1, 0);
    let dialled = peer(&mut table, 2, 1, 0);
    let seed = peer(&mut table, 3, 1, 0);
    let banned = peer(&mut table, 4, 1, 0);
    let other = peer(&mut table, 5, 1_000, 20);
    table.update(&dialled, |p| p.dialing = true);
    table.update(&seed, |p| p.is_seed = true);
    let standing = Standing {
        connected: &|id| id == connected,
        banned: &|p| p.peer_id == banned,
    };
    assert_eq!(table.evict_least_useful(i64::MAX, &standing), Some(other));
    assert_eq!(table.evict_least_useful(i64::MAX, &standing), None);
    assert_eq!(table.len(), 4);
}
