//! The EWS emulator held to the vendored reference examples (`testdata/ews/`): the reference requests
//! are sent to it as they are (ids and the callback URL swapped for live ones), and each answer the
//! client reads has the reference answer's elements in the same order, by namespace + local name.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use orb_core::{EmailAddress, FixedClock};
use orb_emulators::ews::{self, EwsEmulator, Knobs, RoomSettings, Scope, Served};
use orb_ews::request;
use orb_ews::xml::{self, Element, MESSAGES, SOAP, TYPES};

const ALICE: &str = "alice@contoso.com";
const ROOM: &str = "room-4.12@contoso.com";

fn read(name: &str) -> String {
    let path = format!("{}/../../testdata/ews/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn examples(name: &str) -> Vec<Element> {
    let root = xml::parse(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    if root.name == "ews-reference" { root.children } else { vec![root] }
}

struct World {
    em: EwsEmulator,
    served: Served,
    http: reqwest::Client,
}

async fn world() -> World {
    let clock = FixedClock::new(Utc.with_ymd_and_hms(2026, 8, 20, 9, 0, 0).unwrap());
    let em = EwsEmulator::new(Arc::new(clock));
    em.add_user(ALICE, "Alice Example");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    em.add_room_list("Building 1 Rooms", "bldg1rooms@contoso.com", &[ROOM]);
    em.add_account(
        "svc",
        "pw",
        Scope::Mailboxes([ALICE, ROOM].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()),
    );
    let served = ews::serve(em.clone()).await.unwrap();
    World { em, served, http: reqwest::Client::new() }
}

impl World {
    /// Sends `op` impersonating `mailbox`; the HTTP status and the whole answer.
    async fn send_raw(&self, mailbox: &str, body: String) -> (u16, Element) {
        let _ = mailbox;
        let resp = self
            .http
            .post(self.served.ews_url())
            .basic_auth("svc", Some("pw"))
            .header("content-type", "text/xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, xml::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}")))
    }

    async fn send(&self, mailbox: &str, op: Element) -> (u16, Element) {
        let env = request::envelope(Some(&EmailAddress::parse(mailbox).unwrap()), op);
        self.send_raw(mailbox, env.to_document()).await
    }

    /// The operation response of a successful call.
    async fn op(&self, mailbox: &str, op: Element) -> Element {
        let (status, env) = self.send(mailbox, op).await;
        assert_eq!(status, 200, "{}", env.to_document());
        env.find(SOAP, "Body").unwrap().children[0].clone()
    }
}

fn message(op: &Element) -> Element {
    op.find(MESSAGES, "ResponseMessages").unwrap().children[0].clone()
}

/// `ours` has `reference`'s name, and each of its children matches a later child of the reference
/// (recursively): the same elements in the same order, fewer allowed; a run of one element (a list's
/// `Attendee`s) matches the reference's one.
fn ordered_subset(ours: &Element, reference: &Element, path: &str) {
    let here = format!("{path}/{}", ours.name);
    assert!(
        ours.ns == reference.ns && ours.name == reference.name,
        "{here}: reference has {{{}}}{}",
        reference.ns,
        reference.name
    );
    let mut from = 0;
    for (i, c) in ours.children.iter().enumerate() {
        if i > 0 && ours.children[i - 1].ns == c.ns && ours.children[i - 1].name == c.name {
            ordered_subset(c, &reference.children[from - 1], &here);
            continue;
        }
        let pos =
            reference.children[from..].iter().position(|r| r.ns == c.ns && r.name == c.name).unwrap_or_else(
                || panic!("{here}: {{{}}}{} is not in the reference here (or out of order)", c.ns, c.name),
            );
        ordered_subset(c, &reference.children[from + pos], &here);
        from += pos + 1;
    }
}

fn names(el: &Element) -> Vec<&str> {
    el.children.iter().map(|c| c.name.as_str()).collect()
}

fn set_item_id(el: &mut Element, id: &str, ck: &str) {
    for c in &mut el.children {
        if c.is(TYPES, "ItemId") {
            c.attrs.retain(|a| a.name != "Id" && a.name != "ChangeKey");
            *c = std::mem::take(c).attr("Id", id).attr("ChangeKey", ck);
        } else {
            set_item_id(c, id, ck);
        }
    }
}

#[tokio::test]
async fn the_emulators_answers_have_the_reference_shapes() {
    let w = world().await;
    // CreateItem: the reference request as it is (it has a body; the emulator stores it).
    let create = examples("create-item.xml");
    let created = w.op(ALICE, create[0].clone()).await;
    assert_eq!(message(&created).shape(), create[1].shape());
    let organizer = w.em.items(ALICE)[0].clone();
    assert_eq!(
        organizer.extended.get("{c11ff724-aa03-4555-9952-8fa248a11c3e}SyncBookingId").map(String::as_str),
        Some("TD-000123")
    );

    // Every answer carries ServerVersionInfo as in the reference header.
    let (_, env) = w.send(ROOM, examples("find-item-calendar-view.xml")[0].clone()).await;
    let header_ref = &examples("server-version-info-header.xml")[0];
    assert_eq!(env.find(SOAP, "Header").unwrap().shape(), header_ref.shape());
    let version = env.path(&[(SOAP, "Header"), (TYPES, "ServerVersionInfo")]).unwrap();
    for a in ["MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber", "Version"] {
        assert!(version.get_attr(a).is_some(), "{a}");
    }

    // FindItem with the reference's CalendarView over the room: exactly the reference's shape.
    let find = examples("find-item-calendar-view.xml");
    let found = w.op(ROOM, find[0].clone()).await;
    assert_eq!(found.shape(), find[1].shape());
    let item = found
        .path(&[
            (MESSAGES, "ResponseMessages"),
            (MESSAGES, "FindItemResponseMessage"),
            (MESSAGES, "RootFolder"),
            (TYPES, "Items"),
            (TYPES, "CalendarItem"),
        ])
        .unwrap();
    assert_eq!(
        item.child_text(TYPES, "Subject"),
        Some("Alice Example"),
        "the room copy's subject is the organizer's name"
    );

    // GetItem with the reference's properties on the organizer's item.
    let mut get = examples("get-item-request.xml")[0].clone();
    set_item_id(&mut get, &organizer.id, &organizer.change_key);
    let got = w.op(ALICE, get).await;
    let reference = &examples("get-item-response-message.xml")[0];
    let msg = message(&got);
    ordered_subset(&msg, reference, "");
    let item = msg.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    assert_eq!(
        names(item),
        [
            "ItemId",
            "Subject",
            "ExtendedProperty",
            "LastModifiedTime",
            "UID",
            "Start",
            "End",
            "Location",
            "IsCancelled",
            "CalendarItemType",
            "MyResponseType",
            "Organizer",
            "Resources",
            "AppointmentState",
            "StartTimeZone",
            "EndTimeZone"
        ]
    );
    assert!(item.find(TYPES, "Body").is_none(), "not asked for, not sent");

    // UpdateItem (the reference request, AutoResolve, with the current change key).
    let current = w.em.items(ALICE)[0].clone();
    let update = examples("update-item.xml");
    let mut req = update[0].clone();
    set_item_id(&mut req, &current.id, &current.change_key);
    let updated = w.op(ALICE, req).await;
    assert_eq!(message(&updated).shape(), update[1].shape());
    assert_eq!(w.em.items(ALICE)[0].start, Utc.with_ymd_and_hms(2026, 9, 1, 9, 0, 0).unwrap());

    // SyncFolderItems: the reference's own state is garbage to this server; without it, the shapes.
    let sync = examples("sync-folder-items.xml");
    let refused = w.op(ROOM, sync[0].clone()).await;
    assert_eq!(message(&refused).child_text(MESSAGES, "ResponseCode"), Some("ErrorInvalidSyncStateData"));
    let mut first = sync[0].clone();
    first.children.retain(|c| c.name != "SyncState");
    let synced = w.op(ROOM, first).await;
    ordered_subset(&message(&synced), &sync[1], "");
    assert_eq!(names(&message(&synced)), names(&sync[1]));

    // DeleteItem of an item that is not there: the captured Exchange error, element for element.
    let cancel = examples("cancel-and-delete.xml");
    let deleted = w.op(ALICE, cancel[1].clone()).await;
    assert_eq!(message(&deleted).shape(), examples("delete-item-error.xml")[0].shape());
    // The reference cancellation on the live item: a CreateItem answer, the room copy cancelled.
    let live = w.em.items(ALICE)[0].clone();
    let mut cancel_req = cancel[0].clone();
    for c in &mut cancel_req.children[0].children[0].children {
        if c.name == "ReferenceItemId" {
            *c = Element::new(TYPES, "ReferenceItemId")
                .attr("Id", live.id.as_str())
                .attr("ChangeKey", live.change_key.as_str());
        }
    }
    let cancelled = w.op(ALICE, cancel_req).await;
    assert_eq!(message(&cancelled).get_attr("ResponseClass"), Some("Success"));
    assert!(w.em.items(ROOM)[0].is_cancelled);

    // Room discovery: exactly the reference shapes.
    let rooms = examples("room-lists.xml");
    assert_eq!(w.op(ROOM, request::get_room_lists()).await.shape(), rooms[0].shape());
    let list = EmailAddress::parse("bldg1rooms@contoso.com").unwrap();
    assert_eq!(w.op(ROOM, request::get_rooms(&list)).await.shape(), rooms[1].shape());

    // Subscribe (the reference request with a local URL and no foreign watermark).
    let sub = examples("subscribe-push.xml");
    let mut req = sub[0].clone();
    let push = &mut req.children[0];
    push.children.retain(|c| c.name != "Watermark");
    for c in &mut push.children {
        if c.name == "URL" {
            c.text = "http://127.0.0.1:9/hooks/ews/t".into();
        }
    }
    let subscribed = w.op(ROOM, req).await;
    assert_eq!(message(&subscribed).shape(), sub[1].shape());

    // Busy: the fault exactly as the reference.
    w.em.set_knobs(Knobs { busy_count: 1, back_off_ms: 297_749, ..Knobs::default() });
    let (status, fault) = w.send(ROOM, request::get_room_lists()).await;
    assert_eq!(status, 500);
    assert_eq!(fault.shape(), examples("fault-server-busy.xml")[0].shape());
}

#[tokio::test]
async fn the_emulator_refuses_what_exchange_refuses() {
    let w = world().await;
    // Out of the schema's sequence (U13): Start before Subject.
    let mut create = examples("create-item.xml")[0].clone();
    let item = &mut create.children[1].children[0];
    item.children.swap(0, 3);
    let (status, fault) = w.send(ALICE, create).await;
    assert_eq!(status, 500);
    let code = fault.descendants().into_iter().find(|e| e.name == "ResponseCode").unwrap().text.clone();
    assert_eq!(code, "ErrorSchemaValidation");
    // No SendMeetingInvitations on a calendar item.
    let mut create = examples("create-item.xml")[0].clone();
    create.attrs.clear();
    let answer = w.op(ALICE, create).await;
    assert_eq!(
        message(&answer).child_text(MESSAGES, "ResponseCode"),
        Some("ErrorSendMeetingInvitationsRequired")
    );
    assert!(w.em.items(ALICE).is_empty() && w.em.items(ROOM).is_empty(), "refusals change nothing");
    // The https spelling of the SOAP namespace is not SOAP.
    let doc = request::envelope(None, request::get_room_lists())
        .to_document()
        .replace("http://schemas.xmlsoap.org", "https://schemas.xmlsoap.org");
    let (status, _) = w.send_raw(ROOM, doc).await;
    assert_eq!(status, 500);
    // An unknown server version.
    let doc = request::envelope(None, request::get_room_lists())
        .to_document()
        .replace("Exchange2013_SP1", "Exchange2019");
    let (status, fault) = w.send_raw(ROOM, doc).await;
    assert_eq!(status, 500);
    assert!(fault.to_document().contains("ErrorInvalidServerVersion"));
    // The request log marks requests that could return a body.
    let mut get = examples("get-item-request.xml")[0].clone();
    set_item_id(&mut get, "AAMkADmissing", "x");
    get.children[0].children[1].children.push(Element::new(TYPES, "FieldURI").attr("FieldURI", "item:Body"));
    w.op(ALICE, get).await;
    let log = w.em.requests();
    assert!(log.last().unwrap().asks_for_body);
    assert_eq!(w.em.body_requests().len(), 1);
}

#[tokio::test]
async fn the_pushed_notification_has_the_reference_shape() {
    let w = world().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/hooks/ews/t",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                orb_ews::push::notification_result(orb_ews::push::SubscriptionStatus::Ok)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/ews/t", listener.local_addr().unwrap());
    let _server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let req = orb_ews::model::PushRequest { url, status_frequency_minutes: 30, watermark: None };
    w.op(ROOM, request::subscribe_push(&req)).await;
    w.op(ALICE, examples("create-item.xml")[0].clone()).await;
    let body = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv()).await.unwrap().unwrap();
    let ours = xml::parse(&body).unwrap();
    let reference = xml::parse(&read("send-notification.xml")).unwrap();
    ordered_subset(ours.find(SOAP, "Body").unwrap(), reference.find(SOAP, "Body").unwrap(), "");
    let created =
        ours.descendants().into_iter().find(|e| e.is(TYPES, "CreatedEvent")).expect("a CreatedEvent");
    assert_eq!(names(created), ["Watermark", "TimeStamp", "ItemId", "ParentFolderId"]);
}

#[tokio::test]
async fn a_series_master_has_the_reference_shape() {
    let w = world().await;
    // The reference CreateItem with the reference master's Recurrence (Tuesdays, 10 times from
    // 1 September) added in schema order, before the zones.
    let mut create = examples("create-item.xml")[0].clone();
    let reference = examples("get-item-response-message.xml")[0].clone();
    let recurrence = reference
        .path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem"), (TYPES, "Recurrence")])
        .unwrap()
        .clone();
    {
        let items = create.children.iter_mut().find(|c| c.is(MESSAGES, "Items")).unwrap();
        let item = &mut items.children[0];
        let at = item.children.iter().position(|c| c.name == "StartTimeZone").unwrap();
        item.children.insert(at, recurrence.clone());
    }
    let created = w.op(ALICE, create).await;
    assert_eq!(message(&created).child_text(MESSAGES, "ResponseCode"), Some("NoError"));
    let master = w.em.items(ALICE)[0].clone();
    assert_eq!(master.start, Utc.with_ymd_and_hms(2026, 9, 1, 8, 0, 0).unwrap());

    // The reference's exception (the second occurrence an hour later) and deleted occurrence (the third).
    let index = |i: u32| {
        Element::new(TYPES, "OccurrenceItemId")
            .attr("RecurringMasterId", master.id.as_str())
            .attr("InstanceIndex", i.to_string())
    };
    let set = |field: &str, value: &str| {
        Element::new(TYPES, "SetItemField")
            .child(Element::new(TYPES, "FieldURI").attr("FieldURI", format!("calendar:{field}")))
            .child(Element::new(TYPES, "CalendarItem").child(Element::new(TYPES, field).text(value)))
    };
    let change = Element::new(TYPES, "ItemChange").child(index(2)).child(
        Element::new(TYPES, "Updates")
            .child(set("Start", "2026-09-08T09:00:00Z"))
            .child(set("End", "2026-09-08T10:00:00Z")),
    );
    let update = Element::new(MESSAGES, "UpdateItem")
        .attr("ConflictResolution", "AlwaysOverwrite")
        .attr("SendMeetingInvitationsOrCancellations", "SendToAllAndSaveCopy")
        .child(Element::new(MESSAGES, "ItemChanges").child(change));
    let updated = w.op(ALICE, update).await;
    assert_eq!(message(&updated).child_text(MESSAGES, "ResponseCode"), Some("NoError"));
    let delete = Element::new(MESSAGES, "DeleteItem")
        .attr("DeleteType", "MoveToDeletedItems")
        .attr("SendMeetingCancellations", "SendToAllAndSaveCopy")
        .child(Element::new(MESSAGES, "ItemIds").child(index(3)));
    let deleted = w.op(ALICE, delete).await;
    assert_eq!(message(&deleted).child_text(MESSAGES, "ResponseCode"), Some("NoError"));

    // GetItem with the reference's properties: the reference master's elements in its order.
    let master = w.em.items(ALICE)[0].clone();
    let mut get = examples("get-item-request.xml")[0].clone();
    set_item_id(&mut get, &master.id, &master.change_key);
    let got = w.op(ALICE, get).await;
    let msg = message(&got);
    ordered_subset(&msg, &reference, "");
    let item = msg.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    assert_eq!(item.child_text(TYPES, "CalendarItemType"), Some("RecurringMaster"));
    let rec = item.find(TYPES, "Recurrence").unwrap();
    assert_eq!(rec.shape(), recurrence.shape(), "the recurrence as it was sent");
    let ex = item.path(&[(TYPES, "ModifiedOccurrences"), (TYPES, "Occurrence")]).unwrap();
    assert_eq!(ex.child_text(TYPES, "Start"), Some("2026-09-08T09:00:00Z"));
    assert_eq!(ex.child_text(TYPES, "OriginalStart"), Some("2026-09-08T08:00:00Z"));
    let gone = item.path(&[(TYPES, "DeletedOccurrences"), (TYPES, "DeletedOccurrence")]).unwrap();
    assert_eq!(gone.child_text(TYPES, "Start"), Some("2026-09-15T08:00:00Z"));
    // The room's copy of the series has the same exception and deleted occurrence.
    let copy = w.em.items(ROOM).into_iter().find(|i| i.uid == master.uid).unwrap();
    assert_eq!(copy.deleted_occurrences, master.deleted_occurrences);
    assert_eq!(copy.exceptions.keys().collect::<Vec<_>>(), master.exceptions.keys().collect::<Vec<_>>());
}

fn code_of(el: &Element) -> String {
    el.descendants()
        .into_iter()
        .find(|e| e.name == "ResponseCode")
        .map(|e| e.text.clone())
        .unwrap_or_default()
}

/// The reference CreateItem with another value of the reference's extended property and, if given, the
/// reference master's recurrence (in schema order, before the zones).
fn reference_create(value: &str, recurrence: bool) -> Element {
    let mut create = examples("create-item.xml")[0].clone();
    let rec = examples("get-item-response-message.xml")[0]
        .path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem"), (TYPES, "Recurrence")])
        .unwrap()
        .clone();
    let item = &mut create.children.iter_mut().find(|c| c.is(MESSAGES, "Items")).unwrap().children[0];
    for c in &mut item.children {
        if c.is(TYPES, "ExtendedProperty") {
            c.children.iter_mut().find(|v| v.name == "Value").unwrap().text = value.to_owned();
        }
    }
    if recurrence {
        let at = item.children.iter().position(|c| c.name == "StartTimeZone").unwrap();
        item.children.insert(at, rec);
    }
    create
}

/// The reference lookup (§3.3) with another constant.
fn reference_lookup(value: &str) -> Element {
    let mut lookup = examples("find-item-match-id.xml")[0].clone();
    let restriction = lookup.children.iter_mut().find(|c| c.name == "Restriction").unwrap();
    let operand = &mut restriction.children[0].children[1];
    operand.children[0] = Element::new(TYPES, "Constant").attr("Value", value);
    lookup
}

fn found_ids(op: &Element) -> Vec<String> {
    message(op)
        .path(&[(MESSAGES, "RootFolder"), (TYPES, "Items")])
        .map(|items| {
            items
                .children
                .iter()
                .filter_map(|c| c.find(TYPES, "ItemId")?.get_attr("Id"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_match_id_lookup_answers_in_the_reference_shape() {
    let w = world().await;
    w.op(ALICE, examples("create-item.xml")[0].clone()).await;
    let organizer = w.em.items(ALICE)[0].clone();
    // The reference lookup (§3.3) as it is: the reference item's property and value.
    let lookup = examples("find-item-match-id.xml")[0].clone();
    let found = w.op(ALICE, lookup.clone()).await;
    // The answer is a FindItemResponse like the reference's CalendarView answer, ids only (IdOnly).
    ordered_subset(&found, &examples("find-item-calendar-view.xml")[1], "");
    let root = message(&found).find(MESSAGES, "RootFolder").unwrap().clone();
    assert_eq!(root.get_attr("IndexedPagingOffset"), Some("1"));
    assert_eq!(root.get_attr("TotalItemsInView"), Some("1"));
    assert_eq!(root.get_attr("IncludesLastItemInRange"), Some("true"));
    let item = root.path(&[(TYPES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    assert_eq!(names(item), ["ItemId"]);
    assert_eq!(found_ids(&found), [organizer.id.as_str()]);
    // The room's copy carries no extended property (U9): an empty list there.
    let none = w.op(ROOM, lookup.clone()).await;
    assert_eq!(code_of(&none), "NoError");
    let root = message(&none).find(MESSAGES, "RootFolder").unwrap().clone();
    assert_eq!(root.get_attr("TotalItemsInView"), Some("0"));
    assert!(root.find(TYPES, "Items").unwrap().children.is_empty());
    // ORB's own lookup (its property set) does not find the reference's property; another value neither.
    assert!(found_ids(&w.op(ALICE, request::find_by_match_id("TD-000123")).await).is_empty());
    assert!(found_ids(&w.op(ALICE, reference_lookup("td-000123")).await).is_empty(), "compared exactly");
    // A series is found as its master, never as an occurrence.
    w.op(ALICE, reference_create("TD-000124", true)).await;
    let series = found_ids(&w.op(ALICE, reference_lookup("TD-000124")).await);
    let master = w.em.items(ALICE).into_iter().find(|i| i.recurrence.is_some()).unwrap();
    assert_eq!(series, [master.id.as_str()]);
    // Paging: two items with one value, one per page, from the beginning and from the end.
    w.op(ALICE, reference_create("TD-000124", false)).await;
    let mut paged = reference_lookup("TD-000124");
    let view = paged.children.iter_mut().find(|c| c.name == "IndexedPageItemView").unwrap();
    *view = Element::new(MESSAGES, "IndexedPageItemView")
        .attr("MaxEntriesReturned", "1")
        .attr("Offset", "0")
        .attr("BasePoint", "Beginning");
    let first = w.op(ALICE, paged.clone()).await;
    assert_eq!(found_ids(&first), [master.id.as_str()]);
    let root = message(&first).find(MESSAGES, "RootFolder").unwrap().clone();
    assert_eq!(
        (root.get_attr("IndexedPagingOffset"), root.get_attr("TotalItemsInView")),
        (Some("1"), Some("2"))
    );
    assert_eq!(root.get_attr("IncludesLastItemInRange"), Some("false"));
    let view = paged.children.iter_mut().find(|c| c.name == "IndexedPageItemView").unwrap();
    view.attrs.retain(|a| a.name != "BasePoint");
    *view = std::mem::take(view).attr("BasePoint", "End");
    let last = found_ids(&w.op(ALICE, paged).await);
    assert_eq!(last.len(), 1);
    assert_ne!(last, [master.id.as_str()], "the last item, not the first");
}

#[tokio::test]
async fn the_emulator_refuses_restrictions_it_does_not_evaluate() {
    let w = world().await;
    w.op(ALICE, examples("create-item.xml")[0].clone()).await;
    // A Restriction with a CalendarView (U8: the strict case), as users report Exchange answering it.
    let mut with_view = examples("find-item-calendar-view.xml")[0].clone();
    let restriction = examples("find-item-match-id.xml")[0].find(MESSAGES, "Restriction").unwrap().clone();
    let at = with_view.children.iter().position(|c| c.name == "ParentFolderIds").unwrap();
    with_view.children.insert(at, restriction);
    let refused = w.op(ALICE, with_view).await;
    let msg = message(&refused);
    assert_eq!(msg.get_attr("ResponseClass"), Some("Error"));
    assert_eq!(code_of(&refused), "ErrorInvalidRestriction");
    assert!(msg.child_text(MESSAGES, "MessageText").unwrap().contains("CalendarView"));
    assert_eq!(names(&msg), names(&examples("delete-item-error.xml")[0]), "Exchange's error message shape");
    // A valid restriction the emulator does not evaluate: refused, naming what it evaluates.
    let mut contains = examples("find-item-match-id.xml")[0].clone();
    let r = contains.children.iter_mut().find(|c| c.name == "Restriction").unwrap();
    r.children[0] = Element::new(TYPES, "Contains")
        .attr("ContainmentMode", "Substring")
        .attr("ContainmentComparison", "IgnoreCase")
        .child(Element::new(TYPES, "FieldURI").attr("FieldURI", "item:Subject"))
        .child(Element::new(TYPES, "Constant").attr("Value", "sync"));
    let refused = w.op(ALICE, contains).await;
    assert_eq!(code_of(&refused), "ErrorUnsupportedQueryFilter");
    let text = message(&refused).child_text(MESSAGES, "MessageText").unwrap().to_owned();
    assert!(text.contains("IsEqualTo of an ExtendedFieldURI") && text.contains("Contains"), "{text}");
    let mut subject = reference_lookup("x");
    let r = subject.children.iter_mut().find(|c| c.name == "Restriction").unwrap();
    r.children[0].children[0] = Element::new(TYPES, "FieldURI").attr("FieldURI", "item:Subject");
    assert_eq!(code_of(&w.op(ALICE, subject).await), "ErrorUnsupportedQueryFilter");
    // A malformed restriction is a schema fault.
    let mut broken = reference_lookup("x");
    let r = broken.children.iter_mut().find(|c| c.name == "Restriction").unwrap();
    r.children[0].children.truncate(1);
    let (status, fault) = w.send(ALICE, broken).await;
    assert_eq!((status, code_of(&fault)), (500, "ErrorSchemaValidation".to_owned()));
    // Only the calendar is listed.
    let mut inbox = reference_lookup("x");
    let ids = inbox.children.iter_mut().find(|c| c.name == "ParentFolderIds").unwrap();
    ids.children[0] = Element::new(TYPES, "DistinguishedFolderId").attr("Id", "inbox");
    let (status, fault) = w.send(ALICE, inbox).await;
    assert_eq!((status, code_of(&fault)), (500, "ErrorInvalidRequest".to_owned()));
    // Bad paging is refused.
    let mut paging = reference_lookup("x");
    let view = paging.children.iter_mut().find(|c| c.name == "IndexedPageItemView").unwrap();
    *view = Element::new(MESSAGES, "IndexedPageItemView")
        .attr("MaxEntriesReturned", "0")
        .attr("Offset", "0")
        .attr("BasePoint", "Beginning");
    assert_eq!(code_of(&w.op(ALICE, paging).await), "ErrorInvalidIndexedPagingParameters");
    assert!(w.em.body_requests().is_empty());
}

#[tokio::test]
async fn a_sent_mail_is_answered_like_exchange_and_kept_in_the_outbox() {
    let w = world().await;
    let mail = orb_ews::model::OutgoingMail {
        to: vec![EmailAddress::parse("bob@contoso.com").unwrap()],
        subject: "Room 4.12 booked".into(),
        body_text: "Your booking is confirmed.".into(),
    };
    // ORB's SendOnly mail from a mailbox in the account's scope: the reference CreateItem answer's
    // elements, Items empty (nothing saved, no id).
    let sent = w.op(ALICE, request::send_mail(&mail)).await;
    let msg = message(&sent);
    ordered_subset(&msg, &examples("create-item.xml")[1], "");
    assert_eq!(msg.get_attr("ResponseClass"), Some("Success"));
    assert_eq!(names(&msg), ["ResponseCode", "Items"]);
    assert!(msg.find(MESSAGES, "Items").unwrap().children.is_empty());
    let outbox = w.em.outbox();
    assert_eq!(outbox.len(), 1);
    let kept = &outbox[0];
    assert_eq!((kept.from.as_str(), kept.to.as_slice()), (ALICE, ["bob@contoso.com".to_owned()].as_slice()));
    assert_eq!(
        (kept.subject.as_str(), kept.body.as_str()),
        ("Room 4.12 booked", "Your booking is confirmed.")
    );
    assert_eq!((kept.body_type.as_str(), kept.saved_copy), ("Text", false));
    assert!(w.em.items(ALICE).is_empty(), "a mail is no calendar item");
    assert!(!w.em.requests().last().unwrap().asks_for_body, "a mail's own text is not a body read");
    // The control API shows the outbox.
    let listed: serde_json::Value = w
        .http
        .get(format!("{}/_emulator/outbox", w.served.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["subject"], "Room 4.12 booked");
    assert_eq!(listed[0]["to"][0], "bob@contoso.com");

    // Without MessageDisposition, without recipients, out of order: refused, nothing sent.
    let mut bare = request::send_mail(&mail);
    bare.attrs.clear();
    assert_eq!(code_of(&w.op(ALICE, bare).await), "ErrorMessageDispositionRequired");
    let nobody = request::send_mail(&orb_ews::model::OutgoingMail { to: vec![], ..mail.clone() });
    assert_eq!(code_of(&w.op(ALICE, nobody).await), "ErrorInvalidRecipients");
    let mut swapped = request::send_mail(&mail);
    swapped.children[0].children[0].children.swap(0, 2);
    let (status, fault) = w.send(ALICE, swapped).await;
    assert_eq!((status, code_of(&fault)), (500, "ErrorSchemaValidation".to_owned()));
    assert_eq!(w.em.outbox().len(), 1);
}

/// The reference CreateItem with `people` as `RequiredAttendees`, where the schema puts them: after
/// `Location`, before `Resources`.
fn create_with_people(people: &[&str]) -> Element {
    let mut create = examples("create-item.xml")[0].clone();
    let item = &mut create.children.iter_mut().find(|c| c.is(MESSAGES, "Items")).unwrap().children[0];
    let list = Element::new(TYPES, "RequiredAttendees").children(people.iter().map(|p| {
        Element::new(TYPES, "Attendee")
            .child(Element::new(TYPES, "Mailbox").child(Element::new(TYPES, "EmailAddress").text(*p)))
    }));
    let at = item.children.iter().position(|c| c.name == "Resources").unwrap();
    item.children.insert(at, list);
    create
}

fn people_of(item: &Element, list: &str) -> Vec<(String, String)> {
    item.find(TYPES, list)
        .map(|l| {
            l.find_all(TYPES, "Attendee")
                .map(|a| {
                    let mb = a.find(TYPES, "Mailbox").unwrap();
                    let text = |n| mb.child_text(TYPES, n).unwrap().to_owned();
                    (text("Name"), text("EmailAddress"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn people_a_dropped_room_and_a_room_only_appointment_answer_in_the_reference_shapes() {
    use orb_ews::model::{ItemId, MeetingChange};
    use orb_ews::request::ConflictResolution::AlwaysOverwrite;
    let w = world().await;
    w.em.add_user("bob@contoso.com", "Bob");
    let get_ref = &examples("get-item-response-message.xml")[0];
    let get = |id: &str, ck: &str| {
        let mut get = examples("get-item-request.xml")[0].clone();
        set_item_id(&mut get, id, ck);
        get
    };
    // A meeting with two people: created like the reference, read back with both in RequiredAttendees,
    // in the reference's order (before Resources); a person unknown to the server is named by address.
    let create = create_with_people(&["bob@contoso.com", "carol@contoso.com"]);
    let created = w.op(ALICE, create).await;
    assert_eq!(message(&created).shape(), examples("create-item.xml")[1].shape());
    let org = w.em.items(ALICE)[0].clone();
    let msg = message(&w.op(ALICE, get(&org.id, &org.change_key)).await);
    ordered_subset(&msg, get_ref, "");
    let item = msg.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    let kids = names(item);
    assert_eq!(kids[kids.iter().position(|n| *n == "RequiredAttendees").unwrap() + 1], "Resources");
    let bob = ("Bob".to_owned(), "bob@contoso.com".to_owned());
    let carol = ("carol@contoso.com".to_owned(), "carol@contoso.com".to_owned());
    assert_eq!(people_of(item, "RequiredAttendees"), [bob.clone(), carol]);
    let copy = w.em.items(ROOM).into_iter().find(|i| i.uid == org.uid).unwrap();
    assert_eq!(copy.required.len(), 2, "the room's copy lists the people too");

    // People replaced as a whole: the reference UpdateItem answer.
    let org = w.em.items(ALICE)[0].clone();
    let change = MeetingChange {
        attendees: Some(vec![EmailAddress::parse("bob@contoso.com").unwrap()]),
        ..Default::default()
    };
    let op = request::update_meeting(ItemId::new(&org.id, &org.change_key), &change, AlwaysOverwrite);
    assert_eq!(message(&w.op(ALICE, op).await).shape(), examples("update-item.xml")[1].shape());
    assert_eq!(
        w.em.items(ALICE)[0].required.iter().map(|a| a.email.as_str()).collect::<Vec<_>>(),
        ["bob@contoso.com"]
    );
    // An empty attendee list is not schema-valid; a DeleteItemField removes them.
    let empty = Element::new(TYPES, "SetItemField")
        .child(Element::new(TYPES, "FieldURI").attr("FieldURI", "calendar:RequiredAttendees"))
        .child(Element::new(TYPES, "CalendarItem").child(Element::new(TYPES, "RequiredAttendees")));
    let mut op = request::update_meeting(
        ItemId::new(&org.id, "x"),
        &MeetingChange { subject: Some("s".into()), ..Default::default() },
        AlwaysOverwrite,
    );
    op.children[0].children[0].children[1].children = vec![empty];
    assert_eq!(code_of(&w.op(ALICE, op).await), "ErrorSchemaValidation");

    // The room dropped (DeleteItemField of calendar:Resources): the reference answer, the room's copy
    // cancelled as a cancelled meeting is, and the organizer's item without Resources.
    let org = w.em.items(ALICE)[0].clone();
    let drop = MeetingChange { remove_rooms: true, ..Default::default() };
    let op = request::update_meeting(ItemId::new(&org.id, &org.change_key), &drop, AlwaysOverwrite);
    assert_eq!(message(&w.op(ALICE, op).await).shape(), examples("update-item.xml")[1].shape());
    let copy = w.em.items(ROOM).into_iter().find(|i| i.uid == org.uid).unwrap();
    assert!(copy.is_cancelled && copy.free_busy == "Free");
    let org = w.em.items(ALICE)[0].clone();
    let msg = message(&w.op(ALICE, get(&org.id, &org.change_key)).await);
    ordered_subset(&msg, get_ref, "");
    let item = msg.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    assert!(item.find(TYPES, "Resources").is_none(), "{:?}", names(item));
    assert_eq!(people_of(item, "RequiredAttendees"), [bob]);

    // A room-only appointment: the reference CreateItem without Body and Resources, SendToNone, made in
    // the room's own calendar; the reference answer; listed in the reference CalendarView's item shape.
    let mut create = examples("create-item.xml")[0].clone();
    create.attrs.retain(|a| a.name != "SendMeetingInvitations");
    let mut create = create.attr("SendMeetingInvitations", "SendToNone");
    let item = &mut create.children.iter_mut().find(|c| c.is(MESSAGES, "Items")).unwrap().children[0];
    item.children.retain(|c| c.name != "Body" && c.name != "Resources");
    for c in &mut item.children {
        match c.name.as_str() {
            "Start" => c.text = "2026-09-02T08:00:00Z".into(),
            "End" => c.text = "2026-09-02T09:00:00Z".into(),
            _ => {}
        }
    }
    let created = w.op(ROOM, create).await;
    assert_eq!(message(&created).shape(), examples("create-item.xml")[1].shape());
    let own = w.em.items(ROOM).into_iter().find(|i| i.uid != org.uid).unwrap();
    assert_eq!((own.subject.as_str(), own.is_meeting, own.received), ("Project sync", false, false));
    let find = examples("find-item-calendar-view.xml");
    let found = w.op(ROOM, find[0].clone()).await;
    let items = message(&found).path(&[(MESSAGES, "RootFolder"), (TYPES, "Items")]).unwrap().clone();
    let ref_item = find[1].descendants().into_iter().find(|e| e.is(TYPES, "CalendarItem")).unwrap().clone();
    assert_eq!(items.children.len(), 2, "the cancelled copy and the room's own appointment");
    for it in &items.children {
        assert_eq!(it.shape(), ref_item.shape());
    }
    let listed =
        items.children.iter().find(|c| c.child_text(TYPES, "Subject") == Some("Project sync")).unwrap();
    assert_eq!(listed.child_text(TYPES, "Start"), Some("2026-09-02T08:00:00Z"));
    assert_eq!(listed.child_text(TYPES, "IsCancelled"), Some("false"));
    let msg = message(&w.op(ROOM, get(&own.id, &own.change_key)).await);
    ordered_subset(&msg, get_ref, "");
    let item = msg.path(&[(MESSAGES, "Items"), (TYPES, "CalendarItem")]).unwrap();
    assert_eq!(item.child_text(TYPES, "AppointmentState"), Some("0"));
    assert!(item.find(TYPES, "Resources").is_none() && item.find(TYPES, "RequiredAttendees").is_none());
    // Deleted without cancellations (SendToNone): the answer of the reference DeleteItem, and gone.
    let delete = Element::new(MESSAGES, "DeleteItem")
        .attr("DeleteType", "MoveToDeletedItems")
        .attr("SendMeetingCancellations", "SendToNone")
        .child(
            Element::new(MESSAGES, "ItemIds")
                .child(Element::new(TYPES, "ItemId").attr("Id", own.id.as_str())),
        );
    let deleted = w.op(ROOM, delete).await;
    assert_eq!(message(&deleted).get_attr("ResponseClass"), Some("Success"));
    assert!(w.em.items(ROOM).iter().all(|i| i.id != own.id));
}
