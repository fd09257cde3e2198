//! The product's scenarios end to end, each its own test: both emulators on `127.0.0.1:0`, the orb-web
//! intake as the notification URL of a rich subscription per mapped room, the `Worker` in the background,
//! on SQLite and (when `ORB_TEST_POSTGRES_URL` is set) PostgreSQL. A test acts as a person would (Outlook
//! through the Graph emulator's control API, a service-desk operator through the TOPdesk emulator's
//! control API, followed by TOPdesk's push) and asserts exact state on both sides and in the store.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use orb_core::{AppointmentType, BookingRecord, Mode, Side, SubjectPolicy, SyncStatus};
use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_graph::model::{AttendeeType, Event, ResponseType};
use orb_store::JobStatus;
use orb_topdesk::wire::ReservationDto;
use orb_topdesk::{PersonId, ReservationStatus};
use serde_json::{Value, json};
use support::world::*;
use support::{eventually, mail};

const ROOM_B: &str = "room2@contoso.com";
const ROOM_X: &str = "boardroom@contoso.com";
const BOB: &str = "bob@contoso.com";
const CAROL: &str = "carol@contoso.com";
const MARK: &str = "mark@contoso.com";
const SAM: &str = "sam@contoso.com";
const ZOE: &str = "zoe@contoso.com";
const SERVICE_DESK: &str = "servicedesk@contoso.com";
const PORTAL: &str = "https://orb.example.test";

// ---- acting as people ----

impl World {
    async fn post(&self, url: String, body: Value) -> Value {
        let resp = self.http.post(url).json(&body).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{status}: {text}");
        if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() }
    }

    /// `organizer` makes a meeting in Outlook (in `calendar`'s calendar: their own, or a manager's as a
    /// delegate) in `room` with `people` as required attendees; returns the organizer's event.
    async fn meeting(
        &self,
        calendar: &str,
        room: &str,
        subject: &str,
        times: (&str, &str),
        people: &[&str],
    ) -> Value {
        let mut attendees: Vec<Value> =
            people.iter().map(|p| json!({"emailAddress": {"address": p}, "type": "required"})).collect();
        attendees.push(json!({"emailAddress": {"address": room}, "type": "resource"}));
        let body = json!({
            "subject": subject,
            "start": {"dateTime": times.0, "timeZone": "UTC"},
            "end": {"dateTime": times.1, "timeZone": "UTC"},
            "location": {"displayName": room, "locationEmailAddress": room},
            "attendees": attendees,
        });
        self.post(self.graph_control(&format!("mailboxes/{calendar}/events")), body).await
    }

    /// A person changes an item (or one occurrence) in Outlook.
    async fn edit(&self, mailbox: &str, id: &str, body: Value) {
        let resp = self
            .http
            .patch(self.graph_control(&format!("mailboxes/{mailbox}/events/{id}")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    /// The organizer cancels the meeting (or one occurrence) in Outlook.
    async fn cancel_in_outlook(&self, mailbox: &str, id: &str) {
        self.post(self.graph_control(&format!("mailboxes/{mailbox}/events/{id}/cancel")), json!({})).await;
    }

    /// A service-desk operator acts on a reservation in TOPdesk (`reschedule`, `move`, `cancel`), and
    /// TOPdesk's action sequence pushes the hint.
    async fn operator(&self, reservation: &str, action: &str, body: Value) {
        let url = format!("{}/_emulator/reservations/{reservation}/{action}", self.td.base_url);
        let request = self.http.post(url);
        let request = if body.is_null() { request } else { request.json(&body) };
        let resp = request.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        self.push(reservation).await;
    }

    async fn push(&self, reservation: &str) {
        let resp = self
            .http
            .post(format!("{}/hooks/topdesk/contoso", self.intake))
            .bearer_auth(PUSH_TOKEN)
            .json(&json!({"reservations": [reservation]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
    }

    /// A reservation made in TOPdesk's API by Anna, pushed to ORB.
    async fn reserve_in_topdesk(&self, subject: &str, start: &str, end: &str) -> ReservationDto {
        let mut create = orb_topdesk::wire::CreateReservationDto::new(
            self.anna,
            &self.room.topdesk_location_id,
            at(start),
            at(end),
        );
        create.brief_description = Some(subject.into());
        let made = self.topdesk.create_reservation(&create).await.unwrap();
        self.push(&made.id.unwrap().to_string()).await;
        made
    }

    fn location(&self, room: &str) -> orb_core::TopdeskLocationId {
        self.rooms[room].topdesk_location_id.clone()
    }

    fn reservation(&self, id: &str) -> ReservationDto {
        self.reservations().into_iter().find(|r| r.id.map(|i| i.to_string()).as_deref() == Some(id)).unwrap()
    }

    fn person(&self, email: &str) -> PersonId {
        self.persons[email]
    }

    /// Every booking once `ok` holds for the list.
    async fn bookings_where(&self, what: &str, ok: impl Fn(&[BookingRecord]) -> bool) -> Vec<BookingRecord> {
        eventually(what, || async {
            let all = self.bookings().await;
            ok(&all).then_some(all)
        })
        .await
    }

    /// The organizer's event by id (live).
    fn event(&self, mailbox: &str, id: &str) -> Option<Event> {
        self.graph_em.events(mailbox).unwrap().into_iter().find(|e| e.id.as_deref() == Some(id))
    }

    async fn assert_healthy(&self) {
        let dead = self.jobs(JobStatus::Dead).await;
        assert!(dead.is_empty(), "no dead job: {dead:?}");
    }
}

/// An event's attendees as `(address, type)`, sorted.
fn attendees(event: &Event) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = event
        .attendees
        .iter()
        .flatten()
        .map(|a| {
            let kind = match a.kind {
                Some(AttendeeType::Resource) => "resource",
                Some(AttendeeType::Optional) => "optional",
                _ => "required",
            };
            (a.address().unwrap_or_default().to_ascii_lowercase(), kind)
        })
        .collect();
    out.sort();
    out
}

fn people(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = list.iter().map(|(a, k)| ((*a).to_owned(), *k)).collect();
    out.sort();
    out
}

fn location_email(event: &Event) -> Option<String> {
    event.location.as_ref().and_then(|l| l.location_email_address.clone())
}

fn utc(event: &Event) -> (DateTime<Utc>, DateTime<Utc>) {
    (event.start.as_ref().unwrap().to_utc().unwrap(), event.end.as_ref().unwrap().to_utc().unwrap())
}

fn live(r: &ReservationDto) -> bool {
    r.status.is_some_and(ReservationStatus::is_active)
}

fn link_of(r: &ReservationDto) -> Option<String> {
    r.external_links.iter().flatten().find(|l| l.kind == LINK_TYPE.to_string()).map(|l| l.id.clone())
}

fn mails_to(w: &World, to: &str) -> Vec<orb_emulators::graph::SentMail> {
    w.graph_em
        .outbox()
        .into_iter()
        .filter(|m| {
            m.message
                .to_recipients
                .iter()
                .flatten()
                .any(|r| r.address().is_some_and(|a| a.eq_ignore_ascii_case(to)))
        })
        .collect()
}

fn mail_body(m: &orb_emulators::graph::SentMail) -> String {
    m.message.body.as_ref().and_then(|b| b.content.clone()).unwrap_or_default()
}

/// Anna's meeting in [`ROOM`] with Bob (a TOPdesk person) and Carol (not one), synced: returns her event
/// id and the booking.
async fn annas_synced_meeting(w: &World) -> (String, BookingRecord) {
    let event = w
        .meeting(
            ANNA,
            ROOM,
            "Quarterly planning",
            ("2026-09-03T09:00:00", "2026-09-03T10:00:00"),
            &[BOB, CAROL],
        )
        .await;
    let record = w.booking_where("Anna's meeting to be synced", |r| r.topdesk.reservation_id.is_some()).await;
    w.settled().await;
    let r = w.reservation(record.topdesk.reservation_id.as_deref().unwrap());
    assert_eq!(r.requester.as_ref().and_then(|p| p.id), Some(w.anna));
    assert_eq!(
        r.brief_description.as_deref(),
        Some("Quarterly planning"),
        "the organizer's subject, not the room copy's"
    );
    let persons: Vec<_> =
        r.participants.iter().flat_map(|p| p.persons.iter().flatten()).filter_map(|p| p.id).collect();
    assert_eq!(persons, [w.person(BOB).0], "Bob is a participant; Carol is no TOPdesk person");
    let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
    assert_eq!(record.participants, [mail(BOB), mail(CAROL)]);
    (event["id"].as_str().unwrap().to_owned(), record)
}

fn with_people(mut o: WorldOptions) -> WorldOptions {
    o.people.push(ExtraPerson { address: BOB, name: "Bob Jansen", in_topdesk: true });
    o.people.push(ExtraPerson { address: CAROL, name: "Carol de Vries", in_topdesk: false });
    o
}

fn two_rooms() -> WorldOptions {
    with_people(WorldOptions { rooms: vec![ExtraRoom::mapped(ROOM_B, "Room 2")], ..WorldOptions::default() })
}

// ---- 1. room change in Outlook ----

#[tokio::test]
async fn a_room_change_in_outlook_moves_the_reservation_to_the_other_room() {
    on_every_store_with(&two_rooms(), |w| async move {
        let (id, before) = annas_synced_meeting(&w).await;
        let reservation_id = before.topdesk.reservation_id.clone().unwrap();
        let room_b = w.rooms[ROOM_B].id;

        w.edit(
            ANNA,
            &id,
            json!({
                "location": {"displayName": "Room 2", "locationEmailAddress": ROOM_B},
                "attendees": [
                    {"emailAddress": {"address": BOB}, "type": "required"},
                    {"emailAddress": {"address": CAROL}, "type": "required"},
                    {"emailAddress": {"address": ROOM_B}, "type": "resource"},
                ],
            }),
        )
        .await;
        w.booking_where("the booking to move to room 2", |r| r.room_id == room_b).await;
        w.settled().await;

        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1, "moved, not cancelled and recreated: {reservations:?}");
        let r = &reservations[0];
        assert_eq!(r.id.map(|i| i.to_string()), Some(reservation_id.clone()), "the same reservation");
        assert_eq!(r.location_ids(), [w.location(ROOM_B)], "it holds room 2 only");
        assert_eq!(r.status, Some(ReservationStatus::Planned));
        assert_eq!(r.requester.as_ref().and_then(|p| p.id), Some(w.anna));
        assert_eq!(
            (r.planned_start_date, r.planned_end_date),
            (Some(at("2026-09-03T09:00:00Z")), Some(at("2026-09-03T10:00:00Z")))
        );
        let record = w.booking_where("one booking", |_| true).await;
        assert_eq!(record.id, before.id);
        assert!(!record.cancelled);
        assert_eq!(record.complexity_index, 1, "one change");
        assert_eq!(record.topdesk.reservation_id.as_deref(), Some(reservation_id.as_str()));
        assert_eq!(record.participants, [mail(BOB), mail(CAROL)], "the attendees are kept");
        // Exchange: room 2 holds the meeting, room 1's copy is cancelled; ORB wrote nothing there.
        let b: Vec<_> = w.graph_em.events(ROOM_B).unwrap();
        assert_eq!(b.len(), 1);
        assert_ne!(b[0].is_cancelled, Some(true));
        assert!(w.graph_em.events(ROOM).unwrap().iter().all(|e| e.is_cancelled == Some(true)));
        let annas = w.event(ANNA, &id).unwrap();
        assert_eq!(
            attendees(&annas),
            people(&[(BOB, "required"), (CAROL, "required"), (ROOM_B, "resource")])
        );
        assert!(w.graph_em.outbox().is_empty(), "no mail for a move: {:?}", w.graph_em.outbox());
        w.assert_healthy().await;
    })
    .await;
}

#[tokio::test]
async fn a_room_change_in_outlook_to_an_unmanaged_room_cancels_the_reservation_and_mails_the_organizer() {
    let options = with_people(WorldOptions {
        rooms: vec![ExtraRoom::unmapped(ROOM_X, "Board room")],
        ..WorldOptions::default()
    });
    on_every_store_with(&options, |w| async move {
        let (id, before) = annas_synced_meeting(&w).await;
        w.edit(
            ANNA,
            &id,
            json!({
                "location": {"displayName": "Board room", "locationEmailAddress": ROOM_X},
                "attendees": [
                    {"emailAddress": {"address": BOB}, "type": "required"},
                    {"emailAddress": {"address": CAROL}, "type": "required"},
                    {"emailAddress": {"address": ROOM_X}, "type": "resource"},
                ],
            }),
        )
        .await;
        let record = w.booking_where("the reservation to be cancelled", |r| r.cancelled).await;
        w.settled().await;

        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1);
        assert_eq!(reservations[0].status, Some(ReservationStatus::Cancelled));
        assert_eq!(record.id, before.id, "the record is kept, marked cancelled");
        assert_eq!(record.room_id, w.room.id, "still the room it was booked in");
        // The meeting itself lives on in the board room, untouched by ORB.
        let annas = w.event(ANNA, &id).unwrap();
        assert_ne!(annas.is_cancelled, Some(true));
        assert_eq!(location_email(&annas).as_deref(), Some(ROOM_X));
        assert_eq!(
            attendees(&annas),
            people(&[(BOB, "required"), (CAROL, "required"), (ROOM_X, "resource")])
        );
        let mails = w.graph_em.outbox();
        assert_eq!(mails.len(), 1, "{mails:?}");
        let m = &mails[0];
        assert_eq!(mails_to(&w, ANNA).len(), 1, "to the organizer: {m:?}");
        assert_eq!(m.from, "orb@contoso.com");
        assert_eq!(m.message.subject.as_deref(), Some("Your room reservation was cancelled"));
        let body = mail_body(m);
        assert!(!body.contains(PORTAL), "no link to a page nothing serves yet: {body}");
        assert!(body.contains("not booked through TOPdesk"), "{body}");
        w.assert_healthy().await;
    })
    .await;
}

// ---- 2. changes made in TOPdesk ----

/// What a service-desk operator does to Anna's synced meeting, and what Outlook must show afterwards.
struct TopdeskCase {
    name: &'static str,
    action: &'static str,
    body: fn(&World) -> Value,
    /// Anna's event afterwards (`None`: cancelled, gone from her calendar).
    expected: Option<Expected>,
}

struct Expected {
    times: (&'static str, &'static str),
    room: &'static str,
}

async fn check(w: &World, case: &TopdeskCase) {
    let (id, before) = annas_synced_meeting(w).await;
    let reservation = before.topdesk.reservation_id.clone().unwrap();
    w.operator(&reservation, case.action, (case.body)(w)).await;
    let record = w.booking_where(case.name, |r| r.complexity_index >= 1 || r.cancelled).await;
    w.settled().await;
    let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
    assert_eq!(record.id, before.id, "{}", case.name);
    assert_eq!(w.bookings().await.len(), 1, "{}", case.name);
    assert_eq!(w.reservations().len(), 1, "{}: TOPdesk still holds one reservation", case.name);
    match &case.expected {
        Some(expected) => {
            let event =
                w.event(ANNA, &id).unwrap_or_else(|| panic!("{}: Anna's meeting is there", case.name));
            assert_ne!(event.is_cancelled, Some(true), "{}", case.name);
            assert_eq!(utc(&event), (at(expected.times.0), at(expected.times.1)), "{}", case.name);
            assert_eq!(
                attendees(&event),
                people(&[(BOB, "required"), (CAROL, "required"), (expected.room, "resource")]),
                "{}: the attendees are kept and the room is the reservation's",
                case.name
            );
            assert_eq!(location_email(&event).as_deref(), Some(expected.room), "{}", case.name);
            assert_eq!(event.subject.as_deref(), Some("Quarterly planning"), "{}", case.name);
            let copies: Vec<Event> = w
                .graph_em
                .events(expected.room)
                .unwrap()
                .into_iter()
                .filter(|e| e.is_cancelled != Some(true))
                .collect();
            assert_eq!(copies.len(), 1, "{}: the room holds the meeting", case.name);
            assert_eq!(utc(&copies[0]), (at(expected.times.0), at(expected.times.1)), "{}", case.name);
            assert_eq!(event.attendee_response(expected.room), Some(ResponseType::Accepted), "{}", case.name);
            assert_eq!(record.complexity_index, 1, "{}: one change, its echoes are no changes", case.name);
            assert_eq!(record.participants, [mail(BOB), mail(CAROL)], "{}", case.name);
            assert_eq!(record.start, at(expected.times.0), "{}", case.name);
            assert_eq!(record.room_id, w.rooms[expected.room].id, "{}", case.name);
            let r = w.reservation(&reservation);
            assert!(live(&r), "{}", case.name);
            assert_eq!(r.location_ids(), [w.location(expected.room)], "{}", case.name);
        }
        None => {
            assert!(
                w.event(ANNA, &id).is_none(),
                "{}: the meeting is cancelled (CancellationPolicy default)",
                case.name
            );
            assert!(
                w.graph_em.events(ROOM).unwrap().iter().all(|e| e.is_cancelled == Some(true)),
                "{}",
                case.name
            );
            assert!(record.cancelled, "{}", case.name);
            assert_eq!(record.exchange_status, SyncStatus::Cancelled, "{}", case.name);
            assert_eq!(
                w.reservation(&reservation).status,
                Some(ReservationStatus::Cancelled),
                "{}",
                case.name
            );
        }
    }
    assert!(w.graph_em.outbox().is_empty(), "{}: no mail", case.name);
    w.assert_healthy().await;
}

fn retime(_: &World) -> Value {
    json!({"plannedStartDate": "2026-09-03T13:00:00Z", "plannedEndDate": "2026-09-03T14:30:00Z"})
}

fn move_to_b(w: &World) -> Value {
    json!({"from": {"location": {"id": w.location(ROOM)}}, "to": {"location": {"id": w.location(ROOM_B)}}})
}

fn no_body(_: &World) -> Value {
    Value::Null
}

#[tokio::test]
async fn a_retime_in_topdesk_moves_the_organizers_meeting() {
    let case = TopdeskCase {
        name: "retime in TOPdesk",
        action: "reschedule",
        body: retime,
        expected: Some(Expected { times: ("2026-09-03T13:00:00Z", "2026-09-03T14:30:00Z"), room: ROOM }),
    };
    on_every_store_with(&two_rooms(), |w| {
        let case = &case;
        async move { check(&w, case).await }
    })
    .await;
}

#[tokio::test]
async fn a_room_change_in_topdesk_replaces_the_room_on_the_organizers_meeting() {
    let case = TopdeskCase {
        name: "room change in TOPdesk",
        action: "move",
        body: move_to_b,
        expected: Some(Expected { times: ("2026-09-03T09:00:00Z", "2026-09-03T10:00:00Z"), room: ROOM_B }),
    };
    on_every_store_with(&two_rooms(), |w| {
        let case = &case;
        async move { check(&w, case).await }
    })
    .await;
}

#[tokio::test]
async fn a_cancellation_in_topdesk_cancels_the_organizers_meeting() {
    let case =
        TopdeskCase { name: "cancellation in TOPdesk", action: "cancel", body: no_body, expected: None };
    on_every_store_with(&two_rooms(), |w| {
        let case = &case;
        async move { check(&w, case).await }
    })
    .await;
}

// ---- 3. a series ----

#[tokio::test]
async fn a_weekly_series_of_ten_becomes_ten_reservations_and_follows_its_exceptions() {
    on_every_store_with(&two_rooms(), |w| async move {
        let resp = w
            .http
            .post(w.graph_control("book"))
            .json(&json!({
                "organizer": ANNA, "room": ROOM, "subject": "Weekly sync",
                "start": "2026-09-08T09:00:00", "end": "2026-09-08T10:00:00", "timeZone": "UTC",
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"], "firstDayOfWeek": "monday"},
                    "range": {"type": "numbered", "startDate": "2026-09-08", "numberOfOccurrences": 10,
                              "recurrenceTimeZone": "UTC"}
                }
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let weeks: Vec<DateTime<Utc>> = (0..10).map(|i| at("2026-09-08T09:00:00Z") + Duration::weeks(i)).collect();

        let records = w
            .bookings_where("ten occurrences synced", |all| {
                all.len() == 10 && all.iter().all(|r| r.topdesk.reservation_id.is_some())
            })
            .await;
        w.settled().await;
        let routes = w.td.emulator.request_counts().by_route;
        assert_eq!(routes.get("POST /tas/api/reservations"), Some(&10), "{routes:?}");
        assert_eq!(routes.get("GET /tas/api/persons"), Some(&1), "one person look-up for the series: {routes:?}");
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 10, "one reservation per occurrence");
        let mut starts: Vec<_> = reservations.iter().filter_map(|r| r.planned_start_date).collect();
        starts.sort();
        assert_eq!(starts, weeks);
        assert!(reservations.iter().all(|r| live(r) && r.location_ids() == [w.location(ROOM)]));
        assert!(reservations.iter().all(|r| r.brief_description.as_deref() == Some("Weekly sync")));
        let series: BTreeSet<_> = records.iter().map(|r| r.series_id).collect();
        assert_eq!(series.len(), 1, "one series: {series:?}");
        let series_id = records[0].series_id.expect("the occurrences belong to a series");
        let stored = w.store.get_series(w.tenant.id, series_id).await.unwrap();
        assert_eq!(stored.room_id, w.room.id);
        assert_eq!(stored.organizer, mail(ANNA));
        assert_eq!(stored.pattern["pattern"]["type"], "weekly", "{:?}", stored.pattern);
        let mut originals: Vec<_> = records.iter().filter_map(|r| r.original_start).collect();
        originals.sort();
        assert_eq!(originals, weeks);
        assert!(records.iter().all(|r| r.appointment_type == AppointmentType::Occurrence));

        // Anna moves the 3rd, 6th and 8th occurrence to room 2 and cancels the 5th.
        let instances = w.graph_em.calendar_view(ANNA, at("2026-09-01T00:00:00Z"), at("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(instances.len(), 10);
        let occurrence = |i: usize| {
            instances.iter().find(|e| e.original_start == Some(weeks[i])).and_then(|e| e.id.clone()).unwrap()
        };
        for i in [2, 5, 7] {
            w.edit(
                ANNA,
                &occurrence(i),
                json!({
                    "location": {"displayName": "Room 2", "locationEmailAddress": ROOM_B},
                    "attendees": [{"emailAddress": {"address": ROOM_B}, "type": "resource"}],
                }),
            )
            .await;
        }
        w.cancel_in_outlook(ANNA, &occurrence(4)).await;

        let room_b = w.rooms[ROOM_B].id;
        w.bookings_where("three occurrences in room 2 and one cancelled", |all| {
                all.iter().filter(|r| r.room_id == room_b && r.topdesk_status == SyncStatus::Synced).count() == 3
                    && all.iter().filter(|r| r.cancelled).count() == 1
            })
            .await;
        w.settled().await;
        let records = w.bookings().await;
        assert_eq!(records.len(), 10, "still one booking per occurrence: {records:?}");

        // TOPdesk shows exactly that, without duplicates: one live reservation per live occurrence.
        let reservations = w.reservations();
        let live_ones: Vec<&ReservationDto> = reservations.iter().filter(|r| live(r)).collect();
        assert_eq!(live_ones.len(), 9, "{reservations:#?}");
        let expect_room = |i: usize| if [2, 5, 7].contains(&i) { w.location(ROOM_B) } else { w.location(ROOM) };
        for (i, week) in weeks.iter().enumerate() {
            let here: Vec<_> = live_ones.iter().filter(|r| r.planned_start_date == Some(*week)).collect();
            if i == 4 {
                assert!(here.is_empty(), "the cancelled occurrence has no live reservation");
                continue;
            }
            assert_eq!(here.len(), 1, "exactly one live reservation on {week}");
            assert_eq!(here[0].location_ids(), [expect_room(i)], "occurrence {i}");
            let record = records.iter().find(|r| r.original_start == Some(*week)).unwrap();
            assert_eq!(here[0].id.map(|x| x.to_string()), record.topdesk.reservation_id, "occurrence {i}");
            assert_eq!(link_of(here[0]), Some(record.id.to_string()), "occurrence {i}");
            assert!(!record.cancelled);
        }
        let links: BTreeSet<_> = live_ones.iter().filter_map(|r| link_of(r)).collect();
        assert_eq!(links.len(), 9, "no two live reservations for one booking");
        let cancelled_record = records.iter().find(|r| r.original_start == Some(weeks[4])).unwrap();
        assert!(cancelled_record.cancelled);
        let cancelled = w.reservation(cancelled_record.topdesk.reservation_id.as_deref().unwrap());
        assert_eq!(cancelled.status, Some(ReservationStatus::Cancelled));
        // TOPdesk cannot move an occurrence's room: the moved ones were cancelled and made anew (planner
        // rule 10); nothing else was cancelled.
        assert_eq!(reservations.iter().filter(|r| !live(r)).count(), 4);
        assert!(w.graph_em.outbox().is_empty());
        w.assert_healthy().await;
    })
    .await;
}

// ---- 4. a secretary books for a manager ----

#[tokio::test]
async fn a_secretary_booking_for_a_manager_reserves_in_the_managers_name() {
    let options = WorldOptions {
        people: vec![
            ExtraPerson { address: MARK, name: "Mark Visser", in_topdesk: true },
            ExtraPerson { address: SAM, name: "Sam Smit", in_topdesk: true },
        ],
        ..WorldOptions::default()
    };
    on_every_store_with(&options, |w| async move {
        // Sam works in Mark's calendar as his delegate: Graph makes Mark the organizer.
        let event =
            w.meeting(MARK, ROOM, "Board prep", ("2026-09-03T09:00:00", "2026-09-03T10:00:00"), &[SAM]).await;
        let record =
            w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let r = w.reservation(record.topdesk.reservation_id.as_deref().unwrap());
        assert_eq!(
            r.requester.as_ref().and_then(|p| p.id),
            Some(w.person(MARK)),
            "the manager is the requester"
        );
        assert_ne!(r.requester.as_ref().and_then(|p| p.id), Some(w.person(SAM)));
        assert_eq!(record.organizer, mail(MARK));
        assert_eq!(record.original_organizer, mail(MARK));
        assert_eq!(record.participants, [mail(SAM)]);

        // Sam moves it later, still in Mark's calendar: the requester stays Mark.
        let id = event["id"].as_str().unwrap();
        w.edit(
            MARK,
            id,
            json!({"start": {"dateTime": "2026-09-03T11:00:00", "timeZone": "UTC"},
                   "end": {"dateTime": "2026-09-03T12:00:00", "timeZone": "UTC"}}),
        )
        .await;
        let record = w.booking_where("the retime to be synced", |r| r.complexity_index == 1).await;
        w.settled().await;
        let r = w.reservation(record.topdesk.reservation_id.as_deref().unwrap());
        assert_eq!(r.planned_start_date, Some(at("2026-09-03T11:00:00Z")));
        assert_eq!(r.requester.as_ref().and_then(|p| p.id), Some(w.person(MARK)));
        assert_eq!(w.reservations().len(), 1);
        assert_eq!(w.store.get_booking(w.tenant.id, record.id).await.unwrap().organizer, mail(MARK));
        w.assert_healthy().await;
    })
    .await;
}

// ---- 5. an organizer TOPdesk does not know ----

#[tokio::test]
async fn an_organizer_unknown_to_topdesk_books_through_the_fallback_person_and_is_told() {
    let options = WorldOptions {
        people: vec![ExtraPerson { address: ZOE, name: "Zoe Bos", in_topdesk: false }],
        fallback_person: Some(SERVICE_DESK),
        ..WorldOptions::default()
    };
    on_every_store_with(&options, |w| async move {
        w.meeting(ZOE, ROOM, "Supplier visit", ("2026-09-03T09:00:00", "2026-09-03T10:00:00"), &[]).await;
        let record =
            w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1);
        let r = &reservations[0];
        assert_eq!(
            r.requester.as_ref().and_then(|p| p.id),
            Some(w.person(SERVICE_DESK)),
            "the fallback person"
        );
        assert_eq!(r.notes.as_deref(), Some("Booked in Outlook by zoe@contoso.com (not a TOPdesk person)."));
        assert_eq!(r.brief_description.as_deref(), Some("Supplier visit"));
        assert_eq!(record.organizer, mail(ZOE), "the record keeps the real organizer");

        let mails = w.graph_em.outbox();
        assert_eq!(mails.len(), 1, "{mails:?}");
        let m = &mails[0];
        assert_eq!(mails_to(&w, ZOE).len(), 1, "to the organizer: {m:?}");
        assert_eq!(m.from, "orb@contoso.com");
        assert_eq!(m.message.subject.as_deref(), Some("Your room reservation was made for the service desk"));
        let body = mail_body(m);
        assert!(!body.contains(PORTAL), "no link to a page nothing serves yet: {body}");
        assert!(body.contains("Room 1"), "the room by its name: {body}");
        assert!(!body.contains("room1@contoso.com"), "never by its mailbox address: {body}");
        assert!(!body.contains("Supplier visit"), "this template does not name the meeting: {body}");

        // An echo (the room's later notifications) sends no second mail and makes no second reservation.
        w.edit(
            ZOE,
            &w.graph_em.events(ZOE).unwrap()[0].id.clone().unwrap(),
            json!({"subject": "Supplier visit"}),
        )
        .await;
        w.settled().await;
        assert_eq!(w.graph_em.outbox().len(), 1);
        assert_eq!(w.reservations().len(), 1);
        w.assert_healthy().await;
    })
    .await;
}

// ---- 6. the room declines ----

#[tokio::test]
async fn a_room_that_declines_a_conflicting_change_gets_no_reservation_and_the_organizer_is_told() {
    let options = with_people(WorldOptions::default());
    on_every_store_with(&options, |w| async move {
        // Bob has the room 14:00–15:00; Anna has it 09:00–10:00.
        w.meeting(BOB, ROOM, "Bob's review", ("2026-09-03T14:00:00", "2026-09-03T15:00:00"), &[]).await;
        let bobs = w.booking_where("Bob's booking", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let event = w
            .meeting(ANNA, ROOM, "Quarterly planning", ("2026-09-03T09:00:00", "2026-09-03T10:00:00"), &[])
            .await;
        let annas = w
            .bookings_where("Anna's booking", |all| {
                all.len() == 2 && all.iter().all(|r| r.topdesk.reservation_id.is_some())
            })
            .await
            .into_iter()
            .find(|r| r.id != bobs.id)
            .unwrap();
        w.settled().await;

        // Anna moves hers onto Bob's: the room (AllowConflicts off) declines.
        let id = event["id"].as_str().unwrap();
        w.edit(
            ANNA,
            id,
            json!({"start": {"dateTime": "2026-09-03T14:30:00", "timeZone": "UTC"},
                   "end": {"dateTime": "2026-09-03T15:30:00", "timeZone": "UTC"}}),
        )
        .await;
        let record = w
            .bookings_where("Anna's booking to be cancelled", |all| {
                all.iter().any(|r| r.id == annas.id && r.cancelled)
            })
            .await
            .into_iter()
            .find(|r| r.id == annas.id)
            .unwrap();
        w.settled().await;
        assert_eq!(w.event(ANNA, id).unwrap().attendee_response(ROOM), Some(ResponseType::Declined));
        assert_eq!(record.exchange_status, SyncStatus::Declined);
        let annas_reservation = w.reservation(annas.topdesk.reservation_id.as_deref().unwrap());
        assert_eq!(
            annas_reservation.status,
            Some(ReservationStatus::Cancelled),
            "no reservation for a declined meeting"
        );
        let bobs_reservation = w.reservation(bobs.topdesk.reservation_id.as_deref().unwrap());
        assert_eq!(bobs_reservation.status, Some(ReservationStatus::Planned), "Bob keeps his");
        assert_eq!(w.reservations().iter().filter(|r| live(r)).count(), 1);
        let mails = w.graph_em.outbox();
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(mails_to(&w, ANNA).len(), 1);
        assert_eq!(mails[0].message.subject.as_deref(), Some("The room declined your meeting"));
        let body = mail_body(&mails[0]);
        assert!(!body.contains(PORTAL), "no link to a page nothing serves yet: {body}");
        assert!(body.contains("Quarterly planning"), "the template names the meeting: {body}");

        // A new meeting the room declines leaves nothing to reserve (the room's calendar never holds it).
        w.meeting(CAROL, ROOM, "Clash", ("2026-09-03T14:00:00", "2026-09-03T15:00:00"), &[]).await;
        w.settled().await;
        assert_eq!(w.bookings().await.len(), 2, "no booking for a declined new meeting");
        assert_eq!(w.reservations().len(), 2);
        w.assert_healthy().await;
    })
    .await;
}

// ---- 7. room-only mode ----

#[tokio::test]
async fn room_only_mode_puts_topdesk_reservations_in_the_rooms_calendar_and_syncs_outlook_changes_back() {
    let mut policy = orb_core::Policy::new();
    policy.mode = Mode::RoomOnly;
    let options = WorldOptions { policy, ..WorldOptions::default() };
    on_every_store_with(&options, |w| async move {
        let made = w.reserve_in_topdesk("Team sync", "2026-09-04T09:00:00Z", "2026-09-04T10:00:00Z").await;
        let reservation = made.id.unwrap().to_string();
        let record =
            w.booking_where("the room's event to be made", |r| r.exchange.room_event_id.is_some()).await;
        w.settled().await;
        let events = w.graph_em.events(ROOM).unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        let ev = &events[0];
        assert_eq!(ev.subject.as_deref(), Some("Team sync"));
        assert_eq!(utc(ev), (at("2026-09-04T09:00:00Z"), at("2026-09-04T10:00:00Z")));
        assert_eq!(location_email(ev).as_deref(), Some(ROOM));
        assert!(w.graph_em.events(ANNA).unwrap().is_empty(), "the organizer's calendar is untouched");
        assert_eq!(record.exchange.organizer_event_id, None);
        assert_eq!(record.organizer, mail(ANNA));
        assert_eq!(record.processor_created, Side::Topdesk);

        // Someone moves the room's event in Outlook: TOPdesk follows, the requester stays Anna.
        let id = ev.id.clone().unwrap();
        w.edit(
            ROOM,
            &id,
            json!({"start": {"dateTime": "2026-09-04T11:00:00", "timeZone": "UTC"},
                   "end": {"dateTime": "2026-09-04T12:30:00", "timeZone": "UTC"}}),
        )
        .await;
        let record =
            w.booking_where("the Outlook retime to reach TOPdesk", |r| r.complexity_index == 1).await;
        w.settled().await;
        let r = w.reservation(&reservation);
        assert_eq!(
            (r.planned_start_date, r.planned_end_date),
            (Some(at("2026-09-04T11:00:00Z")), Some(at("2026-09-04T12:30:00Z")))
        );
        assert_eq!(
            r.requester.as_ref().and_then(|p| p.id),
            Some(w.anna),
            "the room organizes its own event, Anna stays the requester"
        );
        assert_eq!(r.brief_description.as_deref(), Some("Team sync"));
        let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
        assert_eq!(record.organizer, mail(ANNA));
        assert_eq!(record.complexity_index, 1);

        // And deletes it: the reservation is cancelled.
        let resp =
            w.http.delete(w.graph_control(&format!("mailboxes/{ROOM}/events/{id}"))).send().await.unwrap();
        assert!(resp.status().is_success());
        w.booking_where("the deletion to reach TOPdesk", |r| r.cancelled).await;
        w.settled().await;
        assert_eq!(w.reservation(&reservation).status, Some(ReservationStatus::Cancelled));
        assert_eq!(w.reservations().len(), 1);
        assert!(w.graph_em.events(ANNA).unwrap().is_empty());
        w.assert_healthy().await;
    })
    .await;
}

// ---- 8. subject policy `drop` ----

/// A `tracing` subscriber that writes every span field and event (all levels) into a buffer.
#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        let _ = write!(self.0, "{}={value} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "span {} ", span.metadata().name());
        span.record(&mut Fields(&mut text));
        text.push('\n');
        tracing::span::Id::from_u64(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut text = self.text.lock().unwrap();
        values.record(&mut Fields(&mut text));
        text.push('\n');
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "{} {} ", event.metadata().level(), event.metadata().target());
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn a_dropped_subject_is_nowhere_in_topdesk_the_database_or_the_logs() {
    const SECRET_SUBJECT: &str = "Secret merger talk";
    let capture = Capture::default();
    let dispatch = tracing::Dispatch::new(capture.clone());
    // tracing-core caches a call site's interest the first time it is hit; while only one dispatcher is
    // registered it asks the *hitting thread's* default, so a test on another thread (no subscriber) would
    // switch ORB's call sites off for this one too. With a second registered dispatcher every registered
    // dispatcher is asked.
    let _second = tracing::Dispatch::new(Capture::default());
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let mut policy = orb_core::Policy::new();
    policy.subject = SubjectPolicy::Drop;
    // The room keeps the organizer's subject on its copy (DeleteSubject off): the subject reaches ORB in
    // the room's (encrypted) notification and in the organizer's copy.
    let room_settings = orb_emulators::graph::RoomSettings {
        delete_subject: false,
        add_organizer_to_subject: false,
        ..orb_emulators::graph::RoomSettings::default()
    };
    let options = with_people(WorldOptions {
        policy,
        room_settings,
        rooms: vec![ExtraRoom::unmapped(ROOM_X, "Board room")],
        ..WorldOptions::default()
    });
    on_every_store_with(&options, |w| {
        let capture = capture.clone();
        async move {
            let event = w
                .meeting(ANNA, ROOM, SECRET_SUBJECT, ("2026-09-03T09:00:00", "2026-09-03T10:00:00"), &[BOB])
                .await;
            let record =
                w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
            w.settled().await;
            // A change on each side, so updates and echoes pass through too.
            let id = event["id"].as_str().unwrap();
            w.edit(
                ANNA,
                id,
                json!({"start": {"dateTime": "2026-09-03T10:00:00", "timeZone": "UTC"},
                       "end": {"dateTime": "2026-09-03T11:00:00", "timeZone": "UTC"}}),
            )
            .await;
            w.booking_where("the Outlook retime", |r| r.complexity_index == 1).await;
            w.settled().await;
            let reservation = record.topdesk.reservation_id.clone().unwrap();
            w.operator(
                &reservation,
                "reschedule",
                json!({"plannedStartDate": "2026-09-03T12:00:00Z", "plannedEndDate": "2026-09-03T13:00:00Z"}),
            )
            .await;
            w.booking_where("the TOPdesk retime", |r| r.complexity_index == 2).await;
            w.settled().await;
            assert_eq!(utc(&w.event(ANNA, id).unwrap()).0, at("2026-09-03T12:00:00Z"), "synced both ways");
            assert_eq!(
                w.event(ANNA, id).unwrap().subject.as_deref(),
                Some(SECRET_SUBJECT),
                "Anna's own subject stays hers"
            );

            // To the board room (not managed: the reservation is cancelled, Anna is mailed) and back, with
            // TOPdesk losing the answer to the new create: the observation waits in a retry job.
            let room = |address: &str| {
                json!({
                    "location": {"displayName": address, "locationEmailAddress": address},
                    "attendees": [{"emailAddress": {"address": BOB}, "type": "required"},
                                  {"emailAddress": {"address": address}, "type": "resource"}],
                })
            };
            w.edit(ANNA, id, room(ROOM_X)).await;
            w.booking_where("the move to an unmanaged room", |r| r.cancelled).await;
            w.settled().await;
            assert_eq!(w.reservation(&reservation).status, Some(ReservationStatus::Cancelled));
            w.td.emulator.set_faults(orb_emulators::topdesk::Faults {
                fail_after_commit_next: 1,
                ..orb_emulators::topdesk::Faults::default()
            });
            w.edit(ANNA, id, room(ROOM)).await;
            let failed = w.booking_where("the lost create to be retried", |r| r.failed_count == 1).await;
            w.settled_except_scheduled().await;
            let retries = w.jobs(JobStatus::Queued).await;
            assert_eq!(retries.len(), 1, "{retries:?}");
            assert_eq!(retries[0].kind, "sync.retry");
            assert_eq!(retries[0].payload["observation"]["side"], "exchange", "{}", retries[0].payload);
            assert!(retries[0].payload["observation"]["subject"].is_null(), "{}", retries[0].payload);
            assert!(failed.cancelled, "nothing changed but the failure: the retry plans the same reopen");
            w.clock.advance(Duration::minutes(2));
            let live_again = w
                .booking_where("the retry to reserve the room again", |r| {
                    !r.cancelled && r.topdesk.reservation_id.as_deref().is_some_and(|id| id != reservation)
                })
                .await;
            w.settled().await;
            let reservations = w.reservations();
            assert_eq!(reservations.len(), 2, "the cancelled one and one new one, not two: {reservations:?}");
            let new_one = w.reservation(live_again.topdesk.reservation_id.as_deref().unwrap());
            assert!(live(&new_one));
            assert_eq!(new_one.location_ids(), [w.location(ROOM)]);
            assert_eq!(link_of(&new_one), Some(live_again.id.to_string()), "the same booking's match id");
            assert_eq!(new_one.planned_start_date, Some(at("2026-09-03T12:00:00Z")));
            assert_eq!(mails_to(&w, ANNA).len(), 1, "the moved-to-an-unmanaged-room mail");

            let secret = |text: &str| text.to_ascii_lowercase().contains("merger");
            // TOPdesk: no field of any reservation.
            let copies = w.graph_em.events(ROOM).unwrap();
            assert_eq!(copies[0].subject.as_deref(), Some(SECRET_SUBJECT), "the room's copy has it");
            for r in w.reservations() {
                assert_eq!(r.brief_description.as_deref().unwrap_or_default(), "", "no brief description");
            }
            let all = serde_json::to_string(&w.reservations()).unwrap();
            assert!(!secret(&all), "TOPdesk holds the subject: {all}");
            // The database: every row of every table (SQLite: the raw files).
            let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
            assert_eq!(record.subject, None);
            let dump = w._store.dump().await;
            assert!(
                dump.contains(&record.id.to_string()) || dump.contains("bookings"),
                "the dump has content"
            );
            assert!(!secret(&dump), "the database holds the subject");
            // The logs, at every level.
            let logs = capture.text.lock().unwrap().clone();
            assert!(logs.contains("booking committed"), "the engine's logs were captured");
            assert!(
                !secret(&logs),
                "the logs hold the subject:\n{}",
                logs.lines().filter(|l| secret(l)).collect::<Vec<_>>().join("\n")
            );
            // No mail named it either.
            assert!(!secret(&format!("{:?}", w.graph_em.outbox())));
            // Graph was never asked for it: no read and no subscription selects the subject.
            for r in w.graph_em.requests().iter().filter(|r| r.reads_events()) {
                let select = r.select.clone().unwrap_or_default();
                assert!(!select.iter().any(|f| f.eq_ignore_ascii_case("subject")), "{} selects it", r.path);
            }
            for sub in w.graph_em.subscriptions() {
                assert!(!sub.resource.to_ascii_lowercase().contains("subject"), "{}", sub.resource);
            }
            w.assert_healthy().await;
        }
    })
    .await;
}

// ---- participants named by id in TOPdesk ----

#[tokio::test]
async fn participants_added_in_topdesk_are_invited_in_outlook_by_their_e_mail() {
    on_every_store_with(&with_people(WorldOptions::default()), |w| async move {
        // A reservation made in TOPdesk with Bob as participant: TOPdesk names him by id only.
        let made = w.reserve_in_topdesk("Planning", "2026-09-04T09:00:00Z", "2026-09-04T10:00:00Z").await;
        let id = made.id.unwrap();
        w.booking_where("the reservation in Outlook", |r| r.exchange.organizer_event_id.is_some()).await;
        w.settled().await;
        w.topdesk.add_participants(id, &[w.person(BOB)]).await.unwrap();
        w.push(&id.to_string()).await;
        let record = w.booking_where("Bob on the booking", |r| r.participants.contains(&mail(BOB))).await;
        w.settled().await;
        let events = w.graph_em.events(ANNA).unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            attendees(&events[0]),
            vec![(BOB.to_owned(), "required"), (ROOM.to_owned(), "resource")],
            "Bob, found by his TOPdesk id, is invited by e-mail"
        );
        assert_eq!(record.participants, [mail(BOB)]);
        w.assert_healthy().await;
    })
    .await;
}

// ---- TOPdesk denies ORB's credentials ----

impl World {
    fn set_topdesk_password(&self, password: &str) {
        self.td.emulator.with_state(|s| {
            s.accounts.get_mut("orb-api").expect("ORB's API account").passwords =
                vec![(password.to_owned(), None)];
        });
    }

    async fn audit_actions(&self) -> Vec<String> {
        self.store.list_audit(self.tenant.id, 100).await.unwrap().into_iter().map(|a| a.action).collect()
    }
}

#[tokio::test]
async fn a_topdesk_401_pauses_the_tenants_writes_tells_the_operator_mails_nobody_and_loses_nothing() {
    on_every_store(|w| async move {
        let event = w.meeting(ANNA, ROOM, "Budget", ("2026-09-03T09:00:00", "2026-09-03T10:00:00"), &[]).await;
        let id = event["id"].as_str().unwrap().to_owned();
        let record = w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let reservation = record.topdesk.reservation_id.clone().unwrap();

        // The application password is revoked in TOPdesk; meanwhile Anna moves her meeting twice.
        w.set_topdesk_password("revoked-and-replaced");
        let retime = |from: &str, to: &str| {
            json!({"start": {"dateTime": from, "timeZone": "UTC"}, "end": {"dateTime": to, "timeZone": "UTC"}})
        };
        w.edit(ANNA, &id, retime("2026-09-03T11:00:00", "2026-09-03T12:00:00")).await;
        eventually("the pause to reach the audit log", || async {
            w.audit_actions().await.contains(&"sync.writes_paused".to_owned()).then_some(())
        })
        .await;
        w.edit(ANNA, &id, retime("2026-09-03T13:00:00", "2026-09-03T14:00:00")).await;
        // Both changes wait in the room's lane (the first until the pause ends, the second behind it).
        eventually("both changes to wait in the room's lane", || async {
            let queued = w.jobs(JobStatus::Queued).await;
            let running = w.jobs(JobStatus::Running).await;
            (queued.len() >= 2 && running.is_empty() && queued.iter().any(|j| j.run_at > orb_core::Clock::now(&w.clock)))
                .then_some(())
        })
        .await;
        assert!(w.jobs(JobStatus::Dead).await.is_empty(), "nothing is dropped");
        assert_eq!(w.reservation(&reservation).planned_start_date, Some(at("2026-09-03T09:00:00Z")));
        assert!(w.graph_em.outbox().is_empty(), "a configuration failure is not the organizer's business");
        let paused = w.audit_actions().await.iter().filter(|a| *a == "sync.writes_paused").count();
        assert_eq!(paused, 1, "the operator is told once per pause");

        // The operator enters the new password; after the pause the waiting changes land, in order.
        w.set_topdesk_password("app-secret-1");
        w.clock.advance(Duration::minutes(31));
        eventually("the latest change to reach TOPdesk", || async {
            (w.reservation(&reservation).planned_start_date == Some(at("2026-09-03T13:00:00Z"))).then_some(())
        })
        .await;
        w.settled().await;
        let r = w.reservation(&reservation);
        assert_eq!(r.planned_end_date, Some(at("2026-09-03T14:00:00Z")));
        assert_eq!(w.reservations().len(), 1);
        let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
        assert_eq!(record.start, at("2026-09-03T13:00:00Z"));
        assert_eq!(record.topdesk_status, SyncStatus::Synced);
        assert!(w.audit_actions().await.contains(&"sync.writes_resumed".to_owned()));
        assert!(w.graph_em.outbox().is_empty(), "nobody was mailed");
        w.assert_healthy().await;
    })
    .await;
}

// ---- every failed write heals ----

/// What a person does, on which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    OutlookCreate,
    OutlookRetime,
    OutlookMove,
    OutlookCancel,
    TopdeskCreate,
    TopdeskRetime,
    TopdeskMove,
    TopdeskCancel,
}

impl Change {
    /// The other side's write that carries the change over: (method, path) as the emulator sees it.
    fn write(self) -> (&'static str, &'static str) {
        match self {
            Self::OutlookCreate => ("POST", "/tas/api/reservations"),
            Self::OutlookRetime => ("POST", "/tas/api/reservations/*/reschedule"),
            Self::OutlookMove => ("POST", "/tas/api/reservations/*/reservedFacilities/move"),
            Self::OutlookCancel => ("POST", "/tas/api/reservations/*/cancel"),
            Self::TopdeskCreate => ("POST", "/v1.0/users/*/events"),
            Self::TopdeskRetime | Self::TopdeskMove => ("PATCH", "/v1.0/users/*/events/*"),
            Self::TopdeskCancel => ("POST", "/v1.0/users/*/events/*/cancel"),
        }
    }

    fn on_topdesk(self) -> bool {
        matches!(self, Self::OutlookCreate | Self::OutlookRetime | Self::OutlookMove | Self::OutlookCancel)
    }
}

impl World {
    fn set_faults_on(&self, topdesk: bool, plan: FaultPlan) {
        if topdesk {
            self.td.emulator.set_fault_plan(plan);
        } else {
            self.graph_em.set_fault_plan(plan);
        }
    }

    fn faults_injected(&self, topdesk: bool) -> usize {
        if topdesk {
            self.td.emulator.request_log().iter().filter(|r| r.fault_kind.is_some()).count()
        } else {
            self.graph_em.requests().iter().filter(|r| r.fault_kind.is_some()).count()
        }
    }

    /// Makes the change; returns the reservation id and Anna's event id involved.
    async fn make(&self, change: Change) -> (String, Option<String>) {
        if change == Change::TopdeskCreate {
            let made =
                self.reserve_in_topdesk("Desk booking", "2026-09-03T09:00:00Z", "2026-09-03T10:00:00Z").await;
            return (made.id.unwrap().to_string(), None);
        }
        if change == Change::OutlookCreate {
            let event = self
                .meeting(
                    ANNA,
                    ROOM,
                    "Quarterly planning",
                    ("2026-09-03T09:00:00", "2026-09-03T10:00:00"),
                    &[BOB],
                )
                .await;
            return (String::new(), event["id"].as_str().map(str::to_owned));
        }
        let (id, before) = annas_synced_meeting(self).await;
        let reservation = before.topdesk.reservation_id.clone().unwrap();
        match change {
            Change::OutlookRetime => {
                self.edit(
                    ANNA,
                    &id,
                    json!({"start": {"dateTime": "2026-09-03T11:00:00", "timeZone": "UTC"},
                           "end": {"dateTime": "2026-09-03T12:00:00", "timeZone": "UTC"}}),
                )
                .await;
            }
            Change::OutlookMove => {
                self.edit(
                    ANNA,
                    &id,
                    json!({
                        "location": {"displayName": "Room 2", "locationEmailAddress": ROOM_B},
                        "attendees": [
                            {"emailAddress": {"address": BOB}, "type": "required"},
                            {"emailAddress": {"address": CAROL}, "type": "required"},
                            {"emailAddress": {"address": ROOM_B}, "type": "resource"},
                        ],
                    }),
                )
                .await;
            }
            Change::OutlookCancel => self.cancel_in_outlook(ANNA, &id).await,
            Change::TopdeskRetime => self.operator(&reservation, "reschedule", retime(self)).await,
            Change::TopdeskMove => self.operator(&reservation, "move", move_to_b(self)).await,
            Change::TopdeskCancel => self.operator(&reservation, "cancel", Value::Null).await,
            Change::OutlookCreate | Change::TopdeskCreate => unreachable!(),
        }
        (reservation, Some(id))
    }

    /// Whether both sides show the change.
    fn carried_over(&self, change: Change, reservation: &str, event: Option<&str>) -> bool {
        let live_reservations: Vec<ReservationDto> = self.reservations().into_iter().filter(live).collect();
        let annas: Vec<Event> = self
            .graph_em
            .events(ANNA)
            .unwrap()
            .into_iter()
            .filter(|e| e.is_cancelled != Some(true))
            .collect();
        let one = |r: &[ReservationDto]| r.len() == 1;
        match change {
            Change::OutlookCreate => {
                one(&live_reservations)
                    && live_reservations[0].planned_start_date == Some(at("2026-09-03T09:00:00Z"))
            }
            Change::OutlookRetime => {
                one(&live_reservations)
                    && live_reservations[0].planned_start_date == Some(at("2026-09-03T11:00:00Z"))
            }
            Change::OutlookMove => {
                one(&live_reservations) && live_reservations[0].location_ids() == [self.location(ROOM_B)]
            }
            Change::OutlookCancel => live_reservations.is_empty(),
            Change::TopdeskCreate => {
                annas.len() == 1 && utc(&annas[0]).0 == at("2026-09-03T09:00:00Z") && {
                    let r = self.reservation(reservation);
                    r.external_links.iter().flatten().any(|l| l.kind == LINK_TYPE.to_string())
                }
            }
            Change::TopdeskRetime => self
                .event(ANNA, event.unwrap())
                .is_some_and(|e| utc(&e) == (at("2026-09-03T13:00:00Z"), at("2026-09-03T14:30:00Z"))),
            Change::TopdeskMove => self
                .event(ANNA, event.unwrap())
                .is_some_and(|e| location_email(&e).as_deref() == Some(ROOM_B)),
            Change::TopdeskCancel => annas.is_empty(),
        }
    }
}

const EVERY_CHANGE: [Change; 8] = [
    Change::OutlookCreate,
    Change::OutlookRetime,
    Change::OutlookMove,
    Change::OutlookCancel,
    Change::TopdeskCreate,
    Change::TopdeskRetime,
    Change::TopdeskMove,
    Change::TopdeskCancel,
];

/// A burst of server errors on exactly the write that carries a change over: more than the clients retry
/// themselves, so ORB's own retries (and the clock) have to heal it. The sides converge, the organizer gets
/// no mail, nothing is dead or doubled.
#[tokio::test]
async fn a_burst_of_server_errors_on_any_write_heals_without_a_mail() {
    // Each change meets another of the ways servers fail.
    let faults = [
        FaultKind::status(500),
        FaultKind::status_with(502, BodyStyle::Html),
        FaultKind::status(504),
        FaultKind::Reset,
    ];
    for (n, change) in EVERY_CHANGE.into_iter().enumerate() {
        let fault = faults[n % faults.len()].clone();
        on_every_store_with(&two_rooms(), |w| {
            let fault = fault.clone();
            async move {
                let (method, path) = change.write();
                let burst = 6;
                let plan = FaultPlan::new(
                    n as u64,
                    vec![FaultRule::new(fault.clone()).method(method).path(path).next(burst)],
                );
                w.set_faults_on(change.on_topdesk(), plan);
                let (reservation, event) = w.make(change).await;
                eventually(&format!("{change:?} to be carried over after {fault:?}"), || async {
                    // Time passes: ORB's retries come due.
                    w.clock.advance(Duration::seconds(61));
                    w.carried_over(change, &reservation, event.as_deref()).then_some(())
                })
                .await;
                w.settled().await;
                assert_eq!(
                    w.faults_injected(change.on_topdesk()),
                    burst as usize,
                    "{change:?}: the whole burst was met"
                );
                assert!(w.graph_em.outbox().is_empty(), "{change:?}: a passing failure mails nobody");
                assert!(
                    w.carried_over(change, &reservation, event.as_deref()),
                    "{change:?}: and it stays so"
                );
                assert_eq!(w.bookings().await.len(), 1, "{change:?}: one booking");
                let record = w.bookings().await.remove(0);
                assert_ne!(record.topdesk_status, SyncStatus::Failed, "{change:?}");
                assert_ne!(record.exchange_status, SyncStatus::Failed, "{change:?}");
                assert_eq!(record.retry_count, 0, "{change:?}: the retries start again next time");
                assert!(record.failed_count >= 1, "{change:?}: the failure is on the record");
                w.assert_healthy().await;
            }
        })
        .await;
    }
}

/// A write whose answer is lost after the other side carried it out (a reset after handling) is retried
/// without making a second item.
#[tokio::test]
async fn a_create_whose_answer_is_lost_is_not_made_twice() {
    for change in [Change::OutlookCreate, Change::TopdeskCreate] {
        on_every_store_with(&two_rooms(), |w| async move {
            let (method, path) = change.write();
            let rule = FaultRule::new(FaultKind::Reset).method(method).path(path).next(3).after_handling();
            w.set_faults_on(change.on_topdesk(), FaultPlan::new(3, vec![rule]));
            let (reservation, event) = w.make(change).await;
            eventually(&format!("{change:?} to be carried over"), || async {
                w.clock.advance(Duration::seconds(61));
                w.carried_over(change, &reservation, event.as_deref()).then_some(())
            })
            .await;
            w.settled().await;
            assert_eq!(w.reservations().len(), 1, "{change:?}: one reservation");
            let annas = w.graph_em.events(ANNA).unwrap();
            assert_eq!(annas.len(), 1, "{change:?}: one meeting: {annas:?}");
            w.assert_healthy().await;
        })
        .await;
    }
}

/// A refusal for a business reason gets the mail that fits the write; a refused cancellation gets none and
/// is retried, then flagged for the operator.
#[tokio::test]
async fn a_refused_write_gets_the_mail_that_fits_it() {
    let cases = [
        (Change::OutlookCreate, Some("Your room booking could not be made")),
        (Change::OutlookRetime, Some("Your change to a room booking could not be carried over")),
        (Change::OutlookMove, Some("Your change to a room booking could not be carried over")),
        (Change::OutlookCancel, None),
    ];
    for (change, title) in cases {
        on_every_store_with(&two_rooms(), |w| async move {
            let (method, path) = change.write();
            let refusal = FaultKind::status_with(400, BodyStyle::Json);
            w.set_faults_on(true, FaultPlan::new(9, vec![FaultRule::new(refusal).method(method).path(path)]));
            let (_, _) = w.make(change).await;
            let record = eventually(&format!("{change:?}: the refusal to be recorded"), || async {
                w.clock.advance(Duration::seconds(61));
                let all = w.bookings().await;
                let r = all.into_iter().next()?;
                let alerted = w
                    .store
                    .timeline(w.tenant.id, r.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|e| e.kind == "alert" || e.kind == "mail");
                (r.topdesk_status == SyncStatus::Failed && alerted).then_some(r)
            })
            .await;
            let mails = w.graph_em.outbox();
            match title {
                Some(title) => {
                    assert_eq!(mails.len(), 1, "{change:?}: one mail: {mails:?}");
                    assert_eq!(mails[0].message.subject.as_deref(), Some(title), "{change:?}");
                    let body = mail_body(&mails[0]);
                    assert!(!body.contains("@contoso.com"), "{change:?}: rooms by name: {body}");
                }
                None => assert!(mails.is_empty(), "{change:?}: a cancellation is never answered with a mail"),
            }
            assert!(record.failed_count >= 1);
            w.assert_healthy().await;
        })
        .await;
    }
}

// ---- TOPdesk as the dominant system ----

#[tokio::test]
async fn with_topdesk_dominant_a_refused_booking_releases_the_room_in_outlook_and_tells_the_organizer() {
    let mut policy = orb_core::Policy::new();
    policy.topdesk_refusal = orb_core::TopdeskRefusal::ReleaseRoom;
    let options = with_people(WorldOptions { policy, ..WorldOptions::default() });
    on_every_store_with(&options, |w| async move {
        // The service desk blocked the room in TOPdesk; Outlook does not know.
        let blocked = orb_topdesk::wire::CreateReservationDto::new(
            w.anna,
            &w.room.topdesk_location_id,
            at("2026-09-03T08:30:00Z"),
            at("2026-09-03T09:30:00Z"),
        );
        let blocked = w.topdesk.create_reservation(&blocked).await.unwrap();
        let event = w
            .meeting(ANNA, ROOM, "Quarterly planning", ("2026-09-03T09:00:00", "2026-09-03T10:00:00"), &[BOB])
            .await;
        let id = event["id"].as_str().unwrap().to_owned();
        let record = w.booking_where("the refusal to be handled", |r| r.cancelled).await;
        w.settled().await;

        // TOPdesk holds only the block; Anna's meeting lives on without the room; the room is free.
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1, "{reservations:?}");
        assert_eq!(reservations[0].id, blocked.id);
        let annas = w.event(ANNA, &id).expect("the meeting itself stays");
        assert_ne!(annas.is_cancelled, Some(true));
        assert!(
            attendees(&annas).iter().all(|(a, _)| a != ROOM),
            "the room is released: {:?}",
            attendees(&annas)
        );
        assert!(
            w.graph_em.events(ROOM).unwrap().iter().all(|e| e.is_cancelled == Some(true)),
            "the room is free"
        );
        let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
        assert_eq!(record.topdesk_status, SyncStatus::Cancelled, "converged, not failed");
        assert_ne!(record.exchange_status, SyncStatus::Failed);

        let mails = w.graph_em.outbox();
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(mails_to(&w, ANNA).len(), 1);
        assert_eq!(mails[0].message.subject.as_deref(), Some("The room for your meeting was released"));
        let body = mail_body(&mails[0]);
        assert!(body.contains("Room 1") && !body.contains(ROOM), "the room by its name: {body}");
        w.assert_healthy().await;
    })
    .await;
}
