//! The builders held to the schema's sequence and to the no-body rule.

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

fn mail() -> OutgoingMail {
    OutgoingMail {
        to: vec![addr("alice@contoso.com"), addr("bob@contoso.com")],
        subject: "Room 4.12 booked".into(),
        body_text: "Your booking of Room 4.12 on 1 September, 10:00–11:00, is confirmed.".into(),
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
        room: Some(addr("room-4.12@contoso.com")),
        attendees: vec![addr("bob@contoso.com"), addr("carol@contoso.com")],
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
        attendees: Some(vec![addr("dave@contoso.com")]),
        remove_rooms: false,
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
        find_by_match_id("0190-match"),
        send_mail(&mail()),
    ]
    .into_iter()
    .map(|op| envelope(Some(&addr("alice@contoso.com")), op))
    .collect()
}

/// Every `Body` element with its parent and the operation it is in.
fn bodies(req: &Element) -> Vec<(&Element, &Element, &Element)> {
    fn walk<'a>(el: &'a Element, op: &'a Element, out: &mut Vec<(&'a Element, &'a Element, &'a Element)>) {
        for c in &el.children {
            let op = if el.is(SOAP, "Body") { c } else { op };
            if c.name == "Body" {
                out.push((c, el, op));
            }
            walk(c, op, out);
        }
    }
    let mut out = Vec::new();
    walk(req, req, &mut out);
    out
}

#[test]
fn no_request_reads_a_body_or_writes_one_on_a_calendar_item() {
    let mut mails = 0;
    for req in every_request() {
        let doc = req.to_document();
        assert!(!asks_for_body(&req), "{doc}");
        for (body, parent, op) in bodies(&req) {
            if body.ns == SOAP {
                continue;
            }
            // The one body ORB writes: the plain text of a mail it sends, never saved.
            assert!(body.is(TYPES, "Body") && parent.is(TYPES, "Message"), "{doc}");
            assert!(op.is(MESSAGES, "CreateItem") && op.get_attr("MessageDisposition") == Some("SendOnly"));
            assert_eq!(body.get_attr("BodyType"), Some("Text"), "{doc}");
            mails += 1;
        }
        for el in req.descendants() {
            assert!(el.name != "NewBodyContent", "{doc}");
            if el.is(TYPES, "CalendarItem") {
                assert!(el.find(TYPES, "Body").is_none(), "{doc}");
            }
            for a in &el.attrs {
                assert!(!a.value.ends_with(":Body"), "{doc}");
            }
        }
        assert!(!doc.contains("item:Body"), "{doc}");
    }
    assert_eq!(mails, 1, "send_mail is among the requests checked");
}

#[test]
fn the_body_detector_sees_what_it_must() {
    let shape = |f: &str| {
        m("ItemShape").child(t("BaseShape").text("IdOnly")).child(t("AdditionalProperties").child(field(f)))
    };
    for path in BODY_PATHS {
        assert!(asks_for_body(&envelope(None, m("GetItem").child(shape(path)))), "{path}");
        assert!(asks_for_body(&envelope(None, m("SyncFolderItems").child(shape(path)))), "{path}");
    }
    let wide = m("GetItem").child(m("ItemShape").child(t("BaseShape").text("AllProperties")));
    assert!(asks_for_body(&envelope(None, wide)));
    let default = m("FindItem").child(m("ItemShape").child(t("BaseShape").text("Default")));
    assert!(asks_for_body(&envelope(None, default)));
    // Searching the body reads it.
    let search = m("FindItem").child(m("ItemShape").child(t("BaseShape").text("IdOnly"))).child(
        m("Restriction")
            .child(t("Contains").child(field("item:Body")).child(t("Constant").attr("Value", "secret"))),
    );
    assert!(asks_for_body(&envelope(None, search)));
    // Writing is not reading: a mail's text, an update's path.
    assert!(!asks_for_body(&envelope(None, send_mail(&mail()))));
    let set = m("UpdateItem").child(
        m("ItemChanges").child(
            t("ItemChange").child(
                t("Updates").child(
                    t("SetItemField")
                        .child(field("item:Body"))
                        .child(t("Message").child(t("Body").attr("BodyType", "Text").text("x"))),
                ),
            ),
        ),
    );
    assert!(!asks_for_body(&envelope(None, set)));
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
            "RequiredAttendees",
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
    assert_eq!(names(&op(8)), ["ItemShape", "SyncFolderId", "SyncState", "MaxChangesReturned", "SyncScope"]);
    assert_eq!(names(&op(9)), ["ItemShape", "SyncFolderId", "MaxChangesReturned", "SyncScope"]);
    let push = op(10);
    assert_eq!(names(&push.children[0]), ["FolderIds", "EventTypes", "Watermark", "StatusFrequency", "URL"]);
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
            "RequiredAttendees",
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
fn the_match_lookup_follows_the_schema_sequence() {
    let reqs = every_request();
    let op = reqs[16].path(&[(SOAP, "Body"), (MESSAGES, "FindItem")]).unwrap();
    assert_eq!(op.get_attr("Traversal"), Some("Shallow"));
    assert_eq!(names(op), ["ItemShape", "IndexedPageItemView", "Restriction", "ParentFolderIds"]);
    let kids_ns: Vec<&str> = op.children.iter().map(|c| c.ns.as_str()).collect();
    assert_eq!(kids_ns, [MESSAGES; 4]);
    let shape = op.find(MESSAGES, "ItemShape").unwrap();
    assert_eq!(names(shape), ["BaseShape"]);
    assert_eq!(shape.child_text(TYPES, "BaseShape"), Some("IdOnly"));
    let view = op.find(MESSAGES, "IndexedPageItemView").unwrap();
    assert_eq!(view.get_attr("MaxEntriesReturned"), Some("10"));
    assert_eq!(view.get_attr("Offset"), Some("0"));
    assert_eq!(view.get_attr("BasePoint"), Some("Beginning"));
    let equals = op.path(&[(MESSAGES, "Restriction"), (TYPES, "IsEqualTo")]).unwrap();
    assert_eq!(names(equals), ["ExtendedFieldURI", "FieldURIOrConstant"]);
    assert_eq!(equals.children[0], match_field_uri());
    let constant = equals.path(&[(TYPES, "FieldURIOrConstant"), (TYPES, "Constant")]).unwrap();
    assert_eq!(constant.get_attr("Value"), Some("0190-match"));
    let folder = op.path(&[(MESSAGES, "ParentFolderIds"), (TYPES, "DistinguishedFolderId")]).unwrap();
    assert_eq!(folder.get_attr("Id"), Some("calendar"));
    // A match id with markup in it survives the trip as the constant's value.
    let odd = envelope(None, find_by_match_id(r#"a"<&>'b"#)).to_document();
    let back = xml::parse(&odd).unwrap();
    let c = back.descendants().into_iter().find(|e| e.is(TYPES, "Constant")).unwrap().clone();
    assert_eq!(c.get_attr("Value"), Some(r#"a"<&>'b"#));
}

#[test]
fn a_mail_follows_the_schema_sequence() {
    let reqs = every_request();
    let op = reqs[17].path(&[(SOAP, "Body"), (MESSAGES, "CreateItem")]).unwrap();
    assert_eq!(op.attrs.len(), 1);
    assert_eq!(op.get_attr("MessageDisposition"), Some("SendOnly"));
    assert_eq!(op.get_attr("SendMeetingInvitations"), None);
    assert_eq!(names(op), ["Items"], "SendOnly saves nothing: no SavedItemFolderId");
    let msg = op.path(&[(MESSAGES, "Items"), (TYPES, "Message")]).unwrap();
    assert_eq!(names(msg), ["Subject", "Body", "ToRecipients"]);
    assert!(msg.children.iter().all(|c| c.ns == TYPES));
    assert_eq!(msg.child_text(TYPES, "Subject"), Some("Room 4.12 booked"));
    let to = msg.find(TYPES, "ToRecipients").unwrap();
    let addrs: Vec<&str> = to
        .find_all(TYPES, "Mailbox")
        .map(|mb| {
            assert_eq!(names(mb), ["EmailAddress"]);
            mb.child_text(TYPES, "EmailAddress").unwrap()
        })
        .collect();
    assert_eq!(addrs, ["alice@contoso.com", "bob@contoso.com"]);
    // Written and read back: the text as given, markup escaped.
    let text = OutgoingMail { body_text: "1 < 2 & \"3\"\nline two".into(), ..mail() };
    let back = xml::parse(&envelope(None, send_mail(&text)).to_document()).unwrap();
    let body = back.descendants().into_iter().find(|e| e.is(TYPES, "Body")).unwrap().clone();
    assert_eq!(body.text, "1 < 2 & \"3\"\nline two");
}

#[test]
fn bad_mails_are_refused_with_what_to_change() {
    let bad = |m: OutgoingMail, says: &str| {
        let e = m.validate().unwrap_err();
        assert!(e.contains(says), "{e}");
    };
    assert!(mail().validate().is_ok());
    bad(OutgoingMail { to: vec![], ..mail() }, "at least one recipient");
    let many = vec![addr("a@contoso.com"); OutgoingMail::MAX_RECIPIENTS + 1];
    bad(OutgoingMail { to: many, ..mail() }, "at most 500");
    bad(OutgoingMail { subject: "  ".into(), ..mail() }, "needs a subject");
    bad(OutgoingMail { subject: "a\r\nBcc: x@evil.example".into(), ..mail() }, "line break");
    bad(OutgoingMail { body_text: "bell \u{7}".into(), ..mail() }, "body contains a control character");
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
        .path(&[(TYPES, "ExchangeImpersonation"), (TYPES, "ConnectingSID"), (TYPES, "PrimarySmtpAddress")])
        .unwrap();
    assert_eq!(sid.text, "alice@contoso.com");
    assert!(doc.contains("xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\""));
}

fn meeting_with_people() -> NewMeeting {
    let at = |h| Utc.with_ymd_and_hms(2026, 9, 1, h, 0, 0).unwrap();
    NewMeeting {
        subject: "Project sync".into(),
        match_id: "0190-match".into(),
        start: at(8),
        end: at(9),
        location: Some("Room 4.12".into()),
        room: Some(addr("room-4.12@contoso.com")),
        attendees: vec![addr("bob@contoso.com"), addr("carol@contoso.com")],
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: None,
    }
}

fn mailbox_addresses(list: &Element) -> Vec<&str> {
    list.children
        .iter()
        .map(|a| {
            assert!(a.is(TYPES, "Attendee"));
            assert_eq!(names(a), ["Mailbox"]);
            let mb = a.find(TYPES, "Mailbox").unwrap();
            assert_eq!(names(mb), ["EmailAddress"]);
            mb.child_text(TYPES, "EmailAddress").unwrap()
        })
        .collect()
}

#[test]
fn people_are_required_attendees_before_the_room() {
    let op = create_meeting(&meeting_with_people());
    assert_eq!(op.get_attr("SendMeetingInvitations"), Some("SendToAllAndSaveCopy"));
    let item = op.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    let kids = names(item);
    let pos = |n: &str| kids.iter().position(|k| *k == n).unwrap();
    assert!(pos("Location") < pos("RequiredAttendees") && pos("RequiredAttendees") < pos("Resources"));
    let people = item.find(TYPES, "RequiredAttendees").unwrap();
    assert!(people.children.iter().all(|c| c.is(TYPES, "Attendee")));
    assert_eq!(mailbox_addresses(people), ["bob@contoso.com", "carol@contoso.com"]);
    assert_eq!(mailbox_addresses(item.find(TYPES, "Resources").unwrap()), ["room-4.12@contoso.com"]);
    // No people: no empty list (the schema allows none).
    let alone = create_meeting(&NewMeeting { attendees: vec![], ..meeting_with_people() });
    assert!(alone.descendants().iter().all(|e| e.name != "RequiredAttendees"));
}

#[test]
fn a_room_only_appointment_has_no_attendee_lists_and_sends_nothing() {
    let appt = NewMeeting { room: None, attendees: vec![], ..meeting_with_people() };
    assert!(appt.validate().is_ok());
    let op = create_meeting(&appt);
    assert_eq!(op.get_attr("SendMeetingInvitations"), Some("SendToNone"));
    assert_eq!(names(&op), ["SavedItemFolderId", "Items"]);
    let item = op.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    assert_eq!(
        names(item),
        [
            "Subject",
            "ExtendedProperty",
            "Start",
            "End",
            "LegacyFreeBusyStatus",
            "Location",
            "StartTimeZone",
            "EndTimeZone"
        ]
    );
    // A room-only series keeps the schema's order too.
    let series = create_meeting(&NewMeeting { recurrence: Some(weekly()), ..appt });
    let item = series.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    assert_eq!(names(item)[5..], ["Location", "Recurrence", "StartTimeZone", "EndTimeZone"]);
}

#[test]
fn people_are_replaced_or_removed_and_the_room_dropped() {
    let id = ItemId::new("AAMk1", "DwAA1");
    let updates = |change: &MeetingChange| {
        update_meeting(&id, change, ConflictResolution::NeverOverwrite)
            .path(&[(MESSAGES, "ItemChanges"), (TYPES, "ItemChange"), (TYPES, "Updates")])
            .unwrap()
            .clone()
    };
    let people = vec![addr("bob@contoso.com"), addr("erin@contoso.com")];
    let set = updates(&MeetingChange { attendees: Some(people), ..Default::default() });
    assert_eq!(names(&set), ["SetItemField"]);
    let s = &set.children[0];
    assert_eq!(names(s), ["FieldURI", "CalendarItem"]);
    assert_eq!(s.children[0].get_attr("FieldURI"), Some("calendar:RequiredAttendees"));
    assert_eq!(names(&s.children[1]), ["RequiredAttendees"]);
    assert_eq!(mailbox_addresses(&s.children[1].children[0]), ["bob@contoso.com", "erin@contoso.com"]);
    // Everyone removed, the room dropped: one DeleteItemField each, a path and nothing else.
    let dropped = updates(&MeetingChange {
        attendees: Some(vec![]),
        remove_rooms: true,
        subject: Some("Without the room".into()),
        ..Default::default()
    });
    assert_eq!(names(&dropped), ["SetItemField", "DeleteItemField", "DeleteItemField"]);
    let paths: Vec<_> =
        dropped.children[1..].iter().map(|d| (names(d), d.children[0].get_attr("FieldURI"))).collect();
    assert_eq!(
        paths,
        [
            (vec!["FieldURI"], Some("calendar:RequiredAttendees")),
            (vec!["FieldURI"], Some("calendar:Resources"))
        ]
    );
    let op = update_meeting(
        &id,
        &MeetingChange { remove_rooms: true, ..Default::default() },
        ConflictResolution::NeverOverwrite,
    );
    assert_eq!(op.get_attr("SendMeetingInvitationsOrCancellations"), Some("SendToAllAndSaveCopy"));
    assert!(!asks_for_body(&envelope(None, op)));
}

#[test]
fn bad_people_and_rooms_are_refused_with_what_to_change() {
    let bad = |r: Result<(), String>, says: &str| {
        let e = r.unwrap_err();
        assert!(e.contains(says), "{e}");
    };
    assert!(meeting_with_people().validate().is_ok());
    bad(NewMeeting { room: None, ..meeting_with_people() }.validate(), "room-only appointment");
    let twice = vec![addr("bob@contoso.com"), addr("BOB@contoso.com")];
    bad(NewMeeting { attendees: twice.clone(), ..meeting_with_people() }.validate(), "twice");
    let room = vec![addr("room-4.12@contoso.com")];
    bad(NewMeeting { attendees: room, ..meeting_with_people() }.validate(), "is the meeting's room");
    let many = (0..=NewMeeting::MAX_ATTENDEES).map(|i| addr(&format!("p{i}@contoso.com"))).collect();
    bad(NewMeeting { attendees: many, ..meeting_with_people() }.validate(), "at most 500");
    let both =
        MeetingChange { room: Some(addr("room-5@contoso.com")), remove_rooms: true, ..Default::default() };
    bad(both.validate(), "not both");
    bad(MeetingChange { attendees: Some(twice), ..Default::default() }.validate(), "twice");
    assert!(MeetingChange { remove_rooms: true, ..Default::default() }.validate().is_ok());
    assert!(!MeetingChange { remove_rooms: true, ..Default::default() }.is_empty());
}
