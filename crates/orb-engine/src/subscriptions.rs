//! **Subscriptions**: one rich Graph change-notification subscription per enabled, mapped room mailbox
//! (DESIGN §3, "Exchange change detection"; reference §2 and §4), kept alive by [`ensure_subscriptions`],
//! and the `graph.lifecycle` jobs ([`crate::dispatch::process_job`] hands them to [`process_lifecycle`]).
//!
//! ## What [`ensure_subscriptions`] does, per tenant
//! - **Wanted rooms** are the store's rooms that are enabled *and* mapped (and enabled) in the tenant's
//!   [`orb_core::RoomMap`]. Each gets one rich subscription on `users/{room}/events?$select=…`
//!   ([`orb_graph::rich_event_select`]: never `body`, no `subject` under `drop`), change types
//!   `created,updated,deleted`, notification URL
//!   `{base}/hooks/graph/{tenant name}`, lifecycle URL `{base}/hooks/graph/{tenant name}/lifecycle`, a fresh
//!   `clientState` from [`generate_client_state`] (only its SHA-256 is stored) and the ring's current
//!   encryption certificate.
//! - **Lifetime and renewal.** A subscription is asked for [`SUBSCRIPTION_LIFETIME`] minus
//!   [`EXPIRY_MARGIN`] (rich event subscriptions live at most a day). It is renewed once less than
//!   [`RENEW_WHEN_LESS_THAN`] (about half its lifetime) is left, so a run every hour or so renews each
//!   subscription long before Graph ends it, and a few failed runs in a row are harmless. A subscription
//!   whose certificate is no longer the ring's current one is renewed at once and moved to the current
//!   certificate in the same `PATCH`.
//! - A renewal Graph answers with 404 (Graph removed or expired it) deletes the row and **recreates** it.
//! - Subscriptions of rooms that are disabled, unmapped or gone are **deleted** in Graph and the store, and
//!   so is any second subscription of one room (a race between two creators).
//! - **Idempotent**: a second run right after the first changes nothing (no Graph write at all).
//!
//! ## Lifecycle notifications ([`process_lifecycle`])
//! Every item is checked against this tenant's stored subscription (the intake did so too; the worker checks
//! again because the row may have gone meanwhile): an unknown one is refused (audit
//! `notification.refused`). Then:
//! - `reauthorizationRequired` → **renew** (`PATCH expirationDateTime`, which reauthorizes too — reference
//!   §4 — and extends the expiry, moving to the current certificate if it changed); a 404 recreates.
//! - `subscriptionRemoved` → the row is deleted and a new subscription is created for the room (when the
//!   room is still wanted; the base URL is [`TenantRuntime::notification_base_url`]); then the room is
//!   swept ([`crate::reconcile::sweep_room`], a day back to the policy's horizon), so what changed while
//!   Graph had no subscription is healed. A failed sweep is audited ([`AUDIT_SWEEP_FAILED`]) and does not
//!   fail the job.
//! - `missed` → an audit entry [`AUDIT_SUBSCRIPTION_MISSED`] naming the room tells an admin, then the room is
//!   swept the same way (DESIGN §3: a sweep of the room after `missed` / `subscriptionRemoved`); the sweep
//!   runs in the room's lane (lifecycle jobs are queued there) and enqueues its `sync.observation` jobs
//!   behind itself. A failed sweep fails the job, which is retried.
//! - any other event → audit [`AUDIT_SUBSCRIPTION_LIFECYCLE_UNKNOWN`] and processed.
//!
//! ## Invariants
//! - The clear `clientState` lives only in memory between its generation and the create call.
//! - Time only from the injected clock (`now` / [`SyncDeps::clock`]).

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::digest::{SHA256, digest};
use chrono::{DateTime, Duration, Utc};
use orb_core::{CorrelationId, RoomId, TenantId, TenantName};
use orb_graph::model::ChangeType;
use orb_graph::{
    GraphError, RichNotifications, SubscriptionRequest, events_resource, generate_client_state,
    rich_event_select, subscription_expiry,
};
use orb_store::jobs::{GraphLifecycleJob, JobPayload as _};
use orb_store::{ClaimedJob, NewAuditEntry, Room, StoreError, SubscriptionRow};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::reconcile::{self, AUDIT_SWEEP_FAILED};
use crate::runtime::{
    AUDIT_ACTOR, AUDIT_NOTIFICATION_REFUSED, JobResult, SyncDeps, SyncError, TenantRuntime,
};

/// The lifetime ORB asks for (Graph caps rich event subscriptions at one day).
pub const SUBSCRIPTION_LIFETIME: Duration = Duration::days(1);
/// Taken off the asked lifetime so clock skew never asks Graph for more than it allows.
pub const EXPIRY_MARGIN: Duration = Duration::minutes(30);
/// A subscription with less than this left is renewed (about half of its lifetime).
pub const RENEW_WHEN_LESS_THAN: Duration = Duration::hours(12);
/// Audit action: Graph reported lost notifications for a room (`missed`).
pub const AUDIT_SUBSCRIPTION_MISSED: &str = "subscription.missed";
/// Audit action: a lifecycle event ORB does not know.
pub const AUDIT_SUBSCRIPTION_LIFECYCLE_UNKNOWN: &str = "subscription.lifecycle-unknown";
/// Audit action: a subscription Graph removed was created again.
pub const AUDIT_SUBSCRIPTION_RECREATED: &str = "subscription.recreated";

/// What one [`ensure_subscriptions`] run changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsureReport {
    /// Rooms that got a new subscription (they had none).
    pub created: Vec<RoomId>,
    /// Subscriptions renewed (ids).
    pub renewed: Vec<String>,
    /// Rooms whose subscription Graph no longer knew and that got a new one.
    pub recreated: Vec<RoomId>,
    /// Subscriptions deleted (ids): disabled, unmapped or duplicate rooms.
    pub deleted: Vec<String>,
    /// Subscriptions left as they were.
    pub unchanged: usize,
}

impl EnsureReport {
    /// Whether the run changed nothing.
    pub fn is_noop(&self) -> bool {
        self.created.is_empty()
            && self.renewed.is_empty()
            && self.recreated.is_empty()
            && self.deleted.is_empty()
    }
}

fn sha256(text: &str) -> Vec<u8> {
    digest(&SHA256, text.as_bytes()).as_ref().to_vec()
}

fn config(reason: impl Into<String>) -> SyncError {
    SyncError::Graph(GraphError::Config { reason: reason.into() })
}

async fn tenant_name(deps: &SyncDeps, tenant: TenantId) -> Result<TenantName, SyncError> {
    let all = deps.store.list_tenants().await?;
    all.into_iter()
        .find(|t| t.id == tenant)
        .map(|t| t.name)
        .ok_or_else(|| SyncError::Store(StoreError::NotFound { what: format!("tenant {tenant}") }))
}

/// Whether ORB wants a subscription for `room`: enabled in the store and mapped (enabled) in the runtime.
fn wanted(tenant: &TenantRuntime, room: &Room) -> bool {
    room.enabled && tenant.rooms.by_id(room.id).is_some_and(|m| m.enabled)
}

/// The resource ORB subscribes to for `room`: its events, `$select`ing what an observation needs (no
/// `subject` under the subject policy `drop`).
fn wanted_resource(tenant: &TenantRuntime, room: &Room) -> String {
    let with_subject = !matches!(tenant.policy.subject, orb_core::SubjectPolicy::Drop);
    events_resource(room.mailbox.address(), Some(&rich_event_select(with_subject)))
}

fn hook_url(base: &str, tenant: &TenantName, lifecycle: bool) -> Result<url::Url, SyncError> {
    let base = base.trim_end_matches('/');
    let text = if lifecycle {
        format!("{base}/hooks/graph/{tenant}/lifecycle")
    } else {
        format!("{base}/hooks/graph/{tenant}")
    };
    url::Url::parse(&text).map_err(|e| config(format!("notification URL {text:?} is not a URL: {e}")))
}

fn current_rich(deps: &SyncDeps) -> Result<RichNotifications, SyncError> {
    deps.certificates.current().map(RichNotifications::for_certificate).ok_or_else(|| {
        config("the certificate ring holds no current certificate; rich subscriptions need one")
    })
}

fn expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    subscription_expiry(now, SUBSCRIPTION_LIFETIME, true, EXPIRY_MARGIN)
}

/// Creates the subscription of `room` in Graph and stores its row.
async fn create_for_room(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    name: &TenantName,
    base: &str,
    room: &Room,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, SyncError> {
    let rich = current_rich(deps)?;
    let client_state = generate_client_state()?;
    let request = SubscriptionRequest {
        resource: wanted_resource(tenant, room),
        change_types: vec![ChangeType::Created, ChangeType::Updated, ChangeType::Deleted],
        notification_url: hook_url(base, name, false)?,
        lifecycle_notification_url: Some(hook_url(base, name, true)?),
        client_state: client_state.clone(),
        expiration: expiry(now),
        rich: Some(rich.clone()),
    };
    let sub = tenant.graph_client()?.create_subscription(&request, CorrelationId::generate(now)).await?;
    let id = sub.id.clone().ok_or_else(|| config("Graph created a subscription without an id"))?;
    let row = SubscriptionRow {
        id,
        tenant_id: tenant.tenant_id,
        room_id: room.id,
        resource: request.resource.clone(),
        client_state_hash: sha256(client_state.expose_secret()),
        rich: true,
        encryption_certificate_id: Some(rich.certificate_id),
        expires_at: sub.expiration_date_time.unwrap_or(request.expiration),
        created_at: now,
        updated_at: now,
        watermark: None,
    };
    deps.store.upsert_subscription(&row).await?;
    tracing::info!(subscription = %row.id, room = %room.mailbox.address(), "subscription created");
    Ok(row)
}

/// Renews `row` (moving it to the current certificate when it changed). `Ok(None)`: Graph no longer knows
/// it (404); the row is then deleted from the store.
async fn renew_row(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    row: &SubscriptionRow,
    now: DateTime<Utc>,
) -> Result<Option<SubscriptionRow>, SyncError> {
    let rich = if row.rich { Some(current_rich(deps)?) } else { None };
    let moving =
        rich.as_ref().filter(|r| row.encryption_certificate_id.as_deref() != Some(&r.certificate_id));
    let asked = expiry(now);
    match tenant
        .graph_client()?
        .renew_subscription(&row.id, asked, moving, CorrelationId::generate(now))
        .await
    {
        Ok(sub) => {
            let mut next = row.clone();
            next.expires_at = sub.expiration_date_time.unwrap_or(asked);
            if let Some(r) = moving {
                next.encryption_certificate_id = Some(r.certificate_id.clone());
            }
            next.updated_at = now;
            deps.store.upsert_subscription(&next).await?;
            tracing::info!(subscription = %row.id, expires = %next.expires_at, "subscription renewed");
            Ok(Some(next))
        }
        Err(GraphError::NotFound { .. }) => {
            tracing::warn!(subscription = %row.id, "Graph no longer knows the subscription; it is recreated");
            forget_row(deps, row).await?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes a row from the store; a row that is already gone counts as deleted.
async fn forget_row(deps: &SyncDeps, row: &SubscriptionRow) -> Result<(), SyncError> {
    match deps.store.delete_subscription(row.tenant_id, &row.id).await {
        Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn needs_renewal(deps: &SyncDeps, row: &SubscriptionRow, now: DateTime<Utc>) -> bool {
    let cert_changed = row.rich
        && deps
            .certificates
            .current()
            .is_some_and(|c| row.encryption_certificate_id.as_deref() != Some(c.id()));
    cert_changed || row.expires_at - now < RENEW_WHEN_LESS_THAN
}

/// Brings `tenant`'s subscriptions in line with its rooms (see the module docs): create, renew, move to the
/// current certificate, recreate, delete. `notification_base_url` is ORB's public base URL (the intake's
/// routes are appended).
pub async fn ensure_subscriptions(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    notification_base_url: &str,
    now: DateTime<Utc>,
) -> Result<EnsureReport, SyncError> {
    let name = tenant_name(deps, tenant.tenant_id).await?;
    let rooms: BTreeMap<RoomId, Room> = deps
        .store
        .list_rooms(tenant.tenant_id)
        .await?
        .into_iter()
        .filter(|r| wanted(tenant, r))
        .map(|r| (r.id, r))
        .collect();
    let mut report = EnsureReport::default();
    let mut covered: BTreeSet<RoomId> = BTreeSet::new();
    // Newest first, so of two subscriptions of one room the newer one is kept.
    let mut rows = deps.store.list_subscriptions(tenant.tenant_id).await?;
    rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
    for row in rows {
        let Some(room) = rooms.get(&row.room_id).filter(|_| !covered.contains(&row.room_id)) else {
            tenant.graph_client()?.delete_subscription(&row.id, CorrelationId::generate(now)).await?;
            forget_row(deps, &row).await?;
            tracing::info!(subscription = %row.id, "subscription of a room ORB no longer watches deleted");
            report.deleted.push(row.id);
            continue;
        };
        covered.insert(row.room_id);
        if row.resource != wanted_resource(tenant, room) {
            // The subject policy changed: Graph cannot change a subscription's resource, so a new one
            // (with the new `$select`) is made before the old one is deleted; nothing is missed between.
            create_for_room(deps, tenant, &name, notification_base_url, room, now).await?;
            match tenant.graph_client()?.delete_subscription(&row.id, CorrelationId::generate(now)).await {
                Ok(()) | Err(GraphError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            forget_row(deps, &row).await?;
            tracing::info!(subscription = %row.id, "subscription moved to the current $select");
            report.recreated.push(room.id);
            continue;
        }
        if !needs_renewal(deps, &row, now) {
            report.unchanged += 1;
            continue;
        }
        match renew_row(deps, tenant, &row, now).await? {
            Some(_) => report.renewed.push(row.id),
            None => {
                create_for_room(deps, tenant, &name, notification_base_url, room, now).await?;
                report.recreated.push(room.id);
            }
        }
    }
    for room in rooms.values().filter(|r| !covered.contains(&r.id)) {
        create_for_room(deps, tenant, &name, notification_base_url, room, now).await?;
        report.created.push(room.id);
    }
    record_subscription_gauges(deps, tenant.tenant_id, &name, now).await?;
    Ok(report)
}

/// Sets `orb_subscriptions{tenant,state=active|expired}` and `orb_subscription_expiry_seconds{tenant}` (the
/// least time left of the tenant's subscriptions; not set when it has none) from the stored rows.
async fn record_subscription_gauges(
    deps: &SyncDeps,
    tenant: TenantId,
    name: &TenantName,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let rows = deps.store.list_subscriptions(tenant).await?;
    let expired = rows.iter().filter(|r| r.expires_at <= now).count();
    let label = name.as_str().to_owned();
    metrics::gauge!("orb_subscriptions", "tenant" => label.clone(), "state" => "active")
        .set((rows.len() - expired) as f64);
    metrics::gauge!("orb_subscriptions", "tenant" => label.clone(), "state" => "expired").set(expired as f64);
    if let Some(least) = rows.iter().map(|r| r.expires_at - now).min() {
        metrics::gauge!("orb_subscription_expiry_seconds", "tenant" => label).set(least.num_seconds() as f64);
    }
    Ok(())
}

async fn audit(
    deps: &SyncDeps,
    tenant: TenantId,
    action: &str,
    target: String,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    deps.store
        .append_audit(&NewAuditEntry {
            tenant_id: Some(tenant),
            at: now,
            actor: AUDIT_ACTOR.to_owned(),
            action: action.to_owned(),
            target,
            ip: None,
        })
        .await?;
    Ok(())
}

/// Runs one `graph.lifecycle` job (see the module docs).
pub async fn process_lifecycle(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let tenant_id = job.job.tenant_id;
    let payload = GraphLifecycleJob::of(&job.job)?;
    let inbox_id = payload.inbox_id()?;
    let inbox = deps.store.get_inbox(tenant_id, inbox_id).await?;
    if inbox.processed_at.is_some() {
        return Ok(JobResult::Ignored { reason: format!("inbox item {inbox_id} was processed already") });
    }
    let tenant = deps.tenant(tenant_id)?;
    let now = deps.clock.now();
    let done = |reason: String| async move {
        deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
        Ok::<_, SyncError>(reason)
    };

    // The item names its subscription; it must be one of this tenant's (and the one the job names).
    let named = inbox.payload.get("subscriptionId").and_then(Value::as_str);
    let job_named = payload.subscription_id.as_deref();
    let row = match named {
        Some(id) if job_named.is_none_or(|j| j == id) => {
            match deps.store.get_subscription(tenant_id, id).await {
                Ok(row) => Some(row),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            }
        }
        _ => None,
    };
    let Some(row) = row else {
        let reason = format!("lifecycle notification for unknown subscription {named:?}");
        audit(deps, tenant_id, AUDIT_NOTIFICATION_REFUSED, format!("inbox item {inbox_id}: {reason}"), now)
            .await?;
        done(String::new()).await?;
        return Ok(JobResult::Refused { reason });
    };
    let room = deps.store.get_room(tenant_id, row.room_id).await?;
    let mailbox = room.mailbox.address().clone();
    let event = inbox.payload.get("lifecycleEvent").and_then(Value::as_str).unwrap_or("");
    match event {
        "reauthorizationRequired" => {
            let reason = match renew_row(deps, tenant, &row, now).await? {
                Some(_) => format!("subscription {} of {mailbox} renewed (reauthorized)", row.id),
                None => recreate(deps, tenant, &room, &row, now).await?,
            };
            Ok(JobResult::Ignored { reason: done(reason).await? })
        }
        "subscriptionRemoved" => {
            forget_row(deps, &row).await?;
            let reason = recreate(deps, tenant, &room, &row, now).await?;
            // What changed while Graph had no subscription was never notified: sweep the room now that a
            // new subscription catches what follows. A failed sweep does not fail the job (a retry would
            // find the old subscription gone and refuse the item); the scheduled sweep heals it.
            let swept = match sweep_after_lifecycle(deps, tenant, &room, now).await {
                Ok(summary) => summary,
                Err(e) => {
                    tracing::warn!(room = %mailbox, error = %e, "sweep after subscriptionRemoved failed");
                    let target = format!("room {mailbox}: sweep after subscriptionRemoved failed: {e}");
                    audit(deps, tenant_id, AUDIT_SWEEP_FAILED, target, now).await?;
                    "sweep failed".to_owned()
                }
            };
            Ok(JobResult::Ignored { reason: done(format!("{reason}; {swept}")).await? })
        }
        "missed" => {
            // Graph lost notifications of this room: tell an admin, then sweep the room (DESIGN §3). A failed
            // sweep fails the job, which is retried (the audit entry is then written again).
            let target = format!("room {mailbox} (subscription {}): notifications were lost", row.id);
            audit(deps, tenant_id, AUDIT_SUBSCRIPTION_MISSED, target, now).await?;
            let swept = sweep_after_lifecycle(deps, tenant, &room, now).await?;
            Ok(JobResult::Ignored {
                reason: done(format!("missed notifications of {mailbox} audited; {swept}")).await?,
            })
        }
        other => {
            let target = format!("room {mailbox} (subscription {}): lifecycle event {other:?}", row.id);
            audit(deps, tenant_id, AUDIT_SUBSCRIPTION_LIFECYCLE_UNKNOWN, target, now).await?;
            Ok(JobResult::Ignored { reason: done(format!("unknown lifecycle event {other:?}")).await? })
        }
    }
}

/// Sweeps `room` over [`reconcile::lifecycle_window`] (a day back to the policy's horizon) after a lifecycle
/// event; returns a one-line summary for the job result.
async fn sweep_after_lifecycle(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    room: &Room,
    now: DateTime<Utc>,
) -> Result<String, SyncError> {
    let window = reconcile::lifecycle_window(&tenant.policy, now);
    let report = reconcile::sweep_room(deps, tenant.tenant_id, room.id, window, now).await?;
    Ok(if report.swept {
        format!(
            "room swept: {} job(s) enqueued, {} pair(s) onboarded, {} deletion(s) held",
            report.jobs.total(),
            report.paired,
            report.held_deletions
        )
    } else {
        "room not swept (not watched)".to_owned()
    })
}

/// Creates a new subscription for `room` after Graph dropped `old` (whose row is already gone).
async fn recreate(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    room: &Room,
    old: &SubscriptionRow,
    now: DateTime<Utc>,
) -> Result<String, SyncError> {
    forget_row(deps, old).await?;
    let mailbox = room.mailbox.address();
    if !wanted(tenant, room) {
        return Ok(format!("subscription {} of {mailbox} is gone; the room is not watched", old.id));
    }
    let base = tenant.notification_base_url.as_deref().ok_or_else(|| {
        config(format!(
            "tenant {} has no notification base URL; subscription {} of {mailbox} cannot be recreated",
            tenant.tenant_id, old.id
        ))
    })?;
    let name = tenant_name(deps, tenant.tenant_id).await?;
    let new = create_for_room(deps, tenant, &name, base, room, now).await?;
    let target = format!("room {mailbox}: subscription {} replaced by {}", old.id, new.id);
    audit(deps, tenant.tenant_id, AUDIT_SUBSCRIPTION_RECREATED, target, now).await?;
    Ok(format!("subscription {} of {mailbox} recreated as {}", old.id, new.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_urls_name_the_tenant() {
        let name = TenantName::parse("contoso").unwrap();
        assert_eq!(
            hook_url("https://orb.example/", &name, false).unwrap().as_str(),
            "https://orb.example/hooks/graph/contoso"
        );
        assert_eq!(
            hook_url("https://orb.example", &name, true).unwrap().as_str(),
            "https://orb.example/hooks/graph/contoso/lifecycle"
        );
        assert!(hook_url("not a url", &name, false).is_err());
    }

    #[test]
    fn renewal_margin_is_about_half_the_lifetime() {
        let asked = SUBSCRIPTION_LIFETIME - EXPIRY_MARGIN;
        assert!(RENEW_WHEN_LESS_THAN < asked && RENEW_WHEN_LESS_THAN * 2 >= asked);
        assert_eq!(sha256("abc").len(), 32);
    }
}
