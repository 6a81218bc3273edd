//! Requests a session sent to its peer and not yet answered.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::protocol::PeerResponse;

/// A request waiting for the peer's answer.
pub(super) enum Pending {
    Dockets(oneshot::Sender<PeerResponse>),
    Transactions(oneshot::Sender<PeerResponse>),
    DialBack(oneshot::Sender<PeerResponse>),
}

impl Pending {
    /// Whether the asker gave up waiting (timed out or went away).
    fn abandoned(&self) -> bool {
        match self {
            Pending::Dockets(reply) | Pending::Transactions(reply) | Pending::DialBack(reply) => {
                reply.is_closed()
            }
        }
    }
}

/// Requests sent to the peer and not yet answered, by request ID. Requests their askers gave up
/// on are dropped at every heartbeat, so a peer that never answers cannot make the session
/// remember them without bound.
#[derive(Default)]
pub(super) struct PendingRequests {
    by_id: HashMap<u64, Pending>,
}

impl PendingRequests {
    pub(super) fn insert(&mut self, id: u64, pending: Pending) {
        self.by_id.insert(id, pending);
    }

    pub(super) fn take(&mut self, id: u64) -> Option<Pending> {
        self.by_id.remove(&id)
    }

    pub(super) fn drop_abandoned(&mut self) {
        self.by_id.retain(|_, p| !p.abandoned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_given_up_on_are_forgotten() {
        let mut pending = PendingRequests::default();
        let (kept_tx, _kept_rx) = oneshot::channel();
        let (gone_tx, gone_rx) = oneshot::channel();
        pending.insert(1, Pending::Dockets(kept_tx));
        pending.insert(2, Pending::Transactions(gone_tx));
        drop(gone_rx); // the asker timed out
        pending.drop_abandoned();
        assert_eq!(pending.by_id.len(), 1);
        assert!(pending.take(1).is_some());
        assert!(pending.take(2).is_none());
    }
}
