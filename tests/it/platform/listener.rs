//! The listener itself: only allowed networks get a byte, the JWT when it is required, TLS
//! with a CA certificate and no client certificate, and the peer port that never serves the
//! platform's services.

use std::net::SocketAddr;
use std::sync::Arc;

use sorcha_peer::config::{PeerTls, Secret};
use sorcha_peer::platform::MAX_CONNECTIONS_PER_IP;
use sorcha_peer::platform::pb::{discovery, docket_sync, heartbeat, sync};
use sorcha_peer::transport::{PeerStream, channel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tonic::Code;

use super::{
    beat, code, h2c_from, latest, now_ms, platform, platform_addr, platform_on, refused_from,
};
use crate::common::{PATIENCE, TestCluster, TestNode, wait_until};

const JWT_KEY: &str = "sorcha-peer-test-jwt-key-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_networks_reach_the_platform_listener() {
    let mut net = TestCluster::new();
    let allowed = net.ip();
    let outsider = net.ip();
    let mut a = net
        .start(|c| {
            platform_on(c);
            c.platform_allowed_cidrs = vec![format!("{allowed}/32").parse().expect("net")];
        })
        .await;
    let target = platform_addr(&a);
    let ch = h2c_from(&allowed, target).await.expect("allowed");
    let mut client = discovery::peer_discovery_client::PeerDiscoveryClient::new(ch);
    client
        .ping(discovery::PingRequest::default())
        .await
        .expect("answered");

    // From elsewhere the connection is closed before a byte is answered.
    let mut raw = raw_from(&outsider, target).await;
    // The write may fail already: the listener closed it.
    let _ = raw.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    closed_unanswered(&mut raw).await;
    assert!(
        refused_from(&outsider, target).await,
        "a call from outside is refused"
    );
    let metrics = a.client.metrics().await.expect("metrics");
    let refused = metrics
        .lines()
        .find(|l| l.contains("connections_refused") && l.contains("platform_network"))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok());
    assert!(refused.is_some_and(|n| n >= 2.0), "{metrics}");
    a.stop().await;
}

/// A plain TCP connection to `target` from the local address `source`.
async fn raw_from(source: &str, target: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source.parse().expect("ip"), 0))
        .expect("bind");
    socket.connect(target).await.expect("tcp connect")
}

/// Waits (within the limit) until the other end closes `raw` without sending a byte.
async fn closed_unanswered(raw: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(PATIENCE, raw.read(&mut buf))
        .await
        .expect("closed within the limit");
    assert!(matches!(read, Ok(0) | Err(_)), "no byte answered: {read:?}");
}

/// Waits (within the limit) until the other end closes `raw`, whatever it sent first (an
/// HTTP/2 server starts with its SETTINGS frame).
async fn closed(raw: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let until_closed = async {
        while let Ok(n) = raw.read(&mut buf).await
            && n > 0
        {}
    };
    tokio::time::timeout(PATIENCE, until_closed)
        .await
        .expect("closed within the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_one_client_cannot_take_every_place() {
    let mut net = TestCluster::new();
    let (greedy, other) = (net.ip(), net.ip());
    let mut a = net.start(platform_on).await;
    let target = platform_addr(&a);
    let mut silent = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_IP {
        silent.push(raw_from(&greedy, target).await);
    }
    // One more from the same address is refused; another client is still served.
    wait_until(
        "the greedy client's next call to be refused",
        PATIENCE,
        || refused_from(&greedy, target),
    )
    .await;
    assert!(
        !refused_from(&other, target).await,
        "another client is served"
    );
    let limits = a.client.metrics().await.expect("metrics");
    assert!(
        limits.contains("limit=\"platform_connections_per_ip\""),
        "{limits}"
    );
    // Without an HTTP/2 preface within connect_timeout, the silent ones are closed...
    for raw in &mut silent {
        closed(raw).await;
    }
    // ... and their places are free again.
    wait_until("the greedy client to be served again", PATIENCE, || async {
        !refused_from(&greedy, target).await
    })
    .await;
    a.stop().await;
}

fn mint(key: &str, expires_in_secs: i64) -> String {
    let now = now_ms() / 1000;
    let exp = now + expires_in_secs;
    // Issued a minute before it expires (an expired token was issued in the past too).
    let claims = serde_json::json!({"sub": "register-service", "token_type": "service",
                                    "iat": exp.min(now) - 60, "exp": exp});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("mint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_jwt_is_required_when_configured() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            platform_on(c);
            c.jwt_key = Some(Secret::new(JWT_KEY.to_string()));
            c.platform_require_jwt = true;
        })
        .await;
    a.client.create_register("r", true).await.expect("create");
    let ch = platform(&a).await;
    let call = |token: Option<String>| {
        let ch = ch.clone();
        async move {
            let mut request = tonic::Request::new(docket_sync::GetLatestDocketNumberRequest {
                register_id: "r".into(),
            });
            if let Some(token) = token {
                let value = format!("Bearer {token}").parse().expect("metadata");
                request.metadata_mut().insert("authorization", value);
            }
            docket_sync::docket_sync_service_client::DocketSyncServiceClient::new(ch)
                .get_latest_docket_number(request)
                .await
        }
    };
    assert_eq!(code(call(None).await), Code::Unauthenticated);
    assert_eq!(
        code(call(Some(a.token.clone())).await),
        Code::Unauthenticated
    );
    let wrong = "an-attackers-own-jwt-key-0123456789abcdef";
    assert_eq!(
        code(call(Some(mint(wrong, 300))).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(call(Some(mint(JWT_KEY, -300))).await),
        Code::Unauthenticated
    );
    let answer = call(Some(mint(JWT_KEY, 300))).await.expect("a valid JWT");
    assert_eq!(answer.into_inner().source_peer_id, a.peer_id);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_ca_certificate_and_no_client_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut net = TestCluster::new();
    let ip = net.ip();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("ECDSA key");
    let cert = CertificateParams::new(vec![ip.clone()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("certificate");
    let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");
    let mut a = TestNode::start(&ip, |c| {
        platform_on(c);
        c.platform_tls_cert_file = Some(cert_file);
        c.platform_tls_key_file = Some(key_file);
    })
    .await;
    a.client.create_register("r", true).await.expect("create");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("trust the CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let target = platform_addr(&a);
    let tcp = TcpStream::connect(target).await.expect("tcp");
    let name = rustls::pki_types::ServerName::try_from(ip.clone()).expect("name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with only the CA");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let ch = channel(PeerStream::Tls(Box::new(stream.into())), target)
        .await
        .expect("channel");
    let answer = latest(&ch, "r").await.expect("answered over TLS");
    assert_eq!(answer.source_peer_id, a.peer_id);
    // Plaintext to the TLS listener gets no answer.
    assert!(refused_from(&ip, target).await);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_port_never_answers_platform_services() {
    let mut net = TestCluster::new();
    let mut a = net
        .start(|c| {
            platform_on(c);
            c.peer_tls = PeerTls::Off;
        })
        .await;
    a.client.create_register("r", true).await.expect("create");
    let ch = h2c_from(&a.peer_addr.ip().to_string(), a.peer_addr)
        .await
        .expect("peer port");
    assert_eq!(code(latest(&ch, "r").await), Code::Unimplemented);
    let mut peers = discovery::peer_discovery_client::PeerDiscoveryClient::new(ch.clone());
    assert_eq!(
        code(
            peers
                .get_peer_list(discovery::PeerListRequest::default())
                .await
        ),
        Code::Unimplemented
    );
    let mut beats = heartbeat::peer_heartbeat_client::PeerHeartbeatClient::new(ch.clone());
    assert_eq!(
        code(beats.send_heartbeat(beat(1, 0)).await),
        Code::Unimplemented
    );
    let mut sync = sync::register_sync_client::RegisterSyncClient::new(ch);
    let status = sync
        .get_register_sync_status(sync::RegisterSyncStatusRequest {
            register_id: "r".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(status), Code::Unimplemented);
    // The same calls on the platform listener are answered.
    let on_platform = platform(&a).await;
    assert_eq!(code(latest(&on_platform, "r").await), Code::Ok);
    let mut sync = sync::register_sync_client::RegisterSyncClient::new(on_platform);
    let status = sync
        .get_register_sync_status(sync::RegisterSyncStatusRequest {
            register_id: "r".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(status), Code::Ok);
    a.stop().await;
}
