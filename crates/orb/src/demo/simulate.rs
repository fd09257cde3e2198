//! The simulation: at each tick a person books, moves or cancels one of their meetings in Outlook, or the
//! desk operator does so in TOPdesk; each change is then watched for on the other side (the emulators'
//! state) until it arrives or its deadline passes, and reported as one [`Done`].
//!
//! A booking with a change on its way is left alone until the change has crossed, so the simulation never
//! races ORB; one that did not cross in time is never touched again.

use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use orb_topdesk::Reason;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::line::{Arrival, Change, Direction, What};
use super::org::{Booking, SUBJECTS, Sides, free_booking, pick_start};
use super::slots::Rng;

/// How long a change may take to arrive before the terminal says it did not.
pub(crate) const DEADLINE: StdDuration = StdDuration::from_secs(30);
/// How often the other side is looked at while a change is on its way.
const WATCH_EVERY: StdDuration = StdDuration::from_millis(100);
/// Meetings are made, moved and cancelled at least this long before they start.
const LEAD: Duration = Duration::minutes(30);

/// A change that arrived (or did not).
#[derive(Debug, Clone)]
pub(crate) struct Done {
    /// The change.
    pub change: Change,
    /// How it ended.
    pub arrival: Arrival,
    /// When that was seen.
    pub seen_at: DateTime<Utc>,
    slot: usize,
    after: Option<Booking>,
}

/// What the other side must show for a change to have arrived.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A live item at these times.
    Present(usize, DateTime<Utc>, DateTime<Utc>),
    /// A live item at the new times and none at the old ones.
    Moved(usize, (DateTime<Utc>, DateTime<Utc>), (DateTime<Utc>, DateTime<Utc>)),
    /// No live item at these times.
    Gone(usize, DateTime<Utc>, DateTime<Utc>),
}

impl Expect {
    fn met(self, sides: &Sides, direction: Direction) -> bool {
        let has = |room: usize, start, end| match direction {
            Direction::OutlookToTopdesk => sides.reservation_at(room, start, end).is_some(),
            Direction::TopdeskToOutlook => sides.room_has(room, start, end),
        };
        match self {
            Self::Present(room, start, end) => has(room, start, end),
            Self::Moved(room, (s0, e0), (s1, e1)) => has(room, s1, e1) && !has(room, s0, e0),
            Self::Gone(room, start, end) => !has(room, start, end),
        }
    }
}

struct Live {
    booking: Booking,
    busy: bool,
}

/// The simulated people and the bookings they can act on.
pub(crate) struct Simulation {
    sides: Sides,
    rng: Rng,
    bookings: Vec<Option<Live>>,
    done: mpsc::UnboundedSender<Done>,
}

impl Simulation {
    /// A simulation acting on `existing` bookings (and the ones it makes), reporting to `done`.
    pub(crate) fn new(
        sides: Sides,
        rng: Rng,
        existing: Vec<Booking>,
        done: mpsc::UnboundedSender<Done>,
    ) -> Self {
        let bookings = existing.into_iter().map(|booking| Some(Live { booking, busy: false })).collect();
        Self { sides, rng, bookings, done }
    }

    /// Makes one change and starts watching for it; `Ok(false)` when the chosen change was not possible
    /// (no free slot, or the meeting was not found where it should be).
    pub(crate) async fn step(&mut self) -> Result<bool> {
        let now = Utc::now();
        let settled: Vec<usize> = self
            .bookings
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().filter(|b| !b.busy && b.booking.start > now + LEAD).map(|_| i))
            .collect();
        let roll = self.rng.below(100);
        let direction =
            if self.rng.below(2) == 0 { Direction::OutlookToTopdesk } else { Direction::TopdeskToOutlook };
        let slot = if settled.len() < 6 || roll < 40 { None } else { self.rng.pick(&settled).copied() };
        match slot {
            None => self.book(direction, now).await,
            Some(slot) if roll < 75 => self.retime(direction, slot, now).await,
            Some(slot) => self.cancel(direction, slot).await,
        }
    }

    async fn book(&mut self, direction: Direction, now: DateTime<Utc>) -> Result<bool> {
        let people = self.sides.org.people.len();
        // Now and then the secretary books for a director, in the director's calendar.
        let for_director = direction == Direction::OutlookToTopdesk && self.rng.below(6) == 0;
        let organizer = if for_director {
            *self.rng.pick(self.sides.org.directors()).unwrap_or(&0)
        } else {
            self.rng.below(people)
        };
        let Some(b) = free_booking(&self.sides, &mut self.rng, organizer, now, now + LEAD) else {
            return Ok(false);
        };
        let subject = SUBJECTS[self.rng.below(SUBJECTS.len())];
        let mut who = self.sides.org.people[organizer].short.clone();
        let began = Instant::now();
        match direction {
            Direction::OutlookToTopdesk => {
                let colleagues: Vec<usize> =
                    (0..1 + self.rng.below(3)).map(|_| self.rng.below(people)).collect();
                self.sides.book_in_outlook(&b, subject, &colleagues, None).await?;
                if for_director {
                    who = format!("{} for {who}", self.sides.org.secretary().short);
                }
            }
            Direction::TopdeskToOutlook => {
                self.sides.book_at_desk(organizer, b.room, b.start, b.end, subject).await?;
            }
        }
        let change = self.change(direction, What::Booked, &b, who);
        self.bookings.push(Some(Live { booking: b.clone(), busy: true }));
        self.watch(began, change, Expect::Present(b.room, b.start, b.end), self.bookings.len() - 1, Some(b));
        Ok(true)
    }

    async fn retime(&mut self, direction: Direction, slot: usize, now: DateTime<Utc>) -> Result<bool> {
        let Some(old) = self.bookings[slot].as_ref().map(|l| l.booking.clone()) else { return Ok(false) };
        let length = old.end - old.start;
        let Some(start) = pick_start(&self.sides, &mut self.rng, old.room, length, now, 3, now + LEAD) else {
            return Ok(false);
        };
        let new = Booking { start, end: start + length, ..old.clone() };
        let began = Instant::now();
        match direction {
            Direction::OutlookToTopdesk => {
                let Some(id) = self.sides.event_at(old.organizer, old.room, old.start, old.end) else {
                    return Ok(false);
                };
                self.sides.move_in_outlook(old.organizer, &id, new.start, new.end).await?;
            }
            Direction::TopdeskToOutlook => {
                let Some(id) = self.sides.reservation_at(old.room, old.start, old.end) else {
                    return Ok(false);
                };
                self.sides
                    .desk
                    .reschedule_reservation(id, new.start, new.end)
                    .await
                    .context("the desk could not move the reservation")?;
            }
        }
        let who = self.sides.org.people[old.organizer].short.clone();
        let change = self.change(direction, What::Moved, &new, who);
        self.busy(slot);
        let expect = Expect::Moved(old.room, (old.start, old.end), (new.start, new.end));
        self.watch(began, change, expect, slot, Some(new));
        Ok(true)
    }

    async fn cancel(&mut self, direction: Direction, slot: usize) -> Result<bool> {
        let Some(old) = self.bookings[slot].as_ref().map(|l| l.booking.clone()) else { return Ok(false) };
        let began = Instant::now();
        match direction {
            Direction::OutlookToTopdesk => {
                let Some(id) = self.sides.event_at(old.organizer, old.room, old.start, old.end) else {
                    return Ok(false);
                };
                self.sides.cancel_in_outlook(old.organizer, &id).await?;
            }
            Direction::TopdeskToOutlook => {
                let Some(id) = self.sides.reservation_at(old.room, old.start, old.end) else {
                    return Ok(false);
                };
                self.sides
                    .desk
                    .cancel_reservation(id, &Reason::Default)
                    .await
                    .context("the desk could not cancel the reservation")?;
            }
        }
        let who = self.sides.org.people[old.organizer].short.clone();
        let change = self.change(direction, What::Cancelled, &old, who);
        self.busy(slot);
        self.watch(began, change, Expect::Gone(old.room, old.start, old.end), slot, None);
        Ok(true)
    }

    fn busy(&mut self, slot: usize) {
        if let Some(live) = self.bookings[slot].as_mut() {
            live.busy = true;
        }
    }

    fn change(&self, direction: Direction, what: What, b: &Booking, who: String) -> Change {
        Change {
            direction,
            what,
            room: self.sides.org.rooms[b.room].name.clone(),
            start: b.start,
            end: b.end,
            who: Some(who),
        }
    }

    /// Watches the other side for the change until it shows or [`DEADLINE`] passes.
    fn watch(&self, began: Instant, change: Change, expect: Expect, slot: usize, after: Option<Booking>) {
        let (sides, done) = (self.sides.clone(), self.done.clone());
        tokio::spawn(async move {
            let arrival = loop {
                if expect.met(&sides, change.direction) {
                    break Arrival::After(began.elapsed());
                }
                if began.elapsed() >= DEADLINE {
                    break Arrival::NotWithin(DEADLINE);
                }
                tokio::time::sleep(WATCH_EVERY).await;
            };
            let _ = done.send(Done { change, arrival, seen_at: Utc::now(), slot, after });
        });
    }

    /// Takes a finished change into account: the booking may be changed again once it crossed; one that
    /// did not arrive is left alone from now on.
    pub(crate) fn settle(&mut self, done: &Done) {
        if matches!(done.arrival, Arrival::NotWithin(_)) {
            return;
        }
        self.bookings[done.slot] = done.after.clone().map(|booking| Live { booking, busy: false });
    }
}
