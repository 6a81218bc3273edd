//! `sorcha-peer tls`: a small certificate authority for `peer_tls = "ca"` networks, made with
//! rcgen. `tls ca` makes one in a directory (`ca.pem` for every node, `ca.key` kept secret,
//! an empty `crl.pem`); `tls issue` certifies a node's own key (from its data directory);
//! `tls revoke` adds a certificate to `crl.pem`, which nodes re-read within a second or two.
//! Nothing here talks to a node.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;

use super::output::Output;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::identity::{Identity, NODE_KEY_FILE};

/// The CA's files, by name within its directory.
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const CA_CRL: &str = "crl.pem";
/// One revoked serial (hex) and its revocation time (unix seconds) per line: what `crl.pem`
/// is regenerated from.
const CA_REVOKED: &str = "revoked.txt";
/// Where `tls issue` writes a node's certificate, in its data directory, unless told.
pub(crate) const NODE_CERT_FILE: &str = "node-cert.pem";
const DAY: Duration = Duration::from_secs(86_400);

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Make a certificate authority in DIR: ca.pem (every node's tls_ca_file), ca.key (keep it
    /// secret), crl.pem (every node's tls_crl_file)
    Ca {
        /// Directory to create the CA in (created if missing; existing CA files are never
        /// overwritten)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's name (its certificate's subject)
        #[arg(long, default_value = "sorcha-peer network CA")]
        name: String,
        /// Days the CA certificate is valid
        #[arg(long, default_value_t = 3650, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
    },
    /// Issue a certificate for the node whose data directory --data-dir names (its node.key),
    /// signed by the CA in --ca; written to <data-dir>/node-cert.pem unless --out says
    Issue {
        /// The CA's directory (from `tls ca`)
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// Days the certificate is valid
        #[arg(long, default_value_t = 365, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        days: u32,
        /// Where to write the certificate (PEM) [default: <data-dir>/node-cert.pem]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Revoke a node certificate: add it to the CA's crl.pem (nodes re-read it and disconnect
    /// the node)
    Revoke {
        /// The CA's directory (from `tls ca`)
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The certificate to revoke (PEM)
        #[arg(value_name = "CERT_FILE")]
        cert: PathBuf,
    },
}

/// A failure of a `tls` command, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
enum TlsToolError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

pub(crate) fn run(data_dir: &Path, out: &Output, command: TlsCommand) -> i32 {
    let result = match command {
        TlsCommand::Ca {
            out: dir,
            name,
            days,
        } => make_ca(&dir, &name, days, out),
        TlsCommand::Issue {
            ca,
            days,
            out: file,
        } => issue(&ca, data_dir, days, file, out),
        TlsCommand::Revoke { ca, cert } => revoke(&ca, &cert, out),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            out.error(&e.to_string());
            match e {
                TlsToolError::Usage(_) => EXIT_USAGE,
                TlsToolError::Failed(_) => EXIT_FAILED,
            }
        }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> TlsToolError {
    TlsToolError::Failed(format!("{what}: {e}"))
}

/// Writes `contents` to `path` through a temporary file and a rename, so a node re-reading
/// the file never sees half of it; `secret` files are readable by the owner only.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), TlsToolError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    });
    written
        .and_then(|()| fs::rename(&temp, path))
        .map_err(|e| failed(&format!("cannot write {}", path.display()), e))
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and without a leading zero byte, as X.509 serials should be.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn make_ca(dir: &Path, name: &str, days: u32, out: &Output) -> Result<(), TlsToolError> {
    fs::create_dir_all(dir).map_err(|e| failed(&format!("cannot create {}", dir.display()), e))?;
    // The directory holds the CA's key: only its owner may list or enter it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| {
            failed(
                &format!("cannot restrict {} to its owner", dir.display()),
                e,
            )
        })?;
    }
    for file in [CA_CERT, CA_KEY] {
        if dir.join(file).exists() {
            return Err(TlsToolError::Usage(format!(
                "{} already exists: a CA is never overwritten",
                dir.join(file).display()
            )));
        }
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| failed("CA key", e))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA", e))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial());
    params.not_before = (SystemTime::now() - DAY).into();
    params.not_after = (SystemTime::now() + DAY * days).into();
    let cert = params.self_signed(&key).map_err(|e| failed("CA", e))?;
    write_file(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write_file(&dir.join(CA_CERT), &cert.pem(), false)?;
    write_file(&dir.join(CA_REVOKED), "", false)?;
    let issuer = Issuer::new(params, key);
    write_crl(dir, &issuer, &[])?;
    if out.json {
        out.print_json(&json!({
            "caCertificate": dir.join(CA_CERT),
            "caKey": dir.join(CA_KEY),
            "crl": dir.join(CA_CRL),
        }));
    } else {
        out.message(&format!(
            "Made a CA in {}: give {CA_CERT} (tls_ca_file) and {CA_CRL} (tls_crl_file) to every node; keep {CA_KEY} secret.",
            dir.display()
        ));
    }
    Ok(())
}

/// The CA in `dir`, ready to sign.
fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, TlsToolError> {
    let key_path = dir.join(CA_KEY);
    let key = KeyPair::from_pem(&read_pem(&key_path, "private key")?).map_err(|e| {
        TlsToolError::Usage(format!(
            "{} is not a usable PEM private key: {e}",
            key_path.display()
        ))
    })?;
    let cert_path = dir.join(CA_CERT);
    Issuer::from_ca_cert_pem(&read_pem(&cert_path, "certificate")?, key).map_err(|e| {
        TlsToolError::Usage(format!(
            "{} is not a usable PEM CA certificate: {e}",
            cert_path.display()
        ))
    })
}

/// A PEM file's text; a file that is not text is named as not being PEM at all.
fn read_pem(path: &Path, what: &str) -> Result<String, TlsToolError> {
    let bytes = fs::read(path)
        .map_err(|e| TlsToolError::Usage(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|_| {
        TlsToolError::Usage(format!(
            "{} is not a PEM {what}: it is not text (binary or corrupt)",
            path.display()
        ))
    })
}

fn issue(
    ca: &Path,
    data_dir: &Path,
    days: u32,
    file: Option<PathBuf>,
    out: &Output,
) -> Result<(), TlsToolError> {
    if !data_dir.join(NODE_KEY_FILE).exists() {
        return Err(TlsToolError::Usage(format!(
            "{} has no {NODE_KEY_FILE}: give the data directory of the node to certify (--data-dir), after it has started once",
            data_dir.display()
        )));
    }
    let identity =
        Identity::load_or_create(data_dir).map_err(|e| TlsToolError::Usage(e.to_string()))?;
    let issuer = load_ca(ca)?;
    let public = NodePublicKey(identity.public_key());
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("certificate", e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, identity.peer_id());
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let serial = random_serial();
    params.serial_number = Some(serial.clone());
    params.not_before = (SystemTime::now() - DAY).into();
    let not_after = SystemTime::now() + DAY * days;
    params.not_after = not_after.into();
    let cert = params
        .signed_by(&public, &issuer)
        .map_err(|e| failed("certificate", e))?;
    let path = file.unwrap_or_else(|| data_dir.join(NODE_CERT_FILE));
    write_file(&path, &cert.pem(), false)?;
    let serial_hex = hex::encode(serial.as_ref());
    if out.json {
        out.print_json(&json!({
            "peerId": identity.peer_id(),
            "serial": serial_hex,
            "certificate": path,
            "notAfter": crate::clock::to_rfc3339(millis(not_after)),
        }));
    } else {
        out.message(&format!(
            "Issued {} for peer {} (serial {serial_hex}, valid {days} days). On that node set:\n  peer_tls = \"ca\"\n  tls_ca_file = \"{}\"\n  tls_cert_file = \"{}\"\n  tls_crl_file = \"{}\"",
            path.display(),
            identity.peer_id(),
            ca.join(CA_CERT).display(),
            path.display(),
            ca.join(CA_CRL).display(),
        ));
    }
    Ok(())
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A node's Ed25519 public key, for rcgen to certify without the private key.
struct NodePublicKey([u8; 32]);

impl rcgen::PublicKeyData for NodePublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

fn revoke(ca: &Path, cert_path: &Path, out: &Output) -> Result<(), TlsToolError> {
    let issuer = load_ca(ca)?;
    let cert = CertificateDer::from_pem_file(cert_path).map_err(|e| {
        TlsToolError::Usage(format!(
            "{}: {}",
            cert_path.display(),
            crate::tlsfiles::pem_problem(e)
        ))
    })?;
    let serial = crate::transport::ca::serial_of(&cert).ok_or_else(|| {
        TlsToolError::Usage(format!(
            "{} is not a valid certificate",
            cert_path.display()
        ))
    })?;
    let serial_hex = hex::encode(&serial);
    let mut revoked = read_revoked(ca)?;
    if revoked.iter().any(|(s, _)| *s == serial_hex) {
        out.message(&format!("{serial_hex} is already revoked."));
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    revoked.push((serial_hex.clone(), now));
    write_crl(ca, &issuer, &revoked)?;
    let list: String = revoked
        .iter()
        .map(|(s, at)| format!("{s} {at}\n"))
        .collect();
    write_file(&ca.join(CA_REVOKED), &list, false)?;
    if out.json {
        out.print_json(&json!({ "serial": serial_hex, "crl": ca.join(CA_CRL) }));
    } else {
        out.message(&format!(
            "Revoked {serial_hex}. Nodes reading {} disconnect that node within seconds; copy it to nodes that read another copy.",
            ca.join(CA_CRL).display()
        ));
    }
    Ok(())
}

fn read_revoked(ca: &Path) -> Result<Vec<(String, u64)>, TlsToolError> {
    let text = match fs::read_to_string(ca.join(CA_REVOKED)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(failed(
                &format!("cannot read {}", ca.join(CA_REVOKED).display()),
                e,
            ));
        }
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let serial = parts.next().unwrap_or_default().to_string();
            let at = parts.next().and_then(|t| t.parse().ok());
            match (hex::decode(&serial).is_ok(), at) {
                (true, Some(at)) => Ok((serial, at)),
                _ => Err(TlsToolError::Usage(format!(
                    "{} has a malformed line: {line}",
                    ca.join(CA_REVOKED).display()
                ))),
            }
        })
        .collect()
}

/// Signs a revocation list of `revoked` (serial hex, unix seconds) into `crl.pem`.
fn write_crl(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    revoked: &[(String, u64)],
) -> Result<(), TlsToolError> {
    let now = SystemTime::now();
    let revoked_certs = revoked
        .iter()
        .map(|(serial, at)| {
            let bytes = hex::decode(serial).map_err(|e| failed("revoked serial", e))?;
            Ok(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: (UNIX_EPOCH + Duration::from_secs(*at)).into(),
                reason_code: None,
                invalidity_date: None,
            })
        })
        .collect::<Result<Vec<_>, TlsToolError>>()?;
    let params = CertificateRevocationListParams {
        this_update: (now - Duration::from_secs(60)).into(),
        next_update: (now + DAY * 3650).into(),
        crl_number: SerialNumber::from(revoked.len() as u64 + 1),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer).map_err(|e| failed("CRL", e))?;
    let pem = crl.pem().map_err(|e| failed("CRL", e))?;
    write_file(&dir.join(CA_CRL), &pem, false)
}
