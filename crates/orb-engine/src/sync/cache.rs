//! The per-job memory of a sync job: what was read of TOPdesk persons and organizers' calendars.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use orb_core::EmailAddress;
use orb_graph::model::Event;

/// Per-job memory: TOPdesk person look-ups by e-mail and what was read of organizers' calendars, so a
/// series of ten occurrences costs one look-up and one instances read, not ten. Never shared between jobs
/// (people and calendars change).
#[derive(Default)]
pub(super) struct JobCache {
    pub(super) persons: std::sync::Mutex<BTreeMap<EmailAddress, Option<String>>>,
    /// `find_by_ical_uid` answers: (mailbox, iCalUId) → the single event or series master.
    pub(super) meetings: std::sync::Mutex<BTreeMap<(EmailAddress, String), Option<Event>>>,
    /// A series master's iCalUId by ORB's series id.
    pub(super) masters: std::sync::Mutex<BTreeMap<orb_core::SeriesId, Option<String>>>,
    /// Instances of organizers' series masters, as read.
    pub(super) instances: std::sync::Mutex<Vec<InstanceWindow>>,
    /// This is the job's first try (not a retry after a crash, a lost lease or a failure): no earlier run
    /// of it can have created anything. `false` (the default) when unknown.
    pub(super) first_try: bool,
}

impl JobCache {
    /// The memory of a claimed job. Its first try is its first claim of a job that never failed: a job
    /// that failed, whose lease expired or whose instance started again keeps its `last_error`, also when
    /// an operator retries it as a dead job (which sets `attempts` back to zero).
    pub(super) fn for_job(job: &orb_store::Job) -> Self {
        Self { first_try: job.attempts <= 1 && job.last_error.is_none(), ..Self::default() }
    }
}

/// The instances of one series master in a window, as read.
pub(super) struct InstanceWindow {
    pub(super) mailbox: EmailAddress,
    pub(super) master_id: String,
    pub(super) from: DateTime<Utc>,
    pub(super) to: DateTime<Utc>,
    pub(super) events: Arc<Vec<Event>>,
}

pub(super) fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use orb_core::TenantId;
    use orb_store::{Job, JobId, JobStatus};

    use super::JobCache;

    fn check(attempts: u32, last_error: Option<&str>, first_try: bool) {
        let at = Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap();
        let job = Job {
            id: JobId(7),
            tenant_id: TenantId::from_uuid(uuid::Uuid::nil()),
            lane: "room:1".to_owned(),
            kind: "sync.observation".to_owned(),
            payload: serde_json::Value::Null,
            correlation_id: None,
            status: JobStatus::Running,
            attempts,
            run_at: at,
            lease_owner: Some("w".to_owned()),
            lease_expires_at: Some(at),
            last_error: last_error.map(str::to_owned),
            created_at: at,
            finished_at: None,
        };
        assert_eq!(
            JobCache::for_job(&job).first_try,
            first_try,
            "attempts {attempts}, last error {last_error:?}"
        );
    }

    #[test]
    fn only_the_first_claim_of_a_job_that_never_failed_is_a_first_try() {
        check(1, None, true);
        // Claimed again after a failure, an expired lease or a restart.
        check(2, Some("lease expired (worker stopped or hung); run again"), false);
        check(2, None, false);
        // An operator's retry of a dead job sets `attempts` back to 0, so its next claim is 1 again: the
        // error it died with says an earlier run may have written.
        check(1, Some("topdesk answered 502"), false);
    }
}
