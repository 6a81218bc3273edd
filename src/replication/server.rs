//! The docket server: what this node gives peers of the public registers it holds — batches of
//! dockets on request (within the batch limits), and new dockets pushed to the peers that
//! follow a register. Private and unknown registers get the same refusal: nothing about them
//! leaks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::MAX_BATCH_BYTES;
use super::chain::Chain;
use crate::config::Config;
use crate::ledger::{CompactDocket, Docket, DocketWithTransactions};
use crate::peers::PeerManager;
use crate::protocol::PeerMessage;
use crate::store::{Store, StoreError};
use crate::telemetry::Metrics;

/// Dockets whose payloads are read in one query while serving a batch.
const PAYLOAD_READ_DOCKETS: usize = 10;

/// A docket request this node refuses (the text goes back to the peer).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("register '{0}' is not available here")]
    Unavailable(String),
    #[error("this node holds '{register_id}' only from docket {first}")]
    NotHeldBefore { register_id: String, first: u64 },
    #[error("incomplete data for docket {0}")]
    Incomplete(u64),
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

pub(super) struct DocketServer {
    chain: Arc<Chain>,
    store: Arc<dyn Store>,
    config: Arc<Config>,
    peers: Arc<PeerManager>,
    metrics: Arc<Metrics>,
    /// Peers that asked for new dockets of a register to be pushed to them.
    followers: Mutex<HashMap<String, HashSet<String>>>,
}

impl DocketServer {
    pub(super) fn new(
        chain: Arc<Chain>,
        store: Arc<dyn Store>,
        config: Arc<Config>,
        peers: Arc<PeerManager>,
        metrics: Arc<Metrics>,
    ) -> DocketServer {
        DocketServer {
            chain,
            store,
            config,
            peers,
            metrics,
            followers: Mutex::new(HashMap::new()),
        }
    }

    fn followers(&self) -> MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.followers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Dockets `from..` of a public register for a peer, within the batch limits: at most
    /// `max` dockets (and `sync_batch_dockets`), and no more payload bytes than `max_bytes`
    /// (when not 0), `sync_batch_bytes` and [`MAX_BATCH_BYTES`] allow, except that the first
    /// docket is always sent. Payloads are read a few dockets at a time, so a batch cut short
    /// by its bytes reads little more than it sends.
    pub(super) async fn serve(
        &self,
        register_id: &str,
        from: u64,
        max: u32,
        headers_only: bool,
        max_bytes: u64,
    ) -> Result<Vec<DocketWithTransactions>, ServeError> {
        let Some(held) = self.chain.get(register_id).filter(|h| h.is_public) else {
            return Err(ServeError::Unavailable(register_id.to_string()));
        };
        self.read(held, from, max, headers_only, max_bytes).await
    }

    /// Dockets `from..` of any register held here, private ones too, within the same limits:
    /// for the platform listener, whose Register service owns the registers it asks for.
    pub(super) async fn serve_platform(
        &self,
        register_id: &str,
        from: u64,
        max: u32,
    ) -> Result<Vec<DocketWithTransactions>, ServeError> {
        let Some(held) = self.chain.get(register_id) else {
            return Err(ServeError::Unavailable(register_id.to_string()));
        };
        self.read(held, from, max, false, 0).await
    }

    async fn read(
        &self,
        held: super::chain::Held,
        from: u64,
        max: u32,
        headers_only: bool,
        max_bytes: u64,
    ) -> Result<Vec<DocketWithTransactions>, ServeError> {
        let register_id = held.head.register_id.as_str();
        let base = held.base_height;
        if !headers_only && from <= base && base > 0 {
            return Err(ServeError::NotHeldBefore {
                register_id: register_id.to_string(),
                first: base + 1,
            });
        }
        let limit = max.clamp(1, self.config.sync_batch_dockets.max(1)) as i64;
        let byte_limit = match usize::try_from(max_bytes) {
            Ok(0) | Err(_) => self.config.sync_batch_bytes,
            Ok(asked) => asked.min(self.config.sync_batch_bytes),
        }
        .min(MAX_BATCH_BYTES);
        let dockets = self.chain.dockets(register_id, from, limit).await?;
        let mut out = Vec::with_capacity(dockets.len());
        let mut bytes = 0usize;
        for chunk in dockets.chunks(PAYLOAD_READ_DOCKETS) {
            let with_txs: Vec<&Docket> = chunk.iter().filter(|d| d.header.tx_count > 0).collect();
            let mut payloads = match (headers_only, with_txs.first(), with_txs.last()) {
                (false, Some(first), Some(last)) => {
                    self.store
                        .payloads(
                            register_id,
                            first.header.first_version as i64,
                            last.header.last_version() as i64,
                        )
                        .await?
                }
                _ => Vec::new(),
            }
            .into_iter();
            for docket in chunk {
                let transactions: Vec<Vec<u8>> = if headers_only {
                    Vec::new()
                } else {
                    payloads
                        .by_ref()
                        .take(docket.header.tx_count as usize)
                        .collect()
                };
                if !headers_only && transactions.len() != docket.header.tx_count as usize {
                    return Err(ServeError::Incomplete(docket.header.number));
                }
                bytes += transactions.iter().map(Vec::len).sum::<usize>();
                if bytes > byte_limit && !out.is_empty() {
                    return Ok(out);
                }
                out.push(DocketWithTransactions {
                    origin_key: (docket.header.number == 0).then_some(held.origin_key),
                    docket: docket.clone(),
                    transactions,
                });
            }
        }
        Ok(out)
    }

    /// A peer wants (or no longer wants) new dockets of a public register pushed to it.
    /// Only held public registers get a follower set (a peer naming anything else creates
    /// nothing), and a set never holds more followers than the node has connections: when it
    /// is full, entries of peers that went away are dropped before the new one is refused.
    pub(super) fn set_follower(&self, peer_id: &str, register_id: &str, follow: bool) {
        if !(follow && self.chain.is_public(register_id)) {
            let mut followers = self.followers();
            if let Some(set) = followers.get_mut(register_id) {
                set.remove(peer_id);
                if set.is_empty() {
                    followers.remove(register_id);
                }
            }
            return;
        }
        if self.add_follower(peer_id, register_id, None) {
            return;
        }
        // Asked outside this lock: the peer manager has its own.
        let connected = self.peers.connected_ids();
        if !self.add_follower(peer_id, register_id, Some(&connected)) {
            self.metrics.limit_hit("followers");
        }
    }

    /// Follower entries over all registers (what peers' `Follow` frames make this node hold).
    pub(super) fn follower_entries(&self) -> usize {
        self.followers().values().map(HashSet::len).sum()
    }

    /// Adds a follower unless the register's set is full (after keeping only `connected`
    /// peers, when given). Returns whether the peer is now a follower.
    fn add_follower(
        &self,
        peer_id: &str,
        register_id: &str,
        connected: Option<&HashSet<String>>,
    ) -> bool {
        let limit = self.config.max_inbound + self.config.max_outbound;
        let mut followers = self.followers();
        let set = followers.entry(register_id.to_string()).or_default();
        if let Some(connected) = connected {
            set.retain(|id| connected.contains(id));
        }
        if set.contains(peer_id) || set.len() < limit {
            set.insert(peer_id.to_string());
            return true;
        }
        false
    }

    /// A register is no longer held here: nobody follows it.
    pub(super) fn forget(&self, register_id: &str) {
        self.followers().remove(register_id);
    }

    /// Pushes new dockets of a register to its followers; followers that are gone are dropped.
    pub(super) fn push(&self, register_id: &str, dockets: &[Arc<CompactDocket>]) {
        if dockets.is_empty() {
            return;
        }
        let followers: Vec<String> = self
            .followers()
            .get(register_id)
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default();
        let mut gone = Vec::new();
        for peer in followers {
            for docket in dockets {
                if !self.peers.send(&peer, PeerMessage::Push(docket.clone())) {
                    gone.push(peer);
                    break;
                }
            }
        }
        if !gone.is_empty()
            && let Some(set) = self.followers().get_mut(register_id)
        {
            for peer in gone {
                set.remove(&peer);
            }
        }
    }
}
