//! The executor against the Graph and TOPdesk emulators over real HTTP on `127.0.0.1:0`: creates on both
//! sides (run twice: still one), room-only mode, reschedule / move / cancel on both sides, TOPdesk refusing,
//! Graph throttling, mails, and the ids `apply_to_record` learns.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use orb_core::*;
use orb_emulators::graph::{GraphEmulator, Knobs, RoomInfo, serve};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use orb_engine::exchange::GraphExchange;
use orb_engine::execute::*;
use orb_graph::model::{AttendeeType, ResponseType};
use orb_graph::{AppRegistration, ClientOptions, Credential, Endpoints, GraphClient, ORB_MATCH_PROPERTY_ID};
use orb_topdesk::{PersonId, Reason, ReservationStatus, RetryPolicy, TopdeskClient, TopdeskConfig};
use secrecy::SecretString;

const TENANT: &str = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d";
const CLIENT_ID: &str = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const SECRET: &str = "emulator-secret-value";
const LINK_TYPE: i64 = 7;
const PORTAL: &str = "https://orb.example.test/";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn mail(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

struct World {
    clock: FixedClock,
    graph_em: GraphEmulator,
    _graph_served: orb_emulators::graph::Served,
    graph: Arc<GraphClient>,
    exchange: GraphExchange,
    td: ServedEmulator,
    topdesk: TopdeskClient,
    rooms: RoomMap,
    room_ids: [RoomId; 2],
    locations: [TopdeskLocationId; 2],
    anna: PersonId,
    persons: PersonDirectory,
    sender: EmailAddress,
    reason: Reason,
}

impl World {
    async fn start() -> Self {
        Self::start_with(ClientOptions::default()).await
    }

    async fn start_with(options: ClientOptions) -> Self {
        let clock = FixedClock::new(at("2026-09-01T06:00:00Z"));
        let graph_em = GraphEmulator::new(Arc::new(clock.clone()));
        graph_em.add_app_secret(TENANT, CLIENT_ID, SECRET);
        for (address, name) in [
            ("anna@contoso.com", "Anna Bakker"),
            ("bob@contoso.com", "Bob de Vries"),
            ("orb@contoso.com", "ORB"),
        ] {
            graph_em.add_user(TENANT, address, name);
        }
        graph_em.add_room(TENANT, "room1@contoso.com", "Room 1", RoomInfo::default());
        graph_em.add_room(TENANT, "room2@contoso.com", "Room 2", RoomInfo::default());
        let graph_served = serve(graph_em.clone()).await.unwrap();
        let app = AppRegistration {
            tenant: TENANT.into(),
            client_id: CLIENT_ID.into(),
            credential: Arc::new(Credential::Secret(SecretString::from(SECRET))),
        };
        let endpoints = Endpoints::from_root(&graph_served.base_url).unwrap();
        let graph = Arc::new(GraphClient::new(endpoints, app, Arc::new(clock.clone()), options).unwrap());
        let exchange = GraphExchange::new(graph.clone());

        let em = TopdeskEmulator::new(Arc::new(clock.clone()));
        em.add_account("orb-api", "app-secret-1");
        let anna = em.add_person("Anna", "Bakker", Some("Anna@Contoso.com"));
        let bob = em.add_person("Bob", "de Vries", Some("bob@contoso.com"));
        let locations = [
            em.add_room("Room A", 0, DoubleBooking::Refuse),
            em.add_room("Room B", 0, DoubleBooking::Refuse),
        ];
        em.add_cancellation_reason("No longer needed", true);
        let td = em.serve().await.unwrap();
        let mut config = TopdeskConfig::new(
            url::Url::parse(&td.base_url).unwrap(),
            "orb-api",
            SecretString::from("app-secret-1"),
            Arc::new(clock.clone()),
        );
        config.retry = RetryPolicy {
            max_retries: 2,
            min_delay: StdDuration::from_millis(5),
            max_delay: StdDuration::from_millis(20),
            max_retry_after: StdDuration::from_millis(50),
        };
        let topdesk = TopdeskClient::new(config).unwrap();

        let room_ids = [RoomId::generate(clock.now()), RoomId::generate(clock.now())];
        let rooms = RoomMap::new(
            (0..2)
                .map(|i| RoomMapping {
                    id: room_ids[i],
                    mailbox: RoomMailbox::parse(&format!("room{}@contoso.com", i + 1)).unwrap(),
                    location: locations[i].clone(),
                    time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                    enabled: true,
                    name: Some(format!("Room 1.0{}", i + 1)),
                })
                .collect(),
        );
        let persons = PersonDirectory::new([
            (mail("anna@contoso.com"), anna.to_string()),
            (mail("bob@contoso.com"), bob.to_string()),
        ]);
        Self {
            clock,
            graph_em,
            _graph_served: graph_served,
            graph,
            exchange,
            td,
            topdesk,
            rooms,
            room_ids,
            locations,
            anna,
            persons,
            sender: mail("orb@contoso.com"),
            reason: Reason::Default,
        }
    }

    fn ctx(&self) -> ExecContext<'_> {
        ExecContext {
            exchange: &self.exchange,
            topdesk: &self.topdesk,
            rooms: &self.rooms,
            link_type: LINK_TYPE,
            mail_sender: &self.sender,
            correlation: CorrelationId::generate(self.clock.now()),
            portal_base_url: PORTAL,
            cancel_reason: &self.reason,
            clock: &self.clock,
            // The executor's tests run plans twice and expect the second run to find the first's items.
            may_have_created: true,
        }
    }

    /// Plans `obs` for a new booking with `policy` and returns the plan and the record after it.
    fn plan_new(&self, policy: &Policy, obs: &Observation) -> (Plan, BookingRecord) {
        let now = self.clock.now();
        let ctx = PlanContext {
            tenant_id: TenantId::generate(now),
            policy,
            rooms: &self.rooms,
            persons: &self.persons,
            now,
            new_ids: NewIds { booking: BookingId::generate(now), correlation: CorrelationId::generate(now) },
            sweep: None,
        };
        let plan = orb_core::plan(None, obs, &ctx);
        let record = plan.record.record().expect("a new record").clone();
        (plan, record)
    }

    async fn run(&self, plan: &Plan, record: &BookingRecord) -> ExecutionReport {
        execute(plan, record, None, &self.ctx()).await
    }

    async fn events(&self, mailbox: &str) -> Vec<orb_graph::model::Event> {
        let (from, to) = (at("2026-09-01T00:00:00Z"), at("2026-09-10T00:00:00Z"));
        let corr = CorrelationId::generate(self.clock.now());
        self.graph.calendar_view(&mail(mailbox), from, to, corr).await.unwrap()
    }
}

/// An observation of a booking on `side` in the first room, 2 Sept 09:00–10:00 UTC, organizer Anna,
/// attendee Bob.
fn observation(side: Side, subject: Option<&str>) -> Observation {
    let now = at("2026-09-01T06:00:00Z");
    Observation {
        side,
        source: ObservationSource::Notification,
        orb_match_id: None,
        ids: RemoteIds::default(),
        room: match side {
            Side::Exchange => ObservedRoom::Mailbox(mail("room1@contoso.com")),
            Side::Topdesk => ObservedRoom::Location(TopdeskLocationId::parse("placeholder").unwrap()),
        },
        start: at("2026-09-02T09:00:00Z"),
        end: at("2026-09-02T10:00:00Z"),
        time_zone: (side == Side::Exchange).then(|| TimeZoneName::parse("Europe/Amsterdam").unwrap()),
        organizer: mail("anna@contoso.com"),
        booked_by: None,
        participants: match side {
            Side::Exchange => vec![mail("bob@contoso.com"), mail("room1@contoso.com")],
            Side::Topdesk => vec![mail("bob@contoso.com")],
        },
        subject: subject.map(str::to_owned),
        location_text: Some("Room 1".into()),
        lifecycle: Lifecycle::Active,
        room_response: RoomResponse::Accepted,
        modified_at: now - Duration::minutes(1),
        appointment_type: AppointmentType::Single,
        series: None,
        unsynced: Default::default(),
        counterpart: None,
    }
}

fn topdesk_observation(w: &World) -> Observation {
    let mut obs = observation(Side::Topdesk, Some("Project review"));
    obs.room = ObservedRoom::Location(w.locations[0].clone());
    obs
}

fn done(report: &ExecutionReport, index: usize) -> &Done {
    match &report.outcomes[index].outcome {
        Outcome::Done(d) => d,
        other => panic!("action {index} not done: {other:?}"),
    }
}

fn plan_of(actions: Vec<Action>) -> Plan {
    Plan { actions, record: RecordChange::Unchanged, timeline: Vec::new() }
}

/// Creates the booking in TOPdesk from an Exchange observation; returns the record with ids applied.
async fn booked_in_topdesk(w: &World) -> BookingRecord {
    let (plan, mut record) = w.plan_new(&Policy::new(), &observation(Side::Exchange, Some("Project review")));
    let report = w.run(&plan, &record).await;
    assert!(report.all_done(), "{report:?}");
    assert!(apply_to_record(&mut record, &report));
    record
}

/// Creates the meeting in Exchange from a TOPdesk observation; returns the record with ids applied.
async fn booked_in_exchange(w: &World, policy: &Policy) -> (Plan, BookingRecord) {
    let (plan, mut record) = w.plan_new(policy, &topdesk_observation(w));
    let report = w.run(&plan, &record).await;
    assert!(report.all_done(), "{report:?}");
    assert!(apply_to_record(&mut record, &report));
    // The room's answer changed the meeting after the create answered; the echo of the meeting brings that
    // version into the record (the planner takes an echo's change key), as ORB's next If-Match.
    record.exchange.change_key = w.written(&record).await.change_key;
    (plan, record)
}

impl World {
    /// The event ORB writes for `record` (the organizer's copy, or the room's event in room-only mode) as
    /// it is now.
    async fn written(&self, record: &BookingRecord) -> orb_graph::model::Event {
        let corr = CorrelationId::generate(self.clock.now());
        let (mailbox, id) = match &record.exchange.organizer_event_id {
            Some(id) => (mail("anna@contoso.com"), id.clone()),
            None => (mail("room1@contoso.com"), record.exchange.room_event_id.clone().unwrap()),
        };
        self.graph.get_event(&mailbox, &id, corr).await.unwrap()
    }
}

#[tokio::test]
async fn a_write_of_a_meeting_changed_since_orb_saw_it_changes_nothing_and_says_so() {
    let action = |name: &str, record: &BookingRecord| {
        let (booking, event_id) = (record.id, record.exchange.organizer_event_id.clone());
        let target = ExchangeTarget::Organizer { mailbox: mail("anna@contoso.com") };
        let cancel = |how| Action::CancelExchangeEvent {
            booking,
            target: target.clone(),
            event_id: event_id.clone(),
            how,
        };
        match name {
            "retime" => Action::UpdateExchangeEvent {
                booking,
                target: target.clone(),
                event_id: event_id.clone(),
                changes: ExchangeChanges {
                    times: Some((at("2026-09-02T14:00:00Z"), at("2026-09-02T15:00:00Z"))),
                    ..ExchangeChanges::default()
                },
            },
            "cancel the meeting" => cancel(ExchangeCancel::CancelMeeting),
            _ => cancel(ExchangeCancel::RemoveRoom),
        }
    };
    let cases = ["retime", "cancel the meeting", "remove the room"];
    for name in cases {
        let w = World::start().await;
        let (_, record) = booked_in_exchange(&w, &Policy::new()).await;
        // Anna renames her meeting in Outlook after ORB last saw it.
        let id = record.exchange.organizer_event_id.clone().unwrap();
        let rename = orb_graph::model::Event { subject: Some("Renamed".into()), ..Default::default() };
        w.graph_em.update_in("anna@contoso.com", &id, &rename, &Default::default()).unwrap();
        let changed = w.written(&record).await;

        let report = w.run(&plan_of(vec![action(name, &record)]), &record).await;
        match &report.outcomes[0].outcome {
            Outcome::Failed { error, class } => {
                assert!(error.is_changed(), "{name}: {error:?}");
                assert_eq!(*class, FailureClass::Transient { retry_after: None }, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(report.changed(), Some(Side::Exchange), "{name}");
        assert_eq!(w.written(&record).await, changed, "{name}: nothing was written");

        // With the version read now, the same write lands.
        let mut seen = record.clone();
        seen.exchange.change_key.clone_from(&changed.change_key);
        let report = w.run(&plan_of(vec![action(name, &seen)]), &seen).await;
        assert!(report.all_done(), "{name}: {report:?}");
    }
}

#[tokio::test]
async fn topdesk_create_from_an_exchange_booking_is_idempotent() {
    let w = World::start().await;
    let (plan, record) = w.plan_new(&Policy::new(), &observation(Side::Exchange, Some("Project review")));
    assert!(matches!(plan.actions[0], Action::CreateReservation { .. }), "{:?}", plan.actions);

    let first = w.run(&plan, &record).await;
    let second = w.run(&plan, &record).await;
    assert!(matches!(done(&first, 0), Done::Reservation { created: true, .. }));
    assert!(matches!(done(&second, 0), Done::Reservation { created: false, .. }), "found, not made again");

    let all = w.td.emulator.reservations();
    assert_eq!(all.len(), 1, "one reservation after two runs");
    let r = &all[0];
    let link = &r.external_links.as_ref().unwrap()[0];
    assert_eq!((link.id.as_str(), link.kind.as_str()), (record.id.to_string().as_str(), "7"));
    assert_eq!(r.requester.as_ref().and_then(|p| p.id), Some(w.anna), "requester = organizer");
    assert_eq!(r.location_ids(), vec![w.locations[0].clone()]);
    assert_eq!(r.planned_start_date, Some(at("2026-09-02T09:00:00Z")));
    let participants = r.participants.as_ref().and_then(|p| p.persons.as_ref()).map_or(0, Vec::len);
    assert_eq!(participants, 1, "Bob is a participant, the room and the organizer are not");

    // apply_to_record learns the ids and leaves the plan's fingerprints alone.
    let mut applied = record.clone();
    assert!(apply_to_record(&mut applied, &first));
    assert_eq!(applied.topdesk.reservation_id, r.id.map(|id| id.to_string()));
    assert_eq!(applied.topdesk.reservation_number, r.number);
    assert_eq!(applied.topdesk.modification_date, r.modification_date);
    assert_eq!(applied.topdesk_fingerprint, record.topdesk_fingerprint);
    assert_eq!(applied.exchange, record.exchange);
    let mut other = record.clone();
    other.id = BookingId::generate(w.clock.now());
    assert!(!apply_to_record(&mut other, &first), "another booking's report is not applied");
    assert_eq!(other.topdesk, record.topdesk);
}

#[tokio::test]
async fn exchange_create_in_organizer_mode_makes_one_meeting_with_the_room() {
    let w = World::start().await;
    let (plan, record) = w.plan_new(&Policy::new(), &topdesk_observation(&w));
    assert!(
        matches!(
            &plan.actions[0],
            Action::CreateExchangeEvent { target: ExchangeTarget::Organizer { .. }, .. }
        ),
        "{:?}",
        plan.actions
    );
    let first = w.run(&plan, &record).await;
    let second = w.run(&plan, &record).await;
    assert!(matches!(done(&second, 0), Done::Event { created: false, .. }));

    let anna = w.events("anna@contoso.com").await;
    assert_eq!(anna.len(), 1, "one meeting after two runs");
    let corr = CorrelationId::generate(w.clock.now());
    let meeting =
        w.graph.get_event(&mail("anna@contoso.com"), anna[0].id.as_ref().unwrap(), corr).await.unwrap();
    assert_eq!(meeting.extended_property(ORB_MATCH_PROPERTY_ID), Some(record.id.to_string().as_str()));
    assert_eq!(meeting.transaction_id.as_deref(), Some(record.id.to_string().as_str()));
    let room = meeting.attendees.iter().flatten().find(|a| a.address() == Some("room1@contoso.com")).unwrap();
    assert_eq!(room.kind, Some(AttendeeType::Resource));
    assert_eq!(
        meeting.location.as_ref().unwrap().location_email_address.as_deref(),
        Some("room1@contoso.com")
    );
    assert!(meeting.attendees.iter().flatten().any(|a| a.address() == Some("bob@contoso.com")));

    let room_copy = &w.events("room1@contoso.com").await[0];
    assert_eq!(room_copy.response_status.as_ref().and_then(|s| s.response), Some(ResponseType::Accepted));
    let Done::Event { ids, created: true } = done(&first, 0) else { panic!("{first:?}") };
    assert_eq!(ids.room_response, Some(ResponseType::Accepted));

    let mut applied = record.clone();
    apply_to_record(&mut applied, &first);
    assert_eq!(applied.exchange.organizer_event_id, meeting.id);
    // The room's copy is not read after the write: its id comes with its notification (the planner takes
    // it from the echo); the room's answer is on the organizer's copy, read back.
    assert!(room_copy.id.is_some());
    assert_eq!(applied.exchange.room_event_id, None);
    assert_eq!(applied.exchange.ical_uid, meeting.ical_uid);
    assert_eq!(applied.exchange.change_key, ids.change_key, "the version the create answered");
    assert_ne!(
        applied.exchange.change_key, room_copy.change_key,
        "the organizer's copy's version (ORB's next If-Match), not the room copy's"
    );
    assert_eq!(applied.exchange_fingerprint, record.exchange_fingerprint);
}

#[tokio::test]
async fn room_only_mode_writes_the_rooms_calendar() {
    let w = World::start().await;
    let mut policy = Policy::new();
    policy.mode = Mode::RoomOnly;
    let (plan, record) = booked_in_exchange(&w, &policy).await;
    assert!(matches!(
        &plan.actions[0],
        Action::CreateExchangeEvent { target: ExchangeTarget::RoomOnly { .. }, .. }
    ));
    assert!(w.events("anna@contoso.com").await.is_empty(), "nothing in the organizer's calendar");
    let room = w.events("room1@contoso.com").await;
    assert_eq!(room.len(), 1);
    assert_eq!(record.exchange.room_event_id, room[0].id);
    assert_eq!(record.exchange.organizer_event_id, None);

    // Deleting the room event twice: the second time it is already gone.
    let cancel = plan_of(vec![Action::CancelExchangeEvent {
        booking: record.id,
        target: ExchangeTarget::RoomOnly { mailbox: RoomMailbox::parse("room1@contoso.com").unwrap() },
        event_id: record.exchange.room_event_id.clone(),
        how: ExchangeCancel::DeleteRoomEvent,
    }]);
    assert!(matches!(done(&w.run(&cancel, &record).await, 0), Done::EventCancelled { already: false, .. }));
    assert!(w.events("room1@contoso.com").await.is_empty());
    assert!(matches!(done(&w.run(&cancel, &record).await, 0), Done::EventCancelled { already: true, .. }));
}

#[tokio::test]
async fn reschedule_and_move_in_topdesk() {
    let w = World::start().await;
    let record = booked_in_topdesk(&w).await;
    let (start, end) = (at("2026-09-03T13:00:00Z"), at("2026-09-03T14:00:00Z"));
    let plan = plan_of(vec![
        Action::MoveReservationRoom {
            booking: record.id,
            reservation_id: None,
            from: w.locations[0].clone(),
            to: w.locations[1].clone(),
        },
        Action::RescheduleReservation { booking: record.id, reservation_id: None, start, end },
    ]);
    // The executor runs a plan against the planned record: the new room and times.
    let mut after = record.clone();
    (after.start, after.end, after.room_id) = (start, end, w.room_ids[1]);
    for run in 0..2 {
        let report = w.run(&plan, &after).await;
        assert!(report.all_done(), "run {run}: a repeated move and reschedule are done: {report:?}");
        let mut applied = after.clone();
        apply_to_record(&mut applied, &report);
        let r = &w.td.emulator.reservations()[0];
        assert_eq!(applied.topdesk.modification_date, r.modification_date, "run {run}");
    }
    // Someone moves it again in TOPdesk before ORB's answer is read: that answer is not ORB's write, so
    // its modificationDate must not become the watermark (the poller must see the change).
    let id = w.td.emulator.reservations()[0].id.unwrap();
    w.topdesk
        .reschedule_reservation(id, at("2026-09-03T15:00:00Z"), at("2026-09-03T16:00:00Z"))
        .await
        .unwrap();
    let report = w
        .run(
            &plan_of(vec![Action::MoveReservationRoom {
                booking: record.id,
                reservation_id: None,
                from: w.locations[0].clone(),
                to: w.locations[1].clone(),
            }]),
            &after,
        )
        .await;
    assert!(report.all_done(), "{report:?}");
    let mut applied = after.clone();
    applied.topdesk.modification_date = None;
    apply_to_record(&mut applied, &report);
    assert_eq!(applied.topdesk.modification_date, None, "a foreign change is not taken as ORB's own");
    w.topdesk.reschedule_reservation(id, start, end).await.unwrap();
    let r = &w.td.emulator.reservations()[0];
    assert_eq!(r.location_ids(), vec![w.locations[1].clone()]);
    assert_eq!((r.planned_start_date, r.planned_end_date), (Some(start), Some(end)));
}

#[tokio::test]
async fn reschedule_and_move_in_exchange() {
    let w = World::start().await;
    let (_, record) = booked_in_exchange(&w, &Policy::new()).await;
    let (start, end) = (at("2026-09-03T13:00:00Z"), at("2026-09-03T14:00:00Z"));
    let plan = plan_of(vec![Action::UpdateExchangeEvent {
        booking: record.id,
        target: ExchangeTarget::Organizer { mailbox: mail("anna@contoso.com") },
        event_id: None,
        changes: ExchangeChanges {
            room: Some(RoomMailbox::parse("room2@contoso.com").unwrap()),
            times: Some((start, end)),
            ..ExchangeChanges::default()
        },
    }]);
    let mut after = record.clone();
    after.room_id = w.room_ids[1];
    (after.start, after.end) = (start, end);
    let report = w.run(&plan, &after).await;
    let mut applied = after.clone();
    apply_to_record(&mut applied, &report);

    let room2 = w.events("room2@contoso.com").await;
    assert_eq!(room2.len(), 1);
    assert_eq!(room2[0].start.as_ref().unwrap().to_utc().unwrap(), start);
    assert_eq!(room2[0].response_status.as_ref().and_then(|s| s.response), Some(ResponseType::Accepted));
    assert!(room2[0].id.is_some());
    assert_eq!(
        applied.exchange.room_event_id, None,
        "the old room's copy is forgotten; the new room's comes with its notification"
    );
    let room1 = w.events("room1@contoso.com").await;
    assert!(room1.iter().all(|e| e.is_cancelled == Some(true)), "the old room's copy is cancelled");
    let anna = w.events("anna@contoso.com").await;
    assert_eq!(anna.len(), 1, "moved, not copied");
    assert_eq!(
        anna[0].location.as_ref().unwrap().location_email_address.as_deref(),
        Some("room2@contoso.com")
    );
}

#[tokio::test]
async fn cancelling_on_either_side_twice_is_done() {
    struct Case {
        name: &'static str,
        how: Option<ExchangeCancel>,
    }
    let cases = [
        Case { name: "TOPdesk cancel", how: None },
        Case { name: "cancel the meeting", how: Some(ExchangeCancel::CancelMeeting) },
        Case { name: "remove the room", how: Some(ExchangeCancel::RemoveRoom) },
    ];
    for case in cases {
        let w = World::start().await;
        let (record, action) = match case.how {
            None => {
                let record = booked_in_topdesk(&w).await;
                let action = Action::CancelReservation {
                    booking: record.id,
                    reservation_id: record.topdesk.reservation_id.clone(),
                };
                (record, action)
            }
            Some(how) => {
                let (_, record) = booked_in_exchange(&w, &Policy::new()).await;
                let action = Action::CancelExchangeEvent {
                    booking: record.id,
                    target: ExchangeTarget::Organizer { mailbox: mail("anna@contoso.com") },
                    event_id: record.exchange.organizer_event_id.clone(),
                    how,
                };
                (record, action)
            }
        };
        let plan = plan_of(vec![action]);
        let first = w.run(&plan, &record).await;
        let second = w.run(&plan, &record).await;
        let already = |d: &Done| match d {
            Done::ReservationCancelled { already, .. } | Done::EventCancelled { already, .. } => *already,
            other => panic!("{}: {other:?}", case.name),
        };
        assert!(!already(done(&first, 0)), "{}: first run cancels", case.name);
        assert!(already(done(&second, 0)), "{}: second run finds it cancelled", case.name);
        match case.how {
            None => {
                let r = &w.td.emulator.reservations()[0];
                assert_eq!(r.status, Some(ReservationStatus::Cancelled), "{}", case.name);
            }
            Some(how) => {
                let room1 = w.events("room1@contoso.com").await;
                assert!(
                    room1.iter().all(|e| e.is_cancelled == Some(true)),
                    "{}: room copy cancelled",
                    case.name
                );
                let anna = w.events("anna@contoso.com").await;
                if how == ExchangeCancel::RemoveRoom {
                    assert_eq!(anna.len(), 1, "{}: the meeting lives on", case.name);
                    let attendees: Vec<_> =
                        anna[0].attendees.iter().flatten().filter_map(|a| a.address()).collect();
                    assert_eq!(attendees, vec!["bob@contoso.com"], "{}", case.name);
                } else {
                    assert!(
                        anna.is_empty(),
                        "{}: the meeting is gone from the organizer's calendar",
                        case.name
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn topdesk_refusal_is_permanent_and_stops_only_topdesk() {
    let w = World::start().await;
    let mut occupied = orb_topdesk::wire::CreateReservationDto::new(
        w.anna,
        &w.locations[0],
        at("2026-09-02T08:30:00Z"),
        at("2026-09-02T09:30:00Z"),
    );
    occupied.brief_description = Some("Someone else".into());
    w.topdesk.create_reservation(&occupied).await.unwrap();

    let (mut plan, record) = w.plan_new(&Policy::new(), &observation(Side::Exchange, None));
    plan.actions.push(Action::RescheduleReservation {
        booking: record.id,
        reservation_id: None,
        start: at("2026-09-02T11:00:00Z"),
        end: at("2026-09-02T12:00:00Z"),
    });
    plan.actions.push(Action::SendMail {
        template: MailTemplate::FallbackPersonUsed,
        to: mail("anna@contoso.com"),
        booking: record.id,
        detail: None,
    });
    plan.actions.push(Action::Nothing { reason: NothingReason::Echo });
    let report = w.run(&plan, &record).await;

    let Outcome::Failed { class, error } = &report.outcomes[0].outcome else { panic!("{report:?}") };
    let FailureClass::Permanent { reason } = class else { panic!("{class:?}") };
    assert!(reason.contains("already reserved"), "TOPdesk's own reason: {reason}");
    assert!(!error.is_retryable());
    assert_eq!(report.failure(Side::Topdesk), Some(WriteFailure::Permanent { reason: reason.clone() }));
    assert_eq!(report.failure(Side::Exchange), None);
    assert!(matches!(report.outcomes[1].outcome, Outcome::Skipped { after: 0 }), "later TOPdesk action");
    assert!(matches!(report.outcomes[2].outcome, Outcome::Skipped { after: 0 }), "its mail");
    assert!(matches!(report.outcomes[3].outcome, Outcome::NotAWrite));
    assert_eq!(w.td.emulator.reservations().len(), 1, "only the occupying reservation");
    assert!(w.graph_em.outbox().is_empty());

    let mut applied = record.clone();
    apply_to_record(&mut applied, &report);
    assert_eq!(applied, record, "nothing learned from a failed write");
}

#[tokio::test]
async fn graph_throttling_is_transient_with_retry_after() {
    let options = ClientOptions { max_retry_after: StdDuration::from_secs(1), ..ClientOptions::default() };
    let w = World::start_with(options).await;
    w.graph_em.set_knobs(Knobs {
        retry_after_secs: 30,
        storm: [("anna@contoso.com".to_owned(), 50)].into(),
        ..Knobs::default()
    });
    let (plan, record) = w.plan_new(&Policy::new(), &topdesk_observation(&w));
    let report = w.run(&plan, &record).await;
    let Outcome::Failed { class, error } = &report.outcomes[0].outcome else { panic!("{report:?}") };
    assert_eq!(class, &FailureClass::Transient { retry_after: Some(StdDuration::from_secs(30)) });
    assert!(error.is_retryable(), "{error}");
    assert_eq!(
        report.failure(Side::Exchange),
        Some(WriteFailure::Transient { retry_after: Some(Duration::seconds(30)) })
    );
    w.graph_em.set_knobs(Knobs::default());
    assert!(w.events("anna@contoso.com").await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn mails_carry_the_link_and_the_subject_only_when_the_template_needs_it() {
    let w = World::start().await;
    // (template, subject in the record, subject expected in the body)
    let cases = [
        (MailTemplate::BookingRefused, None, false),
        (MailTemplate::BookingRefused, Some("Quarterly budget"), true),
        (MailTemplate::FallbackPersonUsed, Some("Quarterly budget"), false),
    ];
    for (n, (template, subject, shown)) in cases.into_iter().enumerate() {
        let (_, record) = w.plan_new(&Policy::new(), &observation(Side::Exchange, subject));
        let plan = plan_of(vec![Action::SendMail {
            template,
            to: mail("anna@contoso.com"),
            booking: record.id,
            detail: None,
        }]);
        let report = w.run(&plan, &record).await;
        assert!(matches!(done(&report, 0), Done::MailSent { .. }), "{report:?}");
        let outbox = w.graph_em.outbox();
        let sent = &outbox[n];
        assert_eq!(sent.from, "orb@contoso.com");
        let to = sent.message.to_recipients.as_ref().unwrap()[0].address().unwrap().to_owned();
        assert_eq!(to, "anna@contoso.com");
        let body = sent.message.body.as_ref().unwrap().content.clone().unwrap();
        assert!(!body.contains("/bookings/"), "no link to a page nothing serves yet: {body}");
        assert_eq!(body.contains("Quarterly budget"), shown, "{template:?} / {subject:?}: {body}");
        assert!(!sent.message.subject.as_deref().unwrap().contains("Quarterly"), "never in the title");
        assert!(body.contains("Room 1.01"), "the room by its name: {body}");
        assert!(!body.contains("room1@contoso.com"), "never by its mailbox address: {body}");
    }
}

#[tokio::test]
async fn an_outlook_meeting_known_by_its_room_copy_is_found_by_ical_uid() {
    let w = World::start().await;
    // Anna books room 1 in Outlook herself: no ORB match property on it.
    let mut input = orb_graph::model::Event {
        start: Some(orb_graph::model::DateTimeTimeZone::from_utc(at("2026-09-02T09:00:00Z"))),
        end: Some(orb_graph::model::DateTimeTimeZone::from_utc(at("2026-09-02T10:00:00Z"))),
        location: Some(orb_graph::model::Location::room("Room 1", "room1@contoso.com")),
        ..Default::default()
    };
    input.attendees = Some(vec![orb_graph::model::Attendee::resource("room1@contoso.com", None)]);
    let view = orb_emulators::graph::View::default();
    w.graph_em.create_in("anna@contoso.com", &input, &view).unwrap();
    let room_copy = w.events("room1@contoso.com").await.remove(0);
    let (_, mut record) = w.plan_new(&Policy::new(), &observation(Side::Exchange, None));
    record.exchange.room_event_id = room_copy.id.clone();
    record.exchange.ical_uid = room_copy.ical_uid.clone();

    let (start, end) = (at("2026-09-02T11:00:00Z"), at("2026-09-02T12:00:00Z"));
    (record.start, record.end) = (start, end);
    let plan = plan_of(vec![Action::UpdateExchangeEvent {
        booking: record.id,
        target: ExchangeTarget::Organizer { mailbox: mail("anna@contoso.com") },
        event_id: room_copy.id.clone(),
        changes: ExchangeChanges { times: Some((start, end)), ..ExchangeChanges::default() },
    }]);
    let report = w.run(&plan, &record).await;
    assert!(report.all_done(), "{report:?}");
    let anna = w.events("anna@contoso.com").await;
    assert_eq!(anna[0].start.as_ref().unwrap().to_utc().unwrap(), start, "the organizer's copy moved");
    let mut applied = record.clone();
    apply_to_record(&mut applied, &report);
    assert_eq!(applied.exchange.organizer_event_id, anna[0].id, "the organizer's copy is learned");
    assert_ne!(applied.exchange.organizer_event_id, applied.exchange.room_event_id);
}

#[tokio::test]
async fn a_room_only_event_moves_to_the_other_rooms_calendar() {
    let w = World::start().await;
    let mut policy = Policy::new();
    policy.mode = Mode::RoomOnly;
    let (_, before) = booked_in_exchange(&w, &policy).await;
    let mut after = before.clone();
    after.room_id = w.room_ids[1];
    let room2 = RoomMailbox::parse("room2@contoso.com").unwrap();
    let plan = plan_of(vec![Action::UpdateExchangeEvent {
        booking: before.id,
        target: ExchangeTarget::RoomOnly { mailbox: room2.clone() },
        event_id: before.exchange.room_event_id.clone(),
        changes: ExchangeChanges { room: Some(room2), ..ExchangeChanges::default() },
    }]);

    let without_old_room = w.run(&plan, &after).await;
    assert!(
        matches!(
            without_old_room.outcomes[0].outcome,
            Outcome::Failed { class: FailureClass::Permanent { .. }, .. }
        ),
        "{without_old_room:?}"
    );
    for run in 0..2 {
        let report = execute(&plan, &after, Some(&before), &w.ctx()).await;
        assert!(report.all_done(), "run {run}: {report:?}");
        let moved = w.events("room2@contoso.com").await;
        assert_eq!(moved.len(), 1, "run {run}: one event in the new room");
        let corr = CorrelationId::generate(w.clock.now());
        let tagged = w.graph.find_by_match_id(&mail("room2@contoso.com"), &before.id.to_string(), corr).await;
        assert_eq!(tagged.unwrap().and_then(|e| e.id), moved[0].id, "run {run}: carries ORB's match id");
        assert!(w.events("room1@contoso.com").await.is_empty(), "run {run}: gone from the old room");
        let mut applied = after.clone();
        apply_to_record(&mut applied, &report);
        assert_eq!(applied.exchange.room_event_id, moved[0].id, "run {run}");
    }
}

#[tokio::test]
async fn topdesk_update_sets_requester_description_and_participants() {
    let w = World::start().await;
    let record = booked_in_topdesk(&w).await;
    let bob = w.persons.person_id(&mail("bob@contoso.com")).unwrap().to_owned();
    let plan = plan_of(vec![Action::UpdateReservation {
        booking: record.id,
        reservation_id: record.topdesk.reservation_id.clone(),
        changes: ReservationChanges {
            requester: Some(Requester::Fallback {
                person_id: bob.clone(),
                email: mail("bob@contoso.com"),
                organizer: mail("carl@contoso.com"),
            }),
            participants: Some(vec![]),
            brief_description: Some(Some("Booked".into())),
        },
    }]);
    for run in 0..2 {
        let report = w.run(&plan, &record).await;
        assert!(report.all_done(), "run {run}: {report:?}");
        let r = &w.td.emulator.reservations()[0];
        assert_eq!(r.requester.as_ref().and_then(|p| p.id).map(|id| id.to_string()), Some(bob.clone()));
        assert!(r.notes.as_deref().unwrap_or_default().contains("carl@contoso.com"), "{:?}", r.notes);
        assert_eq!(r.brief_description.as_deref(), Some("Booked"));
        let participants = r.participants.as_ref().and_then(|p| p.persons.as_ref()).map_or(0, Vec::len);
        assert_eq!(participants, 0, "run {run}: Bob is no longer a participant");
    }
}
