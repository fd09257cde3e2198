//! # orb-testkit
//!
//! Dev-only helpers shared by end-to-end tests and benchmarks: the **stores under test** ([`stores`]: a
//! fresh SQLite and PostgreSQL store per test, a second pool, raw statements, a dump of everything stored), **ports** for servers started in another process ([`free_port`]),
//! and the **convergence checker** ([`check_convergence`]), which compares what the two emulators hold —
//! the room calendars in Exchange and the reservations in TOPdesk — and says whether ORB left them equal:
//! every live room booking on one side has exactly one live counterpart on the other (same room, same
//! start and end), and nothing is doubled.
//!
//! The checker reads the emulators' state directly (never through ORB), so it judges ORB from the
//! outside.
//!
//! ## Must not depend on
//! orb-engine, orb-web: the checker must not share code with what it checks. orb-store is used by
//! [`stores`] only (opening the stores the tests run on); the checker does not touch it.

pub mod ports;
pub mod stores;

pub use ports::free_port;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use orb_core::{RoomMailbox, TopdeskLocationId};
use orb_emulators::graph::GraphEmulator;
use orb_emulators::topdesk::TopdeskEmulator;
use orb_graph::model::{Event, ResponseType};

/// One booking as both sides can describe it: the room and the time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot {
    /// The room's mailbox.
    pub room: String,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// End (UTC).
    pub end: DateTime<Utc>,
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}–{}", self.room, self.start.format("%Y-%m-%d %H:%M"), self.end.format("%H:%M"))
    }
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Convergence {
    /// Live bookings in the room calendars (each slot once).
    pub exchange: usize,
    /// Live reservations in TOPdesk (each slot once).
    pub topdesk: usize,
    /// In a room calendar, not in TOPdesk.
    pub missing_in_topdesk: Vec<Slot>,
    /// In TOPdesk, not in the room calendar.
    pub missing_in_exchange: Vec<Slot>,
    /// Slots held more than once on one side: (side, slot, count).
    pub duplicates: Vec<(&'static str, Slot, usize)>,
}

impl Convergence {
    /// Both sides equal, nothing doubled.
    pub fn is_clean(&self) -> bool {
        self.missing_in_topdesk.is_empty()
            && self.missing_in_exchange.is_empty()
            && self.duplicates.is_empty()
    }
}

impl fmt::Display for Convergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in Exchange, {} in TOPdesk; {} missing in TOPdesk, {} missing in Exchange, {} duplicated",
            self.exchange,
            self.topdesk,
            self.missing_in_topdesk.len(),
            self.missing_in_exchange.len(),
            self.duplicates.len()
        )?;
        for s in self.missing_in_topdesk.iter().take(5) {
            write!(f, "\n  missing in TOPdesk: {s}")?;
        }
        for s in self.missing_in_exchange.iter().take(5) {
            write!(f, "\n  missing in Exchange: {s}")?;
        }
        for (side, s, n) in self.duplicates.iter().take(5) {
            write!(f, "\n  {n}× in {side}: {s}")?;
        }
        Ok(())
    }
}

/// Whether a room calendar entry is a live booking: not cancelled, and not declined by the room.
fn live_in_room(event: &Event, room: &str) -> bool {
    event.is_cancelled != Some(true)
        && event.response_status.as_ref().and_then(|r| r.response).is_none_or(|r| r != ResponseType::Declined)
        && event.attendee_response(room) != Some(ResponseType::Declined)
}

/// The live room bookings in the room calendars of `rooms` overlapping `window`, each slot with the number
/// of times it is held (series masters are skipped: their occurrences count).
pub fn exchange_slots(
    graph: &GraphEmulator,
    rooms: &[(RoomMailbox, TopdeskLocationId)],
    window: (DateTime<Utc>, DateTime<Utc>),
) -> BTreeMap<Slot, usize> {
    let in_window = |s: &Slot| s.end > window.0 && s.start < window.1;
    let mut exchange: BTreeMap<Slot, usize> = BTreeMap::new();
    for (mailbox, _) in rooms {
        let room = mailbox.as_str();
        let events = graph.calendar_view(room, window.0, window.1).unwrap_or_default();
        for event in events.iter().filter(|e| live_in_room(e, room)) {
            let (Some(start), Some(end)) = (event.start.as_ref(), event.end.as_ref()) else { continue };
            let (Ok(start), Ok(end)) = (start.to_utc(), end.to_utc()) else { continue };
            let slot = Slot { room: room.to_owned(), start, end };
            if in_window(&slot) {
                *exchange.entry(slot).or_default() += 1;
            }
        }
    }
    exchange
}

/// The active TOPdesk reservations of the locations of `rooms` overlapping `window`, as slots of the
/// mapped mailboxes, each with the number of times it is held.
pub fn topdesk_slots(
    topdesk: &TopdeskEmulator,
    rooms: &[(RoomMailbox, TopdeskLocationId)],
    window: (DateTime<Utc>, DateTime<Utc>),
) -> BTreeMap<Slot, usize> {
    let in_window = |s: &Slot| s.end > window.0 && s.start < window.1;
    let by_location: BTreeMap<&str, &str> = rooms.iter().map(|(m, l)| (l.as_str(), m.as_str())).collect();
    let mut reservations: BTreeMap<Slot, usize> = BTreeMap::new();
    for r in topdesk.reservations() {
        if !r.status.is_some_and(|s| s.is_active()) {
            continue;
        }
        for facility in r.reserved_facilities.iter().flatten() {
            let Some(room) = facility
                .location
                .as_ref()
                .and_then(|l| l.id.as_ref())
                .and_then(|id| by_location.get(id.as_str()))
            else {
                continue;
            };
            let (Some(start), Some(end)) = (
                facility.planned_start_date.or(r.planned_start_date),
                facility.planned_end_date.or(r.planned_end_date),
            ) else {
                continue;
            };
            let slot = Slot { room: (*room).to_owned(), start, end };
            if in_window(&slot) {
                *reservations.entry(slot).or_default() += 1;
            }
        }
    }
    reservations
}

/// Compares the room calendars of `rooms` (mailbox → TOPdesk location) with TOPdesk's reservations of
/// those locations. Only bookings overlapping `window` count. Series masters are skipped (their
/// occurrences are compared).
pub fn check_convergence(
    graph: &GraphEmulator,
    topdesk: &TopdeskEmulator,
    rooms: &[(RoomMailbox, TopdeskLocationId)],
    window: (DateTime<Utc>, DateTime<Utc>),
) -> Convergence {
    let exchange = exchange_slots(graph, rooms, window);
    let reservations = topdesk_slots(topdesk, rooms, window);
    let mut out =
        Convergence { exchange: exchange.len(), topdesk: reservations.len(), ..Convergence::default() };
    for (slot, n) in &exchange {
        if !reservations.contains_key(slot) {
            out.missing_in_topdesk.push(slot.clone());
        }
        if *n > 1 {
            out.duplicates.push(("Exchange", slot.clone(), *n));
        }
    }
    for (slot, n) in &reservations {
        if !exchange.contains_key(slot) {
            out.missing_in_exchange.push(slot.clone());
        }
        if *n > 1 {
            out.duplicates.push(("TOPdesk", slot.clone(), *n));
        }
    }
    out
}
