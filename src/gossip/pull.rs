//! One pull: the transactions claimed for one request, asked of one peer and stored as they
//! arrive. Each step settles what it can: held already, refused or unanswered, served wrong,
//! stored. Only a local storage failure is an error; the rest is the peer's or nobody's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::{Gossip, UNANSWERED_PENALTY, UNSERVED_PENALTY};
use crate::ledger::{self, ShortId, short_id};
use crate::peers::PeerState;
use crate::protocol::{PeerRequest, PeerResponse, RequestError, ServedTransactions, TxRef};
use crate::txpool::{Holders, TxPoolError};

/// How the transactions of one request ended.
#[derive(Default)]
pub(super) struct Settled {
    /// Stored now, or found already here.
    pub delivered: Vec<ShortId>,
    /// Not delivered by this peer: the next announcer is asked.
    pub failed: Vec<ShortId>,
    /// The peer missed, refused or timed out (rather than a local storage failure).
    pub peer_at_fault: bool,
}

impl Settled {
    /// The whole request failed at the peer: each transaction goes to the next announcer.
    fn peer_failed(mut self, wanted: &[TxRef]) -> Settled {
        self.failed = wanted.iter().map(TxRef::short).collect();
        self.peer_at_fault = true;
        self
    }
}

/// What a peer served, checked against what was asked.
struct Checked {
    /// (hex ID, payload) of each good one, once.
    good: Vec<(String, Vec<u8>)>,
    good_ids: Vec<ShortId>,
    /// Asked for and not served (said missing or not).
    unserved: Vec<ShortId>,
}

impl Gossip {
    /// Pulls claimed transactions this node does not have yet from `peer`, within
    /// `gossip_request_timeout`, and stores what it served. `Err` only for local storage
    /// failures (the transactions wait and are requested again).
    pub(super) async fn pull_claimed(
        &self,
        peer: &str,
        register_id: &str,
        claimed: &[TxRef],
    ) -> Result<Settled, TxPoolError> {
        let mut settled = Settled::default();
        let held = self.pool.held_refs(register_id, claimed).await?;
        let mut wanted = Vec::with_capacity(claimed.len());
        for id in claimed {
            if held.contains(&id.short()) {
                self.metrics.gossip_duplicates_avoided.inc();
                settled.delivered.push(id.short());
            } else {
                wanted.push(*id);
            }
        }
        if wanted.is_empty() {
            return Ok(settled);
        }
        let served = match self.ask(peer, register_id, &wanted).await {
            Some(served) => served,
            None => return Ok(settled.peer_failed(&wanted)),
        };
        let checked = self.check_served(peer, &wanted, served).await;
        if !checked.unserved.is_empty() {
            self.request_failed("missing", checked.unserved.len());
            self.peers.penalize(
                peer,
                UNSERVED_PENALTY,
                &format!(
                    "announced {} transaction(s) it then could not serve",
                    checked.unserved.len()
                ),
            );
            settled.peer_at_fault = true;
        }
        self.store_pulled(peer, register_id, checked, settled).await
    }

    /// Asks `peer` for `wanted` within the request timeout. `None` when it refused, answered
    /// something else or did not answer (counted, and penalised where the peer is at fault).
    async fn ask(
        &self,
        peer: &str,
        register_id: &str,
        wanted: &[TxRef],
    ) -> Option<ServedTransactions> {
        let timeout = self.config.gossip_request_timeout;
        let request = PeerRequest::Transactions {
            register_id: register_id.to_string(),
            tx_ids: wanted.to_vec(),
        };
        // The outer timeout also covers a session whose command queue is stuck.
        let answer = tokio::time::timeout(timeout, self.peers.request(peer, request, timeout))
            .await
            .unwrap_or_else(|_| {
                Err(RequestError::TimedOut {
                    peer: peer.to_string(),
                    timeout,
                })
            });
        match answer {
            Ok(PeerResponse::Transactions(Ok(served))) => Some(served),
            Ok(PeerResponse::Transactions(Err(refusal))) => {
                // Refused (rate limit, register gone there): not proof of bad faith, but the
                // next announcer is asked.
                self.request_failed("refused", wanted.len());
                tracing::debug!(peer = %peer, "transaction request refused: {refusal}");
                None
            }
            Ok(_) => {
                self.request_failed("refused", wanted.len());
                self.peers.penalize(
                    peer,
                    UNSERVED_PENALTY,
                    "answered a transaction request with something else",
                );
                None
            }
            Err(e) => {
                let connected = self
                    .peers
                    .get(peer)
                    .is_ok_and(|p| p.state == PeerState::Connected);
                if connected {
                    // The peer manager counted the failure; announcing and then not
                    // answering is worth a penalty on top.
                    self.request_failed("timeout", wanted.len());
                    self.peers.penalize(
                        peer,
                        UNANSWERED_PENALTY,
                        &format!(
                            "did not serve {} announced transaction(s) within {timeout:?}",
                            wanted.len()
                        ),
                    );
                } else {
                    self.request_failed("disconnected", wanted.len());
                }
                tracing::debug!(peer = %peer, "transaction request failed: {e}");
                None
            }
        }
    }

    /// Keeps each served payload that is one asked for (by the hash of its bytes: the whole ID
    /// where it was asked by that, else its short ID) and within `max_transaction_size`; a
    /// payload that is not what was announced is bad data.
    async fn check_served(
        &self,
        peer: &str,
        wanted: &[TxRef],
        served: ServedTransactions,
    ) -> Checked {
        let asked: HashMap<ShortId, &TxRef> = wanted.iter().map(|r| (r.short(), r)).collect();
        let mut good = Vec::with_capacity(served.payloads.len());
        let mut got: HashSet<ShortId> = HashSet::with_capacity(served.payloads.len());
        let mut good_ids = Vec::with_capacity(served.payloads.len());
        for payload in served.payloads {
            let id = ledger::tx_hash(&payload);
            let short = short_id(&id);
            let named = asked
                .get(&short)
                .is_some_and(|r| r.full().is_none_or(|whole| whole == id));
            if !named {
                self.peers
                    .verification_failed(
                        peer,
                        None,
                        "served a transaction payload that does not match its ID",
                    )
                    .await;
                continue;
            }
            if payload.len() > self.config.max_transaction_size {
                self.peers.penalize(
                    peer,
                    UNSERVED_PENALTY,
                    "served a transaction larger than max_transaction_size",
                );
                continue;
            }
            if got.insert(short) {
                good.push((crate::ledger::to_hex(id), payload));
                good_ids.push(short);
            }
        }
        let unserved = (wanted.iter())
            .map(TxRef::short)
            .filter(|id| !got.contains(id))
            .collect();
        Checked {
            good,
            good_ids,
            unserved,
        }
    }

    /// Stores the good payloads as pending, each with the peers known to hold it (every
    /// announcer, and the peer that served it), so none of them is told about it again.
    async fn store_pulled(
        &self,
        peer: &str,
        register_id: &str,
        checked: Checked,
        mut settled: Settled,
    ) -> Result<Settled, TxPoolError> {
        let Checked {
            good,
            good_ids,
            unserved,
        } = checked;
        self.metrics
            .gossip_payloads_pulled
            .inc_by(good.len() as u64);
        let holders: HashMap<String, Holders> = {
            let inner = self.lock();
            (good.iter().zip(&good_ids))
                .map(|((hex, _), id)| {
                    let mut peers = inner.tracker.announcers(register_id, id);
                    if !peers.iter().any(|p| &**p == peer) {
                        peers.push(Arc::from(peer));
                    }
                    (hex.clone(), Holders::from(peers))
                })
                .collect()
        };
        match self.pool.accept_gossiped(register_id, good, holders).await {
            Ok(stored) => {
                if stored > 0 {
                    self.metrics
                        .gossip_transactions_received
                        .get_or_create(&vec![("register", register_id.to_string())])
                        .inc_by(stored as u64);
                }
                settled.delivered.extend(good_ids);
            }
            Err(e) => {
                // Not the peer's fault: these are asked from the next announcer (or again
                // when re-announced); the peer is not charged.
                tracing::error!(register = %register_id, "cannot store gossiped transactions: {e}");
                self.request_failed("storage", good_ids.len());
                settled.failed.extend(good_ids);
            }
        }
        settled.failed.extend(unserved);
        Ok(settled)
    }
}
