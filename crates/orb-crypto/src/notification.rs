//! Microsoft Graph rich change notifications: decryption of `encryptedContent` (ORB) and its inverse,
//! encryption exactly as Graph does it (the Graph emulator).
//!
//! The algorithm (reference `microsoft-graph.md` §3.2, checked against Microsoft's own test vector):
//!
//! ```text
//! K   = RSA-OAEP-Decrypt(private key, b64decode(dataKey))   OAEP hash SHA-1, MGF1 SHA-1, empty label
//! len(K) == 32
//! C   = b64decode(data)
//! HMAC-SHA256(key = K, C) == b64decode(dataSignature)       constant time, BEFORE any decryption
//! P   = AES-256-CBC-Decrypt(key = K, IV = K[0..16], C), PKCS#7 unpadding
//! ```

use std::fmt;

use aws_lc_rs::cipher::{
    AES_256, AES_256_KEY_LEN, AES_CBC_IV_LEN, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::CryptoError;

/// Length of the per-notification symmetric key K (AES-256 and HMAC-SHA256 key).
pub const NOTIFICATION_KEY_LEN: usize = AES_256_KEY_LEN;

/// Length of the HMAC-SHA256 in `dataSignature`.
const SIGNATURE_LEN: usize = 32;

/// RSA key sizes Graph accepts for an encryption certificate (reference §3.3).
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 4096;

/// The `encryptedContent` of a rich change notification (Graph type `changeNotificationEncryptedContent`),
/// with Graph's field names on the wire.
///
/// None of it is secret (it is what travels over the internet), so `Debug` is derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedContent {
    /// Standard base64 of the AES-256-CBC ciphertext of the resource JSON.
    pub data: String,
    /// Standard base64 of the RSA-OAEP(SHA-1) encrypted 32-byte symmetric key.
    pub data_key: String,
    /// Standard base64 of HMAC-SHA256(key = symmetric key, message = decoded `data`).
    pub data_signature: String,
    /// The `encryptionCertificateId` the subscription was created with.
    #[serde(default)]
    pub encryption_certificate_id: String,
    /// Upper-case hex SHA-1 of the certificate's DER.
    #[serde(default)]
    pub encryption_certificate_thumbprint: String,
}

/// The public half of an encryption certificate: what a subscription's `encryptionCertificate` carries.
///
/// Graph (and the emulator) encrypt notifications with it; ORB hands it out when it creates a
/// subscription.
#[derive(Clone)]
pub struct NotificationCertificate {
    der: Vec<u8>,
    public_key: PublicEncryptingKey,
    thumbprint: String,
}

impl NotificationCertificate {
    /// Parses an X.509 certificate in DER. Its public key must be RSA of 2048 to 4096 bits; validity dates
    /// and issuer are not checked (Graph does not check them either).
    pub fn from_der(der: impl Into<Vec<u8>>) -> Result<Self, CryptoError> {
        let der = der.into();
        let invalid = |reason: String| CryptoError::InvalidCertificate { reason };
        let spki = crate::der::certificate_spki(&der).map_err(|e| invalid(format!("not X.509 DER: {e}")))?;
        let public_key = PublicEncryptingKey::from_der(spki)
            .map_err(|e| invalid(format!("its public key is not a usable RSA key ({e})")))?;
        check_bits(public_key.key_size_bits()).map_err(invalid)?;
        let thumbprint = sha1_thumbprint(&der);
        Ok(Self { der, public_key, thumbprint })
    }

    /// Parses the standard base64 of an X.509 DER certificate, as in a subscription's
    /// `encryptionCertificate` (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let der = STANDARD.decode(text.trim()).map_err(|_| CryptoError::InvalidCertificate {
            reason: "it is not standard base64".to_owned(),
        })?;
        Self::from_der(der)
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Standard base64 of the DER: the value of a subscription's `encryptionCertificate`.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.der)
    }

    /// Upper-case hex SHA-1 of the DER, as Graph sends it in `encryptionCertificateThumbprint`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Size of the RSA key in bits.
    pub fn key_bits(&self) -> usize {
        self.public_key.key_size_bits()
    }

    /// The RSA public key (tests build hand-made notifications with it).
    #[cfg(test)]
    pub(crate) fn public_encrypting_key(&self) -> PublicEncryptingKey {
        self.public_key.clone()
    }

    fn public_key_der(&self) -> Result<Vec<u8>, CryptoError> {
        let der = self
            .public_key
            .as_der()
            .map_err(|_| CryptoError::Internal { context: "encoding an RSA public key" })?;
        Ok(der.as_ref().to_vec())
    }
}

impl fmt::Debug for NotificationCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationCertificate")
            .field("thumbprint", &self.thumbprint)
            .field("key_bits", &self.key_bits())
            .finish_non_exhaustive()
    }
}

/// The private RSA key of an encryption certificate, which unwraps `dataKey`.
///
/// The key lives inside aws-lc (freed and cleared by it); its PKCS#8 export is a zeroizing
/// [`SecretSlice`]. `Debug` shows only the key size.
#[derive(Clone)]
pub struct NotificationPrivateKey {
    key: PrivateDecryptingKey,
}

impl NotificationPrivateKey {
    /// A fresh RSA-2048 key from the system generator (what ORB's certificates use).
    pub fn generate() -> Result<Self, CryptoError> {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(CryptoError::Random)?;
        Ok(Self { key })
    }

    /// Reads an unencrypted PKCS#8 (v1) DER RSA key of 2048 to 4096 bits.
    pub fn from_pkcs8_der(pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let invalid = |reason: String| CryptoError::InvalidPrivateKey { reason };
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|e| invalid(format!("not an RSA PKCS#8 key ({e})")))?;
        check_bits(key.key_size_bits()).map_err(invalid)?;
        Ok(Self { key })
    }

    /// Reads an unencrypted PKCS#8 key in PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CryptoError> {
        let invalid = |reason: &str| CryptoError::InvalidPrivateKey { reason: reason.to_owned() };
        let body = pem
            .trim()
            .strip_prefix("-----BEGIN PRIVATE KEY-----")
            .and_then(|rest| rest.strip_suffix("-----END PRIVATE KEY-----"))
            .ok_or_else(|| invalid("not a PEM \"PRIVATE KEY\" block"))?;
        let b64 = Zeroizing::new(body.split_whitespace().collect::<String>());
        let der = Zeroizing::new(STANDARD.decode(b64.as_bytes()).map_err(|_| invalid("bad base64 in PEM"))?);
        Self::from_pkcs8_der(&der)
    }

    /// The key as unencrypted PKCS#8 (v1) DER, to be sealed with the secrets envelope before it is stored.
    pub fn to_pkcs8_der(&self) -> Result<SecretSlice<u8>, CryptoError> {
        let der = self
            .key
            .as_der()
            .map_err(|_| CryptoError::Internal { context: "exporting an RSA private key" })?;
        Ok(SecretSlice::from(der.as_ref().to_vec()))
    }

    /// Size of the RSA key in bits.
    pub fn key_bits(&self) -> usize {
        self.key.key_size_bits()
    }

    /// Whether this is the private key of `certificate`.
    pub fn matches(&self, certificate: &NotificationCertificate) -> Result<bool, CryptoError> {
        let own = self
            .key
            .public_key()
            .as_der()
            .map_err(|_| CryptoError::Internal { context: "encoding an RSA public key" })?;
        Ok(own.as_ref() == certificate.public_key_der()?.as_slice())
    }

    /// RSA-OAEP(SHA-1, MGF1-SHA-1, no label) decryption of a wrapped symmetric key.
    pub(crate) fn unwrap_key(&self, wrapped: &[u8]) -> Option<Zeroizing<[u8; NOTIFICATION_KEY_LEN]>> {
        let oaep = OaepPrivateDecryptingKey::new(self.key.clone()).ok()?;
        let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let plain = oaep.decrypt(&OAEP_SHA1_MGF1SHA1, wrapped, &mut out, None).ok()?;
        let key: [u8; NOTIFICATION_KEY_LEN] = (&*plain).try_into().ok()?;
        Some(Zeroizing::new(key))
    }
}

impl fmt::Debug for NotificationPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationPrivateKey").field("key_bits", &self.key_bits()).finish_non_exhaustive()
    }
}

/// Decrypts a rich notification's `encryptedContent` with the private key of the certificate it was
/// encrypted for, returning the resource JSON bytes.
///
/// Order of checks, each with its own error: all three fields decode as base64
/// ([`CryptoError::MalformedNotification`]); `dataKey` unwraps to a 32-byte key
/// ([`CryptoError::NotificationKeyUnwrap`], labelled with `content.encryption_certificate_id`); the
/// HMAC-SHA256 of the decoded `data` equals `dataSignature`, compared in constant time
/// ([`CryptoError::NotificationSignatureInvalid`]); only then AES-256-CBC decryption and PKCS#7 unpadding
/// ([`CryptoError::NotificationDecrypt`]). Nothing of `data` is decrypted unless its signature is valid.
///
/// The key is not selected here: [`crate::CertificateRing::decrypt`] picks it by certificate id or
/// thumbprint.
pub fn decrypt_notification_content(
    content: &EncryptedContent,
    key: &NotificationPrivateKey,
) -> Result<Vec<u8>, CryptoError> {
    let data = decode_field("data", &content.data)?;
    let wrapped_key = decode_field("dataKey", &content.data_key)?;
    let signature = decode_field("dataSignature", &content.data_signature)?;
    if signature.len() != SIGNATURE_LEN {
        return Err(CryptoError::MalformedNotification {
            field: "dataSignature",
            reason: format!(
                "it decodes to {} bytes, not the {SIGNATURE_LEN} of an HMAC-SHA256",
                signature.len()
            ),
        });
    }
    if data.is_empty() {
        return Err(CryptoError::MalformedNotification { field: "data", reason: "it is empty".to_owned() });
    }

    let k = key.unwrap_key(&wrapped_key).ok_or_else(|| CryptoError::NotificationKeyUnwrap {
        certificate_id: content.encryption_certificate_id.clone(),
    })?;

    // Authenticate before decrypting: a tampered ciphertext never reaches the CBC decryption and its
    // padding check (no padding oracle).
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &*k), &data, &signature)
        .map_err(|_| CryptoError::NotificationSignatureInvalid)?;

    let mut buf = data;
    let cipher_key = UnboundCipherKey::new(&AES_256, &*k)
        .map_err(|_| CryptoError::Internal { context: "building an AES-256 key" })?;
    let decrypting = PaddedBlockDecryptingKey::cbc_pkcs7(cipher_key)
        .map_err(|_| CryptoError::Internal { context: "building an AES-256-CBC key" })?;
    let plain_len = decrypting
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv_of(&k))))
        .map_err(|_| CryptoError::NotificationDecrypt)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// Encrypts `plaintext` (the resource JSON) for a subscription exactly as Graph does, for the Graph
/// emulator: a fresh random 32-byte key K; `dataKey` = RSA-OAEP(SHA-1, MGF1-SHA-1) of K under the
/// certificate's public key; `data` = AES-256-CBC(K, IV = K[0..16], PKCS#7); `dataSignature` =
/// HMAC-SHA256(K, ciphertext bytes); all standard base64. `encryptionCertificateId` is echoed as given and
/// `encryptionCertificateThumbprint` is the certificate's upper-case SHA-1 thumbprint.
pub fn encrypt_notification_content(
    plaintext: &[u8],
    certificate: &NotificationCertificate,
    certificate_id: &str,
) -> Result<EncryptedContent, CryptoError> {
    let mut k = Zeroizing::new([0u8; NOTIFICATION_KEY_LEN]);
    SystemRandom::new().fill(&mut *k).map_err(CryptoError::Random)?;

    let oaep = OaepPublicEncryptingKey::new(certificate.public_key.clone())
        .map_err(|_| CryptoError::Internal { context: "building an RSA-OAEP key" })?;
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped_len = oaep
        .encrypt(&OAEP_SHA1_MGF1SHA1, &*k, &mut wrapped, None)
        .map_err(|_| CryptoError::Internal { context: "RSA-OAEP encryption of the notification key" })?
        .len();
    wrapped.truncate(wrapped_len);

    let cipher_key = UnboundCipherKey::new(&AES_256, &*k)
        .map_err(|_| CryptoError::Internal { context: "building an AES-256 key" })?;
    let encrypting = PaddedBlockEncryptingKey::cbc_pkcs7(cipher_key)
        .map_err(|_| CryptoError::Internal { context: "building an AES-256-CBC key" })?;
    let mut data = plaintext.to_vec();
    encrypting
        .less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv_of(&k))))
        .map_err(|_| CryptoError::Internal { context: "AES-256-CBC encryption of a notification" })?;

    let signature = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &*k), &data);
    Ok(EncryptedContent {
        data: STANDARD.encode(&data),
        data_key: STANDARD.encode(&wrapped),
        data_signature: STANDARD.encode(signature.as_ref()),
        encryption_certificate_id: certificate_id.to_owned(),
        encryption_certificate_thumbprint: certificate.thumbprint.clone(),
    })
}

/// Upper-case hex SHA-1 of `der`: a certificate thumbprint as Graph (and Windows) writes it.
pub fn sha1_thumbprint(der: &[u8]) -> String {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The IV: the first 16 bytes of the key itself (Graph's choice, not ours).
pub(crate) fn iv_of(k: &[u8; NOTIFICATION_KEY_LEN]) -> [u8; AES_CBC_IV_LEN] {
    let mut iv = [0u8; AES_CBC_IV_LEN];
    iv.copy_from_slice(&k[..AES_CBC_IV_LEN]);
    iv
}

fn decode_field(field: &'static str, value: &str) -> Result<Vec<u8>, CryptoError> {
    STANDARD.decode(value.trim()).map_err(|e| CryptoError::MalformedNotification {
        field,
        reason: format!("it is not standard base64 ({})", base64_problem(&e)),
    })
}

/// Describes a base64 error without quoting the offending byte.
fn base64_problem(e: &base64::DecodeError) -> &'static str {
    match e {
        base64::DecodeError::InvalidByte(..) => "a character outside the standard alphabet",
        base64::DecodeError::InvalidLength(_) => "wrong length",
        base64::DecodeError::InvalidLastSymbol(..) => "bad final character",
        base64::DecodeError::InvalidPadding => "bad padding",
    }
}

fn check_bits(bits: usize) -> Result<(), String> {
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(format!("the RSA key has {bits} bits, not {MIN_RSA_BITS} to {MAX_RSA_BITS}"))
    }
}
