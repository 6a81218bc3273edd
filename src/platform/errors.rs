//! Why a platform call is refused, and the one mapping to gRPC statuses. A refusal changes
//! nothing: every check runs before anything is done.

use tonic::Status;

use crate::ledger::InvalidRegisterId;
use crate::replication::{RegisterError, ServeError};
use crate::store::StoreError;

/// A refused platform call.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{field} is {len} bytes; at most {max} are accepted")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} has {count} entries; at most {max} are accepted")]
    TooMany {
        field: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} must not be negative (got {value})")]
    Negative { field: &'static str, value: i64 },
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error(transparent)]
    RegisterId(#[from] InvalidRegisterId),
    #[error("register '{0}' is not held by this node")]
    UnknownRegister(String),
    #[error("{0}")]
    NotFound(String),
    #[error("this node holds '{register_id}' only from docket {first}")]
    NotHeldBefore { register_id: String, first: u64 },
    #[error("this node holds the transactions of '{register_id}' only from version {first}")]
    VersionsNotHeld { register_id: String, first: u64 },
    #[error("{0}")]
    Unauthenticated(String),
    /// A rate or a number of places is used up; the caller may try again later.
    #[error("{0}")]
    Exhausted(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("cannot encode the answer: {0}")]
    Encoding(String),
}

impl From<StoreError> for PlatformError {
    fn from(e: StoreError) -> PlatformError {
        PlatformError::Storage(e.to_string())
    }
}

impl From<serde_json::Error> for PlatformError {
    fn from(e: serde_json::Error) -> PlatformError {
        PlatformError::Encoding(e.to_string())
    }
}

impl From<ServeError> for PlatformError {
    fn from(e: ServeError) -> PlatformError {
        match e {
            ServeError::Unavailable(id) => PlatformError::UnknownRegister(id),
            ServeError::NotHeldBefore { register_id, first } => {
                PlatformError::NotHeldBefore { register_id, first }
            }
            ServeError::Incomplete(_) | ServeError::Store(_) => {
                PlatformError::Storage(e.to_string())
            }
        }
    }
}

impl From<RegisterError> for PlatformError {
    fn from(e: RegisterError) -> PlatformError {
        match e {
            RegisterError::NotFound(m) => PlatformError::NotFound(m),
            RegisterError::Store(e) => PlatformError::Storage(e.to_string()),
            RegisterError::Unavailable(m) => PlatformError::Storage(m),
            RegisterError::Invalid(m) | RegisterError::Conflict(m) => PlatformError::Invalid {
                field: "request",
                problem: m,
            },
            RegisterError::TooLarge { size, limit } => PlatformError::TooLong {
                field: "transaction",
                len: size,
                max: limit,
            },
        }
    }
}

impl From<PlatformError> for Status {
    fn from(e: PlatformError) -> Status {
        let message = e.to_string();
        match e {
            PlatformError::TooLong { .. }
            | PlatformError::TooMany { .. }
            | PlatformError::Missing { .. }
            | PlatformError::Negative { .. }
            | PlatformError::Invalid { .. }
            | PlatformError::RegisterId(_) => Status::invalid_argument(message),
            PlatformError::UnknownRegister(_) | PlatformError::NotFound(_) => {
                Status::not_found(message)
            }
            PlatformError::NotHeldBefore { .. } | PlatformError::VersionsNotHeld { .. } => {
                Status::failed_precondition(message)
            }
            PlatformError::Unauthenticated(_) => Status::unauthenticated(message),
            PlatformError::Exhausted(_) => Status::resource_exhausted(message),
            PlatformError::Storage(_) => Status::unavailable(message),
            PlatformError::Encoding(_) => Status::internal(message),
        }
    }
}

/// `text` if it is at most [`super::MAX_ID_BYTES`] long.
pub(crate) fn bounded<'a>(field: &'static str, text: &'a str) -> Result<&'a str, PlatformError> {
    if text.len() > super::MAX_ID_BYTES {
        return Err(PlatformError::TooLong {
            field,
            len: text.len(),
            max: super::MAX_ID_BYTES,
        });
    }
    Ok(text)
}

/// A register ID the node's rules accept.
pub(crate) fn register_id(text: &str) -> Result<&str, PlatformError> {
    if text.is_empty() {
        return Err(PlatformError::Missing {
            field: "register_id",
        });
    }
    bounded("register_id", text)?;
    crate::ledger::validate_register_id(text)?;
    Ok(text)
}

/// A transaction ID: 64 hex characters (the SHA-256 of its payload), as its bytes.
pub(crate) fn tx_id(field: &'static str, text: &str) -> Result<[u8; 32], PlatformError> {
    if text.is_empty() {
        return Err(PlatformError::Missing { field });
    }
    bounded(field, text)?;
    let mut id = [0u8; 32];
    match hex::decode_to_slice(text, &mut id) {
        Ok(()) => Ok(id),
        Err(_) => Err(PlatformError::Invalid {
            field,
            problem: format!("'{text}' is not a transaction ID (64 hex characters)"),
        }),
    }
}

/// A non-negative number.
pub(crate) fn non_negative(field: &'static str, value: i64) -> Result<u64, PlatformError> {
    u64::try_from(value).map_err(|_| PlatformError::Negative { field, value })
}

/// How many entries to answer with: `asked` (0: [`super::MAX_PEERS_PER_ANSWER`]), never above
/// that bound; negative is refused.
pub(crate) fn answer_size(field: &'static str, asked: i32) -> Result<usize, PlatformError> {
    match usize::try_from(asked) {
        Err(_) => Err(PlatformError::Negative {
            field,
            value: asked.into(),
        }),
        Ok(0) => Ok(super::MAX_PEERS_PER_ANSWER),
        Ok(n) => Ok(n.min(super::MAX_PEERS_PER_ANSWER)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_the_right_status() {
        let code = |e: PlatformError| Status::from(e).code();
        assert_eq!(
            code(PlatformError::Missing { field: "x" }),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            code(PlatformError::UnknownRegister("r".into())),
            tonic::Code::NotFound
        );
        assert_eq!(
            code(PlatformError::Unauthenticated("no".into())),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            code(PlatformError::Storage("down".into())),
            tonic::Code::Unavailable
        );
        assert!(register_id("").is_err());
        assert!(register_id("..").is_err());
        assert!(register_id(&"a".repeat(300)).is_err());
        assert_eq!(register_id("ok-1").ok(), Some("ok-1"));
        assert!(answer_size("max_peers", -1).is_err());
        assert_eq!(answer_size("max_peers", 0).ok(), Some(100));
        assert_eq!(answer_size("max_peers", 1000).ok(), Some(100));
        assert_eq!(answer_size("max_peers", 7).ok(), Some(7));
    }
}
