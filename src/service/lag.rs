//! Replication lag against another node: ask it (over the peer protocol, through the
//! [`HeightsProbe`] the network edge provides) for its public registers' heights and its docket
//! hashes at our heads, then compare with what this node holds.

use std::time::Duration;

use crate::config::{AddressError, validate_host_port};
use crate::replication::Registers;
use crate::replication::lag::{LagRow, RemoteHeights};
use crate::store::StoreError;

/// Asks another node for its registers' heights: implemented by the network edge.
#[async_trait::async_trait]
pub trait HeightsProbe: Send + Sync {
    /// The heights of the node whose peer protocol listens at `address`, with its docket hashes
    /// at the `(register, height)` pairs in `queries`.
    async fn heights(
        &self,
        address: &str,
        queries: Vec<(String, u64)>,
        timeout: Duration,
    ) -> Result<RemoteHeights, ProbeError>;
}

/// Why the other node could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid address '{address}': {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("{address} refused: {reason}")]
    Refused { address: String, reason: String },
    /// The transport's own error, which names the address.
    #[error("{0}")]
    Transport(String),
}

/// Why lag could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum LagError {
    #[error(transparent)]
    InvalidAddress(#[from] AddressError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{against} does not advertise register '{register}'")]
    NotAdvertised { against: String, register: String },
}

/// Lag of every register `against` advertises (or just `only`) relative to this node.
pub async fn measure(
    registers: &Registers,
    probe: &dyn HeightsProbe,
    against: &str,
    only: Option<&str>,
    timeout: Duration,
) -> Result<Vec<LagRow>, LagError> {
    validate_host_port(against)?;
    let remote = probe
        .heights(against, registers.lag_queries(), timeout)
        .await?;
    let rows = registers.lag(&remote, only).await?;
    if let Some(only) = only
        && rows.is_empty()
    {
        return Err(LagError::NotAdvertised {
            against: against.to_string(),
            register: only.to_string(),
        });
    }
    Ok(rows)
}
