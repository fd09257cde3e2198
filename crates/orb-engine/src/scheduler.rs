//! **Schedulers**: the periodic work of a running ORB (DESIGN §3) — renewing Graph subscriptions, polling
//! TOPdesk's near window on a fast beat and the whole horizon on a slow one, reconciliation sweeps of every
//! room (enqueued as `reconcile.sweep` jobs in the rooms' lanes, so a sweep never runs beside that room's
//! notifications), rotating the encryption certificates, and the retention purge of every tenant
//! ([`crate::retention`], audited with its counts).
//!
//! [`Scheduler::run`] runs every task on its own beat until cancelled. Each beat of a task first takes a
//! **store lease** named after the task (and tenant) for [`LEASE_BEATS`] of its beats
//! ([`orb_store::Store::try_lease`]): with several ORB instances on one PostgreSQL exactly one of them runs a
//! given task, and when that instance dies another one takes over once the lease has expired. A holder
//! renews its lease on every beat and gives its leases up on shutdown.
//!
//! The tasks read the engine's current [`SyncDeps`] from a [`watch`] channel on every beat, so a reload
//! (new rooms, settings, certificates) reaches them without a restart. The beats start as
//! [`SchedulerOptions`] says; with [`Scheduler::with_beats`] they follow a watch channel (`orb serve`
//! re-reads `[schedule]` at every reload), and a changed beat restarts the task's wait at once.
//!
//! ## Invariants
//! - A failing task is logged and tried again at its next beat; it never stops the other tasks.
//! - Tasks only enqueue jobs or call idempotent operations: a beat that runs twice (a lease handed over
//!   mid-beat) does no harm.
//! - Time for the tasks' logic comes from [`SyncDeps::clock`]; the beats themselves are tokio timers.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use orb_crypto::{KeyRing, RotationPolicy};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use orb_store::jobs::{JobPayload as _, ReconcileSweepJob};

use crate::ews_push::ensure_ews_subscriptions;
use crate::keys;
use crate::poller::poll_topdesk_named;
use crate::runtime::SyncDeps;
use crate::subscriptions::ensure_subscriptions;

/// A lease lasts this many beats of its task, so the holder renews it long before it expires.
pub const LEASE_BEATS: u32 = 3;

/// The beats of the scheduled tasks.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// This instance's name in leases (unique per running instance).
    pub holder: String,
    /// TOPdesk near-window poll (default 10 s).
    pub poll_near_every: StdDuration,
    /// The near window: from `now - near_before` …
    pub near_before: Duration,
    /// … to `now + near_after` (defaults 1 day and 2 days).
    pub near_after: Duration,
    /// TOPdesk whole-horizon poll (default 5 min).
    pub poll_horizon_every: StdDuration,
    /// Subscription renewal and creation for newly enabled rooms (default 5 min; renewal itself happens
    /// only when a subscription has less than half its lifetime left).
    pub subscriptions_every: StdDuration,
    /// Reconciliation sweep of every room (default 5 min, so missed changes and failed writes heal within
    /// minutes; `None` = off). A sweep costs one paged calendarView and one paged TOPdesk list per room,
    /// plus by-id reads only where the listings cannot answer ([`crate::reconcile`]).
    pub reconcile_every: Option<StdDuration>,
    /// Encryption certificate rotation check (default 1 h).
    pub certificates_every: StdDuration,
    /// Retention purge of every tenant (default 1 h; `None` = off).
    pub purge_every: Option<StdDuration>,
    /// When certificates are replaced and retired.
    pub rotation: RotationPolicy,
}

impl SchedulerOptions {
    /// The defaults above.
    pub fn new(holder: impl Into<String>) -> Self {
        Self {
            holder: holder.into(),
            poll_near_every: StdDuration::from_secs(10),
            near_before: Duration::days(1),
            near_after: Duration::days(2),
            poll_horizon_every: StdDuration::from_secs(300),
            subscriptions_every: StdDuration::from_secs(300),
            reconcile_every: Some(StdDuration::from_secs(300)),
            certificates_every: StdDuration::from_secs(3600),
            purge_every: Some(StdDuration::from_secs(3600)),
            rotation: RotationPolicy::default(),
        }
    }
}

/// What a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Poll TOPdesk's near window.
    PollNear,
    /// Poll TOPdesk's whole horizon.
    PollHorizon,
    /// Keep Graph subscriptions alive.
    Subscriptions,
    /// Reconciliation sweep.
    Reconcile,
    /// Rotate encryption certificates (installation-wide).
    Certificates,
    /// Purge every tenant's expired rows.
    Purge,
}

impl Task {
    /// The task's name (in leases and logs).
    pub const fn name(self) -> &'static str {
        match self {
            Self::PollNear => "poll-near",
            Self::PollHorizon => "poll-horizon",
            Self::Subscriptions => "subscriptions",
            Self::Reconcile => "reconcile",
            Self::Certificates => "certificates",
            Self::Purge => "retention.purge",
        }
    }
}

/// Onboards every enabled room that was never swept (newly mapped or enabled): its first reconciliation
/// sweep matches the bookings already on both sides as one record each, **before** the TOPdesk poll sees
/// the room's existing reservations and would take them for new ones (and create their meetings a second
/// time). Returns how many rooms were swept.
pub async fn onboard_unswept(
    deps: &SyncDeps,
    runtime: &crate::runtime::TenantRuntime,
    window: (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, crate::runtime::SyncError> {
    let tenant = runtime.tenant_id;
    let mut swept = 0;
    for room in runtime.rooms.iter().filter(|r| r.enabled) {
        if deps.store.get_cursor(tenant, &crate::reconcile::cursor_name(room.id)).await?.is_some() {
            continue;
        }
        let report = crate::reconcile::sweep_room(deps, tenant, room.id, window, now).await?;
        if report.swept {
            tracing::info!(
                room = %room.mailbox, paired = report.paired, new = report.jobs.new,
                "room onboarded: bookings already on both sides matched"
            );
            swept += 1;
        }
    }
    Ok(swept)
}

/// Enqueues one `reconcile.sweep` job per enabled room in the room's lane (so a sweep never runs beside
/// the room's notifications), unless one is still waiting. Returns how many were enqueued.
pub async fn enqueue_sweeps(
    deps: &SyncDeps,
    runtime: &crate::runtime::TenantRuntime,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, crate::runtime::SyncError> {
    let tenant = runtime.tenant_id;
    let waiting: std::collections::BTreeSet<orb_core::RoomId> = deps
        .store
        .list_jobs(tenant, orb_store::JobStatus::Queued)
        .await?
        .into_iter()
        .filter_map(|j| ReconcileSweepJob::of(&j).ok())
        .map(|j| j.room)
        .collect();
    let mut enqueued = 0;
    for room in runtime.rooms.iter().filter(|r| r.enabled) {
        if waiting.contains(&room.id) {
            continue;
        }
        let job = ReconcileSweepJob { room: room.id }.to_job(
            orb_store::Lane::room(tenant, room.id),
            Some(orb_core::CorrelationId::generate(now)),
            None,
        );
        deps.store.enqueue(&job, now).await?;
        enqueued += 1;
    }
    Ok(enqueued)
}

/// Called after the certificate ring changed in the store (a new certificate or a retired one), so the
/// caller can reload the engine.
pub type RingChanged = Arc<dyn Fn() + Send + Sync>;

/// Runs the scheduled tasks (see the module docs).
pub struct Scheduler {
    deps: watch::Receiver<Arc<SyncDeps>>,
    options: SchedulerOptions,
    beats: Option<watch::Receiver<Beats>>,
    master: Option<KeyRing>,
    ring_changed: Option<RingChanged>,
}

/// The beats of the periodic tasks, when they change while the scheduler runs
/// ([`Scheduler::with_beats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beats {
    /// TOPdesk near-window poll.
    pub poll_near_every: StdDuration,
    /// TOPdesk whole-horizon poll.
    pub poll_horizon_every: StdDuration,
    /// Subscription upkeep.
    pub subscriptions_every: StdDuration,
    /// Reconciliation sweeps (`None` = off).
    pub reconcile_every: Option<StdDuration>,
    /// Retention purge (`None` = off).
    pub purge_every: Option<StdDuration>,
}

impl Beats {
    /// The beats `options` start with.
    pub fn of(options: &SchedulerOptions) -> Self {
        Self {
            poll_near_every: options.poll_near_every,
            poll_horizon_every: options.poll_horizon_every,
            subscriptions_every: options.subscriptions_every,
            reconcile_every: options.reconcile_every,
            purge_every: options.purge_every,
        }
    }

    fn every(&self, task: Task, options: &SchedulerOptions) -> Option<StdDuration> {
        match task {
            Task::PollNear => Some(self.poll_near_every),
            Task::PollHorizon => Some(self.poll_horizon_every),
            Task::Subscriptions => Some(self.subscriptions_every),
            Task::Reconcile => self.reconcile_every,
            Task::Certificates => Some(options.certificates_every),
            Task::Purge => self.purge_every,
        }
    }
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler over the engine's current deps. Without `master` (the master key ring) certificates are
    /// not rotated.
    pub fn new(deps: watch::Receiver<Arc<SyncDeps>>, options: SchedulerOptions) -> Self {
        Self { deps, options, beats: None, master: None, ring_changed: None }
    }

    /// Takes the beats from `beats` while running: a changed beat applies at once (the task's wait starts
    /// again with the new beat), so `[schedule]` changes need no restart.
    pub fn with_beats(mut self, beats: watch::Receiver<Beats>) -> Self {
        self.beats = Some(beats);
        self
    }

    fn current_every(&self, task: Task) -> Option<StdDuration> {
        let beats = self.beats.as_ref().map_or_else(|| Beats::of(&self.options), |b| *b.borrow());
        beats.every(task, &self.options)
    }

    /// Rotates certificates too, sealing new keys with `master`; `changed` is called when the ring changed.
    pub fn with_certificates(mut self, master: KeyRing, changed: RingChanged) -> Self {
        self.master = Some(master);
        self.ring_changed = Some(changed);
        self
    }

    /// Runs every task on its beat until `cancel` is cancelled, then gives the leases up.
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let mut tasks = vec![Task::PollNear, Task::PollHorizon, Task::Subscriptions];
        if this.options.reconcile_every.is_some() || this.beats.is_some() {
            tasks.push(Task::Reconcile);
        }
        if this.master.is_some() {
            tasks.push(Task::Certificates);
        }
        if this.options.purge_every.is_some() || this.beats.is_some() {
            tasks.push(Task::Purge);
        }
        let mut handles = Vec::new();
        for task in tasks {
            let this = this.clone();
            let cancel = cancel.clone();
            handles.push(tokio::spawn(async move { this.beat(task, cancel).await }));
        }
        for handle in handles {
            let _ = handle.await;
        }
        tracing::info!("scheduler stopped");
    }

    async fn beat(&self, task: Task, cancel: CancellationToken) {
        let mut held: Vec<String> = Vec::new();
        let mut beats = self.beats.clone();
        // The first beat runs at once; then one beat after the end of the last run (a slow run is not
        // followed by a burst of catch-up runs).
        let mut wait = StdDuration::ZERO;
        loop {
            let changed = async {
                match beats.as_mut() {
                    Some(rx) => {
                        if rx.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                () = changed => {
                    // A new beat: wait for it from now.
                    wait = self.current_every(task).unwrap_or(StdDuration::from_secs(365 * 24 * 3600));
                    tracing::info!(task = task.name(), every = ?self.current_every(task), "beat changed");
                    continue;
                }
            }
            let Some(every) = self.current_every(task) else {
                // Switched off: wait for a change.
                wait = StdDuration::from_secs(365 * 24 * 3600);
                continue;
            };
            wait = every;
            let deps = self.deps.borrow().clone();
            let outcome = tokio::select! {
                () = cancel.cancelled() => break,
                outcome = self.run_task(&deps, task, every, &mut held) => outcome,
            };
            if let Err(e) = outcome {
                tracing::warn!(task = task.name(), error = %e, "scheduled task failed; tried again next beat");
            }
        }
        let deps = self.deps.borrow().clone();
        for name in held {
            let _ = deps.store.release_lease(&name, &self.options.holder).await;
        }
    }

    async fn lease(
        &self,
        deps: &SyncDeps,
        name: String,
        every: StdDuration,
        held: &mut Vec<String>,
    ) -> Result<bool, String> {
        let ttl =
            Duration::from_std(every * LEASE_BEATS).unwrap_or(Duration::hours(1)).max(Duration::seconds(30));
        let now = deps.clock.now();
        let got =
            deps.store.try_lease(&name, &self.options.holder, now, ttl).await.map_err(|e| e.to_string())?;
        if got && !held.contains(&name) {
            held.push(name);
        }
        Ok(got)
    }

    /// One beat of `task`: for each tenant (or once, for certificates) whose lease this instance holds.
    async fn run_task(
        &self,
        deps: &Arc<SyncDeps>,
        task: Task,
        every: StdDuration,
        held: &mut Vec<String>,
    ) -> Result<(), String> {
        if task == Task::Certificates {
            let (Some(master), true) =
                (&self.master, self.lease(deps, task.name().to_owned(), every, held).await?)
            else {
                return Ok(());
            };
            let now = deps.clock.now();
            let (_, report) = keys::rotate_certificates(&*deps.store, master, &self.options.rotation, now)
                .await
                .map_err(|e| e.to_string())?;
            if (report.created.is_some() || !report.retired.is_empty())
                && let Some(changed) = &self.ring_changed
            {
                changed();
            }
            return Ok(());
        }
        if task == Task::Purge {
            return self.purge(deps, every, held).await;
        }
        let mut failures = Vec::new();
        for (tenant_id, runtime) in &deps.tenants {
            if !self.lease(deps, format!("{}/{tenant_id}", task.name()), every, held).await? {
                continue;
            }
            let now = deps.clock.now();
            if matches!(task, Task::PollNear | Task::PollHorizon)
                && let Err(e) = onboard_unswept(
                    deps,
                    runtime,
                    (now - self.options.near_before, now + runtime.policy.horizon),
                    now,
                )
                .await
            {
                failures.push(format!("tenant {tenant_id}: onboarding: {e}"));
                continue;
            }
            // One line per run of a tenant's task, at debug: the scale-out test checks from it that each
            // task ran once per beat across instances.
            tracing::debug!(task = task.name(), tenant = %tenant_id, ran_at = %now.to_rfc3339(), "scheduled task ran");
            let result = match task {
                Task::PollNear => {
                    let window = (now - self.options.near_before, now + self.options.near_after);
                    poll_topdesk_named(deps, *tenant_id, "near", window, now).await.map(|r| {
                        if r.enqueued > 0 {
                            tracing::info!(tenant = %tenant_id, listed = r.listed, enqueued = r.enqueued, "TOPdesk near poll");
                        }
                    })
                }
                Task::PollHorizon => {
                    let window = (now - self.options.near_before, now + runtime.policy.horizon);
                    poll_topdesk_named(deps, *tenant_id, "horizon", window, now).await.map(|r| {
                        tracing::info!(tenant = %tenant_id, listed = r.listed, enqueued = r.enqueued, "TOPdesk horizon poll");
                    })
                }
                Task::Subscriptions => match runtime.notification_base_url.as_deref() {
                    // An EWS tenant's push subscriptions ([`crate::ews_push`]).
                    Some(base) if runtime.exchange.as_ews().is_some() => {
                        ensure_ews_subscriptions(deps, runtime, base, now).await.map(|r| {
                            if !r.is_noop() {
                                tracing::info!(tenant = %tenant_id, report = ?r, "EWS push subscriptions updated");
                            }
                        })
                    }
                    Some(base) => ensure_subscriptions(deps, runtime, base, now).await.map(|r| {
                        if !r.is_noop() {
                            tracing::info!(tenant = %tenant_id, report = ?r, "subscriptions updated");
                        }
                    }),
                    // Streaming needs no public URL ([`crate::ews_stream`]).
                    None if runtime.exchange.as_ews().is_some_and(crate::exchange::EwsExchange::streams) => {
                        Ok(())
                    }
                    None => {
                        tracing::warn!(tenant = %tenant_id, "no public URL configured: push subscriptions cannot be made (set server.public_url)");
                        Ok(())
                    }
                },
                Task::Reconcile => enqueue_sweeps(deps, runtime, now).await.map(|n| {
                    tracing::info!(tenant = %tenant_id, rooms = n, "reconciliation sweeps enqueued");
                }),
                Task::Certificates | Task::Purge => Ok(()),
            };
            if let Err(e) = result {
                failures.push(format!("tenant {tenant_id}: {e}"));
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
    }

    /// One beat of the retention purge: every tenant in the store (loaded or not: a tenant whose settings
    /// are incomplete still has data to expire) whose lease this instance holds.
    async fn purge(
        &self,
        deps: &Arc<SyncDeps>,
        every: StdDuration,
        held: &mut Vec<String>,
    ) -> Result<(), String> {
        let mut failures = Vec::new();
        for tenant in deps.store.list_tenants().await.map_err(|e| e.to_string())? {
            if !self.lease(deps, format!("{}/{}", Task::Purge.name(), tenant.id), every, held).await? {
                continue;
            }
            let now = deps.clock.now();
            match crate::retention::purge_tenant(&*deps.store, tenant.id, PURGE_ACTOR, now, false).await {
                Ok(counts) if counts.total() > 0 => {
                    tracing::info!(tenant = %tenant.name, %counts, "retention purge");
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("tenant {}: {e}", tenant.name)),
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(failures.join("; ")) }
    }
}

/// The actor the scheduled purge records in the audit log.
pub const PURGE_ACTOR: &str = "system";
