//! The simulated customer site of `orb bench`: the Graph and TOPdesk emulators in this process, the
//! people who book, tenants configured against the emulators (via [`crate::demo`]'s shared setup), room
//! mailboxes with their TOPdesk locations, bookings made as a person would, and ORB's requests to both
//! emulators counted from their request logs.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use orb_core::{Clock, RoomMailbox, TopdeskLocationId};
use orb_crypto::MasterKey;
use orb_emulators::graph::{GraphEmulator, RoomInfo};
use orb_emulators::topdesk::{DoubleBooking, TopdeskEmulator};
use orb_graph::model::{Attendee, DateTimeTimeZone, Event, Location};
use orb_store::{NewRoom, Store, Tenant};
use orb_topdesk::PersonId;

use crate::demo::{ENTRA_TENANT, configure_tenant, register_orb};

/// The people who book (in both emulators: Outlook users with TOPdesk person cards).
const PEOPLE: &[(&str, &str, &str)] = &[
    ("anna@bench.example", "Anna", "de Vries"),
    ("bob@bench.example", "Bob", "Jansen"),
    ("carla@bench.example", "Carla", "Peters"),
    ("dirk@bench.example", "Dirk", "Smit"),
];

/// The people who book in the bulk tenant: others than the live tenant's, so the live phase's reads of an
/// organizer's calendar do not wade through the backfill's meetings (the emulator scans a calendar where
/// Graph uses an index).
const BULK_PEOPLE: &[(&str, &str, &str)] = &[
    ("erik@bench.example", "Erik", "Bakker"),
    ("fleur@bench.example", "Fleur", "Visser"),
    ("gert@bench.example", "Gert", "Mulder"),
    ("hanna@bench.example", "Hanna", "Bos"),
];

/// Length of every booking the bench makes.
pub(crate) const SLOT_MINUTES: i64 = 15;

/// One mapped room.
#[derive(Debug, Clone)]
pub(crate) struct BenchRoom {
    /// The room mailbox.
    pub mailbox: RoomMailbox,
    /// Its TOPdesk location.
    pub location: TopdeskLocationId,
}

/// A tenant the bench configured, with its rooms.
#[derive(Debug, Clone)]
pub(crate) struct BenchTenant {
    /// The tenant.
    pub tenant: Tenant,
    /// Its rooms, in the order they were added.
    pub rooms: Vec<BenchRoom>,
}

/// Where the request logs stood.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    graph: usize,
    topdesk: usize,
}

/// ORB's requests between two marks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    /// Requests made for a change (reads and writes), background work excluded.
    pub per_change: usize,
    /// Of those, writes (Graph event and TOPdesk reservation writes).
    pub writes: usize,
    /// Background work: subscription upkeep and TOPdesk window lists (polls and sweeps).
    pub background: usize,
    /// Requests the emulators refused with `429` (Graph's and TOPdesk's limits).
    pub throttled: usize,
    /// The requests made for a change by shape (method and path, ids replaced).
    pub shapes: std::collections::BTreeMap<String, usize>,
}

/// A request's shape: its method and path with mailboxes and ids replaced.
fn shape(side: &str, method: &str, path: &str) -> String {
    let path: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|seg| {
            if seg.contains('@') {
                "{mailbox}"
            } else if seg.len() >= 16 || seg.chars().all(|c| c.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect();
    format!("{side} {method} /{}", path.join("/"))
}

/// The emulators and the people.
pub(crate) struct Site {
    /// The Graph emulator's state.
    pub graph_em: GraphEmulator,
    /// The TOPdesk emulator's state.
    pub td_em: TopdeskEmulator,
    /// The served Graph emulator (kept: dropping it stops the server).
    pub graph: orb_emulators::graph::Served,
    /// The served TOPdesk emulator.
    pub topdesk: orb_emulators::topdesk::ServedEmulator,
    people: Vec<PersonId>,
}

impl Site {
    /// Starts both emulators with ORB's app and account and the people registered.
    pub(crate) async fn start(clock: Arc<dyn Clock>) -> Result<Self> {
        let graph_em = GraphEmulator::new(clock.clone());
        let td_em = TopdeskEmulator::new(clock);
        register_orb(&graph_em, &td_em);
        let mut people = Vec::new();
        for (address, first, last) in PEOPLE {
            graph_em.add_user(ENTRA_TENANT, address, &format!("{first} {last}"));
            people.push(td_em.add_person(first, last, Some(address)));
        }
        for (address, first, last) in BULK_PEOPLE {
            graph_em.add_user(ENTRA_TENANT, address, &format!("{first} {last}"));
            td_em.add_person(first, last, Some(address));
        }
        let graph =
            orb_emulators::graph::serve(graph_em.clone()).await.context("starting the Graph emulator")?;
        let topdesk = td_em.clone().serve().await.context("starting the TOPdesk emulator")?;
        Ok(Self { graph_em, td_em, graph, topdesk, people })
    }

    /// The organizer of booking number `i` (round robin).
    pub(crate) fn organizer(&self, i: usize) -> &'static str {
        PEOPLE[i % PEOPLE.len()].0
    }

    /// The organizer of the bulk tenant's booking number `i` (round robin).
    pub(crate) fn bulk_organizer(&self, i: usize) -> &'static str {
        BULK_PEOPLE[i % BULK_PEOPLE.len()].0
    }

    /// The TOPdesk person card of booking number `i`'s organizer.
    pub(crate) fn person(&self, i: usize) -> PersonId {
        self.people[i % self.people.len()]
    }

    /// Creates tenant `name` (settings and secrets as a customer would set them) with `rooms` room
    /// mailboxes, each mapped to a TOPdesk location of its own.
    pub(crate) async fn add_tenant(
        &self,
        store: &dyn Store,
        key: &MasterKey,
        name: &str,
        rooms: usize,
        now: DateTime<Utc>,
    ) -> Result<BenchTenant> {
        let tenant = configure_tenant(store, key, name, &self.topdesk.base_url, now).await?;
        let mut out = Vec::with_capacity(rooms);
        for i in 0..rooms {
            let address = format!("room-{i}@{name}.rooms.bench.example");
            let display = format!("{name} room {i}");
            self.graph_em.add_room(ENTRA_TENANT, &address, &display, RoomInfo::default());
            let location = self.td_em.add_room(&display, 0, DoubleBooking::Refuse);
            let mailbox = RoomMailbox::parse(&address)?;
            let new = NewRoom {
                mailbox: mailbox.clone(),
                topdesk_location_id: location.clone(),
                display_name: Some(display),
            };
            store.add_room(tenant.id, &new, now).await?;
            out.push(BenchRoom { mailbox, location });
        }
        Ok(BenchTenant { tenant, rooms: out })
    }

    /// Books `room` in Outlook as `organizer` for `start` (one slot), as a person would in Outlook (the room
    /// invited as a resource attendee; the room's calendar attendant answers).
    pub(crate) fn book_in_outlook(
        &self,
        organizer: &str,
        room: &BenchRoom,
        start: DateTime<Utc>,
        subject: &str,
    ) -> Result<()> {
        let end = start + Duration::minutes(SLOT_MINUTES);
        let at = |t: DateTime<Utc>| DateTimeTimeZone {
            date_time: t.format("%Y-%m-%dT%H:%M:%S").to_string(),
            time_zone: Some("UTC".to_owned()),
        };
        let room_name = room.mailbox.as_str();
        let input = Event {
            subject: Some(subject.to_owned()),
            start: Some(at(start)),
            end: Some(at(end)),
            location: Some(Location::room(room_name, room_name)),
            attendees: Some(vec![Attendee::resource(room_name, None)]),
            ..Event::default()
        };
        self.graph_em
            .create_in(organizer, &input, &orb_emulators::graph::calendar::View::default())
            .map_err(|e| anyhow!("booking {room_name} in the Graph emulator failed: {e:?}"))?;
        Ok(())
    }

    /// Reserves `room` at the TOPdesk desk for person `who` at `start` (one slot); its reservation id.
    pub(crate) fn reserve_in_topdesk(
        &self,
        who: PersonId,
        room: &BenchRoom,
        start: DateTime<Utc>,
        subject: &str,
    ) -> Result<String> {
        let mut dto = orb_topdesk::wire::CreateReservationDto::new(
            who,
            &room.location,
            start,
            start + Duration::minutes(SLOT_MINUTES),
        );
        dto.brief_description = Some(subject.to_owned());
        let now = Utc::now();
        let id = self
            .td_em
            .with_state(|state| state.create(dto, now))
            .map_err(|e| anyhow!("reserving in the TOPdesk emulator failed: {e:?}"))?;
        Ok(id.to_string())
    }

    /// Start times of the live (not cancelled) TOPdesk reservations.
    pub(crate) fn reservation_starts(&self) -> std::collections::BTreeSet<DateTime<Utc>> {
        self.td_em
            .reservations()
            .into_iter()
            .filter(|r| r.status.is_none_or(orb_topdesk::ReservationStatus::is_active))
            .filter_map(|r| r.planned_start_date)
            .collect()
    }

    /// Whether `organizer`'s Outlook calendar holds a meeting starting at `start`.
    pub(crate) fn has_meeting_at(&self, organizer: &str, start: DateTime<Utc>) -> bool {
        let wanted = start.format("%Y-%m-%dT%H:%M:%S").to_string();
        self.graph_em.events(organizer).is_ok_and(|events| {
            events.iter().any(|e| {
                e.is_cancelled != Some(true)
                    && e.start.as_ref().is_some_and(|s| s.date_time.starts_with(&wanted))
            })
        })
    }

    /// Where the request logs stand now.
    pub(crate) fn mark(&self) -> Mark {
        Mark { graph: self.graph_em.requests().len(), topdesk: self.td_em.request_log().len() }
    }

    /// ORB's requests to both emulators between two marks (TOPdesk: those made with ORB's login only).
    pub(crate) fn calls(&self, from: Mark, to: Mark) -> Calls {
        let mut calls = Calls::default();
        let graph = self.graph_em.requests();
        for r in graph.get(from.graph..to.graph).unwrap_or_default() {
            // The token endpoint is not an API call of a change; subscriptions are upkeep.
            if !r.path.starts_with("/v1.0/") {
                continue;
            }
            if r.path.starts_with("/v1.0/subscriptions") {
                calls.background += 1;
                continue;
            }
            if r.fault == Some(429) {
                calls.throttled += 1;
            }
            calls.per_change += 1;
            *calls.shapes.entry(shape("Graph", &r.method, &r.path)).or_default() += 1;
            if r.method != "GET" && r.path.to_ascii_lowercase().contains("/events") {
                calls.writes += 1;
            }
        }
        let td = self.td_em.request_log();
        for r in td.get(from.topdesk..to.topdesk).unwrap_or_default() {
            if r.login.as_deref() != Some(crate::demo::TOPDESK_LOGIN) {
                continue;
            }
            let query = r.query.as_deref().unwrap_or_default();
            let window_list = r.method == "GET"
                && r.path.trim_end_matches('/') == "/tas/api/reservations"
                && query.contains("plannedEndDate");
            if window_list {
                calls.background += 1;
                continue;
            }
            if r.fault == Some(429) {
                calls.throttled += 1;
            }
            calls.per_change += 1;
            *calls.shapes.entry(shape("TOPdesk", &r.method, &r.path)).or_default() += 1;
            if r.method != "GET" && r.path.contains("reservations") {
                calls.writes += 1;
            }
        }
        calls
    }
}

/// Unique, non-overlapping booking slots: slot `k` starts `k` × [`SLOT_MINUTES`] after the base, 16 hours
/// a day (the next day's slots start 24 h after the base), so no two bookings of one generator overlap.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    base: DateTime<Utc>,
    next: i64,
}

impl Slots {
    /// Slots from 06:00 UTC `days` days after `now`'s date.
    pub(crate) fn from_day(now: DateTime<Utc>, days: i64) -> Self {
        let day = (now + Duration::days(days)).date_naive();
        let base = day.and_time(NaiveTime::from_hms_opt(6, 0, 0).unwrap_or(NaiveTime::MIN)).and_utc();
        Self { base, next: 0 }
    }

    /// Slots from the whole hour before `now` + 2 h (so at least 1 h ahead): inside TOPdesk's near poll window (2 days ahead)
    /// and before [`Slots::from_day`]`(now, 3)` for up to 64 slots.
    pub(crate) fn soon(now: DateTime<Utc>) -> Self {
        let later = (now + Duration::hours(2)).timestamp();
        let base = DateTime::from_timestamp(later - later.rem_euclid(3600), 0).unwrap_or(now);
        Self { base, next: 0 }
    }

    /// The next free slot's start.
    pub(crate) fn take(&mut self) -> DateTime<Utc> {
        let per_day = 16 * 60 / SLOT_MINUTES;
        let k = self.next;
        self.next += 1;
        self.base + Duration::days(k / per_day) + Duration::minutes((k % per_day) * SLOT_MINUTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_hide_mailboxes_and_ids() {
        assert_eq!(
            shape("Graph", "GET", "/v1.0/users/anna@x.example/events/AAMkAGI2THVSAAA="),
            "Graph GET /v1.0/users/{mailbox}/events/{id}"
        );
        assert_eq!(
            shape("TOPdesk", "PATCH", "/tas/api/reservations/0b5e1c9a-7d7e-4f4e-9a51-000000000001"),
            "TOPdesk PATCH /tas/api/reservations/{id}"
        );
        assert_eq!(shape("TOPdesk", "GET", "/tas/api/persons"), "TOPdesk GET /tas/api/persons");
    }

    #[test]
    fn slots_do_not_overlap_and_stay_in_the_day() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:34:00Z").unwrap().with_timezone(&Utc);
        let mut slots = Slots::from_day(now, 1);
        let taken: Vec<DateTime<Utc>> = (0..200).map(|_| slots.take()).collect();
        assert_eq!(taken[0].to_rfc3339(), "2026-03-02T06:00:00+00:00");
        assert_eq!(taken[63].to_rfc3339(), "2026-03-02T21:45:00+00:00");
        assert_eq!(taken[64].to_rfc3339(), "2026-03-03T06:00:00+00:00");
        for pair in taken.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::minutes(SLOT_MINUTES), "{pair:?}");
        }
        let mut soon = Slots::soon(now);
        assert_eq!(soon.take().to_rfc3339(), "2026-03-01T14:00:00+00:00");
        assert_eq!(soon.take().to_rfc3339(), "2026-03-01T14:15:00+00:00");
    }
}
