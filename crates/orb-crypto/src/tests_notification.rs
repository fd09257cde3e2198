//! Rich-notification decryption and encryption, driven by Microsoft's published test vector.

use aws_lc_rs::digest;
use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::ExposeSecret;

use crate::{
    CryptoError, EncryptedContent, NotificationCertificate, NotificationPrivateKey,
    decrypt_notification_content, encrypt_notification_content, sha1_thumbprint,
};

/// A file of `testdata/graph-vectors/msgraph-core-rich-notification/` (origin: `testdata/README.md`).
macro_rules! vector_file {
    ($name:literal) => {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/graph-vectors/msgraph-core-rich-notification/",
            $name
        )
    };
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read test vector {path}: {e}"))
}

pub(crate) fn vector_content() -> EncryptedContent {
    serde_json::from_str(&read(vector_file!("encrypted-content.json"))).unwrap()
}

pub(crate) fn vector_key() -> NotificationPrivateKey {
    NotificationPrivateKey::from_pkcs8_pem(&read(vector_file!("derived/private-key.pkcs8.pem"))).unwrap()
}

pub(crate) fn vector_certificate() -> NotificationCertificate {
    let pem = read(vector_file!("derived/certificate.pem"));
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    NotificationCertificate::from_base64(&body).unwrap()
}

fn vector_plaintext() -> Vec<u8> {
    std::fs::read(vector_file!("derived/plaintext.json")).unwrap()
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&read(vector_file!("derived/expected.json"))).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a base64 field, XORs one byte at `index` (negative: from the end) and encodes it again, so the
/// field stays valid base64 and only the bytes change.
fn flip(field: &str, index: isize) -> String {
    let mut bytes = STANDARD.decode(field).unwrap();
    let i = if index < 0 { bytes.len() - index.unsigned_abs() } else { index as usize };
    bytes[i] ^= 0x01;
    STANDARD.encode(bytes)
}

#[test]
fn microsoft_vector_decrypts_to_the_expected_plaintext() {
    let plain = decrypt_notification_content(&vector_content(), &vector_key()).unwrap();
    let expected = expected();
    assert_eq!(plain, vector_plaintext());
    assert_eq!(plain.len() as u64, expected["plaintext_bytes"].as_u64().unwrap());
    assert_eq!(
        hex(digest::digest(&digest::SHA256, &plain).as_ref()),
        expected["plaintext_sha256_hex"].as_str().unwrap()
    );
    let json: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(json["etag"], "1625126194597");
    assert_eq!(json["body"]["content"], "Hello World");
    assert_eq!(json["body"]["contentType"], "text");
}

#[test]
fn microsoft_vector_intermediate_values_match() {
    let content = vector_content();
    let key = vector_key();
    assert_eq!(key.key_bits(), 4096);
    let k = key.unwrap_key(&STANDARD.decode(&content.data_key).unwrap()).expect("dataKey unwraps");
    assert_eq!(hex(&*k), read(vector_file!("derived/symmetric-key.hex")).trim());
    assert_eq!(hex(&crate::notification::iv_of(&k)), expected()["aes_iv_hex"].as_str().unwrap());
    let cert = vector_certificate();
    assert_eq!(cert.thumbprint(), "4B95353E086AD37196606ACF834A14532F03E6DB");
    assert_eq!(cert.thumbprint(), content.encryption_certificate_thumbprint);
    assert_eq!(cert.key_bits(), 4096);
    assert!(key.matches(&cert).unwrap());
}

#[test]
fn a_flipped_byte_anywhere_is_refused_with_the_right_error() {
    let original = vector_content();
    let key = vector_key();
    let sig = |e: &CryptoError| matches!(e, CryptoError::NotificationSignatureInvalid);
    let unwrap = |e: &CryptoError| matches!(e, CryptoError::NotificationKeyUnwrap { certificate_id } if certificate_id == "custom-id-for-testing");
    type Case = (&'static str, fn(&mut EncryptedContent), fn(&CryptoError) -> bool);
    let cases: [Case; 8] = [
        ("data, first byte (IV-dependent block)", |c| c.data = flip(&c.data, 0), sig),
        ("data, middle byte", |c| c.data = flip(&c.data, 700), sig),
        ("data, last byte (padding block)", |c| c.data = flip(&c.data, -1), sig),
        (
            "data, one block removed",
            |c| {
                let b = STANDARD.decode(&c.data).unwrap();
                c.data = STANDARD.encode(&b[..b.len() - 16]);
            },
            sig,
        ),
        ("dataSignature, first byte", |c| c.data_signature = flip(&c.data_signature, 0), sig),
        ("dataSignature, last byte", |c| c.data_signature = flip(&c.data_signature, -1), sig),
        ("dataKey, first byte", |c| c.data_key = flip(&c.data_key, 0), unwrap),
        ("dataKey, last byte", |c| c.data_key = flip(&c.data_key, -1), unwrap),
    ];
    for (name, tamper, expected) in cases {
        let mut content = original.clone();
        tamper(&mut content);
        assert_ne!(content, original, "{name}: the case must change something");
        let err = decrypt_notification_content(&content, &key).unwrap_err();
        assert!(expected(&err), "{name}: {err:?}");
        assert!(!err.is_retryable(), "{name}");
    }
    // The untouched vector still decrypts, so the failures above come from the flips.
    assert!(decrypt_notification_content(&original, &key).is_ok());
}

/// Builds content whose `data` is arbitrary bytes (not a valid CBC ciphertext) under a known key K, so
/// the test controls whether the HMAC matches.
fn garbage_content(cert: &NotificationCertificate, data: &[u8], sign_correctly: bool) -> EncryptedContent {
    let k = [0x42u8; crate::NOTIFICATION_KEY_LEN];
    let oaep = OaepPublicEncryptingKey::new(cert.public_encrypting_key()).unwrap();
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let n = oaep.encrypt(&OAEP_SHA1_MGF1SHA1, &k, &mut wrapped, None).unwrap().len();
    wrapped.truncate(n);
    let hmac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &k);
    let mut tag = aws_lc_rs::hmac::sign(&hmac_key, data).as_ref().to_vec();
    if !sign_correctly {
        tag[5] ^= 0x80;
    }
    EncryptedContent {
        data: STANDARD.encode(data),
        data_key: STANDARD.encode(wrapped),
        data_signature: STANDARD.encode(tag),
        encryption_certificate_id: "garbage".to_owned(),
        encryption_certificate_thumbprint: cert.thumbprint().to_owned(),
    }
}

#[test]
fn the_signature_is_checked_before_any_decryption() {
    let cert = vector_certificate();
    let key = vector_key();
    // 13 bytes: not a whole AES block, so any attempt to decrypt would fail on its own.
    let garbage = b"not a cipher!";
    let err = decrypt_notification_content(&garbage_content(&cert, garbage, false), &key).unwrap_err();
    assert!(matches!(err, CryptoError::NotificationSignatureInvalid), "{err:?}");
    // Same garbage with a valid HMAC gets past the signature and only then fails in AES-CBC: this proves
    // the error above came from the signature check, which runs first.
    let err = decrypt_notification_content(&garbage_content(&cert, garbage, true), &key).unwrap_err();
    assert!(matches!(err, CryptoError::NotificationDecrypt), "{err:?}");
    // Whole blocks with bad padding: same story.
    let blocks = [0xa5u8; 32];
    let err = decrypt_notification_content(&garbage_content(&cert, &blocks, false), &key).unwrap_err();
    assert!(matches!(err, CryptoError::NotificationSignatureInvalid), "{err:?}");
}

#[test]
fn another_certificates_key_does_not_unwrap() {
    let other = NotificationPrivateKey::generate().unwrap();
    let err = decrypt_notification_content(&vector_content(), &other).unwrap_err();
    assert!(matches!(err, CryptoError::NotificationKeyUnwrap { .. }), "{err:?}");
    assert!(err.to_string().contains("custom-id-for-testing"), "{err}");
    assert!(!other.matches(&vector_certificate()).unwrap());
}

#[test]
fn malformed_fields_are_named() {
    type Case = (fn(&mut EncryptedContent), &'static str);
    let cases: [Case; 6] = [
        (|c| c.data = "not base64!".to_owned(), "data"),
        (|c| c.data = String::new(), "data"),
        (|c| c.data_key = "%%%%".to_owned(), "dataKey"),
        (|c| c.data_signature = "abc".to_owned(), "dataSignature"),
        (|c| c.data_signature = STANDARD.encode([0u8; 31]), "dataSignature"),
        (|c| c.data_signature = STANDARD.encode([0u8; 64]), "dataSignature"),
    ];
    for (tamper, field) in cases {
        let mut content = vector_content();
        tamper(&mut content);
        let err = decrypt_notification_content(&content, &vector_key()).unwrap_err();
        assert!(
            matches!(&err, CryptoError::MalformedNotification { field: f, .. } if *f == field),
            "{field}: {err:?}"
        );
    }
}

#[test]
fn encrypted_like_graph_and_decrypted_again() {
    let cert = vector_certificate();
    let key = vector_key();
    let sizes = [0usize, 1, 15, 16, 17, 1297, 10_000];
    for size in sizes {
        let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let content = encrypt_notification_content(&plain, &cert, "cert-2026-07").unwrap();
        assert_eq!(content.encryption_certificate_id, "cert-2026-07");
        assert_eq!(content.encryption_certificate_thumbprint, "4B95353E086AD37196606ACF834A14532F03E6DB");
        let data = STANDARD.decode(&content.data).unwrap();
        assert_eq!(data.len(), (size / 16 + 1) * 16, "{size}: AES-CBC with PKCS#7 padding");
        assert_eq!(STANDARD.decode(&content.data_key).unwrap().len(), 512, "{size}: RSA-4096 OAEP");
        // The signature is HMAC-SHA256 under K over the ciphertext bytes, and the IV is K[0..16].
        let k = key.unwrap_key(&STANDARD.decode(&content.data_key).unwrap()).unwrap();
        let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &*k), &data);
        assert_eq!(content.data_signature, STANDARD.encode(tag.as_ref()), "{size}");
        assert_eq!(decrypt_notification_content(&content, &key).unwrap(), plain, "{size}");
    }
    // A fresh key every time.
    let a = encrypt_notification_content(b"same", &cert, "x").unwrap();
    let b = encrypt_notification_content(b"same", &cert, "x").unwrap();
    assert_ne!(a.data_key, b.data_key);
    assert_ne!(a.data, b.data);
}

#[test]
fn encryption_with_a_2048_bit_key_round_trips() {
    let ring_entry = crate::tests_certs::fresh_certificate("rt");
    let cert = ring_entry.certificate();
    assert_eq!(cert.key_bits(), 2048);
    let content = encrypt_notification_content(b"{\"subject\":\"Room 1\"}", cert, ring_entry.id()).unwrap();
    assert_eq!(STANDARD.decode(&content.data_key).unwrap().len(), 256);
    let plain = decrypt_notification_content(&content, ring_entry.private_key()).unwrap();
    assert_eq!(plain, b"{\"subject\":\"Room 1\"}");
    // And not with the vector's key.
    let err = decrypt_notification_content(&content, &vector_key()).unwrap_err();
    assert!(matches!(err, CryptoError::NotificationKeyUnwrap { .. }), "{err:?}");
}

#[test]
fn certificates_are_parsed_strictly() {
    let good = vector_certificate();
    let der = good.der().to_vec();
    assert_eq!(sha1_thumbprint(&der), good.thumbprint());
    assert_eq!(NotificationCertificate::from_base64(&good.to_base64()).unwrap().der(), &der[..]);
    let mut trailing = der.clone();
    trailing.push(0);
    let mut wrong_outer_tag = der.clone();
    wrong_outer_tag[0] = 0x31;
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("truncated", der[..der.len() / 2].to_vec()),
        ("trailing byte", trailing),
        ("not a SEQUENCE", wrong_outer_tag),
        ("a private key instead", STANDARD.decode(b"MAMCAQA=").unwrap()),
    ];
    for (name, bytes) in cases {
        let err = NotificationCertificate::from_der(bytes).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidCertificate { .. }), "{name}: {err:?}");
    }
    let err = NotificationCertificate::from_base64("not base64 at all!").unwrap_err();
    assert!(matches!(err, CryptoError::InvalidCertificate { .. }), "{err:?}");
}

#[test]
fn private_keys_export_as_pkcs8_and_never_show_in_debug() {
    let key = vector_key();
    let pkcs8 = key.to_pkcs8_der().unwrap();
    let again = NotificationPrivateKey::from_pkcs8_der(pkcs8.expose_secret()).unwrap();
    assert!(again.matches(&vector_certificate()).unwrap());
    assert_eq!(decrypt_notification_content(&vector_content(), &again).unwrap(), vector_plaintext());
    let debug = format!("{key:?}");
    assert_eq!(debug, "NotificationPrivateKey { key_bits: 4096, .. }");
    for bad in [&b""[..], b"\x30\x03\x02\x01\x00"] {
        let err = NotificationPrivateKey::from_pkcs8_der(bad).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidPrivateKey { .. }), "{err:?}");
    }
    let err = NotificationPrivateKey::from_pkcs8_pem(
        "-----BEGIN RSA PRIVATE KEY-----\n-----END RSA PRIVATE KEY-----",
    )
    .unwrap_err();
    assert!(matches!(err, CryptoError::InvalidPrivateKey { .. }), "{err:?}");
}

#[test]
fn encrypted_content_uses_graphs_field_names() {
    let content = vector_content();
    let json = serde_json::to_value(&content).unwrap();
    let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["data", "dataKey", "dataSignature", "encryptionCertificateId", "encryptionCertificateThumbprint"]
    );
    // The synthetic collection wraps the same content.
    let collection: serde_json::Value =
        serde_json::from_str(&read(vector_file!("synthetic/notification-collection.synthetic.json")))
            .unwrap();
    let inner: EncryptedContent =
        serde_json::from_value(collection["value"][0]["encryptedContent"].clone()).unwrap();
    assert_eq!(inner, content);
}
