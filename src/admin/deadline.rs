//! `admin_send_timeout`: a write to an admin client that waits on the client (its receive
//! window and our socket buffer full) for longer than this fails, which ends the connection.
//! Without it a client that stops reading holds its connection, and an event stream its
//! place among `max_event_clients`, for as long as it likes: the stream is only polled when
//! there is room to write, so nothing above the socket would notice.
//!
//! Progress of any size starts the wait again, so a slow reader keeps its stream (and is told
//! what it missed with `lagged`); only one that reads nothing for the whole period is dropped.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::telemetry::Metrics;

/// An admin listener whose connections give up on clients that stop reading.
pub(crate) struct DeadlineListener<L> {
    inner: L,
    limit: Duration,
    metrics: Arc<Metrics>,
}

impl<L> DeadlineListener<L> {
    pub(crate) fn new(inner: L, limit: Duration, metrics: Arc<Metrics>) -> DeadlineListener<L> {
        DeadlineListener {
            inner,
            limit,
            metrics,
        }
    }
}

impl<L: axum::serve::Listener> axum::serve::Listener for DeadlineListener<L> {
    type Io = SendDeadline<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, remote) = self.inner.accept().await;
        let io = SendDeadline {
            io,
            limit: self.limit,
            waiting: None,
            metrics: self.metrics.clone(),
        };
        (io, remote)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One connection: reads pass through; a write pending longer than `limit` fails.
pub(crate) struct SendDeadline<Io> {
    io: Io,
    limit: Duration,
    /// Set while a write is waiting on the client.
    waiting: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl<Io> SendDeadline<Io> {
    /// Passes on what the socket said; a pending write arms the deadline (and registers the
    /// task to be woken when it passes), progress disarms it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.waiting = None;
            return polled;
        }
        let limit = self.limit;
        let waiting = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if waiting.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.metrics.limit_hit("admin_send_timeout");
        tracing::debug!("admin client read nothing for {limit:?}: disconnected");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing within admin_send_timeout",
        )))
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for SendDeadline<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for SendDeadline<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn deadline(
        io: tokio::io::DuplexStream,
        limit: Duration,
    ) -> SendDeadline<tokio::io::DuplexStream> {
        SendDeadline {
            io,
            limit,
            waiting: None,
            metrics: Arc::new(Metrics::new()),
        }
    }

    #[tokio::test]
    async fn a_write_the_client_never_takes_fails_after_the_limit() {
        // A pipe with a 16-byte buffer that nobody reads.
        let (_client, server) = tokio::io::duplex(16);
        let mut io = deadline(server, Duration::from_millis(50));
        io.write_all(&[0; 16]).await.expect("fits the buffer");
        let error = io.write_all(&[0; 1]).await.expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let hits = io
            .metrics
            .limit_hits
            .get_or_create(&vec![("limit", "admin_send_timeout")])
            .get();
        assert_eq!(hits, 1);
    }

    #[tokio::test]
    async fn progress_disarms_the_deadline() {
        use tokio::io::AsyncReadExt;
        let (mut client, server) = tokio::io::duplex(16);
        let mut io = deadline(server, Duration::from_secs(3600));
        io.write_all(&[0; 16]).await.expect("fits the buffer");
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut io).poll_write(&mut cx, &[0; 4]).is_pending());
        assert!(io.waiting.is_some(), "a blocked write arms it");
        client.read_exact(&mut [0; 8]).await.expect("read");
        io.write_all(&[0; 4]).await.expect("room again");
        assert!(io.waiting.is_none(), "a write that went through disarms it");
    }
}
