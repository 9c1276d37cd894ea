//! Signatures and certificates as OpenDSR uses them (specification §4, §8.8, and
//! `security_guidelines.md`): a processor signs the raw body of each response and callback
//! with the key of an X.509 certificate issued by a trusted authority for its OpenDSR domain
//! (never self-signed), and publishes that certificate at discovery; the other party checks
//! the certificate (issuer, validity, domain, and here also a configured pin) and then the
//! signature over the raw bytes, before it reads them.
//!
//! §4.2 names FIPS 186-4 and the guidelines SHA-256; dsr signs and accepts RSA PKCS#1 v1.5
//! with SHA-256 (keys of 2048 bits or more) and ECDSA P-256 with SHA-256 (DER signatures), the
//! two a FIPS 186-4 key and SHA-256 give with the usual tools (`openssl dgst -sha256 -sign`).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::SignatureScheme;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use webpki::EndEntityCert;

/// Why a key, a certificate or a signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("the signing key is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {0}")]
    KeyNotPem(rustls::pki_types::pem::Error),
    #[error("the signing key is neither RSA (2048 bits or more) nor ECDSA P-256, the keys OpenDSR signatures use")]
    KeyType,
    #[error("the certificate file holds no PEM certificate")]
    NoCertificate,
    #[error("the certificate is not PEM: {0}")]
    CertificateNotPem(rustls::pki_types::pem::Error),
    #[error("the certificate cannot be read: {0}")]
    Certificate(webpki::Error),
    #[error("the signing key is not the key of the certificate: sign with the certificate's own key")]
    KeyMismatch,
    #[error("signing failed: {0}")]
    Sign(rustls::Error),
    #[error("the signature is not base64")]
    NotBase64,
    #[error("the signature does not match the body and the certificate's key")]
    Mismatch,
}

/// Why a certificate is not trusted for a domain.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("no certificate was given")]
    Empty,
    #[error("the certificate cannot be read: {0}")]
    Unreadable(webpki::Error),
    #[error("the certificate is self-signed; OpenDSR (§4.1) requires one issued by a certificate authority")]
    SelfSigned,
    #[error("the certificate is not issued by a trusted authority, or has expired or is not yet valid: {0}")]
    Untrusted(webpki::Error),
    #[error("the certificate is not issued for `{domain}`: {error}")]
    WrongDomain { domain: String, error: webpki::Error },
    #[error("`{0}` is not a domain name")]
    BadDomain(String),
    #[error("the certificate's key is not the pinned one (its pin is {actual}, the configured pin {expected})")]
    PinMismatch { expected: String, actual: String },
}

/// A processor's signing key and certificate chain (leaf first), as configured.
#[derive(Clone)]
pub struct SigningIdentity {
    signer: Arc<dyn rustls::sign::Signer>,
    chain: Vec<CertificateDer<'static>>,
    chain_pem: String,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("scheme", &self.signer.scheme())
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// The schemes a signature may use: SHA-256 over the body, with either key type.
const SCHEMES: [SignatureScheme; 2] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::RSA_PKCS1_SHA256,
];

impl SigningIdentity {
    /// Reads the key and the chain and checks they belong together.
    pub fn from_pem(key_pem: &str, chain_pem: &str) -> Result<SigningIdentity, SignatureError> {
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(SignatureError::KeyNotPem)?;
        let key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| SignatureError::KeyType)?;
        let signer = key.choose_scheme(&SCHEMES).ok_or(SignatureError::KeyType)?;
        let chain = read_chain(chain_pem)?;
        let identity = SigningIdentity {
            signer: Arc::from(signer),
            chain,
            chain_pem: chain_pem.to_string(),
        };
        let probe = b"dsr: does this key belong to this certificate?";
        let signature = identity.sign(probe)?;
        verify(identity.leaf(), probe, &signature).map_err(|_| SignatureError::KeyMismatch)?;
        Ok(identity)
    }

    /// The signature of `body`, base64, for the signature header.
    pub fn sign(&self, body: &[u8]) -> Result<String, SignatureError> {
        let signature = self.signer.sign(body).map_err(SignatureError::Sign)?;
        Ok(B64.encode(signature))
    }

    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// Whether the certificate may be published for `domain`: issued by an authority, not
    /// self-signed (§4.1), and for that domain (which authority, the controller checks).
    pub fn check_domain(&self, domain: &str) -> Result<(), CertificateError> {
        issued_for(self.leaf(), domain).map(|_| ())
    }

    /// The chain as configured, for discovery's `processor_certificate` to serve.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }
}

/// The certificates of a PEM text, in order; at least one.
pub fn read_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, SignatureError> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(SignatureError::CertificateNotPem)?;
    if chain.is_empty() {
        return Err(SignatureError::NoCertificate);
    }
    EndEntityCert::try_from(&chain[0]).map_err(SignatureError::Certificate)?;
    Ok(chain)
}

/// Checks `signature` (base64; line breaks and spaces, as in the specification's examples,
/// are ignored) over the raw `body` with the key of `certificate`.
pub fn verify(certificate: &CertificateDer<'_>, body: &[u8], signature: &str) -> Result<(), SignatureError> {
    let compact: String = signature.split_whitespace().collect();
    let signature = B64.decode(compact).map_err(|_| SignatureError::NotBase64)?;
    let certificate = EndEntityCert::try_from(certificate).map_err(SignatureError::Certificate)?;
    let algorithms: [&dyn rustls::pki_types::SignatureVerificationAlgorithm; 2] = [
        webpki::ring::ECDSA_P256_SHA256,
        webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    ];
    algorithms
        .into_iter()
        .any(|algorithm| certificate.verify_signature(algorithm, body, &signature).is_ok())
        .then_some(())
        .ok_or(SignatureError::Mismatch)
}

/// A certificate's key pin: `sha256/` and the base64 SHA-256 of its SubjectPublicKeyInfo,
/// as `openssl x509 -pubkey -noout -in cert.pem | openssl pkey -pubin -outform der |
/// openssl dgst -sha256 -binary | base64` prints it (the form of RFC 7469 and curl's
/// `--pinnedpubkey`). It survives a renewal that keeps the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    pub fn parse(text: &str) -> Result<Pin, String> {
        let digest = text
            .trim()
            .strip_prefix("sha256/")
            .ok_or_else(|| format!("a pin is `sha256/` and a base64 SHA-256, not `{text}`"))?;
        match B64.decode(digest) {
            Ok(bytes) if bytes.len() == 32 => Ok(Pin(B64.encode(bytes))),
            _ => Err(format!(
                "`{text}` is not `sha256/` and the base64 of 32 bytes (the SHA-256 of the key)"
            )),
        }
    }

    /// The pin of `certificate`'s key.
    pub fn of(certificate: &CertificateDer<'_>) -> Result<Pin, CertificateError> {
        let certificate = EndEntityCert::try_from(certificate).map_err(CertificateError::Unreadable)?;
        let spki = certificate.subject_public_key_info();
        Ok(Pin(B64.encode(Sha256::digest(spki.as_ref()))))
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256/{}", self.0)
    }
}

/// Which certificates are trusted to sign for a domain: issued by one of `anchors`, valid
/// now, for the domain, not self-signed, and with the pinned key when a pin is set.
#[derive(Debug, Clone)]
pub struct Trust {
    anchors: Vec<TrustAnchor<'static>>,
    pin: Option<Pin>,
}

impl Trust {
    /// The public web's authorities (Mozilla's list, as browsers use it).
    pub fn public_roots() -> Trust {
        Trust {
            anchors: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            pin: None,
        }
    }

    /// The authorities of a PEM file (a private CA).
    pub fn from_roots_pem(pem: &str) -> Result<Trust, SignatureError> {
        let anchors = read_chain(pem)?
            .iter()
            .map(|root| {
                webpki::anchor_from_trusted_cert(root)
                    .map(|anchor| anchor.to_owned())
                    .map_err(SignatureError::Certificate)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Trust { anchors, pin: None })
    }

    pub fn pinned(mut self, pin: Pin) -> Trust {
        self.pin = Some(pin);
        self
    }

    /// Checks `chain` (leaf first) for `domain` at `now`.
    pub fn check(&self, chain: &[CertificateDer<'_>], domain: &str, now: UnixTime) -> Result<(), CertificateError> {
        let (leaf, intermediates) = chain.split_first().ok_or(CertificateError::Empty)?;
        let certificate = issued_for(leaf, domain)?;
        certificate
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                intermediates,
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .map_err(CertificateError::Untrusted)?;
        if let Some(expected) = &self.pin {
            let actual = Pin::of(leaf)?;
            if &actual != expected {
                return Err(CertificateError::PinMismatch {
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// `leaf`, read, when it is not self-signed and is issued for `domain`.
fn issued_for<'a>(leaf: &'a CertificateDer<'a>, domain: &str) -> Result<EndEntityCert<'a>, CertificateError> {
    let certificate = EndEntityCert::try_from(leaf).map_err(CertificateError::Unreadable)?;
    if certificate.issuer() == certificate.subject() {
        return Err(CertificateError::SelfSigned);
    }
    let name = ServerName::try_from(domain).map_err(|_| CertificateError::BadDomain(domain.to_string()))?;
    certificate
        .verify_is_valid_for_subject_name(&name)
        .map_err(|error| CertificateError::WrongDomain {
            domain: domain.to_string(),
            error,
        })?;
    Ok(certificate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsr_fixtures::pki::{TestPki, openssl};

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn a_signature_made_with_either_key_type_verifies_and_a_changed_byte_does_not() {
        for rsa in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let pki = TestPki::make(dir.path(), rsa);
            let identity = SigningIdentity::from_pem(&pki.key_pem, &pki.cert_pem).unwrap();
            let body = br#"{"request_status":"completed"}"#;
            let signature = identity.sign(body).unwrap();
            verify(identity.leaf(), body, &signature).unwrap();
            let mut changed = body.to_vec();
            changed[3] ^= 1;
            assert!(matches!(
                verify(identity.leaf(), &changed, &signature),
                Err(SignatureError::Mismatch)
            ));
            // openssl checks the same signature: it is the usual SHA-256 signature, not ours.
            std::fs::write(dir.path().join("body"), body).unwrap();
            std::fs::write(dir.path().join("sig"), B64.decode(&signature).unwrap()).unwrap();
            openssl(
                dir.path(),
                &["x509", "-in", "leaf.pem", "-pubkey", "-noout", "-out", "pub.pem"],
            );
            openssl(
                dir.path(),
                &["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "body"],
            );
        }
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::make(dir.path(), false);
        let err = SigningIdentity::from_pem(&pki.self_signed_key_pem, &pki.cert_pem).unwrap_err();
        assert!(matches!(err, SignatureError::KeyMismatch), "{err}");
    }

    #[test]
    fn only_a_ca_issued_certificate_for_the_domain_with_the_pinned_key_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::make(dir.path(), false);
        let trust = Trust::from_roots_pem(&pki.ca_pem).unwrap();
        let chain = read_chain(&pki.cert_pem).unwrap();
        trust.check(&chain, "localhost", now()).unwrap();
        assert!(matches!(
            trust.check(&chain, "opendsr.example.com", now()),
            Err(CertificateError::WrongDomain { .. })
        ));
        let self_signed = read_chain(&pki.self_signed_pem).unwrap();
        assert!(matches!(
            trust.check(&self_signed, "localhost", now()),
            Err(CertificateError::SelfSigned)
        ));
        assert!(matches!(
            Trust::public_roots().check(&chain, "localhost", now()),
            Err(CertificateError::Untrusted(_))
        ));
        let pin = Pin::of(&chain[0]).unwrap();
        assert_eq!(Pin::parse(&pin.to_string()), Ok(pin.clone()));
        trust.clone().pinned(pin).check(&chain, "localhost", now()).unwrap();
        let other = Pin::of(&self_signed[0]).unwrap();
        assert!(matches!(
            trust.pinned(other).check(&chain, "localhost", now()),
            Err(CertificateError::PinMismatch { .. })
        ));
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now().as_secs() + 3 * 24 * 3600));
        assert!(matches!(
            Trust::from_roots_pem(&pki.ca_pem)
                .unwrap()
                .check(&chain, "localhost", later),
            Err(CertificateError::Untrusted(_))
        ));
    }

    #[test]
    fn a_pin_must_be_a_sha256_of_32_bytes() {
        assert!(Pin::parse("sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").is_ok());
        assert!(Pin::parse("sha1/AAAA").is_err());
        assert!(Pin::parse("sha256/AAAA").is_err());
    }
}
