//! One node's replication core for unit tests: [`Registers`] over an in-memory store, on a
//! manual clock, with no network (no peer is ever connected), and the dockets of a register
//! originated elsewhere, signed with a key the test holds.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use tokio_util::sync::CancellationToken;

use super::chain::Held;
use super::{Registers, RegistersDeps, Role};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::events::Events;
use crate::identity::Identity;
use crate::ledger::{self, Docket, DocketHeader, DocketWithTransactions};
use crate::peers::PeerManager;
use crate::store::{self, Store};
use crate::tasks::Tasks;
use crate::telemetry::Metrics;
use crate::txpool::TxPool;

/// A moment well inside the range every part accepts.
pub(super) const START_MS: i64 = 1_800_000_000_000;

/// A node's registers, the store under them, and the tasks they run under (dropping them
/// stops the pool's committer).
pub(super) struct Node {
    pub registers: Arc<Registers>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub _tasks: Tasks,
}

/// Registers on `clock`, with `config` changed by `adjust` first.
pub(super) async fn node(clock: &ManualClock, adjust: impl FnOnce(&mut Config)) -> Node {
    let mut config = Config::defaults().expect("defaults");
    adjust(&mut config);
    let config = Arc::new(config);
    let store = store::open_in_memory().await.expect("store");
    let clock_ = Clock::Manual(clock.clone());
    let metrics = Arc::new(Metrics::new());
    let events = Arc::new(Events::new());
    let identity = Arc::new(Identity::generate());
    let peers = PeerManager::load(
        identity.clone(),
        config.clone(),
        store.clone(),
        metrics.clone(),
        events.clone(),
        clock_.clone(),
    )
    .await
    .expect("peers");
    let tasks = Tasks::new();
    let (pool, committer) = TxPool::new(
        store.clone(),
        clock_,
        &config,
        metrics.clone(),
        events.clone(),
    );
    tasks.start(committer, &CancellationToken::new());
    let deps = RegistersDeps {
        store: store.clone(),
        identity,
        config,
        peers: Arc::new(peers),
        metrics: metrics.clone(),
        events,
        pool,
        tasks: tasks.clone(),
    };
    let registers = Registers::load(deps, CancellationToken::new())
        .await
        .expect("registers");
    Node {
        registers,
        store,
        metrics,
        _tasks: tasks,
    }
}

/// A register originated by another node: its key and the dockets it seals.
pub(super) struct Origin {
    pub key: SigningKey,
    pub genesis: Docket,
}

impl Origin {
    pub(super) fn new(register_id: &str) -> Origin {
        let key = SigningKey::from_bytes(&[7; 32]);
        let genesis = ledger::genesis(&key, register_id, START_MS);
        Origin { key, genesis }
    }

    pub(super) fn origin_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The dockets after `previous`, one per batch of payloads, sealed a millisecond apart.
    pub(super) fn seal(
        &self,
        previous: &DocketHeader,
        batches: &[&[&[u8]]],
    ) -> Vec<DocketWithTransactions> {
        let mut previous = previous.clone();
        let mut out = Vec::new();
        for batch in batches {
            let sealed_at = previous.sealed_at_ms + 1;
            let docket = ledger::seal_next(&self.key, &previous, batch, sealed_at);
            previous = docket.header.clone();
            out.push(DocketWithTransactions {
                docket,
                origin_key: None,
                transactions: batch.iter().map(|p| p.to_vec()).collect(),
            });
        }
        out
    }

    /// Starts holding this register as a full replica at its genesis, on `node`.
    pub(super) async fn replicate_on(&self, node: &Node) {
        let held = Held::new(
            true,
            Role::FullReplica,
            self.origin_key(),
            &self.genesis.header,
            0,
            START_MS,
        );
        node.registers
            .chain
            .adopt(held, &self.genesis)
            .await
            .expect("adopt");
    }
}
