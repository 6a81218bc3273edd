//! TLS on the platform listener (`platform_tls_cert_file`, `platform_tls_key_file`): any usual
//! certificate (RSA or ECDSA, from a CA, with its chain), TLS 1.2 or 1.3, ALPN `h2` (gRPC
//! clients such as .NET's and grpcio insist on it) and no client certificate, so a stock
//! client needs only the CA certificate. Read and checked at start.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

/// Why the platform TLS settings cannot be used; each names the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum PlatformTlsError {
    #[error("platform_tls_cert_file {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("platform_tls_key_file {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("platform_tls_cert_file and platform_tls_key_file cannot be used together: {0}")]
    Pair(String),
}

/// The TLS settings the configuration asks for (`None`: h2c, plaintext HTTP/2).
pub fn server_config(config: &Config) -> Result<Option<Arc<ServerConfig>>, PlatformTlsError> {
    let (Some(cert_path), Some(key_path)) = (
        &config.platform_tls_cert_file,
        &config.platform_tls_key_file,
    ) else {
        // The configuration's own check requires both or neither.
        return Ok(None);
    };
    let cert_error = |e: rustls::pki_types::pem::Error| PlatformTlsError::Cert {
        path: cert_path.clone(),
        message: pem_problem(e),
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(cert_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(cert_error)?;
    if certs.is_empty() {
        return Err(PlatformTlsError::Cert {
            path: cert_path.clone(),
            message: "no PEM certificate (BEGIN CERTIFICATE) in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| PlatformTlsError::Key {
        path: key_path.clone(),
        message: pem_problem(e),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PlatformTlsError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| PlatformTlsError::Pair(e.to_string()))?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Arc::new(tls)))
}

fn pem_problem(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "no PEM item of the expected kind in the file".into()
        }
        rustls::pki_types::pem::Error::Io(io) => format!("cannot read: {io}"),
        other => format!("not valid PEM: {other}"),
    }
}
