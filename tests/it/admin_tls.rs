//! The admin API over https (`admin_tls_cert_file`, `admin_tls_key_file`): the CLI with
//! `--node https://… --cacert`, certificate problems as exit 3 with a message that says so,
//! JWTs and the drain of refused bodies over TLS, and TLS settings checked at start.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use reqwest::StatusCode;
use serde_json::json;
use sorcha_peer::client::AdminClient;
use sorcha_peer::config::{Config, Secret};

use crate::common::{PATIENCE, TestCluster, TestNode, bin, run_cmd};

const KEY: &str = "sorcha-peer-test-jwt-key-0123456789abcdef";

/// A private CA and a server certificate it issued, as PEM files.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Makes a CA and a certificate for `names` (IP addresses become IP SANs).
fn make_pki(names: &[&str]) -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sorcha-peer test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .expect("server params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        cert: write("server.pem", cert.pem()),
        key: write("server.key", key.serialize_pem()),
        _dir: dir,
    }
}

/// A node whose admin API serves https on its own address with a certificate of `pki`'s CA,
/// its test client trusting that CA.
async fn start_tls_node(
    net: &mut TestCluster,
    adjust: impl FnOnce(&mut Config),
) -> (TestNode, Pki) {
    let ip = net.ip();
    let pki = make_pki(&[&ip]);
    let mut node = TestNode::start(&ip, |c| {
        c.admin_listen = format!("{ip}:0").parse().expect("addr");
        c.admin_tls_cert_file = Some(pki.cert.clone());
        c.admin_tls_key_file = Some(pki.key.clone());
        adjust(c);
    })
    .await;
    node.client = AdminClient::connect(&node.admin_url, Some(node.token.clone()), Some(&pki.ca))
        .expect("client trusting the CA");
    (node, pki)
}

fn http_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// A story read top to bottom: its steps share state and order, so it stays whole.
#[allow(clippy::too_many_lines)]
async fn the_admin_api_serves_https_and_the_cli_trusts_it_with_cacert() {
    let mut net = TestCluster::new();
    let mut b = net.start(|_| {}).await;
    let seed = b.seed();
    let (mut a, pki) = start_tls_node(&mut net, |c| {
        c.seeds = vec![seed];
        c.jwt_key = Some(Secret::new(KEY));
    })
    .await;
    assert!(a.admin_url.starts_with("https://"), "{}", a.admin_url);
    let recorded = std::fs::read_to_string(a.data_dir().join("admin.url")).expect("admin.url");
    assert_eq!(recorded.trim(), a.admin_url, "the recorded URL says https");
    a.wait_for_state(&b.peer_id, "connected", PATIENCE).await;
    let ca = pki.ca.to_str().expect("path").to_string();

    // status and a ban through the CLI, trusting the private CA.
    let mut cmd = bin();
    cmd.args([
        "--node",
        &a.admin_url,
        "--cacert",
        &ca,
        "--token",
        &a.token,
        "-o",
        "json",
        "status",
    ]);
    let (code, stdout, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&a.peer_id), "{stdout}");
    let mut cmd = bin();
    cmd.args([
        "--node",
        &a.admin_url,
        "--cacert",
        &ca,
        "--token",
        &a.token,
        "peers",
        "ban",
        &b.peer_id,
    ]);
    let (code, stdout, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        a.client
            .bans()
            .await
            .expect("bans")
            .iter()
            .any(|ban| ban.target == b.peer_id),
        "the ban made over https is in force"
    );
    // The CA from the environment, a JWT with org_id as the token.
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"org_id": "org-1", "iat": now(), "exp": now() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(KEY.as_bytes()),
    )
    .expect("mint");
    let mut cmd = bin();
    cmd.env("SORCHA_PEER_CACERT", &ca)
        .env("SORCHA_PEER_TOKEN", &jwt)
        .args(["--node", &a.admin_url, "peers", "unban", &b.peer_id]);
    let (code, stdout, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(a.client.bans().await.expect("bans").is_empty());

    // Without the CA, or trusting another CA: exit 3, a certificate problem, nothing done.
    let other = make_pki(&["127.0.0.1"]);
    for extra in [vec![], vec!["--cacert", other.ca.to_str().expect("path")]] {
        let mut cmd = bin();
        cmd.args(["--node", &a.admin_url, "--token", &a.token])
            .args(&extra)
            .args(["peers", "ban", &b.peer_id]);
        let (code, stdout, stderr) = run_cmd(cmd).await;
        assert_eq!(code, 3, "{extra:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("certificate problem"),
            "{extra:?}: {stderr}"
        );
        assert!(stderr.contains("--cacert"), "{extra:?}: {stderr}");
    }
    assert!(a.client.bans().await.expect("bans").is_empty());
    // An unusable --cacert file is a usage error naming it.
    let mut cmd = bin();
    cmd.args([
        "--node",
        &a.admin_url,
        "--cacert",
        "/nonexistent/ca.pem",
        "status",
    ]);
    let (code, _, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--cacert /nonexistent/ca.pem"), "{stderr}");
    // http:// to the https listener, and https:// to a plain one: unreachable, said clearly.
    let plain_url = a.admin_url.replacen("https://", "http://", 1);
    let mut cmd = bin();
    cmd.args(["--node", &plain_url, "--token", &a.token, "status"]);
    let (code, _, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 3, "{stderr}");
    let tls_to_plain = b.admin_url.replacen("http://", "https://", 1);
    let mut cmd = bin();
    cmd.args([
        "--node",
        &tls_to_plain,
        "--cacert",
        &ca,
        "--token",
        &b.token,
        "status",
    ]);
    let (code, _, stderr) = run_cmd(cmd).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("TLS handshake failed"), "{stderr}");

    // Refusals before the body is read still reach a client that is sending a large body:
    // the drain of refused bodies works over TLS as over plain HTTP.
    let http = http_trusting(&pki.ca);
    a.client
        .create_register("over-tls", true)
        .await
        .expect("create");
    for _ in 0..5 {
        let response = http
            .post(format!(
                "{}/api/registers/over-tls/transactions",
                a.admin_url
            ))
            .body(vec![b'x'; 4 * 1024 * 1024])
            .send()
            .await
            .expect("an answer, not a reset");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = response.json().await.expect("JSON error");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("needs a token")),
            "{body}"
        );
    }
    // Monitoring and reads from loopback work over https as over http.
    for path in ["/healthz", "/metrics", "/api/peers"] {
        let response = http
            .get(format!("{}{path}", a.admin_url))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_tls_files_that_cannot_be_used_stop_the_start_and_name_the_key() {
    let mut net = TestCluster::new();
    let pki = make_pki(&["127.0.0.1"]);
    let other = make_pki(&["127.0.0.1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just text\n").expect("write");
    let cases = [
        (
            pki.cert.clone(),
            dir.path().join("missing.key"),
            "admin_tls_key_file",
        ),
        (not_pem.clone(), pki.key.clone(), "admin_tls_cert_file"),
        (pki.cert.clone(), not_pem.clone(), "admin_tls_key_file"),
        // A key that is not the certificate's.
        (
            pki.cert.clone(),
            other.key.clone(),
            "admin_tls_cert_file and admin_tls_key_file",
        ),
    ];
    for (cert, key, names) in cases {
        let data = dir.path().join("data");
        let mut config = crate::common::test_config(&data, &net.ip());
        config.admin_tls_cert_file = Some(cert.clone());
        config.admin_tls_key_file = Some(key.clone());
        let listeners = sorcha_peer::node::Listeners::bind(&config)
            .await
            .expect("bind");
        let error = match sorcha_peer::node::start(
            config,
            listeners,
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        {
            Ok(_) => panic!("a node started with {cert:?} / {key:?}"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains(names), "{names}: {error}");
        assert!(!data.exists(), "nothing was written: {error}");
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
