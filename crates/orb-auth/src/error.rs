//! [`AuthError`]: everything in this crate that can fail, each message saying what to do next.
//!
//! Messages never carry a secret (password, code, token) nor the e-mail address of the person signing
//! in: they end up in logs and audit rows.

/// A failure of an authentication step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A new password is shorter than the minimum.
    #[error("the password is too short: use at least {min} characters (a few words make a good one)")]
    PasswordTooShort {
        /// The minimum length, in characters.
        min: usize,
    },
    /// A new password is longer than the maximum.
    #[error("the password is too long: use at most {max} characters")]
    PasswordTooLong {
        /// The maximum length, in characters.
        max: usize,
    },
    /// A new password is one character repeated.
    #[error("the password is one character repeated: choose one that is not, for example a few words")]
    PasswordRepetitive,
    /// A new password is on the built-in list of the most common passwords.
    #[error("the password is one of the most commonly used passwords: choose another one")]
    PasswordTooCommon,
    /// A stored password hash is not a PHC string this crate can verify.
    #[error(
        "the stored password hash cannot be read ({reason}); reset this account's password to store a new one"
    )]
    MalformedHash {
        /// What is wrong with it.
        reason: String,
    },
    /// Argon2 refused to hash (parameters or salt rejected; not expected with the built-in parameters).
    #[error("hashing the password failed ({reason}); this is a bug in ORB, please report it")]
    Hashing {
        /// Argon2's reason.
        reason: String,
    },
    /// An IP allow-list entry is neither an address nor a CIDR network.
    #[error(
        "the IP allow-list entry {entry:?} is not an address or a CIDR network ({reason}); write it like \
         192.0.2.10, 192.0.2.0/24 or 2001:db8::/32"
    )]
    InvalidIpEntry {
        /// The entry as given.
        entry: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The OIDC configuration cannot be used (bad URL, provider without a token endpoint, ...).
    #[error("the single sign-on configuration cannot be used: {reason}; correct the tenant's OIDC settings")]
    OidcConfig {
        /// What is wrong.
        reason: String,
    },
    /// The provider's discovery document or key set could not be fetched or read.
    #[error(
        "the identity provider at {issuer} could not be discovered: {reason}; check the issuer URL{}",
        if *.retryable { " and try again in a moment" } else { "" }
    )]
    OidcDiscovery {
        /// The issuer URL asked.
        issuer: String,
        /// What went wrong.
        reason: String,
        /// Whether trying again later may succeed (network errors, 5xx).
        retryable: bool,
    },
    /// The token endpoint refused the authorization code or could not be reached.
    #[error("the identity provider did not accept the sign-in ({reason}); start the sign-in again")]
    OidcTokenExchange {
        /// The provider's OAuth error code and description, or the transport failure.
        reason: String,
        /// Whether trying again later may succeed (network errors, 5xx).
        retryable: bool,
    },
    /// The ID token is missing or failed verification (signature, issuer, audience, expiry, nonce).
    #[error("the identity provider's ID token was refused ({reason}); start the sign-in again")]
    OidcIdToken {
        /// What failed.
        reason: String,
    },
    /// The ID token carries no e-mail address.
    #[error(
        "the identity provider sent no e-mail address for this account; ask its administrator to release the \
         `email` claim to ORB"
    )]
    OidcEmailMissing,
    /// The ID token's e-mail address is not marked verified by the provider.
    #[error(
        "the identity provider has not verified this account's e-mail address; verify it at the provider, \
         then sign in again"
    )]
    OidcEmailNotVerified,
    /// The ID token's e-mail address is not a valid address.
    #[error(
        "the identity provider sent an e-mail address ORB cannot use ({reason}); correct it at the provider"
    )]
    OidcEmailInvalid {
        /// Why it is refused.
        reason: String,
    },
}

impl AuthError {
    /// Whether the same call may succeed later without a change (a network hiccup, a provider's 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::OidcDiscovery { retryable, .. } | Self::OidcTokenExchange { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transport_failures_are_retryable() {
        let cases = [
            (AuthError::OidcDiscovery { issuer: "i".into(), reason: "r".into(), retryable: true }, true),
            (AuthError::OidcDiscovery { issuer: "i".into(), reason: "r".into(), retryable: false }, false),
            (AuthError::OidcTokenExchange { reason: "timeout".into(), retryable: true }, true),
            (AuthError::OidcTokenExchange { reason: "invalid_grant".into(), retryable: false }, false),
            (AuthError::OidcEmailNotVerified, false),
            (AuthError::PasswordTooShort { min: 12 }, false),
        ];
        for (error, expected) in cases {
            assert_eq!(error.is_retryable(), expected, "{error}");
        }
    }

    #[test]
    fn messages_say_what_to_do_next() {
        let e = AuthError::InvalidIpEntry { entry: "10.0.0.300".into(), reason: "bad".into() };
        assert!(e.to_string().contains("\"10.0.0.300\""), "{e}");
        assert!(e.to_string().contains("192.0.2.0/24"), "{e}");
        let e = AuthError::OidcDiscovery {
            issuer: "https://idp".into(),
            reason: "timeout".into(),
            retryable: true,
        };
        assert!(e.to_string().ends_with("try again in a moment"), "{e}");
        assert!(AuthError::OidcEmailNotVerified.to_string().contains("sign in again"));
    }
}
