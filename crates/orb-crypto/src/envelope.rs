//! The secrets envelope: AES-256-GCM under a key ring, with associated data binding each ciphertext to
//! its tenant, kind and row.

use std::fmt;

use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use orb_core::TenantId;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use zeroize::Zeroizing;

use crate::{CryptoError, MasterKey};

/// Length of the GCM authentication tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// Fixed prefix of the associated data; names the envelope format so a future format cannot be confused
/// with this one.
const AAD_CONTEXT: &[u8] = b"orb-secret-v1";

/// What a sealed secret belongs to. It is authenticated (not encrypted) together with the ciphertext, so a
/// ciphertext copied to another tenant, kind or row does not open there.
///
/// The encoding is unambiguous: a fixed format prefix, the tenant's 16 UUID bytes, then `kind` and `row`
/// each preceded by their length as a big-endian `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretAad<'a> {
    /// The tenant that owns the secret.
    pub tenant: TenantId,
    /// What sort of secret, by convention the table and column it is stored in (e.g.
    /// `"tenant_secrets.value"`).
    pub kind: &'a str,
    /// Which one: the row's key (e.g. `"graph.client_secret"` or a row id).
    pub row: &'a str,
}

impl<'a> SecretAad<'a> {
    /// Associated data for the secret `row` of sort `kind` owned by `tenant`.
    pub fn new(tenant: TenantId, kind: &'a str, row: &'a str) -> Self {
        Self { tenant, kind, row }
    }

    /// The bytes that are authenticated.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(AAD_CONTEXT.len() + 16 + 16 + self.kind.len() + self.row.len());
        out.extend_from_slice(AAD_CONTEXT);
        out.extend_from_slice(self.tenant.as_uuid().as_bytes());
        for field in [self.kind, self.row] {
            out.extend_from_slice(&(field.len() as u64).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out
    }
}

/// A sealed secret as stored: the id of the master key that sealed it, the random 96-bit nonce, and the
/// ciphertext with the GCM tag appended. None of it is secret, but `Debug` still shows only the key id,
/// the nonce and the ciphertext's length.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The [`MasterKey::id`] of the key that sealed it.
    pub key_id: String,
    /// The nonce, fresh and random for every seal.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl SealedSecret {
    /// Rebuilds an envelope from stored columns, checking the nonce length and that the ciphertext can hold
    /// a tag.
    pub fn from_parts(
        key_id: impl Into<String>,
        nonce: &[u8],
        ciphertext: Vec<u8>,
    ) -> Result<Self, CryptoError> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed {
            reason: format!("the nonce is {} bytes, not {NONCE_LEN}", nonce.len()),
        })?;
        let sealed = Self { key_id: key_id.into(), nonce, ciphertext };
        sealed.check_shape()?;
        Ok(sealed)
    }

    fn check_shape(&self) -> Result<(), CryptoError> {
        if self.ciphertext.len() < TAG_LEN {
            return Err(CryptoError::Malformed {
                reason: format!(
                    "the ciphertext is {} bytes, shorter than the {TAG_LEN}-byte tag",
                    self.ciphertext.len()
                ),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nonce: String = self.nonce.iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .field("nonce", &nonce)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// The current master key, which seals, plus older keys that only open rows sealed before a rotation.
///
/// Rotation: build a ring with the new key as current and the old one as previous
/// ([`KeyRing::rotated`]), [`KeyRing::reseal`] every row for which [`KeyRing::needs_reseal`] holds, then
/// drop the old key.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl KeyRing {
    /// A ring with only `current`.
    pub fn new(current: MasterKey) -> Self {
        Self { current, previous: Vec::new() }
    }

    /// Adds older keys that may still open stored rows. A key already in the ring is skipped; two different
    /// keys with the same id are refused.
    pub fn with_previous(mut self, keys: impl IntoIterator<Item = MasterKey>) -> Result<Self, CryptoError> {
        for key in keys {
            match self.key(key.id()) {
                Some(known) if known.same_key(&key) => {}
                Some(_) => return Err(CryptoError::DuplicateKeyId { key_id: key.id().to_owned() }),
                None => self.previous.push(key),
            }
        }
        Ok(self)
    }

    /// A ring whose current key is `new_current`, keeping every key of this ring as a previous key.
    pub fn rotated(self, new_current: MasterKey) -> Result<Self, CryptoError> {
        let Self { current, previous } = self;
        Self::new(new_current).with_previous(std::iter::once(current).chain(previous))
    }

    /// The key that seals.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// The ids of every key in the ring, the current one first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.current).chain(&self.previous).map(MasterKey::id)
    }

    /// Seals `plaintext` under the current key with a fresh random nonce.
    pub fn seal(&self, aad: &SecretAad<'_>, plaintext: &[u8]) -> Result<SealedSecret, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(CryptoError::Random)?;
        // Room for the tag up front, so the buffer holding plaintext is never reallocated (and left
        // behind un-wiped).
        let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        buf.extend_from_slice(plaintext);
        self.current
            .aead_key()?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad.encode()), &mut *buf)
            .map_err(|_| CryptoError::Internal { context: "sealing a secret" })?;
        let ciphertext = std::mem::take(&mut *buf);
        Ok(SealedSecret { key_id: self.current.id().to_owned(), nonce, ciphertext })
    }

    /// Seals a text secret; see [`KeyRing::seal`].
    pub fn seal_secret(
        &self,
        aad: &SecretAad<'_>,
        secret: &SecretString,
    ) -> Result<SealedSecret, CryptoError> {
        self.seal(aad, secret.expose_secret().as_bytes())
    }

    /// Opens a text secret sealed with [`KeyRing::seal_secret`] by any key in the ring.
    pub fn open(&self, aad: &SecretAad<'_>, sealed: &SealedSecret) -> Result<SecretString, CryptoError> {
        self.open_with(aad, sealed, |plain| {
            let text = std::str::from_utf8(plain).map_err(|_| CryptoError::NotUtf8)?;
            // `with_capacity` allocates exactly, so turning it into a `Box<str>` does not reallocate.
            let mut exact = String::with_capacity(text.len());
            exact.push_str(text);
            Ok(SecretString::from(exact))
        })
    }

    /// Opens a secret sealed with [`KeyRing::seal`] by any key in the ring, as bytes.
    pub fn open_bytes(
        &self,
        aad: &SecretAad<'_>,
        sealed: &SealedSecret,
    ) -> Result<SecretSlice<u8>, CryptoError> {
        self.open_with(aad, sealed, |plain| {
            let mut exact = Vec::with_capacity(plain.len());
            exact.extend_from_slice(plain);
            Ok(SecretSlice::from(exact))
        })
    }

    /// Whether `sealed` was sealed by another key than the current one and should be resealed.
    pub fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        sealed.key_id != self.current.id()
    }

    /// Opens `sealed` with whichever key in the ring sealed it and seals the plaintext again under the
    /// current key (with a new nonce and the same associated data).
    pub fn reseal(&self, aad: &SecretAad<'_>, sealed: &SealedSecret) -> Result<SealedSecret, CryptoError> {
        let plain = self.open_bytes(aad, sealed)?;
        self.seal(aad, plain.expose_secret())
    }

    fn key(&self, key_id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current).chain(&self.previous).find(|k| k.id() == key_id)
    }

    fn open_with<T>(
        &self,
        aad: &SecretAad<'_>,
        sealed: &SealedSecret,
        finish: impl FnOnce(&[u8]) -> Result<T, CryptoError>,
    ) -> Result<T, CryptoError> {
        let key = self
            .key(&sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey { key_id: sealed.key_id.clone() })?;
        sealed.check_shape()?;
        let mut buf = Zeroizing::new(sealed.ciphertext.clone());
        let plain = key
            .aead_key()?
            .open_in_place(Nonce::assume_unique_for_key(sealed.nonce), Aad::from(aad.encode()), &mut buf)
            .map_err(|_| CryptoError::Tampered { key_id: sealed.key_id.clone() })?;
        finish(plain)
    }
}
