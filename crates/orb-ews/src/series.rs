//! Series on the wire: `t:Recurrence` (one pattern, then one range; ews.md §3.7) as typed values, its
//! XML in schema order and back, the ways to address an occurrence or a master
//! (`t:OccurrenceItemId`, `t:RecurringMasterItemId`), and the occurrence summaries a master carries
//! (`FirstOccurrence`, `LastOccurrence`, `ModifiedOccurrences`).
//!
//! EWS's patterns are Graph's six (the same MAPI recurrence underneath), so a [`Recurrence`] converts
//! to orb-core's [`PatternedRecurrence`] and is expanded by [`orb_core::recurrence::expand`] — the one
//! expansion both the Graph and the EWS emulator use. `DaysOfWeek`'s groups (`Day`, `Weekday`,
//! `WeekendDay`) become the days they stand for, which is what Outlook means by "the first weekday of
//! the month".

use chrono::{DateTime, NaiveDate, Utc, Weekday};
use orb_core::recurrence::{
    PatternType, PatternedRecurrence, RangeType, RecurrencePattern, RecurrenceRange, WeekIndex,
};

use crate::model::ItemId;
use crate::xml::{Element, TYPES};

fn t(name: &str) -> Element {
    Element::new(TYPES, name)
}

/// `DayOfWeekType`: a day, or one of the groups `Day`, `Weekday`, `WeekendDay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DayOfWeek {
    /// One weekday.
    Day(Weekday),
    /// `Day`: any day.
    AnyDay,
    /// `Weekday`: Monday to Friday.
    Weekday,
    /// `WeekendDay`: Saturday and Sunday.
    WeekendDay,
}

const DAY_NAMES: [(Weekday, &str); 7] = [
    (Weekday::Sun, "Sunday"),
    (Weekday::Mon, "Monday"),
    (Weekday::Tue, "Tuesday"),
    (Weekday::Wed, "Wednesday"),
    (Weekday::Thu, "Thursday"),
    (Weekday::Fri, "Friday"),
    (Weekday::Sat, "Saturday"),
];

impl DayOfWeek {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day(d) => DAY_NAMES.iter().find(|(w, _)| *w == d).map_or("Sunday", |(_, n)| n),
            Self::AnyDay => "Day",
            Self::Weekday => "Weekday",
            Self::WeekendDay => "WeekendDay",
        }
    }

    /// Parses the wire value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Day" => Some(Self::AnyDay),
            "Weekday" => Some(Self::Weekday),
            "WeekendDay" => Some(Self::WeekendDay),
            _ => DAY_NAMES.iter().find(|(_, n)| *n == s).map(|(w, _)| Self::Day(*w)),
        }
    }

    /// The days it stands for, Monday first.
    pub fn days(self) -> Vec<Weekday> {
        use Weekday::*;
        match self {
            Self::Day(d) => vec![d],
            Self::AnyDay => vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun],
            Self::Weekday => vec![Mon, Tue, Wed, Thu, Fri],
            Self::WeekendDay => vec![Sat, Sun],
        }
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `MonthNamesType` of a month number 1–12.
pub fn month_name(month: u32) -> Option<&'static str> {
    MONTHS.get(usize::try_from(month).ok()?.checked_sub(1)?).copied()
}

/// The month number (1–12) of a `MonthNamesType` value.
pub fn month_number(name: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == name).and_then(|i| u32::try_from(i + 1).ok())
}

fn index_str(i: WeekIndex) -> &'static str {
    match i {
        WeekIndex::First => "First",
        WeekIndex::Second => "Second",
        WeekIndex::Third => "Third",
        WeekIndex::Fourth => "Fourth",
        WeekIndex::Last => "Last",
    }
}

fn parse_index(s: &str) -> Option<WeekIndex> {
    Some(match s {
        "First" => WeekIndex::First,
        "Second" => WeekIndex::Second,
        "Third" => WeekIndex::Third,
        "Fourth" => WeekIndex::Fourth,
        "Last" => WeekIndex::Last,
        _ => return None,
    })
}

/// A recurrence pattern (`RecurrencePatternTypes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `DailyRecurrence`: every `interval` days.
    Daily {
        /// Days between occurrences (≥ 1).
        interval: u32,
    },
    /// `WeeklyRecurrence`: on `days` every `interval` weeks.
    Weekly {
        /// Weeks between occurrences (≥ 1).
        interval: u32,
        /// `DaysOfWeek` (a space-separated list on the wire).
        days: Vec<DayOfWeek>,
        /// `FirstDayOfWeek` (matters when `interval` > 1).
        first_day_of_week: Option<Weekday>,
    },
    /// `AbsoluteMonthlyRecurrence`: on `day_of_month` every `interval` months.
    AbsoluteMonthly {
        /// Months between occurrences (≥ 1).
        interval: u32,
        /// `DayOfMonth` 1–31.
        day_of_month: u32,
    },
    /// `RelativeMonthlyRecurrence`: on the `index` `day` every `interval` months.
    RelativeMonthly {
        /// Months between occurrences (≥ 1).
        interval: u32,
        /// `DaysOfWeek` (one value).
        day: DayOfWeek,
        /// `DayOfWeekIndex`.
        index: WeekIndex,
    },
    /// `AbsoluteYearlyRecurrence`: every year on `month`/`day_of_month`.
    AbsoluteYearly {
        /// `DayOfMonth` 1–31.
        day_of_month: u32,
        /// `Month` 1–12.
        month: u32,
    },
    /// `RelativeYearlyRecurrence`: every year on the `index` `day` of `month`.
    RelativeYearly {
        /// `DaysOfWeek` (one value).
        day: DayOfWeek,
        /// `DayOfWeekIndex`.
        index: WeekIndex,
        /// `Month` 1–12.
        month: u32,
    },
}

/// A recurrence range (`RecurrenceRangeTypes`); dates are `xs:date` in the series' start zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// `NoEndRecurrence`.
    NoEnd {
        /// `StartDate`.
        start: NaiveDate,
    },
    /// `EndDateRecurrence` (the end date inclusive).
    EndDate {
        /// `StartDate`.
        start: NaiveDate,
        /// `EndDate`.
        end: NaiveDate,
    },
    /// `NumberedRecurrence`.
    Numbered {
        /// `StartDate`.
        start: NaiveDate,
        /// `NumberOfOccurrences` (≥ 1).
        count: u32,
    },
}

impl Range {
    /// `StartDate`.
    pub fn start(&self) -> NaiveDate {
        match *self {
            Self::NoEnd { start } | Self::EndDate { start, .. } | Self::Numbered { start, .. } => start,
        }
    }
}

/// `t:Recurrence` of a series master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    /// The pattern.
    pub pattern: Pattern,
    /// The range.
    pub range: Range,
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Parses an `xs:date`, with or without a zone suffix (`2026-09-01`, `2026-09-01Z`,
/// `2014-03-08-08:00`): the calendar date is what counts.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

impl Recurrence {
    /// Checks what Exchange would refuse: intervals of 0, days of month outside 1–31, months outside
    /// 1–12, weekly patterns without days, a range ending before it starts, a count of 0. The message
    /// says what to change.
    pub fn validate(&self) -> Result<(), String> {
        let interval = match &self.pattern {
            Pattern::Daily { interval }
            | Pattern::Weekly { interval, .. }
            | Pattern::AbsoluteMonthly { interval, .. }
            | Pattern::RelativeMonthly { interval, .. } => *interval,
            Pattern::AbsoluteYearly { .. } | Pattern::RelativeYearly { .. } => 1,
        };
        if interval == 0 {
            return Err("the recurrence interval is 0; it must be at least 1".into());
        }
        match &self.pattern {
            Pattern::Weekly { days, .. } if days.is_empty() => {
                return Err("a weekly recurrence needs at least one day of the week".into());
            }
            Pattern::AbsoluteMonthly { day_of_month, .. } | Pattern::AbsoluteYearly { day_of_month, .. }
                if !(1..=31).contains(day_of_month) =>
            {
                return Err(format!("day of month {day_of_month} is not 1–31"));
            }
            Pattern::AbsoluteYearly { month, .. } | Pattern::RelativeYearly { month, .. }
                if month_name(*month).is_none() =>
            {
                return Err(format!("month {month} is not 1–12"));
            }
            _ => {}
        }
        match self.range {
            Range::EndDate { start, end } if end < start => {
                Err(format!("the recurrence ends ({end}) before it starts ({start})"))
            }
            Range::Numbered { count: 0, .. } => {
                Err("a numbered recurrence needs at least 1 occurrence".into())
            }
            _ => Ok(()),
        }
    }

    /// The `t:Recurrence` element, children in schema order (pattern, then range).
    pub fn to_element(&self) -> Element {
        let interval = |i: u32| t("Interval").text(i.to_string());
        let pattern = match &self.pattern {
            Pattern::Daily { interval: i } => t("DailyRecurrence").child(interval(*i)),
            Pattern::Weekly { interval: i, days, first_day_of_week } => t("WeeklyRecurrence")
                .child(interval(*i))
                .child(t("DaysOfWeek").text(days.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(" ")))
                .child_opt(first_day_of_week.map(|d| t("FirstDayOfWeek").text(DayOfWeek::Day(d).as_str()))),
            Pattern::AbsoluteMonthly { interval: i, day_of_month } => t("AbsoluteMonthlyRecurrence")
                .child(interval(*i))
                .child(t("DayOfMonth").text(day_of_month.to_string())),
            Pattern::RelativeMonthly { interval: i, day, index } => t("RelativeMonthlyRecurrence")
                .child(interval(*i))
                .child(t("DaysOfWeek").text(day.as_str()))
                .child(t("DayOfWeekIndex").text(index_str(*index))),
            Pattern::AbsoluteYearly { day_of_month, month } => t("AbsoluteYearlyRecurrence")
                .child(t("DayOfMonth").text(day_of_month.to_string()))
                .child(t("Month").text(month_name(*month).unwrap_or("January"))),
            Pattern::RelativeYearly { day, index, month } => t("RelativeYearlyRecurrence")
                .child(t("DaysOfWeek").text(day.as_str()))
                .child(t("DayOfWeekIndex").text(index_str(*index)))
                .child(t("Month").text(month_name(*month).unwrap_or("January"))),
        };
        let range = match self.range {
            Range::NoEnd { start } => t("NoEndRecurrence").child(t("StartDate").text(date(start))),
            Range::EndDate { start, end } => t("EndDateRecurrence")
                .child(t("StartDate").text(date(start)))
                .child(t("EndDate").text(date(end))),
            Range::Numbered { start, count } => t("NumberedRecurrence")
                .child(t("StartDate").text(date(start)))
                .child(t("NumberOfOccurrences").text(count.to_string())),
        };
        t("Recurrence").child(pattern).child(range)
    }

    /// Reads a `t:Recurrence` element; the error names what is missing or malformed.
    pub fn parse(el: &Element) -> Result<Self, String> {
        let mut pattern = None;
        let mut range = None;
        for c in el.children.iter().filter(|c| c.ns == TYPES) {
            let text = |name: &str| {
                c.child_text(TYPES, name).map(str::trim).ok_or_else(|| format!("{} without {name}", c.name))
            };
            let number = |name: &str| {
                text(name)?.parse::<u32>().map_err(|_| format!("{} {name} is not a number", c.name))
            };
            let day = |name: &str| {
                let v = text(name)?;
                DayOfWeek::parse(v).ok_or_else(|| format!("{} {name} `{v}` is not a day", c.name))
            };
            let index = || {
                let v = text("DayOfWeekIndex")?;
                parse_index(v).ok_or_else(|| format!("DayOfWeekIndex `{v}` is not First…Last"))
            };
            let month = || {
                let v = text("Month")?;
                month_number(v).ok_or_else(|| format!("Month `{v}` is not a month name"))
            };
            let day_date = |name: &str| {
                let v = text(name)?;
                parse_date(v).ok_or_else(|| format!("{} {name} `{v}` is not an xs:date", c.name))
            };
            match c.name.as_str() {
                "DailyRecurrence" => pattern = Some(Pattern::Daily { interval: number("Interval")? }),
                "WeeklyRecurrence" => {
                    let days = text("DaysOfWeek")?
                        .split_whitespace()
                        .map(|d| DayOfWeek::parse(d).ok_or_else(|| format!("DaysOfWeek `{d}` is not a day")))
                        .collect::<Result<Vec<_>, _>>()?;
                    let first_day_of_week = match c.child_text(TYPES, "FirstDayOfWeek").map(str::trim) {
                        None => None,
                        Some(v) => match DayOfWeek::parse(v) {
                            Some(DayOfWeek::Day(d)) => Some(d),
                            _ => return Err(format!("FirstDayOfWeek `{v}` is not a day")),
                        },
                    };
                    pattern =
                        Some(Pattern::Weekly { interval: number("Interval")?, days, first_day_of_week });
                }
                "AbsoluteMonthlyRecurrence" => {
                    pattern = Some(Pattern::AbsoluteMonthly {
                        interval: number("Interval")?,
                        day_of_month: number("DayOfMonth")?,
                    })
                }
                "RelativeMonthlyRecurrence" => {
                    pattern = Some(Pattern::RelativeMonthly {
                        interval: number("Interval")?,
                        day: day("DaysOfWeek")?,
                        index: index()?,
                    })
                }
                "AbsoluteYearlyRecurrence" => {
                    pattern =
                        Some(Pattern::AbsoluteYearly { day_of_month: number("DayOfMonth")?, month: month()? })
                }
                "RelativeYearlyRecurrence" => {
                    pattern = Some(Pattern::RelativeYearly {
                        day: day("DaysOfWeek")?,
                        index: index()?,
                        month: month()?,
                    })
                }
                "NoEndRecurrence" => range = Some(Range::NoEnd { start: day_date("StartDate")? }),
                "EndDateRecurrence" => {
                    range = Some(Range::EndDate { start: day_date("StartDate")?, end: day_date("EndDate")? })
                }
                "NumberedRecurrence" => {
                    range = Some(Range::Numbered {
                        start: day_date("StartDate")?,
                        count: number("NumberOfOccurrences")?,
                    })
                }
                other => return Err(format!("{other} is not a recurrence pattern or range")),
            }
        }
        Ok(Self {
            pattern: pattern.ok_or("a Recurrence without a pattern")?,
            range: range.ok_or("a Recurrence without a range")?,
        })
    }

    /// The same series as orb-core's (Graph-shaped) recurrence, evaluated in `zone` (the master's
    /// `StartTimeZone` id; UTC when the master has none).
    pub fn to_patterned(&self, zone: Option<&str>) -> PatternedRecurrence {
        let days = |list: &[DayOfWeek]| {
            let mut out: Vec<Weekday> = Vec::new();
            for day in list.iter().flat_map(|d| d.days()) {
                if !out.contains(&day) {
                    out.push(day);
                }
            }
            out
        };
        let base = |kind, interval| RecurrencePattern {
            kind,
            interval,
            days_of_week: Vec::new(),
            day_of_month: 0,
            month: 0,
            first_day_of_week: Weekday::Sun,
            index: WeekIndex::First,
        };
        let pattern = match &self.pattern {
            Pattern::Daily { interval } => base(PatternType::Daily, *interval),
            Pattern::Weekly { interval, days: d, first_day_of_week } => RecurrencePattern {
                days_of_week: days(d),
                first_day_of_week: first_day_of_week.unwrap_or(Weekday::Sun),
                ..base(PatternType::Weekly, *interval)
            },
            Pattern::AbsoluteMonthly { interval, day_of_month } => RecurrencePattern {
                day_of_month: *day_of_month,
                ..base(PatternType::AbsoluteMonthly, *interval)
            },
            Pattern::RelativeMonthly { interval, day, index } => RecurrencePattern {
                days_of_week: day.days(),
                index: *index,
                ..base(PatternType::RelativeMonthly, *interval)
            },
            Pattern::AbsoluteYearly { day_of_month, month } => RecurrencePattern {
                day_of_month: *day_of_month,
                month: *month,
                ..base(PatternType::AbsoluteYearly, 1)
            },
            Pattern::RelativeYearly { day, index, month } => RecurrencePattern {
                days_of_week: day.days(),
                index: *index,
                month: *month,
                ..base(PatternType::RelativeYearly, 1)
            },
        };
        let (kind, end_date, number_of_occurrences) = match self.range {
            Range::NoEnd { .. } => (RangeType::NoEnd, None, 0),
            Range::EndDate { end, .. } => (RangeType::EndDate, Some(end), 0),
            Range::Numbered { count, .. } => (RangeType::Numbered, None, count),
        };
        PatternedRecurrence {
            pattern,
            range: RecurrenceRange {
                kind,
                start_date: self.range.start(),
                end_date,
                number_of_occurrences,
                recurrence_time_zone: Some(zone.unwrap_or("UTC").to_owned()),
            },
        }
    }
}

/// How a request names a calendar item: by id, as the `index`th occurrence of a master, or as the
/// master of an occurrence (ews.md §3.7; valid wherever `ItemIds` / `ItemChange` take an id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemRef {
    /// `t:ItemId` (a single item, a master, or an occurrence's / exception's own id).
    Item(ItemId),
    /// `t:OccurrenceItemId RecurringMasterId InstanceIndex` (1-based; change key optional).
    Occurrence {
        /// The master's id (and change key, if known).
        master: ItemId,
        /// 1-based position in the series.
        index: u32,
    },
    /// `t:RecurringMasterItemId OccurrenceId`: the series of this occurrence or exception.
    MasterOf(ItemId),
}

impl From<ItemId> for ItemRef {
    fn from(id: ItemId) -> Self {
        Self::Item(id)
    }
}

impl From<&ItemId> for ItemRef {
    fn from(id: &ItemId) -> Self {
        Self::Item(id.clone())
    }
}

impl ItemRef {
    /// The element naming it, for `ItemIds` and `ItemChange`.
    pub fn to_element(&self) -> Element {
        let with_ck = |el: Element, ck: &Option<String>| match ck {
            Some(ck) => el.attr("ChangeKey", ck.as_str()),
            None => el,
        };
        match self {
            Self::Item(id) => with_ck(t("ItemId").attr("Id", id.id.as_str()), &id.change_key),
            Self::Occurrence { master, index } => with_ck(
                t("OccurrenceItemId")
                    .attr("RecurringMasterId", master.id.as_str())
                    .attr("InstanceIndex", index.to_string()),
                &master.change_key,
            ),
            Self::MasterOf(occ) => {
                with_ck(t("RecurringMasterItemId").attr("OccurrenceId", occ.id.as_str()), &occ.change_key)
            }
        }
    }

    /// Reads an `ItemId`, `OccurrenceItemId` or `RecurringMasterItemId` element.
    pub fn parse(el: &Element) -> Result<Self, String> {
        let ck = el.get_attr("ChangeKey").map(str::to_owned);
        let attr = |name: &str| el.get_attr(name).ok_or_else(|| format!("{} without {name}", el.name));
        match el.name.as_str() {
            "ItemId" => Ok(Self::Item(ItemId { id: attr("Id")?.to_owned(), change_key: ck })),
            "OccurrenceItemId" => {
                let index = attr("InstanceIndex")?;
                Ok(Self::Occurrence {
                    master: ItemId { id: attr("RecurringMasterId")?.to_owned(), change_key: ck },
                    index: index
                        .trim()
                        .parse()
                        .map_err(|_| format!("InstanceIndex `{index}` is not a number"))?,
                })
            }
            "RecurringMasterItemId" => {
                Ok(Self::MasterOf(ItemId { id: attr("OccurrenceId")?.to_owned(), change_key: ck }))
            }
            other => Err(format!("{other} is not an item id")),
        }
    }
}

/// An occurrence as a master lists it (`FirstOccurrence`, `LastOccurrence`, `ModifiedOccurrences`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccurrenceInfo {
    /// The occurrence's (or exception's) own id.
    pub item_id: ItemId,
    /// `Start`.
    pub start: DateTime<Utc>,
    /// `End`.
    pub end: DateTime<Utc>,
    /// `OriginalStart`: where the pattern put it (its identity in the series).
    pub original_start: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml;

    fn check(xml_text: &str, expected: &Recurrence) {
        let el = xml::parse(xml_text).unwrap();
        let got = Recurrence::parse(&el).unwrap();
        assert_eq!(&got, expected, "{xml_text}");
        let back = Recurrence::parse(&got.to_element()).unwrap();
        assert_eq!(&back, expected, "round trip");
    }

    const T: &str = r#"xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types""#;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn every_pattern_and_range_reads_and_writes() {
        check(
            &format!(
                "<t:Recurrence {T}><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Tuesday Thursday</t:DaysOfWeek></t:WeeklyRecurrence><t:NumberedRecurrence><t:StartDate>2026-09-01Z</t:StartDate><t:NumberOfOccurrences>10</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence>"
            ),
            &Recurrence {
                pattern: Pattern::Weekly {
                    interval: 1,
                    days: vec![DayOfWeek::Day(Weekday::Tue), DayOfWeek::Day(Weekday::Thu)],
                    first_day_of_week: None,
                },
                range: Range::Numbered { start: d(2026, 9, 1), count: 10 },
            },
        );
        check(
            &format!(
                "<t:Recurrence {T}><t:DailyRecurrence><t:Interval>2</t:Interval></t:DailyRecurrence><t:NoEndRecurrence><t:StartDate>2014-03-08-08:00</t:StartDate></t:NoEndRecurrence></t:Recurrence>"
            ),
            &Recurrence {
                pattern: Pattern::Daily { interval: 2 },
                range: Range::NoEnd { start: d(2014, 3, 8) },
            },
        );
        check(
            &format!(
                "<t:Recurrence {T}><t:AbsoluteYearlyRecurrence><t:DayOfMonth>29</t:DayOfMonth><t:Month>February</t:Month></t:AbsoluteYearlyRecurrence><t:EndDateRecurrence><t:StartDate>2028-02-29</t:StartDate><t:EndDate>2036-03-01</t:EndDate></t:EndDateRecurrence></t:Recurrence>"
            ),
            &Recurrence {
                pattern: Pattern::AbsoluteYearly { day_of_month: 29, month: 2 },
                range: Range::EndDate { start: d(2028, 2, 29), end: d(2036, 3, 1) },
            },
        );
        check(
            &format!(
                "<t:Recurrence {T}><t:RelativeYearlyRecurrence><t:DaysOfWeek>Weekday</t:DaysOfWeek><t:DayOfWeekIndex>Last</t:DayOfWeekIndex><t:Month>December</t:Month></t:RelativeYearlyRecurrence><t:NoEndRecurrence><t:StartDate>2026-12-01</t:StartDate></t:NoEndRecurrence></t:Recurrence>"
            ),
            &Recurrence {
                pattern: Pattern::RelativeYearly {
                    day: DayOfWeek::Weekday,
                    index: WeekIndex::Last,
                    month: 12,
                },
                range: Range::NoEnd { start: d(2026, 12, 1) },
            },
        );
        check(
            &format!(
                "<t:Recurrence {T}><t:AbsoluteMonthlyRecurrence><t:Interval>3</t:Interval><t:DayOfMonth>31</t:DayOfMonth></t:AbsoluteMonthlyRecurrence><t:NumberedRecurrence><t:StartDate>2026-01-31</t:StartDate><t:NumberOfOccurrences>4</t:NumberOfOccurrences></t:NumberedRecurrence></t:Recurrence>"
            ),
            &Recurrence {
                pattern: Pattern::AbsoluteMonthly { interval: 3, day_of_month: 31 },
                range: Range::Numbered { start: d(2026, 1, 31), count: 4 },
            },
        );
    }

    #[test]
    fn bad_recurrences_are_named() {
        let bad = |inner: &str, says: &str| {
            let el = xml::parse(&format!("<t:Recurrence {T}>{inner}</t:Recurrence>")).unwrap();
            let err = Recurrence::parse(&el).unwrap_err();
            assert!(err.contains(says), "{inner}: {err}");
        };
        bad("<t:DailyRecurrence><t:Interval>1</t:Interval></t:DailyRecurrence>", "without a range");
        bad(
            "<t:NoEndRecurrence><t:StartDate>2026-01-01</t:StartDate></t:NoEndRecurrence>",
            "without a pattern",
        );
        bad(
            "<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Tuesdy</t:DaysOfWeek></t:WeeklyRecurrence>",
            "Tuesdy",
        );
        bad("<t:HourlyRecurrence/>", "HourlyRecurrence");
        let zero = Recurrence {
            pattern: Pattern::Daily { interval: 0 },
            range: Range::NoEnd { start: d(2026, 1, 1) },
        };
        assert!(zero.validate().unwrap_err().contains("at least 1"));
        let backwards = Recurrence {
            pattern: Pattern::Daily { interval: 1 },
            range: Range::EndDate { start: d(2026, 2, 1), end: d(2026, 1, 1) },
        };
        assert!(backwards.validate().unwrap_err().contains("before it starts"));
        let no_days = Recurrence {
            pattern: Pattern::Weekly { interval: 1, days: vec![], first_day_of_week: None },
            range: Range::NoEnd { start: d(2026, 1, 1) },
        };
        assert!(no_days.validate().is_err());
    }

    #[test]
    fn expansion_goes_through_orb_core_in_the_start_zone() {
        use chrono::{Duration, NaiveTime, TimeZone};
        // Tuesdays 10:00 Amsterdam time, across the October DST change: 08:00Z, then 09:00Z.
        let rec = Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![DayOfWeek::Day(Weekday::Tue)],
                first_day_of_week: None,
            },
            range: Range::Numbered { start: d(2026, 10, 20), count: 3 },
        };
        let p = rec.to_patterned(Some("W. Europe Standard Time"));
        let occ = orb_core::recurrence::expand(
            &p,
            NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            Duration::hours(1),
            "UTC",
            Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        )
        .unwrap();
        let starts: Vec<String> = occ.iter().map(|o| o.start.to_rfc3339()).collect();
        assert_eq!(
            starts,
            ["2026-10-20T08:00:00+00:00", "2026-10-27T09:00:00+00:00", "2026-11-03T09:00:00+00:00"]
        );
        // A weekday group stands for its days.
        let first_weekday = Recurrence {
            pattern: Pattern::RelativeMonthly {
                interval: 1,
                day: DayOfWeek::Weekday,
                index: WeekIndex::First,
            },
            range: Range::Numbered { start: d(2026, 8, 1), count: 2 },
        };
        let occ = orb_core::recurrence::expand(
            &first_weekday.to_patterned(None),
            NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            Duration::hours(1),
            "UTC",
            Utc.with_ymd_and_hms(2026, 8, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(),
        )
        .unwrap();
        // 1 August 2026 is a Saturday: the first weekday is Monday the 3rd; 1 September is a Tuesday.
        let days: Vec<u32> = occ.iter().map(|o| chrono::Datelike::day(&o.start)).collect();
        assert_eq!(days, [3, 1]);
    }

    #[test]
    fn item_refs_name_occurrences_and_masters() {
        let occ = ItemRef::Occurrence { master: ItemId::new("M", "K"), index: 3 };
        let el = occ.to_element();
        assert_eq!(el.name, "OccurrenceItemId");
        assert_eq!(el.get_attr("RecurringMasterId"), Some("M"));
        assert_eq!(el.get_attr("InstanceIndex"), Some("3"));
        assert_eq!(ItemRef::parse(&el).unwrap(), occ);
        let master = ItemRef::MasterOf(ItemId { id: "O".into(), change_key: None });
        let el = master.to_element();
        assert_eq!((el.name.as_str(), el.get_attr("OccurrenceId")), ("RecurringMasterItemId", Some("O")));
        assert_eq!(el.get_attr("ChangeKey"), None);
        assert_eq!(ItemRef::parse(&el).unwrap(), master);
        let bad =
            xml::parse(&format!(r#"<t:OccurrenceItemId {T} RecurringMasterId="M" InstanceIndex="x"/>"#))
                .unwrap();
        assert!(ItemRef::parse(&bad).unwrap_err().contains("InstanceIndex"));
    }
}
