//! `SubscribeToRegister`: a register's sealed transactions and dockets, from `from_version` on,
//! then live as dockets are sealed here or replicated to here.
//!
//! - `from_version` is a transaction version, exclusive: the stream starts with the sealed
//!   transactions after it (0: every one held), read from the store a page of dockets at a
//!   time, then follows the register as it grows. Pending transactions are not sent: they are
//!   not part of the register until sealed, and get their version then.
//! - For every docket it sends its transactions in order (`LIVE_EVENT_TYPE_TRANSACTION`:
//!   `transaction_id` and `checksum` the hex SHA-256 of the payload, `version` the
//!   transaction's version, `transaction_data` the payload), then the docket itself
//!   (`LIVE_EVENT_TYPE_DOCKET`: `version` the docket number, `checksum` the docket hash,
//!   `transaction_id` empty, `transaction_data` the docket as a JSON object with
//!   `docketNumber`, `docketHash`, `previousHash` and `transactionIds`). `sender_peer_id` is
//!   this node, `timestamp` the send time in unix milliseconds.
//! - Filters: this node's transactions are opaque payloads with no type and no participants,
//!   so a request with `transaction_types` or `participant_ids` is refused
//!   (INVALID_ARGUMENT) rather than answered with everything.
//! - When the node shuts down the stream ends with UNAVAILABLE.
//! - A reader that leaves an event untaken for [`SLOW_READER_TIMEOUT`] while
//!   [`SUBSCRIBE_BUFFER`] events wait is dropped: the stream ends with RESOURCE_EXHAUSTED and
//!   `sorcha_peer_limit_hits_total{limit="platform_subscriber_slow"}` counts it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::PlatformDeps;
use super::errors::{self, PlatformError};
use super::pb::sync as pb;
use super::records::hash_text;
use crate::ledger::{DocketWithTransactions, tx_id};

/// Events waiting for one subscriber before it counts as slow.
pub(crate) const SUBSCRIBE_BUFFER: usize = 64;
/// How long a full buffer may wait for the reader before the subscriber is dropped.
pub(crate) const SLOW_READER_TIMEOUT: Duration = Duration::from_secs(5);
/// Dockets read from the store at a time.
const DOCKET_PAGE: u32 = 16;

type Item = Result<pb::LiveTransactionEvent, Status>;
type Events = Pin<Box<dyn Stream<Item = Item> + Send>>;

/// Checks a subscription and starts the task that feeds it.
pub(crate) async fn subscribe(
    deps: PlatformDeps,
    request: pb::RegisterSubscriptionRequest,
    shutdown: CancellationToken,
) -> Result<Events, PlatformError> {
    let register_id = errors::register_id(&request.register_id)?.to_string();
    errors::bounded("peer_id", &request.peer_id)?;
    let from = errors::non_negative("from_version", request.from_version)?;
    if let Some(filters) = &request.filters {
        for (field, list) in [
            ("filters.transaction_types", &filters.transaction_types),
            ("filters.participant_ids", &filters.participant_ids),
        ] {
            if !list.is_empty() {
                return Err(PlatformError::Invalid {
                    field,
                    problem: "this node's transactions are opaque payloads with no type or \
                              participants; subscribe without filters"
                        .into(),
                });
            }
        }
    }
    let view = deps
        .registers
        .view(&register_id)
        .ok_or_else(|| PlatformError::UnknownRegister(register_id.clone()))?;
    let base_version = view.latest_version - view.transaction_count;
    if from < base_version {
        return Err(PlatformError::VersionsNotHeld {
            register_id,
            first: base_version + 1,
        });
    }
    // Observed before the first read, so no docket sealed meanwhile is missed.
    let wake = deps.registers.events();
    let next = if from >= view.latest_version {
        view.height + 1
    } else {
        deps.registers
            .docket_holding_version(&register_id, from + 1)
            .await?
            .ok_or_else(|| PlatformError::Storage(format!("version {} not found", from + 1)))?
    };
    let (sender, receiver) = mpsc::channel(SUBSCRIBE_BUFFER);
    let dropped = Arc::new(AtomicBool::new(false));
    let feed = Feed {
        deps: deps.clone(),
        register_id,
        next,
        after_version: from,
        sender,
        dropped: dropped.clone(),
        shutdown,
    };
    deps.tasks.spawn(feed.run(wake));
    // After the events, a dropped subscriber learns why.
    let end = futures::stream::once(async move {
        dropped.load(Ordering::Acquire).then(|| {
            Err(Status::resource_exhausted(format!(
                "this subscriber did not take its events for {}s and was dropped",
                SLOW_READER_TIMEOUT.as_secs()
            )))
        })
    })
    .filter_map(futures::future::ready);
    Ok(Box::pin(ReceiverStream::new(receiver).chain(end)))
}

/// One subscriber's feed: reads the dockets after the last one sent, then waits for more.
struct Feed {
    deps: PlatformDeps,
    register_id: String,
    /// The next docket to send.
    next: u64,
    /// Transactions up to this version are not sent.
    after_version: u64,
    sender: mpsc::Sender<Item>,
    dropped: Arc<AtomicBool>,
    shutdown: CancellationToken,
}

/// Why a feed stops.
enum Stop {
    /// The reader went away (or was dropped as slow).
    Gone,
}

impl Feed {
    async fn run(mut self, mut wake: broadcast::Receiver<crate::txpool::TxEvent>) {
        loop {
            if let Err(Stop::Gone) = self.send_new().await {
                return;
            }
            // Waits for a docket of this register (or a missed event: read again to see).
            loop {
                tokio::select! {
                    _ = self.sender.closed() => return,
                    _ = self.shutdown.cancelled() => {
                        // The server waits for open streams: this one ends now, saying why.
                        let status = Status::unavailable("the node is shutting down");
                        let _ = self.sender.try_send(Err(status)); // a full buffer just ends
                        return;
                    }
                    event = wake.recv() => match event {
                        Ok(e) if e.sealed && e.register_id == self.register_id => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        }
    }

    /// Sends every docket held after the last one sent.
    async fn send_new(&mut self) -> Result<(), Stop> {
        loop {
            let page = match self
                .deps
                .registers
                .platform_dockets(&self.register_id, self.next, DOCKET_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    let status = Status::from(PlatformError::from(e));
                    self.send(Err(status)).await?;
                    return Err(Stop::Gone);
                }
            };
            if page.is_empty() {
                return Ok(());
            }
            for docket in page {
                if docket.docket.header.number != self.next {
                    // Not the next docket: the register was purged and made again.
                    let status = Status::aborted("the register's chain changed under the stream");
                    self.send(Err(status)).await?;
                    return Err(Stop::Gone);
                }
                self.send_docket(&docket).await?;
                self.next += 1;
            }
        }
    }

    async fn send_docket(&mut self, docket: &DocketWithTransactions) -> Result<(), Stop> {
        let header = &docket.docket.header;
        let mut ids = Vec::with_capacity(docket.transactions.len());
        for (i, payload) in docket.transactions.iter().enumerate() {
            let id = tx_id(payload);
            ids.push(id.clone());
            let version = header.first_version + i as u64;
            if version <= self.after_version {
                continue;
            }
            let event = self.event(pb::LiveEventType::Transaction, id.clone(), version, id);
            self.send(Ok(pb::LiveTransactionEvent {
                transaction_data: payload.clone(),
                ..event
            }))
            .await?;
        }
        let hash = hash_text(&header.hash());
        let data = serde_json::json!({
            "docketNumber": header.number,
            "docketHash": hash,
            "previousHash": if header.number == 0 { String::new() } else { hash_text(&header.previous_hash) },
            "transactionIds": ids,
        });
        let event = self.event(
            pb::LiveEventType::Docket,
            String::new(),
            header.number,
            hash,
        );
        self.send(Ok(pb::LiveTransactionEvent {
            transaction_data: data.to_string().into_bytes(),
            ..event
        }))
        .await
    }

    fn event(
        &self,
        kind: pb::LiveEventType,
        transaction_id: String,
        version: u64,
        checksum: String,
    ) -> pb::LiveTransactionEvent {
        pb::LiveTransactionEvent {
            transaction_id,
            register_id: self.register_id.clone(),
            version: i64::try_from(version).unwrap_or(i64::MAX),
            transaction_data: Vec::new(),
            checksum,
            sender_peer_id: self.deps.peer_id.clone(),
            timestamp: crate::clock::now_ms(),
            event_type: kind.into(),
        }
    }

    /// Hands one event to the reader, waiting at most [`SLOW_READER_TIMEOUT`] for room.
    async fn send(&self, item: Item) -> Result<(), Stop> {
        match self.sender.send_timeout(item, SLOW_READER_TIMEOUT).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                self.deps.metrics.limit_hit("platform_subscriber_slow");
                tracing::debug!(register = %self.register_id, "platform subscriber dropped: too slow");
                self.dropped.store(true, Ordering::Release);
                Err(Stop::Gone)
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(Stop::Gone),
        }
    }
}
