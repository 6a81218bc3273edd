//! The peer port's accept loop: every TCP connection is admitted by the peer manager (bans,
//! per-IP, per-subnet and total caps) before a byte is read, and then read under deadlines, so
//! a connection that never completes the HTTP/2 preface, or goes quiet without a session, gives
//! its descriptor back instead of holding it forever.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::peers::PeerManager;
use crate::peers::admission::ConnectionSlot;

/// Bytes of the HTTP/2 client connection preface.
const PREFACE_LEN: usize = 24;
/// Pause after a failed `accept` (e.g. out of descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Deadlines an admitted connection is read under.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// From accept until the HTTP/2 preface has arrived.
    pub preface: Duration,
    /// Longest silence once the preface is in. A live session carries heartbeats both ways,
    /// so only a connection without one stays silent this long.
    pub idle: Duration,
}

impl Deadlines {
    pub fn for_config(config: &crate::config::Config) -> Deadlines {
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

/// An admitted inbound connection: the socket, its admission slot (released on drop) and the
/// read deadline.
pub struct AdmittedStream {
    inner: TcpStream,
    _slot: ConnectionSlot,
    deadlines: Deadlines,
    preface_read: usize,
    deadline: Pin<Box<Sleep>>,
}

impl AdmittedStream {
    fn new(inner: TcpStream, slot: ConnectionSlot, deadlines: Deadlines) -> AdmittedStream {
        AdmittedStream {
            inner,
            _slot: slot,
            deadlines,
            preface_read: 0,
            deadline: Box::pin(tokio::time::sleep_until(later(deadlines.preface))),
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
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

/// The stream of admitted connections for the gRPC server. Refused connections are closed at
/// once, before anything is read; accept errors (such as running out of descriptors) are
/// logged and retried after a pause, never ending the stream.
pub fn incoming(
    listener: TcpListener,
    peers: Arc<PeerManager>,
) -> impl Stream<Item = io::Result<AdmittedStream>> {
    let deadlines = Deadlines::for_config(peers.config());
    futures::stream::unfold((listener, peers), move |(listener, peers)| async move {
        loop {
            let (stream, remote): (TcpStream, SocketAddr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("cannot accept a peer connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            match peers.admit_connection(remote.ip()) {
                Ok(slot) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%remote, "cannot set TCP_NODELAY: {e}");
                    }
                    let admitted = AdmittedStream::new(stream, slot, deadlines);
                    return Some((Ok(admitted), (listener, peers)));
                }
                Err(refusal) => {
                    tracing::debug!(%remote, %refusal, "peer connection refused at accept");
                    drop(stream);
                }
            }
        }
    })
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
