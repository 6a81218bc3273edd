//! CA mode (`peer_tls = "ca"`): mutual TLS for managed networks. Each node presents a
//! certificate the network's CA issued for its node key (`sorcha-peer tls issue`), so the
//! peer ID still comes from the key in the certificate and one identity serves both layers.
//! Only certificates that chain to `tls_ca_file`, are within their validity and are not
//! listed in `tls_crl_file` are accepted, in both directions. A revocation list is taken only
//! when the CA signed it (`crl.rs`). It is re-read when the file changes
//! ([`CaVerifier::read_crls`], [`CaVerifier::set_crls`]); the caller then disconnects the
//! peers whose certificates it revokes ([`CaVerifier::is_revoked`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::CertificateError;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor, UnixTime};
use webpki::{CertRevocationList, EndEntityCert, KeyUsage};

use super::nodekey;
use super::verify::{CertificatePolicy, Presenter};
use crate::identity::{Identity, peer_id_for};

/// Why the CA-mode files cannot be used; each names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{key} {path}: {message}")]
    File {
        key: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error(
        "tls_cert_file {path} is issued for the key of peer {cert_peer}, but this node is {node_peer} (issue one for this node: sorcha-peer tls issue --data-dir <this node's data dir>)"
    )]
    NotForThisNode {
        path: PathBuf,
        cert_peer: String,
        node_peer: String,
    },
    #[error(
        "tls_key_file {path} is not this node's key (node.key); leave it unset to use node.key"
    )]
    KeyMismatch { path: PathBuf },
    #[error("tls_cert_file {path} is not accepted by the CA in tls_ca_file: {reason}")]
    NotAccepted { path: PathBuf, reason: String },
}

/// The CA-mode settings, from the configuration.
pub struct CaFiles<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: Option<&'a Path>,
    pub crl: Option<&'a Path>,
}

/// This node's certificate chain and when its certificate expires.
pub struct OwnCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    /// Unix seconds of the certificate's notAfter.
    pub not_after: i64,
}

fn file_error(key: &'static str, path: &Path, message: impl Into<String>) -> CaError {
    CaError::File {
        key,
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Every certificate in a PEM file (at least one).
pub fn read_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(key, path, crate::tlsfiles::pem_problem(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, crate::tlsfiles::pem_problem(e)))?;
    if certs.is_empty() {
        return Err(file_error(
            key,
            path,
            "no PEM certificate (BEGIN CERTIFICATE)",
        ));
    }
    Ok(certs)
}

/// Reads and checks the CA-mode files for `identity`: the certificate must hold the node key,
/// chain to the CA and be valid now; a key file, when given, must be the node key.
pub fn load(
    files: &CaFiles<'_>,
    identity: &Identity,
) -> Result<(Arc<CaVerifier>, OwnCertificate), CaError> {
    let roots = read_certificates("tls_ca_file", files.ca)?
        .iter()
        .map(|der| {
            webpki::anchor_from_trusted_cert(der)
                .map(|anchor| anchor.to_owned())
                .map_err(|e| {
                    file_error(
                        "tls_ca_file",
                        files.ca,
                        format!("not a usable CA certificate: {e:?}"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verifier = Arc::new(CaVerifier::new(roots));
    if let Some(path) = files.crl {
        verifier.set_crls(verifier.read_crls(path)?);
    }
    let chain = read_certificates("tls_cert_file", files.cert)?;
    let key = nodekey::node_key_of(&chain[0])
        .map_err(|e| file_error("tls_cert_file", files.cert, e.to_string()))?;
    if key != identity.public_key() {
        return Err(CaError::NotForThisNode {
            path: files.cert.to_path_buf(),
            cert_peer: peer_id_for(&key),
            node_peer: identity.peer_id().to_string(),
        });
    }
    if let Some(path) = files.key {
        check_key_file(path, identity)?;
    }
    verifier
        .verify(
            &chain[0],
            &chain[1..],
            UnixTime::now(),
            KeyUsage::client_auth(),
        )
        .map_err(|e| CaError::NotAccepted {
            path: files.cert.to_path_buf(),
            reason: problem(&e),
        })?;
    let not_after = not_after_of(&chain[0]).ok_or_else(|| {
        file_error(
            "tls_cert_file",
            files.cert,
            "the certificate cannot be parsed",
        )
    })?;
    Ok((verifier, OwnCertificate { chain, not_after }))
}

/// A `tls_key_file` is accepted only when it is the node key itself.
fn check_key_file(path: &Path, identity: &Identity) -> Result<(), CaError> {
    let key = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| file_error("tls_key_file", path, crate::tlsfiles::pem_problem(e)))?;
    let not_ed25519 = || file_error("tls_key_file", path, "not a PKCS #8 Ed25519 key");
    let PrivateKeyDer::Pkcs8(pkcs8) = &key else {
        return Err(not_ed25519());
    };
    let signing = rustls::crypto::ring::sign::any_eddsa_type(pkcs8).map_err(|_| not_ed25519())?;
    let public = signing
        .public_key()
        .and_then(|spki| crate::identity::ed25519_key_of_spki(spki.as_ref()));
    if public != Some(identity.public_key()) {
        return Err(CaError::KeyMismatch {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Accepts certificates that chain to the CA, are valid now, are not revoked and carry an
/// Ed25519 node key (the shared verifier checks the peer proves it holds it).
#[derive(Debug)]
pub struct CaVerifier {
    roots: Vec<TrustAnchor<'static>>,
    crls: RwLock<Arc<Vec<CertRevocationList<'static>>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl CaVerifier {
    fn new(roots: Vec<TrustAnchor<'static>>) -> CaVerifier {
        CaVerifier {
            roots,
            crls: RwLock::new(Arc::new(Vec::new())),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    fn crls(&self) -> Arc<Vec<CertRevocationList<'static>>> {
        self.crls
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The revocation lists in `path`, each checked to be issued and signed by one of this
    /// verifier's CAs (`crl.rs`); the file is refused as a whole otherwise.
    pub fn read_crls(&self, path: &Path) -> Result<Vec<CertRevocationList<'static>>, CaError> {
        super::crl::read(path, &self.roots, self.algorithms.all)
            .map_err(|e| file_error("tls_crl_file", path, e.to_string()))
    }

    /// Replaces the revocation lists (with ones [`CaVerifier::read_crls`] took); connections
    /// from now on are checked against them.
    pub fn set_crls(&self, crls: Vec<CertRevocationList<'static>>) {
        *self
            .crls
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(crls);
    }

    /// True when the current lists revoke the certificate with this serial (as
    /// [`serial_of`] gives it).
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.crls()
            .iter()
            .any(|crl| matches!(crl.find_serial(serial), Ok(Some(_))))
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
    ) -> Result<(), rustls::Error> {
        let cert = EndEntityCert::try_from(end_entity)
            .map_err(|e| rustls::Error::InvalidCertificate(webpki_problem(e)))?;
        let crls = self.crls();
        let crl_refs: Vec<&CertRevocationList<'_>> = crls.iter().collect();
        let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
            .ok()
            .map(|builder| {
                builder
                    .with_depth(webpki::RevocationCheckDepth::EndEntity)
                    .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                    .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                    .build()
            });
        cert.verify_for_usage(
            self.algorithms.all,
            &self.roots,
            intermediates,
            now,
            usage,
            revocation,
            None,
        )
        .map_err(|e| rustls::Error::InvalidCertificate(webpki_problem(e)))?;
        nodekey::node_key_of(end_entity).map_err(nodekey::invalid)?;
        Ok(())
    }
}

/// The serial number of a certificate, as revocation lists name it.
pub fn serial_of(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    EndEntityCert::try_from(cert)
        .ok()
        .map(|c| c.serial().to_vec())
}

/// A certificate's notAfter, in unix seconds.
pub fn not_after_of(cert: &CertificateDer<'_>) -> Option<i64> {
    x509_parser::parse_x509_certificate(cert)
        .ok()
        .map(|(_, c)| c.validity().not_after.timestamp())
}

fn webpki_problem(e: webpki::Error) -> CertificateError {
    match e {
        webpki::Error::CertExpired { .. } => CertificateError::Expired,
        webpki::Error::CertNotValidYet { .. } => CertificateError::NotValidYet,
        webpki::Error::CertRevoked => CertificateError::Revoked,
        webpki::Error::UnknownIssuer => CertificateError::UnknownIssuer,
        webpki::Error::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => CertificateError::Other(rustls::OtherError(Arc::new(other))),
    }
}

fn problem(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => super::certificate_problem(c),
        other => other.to_string(),
    }
}

impl CertificatePolicy for CaVerifier {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        presenter: Presenter,
    ) -> Result<(), rustls::Error> {
        let usage = match presenter {
            Presenter::Server => KeyUsage::server_auth(),
            Presenter::Client => KeyUsage::client_auth(),
        };
        self.verify(end_entity, intermediates, now, usage)
    }
}
