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
