//! Opaque bearer tokens (session ids, API tokens, invitation links): random text handed out once, only
//! its SHA-256 stored, compared in constant time.
//!
//! Invariant: the store never holds a token, only [`hash_token`] of it, so a leaked database does not
//! sign anyone in.

use aws_lc_rs::digest::{SHA256, digest};
use secrecy::SecretString;

use crate::random;

/// A fresh token: 32 random bytes as unpadded base64url (43 characters), and the SHA-256 of that text
/// (what to store; equal to [`hash_token`] of the token).
///
/// # Panics
/// When the system random number generator fails.
pub fn random_token() -> (SecretString, Vec<u8>) {
    let token = random::base64url::<32>();
    let hash = hash_token(&token);
    (SecretString::from(token), hash)
}

/// The SHA-256 of a presented token's text, to look it up by.
pub fn hash_token(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// Whether two byte strings are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_token_is_43_base64url_characters_and_its_hash_is_its_sha256() {
        let (token, hash) = random_token();
        let text = token.expose_secret();
        assert_eq!(text.len(), 43);
        assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{text}");
        assert_eq!(hash, hash_token(text));
        assert_eq!(hash.len(), 32);
        assert_ne!(random_token().1, hash, "two tokens differ");
    }

    #[test]
    fn hash_token_is_sha256_of_the_text() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let hex: String = hash_token("abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        let check =
            |a: &[u8], b: &[u8], expected: bool| assert_eq!(constant_time_eq(a, b), expected, "{a:?} {b:?}");
        check(b"", b"", true);
        check(b"abc", b"abc", true);
        check(b"abc", b"abd", false);
        check(b"abc", b"ab", false);
        check(b"", b"a", false);
    }
}
