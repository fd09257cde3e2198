//! Series in the EWS emulator: a master stores its `Recurrence` (evaluated in its `StartTimeZone` by
//! orb-core's expansion, the one the Graph emulator uses), its exceptions and its deleted occurrences;
//! occurrences are never stored but made on the fly, with ids that name the master and the original
//! start (so a `CalendarView` occurrence id is accepted by GetItem / UpdateItem / DeleteItem, U20).
//!
//! - Addressing: `t:ItemId` (an item, a master or an occurrence id), `t:OccurrenceItemId` (1-based
//!   `InstanceIndex` over the pattern, deleted occurrences counted, so indexes never shift:
//!   `ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange`, `ErrorCalendarOccurrenceIsDeletedFromRecurrence`),
//!   `t:RecurringMasterItemId` (`ErrorCalendarCannotUseIdForOccurrenceId` for a non-occurrence).
//! - Changing an occurrence makes an exception (own change key; the master gets a new change key and a
//!   `ModifiedEvent`, U12); moving it onto or past a neighbour is `ErrorOccurrenceCrossingBoundary`.
//!   Deleting or cancelling one adds its original start to `DeletedOccurrences`. Rooms' copies follow
//!   through the booking attendant ([`super::state`]).

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use orb_core::recurrence;
use orb_ews::series::Range;
use orb_ews::xml::Element;

use super::ops::FieldChange;
use super::state::{Exception, Inner, Item, Kind, Refusal, refuse};

/// How far an open-ended series is counted (`InstanceIndex`, `FirstOccurrence`).
const OPEN_END_YEARS: i64 = 5;

/// An item's presence in time: a single item once, a series once per live occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Instance {
    pub(crate) original_start: DateTime<Utc>,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
}

/// An occurrence as a master lists it (`FirstOccurrence`, `LastOccurrence`, `ModifiedOccurrences`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Occ {
    pub(crate) id: String,
    pub(crate) change_key: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) original_start: DateTime<Utc>,
}

/// A master's occurrence summaries.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) first: Option<Occ>,
    pub(crate) last: Option<Occ>,
    pub(crate) modified: Vec<Occ>,
}

/// The id of a master's occurrence: opaque to clients, it names the master and the original start.
pub(crate) fn occurrence_id(master: &str, original_start: DateTime<Utc>) -> String {
    format!("{master}.O{:x}", original_start.timestamp())
}

/// The master id and original start an occurrence id names.
pub(crate) fn parse_occurrence_id(id: &str) -> Option<(&str, DateTime<Utc>)> {
    let (master, at) = id.rsplit_once(".O")?;
    let secs = i64::from_str_radix(at, 16).ok()?;
    Some((master, Utc.timestamp_opt(secs, 0).single()?))
}

/// Whether `zone` is one the emulator can evaluate a series in.
pub(crate) fn known_zone(zone: &str) -> bool {
    orb_core::zones::resolve_graph_zone(zone).is_ok()
}

/// Every pattern date of a master up to `to` (deleted occurrences included), in order: the position is
/// the `InstanceIndex` − 1. A single item is its own one instance.
fn pattern(item: &Item, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let Some(rec) = &item.recurrence else { return vec![(item.start, item.end)] };
    let zone = item.time_zone.as_deref().filter(|z| known_zone(z)).unwrap_or("UTC");
    let local_start = match orb_core::zones::resolve_graph_zone(zone) {
        Ok(tz) => item.start.with_timezone(&tz.tz()).time(),
        Err(_) => item.start.time(),
    };
    let from = rec.range.start().and_time(NaiveTime::MIN).and_utc() - Duration::days(2);
    let patterned = rec.to_patterned(Some(zone));
    recurrence::expand(&patterned, local_start, item.end - item.start, zone, from, to)
        .map(|occ| occ.into_iter().map(|o| (o.start, o.end)).collect())
        .unwrap_or_default()
}

/// The first occurrence's start and end: Exchange moves a master whose `Start` is not on the pattern
/// to its first occurrence.
pub(crate) fn first_occurrence(item: &Item) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    pattern(item, series_end(item)).first().copied()
}

/// Where counting a series stops: its range's end, or [`OPEN_END_YEARS`] for an open-ended one.
fn series_end(item: &Item) -> DateTime<Utc> {
    match item.recurrence.as_ref().map(|r| r.range) {
        Some(Range::NoEnd { .. }) => item.start + Duration::days(365 * OPEN_END_YEARS),
        Some(Range::EndDate { end, .. }) => end.and_time(NaiveTime::MIN).and_utc() + Duration::days(2),
        // Numbered ranges stop by themselves; a generous bound keeps yearly series whole.
        Some(Range::Numbered { .. }) => item.start + Duration::days(366 * 200),
        None => item.end,
    }
}

/// The live instances of `item` overlapping `[from, to)`: exceptions at their changed times, deleted
/// occurrences left out.
pub(crate) fn instances(item: &Item, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Instance> {
    // Exceptions cannot cross their neighbours, so a month past `to` covers every one moved into it.
    let horizon = (to + Duration::days(31)).min(series_end(item).max(item.end));
    pattern(item, horizon)
        .into_iter()
        .filter(|(orig, _)| !item.deleted_occurrences.contains(orig))
        .map(|(orig, end)| match item.exceptions.get(&orig) {
            Some(ex) => Instance { original_start: orig, start: ex.start, end: ex.end },
            None => Instance { original_start: orig, start: orig, end },
        })
        .filter(|i| i.start < to && i.end > from)
        .collect()
}

fn occ_of(master: &Item, i: &Instance) -> Occ {
    let change_key = master
        .exceptions
        .get(&i.original_start)
        .map_or_else(|| master.change_key.clone(), |ex| ex.change_key.clone());
    Occ {
        id: occurrence_id(&master.id, i.original_start),
        change_key,
        start: i.start,
        end: i.end,
        original_start: i.original_start,
    }
}

/// A master's first and last live occurrence (no last for an open-ended series) and its exceptions.
pub(crate) fn summary(master: &Item) -> Summary {
    let all = instances(master, DateTime::<Utc>::MIN_UTC, series_end(master));
    let open = matches!(master.recurrence.as_ref().map(|r| r.range), Some(Range::NoEnd { .. }));
    Summary {
        first: all.first().map(|i| occ_of(master, i)),
        last: if open { None } else { all.last().map(|i| occ_of(master, i)) },
        modified: all
            .iter()
            .filter(|i| master.exceptions.contains_key(&i.original_start))
            .map(|i| occ_of(master, i))
            .collect(),
    }
}

/// The occurrence (or exception) of `master` at `original_start`, as an item to render.
pub(crate) fn occurrence_item(master: &Item, original_start: DateTime<Utc>) -> Item {
    let end = original_start + (master.end - master.start);
    let mut item = master.clone();
    item.id = occurrence_id(&master.id, original_start);
    item.original_start = Some(original_start);
    item.recurrence = None;
    item.exceptions.clear();
    item.deleted_occurrences.clear();
    match master.exceptions.get(&original_start) {
        Some(ex) => {
            item.kind = Kind::Exception;
            item.change_key = ex.change_key.clone();
            item.start = ex.start;
            item.end = ex.end;
            item.subject = ex.subject.clone();
            item.location = ex.location.clone();
        }
        None => {
            item.kind = Kind::Occurrence;
            item.start = original_start;
            item.end = end;
        }
    }
    item
}

/// What an id element names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A stored item (single or master).
    Item(String),
    /// An occurrence of a master, by original start.
    Occurrence { master: String, original_start: DateTime<Utc> },
}

fn master_of<'a>(inner: &'a Inner, mb: &str, id: &str) -> Result<&'a Item, Refusal> {
    inner.live(mb, id)
}

fn live_occurrence(
    inner: &Inner,
    mb: &str,
    master: &str,
    original_start: DateTime<Utc>,
) -> Result<Target, Refusal> {
    let item = master_of(inner, mb, master)?;
    let in_pattern = item.recurrence.is_some()
        && pattern(item, original_start + Duration::days(1)).iter().any(|(o, _)| *o == original_start);
    if !in_pattern || item.deleted_occurrences.contains(&original_start) {
        return Err(refuse("ErrorItemNotFound", "The specified object was not found in the store."));
    }
    Ok(Target::Occurrence { master: master.to_owned(), original_start })
}

/// Resolves an `ItemId`, `OccurrenceItemId` or `RecurringMasterItemId` element in `mb`, with the change
/// key it carries.
pub(crate) fn resolve(inner: &Inner, mb: &str, el: &Element) -> Result<(Target, Option<String>), Refusal> {
    let ck = el.get_attr("ChangeKey").map(str::to_owned);
    let attr = |name: &str| {
        el.get_attr(name)
            .ok_or_else(|| refuse("ErrorSchemaValidation", format!("{} without {name}.", el.name)))
    };
    let target = match el.name.as_str() {
        "ItemId" | "ReferenceItemId" => {
            let id = attr("Id")?;
            match parse_occurrence_id(id) {
                Some((master, at)) => live_occurrence(inner, mb, master, at)?,
                None => Target::Item(id.to_owned()),
            }
        }
        "OccurrenceItemId" => {
            let master = master_of(inner, mb, attr("RecurringMasterId")?)?;
            let index: usize = attr("InstanceIndex")?.trim().parse().unwrap_or(0);
            let out_of_range = || {
                refuse(
                    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                    "The occurrence index is out of the recurrence range.",
                )
            };
            if master.recurrence.is_none() || index == 0 {
                return Err(out_of_range());
            }
            let (orig, _) =
                pattern(master, series_end(master)).get(index - 1).copied().ok_or_else(out_of_range)?;
            if master.deleted_occurrences.contains(&orig) {
                return Err(refuse(
                    "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                    "The occurrence was deleted from the recurrence.",
                ));
            }
            Target::Occurrence { master: master.id.clone(), original_start: orig }
        }
        "RecurringMasterItemId" => {
            let id = attr("OccurrenceId")?;
            match parse_occurrence_id(id) {
                Some((master, _)) => Target::Item(master_of(inner, mb, master)?.id.clone()),
                None => {
                    inner.live(mb, id)?;
                    return Err(refuse(
                        "ErrorCalendarCannotUseIdForOccurrenceId",
                        "The id is not the id of an occurrence.",
                    ));
                }
            }
        }
        other => {
            return Err(refuse("ErrorInvalidRequest", format!("{other} is not an item id.")));
        }
    };
    Ok((target, ck))
}

/// The occurrence at `original_start` of `master`, as an item.
pub(crate) fn get_occurrence(
    inner: &Inner,
    mb: &str,
    master: &str,
    original_start: DateTime<Utc>,
) -> Result<Item, Refusal> {
    Ok(occurrence_item(master_of(inner, mb, master)?, original_start))
}

/// Changes one occurrence (it becomes, or stays, an exception). Returns its id and new change key.
#[allow(clippy::too_many_arguments)]
pub(crate) fn modify_occurrence(
    inner: &mut Inner,
    mb: &str,
    master_id: &str,
    original_start: DateTime<Utc>,
    changes: Vec<(String, FieldChange)>,
    change_key: Option<&str>,
    conflict: &str,
    send: &str,
    now: DateTime<Utc>,
) -> Result<(String, String), Refusal> {
    let master = master_of(inner, mb, master_id)?.clone();
    let current = occurrence_item(&master, original_start);
    if conflict != "AlwaysOverwrite" {
        match change_key {
            None => {
                return Err(refuse(
                    "ErrorChangeKeyRequiredForWriteOperations",
                    "The change key is required for this operation.",
                ));
            }
            Some(ck) if ck == current.change_key || ck == master.change_key => {}
            Some(_) => {
                return Err(refuse(
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change key passed in the \
                     request does not match the current change key for the item.",
                ));
            }
        }
    }
    let mut ex = Exception {
        change_key: String::new(),
        start: current.start,
        end: current.end,
        subject: current.subject.clone(),
        location: current.location.clone(),
    };
    let fields: Vec<String> = changes.iter().map(|(f, _)| f.clone()).collect();
    for (field, c) in changes {
        match c {
            FieldChange::Subject(s) => ex.subject = s,
            FieldChange::Start(v) => ex.start = v,
            FieldChange::End(v) => ex.end = v,
            FieldChange::Location(v) => ex.location = Some(v),
            FieldChange::ClearLocation => ex.location = None,
            _ => {
                return Err(refuse(
                    "ErrorInvalidPropertySet",
                    format!("{field} cannot be changed on one occurrence; change the series."),
                ));
            }
        }
    }
    if ex.end <= ex.start {
        return Err(refuse(
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "EndDate is earlier than StartDate.",
        ));
    }
    let live = instances(&master, DateTime::<Utc>::MIN_UTC, series_end(&master));
    let pos = live.iter().position(|i| i.original_start == original_start);
    let prev = pos.and_then(|p| p.checked_sub(1)).and_then(|p| live.get(p));
    let next = pos.and_then(|p| live.get(p + 1));
    if prev.is_some_and(|p| ex.start <= p.start) || next.is_some_and(|n| ex.start >= n.start) {
        return Err(refuse(
            "ErrorOccurrenceCrossingBoundary",
            "An occurrence cannot be moved onto or past an adjacent occurrence.",
        ));
    }
    ex.change_key = inner.new_change_key();
    let ck = ex.change_key.clone();
    inner.live_mut(mb, master_id)?.exceptions.insert(original_start, ex);
    inner.touch(mb, master_id, fields, "ModifiedEvent", now);
    if master.my_response == "Organizer" && send != "SendToNone" {
        inner.process_rooms(mb, master_id, &[], now);
    }
    Ok((occurrence_id(master_id, original_start), ck))
}

/// Deletes (or, for the organizer, cancels) one occurrence: it joins the master's `DeletedOccurrences`,
/// and the rooms' copies follow when cancellations are sent.
pub(crate) fn delete_occurrence(
    inner: &mut Inner,
    mb: &str,
    master_id: &str,
    original_start: DateTime<Utc>,
    send: bool,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let master = inner.live_mut(mb, master_id)?;
    master.exceptions.remove(&original_start);
    master.deleted_occurrences.insert(original_start);
    let organizer = master.my_response == "Organizer";
    inner.touch(mb, master_id, vec!["calendar:DeletedOccurrences".into()], "ModifiedEvent", now);
    if organizer && send {
        inner.process_rooms(mb, master_id, &[], now);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use orb_ews::series::{DayOfWeek, Pattern, Recurrence};

    use super::*;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 9, d, h, 0, 0).unwrap()
    }

    fn weekly(count: u32) -> Item {
        let mut item = Item::new("s".into(), at(1, 8), at(1, 9), "uid".into(), at(1, 0));
        item.id = "AAMkAD1".into();
        item.change_key = "CK".into();
        item.kind = Kind::RecurringMaster;
        item.time_zone = Some("W. Europe Standard Time".into());
        item.recurrence = Some(Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![DayOfWeek::Day(chrono::Weekday::Tue)],
                first_day_of_week: None,
            },
            range: Range::Numbered { start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(), count },
        });
        item
    }

    #[test]
    fn occurrence_ids_round_trip() {
        let id = occurrence_id("AAMkAD00000000ff", at(8, 8));
        assert_eq!(parse_occurrence_id(&id), Some(("AAMkAD00000000ff", at(8, 8))));
        assert_eq!(parse_occurrence_id("AAMkAD00000000ff"), None);
    }

    #[test]
    fn instances_skip_deleted_and_move_exceptions() {
        let mut item = weekly(4);
        item.deleted_occurrences.insert(at(15, 8));
        item.exceptions.insert(
            at(8, 8),
            Exception {
                change_key: "E".into(),
                start: at(9, 8),
                end: at(9, 9),
                subject: "x".into(),
                location: None,
            },
        );
        let got: Vec<DateTime<Utc>> = instances(&item, at(1, 0), at(30, 0)).iter().map(|i| i.start).collect();
        assert_eq!(got, [at(1, 8), at(9, 8), at(22, 8)]);
        let s = summary(&item);
        assert_eq!(s.first.unwrap().start, at(1, 8));
        assert_eq!(s.last.unwrap().original_start, at(22, 8));
        assert_eq!(s.modified.len(), 1);
        assert_eq!(s.modified[0].change_key, "E");
        // The window cuts: only what overlaps [from, to).
        assert_eq!(instances(&item, at(9, 0), at(10, 0)).len(), 1);
        let occ = occurrence_item(&item, at(8, 8));
        assert_eq!((occ.kind, occ.start, occ.original_start), (Kind::Exception, at(9, 8), Some(at(8, 8))));
        let occ = occurrence_item(&item, at(22, 8));
        assert_eq!((occ.kind, occ.change_key.as_str()), (Kind::Occurrence, "CK"));
    }
}
