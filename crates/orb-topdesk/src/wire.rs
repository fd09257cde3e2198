//! TOPdesk wire types: the JSON bodies of the reservations 2.0.0 and supporting-files 2.7.11 APIs.
//!
//! Field names, casing and nesting follow the spec extracts in `testdata/topdesk-openapi/` exactly (the
//! schema name is given on each type). The specs mark nothing as nullable and almost nothing as required,
//! so every response field is an `Option`: absent (or `null`, which some TOPdesk versions send) reads as
//! `None`, and `None` is never written — a body this crate serialises never contains `null`.
//!
//! Shared by the client ([`crate::TopdeskClient`]) and the TOPdesk emulator in `orb-emulators`, so both
//! speak the same shapes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use orb_core::TopdeskLocationId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }
    };
}

uuid_newtype!(
    /// A reservation's `id` (UUID). The human-readable `number` is a separate field.
    ReservationId
);
uuid_newtype!(
    /// A person card's `id` (UUID).
    PersonId
);
uuid_newtype!(
    /// A series' `id` (`series.id` on every occurrence).
    ReservationSeriesId
);

/// A reservation's `status` (`ReservationDto.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReservationStatus {
    /// A request waiting for approval.
    Request,
    /// A rejected request (terminal).
    RejectedRequest,
    /// A planned reservation.
    Planned,
    /// A cancelled reservation (terminal; TOPdesk never deletes).
    Cancelled,
    /// A planned reservation that overlaps another one in the same room.
    ConflictingPlanned,
    /// A request that overlaps another reservation in the same room.
    ConflictingRequest,
}

impl ReservationStatus {
    /// Whether the reservation still occupies its facilities (not cancelled or rejected).
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Cancelled | Self::RejectedRequest)
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::RejectedRequest => "rejectedRequest",
            Self::Planned => "planned",
            Self::Cancelled => "cancelled",
            Self::ConflictingPlanned => "conflictingPlanned",
            Self::ConflictingRequest => "conflictingRequest",
        }
    }
}

/// `{id, name}` references: spec schemas `Operator`, `Branch`, `Search List`, `SearchlistDto`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdName {
    /// UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `Requester` (also used for `reservedForOther`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    /// Person id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<PersonId>,
    /// The person's branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<IdName>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail as on the person card (spelling as TOPdesk has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Telephone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
}

/// `ParticipantDto`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantDto {
    /// Person or visitor id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Card number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `ParticipantsDto`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantsDto {
    /// Participating persons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persons: Option<Vec<ParticipantDto>>,
    /// Participating visitors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitors: Option<Vec<ParticipantDto>>,
}

/// `Reserved Location`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedLocation {
    /// Location id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<TopdeskLocationId>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Room number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_number: Option<String>,
    /// Branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<IdName>,
    /// Room type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_type: Option<IdName>,
}

/// `Reserved Object` (legacy configuration object).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedObject {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Type.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub kind: Option<IdName>,
    /// Make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<IdName>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<IdName>,
}

/// `Reserved Asset` (Asset Management; its id is a string, not a UUID).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedAsset {
    /// Asset id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Asset name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `Reserved Service` (catering etc. on a facility).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedService {
    /// Reserved-service id (used to remove it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Catalogue service id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Uuid>,
    /// Amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i32>,
    /// Delivery time.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub delivery_time: Option<DateTime<Utc>>,
    /// Delivery location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_location_id: Option<Uuid>,
    /// Operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_id: Option<Uuid>,
    /// Supplier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier_id: Option<Uuid>,
    /// Total costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_costs: Option<f64>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
    /// Closed date.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub closed_date: Option<DateTime<Utc>>,
}

/// `Reserved Facility`: exactly one of `location`, `object` or `asset` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservedFacility {
    /// Id of this facility line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Planned start (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub planned_start_date: Option<DateTime<Utc>>,
    /// Planned end (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub planned_end_date: Option<DateTime<Utc>>,
    /// Start including the facility's block (set-up) time: the room is busy from here.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub start_date_block: Option<DateTime<Utc>>,
    /// End including the facility's block (clean-up) time: the room is busy until here.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub end_date_block: Option<DateTime<Utc>>,
    /// When the facility was issued.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub issue_date: Option<DateTime<Utc>>,
    /// When the facility was returned.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub return_date: Option<DateTime<Utc>>,
    /// The room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ReservedLocation>,
    /// A legacy object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ReservedObject>,
    /// An asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<ReservedAsset>,
    /// Services on this facility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_services: Option<Vec<ReservedService>>,
}

/// `Event`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRef {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Brief description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief_description: Option<String>,
}

/// `SeriesDto`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesDto {
    /// The series id shared by all occurrences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ReservationSeriesId>,
}

/// `ExternalLinkDto`: `id` (≤ 450 characters) and `type` (a non-zero integer as a string) are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalLinkDto {
    /// The id in the external system.
    pub id: String,
    /// The link type (non-zero integer as a string), one per integration.
    #[serde(rename = "type")]
    pub kind: String,
    /// Time of the last synchronisation.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub date: Option<DateTime<Utc>>,
}

/// `Optional Fields Tab` / `OptionalFieldsWriteDto`: keys `boolean1`…`boolean5`, `number1`…, `date1`…,
/// `text1`…, `memo1`…, `searchlist1`… (a search list is `{id, name}`; on write `{id}` or `{name}`).
pub type OptionalFields = BTreeMap<String, serde_json::Value>;

/// The keys an optional-fields tab may hold.
pub fn is_optional_field_key(key: &str) -> bool {
    ["boolean", "number", "date", "text", "memo", "searchlist"]
        .iter()
        .any(|prefix| key.strip_prefix(prefix).is_some_and(|n| matches!(n, "1" | "2" | "3" | "4" | "5")))
}

/// `ReservationDto`: a reservation as TOPdesk returns it (all fields, or those named in `$fields`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationDto {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<ReservationId>,
    /// Status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReservationStatus>,
    /// Human-readable number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Subject (≤ 100 characters on write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief_description: Option<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Archived flag (separate from the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// The person the reservation is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Requester>,
    /// Reserved for another person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_for_other: Option<Requester>,
    /// Handling operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<IdName>,
    /// Handling operator group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_group: Option<IdName>,
    /// Participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<ParticipantsDto>,
    /// Number of persons attending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_persons: Option<i32>,
    /// Planned start (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub planned_start_date: Option<DateTime<Utc>>,
    /// Planned end (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub planned_end_date: Option<DateTime<Utc>>,
    /// Reserved rooms, objects, assets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_facilities: Option<Vec<ReservedFacility>>,
    /// Event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventRef>,
    /// Processing status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_status: Option<IdName>,
    /// Series membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesDto>,
    /// External links (at most one can be set through the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_links: Option<Vec<ExternalLinkDto>>,
    /// Optional fields, tab 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_fields1: Option<OptionalFields>,
    /// Optional fields, tab 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_fields2: Option<OptionalFields>,
    /// Last modification (UTC); changes on every change.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub modification_date: Option<DateTime<Utc>>,
}

impl ReservationDto {
    /// The rooms (location ids) this reservation holds.
    pub fn location_ids(&self) -> Vec<TopdeskLocationId> {
        self.reserved_facilities
            .iter()
            .flatten()
            .filter_map(|f| f.location.as_ref().and_then(|l| l.id.clone()))
            .collect()
    }
}

/// `List of Reservations` (`{"results": [...]}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReservationList {
    /// The reservations, ordered by `plannedStartDate`.
    #[serde(default)]
    pub results: Vec<ReservationDto>,
}

/// `Lookup`: by id only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    /// The id (UUID text).
    pub id: String,
}

impl Lookup {
    /// A lookup by id.
    pub fn id(id: impl fmt::Display) -> Self {
        Self { id: id.to_string() }
    }
}

/// `LookupByName`: by `id` or by `name` (an ambiguous name is a 400).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupByName {
    /// By id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// By name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `LookupByNumber`: by `id` or card `number` (visitors).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupByNumber {
    /// By id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// By card number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// `EditParticipantsDto` (create, `participants/add`, `participants/remove`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditParticipantsDto {
    /// Persons by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persons: Option<Vec<Lookup>>,
    /// Visitors by id or card number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitors: Option<Vec<LookupByNumber>>,
}

/// `ReservedFacilityLookup` (move) / `ReservedFacilityLookupWithServices` (create).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedFacilityLookup {
    /// A room by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Lookup>,
    /// A legacy object by id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<LookupByName>,
    /// An asset by id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<LookupByName>,
    /// Extra services (create only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<LookupByName>>,
}

impl ReservedFacilityLookup {
    /// A room by its location id.
    pub fn location(id: &TopdeskLocationId) -> Self {
        Self { location: Some(Lookup { id: id.as_str().to_owned() }), ..Self::default() }
    }
}

/// `CreateReservationDto` (`POST /reservations`). Required: `requester`, `plannedStartDate`,
/// `plannedEndDate`, `reservedFacilities` (at least one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateReservationDto {
    /// Subject, at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief_description: Option<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// `planned` (default) or `request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReservationStatus>,
    /// The person (by id).
    pub requester: Lookup,
    /// Operator group (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_group: Option<Lookup>,
    /// Operator (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Lookup>,
    /// Processing status (by id or name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_status: Option<LookupByName>,
    /// Participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<EditParticipantsDto>,
    /// Number of persons (0–99999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_persons: Option<i32>,
    /// Start (UTC; truncated to whole minutes by TOPdesk).
    #[serde(with = "required_datetime")]
    pub planned_start_date: DateTime<Utc>,
    /// End (UTC; truncated to whole minutes by TOPdesk).
    #[serde(with = "required_datetime")]
    pub planned_end_date: DateTime<Utc>,
    /// The facilities (rooms).
    pub reserved_facilities: Vec<ReservedFacilityLookup>,
    /// The external link (ORB's match id): set here, immutable afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_link: Option<ExternalLinkDto>,
    /// Optional fields, tab 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_fields1: Option<OptionalFields>,
    /// Optional fields, tab 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_fields2: Option<OptionalFields>,
}

impl CreateReservationDto {
    /// A planned reservation of one room for `requester`; everything else unset.
    pub fn new(
        requester: PersonId,
        room: &TopdeskLocationId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Self {
        Self {
            brief_description: None,
            notes: None,
            status: None,
            requester: Lookup::id(requester),
            operator_group: None,
            operator: None,
            processing_status: None,
            participants: None,
            number_of_persons: None,
            planned_start_date: start,
            planned_end_date: end,
            reserved_facilities: vec![ReservedFacilityLookup::location(room)],
            external_link: None,
            optional_fields1: None,
            optional_fields2: None,
        }
    }
}

/// `UpdateReservationDto` (`PATCH /reservations/{identifier}`): only descriptive fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateReservationDto {
    /// Subject, at most 100 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brief_description: Option<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Number of persons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_persons: Option<i32>,
    /// Requester (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Lookup>,
    /// Operator group (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_group: Option<Lookup>,
    /// Operator (by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Lookup>,
    /// Processing status (by id or name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_status: Option<LookupByName>,
    /// An external link; only allowed when none is set yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_link: Option<ExternalLinkDto>,
    /// Optional fields, tab 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_fields1: Option<OptionalFields>,
    /// Optional fields, tab 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_fields2: Option<OptionalFields>,
}

/// `RescheduleReservationDto`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RescheduleReservationDto {
    /// New start (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub planned_start_date: Option<DateTime<Utc>>,
    /// New end (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub planned_end_date: Option<DateTime<Utc>>,
}

/// `MoveFacilityDto` (`reservedFacilities/move`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveFacilityDto {
    /// The facility to replace.
    pub from: ReservedFacilityLookup,
    /// Its replacement.
    pub to: ReservedFacilityLookup,
}

/// `RecurrencyDatesDto` (`makeRecurrent/dates`, `occurrences/dates`): `yyyy-MM-dd` dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecurrencyDatesDto {
    /// The dates.
    pub dates: Vec<NaiveDate>,
}

/// `Location` of the reservations API (`GET /reservableLocations`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservableLocation {
    /// Location id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<TopdeskLocationId>,
    /// Branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<IdName>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Room number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_number: Option<String>,
    /// Capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i32>,
}

/// `List of Locations` (`{"results": [...]}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReservableLocationList {
    /// The reservable, non-archived locations.
    #[serde(default)]
    pub results: Vec<ReservableLocation>,
}

/// `Envelope` of search-list entries (cancellation reasons …): `{"results": [{id, name}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchListEnvelope {
    /// The entries.
    #[serde(default)]
    pub results: Vec<IdName>,
}

/// `RoomReservationManagementDto` (the part of a location's card about reserving it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomReservationManagementDto {
    /// Whether the room can be reserved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservable: Option<bool>,
    /// Whether it is issued (handed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuable: Option<bool>,
    /// Block (set-up/clean-up) time in minutes, before and after each reservation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_time: Option<i32>,
    /// Whether reservations need approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_approval: Option<bool>,
}

/// `ExtendedLocationDto` (supporting files `GET /locations`), the fields ORB reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedLocationDto {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<TopdeskLocationId>,
    /// Status text (archived locations differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Name (≤ 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Room number (≤ 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_number: Option<String>,
    /// Capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i32>,
    /// Branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<IdName>,
    /// Reservation settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation_management: Option<RoomReservationManagementDto>,
    /// Optional fields, tab 1 (e.g. a room mailbox in `text1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_fields1: Option<OptionalFields>,
    /// Last modification.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::datetime::option")]
    pub modification_date: Option<DateTime<Utc>>,
}

/// `BranchV2Dto`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchV2Dto {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `PersonV2Dto` (persons 2.x), the fields ORB reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonV2Dto {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<PersonId>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Surname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sur_name: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_name: Option<String>,
    /// Archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<bool>,
    /// E-mail as on the card (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// TOPdesk login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tas_login_name: Option<String>,
    /// Network login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_login_name: Option<String>,
    /// Employee number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_number: Option<String>,
    /// Branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<BranchV2Dto>,
}

/// `ListOfPersonsV2`: `next` is a link to the next page when there is one (absent or `null` otherwise).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListOfPersonsV2 {
    /// The persons.
    #[serde(default)]
    pub item: Vec<PersonV2Dto>,
    /// How many were returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    /// Link to the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// `OperatorDto.accountType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountType {
    /// A customer's operator account.
    #[serde(rename = "regular")]
    Regular,
    /// TOPdesk's own support account.
    #[serde(rename = "TOPdesk")]
    Topdesk,
}

/// `OperatorDto` (`GET /operators/current`), the fields ORB reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorDto {
    /// Id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Status text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Account type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<AccountType>,
    /// Whether this is a dedicated API account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_account: Option<bool>,
    /// Whether the account has application passwords.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_application_passwords: Option<bool>,
    /// Surname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sur_name: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_name: Option<String>,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_name: Option<String>,
    /// May log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_permission: Option<bool>,
    /// Reservations operator task flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations_operator: Option<bool>,
}

/// `ErrorDescription`: `errorCode` is stable; `errorMessage` is for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDescription {
    /// Stable code.
    pub error_code: String,
    /// Fields or parameters the error applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applies_to: Option<Vec<String>>,
    /// Human-readable text (may change without notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// `ErrorResponseEntity` (error shape 1: reservations API and newer services).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponseEntity {
    /// The errors.
    pub errors: Vec<ErrorDescription>,
}

/// `ErrorResponse` (error shape 2: supporting-files classic endpoints send an array of these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDto {
    /// The REST API version.
    pub version: String,
}

mod required_datetime {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::datetime::format(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::datetime::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a TOPdesk date-time: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_never_written_and_names_follow_the_spec() {
        let dto = ReservationDto {
            brief_description: Some("Sync".into()),
            reserved_facilities: Some(vec![ReservedFacility {
                start_date_block: crate::datetime::parse("2025-03-10T08:45:00Z"),
                ..ReservedFacility::default()
            }]),
            external_links: Some(vec![ExternalLinkDto { id: "m-1".into(), kind: "7".into(), date: None }]),
            status: Some(ReservationStatus::ConflictingPlanned),
            ..ReservationDto::default()
        };
        let json = serde_json::to_value(&dto).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "status": "conflictingPlanned",
                "briefDescription": "Sync",
                "reservedFacilities": [{"startDateBlock": "2025-03-10T08:45:00.000Z"}],
                "externalLinks": [{"id": "m-1", "type": "7"}],
            })
        );
    }

    #[test]
    fn reads_nulls_and_foreign_date_spellings() {
        let dto: ReservationDto = serde_json::from_value(serde_json::json!({
            "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "operator": null,
            "plannedStartDate": "2025-03-10T10:00:00.000+0100",
            "unknownFutureField": 1
        }))
        .unwrap();
        assert!(dto.operator.is_none());
        assert_eq!(dto.planned_start_date, crate::datetime::parse("2025-03-10T09:00:00Z"));
    }

    #[test]
    fn optional_field_keys() {
        for key in ["boolean1", "number5", "date3", "text1", "memo2", "searchlist4"] {
            assert!(is_optional_field_key(key), "{key}");
        }
        for key in ["boolean0", "text6", "memo", "other1"] {
            assert!(!is_optional_field_key(key), "{key}");
        }
    }
}
