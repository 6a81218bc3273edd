//! SQLite backend: one file in the data directory, WAL mode, migrations from
//! `migrations/sqlite` applied at open, after a bounded integrity check: the node does not
//! start on a file SQLite finds damaged. Writers of this process take turns (SQLite allows one
//! writer at a time) on one connection of their own: in WAL mode a connection drops its whole
//! page cache whenever another connection committed since it last read, so a writer sharing
//! the readers' connections re-read its index pages from the file on nearly every write.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqliteConnection};

use super::sql_store::{Backend, SqlStore};
use super::writer::release_outside_transaction;
use super::{Durability, StoreError, sql};

/// Writers wait this long for SQLite's lock instead of failing at once (only another process
/// can hold it that long: this process's writers take turns in the store's writer first, and
/// a failed write never leaves its connection holding the lock).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections for reads; writes have one more, their own.
const MAX_CONNECTIONS: u32 = 4;
/// The writer connection's page cache, KiB (SQLite's default is 2 MiB): the pages of the
/// indexes every insert touches stay cached as the register grows. Memory is taken only as
/// pages are read, so an idle node does not pay it.
const WRITER_CACHE_KIB: u32 = 16 * 1024;
/// Rows a statement's worker thread may hand over before it waits for them to be taken (sqlx's
/// default is 50): with 50, a read of a docket's 1 000 payloads, or an insert returning the IDs
/// it stored, stopped and woke its thread again every few rows (issue 18). Every read that
/// returns many rows is bounded (a `LIMIT`, a docket's versions) and is collected whole anyway.
const ROW_BUFFER: usize = 1024;
/// The start-up integrity check (`PRAGMA quick_check`, which reads every page) stops after
/// this long: a larger file starts unchecked, with a warning, and damage in it is reported
/// when a statement reads it.
pub(super) const INTEGRITY_CHECK_LIMIT: Duration = Duration::from_secs(10);
/// Problems `quick_check` lists at most (the first say enough).
const INTEGRITY_CHECK_ERRORS: u32 = 5;
/// SQLite's primary code for an operation stopped by the progress handler.
const SQLITE_INTERRUPT: i32 = 9;

impl Backend for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const MARKS: sql::Marks = sql::Marks::InOrder;
    const FAILED_STATEMENT_UNDONE_ALONE: bool = true;

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

/// Opens (creating if missing) and migrates the SQLite database at `path`.
pub(super) async fn open(
    path: &Path,
    durability: Durability,
) -> Result<SqlStore<Sqlite>, StoreError> {
    let open_err = |message: String| StoreError::Open {
        backend: Sqlite::BACKEND,
        message: format!("{}: {message}", path.display()),
    };
    let options = connect_options(path, durability);
    if integrity_check(path, &options, INTEGRITY_CHECK_LIMIT).await? == Integrity::Unfinished {
        tracing::warn!(
            "the integrity check of {} did not finish within {INTEGRITY_CHECK_LIMIT:?}: starting \
             unchecked (damage is reported when it is read)",
            path.display()
        );
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .after_release(release_outside_transaction)
        .connect_with(options.clone())
        .await
        .map_err(|e| match super::is_damage(&e) {
            true => damaged(path, &e.to_string()),
            false => open_err(e.to_string()),
        })?;
    sqlx::migrate!("migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|e| match &e {
            sqlx::migrate::MigrateError::Execute(inner)
            | sqlx::migrate::MigrateError::ExecuteMigration(inner, _)
                if super::is_damage(inner) =>
            {
                damaged(path, &e.to_string())
            }
            _ => StoreError::Migrate(e.to_string()),
        })?;
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .after_release(release_outside_transaction)
        .connect_with(options.pragma("cache_size", format!("-{WRITER_CACHE_KIB}")))
        .await
        .map_err(|e| open_err(e.to_string()))?;
    Ok(SqlStore::new(pool, writer, true))
}

/// A migrated store in memory, for unit tests: no file, gone when dropped. One connection
/// (each SQLite connection to `:memory:` is a database of its own), never closed for idling.
#[cfg(test)]
pub(crate) async fn open_in_memory() -> Result<SqlStore<Sqlite>, StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(SqliteConnectOptions::new().in_memory(true))
        .await?;
    sqlx::migrate!("migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    Ok(SqlStore::new(pool.clone(), pool, true))
}

fn connect_options(path: &Path, durability: Durability) -> SqliteConnectOptions {
    // In WAL mode FULL syncs the log at every commit; NORMAL only at checkpoints.
    let synchronous = match durability {
        Durability::Full => SqliteSynchronous::Full,
        Durability::Fast => SqliteSynchronous::Normal,
    };
    // A file name, not a URL: a data directory may contain `?`, `#` or `%`.
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(BUSY_TIMEOUT)
        .row_buffer_size(ROW_BUFFER)
        .foreign_keys(true)
        // A statement's undo journal (each multi-row insert keeps one, to undo itself alone)
        // stays in memory: past 64 KiB SQLite otherwise spills it to a temporary file.
        .pragma("temp_store", "memory")
}

/// How far the integrity check got on a file it did not find damaged.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Integrity {
    Ok,
    /// It ran out of time before reading the whole file.
    Unfinished,
}

/// Runs `PRAGMA quick_check` on the database at `path` on a connection of its own, stopped
/// after `limit` by SQLite's progress handler (which the check calls as it walks pages).
/// Damage is an error naming the file and what to do.
pub(super) async fn integrity_check(
    path: &Path,
    options: &SqliteConnectOptions,
    limit: Duration,
) -> Result<Integrity, StoreError> {
    let failed = |e: sqlx::Error| match super::is_damage(&e) {
        true => damaged(path, &e.to_string()),
        false => StoreError::Open {
            backend: Sqlite::BACKEND,
            message: format!("{}: integrity check: {e}", path.display()),
        },
    };
    let mut conn = SqliteConnection::connect_with(options)
        .await
        .map_err(failed)?;
    let deadline = Instant::now() + limit;
    conn.lock_handle()
        .await
        .map_err(failed)?
        .set_progress_handler(1_000, move || Instant::now() < deadline);
    let check = format!("PRAGMA quick_check({INTEGRITY_CHECK_ERRORS})");
    let found: Result<Vec<String>, sqlx::Error> =
        sqlx::query_scalar(&check).fetch_all(&mut conn).await;
    if let Err(e) = conn.close().await {
        tracing::debug!("closing the integrity check's connection: {e}");
    }
    match found {
        Ok(rows) if matches!(rows.as_slice(), [only] if only == "ok") => Ok(Integrity::Ok),
        // One line: the check's rows may hold line breaks of their own.
        Ok(rows) => Err(damaged(path, &rows.join("; ").replace('\n', "; "))),
        Err(sqlx::Error::Database(db))
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                && db
                    .code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .map(|c| c & 0xff)
                    == Some(SQLITE_INTERRUPT) =>
        {
            Ok(Integrity::Unfinished)
        }
        Err(e) => Err(failed(e)),
    }
}

/// The error for a damaged database file: what was found and what the operator can do.
fn damaged(path: &Path, found: &str) -> StoreError {
    let file = path.display();
    StoreError::Damaged(format!(
        "{file}: {found}. The node does not start on a damaged database. Stop here and keep a \
         copy of the file (with its -wal file), then restore it from a backup, or recover what \
         is readable with `sqlite3 {file} .recover | sqlite3 {file}.recovered` and move \
         {file}.recovered into its place (removing {file}-wal and {file}-shm); a replicated \
         register can also be fetched again from its peers after a fresh start."
    ))
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write as _};

    use super::*;
    use crate::store::{Store, Write, WriteClass};

    /// A database of `n` pending transactions of 2 kB, closed (checkpointed into the file).
    async fn filled(path: &Path, n: usize) {
        let store = open(path, Durability::Fast).await.expect("open");
        for i in 0..n {
            let batch = crate::store::PendingBatch {
                register_id: "r".into(),
                txs: vec![(format!("{i:064x}"), vec![i as u8; 2_000])],
            };
            store.accept_pending(&[batch], 1).await.expect("tx");
        }
        store.close().await;
    }

    /// Overwrites the page in the middle of the file with garbage, as a failing disk might.
    fn damage_middle(path: &Path) {
        let len = std::fs::metadata(path).expect("size").len();
        let at = len / 2 / 4096 * 4096;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("file");
        file.seek(SeekFrom::Start(at)).expect("seek");
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        file.write_all(&garbage).expect("write");
    }

    /// The statements that run once per transaction find their rows by key: none walks the
    /// pending rows of the register for each row it changes, nor scans a list for each row.
    /// Serving dockets reads sealed rows by version through the index that holds only them.
    #[tokio::test]
    async fn per_transaction_statements_find_rows_by_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.db");
        filled(&path, 50).await;
        let pool = SqlitePoolOptions::new()
            .connect_with(connect_options(&path, Durability::Full))
            .await
            .expect("pool");
        let key = "sqlite_autoindex_transactions_1";
        for (name, statement, binds, index) in [
            (
                "seal",
                crate::store::sql::seal_rows(256, Sqlite::MARKS),
                770,
                key,
            ),
            (
                "held",
                crate::store::sql::select_tx_ids_in(
                    "SELECT tx_id, version IS NULL",
                    4,
                    Sqlite::MARKS,
                ),
                5,
                key,
            ),
            (
                "payloads",
                crate::store::sql::SELECT_PAYLOADS.to_string(),
                3,
                "transactions_by_version",
            ),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {statement}");
            let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(&explain);
            for i in 0..binds {
                query = query.bind(if i == 0 {
                    "r".to_string()
                } else {
                    format!("{i:064x}")
                });
            }
            let plan: Vec<String> = query
                .fetch_all(&pool)
                .await
                .expect("plan")
                .into_iter()
                .map(|row| row.3)
                .collect();
            println!("{name}: {plan:?}");
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{name} does not use {index}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN")),
                "{name} scans: {plan:?}"
            );
        }
        pool.close().await;
    }

    /// The bundled SQLite is built as `.cargo/config.toml` asks: without memory statistics,
    /// so its allocations take no global mutex.
    #[tokio::test]
    async fn sqlite_is_built_without_memory_statistics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = SqlitePoolOptions::new()
            .connect_with(connect_options(&dir.path().join("o.db"), Durability::Full))
            .await
            .expect("pool");
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&pool)
            .await
            .expect("options");
        pool.close().await;
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "{options:?}"
        );
    }

    /// The value of `PRAGMA name` on a connection opened as the node opens one.
    async fn pragma(path: &Path, durability: Durability, name: &str) -> i64 {
        let pool = SqlitePoolOptions::new()
            .connect_with(connect_options(path, durability))
            .await
            .expect("pool");
        let value = sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(&pool)
            .await
            .expect("pragma");
        pool.close().await;
        value
    }

    /// `durability` is what every connection of the pool runs with: FULL syncs each commit.
    #[tokio::test]
    async fn durability_sets_how_commits_reach_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (durability, expected) in [(Durability::Full, 2), (Durability::Fast, 1)] {
            let path = dir.path().join(format!("{durability}.db"));
            let level = pragma(&path, durability, "synchronous").await;
            assert_eq!(level, expected, "{durability}");
        }
    }

    /// A multi-row insert's statement journal stays in memory (`temp_store` 2): on files, past
    /// 64 KiB it went to a temporary file, written and unlinked for every large statement.
    #[tokio::test]
    async fn statement_journals_stay_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = pragma(&dir.path().join("peer.db"), Durability::Full, "temp_store").await;
        assert_eq!(store, 2, "temp_store=MEMORY");
    }

    #[tokio::test]
    async fn the_check_passes_a_sound_file_and_is_bounded_in_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("peer.db");
        filled(&path, 300).await;
        let options = connect_options(&path, Durability::Full);
        let full = integrity_check(&path, &options, INTEGRITY_CHECK_LIMIT).await;
        assert_eq!(full.expect("sound"), Integrity::Ok);
        let none = integrity_check(&path, &options, Duration::ZERO).await;
        assert_eq!(none.expect("no time"), Integrity::Unfinished);
    }

    #[tokio::test]
    async fn a_damaged_file_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("peer.db");
        filled(&path, 300).await;
        damage_middle(&path);
        let Err(StoreError::Damaged(message)) = open(&path, Durability::Full).await.map(|_| ())
        else {
            panic!("a damaged file was opened");
        };
        let file = path.display().to_string();
        assert!(message.starts_with(&file), "{message}");
        assert!(
            message.contains(".recover") && message.contains("backup"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn damage_found_at_run_time_fails_storage_until_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("peer.db");
        filled(&path, 300).await;
        damage_middle(&path);
        // Past the start-up check (as when it ran out of time): the first read finds it.
        let pool = SqlitePoolOptions::new()
            .connect_with(connect_options(&path, Durability::Full))
            .await
            .expect("pool");
        let store = SqlStore::new(pool.clone(), pool, true);
        let mut found = None;
        for from in (0..300).step_by(20) {
            let ids: Vec<String> = (from..from + 20).map(|i| format!("{i:064x}")).collect();
            if let Err(e) = store.payloads_by_id("r", &ids).await {
                found = Some(e);
                break;
            }
        }
        assert!(
            matches!(found, Some(StoreError::Damaged(_))),
            "reading every row finds the damage: {found:?}"
        );
        let failure = store.write_health().failure().expect("failing");
        assert!(failure.reason.contains("malformed"), "{}", failure.reason);
        // Writes that succeed, probes included, do not clear it.
        store.probe_write(0).await.expect("probe");
        store
            .write_health()
            .record(Write::new(WriteClass::Other, 1), &Ok(()));
        assert!(store.write_health().failure().is_some());
        assert_eq!(store.write_health().probe_bytes(), None);
        store.close().await;
    }
}
