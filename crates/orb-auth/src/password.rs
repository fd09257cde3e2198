//! Passwords: Argon2id hashes as PHC strings, verification, a dummy verification for unknown accounts,
//! and the rules a new password must meet.
//!
//! Parameters are OWASP's first Argon2id recommendation: m = 19456 KiB, t = 2, p = 1, a 16-byte random
//! salt (aws-lc-rs), a 32-byte output. A stored hash keeps its own parameters, so raising them later
//! still verifies old hashes.
//!
//! Invariant: a password is only ever held in a [`SecretString`] and never appears in an error.

use argon2::password_hash::Error as PhcError;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::AuthError;
use crate::random;

/// Memory cost in KiB (OWASP: 19 MiB).
pub const M_COST_KIB: u32 = 19_456;
/// Iterations.
pub const T_COST: u32 = 2;
/// Parallelism.
pub const P_COST: u32 = 1;
/// The fewest characters a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The most characters a new password may have (Argon2 takes any length; this bounds the work a request
/// can ask for).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A hash of a password nobody knows, with the same parameters as [`hash_password`], so that
/// [`verify_dummy`] costs what a real verification costs (test `the_dummy_hash_has_the_current_parameters`).
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$ZHVtbXktc2FsdC1vcmIhIQ$blKSsDMPsjJqpGOktvK+DnwG18hQnxe3EqVm0rtrVbA";

/// The most common passwords of at least [`MIN_PASSWORD_CHARS`] characters (shorter ones are refused by
/// length already), compared case-insensitively. From the public breach-frequency lists; deliberately
/// small: the length rule does most of the work.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456789012345",
    "1234567890123456",
    "123123123123",
    "123412341234",
    "121212121212",
    "147258369147",
    "098765432109",
    "987654321098",
    "qwertyuiop12",
    "qwertyuiop123",
    "qwertyuiopasdfghjkl",
    "qwertyuiopasdfghjklzxcvbnm",
    "qwerty123456",
    "qwertyqwerty",
    "qwerty12345678",
    "1q2w3e4r5t6y",
    "1q2w3e4r5t6y7u8i",
    "1qaz2wsx3edc",
    "1qaz2wsx3edc4rfv",
    "zaq12wsxcde3",
    "asdfghjkl123",
    "abcdefghijkl",
    "abcdefghijklm",
    "abcdefghijklmnopqrstuvwxyz",
    "abc123abc123",
    "abcd1234abcd",
    "password1234",
    "password12345",
    "password123456",
    "password123!",
    "password2024",
    "password2025",
    "password2026",
    "passwordpassword",
    "p@ssw0rd1234",
    "iloveyou1234",
    "iloveyouforever",
    "welcome12345",
    "welcome123456",
    "letmein12345",
    "letmeinletmein",
    "administrator",
    "administrator1",
    "adminadmin12",
    "admin1234567",
    "changeme1234",
    "changemenow!",
    "trustno1trustno1",
    "superman1234",
    "football1234",
    "baseball1234",
    "sunshine1234",
    "princess1234",
    "starwars1234",
    "monkey123456",
    "dragon123456",
    "whatever1234",
    "michael12345",
    "summer2024!!",
    "winter2025!!",
    "correcthorsebatterystaple",
    "thequickbrownfox",
    "thequickbrownfoxjumpsoverthelazydog",
];

/// The Argon2id hasher with the crate's parameters.
fn argon2() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| AuthError::Hashing { reason: e.to_string() })?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with Argon2id (m = 19456 KiB, t = 2, p = 1, random 16-byte salt) into a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
///
/// Does not check the password's quality: call [`check_new_password`] first for a password a person
/// chooses.
///
/// # Panics
/// When the system random number generator fails.
pub fn hash_password(password: &SecretString) -> Result<String, AuthError> {
    let salt = random::bytes::<16>();
    let hash = argon2()?
        .hash_password_with_salt(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| AuthError::Hashing { reason: e.to_string() })?;
    Ok(hash.to_string())
}

/// Verifies a password against a stored PHC string, with the string's own parameters.
///
/// `Ok(false)` for a wrong password; [`AuthError::MalformedHash`] for a string that is not an Argon2
/// PHC string this crate can verify (the account then needs a password reset).
pub fn verify_password(password: &SecretString, phc: &str) -> Result<bool, AuthError> {
    let parsed = PasswordHash::new(phc).map_err(|e| AuthError::MalformedHash { reason: e.to_string() })?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(AuthError::MalformedHash { reason: "it holds no salt or no hash value".to_owned() });
    }
    match Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(PhcError::PasswordInvalid) => Ok(false),
        Err(e) => Err(AuthError::MalformedHash { reason: e.to_string() }),
    }
}

/// Spends the time of one real [`verify_password`] and returns nothing: call it when the account does
/// not exist, so the answer's timing does not tell who has an account.
pub fn verify_dummy(password: &SecretString) {
    // The outcome is false (nobody knows the dummy's password) and carries no information.
    let _ = verify_password(password, DUMMY_PHC);
}

/// Checks a password a person chose: at least [`MIN_PASSWORD_CHARS`] and at most
/// [`MAX_PASSWORD_CHARS`] characters, not one character repeated, not on the built-in list of the most
/// common passwords (case-insensitive).
pub fn check_new_password(password: &SecretString) -> Result<(), AuthError> {
    let text = password.expose_secret();
    let chars = text.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(AuthError::PasswordTooShort { min: MIN_PASSWORD_CHARS });
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(AuthError::PasswordTooLong { max: MAX_PASSWORD_CHARS });
    }
    let mut all = text.chars();
    if let Some(first) = all.next()
        && all.all(|c| c == first)
    {
        return Err(AuthError::PasswordRepetitive);
    }
    let lower = text.to_lowercase();
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(AuthError::PasswordTooCommon);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// Hashed once with `hash_password` (recorded): the format is stable across releases.
    const RECORDED: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$auL0afKNvHkTTfhfx4miAw$L4i0qOMpidJICtnRtarCCO81ENfOPZwtuEak9g0jx4I";
    const RECORDED_PASSWORD: &str = "correct horse battery staple";

    #[test]
    fn a_recorded_phc_string_verifies_and_a_wrong_password_does_not() {
        assert!(verify_password(&secret(RECORDED_PASSWORD), RECORDED).unwrap());
        assert!(!verify_password(&secret("correct horse battery stapler"), RECORDED).unwrap());
    }

    #[test]
    fn a_new_hash_is_argon2id_with_owasp_parameters_and_a_fresh_salt() {
        let pw = secret("a sufficiently long passphrase");
        let one = hash_password(&pw).unwrap();
        let two = hash_password(&pw).unwrap();
        assert!(one.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{one}");
        assert_ne!(one, two, "salted");
        assert!(verify_password(&pw, &one).unwrap());
        assert!(verify_password(&pw, &two).unwrap());
        assert!(!verify_password(&secret("another long passphrase"), &one).unwrap());
    }

    #[test]
    fn a_malformed_phc_string_is_an_error_not_a_wrong_password() {
        for bad in [
            "",
            "plaintext",
            "$argon2id$v=19$m=19456",
            "$unknown$v=1$abc$def",
            "$argon2id$v=19$m=x,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            let got = verify_password(&secret("whatever it is"), bad);
            assert!(matches!(got, Err(AuthError::MalformedHash { .. })), "{bad:?}: {got:?}");
        }
    }

    #[test]
    fn the_dummy_hash_has_the_current_parameters() {
        let prefix = format!("$argon2id$v=19$m={M_COST_KIB},t={T_COST},p={P_COST}$");
        assert!(DUMMY_PHC.starts_with(&prefix));
        assert!(!verify_password(&secret("x"), DUMMY_PHC).unwrap(), "parses, refuses");
        verify_dummy(&secret("anything"));
    }

    #[test]
    fn new_password_rules() {
        let check = |pw: &str, expected: Result<(), &str>| {
            let got = check_new_password(&secret(pw)).map_err(|e| match e {
                AuthError::PasswordTooShort { .. } => "short",
                AuthError::PasswordTooLong { .. } => "long",
                AuthError::PasswordRepetitive => "repetitive",
                AuthError::PasswordTooCommon => "common",
                _ => "other",
            });
            assert_eq!(got, expected, "{pw:?}");
        };
        check("", Err("short"));
        check("elevenchars", Err("short"));
        check("twelve chars", Ok(()));
        check("ñandúñandúñ", Err("short")); // 11 characters, more bytes
        check("ñandúñandúñá", Ok(()));
        check(&"a".repeat(1024), Err("repetitive"));
        check(&"ab".repeat(512), Ok(()));
        check(&"ab".repeat(513), Err("long"));
        check("zzzzzzzzzzzzzzzz", Err("repetitive"));
        check("password1234", Err("common"));
        check("PassWord1234", Err("common"));
        check("Correct Horse Battery Staple", Ok(()));
        check("correcthorsebatterystaple", Err("common"));
        check("orb books rooms for people", Ok(()));
    }

    #[test]
    fn the_common_list_holds_only_passwords_the_length_rule_lets_through() {
        for pw in COMMON_PASSWORDS {
            assert!(pw.chars().count() >= MIN_PASSWORD_CHARS, "{pw} is refused by length already");
            assert_eq!(*pw, pw.to_lowercase(), "compared in lower case");
        }
    }
}

/// Symbols of a generated password: Crockford's base32, lower case (no look-alikes).
const GENERATED_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A fresh one-time password (`xxxx-xxxx-xxxx-xxxx`, 80 random bits) for an invited or reset account;
/// it passes [`check_new_password`]. Show it once; store only [`hash_password`] of it.
///
/// # Panics
/// When the system random number generator fails.
pub fn generate_password() -> SecretString {
    let bytes = crate::random::bytes::<16>();
    let mut out = String::with_capacity(19);
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        out.push(char::from(GENERATED_ALPHABET[usize::from(byte & 0x1f)]));
    }
    SecretString::from(out)
}

#[cfg(test)]
mod generated_tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn generated_passwords_are_strong_distinct_and_well_formed() {
        let a = generate_password();
        let b = generate_password();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 19);
        assert_eq!(a.expose_secret().matches('-').count(), 3);
        check_new_password(&a).unwrap();
        let hash = hash_password(&a).unwrap();
        assert!(verify_password(&a, &hash).unwrap());
    }
}
