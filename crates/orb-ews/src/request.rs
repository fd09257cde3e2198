//! Request builders: pure functions from typed input to the SOAP envelope ORB sends. Children are added
//! in the schema's `xs:sequence` order (ews.md §1.1, U13), and no request ever names the item body:
//! item shapes are `IdOnly` plus explicit `AdditionalProperties` without `item:Body`, and created items
//! carry no `Body` (the tests at the bottom hold every builder to both).

use orb_core::EmailAddress;

use crate::model::{
    self, ItemId, MeetingChange, NewMeeting, ORB_MATCH_PROPERTY_NAME, ORB_PROPERTY_SET_ID, PushRequest,
    REQUEST_SERVER_VERSION, Window,
};
use crate::series::ItemRef;
use crate::xml::{Element, MESSAGES, SOAP, TYPES};

fn t(name: &str) -> Element {
    Element::new(TYPES, name)
}

fn m(name: &str) -> Element {
    Element::new(MESSAGES, name)
}

/// `UpdateItem`'s `ConflictResolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictResolution {
    /// Fail when the item changed since the given change key. ORB's choice: a person's change in
    /// Outlook is never overwritten by ORB's older view (the lost-update rule); the caller re-reads and
    /// re-plans on [`crate::EwsError::Changed`].
    NeverOverwrite,
    /// Let Exchange merge non-overlapping changes (the server default).
    AutoResolve,
    /// Overwrite whatever changed.
    AlwaysOverwrite,
}

impl ConflictResolution {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeverOverwrite => "NeverOverwrite",
            Self::AutoResolve => "AutoResolve",
            Self::AlwaysOverwrite => "AlwaysOverwrite",
        }
    }
}

/// Wraps an operation in the envelope: `RequestServerVersion` and, when acting for a mailbox,
/// `ExchangeImpersonation` with its `PrimarySmtpAddress`.
pub fn envelope(impersonate: Option<&EmailAddress>, operation: Element) -> Element {
    let header = Element::new(SOAP, "Header")
        .child(t("RequestServerVersion").attr("Version", REQUEST_SERVER_VERSION))
        .child_opt(impersonate.map(|mb| {
            t("ExchangeImpersonation")
                .child(t("ConnectingSID").child(t("PrimarySmtpAddress").text(mb.as_str())))
        }));
    Element::new(SOAP, "Envelope").child(header).child(Element::new(SOAP, "Body").child(operation))
}

/// The extended field URI of ORB's match id.
pub fn match_field_uri() -> Element {
    t("ExtendedFieldURI")
        .attr("PropertySetId", ORB_PROPERTY_SET_ID)
        .attr("PropertyName", ORB_MATCH_PROPERTY_NAME)
        .attr("PropertyType", "String")
}

fn match_property(value: &str) -> Element {
    t("ExtendedProperty").child(match_field_uri()).child(t("Value").text(value))
}

fn field(uri: &str) -> Element {
    t("FieldURI").attr("FieldURI", uri)
}

/// What item reads ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Whether to ask for `item:Subject` (false under the subject policy `drop`: never read).
    pub subject: bool,
}

/// Properties a `CalendarView` listing asks for (FindItem returns no recipient lists anyway).
pub const LIST_FIELDS: &[&str] = &[
    "item:LastModifiedTime",
    "calendar:Start",
    "calendar:End",
    "calendar:CalendarItemType",
    "calendar:IsCancelled",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Organizer",
];

/// Properties a `GetItem` asks for (plus ORB's extended property).
pub const GET_FIELDS: &[&str] = &[
    "item:LastModifiedTime",
    "calendar:UID",
    "calendar:Start",
    "calendar:End",
    "calendar:Location",
    "calendar:IsCancelled",
    "calendar:CalendarItemType",
    "calendar:MyResponseType",
    "calendar:AppointmentState",
    "calendar:Organizer",
    "calendar:RequiredAttendees",
    "calendar:Resources",
    "calendar:OriginalStart",
    "calendar:Recurrence",
    "calendar:FirstOccurrence",
    "calendar:LastOccurrence",
    "calendar:ModifiedOccurrences",
    "calendar:DeletedOccurrences",
    "calendar:StartTimeZone",
];

fn item_shape(fields: &[&str], shape: Shape, with_match: bool) -> Element {
    let mut props = t("AdditionalProperties");
    if shape.subject {
        props = props.child(field("item:Subject"));
    }
    props = props.children(fields.iter().map(|f| field(f)));
    if with_match {
        props = props.child(match_field_uri());
    }
    m("ItemShape").child(t("BaseShape").text("IdOnly")).child(props)
}

fn calendar_folder() -> Element {
    t("DistinguishedFolderId").attr("Id", "calendar")
}

/// `FindItem` with a `CalendarView` over the impersonated mailbox's calendar: Exchange expands series
/// into their occurrences and exceptions within the window (masters are not listed).
pub fn find_calendar_view(window: Window, max_entries: u32, shape: Shape) -> Element {
    m("FindItem")
        .attr("Traversal", "Shallow")
        .child(item_shape(LIST_FIELDS, shape, false))
        .child(
            m("CalendarView")
                .attr("MaxEntriesReturned", max_entries.to_string())
                .attr("StartDate", model::format_time(window.start))
                .attr("EndDate", model::format_time(window.end)),
        )
        .child(m("ParentFolderIds").child(calendar_folder()))
}

/// `GetItem` for `ids` with explicit properties and ORB's match id.
pub fn get_items(ids: &[ItemId], shape: Shape) -> Element {
    let refs: Vec<ItemRef> = ids.iter().map(ItemRef::from).collect();
    get_refs(&refs, shape)
}

/// `GetItem` for items, occurrences (`OccurrenceItemId`) or masters (`RecurringMasterItemId`).
pub fn get_refs(refs: &[ItemRef], shape: Shape) -> Element {
    m("GetItem")
        .child(item_shape(GET_FIELDS, shape, true))
        .child(m("ItemIds").children(refs.iter().map(ItemRef::to_element)))
}

/// `CreateItem` of a meeting in the impersonated organizer's calendar with the room as a `Resources`
/// attendee, sending invitations (`SendToAllAndSaveCopy`) so the room's booking attendant processes it.
/// With a recurrence it is a series master: `Recurrence` after `Resources`, before the zones (schema
/// order), evaluated in `StartTimeZone`.
pub fn create_meeting(meeting: &NewMeeting) -> Element {
    let tz = |name: &str| meeting.time_zone.as_ref().map(|id| t(name).attr("Id", id.as_str()));
    let item = t("CalendarItem")
        .child(t("Subject").text(meeting.subject.as_str()))
        .child(match_property(&meeting.match_id))
        .child(t("Start").text(model::format_time(meeting.start)))
        .child(t("End").text(model::format_time(meeting.end)))
        .child(t("LegacyFreeBusyStatus").text("Busy"))
        .child_opt(meeting.location.as_ref().map(|l| t("Location").text(l.as_str())))
        .child(resources(&meeting.room))
        .child_opt(meeting.recurrence.as_ref().map(|r| r.to_element()))
        .child_opt(tz("StartTimeZone"))
        .child_opt(tz("EndTimeZone"));
    m("CreateItem")
        .attr("SendMeetingInvitations", "SendToAllAndSaveCopy")
        .child(m("SavedItemFolderId").child(calendar_folder()))
        .child(m("Items").child(item))
}

fn resources(room: &EmailAddress) -> Element {
    t("Resources").child(t("Attendee").child(t("Mailbox").child(t("EmailAddress").text(room.as_str()))))
}

fn set_field(path: Element, value: Element) -> Element {
    t("SetItemField").child(path).child(t("CalendarItem").child(value))
}

/// `UpdateItem` of one meeting — a single item, a series (its master's id or
/// [`ItemRef::MasterOf`]) or one occurrence ([`ItemRef::Occurrence`], which makes it an exception):
/// one `SetItemField` per change, the change key and `conflict`, updates sent to all attendees (the
/// room included).
pub fn update_meeting(
    id: impl Into<ItemRef>,
    change: &MeetingChange,
    conflict: ConflictResolution,
) -> Element {
    let id: ItemRef = id.into();
    let mut updates = t("Updates");
    if let Some(s) = &change.subject {
        updates = updates.child(set_field(field("item:Subject"), t("Subject").text(s.as_str())));
    }
    if let Some(v) = &change.match_id {
        updates = updates.child(set_field(match_field_uri(), match_property(v)));
    }
    if let Some(v) = change.start {
        updates = updates.child(set_field(field("calendar:Start"), t("Start").text(model::format_time(v))));
    }
    if let Some(v) = change.end {
        updates = updates.child(set_field(field("calendar:End"), t("End").text(model::format_time(v))));
    }
    if let Some(v) = &change.location {
        updates = updates.child(set_field(field("calendar:Location"), t("Location").text(v.as_str())));
    }
    if let Some(room) = &change.room {
        updates = updates.child(set_field(field("calendar:Resources"), resources(room)));
    }
    m("UpdateItem")
        .attr("ConflictResolution", conflict.as_str())
        .attr("SendMeetingInvitationsOrCancellations", "SendToAllAndSaveCopy")
        .child(m("ItemChanges").child(t("ItemChange").child(id.to_element()).child(updates)))
}

/// The organizer cancels a meeting (`CancelCalendarItem`, cancellations sent, a copy saved): a master's
/// id cancels the series, an occurrence's own id (from a `CalendarView`) that occurrence. No new body
/// text is sent: ORB writes no bodies. (`ReferenceItemId` takes item ids only; to cancel an occurrence
/// known by its index, use [`delete_item`] with [`ItemRef::Occurrence`], which sends the cancellation.)
pub fn cancel_meeting(id: &ItemId) -> Element {
    let reference = match &id.change_key {
        Some(ck) => t("ReferenceItemId").attr("Id", id.id.as_str()).attr("ChangeKey", ck.as_str()),
        None => t("ReferenceItemId").attr("Id", id.id.as_str()),
    };
    m("CreateItem")
        .attr("MessageDisposition", "SendAndSaveCopy")
        .child(m("Items").child(t("CancelCalendarItem").child(reference)))
}

/// `DeleteItem` to the deleted items with cancellations to all attendees: an item, a whole series, or
/// one occurrence (which the master then lists in `DeletedOccurrences`).
pub fn delete_item(id: impl Into<ItemRef>) -> Element {
    let id: ItemRef = id.into();
    m("DeleteItem")
        .attr("DeleteType", "MoveToDeletedItems")
        .attr("SendMeetingCancellations", "SendToAllAndSaveCopy")
        .child(m("ItemIds").child(id.to_element()))
}

/// `GetRoomLists`.
pub fn get_room_lists() -> Element {
    m("GetRoomLists")
}

/// `GetRooms` of one room list.
pub fn get_rooms(room_list: &EmailAddress) -> Element {
    m("GetRooms").child(m("RoomList").child(t("EmailAddress").text(room_list.as_str())))
}

/// `SyncFolderItems` of the calendar, ids and item types only (then GetItem what changed).
pub fn sync_folder_items(sync_state: Option<&str>, max_changes: u32) -> Element {
    m("SyncFolderItems")
        .child(
            m("ItemShape")
                .child(t("BaseShape").text("IdOnly"))
                .child(t("AdditionalProperties").child(field("calendar:CalendarItemType"))),
        )
        .child(m("SyncFolderId").child(calendar_folder()))
        .child_opt(sync_state.map(|s| m("SyncState").text(s)))
        .child(m("MaxChangesReturned").text(max_changes.clamp(1, 512).to_string()))
        .child(m("SyncScope").text("NormalItems"))
}

/// The event types ORB subscribes to.
pub const EVENT_TYPES: &[&str] =
    &["CreatedEvent", "ModifiedEvent", "DeletedEvent", "MovedEvent", "CopiedEvent"];

/// `Subscribe` with a `PushSubscriptionRequest` on the calendar.
pub fn subscribe_push(req: &PushRequest) -> Element {
    m("Subscribe").child(
        m("PushSubscriptionRequest")
            .child(t("FolderIds").child(calendar_folder()))
            .child(t("EventTypes").children(EVENT_TYPES.iter().map(|e| t("EventType").text(*e))))
            .child_opt(req.watermark.as_ref().map(|w| t("Watermark").text(w.as_str())))
            .child(t("StatusFrequency").text(req.status_frequency_minutes.clamp(1, 1440).to_string()))
            .child(t("URL").text(req.url.as_str())),
    )
}

/// `Unsubscribe`.
pub fn unsubscribe(subscription_id: &str) -> Element {
    m("Unsubscribe").child(m("SubscriptionId").text(subscription_id))
}

/// Whether a request could return an item's body: it names `item:Body` (or `UniqueBody`, `TextBody`,
/// `NormalizedBody`), or uses a base shape other than `IdOnly`. The emulator's request log records this;
/// ORB's requests never do.
pub fn asks_for_body(envelope: &Element) -> bool {
    envelope.descendants().iter().any(|el| {
        let names_body = el.is(TYPES, "FieldURI")
            && el.get_attr("FieldURI").is_some_and(|f| {
                matches!(f, "item:Body" | "item:UniqueBody" | "item:TextBody" | "item:NormalizedBody")
            });
        let wide_shape = el.is(TYPES, "BaseShape") && el.text.trim() != "IdOnly";
        names_body || wide_shape
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::xml;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn weekly() -> crate::series::Recurrence {
        use crate::series::{DayOfWeek, Pattern, Range, Recurrence};
        Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![DayOfWeek::Day(chrono::Weekday::Tue)],
                first_day_of_week: None,
            },
            range: Range::Numbered { start: chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(), count: 10 },
        }
    }

    fn every_request() -> Vec<Element> {
        let at = |h| Utc.with_ymd_and_hms(2026, 9, 1, h, 0, 0).unwrap();
        let id = ItemId::new("AAMk1", "DwAA1");
        let meeting = NewMeeting {
            subject: "Project sync".into(),
            match_id: "0190-match".into(),
            start: at(8),
            end: at(9),
            location: Some("Room 4.12".into()),
            room: addr("room-4.12@contoso.com"),
            time_zone: Some("W. Europe Standard Time".into()),
            recurrence: None,
        };
        let series = NewMeeting { recurrence: Some(weekly()), ..meeting.clone() };
        let change = MeetingChange {
            subject: Some("New".into()),
            start: Some(at(9)),
            end: Some(at(10)),
            location: Some("Room 5".into()),
            room: Some(addr("room-5@contoso.com")),
            match_id: Some("m2".into()),
        };
        let shape = Shape { subject: true };
        vec![
            find_calendar_view(Window { start: at(0), end: at(23) }, 500, shape),
            get_items(std::slice::from_ref(&id), shape),
            create_meeting(&meeting),
            update_meeting(&id, &change, ConflictResolution::NeverOverwrite),
            cancel_meeting(&id),
            delete_item(&id),
            get_room_lists(),
            get_rooms(&addr("rooms@contoso.com")),
            sync_folder_items(Some("state"), 512),
            sync_folder_items(None, 10),
            subscribe_push(&PushRequest {
                url: "https://orb.example/hooks/ews/t1".into(),
                status_frequency_minutes: 5,
                watermark: Some("wm".into()),
            }),
            unsubscribe("sub-1"),
            create_meeting(&series),
            get_refs(
                &[
                    ItemRef::Occurrence { master: id.clone(), index: 2 },
                    ItemRef::MasterOf(ItemId { id: "occ".into(), change_key: None }),
                ],
                shape,
            ),
            update_meeting(
                ItemRef::Occurrence { master: id.clone(), index: 2 },
                &change,
                ConflictResolution::NeverOverwrite,
            ),
            delete_item(ItemRef::Occurrence { master: id.clone(), index: 3 }),
        ]
        .into_iter()
        .map(|op| envelope(Some(&addr("alice@contoso.com")), op))
        .collect()
    }

    #[test]
    fn no_request_names_the_body_or_a_wide_shape() {
        for req in every_request() {
            let doc = req.to_document();
            assert!(!asks_for_body(&req), "{doc}");
            for el in req.descendants() {
                if el.name == "Body" {
                    assert_eq!(el.ns, SOAP, "only soap:Body may be named Body: {doc}");
                }
                assert!(el.name != "NewBodyContent", "{doc}");
                for a in &el.attrs {
                    assert!(!a.value.ends_with(":Body"), "{doc}");
                }
            }
            assert!(!doc.contains("item:Body"), "{doc}");
        }
    }

    #[test]
    fn the_body_detector_sees_what_it_must() {
        let named = m("GetItem").child(
            m("ItemShape")
                .child(t("BaseShape").text("IdOnly"))
                .child(t("AdditionalProperties").child(field("item:Body"))),
        );
        assert!(asks_for_body(&envelope(None, named)));
        let wide = m("GetItem").child(m("ItemShape").child(t("BaseShape").text("AllProperties")));
        assert!(asks_for_body(&envelope(None, wide)));
        let default = m("FindItem").child(m("ItemShape").child(t("BaseShape").text("Default")));
        assert!(asks_for_body(&envelope(None, default)));
    }

    fn names(el: &Element) -> Vec<&str> {
        el.children.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn calendar_item_children_follow_the_schema_sequence() {
        let req = every_request().remove(2);
        let item = req
            .path(&[(SOAP, "Body"), (MESSAGES, "CreateItem"), (MESSAGES, "Items"), (TYPES, "CalendarItem")])
            .unwrap();
        // ItemType part (Subject … ExtendedProperty), then CalendarItemType part (Start … EndTimeZone).
        assert_eq!(
            names(item),
            [
                "Subject",
                "ExtendedProperty",
                "Start",
                "End",
                "LegacyFreeBusyStatus",
                "Location",
                "Resources",
                "StartTimeZone",
                "EndTimeZone"
            ]
        );
        let create = req.path(&[(SOAP, "Body"), (MESSAGES, "CreateItem")]).unwrap();
        assert_eq!(create.get_attr("SendMeetingInvitations"), Some("SendToAllAndSaveCopy"));
        assert_eq!(names(create), ["SavedItemFolderId", "Items"]);
        let ext = item.find(TYPES, "ExtendedProperty").unwrap();
        assert_eq!(names(ext), ["ExtendedFieldURI", "Value"]);
        let uri = ext.find(TYPES, "ExtendedFieldURI").unwrap();
        assert_eq!(uri.get_attr("PropertySetId"), Some(ORB_PROPERTY_SET_ID));
        assert_eq!(uri.get_attr("PropertyName"), Some(ORB_MATCH_PROPERTY_NAME));
        assert_eq!(uri.get_attr("PropertyType"), Some("String"));
    }

    #[test]
    fn operation_children_follow_the_schema_sequence() {
        let reqs = every_request();
        let op = |i: usize| reqs[i].path(&[(SOAP, "Body")]).unwrap().children[0].clone();
        assert_eq!(names(&op(0)), ["ItemShape", "CalendarView", "ParentFolderIds"]);
        assert_eq!(names(&op(1)), ["ItemShape", "ItemIds"]);
        let update = op(3);
        assert_eq!(update.get_attr("ConflictResolution"), Some("NeverOverwrite"));
        assert_eq!(update.get_attr("SendMeetingInvitationsOrCancellations"), Some("SendToAllAndSaveCopy"));
        let change = update.path(&[(MESSAGES, "ItemChanges"), (TYPES, "ItemChange")]).unwrap();
        assert_eq!(names(change), ["ItemId", "Updates"]);
        assert_eq!(change.find(TYPES, "ItemId").unwrap().get_attr("ChangeKey"), Some("DwAA1"));
        for set in &change.find(TYPES, "Updates").unwrap().children {
            assert_eq!(set.children.len(), 2, "one path, one CalendarItem");
            assert_eq!(set.children[1].children.len(), 1, "one property per SetItemField");
        }
        let del = op(5);
        assert_eq!(del.get_attr("SendMeetingCancellations"), Some("SendToAllAndSaveCopy"));
        assert_eq!(del.get_attr("DeleteType"), Some("MoveToDeletedItems"));
        assert_eq!(
            names(&op(8)),
            ["ItemShape", "SyncFolderId", "SyncState", "MaxChangesReturned", "SyncScope"]
        );
        assert_eq!(names(&op(9)), ["ItemShape", "SyncFolderId", "MaxChangesReturned", "SyncScope"]);
        let push = op(10);
        assert_eq!(
            names(&push.children[0]),
            ["FolderIds", "EventTypes", "Watermark", "StatusFrequency", "URL"]
        );
    }

    #[test]
    fn series_requests_follow_the_schema_sequence() {
        let reqs = every_request();
        let op = |i: usize| reqs[i].path(&[(SOAP, "Body")]).unwrap().children[0].clone();
        let create = op(12);
        let item = create.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
        assert_eq!(
            names(item),
            [
                "Subject",
                "ExtendedProperty",
                "Start",
                "End",
                "LegacyFreeBusyStatus",
                "Location",
                "Resources",
                "Recurrence",
                "StartTimeZone",
                "EndTimeZone"
            ]
        );
        let rec = item.find(TYPES, "Recurrence").unwrap();
        assert_eq!(names(rec), ["WeeklyRecurrence", "NumberedRecurrence"]);
        assert_eq!(names(&rec.children[0]), ["Interval", "DaysOfWeek"]);
        assert_eq!(names(&rec.children[1]), ["StartDate", "NumberOfOccurrences"]);
        assert_eq!(rec.children[1].child_text(TYPES, "StartDate"), Some("2026-09-01"));
        let get = op(13);
        let ids = get.find(MESSAGES, "ItemIds").unwrap();
        assert_eq!(names(ids), ["OccurrenceItemId", "RecurringMasterItemId"]);
        assert_eq!(ids.children[0].get_attr("RecurringMasterId"), Some("AAMk1"));
        assert_eq!(ids.children[0].get_attr("InstanceIndex"), Some("2"));
        assert_eq!(ids.children[0].get_attr("ChangeKey"), Some("DwAA1"));
        let change = op(14);
        let change = change.path(&[(MESSAGES, "ItemChanges"), (TYPES, "ItemChange")]).unwrap();
        assert_eq!(names(change), ["OccurrenceItemId", "Updates"]);
        let del = op(15);
        let ids = del.find(MESSAGES, "ItemIds").unwrap();
        assert_eq!(ids.children[0].get_attr("InstanceIndex"), Some("3"));
        assert_eq!(del.get_attr("SendMeetingCancellations"), Some("SendToAllAndSaveCopy"));
    }

    #[test]
    fn the_header_names_version_and_impersonated_mailbox() {
        let req = every_request().remove(0);
        let doc = req.to_document();
        let back = xml::parse(&doc).unwrap();
        let header = back.find(SOAP, "Header").unwrap();
        assert_eq!(
            header.find(TYPES, "RequestServerVersion").unwrap().get_attr("Version"),
            Some("Exchange2013_SP1")
        );
        let sid = header
            .path(&[
                (TYPES, "ExchangeImpersonation"),
                (TYPES, "ConnectingSID"),
                (TYPES, "PrimarySmtpAddress"),
            ])
            .unwrap();
        assert_eq!(sid.text, "alice@contoso.com");
        assert!(doc.contains("xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\""));
    }
}
