//! The sealer: turns the pending transactions of every register this node originates into
//! signed dockets, every `seal_interval` or as soon as the transaction pool reports a docket's
//! worth waiting, and pushes each new docket to the register's followers.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::field::Empty;

use super::MAX_BATCH_BYTES;
use super::chain::{Chain, Held};
use super::server::DocketServer;
use crate::clock::Clock;
use crate::config::Config;
use crate::identity::Identity;
use crate::ledger::{self, CompactDocket, DocketWithTransactions};
use crate::store::StoreError;
use crate::txpool::{TxPool, TxPoolError};

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Pool(#[from] TxPoolError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many of the oldest pending payloads (their sizes, oldest first) one docket takes: as
/// many as fit in `budget` bytes, and always the first, so one larger than the budget is
/// sealed alone rather than never.
pub(super) fn docket_share(sizes: impl IntoIterator<Item = usize>, budget: usize) -> usize {
    let mut bytes = 0usize;
    sizes
        .into_iter()
        .take_while(|size| match bytes.checked_add(*size) {
            Some(sum) if sum <= budget => {
                bytes = sum;
                true
            }
            _ => false,
        })
        .count()
        .max(1)
}

pub(super) struct Sealer {
    chain: Arc<Chain>,
    server: Arc<DocketServer>,
    pool: Arc<TxPool>,
    identity: Arc<Identity>,
    config: Arc<Config>,
    /// Dates each docket sealed.
    clock: Clock,
}

impl Sealer {
    pub(super) fn new(
        chain: Arc<Chain>,
        server: Arc<DocketServer>,
        pool: Arc<TxPool>,
        identity: Arc<Identity>,
        config: Arc<Config>,
        clock: Clock,
    ) -> Sealer {
        Sealer {
            chain,
            server,
            pool,
            identity,
            config,
            clock,
        }
    }

    /// Seals until `shutdown`.
    pub(super) async fn run(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.seal_interval) => {}
                _ = self.pool.seal_wanted() => {}
            }
            self.seal_all().await;
        }
    }

    /// One round: seals a docket of every register this node originates with transactions
    /// pending, and further dockets at once while a full docket's worth is still waiting.
    pub(super) async fn seal_all(&self) {
        for register_id in self.pool.sealable() {
            loop {
                match self.seal_once(&register_id).await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::error!(register = %register_id, "sealing failed (will retry): {e}");
                        break;
                    }
                }
            }
        }
    }

    /// Seals one docket from the oldest pending transactions. Returns whether more are waiting
    /// for an immediate next docket.
    pub(super) async fn seal_once(&self, register_id: &str) -> Result<bool, SealError> {
        let max = self.config.max_docket_transactions;
        let mut pending = self.pool.oldest_pending(register_id, max).await?;
        if pending.is_empty() {
            return Ok(false);
        }
        // Keep every docket (and so every batch served to peers) within the byte budget.
        let keep = docket_share(pending.iter().map(|(_, p)| p.len()), MAX_BATCH_BYTES);
        pending.truncate(keep);
        let Some(previous) = self.chain.get(register_id) else {
            return Ok(false);
        };
        let span = tracing::info_span!(
            "seal",
            register.id = %register_id,
            docket.number = previous.head.number + 1,
            tx.count = pending.len(),
            error = Empty,
        );
        let sealed = self
            .seal(register_id, &previous, pending)
            .instrument(span.clone())
            .await;
        if let Err(e) = &sealed {
            span.record("error", tracing::field::display(e));
        }
        sealed
    }

    /// Seals `pending` as the docket after `previous`; returns whether more are waiting.
    async fn seal(
        &self,
        register_id: &str,
        previous: &Held,
        pending: Vec<(String, Vec<u8>)>,
    ) -> Result<bool, SealError> {
        let payloads: Vec<&[u8]> = pending.iter().map(|(_, p)| p.as_slice()).collect();
        let docket = ledger::seal_next(
            self.identity.signing_key(),
            &previous.head,
            &payloads,
            self.clock.now_ms(),
        );
        let ids: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect();
        self.chain.append_sealed(previous, &docket, &ids).await?;
        let sealed = ids.len();
        let more = self.pool.sealed_here(register_id, ids);
        tracing::debug!(register = %register_id, docket = docket.header.number, transactions = sealed, "sealed docket");
        let entry = DocketWithTransactions {
            docket,
            origin_key: None,
            transactions: pending.into_iter().map(|(_, p)| p).collect(),
        };
        self.server
            .push(register_id, &[Arc::new(CompactDocket::from_full(&entry))]);
        Ok(more)
    }
}
