//! Rows as the tables hold them, and their mapping to and from the domain types the [`Store`]
//! trait speaks: roles and modes as their names, hashes, keys and signatures as hex, numbers
//! as the signed 64-bit integers both databases have. A stored value that does not map back is
//! [`StoreError::Corrupt`]; a domain number too large for a column is [`StoreError::OutOfRange`].
//!
//! [`Store`]: super::Store

use sqlx::query::Query;
use sqlx::{Database, Encode, Type};

use crate::ledger::{Docket, DocketHeader, Hash, Mode, Role};

use super::{BanRow, PeerRow, RegisterRecord, StoreError, SubscriptionRecord};

/// A statement with its bound values.
pub(super) type Statement<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// Binds a peer's columns in table order (as `UPSERT_PEER` lists them).
pub(super) fn bind_peer<'q, DB>(p: &'q PeerRow, query: Statement<'q, DB>) -> Statement<'q, DB>
where
    DB: Database,
    for<'x> String: Encode<'x, DB> + Type<DB>,
    for<'x> Option<String>: Encode<'x, DB> + Type<DB>,
    for<'x> i64: Encode<'x, DB> + Type<DB>,
    for<'x> Option<i64>: Encode<'x, DB> + Type<DB>,
    for<'x> f64: Encode<'x, DB> + Type<DB>,
    for<'x> Option<f64>: Encode<'x, DB> + Type<DB>,
    for<'x> bool: Encode<'x, DB> + Type<DB>,
{
    query
        .bind(&p.peer_id)
        .bind(&p.public_key)
        .bind(&p.name)
        .bind(&p.address)
        .bind(p.first_seen_ms)
        .bind(p.last_seen_ms)
        .bind(p.is_seed)
        .bind(p.failure_count)
        .bind(p.total_requests)
        .bind(p.successful_requests)
        .bind(p.success_rate)
        .bind(p.avg_latency_ms)
        .bind(p.min_latency_ms)
        .bind(p.max_latency_ms)
        .bind(p.penalty)
        .bind(p.penalty_updated_ms)
        .bind(&p.last_penalty_reason)
        .bind(p.last_penalty_at_ms)
}

/// Binds a ban's columns in table order (as `INSERT_BAN` lists them).
pub(super) fn bind_ban<'q, DB>(ban: &'q BanRow, query: Statement<'q, DB>) -> Statement<'q, DB>
where
    DB: Database,
    for<'x> String: Encode<'x, DB> + Type<DB>,
    for<'x> i64: Encode<'x, DB> + Type<DB>,
    for<'x> Option<i64>: Encode<'x, DB> + Type<DB>,
{
    query
        .bind(&ban.target)
        .bind(&ban.kind)
        .bind(&ban.reason)
        .bind(&ban.source)
        .bind(ban.banned_at_ms)
        .bind(ban.expires_at_ms)
}

/// A register's row (see [`RegisterRecord`]).
#[derive(sqlx::FromRow)]
pub(super) struct RegisterRow {
    pub register_id: String,
    pub is_public: bool,
    pub role: String,
    pub origin_key: String,
    pub created_at_ms: i64,
    pub height: i64,
    pub head_hash: String,
    pub latest_version: i64,
    pub base_height: i64,
}

impl RegisterRow {
    pub(super) fn from_record(r: &RegisterRecord) -> Result<Self, StoreError> {
        Ok(RegisterRow {
            register_id: r.register_id.clone(),
            is_public: r.is_public,
            role: r.role.as_str().to_string(),
            origin_key: crate::ledger::to_hex(r.origin_key),
            created_at_ms: r.created_at_ms,
            height: to_column("register height", r.height)?,
            head_hash: crate::ledger::to_hex(r.head_hash),
            latest_version: to_column("register version", r.latest_version)?,
            base_height: to_column("register base height", r.base_height)?,
        })
    }

    /// Binds the columns in table order (as `UPSERT_REGISTER` lists them).
    pub(super) fn bind<'q, DB>(&'q self, query: Statement<'q, DB>) -> Statement<'q, DB>
    where
        DB: Database,
        for<'x> String: Encode<'x, DB> + Type<DB>,
        for<'x> i64: Encode<'x, DB> + Type<DB>,
        for<'x> bool: Encode<'x, DB> + Type<DB>,
    {
        query
            .bind(&self.register_id)
            .bind(self.is_public)
            .bind(&self.role)
            .bind(&self.origin_key)
            .bind(self.created_at_ms)
            .bind(self.height)
            .bind(&self.head_hash)
            .bind(self.latest_version)
            .bind(self.base_height)
    }

    pub(super) fn into_record(self) -> Result<RegisterRecord, StoreError> {
        let role = Role::parse(&self.role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown role '{}'", self.role)))?;
        Ok(RegisterRecord {
            is_public: self.is_public,
            role,
            origin_key: hash_from_hex(&self.origin_key)?,
            created_at_ms: self.created_at_ms,
            height: from_column("register height", self.height)?,
            head_hash: hash_from_hex(&self.head_hash)?,
            latest_version: from_column("register version", self.latest_version)?,
            base_height: from_column("register base height", self.base_height)?,
            register_id: self.register_id,
        })
    }
}

/// A docket's row: its header, its hash and its signature.
#[derive(sqlx::FromRow)]
pub(super) struct DocketRow {
    pub register_id: String,
    pub number: i64,
    pub previous_hash: String,
    pub merkle_root: String,
    pub tx_count: i64,
    pub first_version: i64,
    pub sealed_at_ms: i64,
    pub hash: String,
    pub signature: String,
}

impl DocketRow {
    pub(super) fn from_docket(d: &Docket) -> Result<Self, StoreError> {
        let h = &d.header;
        Ok(DocketRow {
            register_id: h.register_id.clone(),
            number: to_column("docket number", h.number)?,
            previous_hash: crate::ledger::to_hex(h.previous_hash),
            merkle_root: crate::ledger::to_hex(h.merkle_root),
            tx_count: i64::from(h.tx_count),
            first_version: to_column("docket first version", h.first_version)?,
            sealed_at_ms: h.sealed_at_ms,
            hash: crate::ledger::to_hex(h.hash()),
            signature: crate::ledger::to_hex(&d.signature),
        })
    }

    /// Binds the columns in table order (as `INSERT_DOCKET` lists them).
    pub(super) fn bind<'q, DB>(&'q self, query: Statement<'q, DB>) -> Statement<'q, DB>
    where
        DB: Database,
        for<'x> String: Encode<'x, DB> + Type<DB>,
        for<'x> i64: Encode<'x, DB> + Type<DB>,
    {
        query
            .bind(&self.register_id)
            .bind(self.number)
            .bind(&self.previous_hash)
            .bind(&self.merkle_root)
            .bind(self.tx_count)
            .bind(self.first_version)
            .bind(self.sealed_at_ms)
            .bind(&self.hash)
            .bind(&self.signature)
    }

    pub(super) fn into_docket(self) -> Result<Docket, StoreError> {
        Ok(Docket {
            header: DocketHeader {
                number: from_column("docket number", self.number)?,
                previous_hash: hash_from_hex(&self.previous_hash)?,
                merkle_root: hash_from_hex(&self.merkle_root)?,
                tx_count: u32::try_from(self.tx_count).map_err(|_| {
                    StoreError::Corrupt(format!("docket transaction count {}", self.tx_count))
                })?,
                first_version: from_column("docket first version", self.first_version)?,
                sealed_at_ms: self.sealed_at_ms,
                register_id: self.register_id,
            },
            signature: hex::decode(&self.signature)
                .map_err(|e| StoreError::Corrupt(format!("docket signature: {e}")))?,
        })
    }
}

/// A subscription's row (see [`SubscriptionRecord`]).
#[derive(sqlx::FromRow)]
pub(super) struct SubscriptionRow {
    pub register_id: String,
    pub mode: String,
    pub created_at_ms: i64,
}

impl SubscriptionRow {
    pub(super) fn from_record(s: &SubscriptionRecord) -> Self {
        SubscriptionRow {
            register_id: s.register_id.clone(),
            mode: s.mode.as_str().to_string(),
            created_at_ms: s.created_at_ms,
        }
    }

    pub(super) fn into_record(self) -> Result<SubscriptionRecord, StoreError> {
        let mode = Mode::parse(&self.mode).ok_or_else(|| {
            StoreError::Corrupt(format!("unknown subscription mode '{}'", self.mode))
        })?;
        Ok(SubscriptionRecord {
            register_id: self.register_id,
            mode,
            created_at_ms: self.created_at_ms,
        })
    }
}

/// A 32-byte value (hash or key) from its hex column.
pub(super) fn hash_from_hex(text: &str) -> Result<Hash, StoreError> {
    crate::ledger::hash_from_hex(text)
        .ok_or_else(|| StoreError::Corrupt(format!("'{text}' is not a 32-byte hex value")))
}

/// A domain number for a signed 64-bit column.
pub(super) fn to_column(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// A signed 64-bit column back to its domain number.
pub(super) fn from_column(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docket() -> Docket {
        Docket {
            header: DocketHeader {
                register_id: "reg".into(),
                number: 3,
                previous_hash: [1; 32],
                merkle_root: [2; 32],
                tx_count: 4,
                first_version: 9,
                sealed_at_ms: 1234,
            },
            signature: vec![7; 64],
        }
    }

    #[test]
    fn a_docket_maps_to_its_row_and_back() {
        let d = docket();
        let row = DocketRow::from_docket(&d).expect("row");
        assert_eq!(row.hash, hex::encode(d.header.hash()));
        assert_eq!(row.into_docket().expect("docket"), d);
    }

    #[test]
    fn numbers_that_do_not_fit_are_errors_not_wraps() {
        let mut d = docket();
        d.header.number = u64::MAX;
        assert!(matches!(
            DocketRow::from_docket(&d),
            Err(StoreError::OutOfRange {
                value: u64::MAX,
                ..
            })
        ));
        let mut row = DocketRow::from_docket(&docket()).expect("row");
        row.first_version = -1;
        assert!(matches!(row.into_docket(), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn unknown_names_and_bad_hex_are_corrupt() {
        let row = RegisterRow {
            register_id: "reg".into(),
            is_public: true,
            role: "emperor".into(),
            origin_key: hex::encode([3; 32]),
            created_at_ms: 0,
            height: 0,
            head_hash: hex::encode([4; 32]),
            latest_version: 0,
            base_height: 0,
        };
        assert!(matches!(row.into_record(), Err(StoreError::Corrupt(m)) if m.contains("emperor")));
        assert!(hash_from_hex("abcd").is_err());
        let sub = SubscriptionRow {
            register_id: "reg".into(),
            mode: "sometimes".into(),
            created_at_ms: 0,
        };
        assert!(matches!(sub.into_record(), Err(StoreError::Corrupt(_))));
    }
}
