//! Dockets pushed by the peers a subscription follows. A pushed docket carries transaction IDs
//! only: when it is the next one, its payloads are taken from the transaction pool (usually
//! already here through gossip; if gossip is fetching some right now, the push waits for it,
//! woken when it is done) or pulled once from the pusher, then the docket is applied. A docket
//! further ahead, or one that cannot be completed, wakes the subscription's task instead.

use std::collections::HashMap;
use std::time::Duration;

use super::sync::{SourceError, SyncContext};
use tokio::sync::Notify;

use crate::ledger::{self, CompactDocket, DocketWithTransactions, VerifyError};
use crate::peers::{PeerRequest, PeerResponse};
use crate::store::StoreError;
use crate::txpool::TxPoolError;

/// How long a pushed docket waits for payloads gossip is already fetching.
const GOSSIP_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("storage error: {0}")]
    Pool(#[from] TxPoolError),
    #[error(transparent)]
    Source(#[from] SourceError),
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
    let number = compact.docket.header.number;
    if number <= held.head.number {
        return; // already have it
    }
    if number > held.head.number.saturating_add(1) {
        wake.notify_one();
        return;
    }
    // Usually gossip brought every transaction already: then the docket is verified from
    // their IDs and sealed in place, without reading or writing a payload again.
    let hex_ids: Vec<String> = compact.tx_ids.iter().map(hex::encode).collect();
    let all_pending = match ctx.pool.pending_among(&register_id, &hex_ids).await {
        Ok(pending) => pending.len() == hex_ids.len(),
        Err(e) => {
            tracing::debug!(register = %register_id, "cannot check pushed docket's transactions: {e}");
            wake.notify_one();
            return;
        }
    };
    if all_pending {
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
    let hex_ids: Vec<String> = compact.tx_ids.iter().map(hex::encode).collect();
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
                &missing.iter().map(hex::encode).collect::<Vec<_>>(),
            )
            .await?;
        have.extend(arrived);
    }
    let missing: Vec<[u8; 32]> = missing
        .into_iter()
        .filter(|id| !have.contains_key(&hex::encode(id)))
        .collect();
    if !missing.is_empty() {
        let request = PeerRequest::Transactions {
            register_id: register_id.to_string(),
            tx_ids: missing,
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
                for payload in served.payloads {
                    have.insert(ledger::tx_id(&payload), payload);
                }
            }
            Ok(PeerResponse::Transactions(Err(error))) | Err(error) => {
                return Err(SourceError::Request {
                    peer: peer.to_string(),
                    error,
                }
                .into());
            }
            Ok(_) => {
                return Err(SourceError::UnexpectedAnswer {
                    peer: peer.to_string(),
                }
                .into());
            }
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
