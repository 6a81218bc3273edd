//! How every write of the store runs, in one place: one writer at a time where the backend
//! needs it, each write one database transaction on a connection of its own that goes back
//! to the pool only after its COMMIT succeeded, and every outcome recorded in [`WriteHealth`].
//! The store's methods write only through [`Writer::write`], so none can forget any of this.

use sqlx::{Connection, Database, Pool};

use super::{StoreError, Write, WriteHealth};

/// Runs the store's writes.
pub(super) struct Writer<DB: Database> {
    pool: Pool<DB>,
    /// `Some` for SQLite, which allows one writer at a time: writers of this process wait
    /// here, in async code, instead of busy-waiting inside SQLite (where a starved writer
    /// could time out). PostgreSQL handles concurrent writers itself.
    one_at_a_time: Option<tokio::sync::Mutex<()>>,
    health: WriteHealth,
}

impl<DB: Database> Writer<DB> {
    /// `one_at_a_time`: whether this process's writers must take turns.
    pub(super) fn new(pool: Pool<DB>, one_at_a_time: bool) -> Self {
        Writer {
            pool,
            one_at_a_time: one_at_a_time.then(|| tokio::sync::Mutex::new(())),
            health: WriteHealth::default(),
        }
    }

    pub(super) fn health(&self) -> &WriteHealth {
        &self.health
    }

    /// Closes the write connections (waiting for a write in progress); a no-op when they are
    /// the readers' pool, already closed.
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `body` (which writes through the connection it is given) as one database
    /// transaction: after the writers before it, on a [`WriteConnection`] of its own, success
    /// only once COMMIT succeeded, and the outcome recorded in the store's [`WriteHealth`] as
    /// a write of `write`'s class and size.
    pub(super) async fn write<T>(
        &self,
        write: Write,
        body: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _turn = match &self.one_at_a_time {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let outcome = async {
            let mut conn = WriteConnection::acquire(&self.pool).await?;
            let mut tx = conn.connection().begin().await?;
            let value = body(&mut tx).await?;
            tx.commit().await?;
            conn.committed();
            Ok(value)
        }
        .await;
        self.health.record(write, &outcome);
        outcome
    }
}

/// A pooled connection that one write runs on. It goes back to the pool only through
/// [`WriteConnection::committed`], after its COMMIT succeeded; dropped any other way (an error,
/// a refused COMMIT, a cancelled future) it is closed instead, which ends whatever transaction
/// it was in. So no connection ever returns to the pool mid-transaction: SQLite rolls a
/// transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR), sqlx's rollback then
/// fails and its count of open transactions stays at one, and on a reused connection the next
/// `BEGIN` would become a `SAVEPOINT` inside a transaction that is never committed.
struct WriteConnection<DB: Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    committed: bool,
}

impl<DB: Database> WriteConnection<DB> {
    async fn acquire(pool: &Pool<DB>) -> Result<Self, sqlx::Error> {
        Ok(WriteConnection {
            conn: pool.acquire().await?,
            committed: false,
        })
    }

    fn connection(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// The transaction on this connection committed: the connection may be reused.
    fn committed(mut self) {
        self.committed = true;
    }
}

impl<DB: Database> Drop for WriteConnection<DB> {
    fn drop(&mut self) {
        if !self.committed {
            // Runs before the pool connection's own drop, which then closes it.
            self.conn.close_on_drop();
        }
    }
}

/// Pool safety net (each backend's pool runs it when a connection comes back), for any path
/// that does not go through [`Writer::write`]: a connection that comes back still inside a
/// transaction (by sqlx's count) is closed, not reused.
pub(super) fn release_outside_transaction<C: Connection>(
    conn: &mut C,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    let reusable = !conn.is_in_transaction();
    if !reusable {
        tracing::warn!("a database connection came back inside a transaction; closing it");
    }
    Box::pin(futures::future::ready(Ok(reusable)))
}
