//! The one certificate verifier both ends of every peer connection use, whatever the mode:
//! TLS 1.3 only, Ed25519 signatures only, and the peer's `CertificateVerify` checked against
//! the key in its certificate. What else a certificate must satisfy is the mode's
//! [`CertificatePolicy`]: any Ed25519 node key (`nodekey.rs`), or chained to the CA and not
//! revoked (`ca.rs`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Which end presented the certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presenter {
    /// The accepting node (checked by the dialler).
    Server,
    /// The dialling node (checked by the acceptor).
    Client,
}

/// What a peer certificate must satisfy in one transport mode.
pub(crate) trait CertificatePolicy: std::fmt::Debug + Send + Sync {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        presenter: Presenter,
    ) -> Result<(), rustls::Error>;
}

impl<T: CertificatePolicy + ?Sized> CertificatePolicy for Arc<T> {
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        presenter: Presenter,
    ) -> Result<(), rustls::Error> {
        (**self).check(end_entity, intermediates, now, presenter)
    }
}

/// A rustls verifier for both directions, enforcing `P`.
#[derive(Debug)]
pub(crate) struct PeerVerifier<P> {
    policy: P,
    algorithms: WebPkiSupportedAlgorithms,
}

impl<P: CertificatePolicy> PeerVerifier<P> {
    pub(crate) fn new(policy: P) -> PeerVerifier<P> {
        PeerVerifier {
            policy,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl<P: CertificatePolicy> ServerCertVerifier for PeerVerifier<P> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Peers are dialled by address and known by key, not by name: the caller checks the
        // key is the peer it meant to reach.
        self.policy
            .check(end_entity, intermediates, now, Presenter::Server)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is configured; a TLS 1.2 signature never reaches here.
        Err(rustls::Error::General(
            "TLS 1.2 is not spoken between peers".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl<P: CertificatePolicy> ClientCertVerifier for PeerVerifier<P> {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.policy
            .check(end_entity, intermediates, now, Presenter::Client)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls12_signature(self, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        ServerCertVerifier::verify_tls13_signature(self, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ServerCertVerifier::supported_verify_schemes(self)
    }
}
