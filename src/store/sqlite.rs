//! SQLite backend: one file in the data directory, WAL mode, migrations from
//! `migrations/sqlite` applied at open. Writers of this process take turns (SQLite allows one
//! writer at a time).

use std::path::Path;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use super::StoreError;
use super::sql_store::{Backend, SqlStore};
use super::writer::release_outside_transaction;

/// Writers wait this long for SQLite's lock instead of failing at once (only another process
/// can hold it that long: this process's writers take turns in the store's writer first, and
/// a failed write never leaves its connection holding the lock).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: u32 = 4;

impl Backend for Sqlite {
    const BACKEND: &'static str = "sqlite";

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// Opens (creating if missing) and migrates the SQLite database at `path`.
pub(super) async fn open(path: &Path) -> Result<SqlStore<Sqlite>, StoreError> {
    let open_err = |message: String| StoreError::Open {
        backend: Sqlite::BACKEND,
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
    Ok(SqlStore::new(pool, true))
}
