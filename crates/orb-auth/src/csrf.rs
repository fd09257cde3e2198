//! Cross-site request forgery defences for every state-changing request: a token bound to the session
//! (HMAC-SHA256 of the session id under an installation key) and the Origin check.
//!
//! The portal puts [`CsrfKey::token`] in its forms and htmx headers and refuses a request unless
//! [`CsrfKey::verify`] and [`origin_allowed`] both say yes.

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use url::Url;

use crate::random;

/// Separates CSRF MACs from any other use of the key.
const DOMAIN: &[u8] = b"orb-csrf-v1\0";

/// The installation's CSRF key (32 bytes). `Debug` shows nothing of it.
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl CsrfKey {
    /// A fresh random key.
    ///
    /// # Panics
    /// When the system random number generator fails.
    pub fn generate() -> Self {
        Self(random::bytes::<32>())
    }

    /// A stored key.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key (to seal and store).
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }

    fn message(session_id: i64) -> Vec<u8> {
        let mut message = DOMAIN.to_vec();
        message.extend_from_slice(&session_id.to_be_bytes());
        message
    }

    /// The session's token: base64url (unpadded, 43 characters) of HMAC-SHA256 over the session id.
    pub fn token(&self, session_id: i64) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key(), &Self::message(session_id)))
    }

    /// Whether `token` is this session's token (constant-time; anything malformed is `false`).
    pub fn verify(&self, session_id: i64, token: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        hmac::verify(&self.key(), &Self::message(session_id), &tag).is_ok()
    }
}

impl fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfKey([redacted])")
    }
}

/// The ASCII serialisation of a URL's origin (`scheme://host[:port]`, default port left out, host in
/// lower case), or `None` for an opaque origin or text that is not a URL.
fn origin_of(text: &str) -> Option<String> {
    let url = Url::parse(text.trim()).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Whether a state-changing request comes from the portal's own pages: the `Origin` header must be
/// `expected_origin` (compared as origins: scheme, host, port); without `Origin`, the `Referer`'s origin
/// must be; with neither, or with `Origin: null`, the request is refused.
pub fn origin_allowed(origin: Option<&str>, referer: Option<&str>, expected_origin: &str) -> bool {
    let Some(expected) = origin_of(expected_origin) else {
        return false;
    };
    match (origin, referer) {
        (Some(origin), _) => origin_of(origin).is_some_and(|o| o == expected),
        (None, Some(referer)) => origin_of(referer).is_some_and(|o| o == expected),
        (None, None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_for_its_session_only() {
        let key = CsrfKey::generate();
        let token = key.token(42);
        assert_eq!(token.len(), 43);
        assert!(key.verify(42, &token));
        assert!(!key.verify(43, &token), "another session");
        assert!(!CsrfKey::generate().verify(42, &token), "another key");
        assert_eq!(key.token(42), token, "deterministic");
        assert_eq!(key.token(-1), CsrfKey::from_bytes(*key.expose_bytes()).token(-1), "stored key");
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = CsrfKey::from_bytes([7; 32]);
        let token = key.token(1);
        for bad in ["", "!!!", &token[..42], &format!("{token}A"), &token.to_uppercase()] {
            assert!(!key.verify(1, bad), "{bad:?}");
        }
    }

    #[test]
    fn the_token_is_the_hmac_of_the_domain_and_session_id() {
        // Recomputed independently of `token` with the documented construction.
        let key = CsrfKey::from_bytes([1; 32]);
        let mut msg = b"orb-csrf-v1\0".to_vec();
        msg.extend_from_slice(&7i64.to_be_bytes());
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]), &msg);
        assert_eq!(key.token(7), URL_SAFE_NO_PAD.encode(mac));
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", CsrfKey::from_bytes([9; 32])), "CsrfKey([redacted])");
    }

    #[test]
    fn origin_check_table() {
        let expected = "https://orb.contoso.com";
        let check = |origin: Option<&str>, referer: Option<&str>, allowed: bool| {
            assert_eq!(origin_allowed(origin, referer, expected), allowed, "{origin:?} {referer:?}");
        };
        check(Some("https://orb.contoso.com"), None, true);
        check(Some("https://ORB.contoso.com:443"), None, true);
        check(Some("https://orb.contoso.com"), Some("https://evil.example/x"), true);
        check(Some("https://evil.example"), Some("https://orb.contoso.com/admin"), false);
        check(Some("http://orb.contoso.com"), None, false);
        check(Some("https://orb.contoso.com:8443"), None, false);
        check(Some("https://orb.contoso.com.evil.example"), None, false);
        check(Some("null"), Some("https://orb.contoso.com/"), false);
        check(Some(""), None, false);
        check(None, Some("https://orb.contoso.com/rooms?x=1"), true);
        check(None, Some("https://evil.example/https://orb.contoso.com"), false);
        check(None, Some("not a url"), false);
        check(None, None, false);
        assert!(!origin_allowed(Some("x"), None, "not an origin"));
        assert!(origin_allowed(Some("http://127.0.0.1:8080"), None, "http://127.0.0.1:8080/"));
    }
}
