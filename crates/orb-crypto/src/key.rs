//! The master key: 32 random bytes that seal every stored secret.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

use crate::CryptoError;

/// The environment variable holding the master key itself, as standard base64.
pub const MASTER_KEY_ENV: &str = "ORB_MASTER_KEY";
/// The environment variable holding the path of a file that contains the master key as standard base64.
pub const MASTER_KEY_FILE_ENV: &str = "ORB_MASTER_KEY_FILE";

/// Domain separation for the key id, so the id is never the plain hash of the key.
const KEY_ID_CONTEXT: &[u8] = b"orb master key id v1\0";

/// An AES-256 master key.
///
/// The bytes live in a [`SecretBox`] (zeroized on drop) and never leave it except through
/// [`MasterKey::to_base64`], which itself returns a [`SecretString`]. `Debug` shows only the key id.
pub struct MasterKey {
    id: String,
    bytes: SecretBox<[u8; MasterKey::LEN]>,
}

impl MasterKey {
    /// Length of a master key in bytes.
    pub const LEN: usize = 32;

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let rng = SystemRandom::new();
        let mut failure = None;
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; Self::LEN]| {
            if let Err(e) = rng.fill(k) {
                failure = Some(e);
            }
        });
        match failure {
            Some(e) => Err(CryptoError::Random(e)),
            None => Ok(Self::from_secret(bytes)),
        }
    }

    /// Parses a key from standard base64 (surrounding whitespace ignored). It must decode to exactly
    /// 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        Self::parse(text, "the given value")
    }

    /// The key as standard base64, for writing to a key file (`orb keys generate`).
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.bytes.expose_secret()))
    }

    /// The key id: `k-` followed by 8 hex digits of a SHA-256 over the key (with a fixed context prefix).
    /// Stored next to every ciphertext so the store can tell which key sealed a row. It reveals nothing
    /// useful about the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Loads the master key from the environment, read through `env` (so tests need not touch the process
    /// environment; production passes `|k| std::env::var(k).ok()`, see [`MasterKey::from_process_env`]).
    ///
    /// - `ORB_MASTER_KEY_FILE`: the path of a file holding the base64 key (surrounding whitespace, such as
    ///   a trailing newline, is ignored);
    /// - `ORB_MASTER_KEY`: the base64 key itself.
    ///
    /// Exactly one must be set; an empty value counts as unset. Both set is an error, as is neither.
    pub fn from_env_or_file(env: impl Fn(&str) -> Option<String>) -> Result<Self, CryptoError> {
        let lookup = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let file = lookup(MASTER_KEY_FILE_ENV);
        let value = lookup(MASTER_KEY_ENV).map(Zeroizing::new);
        match (file, value) {
            (Some(_), Some(_)) => Err(CryptoError::AmbiguousMasterKey),
            (None, None) => Err(CryptoError::MissingMasterKey),
            (None, Some(value)) => Self::parse(&value, MASTER_KEY_ENV),
            (Some(path), None) => Self::from_file(Path::new(&path)),
        }
    }

    /// [`MasterKey::from_env_or_file`] on the process environment.
    pub fn from_process_env() -> Result<Self, CryptoError> {
        Self::from_env_or_file(|name| std::env::var(name).ok())
    }

    /// Reads the key from a file holding its base64 (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, CryptoError> {
        let raw = Zeroizing::new(
            std::fs::read(path)
                .map_err(|source| CryptoError::MasterKeyFile { path: PathBuf::from(path), source })?,
        );
        let origin = format!("file {path:?} (named by {MASTER_KEY_FILE_ENV})");
        let text = std::str::from_utf8(&raw).map_err(|_| CryptoError::InvalidMasterKey {
            origin: origin.clone(),
            reason: "the file is not text".to_owned(),
        })?;
        Self::parse(text, origin)
    }

    /// An AES-256-GCM key for one operation.
    pub(crate) fn aead_key(&self) -> Result<LessSafeKey, CryptoError> {
        UnboundKey::new(&AES_256_GCM, self.bytes.expose_secret())
            .map(LessSafeKey::new)
            .map_err(|_| CryptoError::Internal { context: "building an AES-256-GCM key" })
    }

    /// Whether both hold the same bytes (compared without early exit).
    pub(crate) fn same_key(&self, other: &Self) -> bool {
        let (a, b) = (self.bytes.expose_secret(), other.bytes.expose_secret());
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn parse(text: &str, origin: impl Into<String>) -> Result<Self, CryptoError> {
        let origin = origin.into();
        let invalid = |reason: String| CryptoError::InvalidMasterKey { origin: origin.clone(), reason };
        // The decode error may quote a character of the key, so it is not passed on.
        let decoded = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| {
            invalid("it is not standard base64 (letters, digits, '+', '/', '=' padding)".to_owned())
        })?);
        if decoded.len() != Self::LEN {
            return Err(invalid(format!("it decodes to {} bytes, not {}", decoded.len(), Self::LEN)));
        }
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; Self::LEN]| k.copy_from_slice(&decoded));
        Ok(Self::from_secret(bytes))
    }

    fn from_secret(bytes: SecretBox<[u8; Self::LEN]>) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(KEY_ID_CONTEXT);
        ctx.update(bytes.expose_secret());
        let hash = ctx.finish();
        let hex: String = hash.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        Self { id: format!("k-{hex}"), bytes }
    }
}

impl Clone for MasterKey {
    fn clone(&self) -> Self {
        let bytes = SecretBox::init_with_mut(|k: &mut [u8; Self::LEN]| *k = *self.bytes.expose_secret());
        Self { id: self.id.clone(), bytes }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}
