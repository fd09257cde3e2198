//! The **worker**: claims jobs from the store's durable queue and runs them ([`crate::dispatch::process_job`]).
//!
//! ## Loop
//! `claim_job` → `process_job` (with a heartbeat extending the lease while it runs) → `complete_job`, or
//! `fail_job` with [`RetryPolicy::next_run`] for a retryable error (a permanent one, or one whose attempts
//! are spent, makes the job dead with its error kept). Expired leases of crashed workers are put back by
//! `requeue_expired` on its own beat. When the queue is empty the worker sleeps, doubling the pause from
//! [`WorkerOptions::idle_min`] up to [`WorkerOptions::idle_max`]; any job resets it (no busy loop).
//!
//! ## Invariants
//! - A job whose lease is lost (heartbeat answered [`StoreError::LeaseLost`]) is abandoned at once: its
//!   result is neither completed nor failed (another worker owns it now).
//! - Cancellation ([`CancellationToken`]) is graceful: a running job finishes (its commit is one store
//!   call), then the loop ends. Idle sleeps end at once.
//! - Time for the store comes from the injected clock; only the pauses use tokio's timer.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use orb_store::{ClaimedJob, JobId, JobOutcome, RetryPolicy, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::dispatch::process_job;
use crate::runtime::{JobResult, SyncDeps, SyncError};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The worker's name (lease owner).
    pub name: String,
    /// Lease taken per claim (and per heartbeat).
    pub lease: Duration,
    /// Heartbeat interval while a job runs (well below `lease`).
    pub heartbeat_every: StdDuration,
    /// First idle pause.
    pub idle_min: StdDuration,
    /// Longest idle pause.
    pub idle_max: StdDuration,
    /// How often expired leases are put back.
    pub requeue_every: StdDuration,
    /// Back-off of failed jobs.
    pub retry: RetryPolicy,
    /// Rung by this process's webhook intake when it keeps a new item: an idle worker claims at once
    /// instead of sleeping out its pause (other instances find the job at their next claim).
    pub wake: Option<std::sync::Arc<tokio::sync::Notify>>,
}

impl WorkerOptions {
    /// Defaults: a 5-minute lease with a heartbeat every 60 s, idle pauses of 200 ms … 5 s, expired leases
    /// requeued every 30 s, the store's default retry policy.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            lease: Duration::minutes(5),
            heartbeat_every: StdDuration::from_secs(60),
            idle_min: StdDuration::from_millis(200),
            idle_max: StdDuration::from_secs(5),
            requeue_every: StdDuration::from_secs(30),
            retry: RetryPolicy::default(),
            wake: None,
        }
    }
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Completed.
    Done(JobResult),
    /// Failed, queued again.
    Retry {
        /// When.
        at: DateTime<Utc>,
        /// The error.
        error: String,
    },
    /// Failed for good.
    Dead {
        /// The error.
        error: String,
    },
    /// The lease was lost while running; another worker owns the job.
    LeaseLost,
}

/// One job a worker ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobReport {
    /// The job.
    pub job: JobId,
    /// Its kind.
    pub kind: String,
    /// What became of it.
    pub disposition: Disposition,
}

/// A queue worker over [`SyncDeps`].
#[derive(Debug, Clone)]
pub struct Worker {
    deps: Arc<SyncDeps>,
    options: WorkerOptions,
}

fn unit_random() -> f64 {
    // 53 random bits of a v4 UUID as a float in [0, 1): jitter only, not security.
    #[allow(clippy::cast_precision_loss)]
    let r = (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1_u64 << 53) as f64;
    r
}

impl Worker {
    /// A worker.
    pub fn new(deps: Arc<SyncDeps>, options: WorkerOptions) -> Self {
        Self { deps, options }
    }

    /// Claims and runs one job; `None` when no job is runnable now.
    pub async fn run_once(&self) -> Result<Option<JobReport>, SyncError> {
        let store = &self.deps.store;
        let now = self.deps.clock.now();
        let Some(claimed) = store.claim_job(&self.options.name, now, self.options.lease).await? else {
            return Ok(None);
        };
        let span = tracing::info_span!(
            "worker",
            worker = %self.options.name,
            tenant = %claimed.job.tenant_id,
            job = %claimed.job.id,
            kind = %claimed.job.kind,
            lane = %claimed.job.lane,
            correlation = claimed.job.correlation_id.map(tracing::field::display),
        );
        // When this worker holds the lane, from its claim (the lines "job started" and "job done"/"job
        // failed…"/"lease lost" bracket it: the scale-out test checks from them that no lane ever ran on
        // two workers at once). Debug: one line per job at info is enough.
        let claimed_at = self.deps.clock.now().to_rfc3339();
        span.in_scope(|| tracing::debug!(%claimed_at, "job started"));
        self.run_claimed(claimed).instrument(span).await.map(Some)
    }

    async fn run_claimed(&self, claimed: ClaimedJob) -> Result<JobReport, SyncError> {
        let store = &self.deps.store;
        let clock = &self.deps.clock;
        let work = process_job(&self.deps, &claimed);
        tokio::pin!(work);
        let mut beat = tokio::time::interval_at(
            Instant::now() + self.options.heartbeat_every,
            self.options.heartbeat_every,
        );
        let result = loop {
            tokio::select! {
                r = &mut work => break Some(r),
                _ = beat.tick() => {
                    match store.heartbeat(&claimed.lease, clock.now(), self.options.lease).await {
                        Ok(()) => {}
                        Err(StoreError::LeaseLost { .. }) => break None,
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed; the lease may expire"),
                    }
                }
            }
        };
        let report =
            |disposition| JobReport { job: claimed.job.id, kind: claimed.job.kind.clone(), disposition };
        // Taken before the outcome is committed: another worker can claim the lane only after that commit,
        // so its `claimed_at` is later than this.
        let now = clock.now();
        let finished_at = now.to_rfc3339();
        let kind = claimed.job.kind.clone();
        let finished = |outcome: &'static str| {
            metrics::counter!("orb_jobs_finished_total", "kind" => kind.clone(), "outcome" => outcome)
                .increment(1);
        };
        let disposition = match result {
            None => {
                finished("lease_lost");
                tracing::warn!(%finished_at, "lease lost while running; job abandoned");
                Disposition::LeaseLost
            }
            Some(Ok(done)) => {
                store.complete_job(&claimed.lease, now).await?;
                finished("done");
                tracing::info!(result = ?done, %finished_at, "job done");
                Disposition::Done(done)
            }
            Some(Err(e)) => {
                let error = e.to_string();
                let retry_at = if let Some(at) = e.resume_at() {
                    Some(at)
                } else if e.is_retryable() {
                    self.options.retry.next_run(claimed.job.attempts, now, unit_random())
                } else {
                    None
                };
                match store.fail_job(&claimed.lease, &error, retry_at, now).await? {
                    JobOutcome::RetryAt(at) => {
                        finished("retried");
                        tracing::warn!(%error, %at, %finished_at, "job failed; retried later");
                        Disposition::Retry { at, error }
                    }
                    JobOutcome::Dead => {
                        finished("dead");
                        tracing::error!(%error, %finished_at, "job failed for good");
                        Disposition::Dead { error }
                    }
                }
            }
        };
        Ok(report(disposition))
    }

    /// Runs jobs until `cancel` is cancelled (see the module docs).
    pub async fn run(&self, cancel: CancellationToken) {
        let mut idle = self.options.idle_min;
        let mut next_requeue = Instant::now();
        while !cancel.is_cancelled() {
            if Instant::now() >= next_requeue {
                next_requeue = Instant::now() + self.options.requeue_every;
                let now = self.deps.clock.now();
                match self.deps.store.requeue_expired(now, self.options.retry.max_attempts).await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(jobs = n, "expired leases put back in the queue"),
                    Err(e) => tracing::warn!(error = %e, "requeueing expired leases failed"),
                }
            }
            let pause = match self.run_once().await {
                Ok(Some(_)) => {
                    idle = self.options.idle_min;
                    continue;
                }
                Ok(None) => idle,
                Err(e) => {
                    tracing::warn!(error = %e, "worker step failed");
                    idle
                }
            };
            idle = (idle * 2).min(self.options.idle_max);
            let woken = async {
                match &self.options.wake {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
                () = woken => idle = self.options.idle_min,
            }
        }
        tracing::info!(worker = %self.options.name, "worker stopped");
    }

    /// Runs jobs until `shutdown` completes.
    pub async fn run_until(&self, shutdown: impl Future<Output = ()>) {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::join!(self.run(cancel), async move {
            shutdown.await;
            stop.cancel();
        });
    }
}
