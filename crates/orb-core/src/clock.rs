use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Timelike as _, Utc};

/// The only way ORB logic learns the time. Production passes [`SystemClock`]; tests pass [`FixedClock`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock. Used only at the edges (the binary), never read inside planner logic.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// `at` at the precision ORB stores instants with (whole microseconds). Graph's `lastModifiedDateTime` has
/// 100-ns digits; a watermark read back from the store has only microseconds, so every instant that is
/// compared with a stored one is cut to this precision first (else an unchanged item looks newer).
pub fn stored_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    let micros = at.timestamp_subsec_micros();
    at.with_nanosecond(micros * 1000).unwrap_or(at)
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same instant.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<Mutex<DateTime<Utc>>>);

impl FixedClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *guard += by;
    }

    /// Puts the clock at `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_precision_cuts_to_whole_microseconds() {
        let graph = DateTime::parse_from_rfc3339("2026-09-01T06:00:00.1234567Z").unwrap().with_timezone(&Utc);
        let stored = stored_precision(graph);
        assert_eq!(stored.to_rfc3339(), "2026-09-01T06:00:00.123456+00:00");
        assert!(stored < graph, "the raw value looks newer than the stored one");
        assert_eq!(stored_precision(stored), stored, "idempotent");
    }

    #[test]
    fn fixed_clock_moves_only_when_told_and_clones_share_time() {
        let start = DateTime::parse_from_rfc3339("2026-03-29T00:30:00Z").unwrap().with_timezone(&Utc);
        let clock = FixedClock::new(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        other.advance(Duration::minutes(90));
        assert_eq!(clock.now(), start + Duration::minutes(90));
    }
}
