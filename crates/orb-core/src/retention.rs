//! **Retention**: how long ORB keeps what it stored, and the cutoff instants a purge deletes before
//! (DESIGN §6: "nothing is kept longer than its purpose"). Pure: `now` comes in, cutoffs go out; the store
//! deletes, the engine schedules.

use chrono::{DateTime, Duration, Utc};

/// A tenant's retention periods (the `[retention]` section of its settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished jobs and processed inbox items are deleted this many hours after they finished (default 24).
    pub jobs_hours: u32,
    /// Booking records, their timelines and their series are deleted this many days after the booking
    /// ended; dead jobs nobody retried or dismissed are deleted this many days after they died (default 90).
    pub bookings_days: u32,
    /// Audit rows are deleted this many days after they were written (default 400).
    pub audit_days: u32,
}

impl Retention {
    /// Default hours a finished job or processed inbox item is kept.
    pub const DEFAULT_JOBS_HOURS: u32 = 24;
    /// Default days a booking is kept after it ended.
    pub const DEFAULT_BOOKINGS_DAYS: u32 = 90;
    /// Default days an audit row is kept.
    pub const DEFAULT_AUDIT_DAYS: u32 = 400;

    /// The instants before which a purge at `now` deletes each kind of row.
    pub fn cutoffs(&self, now: DateTime<Utc>) -> PurgeCutoffs {
        PurgeCutoffs {
            finished_jobs: now - Duration::hours(i64::from(self.jobs_hours)),
            bookings: now - Duration::days(i64::from(self.bookings_days)),
            audit: now - Duration::days(i64::from(self.audit_days)),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            jobs_hours: Self::DEFAULT_JOBS_HOURS,
            bookings_days: Self::DEFAULT_BOOKINGS_DAYS,
            audit_days: Self::DEFAULT_AUDIT_DAYS,
        }
    }
}

/// What a purge deletes: rows older than these instants (strictly before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCutoffs {
    /// Done jobs that finished before this, and inbox items processed before this.
    pub finished_jobs: DateTime<Utc>,
    /// Bookings that ended before this (with their timelines), series without bookings last changed
    /// before this, and dead jobs that died before this.
    pub bookings: DateTime<Utc>,
    /// Audit rows written before this.
    pub audit: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_lie_the_periods_before_now() {
        let now = DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z").unwrap().with_timezone(&Utc);
        let c = Retention::default().cutoffs(now);
        assert_eq!(c.finished_jobs, now - Duration::hours(24));
        assert_eq!(c.bookings, now - Duration::days(90));
        assert_eq!(c.audit, now - Duration::days(400));
        let short = Retention { jobs_hours: 1, bookings_days: 1, audit_days: 30 }.cutoffs(now);
        assert_eq!(
            (short.finished_jobs, short.bookings, short.audit),
            (now - Duration::hours(1), now - Duration::days(1), now - Duration::days(30))
        );
    }
}
