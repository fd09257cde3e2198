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
/// (recursively): the same elements in the same order, fewer allowed.
fn ordered_subset(ours: &Element, reference: &Element, path: &str) {
    let here = format!("{path}/{}", ours.name);
    assert!(
        ours.ns == reference.ns && ours.name == reference.name,
        "{here}: reference has {{{}}}{}",
        reference.ns,
        reference.name
    );
    let mut from = 0;
    for c in &ours.children {
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
