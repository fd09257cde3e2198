//! `POST /hooks/ews/{tenant}?k={key}`: EWS push notifications from Exchange Server on-premises.
//!
//! When ORB subscribes a room's calendar (`Subscribe` / `PushSubscriptionRequest`, ews.md §4.1) it gives
//! Exchange a callback URL naming the tenant and carrying a secret of that subscription, `k`; the store
//! keeps only its SHA-256 as the subscription row's `client_state_hash` (Exchange has no clientState).
//! Exchange POSTs a SOAP `SendNotification` there for each batch of events, and a `StatusEvent` every
//! `StatusFrequency` minutes when idle; ORB answers `SendNotificationResult` with `SubscriptionStatus`
//! `OK` (keep sending) or `Unsubscribe` (stop: the documented way to end a push subscription).
//!
//! Per request, in this order:
//! 1. Admission exactly as for Graph (`Intake::admit`): rate limits (`429`), the tenant named in the URL
//!    (`404`, the one [`WebError::NoSuchHook`] answer), the tenant's webhook allow-list (`403`).
//! 2. The body is read up to [`super::Limits::ews_body`] (1 MiB by default; else `413`) and read with
//!    [`orb_ews::push::parse_notification`]; anything else (not UTF-8, not a `SendNotification`, a message
//!    with `ResponseClass="Error"` such as `ErrorReadEventsFailed`) is `400` and nothing is kept: Exchange
//!    retries it and eventually gives the subscription up.
//! 3. Each `Notification`'s subscription is looked up by `(tenant, SubscriptionId)`:
//!    - unknown: not kept, counted as [`Refusal::UnknownSubscription`]; answered `Unsubscribe` when it is
//!      the first notification of the body, so Exchange stops a subscription ORB no longer has;
//!    - known, but `k` missing or not the subscription's (SHA-256, constant time): the whole request is
//!      refused, `403` ([`WebError::BadSubscriptionKey`]), each such notification counted as
//!      [`Refusal::BadClientState`], nothing kept;
//!    - known and `k` matches: kept as **one inbox item per notification** ([`InboxSource::Ews`], payload an
//!      [`EwsNotificationItem`]) with an [`EwsNotificationJob`] in the room's lane, in one transaction
//!      ([`orb_store::Store::accept_inbox`]), then the worker is woken. A notification holding only a
//!      `StatusEvent` is kept the same way (the engine takes it as a heartbeat: watermark, "last heard").
//! 4. `200`, `text/xml; charset=utf-8`, [`orb_ews::push::notification_result`]: `OK`, or `Unsubscribe`
//!    when the first notification's subscription is unknown (a body normally holds one notification).
//!
//! A store failure at any step is `503` (Exchange retries): `OK` is never sent for something not kept.
//! Whatever was kept before the failure stays kept, and a retried delivery is kept again: **the intake and
//! the store do not deduplicate**; the engine skips events at or before the subscription's stored watermark.
//!
//! The key is never stored, logged or echoed; the kept item holds only what the notification said.

use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orb_core::CorrelationId;
use orb_ews::push::{self, EventKind, SubscriptionStatus};
use orb_store::jobs::{
    EwsEventItem, EwsEventKind, EwsItemRef, EwsNotificationItem, EwsNotificationJob, JobPayload as _,
};
use orb_store::{InboxSource, Lane, NewInboxItem, StoreError, SubscriptionRow};

use super::{HooksState, Intake, observe_intake, read_body, remote_ip, secret_matches_hash};
use crate::WebError;
use crate::refusals::Refusal;

/// The query parameter carrying the subscription's key in the callback URL.
pub const KEY_PARAM: &str = "k";

fn malformed() -> WebError {
    WebError::MalformedBody { expected: "an EWS SendNotification (SOAP 1.1 XML)" }
}

pub(super) async fn ews_push(
    State(state): State<HooksState>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let answer = ews_intake(&state, &tenant, request).await.unwrap_or_else(|e| e.into_response());
    observe_intake(started);
    answer
}

async fn ews_intake(state: &HooksState, tenant: &str, request: Request) -> Result<Response, WebError> {
    let key = callback_key(request.uri().query());
    let intake = Intake::admit(state, tenant, remote_ip(state, &request)).await?;
    let body = intake.guard(read_body(request.into_body(), state.limits.ews_body).await)?;
    let notifications = intake.guard(read_notifications(&body))?;

    let mut rows: Vec<Option<SubscriptionRow>> = Vec::with_capacity(notifications.len());
    for n in &notifications {
        rows.push(match state.store.get_subscription(intake.tenant, &n.subscription_id).await {
            Ok(row) => Some(row),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        });
    }
    let unknown = rows.iter().filter(|r| r.is_none()).count() as u64;
    let mismatched =
        rows.iter().flatten().filter(|r| !secret_matches_hash(key.as_deref(), &r.client_state_hash)).count()
            as u64;
    if unknown > 0 {
        state.count(Some(&intake.name), Refusal::UnknownSubscription, intake.address, unknown);
    }
    if mismatched > 0 {
        state.count(Some(&intake.name), Refusal::BadClientState, intake.address, mismatched);
        return Err(WebError::BadSubscriptionKey);
    }
    let status = match rows.first() {
        Some(None) => SubscriptionStatus::Unsubscribe,
        _ => SubscriptionStatus::Ok,
    };
    for (notification, row) in notifications.into_iter().zip(&rows) {
        if let Some(row) = row {
            keep(state, intake.address, intake.now, notification, row).await?;
        }
    }
    if unknown > 0 {
        tracing::debug!(tenant = %intake.name, unknown, ?status, "ews: notifications of unknown subscriptions");
    }
    Ok(soap_answer(status))
}

impl HooksState {
    /// Keeps a notification that arrived over one of ORB's own `GetStreamingEvents` connections
    /// (`orb_engine::ews_stream`) exactly as a pushed one: one inbox item with its `ews.notification` job in
    /// the room's lane, in one transaction, then the workers are woken. `Err`: nothing was kept.
    pub async fn keep_streamed_ews(
        &self,
        subscription: &SubscriptionRow,
        notification: push::Notification,
    ) -> Result<(), WebError> {
        keep(self, None, self.clock.now(), kept(notification), subscription).await
    }
}

async fn keep(
    state: &HooksState,
    address: Option<std::net::IpAddr>,
    now: chrono::DateTime<chrono::Utc>,
    notification: EwsNotificationItem,
    subscription: &SubscriptionRow,
) -> Result<(), WebError> {
    let lane = Lane::room(subscription.tenant_id, subscription.room_id);
    // The store adds the inbox item's id to the job's payload.
    let job = EwsNotificationJob { subscription_id: subscription.id.clone(), inbox_id: None }.to_job(
        lane,
        Some(CorrelationId::generate(now)),
        None,
    );
    let payload = serde_json::to_value(&notification)
        .map_err(|_| WebError::MalformedBody { expected: "an EWS notification ORB can keep" })?;
    let inbox = NewInboxItem {
        tenant_id: subscription.tenant_id,
        source: InboxSource::Ews,
        received_at: now,
        remote_ip: address.map(|a| a.to_string()),
        payload,
    };
    state.store.accept_inbox(&inbox, &job, now).await?;
    state.ring();
    metrics::counter!("orb_notifications_received_total", "source" => InboxSource::Ews.as_str()).increment(1);
    Ok(())
}

/// The `k` value of the callback URL's query (URL-decoded), if any.
fn callback_key(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == KEY_PARAM)
        .map(|(_, value)| value.into_owned())
}

/// `200 text/xml` with the `SendNotificationResult`.
fn soap_answer(status: SubscriptionStatus) -> Response {
    let mut response = (StatusCode::OK, push::notification_result(status)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The notifications of a `SendNotification` body, as they are kept.
fn read_notifications(body: &[u8]) -> Result<Vec<EwsNotificationItem>, WebError> {
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let notifications = push::parse_notification(text).map_err(|_| malformed())?;
    Ok(notifications.into_iter().map(kept).collect())
}

/// A notification as the inbox keeps it.
fn kept(n: push::Notification) -> EwsNotificationItem {
    let item = |i: orb_ews::model::ItemId| EwsItemRef { id: i.id, change_key: i.change_key };
    EwsNotificationItem {
        subscription_id: n.subscription_id,
        previous_watermark: n.previous_watermark,
        more_events: n.more_events,
        events: n
            .events
            .into_iter()
            .map(|e| EwsEventItem {
                kind: kind(e.kind),
                watermark: e.watermark,
                timestamp: e.timestamp,
                item_id: e.item_id.map(item),
                folder_id: e.folder_id,
                parent_folder_id: e.parent_folder_id,
                old_item_id: e.old_item_id.map(item),
                old_parent_folder_id: e.old_parent_folder_id,
            })
            .collect(),
    }
}

fn kind(kind: EventKind) -> EwsEventKind {
    match kind {
        EventKind::Created => EwsEventKind::Created,
        EventKind::Modified => EwsEventKind::Modified,
        EventKind::Deleted => EwsEventKind::Deleted,
        EventKind::Moved => EwsEventKind::Moved,
        EventKind::Copied => EwsEventKind::Copied,
        EventKind::NewMail => EwsEventKind::NewMail,
        EventKind::FreeBusyChanged => EwsEventKind::FreeBusyChanged,
        EventKind::Status => EwsEventKind::Status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOVED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
<m:SendNotification xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
                    xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
<m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>
<m:Notification><t:SubscriptionId>sub-1</t:SubscriptionId><t:PreviousWatermark>w0</t:PreviousWatermark>
<t:MoreEvents>true</t:MoreEvents>
<t:CreatedEvent><t:Watermark>w1</t:Watermark><t:TimeStamp>2026-08-20T09:12:44Z</t:TimeStamp>
  <t:ItemId Id="A1" ChangeKey="K1"/><t:ParentFolderId Id="cal" ChangeKey="x"/></t:CreatedEvent>
<t:MovedEvent><t:Watermark>w2</t:Watermark><t:TimeStamp>2026-08-20T09:13:00Z</t:TimeStamp>
  <t:ItemId Id="A2" ChangeKey="K2"/><t:ParentFolderId Id="deleted"/>
  <t:OldItemId Id="A1" ChangeKey="K1"/><t:OldParentFolderId Id="cal"/></t:MovedEvent>
<t:StatusEvent><t:Watermark>w3</t:Watermark></t:StatusEvent>
</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages></m:SendNotification>
</s:Body></s:Envelope>"#;

    #[test]
    fn notifications_are_kept_with_every_field_and_the_old_ids_of_a_move() {
        let items = read_notifications(MOVED.as_bytes()).unwrap();
        assert_eq!(items.len(), 1);
        let n = &items[0];
        assert_eq!(
            (n.subscription_id.as_str(), n.previous_watermark.as_deref(), n.more_events),
            ("sub-1", Some("w0"), true)
        );
        let kinds: Vec<_> = n.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EwsEventKind::Created, EwsEventKind::Moved, EwsEventKind::Status]);
        let created = &n.events[0];
        assert_eq!(created.item_id, Some(EwsItemRef { id: "A1".into(), change_key: Some("K1".into()) }));
        assert_eq!(created.parent_folder_id.as_deref(), Some("cal"));
        assert_eq!(created.timestamp.map(|t| t.to_rfc3339()), Some("2026-08-20T09:12:44+00:00".into()));
        assert_eq!((created.old_item_id.as_ref(), created.old_parent_folder_id.as_ref()), (None, None));
        let moved = &n.events[1];
        assert_eq!(moved.old_item_id, Some(EwsItemRef { id: "A1".into(), change_key: Some("K1".into()) }));
        assert_eq!(moved.old_parent_folder_id.as_deref(), Some("cal"));
        assert_eq!(moved.parent_folder_id.as_deref(), Some("deleted"));
        assert_eq!(n.last_watermark(), Some("w3"));
    }

    #[test]
    fn anything_but_a_send_notification_is_malformed() {
        for bad in [&b"\xff\xfe"[..], b"", b"<x/>", b"{\"value\": []}"] {
            assert!(matches!(read_notifications(bad), Err(WebError::MalformedBody { .. })));
        }
    }

    #[test]
    fn the_key_is_read_url_decoded_from_the_query() {
        assert_eq!(callback_key(Some("k=abc%2B%2F%3D")).as_deref(), Some("abc+/="));
        assert_eq!(callback_key(Some("x=1&k=v")).as_deref(), Some("v"));
        assert_eq!(callback_key(Some("x=1")), None);
        assert_eq!(callback_key(None), None);
    }
}
