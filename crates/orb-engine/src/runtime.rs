//! **Runtime**: what the engine's work shares — the tenants' runtimes ([`TenantRuntime`], [`PersonCache`]),
//! the engine-wide dependencies ([`SyncDeps`]), what a sync or a job did ([`SyncOutcome`], [`JobResult`])
//! and why it failed ([`SyncError`]), and the worker's audit actions (the job kinds and
//! their payloads are shared with the intake: [`orb_store::jobs`]).
//!
//! Every other engine module may use this one; it uses none of them but [`crate::pause`] (a tenant's write
//! pause is part of its runtime), so it is the bottom of the engine's import graph.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use orb_core::{
    BookingId, Clock, CorrelationId, EmailAddress, NothingReason, Policy, RoomMap, Side, TenantId,
};
use orb_crypto::CertificateRing;
use orb_graph::{GraphClient, GraphError, JwksCache};
use orb_store::jobs::{BadJobPayload, JobKind, UnknownJobKind};
use orb_store::{NewAuditEntry, Store, StoreError};
use orb_topdesk::{Reason, TopdeskClient, TopdeskError};
use thiserror::Error;

use crate::exchange::{Exchange, ExchangeError};
use crate::observe::ObserveError;

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
    /// Its Exchange, through Graph or EWS ([`crate::exchange`]): every calendar read and write and the
    /// mails go through it.
    pub exchange: Arc<dyn Exchange>,
    /// Its Graph client when it reaches Exchange through Graph (subscriptions and the rich notifications'
    /// checks are Graph's own); `None` for an EWS tenant.
    pub graph: Option<Arc<GraphClient>>,
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
    /// The validation-token signing keys of a Graph tenant's cloud (shared only with tenants of that cloud,
    /// [`crate::clouds`]); `None` for an EWS tenant.
    pub jwks: Option<Arc<JwksCache>>,
}

impl TenantRuntime {
    /// The Graph client of a tenant that reaches Exchange through Graph.
    pub fn graph_client(&self) -> Result<&Arc<GraphClient>, SyncError> {
        self.graph.as_ref().ok_or(SyncError::NotGraph { tenant: self.tenant_id, kind: self.exchange.kind() })
    }
}

impl fmt::Debug for TenantRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantRuntime")
            .field("tenant_id", &self.tenant_id)
            .field("exchange", &self.exchange.kind())
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

    /// The person id found for `email` within the TTL.
    pub(crate) fn get(&self, email: &EmailAddress) -> Option<String> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(email).filter(|(_, at)| at.elapsed() < Self::TTL).map(|(id, _)| id.clone())
    }

    /// Keeps the person id found for `email`.
    pub(crate) fn put(&self, email: &EmailAddress, id: &str) {
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
    /// A Graph call outside the Exchange seam failed (subscriptions, the JWKS, a notification's checks).
    #[error("Graph: {0}")]
    Graph(#[from] GraphError),
    /// An Exchange call failed (reading an event, through Graph or EWS).
    #[error("Exchange ({0})")]
    Exchange(#[from] ExchangeError),
    /// Graph-only work (a Graph notification, a Graph subscription) for a tenant that reaches Exchange
    /// another way: it changed its `[exchange] kind` meanwhile, or the work was misrouted.
    #[error(
        "tenant {tenant} reaches Exchange through {kind}, not Graph; this Graph job is dropped (the tenant's \
         own change detection and the next sweep cover its rooms)"
    )]
    NotGraph {
        /// The tenant.
        tenant: TenantId,
        /// How it reaches Exchange.
        kind: crate::exchange::ExchangeKind,
    },
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
        "job kind {kind:?} is not handled by this worker (known: {known}); the job is dead: an older or \
         newer ORB queued it",
        known = JobKind::known()
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

impl From<BadJobPayload> for SyncError {
    fn from(e: BadJobPayload) -> Self {
        Self::BadPayload { kind: e.kind.as_str().to_owned(), reason: e.reason }
    }
}

impl From<UnknownJobKind> for SyncError {
    fn from(e: UnknownJobKind) -> Self {
        Self::UnknownJobKind { kind: e.kind }
    }
}

impl SyncError {
    /// Whether running the same job again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Graph(e) => e.is_retryable(),
            Self::Exchange(e) => e.is_retryable(),
            Self::Topdesk(e) => e.is_retryable(),
            Self::ConflictRetriesExhausted { .. }
            | Self::WritesPaused { .. }
            | Self::UnknownTenant { .. } => true,
            Self::Observe(_)
            | Self::UnknownJobKind { .. }
            | Self::BadPayload { .. }
            | Self::NotGraph { .. } => false,
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

/// Audit action: a side denied ORB's credentials or rights; the tenant's writes to it are paused.
pub const AUDIT_WRITES_PAUSED: &str = "sync.writes_paused";
/// Audit action: writes to a side that was paused land again.
pub const AUDIT_WRITES_RESUMED: &str = "sync.writes_resumed";

/// Records the start or end of a write pause in the tenant's audit log (a failure to record it is logged,
/// not fatal: the pause itself is in memory and the job is put back either way).
pub(crate) async fn audit_pause(
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
}
