//! The one error type of this crate.

use std::path::PathBuf;

use thiserror::Error;

use crate::{MASTER_KEY_ENV, MASTER_KEY_FILE_ENV};

/// What went wrong while loading a master key, sealing / opening a secret, decrypting a Graph notification,
/// managing encryption certificates or validating a `validationTokens` JWT.
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

    /// A rich notification's `encryptedContent` that does not have the right shape: a field that is not
    /// standard base64, a signature that is not 32 bytes, ciphertext that is empty.
    #[error(
        "the notification's encryptedContent is malformed ({field}: {reason}): the notification cannot be \
         trusted; ignore it and resync the resource (calendarView delta)"
    )]
    MalformedNotification {
        /// The `encryptedContent` field at fault (`data`, `dataKey`, `dataSignature`).
        field: &'static str,
        /// What is wrong (never quotes the field's value).
        reason: String,
    },

    /// `dataKey` did not decrypt with the private key of the selected certificate (RSA-OAEP with SHA-1):
    /// the notification was encrypted for another certificate, or `dataKey` was altered.
    #[error(
        "the notification's dataKey does not decrypt with the private key of encryption certificate \
         {certificate_id:?}: either the subscription was created with another certificate (check which \
         certificate the subscription carries and keep its key in the ring) or the notification was altered; \
         ignore it and resync the resource"
    )]
    NotificationKeyUnwrap {
        /// The id of the certificate whose key was tried.
        certificate_id: String,
    },

    /// The HMAC-SHA256 in `dataSignature` does not match `data`: the notification was altered. Nothing was
    /// decrypted.
    #[error(
        "the notification's dataSignature does not match its data (HMAC-SHA256): the notification was \
         altered in transit or forged; it was not decrypted; ignore it and resync the resource"
    )]
    NotificationSignatureInvalid,

    /// The signature matched but AES-256-CBC decryption or PKCS#7 unpadding failed. With a matching HMAC
    /// this means the sender encrypted wrongly, not that the data was altered.
    #[error(
        "the notification's data has a valid signature but does not decrypt (AES-256-CBC, PKCS#7): the \
         sender encrypted it wrongly; ignore it and resync the resource"
    )]
    NotificationDecrypt,

    /// A notification names an encryption certificate (by id and thumbprint) whose key the ring does not
    /// hold.
    #[error(
        "no key for encryption certificate id {id:?} (thumbprint {thumbprint}): it was retired too early \
         or the subscription was created elsewhere; renew the subscription with the current certificate \
         and resync the resource"
    )]
    UnknownEncryptionCertificate {
        /// The `encryptionCertificateId` of the notification.
        id: String,
        /// The `encryptionCertificateThumbprint` of the notification.
        thumbprint: String,
    },

    /// An X.509 certificate that cannot be used to encrypt notifications (not DER, not RSA, wrong size).
    #[error(
        "the encryption certificate is not usable: {reason}; it must be base64 of an X.509 DER certificate \
         with an RSA key of 2048 to 4096 bits"
    )]
    InvalidCertificate {
        /// What is wrong.
        reason: String,
    },

    /// A private key that is not an RSA PKCS#8 key of a usable size, or does not belong to its certificate.
    #[error(
        "the encryption private key is not usable: {reason}; the stored key ring entry is damaged, \
         generate a new encryption certificate"
    )]
    InvalidPrivateKey {
        /// What is wrong (never shows key material).
        reason: String,
    },

    /// Building a self-signed certificate failed.
    #[error("cannot build the encryption certificate: {context}; please report this as a bug")]
    Certificate {
        /// What was being done.
        context: &'static str,
        /// The certificate library's error.
        #[source]
        source: rcgen::Error,
    },

    /// Two encryption certificates in one ring have the same id.
    #[error(
        "two encryption certificates share the id {id:?}: remove the duplicate from the store (ids must be \
         unique, Graph echoes them to select the key)"
    )]
    DuplicateCertificateId {
        /// The shared id.
        id: String,
    },

    /// A certificate rotation policy or rotation request that makes no sense.
    #[error("certificate rotation refused: {reason}")]
    InvalidRotationPolicy {
        /// What is wrong.
        reason: String,
    },

    /// A `validationTokens` JWT that must not be trusted. Treat the whole notification POST as suspicious.
    #[error(
        "a validationTokens JWT was refused: {reason}; treat the notification POST as forged (do not \
         process its items) and check the tenant's Graph app id and tenant id if this persists"
    )]
    InvalidValidationToken {
        /// Why it was refused.
        reason: crate::TokenRejection,
    },

    /// A `validationTokens` JWT is signed with a key id that is not in the JWKS given to the validator.
    /// The signing keys rotate: fetch the JWKS again and validate once more; if the kid is still unknown
    /// the token is refused.
    #[error(
        "the validationTokens JWT is signed with key id {kid:?}, which is not in the cached signing keys: \
         fetch the JWKS again and retry once; if it is still unknown, treat the POST as forged"
    )]
    UnknownKid {
        /// The `kid` of the token header.
        kid: String,
    },

    /// A JWKS document that does not parse.
    #[error("the signing key set (JWKS) is not valid: {reason}; check the configured JWKS URL")]
    InvalidJwks {
        /// What is wrong.
        reason: String,
    },

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
    /// Whether doing the same again may succeed.
    ///
    /// Only [`CryptoError::UnknownKid`] is: after the caller refetches the JWKS the token may validate. No
    /// other failure of this crate goes away by retrying: a key, a file, the stored data or the
    /// notification has to change.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::UnknownKid { .. })
    }
}
