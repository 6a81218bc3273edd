//! The platform listener: a connection from outside `platform_allowed_cidrs` is closed at
//! accept, before a byte of HTTP/2 (or TLS) is read or written; the connection caps and the
//! preface deadline are in [`super::stream`]; with TLS each handshake runs in a task of its
//! own within [`TLS_HANDSHAKE_TIMEOUT`], so a slow client holds up nobody else. Admitted
//! connections go to one tonic server carrying the platform services, each behind the JWT
//! check; HTTP/2 keep-alive pings find clients that went away.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;

use super::auth::JwtCheck;
use super::communication::Communication;
use super::discovery::Discovery;
use super::docket_sync::DocketSync;
use super::heartbeat::Heartbeat;
use super::pb::{communication, discovery, docket_sync, heartbeat, sync, transaction};
use super::register_sync::RegisterSync;
use super::stream::{Io, Places, PlatformStream};
use super::transactions::TransactionDistribution;
use super::{
    MAX_HEADER_LIST_SIZE, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, MAX_STREAMS_PER_CONNECTION,
    PlatformDeps,
};

/// Time a client has to complete the TLS handshake after connecting.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Admitted connections waiting for the gRPC server to take them.
const ACCEPTED_QUEUE: usize = 16;
/// How often an idle platform connection is pinged, and how long the answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The platform services as a node service, over TLS when `tls` is given.
pub(crate) struct PlatformServer {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Option<Arc<ServerConfig>>,
    pub(crate) deps: PlatformDeps,
}

impl crate::tasks::Service for PlatformServer {
    const NAME: &'static str = "platform server";

    async fn run(self, shutdown: CancellationToken) {
        if let Err(e) = serve(self.listener, self.tls, self.deps, shutdown).await {
            tracing::error!("platform listener failed: {e}");
        }
    }
}

/// Serves the platform services on `listener` until `shutdown`.
async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    deps: PlatformDeps,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (accepted, incoming) = mpsc::channel(ACCEPTED_QUEUE);
    deps.tasks.spawn(accept_loop(
        listener,
        tls.map(TlsAcceptor::from),
        deps.clone(),
        accepted,
        shutdown.clone(),
    ));
    let check = JwtCheck::new(deps.auth.clone(), deps.config.require_jwt);
    let docket_sync = docket_sync::docket_sync_service_server::DocketSyncServiceServer::new(
        DocketSync::new(deps.clone()),
    )
    .max_decoding_message_size(MAX_REQUEST_BYTES)
    .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let discovery =
        discovery::peer_discovery_server::PeerDiscoveryServer::new(Discovery::new(deps.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let heartbeat =
        heartbeat::peer_heartbeat_server::PeerHeartbeatServer::new(Heartbeat::new(deps.clone()))
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let register_sync = sync::register_sync_server::RegisterSyncServer::new(RegisterSync::new(
        deps.clone(),
        shutdown.clone(),
    ))
    .max_decoding_message_size(MAX_REQUEST_BYTES)
    .max_encoding_message_size(MAX_RESPONSE_BYTES);
    // A submission carries a whole transaction.
    let submission_bytes = MAX_REQUEST_BYTES + deps.config.max_transaction_size;
    let transactions =
        transaction::transaction_distribution_server::TransactionDistributionServer::new(
            TransactionDistribution::new(deps.clone()),
        )
        .max_decoding_message_size(submission_bytes)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    // A message may carry a payload as large as the overlay carries, plus its fields.
    let communication = communication::peer_communication_server::PeerCommunicationServer::new(
        Communication::new(deps.clone()),
    )
    .max_decoding_message_size(crate::protocol::MAX_PAYLOAD_BYTES + MAX_REQUEST_BYTES)
    .max_encoding_message_size(MAX_RESPONSE_BYTES);
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_max_header_list_size(MAX_HEADER_LIST_SIZE)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(InterceptedService::new(docket_sync, check.clone()))
        .add_service(InterceptedService::new(discovery, check.clone()))
        .add_service(InterceptedService::new(heartbeat, check.clone()))
        .add_service(InterceptedService::new(register_sync, check.clone()))
        .add_service(InterceptedService::new(transactions, check.clone()))
        .add_service(InterceptedService::new(communication, check))
        .serve_with_incoming_shutdown(ReceiverStream::new(incoming), shutdown.cancelled_owned())
        .await
}

/// Accepts connections until `shutdown`: refuses those from outside the allowed networks and
/// those beyond the connection cap, and hands the others (after TLS, when configured) on.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    deps: PlatformDeps,
    accepted: mpsc::Sender<io::Result<PlatformStream>>,
    shutdown: CancellationToken,
) {
    let places = Places::new();
    let local = listener.local_addr().ok();
    let preface_timeout = deps.config.preface_timeout;
    loop {
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("platform listener: accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let ip = remote.ip().to_canonical();
        if !deps.config.allowed.iter().any(|net| net.contains(&ip)) {
            // Closed unread: nothing of HTTP/2 or TLS is answered.
            deps.metrics.connection_refused("platform_network");
            tracing::debug!(%remote, "platform connection refused: not in platform_allowed_cidrs");
            continue;
        }
        let place = match places.take(ip) {
            Ok(place) => place,
            Err(full) => {
                deps.metrics.limit_hit(full.limit());
                tracing::debug!(%remote, limit = full.limit(), "platform connection refused: no room");
                continue;
            }
        };
        let Some(acceptor) = &tls else {
            let stream = PlatformStream::new(Io::Plain(tcp), local, remote, place, preface_timeout);
            if accepted.send(Ok(stream)).await.is_err() {
                return;
            }
            continue;
        };
        let acceptor = acceptor.clone();
        let accepted = accepted.clone();
        deps.tasks.spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let io = Io::Tls(Box::new(tls));
                    let stream = PlatformStream::new(io, local, remote, place, preface_timeout);
                    // Fails only once the server has stopped: the connection just closes.
                    let _ = accepted.send(Ok(stream)).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, "platform TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%remote, "platform TLS handshake timed out"),
            }
        });
    }
}
