//! A stock gRPC client outside Rust: Debian's `python3-grpcio`, with no generated code, calls
//! the TLS platform listener trusting only the CA certificate (`stock_client.py`). Skipped
//! with the reason when python3 with grpc is missing; under `CI=true` that fails instead.

use std::path::Path;
use std::process::Stdio;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use sorcha_peer::ledger::tx_id;

use super::{platform_addr, platform_on};
use crate::common::faults::skip;
use crate::common::{PATIENCE, TestCluster, TestNode};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/platform/stock_client.py"
);

/// A python3 that has grpc: Debian's own first (where `python3-grpcio` installs), then PATH's.
async fn python_with_grpc() -> Option<&'static str> {
    for python in ["/usr/bin/python3", "python3"] {
        let found = tokio::process::Command::new(python)
            .args(["-c", "import grpc"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if found {
            return Some(python);
        }
    }
    None
}

/// A CA, and a certificate for `ip` with an ECDSA key signed by it, written to `dir`: returns
/// (CA file, certificate file, key file).
fn certificates(
    dir: &Path,
    ip: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // OpenSSL (grpcio's) tells issuer from subject by name: the two must differ.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sorcha-peer test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("key");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = KeyPair::generate().expect("ECDSA key");
    let mut params = CertificateParams::new(vec![ip.to_string()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "sorcha-peer platform listener");
    let cert = params.signed_by(&key, &ca).expect("certificate");
    let files = (dir.join("ca.pem"), dir.join("c.pem"), dir.join("k.pem"));
    std::fs::write(&files.0, ca.pem()).expect("write");
    std::fs::write(&files.1, cert.pem()).expect("write");
    std::fs::write(&files.2, key.serialize_pem()).expect("write");
    files
}

/// The same with an RSA key and a CA made by the `openssl` command, as an operator's own PKI
/// would issue them: (CA file, certificate file, key file).
fn rsa_certificates(
    dir: &Path,
    ip: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=sorcha-peer test RSA CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "k.pem",
        "-out",
        "c.csr",
        "-subj",
        "/CN=sorcha-peer platform listener",
    ]);
    std::fs::write(dir.join("ext.cnf"), format!("subjectAltName=IP:{ip}\n")).expect("write");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "c.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "c.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("c.pem"), dir.join("k.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_calls_the_tls_platform_listener_with_only_the_ca() {
    const TEST: &str = "python_grpcio_calls_the_tls_platform_listener_with_only_the_ca";
    stock_client_calls(TEST, certificates).await;
}

/// An RSA certificate from an ordinary CA serves as well as an ECDSA one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_certificate_from_an_openssl_ca_serves_the_platform_listener() {
    const TEST: &str = "an_rsa_certificate_from_an_openssl_ca_serves_the_platform_listener";
    stock_client_calls(TEST, rsa_certificates).await;
}

type MakeCertificates =
    fn(&Path, &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf);

/// A node with a TLS platform listener on the certificate `make` writes, called by
/// `stock_client.py` trusting only the CA.
async fn stock_client_calls(test: &str, make: MakeCertificates) {
    let Some(python) = python_with_grpc().await else {
        skip(
            test,
            "no python3 with grpc (Debian: apt-get install python3-grpcio)",
        );
        return;
    };
    let mut net = TestCluster::new();
    let ip = net.ip();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca_file, cert_file, key_file) = make(dir.path(), &ip);
    let mut a = TestNode::start(&ip, |c| {
        platform_on(c);
        c.platform_tls_cert_file = Some(cert_file);
        c.platform_tls_key_file = Some(key_file);
    })
    .await;
    a.client.create_register("py", false).await.expect("create");
    let tx = a
        .client
        .submit("py", b"{\"n\":1}".to_vec())
        .await
        .expect("submit");
    a.wait_sealed("py", &tx.transaction_id, PATIENCE).await;

    let submission = r#"{"from":"python","n":2}"#;
    let run = tokio::process::Command::new(python)
        .arg(SCRIPT)
        .arg(platform_addr(&a).to_string())
        .arg(&ca_file)
        .arg("py")
        .arg(submission)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE * 2, run)
        .await
        .expect("the script ends within the limit")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("latest 1 {} 1", a.peer_id).as_str(),
            // ACTIVE (at the origin), two dockets (the genesis and one).
            "status 4 2",
            "chain 1",
            "submitted 1 1",
            "bad INVALID_ARGUMENT",
        ],
        "{stderr}"
    );
    // What Python submitted is sealed like any other transaction.
    a.wait_sealed("py", &tx_id(submission.as_bytes()), PATIENCE)
        .await;
    a.stop().await;
}
