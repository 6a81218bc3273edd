//! `DocketSyncService`: the Register service's recovery. `GetLatestDocketNumber` answers with
//! this node's head of the register and says whether that head is the network's as far as
//! this node knows (`network_available`: the origin, or a replica at the head); `SyncDockets`
//! streams dockets after `from` up to `to` (0: the head), at most `max_count` (0 or more
//! than [`MAX_SYNC_COUNT`]: that many), in order and chained, read a page at a time.

use std::collections::VecDeque;
use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::PlatformDeps;
use super::errors::{self, PlatformError};
use super::pb::docket_sync as pb;
use super::records::{self, hash_text, signature_text};
use crate::identity::peer_id_for;
use crate::ledger::DocketWithTransactions;
use crate::replication::{Role, SyncState};

/// Most dockets one `SyncDockets` call streams (the Register service asks for 100).
pub(crate) const MAX_SYNC_COUNT: u64 = 100;

pub(crate) struct DocketSync {
    deps: PlatformDeps,
}

impl DocketSync {
    pub(crate) fn new(deps: PlatformDeps) -> DocketSync {
        DocketSync { deps }
    }

    /// Whether this node's head of a held register is the head as far as it knows.
    fn at_head(&self, register_id: &str, role: Role) -> bool {
        role == Role::Origin
            || self
                .deps
                .registers
                .subscription(register_id)
                .is_some_and(|s| matches!(s.state, SyncState::FullyReplicated | SyncState::Active))
    }
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::SyncDocketEntry, Status>> + Send>>;

#[tonic::async_trait]
impl pb::docket_sync_service_server::DocketSyncService for DocketSync {
    async fn get_latest_docket_number(
        &self,
        request: Request<pb::GetLatestDocketNumberRequest>,
    ) -> Result<Response<pb::GetLatestDocketNumberResponse>, Status> {
        let request = request.into_inner();
        let register_id = errors::register_id(&request.register_id)?;
        let view = self
            .deps
            .registers
            .view(register_id)
            .ok_or_else(|| PlatformError::UnknownRegister(register_id.to_string()))?;
        Ok(Response::new(pb::GetLatestDocketNumberResponse {
            latest_docket_number: to_i64(view.height),
            source_peer_id: self.deps.peer_id.clone(),
            queried_at: Some(timestamp(crate::clock::now_ms())),
            network_available: self.at_head(register_id, view.role),
        }))
    }

    type SyncDocketsStream = EntryStream;

    async fn sync_dockets(
        &self,
        request: Request<pb::SyncDocketsRequest>,
    ) -> Result<Response<EntryStream>, Status> {
        let range = Range::checked(request.into_inner())?;
        let origin = self
            .deps
            .registers
            .origin_key(&range.register_id)
            .ok_or_else(|| PlatformError::UnknownRegister(range.register_id.clone()))?;
        let validator_id = peer_id_for(&origin);
        let stream = docket_stream(self.deps.clone(), range, move |docket| {
            entry(docket, &validator_id)
        })
        .await?;
        Ok(Response::new(stream))
    }
}
/// A range of dockets a call asks for, checked.
pub(crate) struct Range {
    pub register_id: String,
    /// The next docket to send.
    pub next: u64,
    /// The last docket to send (`u64::MAX`: up to the head).
    pub last: u64,
    /// Dockets still to send.
    pub remaining: u64,
}

impl Range {
    pub(crate) fn checked(request: pb::SyncDocketsRequest) -> Result<Range, PlatformError> {
        let register_id = errors::register_id(&request.register_id)?.to_string();
        let non_negative = |field, value: i64| {
            u64::try_from(value).map_err(|_| PlatformError::Negative { field, value })
        };
        let from = non_negative("from_docket_number", request.from_docket_number)?;
        let to = non_negative("to_docket_number", request.to_docket_number)?;
        let count = non_negative("max_count", request.max_count.into())?;
        if to != 0 && to <= from {
            return Err(PlatformError::Invalid {
                field: "to_docket_number",
                problem: format!(
                    "{to} is not above from_docket_number {from} (from is exclusive, to inclusive, 0 means the head)"
                ),
            });
        }
        Ok(Range {
            register_id,
            next: from.saturating_add(1),
            last: if to == 0 { u64::MAX } else { to },
            remaining: if count == 0 {
                MAX_SYNC_COUNT
            } else {
                count.min(MAX_SYNC_COUNT)
            },
        })
    }
}

/// A stream of a register's dockets in `range`, each as `map` makes it, read a page at a time.
/// The first page is read before it returns, so a refusal is the call's status, not a stream
/// error; a read failing later ends the stream with its status.
pub(crate) async fn docket_stream<T, F>(
    deps: PlatformDeps,
    range: Range,
    map: F,
) -> Result<Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>, PlatformError>
where
    T: Send + 'static,
    F: Fn(&DocketWithTransactions) -> Result<T, PlatformError> + Send + 'static,
{
    let mut pages = Pages {
        deps,
        buffered: VecDeque::new(),
        range,
        map,
    };
    pages.fill().await?;
    let stream = futures::stream::unfold(pages, |mut pages| async move {
        if pages.buffered.is_empty()
            && let Err(e) = pages.fill().await
        {
            pages.range.remaining = 0;
            return Some((Err(Status::from(e)), pages));
        }
        let entry = pages.buffered.pop_front()?;
        Some((Ok(entry), pages))
    });
    Ok(Box::pin(stream))
}

/// A docket stream's state: the range left and the entries read but not yet sent.
struct Pages<T, F> {
    deps: PlatformDeps,
    buffered: VecDeque<T>,
    range: Range,
    map: F,
}

impl<T, F: Fn(&DocketWithTransactions) -> Result<T, PlatformError>> Pages<T, F> {
    /// Reads the next page of dockets into the buffer (nothing once the range is done).
    async fn fill(&mut self) -> Result<(), PlatformError> {
        let range = &mut self.range;
        if range.remaining == 0 || range.next > range.last {
            return Ok(());
        }
        let max = u32::try_from(range.remaining).unwrap_or(u32::MAX);
        let dockets = self
            .deps
            .registers
            .platform_dockets(&range.register_id, range.next, max)
            .await?;
        for docket in dockets {
            let number = docket.docket.header.number;
            // A page starts at `next` and is consecutive; anything else ends the stream.
            if number != range.next || number > range.last || range.remaining == 0 {
                range.remaining = 0;
                break;
            }
            self.buffered.push_back((self.map)(&docket)?);
            range.next += 1;
            range.remaining -= 1;
        }
        if self.buffered.is_empty() {
            // The head was reached.
            range.remaining = 0;
        }
        Ok(())
    }
}

/// A docket as the platform reads it (text forms in [`records`]).
fn entry(
    docket: &DocketWithTransactions,
    validator_id: &str,
) -> Result<pb::SyncDocketEntry, PlatformError> {
    let header = &docket.docket.header;
    Ok(pb::SyncDocketEntry {
        docket_number: to_i64(header.number),
        docket_hash: hash_text(&header.hash()),
        previous_docket_hash: if header.number == 0 {
            String::new()
        } else {
            hash_text(&header.previous_hash)
        },
        merkle_root: hash_text(&header.merkle_root),
        docket_data: records::docket_data(docket)?,
        transaction_count: i32::try_from(header.tx_count).unwrap_or(i32::MAX),
        sealed_at: Some(timestamp(header.sealed_at_ms)),
        validator_signature: signature_text(&docket.docket.signature),
        validator_id: validator_id.to_string(),
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A unix-millisecond time as a protobuf `Timestamp`.
pub(crate) fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // 0..=999 ms as nanoseconds always fits.
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from: i64, to: i64, max: i32) -> pb::SyncDocketsRequest {
        pb::SyncDocketsRequest {
            register_id: "reg".into(),
            from_docket_number: from,
            to_docket_number: to,
            max_count: max,
        }
    }

    #[test]
    fn ranges_are_checked_and_capped() {
        let r = Range::checked(request(4, 9, 0)).expect("valid");
        assert_eq!((r.next, r.last, r.remaining), (5, 9, MAX_SYNC_COUNT));
        let r = Range::checked(request(0, 0, 1000)).expect("valid");
        assert_eq!((r.next, r.last, r.remaining), (1, u64::MAX, MAX_SYNC_COUNT));
        assert!(Range::checked(request(-1, 0, 0)).is_err());
        assert!(Range::checked(request(0, -2, 0)).is_err());
        assert!(Range::checked(request(0, 0, -1)).is_err());
        assert!(Range::checked(request(5, 5, 0)).is_err());
        assert!(Range::checked(request(6, 5, 0)).is_err());
        assert_eq!(timestamp(1_500).nanos, 500_000_000);
        assert_eq!(timestamp(-1).seconds, -1);
    }
}
