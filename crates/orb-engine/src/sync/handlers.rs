//! **Job handlers**: the queue's sync jobs turned into observations and synced — `graph.notification`
//! (validationTokens and decryption for rich items, a GET for basic ones, refusals to the audit log only),
//! `topdesk.hint` (fetch, then one `sync.observation` job per reservation in its room's lane), and
//! `sync.retry` / `sync.observation`; a room's series master becomes one sync per occurrence
//! ([`room_series`]). [`crate::dispatch`] routes jobs here by kind.

use std::collections::BTreeSet;

use orb_core::{
    CorrelationId, EmailAddress, Observation, ObservationSource, RoomId, Side, TenantId, TimeZoneName,
};
use orb_crypto::ValidationTokenExpectations;
use orb_graph::GraphError;
use orb_graph::model::{ChangeNotification, ChangeNotificationCollection, ChangeType, Event};
use orb_graph::notifications::decrypt_event;
use orb_store::jobs::{
    GraphNotificationJob, JobKind, JobPayload as _, SyncObservationJob, SyncRetryJob, TopdeskHintJob,
};
use orb_store::{BookingFilter, BookingKey, ClaimedJob, Lane, NewAuditEntry, Series, StoreError};
use orb_topdesk::{ReservationId, TopdeskError};
use serde_json::Value;

use super::cache::{JobCache, locked};
use super::pipeline::{find_record, observe_reservation, sync_from};
use super::room::{OrganizerRead, RoomCopy, observe_in_room, organizer_instances};
use crate::observe::{SeriesKey, scrubbed, series_id_for};
use crate::runtime::{
    AUDIT_ACTOR, AUDIT_NOTIFICATION_REFUSED, JobResult, SyncDeps, SyncError, SyncOutcome, TenantRuntime,
};

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
        None => match tenant.exchange.get_event(mailbox, &master_id, corr).await {
            Ok(full) => {
                fetched = full;
                &fetched
            }
            Err(e) if e.is_not_found() => master,
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
    let instances = match tenant.exchange.instances(mailbox, &master_id, now, until, corr).await {
        Ok(list) => list,
        Err(e) if e.is_not_found() => Vec::new(),
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
        let observed = observe_in_room(
            deps,
            tenant,
            cache,
            mailbox,
            RoomCopy::Item(instance),
            OrganizerRead::WhenNeeded,
            corr,
        )
        .await?;
        outcomes
            .push(sync_from(deps, tenant, &observed.observation, observed.room_copy_subject, cache).await?);
    }
    for record in known.iter().filter(|r| r.original_start.is_none_or(|o| !seen.contains(&o))) {
        let copy = RoomCopy::Gone { event_id: None, record };
        let observed =
            observe_in_room(deps, tenant, cache, mailbox, copy, OrganizerRead::WhenNeeded, corr).await?;
        outcomes
            .push(sync_from(deps, tenant, &observed.observation, observed.room_copy_subject, cache).await?);
    }
    Ok(outcomes)
}

fn bad(kind: &str, reason: impl Into<String>) -> SyncError {
    SyncError::BadPayload { kind: kind.to_owned(), reason: reason.into() }
}

pub(super) async fn refuse(
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

pub(crate) async fn graph_notification(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let kind = &job.job.kind;
    let tenant_id = job.job.tenant_id;
    let payload = GraphNotificationJob::of(&job.job)?;
    let subscription_id = payload.subscription_id.as_str();
    let inbox_id = payload.inbox_id()?;
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
            let app = tenant.graph_client()?.app();
            let expected = ValidationTokenExpectations::new(app.client_id.clone(), app.tenant.clone());
            let jwks = tenant
                .jwks
                .as_ref()
                .ok_or(SyncError::NotGraph { tenant: tenant.tenant_id, kind: tenant.exchange.kind() })?;
            match jwks.check_validation_tokens(&collection, &expected).await {
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
        (None, false, Some(id)) => match tenant.exchange.get_event(&mailbox, id, corr).await {
            Ok(event) => Some(event),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        },
        (None, false, None) => return Err(bad(kind, "the notification names no event (resourceData.id)")),
    };

    let cache = JobCache::for_job(&job.job);
    let change = match (event, resource_id) {
        (Some(event), _) => RoomChange::Item(Box::new(event)),
        (None, Some(id)) => RoomChange::Gone(id),
        (None, None) => return Err(bad(kind, "a deleted notification names no event")),
    };
    let Some(outcomes) = room_change(deps, tenant, &cache, &room, change, corr).await? else {
        deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
        return Ok(JobResult::Ignored { reason: "a deleted event ORB does not track".into() });
    };
    deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
    Ok(JobResult::Synced(outcomes))
}

/// What a room's change notification says of one item, whichever protocol sent it.
pub(crate) enum RoomChange {
    /// The item as read now (a single event, an occurrence or a series master).
    Item(Box<Event>),
    /// The item with this id is gone from the room's calendar.
    Gone(String),
}

/// Syncs one changed item of `room`'s calendar: a series master fans out to its occurrences, an event is
/// observed (with the organizer's copy when needed) and synced, a gone item ends its booking (or a gone
/// master its occurrences in this room). `None`: a gone item ORB does not track.
pub(crate) async fn room_change(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    cache: &JobCache,
    room: &orb_store::Room,
    change: RoomChange,
    corr: CorrelationId,
) -> Result<Option<Vec<SyncOutcome>>, SyncError> {
    let tenant_id = tenant.tenant_id;
    let mailbox = room.mailbox.address().clone();
    let outcomes = match change {
        RoomChange::Item(event) if event.kind == Some(orb_graph::model::EventType::SeriesMaster) => {
            room_series(deps, tenant, cache, &mailbox, room, &event, corr).await?
        }
        RoomChange::Item(event) => {
            let observed = observe_in_room(
                deps,
                tenant,
                cache,
                &mailbox,
                RoomCopy::Item(&event),
                OrganizerRead::WhenNeeded,
                corr,
            )
            .await?;
            vec![sync_from(deps, tenant, &observed.observation, observed.room_copy_subject, cache).await?]
        }
        RoomChange::Gone(id) => {
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
                return Ok(None);
            }
            let mut outcomes = Vec::new();
            for record in &gone {
                let event_id = (record.series_id.is_none()).then(|| id.clone());
                let copy = RoomCopy::Gone { event_id, record };
                let observed =
                    observe_in_room(deps, tenant, cache, &mailbox, copy, OrganizerRead::WhenNeeded, corr)
                        .await?;
                outcomes.push(
                    sync_from(deps, tenant, &observed.observation, observed.room_copy_subject, cache).await?,
                );
            }
            outcomes
        }
    };
    Ok(Some(outcomes))
}

pub(crate) async fn topdesk_hint(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let kind = &job.job.kind;
    let tenant_id = job.job.tenant_id;
    let inbox_id = TopdeskHintJob::of(&job.job)?.inbox_id()?;
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
        let follow_up = SyncObservationJob::new(observation).to_job(
            Lane::room(tenant_id, room),
            job.job.correlation_id,
            None,
        );
        deps.store.enqueue(&follow_up, deps.clock.now()).await?;
        fanned_out += 1;
    }
    deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
    Ok(JobResult::Ignored {
        reason: format!("{fanned_out} hinted reservation(s) queued in their rooms' lanes"),
    })
}

/// Runs a `sync.retry` or `sync.observation` job (`kind`): syncs the observation it carries (a sweep's
/// Exchange finding on a protocol with coarse versions: as its item is now, see [`swept_now`]).
pub(crate) async fn sync_retry(
    deps: &SyncDeps,
    job: &ClaimedJob,
    kind: JobKind,
) -> Result<JobResult, SyncError> {
    let (observation, room_copy) = match kind {
        JobKind::SyncRetry => SyncRetryJob::of(&job.job).map(|p| (p.observation, p.room_copy))?,
        _ => SyncObservationJob::of(&job.job).map(|p| (p.observation, p.room_copy))?,
    };
    let tenant = deps.tenant(job.job.tenant_id)?;
    let observation = scrubbed(&tenant.policy, observation);
    let cache = JobCache::for_job(&job.job);
    let swept = kind == JobKind::SyncObservation
        && observation.source == ObservationSource::Sweep
        && observation.side == Side::Exchange
        && tenant.exchange.coarse_versions();
    let (observation, room_copy) = if swept {
        let corr = job.job.correlation_id.unwrap_or_else(|| CorrelationId::generate(deps.clock.now()));
        match swept_now(deps, tenant, &cache, &job.job.lane, &observation, room_copy, corr).await? {
            Some(now) => now,
            None => {
                return Ok(JobResult::Ignored {
                    reason: "the swept item is gone and ORB has no record of it".into(),
                });
            }
        }
    } else {
        (observation, room_copy)
    };
    // A swept room copy (`room_copy`): its subject is Exchange's rewrite, not the meeting's.
    let outcome = sync_from(deps, tenant, &observation, room_copy, &cache).await?;
    Ok(JobResult::Synced(vec![outcome]))
}

/// A sweep's Exchange finding as its item is now, for a protocol whose versions are coarse
/// ([`crate::exchange::Exchange::coarse_versions`]). The sweep listed the room's calendar before this job
/// runs; a change made in the same second as that listing (a cancellation, a move) and processed meanwhile
/// carries the same version as the listing, so the planner cannot tell the listing is older and would plan
/// its state over the change (a cancelled booking reopened on both sides, a move reverted). So the room's
/// item is read again by its id and observed as a notification would observe it (with the organizer's
/// copy where needed; gone: the booking's end); the sweep's source and counterpart (the other side's state)
/// are kept. Returns the observation and whether its subject is the room copy's; `None`: the item is gone
/// and ORB has no record of it, nothing to sync. A finding without an item id is returned as it is.
async fn swept_now(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    cache: &JobCache,
    lane: &str,
    swept: &Observation,
    room_copy: bool,
    corr: CorrelationId,
) -> Result<Option<(Observation, bool)>, SyncError> {
    let room = lane.strip_prefix("room:").and_then(|id| id.parse::<RoomId>().ok());
    let (Some(id), Some(room)) = (swept.ids.event_id.as_deref(), room.and_then(|r| tenant.rooms.by_id(r)))
    else {
        return Ok(Some((swept.clone(), room_copy)));
    };
    let mailbox = room.mailbox.address().clone();
    let read = match tenant.exchange.get_event(&mailbox, id, corr).await {
        Ok(event) => Some(event),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let record = match &read {
        Some(_) => None,
        None => match find_record(deps.store.as_ref(), tenant.tenant_id, swept).await? {
            Some(record) => Some(record),
            None => return Ok(None),
        },
    };
    let copy = match (&read, &record) {
        (Some(event), _) => RoomCopy::Item(event),
        (None, Some(record)) => {
            RoomCopy::Gone { event_id: record.series_id.is_none().then(|| id.to_owned()), record }
        }
        (None, None) => return Ok(None),
    };
    let observed =
        match observe_in_room(deps, tenant, cache, &mailbox, copy, OrganizerRead::WhenNeeded, corr).await {
            Ok(observed) => observed,
            Err(SyncError::Observe(e)) => {
                tracing::info!(error = %e, "the swept item is not a booking ORB syncs any more");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
    let mut now = observed.observation;
    now.source = ObservationSource::Sweep;
    now.counterpart.clone_from(&swept.counterpart);
    Ok(Some((now, observed.room_copy_subject)))
}
