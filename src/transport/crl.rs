//! Reading `tls_crl_file` so that revocation never fails open. webpki checks a revocation
//! list's signature only when it meets a certificate from the same issuer, so a list it has
//! not checked either drops every revocation (garbage, an empty file, another CA's list all
//! read as "nothing revoked") or, signed by another key under the CA's name, makes every
//! handshake fail. So a file is taken only when every list in it is issued by a CA in
//! `tls_ca_file` and its signature verifies with that CA's key, with the same algorithms the
//! verifier accepts; "nothing revoked" is a signed list without entries, never an empty file.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateRevocationListDer, SignatureVerificationAlgorithm, TrustAnchor,
};
use webpki::{BorrowedCertRevocationList, CertRevocationList};
use x509_parser::asn1_rs::{Any, FromDer, Tag};

/// Why a revocation list file was not taken.
#[derive(Debug, thiserror::Error)]
pub(super) enum CrlError {
    #[error("{0}")]
    Read(String),
    #[error(
        "holds no revocation list (no BEGIN X509 CRL): nothing revoked is a signed, empty list (`sorcha-peer tls ca` writes one)"
    )]
    NoList,
    #[error("revocation list {index} is not a valid CRL: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("revocation list {index} is issued by {issuer}, which is not a CA in tls_ca_file")]
    OtherIssuer { index: usize, issuer: String },
    #[error(
        "revocation list {index} names the CA {issuer}, but its signature does not verify with that CA's key: {reason}"
    )]
    BadSignature {
        index: usize,
        issuer: String,
        reason: String,
    },
}

/// The revocation lists in `path`: at least one, each issued and signed by one of `roots`.
pub(super) fn read(
    path: &Path,
    roots: &[TrustAnchor<'static>],
    algorithms: &[&'static dyn SignatureVerificationAlgorithm],
) -> Result<Vec<CertRevocationList<'static>>, CrlError> {
    let ders = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| CrlError::Read(crate::tlsfiles::pem_problem(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CrlError::Read(crate::tlsfiles::pem_problem(e)))?;
    if ders.is_empty() {
        return Err(CrlError::NoList);
    }
    ders.iter()
        .enumerate()
        .map(|(i, der)| checked(i + 1, der.as_ref(), roots, algorithms))
        .collect()
}

/// One list, parsed and verified against the CA that issued it.
fn checked(
    index: usize,
    der: &[u8],
    roots: &[TrustAnchor<'static>],
    algorithms: &[&'static dyn SignatureVerificationAlgorithm],
) -> Result<CertRevocationList<'static>, CrlError> {
    let malformed = |reason: String| CrlError::Malformed { index, reason };
    let crl: CertRevocationList<'static> = BorrowedCertRevocationList::from_der(der)
        .and_then(|crl| crl.to_owned())
        .map_err(|e| malformed(format!("{e:?}")))?
        .into();
    let issuer = issuer_name(der);
    let Some(ca) = roots
        .iter()
        .find(|root| root.subject.as_ref() == crl.issuer())
    else {
        return Err(CrlError::OtherIssuer { index, issuer });
    };
    let signed = SignedParts::of(der).ok_or_else(|| malformed("not signed data".into()))?;
    verify(&signed, ca.subject_public_key_info.as_ref(), algorithms).map_err(|reason| {
        CrlError::BadSignature {
            index,
            issuer,
            reason,
        }
    })?;
    Ok(crl)
}

/// The issuer's name for messages, control characters escaped.
fn issuer_name(der: &[u8]) -> String {
    let name = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map(|(_, crl)| crl.issuer().to_string())
        .unwrap_or_else(|_| "an unreadable name".into());
    format!("\"{}\"", crate::text::escape_control(&name))
}

/// A CRL as "tbsCertList || signatureAlgorithm || signature" (RFC 5280 §5.1).
struct SignedParts<'a> {
    /// The signed bytes: the whole tbsCertList, header included.
    tbs: &'a [u8],
    /// The contents of signatureAlgorithm, as webpki names algorithms.
    algorithm: &'a [u8],
    /// The signature, without the BIT STRING's unused-bits octet.
    signature: &'a [u8],
}

impl<'a> SignedParts<'a> {
    fn of(der: &'a [u8]) -> Option<SignedParts<'a>> {
        let (_, outer) = Any::from_der(der).ok()?;
        (outer.tag() == Tag::Sequence).then_some(())?;
        let (after_tbs, tbs) = Any::from_der(outer.data).ok()?;
        (tbs.tag() == Tag::Sequence).then_some(())?;
        let tbs_bytes = &outer.data[..outer.data.len() - after_tbs.len()];
        let (after_algorithm, algorithm) = Any::from_der(after_tbs).ok()?;
        (algorithm.tag() == Tag::Sequence).then_some(())?;
        let (_, signature) = Any::from_der(after_algorithm).ok()?;
        (signature.tag() == Tag::BitString).then_some(())?;
        let (&unused_bits, bits) = signature.data.split_first()?;
        (unused_bits == 0).then_some(())?;
        Some(SignedParts {
            tbs: tbs_bytes,
            algorithm: algorithm.data,
            signature: bits,
        })
    }
}

/// Checks `signed` with the key in `spki` (the contents of a SubjectPublicKeyInfo, as a
/// trust anchor holds it), choosing the algorithm as webpki does: by both identifiers.
fn verify(
    signed: &SignedParts<'_>,
    spki: &[u8],
    algorithms: &[&'static dyn SignatureVerificationAlgorithm],
) -> Result<(), String> {
    let key_parts = || -> Option<(&[u8], &[u8])> {
        let (rest, key_algorithm) = Any::from_der(spki).ok()?;
        let (_, key) = Any::from_der(rest).ok()?;
        let (&unused_bits, key) = key.data.split_first()?;
        (unused_bits == 0).then_some((key_algorithm.data, key))
    };
    let (key_algorithm, key) = key_parts().ok_or("the CA's public key is malformed")?;
    let algorithm = algorithms
        .iter()
        .find(|a| {
            a.signature_alg_id().as_ref() == signed.algorithm
                && a.public_key_alg_id().as_ref() == key_algorithm
        })
        .ok_or("signed with an algorithm that does not fit the CA's key, or is not supported")?;
    algorithm
        .verify_signature(key, signed.tbs, signed.signature)
        .map_err(|_| "the signature is invalid".to_string())
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    };
    use rustls::pki_types::CertificateDer;

    use super::*;

    /// A CA named `name`: its trust anchor and its issuer (to sign lists with).
    fn ca(name: &str) -> (TrustAnchor<'static>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA");
        let der = CertificateDer::from(cert.der().to_vec());
        let anchor = webpki::anchor_from_trusted_cert(&der)
            .expect("anchor")
            .to_owned();
        (anchor, Issuer::new(params, key))
    }

    fn list(issuer: &Issuer<'_, KeyPair>, revoked: &[u8]) -> Vec<u8> {
        let now = std::time::SystemTime::now();
        let params = CertificateRevocationListParams {
            this_update: now.into(),
            next_update: (now + std::time::Duration::from_secs(3600)).into(),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&[serial]),
                    revocation_time: now.into(),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(issuer).expect("CRL").der().to_vec()
    }

    fn check(der: &[u8], roots: &[TrustAnchor<'static>]) -> Result<(), CrlError> {
        let algorithms = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all;
        checked(1, der, roots, algorithms).map(|_| ())
    }

    #[test]
    fn only_lists_the_ca_signed_are_taken() {
        let (anchor, issuer) = ca("network CA");
        let roots = [anchor];
        check(&list(&issuer, &[]), &roots).expect("a signed, empty list");
        check(&list(&issuer, &[7, 9]), &roots).expect("a signed list");

        let (_, rogue) = ca("rogue");
        let other = check(&list(&rogue, &[]), &roots);
        assert!(
            matches!(other, Err(CrlError::OtherIssuer { .. })),
            "{other:?}"
        );

        let (_, twin) = ca("network CA");
        let impostor = check(&list(&twin, &[]), &roots);
        assert!(
            matches!(impostor, Err(CrlError::BadSignature { .. })),
            "{impostor:?}"
        );

        let mut tampered = list(&issuer, &[7]);
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered = check(&tampered, &roots);
        assert!(
            matches!(tampered, Err(CrlError::BadSignature { .. })),
            "{tampered:?}"
        );

        let garbage = check(b"not a CRL", &roots);
        assert!(
            matches!(garbage, Err(CrlError::Malformed { .. })),
            "{garbage:?}"
        );
    }
}
