//! CA mode when something goes wrong, with real nodes: a revocation list that does not parse
//! or verify against the CA is refused (a node does not start with one; a running node keeps
//! the previous list, logs, counts and shows the problem until a good list arrives, and still
//! lets valid peers in); a session ends when a certificate expires, on both sides, and the
//! refusals that follow are logged by the refusing side; the CA's directory is private and a
//! garbage key file is named as one.

use std::path::Path;
use std::time::{Duration, SystemTime};

use sorcha_peer::config::PeerTls;
use sorcha_peer::identity::Identity;

use crate::common::serve::Serve;
use crate::common::{
    HEARTBEAT, PATIENCE, TestCluster, TestNode, holds_for, metric, run_cmd, test_config, wait_until,
};
use crate::transport_ca::{NodeKey, certified_dir, path, refused_start, start_ca_node, tls};

/// Writes `contents` over `path` as a deploy would: a new file renamed over the old one.
fn replace_file(path: &Path, contents: &[u8]) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, contents).expect("write");
    std::fs::rename(&temp, path).expect("rename");
}

/// A new CA in a fresh directory (`name` as its subject, or the default name).
async fn new_ca(name: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["ca", "--out", path(dir.path())];
    if let Some(name) = name {
        args.extend(["--name", name]);
    }
    let (code, out, err) = tls(&args).await;
    assert_eq!(code, 0, "{out}{err}");
    dir
}

/// Revocation list files a node must refuse, what each is, and a part of the reason it gives.
async fn bad_lists() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let rogue = new_ca(Some("rogue")).await;
    vec![
        (
            "random bytes",
            (0..2048).map(|_| rand::random::<u8>()).collect(),
            "holds no revocation list",
        ),
        ("an empty file", Vec::new(), "holds no revocation list"),
        (
            "another CA's list",
            std::fs::read(rogue.path().join("crl.pem")).expect("rogue CRL"),
            "which is not a CA in tls_ca_file",
        ),
    ]
}

/// A list with the CA's name that another key signed (from a second CA of the same name).
async fn impostor_list() -> Vec<u8> {
    let twin = new_ca(None).await;
    std::fs::read(twin.path().join("crl.pem")).expect("twin CRL")
}

/// The environment that puts a `serve` process in CA mode.
fn ca_env(ca_file: &Path, cert: &Path, crl: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("SORCHA_PEER_PEER_TLS", "ca".into()),
        ("SORCHA_PEER_TLS_CA_FILE", path(ca_file).into()),
        ("SORCHA_PEER_TLS_CERT_FILE", path(cert).into()),
        ("SORCHA_PEER_TLS_CRL_FILE", path(crl).into()),
    ]
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A CA, node A (a process, for its log) reading its own copy of the CA's list, and nodes B
/// and C connected to it.
struct RevocationSetup {
    ca: tempfile::TempDir,
    a: Serve,
    a_id: String,
    a_crl: std::path::PathBuf,
    b: TestNode,
    c: TestNode,
    _dirs: Vec<tempfile::TempDir>,
}

async fn revocation_setup(net: &mut TestCluster) -> RevocationSetup {
    let ca = new_ca(None).await;
    let ca_file = ca.path().join("ca.pem");
    let dir_a = certified_dir(ca.path(), "365").await;
    let a_crl = dir_a.path().join("a-crl.pem");
    std::fs::copy(ca.path().join("crl.pem"), &a_crl).expect("copy CRL");
    let env = ca_env(&ca_file, &dir_a.path().join("node-cert.pem"), &a_crl);
    let a = Serve::start_in(dir_a, &net.ip(), &env_refs(&env), &[]);
    let a_addr = a.peer_address().await;
    let a_id = a.client().await.status().await.expect("status").peer_id;
    let (dir_b, dir_c) = (
        certified_dir(ca.path(), "365").await,
        certified_dir(ca.path(), "365").await,
    );
    let crl = ca.path().join("crl.pem");
    let b = start_ca_node(net, dir_b.path(), &ca_file, &crl, vec![a_addr.clone()]).await;
    let c = start_ca_node(net, dir_c.path(), &ca_file, &crl, vec![a_addr]).await;
    wait_until("B and C connect to A", PATIENCE, || async {
        b.state_of(&a_id).await == "connected" && c.state_of(&a_id).await == "connected"
    })
    .await;
    RevocationSetup {
        ca,
        a,
        a_id,
        a_crl,
        b,
        c,
        _dirs: vec![dir_b, dir_c],
    }
}

/// A's refusal count of revocation list files.
async fn crl_failures(a: &Serve) -> f64 {
    let text = a.client().await.metrics().await.expect("metrics");
    metric(&text, "sorcha_peer_tls_crl_reload_failures_total")
}

/// A refuses `list`: it logs the file and `reason`, counts it, and health and status warn.
async fn refused_loudly(s: &RevocationSetup, what: &str, list: &[u8], reason: &str) {
    let before = crl_failures(&s.a).await;
    replace_file(&s.a_crl, list);
    wait_until(&format!("A counts refusing {what}"), PATIENCE, || async {
        crl_failures(&s.a).await > before
    })
    .await;
    s.a.wait_log_line(
        &format!("A logs the file and why it refuses {what}"),
        &["refusing the new revocation list", path(&s.a_crl), reason],
    )
    .await;
    let client = s.a.client().await;
    let health = client.health().await.expect("health");
    // The service works (the platform reads `healthy`); the refusal is a warning.
    assert_eq!(health.status, "healthy", "{what}: {health:?}");
    assert!(
        health.warnings.iter().any(|w| w.contains(reason)),
        "{what}: {health:?}"
    );
    let problem = client
        .status()
        .await
        .expect("status")
        .revocation_list_problem
        .unwrap_or_default();
    assert!(problem.contains(reason), "{what}: {problem}");
}

/// Revokes C and gives A the new list; A drops C.
async fn revoke_c(s: &RevocationSetup) {
    let cert = s.c.data_dir().join("node-cert.pem");
    let (code, out, err) = tls(&["revoke", "--ca", path(s.ca.path()), path(&cert)]).await;
    assert_eq!(code, 0, "{out}{err}");
    let list = std::fs::read(s.ca.path().join("crl.pem")).expect("CRL");
    replace_file(&s.a_crl, &list);
    wait_until("A drops the revoked C", PATIENCE, || async {
        s.c.state_of(&s.a_id).await != "connected"
    })
    .await;
}

/// A revoked peer stays out whatever replaces the list: garbage, an empty file, another CA's
/// list. Each is refused loudly until a good list arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_revocation_list_keeps_the_previous_one_and_says_so() {
    let mut net = TestCluster::new();
    let mut s = revocation_setup(&mut net).await;
    revoke_c(&s).await;
    let good = std::fs::read(&s.a_crl).expect("CRL");
    for (what, list, reason) in bad_lists().await {
        replace_file(&s.a_crl, &list);
        holds_for(
            &format!("the revoked C stays out after {what}"),
            HEARTBEAT * 15,
            || async { s.c.state_of(&s.a_id).await != "connected" },
        )
        .await;
        refused_loudly(&s, what, &list, reason).await;
    }
    // A good list ends the warnings; C is still revoked.
    replace_file(&s.a_crl, &good);
    wait_until("A's health is clear again", PATIENCE, || async {
        s.a.client()
            .await
            .health()
            .await
            .expect("health")
            .warnings
            .is_empty()
    })
    .await;
    let status = s.a.client().await.status().await.expect("status");
    assert_eq!(status.revocation_list_problem, None);
    s.a.wait_log("A says the list is usable again", "usable again")
        .await;
    assert_ne!(s.c.state_of(&s.a_id).await, "connected");
    s.b.stop().await;
    s.c.stop().await;
}

/// A list under the CA's name signed by another key does not block anyone: a valid peer that
/// reconnects is let in, and the list is refused loudly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_signed_by_another_key_is_refused_and_peers_still_connect() {
    let mut net = TestCluster::new();
    let mut s = revocation_setup(&mut net).await;
    let impostor = impostor_list().await;
    replace_file(&s.a_crl, &impostor);
    // Let A see it (its refusal is counted) before B reconnects.
    wait_until("A reads the new list", PATIENCE, || async {
        crl_failures(&s.a).await >= 1.0 || s.a.log().contains("revocation list re-read")
    })
    .await;
    s.b.restart().await;
    wait_until("the valid B reconnects to A", PATIENCE, || async {
        s.b.state_of(&s.a_id).await == "connected"
    })
    .await;
    refused_loudly(
        &s,
        "a list signed by another key",
        &impostor,
        "signature does not verify with that CA's key",
    )
    .await;
    s.b.stop().await;
    s.c.stop().await;
}

/// A node does not start on a revocation list it cannot trust, and says which file and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_does_not_start_with_a_bad_revocation_list() {
    let mut net = TestCluster::new();
    let ca = new_ca(None).await;
    let dir = certified_dir(ca.path(), "365").await;
    let crl = dir.path().join("crl.pem");
    let mut lists = bad_lists().await;
    lists.push((
        "a list signed by another key",
        impostor_list().await,
        "signature does not verify",
    ));
    for (what, list, reason) in lists {
        std::fs::write(&crl, &list).expect("write");
        let mut config = test_config(dir.path(), &net.ip());
        config.peer_tls = PeerTls::Ca;
        config.tls_ca_file = Some(ca.path().join("ca.pem"));
        config.tls_cert_file = Some(dir.path().join("node-cert.pem"));
        config.tls_crl_file = Some(crl.clone());
        let message = refused_start(config, what).await;
        assert!(
            message.contains("tls_crl_file") && message.contains(path(&crl)),
            "{what}: {message}"
        );
        assert!(message.contains(reason), "{what}: {message}");
    }
}

/// A certificate for the node key in `dir`, from the CA in `ca`, valid until `not_after`.
fn certificate_until(ca: &Path, dir: &Path, not_after: SystemTime) {
    let identity = Identity::load_or_create(dir).expect("node key");
    let read = |name: &str| std::fs::read_to_string(ca.join(name)).expect("CA file");
    let ca_key = rcgen::KeyPair::from_pem(&read("ca.key")).expect("CA key");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read("ca.pem"), ca_key).expect("CA");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = (SystemTime::now() - Duration::from_secs(3600)).into();
    params.not_after = not_after.into();
    let cert = params
        .signed_by(&NodeKey(identity.public_key()), &issuer)
        .expect("certificate");
    std::fs::write(dir.join("node-cert.pem"), cert.pem()).expect("write");
}

/// A session ends when the peer's certificate expires: the node holding it says its own has
/// expired, the other closes the session, says why and counts it (only that side closes, so
/// which side logs the reason never depends on which woke first), and the expired node's
/// attempts to come back are refused and logged by the refusing side, at a bounded rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn a_session_ends_when_a_certificate_expires() {
    // Long enough for two nodes to start and connect, short enough to wait for.
    const LIFETIME: Duration = Duration::from_secs(25);
    let mut net = TestCluster::new();
    let ca = new_ca(None).await;
    let ca_file = ca.path().join("ca.pem");
    let crl = ca.path().join("crl.pem");
    let dir_a = certified_dir(ca.path(), "365").await;
    let dir_c = tempfile::tempdir().expect("tempdir");
    let expires = SystemTime::now() + LIFETIME;
    certificate_until(ca.path(), dir_c.path(), expires);
    let env_a = ca_env(&ca_file, &dir_a.path().join("node-cert.pem"), &crl);
    let a = Serve::start_in(dir_a, &net.ip(), &env_refs(&env_a), &[]);
    let a_addr = a.peer_address().await;
    let env_c = ca_env(&ca_file, &dir_c.path().join("node-cert.pem"), &crl);
    let c = Serve::start_in(dir_c, &net.ip(), &env_refs(&env_c), &[a_addr]);
    let (a_client, c_client) = (a.client().await, c.client().await);
    let c_id = c_client.status().await.expect("status").peer_id;
    let connected = |client: &sorcha_peer::client::AdminClient| {
        let client = client.clone();
        async move { client.status().await.expect("status").peers.connected }
    };
    wait_until("C connects to A", PATIENCE, || async {
        connected(&a_client).await == 1 && connected(&c_client).await == 1
    })
    .await;
    assert!(
        SystemTime::now() < expires,
        "the nodes took longer to connect than the certificate lives"
    );
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    wait_until(
        "the session ends on both sides",
        left + PATIENCE,
        || async { connected(&a_client).await == 0 && connected(&c_client).await == 0 },
    )
    .await;
    a.wait_log_line(
        "A says why it closed the session",
        &["peer whose TLS certificate expired", &c_id],
    )
    .await;
    c.wait_log(
        "C says its own certificate expired and what follows",
        "this node's peer TLS certificate (tls_cert_file) has expired: its peers close its sessions",
    )
    .await;
    let text = a_client.metrics().await.expect("metrics");
    assert!(
        metric(&text, "sorcha_peer_tls_sessions_expired_total") >= 1.0,
        "A: {text}"
    );
    let text = c_client.metrics().await.expect("metrics");
    assert_eq!(
        metric(&text, "sorcha_peer_tls_sessions_expired_total"),
        0.0,
        "C closed nothing itself: {text}"
    );
    // C keeps dialling A; A refuses each attempt and logs it, but not each one.
    let refusals =
        "sorcha_peer_transport_refusals_total{direction=\"inbound\",reason=\"bad_certificate\"}";
    wait_until("A refuses C's attempts to come back", PATIENCE, || async {
        metric(&a_client.metrics().await.expect("metrics"), refusals) >= 5.0
    })
    .await;
    a.wait_log_line(
        "A logs refusing C's expired certificate",
        &["peer connection refused", "the certificate has expired"],
    )
    .await;
    let logged = a
        .log()
        .lines()
        .filter(|l| l.contains("peer connection refused") && l.contains("has expired"))
        .count();
    let counted = metric(&a_client.metrics().await.expect("metrics"), refusals);
    assert!(
        (logged as f64) < counted,
        "every refusal was logged ({logged} lines for {counted} refusals)"
    );
    holds_for("C stays out", HEARTBEAT * 10, || async {
        connected(&a_client).await == 0
    })
    .await;
}

/// `tls ca` keeps its directory to its owner, and key files that are not keys say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_directory_is_private_and_garbage_keys_are_named() {
    let ca = new_ca(None).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ca.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "the CA directory is {:o}",
            mode & 0o777
        );
    }
    let node = tempfile::tempdir().expect("tempdir");
    Identity::load_or_create(node.path()).expect("node key");
    let issue = || async {
        let mut cmd = crate::common::bin();
        cmd.args(["tls", "issue", "--ca", path(ca.path())])
            .args(["--data-dir", path(node.path())]);
        run_cmd(cmd).await
    };
    let garbage: Vec<u8> = (0..256).map(|i| (i as u8) ^ 0x80).collect();
    let ca_key = ca.path().join("ca.key");
    let saved = std::fs::read(&ca_key).expect("CA key");
    std::fs::write(&ca_key, &garbage).expect("write");
    let (code, _, err) = issue().await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("ca.key is not a PEM private key: it is not text"),
        "{err}"
    );
    std::fs::write(&ca_key, "not a key\n").expect("write");
    let (code, _, err) = issue().await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("ca.key is not a usable PEM private key"),
        "{err}"
    );
    std::fs::write(&ca_key, saved).expect("write");
    std::fs::write(node.path().join("node.key"), &garbage).expect("write");
    let (code, _, err) = issue().await;
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("node.key is corrupt: not text"), "{err}");
}
