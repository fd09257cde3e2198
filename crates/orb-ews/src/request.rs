//! Request builders: pure functions from typed input to the SOAP envelope ORB sends. Children are added
//! in the schema's `xs:sequence` order (ews.md §1.1, U13), and no request ever reads a body: item shapes
//! are `IdOnly` plus explicit `AdditionalProperties` without `item:Body`, restrictions never name it, and
//! created calendar items carry no `Body`. The one `t:Body` ORB writes is the plain text of a mail it
//! sends ([`send_mail`]): ORB's own words, not a person's (the tests at the bottom hold every builder to
//! all of this).

use orb_core::EmailAddress;

use crate::model::{
    self, ItemId, MeetingChange, NewMeeting, ORB_MATCH_PROPERTY_NAME, ORB_PROPERTY_SET_ID, OutgoingMail,
    PushRequest, REQUEST_SERVER_VERSION, Window,
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

/// `MaxEntriesReturned` of a match-id lookup (ews.md §3.3): one item is expected; more would be
/// duplicates.
pub const MATCH_LOOKUP_MAX: u32 = 10;

/// `FindItem` of the calendar's items whose ORB match id is `match_id` (ews.md §3.3 "Lookup"): `IdOnly`,
/// an `IndexedPageItemView` (the first [`MATCH_LOOKUP_MAX`]), a `Restriction` `IsEqualTo` on the extended
/// property ([`match_field_uri`]) against a `Constant`. Without a `CalendarView` series are not expanded,
/// so it finds single items and series masters, never occurrences; and a `Restriction` is never sent
/// with a `CalendarView` (U8). Children in schema order: `ItemShape`, `IndexedPageItemView`,
/// `Restriction`, `ParentFolderIds`.
pub fn find_by_match_id(match_id: &str) -> Element {
    let equals = t("IsEqualTo")
        .child(match_field_uri())
        .child(t("FieldURIOrConstant").child(t("Constant").attr("Value", match_id)));
    m("FindItem")
        .attr("Traversal", "Shallow")
        .child(m("ItemShape").child(t("BaseShape").text("IdOnly")))
        .child(
            m("IndexedPageItemView")
                .attr("MaxEntriesReturned", MATCH_LOOKUP_MAX.to_string())
                .attr("Offset", "0")
                .attr("BasePoint", "Beginning"),
        )
        .child(m("Restriction").child(equals))
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

/// `CreateItem` of a meeting in the impersonated organizer's calendar with the people as
/// `RequiredAttendees` and the room as a `Resources` attendee, sending invitations
/// (`SendToAllAndSaveCopy`) so the room's booking attendant processes it. Without a room and people it
/// is a plain appointment in the impersonated mailbox (`SendToNone`, no attendee lists): how ORB writes
/// straight into a room's calendar ("room only", ews.md §3.4). Children in schema order: `Location`,
/// `RequiredAttendees`, `Resources`, then a series' `Recurrence`, then the zones it is evaluated in.
pub fn create_meeting(meeting: &NewMeeting) -> Element {
    let tz = |name: &str| meeting.time_zone.as_ref().map(|id| t(name).attr("Id", id.as_str()));
    let invites = meeting.room.is_some() || !meeting.attendees.is_empty();
    let item = t("CalendarItem")
        .child(t("Subject").text(meeting.subject.as_str()))
        .child(match_property(&meeting.match_id))
        .child(t("Start").text(model::format_time(meeting.start)))
        .child(t("End").text(model::format_time(meeting.end)))
        .child(t("LegacyFreeBusyStatus").text("Busy"))
        .child_opt(meeting.location.as_ref().map(|l| t("Location").text(l.as_str())))
        .child_opt(
            (!meeting.attendees.is_empty()).then(|| attendees("RequiredAttendees", &meeting.attendees)),
        )
        .child_opt(meeting.room.as_ref().map(resources))
        .child_opt(meeting.recurrence.as_ref().map(|r| r.to_element()))
        .child_opt(tz("StartTimeZone"))
        .child_opt(tz("EndTimeZone"));
    m("CreateItem")
        .attr("SendMeetingInvitations", if invites { "SendToAllAndSaveCopy" } else { "SendToNone" })
        .child(m("SavedItemFolderId").child(calendar_folder()))
        .child(m("Items").child(item))
}

/// An attendee list (`RequiredAttendees`, `Resources`): `Attendee/Mailbox/EmailAddress` each.
fn attendees(list: &str, people: &[EmailAddress]) -> Element {
    t(list).children(
        people.iter().map(|p| t("Attendee").child(t("Mailbox").child(t("EmailAddress").text(p.as_str())))),
    )
}

fn resources(room: &EmailAddress) -> Element {
    attendees("Resources", std::slice::from_ref(room))
}

fn set_field(path: Element, value: Element) -> Element {
    t("SetItemField").child(path).child(t("CalendarItem").child(value))
}

fn delete_field(uri: &str) -> Element {
    t("DeleteItemField").child(field(uri))
}

/// `UpdateItem` of one meeting — a single item, a series (its master's id or
/// [`ItemRef::MasterOf`]) or one occurrence ([`ItemRef::Occurrence`], which makes it an exception):
/// one `SetItemField` per change (`RequiredAttendees` and `Resources` replaced as a whole), a
/// `DeleteItemField` per removal (every attendee; the room, [`MeetingChange::remove_rooms`]), the change
/// key and `conflict`, updates and cancellations sent to all attendees (the room included: a dropped
/// room gets a cancellation, ews.md §3.5). The client refuses a new room with `remove_rooms`
/// ([`MeetingChange::validate`]); this builder writes what it is given.
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
    match change.attendees.as_deref() {
        // The schema allows no empty attendee list: removing everyone deletes the property.
        Some([]) => updates = updates.child(delete_field("calendar:RequiredAttendees")),
        Some(people) => {
            let list = attendees("RequiredAttendees", people);
            updates = updates.child(set_field(field("calendar:RequiredAttendees"), list));
        }
        None => {}
    }
    if change.remove_rooms {
        updates = updates.child(delete_field("calendar:Resources"));
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

/// `CreateItem` of a plain-text mail sent from the impersonated mailbox and not kept
/// (`MessageDisposition="SendOnly"`, so no `SavedItemFolderId`): `Items/Message` with `Subject`,
/// `Body BodyType="Text"` and `ToRecipients/Mailbox/EmailAddress`, in the schema's order (`ItemType`'s
/// `Subject`, `Body`, then `MessageType`'s `ToRecipients`). ews.md shows no message `CreateItem`; this is
/// standard EWS (`CreateItem` with `t:Message`, `MessageDisposition` = `SaveOnly|SendOnly|SendAndSaveCopy`,
/// Exchange answering `Success` with an empty `Items` when nothing is saved). The body is ORB's own text,
/// not a person's: the crate's no-body rule is about reading bodies and writing them on calendar items.
pub fn send_mail(mail: &OutgoingMail) -> Element {
    let to = t("ToRecipients")
        .children(mail.to.iter().map(|a| t("Mailbox").child(t("EmailAddress").text(a.as_str()))));
    let message = t("Message")
        .child(t("Subject").text(mail.subject.as_str()))
        .child(t("Body").attr("BodyType", "Text").text(mail.body_text.as_str()))
        .child(to);
    m("CreateItem").attr("MessageDisposition", "SendOnly").child(m("Items").child(message))
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

/// The property paths that hold an item's body.
const BODY_PATHS: &[&str] = &["item:Body", "item:UniqueBody", "item:TextBody", "item:NormalizedBody"];

/// Whether a request could read an item's body: a base shape other than `IdOnly`, or a body property
/// path (`item:Body`, `UniqueBody`, `TextBody`, `NormalizedBody`) where it reads — in an item shape, and
/// also in a restriction or sort order (searching a body reads it), or anywhere else but the path of an
/// update. Writing is not reading: a `t:Body` element (the text of a mail ORB sends, [`send_mail`]) and
/// an update's path are not counted; that no calendar item ORB writes carries a body is held by this
/// module's tests. The emulator's request log records this for every request; ORB's requests never do.
pub fn asks_for_body(envelope: &Element) -> bool {
    fn walk(el: &Element, update_path: bool) -> bool {
        let wide_shape = el.is(TYPES, "BaseShape") && el.text.trim() != "IdOnly";
        let names_body = el.is(TYPES, "FieldURI")
            && !update_path
            && el.get_attr("FieldURI").is_some_and(|f| BODY_PATHS.contains(&f));
        let is_update = el.ns == TYPES
            && matches!(el.name.as_str(), "SetItemField" | "AppendToItemField" | "DeleteItemField");
        // An update's path is its first child; the value after it is not a path.
        wide_shape || names_body || el.children.iter().enumerate().any(|(i, c)| walk(c, is_update && i == 0))
    }
    walk(envelope, false)
}

#[cfg(test)]
mod tests;
