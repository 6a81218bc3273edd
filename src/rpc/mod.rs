//! The peer protocol edge: the tonic service that accepts peer sessions, the dialler that opens
//! them, and the session loop that carries heartbeats and peer exchange. It translates between
//! protobuf frames and [`crate::peers::PeerManager`] calls; decisions stay in the peer domain, and
//! the liveness rules (when silence ends a session) in [`crate::service::liveness`].

pub(crate) mod admission;
pub mod budget;
pub(crate) mod connections;
pub(crate) mod dialback;
pub(crate) mod dialer;
pub(crate) mod frames;
pub(crate) mod handshake;
pub(crate) mod outbox;
mod pending;
pub(crate) mod session;

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::gossip::Gossip;
use crate::peers::PeerManager;
use crate::protocol::{convert, pb};
use crate::replication::Registers;
use crate::replication::lag::RemoteHeights;
use crate::service::lag::{HeightsProbe, ProbeError};
use crate::transport::Transport;
use admission::PeerConnectInfo;

/// What the peer protocol edge needs from the domain.
#[derive(Clone)]
pub struct Services {
    /// Where every task of the node is spawned.
    pub tasks: crate::tasks::Tasks,
    /// The node's settings, shared rather than reached through the peer manager.
    pub config: Arc<crate::config::Config>,
    pub identity: Arc<crate::identity::Identity>,
    pub metrics: Arc<crate::telemetry::Metrics>,
    pub peers: Arc<PeerManager>,
    pub registers: Arc<Registers>,
    pub gossip: Arc<Gossip>,
    /// Platform messages relayed across the overlay.
    pub messages: Arc<crate::messages::Messages>,
    /// How connections to peers are opened and accepted (TLS or plaintext).
    pub transport: Arc<Transport>,
    /// The bytes of large inbound messages still arriving, shared by every session.
    pub budget: Arc<budget::InboundBudget>,
}

/// Version of the peer protocol spoken here; a peer on another major version is refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest gRPC message accepted or sent (16 MiB, as the original).
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// What this node can do, announced in the handshake.
pub const CAPABILITIES: &[&str] = &[
    "heartbeat",
    "peer-exchange",
    PLATFORM_MESSAGES,
    SHORT_TX_IDS,
];
/// The capability of carrying platform messages (`PlatformMessage` frames): they are sent only
/// to peers that announce it.
pub const PLATFORM_MESSAGES: &str = "platform-messages";
/// The capability of gossiping by short transaction IDs (`ledger::ShortId`): announcements,
/// pulls and their answers name transactions by their first 16 bytes. A peer without it is sent
/// and asked whole IDs.
pub const SHORT_TX_IDS: &str = "short-tx-ids";
/// HTTP/2 streams one connection may have open at once: a peer needs one session stream and
/// the occasional height query.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 4;
/// Largest HTTP/2 header block accepted from a peer (gRPC headers are a few hundred bytes).
pub const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// HTTP/2 flow-control windows on the peer port: the most bytes of one stream, and of one
/// connection, a peer can send before this node has read them.
pub const STREAM_WINDOW: u32 = 1024 * 1024;
pub const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// The `PeerSession` gRPC service.
pub struct PeerSessionService {
    services: Services,
    shutdown: CancellationToken,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::Frame, Status>> + Send>>;

#[tonic::async_trait]
impl pb::peer_session_server::PeerSession for PeerSessionService {
    type SessionStream = FrameStream;

    async fn session(
        &self,
        request: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let connection = connect_info(&request)?;
        let gate = request
            .extensions()
            .get::<budget::SessionGate>()
            .cloned()
            .ok_or_else(|| Status::internal("the session stream has no budget gate"))?;
        if let Err(refusal) = self.services.peers.admit_address(connection.remote.ip()) {
            self.services.peers.handshake_failed(true);
            return Err(Status::permission_denied(refusal.to_string()));
        }
        let incoming = request.into_inner();
        let (outbox, frames) = outbox::Outbox::new(self.services.config.peer_send_buffer);
        self.services.tasks.spawn(connections::accept(
            self.services.clone(),
            connection,
            gate,
            incoming,
            outbox,
            self.shutdown.clone(),
        ));
        Ok(Response::new(Box::pin(frames.map(Ok))))
    }

    async fn get_register_heights(
        &self,
        request: Request<pb::RegisterHeightsRequest>,
    ) -> Result<Response<pb::RegisterHeightsResponse>, Status> {
        let remote = connect_info(&request)?.remote;
        if let Err(refusal) = self.services.peers.admit_address(remote.ip()) {
            return Err(Status::permission_denied(refusal.to_string()));
        }
        let registers = &self.services.registers;
        let mut hashes = Vec::new();
        for q in request.into_inner().at.into_iter().take(MAX_HEIGHT_QUERIES) {
            match registers.hash_at(&q.register_id, q.height).await {
                Ok(Some(hash)) => hashes.push(pb::HeightHash {
                    register_id: q.register_id,
                    height: q.height,
                    hash: hash.to_vec(),
                }),
                Ok(None) => {}
                Err(e) => return Err(Status::unavailable(format!("storage error: {e}"))),
            }
        }
        Ok(Response::new(pb::RegisterHeightsResponse {
            peer_id: self.services.identity.peer_id().to_string(),
            registers: convert::heights_to_wire(registers.public_heights()),
            hashes,
        }))
    }
}

/// What the transport learnt about the connection `request` came on (set for every
/// connection by [`admission::incoming`]).
fn connect_info<T>(request: &Request<T>) -> Result<PeerConnectInfo, Status> {
    request
        .extensions()
        .get::<PeerConnectInfo>()
        .cloned()
        .ok_or_else(|| Status::internal("the connection has no transport information"))
}

/// Most hash queries answered in one `GetRegisterHeights` call.
const MAX_HEIGHT_QUERIES: usize = 1000;

/// Asks other nodes for their registers' heights over the peer protocol (the lag service's
/// probe), through this node's transport.
pub struct HeightsClient {
    pub transport: Arc<Transport>,
}

#[tonic::async_trait]
impl HeightsProbe for HeightsClient {
    async fn heights(
        &self,
        address: &str,
        queries: Vec<(String, u64)>,
        timeout: std::time::Duration,
    ) -> Result<RemoteHeights, ProbeError> {
        tokio::time::timeout(timeout, remote_heights(&self.transport, address, queries))
            .await
            .map_err(|_| ProbeError::Connect {
                address: address.to_string(),
                reason: format!("no answer within {timeout:?}"),
            })?
    }
}

/// Asks the node at `address` (host:port of its peer protocol) for its public registers'
/// heights, and for its docket hashes at the given heights.
async fn remote_heights(
    transport: &Transport,
    address: &str,
    queries: Vec<(String, u64)>,
) -> Result<RemoteHeights, ProbeError> {
    let connect_error = |reason: String| ProbeError::Connect {
        address: address.to_string(),
        reason,
    };
    let remote = tokio::net::lookup_host(address)
        .await
        .map_err(|e| ProbeError::InvalidAddress {
            address: address.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ProbeError::InvalidAddress {
            address: address.to_string(),
            reason: "resolves to no address".into(),
        })?;
    let connection = transport
        .connect(remote, None, None)
        .await
        .map_err(|e| ProbeError::Transport(e.to_string()))?;
    let proven = connection.peer_id();
    let channel = crate::transport::channel(connection.stream, remote)
        .await
        .map_err(|e| connect_error(e.to_string()))?;
    let mut client = pb::peer_session_client::PeerSessionClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE);
    // The node answers only so many, and a larger request would not be taken before a session.
    let request = pb::RegisterHeightsRequest {
        at: queries
            .into_iter()
            .take(MAX_HEIGHT_QUERIES)
            .map(|(register_id, height)| pb::HeightQuery {
                register_id,
                height,
            })
            .collect(),
    };
    let response = client
        .get_register_heights(request)
        .await
        .map_err(|s| ProbeError::Refused {
            address: address.to_string(),
            reason: s.message().to_string(),
        })?
        .into_inner();
    if let Some(proven) = proven
        && response.peer_id != proven
    {
        return Err(ProbeError::Refused {
            address: address.to_string(),
            reason: format!(
                "it says it is {} but its certificate proves {proven}",
                convert::peer_text(&response.peer_id, convert::MAX_PEER_TEXT)
            ),
        });
    }
    let (registers, _) = convert::heights_from_wire(response.registers);
    let hashes = response
        .hashes
        .into_iter()
        .filter_map(|h| {
            let hash: [u8; 32] = h.hash.try_into().ok()?;
            Some((h.register_id, (h.height, hash)))
        })
        .collect();
    Ok(RemoteHeights {
        peer_id: response.peer_id,
        registers,
        hashes,
    })
}

/// The peer protocol server as a node service. `serving` records when and why it stopped (for
/// `/readyz`, `/health` and `status`).
pub struct PeerServer {
    pub listener: tokio::net::TcpListener,
    pub services: Services,
    pub serving: Arc<crate::service::health::Listeners>,
}

impl crate::tasks::Service for PeerServer {
    const NAME: &'static str = "peer protocol server";

    async fn run(self, shutdown: CancellationToken) {
        use crate::service::health::ServerState;
        let stopped = match serve(self.listener, self.services, shutdown.clone()).await {
            Ok(()) if shutdown.is_cancelled() => "the node is shutting down".to_string(),
            Ok(()) => "the peer protocol server stopped".to_string(),
            Err(e) => {
                tracing::error!("peer protocol server failed: {e}");
                format!("the peer protocol server failed: {e}")
            }
        };
        self.serving.set_peer(ServerState::Stopped(stopped));
    }
}

/// Serves the peer protocol on `listener` until `shutdown`: connections are admitted by the
/// peer manager before anything is read (see [`admission`]), each may open only a few
/// streams with small headers, and messages are read within the [`budget`].
async fn serve(
    listener: tokio::net::TcpListener,
    services: Services,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let incoming = admission::incoming(listener, services.clone());
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_max_header_list_size(MAX_HEADER_LIST_SIZE)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .add_service(service(services, shutdown.clone()))
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
}

/// The gRPC service to mount on the peer listener, behind the inbound budget.
pub fn service(
    services: Services,
    shutdown: CancellationToken,
) -> budget::Budgeted<pb::peer_session_server::PeerSessionServer<PeerSessionService>> {
    let budget = services.budget.clone();
    let server =
        pb::peer_session_server::PeerSessionServer::new(PeerSessionService { services, shutdown })
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
    budget::Budgeted::new(server, budget)
}
