//! Certificates and revocation lists as a node reads them from its files (`transport::ca`,
//! `transport/crl.rs`, `tlsfiles`), against a real CA and node certificate made with
//! `sorcha-peer tls ca` / `tls issue` (`fuzz/fixtures`). The first byte picks what the rest is:
//!
//! 0. `tls_crl_file`: taken only if every list is signed by the CA; a taken list that lets the
//!    node's certificate through must not call it revoked either.
//! 1. `tls_cert_file`: taken only if it certifies this node's key under the CA.
//! 2. `tls_ca_file`: the node's certificate is accepted only under the CA that issued it.
//! 3. one DER certificate: the serial, expiry and node-key readers agree on what parses.
//! 4. the admin/platform listeners' certificate and key files (split at a NUL byte).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sorcha_peer::fuzzing::tls_server_config;
use sorcha_peer::identity::{Identity, NODE_KEY_FILE};
use sorcha_peer::transport::ca::{self, CaFiles, not_after_of, serial_of};
use sorcha_peer::transport::nodekey::node_key_of;

const CA_PEM: &str = include_str!("../fixtures/ca.pem");
const NODE_CERT_PEM: &str = include_str!("../fixtures/node-cert.pem");

struct Setup {
    dir: PathBuf,
    identity: Identity,
    ca: PathBuf,
    cert: PathBuf,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("sorcha-fuzz-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // The key the fixture certificate was issued for.
        std::fs::write(dir.join(NODE_KEY_FILE), hex::encode([4u8; 32])).expect("key");
        let identity = Identity::load_or_create(&dir).expect("node key");
        let (ca, cert) = (dir.join("ca.pem"), dir.join("node-cert.pem"));
        std::fs::write(&ca, CA_PEM).expect("ca");
        std::fs::write(&cert, NODE_CERT_PEM).expect("cert");
        Setup {
            dir,
            identity,
            ca,
            cert,
        }
    })
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = setup().dir.join(name);
    std::fs::write(&path, bytes).expect("temp file");
    path
}

fn files<'a>(ca: &'a Path, cert: &'a Path, crl: Option<&'a Path>) -> CaFiles<'a> {
    CaFiles {
        ca,
        cert,
        key: None,
        crl,
    }
}

fn pem_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// The (subject, key) of each certificate in a PEM file, as trust anchors hold them.
fn anchors(pem: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    pem_certs(pem)
        .iter()
        .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
        .map(|a| (a.subject.to_vec(), a.subject_public_key_info.to_vec()))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let s = setup();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match mode % 5 {
        0 => {
            let crl = write("crl.pem", rest);
            if let Ok((verifier, own)) = ca::load(&files(&s.ca, &s.cert, Some(&crl)), &s.identity) {
                let serial = serial_of(&own.chain[0]).expect("a taken certificate has a serial");
                assert!(!verifier.is_revoked(&serial), "accepted, so not revoked");
            }
        }
        1 => {
            let cert = write("cert.pem", rest);
            if let Ok((_, own)) = ca::load(&files(&s.ca, &cert, None), &s.identity) {
                assert_eq!(
                    node_key_of(&own.chain[0]).ok(),
                    Some(s.identity.public_key())
                );
                assert!(own.not_after > now, "a taken certificate is valid now");
            }
        }
        2 => {
            let ca_file = write("ca-fuzz.pem", rest);
            if ca::load(&files(&ca_file, &s.cert, None), &s.identity).is_ok() {
                // A CA file is trusted as it is: what counts is a certificate with the CA's
                // name and key, whatever else in it was changed.
                let ours = anchors(CA_PEM.as_bytes());
                assert!(
                    anchors(rest).iter().any(|a| ours.contains(a)),
                    "only our CA vouches"
                );
            }
        }
        3 => {
            let der = CertificateDer::from(rest);
            let serial = serial_of(&der);
            if node_key_of(&der).is_ok() {
                assert!(
                    serial.is_some(),
                    "what has a node key parses for its serial too"
                );
            }
            let _ = not_after_of(&der);
        }
        _ => {
            let (cert, key) = match rest.iter().position(|b| *b == 0) {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &[][..]),
            };
            let _ = tls_server_config(&write("tls-cert.pem", cert), &write("tls-key.pem", key));
        }
    }
});
