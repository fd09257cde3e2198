//! Change-notification subscriptions and their delivery, as Graph does them for Outlook events
//! (reference §2 to §5).
//!
//! - `POST /v1.0/subscriptions` runs the validation handshake first: `POST {notificationUrl}?validationToken=…`
//!   (`text/plain`), which must be answered `200` with the decoded token within
//!   [`Knobs::handshake_timeout_ms`] (Graph: 10 s); the same for `lifecycleNotificationUrl`. Expirations
//!   below 45 minutes are raised; beyond the events limit (10,080 minutes basic, 1,440 rich) refused.
//!   `http://` URLs are accepted (Graph requires HTTPS) so tests can listen on `127.0.0.1:0`.
//! - `PATCH` renews (and reauthorizes; may move to another encryption certificate or, reference U9, to
//!   another notification URL after a new handshake), `DELETE` removes, `POST …/reauthorize` clears a
//!   pending `reauthorizationRequired`; `GET` one or all (the app's own; never with `clientState`).
//! - Every change in a subscribed mailbox (through the API or the control API acting as a person) becomes a
//!   notification: basic (`resource` + `resourceData`) or rich (`encryptedContent` made with
//!   [`orb_crypto::encrypt_notification_content`] from the `$select`ed properties, and `validationTokens`
//!   from the emulator's [`ValidationTokenSigner`], whose JWKS is served at `/common/discovery/keys` and
//!   `/_emulator/jwks`). Deleted items carry no `encryptedContent` (reference U4 leaves it open).
//! - Lifecycle notifications go to the lifecycle URL: on demand (control API), `reauthorizationRequired`
//!   once when a subscription comes within [`Knobs::reauthorize_before_expiry_minutes`] of its expiry, and
//!   expired subscriptions are removed silently (as Graph deletes them).
//! - Delivery runs on one background task per served emulator (`run_deliveries`): POSTs leave in queue
//!   order; the fault knobs ([`NotificationKnobs`]) drop, duplicate, hold back (reorder) or delay them,
//!   deterministically by counters, or hold every one back until released (`hold`).
//!
//! ## Invariants
//! - Notifications are built and queued under the state mutex (pure CPU work); every HTTP call (handshake,
//!   delivery) happens with the mutex released.
//! - A subscription sees each change once: it remembers the global change sequence it has reported up to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration as StdDuration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use orb_crypto::{NotificationCertificate, ValidationTokenClaims, ValidationTokenSigner};
use orb_graph::model::{
    CLIENT_STATE_MAX_LEN, ChangeNotification, ChangeNotificationCollection, ChangeType, Collection,
    EVENT_RICH_SUBSCRIPTION_MAX_MINUTES, EVENT_SUBSCRIPTION_MAX_MINUTES, LifecycleEventType, ResourceData,
    SUBSCRIPTION_MIN_LIFETIME_MINUTES, Subscription,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::GraphEmulator;
use super::api::{ApiError, begin, json_body};
use super::calendar::{self, IdFormat, View};
use super::state::Inner;
#[cfg(doc)]
use super::state::Knobs;

/// Fault knobs for notification delivery; counters make them deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NotificationKnobs {
    /// Drop the next N notification POSTs (change and lifecycle).
    pub drop_next: u32,
    /// Deliver each of the next N notification POSTs twice.
    pub duplicate_next: u32,
    /// Hold back the next N POSTs, each until the one after it was sent (swaps neighbours).
    pub reorder_next: u32,
    /// Wait this long before each POST, milliseconds.
    pub delay_ms: u64,
    /// Drop each notification POST with this probability, in percent (after `drop_next`).
    pub drop_percent: u32,
    /// Deliver each notification POST twice with this probability, in percent (after `duplicate_next`).
    pub duplicate_percent: u32,
    /// Hold back each notification POST until the next one was sent with this probability, in percent
    /// (after `reorder_next`).
    pub reorder_percent: u32,
    /// Hold every notification POST back while set (after the knobs above), in order; clearing it
    /// ([`GraphEmulator::set_knobs`]) sends them, in order. A test uses it to let a person's changes on
    /// both sides happen before ORB hears of the Outlook one.
    pub hold: bool,
}

/// What the notification fault knobs did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationFaults {
    /// Notification POSTs queued (before faults).
    pub queued: u64,
    /// Dropped.
    pub dropped: u64,
    /// Sent twice.
    pub duplicated: u64,
    /// Held back behind the next one.
    pub reordered: u64,
}

/// What a subscription with resource data encrypts for.
#[derive(Debug, Clone)]
pub struct RichSubscription {
    /// The subscription's certificate.
    pub certificate: NotificationCertificate,
    /// Its `encryptionCertificateId`.
    pub certificate_id: String,
    /// The `$select`ed properties.
    pub select: Vec<String>,
}

/// A subscription as stored.
#[derive(Debug, Clone)]
pub struct StoredSubscription {
    /// Id (GUID).
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// The app that created it (the audience of its validation tokens).
    pub app_id: String,
    /// Key of the subscribed mailbox.
    pub mailbox: String,
    /// The resource as given.
    pub resource: String,
    /// Changes to report.
    pub change_types: Vec<ChangeType>,
    /// Where notifications go.
    pub notification_url: String,
    /// Where lifecycle notifications go.
    pub lifecycle_url: Option<String>,
    /// Echoed in every notification.
    pub client_state: Option<String>,
    /// Expiry.
    pub expires: DateTime<Utc>,
    /// Set for rich notifications.
    pub rich: Option<RichSubscription>,
    /// Id format of the creating request (`Prefer: IdType`).
    pub ids: IdFormat,
    /// Global change sequence reported up to.
    pub upto: u64,
    /// Item keys known to exist (created vs. updated).
    pub seen: BTreeSet<String>,
    /// A `reauthorizationRequired` is pending.
    pub reauthorization_required: bool,
    /// The before-expiry `reauthorizationRequired` was sent.
    pub expiry_warned: bool,
}

/// What tests see of a subscription through the control API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    /// Id.
    pub id: String,
    /// Mailbox address.
    pub mailbox: String,
    /// Resource.
    pub resource: String,
    /// Expiry.
    pub expires: DateTime<Utc>,
    /// Rich notifications.
    pub rich: bool,
    /// The certificate id of a rich subscription.
    pub certificate_id: Option<String>,
    /// A `reauthorizationRequired` is pending.
    pub reauthorization_required: bool,
}

/// Kind of an outgoing POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeliveryKind {
    /// A validation handshake.
    Validation,
    /// A change notification.
    Change,
    /// A lifecycle notification.
    Lifecycle,
}

/// One outgoing POST, as the delivery log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    /// Kind.
    pub kind: DeliveryKind,
    /// Target URL.
    pub url: String,
    /// The subscription (empty for a handshake before creation).
    pub subscription_id: String,
    /// `delivered`, `dropped`, `failed` or `timedOut`.
    pub outcome: String,
    /// HTTP status answered, if any.
    pub status: Option<u16>,
}

/// A queued POST.
#[derive(Debug, Clone)]
pub struct Delivery {
    kind: DeliveryKind,
    url: String,
    subscription_id: String,
    body: String,
}

/// Subscriptions, the delivery queue and the token signers.
#[derive(Debug)]
pub struct Notifier {
    /// Subscriptions by id.
    pub subscriptions: BTreeMap<String, StoredSubscription>,
    /// Every outgoing POST so far.
    pub log: Vec<DeliveryRecord>,
    tx: UnboundedSender<Delivery>,
    rx: Option<UnboundedReceiver<Delivery>>,
    held: Option<Delivery>,
    /// POSTs held back by [`NotificationKnobs::hold`], in order.
    held_back: Vec<Delivery>,
    signers: Vec<Arc<ValidationTokenSigner>>,
    /// What the fault knobs did.
    pub faults: NotificationFaults,
}

impl Default for Notifier {
    fn default() -> Self {
        let (tx, rx) = unbounded_channel();
        Self {
            subscriptions: BTreeMap::new(),
            log: Vec::new(),
            tx,
            rx: Some(rx),
            held: None,
            held_back: Vec::new(),
            signers: Vec::new(),
            faults: NotificationFaults::default(),
        }
    }
}

impl Notifier {
    /// The delivery queue's receiving end (once: the first served emulator takes it).
    pub(crate) fn take_receiver(&mut self) -> Option<UnboundedReceiver<Delivery>> {
        self.rx.take()
    }

    /// The current signer, made on first use.
    pub(crate) fn signer(&mut self) -> Result<Arc<ValidationTokenSigner>, ApiError> {
        if self.signers.is_empty() {
            self.rotate()?;
        }
        Ok(self.signers.last().cloned().expect("just made"))
    }

    /// A new signing key; the old ones stay published.
    pub(crate) fn rotate(&mut self) -> Result<String, ApiError> {
        let kid = format!("emulator-key-{}", self.signers.len() + 1);
        let signer = ValidationTokenSigner::generate(kid.clone())
            .map_err(|e| ApiError::new(500, "generalException", format!("cannot make a signing key: {e}")))?;
        self.signers.push(Arc::new(signer));
        Ok(kid)
    }

    /// The JWKS of every signer so far.
    pub(crate) fn jwks(&mut self) -> Result<orb_crypto::Jwks, ApiError> {
        self.signer()?;
        Ok(orb_crypto::Jwks { keys: self.signers.iter().rev().map(|s| s.jwk()).collect() })
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "InvalidRequest", message)
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(404, "ResourceNotFound", format!("The object was not found: subscription {id}."))
}

/// A deterministic percentage draw: the `n`th value of a splitmix64 sequence, below 100.
fn percent_draw(n: u64) -> u32 {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    u32::try_from((z ^ (z >> 31)) % 100).unwrap_or(0)
}

/// Queues a POST through the fault knobs.
fn enqueue(inner: &mut Inner, delivery: Delivery) {
    let knobs = &mut inner.knobs.notifications;
    let faults = &mut inner.notifier.faults;
    let n = faults.queued;
    faults.queued += 1;
    // Three independent draws per POST (one sequence), so the shares do not overlap by construction.
    let (drop, duplicate, reorder) = (percent_draw(3 * n), percent_draw(3 * n + 1), percent_draw(3 * n + 2));
    let drop = knobs.drop_next > 0 || drop < knobs.drop_percent;
    let duplicate = knobs.duplicate_next > 0 || duplicate < knobs.duplicate_percent;
    let reorder = knobs.reorder_next > 0 || reorder < knobs.reorder_percent;
    if drop {
        knobs.drop_next = knobs.drop_next.saturating_sub(1);
        faults.dropped += 1;
        inner.notifier.log.push(DeliveryRecord {
            kind: delivery.kind,
            url: delivery.url,
            subscription_id: delivery.subscription_id,
            outcome: "dropped".to_owned(),
            status: None,
        });
        return;
    }
    let copies = if duplicate {
        knobs.duplicate_next = knobs.duplicate_next.saturating_sub(1);
        faults.duplicated += 1;
        2
    } else {
        1
    };
    if reorder && inner.notifier.held.is_none() {
        knobs.reorder_next = knobs.reorder_next.saturating_sub(1);
        inner.notifier.faults.reordered += 1;
        if copies == 2 {
            // The held copy goes out after the next POST; its twin goes now.
            post(inner, delivery.clone());
        }
        inner.notifier.held = Some(delivery);
        return;
    }
    for _ in 0..copies {
        post(inner, delivery.clone());
    }
    if let Some(held) = inner.notifier.held.take() {
        post(inner, held);
    }
}

/// Hands a POST to the delivery task, or keeps it while [`NotificationKnobs::hold`] is set.
fn post(inner: &mut Inner, delivery: Delivery) {
    if inner.knobs.notifications.hold {
        inner.notifier.held_back.push(delivery);
    } else {
        // A closed queue means nobody serves this emulator any more: nothing to deliver to.
        let _ = inner.notifier.tx.send(delivery);
    }
}

/// Sends the POSTs [`NotificationKnobs::hold`] kept, in order, once it is cleared.
pub(crate) fn release_held(inner: &mut Inner) {
    if inner.knobs.notifications.hold {
        return;
    }
    for delivery in std::mem::take(&mut inner.notifier.held_back) {
        let _ = inner.notifier.tx.send(delivery);
    }
}

fn collection_body(collection: &ChangeNotificationCollection) -> String {
    serde_json::to_string(collection).unwrap_or_default()
}

/// Resource path and item id as Graph writes them in notifications (`Users/{id}/Events/{id}`).
fn resource_of(mailbox_id: &str, event_id: &str) -> String {
    format!("Users/{mailbox_id}/Events/{event_id}")
}

/// Reports every change since each subscription's last report; runs the expiry sweep first.
pub(crate) fn collect(inner: &mut Inner, now: DateTime<Utc>) {
    sweep(inner, now);
    let seq = inner.seq;
    let ids: Vec<String> = inner.notifier.subscriptions.keys().cloned().collect();
    let mut out = Vec::new();
    for id in ids {
        let Some(sub) = inner.notifier.subscriptions.get_mut(&id) else { continue };
        let Some(mailbox) = inner.mailboxes.get(&sub.mailbox) else { continue };
        let mut changes = Vec::new();
        for ev in mailbox.events.values().filter(|e| e.seq > sub.upto) {
            let change = if ev.deleted {
                if !sub.seen.remove(&ev.key) {
                    continue; // created and deleted between two reports
                }
                ChangeType::Deleted
            } else if sub.seen.insert(ev.key.clone()) {
                ChangeType::Created
            } else {
                ChangeType::Updated
            };
            if sub.change_types.contains(&change) {
                changes.push((change, calendar::render(ev, &View { ids: sub.ids, ..View::default() })));
            }
        }
        sub.upto = seq;
        let sub = sub.clone();
        for (change, event) in changes {
            out.push((sub.clone(), mailbox.id.clone(), change, event));
        }
    }
    for (sub, mailbox_id, change, event) in out {
        let event_id = event.id.clone().unwrap_or_default();
        let resource = resource_of(&mailbox_id, &event_id);
        let mut item = ChangeNotification {
            change_type: Some(change),
            client_state: sub.client_state.clone(),
            resource: Some(resource.clone()),
            resource_data: Some(ResourceData {
                odata_type: Some("#Microsoft.Graph.Event".to_owned()),
                odata_id: Some(resource.clone()),
                odata_etag: event.odata_etag.clone(),
                id: Some(event_id),
                other: BTreeMap::new(),
            }),
            subscription_expiration_date_time: Some(sub.expires),
            subscription_id: Some(sub.id.clone()),
            tenant_id: Some(sub.tenant.clone()),
            ..ChangeNotification::default()
        };
        let mut tokens = None;
        if let Some(rich) = &sub.rich {
            if change != ChangeType::Deleted {
                let json = selected(&event, &rich.select, &resource);
                match orb_crypto::encrypt_notification_content(
                    json.to_string().as_bytes(),
                    &rich.certificate,
                    &rich.certificate_id,
                ) {
                    Ok(content) => {
                        item.encrypted_content =
                            Some(orb_graph::notifications::wire_encrypted_content(content))
                    }
                    Err(_) => continue, // cannot happen with a certificate accepted at creation
                }
            }
            let claims = ValidationTokenClaims::graph(sub.app_id.clone(), sub.tenant.clone(), now);
            let Ok(token) = inner.notifier.signer().and_then(|s| {
                s.issue(&claims).map_err(|e| ApiError::new(500, "generalException", e.to_string()))
            }) else {
                continue;
            };
            tokens = Some(vec![token]);
        }
        let body =
            collection_body(&ChangeNotificationCollection { validation_tokens: tokens, value: vec![item] });
        enqueue(
            inner,
            Delivery {
                kind: DeliveryKind::Change,
                url: sub.notification_url.clone(),
                subscription_id: sub.id,
                body,
            },
        );
    }
}

/// The `$select`ed properties of an event as the decrypted payload shows them (with annotations).
fn selected(event: &orb_graph::model::Event, select: &[String], resource: &str) -> serde_json::Value {
    let full = serde_json::to_value(event).unwrap_or_default();
    let mut out = serde_json::Map::new();
    out.insert("@odata.type".to_owned(), "#Microsoft.Graph.Event".into());
    out.insert("@odata.id".to_owned(), resource.into());
    if let Some(obj) = full.as_object() {
        for (k, v) in obj {
            if k == "id" || k == "@odata.etag" || select.iter().any(|s| s.eq_ignore_ascii_case(k)) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    serde_json::Value::Object(out)
}

/// Removes expired subscriptions and sends `reauthorizationRequired` to those about to expire.
pub(crate) fn sweep(inner: &mut Inner, now: DateTime<Utc>) {
    inner.notifier.subscriptions.retain(|_, s| s.expires > now);
    let before = inner.knobs.reauthorize_before_expiry_minutes;
    if before <= 0 {
        return;
    }
    let due: Vec<String> = inner
        .notifier
        .subscriptions
        .values()
        .filter(|s| !s.expiry_warned && s.expires - now <= Duration::minutes(before))
        .map(|s| s.id.clone())
        .collect();
    for id in due {
        if let Some(s) = inner.notifier.subscriptions.get_mut(&id) {
            s.expiry_warned = true;
        }
        lifecycle(inner, &id, LifecycleEventType::ReauthorizationRequired);
    }
}

/// Sends a lifecycle notification for a subscription. `subscriptionRemoved` also removes it;
/// `reauthorizationRequired` marks it until it is reauthorized or renewed. False if there is no such
/// subscription.
pub(crate) fn lifecycle(inner: &mut Inner, id: &str, event: LifecycleEventType) -> bool {
    let Some(sub) = inner.notifier.subscriptions.get_mut(id) else { return false };
    match event {
        LifecycleEventType::ReauthorizationRequired => sub.reauthorization_required = true,
        LifecycleEventType::SubscriptionRemoved | LifecycleEventType::Missed => {}
    }
    let sub = sub.clone();
    if event == LifecycleEventType::SubscriptionRemoved {
        inner.notifier.subscriptions.remove(id);
    }
    let Some(url) = sub.lifecycle_url.clone() else { return true };
    let item = ChangeNotification {
        client_state: sub.client_state.clone(),
        lifecycle_event: Some(event),
        subscription_expiration_date_time: Some(sub.expires),
        subscription_id: Some(sub.id.clone()),
        tenant_id: Some(sub.tenant.clone()),
        ..ChangeNotification::default()
    };
    let body = collection_body(&ChangeNotificationCollection { validation_tokens: None, value: vec![item] });
    enqueue(inner, Delivery { kind: DeliveryKind::Lifecycle, url, subscription_id: sub.id, body });
    true
}

/// Delivers queued POSTs one after the other until the emulator's state is gone or the queue closes.
pub(crate) async fn run_deliveries(
    mut rx: UnboundedReceiver<Delivery>,
    http: reqwest::Client,
    state: Weak<Mutex<Inner>>,
) {
    while let Some(delivery) = rx.recv().await {
        let Some(delay) = state.upgrade().map(|s| lock(&s).knobs.notifications.delay_ms) else { return };
        if delay > 0 {
            tokio::time::sleep(StdDuration::from_millis(delay)).await;
        }
        let sent = http
            .post(&delivery.url)
            .header(header::CONTENT_TYPE, "application/json")
            .timeout(StdDuration::from_secs(3))
            .body(delivery.body.clone())
            .send()
            .await;
        let (outcome, status) = match &sent {
            Ok(resp) if resp.status().is_success() => ("delivered", Some(resp.status().as_u16())),
            Ok(resp) => ("failed", Some(resp.status().as_u16())),
            Err(e) if e.is_timeout() => ("timedOut", None),
            Err(_) => ("failed", None),
        };
        let Some(state) = state.upgrade() else { return };
        lock(&state).notifier.log.push(DeliveryRecord {
            kind: delivery.kind,
            url: delivery.url,
            subscription_id: delivery.subscription_id,
            outcome: outcome.to_owned(),
            status,
        });
    }
}

fn lock(state: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The handshake: POST `?validationToken=…` and require `200` with the token as the body in time.
async fn handshake(em: &GraphEmulator, url: &str, subscription_id: &str) -> Result<(), ApiError> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let mut target = reqwest::Url::parse(url)
        .map_err(|_| invalid(format!("The notification URL '{url}' is not valid.")))?;
    target.query_pairs_mut().append_pair("validationToken", &token);
    let timeout = StdDuration::from_millis(em.knobs().handshake_timeout_ms);
    let request = em.http.post(target).header(header::CONTENT_TYPE, "text/plain; charset=utf-8").body("");
    let answer = tokio::time::timeout(timeout, async {
        let resp = request.send().await?;
        let status = resp.status().as_u16();
        Ok::<_, reqwest::Error>((status, resp.text().await?))
    })
    .await;
    let (outcome, status, result) = match answer {
        Err(_) => ("timedOut", None, Err(invalid("Subscription validation request timed out."))),
        Ok(Err(e)) => (
            "failed",
            None,
            Err(invalid(format!(
                "Subscription validation request failed. The endpoint could not be reached: {e}"
            ))),
        ),
        Ok(Ok((200, body))) if body == token => ("delivered", Some(200), Ok(())),
        Ok(Ok((200, _))) => (
            "failed",
            Some(200),
            Err(invalid(
                "Subscription validation request failed. Response must exactly match validationToken query parameter.",
            )),
        ),
        Ok(Ok((status, _))) => (
            "failed",
            Some(status),
            Err(invalid(
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            )),
        ),
    };
    em.lock().notifier.log.push(DeliveryRecord {
        kind: DeliveryKind::Validation,
        url: url.to_owned(),
        subscription_id: subscription_id.to_owned(),
        outcome: outcome.to_owned(),
        status,
    });
    result
}

fn check_url(url: &str) -> Result<(), ApiError> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
        _ => Err(invalid(format!("The notification URL '{url}' is not a valid HTTPS URL."))),
    }
}

fn max_minutes(rich: bool) -> i64 {
    if rich { EVENT_RICH_SUBSCRIPTION_MAX_MINUTES } else { EVENT_SUBSCRIPTION_MAX_MINUTES }
}

/// The expiry to store: raised to the 45-minute minimum, refused beyond the maximum.
fn expiry(asked: DateTime<Utc>, rich: bool, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let max = max_minutes(rich);
    if asked > now + Duration::minutes(max) {
        return Err(invalid(format!(
            "Subscription expiration can only be {max} minutes in the future (resource data included: {rich})."
        )));
    }
    Ok(asked.max(now + Duration::minutes(SUBSCRIPTION_MIN_LIFETIME_MINUTES)))
}

fn rich_part(input: &Subscription, select: Vec<String>) -> Result<RichSubscription, ApiError> {
    let cert_text = input
        .encryption_certificate
        .as_deref()
        .ok_or_else(|| invalid("encryptionCertificate is required when includeResourceData is true."))?;
    let certificate = NotificationCertificate::from_base64(cert_text)
        .map_err(|e| invalid(format!("encryptionCertificate is not usable: {e}")))?;
    let certificate_id = input.encryption_certificate_id.clone().unwrap_or_default();
    if certificate_id.is_empty() || certificate_id.len() > 128 {
        return Err(invalid("encryptionCertificateId is required (1 to 128 characters)."));
    }
    Ok(RichSubscription { certificate, certificate_id, select })
}

/// `users/{id}/events[?$select=…]` → (mailbox key, `$select` list).
fn parse_resource(inner: &Inner, tenant: &str, resource: &str) -> Result<(String, Vec<String>), ApiError> {
    let trimmed = resource.trim_start_matches('/');
    let (path, query) = trimmed.split_once('?').unwrap_or((trimmed, ""));
    let parts: Vec<&str> = path.split('/').collect();
    let [users, user, events] = parts.as_slice() else {
        return Err(invalid(format!("Resource '{resource}' is not supported: use users/{{id}}/events.")));
    };
    if !users.eq_ignore_ascii_case("users") || !events.eq_ignore_ascii_case("events") {
        return Err(invalid(format!("Resource '{resource}' is not supported: use users/{{id}}/events.")));
    }
    let key = inner.mailbox_key(user).filter(|k| inner.mailboxes[k].tenant == tenant).ok_or_else(|| {
        ApiError::new(404, "ResourceNotFound", format!("Resource '{resource}' does not exist."))
    })?;
    let mut select = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "$select" => {
                select.extend(value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
            }
            "$filter" => {}
            other => {
                return Err(invalid(format!(
                    "Query option '{other}' is not supported in a subscription resource."
                )));
            }
        }
    }
    if select.iter().any(|s| s.eq_ignore_ascii_case("body") || s.eq_ignore_ascii_case("uniqueBody")) {
        return Err(invalid("$select of Body or UniqueBody is not supported for rich notifications."));
    }
    Ok((key, select))
}

fn render(sub: &StoredSubscription, with_secret: bool) -> Subscription {
    Subscription {
        id: Some(sub.id.clone()),
        application_id: Some(sub.app_id.clone()),
        change_type: Some(sub.change_types.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")),
        client_state: if with_secret { sub.client_state.clone() } else { None },
        creator_id: Some(sub.app_id.clone()),
        encryption_certificate: sub.rich.as_ref().map(|r| r.certificate.to_base64()),
        encryption_certificate_id: sub.rich.as_ref().map(|r| r.certificate_id.clone()),
        expiration_date_time: Some(sub.expires),
        include_resource_data: Some(sub.rich.is_some()),
        latest_supported_tls_version: Some("v1_2".to_owned()),
        lifecycle_notification_url: sub.lifecycle_url.clone(),
        notification_query_options: None,
        notification_url: Some(sub.notification_url.clone()),
        notification_url_app_id: None,
        resource: Some(sub.resource.clone()),
    }
}

impl StoredSubscription {
    pub(crate) fn info(&self, inner: &Inner) -> SubscriptionInfo {
        SubscriptionInfo {
            id: self.id.clone(),
            mailbox: inner.mailboxes.get(&self.mailbox).map(|m| m.address.clone()).unwrap_or_default(),
            resource: self.resource.clone(),
            expires: self.expires,
            rich: self.rich.is_some(),
            certificate_id: self.rich.as_ref().map(|r| r.certificate_id.clone()),
            reauthorization_required: self.reauthorization_required,
        }
    }
}

/// `POST /v1.0/subscriptions` → `201` after the handshake(s).
pub async fn create(
    State(em): State<GraphEmulator>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let ctx = begin(&em, &headers, &method, &uri, None).await?;
    let input: Subscription = json_body(&body)?;
    let now = em.now();
    let mut sub = {
        let inner = em.lock();
        let change_text = input.change_type.as_deref().ok_or_else(|| invalid("changeType is required."))?;
        let mut change_types = Vec::new();
        for part in change_text.split(',').map(str::trim) {
            let change = ChangeType::ALL
                .iter()
                .find(|c| c.as_str().eq_ignore_ascii_case(part))
                .ok_or_else(|| invalid(format!("changeType '{part}' is not valid.")))?;
            change_types.push(*change);
        }
        let notification_url =
            input.notification_url.clone().ok_or_else(|| invalid("notificationUrl is required."))?;
        check_url(&notification_url)?;
        if let Some(l) = &input.lifecycle_notification_url {
            check_url(l)?;
        }
        let resource = input.resource.clone().ok_or_else(|| invalid("resource is required."))?;
        let (mailbox, select) = parse_resource(&inner, &ctx.tenant, &resource)?;
        let rich = match input.include_resource_data {
            Some(true) => {
                if select.is_empty() {
                    return Err(invalid(
                        "A $select query option is required in the resource for rich notifications.",
                    ));
                }
                Some(rich_part(&input, select)?)
            }
            _ => None,
        };
        if input.client_state.as_ref().is_some_and(|c| c.len() > CLIENT_STATE_MAX_LEN) {
            return Err(invalid(format!("clientState must be at most {CLIENT_STATE_MAX_LEN} characters.")));
        }
        let asked = input.expiration_date_time.ok_or_else(|| invalid("expirationDateTime is required."))?;
        StoredSubscription {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: ctx.tenant.clone(),
            app_id: ctx.client_id.clone(),
            mailbox,
            resource,
            change_types,
            notification_url,
            lifecycle_url: input.lifecycle_notification_url.clone(),
            client_state: input.client_state.clone(),
            expires: expiry(asked, rich.is_some(), now)?,
            rich,
            ids: ctx.view.ids,
            upto: 0,
            seen: BTreeSet::new(),
            reauthorization_required: false,
            expiry_warned: false,
        }
    };
    handshake(&em, &sub.notification_url, &sub.id).await?;
    if let Some(lifecycle) = sub.lifecycle_url.clone() {
        handshake(&em, &lifecycle, &sub.id).await?;
    }
    let mut inner = em.lock();
    let mailbox = inner.mailboxes.get(&sub.mailbox).ok_or_else(|| not_found(&sub.id))?;
    sub.seen = mailbox.events.values().filter(|e| !e.deleted).map(|e| e.key.clone()).collect();
    sub.upto = inner.seq;
    let shown = render(&sub, true);
    inner.notifier.subscriptions.insert(sub.id.clone(), sub);
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// The app's own subscription (others are not found).
fn own<'a>(
    inner: &'a mut Inner,
    ctx: &super::api::Ctx,
    id: &str,
) -> Result<&'a mut StoredSubscription, ApiError> {
    inner
        .notifier
        .subscriptions
        .get_mut(id)
        .filter(|s| s.tenant == ctx.tenant && s.app_id == ctx.client_id)
        .ok_or_else(|| not_found(id))
}

/// `GET /v1.0/subscriptions` (this app's, without `clientState`).
pub async fn list(
    State(em): State<GraphEmulator>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Result<Json<Collection<Subscription>>, ApiError> {
    let ctx = begin(&em, &headers, &method, &uri, None).await?;
    let inner = em.lock();
    let mine = inner
        .notifier
        .subscriptions
        .values()
        .filter(|s| s.tenant == ctx.tenant && s.app_id == ctx.client_id)
        .map(|s| render(s, false))
        .collect();
    Ok(Json(Collection::of(mine)))
}

/// `GET /v1.0/subscriptions/{id}`.
pub async fn get(
    State(em): State<GraphEmulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Result<Json<Subscription>, ApiError> {
    let ctx = begin(&em, &headers, &method, &uri, None).await?;
    let mut inner = em.lock();
    Ok(Json(render(own(&mut inner, &ctx, &id)?, false)))
}

/// `PATCH /v1.0/subscriptions/{id}`: renew (reauthorizes too), move certificate, or (U9) notification URL.
pub async fn update(
    State(em): State<GraphEmulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> Result<Json<Subscription>, ApiError> {
    let ctx = begin(&em, &headers, &method, &uri, None).await?;
    let input: Subscription = json_body(&body)?;
    let now = em.now();
    let new_url = {
        let mut inner = em.lock();
        let sub = own(&mut inner, &ctx, &id)?;
        if input.lifecycle_notification_url.as_ref().is_some_and(|l| Some(l) != sub.lifecycle_url.as_ref()) {
            return Err(invalid(
                "lifecycleNotificationUrl can only be set when the subscription is created.",
            ));
        }
        input.notification_url.clone().filter(|u| *u != sub.notification_url)
    };
    if let Some(url) = &new_url {
        check_url(url)?;
        handshake(&em, url, &id).await?;
    }
    let mut inner = em.lock();
    let sub = own(&mut inner, &ctx, &id)?;
    let mut changed = sub.clone();
    if input.encryption_certificate.is_some() {
        let select = changed.rich.as_ref().map(|r| r.select.clone()).ok_or_else(|| {
            invalid("encryptionCertificate can only be changed on a subscription with resource data.")
        })?;
        changed.rich = Some(rich_part(&input, select)?);
    }
    if let Some(asked) = input.expiration_date_time {
        changed.expires = expiry(asked, changed.rich.is_some(), now)?;
        changed.reauthorization_required = false;
        changed.expiry_warned = false;
    }
    if let Some(url) = new_url {
        changed.notification_url = url;
    }
    *sub = changed;
    Ok(Json(render(sub, false)))
}

/// `DELETE /v1.0/subscriptions/{id}` → `204`.
pub async fn delete(
    State(em): State<GraphEmulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let ctx = begin(&em, &headers, &method, &uri, None).await?;
    let mut inner = em.lock();
    own(&mut inner, &ctx, &id)?;
    inner.notifier.subscriptions.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1.0/subscriptions/{id}/reauthorize` → `204` (expiry unchanged).
pub async fn reauthorize(
    State(em): State<GraphEmulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let ctx = begin(&em, &headers, &method, &uri, None).await?;
    let mut inner = em.lock();
    own(&mut inner, &ctx, &id)?.reauthorization_required = false;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /common/discovery/keys` and `/_emulator/jwks`: the keys that sign validation tokens.
pub async fn jwks(State(em): State<GraphEmulator>) -> Result<Response, ApiError> {
    let jwks = em.lock().notifier.jwks()?;
    Ok(([(header::CONTENT_TYPE, "application/json")], jwks.to_json()).into_response())
}
