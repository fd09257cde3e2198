//! The encryption certificate ring: generation, loading, rotation, retirement, key selection.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, TimeZone, Utc};
use secrecy::ExposeSecret;

use crate::{
    CertificateRing, CryptoError, EncryptionCertificate, KeyRing, MasterKey, NotificationCertificate,
    NotificationPrivateKey, RotationPolicy, SecretAad, encrypt_notification_content,
};

/// RSA-2048 generation is the slow part; tests share a few keys.
fn key(n: usize) -> NotificationPrivateKey {
    static KEYS: OnceLock<Vec<NotificationPrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..4).map(|_| NotificationPrivateKey::generate().unwrap()).collect())[n].clone()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 3, 10, 0, 0).unwrap()
}

/// A certificate valid from `t0` for 90 days with shared key 0.
pub(crate) fn fresh_certificate(_label: &str) -> EncryptionCertificate {
    EncryptionCertificate::generate(key(0), t0(), t0() + Duration::days(90)).unwrap()
}

fn policy() -> RotationPolicy {
    RotationPolicy::new(Duration::days(90), Duration::days(60), Duration::hours(6)).unwrap()
}

fn no_key() -> Result<NotificationPrivateKey, CryptoError> {
    panic!("no new key must be asked for when no rotation is due")
}

#[test]
fn generated_certificates_are_what_graph_needs() {
    let not_before = t0() + Duration::milliseconds(750);
    let entry = EncryptionCertificate::generate(key(1), not_before, t0() + Duration::days(90)).unwrap();
    assert_eq!(entry.certificate().key_bits(), 2048);
    assert_eq!(entry.not_before(), t0(), "whole seconds, as X.509 stores it");
    assert_eq!(entry.not_after(), t0() + Duration::days(90));
    assert_eq!(entry.id(), format!("enc-20260703-{}", entry.thumbprint()[..8].to_ascii_lowercase()));
    assert!(entry.id().len() <= crate::MAX_CERTIFICATE_ID_LEN);
    assert!(entry.private_key().matches(entry.certificate()).unwrap());
    // What a subscription carries parses back to the same certificate.
    let carried = NotificationCertificate::from_base64(&entry.certificate_base64()).unwrap();
    assert_eq!(carried.thumbprint(), entry.thumbprint());
    assert_eq!(
        carried.thumbprint(),
        crate::sha1_thumbprint(&STANDARD.decode(entry.certificate_base64()).unwrap())
    );
    // The DER carries the validity (UTCTime) and the common name.
    let der = entry.certificate().der();
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"260703100000Z"), "not before");
    assert!(contains(b"261001100000Z"), "not after");
    assert!(contains(crate::CERTIFICATE_COMMON_NAME.as_bytes()));
    // Same key and dates give the same certificate (no hidden randomness or clock).
    let again = EncryptionCertificate::generate(key(1), not_before, t0() + Duration::days(90)).unwrap();
    assert_eq!(again.certificate().der(), der);
    // Debug names the certificate, not the key.
    let debug = format!("{entry:?}");
    assert!(debug.contains(entry.id()) && debug.contains(entry.thumbprint()), "{debug}");
    let pkcs8 = entry.private_key_pkcs8().unwrap();
    assert!(!debug.contains(&STANDARD.encode(&pkcs8.expose_secret()[40..60])), "{debug}");
}

#[test]
fn invalid_generation_and_loading_is_refused() {
    let good = fresh_certificate("good");
    let cert = good.certificate().clone();
    let (nb, na) = (good.not_before(), good.not_after());
    type Check = fn(&CryptoError) -> bool;
    let invalid_cert: Check = |e| matches!(e, CryptoError::InvalidCertificate { .. });
    let invalid_key: Check = |e| matches!(e, CryptoError::InvalidPrivateKey { .. });
    let cases: Vec<(&str, Result<EncryptionCertificate, CryptoError>, Check)> = vec![
        ("validity reversed", EncryptionCertificate::generate(key(0), na, nb), invalid_cert),
        ("validity empty", EncryptionCertificate::generate(key(0), nb, nb), invalid_cert),
        (
            "before 1970",
            EncryptionCertificate::generate(key(0), nb - Duration::days(30_000), na),
            invalid_cert,
        ),
        ("empty id", EncryptionCertificate::from_parts("", cert.clone(), nb, na, key(0)), invalid_cert),
        (
            "long id",
            EncryptionCertificate::from_parts("x".repeat(129), cert.clone(), nb, na, key(0)),
            invalid_cert,
        ),
        (
            "loaded reversed",
            EncryptionCertificate::from_parts("a", cert.clone(), na, nb, key(0)),
            invalid_cert,
        ),
        (
            "someone else's key",
            EncryptionCertificate::from_parts("a", cert.clone(), nb, na, key(1)),
            invalid_key,
        ),
    ];
    for (name, result, check) in cases {
        let err = result.unwrap_err();
        assert!(check(&err), "{name}: {err:?}");
    }
    let ok = EncryptionCertificate::from_parts("x".repeat(128), cert, nb, na, key(0)).unwrap();
    assert_eq!(ok.thumbprint(), good.thumbprint());
}

#[test]
fn a_stored_entry_sealed_with_the_envelope_loads_back() {
    let entry = fresh_certificate("stored");
    let master = KeyRing::new(MasterKey::generate().unwrap());
    let tenant = orb_core::TenantId::from_uuid(Default::default());
    let row = entry.id().to_owned();
    let aad = SecretAad::new(tenant, "encryption_certificates.private_key", &row);
    let sealed = master.seal(&aad, entry.private_key_pkcs8().unwrap().expose_secret()).unwrap();
    // What the store keeps: id, base64 certificate, dates, sealed key.
    let (id, cert_b64, nb, na) =
        (entry.id().to_owned(), entry.certificate_base64(), entry.not_before(), entry.not_after());
    drop(entry);
    let pkcs8 = master.open_bytes(&aad, &sealed).unwrap();
    let loaded = EncryptionCertificate::from_parts(
        id.clone(),
        NotificationCertificate::from_base64(&cert_b64).unwrap(),
        nb,
        na,
        NotificationPrivateKey::from_pkcs8_der(pkcs8.expose_secret()).unwrap(),
    )
    .unwrap();
    let ring = CertificateRing::from_entries([loaded]).unwrap();
    let content =
        encrypt_notification_content(b"{}", &NotificationCertificate::from_base64(&cert_b64).unwrap(), &id)
            .unwrap();
    assert_eq!(ring.decrypt(&content).unwrap(), b"{}");
}

#[test]
fn rotation_follows_the_schedule_and_retirement_waits_for_subscriptions() {
    let policy = policy();
    let mut ring = CertificateRing::new();
    assert!(ring.rotation_due(t0(), &policy), "an empty ring needs a certificate");

    let a = ring.rotate_if_due(t0(), &policy, || Ok(key(0))).unwrap().unwrap().clone();
    assert_eq!(ring.current().unwrap().id(), a.id());
    assert_eq!(a.not_after(), t0() + policy.lifetime());

    // Not due before `rotate_after`, and no key is generated.
    for later in [Duration::zero(), Duration::days(1), Duration::days(60) - Duration::seconds(1)] {
        assert!(ring.rotate_if_due(t0() + later, &policy, no_key).unwrap().is_none(), "{later}");
    }
    // A clock that went backwards does not rotate either.
    assert!(ring.rotate_if_due(t0() - Duration::days(1), &policy, no_key).unwrap().is_none());

    let t1 = t0() + Duration::days(60);
    let b = ring.rotate_if_due(t1, &policy, || Ok(key(1))).unwrap().unwrap().clone();
    assert_ne!(a.id(), b.id());
    assert_eq!(ring.current().unwrap().id(), b.id());
    assert_eq!(ring.entries().map(|e| e.id().to_owned()).collect::<Vec<_>>(), [a.id(), b.id()]);

    // (now, subscriptions still using a certificate, ids expected to remain)
    let steps: [(DateTime<Utc>, Vec<&str>, Vec<&str>); 5] = [
        (t1, vec![a.id()], vec![a.id(), b.id()]),
        (t1 + Duration::hours(1), vec![], vec![a.id(), b.id()]), // within the grace period
        (t1 + Duration::hours(6), vec![a.id(), b.id()], vec![a.id(), b.id()]), // still in use
        (t1 + Duration::hours(6), vec![b.id()], vec![b.id()]),
        (t1 + Duration::days(400), vec![], vec![b.id()]), // the current one is never retired
    ];
    for (now, in_use, remaining) in steps {
        let before: Vec<String> = ring.entries().map(|e| e.id().to_owned()).collect();
        let retired = ring.retire_unused(now, &policy, in_use.iter().copied());
        let after: Vec<&str> = ring.entries().map(|e| e.id()).collect();
        assert_eq!(after, remaining, "at {now} with {in_use:?}");
        let retired_ids: Vec<&str> = retired.iter().map(|e| e.id()).collect();
        let expected_retired: Vec<&str> =
            before.iter().map(String::as_str).filter(|id| !remaining.contains(id)).collect();
        assert_eq!(retired_ids, expected_retired, "the removed entries are handed back");
    }
}

#[test]
fn an_expired_current_certificate_is_replaced() {
    let policy = policy();
    // A stored certificate that lives shorter than the policy's rotation age.
    let short = EncryptionCertificate::generate(key(2), t0(), t0() + Duration::days(10)).unwrap();
    let mut ring = CertificateRing::from_entries([short]).unwrap();
    assert!(!ring.rotation_due(t0() + Duration::days(10) - Duration::seconds(1), &policy));
    assert!(ring.rotation_due(t0() + Duration::days(10), &policy));
    let new = ring.rotate_if_due(t0() + Duration::days(10), &policy, || Ok(key(3))).unwrap();
    assert_eq!(new.unwrap().not_before(), t0() + Duration::days(10));
    assert_eq!(ring.len(), 2);
}

#[test]
fn loading_orders_by_start_and_refuses_duplicate_ids() {
    let old = EncryptionCertificate::generate(key(0), t0(), t0() + Duration::days(90)).unwrap();
    let new = EncryptionCertificate::generate(key(1), t0() + Duration::days(60), t0() + Duration::days(150))
        .unwrap();
    let ring = CertificateRing::from_entries([new.clone(), old.clone()]).unwrap();
    assert_eq!(ring.current().unwrap().id(), new.id(), "the newest start is current, whatever the order");
    assert_eq!(ring.entries().next().unwrap().id(), old.id());
    let err = CertificateRing::from_entries([old.clone(), old.clone()]).unwrap_err();
    assert!(matches!(&err, CryptoError::DuplicateCertificateId { id } if id == old.id()), "{err:?}");
    assert!(CertificateRing::new().current().is_none() && CertificateRing::new().is_empty());
}

#[test]
fn the_ring_selects_the_key_by_id_then_thumbprint() {
    let a = EncryptionCertificate::generate(key(0), t0(), t0() + Duration::days(90)).unwrap();
    let b = EncryptionCertificate::generate(key(1), t0() + Duration::days(60), t0() + Duration::days(150))
        .unwrap();
    let mut ring = CertificateRing::from_entries([a.clone(), b.clone()]).unwrap();
    let plain = br#"{"subject":"Weekly"}"#;
    let for_a = encrypt_notification_content(plain, a.certificate(), a.id()).unwrap();
    let for_b = encrypt_notification_content(plain, b.certificate(), b.id()).unwrap();
    assert_eq!(ring.decrypt(&for_a).unwrap(), plain, "an older certificate still decrypts");
    assert_eq!(ring.decrypt(&for_b).unwrap(), plain);

    // Unknown id: found by thumbprint, in any letter case.
    let mut by_thumbprint = for_a.clone();
    by_thumbprint.encryption_certificate_id = "renamed".to_owned();
    by_thumbprint.encryption_certificate_thumbprint = a.thumbprint().to_ascii_lowercase();
    assert_eq!(ring.decrypt(&by_thumbprint).unwrap(), plain);

    // The id wins over the thumbprint: B's id on A's ciphertext tries B's key, which does not unwrap.
    let mut wrong_id = for_a.clone();
    wrong_id.encryption_certificate_id = b.id().to_owned();
    let err = ring.decrypt(&wrong_id).unwrap_err();
    assert!(
        matches!(&err, CryptoError::NotificationKeyUnwrap { certificate_id } if certificate_id == b.id()),
        "{err:?}"
    );

    // Neither known.
    let mut unknown = for_a.clone();
    unknown.encryption_certificate_id = "nope".to_owned();
    unknown.encryption_certificate_thumbprint = "00".repeat(20);
    let err = ring.decrypt(&unknown).unwrap_err();
    assert!(matches!(&err, CryptoError::UnknownEncryptionCertificate { id, .. } if id == "nope"), "{err:?}");
    let mut no_thumbprint = unknown.clone();
    no_thumbprint.encryption_certificate_thumbprint = String::new();
    assert!(matches!(ring.decrypt(&no_thumbprint), Err(CryptoError::UnknownEncryptionCertificate { .. })));

    // Once retired, its notifications are refused as unknown.
    let retired = ring.retire_unused(t0() + Duration::days(61), &policy(), []);
    assert_eq!(retired.len(), 1);
    let err = ring.decrypt(&for_a).unwrap_err();
    assert!(matches!(&err, CryptoError::UnknownEncryptionCertificate { id, .. } if id == a.id()), "{err:?}");
}

#[test]
fn rotation_policies_must_make_sense() {
    let d = Duration::days;
    let cases = [
        ("zero rotation age", d(90), d(0), d(0)),
        ("negative rotation age", d(90), d(-1), d(0)),
        ("rotation age equal to lifetime", d(90), d(90), d(0)),
        ("rotation age beyond lifetime", d(30), d(60), d(0)),
        ("negative grace", d(90), d(60), Duration::hours(-1)),
    ];
    for (name, lifetime, rotate_after, grace) in cases {
        let err = RotationPolicy::new(lifetime, rotate_after, grace).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidRotationPolicy { .. }), "{name}: {err:?}");
    }
    let default = RotationPolicy::default();
    assert_eq!(
        RotationPolicy::new(default.lifetime(), default.rotate_after(), default.retire_grace()).unwrap(),
        default,
        "the default is itself valid"
    );
}
