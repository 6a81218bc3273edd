//! The errors of the register service as its callers (admin API, CLI) see them.

use crate::store::StoreError;
use crate::txpool::TxPoolError;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("payload of {size} bytes is larger than max_transaction_size ({limit} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TxPoolError> for RegisterError {
    fn from(e: TxPoolError) -> RegisterError {
        match e {
            TxPoolError::UnknownRegister(_) => RegisterError::NotFound(e.to_string()),
            TxPoolError::ShuttingDown => RegisterError::Unavailable(e.to_string()),
            TxPoolError::Store(e) => RegisterError::Store(e),
        }
    }
}

/// A batch submission that failed. Batches are stored in chunks, each its own database
/// transaction, so the store's writer is free between chunks: the chunks before the failure
/// stay stored (valid pending transactions, sealed as usual) and `stored` names them. A batch
/// refused before anything was written (bad payload, unknown register) has `stored` empty.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct BatchError {
    /// IDs of the transactions stored before the failure, in submission order.
    pub stored: Vec<String>,
    #[source]
    pub error: RegisterError,
}

impl From<RegisterError> for BatchError {
    fn from(error: RegisterError) -> BatchError {
        BatchError {
            stored: Vec::new(),
            error,
        }
    }
}
