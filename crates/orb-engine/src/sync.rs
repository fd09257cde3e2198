//! **Sync**: one observation in, one committed booking out (DESIGN §3, "ORB record → planner → executor").
//!
//! [`sync_observation`] finds the booking's ORB record, builds the [`PlanContext`] (the tenant's policy and
//! room map from [`TenantRuntime`], TOPdesk persons looked up by e-mail, ids and time from the injected
//! clock), runs the pure planner, carries out the plan's writes ([`crate::execute`]) and commits the
//! result. [`process_job`] turns the queue's jobs (`graph.notification`, `topdesk.hint`, `sync.retry`) into
//! observations and syncs them; [`crate::worker::Worker`] runs jobs from the store's queue.
//!
//! ## Invariants
//! - **One commit.** The record change, its timeline (the planner's entries plus one entry per executed
//!   write, mail or failure) and the follow-up jobs (retries) are written in *one* store call
//!   ([`Store::insert_booking`] / [`Store::update_booking`]): the transactional outbox of DESIGN §3. A crash
//!   before the commit leaves remote writes that the next run finds again by their idempotency keys.
//! - **A write's failure never loses the observation.** When a write fails, the record keeps the *old*
//!   fingerprint of the failed side (the contract in [`crate::execute`]); [`plan_write_failure`] records
//!   the failure and, for transient failures, a `sync.retry` job carrying the observation itself is
//!   committed with the record, to run at the planner's back-off. After a transient failure of a known
//!   booking the record stays as it was (only the failure bookkeeping and ids a successful write learned
//!   change), so the retried observation is planned exactly as before (a booking live again after a
//!   cancellation, an occurrence moved room: cancel + create); for a new booking the observed side keeps
//!   no fingerprint, so the retry is not mistaken for an echo. After a permanent refusal the same
//!   observation again is an echo (no second refusal), a changed one is planned again.
//! - **No lost update between sweeps.** Before a plan overwrites a side, ORB knows whether that side
//!   changed since the record's watermark. Exchange: every write of an existing event carries `If-Match`
//!   with the version ORB last saw ([`orb_core::ExchangeLink::change_key`]); when Graph refuses it (`412`),
//!   nothing of the try is committed, the event is read (the room's copy by id, observed with the
//!   organizer's copy, as a notification would be) and the observation is planned again with it as
//!   [`Observation::counterpart`]. TOPdesk has no conditional write: where a TOPdesk change could win
//!   ([`orb_core::ConflictPolicy::can_win`]: `topdesk-wins`, `latest-wins`), a plan that overwrites a
//!   reservation with an Exchange change first reads it (one GET) and, when its `modificationDate` is newer
//!   than the watermark, plans again with it as the counterpart. Under `exchange-wins` no read is made:
//!   the Exchange change wins anyway, and a TOPdesk change made in that second is overwritten without a
//!   conflict entry. Each side is read at most once per try; then the planner's conflict rule (rule 5)
//!   decides, with the same timeline entry and mail as in a sweep. A second `412` is a transient failure.
//! - A side the planner left `Pending` (a create) becomes `Synced` in the commit once its writes succeeded.
//! - **A record whose other side was never written is planned as new again** (same match id and
//!   correlation id) unless the observation is an echo or stale, so a create that failed is retried as a
//!   create, idempotently.
//! - **Optimistic concurrency.** A [`StoreError::Conflict`] (someone changed the record since it was read)
//!   reloads and plans again, at most [`SyncDeps::max_conflict_tries`] times. Writes of an earlier try may
//!   run again: they are idempotent.
//! - **Tracing.** Every sync runs in a `sync` span carrying the booking's match id and correlation id.
//! - Time only from [`SyncDeps::clock`]; nothing here reads the wall clock.
//! - **A room's copy is not the meeting** (`observe_in_room`): for a meeting someone else organizes, the
//!   organizer's copy (same `iCalUId`; one calendarView per organizer and job) supplies the fields, so
//!   the subject is the meeting's (Exchange rewrites the room copy's), and a room copy that is cancelled
//!   or gone is told apart: the meeting moved to another room (rule 7: a move, or for an unmanaged room a
//!   cancellation and a mail), the room declined a change (rule 8), or the meeting is cancelled (rule 6).
//!   The room's own events (room-only mode) are organized by the room: the record's organizer stands in.
//! - **Series** (`room_series`): a room's series master is kept as a series row (id derived from the
//!   room and the master's id, [`series_id_for`]); its instances within the horizon are synced as one
//!   booking each, and occurrences ORB knows in that room that are no longer among them are observed as
//!   gone (cancelled, moved to another room, declined).
//! - **Privacy first** (rule 13): under `drop` an observation loses its subject as soon as it is made
//!   (`scrubbed`), before it is planned, logged, put in a job or written.
//! - **TOPdesk person look-ups**: only the organizer (the requester) is looked up before planning, once per
//!   job (a series costs one look-up). TOPdesk names participants by id; the ids are resolved against the
//!   record's participants (`resolve_participants`).
//! - **Refused notifications write nothing but an audit entry** (`notification.refused`) and mark their
//!   inbox item processed: a bad `validationToken`, content that does not decrypt or whose signature
//!   does not match, a certificate ORB does not hold.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use orb_core::{
    Action, BookingId, BookingRecord, Clock, CorrelationId, EmailAddress, FailedWrite, Lifecycle, NewIds,
    NothingReason, Observation, ObservationSource, PersonDirectory, Plan, PlanContext, Policy, RecordChange,
    RemoteIds, RoomMap, SeriesId, Side, SubjectPolicy, SyncStatus, TenantId, TimeZoneName, TimelineEntry,
    TimelineKind, WriteFailure, WriteKind, plan, plan_write_failure,
};
use orb_crypto::{CertificateRing, ValidationTokenExpectations};
use orb_graph::model::{ChangeNotification, ChangeNotificationCollection, ChangeType, Event};
use orb_graph::notifications::decrypt_event;
use orb_graph::{GraphClient, GraphError, JwksCache};
use orb_store::{
    BookingFilter, BookingKey, ClaimedJob, Lane, NewAuditEntry, NewBookingEvent, NewJob, Series, Store,
    StoreError,
};
use orb_topdesk::{Reason, ReservationId, TopdeskClient, TopdeskError};
use serde_json::{Value, json};
use thiserror::Error;
use tracing::Instrument as _;

use crate::execute::{ExecContext, ExecutionReport, Outcome, apply_to_record, execute};
use crate::observe::{self, ObserveContext, ObserveError, SeriesKey};

/// Job kind of a Graph change notification kept by the intake.
pub const JOB_GRAPH_NOTIFICATION: &str = "graph.notification";
/// Job kind of a TOPdesk push kept by the intake.
pub const JOB_TOPDESK_HINT: &str = "topdesk.hint";
/// Job kind of a retried sync (a failed write), committed with the record.
pub const JOB_SYNC_RETRY: &str = "sync.retry";
/// Job kind of a Graph lifecycle notification kept by the intake ([`crate::subscriptions`]).
pub const JOB_GRAPH_LIFECYCLE: &str = "graph.lifecycle";
/// Job kind: sync one observation in its room's lane (a TOPdesk hint fans out into these, so a booking's
/// work always runs in its room's lane, in order with the Graph notifications of that room).
pub const JOB_SYNC_OBSERVATION: &str = "sync.observation";
/// Job kind: a reconciliation sweep of one room, in that room's lane (payload `{"room": id}`), so the
/// sweep never runs at the same time as the room's notifications ([`crate::reconcile`]).
pub const JOB_RECONCILE_SWEEP: &str = "reconcile.sweep";
/// Audit action of a notification the worker refused.
pub const AUDIT_NOTIFICATION_REFUSED: &str = "notification.refused";
/// Audit actor of the worker.
pub const AUDIT_ACTOR: &str = "worker";

/// What one tenant's sync needs: its policy, rooms and clients. Policy storage does not exist yet, so the
/// caller builds this.
pub struct TenantRuntime {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its sync policy.
    pub policy: Policy,
    /// Its rooms.
    pub rooms: RoomMap,
    /// Its Graph client.
    pub graph: Arc<GraphClient>,
    /// Its TOPdesk client.
    pub topdesk: TopdeskClient,
    /// Its TOPdesk external-link type (ORB's match id is the link's id).
    pub link_type: i64,
    /// The mailbox ORB's mails are sent from.
    pub mail_sender: EmailAddress,
    /// The portal's base URL (links in mails).
    pub portal_base_url: String,
    /// Reason sent with TOPdesk cancellations.
    pub cancel_reason: Reason,
    /// TOPdesk person ids by e-mail, shared by this tenant's jobs for a while.
    pub persons: PersonCache,
    /// ORB's public base URL for Graph's webhooks (`{base}/hooks/graph/{tenant}`): needed to recreate a
    /// subscription Graph removed (`None`: such a lifecycle job fails until it is configured).
    pub notification_base_url: Option<String>,
    /// Writes paused per side after the side denied ORB's credentials (401 / 403).
    pub writes: Arc<crate::pause::WritePause>,
    /// The validation-token signing keys of the tenant's cloud (shared only with tenants of that cloud,
    /// [`crate::clouds`]).
    pub jwks: Arc<JwksCache>,
}

impl fmt::Debug for TenantRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantRuntime")
            .field("tenant_id", &self.tenant_id)
            .field("link_type", &self.link_type)
            .field("mail_sender", &self.mail_sender)
            .finish_non_exhaustive()
    }
}

/// TOPdesk person ids by e-mail, shared by a tenant's jobs for [`PersonCache::TTL`], so an organizer who
/// books often costs one look-up, not one per change. Only found persons are kept: a person added in
/// TOPdesk is found at once, a person removed is noticed within the TTL (TOPdesk then refuses the write
/// and the refusal path takes over).
#[derive(Debug, Default)]
pub struct PersonCache {
    entries: std::sync::Mutex<BTreeMap<EmailAddress, (String, std::time::Instant)>>,
}

impl PersonCache {
    /// How long a found person id is reused.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(600);

    fn get(&self, email: &EmailAddress) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(email).filter(|(_, at)| at.elapsed() < Self::TTL).map(|(id, _)| id.clone())
    }

    fn put(&self, email: &EmailAddress, id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() > 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < Self::TTL);
        }
        entries.insert(email.clone(), (id.to_owned(), std::time::Instant::now()));
    }
}

/// Everything the engine's sync shares across tenants.
pub struct SyncDeps {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The tenants this engine serves.
    pub tenants: BTreeMap<TenantId, Arc<TenantRuntime>>,
    /// The certificates rich notifications are encrypted for.
    pub certificates: Arc<CertificateRing>,
    /// Refuse rich notifications that arrive without `validationTokens` (the intake copies the POST's
    /// tokens onto every item it keeps, so `true` is the production setting; tokens present on an item are
    /// always checked).
    pub require_validation_tokens: bool,
    /// Tries of plan + commit when the record changed concurrently (at least 1).
    pub max_conflict_tries: u32,
}

impl fmt::Debug for SyncDeps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncDeps")
            .field("store", &self.store)
            .field("tenants", &self.tenants.keys().collect::<Vec<_>>())
            .field("require_validation_tokens", &self.require_validation_tokens)
            .field("max_conflict_tries", &self.max_conflict_tries)
            .finish_non_exhaustive()
    }
}

impl SyncDeps {
    /// The runtime of `tenant`.
    pub fn tenant(&self, tenant: TenantId) -> Result<&Arc<TenantRuntime>, SyncError> {
        self.tenants.get(&tenant).ok_or(SyncError::UnknownTenant { tenant })
    }
}

/// What the sync of one observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The booking, when there is (now) a record.
    pub booking: Option<BookingId>,
    /// Its correlation id.
    pub correlation: Option<CorrelationId>,
    /// How the record was committed.
    pub commit: Commit,
    /// Why nothing was done, when the plan says so.
    pub nothing: Option<NothingReason>,
    /// Writes carried out successfully.
    pub writes_done: usize,
    /// Sides whose write failed.
    pub failed: Vec<Side>,
    /// When the failed write is retried (a `sync.retry` job).
    pub retry_at: Option<DateTime<Utc>>,
    /// Plan + commit tries (more than 1 after concurrent changes).
    pub tries: u32,
}

/// How a sync was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// A new record.
    Inserted,
    /// The record changed.
    Updated,
    /// Nothing to store.
    Nothing,
}

/// What one job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobResult {
    /// Observations were synced.
    Synced(Vec<SyncOutcome>),
    /// A notification was refused (audit entry written, inbox item marked processed).
    Refused {
        /// Why.
        reason: String,
    },
    /// Nothing to do (already processed, an untracked deletion, an unknown subscription).
    Ignored {
        /// Why.
        reason: String,
    },
}

/// Why a sync or a job failed. [`SyncError::is_retryable`] decides between a retry and a dead job.
#[derive(Debug, Error)]
pub enum SyncError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A Graph call failed (reading an event, the JWKS).
    #[error("Graph: {0}")]
    Graph(#[from] GraphError),
    /// A TOPdesk call failed (a person look-up, reading a reservation).
    #[error("TOPdesk: {0}")]
    Topdesk(#[from] TopdeskError),
    /// The item could not become an observation.
    #[error("observing the item failed: {0}")]
    Observe(#[from] ObserveError),
    /// The record kept changing under us.
    #[error("booking {booking} changed concurrently {tries} times in a row; the job is retried later")]
    ConflictRetriesExhausted {
        /// The booking.
        booking: String,
        /// How many tries were made.
        tries: u32,
    },
    /// The job names a tenant this engine does not serve right now (a reload is under way, or the tenant's
    /// settings or secrets are incomplete, so it was skipped): retried with back-off, not dropped.
    #[error(
        "tenant {tenant} is not loaded in this engine (a reload is under way, or its settings or secrets are \
         incomplete: see `orb tenant settings`); the job is retried"
    )]
    UnknownTenant {
        /// The tenant.
        tenant: TenantId,
    },
    /// A job kind this engine does not handle.
    #[error(
        "job kind {kind:?} is not handled by this worker (known: graph.notification, graph.lifecycle, \
         topdesk.hint, sync.retry, sync.observation, reconcile.sweep)"
    )]
    UnknownJobKind {
        /// The kind.
        kind: String,
    },
    /// A job's payload or inbox item is not what its kind needs.
    #[error("{kind} job has a bad payload: {reason}")]
    BadPayload {
        /// The job kind.
        kind: String,
        /// What is wrong.
        reason: String,
    },
    /// The side denied ORB's credentials or rights; the tenant's writes to it are paused and the job waits.
    #[error(
        "{side} denied ORB's credentials or rights for tenant {tenant}; its writes to {side} are paused until \
         {until} (check the tenant's secrets and the API account's rights; the job runs again then, nothing \
         is lost)"
    )]
    WritesPaused {
        /// The tenant.
        tenant: TenantId,
        /// The side.
        side: Side,
        /// When the job runs again.
        until: DateTime<Utc>,
    },
}

impl SyncError {
    /// Whether running the same job again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Graph(e) => e.is_retryable(),
            Self::Topdesk(e) => e.is_retryable(),
            Self::ConflictRetriesExhausted { .. }
            | Self::WritesPaused { .. }
            | Self::UnknownTenant { .. } => true,
            Self::Observe(_) | Self::UnknownJobKind { .. } | Self::BadPayload { .. } => false,
        }
    }

    /// When the job must run again whatever its attempts (a paused tenant's job is never dead).
    pub fn resume_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::WritesPaused { until, .. } => Some(*until),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// sync_observation
// ---------------------------------------------------------------------------------------------------------

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
async fn sync_from(
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

async fn find_record(
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

/// The match id a *new* booking gets from its first observation: derived from the item's identity on its
/// side (tenant, side, event / reservation id, iCalUId and original start), laid out as a UUIDv7 whose
/// time is the booking's start. A job that created the other side's item and was killed before its commit
/// runs again with the same match id, so the executor finds that item by the match id (TOPdesk external
/// link, Graph transactionId) instead of making a second one. `None` when the item has no id.
pub(crate) fn derived_booking_id(tenant: TenantId, obs: &Observation) -> Option<BookingId> {
    let key = match obs.side {
        Side::Exchange => obs.ids.ical_uid.clone().or_else(|| obs.ids.event_id.clone())?,
        Side::Topdesk => obs.ids.reservation_id.clone()?,
    };
    let original = obs.series.map(|s| s.original_start.to_rfc3339()).unwrap_or_default();
    let text = format!("{tenant}\n{:?}\n{key}\n{original}", obs.side);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut random = [0_u8; 10];
    random.copy_from_slice(&digest.as_ref()[..10]);
    let millis = u64::try_from(obs.start.timestamp_millis()).unwrap_or(0);
    Some(BookingId::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()))
}

/// The TOPdesk person with `email` (`None`: no person), looked up once per job, and found persons reused
/// across jobs ([`PersonCache`]).
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
    commit_plan(deps, tenant, obs, record, the_plan, &ctx, attempt, may_read).instrument(span).await
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
        Some(id) => match tenant.graph.get_event(&mailbox, id, corr).await {
            Ok(event) => Some(event),
            Err(GraphError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let copy = match &read {
        Some(event) => RoomCopy::Item(event),
        None => RoomCopy::Gone { event_id: record.exchange.room_event_id.clone(), record },
    };
    let observed = match observe_in_room(deps, tenant, &fresh, &mailbox, copy, corr).await {
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
) -> Result<Step, SyncError> {
    let now = ctx.now;
    let nothing = the_plan.nothing_reason();
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
        graph: &tenant.graph,
        topdesk: &tenant.topdesk,
        rooms: &tenant.rooms,
        link_type: tenant.link_type,
        mail_sender: &tenant.mail_sender,
        correlation: after.correlation_id,
        portal_base_url: &tenant.portal_base_url,
        cancel_reason: &tenant.cancel_reason,
        clock: deps.clock.as_ref(),
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
                jobs.push(NewJob {
                    lane: Lane::room(tenant.tenant_id, next.room_id),
                    kind: JOB_SYNC_RETRY.to_owned(),
                    payload: json!({
                        "booking_id": next.id,
                        "side": side,
                        "observation": obs,
                    }),
                    correlation_id: Some(next.correlation_id),
                    run_at: Some(at),
                });
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

/// Audit action: a side denied ORB's credentials or rights; the tenant's writes to it are paused.
pub const AUDIT_WRITES_PAUSED: &str = "sync.writes_paused";
/// Audit action: writes to a side that was paused land again.
pub const AUDIT_WRITES_RESUMED: &str = "sync.writes_resumed";

/// Records the start or end of a write pause in the tenant's audit log (a failure to record it is logged,
/// not fatal: the pause itself is in memory and the job is put back either way).
async fn audit_pause(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    side: Side,
    action: &str,
    reason: &str,
    now: DateTime<Utc>,
) {
    let entry = NewAuditEntry {
        tenant_id: Some(tenant.tenant_id),
        at: now,
        actor: AUDIT_ACTOR.to_owned(),
        action: action.to_owned(),
        target: format!("{side}: {reason}"),
        ip: None,
    };
    if let Err(e) = deps.store.append_audit(&entry).await {
        tracing::warn!(error = %e, action, "could not record the write pause in the audit log");
    }
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

// ---------------------------------------------------------------------------------------------------------
// process_job
// ---------------------------------------------------------------------------------------------------------

/// Per-job memory: TOPdesk person look-ups by e-mail and what was read of organizers' calendars, so a
/// series of ten occurrences costs one look-up and one instances read, not ten. Never shared between jobs
/// (people and calendars change).
#[derive(Default)]
pub(crate) struct JobCache {
    persons: std::sync::Mutex<BTreeMap<EmailAddress, Option<String>>>,
    /// `find_by_ical_uid` answers: (mailbox, iCalUId) → the single event or series master.
    meetings: std::sync::Mutex<BTreeMap<(EmailAddress, String), Option<Event>>>,
    /// A series master's iCalUId by ORB's series id.
    masters: std::sync::Mutex<BTreeMap<orb_core::SeriesId, Option<String>>>,
    /// Instances of organizers' series masters, as read.
    instances: std::sync::Mutex<Vec<InstanceWindow>>,
}

/// The instances of one series master in a window, as read.
struct InstanceWindow {
    mailbox: EmailAddress,
    master_id: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    events: Arc<Vec<Event>>,
}

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// ORB's series id for a side's series key: a name-based UUID (version 8) of the tenant and the key, so
/// the same master (or TOPdesk series) always gives the same id without a look-up table.
pub fn series_id_for(tenant: TenantId, key: &SeriesKey<'_>) -> SeriesId {
    let text = match key {
        SeriesKey::GraphMaster { mailbox, master_id } => {
            format!("graph\n{tenant}\n{}\n{master_id}", mailbox.map_or("", |m| m.as_str()))
        }
        SeriesKey::TopdeskSeries(id) => format!("topdesk\n{tenant}\n{id}"),
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    SeriesId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

fn no_person(_: &orb_topdesk::PersonId) -> Option<EmailAddress> {
    None
}

/// The observation as the tenant's privacy policy allows it to travel: under `drop` the subject is gone
/// before anything is planned, logged, stored in a job or written (DESIGN §4 rule 13).
pub(crate) fn scrubbed(policy: &Policy, mut obs: Observation) -> Observation {
    if policy.subject == SubjectPolicy::Drop {
        obs.subject = None;
        if let Some(other) = obs.counterpart.take() {
            obs.counterpart = Some(Box::new(scrubbed(policy, *other)));
        }
    }
    obs
}

// The observe context is not `Send`: it is built and dropped inside these synchronous helpers.

fn observe_event(
    tenant: &TenantRuntime,
    mailbox: &EmailAddress,
    event: &Event,
) -> Result<Observation, ObserveError> {
    let series = |k: &SeriesKey<'_>| Some(series_id_for(tenant.tenant_id, k));
    let octx = ObserveContext::new(&tenant.rooms, tenant.link_type, &series, ObservationSource::Notification)
        .with_persons(&no_person)
        .with_mailbox(mailbox);
    match observe::from_graph_event(event, &octx) {
        Err(ObserveError::SeveralRooms { .. }) if tenant.rooms.is_room_address(mailbox) => {
            observe::from_graph_event_for_room(event, mailbox, &octx)
        }
        Err(ObserveError::SeveralRooms { rooms }) => match rooms.first() {
            Some(first) => observe::from_graph_event_for_room(event, first, &octx),
            None => Err(ObserveError::SeveralRooms { rooms }),
        },
        other => other,
    }
}

/// [`observe_event`] for one room of the event.
fn observe_event_for_room(
    tenant: &TenantRuntime,
    mailbox: &EmailAddress,
    event: &Event,
    room: &EmailAddress,
) -> Result<Observation, ObserveError> {
    let series = |k: &SeriesKey<'_>| Some(series_id_for(tenant.tenant_id, k));
    let octx = ObserveContext::new(&tenant.rooms, tenant.link_type, &series, ObservationSource::Notification)
        .with_persons(&no_person)
        .with_mailbox(mailbox);
    observe::from_graph_event_for_room(event, room, &octx)
}

fn observe_deleted(
    tenant: &TenantRuntime,
    mailbox: &EmailAddress,
    event_id: Option<String>,
    record: &BookingRecord,
    now: DateTime<Utc>,
) -> Observation {
    let series = |k: &SeriesKey<'_>| Some(series_id_for(tenant.tenant_id, k));
    let octx = ObserveContext::new(&tenant.rooms, tenant.link_type, &series, ObservationSource::Notification)
        .with_mailbox(mailbox);
    let ids = RemoteIds { event_id, ..RemoteIds::default() };
    observe::deleted(Side::Exchange, ids, record, now, &octx)
}

fn observe_reservation(
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

// ---- a room's calendar: the room's copy, the organizer's copy, series ----

/// Whether `room` is still booked by `event` (a resource attendee or a location with its address).
fn books_room(event: &Event, room: &EmailAddress) -> bool {
    let same = |a: &str| EmailAddress::parse(a).is_ok_and(|a| a == *room);
    event
        .attendees
        .iter()
        .flatten()
        .filter(|a| a.kind == Some(orb_graph::model::AttendeeType::Resource))
        .filter_map(|a| a.address())
        .any(same)
        || event
            .location
            .iter()
            .chain(event.locations.iter().flatten())
            .filter_map(|l| l.location_email_address.as_deref())
            .any(same)
}

/// Which meeting to find in an organizer's calendar.
struct MeetingRef<'a> {
    /// The meeting's (or occurrence's) `iCalUId`, the same in every calendar holding it.
    ical_uid: &'a str,
    /// The organizer's copy's id, when the record knows it.
    known_id: Option<&'a str>,
    /// For an occurrence or exception: its series master's `iCalUId`.
    master_ical_uid: Option<&'a str>,
    /// The occurrence's times as the room's copy or the record has them.
    span: (DateTime<Utc>, DateTime<Utc>),
}

/// The organizer's copy of a meeting (`None`: not in the organizer's calendar any more, or the organizer
/// has no mailbox ORB can read). Only that meeting is read, never the organizer's other events: by its id
/// when the record knows it, else by `$filter` on its `iCalUId` (an occurrence: its master by the series'
/// `iCalUId`, then the master's instances around the occurrence).
async fn organizer_copy(
    tenant: &TenantRuntime,
    cache: &JobCache,
    organizer: &EmailAddress,
    meeting: &MeetingRef<'_>,
    corr: CorrelationId,
) -> Result<Option<Event>, SyncError> {
    if tenant.rooms.is_room_address(organizer) {
        return Ok(None);
    }
    let unreadable = |e: GraphError| -> Result<Option<Event>, SyncError> {
        if e.is_retryable() {
            return Err(e.into());
        }
        // Not a mailbox of this tenant (an external organizer), or not readable: the room's copy is all
        // ORB has.
        tracing::info!(error = %e, "the organizer's calendar cannot be read; using the room's copy");
        Ok(None)
    };
    if let Some(id) = meeting.known_id {
        match tenant.graph.get_event(organizer, id, corr).await {
            Ok(e) if e.ical_uid.as_deref() == Some(meeting.ical_uid) => return Ok(Some(e)),
            Ok(_) | Err(GraphError::NotFound { .. }) => {}
            Err(e) => return unreadable(e),
        }
    }
    match meeting.master_ical_uid {
        None => match find_meeting(tenant, cache, organizer, meeting.ical_uid, corr).await {
            Ok(found) => Ok(found),
            Err(e) => unreadable(e),
        },
        Some(master) => {
            match organizer_instances(tenant, cache, organizer, master, meeting.span, corr).await {
                Ok(events) => {
                    Ok(events.iter().find(|e| e.ical_uid.as_deref() == Some(meeting.ical_uid)).cloned())
                }
                Err(e) => unreadable(e),
            }
        }
    }
}

/// The single event or series master `ical_uid` in `mailbox`, read once per job.
async fn find_meeting(
    tenant: &TenantRuntime,
    cache: &JobCache,
    mailbox: &EmailAddress,
    ical_uid: &str,
    corr: CorrelationId,
) -> Result<Option<Event>, GraphError> {
    let key = (mailbox.clone(), ical_uid.to_owned());
    if let Some(found) = locked(&cache.meetings).get(&key) {
        return Ok(found.clone());
    }
    let found = tenant.graph.find_by_ical_uid(mailbox, ical_uid, corr).await?;
    locked(&cache.meetings).insert(key, found.clone());
    Ok(found)
}

/// The instances of the series `master_ical_uid` in `mailbox` around `[from, to)` (a day either side, so
/// an occurrence moved a little is still found); one read per series and window per job.
async fn organizer_instances(
    tenant: &TenantRuntime,
    cache: &JobCache,
    mailbox: &EmailAddress,
    master_ical_uid: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    corr: CorrelationId,
) -> Result<Arc<Vec<Event>>, GraphError> {
    let Some(master_id) =
        find_meeting(tenant, cache, mailbox, master_ical_uid, corr).await?.and_then(|m| m.id)
    else {
        return Ok(Arc::new(Vec::new()));
    };
    let from = from - chrono::Duration::days(1);
    let to = to + chrono::Duration::days(1);
    let cached = locked(&cache.instances)
        .iter()
        .find(|w| w.mailbox == *mailbox && w.master_id == master_id && w.from <= from && w.to >= to)
        .map(|w| w.events.clone());
    if let Some(events) = cached {
        return Ok(events);
    }
    let events = match tenant.graph.instances(mailbox, &master_id, from, to, corr).await {
        Ok(events) => Arc::new(events),
        Err(GraphError::NotFound { .. }) => Arc::new(Vec::new()),
        Err(e) => return Err(e),
    };
    locked(&cache.instances).push(InstanceWindow {
        mailbox: mailbox.clone(),
        master_id,
        from,
        to,
        events: events.clone(),
    });
    Ok(events)
}

/// The `iCalUId` of the series master of an occurrence ORB knows as `series` (its series row, else the
/// room's master read by id), once per job.
async fn master_ical_uid(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    cache: &JobCache,
    room: &EmailAddress,
    series: orb_core::SeriesId,
    room_master_id: Option<&str>,
    corr: CorrelationId,
) -> Result<Option<String>, SyncError> {
    if let Some(known) = locked(&cache.masters).get(&series) {
        return Ok(known.clone());
    }
    let mut ical = match deps.store.get_series(tenant.tenant_id, series).await {
        Ok(row) => row.ical_uid,
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if ical.is_none()
        && let Some(id) = room_master_id
    {
        ical = match tenant.graph.get_event(room, id, corr).await {
            Ok(master) => master.ical_uid,
            Err(GraphError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
    }
    locked(&cache.masters).insert(series, ical.clone());
    Ok(ical)
}

/// What the room's calendar holds of one booking.
enum RoomCopy<'a> {
    /// The room's copy of a meeting (or the room's own event).
    Item(&'a Event),
    /// Gone from the room's calendar (deleted, or an occurrence no longer among the series' instances):
    /// what the record knows.
    Gone {
        /// The id the room's copy had, when the notification named it.
        event_id: Option<String>,
        /// The booking.
        record: &'a BookingRecord,
    },
}

/// One observation of a booking read from a room's calendar, and whether its subject is the room copy's
/// (rewritten by Exchange) rather than the meeting's.
struct RoomObservation {
    observation: Observation,
    room_copy_subject: bool,
}

/// Observes one booking in the room `mailbox`'s calendar.
///
/// The room's copy of a meeting someone else organizes is not the meeting: Exchange rewrites its subject
/// (`DeleteSubject`, `AddOrganizerToSubject`) and cancels or removes it when the room is taken off the
/// meeting, whether the meeting was cancelled, moved to another room, or declined by the room. So the
/// organizer's copy (same `iCalUId`) is read too, and it decides:
/// - it still books this room: the organizer's fields, the room copy's ids and the room's answer (the
///   room copy's when it is live; the organizer's copy's when the room's copy is gone, so a room that
///   declined a change is seen as declined, DESIGN rule 8);
/// - it books another room (mapped or not) or none: that is what the booking is now (rule 7: a move, or a
///   move to a room ORB does not manage);
/// - it is gone (or unreadable): the room's copy is all there is (a cancellation when it is cancelled or
///   gone).
async fn observe_in_room(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    cache: &JobCache,
    mailbox: &EmailAddress,
    copy: RoomCopy<'_>,
    corr: CorrelationId,
) -> Result<RoomObservation, SyncError> {
    let now = deps.clock.now();
    let (room_obs, ical, span, organizer, live, known_id, room_master_id, series) = match &copy {
        RoomCopy::Item(event) => {
            let room_obs = scrubbed(&tenant.policy, observe_event(tenant, mailbox, event)?);
            let organized_here =
                event.is_organizer == Some(true) || tenant.rooms.is_room_address(&room_obs.organizer);
            let Some(ical) = event.ical_uid.clone().filter(|_| !organized_here) else {
                return Ok(RoomObservation { observation: room_obs, room_copy_subject: false });
            };
            let live = room_obs.lifecycle == Lifecycle::Active
                && room_obs.room_response != orb_core::RoomResponse::Declined;
            let span = (room_obs.start, room_obs.end);
            let organizer = room_obs.organizer.clone();
            let series = room_obs.series.map(|s| s.series_id);
            (room_obs, ical, span, organizer, live, None, event.series_master_id.clone(), series)
        }
        RoomCopy::Gone { event_id, record } => {
            let mut room_obs =
                scrubbed(&tenant.policy, observe_deleted(tenant, mailbox, event_id.clone(), record, now));
            // What identifies the booking when the room's copy has no id any more (an occurrence).
            room_obs.ids.ical_uid.clone_from(&record.exchange.ical_uid);
            let Some(ical) = record.exchange.ical_uid.clone() else {
                return Ok(RoomObservation { observation: room_obs, room_copy_subject: false });
            };
            let span = (record.start, record.end);
            let organizer = record.organizer.clone();
            let known = record.exchange.organizer_event_id.clone();
            (room_obs, ical, span, organizer, false, known, None, record.series_id)
        }
    };
    let room_copy_subject = matches!(copy, RoomCopy::Item(_));
    let master_ical = match series {
        Some(series) => {
            master_ical_uid(deps, tenant, cache, mailbox, series, room_master_id.as_deref(), corr).await?
        }
        None => None,
    };
    let meeting = MeetingRef {
        ical_uid: &ical,
        known_id: known_id.as_deref(),
        master_ical_uid: master_ical.as_deref(),
        span,
    };
    let Some(org) = organizer_copy(tenant, cache, &organizer, &meeting, corr).await? else {
        return Ok(RoomObservation { observation: room_obs, room_copy_subject });
    };
    let still_here = books_room(&org, mailbox);
    let mut obs = if still_here {
        observe_event_for_room(tenant, &organizer, &org, mailbox)?
    } else {
        observe_event(tenant, &organizer, &org)?
    };
    obs = scrubbed(&tenant.policy, obs);
    if still_here {
        if live {
            obs.room_response = room_obs.room_response;
        } else if obs.room_response != orb_core::RoomResponse::Declined {
            // The room's copy is gone although the organizer still books the room (and the room did not
            // decline): the room's calendar decides.
            return Ok(RoomObservation { observation: room_obs, room_copy_subject: false });
        }
    }
    obs.source = room_obs.source;
    obs.ids = RemoteIds {
        event_id: room_obs.ids.event_id.clone().filter(|_| still_here),
        ical_uid: Some(ical),
        // The organizer's copy's version: ORB writes there (`If-Match`).
        change_key: obs.ids.change_key.take(),
        reservation_id: None,
        reservation_number: None,
    };
    obs.series = room_obs.series;
    obs.appointment_type = room_obs.appointment_type;
    obs.booked_by = None;
    obs.modified_at = obs.modified_at.max(room_obs.modified_at);
    Ok(RoomObservation { observation: obs, room_copy_subject: false })
}

/// A room's series master: the series row is kept, its occurrences within the horizon are read (Graph
/// instances) and each is synced as its own booking; occurrences ORB knows in this room that are no longer
/// among the instances are observed as gone (an occurrence cancelled, moved to another room, declined).
async fn room_series(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    cache: &JobCache,
    mailbox: &EmailAddress,
    room: &orb_store::Room,
    master: &Event,
    corr: CorrelationId,
) -> Result<Vec<SyncOutcome>, SyncError> {
    let master_id = master.id.clone().unwrap_or_default();
    // Rich notifications do not carry the pattern: read the master once for the series row.
    let fetched;
    let master = match &master.recurrence {
        Some(_) => master,
        None => match tenant.graph.get_event(mailbox, &master_id, corr).await {
            Ok(full) => {
                fetched = full;
                &fetched
            }
            Err(GraphError::NotFound { .. }) => master,
            Err(e) => return Err(e.into()),
        },
    };
    let series_id = series_id_for(
        tenant.tenant_id,
        &SeriesKey::GraphMaster { mailbox: Some(mailbox), master_id: &master_id },
    );
    let now = deps.clock.now();
    let created_at = match deps.store.get_series(tenant.tenant_id, series_id).await {
        Ok(existing) => existing.created_at,
        Err(StoreError::NotFound { .. }) => now,
        Err(e) => return Err(e.into()),
    };
    let zone = master
        .original_start_time_zone
        .as_deref()
        .and_then(|z| orb_core::zones::resolve_graph_zone(z).ok())
        .unwrap_or_else(|| {
            tenant.rooms.by_id(room.id).map_or_else(TimeZoneName::utc, |m| m.time_zone.clone())
        });
    let organizer = master
        .organizer
        .as_ref()
        .and_then(|o| o.address())
        .and_then(|a| EmailAddress::parse(a).ok())
        .unwrap_or_else(|| mailbox.clone());
    deps.store
        .upsert_series(&Series {
            id: series_id,
            tenant_id: tenant.tenant_id,
            room_id: room.id,
            organizer,
            ical_uid: master.ical_uid.clone(),
            exchange_master_event_id: master.id.clone(),
            topdesk_series_id: None,
            pattern: master
                .recurrence
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok())
                .unwrap_or(Value::Null),
            time_zone: zone,
            created_at,
            updated_at: now,
        })
        .await?;

    let until = now + tenant.policy.horizon;
    let instances = match tenant.graph.instances(mailbox, &master_id, now, until, corr).await {
        Ok(list) => list,
        Err(GraphError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let filter = BookingFilter {
        room: Some(room.id),
        series: Some(series_id),
        from: Some(now),
        include_cancelled: false,
        ..BookingFilter::default()
    };
    let known = deps.store.list_bookings(tenant.tenant_id, &filter).await?;
    // One organizer view for the whole series.
    let starts = instances.iter().filter_map(|e| e.start.as_ref()?.to_utc().ok());
    let ends = instances.iter().filter_map(|e| e.end.as_ref()?.to_utc().ok());
    let first = starts.chain(known.iter().map(|r| r.start)).min();
    let last = ends.chain(known.iter().map(|r| r.end)).max();
    locked(&cache.masters).insert(series_id, master.ical_uid.clone());
    if let (Some(first), Some(last), Some(ical)) = (first, last, master.ical_uid.as_deref()) {
        let organizer =
            master.organizer.as_ref().and_then(|o| o.address()).and_then(|a| EmailAddress::parse(a).ok());
        if let Some(organizer) = organizer.filter(|o| !tenant.rooms.is_room_address(o)) {
            // One read of the organizer's occurrences for the whole series (warms the job's cache).
            match organizer_instances(tenant, cache, &organizer, ical, (first, last), corr).await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(e) => tracing::info!(error = %e, "the organizer's series cannot be read"),
            }
        }
    }

    let mut outcomes = Vec::new();
    let mut seen = BTreeSet::new();
    for instance in &instances {
        if let Some(original) = instance.original_start {
            seen.insert(original);
        }
        let observed = observe_in_room(deps, tenant, cache, mailbox, RoomCopy::Item(instance), corr).await?;
        outcomes
            .push(sync_from(deps, tenant, &observed.observation, observed.room_copy_subject, cache).await?);
    }
    for record in known.iter().filter(|r| r.original_start.is_none_or(|o| !seen.contains(&o))) {
        let copy = RoomCopy::Gone { event_id: None, record };
        let observed = observe_in_room(deps, tenant, cache, mailbox, copy, corr).await?;
        outcomes
            .push(sync_from(deps, tenant, &observed.observation, observed.room_copy_subject, cache).await?);
    }
    Ok(outcomes)
}

fn bad(kind: &str, reason: impl Into<String>) -> SyncError {
    SyncError::BadPayload { kind: kind.to_owned(), reason: reason.into() }
}

fn payload_str<'a>(job: &'a ClaimedJob, field: &str) -> Result<&'a str, SyncError> {
    job.job
        .payload
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(&job.job.kind, format!("no {field:?}")))
}

fn payload_i64(job: &ClaimedJob, field: &str) -> Result<i64, SyncError> {
    job.job
        .payload
        .get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| bad(&job.job.kind, format!("no {field:?}")))
}

/// Runs one claimed job: `graph.notification`, `graph.lifecycle` ([`crate::subscriptions`]),
/// `topdesk.hint`, `sync.retry` or `sync.observation` (see the module docs).
/// Unknown kinds are [`SyncError::UnknownJobKind`] (not retryable: the job is dead).
pub async fn process_job(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let span = tracing::info_span!(
        "job",
        id = %job.job.id,
        kind = %job.job.kind,
        tenant = %job.job.tenant_id,
        correlation = job.job.correlation_id.map(tracing::field::display),
        attempts = job.job.attempts,
    );
    async {
        // While a side denies the tenant's credentials, its jobs wait without calling anyone (one probe
        // after each pause); Graph's lifecycle events are still handled while only TOPdesk is paused.
        if let Ok(tenant) = deps.tenant(job.job.tenant_id) {
            let now = deps.clock.now();
            for side in [Side::Exchange, Side::Topdesk] {
                let exempt = side == Side::Topdesk && job.job.kind == JOB_GRAPH_LIFECYCLE;
                if !exempt && let Some(until) = tenant.writes.paused_until(side, now) {
                    return Err(SyncError::WritesPaused { tenant: job.job.tenant_id, side, until });
                }
            }
        }
        let result = match job.job.kind.as_str() {
            JOB_GRAPH_NOTIFICATION => graph_notification(deps, job).await,
            JOB_GRAPH_LIFECYCLE => crate::subscriptions::process_lifecycle(deps, job).await,
            JOB_TOPDESK_HINT => topdesk_hint(deps, job).await,
            JOB_SYNC_RETRY | JOB_SYNC_OBSERVATION => sync_retry(deps, job).await,
            JOB_RECONCILE_SWEEP => reconcile_sweep(deps, job).await,
            other => Err(SyncError::UnknownJobKind { kind: other.to_owned() }),
        };
        match result {
            Err(e) => Err(paused_if_denied(deps, job.job.tenant_id, e).await),
            ok => ok,
        }
    }
    .instrument(span)
    .await
}

/// A read that a side denied (401 / 403: a person look-up, reading an event) is the same configuration
/// failure as a denied write: the tenant's work with that side pauses ([`crate::pause`]) and the job waits
/// instead of going dead.
async fn paused_if_denied(deps: &SyncDeps, tenant_id: TenantId, e: SyncError) -> SyncError {
    let side = match &e {
        SyncError::Topdesk(TopdeskError::Unauthorized { .. } | TopdeskError::Forbidden { .. }) => {
            Side::Topdesk
        }
        SyncError::Graph(GraphError::Unauthorized { .. } | GraphError::Forbidden { .. }) => Side::Exchange,
        _ => return e,
    };
    let Ok(tenant) = deps.tenant(tenant_id) else { return e };
    let now = deps.clock.now();
    let paused = tenant.writes.deny(side, now);
    if paused.newly {
        audit_pause(deps, tenant, side, AUDIT_WRITES_PAUSED, &e.to_string(), now).await;
    }
    tracing::error!(%side, until = %paused.until, error = %e, "access denied: tenant paused");
    SyncError::WritesPaused { tenant: tenant_id, side, until: paused.until }
}

/// Runs one `reconcile.sweep` job: the sweep of its room over the lifecycle window
/// ([`crate::reconcile::sweep_job`]: a passing failure completes the job, so the lane moves on).
async fn reconcile_sweep(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let bad = |reason: &str| SyncError::BadPayload {
        kind: JOB_RECONCILE_SWEEP.to_owned(),
        reason: reason.to_owned(),
    };
    let room = job.job.payload["room"].as_str().ok_or_else(|| bad("no room id"))?;
    let room: orb_core::RoomId = room.parse().map_err(|_| bad("the room id is not a UUID"))?;
    let budget = crate::reconcile::SWEEP_JOB_BUDGET;
    let reason = crate::reconcile::sweep_job(deps, job.job.tenant_id, room, budget).await?;
    Ok(JobResult::Ignored { reason })
}

async fn refuse(
    deps: &SyncDeps,
    tenant: TenantId,
    inbox_id: i64,
    reason: String,
) -> Result<JobResult, SyncError> {
    let now = deps.clock.now();
    tracing::warn!(inbox_id, %reason, "notification refused");
    deps.store
        .append_audit(&NewAuditEntry {
            tenant_id: Some(tenant),
            at: now,
            actor: AUDIT_ACTOR.to_owned(),
            action: AUDIT_NOTIFICATION_REFUSED.to_owned(),
            target: format!("inbox item {inbox_id}: {reason}"),
            ip: None,
        })
        .await?;
    deps.store.mark_inbox_processed(tenant, inbox_id, now).await?;
    Ok(JobResult::Refused { reason })
}

/// A refusal of Graph's content, as opposed to a failure that may pass (JWKS unreachable).
fn is_refusal(e: &GraphError) -> bool {
    matches!(e, GraphError::NotificationRefused { .. } | GraphError::Decode { .. })
}

async fn graph_notification(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let kind = &job.job.kind;
    let tenant_id = job.job.tenant_id;
    let subscription_id = payload_str(job, "subscription_id")?;
    let inbox_id = payload_i64(job, "inbox_id")?;
    let inbox = deps.store.get_inbox(tenant_id, inbox_id).await?;
    if inbox.processed_at.is_some() {
        return Ok(JobResult::Ignored { reason: format!("inbox item {inbox_id} was processed already") });
    }
    let tenant = deps.tenant(tenant_id)?;
    let subscription = match deps.store.get_subscription(tenant_id, subscription_id).await {
        Ok(s) => s,
        Err(StoreError::NotFound { .. }) => {
            deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
            return Ok(JobResult::Ignored { reason: format!("subscription {subscription_id} is gone") });
        }
        Err(e) => return Err(e.into()),
    };
    let room = deps.store.get_room(tenant_id, subscription.room_id).await?;
    let mailbox = room.mailbox.address().clone();
    let item: ChangeNotification = match serde_json::from_value(inbox.payload.clone()) {
        Ok(item) => item,
        Err(e) => return refuse(deps, tenant_id, inbox_id, format!("not a change notification ({e})")).await,
    };
    let tokens: Option<Vec<String>> = match inbox.payload.get("validationTokens") {
        None | Some(Value::Null) => None,
        Some(v) => match serde_json::from_value(v.clone()) {
            Ok(t) => Some(t),
            Err(_) => {
                return refuse(deps, tenant_id, inbox_id, "validationTokens is not a list".into()).await;
            }
        },
    };

    let event = if item.encrypted_content.is_some() {
        if tokens.is_none() && deps.require_validation_tokens {
            return refuse(deps, tenant_id, inbox_id, "encrypted content without validationTokens".into())
                .await;
        }
        if tokens.is_some() {
            let collection =
                ChangeNotificationCollection { validation_tokens: tokens, value: vec![item.clone()] };
            let app = tenant.graph.app();
            let expected = ValidationTokenExpectations::new(app.client_id.clone(), app.tenant.clone());
            match tenant.jwks.check_validation_tokens(&collection, &expected).await {
                Ok(_) => {}
                Err(e) if is_refusal(&e) => return refuse(deps, tenant_id, inbox_id, e.to_string()).await,
                Err(e) => return Err(e.into()),
            }
        }
        match decrypt_event(&item, &deps.certificates) {
            Ok(event) => event,
            Err(e) => return refuse(deps, tenant_id, inbox_id, e.to_string()).await,
        }
    } else {
        None
    };

    let resource_id = item.resource_data.as_ref().and_then(|r| r.id.clone());
    let deleted = item.change_type == Some(ChangeType::Deleted);
    let corr = job.job.correlation_id.unwrap_or_else(|| CorrelationId::generate(deps.clock.now()));
    let event = match (event, deleted, &resource_id) {
        (Some(event), false, _) => Some(event),
        (_, true, _) => None,
        (None, false, Some(id)) => match tenant.graph.get_event(&mailbox, id, corr).await {
            Ok(event) => Some(event),
            Err(GraphError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        (None, false, None) => return Err(bad(kind, "the notification names no event (resourceData.id)")),
    };

    let cache = JobCache::default();
    let outcomes = match event {
        Some(event) if event.kind == Some(orb_graph::model::EventType::SeriesMaster) => {
            room_series(deps, tenant, &cache, &mailbox, &room, &event, corr).await?
        }
        Some(event) => {
            let observed =
                observe_in_room(deps, tenant, &cache, &mailbox, RoomCopy::Item(&event), corr).await?;
            vec![sync_from(deps, tenant, &observed.observation, observed.room_copy_subject, &cache).await?]
        }
        None => {
            let Some(id) = resource_id else {
                return Err(bad(kind, "a deleted notification names no event"));
            };
            let gone = match deps.store.find_booking(tenant_id, &BookingKey::ExchangeEvent(&id)).await? {
                Some(record) => vec![record],
                None => {
                    // A series master gone from the room: its occurrences in this room.
                    let key = SeriesKey::GraphMaster { mailbox: Some(&mailbox), master_id: &id };
                    let filter = BookingFilter {
                        room: Some(room.id),
                        series: Some(series_id_for(tenant_id, &key)),
                        from: Some(deps.clock.now()),
                        include_cancelled: false,
                        ..BookingFilter::default()
                    };
                    deps.store.list_bookings(tenant_id, &filter).await?
                }
            };
            if gone.is_empty() {
                deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
                return Ok(JobResult::Ignored { reason: "a deleted event ORB does not track".into() });
            }
            let mut outcomes = Vec::new();
            for record in &gone {
                let event_id = (record.series_id.is_none()).then(|| id.clone());
                let copy = RoomCopy::Gone { event_id, record };
                let observed = observe_in_room(deps, tenant, &cache, &mailbox, copy, corr).await?;
                outcomes.push(
                    sync_from(deps, tenant, &observed.observation, observed.room_copy_subject, &cache)
                        .await?,
                );
            }
            outcomes
        }
    };
    deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
    Ok(JobResult::Synced(outcomes))
}

async fn topdesk_hint(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let kind = &job.job.kind;
    let tenant_id = job.job.tenant_id;
    let inbox_id = payload_i64(job, "inbox_id")?;
    let inbox = deps.store.get_inbox(tenant_id, inbox_id).await?;
    if inbox.processed_at.is_some() {
        return Ok(JobResult::Ignored { reason: format!("inbox item {inbox_id} was processed already") });
    }
    let tenant = deps.tenant(tenant_id)?;
    let hints: Vec<String> = inbox
        .payload
        .get("reservations")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| bad(kind, "the inbox item has no \"reservations\" list"))?;
    let mut fanned_out = 0_usize;
    for hint in &hints {
        let fetched = match hint.parse::<ReservationId>() {
            Ok(id) => tenant.topdesk.get_reservation(id).await,
            Err(_) => tenant.topdesk.get_reservation_by_number(hint).await,
        };
        let reservation = match fetched {
            Ok(r) => r,
            Err(TopdeskError::NotFound { .. }) => {
                tracing::warn!(%hint, "hinted reservation not found; skipped");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let observation = match observe_reservation(tenant, &reservation) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(%hint, error = %e, "hinted reservation is not a booking ORB syncs; skipped");
                continue;
            }
        };
        // The hint arrives on the tenant lane; the booking's work belongs in its room's lane, so it runs in
        // order with that room's Graph notifications (never two workers on one booking at once).
        let room = match &observation.room {
            orb_core::ObservedRoom::Location(loc) => tenant.rooms.by_location(loc).map(|m| m.id),
            _ => None,
        };
        let Some(room) = room else {
            tracing::info!(%hint, "hinted reservation is not in a mapped room; skipped");
            continue;
        };
        // The observation is scrubbed by the privacy policy (observe_reservation) before it is stored.
        let payload = serde_json::json!({ "observation": observation });
        let follow_up = NewJob {
            lane: Lane::room(tenant_id, room),
            kind: JOB_SYNC_OBSERVATION.to_owned(),
            payload,
            correlation_id: job.job.correlation_id,
            run_at: None,
        };
        deps.store.enqueue(&follow_up, deps.clock.now()).await?;
        fanned_out += 1;
    }
    deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
    Ok(JobResult::Ignored {
        reason: format!("{fanned_out} hinted reservation(s) queued in their rooms' lanes"),
    })
}

async fn sync_retry(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let tenant = deps.tenant(job.job.tenant_id)?;
    let observation: Observation = job
        .job
        .payload
        .get("observation")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| bad(&job.job.kind, "no readable \"observation\""))?;
    let observation = scrubbed(&tenant.policy, observation);
    // A swept room copy (`room_copy`): its subject is Exchange's rewrite, not the meeting's.
    let room_copy = job.job.payload["room_copy"].as_bool().unwrap_or(false);
    let outcome = sync_from(deps, tenant, &observation, room_copy, &JobCache::default()).await?;
    Ok(JobResult::Synced(vec![outcome]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_failures_are_retryable() {
        let conflict = StoreError::Conflict { what: "booking".into(), expected: 1, actual: 2 };
        assert!(SyncError::Store(conflict).is_retryable());
        assert!(!SyncError::Store(StoreError::NotFound { what: "inbox item".into() }).is_retryable());
        assert!(SyncError::ConflictRetriesExhausted { booking: "b".into(), tries: 3 }.is_retryable());
        assert!(!SyncError::UnknownJobKind { kind: "x".into() }.is_retryable());
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(7));
        assert!(
            SyncError::UnknownTenant { tenant }.is_retryable(),
            "a reload must not kill the tenant's jobs"
        );
        assert!(!SyncError::BadPayload { kind: "x".into(), reason: "y".into() }.is_retryable());
        let observe = ObserveError::SeriesMaster { event_id: "e".into() };
        assert!(!SyncError::Observe(observe).is_retryable());
        let unknown = SyncError::UnknownJobKind { kind: "graph.other".into() };
        assert!(unknown.to_string().contains("graph.other"), "{unknown}");
    }

    #[test]
    fn series_ids_are_stable_per_tenant_and_key() {
        let tenant: TenantId = "0190f0e4-7d1c-7a3b-9a6f-0000000000f0".parse().unwrap();
        let other: TenantId = "0190f0e4-7d1c-7a3b-9a6f-0000000000f1".parse().unwrap();
        let room = EmailAddress::parse("room1@contoso.com").unwrap();
        let key = SeriesKey::GraphMaster { mailbox: Some(&room), master_id: "AAMk1" };
        assert_eq!(series_id_for(tenant, &key), series_id_for(tenant, &key));
        assert_ne!(series_id_for(tenant, &key), series_id_for(other, &key));
        let other_master = SeriesKey::GraphMaster { mailbox: Some(&room), master_id: "AAMk2" };
        assert_ne!(series_id_for(tenant, &key), series_id_for(tenant, &other_master));
        let td = SeriesKey::TopdeskSeries(orb_topdesk::ReservationSeriesId(uuid::Uuid::nil()));
        assert_ne!(series_id_for(tenant, &key), series_id_for(tenant, &td));
    }

    #[test]
    fn a_dropped_subject_leaves_the_observation_at_once() {
        let at = DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let obs = Observation {
            side: Side::Exchange,
            source: ObservationSource::Notification,
            orb_match_id: None,
            ids: RemoteIds::default(),
            room: orb_core::ObservedRoom::None,
            start: at,
            end: at + chrono::Duration::hours(1),
            time_zone: None,
            organizer: EmailAddress::parse("anna@contoso.com").unwrap(),
            booked_by: None,
            participants: Vec::new(),
            subject: Some("Secret".into()),
            location_text: None,
            lifecycle: Lifecycle::Active,
            room_response: orb_core::RoomResponse::Accepted,
            modified_at: at,
            appointment_type: orb_core::AppointmentType::Single,
            series: None,
            unsynced: BTreeMap::new(),
            counterpart: None,
        };
        let with_counterpart = Observation { counterpart: Some(Box::new(obs.clone())), ..obs.clone() };
        let mut policy = Policy::new();
        assert_eq!(scrubbed(&policy, with_counterpart.clone()), with_counterpart, "keep: untouched");
        policy.subject = SubjectPolicy::Drop;
        let dropped = scrubbed(&policy, with_counterpart);
        assert_eq!(dropped.subject, None);
        assert_eq!(dropped.counterpart.and_then(|c| c.subject), None);
    }

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
