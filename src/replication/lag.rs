//! Replication lag against another node: how many dockets and transactions behind, and
//! whether the two chains agree at their common height or have forked.

use std::collections::HashMap;

use super::chain::Chain;
use crate::ledger::Hash;
use crate::protocol::RegisterHeight;
use crate::store::StoreError;

/// What a remote node reported about its public registers.
#[derive(Clone, Debug, Default)]
pub struct RemoteHeights {
    pub peer_id: String,
    pub registers: Vec<RegisterHeight>,
    /// Hash of the remote's docket at the height we asked about, per register.
    pub hashes: HashMap<String, (u64, Hash)>,
}

/// One register's lag.
#[derive(Clone, Debug, PartialEq)]
pub struct LagRow {
    pub register_id: String,
    pub local_version: u64,
    pub remote_version: u64,
    pub local_docket_version: u64,
    pub remote_docket_version: u64,
    pub transactions_behind: u64,
    pub dockets_behind: u64,
    pub diverged: bool,
    /// When diverged: the docket number at which the two chains were compared and differ
    /// (the lower of the two heads; the fork is there or before).
    pub diverged_at: Option<u64>,
    /// False when this node does not hold the register at all.
    pub held_locally: bool,
}

/// (register, height) pairs to ask the remote about: our head of every register we hold.
pub(super) fn queries(chain: &Chain) -> Vec<(String, u64)> {
    chain
        .all()
        .into_iter()
        .map(|h| (h.head.register_id, h.head.number))
        .collect()
}

/// Lag rows for every register the remote advertises (or just `only`).
pub(super) async fn rows(
    chain: &Chain,
    remote: &RemoteHeights,
    only: Option<&str>,
) -> Result<Vec<LagRow>, StoreError> {
    let mut rows = Vec::new();
    for r in remote
        .registers
        .iter()
        .filter(|r| only.is_none_or(|o| o == r.register_id))
    {
        let Some(held) = chain.get(&r.register_id) else {
            rows.push(LagRow {
                register_id: r.register_id.clone(),
                local_version: 0,
                remote_version: r.latest_version,
                local_docket_version: 0,
                remote_docket_version: r.height,
                transactions_behind: r.latest_version,
                dockets_behind: r.height,
                diverged: false,
                diverged_at: None,
                held_locally: false,
            });
            continue;
        };
        let local_height = held.head.number;
        let diverged = if local_height == r.height {
            held.head_hash != r.head_hash
        } else if local_height > r.height {
            // Compare our docket at their height with their head (when we hold it).
            // Public or not: lag is a local operator view.
            match chain.hash_at(&r.register_id, r.height).await? {
                Some(ours) => ours != r.head_hash,
                None => false,
            }
        } else {
            match remote.hashes.get(&r.register_id) {
                Some((h, theirs)) if *h == local_height => *theirs != held.head_hash,
                _ => false,
            }
        };
        let local_version = held.latest_version();
        rows.push(LagRow {
            register_id: r.register_id.clone(),
            local_version,
            remote_version: r.latest_version,
            local_docket_version: local_height,
            remote_docket_version: r.height,
            transactions_behind: r.latest_version.saturating_sub(local_version),
            dockets_behind: r.height.saturating_sub(local_height),
            diverged,
            diverged_at: diverged.then_some(local_height.min(r.height)),
            held_locally: true,
        });
    }
    rows.sort_by(|a, b| a.register_id.cmp(&b.register_id));
    Ok(rows)
}
