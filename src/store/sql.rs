//! The SQL of the store, written once for both backends: `$1` placeholders, `ON CONFLICT` and
//! row-value comparisons work on SQLite and PostgreSQL alike, so the two cannot drift apart.
//! The multi-row statements are built for a backend's [`Marks`].

pub(super) const SELECT_PEERS: &str = concat!(
    "SELECT peer_id, public_key, name, address, first_seen_ms, last_seen_ms, is_seed, ",
    "failure_count, total_requests, successful_requests, success_rate, avg_latency_ms, ",
    "min_latency_ms, max_latency_ms, penalty, penalty_updated_ms, last_penalty_reason, ",
    "last_penalty_at_ms FROM peers ORDER BY peer_id"
);
pub(super) const UPSERT_PEER: &str = concat!(
    "INSERT INTO peers (peer_id, public_key, name, address, first_seen_ms, last_seen_ms, is_seed, ",
    "failure_count, total_requests, successful_requests, success_rate, avg_latency_ms, ",
    "min_latency_ms, max_latency_ms, penalty, penalty_updated_ms, last_penalty_reason, ",
    "last_penalty_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) ",
    "ON CONFLICT (peer_id) DO UPDATE SET public_key = excluded.public_key, name = excluded.name, ",
    "address = excluded.address, first_seen_ms = excluded.first_seen_ms, ",
    "last_seen_ms = excluded.last_seen_ms, is_seed = excluded.is_seed, ",
    "failure_count = excluded.failure_count, total_requests = excluded.total_requests, ",
    "successful_requests = excluded.successful_requests, success_rate = excluded.success_rate, ",
    "avg_latency_ms = excluded.avg_latency_ms, min_latency_ms = excluded.min_latency_ms, ",
    "max_latency_ms = excluded.max_latency_ms, penalty = excluded.penalty, ",
    "penalty_updated_ms = excluded.penalty_updated_ms, ",
    "last_penalty_reason = excluded.last_penalty_reason, ",
    "last_penalty_at_ms = excluded.last_penalty_at_ms"
);
pub(super) const DELETE_PEER: &str = "DELETE FROM peers WHERE peer_id = $1";
pub(super) const SELECT_BANS: &str = "SELECT target, kind, reason, source, banned_at_ms, expires_at_ms FROM bans ORDER BY banned_at_ms, target";
pub(super) const INSERT_BAN: &str = "INSERT INTO bans (target, kind, reason, source, banned_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6)";
pub(super) const DELETE_BAN: &str = "DELETE FROM bans WHERE target = $1";

pub(super) const SELECT_REGISTERS: &str = "SELECT register_id, is_public, role, origin_key, created_at_ms, height, head_hash, latest_version, base_height FROM registers ORDER BY register_id";
pub(super) const UPSERT_REGISTER: &str = concat!(
    "INSERT INTO registers (register_id, is_public, role, origin_key, created_at_ms, height, head_hash, latest_version, base_height) ",
    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (register_id) DO UPDATE SET is_public = excluded.is_public, ",
    "role = excluded.role, origin_key = excluded.origin_key, height = excluded.height, head_hash = excluded.head_hash, ",
    "latest_version = excluded.latest_version, base_height = excluded.base_height"
);
pub(super) const INSERT_DOCKET: &str = "INSERT INTO dockets (register_id, number, previous_hash, merkle_root, tx_count, first_version, sealed_at_ms, hash, signature) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)";
pub(super) const SELECT_DOCKETS: &str = "SELECT register_id, number, previous_hash, merkle_root, tx_count, first_version, sealed_at_ms, hash, signature FROM dockets WHERE register_id = $1 AND number >= $2 ORDER BY number LIMIT $3";
pub(super) const SELECT_PENDING: &str = "SELECT tx_id, payload FROM transactions WHERE register_id = $1 AND version IS NULL ORDER BY received_at_ms, tx_id LIMIT $2";
pub(super) const COUNT_PENDING: &str =
    "SELECT COUNT(*) AS n FROM transactions WHERE register_id = $1 AND version IS NULL";
pub(super) const SELECT_PAYLOADS: &str = "SELECT payload FROM transactions WHERE register_id = $1 AND version >= $2 AND version <= $3 ORDER BY version";
/// Transaction IDs in `[$2, $3)` (bytes: the IDs whose hex starts with a prefix, see
/// `tx_ids::prefix_range`), at most `$4`.
pub(super) const SELECT_TX_IDS_BETWEEN: &str = "SELECT tx_id FROM transactions WHERE register_id = $1 AND tx_id >= $2 AND tx_id < $3 ORDER BY tx_id LIMIT $4";
pub(super) const SELECT_TX: &str = "SELECT tx_id, payload, received_at_ms, version, docket_number FROM transactions WHERE register_id = $1 AND tx_id = $2";
pub(super) const DELETE_TXS: &str = "DELETE FROM transactions WHERE register_id = $1";
pub(super) const DELETE_DOCKETS: &str = "DELETE FROM dockets WHERE register_id = $1";
pub(super) const DELETE_REGISTER: &str = "DELETE FROM registers WHERE register_id = $1";
pub(super) const SELECT_SUBSCRIPTIONS: &str =
    "SELECT register_id, mode, created_at_ms FROM subscriptions ORDER BY register_id";
pub(super) const UPSERT_SUBSCRIPTION: &str = "INSERT INTO subscriptions (register_id, mode, created_at_ms) VALUES ($1,$2,$3) ON CONFLICT (register_id) DO UPDATE SET mode = excluded.mode";
pub(super) const DELETE_SUBSCRIPTION: &str = "DELETE FROM subscriptions WHERE register_id = $1";
pub(super) const UPSERT_PROBE: &str = "INSERT INTO storage_probe (id, checked_at_ms, filler) VALUES (1, $1, $2) ON CONFLICT (id) DO UPDATE SET checked_at_ms = excluded.checked_at_ms, filler = excluded.filler";
pub(super) const EMPTY_PROBE: &str = "UPDATE storage_probe SET filler = NULL WHERE id = 1";
pub(super) const PENDING_BEFORE: &str = "SELECT tx_id FROM transactions WHERE register_id = $1 AND version IS NULL AND received_at_ms < $2 ORDER BY received_at_ms, tx_id LIMIT $3";
pub(super) const PING: &str = "SELECT 1";
pub(super) const DELETE_DOCKET: &str = "DELETE FROM dockets WHERE register_id = $1 AND number = $2";
pub(super) const SELECT_DOCKET_HASH: &str =
    "SELECT hash FROM dockets WHERE register_id = $1 AND number = $2";

/// How a statement marks the values bound to it. PostgreSQL numbers them (`$1`). SQLite is
/// given `?` in the order they are bound: sqlx asks SQLite the name of every value it binds,
/// and SQLite finds a numbered name by walking the statement's list of names, a cost that
/// grows with the square of a multi-row statement's values; a `?` has no name to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marks {
    Numbered,
    InOrder,
}

/// The marks of one statement, each value its own, in the order the caller binds them.
struct Binds {
    marks: Marks,
    count: usize,
}

impl Binds {
    fn new(marks: Marks) -> Binds {
        Binds { marks, count: 0 }
    }

    fn next(&mut self) -> String {
        self.count += 1;
        match self.marks {
            Marks::Numbered => format!("${}", self.count),
            Marks::InOrder => "?".to_string(),
        }
    }

    /// `n` marks, comma-separated.
    fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.next()).collect::<Vec<_>>().join(",")
    }
}

/// `<columns> FROM transactions WHERE register_id = ? AND tx_id IN (?, …)` for `ids` IDs,
/// bound in that order (bound values work the same on both backends).
pub(crate) fn select_tx_ids_in(columns: &str, ids: usize, marks: Marks) -> String {
    let mut b = Binds::new(marks);
    let register = b.next();
    let list = b.list(ids);
    format!("{columns} FROM transactions WHERE register_id = {register} AND tx_id IN ({list})")
}

/// Row counts that multi-row statements are built for, largest first: a write of any length
/// runs as statements of these sizes, so each connection caches at most a handful of shapes.
const ROW_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// Splits `0..len` into consecutive ranges of the sizes in [`ROW_CHUNKS`], largest first.
pub(super) fn row_chunks(len: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for size in ROW_CHUNKS {
        while len - start >= size {
            out.push(start..start + size);
            start += size;
        }
    }
    out
}

/// `rows` tuples of `per_row` marks each.
fn values(b: &mut Binds, rows: usize, per_row: usize) -> String {
    (0..rows)
        .map(|_| format!("({})", b.list(per_row)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Stores `rows` pending transactions, each bound as register, ID, payload and arrival time.
/// Fails if any of them is held already (on SQLite, undoing only this statement).
pub(crate) fn insert_pending(rows: usize, marks: Marks) -> String {
    format!(
        "INSERT INTO transactions (register_id, tx_id, payload, received_at_ms) VALUES {}",
        values(&mut Binds::new(marks), rows, 4)
    )
}

/// [`insert_pending`], leaving held ones as they are and returning the IDs that were new.
pub(crate) fn insert_pending_returning_new(rows: usize, marks: Marks) -> String {
    format!(
        "{} ON CONFLICT (register_id, tx_id) DO NOTHING RETURNING tx_id",
        insert_pending(rows, marks)
    )
}

/// Seals `rows` pending transactions of one register into one docket, bound as: the docket
/// number, each row's ID and version, the register, then each row's ID again. Changes only
/// pending rows (the caller checks that every row changed). The rows are found by key, from
/// the `IN` list: `+version` keeps the planner from walking the register's pending rows through
/// an index on `version` (150 µs a row), and without the list it walked every row of the
/// register through that index to join them with the IDs. Each row's version comes from the
/// joined list (VALUES columns are `column1`, `column2` on both backends), looked up through
/// an index SQLite builds for the statement: a `CASE` over every ID took time growing with the
/// square of the rows per statement.
pub(crate) fn seal_rows(rows: usize, marks: Marks) -> String {
    let mut b = Binds::new(marks);
    let docket = b.next();
    let list = values(&mut b, rows, 2);
    let register = b.next();
    let ids = b.list(rows);
    format!(
        "UPDATE transactions SET version = v.column2, docket_number = {docket} \
         FROM (VALUES {list}) AS v \
         WHERE transactions.register_id = {register} AND transactions.tx_id IN ({ids}) \
         AND transactions.tx_id = v.column1 AND +transactions.version IS NULL"
    )
}

/// Stores `rows` sealed transactions, each bound as register, ID, payload, arrival time,
/// version and docket number. A pending copy is sealed in place.
pub(crate) fn upsert_sealed(rows: usize, marks: Marks) -> String {
    format!(
        "INSERT INTO transactions (register_id, tx_id, payload, received_at_ms, version, \
         docket_number) VALUES {} ON CONFLICT (register_id, tx_id) DO UPDATE SET \
         version = excluded.version, docket_number = excluded.docket_number",
        values(&mut Binds::new(marks), rows, 6)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_chunks_cover_every_row_once_in_order() {
        for len in [0, 1, 3, 4, 5, 255, 256, 257, 300, 1000, 1027] {
            let chunks = row_chunks(len);
            let mut next = 0;
            for chunk in &chunks {
                assert_eq!(chunk.start, next);
                assert!(ROW_CHUNKS.contains(&chunk.len()));
                next = chunk.end;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn every_value_has_its_own_mark_in_the_order_it_is_bound() {
        assert_eq!(
            insert_pending(2, Marks::Numbered)
                .split(" VALUES ")
                .nth(1)
                .and_then(|v| v.split(" ON ").next()),
            Some("($1,$2,$3,$4),($5,$6,$7,$8)")
        );
        assert_eq!(
            seal_rows(2, Marks::Numbered),
            "UPDATE transactions SET version = v.column2, docket_number = $1 \
             FROM (VALUES ($2,$3),($4,$5)) AS v \
             WHERE transactions.register_id = $6 AND transactions.tx_id IN ($7,$8) \
             AND transactions.tx_id = v.column1 AND +transactions.version IS NULL"
        );
        assert_eq!(
            select_tx_ids_in("SELECT tx_id", 3, Marks::InOrder),
            "SELECT tx_id FROM transactions WHERE register_id = ? AND tx_id IN (?,?,?)"
        );
    }

    #[test]
    fn both_styles_mark_the_same_number_of_values() {
        for rows in [1, 4, 256] {
            for (numbered, in_order) in [
                (
                    insert_pending(rows, Marks::Numbered),
                    insert_pending(rows, Marks::InOrder),
                ),
                (
                    seal_rows(rows, Marks::Numbered),
                    seal_rows(rows, Marks::InOrder),
                ),
                (
                    upsert_sealed(rows, Marks::Numbered),
                    upsert_sealed(rows, Marks::InOrder),
                ),
            ] {
                let count = in_order.matches('?').count();
                assert!(numbered.contains(&format!("${count}")), "{numbered}");
                assert!(!numbered.contains(&format!("${}", count + 1)), "{numbered}");
                assert!(!in_order.contains('$'), "{in_order}");
            }
        }
    }
}
