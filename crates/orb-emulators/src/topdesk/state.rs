//! The emulator's in-memory TOPdesk: accounts, persons, rooms, reasons, reservations — and TOPdesk's rules
//! for changing them. Every method here is synchronous and pure over the state plus the `now` it is given;
//! the HTTP layer ([`super::api`], [`super::control`]) holds the lock only around these calls.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use orb_core::TopdeskLocationId;
use orb_topdesk::fiql::{Field, Fiql};
use orb_topdesk::wire::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The most occurrences a series may have.
pub const MAX_SERIES: usize = 999;

/// What a room does when a new or changed reservation overlaps another (the real behaviour is not
/// documented: reference §10 U1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DoubleBooking {
    /// Refuse with a 400.
    #[default]
    Refuse,
    /// Store it with status `conflictingPlanned` / `conflictingRequest`.
    StoreAsConflicting,
}

/// An API account (operator) with its application passwords.
#[derive(Debug, Clone)]
pub struct Account {
    /// Operator id.
    pub id: Uuid,
    /// Login name.
    pub login: String,
    /// Application passwords with their expiry.
    pub passwords: Vec<(String, Option<DateTime<Utc>>)>,
    /// First name.
    pub first_name: String,
    /// Surname.
    pub sur_name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Archived accounts cannot log in.
    pub archived: bool,
}

/// A person card.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Id.
    pub id: PersonId,
    /// First name.
    pub first_name: String,
    /// Surname.
    pub sur_name: String,
    /// E-mail, as typed on the card (any case).
    pub email: Option<String>,
    /// Archived.
    pub archived: bool,
    /// Branch.
    pub branch: Option<IdName>,
    /// Login name.
    pub tas_login_name: Option<String>,
}

impl Person {
    fn dynamic_name(&self) -> String {
        format!("{}, {}", self.sur_name, self.first_name)
    }

    /// The person as persons 2.x shows it.
    pub fn to_dto(&self) -> PersonV2Dto {
        PersonV2Dto {
            id: Some(self.id),
            first_name: Some(self.first_name.clone()),
            sur_name: Some(self.sur_name.clone()),
            dynamic_name: Some(self.dynamic_name()),
            archived: Some(self.archived),
            email: self.email.clone(),
            phone_number: None,
            tas_login_name: self.tas_login_name.clone(),
            network_login_name: None,
            employee_number: None,
            branch: self.branch.as_ref().map(|b| BranchV2Dto { id: b.id, name: b.name.clone() }),
        }
    }
}

/// A room (a location card with reservation settings).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    /// Id.
    pub id: TopdeskLocationId,
    /// Name.
    pub name: String,
    /// Room number.
    pub room_number: Option<String>,
    /// Capacity.
    pub capacity: Option<i32>,
    /// Branch.
    pub branch: Option<IdName>,
    /// Reservable.
    pub reservable: bool,
    /// Archived.
    pub archived: bool,
    /// Block time in minutes before and after every reservation.
    pub block_minutes: i32,
    /// Overlap behaviour.
    pub double_booking: DoubleBooking,
    /// `optionalFields1.text1` (e.g. a room mailbox).
    pub text1: Option<String>,
    /// Last change.
    pub modification_date: DateTime<Utc>,
}

impl Room {
    /// The room as supporting-files `GET /locations` shows it (all fields).
    pub fn to_extended(&self) -> ExtendedLocationDto {
        ExtendedLocationDto {
            id: Some(self.id.clone()),
            status: Some(if self.archived { "archived" } else { "active" }.to_owned()),
            name: Some(self.name.clone()),
            room_number: self.room_number.clone(),
            capacity: self.capacity,
            branch: self.branch.clone(),
            reservation_management: Some(RoomReservationManagementDto {
                reservable: Some(self.reservable),
                issuable: Some(false),
                block_time: Some(self.block_minutes),
                requires_approval: Some(false),
            }),
            optional_fields1: self
                .text1
                .as_ref()
                .map(|t| BTreeMap::from([("text1".to_owned(), Value::from(t.clone()))])),
            modification_date: Some(self.modification_date),
        }
    }

    /// The room as the reservations API shows it.
    pub fn to_reservable(&self) -> ReservableLocation {
        ReservableLocation {
            id: Some(self.id.clone()),
            branch: self.branch.clone(),
            name: Some(self.name.clone()),
            room_number: self.room_number.clone(),
            capacity: self.capacity,
        }
    }
}

/// A cancellation or rejection reason.
#[derive(Debug, Clone, Serialize)]
pub struct SearchItem {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Archived.
    pub archived: bool,
}

/// One stored reservation.
#[derive(Debug, Clone)]
pub struct Reservation {
    /// Id.
    pub id: ReservationId,
    /// Number.
    pub number: String,
    /// Status.
    pub status: ReservationStatus,
    /// Archived flag.
    pub archived: bool,
    /// Subject.
    pub brief_description: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Requester.
    pub requester: PersonId,
    /// Operator.
    pub operator: Option<Uuid>,
    /// Participating persons.
    pub participants: Vec<PersonId>,
    /// Number of persons.
    pub number_of_persons: Option<i32>,
    /// Start (whole minutes).
    pub start: DateTime<Utc>,
    /// End (whole minutes).
    pub end: DateTime<Utc>,
    /// Reserved rooms: (facility line id, room).
    pub rooms: Vec<(Uuid, TopdeskLocationId)>,
    /// Series.
    pub series: Option<ReservationSeriesId>,
    /// The one external link.
    pub external_link: Option<ExternalLinkDto>,
    /// Optional fields.
    pub optional_fields1: Option<OptionalFields>,
    /// Optional fields.
    pub optional_fields2: Option<OptionalFields>,
    /// Why it was cancelled or rejected.
    pub reason: Option<Uuid>,
    /// Last change.
    pub modification_date: DateTime<Utc>,
}

/// Emulator settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Whether FIQL text comparisons are case-sensitive (reference §10 U7; default: not).
    pub text_case_sensitive: bool,
    /// The default cancellation reason (used when `cancel` has no body); none → such a cancel is a 400.
    pub default_cancellation_reason: Option<Uuid>,
    /// The default rejection reason.
    pub default_rejection_reason: Option<Uuid>,
}

/// An API error in one of TOPdesk's shapes.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400 with `ErrorResponseEntity` (shape 1).
    Rejected(Vec<ErrorDescription>),
    /// 400 with `[{"message"}]` (shape 2, supporting files).
    BadRequestMessage(String),
    /// 400 without a body (where the spec documents none, e.g. `GET /reservations`).
    BadRequest,
    /// 404 without a body (reservations API).
    NotFound,
    /// 404 with `[{"message"}]` (supporting files).
    NotFoundMessage(String),
}

pub(crate) fn reject(code: &str, field: Option<&str>, message: impl Into<String>) -> ApiError {
    ApiError::Rejected(vec![ErrorDescription {
        error_code: code.to_owned(),
        applies_to: field.map(|f| vec![f.to_owned()]),
        error_message: Some(message.into()),
    }])
}

/// The whole emulated TOPdesk.
#[derive(Debug, Default)]
pub struct State {
    /// API accounts by login.
    pub accounts: BTreeMap<String, Account>,
    /// Persons.
    pub persons: Vec<Person>,
    /// Rooms.
    pub rooms: Vec<Room>,
    /// Cancellation reasons.
    pub cancellation_reasons: Vec<SearchItem>,
    /// Rejection reasons.
    pub rejection_reasons: Vec<SearchItem>,
    /// Reservations by id.
    pub reservations: BTreeMap<ReservationId, Reservation>,
    /// Settings.
    pub settings: Settings,
    next_number: u64,
    last_modification: Option<DateTime<Utc>>,
}

/// Which series operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesOp {
    /// `POST makeRecurrent/dates`.
    Make,
    /// `POST occurrences/dates`.
    Add,
    /// `PUT occurrences/dates`.
    Set,
}

fn minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::minutes(1)).unwrap_or(at)
}

fn overlaps(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn base_status(status: ReservationStatus) -> ReservationStatus {
    match status {
        ReservationStatus::ConflictingPlanned => ReservationStatus::Planned,
        ReservationStatus::ConflictingRequest => ReservationStatus::Request,
        other => other,
    }
}

fn conflicting(status: ReservationStatus) -> ReservationStatus {
    match status {
        ReservationStatus::Planned => ReservationStatus::ConflictingPlanned,
        ReservationStatus::Request => ReservationStatus::ConflictingRequest,
        other => other,
    }
}

impl State {
    /// A strictly increasing modification instant: `now`, or 1 ms after the previous one.
    pub fn touch(&mut self, now: DateTime<Utc>) -> DateTime<Utc> {
        let at = match self.last_modification {
            Some(last) if last >= now => last + Duration::milliseconds(1),
            _ => now,
        };
        self.last_modification = Some(at);
        at
    }

    /// The room by id.
    pub fn room(&self, id: &str) -> Option<&Room> {
        self.rooms.iter().find(|r| r.id.as_str().eq_ignore_ascii_case(id))
    }

    /// The person by id.
    pub fn person(&self, id: PersonId) -> Option<&Person> {
        self.persons.iter().find(|p| p.id == id)
    }

    fn person_by_text(&self, text: &str, field: &str) -> Result<PersonId, ApiError> {
        text.parse::<PersonId>()
            .ok()
            .and_then(|id| self.person(id))
            .filter(|p| !p.archived)
            .map(|p| p.id)
            .ok_or_else(|| {
                reject("personNotFound", Some(field), format!("No active person found with id '{text}'"))
            })
    }

    /// Resolves a reservation identifier (id or number).
    pub fn find(&self, identifier: &str) -> Result<ReservationId, ApiError> {
        if let Ok(id) = identifier.parse::<ReservationId>() {
            return self.reservations.contains_key(&id).then_some(id).ok_or(ApiError::NotFound);
        }
        self.reservations.values().find(|r| r.number == identifier).map(|r| r.id).ok_or(ApiError::NotFound)
    }

    fn busy_window(
        &self,
        room: &TopdeskLocationId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let block = Duration::minutes(self.room(room.as_str()).map_or(0, |r| i64::from(r.block_minutes)));
        (start - block, end + block)
    }

    /// Whether `[start, end)` in `room` overlaps another active, non-archived reservation (block times
    /// widen both sides' busy windows).
    pub fn conflicts(
        &self,
        except: &[ReservationId],
        room: &TopdeskLocationId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> bool {
        let mine = self.busy_window(room, start, end);
        self.reservations.values().any(|other| {
            !except.contains(&other.id)
                && !other.archived
                && other.status.is_active()
                && other.rooms.iter().any(|(_, r)| r == room)
                && (overlaps(mine, (other.start, other.end))
                    || overlaps((start, end), self.busy_window(room, other.start, other.end)))
        })
    }

    /// The status a reservation gets for a slot: its base status, the conflicting variant, or a 400 if a
    /// room refuses double bookings.
    fn status_for(
        &self,
        except: &[ReservationId],
        rooms: &[TopdeskLocationId],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        base: ReservationStatus,
    ) -> Result<ReservationStatus, ApiError> {
        let mut status = base;
        for room in rooms {
            if self.conflicts(except, room, start, end) {
                let refuses =
                    self.room(room.as_str()).is_none_or(|r| r.double_booking == DoubleBooking::Refuse);
                if refuses {
                    return Err(reject(
                        "reservationConflict",
                        Some("reservedFacilities"),
                        format!("Location '{room}' is already reserved in this period"),
                    ));
                }
                status = conflicting(base);
            }
        }
        Ok(status)
    }

    fn check_room(
        &self,
        lookup: &ReservedFacilityLookup,
        field: &str,
    ) -> Result<TopdeskLocationId, ApiError> {
        if lookup.object.is_some() || lookup.asset.is_some() {
            return Err(reject(
                "facilityNotFound",
                Some(field),
                "Only locations can be reserved in this TOPdesk",
            ));
        }
        let Some(location) = &lookup.location else {
            return Err(reject("missingFacility", Some(field), "A reserved facility needs a location"));
        };
        match self.room(&location.id) {
            Some(room) if room.reservable && !room.archived => Ok(room.id.clone()),
            Some(_) => Err(reject(
                "locationNotReservable",
                Some(field),
                format!("Location '{}' is not reservable", location.id),
            )),
            None => Err(reject(
                "locationNotFound",
                Some(field),
                format!("No location found with id '{}'", location.id),
            )),
        }
    }

    fn check_text(value: &Option<String>, field: &str, max: usize) -> Result<(), ApiError> {
        match value {
            Some(text) if text.chars().count() > max => Err(reject(
                "fieldTooLong",
                Some(field),
                format!("The field '{field}' may contain at most {max} characters"),
            )),
            _ => Ok(()),
        }
    }

    fn check_optional(fields: &Option<OptionalFields>, name: &str) -> Result<(), ApiError> {
        for key in fields.iter().flat_map(|f| f.keys()) {
            if !is_optional_field_key(key) {
                return Err(reject(
                    "unknownField",
                    Some(&format!("{name}.{key}")),
                    format!("Unknown optional field '{key}'"),
                ));
            }
        }
        Ok(())
    }

    fn check_link(link: &ExternalLinkDto) -> Result<(), ApiError> {
        if link.id.is_empty() || link.id.chars().count() > 450 {
            return Err(reject(
                "invalidExternalLink",
                Some("externalLink.id"),
                "The external link id must be 1 to 450 characters",
            ));
        }
        match link.kind.parse::<i64>() {
            Ok(n) if n != 0 => Ok(()),
            _ => Err(reject(
                "invalidExternalLink",
                Some("externalLink.type"),
                "The external link type must be a non-zero integer",
            )),
        }
    }

    fn check_count(n: Option<i32>) -> Result<(), ApiError> {
        match n {
            Some(n) if !(0..=99_999).contains(&n) => Err(reject(
                "invalidValue",
                Some("numberOfPersons"),
                "numberOfPersons must be between 0 and 99999",
            )),
            _ => Ok(()),
        }
    }

    fn check_operator(&self, lookup: &Option<Lookup>) -> Result<Option<Uuid>, ApiError> {
        match lookup {
            None => Ok(None),
            Some(l) => Uuid::parse_str(&l.id)
                .ok()
                .filter(|id| self.accounts.values().any(|a| a.id == *id))
                .map(Some)
                .ok_or_else(|| {
                    reject(
                        "operatorNotFound",
                        Some("operator"),
                        format!("No operator found with id '{}'", l.id),
                    )
                }),
        }
    }

    /// `POST /reservations`.
    pub fn create(
        &mut self,
        dto: CreateReservationDto,
        now: DateTime<Utc>,
    ) -> Result<ReservationId, ApiError> {
        Self::check_text(&dto.brief_description, "briefDescription", 100)?;
        Self::check_count(dto.number_of_persons)?;
        Self::check_optional(&dto.optional_fields1, "optionalFields1")?;
        Self::check_optional(&dto.optional_fields2, "optionalFields2")?;
        let base = match dto.status {
            None | Some(ReservationStatus::Planned) => ReservationStatus::Planned,
            Some(ReservationStatus::Request) => ReservationStatus::Request,
            Some(other) => {
                return Err(reject(
                    "invalidStatus",
                    Some("status"),
                    format!("A new reservation cannot have status '{}'", other.as_str()),
                ));
            }
        };
        let requester = self.person_by_text(&dto.requester.id, "requester")?;
        let operator = self.check_operator(&dto.operator)?;
        if dto.operator_group.is_some() {
            return Err(reject("operatorGroupNotFound", Some("operatorGroup"), "No such operator group"));
        }
        if dto.processing_status.is_some() {
            return Err(reject(
                "processingStatusNotFound",
                Some("processingStatus"),
                "No such processing status",
            ));
        }
        let mut participants = Vec::new();
        if let Some(p) = &dto.participants {
            if p.visitors.as_ref().is_some_and(|v| !v.is_empty()) {
                return Err(reject("visitorNotFound", Some("participants.visitors"), "No such visitor"));
            }
            for person in p.persons.iter().flatten() {
                let id = self.person_by_text(&person.id, "participants.persons")?;
                if !participants.contains(&id) {
                    participants.push(id);
                }
            }
        }
        if let Some(link) = &dto.external_link {
            Self::check_link(link)?;
        }
        let start = minute(dto.planned_start_date);
        let end = minute(dto.planned_end_date);
        if end <= start {
            return Err(reject(
                "plannedEndDateBeforeStartDate",
                Some("plannedEndDate"),
                "The planned end date must be after the planned start date",
            ));
        }
        if dto.reserved_facilities.is_empty() {
            return Err(reject(
                "missingFacility",
                Some("reservedFacilities"),
                "At least one facility must be reserved",
            ));
        }
        let mut rooms = Vec::new();
        for facility in &dto.reserved_facilities {
            if facility.services.as_ref().is_some_and(|s| !s.is_empty()) {
                return Err(reject(
                    "serviceNotFound",
                    Some("reservedFacilities.services"),
                    "No such service",
                ));
            }
            rooms.push(self.check_room(facility, "reservedFacilities")?);
        }
        let status = self.status_for(&[], &rooms, start, end, base)?;
        let modification_date = self.touch(now);
        self.next_number += 1;
        let id = ReservationId(Uuid::new_v4());
        let reservation = Reservation {
            id,
            number: format!("R {} {:04}", now.format("%y%m"), self.next_number),
            status,
            archived: false,
            brief_description: dto.brief_description,
            notes: dto.notes,
            requester,
            operator,
            participants,
            number_of_persons: dto.number_of_persons,
            start,
            end,
            rooms: rooms.into_iter().map(|r| (Uuid::new_v4(), r)).collect(),
            series: None,
            external_link: dto.external_link,
            optional_fields1: dto.optional_fields1,
            optional_fields2: dto.optional_fields2,
            reason: None,
            modification_date,
        };
        self.reservations.insert(id, reservation);
        Ok(id)
    }

    fn editable(
        &self,
        id: ReservationId,
        action: &str,
        allowed: &[ReservationStatus],
    ) -> Result<&Reservation, ApiError> {
        let r = &self.reservations[&id];
        if r.archived {
            return Err(reject(
                "reservationArchived",
                None,
                format!("An archived reservation cannot be {action}"),
            ));
        }
        if !allowed.contains(&r.status) {
            return Err(reject(
                "invalidStatusForAction",
                Some("status"),
                format!("A reservation with status '{}' cannot be {action}", r.status.as_str()),
            ));
        }
        Ok(r)
    }

    /// `PATCH /reservations/{identifier}`.
    pub fn patch(
        &mut self,
        id: ReservationId,
        dto: UpdateReservationDto,
        future: bool,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        Self::check_text(&dto.brief_description, "briefDescription", 100)?;
        Self::check_count(dto.number_of_persons)?;
        Self::check_optional(&dto.optional_fields1, "optionalFields1")?;
        Self::check_optional(&dto.optional_fields2, "optionalFields2")?;
        let requester =
            dto.requester.as_ref().map(|l| self.person_by_text(&l.id, "requester")).transpose()?;
        let operator = self.check_operator(&dto.operator)?;
        if dto.operator_group.is_some() {
            return Err(reject("operatorGroupNotFound", Some("operatorGroup"), "No such operator group"));
        }
        if dto.processing_status.is_some() {
            return Err(reject(
                "processingStatusNotFound",
                Some("processingStatus"),
                "No such processing status",
            ));
        }
        let current = &self.reservations[&id];
        let targets: Vec<ReservationId> = match (future, current.series) {
            (true, Some(series)) => self
                .reservations
                .values()
                .filter(|r| r.series == Some(series) && r.start >= current.start)
                .map(|r| r.id)
                .collect(),
            _ => vec![id],
        };
        if let Some(link) = &dto.external_link {
            Self::check_link(link)?;
            for target in &targets {
                if let Some(existing) = &self.reservations[target].external_link
                    && (existing.id != link.id || existing.kind != link.kind)
                {
                    return Err(reject(
                        "externalLinkAlreadySet",
                        Some("externalLink"),
                        "An external link is already set and cannot be changed; only an administrator can remove it",
                    ));
                }
            }
        }
        let modification_date = self.touch(now);
        for target in targets {
            let r = self.reservations.get_mut(&target).expect("target exists");
            if let Some(v) = &dto.brief_description {
                r.brief_description = Some(v.clone());
            }
            if let Some(v) = &dto.notes {
                r.notes = Some(v.clone());
            }
            if let Some(v) = dto.number_of_persons {
                r.number_of_persons = Some(v);
            }
            if let Some(v) = requester {
                r.requester = v;
            }
            if operator.is_some() {
                r.operator = operator;
            }
            if r.external_link.is_none() && target == id {
                r.external_link.clone_from(&dto.external_link);
            }
            for (mine, given) in [
                (&mut r.optional_fields1, &dto.optional_fields1),
                (&mut r.optional_fields2, &dto.optional_fields2),
            ] {
                if let Some(given) = given {
                    mine.get_or_insert_with(Default::default).extend(given.clone());
                }
            }
            r.modification_date = modification_date;
        }
        Ok(())
    }

    /// `POST …/reschedule`.
    pub fn reschedule(
        &mut self,
        id: ReservationId,
        dto: RescheduleReservationDto,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        use ReservationStatus::*;
        let r =
            self.editable(id, "rescheduled", &[Planned, Request, ConflictingPlanned, ConflictingRequest])?;
        let start = minute(dto.planned_start_date.unwrap_or(r.start));
        let end = minute(dto.planned_end_date.unwrap_or(r.end));
        if end <= start {
            return Err(reject(
                "plannedEndDateBeforeStartDate",
                Some("plannedEndDate"),
                "The planned end date must be after the planned start date",
            ));
        }
        let rooms: Vec<TopdeskLocationId> = r.rooms.iter().map(|(_, room)| room.clone()).collect();
        let status = self.status_for(&[id], &rooms, start, end, base_status(r.status))?;
        let modification_date = self.touch(now);
        let r = self.reservations.get_mut(&id).expect("exists");
        (r.start, r.end, r.status, r.modification_date) = (start, end, status, modification_date);
        Ok(())
    }

    /// `POST …/reservedFacilities/move`.
    pub fn move_facility(
        &mut self,
        id: ReservationId,
        dto: MoveFacilityDto,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        use ReservationStatus::*;
        let r = self.editable(id, "moved", &[Planned, Request, ConflictingPlanned, ConflictingRequest])?;
        if r.series.is_some() {
            return Err(reject(
                "recurrentReservation",
                None,
                "The facilities of an occurrence of a recurring reservation cannot be changed",
            ));
        }
        let from = dto.from.location.as_ref().map(|l| l.id.clone()).unwrap_or_default();
        let Some(index) = r.rooms.iter().position(|(_, room)| room.as_str().eq_ignore_ascii_case(&from))
        else {
            return Err(reject(
                "facilityNotReserved",
                Some("from"),
                format!("Location '{from}' is not reserved by this reservation"),
            ));
        };
        let to = self.check_room(&dto.to, "to")?;
        let mut rooms: Vec<TopdeskLocationId> = r.rooms.iter().map(|(_, room)| room.clone()).collect();
        rooms[index] = to.clone();
        let status = self.status_for(&[id], &rooms, r.start, r.end, base_status(r.status))?;
        let modification_date = self.touch(now);
        let r = self.reservations.get_mut(&id).expect("exists");
        r.rooms[index] = (Uuid::new_v4(), to);
        (r.status, r.modification_date) = (status, modification_date);
        Ok(())
    }

    fn reason(
        list: &[SearchItem],
        body: Option<LookupByName>,
        default: Option<Uuid>,
        what: &str,
    ) -> Result<Uuid, ApiError> {
        let active = || list.iter().filter(|r| !r.archived);
        match body {
            None | Some(LookupByName { id: None, name: None }) => default.ok_or_else(|| {
                reject(
                    &format!("no{what}Reason"),
                    None,
                    format!("No {what} reason given and no default {what} reason is configured"),
                )
            }),
            Some(LookupByName { id: Some(id), .. }) => {
                active().find(|r| r.id.to_string().eq_ignore_ascii_case(&id)).map(|r| r.id).ok_or_else(|| {
                    reject("reasonNotFound", Some("id"), format!("No {what} reason found with id '{id}'"))
                })
            }
            Some(LookupByName { name: Some(name), .. }) => {
                let found: Vec<Uuid> = active().filter(|r| r.name == name).map(|r| r.id).collect();
                match found.as_slice() {
                    [one] => Ok(*one),
                    [] => Err(reject(
                        "reasonNotFound",
                        Some("name"),
                        format!("No {what} reason found with name '{name}'"),
                    )),
                    _ => Err(reject(
                        "ambiguousName",
                        Some("name"),
                        format!("More than one {what} reason is named '{name}'"),
                    )),
                }
            }
        }
    }

    /// `POST …/cancel`.
    pub fn cancel(
        &mut self,
        id: ReservationId,
        body: Option<LookupByName>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        use ReservationStatus::*;
        self.editable(id, "cancelled", &[Planned, ConflictingPlanned])?;
        let reason = Self::reason(
            &self.cancellation_reasons,
            body,
            self.settings.default_cancellation_reason,
            "cancellation",
        )?;
        let modification_date = self.touch(now);
        let r = self.reservations.get_mut(&id).expect("exists");
        (r.status, r.reason, r.modification_date) = (Cancelled, Some(reason), modification_date);
        Ok(())
    }

    /// `POST …/reject`.
    pub fn reject(
        &mut self,
        id: ReservationId,
        body: Option<LookupByName>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        use ReservationStatus::*;
        let r = self.editable(id, "rejected", &[Request, ConflictingRequest])?;
        if r.series.is_some() {
            return Err(reject(
                "recurrentReservation",
                None,
                "A request that is part of a recurrent series cannot be rejected",
            ));
        }
        let reason =
            Self::reason(&self.rejection_reasons, body, self.settings.default_rejection_reason, "rejection")?;
        let modification_date = self.touch(now);
        let r = self.reservations.get_mut(&id).expect("exists");
        (r.status, r.reason, r.modification_date) = (RejectedRequest, Some(reason), modification_date);
        Ok(())
    }

    /// `POST …/participants/add` and `…/remove`.
    pub fn participants(
        &mut self,
        id: ReservationId,
        dto: EditParticipantsDto,
        add: bool,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        if dto.visitors.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(reject("visitorNotFound", Some("visitors"), "No such visitor"));
        }
        let mut persons = Vec::new();
        for lookup in dto.persons.iter().flatten() {
            persons.push(self.person_by_text(&lookup.id, "persons")?);
        }
        let r = &self.reservations[&id];
        let changed = persons.iter().any(|p| r.participants.contains(p) != add);
        if !changed {
            return Ok(());
        }
        let modification_date = self.touch(now);
        let r = self.reservations.get_mut(&id).expect("exists");
        for p in persons {
            if add && !r.participants.contains(&p) {
                r.participants.push(p);
            } else if !add {
                r.participants.retain(|q| *q != p);
            }
        }
        r.modification_date = modification_date;
        Ok(())
    }

    /// `makeRecurrent/dates`, `occurrences/dates` (POST: add; PUT: set). Returns the series' ids.
    pub fn series(
        &mut self,
        id: ReservationId,
        dates: Vec<NaiveDate>,
        op: SeriesOp,
        allow_conflicts: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<ReservationId>, ApiError> {
        use ReservationStatus::*;
        let original = self.reservations[&id].clone();
        if original.archived {
            return Err(reject(
                "reservationArchived",
                None,
                "An archived reservation cannot be made recurrent",
            ));
        }
        let series = match (op, original.series) {
            (SeriesOp::Make, Some(_)) => {
                return Err(reject(
                    "alreadyRecurrent",
                    None,
                    "The reservation is already part of a recurrent series",
                ));
            }
            (SeriesOp::Make, None) => ReservationSeriesId(Uuid::new_v4()),
            (_, Some(series)) => series,
            (_, None) => {
                return Err(reject(
                    "notRecurrent",
                    None,
                    "The reservation is not part of a recurrent series",
                ));
            }
        };
        if dates.is_empty() || dates.len() > 1000 {
            return Err(reject("invalidDates", Some("dates"), "Give between 1 and 1000 dates"));
        }
        let mut unique = dates.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != dates.len() {
            return Err(reject("invalidDates", Some("dates"), "The dates must be unique"));
        }
        let own_date = original.start.date_naive();
        if let Some(early) = unique.iter().find(|d| **d < own_date) {
            return Err(reject(
                "invalidDates",
                Some("dates"),
                format!("The date {early} is before the reservation"),
            ));
        }
        let members: Vec<Reservation> = self
            .reservations
            .values()
            .filter(|r| original.series.is_some() && r.series == original.series)
            .cloned()
            .collect();
        let taken: Vec<NaiveDate> = members.iter().map(|r| r.start.date_naive()).collect();
        let removed: Vec<ReservationId> = if op == SeriesOp::Set {
            members
                .iter()
                .filter(|r| r.start > original.start && !unique.contains(&r.start.date_naive()))
                .map(|r| r.id)
                .collect()
        } else {
            Vec::new()
        };
        let new_dates: Vec<NaiveDate> =
            unique.into_iter().filter(|d| *d != own_date && !taken.contains(d)).collect();
        let total = members.len().max(1) - removed.len() + new_dates.len();
        if total > MAX_SERIES {
            return Err(reject(
                "seriesTooLong",
                Some("dates"),
                format!("A series cannot have more than {MAX_SERIES} occurrences"),
            ));
        }
        let duration = original.end - original.start;
        let rooms: Vec<TopdeskLocationId> = original.rooms.iter().map(|(_, r)| r.clone()).collect();
        let mut planned = Vec::new();
        for date in &new_dates {
            let start = date.and_time(original.start.time()).and_utc();
            let end = start + duration;
            let mut status = base_status(original.status);
            if !matches!(status, Planned | Request) {
                status = Planned;
            }
            let clash = rooms.iter().any(|room| self.conflicts(&removed, room, start, end));
            if clash {
                if !allow_conflicts {
                    return Err(reject(
                        "reservationConflict",
                        Some("dates"),
                        format!("The occurrence on {date} would conflict with another reservation"),
                    ));
                }
                status = conflicting(status);
            }
            planned.push((start, end, status));
        }
        let modification_date = self.touch(now);
        for gone in &removed {
            self.reservations.remove(gone);
        }
        if op == SeriesOp::Make {
            let r = self.reservations.get_mut(&id).expect("exists");
            r.series = Some(series);
            r.modification_date = modification_date;
        }
        for (start, end, status) in planned {
            self.next_number += 1;
            let copy = Reservation {
                id: ReservationId(Uuid::new_v4()),
                number: format!("R {} {:04}", now.format("%y%m"), self.next_number),
                status,
                start,
                end,
                rooms: original.rooms.iter().map(|(_, r)| (Uuid::new_v4(), r.clone())).collect(),
                series: Some(series),
                external_link: None,
                reason: None,
                modification_date,
                ..original.clone()
            };
            self.reservations.insert(copy.id, copy);
        }
        let mut ids: Vec<&Reservation> =
            self.reservations.values().filter(|r| r.series == Some(series)).collect();
        ids.sort_by_key(|r| (r.start, r.number.clone()));
        Ok(ids.into_iter().map(|r| r.id).collect())
    }

    /// The reservation as `ReservationDto` (all fields).
    pub fn to_dto(&self, r: &Reservation) -> ReservationDto {
        let person_ref = |id: PersonId| {
            let p = self.person(id);
            Requester {
                id: Some(id),
                branch: p.and_then(|p| p.branch.clone()),
                name: p.map(Person::dynamic_name),
                email: p.and_then(|p| p.email.clone()),
                telephone: None,
            }
        };
        let facilities = r
            .rooms
            .iter()
            .map(|(line, room_id)| {
                let room = self.room(room_id.as_str());
                let (start_block, end_block) = self.busy_window(room_id, r.start, r.end);
                ReservedFacility {
                    id: Some(*line),
                    planned_start_date: Some(r.start),
                    planned_end_date: Some(r.end),
                    start_date_block: Some(start_block),
                    end_date_block: Some(end_block),
                    location: Some(ReservedLocation {
                        id: Some(room_id.clone()),
                        name: room.map(|r| r.name.clone()),
                        room_number: room.and_then(|r| r.room_number.clone()),
                        branch: room.and_then(|r| r.branch.clone()),
                        room_type: None,
                    }),
                    reserved_services: Some(Vec::new()),
                    ..ReservedFacility::default()
                }
            })
            .collect();
        let participants = r
            .participants
            .iter()
            .map(|id| ParticipantDto {
                id: Some(id.0),
                number: None,
                name: self.person(*id).map(Person::dynamic_name),
            })
            .collect();
        let operator = r.operator.map(|id| IdName {
            id: Some(id),
            name: self
                .accounts
                .values()
                .find(|a| a.id == id)
                .map(|a| format!("{}, {}", a.sur_name, a.first_name)),
        });
        ReservationDto {
            id: Some(r.id),
            status: Some(r.status),
            number: Some(r.number.clone()),
            brief_description: Some(r.brief_description.clone().unwrap_or_default()),
            notes: Some(r.notes.clone().unwrap_or_default()),
            archived: Some(r.archived),
            requester: Some(person_ref(r.requester)),
            reserved_for_other: None,
            operator,
            operator_group: None,
            participants: Some(ParticipantsDto { persons: Some(participants), visitors: Some(Vec::new()) }),
            number_of_persons: Some(r.number_of_persons.unwrap_or(0)),
            planned_start_date: Some(r.start),
            planned_end_date: Some(r.end),
            reserved_facilities: Some(facilities),
            event: None,
            processing_status: None,
            series: r.series.map(|id| SeriesDto { id: Some(id) }),
            external_links: Some(r.external_link.iter().cloned().collect()),
            optional_fields1: Some(r.optional_fields1.clone().unwrap_or_default()),
            optional_fields2: Some(r.optional_fields2.clone().unwrap_or_default()),
            modification_date: Some(r.modification_date),
        }
    }

    /// The values of a FIQL selector on a reservation; `None` if the field is not filterable.
    pub fn reservation_field(&self, r: &Reservation, selector: &str) -> Option<Vec<Field>> {
        let text = |v: &Option<String>| vec![v.clone().map_or(Field::Null, Field::Text)];
        let person = |id: PersonId, sub: &str| -> Vec<Field> {
            let p = self.person(id);
            match sub {
                "id" => vec![Field::Text(id.to_string())],
                "email" => text(&p.and_then(|p| p.email.clone())),
                "loginName" => text(&p.and_then(|p| p.tas_login_name.clone())),
                _ => vec![Field::Null],
            }
        };
        let values = match selector {
            "id" => vec![Field::Text(r.id.to_string())],
            "status" => vec![Field::Text(r.status.as_str().to_owned())],
            "archived" => vec![Field::Bool(r.archived)],
            "number" => vec![Field::Text(r.number.clone())],
            "briefDescription" => text(&r.brief_description),
            "notes" => text(&r.notes),
            "numberOfPersons" => {
                vec![r.number_of_persons.map_or(Field::Null, |n| Field::Number(f64::from(n)))]
            }
            "plannedStartDate" => vec![Field::Date(r.start)],
            "plannedEndDate" => vec![Field::Date(r.end)],
            "series.id" => vec![r.series.map_or(Field::Null, |s| Field::Text(s.to_string()))],
            "operator.id" => vec![r.operator.map_or(Field::Null, |o| Field::Text(o.to_string()))],
            "reservedFacilities.location.id" => {
                r.rooms.iter().map(|(_, room)| Field::Text(room.to_string())).collect()
            }
            "reservedFacilities.location.roomNumber" => r
                .rooms
                .iter()
                .map(|(_, room)| {
                    text(&self.room(room.as_str()).and_then(|x| x.room_number.clone())).remove(0)
                })
                .collect(),
            "externalLinks.id" => r.external_link.iter().map(|l| Field::Text(l.id.clone())).collect(),
            "externalLinks.type" => r.external_link.iter().map(|l| Field::Text(l.kind.clone())).collect(),
            "externalLinks.date" => {
                r.external_link.iter().map(|l| l.date.map_or(Field::Null, Field::Date)).collect()
            }
            "participants.persons.id" | "participants.persons.email" | "participants.persons.loginName" => {
                let sub = selector.rsplit('.').next().unwrap_or_default();
                r.participants.iter().flat_map(|p| person(*p, sub)).collect()
            }
            s if s.starts_with("requester.") => {
                let sub = &s["requester.".len()..];
                if !matches!(sub, "id" | "email" | "loginName" | "networkLoginName" | "employeeNumber") {
                    return None;
                }
                person(r.requester, sub)
            }
            s if s.starts_with("optionalFields1.") || s.starts_with("optionalFields2.") => {
                let (tab, key) = s.split_once('.').unwrap_or_default();
                if !is_optional_field_key(key) {
                    return None;
                }
                let fields = if tab == "optionalFields1" { &r.optional_fields1 } else { &r.optional_fields2 };
                vec![json_field(fields.as_ref().and_then(|f| f.get(key)))]
            }
            _ => return None,
        };
        Some(if values.is_empty() { vec![Field::Null] } else { values })
    }

    /// Whether every selector of `query` is filterable on reservations.
    pub fn check_reservation_selectors(&self, query: &Fiql) -> Result<(), ApiError> {
        let probe = Reservation {
            id: ReservationId(Uuid::nil()),
            number: String::new(),
            status: ReservationStatus::Planned,
            archived: false,
            brief_description: None,
            notes: None,
            requester: PersonId(Uuid::nil()),
            operator: None,
            participants: Vec::new(),
            number_of_persons: None,
            start: DateTime::<Utc>::MIN_UTC,
            end: DateTime::<Utc>::MIN_UTC,
            rooms: Vec::new(),
            series: None,
            external_link: None,
            optional_fields1: None,
            optional_fields2: None,
            reason: None,
            modification_date: DateTime::<Utc>::MIN_UTC,
        };
        for selector in query.selectors() {
            if self.reservation_field(&probe, selector).is_none() {
                return Err(reject(
                    "invalidQuery",
                    Some("query"),
                    format!("The field '{selector}' cannot be used in a query"),
                ));
            }
        }
        Ok(())
    }
}

fn json_field(value: Option<&Value>) -> Field {
    match value {
        None | Some(Value::Null) => Field::Null,
        Some(Value::Bool(b)) => Field::Bool(*b),
        Some(Value::Number(n)) => n.as_f64().map_or(Field::Null, Field::Number),
        Some(Value::String(s)) => {
            orb_topdesk::datetime::parse(s).map_or_else(|| Field::Text(s.clone()), Field::Date)
        }
        Some(Value::Object(o)) => {
            o.get("name").and_then(Value::as_str).map_or(Field::Null, |s| Field::Text(s.to_owned()))
        }
        Some(Value::Array(_)) => Field::Null,
    }
}

/// Keeps only the fields named in a `$fields` list (`a,b.c`: dots select sub-fields, through arrays).
pub fn project(value: &Value, fields: &str) -> Value {
    let paths: Vec<Vec<&str>> =
        fields.split(',').map(str::trim).filter(|f| !f.is_empty()).map(|f| f.split('.').collect()).collect();
    if paths.is_empty() {
        return value.clone();
    }
    project_paths(value, &paths)
}

fn project_paths(value: &Value, paths: &[Vec<&str>]) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| project_paths(v, paths)).collect()),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, child) in map {
                let mine: Vec<Vec<&str>> = paths
                    .iter()
                    .filter(|p| p.first() == Some(&key.as_str()))
                    .map(|p| p[1..].to_vec())
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                if mine.iter().any(Vec::is_empty) {
                    out.insert(key.clone(), child.clone());
                } else {
                    out.insert(key.clone(), project_paths(child, &mine));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projection_keeps_named_fields_through_arrays() {
        let value = json!({"id": 1, "status": "planned", "reservedFacilities": [{"id": 2, "location": {"id": 3, "name": "A"}}]});
        assert_eq!(
            project(&value, "id,reservedFacilities.location.id"),
            json!({"id": 1, "reservedFacilities": [{"location": {"id": 3}}]})
        );
        assert_eq!(project(&value, ""), value);
    }

    #[test]
    fn modification_dates_strictly_increase() {
        let mut state = State::default();
        let now = orb_topdesk::datetime::parse("2026-01-01T10:00:00Z").unwrap();
        let a = state.touch(now);
        let b = state.touch(now);
        assert!(b > a);
        assert_eq!(state.touch(now + Duration::hours(1)), now + Duration::hours(1));
    }
}
