//! Certificates made from the node key, and the verifiers that take a peer's certificate only
//! as proof of a node key (`peer_tls = "node-key"`, as Syncthing and libp2p do it): the
//! certificate must carry an Ed25519 key, the TLS 1.3 `CertificateVerify` must be signed by
//! that key (so the peer holds it), and the peer ID is derived from it. Names, dates and
//! issuers are not looked at: here the key is the identity, and the peer-protocol handshake
//! above checks it is the key the peer claims.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::{CertificateError, OtherError};

use super::verify::{CertificatePolicy, Presenter};

use crate::identity::{self, Identity};

/// Why a certificate is not a node certificate.
#[derive(Debug, thiserror::Error)]
pub enum NotANodeKey {
    #[error("the certificate is not valid DER X.509")]
    Malformed,
    #[error("the certificate's key is not an Ed25519 node key")]
    NotEd25519,
}

/// A self-signed certificate for this node's key, its subject the peer ID, and the key in the
/// form rustls loads. Made at every start: nothing in it but the key matters to peers.
pub fn self_signed(
    identity: &Identity,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), rcgen::Error> {
    let pkcs8 = PrivatePkcs8KeyDer::from(identity.pkcs8_der());
    let key_pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, identity.peer_id());
    let cert = params.self_signed(&key_pair)?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}

/// The Ed25519 node key a certificate carries.
pub fn node_key_of(cert: &CertificateDer<'_>) -> Result<[u8; 32], NotANodeKey> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|_| NotANodeKey::Malformed)?;
    let spki = parsed.subject_public_key_info();
    identity::ed25519_key_of_spki(spki.as_ref()).ok_or(NotANodeKey::NotEd25519)
}

pub(super) fn invalid(reason: NotANodeKey) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(reason))))
}

/// Accepts any certificate that carries an Ed25519 node key (the shared verifier checks the
/// peer proves it holds it).
#[derive(Debug, Default)]
pub struct NodeKeyPolicy;

impl CertificatePolicy for NodeKeyPolicy {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
        _presenter: Presenter,
    ) -> Result<(), rustls::Error> {
        node_key_of(end_entity).map(|_| ()).map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_carries_the_node_key() {
        let identity = Identity::generate();
        let (cert, _) = self_signed(&identity).expect("certificate");
        assert_eq!(node_key_of(&cert).expect("key"), identity.public_key());
    }

    #[test]
    fn a_certificate_with_another_kind_of_key_is_not_a_node_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        assert!(matches!(
            node_key_of(cert.der()),
            Err(NotANodeKey::NotEd25519)
        ));
        assert!(matches!(
            node_key_of(&CertificateDer::from(vec![1, 2, 3])),
            Err(NotANodeKey::Malformed)
        ));
    }
}
