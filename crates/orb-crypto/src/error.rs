//! The one error type of this crate.

use std::path::PathBuf;

use thiserror::Error;

use crate::{MASTER_KEY_ENV, MASTER_KEY_FILE_ENV};

/// What went wrong while loading a master key or sealing / opening a secret.
///
/// Messages never contain key material or plaintext, and they say what to do next, so they can be shown to
/// an operator as they are.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Neither `ORB_MASTER_KEY_FILE` nor `ORB_MASTER_KEY` is set.
    #[error(
        "no master key: set {MASTER_KEY_FILE_ENV} to the path of a file holding the base64 key, or \
         {MASTER_KEY_ENV} to the base64 key itself; generate a new one with `orb keys generate`"
    )]
    MissingMasterKey,

    /// Both `ORB_MASTER_KEY_FILE` and `ORB_MASTER_KEY` are set, so it is unclear which key is meant.
    #[error(
        "both {MASTER_KEY_FILE_ENV} and {MASTER_KEY_ENV} are set: set only one of them (prefer \
         {MASTER_KEY_FILE_ENV})"
    )]
    AmbiguousMasterKey,

    /// The file named by `ORB_MASTER_KEY_FILE` could not be read.
    #[error(
        "cannot read the master key file {path:?} (named by {MASTER_KEY_FILE_ENV}): check that it exists \
         and that ORB may read it"
    )]
    MasterKeyFile {
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A master key that is not exactly 32 bytes of standard base64. The offending value is never shown.
    #[error(
        "the master key from {origin} is not valid: {reason}; it must be 32 bytes encoded as standard \
         base64 (44 characters); generate one with `orb keys generate`"
    )]
    InvalidMasterKey {
        /// Where the key came from (`ORB_MASTER_KEY`, or the file and the variable naming it).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Two different master keys in one key ring have the same key id.
    #[error(
        "two different master keys share the key id {key_id}: remove one of them from the key ring \
         (generate a fresh key with `orb keys generate`)"
    )]
    DuplicateKeyId {
        /// The shared id.
        key_id: String,
    },

    /// A secret was sealed under a master key that the key ring does not hold.
    #[error(
        "this secret was sealed with master key {key_id}, which is not loaded: the master key is wrong or \
         missing; start ORB with the master key that sealed it (or keep it as a previous key after a \
         rotation)"
    )]
    UnknownKey {
        /// The key id stored with the ciphertext.
        key_id: String,
    },

    /// Authentication failed: the ciphertext was altered, or it is opened for another tenant, kind or row
    /// than the one it was sealed for.
    #[error(
        "a secret sealed with master key {key_id} failed authentication: its ciphertext was altered or it \
         belongs to another tenant, kind or row; enter the secret again"
    )]
    Tampered {
        /// The key id stored with the ciphertext.
        key_id: String,
    },

    /// A stored envelope that does not have the right shape (nonce length, ciphertext shorter than a tag).
    #[error("a stored secret is malformed ({reason}): enter the secret again")]
    Malformed {
        /// What is wrong.
        reason: String,
    },

    /// The decrypted secret is not UTF-8 text; it was sealed as bytes.
    #[error("a decrypted secret is not UTF-8 text: open it with `KeyRing::open_bytes`")]
    NotUtf8,

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: check the host's entropy source")]
    Random(#[source] aws_lc_rs::error::Unspecified),

    /// The cryptographic library refused an operation that cannot fail with valid inputs.
    #[error("internal cryptography error while {context}: please report this as a bug")]
    Internal {
        /// What was being done.
        context: &'static str,
    },
}

impl CryptoError {
    /// No failure of this crate goes away by retrying: a key, a file or the stored data has to change.
    pub fn is_retryable(&self) -> bool {
        false
    }
}
