//! Table-driven cases for the thirteen planner rules of DESIGN §4.
//!
//! Every case is one `check(name, world, before, observation, expected)` call. `expected` is the plan
//! summarised one line per action, plus one line for the record (`record: ...`), so a case reads like the
//! rule it tests.

use chrono::{DateTime, Duration, Utc};
use orb_core::*;
use uuid::Uuid;

const NOW: &str = "2026-03-02T09:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    let s = if s.len() == 16 { format!("{s}:00Z") } else { s.to_owned() };
    DateTime::parse_from_rfc3339(&s).unwrap().with_timezone(&Utc)
}

fn now() -> DateTime<Utc> {
    at(NOW)
}

fn mail(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn room_id(n: u8) -> RoomId {
    RoomId::from_uuid(Uuid::from_u128(0x1000 + u128::from(n)))
}

fn loc(n: u8) -> TopdeskLocationId {
    TopdeskLocationId::parse(&format!("loc-{n}")).unwrap()
}

fn room_mail(n: u8) -> EmailAddress {
    mail(&format!("room-{n}@contoso.com"))
}

struct World {
    policy: Policy,
    rooms: RoomMap,
    persons: PersonDirectory,
    sweep: Option<SweepStats>,
}

fn world() -> World {
    let mut policy = Policy::new();
    policy.fallback_person =
        Some(FallbackPerson { person_id: "p-desk".into(), email: mail("desk@contoso.com") });
    let rooms = RoomMap::new(
        (1..=3)
            .map(|n| RoomMapping {
                id: room_id(n),
                mailbox: RoomMailbox::from(room_mail(n)),
                location: loc(n),
                time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                enabled: n != 3,
                name: None,
            })
            .collect(),
    );
    let persons = PersonDirectory::new(
        ["anna", "bob", "manager", "secretary", "carl"]
            .map(|n| (mail(&format!("{n}@contoso.com")), format!("p-{n}"))),
    );
    World { policy, rooms, persons, sweep: None }
}

impl World {
    fn with(mut self, f: impl FnOnce(&mut Policy)) -> Self {
        f(&mut self.policy);
        self
    }
    fn ctx(&self) -> PlanContext<'_> {
        PlanContext {
            tenant_id: TenantId::from_uuid(Uuid::from_u128(1)),
            policy: &self.policy,
            rooms: &self.rooms,
            persons: &self.persons,
            now: now(),
            new_ids: NewIds {
                booking: BookingId::from_uuid(Uuid::from_u128(0xb00c)),
                correlation: CorrelationId::from_uuid(Uuid::from_u128(0xc0)),
            },
            sweep: self.sweep,
        }
    }
}

fn base(side: Side, start: &str, end: &str) -> Observation {
    Observation {
        side,
        source: ObservationSource::Notification,
        orb_match_id: None,
        ids: RemoteIds::default(),
        room: match side {
            Side::Exchange => ObservedRoom::Mailbox(room_mail(1)),
            Side::Topdesk => ObservedRoom::Location(loc(1)),
        },
        start: at(start),
        end: at(end),
        time_zone: (side == Side::Exchange).then(|| TimeZoneName::parse("Europe/Amsterdam").unwrap()),
        organizer: mail("anna@contoso.com"),
        booked_by: None,
        participants: vec![mail("bob@contoso.com")],
        subject: Some("Project review".into()),
        location_text: Some("Room 1".into()),
        lifecycle: Lifecycle::Active,
        room_response: RoomResponse::Accepted,
        modified_at: now() - Duration::minutes(1),
        appointment_type: AppointmentType::Single,
        series: None,
        unsynced: Default::default(),
        counterpart: None,
    }
}

/// An Exchange observation: room 1, organizer anna, attendee bob, "Project review".
fn ex(start: &str, end: &str) -> Observation {
    let mut o = base(Side::Exchange, start, end);
    o.participants.push(room_mail(1));
    o
}

/// A TOPdesk observation: location 1, requester anna.
fn td(start: &str, end: &str) -> Observation {
    base(Side::Topdesk, start, end)
}

trait Edit: Sized {
    fn edit(self, f: impl FnOnce(&mut Observation)) -> Self;
    fn modified(self, minutes_after_now: i64) -> Self {
        self.edit(|o| o.modified_at = now() + Duration::minutes(minutes_after_now))
    }
    fn times(self, start: &str, end: &str) -> Self {
        self.edit(|o| {
            o.start = at(start);
            o.end = at(end);
        })
    }
    fn in_room(self, n: u8) -> Self {
        self.edit(|o| {
            o.room = match o.side {
                Side::Exchange => ObservedRoom::Mailbox(room_mail(n)),
                Side::Topdesk => ObservedRoom::Location(loc(n)),
            }
        })
    }
    fn cancelled(self) -> Self {
        self.edit(|o| o.lifecycle = Lifecycle::Cancelled)
    }
    fn subject(self, s: Option<&str>) -> Self {
        self.edit(|o| o.subject = s.map(str::to_owned))
    }
    fn organizer(self, s: &str) -> Self {
        self.edit(|o| o.organizer = mail(s))
    }
}

impl Edit for Observation {
    fn edit(mut self, f: impl FnOnce(&mut Observation)) -> Self {
        f(&mut self);
        self
    }
}

fn hm(t: DateTime<Utc>) -> String {
    t.format("%m-%d %H:%M").to_string()
}

fn people(v: &[EmailAddress]) -> String {
    v.iter().map(|e| e.as_str().split('@').next().unwrap_or_default()).collect::<Vec<_>>().join("+")
}

fn target(t: &ExchangeTarget) -> String {
    match t {
        ExchangeTarget::Organizer { mailbox } => {
            format!("organizer:{}", people(std::slice::from_ref(mailbox)))
        }
        ExchangeTarget::RoomOnly { mailbox } => {
            format!("room:{}", people(std::slice::from_ref(mailbox.address())))
        }
    }
}

fn requester(r: &Requester) -> String {
    match r {
        Requester::Person { email, .. } => people(std::slice::from_ref(email)),
        Requester::Fallback { email, organizer, .. } => {
            format!(
                "{}(fallback for {})",
                people(std::slice::from_ref(email)),
                people(std::slice::from_ref(organizer))
            )
        }
    }
}

fn summary(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .actions
        .iter()
        .map(|a| match a {
            Action::CreateReservation {
                location,
                start,
                end,
                requester: r,
                participants,
                brief_description,
                ..
            } => {
                format!(
                    "topdesk.create {location} {}-{} requester={} with={} subject={brief_description:?}",
                    hm(*start),
                    hm(*end),
                    requester(r),
                    people(participants)
                )
            }
            Action::UpdateReservation { changes, .. } => {
                let mut s = "topdesk.update".to_owned();
                if let Some(r) = &changes.requester {
                    s += &format!(" requester={}", requester(r));
                }
                if let Some(p) = &changes.participants {
                    s += &format!(" with={}", people(p));
                }
                if let Some(d) = &changes.brief_description {
                    s += &format!(" subject={d:?}");
                }
                s
            }
            Action::RescheduleReservation { start, end, .. } => {
                format!("topdesk.reschedule {}-{}", hm(*start), hm(*end))
            }
            Action::MoveReservationRoom { from, to, .. } => format!("topdesk.move {from}->{to}"),
            Action::CancelReservation { .. } => "topdesk.cancel".to_owned(),
            Action::LinkReservation { .. } => "topdesk.link".to_owned(),
            Action::CreateExchangeEvent {
                target: t,
                room,
                start,
                end,
                organizer,
                participants,
                subject,
                ..
            } => {
                format!(
                    "exchange.create {} {} {}-{} organizer={} with={} subject={subject:?}",
                    target(t),
                    room,
                    hm(*start),
                    hm(*end),
                    people(std::slice::from_ref(organizer)),
                    people(participants)
                )
            }
            Action::UpdateExchangeEvent { target: t, changes, .. } => {
                let mut s = format!("exchange.update {}", target(t));
                if let Some(r) = &changes.room {
                    s += &format!(" room={r}");
                }
                if let Some((a, b)) = changes.times {
                    s += &format!(" times={}-{}", hm(a), hm(b));
                }
                if let Some(p) = &changes.participants {
                    s += &format!(" with={}", people(p));
                }
                if let Some(d) = &changes.subject {
                    s += &format!(" subject={d:?}");
                }
                s
            }
            Action::CancelExchangeEvent { target: t, how, .. } => {
                format!("exchange.cancel {} {how:?}", target(t))
            }
            Action::SendMail { template, to, detail, .. } => {
                let because = detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default();
                format!("mail {} -> {}{because}", template.as_str(), people(std::slice::from_ref(to)))
            }
            Action::RaiseConflict { winner, loser, policy, fields, .. } => {
                format!("conflict {policy:?}: {winner} wins over {loser} ({})", fields.join(","))
            }
            Action::MassDeletionAlert { cancelling, future_bookings, .. } => {
                format!("alert mass-deletion {cancelling}/{future_bookings}")
            }
            Action::ScheduleRetry { side, after, .. } => format!("retry {side} in {}s", after.num_seconds()),
            Action::Nothing { reason } => format!("nothing {reason:?}"),
        })
        .collect();
    out.push(match &plan.record {
        RecordChange::Unchanged => "record: unchanged".to_owned(),
        RecordChange::Create(r) | RecordChange::Update(r) => format!(
            "record: {} complexity={}{}",
            if matches!(plan.record, RecordChange::Create(_)) { "create" } else { "update" },
            r.complexity_index,
            if r.cancelled { " cancelled" } else { "" }
        ),
    });
    out
}

fn check(
    name: &str,
    w: &World,
    before: Option<&BookingRecord>,
    obs: &Observation,
    expected: &[&str],
) -> Plan {
    let plan = plan(before, obs, &w.ctx());
    let mut got = summary(&plan);
    if let (Some(b), RecordChange::Update(after)) = (before, &plan.record) {
        let mut same = (**after).clone();
        same.topdesk.modification_date = b.topdesk.modification_date;
        same.exchange.modified_at = b.exchange.modified_at;
        if &same == b {
            *got.last_mut().unwrap() = "record: watermark only".to_owned();
        }
        same.exchange.change_key.clone_from(&b.exchange.change_key);
        if &same == b && after.exchange.change_key != b.exchange.change_key {
            // The event's version (the next `If-Match`), and the watermark if it moved.
            *got.last_mut().unwrap() = "record: version only".to_owned();
        }
    }
    assert_eq!(got, expected, "case {name:?}\nplan: {plan:#?}");
    // Every plan is deterministic.
    assert_eq!(plan, orb_core::plan(before, obs, &w.ctx()), "case {name:?} is not deterministic");
    plan
}

/// The record after `obs` created it and the executor wrote the other side.
fn booked(w: &World, obs: &Observation) -> BookingRecord {
    let p = plan(None, obs, &w.ctx());
    let mut r = p.record.record().cloned().unwrap_or_else(|| panic!("no record from {p:#?}"));
    r.exchange_status = SyncStatus::Synced;
    r.topdesk_status = SyncStatus::Synced;
    r.topdesk.reservation_id = Some("res-1".into());
    r.exchange.organizer_event_id = Some("evt-1".into());
    r
}

/// What the other side shows after the executor carried out `plan`'s first write.
fn echo_of(plan: &Plan, booking: &BookingRecord) -> Observation {
    let w = plan.writes().next().expect("a write");
    match w {
        Action::CreateReservation {
            location,
            start,
            end,
            requester,
            participants,
            brief_description,
            ..
        } => {
            let mut o = td("2026-03-02T10:00", "2026-03-02T11:00");
            o.room = ObservedRoom::Location(location.clone());
            o.start = *start;
            o.end = *end;
            o.organizer = requester.email().clone();
            o.participants.clone_from(participants);
            o.subject.clone_from(brief_description);
            o.orb_match_id = Some(booking.id);
            o.modified_at = now() + Duration::seconds(5);
            o
        }
        Action::CreateExchangeEvent { room, start, end, organizer, participants, subject, .. } => {
            let mut o = ex("2026-03-02T10:00", "2026-03-02T11:00");
            o.room = ObservedRoom::Mailbox(room.address().clone());
            o.start = *start;
            o.end = *end;
            o.organizer = organizer.clone();
            o.participants.clone_from(participants);
            o.subject.clone_from(subject);
            o.orb_match_id = Some(booking.id);
            o.modified_at = now() + Duration::seconds(5);
            o
        }
        other => panic!("no echo for {other:?}"),
    }
}

const A: &str = "2026-03-02T10:00";
const B: &str = "2026-03-02T11:00";

#[test]
fn rule_01_create_from_exchange() {
    let w = world();
    let p = check(
        "exchange meeting in a managed room creates a reservation",
        &w,
        None,
        &ex(A, B),
        &[
            "topdesk.create loc-1 03-02 10:00-03-02 11:00 requester=anna with=bob subject=Some(\"Project review\")",
            "record: create complexity=0",
        ],
    );
    let r = p.record.record().unwrap();
    assert_eq!(r.processor_created, Side::Exchange);
    assert_eq!(r.original_organizer, mail("anna@contoso.com"));
    assert_eq!(r.participants, vec![mail("bob@contoso.com")], "the room is not a participant");
    check(
        "organizer unknown in TOPdesk: fallback person and a mail",
        &w,
        None,
        &ex(A, B).organizer("guest@partner.example"),
        &[
            "topdesk.create loc-1 03-02 10:00-03-02 11:00 requester=desk(fallback for guest) with=bob subject=Some(\"Project review\")",
            "mail fallback-person-used -> guest",
            "record: create complexity=0",
        ],
    );
    let quiet = world().with(|p| p.mail.clear());
    check(
        "fallback person without the mail when mail is off",
        &quiet,
        None,
        &ex(A, B).organizer("guest@partner.example"),
        &[
            "topdesk.create loc-1 03-02 10:00-03-02 11:00 requester=desk(fallback for guest) with=bob subject=Some(\"Project review\")",
            "record: create complexity=0",
        ],
    );
    let no_fallback = world().with(|p| p.fallback_person = None);
    check(
        "organizer unknown and no fallback person: recorded with TOPdesk refused, organizer told",
        &no_fallback,
        None,
        &ex(A, B).organizer("guest@partner.example"),
        &["nothing NoRequester", "mail booking-refused -> guest", "record: create complexity=0"],
    );
    check(
        "unmanaged room",
        &w,
        None,
        &ex(A, B).edit(|o| o.room = ObservedRoom::Mailbox(mail("x@contoso.com"))),
        &["nothing UnmanagedRoom", "record: unchanged"],
    );
    check(
        "disabled room mapping",
        &w,
        None,
        &ex(A, B).in_room(3),
        &["nothing UnmanagedRoom", "record: unchanged"],
    );
    check(
        "beyond the horizon",
        &w,
        None,
        &ex("2026-09-01T10:00", "2026-09-01T11:00"),
        &["nothing BeyondHorizon", "record: unchanged"],
    );
    check(
        "just inside the horizon",
        &world().with(|p| p.horizon = Duration::days(30)),
        None,
        &ex("2026-04-01T08:00", "2026-04-01T09:00"),
        &[
            "topdesk.create loc-1 04-01 08:00-04-01 09:00 requester=anna with=bob subject=Some(\"Project review\")",
            "record: create complexity=0",
        ],
    );
    check(
        "already over",
        &w,
        None,
        &ex("2026-03-01T10:00", "2026-03-01T11:00"),
        &["nothing InPast", "record: unchanged"],
    );
    check("end before start", &w, None, &ex(B, A), &["nothing InvalidTimes", "record: unchanged"]);
    check(
        "cancelled meeting never tracked",
        &w,
        None,
        &ex(A, B).cancelled(),
        &["nothing NotTracked", "record: unchanged"],
    );
    check(
        "room has not answered yet",
        &w,
        None,
        &ex(A, B).edit(|o| o.room_response = RoomResponse::NotResponded),
        &["nothing AwaitingRoomResponse", "record: unchanged"],
    );
    check(
        "room tentatively accepted",
        &w,
        None,
        &ex(A, B).edit(|o| o.room_response = RoomResponse::Tentative),
        &["nothing AwaitingRoomResponse", "record: unchanged"],
    );
    check(
        "item tagged by ORB without a record",
        &w,
        None,
        &ex(A, B).edit(|o| o.orb_match_id = Some(BookingId::from_uuid(Uuid::from_u128(9)))),
        &["nothing OrbItemWithoutRecord", "record: unchanged"],
    );
    let p = check(
        "subject longer than TOPdesk's 100 characters is cut",
        &w,
        None,
        &ex(A, B).subject(Some(&"x".repeat(120))),
        &[
            &format!(
                "topdesk.create loc-1 03-02 10:00-03-02 11:00 requester=anna with=bob subject=Some(\"{}\")",
                "x".repeat(100)
            ),
            "record: create complexity=0",
        ],
    );
    assert_eq!(
        p.record.record().unwrap().subject.as_deref().map(str::len),
        Some(120),
        "the record keeps it whole"
    );
}

#[test]
fn rule_02_create_from_topdesk() {
    let w = world();
    let p = check(
        "organizer mode: meeting in the organizer's calendar with the room",
        &w,
        None,
        &td(A, B),
        &[
            "exchange.create organizer:anna room-1@contoso.com 03-02 10:00-03-02 11:00 organizer=anna with=bob subject=Some(\"Project review\")",
            "record: create complexity=0",
        ],
    );
    let r = p.record.record().unwrap();
    assert_eq!(r.processor_created, Side::Topdesk);
    assert_eq!(r.time_zone.as_str(), "Europe/Amsterdam", "TOPdesk bookings take the room's zone");
    let room_only = world().with(|p| p.mode = Mode::RoomOnly);
    check(
        "room-only mode: meeting in the room's calendar",
        &room_only,
        None,
        &td(A, B),
        &[
            "exchange.create room:room-1 room-1@contoso.com 03-02 10:00-03-02 11:00 organizer=anna with=bob subject=Some(\"Project review\")",
            "record: create complexity=0",
        ],
    );
    check(
        "reservation made by ORB (external link) but no record",
        &w,
        None,
        &td(A, B).edit(|o| o.orb_match_id = Some(BookingId::from_uuid(Uuid::from_u128(5)))),
        &["nothing OrbItemWithoutRecord", "record: unchanged"],
    );
    check(
        "unmapped TOPdesk location",
        &w,
        None,
        &td(A, B).in_room(9),
        &["nothing UnmanagedRoom", "record: unchanged"],
    );
    check(
        "cancelled reservation never tracked",
        &w,
        None,
        &td(A, B).cancelled(),
        &["nothing NotTracked", "record: unchanged"],
    );
}

#[test]
fn rule_03_echo() {
    let w = world();
    let first = ex(A, B);
    let p = plan(None, &first, &w.ctx());
    let rec = booked(&w, &first);
    let echo = echo_of(&p, &rec);
    check(
        "TOPdesk shows exactly what ORB wrote",
        &w,
        Some(&rec),
        &echo,
        &["nothing Echo", "record: watermark only"],
    );
    check(
        "the same Exchange observation again",
        &w,
        Some(&rec),
        &first,
        &["nothing Echo", "record: unchanged"],
    );
    check(
        "a duplicate notification with a later modification time",
        &w,
        Some(&rec),
        &first.clone().modified(10),
        &["nothing Echo", "record: watermark only"],
    );
    check(
        "only a field ORB does not sync changed (body)",
        &w,
        Some(&rec),
        &first.clone().edit(|o| {
            o.unsynced.insert("body".into(), "new agenda".into());
            o.ids.change_key = Some("ck-2".into());
            o.location_text = Some("Other text".into());
        }),
        &["nothing Echo", "record: version only"],
    );
    let fb = ex(A, B).organizer("guest@partner.example");
    let pf = plan(None, &fb, &w.ctx());
    let rec_fb = booked(&w, &fb);
    check(
        "echo of a reservation made for the fallback person",
        &w,
        Some(&rec_fb),
        &echo_of(&pf, &rec_fb),
        &["nothing Echo", "record: watermark only"],
    );
    let t = td(A, B);
    let pt = plan(None, &t, &w.ctx());
    let rec_t = booked(&w, &t);
    check(
        "echo of a meeting ORB created from TOPdesk",
        &w,
        Some(&rec_t),
        &echo_of(&pt, &rec_t),
        &["nothing Echo", "record: watermark only"],
    );
    // ORB reads the organizer's copy back after its write, not the room's: the room copy's id comes with
    // the copy's notification, and the echo records it (nothing else changes).
    let mut unseen = rec_t.clone();
    unseen.exchange.room_event_id = None;
    let mut copy = echo_of(&pt, &unseen);
    copy.ids.event_id = Some("room-copy-7".into());
    let learned = plan(Some(&unseen), &copy, &w.ctx());
    let RecordChange::Update(after) = &learned.record else { panic!("{learned:#?}") };
    assert_eq!(after.exchange.room_event_id.as_deref(), Some("room-copy-7"));
    assert_eq!(summary(&learned)[0], "nothing Echo");
    let mut same = (**after).clone();
    same.exchange.room_event_id = None;
    same.exchange.modified_at = unseen.exchange.modified_at;
    assert_eq!(same, unseen, "only the room copy's id (and the watermark) changes");
    // Known already: an echo carrying it changes nothing more.
    check("echo whose room copy ORB knows", &w, Some(after), &copy, &["nothing Echo", "record: unchanged"]);
}

#[test]
fn rule_04_propagate_one_side() {
    let w = world();
    let rec = booked(&w, &ex(A, B));
    check(
        "exchange retime reschedules the reservation",
        &w,
        Some(&rec),
        &ex("2026-03-02T12:00", "2026-03-02T13:30").modified(1),
        &["topdesk.reschedule 03-02 12:00-03-02 13:30", "record: update complexity=1"],
    );
    check(
        "exchange subject change patches the brief description",
        &w,
        Some(&rec),
        &ex(A, B).subject(Some("Budget")).modified(1),
        &["topdesk.update subject=Some(\"Budget\")", "record: update complexity=1"],
    );
    check(
        "exchange attendee added",
        &w,
        Some(&rec),
        &ex(A, B).edit(|o| o.participants.push(mail("carl@contoso.com"))).modified(1),
        &["topdesk.update with=bob+carl", "record: update complexity=1"],
    );
    check(
        "topdesk reschedule updates the meeting",
        &w,
        Some(&rec),
        &td("2026-03-02T14:00", "2026-03-02T15:00").edit(|o| o.modified_at = now() + Duration::minutes(2)),
        &["exchange.update organizer:anna times=03-02 14:00-03-02 15:00", "record: update complexity=1"],
    );
    let rec_ro = booked(&world().with(|p| p.mode = Mode::RoomOnly), &td(A, B));
    check(
        "room-only mode: topdesk retime updates the room's event",
        &world().with(|p| p.mode = Mode::RoomOnly),
        Some(&rec_ro),
        &td("2026-03-02T14:00", "2026-03-02T15:00").modified(2),
        &["exchange.update room:room-1 times=03-02 14:00-03-02 15:00", "record: update complexity=1"],
    );
    let mut with_mark = rec.clone();
    with_mark.topdesk.modification_date = Some(now() + Duration::minutes(5));
    check(
        "stale TOPdesk observation (older than the last version seen) is ignored",
        &w,
        Some(&with_mark),
        &td("2026-03-02T14:00", "2026-03-02T15:00").modified(2),
        &["nothing Stale", "record: unchanged"],
    );
    let mut ex_marked = rec.clone();
    ex_marked.exchange.modified_at = Some(now() + Duration::minutes(5));
    check(
        "stale Exchange observation is ignored",
        &w,
        Some(&ex_marked),
        &ex("2026-03-02T12:00", "2026-03-02T13:00").modified(1),
        &["nothing Stale", "record: unchanged"],
    );
    check(
        "two changes in one observation",
        &w,
        Some(&rec),
        &ex("2026-03-02T12:00", "2026-03-02T13:00").subject(Some("Moved")).modified(1),
        &[
            "topdesk.reschedule 03-02 12:00-03-02 13:00",
            "topdesk.update subject=Some(\"Moved\")",
            "record: update complexity=1",
        ],
    );
    let p = plan(Some(&rec), &ex("2026-03-02T12:00", "2026-03-02T13:00").modified(1), &w.ctx());
    assert_eq!(
        p.record.record().and_then(|r| r.exchange.modified_at),
        Some(now() + Duration::minutes(1)),
        "the Exchange watermark moves to the observed version"
    );
}

#[test]
fn rule_05_conflicts() {
    let mk = |policy: ConflictPolicy| world().with(|p| p.conflict = policy);
    let w = mk(ConflictPolicy::ExchangeWins);
    let rec = booked(&w, &ex(A, B));
    // Exchange moved to 12:00 (at +1 min), TOPdesk moved to 14:00 (at +2 min).
    let both = |w: &World| {
        let _ = w;
        ex("2026-03-02T12:00", "2026-03-02T13:00")
            .modified(1)
            .edit(|o| o.counterpart = Some(Box::new(td("2026-03-02T14:00", "2026-03-02T15:00").modified(2))))
    };
    check(
        "exchange-wins",
        &w,
        Some(&rec),
        &both(&w),
        &[
            "topdesk.reschedule 03-02 12:00-03-02 13:00",
            "conflict ExchangeWins: exchange wins over topdesk (start,end)",
            "record: update complexity=1",
        ],
    );
    let w = mk(ConflictPolicy::TopdeskWins);
    check(
        "topdesk-wins",
        &w,
        Some(&rec),
        &both(&w),
        &[
            "exchange.update organizer:anna times=03-02 14:00-03-02 15:00",
            "conflict TopdeskWins: topdesk wins over exchange (start,end)",
            "mail conflict-overwritten -> anna",
            "record: update complexity=1",
        ],
    );
    let w = mk(ConflictPolicy::LatestWins);
    check(
        "latest-wins: TOPdesk changed later",
        &w,
        Some(&rec),
        &both(&w),
        &[
            "exchange.update organizer:anna times=03-02 14:00-03-02 15:00",
            "conflict LatestWins: topdesk wins over exchange (start,end)",
            "mail conflict-overwritten -> anna",
            "record: update complexity=1",
        ],
    );
    let later_ex = ex("2026-03-02T12:00", "2026-03-02T13:00")
        .modified(3)
        .edit(|o| o.counterpart = Some(Box::new(td("2026-03-02T14:00", "2026-03-02T15:00").modified(2))));
    check(
        "latest-wins: Exchange changed later",
        &w,
        Some(&rec),
        &later_ex,
        &[
            "topdesk.reschedule 03-02 12:00-03-02 13:00",
            "conflict LatestWins: exchange wins over topdesk (start,end)",
            "record: update complexity=1",
        ],
    );
    let same = ex("2026-03-02T12:00", "2026-03-02T13:00")
        .modified(1)
        .edit(|o| o.counterpart = Some(Box::new(td("2026-03-02T12:00", "2026-03-02T13:00").modified(2))));
    check(
        "both sides made the same change",
        &w,
        Some(&rec),
        &same,
        &["nothing NoSyncedFieldChanged", "record: update complexity=1"],
    );
    let quiet = mk(ConflictPolicy::ExchangeWins).with(|p| p.mail.clear());
    check(
        "conflict without mail",
        &quiet,
        Some(&rec),
        &both(&quiet),
        &[
            "topdesk.reschedule 03-02 12:00-03-02 13:00",
            "conflict ExchangeWins: exchange wins over topdesk (start,end)",
            "record: update complexity=1",
        ],
    );
    let unchanged_counterpart = ex("2026-03-02T12:00", "2026-03-02T13:00")
        .modified(1)
        .edit(|o| o.counterpart = Some(Box::new(echo_of(&plan(None, &ex(A, B), &w.ctx()), &rec))));
    check(
        "counterpart unchanged: plain propagation, no conflict",
        &w,
        Some(&rec),
        &unchanged_counterpart,
        &["topdesk.reschedule 03-02 12:00-03-02 13:00", "record: update complexity=1"],
    );
    // Different fields on each side (a subject renamed in Outlook, the times moved at the desk): nothing
    // is overwritten, whichever policy; each side gets the other's change.
    let disjoint = ex(A, B)
        .edit(|o| o.subject = Some("Renamed".into()))
        .modified(1)
        .edit(|o| o.counterpart = Some(Box::new(td("2026-03-02T14:00", "2026-03-02T15:00").modified(2))));
    for policy in [ConflictPolicy::ExchangeWins, ConflictPolicy::TopdeskWins, ConflictPolicy::LatestWins] {
        check(
            &format!("different fields, {policy:?}: both kept"),
            &mk(policy),
            Some(&rec),
            &disjoint,
            &[
                "topdesk.update subject=Some(\"Renamed\")",
                "exchange.update organizer:anna times=03-02 14:00-03-02 15:00",
                "record: update complexity=1",
            ],
        );
    }
    // Under `hide` the desk never sees the subject: only the desk's times go to Outlook (found by the EWS
    // scenario: a renamed meeting used to make the desk's next move lose under exchange-wins).
    let hide = mk(ConflictPolicy::ExchangeWins)
        .with(|p| p.subject = orb_core::SubjectPolicy::HideOnRoom { text: "Booked".into() });
    let hidden = booked(&hide, &ex(A, B));
    check(
        "different fields under hide: the desk's move reaches Outlook",
        &hide,
        Some(&hidden),
        &disjoint,
        &["exchange.update organizer:anna times=03-02 14:00-03-02 15:00", "record: update complexity=1"],
    );
    let cancelled_vs_edit = ex(A, B)
        .cancelled()
        .modified(1)
        .edit(|o| o.counterpart = Some(Box::new(td("2026-03-02T14:00", "2026-03-02T15:00").modified(2))));
    check(
        "exchange cancelled while TOPdesk rescheduled, exchange wins",
        &mk(ConflictPolicy::ExchangeWins),
        Some(&rec),
        &cancelled_vs_edit,
        &[
            "topdesk.cancel",
            "conflict ExchangeWins: exchange wins over topdesk (start,end,cancelled)",
            "record: update complexity=1 cancelled",
        ],
    );
}

/// Rule 5 as the engine meets it between sweeps: ORB was about to write a TOPdesk change to Exchange and
/// Graph refused the conditional write (`412`), so the engine read the event and planned again with it as
/// the counterpart. The conflict is decided exactly as in a sweep, and the record takes the version read.
#[test]
fn rule_05_conflicts_found_before_overwriting() {
    let mk = |policy: ConflictPolicy| world().with(|p| p.conflict = policy);
    let rec = booked(&mk(ConflictPolicy::ExchangeWins), &ex(A, B));
    let read = |minutes: i64, key: &str| {
        ex("2026-03-02T12:00", "2026-03-02T13:00")
            .modified(minutes)
            .edit(|o| o.ids.change_key = Some(key.into()))
    };
    // The service desk moved the reservation to 14:00 (at +1 min); Anna moved the meeting to 12:00 (at +2).
    let desk_then_anna = td("2026-03-02T14:00", "2026-03-02T15:00")
        .modified(1)
        .edit(|o| o.counterpart = Some(Box::new(read(2, "ck-anna"))));
    let cases = [
        (
            ConflictPolicy::ExchangeWins,
            vec![
                "topdesk.reschedule 03-02 12:00-03-02 13:00",
                "conflict ExchangeWins: exchange wins over topdesk (start,end)",
                "record: update complexity=1",
            ],
        ),
        (
            ConflictPolicy::TopdeskWins,
            vec![
                "exchange.update organizer:anna times=03-02 14:00-03-02 15:00",
                "conflict TopdeskWins: topdesk wins over exchange (start,end)",
                "mail conflict-overwritten -> anna",
                "record: update complexity=1",
            ],
        ),
        (
            ConflictPolicy::LatestWins,
            vec![
                "topdesk.reschedule 03-02 12:00-03-02 13:00",
                "conflict LatestWins: exchange wins over topdesk (start,end)",
                "record: update complexity=1",
            ],
        ),
    ];
    for (policy, expected) in cases {
        let w = mk(policy);
        let p = check(
            &format!("{policy:?}, the event read after a 412"),
            &w,
            Some(&rec),
            &desk_then_anna,
            &expected,
        );
        let after = p.record.record().unwrap();
        assert_eq!(after.exchange.change_key.as_deref(), Some("ck-anna"), "{policy:?}: the version read");
        assert_eq!(after.exchange.modified_at, Some(now() + Duration::minutes(2)), "{policy:?}");
        assert_eq!(after.topdesk.modification_date, Some(now() + Duration::minutes(1)), "{policy:?}");
        let loser = if policy == ConflictPolicy::TopdeskWins { Side::Exchange } else { Side::Topdesk };
        assert!(p.overwrites(loser) && !p.overwrites(loser.other()), "{policy:?}: only the loser is written");
    }

    // The event changed only in what ORB does not sync (an attendee answered): no conflict, the TOPdesk change
    // is written, naming the version read.
    let w = mk(ConflictPolicy::TopdeskWins);
    let unchanged = ex(A, B).modified(2).edit(|o| o.ids.change_key = Some("ck-answered".into()));
    let p = check(
        "the event read after a 412 did not change what ORB syncs",
        &w,
        Some(&rec),
        &td("2026-03-02T14:00", "2026-03-02T15:00")
            .modified(1)
            .edit(|o| o.counterpart = Some(Box::new(unchanged))),
        &["exchange.update organizer:anna times=03-02 14:00-03-02 15:00", "record: update complexity=1"],
    );
    assert_eq!(p.record.record().unwrap().exchange.change_key.as_deref(), Some("ck-answered"));

    // A counterpart older than the version ORB already processed gives no version.
    let mut seen = rec.clone();
    seen.exchange.change_key = Some("ck-seen".into());
    seen.exchange.modified_at = Some(now() + Duration::minutes(5));
    let p = check(
        "a stale counterpart",
        &w,
        Some(&seen),
        &td("2026-03-02T14:00", "2026-03-02T15:00")
            .modified(1)
            .edit(|o| o.counterpart = Some(Box::new(read(2, "ck-old")))),
        &["exchange.update organizer:anna times=03-02 14:00-03-02 15:00", "record: update complexity=1"],
    );
    assert_eq!(p.record.record().unwrap().exchange.change_key.as_deref(), Some("ck-seen"));
}

#[test]
fn which_side_can_win_a_conflict_under_each_policy() {
    // Before overwriting a side, ORB must know whether it changed only where such a change could win.
    let cases = [
        (ConflictPolicy::ExchangeWins, true, false),
        (ConflictPolicy::TopdeskWins, false, true),
        (ConflictPolicy::LatestWins, true, true),
    ];
    for (policy, exchange, topdesk) in cases {
        assert_eq!(
            (policy.can_win(Side::Exchange), policy.can_win(Side::Topdesk)),
            (exchange, topdesk),
            "{policy:?}"
        );
    }
}

#[test]
fn rule_06_cancellation() {
    let w = world();
    let rec = booked(&w, &ex(A, B));
    check(
        "cancelled in Exchange cancels the reservation",
        &w,
        Some(&rec),
        &ex(A, B).cancelled().modified(1),
        &["topdesk.cancel", "record: update complexity=1 cancelled"],
    );
    check(
        "deleted in Exchange cancels the reservation",
        &w,
        Some(&rec),
        &ex(A, B).edit(|o| o.lifecycle = Lifecycle::Deleted).modified(1),
        &["topdesk.cancel", "record: update complexity=1 cancelled"],
    );
    check(
        "cancelled in TOPdesk cancels the meeting",
        &w,
        Some(&rec),
        &td(A, B).cancelled().modified(1),
        &["exchange.cancel organizer:anna CancelMeeting", "record: update complexity=1 cancelled"],
    );
    let remove_room = world().with(|p| p.cancellation = CancellationPolicy::RemoveRoom);
    check(
        "cancelled in TOPdesk, remove-room policy",
        &remove_room,
        Some(&rec),
        &td(A, B).cancelled().modified(1),
        &["exchange.cancel organizer:anna RemoveRoom", "record: update complexity=1 cancelled"],
    );
    let ro = world().with(|p| p.mode = Mode::RoomOnly);
    let rec_ro = booked(&ro, &td(A, B));
    check(
        "room-only: cancelled in TOPdesk deletes the room event",
        &ro,
        Some(&rec_ro),
        &td(A, B).cancelled().modified(1),
        &["exchange.cancel room:room-1 DeleteRoomEvent", "record: update complexity=1 cancelled"],
    );
    let p = plan(Some(&rec), &ex(A, B).cancelled().modified(1), &w.ctx());
    let cancelled = p.record.record().unwrap().clone();
    assert_eq!(cancelled.id, rec.id, "a cancelled booking keeps its record");
    check(
        "a second cancellation is nothing",
        &w,
        Some(&cancelled),
        &ex(A, B).cancelled().modified(2).subject(Some("x")),
        &["nothing AlreadyCancelled", "record: update complexity=1 cancelled"],
    );
    let mut td_cancel = td(A, B).cancelled().modified(3);
    td_cancel.orb_match_id = Some(rec.id);
    check(
        "TOPdesk's echo of ORB's cancel",
        &w,
        Some(&cancelled),
        &td_cancel,
        &["nothing Echo", "record: watermark only"],
    );
}

#[test]
fn rule_07_room_moves() {
    let w = world();
    let rec = booked(&w, &ex(A, B));
    check(
        "moved to another managed room",
        &w,
        Some(&rec),
        &ex(A, B).in_room(2).modified(1),
        &["topdesk.move loc-1->loc-2", "record: update complexity=1"],
    );
    check(
        "moved to an unmanaged room cancels the reservation",
        &w,
        Some(&rec),
        &ex(A, B).edit(|o| o.room = ObservedRoom::Mailbox(mail("elsewhere@contoso.com"))).modified(1),
        &["topdesk.cancel", "mail moved-to-unmanaged-room -> anna", "record: update complexity=1 cancelled"],
    );
    check(
        "moved to a disabled room cancels the reservation",
        &w,
        Some(&rec),
        &ex(A, B).in_room(3).modified(1),
        &["topdesk.cancel", "mail moved-to-unmanaged-room -> anna", "record: update complexity=1 cancelled"],
    );
    check(
        "room removed from the meeting",
        &w,
        Some(&rec),
        &ex(A, B).edit(|o| o.room = ObservedRoom::None).modified(1),
        &["topdesk.cancel", "mail moved-to-unmanaged-room -> anna", "record: update complexity=1 cancelled"],
    );
    check(
        "TOPdesk moved the reservation to another room",
        &w,
        Some(&rec),
        &td(A, B).in_room(2).modified(1),
        &["exchange.update organizer:anna room=room-2@contoso.com", "record: update complexity=1"],
    );
    check(
        "TOPdesk moved it to an unmapped location",
        &w,
        Some(&rec),
        &td(A, B).in_room(7).modified(1),
        &[
            "exchange.cancel organizer:anna RemoveRoom",
            "mail moved-to-unmanaged-room -> anna",
            "record: update complexity=1 cancelled",
        ],
    );
    let gone = plan(Some(&rec), &ex(A, B).in_room(3).modified(1), &w.ctx()).record.record().unwrap().clone();
    check(
        "moved back into a managed room: a new reservation",
        &w,
        Some(&gone),
        &ex(A, B).in_room(2).modified(2),
        &[
            "topdesk.create loc-2 03-02 10:00-03-02 11:00 requester=anna with=bob subject=Some(\"Project review\")",
            "record: update complexity=2",
        ],
    );
}

#[test]
fn rule_08_room_declined() {
    let w = world();
    check(
        "room declined a new meeting: no reservation, organizer told",
        &w,
        None,
        &ex(A, B).edit(|o| o.room_response = RoomResponse::Declined),
        &["nothing RoomDeclined", "mail room-declined -> anna", "record: unchanged"],
    );
    check(
        "room declined, mail off",
        &world().with(|p| {
            p.mail.remove(&MailTemplate::RoomDeclined);
        }),
        None,
        &ex(A, B).edit(|o| o.room_response = RoomResponse::Declined),
        &["nothing RoomDeclined", "record: unchanged"],
    );
    let rec = booked(&w, &ex(A, B));
    let p = check(
        "room declined after a time change: reservation cancelled",
        &w,
        Some(&rec),
        &ex("2026-03-02T12:00", "2026-03-02T13:00")
            .edit(|o| o.room_response = RoomResponse::Declined)
            .modified(1),
        &["topdesk.cancel", "mail room-declined -> anna", "record: update complexity=1 cancelled"],
    );
    assert_eq!(p.record.record().unwrap().exchange_status, SyncStatus::Declined);
}

#[test]
fn rule_09_refusals() {
    let w = world();
    let rec = booked(&w, &ex(A, B));
    let ctx = w.ctx();
    let check_failure = |name: &str, rec: &BookingRecord, failed: FailedWrite, expected: &[&str]| {
        let p = plan_write_failure(rec, &failed, &ctx);
        assert_eq!(summary(&p), expected, "case {name:?}");
        let r = p.record.record().unwrap();
        assert_eq!(r.failed_count, rec.failed_count + 1, "{name}");
        assert_eq!(r.failed_processor, Some(failed.side), "{name}");
        assert_eq!(r.failed_at, Some(now()), "{name}");
        assert_eq!(r.status(failed.side), SyncStatus::Failed, "{name}: the record remembers what is owed");
        p
    };
    let transient = WriteFailure::Transient { retry_after: None };
    let refused = WriteFailure::Permanent { reason: "Room occupied".into() };
    let td = |kind, failure: &WriteFailure| FailedWrite {
        side: Side::Topdesk,
        kind,
        failure: failure.clone(),
        redrive: false,
    };
    let with_retries = |n| {
        let mut r = rec.clone();
        r.retry_count = n;
        r
    };
    // Transient failures: retried soon (a waiting retry holds the room's lane), never mailed.
    check_failure(
        "transient: retry in 10 s",
        &rec,
        td(WriteKind::Retime, &transient),
        &["retry topdesk in 10s", "record: update complexity=0"],
    );
    check_failure(
        "transient: back-off doubles",
        &with_retries(2),
        td(WriteKind::Create, &transient),
        &["retry topdesk in 40s", "record: update complexity=0"],
    );
    check_failure(
        "transient: back-off stops at a minute",
        &with_retries(5),
        td(WriteKind::Move, &transient),
        &["retry topdesk in 60s", "record: update complexity=0"],
    );
    check_failure(
        "transient with Retry-After longer than the back-off",
        &rec,
        td(WriteKind::Create, &WriteFailure::Transient { retry_after: Some(Duration::minutes(30)) }),
        &["retry topdesk in 1800s", "record: update complexity=0"],
    );
    for kind in [WriteKind::Create, WriteKind::Retime, WriteKind::Move, WriteKind::Change] {
        let p = check_failure(
            "transient too often: left failed for the sweep, nobody mailed",
            &with_retries(MAX_RETRIES),
            td(kind, &transient),
            &["nothing GivenUp", "record: update complexity=0"],
        );
        assert_eq!(p.record.record().unwrap().retry_count, 0, "the sweep's re-drive starts a new round");
    }
    // Permanent refusals: the mail fits the action.
    check_failure(
        "refused create: could not be made, with TOPdesk's reason",
        &rec,
        td(WriteKind::Create, &refused),
        &["nothing GivenUp", "mail booking-refused -> anna (Room occupied)", "record: update complexity=0"],
    );
    for kind in [WriteKind::Retime, WriteKind::Move, WriteKind::Change] {
        check_failure(
            &format!("refused {}: the change was not carried over", kind.as_str()),
            &rec,
            td(kind, &refused),
            &[
                "nothing GivenUp",
                "mail change-not-carried-over -> anna (Room occupied)",
                "record: update complexity=0",
            ],
        );
    }
    check_failure(
        "refused again by a sweep's re-drive: nobody is mailed twice",
        &rec,
        FailedWrite { redrive: true, ..td(WriteKind::Retime, &refused) },
        &["nothing GivenUp", "record: update complexity=0"],
    );
    // A cancellation is never answered with "pick another room": retried, then flagged for the operator.
    for failure in [&transient, &refused] {
        check_failure(
            "cancel fails: retried",
            &rec,
            td(WriteKind::Cancel, failure),
            &["retry topdesk in 10s", "record: update complexity=0"],
        );
        let p = check_failure(
            "cancel keeps failing: an operator alert, no mail",
            &with_retries(MAX_RETRIES),
            td(WriteKind::Cancel, failure),
            &["nothing GivenUp", "record: update complexity=0"],
        );
        assert!(p.timeline.iter().any(|t| t.kind == TimelineKind::Alert), "{:?}", p.timeline);
    }
    // The item was deleted meanwhile: nothing was refused, nobody is mailed; the deletion follows.
    for kind in [WriteKind::Retime, WriteKind::Move, WriteKind::Change] {
        check_failure(
            "the reservation is gone",
            &rec,
            td(kind, &WriteFailure::Gone { what: "reservation res-1".into() }),
            &["nothing GivenUp", "record: update complexity=0"],
        );
    }
    // The same on the Exchange side.
    let ex_side = FailedWrite {
        side: Side::Exchange,
        kind: WriteKind::Retime,
        failure: refused.clone(),
        redrive: false,
    };
    check_failure(
        "Outlook refused a retime",
        &rec,
        ex_side,
        &[
            "nothing GivenUp",
            "mail change-not-carried-over -> anna (Room occupied)",
            "record: update complexity=0",
        ],
    );
}

/// A record whose write to TOPdesk failed for good after `obs` changed the booking: the record holds the
/// intended state, TOPdesk's fingerprint what TOPdesk still holds, TOPdesk's status `Failed`.
fn owed(w: &World, rec: &BookingRecord, obs: &Observation) -> BookingRecord {
    let ctx = w.ctx();
    let p = plan(Some(rec), obs, &ctx);
    let mut next = p.record.record().cloned().expect("a record change");
    next.topdesk_fingerprint = rec.topdesk_fingerprint.clone();
    let failed = FailedWrite {
        side: Side::Topdesk,
        kind: p.writes().next().and_then(Action::write_kind).expect("a write"),
        failure: WriteFailure::Permanent { reason: "Room occupied".into() },
        redrive: false,
    };
    plan_write_failure(&next, &failed, &ctx).record.record().cloned().expect("failure recorded")
}

#[test]
fn rule_09_redrive_of_an_owed_side() {
    let w = world();
    let rec = booked(&w, &ex(A, B));
    let retimed = ex("2026-03-02T12:00", "2026-03-02T13:00").modified(1);
    let owes = owed(&w, &rec, &retimed);
    assert_eq!((owes.start, owes.topdesk_status), (at("2026-03-02T12:00"), SyncStatus::Failed));
    let swept = |o: Observation, counterpart: Option<Observation>| {
        o.edit(|o| {
            o.source = ObservationSource::Sweep;
            o.counterpart = counterpart.map(Box::new);
        })
    };
    let p = check(
        "the sweep saw TOPdesk still at the old time: reschedule again",
        &w,
        Some(&owes),
        &swept(retimed.clone(), Some(td(A, B))),
        &["topdesk.reschedule 03-02 12:00-03-02 13:00", "record: update complexity=1"],
    );
    assert_eq!(p.record.record().unwrap().topdesk_status, SyncStatus::Pending, "synced once the write lands");
    let p = check(
        "TOPdesk already holds it (someone fixed it by hand): marked synced, nothing written",
        &w,
        Some(&owes),
        &swept(retimed.clone(), Some(td("2026-03-02T12:00", "2026-03-02T13:00"))),
        &["nothing NoSyncedFieldChanged", "record: update complexity=1"],
    );
    let r = p.record.record().unwrap();
    assert_eq!(r.topdesk_status, SyncStatus::Synced);
    assert_eq!(
        plan(Some(r), &swept(retimed.clone(), Some(td("2026-03-02T12:00", "2026-03-02T13:00"))), &w.ctx())
            .nothing_reason(),
        Some(NothingReason::Echo),
        "in step: the next sweep changes nothing"
    );
    check(
        "a notification's echo without TOPdesk's state: wait for the sweep",
        &w,
        Some(&owes),
        &retimed,
        &["nothing Echo", "record: unchanged"],
    );
    // A create that never landed.
    let mut never = rec.clone();
    never.topdesk = TopdeskLink::default();
    never.topdesk_fingerprint = None;
    never.topdesk_status = SyncStatus::Failed;
    check(
        "a create that never landed is made",
        &w,
        Some(&never),
        &swept(ex(A, B), None),
        &[
            "topdesk.create loc-1 03-02 10:00-03-02 11:00 requester=anna with=bob subject=Some(\"Project review\")",
            "record: update complexity=0",
        ],
    );
    // A cancellation TOPdesk did not take.
    let cancelled = ex(A, B).cancelled().modified(1);
    let owes_cancel = owed(&w, &rec, &cancelled);
    assert!(owes_cancel.cancelled);
    check(
        "the reservation is still live: cancel it again",
        &w,
        Some(&owes_cancel),
        &swept(cancelled.clone(), Some(td(A, B))),
        &["topdesk.cancel", "record: update complexity=1 cancelled"],
    );
    let p = check(
        "the reservation was cancelled meanwhile: in step",
        &w,
        Some(&owes_cancel),
        &swept(cancelled, Some(td(A, B).cancelled())),
        &["nothing AlreadyCancelled", "record: update complexity=1 cancelled"],
    );
    assert_eq!(p.record.record().unwrap().topdesk_status, SyncStatus::Cancelled);
}

#[test]
fn rule_02_a_desk_reservation_gets_orbs_link_once_its_meeting_is_planned() {
    let w = world();
    let desk = td(A, B).edit(|o| o.ids.reservation_id = Some("res-9".into()));
    let p = check(
        "created in Outlook, then linked",
        &w,
        None,
        &desk,
        &[
            "exchange.create organizer:anna room-1@contoso.com 03-02 10:00-03-02 11:00 organizer=anna with=bob subject=Some(\"Project review\")",
            "topdesk.link",
            "record: create complexity=0",
        ],
    );
    assert!(
        matches!(&p.actions[1], Action::LinkReservation { reservation_id: Some(id), .. } if id == "res-9")
    );
    // Its link did not land (or it was onboarded without one): the next sight of it links it.
    let rec = booked(&w, &desk);
    check(
        "seen again without ORB's link: linked",
        &w,
        Some(&rec),
        &desk.clone().modified(1),
        &["topdesk.link", "record: watermark only"],
    );
    let linked = desk.clone().modified(1).edit(|o| o.orb_match_id = Some(rec.id));
    check(
        "seen with ORB's link: nothing",
        &w,
        Some(&rec),
        &linked,
        &["nothing Echo", "record: watermark only"],
    );
    check(
        "a cancelled one is not linked",
        &w,
        Some(&rec),
        &desk.cancelled().modified(1),
        &["exchange.cancel organizer:anna CancelMeeting", "record: update complexity=1 cancelled"],
    );
}

#[test]
fn rule_09_topdesk_dominant_releases_the_room_in_outlook() {
    for (mode, release) in [
        (Mode::Organizer, "exchange.cancel organizer:anna RemoveRoom"),
        (Mode::RoomOnly, "exchange.cancel room:room-1 DeleteRoomEvent"),
    ] {
        let w = world().with(|p| {
            p.topdesk_refusal = TopdeskRefusal::ReleaseRoom;
            p.mode = mode;
        });
        let ctx = w.ctx();
        let made = plan(None, &ex(A, B), &ctx).record.record().cloned().unwrap();
        let refused = FailedWrite {
            side: Side::Topdesk,
            kind: WriteKind::Create,
            failure: WriteFailure::Permanent { reason: "Room blocked".into() },
            redrive: false,
        };
        let p = plan_write_failure(&made, &refused, &ctx);
        assert_eq!(
            summary(&p),
            [release, "mail room-released -> anna (Room blocked)", "record: update complexity=0 cancelled"],
            "{mode:?}"
        );
        let r = p.record.record().unwrap();
        assert_eq!(
            r.topdesk_status,
            SyncStatus::Cancelled,
            "converged, not failed: nothing for a sweep to re-drive"
        );
        // A retime TOPdesk refuses keeps the old reservation: no release, the usual mail.
        let retime = FailedWrite { kind: WriteKind::Retime, ..refused.clone() };
        assert_eq!(
            summary(&plan_write_failure(&booked(&w, &ex(A, B)), &retime, &ctx)),
            [
                "nothing GivenUp",
                "mail change-not-carried-over -> anna (Room blocked)",
                "record: update complexity=0"
            ]
        );
    }
    // With the default (`mail`), the room stays booked in Outlook.
    let w = world();
    let made = plan(None, &ex(A, B), &w.ctx()).record.record().cloned().unwrap();
    let refused = FailedWrite {
        side: Side::Topdesk,
        kind: WriteKind::Create,
        failure: WriteFailure::Permanent { reason: "Room blocked".into() },
        redrive: false,
    };
    assert_eq!(
        summary(&plan_write_failure(&made, &refused, &w.ctx())),
        ["nothing GivenUp", "mail booking-refused -> anna (Room blocked)", "record: update complexity=0"]
    );
}

#[test]
fn write_kinds_name_what_a_person_changed() {
    let w = world();
    let rec = booked(&w, &ex(A, B));
    let cases: Vec<(Plan, Option<WriteKind>)> = vec![
        (
            plan(Some(&rec), &ex("2026-03-02T12:00", "2026-03-02T13:00").modified(1), &w.ctx()),
            Some(WriteKind::Retime),
        ),
        (
            plan(Some(&rec), &ex(A, B).edit(|o| o.lifecycle = Lifecycle::Cancelled).modified(1), &w.ctx()),
            Some(WriteKind::Cancel),
        ),
        (plan(None, &ex(A, B), &w.ctx()), Some(WriteKind::Create)),
    ];
    for (p, expected) in cases {
        let kinds: Vec<_> = p.writes().map(Action::write_kind).collect();
        assert_eq!(kinds.first().copied().flatten(), expected, "{:?}", p.actions);
    }
}

#[test]
fn rule_10_series_exceptions() {
    let w = world();
    let series = SeriesRef {
        series_id: SeriesId::from_uuid(Uuid::from_u128(77)),
        original_start: at("2026-03-03T10:00"),
    };
    let occ = ex("2026-03-03T10:00", "2026-03-03T11:00").edit(|o| {
        o.series = Some(series);
        o.appointment_type = AppointmentType::Occurrence;
    });
    let p = check(
        "an occurrence is its own booking",
        &w,
        None,
        &occ,
        &[
            "topdesk.create loc-1 03-03 10:00-03-03 11:00 requester=anna with=bob subject=Some(\"Project review\")",
            "record: create complexity=0",
        ],
    );
    let r = p.record.record().unwrap();
    assert_eq!((r.series_id, r.original_start), (Some(series.series_id), Some(series.original_start)));
    let rec = booked(&w, &occ);
    check(
        "exception: one occurrence moved in time",
        &w,
        Some(&rec),
        &occ.clone().times("2026-03-03T14:00", "2026-03-03T15:00").modified(1),
        &["topdesk.reschedule 03-03 14:00-03-03 15:00", "record: update complexity=1"],
    );
    check(
        "exception: one occurrence in another room (TOPdesk cannot move occurrences)",
        &w,
        Some(&rec),
        &occ.clone().in_room(2).modified(1),
        &[
            "topdesk.cancel",
            "topdesk.create loc-2 03-03 10:00-03-03 11:00 requester=anna with=bob subject=Some(\"Project review\")",
            "record: update complexity=1",
        ],
    );
    check(
        "exception: one occurrence cancelled",
        &w,
        Some(&rec),
        &occ.clone().cancelled().modified(1),
        &["topdesk.cancel", "record: update complexity=1 cancelled"],
    );
}

#[test]
fn rule_11_secretary_and_organizer_change() {
    let w = world();
    let by_secretary =
        ex(A, B).organizer("manager@contoso.com").edit(|o| o.booked_by = Some(mail("secretary@contoso.com")));
    let p = check(
        "a secretary books for a manager: the reservation is the manager's",
        &w,
        None,
        &by_secretary,
        &[
            "topdesk.create loc-1 03-02 10:00-03-02 11:00 requester=manager with=bob subject=Some(\"Project review\")",
            "record: create complexity=0",
        ],
    );
    let r = p.record.record().unwrap();
    assert_eq!(r.booked_by, Some(mail("secretary@contoso.com")));
    assert_eq!(r.organizer, mail("manager@contoso.com"));
    let rec = booked(&w, &ex(A, B));
    let p = check(
        "organizer change in Exchange changes the requester",
        &w,
        Some(&rec),
        &ex(A, B).organizer("carl@contoso.com").modified(1),
        &["topdesk.update requester=carl", "record: update complexity=1"],
    );
    let r = p.record.record().unwrap();
    assert_eq!(
        (r.organizer.as_str(), r.original_organizer.as_str()),
        ("carl@contoso.com", "anna@contoso.com")
    );
    check(
        "requester changed in TOPdesk: meeting moves to the new organizer's calendar",
        &w,
        Some(&rec),
        &td(A, B).organizer("carl@contoso.com").modified(1),
        &[
            "exchange.cancel organizer:anna CancelMeeting",
            "exchange.create organizer:carl room-1@contoso.com 03-02 10:00-03-02 11:00 organizer=carl with=bob subject=Some(\"Project review\")",
            "record: update complexity=1",
        ],
    );
    let fb = booked(&w, &ex(A, B).organizer("guest@partner.example"));
    check(
        "TOPdesk edit of a fallback reservation keeps the real organizer",
        &w,
        Some(&fb),
        &td("2026-03-02T12:00", "2026-03-02T13:00").organizer("desk@contoso.com").modified(1),
        &["exchange.update organizer:guest times=03-02 12:00-03-02 13:00", "record: update complexity=1"],
    );
}

#[test]
fn rule_12_mass_deletion_guard() {
    let sweep = |cancelling, approved| World {
        sweep: Some(SweepStats { room: room_id(1), future_bookings: 20, cancelling, approved }),
        ..world()
    };
    let w = sweep(15, false);
    let rec = booked(&w, &ex(A, B));
    let swept = ex(A, B)
        .edit(|o| o.lifecycle = Lifecycle::Deleted)
        .modified(1)
        .edit(|o| o.source = ObservationSource::Sweep);
    check(
        "a sweep deleting 15 of 20 bookings stops",
        &w,
        Some(&rec),
        &swept,
        &["alert mass-deletion 15/20", "nothing HeldByMassDeletionGuard", "record: unchanged"],
    );
    check(
        "a sweep deleting 3 of 20 goes ahead",
        &sweep(3, false),
        Some(&rec),
        &swept,
        &["topdesk.cancel", "record: update complexity=1 cancelled"],
    );
    check(
        "an approved mass deletion goes ahead",
        &sweep(15, true),
        Some(&rec),
        &swept,
        &["topdesk.cancel", "record: update complexity=1 cancelled"],
    );
    check(
        "a notification is not a sweep",
        &w,
        Some(&rec),
        &swept.clone().edit(|o| o.source = ObservationSource::Notification),
        &["topdesk.cancel", "record: update complexity=1 cancelled"],
    );
    let guard = MassDeletionGuard { max_share_percent: 30, min_bookings: 5 };
    assert!(!guard.trips(5, 5), "small rooms are not guarded");
    assert!(!guard.trips(3, 10) && guard.trips(4, 10), "the share is strict");
}

#[test]
fn rule_13_privacy() {
    let secret = "Layoffs in team X";
    let drop = world().with(|p| p.subject = SubjectPolicy::Drop);
    let first = ex(A, B).subject(Some(secret));
    let p = check(
        "drop: the subject never reaches TOPdesk or the record",
        &drop,
        None,
        &first,
        &[
            "topdesk.create loc-1 03-02 10:00-03-02 11:00 requester=anna with=bob subject=None",
            "record: create complexity=0",
        ],
    );
    assert!(!format!("{p:?}").contains("Layoffs"), "the subject leaked into the plan: {p:#?}");
    let rec = booked(&drop, &first);
    let p = check(
        "drop: a subject change alone is nothing",
        &drop,
        Some(&rec),
        &first.clone().subject(Some("Other secret")).modified(1),
        &["nothing Echo", "record: watermark only"],
    );
    assert!(!format!("{p:?}").contains("secret"));
    let p = check(
        "drop: TOPdesk-made reservation's text is not carried over",
        &drop,
        None,
        &td(A, B).subject(Some(secret)),
        &[
            "exchange.create organizer:anna room-1@contoso.com 03-02 10:00-03-02 11:00 organizer=anna with=bob subject=None",
            "record: create complexity=0",
        ],
    );
    assert!(!format!("{p:?}").contains("Layoffs"));
    let hide = world().with(|p| p.subject = SubjectPolicy::HideOnRoom { text: "Booked".into() });
    let p = check(
        "hide-on-room: TOPdesk gets the neutral text, the record keeps the subject",
        &hide,
        None,
        &first,
        &[
            "topdesk.create loc-1 03-02 10:00-03-02 11:00 requester=anna with=bob subject=Some(\"Booked\")",
            "record: create complexity=0",
        ],
    );
    assert_eq!(p.record.record().unwrap().subject.as_deref(), Some(secret));
    let rec = booked(&hide, &first);
    check(
        "hide-on-room: a subject change does not write TOPdesk",
        &hide,
        Some(&rec),
        &first.clone().subject(Some("New")).modified(1),
        &["record: update complexity=1"],
    );
    check(
        "hide-on-room: the neutral text in TOPdesk is an echo",
        &hide,
        Some(&rec),
        &echo_of(&plan(None, &first, &hide.ctx()), &rec),
        &["nothing Echo", "record: watermark only"],
    );
    check(
        "hide-on-room: a text typed in TOPdesk is not taken over",
        &hide,
        Some(&rec),
        &td(A, B).subject(Some("Typed in TOPdesk")).modified(1),
        &["nothing NoSyncedFieldChanged", "record: update complexity=0"],
    );
    let hide_ro = world().with(|p| {
        p.subject = SubjectPolicy::HideOnRoom { text: "Booked".into() };
        p.mode = Mode::RoomOnly;
    });
    check(
        "hide-on-room, room-only: the room's event gets the neutral text",
        &hide_ro,
        None,
        &td(A, B),
        &[
            "exchange.create room:room-1 room-1@contoso.com 03-02 10:00-03-02 11:00 organizer=anna with=bob subject=Some(\"Booked\")",
            "record: create complexity=0",
        ],
    );
}

#[test]
fn timeline_never_contains_subjects() {
    let w = world();
    let rec = booked(&w, &ex(A, B).subject(Some("Secret merger")));
    let p = plan(Some(&rec), &ex(A, B).subject(Some("Secret merger 2")).modified(1), &w.ctx());
    assert!(!p.timeline.is_empty());
    for e in &p.timeline {
        assert!(!e.detail.contains("Secret"), "{e:?}");
        assert_eq!(e.at, now());
    }
    assert!(p.timeline.iter().any(|e| e.detail.contains("subject")), "the timeline names the changed field");
}

/// A weekly series of 10 (Tuesdays 10:00 Amsterdam) expanded from Graph's pattern; each occurrence its own
/// booking keyed by (series, original start).
fn series_of_ten(w: &World) -> Vec<(Observation, BookingRecord)> {
    use orb_core::recurrence::{PatternedRecurrence, expand};
    let rec: PatternedRecurrence = serde_json::from_str(
        r#"{"pattern":{"type":"weekly","interval":1,"daysOfWeek":["tuesday"],"firstDayOfWeek":"monday"},
            "range":{"type":"numbered","startDate":"2026-03-03","numberOfOccurrences":10,"recurrenceTimeZone":"W. Europe Standard Time"}}"#,
    )
    .unwrap();
    let occ = expand(
        &rec,
        chrono::NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
        Duration::hours(1),
        "W. Europe Standard Time",
        now(),
        now() + w.policy.horizon,
    )
    .unwrap();
    assert_eq!(occ.len(), 10);
    let series_id = SeriesId::from_uuid(Uuid::from_u128(0x5e));
    occ.iter()
        .enumerate()
        .map(|(i, o)| {
            let obs = ex(A, B).edit(|x| {
                x.start = o.start;
                x.end = o.end;
                x.series = Some(SeriesRef { series_id, original_start: o.original_start });
                x.appointment_type = AppointmentType::Occurrence;
            });
            let mut ctx = w.ctx();
            ctx.new_ids.booking = BookingId::from_uuid(Uuid::from_u128(0xa00 + i as u128));
            let p = plan(None, &obs, &ctx);
            let mut r = p.record.record().cloned().unwrap();
            r.topdesk.reservation_id = Some(format!("res-{i}"));
            (obs, r)
        })
        .collect()
}

#[test]
fn rule_10_series_of_ten_with_exceptions() {
    let w = world();
    let series = series_of_ten(&w);
    // The DST change of 29 March: 10:00 local is 09:00 UTC before, 08:00 UTC after.
    assert_eq!(series[3].0.start, at("2026-03-24T09:00"));
    assert_eq!(series[4].0.start, at("2026-03-31T08:00"));
    let mut expected: Vec<Vec<String>> = Vec::new();
    let mut got: Vec<Vec<String>> = Vec::new();
    for (i, (obs, rec)) in series.iter().enumerate() {
        let (edited, want): (Observation, Vec<String>) = match i {
            2 | 5 | 7 => (
                obs.clone().in_room(2).modified(1),
                vec![
                    "topdesk.cancel".into(),
                    format!(
                        "topdesk.create loc-2 {}-{} requester=anna with=bob subject=Some(\"Project review\")",
                        hm(obs.start),
                        hm(obs.end)
                    ),
                    "record: update complexity=1".into(),
                ],
            ),
            4 => (
                obs.clone().cancelled().modified(1),
                vec!["topdesk.cancel".into(), "record: update complexity=1 cancelled".into()],
            ),
            // Untouched occurrences: an echo; only the Exchange watermark moves (complexity stays 0).
            _ => (obs.clone().modified(1), vec!["nothing Echo".into(), "record: update complexity=0".into()]),
        };
        got.push(summary(&plan(Some(rec), &edited, &w.ctx())));
        expected.push(want);
    }
    assert_eq!(got, expected, "a series of 10 with 3 occurrences in another room and 1 cancelled");
}

#[test]
fn rule_10_whole_series_edit_replans_each_occurrence() {
    let w = world();
    for (obs, rec) in series_of_ten(&w) {
        let later = obs.clone().edit(|o| {
            o.start += Duration::hours(2);
            o.end += Duration::hours(2);
        });
        let name = format!("series moved 2 h later: occurrence {}", hm(obs.start));
        check(
            &name,
            &w,
            Some(&rec),
            &later.modified(1),
            &[
                &format!(
                    "topdesk.reschedule {}-{}",
                    hm(obs.start + Duration::hours(2)),
                    hm(obs.end + Duration::hours(2))
                ),
                "record: update complexity=1",
            ],
        );
    }
}
