//! Node identity: the Ed25519 key in `<data-dir>/node.key`, the peer ID derived from it, the
//! admin token in `<data-dir>/admin.token`, and the handshake signatures that prove a peer holds
//! the key behind the ID it claims.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// File holding the node's secret key (hex), mode 0600.
pub const NODE_KEY_FILE: &str = "node.key";
/// File holding the admin bearer token, mode 0600.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// File where a running node writes its admin URL, so the CLI finds it through `--data-dir`.
pub const ADMIN_URL_FILE: &str = "admin.url";
/// Length in hex characters of a peer ID (the first 16 bytes of SHA-256 of the public key).
pub const PEER_ID_LEN: usize = 32;
/// Length of handshake nonces.
pub const NONCE_LEN: usize = 32;

/// DER of a PKCS #8 v1 Ed25519 private key up to its 32-byte seed (RFC 8410 §7):
/// SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER of an Ed25519 SubjectPublicKeyInfo up to its 32-byte key (RFC 8410 §4):
/// SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (0 unused bits) }.
pub const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The Ed25519 public key in a DER SubjectPublicKeyInfo, or `None` when it holds another kind
/// of key.
pub fn ed25519_key_of_spki(spki: &[u8]) -> Option<[u8; 32]> {
    spki.strip_prefix(ED25519_SPKI_PREFIX.as_slice())?
        .try_into()
        .ok()
}

const TRANSCRIPT_DOMAIN: &[u8] = b"sorcha-peer/v1/handshake";

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("invalid public key: {0}")]
    BadPublicKey(String),
    #[error("invalid signature: the peer does not hold the key it presented")]
    BadSignature,
}

/// The text form of a peer's identity: hex of the first 16 bytes of SHA-256 of its public key.
pub fn peer_id_for(public_key: &[u8]) -> String {
    let digest = Sha256::digest(public_key);
    hex::encode(&digest[..PEER_ID_LEN / 2])
}

/// True when `text` has the shape of a full peer ID.
pub fn is_peer_id(text: &str) -> bool {
    text.len() == PEER_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// This node's key pair and the peer ID derived from it.
pub struct Identity {
    key: SigningKey,
    peer_id: String,
}

impl Identity {
    /// A fresh random identity (tests and first start).
    pub fn generate() -> Identity {
        Identity::from_key(SigningKey::generate(&mut OsRng))
    }

    fn from_key(key: SigningKey) -> Identity {
        let peer_id = peer_id_for(key.verifying_key().as_bytes());
        Identity { key, peer_id }
    }

    /// Loads `<dir>/node.key`, creating it (mode 0600) on first start.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        let path = dir.join(NODE_KEY_FILE);
        if path.exists() {
            let raw = fs::read(&path).map_err(|source| IdentityError::Io {
                action: "read",
                path: path.clone(),
                source,
            })?;
            // The key is 64 hex digits; name what the file holds instead, not how it failed.
            let corrupt = |what: &str| IdentityError::Corrupt {
                path: path.clone(),
                message: format!("{what}: a node key is 64 hex digits (32 bytes)"),
            };
            let text = std::str::from_utf8(&raw).map_err(|_| corrupt("not text"))?;
            let bytes = hex::decode(text.trim()).map_err(|e| corrupt(&format!("not hex ({e})")))?;
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| corrupt(&format!("{} bytes", b.len())))?;
            return Ok(Identity::from_key(SigningKey::from_bytes(&seed)));
        }
        let identity = Identity::generate();
        write_secret_file(&path, &hex::encode(identity.key.to_bytes()))?;
        Ok(identity)
    }

    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The signing key, for sealing dockets of registers this node originates.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The secret key as PKCS #8 v1 DER (RFC 8410), the form TLS libraries load an Ed25519
    /// key from; the peer transport makes its certificate with it.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        [
            ED25519_PKCS8_PREFIX.as_slice(),
            self.key.to_bytes().as_slice(),
        ]
        .concat()
    }

    /// Signs the handshake transcript in the given role.
    pub fn sign_transcript(&self, role: Role, transcript: &[u8; 32]) -> Vec<u8> {
        self.key.sign(&role.message(transcript)).to_bytes().to_vec()
    }
}

/// Which side of the handshake a signature belongs to, so one side's signature can never be
/// replayed as the other's.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    fn message(self, transcript: &[u8; 32]) -> Vec<u8> {
        let tag: &[u8] = match self {
            Role::Dialer => b"dialer",
            Role::Acceptor => b"acceptor",
        };
        [tag, transcript.as_slice()].concat()
    }
}

/// Hash of everything both sides sent in the handshake: each side's encoded node info and fresh
/// nonce. Both signatures cover it, so neither side's answer can be replayed to a third party.
pub fn transcript(
    dialer_info: &[u8],
    dialer_nonce: &[u8],
    acceptor_info: &[u8],
    acceptor_nonce: &[u8],
) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(TRANSCRIPT_DOMAIN);
    for part in [dialer_info, dialer_nonce, acceptor_info, acceptor_nonce] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// Checks that `signature` was made by `public_key` over the transcript in `role`.
pub fn verify_transcript(
    public_key: &[u8],
    role: Role,
    transcript: &[u8; 32],
    signature: &[u8],
) -> Result<(), IdentityError> {
    let key_bytes: [u8; 32] = public_key.try_into().map_err(|_| {
        IdentityError::BadPublicKey(format!("{} bytes, expected 32", public_key.len()))
    })?;
    let key = VerifyingKey::from_bytes(&key_bytes)
        .map_err(|e| IdentityError::BadPublicKey(e.to_string()))?;
    let signature = Signature::from_slice(signature).map_err(|_| IdentityError::BadSignature)?;
    key.verify(&role.message(transcript), &signature)
        .map_err(|_| IdentityError::BadSignature)
}

/// A fresh random handshake nonce.
pub fn nonce() -> Vec<u8> {
    let mut bytes = vec![0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Loads `<dir>/admin.token`, creating a random one (mode 0600) on first start.
pub fn load_or_create_admin_token(dir: &Path) -> Result<String, IdentityError> {
    let path = dir.join(ADMIN_TOKEN_FILE);
    if let Some(token) = read_admin_token(dir)? {
        return Ok(token);
    }
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    write_secret_file(&path, &token)?;
    Ok(token)
}

/// Reads `<dir>/admin.token` if it exists (the CLI uses this to find the local node's token).
pub fn read_admin_token(dir: &Path) -> Result<Option<String>, IdentityError> {
    let path = dir.join(ADMIN_TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_string())),
        Ok(_) => Err(IdentityError::Corrupt {
            path,
            message: "the file is empty".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IdentityError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// Creates `path` readable by the owner only and writes `contents` to it.
fn write_secret_file(path: &Path, contents: &str) -> Result<(), IdentityError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| IdentityError::Io {
        action: "create",
        path: path.to_path_buf(),
        source,
    })?;
    writeln!(file, "{contents}")
        .and_then(|_| file.sync_all())
        .map_err(|source| IdentityError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_token_are_created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Identity::load_or_create(dir.path()).expect("create");
        let again = Identity::load_or_create(dir.path()).expect("load");
        assert_eq!(first.peer_id(), again.peer_id());
        assert!(is_peer_id(first.peer_id()));
        let token = load_or_create_admin_token(dir.path()).expect("token");
        assert_eq!(
            load_or_create_admin_token(dir.path()).expect("token again"),
            token
        );
        #[cfg(unix)]
        for file in [NODE_KEY_FILE, ADMIN_TOKEN_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(file))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn corrupt_key_file_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(NODE_KEY_FILE), "not hex").expect("write");
        assert!(matches!(
            Identity::load_or_create(dir.path()),
            Err(IdentityError::Corrupt { .. })
        ));
    }

    #[test]
    fn transcript_signatures_bind_key_role_and_contents() {
        let alice = Identity::generate();
        let mallory = Identity::generate();
        let t = transcript(b"info-a", b"nonce-a", b"info-b", b"nonce-b");
        let sig = alice.sign_transcript(Role::Dialer, &t);
        verify_transcript(&alice.public_key(), Role::Dialer, &t, &sig).expect("valid");
        // Wrong role, wrong key, different transcript: all refused.
        assert!(verify_transcript(&alice.public_key(), Role::Acceptor, &t, &sig).is_err());
        assert!(verify_transcript(&mallory.public_key(), Role::Dialer, &t, &sig).is_err());
        let other = transcript(b"info-a", b"nonce-x", b"info-b", b"nonce-b");
        assert!(verify_transcript(&alice.public_key(), Role::Dialer, &other, &sig).is_err());
        assert!(verify_transcript(b"short", Role::Dialer, &t, &sig).is_err());
        assert!(verify_transcript(&alice.public_key(), Role::Dialer, &t, b"garbage").is_err());
    }
}
