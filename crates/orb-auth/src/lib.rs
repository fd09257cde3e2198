//! # orb-auth
//!
//! How the admin portal knows who is asking: Argon2id password hashes, TOTP second factors (with replay
//! protection), recovery codes, the lockout policy, CSRF tokens, IP allow-lists, and OpenID Connect single
//! sign-on (authorization code + PKCE).
//!
//! Everything here is a pure function of its inputs (time is passed in, or comes from an injected
//! [`orb_core::Clock`]) except the OIDC relying party, which talks HTTP to the provider. Storing what
//! these functions produce (hashes, claimed TOTP steps, failure counts, pending OIDC flows) is the
//! portal's job.
//!
//! | module | holds |
//! |---|---|
//! | [`password`] | `hash_password`, `verify_password`, `verify_dummy`, `check_new_password` |
//! | [`totp`] | `TotpSecret`, `otpauth_uri`, `qr_svg`, `verify_code` (replay guard: the caller's `claim_totp_step`), `code_at` |
//! | [`recovery`] | `generate_recovery_codes`, `hash_recovery_code` |
//! | [`lockout`] | `LockoutPolicy`, `Failures` |
//! | [`tokens`] | `random_token`, `hash_token`, `constant_time_eq` |
//! | [`csrf`] | `CsrfKey`, `origin_allowed` |
//! | [`iplist`] | `IpAllowList`, `client_ip` |
//! | [`oidc`] | `OidcConfig`, `OidcRelyingParty`, `OidcPending`, `OidcIdentity` |
//!
//! Invariants: all cryptography and randomness is aws-lc-rs (Argon2 and TOTP's HMAC-SHA-1 excepted: their
//! crates; `openidconnect` verifies the ID token's RS256 signature itself); secrets (passwords, TOTP
//! secrets, tokens, keys, pending flows) have redacting `Debug` and never appear in an error.
//!
//! ## Must not depend on
//! orb-store, orb-web, orb-engine (this crate decides; the portal stores and serves).

pub mod csrf;
pub mod error;
pub mod iplist;
pub mod lockout;
pub mod oidc;
pub mod password;
mod random;
pub mod recovery;
pub mod tokens;
pub mod totp;

pub use csrf::{CsrfKey, origin_allowed};
pub use error::AuthError;
pub use iplist::{IpAllowList, client_ip};
pub use lockout::{
    ADDRESS_FACTOR, ADDRESS_FORGET_AFTER, ADDRESS_FREE_FAILURES, ADDRESS_LOCK_AFTER, Failures, LockoutPolicy,
};
pub use oidc::{OidcConfig, OidcIdentity, OidcPending, OidcRelyingParty};
pub use password::{check_new_password, generate_password, hash_password, verify_dummy, verify_password};
pub use recovery::{generate_recovery_codes, hash_recovery_code};
pub use tokens::{constant_time_eq, hash_token, random_token};
pub use totp::{TotpSecret, code_at, otpauth_uri, qr_svg, verify_code};
