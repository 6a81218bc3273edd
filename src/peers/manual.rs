//! Dials an operator asked for (`peers connect`): who is waiting for the outcome of a dial to
//! an address. The dialler reports every dial's end to the manager (connected, failed,
//! abandoned); the manager settles the waiters of that address here.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Most addresses with an operator's dial in progress at once.
pub(crate) const MAX_MANUAL_DIALS: usize = 16;

/// How a dial ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialOutcome {
    /// A session with this peer ID is open.
    Connected(String),
    /// The connection or the handshake failed, for this reason.
    Failed(String),
    /// Dropped without fault: the peer turned out to be connected already (under another
    /// address) or to be this node itself.
    Abandoned,
}

/// Waiters by dialled address.
#[derive(Default)]
pub(super) struct ManualDials {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<DialOutcome>>>>,
}

impl ManualDials {
    /// Waits for the end of the next dial to `address`; `None` when [`MAX_MANUAL_DIALS`]
    /// other addresses are being waited for.
    pub(super) fn watch(&self, address: &str) -> Option<oneshot::Receiver<DialOutcome>> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // Waiters that gave up (timed out) leave nothing behind.
        waiting.retain(|_, senders| {
            senders.retain(|s| !s.is_closed());
            !senders.is_empty()
        });
        if !waiting.contains_key(address) && waiting.len() >= MAX_MANUAL_DIALS {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiting.entry(address.to_string()).or_default().push(tx);
        Some(rx)
    }

    /// A dial to `address` ended.
    pub(super) fn settle(&self, address: &str, outcome: DialOutcome) {
        let senders = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(address);
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_of_an_address_hear_how_its_dial_ended() {
        let dials = ManualDials::default();
        let mut first = dials.watch("10.0.0.1:5000").expect("room");
        let mut second = dials.watch("10.0.0.1:5000").expect("room");
        let mut other = dials.watch("10.0.0.2:5000").expect("room");
        dials.settle("10.0.0.1:5000", DialOutcome::Connected("ab".into()));
        assert_eq!(first.try_recv(), Ok(DialOutcome::Connected("ab".into())));
        assert_eq!(second.try_recv(), Ok(DialOutcome::Connected("ab".into())));
        assert!(
            other.try_recv().is_err(),
            "another address is still waiting"
        );
    }

    #[test]
    fn at_most_so_many_addresses_are_waited_for_and_abandoned_waits_free_their_place() {
        let dials = ManualDials::default();
        let receivers: Vec<_> = (0..MAX_MANUAL_DIALS)
            .map(|i| dials.watch(&format!("10.0.0.{i}:5000")).expect("room"))
            .collect();
        assert!(dials.watch("10.9.9.9:5000").is_none());
        assert!(
            dials.watch("10.0.0.0:5000").is_some(),
            "an address already waited for"
        );
        drop(receivers);
        assert!(dials.watch("10.9.9.9:5000").is_some());
    }
}
