//! What the portal shows of an ORB record: every field of the seed, as text, with the fields a tenant-admin
//! hid replaced by [`HIDDEN`] for everyone (admins and operators included) — in the pages, the API and the
//! CSV export alike. One table ([`BOOKING_FIELDS`]) names the fields; the settings page offers exactly
//! these for hiding.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
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
