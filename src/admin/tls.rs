//! Optional TLS on the admin listener (`admin_tls_cert_file`, `admin_tls_key_file`): the
//! certificate and key are read and checked at start, and each accepted connection does its
//! handshake inside the connection's own task (the stream handed to axum handshakes on first
//! use, within [`TLS_HANDSHAKE_TIMEOUT`]), so a slow client holds up nobody else and
//! everything above the socket (auth, the body limits, the drain of refused bodies) is the
//! same as over plain HTTP.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::Config;

/// Time a client has to complete the TLS handshake after connecting.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the admin TLS settings cannot be used; each names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum AdminTlsError {
    #[error("admin_tls_cert_file {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("admin_tls_key_file {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("admin_tls_cert_file and admin_tls_key_file cannot be used together: {0}")]
    Pair(String),
}

/// The TLS settings the configuration asks for (`None`: plain HTTP), read and checked now so
/// a node with a bad file stops before it writes anything.
pub(crate) fn server_config(config: &Config) -> Result<Option<Arc<ServerConfig>>, AdminTlsError> {
    let (Some(cert_path), Some(key_path)) =
        (&config.admin_tls_cert_file, &config.admin_tls_key_file)
    else {
        // The configuration's own check requires both or neither.
        return Ok(None);
    };
    use crate::tlsfiles::PemFilesError as E;
    crate::tlsfiles::server_config(cert_path, key_path, &[b"http/1.1"])
        .map(Some)
        .map_err(|e| match e {
            E::Cert { path, message } => AdminTlsError::Cert { path, message },
            E::Key { path, message } => AdminTlsError::Key { path, message },
            E::Pair(message) => AdminTlsError::Pair(message),
        })
}

/// The admin listener with TLS: accepted connections handshake when axum first reads them.
pub(crate) struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    pub(crate) fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsIo, SocketAddr) {
        let (stream, remote) = axum::serve::Listener::accept(&mut self.tcp).await;
        let io = TlsIo::Handshaking {
            accept: Box::new(self.acceptor.accept(stream)),
            deadline: Box::pin(tokio::time::sleep(TLS_HANDSHAKE_TIMEOUT)),
            remote,
        };
        (io, remote)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// One admin connection over TLS: first the handshake (bounded in time), then the stream.
pub(crate) enum TlsIo {
    Handshaking {
        accept: Box<tokio_rustls::Accept<TcpStream>>,
        deadline: Pin<Box<Sleep>>,
        remote: SocketAddr,
    },
    Open(Box<TlsStream<TcpStream>>),
}

impl TlsIo {
    /// Drives the handshake; `Ready(Ok)` once the stream is open.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<&mut TlsStream<TcpStream>>> {
        if let TlsIo::Handshaking {
            accept,
            deadline,
            remote,
        } = self
        {
            match Pin::new(accept.as_mut()).poll(cx) {
                Poll::Ready(Ok(stream)) => *self = TlsIo::Open(Box::new(stream)),
                Poll::Ready(Err(e)) => {
                    tracing::debug!(%remote, "admin TLS handshake failed: {e}");
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    ready!(deadline.as_mut().poll(cx));
                    tracing::debug!(%remote, "admin TLS handshake timed out");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    )));
                }
            }
        }
        match self {
            TlsIo::Open(stream) => Poll::Ready(Ok(stream)),
            TlsIo::Handshaking { .. } => Poll::Pending,
        }
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_open(cx))?;
        Pin::new(stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = ready!(self.get_mut().poll_open(cx))?;
        Pin::new(stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = ready!(self.get_mut().poll_open(cx))?;
        Pin::new(stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TlsIo::Open(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            // Nothing was said yet: closing is dropping.
            TlsIo::Handshaking { .. } => Poll::Ready(Ok(())),
        }
    }
}
