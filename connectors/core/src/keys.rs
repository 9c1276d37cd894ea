//! RSA keys as vendors hand them out — PKCS#8 or PKCS#1 PEM, or .NET `<RSAKeyValue>` XML
//! (SuperOffice) — and RS256 signatures with them; public keys from a JWKS for verifying
//! the tokens vendors sign.

use base64::Engine as _;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
}

/// A DER INTEGER from big-endian unsigned bytes.
fn der_integer(bytes: &[u8], out: &mut Vec<u8>) {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => &[0],
    };
    let pad = trimmed[0] & 0x80 != 0;
    out.push(0x02);
    der_length(trimmed.len() + pad as usize, out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
}

fn der_sequence(integers: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for i in integers {
        der_integer(i, &mut body);
    }
    let mut out = vec![0x30];
    der_length(body.len(), &mut out);
    out.extend(body);
    out
}

/// An RSAPublicKey (PKCS#1) from its modulus and exponent.
pub fn rsa_public_der(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    der_sequence(&[modulus, exponent])
}

fn pem_der(text: &str) -> Result<Vec<u8>, KeyError> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| KeyError(format!("the PEM block is not base64: {e}")))
}

fn xml_field(xml: &str, name: &str) -> Result<Vec<u8>, KeyError> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml
        .find(&open)
        .ok_or_else(|| KeyError(format!("the RSAKeyValue has no <{name}>")))?
        + open.len();
    let end = xml[start..]
        .find(&close)
        .ok_or_else(|| KeyError(format!("<{name}> is not closed")))?
        + start;
    base64::engine::general_purpose::STANDARD
        .decode(xml[start..end].trim())
        .map_err(|e| KeyError(format!("<{name}> is not base64: {e}")))
}

/// Reads an RSA private key from PKCS#8 PEM, PKCS#1 PEM or .NET `<RSAKeyValue>` XML.
pub fn rsa_private_key(text: &str) -> Result<RsaKeyPair, KeyError> {
    let text = text.trim();
    if text.starts_with("<RSAKeyValue>") {
        let f = |n| xml_field(text, n);
        let (n, e, d, p, q, dp, dq, qi) = (
            f("Modulus")?,
            f("Exponent")?,
            f("D")?,
            f("P")?,
            f("Q")?,
            f("DP")?,
            f("DQ")?,
            f("InverseQ")?,
        );
        let der = der_sequence(&[&[0], &n, &e, &d, &p, &q, &dp, &dq, &qi]);
        return RsaKeyPair::from_der(&der)
            .map_err(|e| KeyError(format!("the RSAKeyValue is not a usable RSA key: {e}")));
    }
    let der = pem_der(text)?;
    if text.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        RsaKeyPair::from_der(&der).map_err(|e| KeyError(format!("not a PKCS#1 RSA key: {e}")))
    } else if text.starts_with("-----BEGIN PRIVATE KEY-----") {
        RsaKeyPair::from_pkcs8(&der).map_err(|e| KeyError(format!("not a PKCS#8 RSA key: {e}")))
    } else {
        Err(KeyError(
            "expected a PEM private key or an <RSAKeyValue> XML key".into(),
        ))
    }
}

/// An RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature.
pub fn sign_rs256(key: &RsaKeyPair, message: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message,
        &mut signature,
    )
    .map_err(|_| KeyError("signing failed".into()))?;
    Ok(signature)
}

/// Checks an RS256 signature against an RSAPublicKey in DER.
pub fn verify_rs256(public_der: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_der)
        .verify(message, signature)
        .is_ok()
}

/// Checks a compact JWS (`header.claims.signature`, RS256) against a JWKS document and
/// returns its claims. Expiry is the caller's to check.
pub fn verify_jwt(token: &str, jwks: &serde_json::Value) -> Result<serde_json::Value, KeyError> {
    let b64 = |part: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|e| KeyError(format!("the token is not base64url: {e}")))
    };
    let parts: Vec<&str> = token.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(KeyError("the token is not a JWT (three dot-separated parts)".into()));
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64(header)?).map_err(|e| KeyError(format!("the token header is not JSON: {e}")))?;
    if header["alg"] != "RS256" {
        return Err(KeyError(format!(
            "the token is signed with {}, not RS256",
            header["alg"]
        )));
    }
    let kid = header["kid"].as_str();
    let message = format!("{}.{}", parts[0], parts[1]);
    let signature = b64(signature)?;
    let verified = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["kty"] == "RSA" && (kid.is_none() || k["kid"].as_str() == kid))
        .any(|k| {
            let (Some(n), Some(e)) = (k["n"].as_str(), k["e"].as_str()) else {
                return false;
            };
            match (b64(n), b64(e)) {
                (Ok(n), Ok(e)) => verify_rs256(&rsa_public_der(&n, &e), message.as_bytes(), &signature),
                _ => false,
            }
        });
    if !verified {
        return Err(KeyError(
            "the token's signature does not match any key the vendor publishes".into(),
        ));
    }
    serde_json::from_slice(&b64(claims)?).map_err(|e| KeyError(format!("the token claims are not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        let mut out = Vec::new();
        der_integer(&[0x00, 0x80], &mut out);
        assert_eq!(out, [0x02, 0x02, 0x00, 0x80]);
        let mut out = Vec::new();
        der_integer(&[0x01, 0x00, 0x01], &mut out);
        assert_eq!(out, [0x02, 0x03, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn non_keys_are_refused_with_a_reason() {
        assert!(rsa_private_key("hello").is_err());
        assert!(
            rsa_private_key("<RSAKeyValue><Modulus>AQAB</Modulus></RSAKeyValue>")
                .unwrap_err()
                .0
                .contains("Exponent")
        );
    }
}
