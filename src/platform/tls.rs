//! TLS on the platform listener (`platform_tls_cert_file`, `platform_tls_key_file`): any usual
//! certificate (RSA or ECDSA, from a CA, with its chain), TLS 1.2 or 1.3, ALPN `h2` (gRPC
//! clients such as .NET's and grpcio insist on it) and no client certificate, so a stock
//! client needs only the CA certificate. Read and checked at start.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ServerConfig;

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
pub(crate) fn server_config(
    config: &Config,
) -> Result<Option<Arc<ServerConfig>>, PlatformTlsError> {
    let (Some(cert_path), Some(key_path)) = (
        &config.platform_tls_cert_file,
        &config.platform_tls_key_file,
    ) else {
        // The configuration's own check requires both or neither.
        return Ok(None);
    };
    use crate::tlsfiles::PemFilesError as E;
    crate::tlsfiles::server_config(cert_path, key_path, &[b"h2"])
        .map(Some)
        .map_err(|e| match e {
            E::Cert { path, message } => PlatformTlsError::Cert { path, message },
            E::Key { path, message } => PlatformTlsError::Key { path, message },
            E::Pair(message) => PlatformTlsError::Pair(message),
        })
}
