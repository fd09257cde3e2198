//! Recovery codes: single-use codes that stand in for the TOTP code when the phone is lost.
//!
//! A code is 10 characters from Crockford's base32 alphabet in lower case (`0-9`, `a-z` without `i`,
//! `l`, `o`, `u`), 5 bits each, so 50 random bits, shown as `k7m2-9qx4-tz`. Only
//! [`hash_recovery_code`] of a code is stored. What a person types back is normalised first: case,
//! spaces and dashes do not matter, and the look-alikes `o` → `0`, `i`/`l` → `1` are read as Crockford
//! reads them.

use aws_lc_rs::digest::{SHA256, digest};
use secrecy::SecretString;

use crate::random;

/// Crockford's base32 alphabet, lower case: 32 symbols, none of them easily mistaken for another.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Symbols per code (5 bits each: 50 bits).
pub const RECOVERY_CODE_CHARS: usize = 10;

/// `n` fresh recovery codes (`xxxx-xxxx-xx`, 50 random bits each). Show them once; store
/// [`hash_recovery_code`] of each.
///
/// # Panics
/// When the system random number generator fails.
pub fn generate_recovery_codes(n: usize) -> Vec<SecretString> {
    (0..n).map(|_| SecretString::from(one_code())).collect()
}

fn one_code() -> String {
    let bytes = random::bytes::<RECOVERY_CODE_CHARS>();
    let mut code = String::with_capacity(RECOVERY_CODE_CHARS + 2);
    for (i, byte) in bytes.iter().enumerate() {
        if i == 4 || i == 8 {
            code.push('-');
        }
        // 256 is a multiple of 32: the low 5 bits of a uniform byte are uniform.
        code.push(char::from(ALPHABET[usize::from(byte & 0x1f)]));
    }
    code
}

/// The SHA-256 of a recovery code after normalisation (lower case; spaces, tabs and dashes removed;
/// `o` → `0`, `i` and `l` → `1`): what is stored, and what a typed code is looked up by.
pub fn hash_recovery_code(code: &str) -> Vec<u8> {
    let normalised: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        })
        .collect();
    digest(&SHA256, normalised.as_bytes()).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn codes_have_the_documented_shape_and_differ() {
        let codes = generate_recovery_codes(10);
        assert_eq!(codes.len(), 10);
        let texts: HashSet<String> = codes.iter().map(|c| c.expose_secret().to_owned()).collect();
        assert_eq!(texts.len(), 10, "all different");
        for code in &texts {
            let parts: Vec<&str> = code.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 4, 2], "{code}");
            assert!(code.bytes().filter(|b| *b != b'-').all(|b| ALPHABET.contains(&b)), "{code}");
        }
        assert!(generate_recovery_codes(0).is_empty());
    }

    #[test]
    fn the_alphabet_has_32_distinct_unambiguous_symbols() {
        let set: HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(set.len(), 32, "5 bits per symbol → 50 bits per code");
        for confusable in [b'i', b'l', b'o', b'u'] {
            assert!(!set.contains(&confusable), "{}", confusable as char);
        }
    }

    #[test]
    fn typed_variants_hash_like_the_shown_code() {
        let shown = "k7m2-9qx4-tz";
        let expected = hash_recovery_code(shown);
        for typed in ["k7m29qx4tz", "K7M2-9QX4-TZ", " k7m2 9qx4 tz ", "k7m2--9qx4\t-tz"] {
            assert_eq!(hash_recovery_code(typed), expected, "{typed:?}");
        }
        assert_eq!(hash_recovery_code("ab0c-1def-10"), hash_recovery_code("abOc-Idef-lo"), "look-alikes");
        assert_ne!(hash_recovery_code("k7m2-9qx4-ty"), expected);
        assert_eq!(expected.len(), 32);
    }
}
