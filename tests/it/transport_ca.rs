//! CA mode as an operator sets it up with `sorcha-peer tls`: a CA, a certificate per node key,
//! three nodes that talk; revoking one node's certificate disconnects it within seconds and it
//! stays out; a node certified by another CA is refused; a certificate near expiry is shown.

use std::path::Path;

use sorcha_peer::config::PeerTls;
use sorcha_peer::identity::Identity;

use crate::common::{
    HEARTBEAT, PATIENCE, TestCluster, TestNode, bin, holds_for, metric, run_cmd, test_config,
    wait_until,
};

/// Runs `sorcha-peer tls ARGS` and returns its exit code and output.
pub(crate) async fn tls(args: &[&str]) -> (i32, String, String) {
    let mut cmd = bin();
    cmd.arg("tls").args(args);
    run_cmd(cmd).await
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A node's data directory with its key, and a certificate for that key from the CA in `ca`
/// (valid `days`).
pub(crate) async fn certified_dir(ca: &Path, days: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    Identity::load_or_create(dir.path()).expect("node key");
    let (code, out, err) = tls(&[
        "issue",
        "--ca",
        path(ca),
        "--data-dir",
        path(dir.path()),
        "--days",
        days,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("peer_tls = \"ca\""), "{err}");
    dir
}

/// Starts a CA-mode node in `dir` trusting `ca_file`, checking revocations in `crl`.
pub(crate) async fn start_ca_node(
    net: &mut TestCluster,
    dir: &Path,
    ca_file: &Path,
    crl: &Path,
    seeds: Vec<String>,
) -> TestNode {
    let mut config = test_config(dir, &net.ip());
    config.peer_tls = PeerTls::Ca;
    config.tls_ca_file = Some(ca_file.to_path_buf());
    config.tls_cert_file = Some(dir.join("node-cert.pem"));
    config.tls_crl_file = Some(crl.to_path_buf());
    config.seeds = seeds;
    TestNode::start_with(config).await
}

pub(crate) async fn connected(node: &TestNode, other: &TestNode) -> bool {
    node.state_of(&other.peer_id).await == "connected"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn a_ca_network_disconnects_a_revoked_node_and_refuses_another_ca() {
    let mut net = TestCluster::new();
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_dir.path();
    let (code, out, err) = tls(&["ca", "--out", path(ca)]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (ca_file, crl) = (ca.join("ca.pem"), ca.join("crl.pem"));
    // A CA is never overwritten.
    let (code, _, err) = tls(&["ca", "--out", path(ca)]).await;
    assert_eq!(code, 2, "{err}");

    let (dir_a, dir_b) = (
        certified_dir(ca, "365").await,
        certified_dir(ca, "365").await,
    );
    let dir_c = certified_dir(ca, "10").await;
    let mut a = start_ca_node(&mut net, dir_a.path(), &ca_file, &crl, vec![]).await;
    let mut b = start_ca_node(&mut net, dir_b.path(), &ca_file, &crl, vec![a.seed()]).await;
    let mut c = start_ca_node(&mut net, dir_c.path(), &ca_file, &crl, vec![a.seed()]).await;
    wait_until("A, B and C are connected", PATIENCE, || async {
        connected(&a, &b).await && connected(&a, &c).await && connected(&b, &c).await
    })
    .await;

    // C's certificate expires in 10 days: status says so, and the expiry is a metric.
    let status = c.client.status().await.expect("status");
    assert_eq!(status.peer_tls, "ca");
    assert!(status.peer_certificate_expires.is_some());
    let warning = status.peer_certificate_warning.expect("a warning");
    assert!(warning.contains("expires in"), "{warning}");
    assert!(
        a.client
            .status()
            .await
            .expect("status")
            .peer_certificate_warning
            .is_none()
    );
    let text = c.client.metrics().await.expect("metrics");
    assert!(
        metric(
            &text,
            "sorcha_peer_tls_certificate_expiry_timestamp_seconds"
        ) > 1.7e9
    );

    // Revoke C: both others drop it within seconds and refuse it from then on.
    let (code, out, err) = tls(&[
        "revoke",
        "--ca",
        path(ca),
        path(&dir_c.path().join("node-cert.pem")),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    wait_until("A and B drop C", PATIENCE, || async {
        !connected(&a, &c).await && !connected(&b, &c).await
    })
    .await;
    holds_for("C stays out", HEARTBEAT * 15, || async {
        !connected(&a, &c).await && !connected(&b, &c).await && connected(&a, &b).await
    })
    .await;
    // C was disconnected for the revocation, and its re-dials are refused by the verifier.
    let text = a.client.metrics().await.expect("metrics");
    for reason in ["revoked", "bad_certificate"] {
        let name = format!(
            "sorcha_peer_transport_refusals_total{{direction=\"inbound\",reason=\"{reason}\"}}"
        );
        assert!(metric(&text, &name) >= 1.0, "{name}: {text}");
    }
    // Revoking twice is harmless.
    let (code, _, err) = tls(&[
        "revoke",
        "--ca",
        path(ca),
        path(&dir_c.path().join("node-cert.pem")),
    ])
    .await;
    assert_eq!(code, 0);
    assert!(err.contains("already revoked"), "{err}");

    // D holds a certificate from another CA (and trusts both): A refuses it.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = tls(&["ca", "--out", path(other_dir.path()), "--name", "rogue"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let dir_d = certified_dir(other_dir.path(), "365").await;
    let both = dir_d.path().join("both-cas.pem");
    let pem = [
        std::fs::read_to_string(&ca_file).expect("ca"),
        std::fs::read_to_string(other_dir.path().join("ca.pem")).expect("rogue ca"),
    ]
    .concat();
    std::fs::write(&both, pem).expect("write");
    let mut d = start_ca_node(
        &mut net,
        dir_d.path(),
        &both,
        &other_dir.path().join("crl.pem"),
        vec![a.seed()],
    )
    .await;
    wait_until("A refuses D's certificate", PATIENCE, || async {
        let text = a.client.metrics().await.expect("metrics");
        metric(
            &text,
            "sorcha_peer_transport_refusals_total{direction=\"inbound\",reason=\"bad_certificate\"}",
        ) >= 1.0
    })
    .await;
    holds_for("D never connects", HEARTBEAT * 10, || async {
        !connected(&a, &d).await
    })
    .await;

    for node in [&mut a, &mut b, &mut c, &mut d] {
        node.stop().await;
    }
}

/// A node refuses to start with a certificate issued for another node's key, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_key_stops_the_node_at_start() {
    let mut net = TestCluster::new();
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = tls(&["ca", "--out", path(ca_dir.path())]).await;
    assert_eq!(code, 0, "{err}");
    let other = certified_dir(ca_dir.path(), "365").await;
    let dir = tempfile::tempdir().expect("tempdir");
    Identity::load_or_create(dir.path()).expect("node key");
    let mut config = test_config(dir.path(), &net.ip());
    config.peer_tls = PeerTls::Ca;
    config.tls_ca_file = Some(ca_dir.path().join("ca.pem"));
    config.tls_cert_file = Some(other.path().join("node-cert.pem"));
    let message = refused_start(config, "another node's certificate").await;
    assert!(
        message.contains("tls_cert_file") && message.contains("issued for the key of peer"),
        "{message}"
    );
}

/// A node's public key, for rcgen to certify.
pub(crate) struct NodeKey(pub [u8; 32]);

impl rcgen::PublicKeyData for NodeKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

/// An expired certificate is refused: a node holding one says so at start instead of running
/// where every peer would refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_stops_the_node_at_start() {
    let mut net = TestCluster::new();
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = tls(&["ca", "--out", path(ca_dir.path())]).await;
    assert_eq!(code, 0, "{err}");
    // A certificate for this node's key that expired yesterday, signed by the CA.
    let dir = tempfile::tempdir().expect("tempdir");
    let identity = Identity::load_or_create(dir.path()).expect("node key");
    let read = |name: &str| std::fs::read_to_string(ca_dir.path().join(name)).expect("CA file");
    let ca_key = rcgen::KeyPair::from_pem(&read("ca.key")).expect("CA key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read("ca.pem"), ca_key).expect("CA");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let day = std::time::Duration::from_secs(86_400);
    params.not_before = (std::time::SystemTime::now() - day * 10).into();
    params.not_after = (std::time::SystemTime::now() - day).into();
    let cert = params
        .signed_by(&NodeKey(identity.public_key()), &issuer)
        .expect("certificate");
    std::fs::write(dir.path().join("node-cert.pem"), cert.pem()).expect("write");
    let mut config = test_config(dir.path(), &net.ip());
    config.peer_tls = PeerTls::Ca;
    config.tls_ca_file = Some(ca_dir.path().join("ca.pem"));
    config.tls_cert_file = Some(dir.path().join("node-cert.pem"));
    let message = refused_start(config, "an expired certificate").await;
    assert!(message.contains("expired"), "{message}");
}

/// Starts a node that must refuse to start (`with` says why it should), and returns why it did.
pub(crate) async fn refused_start(config: sorcha_peer::config::Config, with: &str) -> String {
    let listeners = sorcha_peer::node::Listeners::bind(&config)
        .await
        .expect("listeners");
    let started = sorcha_peer::node::start(
        config,
        listeners,
        tokio_util::sync::CancellationToken::new(),
    )
    .await;
    match started {
        Ok(_) => panic!("a node started with {with}"),
        Err(e) => e.to_string(),
    }
}
