//! The lockout policy: how long sign-in is refused after failed attempts. Pure: the caller keeps a
//! [`Failures`] record per account and one per source address, and asks the policy about each.
//!
//! The schedule, with the defaults: the first `free_failures` (5) failures cost nothing; from the 5th on
//! each failure blocks further attempts for a back-off that doubles (2 s, 4 s, 8 s, ...) up to
//! `max_backoff` (15 min); from `lock_after` (20) failures on the account is locked for `lock` (30 min),
//! doubling with each further failure up to [`MAX_LOCK`] (24 h). A block runs from the last failure. A
//! successful sign-in resets an account's count (the caller's job).
//!
//! A source address is not an account: one office behind NAT is one address for everyone in it, and an
//! attacker who holds one valid account must not be able to wipe the address's record by signing in with
//! it. So addresses get their own policy ([`LockoutPolicy::for_addresses`]: [`ADDRESS_FREE_FAILURES`] free
//! failures, the lock from [`ADDRESS_LOCK_AFTER`], [`ADDRESS_FACTOR`] times an account's), a success does
//! not clear an address's count, and the count decays instead: once the address's block (if any) has
//! ended and [`ADDRESS_FORGET_AFTER`] more has passed without a failure, its failures are forgotten
//! ([`LockoutPolicy::forgets`]).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest lock the policy ever imposes.
pub const MAX_LOCK: Duration = Duration::hours(24);

/// How many times an account's allowance a source address gets (free failures and the lock threshold).
pub const ADDRESS_FACTOR: u32 = 5;
/// Failures from one source address that cost nothing: [`ADDRESS_FACTOR`] × an account's 5.
pub const ADDRESS_FREE_FAILURES: u32 = 5 * ADDRESS_FACTOR;
/// Failures from one source address from which on the address is locked: [`ADDRESS_FACTOR`] × an
/// account's 20.
pub const ADDRESS_LOCK_AFTER: u32 = 20 * ADDRESS_FACTOR;
/// A source address's failures are forgotten once this long has passed without a failure after its block
/// ended (a success never clears them).
pub const ADDRESS_FORGET_AFTER: Duration = Duration::hours(1);

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

    /// The policy for source addresses: an account's back-off and lock times, with
    /// [`ADDRESS_FREE_FAILURES`] and [`ADDRESS_LOCK_AFTER`].
    pub fn for_addresses() -> Self {
        Self { free_failures: ADDRESS_FREE_FAILURES, lock_after: ADDRESS_LOCK_AFTER, ..Self::default() }
    }

    /// Whether `failures` are forgotten at `now`: `quiet` has passed since the last failure's block ended
    /// (since the last failure itself when it blocked nothing). For source addresses, whose count a
    /// success does not clear ([`ADDRESS_FORGET_AFTER`]).
    pub fn forgets(&self, failures: &Failures, now: DateTime<Utc>, quiet: Duration) -> bool {
        let from = self.blocked_until(failures).unwrap_or(failures.last_at).max(failures.last_at);
        from.checked_add_signed(quiet).is_some_and(|end| now >= end)
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
    fn an_address_gets_several_times_an_account_s_allowance() {
        let account = LockoutPolicy::default();
        let address = LockoutPolicy::for_addresses();
        assert_eq!(address.free_failures, account.free_failures * ADDRESS_FACTOR);
        assert_eq!(address.lock_after, account.lock_after * ADDRESS_FACTOR);
        let s = Duration::seconds;
        let m = Duration::minutes;
        // (failures, the account's block, the address's block)
        let table: &[(u32, Option<Duration>, Option<Duration>)] = &[
            (4, None, None),
            (5, Some(s(2)), None), // one person's five typos block their account, not their office
            (20, Some(m(30)), None),
            (24, Some(Duration::hours(8)), None),
            (25, Some(Duration::hours(16)), Some(s(2))),
            (26, Some(Duration::hours(24)), Some(s(4))),
            (99, Some(Duration::hours(24)), Some(m(15))),
            (100, Some(Duration::hours(24)), Some(m(30))),
            (101, Some(Duration::hours(24)), Some(Duration::hours(1))),
        ];
        for &(count, on_account, on_address) in table {
            let failures = Failures { count, last_at: t0() };
            assert_eq!(account.blocked_until(&failures), on_account.map(|w| t0() + w), "account, {count}");
            assert_eq!(address.blocked_until(&failures), on_address.map(|w| t0() + w), "address, {count}");
        }
    }

    #[test]
    fn an_address_s_failures_are_forgotten_a_quiet_window_after_its_block() {
        let address = LockoutPolicy::for_addresses();
        let quiet = ADDRESS_FORGET_AFTER;
        // (failures, time since the last failure, forgotten)
        let table: &[(u32, Duration, bool)] = &[
            (1, Duration::zero(), false),
            (1, quiet - Duration::seconds(1), false),
            (1, quiet, true), // nothing blocked: the window runs from the last failure
            (24, quiet, true),
            (25, quiet, false), // blocked 2 s: the window runs from the block's end
            (25, quiet + Duration::seconds(2), true),
            (100, quiet + Duration::minutes(29), false), // locked 30 min, then the window
            (100, quiet + Duration::minutes(30), true),
            (u32::MAX, Duration::hours(24) + quiet, true),
            (u32::MAX, Duration::hours(24) + quiet - Duration::seconds(1), false),
        ];
        for &(count, after, expected) in table {
            let failures = Failures { count, last_at: t0() };
            assert_eq!(address.forgets(&failures, t0() + after, quiet), expected, "{count} after {after}");
        }
        let at_the_end = Failures { count: 100, last_at: DateTime::<Utc>::MAX_UTC - Duration::hours(1) };
        assert!(!address.forgets(&at_the_end, DateTime::<Utc>::MAX_UTC, quiet), "no overflow");
    }

    #[test]
    fn a_block_past_the_end_of_time_saturates() {
        let policy = LockoutPolicy::default();
        let failures = Failures { count: 30, last_at: DateTime::<Utc>::MAX_UTC - Duration::hours(1) };
        assert_eq!(policy.blocked_until(&failures), Some(DateTime::<Utc>::MAX_UTC));
    }
}
