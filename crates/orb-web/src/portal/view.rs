//! What the portal shows of an ORB record: every field of the seed, as text, with the fields a tenant-admin
//! hid replaced by [`HIDDEN`] for everyone (admins and operators included) — in the pages, the API and the
//! CSV export alike. One table ([`BOOKING_FIELDS`]) names the fields; the settings page offers exactly
//! these for hiding.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use orb_core::BookingRecord;
use serde::Serialize;

/// What a hidden field shows.
pub const HIDDEN: &str = "(hidden)";

/// Every booking field the portal shows: key (what settings and the API use) and label.
pub const BOOKING_FIELDS: &[(&str, &str)] = &[
    ("type", "Type"),
    ("organizer", "Organizer"),
    ("original_organizer", "Original organizer"),
    ("booked_by", "Booked by"),
    ("location", "Location"),
    ("room", "Room"),
    ("participants", "Participants"),
    ("subject", "Subject"),
    ("start", "Start"),
    ("end", "End"),
    ("time_zone", "Time zone"),
    ("cancelled", "Cancelled"),
    ("complexity_index", "Complexity index"),
    ("created_at", "Created"),
    ("match_id", "Match id"),
    ("correlation_id", "Correlation id"),
    ("processor_created", "Processor created"),
    ("last_updated_at", "Last updated"),
    ("last_updated_processor", "Last updated by"),
    ("failed_at", "Failed at"),
    ("failed_processor", "Failed processor"),
    ("failed_count", "Failure count"),
    ("retry_count", "Retry count"),
    ("exchange_status", "Status in Exchange"),
    ("topdesk_status", "Status in TOPdesk"),
    ("exchange_event_id", "Exchange event id"),
    ("topdesk_reservation", "TOPdesk reservation"),
];

/// Whether `key` names a booking field.
pub fn is_field(key: &str) -> bool {
    BOOKING_FIELDS.iter().any(|(k, _)| *k == key)
}

/// One field as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldView {
    /// The key.
    pub key: &'static str,
    /// The label.
    pub label: &'static str,
    /// The value as text ([`HIDDEN`] when hidden; empty when unset).
    pub value: String,
    /// Whether it is hidden.
    pub hidden: bool,
}

/// A booking as shown: its id (for links), its room's mailbox, and every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookingView {
    /// The match id (links need it even when the field is hidden).
    pub id: String,
    /// Every field, in [`BOOKING_FIELDS`] order.
    pub fields: Vec<FieldView>,
    /// Whether either side failed.
    pub failed: bool,
}

impl BookingView {
    /// Builds the view of `record`; `rooms` maps room ids to mailboxes; times are shown in `zone`.
    pub fn new(
        record: &BookingRecord,
        rooms: &BTreeMap<String, String>,
        hidden: &BTreeSet<String>,
        zone: Tz,
    ) -> Self {
        let t = |at: DateTime<Utc>| at.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string();
        let ot = |at: Option<DateTime<Utc>>| at.map(t).unwrap_or_default();
        let opt = |v: Option<String>| v.unwrap_or_default();
        let room_id = record.room_id.to_string();
        let value = |key: &str| -> String {
            match key {
                "type" => record.appointment_type.as_str().to_owned(),
                "organizer" => record.organizer.to_string(),
                "original_organizer" => record.original_organizer.to_string(),
                "booked_by" => opt(record.booked_by.as_ref().map(ToString::to_string)),
                "location" => opt(record.location_text.clone()),
                "room" => rooms.get(&room_id).cloned().unwrap_or_else(|| room_id.clone()),
                "participants" => {
                    record.participants.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                }
                "subject" => opt(record.subject.clone()),
                "start" => t(record.start),
                "end" => t(record.end),
                "time_zone" => record.time_zone.to_string(),
                "cancelled" => if record.cancelled { "yes" } else { "no" }.to_owned(),
                "complexity_index" => record.complexity_index.to_string(),
                "created_at" => t(record.created_at),
                "match_id" => record.id.to_string(),
                "correlation_id" => record.correlation_id.to_string(),
                "processor_created" => record.processor_created.as_str().to_owned(),
                "last_updated_at" => t(record.last_updated_at),
                "last_updated_processor" => opt(record.last_updated_processor.map(|s| s.as_str().to_owned())),
                "failed_at" => ot(record.failed_at),
                "failed_processor" => opt(record.failed_processor.map(|s| s.as_str().to_owned())),
                "failed_count" => record.failed_count.to_string(),
                "retry_count" => record.retry_count.to_string(),
                "exchange_status" => record.exchange_status.as_str().to_owned(),
                "topdesk_status" => record.topdesk_status.as_str().to_owned(),
                "exchange_event_id" => opt(record
                    .exchange
                    .organizer_event_id
                    .clone()
                    .or_else(|| record.exchange.room_event_id.clone())),
                "topdesk_reservation" => opt(record
                    .topdesk
                    .reservation_number
                    .clone()
                    .or_else(|| record.topdesk.reservation_id.clone())),
                _ => String::new(),
            }
        };
        let fields = BOOKING_FIELDS
            .iter()
            .map(|&(key, label)| {
                let hidden = hidden.contains(key);
                FieldView { key, label, value: if hidden { HIDDEN.to_owned() } else { value(key) }, hidden }
            })
            .collect();
        let failed = record.failed_count > 0
            || record.exchange_status == orb_core::SyncStatus::Failed
            || record.topdesk_status == orb_core::SyncStatus::Failed;
        Self { id: record.id.to_string(), fields, failed }
    }

    /// One field's value by key (empty when unknown).
    pub fn get(&self, key: &str) -> &str {
        self.fields.iter().find(|f| f.key == key).map_or("", |f| f.value.as_str())
    }

    /// The fields as a JSON object (key → value), for the API.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("id".into(), self.id.clone().into());
        for f in &self.fields {
            map.insert(f.key.into(), f.value.clone().into());
        }
        serde_json::Value::Object(map)
    }
}

/// A time as the portal shows it, in `zone`.
pub fn when(at: DateTime<Utc>, zone: Tz) -> String {
    at.with_timezone(&zone).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A filter's day bound: the instant day `text` (`YYYY-MM-DD`) starts in `zone`, or with `end` the instant
/// the day after it starts (an exclusive end, so the whole day is in); `None` for no text. A day whose
/// midnight a clock change skips starts at its first local minute that exists. The error says how to write
/// a date.
pub fn day_bound(text: Option<&str>, zone: Tz, end: bool) -> Result<Option<DateTime<Utc>>, String> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is not a date; write YYYY-MM-DD"))?;
    let date =
        if end { date.succ_opt().ok_or_else(|| format!("{text:?} is too late a date"))? } else { date };
    let midnight = date.and_time(NaiveTime::MIN);
    (0..=180)
        .find_map(|minute| zone.from_local_datetime(&(midnight + Duration::minutes(minute))).earliest())
        .map(|start| Some(start.with_timezone(&Utc)))
        .ok_or_else(|| format!("{text:?} has no start in {zone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_day_is_bounded_by_its_midnights_in_the_zone() {
        let check = |text: &str, zone: Tz, end: bool, expected: Result<Option<&str>, &str>| {
            let got = day_bound(Some(text), zone, end);
            let expected = expected.map(|t| t.map(|t| t.parse::<DateTime<Utc>>().unwrap()));
            match (&got, &expected) {
                (Err(said), Err(part)) => assert!(said.contains(part), "{text}: {said}"),
                _ => assert_eq!(got, expected.map_err(str::to_owned), "{text} in {zone}, end {end}"),
            }
        };
        let amsterdam = chrono_tz::Europe::Amsterdam;
        check("2026-12-01", chrono_tz::UTC, false, Ok(Some("2026-12-01T00:00:00Z")));
        check("2026-12-01", chrono_tz::UTC, true, Ok(Some("2026-12-02T00:00:00Z")));
        // Winter (UTC+1) and summer (UTC+2) in Amsterdam; the end is the next day's start.
        check("2026-12-01", amsterdam, false, Ok(Some("2026-11-30T23:00:00Z")));
        check(" 2026-12-01 ", amsterdam, true, Ok(Some("2026-12-01T23:00:00Z")));
        check("2026-07-01", amsterdam, false, Ok(Some("2026-06-30T22:00:00Z")));
        // The day the clocks go forward at 02:00 is 23 hours long: its bounds are still its midnights.
        check("2026-03-29", amsterdam, true, Ok(Some("2026-03-29T22:00:00Z")));
        check("1 December", amsterdam, false, Err("write YYYY-MM-DD"));
        check("2026-02-30", amsterdam, false, Err("is not a date"));
        assert_eq!(day_bound(None, amsterdam, false), Ok(None));
        assert_eq!(day_bound(Some("  "), amsterdam, true), Ok(None));
    }

    #[test]
    fn a_day_whose_midnight_a_clock_change_skips_starts_at_its_first_minute() {
        // Cuba moves its clocks from 00:00 to 01:00 on the second Sunday of March.
        let havana = chrono_tz::America::Havana;
        let midnight = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap().and_time(NaiveTime::MIN);
        assert!(havana.from_local_datetime(&midnight).earliest().is_none(), "no midnight that day");
        let start = day_bound(Some("2026-03-08"), havana, false).unwrap().unwrap();
        assert_eq!(start, "2026-03-08T05:00:00Z".parse::<DateTime<Utc>>().unwrap(), "01:00 daylight time");
        assert_eq!(day_bound(Some("2026-03-07"), havana, true), Ok(Some(start)), "the day before ends there");
    }
}
