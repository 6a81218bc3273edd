//! Hand-built peers against a [`TestNode`]: thin wrappers over [`super::stranger`] for the
//! handshake and gossip tests.

use std::time::Duration;

use prost::Message;
use sorcha_peer::identity::Identity;
use sorcha_peer::protocol::pb;
use tokio::sync::mpsc;

use super::TestNode;
use super::stranger::{self, Claims, StallingPeer};

/// Encoded `NodeInfo` of a hand-built peer presenting `public_key` and speaking `version`.
pub fn info(public_key: Vec<u8>, version: u32) -> Vec<u8> {
    pb::NodeInfo {
        public_key,
        listen_address: "127.0.0.40:1".into(),
        name: "mallory".into(),
        protocol_version: version,
        software_version: "evil".into(),
        capabilities: vec![],
        platform_address: String::new(),
    }
    .encode_to_vec()
}

fn mallory() -> Claims {
    Claims {
        listen_address: "127.0.0.40:1".into(),
        name: "mallory".into(),
        software_version: "evil".into(),
        ..Claims::default()
    }
}

/// Completes a real handshake as `me` and returns the open session (outgoing sender and
/// incoming stream), so a test can speak the protocol as a hand-built peer.
pub async fn session_as(
    node: &TestNode,
    me: &Identity,
) -> (mpsc::Sender<pb::Frame>, tonic::Streaming<pb::Frame>) {
    let channel = stranger::channel_from(node.peer_addr, "127.0.0.1", me)
        .await
        .expect("connect");
    let session = stranger::open_session(channel, me, &mallory())
        .await
        .expect("handshake");
    (session.outgoing, session.incoming)
}

/// A connected peer that stalls every transaction request for `delay` (see
/// [`stranger::Session::stalling`]).
pub async fn stalling_peer(node: &TestNode, delay: Duration) -> StallingPeer {
    let me = Identity::generate();
    let channel = stranger::channel_from(node.peer_addr, "127.0.0.1", &me)
        .await
        .expect("connect");
    stranger::open_session(channel, &me, &mallory())
        .await
        .expect("handshake")
        .stalling(delay)
}
