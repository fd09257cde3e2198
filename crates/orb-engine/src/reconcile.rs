//! **Reconciliation**: the per-room sweep that heals what change detection missed (DESIGN §3, "a
//! calendarView delta sweep per room after `missed`/`subscriptionRemoved` and on a schedule"; §4 rule 12).
//!
//! [`sweep_room`] reads three things for one room over a window — the room mailbox's calendar, the TOPdesk
//! reservations of the room's location, and the ORB records of the room — compares them and feeds one
//! `sync.observation` job ([`JOB_SYNC_OBSERVATION`]) per difference into the room's lane, exactly as the
//! TOPdesk poller does, so the worker applies them in order with that room's notifications, with the
//! planner, the executor and the mails. [`sweep_tenant`] sweeps every enabled room of a tenant.
//! `crate::subscriptions` runs [`sweep_room`] after a `missed` lifecycle notification and after recreating
//! a subscription Graph removed.
//!
//! ## What is read
//! - **Exchange: a full `calendarView` of the room mailbox over the window, every sweep** (not the delta).
//!   The delta would hand over only what changed since a cursor, which does not fit a sweep: the window
//!   moves with time while a delta link is bound to the range it started with; a deletion held by the
//!   mass-deletion guard would be consumed by the cursor and never seen again; and a cursor advanced past
//!   changes whose jobs later died would hide them for good. A full read has no cursor to lose or trust: each
//!   sweep compares complete state, so it is idempotent and heals any earlier miss. It costs one paged
//!   GET per room per sweep, which the per-mailbox cap absorbs.
//! - **TOPdesk**: one paged list of the room's location over the window with the poller's small `$fields`
//!   ([`crate::poller::POLL_FIELDS`]); only new or changed reservations are read again in full.
//! - **Records**: the room's records overlapping the window, cancelled ones included.
//!
//! ## What is compared (each difference becomes one job, source [`ObservationSource::Sweep`])
//! - An event or reservation **without a record** → *new*. Items the planner would not record are not
//!   enqueued (cancelled, over, beyond the horizon, not accepted by the room, ORB's own item without a
//!   record, an organizer TOPdesk does not know while there is no fallback person), so a sweep does not
//!   re-send a refusal mail for the same item every time.
//! - **Onboarding pairs**: the planner does not match items of both sides (it plans a new booking from one
//!   observation and creates its counterpart). So the sweep pairs them itself: a room-calendar event and a
//!   reservation of the room, both without a record, active, with the same start and end (to the minute)
//!   and the event's organizer equal to the reservation's organizer (`reservedForOther`, else the
//!   requester) become **one** record linked to both, and nothing is written to either side. The record is
//!   built with the planner (`plan` of each side's observation: the Exchange one gives the booking, the
//!   TOPdesk one its TOPdesk link and fingerprint), so both fingerprints are exactly what the next
//!   observations will hash, and it is inserted with one timeline entry. In organizer mode the room copy's
//!   subject is Exchange's rewrite (the organizer's name), so the booking takes TOPdesk's subject instead.
//! - A record whose side shows a **newer modification time** than the record's watermark (Graph
//!   `lastModifiedDateTime`, TOPdesk `modificationDate`) → *changed* (*deleted* when the item is now
//!   cancelled). Equal or older is unchanged: ORB's own writes store the time the side answered with. When
//!   both sides of one record changed, one job carries the Exchange observation with the TOPdesk one as its
//!   [`orb_core::Observation::counterpart`], so the planner applies the conflict policy (rule 5).
//! - A live, future record whose room event or reservation is **not in the window's listing** is looked up
//!   by id: gone (404) → *deleted* ([`observe::deleted`]); still there (moved out of the window, to another
//!   room, cancelled) → compared as above. A record without a known room-calendar event id is not checked
//!   for an Exchange deletion (the calendar cannot say whether its copy is gone).
//!
//! ## The mass-deletion guard (rule 12)
//! The sweep counts the room's live future records it would cancel (either side cancelled or gone) and the
//! live future records in the window. When [`orb_core::MassDeletionGuard::trips`] says so (and the caller
//! did not approve, [`SweepOptions::approve_mass_deletion`]), those deletions are **held**: no job is
//! enqueued for them, an audit entry [`AUDIT_MASS_DELETION_HELD`] names the room and the counts, and the
//! report counts them in [`SweepReport::held_deletions`]. Everything else of the sweep still goes ahead.
//! The next sweep finds the same deletions again (a full read keeps no cursor), so nothing is lost while an
//! admin decides. Each job also carries the sweep's [`SweepStats`] in its payload (`"sweep"`), so the
//! planner's own guard can apply once the worker reads it (today `sync` plans `sync.observation` jobs with
//! no sweep context, which is why the sweep holds deletions itself).
//!
//! ## Invariants
//! - **Never plans a change or writes a side inline.** Differences become jobs in the room's lane; the
//!   only store write besides jobs, the audit log and the cursor is the insert of an onboarded pair, which
//!   writes nothing remote.
//! - **Idempotent.** A sweep right after a sweep whose jobs ran enqueues nothing.
//! - A sweep that fails part-way has enqueued only whole jobs; the next sweep finds the rest.
//! - The cursor `reconcile.sweep.<room id>` ([`cursor_name`]) holds the time of the last completed sweep,
//!   for observability only.
//! - Time only from the `now` argument.
//! - Race note: a sweep run outside the room's lane may read a side just before the worker changes it; the
//!   job it enqueues is then stale or an echo for the planner, and an onboarding insert that loses a race
//!   to the worker fails on the store's unique reservation id and is skipped. Sweeps started from a
//!   lifecycle job run inside the room's lane.
//!
//! ## Must not depend on
//! orb-web (work comes in through the store), the wall clock, and the order in which the sides list items.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use orb_core::{
    BookingId, BookingRecord, CorrelationId, EmailAddress, Lifecycle, Mode, NewIds, Observation,
    ObservationSource, PersonDirectory, PlanContext, RecordChange, RemoteIds, RoomId, RoomMapping,
    RoomResponse, Side, SubjectPolicy, SweepStats, SyncStatus, TenantId, plan,
};
use orb_graph::GraphError;
use orb_graph::model::{Event, EventType};
use orb_store::{BookingFilter, Lane, NewAuditEntry, NewBookingEvent, NewJob, StoreError};
use orb_topdesk::wire::ReservationDto;
use orb_topdesk::{Fiql, ReservationId, TopdeskError};
use serde_json::json;
use tracing::Instrument as _;

use crate::observe::{self, ObserveContext, ObserveError, SeriesKey};
use crate::poller::{POLL_FIELDS, POLL_PAGE_SIZE};
use crate::sync::{AUDIT_ACTOR, JOB_SYNC_OBSERVATION, SyncDeps, SyncError, TenantRuntime};

/// Audit action: a sweep held deletions because of the mass-deletion guard.
pub const AUDIT_MASS_DELETION_HELD: &str = "reconcile.mass_deletion_held";

/// Audit action: a sweep that follows a lifecycle event failed (the scheduled sweep heals later).
pub const AUDIT_SWEEP_FAILED: &str = "reconcile.sweep_failed";

/// Timeline kind of the entry an onboarded pair's record starts with.
pub const TIMELINE_ONBOARDED: &str = "decision";

/// The name of a room's sweep cursor: `reconcile.sweep.<room id>`.
pub fn cursor_name(room: RoomId) -> String {
    format!("reconcile.sweep.{room}")
}

/// How a sweep may act beyond the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOptions {
    /// An admin approved this sweep's cancellations: the mass-deletion guard does not hold them.
    pub approve_mass_deletion: bool,
    /// Only report: enqueue nothing, onboard nothing, write no audit entry or cursor; the differences are
    /// listed in [`SweepReport::planned`] (`orb sync --dry-run`).
    pub dry_run: bool,
}

/// What kind of change a sweep found (and, outside a dry run, enqueued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// An item without a record: ORB creates its counterpart on the other side.
    New,
    /// A record whose side changed: ORB updates the other side.
    Changed,
    /// A record whose side cancelled or lost the item: ORB cancels the other side.
    Deleted,
    /// A deletion the mass-deletion guard holds.
    Held,
    /// An event and a reservation of the same booking, linked without writing either side.
    Paired,
}

/// One difference a sweep found, in words an operator can check before a backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChange {
    /// What kind.
    pub difference: Difference,
    /// The side the difference was seen on (for a pair: Exchange).
    pub side: Side,
    /// The booking's start.
    pub start: DateTime<Utc>,
    /// The booking's end.
    pub end: DateTime<Utc>,
    /// Its organizer.
    pub organizer: EmailAddress,
}

impl PlannedChange {
    fn of(difference: Difference, o: &Observation) -> Self {
        Self { difference, side: o.side, start: o.start, end: o.end, organizer: o.organizer.clone() }
    }

    /// What ORB does about it, in words.
    pub fn action(&self) -> String {
        let other = match self.side {
            Side::Exchange => "TOPdesk",
            Side::Topdesk => "Exchange",
        };
        let seen = match self.side {
            Side::Exchange => "Exchange",
            Side::Topdesk => "TOPdesk",
        };
        match self.difference {
            Difference::New => format!("new in {seen}: create it in {other}"),
            Difference::Changed => format!("changed in {seen}: update {other}"),
            Difference::Deleted => format!("gone or cancelled in {seen}: cancel it in {other}"),
            Difference::Held => format!("gone in {seen}: held by the mass-deletion guard (needs approval)"),
            Difference::Paired => "on both sides already: link them, write nothing".to_owned(),
        }
    }
}

/// Jobs one sweep enqueued, by kind of difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobsByKind {
    /// Items without a record.
    pub new: usize,
    /// Records whose side changed.
    pub changed: usize,
    /// Records whose side cancelled or lost the item.
    pub deleted: usize,
}

impl JobsByKind {
    /// All jobs.
    pub fn total(&self) -> usize {
        self.new + self.changed + self.deleted
    }
}

impl SweepReport {
    /// An empty report of `room` (nothing read, nothing done).
    pub fn empty(room: RoomId) -> Self {
        Self {
            room,
            swept: false,
            events_read: 0,
            reservations_read: 0,
            records: 0,
            future_bookings: 0,
            jobs: JobsByKind::default(),
            paired: 0,
            held_deletions: 0,
            unchanged: 0,
            skipped: 0,
            planned: Vec::new(),
        }
    }
}

/// What one room's sweep read and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// The room.
    pub room: RoomId,
    /// `false` when the room is not swept (unmapped or disabled); everything else is then zero.
    pub swept: bool,
    /// Events the room's calendarView listed in the window.
    pub events_read: usize,
    /// Reservations TOPdesk listed for the room's location in the window.
    pub reservations_read: usize,
    /// ORB records of the room in the window (cancelled ones included).
    pub records: usize,
    /// Live records in the window that end after `now` (the guard's "future bookings").
    pub future_bookings: usize,
    /// `sync.observation` jobs enqueued (in a dry run: that would be enqueued).
    pub jobs: JobsByKind,
    /// Event + reservation pairs onboarded as one record (nothing written to either side).
    pub paired: usize,
    /// Deletions held by the mass-deletion guard (no job enqueued).
    pub held_deletions: usize,
    /// Items equal to their record (or older).
    pub unchanged: usize,
    /// Items the sweep leaves alone: not a booking ORB syncs (see the module docs).
    pub skipped: usize,
    /// Every difference found, in order (filled in a dry run; empty otherwise).
    pub planned: Vec<PlannedChange>,
}

/// What [`sweep_tenant`] did.
#[derive(Debug, Default)]
pub struct TenantSweepReport {
    /// One report per swept room.
    pub rooms: Vec<SweepReport>,
    /// Rooms whose sweep failed, with the error (the other rooms were swept anyway).
    pub failed: Vec<(RoomId, SyncError)>,
}

/// Sweeps `room` of `tenant` over `window` with the default options: see [`sweep_room_with`].
pub async fn sweep_room(
    deps: &SyncDeps,
    tenant: TenantId,
    room: RoomId,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<SweepReport, SyncError> {
    sweep_room_with(deps, tenant, room, window, now, SweepOptions::default()).await
}

/// Sweeps every room of `tenant` that is enabled in the store and mapped (enabled) in its runtime, one after
/// the other. A room whose sweep fails is reported in [`TenantSweepReport::failed`]; the others still run.
pub async fn sweep_tenant(
    deps: &SyncDeps,
    tenant: TenantId,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<TenantSweepReport, SyncError> {
    let runtime = deps.tenant(tenant)?;
    let rooms = deps.store.list_rooms(tenant).await?;
    let mut out = TenantSweepReport::default();
    for room in rooms.iter().filter(|r| r.enabled && runtime.rooms.by_id(r.id).is_some_and(|m| m.enabled)) {
        match sweep_room(deps, tenant, room.id, window, now).await {
            Ok(report) => out.rooms.push(report),
            Err(e) => {
                tracing::warn!(tenant = %tenant, room = %room.id, error = %e, "room sweep failed");
                out.failed.push((room.id, e));
            }
        }
    }
    Ok(out)
}

/// Sweeps `room` of `tenant` over `window` (see the module docs): reads the room's calendar, its TOPdesk
/// reservations and its records, enqueues one `sync.observation` job per difference in the room's lane,
/// onboards matching pairs, holds deletions the mass-deletion guard stops, and sets the room's sweep
/// cursor to `now`. A room that is not mapped and enabled (in the runtime and the store) is not swept
/// ([`SweepReport::swept`] is `false`).
pub async fn sweep_room_with(
    deps: &SyncDeps,
    tenant: TenantId,
    room: RoomId,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    options: SweepOptions,
) -> Result<SweepReport, SyncError> {
    let runtime = deps.tenant(tenant)?;
    let Some(mapping) = runtime.rooms.by_id(room).filter(|m| m.enabled).cloned() else {
        tracing::info!(tenant = %tenant, room = %room, "room is not mapped or disabled; not swept");
        return Ok(SweepReport::empty(room));
    };
    if !deps.store.get_room(tenant, room).await?.enabled {
        tracing::info!(tenant = %tenant, room = %room, "room is disabled; not swept");
        return Ok(SweepReport::empty(room));
    }
    let span = tracing::info_span!("sweep", tenant = %tenant, room = %room);
    sweep_mapped(deps, runtime, &mapping, window, now, options).instrument(span).await
}

/// Sweeps a room known to be mapped and enabled (the body of [`sweep_room_with`]).
async fn sweep_mapped(
    deps: &SyncDeps,
    runtime: &TenantRuntime,
    mapping: &RoomMapping,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    options: SweepOptions,
) -> Result<SweepReport, SyncError> {
    let mut report = SweepReport::empty(mapping.id);
    let mut sweep = Sweep::new(deps, runtime, mapping, window, now);
    sweep.read().await?;
    report.swept = true;
    report.events_read = sweep.events.len();
    report.reservations_read = sweep.reservations.len();
    report.records = sweep.records.len();
    sweep.compare_exchange(&mut report).await?;
    sweep.compare_topdesk(&mut report).await?;
    sweep.check_gone(&mut report).await?;
    sweep.pair(&mut report, options).await?;
    sweep.finish(&mut report, options).await?;
    if !options.dry_run {
        deps.store.set_cursor(runtime.tenant_id, &cursor_name(mapping.id), &now.to_rfc3339(), now).await?;
    }
    tracing::info!(
        events = report.events_read,
        reservations = report.reservations_read,
        records = report.records,
        new = report.jobs.new,
        changed = report.jobs.changed,
        deleted = report.jobs.deleted,
        paired = report.paired,
        held = report.held_deletions,
        "room swept"
    );
    Ok(report)
}

// ---------------------------------------------------------------------------------------------------------
// observing (the observe context is not `Send`: built and dropped inside these synchronous helpers)
// ---------------------------------------------------------------------------------------------------------

/// No series resolver: occurrences of series are not observed by the sweep (as by notifications).
fn no_series(_: &SeriesKey<'_>) -> Option<orb_core::SeriesId> {
    None
}

/// No person resolver: TOPdesk participants stay unresolved in the sweep's observations.
fn no_person(_: &orb_topdesk::PersonId) -> Option<EmailAddress> {
    None
}

/// Observes an event of the room mailbox's own calendar.
fn observe_event(
    runtime: &TenantRuntime,
    mailbox: &EmailAddress,
    event: &Event,
) -> Result<Observation, ObserveError> {
    let octx = ObserveContext::new(&runtime.rooms, runtime.link_type, &no_series, ObservationSource::Sweep)
        .with_persons(&no_person)
        .with_mailbox(mailbox);
    observe::from_graph_event(event, &octx)
}

/// Observes a reservation read in full.
fn observe_reservation(runtime: &TenantRuntime, r: &ReservationDto) -> Result<Observation, ObserveError> {
    let octx = ObserveContext::new(&runtime.rooms, runtime.link_type, &no_series, ObservationSource::Sweep)
        .with_persons(&no_person);
    observe::from_topdesk_reservation(r, &octx)
}

/// The observation of a record's item that is gone from `side`.
fn observe_gone(
    runtime: &TenantRuntime,
    side: Side,
    ids: RemoteIds,
    record: &BookingRecord,
    now: DateTime<Utc>,
) -> Observation {
    let octx = ObserveContext::new(&runtime.rooms, runtime.link_type, &no_series, ObservationSource::Sweep);
    let mut obs = observe::deleted(side, ids, record, now, &octx);
    // The sweep knows which record it compared: the worker finds it by match id.
    obs.orb_match_id = Some(record.id);
    obs
}

/// ORB's match id on a reservation (its external link of the tenant's type).
fn reservation_match_id(runtime: &TenantRuntime, r: &ReservationDto) -> Option<BookingId> {
    r.external_links
        .iter()
        .flatten()
        .find(|l| l.kind.trim().parse::<i64>().ok() == Some(runtime.link_type))
        .and_then(|l| l.id.trim().parse::<BookingId>().ok())
}

/// `at` truncated to the minute (the precision of the canonical fields), for pairing.
fn minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::minutes(1)).unwrap_or(at)
}

// ---------------------------------------------------------------------------------------------------------
// the sweep of one room
// ---------------------------------------------------------------------------------------------------------

/// A difference found for one record or item, waiting to be enqueued (or held).
struct Pending {
    observation: Observation,
    correlation: Option<CorrelationId>,
    kind: Kind,
    /// The live, future record it would cancel (counted by the guard).
    cancels: Option<BookingId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Changed,
    Deleted,
}

/// What the sweep saw of one record.
#[derive(Default)]
struct Seen {
    exchange: bool,
    topdesk: bool,
    /// A newer Exchange version (or its disappearance).
    exchange_change: Option<Observation>,
    /// A newer TOPdesk version (or its disappearance).
    topdesk_change: Option<Observation>,
}

struct Sweep<'a> {
    deps: &'a SyncDeps,
    runtime: &'a TenantRuntime,
    mapping: &'a RoomMapping,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    events: Vec<Event>,
    reservations: Vec<ReservationDto>,
    records: Vec<BookingRecord>,
    /// Records by match id: those listed plus any found by id on the way (moved in from elsewhere).
    by_id: BTreeMap<BookingId, BookingRecord>,
    seen: BTreeMap<BookingId, Seen>,
    new_events: Vec<Observation>,
    new_reservations: Vec<(Observation, Option<String>)>,
}

impl<'a> Sweep<'a> {
    /// A sweep of `mapping` that has read nothing yet.
    fn new(
        deps: &'a SyncDeps,
        runtime: &'a TenantRuntime,
        mapping: &'a RoomMapping,
        window: (DateTime<Utc>, DateTime<Utc>),
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            deps,
            runtime,
            mapping,
            window,
            now,
            events: Vec::new(),
            reservations: Vec::new(),
            records: Vec::new(),
            by_id: BTreeMap::new(),
            seen: BTreeMap::new(),
            new_events: Vec::new(),
            new_reservations: Vec::new(),
        }
    }

    /// The tenant.
    fn tenant(&self) -> TenantId {
        self.runtime.tenant_id
    }

    /// The room's mailbox.
    fn mailbox(&self) -> &EmailAddress {
        self.mapping.mailbox.address()
    }

    /// A fresh correlation id (for reads and new bookings' jobs).
    fn corr(&self) -> CorrelationId {
        CorrelationId::generate(self.now)
    }

    /// Reads the three sources.
    async fn read(&mut self) -> Result<(), SyncError> {
        let filter = BookingFilter {
            room: Some(self.mapping.id),
            from: Some(self.window.0),
            to: Some(self.window.1),
            include_cancelled: true,
            ..BookingFilter::default()
        };
        self.records = self.deps.store.list_bookings(self.tenant(), &filter).await?;
        self.by_id = self.records.iter().map(|r| (r.id, r.clone())).collect();
        self.events = self
            .runtime
            .graph
            .calendar_view(self.mailbox(), self.window.0, self.window.1, self.corr())
            .await?;
        let location = Fiql::eq("reservedFacilities.location.id", self.mapping.location.as_str());
        self.reservations = self
            .runtime
            .topdesk
            .reservations_in_window(
                Some(&location),
                self.window.0,
                self.window.1,
                Some(POLL_FIELDS),
                POLL_PAGE_SIZE,
            )
            .await?;
        Ok(())
    }

    /// The record of a room-calendar event, from the listed records first, then the store.
    async fn record_of_event(&mut self, event: &Event) -> Result<Option<BookingId>, SyncError> {
        let id = event.id.as_deref();
        let ical = event.ical_uid.as_deref();
        let original_start = match event.kind {
            Some(EventType::Occurrence | EventType::Exception) => event.original_start,
            _ => None,
        };
        let listed = self.records.iter().find(|r| {
            let link = &r.exchange;
            (id.is_some()
                && (link.room_event_id.as_deref() == id || link.organizer_event_id.as_deref() == id))
                || (ical.is_some() && link.ical_uid.as_deref() == ical && r.original_start == original_start)
        });
        if let Some(r) = listed {
            return Ok(Some(r.id));
        }
        let store = &self.deps.store;
        let mut found = None;
        if let Some(id) = id {
            found = store.find_booking(self.tenant(), &orb_store::BookingKey::ExchangeEvent(id)).await?;
        }
        if found.is_none()
            && let Some(ical_uid) = ical
        {
            let key = orb_store::BookingKey::ICalUid { ical_uid, original_start };
            found = store.find_booking(self.tenant(), &key).await?;
        }
        Ok(found.map(|r| {
            let id = r.id;
            self.by_id.entry(id).or_insert(r);
            id
        }))
    }

    /// The record of a listed reservation, from the listed records first, then the store.
    async fn record_of_reservation(&mut self, r: &ReservationDto) -> Result<Option<BookingId>, SyncError> {
        let Some(id) = r.id.map(|i| i.to_string()) else { return Ok(None) };
        let match_id = reservation_match_id(self.runtime, r);
        let listed = self.records.iter().find(|rec| {
            rec.topdesk.reservation_id.as_deref() == Some(id.as_str()) || Some(rec.id) == match_id
        });
        if let Some(rec) = listed {
            return Ok(Some(rec.id));
        }
        let store = &self.deps.store;
        let mut found =
            store.find_booking(self.tenant(), &orb_store::BookingKey::TopdeskReservation(&id)).await?;
        if found.is_none()
            && let Some(match_id) = match_id
        {
            found = match store.get_booking(self.tenant(), match_id).await {
                Ok(rec) => Some(rec),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
        }
        Ok(found.map(|rec| {
            let id = rec.id;
            self.by_id.entry(id).or_insert(rec);
            id
        }))
    }

    /// An Exchange observation as the worker must see it: in organizer mode the room copy's subject is
    /// Exchange's rewrite, so a known booking's own subject stands in for it (as for notifications).
    fn as_worker_sees(&self, mut obs: Observation, record: Option<&BookingRecord>) -> Observation {
        if let Some(rec) = record
            && self.runtime.policy.mode == Mode::Organizer
        {
            obs.subject.clone_from(&rec.subject);
        }
        obs
    }

    /// Whether `modified` is newer than the record's watermark of `side` (no watermark: newer).
    fn is_newer(record: &BookingRecord, side: Side, modified: DateTime<Utc>) -> bool {
        let watermark = match side {
            Side::Exchange => record.exchange.modified_at,
            Side::Topdesk => record.topdesk.modification_date,
        };
        watermark.is_none_or(|w| w < orb_core::stored_precision(modified))
    }

    /// Compares the room's calendar with the records.
    async fn compare_exchange(&mut self, report: &mut SweepReport) -> Result<(), SyncError> {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            let record_id = self.record_of_event(event).await?;
            if let Some(id) = record_id {
                self.seen.entry(id).or_default().exchange = true;
            }
            let obs = match observe_event(self.runtime, self.mailbox(), event) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(event = ?event.id, error = %e, "room event is not a booking the sweep syncs");
                    report.skipped += 1;
                    continue;
                }
            };
            match record_id.and_then(|id| self.by_id.get(&id)).cloned() {
                Some(record) => {
                    if Self::is_newer(&record, Side::Exchange, obs.modified_at) {
                        let obs = self.as_worker_sees(obs, Some(&record));
                        self.seen.entry(record.id).or_default().exchange_change = Some(obs);
                    } else {
                        report.unchanged += 1;
                    }
                }
                None => {
                    if self.worth_creating(&obs) {
                        self.new_events.push(obs);
                    } else {
                        report.skipped += 1;
                    }
                }
            }
        }
        self.events = events;
        Ok(())
    }

    /// Whether an item without a record is one the planner would record (see the module docs).
    fn worth_creating(&self, obs: &Observation) -> bool {
        obs.lifecycle == Lifecycle::Active
            && obs.orb_match_id.is_none()
            && obs.end > obs.start
            && obs.end > self.now
            && obs.start <= self.now + self.runtime.policy.horizon
            && obs.room_response == RoomResponse::Accepted
    }

    /// Compares the room's TOPdesk reservations with the records.
    async fn compare_topdesk(&mut self, report: &mut SweepReport) -> Result<(), SyncError> {
        let listed = std::mem::take(&mut self.reservations);
        for summary in &listed {
            let (Some(id), Some(modified)) = (summary.id, summary.modification_date) else {
                tracing::warn!(number = ?summary.number, "listed reservation without id or modificationDate");
                report.skipped += 1;
                continue;
            };
            let record_id = self.record_of_reservation(summary).await?;
            if let Some(rid) = record_id {
                self.seen.entry(rid).or_default().topdesk = true;
                let record = &self.by_id[&rid];
                if !Self::is_newer(record, Side::Topdesk, modified) {
                    report.unchanged += 1;
                    continue;
                }
            }
            let Some(full) = self.read_reservation(id).await? else {
                report.skipped += 1;
                continue;
            };
            let obs = match observe_reservation(self.runtime, &full) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(reservation = %id, error = %e, "reservation is not a booking the sweep syncs");
                    report.skipped += 1;
                    continue;
                }
            };
            match record_id {
                Some(rid) => self.seen.entry(rid).or_default().topdesk_change = Some(obs),
                None if self.worth_creating(&obs) => {
                    // The person the booking is for: only needed to plan the pair's record (nothing is written).
                    let requester = full
                        .reserved_for_other
                        .as_ref()
                        .and_then(|p| p.id)
                        .or_else(|| full.requester.as_ref().and_then(|p| p.id))
                        .map(|p| p.to_string());
                    self.new_reservations.push((obs, requester));
                }
                None => report.skipped += 1,
            }
        }
        self.reservations = listed;
        Ok(())
    }

    /// A reservation in full; `None` when it is gone.
    async fn read_reservation(&self, id: ReservationId) -> Result<Option<ReservationDto>, SyncError> {
        match self.runtime.topdesk.get_reservation(id).await {
            Ok(r) => Ok(Some(r)),
            Err(TopdeskError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Live records whose items were not listed: looked up by id; gone → a deletion observation.
    async fn check_gone(&mut self, report: &mut SweepReport) -> Result<(), SyncError> {
        let candidates: Vec<BookingRecord> =
            self.records.iter().filter(|r| !r.cancelled && r.end > self.now).cloned().collect();
        for record in &candidates {
            let seen = self.seen.get(&record.id);
            let (seen_ex, seen_td) = seen.map_or((false, false), |s| (s.exchange, s.topdesk));
            if !seen_ex
                && record.exchange_status == SyncStatus::Synced
                && let Some(event_id) = record.exchange.room_event_id.clone()
            {
                let change = match self.runtime.graph.get_event(self.mailbox(), &event_id, self.corr()).await
                {
                    Ok(event) => match observe_event(self.runtime, self.mailbox(), &event) {
                        Ok(obs) if Self::is_newer(record, Side::Exchange, obs.modified_at) => {
                            Some(self.as_worker_sees(obs, Some(record)))
                        }
                        Ok(_) => {
                            report.unchanged += 1;
                            None
                        }
                        Err(e) => {
                            tracing::debug!(event = %event_id, error = %e, "record's room event not observable");
                            report.skipped += 1;
                            None
                        }
                    },
                    Err(GraphError::NotFound { .. }) => {
                        let ids = RemoteIds { event_id: Some(event_id), ..RemoteIds::default() };
                        Some(observe_gone(self.runtime, Side::Exchange, ids, record, self.now))
                    }
                    Err(e) => return Err(e.into()),
                };
                if let Some(obs) = change {
                    self.seen.entry(record.id).or_default().exchange_change = Some(obs);
                }
            }
            if !seen_td
                && record.topdesk_status == SyncStatus::Synced
                && let Some(text) = record.topdesk.reservation_id.clone()
            {
                let Ok(id) = text.parse::<ReservationId>() else {
                    tracing::warn!(reservation = %text, "record's reservation id is not a TOPdesk id");
                    continue;
                };
                let change = match self.read_reservation(id).await? {
                    Some(full) => match observe_reservation(self.runtime, &full) {
                        Ok(obs) if Self::is_newer(record, Side::Topdesk, obs.modified_at) => Some(obs),
                        Ok(_) => {
                            report.unchanged += 1;
                            None
                        }
                        Err(e) => {
                            tracing::debug!(reservation = %text, error = %e, "record's reservation not observable");
                            report.skipped += 1;
                            None
                        }
                    },
                    None => {
                        let ids = RemoteIds { reservation_id: Some(text), ..RemoteIds::default() };
                        Some(observe_gone(self.runtime, Side::Topdesk, ids, record, self.now))
                    }
                };
                if let Some(obs) = change {
                    self.seen.entry(record.id).or_default().topdesk_change = Some(obs);
                }
            }
        }
        Ok(())
    }

    /// Pairs new events with new reservations of the same booking and onboards each pair as one record.
    async fn pair(&mut self, report: &mut SweepReport, options: SweepOptions) -> Result<(), SyncError> {
        let events = std::mem::take(&mut self.new_events);
        let mut reservations: Vec<Option<(Observation, Option<String>)>> =
            std::mem::take(&mut self.new_reservations).into_iter().map(Some).collect();
        let key = |o: &Observation| (minute(o.start), minute(o.end), o.organizer.clone());
        for event in events {
            let partner =
                reservations.iter().position(|r| r.as_ref().is_some_and(|(t, _)| key(t) == key(&event)));
            let Some(index) = partner else {
                self.new_events.push(event);
                continue;
            };
            let Some((reservation, requester)) = reservations[index].take() else { continue };
            if options.dry_run {
                report.paired += 1;
                report.planned.push(PlannedChange::of(Difference::Paired, &event));
                continue;
            }
            match self.onboard(&event, &reservation, requester).await? {
                true => report.paired += 1,
                false => report.skipped += 2,
            }
        }
        self.new_reservations = reservations.into_iter().flatten().collect();
        Ok(())
    }

    /// Inserts one record linked to both items of a pair (nothing is written to either side). `false`
    /// when the planner would not make a booking of them or a record appeared meanwhile.
    async fn onboard(
        &self,
        event: &Observation,
        reservation: &Observation,
        requester: Option<String>,
    ) -> Result<bool, SyncError> {
        let policy = &self.runtime.policy;
        let mut event = event.clone();
        if policy.mode == Mode::Organizer {
            // The room copy's subject is Exchange's rewrite; TOPdesk's is the booking's (unless it is only
            // the neutral room-side text).
            event.subject = match policy.subject {
                SubjectPolicy::HideOnRoom { .. } => None,
                _ => reservation.subject.clone(),
            };
        }
        let persons = PersonDirectory::new(requester.map(|id| (event.organizer.clone(), id)));
        let ctx = PlanContext {
            tenant_id: self.tenant(),
            policy,
            rooms: &self.runtime.rooms,
            persons: &persons,
            now: self.now,
            new_ids: NewIds { booking: BookingId::generate(self.now), correlation: self.corr() },
            sweep: None,
        };
        let (RecordChange::Create(mut record), RecordChange::Create(from_topdesk)) =
            (plan(None, &event, &ctx).record, plan(None, reservation, &ctx).record)
        else {
            tracing::info!("a matching event and reservation the planner would not book; left alone");
            return Ok(false);
        };
        record.topdesk = from_topdesk.topdesk.clone();
        record.topdesk_fingerprint = from_topdesk.topdesk_fingerprint.clone();
        record.exchange_status = SyncStatus::Synced;
        record.topdesk_status = SyncStatus::Synced;
        let entry = NewBookingEvent {
            at: self.now,
            kind: TIMELINE_ONBOARDED.to_owned(),
            side: None,
            detail: json!({
                "detail": "onboarded by the reconciliation sweep: the room's event and the TOPdesk reservation \
                           (same room, times and organizer) are one booking; nothing written",
                "event_id": event.ids.event_id,
                "reservation_id": reservation.ids.reservation_id,
            }),
        };
        match self.deps.store.insert_booking(&record, &[entry], &[], self.now).await {
            Ok(stored) => {
                tracing::info!(booking = %stored.id, "event and reservation onboarded as one booking");
                Ok(true)
            }
            Err(StoreError::AlreadyExists { what } | StoreError::Conflict { what, .. }) => {
                tracing::info!(%what, "a record for the pair appeared meanwhile; not onboarded");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies the guard and enqueues the jobs: deletions first, then changes, then new items.
    async fn finish(&mut self, report: &mut SweepReport, options: SweepOptions) -> Result<(), SyncError> {
        let future: BTreeSet<BookingId> =
            self.records.iter().filter(|r| !r.cancelled && r.end > self.now).map(|r| r.id).collect();
        report.future_bookings = future.len();
        let mut pending = Vec::new();
        for (id, seen) in std::mem::take(&mut self.seen) {
            let Some(record) = self.by_id.get(&id) else { continue };
            let (main, counterpart) = match (seen.exchange_change, seen.topdesk_change) {
                (Some(ex), Some(td)) => (ex, Some(td)),
                (Some(one), None) | (None, Some(one)) => (one, None),
                (None, None) => continue,
            };
            let cancelling = main.lifecycle != Lifecycle::Active
                || counterpart.as_ref().is_some_and(|c| c.lifecycle != Lifecycle::Active);
            let observation = Observation { counterpart: counterpart.map(Box::new), ..main };
            pending.push(Pending {
                observation,
                correlation: Some(record.correlation_id),
                kind: if cancelling { Kind::Deleted } else { Kind::Changed },
                cancels: (cancelling && future.contains(&id)).then_some(id),
            });
        }
        for obs in std::mem::take(&mut self.new_events) {
            if self.has_requester(&obs).await? {
                pending.push(Pending { observation: obs, correlation: None, kind: Kind::New, cancels: None });
            } else {
                report.skipped += 1;
            }
        }
        for (obs, _) in std::mem::take(&mut self.new_reservations) {
            pending.push(Pending { observation: obs, correlation: None, kind: Kind::New, cancels: None });
        }

        let cancelling: BTreeSet<BookingId> = pending.iter().filter_map(|p| p.cancels).collect();
        let stats = SweepStats {
            room: self.mapping.id,
            future_bookings: u32::try_from(future.len()).unwrap_or(u32::MAX),
            cancelling: u32::try_from(cancelling.len()).unwrap_or(u32::MAX),
            approved: options.approve_mass_deletion,
        };
        let hold = !stats.approved
            && self.runtime.policy.mass_deletion.trips(stats.cancelling, stats.future_bookings);
        if hold {
            report.held_deletions = pending.iter().filter(|p| p.kind == Kind::Deleted).count();
            if options.dry_run {
                let held = pending.iter().filter(|p| p.kind == Kind::Deleted);
                report.planned.extend(held.map(|p| PlannedChange::of(Difference::Held, &p.observation)));
            } else {
                self.audit_held(&stats, report.held_deletions).await?;
            }
            pending.retain(|p| p.kind != Kind::Deleted);
        }
        pending.sort_by_key(|p| match p.kind {
            Kind::Deleted => 0,
            Kind::Changed => 1,
            Kind::New => 2,
        });
        for p in pending {
            if options.dry_run {
                let difference = match p.kind {
                    Kind::New => Difference::New,
                    Kind::Changed => Difference::Changed,
                    Kind::Deleted => Difference::Deleted,
                };
                report.planned.push(PlannedChange::of(difference, &p.observation));
                match p.kind {
                    Kind::New => report.jobs.new += 1,
                    Kind::Changed => report.jobs.changed += 1,
                    Kind::Deleted => report.jobs.deleted += 1,
                }
                continue;
            }
            let job = NewJob {
                lane: Lane::room(self.tenant(), self.mapping.id),
                kind: JOB_SYNC_OBSERVATION.to_owned(),
                // Under `drop` the subject never reaches the job table.
                // In organizer mode an Exchange observation of the sweep is the room's copy, whose subject
                // Exchange rewrote (the organizer's name): the worker must not take it for the meeting's.
                payload: json!({
                    "room_copy": p.observation.side == Side::Exchange && self.runtime.policy.mode == Mode::Organizer,
                    "observation": crate::sync::scrubbed(&self.runtime.policy, p.observation),
                    "sweep": stats
                }),
                correlation_id: Some(p.correlation.unwrap_or_else(|| self.corr())),
                run_at: None,
            };
            self.deps.store.enqueue(&job, self.now).await?;
            match p.kind {
                Kind::New => report.jobs.new += 1,
                Kind::Changed => report.jobs.changed += 1,
                Kind::Deleted => report.jobs.deleted += 1,
            }
        }
        Ok(())
    }

    /// Whether TOPdesk can get a requester for a new Exchange booking: the organizer is a TOPdesk person or
    /// the tenant has a fallback person. Without one the planner records nothing and mails a refusal, which
    /// a sweep must not repeat every time.
    async fn has_requester(&self, obs: &Observation) -> Result<bool, SyncError> {
        if self.runtime.policy.fallback_person.is_some() {
            return Ok(true);
        }
        let persons = self.runtime.topdesk.find_persons_by_email(obs.organizer.as_str()).await?;
        if persons.iter().any(|p| p.id.is_some()) {
            return Ok(true);
        }
        tracing::info!(
            "organizer of a new room event is not a TOPdesk person and there is no fallback; skipped"
        );
        Ok(false)
    }

    /// Writes the [`AUDIT_MASS_DELETION_HELD`] entry naming the room and the counts.
    async fn audit_held(&self, stats: &SweepStats, held: usize) -> Result<(), SyncError> {
        let target = format!(
            "room {} ({}): the sweep would cancel {} of {} future bookings; {held} deletion(s) held for an admin",
            self.mailbox(),
            self.mapping.id,
            stats.cancelling,
            stats.future_bookings,
        );
        tracing::warn!(%target, "mass-deletion guard: deletions held");
        self.deps
            .store
            .append_audit(&NewAuditEntry {
                tenant_id: Some(self.tenant()),
                at: self.now,
                actor: AUDIT_ACTOR.to_owned(),
                action: AUDIT_MASS_DELETION_HELD.to_owned(),
                target,
                ip: None,
            })
            .await?;
        Ok(())
    }
}

/// The window a lifecycle-triggered sweep covers: a day back (meetings in progress) to the policy's horizon.
pub fn lifecycle_window(policy: &orb_core::Policy, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (now - Duration::days(1), now + policy.horizon)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn minute_precision_ignores_seconds() {
        assert_eq!(minute(at("2026-09-03T09:00:59Z")), at("2026-09-03T09:00:00Z"));
        assert_eq!(minute(at("2026-09-03T09:00:00Z")), at("2026-09-03T09:00:00Z"));
    }

    #[test]
    fn jobs_by_kind_totals() {
        let jobs = JobsByKind { new: 1, changed: 2, deleted: 3 };
        assert_eq!(jobs.total(), 6);
        assert_eq!(JobsByKind::default().total(), 0);
    }

    #[test]
    fn the_lifecycle_window_reaches_the_horizon() {
        let now = at("2026-09-01T06:00:00Z");
        let policy = orb_core::Policy::new();
        assert_eq!(lifecycle_window(&policy, now), (at("2026-08-31T06:00:00Z"), now + policy.horizon));
        assert_eq!(cursor_name(RoomId::generate(now)).split('.').count(), 3);
    }
}
