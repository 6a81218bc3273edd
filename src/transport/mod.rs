//! The peer transport: how the bytes between two nodes are carried. By default
//! (`peer_tls = "node-key"`) every peer connection is TLS 1.3, mutually authenticated with a
//! certificate made from each node's Ed25519 key ([`nodekey`]): a dialler that knows whom it
//! dials refuses any other key, and the handshake above (in `rpc/handshake.rs`) refuses a
//! peer whose claimed identity is not the key its certificate proved. `"off"` is plaintext.
//!
//! A connection's first byte tells the two apart (a TLS record starts with 0x16, HTTP/2 with
//! `P`), so a node meeting the other kind says so in its log instead of a decoding error.

pub mod ca;
mod crl;
pub mod nodekey;
pub(crate) mod refusals;
pub(crate) mod stream;
pub(crate) mod verify;
pub(crate) mod watch;

pub use stream::{PeerStream, channel};

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{Config, PeerTls};
use crate::identity::{Identity, peer_id_for};

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The only application protocol spoken between peers.
const ALPN_H2: &[u8] = b"h2";

/// The transport could not be set up from this node's key and settings.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot make the peer TLS certificate from the node key: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot configure peer TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Ca(#[from] ca::CaError),
    #[error("peer_tls = \"ca\" needs tls_ca_file and tls_cert_file")]
    CaFilesMissing,
}

/// Why an outbound peer connection was not opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {remote}: {source}")]
    Connect {
        remote: SocketAddr,
        source: io::Error,
    },
    #[error(
        "{remote} closed the connection during the TLS handshake: it may run with peer_tls = \"off\" (this node encrypts peer traffic)"
    )]
    ClosedDuringTls { remote: SocketAddr },
    #[error(
        "{remote} does not answer in TLS: a plaintext node (peer_tls = \"off\"), or not a peer port (an admin port?)"
    )]
    NotTls { remote: SocketAddr },
    #[error("{remote} presented an unusable certificate: {reason}")]
    BadCertificate { remote: SocketAddr, reason: String },
    #[error("{remote} refused this node's certificate: {reason}")]
    CertificateRefused { remote: SocketAddr, reason: String },
    #[error("TLS handshake with {remote} failed: {reason}")]
    Tls { remote: SocketAddr, reason: String },
    #[error("{remote} proved the key of peer {found}, not of {expected}: refusing")]
    WrongPeer {
        remote: SocketAddr,
        expected: String,
        found: String,
    },
}

impl ConnectError {
    /// The `reason` label of `sorcha_peer_transport_refusals_total`, or `None` for a plain
    /// connection failure.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            ConnectError::Connect { .. } => None,
            ConnectError::ClosedDuringTls { .. } | ConnectError::NotTls { .. } => {
                Some("peer_tls_mismatch")
            }
            ConnectError::BadCertificate { .. } | ConnectError::CertificateRefused { .. } => {
                Some("bad_certificate")
            }
            ConnectError::Tls { .. } => Some("tls_handshake"),
            ConnectError::WrongPeer { .. } => Some("wrong_key"),
        }
    }

    /// True when this node refused the other side (its certificate or key), not the reverse.
    pub fn refused_here(&self) -> bool {
        matches!(
            self,
            ConnectError::BadCertificate { .. } | ConnectError::WrongPeer { .. }
        )
    }
}

/// Why an inbound peer connection was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("{remote} speaks plaintext, but this node requires TLS (peer_tls = \"{mode}\")")]
    PlaintextPeer { remote: SocketAddr, mode: PeerTls },
    #[error("{remote} speaks TLS, but this node has peer_tls = \"off\"")]
    TlsPeer { remote: SocketAddr },
    #[error("{remote} presented an unusable certificate: {reason}")]
    BadCertificate { remote: SocketAddr, reason: String },
    #[error("TLS handshake with {remote} failed: {reason}")]
    Tls { remote: SocketAddr, reason: String },
    #[error("{remote} closed the connection before saying anything")]
    Closed { remote: SocketAddr },
    #[error("reading from {remote}: {source}")]
    Io {
        remote: SocketAddr,
        source: io::Error,
    },
}

impl AcceptError {
    /// The `reason` label of `sorcha_peer_transport_refusals_total`, or `None` for a
    /// connection that simply went away.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            AcceptError::PlaintextPeer { .. } | AcceptError::TlsPeer { .. } => {
                Some("peer_tls_mismatch")
            }
            AcceptError::BadCertificate { .. } => Some("bad_certificate"),
            AcceptError::Tls { .. } => Some("tls_handshake"),
            AcceptError::Closed { .. } | AcceptError::Io { .. } => None,
        }
    }
}

/// An opened connection and, over TLS, the node key the peer proved it holds.
pub struct Connection {
    pub stream: PeerStream,
    pub peer_key: Option<[u8; 32]>,
}

impl Connection {
    /// The peer ID the TLS certificate proved, if any.
    pub fn peer_id(&self) -> Option<String> {
        self.peer_key.map(|key| peer_id_for(&key))
    }
}

struct TlsEnds {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
}

/// One node's transport: its mode and, unless `off`, its TLS configurations.
pub struct Transport {
    mode: PeerTls,
    tls: Option<TlsEnds>,
    ca: Option<watch::CaState>,
    refusals: refusals::RefusalLog,
}

impl Transport {
    /// A transport in `node-key` or `off` mode (CA mode needs files: [`Transport::from_config`]).
    pub fn new(mode: PeerTls, identity: &Identity) -> Result<Transport, SetupError> {
        let tls = match mode {
            PeerTls::Off => None,
            PeerTls::NodeKey => Some(node_key_ends(identity)?),
            PeerTls::Ca => return Err(SetupError::CaFilesMissing),
        };
        Ok(Transport {
            mode,
            tls,
            ca: None,
            refusals: refusals::RefusalLog::default(),
        })
    }

    /// The transport the configuration asks for; CA-mode files are read and checked now.
    pub fn from_config(config: &Config, identity: &Identity) -> Result<Transport, SetupError> {
        if config.peer_tls != PeerTls::Ca {
            return Transport::new(config.peer_tls, identity);
        }
        let (Some(ca_file), Some(cert_file)) = (&config.tls_ca_file, &config.tls_cert_file) else {
            return Err(SetupError::CaFilesMissing);
        };
        let files = ca::CaFiles {
            ca: ca_file,
            cert: cert_file,
            key: config.tls_key_file.as_deref(),
            crl: config.tls_crl_file.as_deref(),
        };
        let (verifier, own) = ca::load(&files, identity)?;
        let tls = ca_ends(identity, verifier.clone(), own.chain)?;
        Ok(Transport {
            mode: PeerTls::Ca,
            tls: Some(tls),
            ca: Some(watch::CaState::new(
                verifier,
                config.tls_crl_file.clone(),
                own.not_after,
            )),
            refusals: refusals::RefusalLog::default(),
        })
    }

    /// CA mode's state, if in CA mode.
    pub fn ca(&self) -> Option<&watch::CaState> {
        self.ca.as_ref()
    }

    /// Which refusals have been logged lately (each side logs what it refuses).
    pub fn refusal_log(&self) -> &refusals::RefusalLog {
        &self.refusals
    }

    /// A TLS connection whose peer proved `key`; in CA mode, which certificate it proved
    /// itself with is noted (a new revocation list, or its expiry, ends the session).
    fn secured(&self, stream: tokio_rustls::TlsStream<TcpStream>, key: [u8; 32]) -> Connection {
        if let Some(ca) = &self.ca
            && let Some(cert) = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
        {
            ca.note_peer(peer_id_for(&key), cert);
        }
        Connection {
            stream: PeerStream::Tls(Box::new(stream)),
            peer_key: Some(key),
        }
    }

    pub fn mode(&self) -> PeerTls {
        self.mode
    }

    /// Opens a connection to `remote` (from `local` when given) and, over TLS, proves both
    /// keys; when `expected` names a peer ID, any other key is refused.
    pub async fn connect(
        &self,
        remote: SocketAddr,
        local: Option<IpAddr>,
        expected: Option<&str>,
    ) -> Result<Connection, ConnectError> {
        let connect_error = |source| ConnectError::Connect { remote, source };
        let socket = match remote {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(connect_error)?;
        if let Some(ip) = local {
            socket.bind(SocketAddr::new(ip, 0)).map_err(connect_error)?;
        }
        let tcp = socket.connect(remote).await.map_err(connect_error)?;
        no_delay(&tcp, remote);
        let Some(tls) = &self.tls else {
            return Ok(Connection {
                stream: PeerStream::Plain(tcp),
                peer_key: None,
            });
        };
        let stream = tls
            .connector
            .connect(ServerName::IpAddress(remote.ip().into()), tcp)
            .await
            .map_err(|e| connect_failure(remote, e))?;
        let key = proven_key(stream.get_ref().1.peer_certificates()).map_err(|reason| {
            ConnectError::BadCertificate {
                remote,
                reason: reason.to_string(),
            }
        })?;
        let found = peer_id_for(&key);
        if let Some(expected) = expected
            && found != expected
        {
            return Err(ConnectError::WrongPeer {
                remote,
                expected: expected.to_string(),
                found,
            });
        }
        Ok(self.secured(stream.into(), key))
    }

    /// Takes an accepted TCP connection through this node's transport: the TLS handshake
    /// (proving the peer's key), or plaintext when `off`. A peer speaking the other kind is
    /// refused with a reason that says so. The caller bounds the time this takes.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        remote: SocketAddr,
    ) -> Result<Connection, AcceptError> {
        no_delay(&tcp, remote);
        let mut first = [0u8; 1];
        let read = tcp
            .peek(&mut first)
            .await
            .map_err(|source| AcceptError::Io { remote, source })?;
        if read == 0 {
            return Err(AcceptError::Closed { remote });
        }
        let speaks_tls = first[0] == TLS_HANDSHAKE_RECORD;
        match (&self.tls, speaks_tls) {
            (None, false) => Ok(Connection {
                stream: PeerStream::Plain(tcp),
                peer_key: None,
            }),
            (None, true) => Err(AcceptError::TlsPeer { remote }),
            (Some(_), false) => Err(AcceptError::PlaintextPeer {
                remote,
                mode: self.mode,
            }),
            (Some(tls), true) => {
                let stream = tls
                    .acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| accept_failure(remote, e))?;
                let key = proven_key(stream.get_ref().1.peer_certificates()).map_err(|reason| {
                    AcceptError::BadCertificate {
                        remote,
                        reason: reason.to_string(),
                    }
                })?;
                Ok(self.secured(stream.into(), key))
            }
        }
    }
}

/// TLS 1.3 only, both ways, with the CA-issued chain and the CA verifier.
fn ca_ends(
    identity: &Identity,
    verifier: Arc<ca::CaVerifier>,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<TlsEnds, SetupError> {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(identity.pkcs8_der().into());
    let verifier = Arc::new(verify::PeerVerifier::new(verifier));
    tls_ends(verifier.clone(), verifier, chain, key)
}

/// TLS 1.3 only, both ways, with the node-key certificate and verifier.
fn node_key_ends(identity: &Identity) -> Result<TlsEnds, SetupError> {
    let (cert, key) = nodekey::self_signed(identity)?;
    let verifier = Arc::new(verify::PeerVerifier::new(nodekey::NodeKeyPolicy));
    tls_ends(verifier.clone(), verifier, vec![cert], key)
}

fn tls_ends(
    server_verifier: Arc<dyn rustls::client::danger::ServerCertVerifier>,
    client_verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<TlsEnds, SetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server_verifier)
        .with_client_auth_cert(chain.clone(), key.clone_key())?;
    client.alpn_protocols = vec![ALPN_H2.to_vec()];
    // Every connection proves its certificate afresh: a resumed session would skip the
    // verifier, and with it a revocation that came since.
    client.resumption = rustls::client::Resumption::disabled();
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain, key)?;
    server.alpn_protocols = vec![ALPN_H2.to_vec()];
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;
    Ok(TlsEnds {
        connector: TlsConnector::from(Arc::new(client)),
        acceptor: TlsAcceptor::from(Arc::new(server)),
    })
}

/// The node key of the first certificate the peer presented (the verifier has checked it is
/// one, and that the peer holds it).
fn proven_key(
    certificates: Option<&[rustls::pki_types::CertificateDer<'static>]>,
) -> Result<[u8; 32], nodekey::NotANodeKey> {
    let first = certificates
        .and_then(|c| c.first())
        .ok_or(nodekey::NotANodeKey::Malformed)?;
    nodekey::node_key_of(first)
}

/// The rustls error inside an I/O error from tokio-rustls, if that is what it is.
fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

fn connect_failure(remote: SocketAddr, e: io::Error) -> ConnectError {
    match tls_error(&e) {
        Some(rustls::Error::InvalidMessage(_)) => ConnectError::NotTls { remote },
        Some(rustls::Error::InvalidCertificate(reason)) => ConnectError::BadCertificate {
            remote,
            reason: certificate_problem(reason),
        },
        Some(rustls::Error::AlertReceived(alert)) if is_certificate_alert(*alert) => {
            ConnectError::CertificateRefused {
                remote,
                reason: format!("{alert:?}"),
            }
        }
        Some(other) => ConnectError::Tls {
            remote,
            reason: other.to_string(),
        },
        None => match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => ConnectError::ClosedDuringTls { remote },
            _ => ConnectError::Tls {
                remote,
                reason: e.to_string(),
            },
        },
    }
}

/// Sends each write at once. Peer traffic is small request/answer frames (and TLS splits a
/// flush into several records): with Nagle's algorithm a small write may wait for the ACK of
/// the one before, which the other side may delay. Both ends set it, whichever dialled.
fn no_delay(tcp: &TcpStream, remote: SocketAddr) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%remote, "cannot set TCP_NODELAY: {e}");
    }
}

fn accept_failure(remote: SocketAddr, e: io::Error) -> AcceptError {
    match tls_error(&e) {
        Some(rustls::Error::InvalidCertificate(reason)) => AcceptError::BadCertificate {
            remote,
            reason: certificate_problem(reason),
        },
        Some(rustls::Error::NoCertificatesPresented) => AcceptError::BadCertificate {
            remote,
            reason: "no client certificate: peers must present their node certificate".into(),
        },
        Some(other) => AcceptError::Tls {
            remote,
            reason: other.to_string(),
        },
        None => AcceptError::Tls {
            remote,
            reason: e.to_string(),
        },
    }
}

fn certificate_problem(e: &rustls::CertificateError) -> String {
    match e {
        rustls::CertificateError::Other(other) => other.0.to_string(),
        rustls::CertificateError::Expired => "the certificate has expired".into(),
        rustls::CertificateError::Revoked => "the certificate is revoked".into(),
        rustls::CertificateError::UnknownIssuer => {
            "the certificate is not issued by a trusted CA".into()
        }
        other => format!("{other:?}"),
    }
}

fn is_certificate_alert(alert: rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::CertificateRequired
            | A::AccessDenied
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Both ends of a peer connection send small frames at once (TCP_NODELAY), whichever side
    /// dialled, in every mode: an accepted socket does not inherit it from anywhere.
    #[tokio::test]
    async fn both_ends_of_a_connection_send_without_delay() {
        for mode in [PeerTls::Off, PeerTls::NodeKey] {
            let server = Transport::new(mode, &Identity::generate()).expect("transport");
            let client = Transport::new(mode, &Identity::generate()).expect("transport");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            let accept = async {
                let (tcp, remote) = listener.accept().await.expect("accept");
                server.accept(tcp, remote).await.expect("accepted")
            };
            let dial = async {
                let mut dialled = client.connect(addr, None, None).await.expect("dialled");
                // The accepting end waits for a first byte to tell TLS from plaintext.
                if mode == PeerTls::Off {
                    dialled.stream.write_all(b"PRI").await.expect("write");
                }
                dialled
            };
            let (dialled, accepted) = tokio::time::timeout(Duration::from_secs(10), async {
                tokio::join!(dial, accept)
            })
            .await
            .expect("connected within 10 s");
            for (end, connection) in [("dialling", &dialled), ("accepting", &accepted)] {
                assert!(
                    connection.stream.tcp().nodelay().expect("socket option"),
                    "{mode}: the {end} end delays small writes (Nagle)"
                );
            }
        }
    }
}
