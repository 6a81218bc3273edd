//! The chain on a manual clock and an in-memory store: a register's genesis, dockets verified
//! and appended (heights, head hash, versions), and every docket that does not follow the head
//! refused without changing what is held.

use std::time::Duration;

use super::Role;
use super::chain::Chain;
use super::fixture::{Node, Origin, START_MS, node};
use crate::clock::{Clock, ManualClock};
use crate::ledger::{self, CompactDocket, VerifyError};

async fn replica(register_id: &str) -> (Node, Origin, ManualClock) {
    let clock = ManualClock::new(START_MS);
    let node = node(&clock, |_| {}).await;
    let origin = Origin::new(register_id);
    origin.replicate_on(&node).await;
    (node, origin, clock)
}

/// (docket number, head hash, latest version) held in memory, after checking the store's
/// newest docket says the same.
async fn head(node: &Node, register_id: &str) -> (u64, ledger::Hash, u64) {
    let held = node.registers.chain.get(register_id).expect("held");
    let stored = node
        .store
        .dockets(register_id, 0, 100)
        .await
        .expect("dockets");
    let newest = stored.last().expect("a docket");
    assert_eq!(
        newest.header, held.head,
        "the store's newest docket is the head"
    );
    assert_eq!(held.head_hash, held.head.hash());
    (held.head.number, held.head_hash, held.latest_version())
}

#[tokio::test]
async fn a_register_created_here_starts_at_a_genesis_dated_by_the_clock() {
    let clock = ManualClock::new(START_MS);
    let node = node(&clock, |_| {}).await;
    clock.advance(Duration::from_millis(42));
    node.registers.create("open", true).await.expect("create");
    node.registers
        .create("closed", false)
        .await
        .expect("create");

    let held = node.registers.chain.get("open").expect("held");
    assert_eq!(held.role, Role::Origin);
    assert_eq!(held.head.sealed_at_ms, START_MS + 42);
    assert_eq!(held.created_at_ms, START_MS + 42);
    assert_eq!((held.head.number, held.latest_version()), (0, 0));
    assert_eq!(head(&node, "open").await, (0, held.head.hash(), 0));
    let public: Vec<String> = (node.registers.chain.public_heights().into_iter())
        .map(|h| h.register_id)
        .collect();
    assert_eq!(public, ["open"], "a private register is never advertised");
    assert!(node.registers.chain.holds("closed"));
}

#[tokio::test]
async fn verified_dockets_extend_the_chain_and_survive_a_reload() {
    let (node, origin, _clock) = replica("ledger").await;
    let batch = origin.seal(&origin.genesis.header, &[&[b"t1", b"t2"], &[b"t3"]]);
    let last_hash = batch[1].docket.header.hash();

    let applied = (node.registers.chain.apply("ledger", batch.clone()))
        .await
        .expect("apply");
    assert!(applied.invalid.is_none());
    let numbers: Vec<u64> = (applied.stored.iter())
        .map(|c| c.docket.header.number)
        .collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(
        applied.stored[0].tx_ids,
        [ledger::tx_hash(b"t1"), ledger::tx_hash(b"t2")]
    );
    assert_eq!(head(&node, "ledger").await, (2, last_hash, 3));
    let payloads = node.store.payloads("ledger", 1, 3).await.expect("payloads");
    assert_eq!(payloads, [b"t1".to_vec(), b"t2".to_vec(), b"t3".to_vec()]);

    let reloaded = Chain::load(
        node.store.clone(),
        node.registers.pool.clone(),
        node.registers.metrics.clone(),
        std::sync::Arc::new(crate::events::Events::new()),
        Clock::System,
    )
    .await
    .expect("reload");
    let held = reloaded.get("ledger").expect("held after reload");
    assert_eq!((held.head.number, held.head_hash), (2, last_hash));
}

#[tokio::test]
async fn dockets_held_already_are_skipped_and_the_rest_applied() {
    let (node, origin, _clock) = replica("ledger").await;
    let batch = origin.seal(&origin.genesis.header, &[&[b"t1"], &[b"t2"]]);
    let chain = &node.registers.chain;
    chain
        .apply("ledger", batch[..1].to_vec())
        .await
        .expect("apply");

    let applied = chain.apply("ledger", batch.clone()).await.expect("apply");
    assert!(applied.invalid.is_none());
    assert_eq!(applied.stored.len(), 1, "only docket 2 is new");
    assert_eq!(applied.stored[0].docket.header.number, 2);

    let again = chain.apply("ledger", batch).await.expect("apply");
    assert!(again.stored.is_empty() && again.invalid.is_none());
    assert_eq!(head(&node, "ledger").await.0, 2);
}

#[tokio::test]
async fn a_forged_docket_stops_the_batch_and_the_verified_prefix_is_kept() {
    let (node, origin, _clock) = replica("ledger").await;
    let mut batch = origin.seal(&origin.genesis.header, &[&[b"t1"], &[b"t2"], &[b"t3"]]);
    // Docket 2 re-signed by a key that is not the origin's: the link and root still match.
    let mallory = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    batch[1].docket = ledger::sign(&mallory, batch[1].docket.header.clone());
    let first_hash = batch[0].docket.header.hash();

    let applied = node
        .registers
        .chain
        .apply("ledger", batch)
        .await
        .expect("apply");
    assert_eq!(applied.invalid, Some(VerifyError::BadSignature(2)));
    assert_eq!(applied.stored.len(), 1);
    assert_eq!(head(&node, "ledger").await, (1, first_hash, 1));
}

#[tokio::test]
async fn a_docket_that_does_not_follow_the_head_changes_nothing() {
    let (node, origin, _clock) = replica("ledger").await;
    let genesis_hash = origin.genesis.header.hash();
    let good = origin.seal(&origin.genesis.header, &[&[b"t1"], &[b"t2"]]);
    let resign = |header| ledger::sign(&origin.key, header);

    let mut wrong_link = good[0].clone();
    wrong_link.docket.header.previous_hash = [1; 32];
    wrong_link.docket = resign(wrong_link.docket.header);
    let mut changed_payload = good[0].clone();
    changed_payload.transactions[0] = b"T1".to_vec();
    let mut changed_header = good[0].clone();
    changed_header.docket.header.sealed_at_ms += 1; // the signature no longer matches
    let mut wrong_version = good[0].clone();
    wrong_version.docket.header.first_version = 2;
    wrong_version.docket = resign(wrong_version.docket.header);
    let mut other_register = origin.seal(&Origin::new("other").genesis.header, &[&[b"t1"]]);
    other_register[0].docket.header.previous_hash = genesis_hash;
    other_register[0].docket = resign(other_register[0].docket.header.clone());

    let cases = [
        (wrong_link, VerifyError::BrokenLink(1)),
        (changed_payload, VerifyError::BadMerkleRoot(1)),
        (changed_header, VerifyError::BadSignature(1)),
        (wrong_version, VerifyError::WrongVersion(1)),
        (other_register.remove(0), VerifyError::WrongRegister(1)),
        (
            good[1].clone(),
            VerifyError::WrongNumber {
                expected_previous: 0,
                got: 2,
            },
        ),
    ];
    for (entry, expected) in cases {
        let applied = (node.registers.chain.apply("ledger", vec![entry]))
            .await
            .expect("apply");
        assert_eq!(applied.invalid, Some(expected.clone()));
        assert!(applied.stored.is_empty(), "{expected:?}");
        assert_eq!(
            head(&node, "ledger").await,
            (0, genesis_hash, 0),
            "{expected:?}"
        );
    }
}

#[tokio::test]
async fn a_pushed_docket_of_pending_transactions_is_sealed_in_place_only_when_next() {
    let (node, origin, _clock) = replica("ledger").await;
    let pool = &node.registers.pool;
    let chain = &node.registers.chain;
    let dockets = origin.seal(&origin.genesis.header, &[&[b"t1", b"t2"], &[b"t3"]]);
    let pending = [b"t1", b"t2", b"t3"].map(|p| (ledger::tx_id(p), p.to_vec()));
    (pool.accept_gossiped("ledger", pending.to_vec(), Default::default()))
        .await
        .expect("pending");

    let ahead = chain
        .apply_held(&CompactDocket::from_full(&dockets[1]))
        .await
        .expect("apply");
    assert!(
        ahead.stored.is_empty() && ahead.invalid.is_none(),
        "not next: nothing"
    );
    assert_eq!(head(&node, "ledger").await.0, 0);

    let mut swapped = CompactDocket::from_full(&dockets[0]);
    swapped.tx_ids.swap(0, 1);
    let refused = chain.apply_held(&swapped).await.expect("apply");
    assert_eq!(refused.invalid, Some(VerifyError::BadMerkleRoot(1)));
    assert_eq!(head(&node, "ledger").await.0, 0);

    let next = chain
        .apply_held(&CompactDocket::from_full(&dockets[0]))
        .await
        .expect("apply");
    assert!(next.invalid.is_none());
    assert_eq!(
        head(&node, "ledger").await,
        (1, dockets[0].docket.header.hash(), 2)
    );
    let still_pending = node.store.pending("ledger", 10).await.expect("pending");
    assert_eq!(
        still_pending,
        [pending[2].clone()],
        "t1 and t2 are sealed now"
    );
}

#[tokio::test]
async fn dockets_of_a_register_not_held_are_ignored() {
    let (node, _origin, _clock) = replica("ledger").await;
    let stranger = Origin::new("elsewhere");
    let batch = stranger.seal(&stranger.genesis.header, &[&[b"t1"]]);
    let applied = node
        .registers
        .chain
        .apply("elsewhere", batch)
        .await
        .expect("apply");
    assert!(applied.stored.is_empty() && applied.invalid.is_none());
    assert!(!node.registers.chain.holds("elsewhere"));
    assert!(
        node.store
            .dockets("elsewhere", 0, 10)
            .await
            .expect("dockets")
            .is_empty()
    );
}

#[tokio::test]
async fn a_batch_verified_off_the_writer_is_stored_only_on_the_head_it_was_checked_against() {
    use super::chain::Checked;
    let (node, origin, _clock) = replica("piped").await;
    let chain = &node.registers.chain;
    let first = origin.seal(&origin.genesis.header, &[&[b"a"], &[b"b"]]);
    let second = origin.seal(&first[1].docket.header, &[&[b"c"]]);

    // Verified on top of the genesis, then on top of the first batch's last header, before
    // either is stored: the way a pull verifies batch k+1 while batch k is being written.
    let key = origin.origin_key();
    let checked_first = Checked::new(&key, origin.genesis.header.clone(), first.clone());
    let checked_second = Checked::new(&key, checked_first.last.clone(), second);
    assert_eq!((checked_first.dockets(), checked_second.dockets()), (2, 1));

    let stored = chain.store_checked(checked_first).await.expect("store");
    assert_eq!((stored.stored.len(), stored.invalid.is_none()), (2, true));
    let stored = chain.store_checked(checked_second).await.expect("store");
    assert_eq!((stored.stored.len(), stored.invalid.is_none()), (1, true));
    assert_eq!(head(&node, "piped").await.0, 3);

    // A batch checked on top of a head that has moved since (docket 1, while 3 is held) is not
    // stored, and its refusal is still reported.
    let mut tampered = origin.seal(&first[0].docket.header, &[&[b"x"]]);
    tampered[0].transactions[0] = b"y".to_vec();
    let stale = Checked::new(&key, first[0].docket.header.clone(), tampered);
    assert_eq!(stale.dockets(), 0);
    let refused = chain.store_checked(stale).await.expect("store");
    assert!(refused.stored.is_empty());
    assert!(matches!(
        refused.invalid,
        Some(VerifyError::BadMerkleRoot(2))
    ));
    let moved = Checked::new(&key, first[0].docket.header.clone(), first[1..].to_vec());
    assert_eq!(moved.dockets(), 1, "docket 2 follows docket 1");
    let outcome = chain.store_checked(moved).await.expect("store");
    assert!(outcome.stored.is_empty() && outcome.invalid.is_none());
    assert_eq!(head(&node, "piped").await.0, 3, "nothing changed");

    // Dockets at or below the header checked against are skipped, not refused.
    let old = Checked::new(&key, first[1].docket.header.clone(), first);
    assert_eq!((old.dockets(), old.invalid.is_none()), (0, true));
}

#[tokio::test]
async fn a_batch_the_store_refuses_changes_nothing_and_is_not_counted() {
    let (node, origin, _clock) = replica("counted").await;
    let batch = origin.seal(&origin.genesis.header, &[&[b"a"]]);
    // Docket 1 written behind the chain's back: storing it again fails in the store.
    let record = (node.store.load_registers().await.expect("registers"))
        .into_iter()
        .find(|r| r.register_id == "counted")
        .expect("record");
    let rows = vec![(batch[0].docket.clone(), Vec::new())];
    node.store.append(&record, &rows).await.expect("append");

    let failed = node.registers.chain.apply("counted", batch).await;
    assert!(failed.is_err(), "the store refuses a docket it holds");
    assert_eq!(node.metrics.dockets_replicated.get(), 0, "nothing counted");
    let held = node.registers.chain.get("counted").expect("held");
    assert_eq!(held.head.number, 0, "the head did not move");
}
