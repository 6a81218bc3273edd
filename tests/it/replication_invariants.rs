//! Replication truth, as a property: random sequences of subscribe (either mode), unsubscribe
//! (with or without purge) and purge at a replica, while its origin keeps taking
//! transactions. After each step settles, what the replica reports must be what it holds:
//! - `fully-replicated`, role `full-replica` and 100 % mean every docket from the genesis is
//!   held: every transaction the origin sealed up to the replica's head is found there, at the
//!   same version;
//! - a forward-only replica holds everything after its anchor;
//! - the role shown is the subscription's mode;
//! - a subscription that reports itself at the head holds at least the head its source had
//!   when the subscribe call began;
//! - a full replica over a forward-only start is refused and changes nothing.
//!
//! Real nodes on loopback, on both storage backends.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use sorcha_peer::client::ClientError;

use crate::common::{PATIENCE, TestCluster, TestNode, postgres, wait_for};

const REGISTER: &str = "ledger";

#[derive(Clone, Copy, Debug)]
enum Op {
    /// The origin takes this many transactions and seals them.
    Submit(usize),
    Subscribe {
        full: bool,
    },
    Unsubscribe {
        purge: bool,
    },
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..40).prop_map(Op::Submit),
        any::<bool>().prop_map(|full| Op::Subscribe { full }),
        any::<bool>().prop_map(|purge| Op::Unsubscribe { purge }),
        Just(Op::Purge),
    ]
}

/// What the test knows the replica should be.
#[derive(Default, Debug)]
struct Model {
    /// The subscription's mode (`true`: full replica), if subscribed.
    subscribed: Option<bool>,
    /// Whether data is held, and whether it starts at the genesis.
    held: Option<bool>,
}

/// Every transaction the origin sealed: version → ID.
type Sealed = BTreeMap<u64, String>;

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

async fn origin_head(a: &TestNode) -> Result<(u64, u64), TestCaseError> {
    let r = a
        .register(REGISTER)
        .await
        .ok_or_else(|| fail("the origin lost its register".into()))?;
    Ok((r.latest_docket_version, r.latest_version))
}

/// Submits `n` transactions at the origin and waits until they are sealed there.
async fn submit(a: &TestNode, sealed: &mut Sealed, n: usize) -> Result<(), TestCaseError> {
    let start = sealed.len();
    let payloads: Vec<String> = (1..=n).map(|i| format!("tx-{}", start + i)).collect();
    let done = a
        .client
        .submit_batch(REGISTER, payloads)
        .await
        .map_err(|e| fail(format!("submit: {e}")))?;
    for id in done.transaction_ids {
        let tx = wait_for("a submitted transaction to be sealed", PATIENCE, || async {
            a.client
                .transaction(REGISTER, &id)
                .await
                .ok()
                .filter(|t| t.state == "sealed")
        })
        .await;
        let version = tx
            .version
            .ok_or_else(|| fail(format!("{id} sealed without a version")))?;
        sealed.insert(version, id);
    }
    Ok(())
}

/// Waits until the replica's subscription reports itself at the head, and returns its head.
async fn settle(b: &TestNode, full: bool) -> (u64, u64) {
    let want = if full { "FullyReplicated" } else { "Active" };
    wait_for("the replica to settle", PATIENCE, || async {
        let sub = b
            .client
            .subscriptions()
            .await
            .ok()?
            .into_iter()
            .find(|s| s.register_id == REGISTER)?;
        (sub.sync_state == want).then_some((
            sub.last_synced_docket_version,
            sub.last_synced_transaction_version,
        ))
    })
    .await
}

/// Checks what the replica reports against what it holds.
async fn check(b: &TestNode, model: &Model, sealed: &Sealed) -> Result<(), TestCaseError> {
    let view = b.register(REGISTER).await;
    match (model.held, &view) {
        (None, None) => return Ok(()),
        (None, Some(v)) => return Err(fail(format!("purged data still shown: {v:?}"))),
        (Some(_), None) => return Err(fail("held data is not shown".into())),
        (Some(_), Some(_)) => {}
    }
    let Some(view) = view else {
        return Ok(());
    };
    if let Some(full) = model.subscribed {
        let role = if full { "full-replica" } else { "forward-only" };
        prop_assert_eq!(
            &view.role,
            role,
            "the role shown is the subscription's mode"
        );
    } else {
        prop_assert_eq!(&view.sync_state, "stopped");
    }
    let complete = view.role == "full-replica" || view.sync_state == "fully-replicated";
    if complete {
        prop_assert_eq!(
            view.transaction_count,
            view.latest_version,
            "a full replica holds every transaction from the genesis: {:?}",
            view
        );
    }
    // Every transaction sealed after the anchor (the genesis for a full replica), up to the
    // head, is found here sealed at the origin's version.
    let base_version = view.latest_version - view.transaction_count;
    let held_versions = sealed
        .iter()
        .filter(|(v, _)| **v > base_version && **v <= view.latest_version);
    for (version, id) in held_versions {
        let tx = b
            .client
            .transaction(REGISTER, id)
            .await
            .map_err(|e| fail(format!("{id} (version {version}) not held: {e}")))?;
        prop_assert_eq!(
            tx.version,
            Some(*version),
            "{} is at the origin's version",
            id
        );
    }
    if view.sync_progress_percent >= 100.0 && model.subscribed == Some(true) {
        prop_assert_eq!(&view.sync_state, "fully-replicated");
    }
    Ok(())
}

/// Applies one step at the replica and updates the model; checks each refusal is the one
/// the rules call for and changed nothing.
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn step(
    a: &TestNode,
    b: &TestNode,
    model: &mut Model,
    sealed: &mut Sealed,
    op: Op,
) -> Result<(), TestCaseError> {
    match op {
        Op::Submit(n) => {
            submit(a, sealed, n).await?;
            if let Some(full) = model.subscribed {
                let (head, _) = origin_head(a).await?;
                let (height, _) = settle_at(b, full, head).await;
                prop_assert!(height >= head);
            }
        }
        Op::Subscribe { full } => {
            let before = b.register(REGISTER).await;
            let (source_head, _) = origin_head(a).await?;
            let mode = if full { "full-replica" } else { "forward-only" };
            let result = b.client.subscribe(REGISTER, mode).await;
            match (model.subscribed, model.held, full) {
                (Some(current), _, _) if current == full => {
                    // The same subscription again: a no-op.
                    let view = result.map_err(|e| fail(format!("subscribe again: {e}")))?;
                    // The platform's name for the mode asked for.
                    let named = if full { "FullReplica" } else { "ForwardOnly" };
                    prop_assert_eq!(view.mode.as_str(), named);
                }
                (Some(_), _, _) => {
                    prop_assert!(
                        matches!(result, Err(ClientError::Conflict(_))),
                        "{:?}",
                        result
                    );
                }
                (None, Some(false), true) => {
                    let refused =
                        matches!(&result, Err(ClientError::Conflict(m)) if m.contains("purge"));
                    prop_assert!(
                        refused,
                        "full replica over a forward-only start: {:?}",
                        result
                    );
                    let after = b.register(REGISTER).await;
                    prop_assert_eq!(
                        before.map(|r| (r.role, r.sync_state)),
                        after.map(|r| (r.role, r.sync_state)),
                        "a refused subscribe changes nothing"
                    );
                }
                (None, held, _) => {
                    result.map_err(|e| fail(format!("subscribe {mode}: {e}")))?;
                    model.subscribed = Some(full);
                    // Data held already stays as it is; a new forward-only replica starts at
                    // the source's head (the genesis while nothing is sealed).
                    model.held = Some(held.unwrap_or(full || source_head == 0));
                    // Whatever the mode: at the head only once the source's head as of the
                    // call is held.
                    let (height, _) = settle(b, full).await;
                    prop_assert!(
                        height >= source_head,
                        "reported at the head at docket {} while the source was at {}",
                        height,
                        source_head
                    );
                }
            }
        }
        Op::Unsubscribe { purge } => {
            let result = b.client.unsubscribe(REGISTER, purge).await;
            if model.subscribed.is_none() {
                prop_assert!(
                    matches!(result, Err(ClientError::NotFound(_))),
                    "{:?}",
                    result
                );
            } else {
                result.map_err(|e| fail(format!("unsubscribe: {e}")))?;
                model.subscribed = None;
                if purge {
                    model.held = None;
                }
            }
        }
        Op::Purge => {
            let result = b.client.purge(REGISTER).await;
            match (model.subscribed, model.held) {
                (Some(_), _) => {
                    prop_assert!(
                        matches!(result, Err(ClientError::Conflict(_))),
                        "{:?}",
                        result
                    );
                }
                (None, None) => {
                    prop_assert!(
                        matches!(result, Err(ClientError::NotFound(_))),
                        "{:?}",
                        result
                    );
                }
                (None, Some(_)) => {
                    result.map_err(|e| fail(format!("purge: {e}")))?;
                    model.held = None;
                }
            }
        }
    }
    check(b, model, sealed).await
}

/// Waits until the replica reports itself at the head and holds docket `head`.
async fn settle_at(b: &TestNode, full: bool, head: u64) -> (u64, u64) {
    wait_for(
        "the replica to reach the origin's head",
        PATIENCE,
        || async {
            let at = settle(b, full).await;
            (at.0 >= head).then_some(at)
        },
    )
    .await
}

async fn run_case(postgres: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    // Each case starts from an empty replica: on PostgreSQL, a database of its own.
    let database_url = if postgres {
        Some(
            postgres::fresh_database()
                .await
                .ok_or_else(|| fail("PostgreSQL went away".into()))?,
        )
    } else {
        None
    };
    let mut net = TestCluster::new();
    let mut a = net.start(|c| c.name = "origin".into()).await;
    let seed = a.seed();
    let mut b = net
        .start(|c| {
            c.seeds = vec![seed.clone()];
            c.database_url = database_url.clone();
        })
        .await;
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    a.client
        .create_register(REGISTER, true)
        .await
        .map_err(|e| fail(format!("create: {e}")))?;
    wait_for("the register to be advertised", PATIENCE, || async {
        b.client
            .available_registers()
            .await
            .ok()?
            .into_iter()
            .find(|r| r.register_id == REGISTER)
    })
    .await;
    let mut model = Model::default();
    let mut sealed = Sealed::new();
    let mut outcome = Ok(());
    for op in ops {
        outcome = step(&a, &b, &mut model, &mut sealed, op).await;
        if outcome.is_err() {
            break;
        }
    }
    b.stop().await;
    a.stop().await;
    outcome
}

/// Runs `cases` random sequences (shrunk to a short one on failure, which is printed).
fn property(postgres: bool, cases: u32) {
    let config = ProptestConfig {
        cases,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(op(), 4..16), |ops| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(format!("runtime: {e}")))?
            .block_on(run_case(postgres, ops))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn replication_reports_only_what_it_holds_on_sqlite() {
    property(false, 16);
}

#[test]
fn replication_reports_only_what_it_holds_on_postgres() {
    let available = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(postgres::fresh_database())
        .is_some();
    if available {
        property(true, 8);
    }
}

/// The sequence an outside review found: a forward-only replica with history behind its
/// anchor, unsubscribed without a purge, then subscribed as a full replica. It reported
/// "fully-replicated" while it held a few dockets of hundreds.
#[test]
fn a_forward_only_start_is_not_turned_into_a_full_replica() {
    let ops = vec![
        Op::Submit(30),
        Op::Submit(30),
        Op::Subscribe { full: false },
        Op::Submit(5),
        Op::Unsubscribe { purge: false },
        Op::Subscribe { full: true },
        Op::Subscribe { full: false },
        Op::Unsubscribe { purge: true },
        Op::Subscribe { full: true },
        Op::Submit(5),
    ];
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run_case(false, ops));
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
