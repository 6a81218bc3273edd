//! The node's periodic peer work that needs no network code of its own: peer-exchange rounds
//! (sent through the live sessions), persisting changed peer records, tidying expired bans and
//! forgetting peers that aged out. Dialling lives in `rpc::dialer` because it opens sockets.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::PeerManager;
use crate::tasks::Service;

/// How often changed peer records are written to the store.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// How often expired bans are removed and stale peers forgotten.
pub(crate) const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);

/// The peer facade's own upkeep, as a node service.
pub(crate) struct Discovery(pub Arc<PeerManager>);

impl Service for Discovery {
    const NAME: &'static str = "discovery";

    async fn run(self, shutdown: CancellationToken) {
        run(self.0, shutdown).await;
    }
}

/// Runs until `shutdown`: exchange rounds every `exchange_interval` (unless 0), flushes and
/// housekeeping. Store errors are logged loudly and retried on the next tick.
async fn run(manager: Arc<PeerManager>, shutdown: CancellationToken) {
    let exchange_interval = manager.config().exchange_interval;
    let mut exchange = tokio::time::interval(if exchange_interval.is_zero() {
        Duration::from_secs(3600)
    } else {
        exchange_interval
    });
    exchange.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(FLUSH_INTERVAL);
    let mut housekeeping = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    // The first tick of an interval fires at once; skip it so exchange waits a full period
    // (the first exchange happens right after each outbound handshake).
    exchange.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = exchange.tick(), if !exchange_interval.is_zero() => {
                let asked = manager.start_exchange_round();
                tracing::debug!(asked, "peer exchange round");
            }
            _ = flush.tick() => {
                if let Err(e) = manager.flush().await {
                    tracing::error!("cannot persist peer records (will retry): {e}");
                }
            }
            _ = housekeeping.tick() => {
                if let Err(e) = manager.expire_bans().await {
                    tracing::error!("cannot remove expired bans (will retry): {e}");
                }
                manager.prune();
            }
        }
    }
    if let Err(e) = manager.flush().await {
        tracing::error!("cannot persist peer records at shutdown: {e}");
    }
}
