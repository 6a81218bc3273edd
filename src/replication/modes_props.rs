//! State-machine properties of the replication modes: random subscribes (either mode),
//! unsubscribes, purges, sync rounds that receive dockets and reach the head or not, failed
//! rounds and new dockets at the source, through the real mode-switch rule
//! (`check_mode_switch`), subscription bookkeeping (`subscriptions.rs`) and operator views
//! (`views.rs`), over a model of the chain held. After every step: a switch is refused exactly
//! when the rule says (never a full replica over a forward-only start); "fully-replicated" is
//! shown only for a full replica holding every docket from the genesis up to its source's head
//! as last seen; a forward-only replica never counts dockets before its anchor; the role is
//! the subscription's mode; no status word outlives the state it describes; targets are never
//! below what is held and progress never above 100 %.

use std::sync::Arc;

use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

use super::chain::Held;
use super::operator::check_mode_switch;
use super::subscriptions::{Subscriptions, SyncState};
use super::views::{register_view, subscription_view};
use super::{Mode, Role};
use crate::clock::{Clock, ManualClock};
use crate::events::Events;
use crate::ledger::DocketHeader;

const REGISTER: &str = "ledger";

#[derive(Clone, Debug)]
enum Op {
    /// The origin seals this many dockets (one transaction each).
    Seal(u64),
    Subscribe(bool),
    Unsubscribe,
    Purge,
    /// The subscription's task runs a round that receives at most this many dockets.
    Round(u64),
    Fail,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1u64..5).prop_map(Op::Seal),
        2 => any::<bool>().prop_map(Op::Subscribe),
        1 => Just(Op::Unsubscribe),
        1 => Just(Op::Purge),
        3 => (0u64..6).prop_map(Op::Round),
        1 => Just(Op::Fail),
    ]
}

/// Docket `n`: the genesis holds no transaction, every later docket one (version `n`).
fn header(n: u64) -> DocketHeader {
    DocketHeader {
        register_id: REGISTER.into(),
        number: n,
        previous_hash: [0; 32],
        merkle_root: [0; 32],
        tx_count: u32::from(n > 0),
        first_version: n.max(1),
        sealed_at_ms: 0,
    }
}

/// The chain held here: (base, head, role).
type Chain = Option<(u64, u64, Role)>;

fn held(chain: Chain) -> Option<Held> {
    chain.map(|(base, head, role)| {
        let mut h = Held::new(true, role, [0; 32], &header(base), base, 0);
        h.head = header(head);
        h
    })
}

struct Model {
    source: u64,
    chain: Chain,
    mode: Option<Mode>,
    state: Option<SyncState>,
    /// The source's head when the subscription last reached it.
    reached: Option<u64>,
}

// One match over the operations against the model: the steps read best side by side.
#[allow(clippy::too_many_lines)]
fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let subs = Subscriptions::new(Arc::new(Events::new()), Clock::Manual(ManualClock::new(0)));
    let mut m = Model {
        source: 0,
        chain: None,
        mode: None,
        state: None,
        reached: None,
    };
    for op in ops {
        match op {
            Op::Seal(n) => m.source += n,
            Op::Subscribe(full) => {
                let mode = if full {
                    Mode::FullReplica
                } else {
                    Mode::ForwardOnly
                };
                if m.mode.is_some() {
                    continue; // the same mode changes nothing, another is refused
                }
                let allowed =
                    held(m.chain).map_or(Ok(()), |h| check_mode_switch(REGISTER, &h, mode));
                let base = m.chain.map_or(0, |c| c.0);
                prop_assert_eq!(
                    allowed.is_ok(),
                    !(full && base > 0),
                    "switch to {:?} over base {}",
                    mode,
                    base
                );
                if allowed.is_ok() {
                    // Data held already serves the new mode.
                    if let Some(c) = m.chain.as_mut() {
                        c.2 = mode.role();
                    }
                    subs.insert(REGISTER, mode, 0, CancellationToken::new());
                    m.mode = Some(mode);
                    m.state = Some(SyncState::Subscribing);
                    m.reached = None;
                }
            }
            Op::Unsubscribe => {
                prop_assert_eq!(subs.remove(REGISTER).is_some(), m.mode.is_some());
                m.mode = None;
                m.state = None;
            }
            Op::Purge => {
                if m.mode.is_none() {
                    m.chain = None;
                }
            }
            Op::Round(k) => {
                let Some(mode) = m.mode else { continue };
                // A first round adopts the genesis, or (forward-only) the source's head.
                let (base, head, _) = *m.chain.get_or_insert(match mode {
                    Mode::FullReplica => (0, 0, Role::FullReplica),
                    Mode::ForwardOnly => (m.source, m.source, Role::ForwardOnly),
                });
                if head < m.source {
                    subs.syncing(REGISTER, (head, head), (m.source, m.source));
                    let new_head = (head + k).min(m.source);
                    m.chain = Some((base, new_head, mode.role()));
                    subs.synced(REGISTER, new_head, new_head);
                    m.state = Some(SyncState::Syncing);
                }
                let head = m.chain.map_or(0, |c| c.1);
                if head >= m.source {
                    subs.at_head(REGISTER, m.source, (head, head), &[]);
                    m.state = Some(match mode {
                        Mode::FullReplica => SyncState::FullyReplicated,
                        Mode::ForwardOnly => SyncState::Active,
                    });
                    m.reached = Some(m.source);
                }
            }
            Op::Fail => {
                subs.set_error(REGISTER, "source went away");
                if m.mode.is_some() {
                    m.state = Some(SyncState::Error);
                }
            }
        }
        check(&subs, &m)?;
    }
    Ok(())
}

fn check(subs: &Subscriptions, m: &Model) -> Result<(), TestCaseError> {
    let status = subs.status(REGISTER);
    prop_assert_eq!(status.as_ref().map(|s| s.state), m.state);
    prop_assert_eq!(status.as_ref().map(|s| s.mode), m.mode);
    if let Some(s) = &status
        && matches!(s.state, SyncState::FullyReplicated | SyncState::Active)
    {
        // At the head, no failure of an earlier round is still shown.
        prop_assert!(
            s.error.is_none() && s.failures == 0,
            "stale error {:?} ({} failures) in state {:?}",
            s.error,
            s.failures,
            s.state
        );
    }
    let (Some(h), Some((base, head, role))) = (held(m.chain), m.chain) else {
        return Ok(());
    };
    let view = register_view(&h, status.as_ref(), 0);
    if let Some(mode) = m.mode {
        prop_assert_eq!(view.role, mode.role(), "the role is the mode");
    }
    prop_assert_eq!(
        view.docket_count,
        head - base + 1,
        "dockets before the anchor"
    );
    prop_assert_eq!(view.transaction_count, head - base);
    if view.sync_state == "fully-replicated" {
        prop_assert!(
            base == 0 && role == Role::FullReplica,
            "fully-replicated from docket {} as {:?}",
            base,
            role
        );
        prop_assert!(
            m.reached.is_some_and(|r| head >= r),
            "fully-replicated behind"
        );
    }
    if m.mode.is_none() {
        prop_assert_eq!(view.sync_state.as_str(), "stopped");
    }
    prop_assert!(view.sync_progress_percent <= 100.0);
    if let Some(s) = &status {
        let sv = subscription_view(REGISTER, s, Some(&h));
        prop_assert!(
            sv.target_height >= sv.height,
            "{:?} < {:?}",
            sv.target_height,
            sv.height
        );
        prop_assert!(sv.target_version >= sv.latest_version);
        prop_assert!(sv.progress_percent <= 100.0);
        if sv.progress_percent >= 100.0
            && !matches!(s.state, SyncState::FullyReplicated | SyncState::Active)
        {
            prop_assert_eq!(sv.height, sv.target_height, "100 % short of the target");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::props::config(300))]

    #[test]
    fn mode_switches_never_overstate_what_is_held(ops in prop::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}
