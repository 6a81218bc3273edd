//! Storing pending transactions: many callers' batches in one database transaction, and which
//! of their transactions were new. Nearly all are (the pool asks its sets, and the store,
//! before it stores). On SQLite each statement is therefore first tried as a plain `INSERT`,
//! which stores all its rows, all new, or fails on a held one and is undone alone: asking
//! SQLite to return a row per transaction stored (`RETURNING`) cost about a tenth of a node's
//! CPU under load (issue 18). Only a statement that failed so is run again, leaving held rows
//! as they are and returning the new ones. On PostgreSQL a failed statement would fail the
//! whole transaction, so every statement returns the new ones there.

use std::collections::HashSet;
use std::ops::Range;

use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::sql_store::{Backend, ROW_BYTES, SqlStore};
use super::{PendingBatch, StoreError, Write, WriteClass, sql, tx_ids};

impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// [`Store::accept_pending`](super::Store::accept_pending).
    pub(super) async fn accept(
        &self,
        batches: &[PendingBatch],
        now_ms: i64,
    ) -> Result<Vec<Vec<String>>, StoreError> {
        let bytes = (batches.iter())
            .flat_map(|b| b.txs.iter().map(|(id, p)| id.len() + p.len() + ROW_BYTES))
            .sum();
        let columns = (batches.iter())
            .map(|b| b.txs.iter().map(|(id, _)| tx_ids::to_write(id)).collect())
            .collect::<Result<Vec<Vec<_>>, _>>()?;
        self.writer
            .write(Write::new(WriteClass::Transactions, bytes), async |conn| {
                let mut out = Vec::with_capacity(batches.len());
                for (batch, ids) in batches.iter().zip(&columns) {
                    let mut new = Vec::with_capacity(batch.txs.len());
                    for rows in sql::row_chunks(batch.txs.len()) {
                        if DB::FAILED_STATEMENT_UNDONE_ALONE
                            && Self::insert_all_new(conn, batch, ids, rows.clone(), now_ms).await?
                        {
                            new.extend(rows.map(|i| batch.txs[i].0.clone()));
                            continue;
                        }
                        let mut inserted =
                            Self::insert_returning_new(conn, batch, ids, rows.clone(), now_ms)
                                .await?;
                        // In the batch's order (RETURNING gives rows in no promised order); an
                        // ID twice in a statement was new only once.
                        new.extend(
                            rows.filter(|&i| inserted.remove(ids[i].as_slice()))
                                .map(|i| batch.txs[i].0.clone()),
                        );
                    }
                    out.push(new);
                }
                Ok(out)
            })
            .await
    }

    /// The statement storing `rows` of `batch` as pending, bound.
    fn bound<'q>(
        statement: &'q str,
        batch: &'q PendingBatch,
        ids: &'q [[u8; 32]],
        rows: Range<usize>,
        now_ms: i64,
    ) -> Query<'q, DB, <DB as Database>::Arguments<'q>> {
        let mut query = sqlx::query(statement);
        for i in rows {
            query = query
                .bind(batch.register_id.as_str())
                .bind(ids[i].as_slice())
                .bind(batch.txs[i].1.as_slice())
                .bind(now_ms);
        }
        query
    }

    /// Stores `rows` of `batch` if every one of them is new, and returns whether it did.
    /// Otherwise stores none of them: the statement is undone alone
    /// ([`Backend::FAILED_STATEMENT_UNDONE_ALONE`]).
    async fn insert_all_new(
        conn: &mut DB::Connection,
        batch: &PendingBatch,
        ids: &[[u8; 32]],
        rows: Range<usize>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let statement = sql::insert_pending(rows.len(), DB::MARKS);
        match Self::bound(&statement, batch, ids, rows, now_ms)
            .execute(&mut *conn)
            .await
        {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `rows` of `batch`, leaving held ones as they are; returns the ID columns that were
    /// new.
    async fn insert_returning_new(
        conn: &mut DB::Connection,
        batch: &PendingBatch,
        ids: &[[u8; 32]],
        rows: Range<usize>,
        now_ms: i64,
    ) -> Result<HashSet<Vec<u8>>, StoreError> {
        let statement = sql::insert_pending_returning_new(rows.len(), DB::MARKS);
        let rows = Self::bound(&statement, batch, ids, rows, now_ms)
            .fetch_all(&mut *conn)
            .await?;
        (rows.iter())
            .map(|row| Ok(row.try_get::<Vec<u8>, usize>(0)?))
            .collect()
    }
}
