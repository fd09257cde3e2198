//! The durable job queue.
//!
//! A job belongs to a **lane** (tenant + key, normally a room). At most one job of a lane runs at a time
//! and a lane's jobs run in enqueue order: only the oldest unfinished job of a lane (its *head*) can be
//! claimed, and only once its `run_at` has come. A claim takes a **lease** that the worker extends with
//! [`Store::heartbeat`](crate::Store::heartbeat); a lease that expires (the worker died) is put back by
//! [`Store::requeue_expired`](crate::Store::requeue_expired) and the job runs again. A failed job is retried
//! with exponential back-off and jitter ([`RetryPolicy`]) up to a maximum number of attempts, then it is
//! `dead` with its last error kept.
//!
//! Back-ends: PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, SQLite inside `BEGIN IMMEDIATE`. Both keep
//! a partial unique index on `(tenant_id, lane) WHERE status = 'running'`, so two running jobs in one lane
//! are impossible even if two processes race.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use orb_core::{CorrelationId, RoomId, TenantId};
use serde::Serialize;
use uuid::Uuid;

use crate::StoreError;

/// A job's sequence number (also its order within a lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The ordering key of work: a tenant and a key within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Key within the tenant: `room:<id>` for a room's work, `tenant` for tenant-wide work.
    pub key: String,
}

impl Lane {
    /// The lane of one room's work.
    pub fn room(tenant_id: TenantId, room: RoomId) -> Self {
        Self { tenant_id, key: format!("room:{room}") }
    }

    /// The tenant-wide lane (subscriptions, sweeps).
    pub fn tenant(tenant_id: TenantId) -> Self {
        Self { tenant_id, key: "tenant".to_owned() }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Lane.
    pub lane: Lane,
    /// What to do, e.g. `graph.notification`, `topdesk.poll`.
    pub kind: String,
    /// Arguments (JSON). Never a secret or a body.
    pub payload: serde_json::Value,
    /// Correlation id to trace the work with.
    pub correlation_id: Option<CorrelationId>,
    /// Not before this instant; `None` = as soon as possible.
    pub run_at: Option<DateTime<Utc>>,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum JobStatus {
    /// Waiting for its `run_at` and for its turn in the lane.
    Queued,
    /// Claimed by a worker, under a lease.
    Running,
    /// Finished successfully.
    Done,
    /// Failed for good; `last_error` says why.
    Dead,
}

impl JobStatus {
    /// Stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }
}

impl FromStr for JobStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "dead" => Self::Dead,
            other => {
                return Err(StoreError::Corrupt { what: "job status".into(), reason: format!("{other:?}") });
            }
        })
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Id (enqueue order).
    pub id: JobId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Lane key.
    pub lane: String,
    /// What to do.
    pub kind: String,
    /// Arguments.
    pub payload: serde_json::Value,
    /// Correlation id.
    pub correlation_id: Option<CorrelationId>,
    /// State.
    pub status: JobStatus,
    /// How many times it was claimed.
    pub attempts: u32,
    /// Not before.
    pub run_at: DateTime<Utc>,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// Lease end.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Enqueued.
    pub created_at: DateTime<Utc>,
    /// Finished (done or dead).
    pub finished_at: Option<DateTime<Utc>>,
}

/// Proof that a worker holds a job: only the holder of the current token can heartbeat, complete or fail it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// Token of this claim.
    pub token: Uuid,
}

/// A job a worker claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The job as claimed (status running, attempts counted).
    pub job: Job,
    /// The lease.
    pub lease: Lease,
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Queued again for this instant.
    RetryAt(DateTime<Utc>),
    /// Given up.
    Dead,
}

/// The whole queue at a glance ([`crate::Store::queue_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Jobs queued: due now or waiting for their `run_at` (a retry's back-off, a scheduled job).
    pub queued: u64,
    /// Jobs a worker holds.
    pub running: u64,
    /// Jobs that failed for good and wait for the operator (`orb jobs list --dead`).
    pub dead: u64,
    /// The earliest `run_at` of a queued job that is due: the longest-waiting runnable job has waited since
    /// then. `None` when no queued job is due.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Exponential back-off with jitter, up to a maximum number of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max_delay: Duration,
    /// Attempts (claims) after which a failing job is dead.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::seconds(5), max_delay: Duration::minutes(30), max_attempts: 8 }
    }
}

impl RetryPolicy {
    /// When to run again after the `attempts`-th attempt failed, or `None` when the job is spent.
    /// `unit_random` in `[0, 1)` spreads the delay over its upper half ("equal jitter"), so retries of
    /// many jobs that failed together do not all come back at once, while each delay still grows.
    pub fn next_run(&self, attempts: u32, now: DateTime<Utc>, unit_random: f64) -> Option<DateTime<Utc>> {
        if attempts >= self.max_attempts {
            return None;
        }
        let exp = attempts.saturating_sub(1).min(30);
        let full =
            self.base.num_milliseconds().saturating_mul(1_i64 << exp).min(self.max_delay.num_milliseconds());
        let r = unit_random.clamp(0.0, 1.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        let jittered = full / 2 + ((full / 2) as f64 * r) as i64;
        Some(now + Duration::milliseconds(jittered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_is_capped_and_ends() {
        let p = RetryPolicy { base: Duration::seconds(2), max_delay: Duration::seconds(30), max_attempts: 5 };
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let delay = |attempt, r| p.next_run(attempt, now, r).map(|t| (t - now).num_milliseconds());
        // Without jitter (r = 0) the delay is half the full step; with r → 1 it approaches the full step.
        assert_eq!(delay(1, 0.0), Some(1_000));
        assert_eq!(delay(2, 0.0), Some(2_000));
        assert_eq!(delay(3, 0.0), Some(4_000));
        assert_eq!(delay(4, 0.999_999), Some(15_999));
        assert_eq!(delay(4, 0.0), Some(8_000));
        assert_eq!(delay(5, 0.0), None, "the fifth failed attempt is the last");
        let capped = RetryPolicy { max_attempts: 40, ..p };
        assert_eq!(capped.next_run(20, now, 0.0).map(|t| (t - now).num_milliseconds()), Some(15_000));
    }
}
