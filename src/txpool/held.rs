//! What the register holds, answered from memory where it can be: the recent set knows what
//! was stored a moment ago exactly, the seen-set's "no" is certain, and only a "maybe" costs a
//! store query. Gossip asks by whole or short ID (announcements, pulls it serves); replication
//! by whole ID (pushed dockets).

use std::collections::{HashMap, HashSet};

use super::{TxPool, TxPoolError};
use crate::ledger::{ShortId, hash_from_hex, short_id, to_hex};
use crate::protocol::TxRef;
use crate::store::StoreError;

impl TxPool {
    /// Payloads of the given transactions (hex IDs) that the register holds, as
    /// (tx_id, payload), each once.
    pub async fn payloads(
        &self,
        register_id: &str,
        tx_ids: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, TxPoolError> {
        let whole: Vec<Option<[u8; 32]>> = tx_ids.iter().map(|id| hash_from_hex(id)).collect();
        let found = self.payloads_of(register_id, &whole).await?;
        let mut named = HashSet::with_capacity(tx_ids.len());
        Ok((tx_ids.iter().zip(found))
            .filter_map(|(id, payload)| Some((id, payload?)))
            .filter(|(id, _)| named.insert(id.as_str()))
            .map(|(id, payload)| (id.clone(), payload))
            .collect())
    }

    /// The payload of each of `ids` the register holds (`None`: not held, or no ID): those
    /// stored a moment ago from memory, the rest in one query.
    pub async fn payloads_of(
        &self,
        register_id: &str,
        ids: &[Option<[u8; 32]>],
    ) -> Result<Vec<Option<Vec<u8>>>, TxPoolError> {
        let mut out = self.recent_payloads.get(register_id, ids);
        let (at, rest): (Vec<usize>, Vec<String>) = (ids.iter().zip(&out).enumerate())
            .filter_map(|(i, (id, kept))| match (id, kept) {
                (Some(id), None) => Some((i, to_hex(id))),
                _ => None,
            })
            .unzip();
        if rest.is_empty() {
            return Ok(out);
        }
        let stored: HashMap<String, Vec<u8>> = (self.store.payloads_by_id(register_id, &rest))
            .await?
            .into_iter()
            .collect();
        for (i, hex) in at.into_iter().zip(&rest) {
            out[i] = stored.get(hex).cloned();
        }
        Ok(out)
    }

    /// `peer` announced `ids` of `register_id`. Those stored here recently are known held
    /// without the store: they are taken out of `ids` and `peer` is noted as holding them, so
    /// a queued announcement of them is not sent back to it. What is left may be new.
    pub fn announced_by(&self, register_id: &str, ids: &mut Vec<TxRef>, peer: &str) -> usize {
        let known = self.recent.take_known(register_id, ids);
        if !known.is_empty() {
            self.queue.note_holder(register_id, &known, peer);
        }
        known.len()
    }

    /// Whether every one of `ids` was stored here recently and is still pending, known without
    /// the store; `false` says nothing (ask [`TxPool::pending_among`]).
    pub fn known_pending(&self, register_id: &str, ids: &[[u8; 32]]) -> bool {
        self.recent.all_pending(register_id, ids)
    }

    /// Which of `ids` (hex) the register holds as pending, in one query.
    pub async fn pending_among(
        &self,
        register_id: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, TxPoolError> {
        Ok(self.store.pending_among(register_id, ids).await?)
    }

    /// Which of `ids` the register holds (pending or sealed). One stored here recently is
    /// known exactly; otherwise the seen-set's "no" is reliable, and a "maybe" is confirmed
    /// against the store, in one query.
    pub async fn held_among(
        &self,
        register_id: &str,
        ids: &[[u8; 32]],
    ) -> Result<HashSet<[u8; 32]>, TxPoolError> {
        let mut held = HashSet::new();
        let mut maybe = Vec::new();
        for id in ids {
            if self.recent.contains(register_id, id) {
                held.insert(*id);
            } else if self.seen.maybe_contains(id) {
                maybe.push(*id);
            }
        }
        held.extend(self.stored_among(register_id, &maybe).await?);
        Ok(held)
    }

    /// Which of `ids` the store holds, in one query (none asked: no query).
    async fn stored_among(
        &self,
        register_id: &str,
        ids: &[[u8; 32]],
    ) -> Result<Vec<[u8; 32]>, TxPoolError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let hex_ids: Vec<String> = ids.iter().map(to_hex).collect();
        let stored = self
            .store
            .existing_transactions(register_id, &hex_ids)
            .await?;
        Ok((ids.iter().zip(&hex_ids))
            .filter(|(_, h)| stored.contains(*h))
            .map(|(id, _)| *id)
            .collect())
    }

    /// Which of `refs` the register holds, each by its short ID, as [`held_among`]
    /// (Self::held_among) decides for whole IDs. A short ID not stored here recently is looked
    /// up as a prefix of the primary key, one query each: that is a transaction the seen-set
    /// says may be here and the recent set has let go, which is rare.
    pub async fn held_refs(
        &self,
        register_id: &str,
        refs: &[TxRef],
    ) -> Result<HashSet<ShortId>, TxPoolError> {
        let mut held = HashSet::new();
        let mut whole = Vec::new();
        for (r, known) in refs.iter().zip(self.recent.whole_ids(register_id, refs)) {
            if known.is_some() {
                held.insert(r.short());
            } else if self.seen.maybe_contains_short(&r.short()) {
                match r {
                    TxRef::Full(id) => whole.push(*id),
                    TxRef::Short(short) => {
                        if !self.with_short_id(register_id, short).await?.is_empty() {
                            held.insert(*short);
                        }
                    }
                }
            }
        }
        // Already past the recent set and the seen-set: only the store is left to ask.
        held.extend(
            (self.stored_among(register_id, &whole).await?)
                .iter()
                .map(short_id),
        );
        Ok(held)
    }

    /// The whole ID of each of `refs` the register holds, for serving a pull: from the recent
    /// set, else (a short ID) the store's IDs with that prefix. A whole ID is taken as it is
    /// (the payload look-up that follows says whether it is here).
    pub async fn whole_ids(
        &self,
        register_id: &str,
        refs: &[TxRef],
    ) -> Result<Vec<Option<[u8; 32]>>, TxPoolError> {
        let mut out = self.recent.whole_ids(register_id, refs);
        for (r, found) in refs.iter().zip(out.iter_mut()) {
            if found.is_none() {
                *found = match r {
                    TxRef::Full(id) => Some(*id),
                    TxRef::Short(short) => self
                        .with_short_id(register_id, short)
                        .await?
                        .first()
                        .copied(),
                };
            }
        }
        Ok(out)
    }

    /// The stored IDs that start with `short` (two only if someone found a collision).
    async fn with_short_id(
        &self,
        register_id: &str,
        short: &ShortId,
    ) -> Result<Vec<[u8; 32]>, TxPoolError> {
        let ids = self
            .store
            .transaction_ids_with_prefix(register_id, &to_hex(short), 2)
            .await?;
        ids.iter()
            .map(|id| {
                hash_from_hex(id).ok_or_else(|| {
                    StoreError::Corrupt(format!("transaction ID '{id}' is not 64 hex digits"))
                        .into()
                })
            })
            .collect()
    }
}
