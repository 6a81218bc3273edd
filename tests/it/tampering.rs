//! Replicas never accept data that fails verification. The misbehaving peer here is a real
//! node whose database was tampered with while it was down, so it serves altered transactions
//! or forged dockets through the normal protocol; the replica must refuse them, penalise it,
//! try elsewhere, and ban it automatically when it keeps doing it.

use std::time::Duration;

use sqlx::sqlite::SqlitePoolOptions;

use crate::common::{PATIENCE, TestCluster, wait_until};

/// An origin with 30 transactions in dockets of 5, a full replica `m` of it that then gets
/// `tamper` applied to its database, and a victim `v` whose only peer is `m`.
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn tamper_story(tamper: &str, honest_reachable: bool) {
    let mut net = TestCluster::new();
    // The honest origin never dials anyone and M shares no addresses, so V's only peer is M.
    let mut a = net
        .start(|c| {
            c.max_docket_transactions = 5;
            c.max_outbound = 0;
        })
        .await;
    let seed = a.seed();
    let mut m = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.exchange_interval = Duration::ZERO;
        })
        .await;
    a.wait_for_state(&m.peer_id, "connected", PATIENCE).await;
    a.client
        .create_register("audit", true)
        .await
        .expect("create");
    let payloads: Vec<String> = (1..=30).map(|i| format!("entry-{i}")).collect();
    a.client
        .submit_batch("audit", payloads)
        .await
        .expect("submit");
    a.wait_for_version("audit", 30, PATIENCE).await;
    wait_until("M to see audit", PATIENCE, || async {
        m.client
            .available_registers()
            .await
            .is_ok_and(|r| r.iter().any(|x| x.register_id == "audit"))
    })
    .await;
    m.client
        .subscribe("audit", "full-replica")
        .await
        .expect("subscribe");
    m.wait_for_version("audit", 30, PATIENCE).await;
    let genuine_head = a.register("audit").await.expect("audit").head_hash;

    // Tamper with M's copy while it is down, then bring it back.
    m.stop().await;
    let db = m.data_dir().join("sorcha-peer.db");
    let pool = SqlitePoolOptions::new()
        .connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open M's database");
    let changed = sqlx::query(tamper)
        .execute(&pool)
        .await
        .expect("tamper")
        .rows_affected();
    assert_eq!(changed, 1, "the tampering statement changed one row");
    pool.close().await;
    m.restart().await;

    // V knows only M (no exchange, so it cannot find the honest origin) unless told otherwise.
    let m_seed = m.seed();
    let mut v = net
        .start(|c| {
            c.seeds = vec![m_seed.clone()];
            if honest_reachable {
                c.seeds.push(seed.clone());
            }
            c.exchange_interval = Duration::ZERO;
        })
        .await;
    v.wait_for_state(&m.peer_id, "connected", PATIENCE).await;
    wait_until("V to see audit", PATIENCE, || async {
        v.client
            .available_registers()
            .await
            .is_ok_and(|r| r.iter().any(|x| x.register_id == "audit"))
    })
    .await;
    v.client
        .subscribe("audit", "full-replica")
        .await
        .expect("subscribe");

    if honest_reachable {
        // Bad data from M is discarded and the honest source fills the gap: V ends with
        // exactly the origin's chain.
        v.wait_for_version("audit", 30, PATIENCE).await;
        assert_eq!(
            v.register("audit").await.expect("audit").head_hash,
            genuine_head
        );
        v.stop().await;
        m.stop().await;
        a.stop().await;
        return;
    }

    // Refused, penalised, and after three failures banned automatically.
    wait_until("M to be banned automatically", PATIENCE, || async {
        v.client
            .bans()
            .await
            .is_ok_and(|b| b.iter().any(|x| x.target == m.peer_id))
    })
    .await;
    let bans = v.client.bans().await.expect("bans");
    let ban = bans
        .iter()
        .find(|b| b.target == m.peer_id)
        .expect("ban on M");
    assert_eq!(ban.source, "automatic");
    assert!(ban.reason.contains("failed verification"), "{ban:?}");
    assert!(ban.expires_at.is_some(), "automatic bans expire");
    let view = v.view_of(&m.peer_id).await.expect("V knows M");
    assert!(view.quality_components.validity < 1.0, "{view:?}");
    let penalty = view
        .quality_components
        .last_penalty
        .expect("a penalty is recorded");
    assert!(penalty.reason.contains("verification"), "{penalty:?}");

    // Whatever V stored is genuine: it stopped before the tampered docket (docket 3 holds
    // versions 11-15) and its head is the origin's docket at that height.
    let held = v.register("audit").await;
    if let Some(held) = held {
        assert!(held.latest_docket_version < 3, "{held:?}");
        assert!(held.latest_version <= 10, "{held:?}");
        assert_ne!(held.head_hash, genuine_head);
        let lag = v
            .client
            .lag(&a.seed(), Some("audit"))
            .await
            .expect("lag against the origin");
        assert!(
            !lag[0].diverged,
            "V's chain is a prefix of the origin's: {lag:?}"
        );
    }

    v.stop().await;
    m.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_transactions_are_refused_and_the_source_banned() {
    tamper_story(
        "UPDATE transactions SET payload = X'6576696c' WHERE register_id = 'audit' AND version = 12",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_docket_headers_are_refused_and_the_source_banned() {
    tamper_story(
        "UPDATE dockets SET sealed_at_ms = sealed_at_ms + 1 WHERE register_id = 'audit' AND number = 3",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_honest_source_around_the_replica_ends_with_the_genuine_chain() {
    tamper_story(
        "UPDATE transactions SET payload = X'6576696c' WHERE register_id = 'audit' AND version = 3",
        true,
    )
    .await;
}

/// A docket its origin did not sign, pushed by a hand-built peer with transactions of its own
/// that it serves when asked: nothing of it is stored, not even as pending (which would let a
/// peer bring transactions in past gossip's per-peer limits). Failed before a pushed docket's
/// missing transactions were stored only once its signature and chain checked out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_pushed_docket_stores_nothing() {
    use sorcha_peer::identity::Identity;
    use sorcha_peer::protocol::pb::{self, frame::Body};

    let mut net = TestCluster::new();
    let a = net.start(|_| {}).await;
    let seed = a.seed();
    let b = net.start(|c| c.seeds = vec![seed]).await;
    a.client
        .create_register("forged", true)
        .await
        .expect("create");
    crate::common::replicate_along(&[&a, &b], "forged").await;
    let head = b
        .register("forged")
        .await
        .expect("held")
        .latest_docket_version;

    let mallory = Identity::generate();
    let (to_b, mut from_b) = crate::common::hostile::session_as(&b, &mallory).await;
    let payloads: Vec<Vec<u8>> = (0..3)
        .map(|i| format!("smuggled {i}").into_bytes())
        .collect();
    let ids: Vec<String> = payloads
        .iter()
        .map(|p| sorcha_peer::ledger::tx_id(p))
        .collect();
    let forged = pb::DocketEntry {
        register_id: "forged".into(),
        number: head + 1,
        previous_hash: vec![0; 32],
        merkle_root: vec![0; 32],
        tx_count: 3,
        first_version: 1,
        sealed_at_ms: 1,
        signature: vec![0; 64],
        tx_ids: ids.iter().map(|h| hex::decode(h).expect("hex")).collect(),
        ..Default::default()
    };
    to_b.send(pb::Frame {
        body: Some(Body::DocketPush(pb::DocketPush {
            docket: Some(forged),
        })),
    })
    .await
    .expect("push");
    // Serve whatever B asks for, for a while.
    let serve = async {
        while let Ok(Some(frame)) = from_b.message().await {
            if let Some(Body::PullTransactions(pull)) = frame.body {
                let answer = Body::TransactionsBatch(pb::TransactionsBatch {
                    request_id: pull.request_id,
                    register_id: pull.register_id,
                    payloads: payloads.clone(),
                    missing: vec![],
                    missing_short: vec![],
                    error: String::new(),
                });
                let _ = to_b.send(pb::Frame { body: Some(answer) }).await;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), serve).await;
    for id in &ids {
        let found = b.client.transaction("forged", id).await;
        assert!(found.is_err(), "stored from a forged docket: {found:?}");
    }
    assert_eq!(
        b.register("forged")
            .await
            .expect("held")
            .latest_docket_version,
        head
    );
}
