//! The random values the subject's side hands out, and the hashes the ledger keeps of them.
//! A link's token is 256 random bits (base64url); a code is six digits, good for a few tries
//! only, and hashed with what it belongs to so that equal codes do not share a hash.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A new link token (256 bits, base64url without padding).
pub fn token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new id for a submission or a delivery (128 bits, hex): in URLs, so not guessable.
pub fn id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// A new six-digit code.
pub fn code() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

/// The SHA-256 of a token, as the ledger keeps it.
pub fn sha256(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// The hash of a code for `owner` (a submission's or a delivery's id). What the subject
/// typed is read leniently: spaces and dashes dropped.
pub fn code_sha256(owner: &str, code: &str) -> String {
    let digits: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    sha256(&format!("{owner}:{digits}"))
}

/// A token shaped as [`token`] makes them; anything else is refused before the ledger is asked.
pub fn looks_like_token(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An id shaped as [`id`] makes them.
pub fn looks_like_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_codes_and_ids_have_their_shape_and_differ() {
        let (a, b) = (token(), token());
        assert!(looks_like_token(&a) && looks_like_token(&b));
        assert_ne!(a, b);
        assert!(looks_like_id(&id()));
        let c = code();
        assert_eq!(c.len(), 6);
        assert!(c.bytes().all(|b| b.is_ascii_digit()));
        assert!(!looks_like_token("../../etc/passwd"));
    }

    #[test]
    fn a_code_hash_is_bound_to_its_owner_and_reads_spaces_leniently() {
        assert_eq!(code_sha256("s1", "123 456"), code_sha256("s1", "123456"));
        assert_eq!(code_sha256("s1", "123-456"), code_sha256("s1", "123456"));
        assert_ne!(code_sha256("s1", "123456"), code_sha256("s2", "123456"));
        assert_ne!(code_sha256("s1", "123456"), code_sha256("s1", "123457"));
    }
}
