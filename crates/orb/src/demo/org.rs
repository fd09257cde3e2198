//! The demo's organisation: two buildings with twelve rooms (room mailboxes in Exchange, locations in
//! TOPdesk, mapped in ORB), forty people (Outlook users with TOPdesk person cards), a secretary who books
//! for the two directors, and the bookings that exist before ORB starts — Outlook meetings (two weekly
//! series among them), desk reservations, and two meetings already on both sides, which ORB's onboarding
//! sweep pairs instead of copying.
//!
//! The Exchange emulators make the mailbox owner the organizer of what is created in a mailbox, and the
//! TOPdesk emulator has no "reserved for someone else", so the secretary books as an Outlook delegate
//! does: in the director's own calendar (the director is the organizer).

use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use orb_core::{RoomMailbox, TenantId, TopdeskLocationId};
use orb_emulators::topdesk::{DoubleBooking, TopdeskEmulator};
use orb_store::{NewRoom, Store};
use orb_topdesk::{PersonId, TopdeskClient};

use super::outlook::{Meeting, Outlook};
use super::slots::{Rng, free_starts, working_days};

/// The organisation's zone (the demo tenant's `[sync] time_zone`).
pub(crate) const ZONE: Tz = chrono_tz::Europe::Amsterdam;
/// The organisation's mail domain.
pub(crate) const DOMAIN: &str = "orb-demo.example";

/// Building, room number, seats.
const ROOMS: &[(&str, &str, i32)] = &[
    ("Amsterdam", "0.12", 8),
    ("Amsterdam", "0.14", 4),
    ("Amsterdam", "1.03", 6),
    ("Amsterdam", "1.10", 12),
    ("Amsterdam", "2.01", 20),
    ("Amsterdam", "2.07", 6),
    ("Utrecht", "0.05", 4),
    ("Utrecht", "0.12", 8),
    ("Utrecht", "1.02", 6),
    ("Utrecht", "1.15", 10),
    ("Utrecht", "2.03", 16),
    ("Utrecht", "2.10", 4),
];

/// First names and surnames; person `i` is `FIRST[i]` `LAST[i]`.
const FIRST: &[&str] = &[
    "Anna",
    "Bram",
    "Carla",
    "Daan",
    "Eva",
    "Floris",
    "Gerda",
    "Hugo",
    "Iris",
    "Jan",
    "Kim",
    "Lars",
    "Maud",
    "Niels",
    "Olga",
    "Pieter",
    "Quinten",
    "Rosa",
    "Sem",
    "Tess",
    "Ugo",
    "Vera",
    "Wouter",
    "Xandra",
    "Youssef",
    "Zoë",
    "Anouk",
    "Bas",
    "Charlotte",
    "Dirk",
    "Esther",
    "Femke",
    "Gijs",
    "Hanna",
    "Ilse",
    "Joost",
    "Karin",
    "Luuk",
    "Mila",
    "Noor",
];
const LAST: &[(&str, &str)] = &[
    ("de", "Vries"),
    ("", "Jansen"),
    ("", "Peters"),
    ("", "Smit"),
    ("de", "Boer"),
    ("", "Mulder"),
    ("", "Visser"),
    ("van", "Dijk"),
    ("", "Bos"),
    ("", "Meijer"),
    ("de", "Graaf"),
    ("van", "Leeuwen"),
    ("", "Dekker"),
    ("", "Brouwer"),
    ("de", "Wit"),
    ("", "Dijkstra"),
    ("", "Smits"),
    ("van den", "Berg"),
    ("", "Hendriks"),
    ("van der", "Linden"),
    ("", "Kok"),
    ("", "Vermeulen"),
    ("", "Kuipers"),
    ("", "Schouten"),
    ("El", "Amrani"),
    ("", "Willems"),
    ("van", "Wijk"),
    ("", "Koster"),
    ("", "Prins"),
    ("", "Huisman"),
    ("", "Postma"),
    ("", "Kramer"),
    ("van", "Beek"),
    ("", "Vos"),
    ("", "Peeters"),
    ("de", "Jong"),
    ("", "Hoekstra"),
    ("van der", "Meer"),
    ("", "Sanders"),
    ("", "Verhoeven"),
];
/// The secretary (person index) and the directors she books for.
const SECRETARY: usize = 12;
const DIRECTORS: [usize; 2] = [9, 35];
/// What meetings are called.
pub(crate) const SUBJECTS: &[&str] = &[
    "Sprint planning",
    "1:1",
    "Customer call",
    "Budget review",
    "Interview",
    "Design review",
    "Team lunch",
    "Retrospective",
    "Onboarding",
    "Project kick-off",
    "Supplier meeting",
    "Workshop",
];

/// A mapped room.
#[derive(Debug, Clone)]
pub(crate) struct DemoRoom {
    /// The room mailbox.
    pub mailbox: String,
    /// "Utrecht 0.12 (8)".
    pub name: String,
    /// The TOPdesk location.
    pub location: TopdeskLocationId,
}

/// A person who books.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// Their address (Outlook mailbox, TOPdesk person card).
    pub email: String,
    /// What the terminal shows ("anna.devries").
    pub short: String,
    /// Their TOPdesk person card.
    pub card: PersonId,
}

/// The organisation as both emulators hold it.
#[derive(Debug, Clone)]
pub(crate) struct Org {
    /// The rooms, Amsterdam's first.
    pub rooms: Vec<DemoRoom>,
    /// The people.
    pub people: Vec<Person>,
}

impl Org {
    /// The secretary.
    pub(crate) fn secretary(&self) -> &Person {
        &self.people[SECRETARY]
    }

    /// The people she books for.
    pub(crate) fn directors(&self) -> &'static [usize] {
        &DIRECTORS
    }
}

/// A booking as the simulation knows it (the room copy and the reservation are found by room and time).
#[derive(Debug, Clone)]
pub(crate) struct Booking {
    /// Room index.
    pub room: usize,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// End (UTC).
    pub end: DateTime<Utc>,
    /// The organizer (person index).
    pub organizer: usize,
}

/// What existed before ORB started, for the onboarding check.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seeded {
    /// Single meetings made in Outlook.
    pub outlook: Vec<Booking>,
    /// The first occurrences of the weekly series made in Outlook.
    pub series: Vec<Booking>,
    /// Reservations made at the desk.
    pub topdesk: Vec<Booking>,
    /// Meetings on both sides already.
    pub both: Vec<Booking>,
}

/// Adds the organisation to both emulators (rooms with their building and seats, people, the desk
/// operator's account) and maps the rooms in ORB's tenant.
pub(crate) async fn build(
    outlook: &Outlook,
    td_em: &TopdeskEmulator,
    store: &dyn Store,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<Org> {
    let mut people = Vec::with_capacity(FIRST.len());
    for (first, (prefix, last)) in FIRST.iter().zip(LAST) {
        let surname = if prefix.is_empty() { (*last).to_owned() } else { format!("{prefix} {last}") };
        let short = format!("{}.{}{}", first, prefix.replace(' ', ""), last).to_lowercase().replace('ë', "e");
        let email = format!("{short}@{DOMAIN}");
        outlook.add_person(&email, &format!("{first} {surname}"));
        let card = td_em.add_person(first, &surname, Some(&email));
        people.push(Person { email, short, card });
    }
    let mut rooms = Vec::with_capacity(ROOMS.len());
    for (building, number, seats) in ROOMS {
        let name = format!("{building} {number} ({seats})");
        let mailbox = format!("{}-{number}@rooms.{DOMAIN}", building.to_lowercase());
        let floor = number.split('.').next().and_then(|f| f.parse().ok());
        outlook.add_room(&mailbox, &name, building, floor, *seats);
        let location = td_em.add_room(&name, 0, DoubleBooking::Refuse);
        td_em.with_state(|state| {
            if let Some(room) = state.rooms.iter_mut().find(|r| r.id == location) {
                room.capacity = Some(*seats);
                room.branch = Some(orb_topdesk::wire::IdName {
                    id: Some(uuid::Uuid::new_v4()),
                    name: Some((*building).to_owned()),
                });
            }
        });
        let new = NewRoom {
            mailbox: RoomMailbox::parse(&mailbox)?,
            topdesk_location_id: location.clone(),
            display_name: Some(name.clone()),
        };
        store.add_room(tenant, &new, now).await?;
        rooms.push(DemoRoom { mailbox, name, location });
    }
    let org = Org { rooms, people };
    outlook.organise(&org);
    Ok(org)
}

/// How the simulation acts on both sides: Outlook through the Exchange emulator's calendars (as the
/// person would in Outlook), TOPdesk as the desk operator over TOPdesk's API.
#[derive(Clone)]
pub(crate) struct Sides {
    /// The Exchange emulator (Graph or EWS).
    pub outlook: Outlook,
    /// The TOPdesk emulator (read only: what the desk and ORB wrote).
    pub td_em: TopdeskEmulator,
    /// The desk operator's TOPdesk API client.
    pub desk: Arc<TopdeskClient>,
    /// The organisation.
    pub org: Arc<Org>,
}

impl Sides {
    /// The room's occupied intervals between `from` and `to` on either side (Outlook's room calendar with
    /// series expanded, and TOPdesk's live reservations of its location).
    pub(crate) fn busy(
        &self,
        room: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let r = &self.org.rooms[room];
        let mut out: Vec<_> = self.room_calendar(room, from, to);
        for res in self.live_reservations(&r.location) {
            if res.1 > from && res.0 < to {
                out.push((res.0, res.1));
            }
        }
        out
    }

    /// The live meetings in the room's Outlook calendar between `from` and `to`.
    pub(crate) fn room_calendar(
        &self,
        room: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.outlook.room_calendar(&self.org.rooms[room].mailbox, from, to)
    }

    /// The live reservations of a location: (start, end, id).
    pub(crate) fn live_reservations(
        &self,
        location: &TopdeskLocationId,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>, orb_topdesk::ReservationId)> {
        self.td_em
            .reservations()
            .into_iter()
            .filter(|r| r.status.is_none_or(orb_topdesk::ReservationStatus::is_active))
            .filter(|r| {
                r.reserved_facilities
                    .iter()
                    .flatten()
                    .any(|f| f.location.as_ref().and_then(|l| l.id.as_ref()) == Some(location))
            })
            .filter_map(|r| Some((r.planned_start_date?, r.planned_end_date?, r.id?)))
            .collect()
    }

    /// The live reservation of `room` at exactly `start`–`end`.
    pub(crate) fn reservation_at(
        &self,
        room: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<orb_topdesk::ReservationId> {
        self.live_reservations(&self.org.rooms[room].location)
            .into_iter()
            .find(|(s, e, _)| *s == start && *e == end)
            .map(|(_, _, id)| id)
    }

    /// Whether the room's Outlook calendar shows a live meeting at exactly `start`–`end`.
    pub(crate) fn room_has(&self, room: usize, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.room_calendar(room, start - Duration::minutes(1), end + Duration::minutes(1))
            .iter()
            .any(|(s, e)| *s == start && *e == end)
    }

    /// The id of `organizer`'s own single meeting in `room` at `start`–`end`.
    pub(crate) fn event_at(
        &self,
        organizer: usize,
        room: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<String> {
        self.outlook.event_at(&self.org.people[organizer].email, &self.org.rooms[room].mailbox, start, end)
    }

    /// Books `room` in `organizer`'s Outlook calendar (the room invited as a resource, colleagues as
    /// attendees); `weekly`: a weekly series of that many meetings.
    pub(crate) async fn book_in_outlook(
        &self,
        b: &Booking,
        subject: &str,
        colleagues: &[usize],
        weekly: Option<u32>,
    ) -> Result<()> {
        let r = &self.org.rooms[b.room];
        let meeting = Meeting {
            organizer: &self.org.people[b.organizer].email,
            room: &r.mailbox,
            room_name: &r.name,
            attendees: colleagues
                .iter()
                .filter(|c| **c != b.organizer)
                .map(|c| self.org.people[*c].email.as_str())
                .collect(),
            subject,
            start: b.start,
            end: b.end,
            weekly,
        };
        self.outlook.book(&meeting).await
    }

    /// New times for `organizer`'s meeting `id` in Outlook.
    pub(crate) async fn move_in_outlook(
        &self,
        organizer: usize,
        id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<()> {
        self.outlook.move_meeting(&self.org.people[organizer].email, id, start, end).await
    }

    /// "Cancel meeting" on `organizer`'s meeting `id` in Outlook.
    pub(crate) async fn cancel_in_outlook(&self, organizer: usize, id: &str) -> Result<()> {
        self.outlook.cancel(&self.org.people[organizer].email, id).await
    }

    /// Reserves `room` at the desk for `person`.
    pub(crate) async fn book_at_desk(
        &self,
        person: usize,
        room: usize,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        subject: &str,
    ) -> Result<()> {
        let mut dto = orb_topdesk::wire::CreateReservationDto::new(
            self.org.people[person].card,
            &self.org.rooms[room].location,
            start,
            end,
        );
        dto.brief_description = Some(subject.to_owned());
        self.desk.create_reservation(&dto).await.context("the desk's reservation failed")?;
        Ok(())
    }
}

/// A free start for a meeting of `length` in `room` on the next `days` working days (after `after`).
pub(crate) fn pick_start(
    sides: &Sides,
    rng: &mut Rng,
    room: usize,
    length: Duration,
    now: DateTime<Utc>,
    days: usize,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let windows = working_days(now, ZONE, days);
    let (from, to) = (windows.first()?.0, windows.last()?.1);
    let busy = sides.busy(room, from, to);
    rng.pick(&free_starts(&windows, length, &busy, after)).copied()
}

/// Puts the bookings that exist before ORB starts into both emulators.
pub(crate) async fn seed(sides: &Sides, rng: &mut Rng, now: DateTime<Utc>) -> Result<Seeded> {
    let org = &sides.org;
    let mut seeded = Seeded::default();
    // Two weekly series, from next week on: the Amsterdam directors' meeting on Mondays and the Utrecht
    // team meeting on Thursdays (booked by the secretary in the director's calendar).
    let next_week = {
        let today = now.with_timezone(&ZONE).date_naive();
        let to_monday = 7 - i64::from(today.weekday().num_days_from_monday());
        today + Duration::days(to_monday)
    };
    for (director, room, weekday_offset, hour, subject) in
        [(DIRECTORS[0], 4, 0, 9, "Management team"), (DIRECTORS[1], 10, 3, 14, "Utrecht team meeting")]
    {
        let day = next_week + Duration::days(weekday_offset);
        let local = day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN));
        let start = ZONE
            .from_local_datetime(&local)
            .earliest()
            .context("the series' first meeting has no local time")?
            .with_timezone(&Utc);
        let end = start + Duration::hours(1);
        let team: Vec<usize> = (0..6).map(|_| rng.below(org.people.len())).collect();
        let first = Booking { room, start, end, organizer: director };
        sides.book_in_outlook(&first, subject, &team, Some(10)).await?;
        seeded.series.push(first);
    }
    let after = now + Duration::hours(1);
    // Meetings made in Outlook, some by the secretary for a director.
    for i in 0..12 {
        let organizer = if i % 4 == 0 { DIRECTORS[i / 4 % 2] } else { rng.below(org.people.len()) };
        let Some(b) = free_booking(sides, rng, organizer, now, after) else { continue };
        let colleagues: Vec<usize> = (0..1 + rng.below(3)).map(|_| rng.below(org.people.len())).collect();
        let subject = SUBJECTS[rng.below(SUBJECTS.len())];
        sides.book_in_outlook(&b, subject, &colleagues, None).await?;
        seeded.outlook.push(b);
    }
    // Reservations made at the TOPdesk desk.
    for _ in 0..8 {
        let person = rng.below(org.people.len());
        let Some(b) = free_booking(sides, rng, person, now, after) else { continue };
        sides.book_at_desk(person, b.room, b.start, b.end, SUBJECTS[rng.below(SUBJECTS.len())]).await?;
        seeded.topdesk.push(b);
    }
    // Meetings someone put on both sides by hand before ORB: ORB pairs them.
    for _ in 0..2 {
        let person = rng.below(org.people.len());
        let Some(b) = free_booking(sides, rng, person, now, after) else { continue };
        let subject = SUBJECTS[rng.below(SUBJECTS.len())];
        sides.book_in_outlook(&b, subject, &[], None).await?;
        sides.book_at_desk(person, b.room, b.start, b.end, subject).await?;
        seeded.both.push(b);
    }
    Ok(seeded)
}

/// A free booking of a random room and length for `organizer` in the next three working days.
pub(crate) fn free_booking(
    sides: &Sides,
    rng: &mut Rng,
    organizer: usize,
    now: DateTime<Utc>,
    after: DateTime<Utc>,
) -> Option<Booking> {
    let room = rng.below(sides.org.rooms.len());
    let length = Duration::minutes([30, 60, 60, 90][rng.below(4)]);
    let start = pick_start(sides, rng, room, length, now, 3, after)?;
    Some(Booking { room, start, end: start + length, organizer })
}
