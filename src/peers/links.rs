//! The links: one entry per live peer session (its direction, where it came from, since when,
//! and the command queue into it), the rule that settles duplicate connections, and every way
//! of talking to a session: closing it, one-way sends, and requests awaiting an answer, which
//! fail with a typed [`RequestError`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::sync::{mpsc, oneshot};

use super::Direction;
use crate::protocol::{PeerMessage, PeerRequest, PeerResponse, Refusal, RequestError};

/// Commands a session accepts, queued per connection.
pub(super) const SESSION_COMMAND_QUEUE: usize = 16;

/// Whether a one-way message was queued for a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Queued {
    Yes,
    NotConnected,
    /// The session's command queue is at its bound ([`SESSION_COMMAND_QUEUE`]).
    Full,
}

/// What the node asks a live session to do.
#[derive(Debug)]
pub enum SessionCommand {
    /// Send our peer list and ask for theirs.
    ExchangePeers,
    /// Say goodbye with this reason and close.
    Close(String),
    /// Send a one-way message.
    Send(PeerMessage),
    /// Send a request and deliver the peer's answer to `reply`.
    Request {
        request: PeerRequest,
        reply: oneshot::Sender<PeerResponse>,
    },
}

/// What a session needs once registered.
pub struct SessionHandle {
    pub conn_id: u64,
    pub commands: mpsc::Receiver<SessionCommand>,
    /// The peer speaks short transaction IDs.
    pub short_ids: bool,
}

/// What the links know of one connection.
#[derive(Clone, Copy, Debug)]
pub(super) struct LinkInfo {
    pub direction: Direction,
    pub remote_ip: IpAddr,
    pub connected_at_ms: i64,
    /// The peer carries platform messages (it said so in the handshake).
    pub platform_messages: bool,
    /// The peer speaks short transaction IDs (it said so in the handshake).
    pub short_ids: bool,
}

struct Connection {
    conn_id: u64,
    info: LinkInfo,
    /// Peer ID of the side that dialled, used to settle duplicate connections the same way on
    /// both ends.
    dialer_id: String,
    commands: mpsc::Sender<SessionCommand>,
}

impl Connection {
    /// Asks the session to close; a full command queue means it is stuck, so the cancel path
    /// of the session cleans up when its stream ends anyway.
    fn close(&self, reason: String) {
        if let Err(e) = self.commands.try_send(SessionCommand::Close(reason)) {
            tracing::warn!(conn = self.conn_id, "could not ask session to close: {e}");
        }
    }
}

/// The connection registry, by peer ID.
#[derive(Default)]
pub(super) struct Links {
    connections: HashMap<String, Connection>,
    next_conn_id: u64,
}

impl Links {
    pub(super) fn len(&self) -> usize {
        self.connections.len()
    }

    pub(super) fn is_connected(&self, peer_id: &str) -> bool {
        self.connections.contains_key(peer_id)
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = &String> {
        self.connections.keys()
    }

    pub(super) fn info(&self, peer_id: &str) -> Option<LinkInfo> {
        self.connections.get(peer_id).map(|c| c.info)
    }

    /// Every connection with what is known of it.
    pub(super) fn all(&self) -> impl Iterator<Item = (&String, LinkInfo)> {
        self.connections.iter().map(|(id, c)| (id, c.info))
    }

    pub(super) fn outbound_count(&self) -> usize {
        self.connections
            .values()
            .filter(|c| c.info.direction == Direction::Outbound)
            .count()
    }

    pub(super) fn inbound_count(&self) -> usize {
        self.connections.len() - self.outbound_count()
    }

    /// Inbound connections from `ip`.
    pub(super) fn inbound_from(&self, ip: IpAddr) -> usize {
        let ip = ip.to_canonical();
        self.connections
            .values()
            .filter(|c| {
                c.info.direction == Direction::Inbound && c.info.remote_ip.to_canonical() == ip
            })
            .count()
    }

    /// Settles a new connection against an existing one to the same peer: both ends keep the
    /// connection dialled by the smaller peer ID, so a simultaneous dial in both directions
    /// settles on the same single connection. A new connection from the same dialler replaces
    /// the old one (the old one is a stale leftover), which is asked to close.
    pub(super) fn supersede(&self, peer_id: &str, dialer_id: &str) -> Result<(), Refusal> {
        if let Some(existing) = self.connections.get(peer_id) {
            if existing.dialer_id != dialer_id && existing.dialer_id.as_str() < dialer_id {
                return Err(Refusal::Duplicate);
            }
            existing.close("replaced by a newer connection".to_string());
        }
        Ok(())
    }

    /// Registers a session (replacing any earlier entry for the peer).
    pub(super) fn insert(
        &mut self,
        peer_id: &str,
        info: LinkInfo,
        dialer_id: String,
    ) -> SessionHandle {
        self.next_conn_id += 1;
        let conn_id = self.next_conn_id;
        let (tx, rx) = mpsc::channel(SESSION_COMMAND_QUEUE);
        self.connections.insert(
            peer_id.to_string(),
            Connection {
                conn_id,
                info,
                dialer_id,
                commands: tx,
            },
        );
        SessionHandle {
            conn_id,
            commands: rx,
            short_ids: info.short_ids,
        }
    }

    /// Removes the entry of session `conn_id`; false when a newer session holds the peer's
    /// entry (or none does), so only the session that registered can remove itself.
    pub(super) fn remove(&mut self, peer_id: &str, conn_id: u64) -> bool {
        if self.connections.get(peer_id).map(|c| c.conn_id) != Some(conn_id) {
            return false;
        }
        self.connections.remove(peer_id);
        true
    }

    /// Asks a peer's session to close, keeping its entry until the session ends.
    pub(super) fn close(&self, peer_id: &str, reason: &str) {
        if let Some(conn) = self.connections.get(peer_id) {
            conn.close(reason.to_string());
        }
    }

    /// Drops a peer's entry at once and asks its session to close (its slot is free now).
    pub(super) fn evict(&mut self, peer_id: &str, reason: &str) {
        if let Some(conn) = self.connections.remove(peer_id) {
            conn.close(reason.to_string());
        }
    }

    pub(super) fn close_all(&self, reason: &str) {
        for conn in self.connections.values() {
            conn.close(reason.to_string());
        }
    }

    /// Queues a one-way message.
    pub(super) fn send(&self, peer_id: &str, message: PeerMessage) -> Queued {
        let Some(conn) = self.connections.get(peer_id) else {
            return Queued::NotConnected;
        };
        match conn.commands.try_send(SessionCommand::Send(message)) {
            Ok(()) => Queued::Yes,
            Err(mpsc::error::TrySendError::Full(_)) => Queued::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Queued::NotConnected,
        }
    }

    /// Queues a message to every session. A session whose queue is full misses it (what is
    /// broadcast, advertisements, is repeated by the next heartbeat); their IDs are returned.
    pub(super) fn broadcast(&self, message: PeerMessage) -> Vec<String> {
        let mut full = Vec::new();
        for (id, conn) in &self.connections {
            if let Err(mpsc::error::TrySendError::Full(_)) = conn
                .commands
                .try_send(SessionCommand::Send(message.clone()))
            {
                full.push(id.clone());
            }
        }
        full
    }

    /// Asks up to `count` random sessions to exchange peer lists; returns how many took it.
    pub(super) fn ask_exchange(&self, count: usize) -> usize {
        let mut ids: Vec<&String> = self.connections.keys().collect();
        let count = count.min(ids.len());
        let (chosen, _) = ids.partial_shuffle(&mut rand::thread_rng(), count);
        chosen
            .iter()
            .filter_map(|id| self.connections.get(*id))
            .filter(|c| c.commands.try_send(SessionCommand::ExchangePeers).is_ok())
            .count()
    }

    /// The queue into a peer's session, for a request to be awaited outside any lock.
    pub(super) fn requester(&self, peer_id: &str) -> Result<Requester, RequestError> {
        self.connections
            .get(peer_id)
            .map(|c| Requester {
                peer_id: peer_id.to_string(),
                commands: c.commands.clone(),
            })
            .ok_or_else(|| RequestError::NotConnected(peer_id.to_string()))
    }
}

/// A way to put one request to one peer's session.
pub(super) struct Requester {
    peer_id: String,
    commands: mpsc::Sender<SessionCommand>,
}

impl Requester {
    /// Sends the request and waits (at most `timeout`) for the answer.
    pub(super) async fn ask(
        self,
        request: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(SessionCommand::Request { request, reply: tx })
            .await
            .map_err(|_| RequestError::Disconnected(self.peer_id.clone()))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(_)) => Err(RequestError::NoAnswer(self.peer_id)),
            Err(_) => Err(RequestError::TimedOut {
                peer: self.peer_id,
                timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> LinkInfo {
        LinkInfo {
            direction: Direction::Inbound,
            remote_ip: "127.0.0.9".parse().expect("ip"),
            connected_at_ms: 1,
            platform_messages: true,
            short_ids: true,
        }
    }

    #[test]
    fn duplicates_settle_on_the_smaller_dialler_and_only_the_owner_removes() {
        let mut links = Links::default();
        let mut old = links.insert("p", link(), "b".into());
        // A connection dialled by a larger ID than the one kept is refused.
        assert_eq!(links.supersede("p", "c"), Err(Refusal::Duplicate));
        assert!(old.commands.try_recv().is_err());
        // A smaller dialler wins and the old session is asked to close.
        assert_eq!(links.supersede("p", "a"), Ok(()));
        assert!(matches!(
            old.commands.try_recv(),
            Ok(SessionCommand::Close(reason)) if reason.contains("replaced")
        ));
        let new = links.insert("p", link(), "a".into());
        assert!(
            !links.remove("p", old.conn_id),
            "a stale session removed the new entry"
        );
        assert!(links.is_connected("p"));
        assert!(links.remove("p", new.conn_id));
        assert_eq!(links.len(), 0);
    }

    #[tokio::test]
    async fn requests_fail_with_typed_errors() {
        let mut links = Links::default();
        let missing = links.requester("nobody").err();
        assert_eq!(missing, Some(RequestError::NotConnected("nobody".into())));
        assert!(!missing.expect("error").counts_against_peer());

        let mut session = links.insert("p", link(), "p".into());
        let request = || PeerRequest::Transactions {
            register_id: "r".into(),
            tx_ids: Vec::new(),
        };
        // The session takes the request and drops it: the peer failed to answer.
        let asker = links.requester("p").expect("connected");
        let (answer, ()) = tokio::join!(asker.ask(request(), Duration::from_secs(5)), async {
            drop(session.commands.recv().await);
        });
        assert_eq!(
            answer.as_ref().err(),
            Some(&RequestError::NoAnswer("p".into()))
        );
        assert!(answer.expect_err("no answer").counts_against_peer());

        // The session holds the request without answering: timed out.
        let asker = links.requester("p").expect("connected");
        let (answer, _held) = tokio::join!(
            asker.ask(request(), Duration::from_millis(20)),
            session.commands.recv()
        );
        let answer = answer.expect_err("timeout");
        assert!(matches!(answer, RequestError::TimedOut { .. }), "{answer}");

        // The session is gone: nothing was asked, so it is not held against the peer.
        drop(session);
        let asker = links.requester("p").expect("entry still registered");
        let answer = asker
            .ask(request(), Duration::from_millis(20))
            .await
            .expect_err("gone");
        assert_eq!(answer, RequestError::Disconnected("p".into()));
        assert!(!answer.counts_against_peer());
    }
}
