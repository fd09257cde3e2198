//! The EWS operations on the state: each reads the operation element, changes the state like Exchange
//! and answers with the operation's response element (per-message `ResponseClass`), or a SOAP-level
//! `Fault` for request-level refusals (schema validation).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use orb_ews::model::parse_time;
use orb_ews::series::Recurrence;
use orb_ews::xml::{Element, MESSAGES, TYPES};

use super::render::{prop_key, render, shape};
use super::series::{self as ser, Target};
use super::state::{Att, Inner, Item, Kind, PropKey, Refusal, refuse};
use super::{find, folders, mail};

/// A request-level refusal, answered as a SOAP fault (HTTP 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) back_off_ms: Option<u64>,
}

pub(crate) fn fault(code: &'static str, message: impl Into<String>) -> Fault {
    Fault { code, message: message.into(), back_off_ms: None }
}

pub(crate) fn schema(message: impl Into<String>) -> Fault {
    fault("ErrorSchemaValidation", format!("The request failed schema validation: {}", message.into()))
}

/// Who is asking.
pub(crate) struct Ctx<'a> {
    pub(crate) account: &'a str,
    pub(crate) mailbox: Option<&'a str>,
    pub(crate) now: DateTime<Utc>,
}

impl Ctx<'_> {
    pub(super) fn mailbox(&self) -> Result<&str, Fault> {
        self.mailbox.ok_or_else(|| {
            fault("ErrorNonExistentMailbox", "The service account has no mailbox; impersonate a mailbox.")
        })
    }
}

pub(super) fn t(name: &str) -> Element {
    Element::new(TYPES, name)
}

pub(super) fn m(name: &str) -> Element {
    Element::new(MESSAGES, name)
}

/// A `…ResponseMessage`: `Success` with `NoError` and the payload, or `Error` with the code.
pub(super) fn message(name: &str, result: Result<Vec<Element>, Refusal>) -> Element {
    let el = m(&format!("{name}ResponseMessage"));
    match result {
        Ok(payload) => {
            el.attr("ResponseClass", "Success").child(m("ResponseCode").text("NoError")).children(payload)
        }
        Err(r) => el
            .attr("ResponseClass", "Error")
            .child(m("MessageText").text(r.message))
            .child(m("ResponseCode").text(r.code))
            .child(m("DescriptiveLinkKey").text("0")),
    }
}

pub(super) fn response(name: &str, messages: Vec<Element>) -> Element {
    m(&format!("{name}Response")).child(m("ResponseMessages").children(messages))
}

/// Dispatches on the body's root element.
pub(crate) fn dispatch(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    if op.ns != MESSAGES {
        return Err(fault("ErrorInvalidRequest", "The request is invalid: unknown operation namespace."));
    }
    match op.name.as_str() {
        "FindItem" => find::find_item(inner, ctx, op),
        "GetItem" => get_item(inner, ctx, op),
        "CreateItem" => create_item(inner, ctx, op),
        "UpdateItem" => update_item(inner, ctx, op),
        "DeleteItem" => delete_item(inner, ctx, op),
        "GetRoomLists" => Ok(folders::get_room_lists(inner)),
        "GetRooms" => Ok(folders::get_rooms(inner, op)),
        "SyncFolderItems" => folders::sync_folder_items(inner, ctx, op),
        "Subscribe" => folders::subscribe(inner, ctx, op),
        "Unsubscribe" => folders::unsubscribe(inner, ctx, op),
        _ => Err(fault(
            "ErrorInvalidRequest",
            format!("The request is invalid: {} is not supported.", op.name),
        )),
    }
}

// ---------------------------------------------------------------------------------------------------
// GetItem (FindItem is in `find`)

/// The id elements of `ItemIds` (`ItemId`, `OccurrenceItemId`, `RecurringMasterItemId`).
fn ids_of(op: &Element) -> Result<Vec<&Element>, Fault> {
    let ids = op.find(MESSAGES, "ItemIds").ok_or_else(|| schema("ItemIds is required"))?;
    Ok(ids.children.iter().collect())
}

fn get_item(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    let mb = ctx.mailbox()?;
    let props = shape(op)?;
    let msgs = ids_of(op)?
        .into_iter()
        .map(|el| {
            let item = ser::resolve(inner, mb, el).and_then(|(target, _)| match target {
                Target::Item(id) => inner.live(mb, &id).cloned(),
                Target::Occurrence { master, original_start } => {
                    ser::get_occurrence(inner, mb, &master, original_start)
                }
            });
            message("GetItem", item.map(|item| vec![m("Items").child(render(&item, &props, false))]))
        })
        .collect();
    Ok(response("GetItem", msgs))
}

// ---------------------------------------------------------------------------------------------------
// CreateItem (meetings, cancellations; mail is in `mail`)

/// `t:CalendarItem` children the emulator knows, in the schema's order (U13: enforced).
const CALENDAR_ORDER: &[&str] = &[
    "Subject",
    "Sensitivity",
    "Body",
    "Categories",
    "Importance",
    "ReminderIsSet",
    "ReminderMinutesBeforeStart",
    "ExtendedProperty",
    "UID",
    "Start",
    "End",
    "IsAllDayEvent",
    "LegacyFreeBusyStatus",
    "Location",
    "RequiredAttendees",
    "OptionalAttendees",
    "Resources",
    "Recurrence",
    "StartTimeZone",
    "EndTimeZone",
];

/// Refuses an item whose children are not in `order` (the known part of its schema sequence), or not
/// known, with `ErrorSchemaValidation`.
pub(super) fn check_order(item: &Element, order: &[&str]) -> Result<(), Fault> {
    let mut last = 0;
    for c in &item.children {
        let pos = order
            .iter()
            .position(|n| *n == c.name && c.ns == TYPES)
            .ok_or_else(|| schema(format!("unexpected element {} in {}", c.name, item.name)))?;
        if pos < last {
            return Err(schema(format!(
                "element {} is out of the schema's sequence in {}",
                c.name, item.name
            )));
        }
        last = pos;
    }
    Ok(())
}

fn att_list(inner: &Inner, el: Option<&Element>) -> Vec<Att> {
    el.map(|list| {
        list.find_all(TYPES, "Attendee")
            .filter_map(|a| {
                let email =
                    a.path(&[(TYPES, "Mailbox"), (TYPES, "EmailAddress")])?.text.trim().to_ascii_lowercase();
                let name =
                    inner.mailboxes.get(&email).map(|m| m.name.clone()).unwrap_or_else(|| email.clone());
                Some(Att { name, email, response: "Unknown".into() })
            })
            .collect()
    })
    .unwrap_or_default()
}

fn ext_props(item: &Element) -> Result<BTreeMap<PropKey, String>, Fault> {
    item.find_all(TYPES, "ExtendedProperty")
        .map(|p| {
            let key = p
                .find(TYPES, "ExtendedFieldURI")
                .and_then(prop_key)
                .ok_or_else(|| schema("incomplete ExtendedFieldURI"))?;
            Ok((key, p.child_text(TYPES, "Value").unwrap_or_default().to_owned()))
        })
        .collect()
}

fn create_item(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    let mb = ctx.mailbox()?.to_owned();
    let items = op.find(MESSAGES, "Items").ok_or_else(|| schema("Items is required"))?;
    let mut msgs = Vec::new();
    for el in &items.children {
        if el.is(TYPES, "CancelCalendarItem") {
            let r = el
                .find(TYPES, "ReferenceItemId")
                .ok_or_else(|| schema("CancelCalendarItem without ReferenceItemId"))?;
            let result = ser::resolve(inner, &mb, r)
                .and_then(|(target, _)| match target {
                    Target::Item(id) => inner.cancel_meeting(&mb, &id, ctx.now),
                    Target::Occurrence { master, original_start } => {
                        let organizer = inner.live(&mb, &master)?.my_response == "Organizer";
                        if !organizer {
                            return Err(refuse(
                                "ErrorCalendarIsNotOrganizer",
                                "Only the organizer can cancel the meeting.",
                            ));
                        }
                        ser::delete_occurrence(inner, &mb, &master, original_start, true, ctx.now)
                    }
                })
                .map(|()| vec![m("Items")]);
            msgs.push(message("CreateItem", result));
            continue;
        }
        if el.is(TYPES, "Message") {
            msgs.push(mail::create_message(inner, ctx, op, el)?);
            continue;
        }
        if !el.is(TYPES, "CalendarItem") {
            return Err(fault(
                "ErrorInvalidRequest",
                format!("The emulator does not create {} items.", el.name),
            ));
        }
        check_order(el, CALENDAR_ORDER)?;
        let send = op.get_attr("SendMeetingInvitations");
        let result = create_calendar_item(inner, &mb, el, send, ctx.now);
        msgs.push(message("CreateItem", result));
    }
    Ok(response("CreateItem", msgs))
}

fn create_calendar_item(
    inner: &mut Inner,
    mb: &str,
    el: &Element,
    send: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Element>, Refusal> {
    let Some(send) = send else {
        return Err(refuse(
            "ErrorSendMeetingInvitationsRequired",
            "SendMeetingInvitations is required for calendar items.",
        ));
    };
    let when = |name: &str| {
        el.child_text(TYPES, name).and_then(parse_time).ok_or_else(|| {
            refuse("ErrorInvalidRequest", format!("{name} is required and must be a dateTime."))
        })
    };
    let (start, end) = (when("Start")?, when("End")?);
    if end <= start {
        return Err(refuse(
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "EndDate is earlier than StartDate.",
        ));
    }
    let ext = ext_props(el).map_err(|f| refuse("ErrorSchemaValidation", f.message))?;
    let owner = inner.mailboxes.get(mb).map(|m| m.name.clone()).unwrap_or_default();
    let required = att_list(inner, el.find(TYPES, "RequiredAttendees"));
    let resources = att_list(inner, el.find(TYPES, "Resources"));
    let is_meeting = !required.is_empty() || !resources.is_empty();
    let time_zone = el.find(TYPES, "StartTimeZone").and_then(|z| z.get_attr("Id")).map(str::to_owned);
    let recurrence = match el.find(TYPES, "Recurrence") {
        None => None,
        Some(r) => {
            let rec = Recurrence::parse(r).and_then(|rec| rec.validate().map(|()| rec)).map_err(|e| {
                refuse("ErrorCalendarInvalidRecurrence", format!("The recurrence is invalid: {e}."))
            })?;
            if let Some(z) = time_zone.as_deref().filter(|z| !ser::known_zone(z)) {
                return Err(refuse("ErrorInvalidRequest", format!("The time zone `{z}` is not known.")));
            }
            Some(rec)
        }
    };
    let uid = format!("040000008200E00074C5B7101A82E008{:016X}", inner.next());
    let item = Item {
        body: el.child_text(TYPES, "Body").map(str::to_owned),
        location: el.child_text(TYPES, "Location").map(str::to_owned),
        organizer: (owner, mb.to_owned()),
        required,
        resources,
        my_response: if is_meeting { "Organizer" } else { "Unknown" }.into(),
        is_meeting,
        free_busy: el.child_text(TYPES, "LegacyFreeBusyStatus").unwrap_or("Busy").to_owned(),
        time_zone,
        ext,
        kind: if recurrence.is_some() { Kind::RecurringMaster } else { Kind::Single },
        recurrence,
        ..Item::new(el.child_text(TYPES, "Subject").unwrap_or_default().to_owned(), start, end, uid, now)
    };
    let mut item = item;
    if item.recurrence.is_some() {
        let Some((first_start, first_end)) = ser::first_occurrence(&item) else {
            return Err(refuse("ErrorCalendarInvalidRecurrence", "The recurrence has no occurrence."));
        };
        (item.start, item.end) = (first_start, first_end);
    }
    let id = inner.insert(mb, item, now);
    // The answer shows the item as created; the room's response arrives after it (a new change key).
    let shown = inner.written(mb, &id);
    if is_meeting && send != "SendToNone" {
        inner.process_rooms(mb, &id, &[], now);
    }
    Ok(vec![m("Items").child(
        t("CalendarItem").child(t("ItemId").attr("Id", shown.id).attr("ChangeKey", shown.change_key)),
    )])
}

// ---------------------------------------------------------------------------------------------------
// UpdateItem

fn update_item(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    let mb = ctx.mailbox()?.to_owned();
    let conflict =
        op.get_attr("ConflictResolution").ok_or_else(|| schema("ConflictResolution is required"))?;
    if !matches!(conflict, "NeverOverwrite" | "AutoResolve" | "AlwaysOverwrite") {
        return Err(schema(format!("ConflictResolution `{conflict}` is not valid")));
    }
    let send = op.get_attr("SendMeetingInvitationsOrCancellations");
    let changes = op.find(MESSAGES, "ItemChanges").ok_or_else(|| schema("ItemChanges is required"))?;
    let mut msgs = Vec::new();
    for change in changes.find_all(TYPES, "ItemChange") {
        let id = change
            .children
            .iter()
            .find(|c| matches!(c.name.as_str(), "ItemId" | "OccurrenceItemId" | "RecurringMasterItemId"))
            .ok_or_else(|| schema("ItemChange without ItemId"))?;
        let updates = change.find(TYPES, "Updates").ok_or_else(|| schema("ItemChange without Updates"))?;
        let result = ser::resolve(inner, &mb, id).and_then(|(target, ck)| match target {
            Target::Item(item) => {
                update_one(inner, &mb, &item, ck.as_deref(), updates, conflict, send, ctx.now)
            }
            Target::Occurrence { master, original_start } => {
                let send = send.ok_or_else(|| {
                    refuse(
                        "ErrorSendMeetingInvitationsOrCancellationsRequired",
                        "SendMeetingInvitationsOrCancellations is required for calendar items.",
                    )
                })?;
                let changes = parse_updates(inner, updates)?;
                let (id, ck) = ser::modify_occurrence(
                    inner,
                    &mb,
                    &master,
                    original_start,
                    changes,
                    ck.as_deref(),
                    conflict,
                    send,
                    ctx.now,
                )?;
                Ok(written_answer(id, ck))
            }
        });
        msgs.push(message("UpdateItem", result));
    }
    Ok(response("UpdateItem", msgs))
}

/// One field change: the path's name and what to do.
pub(crate) enum FieldChange {
    Subject(String),
    Start(DateTime<Utc>),
    End(DateTime<Utc>),
    Location(String),
    Resources(Vec<Att>),
    RequiredAttendees(Vec<Att>),
    SetExt(PropKey, String),
    DeleteExt(PropKey),
    ClearLocation,
    ClearOptionalAttendees,
    /// `DeleteItemField` of `calendar:RequiredAttendees`: every person removed.
    ClearRequiredAttendees,
    /// `DeleteItemField` of `calendar:Resources`: the rooms dropped (each gets a cancellation).
    ClearResources,
}

pub(crate) fn parse_updates(inner: &Inner, updates: &Element) -> Result<Vec<(String, FieldChange)>, Refusal> {
    let bad = |m: &str| refuse("ErrorInvalidPropertySet", m.to_owned());
    let mut out = Vec::new();
    for u in &updates.children {
        let path = u.children.first().ok_or_else(|| bad("an update without a property path"))?;
        let value_item = u.find(TYPES, "CalendarItem");
        let value = |name: &str| {
            value_item.and_then(|ci| ci.find(TYPES, name)).ok_or_else(|| {
                refuse("ErrorInvalidPropertySet", format!("The CalendarItem of the change must hold {name}."))
            })
        };
        let when = |name: &str| {
            value(name).and_then(|v| {
                parse_time(&v.text)
                    .ok_or_else(|| refuse("ErrorInvalidRequest", format!("{name} is not a dateTime.")))
            })
        };
        match (u.name.as_str(), path.name.as_str()) {
            ("SetItemField", "FieldURI") => {
                let uri = path.get_attr("FieldURI").unwrap_or_default().to_owned();
                let c = match uri.as_str() {
                    "item:Subject" => FieldChange::Subject(value("Subject")?.text.clone()),
                    "calendar:Start" => FieldChange::Start(when("Start")?),
                    "calendar:End" => FieldChange::End(when("End")?),
                    "calendar:Location" => FieldChange::Location(value("Location")?.text.clone()),
                    "calendar:Resources" => {
                        FieldChange::Resources(non_empty(att_list(inner, Some(value("Resources")?)))?)
                    }
                    "calendar:RequiredAttendees" => FieldChange::RequiredAttendees(non_empty(att_list(
                        inner,
                        Some(value("RequiredAttendees")?),
                    ))?),
                    "item:Body" => return Err(bad("The emulator does not write bodies.")),
                    other => {
                        return Err(refuse(
                            "ErrorInvalidPropertySet",
                            format!("{other} cannot be set here."),
                        ));
                    }
                };
                out.push((uri, c));
            }
            ("SetItemField", "ExtendedFieldURI") => {
                let key = prop_key(path).ok_or_else(|| bad("incomplete ExtendedFieldURI"))?;
                let v = value("ExtendedProperty")?.child_text(TYPES, "Value").unwrap_or_default().to_owned();
                out.push((format!("ext:{}", key.1), FieldChange::SetExt(key, v)));
            }
            ("DeleteItemField", "FieldURI") => {
                let uri = path.get_attr("FieldURI").unwrap_or_default().to_owned();
                let c = match uri.as_str() {
                    "calendar:Location" => FieldChange::ClearLocation,
                    "calendar:OptionalAttendees" => FieldChange::ClearOptionalAttendees,
                    "calendar:RequiredAttendees" => FieldChange::ClearRequiredAttendees,
                    "calendar:Resources" => FieldChange::ClearResources,
                    other => {
                        return Err(refuse(
                            "ErrorInvalidPropertySet",
                            format!("{other} cannot be deleted here."),
                        ));
                    }
                };
                out.push((uri, c));
            }
            ("DeleteItemField", "ExtendedFieldURI") => {
                let key = prop_key(path).ok_or_else(|| bad("incomplete ExtendedFieldURI"))?;
                out.push((format!("ext:{}", key.1), FieldChange::DeleteExt(key)));
            }
            (kind, p) => {
                return Err(refuse("ErrorInvalidPropertySet", format!("{kind} with {p} is not supported.")));
            }
        }
    }
    Ok(out)
}

/// An attendee list set by an update: the schema's `NonEmptyArrayOfAttendeesType` holds at least one
/// `Attendee` (removing all is a `DeleteItemField`).
fn non_empty(list: Vec<Att>) -> Result<Vec<Att>, Refusal> {
    if list.is_empty() {
        return Err(refuse(
            "ErrorSchemaValidation",
            "The request failed schema validation: an attendee list needs at least one Attendee with a \
             Mailbox/EmailAddress; remove the property with DeleteItemField instead.",
        ));
    }
    Ok(list)
}

fn written_answer(id: String, change_key: String) -> Vec<Element> {
    vec![
        m("Items").child(t("CalendarItem").child(t("ItemId").attr("Id", id).attr("ChangeKey", change_key))),
        m("ConflictResults").child(t("Count").text("0")),
    ]
}

#[allow(clippy::too_many_arguments)]
fn update_one(
    inner: &mut Inner,
    mb: &str,
    id: &str,
    change_key: Option<&str>,
    updates: &Element,
    conflict: &str,
    send: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Element>, Refusal> {
    let id = id.to_owned();
    let item = inner.live(mb, &id)?.clone();
    let Some(send) = send else {
        return Err(refuse(
            "ErrorSendMeetingInvitationsOrCancellationsRequired",
            "SendMeetingInvitationsOrCancellations is required for calendar items.",
        ));
    };
    let changes = parse_updates(inner, updates)?;
    let fields: Vec<String> = changes.iter().map(|(f, _)| f.clone()).collect();
    match (change_key, conflict) {
        (_, "AlwaysOverwrite") => {}
        (None, _) => {
            return Err(refuse(
                "ErrorChangeKeyRequiredForWriteOperations",
                "The change key is required for this operation.",
            ));
        }
        (Some(ck), _) if ck == item.change_key => {}
        (Some(ck), mode) => {
            let Some(pos) = item.history.iter().position(|(k, _)| k == ck) else {
                return Err(refuse("ErrorInvalidChangeKey", "The change key is invalid."));
            };
            let since: BTreeSet<&String> = item.history[pos + 1..].iter().flat_map(|(_, f)| f).collect();
            let overlaps = fields.iter().any(|f| since.contains(f));
            if mode == "NeverOverwrite" || overlaps {
                return Err(refuse(
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change key passed in the \
                     request does not match the current change key for the item.",
                ));
            }
        }
    }
    let old_rooms: Vec<String> = item.resources.iter().map(|a| a.email.clone()).collect();
    let (mut start, mut end) = (item.start, item.end);
    for (_, c) in &changes {
        match c {
            FieldChange::Start(v) => start = *v,
            FieldChange::End(v) => end = *v,
            _ => {}
        }
    }
    if end <= start {
        return Err(refuse(
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "EndDate is earlier than StartDate.",
        ));
    }
    {
        let it = inner.live_mut(mb, &id)?;
        // Moving a whole series resets its exceptions and deleted occurrences (they are keyed by the
        // old original starts), as Outlook warns.
        if it.recurrence.is_some() && (start != it.start || end != it.end) {
            it.exceptions.clear();
            it.deleted_occurrences.clear();
        }
        for (_, c) in changes {
            match c {
                FieldChange::Subject(s) => it.subject = s,
                FieldChange::Start(v) => it.start = v,
                FieldChange::End(v) => it.end = v,
                FieldChange::Location(v) => it.location = Some(v),
                FieldChange::Resources(list) => {
                    it.resources = list;
                    become_meeting(it);
                }
                FieldChange::RequiredAttendees(list) => {
                    it.required = list;
                    become_meeting(it);
                }
                // The item stays a meeting (AppointmentState keeps its meeting bit): its attendees were
                // sent cancellations, not forgotten.
                FieldChange::ClearRequiredAttendees => it.required.clear(),
                FieldChange::ClearResources => it.resources.clear(),
                FieldChange::SetExt(k, v) => {
                    it.ext.insert(k, v);
                }
                FieldChange::DeleteExt(k) => {
                    it.ext.remove(&k);
                }
                FieldChange::ClearLocation => it.location = None,
                // Optional attendees are not modelled: nothing to clear.
                FieldChange::ClearOptionalAttendees => {}
            }
        }
    }
    inner.touch(mb, &id, fields, "ModifiedEvent", now);
    let shown = inner.written(mb, &id);
    let updated = inner.live(mb, &id)?.clone();
    if updated.my_response == "Organizer" && send != "SendToNone" {
        let now_rooms: Vec<String> = updated.resources.iter().map(|a| a.email.clone()).collect();
        let dropped: Vec<String> = old_rooms.into_iter().filter(|r| !now_rooms.contains(r)).collect();
        inner.process_rooms(mb, &id, &dropped, now);
    }
    Ok(written_answer(shown.id, shown.change_key))
}

/// An item given attendees is a meeting; an appointment of the mailbox's own (not a received copy)
/// becomes one its owner organizes.
fn become_meeting(it: &mut Item) {
    if !it.required.is_empty() || !it.resources.is_empty() {
        it.is_meeting = true;
        if !it.received && it.my_response == "Unknown" {
            it.my_response = "Organizer".into();
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// DeleteItem

fn delete_item(inner: &mut Inner, ctx: &Ctx<'_>, op: &Element) -> Result<Element, Fault> {
    let mb = ctx.mailbox()?.to_owned();
    let delete_type = op.get_attr("DeleteType").ok_or_else(|| schema("DeleteType is required"))?;
    if !matches!(delete_type, "HardDelete" | "SoftDelete" | "MoveToDeletedItems") {
        return Err(schema(format!("DeleteType `{delete_type}` is not valid")));
    }
    let send = op.get_attr("SendMeetingCancellations");
    let msgs = ids_of(op)?
        .into_iter()
        .map(|el| {
            let target = ser::resolve(inner, &mb, el);
            let result = target.and_then(|(target, _)| {
                let Some(send) = send else {
                    return Err(refuse(
                        "ErrorSendMeetingCancellationsRequired",
                        "SendMeetingCancellations is required for calendar items.",
                    ));
                };
                let id = match target {
                    Target::Item(id) => id,
                    Target::Occurrence { master, original_start } => {
                        let sends = send != "SendToNone";
                        ser::delete_occurrence(inner, &mb, &master, original_start, sends, ctx.now)?;
                        return Ok(Vec::new());
                    }
                };
                let item = inner.live(&mb, &id)?.clone();
                if item.my_response == "Organizer" && send != "SendToNone" {
                    inner.cancel_meeting(&mb, &id, ctx.now)?;
                } else {
                    inner.delete(&mb, &id, ctx.now);
                }
                Ok(Vec::new())
            });
            message("DeleteItem", result)
        })
        .collect();
    Ok(response("DeleteItem", msgs))
}
