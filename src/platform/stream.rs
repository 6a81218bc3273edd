//! An admitted platform connection: plaintext or TLS, holding its place under the connection
//! caps (all of them, and per client IP) until it closes, and closed when the HTTP/2 preface
//! has not begun within its deadline, so silent connections cannot hold the places the
//! platform's services need.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::{MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP};

/// Places for connections: [`MAX_CONNECTIONS`] in all, [`MAX_CONNECTIONS_PER_IP`] per client.
pub(crate) struct Places {
    all: Arc<Semaphore>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Which cap refused a connection (the name of its `limit_hits` metric).
pub(crate) enum Full {
    All,
    PerIp,
}

impl Full {
    pub(crate) fn limit(&self) -> &'static str {
        match self {
            Full::All => "platform_connections",
            Full::PerIp => "platform_connections_per_ip",
        }
    }
}

/// A connection's places, given back when it is dropped.
pub(crate) struct Place {
    _all: OwnedSemaphorePermit,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Places {
    pub(crate) fn new() -> Places {
        Places {
            all: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A place for a connection from `ip`, if both caps allow one.
    pub(crate) fn take(&self, ip: IpAddr) -> Result<Place, Full> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_ip.get(&ip).copied().unwrap_or(0);
        if count >= MAX_CONNECTIONS_PER_IP {
            return Err(Full::PerIp);
        }
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full::All)?;
        per_ip.insert(ip, count + 1);
        Ok(Place {
            _all: all,
            per_ip: self.per_ip.clone(),
            ip,
        })
    }
}

/// One admitted platform connection.
pub(crate) struct PlatformStream {
    io: Io,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    _place: Place,
    /// Until the first byte of HTTP/2 has arrived; `None` after.
    preface_by: Option<Pin<Box<Sleep>>>,
}

pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl PlatformStream {
    pub(crate) fn new(
        io: Io,
        local: Option<SocketAddr>,
        remote: SocketAddr,
        place: Place,
        preface_timeout: Duration,
    ) -> PlatformStream {
        PlatformStream {
            io,
            local,
            remote,
            _place: place,
            preface_by: Some(Box::pin(tokio::time::sleep(preface_timeout))),
        }
    }
}

impl Connected for PlatformStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local,
            remote_addr: Some(self.remote),
        }
    }
}

impl AsyncRead for PlatformStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Some(deadline) = &mut this.preface_by {
            match &polled {
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.preface_by = None,
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    tracing::debug!(remote = %this.remote, "platform connection closed: no HTTP/2 preface in time");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no HTTP/2 preface in time",
                    )));
                }
                _ => {}
            }
        }
        polled
    }
}

impl AsyncWrite for PlatformStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_per_ip_and_given_back() {
        let places = Places::new();
        let one: IpAddr = "10.0.0.1".parse().expect("ip");
        let two: IpAddr = "10.0.0.2".parse().expect("ip");
        let held: Vec<Place> = (0..MAX_CONNECTIONS_PER_IP)
            .map(|_| places.take(one).ok().expect("a place"))
            .collect();
        assert!(matches!(places.take(one), Err(Full::PerIp)));
        let other = places.take(two).ok().expect("another client has room");
        drop(held);
        drop(other);
        assert!(places.per_ip.lock().expect("lock").is_empty());
        let all: Vec<Place> = (0..MAX_CONNECTIONS)
            .map(|i| {
                places
                    .take(IpAddr::from([10, 1, 0, i as u8]))
                    .ok()
                    .expect("a place")
            })
            .collect();
        assert!(matches!(places.take(two), Err(Full::All)));
        assert_eq!(all.len(), MAX_CONNECTIONS);
    }
}
