//! Push notifications as pure functions: reading the `SendNotification` body Exchange POSTs to ORB's
//! `POST /hooks/ews/{tenant}` and writing the `SendNotificationResult` answer (`OK` / `Unsubscribe`), plus
//! the other direction for the emulator (writing a notification, reading the answer). The notification
//! model ([`Notification`], [`Event`], [`EventKind`]) is shared with streaming ([`crate::streaming`]).

use chrono::{DateTime, Utc};

use crate::error::{EwsError, classify_code};
use crate::model::{ItemId, format_time, parse_time};
use crate::xml::{self, Element, MESSAGES, SOAP, TYPES};

/// The kind of a notification event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `CreatedEvent`.
    Created,
    /// `ModifiedEvent`.
    Modified,
    /// `DeletedEvent`.
    Deleted,
    /// `MovedEvent`.
    Moved,
    /// `CopiedEvent`.
    Copied,
    /// `NewMailEvent`.
    NewMail,
    /// `FreeBusyChangedEvent`.
    FreeBusyChanged,
    /// `StatusEvent` (keep-alive).
    Status,
}

impl EventKind {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CreatedEvent",
            Self::Modified => "ModifiedEvent",
            Self::Deleted => "DeletedEvent",
            Self::Moved => "MovedEvent",
            Self::Copied => "CopiedEvent",
            Self::NewMail => "NewMailEvent",
            Self::FreeBusyChanged => "FreeBusyChangedEvent",
            Self::Status => "StatusEvent",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "CreatedEvent" => Self::Created,
            "ModifiedEvent" => Self::Modified,
            "DeletedEvent" => Self::Deleted,
            "MovedEvent" => Self::Moved,
            "CopiedEvent" => Self::Copied,
            "NewMailEvent" => Self::NewMail,
            "FreeBusyChangedEvent" => Self::FreeBusyChanged,
            "StatusEvent" => Self::Status,
            _ => return None,
        })
    }
}

/// One event of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Kind.
    pub kind: EventKind,
    /// `Watermark`.
    pub watermark: Option<String>,
    /// `TimeStamp`.
    pub timestamp: Option<DateTime<Utc>>,
    /// `ItemId` (item events).
    pub item_id: Option<ItemId>,
    /// `FolderId` `Id` (folder events).
    pub folder_id: Option<String>,
    /// `ParentFolderId` `Id`.
    pub parent_folder_id: Option<String>,
    /// `UnreadCount` (folder `ModifiedEvent`s).
    pub unread_count: Option<u32>,
    /// `OldItemId` (`MovedEvent` / `CopiedEvent` of an item: the id it had before).
    pub old_item_id: Option<ItemId>,
    /// `OldParentFolderId` `Id` (moves and copies).
    pub old_parent_folder_id: Option<String>,
}

/// One `Notification`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `SubscriptionId`.
    pub subscription_id: String,
    /// `PreviousWatermark`.
    pub previous_watermark: Option<String>,
    /// `MoreEvents`: more queued events follow in further notifications.
    pub more_events: bool,
    /// The events in order.
    pub events: Vec<Event>,
}

impl Notification {
    /// The watermark to keep: the last event's.
    pub fn last_watermark(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|e| e.watermark.as_deref())
    }
}

/// The listener's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// Keep sending.
    Ok,
    /// End the subscription (the documented way to end a push subscription).
    Unsubscribe,
}

fn protocol(reason: impl Into<String>) -> EwsError {
    EwsError::Protocol { reason: reason.into() }
}

/// Reads one `Notification` element (push and streaming alike).
pub(crate) fn notification_of(n: &Element) -> Result<Notification, EwsError> {
    let subscription_id = n
        .child_text(TYPES, "SubscriptionId")
        .ok_or_else(|| protocol("a notification without SubscriptionId"))?
        .trim()
        .to_owned();
    Ok(Notification {
        subscription_id,
        previous_watermark: n.child_text(TYPES, "PreviousWatermark").map(|w| w.trim().to_owned()),
        more_events: n.child_text(TYPES, "MoreEvents").is_some_and(|m| m.trim() == "true"),
        events: n.children.iter().filter_map(event).collect(),
    })
}

fn item_id_of(i: &Element) -> Option<ItemId> {
    Some(ItemId { id: i.get_attr("Id")?.to_owned(), change_key: i.get_attr("ChangeKey").map(str::to_owned) })
}

fn event(el: &Element) -> Option<Event> {
    let kind = EventKind::parse(&el.name)?;
    let id_attr = |name: &str| el.find(TYPES, name).and_then(|f| f.get_attr("Id")).map(str::to_owned);
    Some(Event {
        kind,
        watermark: el.child_text(TYPES, "Watermark").map(|w| w.trim().to_owned()),
        timestamp: el.child_text(TYPES, "TimeStamp").and_then(parse_time),
        item_id: el.find(TYPES, "ItemId").and_then(item_id_of),
        folder_id: id_attr("FolderId"),
        parent_folder_id: id_attr("ParentFolderId"),
        unread_count: el.child_text(TYPES, "UnreadCount").and_then(|u| u.trim().parse().ok()),
        old_item_id: el.find(TYPES, "OldItemId").and_then(item_id_of),
        old_parent_folder_id: id_attr("OldParentFolderId"),
    })
}

/// Reads the body of a push callback. Each `SendNotificationResponseMessage` gives one notification; a
/// message with `ResponseClass="Error"` (e.g. `ErrorReadEventsFailed`: the subscription was deleted)
/// is returned as its error. Anything that is not a `SendNotification` envelope is a protocol error
/// (the intake answers it with 400 and changes nothing).
pub fn parse_notification(body: &str) -> Result<Vec<Notification>, EwsError> {
    let envelope = xml::parse(body).map_err(|e| protocol(e.to_string()))?;
    if !envelope.is(SOAP, "Envelope") {
        return Err(protocol("not a SOAP 1.1 envelope"));
    }
    let send = envelope
        .path(&[(SOAP, "Body"), (MESSAGES, "SendNotification")])
        .ok_or_else(|| protocol("the body holds no m:SendNotification"))?;
    let messages = send
        .find(MESSAGES, "ResponseMessages")
        .ok_or_else(|| protocol("SendNotification without ResponseMessages"))?;
    let mut out = Vec::new();
    for msg in messages.find_all(MESSAGES, "SendNotificationResponseMessage") {
        if msg.get_attr("ResponseClass") == Some("Error") {
            let code = msg.child_text(MESSAGES, "ResponseCode").unwrap_or("ErrorUnknown").trim();
            return Err(classify_code(
                code,
                msg.child_text(MESSAGES, "MessageText").unwrap_or_default(),
                None,
                None,
            ));
        }
        // `m:Notification` on the wire; the schema's type lives in types.xsd: accept both.
        let n = msg
            .children
            .iter()
            .find(|c| c.name == "Notification" && (c.ns == MESSAGES || c.ns == TYPES))
            .ok_or_else(|| protocol("a notification message without Notification"))?;
        out.push(notification_of(n)?);
    }
    if out.is_empty() {
        return Err(protocol("SendNotification carries no notification"));
    }
    Ok(out)
}

/// The answer ORB's listener sends (HTTP 200, `text/xml`).
pub fn notification_result(status: SubscriptionStatus) -> String {
    let status = match status {
        SubscriptionStatus::Ok => "OK",
        SubscriptionStatus::Unsubscribe => "Unsubscribe",
    };
    Element::new(SOAP, "Envelope")
        .child(
            Element::new(SOAP, "Body").child(
                Element::new(MESSAGES, "SendNotificationResult")
                    .child(Element::new(MESSAGES, "SubscriptionStatus").text(status)),
            ),
        )
        .to_document()
}

/// Reads a listener's answer (emulator side). Anything but a well-formed `SendNotificationResult` is an
/// error (a failed delivery).
pub fn parse_notification_result(body: &str) -> Result<SubscriptionStatus, EwsError> {
    let envelope = xml::parse(body).map_err(|e| protocol(e.to_string()))?;
    let status = envelope
        .path(&[(SOAP, "Body"), (MESSAGES, "SendNotificationResult"), (MESSAGES, "SubscriptionStatus")])
        .ok_or_else(|| protocol("no m:SendNotificationResult/m:SubscriptionStatus"))?;
    match status.text.trim() {
        "OK" => Ok(SubscriptionStatus::Ok),
        "Unsubscribe" => Ok(SubscriptionStatus::Unsubscribe),
        other => Err(protocol(format!("SubscriptionStatus `{other}`"))),
    }
}

fn event_element(e: &Event) -> Element {
    let t = |n: &str| Element::new(TYPES, n);
    let mut el = t(e.kind.as_str()).child_opt(e.watermark.as_ref().map(|w| t("Watermark").text(w.as_str())));
    if e.kind != EventKind::Status {
        el = el.child_opt(e.timestamp.map(|ts| t("TimeStamp").text(format_time(ts))));
        let item = |name: &str, id: &ItemId| {
            let i = t(name).attr("Id", id.id.as_str());
            match &id.change_key {
                Some(ck) => i.attr("ChangeKey", ck.as_str()),
                None => i,
            }
        };
        el = el
            .child_opt(e.item_id.as_ref().map(|id| item("ItemId", id)))
            .child_opt(e.folder_id.as_ref().map(|f| t("FolderId").attr("Id", f.as_str())))
            .child_opt(e.parent_folder_id.as_ref().map(|f| t("ParentFolderId").attr("Id", f.as_str())))
            .child_opt(e.old_item_id.as_ref().map(|id| item("OldItemId", id)))
            .child_opt(e.old_parent_folder_id.as_ref().map(|f| t("OldParentFolderId").attr("Id", f.as_str())))
            .child_opt(e.unread_count.map(|u| t("UnreadCount").text(u.to_string())));
    }
    el
}

/// One `m:Notification` element (push and streaming alike; `m:` as servers write it, ews.md §4.2).
pub(crate) fn notification_element(n: &Notification) -> Element {
    let t = |name: &str| Element::new(TYPES, name);
    Element::new(MESSAGES, "Notification")
        .child(t("SubscriptionId").text(n.subscription_id.as_str()))
        .child_opt(n.previous_watermark.as_ref().map(|w| t("PreviousWatermark").text(w.as_str())))
        .child(t("MoreEvents").text(if n.more_events { "true" } else { "false" }))
        .children(n.events.iter().map(event_element))
}

/// Writes a `SendNotification` request as Exchange POSTs it (emulator side).
pub fn notification_document(n: &Notification) -> String {
    let t = |name: &str| Element::new(TYPES, name);
    let notification = notification_element(n);
    Element::new(SOAP, "Envelope")
        .child(Element::new(SOAP, "Header").child(t("RequestServerVersion").attr("Version", "Exchange2016")))
        .child(
            Element::new(SOAP, "Body").child(
                Element::new(MESSAGES, "SendNotification").child(
                    Element::new(MESSAGES, "ResponseMessages").child(
                        Element::new(MESSAGES, "SendNotificationResponseMessage")
                            .attr("ResponseClass", "Success")
                            .child(Element::new(MESSAGES, "ResponseCode").text("NoError"))
                            .child(notification),
                    ),
                ),
            ),
        )
        .to_document()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_notifications_read_back() {
        let n = Notification {
            subscription_id: "s-1".into(),
            previous_watermark: Some("w0".into()),
            more_events: true,
            events: vec![
                Event {
                    kind: EventKind::Created,
                    watermark: Some("w1".into()),
                    timestamp: parse_time("2026-08-20T09:12:44Z"),
                    item_id: Some(ItemId::new("A", "K")),
                    folder_id: None,
                    parent_folder_id: Some("cal".into()),
                    unread_count: None,
                    old_item_id: None,
                    old_parent_folder_id: None,
                },
                Event {
                    kind: EventKind::Moved,
                    watermark: Some("w1b".into()),
                    timestamp: parse_time("2026-08-20T09:13:00Z"),
                    item_id: Some(ItemId::new("B", "K2")),
                    folder_id: None,
                    parent_folder_id: Some("deleted".into()),
                    unread_count: None,
                    old_item_id: Some(ItemId::new("A", "K")),
                    old_parent_folder_id: Some("cal".into()),
                },
                Event {
                    kind: EventKind::Status,
                    watermark: Some("w2".into()),
                    timestamp: None,
                    item_id: None,
                    folder_id: None,
                    parent_folder_id: None,
                    unread_count: None,
                    old_item_id: None,
                    old_parent_folder_id: None,
                },
            ],
        };
        let back = parse_notification(&notification_document(&n)).unwrap();
        assert_eq!(back, vec![n.clone()]);
        assert_eq!(back[0].last_watermark(), Some("w2"));
    }

    #[test]
    fn answers_round_trip_and_garbage_is_refused() {
        for s in [SubscriptionStatus::Ok, SubscriptionStatus::Unsubscribe] {
            assert_eq!(parse_notification_result(&notification_result(s)).unwrap(), s);
        }
        assert!(parse_notification_result("<x/>").is_err());
        for bad in [
            "",
            "not xml",
            "<a/>",
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"#,
        ] {
            assert!(matches!(parse_notification(bad), Err(EwsError::Protocol { .. })), "{bad}");
        }
    }

    #[test]
    fn an_error_message_means_the_subscription_is_gone() {
        let body = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
          <m:SendNotification xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages>
          <m:SendNotificationResponseMessage ResponseClass="Error"><m:MessageText>x</m:MessageText><m:ResponseCode>ErrorReadEventsFailed</m:ResponseCode></m:SendNotificationResponseMessage>
          </m:ResponseMessages></m:SendNotification></s:Body></s:Envelope>"#;
        assert!(matches!(parse_notification(body), Err(EwsError::SubscriptionLost { .. })));
    }
}
