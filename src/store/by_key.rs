//! The store's statements that find rows by key, shared by several `Store` methods (apart
//! from `sql_store.rs`, whose one trait impl cannot be split).

use std::collections::HashSet;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Type};

use super::sql_store::{Backend, ROW_BYTES, SqlStore};
use super::{IN_LIST_CHUNK, StoreError, Write, WriteClass, sql, tx_ids};

impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    /// Runs a `DELETE … WHERE <key> = $1`; returns whether a row was deleted.
    pub(super) async fn delete_by_key(
        &self,
        delete: &'static str,
        key: &str,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(Write::new(WriteClass::Other, ROW_BYTES), async |conn| {
                let done = sqlx::query(delete).bind(key).execute(&mut *conn).await?;
                Ok(DB::rows_affected(&done) > 0)
            })
            .await
    }
}

impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Decode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Which of `tx_ids` the register holds: all of them, or only the pending ones. Found by
    /// key in both cases (a condition on `version` in SQL could lead the planner to walk every
    /// pending row of the register instead).
    pub(super) async fn ids_in(
        &self,
        register_id: &str,
        tx_ids: &[String],
        pending_only: bool,
    ) -> Result<HashSet<String>, StoreError> {
        let mut out = HashSet::new();
        let columns: Vec<[u8; 32]> = tx_ids.iter().filter_map(|id| tx_ids::lookup(id)).collect();
        for chunk in columns.chunks(IN_LIST_CHUNK) {
            let sql =
                sql::select_tx_ids_in("SELECT tx_id, version IS NULL", chunk.len(), DB::MARKS);
            let mut query = sqlx::query_as::<_, (Vec<u8>, bool)>(&sql).bind(register_id);
            for id in chunk {
                query = query.bind(id.as_slice());
            }
            let rows = query
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.read_failed(e))?;
            for (id, pending) in rows {
                if pending || !pending_only {
                    out.insert(tx_ids::from_column(&id)?);
                }
            }
        }
        Ok(out)
    }
}
