//! Transactions submitted to the registers held here, and looking one up by its ID or a unique
//! prefix of it. A transaction's ID is the hash of its payload, so the same payload submitted
//! twice is stored once; the second submission is told what became of the first.

use super::{BatchError, RegisterError, Registers, TxView};
use crate::store::StoreError;

/// Fewest hex characters of a transaction ID that `transaction` takes as a prefix: fewer
/// would match many transactions of a large register.
pub const MIN_TX_PREFIX: usize = 8;
/// Most matches an ambiguous transaction-ID prefix lists.
const MAX_TX_CANDIDATES: usize = 5;
/// Length of a full transaction ID (SHA-256, hex).
const TX_ID_LEN: usize = 64;

/// A transaction submitted at this node.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub tx_id: String,
    /// The transaction was held already (pending or sealed, as shown): nothing was stored.
    pub existing: Option<TxView>,
}

/// Accepted transactions of a batch.
#[derive(Clone, Debug)]
pub struct SubmittedBatch {
    /// Their IDs, in submission order.
    pub ids: Vec<String>,
    /// How many were held already (stored once, nothing changed for them).
    pub already_held: usize,
    /// For each ID, in the same order: `None` when this submission stored it, else where the
    /// transaction held already stands (`Held::pending` for one given twice in the batch).
    pub held: Vec<Option<Held>>,
}

/// Where a transaction held already stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Set once sealed.
    pub version: Option<u64>,
    pub docket_number: Option<u64>,
}

impl Registers {
    /// Accepts a transaction at this node (origin or replica): stored as pending and queued
    /// for gossip, which carries it to the origin for sealing. A payload held already (pending
    /// or sealed) is not stored again; the answer says where it stands.
    pub async fn submit(
        &self,
        register_id: &str,
        payload: Vec<u8>,
    ) -> Result<Submitted, RegisterError> {
        let batch = self
            .submit_many(register_id, vec![payload])
            .await
            .map_err(|e| e.error)?;
        let tx_id = batch
            .ids
            .into_iter()
            .next()
            .ok_or_else(|| RegisterError::Invalid("no transaction given".into()))?;
        let existing = if batch.already_held > 0 {
            Some(self.transaction(register_id, &tx_id).await?)
        } else {
            None
        };
        Ok(Submitted { tx_id, existing })
    }

    /// Accepts many transactions: every payload is checked first (a bad one stores nothing),
    /// then the transaction pool stores them in chunks, each in its own database transaction
    /// (see [`crate::txpool::TxPool::accept_local`]). Returns the IDs in order; on a failure
    /// part-way, [`BatchError::stored`] names what was stored.
    pub async fn submit_many(
        &self,
        register_id: &str,
        payloads: Vec<Vec<u8>>,
    ) -> Result<SubmittedBatch, BatchError> {
        for p in &payloads {
            self.check_size(p)?;
        }
        if !self.chain.holds(register_id) {
            return Err(RegisterError::NotFound(format!(
                "this node does not carry register '{register_id}'"
            ))
            .into());
        }
        // Which are held already, asked before storing: afterwards every one is.
        let hashes: Vec<[u8; 32]> = payloads.iter().map(|p| crate::ledger::tx_hash(p)).collect();
        let held_before = self
            .pool
            .held_among(register_id, &hashes)
            .await
            .map_err(RegisterError::from)?;
        let accepted = self
            .pool
            .accept_local(register_id, payloads)
            .await
            .map_err(|e| BatchError {
                stored: e.stored,
                error: e.error.into(),
            })?;
        let mut given = std::collections::HashSet::with_capacity(hashes.len());
        let mut held = Vec::with_capacity(hashes.len());
        for (hash, id) in hashes.iter().zip(&accepted.ids) {
            let again = !given.insert(*hash);
            held.push(if held_before.contains(hash) {
                let tx = self
                    .store
                    .transaction(register_id, id)
                    .await
                    .map_err(|e| BatchError {
                        stored: accepted.ids.clone(),
                        error: e.into(),
                    })?;
                Some(tx.map_or_else(Held::default, |tx| Held {
                    version: tx.version,
                    docket_number: tx.docket_number,
                }))
            } else if again {
                Some(Held::default())
            } else {
                None
            });
        }
        Ok(SubmittedBatch {
            ids: accepted.ids,
            already_held: accepted.already_held,
            held,
        })
    }

    /// A transaction's state, by its ID or a unique prefix of it (at least [`MIN_TX_PREFIX`]
    /// hex characters).
    pub async fn transaction(
        &self,
        register_id: &str,
        tx_id: &str,
    ) -> Result<TxView, RegisterError> {
        if !self.chain.holds(register_id) {
            return Err(RegisterError::NotFound(format!(
                "this node does not carry register '{register_id}'"
            )));
        }
        let tx_id = self.resolve_tx_id(register_id, tx_id).await?;
        match self.store.transaction(register_id, &tx_id).await? {
            Some(tx) => Ok(tx_view(register_id, tx)),
            None => Err(RegisterError::NotFound(format!(
                "no transaction {tx_id} in '{register_id}'"
            ))),
        }
    }

    /// Whether the register holds the transaction with this ID (pending or sealed), through
    /// the pool's seen-set and the store.
    pub async fn holds_transaction(
        &self,
        register_id: &str,
        id: &[u8; 32],
    ) -> Result<bool, RegisterError> {
        Ok(!self.pool.held_among(register_id, &[*id]).await?.is_empty())
    }

    /// Whether a peer is being asked for this transaction right now (gossip's claims).
    pub fn is_fetching(&self, id: &[u8; 32]) -> bool {
        self.pool.is_claimed(id)
    }

    /// The transactions of `tx_ids` (full IDs) the register holds, pending or sealed, with
    /// their payloads, in the order asked; IDs not held are left out.
    pub async fn transactions_with_payloads(
        &self,
        register_id: &str,
        tx_ids: &[String],
    ) -> Result<Vec<(TxView, Vec<u8>)>, RegisterError> {
        if !self.chain.holds(register_id) {
            return Err(RegisterError::NotFound(format!(
                "this node does not carry register '{register_id}'"
            )));
        }
        let mut payloads: std::collections::HashMap<String, Vec<u8>> = self
            .pool
            .payloads(register_id, tx_ids)
            .await?
            .into_iter()
            .collect();
        let mut out = Vec::with_capacity(payloads.len());
        for id in tx_ids {
            let Some(payload) = payloads.remove(id) else {
                continue;
            };
            if let Some(tx) = self.store.transaction(register_id, id).await? {
                out.push((tx_view(register_id, tx), payload));
            }
        }
        Ok(out)
    }

    /// The number of the docket that holds transaction version `version`, when it is held
    /// here (a binary search over docket headers: a few reads however long the chain).
    pub async fn docket_holding_version(
        &self,
        register_id: &str,
        version: u64,
    ) -> Result<Option<u64>, StoreError> {
        let Some(held) = self.chain.get(register_id) else {
            return Ok(None);
        };
        if version <= held.base_version || version > held.latest_version() {
            return Ok(None);
        }
        // Versions after the base are in the dockets after the base (or the genesis).
        let (mut lo, mut hi) = (held.base_height + 1, held.head.number);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some(docket) = self.chain.dockets(register_id, mid, 1).await?.pop() else {
                return Ok(None);
            };
            let header = &docket.header;
            if header.first_version + u64::from(header.tx_count) > version {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(Some(lo))
    }

    /// The full ID `text` means: itself when it is one, else the one transaction of the
    /// register whose ID starts with it.
    async fn resolve_tx_id(&self, register_id: &str, text: &str) -> Result<String, RegisterError> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() || text.len() > TX_ID_LEN || !text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(RegisterError::Invalid(format!(
                "'{text}' is not a transaction ID ({TX_ID_LEN} hex characters, or a unique \
                 prefix of at least {MIN_TX_PREFIX})"
            )));
        }
        if text.len() == TX_ID_LEN {
            return Ok(text);
        }
        if text.len() < MIN_TX_PREFIX {
            return Err(RegisterError::Invalid(format!(
                "'{text}' is too short: give at least {MIN_TX_PREFIX} hex characters of the \
                 transaction ID"
            )));
        }
        let ids = self
            .store
            .transaction_ids_with_prefix(register_id, &text, MAX_TX_CANDIDATES as i64 + 1)
            .await?;
        choose(register_id, &text, ids)
    }
}

/// The one ID among those starting with `prefix` (at most `MAX_TX_CANDIDATES + 1` of them,
/// in order): none is not found, several are ambiguous and listed.
fn choose(register_id: &str, prefix: &str, mut ids: Vec<String>) -> Result<String, RegisterError> {
    match ids.len() {
        0 => Err(RegisterError::NotFound(format!(
            "no transaction in '{register_id}' starts with {prefix}"
        ))),
        1 => Ok(ids.remove(0)),
        n => {
            let shown = prefix.len() + 8;
            let listed: Vec<&str> = ids
                .iter()
                .take(MAX_TX_CANDIDATES)
                .map(|id| id.get(..shown).unwrap_or(id))
                .collect();
            let (count, more) = if n > MAX_TX_CANDIDATES {
                (format!("more than {MAX_TX_CANDIDATES}"), ", ...")
            } else {
                (n.to_string(), "")
            };
            Err(RegisterError::Invalid(format!(
                "'{prefix}' matches {count} transactions in '{register_id}': {}{more}; give \
                 more characters",
                listed.join(", ")
            )))
        }
    }
}

/// What the operator sees of a stored transaction.
fn tx_view(register_id: &str, tx: crate::store::TxRecord) -> TxView {
    TxView {
        register_id: register_id.to_string(),
        tx_id: tx.tx_id,
        size: tx.size,
        received_at_ms: tx.received_at_ms,
        version: tx.version,
        docket_number: tx.docket_number,
    }
}

#[cfg(test)]
mod tests {
    use super::{RegisterError, choose};

    #[test]
    fn a_prefix_is_one_transaction_or_an_error_listing_them() {
        let id = |c: char| format!("abcdef01{}", c.to_string().repeat(56));
        assert_eq!(
            choose("r", "abcdef01", vec![id('1')]).expect("unique"),
            id('1')
        );
        assert!(matches!(
            choose("r", "abcdef01", Vec::new()),
            Err(RegisterError::NotFound(_))
        ));
        match choose("r", "abcdef01", vec![id('1'), id('2')]) {
            Err(RegisterError::Invalid(text)) => {
                assert!(text.contains("matches 2 transactions"), "{text}");
                assert!(
                    text.contains("abcdef0111111111, abcdef0122222222"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        let many: Vec<String> = "123456".chars().map(id).collect();
        match choose("r", "abcdef01", many) {
            Err(RegisterError::Invalid(text)) => {
                assert!(text.contains("more than 5"), "{text}");
                assert!(text.contains(", ...; give more characters"), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
}
