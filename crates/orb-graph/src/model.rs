//! Graph wire types: serde structs that follow the Graph schema subset
//! (`testdata/graph-openapi-subset.yaml`, extracted from the Graph v1.0 CSDL) field by field.
//!
//! One set of types serves both ORB's client and the Graph emulator, so the two cannot drift apart.
//!
//! ## Rules
//! - Names are the wire names (`camelCase`, `@odata.*`), type names are the schema's type names.
//! - A property the schema marks `nullable` is an `Option`; so is every property of an entity, because Graph
//!   omits what was not `$select`ed and requests (`PATCH`) carry only what changes. `None` is never
//!   serialised (Graph treats an explicit `null` as "clear this value").
//! - Non-nullable collections are `Option<Vec<_>>` for the same reason; a response that has the property
//!   carries `[]`, never `null`.
//! - Unknown properties are ignored when reading (events are open types and Graph adds annotations), and
//!   enums are closed: a value outside the schema's enum is a decode error, not silently mapped.
//! - Date-times of `dateTimeTimeZone` stay text (`dateTime` has no offset; its meaning depends on
//!   `timeZone`); [`DateTimeTimeZone::to_utc`] and [`DateTimeTimeZone::from_utc`] convert.
//!
//! Must not depend on anything but orb-core, serde and chrono: the emulator uses this module too.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use orb_core::CoreError;

/// `microsoft.graph.dateTimeTimeZone`: a wall-clock time (no offset) and the zone it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DateTimeTimeZone {
    /// Local date-time without offset, e.g. `2026-09-01T09:00:00.0000000`.
    pub date_time: String,
    /// Windows or IANA zone name; Graph reads a missing zone as UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl DateTimeTimeZone {
    /// An instant shown in UTC, in Graph's own format (seven fractional digits).
    pub fn from_utc(at: DateTime<Utc>) -> Self {
        Self { date_time: format_local(at.naive_utc()), time_zone: Some("UTC".to_owned()) }
    }

    /// An instant shown in `zone` (a Windows or IANA name Graph knows).
    pub fn in_zone(at: DateTime<Utc>, zone: &str) -> Result<Self, CoreError> {
        let tz = orb_core::zones::resolve_graph_zone(zone)?.tz();
        Ok(Self {
            date_time: format_local(at.with_timezone(&tz).naive_local()),
            time_zone: Some(zone.to_owned()),
        })
    }

    /// The local wall-clock time (fractional digits beyond nanoseconds are ignored).
    pub fn local(&self) -> Result<NaiveDateTime, CoreError> {
        parse_local(&self.date_time)
    }

    /// The instant this denotes. A missing zone is UTC (as in Graph); an unknown zone is an error.
    pub fn to_utc(&self) -> Result<DateTime<Utc>, CoreError> {
        let local = self.local()?;
        let zone = self.time_zone.as_deref().filter(|z| !z.trim().is_empty()).unwrap_or("UTC");
        let tz = orb_core::zones::resolve_graph_zone(zone)?.tz();
        Ok(orb_core::recurrence::local_to_utc(tz, local))
    }
}

/// Formats a local time as Graph does: `YYYY-MM-DDTHH:MM:SS.fffffff`.
pub fn format_local(local: NaiveDateTime) -> String {
    format!("{}.{:07}", local.format("%Y-%m-%dT%H:%M:%S"), local.nanosecond() / 100)
}

/// Parses Graph's local date-time text (`2026-09-01T09:00:00`, with up to 7 fractional digits, and tolerant
/// of a trailing `Z`).
pub fn parse_local(text: &str) -> Result<NaiveDateTime, CoreError> {
    let trimmed = text.trim().trim_end_matches('Z');
    NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M"))
        .map_err(|_| CoreError::InvalidName {
            kind: "Graph dateTime",
            input: text.to_owned(),
            reason: "expected YYYY-MM-DDTHH:MM:SS with optional fraction and no offset",
        })
}

/// `microsoft.graph.emailAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmailAddress {
    /// SMTP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `microsoft.graph.recipient`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// The address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<EmailAddress>,
}

impl Recipient {
    /// A recipient with an address and an optional display name.
    pub fn new(address: &str, name: Option<&str>) -> Self {
        Self {
            email_address: Some(EmailAddress {
                address: Some(address.to_owned()),
                name: name.map(str::to_owned),
            }),
        }
    }

    /// The address, if any.
    pub fn address(&self) -> Option<&str> {
        self.email_address.as_ref().and_then(|e| e.address.as_deref())
    }
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }
        }
    };
}

wire_enum!(
    /// `microsoft.graph.attendeeType`.
    AttendeeType { /** A required attendee. */ Required = "required", /** Optional. */ Optional = "optional",
    /** A resource such as a room. */ Resource = "resource" }
);
wire_enum!(
    /// `microsoft.graph.responseType`.
    ResponseType { /** No response. */ None = "none", /** The organizer's own copy. */ Organizer = "organizer",
    /** Tentative. */ TentativelyAccepted = "tentativelyAccepted", /** Accepted. */ Accepted = "accepted",
    /** Declined. */ Declined = "declined", /** Not responded yet. */ NotResponded = "notResponded" }
);
wire_enum!(
    /// `microsoft.graph.eventType`.
    EventType { /** A single meeting. */ SingleInstance = "singleInstance",
    /** An unmodified occurrence of a series. */ Occurrence = "occurrence",
    /** A modified occurrence. */ Exception = "exception", /** The series itself. */ SeriesMaster = "seriesMaster" }
);
wire_enum!(
    /// `microsoft.graph.freeBusyStatus`.
    FreeBusyStatus { /** Unknown. */ Unknown = "unknown", /** Free. */ Free = "free",
    /** Tentative. */ Tentative = "tentative", /** Busy. */ Busy = "busy", /** Out of office. */ Oof = "oof",
    /** Working elsewhere. */ WorkingElsewhere = "workingElsewhere" }
);
wire_enum!(
    /// `microsoft.graph.importance`.
    Importance { /** Low. */ Low = "low", /** Normal. */ Normal = "normal", /** High. */ High = "high" }
);
wire_enum!(
    /// `microsoft.graph.sensitivity`.
    Sensitivity { /** Normal. */ Normal = "normal", /** Personal. */ Personal = "personal",
    /** Private. */ Private = "private", /** Confidential. */ Confidential = "confidential" }
);
wire_enum!(
    /// `microsoft.graph.bodyType`.
    BodyType { /** Plain text. */ Text = "text", /** HTML. */ Html = "html" }
);
wire_enum!(
    /// `microsoft.graph.locationType`.
    LocationType { /** Default. */ Default = "default", /** A conference room. */ ConferenceRoom = "conferenceRoom",
    /** Home. */ HomeAddress = "homeAddress", /** Business. */ BusinessAddress = "businessAddress",
    /** Coordinates. */ GeoCoordinates = "geoCoordinates", /** Street. */ StreetAddress = "streetAddress",
    /** Hotel. */ Hotel = "hotel", /** Restaurant. */ Restaurant = "restaurant",
    /** Local business. */ LocalBusiness = "localBusiness", /** Postal. */ PostalAddress = "postalAddress" }
);
wire_enum!(
    /// `microsoft.graph.locationUniqueIdType`.
    LocationUniqueIdType { /** Unknown. */ Unknown = "unknown", /** Location store. */ LocationStore = "locationStore",
    /** Directory. */ Directory = "directory", /** Private. */ Private = "private", /** Bing. */ Bing = "bing" }
);
wire_enum!(
    /// `microsoft.graph.dayOfWeek`.
    DayOfWeek { /** Sunday. */ Sunday = "sunday", /** Monday. */ Monday = "monday", /** Tuesday. */ Tuesday = "tuesday",
    /** Wednesday. */ Wednesday = "wednesday", /** Thursday. */ Thursday = "thursday", /** Friday. */ Friday = "friday",
    /** Saturday. */ Saturday = "saturday" }
);
wire_enum!(
    /// `microsoft.graph.weekIndex`.
    WeekIndex { /** First. */ First = "first", /** Second. */ Second = "second", /** Third. */ Third = "third",
    /** Fourth. */ Fourth = "fourth", /** Last. */ Last = "last" }
);
wire_enum!(
    /// `microsoft.graph.recurrencePatternType`.
    RecurrencePatternType { /** Daily. */ Daily = "daily", /** Weekly. */ Weekly = "weekly",
    /** Day n of the month. */ AbsoluteMonthly = "absoluteMonthly",
    /** The n-th weekday of the month. */ RelativeMonthly = "relativeMonthly",
    /** A date each year. */ AbsoluteYearly = "absoluteYearly",
    /** The n-th weekday of a month each year. */ RelativeYearly = "relativeYearly" }
);
wire_enum!(
    /// `microsoft.graph.recurrenceRangeType`.
    RecurrenceRangeType { /** Until an end date. */ EndDate = "endDate", /** No end. */ NoEnd = "noEnd",
    /** A number of occurrences. */ Numbered = "numbered" }
);
wire_enum!(
    /// `microsoft.graph.bookingType`.
    BookingType { /** Unknown. */ Unknown = "unknown", /** Bookable. */ Standard = "standard",
    /** First-come first-served, not bookable. */ Reserved = "reserved" }
);
wire_enum!(
    /// `microsoft.graph.placeFeatureEnablement`.
    PlaceFeatureEnablement { /** Unknown. */ Unknown = "unknown", /** Enabled. */ Enabled = "enabled",
    /** Disabled. */ Disabled = "disabled", /** Reserved by Graph for evolution. */ UnknownFutureValue = "unknownFutureValue" }
);
wire_enum!(
    /// `microsoft.graph.changeType`.
    ChangeType { /** Created. */ Created = "created", /** Updated. */ Updated = "updated", /** Deleted. */ Deleted = "deleted" }
);
wire_enum!(
    /// `microsoft.graph.lifecycleEventType`.
    LifecycleEventType { /** Notifications were lost: resync. */ Missed = "missed",
    /** The subscription is gone: recreate and resync. */ SubscriptionRemoved = "subscriptionRemoved",
    /** Reauthorize or renew soon. */ ReauthorizationRequired = "reauthorizationRequired" }
);

/// `microsoft.graph.responseStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseStatus {
    /// The response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseType>,
    /// When it was given (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

/// `microsoft.graph.timeSlot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeSlot {
    /// Start.
    pub start: DateTimeTimeZone,
    /// End.
    pub end: DateTimeTimeZone,
}

/// `microsoft.graph.attendee` (with its bases `attendeeBase` and `recipient`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attendee {
    /// The address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<EmailAddress>,
    /// Required, optional or resource.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AttendeeType>,
    /// The attendee's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// A new time the attendee proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_new_time: Option<TimeSlot>,
}

impl Attendee {
    /// A room (or other resource) attendee.
    pub fn resource(address: &str, name: Option<&str>) -> Self {
        Self {
            email_address: Recipient::new(address, name).email_address,
            kind: Some(AttendeeType::Resource),
            ..Self::default()
        }
    }

    /// A required person.
    pub fn required(address: &str, name: Option<&str>) -> Self {
        Self {
            email_address: Recipient::new(address, name).email_address,
            kind: Some(AttendeeType::Required),
            ..Self::default()
        }
    }

    /// The address, if any.
    pub fn address(&self) -> Option<&str> {
        self.email_address.as_ref().and_then(|e| e.address.as_deref())
    }

    /// The response, if any.
    pub fn response(&self) -> Option<ResponseType> {
        self.status.as_ref().and_then(|s| s.response)
    }
}

/// `microsoft.graph.itemBody`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// Text or HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<BodyType>,
    /// The content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `microsoft.graph.physicalAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhysicalAddress {
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Country or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_or_region: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Street.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
}

/// `microsoft.graph.outlookGeoCoordinates`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlookGeoCoordinates {
    /// Accuracy (m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Altitude (m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude: Option<f64>,
    /// Altitude accuracy (m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude_accuracy: Option<f64>,
    /// Latitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

/// `microsoft.graph.location`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Street address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PhysicalAddress>,
    /// Coordinates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<OutlookGeoCoordinates>,
    /// Shown name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The place's mailbox (rooms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_email_address: Option<String>,
    /// Kind of location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_type: Option<LocationType>,
    /// URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_uri: Option<String>,
    /// Id (for internal use by Graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// Kind of `uniqueId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id_type: Option<LocationUniqueIdType>,
}

impl Location {
    /// A conference room by name and mailbox.
    pub fn room(display_name: &str, address: &str) -> Self {
        Self {
            display_name: Some(display_name.to_owned()),
            location_email_address: Some(address.to_owned()),
            location_type: Some(LocationType::ConferenceRoom),
            ..Self::default()
        }
    }
}

/// `microsoft.graph.recurrencePattern`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrencePattern {
    /// Pattern type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RecurrencePatternType>,
    /// Units between occurrences.
    #[serde(default)]
    pub interval: i32,
    /// Days of the week.
    #[serde(default)]
    pub days_of_week: Vec<DayOfWeek>,
    /// Day of the month.
    #[serde(default)]
    pub day_of_month: i32,
    /// Month (1–12).
    #[serde(default)]
    pub month: i32,
    /// First day of the week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_day_of_week: Option<DayOfWeek>,
    /// Which week of the month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<WeekIndex>,
}

/// `microsoft.graph.recurrenceRange`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecurrenceRange {
    /// Range type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RecurrenceRangeType>,
    /// First day (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
    /// Last day (`endDate` ranges).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_date")]
    pub end_date: Option<NaiveDate>,
    /// Number of occurrences (`numbered` ranges).
    #[serde(default)]
    pub number_of_occurrences: i32,
    /// Zone of the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence_time_zone: Option<String>,
}

/// Graph returns `"0001-01-01"` as the end date of ranges without one; read it as no date.
fn lenient_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let date = Option::<NaiveDate>::deserialize(d)?;
    Ok(date.filter(|d| *d > NaiveDate::MIN && d.format("%Y").to_string() != "0001"))
}

/// `microsoft.graph.patternedRecurrence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatternedRecurrence {
    /// The pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<RecurrencePattern>,
    /// The range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RecurrenceRange>,
}

fn weekday(d: DayOfWeek) -> chrono::Weekday {
    use chrono::Weekday as W;
    match d {
        DayOfWeek::Sunday => W::Sun,
        DayOfWeek::Monday => W::Mon,
        DayOfWeek::Tuesday => W::Tue,
        DayOfWeek::Wednesday => W::Wed,
        DayOfWeek::Thursday => W::Thu,
        DayOfWeek::Friday => W::Fri,
        DayOfWeek::Saturday => W::Sat,
    }
}

fn day_of_week(d: chrono::Weekday) -> DayOfWeek {
    use chrono::Weekday as W;
    match d {
        W::Sun => DayOfWeek::Sunday,
        W::Mon => DayOfWeek::Monday,
        W::Tue => DayOfWeek::Tuesday,
        W::Wed => DayOfWeek::Wednesday,
        W::Thu => DayOfWeek::Thursday,
        W::Fri => DayOfWeek::Friday,
        W::Sat => DayOfWeek::Saturday,
    }
}

impl PatternedRecurrence {
    /// Converts to orb-core's recurrence type (which expands series). Fails if a part Graph always sends
    /// is missing, or a number is negative.
    pub fn to_core(&self) -> Result<orb_core::recurrence::PatternedRecurrence, CoreError> {
        use orb_core::recurrence as r;
        let invalid = |reason: &str| CoreError::InvalidRecurrence { reason: reason.to_owned() };
        let p = self.pattern.as_ref().ok_or_else(|| invalid("the recurrence has no pattern"))?;
        let g = self.range.as_ref().ok_or_else(|| invalid("the recurrence has no range"))?;
        let num = |v: i32, what: &str| u32::try_from(v).map_err(|_| invalid(&format!("{what} is negative")));
        let kind = match p.kind.ok_or_else(|| invalid("the pattern has no type"))? {
            RecurrencePatternType::Daily => r::PatternType::Daily,
            RecurrencePatternType::Weekly => r::PatternType::Weekly,
            RecurrencePatternType::AbsoluteMonthly => r::PatternType::AbsoluteMonthly,
            RecurrencePatternType::RelativeMonthly => r::PatternType::RelativeMonthly,
            RecurrencePatternType::AbsoluteYearly => r::PatternType::AbsoluteYearly,
            RecurrencePatternType::RelativeYearly => r::PatternType::RelativeYearly,
        };
        let index = match p.index.unwrap_or(WeekIndex::First) {
            WeekIndex::First => r::WeekIndex::First,
            WeekIndex::Second => r::WeekIndex::Second,
            WeekIndex::Third => r::WeekIndex::Third,
            WeekIndex::Fourth => r::WeekIndex::Fourth,
            WeekIndex::Last => r::WeekIndex::Last,
        };
        let range_kind = match g.kind.ok_or_else(|| invalid("the range has no type"))? {
            RecurrenceRangeType::EndDate => r::RangeType::EndDate,
            RecurrenceRangeType::NoEnd => r::RangeType::NoEnd,
            RecurrenceRangeType::Numbered => r::RangeType::Numbered,
        };
        Ok(r::PatternedRecurrence {
            pattern: r::RecurrencePattern {
                kind,
                interval: num(p.interval, "interval")?,
                days_of_week: p.days_of_week.iter().copied().map(weekday).collect(),
                day_of_month: num(p.day_of_month, "dayOfMonth")?,
                month: num(p.month, "month")?,
                first_day_of_week: weekday(p.first_day_of_week.unwrap_or(DayOfWeek::Sunday)),
                index,
            },
            range: r::RecurrenceRange {
                kind: range_kind,
                start_date: g.start_date.ok_or_else(|| invalid("the range has no startDate"))?,
                end_date: g.end_date,
                number_of_occurrences: num(g.number_of_occurrences, "numberOfOccurrences")?,
                recurrence_time_zone: g.recurrence_time_zone.clone(),
            },
        })
    }

    /// The wire form of orb-core's recurrence type.
    pub fn from_core(rec: &orb_core::recurrence::PatternedRecurrence) -> Self {
        use orb_core::recurrence as r;
        let p = &rec.pattern;
        let kind = match p.kind {
            r::PatternType::Daily => RecurrencePatternType::Daily,
            r::PatternType::Weekly => RecurrencePatternType::Weekly,
            r::PatternType::AbsoluteMonthly => RecurrencePatternType::AbsoluteMonthly,
            r::PatternType::RelativeMonthly => RecurrencePatternType::RelativeMonthly,
            r::PatternType::AbsoluteYearly => RecurrencePatternType::AbsoluteYearly,
            r::PatternType::RelativeYearly => RecurrencePatternType::RelativeYearly,
        };
        let index = match p.index {
            r::WeekIndex::First => WeekIndex::First,
            r::WeekIndex::Second => WeekIndex::Second,
            r::WeekIndex::Third => WeekIndex::Third,
            r::WeekIndex::Fourth => WeekIndex::Fourth,
            r::WeekIndex::Last => WeekIndex::Last,
        };
        let range_kind = match rec.range.kind {
            r::RangeType::EndDate => RecurrenceRangeType::EndDate,
            r::RangeType::NoEnd => RecurrenceRangeType::NoEnd,
            r::RangeType::Numbered => RecurrenceRangeType::Numbered,
        };
        let int = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        Self {
            pattern: Some(RecurrencePattern {
                kind: Some(kind),
                interval: int(p.interval),
                days_of_week: p.days_of_week.iter().copied().map(day_of_week).collect(),
                day_of_month: int(p.day_of_month),
                month: int(p.month),
                first_day_of_week: Some(day_of_week(p.first_day_of_week)),
                index: Some(index),
            }),
            range: Some(RecurrenceRange {
                kind: Some(range_kind),
                start_date: Some(rec.range.start_date),
                end_date: rec.range.end_date,
                number_of_occurrences: int(rec.range.number_of_occurrences),
                recurrence_time_zone: rec.range.recurrence_time_zone.clone(),
            }),
        }
    }
}

/// `microsoft.graph.singleValueLegacyExtendedProperty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleValueExtendedProperty {
    /// Property id, e.g. `String {guid} Name OrbMatchId`.
    pub id: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The `@removed` annotation of a delta item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// `deleted` (or `changed` for items that left the range).
    pub reason: String,
}

/// `microsoft.graph.event` (with `outlookItem` and `entity`). See the module docs for why every field is
/// optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `@odata.type`, present on delta items.
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    /// `@odata.etag` (`W/"<changeKey>"`).
    #[serde(rename = "@odata.etag", default, skip_serializing_if = "Option::is_none")]
    pub odata_etag: Option<String>,
    /// Set on delta items for deleted events (then only `id` is present).
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
    /// Mailbox-specific id (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Categories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<String>>,
    /// Version of the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    /// Created (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time: Option<DateTime<Utc>>,
    /// Last modified (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<DateTime<Utc>>,
    /// Whether attendees may propose new times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_new_time_proposals: Option<bool>,
    /// Attendees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attendees: Option<Vec<Attendee>>,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    /// Start of the body as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    /// Ids of cancelled occurrences (series masters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_occurrences: Option<Vec<String>>,
    /// End.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTimeTimeZone>,
    /// Has attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_attachments: Option<bool>,
    /// Attendees hidden from each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide_attendees: Option<bool>,
    /// Same in every calendar holding the meeting; differs per occurrence.
    #[serde(rename = "iCalUId", default, skip_serializing_if = "Option::is_none")]
    pub ical_uid: Option<String>,
    /// Importance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<Importance>,
    /// All-day event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_all_day: Option<bool>,
    /// Cancelled by the organizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_cancelled: Option<bool>,
    /// Draft (not yet sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_draft: Option<bool>,
    /// Online meeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_online_meeting: Option<bool>,
    /// Whether this mailbox organizes the meeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_organizer: Option<bool>,
    /// Reminder on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_reminder_on: Option<bool>,
    /// Location (setting it replaces `locations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Locations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<Vec<Location>>,
    /// Online meeting URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_meeting_url: Option<String>,
    /// The organizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Recipient>,
    /// Zone the end was given in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_end_time_zone: Option<String>,
    /// Original start of an occurrence or exception (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_start: Option<DateTime<Utc>>,
    /// Zone the start was given in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_start_time_zone: Option<String>,
    /// Recurrence (series masters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<PatternedRecurrence>,
    /// Reminder lead time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_minutes_before_start: Option<i32>,
    /// Whether responses are requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_requested: Option<bool>,
    /// This mailbox's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    /// Sensitivity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<Sensitivity>,
    /// The series master's id (occurrences, exceptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_master_id: Option<String>,
    /// Free/busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as: Option<FreeBusyStatus>,
    /// Start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTimeTimeZone>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Client idempotency key for create; only returned if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Kind of event.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventType>,
    /// Outlook on the web link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_link: Option<String>,
    /// Single-value extended properties (only when `$expand`ed or set in a request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<SingleValueExtendedProperty>>,
}

impl Event {
    /// The value of the single-value extended property `id`, if present.
    pub fn extended_property(&self, id: &str) -> Option<&str> {
        self.single_value_extended_properties
            .as_ref()?
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(id))
            .and_then(|p| p.value.as_deref())
    }

    /// The response of the attendee with `address` (case-insensitive), if that attendee is present.
    pub fn attendee_response(&self, address: &str) -> Option<ResponseType> {
        self.attendees
            .as_ref()?
            .iter()
            .find(|a| a.address().is_some_and(|a| a.eq_ignore_ascii_case(address)))
            .map(|a| a.response().unwrap_or(ResponseType::None))
    }
}

/// A collection page: `value` plus paging links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collection<T> {
    /// `@odata.context`.
    #[serde(rename = "@odata.context", default, skip_serializing_if = "Option::is_none")]
    pub odata_context: Option<String>,
    /// The items.
    pub value: Vec<T>,
    /// Next page.
    #[serde(rename = "@odata.nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    /// End of a delta round: the link for the next round.
    #[serde(rename = "@odata.deltaLink", default, skip_serializing_if = "Option::is_none")]
    pub delta_link: Option<String>,
}

impl<T> Collection<T> {
    /// A single page with no links.
    pub fn of(value: Vec<T>) -> Self {
        Self { odata_context: None, value, next_link: None, delta_link: None }
    }
}

/// Leniently reads an Int32 that documentation examples sometimes show as a string (`"capacity": "50"`).
fn lenient_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(i32),
        Text(String),
    }
    Ok(match Option::<NumOrText>::deserialize(d)? {
        None => None,
        Some(NumOrText::Num(n)) => Some(n),
        Some(NumOrText::Text(t)) => t.trim().parse().ok(),
    })
}

/// `microsoft.graph.room` (with `place` and `entity`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// `@odata.type` (`#microsoft.graph.room`).
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    /// Id (not immutable: key rooms by `emailAddress`).
    pub id: String,
    /// Name.
    pub display_name: String,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PhysicalAddress>,
    /// Coordinates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_coordinates: Option<OutlookGeoCoordinates>,
    /// Wheelchair accessible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_wheel_chair_accessible: Option<bool>,
    /// Label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Parent place id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Immutable place id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_id: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Audio device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_device_name: Option<String>,
    /// Booking type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_type: Option<BookingType>,
    /// Building.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
    /// Capacity.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_i32")]
    pub capacity: Option<i32>,
    /// Display device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_device_name: Option<String>,
    /// The room mailbox: the stable key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    /// Floor label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_label: Option<String>,
    /// Floor number.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_i32")]
    pub floor_number: Option<i32>,
    /// Nickname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Teams state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams_enabled_state: Option<PlaceFeatureEnablement>,
    /// Video device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_device_name: Option<String>,
}

/// `microsoft.graph.internetMessageHeader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetMessageHeader {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// `microsoft.graph.message`: the part ORB sends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Id (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    /// From.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Recipient>,
    /// To.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_recipients: Option<Vec<Recipient>>,
    /// Cc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc_recipients: Option<Vec<Recipient>>,
    /// Bcc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcc_recipients: Option<Vec<Recipient>>,
    /// Reply-to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Vec<Recipient>>,
    /// Custom `x-` headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_message_headers: Option<Vec<InternetMessageHeader>>,
    /// Sent (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_date_time: Option<DateTime<Utc>>,
}

/// Body of `POST /users/{id}/sendMail` (CSDL parameters `Message`, `SaveToSentItems`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMailRequest {
    /// The message.
    #[serde(alias = "Message")]
    pub message: Message,
    /// Keep a copy in Sent Items (Graph's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "SaveToSentItems")]
    pub save_to_sent_items: Option<bool>,
}

/// Body of `POST …/events/{id}/cancel` (CSDL parameter `Comment`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CancelRequest {
    /// Text sent to the attendees with the cancellation.
    #[serde(rename = "Comment", alias = "comment", default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Graph refuses a subscription whose `clientState` is longer (reference §2.1).
pub const CLIENT_STATE_MAX_LEN: usize = 128;
/// Expirations closer than this are silently raised to now + 45 minutes (reference §2.1).
pub const SUBSCRIPTION_MIN_LIFETIME_MINUTES: i64 = 45;
/// Longest lifetime of a basic Outlook `event` subscription: 10,080 minutes (reference §2.2).
pub const EVENT_SUBSCRIPTION_MAX_MINUTES: i64 = 10_080;
/// Longest lifetime of an Outlook subscription with resource data: 1,440 minutes (reference §2.2).
pub const EVENT_RICH_SUBSCRIPTION_MAX_MINUTES: i64 = 1_440;

/// `microsoft.graph.subscription`. `Debug` redacts `clientState`.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Id (GUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// App that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// `created,updated,deleted` (comma list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
    /// Secret echoed in notifications (never returned by GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_state: Option<String>,
    /// Service principal of the creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_id: Option<String>,
    /// Base64 DER of the encryption certificate (rich notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate: Option<String>,
    /// ORB's id for that certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate_id: Option<String>,
    /// Expiry (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date_time: Option<DateTime<Utc>>,
    /// Rich notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_resource_data: Option<bool>,
    /// TLS version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_supported_tls_version: Option<String>,
    /// Lifecycle URL (creation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_notification_url: Option<String>,
    /// Query options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_query_options: Option<String>,
    /// Webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_url: Option<String>,
    /// App id used for validation tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_url_app_id: Option<String>,
    /// Resource path, e.g. `users/{id}/events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("resource", &self.resource)
            .field("change_type", &self.change_type)
            .field("notification_url", &self.notification_url)
            .field("lifecycle_notification_url", &self.lifecycle_notification_url)
            .field("expiration_date_time", &self.expiration_date_time)
            .field("include_resource_data", &self.include_resource_data)
            .field("encryption_certificate_id", &self.encryption_certificate_id)
            .field("client_state", &self.client_state.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

/// `microsoft.graph.changeNotificationEncryptedContent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotificationEncryptedContent {
    /// Base64 AES-CBC ciphertext.
    pub data: String,
    /// Base64 RSA-OAEP-encrypted symmetric key.
    pub data_key: String,
    /// Base64 HMAC-SHA256 of the decoded data.
    pub data_signature: String,
    /// The subscription's certificate id.
    pub encryption_certificate_id: String,
    /// Upper-case hex SHA-1 thumbprint of the certificate.
    pub encryption_certificate_thumbprint: String,
}

/// `microsoft.graph.resourceData` (open type): the ids of the changed item.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResourceData {
    /// `@odata.type`, e.g. `#Microsoft.Graph.Event`.
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    /// `@odata.id` (resource path).
    #[serde(rename = "@odata.id", default, skip_serializing_if = "Option::is_none")]
    pub odata_id: Option<String>,
    /// `@odata.etag`.
    #[serde(rename = "@odata.etag", default, skip_serializing_if = "Option::is_none")]
    pub odata_etag: Option<String>,
    /// Item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Anything else.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// `microsoft.graph.changeNotification`. `resource`/`changeType` are optional because lifecycle items
/// carry neither (the CSDL says otherwise; the reference §5 explains). `Debug` redacts `clientState`.
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotification {
    /// Change type (resource notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<ChangeType>,
    /// The subscription's clientState.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_state: Option<String>,
    /// Encrypted resource (rich notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<ChangeNotificationEncryptedContent>,
    /// Notification id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Lifecycle event (lifecycle notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_event: Option<LifecycleEventType>,
    /// Resource path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Ids of the changed resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_data: Option<ResourceData>,
    /// The subscription's expiry (any offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_expiration_date_time: Option<DateTime<Utc>>,
    /// Subscription id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// Tenant id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

impl std::fmt::Debug for ChangeNotification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeNotification")
            .field("subscription_id", &self.subscription_id)
            .field("tenant_id", &self.tenant_id)
            .field("change_type", &self.change_type)
            .field("lifecycle_event", &self.lifecycle_event)
            .field("resource", &self.resource)
            .field("resource_data", &self.resource_data)
            .field("encrypted_content", &self.encrypted_content.is_some())
            .field("subscription_expiration_date_time", &self.subscription_expiration_date_time)
            .field("client_state", &self.client_state.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

/// `microsoft.graph.changeNotificationCollection`: the body Graph POSTs to a webhook.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeNotificationCollection {
    /// JWTs to validate (rich notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_tokens: Option<Vec<String>>,
    /// The notifications.
    pub value: Vec<ChangeNotification>,
}

/// Token endpoint success body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Extended lifetime (seen in practice, not documented).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_expires_in: Option<u64>,
    /// The opaque token.
    pub access_token: String,
}

/// Token endpoint error body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenErrorResponse {
    /// OAuth error code, e.g. `invalid_client`.
    pub error: String,
    /// Human-readable text (`AADSTS…: …`).
    #[serde(default)]
    pub error_description: String,
    /// AADSTS codes.
    #[serde(default)]
    pub error_codes: Vec<i64>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Correlation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// Graph's error body: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Code, e.g. `ErrorItemNotFound`, `syncStateNotFound`, `ApplicationThrottled`.
    pub code: String,
    /// Message.
    #[serde(default)]
    pub message: String,
}

impl ErrorResponse {
    /// An error body.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: code.to_owned(), message: message.into() } }
    }
}

/// One sub-request of `POST /$batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequestItem {
    /// Unique (case-insensitive) within the batch.
    pub id: String,
    /// HTTP method.
    pub method: String,
    /// Relative URL (`/users/…`).
    pub url: String,
    /// Headers (must contain `Content-Type` when there is a body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Ids this one waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
}

/// Body of `POST /$batch` (at most [`BATCH_MAX`] requests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// The sub-requests.
    pub requests: Vec<BatchRequestItem>,
}

/// Graph's limit on sub-requests per batch.
pub const BATCH_MAX: usize = 20;

/// One sub-response of `$batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponseItem {
    /// The sub-request's id.
    pub id: String,
    /// HTTP status.
    pub status: u16,
    /// Headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// Body of the `$batch` response (any order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// The sub-responses.
    pub responses: Vec<BatchResponseItem>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check<T: Serialize + for<'de> Deserialize<'de> + std::fmt::Debug + PartialEq>(
        wire: serde_json::Value,
    ) {
        let parsed: T = serde_json::from_value(wire.clone()).expect("parses");
        let back = serde_json::to_value(&parsed).expect("serialises");
        assert_eq!(back, wire, "round trip of {parsed:?}");
    }

    #[test]
    fn wire_round_trips() {
        check::<Event>(json!({
            "@odata.etag": "W/\"abc\"", "id": "AAMk1", "subject": "Review", "iCalUId": "uid-1",
            "type": "singleInstance", "isCancelled": false, "transactionId": "m-1",
            "start": {"dateTime": "2026-09-01T09:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-09-01T10:00:00.0000000", "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": "r@x.com", "name": "R"}, "type": "resource",
                           "status": {"response": "accepted", "time": "2026-08-01T10:00:00Z"}}],
            "organizer": {"emailAddress": {"address": "o@x.com"}},
            "location": {"displayName": "R", "locationEmailAddress": "r@x.com", "locationType": "conferenceRoom"},
            "singleValueExtendedProperties": [{"id": "String {x} Name OrbMatchId", "value": "m-1"}],
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "dayOfMonth": 0,
                "month": 0, "firstDayOfWeek": "sunday", "index": "first"},
                "range": {"type": "numbered", "startDate": "2026-09-07", "numberOfOccurrences": 3}}
        }));
        check::<Event>(
            json!({"@odata.type": "#microsoft.graph.event", "id": "AAMk2", "@removed": {"reason": "deleted"}}),
        );
        check::<Collection<Event>>(json!({"value": [], "@odata.deltaLink": "https://x/delta?$deltatoken=1"}));
        check::<ChangeNotificationCollection>(
            json!({"value": [{"subscriptionId": "s", "lifecycleEvent": "missed",
            "subscriptionExpirationDateTime": "2026-09-03T10:00:00Z", "tenantId": "t", "clientState": "c"}]}),
        );
        check::<Room>(json!({"id": "r1", "displayName": "Room 1", "emailAddress": "r1@x.com", "capacity": 8,
            "bookingType": "standard", "teamsEnabledState": "unknown", "nickname": "Room 1"}));
    }

    #[test]
    fn closed_enums_refuse_unknown_values() {
        assert!(serde_json::from_value::<Attendee>(json!({"type": "chair"})).is_err());
        assert!(serde_json::from_value::<Event>(json!({"type": "occurrenceish"})).is_err());
        for t in AttendeeType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
    }

    #[test]
    fn lenient_reads() {
        let room: Room =
            serde_json::from_value(json!({"id": "r", "displayName": "R", "capacity": "50"})).unwrap();
        assert_eq!(room.capacity, Some(50));
        let range: RecurrenceRange = serde_json::from_value(
            json!({"type": "noEnd", "startDate": "2026-01-05", "endDate": "0001-01-01"}),
        )
        .unwrap();
        assert_eq!(range.end_date, None);
        let when: ChangeNotification = serde_json::from_value(
            json!({"subscriptionExpirationDateTime": "2022-01-02T03:12:18.2257768+05:30"}),
        )
        .unwrap();
        assert_eq!(
            when.subscription_expiration_date_time.unwrap().to_rfc3339(),
            "2022-01-01T21:42:18.225776800+00:00"
        );
    }

    #[test]
    fn date_time_time_zone_conversions() {
        let at = DateTime::parse_from_rfc3339("2026-07-01T07:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(DateTimeTimeZone::from_utc(at).date_time, "2026-07-01T07:00:00.0000000");
        let cet = DateTimeTimeZone::in_zone(at, "W. Europe Standard Time").unwrap();
        assert_eq!(cet.date_time, "2026-07-01T09:00:00.0000000");
        assert_eq!(cet.to_utc().unwrap(), at);
        let bare = DateTimeTimeZone { date_time: "2026-07-01T07:00:00".into(), time_zone: None };
        assert_eq!(bare.to_utc().unwrap(), at);
        let bad =
            DateTimeTimeZone { date_time: "2026-07-01T07:00:00".into(), time_zone: Some("Mars".into()) };
        assert!(bad.to_utc().is_err());
    }

    #[test]
    fn recurrence_converts_to_core_and_back() {
        let wire: PatternedRecurrence = serde_json::from_value(json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "sunday"},
            "range": {"type": "endDate", "startDate": "2026-09-07", "endDate": "2026-09-30"}
        }))
        .unwrap();
        let core = wire.to_core().unwrap();
        assert_eq!(core.pattern.days_of_week, vec![chrono::Weekday::Mon, chrono::Weekday::Wed]);
        let again = PatternedRecurrence::from_core(&core);
        assert_eq!(again.to_core().unwrap(), core);
        let missing = PatternedRecurrence { pattern: None, range: wire.range.clone() };
        assert!(missing.to_core().is_err());
    }
}
