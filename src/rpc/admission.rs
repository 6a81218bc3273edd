//! The peer port's accept loop: every TCP connection is admitted by the peer manager (bans,
//! per-IP, per-subnet and total caps) before a byte is read, then taken through the transport
//! (the TLS handshake, in a task of its own) and read under deadlines, so a connection that
//! never completes TLS or the HTTP/2 preface, or goes quiet without a session, gives its
//! descriptor back instead of holding it forever.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::Services;
use crate::peers::admission::ConnectionSlot;
use crate::telemetry::Metrics;
use crate::transport::{AcceptError, PeerStream, Transport};

/// Bytes of the HTTP/2 client connection preface.
const PREFACE_LEN: usize = 24;
/// Pause after a failed `accept` (e.g. out of descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Connections through the transport waiting for the gRPC server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// What the session handler learns about the connection a request came on.
#[derive(Clone, Debug)]
pub(crate) struct PeerConnectInfo {
    pub remote: SocketAddr,
    /// The node key the peer proved in the TLS handshake (`None` with `peer_tls = "off"`).
    pub peer_key: Option<[u8; 32]>,
}

/// Deadlines an admitted connection is read under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    /// From accept until the HTTP/2 preface has arrived.
    pub preface: Duration,
    /// Longest silence once the preface is in. A live session carries heartbeats both ways,
    /// so only a connection without one stays silent this long.
    pub idle: Duration,
}

impl Deadlines {
    pub(crate) fn for_config(config: &crate::config::Config) -> Deadlines {
        // Saturating: both numbers are operator input.
        let idle = config
            .heartbeat_interval
            .saturating_mul(config.missed_heartbeats.saturating_add(1));
        Deadlines {
            preface: config.connect_timeout,
            idle: idle.max(config.connect_timeout),
        }
    }
}

/// `after` from now, or about thirty years from now when that is not representable (the
/// deadlines come from operator input).
fn later(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// An admitted inbound connection: the stream, its admission slot (released on drop), what
/// the transport proved and the read deadline.
pub(crate) struct AdmittedStream {
    inner: PeerStream,
    _slot: ConnectionSlot,
    info: PeerConnectInfo,
    deadlines: Deadlines,
    preface_read: usize,
    deadline: Pin<Box<Sleep>>,
}

impl AdmittedStream {
    fn new(
        inner: PeerStream,
        slot: ConnectionSlot,
        info: PeerConnectInfo,
        deadlines: Deadlines,
        accepted_at: Instant,
    ) -> AdmittedStream {
        // The preface deadline runs from accept, the TLS handshake included.
        let preface_by = accepted_at
            .checked_add(deadlines.preface)
            .unwrap_or_else(|| later(deadlines.preface));
        AdmittedStream {
            inner,
            _slot: slot,
            info,
            deadlines,
            preface_read: 0,
            deadline: Box::pin(tokio::time::sleep_until(preface_by)),
        }
    }
}

impl AsyncRead for AdmittedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                if self.preface_read < PREFACE_LEN {
                    // The preface deadline runs from accept, however slowly it trickles in.
                    self.preface_read += read;
                    if self.preface_read < PREFACE_LEN {
                        return Poll::Ready(Ok(()));
                    }
                }
                let next = later(self.deadlines.idle);
                self.deadline.as_mut().reset(next);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let what = if self.preface_read < PREFACE_LEN {
                        "no HTTP/2 preface within the deadline"
                    } else {
                        "connection idle without a session"
                    };
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for AdmittedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for AdmittedStream {
    type ConnectInfo = PeerConnectInfo;

    fn connect_info(&self) -> PeerConnectInfo {
        self.info.clone()
    }
}

/// The stream of admitted connections for the gRPC server. Refused connections are closed at
/// once, before anything is read; admitted ones go through the transport in tasks of their
/// own (a slow TLS handshake holds up nobody), within the preface deadline. Accept errors
/// (such as running out of descriptors) are logged and retried after a pause. The loop ends
/// when the server drops the stream.
pub(crate) fn incoming(
    listener: TcpListener,
    services: Services,
) -> impl Stream<Item = io::Result<AdmittedStream>> {
    let (accepted, stream) = mpsc::channel(ACCEPTED_QUEUE);
    let tasks = services.tasks.clone();
    tasks.spawn(accept_loop(listener, services, accepted));
    ReceiverStream::new(stream)
}

async fn accept_loop(
    listener: TcpListener,
    services: Services,
    accepted: mpsc::Sender<io::Result<AdmittedStream>>,
) {
    let peers = services.peers.clone();
    let deadlines = Deadlines::for_config(&services.config);
    loop {
        let (stream, remote): (TcpStream, SocketAddr) = tokio::select! {
            _ = accepted.closed() => return,
            result = listener.accept() => match result {
                Ok(connection) => connection,
                Err(e) => {
                    tracing::warn!("cannot accept a peer connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let accepted_at = Instant::now();
        match peers.admit_connection(remote.ip()) {
            Ok(slot) => {
                services.tasks.spawn(secure(
                    services.transport.clone(),
                    services.metrics.clone(),
                    stream,
                    remote,
                    Admission {
                        slot,
                        deadlines,
                        accepted_at,
                    },
                    accepted.clone(),
                ));
            }
            Err(refusal) => {
                tracing::debug!(%remote, %refusal, "peer connection refused at accept");
                drop(stream);
            }
        }
    }
}

struct Admission {
    slot: ConnectionSlot,
    deadlines: Deadlines,
    accepted_at: Instant,
}

/// Takes one admitted connection through the transport and hands it to the server.
async fn secure(
    transport: Arc<Transport>,
    metrics: Arc<Metrics>,
    stream: TcpStream,
    remote: SocketAddr,
    admission: Admission,
    accepted: mpsc::Sender<io::Result<AdmittedStream>>,
) {
    let deadline = later(admission.deadlines.preface);
    let outcome = tokio::time::timeout_at(deadline, transport.accept(stream, remote)).await;
    let connection = match outcome {
        Ok(Ok(connection)) => connection,
        Ok(Err(refused)) => {
            report_refusal(&metrics, &transport, remote, &refused);
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "no transport handshake within the deadline");
            metrics.transport_refused("inbound", "tls_handshake");
            return;
        }
    };
    let info = PeerConnectInfo {
        remote,
        peer_key: connection.peer_key,
    };
    let admitted = AdmittedStream::new(
        connection.stream,
        admission.slot,
        info,
        admission.deadlines,
        admission.accepted_at,
    );
    // Fails only when the server has stopped; the connection then just closes.
    let _ = accepted.send(Ok(admitted)).await;
}

/// Counts a refused connection and logs it with its reason, at most once per address and
/// reason per interval (a peer reconnecting in a loop cannot fill the log).
fn report_refusal(
    metrics: &Metrics,
    transport: &Transport,
    remote: SocketAddr,
    refused: &AcceptError,
) {
    let Some(reason) = refused.reason() else {
        tracing::debug!("peer connection closed at the transport handshake: {refused}");
        return;
    };
    metrics.transport_refused("inbound", reason);
    if transport
        .refusal_log()
        .allow(remote.ip(), "inbound", reason)
    {
        tracing::warn!(reason, "peer connection refused: {refused}");
    } else {
        tracing::debug!(reason, "peer connection refused: {refused}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadlines_from_extreme_settings_do_not_overflow() {
        let mut config = crate::config::Config::defaults().expect("defaults");
        config.heartbeat_interval = Duration::MAX;
        config.missed_heartbeats = u32::MAX;
        config.connect_timeout = Duration::MAX;
        let deadlines = Deadlines::for_config(&config);
        assert_eq!(deadlines.idle, Duration::MAX);
        assert!(later(deadlines.idle) > Instant::now());
    }
}
