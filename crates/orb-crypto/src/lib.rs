//! # orb-crypto
//!
//! ORB's cryptography, with `aws-lc-rs` as the only cryptographic library:
//! - the **secrets envelope** ([`KeyRing`], [`MasterKey`]) that protects tenant secrets at rest (Graph
//!   client secrets, TOPdesk application passwords, encryption private keys, ...);
//! - **Graph rich notifications**: [`decrypt_notification_content`] (RSA-OAEP-SHA1 unwrap of `dataKey`,
//!   HMAC-SHA256 check, AES-256-CBC) and, for the Graph emulator, its inverse
//!   [`encrypt_notification_content`];
//! - the **encryption certificate ring** ([`CertificateRing`], [`EncryptionCertificate`],
//!   [`RotationPolicy`]): self-signed RSA-2048 certificates (rcgen) with ids, rotated on a schedule, old
//!   ones retired once no subscription uses them;
//! - **`validationTokens` JWTs**: [`validate_validation_token`] against a [`Jwks`] the caller fetched, and
//!   [`ValidationTokenSigner`] that issues them (and serves their JWKS) for the emulator.
//!
//! Password hashing and TOTP will live here too.
//!
//! ```
//! use orb_crypto::{KeyRing, MasterKey, SecretAad};
//! use orb_crypto::secrecy::{ExposeSecret, SecretString};
//! # let tenant = orb_core::TenantId::from_uuid(Default::default());
//!
//! let ring = KeyRing::new(MasterKey::generate()?);
//! let aad = SecretAad::new(tenant, "tenant_secrets.value", "graph.client_secret");
//! let sealed = ring.seal_secret(&aad, &SecretString::from("s3cr3t"))?;
//! assert_eq!(ring.open(&aad, &sealed)?.expose_secret(), "s3cr3t");
//! # Ok::<(), orb_crypto::CryptoError>(())
//! ```
//!
//! ## Invariants
//! - Secrets are sealed with AES-256-GCM under a fresh random 96-bit nonce from the system generator for
//!   every seal; the ciphertext carries the 16-byte tag.
//! - Every ciphertext is bound to what it belongs to by its associated data ([`SecretAad`]: tenant, kind,
//!   row, length-prefixed), so a ciphertext copied to another tenant or row does not open.
//! - Every ciphertext records the id of the master key that sealed it ([`SealedSecret::key_id`]); a
//!   [`KeyRing`] holds the current key and older ones so rows sealed before a rotation still open, and
//!   [`KeyRing::reseal`] moves them to the current key.
//! - Master keys, secret plaintexts and per-notification symmetric keys live only in zeroizing containers
//!   ([`secrecy::SecretBox`], [`secrecy::SecretString`], [`zeroize::Zeroizing`]); RSA private keys live
//!   inside aws-lc and leave it only as zeroizing PKCS#8 ([`NotificationPrivateKey::to_pkcs8_der`]). No
//!   `Debug` or error message of this crate shows key material or plaintext.
//! - The master key comes from `ORB_MASTER_KEY_FILE` or `ORB_MASTER_KEY` ([`MasterKey::from_env_or_file`]),
//!   never from the configuration file.
//! - A notification's `data` is authenticated (HMAC-SHA256, constant-time compare) before any of it is
//!   decrypted; a failure names which check failed ([`CryptoError::NotificationKeyUnwrap`],
//!   [`CryptoError::NotificationSignatureInvalid`], ...).
//! - A validation token's claims are read only after its RS256 signature verified; only `RS256` is
//!   accepted.
//! - Nothing reads the clock or does I/O, apart from [`MasterKey::from_env_or_file`] and friends: times are
//!   arguments, the JWKS is fetched and cached by the caller (contract on [`validate_validation_token`]:
//!   refetch once on [`CryptoError::UnknownKid`]), keys and certificates are stored by the caller. Randomness comes from the system generator.
//!
//! ## Must not depend on
//! Any orb crate except `orb-core`; no async runtime, HTTP client or database.

mod certs;
mod der;
mod envelope;
mod error;
mod jwt;
mod key;
mod notification;

pub use certs::{
    CERTIFICATE_COMMON_NAME, CertificateRing, EncryptionCertificate, MAX_CERTIFICATE_ID_LEN, RotationPolicy,
};
pub use envelope::{KeyRing, SealedSecret, SecretAad, TAG_LEN};
pub use error::CryptoError;
pub use jwt::{
    GRAPH_NOTIFICATION_PUBLISHER_APP_ID, IssuerFormat, Jwk, Jwks, MICROSOFT_JWKS_URL, TokenRejection,
    ValidatedToken, ValidationTokenClaims, ValidationTokenExpectations, ValidationTokenSigner,
    validate_validation_token,
};
pub use key::{MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, MasterKey};
pub use notification::{
    EncryptedContent, NOTIFICATION_KEY_LEN, NotificationCertificate, NotificationPrivateKey,
    decrypt_notification_content, encrypt_notification_content, sha1_thumbprint,
};
/// Re-exported so callers use the same `SecretString` / `ExposeSecret` as this crate.
pub use secrecy;

/// Length of the random nonce stored with every [`SealedSecret`] (96 bits).
pub const NONCE_LEN: usize = aws_lc_rs::aead::NONCE_LEN;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_certs;
#[cfg(test)]
mod tests_jwt;
#[cfg(test)]
mod tests_notification;
