//! PostgreSQL backend, chosen with `--database-url postgres://…`; migrations from
//! `migrations/postgres` applied at connect. The server handles concurrent writers itself.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, PgConnection, Postgres};

use super::sql_store::{Backend, SqlStore};
use super::writer::release_outside_transaction;
use super::{Durability, StoreError};

const MAX_CONNECTIONS: u32 = 8;
/// How long start-up waits for the server before reporting it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Backend for Postgres {
    const BACKEND: &'static str = "postgres";
    const MARKS: super::sql::Marks = super::sql::Marks::Numbered;
    const FAILED_STATEMENT_UNDONE_ALONE: bool = false;

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// Connects to the server at `url` and migrates its database.
pub(super) async fn connect(
    url: &str,
    durability: Durability,
) -> Result<SqlStore<Postgres>, StoreError> {
    let open_err = |e: sqlx::Error| StoreError::Open {
        backend: Postgres::BACKEND,
        message: format!("{} ({e})", crate::config::redact_url(url)),
    };
    // One direct connection first: a pool would retry until its timeout and then report
    // only "timed out", hiding the real cause (refused, bad password, no such database).
    PgConnection::connect(url)
        .await
        .map_err(open_err)?
        .close()
        .await
        .map_err(open_err)?;
    let mut options: PgConnectOptions = url.parse().map_err(open_err)?;
    if durability == Durability::Fast {
        // Commits return before their WAL reaches disk (the server's own setting otherwise).
        options = options.options([("synchronous_commit", "off")]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .after_release(release_outside_transaction)
        .connect_with(options)
        .await
        .map_err(open_err)?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(SqlStore::new(pool.clone(), pool, false))
}
