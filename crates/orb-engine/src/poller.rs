//! **TOPdesk polling**: change detection for a side without a change feed (DESIGN §3, "TOPdesk change
//! detection").
//!
//! TOPdesk's `modificationDate` is not filterable, so [`poll_topdesk`] lists a *window* of the mapped rooms'
//! reservations (the caller picks it: a near window every few seconds, the whole horizon on a slower beat)
//! with a small `$fields` ([`POLL_FIELDS`]) and diffs each one by id + `modificationDate` against the ORB
//! record:
//!
//! - no record with that reservation id (and none under ORB's match id, when the reservation carries ORB's
//!   external link) → **new**;
//! - a record whose `topdesk.modification_date` is absent or older than the reservation's → **changed**;
//! - equal or newer → **unchanged**: no job, no further call. ORB's own writes store the `modificationDate`
//!   TOPdesk answered with, so a reservation ORB just wrote is unchanged; a person's later edit in TOPdesk
//!   makes it changed.
//!
//! The list's `$fields` carry everything an observation needs (times, status, requester and the person
//! it is for, participants, facilities, series, ORB's link — not the notes), so a new or changed
//! reservation costs no second read: it is turned into an observation straight from the list
//! ([`observe::from_topdesk_reservation`], source [`ObservationSource::Poll`]) and enqueued as one [`orb_store::jobs::JobKind::SyncObservation`] job in its room's lane, the
//! same job a TOPdesk push hint fans out into, so a booking's work always runs in its room's lane.
//!
//! ## One list call for all rooms
//! [`orb_topdesk::TopdeskClient::reservations_in_window`] takes a FIQL filter, and TOPdesk (and the
//! emulator) filter reservations on `reservedFacilities.location.id`, so one paged call covers every
//! mapped, enabled room (`reservedFacilities.location.id=in=(…)`); no per-room calls are needed.
//! Reservations that come back without a mapped room anyway (a filter the server ignored) are *skipped*,
//! as are reservations that cannot become an observation (no requester e-mail, several mapped rooms, gone
//! by the time they are read).
//!
//! ## Invariants
//! - The poll only enqueues jobs: it never plans or writes a booking (the worker does, in the room lane).
//! - A poll that fails part-way enqueued only whole jobs; the next poll finds the rest again (a job enqueued
//!   twice is an echo for the second sync).
//! - The cursor `topdesk.poll.<name>` ([`cursor_name`]) holds the time of the last *completed* poll, for
//!   observability only: correctness never depends on it.
//! - Time only from the `now` argument.

use chrono::{DateTime, Utc};
use orb_core::{BookingId, BookingRecord, Observation, ObservationSource, RoomMapping, TenantId};
use orb_store::jobs::{JobPayload as _, SyncObservationJob};
use orb_store::{BookingKey, Lane, StoreError};
use orb_topdesk::wire::ReservationDto;
use orb_topdesk::{Fiql, ReservationStatus};

use crate::observe::{self, ObserveContext, ObserveError, SeriesKey, scrubbed};
use crate::runtime::{SyncDeps, SyncError, TenantRuntime};

/// The `$fields` of the poll's list: what the diff needs (id, `modificationDate`, the room, ORB's link) and
/// everything an observation is made of, so a new or changed reservation needs no second read. Not the
/// notes (ORB records only whether there are any, and does not need that from a poll).
pub const POLL_FIELDS: &str = "id,number,status,archived,briefDescription,plannedStartDate,plannedEndDate,\
     requester,reservedForOther,participants,numberOfPersons,reservedFacilities,series,externalLinks,\
     modificationDate";

/// Page size of the poll's list (`$top`).
pub const POLL_PAGE_SIZE: u32 = 500;

/// The cursor of the near window's poll.
pub const CURSOR_NEAR: &str = "topdesk.poll.near";

/// The name of a poll's cursor: `topdesk.poll.<window>` (e.g. `near`, `horizon`).
pub fn cursor_name(window: &str) -> String {
    format!("topdesk.poll.{window}")
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Reservations TOPdesk listed in the window.
    pub listed: usize,
    /// New or changed reservations enqueued as `sync.observation` jobs.
    pub enqueued: usize,
    /// Reservations whose record is up to date (no job).
    pub unchanged: usize,
    /// Reservations not synced by ORB: not in a mapped, enabled room, not readable as a booking, or gone.
    pub skipped: usize,
}

/// Polls the near window and records the poll in the [`CURSOR_NEAR`] cursor: see [`poll_topdesk_named`].
pub async fn poll_topdesk(
    deps: &SyncDeps,
    tenant: TenantId,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<PollReport, SyncError> {
    poll_topdesk_named(deps, tenant, "near", window, now).await
}

/// Lists the reservations of `tenant`'s mapped, enabled rooms overlapping `window`, enqueues one
/// `sync.observation` job per new or changed reservation (see the module docs) and sets the cursor
/// [`cursor_name`]`(name)` to `now` (RFC 3339).
pub async fn poll_topdesk_named(
    deps: &SyncDeps,
    tenant: TenantId,
    name: &str,
    window: (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Result<PollReport, SyncError> {
    let started = std::time::Instant::now();
    let runtime = deps.tenant(tenant)?;
    let rooms = enabled_rooms(runtime);
    let mut report = PollReport::default();
    if !rooms.is_empty() {
        let locations: Vec<&str> = rooms.iter().map(|r| r.location.as_str()).collect();
        let filter = Fiql::is_in("reservedFacilities.location.id", locations);
        let listed = runtime
            .topdesk
            .reservations_in_window(Some(&filter), window.0, window.1, Some(POLL_FIELDS), POLL_PAGE_SIZE)
            .await?;
        report.listed = listed.len();
        for summary in &listed {
            match diff(deps, runtime, summary).await? {
                Diff::Unchanged => report.unchanged += 1,
                Diff::Skipped => report.skipped += 1,
                Diff::Changed => {
                    if enqueue_changed(deps, runtime, summary, now).await? {
                        report.enqueued += 1;
                    } else {
                        report.skipped += 1;
                    }
                }
            }
        }
    }
    deps.store.set_cursor(tenant, &cursor_name(name), &now.to_rfc3339(), now).await?;
    // A duration of this process (the monotonic clock), not a date.
    metrics::histogram!("orb_topdesk_poll_seconds", "window" => name.to_owned())
        .record(started.elapsed().as_secs_f64());
    tracing::debug!(
        tenant = %tenant,
        listed = report.listed,
        enqueued = report.enqueued,
        unchanged = report.unchanged,
        skipped = report.skipped,
        "TOPdesk poll"
    );
    Ok(report)
}

/// The tenant's enabled room mappings.
fn enabled_rooms(runtime: &TenantRuntime) -> Vec<RoomMapping> {
    runtime.rooms.iter().filter(|m| m.enabled).cloned().collect()
}

enum Diff {
    Changed,
    Unchanged,
    Skipped,
}

/// ORB's match id on a reservation (its external link of the tenant's type).
fn orb_match_id(runtime: &TenantRuntime, r: &ReservationDto) -> Option<BookingId> {
    r.external_links
        .iter()
        .flatten()
        .find(|l| l.kind.trim().parse::<i64>().ok() == Some(runtime.link_type))
        .and_then(|l| l.id.trim().parse::<BookingId>().ok())
}

async fn diff(deps: &SyncDeps, runtime: &TenantRuntime, r: &ReservationDto) -> Result<Diff, SyncError> {
    let (Some(id), Some(modified)) = (r.id, r.modification_date) else {
        tracing::warn!(number = ?r.number, "listed reservation without id or modificationDate; skipped");
        return Ok(Diff::Skipped);
    };
    if !r.location_ids().iter().any(|l| runtime.rooms.by_location(l).is_some()) {
        return Ok(Diff::Skipped);
    }
    let tenant = runtime.tenant_id;
    let id_text = id.to_string();
    let mut record: Option<BookingRecord> =
        deps.store.find_booking(tenant, &BookingKey::TopdeskReservation(&id_text)).await?;
    if record.is_none()
        && let Some(match_id) = orb_match_id(runtime, r)
    {
        record = match deps.store.get_booking(tenant, match_id).await {
            Ok(found) => Some(found),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
    }
    // A cancelled reservation of a cancelled booking has nothing left to sync, whatever its
    // `modificationDate` (ORB's own cancel is not read back: the list shows it cancelled).
    if record.as_ref().is_some_and(|rec| rec.cancelled) && r.status == Some(ReservationStatus::Cancelled) {
        return Ok(Diff::Unchanged);
    }
    Ok(match record.and_then(|rec| rec.topdesk.modification_date) {
        Some(stored) if stored >= orb_core::stored_precision(modified) => Diff::Unchanged,
        _ => Diff::Changed,
    })
}

fn no_series(_: &SeriesKey<'_>) -> Option<orb_core::SeriesId> {
    None
}

fn no_person(_: &orb_topdesk::PersonId) -> Option<orb_core::EmailAddress> {
    None
}

/// Built and dropped synchronously: the observe context is not `Send`.
fn observe_polled(runtime: &TenantRuntime, r: &ReservationDto) -> Result<Observation, ObserveError> {
    let octx = ObserveContext::new(&runtime.rooms, runtime.link_type, &no_series, ObservationSource::Poll)
        .with_persons(&no_person);
    observe::from_topdesk_reservation(r, &octx)
}

/// Enqueues the listed reservation's observation in its room's lane (the list carries every field it
/// needs, [`POLL_FIELDS`]); `false` when it is not a booking ORB syncs.
async fn enqueue_changed(
    deps: &SyncDeps,
    runtime: &TenantRuntime,
    listed: &ReservationDto,
    now: DateTime<Utc>,
) -> Result<bool, SyncError> {
    let Some(id) = listed.id else { return Ok(false) };
    let observation = match observe_polled(runtime, listed) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(
                reservation = %id,
                error = %e,
                "polled reservation is not a booking ORB syncs; skipped"
            );
            return Ok(false);
        }
    };
    let room = match &observation.room {
        orb_core::ObservedRoom::Location(loc) => runtime.rooms.by_location(loc).map(|m| m.id),
        _ => None,
    };
    let Some(room) = room else { return Ok(false) };
    // Under `drop` the subject never reaches the job table.
    let job = SyncObservationJob::new(scrubbed(&runtime.policy, observation)).to_job(
        Lane::room(runtime.tenant_id, room),
        Some(orb_core::CorrelationId::generate(now)),
        None,
    );
    deps.store.enqueue(&job, now).await?;
    Ok(true)
}
