use std::collections::{HashMap, HashSet};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use orb_core::TenantId;
use secrecy::{ExposeSecret, SecretString};

use crate::{CryptoError, KeyRing, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, MasterKey, SealedSecret, SecretAad};

const TENANT_A: &str = "0190f0e4-7d1c-7a3b-9a6f-2b1c3d4e5f60";
const TENANT_B: &str = "0190f0e4-7d1c-7a3b-9a6f-2b1c3d4e5f61";

fn tenant(s: &str) -> TenantId {
    s.parse().unwrap()
}

/// A fixed key whose 32 bytes are all `byte`.
fn key(byte: u8) -> MasterKey {
    MasterKey::from_base64(&STANDARD.encode([byte; 32])).unwrap()
}

fn ring(byte: u8) -> KeyRing {
    KeyRing::new(key(byte))
}

fn aad(tenant_id: &str, kind: &'static str, row: &'static str) -> SecretAad<'static> {
    SecretAad::new(tenant(tenant_id), kind, row)
}

fn default_aad() -> SecretAad<'static> {
    aad(TENANT_A, "tenant_secrets.value", "graph.client_secret")
}

#[test]
fn text_secrets_round_trip() {
    let ring = ring(7);
    let long = "x".repeat(10_000);
    for plaintext in ["", "a", "s3cr3t with ünïcödé and spaces", long.as_str()] {
        let sealed = ring.seal_secret(&default_aad(), &SecretString::from(plaintext)).unwrap();
        assert_eq!(sealed.key_id, ring.current().id());
        assert_eq!(sealed.ciphertext.len(), plaintext.len() + crate::TAG_LEN);
        if !plaintext.is_empty() {
            assert_ne!(&sealed.ciphertext[..plaintext.len()], plaintext.as_bytes(), "must be encrypted");
        }
        let opened = ring.open(&default_aad(), &sealed).unwrap();
        assert_eq!(opened.expose_secret(), plaintext);
    }
}

#[test]
fn byte_secrets_round_trip_and_are_not_opened_as_text() {
    let ring = ring(7);
    let bytes = [0xff, 0x00, 0xfe, 0x80];
    let sealed = ring.seal(&default_aad(), &bytes).unwrap();
    assert_eq!(ring.open_bytes(&default_aad(), &sealed).unwrap().expose_secret(), &bytes[..]);
    let err = ring.open(&default_aad(), &sealed).unwrap_err();
    assert!(matches!(err, CryptoError::NotUtf8), "{err:?}");
}

#[test]
fn a_secret_does_not_open_for_another_tenant_kind_or_row() {
    let ring = ring(7);
    let sealed = ring.seal_secret(&default_aad(), &SecretString::from("s3cr3t")).unwrap();
    let cases = [
        ("other tenant", aad(TENANT_B, "tenant_secrets.value", "graph.client_secret")),
        ("other kind", aad(TENANT_A, "tenant_secrets.other", "graph.client_secret")),
        ("other row", aad(TENANT_A, "tenant_secrets.value", "topdesk.password")),
        // Length prefixes keep a shifted boundary between kind and row from matching.
        ("shifted boundary", aad(TENANT_A, "tenant_secrets.valueg", "raph.client_secret")),
    ];
    for (name, other) in cases {
        let err = ring.open(&other, &sealed).unwrap_err();
        assert!(
            matches!(&err, CryptoError::Tampered { key_id } if key_id == ring.current().id()),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("another tenant, kind or row"), "{name}: {err}");
    }
    assert_eq!(ring.open(&default_aad(), &sealed).unwrap().expose_secret(), "s3cr3t");
}

#[test]
fn aad_encoding_is_unambiguous() {
    let a = aad(TENANT_A, "ab", "c").encode();
    let b = aad(TENANT_A, "a", "bc").encode();
    let c = aad(TENANT_B, "ab", "c").encode();
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_eq!(a, aad(TENANT_A, "ab", "c").encode(), "encoding is deterministic");
}

#[test]
fn tampering_is_detected() {
    let ring = ring(7);
    let sealed = ring.seal_secret(&default_aad(), &SecretString::from("s3cr3t")).unwrap();
    type Edit = fn(&mut SealedSecret);
    let cases: [(&str, Edit); 5] = [
        ("first ciphertext byte", |s| s.ciphertext[0] ^= 1),
        ("last tag byte", |s| *s.ciphertext.last_mut().unwrap() ^= 0x80),
        ("nonce", |s| s.nonce[11] ^= 1),
        ("truncated", |s| {
            s.ciphertext.pop();
        }),
        ("extended", |s| s.ciphertext.push(0)),
    ];
    for (name, edit) in cases {
        let mut bad = sealed.clone();
        edit(&mut bad);
        let err = ring.open(&default_aad(), &bad).unwrap_err();
        assert!(matches!(err, CryptoError::Tampered { .. }), "{name}: {err:?}");
    }
}

#[test]
fn a_key_id_swapped_to_another_key_in_the_ring_does_not_open() {
    let ring = ring(2).with_previous([key(1)]).unwrap();
    let mut sealed = ring.seal_secret(&default_aad(), &SecretString::from("s3cr3t")).unwrap();
    sealed.key_id = key(1).id().to_owned();
    assert!(matches!(ring.open(&default_aad(), &sealed), Err(CryptoError::Tampered { .. })));
}

#[test]
fn a_secret_sealed_under_an_unknown_key_names_the_key_and_the_fix() {
    let sealed = ring(1).seal_secret(&default_aad(), &SecretString::from("s3cr3t")).unwrap();
    let err = ring(2).with_previous([key(3)]).unwrap().open(&default_aad(), &sealed).unwrap_err();
    match &err {
        CryptoError::UnknownKey { key_id } => assert_eq!(key_id, key(1).id()),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(key(1).id()), "{msg}");
    assert!(msg.contains("master key is wrong or missing"), "{msg}");
    assert!(!err.is_retryable());
}

#[test]
fn every_seal_uses_a_fresh_nonce() {
    let ring = ring(7);
    let plaintext = SecretString::from("same value");
    let sealed: Vec<_> = (0..200).map(|_| ring.seal_secret(&default_aad(), &plaintext).unwrap()).collect();
    let nonces: HashSet<_> = sealed.iter().map(|s| s.nonce).collect();
    let ciphertexts: HashSet<_> = sealed.iter().map(|s| s.ciphertext.clone()).collect();
    assert_eq!(nonces.len(), sealed.len(), "a nonce was reused");
    assert_eq!(ciphertexts.len(), sealed.len(), "two seals of the same value gave the same ciphertext");
}

#[test]
fn debug_output_never_shows_key_bytes_or_plaintext() {
    let k = key(0xab);
    let b64 = k.to_base64().expose_secret().to_owned();
    let plaintext = "hunter2-plaintext";
    let ring = KeyRing::new(k.clone()).with_previous([key(0xcd)]).unwrap();
    let sealed = ring.seal_secret(&default_aad(), &SecretString::from(plaintext)).unwrap();
    let opened = ring.open(&default_aad(), &sealed).unwrap();
    let key_debug = format!("{k:?}");
    assert_eq!(key_debug, format!("MasterKey {{ id: {:?}, .. }}", k.id()));
    for (name, text) in [
        ("MasterKey", key_debug),
        ("MasterKey pretty", format!("{k:#?}")),
        ("KeyRing", format!("{ring:?}")),
        ("SealedSecret", format!("{sealed:?}")),
        ("opened SecretString", format!("{opened:?}")),
    ] {
        for forbidden in [b64.as_str(), "171, 171", "0xab", "abababab", plaintext] {
            assert!(!text.contains(forbidden), "{name} Debug shows {forbidden:?}: {text}");
        }
    }
    assert!(format!("{sealed:?}").contains(ring.current().id()), "SealedSecret Debug names its key");
}

#[test]
fn master_keys_parse_from_base64_of_exactly_32_bytes() {
    let good = STANDARD.encode([9u8; 32]);
    let parsed = MasterKey::from_base64(&format!("  {good}\n")).unwrap();
    assert_eq!(parsed.to_base64().expose_secret(), good, "surrounding whitespace is ignored");

    let cases = [
        ("16 bytes", STANDARD.encode([9u8; 16]), "decodes to 16 bytes, not 32"),
        ("33 bytes", STANDARD.encode([9u8; 33]), "decodes to 33 bytes, not 32"),
        ("empty", String::new(), "decodes to 0 bytes, not 32"),
        ("not base64", "this is not base64!!".to_owned(), "not standard base64"),
        ("url-safe alphabet", "-_".repeat(22), "not standard base64"),
    ];
    for (name, input, reason) in cases {
        let err = MasterKey::from_base64(&input).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidMasterKey { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        for needed in [reason, "32 bytes encoded as standard base64", "orb keys generate"] {
            assert!(msg.contains(needed), "{name}: {msg:?} lacks {needed:?}");
        }
        if !input.is_empty() {
            assert!(!msg.contains(&input), "{name}: the message must not echo the key: {msg}");
        }
    }
}

#[test]
fn key_ids_are_stable_and_distinguish_keys() {
    let id = key(1).id().to_owned();
    assert_eq!(key(1).id(), id, "same key, same id");
    assert_ne!(key(2).id(), id, "other key, other id");
    assert!(id.starts_with("k-") && id.len() == 10, "{id}");
    assert!(id[2..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{id}");

    let generated = MasterKey::generate().unwrap();
    let again = MasterKey::from_base64(generated.to_base64().expose_secret()).unwrap();
    assert_eq!(again.id(), generated.id(), "a key survives base64 and keeps its id");
    assert_ne!(MasterKey::generate().unwrap().id(), generated.id(), "generated keys differ");
}

#[test]
fn master_key_loading_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let b64 = STANDARD.encode([5u8; 32]);
    let with_newline = dir.path().join("with-newline.key");
    std::fs::write(&with_newline, format!("{b64}\n")).unwrap();
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "nope\n").unwrap();
    let missing = dir.path().join("missing.key");
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let expected_id = key(5).id().to_owned();

    enum Want {
        Key,
        Err(fn(&CryptoError) -> bool, Vec<String>),
    }
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Want);
    let cases: Vec<Case> = vec![
        ("value only", vec![(MASTER_KEY_ENV, b64.clone())], Want::Key),
        ("file with trailing newline", vec![(MASTER_KEY_FILE_ENV, path(&with_newline))], Want::Key),
        (
            "empty value counts as unset",
            vec![(MASTER_KEY_ENV, String::new()), (MASTER_KEY_FILE_ENV, path(&with_newline))],
            Want::Key,
        ),
        (
            "both set",
            vec![(MASTER_KEY_ENV, b64.clone()), (MASTER_KEY_FILE_ENV, path(&with_newline))],
            Want::Err(
                |e| matches!(e, CryptoError::AmbiguousMasterKey),
                vec![MASTER_KEY_ENV.into(), MASTER_KEY_FILE_ENV.into(), "only one".into()],
            ),
        ),
        (
            "neither set",
            vec![],
            Want::Err(
                |e| matches!(e, CryptoError::MissingMasterKey),
                vec![MASTER_KEY_ENV.into(), MASTER_KEY_FILE_ENV.into(), "orb keys generate".into()],
            ),
        ),
        (
            "unreadable file",
            vec![(MASTER_KEY_FILE_ENV, path(&missing))],
            Want::Err(
                |e| matches!(e, CryptoError::MasterKeyFile { .. }),
                vec![path(&missing), MASTER_KEY_FILE_ENV.into()],
            ),
        ),
        (
            "file with a bad key",
            vec![(MASTER_KEY_FILE_ENV, path(&garbage))],
            Want::Err(
                |e| matches!(e, CryptoError::InvalidMasterKey { .. }),
                vec![path(&garbage), "orb keys generate".into()],
            ),
        ),
        (
            "bad value",
            vec![(MASTER_KEY_ENV, "c2hvcnQ=".into())],
            Want::Err(
                |e| matches!(e, CryptoError::InvalidMasterKey { .. }),
                vec![MASTER_KEY_ENV.into(), "decodes to 5 bytes".into()],
            ),
        ),
    ];
    for (name, vars, want) in cases {
        let env: HashMap<&str, String> = vars.into_iter().collect();
        let result = MasterKey::from_env_or_file(|k| env.get(k).cloned());
        match (result, want) {
            (Ok(k), Want::Key) => assert_eq!(k.id(), expected_id, "{name}"),
            (Err(e), Want::Err(is, needles)) => {
                assert!(is(&e), "{name}: wrong error {e:?}");
                let msg = e.to_string();
                for needle in needles {
                    assert!(msg.contains(&needle), "{name}: {msg:?} lacks {needle:?}");
                }
                assert!(!msg.contains(&b64), "{name}: message shows the key");
            }
            (Ok(k), Want::Err(..)) => panic!("{name}: expected an error, got {k:?}"),
            (Err(e), Want::Key) => panic!("{name}: expected a key, got {e}"),
        }
    }
}

#[test]
fn rotation_reseals_old_rows_under_the_new_key() {
    let old_ring = ring(1);
    let sealed = old_ring.seal_secret(&default_aad(), &SecretString::from("s3cr3t")).unwrap();

    let new_ring = old_ring.rotated(key(2)).unwrap();
    assert_eq!(new_ring.key_ids().collect::<Vec<_>>(), [key(2).id(), key(1).id()]);
    assert!(new_ring.needs_reseal(&sealed));
    assert_eq!(new_ring.open(&default_aad(), &sealed).unwrap().expose_secret(), "s3cr3t");

    let resealed = new_ring.reseal(&default_aad(), &sealed).unwrap();
    assert_eq!(resealed.key_id, key(2).id());
    assert!(!new_ring.needs_reseal(&resealed));
    let only_new = ring(2);
    assert_eq!(only_new.open(&default_aad(), &resealed).unwrap().expose_secret(), "s3cr3t");
    assert!(matches!(only_new.open(&default_aad(), &sealed), Err(CryptoError::UnknownKey { .. })));
    // Resealing keeps the binding to the row.
    let other = aad(TENANT_B, "tenant_secrets.value", "graph.client_secret");
    assert!(matches!(new_ring.reseal(&other, &sealed), Err(CryptoError::Tampered { .. })));
}

#[test]
fn key_rings_skip_repeated_keys() {
    let ring = ring(1).with_previous([key(2), key(1), key(2)]).unwrap();
    assert_eq!(ring.key_ids().collect::<Vec<_>>(), [key(1).id(), key(2).id()]);
}

#[test]
fn stored_envelopes_are_checked_for_shape() {
    let ok = SealedSecret::from_parts("k-00000000", &[0u8; 12], vec![0u8; 16]).unwrap();
    assert_eq!(ok.nonce, [0u8; 12]);
    let cases: [(&str, &[u8], usize, &str); 2] = [
        ("short nonce", &[0u8; 11], 16, "nonce is 11 bytes, not 12"),
        ("ciphertext without tag", &[0u8; 12], 15, "ciphertext is 15 bytes"),
    ];
    for (name, nonce, ct_len, needle) in cases {
        let err = SealedSecret::from_parts("k-00000000", nonce, vec![0u8; ct_len]).unwrap_err();
        assert!(matches!(err, CryptoError::Malformed { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }
}

#[test]
fn only_an_unknown_jwks_kid_is_retryable() {
    let errors = [
        CryptoError::MissingMasterKey,
        CryptoError::AmbiguousMasterKey,
        CryptoError::UnknownKey { key_id: "k-1".into() },
        CryptoError::Tampered { key_id: "k-1".into() },
        CryptoError::NotUtf8,
        CryptoError::Random(aws_lc_rs::error::Unspecified),
        CryptoError::NotificationSignatureInvalid,
        CryptoError::NotificationKeyUnwrap { certificate_id: "c".into() },
        CryptoError::UnknownEncryptionCertificate { id: "c".into(), thumbprint: "T".into() },
        CryptoError::InvalidValidationToken { reason: crate::TokenRejection::BadSignature },
    ];
    for e in errors {
        assert!(!e.is_retryable(), "{e:?}");
    }
    assert!(CryptoError::UnknownKid { kid: "k".into() }.is_retryable());
}
