//! A session's start: the new peer is told this node's pending transactions of the registers
//! it carries. An announcement lost with an earlier session (the peer crashed, or a partition
//! cut the link) would otherwise be repeated only at the next `reannounce_interval`, so an
//! acknowledged transaction could wait that long to reach its origin.

use std::sync::Arc;

use super::{Gossip, QUEUE_BATCH};

impl Gossip {
    /// The peer's first advertisement in a session named the `registers` it carries.
    pub fn session_started(self: &Arc<Self>, peer: &str, registers: Vec<String>) {
        let (gossip, peer) = (self.clone(), peer.to_string());
        self.tasks.spawn(async move {
            for register in registers {
                match gossip
                    .pool
                    .pending_for_new_session(&register, QUEUE_BATCH as i64)
                    .await
                {
                    Ok(ids) if !ids.is_empty() => gossip.announce(&peer, &register, &ids),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        %peer,
                        %register,
                        "cannot read the pending transactions to announce to a new session: {e}"
                    ),
                }
            }
        });
    }
}
