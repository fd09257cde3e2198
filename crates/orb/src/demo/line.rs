//! What the demo's terminal shows: one line per change that crossed (or did not cross in time), and the
//! summary at the end. Pure formatting; the simulation hands in what happened.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// Which way a change travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Made in Outlook, carried to TOPdesk by ORB.
    OutlookToTopdesk,
    /// Made at the TOPdesk desk, carried to Outlook by ORB.
    TopdeskToOutlook,
}

impl Direction {
    fn text(self) -> &'static str {
        match self {
            Self::OutlookToTopdesk => "Outlook → TOPdesk",
            Self::TopdeskToOutlook => "TOPdesk → Outlook",
        }
    }
}

/// What the change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    /// A new booking.
    Booked,
    /// New times.
    Moved,
    /// Cancelled.
    Cancelled,
}

impl What {
    fn text(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Moved => "moved",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One change made by a simulated person, as the terminal reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// Which way.
    pub direction: Direction,
    /// What.
    pub what: What,
    /// The room's display name.
    pub room: String,
    /// The booking's start (after the change).
    pub start: DateTime<Utc>,
    /// Its end.
    pub end: DateTime<Utc>,
    /// Who made it (a short name), or `None` when it is not shown.
    pub who: Option<String>,
}

/// How the change ended: arrived on the other side after this long, or not within the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Seen on the other side this long after it was made.
    After(Duration),
    /// Not seen within this deadline.
    NotWithin(Duration),
}

/// The line for a change: wall-clock time it was seen (local), direction, what, room, the booking's day
/// and times (local), who, and how long it took; or that it did not arrive in time.
pub(crate) fn line(seen_at: DateTime<Utc>, change: &Change, arrival: Arrival, zone: Tz) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&zone);
    let mut out = format!(
        "{}  {}  {:<9}  {:<19} {} {}–{}  {:<16}",
        local(seen_at).format("%H:%M:%S"),
        change.direction.text(),
        change.what.text(),
        change.room,
        local(change.start).format("%a"),
        local(change.start).format("%H:%M"),
        local(change.end).format("%H:%M"),
        change.who.as_deref().unwrap_or("-"),
    );
    match arrival {
        Arrival::After(took) => {
            let _ = write!(out, "  {:.1} s", took.as_secs_f64());
        }
        Arrival::NotWithin(deadline) => {
            let _ = write!(out, "  NOT ARRIVED within {} s", deadline.as_secs());
        }
    }
    out
}

/// The running totals for the summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    /// Changes the simulation made.
    pub made: usize,
    /// Crossing times Outlook → TOPdesk.
    pub to_topdesk: Vec<Duration>,
    /// Crossing times TOPdesk → Outlook.
    pub to_outlook: Vec<Duration>,
    /// Changes that did not arrive within the deadline.
    pub late: usize,
}

impl Tally {
    /// Counts one change's end.
    pub(crate) fn record(&mut self, direction: Direction, arrival: Arrival) {
        match (arrival, direction) {
            (Arrival::After(d), Direction::OutlookToTopdesk) => self.to_topdesk.push(d),
            (Arrival::After(d), Direction::TopdeskToOutlook) => self.to_outlook.push(d),
            (Arrival::NotWithin(_), _) => self.late += 1,
        }
    }

    /// The two summary lines.
    pub(crate) fn summary(&self, in_flight: usize) -> [String; 2] {
        let crossed = self.to_topdesk.len() + self.to_outlook.len();
        let mut first = format!(
            "{} change(s) made: {} crossed Outlook → TOPdesk, {} crossed TOPdesk → Outlook",
            self.made,
            self.to_topdesk.len(),
            self.to_outlook.len()
        );
        if self.late > 0 {
            let _ = write!(first, ", {} did not arrive in time", self.late);
        }
        if in_flight > 0 {
            let _ = write!(first, ", {in_flight} still on their way at the end");
        }
        let all: Vec<Duration> = self.to_topdesk.iter().chain(&self.to_outlook).copied().collect();
        let second = if crossed == 0 {
            "no change crossed, so there is no crossing time".to_owned()
        } else {
            format!(
                "median crossing time {} (Outlook → TOPdesk {}, TOPdesk → Outlook {})",
                seconds(median(&all)),
                seconds(median(&self.to_topdesk)),
                seconds(median(&self.to_outlook))
            )
        };
        [first, second]
    }
}

fn seconds(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// The median (the mean of the middle two for an even count); `None` for no values.
pub(crate) fn median(values: &[Duration]) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn check(change: &Change, arrival: Arrival, expected: &str) {
        let got = line(at("2026-03-03T09:42:07Z"), change, arrival, chrono_tz::Europe::Amsterdam);
        assert_eq!(got, expected);
    }

    #[test]
    fn a_line_says_direction_what_room_local_time_who_and_how_long() {
        let change = Change {
            direction: Direction::OutlookToTopdesk,
            what: What::Booked,
            room: "Utrecht 0.12 (8)".into(),
            start: at("2026-03-03T08:00:00Z"),
            end: at("2026-03-03T09:00:00Z"),
            who: Some("anna.devries".into()),
        };
        check(
            &change,
            Arrival::After(Duration::from_millis(420)),
            "10:42:07  Outlook → TOPdesk  booked     Utrecht 0.12 (8)    Tue 09:00–10:00  anna.devries      0.4 s",
        );
        let back = Change {
            direction: Direction::TopdeskToOutlook,
            what: What::Cancelled,
            who: None,
            ..change.clone()
        };
        check(
            &back,
            Arrival::NotWithin(Duration::from_secs(30)),
            "10:42:07  TOPdesk → Outlook  cancelled  Utrecht 0.12 (8)    Tue 09:00–10:00  -                 NOT ARRIVED within 30 s",
        );
        // Summer time: the same UTC hour is an hour later in Amsterdam.
        let summer = Change { start: at("2026-07-07T08:00:00Z"), end: at("2026-07-07T08:30:00Z"), ..change };
        let got = line(
            at("2026-07-07T07:00:00Z"),
            &summer,
            Arrival::After(Duration::from_secs(2)),
            chrono_tz::Europe::Amsterdam,
        );
        assert!(got.starts_with("09:00:00  ") && got.contains("Tue 10:00–10:30"), "{got}");
    }

    #[test]
    fn the_median_and_the_summary() {
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect::<Vec<_>>();
        assert_eq!(median(&[]), None);
        assert_eq!(median(&ms(&[300, 100, 200])), Some(Duration::from_millis(200)));
        assert_eq!(median(&ms(&[400, 100, 200, 300])), Some(Duration::from_millis(250)));

        let mut tally = Tally { made: 5, ..Tally::default() };
        tally.record(Direction::OutlookToTopdesk, Arrival::After(Duration::from_millis(400)));
        tally.record(Direction::OutlookToTopdesk, Arrival::After(Duration::from_millis(600)));
        tally.record(Direction::TopdeskToOutlook, Arrival::After(Duration::from_millis(2000)));
        tally.record(Direction::TopdeskToOutlook, Arrival::NotWithin(Duration::from_secs(30)));
        assert_eq!(
            tally.summary(1),
            [
                "5 change(s) made: 2 crossed Outlook → TOPdesk, 1 crossed TOPdesk → Outlook, 1 did not arrive \
                 in time, 1 still on their way at the end"
                    .to_owned(),
                "median crossing time 0.6 s (Outlook → TOPdesk 0.5 s, TOPdesk → Outlook 2.0 s)".to_owned(),
            ]
        );
        assert_eq!(Tally::default().summary(0)[1], "no change crossed, so there is no crossing time");
    }
}
