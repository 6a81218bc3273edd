//! `RegisterSync`: a register's chain, transactions and state for the platform.
//! - `PullDocketChain`: dockets after `from_version` (a docket number, exclusive; 0: from the
//!   genesis), at most `max_dockets` (0 or more than [`MAX_CHAIN_DOCKETS`]: that many), in
//!   order, read a page at a time; `docket_data` is the same JSON list of transaction records
//!   as `DocketSyncService` sends (see [`super::records`]);
//! - `PullDocketTransactions`: the asked transactions (full IDs, at most
//!   [`MAX_TRANSACTION_IDS`]) the register holds, with their payloads; IDs not held are skipped;
//! - `SubscribeToRegister`: see [`super::live`];
//! - `GetRegisterSyncStatus`: the register's state here.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::PlatformDeps;
use super::docket_sync::{Range, docket_stream};
use super::errors::{self, PlatformError};
use super::live;
use super::pb::sync as pb;
use super::records::{self, hash_text};
use crate::ledger::{DocketWithTransactions, tx_id};
use crate::replication::{Role, SyncState};

/// Most dockets one `PullDocketChain` call streams.
pub(crate) const MAX_CHAIN_DOCKETS: u64 = 1000;
/// Most transaction IDs one `PullDocketTransactions` call may ask for.
pub(crate) const MAX_TRANSACTION_IDS: usize = 1000;
/// Transactions read from the store at a time while streaming them.
const TRANSACTION_PAGE: usize = 16;

pub(crate) struct RegisterSync {
    deps: PlatformDeps,
    /// The node's shutdown: live subscriptions end with it.
    shutdown: CancellationToken,
}

impl RegisterSync {
    pub(crate) fn new(deps: PlatformDeps, shutdown: CancellationToken) -> RegisterSync {
        RegisterSync { deps, shutdown }
    }
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::register_sync_server::RegisterSync for RegisterSync {
    type PullDocketChainStream = Streamed<pb::DocketEntry>;

    async fn pull_docket_chain(
        &self,
        request: Request<pb::DocketChainRequest>,
    ) -> Result<Response<Self::PullDocketChainStream>, Status> {
        let request = request.into_inner();
        let register_id = errors::register_id(&request.register_id)?.to_string();
        errors::bounded("peer_id", &request.peer_id)?;
        let from = errors::non_negative("from_version", request.from_version)?;
        let count = errors::non_negative("max_dockets", request.max_dockets.into())?;
        if !self.deps.registers.holds(&register_id) {
            return Err(PlatformError::UnknownRegister(register_id).into());
        }
        let range = Range {
            register_id,
            next: from.saturating_add(1),
            last: u64::MAX,
            remaining: if count == 0 {
                MAX_CHAIN_DOCKETS
            } else {
                count.min(MAX_CHAIN_DOCKETS)
            },
        };
        Ok(Response::new(
            docket_stream(self.deps.clone(), range, docket_entry).await?,
        ))
    }

    type PullDocketTransactionsStream = Streamed<pb::TransactionEntry>;

    async fn pull_docket_transactions(
        &self,
        request: Request<pb::DocketTransactionRequest>,
    ) -> Result<Response<Self::PullDocketTransactionsStream>, Status> {
        let request = request.into_inner();
        let register_id = errors::register_id(&request.register_id)?.to_string();
        errors::bounded("peer_id", &request.peer_id)?;
        let ids = &request.transaction_ids;
        if ids.len() > MAX_TRANSACTION_IDS {
            return Err(PlatformError::TooMany {
                field: "transaction_ids",
                count: ids.len(),
                max: MAX_TRANSACTION_IDS,
            }
            .into());
        }
        let ids = ids
            .iter()
            .map(|id| errors::tx_id("transaction_ids", id).map(hex::encode))
            .collect::<Result<Vec<String>, _>>()?;
        if !self.deps.registers.holds(&register_id) {
            return Err(PlatformError::UnknownRegister(register_id).into());
        }
        let registers = self.deps.registers.clone();
        let pages: Vec<Vec<String>> = ids.chunks(TRANSACTION_PAGE).map(<[_]>::to_vec).collect();
        let stream = futures::stream::iter(pages)
            .then(move |page| {
                let (registers, register_id) = (registers.clone(), register_id.clone());
                async move {
                    let found = registers
                        .transactions_with_payloads(&register_id, &page)
                        .await
                        .map_err(|e| Status::from(PlatformError::from(e)))?;
                    Ok::<_, Status>(found.into_iter().map(move |(tx, data)| {
                        Ok(pb::TransactionEntry {
                            checksum: tx.tx_id.clone(),
                            transaction_id: tx.tx_id,
                            register_id: tx.register_id,
                            transaction_data: data,
                            created_at: tx.received_at_ms,
                        })
                    }))
                }
            })
            .flat_map(|page| match page {
                Ok(entries) => futures::stream::iter(entries).left_stream(),
                Err(status) => futures::stream::once(async { Err(status) }).right_stream(),
            });
        Ok(Response::new(Box::pin(stream)))
    }

    type SubscribeToRegisterStream = Streamed<pb::LiveTransactionEvent>;

    async fn subscribe_to_register(
        &self,
        request: Request<pb::RegisterSubscriptionRequest>,
    ) -> Result<Response<Self::SubscribeToRegisterStream>, Status> {
        let deps = self.deps.clone();
        let stream = live::subscribe(deps, request.into_inner(), self.shutdown.clone()).await?;
        Ok(Response::new(stream))
    }

    async fn get_register_sync_status(
        &self,
        request: Request<pb::RegisterSyncStatusRequest>,
    ) -> Result<Response<pb::RegisterSyncStatus>, Status> {
        let request = request.into_inner();
        let register_id = errors::register_id(&request.register_id)?;
        errors::bounded("peer_id", &request.peer_id)?;
        let registers = &self.deps.registers;
        let sub = registers.subscription(register_id);
        let view = registers.view(register_id);
        if view.is_none() && sub.is_none() {
            return Err(PlatformError::UnknownRegister(register_id.to_string()).into());
        }
        let state = match (&view, &sub) {
            (Some(v), _) if v.role == Role::Origin => pb::SyncState::Active,
            (_, Some(s)) => sync_state(s.state),
            // Held, no longer subscribed: its data stays, nothing follows the network.
            _ => pb::SyncState::Unknown,
        };
        let full = view.as_ref().is_some_and(|v| {
            v.base_height == 0
                && (v.role == Role::Origin
                    || sub.as_ref().is_some_and(|s| {
                        matches!(s.state, SyncState::FullyReplicated | SyncState::Active)
                    }))
        });
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(Response::new(pb::RegisterSyncStatus {
            register_id: register_id.to_string(),
            sync_state: state.into(),
            latest_version: view.as_ref().map_or(0, |v| count(v.latest_version)),
            latest_docket_version: view.as_ref().map_or(0, |v| count(v.height)),
            total_transactions: view.as_ref().map_or(0, |v| count(v.transaction_count)),
            total_dockets: view.as_ref().map_or(0, |v| count(v.docket_count)),
            can_serve_full_replica: full,
            last_sync_at: sub.and_then(|s| s.last_sync_at_ms).unwrap_or(0),
        }))
    }
}

fn sync_state(state: SyncState) -> pb::SyncState {
    match state {
        SyncState::Subscribing => pb::SyncState::Subscribing,
        SyncState::Syncing => pb::SyncState::Syncing,
        SyncState::FullyReplicated => pb::SyncState::FullyReplicated,
        SyncState::Active => pb::SyncState::Active,
        SyncState::Error => pb::SyncState::Error,
    }
}

/// A docket as `PullDocketChain` sends it: `version` is its number, `created_at` its sealing
/// time in unix milliseconds.
fn docket_entry(docket: &DocketWithTransactions) -> Result<pb::DocketEntry, PlatformError> {
    let header = &docket.docket.header;
    Ok(pb::DocketEntry {
        register_id: header.register_id.clone(),
        version: i64::try_from(header.number).unwrap_or(i64::MAX),
        docket_data: records::docket_data(docket)?,
        previous_hash: if header.number == 0 {
            String::new()
        } else {
            hash_text(&header.previous_hash)
        },
        docket_hash: hash_text(&header.hash()),
        transaction_ids: docket.transactions.iter().map(|p| tx_id(p)).collect(),
        created_at: header.sealed_at_ms,
    })
}
