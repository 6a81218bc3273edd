//! `TransactionDistribution`: transactions by their hash (`transaction_hash` is the
//! transaction ID, the hex SHA-256 of its payload), and submissions from the platform.
//! - `NotifyTransaction`: `already_known` when the register (or, without `register_id`, any
//!   register held here) holds it, pending or sealed; `will_request` when this node carries
//!   the register, does not hold the transaction, is not fetching it already and its
//!   `transaction_size` is within `max_transaction_size`: it takes it when a peer announces it (gossip) or a client submits it. This node never calls the
//!   sender back.
//! - `GetTransaction`: the payload (`found` false when not held); without `register_id`,
//!   every register held here is looked in.
//! - `StreamTransaction`: the payload in chunks of [`CHUNK_BYTES`] with `total_chunks`;
//!   NOT_FOUND when not held.
//! - `SubmitTransaction`: `submission_json` (a JSON object) is the transaction's payload, byte
//!   for byte, submitted as `tx submit` does it (same checks, same limits; pending here, then
//!   gossiped and sealed by the origin). A request that is malformed is refused with
//!   INVALID_ARGUMENT; a well-formed submission this node does not take (a register it does
//!   not carry, a payload over `max_transaction_size`) is answered `accepted: false` with the
//!   reason. `receiver_is_validator` is true when this node is the register's origin (it
//!   seals it).

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::PlatformDeps;
use super::errors::{self, PlatformError};
use super::pb::transaction as pb;
use crate::replication::{RegisterError, Role};

/// Bytes of payload in one `StreamTransaction` chunk.
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;

pub(crate) struct TransactionDistribution {
    deps: PlatformDeps,
}

impl TransactionDistribution {
    pub(crate) fn new(deps: PlatformDeps) -> TransactionDistribution {
        TransactionDistribution { deps }
    }

    /// The registers to look in: the one named (which must be held), or every one held.
    fn registers_for(&self, register_id: &str) -> Result<Vec<String>, PlatformError> {
        if register_id.is_empty() {
            return Ok(self
                .deps
                .registers
                .list()
                .into_iter()
                .map(|v| v.register_id)
                .collect());
        }
        let register_id = errors::register_id(register_id)?;
        if !self.deps.registers.holds(register_id) {
            return Err(PlatformError::UnknownRegister(register_id.to_string()));
        }
        Ok(vec![register_id.to_string()])
    }

    /// The payload of a transaction, from the first register (of those asked) that holds it.
    async fn payload(&self, request: &pb::TransactionRequest) -> Result<Option<Vec<u8>>, Status> {
        let id = hex::encode(errors::tx_id(
            "transaction_hash",
            &request.transaction_hash,
        )?);
        errors::bounded("requesting_peer_id", &request.requesting_peer_id)?;
        for register_id in self.registers_for(&request.register_id)? {
            let found = self
                .deps
                .registers
                .transactions_with_payloads(&register_id, std::slice::from_ref(&id))
                .await
                .map_err(PlatformError::from)?;
            if let Some((_, payload)) = found.into_iter().next() {
                return Ok(Some(payload));
            }
        }
        Ok(None)
    }
}

type Chunks = Pin<Box<dyn Stream<Item = Result<pb::TransactionChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::transaction_distribution_server::TransactionDistribution for TransactionDistribution {
    async fn notify_transaction(
        &self,
        request: Request<pb::TransactionNotification>,
    ) -> Result<Response<pb::NotificationAck>, Status> {
        let request = request.into_inner();
        let id = errors::tx_id("transaction_hash", &request.transaction_hash)?;
        errors::bounded("sender_peer_id", &request.sender_peer_id)?;
        let size = errors::non_negative("transaction_size", request.transaction_size)?;
        let registers = self.registers_for(&request.register_id)?;
        let mut known = false;
        for register_id in &registers {
            if self
                .deps
                .registers
                .holds_transaction(register_id, &id)
                .await
                .map_err(PlatformError::from)?
            {
                known = true;
                break;
            }
        }
        let will_request = !known
            && !request.register_id.is_empty()
            && size <= self.deps.config.max_transaction_size as u64
            && !self.deps.registers.is_fetching(&id);
        Ok(Response::new(pb::NotificationAck {
            already_known: known,
            will_request,
        }))
    }

    async fn get_transaction(
        &self,
        request: Request<pb::TransactionRequest>,
    ) -> Result<Response<pb::TransactionResponse>, Status> {
        let request = request.into_inner();
        let payload = self.payload(&request).await?;
        Ok(Response::new(pb::TransactionResponse {
            transaction_hash: request.transaction_hash.to_ascii_lowercase(),
            found: payload.is_some(),
            transaction_data: payload.unwrap_or_default(),
        }))
    }

    type StreamTransactionStream = Chunks;

    async fn stream_transaction(
        &self,
        request: Request<pb::TransactionRequest>,
    ) -> Result<Response<Chunks>, Status> {
        let request = request.into_inner();
        let hash = request.transaction_hash.to_ascii_lowercase();
        let Some(payload) = self.payload(&request).await? else {
            return Err(PlatformError::NotFound(format!("no transaction {hash} held here")).into());
        };
        let chunks: Vec<Vec<u8>> = payload.chunks(CHUNK_BYTES).map(<[u8]>::to_vec).collect();
        // A payload is at most max_transaction_size (16 MiB), so the count fits.
        let total = i32::try_from(chunks.len()).unwrap_or(i32::MAX);
        let stream = futures::stream::iter(chunks.into_iter().enumerate().map(move |(i, data)| {
            Ok(pb::TransactionChunk {
                transaction_hash: hash.clone(),
                chunk_index: i32::try_from(i).unwrap_or(i32::MAX),
                total_chunks: total,
                chunk_data: data,
            })
        }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn submit_transaction(
        &self,
        request: Request<pb::SubmitTransactionRequest>,
    ) -> Result<Response<pb::SubmitTransactionResponse>, Status> {
        let request = request.into_inner();
        let register_id = errors::register_id(&request.register_id)?;
        errors::bounded("origin_peer_id", &request.origin_peer_id)?;
        errors::non_negative("submitted_at_unix_ms", request.submitted_at_unix_ms)?;
        if request.submission_json.is_empty() {
            return Err(PlatformError::Missing {
                field: "submission_json",
            }
            .into());
        }
        let is_object = serde_json::from_slice::<serde_json::Value>(&request.submission_json)
            .is_ok_and(|v| v.is_object());
        if !is_object {
            return Err(PlatformError::Invalid {
                field: "submission_json",
                problem: "a transaction submission is a JSON object".into(),
            }
            .into());
        }
        let registers = &self.deps.registers;
        let is_validator = registers
            .view(register_id)
            .is_some_and(|v| v.role == Role::Origin);
        let answer = |accepted: bool, reason: String| pb::SubmitTransactionResponse {
            accepted,
            reject_reason: reason,
            receiver_is_validator: is_validator,
        };
        match registers.submit(register_id, request.submission_json).await {
            Ok(_) => Ok(Response::new(answer(true, String::new()))),
            Err(e @ (RegisterError::NotFound(_) | RegisterError::TooLarge { .. })) => {
                if matches!(e, RegisterError::TooLarge { .. }) {
                    self.deps.metrics.limit_hit("max_transaction_size");
                }
                Ok(Response::new(answer(false, e.to_string())))
            }
            Err(e) => Err(PlatformError::from(e).into()),
        }
    }
}
