//! PostgreSQL backend, chosen with `--database-url postgres://…`; migrations from
//! `migrations/postgres` applied at connect.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};

use super::{
    StoreError, WriteHealth, bind_docket, bind_register, release_outside_transaction,
    select_tx_ids_in, shared_store_impl, write_transaction,
};

const MAX_CONNECTIONS: u32 = 8;
/// How long start-up waits for the server before reporting it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PostgresStore {
    pool: PgPool,
    health: WriteHealth,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let open_err = |e: sqlx::Error| StoreError::Open {
            backend: "postgres",
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
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .after_release(release_outside_transaction)
            .connect(url)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(PostgresStore {
            pool,
            health: WriteHealth::default(),
        })
    }

    /// PostgreSQL handles concurrent writers itself.
    async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }
}

shared_store_impl!(PostgresStore, "postgres", sqlx::Postgres);
