//! TOTP second factor (RFC 6238): the secret, the `otpauth://` enrolment URI, its QR code as inline SVG,
//! and code verification on an injected instant.
//!
//! Fixed parameters, the ones every authenticator app supports: HMAC-SHA-1, 6 digits, 30-second steps;
//! a code is accepted for the previous, the current and the next step (clock drift of the phone).
//!
//! **Replay:** [`verify_code`] only says which step a code matched. A code must be accepted once: the
//! caller records the step with the store's `claim_totp_step` (which refuses a step at or before the last
//! one claimed for the account) and refuses the sign-in when the claim fails.

use std::fmt;

use chrono::{DateTime, Utc};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use secrecy::{ExposeSecret as _, SecretSlice};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::random;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;

/// A TOTP shared secret. `Debug` shows nothing of it.
pub struct TotpSecret(SecretSlice<u8>);

impl TotpSecret {
    /// A fresh secret of 20 random bytes (160 bits, RFC 4226's recommendation).
    ///
    /// # Panics
    /// When the system random number generator fails.
    pub fn generate() -> Self {
        Self::from_bytes(random::bytes::<20>().to_vec())
    }

    /// A stored secret.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(SecretSlice::from(bytes))
    }

    /// The raw bytes (to seal and store).
    pub fn expose_bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// RFC 4648 base32 without padding: the key a person types into an authenticator app by hand.
    pub fn to_base32(&self) -> String {
        Secret::from(self.expose_bytes()).to_base32()
    }

    fn totp(&self) -> Totp {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(1)
            .with_step_duration(STEP_SECONDS as u64)
            .with_secret(self.expose_bytes())
            .build_noncompliant()
    }
}

impl Clone for TotpSecret {
    fn clone(&self) -> Self {
        Self::from_bytes(self.expose_bytes().to_vec())
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// Bytes kept as they are in an `otpauth://` URI (RFC 3986 unreserved); everything else is %-encoded,
/// spaces as `%20` (authenticator apps show a `+` literally).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The enrolment URI in Google Authenticator's key-URI format:
/// `otpauth://totp/<issuer>:<account>?secret=<base32>&issuer=<issuer>&algorithm=SHA1&digits=6&period=30`
/// (issuer and account %-encoded, so a `:` in either cannot split the label).
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        account = percent_encode(account),
        secret = secret.to_base32(),
    )
}

/// The QR code of `uri` as one `<svg>` element (no XML prolog, no `style` attribute, no script), to put
/// inline in a page under a strict Content-Security-Policy. Black on white, quiet zone included, at
/// least 200 px wide.
///
/// A text too long for any QR code (several kilobytes; an `otpauth` URI is ~150 bytes) gives an `<svg>`
/// saying so, and the page's base32 key is the way to enrol.
pub fn qr_svg(uri: &str) -> String {
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .or_else(|_| QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::L));
    let Ok(code) = code else {
        return concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="QR code unavailable" "#,
            r#"width="200" height="40" viewBox="0 0 200 40"><text x="4" y="24">Enter the key by hand</text></svg>"#
        )
        .to_owned();
    };
    let rendered = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    // qrcode writes an XML prolog before the element; inline HTML wants the element alone.
    let element = rendered.find("<svg").map_or(rendered.as_str(), |start| &rendered[start..]);
    element.replacen("<svg ", r#"<svg role="img" aria-label="QR code for the authenticator app" "#, 1)
}

/// The step a code is valid for at `now`, if it is valid: 6 ASCII digits (spaces ignored, as people
/// type `123 456`), matching the previous, current or next 30-second step. Returns the matched step
/// number (Unix time / 30), which the caller must claim once (see the module docs): this function does
/// not remember anything.
pub fn verify_code(secret: &TotpSecret, code: &str, now: DateTime<Utc>) -> Option<i64> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let time = u64::try_from(now.timestamp()).ok()?;
    let step = secret.totp().check(&digits, time)?;
    i64::try_from(step).ok()
}

/// The code for the step holding `at` (tests and the demo's scripted sign-in). Instants before 1970
/// give the code of step 0.
pub fn code_at(secret: &TotpSecret, at: DateTime<Utc>) -> String {
    let time = u64::try_from(at.timestamp()).unwrap_or(0);
    secret.totp().generate(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("in range")
    }

    /// RFC 6238 appendix B, SHA-1 seed "12345678901234567890"; the RFC's codes have 8 digits, a 6-digit
    /// code is their last 6 (the truncation is modulo 10^digits).
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc_6238_sha1_test_vectors() {
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, rfc) in vectors {
            let six = &rfc[2..];
            assert_eq!(code_at(&rfc_secret(), at(time)), six, "T = {time}");
            assert_eq!(verify_code(&rfc_secret(), six, at(time)), Some(time / 30), "T = {time}");
        }
    }

    #[test]
    fn codes_of_the_neighbouring_steps_are_accepted_and_no_further() {
        let secret = TotpSecret::generate();
        let now = at(1_800_000_015); // step 60_000_000
        let step = 60_000_000;
        let check = |offset_steps: i64, expected: Option<i64>| {
            let code = code_at(&secret, at((step + offset_steps) * 30));
            assert_eq!(verify_code(&secret, &code, now), expected, "offset {offset_steps}");
        };
        check(-2, None);
        check(-1, Some(step - 1));
        check(0, Some(step));
        check(1, Some(step + 1));
        check(2, None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = rfc_secret();
        let now = at(59);
        assert_eq!(verify_code(&secret, "287 082", now), Some(1), "spaces are ignored");
        for bad in ["", "28708", "2870822", "28708a", "-287082", "２８７０８２", "94287082"] {
            assert_eq!(verify_code(&secret, bad, now), None, "{bad:?}");
        }
        assert_eq!(verify_code(&secret, "287082", at(-30)), None, "before 1970");
    }

    #[test]
    fn secret_is_20_random_bytes_redacted_in_debug_and_base32_without_padding() {
        let one = TotpSecret::generate();
        assert_eq!(one.expose_bytes().len(), 20);
        assert_ne!(one.expose_bytes(), TotpSecret::generate().expose_bytes());
        assert_eq!(format!("{one:?}"), "TotpSecret([redacted])");
        assert_eq!(one.clone().expose_bytes(), one.expose_bytes());
        // RFC 4648 test vector "foobar" → "MZXW6YTBOI" (unpadded).
        assert_eq!(TotpSecret::from_bytes(b"foobar".to_vec()).to_base32(), "MZXW6YTBOI");
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn otpauth_uri_follows_the_key_uri_format() {
        let uri = otpauth_uri(&rfc_secret(), "ORB Contoso", "anna.bakker@contoso.com");
        assert_eq!(
            uri,
            "otpauth://totp/ORB%20Contoso:anna.bakker%40contoso.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=ORB%20Contoso&algorithm=SHA1&digits=6&period=30"
        );
        let tricky = otpauth_uri(&rfc_secret(), "a:b", "c&d=e");
        assert!(tricky.starts_with("otpauth://totp/a%3Ab:c%26d%3De?"), "{tricky}");
    }

    #[test]
    fn qr_svg_is_one_inline_svg_element_without_style_or_script() {
        let svg = qr_svg(&otpauth_uri(&rfc_secret(), "ORB", "anna@contoso.com"));
        assert!(svg.starts_with("<svg "), "{}", &svg[..40]);
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
        assert!(!svg.to_lowercase().contains("style"));
        assert!(!svg.to_lowercase().contains("script"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("<path"), "has modules");
        let long = qr_svg(&"x".repeat(10_000));
        assert!(long.starts_with("<svg ") && long.contains("by hand") && !long.contains("style"), "{long}");
    }
}
