//! Ed25519 signatures over what dsr hands out as proof: a bundle's manifest and a
//! confirmation. The key is PKCS#8 PEM (`openssl genpkey -algorithm ed25519`), named in
//! config as `[export] signing_key = "file:…"`; `dsr demo` makes a throwaway one. A signature
//! travels beside what it signs as a small JSON document (`*.sig`).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "Ed25519";

/// Why a key could not be read or made, a `.sig` could not be read, or a signature does not
/// hold.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("not a PEM `PRIVATE KEY` block; make one with `openssl genpkey -algorithm ed25519`")]
    NotPem,
    #[error("the PEM body is not base64: {0}")]
    PemNotBase64(base64::DecodeError),
    #[error("not an Ed25519 PKCS#8 key: {0}")]
    NotEd25519(ring::error::KeyRejected),
    #[error("cannot make a key: {0}")]
    Generate(ring::error::Unspecified),
    /// The `.sig` could not be read.
    #[error("{0}")]
    Read(#[from] std::io::Error),
    /// The `.sig` is not a signature document.
    #[error("{0}")]
    NotASignature(#[from] serde_json::Error),
    #[error("signed with {0}, expected {ALGORITHM}")]
    Algorithm(String),
    #[error("signed with a key other than this deployment's signing key")]
    UntrustedKey,
    #[error("the public key is not base64: {0}")]
    PublicKeyNotBase64(base64::DecodeError),
    #[error("the signature is not base64: {0}")]
    SignatureNotBase64(base64::DecodeError),
    #[error("the signature does not match the content (altered)")]
    Altered,
}

/// A detached signature, as stored in a `.sig` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub algorithm: String,
    /// The signer's public key, base64 (raw 32 bytes).
    pub public_key: String,
    /// SHA-256 of the signed bytes, hex, for people comparing by eye.
    pub sha256: String,
    /// The signature, base64.
    pub signature: String,
}

impl Signature {
    /// Reads a `.sig` document.
    pub fn from_slice(bytes: &[u8]) -> Result<Signature, SigningError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Holds the private key. Cheap to clone.
#[derive(Clone)]
pub struct Signer(Arc<Ed25519KeyPair>);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(public key {})", self.public_key())
    }
}

impl Signer {
    /// From a PKCS#8 PEM `PRIVATE KEY` block.
    pub fn from_pem(pem: &str) -> Result<Self, SigningError> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "-----BEGIN PRIVATE KEY-----")
            .skip(1)
            .take_while(|l| *l != "-----END PRIVATE KEY-----")
            .collect();
        if body.is_empty() {
            return Err(SigningError::NotPem);
        }
        let der = B64.decode(body.as_bytes()).map_err(SigningError::PemNotBase64)?;
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map(|pair| Signer(Arc::new(pair)))
            .map_err(SigningError::NotEd25519)
    }

    /// A new random key, and its PEM.
    pub fn generate() -> Result<(Self, String), SigningError> {
        let rng = ring::rand::SystemRandom::new();
        let der = Ed25519KeyPair::generate_pkcs8(&rng).map_err(SigningError::Generate)?;
        let encoded = B64.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok((Self::from_pem(&pem)?, pem))
    }

    pub fn public_key(&self) -> String {
        B64.encode(self.0.public_key().as_ref())
    }

    pub fn sign(&self, bytes: &[u8]) -> Signature {
        Signature {
            algorithm: ALGORITHM.into(),
            public_key: self.public_key(),
            sha256: hex::encode(Sha256::digest(bytes)),
            signature: B64.encode(self.0.sign(bytes).as_ref()),
        }
    }
}

/// Checks `signature` over `bytes`, made by the holder of `trusted_public_key` (base64).
/// The key inside the signature must be that key: anyone can sign with a key of their own.
pub fn check(signature: &Signature, bytes: &[u8], trusted_public_key: &str) -> Result<(), SigningError> {
    if signature.algorithm != ALGORITHM {
        return Err(SigningError::Algorithm(signature.algorithm.clone()));
    }
    if signature.public_key != trusted_public_key {
        return Err(SigningError::UntrustedKey);
    }
    let key = B64
        .decode(trusted_public_key)
        .map_err(SigningError::PublicKeyNotBase64)?;
    let sig = B64
        .decode(&signature.signature)
        .map_err(SigningError::SignatureNotBase64)?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(bytes, &sig)
        .map_err(|_| SigningError::Altered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_for_the_bytes_signed_and_the_key_trusted_only() {
        let (signer, pem) = Signer::generate().unwrap();
        let again = Signer::from_pem(&pem).unwrap();
        assert_eq!(signer.public_key(), again.public_key());
        let sig = signer.sign(b"confirmation");
        check(&sig, b"confirmation", &signer.public_key()).unwrap();
        let err = check(&sig, b"confirmatioN", &signer.public_key()).unwrap_err();
        assert!(matches!(err, SigningError::Altered), "{err}");
        assert!(err.to_string().contains("altered"), "{err}");
        let (other, _) = Signer::generate().unwrap();
        let forged = other.sign(b"confirmation");
        assert!(matches!(
            check(&forged, b"confirmation", &signer.public_key()),
            Err(SigningError::UntrustedKey)
        ));
    }

    #[test]
    fn an_openssl_key_is_read_and_junk_is_refused_with_advice() {
        // `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key inside).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEILjD32I5fjJakIhGPlARlFc/tI9XqG7dmilL3/8lbmvw\n-----END PRIVATE KEY-----\n";
        Signer::from_pem(pem).unwrap();
        let err = Signer::from_pem("hello").unwrap_err();
        assert!(err.to_string().contains("openssl genpkey"), "{err}");
    }

    #[test]
    fn a_signature_document_reads_back_and_junk_is_named() {
        let (signer, _) = Signer::generate().unwrap();
        let sig = signer.sign(b"manifest");
        let bytes = serde_json::to_vec_pretty(&sig).unwrap();
        assert_eq!(Signature::from_slice(&bytes).unwrap(), sig);
        assert!(matches!(
            Signature::from_slice(b"{\"algorithm\": 1}"),
            Err(SigningError::NotASignature(_))
        ));
    }
}
