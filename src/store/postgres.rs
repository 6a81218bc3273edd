//! PostgreSQL backend, chosen with `--database-url postgres://…`; migrations from
//! `migrations/postgres` applied at connect.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::{StoreError, shared_store_impl};

const MAX_CONNECTIONS: u32 = 8;
/// How long start-up waits for the server before reporting it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| StoreError::Open {
                backend: "postgres",
                message: format!("{} ({e})", crate::config::redact_url(url)),
            })?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(PostgresStore { pool })
    }
}

shared_store_impl!(PostgresStore, "postgres");
