//! Expansion of Graph's `patternedRecurrence` into occurrences, and the layout of TOPdesk series.
//!
//! All six pattern types (`daily`, `weekly`, `absoluteMonthly`, `relativeMonthly`, `absoluteYearly`,
//! `relativeYearly`), the three range types (`endDate`, `numbered`, `noEnd`), `firstDayOfWeek` and `index`
//! (`first` … `last`) are supported. Dates are generated in the recurrence's time zone and each
//! occurrence's wall-clock start and end are converted to UTC separately, so a 10:00–11:00 meeting stays
//! 10:00–11:00 local across a DST change (its UTC instants shift by an hour).
//!
//! Rules where Graph's documentation is silent, chosen to match Outlook:
//! - `absoluteMonthly`/`absoluteYearly` on a day a month does not have (31, or 29 February) falls on the
//!   month's last day.
//! - A local start inside a DST gap moves forward by the gap; an ambiguous one (the repeated hour) takes
//!   the first (daylight-time) instant.
//! - `numbered` counts occurrences from the range's start date, also those before the expansion window.
//!
//! An occurrence's identity is (series, original start): [`Occurrence::original_start`].
//!
//! ## TOPdesk series (at most 999)
//! TOPdesk series are reservations sharing a series id, made with specific dates that keep the first
//! reservation's time (reference §3.9). [`topdesk_series_layout`] groups occurrences by UTC time of day
//! and duration (a DST change therefore starts a new TOPdesk series) and splits every group into chunks
//! of at most [`TOPDESK_MAX_SERIES`] in date order; nothing is dropped. With the default 180-day horizon a
//! daily series has at most 181 occurrences, so splitting only happens with long horizons.

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc, Weekday,
};
use serde::{Deserialize, Serialize};

use crate::{CoreError, TimeZoneName};

/// TOPdesk's maximum number of occurrences in one series.
pub const TOPDESK_MAX_SERIES: usize = 999;

/// Expansion stops after this many candidate dates (a guard against absurd patterns).
const MAX_STEPS: u32 = 200_000;

/// Graph `recurrencePatternType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PatternType {
    /// Every `interval` days.
    Daily,
    /// On `daysOfWeek` every `interval` weeks.
    Weekly,
    /// On `dayOfMonth` every `interval` months.
    AbsoluteMonthly,
    /// On the `index` `daysOfWeek` every `interval` months.
    RelativeMonthly,
    /// On `month`/`dayOfMonth` every `interval` years.
    AbsoluteYearly,
    /// On the `index` `daysOfWeek` of `month` every `interval` years.
    RelativeYearly,
}

/// Graph `weekIndex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WeekIndex {
    /// First.
    First,
    /// Second.
    Second,
    /// Third.
    Third,
    /// Fourth.
    Fourth,
    /// Last.
    Last,
}

/// Graph `recurrencePattern`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrencePattern {
    /// Pattern type.
    #[serde(rename = "type")]
    pub kind: PatternType,
    /// Units (days, weeks, months, years) between occurrences; at least 1.
    pub interval: u32,
    /// Days of the week (weekly, relative patterns).
    #[serde(default)]
    pub days_of_week: Vec<Weekday>,
    /// Day of the month (absolute patterns).
    #[serde(default)]
    pub day_of_month: u32,
    /// Month 1–12 (yearly patterns).
    #[serde(default)]
    pub month: u32,
    /// First day of the week (weekly patterns with an interval above 1); Graph's default is Sunday.
    #[serde(default = "sunday")]
    pub first_day_of_week: Weekday,
    /// Which of the matching days (relative patterns); Graph's default is `first`.
    #[serde(default = "first")]
    pub index: WeekIndex,
}

fn sunday() -> Weekday {
    Weekday::Sun
}

fn first() -> WeekIndex {
    WeekIndex::First
}

/// Graph `recurrenceRangeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RangeType {
    /// Until `endDate` (inclusive).
    EndDate,
    /// Without end.
    NoEnd,
    /// `numberOfOccurrences` occurrences.
    Numbered,
}

/// Graph `recurrenceRange`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrenceRange {
    /// Range type.
    #[serde(rename = "type")]
    pub kind: RangeType,
    /// First day of the series.
    pub start_date: NaiveDate,
    /// Last day (endDate ranges).
    pub end_date: Option<NaiveDate>,
    /// Number of occurrences (numbered ranges).
    #[serde(default)]
    pub number_of_occurrences: u32,
    /// The zone the pattern is evaluated in (Windows or IANA name); the event's start zone if absent.
    pub recurrence_time_zone: Option<String>,
}

/// Graph `patternedRecurrence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatternedRecurrence {
    /// The pattern.
    pub pattern: RecurrencePattern,
    /// The range.
    pub range: RecurrenceRange,
}

/// One occurrence of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Occurrence {
    /// The start the pattern gives it: its identity within the series.
    pub original_start: DateTime<Utc>,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// End (UTC).
    pub end: DateTime<Utc>,
}

fn invalid(reason: impl Into<String>) -> CoreError {
    CoreError::InvalidRecurrence { reason: reason.into() }
}

/// The UTC instant of a local wall-clock time (gap: moved forward; ambiguous: the first instant).
pub fn local_to_utc(tz: chrono_tz::Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a gap: the same wall-clock distance after the last instant before the gap.
            let mut probe = local;
            for _ in 0..6 {
                probe -= Duration::minutes(30);
                if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) = tz.from_local_datetime(&probe)
                {
                    return t.with_timezone(&Utc) + (local - probe);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MIN);
    let next = first.checked_add_months(Months::new(1)).unwrap_or(NaiveDate::MAX);
    u32::try_from((next - first).num_days()).unwrap_or(28)
}

fn clamped_day(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day.min(days_in_month(year, month)))
}

fn relative_day(year: i32, month: u32, days: &[Weekday], index: WeekIndex) -> Option<NaiveDate> {
    let matching: Vec<NaiveDate> = (1..=days_in_month(year, month))
        .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
        .filter(|d| days.contains(&d.weekday()))
        .collect();
    match index {
        WeekIndex::First => matching.first().copied(),
        WeekIndex::Second => matching.get(1).copied(),
        WeekIndex::Third => matching.get(2).copied(),
        WeekIndex::Fourth => matching.get(3).copied(),
        WeekIndex::Last => matching.last().copied(),
    }
}

/// The dates of the pattern, in order, from the range's start date, until `until` (inclusive) or the
/// range's end, whichever comes first.
pub fn pattern_dates(rec: &PatternedRecurrence, until: NaiveDate) -> Result<Vec<NaiveDate>, CoreError> {
    let p = &rec.pattern;
    let r = &rec.range;
    if p.interval == 0 {
        return Err(invalid("the pattern's interval is 0; it must be at least 1"));
    }
    let needs_days =
        matches!(p.kind, PatternType::Weekly | PatternType::RelativeMonthly | PatternType::RelativeYearly);
    if needs_days && p.days_of_week.is_empty() {
        return Err(invalid(format!("a {:?} pattern needs daysOfWeek", p.kind)));
    }
    if matches!(p.kind, PatternType::AbsoluteMonthly | PatternType::AbsoluteYearly)
        && !(1..=31).contains(&p.day_of_month)
    {
        return Err(invalid(format!("dayOfMonth {} is not 1–31", p.day_of_month)));
    }
    if matches!(p.kind, PatternType::AbsoluteYearly | PatternType::RelativeYearly)
        && !(1..=12).contains(&p.month)
    {
        return Err(invalid(format!("month {} is not 1–12", p.month)));
    }
    let end = match r.kind {
        RangeType::EndDate => {
            let e = r.end_date.ok_or_else(|| invalid("an endDate range has no endDate"))?;
            if e < r.start_date {
                return Err(invalid("the range's endDate is before its startDate"));
            }
            e.min(until)
        }
        RangeType::NoEnd | RangeType::Numbered => until,
    };
    let limit = match r.kind {
        RangeType::Numbered if r.number_of_occurrences == 0 => {
            return Err(invalid("a numbered range needs numberOfOccurrences of at least 1"));
        }
        RangeType::Numbered => r.number_of_occurrences as usize,
        _ => usize::MAX,
    };
    let start = r.start_date;
    let mut out = Vec::new();
    let push = |d: NaiveDate, out: &mut Vec<NaiveDate>| -> bool {
        if d < start {
            return true;
        }
        if d > end || out.len() >= limit {
            return false;
        }
        out.push(d);
        true
    };
    let interval = p.interval;
    match p.kind {
        PatternType::Daily => {
            for step in 0..MAX_STEPS {
                let Some(d) = start.checked_add_days(Days::new(u64::from(step) * u64::from(interval))) else {
                    break;
                };
                if !push(d, &mut out) {
                    break;
                }
            }
        }
        PatternType::Weekly => {
            let offset =
                (7 + start.weekday().num_days_from_monday() - p.first_day_of_week.num_days_from_monday()) % 7;
            let week_start = start - Days::new(u64::from(offset));
            let mut days: Vec<u32> = p
                .days_of_week
                .iter()
                .map(|d| (7 + d.num_days_from_monday() - p.first_day_of_week.num_days_from_monday()) % 7)
                .collect();
            days.sort_unstable();
            days.dedup();
            'weeks: for week in 0..MAX_STEPS {
                let Some(ws) =
                    week_start.checked_add_days(Days::new(u64::from(week) * 7 * u64::from(interval)))
                else {
                    break;
                };
                for &d in &days {
                    if !push(ws + Days::new(u64::from(d)), &mut out) {
                        break 'weeks;
                    }
                }
            }
        }
        PatternType::AbsoluteMonthly | PatternType::RelativeMonthly => {
            let first = NaiveDate::from_ymd_opt(start.year(), start.month(), 1).unwrap_or(start);
            for step in 0..MAX_STEPS {
                let Some(m) = first.checked_add_months(Months::new(step * interval)) else { break };
                let d = if p.kind == PatternType::AbsoluteMonthly {
                    clamped_day(m.year(), m.month(), p.day_of_month)
                } else {
                    relative_day(m.year(), m.month(), &p.days_of_week, p.index)
                };
                if let Some(d) = d
                    && !push(d, &mut out)
                {
                    break;
                }
                if m > end {
                    break;
                }
            }
        }
        PatternType::AbsoluteYearly | PatternType::RelativeYearly => {
            for step in 0..MAX_STEPS {
                let Some(year) =
                    i32::try_from(step * interval).ok().and_then(|s| start.year().checked_add(s))
                else {
                    break;
                };
                let d = if p.kind == PatternType::AbsoluteYearly {
                    clamped_day(year, p.month, p.day_of_month)
                } else {
                    relative_day(year, p.month, &p.days_of_week, p.index)
                };
                if let Some(d) = d
                    && !push(d, &mut out)
                {
                    break;
                }
                if NaiveDate::from_ymd_opt(year, 1, 1).is_none_or(|y| y > end) {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Expands a series into its occurrences that overlap `[from, to)`.
///
/// `local_start` and `duration` are the series master's wall-clock start time and length; `zone` is the
/// master's start zone (Windows or IANA name, as Graph gives it), overridden by the range's
/// `recurrenceTimeZone` when set. An unknown zone is an error, never UTC.
pub fn expand(
    rec: &PatternedRecurrence,
    local_start: NaiveTime,
    duration: Duration,
    zone: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Occurrence>, CoreError> {
    if duration <= Duration::zero() {
        return Err(invalid("the series' end is not after its start"));
    }
    let zone_name =
        rec.range.recurrence_time_zone.as_deref().filter(|z| !z.trim().is_empty()).unwrap_or(zone);
    let tz: TimeZoneName = crate::zones::resolve_graph_zone(zone_name)?;
    let tz = tz.tz();
    // Dates up to one day past `to` in local terms cover every occurrence that starts before `to`.
    let until = (to + Duration::days(2)).with_timezone(&tz).date_naive();
    let local_start = local_start.with_nanosecond(0).unwrap_or(local_start);
    Ok(pattern_dates(rec, until)?
        .into_iter()
        .map(|d| {
            let local = d.and_time(local_start);
            let start = local_to_utc(tz, local);
            Occurrence { original_start: start, start, end: local_to_utc(tz, local + duration) }
        })
        .filter(|o| o.end > from && o.start < to)
        .collect())
}

/// One TOPdesk series to create: the first occurrence's reservation plus the specific dates of the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopdeskSeriesChunk {
    /// The occurrences, in date order (at most [`TOPDESK_MAX_SERIES`]).
    pub occurrences: Vec<Occurrence>,
}

impl TopdeskSeriesChunk {
    /// The dates for `makeRecurrent/dates` (every occurrence after the first, as `yyyy-MM-dd` in UTC).
    pub fn extra_dates(&self) -> Vec<NaiveDate> {
        self.occurrences.iter().skip(1).map(|o| o.start.date_naive()).collect()
    }
}

/// Lays out occurrences as TOPdesk series. See the module docs for the rule.
pub fn topdesk_series_layout(occurrences: &[Occurrence]) -> Vec<TopdeskSeriesChunk> {
    let mut sorted = occurrences.to_vec();
    sorted.sort();
    sorted.dedup_by_key(|o| o.original_start);
    let mut groups: Vec<((NaiveTime, Duration), Vec<Occurrence>)> = Vec::new();
    for o in sorted {
        let key = (o.start.time(), o.end - o.start);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(o),
            None => groups.push((key, vec![o])),
        }
    }
    let mut out: Vec<TopdeskSeriesChunk> = groups
        .into_iter()
        .flat_map(|(_, v)| {
            v.chunks(TOPDESK_MAX_SERIES)
                .map(|c| TopdeskSeriesChunk { occurrences: c.to_vec() })
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_by_key(|c| c.occurrences.first().map(|o| o.start));
    out
}
