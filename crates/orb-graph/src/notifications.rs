//! What Graph POSTs to ORB's webhooks, and how ORB checks it (reference §2.4, §2.5, §3, §4, §5).
//!
//! The steps are split so the webhook intake stays fast (design §3) and everything here is pure:
//! 1. **Intake** (in the HTTP handler): [`validation_token`] answers the handshake; otherwise
//!    [`parse_notification_collection`] (size and shape) and [`screen_notifications`] (known subscription,
//!    `clientState` compared in constant time) decide what is persisted.
//! 2. **Worker**: [`check_validation_tokens`] (or [`crate::JwksCache::check_validation_tokens`], which
//!    fetches and refreshes the JWKS) validates every `validationTokens` JWT; then [`decrypt_resource`] /
//!    [`decrypt_event`] open the rich content with ORB's [`CertificateRing`] (HMAC checked before
//!    decryption, in orb-crypto).
//!
//! ## Invariants
//! - A `clientState` is compared with `aws_lc_rs::constant_time::verify_slices_are_equal`, never `==`.
//! - A POST with encrypted content or validation tokens is accepted only if every token validates and every
//!   tenant of its items is covered by a valid token (as the .NET and Java SDKs do).
//! - Nothing here reads the clock: `now` is an argument.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use chrono::{DateTime, Utc};
use orb_crypto::{
    CertificateRing, CryptoError, EncryptedContent, Jwks, ValidatedToken, ValidationTokenExpectations,
    validate_validation_token,
};
use secrecy::{ExposeSecret, SecretString};

use crate::GraphError;
use crate::model::{
    ChangeNotification, ChangeNotificationCollection, ChangeNotificationEncryptedContent, Event,
};

/// Largest notification POST body ORB reads (Graph batches notifications, but a MiB is far above what one
/// POST of Outlook events carries).
pub const MAX_NOTIFICATION_BODY: usize = 1 << 20;

/// The token to echo when the request is Graph's validation handshake: the URL-decoded
/// `validationToken` of the raw query string. Answer it with `200`, `text/plain` and exactly this text.
pub fn validation_token(raw_query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(raw_query?.as_bytes())
        .find(|(k, _)| k == "validationToken")
        .map(|(_, v)| v.into_owned())
}

/// Reads a notification POST body (`changeNotificationCollection`), refusing oversized or malformed ones.
pub fn parse_notification_collection(body: &[u8]) -> Result<ChangeNotificationCollection, GraphError> {
    if body.len() > MAX_NOTIFICATION_BODY {
        return Err(refused(format!("the body has {} bytes, more than {MAX_NOTIFICATION_BODY}", body.len())));
    }
    serde_json::from_slice(body)
        .map_err(|e| refused(format!("the body is not a changeNotificationCollection ({e})")))
}

fn refused(reason: String) -> GraphError {
    GraphError::NotificationRefused { reason, source: None }
}

/// Whether a received `clientState` equals the subscription's, compared in constant time.
pub fn client_state_matches(received: Option<&str>, expected: &SecretString) -> bool {
    received
        .is_some_and(|r| verify_slices_are_equal(r.as_bytes(), expected.expose_secret().as_bytes()).is_ok())
}

/// Why the intake refused one item of a POST (the POST itself is still answered `202`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The item names no subscription, or one ORB does not have.
    UnknownSubscription,
    /// The `clientState` is missing or differs from the subscription's.
    ClientStateMismatch,
}

/// One item after the intake's checks.
#[derive(Debug, Clone, Copy)]
pub struct Screened<'a> {
    /// The item.
    pub item: &'a ChangeNotification,
    /// `Ok` if it may be persisted.
    pub verdict: Result<(), Refusal>,
}

/// The intake's per-item check: the subscription is ORB's (`client_state_of` returns its `clientState`)
/// and the item's `clientState` matches it in constant time. Lifecycle items are checked the same way.
pub fn screen_notifications<'a>(
    collection: &'a ChangeNotificationCollection,
    client_state_of: impl Fn(&str) -> Option<SecretString>,
) -> Vec<Screened<'a>> {
    collection
        .value
        .iter()
        .map(|item| {
            let verdict = match item.subscription_id.as_deref().and_then(&client_state_of) {
                None => Err(Refusal::UnknownSubscription),
                Some(expected) if client_state_matches(item.client_state.as_deref(), &expected) => Ok(()),
                Some(_) => Err(Refusal::ClientStateMismatch),
            };
            Screened { item, verdict }
        })
        .collect()
}

/// Whether a POST must carry valid `validationTokens`: it has some, or an item has encrypted content
/// (the .NET SDK's rule, reference §3.5).
pub fn needs_validation_tokens(collection: &ChangeNotificationCollection) -> bool {
    collection.validation_tokens.as_ref().is_some_and(|t| !t.is_empty())
        || collection.value.iter().any(|i| i.encrypted_content.is_some())
}

/// Validates every `validationTokens` JWT of a POST against `jwks` at `now`, and that every tenant of its
/// items is covered by a valid token. Returns the validated tokens (empty when none are needed).
///
/// A token signed by a key `jwks` lacks is [`GraphError::UnknownSigningKey`]: refetch the JWKS and call
/// again once. Every other failure is [`GraphError::NotificationRefused`] for the whole POST.
pub fn check_validation_tokens(
    collection: &ChangeNotificationCollection,
    jwks: &Jwks,
    expected: &ValidationTokenExpectations,
    now: DateTime<Utc>,
) -> Result<Vec<ValidatedToken>, GraphError> {
    if !needs_validation_tokens(collection) {
        return Ok(Vec::new());
    }
    let tokens = collection.validation_tokens.as_deref().unwrap_or_default();
    if tokens.is_empty() {
        return Err(refused("it has encrypted content but no validationTokens".to_owned()));
    }
    let mut valid = Vec::with_capacity(tokens.len());
    for token in tokens {
        match validate_validation_token(token, jwks, expected, now) {
            Ok(v) => valid.push(v),
            Err(CryptoError::UnknownKid { kid }) => return Err(GraphError::UnknownSigningKey { kid }),
            Err(e) => {
                return Err(GraphError::NotificationRefused {
                    reason: "a validationToken is invalid".to_owned(),
                    source: Some(e),
                });
            }
        }
    }
    for tenant in collection.value.iter().filter_map(|i| i.tenant_id.as_deref()) {
        if !valid.iter().any(|v| v.tenant_id.eq_ignore_ascii_case(tenant)) {
            return Err(refused(format!("no valid validationToken covers tenant {tenant}")));
        }
    }
    Ok(valid)
}

/// The wire `encryptedContent` as orb-crypto's type.
pub fn encrypted_content(wire: &ChangeNotificationEncryptedContent) -> EncryptedContent {
    EncryptedContent {
        data: wire.data.clone(),
        data_key: wire.data_key.clone(),
        data_signature: wire.data_signature.clone(),
        encryption_certificate_id: wire.encryption_certificate_id.clone(),
        encryption_certificate_thumbprint: wire.encryption_certificate_thumbprint.clone(),
    }
}

/// orb-crypto's `EncryptedContent` as the wire type (the emulator sends it).
pub fn wire_encrypted_content(content: EncryptedContent) -> ChangeNotificationEncryptedContent {
    ChangeNotificationEncryptedContent {
        data: content.data,
        data_key: content.data_key,
        data_signature: content.data_signature,
        encryption_certificate_id: content.encryption_certificate_id,
        encryption_certificate_thumbprint: content.encryption_certificate_thumbprint,
    }
}

/// The decrypted resource JSON of a rich notification, or `None` when the item carries no
/// `encryptedContent` (basic notifications; possibly `deleted` ones, reference U4): fetch it then.
pub fn decrypt_resource(
    item: &ChangeNotification,
    ring: &CertificateRing,
) -> Result<Option<serde_json::Value>, GraphError> {
    let Some(wire) = &item.encrypted_content else { return Ok(None) };
    let plain = ring.decrypt(&encrypted_content(wire)).map_err(|e| GraphError::NotificationRefused {
        reason: "its encrypted content does not open".to_owned(),
        source: Some(e),
    })?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|source| GraphError::Decode { what: "a decrypted notification resource", source })
}

/// [`decrypt_resource`] read as an event (unknown fields and annotations are tolerated).
pub fn decrypt_event(item: &ChangeNotification, ring: &CertificateRing) -> Result<Option<Event>, GraphError> {
    match decrypt_resource(item, ring)? {
        None => Ok(None),
        Some(json) => serde_json::from_value(json)
            .map(Some)
            .map_err(|source| GraphError::Decode { what: "a decrypted event", source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn collection(items: serde_json::Value) -> ChangeNotificationCollection {
        serde_json::from_value(json!({ "value": items })).unwrap()
    }

    #[test]
    fn handshake_token_is_url_decoded() {
        let check = |query: Option<&str>, want: Option<&str>| {
            assert_eq!(validation_token(query).as_deref(), want, "{query:?}");
        };
        check(Some("validationToken=Validation%3A+Testing%20client"), Some("Validation: Testing client"));
        check(Some("tenant=contoso&validationToken=a%2Bb"), Some("a+b"));
        check(Some("tenant=contoso"), None);
        check(None, None);
    }

    #[test]
    fn screening_checks_subscription_and_client_state() {
        let body = collection(json!([
            {"subscriptionId": "s1", "clientState": "right", "changeType": "created", "resource": "r"},
            {"subscriptionId": "s1", "clientState": "wrong", "changeType": "created", "resource": "r"},
            {"subscriptionId": "s1", "changeType": "created", "resource": "r"},
            {"subscriptionId": "s2", "clientState": "right", "changeType": "created", "resource": "r"},
            {"clientState": "right", "lifecycleEvent": "missed"},
            {"subscriptionId": "s1", "clientState": "right", "lifecycleEvent": "missed"}
        ]));
        let known = |id: &str| (id == "s1").then(|| SecretString::from("right"));
        let verdicts: Vec<_> = screen_notifications(&body, known).into_iter().map(|s| s.verdict).collect();
        assert_eq!(
            verdicts,
            vec![
                Ok(()),
                Err(Refusal::ClientStateMismatch),
                Err(Refusal::ClientStateMismatch),
                Err(Refusal::UnknownSubscription),
                Err(Refusal::UnknownSubscription),
                Ok(()),
            ]
        );
    }

    #[test]
    fn oversized_or_malformed_bodies_are_refused() {
        assert!(parse_notification_collection(b"{\"value\": []}").is_ok());
        let check = |body: &[u8], says: &str| match parse_notification_collection(body) {
            Err(e @ GraphError::NotificationRefused { .. }) => assert!(e.to_string().contains(says), "{e}"),
            other => panic!("{other:?}"),
        };
        check(b"{\"values\": []}", "not a changeNotificationCollection");
        check(&vec![b' '; MAX_NOTIFICATION_BODY + 1], "more than");
    }

    #[test]
    fn tokens_are_required_only_with_encrypted_content_or_tokens() {
        let basic = collection(json!([{"subscriptionId": "s", "tenantId": "t", "changeType": "created"}]));
        let jwks = Jwks { keys: vec![] };
        let expected = ValidationTokenExpectations::new("app", "t");
        let now = DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&Utc);
        assert!(check_validation_tokens(&basic, &jwks, &expected, now).unwrap().is_empty());
        let rich = collection(json!([{"subscriptionId": "s", "tenantId": "t", "changeType": "created",
            "encryptedContent": {"data": "", "dataKey": "", "dataSignature": "",
            "encryptionCertificateId": "c", "encryptionCertificateThumbprint": "T"}}]));
        let err = check_validation_tokens(&rich, &jwks, &expected, now).unwrap_err();
        assert!(err.to_string().contains("no validationTokens"), "{err}");
    }
}
