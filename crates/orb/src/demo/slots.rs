//! Choosing when people book: working hours in the organisation's zone over the next working days, on a
//! half-hour grid, in a slot the room has free on both sides; and the seeded random numbers every choice
//! of the simulation comes from (so `--seed` replays a run's choices).

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// The first bookable hour of a working day (local).
pub(crate) const DAY_OPENS: u32 = 8;
/// The hour by which meetings end (local).
pub(crate) const DAY_CLOSES: u32 = 18;
/// Meetings start on this grid (minutes).
const GRID_MINUTES: i64 = 30;

/// A small seeded generator (SplitMix64): the same seed gives the same sequence on every machine and
/// every version, which a library generator does not promise.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // The modulo bias is far below anything a demo could show.
        usize::try_from(self.next_u64() % (n as u64)).unwrap_or(0)
    }

    /// One of `items`, or `None` when there are none.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() { None } else { items.get(self.below(items.len())) }
    }
}

/// The working hours (UTC) of the next `count` working days (Monday to Friday) in `zone`, starting with
/// `now`'s own day.
pub(crate) fn working_days(
    now: DateTime<Utc>,
    zone: Tz,
    count: usize,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::with_capacity(count);
    let mut day = now.with_timezone(&zone).date_naive();
    while out.len() < count {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            let at = |hour| {
                let local = day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN));
                zone.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc))
            };
            if let (Some(open), Some(close)) = (at(DAY_OPENS), at(DAY_CLOSES)) {
                out.push((open, close));
            }
        }
        let Some(next) = day.succ_opt() else { break };
        day = next;
    }
    out
}

/// Every start on the grid within `days` where a meeting of `length` fits before the day closes, starts
/// after `after`, and overlaps none of `busy` (half-open intervals).
pub(crate) fn free_starts(
    days: &[(DateTime<Utc>, DateTime<Utc>)],
    length: Duration,
    busy: &[(DateTime<Utc>, DateTime<Utc>)],
    after: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for &(open, close) in days {
        let mut start = open;
        while start + length <= close {
            let end = start + length;
            if start > after && busy.iter().all(|&(b0, b1)| end <= b0 || start >= b1) {
                out.push(start);
            }
            start += Duration::minutes(GRID_MINUTES);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn check(days: &[(&str, &str)], minutes: i64, busy: &[(&str, &str)], after: &str, expected: &[&str]) {
        let days: Vec<_> = days.iter().map(|(a, b)| (at(a), at(b))).collect();
        let busy: Vec<_> = busy.iter().map(|(a, b)| (at(a), at(b))).collect();
        let got: Vec<String> = free_starts(&days, Duration::minutes(minutes), &busy, at(after))
            .iter()
            .map(|t| t.format("%d %H:%M").to_string())
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn free_starts_skip_busy_slots_the_past_and_the_end_of_the_day() {
        let day = [("2026-03-03T07:00:00Z", "2026-03-03T10:00:00Z")];
        // An hour-long meeting: the whole morning is free.
        check(
            &day,
            60,
            &[],
            "2026-03-03T00:00:00Z",
            &["03 07:00", "03 07:30", "03 08:00", "03 08:30", "03 09:00"],
        );
        // 08:00–09:00 is taken: nothing may overlap it, touching is fine.
        check(
            &day,
            60,
            &[("2026-03-03T08:00:00Z", "2026-03-03T09:00:00Z")],
            "2026-03-03T00:00:00Z",
            &["03 07:00", "03 09:00"],
        );
        // Only after `after` (strictly).
        check(&day, 90, &[], "2026-03-03T07:30:00Z", &["03 08:00", "03 08:30"]);
        // A day full of meetings has nothing; the next day does.
        check(
            &[day[0], ("2026-03-04T07:00:00Z", "2026-03-04T08:00:00Z")],
            60,
            &[("2026-03-03T06:00:00Z", "2026-03-03T11:00:00Z")],
            "2026-03-03T00:00:00Z",
            &["04 07:00"],
        );
    }

    #[test]
    fn working_days_are_weekdays_in_local_hours() {
        // Friday 2026-03-06 afternoon in Amsterdam (UTC+1): Friday, then Monday and Tuesday.
        let days = working_days(at("2026-03-06T14:00:00Z"), chrono_tz::Europe::Amsterdam, 3);
        let shown: Vec<String> =
            days.iter().map(|(a, b)| format!("{} {}", a.format("%a %H:%M"), b.format("%H:%M"))).collect();
        assert_eq!(shown, ["Fri 07:00 17:00", "Mon 07:00 17:00", "Tue 07:00 17:00"]);
        // Summer time (UTC+2).
        let summer = working_days(at("2026-07-01T05:00:00Z"), chrono_tz::Europe::Amsterdam, 1);
        assert_eq!(summer[0].0.format("%H:%M").to_string(), "06:00");
    }

    #[test]
    fn the_generator_is_seeded_and_stays_in_range() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>(), "same seed, same numbers");
        assert_ne!(first, (0..5).map(|_| Rng::new(43).next_u64()).collect::<Vec<_>>());
        // SplitMix64's published first output for seed 0.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut r = Rng::new(7);
        assert!((0..1000).all(|_| r.below(12) < 12));
        assert_eq!(r.below(0), 0);
        assert_eq!(r.pick::<u8>(&[]), None);
    }
}
