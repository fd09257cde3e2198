//! **The sync pipeline**: one observation in, one committed booking out — find the record, build the plan
//! context (the person directory), plan, execute, commit (see [`super`] for the invariants).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use orb_core::{
    Action, BookingId, BookingRecord, CorrelationId, EmailAddress, FailedWrite, NewIds, NothingReason,
    Observation, ObservationSource, PersonDirectory, Plan, PlanContext, RecordChange, SeriesId, Side,
    SyncStatus, TenantId, TimelineEntry, TimelineKind, WriteFailure, WriteKind, plan, plan_write_failure,
};
use orb_store::jobs::{JobPayload as _, SyncRetryJob};
use orb_store::{BookingKey, Lane, NewBookingEvent, Series, Store, StoreError};
use orb_topdesk::{ReservationId, TopdeskError};
use serde_json::{Value, json};
use tracing::Instrument as _;

use super::cache::JobCache;
use super::room::{
    MeetingRef, OrganizerRead, RoomCopy, master_ical_uid, no_person, observe_in_room, organizer_copy,
};
use crate::execute::{ExecContext, ExecutionReport, Outcome, apply_to_record, execute};
use crate::observe::{
    self, ObserveContext, ObserveError, SeriesKey, derived_booking_id, scrubbed, series_id_for,
};
use crate::runtime::{
    AUDIT_WRITES_PAUSED, AUDIT_WRITES_RESUMED, Commit, SyncDeps, SyncError, SyncOutcome, TenantRuntime,
    audit_pause,
};

/// Syncs one observation of `tenant`: find the record, plan, execute, commit (see the module docs).
pub async fn sync_observation(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    observation: &Observation,
) -> Result<SyncOutcome, SyncError> {
    sync_from(deps, tenant, observation, false, &JobCache::default()).await
}

/// [`sync_observation`]; `room_copy_subject`: the subject was read from the room mailbox's own copy of a
/// meeting someone else organizes (the organizer's copy could not be read), which Exchange rewrites by
/// default (`DeleteSubject`/`AddOrganizerToSubject`: the room's copy shows the organizer's name). Such a
/// subject is not the meeting's: for a known booking the record's subject stands in for it, so the
/// rewrite is neither an echo breaker nor a change.
pub(super) async fn sync_from(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    observation: &Observation,
    room_copy_subject: bool,
    cache: &JobCache,
) -> Result<SyncOutcome, SyncError> {
    let max = deps.max_conflict_tries.max(1);
    let mut last_booking = String::from("(new)");
    for attempt in 1..=max {
        match sync_once(deps, tenant, observation, room_copy_subject, attempt, cache).await {
            Err(SyncError::Store(StoreError::Conflict { what, .. } | StoreError::AlreadyExists { what })) => {
                tracing::info!(attempt, %what, "booking changed concurrently; reloading and planning again");
                last_booking = what;
            }
            other => return other,
        }
    }
    Err(SyncError::ConflictRetriesExhausted { booking: last_booking, tries: max })
}

pub(super) async fn find_record(
    store: &dyn Store,
    tenant: TenantId,
    obs: &Observation,
) -> Result<Option<BookingRecord>, SyncError> {
    if let Some(id) = obs.orb_match_id {
        return match store.get_booking(tenant, id).await {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    let ids = &obs.ids;
    let mut keys: Vec<BookingKey<'_>> = Vec::new();
    match obs.side {
        Side::Topdesk => keys.extend(ids.reservation_id.as_deref().map(BookingKey::TopdeskReservation)),
        Side::Exchange => {
            keys.extend(ids.event_id.as_deref().map(BookingKey::ExchangeEvent));
            keys.extend(ids.ical_uid.as_deref().map(|ical_uid| BookingKey::ICalUid {
                ical_uid,
                original_start: obs.series.map(|s| s.original_start),
            }));
        }
    }
    for key in &keys {
        if let Some(found) = store.find_booking(tenant, key).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The TOPdesk person with `email` (`None`: no person), looked up once per job, and found persons reused
/// across jobs ([`crate::runtime::PersonCache`]).
async fn person_id(
    tenant: &TenantRuntime,
    cache: &JobCache,
    email: &EmailAddress,
) -> Result<Option<String>, SyncError> {
    if let Some(known) = cache.persons.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(email) {
        return Ok(known.clone());
    }
    if let Some(id) = tenant.persons.get(email) {
        return Ok(Some(id));
    }
    let persons = tenant.topdesk.find_persons_by_email(email.as_str()).await?;
    if persons.len() > 1 {
        tracing::warn!(count = persons.len(), "several TOPdesk persons share an e-mail; the first is used");
    }
    let id = persons.into_iter().find_map(|p| p.id).map(|id| id.to_string());
    if let Some(id) = &id {
        tenant.persons.put(email, id);
    }
    cache.persons.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(email.clone(), id.clone());
    Ok(id)
}

/// The TOPdesk persons the planner needs: the requester, i.e. the organizer of an Exchange observation (or
/// of its Exchange counterpart). Participants are not looked up here: the planner never needs their
/// person ids (the executor looks them up when it writes them).
async fn person_directory(
    tenant: &TenantRuntime,
    cache: &JobCache,
    obs: &Observation,
) -> Result<PersonDirectory, SyncError> {
    let wanted: BTreeSet<&EmailAddress> = std::iter::once(obs)
        .chain(obs.counterpart.as_deref())
        .filter(|o| o.side == Side::Exchange)
        .map(|o| &o.organizer)
        .filter(|e| !tenant.rooms.is_room_address(e))
        .collect();
    let mut found = Vec::new();
    for email in wanted {
        if let Some(id) = person_id(tenant, cache, email).await? {
            found.push((email.clone(), id));
        }
    }
    Ok(PersonDirectory::new(found))
}

/// TOPdesk names participants by person id only. The ids the observation could not resolve are matched
/// against the record's participants (looked up by e-mail); record participants that are no TOPdesk
/// person cannot be held by TOPdesk at all and stay. So a TOPdesk observation of an unchanged reservation
/// has the record's participants (no attendee is dropped from the meeting), and a person removed in
/// TOPdesk is removed. Ids the record does not explain (a person added in TOPdesk, or every participant of
/// a reservation made in TOPdesk) are looked up by id in one call and become their e-mail addresses;
/// persons without an e-mail stay counted in `unsynced`.
async fn resolve_participants(
    tenant: &TenantRuntime,
    cache: &JobCache,
    record: Option<&BookingRecord>,
    obs: &mut Observation,
) -> Result<(), SyncError> {
    let mut unresolved: BTreeSet<String> = obs
        .unsynced
        .get(observe::UNRESOLVED_PARTICIPANT_IDS)
        .map(|ids| ids.split(',').filter(|i| !i.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let mut participants = obs.participants.clone();
    for email in
        record.iter().flat_map(|r| r.participants.iter()).filter(|e| !tenant.rooms.is_room_address(e))
    {
        let keep = match person_id(tenant, cache, email).await? {
            Some(id) => unresolved.remove(&id),
            None => true,
        };
        if keep && !participants.contains(email) {
            participants.push(email.clone());
        }
    }
    let ids: Vec<orb_topdesk::PersonId> =
        unresolved.iter().filter_map(|i| i.parse().ok()).take(100).collect();
    if !ids.is_empty() {
        for person in tenant.topdesk.find_persons_by_ids(&ids).await? {
            let (Some(id), Some(email)) = (person.id, person.email.as_deref()) else { continue };
            let Ok(email) = EmailAddress::parse(email) else { continue };
            unresolved.remove(&id.to_string());
            tenant.persons.put(&email, &id.to_string());
            if !participants.contains(&email) {
                participants.push(email);
            }
        }
    }
    if unresolved.is_empty() {
        obs.unsynced.remove(observe::UNRESOLVED_PARTICIPANT_IDS);
    } else {
        let left: Vec<String> = unresolved.into_iter().collect();
        obs.unsynced.insert(observe::UNRESOLVED_PARTICIPANT_IDS.to_owned(), left.join(","));
    }
    obs.participants = participants;
    Ok(())
}

/// A record whose person was erased (`orb privacy erase`) names a pseudonym where Outlook needs a mailbox.
/// Before planning, the addresses the meeting shows now (this Exchange observation, or the meeting read
/// from the room's copy for a TOPdesk one) whose pseudonym the record holds are put back, so writes reach
/// the organizer's calendar and the record is consistent with its source again.
async fn restore_erased(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    record: &mut BookingRecord,
    obs: &Observation,
) -> Result<(), SyncError> {
    let seen = match obs.side {
        Side::Exchange => Some(obs.clone()),
        Side::Topdesk => exchange_now(deps, tenant, record).await?,
    };
    if let Some(seen) = seen
        && orb_core::privacy::restore_erased(
            record,
            std::iter::once(&seen.organizer).chain(&seen.participants),
        )
    {
        tracing::info!(booking = %record.id, "an erased person's address is shown by Outlook again");
    }
    Ok(())
}

/// Whether the side the observation is *not* from was never written for this record.
fn other_side_never_written(record: &BookingRecord, observed: Side) -> bool {
    let other = observed.other();
    let linked = match other {
        Side::Exchange => {
            record.exchange.organizer_event_id.is_some() || record.exchange.room_event_id.is_some()
        }
        Side::Topdesk => record.topdesk.reservation_id.is_some(),
    };
    record.fingerprint(other).is_none() && !linked && !record.cancelled
}

async fn sync_once(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    obs: &Observation,
    room_copy_subject: bool,
    attempt: u32,
    cache: &JobCache,
) -> Result<SyncOutcome, SyncError> {
    let mut adjusted = scrubbed(&tenant.policy, obs.clone());
    let mut record = find_record(deps.store.as_ref(), tenant.tenant_id, &adjusted).await?;
    let derived = derived_booking_id(tenant.tenant_id, &adjusted);
    if record.is_none()
        && let Some(id) = derived
    {
        record = match deps.store.get_booking(tenant.tenant_id, id).await {
            Ok(found) => Some(found),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
    }
    if let Some(r) = record.as_mut()
        && orb_core::privacy::has_pseudonyms(r)
    {
        restore_erased(deps, tenant, r, &adjusted).await?;
    }
    match (&record, adjusted.side) {
        (Some(r), Side::Exchange) => {
            if room_copy_subject {
                adjusted.subject.clone_from(&r.subject);
            }
            // A room-only event is organized by the room itself: the booking's organizer stands in.
            if tenant.rooms.is_room_address(&adjusted.organizer) {
                adjusted.organizer = r.organizer.clone();
            }
        }
        (Some(r), Side::Topdesk) => resolve_participants(tenant, cache, Some(r), &mut adjusted).await?,
        (None, side) => {
            if side == Side::Topdesk {
                resolve_participants(tenant, cache, None, &mut adjusted).await?;
            }
            if side == Side::Exchange && room_copy_subject {
                // A new booking seen only in the room's copy (a sweep found it): its subject is Exchange's
                // rewrite (the organizer's name). The organizer's copy has the meeting's; without it the
                // booking starts without a subject and the organizer's next change brings it.
                let corr = CorrelationId::generate(deps.clock.now());
                let span = (adjusted.start, adjusted.end);
                let organizer = adjusted.organizer.clone();
                let master = match adjusted.series {
                    Some(series) => {
                        let room = match &adjusted.room {
                            orb_core::ObservedRoom::Mailbox(m) => Some(m.clone()),
                            _ => None,
                        };
                        match room {
                            Some(room) => {
                                master_ical_uid(deps, tenant, cache, &room, series.series_id, None, corr)
                                    .await?
                            }
                            None => None,
                        }
                    }
                    None => None,
                };
                let org = match adjusted.ids.ical_uid.clone() {
                    Some(ical) => {
                        let meeting = MeetingRef {
                            ical_uid: &ical,
                            known_id: None,
                            master_ical_uid: master.as_deref(),
                            span,
                            record_span: None,
                        };
                        organizer_copy(tenant, cache, &organizer, &meeting, corr).await?
                    }
                    None => None,
                };
                adjusted.subject = org.and_then(|e| e.subject);
                adjusted = scrubbed(&tenant.policy, adjusted);
            }
            if let Some(series) = adjusted.series {
                ensure_series_row(deps, tenant, &adjusted, series.series_id).await?;
            }
        }
    }
    let mut obs = adjusted;
    let now = deps.clock.now();
    let new_ids = NewIds {
        booking: derived.unwrap_or_else(|| BookingId::generate(now)),
        correlation: CorrelationId::generate(now),
    };
    // The side a plan overwrites is read at most once per try (a reservation before writing to it, an
    // event after Graph refused a conditional write); then the planner's conflict rule decides.
    let mut read_before = false;
    loop {
        let outcome =
            plan_and_commit(deps, tenant, &obs, record.as_ref(), new_ids, !read_before, attempt, cache)
                .await?;
        let current = match (outcome, record.as_ref()) {
            (Step::Committed(outcome), _) => return Ok(outcome),
            (Step::TopdeskChanged(reservation), _) => Some(*reservation),
            (Step::ExchangeChanged, Some(record)) => exchange_now(deps, tenant, record).await?,
            (Step::ExchangeChanged, None) => None,
        };
        read_before = true;
        if current.is_some() {
            obs.counterpart = current.map(Box::new);
        }
    }
}

/// What one plan-and-commit did.
enum Step {
    /// Committed (or nothing to commit).
    Committed(SyncOutcome),
    /// Not committed: before an Exchange change was written over it, the reservation turned out to have
    /// changed since ORB last saw it (here as observed, participants resolved).
    TopdeskChanged(Box<Observation>),
    /// Not committed: Graph refused a conditional write (`412`), the event changed since ORB last saw it.
    ExchangeChanged,
}

/// Plans `obs` against `record` and carries the plan out, unless the side it overwrites changed since
/// ORB last saw it and `may_read` allows finding out (see [`Step`]): then nothing is committed and the
/// caller plans again with that side's current state as the counterpart (rule 5 decides).
#[allow(clippy::too_many_arguments)]
async fn plan_and_commit(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    obs: &Observation,
    record: Option<&BookingRecord>,
    new_ids: NewIds,
    may_read: bool,
    attempt: u32,
    cache: &JobCache,
) -> Result<Step, SyncError> {
    let persons = person_directory(tenant, cache, obs).await?;
    let now = deps.clock.now();
    let replan_as_new = record.filter(|r| other_side_never_written(r, obs.side));
    let new_ids = match replan_as_new {
        Some(r) => NewIds { booking: r.id, correlation: r.correlation_id },
        None => new_ids,
    };
    let ctx = PlanContext {
        tenant_id: tenant.tenant_id,
        policy: &tenant.policy,
        rooms: &tenant.rooms,
        persons: &persons,
        now,
        new_ids,
        sweep: None,
    };
    let mut the_plan = plan(record, obs, &ctx);
    let settled = matches!(the_plan.nothing_reason(), Some(NothingReason::Echo | NothingReason::Stale));
    if let Some(stored) = replan_as_new.filter(|_| !settled) {
        // The item may carry this booking's own match id already (a reservation ORB linked): planned as
        // new, it is still this booking's item, not "ORB's item without a record".
        let mut unlinked = obs.clone();
        if unlinked.orb_match_id == Some(stored.id) {
            unlinked.orb_match_id = None;
        }
        let fresh = plan(None, &unlinked, &ctx);
        // Refused again for want of a TOPdesk requester: the organizer was told the first time; the
        // failure only counts (the sweep's back-off grows).
        let refused_again =
            matches!(fresh.nothing_reason(), Some(NothingReason::NoRequester)) && stored.failed_count > 0;
        let mut actions = fresh.actions;
        if refused_again {
            actions.retain(|a| !matches!(a, orb_core::Action::SendMail { .. }));
        }
        if let RecordChange::Create(mut new) = fresh.record {
            // The same booking, planned as new again: keep what the store holds of it.
            new.version = stored.version;
            new.created_at = stored.created_at;
            new.processor_created = stored.processor_created;
            new.original_organizer = stored.original_organizer.clone();
            if refused_again {
                new.failed_count = stored.failed_count + 1;
            } else {
                new.failed_at = stored.failed_at;
                new.failed_processor = stored.failed_processor;
                new.failed_count = stored.failed_count;
            }
            new.retry_count = stored.retry_count;
            new.complexity_index = stored.complexity_index;
            the_plan = Plan { actions, record: RecordChange::Update(new), timeline: fresh.timeline };
        }
    }
    if may_read
        && let Some(record) = record
        && let Some(current) = topdesk_changed_since(tenant, cache, record, obs, &the_plan).await?
    {
        tracing::info!(booking = %record.id, "the reservation changed since ORB last saw it; planning again with it");
        return Ok(Step::TopdeskChanged(Box::new(current)));
    }
    let (booking, correlation) = match the_plan.record.record().or(record) {
        Some(r) => (Some(r.id), Some(r.correlation_id)),
        None => (None, None),
    };
    let span = tracing::info_span!(
        "sync",
        tenant = %tenant.tenant_id,
        side = %obs.side,
        booking = booking.map(tracing::field::display),
        correlation = correlation.map(tracing::field::display),
        attempt,
    );
    // A create ORB makes for a booking it never recorded, on the job's and the plan's first try, cannot
    // have been made before: the guard look-ups (TOPdesk by external link, Graph by match id) are skipped.
    // Any retry, any known record (its side may be owed, or re-paired after a restore) and a sweep's
    // finding look first.
    let may_have_created = record.is_some()
        || attempt > 1
        || !cache.first_try
        || obs.source == orb_core::ObservationSource::Sweep;
    commit_plan(deps, tenant, obs, record, the_plan, &ctx, attempt, may_read, may_have_created)
        .instrument(span)
        .await
}

/// Before an Exchange change is written over a reservation, where a TOPdesk change could win the conflict
/// ([`orb_core::ConflictPolicy::can_win`]; TOPdesk has no conditional write): the reservation is read (one
/// GET), and returned as observed when it changed since the record's watermark. `None`: no read needed,
/// not changed, or gone / not observable (the write then finds out).
async fn topdesk_changed_since(
    tenant: &TenantRuntime,
    cache: &JobCache,
    record: &BookingRecord,
    obs: &Observation,
    the_plan: &Plan,
) -> Result<Option<Observation>, SyncError> {
    let needed = obs.side == Side::Exchange
        && obs.counterpart.is_none()
        && tenant.policy.conflict.can_win(Side::Topdesk)
        && the_plan.overwrites(Side::Topdesk);
    let Some(id) = record.topdesk.reservation_id.as_deref().filter(|_| needed) else { return Ok(None) };
    let Ok(id) = id.parse::<ReservationId>() else { return Ok(None) };
    let reservation = match tenant.topdesk.get_reservation(id).await {
        Ok(r) => r,
        Err(TopdeskError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut current = match observe_reservation(tenant, &reservation) {
        Ok(o) => o,
        Err(e) => {
            tracing::info!(reservation = %id, error = %e, "the reservation is not observable; writing as planned");
            return Ok(None);
        }
    };
    if record.topdesk.modification_date.is_some_and(|w| current.modified_at <= w) {
        return Ok(None);
    }
    resolve_participants(tenant, cache, Some(record), &mut current).await?;
    Ok(Some(current))
}

/// The booking's Exchange meeting as it is now (after Graph refused a conditional write): the room's copy
/// read by its id (or its absence) and observed with the organizer's copy, as a notification would be, with
/// a fresh calendar view (the job's may be older than the change). `None` when it cannot be observed.
async fn exchange_now(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    record: &BookingRecord,
) -> Result<Option<Observation>, SyncError> {
    let Some(room) = tenant.rooms.by_id(record.room_id) else { return Ok(None) };
    let mailbox = room.mailbox.address().clone();
    let corr = record.correlation_id;
    let fresh = JobCache::default();
    let read = match record.exchange.room_event_id.as_deref() {
        Some(id) => match tenant.exchange.get_event(&mailbox, id, corr).await {
            Ok(event) => Some(event),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        },
        None => room_copy_by_uid(tenant, &mailbox, record, corr).await?,
    };
    let copy = match &read {
        Some(event) => RoomCopy::Item(event),
        None => RoomCopy::Gone { event_id: record.exchange.room_event_id.clone(), record },
    };
    let observed = match observe_in_room(deps, tenant, &fresh, &mailbox, copy, OrganizerRead::Always, corr)
        .await
    {
        Ok(o) => o,
        Err(SyncError::Observe(e)) => {
            tracing::info!(booking = %record.id, error = %e, "the meeting is not observable; the write is retried");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut current = observed.observation;
    if observed.room_copy_subject {
        current.subject.clone_from(&record.subject);
    }
    if tenant.rooms.is_room_address(&current.organizer) {
        current.organizer = record.organizer.clone();
    }
    Ok(Some(scrubbed(&tenant.policy, current)))
}

/// The room's copy of a single meeting whose id ORB never learned (it comes with the copy's notification,
/// which may be lost), found by the meeting's `iCalUId`: without it the copy would be taken for gone, and a
/// gone copy of a meeting that still books the room reads as a cancellation. A protocol that finds by time
/// searches where the record holds the meeting and where the organizer's meeting is now.
async fn room_copy_by_uid(
    tenant: &TenantRuntime,
    mailbox: &EmailAddress,
    record: &BookingRecord,
    corr: CorrelationId,
) -> Result<Option<orb_graph::model::Event>, SyncError> {
    let Some(ical_uid) = record.exchange.ical_uid.as_deref().filter(|_| record.series_id.is_none()) else {
        return Ok(None);
    };
    let mut spans = vec![(record.start, record.end)];
    if tenant.exchange.finds_by_time()
        && let Some(id) = record.exchange.organizer_event_id.as_deref()
    {
        match tenant.exchange.get_event(&record.organizer, id, corr).await {
            Ok(meeting) => {
                let at = |t: Option<&orb_graph::model::DateTimeTimeZone>| t.and_then(|t| t.to_utc().ok());
                if let (Some(start), Some(end)) = (at(meeting.start.as_ref()), at(meeting.end.as_ref())) {
                    spans.push((start, end));
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    match tenant.exchange.find_by_ical_uid(mailbox, ical_uid, &spans, corr).await {
        Ok(found) => Ok(found),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn commit_plan(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    obs: &Observation,
    before: Option<&BookingRecord>,
    the_plan: Plan,
    ctx: &PlanContext<'_>,
    attempt: u32,
    replan_if_changed: bool,
    may_have_created: bool,
) -> Result<Step, SyncError> {
    let now = ctx.now;
    let nothing = the_plan.nothing_reason();
    let outcome = match nothing {
        Some(reason) => reason.as_str(),
        None if the_plan.writes().next().is_some() => "writes",
        None => "record_only",
    };
    metrics::counter!("orb_plans_total", "outcome" => outcome).increment(1);
    let Some(after) = the_plan.record.record().cloned() else {
        if the_plan.writes().next().is_some() {
            let actions: Vec<&str> = the_plan.actions.iter().map(orb_core::Action::name).collect();
            tracing::warn!(?actions, "plan writes without a record change; not executed");
        }
        tracing::info!(reason = ?nothing, "nothing to commit");
        return Ok(Step::Committed(SyncOutcome {
            booking: before.map(|r| r.id),
            correlation: before.map(|r| r.correlation_id),
            commit: Commit::Nothing,
            nothing,
            writes_done: 0,
            failed: Vec::new(),
            retry_at: None,
            tries: attempt,
        }));
    };
    let exec_ctx = ExecContext {
        exchange: tenant.exchange.as_ref(),
        topdesk: &tenant.topdesk,
        rooms: &tenant.rooms,
        link_type: tenant.link_type,
        mail_sender: &tenant.mail_sender,
        correlation: after.correlation_id,
        portal_base_url: &tenant.portal_base_url,
        cancel_reason: &tenant.cancel_reason,
        clock: deps.clock.as_ref(),
        may_have_created,
    };
    let has_effects = the_plan.actions.iter().any(|a| a.is_write() || matches!(a, Action::SendMail { .. }));
    // A side that denied ORB's credentials is not called again before its pause ends (crate::pause).
    for side in [Side::Exchange, Side::Topdesk] {
        let writes_here = the_plan.writes().any(|a| a.target_side() == Some(side));
        if writes_here && let Some(until) = tenant.writes.paused_until(side, now) {
            return Err(SyncError::WritesPaused { tenant: tenant.tenant_id, side, until });
        }
    }
    let report = if has_effects { Some(execute(&the_plan, &after, before, &exec_ctx).await) } else { None };
    if let Some(report) = &report {
        count_writes(&the_plan, report);
        if report.outcomes.iter().any(|o| o.side.is_some() && matches!(o.outcome, Outcome::Done(_))) {
            let waited = deps.clock.now() - obs.modified_at;
            metrics::histogram!("orb_change_to_write_seconds")
                .record(waited.num_milliseconds().max(0) as f64 / 1000.0);
        }
    }
    if let Some(report) = &report {
        if let Some((side, reason)) = report.denied() {
            // A configuration failure of the tenant: nothing of this try is committed (writes that landed
            // are found again by their idempotency keys when the job runs after the pause), nobody is
            // mailed, and the operator is told once per pause.
            let paused = tenant.writes.deny(side, now);
            if paused.newly {
                audit_pause(deps, tenant, side, AUDIT_WRITES_PAUSED, reason, now).await;
            }
            tracing::error!(%side, until = %paused.until, reason, "writes denied: tenant paused");
            return Err(SyncError::WritesPaused { tenant: tenant.tenant_id, side, until: paused.until });
        }
        for side in [Side::Exchange, Side::Topdesk] {
            let landed =
                report.outcomes.iter().any(|o| o.side == Some(side) && matches!(o.outcome, Outcome::Done(_)));
            if landed && tenant.writes.resume(side) {
                audit_pause(deps, tenant, side, AUDIT_WRITES_RESUMED, "a write landed again", now).await;
                tracing::info!(%side, "writes accepted again: tenant resumed");
            }
        }
        if replan_if_changed && report.changed() == Some(Side::Exchange) {
            // Nothing of this try is committed: the conditional write changed nothing (and the plan's other
            // writes are to the same side, after it, or idempotent). The event is read and planned again.
            tracing::info!("the meeting changed since ORB last saw it (412); reading it and planning again");
            return Ok(Step::ExchangeChanged);
        }
    }

    let mut next = after;
    let mut events: Vec<NewBookingEvent> = the_plan.timeline.iter().map(timeline_event).collect();
    let mut writes_done = 0;
    if let Some(report) = &report {
        apply_to_record(&mut next, report);
        mark_written_sides(&mut next, report);
        events.extend(outcome_events(&the_plan, report, now));
        writes_done = report
            .outcomes
            .iter()
            .filter(|o| o.side.is_some() && matches!(o.outcome, Outcome::Done(_)))
            .count();
    }

    let mut jobs = Vec::new();
    let mut failed = Vec::new();
    let mut retry_at = None;
    if let Some(report) = &report
        && report.failed_write(Side::Exchange).is_none()
        && report.failed_write(Side::Topdesk).is_none()
        && writes_done > 0
    {
        // Every write landed: the count of retries of the current failure starts again.
        next.retry_count = 0;
    }
    for side in [Side::Exchange, Side::Topdesk] {
        let Some(report) = report.as_ref() else { continue };
        let Some(failure) = report.failure(side) else { continue };
        let kind = report
            .failed_write(side)
            .and_then(|(index, _)| the_plan.actions.get(index))
            .and_then(Action::write_kind)
            .unwrap_or(WriteKind::Change);
        failed.push(side);
        // The execute contract: keep the failed side's old fingerprint. When the write is tried again
        // (a transient failure, or a refused cancellation), the observed side's too, so the retried
        // observation is planned again (not taken for an echo); after a permanent refusal the same
        // observation again is an echo (no refusal mail per notification), a changed one is planned again.
        keep_old_side(&mut next, before, side);
        let tried_again = matches!(failure, WriteFailure::Transient { .. }) || kind == WriteKind::Cancel;
        match (tried_again, before) {
            (true, Some(before)) => {
                // Nothing changes but the failure bookkeeping (and ids a successful write learned): the
                // retried observation is planned again from the same record, so a booking live again after
                // a cancellation, or an occurrence moved room (cancel + create), is planned the same way and
                // not taken for "already holds it". The watermarks stay where they were, so a sweep finds
                // the side's change again should the retries run out.
                let mut reverted = before.clone();
                apply_to_record(&mut reverted, report);
                next = reverted;
            }
            (true, None) => keep_old_side(&mut next, before, obs.side),
            (false, _) => {}
        }
        let redrive = obs.source == ObservationSource::Sweep
            && before.is_some_and(|b| b.status(side) == SyncStatus::Failed);
        let failed_write = FailedWrite { side, kind, failure: failure.clone(), redrive };
        let on_failure = plan_write_failure(&next, &failed_write, ctx);
        events.extend(on_failure.timeline.iter().map(timeline_event));
        if let Some(r) = on_failure.record.record() {
            next = r.clone();
        }
        for action in &on_failure.actions {
            if let Action::ScheduleRetry { after, .. } = action {
                let at = now + *after;
                retry_at = Some(retry_at.map_or(at, |t: DateTime<Utc>| t.min(at)));
                let retry =
                    SyncRetryJob { booking_id: next.id, side, observation: obs.clone(), room_copy: false };
                jobs.push(retry.to_job(
                    Lane::room(tenant.tenant_id, next.room_id),
                    Some(next.correlation_id),
                    Some(at),
                ));
            }
        }
        // What the refusal calls for: mails, and under `topdesk_refusal = "release-room"` the room
        // released in Outlook (a write to the other side).
        let follow_up: Vec<Action> = on_failure
            .actions
            .iter()
            .filter(|a| a.is_write() || matches!(a, Action::SendMail { .. }))
            .cloned()
            .collect();
        if !follow_up.is_empty() {
            let follow_plan =
                Plan { actions: follow_up, record: RecordChange::Unchanged, timeline: Vec::new() };
            let follow_report = execute(&follow_plan, &next, before, &exec_ctx).await;
            count_writes(&follow_plan, &follow_report);
            apply_to_record(&mut next, &follow_report);
            for other in [Side::Exchange, Side::Topdesk] {
                if follow_report.failed_write(other).is_some() {
                    // The release did not land: that side still holds what it held, and owes the write
                    // (the sweep re-drives it).
                    keep_old_side(&mut next, before, other);
                    next.record_failure(other, now);
                }
            }
            events.extend(outcome_events(&follow_plan, &follow_report, now));
        }
        tracing::warn!(%side, ?failure, retry_at = ?retry_at, "write failed; failure recorded");
    }

    let (stored, commit) = if before.is_none() {
        (deps.store.insert_booking(&next, &events, &jobs, now).await?, Commit::Inserted)
    } else {
        (deps.store.update_booking(&next, &events, &jobs, now).await?, Commit::Updated)
    };
    tracing::info!(
        version = stored.version,
        complexity = stored.complexity_index,
        writes_done,
        failed = failed.len(),
        "booking committed"
    );
    Ok(Step::Committed(SyncOutcome {
        booking: Some(stored.id),
        correlation: Some(stored.correlation_id),
        commit,
        nothing,
        writes_done,
        failed,
        retry_at,
        tries: attempt,
    }))
}

/// A side the planner left `Pending` (a create) is `Synced` once every write to it succeeded.
fn mark_written_sides(next: &mut BookingRecord, report: &ExecutionReport) {
    for side in [Side::Exchange, Side::Topdesk] {
        let mut writes = report.outcomes.iter().filter(|o| o.side == Some(side)).peekable();
        let written = writes.peek().is_some() && writes.all(|o| matches!(o.outcome, Outcome::Done(_)));
        if written && next.status(side) == SyncStatus::Pending {
            match side {
                Side::Exchange => next.exchange_status = SyncStatus::Synced,
                Side::Topdesk => next.topdesk_status = SyncStatus::Synced,
            }
        }
    }
}

/// Puts `side`'s fingerprint and status back to what `before` had (none / pending for a new record).
fn keep_old_side(next: &mut BookingRecord, before: Option<&BookingRecord>, side: Side) {
    let fingerprint = before.and_then(|b| b.fingerprint(side).cloned());
    let status = before.map_or(SyncStatus::Pending, |b| b.status(side));
    match side {
        Side::Exchange => {
            next.exchange_fingerprint = fingerprint;
            next.exchange_status = status;
        }
        Side::Topdesk => {
            next.topdesk_fingerprint = fingerprint;
            next.topdesk_status = status;
        }
    }
}

/// Counts a report's writes in `orb_writes_total{side,kind,result}` (result: done, failed, skipped).
fn count_writes(the_plan: &Plan, report: &ExecutionReport) {
    for o in &report.outcomes {
        let (Some(side), Some(action)) = (o.side, the_plan.actions.get(o.index)) else { continue };
        let result = match &o.outcome {
            Outcome::NotAWrite => continue,
            Outcome::Done(_) => "done",
            Outcome::Failed { .. } => "failed",
            Outcome::Skipped { .. } => "skipped",
        };
        let kind = action.write_kind().map_or(action.name(), WriteKind::as_str);
        metrics::counter!("orb_writes_total", "side" => side.as_str(), "kind" => kind, "result" => result)
            .increment(1);
    }
}

fn timeline_kind(kind: TimelineKind) -> &'static str {
    match kind {
        TimelineKind::Observed => "observed",
        TimelineKind::Decision => "decision",
        TimelineKind::Conflict => "conflict",
        TimelineKind::Alert => "alert",
        TimelineKind::Mail => "mail",
        TimelineKind::Failure => "failure",
        TimelineKind::Skipped => "skipped",
    }
}

fn timeline_event(entry: &TimelineEntry) -> NewBookingEvent {
    NewBookingEvent {
        at: entry.at,
        kind: timeline_kind(entry.kind).to_owned(),
        side: entry.side,
        detail: json!({ "detail": entry.detail }),
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::CreateReservation { .. } => "create-reservation",
        Action::UpdateReservation { .. } => "update-reservation",
        Action::RescheduleReservation { .. } => "reschedule-reservation",
        Action::MoveReservationRoom { .. } => "move-reservation-room",
        Action::CancelReservation { .. } => "cancel-reservation",
        Action::LinkReservation { .. } => "link-reservation",
        Action::CreateExchangeEvent { .. } => "create-exchange-event",
        Action::UpdateExchangeEvent { .. } => "update-exchange-event",
        Action::CancelExchangeEvent { .. } => "cancel-exchange-event",
        Action::SendMail { .. } => "send-mail",
        Action::RaiseConflict { .. } => "raise-conflict",
        Action::MassDeletionAlert { .. } => "mass-deletion-alert",
        Action::ScheduleRetry { .. } => "schedule-retry",
        Action::Nothing { .. } => "nothing",
    }
}

/// One timeline entry per executed write or mail: done, failed (with the error, never a subject) or
/// skipped after an earlier failure.
fn outcome_events(the_plan: &Plan, report: &ExecutionReport, at: DateTime<Utc>) -> Vec<NewBookingEvent> {
    report
        .outcomes
        .iter()
        .filter_map(|o| {
            let action = the_plan.actions.get(o.index)?;
            let name = action_name(action);
            let (kind, detail) = match &o.outcome {
                Outcome::NotAWrite => return None,
                Outcome::Done(done) => ("written", json!({ "action": name, "done": format!("{done:?}") })),
                Outcome::Failed { error, .. } => {
                    ("write-failed", json!({ "action": name, "error": error.to_string() }))
                }
                Outcome::Skipped { after } => ("write-skipped", json!({ "action": name, "after": after })),
            };
            let kind = if matches!(action, Action::SendMail { .. }) {
                match kind {
                    "written" => "mail-sent",
                    "write-failed" => "mail-failed",
                    _ => "mail-skipped",
                }
            } else {
                kind
            };
            Some(NewBookingEvent { at, kind: kind.to_owned(), side: o.side, detail })
        })
        .collect()
}

pub(super) fn observe_reservation(
    tenant: &TenantRuntime,
    reservation: &orb_topdesk::wire::ReservationDto,
) -> Result<Observation, ObserveError> {
    let series = |k: &SeriesKey<'_>| Some(series_id_for(tenant.tenant_id, k));
    let octx = ObserveContext::new(&tenant.rooms, tenant.link_type, &series, ObservationSource::Notification)
        .with_persons(&no_person);
    observe::from_topdesk_reservation(reservation, &octx).map(|o| scrubbed(&tenant.policy, o))
}

/// Makes sure the series row exists before the first occurrence's record refers to it.
async fn ensure_series_row(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    obs: &Observation,
    series_id: SeriesId,
) -> Result<(), SyncError> {
    match deps.store.get_series(tenant.tenant_id, series_id).await {
        Ok(_) => return Ok(()),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let room = match &obs.room {
        orb_core::ObservedRoom::Mailbox(m) => tenant.rooms.by_mailbox(m),
        orb_core::ObservedRoom::Location(l) => tenant.rooms.by_location(l),
        orb_core::ObservedRoom::None => None,
    };
    let Some(room) = room else { return Ok(()) }; // no record will be made in an unmapped room
    let now = deps.clock.now();
    let row = Series {
        id: series_id,
        tenant_id: tenant.tenant_id,
        room_id: room.id,
        organizer: obs.organizer.clone(),
        ical_uid: None,
        exchange_master_event_id: None,
        topdesk_series_id: None,
        pattern: Value::Null,
        time_zone: obs.time_zone.clone().unwrap_or_else(|| room.time_zone.clone()),
        created_at: now,
        updated_at: now,
    };
    deps.store.upsert_series(&row).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_entries_keep_kind_side_and_detail() {
        let at = DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let entry = TimelineEntry {
            at,
            kind: TimelineKind::Decision,
            side: Some(Side::Topdesk),
            detail: "create".into(),
        };
        let event = timeline_event(&entry);
        assert_eq!(event.kind, "decision");
        assert_eq!(event.side, Some(Side::Topdesk));
        assert_eq!(event.detail, json!({"detail": "create"}));
        assert_eq!(event.at, at);
    }
}
