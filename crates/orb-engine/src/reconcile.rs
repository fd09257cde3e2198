//! **Reconciliation**: the per-room sweep that heals what change detection missed, and what failed writes
//! left behind (DESIGN §3, "a calendarView delta sweep per room after `missed`/`subscriptionRemoved` and on
//! a schedule"; §4 rules 9 and 12).
//!
//! [`sweep_room`] reads three things for one room over a window — the room mailbox's calendar, the TOPdesk
//! reservations of the room's location, and the ORB records of the room — compares them and feeds one
//! `sync.observation` job ([`orb_store::jobs::SyncObservationJob`]) per difference into the room's lane, exactly as the
//! TOPdesk poller does, so the worker applies them in order with that room's notifications, with the
//! planner, the executor and the mails. [`sweep_tenant`] sweeps every enabled room of a tenant;
//! [`sweep_job`] runs one scheduled `reconcile.sweep` job. `crate::subscriptions` runs [`sweep_room`] after
//! a `missed` lifecycle notification and after recreating a subscription Graph removed.
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
//! - **By id**, only where the listings cannot answer: a live future record's item that is not listed (gone
//!   or moved?), the items of a record that is owed a write (below), a reservation whose listed start
//!   disagrees with its record.
//!
//! ## What is compared (each difference becomes one job, source [`ObservationSource::Sweep`])
//! - An event or reservation **without a record** → *new*. Items the planner would not record are not
//!   enqueued (cancelled, over, beyond the horizon, not accepted by the room, an organizer TOPdesk does
//!   not know while there is no fallback person), so a sweep does not re-send a refusal mail for the same
//!   item every time.
//! - **Pairs** (onboarding, and re-pairing after a database restore): the planner does not match items of
//!   both sides (it plans a new booking from one observation and creates its counterpart). So the sweep
//!   pairs record-less items itself, and inserts **one** record linked to both, writing nothing to either
//!   side: first by ORB's match id (an item carrying it — Graph's extended property / `transactionId`,
//!   TOPdesk's external link — pairs with the other side's item carrying the same one, or whose
//!   first-observation id (`sync::derived_booking_id`) it is), then by the same start and end
//!   (to the minute) and the event's organizer equal to the reservation's organizer (`reservedForOther`,
//!   else the requester). The record keeps the match id as its id (for a pair without one: the
//!   reservation's derived id). It is built with the planner (`plan` of each side's observation: the
//!   Exchange one gives the booking, the TOPdesk one its TOPdesk link and fingerprint), so both
//!   fingerprints are exactly what the next observations will hash, and it is inserted with one timeline
//!   entry. In organizer mode the room copy's subject is Exchange's rewrite (the organizer's name), so the
//!   booking takes TOPdesk's subject instead.
//! - **ORB's item without a record and without a partner** (the record was lost, e.g. a database restored
//!   from an older backup, and the other side's item is gone): the record is made again from the item
//!   under its match id, with the other side unwritten, and the item's observation is enqueued, so the
//!   worker creates the missing side again (idempotently, by the match id). When the other side shows a
//!   *cancelled* record-less item of the same booking, the record links it and its cancellation is
//!   enqueued instead, so ORB's item is cancelled rather than a cancelled meeting made again.
//! - A record whose side shows a **newer modification time** than the record's watermark (Graph
//!   `lastModifiedDateTime`, TOPdesk `modificationDate`) → *changed* (*deleted* when the item is now
//!   cancelled). Equal or older is unchanged: ORB's own writes store the time the side answered with. When
//!   both sides of one record changed, one job carries the Exchange observation with the TOPdesk one as its
//!   [`orb_core::Observation::counterpart`], so the planner applies the conflict policy (rule 5).
//! - A live, future record whose room event or reservation is **not in the window's listing** is looked up
//!   by id: gone (404) → *deleted* ([`observe::deleted`]); still there (moved out of the window, to another
//!   room, cancelled) → compared as above. A record without a known room-calendar event id is not checked
//!   for an Exchange deletion (the calendar cannot say whether its copy is gone).
//! - A record whose side **owes** the booking (see [`Owing`]) → *re-drive*: the side's write failed
//!   (`Failed`), was cut off (`Pending` for longer than [`PENDING_GRACE_MINUTES`]), or its item disagrees
//!   with the record (times, room, cancellation) although it did not change since ORB last processed it;
//!   bookings that are over are left alone.
//!   A side found stuck or drifted is first recorded as failed (status `Failed`, failure bookkeeping, a
//!   timeline entry), so the planner re-drives it like a side whose write failed and later sweeps use the
//!   failure's back-off. One job carries the good side's observation with the owing side's current state
//!   as its counterpart (`None` when that side holds no item), and `"redrive": "<side>"` in the payload;
//!   the planner writes to the owing side whatever makes it match the record (or only marks it synced when
//!   it already does). A change someone made to the owing side since is planned as that change instead.
//!   The scheduled sweep re-drives a `Failed` side with back-off ([`redrive_not_before`]: `failed_at` +
//!   2^`failed_count` minutes, at most 6 h), so a side that keeps refusing is not asked (and its operator
//!   alert not raised) on every sweep, and not while a transient failure's own `sync.retry` job is queued;
//!   [`SweepOptions::redrive_now`] (`orb sync --retry-failed`) ignores both. [`SweepReport::owed`] lists
//!   every owing record, re-driven now or not, with why it waits.
//!
//! ## The mass-deletion guard (rule 12)
//! The guard is for deletions the sweep **infers from absence** (an item not listed and 404 by id): a
//! listing that broke, or a room mapped to the wrong calendar, must not cancel a room's bookings. The sweep
//! counts the room's live future records it would cancel that way and the live future records in the
//! window. When [`orb_core::MassDeletionGuard::trips`] says so (and the caller did not approve,
//! [`SweepOptions::approve_mass_deletion`]), those deletions are **held**: no job is enqueued for them, an
//! audit entry [`AUDIT_MASS_DELETION_HELD`] names the room and the counts, and the report counts them in
//! [`SweepReport::held_deletions`]. Deletions a side confirmed — the item is listed (or read) as
//! cancelled, or the record is already cancelled and only the other side's cancellation is owed — are
//! neither counted nor held. Everything else of the sweep still goes ahead. The next sweep finds the held
//! deletions again (a full read keeps no cursor), so nothing is lost while an admin decides. Each job also
//! carries the sweep's [`SweepStats`] in its payload (`"sweep"`), so the planner's own guard can apply once
//! the worker reads it.
//!
//! ## Rejecting held deletions
//! An admin approves held deletions ([`SweepOptions::approve_mass_deletion`]: the cancellations go through)
//! or rejects them (the portal's "Reject", `orb sync --reject-mass-deletion`): "this was a mistake". A sweep
//! with [`SweepOptions::restore_held_deletions`] then carries out **no** deletion it infers from absence; it
//! restores each instead: the booking is written to the side it vanished from again, from the side that still
//! holds it, and nothing is cancelled anywhere. For each such deletion the other side's item is read by id;
//! when it is live and did not change since ORB last processed it, the record forgets the vanished side's
//! item and records that side as owing the booking ([`BookingRecord::forget_item`]: its link and fingerprint
//! cleared, status `Failed` without counting a failure, one timeline entry), and a re-drive job (`"redrive":
//! "<vanished side>"`, the item's observation without a counterpart) takes the deletion's place. The
//! planner's re-drive of a side that holds no item creates the booking there (as for a first create, carrying
//! the match id), and the executor links the new item to the same record: ORB's own item is then an echo,
//! never a new booking, and the next sweep finds both sides in step (nothing enqueued, nothing held). Should
//! the job never run, the record is owed like any failed side and later sweeps re-drive it. A deletion that
//! cannot be restored now (the other side's item changed meanwhile, is cancelled or cannot be read, or the
//! record's other side failed too) is held whatever the count, so a rejection never cancels anything.
//! [`SweepReport::restored`] counts the restored bookings; in a dry run they are listed as
//! [`Difference::Restored`]. In organizer mode the meeting is made again in the organizer's calendar with the
//! room invited.
//!
//! ## A sweep in a room's lane
//! A `reconcile.sweep` job runs in the room's lane, so the room's notifications wait while it runs. It only
//! reads remotely (the listings, by-id reads, person look-ups for new Outlook bookings) and writes only to
//! the store (jobs, audit, cursor, the records of pairs and of ORB's items without a record); every write
//! to Exchange or TOPdesk happens in the jobs it enqueues. [`sweep_job`] bounds it by
//! [`SWEEP_JOB_BUDGET`], and a sweep that fails on a passing error (or runs out of its budget) completes
//! its job with an audit entry [`AUDIT_SWEEP_FAILED`] instead of failing it: a failed job waits for its
//! retry at the head of its lane and would hold the room's notifications back; the next beat sweeps again.
//!
//! ## Invariants
//! - **Never plans a change or writes a side inline.** Differences become jobs in the room's lane; the
//!   only store writes besides jobs, the audit log and the cursor are the inserts of pairs and of ORB's
//!   items without a record, the failure bookkeeping of a side found stuck or drifted, and the forgetting
//!   of a vanished item whose deletion an admin rejected; none of them writes anything remote.
//! - **Idempotent.** A sweep right after a sweep whose jobs ran enqueues nothing.
//! - A sweep that fails part-way has enqueued only whole jobs; the next sweep finds the rest.
//! - The cursor `reconcile.sweep.<room id>` ([`cursor_name`]) holds the time of the last completed sweep,
//!   for observability only.
//! - Time only from the `now` argument (the job's budget is a runtime bound, not logic).
//! - Race note: a sweep run outside the room's lane may read a side just before the worker changes it; the
//!   job it enqueues is then stale or an echo for the planner, and an insert that loses a race to the
//!   worker fails on the store's unique reservation id (or match id) and is skipped. Scheduled sweeps and
//!   sweeps started from a lifecycle job run inside the room's lane. Where Exchange's versions are coarse
//!   (EWS: whole seconds, [`crate::exchange::Exchange::coarse_versions`]) a listing cannot be told older
//!   than a change in its second that a notification brought in before the sweep's job runs: there the
//!   job reads its Exchange item again by id when it runs (`sync`), and plans from that.
//!
//! ## Must not depend on
//! orb-web (work comes in through the store), the wall clock, and the order in which the sides list items.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use orb_core::{
    BookingId, BookingRecord, CorrelationId, EmailAddress, Lifecycle, Mode, NewIds, Observation,
    ObservationSource, ObservedRoom, PersonDirectory, PlanContext, RecordChange, RemoteIds, RoomId, RoomMap,
    RoomMapping, RoomResponse, Side, SubjectPolicy, SweepStats, SyncStatus, TenantId, plan,
};
use orb_graph::model::{Event, EventType};
use orb_store::jobs::{JobPayload as _, SyncObservationJob, SyncRetryJob};
use orb_store::{BookingFilter, JobStatus, Lane, NewAuditEntry, NewBookingEvent, StoreError};
use orb_topdesk::wire::ReservationDto;
use orb_topdesk::{Fiql, ReservationId, ReservationStatus, TopdeskError};
use serde_json::json;
use tracing::Instrument as _;

use crate::observe::{
    self, ObserveContext, ObserveError, SeriesKey, derived_booking_id, scrubbed, series_id_for,
};
use crate::poller::{POLL_FIELDS, POLL_PAGE_SIZE};
use crate::runtime::{AUDIT_ACTOR, SyncDeps, SyncError, TenantRuntime};

mod guard;
mod pairing;
mod redrive;

/// Audit action: a sweep held deletions because of the mass-deletion guard.
pub const AUDIT_MASS_DELETION_HELD: &str = "reconcile.mass_deletion_held";

/// Audit action: a sweep failed on a passing error (or ran out of its budget); the next one heals.
pub const AUDIT_SWEEP_FAILED: &str = "reconcile.sweep_failed";

/// Timeline kind of the entry an onboarded pair's record starts with.
pub const TIMELINE_ONBOARDED: &str = "decision";

/// Payload key of a re-drive job naming the side that owes the booking (`"exchange"` / `"topdesk"`).
pub const PAYLOAD_REDRIVE: &str = "redrive";

/// A side left `Pending` for longer than this (a job cut off between its writes and its commit, longer
/// than any job lease) owes the booking.
pub const PENDING_GRACE_MINUTES: i64 = 15;

/// Longest a `reconcile.sweep` job may run in its room's lane ([`sweep_job`]): far more than the reads of
/// a room take (a busy room's 180-day calendarView is some 30 pages), far less than a person waits for a
/// booking to reach the other side. Reads the clients retry internally (a throttled Graph read waits out
/// `Retry-After`) count against it.
pub const SWEEP_JOB_BUDGET: StdDuration = StdDuration::from_secs(60);

/// The name of a room's sweep cursor: `reconcile.sweep.<room id>`.
pub fn cursor_name(room: RoomId) -> String {
    format!("reconcile.sweep.{room}")
}

/// Failures of a booking a sweep re-drives at its next beat, before the back-off starts.
pub const REDRIVE_FREE_FAILURES: u32 = 3;

/// When a scheduled sweep re-drives a side whose write failed at `failed_at` for the `failed_count`th time:
/// at the next sweep for the first [`REDRIVE_FREE_FAILURES`] failures (a passing fault heals within one
/// beat), then `failed_at + min(2^(failed_count - 3) minutes, 6 h)`: a refusal for a business reason (the
/// room is occupied in TOPdesk) is tried again after 2, 4, 8 … minutes, at most every 6 hours. (A refused
/// re-drive mails nobody.)
pub fn redrive_not_before(failed_at: DateTime<Utc>, failed_count: u32) -> DateTime<Utc> {
    if failed_count <= REDRIVE_FREE_FAILURES {
        return failed_at;
    }
    let minutes = 1_i64 << (failed_count - REDRIVE_FREE_FAILURES).min(20);
    failed_at + Duration::minutes(minutes).min(Duration::hours(6))
}

/// Why a side owes a booking: it does not hold what ORB decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owing {
    /// ORB's write to it failed for good, or transiently beyond the retry limit (status `Failed`).
    Failed,
    /// It stayed `Pending` for longer than [`PENDING_GRACE_MINUTES`] (a write cut off).
    Stuck,
    /// Its item disagrees with the record (times, room, cancellation) although it did not change since ORB
    /// last processed it.
    Drifted,
}

impl Owing {
    /// In words.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Stuck => "left pending",
            Self::Drifted => "differs from the record",
        }
    }
}

/// The side of `record` that owes the booking by its status, why, and since when: a `Failed` side (when
/// both failed, the side other than the last good one: `failed_processor`, else TOPdesk, so the good side
/// is `failed_processor`'s other side, else Exchange), or a side `Pending` for longer than
/// [`PENDING_GRACE_MINUTES`] while the other one is not. `None`: nothing owed by status (drift needs the
/// items; the sweep finds it).
pub fn owed_by_status(record: &BookingRecord, now: DateTime<Utc>) -> Option<(Side, Owing, DateTime<Utc>)> {
    let failed_since = record.failed_at.unwrap_or(record.last_updated_at);
    let is = |side: Side, status: SyncStatus| record.status(side) == status;
    match (is(Side::Exchange, SyncStatus::Failed), is(Side::Topdesk, SyncStatus::Failed)) {
        (true, true) => {
            let good = record.failed_processor.map_or(Side::Exchange, Side::other);
            return Some((good.other(), Owing::Failed, failed_since));
        }
        (true, false) => return Some((Side::Exchange, Owing::Failed, failed_since)),
        (false, true) => return Some((Side::Topdesk, Owing::Failed, failed_since)),
        (false, false) => {}
    }
    let stuck = record.last_updated_at + Duration::minutes(PENDING_GRACE_MINUTES) <= now;
    match (is(Side::Exchange, SyncStatus::Pending), is(Side::Topdesk, SyncStatus::Pending)) {
        (true, false) if stuck => Some((Side::Exchange, Owing::Stuck, record.last_updated_at)),
        (false, true) if stuck => Some((Side::Topdesk, Owing::Stuck, record.last_updated_at)),
        _ => None,
    }
}

/// Whether a side's item disagrees with what the record says the booking is: start or end (to the minute),
/// room, or live vs cancelled.
pub fn disagrees(record: &BookingRecord, obs: &Observation, rooms: &RoomMap) -> bool {
    let room = match &obs.room {
        ObservedRoom::Mailbox(m) => rooms.by_mailbox(m).map(|r| r.id),
        ObservedRoom::Location(l) => rooms.by_location(l).map(|r| r.id),
        ObservedRoom::None => None,
    };
    minute(obs.start) != minute(record.start)
        || minute(obs.end) != minute(record.end)
        || room != Some(record.room_id)
        || (obs.lifecycle == Lifecycle::Active) == record.cancelled
}

/// How a sweep may act beyond the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOptions {
    /// An admin approved this sweep's cancellations: the mass-deletion guard does not hold them.
    pub approve_mass_deletion: bool,
    /// Only report: enqueue nothing, insert no record, write no audit entry or cursor; the differences are
    /// listed in [`SweepReport::planned`] (`orb sync --dry-run`).
    pub dry_run: bool,
    /// Re-drive every owing record now, ignoring the back-off and queued retries (`orb sync
    /// --retry-failed`).
    pub redrive_now: bool,
    /// An admin rejected this room's held deletions (the portal's "Reject", `orb sync
    /// --reject-mass-deletion`): every deletion the sweep infers from absence is **restored** instead of
    /// carried out — the booking is written to the side it vanished from again, from the side that still
    /// holds it (see "Rejecting held deletions" in the module docs). One that cannot be restored now is held.
    pub restore_held_deletions: bool,
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
    /// An event and a reservation carrying ORB's match id whose record was lost: linked again.
    Relinked,
    /// ORB's item whose record was lost and whose counterpart is gone: recorded again, the counterpart
    /// made again.
    Recreated,
    /// A record whose side owes the booking ([`PlannedChange::side`] is that side): written again.
    Redrive,
    /// A held deletion an admin rejected: the booking vanished from [`PlannedChange::side`] is written to
    /// it again from the other side.
    Restored,
}

/// One difference a sweep found, in words an operator can check before a backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChange {
    /// What kind.
    pub difference: Difference,
    /// The side the difference was seen on (for a pair: Exchange; for a re-drive: the side that owes it).
    pub side: Side,
    /// The booking's start.
    pub start: DateTime<Utc>,
    /// The booking's end.
    pub end: DateTime<Utc>,
    /// Its organizer.
    pub organizer: EmailAddress,
}

const fn side_name(side: Side) -> &'static str {
    match side {
        Side::Exchange => "Exchange",
        Side::Topdesk => "TOPdesk",
    }
}

impl PlannedChange {
    fn of(difference: Difference, o: &Observation) -> Self {
        Self { difference, side: o.side, start: o.start, end: o.end, organizer: o.organizer.clone() }
    }

    /// What ORB does about it, in words.
    pub fn action(&self) -> String {
        let seen = side_name(self.side);
        let other = side_name(self.side.other());
        match self.difference {
            Difference::New => format!("new in {seen}: create it in {other}"),
            Difference::Changed => format!("changed in {seen}: update {other}"),
            Difference::Deleted => format!("gone or cancelled in {seen}: cancel it in {other}"),
            Difference::Held => format!("gone in {seen}: held by the mass-deletion guard (needs approval)"),
            Difference::Paired => "on both sides already: link them, write nothing".to_owned(),
            Difference::Relinked => {
                "ORB's booking on both sides (match id), its record lost: link them again, write nothing"
                    .to_owned()
            }
            Difference::Recreated => {
                format!(
                    "ORB's item in {seen}, its record lost and {other}'s gone: record it, create it in {other}"
                )
            }
            Difference::Redrive => {
                format!("{seen} does not hold the booking as ORB decided: write it to {seen} again")
            }
            Difference::Restored => {
                format!("gone in {seen}, the deletion rejected: write it to {seen} again from {other}")
            }
        }
    }
}

/// Jobs one sweep enqueued, by kind of difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobsByKind {
    /// Items without a record (and ORB's items recorded again whose counterpart is made again).
    pub new: usize,
    /// Records whose side changed.
    pub changed: usize,
    /// Records whose side cancelled or lost the item.
    pub deleted: usize,
    /// Records re-driven: a side that owes the booking is written again.
    pub redriven: usize,
}

impl JobsByKind {
    /// All jobs.
    pub fn total(&self) -> usize {
        self.new + self.changed + self.deleted + self.redriven
    }
}

/// A record whose side owes the booking (see [`Owing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedBooking {
    /// The booking.
    pub booking: BookingId,
    /// The side that does not hold it as ORB decided.
    pub side: Side,
    /// Why.
    pub owing: Owing,
    /// Since when (the failure, or ORB's last change of the record).
    pub since: DateTime<Utc>,
    /// When a scheduled sweep re-drives it (back-off after a failure; a queued retry goes first).
    pub due: DateTime<Utc>,
    /// Whether this sweep re-drove it (in a dry run: would).
    pub redriven: bool,
    /// Why not, when it was not re-driven.
    pub waiting: Option<String>,
    /// The booking's start.
    pub start: DateTime<Utc>,
    /// The booking's end.
    pub end: DateTime<Utc>,
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
            recreated: 0,
            held_deletions: 0,
            restored: 0,
            restored_to: Vec::new(),
            unchanged: 0,
            skipped: 0,
            owed: Vec::new(),
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
    /// Event + reservation pairs recorded as one booking (onboarded, or linked again by match id); nothing
    /// written to either side.
    pub paired: usize,
    /// ORB's items recorded again whose counterpart is made again (their jobs count in [`JobsByKind::new`]).
    pub recreated: usize,
    /// Deletions held by the mass-deletion guard (no job enqueued).
    pub held_deletions: usize,
    /// Deletions inferred from absence restored instead ([`SweepOptions::restore_held_deletions`]): the
    /// booking is written to the side it vanished from again (their jobs count in [`JobsByKind::redriven`]).
    pub restored: usize,
    /// The bookings restored, each with the side it is written to again.
    pub restored_to: Vec<(BookingId, Side)>,
    /// Items equal to their record (or older).
    pub unchanged: usize,
    /// Items the sweep leaves alone: not a booking ORB syncs (see the module docs).
    pub skipped: usize,
    /// Every record whose side owes the booking, re-driven now or waiting for its back-off.
    pub owed: Vec<OwedBooking>,
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

/// Runs one scheduled `reconcile.sweep` job of `room` (see "A sweep in a room's lane" in the module docs):
/// the sweep over [`lifecycle_window`], bounded by `budget` ([`SWEEP_JOB_BUDGET`] in production). A passing
/// failure, or a sweep that runs out of its budget, is not an error: it is logged and audited
/// ([`AUDIT_SWEEP_FAILED`]) and the job completes, so the lane moves on and the next beat sweeps again. A
/// permanent failure is the job's error (not retryable: the job is dead, the lane moves on too). Returns
/// what the sweep did, in words.
pub async fn sweep_job(
    deps: &SyncDeps,
    tenant: TenantId,
    room: RoomId,
    budget: StdDuration,
) -> Result<String, SyncError> {
    let runtime = deps.tenant(tenant)?;
    let now = deps.clock.now();
    let window = lifecycle_window(&runtime.policy, now);
    let failure = match tokio::time::timeout(budget, sweep_room(deps, tenant, room, window, now)).await {
        Ok(Ok(report)) => {
            return Ok(format!(
                "swept: {} job(s) enqueued ({} re-drive(s)), {} pair(s) linked, {} deletion(s) held",
                report.jobs.total(),
                report.jobs.redriven,
                report.paired,
                report.held_deletions
            ));
        }
        Ok(Err(e)) if !e.is_retryable() => return Err(e),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("the sweep took longer than {} s and was stopped", budget.as_secs()),
    };
    tracing::warn!(tenant = %tenant, room = %room, error = %failure, "sweep failed; the next beat sweeps again");
    let entry = NewAuditEntry {
        tenant_id: Some(tenant),
        at: deps.clock.now(),
        actor: AUDIT_ACTOR.to_owned(),
        action: AUDIT_SWEEP_FAILED.to_owned(),
        target: format!("room {room}: {failure}"),
        ip: None,
    };
    if let Err(e) = deps.store.append_audit(&entry).await {
        tracing::warn!(error = %e, "the failed sweep could not be audited");
    }
    Ok(format!("sweep failed ({failure}); the next beat sweeps again"))
}

/// Sweeps `room` of `tenant` over `window` (see the module docs): reads the room's calendar, its TOPdesk
/// reservations and its records, enqueues one `sync.observation` job per difference in the room's lane,
/// records pairs and ORB's items without a record, re-drives records a side owes, holds deletions the
/// mass-deletion guard stops, and sets the room's sweep cursor to `now`. A room that is not mapped and
/// enabled (in the runtime and the store) is not swept ([`SweepReport::swept`] is `false`).
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
    sweep.redrive(&mut report, options).await?;
    sweep.pair(&mut report, options).await?;
    sweep.adopt_orphans(&mut report, options).await?;
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
        redriven = report.jobs.redriven,
        owed = report.owed.len(),
        paired = report.paired,
        recreated = report.recreated,
        held = report.held_deletions,
        "room swept"
    );
    Ok(report)
}

// ---------------------------------------------------------------------------------------------------------
// observing (the observe context is not `Send`: built and dropped inside these synchronous helpers)
// ---------------------------------------------------------------------------------------------------------

/// No series resolver (reservations and gone items: their series is the record's).
fn no_series(_: &SeriesKey<'_>) -> Option<orb_core::SeriesId> {
    None
}

/// No person resolver: TOPdesk participants stay unresolved in the sweep's observations.
fn no_person(_: &orb_topdesk::PersonId) -> Option<EmailAddress> {
    None
}

/// Observes an event of the room mailbox's own calendar. An occurrence belongs to the series of its
/// master in this room (the id the worker derives: `sync::series_id_for`), so a lost notification for an
/// occurrence heals at the next sweep like any other.
fn observe_event(
    runtime: &TenantRuntime,
    mailbox: &EmailAddress,
    event: &Event,
) -> Result<Observation, ObserveError> {
    let tenant = runtime.tenant_id;
    let series = move |k: &SeriesKey<'_>| Some(series_id_for(tenant, k));
    let octx = ObserveContext::new(&runtime.rooms, runtime.link_type, &series, ObservationSource::Sweep)
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

/// The key of the pairing by times: start and end to the minute, and the organizer.
fn time_key(o: &Observation) -> (DateTime<Utc>, DateTime<Utc>, EmailAddress) {
    (minute(o.start), minute(o.end), o.organizer.clone())
}

/// Whether two record-less items of both sides are one booking by ORB's match id: one carries the id the
/// other carries, or the id the other's first observation gives ([`derived_booking_id`]).
fn same_match_id(tenant: TenantId, a: &Observation, b: &Observation) -> bool {
    let carried = |o: &Observation| o.orb_match_id;
    let known = |o: &Observation| [o.orb_match_id, derived_booking_id(tenant, o)];
    carried(a).is_some_and(|id| known(b).contains(&Some(id)))
        || carried(b).is_some_and(|id| known(a).contains(&Some(id)))
}

/// Whether two record-less items of both sides are one booking by their times and organizer (and do not
/// carry different match ids).
fn same_times(a: &Observation, b: &Observation) -> bool {
    let different_ids =
        a.orb_match_id.is_some() && b.orb_match_id.is_some() && a.orb_match_id != b.orb_match_id;
    !different_ids && time_key(a) == time_key(b)
}

// ---------------------------------------------------------------------------------------------------------
// the sweep of one room
// ---------------------------------------------------------------------------------------------------------

/// A difference found for one record or item, waiting to be enqueued (or held).
struct Pending {
    observation: Observation,
    correlation: Option<CorrelationId>,
    kind: Kind,
    /// The live, future record it would cancel on a deletion inferred from absence (counted and held by the
    /// guard).
    cancels: Option<BookingId>,
    /// For a re-drive: the side that owes the booking.
    redrive: Option<Side>,
    /// Already listed in [`SweepReport::planned`] when it was found.
    listed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Changed,
    Deleted,
    Redrive,
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
    /// The Exchange change is the event's absence (not listed, 404 by id): a deletion inferred.
    exchange_absent: bool,
    /// The TOPdesk change is the reservation's absence: a deletion inferred.
    topdesk_absent: bool,
    /// The room event as it is, when it is not newer than the record's watermark.
    exchange_now: Option<Observation>,
    /// The reservation read in full, when it is not newer than the record's watermark.
    topdesk_now: Option<Observation>,
    /// The listed reservation: its id and listed start.
    topdesk_listed: Option<(ReservationId, Option<DateTime<Utc>>)>,
}

impl Seen {
    fn change(&self, side: Side) -> Option<&Observation> {
        match side {
            Side::Exchange => self.exchange_change.as_ref(),
            Side::Topdesk => self.topdesk_change.as_ref(),
        }
    }

    fn absent(&self, side: Side) -> bool {
        match side {
            Side::Exchange => self.exchange_absent,
            Side::Topdesk => self.topdesk_absent,
        }
    }
}

/// One side's item of a record, as far as the sweep can tell (short-lived: one per read, never stored).
#[allow(clippy::large_enum_variant)]
enum Current {
    /// The item, observed; `absent`: the observation is the item's absence (a deletion inferred).
    Item { observation: Observation, absent: bool },
    /// The side holds no item of the booking (gone, or never made).
    Nothing,
    /// The item exists but is not a booking the sweep can observe (or its id is not the side's): left alone.
    Unknown,
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
    /// Live room events without a record (ORB's own ones included).
    new_events: Vec<Observation>,
    /// Live reservations without a record, with the id of the person they are for.
    new_reservations: Vec<(Observation, Option<String>)>,
    /// Cancelled items without a record (the counterparts ORB's items without a record may have).
    cancelled_items: Vec<Observation>,
    /// Re-drives and the jobs of ORB's items recorded again, waiting for [`Sweep::finish`].
    pending: Vec<Pending>,
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
            cancelled_items: Vec::new(),
            pending: Vec::new(),
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
    /// The room's live records that are not over yet: what the guard counts and what may be re-driven.
    fn future_bookings(&self) -> BTreeSet<BookingId> {
        self.records.iter().filter(|r| !r.cancelled && r.end > self.now).map(|r| r.id).collect()
    }

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
        let listed = self
            .runtime
            .exchange
            .calendar_view(self.mailbox(), self.window.0, self.window.1, self.corr())
            .await?;
        let mut events = Vec::with_capacity(listed.len());
        for event in listed {
            events.push(self.with_watermark(event).await?);
        }
        self.events = events;
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

    /// A listed event with its `lastModifiedDateTime`. calendarView cannot `$select` it (reference §6.5),
    /// so a listed event may come without it: one that may have changed (it disagrees with its record on
    /// times, room, cancellation or organizer; or it has no record and would be recorded, or carries ORB's
    /// match id) is read by id; any other is taken as unchanged, with its record's watermark. (Where Graph
    /// sends the timestamp on the listing, every change is seen by it, subject and participants included.)
    async fn with_watermark(&mut self, event: Event) -> Result<Event, SyncError> {
        let Some(id) = event.id.clone().filter(|_| event.last_modified_date_time.is_none()) else {
            return Ok(event);
        };
        let record = match self.record_of_event(&event).await? {
            Some(rid) => self.by_id.get(&rid).cloned(),
            None => None,
        };
        let mut probe = event;
        probe.last_modified_date_time =
            Some(record.as_ref().and_then(|r| r.exchange.modified_at).unwrap_or(self.now));
        let Ok(obs) = observe_event(self.runtime, self.mailbox(), &probe) else { return Ok(probe) };
        let rooms = &self.runtime.rooms;
        let may_have_changed = match &record {
            Some(r) => {
                disagrees(r, &obs, rooms)
                    || (obs.organizer != r.organizer && !rooms.is_room_address(&obs.organizer))
            }
            None => self.worth_recording(&obs) || obs.orb_match_id.is_some(),
        };
        if !may_have_changed {
            return Ok(probe);
        }
        match self.runtime.exchange.get_event(self.mailbox(), &id, self.corr()).await {
            Ok(full) => Ok(full),
            Err(e) if e.is_not_found() => Ok(probe),
            Err(e) => Err(e.into()),
        }
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

    /// The record of ORB's item by its match id, when it is not among the listed records.
    async fn record_by_match_id(&mut self, match_id: BookingId) -> Result<Option<BookingId>, SyncError> {
        if self.by_id.contains_key(&match_id) {
            return Ok(Some(match_id));
        }
        match self.deps.store.get_booking(self.tenant(), match_id).await {
            Ok(rec) => {
                self.by_id.insert(match_id, rec);
                Ok(Some(match_id))
            }
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
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
        if let Some(found) =
            store.find_booking(self.tenant(), &orb_store::BookingKey::TopdeskReservation(&id)).await?
        {
            let rid = found.id;
            self.by_id.entry(rid).or_insert(found);
            return Ok(Some(rid));
        }
        match match_id {
            Some(match_id) => self.record_by_match_id(match_id).await,
            None => Ok(None),
        }
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

    /// Whether the room's item `obs` of `record` changed since ORB last processed the booking's Exchange
    /// side: its version is newer than the record's watermark; or, where versions are coarse
    /// ([`crate::exchange::Exchange::coarse_versions`]: EWS, whole seconds), it is the watermark's and the
    /// item disagrees with the record — a person's change in the second of ORB's last write or read, not a
    /// side that drifted (re-driving it would write the record's state over that change). The job reads
    /// the item again when it runs; ORB's own write in that second agrees with the record, so it stays
    /// unchanged.
    fn exchange_changed(&self, record: &BookingRecord, obs: &Observation) -> bool {
        if Self::is_newer(record, Side::Exchange, obs.modified_at) {
            return true;
        }
        let same_step = record.exchange.modified_at.is_some_and(|w| {
            w.duration_trunc(Duration::seconds(1)).ok()
                == obs.modified_at.duration_trunc(Duration::seconds(1)).ok()
        });
        self.runtime.exchange.coarse_versions() && same_step && disagrees(record, obs, &self.runtime.rooms)
    }

    /// Compares the room's calendar with the records.
    async fn compare_exchange(&mut self, report: &mut SweepReport) -> Result<(), SyncError> {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            let mut record_id = self.record_of_event(event).await?;
            let obs = match observe_event(self.runtime, self.mailbox(), event) {
                Ok(o) => o,
                Err(e) => {
                    if let Some(id) = record_id {
                        self.seen.entry(id).or_default().exchange = true;
                    }
                    tracing::debug!(event = ?event.id, error = %e, "room event is not a booking the sweep syncs");
                    report.skipped += 1;
                    continue;
                }
            };
            if record_id.is_none()
                && let Some(match_id) = obs.orb_match_id
            {
                record_id = self.record_by_match_id(match_id).await?;
            }
            if let Some(id) = record_id {
                self.seen.entry(id).or_default().exchange = true;
            }
            match record_id.and_then(|id| self.by_id.get(&id)).cloned() {
                Some(record) => {
                    let record = self.learn_room_copy(record, event, &obs).await?;
                    let obs = self.as_worker_sees(obs, Some(&record));
                    let changed = self.exchange_changed(&record, &obs);
                    let seen = self.seen.entry(record.id).or_default();
                    if changed {
                        seen.exchange_change = Some(obs);
                    } else {
                        seen.exchange_now = Some(obs);
                        report.unchanged += 1;
                    }
                }
                None if self.worth_recording(&obs) => self.new_events.push(obs),
                None => {
                    if obs.lifecycle != Lifecycle::Active {
                        self.cancelled_items.push(obs);
                    }
                    report.skipped += 1;
                }
            }
        }
        self.events = events;
        Ok(())
    }

    /// The room's copy of a meeting ORB wrote in the organizer's calendar, found by its `iCalUId`: its id is
    /// recorded (ORB learns it from the copy's notification, which a backfill or a lost notification never
    /// brings), so a later deletion of the copy, which names only the id, finds the booking.
    async fn learn_room_copy(
        &mut self,
        record: BookingRecord,
        event: &Event,
        obs: &Observation,
    ) -> Result<BookingRecord, SyncError> {
        let Some(id) = event.id.as_deref() else { return Ok(record) };
        let unknown = record.exchange.room_event_id.is_none()
            && record.exchange.organizer_event_id.as_deref() != Some(id)
            && event.is_organizer != Some(true)
            && !record.cancelled
            && obs.lifecycle == Lifecycle::Active;
        if !unknown {
            return Ok(record);
        }
        let mut next = record.clone();
        next.exchange.room_event_id = Some(id.to_owned());
        match self.deps.store.update_booking(&next, &[], &[], self.now).await {
            Ok(stored) => {
                for r in self.records.iter_mut().filter(|r| r.id == stored.id) {
                    *r = stored.clone();
                }
                self.by_id.insert(stored.id, stored.clone());
                Ok(stored)
            }
            // A worker wrote the record meanwhile: its next sweep learns the id.
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(record),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an item without a record is one the planner would record (see the module docs); ORB's own
    /// items (carrying a match id) are recorded by the sweep itself.
    fn worth_recording(&self, obs: &Observation) -> bool {
        obs.lifecycle == Lifecycle::Active
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
                let seen = self.seen.entry(rid).or_default();
                seen.topdesk = true;
                seen.topdesk_listed = Some((id, summary.planned_start_date));
                let record = &self.by_id[&rid];
                // A cancelled reservation of a cancelled booking has nothing left to sync, whatever its
                // `modificationDate` (ORB's own cancel is not read back).
                if !Self::is_newer(record, Side::Topdesk, modified)
                    || (record.cancelled && summary.status == Some(ReservationStatus::Cancelled))
                {
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
                None if self.worth_recording(&obs) => {
                    // The person the booking is for: only needed to plan the pair's record (nothing is written).
                    let requester = full
                        .reserved_for_other
                        .as_ref()
                        .and_then(|p| p.id)
                        .or_else(|| full.requester.as_ref().and_then(|p| p.id))
                        .map(|p| p.to_string());
                    self.new_reservations.push((obs, requester));
                }
                None => {
                    if obs.lifecycle != Lifecycle::Active {
                        self.cancelled_items.push(obs);
                    }
                    report.skipped += 1;
                }
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
                && record.exchange.room_event_id.is_some()
            {
                match self.exchange_by_id(record).await? {
                    Current::Item { observation, absent } => {
                        let changed = absent || self.exchange_changed(record, &observation);
                        let seen = self.seen.entry(record.id).or_default();
                        if changed {
                            seen.exchange_change = Some(observation);
                            seen.exchange_absent = absent;
                        } else {
                            seen.exchange_now = Some(observation);
                            report.unchanged += 1;
                        }
                    }
                    Current::Nothing => {}
                    Current::Unknown => report.skipped += 1,
                }
            }
            if !seen_td
                && record.topdesk_status == SyncStatus::Synced
                && record.topdesk.reservation_id.is_some()
            {
                match self.topdesk_by_id(record, None).await? {
                    Current::Item { observation, absent } => {
                        let seen = self.seen.entry(record.id).or_default();
                        if absent || Self::is_newer(record, Side::Topdesk, observation.modified_at) {
                            seen.topdesk_change = Some(observation);
                            seen.topdesk_absent = absent;
                        } else {
                            seen.topdesk_now = Some(observation);
                            report.unchanged += 1;
                        }
                    }
                    Current::Nothing => {}
                    Current::Unknown => report.skipped += 1,
                }
            }
        }
        Ok(())
    }

    /// The record's room event read by its id: observed, or its absence (404) as a deletion observation.
    async fn exchange_by_id(&self, record: &BookingRecord) -> Result<Current, SyncError> {
        let Some(event_id) = record.exchange.room_event_id.clone() else { return Ok(Current::Nothing) };
        match self.runtime.exchange.get_event(self.mailbox(), &event_id, self.corr()).await {
            Ok(event) => match observe_event(self.runtime, self.mailbox(), &event) {
                Ok(obs) => {
                    Ok(Current::Item { observation: self.as_worker_sees(obs, Some(record)), absent: false })
                }
                Err(e) => {
                    tracing::debug!(event = %event_id, error = %e, "record's room event not observable");
                    Ok(Current::Unknown)
                }
            },
            Err(e) if e.is_not_found() => {
                let ids = RemoteIds { event_id: Some(event_id), ..RemoteIds::default() };
                let observation = observe_gone(self.runtime, Side::Exchange, ids, record, self.now);
                Ok(Current::Item { observation, absent: true })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The record's reservation (or `listed`, the one the listing matched to it) read in full by its id:
    /// observed, or its absence (404) as a deletion observation.
    async fn topdesk_by_id(
        &self,
        record: &BookingRecord,
        listed: Option<ReservationId>,
    ) -> Result<Current, SyncError> {
        let id = match (listed, record.topdesk.reservation_id.as_deref()) {
            (Some(id), _) => id,
            (None, None) => return Ok(Current::Nothing),
            (None, Some(text)) => match text.parse::<ReservationId>() {
                Ok(id) => id,
                Err(_) => {
                    tracing::warn!(reservation = %text, "record's reservation id is not a TOPdesk id");
                    return Ok(Current::Unknown);
                }
            },
        };
        match self.read_reservation(id).await? {
            Some(full) => match observe_reservation(self.runtime, &full) {
                Ok(observation) => Ok(Current::Item { observation, absent: false }),
                Err(e) => {
                    tracing::debug!(reservation = %id, error = %e, "record's reservation not observable");
                    Ok(Current::Unknown)
                }
            },
            None => {
                let ids = RemoteIds { reservation_id: Some(id.to_string()), ..RemoteIds::default() };
                let observation = observe_gone(self.runtime, Side::Topdesk, ids, record, self.now);
                Ok(Current::Item { observation, absent: true })
            }
        }
    }

    /// One side's item of a record as it is now: the change or state the comparison found, else read by id.
    async fn current(&mut self, record: &BookingRecord, side: Side) -> Result<Current, SyncError> {
        let seen = self.seen.entry(record.id).or_default();
        if let Some(change) = seen.change(side) {
            return Ok(Current::Item { observation: change.clone(), absent: seen.absent(side) });
        }
        match side {
            Side::Exchange => {
                if let Some(now) = &seen.exchange_now {
                    return Ok(Current::Item { observation: now.clone(), absent: false });
                }
                if seen.exchange {
                    return Ok(Current::Unknown); // listed, but not a booking the sweep observes
                }
                self.exchange_by_id(record).await
            }
            Side::Topdesk => {
                if let Some(now) = &seen.topdesk_now {
                    return Ok(Current::Item { observation: now.clone(), absent: false });
                }
                let listed = seen.topdesk_listed.map(|(id, _)| id);
                let current = self.topdesk_by_id(record, listed).await?;
                if let Current::Item { observation, absent: false } = &current {
                    self.seen.entry(record.id).or_default().topdesk_now = Some(observation.clone());
                }
                Ok(current)
            }
        }
    }

    /// Queues the job of an item recorded again (listed already). The worker finds the record by the item's
    /// ids; the match id is left out, since the planner takes an item carrying one for ORB's own echo.
    fn pending_job(&mut self, observation: Observation, correlation: Option<CorrelationId>, kind: Kind) {
        self.pending.push(Pending {
            observation: Observation { orb_match_id: None, ..observation },
            correlation,
            kind,
            cancels: None,
            redrive: None,
            listed: true,
        });
    }
}

/// The window a lifecycle-triggered sweep covers: a day back (meetings in progress) to the policy's horizon.
pub fn lifecycle_window(policy: &orb_core::Policy, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (now - Duration::days(1), now + policy.horizon)
}

#[cfg(test)]
mod tests;
