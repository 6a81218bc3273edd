//! The platform listener (`platform_listen`): the original peer service's gRPC services, called
//! with clients generated from this project's protos against real nodes on loopback — every
//! RPC with real data and with bad input (`docket_sync`, `discovery`, `heartbeat`,
//! `register_sync`, `transactions`, `communication`), the network restriction, the JWT
//! requirement, TLS with a CA certificate, and the peer port that never answers them
//! (`listener`); and a stock gRPC client outside Rust, Python's grpcio, over TLS with only the
//! CA certificate (`stock_client`).

mod communication;
mod discovery;
mod docket_sync;
mod heartbeat;
mod listener;
mod register_sync;
mod stock_client;
mod transactions;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use sorcha_peer::config::Config;
use sorcha_peer::platform::pb;
use sorcha_peer::transport::{PeerStream, channel};
use tokio::net::TcpSocket;
use tonic::Code;
use tonic::transport::Channel;

use crate::common::{TestCluster, TestNode};

/// Turns the platform listener on at the node's own address.
fn platform_on(c: &mut Config) {
    c.platform_listen = Some(SocketAddr::new(c.listen.ip(), 0));
}

/// A node with the platform listener on, seeded with `of`.
async fn platform_follower(net: &mut TestCluster, of: &TestNode) -> TestNode {
    let seed = of.seed();
    net.start(|c| {
        c.seeds = vec![seed];
        platform_on(c);
    })
    .await
}

fn platform_addr(node: &TestNode) -> SocketAddr {
    node.handle
        .as_ref()
        .and_then(|h| h.platform_addr)
        .expect("platform listener on")
}

/// An h2c channel to `target` from the local address `source`.
async fn h2c_from(source: &str, target: SocketAddr) -> Result<Channel, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source.parse().expect("ip"), 0))
        .map_err(|e| e.to_string())?;
    let tcp = socket.connect(target).await.map_err(|e| e.to_string())?;
    channel(PeerStream::Plain(tcp), target)
        .await
        .map_err(|e| e.to_string())
}

/// An h2c channel to the node's platform listener.
async fn platform(node: &TestNode) -> Channel {
    let addr = platform_addr(node);
    h2c_from(&addr.ip().to_string(), addr)
        .await
        .expect("platform channel")
}

fn sync_request(
    register: &str,
    from: i64,
    to: i64,
    max: i32,
) -> pb::docket_sync::SyncDocketsRequest {
    pb::docket_sync::SyncDocketsRequest {
        register_id: register.into(),
        from_docket_number: from,
        to_docket_number: to,
        max_count: max,
    }
}

/// Every entry of one `SyncDockets` call (the call's status when refused).
async fn sync(
    channel: &Channel,
    request: pb::docket_sync::SyncDocketsRequest,
) -> Result<Vec<pb::docket_sync::SyncDocketEntry>, tonic::Status> {
    let mut client =
        pb::docket_sync::docket_sync_service_client::DocketSyncServiceClient::new(channel.clone())
            .max_decoding_message_size(16 * 1024 * 1024);
    let stream = client.sync_dockets(request).await?.into_inner();
    stream.try_collect().await
}

async fn latest(
    channel: &Channel,
    register: &str,
) -> Result<pb::docket_sync::GetLatestDocketNumberResponse, tonic::Status> {
    pb::docket_sync::docket_sync_service_client::DocketSyncServiceClient::new(channel.clone())
        .get_latest_docket_number(pb::docket_sync::GetLatestDocketNumberRequest {
            register_id: register.into(),
        })
        .await
        .map(|r| r.into_inner())
}

/// Unix time now, in milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

fn code<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn peer_info(peer_id: &str, address: &SocketAddr) -> pb::discovery::PeerInfo {
    pb::discovery::PeerInfo {
        peer_id: peer_id.into(),
        address: address.ip().to_string(),
        port: address.port().into(),
        ..Default::default()
    }
}

fn beat(sequence: i64, registers: usize) -> pb::heartbeat::PeerHeartbeatRequest {
    pb::heartbeat::PeerHeartbeatRequest {
        peer_id: "old-node".into(),
        timestamp: 1,
        sequence_number: sequence,
        register_versions: (0..registers).map(|i| (format!("r{i}"), 1)).collect(),
        build_version: "1.0.0".into(),
        ..Default::default()
    }
}

/// Whether a Ping from `source` fails (no channel, or no answer on it).
async fn refused_from(source: &str, target: SocketAddr) -> bool {
    match h2c_from(source, target).await {
        Err(_) => true,
        Ok(ch) => pb::discovery::peer_discovery_client::PeerDiscoveryClient::new(ch)
            .ping(pb::discovery::PingRequest::default())
            .await
            .is_err(),
    }
}
