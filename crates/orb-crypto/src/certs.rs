//! The encryption key ring for rich notifications: self-signed RSA-2048 certificates, each with an id that
//! Graph echoes as `encryptionCertificateId`, rotated on a schedule; older certificates are kept until no
//! subscription uses them any more.
//!
//! Everything here is pure: the time is passed in, key generation is passed in as a function (production:
//! [`NotificationPrivateKey::generate`]), and persistence is the caller's business (store
//! [`EncryptionCertificate::private_key_pkcs8`] sealed with the secrets envelope, and the other fields as
//! they are; rebuild with [`EncryptionCertificate::from_parts`] and [`CertificateRing::from_entries`]).

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyUsagePurpose, PKCS_RSA_SHA256};
use secrecy::{ExposeSecret, SecretSlice};

use crate::{CryptoError, EncryptedContent, NotificationCertificate, NotificationPrivateKey};

/// Common name of ORB's encryption certificates (Graph does not look at it).
pub const CERTIFICATE_COMMON_NAME: &str = "ORB Graph notification encryption";

/// Longest `encryptionCertificateId` Graph accepts.
pub const MAX_CERTIFICATE_ID_LEN: usize = 128;

/// One encryption certificate with its private key.
///
/// `Debug` shows the id, thumbprint and validity, never the key.
#[derive(Clone)]
pub struct EncryptionCertificate {
    id: String,
    certificate: NotificationCertificate,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
    private_key: NotificationPrivateKey,
}

impl EncryptionCertificate {
    /// A self-signed certificate (CN = [`CERTIFICATE_COMMON_NAME`], SHA256-with-RSA, key usage
    /// keyEncipherment) for `private_key`, valid from `not_before` to `not_after` (whole seconds; X.509
    /// has no finer resolution).
    ///
    /// The id is `enc-YYYYMMDD-` followed by the first 8 hex digits of the thumbprint (lower case), e.g.
    /// `enc-20260703-4b95353e`.
    pub fn generate(
        private_key: NotificationPrivateKey,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Result<Self, CryptoError> {
        let (not_before, not_after) = (whole_seconds(not_before), whole_seconds(not_after));
        if not_after <= not_before {
            return Err(CryptoError::InvalidCertificate {
                reason: format!("its validity ends ({not_after}) before it starts ({not_before})"),
            });
        }
        let pkcs8 = private_key.to_pkcs8_der()?;
        let signing =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.expose_secret().into(), &PKCS_RSA_SHA256)
                .map_err(|source| CryptoError::Certificate {
                    context: "loading the RSA key into rcgen",
                    source,
                })?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, CERTIFICATE_COMMON_NAME);
        params.distinguished_name = name;
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + unix_seconds(not_before)?;
        params.not_after = epoch + unix_seconds(not_after)?;
        params.key_usages = vec![KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::DigitalSignature];
        let cert = params
            .self_signed(&signing)
            .map_err(|source| CryptoError::Certificate { context: "self-signing the certificate", source })?;
        let certificate = NotificationCertificate::from_der(cert.der().to_vec())?;
        let id = format!(
            "enc-{}-{}",
            not_before.format("%Y%m%d"),
            certificate.thumbprint()[..8].to_ascii_lowercase()
        );
        Ok(Self { id, certificate, not_before, not_after, private_key })
    }

    /// Rebuilds an entry from what the store kept. Refuses a private key that does not belong to the
    /// certificate, an empty or over-long id, and a validity that ends before it starts.
    pub fn from_parts(
        id: impl Into<String>,
        certificate: NotificationCertificate,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
        private_key: NotificationPrivateKey,
    ) -> Result<Self, CryptoError> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_CERTIFICATE_ID_LEN {
            return Err(CryptoError::InvalidCertificate {
                reason: format!("its id is {} characters, not 1 to {MAX_CERTIFICATE_ID_LEN}", id.len()),
            });
        }
        if not_after <= not_before {
            return Err(CryptoError::InvalidCertificate {
                reason: format!("its validity ends ({not_after}) before it starts ({not_before})"),
            });
        }
        if !private_key.matches(&certificate)? {
            return Err(CryptoError::InvalidPrivateKey {
                reason: format!("it does not belong to certificate {id:?}"),
            });
        }
        Ok(Self { id, certificate, not_before, not_after, private_key })
    }

    /// The id given to Graph as `encryptionCertificateId` and echoed in every `encryptedContent`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The certificate (public part).
    pub fn certificate(&self) -> &NotificationCertificate {
        &self.certificate
    }

    /// Standard base64 of the certificate's DER: a subscription's `encryptionCertificate`.
    pub fn certificate_base64(&self) -> String {
        self.certificate.to_base64()
    }

    /// Upper-case hex SHA-1 of the certificate (Graph's `encryptionCertificateThumbprint`).
    pub fn thumbprint(&self) -> &str {
        self.certificate.thumbprint()
    }

    /// Start of validity.
    pub fn not_before(&self) -> DateTime<Utc> {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// The private key.
    pub fn private_key(&self) -> &NotificationPrivateKey {
        &self.private_key
    }

    /// The private key as PKCS#8 DER, to be sealed with [`crate::KeyRing::seal`] before it is stored.
    pub fn private_key_pkcs8(&self) -> Result<SecretSlice<u8>, CryptoError> {
        self.private_key.to_pkcs8_der()
    }
}

impl fmt::Debug for EncryptionCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionCertificate")
            .field("id", &self.id)
            .field("thumbprint", &self.certificate.thumbprint())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// When to make a new certificate and when an old one may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    lifetime: Duration,
    rotate_after: Duration,
    retire_grace: Duration,
}

impl RotationPolicy {
    /// - `lifetime`: validity of a new certificate;
    /// - `rotate_after`: age at which the current certificate is replaced; positive and shorter than
    ///   `lifetime`, so subscriptions (renewed at least daily for rich notifications) move to the new one
    ///   well before the old one expires;
    /// - `retire_grace`: how long an old certificate is kept after it stopped being current, even when no
    ///   subscription names it any more, for notifications already encrypted with it (Graph retries a
    ///   delivery for up to 4 hours). Not negative.
    pub fn new(
        lifetime: Duration,
        rotate_after: Duration,
        retire_grace: Duration,
    ) -> Result<Self, CryptoError> {
        let invalid = |reason: &str| CryptoError::InvalidRotationPolicy { reason: reason.to_owned() };
        if rotate_after <= Duration::zero() {
            return Err(invalid("the rotation age must be positive"));
        }
        if rotate_after >= lifetime {
            return Err(invalid("the rotation age must be shorter than the certificate lifetime"));
        }
        if retire_grace < Duration::zero() {
            return Err(invalid("the retirement grace period must not be negative"));
        }
        Ok(Self { lifetime, rotate_after, retire_grace })
    }

    /// Validity of a new certificate.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Age at which the current certificate is replaced.
    pub fn rotate_after(&self) -> Duration {
        self.rotate_after
    }

    /// How long a replaced certificate is kept at least.
    pub fn retire_grace(&self) -> Duration {
        self.retire_grace
    }
}

impl Default for RotationPolicy {
    /// 90-day certificates, replaced after 60 days, old ones kept at least 6 hours after replacement.
    fn default() -> Self {
        Self {
            lifetime: Duration::days(90),
            rotate_after: Duration::days(60),
            retire_grace: Duration::hours(6),
        }
    }
}

/// A tenant's encryption certificates: the current one, which new and renewed subscriptions get, and
/// older ones that notifications may still be encrypted with.
///
/// Invariants: ids are unique; the current certificate is the one that became valid last
/// (`not_before`, ties broken by insertion order); the current one is never retired.
#[derive(Debug, Clone, Default)]
pub struct CertificateRing {
    /// Oldest first; the last one is current.
    entries: Vec<EncryptionCertificate>,
}

impl CertificateRing {
    /// An empty ring; the first [`CertificateRing::rotate_if_due`] fills it.
    pub fn new() -> Self {
        Self::default()
    }

    /// A ring of stored certificates. Two entries with the same id are refused.
    pub fn from_entries(
        entries: impl IntoIterator<Item = EncryptionCertificate>,
    ) -> Result<Self, CryptoError> {
        let mut ring = Self::new();
        for entry in entries {
            ring.insert(entry)?;
        }
        Ok(ring)
    }

    /// Adds a certificate (for example one loaded from the store). Its id must be new.
    pub fn insert(&mut self, entry: EncryptionCertificate) -> Result<(), CryptoError> {
        if self.get(&entry.id).is_some() {
            return Err(CryptoError::DuplicateCertificateId { id: entry.id });
        }
        // Stable: among equal `not_before` the later insertion stays later, hence current.
        let at = self.entries.partition_point(|e| e.not_before <= entry.not_before);
        self.entries.insert(at, entry);
        Ok(())
    }

    /// The certificate new and renewed subscriptions must carry; `None` for an empty ring.
    pub fn current(&self) -> Option<&EncryptionCertificate> {
        self.entries.last()
    }

    /// Every certificate, oldest first (the current one last).
    pub fn entries(&self) -> impl Iterator<Item = &EncryptionCertificate> {
        self.entries.iter()
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the ring holds no certificate.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The certificate with this id.
    pub fn get(&self, id: &str) -> Option<&EncryptionCertificate> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The certificate a notification was encrypted for: by `encryptionCertificateId`, and when no
    /// certificate has that id, by `encryptionCertificateThumbprint` (case-insensitive).
    pub fn find(&self, id: &str, thumbprint: &str) -> Option<&EncryptionCertificate> {
        self.get(id).or_else(|| {
            (!thumbprint.is_empty())
                .then(|| self.entries.iter().find(|e| e.thumbprint().eq_ignore_ascii_case(thumbprint)))
                .flatten()
        })
    }

    /// Decrypts a notification with the certificate it names (see [`CertificateRing::find`] and
    /// [`crate::decrypt_notification_content`]).
    pub fn decrypt(&self, content: &EncryptedContent) -> Result<Vec<u8>, CryptoError> {
        let entry = self
            .find(&content.encryption_certificate_id, &content.encryption_certificate_thumbprint)
            .ok_or_else(|| CryptoError::UnknownEncryptionCertificate {
                id: content.encryption_certificate_id.clone(),
                thumbprint: content.encryption_certificate_thumbprint.clone(),
            })?;
        crate::decrypt_notification_content(content, &entry.private_key)
    }

    /// Whether a new certificate is due at `now`: the ring is empty, the current certificate is at least
    /// `rotate_after` old, or it has expired.
    pub fn rotation_due(&self, now: DateTime<Utc>, policy: &RotationPolicy) -> bool {
        match self.current() {
            None => true,
            Some(current) => now >= current.not_before + policy.rotate_after || now >= current.not_after,
        }
    }

    /// If [`CertificateRing::rotation_due`], makes a certificate valid from `now` for the policy's
    /// lifetime with a key from `new_key` (production: [`NotificationPrivateKey::generate`]), makes it
    /// current and returns it. Older certificates stay until [`CertificateRing::retire_unused`] removes
    /// them. Returns `None` when nothing was due (and `new_key` was not called).
    ///
    /// The caller stores the new certificate, then moves subscriptions to it at their next renewal
    /// (`PATCH` with the new `encryptionCertificate` and `encryptionCertificateId`).
    pub fn rotate_if_due(
        &mut self,
        now: DateTime<Utc>,
        policy: &RotationPolicy,
        new_key: impl FnOnce() -> Result<NotificationPrivateKey, CryptoError>,
    ) -> Result<Option<&EncryptionCertificate>, CryptoError> {
        if !self.rotation_due(now, policy) {
            return Ok(None);
        }
        let entry = EncryptionCertificate::generate(new_key()?, now, now + policy.lifetime)?;
        // Due means `now` is at or after the current certificate's start, so the new one (starting at
        // `now`, whole seconds) sorts last and becomes current.
        let id = entry.id.clone();
        self.insert(entry)?;
        Ok(self.get(&id))
    }

    /// Removes every certificate that is not current, that no subscription uses (`in_use_ids`: the
    /// `encryptionCertificateId` of every live subscription, from the store), and that was replaced at
    /// least the policy's `retire_grace` before `now`. Returns the removed ones, so the caller can delete
    /// them from the store.
    pub fn retire_unused<'a>(
        &mut self,
        now: DateTime<Utc>,
        policy: &RotationPolicy,
        in_use_ids: impl IntoIterator<Item = &'a str>,
    ) -> Vec<EncryptionCertificate> {
        let in_use: std::collections::HashSet<&str> = in_use_ids.into_iter().collect();
        // An entry was replaced when the next one (entries are ordered by start) became valid.
        let replaced_at: Vec<Option<DateTime<Utc>>> =
            (0..self.entries.len()).map(|i| self.entries.get(i + 1).map(|next| next.not_before)).collect();
        let (kept, retired): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .zip(replaced_at)
            .partition(|(entry, replaced_at)| {
                match replaced_at {
                    None => true, // the current one
                    Some(at) => in_use.contains(entry.id.as_str()) || now < *at + policy.retire_grace,
                }
            });
        self.entries = kept.into_iter().map(|(entry, _)| entry).collect();
        retired.into_iter().map(|(entry, _)| entry).collect()
    }
}

/// Truncates to whole seconds, as the certificate will store it.
fn whole_seconds(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

/// Seconds since 1970 for a certificate date. rcgen takes `time::OffsetDateTime`; it is built as rcgen's
/// own 1970-01-01 plus this many seconds, so this crate need not depend on `time` too.
fn unix_seconds(at: DateTime<Utc>) -> Result<std::time::Duration, CryptoError> {
    let secs = u64::try_from(at.timestamp()).map_err(|_| CryptoError::InvalidCertificate {
        reason: format!("its validity date {at} is before 1970"),
    })?;
    Ok(std::time::Duration::from_secs(secs))
}
