//! **Dispatch**: runs one claimed job by routing its kind to its handler — the sync jobs
//! ([`crate::sync`]), `graph.lifecycle` ([`crate::subscriptions::process_lifecycle`]) and
//! `reconcile.sweep` ([`crate::reconcile::sweep_job`]) — and pauses a tenant whose side denied ORB's
//! credentials. Only [`crate::worker`] uses this module; nothing it dispatches to may use it.

use orb_core::{Side, TenantId};
use orb_graph::GraphError;
use orb_store::ClaimedJob;
use orb_store::jobs::{JobKind, JobPayload as _, ReconcileSweepJob};
use orb_topdesk::TopdeskError;
use tracing::Instrument as _;

use crate::runtime::{AUDIT_WRITES_PAUSED, JobResult, SyncDeps, SyncError, audit_pause};
use crate::sync;

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
                let exempt = side == Side::Topdesk && job.job.kind == JobKind::GraphLifecycle;
                if !exempt && let Some(until) = tenant.writes.paused_until(side, now) {
                    return Err(SyncError::WritesPaused { tenant: job.job.tenant_id, side, until });
                }
            }
        }
        let result = match JobKind::parse(&job.job.kind) {
            Ok(JobKind::GraphNotification) => sync::graph_notification(deps, job).await,
            Ok(JobKind::GraphLifecycle) => crate::subscriptions::process_lifecycle(deps, job).await,
            Ok(JobKind::TopdeskHint) => sync::topdesk_hint(deps, job).await,
            Ok(kind @ (JobKind::SyncRetry | JobKind::SyncObservation)) => {
                sync::sync_retry(deps, job, kind).await
            }
            Ok(JobKind::ReconcileSweep) => reconcile_sweep(deps, job).await,
            Ok(JobKind::EwsNotification) => sync::ews_notification(deps, job).await,
            Err(unknown) => Err(unknown.into()),
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
        SyncError::Exchange(x) if x.is_denied() => Side::Exchange,
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
    let ReconcileSweepJob { room } = ReconcileSweepJob::of(&job.job)?;
    let budget = crate::reconcile::SWEEP_JOB_BUDGET;
    let reason = crate::reconcile::sweep_job(deps, job.job.tenant_id, room, budget).await?;
    Ok(JobResult::Ignored { reason })
}
