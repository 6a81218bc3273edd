//! A TLS server configuration from an operator's PEM files (a certificate chain and its key):
//! any usual certificate, TLS 1.2 or 1.3, no client certificate. Used by the admin and the
//! platform listeners, each naming its own config keys in its errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PemFilesError {
    #[error("{path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{0}")]
    Pair(String),
}

/// Reads `cert_path` (a PEM chain) and `key_path` and checks they belong together; `alpn` is
/// what the listener offers.
pub(crate) fn server_config(
    cert_path: &Path,
    key_path: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, PemFilesError> {
    let cert_error = |message: String| PemFilesError::Cert {
        path: cert_path.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_error(pem_problem(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(pem_problem(e)))?;
    if certs.is_empty() {
        return Err(cert_error(
            "no PEM certificate (BEGIN CERTIFICATE) in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| PemFilesError::Key {
        path: key_path.to_path_buf(),
        message: pem_problem(e),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PemFilesError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| PemFilesError::Pair(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What is wrong with a PEM file, in words (rustls' errors name no file and no remedy).
pub(crate) fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind".into(),
        rustls::pki_types::pem::Error::Io(io) => format!("cannot read: {io}"),
        other => format!("not valid PEM: {other}"),
    }
}
