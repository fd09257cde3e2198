//! The lockout policy: how long sign-in is refused after failed attempts. Pure: the caller keeps a
//! [`Failures`] record per account and one per source address, and asks the policy about each.
//!
//! The schedule, with the defaults: the first `free_failures` (5) failures cost nothing; from the 5th on
//! each failure blocks further attempts for a back-off that doubles (2 s, 4 s, 8 s, ...) up to
//! `max_backoff` (15 min); from `lock_after` (20) failures on the account is locked for `lock` (30 min),
//! doubling with each further failure up to [`MAX_LOCK`] (24 h). A block runs from the last failure. A
//! successful sign-in resets the count (the caller's job).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest lock the policy ever imposes.
pub const MAX_LOCK: Duration = Duration::hours(24);

/// How failures turn into waiting time. See the module docs for the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that cost no waiting (default 5: a block starts with the 5th failure).
    pub free_failures: u32,
    /// Failures from which on the long lock applies (default 20).
    pub lock_after: u32,
    /// The first back-off (default 2 s), doubled per further failure.
    pub base: Duration,
    /// The longest back-off before the lock (default 15 min).
    pub max_backoff: Duration,
    /// The first lock (default 30 min), doubled per failure past `lock_after`, at most [`MAX_LOCK`].
    pub lock: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            lock_after: 20,
            base: Duration::seconds(2),
            max_backoff: Duration::minutes(15),
            lock: Duration::minutes(30),
        }
    }
}

/// Failed attempts since the last success, for one account or one source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    /// How many.
    pub count: u32,
    /// When the last one happened.
    pub last_at: DateTime<Utc>,
}

/// `start` doubled `doublings` times, at most `cap` (no overflow however large `doublings` is).
fn doubled(start: Duration, doublings: u32, cap: Duration) -> Duration {
    let mut value = start;
    for _ in 0..doublings {
        if value >= cap {
            break;
        }
        value = value.checked_add(&value).unwrap_or(cap);
    }
    value.min(cap)
}

impl LockoutPolicy {
    /// Until when attempts are refused after `failures`, or `None` while the count is below
    /// `free_failures`.
    pub fn blocked_until(&self, failures: &Failures) -> Option<DateTime<Utc>> {
        let count = failures.count;
        if count < self.free_failures {
            return None;
        }
        let wait = if count >= self.lock_after {
            doubled(self.lock, count - self.lock_after, MAX_LOCK.max(self.lock))
        } else {
            doubled(self.base, count - self.free_failures, self.max_backoff.max(self.base))
        };
        failures.last_at.checked_add_signed(wait).or(Some(DateTime::<Utc>::MAX_UTC))
    }

    /// Whether an attempt at `now` is refused.
    pub fn is_locked(&self, failures: &Failures, now: DateTime<Utc>) -> bool {
        self.blocked_until(failures).is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z").expect("valid").with_timezone(&Utc)
    }

    #[test]
    fn default_schedule_table() {
        let policy = LockoutPolicy::default();
        let s = Duration::seconds;
        let m = Duration::minutes;
        let h = Duration::hours;
        // (failures, expected block after the last one)
        let table: &[(u32, Option<Duration>)] = &[
            (0, None),
            (1, None),
            (4, None),
            (5, Some(s(2))),
            (6, Some(s(4))),
            (7, Some(s(8))),
            (13, Some(s(512))),
            (14, Some(m(15))), // 1024 s capped at 900 s
            (19, Some(m(15))),
            (20, Some(m(30))), // "20 wrong passwords lock the account"
            (21, Some(h(1))),
            (22, Some(h(2))),
            (25, Some(h(16))),
            (26, Some(h(24))), // 32 h capped
            (1000, Some(h(24))),
            (u32::MAX, Some(h(24))),
        ];
        for &(count, wait) in table {
            let failures = Failures { count, last_at: t0() };
            assert_eq!(policy.blocked_until(&failures), wait.map(|w| t0() + w), "count {count}");
        }
    }

    #[test]
    fn is_locked_until_the_block_ends() {
        let policy = LockoutPolicy::default();
        let check = |count: u32, after: Duration, expected: bool| {
            let failures = Failures { count, last_at: t0() };
            assert_eq!(policy.is_locked(&failures, t0() + after), expected, "count {count}, after {after}");
        };
        check(4, Duration::zero(), false);
        check(5, Duration::zero(), true);
        check(5, Duration::milliseconds(1999), true);
        check(5, Duration::seconds(2), false);
        check(20, Duration::minutes(29), true);
        check(20, Duration::minutes(30), false);
        check(30, Duration::hours(23), true);
        check(30, Duration::hours(24), false);
    }

    #[test]
    fn a_custom_policy_is_honoured() {
        let policy = LockoutPolicy {
            free_failures: 0,
            lock_after: 3,
            base: Duration::seconds(10),
            max_backoff: Duration::seconds(15),
            lock: Duration::hours(30), // longer than MAX_LOCK: the lock itself is the cap
        };
        let until = |count| policy.blocked_until(&Failures { count, last_at: t0() }).map(|u| u - t0());
        assert_eq!(until(0), Some(Duration::seconds(10)));
        assert_eq!(until(1), Some(Duration::seconds(15)));
        assert_eq!(until(2), Some(Duration::seconds(15)));
        assert_eq!(until(3), Some(Duration::hours(30)));
        assert_eq!(until(4), Some(Duration::hours(30)));
    }

    #[test]
    fn a_block_past_the_end_of_time_saturates() {
        let policy = LockoutPolicy::default();
        let failures = Failures { count: 30, last_at: DateTime::<Utc>::MAX_UTC - Duration::hours(1) };
        assert_eq!(policy.blocked_until(&failures), Some(DateTime::<Utc>::MAX_UTC));
    }
}
