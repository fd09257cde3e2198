//! # orb-crypto
//!
//! ORB's cryptography. For now: the **secrets envelope** that protects tenant secrets at rest (Graph client
//! secrets, TOPdesk application passwords, ...) and the **master key** it is sealed under. Graph
//! notification decryption, certificates, password hashing and TOTP will live here too.
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
//! - Secrets are sealed with AES-256-GCM (`aws-lc-rs`) under a fresh random 96-bit nonce from the system
//!   generator for every seal; the ciphertext carries the 16-byte tag.
//! - Every ciphertext is bound to what it belongs to by its associated data ([`SecretAad`]: tenant, kind,
//!   row, length-prefixed), so a ciphertext copied to another tenant or row does not open.
//! - Every ciphertext records the id of the master key that sealed it ([`SealedSecret::key_id`]); a
//!   [`KeyRing`] holds the current key and older ones so rows sealed before a rotation still open, and
//!   [`KeyRing::reseal`] moves them to the current key.
//! - Key bytes and plaintexts live only in zeroizing containers ([`secrecy::SecretBox`],
//!   [`secrecy::SecretString`], [`zeroize::Zeroizing`]); no `Debug` or error message of this crate shows
//!   them.
//! - The master key comes from `ORB_MASTER_KEY_FILE` or `ORB_MASTER_KEY` ([`MasterKey::from_env_or_file`]),
//!   never from the configuration file.
//!
//! ## Must not depend on
//! Any orb crate except `orb-core`.

mod envelope;
mod error;
mod key;

pub use envelope::{KeyRing, SealedSecret, SecretAad, TAG_LEN};
pub use error::CryptoError;
pub use key::{MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, MasterKey};
/// Re-exported so callers use the same `SecretString` / `ExposeSecret` as this crate.
pub use secrecy;

/// Length of the random nonce stored with every [`SealedSecret`] (96 bits).
pub const NONCE_LEN: usize = aws_lc_rs::aead::NONCE_LEN;

#[cfg(test)]
mod tests;
