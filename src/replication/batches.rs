//! Catching up from one source, a batch at a time and pipelined: while the store writes batch
//! k, batch k+1 is already asked for and verified (on top of batch k's last header, which is
//! known once batch k is verified). A batch that fails verification stops the pipeline: its
//! verified prefix is stored, the source is penalised, and the caller tries another source.

use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::chain::Checked;
use super::sync::{Pulled, SourceError, SubscriptionTask, SyncError};
use crate::ledger::DocketHeader;

/// A batch fetched and verified, with the span that traces it.
struct Fetched {
    span: Span,
    checked: Checked,
}

impl SubscriptionTask {
    /// Batches from `peer` after the head held here, each verified then stored while the next
    /// is fetched and verified, until the source has served docket `target` (0: one batch
    /// only), fails, or has nothing more. Stops between batches when the subscription ends.
    pub(super) async fn pull(&self, peer: &str, target: u64) -> Result<Pulled, SyncError> {
        let Some(held) = self.ctx.chain.get(&self.register_id) else {
            return Ok(Pulled::Nothing);
        };
        let origin_key = held.origin_key;
        let mut fetched = self.fetch(peer, &origin_key, held.head).await;
        let mut advanced = false;
        loop {
            let Fetched { span, checked } = match fetched {
                Ok(f) => f,
                Err(e) if advanced => {
                    // What was stored stands; the next round goes on from there.
                    tracing::debug!(peer = %peer, "catch-up stopped: {e}");
                    return Ok(Pulled::Advanced);
                }
                Err(e) => return Ok(Pulled::Failed(e)),
            };
            if checked.dockets() == 0 && checked.invalid.is_none() {
                // Nothing after the head (or only dockets held already).
                return Ok(if advanced {
                    Pulled::Advanced
                } else {
                    Pulled::Nothing
                });
            }
            let after = checked.last.clone();
            let more =
                checked.invalid.is_none() && after.number < target && !self.cancel.is_cancelled();
            let store = self.ctx.store_checked(checked).instrument(span.clone());
            let (stored, next) = if more {
                let (stored, next) = tokio::join!(store, self.fetch(peer, &origin_key, after));
                (stored?, Some(next))
            } else {
                (store.await?, None)
            };
            match stored {
                // Nothing stored: a push moved the head meanwhile; the next round goes on
                // from there.
                (0, None) => return Ok(Pulled::Advanced),
                (_, None) => advanced = true,
                (_, Some(reason)) => {
                    span.record("error", tracing::field::display(&reason));
                    // The bad data is discarded (a verified prefix was kept); the caller
                    // tries the next source straight away.
                    self.ctx
                        .peers
                        .verification_failed(peer, Some(&self.register_id), &reason.to_string())
                        .await;
                    return Ok(Pulled::Failed(SourceError::Invalid {
                        peer: peer.to_string(),
                        reason,
                    }));
                }
            }
            match next {
                Some(next) => fetched = next,
                None => return Ok(Pulled::Advanced),
            }
        }
    }

    /// One batch from `peer` after `after`, verified on top of it.
    async fn fetch(
        &self,
        peer: &str,
        origin_key: &[u8; 32],
        after: DocketHeader,
    ) -> Result<Fetched, SourceError> {
        let span = tracing::info_span!(
            "sync batch",
            register.id = %self.register_id,
            peer.id = %peer,
            from = after.number.saturating_add(1),
            count = Empty,
            error = Empty,
        );
        let batch = self
            .request_dockets(
                peer,
                after.number.saturating_add(1),
                self.ctx.config.sync_batch_dockets,
                false,
            )
            .instrument(span.clone())
            .await
            .inspect_err(|e| {
                span.record("error", tracing::field::display(e));
            })?;
        span.record("count", batch.len());
        if !batch.is_empty() {
            let payloads: usize = batch.iter().map(|e| e.transactions.len()).sum();
            self.ctx
                .metrics
                .docket_payloads_received
                .inc_by(payloads as u64);
            self.ctx.metrics.sync_batches_received.inc();
        }
        let checked = span.in_scope(|| Checked::new(origin_key, after, batch));
        Ok(Fetched { span, checked })
    }
}
