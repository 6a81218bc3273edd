//! The platform services listening for messages (`PeerCommunication.Stream`): each has a
//! bounded queue; one that does not keep up is dropped rather than slowing the relay or
//! holding memory, and told so when it reads to the end of its queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use super::{MAX_SUBSCRIBERS, Message, SUBSCRIBER_QUEUE};

/// One listener, as the platform edge holds it.
pub struct Subscription {
    receiver: mpsc::Receiver<Arc<Message>>,
    dropped: Arc<AtomicBool>,
}

impl Subscription {
    /// The next message; `None` once dropped (see [`Subscription::was_dropped`]).
    pub async fn recv(&mut self) -> Option<Arc<Message>> {
        self.receiver.recv().await
    }

    /// Whether it was dropped for not keeping up.
    pub fn was_dropped(&self) -> bool {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Listener {
    sender: mpsc::Sender<Arc<Message>>,
    dropped: Arc<AtomicBool>,
}

/// Every listener.
#[derive(Default)]
pub(crate) struct Subscribers {
    listeners: Vec<Listener>,
}

/// All [`MAX_SUBSCRIBERS`] places are taken.
#[derive(Debug, thiserror::Error)]
#[error("{MAX_SUBSCRIBERS} message streams are open already")]
pub struct Full;

impl Subscribers {
    pub(crate) fn subscribe(&mut self) -> Result<Subscription, Full> {
        self.listeners.retain(|l| !l.sender.is_closed());
        if self.listeners.len() >= MAX_SUBSCRIBERS {
            return Err(Full);
        }
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_QUEUE);
        let dropped = Arc::new(AtomicBool::new(false));
        self.listeners.push(Listener {
            sender,
            dropped: dropped.clone(),
        });
        Ok(Subscription { receiver, dropped })
    }

    /// Queues `message` for every listener; returns (delivered to, dropped as too slow).
    pub(crate) fn deliver(&mut self, message: &Arc<Message>) -> (usize, usize) {
        let (mut delivered, mut slow) = (0, 0);
        self.listeners
            .retain(|l| match l.sender.try_send(message.clone()) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    l.dropped.store(true, Ordering::Relaxed);
                    slow += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        (delivered, slow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Recipient;

    fn message() -> Arc<Message> {
        Arc::new(Message {
            origin: "a".repeat(32),
            nonce: 1,
            recipient: Recipient::All,
            message_type: 1,
            payload: vec![1, 2],
            timestamp_ms: 1,
            hops_left: 1,
            origin_key: [0; 32],
            signature: Vec::new(),
        })
    }

    #[tokio::test]
    async fn a_listener_that_does_not_keep_up_is_dropped_and_the_others_are_not() {
        let mut subs = Subscribers::default();
        let mut slow = subs.subscribe().expect("room");
        let mut quick = subs.subscribe().expect("room");
        let m = message();
        for _ in 0..SUBSCRIBER_QUEUE {
            assert_eq!(subs.deliver(&m), (2, 0));
            assert!(quick.recv().await.is_some());
        }
        assert_eq!(subs.deliver(&m), (1, 1), "the slow one's queue is full");
        assert!(quick.recv().await.is_some());
        let mut read = 0;
        while slow.recv().await.is_some() {
            read += 1;
        }
        assert_eq!(
            read, SUBSCRIBER_QUEUE,
            "what was queued is still read, then the end"
        );
        assert!(slow.was_dropped());
        assert!(!quick.was_dropped());
        assert_eq!(subs.deliver(&m), (1, 0));
    }

    #[test]
    fn listeners_are_bounded_and_closed_ones_give_their_place_back() {
        let mut subs = Subscribers::default();
        let held: Vec<Subscription> = (0..MAX_SUBSCRIBERS)
            .map(|_| subs.subscribe().expect("room"))
            .collect();
        assert!(subs.subscribe().is_err());
        drop(held);
        assert!(subs.subscribe().is_ok());
    }
}
