//! One task per subscription: it finds a source among the connected carriers, starts the
//! chain (verified genesis; for forward-only, a verified anchor at the source's head), pulls
//! and applies batches until at the head, then follows the carriers (they push new dockets)
//! and sleeps until woken — by anti-entropy (a heartbeat shows a peer ahead), a push it could
//! not use, or `IDLE_RECHECK`. A failing round is recorded in the subscription's state and
//! retried with a doubling delay.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::chain::{Applied, Chain, Checked, Held};
use super::server::DocketServer;
use super::subscriptions::Subscriptions;
use super::{Mode, SyncState};
use crate::config::Config;
use crate::ledger::{self, CompactDocket, Docket, DocketWithTransactions, VerifyError};
use crate::peers::PeerManager;
use crate::protocol::{PeerMessage, PeerRequest, PeerResponse, RegisterHeight, RequestError};
use crate::store::StoreError;
use crate::telemetry::Metrics;
use crate::txpool::TxPool;

/// First retry delay of a failing subscription; doubles up to [`SYNC_RETRY_MAX`].
const SYNC_RETRY_MIN: Duration = Duration::from_millis(200);
const SYNC_RETRY_MAX: Duration = Duration::from_secs(30);
/// A subscription at the head re-checks its sources at least this often (anti-entropy also
/// wakes it as soon as a heartbeat shows a peer ahead).
const IDLE_RECHECK: Duration = Duration::from_secs(5);
/// How long a subscription at the head, woken because it may be behind, leaves pushes to
/// bring it level before it pulls.
const PUSH_GRACE: Duration = Duration::from_millis(500);
/// Most header batches asked of a source when looking for its head (a forward-only anchor).
const ANCHOR_ROUNDS: usize = 16;

/// Why one source could not serve what a subscription asked.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{peer}: {error}")]
    Request {
        peer: String,
        #[source]
        error: RequestError,
    },
    #[error("{peer}: unexpected answer")]
    UnexpectedAnswer { peer: String },
    #[error("{peer} advertised height {height} but served nothing")]
    ServedNothing { peer: String, height: u64 },
    #[error("{peer} served invalid data: {reason}")]
    Invalid { peer: String, reason: VerifyError },
    #[error("{peer} served no genesis")]
    NoGenesis { peer: String },
    #[error("{peer} served an invalid genesis: {reason}")]
    InvalidGenesis { peer: String, reason: VerifyError },
    #[error("{peer} did not serve docket {height}")]
    MissingAnchor { peer: String, height: u64 },
    #[error("{peer} served an invalid head: {reason}")]
    InvalidAnchor { peer: String, reason: VerifyError },
}

/// Why a round of a subscription failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("no connected peer advertises '{0}'")]
    NoCarrier(String),
    #[error("no carrier holds the genesis docket")]
    NoGenesisCarrier,
    #[error("no source could serve '{register_id}' ({})", last_reason(.last))]
    NoSource {
        register_id: String,
        last: Option<SourceError>,
    },
    #[error(transparent)]
    Source(SourceError),
    #[error(
        "'{register_id}' is held from docket {base} only, so it cannot be a full replica: \
         run `sorcha-peer registers unsubscribe {register_id} --purge`, then subscribe again \
         with --mode full-replica"
    )]
    MissingHistory { register_id: String, base: u64 },
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

fn last_reason(last: &Option<SourceError>) -> String {
    last.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The wait before retrying a subscription whose round failed after waiting `retry`: doubled,
/// up to [`SYNC_RETRY_MAX`].
pub(super) fn next_retry(retry: Duration) -> Duration {
    (retry * 2).min(SYNC_RETRY_MAX)
}

/// What a round does, from the docket held here and what the carriers advertise.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// No carrier advertises more than is held: ask them (in [`confirm_order`]) what follows,
    /// since an advertisement can be stale.
    Confirm,
    /// Pull from the carriers ahead, towards the best head advertised (docket number and
    /// transaction version, each the highest among carriers).
    CatchUp { target: (u64, u64) },
}

/// The plan of a round when docket `ours` is held.
pub(super) fn plan(ours: u64, carriers: &[(String, RegisterHeight)]) -> Plan {
    let best = carriers.iter().map(|(_, h)| h.height).max().unwrap_or(0);
    if ours >= best {
        return Plan::Confirm;
    }
    let best_version = (carriers.iter().map(|(_, h)| h.latest_version))
        .max()
        .unwrap_or(0);
    Plan::CatchUp {
        target: (best, best_version),
    }
}

/// Whom to ask whether anything follows the head: the origin first (it seals, so it is never
/// behind), then the highest; ties keep the carriers' order.
pub(super) fn confirm_order(
    carriers: &[(String, RegisterHeight)],
) -> Vec<&(String, RegisterHeight)> {
    let mut ranked: Vec<&(String, RegisterHeight)> = carriers.iter().collect();
    ranked.sort_by_key(|(_, h)| (std::cmp::Reverse(h.is_origin), std::cmp::Reverse(h.height)));
    ranked
}

/// What the replication side of a node shares between its subscription tasks and the handling
/// of pushed dockets.
pub(super) struct SyncContext {
    pub chain: Arc<Chain>,
    pub server: Arc<DocketServer>,
    pub subs: Arc<Subscriptions>,
    pub pool: Arc<TxPool>,
    pub peers: Arc<PeerManager>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
}

impl SyncContext {
    /// Applies dockets received from a peer, passes what was stored on to followers, and
    /// returns why the rest was refused (if it was).
    pub(super) async fn apply(
        &self,
        register_id: &str,
        batch: Vec<DocketWithTransactions>,
    ) -> Result<Option<VerifyError>, StoreError> {
        let applied = self.chain.apply(register_id, batch).await?;
        Ok(self.pass_on(register_id, applied))
    }

    /// Stores a batch verified on top of the head held here (see [`Chain::store_checked`]),
    /// passes what was stored on to followers, and returns how many dockets were stored and
    /// why the rest was refused (if it was).
    pub(super) async fn store_checked(
        &self,
        checked: Checked,
    ) -> Result<(usize, Option<VerifyError>), StoreError> {
        let register_id = checked.last.register_id.clone();
        let applied = self.chain.store_checked(checked).await?;
        let stored = applied.stored.len();
        Ok((stored, self.pass_on(&register_id, applied)))
    }

    /// Applies a pushed docket whose transactions are all pending here (see
    /// [`Chain::apply_held`](super::chain::Chain::apply_held)), passes it on to followers, and
    /// returns why it was refused (if it was).
    pub(super) async fn apply_held(
        &self,
        compact: &CompactDocket,
    ) -> Result<Option<VerifyError>, StoreError> {
        let register_id = compact.docket.header.register_id.as_str();
        let applied = self.chain.apply_held(compact).await?;
        Ok(self.pass_on(register_id, applied))
    }

    /// Records what `applied` stored as synced, pushes it to followers, and returns why the
    /// rest was refused (if it was).
    fn pass_on(&self, register_id: &str, applied: Applied) -> Option<VerifyError> {
        if let Some(last) = applied.stored.last() {
            let version = self
                .chain
                .get(register_id)
                .map_or(0, |h| h.latest_version());
            self.subs
                .synced(register_id, last.docket.header.number, version);
            self.server.push(register_id, &applied.stored);
        }
        applied.invalid
    }

    /// Tells connected peers what this node holds now.
    pub(super) fn advertise(&self) {
        self.peers
            .broadcast(PeerMessage::Advertise(self.chain.public_heights()));
    }
}

/// What one round of syncing achieved.
enum Progress {
    Advanced,
    AtHead,
}

/// What the batches asked of one source gave.
pub(super) enum Pulled {
    /// Verified dockets were stored (or the head moved meanwhile).
    Advanced,
    /// The source has nothing after our head.
    Nothing,
    /// Nothing usable from this source (a verified prefix of a bad batch is kept all the same).
    Failed(SourceError),
}

/// The task of one subscription; ends when cancelled (unsubscribe or node shutdown).
pub(super) struct SubscriptionTask {
    pub ctx: Arc<SyncContext>,
    pub register_id: String,
    pub mode: Mode,
    pub wake: Arc<Notify>,
    pub cancel: CancellationToken,
}

impl SubscriptionTask {
    pub(super) async fn run(self) {
        let mut retry = SYNC_RETRY_MIN;
        loop {
            if self.cancel.is_cancelled() {
                return;
            }
            let (wait, following) = match self.sync_once().await {
                Ok(Progress::Advanced) => {
                    retry = SYNC_RETRY_MIN;
                    continue;
                }
                Ok(Progress::AtHead) => {
                    retry = SYNC_RETRY_MIN;
                    self.at_head();
                    (IDLE_RECHECK, true)
                }
                Err(e) => {
                    self.ctx.subs.set_error(&self.register_id, &e.to_string());
                    let wait = retry;
                    retry = next_retry(retry);
                    (wait, false)
                }
            };
            let woken = tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = self.wake.notified() => true,
                _ = tokio::time::sleep(wait) => false,
            };
            if woken && following {
                // Following: a peer seen ahead (or a push that overtook the one before it) is
                // usually followed within moments by the pushes that bring this node level,
                // from IDs whose payloads gossip brought. Pulling now would fetch those
                // payloads a second time.
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = tokio::time::sleep(PUSH_GRACE) => {}
                }
            }
        }
    }

    /// At the head: mark the state and ask every carrier to push new dockets.
    fn at_head(&self) {
        let carriers = self.ctx.peers.carriers(&self.register_id);
        let ours = self
            .ctx
            .chain
            .get(&self.register_id)
            .map_or(0, |h| h.head.number);
        let head = carriers.iter().map(|(_, h)| h.height).fold(ours, u64::max);
        let held = self
            .ctx
            .chain
            .get(&self.register_id)
            .map_or((0, 0), |h| (h.head.number, h.latest_version()));
        let carriers: Vec<String> = carriers.into_iter().map(|(id, _)| id).collect();
        for peer in self
            .ctx
            .subs
            .at_head(&self.register_id, head, held, &carriers)
        {
            self.ctx.peers.send(
                &peer,
                PeerMessage::Follow {
                    register_id: self.register_id.clone(),
                    follow: true,
                },
            );
        }
    }

    pub(super) async fn request_dockets(
        &self,
        peer: &str,
        from: u64,
        max: u32,
        headers_only: bool,
    ) -> Result<Vec<DocketWithTransactions>, SourceError> {
        let request = PeerRequest::Dockets {
            register_id: self.register_id.clone(),
            from,
            max,
            headers_only,
            max_bytes: self.ctx.config.sync_batch_bytes as u64,
        };
        match self
            .ctx
            .peers
            .request(peer, request, self.ctx.config.request_timeout)
            .await
        {
            Ok(PeerResponse::Dockets(Ok(batch))) => Ok(batch),
            Ok(PeerResponse::Dockets(Err(error))) | Err(error) => Err(SourceError::Request {
                peer: peer.to_string(),
                error,
            }),
            Ok(_) => Err(SourceError::UnexpectedAnswer {
                peer: peer.to_string(),
            }),
        }
    }

    /// One round: fetch genesis/anchor if needed, then one batch from the best source ahead of
    /// us. Sources that fail are counted (and penalised for bad data) and the next is tried.
    /// Advertised heights are hints that can be stale: "at the head" is only concluded when a
    /// source, asked now, has nothing after our head.
    async fn sync_once(&self) -> Result<Progress, SyncError> {
        let register_id = self.register_id.as_str();
        let carriers = self.ctx.peers.carriers(register_id);
        if carriers.is_empty() {
            return Err(SyncError::NoCarrier(register_id.to_string()));
        }
        let Some(held) = self.ctx.chain.get(register_id) else {
            self.ctx
                .subs
                .set_state(register_id, SyncState::Subscribing, None);
            return self.start_chain(&carriers).await;
        };
        if self.mode == Mode::FullReplica && held.base_height > 0 {
            // Only a store written before mode switches were checked holds this.
            return Err(SyncError::MissingHistory {
                register_id: register_id.to_string(),
                base: held.base_height,
            });
        }
        let Plan::CatchUp {
            target: (best, best_version),
        } = plan(held.head.number, &carriers)
        else {
            return self.confirm_head(&carriers).await;
        };
        self.ctx.subs.syncing(
            register_id,
            (held.head.number, held.latest_version()),
            (best, best_version),
        );
        let mut last = None;
        for (peer, advertised) in carriers.iter().filter(|(_, h)| h.height > held.head.number) {
            // A previous source may have delivered a verified prefix: continue from there.
            let ours = self
                .ctx
                .chain
                .get(register_id)
                .map_or(held.head.number, |h| h.head.number);
            if advertised.height <= ours {
                continue;
            }
            match self.pull(peer, best).await? {
                Pulled::Advanced => return Ok(Progress::Advanced),
                Pulled::Nothing => {
                    self.ctx
                        .peers
                        .record_failure(peer, "advertised dockets it did not serve");
                    last = Some(SourceError::ServedNothing {
                        peer: peer.clone(),
                        height: advertised.height,
                    });
                }
                Pulled::Failed(e) => last = Some(e),
            }
        }
        Err(SyncError::NoSource {
            register_id: register_id.to_string(),
            last,
        })
    }

    /// No carrier advertises more than we hold: ask the best of them (the origin first) for
    /// what follows our head. Nothing means at the head as of now; dockets are applied.
    async fn confirm_head(
        &self,
        carriers: &[(String, RegisterHeight)],
    ) -> Result<Progress, SyncError> {
        let register_id = self.register_id.as_str();
        let mut last = None;
        for (peer, _) in confirm_order(carriers) {
            match self.pull(peer, 0).await? {
                Pulled::Advanced => return Ok(Progress::Advanced),
                Pulled::Nothing => return Ok(Progress::AtHead),
                Pulled::Failed(e) => last = Some(e),
            }
        }
        Err(SyncError::NoSource {
            register_id: register_id.to_string(),
            last,
        })
    }

    /// First contact with a register: verify its genesis (learning the origin key) and, for a
    /// forward-only subscription, anchor at the current head of the best source.
    async fn start_chain(
        &self,
        carriers: &[(String, RegisterHeight)],
    ) -> Result<Progress, SyncError> {
        let register_id = self.register_id.as_str();
        let mut last = None;
        for (peer, advertised) in carriers.iter().filter(|(_, h)| h.full_replica) {
            let genesis = match self.request_dockets(peer, 0, 1, false).await {
                Ok(mut batch) if !batch.is_empty() => batch.remove(0),
                Ok(_) => {
                    last = Some(SourceError::NoGenesis { peer: peer.clone() });
                    continue;
                }
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let origin_key = match ledger::verify_genesis(register_id, &genesis) {
                Ok(key) => key,
                Err(reason) => {
                    self.ctx
                        .peers
                        .verification_failed(peer, Some(register_id), &reason.to_string())
                        .await;
                    last = Some(SourceError::InvalidGenesis {
                        peer: peer.clone(),
                        reason,
                    });
                    continue;
                }
            };
            // A forward-only replica starts at the source's head as of now (asked, not taken
            // from an advertisement that may be stale); the genesis when that is the head.
            let (anchor, base_height) = match self.mode {
                Mode::FullReplica => (genesis.docket, 0),
                Mode::ForwardOnly => match self
                    .fetch_anchor(peer, advertised.height, &origin_key)
                    .await
                {
                    Ok(None) => (genesis.docket, 0),
                    Ok(Some(anchor)) => {
                        let number = anchor.header.number;
                        (anchor, number)
                    }
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                },
            };
            let held = Held::new(
                true,
                self.mode.role(),
                origin_key,
                &anchor.header,
                base_height,
                self.ctx.chain.now_ms(),
            );
            self.ctx.chain.adopt(held, &anchor).await?;
            let version = self
                .ctx
                .chain
                .get(register_id)
                .map_or(0, |h| h.latest_version());
            self.ctx.subs.synced(register_id, base_height, version);
            self.ctx.advertise();
            return Ok(Progress::Advanced);
        }
        Err(last.map_or(SyncError::NoGenesisCarrier, SyncError::Source))
    }

    /// The newest signed header `peer` serves from docket `from` on (`from` is what it
    /// advertised, which may be stale), checked against the origin key; `None` when its head
    /// is the genesis.
    async fn fetch_anchor(
        &self,
        peer: &str,
        from: u64,
        origin_key: &[u8; 32],
    ) -> Result<Option<Docket>, SourceError> {
        let max = self.ctx.config.sync_batch_dockets.max(1);
        let mut from = from;
        let mut newest: Option<Docket> = None;
        // Headers only, a batch at a time, until a batch is not full: a source that keeps
        // sealing cannot keep this going for long, and each round moves forward.
        for _ in 0..ANCHOR_ROUNDS {
            let batch = self.request_dockets(peer, from, max, true).await?;
            let full = batch.len() >= max as usize;
            let Some(entry) = batch.into_iter().next_back().filter(|e| {
                e.docket.header.number >= from && e.docket.header.register_id == self.register_id
            }) else {
                break;
            };
            // A peer's header, not yet checked against the origin key: no overflow from it.
            from = entry.docket.header.number.saturating_add(1);
            newest = Some(entry.docket);
            if !full {
                break;
            }
        }
        let Some(anchor) = newest else {
            return Err(SourceError::MissingAnchor {
                peer: peer.to_string(),
                height: from,
            });
        };
        if anchor.header.number == 0 {
            return Ok(None);
        }
        if let Err(reason) = ledger::verify_anchor(origin_key, &anchor) {
            self.ctx
                .peers
                .verification_failed(peer, Some(&self.register_id), &reason.to_string())
                .await;
            return Err(SourceError::InvalidAnchor {
                peer: peer.to_string(),
                reason,
            });
        }
        Ok(Some(anchor))
    }
}
