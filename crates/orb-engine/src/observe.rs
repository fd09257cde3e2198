//! Observations: what Graph and TOPdesk say about one booking, normalised into the planner's
//! [`Observation`] (DESIGN §1 "observation", §3).
//!
//! - [`from_graph_event`] / [`from_graph_event_for_room`]: a Graph `event` (from a notification, a GET or a
//!   calendarView delta page) as seen in one mailbox.
//! - [`from_topdesk_reservation`]: a TOPdesk `ReservationDto` (from a poll, a push hint fetched by id).
//! - [`deleted`]: an item that is gone (Graph delta `@removed`, a `deleted` notification, a TOPdesk
//!   occurrence removed by `PUT …/occurrences/dates`), described from what the ORB record knows.
//!
//! ## Invariants
//! - **Pure.** No I/O, no clock, no logging: the same input always gives the same observation or error.
//!   Everything tenant-specific (room map, external-link type, series ids, TOPdesk person e-mails) comes in
//!   through [`ObserveContext`].
//! - **The body is never read.** Graph reads never ask for `body` or `bodyPreview` (`$select`,
//!   `orb_graph::EVENT_FIELDS`), and should an event carry them anyway they are not looked at. TOPdesk's
//!   `notes` are looked at only for *whether they are there* ([`Observation::unsynced`] `hasNotes`).
//!   Display names of people are never copied either: people are e-mail addresses.
//! - **No silent UTC.** A Graph `timeZone` that neither the CLDR table nor chrono-tz knows is an error
//!   ([`ObserveError::UnknownZone`]). Only a *missing* `timeZone` means UTC, as Graph defines it.
//! - Subjects are passed on as the side holds them; the planner applies the privacy policy (rule 13).
//! - Every error is permanent for this input ([`ObserveError::is_retryable`] is `false`): observing the same
//!   bytes again gives the same error. The message says what to change.
//!
//! ## Rules (Graph)
//! - **Room.** If the event was read from a room mailbox's own calendar ([`ObserveContext::mailbox`] is a
//!   room of the map, enabled or not), the room is that mailbox and its answer is `Accepted` (the booking
//!   assistant put it there), unless the copy's own `responseStatus` says `tentativelyAccepted` or
//!   `declined`. Otherwise the room is the resource attendee or `location(s).locationEmailAddress` that is
//!   a mapped, enabled room; with none mapped, a disabled mapped room, then the first resource attendee,
//!   then the first location e-mail (the planner calls those "unmanaged"); with no room at all,
//!   [`ObservedRoom::None`] (the room was taken out of the meeting). Several mapped rooms in one event are
//!   several bookings: [`ObserveError::SeveralRooms`], observe each with [`from_graph_event_for_room`].
//!   The answer is the room attendee's `status.response`; a room that is only a location was never
//!   invited and has `NotResponded`.
//! - **Organizer / booked by.** `organizer` is the person the booking is for (rule 11). Graph's event
//!   resource has no `sender`, so the one signal of a delegate is this: the event was read from a person's
//!   mailbox `M`, Graph says `isOrganizer: true` there, and the organizer is not `M` — then `M` made it on
//!   the organizer's behalf and is `booked_by`. Room copies and attendee copies never set `booked_by`.
//! - **Participants.** Attendees that are not `resource`s, as e-mail addresses; an attendee whose address
//!   is not an SMTP address (e.g. an X.500 DN) is left out and counted in `unsynced["unreadableAttendees"]`.
//! - **Times.** `start`/`end` converted with their own `timeZone` ([`DateTimeTimeZone::to_utc`]), so any
//!   `Prefer: outlook.timezone` gives the same instants. The booking's zone ([`Observation::time_zone`]) is
//!   `originalStartTimeZone` (the zone it was made in), else `start.timeZone` unless that is UTC (which
//!   is only how the response was rendered), else none (the planner takes the room's zone).
//! - **Series.** `occurrence`/`exception` items need `seriesMasterId`; ORB's [`SeriesId`] comes from the
//!   context's resolver; `originalStart` identifies the occurrence (for an unchanged `occurrence` a
//!   missing `originalStart` is its start). A `seriesMaster` is not a booking
//!   ([`ObserveError::SeriesMaster`]): expand its instances and observe each.
//! - **Version.** `changeKey` only from the organizer's own item (`isOrganizer` not `false`): it is the
//!   version ORB's conditional writes name (`If-Match`); a room's copy of someone else's meeting has its
//!   own version and gives none.
//! - **Match id.** The single-value extended property [`orb_graph::ORB_MATCH_PROPERTY_ID`] (only present when
//!   `$expand`ed), else `transactionId` (ORB sets it to the match id on create) when it parses as a
//!   [`BookingId`].
//!
//! ## Rules (TOPdesk)
//! - Room: the reserved facility's location (mapped or not; [`ObserveError::NotARoomBooking`] without one).
//! - Organizer: `reservedForOther.email` when the reservation was made for someone else (then
//!   `requester.email` is `booked_by`), else `requester.email`, as TOPdesk shows it (the planner recognises
//!   the tenant's fallback person).
//! - Participants: TOPdesk lists participant persons by id only; the context's person resolver turns ids
//!   into e-mails. Unknown persons and visitors are left out and counted in `unsynced`; the ids of unknown
//!   persons are kept there too ([`UNRESOLVED_PARTICIPANT_IDS`]) for the engine to resolve.
//! - Lifecycle from `status` (`cancelled`, `rejectedRequest` → cancelled). `archived` is a separate flag in
//!   TOPdesk (reference §3.3) that does not end a reservation: it is reported in `unsynced` only.
//! - Times are UTC already; the zone is the mapped room's zone. A reservation with `series.id` is an
//!   occurrence; TOPdesk keeps no original start, so the planned start stands in for it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use thiserror::Error;

use orb_core::{
    AppointmentType, BookingId, BookingRecord, CoreError, EmailAddress, Lifecycle, Observation,
    ObservationSource, ObservedRoom, Policy, RemoteIds, RoomMap, RoomResponse, SeriesId, SeriesRef, Side,
    SubjectPolicy, TenantId, TimeZoneName, TopdeskLocationId,
};
use orb_graph::model::{AttendeeType, DateTimeTimeZone, Event, EventType, ResponseType};
use orb_topdesk::wire::ReservationDto;
use orb_topdesk::{PersonId, ReservationSeriesId, ReservationStatus};

/// Key in [`Observation::unsynced`] of a TOPdesk observation: the participant person ids the context's
/// resolver did not know, comma-separated (ids only), so the engine can resolve them later.
pub const UNRESOLVED_PARTICIPANT_IDS: &str = "unresolvedParticipantIds";

/// What names a series on its side, for [`ObserveContext::series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKey<'a> {
    /// A Graph series master: its id in the mailbox the event was read from (the room's copy and the
    /// organizer's copy of one series have different master ids).
    GraphMaster {
        /// The mailbox, when the context knows it.
        mailbox: Option<&'a EmailAddress>,
        /// `seriesMasterId`.
        master_id: &'a str,
    },
    /// A TOPdesk series (`series.id`).
    TopdeskSeries(ReservationSeriesId),
}

/// Finds (or makes) ORB's series id for a side's series. `None` means ORB does not know the series.
pub type SeriesResolver<'a> = dyn Fn(&SeriesKey<'_>) -> Option<SeriesId> + 'a;

/// The e-mail address of a TOPdesk person id (`None`: unknown or without e-mail).
pub type PersonResolver<'a> = dyn Fn(&PersonId) -> Option<EmailAddress> + 'a;

fn no_person(_: &PersonId) -> Option<EmailAddress> {
    None
}

/// Everything besides the item that an observation depends on.
#[derive(Clone, Copy)]
pub struct ObserveContext<'a> {
    /// The tenant's rooms.
    pub rooms: &'a RoomMap,
    /// The tenant's TOPdesk external-link type (ORB's links carry the match id as their id).
    pub external_link_type: i64,
    /// ORB's series ids.
    pub series: &'a SeriesResolver<'a>,
    /// TOPdesk participant e-mails (default: none known).
    pub persons: &'a PersonResolver<'a>,
    /// Notification, poll or sweep.
    pub source: ObservationSource,
    /// The Exchange mailbox whose calendar the event was read from (Graph only).
    pub mailbox: Option<&'a EmailAddress>,
    /// The id of ORB's match property (default [`orb_graph::ORB_MATCH_PROPERTY_ID`]).
    pub match_property_id: &'a str,
}

impl<'a> ObserveContext<'a> {
    /// A context with no mailbox, no person resolver and the default match property.
    pub fn new(
        rooms: &'a RoomMap,
        external_link_type: i64,
        series: &'a SeriesResolver<'a>,
        source: ObservationSource,
    ) -> Self {
        Self {
            rooms,
            external_link_type,
            series,
            persons: &no_person,
            source,
            mailbox: None,
            match_property_id: orb_graph::ORB_MATCH_PROPERTY_ID,
        }
    }

    /// The same context for an event read from `mailbox`'s calendar.
    pub fn with_mailbox(self, mailbox: &'a EmailAddress) -> Self {
        Self { mailbox: Some(mailbox), ..self }
    }

    /// The same context with a TOPdesk person resolver.
    pub fn with_persons(self, persons: &'a PersonResolver<'a>) -> Self {
        Self { persons, ..self }
    }

    /// The same context with another match property id (see `orb_graph::ClientOptions`).
    pub fn with_match_property(self, id: &'a str) -> Self {
        Self { match_property_id: id, ..self }
    }
}

impl std::fmt::Debug for ObserveContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveContext")
            .field("external_link_type", &self.external_link_type)
            .field("source", &self.source)
            .field("mailbox", &self.mailbox)
            .field("match_property_id", &self.match_property_id)
            .finish_non_exhaustive()
    }
}

/// Why an item could not become an observation. Never retryable: the item itself has to change (or be
/// fetched with more fields).
#[derive(Debug, Error)]
pub enum ObserveError {
    /// A field the observation needs is absent.
    #[error("the {side} item has no {field}: {hint}")]
    MissingField {
        /// Which side.
        side: Side,
        /// The wire name of the field.
        field: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// A Graph time zone that ORB does not know (never read as UTC).
    #[error(
        "the Graph event's {field} is in a time zone ORB does not know; \
         update the CLDR zone table or report the event: {source}"
    )]
    UnknownZone {
        /// The field (`start.timeZone`, `originalStartTimeZone`, ...).
        field: &'static str,
        /// The zone error (names the zone).
        #[source]
        source: CoreError,
    },
    /// A date-time text that cannot be read.
    #[error("the Graph event's {field} is not a date-time Graph would send: {source}")]
    MalformedDateTime {
        /// The field.
        field: &'static str,
        /// The parse error.
        #[source]
        source: CoreError,
    },
    /// An e-mail address ORB needs that is not an SMTP address.
    #[error("the {side} item's {field} is not a usable e-mail address; fix it on the {side} side: {source}")]
    MalformedEmail {
        /// Which side.
        side: Side,
        /// The field.
        field: &'static str,
        /// Why.
        #[source]
        source: CoreError,
    },
    /// A Graph series master: a pattern, not a booking.
    #[error(
        "Graph event {event_id:?} is a series master, not a booking: fetch its instances within the horizon \
         and observe each occurrence"
    )]
    SeriesMaster {
        /// The master's id.
        event_id: String,
    },
    /// A delta `@removed` item given to [`from_graph_event`].
    #[error("Graph event {event_id:?} was removed ({reason}): observe it with observe::deleted")]
    Removed {
        /// The event id.
        event_id: String,
        /// Graph's reason (`deleted`, `changed`).
        reason: String,
    },
    /// More than one mapped room in one event: each is its own booking.
    #[error(
        "the Graph event books {} mapped rooms ({}): observe it once per room with from_graph_event_for_room",
        rooms.len(),
        rooms.iter().map(EmailAddress::as_str).collect::<Vec<_>>().join(", ")
    )]
    SeveralRooms {
        /// The mapped rooms.
        rooms: Vec<EmailAddress>,
    },
    /// A TOPdesk reservation without a room (only objects or assets).
    #[error(
        "TOPdesk reservation {reservation:?} reserves no room (location), only objects or assets: \
         ORB syncs room reservations only"
    )]
    NotARoomBooking {
        /// The reservation's id or number.
        reservation: String,
    },
    /// ORB's match id on the item is not a match id.
    #[error(
        "the {side} item carries ORB's {carrier} with {value:?}, which is not an ORB match id (a UUID): \
         another integration may use the same key; give ORB its own extended property / external-link type"
    )]
    MalformedMatchId {
        /// Which side.
        side: Side,
        /// Extended property or external link.
        carrier: &'static str,
        /// The value found.
        value: String,
    },
    /// An occurrence of a series ORB has no series id for.
    #[error(
        "the {side} item is an occurrence of series {key:?}, which ORB does not know: record the series \
         (fetch the master and its instances) before observing its occurrences"
    )]
    UnknownSeries {
        /// Which side.
        side: Side,
        /// The side's series key.
        key: String,
    },
}

impl ObserveError {
    /// Always `false`: the same item gives the same error; see each message for what to change.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

fn missing(side: Side, field: &'static str, hint: &'static str) -> ObserveError {
    ObserveError::MissingField { side, field, hint }
}

fn email(side: Side, field: &'static str, text: &str) -> Result<EmailAddress, ObserveError> {
    EmailAddress::parse(text).map_err(|source| ObserveError::MalformedEmail { side, field, source })
}

fn zone_error(field: &'static str, source: CoreError) -> ObserveError {
    match source {
        CoreError::UnknownWindowsZone { .. } | CoreError::UnknownTimeZone { .. } => {
            ObserveError::UnknownZone { field, source }
        }
        other => ObserveError::MalformedDateTime { field, source: other },
    }
}

fn graph_instant(
    value: Option<&DateTimeTimeZone>,
    field: &'static str,
    zone_field: &'static str,
) -> Result<DateTime<Utc>, ObserveError> {
    let value = value.ok_or_else(|| {
        missing(Side::Exchange, field, "fetch the event (GET) instead of relying on a partial body")
    })?;
    value.to_utc().map_err(|e| zone_error(zone_field, e))
}

/// Zone names Exchange uses for custom zones: they name no zone, so they carry no information.
const CUSTOM_ZONE_MARKERS: &[&str] = &["tzone://Microsoft/Custom", "Customized Time Zone"];

fn graph_time_zone(event: &Event) -> Result<Option<TimeZoneName>, ObserveError> {
    if let Some(original) = event.original_start_time_zone.as_deref().map(str::trim)
        && !original.is_empty()
        && !CUSTOM_ZONE_MARKERS.iter().any(|m| m.eq_ignore_ascii_case(original))
    {
        return orb_core::zones::resolve_graph_zone(original)
            .map(Some)
            .map_err(|e| zone_error("originalStartTimeZone", e));
    }
    match event.start.as_ref().and_then(|s| s.time_zone.as_deref()).map(str::trim) {
        Some(z) if !z.is_empty() && !z.eq_ignore_ascii_case("utc") && !z.eq_ignore_ascii_case("etc/utc") => {
            orb_core::zones::resolve_graph_zone(z).map(Some).map_err(|e| zone_error("start.timeZone", e))
        }
        _ => Ok(None),
    }
}

fn room_response(response: Option<ResponseType>) -> RoomResponse {
    match response {
        Some(ResponseType::Accepted) => RoomResponse::Accepted,
        Some(ResponseType::TentativelyAccepted) => RoomResponse::Tentative,
        Some(ResponseType::Declined) => RoomResponse::Declined,
        Some(ResponseType::None | ResponseType::NotResponded | ResponseType::Organizer) | None => {
            RoomResponse::NotResponded
        }
    }
}

/// The rooms of an event's organizer or attendee copy, in the order of preference of the module docs.
struct GraphRooms {
    /// Mapped, enabled rooms (de-duplicated).
    mapped: Vec<EmailAddress>,
    /// Other room candidates: disabled mapped rooms first, then resource attendees, then location e-mails.
    others: Vec<EmailAddress>,
}

fn graph_rooms(event: &Event, rooms: &RoomMap) -> GraphRooms {
    let resources = event
        .attendees
        .iter()
        .flatten()
        .filter(|a| a.kind == Some(AttendeeType::Resource))
        .filter_map(|a| a.address())
        .filter_map(|a| EmailAddress::parse(a).ok());
    let locations = event
        .location
        .iter()
        .chain(event.locations.iter().flatten())
        .filter_map(|l| l.location_email_address.as_deref())
        .filter_map(|a| EmailAddress::parse(a).ok());
    let mut all: Vec<EmailAddress> = Vec::new();
    for a in resources.chain(locations) {
        if !all.contains(&a) {
            all.push(a);
        }
    }
    let (mapped, rest): (Vec<_>, Vec<_>) = all.into_iter().partition(|a| rooms.by_mailbox(a).is_some());
    let (disabled, unmapped): (Vec<_>, Vec<_>) = rest.into_iter().partition(|a| rooms.is_room_address(a));
    GraphRooms { mapped, others: disabled.into_iter().chain(unmapped).collect() }
}

/// The mapped, enabled rooms an event books (as found in an organizer's or attendee's copy).
pub fn graph_mapped_rooms(event: &Event, ctx: &ObserveContext<'_>) -> Vec<EmailAddress> {
    graph_rooms(event, ctx.rooms).mapped
}

/// Observes a Graph event as read from [`ObserveContext::mailbox`]'s calendar. See the module docs for
/// the rules.
pub fn from_graph_event(event: &Event, ctx: &ObserveContext<'_>) -> Result<Observation, ObserveError> {
    observe_graph(event, ctx, None)
}

/// Observes a Graph event for one of the rooms it books (for events with several mapped rooms).
pub fn from_graph_event_for_room(
    event: &Event,
    room: &EmailAddress,
    ctx: &ObserveContext<'_>,
) -> Result<Observation, ObserveError> {
    observe_graph(event, ctx, Some(room))
}

fn observe_graph(
    event: &Event,
    ctx: &ObserveContext<'_>,
    for_room: Option<&EmailAddress>,
) -> Result<Observation, ObserveError> {
    const S: Side = Side::Exchange;
    let event_id = event.id.clone();
    if let Some(removed) = &event.removed {
        return Err(ObserveError::Removed {
            event_id: event_id.unwrap_or_default(),
            reason: removed.reason.clone(),
        });
    }
    let appointment_type = match event.kind {
        Some(EventType::SeriesMaster) => {
            return Err(ObserveError::SeriesMaster { event_id: event_id.unwrap_or_default() });
        }
        Some(EventType::Occurrence) => AppointmentType::Occurrence,
        Some(EventType::Exception) => AppointmentType::Exception,
        Some(EventType::SingleInstance) | None => AppointmentType::Single,
    };
    let start = graph_instant(event.start.as_ref(), "start", "start.timeZone")?;
    let end = graph_instant(event.end.as_ref(), "end", "end.timeZone")?;
    let time_zone = graph_time_zone(event)?;
    let modified_at = event.last_modified_date_time.map(orb_core::stored_precision).ok_or_else(|| {
        missing(S, "lastModifiedDateTime", "select it (rich notifications) or fetch the event with a GET")
    })?;
    let organizer_text = event
        .organizer
        .as_ref()
        .and_then(|o| o.address())
        .ok_or_else(|| missing(S, "organizer", "select organizer or fetch the event with a GET"))?;
    let organizer = email(S, "organizer", organizer_text)?;

    let room_copy = ctx.mailbox.filter(|m| ctx.rooms.is_room_address(m));
    let (room, room_response) = match (for_room, room_copy) {
        (Some(room), Some(copy)) if room == copy => (Some(room.clone()), copy_response(event)),
        (Some(room), _) => (Some(room.clone()), attendee_response(event, room)),
        (None, Some(copy)) => (Some(copy.clone()), copy_response(event)),
        (None, None) => {
            let found = graph_rooms(event, ctx.rooms);
            if found.mapped.len() > 1 {
                return Err(ObserveError::SeveralRooms { rooms: found.mapped });
            }
            match found.mapped.into_iter().chain(found.others).next() {
                Some(room) => {
                    let response = attendee_response(event, &room);
                    (Some(room), response)
                }
                None => (None, RoomResponse::NotResponded),
            }
        }
    };
    let booked_by = match ctx.mailbox {
        Some(m) if room_copy.is_none() && event.is_organizer == Some(true) && *m != organizer => {
            Some(m.clone())
        }
        _ => None,
    };

    let mut unsynced = BTreeMap::new();
    let mut participants = Vec::new();
    let mut unreadable = 0usize;
    for a in event.attendees.iter().flatten().filter(|a| a.kind != Some(AttendeeType::Resource)) {
        match a.address().map(EmailAddress::parse) {
            Some(Ok(p)) => {
                if !participants.contains(&p) {
                    participants.push(p);
                }
            }
            _ => unreadable += 1,
        }
    }
    if unreadable > 0 {
        unsynced.insert("unreadableAttendees".to_owned(), unreadable.to_string());
    }

    let series = match appointment_type {
        AppointmentType::Occurrence | AppointmentType::Exception => {
            let master_id = event.series_master_id.as_deref().ok_or_else(|| {
                missing(S, "seriesMasterId", "select seriesMasterId or fetch the occurrence with a GET")
            })?;
            let key = SeriesKey::GraphMaster { mailbox: ctx.mailbox, master_id };
            let series_id = (ctx.series)(&key)
                .ok_or_else(|| ObserveError::UnknownSeries { side: S, key: master_id.to_owned() })?;
            let original_start = match (event.original_start, appointment_type) {
                (Some(at), _) => at,
                (None, AppointmentType::Occurrence) => start,
                (None, _) => {
                    return Err(missing(
                        S,
                        "originalStart",
                        "an exception is identified by its original start: fetch it with a GET",
                    ));
                }
            };
            Some(SeriesRef { series_id, original_start })
        }
        _ => None,
    };

    let orb_match_id = match event.extended_property(ctx.match_property_id) {
        Some(value) => Some(value.trim().parse::<BookingId>().map_err(|_| {
            ObserveError::MalformedMatchId { side: S, carrier: "extended property", value: value.to_owned() }
        })?),
        None => event.transaction_id.as_deref().and_then(|t| t.trim().parse::<BookingId>().ok()),
    };

    let calendar = match (room_copy, ctx.mailbox) {
        (Some(_), _) => "room",
        (None, Some(m)) if *m == organizer || event.is_organizer == Some(true) => "organizer",
        (None, Some(_)) => "attendee",
        (None, None) => "unknown",
    };
    unsynced.insert("calendar".to_owned(), calendar.to_owned());
    if let Some(v) = event.importance {
        unsynced.insert("importance".to_owned(), v.as_str().to_owned());
    }
    if let Some(v) = event.sensitivity {
        unsynced.insert("sensitivity".to_owned(), v.as_str().to_owned());
    }
    if let Some(v) = event.show_as {
        unsynced.insert("showAs".to_owned(), v.as_str().to_owned());
    }
    for (key, flag) in [
        ("isAllDay", event.is_all_day),
        ("isOnlineMeeting", event.is_online_meeting),
        ("isDraft", event.is_draft),
        ("hasAttachments", event.has_attachments),
    ] {
        if let Some(v) = flag {
            unsynced.insert(key.to_owned(), v.to_string());
        }
    }

    Ok(Observation {
        side: S,
        source: ctx.source,
        orb_match_id,
        ids: RemoteIds {
            event_id,
            ical_uid: event.ical_uid.clone(),
            // Only the organizer's own item (ORB writes there, naming this version in `If-Match`): an
            // attendee's or a room's copy has its own version, which says nothing about the meeting's.
            change_key: event.change_key.clone().filter(|_| event.is_organizer != Some(false)),
            reservation_id: None,
            reservation_number: None,
        },
        room: room.map_or(ObservedRoom::None, ObservedRoom::Mailbox),
        start,
        end,
        time_zone,
        organizer,
        booked_by,
        participants,
        subject: event.subject.clone(),
        location_text: event.location.as_ref().and_then(|l| l.display_name.clone()).filter(|t| !t.is_empty()),
        lifecycle: if event.is_cancelled == Some(true) { Lifecycle::Cancelled } else { Lifecycle::Active },
        room_response,
        modified_at,
        appointment_type,
        series,
        unsynced,
        counterpart: None,
    })
}

/// The room's answer in its own calendar copy.
fn copy_response(event: &Event) -> RoomResponse {
    match event.response_status.as_ref().and_then(|s| s.response) {
        Some(ResponseType::TentativelyAccepted) => RoomResponse::Tentative,
        Some(ResponseType::Declined) => RoomResponse::Declined,
        _ => RoomResponse::Accepted,
    }
}

/// The room's answer as an attendee of the meeting (`NotResponded` when it is only a location).
fn attendee_response(event: &Event, room: &EmailAddress) -> RoomResponse {
    match event.attendee_response(room.as_str()) {
        Some(r) => room_response(Some(r)),
        None => RoomResponse::NotResponded,
    }
}

/// Observes a TOPdesk reservation. See the module docs for the rules.
pub fn from_topdesk_reservation(
    r: &ReservationDto,
    ctx: &ObserveContext<'_>,
) -> Result<Observation, ObserveError> {
    const S: Side = Side::Topdesk;
    let id = r.id.ok_or_else(|| missing(S, "id", "fetch the reservation by id with all fields"))?;
    let status = r.status.ok_or_else(|| missing(S, "status", "include status in $fields"))?;
    let modified_at = r
        .modification_date
        .map(orb_core::stored_precision)
        .ok_or_else(|| missing(S, "modificationDate", "include modificationDate in $fields"))?;
    let locations: Vec<TopdeskLocationId> = {
        let mut v = r.location_ids();
        v.dedup();
        v
    };
    let mapped: Vec<&TopdeskLocationId> =
        locations.iter().filter(|l| ctx.rooms.by_location(l).is_some()).collect();
    let location = match mapped.as_slice() {
        [one] => (*one).clone(),
        [] => locations.first().cloned().ok_or_else(|| ObserveError::NotARoomBooking {
            reservation: r.number.clone().unwrap_or_else(|| id.to_string()),
        })?,
        several => {
            return Err(ObserveError::SeveralRooms {
                rooms: several
                    .iter()
                    .filter_map(|l| ctx.rooms.by_location(l).map(|m| m.mailbox.address().clone()))
                    .collect(),
            });
        }
    };
    let facility = r
        .reserved_facilities
        .iter()
        .flatten()
        .find(|f| f.location.as_ref().and_then(|l| l.id.as_ref()) == Some(&location));
    let start = r
        .planned_start_date
        .or(facility.and_then(|f| f.planned_start_date))
        .ok_or_else(|| missing(S, "plannedStartDate", "include plannedStartDate in $fields"))?;
    let end = r
        .planned_end_date
        .or(facility.and_then(|f| f.planned_end_date))
        .ok_or_else(|| missing(S, "plannedEndDate", "include plannedEndDate in $fields"))?;

    let requester_text =
        r.requester.as_ref().and_then(|p| p.email.as_deref()).filter(|e| !e.trim().is_empty());
    let requester_text = requester_text.ok_or_else(|| {
        missing(S, "requester.email", "give the requester's person card an e-mail address in TOPdesk")
    })?;
    let requester = email(S, "requester.email", requester_text)?;
    let for_other = match r.reserved_for_other.as_ref().and_then(|p| p.email.as_deref()) {
        Some(text) if !text.trim().is_empty() => Some(email(S, "reservedForOther.email", text)?),
        _ => None,
    };
    let (organizer, booked_by) = match for_other {
        Some(other) if other != requester => (other, Some(requester)),
        _ => (requester, None),
    };

    let mut unsynced = BTreeMap::new();
    let mut participants = Vec::new();
    let mut unknown = 0usize;
    let mut unresolved_ids: Vec<String> = Vec::new();
    if let Some(p) = &r.participants {
        for person in p.persons.iter().flatten() {
            match person.id.map(PersonId).and_then(|pid| (ctx.persons)(&pid)) {
                Some(e) if !participants.contains(&e) => participants.push(e),
                Some(_) => {}
                None => {
                    unknown += 1;
                    if let Some(id) = person.id {
                        unresolved_ids.push(id.to_string());
                    }
                }
            }
        }
        let visitors = p.visitors.as_ref().map_or(0, Vec::len);
        if visitors > 0 {
            unsynced.insert("visitors".to_owned(), visitors.to_string());
        }
    }
    if unknown > 0 {
        unsynced.insert("unresolvedParticipants".to_owned(), unknown.to_string());
    }
    if !unresolved_ids.is_empty() {
        // Ids only (never names): the engine resolves them later against the persons it knows.
        unsynced.insert(UNRESOLVED_PARTICIPANT_IDS.to_owned(), unresolved_ids.join(","));
    }

    let lifecycle = match status {
        ReservationStatus::Cancelled | ReservationStatus::RejectedRequest => Lifecycle::Cancelled,
        _ => Lifecycle::Active,
    };
    let link_type = ctx.external_link_type;
    let orb_match_id = match r
        .external_links
        .iter()
        .flatten()
        .find(|l| l.kind.trim().parse::<i64>().ok() == Some(link_type))
    {
        Some(link) => Some(link.id.trim().parse::<BookingId>().map_err(|_| {
            ObserveError::MalformedMatchId { side: S, carrier: "external link", value: link.id.clone() }
        })?),
        None => None,
    };
    let series = match r.series.as_ref().and_then(|s| s.id) {
        Some(sid) => {
            let series_id = (ctx.series)(&SeriesKey::TopdeskSeries(sid))
                .ok_or_else(|| ObserveError::UnknownSeries { side: S, key: sid.to_string() })?;
            Some(SeriesRef { series_id, original_start: start })
        }
        None => None,
    };

    unsynced.insert("status".to_owned(), status.as_str().to_owned());
    if let Some(a) = r.archived {
        unsynced.insert("archived".to_owned(), a.to_string());
    }
    // Presence only, and only where the answer carried the field (a poll's list does not ask for it).
    if let Some(notes) = &r.notes {
        unsynced.insert("hasNotes".to_owned(), (!notes.is_empty()).to_string());
    }
    if let Some(n) = r.number_of_persons {
        unsynced.insert("numberOfPersons".to_owned(), n.to_string());
    }
    let services: usize = r
        .reserved_facilities
        .iter()
        .flatten()
        .map(|f| f.reserved_services.as_ref().map_or(0, Vec::len))
        .sum();
    if services > 0 {
        unsynced.insert("services".to_owned(), services.to_string());
    }

    let mapping = ctx.rooms.by_location(&location);
    Ok(Observation {
        side: S,
        source: ctx.source,
        orb_match_id,
        ids: RemoteIds {
            event_id: None,
            ical_uid: None,
            change_key: None,
            reservation_id: Some(id.to_string()),
            reservation_number: r.number.clone(),
        },
        time_zone: mapping.map(|m| m.time_zone.clone()),
        location_text: facility.and_then(|f| f.location.as_ref()).and_then(|l| l.name.clone()),
        room: ObservedRoom::Location(location),
        start,
        end,
        organizer,
        booked_by,
        participants,
        subject: r.brief_description.clone(),
        lifecycle,
        room_response: RoomResponse::Accepted,
        modified_at,
        appointment_type: if series.is_some() {
            AppointmentType::Occurrence
        } else {
            AppointmentType::Single
        },
        series,
        unsynced,
        counterpart: None,
    })
}

/// An item that is gone from `side` (Graph delta `@removed` / a `deleted` notification, a TOPdesk occurrence
/// removed from its series), described by what the ORB record knows: the planner sees the booking as it
/// was, now deleted.
///
/// `ids` are the ids the side gave (e.g. the removed event's id); `at` is when ORB learned of it (Graph
/// gives no time for a removal), used as the modification time. The room is the record's room as that side
/// names it ([`ObservedRoom::None`] if the mapping is gone).
pub fn deleted(
    side: Side,
    ids: RemoteIds,
    record: &BookingRecord,
    at: DateTime<Utc>,
    ctx: &ObserveContext<'_>,
) -> Observation {
    let room = match (ctx.rooms.by_id(record.room_id), side) {
        (Some(m), Side::Exchange) => ObservedRoom::Mailbox(m.mailbox.address().clone()),
        (Some(m), Side::Topdesk) => ObservedRoom::Location(m.location.clone()),
        (None, _) => ObservedRoom::None,
    };
    Observation {
        side,
        source: ctx.source,
        orb_match_id: None,
        ids,
        room,
        start: record.start,
        end: record.end,
        time_zone: Some(record.time_zone.clone()),
        organizer: record.organizer.clone(),
        booked_by: None,
        participants: record.participants.clone(),
        subject: record.subject.clone(),
        location_text: record.location_text.clone(),
        lifecycle: Lifecycle::Deleted,
        room_response: RoomResponse::Accepted,
        modified_at: at,
        appointment_type: record.appointment_type,
        series: record
            .series_id
            .zip(record.original_start)
            .map(|(series_id, original_start)| SeriesRef { series_id, original_start }),
        unsynced: BTreeMap::new(),
        counterpart: None,
    }
}

/// The [`RemoteIds`] of a Graph delta `@removed` item (or a `deleted` notification's resource id).
pub fn graph_removed_ids(event: &Event) -> RemoteIds {
    RemoteIds { event_id: event.id.clone(), ..RemoteIds::default() }
}

// ---- ids derived from an observation, and the privacy scrub ----

/// The match id a *new* booking gets from its first observation: derived from the item's identity on its
/// side (tenant, side, event / reservation id, iCalUId and original start), laid out as a UUIDv7 whose
/// time is the booking's start. A job that created the other side's item and was killed before its commit
/// runs again with the same match id, so the executor finds that item by the match id (TOPdesk external
/// link, Graph transactionId) instead of making a second one. `None` when the item has no id.
pub fn derived_booking_id(tenant: TenantId, obs: &Observation) -> Option<BookingId> {
    let key = match obs.side {
        Side::Exchange => obs.ids.ical_uid.clone().or_else(|| obs.ids.event_id.clone())?,
        Side::Topdesk => obs.ids.reservation_id.clone()?,
    };
    let original = obs.series.map(|s| s.original_start.to_rfc3339()).unwrap_or_default();
    let text = format!("{tenant}\n{:?}\n{key}\n{original}", obs.side);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut random = [0_u8; 10];
    random.copy_from_slice(&digest.as_ref()[..10]);
    let millis = u64::try_from(obs.start.timestamp_millis()).unwrap_or(0);
    Some(BookingId::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()))
}

/// ORB's series id for a side's series key: a name-based UUID (version 8) of the tenant and the key, so
/// the same master (or TOPdesk series) always gives the same id without a look-up table.
pub fn series_id_for(tenant: TenantId, key: &SeriesKey<'_>) -> SeriesId {
    let text = match key {
        SeriesKey::GraphMaster { mailbox, master_id } => {
            format!("graph\n{tenant}\n{}\n{master_id}", mailbox.map_or("", |m| m.as_str()))
        }
        SeriesKey::TopdeskSeries(id) => format!("topdesk\n{tenant}\n{id}"),
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    SeriesId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// The observation as the tenant's privacy policy allows it to travel: under `drop` the subject is gone
/// before anything is planned, logged, stored in a job or written (DESIGN §4 rule 13).
pub fn scrubbed(policy: &Policy, mut obs: Observation) -> Observation {
    if policy.subject == SubjectPolicy::Drop {
        obs.subject = None;
        if let Some(other) = obs.counterpart.take() {
            obs.counterpart = Some(Box::new(scrubbed(policy, *other)));
        }
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_ids_are_stable_per_tenant_and_key() {
        let tenant: TenantId = "0190f0e4-7d1c-7a3b-9a6f-0000000000f0".parse().unwrap();
        let other: TenantId = "0190f0e4-7d1c-7a3b-9a6f-0000000000f1".parse().unwrap();
        let room = EmailAddress::parse("room1@contoso.com").unwrap();
        let key = SeriesKey::GraphMaster { mailbox: Some(&room), master_id: "AAMk1" };
        assert_eq!(series_id_for(tenant, &key), series_id_for(tenant, &key));
        assert_ne!(series_id_for(tenant, &key), series_id_for(other, &key));
        let other_master = SeriesKey::GraphMaster { mailbox: Some(&room), master_id: "AAMk2" };
        assert_ne!(series_id_for(tenant, &key), series_id_for(tenant, &other_master));
        let td = SeriesKey::TopdeskSeries(orb_topdesk::ReservationSeriesId(uuid::Uuid::nil()));
        assert_ne!(series_id_for(tenant, &key), series_id_for(tenant, &td));
    }

    #[test]
    fn a_dropped_subject_leaves_the_observation_at_once() {
        let at = DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let obs = Observation {
            side: Side::Exchange,
            source: ObservationSource::Notification,
            orb_match_id: None,
            ids: RemoteIds::default(),
            room: orb_core::ObservedRoom::None,
            start: at,
            end: at + chrono::Duration::hours(1),
            time_zone: None,
            organizer: EmailAddress::parse("anna@contoso.com").unwrap(),
            booked_by: None,
            participants: Vec::new(),
            subject: Some("Secret".into()),
            location_text: None,
            lifecycle: Lifecycle::Active,
            room_response: orb_core::RoomResponse::Accepted,
            modified_at: at,
            appointment_type: orb_core::AppointmentType::Single,
            series: None,
            unsynced: BTreeMap::new(),
            counterpart: None,
        };
        let with_counterpart = Observation { counterpart: Some(Box::new(obs.clone())), ..obs.clone() };
        let mut policy = Policy::new();
        assert_eq!(scrubbed(&policy, with_counterpart.clone()), with_counterpart, "keep: untouched");
        policy.subject = SubjectPolicy::Drop;
        let dropped = scrubbed(&policy, with_counterpart);
        assert_eq!(dropped.subject, None);
        assert_eq!(dropped.counterpart.and_then(|c| c.subject), None);
    }
}
