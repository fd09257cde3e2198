//! **Encryption certificates at rest**: the [`CertificateRing`] that Graph's rich notifications are
//! encrypted for, persisted in the store's `encryption_keys` table with each private key sealed under the
//! master key (AES-256-GCM envelope, associated data = table + certificate id), rotated on a schedule with
//! overlap ([`rotate_certificates`]).
//!
//! ## Invariants
//! - A private key never reaches the store in the clear; the store sees the sealed envelope only
//!   (`nonce ‖ ciphertext+tag`, [`seal_row`]).
//! - **Overlap.** A new certificate is made when the current one is [`RotationPolicy::rotate_after`] old;
//!   the old one stays as long as a subscription names it, and at least [`RotationPolicy::retire_grace`]
//!   after it was replaced (Graph retries deliveries for hours), so a notification encrypted for it still
//!   opens. Subscriptions move to the new one at their next renewal
//!   ([`crate::subscriptions::ensure_subscriptions`] renews a subscription whose certificate is not current).
//! - Several instances on one database: rotation runs under a store lease (the scheduler's), and every
//!   instance reloads the ring from the store ([`load_ring`]), so all of them can open what any of them
//!   subscribed with.
//! - Time only from arguments.

use chrono::{DateTime, Utc};
use orb_core::TenantId;
use orb_crypto::secrecy::ExposeSecret as _;
use orb_crypto::{
    CertificateRing, CryptoError, EncryptionCertificate, KeyRing, NotificationCertificate,
    NotificationPrivateKey, RotationPolicy, SealedSecret, SecretAad,
};
use orb_store::{EncryptionKeyRow, NewAuditEntry, Store, StoreError};
use thiserror::Error;

/// Associated-data kind of a sealed private key: the table and column it lives in.
pub const KEY_AAD_KIND: &str = "encryption_keys.sealed_private_key";
/// Audit action: a new encryption certificate was made.
pub const AUDIT_KEY_CREATED: &str = "encryption_key.created";
/// Audit action: an unused old encryption certificate was destroyed.
pub const AUDIT_KEY_RETIRED: &str = "encryption_key.retired";
/// Audit action: the private keys were sealed again under a new master key.
pub const AUDIT_KEYS_RESEALED: &str = "encryption_key.resealed";
/// Length of the envelope's nonce at the start of the stored bytes.
const NONCE_LEN: usize = 12;

/// Why loading or rotating certificates failed.
#[derive(Debug, Error)]
pub enum KeysError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stored certificate or key cannot be opened or does not fit together.
    #[error(
        "encryption certificate {id:?} in the database cannot be used: {source}; check that ORB runs with \
         the master key that sealed it (`orb keys check`)"
    )]
    Stored {
        /// The certificate id.
        id: String,
        /// Why.
        #[source]
        source: CryptoError,
    },
    /// Making or sealing a new certificate failed.
    #[error("making a new encryption certificate failed: {0}")]
    Crypto(#[from] CryptoError),
}

impl KeysError {
    /// Whether trying again later can help (a store outage can; a key that does not open cannot).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Stored { .. } | Self::Crypto(_) => false,
        }
    }
}

/// The associated data of certificate `id`'s sealed key. Certificates belong to the installation, not a
/// tenant: the nil tenant id stands for "installation".
fn aad(id: &str) -> SecretAad<'_> {
    SecretAad::new(TenantId::from_uuid(uuid::Uuid::nil()), KEY_AAD_KIND, id)
}

fn sealed_bytes(sealed: &SealedSecret) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.ciphertext.len());
    bytes.extend_from_slice(&sealed.nonce);
    bytes.extend_from_slice(&sealed.ciphertext);
    bytes
}

fn sealed_of(row: &EncryptionKeyRow) -> Result<SealedSecret, CryptoError> {
    if row.sealed_private_key.len() < NONCE_LEN {
        return Err(CryptoError::Malformed { reason: "the sealed private key is truncated".into() });
    }
    let (nonce, ciphertext) = row.sealed_private_key.split_at(NONCE_LEN);
    SealedSecret::from_parts(row.key_id.clone(), nonce, ciphertext.to_vec())
}

/// The store row of `entry`, its private key sealed under `master`'s current key.
pub fn seal_row(
    entry: &EncryptionCertificate,
    master: &KeyRing,
    now: DateTime<Utc>,
) -> Result<EncryptionKeyRow, CryptoError> {
    let pkcs8 = entry.private_key_pkcs8()?;
    let sealed = master.seal(&aad(entry.id()), pkcs8.expose_secret())?;
    Ok(EncryptionKeyRow {
        id: entry.id().to_owned(),
        certificate_der: entry.certificate().der().to_vec(),
        thumbprint: entry.thumbprint().to_owned(),
        not_before: entry.not_before(),
        not_after: entry.not_after(),
        key_id: sealed.key_id.clone(),
        sealed_private_key: sealed_bytes(&sealed),
        created_at: now,
    })
}

fn open_row(row: &EncryptionKeyRow, master: &KeyRing) -> Result<EncryptionCertificate, CryptoError> {
    let pkcs8 = master.open_bytes(&aad(&row.id), &sealed_of(row)?)?;
    let key = NotificationPrivateKey::from_pkcs8_der(pkcs8.expose_secret())?;
    let certificate = NotificationCertificate::from_der(row.certificate_der.clone())?;
    EncryptionCertificate::from_parts(row.id.clone(), certificate, row.not_before, row.not_after, key)
}

/// The ring as stored (empty when nothing is stored yet).
pub async fn load_ring(store: &dyn Store, master: &KeyRing) -> Result<CertificateRing, KeysError> {
    let mut ring = CertificateRing::new();
    for row in store.list_encryption_keys().await? {
        let entry =
            open_row(&row, master).map_err(|source| KeysError::Stored { id: row.id.clone(), source })?;
        ring.insert(entry).map_err(|source| KeysError::Stored { id: row.id.clone(), source })?;
    }
    Ok(ring)
}

/// What [`rotate_certificates`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// The certificate made (when one was due).
    pub created: Option<String>,
    /// Certificates destroyed (unused and past the grace period).
    pub retired: Vec<String>,
    /// Certificates in the ring afterwards.
    pub kept: usize,
}

fn audit(action: &str, target: &str, now: DateTime<Utc>) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: None,
        at: now,
        actor: "scheduler".into(),
        action: action.into(),
        target: target.into(),
        ip: None,
    }
}

/// Makes a new certificate when one is due (or none exists) and destroys old ones that no subscription of
/// any tenant names any more and that were replaced at least the grace period ago. Returns the ring as it
/// is now stored, and what changed.
pub async fn rotate_certificates(
    store: &dyn Store,
    master: &KeyRing,
    policy: &RotationPolicy,
    now: DateTime<Utc>,
) -> Result<(CertificateRing, RotationReport), KeysError> {
    let mut ring = load_ring(store, master).await?;
    let mut report = RotationReport::default();
    if let Some(entry) = ring.rotate_if_due(now, policy, NotificationPrivateKey::generate)? {
        let row = seal_row(entry, master, now)?;
        store.insert_encryption_key(&row, &audit(AUDIT_KEY_CREATED, &row.id, now)).await?;
        tracing::info!(certificate = %row.id, not_after = %row.not_after, "new encryption certificate");
        report.created = Some(row.id);
    }
    let mut in_use = Vec::new();
    for tenant in store.list_tenants().await? {
        in_use.extend(
            store
                .list_subscriptions(tenant.id)
                .await?
                .into_iter()
                .filter_map(|s| s.encryption_certificate_id),
        );
    }
    for retired in ring.retire_unused(now, policy, in_use.iter().map(String::as_str)) {
        match store.delete_encryption_key(retired.id(), &audit(AUDIT_KEY_RETIRED, retired.id(), now)).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(certificate = %retired.id(), "unused encryption certificate destroyed");
        report.retired.push(retired.id().to_owned());
    }
    report.kept = ring.len();
    Ok((ring, report))
}

/// Seals every stored private key again under `master`'s current key (after a master-key rotation;
/// `master` holds the old key as previous). Returns how many were resealed; all or nothing.
pub async fn reseal_all(store: &dyn Store, master: &KeyRing, now: DateTime<Utc>) -> Result<usize, KeysError> {
    let mut resealed = Vec::new();
    for row in store.list_encryption_keys().await? {
        let stored = |source| KeysError::Stored { id: row.id.clone(), source };
        let sealed = sealed_of(&row).map_err(stored)?;
        if !master.needs_reseal(&sealed) {
            continue;
        }
        let new = master.reseal(&aad(&row.id), &sealed).map_err(stored)?;
        resealed.push((row.id.clone(), new.key_id.clone(), sealed_bytes(&new)));
    }
    if !resealed.is_empty() {
        let target = format!("{} certificate(s)", resealed.len());
        store.reseal_encryption_keys(&resealed, &audit(AUDIT_KEYS_RESEALED, &target, now)).await?;
    }
    Ok(resealed.len())
}
