//! Persistence. The [`Store`] trait is what the domain sees; `sqlite.rs` and `postgres.rs`
//! implement it with sqlx. This is the only module with SQL, and no sqlx type leaves it.
//!
//! Both backends share one implementation body ([`shared_store_impl!`]): the SQL is written
//! once with `$1` placeholders, which SQLite and PostgreSQL both accept, so the two cannot
//! drift apart. Each backend keeps its own migrations under `migrations/<backend>/`.

use std::sync::Arc;

use async_trait::async_trait;

mod postgres;
mod sqlite;

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
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(e.to_string())
    }
}

/// A peer as persisted: what this node itself observed of it.
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
pub struct BanRow {
    pub target: String,
    pub kind: String,
    pub reason: String,
    pub source: String,
    pub banned_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// What the node persists. Every method either succeeds or returns the error; nothing is
/// swallowed here, callers decide whether to fail the request or log loudly.
#[async_trait]
pub trait Store: Send + Sync {
    /// "sqlite" or "postgres".
    fn backend(&self) -> &'static str;
    /// Cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;
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
}

/// Implements [`Store`] for a backend struct with a `pool` field, using the shared SQL above.
macro_rules! shared_store_impl {
    ($store:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn load_peers(
                &self,
            ) -> Result<Vec<$crate::store::PeerRow>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::sql::SELECT_PEERS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::PeerRow {
                            peer_id: r.try_get("peer_id")?,
                            public_key: r.try_get("public_key")?,
                            name: r.try_get("name")?,
                            address: r.try_get("address")?,
                            first_seen_ms: r.try_get("first_seen_ms")?,
                            last_seen_ms: r.try_get("last_seen_ms")?,
                            is_seed: r.try_get("is_seed")?,
                            failure_count: r.try_get("failure_count")?,
                            total_requests: r.try_get("total_requests")?,
                            successful_requests: r.try_get("successful_requests")?,
                            success_rate: r.try_get("success_rate")?,
                            avg_latency_ms: r.try_get("avg_latency_ms")?,
                            min_latency_ms: r.try_get("min_latency_ms")?,
                            max_latency_ms: r.try_get("max_latency_ms")?,
                            penalty: r.try_get("penalty")?,
                            penalty_updated_ms: r.try_get("penalty_updated_ms")?,
                            last_penalty_reason: r.try_get("last_penalty_reason")?,
                            last_penalty_at_ms: r.try_get("last_penalty_at_ms")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(|e| $crate::store::StoreError::Corrupt(e.to_string()))
            }

            async fn upsert_peers(
                &self,
                peers: &[$crate::store::PeerRow],
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.pool.begin().await?;
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
                tx.commit().await?;
                Ok(())
            }

            async fn delete_peer(&self, peer_id: &str) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query($crate::store::sql::DELETE_PEER)
                    .bind(peer_id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn load_bans(
                &self,
            ) -> Result<Vec<$crate::store::BanRow>, $crate::store::StoreError> {
                use sqlx::Row;
                let rows = sqlx::query($crate::store::sql::SELECT_BANS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::store::BanRow {
                            target: r.try_get("target")?,
                            kind: r.try_get("kind")?,
                            reason: r.try_get("reason")?,
                            source: r.try_get("source")?,
                            banned_at_ms: r.try_get("banned_at_ms")?,
                            expires_at_ms: r.try_get("expires_at_ms")?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(|e| $crate::store::StoreError::Corrupt(e.to_string()))
            }

            async fn insert_ban(
                &self,
                ban: &$crate::store::BanRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::INSERT_BAN)
                    .bind(&ban.target)
                    .bind(&ban.kind)
                    .bind(&ban.reason)
                    .bind(&ban.source)
                    .bind(ban.banned_at_ms)
                    .bind(ban.expires_at_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn delete_ban(&self, target: &str) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query($crate::store::sql::DELETE_BAN)
                    .bind(target)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}
pub(crate) use shared_store_impl;
