//! Change-notification subscriptions (reference §2): create (basic or rich), renew, reauthorize, delete,
//! get and list, plus the helpers a caller needs to build a request (random `clientState`, the events
//! resource with `$select`, an expiry inside Graph's lifetime limits).
//!
//! ## Invariants
//! - `clientState` is a [`SecretString`] everywhere outside the wire body; what Graph echoes back in a
//!   create response is removed before the subscription is returned.
//! - Expiries are computed from the injected clock, never from the wall clock.
//! - A create that fails Graph's validation handshake is [`GraphError::EndpointValidation`].

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use orb_core::{CorrelationId, EmailAddress};
use orb_crypto::EncryptionCertificate;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use crate::model::{
    CLIENT_STATE_MAX_LEN, ChangeType, EVENT_RICH_SUBSCRIPTION_MAX_MINUTES, EVENT_SUBSCRIPTION_MAX_MINUTES,
    SUBSCRIPTION_MIN_LIFETIME_MINUTES, Subscription,
};
use crate::{GraphClient, GraphError};

/// The event properties rich notifications carry: what ORB needs to make an observation of a booking
/// (including `lastModifiedDateTime`, the watermark that makes reordered notifications stale), never
/// `body` (§2.3 of the design: `$select` without `body`).
pub const RICH_EVENT_SELECT: &[&str] = &[
    "subject",
    "start",
    "end",
    "organizer",
    "attendees",
    "location",
    "locations",
    "isCancelled",
    "type",
    "seriesMasterId",
    "iCalUId",
    "lastModifiedDateTime",
    "changeKey",
    "originalStart",
    "originalStartTimeZone",
    "isOrganizer",
    "responseStatus",
    "transactionId",
];

/// [`RICH_EVENT_SELECT`], without `subject` when `with_subject` is false (the subject policy `drop`: Graph
/// then never sends ORB a subject, not even encrypted).
pub fn rich_event_select(with_subject: bool) -> Vec<&'static str> {
    RICH_EVENT_SELECT.iter().copied().filter(|f| with_subject || *f != "subject").collect()
}

/// Rich notifications: Graph encrypts the `$select`ed resource with this certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RichNotifications {
    /// Standard base64 of the certificate's DER (public part only).
    pub certificate_base64: String,
    /// ORB's id of the certificate (≤ 128 characters), echoed in every `encryptedContent`.
    pub certificate_id: String,
}

impl RichNotifications {
    /// Rich notifications encrypted for `certificate` (normally the ring's current one).
    pub fn for_certificate(certificate: &EncryptionCertificate) -> Self {
        Self {
            certificate_base64: certificate.certificate_base64(),
            certificate_id: certificate.id().to_owned(),
        }
    }
}

/// What to subscribe to. `Debug` redacts `client_state`.
#[derive(Debug, Clone)]
pub struct SubscriptionRequest {
    /// e.g. `users/room1@contoso.com/events` (see [`events_resource`]).
    pub resource: String,
    /// Which changes to hear about (at least one).
    pub change_types: Vec<ChangeType>,
    /// ORB's webhook (HTTPS in production).
    pub notification_url: Url,
    /// ORB's lifecycle webhook; can only be set here, not by a later PATCH.
    pub lifecycle_notification_url: Option<Url>,
    /// Random secret (≥ 128 bits, ≤ 128 characters) echoed in every notification; see
    /// [`generate_client_state`].
    pub client_state: SecretString,
    /// Expiry; see [`subscription_expiry`].
    pub expiration: DateTime<Utc>,
    /// `Some` for rich notifications (`includeResourceData`); the resource then needs a `$select`.
    pub rich: Option<RichNotifications>,
}

/// A fresh `clientState`: 256 bits from the system generator, base64url (43 characters).
pub fn generate_client_state() -> Result<SecretString, GraphError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| GraphError::Config {
        reason: "the system random generator failed; ORB cannot make a clientState".to_owned(),
    })?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
}

/// The events resource of `mailbox`, with `$select` of `select` when given (required for rich
/// notifications; never select `body`).
pub fn events_resource(mailbox: &EmailAddress, select: Option<&[&str]>) -> String {
    match select {
        Some(fields) if !fields.is_empty() => format!("users/{mailbox}/events?$select={}", fields.join(",")),
        _ => format!("users/{mailbox}/events"),
    }
}

/// The expiry to ask for: `now + min(desired, Graph's maximum) - margin`, but never below Graph's minimum
/// of 45 minutes (reference §2.2: asking beyond the maximum fails).
pub fn subscription_expiry(
    now: DateTime<Utc>,
    desired: Duration,
    rich: bool,
    margin: Duration,
) -> DateTime<Utc> {
    let max = Duration::minutes(if rich {
        EVENT_RICH_SUBSCRIPTION_MAX_MINUTES
    } else {
        EVENT_SUBSCRIPTION_MAX_MINUTES
    });
    let lifetime = (desired.min(max) - margin).max(Duration::minutes(SUBSCRIPTION_MIN_LIFETIME_MINUTES));
    now + lifetime
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Renewal<'a> {
    expiration_date_time: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_certificate_id: Option<&'a str>,
}

fn without_secret(mut sub: Subscription) -> Subscription {
    sub.client_state = None;
    sub
}

impl GraphClient {
    /// `POST /subscriptions`. Graph first runs the validation handshake against the notification URL (and
    /// the lifecycle URL); if that fails the result is [`GraphError::EndpointValidation`]. The returned
    /// subscription does not carry the `clientState` (the caller has it).
    pub async fn create_subscription(
        &self,
        request: &SubscriptionRequest,
        corr: CorrelationId,
    ) -> Result<Subscription, GraphError> {
        let state = request.client_state.expose_secret();
        if state.len() > CLIENT_STATE_MAX_LEN || state.is_empty() {
            return Err(GraphError::Config {
                reason: format!(
                    "a clientState must have 1 to {CLIENT_STATE_MAX_LEN} characters, not {}; use \
                     generate_client_state()",
                    state.len()
                ),
            });
        }
        if request.change_types.is_empty() {
            return Err(GraphError::Config {
                reason: "a subscription needs at least one change type".to_owned(),
            });
        }
        let change_type = request.change_types.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",");
        let body = Subscription {
            change_type: Some(change_type),
            notification_url: Some(request.notification_url.to_string()),
            lifecycle_notification_url: request.lifecycle_notification_url.as_ref().map(Url::to_string),
            resource: Some(request.resource.clone()),
            expiration_date_time: Some(request.expiration),
            client_state: Some(state.to_owned()),
            include_resource_data: request.rich.as_ref().map(|_| true),
            encryption_certificate: request.rich.as_ref().map(|r| r.certificate_base64.clone()),
            encryption_certificate_id: request.rich.as_ref().map(|r| r.certificate_id.clone()),
            latest_supported_tls_version: Some("v1_2".to_owned()),
            ..Subscription::default()
        };
        let call = self.call(Method::POST, self.url(&["subscriptions"]), None, corr);
        match self.json::<Subscription>(Self::with_body(call, &body)?, "a subscription").await {
            Ok(sub) => Ok(without_secret(sub)),
            Err(GraphError::Rejected { reason, .. })
                if reason.to_ascii_lowercase().contains("validation request") =>
            {
                Err(GraphError::EndpointValidation { url: request.notification_url.to_string(), reason })
            }
            Err(e) => Err(e),
        }
    }

    /// Renews (`PATCH expirationDateTime`, which also reauthorizes); with `rich`, moves the subscription
    /// to another encryption certificate at the same time (certificate rotation). A gone subscription is
    /// [`GraphError::NotFound`]: recreate it.
    pub async fn renew_subscription(
        &self,
        id: &str,
        expiration: DateTime<Utc>,
        rich: Option<&RichNotifications>,
        corr: CorrelationId,
    ) -> Result<Subscription, GraphError> {
        let body = Renewal {
            expiration_date_time: expiration,
            encryption_certificate: rich.map(|r| r.certificate_base64.as_str()),
            encryption_certificate_id: rich.map(|r| r.certificate_id.as_str()),
        };
        let call = self.call(Method::PATCH, self.url(&["subscriptions", id]), None, corr);
        self.json::<Subscription>(Self::with_body(call, &body)?, "a subscription").await.map(without_secret)
    }

    /// `POST /subscriptions/{id}/reauthorize` (after `reauthorizationRequired`; does not extend expiry).
    pub async fn reauthorize_subscription(&self, id: &str, corr: CorrelationId) -> Result<(), GraphError> {
        let mut call = self.call(Method::POST, self.url(&["subscriptions", id, "reauthorize"]), None, corr);
        call.idempotent = true;
        self.send(call).await.map(drop)
    }

    /// `DELETE /subscriptions/{id}`; a subscription that is already gone counts as deleted.
    pub async fn delete_subscription(&self, id: &str, corr: CorrelationId) -> Result<(), GraphError> {
        match self.send(self.call(Method::DELETE, self.url(&["subscriptions", id]), None, corr)).await {
            Ok(_) | Err(GraphError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /subscriptions/{id}` (Graph never returns `clientState`).
    pub async fn get_subscription(&self, id: &str, corr: CorrelationId) -> Result<Subscription, GraphError> {
        let call = self.call(Method::GET, self.url(&["subscriptions", id]), None, corr);
        self.json::<Subscription>(call, "a subscription").await.map(without_secret)
    }

    /// `GET /subscriptions`: this app's subscriptions in the tenant, every page.
    pub async fn list_subscriptions(&self, corr: CorrelationId) -> Result<Vec<Subscription>, GraphError> {
        let all: Vec<Subscription> =
            self.pages(self.url(&["subscriptions"]), None, corr, "a list of subscriptions").await?;
        Ok(all.into_iter().map(without_secret).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn expiry_stays_inside_graphs_limits() {
        let now = at("2026-09-01T06:00:00Z");
        let check = |desired: Duration, rich: bool, margin: Duration, want: &str| {
            assert_eq!(subscription_expiry(now, desired, rich, margin), at(want), "{desired} rich={rich}");
        };
        check(Duration::days(30), false, Duration::minutes(60), "2026-09-08T05:00:00Z");
        check(Duration::days(30), true, Duration::minutes(30), "2026-09-02T05:30:00Z");
        check(Duration::hours(3), true, Duration::zero(), "2026-09-01T09:00:00Z");
        check(Duration::minutes(5), false, Duration::zero(), "2026-09-01T06:45:00Z");
    }

    #[test]
    fn client_states_are_random_long_and_redacted() {
        let a = generate_client_state().unwrap();
        let b = generate_client_state().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 43, "256 bits in base64url");
        assert!(!format!("{a:?}").contains(a.expose_secret()));
    }

    #[test]
    fn events_resource_with_and_without_select() {
        let room = EmailAddress::parse("room1@contoso.com").unwrap();
        assert_eq!(events_resource(&room, None), "users/room1@contoso.com/events");
        let rich = events_resource(&room, Some(RICH_EVENT_SELECT));
        assert!(rich.starts_with("users/room1@contoso.com/events?$select=subject,start,end,"), "{rich}");
        assert!(!rich.to_ascii_lowercase().contains("body"));
        let dropped = events_resource(&room, Some(&rich_event_select(false)));
        assert!(!dropped.contains("subject"), "{dropped}");
        assert_eq!(rich_event_select(true), RICH_EVENT_SELECT);
    }
}
