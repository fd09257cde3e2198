//! `validationTokens` JWTs: issued by the emulator's signer, checked by ORB's validator.

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, TimeZone, Utc};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::{
    CryptoError, GRAPH_NOTIFICATION_PUBLISHER_APP_ID, IssuerFormat, Jwks, TokenRejection,
    ValidationTokenClaims, ValidationTokenExpectations, ValidationTokenSigner, validate_validation_token,
};

const APP: &str = "11111111-2222-3333-4444-555555555555";
const OTHER_APP: &str = "99999999-2222-3333-4444-555555555555";
const TENANT: &str = "8afd02d6-ebdd-4270-a515-c749898ea5c5";
const OTHER_TENANT: &str = "00000000-ebdd-4270-a515-c749898ea5c5";

fn signer() -> &'static ValidationTokenSigner {
    static SIGNER: OnceLock<ValidationTokenSigner> = OnceLock::new();
    SIGNER.get_or_init(|| ValidationTokenSigner::generate("emulator-key-1").unwrap())
}

/// A second key that claims the same kid (an attacker's, or a rotated key the JWKS does not list).
fn impostor() -> &'static ValidationTokenSigner {
    static SIGNER: OnceLock<ValidationTokenSigner> = OnceLock::new();
    SIGNER.get_or_init(|| ValidationTokenSigner::generate("emulator-key-1").unwrap())
}

fn issued() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 3, 10, 0, 0).unwrap()
}

fn now() -> DateTime<Utc> {
    issued() + Duration::hours(1)
}

fn expected() -> ValidationTokenExpectations {
    ValidationTokenExpectations::new(APP, TENANT)
}

fn claims() -> Map<String, Value> {
    ValidationTokenClaims::graph(APP, TENANT, issued()).to_json()
}

fn with(mut claims: Map<String, Value>, changes: &[(&str, Value)]) -> Map<String, Value> {
    for (name, value) in changes {
        if value.is_null() {
            claims.remove(*name);
        } else {
            claims.insert((*name).to_owned(), value.clone());
        }
    }
    claims
}

fn sign(claims: &Map<String, Value>) -> String {
    signer().sign_claims(claims).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn rejection(result: Result<crate::ValidatedToken, CryptoError>) -> TokenRejection {
    match result {
        Err(CryptoError::InvalidValidationToken { reason }) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn tokens_as_graph_issues_them_are_accepted() {
    let exp = issued() + Duration::hours(8);
    for format in [IssuerFormat::V1, IssuerFormat::V2] {
        let claims = ValidationTokenClaims { format, ..ValidationTokenClaims::graph(APP, TENANT, issued()) };
        let token = signer().issue(&claims).unwrap();
        let ok = validate_validation_token(&token, &signer().jwks(), &expected(), now()).unwrap();
        assert_eq!(ok.tenant_id, TENANT, "{format:?}");
        assert_eq!(ok.app_id, APP);
        assert_eq!(ok.kid, "emulator-key-1");
        assert_eq!(ok.expires_at, exp);
        let json = claims.to_json();
        let publisher_claim = if format == IssuerFormat::V1 { "appid" } else { "azp" };
        assert_eq!(json[publisher_claim], GRAPH_NOTIFICATION_PUBLISHER_APP_ID);
    }
    // Several apps and tenants, `aud` as an array, GUIDs in another letter case.
    let expected = ValidationTokenExpectations {
        app_ids: vec![OTHER_APP.to_owned(), APP.to_owned()],
        tenant_ids: vec![OTHER_TENANT.to_owned(), TENANT.to_uppercase()],
        ..expected()
    };
    let token = sign(&with(claims(), &[("aud", json!(["api://something", APP.to_uppercase()]))]));
    let ok = validate_validation_token(&token, &signer().jwks(), &expected, now()).unwrap();
    assert_eq!((ok.app_id.as_str(), ok.tenant_id.as_str()), (APP, TENANT.to_uppercase().as_str()));
}

#[test]
fn claims_that_are_not_for_us_are_refused() {
    let exp = (issued() + Duration::hours(8)).timestamp();
    type Check = fn(&TokenRejection) -> bool;
    let cases: Vec<(&str, Map<String, Value>, Check)> = vec![
        (
            "other tenant",
            with(claims(), &[("iss", json!(format!("https://sts.windows.net/{OTHER_TENANT}/")))]),
            |r| matches!(r, TokenRejection::WrongIssuer { .. }),
        ),
        (
            "foreign issuer",
            with(claims(), &[("iss", json!(format!("https://evil.example/{TENANT}/")))]),
            |r| matches!(r, TokenRejection::WrongIssuer { .. }),
        ),
        (
            "issuer with a path",
            with(claims(), &[("iss", json!(format!("https://sts.windows.net/{TENANT}/x/")))]),
            |r| matches!(r, TokenRejection::WrongIssuer { .. }),
        ),
        (
            "v2 issuer without suffix",
            with(claims(), &[("iss", json!(format!("https://login.microsoftonline.com/{TENANT}")))]),
            |r| matches!(r, TokenRejection::WrongIssuer { .. }),
        ),
        ("no issuer", with(claims(), &[("iss", Value::Null)]), |r| {
            matches!(r, TokenRejection::MissingClaim { claim: "iss" })
        }),
        ("other audience", with(claims(), &[("aud", json!(OTHER_APP))]), |r| {
            matches!(r, TokenRejection::WrongAudience { .. })
        }),
        ("no audience", with(claims(), &[("aud", Value::Null)]), |r| {
            matches!(r, TokenRejection::MissingClaim { claim: "aud" })
        }),
        ("audience a number", with(claims(), &[("aud", json!(7))]), |r| {
            matches!(r, TokenRejection::Malformed { .. })
        }),
        (
            "other publisher (appid)",
            with(claims(), &[("appid", json!(OTHER_APP))]),
            |r| matches!(r, TokenRejection::WrongPublisher { app_id } if app_id == OTHER_APP),
        ),
        (
            "other publisher (azp)",
            with(claims(), &[("appid", Value::Null), ("azp", json!(OTHER_APP))]),
            |r| matches!(r, TokenRejection::WrongPublisher { .. }),
        ),
        ("azp wrong while appid right", with(claims(), &[("azp", json!(OTHER_APP))]), |r| {
            matches!(r, TokenRejection::WrongPublisher { .. })
        }),
        ("no publisher", with(claims(), &[("appid", Value::Null)]), |r| {
            matches!(r, TokenRejection::MissingClaim { claim: "azp/appid" })
        }),
        ("no expiry", with(claims(), &[("exp", Value::Null)]), |r| {
            matches!(r, TokenRejection::MissingClaim { claim: "exp" })
        }),
        ("expiry as text", with(claims(), &[("exp", json!(exp.to_string()))]), |r| {
            matches!(r, TokenRejection::Malformed { .. })
        }),
        ("expired", with(claims(), &[("exp", json!((now() - Duration::minutes(5)).timestamp()))]), |r| {
            matches!(r, TokenRejection::Expired { .. })
        }),
        (
            "not yet valid",
            with(claims(), &[("nbf", json!((now() + Duration::minutes(6)).timestamp()))]),
            |r| matches!(r, TokenRejection::NotYetValid { .. }),
        ),
    ];
    for (name, claims, check) in cases {
        let reason =
            rejection(validate_validation_token(&sign(&claims), &signer().jwks(), &expected(), now()));
        assert!(check(&reason), "{name}: {reason:?}");
        let err = CryptoError::InvalidValidationToken { reason };
        assert!(!err.is_retryable(), "{name}");
        assert!(err.to_string().contains("treat the notification POST as forged"), "{name}: {err}");
    }
}

#[test]
fn expiry_and_not_before_allow_the_clock_skew_exactly() {
    let exp = issued() + Duration::hours(8);
    let token = signer().issue(&ValidationTokenClaims::graph(APP, TENANT, issued())).unwrap();
    let check = |at: DateTime<Utc>| validate_validation_token(&token, &signer().jwks(), &expected(), at);
    assert!(check(exp + Duration::minutes(5) - Duration::seconds(1)).is_ok());
    assert!(
        matches!(rejection(check(exp + Duration::minutes(5))), TokenRejection::Expired { expired_at } if expired_at == exp)
    );
    assert!(check(issued() - Duration::minutes(5)).is_ok());
    let nbf = issued();
    assert!(matches!(
        rejection(check(issued() - Duration::minutes(5) - Duration::seconds(1))),
        TokenRejection::NotYetValid { not_before } if not_before == nbf
    ));
    let strict = ValidationTokenExpectations { clock_skew: Duration::zero(), ..expected() };
    assert!(validate_validation_token(&token, &signer().jwks(), &strict, exp).is_err());
}

#[test]
fn bad_signatures_are_refused() {
    let good = signer().issue(&ValidationTokenClaims::graph(APP, TENANT, issued())).unwrap();
    let jwks = signer().jwks();
    assert!(validate_validation_token(&good, &jwks, &expected(), now()).is_ok());
    let (header, rest) = good.split_once('.').unwrap();
    let (claims_b64, signature) = rest.split_once('.').unwrap();

    let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    sig[17] ^= 0x01;
    let flipped_signature = format!("{header}.{claims_b64}.{}", URL_SAFE_NO_PAD.encode(&sig));
    // Claims swapped after signing: another audience under the original signature.
    let other_claims = b64(&Value::Object(with(claims(), &[("aud", json!(OTHER_APP))])));
    let swapped_claims = format!("{header}.{other_claims}.{signature}");
    // Signed by another key that uses the same kid.
    let impostor = impostor().issue(&ValidationTokenClaims::graph(APP, TENANT, issued())).unwrap();
    let truncated_signature =
        format!("{header}.{claims_b64}.{}", URL_SAFE_NO_PAD.encode(&sig[..sig.len() - 6]));

    for (name, token) in [
        ("flipped signature byte", flipped_signature),
        ("claims swapped", swapped_claims),
        ("another key, same kid", impostor),
        ("truncated signature", truncated_signature),
    ] {
        let reason = rejection(validate_validation_token(&token, &jwks, &expected(), now()));
        assert_eq!(reason, TokenRejection::BadSignature, "{name}");
    }
}

#[test]
fn only_rs256_is_accepted() {
    let body = b64(&Value::Object(claims()));
    let good = sign(&claims());
    let signature = good.rsplit('.').next().unwrap();
    for alg in ["none", "HS256", "RS384", "PS256", ""] {
        let header = b64(&json!({ "typ": "JWT", "alg": alg, "kid": "emulator-key-1" }));
        for sig in ["", signature] {
            let token = format!("{header}.{body}.{sig}");
            let reason = rejection(validate_validation_token(&token, &signer().jwks(), &expected(), now()));
            assert!(
                matches!(&reason, TokenRejection::UnsupportedAlgorithm { alg: a } if a == alg),
                "{alg}: {reason:?}"
            );
        }
    }
    // A JWKS entry for the kid that declares another algorithm is not used for RS256.
    let mut jwks = signer().jwks();
    jwks.keys[0].alg = Some("RS512".to_owned());
    let reason = rejection(validate_validation_token(&good, &jwks, &expected(), now()));
    assert!(matches!(reason, TokenRejection::UnsupportedAlgorithm { .. }), "{reason:?}");
}

#[test]
fn an_unknown_kid_asks_for_a_jwks_refetch() {
    let rotated = ValidationTokenSigner::generate("emulator-key-2").unwrap();
    let token = rotated.issue(&ValidationTokenClaims::graph(APP, TENANT, issued())).unwrap();
    let cached = signer().jwks();
    let err = validate_validation_token(&token, &cached, &expected(), now()).unwrap_err();
    assert!(matches!(&err, CryptoError::UnknownKid { kid } if kid == "emulator-key-2"), "{err:?}");
    assert!(err.is_retryable(), "the caller refetches the JWKS and tries again");
    // After the refetch the new key is there (alongside the old one) and the token validates.
    let refreshed = Jwks::from_json(cached.merged(rotated.jwks()).to_json().as_bytes()).unwrap();
    assert_eq!(refreshed.keys.len(), 2);
    assert_eq!(
        validate_validation_token(&token, &refreshed, &expected(), now()).unwrap().kid,
        "emulator-key-2"
    );
    // Keys for another use, or not RSA, are not candidates.
    let mut enc_only = rotated.jwks();
    enc_only.keys[0].use_ = Some("enc".to_owned());
    assert!(matches!(
        validate_validation_token(&token, &enc_only, &expected(), now()),
        Err(CryptoError::UnknownKid { .. })
    ));
    // A key without modulus is unusable, not unknown.
    let mut broken = rotated.jwks();
    broken.keys[0].n = None;
    let reason = rejection(validate_validation_token(&token, &broken, &expected(), now()));
    assert!(matches!(reason, TokenRejection::UnusableKey { .. }), "{reason:?}");
}

#[test]
fn malformed_tokens_are_refused() {
    let good = sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let placeholder: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/graph-vectors/msgraph-core-rich-notification/synthetic/notification-collection.synthetic.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let cases = [
        ("empty", String::new()),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
        ("four parts", format!("{good}.x")),
        ("header not base64url", format!("!!.{}.{}", parts[1], parts[2])),
        ("header not an object", format!("{}.{}.{}", b64(&json!([1])), parts[1], parts[2])),
        ("padded signature", format!("{good}==")),
        ("no kid", format!("{}.{}.{}", b64(&json!({"alg": "RS256"})), parts[1], parts[2])),
        // The reference's synthetic collection carries an unsigned placeholder that must fail.
        ("synthetic placeholder", placeholder["validationTokens"][0].as_str().unwrap().to_owned()),
    ];
    for (name, token) in cases {
        let reason = rejection(validate_validation_token(&token, &signer().jwks(), &expected(), now()));
        assert!(matches!(reason, TokenRejection::Malformed { .. }), "{name}: {reason:?}");
    }
    // Claims that are not JSON, under a valid signature, are refused after the signature check.
    let header = parts[0];
    let junk_claims = URL_SAFE_NO_PAD.encode("not json");
    let reason = rejection(validate_validation_token(
        &format!("{header}.{junk_claims}.{}", parts[2]),
        &signer().jwks(),
        &expected(),
        now(),
    ));
    assert_eq!(reason, TokenRejection::BadSignature, "signature first, then claims");
}

#[test]
fn the_jwks_is_what_a_jwks_endpoint_serves() {
    let json: Value = serde_json::from_str(&signer().jwks().to_json()).unwrap();
    let key = &json["keys"][0];
    let mut members: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(
        (&key["kty"], &key["use"], &key["alg"], &key["kid"]),
        (&json!("RSA"), &json!("sig"), &json!("RS256"), &json!("emulator-key-1"))
    );
    assert_eq!(key["e"], "AQAB", "exponent 65537");
    assert_eq!(URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap().len(), 256, "RSA-2048 modulus");

    // Microsoft's documents carry more members (x5t, x5c, issuer) and no alg; they parse and are found.
    let microsoft_like = json!({ "keys": [
        { "kty": "RSA", "use": "sig", "kid": "abc", "x5t": "abc", "n": key["n"], "e": "AQAB",
          "x5c": ["MIIC..."], "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0" }
    ]});
    let parsed = Jwks::from_json(microsoft_like.to_string().as_bytes()).unwrap();
    assert!(parsed.find("abc").is_some());
    for bad in [&b"{}"[..], b"not json", b"{\"keys\":{}}"] {
        assert!(matches!(Jwks::from_json(bad), Err(CryptoError::InvalidJwks { .. })));
    }

    // A header naming the key only by x5t finds it too.
    let mut claims_only = b64(&Value::Object(claims()));
    claims_only.insert(0, '.');
    let header = b64(&json!({ "alg": "RS256", "x5t": "abc" }));
    let err = validate_validation_token(&format!("{header}{claims_only}.AAAA"), &parsed, &expected(), now());
    assert_eq!(rejection(err), TokenRejection::BadSignature, "found by x5t, then the signature fails");
}

#[test]
fn signer_keys_persist_and_stay_out_of_debug() {
    let pkcs8 = signer().to_pkcs8_der().unwrap();
    let restored = ValidationTokenSigner::from_pkcs8_der("emulator-key-1", pkcs8.expose_secret()).unwrap();
    assert_eq!(restored.jwk(), signer().jwk());
    let token = restored.issue(&ValidationTokenClaims::graph(APP, TENANT, issued())).unwrap();
    assert!(validate_validation_token(&token, &signer().jwks(), &expected(), now()).is_ok());
    assert_eq!(format!("{restored:?}"), "ValidationTokenSigner { kid: \"emulator-key-1\", .. }");
    assert!(matches!(
        ValidationTokenSigner::from_pkcs8_der("k", b"junk"),
        Err(CryptoError::InvalidPrivateKey { .. })
    ));
}
