//! **Write pause**: when a side denies ORB's credentials or rights (401 / 403), the tenant's writes to that
//! side stop for a while instead of failing booking by booking.
//!
//! A denied write is a configuration failure of the tenant, not of the booking: nobody is mailed, nothing
//! is dropped, the job that met it is put back (its observation intact) to run after the pause. While a
//! side is paused, jobs that would write to it are put back without calling it, so a wrong password is not
//! tried hundreds of times (which can lock the API account). After the pause one job probes; a write that
//! lands ends the pause, a denied one doubles it (30 s, 1 min, 2 min … at most 30 min).
//!
//! The state is in memory per tenant runtime: an instance that restarts, or a reload that rebuilds the
//! runtime, probes once again at once. Entering and leaving a pause is written to the tenant's audit log
//! by the engine (`sync.writes_paused` / `sync.writes_resumed`), so the operator sees it.
//!
//! Must not depend on: the store or the clients (the engine does the I/O); time comes in as arguments.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use orb_core::Side;

/// The first pause; each further denial doubles it.
pub const FIRST_PAUSE: Duration = Duration::seconds(30);
/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::minutes(30);

#[derive(Debug, Clone, Copy, Default)]
struct SidePause {
    until: Option<DateTime<Utc>>,
    denials: u32,
}

/// What [`WritePause::deny`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused {
    /// Writes to the side wait until then.
    pub until: DateTime<Utc>,
    /// The side was not paused before this denial (the operator is told once per pause).
    pub newly: bool,
}

/// The per-tenant pause of writes, per side. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct WritePause {
    sides: Mutex<[SidePause; 2]>,
}

fn slot(side: Side) -> usize {
    usize::from(side == Side::Topdesk)
}

impl WritePause {
    fn with<T>(&self, f: impl FnOnce(&mut [SidePause; 2]) -> T) -> T {
        let mut guard = self.sides.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Until when writes to `side` wait, if they do at `now`.
    pub fn paused_until(&self, side: Side, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.with(|s| s[slot(side)].until.filter(|u| *u > now))
    }

    /// Whether `side` has been denied and not written successfully since (paused now or probing).
    pub fn is_denied(&self, side: Side) -> bool {
        self.with(|s| s[slot(side)].denials > 0)
    }

    /// `side` denied a write at `now`: pause (again), twice as long as the last time.
    pub fn deny(&self, side: Side, now: DateTime<Utc>) -> Paused {
        self.with(|s| {
            let p = &mut s[slot(side)];
            let newly = p.denials == 0;
            let length = (FIRST_PAUSE * (1_i32 << p.denials.min(10))).min(MAX_PAUSE);
            p.denials = p.denials.saturating_add(1);
            let until = now + length;
            p.until = Some(until);
            Paused { until, newly }
        })
    }

    /// A write to `side` landed: the pause ends. Returns whether the side was denied before.
    pub fn resume(&self, side: Side) -> bool {
        self.with(|s| {
            let p = &mut s[slot(side)];
            let was = p.denials > 0;
            *p = SidePause::default();
            was
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default()
    }

    #[test]
    fn denials_double_the_pause_up_to_the_cap_and_a_landed_write_ends_it() {
        let pause = WritePause::default();
        assert_eq!(pause.paused_until(Side::Topdesk, at(0)), None);
        let first = pause.deny(Side::Topdesk, at(0));
        assert_eq!(first, Paused { until: at(30), newly: true });
        assert_eq!(pause.paused_until(Side::Topdesk, at(29)), Some(at(30)));
        assert_eq!(pause.paused_until(Side::Topdesk, at(30)), None, "the probe may run at the end");
        assert_eq!(pause.paused_until(Side::Exchange, at(1)), None, "the other side is not paused");
        let second = pause.deny(Side::Topdesk, at(30));
        assert_eq!(second, Paused { until: at(90), newly: false });
        let mut last = second;
        for _ in 0..12 {
            last = pause.deny(Side::Topdesk, at(0));
        }
        assert_eq!(last.until, at(0) + MAX_PAUSE);
        assert!(pause.is_denied(Side::Topdesk));
        assert!(pause.resume(Side::Topdesk));
        assert!(!pause.resume(Side::Topdesk), "resumed once");
        assert_eq!(pause.paused_until(Side::Topdesk, at(1)), None);
        assert_eq!(pause.deny(Side::Topdesk, at(100)), Paused { until: at(130), newly: true });
    }
}
