//! Registers this node holds and how they stay in step with the network. [`Registers`] is the
//! one entry point (admin, peer protocol, node) and composes owners of one concern each:
//! - [`chain`]: the registers held and their heads, the single place where a chain grows;
//! - [`sealer`]: pending transactions (from the transaction pool) into signed dockets, at the
//!   origin;
//! - [`server`]: dockets served to peers, and pushed to the peers that follow a register;
//! - [`subscriptions`] and [`sync`]: one task per subscription that replicates a register from
//!   peers — verified docket by docket, checkpointed after every batch, followed live by push
//!   ([`push`]), repaired by anti-entropy when a heartbeat shows a peer ahead;
//! - [`lag`]: how far this node is behind another;
//! - [`views`]: what the operator sees.
//!
//! Transactions themselves (accepting, pending, gossip's queue) belong to [`crate::txpool`].

mod batches;
mod chain;
#[cfg(test)]
mod chain_tests;
mod errors;
#[cfg(test)]
mod fixture;
pub(crate) mod lag;
#[cfg(test)]
mod modes_props;
mod operator;
mod push;
mod sealer;
#[cfg(test)]
mod sealer_tests;
mod server;
mod subscriptions;
mod sync;
#[cfg(test)]
mod sync_tests;
mod transactions;
mod views;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::events::Events;
use crate::identity::Identity;
use crate::ledger::{self, CompactDocket, DocketWithTransactions, Hash};
pub use crate::ledger::{Mode, Role};
use crate::peers::PeerManager;
use crate::protocol::{PeerMessage, RegisterHeight};
use crate::store::{Store, StoreError, SubscriptionRecord};
use crate::tasks::Tasks;
use crate::telemetry::Metrics;
use crate::txpool::{TxEvent, TxPool};
use chain::Chain;
pub use errors::{BatchError, RegisterError};
use lag::{LagRow, RemoteHeights};
pub use sealer::SealError;
use sealer::Sealer;
use server::DocketServer;
pub use server::ServeError;
use subscriptions::Subscriptions;
pub use subscriptions::SyncState;
pub use sync::{SourceError, SyncError};
use sync::{SubscriptionTask, SyncContext};
pub use transactions::{MIN_TX_PREFIX, Submitted, SubmittedBatch};
pub use views::{Purged, RegisterView, SubscriptionView, TxView};

/// Most payload bytes in one docket, and in one batch served to a peer, so every message stays
/// well under the 16 MiB frame limit.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What [`Registers`] is built from.
pub struct RegistersDeps {
    pub store: Arc<dyn Store>,
    pub identity: Arc<Identity>,
    pub config: Arc<Config>,
    pub peers: Arc<PeerManager>,
    pub metrics: Arc<Metrics>,
    /// Where replication tells what happens (dockets, subscription state and progress).
    pub events: Arc<Events>,
    /// Pending transactions, shared with gossip.
    pub pool: Arc<TxPool>,
    /// The node's tasks (subscription tasks are started there).
    pub tasks: Tasks,
}

/// The register and replication service of one node.
pub struct Registers {
    store: Arc<dyn Store>,
    identity: Arc<Identity>,
    config: Arc<Config>,
    peers: Arc<PeerManager>,
    metrics: Arc<Metrics>,
    pool: Arc<TxPool>,
    chain: Arc<Chain>,
    server: Arc<DocketServer>,
    subs: Arc<Subscriptions>,
    sync: Arc<SyncContext>,
    sealer: Sealer,
    tasks: Tasks,
    clock: Clock,
    shutdown: CancellationToken,
}

/// Seals pending transactions of every register this node originates, every `seal_interval`
/// or as soon as `max_docket_transactions` are waiting.
pub struct Sealing(Arc<Registers>);

impl crate::tasks::Service for Sealing {
    const NAME: &'static str = "sealer";

    async fn run(self, shutdown: CancellationToken) {
        self.0.sealer.run(shutdown).await;
    }
}

impl Registers {
    /// Loads the registers and subscriptions this node holds (and starts the subscriptions).
    pub async fn load(
        deps: RegistersDeps,
        shutdown: CancellationToken,
    ) -> Result<Arc<Registers>, StoreError> {
        let RegistersDeps {
            store,
            identity,
            config,
            peers,
            metrics,
            events,
            pool,
            tasks,
        } = deps;
        // Replication reads "now" (dockets sealed, registers created, subscriptions made and
        // synced) from the pool's clock: one clock per node, the system's or a test's.
        let clock = pool.clock();
        let chain = Arc::new(
            Chain::load(
                store.clone(),
                pool.clone(),
                metrics.clone(),
                events.clone(),
                clock.clone(),
            )
            .await?,
        );
        let server = Arc::new(DocketServer::new(
            chain.clone(),
            store.clone(),
            config.clone(),
            peers.clone(),
            metrics.clone(),
        ));
        let subs = Arc::new(Subscriptions::new(events, clock.clone()));
        let sync = Arc::new(SyncContext {
            chain: chain.clone(),
            server: server.clone(),
            subs: subs.clone(),
            pool: pool.clone(),
            peers: peers.clone(),
            config: config.clone(),
            metrics: metrics.clone(),
        });
        let sealer = Sealer::new(
            chain.clone(),
            server.clone(),
            pool.clone(),
            identity.clone(),
            config.clone(),
            clock.clone(),
        );
        let subscriptions = store.load_subscriptions().await?;
        let registers = Arc::new(Registers {
            store,
            identity,
            config,
            peers,
            metrics,
            pool,
            chain,
            server,
            subs,
            sync,
            sealer,
            tasks,
            clock,
            shutdown,
        });
        for sub in subscriptions {
            registers.start_subscription(&sub.register_id, sub.mode, sub.created_at_ms);
        }
        Ok(registers)
    }

    /// The sealer of the registers this node originates, as a node service.
    pub fn sealing(self: &Arc<Self>) -> Sealing {
        Sealing(self.clone())
    }

    fn advertise(&self) {
        self.sync.advertise();
    }

    // ----- registers and transactions -----------------------------------------------------

    /// Creates a register originated by this node.
    pub async fn create(
        &self,
        register_id: &str,
        is_public: bool,
    ) -> Result<RegisterView, RegisterError> {
        ledger::validate_register_id(register_id)
            .map_err(|e| RegisterError::Invalid(e.to_string()))?;
        if self.chain.holds(register_id) {
            return Err(RegisterError::Conflict(format!(
                "register '{register_id}' already exists on this node"
            )));
        }
        if self
            .peers
            .carriers(register_id)
            .iter()
            .any(|(_, h)| h.is_origin)
        {
            return Err(RegisterError::Conflict(format!(
                "a connected peer already originates a register named '{register_id}'"
            )));
        }
        self.chain
            .create(&self.identity, register_id, is_public)
            .await?;
        tracing::info!(
            register = register_id,
            public = is_public,
            "register created"
        );
        if is_public {
            self.advertise();
        }
        self.view(register_id)
            .ok_or_else(|| RegisterError::NotFound(register_id.into()))
    }

    pub(super) fn check_size(&self, payload: &[u8]) -> Result<(), RegisterError> {
        if payload.len() > self.config.max_transaction_size {
            return Err(RegisterError::TooLarge {
                size: payload.len(),
                limit: self.config.max_transaction_size,
            });
        }
        if payload.is_empty() {
            return Err(RegisterError::Invalid(
                "a transaction payload cannot be empty".into(),
            ));
        }
        Ok(())
    }

    /// Observes transactions stored and sealed here.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<TxEvent> {
        self.pool.events()
    }

    /// Whether this node holds the register (as origin or replica).
    pub fn holds(&self, register_id: &str) -> bool {
        self.chain.holds(register_id)
    }

    /// Whether the register is held here and public (served to peers).
    pub fn is_public(&self, register_id: &str) -> bool {
        self.chain.is_public(register_id)
    }

    // ----- views --------------------------------------------------------------------------

    pub fn view(&self, register_id: &str) -> Option<RegisterView> {
        let held = self.chain.get(register_id)?;
        let sub = self.subs.status(register_id);
        Some(views::register_view(
            &held,
            sub.as_ref(),
            self.pool.pending_count(register_id),
        ))
    }

    /// Every register held here, by name.
    pub fn list(&self) -> Vec<RegisterView> {
        self.chain
            .all()
            .iter()
            .map(|held| {
                let id = &held.head.register_id;
                let sub = self.subs.status(id);
                views::register_view(held, sub.as_ref(), self.pool.pending_count(id))
            })
            .collect()
    }

    pub fn subscription(&self, register_id: &str) -> Option<SubscriptionView> {
        let sub = self.subs.status(register_id)?;
        let held = self.chain.get(register_id);
        Some(views::subscription_view(register_id, &sub, held.as_ref()))
    }

    pub fn subscriptions(&self) -> Vec<SubscriptionView> {
        self.subs
            .ids()
            .iter()
            .filter_map(|id| self.subscription(id))
            .collect()
    }

    // ----- what peers see and send --------------------------------------------------------

    /// Public registers held here, as advertised to peers. Private ones are never included.
    pub fn public_heights(&self) -> Vec<RegisterHeight> {
        self.chain.public_heights()
    }

    /// Hash of docket `number` of a public register held here (for lag's fork check).
    pub async fn hash_at(
        &self,
        register_id: &str,
        number: u64,
    ) -> Result<Option<Hash>, StoreError> {
        if !self.chain.is_public(register_id) {
            return Ok(None);
        }
        self.chain.hash_at(register_id, number).await
    }

    /// Dockets `from..` of a public register for a peer, within the batch limits (`max`
    /// dockets, `max_bytes` of payloads when not 0, and this node's own bounds).
    pub async fn serve_dockets(
        &self,
        register_id: &str,
        from: u64,
        max: u32,
        headers_only: bool,
        max_bytes: u64,
    ) -> Result<Vec<DocketWithTransactions>, ServeError> {
        self.server
            .serve(register_id, from, max, headers_only, max_bytes)
            .await
    }

    /// Dockets `from..` (at most `max`, within the batch limits) of any register held here,
    /// private ones included, with their payloads: what the platform listener serves.
    pub async fn platform_dockets(
        &self,
        register_id: &str,
        from: u64,
        max: u32,
    ) -> Result<Vec<DocketWithTransactions>, ServeError> {
        self.server.serve_platform(register_id, from, max).await
    }

    /// The public key of a held register's origin (the key that signs its dockets).
    pub fn origin_key(&self, register_id: &str) -> Option<[u8; 32]> {
        self.chain.get(register_id).map(|h| h.origin_key)
    }

    /// A peer wants (or no longer wants) new dockets of a public register pushed to it.
    pub fn set_follower(&self, peer_id: &str, register_id: &str, follow: bool) {
        self.server.set_follower(peer_id, register_id, follow)
    }

    /// Follower entries over all registers (what peers' `Follow` frames make this node hold).
    pub fn follower_entries(&self) -> usize {
        self.server.follower_entries()
    }

    /// A peer advertised its registers: wake any subscription it is ahead on (anti-entropy).
    pub fn on_advertisement(&self, peer_id: &str, heights: Vec<RegisterHeight>) {
        let ours: Vec<(RegisterHeight, Option<u64>)> = heights
            .iter()
            .map(|h| {
                let ours = self.chain.get(&h.register_id).map(|x| x.head.number);
                (h.clone(), ours)
            })
            .collect();
        self.subs.advertised(peer_id, &ours);
        self.peers.set_advertised(peer_id, heights);
    }

    /// A docket a followed peer pushed (see [`push`]).
    pub async fn on_push(&self, peer_id: &str, compact: CompactDocket) {
        push::on_push(&self.sync, peer_id, compact).await
    }

    // ----- lag and metrics ----------------------------------------------------------------

    /// (register, height) pairs to ask a remote about: our head of every register we hold.
    pub fn lag_queries(&self) -> Vec<(String, u64)> {
        lag::queries(&self.chain)
    }

    /// Lag rows for every register the remote advertises (or just `only`).
    pub async fn lag(
        &self,
        remote: &RemoteHeights,
        only: Option<&str>,
    ) -> Result<Vec<LagRow>, StoreError> {
        lag::rows(&self.chain, remote, only).await
    }

    /// Refreshes the per-register lag gauges (called when `/metrics` is scraped).
    pub fn refresh_metrics(&self) {
        for held in self
            .chain
            .all()
            .into_iter()
            .filter(|h| h.role != Role::Origin)
        {
            let (height, version) = (held.head.number, held.latest_version());
            let register_id = held.head.register_id;
            let carriers = self.peers.carriers(&register_id);
            let best_height = carriers
                .iter()
                .map(|(_, c)| c.height)
                .max()
                .unwrap_or(height);
            let best_version = carriers
                .iter()
                .map(|(_, c)| c.latest_version)
                .max()
                .unwrap_or(version);
            let label = vec![("register", register_id)];
            self.metrics
                .register_dockets_behind
                .get_or_create(&label)
                .set(best_height.saturating_sub(height) as i64);
            self.metrics
                .register_transactions_behind
                .get_or_create(&label)
                .set(best_version.saturating_sub(version) as i64);
        }
    }
}
