//! Response readers: pure functions from an HTTP answer to typed values or an [`EwsError`]. Everything
//! is matched by namespace URI + local name; order within an element is not relied on.

use std::time::Duration;

use crate::error::{EwsError, classify_code};
use crate::model::{
    Attendee, CalendarItem, CalendarItemType, CalendarPage, Directory, ItemId, Mailbox,
    ORB_MATCH_PROPERTY_NAME, ORB_PROPERTY_SET_ID, ResponseType, Subscription, SyncChange, SyncPage,
    parse_time,
};
use crate::series::{OccurrenceInfo, Recurrence};
use crate::xml::{self, ERRORS, Element, MESSAGES, SOAP, TYPES};

/// An HTTP answer as the client received it.
#[derive(Debug, Clone)]
pub struct HttpAnswer<'a> {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// `Retry-After` in seconds, if any.
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: &'a str,
}

fn protocol(reason: impl Into<String>) -> EwsError {
    EwsError::Protocol { reason: reason.into() }
}

/// The `BackOffMilliseconds` of a fault detail (`t:MessageXml`) or response message (`m:MessageXml`).
pub fn back_off_of(container: &Element) -> Option<Duration> {
    container
        .children
        .iter()
        .filter(|c| c.name == "MessageXml" && (c.ns == TYPES || c.ns == MESSAGES))
        .flat_map(|mx| mx.children.iter())
        .find(|v| v.name == "Value" && v.get_attr("Name") == Some("BackOffMilliseconds"))
        .and_then(|v| v.text.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// Reads an answer down to the operation's response element (the only child of `soap:Body`), turning
/// HTTP failures and SOAP faults into errors. `mailbox` is the impersonated mailbox, for messages.
pub fn operation_response(answer: &HttpAnswer<'_>, mailbox: Option<&str>) -> Result<Element, EwsError> {
    if answer.status == 401 {
        return Err(EwsError::Unauthorized { status: 401 });
    }
    let is_html = answer.content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html"))
        || answer.body.trim_start().get(..15).is_some_and(|s| {
            let s = s.to_ascii_lowercase();
            s.starts_with("<!doctype html") || s.starts_with("<html")
        });
    let transient = |what: String| EwsError::Transient { status: Some(answer.status), what };
    // A 503 / 429 with `Retry-After` is honoured whatever its body (IIS answers 503 with an HTML page).
    if (answer.status == 503 || answer.status == 429)
        && let Some(wait) = answer.retry_after
    {
        return Err(EwsError::Busy { code: format!("HTTP {}", answer.status), back_off: Some(wait) });
    }
    if is_html {
        return Err(match answer.status {
            200..=299 => protocol("an HTML page instead of a SOAP answer"),
            s => transient(format!("HTTP {s} with an HTML error page")),
        });
    }
    if answer.status == 503 || answer.status == 429 {
        return Err(transient(format!("HTTP {}", answer.status)));
    }
    let parsed = xml::parse(answer.body);
    let envelope = match parsed {
        Ok(e) if e.is(SOAP, "Envelope") => e,
        Ok(_) | Err(_) if answer.status >= 500 => return Err(transient(format!("HTTP {}", answer.status))),
        Ok(e) => {
            return Err(protocol(format!(
                "the root element is {{{}}}{}, not a SOAP 1.1 Envelope",
                e.ns, e.name
            )));
        }
        Err(e) => return Err(protocol(e.to_string())),
    };
    let body = envelope.find(SOAP, "Body").ok_or_else(|| protocol("the envelope has no Body"))?;
    if let Some(fault) = body.find(SOAP, "Fault") {
        return Err(fault_error(fault, mailbox));
    }
    if answer.status >= 500 {
        return Err(transient(format!("HTTP {} without a SOAP fault", answer.status)));
    }
    if !(200..300).contains(&answer.status) {
        return Err(protocol(format!("HTTP {}", answer.status)));
    }
    body.children.first().cloned().ok_or_else(|| protocol("the SOAP Body is empty"))
}

/// Classifies a SOAP 1.1 fault by its `e:ResponseCode` (or the local part of `faultcode`).
pub fn fault_error(fault: &Element, mailbox: Option<&str>) -> EwsError {
    let detail = fault.find("", "detail");
    let code = detail
        .and_then(|d| d.child_text(ERRORS, "ResponseCode"))
        .map(str::to_owned)
        .or_else(|| {
            fault.child_text("", "faultcode").map(|c| c.rsplit(':').next().unwrap_or(c).trim().to_owned())
        })
        .unwrap_or_else(|| "SoapFault".to_owned());
    let message = detail
        .and_then(|d| d.child_text(ERRORS, "Message"))
        .or_else(|| fault.child_text("", "faultstring"))
        .unwrap_or_default();
    let back_off = detail.and_then(back_off_of);
    classify_code(code.trim(), message, mailbox, back_off)
}

/// The `…ResponseMessage` elements of an operation response (`m:ResponseMessages/*`).
pub fn response_messages(op: &Element) -> Result<Vec<&Element>, EwsError> {
    let msgs = op
        .find(MESSAGES, "ResponseMessages")
        .ok_or_else(|| protocol(format!("{} has no ResponseMessages", op.name)))?;
    Ok(msgs.children.iter().collect())
}

/// Checks one message's (or a room operation's) `ResponseClass`: `Error` becomes an error, `Success`
/// and `Warning` pass.
pub fn check_class(msg: &Element, mailbox: Option<&str>) -> Result<(), EwsError> {
    match msg.get_attr("ResponseClass") {
        Some("Success") | Some("Warning") => Ok(()),
        Some("Error") => {
            let code = msg.child_text(MESSAGES, "ResponseCode").unwrap_or("ErrorUnknown").trim();
            let text = msg.child_text(MESSAGES, "MessageText").unwrap_or_default();
            Err(classify_code(code, text, mailbox, back_off_of(msg)))
        }
        other => Err(protocol(format!("{} has ResponseClass {other:?}", msg.name))),
    }
}

/// The single message of a one-item operation, checked.
pub fn single_message<'a>(op: &'a Element, mailbox: Option<&str>) -> Result<&'a Element, EwsError> {
    let msgs = response_messages(op)?;
    let [msg] = msgs.as_slice() else {
        return Err(protocol(format!("{} has {} messages, expected one", op.name, msgs.len())));
    };
    check_class(msg, mailbox)?;
    Ok(msg)
}

fn item_id_of(el: &Element) -> Result<ItemId, EwsError> {
    let id = el.get_attr("Id").ok_or_else(|| protocol("an ItemId without Id"))?;
    Ok(ItemId { id: id.to_owned(), change_key: el.get_attr("ChangeKey").map(str::to_owned) })
}

fn mailbox_of(el: &Element) -> Mailbox {
    let mb = el.find(TYPES, "Mailbox").unwrap_or(el);
    Mailbox {
        name: mb.child_text(TYPES, "Name").map(str::to_owned),
        email: mb.child_text(TYPES, "EmailAddress").map(str::to_owned),
    }
}

fn attendees(el: Option<&Element>) -> Vec<Attendee> {
    el.map(|list| {
        list.find_all(TYPES, "Attendee")
            .map(|a| Attendee {
                mailbox: mailbox_of(a),
                response: a.child_text(TYPES, "ResponseType").map(ResponseType::parse),
            })
            .collect()
    })
    .unwrap_or_default()
}

fn time(el: &Element, name: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, EwsError> {
    match el.child_text(TYPES, name) {
        None => Ok(None),
        Some(s) => parse_time(s)
            .map(Some)
            .ok_or_else(|| protocol(format!("{name} `{s}` is not a zoned xs:dateTime"))),
    }
}

fn boolean(el: &Element, name: &str) -> Option<bool> {
    el.child_text(TYPES, name).map(|s| matches!(s.trim(), "true" | "1"))
}

/// Whether an `ExtendedFieldURI` is ORB's match property (GUID compared case-insensitively).
pub fn is_match_uri(uri: &Element) -> bool {
    uri.get_attr("PropertySetId").is_some_and(|g| g.eq_ignore_ascii_case(ORB_PROPERTY_SET_ID))
        && uri.get_attr("PropertyName") == Some(ORB_MATCH_PROPERTY_NAME)
}

/// Reads an occurrence summary (`t:FirstOccurrence`, `t:LastOccurrence`, `t:Occurrence`).
fn occurrence_info(el: &Element) -> Result<OccurrenceInfo, EwsError> {
    let need = |name: &str| time(el, name)?.ok_or_else(|| protocol(format!("{} without {name}", el.name)));
    Ok(OccurrenceInfo {
        item_id: item_id_of(
            el.find(TYPES, "ItemId").ok_or_else(|| protocol(format!("{} without ItemId", el.name)))?,
        )?,
        start: need("Start")?,
        end: need("End")?,
        original_start: need("OriginalStart")?,
    })
}

/// Reads a `t:CalendarItem`.
pub fn calendar_item(el: &Element) -> Result<CalendarItem, EwsError> {
    let item_id =
        item_id_of(el.find(TYPES, "ItemId").ok_or_else(|| protocol("a CalendarItem without ItemId"))?)?;
    let match_id = el
        .find_all(TYPES, "ExtendedProperty")
        .find(|p| p.find(TYPES, "ExtendedFieldURI").is_some_and(is_match_uri))
        .and_then(|p| p.child_text(TYPES, "Value"))
        .map(str::to_owned);
    Ok(CalendarItem {
        item_id,
        subject: el.child_text(TYPES, "Subject").map(str::to_owned),
        match_id,
        last_modified: time(el, "LastModifiedTime")?,
        uid: el.child_text(TYPES, "UID").map(str::to_owned),
        start: time(el, "Start")?,
        end: time(el, "End")?,
        location: el.child_text(TYPES, "Location").map(str::to_owned),
        is_cancelled: boolean(el, "IsCancelled"),
        item_type: el.child_text(TYPES, "CalendarItemType").and_then(CalendarItemType::parse),
        my_response: el.child_text(TYPES, "MyResponseType").map(ResponseType::parse),
        free_busy: el.child_text(TYPES, "LegacyFreeBusyStatus").map(str::to_owned),
        organizer: el.find(TYPES, "Organizer").map(mailbox_of),
        required_attendees: attendees(el.find(TYPES, "RequiredAttendees")),
        resources: attendees(el.find(TYPES, "Resources")),
        appointment_state: el.child_text(TYPES, "AppointmentState").and_then(|s| s.trim().parse().ok()),
        original_start: time(el, "OriginalStart")?,
        recurrence: el
            .find(TYPES, "Recurrence")
            .map(|r| Recurrence::parse(r).map_err(|e| protocol(format!("Recurrence: {e}"))))
            .transpose()?,
        first_occurrence: el.find(TYPES, "FirstOccurrence").map(occurrence_info).transpose()?,
        last_occurrence: el.find(TYPES, "LastOccurrence").map(occurrence_info).transpose()?,
        modified_occurrences: match el.find(TYPES, "ModifiedOccurrences") {
            Some(list) => {
                list.find_all(TYPES, "Occurrence").map(occurrence_info).collect::<Result<_, _>>()?
            }
            None => Vec::new(),
        },
        deleted_occurrences: match el.find(TYPES, "DeletedOccurrences") {
            Some(list) => list
                .find_all(TYPES, "DeletedOccurrence")
                .map(|d| time(d, "Start")?.ok_or_else(|| protocol("a DeletedOccurrence without Start")))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        },
        start_time_zone: el.find(TYPES, "StartTimeZone").and_then(|z| z.get_attr("Id")).map(str::to_owned),
    })
}

/// Reads a `FindItemResponse` with a calendar view.
pub fn find_item(op: &Element, mailbox: Option<&str>) -> Result<CalendarPage, EwsError> {
    let msg = single_message(op, mailbox)?;
    let root = msg.find(MESSAGES, "RootFolder").ok_or_else(|| protocol("FindItem without RootFolder"))?;
    let items = match root.find(TYPES, "Items") {
        Some(items) => items.find_all(TYPES, "CalendarItem").map(calendar_item).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    Ok(CalendarPage { items, includes_last: root.get_attr("IncludesLastItemInRange") != Some("false") })
}

/// Reads a `GetItemResponse`: one result per requested id, in order (an error per id stays per id).
pub fn get_item(
    op: &Element,
    mailbox: Option<&str>,
) -> Result<Vec<Result<CalendarItem, EwsError>>, EwsError> {
    Ok(response_messages(op)?
        .into_iter()
        .map(|msg| {
            check_class(msg, mailbox)?;
            let item = msg
                .path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")])
                .ok_or_else(|| protocol("GetItem answered no CalendarItem"))?;
            calendar_item(item)
        })
        .collect())
}

/// Reads the item id of a one-item `CreateItem` / `UpdateItem` answer.
pub fn written_item(op: &Element, mailbox: Option<&str>) -> Result<ItemId, EwsError> {
    let msg = single_message(op, mailbox)?;
    let items = msg.find(MESSAGES, "Items").ok_or_else(|| protocol(format!("{} without Items", msg.name)))?;
    let id = items
        .children
        .iter()
        .find_map(|item| item.find(TYPES, "ItemId"))
        .ok_or_else(|| protocol(format!("{} without an ItemId", msg.name)))?;
    item_id_of(id)
}

/// Checks an answer with no payload ORB reads (`DeleteItem`, `Unsubscribe`, a cancellation).
pub fn no_payload(op: &Element, mailbox: Option<&str>) -> Result<(), EwsError> {
    single_message(op, mailbox).map(|_| ())
}

/// Reads a `SyncFolderItemsResponse`.
pub fn sync_folder_items(op: &Element, mailbox: Option<&str>) -> Result<SyncPage, EwsError> {
    let msg = single_message(op, mailbox)?;
    let sync_state =
        msg.child_text(MESSAGES, "SyncState").ok_or_else(|| protocol("SyncFolderItems without SyncState"))?;
    let mut changes = Vec::new();
    if let Some(list) = msg.find(MESSAGES, "Changes") {
        for c in &list.children {
            let item =
                || c.find(TYPES, "CalendarItem").ok_or_else(|| protocol("a change without CalendarItem"));
            match c.name.as_str() {
                "Create" => changes.push(SyncChange::Create(calendar_item(item()?)?)),
                "Update" => changes.push(SyncChange::Update(calendar_item(item()?)?)),
                "Delete" => changes.push(SyncChange::Delete(item_id_of(
                    c.find(TYPES, "ItemId").ok_or_else(|| protocol("a Delete without ItemId"))?,
                )?)),
                // ReadFlagChange (mail) and unknown kinds do not concern calendars.
                _ => {}
            }
        }
    }
    Ok(SyncPage {
        sync_state: sync_state.trim().to_owned(),
        includes_last: msg.child_text(MESSAGES, "IncludesLastItemInRange").map(str::trim) != Some("false"),
        changes,
    })
}

fn directory(el: &Element) -> Option<Directory> {
    Some(Directory {
        name: el.child_text(TYPES, "Name").unwrap_or_default().to_owned(),
        email: el.child_text(TYPES, "EmailAddress")?.trim().to_owned(),
    })
}

/// Reads a `GetRoomListsResponse` (not wrapped in `ResponseMessages`).
pub fn room_lists(op: &Element) -> Result<Vec<Directory>, EwsError> {
    check_class(op, None)?;
    Ok(op
        .find(MESSAGES, "RoomLists")
        .map(|l| l.find_all(TYPES, "Address").filter_map(directory).collect())
        .unwrap_or_default())
}

/// Reads a `GetRoomsResponse` (not wrapped in `ResponseMessages`).
pub fn rooms(op: &Element) -> Result<Vec<Directory>, EwsError> {
    check_class(op, None)?;
    Ok(op
        .find(MESSAGES, "Rooms")
        .map(|l| {
            l.find_all(TYPES, "Room").filter_map(|r| r.find(TYPES, "Id")).filter_map(directory).collect()
        })
        .unwrap_or_default())
}

/// Reads a `SubscribeResponse`.
pub fn subscribe(op: &Element, mailbox: Option<&str>) -> Result<Subscription, EwsError> {
    let msg = single_message(op, mailbox)?;
    Ok(Subscription {
        id: msg
            .child_text(MESSAGES, "SubscriptionId")
            .ok_or_else(|| protocol("Subscribe without SubscriptionId"))?
            .trim()
            .to_owned(),
        watermark: msg.child_text(MESSAGES, "Watermark").map(|w| w.trim().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> HttpAnswer<'_> {
        HttpAnswer { status, content_type: Some("text/xml; charset=utf-8"), retry_after: None, body }
    }

    const BUSY_FAULT: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
      <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
      <faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>
      <detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>
        <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">busy</e:Message>
        <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml>
      </detail></s:Fault></s:Body></s:Envelope>"#;

    #[test]
    fn http_level_failures_are_classified() {
        let e = operation_response(&answer(500, BUSY_FAULT), None).unwrap_err();
        assert_eq!(
            e,
            EwsError::Busy { code: "ErrorServerBusy".into(), back_off: Some(Duration::from_millis(297_749)) }
        );
        let html = HttpAnswer {
            content_type: Some("text/html"),
            ..answer(500, "<html><body>Runtime Error</body></html>")
        };
        assert!(operation_response(&html, None).unwrap_err().is_retryable());
        let e503 = operation_response(&answer(503, ""), None).unwrap_err();
        assert!(matches!(e503, EwsError::Transient { status: Some(503), .. }));
        let after = HttpAnswer { retry_after: Some(Duration::from_secs(7)), ..answer(503, "") };
        assert_eq!(operation_response(&after, None).unwrap_err().retry_after(), Some(Duration::from_secs(7)));
        // IIS's HTML 503 page with Retry-After: still the wait Exchange asked for.
        let iis = HttpAnswer {
            content_type: Some("text/html"),
            retry_after: Some(Duration::from_secs(7)),
            ..answer(503, "<!DOCTYPE HTML PUBLIC><HTML><BODY><h2>Service Unavailable</h2></BODY></HTML>")
        };
        assert_eq!(operation_response(&iis, None).unwrap_err().retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            operation_response(&answer(401, ""), None).unwrap_err(),
            EwsError::Unauthorized { status: 401 }
        );
        assert!(matches!(
            operation_response(&answer(200, "{}"), None).unwrap_err(),
            EwsError::Protocol { .. }
        ));
        // The https spelling of the SOAP namespace is not SOAP.
        let https =
            r#"<s:Envelope xmlns:s="https://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"#;
        assert!(matches!(
            operation_response(&answer(200, https), None).unwrap_err(),
            EwsError::Protocol { .. }
        ));
    }

    #[test]
    fn a_schema_validation_fault_is_permanent() {
        let fault = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
          <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorSchemaValidation</faultcode>
          <faultstring>The request failed schema validation.</faultstring>
          <detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorSchemaValidation</e:ResponseCode>
          <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The request failed schema validation.</e:Message>
          <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:LineNumber>2</t:LineNumber><t:LinePosition>7</t:LinePosition><t:Violation>x</t:Violation></t:MessageXml>
          </detail></s:Fault></s:Body></s:Envelope>"#;
        let e = operation_response(&answer(500, fault), None).unwrap_err();
        assert!(matches!(&e, EwsError::Rejected { code, .. } if code == "ErrorSchemaValidation"), "{e:?}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn per_message_errors_are_classified_per_message() {
        let body = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
          <GetItemResponse xmlns="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
          <ResponseMessages>
            <GetItemResponseMessage ResponseClass="Success"><ResponseCode>NoError</ResponseCode><Items><t:CalendarItem><t:ItemId Id="A" ChangeKey="K"/><t:Start>2026-09-01T10:00:00+02:00</t:Start></t:CalendarItem></Items></GetItemResponseMessage>
            <GetItemResponseMessage ResponseClass="Error"><MessageText>The specified object was not found in the store.</MessageText><ResponseCode>ErrorItemNotFound</ResponseCode><DescriptiveLinkKey>0</DescriptiveLinkKey><Items/></GetItemResponseMessage>
          </ResponseMessages></GetItemResponse></soap:Body></soap:Envelope>"#;
        let op = operation_response(&answer(200, body), None).unwrap();
        let results = get_item(&op, None).unwrap();
        let first = results[0].as_ref().unwrap();
        assert_eq!(first.item_id, ItemId::new("A", "K"));
        assert_eq!(first.start.unwrap().to_rfc3339(), "2026-09-01T08:00:00+00:00");
        assert!(matches!(results[1], Err(EwsError::NotFound { .. })));
    }
}
