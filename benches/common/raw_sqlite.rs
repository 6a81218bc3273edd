//! The storage's own rate, measured beside a benchmark's figures in the same run.

use std::time::Instant;

use serde_json::json;
use sqlx::Connection;

fn fail(what: impl std::fmt::Display) -> ! {
    eprintln!("raw SQLite reference: {what}");
    std::process::exit(1)
}

const REGISTER: &str = "raw";

/// The storage's own rate: the same rows inserted into a bare SQLite table (an ID, the
/// register, the payload) in WAL mode, 1 000 rows per commit, `per_statement` rows per INSERT.
pub async fn measure(
    payloads: &[String],
    synchronous: &str,
    per_statement: usize,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(format!("tempdir: {e}")));
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("raw.db"))
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .pragma("synchronous", synchronous.to_string());
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| fail(format!("raw SQLite: {e}")));
    sqlx::query("CREATE TABLE t (tx_id TEXT PRIMARY KEY, register_id TEXT, payload BLOB)")
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| fail(format!("raw SQLite: {e}")));
    let started = Instant::now();
    for chunk in payloads.chunks(1000) {
        let mut tx = conn
            .begin()
            .await
            .unwrap_or_else(|e| fail(format!("raw SQLite: {e}")));
        for rows in chunk.chunks(per_statement) {
            let values = vec!["(?, ?, ?)"; rows.len()].join(",");
            let statement = format!("INSERT INTO t (tx_id, register_id, payload) VALUES {values}");
            let mut query = sqlx::query(&statement);
            for p in rows {
                query = query
                    .bind(sorcha_peer::ledger::tx_id(p.as_bytes()))
                    .bind(REGISTER)
                    .bind(p.as_bytes());
            }
            query
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| fail(format!("raw SQLite: {e}")));
        }
        tx.commit()
            .await
            .unwrap_or_else(|e| fail(format!("raw SQLite: {e}")));
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "synchronous": synchronous,
        "rowsPerStatement": per_statement,
        "rowsPerSecond": payloads.len() as f64 / seconds,
        "microsecondsPerRow": seconds * 1e6 / payloads.len() as f64,
    })
}
