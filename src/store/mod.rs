//! Persistence. The [`Store`] trait is what the domain sees; `sqlite.rs` and `postgres.rs`
//! implement it with sqlx. This is the only module with SQL, and no sqlx type leaves it.
//!
//! Both backends share one implementation body ([`shared_store_impl!`]): the SQL is written
//! once with `$1` placeholders, which SQLite and PostgreSQL both accept, so the two cannot
//! drift apart. Each backend keeps its own migrations under `migrations/<backend>/`.

use std::sync::Arc;

use async_trait::async_trait;

pub mod health;
mod postgres;
mod sqlite;

pub use health::{StorageHealth, WriteHealth};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

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
}

impl StoreError {
    /// Whether this error says storage itself fails (unreachable, full, read-only, I/O), as
    /// opposed to a write the database rightly refused or data that does not decode.
    pub fn is_storage_fault(&self) -> bool {
        matches!(
            self,
            StoreError::Open { .. } | StoreError::Migrate(_) | StoreError::Query(_)
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
            sqlx::Error::Database(ref db)
                if !matches!(db.kind(), sqlx::error::ErrorKind::Other) =>
            {
                StoreError::Constraint(e.to_string())
            }
            other => StoreError::Query(other.to_string()),
        }
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

/// A register held by this node. `height`/`head_hash`/`latest_version` describe the newest
/// docket held and are written atomically with it (they are the replication checkpoint).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct RegisterRow {
    pub register_id: String,
    pub is_public: bool,
    /// `origin`, `full-replica` or `forward-only`.
    pub role: String,
    pub origin_key: String,
    pub created_at_ms: i64,
    pub height: i64,
    pub head_hash: String,
    pub latest_version: i64,
    /// Dockets up to this number are not held with their transactions (forward-only start).
    pub base_height: i64,
}

/// A docket header with its signature; hashes and signature hex-encoded.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct DocketRow {
    pub register_id: String,
    pub number: i64,
    pub previous_hash: String,
    pub merkle_root: String,
    pub tx_count: i64,
    pub first_version: i64,
    pub sealed_at_ms: i64,
    pub hash: String,
    pub signature: String,
}

/// A transaction's state (without its payload).
#[derive(Clone, Debug, PartialEq)]
pub struct TxRow {
    pub tx_id: String,
    pub size: i64,
    pub received_at_ms: i64,
    pub version: Option<i64>,
    pub docket_number: Option<i64>,
}

/// A replication subscription.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub register_id: String,
    /// `full-replica` or `forward-only`.
    pub mode: String,
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
    /// One small real write (the probe row), recorded like any other: lets a health check
    /// notice a full or read-only disk, and its recovery, without waiting for traffic.
    async fn probe_write(&self) -> Result<(), StoreError>;
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
    async fn load_registers(&self) -> Result<Vec<RegisterRow>, StoreError>;
    /// Creates or replaces a register row together with one docket (its genesis or anchor).
    async fn put_register(
        &self,
        register: &RegisterRow,
        docket: &DocketRow,
    ) -> Result<(), StoreError>;
    /// Stores transactions as pending and queues an announcement for each one that was new
    /// (all in one database transaction). Returns the IDs that were new.
    async fn accept_pending(
        &self,
        register_id: &str,
        txs: &[(String, Vec<u8>)],
        source_peer: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError>;
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
    /// IDs of transactions still pending that arrived before `before_ms`, oldest first.
    async fn pending_before(
        &self,
        register_id: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// Queues announcements (ignoring ones already queued).
    async fn enqueue_announcements(
        &self,
        register_id: &str,
        tx_ids: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Registers with announcements waiting.
    async fn queued_registers(&self) -> Result<Vec<String>, StoreError>;
    /// A register's oldest queued announcements: (tx_id, source peer).
    async fn queued_announcements(
        &self,
        register_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, Option<String>)>, StoreError>;
    async fn remove_announcements(&self, items: &[(String, String)]) -> Result<(), StoreError>;
    async fn announcement_queue_len(&self) -> Result<i64, StoreError>;
    /// Drops the oldest queued announcements beyond `max`; returns how many were dropped.
    async fn trim_announcements(&self, max: i64) -> Result<u64, StoreError>;
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
        head: &RegisterRow,
        docket: &DocketRow,
        tx_ids: &[String],
    ) -> Result<(), StoreError>;
    /// Appends verified dockets with their transactions and moves the head, atomically: a
    /// crash leaves either all of the batch or none of it.
    async fn append(
        &self,
        head: &RegisterRow,
        dockets: &[(DocketRow, Vec<(String, Vec<u8>)>)],
    ) -> Result<(), StoreError>;
    /// Dockets numbered `from..` (ascending), at most `limit`.
    async fn dockets(
        &self,
        register_id: &str,
        from: i64,
        limit: i64,
    ) -> Result<Vec<DocketRow>, StoreError>;
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
    ) -> Result<Option<TxRow>, StoreError>;
    /// Deletes a register and all it holds; returns (transactions, dockets) removed.
    async fn purge(&self, register_id: &str) -> Result<(u64, u64), StoreError>;
    async fn load_subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError>;
    async fn put_subscription(&self, sub: &SubscriptionRow) -> Result<(), StoreError>;
    async fn delete_subscription(&self, register_id: &str) -> Result<bool, StoreError>;
    /// Closes the connection pool (waits for in-flight statements).
    async fn close(&self);
}

/// Opens the store named by `database_url` (PostgreSQL for `postgres://…`, otherwise the SQLite
/// file `sqlite_path`), applying migrations.
pub async fn open(
    database_url: Option<&str>,
    sqlite_path: &std::path::Path,
) -> Result<Arc<dyn Store>, StoreError> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(PostgresStore::connect(url).await?))
        }
        Some(url) => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            Ok(Arc::new(
                SqliteStore::open(std::path::Path::new(path)).await?,
            ))
        }
        None => Ok(Arc::new(SqliteStore::open(sqlite_path).await?)),
    }
}

/// The SQL shared by both backends.
mod sql {
    pub const SELECT_PEERS: &str = concat!(
        "SELECT peer_id, public_key, name, address, first_seen_ms, last_seen_ms, is_seed, ",
        "failure_count, total_requests, successful_requests, success_rate, avg_latency_ms, ",
        "min_latency_ms, max_latency_ms, penalty, penalty_updated_ms, last_penalty_reason, ",
        "last_penalty_at_ms FROM peers ORDER BY peer_id"
    );
    pub const UPSERT_PEER: &str = concat!(
        "INSERT INTO peers (peer_id, public_key, name, address, first_seen_ms, last_seen_ms, is_seed, ",
        "failure_count, total_requests, successful_requests, success_rate, avg_latency_ms, ",
        "min_latency_ms, max_latency_ms, penalty, penalty_updated_ms, last_penalty_reason, ",
        "last_penalty_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) ",
        "ON CONFLICT (peer_id) DO UPDATE SET public_key = excluded.public_key, name = excluded.name, ",
        "address = excluded.address, first_seen_ms = excluded.first_seen_ms, ",
        "last_seen_ms = excluded.last_seen_ms, is_seed = excluded.is_seed, ",
        "failure_count = excluded.failure_count, total_requests = excluded.total_requests, ",
        "successful_requests = excluded.successful_requests, success_rate = excluded.success_rate, ",
        "avg_latency_ms = excluded.avg_latency_ms, min_latency_ms = excluded.min_latency_ms, ",
        "max_latency_ms = excluded.max_latency_ms, penalty = excluded.penalty, ",
        "penalty_updated_ms = excluded.penalty_updated_ms, ",
        "last_penalty_reason = excluded.last_penalty_reason, ",
        "last_penalty_at_ms = excluded.last_penalty_at_ms"
    );
    pub const DELETE_PEER: &str = "DELETE FROM peers WHERE peer_id = $1";
    pub const SELECT_BANS: &str = "SELECT target, kind, reason, source, banned_at_ms, expires_at_ms FROM bans ORDER BY banned_at_ms, target";
    pub const INSERT_BAN: &str = "INSERT INTO bans (target, kind, reason, source, banned_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6)";
    pub const DELETE_BAN: &str = "DELETE FROM bans WHERE target = $1";

    pub const SELECT_REGISTERS: &str = "SELECT register_id, is_public, role, origin_key, created_at_ms, height, head_hash, latest_version, base_height FROM registers ORDER BY register_id";
    pub const UPSERT_REGISTER: &str = concat!(
        "INSERT INTO registers (register_id, is_public, role, origin_key, created_at_ms, height, head_hash, latest_version, base_height) ",
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (register_id) DO UPDATE SET is_public = excluded.is_public, ",
        "role = excluded.role, origin_key = excluded.origin_key, height = excluded.height, head_hash = excluded.head_hash, ",
        "latest_version = excluded.latest_version, base_height = excluded.base_height"
    );
    pub const INSERT_DOCKET: &str = "INSERT INTO dockets (register_id, number, previous_hash, merkle_root, tx_count, first_version, sealed_at_ms, hash, signature) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)";
    pub const SELECT_DOCKETS: &str = "SELECT register_id, number, previous_hash, merkle_root, tx_count, first_version, sealed_at_ms, hash, signature FROM dockets WHERE register_id = $1 AND number >= $2 ORDER BY number LIMIT $3";
    pub const INSERT_PENDING: &str = "INSERT INTO transactions (register_id, tx_id, payload, received_at_ms) VALUES ($1,$2,$3,$4) ON CONFLICT (register_id, tx_id) DO NOTHING";
    pub const SELECT_PENDING: &str = "SELECT tx_id, payload FROM transactions WHERE register_id = $1 AND version IS NULL ORDER BY received_at_ms, tx_id LIMIT $2";
    pub const COUNT_PENDING: &str =
        "SELECT COUNT(*) AS n FROM transactions WHERE register_id = $1 AND version IS NULL";
    pub const SEAL_TX: &str = "UPDATE transactions SET version = $3, docket_number = $4 WHERE register_id = $1 AND tx_id = $2 AND version IS NULL";
    pub const UPSERT_SEALED_TX: &str = concat!(
        "INSERT INTO transactions (register_id, tx_id, payload, received_at_ms, version, docket_number) VALUES ($1,$2,$3,$4,$5,$6) ",
        "ON CONFLICT (register_id, tx_id) DO UPDATE SET version = excluded.version, docket_number = excluded.docket_number"
    );
    pub const SELECT_PAYLOADS: &str = "SELECT payload FROM transactions WHERE register_id = $1 AND version >= $2 AND version <= $3 ORDER BY version";
    pub const SELECT_TX: &str = "SELECT tx_id, payload, received_at_ms, version, docket_number FROM transactions WHERE register_id = $1 AND tx_id = $2";
    pub const DELETE_TXS: &str = "DELETE FROM transactions WHERE register_id = $1";
    pub const DELETE_DOCKETS: &str = "DELETE FROM dockets WHERE register_id = $1";
    pub const DELETE_REGISTER: &str = "DELETE FROM registers WHERE register_id = $1";
    pub const SELECT_SUBSCRIPTIONS: &str =
        "SELECT register_id, mode, created_at_ms FROM subscriptions ORDER BY register_id";
    pub const UPSERT_SUBSCRIPTION: &str = "INSERT INTO subscriptions (register_id, mode, created_at_ms) VALUES ($1,$2,$3) ON CONFLICT (register_id) DO UPDATE SET mode = excluded.mode";
    pub const DELETE_SUBSCRIPTION: &str = "DELETE FROM subscriptions WHERE register_id = $1";
    pub const ENQUEUE_ANNOUNCEMENT: &str = "INSERT INTO gossip_queue (register_id, tx_id, source_peer, enqueued_at_ms) VALUES ($1,$2,$3,$4) ON CONFLICT (register_id, tx_id) DO NOTHING";
    pub const QUEUED_REGISTERS: &str =
        "SELECT DISTINCT register_id FROM gossip_queue ORDER BY register_id";
    pub const SELECT_QUEUE: &str = "SELECT tx_id, source_peer FROM gossip_queue WHERE register_id = $1 ORDER BY enqueued_at_ms, tx_id LIMIT $2";
    pub const DEQUEUE: &str = "DELETE FROM gossip_queue WHERE register_id = $1 AND tx_id = $2";
    // Keeps the newest $1 entries (row-value comparison works on SQLite and PostgreSQL alike).
    pub const TRIM_QUEUE: &str = concat!(
        "DELETE FROM gossip_queue WHERE (enqueued_at_ms, tx_id) <= (SELECT enqueued_at_ms, tx_id ",
        "FROM gossip_queue ORDER BY enqueued_at_ms DESC, tx_id DESC LIMIT 1 OFFSET $1)"
    );
    pub const UPSERT_PROBE: &str = "INSERT INTO storage_probe (id, checked_at_ms) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET checked_at_ms = excluded.checked_at_ms";
    pub const PENDING_BEFORE: &str = "SELECT tx_id FROM transactions WHERE register_id = $1 AND version IS NULL AND received_at_ms < $2 ORDER BY received_at_ms, tx_id LIMIT $3";
}

/// Binds a [`RegisterRow`] to [`sql::UPSERT_REGISTER`].
macro_rules! bind_register {
    ($query:expr, $r:expr) => {
        $query
            .bind(&$r.register_id)
            .bind($r.is_public)
            .bind(&$r.role)
            .bind(&$r.origin_key)
            .bind($r.created_at_ms)
            .bind($r.height)
            .bind(&$r.head_hash)
            .bind($r.latest_version)
            .bind($r.base_height)
    };
}
pub(crate) use bind_register;

/// Binds a [`DocketRow`] to [`sql::INSERT_DOCKET`].
macro_rules! bind_docket {
    ($query:expr, $d:expr) => {
        $query
            .bind(&$d.register_id)
            .bind($d.number)
            .bind(&$d.previous_hash)
            .bind(&$d.merkle_root)
            .bind($d.tx_count)
            .bind($d.first_version)
            .bind($d.sealed_at_ms)
            .bind(&$d.hash)
            .bind(&$d.signature)
    };
}
pub(crate) use bind_docket;

/// `<columns> FROM transactions WHERE register_id = ? AND tx_id IN (?, …)`, with bound values
/// (works on both backends).
macro_rules! select_tx_ids_in {
    ($db:ty, $columns:literal, $register:expr, $ids:expr) => {{
        let mut query = sqlx::QueryBuilder::<$db>::new(concat!(
            $columns,
            " FROM transactions WHERE register_id = "
        ));
        query.push_bind($register).push(" AND tx_id IN (");
        let mut list = query.separated(", ");
        for id in $ids {
            list.push_bind(id);
        }
        query.push(")");
        query
    }};
}
pub(crate) use select_tx_ids_in;

/// A pooled connection that one write runs on. It goes back to the pool only through
/// [`WriteConnection::committed`], after its COMMIT succeeded; dropped any other way (an error,
/// a refused COMMIT, a cancelled future) it is closed instead, which ends whatever transaction
/// it was in. So no connection ever returns to the pool mid-transaction: SQLite rolls a
/// transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR), sqlx's rollback then
/// fails and its count of open transactions stays at one, and on a reused connection the next
/// `BEGIN` would become a `SAVEPOINT` inside a transaction that is never committed.
pub(crate) struct WriteConnection<DB: sqlx::Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    committed: bool,
}

impl<DB: sqlx::Database> WriteConnection<DB> {
    pub(crate) async fn acquire(pool: &sqlx::Pool<DB>) -> Result<Self, sqlx::Error> {
        Ok(WriteConnection {
            conn: pool.acquire().await?,
            committed: false,
        })
    }

    pub(crate) fn connection(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// The transaction on this connection committed: the connection may be reused.
    pub(crate) fn committed(mut self) {
        self.committed = true;
    }
}

impl<DB: sqlx::Database> Drop for WriteConnection<DB> {
    fn drop(&mut self) {
        if !self.committed {
            // Runs before the pool connection's own drop, which then closes it.
            self.conn.close_on_drop();
        }
    }
}

/// Pool safety net, for any path that does not go through [`write_transaction!`]: a connection
/// that comes back still inside a transaction (by sqlx's count) is closed, not reused.
pub(crate) fn release_outside_transaction<C: sqlx::Connection>(
    conn: &mut C,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    let reusable = !conn.is_in_transaction();
    if !reusable {
        tracing::warn!("a database connection came back inside a transaction; closing it");
    }
    Box::pin(futures::future::ready(Ok(reusable)))
}

/// Runs `$body` (which writes through `&mut *$tx`) as one database transaction, the way every
/// write of the store runs: one writer at a time (SQLite: queue here rather than fail with
/// SQLITE_BUSY), on a [`WriteConnection`] of its own, success only once COMMIT succeeded, and
/// the outcome recorded in the store's [`WriteHealth`]. Evaluates to `Result<body's value>`.
macro_rules! write_transaction {
    ($self:ident, $tx:ident => $body:expr) => {{
        let _writer = $self.writer().await;
        let outcome: Result<_, $crate::store::StoreError> = async {
            let mut conn = $crate::store::WriteConnection::acquire(&$self.pool).await?;
            let mut $tx = sqlx::Connection::begin(conn.connection()).await?;
            let value = $body;
            $tx.commit().await?;
            conn.committed();
            Ok(value)
        }
        .await;
        $self.health.record(&outcome);
        outcome
    }};
}
pub(crate) use write_transaction;

/// Implements [`Store`] for a backend struct with `pool` and `health` fields, using the shared
/// SQL above. Every write goes through [`write_transaction!`].
macro_rules! shared_store_impl {
    ($store:ty, $backend:literal, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn write_health(&self) -> &$crate::store::WriteHealth {
                &self.health
            }

            async fn probe_write(&self) -> Result<(), $crate::store::StoreError> {
                let now = $crate::clock::now_ms();
                write_transaction!(self, tx => {
                    sqlx::query($crate::store::sql::UPSERT_PROBE)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                })
            }

            async fn load_peers(
                &self,
            ) -> Result<Vec<$crate::store::PeerRow>, $crate::store::StoreError> {
                Ok(
                    sqlx::query_as::<_, $crate::store::PeerRow>($crate::store::sql::SELECT_PEERS)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn upsert_peers(
                &self,
                peers: &[$crate::store::PeerRow],
            ) -> Result<(), $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    for p in peers {
                        sqlx::query($crate::store::sql::UPSERT_PEER)
                            .bind(&p.peer_id)
                            .bind(&p.public_key)
                            .bind(&p.name)
                            .bind(&p.address)
                            .bind(p.first_seen_ms)
                            .bind(p.last_seen_ms)
                            .bind(p.is_seed)
                            .bind(p.failure_count)
                            .bind(p.total_requests)
                            .bind(p.successful_requests)
                            .bind(p.success_rate)
                            .bind(p.avg_latency_ms)
                            .bind(p.min_latency_ms)
                            .bind(p.max_latency_ms)
                            .bind(p.penalty)
                            .bind(p.penalty_updated_ms)
                            .bind(&p.last_penalty_reason)
                            .bind(p.last_penalty_at_ms)
                            .execute(&mut *tx)
                            .await?;
                    }
                })
            }

            async fn delete_peer(&self, peer_id: &str) -> Result<bool, $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    let done = sqlx::query($crate::store::sql::DELETE_PEER)
                        .bind(peer_id)
                        .execute(&mut *tx)
                        .await?;
                    done.rows_affected() > 0
                })
            }

            async fn load_bans(
                &self,
            ) -> Result<Vec<$crate::store::BanRow>, $crate::store::StoreError> {
                Ok(
                    sqlx::query_as::<_, $crate::store::BanRow>($crate::store::sql::SELECT_BANS)
                        .fetch_all(&self.pool)
                        .await?,
                )
            }

            async fn insert_ban(
                &self,
                ban: &$crate::store::BanRow,
            ) -> Result<(), $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    sqlx::query($crate::store::sql::INSERT_BAN)
                        .bind(&ban.target)
                        .bind(&ban.kind)
                        .bind(&ban.reason)
                        .bind(&ban.source)
                        .bind(ban.banned_at_ms)
                        .bind(ban.expires_at_ms)
                        .execute(&mut *tx)
                        .await?;
                })
            }

            async fn delete_ban(&self, target: &str) -> Result<bool, $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    let done = sqlx::query($crate::store::sql::DELETE_BAN)
                        .bind(target)
                        .execute(&mut *tx)
                        .await?;
                    done.rows_affected() > 0
                })
            }

            async fn load_registers(
                &self,
            ) -> Result<Vec<$crate::store::RegisterRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::RegisterRow>(
                    $crate::store::sql::SELECT_REGISTERS,
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn put_register(
                &self,
                register: &$crate::store::RegisterRow,
                docket: &$crate::store::DocketRow,
            ) -> Result<(), $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    bind_register!(sqlx::query($crate::store::sql::UPSERT_REGISTER), register)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM dockets WHERE register_id = $1 AND number = $2")
                        .bind(&docket.register_id)
                        .bind(docket.number)
                        .execute(&mut *tx)
                        .await?;
                    bind_docket!(sqlx::query($crate::store::sql::INSERT_DOCKET), docket)
                        .execute(&mut *tx)
                        .await?;
                })
            }

            async fn accept_pending(
                &self,
                register_id: &str,
                txs: &[(String, Vec<u8>)],
                source_peer: Option<&str>,
                now_ms: i64,
            ) -> Result<Vec<String>, $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    let mut new = Vec::new();
                    for (id, payload) in txs {
                        let done = sqlx::query($crate::store::sql::INSERT_PENDING)
                            .bind(register_id)
                            .bind(id)
                            .bind(payload)
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                        if done.rows_affected() > 0 {
                            sqlx::query($crate::store::sql::ENQUEUE_ANNOUNCEMENT)
                                .bind(register_id)
                                .bind(id)
                                .bind(source_peer)
                                .bind(now_ms)
                                .execute(&mut *tx)
                                .await?;
                            new.push(id.clone());
                        }
                    }
                    new
                })
            }

            async fn payloads_by_id(
                &self,
                register_id: &str,
                tx_ids: &[String],
            ) -> Result<Vec<(String, Vec<u8>)>, $crate::store::StoreError> {
                let mut out = Vec::with_capacity(tx_ids.len());
                // One query per chunk (`IN (...)` with bound values works on both backends).
                for chunk in tx_ids.chunks($crate::store::IN_LIST_CHUNK) {
                    let mut query =
                        select_tx_ids_in!($db, "SELECT tx_id, payload", register_id, chunk);
                    out.extend(
                        query
                            .build_query_as::<(String, Vec<u8>)>()
                            .fetch_all(&self.pool)
                            .await?,
                    );
                }
                Ok(out)
            }

            async fn existing_transactions(
                &self,
                register_id: &str,
                tx_ids: &[String],
            ) -> Result<std::collections::HashSet<String>, $crate::store::StoreError> {
                let mut out = std::collections::HashSet::new();
                for chunk in tx_ids.chunks($crate::store::IN_LIST_CHUNK) {
                    let mut query = select_tx_ids_in!($db, "SELECT tx_id", register_id, chunk);
                    out.extend(
                        query
                            .build_query_scalar::<String>()
                            .fetch_all(&self.pool)
                            .await?,
                    );
                }
                Ok(out)
            }

            async fn pending_before(
                &self,
                register_id: &str,
                before_ms: i64,
                limit: i64,
            ) -> Result<Vec<String>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar($crate::store::sql::PENDING_BEFORE)
                    .bind(register_id)
                    .bind(before_ms)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn enqueue_announcements(
                &self,
                register_id: &str,
                tx_ids: &[String],
                now_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    for id in tx_ids {
                        sqlx::query($crate::store::sql::ENQUEUE_ANNOUNCEMENT)
                            .bind(register_id)
                            .bind(id)
                            .bind(None::<String>)
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                    }
                })
            }

            async fn queued_registers(&self) -> Result<Vec<String>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar($crate::store::sql::QUEUED_REGISTERS)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn queued_announcements(
                &self,
                register_id: &str,
                limit: i64,
            ) -> Result<Vec<(String, Option<String>)>, $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::sql::SELECT_QUEUE)
                    .bind(register_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn remove_announcements(
                &self,
                items: &[(String, String)],
            ) -> Result<(), $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    for (register_id, id) in items {
                        sqlx::query($crate::store::sql::DEQUEUE)
                            .bind(register_id)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                })
            }

            async fn announcement_queue_len(&self) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM gossip_queue")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn trim_announcements(&self, max: i64) -> Result<u64, $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    let done = sqlx::query($crate::store::sql::TRIM_QUEUE)
                        .bind(max)
                        .execute(&mut *tx)
                        .await?;
                    done.rows_affected()
                })
            }

            async fn pending(
                &self,
                register_id: &str,
                limit: i64,
            ) -> Result<Vec<(String, Vec<u8>)>, $crate::store::StoreError> {
                Ok(sqlx::query_as($crate::store::sql::SELECT_PENDING)
                    .bind(register_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn count_pending(
                &self,
                register_id: &str,
            ) -> Result<i64, $crate::store::StoreError> {
                Ok(sqlx::query_scalar($crate::store::sql::COUNT_PENDING)
                    .bind(register_id)
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn seal(
                &self,
                head: &$crate::store::RegisterRow,
                docket: &$crate::store::DocketRow,
                tx_ids: &[String],
            ) -> Result<(), $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    for (i, id) in tx_ids.iter().enumerate() {
                        let done = sqlx::query($crate::store::sql::SEAL_TX)
                            .bind(&docket.register_id)
                            .bind(id)
                            .bind(docket.first_version + i as i64)
                            .bind(docket.number)
                            .execute(&mut *tx)
                            .await?;
                        if done.rows_affected() != 1 {
                            return Err($crate::store::StoreError::Corrupt(format!(
                                "transaction {id} is not pending"
                            )));
                        }
                    }
                    bind_docket!(sqlx::query($crate::store::sql::INSERT_DOCKET), docket)
                        .execute(&mut *tx)
                        .await?;
                    bind_register!(sqlx::query($crate::store::sql::UPSERT_REGISTER), head)
                        .execute(&mut *tx)
                        .await?;
                })
            }

            async fn append(
                &self,
                head: &$crate::store::RegisterRow,
                dockets: &[($crate::store::DocketRow, Vec<(String, Vec<u8>)>)],
            ) -> Result<(), $crate::store::StoreError> {
                let now = $crate::clock::now_ms();
                write_transaction!(self, tx => {
                    for (docket, txs) in dockets {
                        bind_docket!(sqlx::query($crate::store::sql::INSERT_DOCKET), docket)
                            .execute(&mut *tx)
                            .await?;
                        for (i, (id, payload)) in txs.iter().enumerate() {
                            sqlx::query($crate::store::sql::UPSERT_SEALED_TX)
                                .bind(&docket.register_id)
                                .bind(id)
                                .bind(payload)
                                .bind(now)
                                .bind(docket.first_version + i as i64)
                                .bind(docket.number)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    bind_register!(sqlx::query($crate::store::sql::UPSERT_REGISTER), head)
                        .execute(&mut *tx)
                        .await?;
                })
            }

            async fn dockets(
                &self,
                register_id: &str,
                from: i64,
                limit: i64,
            ) -> Result<Vec<$crate::store::DocketRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::DocketRow>(
                    $crate::store::sql::SELECT_DOCKETS,
                )
                .bind(register_id)
                .bind(from)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn payloads(
                &self,
                register_id: &str,
                first: i64,
                last: i64,
            ) -> Result<Vec<Vec<u8>>, $crate::store::StoreError> {
                Ok(sqlx::query_scalar($crate::store::sql::SELECT_PAYLOADS)
                    .bind(register_id)
                    .bind(first)
                    .bind(last)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn transaction(
                &self,
                register_id: &str,
                tx_id: &str,
            ) -> Result<Option<$crate::store::TxRow>, $crate::store::StoreError> {
                use sqlx::Row;
                let row = sqlx::query($crate::store::sql::SELECT_TX)
                    .bind(register_id)
                    .bind(tx_id)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = row else { return Ok(None) };
                let payload: Vec<u8> = r.try_get("payload")?;
                Ok(Some($crate::store::TxRow {
                    tx_id: r.try_get("tx_id")?,
                    size: payload.len() as i64,
                    received_at_ms: r.try_get("received_at_ms")?,
                    version: r.try_get("version")?,
                    docket_number: r.try_get("docket_number")?,
                }))
            }

            async fn purge(
                &self,
                register_id: &str,
            ) -> Result<(u64, u64), $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    let txs = sqlx::query($crate::store::sql::DELETE_TXS)
                        .bind(register_id)
                        .execute(&mut *tx)
                        .await?;
                    let dockets = sqlx::query($crate::store::sql::DELETE_DOCKETS)
                        .bind(register_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query($crate::store::sql::DELETE_REGISTER)
                        .bind(register_id)
                        .execute(&mut *tx)
                        .await?;
                    (txs.rows_affected(), dockets.rows_affected())
                })
            }

            async fn load_subscriptions(
                &self,
            ) -> Result<Vec<$crate::store::SubscriptionRow>, $crate::store::StoreError> {
                Ok(sqlx::query_as::<_, $crate::store::SubscriptionRow>(
                    $crate::store::sql::SELECT_SUBSCRIPTIONS,
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn put_subscription(
                &self,
                sub: &$crate::store::SubscriptionRow,
            ) -> Result<(), $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    sqlx::query($crate::store::sql::UPSERT_SUBSCRIPTION)
                        .bind(&sub.register_id)
                        .bind(&sub.mode)
                        .bind(sub.created_at_ms)
                        .execute(&mut *tx)
                        .await?;
                })
            }

            async fn delete_subscription(
                &self,
                register_id: &str,
            ) -> Result<bool, $crate::store::StoreError> {
                write_transaction!(self, tx => {
                    let done = sqlx::query($crate::store::sql::DELETE_SUBSCRIPTION)
                        .bind(register_id)
                        .execute(&mut *tx)
                        .await?;
                    done.rows_affected() > 0
                })
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}
pub(crate) use shared_store_impl;
