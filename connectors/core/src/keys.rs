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

/// A JWT's `aud`: one string or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// The registered claims (RFC 7519 §4.1) checked on every token a vendor signs for dsr:
/// `iss`, `aud` and `exp` are required, `nbf` is checked when present. Times are NumericDate
/// (seconds since the epoch, possibly fractional).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RegisteredClaims {
    pub iss: String,
    pub aud: Audience,
    pub exp: f64,
    #[serde(default)]
    pub nbf: Option<f64>,
}

/// How far clocks may disagree when `exp` and `nbf` are checked.
pub const CLOCK_LEEWAY: std::time::Duration = std::time::Duration::from_secs(60);

impl RegisteredClaims {
    /// Accepts the token only from `issuer`, for `audience`, and within its validity at `now`
    /// give or take [`CLOCK_LEEWAY`].
    pub fn check(&self, issuer: &str, audience: &str, now: std::time::SystemTime) -> Result<(), KeyError> {
        let now = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let leeway = CLOCK_LEEWAY.as_secs_f64();
        if self.iss != issuer {
            return Err(KeyError(format!("the token's issuer is not {issuer:?}")));
        }
        if !self.aud.contains(audience) {
            return Err(KeyError(format!("the token's audience is not {audience:?}")));
        }
        if now > self.exp + leeway {
            return Err(KeyError("the token has expired".into()));
        }
        if self.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(KeyError("the token is not valid before a time still to come".into()));
        }
        Ok(())
    }
}

/// Checks a compact JWS (`header.claims.signature`, RS256) against a JWKS document and
/// returns its claims as `C` (include [`RegisteredClaims`], flattened, and check them).
pub fn verify_jwt<C: serde::de::DeserializeOwned>(token: &str, jwks: &serde_json::Value) -> Result<C, KeyError> {
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
    fn registered_claims_are_checked_issuer_audience_and_time() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let claims = |v: serde_json::Value| serde_json::from_value::<RegisteredClaims>(v).unwrap();
        let good = serde_json::json!({"iss": "SuperOffice AS", "aud": "spn:1", "exp": 1_000_100, "nbf": 999_900});
        assert!(claims(good.clone()).check("SuperOffice AS", "spn:1", now).is_ok());
        let many = serde_json::json!({"iss": "SuperOffice AS", "aud": ["x", "spn:1"], "exp": 1_000_100.5});
        assert!(claims(many).check("SuperOffice AS", "spn:1", now).is_ok());
        let within_leeway =
            serde_json::json!({"iss": "SuperOffice AS", "aud": "spn:1", "exp": 999_950, "nbf": 1_000_050});
        assert!(claims(within_leeway).check("SuperOffice AS", "spn:1", now).is_ok());
        let refused = |patch: serde_json::Value, words: &str| {
            let mut v = good.clone();
            v.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
            let err = claims(v).check("SuperOffice AS", "spn:1", now).unwrap_err();
            assert!(err.0.contains(words), "{err}");
        };
        refused(serde_json::json!({"exp": 999_000}), "expired");
        refused(serde_json::json!({"nbf": 1_001_000}), "not valid before");
        refused(serde_json::json!({"iss": "Someone"}), "issuer");
        refused(serde_json::json!({"aud": "spn:2"}), "audience");
        refused(serde_json::json!({"aud": []}), "audience");
        assert!(serde_json::from_value::<RegisteredClaims>(serde_json::json!({"aud": "a", "exp": 1})).is_err());
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
