//! The **ORB record**: the stored state of one booking (one meeting occurrence in one room ↔ one TOPdesk
//! reservation), with every field the product promises and what sync needs.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    AppointmentType, BookingId, CoreError, CorrelationId, EmailAddress, RoomId, SeriesId, Side, SyncStatus,
    TenantId, TimeZoneName,
};

/// The hash of a booking's canonical fields as one side holds them (64 lower-case hex digits).
///
/// ORB keeps, per side, the fingerprint of what it last wrote or saw there; an observation with the same
/// fingerprint is an echo of ORB's own write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Parses 64 hex digits (upper case is accepted and lower-cased).
    pub fn parse(input: &str) -> Result<Self, CoreError> {
        if input.len() == 64 && input.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(input.to_ascii_lowercase()))
        } else {
            Err(CoreError::InvalidFingerprint { input: input.to_owned() })
        }
    }

    /// From raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        use fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in bytes {
            let _ = write!(s, "{b:02x}");
        }
        Self(s)
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Fingerprint> for String {
    fn from(value: Fingerprint) -> Self {
        value.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a booking lives in Exchange (Microsoft Graph ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeLink {
    /// The event's id in the organizer's calendar (absent in room-only mode).
    pub organizer_event_id: Option<String>,
    /// The event's id in the room mailbox's calendar.
    pub room_event_id: Option<String>,
    /// `iCalUId`: the same for the organizer's and the room's copy of one occurrence.
    pub ical_uid: Option<String>,
    /// Graph's `changeKey` of the copy ORB writes to (the organizer's copy in organizer mode, the room's
    /// event in room-only mode), as ORB last read or wrote it. ORB's writes of that event carry it as
    /// `If-Match: W/"<changeKey>"`, so a change made there since is not overwritten unseen (Graph answers
    /// `412`; the engine reads the event and plans again with it).
    pub change_key: Option<String>,
    /// Graph's `lastModifiedDateTime` of the version ORB last processed: an observation older than this
    /// is stale (notifications arrive out of order) and changes nothing.
    pub modified_at: Option<DateTime<Utc>>,
}

/// Where a booking lives in TOPdesk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopdeskLink {
    /// The reservation's id (UUID text).
    pub reservation_id: Option<String>,
    /// The reservation's human-readable number (e.g. `R 2611 0042`).
    pub reservation_number: Option<String>,
    /// TOPdesk's `modificationDate` of the version ORB last read or wrote.
    pub modification_date: Option<DateTime<Utc>>,
}

/// The stored row of a booking.
///
/// Fields that are set once are enforced by the store: an update never changes [`Self::id`],
/// [`Self::tenant_id`], [`Self::created_at`], [`Self::processor_created`] or
/// [`Self::original_organizer`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRecord {
    /// The match id: this record's key and the idempotency key on both sides.
    pub id: BookingId,
    /// The customer this booking belongs to.
    pub tenant_id: TenantId,
    /// Carried in every log line and timeline entry of this booking's work.
    pub correlation_id: CorrelationId,
    /// Single, occurrence, exception or series master.
    pub appointment_type: AppointmentType,
    /// The series this occurrence belongs to.
    pub series_id: Option<SeriesId>,
    /// For occurrences and exceptions: the start the pattern gave it (its identity within the series).
    pub original_start: Option<DateTime<Utc>>,
    /// The person the booking is for (the meeting's organizer).
    pub organizer: EmailAddress,
    /// The organizer when ORB first saw the booking; set once.
    pub original_organizer: EmailAddress,
    /// Who actually made the booking when it differs from the organizer (a secretary or delegate).
    pub booked_by: Option<EmailAddress>,
    /// The location text shown in Outlook.
    pub location_text: Option<String>,
    /// The mapped room.
    pub room_id: RoomId,
    /// Attendees, as e-mail addresses only.
    pub participants: Vec<EmailAddress>,
    /// The subject, if the tenant's privacy policy keeps it.
    pub subject: Option<String>,
    /// Start instant (UTC).
    pub start: DateTime<Utc>,
    /// End instant (UTC).
    pub end: DateTime<Utc>,
    /// The time zone the booking was made in.
    pub time_zone: TimeZoneName,
    /// Whether the booking is cancelled (records are never deleted by sync).
    pub cancelled: bool,
    /// Number of real changes synced since creation.
    pub complexity_index: u32,
    /// When ORB created this record.
    pub created_at: DateTime<Utc>,
    /// Which side the booking was first made on.
    pub processor_created: Side,
    /// When ORB last changed this record.
    pub last_updated_at: DateTime<Utc>,
    /// Which side's change ORB last processed.
    pub last_updated_processor: Option<Side>,
    /// When the last failure happened.
    pub failed_at: Option<DateTime<Utc>>,
    /// Which side the last failure came from.
    pub failed_processor: Option<Side>,
    /// How many times syncing this booking failed.
    pub failed_count: u32,
    /// How many retries were scheduled for this booking.
    pub retry_count: u32,
    /// Last known state on the Exchange side.
    pub exchange_status: SyncStatus,
    /// Last known state on the TOPdesk side.
    pub topdesk_status: SyncStatus,
    /// Graph ids.
    pub exchange: ExchangeLink,
    /// TOPdesk ids.
    pub topdesk: TopdeskLink,
    /// Fingerprint of what ORB last wrote to or saw on Exchange.
    pub exchange_fingerprint: Option<Fingerprint>,
    /// Fingerprint of what ORB last wrote to or saw on TOPdesk.
    pub topdesk_fingerprint: Option<Fingerprint>,
    /// Optimistic-concurrency version; the store bumps it on every update.
    pub version: i64,
}

/// What is needed to create a record; everything else starts from defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBooking {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Kind of appointment.
    pub appointment_type: AppointmentType,
    /// Series, for occurrences.
    pub series_id: Option<SeriesId>,
    /// Pattern start, for occurrences.
    pub original_start: Option<DateTime<Utc>>,
    /// Organizer (becomes the original organizer too).
    pub organizer: EmailAddress,
    /// Secretary or delegate, if any.
    pub booked_by: Option<EmailAddress>,
    /// Location text.
    pub location_text: Option<String>,
    /// Room.
    pub room_id: RoomId,
    /// Attendees.
    pub participants: Vec<EmailAddress>,
    /// Subject (already filtered by policy).
    pub subject: Option<String>,
    /// Start.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// Source zone.
    pub time_zone: TimeZoneName,
    /// The side the booking came from.
    pub processor_created: Side,
}

impl BookingRecord {
    /// A fresh record: new match id and correlation id, `original_organizer = organizer`, both sides
    /// pending, counters at zero, version 0 (the store sets 1 on insert).
    pub fn new(new: NewBooking, now: DateTime<Utc>) -> Self {
        Self {
            id: BookingId::generate(now),
            tenant_id: new.tenant_id,
            correlation_id: CorrelationId::generate(now),
            appointment_type: new.appointment_type,
            series_id: new.series_id,
            original_start: new.original_start,
            original_organizer: new.organizer.clone(),
            organizer: new.organizer,
            booked_by: new.booked_by,
            location_text: new.location_text,
            room_id: new.room_id,
            participants: new.participants,
            subject: new.subject,
            start: new.start,
            end: new.end,
            time_zone: new.time_zone,
            cancelled: false,
            complexity_index: 0,
            created_at: now,
            processor_created: new.processor_created,
            last_updated_at: now,
            last_updated_processor: Some(new.processor_created),
            failed_at: None,
            failed_processor: None,
            failed_count: 0,
            retry_count: 0,
            exchange_status: SyncStatus::Pending,
            topdesk_status: SyncStatus::Pending,
            exchange: ExchangeLink::default(),
            topdesk: TopdeskLink::default(),
            exchange_fingerprint: None,
            topdesk_fingerprint: None,
            version: 0,
        }
    }

    /// Last status on `side`.
    pub fn status(&self, side: Side) -> SyncStatus {
        match side {
            Side::Exchange => self.exchange_status,
            Side::Topdesk => self.topdesk_status,
        }
    }

    /// Fingerprint ORB last wrote to or saw on `side`.
    pub fn fingerprint(&self, side: Side) -> Option<&Fingerprint> {
        match side {
            Side::Exchange => self.exchange_fingerprint.as_ref(),
            Side::Topdesk => self.topdesk_fingerprint.as_ref(),
        }
    }

    /// Changes the organizer; the original organizer stays as it was.
    pub fn change_organizer(&mut self, organizer: EmailAddress) {
        self.organizer = organizer;
    }

    /// Records a failure on `side` at `at`.
    pub fn record_failure(&mut self, side: Side, at: DateTime<Utc>) {
        self.failed_at = Some(at);
        self.failed_processor = Some(side);
        self.failed_count += 1;
        match side {
            Side::Exchange => self.exchange_status = SyncStatus::Failed,
            Side::Topdesk => self.topdesk_status = SyncStatus::Failed,
        }
    }

    /// Forgets the item `side` held of this live booking because it vanished there, and marks that side as
    /// owing the booking (status `Failed`, which is what the planner re-drives): its link and fingerprint
    /// are cleared, so the planner's re-drive creates the booking on `side` again from the other side and
    /// links the new item to this record (the restore of a held mass deletion an admin rejected: the
    /// reconciliation sweep's `restore_held_deletions`). No write failed, so the failure bookkeeping
    /// (`failed_at`, `failed_count`) is left as it is: once written back the booking is not listed among
    /// the failed ones. Nothing else of the booking changes.
    pub fn forget_item(&mut self, side: Side) {
        match side {
            Side::Exchange => {
                self.exchange = ExchangeLink::default();
                self.exchange_fingerprint = None;
            }
            Side::Topdesk => {
                self.topdesk = TopdeskLink::default();
                self.topdesk_fingerprint = None;
            }
        }
        match side {
            Side::Exchange => self.exchange_status = SyncStatus::Failed,
            Side::Topdesk => self.topdesk_status = SyncStatus::Failed,
        }
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(now: DateTime<Utc>) -> BookingRecord {
        BookingRecord::new(
            NewBooking {
                tenant_id: TenantId::generate(now),
                appointment_type: AppointmentType::Single,
                series_id: None,
                original_start: None,
                organizer: EmailAddress::parse("manager@contoso.com").unwrap(),
                booked_by: Some(EmailAddress::parse("secretary@contoso.com").unwrap()),
                location_text: Some("Room 4.12".into()),
                room_id: RoomId::generate(now),
                participants: vec![],
                subject: None,
                start: now,
                end: now + chrono::Duration::hours(1),
                time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                processor_created: Side::Exchange,
            },
            now,
        )
    }

    #[test]
    fn a_vanished_item_is_forgotten_and_owed_again() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z").unwrap().with_timezone(&Utc);
        let mut rec = sample(now);
        rec.exchange_status = SyncStatus::Synced;
        rec.topdesk_status = SyncStatus::Synced;
        rec.exchange.room_event_id = Some("ev-1".into());
        rec.exchange.ical_uid = Some("uid-1".into());
        rec.exchange_fingerprint = Some(Fingerprint::parse(&"a".repeat(64)).unwrap());
        rec.topdesk.reservation_id = Some("r-1".into());
        rec.topdesk_fingerprint = Some(Fingerprint::parse(&"b".repeat(64)).unwrap());
        let before = rec.clone();
        rec.forget_item(Side::Topdesk);
        assert_eq!(rec.topdesk, TopdeskLink::default());
        assert_eq!(rec.topdesk_fingerprint, None);
        assert_eq!(rec.status(Side::Topdesk), SyncStatus::Failed);
        assert_eq!(
            (rec.failed_at, rec.failed_processor, rec.failed_count),
            (None, None, 0),
            "no write failed"
        );
        // The side that still holds the booking, and the booking itself, are untouched.
        assert_eq!(rec.exchange, before.exchange);
        assert_eq!(rec.exchange_fingerprint, before.exchange_fingerprint);
        assert_eq!(rec.status(Side::Exchange), SyncStatus::Synced);
        assert_eq!((rec.start, rec.end, rec.cancelled), (before.start, before.end, false));

        let mut rec = before.clone();
        rec.forget_item(Side::Exchange);
        assert_eq!(rec.exchange, ExchangeLink::default());
        assert_eq!(rec.exchange_fingerprint, None);
        assert_eq!(rec.status(Side::Exchange), SyncStatus::Failed);
        assert_eq!(rec.topdesk, before.topdesk);
    }

    #[test]
    fn original_organizer_survives_an_organizer_change() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z").unwrap().with_timezone(&Utc);
        let mut rec = sample(now);
        assert_eq!(rec.original_organizer.as_str(), "manager@contoso.com");
        rec.change_organizer(EmailAddress::parse("deputy@contoso.com").unwrap());
        assert_eq!(rec.organizer.as_str(), "deputy@contoso.com");
        assert_eq!(rec.original_organizer.as_str(), "manager@contoso.com");
        assert_eq!(rec.status(Side::Topdesk), SyncStatus::Pending);
    }

    #[test]
    fn failures_are_counted_per_side() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z").unwrap().with_timezone(&Utc);
        let mut rec = sample(now);
        rec.record_failure(Side::Topdesk, now);
        rec.record_failure(Side::Topdesk, now);
        assert_eq!(rec.failed_count, 2);
        assert_eq!(rec.failed_processor, Some(Side::Topdesk));
        assert_eq!(rec.topdesk_status, SyncStatus::Failed);
        assert_eq!(rec.exchange_status, SyncStatus::Pending);
    }

    #[test]
    fn fingerprints_are_64_hex_digits() {
        let fp = Fingerprint::from_bytes([0xab; 32]);
        assert_eq!(fp.as_str().len(), 64);
        assert_eq!(Fingerprint::parse(&fp.as_str().to_uppercase()).unwrap(), fp);
        assert!(Fingerprint::parse("xyz").is_err());
    }
}
