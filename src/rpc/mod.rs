//! The peer protocol edge: the tonic service that accepts peer sessions, the dialler that opens
//! them, and the session loop that carries heartbeats and peer exchange. It translates between
//! protobuf frames and [`crate::peers::PeerManager`] calls; decisions stay in the manager.

pub mod dialer;
pub mod session;

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::peers::PeerManager;

/// Generated protobuf and gRPC code for `proto/sorcha/peer/v1`.
pub mod pb {
    tonic::include_proto!("sorcha.peer.v1");
}

/// Version of the peer protocol spoken here; a peer on another major version is refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest gRPC message accepted or sent (16 MiB, as the original).
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// What this node can do, announced in the handshake.
pub const CAPABILITIES: &[&str] = &["heartbeat", "peer-exchange"];
/// Frames waiting to be written to one peer before it counts as not keeping up.
pub const OUTBOX_CAPACITY: usize = 256;

/// The `PeerSession` gRPC service.
pub struct PeerSessionService {
    manager: Arc<PeerManager>,
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
        let remote = request
            .remote_addr()
            .ok_or_else(|| Status::internal("the connection has no remote address"))?;
        if let Err(refusal) = self.manager.admit_address(remote.ip()) {
            self.manager.handshake_failed(true);
            return Err(Status::permission_denied(refusal.to_string()));
        }
        let incoming = request.into_inner();
        let (outbox, frames) = mpsc::channel(OUTBOX_CAPACITY);
        tokio::spawn(session::accept(
            self.manager.clone(),
            remote.ip(),
            incoming,
            outbox,
            self.shutdown.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(frames).map(Ok))))
    }
}

/// The gRPC service to mount on the peer listener.
pub fn service(
    manager: Arc<PeerManager>,
    shutdown: CancellationToken,
) -> pb::peer_session_server::PeerSessionServer<PeerSessionService> {
    pb::peer_session_server::PeerSessionServer::new(PeerSessionService { manager, shutdown })
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}
