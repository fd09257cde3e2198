//! The client held to the vendored reference examples (`testdata/ews/`): every example parses by
//! namespace + local name, the readers understand the reference answers, and ORB's requests put their
//! elements in the same order as the reference requests.

use chrono::{TimeZone, Utc};
use orb_core::EmailAddress;
use orb_ews::model::{CalendarItemType, ItemId, MeetingChange, NewMeeting, ResponseType, Window};
use orb_ews::push::{self, EventKind, SubscriptionStatus};
use orb_ews::request::{self, ConflictResolution, Shape};
use orb_ews::response::{self, HttpAnswer};
use orb_ews::series::{DayOfWeek, ItemRef, Pattern, Range, Recurrence};
use orb_ews::xml::{self, Element, MESSAGES, SOAP, TYPES};
use orb_ews::{EwsError, model};

fn read(name: &str) -> String {
    let path = format!("{}/../../testdata/ews/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The examples of a file: the wrapper's children, or the document's root.
fn examples(name: &str) -> Vec<Element> {
    let root = xml::parse(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    if root.name == "ews-reference" { root.children } else { vec![root] }
}

fn answer(body: &str, status: u16) -> HttpAnswer<'_> {
    HttpAnswer { status, content_type: Some("text/xml; charset=utf-8"), retry_after: None, body }
}

fn in_envelope(op: &Element) -> String {
    Element::new(SOAP, "Envelope").child(Element::new(SOAP, "Body").child(op.clone())).to_document()
}

/// `ours`' children that the reference also has appear in the reference's order.
fn same_order(ours: &Element, reference: &Element) {
    let pos = |el: &Element| reference.children.iter().position(|r| r.ns == el.ns && r.name == el.name);
    let positions: Vec<usize> = ours.children.iter().filter_map(pos).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted, "{} children out of the reference order", ours.name);
}

fn op_of(envelope: &Element) -> &Element {
    &envelope.find(SOAP, "Body").unwrap().children[0]
}

#[test]
fn every_reference_example_is_well_formed_and_namespaced() {
    for name in [
        "envelope-skeleton.xml",
        "server-version-info-header.xml",
        "find-item-calendar-view.xml",
        "get-item-request.xml",
        "get-item-response-message.xml",
        "create-item.xml",
        "update-item.xml",
        "cancel-and-delete.xml",
        "subscribe-push.xml",
        "streaming.xml",
        "send-notification.xml",
        "send-notification-result.xml",
        "sync-folder-items.xml",
        "room-lists.xml",
        "delete-item-error.xml",
        "fault-server-busy.xml",
        "recurrence.xml",
        "find-item-match-id.xml",
    ] {
        for ex in examples(name) {
            for el in ex.descendants() {
                // Every element is in a namespace, except SOAP 1.1 fault children.
                let fault_child = ["faultcode", "faultstring", "detail"].contains(&el.name.as_str());
                assert!(!el.ns.is_empty() || fault_child, "{name}: {} has no namespace", el.name);
            }
        }
    }
}

#[test]
fn the_reference_answers_are_read() {
    let find = examples("find-item-calendar-view.xml");
    let page = response::find_item(&find[1], None).unwrap();
    assert!(page.includes_last);
    let item = &page.items[0];
    assert_eq!(item.item_type, Some(CalendarItemType::Occurrence));
    assert_eq!(item.organizer.as_ref().unwrap().name.as_deref(), Some("Alice Example"));
    assert_eq!(item.organizer.as_ref().unwrap().email, None, "FindItem shows only the name");
    assert_eq!(item.is_cancelled, Some(false));

    let msg = &examples("get-item-response-message.xml")[0];
    let op = Element::new(MESSAGES, "GetItemResponse")
        .child(Element::new(MESSAGES, "ResponseMessages").child(msg.clone()));
    let got = response::get_item(&op, None).unwrap().remove(0);
    // The reference uses another property set for its example property: not ORB's match id.
    let got = got.unwrap();
    assert_eq!(got.match_id, None);
    assert_eq!(got.uid.as_deref(), Some("040000008200E00074C5B7101A82E008…"));
    assert_eq!(got.resources[0].response, Some(ResponseType::Accept));
    assert_eq!(got.resources[0].mailbox.email.as_deref(), Some("room-4.12@contoso.com"));
    assert_eq!(got.appointment_state, Some(1));
    assert_eq!(got.my_response, Some(ResponseType::Organizer));
    // The master's series: pattern and range, its exception and its deleted occurrence.
    assert_eq!(got.item_type, Some(CalendarItemType::RecurringMaster));
    let rec = got.recurrence.as_ref().unwrap();
    assert_eq!(
        rec,
        &Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![DayOfWeek::Day(chrono::Weekday::Tue)],
                first_day_of_week: None
            },
            range: Range::Numbered { start: chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(), count: 10 },
        }
    );
    let ex = &got.modified_occurrences[0];
    assert_eq!(ex.item_id.id, "AAMkAD…exception…");
    assert_eq!(ex.start, Utc.with_ymd_and_hms(2026, 9, 8, 9, 0, 0).unwrap());
    assert_eq!(ex.original_start, Utc.with_ymd_and_hms(2026, 9, 8, 8, 0, 0).unwrap());
    assert_eq!(got.deleted_occurrences, [Utc.with_ymd_and_hms(2026, 9, 15, 8, 0, 0).unwrap()]);
    assert_eq!(got.start_time_zone.as_deref(), Some("W. Europe Standard Time"));

    let create = examples("create-item.xml");
    let op = Element::new(MESSAGES, "CreateItemResponse")
        .child(Element::new(MESSAGES, "ResponseMessages").child(create[1].clone()));
    assert_eq!(response::written_item(&op, None).unwrap(), ItemId::new("AAMkA…", "DwAAA…"));

    let update = examples("update-item.xml");
    let op = Element::new(MESSAGES, "UpdateItemResponse")
        .child(Element::new(MESSAGES, "ResponseMessages").child(update[1].clone()));
    assert_eq!(response::written_item(&op, None).unwrap().change_key.as_deref(), Some("DwAAA…new…"));

    let err = &examples("delete-item-error.xml")[0];
    let op = Element::new(MESSAGES, "DeleteItemResponse")
        .child(Element::new(MESSAGES, "ResponseMessages").child(err.clone()));
    assert!(matches!(response::no_payload(&op, None), Err(EwsError::NotFound { .. })));

    let sync = examples("sync-folder-items.xml");
    let op = Element::new(MESSAGES, "SyncFolderItemsResponse")
        .child(Element::new(MESSAGES, "ResponseMessages").child(sync[1].clone()));
    let page = response::sync_folder_items(&op, None).unwrap();
    assert!(!page.includes_last);
    assert_eq!(page.changes.len(), 3);
    assert!(matches!(&page.changes[2], model::SyncChange::Delete(id) if id.id == "AAMk…3"));

    let rooms = examples("room-lists.xml");
    assert_eq!(response::room_lists(&rooms[0]).unwrap()[0].email, "bldg1rooms@contoso.com");
    assert_eq!(response::rooms(&rooms[1]).unwrap()[0].email, "room-4.12@contoso.com");

    let sub = examples("subscribe-push.xml");
    let op = Element::new(MESSAGES, "SubscribeResponse")
        .child(Element::new(MESSAGES, "ResponseMessages").child(sub[1].clone()));
    assert_eq!(response::subscribe(&op, None).unwrap().id, "83826921-afdf-48be-b469-628cc02b5f49");

    let busy = read("fault-server-busy.xml");
    let e = response::operation_response(&answer(&busy, 500), None).unwrap_err();
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_millis(297_749)));
    assert!(e.is_retryable());
}

#[test]
fn the_reference_push_notification_is_read_and_answered() {
    let n = push::parse_notification(&read("send-notification.xml")).unwrap();
    assert_eq!(n[0].subscription_id, "83826921-afdf-48be-b469-628cc02b5f49");
    assert_eq!(n[0].previous_watermark.as_deref(), Some("ygwAAAAAAAA="));
    assert_eq!(
        n[0].events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::Created, EventKind::Modified]
    );
    assert_eq!(n[0].events[0].item_id, Some(ItemId::new("AAMkA…", "DwAAA…")));
    assert_eq!(n[0].last_watermark(), Some("zAwAAAAAAAA="));
    // ORB's answer has the reference's shape.
    let ours = xml::parse(&push::notification_result(SubscriptionStatus::Ok)).unwrap();
    let reference = xml::parse(&read("send-notification-result.xml")).unwrap();
    assert_eq!(ours.shape(), reference.shape());
    assert_eq!(
        push::parse_notification_result(&read("send-notification-result.xml")).unwrap(),
        SubscriptionStatus::Ok
    );
    // The emulator's notification has the reference's shape (events as in the reference).
    let emitted = xml::parse(&push::notification_document(&n[0])).unwrap();
    let reference = xml::parse(&read("send-notification.xml")).unwrap();
    let body = |e: &Element| e.find(SOAP, "Body").unwrap().shape();
    assert_eq!(body(&emitted), body(&reference));
}

#[test]
fn orbs_requests_follow_the_reference_order() {
    let at = |h| Utc.with_ymd_and_hms(2026, 9, 1, h, 0, 0).unwrap();
    let room = EmailAddress::parse("room-4.12@contoso.com").unwrap();
    let shape = Shape { subject: true };

    let find_ref = &examples("find-item-calendar-view.xml")[0];
    let ours = request::find_calendar_view(Window { start: at(0), end: at(23) }, 500, shape);
    same_order(&ours, find_ref);
    assert_eq!(ours.children.len(), find_ref.children.len());

    let get_ref = &examples("get-item-request.xml")[0];
    let ours = request::get_items(&[ItemId::new("A", "K")], shape);
    same_order(&ours, get_ref);
    // Our properties are a subset of the reference's, which names no body either.
    let uris = |e: &Element| {
        e.descendants().iter().filter_map(|d| d.get_attr("FieldURI").map(str::to_owned)).collect::<Vec<_>>()
    };
    let reference_uris = uris(get_ref);
    // Beyond the reference's list, ORB reads an occurrence's OriginalStart and a master's first and last
    // occurrence (schema `UnindexedFieldURIType` values, shown in the reference's schema order line).
    let extra = ["calendar:OriginalStart", "calendar:FirstOccurrence", "calendar:LastOccurrence"];
    for u in uris(&ours) {
        assert!(
            reference_uris.contains(&u) || extra.contains(&u.as_str()),
            "{u} is not in the reference GetItem"
        );
    }

    let create_ref = &examples("create-item.xml")[0];
    let meeting = NewMeeting {
        subject: "Project sync".into(),
        match_id: "m-1".into(),
        start: at(8),
        end: at(9),
        location: Some("Room 4.12".into()),
        room: Some(room.clone()),
        attendees: Vec::new(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: None,
    };
    let ours = request::create_meeting(&meeting);
    same_order(&ours, create_ref);
    let item = |e: &Element| e.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap().clone();
    same_order(&item(&ours), &item(create_ref));
    // Everything of the reference's item but the body.
    let names = |e: &Element| e.children.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let mut expected = names(&item(create_ref));
    expected.retain(|n| n != "Body");
    assert_eq!(names(&item(&ours)), expected);

    let update_ref = &examples("update-item.xml")[0];
    let change = MeetingChange {
        start: Some(at(9)),
        end: Some(at(10)),
        match_id: Some("m-2".into()),
        ..Default::default()
    };
    let ours = request::update_meeting(ItemId::new("A", "K"), &change, ConflictResolution::NeverOverwrite);
    same_order(&ours, update_ref);
    let updates = |e: &Element| {
        e.path(&[(MESSAGES, "ItemChanges"), (TYPES, "ItemChange"), (TYPES, "Updates")]).unwrap().shape()
    };
    // Same SetItemField shapes as the reference (start, end, extended property), minus its DeleteItemField.
    let mut reference_updates = updates(update_ref);
    reference_updates.retain(|p| !p.contains("DeleteItemField"));
    let mut ours_updates = updates(&ours);
    ours_updates.sort();
    reference_updates.sort();
    assert_eq!(ours_updates, reference_updates);
    // Dropping the room is the reference's DeleteItemField (a path, nothing else), on Resources.
    let drop_room = MeetingChange { remove_rooms: true, ..Default::default() };
    let ours = request::update_meeting(ItemId::new("A", "K"), &drop_room, ConflictResolution::NeverOverwrite);
    let removals =
        |e: &Element| updates(e).into_iter().filter(|p| p.contains("DeleteItemField")).collect::<Vec<_>>();
    assert_eq!(removals(&ours), removals(update_ref));
    let deleted = ours.descendants().into_iter().find(|e| e.name == "DeleteItemField").unwrap().clone();
    assert_eq!(deleted.children[0].get_attr("FieldURI"), Some("calendar:Resources"));

    let cancel_ref = examples("cancel-and-delete.xml");
    let ours = request::cancel_meeting(&ItemId::new("A", "K"));
    assert_eq!(ours.get_attr("MessageDisposition"), cancel_ref[0].get_attr("MessageDisposition"));
    let ours_del = request::delete_item(ItemId::new("A", "K"));
    assert_eq!(ours_del.shape(), cancel_ref[1].shape());
    assert_eq!(ours_del.attrs, cancel_ref[1].attrs);

    let sync_ref = &examples("sync-folder-items.xml")[0];
    let ours = request::sync_folder_items(Some("H4sI"), 512);
    assert_eq!(ours.shape(), sync_ref.shape());

    let sub_ref = &examples("subscribe-push.xml")[0];
    let ours = request::subscribe_push(&model::PushRequest {
        url: "https://orb.example/hooks/ews/t".into(),
        status_frequency_minutes: 5,
        watermark: Some("AQAA".into()),
    });
    assert_eq!(ours.shape(), sub_ref.shape());

    // The envelope: header elements as in the skeleton.
    let skeleton = xml::parse(&read("envelope-skeleton.xml")).unwrap();
    let ours = request::envelope(Some(&room), request::get_room_lists());
    let header_shape = |e: &Element| {
        let mut s = e.find(SOAP, "Header").unwrap().shape();
        s.retain(|p| !p.contains("TimeZoneContext"));
        s
    };
    assert_eq!(header_shape(&ours), header_shape(&skeleton));
    // And what is written reads back identically.
    assert_eq!(&xml::parse(&ours.to_document()).unwrap(), &ours);
    let _ = in_envelope(op_of(&ours));
}

#[test]
fn orbs_match_lookup_is_the_reference_lookup() {
    let reference = &examples("find-item-match-id.xml")[0];
    let ours = request::find_by_match_id("TD-000123");
    // The same elements in the same order, the same operation and view attributes.
    assert_eq!(ours.shape(), reference.shape());
    assert_eq!(ours.attrs, reference.attrs);
    let view = |e: &Element| e.find(MESSAGES, "IndexedPageItemView").unwrap().attrs.clone();
    assert_eq!(view(&ours), view(reference));
    let path = [(MESSAGES, "Restriction"), (TYPES, "IsEqualTo")];
    let (ours_eq, ref_eq) = (ours.path(&path).unwrap(), reference.path(&path).unwrap());
    // ORB's own property (set, name), in the reference's form; the constant as given.
    let attr_names = |e: &Element| e.attrs.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
    assert_eq!(attr_names(&ours_eq.children[0]), attr_names(&ref_eq.children[0]));
    assert_eq!(ours_eq.children[0], request::match_field_uri());
    assert_eq!(ours_eq.children[1], ref_eq.children[1]);
    // It reads back as written.
    let doc = request::envelope(None, ours.clone()).to_document();
    assert_eq!(op_of(&xml::parse(&doc).unwrap()), &ours);
}

#[test]
fn the_reference_series_examples_are_read_and_written_alike() {
    let ex = examples("recurrence.xml");
    let occ = ItemRef::parse(&ex[0]).unwrap();
    assert_eq!(
        occ,
        ItemRef::Occurrence { master: ItemId { id: "AAMkA…master…".into(), change_key: None }, index: 3 }
    );
    assert_eq!(occ.to_element(), ex[0], "written as the reference writes it");
    let master = ItemRef::parse(&ex[1]).unwrap();
    assert_eq!(master, ItemRef::MasterOf(ItemId { id: "AAMkA…occurrence…".into(), change_key: None }));
    assert_eq!(master.to_element(), ex[1]);
    let rec = Recurrence::parse(&ex[2]).unwrap();
    assert_eq!(
        rec,
        Recurrence {
            pattern: Pattern::RelativeMonthly {
                interval: 1,
                day: DayOfWeek::Day(chrono::Weekday::Tue),
                index: orb_core::recurrence::WeekIndex::Second,
            },
            range: Range::EndDate {
                start: chrono::NaiveDate::from_ymd_opt(2026, 9, 8).unwrap(),
                end: chrono::NaiveDate::from_ymd_opt(2027, 6, 30).unwrap(),
            },
        }
    );
    // ORB writes the same elements in the same order.
    assert_eq!(rec.to_element().shape(), ex[2].shape());
    // A series create puts Recurrence where the schema wants it, between Resources and the zones.
    let at = |d, h| Utc.with_ymd_and_hms(2026, 9, d, h, 0, 0).unwrap();
    let meeting = NewMeeting {
        subject: "Jour fixe".into(),
        match_id: "m-s".into(),
        start: at(8, 8),
        end: at(8, 9),
        location: None,
        room: Some(EmailAddress::parse("room-4.12@contoso.com").unwrap()),
        attendees: Vec::new(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: Some(rec),
    };
    let ours = request::create_meeting(&meeting);
    let item = ours.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    same_order(
        item,
        &examples("create-item.xml")[0]
            .path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")])
            .unwrap()
            .clone(),
    );
    let names: Vec<&str> = item.children.iter().map(|c| c.name.as_str()).collect();
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("Resources") < pos("Recurrence") && pos("Recurrence") < pos("StartTimeZone"));
}

#[test]
fn orbs_streaming_requests_follow_the_reference() {
    use orb_ews::streaming::{self, ConnectionTimeout, StreamBatch, StreamFailure};
    use std::collections::BTreeSet;
    let refs = examples("streaming.xml");
    let (sub_ref, get_ref) = (&refs[0], &refs[1]);
    assert!(sub_ref.is(MESSAGES, "Subscribe") && get_ref.is(MESSAGES, "GetStreamingEvents"));
    let ours = streaming::subscribe_request();
    let (o, r) = (&ours.children[0], &sub_ref.children[0]);
    assert!(o.is(MESSAGES, "StreamingSubscriptionRequest") && r.is(MESSAGES, "StreamingSubscriptionRequest"));
    same_order(o, r);
    let names = |e: &Element| e.children.iter().map(|c| (c.ns.clone(), c.name.clone())).collect::<Vec<_>>();
    assert_eq!(names(o), names(r), "FolderIds then EventTypes, nothing else (no watermark)");
    // The reference's event types are a subset of ORB's (push's set).
    let types = |e: &Element| -> BTreeSet<String> {
        e.find(TYPES, "EventTypes").unwrap().children.iter().map(|t| t.text.trim().to_owned()).collect()
    };
    assert!(types(r).is_subset(&types(o)));

    // GetStreamingEvents: the reference's ids and timeout written back in the same shape.
    let ids: Vec<String> = get_ref
        .find(MESSAGES, "SubscriptionIds")
        .unwrap()
        .find_all(TYPES, "SubscriptionId")
        .map(|i| i.text.trim().to_owned())
        .collect();
    let minutes: u32 = get_ref.child_text(MESSAGES, "ConnectionTimeout").unwrap().trim().parse().unwrap();
    let ours =
        streaming::get_streaming_events_request(&ids, ConnectionTimeout::minutes(minutes).unwrap()).unwrap();
    assert_eq!(ours.shape(), get_ref.shape());
    let sent = xml::parse(&in_envelope(&ours)).unwrap();
    assert_eq!(op_of(&sent).child_text(MESSAGES, "ConnectionTimeout"), Some("30"));

    // An answer envelope in the reference's described shape (m:Notification, m:ErrorSubscriptionIds,
    // ConnectionStatus, schema order) is read; t:Notification is accepted too.
    let failure = StreamFailure {
        code: "ErrorInvalidSubscription".into(),
        message: "x".into(),
        subscription_ids: ids.clone(),
    };
    let batch = StreamBatch { failure: Some(failure), ..StreamBatch::default() };
    let doc = in_envelope(&streaming::response_element(&batch));
    assert_eq!(streaming::parse_envelope(&doc).unwrap(), batch);
    let notification = push::parse_notification(&read("send-notification.xml")).unwrap().remove(0);
    let batch = StreamBatch {
        notifications: vec![notification],
        status: Some(streaming::ConnectionStatus::Ok),
        ..StreamBatch::default()
    };
    let doc = in_envelope(&streaming::response_element(&batch));
    assert_eq!(streaming::parse_envelope(&doc).unwrap(), batch);
    let types_ns =
        doc.replace("<m:Notification>", "<t:Notification>").replace("</m:Notification>", "</t:Notification>");
    assert_ne!(types_ns, doc);
    assert_eq!(streaming::parse_envelope(&types_ns).unwrap(), batch);
}
