//! Recurrence expansion: one `check` per case, expected occurrences as UTC start instants.

use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use orb_core::recurrence::{
    Occurrence, PatternedRecurrence, TOPDESK_MAX_SERIES, expand, topdesk_series_layout,
};
use proptest::prelude::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rec(json: &str) -> PatternedRecurrence {
    serde_json::from_str(json).unwrap()
}

/// Expands `json` for a 10:00 (local) meeting of `minutes` in `zone` over 2026 and compares the UTC
/// `start/end` pairs (as `MM-DDTHH:MM/HH:MM`) with `expected`.
fn check(name: &str, json: &str, zone: &str, minutes: i64, expected: &[&str]) {
    let t = NaiveTime::from_hms_opt(10, 0, 0).unwrap();
    let got = expand(
        &rec(json),
        t,
        Duration::minutes(minutes),
        zone,
        at("2026-01-01T00:00:00Z"),
        at("2027-01-01T00:00:00Z"),
    )
    .unwrap_or_else(|e| panic!("case {name:?}: {e}"));
    let got: Vec<String> =
        got.iter().map(|o| format!("{}/{}", o.start.format("%m-%dT%H:%M"), o.end.format("%H:%M"))).collect();
    assert_eq!(got, expected, "case {name:?}");
}

fn check_err(name: &str, json: &str, zone: &str, fragment: &str) {
    let t = NaiveTime::from_hms_opt(10, 0, 0).unwrap();
    let err = expand(
        &rec(json),
        t,
        Duration::hours(1),
        zone,
        at("2026-01-01T00:00:00Z"),
        at("2027-01-01T00:00:00Z"),
    )
    .expect_err(name);
    assert!(err.to_string().contains(fragment), "case {name:?}: {err}");
}

#[test]
fn pattern_types() {
    check(
        "daily, every 2 days, numbered 4",
        r#"{"pattern":{"type":"daily","interval":2},"range":{"type":"numbered","startDate":"2026-06-01","numberOfOccurrences":4}}"#,
        "UTC",
        60,
        &["06-01T10:00/11:00", "06-03T10:00/11:00", "06-05T10:00/11:00", "06-07T10:00/11:00"],
    );
    check(
        "weekly Mon+Thu, endDate",
        r#"{"pattern":{"type":"weekly","interval":1,"daysOfWeek":["monday","thursday"]},"range":{"type":"endDate","startDate":"2026-06-02","endDate":"2026-06-11"}}"#,
        "UTC",
        30,
        &["06-04T10:00/10:30", "06-08T10:00/10:30", "06-11T10:00/10:30"],
    );
    check(
        "every 2 weeks on Sunday, week starting Sunday",
        r#"{"pattern":{"type":"weekly","interval":2,"daysOfWeek":["sunday","monday"],"firstDayOfWeek":"sunday"},"range":{"type":"numbered","startDate":"2026-06-01","numberOfOccurrences":4}}"#,
        "UTC",
        60,
        &["06-01T10:00/11:00", "06-14T10:00/11:00", "06-15T10:00/11:00", "06-28T10:00/11:00"],
    );
    check(
        "every 2 weeks on Sunday, week starting Monday (firstDayOfWeek matters)",
        r#"{"pattern":{"type":"weekly","interval":2,"daysOfWeek":["sunday","monday"],"firstDayOfWeek":"monday"},"range":{"type":"numbered","startDate":"2026-06-01","numberOfOccurrences":4}}"#,
        "UTC",
        60,
        &["06-01T10:00/11:00", "06-07T10:00/11:00", "06-15T10:00/11:00", "06-21T10:00/11:00"],
    );
    check(
        "absoluteMonthly on the 31st falls on the last day of short months",
        r#"{"pattern":{"type":"absoluteMonthly","interval":1,"dayOfMonth":31},"range":{"type":"numbered","startDate":"2026-01-31","numberOfOccurrences":4}}"#,
        "UTC",
        60,
        &["01-31T10:00/11:00", "02-28T10:00/11:00", "03-31T10:00/11:00", "04-30T10:00/11:00"],
    );
    check(
        "relativeMonthly last Friday every 2 months",
        r#"{"pattern":{"type":"relativeMonthly","interval":2,"daysOfWeek":["friday"],"index":"last"},"range":{"type":"endDate","startDate":"2026-01-01","endDate":"2026-06-30"}}"#,
        "UTC",
        60,
        &["01-30T10:00/11:00", "03-27T10:00/11:00", "05-29T10:00/11:00"],
    );
    check(
        "relativeMonthly second weekday",
        r#"{"pattern":{"type":"relativeMonthly","interval":1,"daysOfWeek":["monday","tuesday","wednesday","thursday","friday"],"index":"second"},"range":{"type":"numbered","startDate":"2026-02-01","numberOfOccurrences":2}}"#,
        "UTC",
        60,
        &["02-03T10:00/11:00", "03-03T10:00/11:00"],
    );
    check(
        "absoluteYearly",
        r#"{"pattern":{"type":"absoluteYearly","interval":1,"dayOfMonth":15,"month":7},"range":{"type":"noEnd","startDate":"2024-01-01"}}"#,
        "UTC",
        60,
        &["07-15T10:00/11:00"],
    );
    check(
        "relativeYearly fourth Thursday of November",
        r#"{"pattern":{"type":"relativeYearly","interval":1,"daysOfWeek":["thursday"],"month":11,"index":"fourth"},"range":{"type":"noEnd","startDate":"2025-01-01"}}"#,
        "UTC",
        60,
        &["11-26T10:00/11:00"],
    );
    check(
        "a start date that does not match the pattern is not an occurrence",
        r#"{"pattern":{"type":"weekly","interval":1,"daysOfWeek":["friday"]},"range":{"type":"numbered","startDate":"2026-06-01","numberOfOccurrences":1}}"#,
        "UTC",
        60,
        &["06-05T10:00/11:00"],
    );
    check(
        "numbered counts occurrences before the window",
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"numbered","startDate":"2025-12-30","numberOfOccurrences":4}}"#,
        "UTC",
        60,
        &["01-01T10:00/11:00", "01-02T10:00/11:00"],
    );
}

#[test]
fn dst_weeks() {
    check(
        "Europe/Amsterdam: the week of 29 March 2026 keeps 10:00 local",
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"endDate","startDate":"2026-03-27","endDate":"2026-03-31"}}"#,
        "W. Europe Standard Time",
        60,
        &[
            "03-27T09:00/10:00",
            "03-28T09:00/10:00",
            "03-29T08:00/09:00",
            "03-30T08:00/09:00",
            "03-31T08:00/09:00",
        ],
    );
    check(
        "Europe/Amsterdam: back to winter time on 25 October 2026",
        r#"{"pattern":{"type":"weekly","interval":1,"daysOfWeek":["saturday","sunday","monday"]},"range":{"type":"endDate","startDate":"2026-10-24","endDate":"2026-10-26"}}"#,
        "Europe/Amsterdam",
        90,
        &["10-24T08:00/09:30", "10-25T09:00/10:30", "10-26T09:00/10:30"],
    );
    check(
        "America/New_York: 8 March 2026",
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"numbered","startDate":"2026-03-07","numberOfOccurrences":3}}"#,
        "Eastern Standard Time",
        60,
        &["03-07T15:00/16:00", "03-08T14:00/15:00", "03-09T14:00/15:00"],
    );
    check(
        "America/New_York: 1 November 2026",
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"numbered","startDate":"2026-10-31","numberOfOccurrences":3,"recurrenceTimeZone":"America/New_York"}}"#,
        "UTC",
        60,
        &["10-31T14:00/15:00", "11-01T15:00/16:00", "11-02T15:00/16:00"],
    );
}

#[test]
fn dst_gap_and_ambiguity() {
    let r = rec(
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"numbered","startDate":"2026-03-29","numberOfOccurrences":1}}"#,
    );
    let gap = expand(
        &r,
        NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        Duration::minutes(60),
        "Europe/Amsterdam",
        at("2026-01-01T00:00:00Z"),
        at("2027-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(gap[0].start, at("2026-03-29T01:30:00Z"), "02:30 does not exist: moved forward to 03:30 CEST");
    let r = rec(
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"numbered","startDate":"2026-10-25","numberOfOccurrences":1}}"#,
    );
    let amb = expand(
        &r,
        NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
        Duration::minutes(30),
        "Europe/Amsterdam",
        at("2026-01-01T00:00:00Z"),
        at("2027-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(amb[0].start, at("2026-10-25T00:30:00Z"), "02:30 happens twice: the first (CEST) one");
}

#[test]
fn errors_are_clear() {
    check_err(
        "unknown zone is an error, not UTC",
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"noEnd","startDate":"2026-01-01"}}"#,
        "Mars Standard Time",
        "unknown Windows time zone \"Mars Standard Time\"",
    );
    check_err(
        "interval 0",
        r#"{"pattern":{"type":"daily","interval":0},"range":{"type":"noEnd","startDate":"2026-01-01"}}"#,
        "UTC",
        "interval is 0",
    );
    check_err(
        "weekly without days",
        r#"{"pattern":{"type":"weekly","interval":1},"range":{"type":"noEnd","startDate":"2026-01-01"}}"#,
        "UTC",
        "needs daysOfWeek",
    );
    check_err(
        "endDate before start",
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"endDate","startDate":"2026-02-01","endDate":"2026-01-01"}}"#,
        "UTC",
        "before its startDate",
    );
    check_err(
        "numbered 0",
        r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"numbered","startDate":"2026-02-01","numberOfOccurrences":0}}"#,
        "UTC",
        "at least 1",
    );
    check_err(
        "month 13",
        r#"{"pattern":{"type":"absoluteYearly","interval":1,"dayOfMonth":1,"month":13},"range":{"type":"noEnd","startDate":"2026-02-01"}}"#,
        "UTC",
        "month 13",
    );
}

#[test]
fn topdesk_series_layout_splits_at_999_and_at_dst() {
    let r =
        rec(r#"{"pattern":{"type":"daily","interval":1},"range":{"type":"noEnd","startDate":"2026-01-01"}}"#);
    let occ = expand(
        &r,
        NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
        Duration::hours(1),
        "UTC",
        at("2026-01-01T00:00:00Z"),
        at("2029-01-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(occ.len(), 1096);
    let chunks = topdesk_series_layout(&occ);
    assert_eq!(chunks.iter().map(|c| c.occurrences.len()).collect::<Vec<_>>(), vec![TOPDESK_MAX_SERIES, 97]);
    assert_eq!(chunks[0].extra_dates().len(), 998);
    assert_eq!(chunks.iter().map(|c| c.occurrences.len()).sum::<usize>(), occ.len(), "nothing is dropped");
    let ams = expand(
        &r,
        NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
        Duration::hours(1),
        "Europe/Amsterdam",
        at("2026-03-20T00:00:00Z"),
        at("2026-04-05T00:00:00Z"),
    )
    .unwrap();
    let chunks = topdesk_series_layout(&ams);
    assert_eq!(chunks.len(), 2, "the DST change starts a second TOPdesk series");
    assert_eq!(chunks[1].occurrences[0].start, at("2026-03-29T08:00:00Z"));
}

fn zone() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("Europe/Amsterdam"),
        Just("America/New_York"),
        Just("W. Europe Standard Time"),
        Just("Eastern Standard Time"),
        Just("UTC")
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Occurrences are ordered, unique, inside the window, keep their local wall-clock time and length
    /// across DST, and respect the numbered range.
    #[test]
    fn expansion_invariants(
        zone in zone(),
        kind in 0usize..3,
        interval in 1u32..4,
        day_mask in 1u8..128,
        hour in 7u32..20,
        minutes in 15i64..180,
        count in 1u32..40,
        start_offset in 0i64..400,
    ) {
        let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(start_offset as u64);
        let days: Vec<&str> = ["monday","tuesday","wednesday","thursday","friday","saturday","sunday"]
            .iter().enumerate().filter(|(i, _)| day_mask & (1 << i) != 0).map(|(_, d)| *d).collect();
        let pattern = match kind {
            0 => format!(r#"{{"type":"daily","interval":{interval}}}"#),
            1 => format!(r#"{{"type":"weekly","interval":{interval},"daysOfWeek":{days:?},"firstDayOfWeek":"monday"}}"#),
            _ => format!(r#"{{"type":"relativeMonthly","interval":{interval},"daysOfWeek":{days:?},"index":"last"}}"#),
        };
        let json = format!(r#"{{"pattern":{pattern},"range":{{"type":"numbered","startDate":"{start}","numberOfOccurrences":{count}}}}}"#);
        let r = rec(&json);
        let from = at("2026-01-01T00:00:00Z");
        let to = at("2028-06-01T00:00:00Z");
        let t = NaiveTime::from_hms_opt(hour, 0, 0).unwrap();
        let occ: Vec<Occurrence> = expand(&r, t, Duration::minutes(minutes), zone, from, to).unwrap();
        prop_assert!(occ.len() <= count as usize);
        let tz = orb_core::zones::resolve_graph_zone(zone).unwrap().tz();
        for pair in occ.windows(2) {
            prop_assert!(pair[0].start < pair[1].start);
        }
        for o in &occ {
            prop_assert!(o.end > from && o.start < to);
            prop_assert_eq!(o.original_start, o.start);
            let local = o.start.with_timezone(&tz);
            prop_assert_eq!(local.hour(), hour, "wall-clock time kept in {}", zone);
            let local_len = o.end.with_timezone(&tz).naive_local() - local.naive_local();
            prop_assert_eq!(local_len, Duration::minutes(minutes));
        }
        let chunks = topdesk_series_layout(&occ);
        prop_assert_eq!(chunks.iter().map(|c| c.occurrences.len()).sum::<usize>(), occ.len());
        prop_assert!(chunks.iter().all(|c| c.occurrences.len() <= TOPDESK_MAX_SERIES));
    }
}
