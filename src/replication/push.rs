//! Dockets pushed by the peers a subscription follows. A pushed docket carries transaction IDs
//! only: when it is the next one and its transactions are pending here (usually gossip brought
//! them; if gossip is fetching some right now, the push waits for it, woken when it is done;
//! the rest are pulled once from the pusher and stored as pending), it is verified from the IDs
//! and sealed in place. Otherwise its payloads are gathered and the docket applied whole. A
//! docket further ahead, or one that cannot be completed, wakes the subscription's task instead.

use std::collections::HashMap;
use std::time::Duration;

use super::sync::{SourceError, SyncContext};
use tokio::sync::Notify;

use crate::ledger::{self, CompactDocket, DocketWithTransactions, VerifyError};
use crate::protocol::{PeerRequest, PeerResponse, TxRef};
use crate::store::StoreError;
use crate::txpool::{Holders, TxPoolError};

/// How long a pushed docket waits for payloads gossip is already fetching.
const GOSSIP_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("storage error: {0}")]
    Pool(#[from] TxPoolError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Where a pushed docket stands against the head held here.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// At or below the head: held already, nothing to do.
    Held,
    /// The docket after the head: applied from here.
    Next,
    /// Further ahead: dockets are missing between, which the subscription's task pulls.
    Ahead,
}

/// Where docket `number` stands when docket `head` is held.
pub(super) fn place(head: u64, number: u64) -> Place {
    if number <= head {
        Place::Held
    } else if number > head.saturating_add(1) {
        Place::Ahead
    } else {
        Place::Next
    }
}

/// The payloads the pusher `served` that were `asked` for, each under the ID it hashes to;
/// anything else it sent is dropped.
pub(super) fn as_asked(asked: Vec<[u8; 32]>, served: Vec<Vec<u8>>) -> Vec<(String, Vec<u8>)> {
    let asked: std::collections::HashSet<[u8; 32]> = asked.into_iter().collect();
    served
        .into_iter()
        .filter_map(|payload| {
            let id = ledger::tx_hash(&payload);
            asked.contains(&id).then(|| (ledger::to_hex(id), payload))
        })
        .collect()
}

/// Handles a docket `peer_id` pushed.
pub(super) async fn on_push(ctx: &SyncContext, peer_id: &str, compact: CompactDocket) {
    let register_id = compact.docket.header.register_id.clone();
    let Some(wake) = ctx.subs.wake_handle(&register_id) else {
        return;
    };
    let Some(held) = ctx.chain.get(&register_id) else {
        wake.notify_one();
        return;
    };
    match place(held.head.number, compact.docket.header.number) {
        Place::Held => return,
        Place::Ahead => {
            wake.notify_one();
            return;
        }
        Place::Next => {}
    }
    // Usually gossip brought every transaction already: then the docket is verified from
    // their IDs and sealed in place, without reading or writing a payload again. Otherwise the
    // missing ones are stored as pending first (public registers, which gossip carries), and
    // only when that does not make them all pending is the docket completed with every payload.
    let complete = match pending_after_filling(ctx, peer_id, &register_id, &compact).await {
        Ok(complete) => complete,
        Err(e) => {
            tracing::debug!(peer = %peer_id, register = %register_id, "cannot complete pushed docket: {e}");
            wake.notify_one();
            return;
        }
    };
    if complete {
        let outcome = ctx.apply_held(&compact).await;
        report(ctx, peer_id, &register_id, &wake, outcome).await;
        return;
    }
    let entry = match resolve_payloads(ctx, peer_id, &register_id, compact).await {
        Ok(entry) => entry,
        Err(e) => {
            tracing::debug!(peer = %peer_id, register = %register_id, "cannot complete pushed docket: {e}");
            wake.notify_one();
            return;
        }
    };
    let outcome = ctx.apply(&register_id, vec![entry]).await;
    report(ctx, peer_id, &register_id, &wake, outcome).await;
}

/// Whether every transaction of the docket is pending here, after storing as pending those
/// that were not (waiting for gossip when it is fetching them, else pulling them from `peer`).
/// Only a public register's transactions are stored that way; `false` says the docket must be
/// completed with its payloads (some are sealed already, or the register is not public).
async fn pending_after_filling(
    ctx: &SyncContext,
    peer: &str,
    register_id: &str,
    compact: &CompactDocket,
) -> Result<bool, PushError> {
    let ids = &compact.tx_ids;
    if ctx.pool.known_pending(register_id, ids) {
        return Ok(true);
    }
    let hex_ids: Vec<String> = ids.iter().map(ledger::to_hex).collect();
    let pending = ctx.pool.pending_among(register_id, &hex_ids).await?;
    if pending.len() == hex_ids.len() {
        return Ok(true);
    }
    if !ctx.pool.is_public(register_id) {
        return Ok(false);
    }
    // Nothing is stored for a docket its origin did not sign after the head held here: a
    // forged one would otherwise bring in transactions past gossip's per-peer limits. It goes
    // the whole way instead, where it is refused and its pusher penalised.
    let verified = ctx.chain.get(register_id).is_some_and(|held| {
        ledger::verify_next_ids(&held.origin_key, &held.head, &compact.docket, ids).is_ok()
    });
    if !verified {
        return Ok(false);
    }
    let mut missing: Vec<[u8; 32]> = (ids.iter().zip(&hex_ids))
        .filter(|(_, h)| !pending.contains(*h))
        .map(|(id, _)| *id)
        .collect();
    if missing.iter().any(|id| ctx.pool.is_claimed(id)) {
        // Gossip is fetching some of these right now: give it a moment (woken as soon as it is
        // done) rather than pulling the same payloads a second time.
        ctx.pool.wait_released(&missing, GOSSIP_GRACE).await;
        let held = ctx.pool.held_among(register_id, &missing).await?;
        missing.retain(|id| !held.contains(id));
    }
    if !missing.is_empty() {
        let served = pull(ctx, peer, register_id, missing.clone()).await?;
        let txs = as_asked(missing, served);
        // The pusher holds them: it is not told about them again.
        let pusher: Holders = std::sync::Arc::from([std::sync::Arc::<str>::from(peer)]);
        let holders = txs
            .iter()
            .map(|(id, _)| (id.clone(), pusher.clone()))
            .collect();
        ctx.pool.accept_gossiped(register_id, txs, holders).await?;
    }
    Ok(ctx.pool.known_pending(register_id, ids)
        || ctx.pool.pending_among(register_id, &hex_ids).await?.len() == hex_ids.len())
}

/// Pulls the payloads of `tx_ids` from `peer` (the pusher, who must hold them).
async fn pull(
    ctx: &SyncContext,
    peer: &str,
    register_id: &str,
    tx_ids: Vec<[u8; 32]>,
) -> Result<Vec<Vec<u8>>, PushError> {
    let request = PeerRequest::Transactions {
        register_id: register_id.to_string(),
        tx_ids: tx_ids.into_iter().map(TxRef::Full).collect(),
    };
    match ctx
        .peers
        .request(peer, request, ctx.config.request_timeout)
        .await
    {
        Ok(PeerResponse::Transactions(Ok(served))) => {
            ctx.metrics
                .docket_payloads_received
                .inc_by(served.payloads.len() as u64);
            Ok(served.payloads)
        }
        Ok(PeerResponse::Transactions(Err(error))) | Err(error) => Err(SourceError::Request {
            peer: peer.to_string(),
            error,
        }
        .into()),
        Ok(_) => Err(SourceError::UnexpectedAnswer {
            peer: peer.to_string(),
        }
        .into()),
    }
}

/// What became of a pushed docket: a refused one costs the pusher and, like a failed store,
/// wakes the subscription's task (which pulls instead).
async fn report(
    ctx: &SyncContext,
    peer_id: &str,
    register_id: &str,
    wake: &Notify,
    outcome: Result<Option<VerifyError>, StoreError>,
) {
    match outcome {
        Ok(None) => {}
        Ok(Some(reason)) => {
            ctx.peers
                .verification_failed(peer_id, Some(register_id), &reason.to_string())
                .await;
            wake.notify_one();
        }
        Err(e) => {
            tracing::error!(register = %register_id, "cannot store pushed docket: {e}");
            wake.notify_one();
        }
    }
}

/// Fills in a compact docket's payloads: local ones first, the rest pulled from `peer`.
async fn resolve_payloads(
    ctx: &SyncContext,
    peer: &str,
    register_id: &str,
    compact: CompactDocket,
) -> Result<DocketWithTransactions, PushError> {
    let hex_ids: Vec<String> = compact.tx_ids.iter().map(ledger::to_hex).collect();
    let mut have: HashMap<String, Vec<u8>> = ctx
        .pool
        .payloads(register_id, &hex_ids)
        .await?
        .into_iter()
        .collect();
    let missing: Vec<[u8; 32]> = compact
        .tx_ids
        .iter()
        .zip(&hex_ids)
        .filter(|(_, h)| !have.contains_key(*h))
        .map(|(id, _)| *id)
        .collect();
    if missing.iter().any(|id| ctx.pool.is_claimed(id)) {
        // Gossip is fetching some of these right now: give it a moment (woken as soon as it is
        // done) rather than pulling the same payloads a second time.
        ctx.pool.wait_released(&missing, GOSSIP_GRACE).await;
        let arrived = ctx
            .pool
            .payloads(
                register_id,
                &missing.iter().map(ledger::to_hex).collect::<Vec<_>>(),
            )
            .await?;
        have.extend(arrived);
    }
    let missing: Vec<[u8; 32]> = missing
        .into_iter()
        .filter(|id| !have.contains_key(&ledger::to_hex(id)))
        .collect();
    if !missing.is_empty() {
        for payload in pull(ctx, peer, register_id, missing).await? {
            have.insert(ledger::tx_id(&payload), payload);
        }
    }
    // Any payload still missing (or not matching) makes verification fail, which is what it
    // is: the pusher announced a docket it could not back.
    let transactions = hex_ids.iter().filter_map(|h| have.remove(h)).collect();
    Ok(DocketWithTransactions {
        docket: compact.docket,
        origin_key: None,
        transactions,
    })
}
