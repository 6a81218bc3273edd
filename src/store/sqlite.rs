//! SQLite backend: one file in the data directory, WAL mode, migrations from
//! `migrations/sqlite` applied at open.

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{
    StoreError, WriteHealth, bind_docket, bind_register, release_outside_transaction,
    select_tx_ids_in, shared_store_impl, write_transaction,
};

/// Writers wait this long for SQLite's lock instead of failing at once (only another process
/// can hold it that long: this process's writers queue on `write_lock` first, and a failed
/// write never leaves its connection holding the lock, see `WriteConnection`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: u32 = 4;

pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite allows one writer at a time; writers of this process wait here, in async code,
    /// instead of busy-waiting inside SQLite (where a starved writer could time out).
    write_lock: tokio::sync::Mutex<()>,
    health: WriteHealth,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let open_err = |message: String| StoreError::Open {
            backend: "sqlite",
            message: format!("{}: {message}", path.display()),
        };
        // A file name, not a URL: a data directory may contain `?`, `#` or `%`.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .after_release(release_outside_transaction)
            .connect_with(options)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(SqliteStore {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
            health: WriteHealth::default(),
        })
    }

    async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.write_lock.lock().await)
    }
}

shared_store_impl!(SqliteStore, "sqlite", sqlx::Sqlite);
