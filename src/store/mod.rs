//! Persistence. The [`Store`] trait is what the domain sees. This is the only module with SQL,
//! and no sqlx type leaves it.
//!
//! - `sql_store.rs`: the one implementation, generic over the two sqlx backends;
//! - `sql.rs`: its queries, written once for both;
//! - `rows.rs`: rows as the tables hold them, mapped to and from the domain types here;
//! - `tx_ids.rs`: transaction IDs as their column holds them (32 bytes, not 64 hex characters);
//! - `writer.rs`: how every write runs (one writer at a time on SQLite, a failed write closes
//!   its connection, every outcome recorded in [`WriteHealth`]);
//! - `sqlite.rs`, `postgres.rs`: opening each backend; each keeps its own migrations under
//!   `migrations/<backend>/`;
//! - `health.rs`: storage health as the node reports it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::ledger::{Docket, Hash, Mode, Role};

mod accept;
mod by_key;
pub(crate) mod health;
mod postgres;
mod rows;
mod sql;
mod sql_store;
mod sqlite;
mod tx_ids;
mod writer;

pub use crate::config::Durability;
pub use health::{StorageHealth, Write, WriteClass, WriteHealth};

/// A storage failure, with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database ({backend}): {message}")]
    Open {
        backend: &'static str,
        message: String,
    },
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Query(String),
    /// The database refused the data itself (a unique, foreign-key, not-null or check
    /// constraint): storage works, the write was wrong.
    #[error("database error: {0}")]
    Constraint(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database itself reports its files damaged (SQLite's "database disk image is
    /// malformed", PostgreSQL's data_corrupted): no write or retry mends that.
    #[error("the database file is damaged: {0}")]
    Damaged(String),
    /// A number the domain handed over is too large for its column (nothing was written).
    #[error("{what} {value} is too large to store")]
    OutOfRange { what: &'static str, value: u64 },
}

impl StoreError {
    /// Whether this error says storage itself fails (unreachable, full, read-only, I/O), as
    /// opposed to a write the database rightly refused or data that does not decode.
    pub fn is_storage_fault(&self) -> bool {
        matches!(
            self,
            StoreError::Open { .. }
                | StoreError::Migrate(_)
                | StoreError::Query(_)
                | StoreError::Damaged(_)
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Data that does not decode is a damaged database, not a failed query.
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
            ref e if is_damage(e) => StoreError::Damaged(e.to_string()),
            sqlx::Error::Database(ref db)
                if !matches!(db.kind(), sqlx::error::ErrorKind::Other) =>
            {
                StoreError::Constraint(e.to_string())
            }
            other => StoreError::Query(other.to_string()),
        }
    }
}

/// Whether the database says its files are damaged: SQLite's SQLITE_CORRUPT and SQLITE_NOTADB
/// (primary codes 11 and 26, under any extended code), PostgreSQL's XX001 and XX002.
pub(crate) fn is_damage(e: &sqlx::Error) -> bool {
    const SQLITE_CORRUPT: i32 = 11;
    const SQLITE_NOTADB: i32 = 26;
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let code = db.code();
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let primary = code.and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
        matches!(primary, Some(SQLITE_CORRUPT | SQLITE_NOTADB))
    } else {
        matches!(code.as_deref(), Some("XX001" | "XX002"))
    }
}

/// IDs per `IN (...)` list, well under SQLite's limit on bound values.
pub(crate) const IN_LIST_CHUNK: usize = 500;

/// A peer as persisted: what this node itself observed of it.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct PeerRow {
    pub peer_id: String,
    pub public_key: String,
    pub name: String,
    pub address: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub is_seed: bool,
    pub failure_count: i64,
    pub total_requests: i64,
    pub successful_requests: i64,
    pub success_rate: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    pub min_latency_ms: Option<f64>,
    pub max_latency_ms: Option<f64>,
    pub penalty: f64,
    pub penalty_updated_ms: i64,
    pub last_penalty_reason: Option<String>,
    pub last_penalty_at_ms: Option<i64>,
}

/// A ban as persisted.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct BanRow {
    pub target: String,
    pub kind: String,
    pub reason: String,
    pub source: String,
    pub banned_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// A register held by this node, as persisted. `height`/`head_hash`/`latest_version` describe
/// the newest docket held and are written atomically with it (they are the replication
/// checkpoint).
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterRecord {
    pub register_id: String,
    pub is_public: bool,
    pub role: Role,
    pub origin_key: [u8; 32],
    pub created_at_ms: i64,
    pub height: u64,
    pub head_hash: Hash,
    pub latest_version: u64,
    /// Dockets up to this number are not held with their transactions (forward-only start).
    pub base_height: u64,
}

/// A transaction's state as held (without its payload).
#[derive(Clone, Debug, PartialEq)]
pub struct TxRecord {
    pub tx_id: String,
    /// Payload size in bytes.
    pub size: u64,
    pub received_at_ms: i64,
    /// Set once sealed.
    pub version: Option<u64>,
    pub docket_number: Option<u64>,
}

/// Transactions to store as pending in one register (see [`Store::accept_pending`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingBatch {
    pub register_id: String,
    /// (transaction ID, payload), IDs already checked against their payloads.
    pub txs: Vec<(String, Vec<u8>)>,
}

/// A replication subscription, as persisted.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionRecord {
    pub register_id: String,
    pub mode: Mode,
    pub created_at_ms: i64,
}

/// What the node persists. Every method either succeeds or returns the error; nothing is
/// swallowed here, callers decide whether to fail the request or log loudly.
#[async_trait]
pub trait Store: Send + Sync {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
    /// Cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Outcomes of this store's writes (every write records its own).
    fn write_health(&self) -> &WriteHealth;
    /// A real write of the probe row carrying `bytes` of filler (committed, then emptied so
    /// it holds no space), recorded as a probe: lets a health check notice a full or
    /// read-only disk, and its recovery for writes that large, without waiting for traffic.
    async fn probe_write(&self, bytes: usize) -> Result<(), StoreError>;
    async fn load_peers(&self) -> Result<Vec<PeerRow>, StoreError>;
    /// Inserts or replaces each peer, in one transaction.
    async fn upsert_peers(&self, peers: &[PeerRow]) -> Result<(), StoreError>;
    /// Returns whether a row was deleted.
    async fn delete_peer(&self, peer_id: &str) -> Result<bool, StoreError>;
    async fn load_bans(&self) -> Result<Vec<BanRow>, StoreError>;
    /// Inserts a ban; fails if the target is already banned.
    async fn insert_ban(&self, ban: &BanRow) -> Result<(), StoreError>;
    /// Returns whether a ban was deleted.
    async fn delete_ban(&self, target: &str) -> Result<bool, StoreError>;
    async fn load_registers(&self) -> Result<Vec<RegisterRecord>, StoreError>;
    /// Creates or replaces a register together with one docket (its genesis or anchor).
    async fn put_register(
        &self,
        register: &RegisterRecord,
        docket: &Docket,
    ) -> Result<(), StoreError>;
    /// Stores the batches' transactions as pending, all in one database transaction (one commit
    /// for many callers' writes). Returns, per batch and in its order, the IDs that were new.
    async fn accept_pending(
        &self,
        batches: &[PendingBatch],
        now_ms: i64,
    ) -> Result<Vec<Vec<String>>, StoreError>;
    /// Payloads of the given transactions that this register holds, as (tx_id, payload).
    async fn payloads_by_id(
        &self,
        register_id: &str,
        tx_ids: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Which of the given transactions the register holds (pending or sealed).
    async fn existing_transactions(
        &self,
        register_id: &str,
        tx_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Which of the given transactions the register holds as pending (not sealed yet).
    async fn pending_among(
        &self,
        register_id: &str,
        tx_ids: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// IDs of transactions still pending that arrived before `before_ms`, oldest first.
    async fn pending_before(
        &self,
        register_id: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// The oldest pending transactions, up to `limit`, as (tx_id, payload).
    async fn pending(
        &self,
        register_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    async fn count_pending(&self, register_id: &str) -> Result<i64, StoreError>;
    /// Seals pending transactions (in the given order, from `docket.first_version`) into
    /// `docket` and moves the head to `head`, atomically.
    async fn seal(
        &self,
        head: &RegisterRecord,
        docket: &Docket,
        tx_ids: &[String],
    ) -> Result<(), StoreError>;
    /// Appends verified dockets with their transactions and moves the head, atomically: a
    /// crash leaves either all of the batch or none of it.
    async fn append(
        &self,
        head: &RegisterRecord,
        dockets: &[(Docket, Vec<(String, Vec<u8>)>)],
    ) -> Result<(), StoreError>;
    /// Dockets numbered `from..` (ascending), at most `limit`.
    async fn dockets(
        &self,
        register_id: &str,
        from: u64,
        limit: i64,
    ) -> Result<Vec<Docket>, StoreError>;
    /// The hash of docket `number`, if held.
    async fn docket_hash(&self, register_id: &str, number: u64)
    -> Result<Option<Hash>, StoreError>;
    /// Sealed payloads with versions `first..=last`, in version order.
    async fn payloads(
        &self,
        register_id: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError>;
    async fn transaction(
        &self,
        register_id: &str,
        tx_id: &str,
    ) -> Result<Option<TxRecord>, StoreError>;
    /// IDs of the register's transactions (pending or sealed) that start with `prefix`
    /// (lower-case hex), in order, at most `limit`.
    async fn transaction_ids_with_prefix(
        &self,
        register_id: &str,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// Deletes a register and all it holds; returns (transactions, dockets) removed.
    async fn purge(&self, register_id: &str) -> Result<(u64, u64), StoreError>;
    async fn load_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError>;
    async fn put_subscription(&self, sub: &SubscriptionRecord) -> Result<(), StoreError>;
    async fn delete_subscription(&self, register_id: &str) -> Result<bool, StoreError>;
    /// Closes the connection pool (waits for in-flight statements).
    async fn close(&self);
}

/// Opens the store named by `database_url` (PostgreSQL for `postgres://…`, otherwise the SQLite
/// file `sqlite_path`), applying migrations, with commits as durable as `durability` says.
/// A migrated SQLite store in memory, for unit tests (no file).
#[cfg(test)]
pub(crate) async fn open_in_memory() -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(sqlite::open_in_memory().await?))
}

pub async fn open(
    database_url: Option<&str>,
    sqlite_path: &std::path::Path,
    durability: Durability,
) -> Result<Arc<dyn Store>, StoreError> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::connect(url, durability).await?))
        }
        Some(url) => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            Ok(Arc::new(
                sqlite::open(std::path::Path::new(path), durability).await?,
            ))
        }
        None => Ok(Arc::new(sqlite::open(sqlite_path, durability).await?)),
    }
}
