//! The one implementation of [`Store`], generic over the two sqlx backends: the queries of
//! [`sql`](super::sql), bound and read the same way on SQLite and PostgreSQL. Every write runs
//! through the store's [`Writer`]. What differs between the backends (opening, migrations,
//! whether writers take turns, reading a result's row count) lives in `sqlite.rs` and
//! `postgres.rs`.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::ledger::{Docket, Hash};

use super::rows::{
    self, DocketRow, RegisterRow, SubscriptionRow, from_column, hash_from_hex, to_column,
};
use super::writer::Writer;
use super::{
    BanRow, IN_LIST_CHUNK, PeerRow, PendingBatch, RegisterRecord, Store, StoreError,
    SubscriptionRecord, TxRecord, Write, WriteClass, WriteHealth, sql, tx_ids,
};

/// Roughly what one small row (a peer, a ban, a docket header) adds to a write, for the size
/// storage health compares a probe with.
pub(super) const ROW_BYTES: usize = 256;

/// What the shared implementation needs to know of a backend beyond sqlx's [`Database`].
pub(super) trait Backend: Database {
    /// "sqlite" or "postgres".
    const BACKEND: &'static str;
    /// How its multi-row statements mark their values.
    const MARKS: sql::Marks;
    /// Whether a statement that fails inside a transaction is undone alone, the transaction
    /// going on (SQLite; on PostgreSQL the whole transaction fails).
    const FAILED_STATEMENT_UNDONE_ALONE: bool;
    /// Rows a statement changed (sqlx has no backend-independent accessor).
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

/// A store on one sqlx backend.
pub(super) struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    pub(super) writer: Writer<DB>,
}

impl<DB: Database> SqlStore<DB> {
    /// A store reading through `pool` (migrated) and writing through `write_pool` (the same
    /// pool, or one of its own); `one_writer_at_a_time` for backends that allow only one.
    pub(super) fn new(pool: Pool<DB>, write_pool: Pool<DB>, one_writer_at_a_time: bool) -> Self {
        SqlStore {
            writer: Writer::new(write_pool, one_writer_at_a_time),
            pool,
        }
    }

    /// A read's error, with a damaged database noted in the store's health (a damaged page is
    /// found by whichever statement reads it first).
    pub(super) fn read_failed(&self, e: sqlx::Error) -> StoreError {
        let e = StoreError::from(e);
        self.writer.health().record_read(&e);
        e
    }
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut <DB as Database>::Connection: Executor<'c, Database = DB>,
    for<'q> <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> f64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql::PING).execute(&self.pool).await?;
        Ok(())
    }

    fn write_health(&self) -> &WriteHealth {
        self.writer.health()
    }

    async fn probe_write(&self, bytes: usize) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        // Random, so that no compression (PostgreSQL's TOAST) makes it smaller on disk.
        let mut filler = vec![0u8; bytes];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut filler);
        let probe = Write::new(WriteClass::Probe, bytes);
        self.writer
            .write(probe, async |conn| {
                let query = sqlx::query(sql::UPSERT_PROBE).bind(now).bind(filler);
                query.execute(&mut *conn).await?;
                Ok(())
            })
            .await?;
        if bytes == 0 {
            return Ok(());
        }
        // Committed, so it reached the disk; emptied again so the probe holds no space.
        self.writer
            .write(Write::new(WriteClass::Other, ROW_BYTES), async |conn| {
                sqlx::query(sql::EMPTY_PROBE).execute(&mut *conn).await?;
                Ok(())
            })
            .await
    }

    async fn load_peers(&self) -> Result<Vec<PeerRow>, StoreError> {
        Ok(sqlx::query_as::<_, PeerRow>(sql::SELECT_PEERS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?)
    }

    async fn upsert_peers(&self, peers: &[PeerRow]) -> Result<(), StoreError> {
        let write = Write::new(WriteClass::Other, ROW_BYTES * peers.len());
        self.writer
            .write(write, async |conn| {
                for p in peers {
                    let query = rows::bind_peer(p, sqlx::query(sql::UPSERT_PEER));
                    query.execute(&mut *conn).await?;
                }
                Ok(())
            })
            .await
    }

    async fn delete_peer(&self, peer_id: &str) -> Result<bool, StoreError> {
        self.delete_by_key(sql::DELETE_PEER, peer_id).await
    }

    async fn load_bans(&self) -> Result<Vec<BanRow>, StoreError> {
        Ok(sqlx::query_as::<_, BanRow>(sql::SELECT_BANS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?)
    }

    async fn insert_ban(&self, ban: &BanRow) -> Result<(), StoreError> {
        self.writer
            .write(Write::new(WriteClass::Other, ROW_BYTES), async |conn| {
                let query = rows::bind_ban(ban, sqlx::query(sql::INSERT_BAN));
                query.execute(&mut *conn).await?;
                Ok(())
            })
            .await
    }

    async fn delete_ban(&self, target: &str) -> Result<bool, StoreError> {
        self.delete_by_key(sql::DELETE_BAN, target).await
    }

    async fn load_registers(&self) -> Result<Vec<RegisterRecord>, StoreError> {
        sqlx::query_as::<_, RegisterRow>(sql::SELECT_REGISTERS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?
            .into_iter()
            .map(RegisterRow::into_record)
            .collect()
    }

    async fn put_register(
        &self,
        register: &RegisterRecord,
        docket: &Docket,
    ) -> Result<(), StoreError> {
        let register = &RegisterRow::from_record(register)?;
        let docket = &DocketRow::from_docket(docket)?;
        self.writer
            .write(
                Write::new(WriteClass::Dockets, 2 * ROW_BYTES),
                async |conn| {
                    register
                        .bind(sqlx::query(sql::UPSERT_REGISTER))
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query(sql::DELETE_DOCKET)
                        .bind(&docket.register_id)
                        .bind(docket.number)
                        .execute(&mut *conn)
                        .await?;
                    docket
                        .bind(sqlx::query(sql::INSERT_DOCKET))
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                },
            )
            .await
    }

    async fn accept_pending(
        &self,
        batches: &[PendingBatch],
        now_ms: i64,
    ) -> Result<Vec<Vec<String>>, StoreError> {
        self.accept(batches, now_ms).await
    }

    async fn payloads_by_id(
        &self,
        register_id: &str,
        tx_ids: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::with_capacity(tx_ids.len());
        // One query per chunk (`IN (...)` with bound values works on both backends).
        let columns: Vec<[u8; 32]> = tx_ids.iter().filter_map(|id| tx_ids::lookup(id)).collect();
        for chunk in columns.chunks(IN_LIST_CHUNK) {
            let sql = sql::select_tx_ids_in("SELECT tx_id, payload", chunk.len(), DB::MARKS);
            let mut query = sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(&sql).bind(register_id);
            for id in chunk {
                query = query.bind(id.as_slice());
            }
            let rows = query
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.read_failed(e))?;
            for (id, payload) in rows {
                out.push((tx_ids::from_column(&id)?, payload));
            }
        }
        Ok(out)
    }

    async fn existing_transactions(
        &self,
        register_id: &str,
        tx_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        self.ids_in(register_id, tx_ids, false).await
    }

    async fn pending_among(
        &self,
        register_id: &str,
        tx_ids: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        self.ids_in(register_id, tx_ids, true).await
    }

    async fn pending_before(
        &self,
        register_id: &str,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let ids: Vec<Vec<u8>> = sqlx::query_scalar(sql::PENDING_BEFORE)
            .bind(register_id)
            .bind(before_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?;
        ids.iter().map(|id| tx_ids::from_column(id)).collect()
    }

    async fn pending(
        &self,
        register_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = sqlx::query_as(sql::SELECT_PENDING)
            .bind(register_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?;
        (rows.into_iter())
            .map(|(id, payload)| Ok((tx_ids::from_column(&id)?, payload)))
            .collect()
    }

    async fn count_pending(&self, register_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql::COUNT_PENDING)
            .bind(register_id)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?)
    }

    async fn seal(
        &self,
        head: &RegisterRecord,
        docket: &Docket,
        tx_ids: &[String],
    ) -> Result<(), StoreError> {
        let head = &RegisterRow::from_record(head)?;
        let docket = &DocketRow::from_docket(docket)?;
        let write = Write::new(WriteClass::Dockets, ROW_BYTES * (2 + tx_ids.len()));
        let columns = (tx_ids.iter())
            .map(|id| tx_ids::to_write(id))
            .collect::<Result<Vec<_>, _>>()?;
        self.writer
            .write(write, async |conn| {
                for rows in sql::row_chunks(tx_ids.len()) {
                    let ids = &columns[rows.clone()];
                    let statement = sql::seal_rows(ids.len(), DB::MARKS);
                    let mut query = sqlx::query(&statement).bind(docket.number);
                    for i in rows.clone() {
                        query = query
                            .bind(columns[i].as_slice())
                            .bind(docket.first_version + i as i64);
                    }
                    query = query.bind(docket.register_id.as_str());
                    for id in ids {
                        query = query.bind(id.as_slice());
                    }
                    if DB::rows_affected(&query.execute(&mut *conn).await?) != ids.len() as u64 {
                        return Err(StoreError::Corrupt(format!(
                            "transactions {} to {} of docket {} are not all pending",
                            tx_ids[rows.start],
                            tx_ids[rows.end - 1],
                            docket.number
                        )));
                    }
                }
                docket
                    .bind(sqlx::query(sql::INSERT_DOCKET))
                    .execute(&mut *conn)
                    .await?;
                head.bind(sqlx::query(sql::UPSERT_REGISTER))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
            .await
    }

    async fn append(
        &self,
        head: &RegisterRecord,
        dockets: &[(Docket, Vec<(String, Vec<u8>)>)],
    ) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        let head = &RegisterRow::from_record(head)?;
        let dockets = dockets
            .iter()
            .map(|(docket, txs)| {
                let ids = (txs.iter())
                    .map(|(id, _)| tx_ids::to_write(id))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((DocketRow::from_docket(docket)?, txs, ids))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let bytes = (dockets.iter())
            .flat_map(|(_, txs, _)| txs.iter().map(|(id, p)| id.len() + p.len() + ROW_BYTES))
            .sum::<usize>()
            + ROW_BYTES * (1 + dockets.len());
        self.writer
            .write(Write::new(WriteClass::Dockets, bytes), async |conn| {
                for (docket, txs, ids) in &dockets {
                    docket
                        .bind(sqlx::query(sql::INSERT_DOCKET))
                        .execute(&mut *conn)
                        .await?;
                    for rows in sql::row_chunks(txs.len()) {
                        let statement = sql::upsert_sealed(rows.len(), DB::MARKS);
                        let mut query = sqlx::query(&statement);
                        for i in rows {
                            query = query
                                .bind(docket.register_id.as_str())
                                .bind(ids[i].as_slice())
                                .bind(txs[i].1.as_slice())
                                .bind(now)
                                .bind(docket.first_version + i as i64)
                                .bind(docket.number);
                        }
                        query.execute(&mut *conn).await?;
                    }
                }
                head.bind(sqlx::query(sql::UPSERT_REGISTER))
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
            .await
    }

    async fn dockets(
        &self,
        register_id: &str,
        from: u64,
        limit: i64,
    ) -> Result<Vec<Docket>, StoreError> {
        sqlx::query_as::<_, DocketRow>(sql::SELECT_DOCKETS)
            .bind(register_id)
            .bind(to_column("docket number", from)?)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?
            .into_iter()
            .map(DocketRow::into_docket)
            .collect()
    }

    async fn docket_hash(
        &self,
        register_id: &str,
        number: u64,
    ) -> Result<Option<Hash>, StoreError> {
        let hash: Option<String> = sqlx::query_scalar(sql::SELECT_DOCKET_HASH)
            .bind(register_id)
            .bind(to_column("docket number", number)?)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?;
        hash.as_deref().map(hash_from_hex).transpose()
    }

    async fn payloads(
        &self,
        register_id: &str,
        first: i64,
        last: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(sql::SELECT_PAYLOADS)
            .bind(register_id)
            .bind(first)
            .bind(last)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?)
    }

    async fn transaction_ids_with_prefix(
        &self,
        register_id: &str,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        // A range, so the primary key serves it.
        let Some((low, high)) = tx_ids::prefix_range(prefix) else {
            return Ok(Vec::new());
        };
        let ids: Vec<Vec<u8>> = sqlx::query_scalar(sql::SELECT_TX_IDS_BETWEEN)
            .bind(register_id)
            .bind(low)
            .bind(high)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?;
        ids.iter().map(|id| tx_ids::from_column(id)).collect()
    }

    async fn transaction(
        &self,
        register_id: &str,
        tx_id: &str,
    ) -> Result<Option<TxRecord>, StoreError> {
        use sqlx::Row;
        let Some(column) = tx_ids::lookup(tx_id) else {
            return Ok(None);
        };
        let row = sqlx::query(sql::SELECT_TX)
            .bind(register_id)
            .bind(column.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?;
        let Some(r) = row else { return Ok(None) };
        let payload: Vec<u8> = r.try_get("payload")?;
        let version: Option<i64> = r.try_get("version")?;
        let docket_number: Option<i64> = r.try_get("docket_number")?;
        Ok(Some(TxRecord {
            tx_id: tx_ids::from_column(&r.try_get::<Vec<u8>, _>("tx_id")?)?,
            size: payload.len() as u64,
            received_at_ms: r.try_get("received_at_ms")?,
            version: version
                .map(|v| from_column("transaction version", v))
                .transpose()?,
            docket_number: docket_number
                .map(|n| from_column("docket number", n))
                .transpose()?,
        }))
    }

    async fn purge(&self, register_id: &str) -> Result<(u64, u64), StoreError> {
        self.writer
            .write(Write::new(WriteClass::Other, ROW_BYTES), async |conn| {
                let txs = sqlx::query(sql::DELETE_TXS)
                    .bind(register_id)
                    .execute(&mut *conn)
                    .await?;
                let dockets = sqlx::query(sql::DELETE_DOCKETS)
                    .bind(register_id)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(sql::DELETE_REGISTER)
                    .bind(register_id)
                    .execute(&mut *conn)
                    .await?;
                Ok((DB::rows_affected(&txs), DB::rows_affected(&dockets)))
            })
            .await
    }

    async fn load_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        sqlx::query_as::<_, SubscriptionRow>(sql::SELECT_SUBSCRIPTIONS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.read_failed(e))?
            .into_iter()
            .map(SubscriptionRow::into_record)
            .collect()
    }

    async fn put_subscription(&self, sub: &SubscriptionRecord) -> Result<(), StoreError> {
        let sub = &SubscriptionRow::from_record(sub);
        self.writer
            .write(Write::new(WriteClass::Other, ROW_BYTES), async |conn| {
                sqlx::query(sql::UPSERT_SUBSCRIPTION)
                    .bind(&sub.register_id)
                    .bind(&sub.mode)
                    .bind(sub.created_at_ms)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
            .await
    }

    async fn delete_subscription(&self, register_id: &str) -> Result<bool, StoreError> {
        self.delete_by_key(sql::DELETE_SUBSCRIPTION, register_id)
            .await
    }

    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}
