//! What one side says about one booking now, as the engine normalised it from a notification, a delta
//! page, a TOPdesk poll or push.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AppointmentType, BookingId, EmailAddress, SeriesId, Side, TimeZoneName, TopdeskLocationId};

/// The room as the side names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObservedRoom {
    /// An Exchange room mailbox (resource attendee / location e-mail).
    Mailbox(EmailAddress),
    /// A TOPdesk location (reserved facility).
    Location(TopdeskLocationId),
    /// No room.
    None,
}

/// Whether the item is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lifecycle {
    /// Live.
    Active,
    /// Cancelled (Graph `isCancelled`, TOPdesk `status: cancelled` / `rejectedRequest`).
    Cancelled,
    /// Gone (Graph `@removed`, a TOPdesk occurrence removed by `PUT …/occurrences/dates`).
    Deleted,
}

/// The room mailbox's answer to the meeting (Graph resource attendee `status.response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoomResponse {
    /// `accepted` (also: the room's own calendar copy, and every TOPdesk observation).
    Accepted,
    /// `tentativelyAccepted`.
    Tentative,
    /// `declined`.
    Declined,
    /// `none` / `notResponded`: the booking assistant has not answered yet.
    NotResponded,
}

/// Where the observation came from; the mass-deletion guard applies to sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObservationSource {
    /// A Graph change notification or a TOPdesk push.
    Notification,
    /// A TOPdesk poll of the near window.
    Poll,
    /// A reconciliation sweep (calendarView delta, a horizon poll).
    Sweep,
}

/// An occurrence's identity within its series: (series, original start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesRef {
    /// ORB's series id.
    pub series_id: SeriesId,
    /// The start the pattern gave the occurrence (Graph `originalStart`).
    pub original_start: DateTime<Utc>,
}

/// Ids of the item on its side; stored in the record's link, never hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteIds {
    /// Graph event id.
    pub event_id: Option<String>,
    /// Graph iCalUId.
    pub ical_uid: Option<String>,
    /// Graph changeKey.
    pub change_key: Option<String>,
    /// TOPdesk reservation id.
    pub reservation_id: Option<String>,
    /// TOPdesk reservation number.
    pub reservation_number: Option<String>,
}

/// One side's current state of one booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Which side this is.
    pub side: Side,
    /// Notification, poll or sweep.
    pub source: ObservationSource,
    /// ORB's match id found on the item (Graph extended property / TOPdesk external link): ORB made it.
    pub orb_match_id: Option<BookingId>,
    /// Ids on the side.
    pub ids: RemoteIds,
    /// Room.
    pub room: ObservedRoom,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// End (UTC).
    pub end: DateTime<Utc>,
    /// The zone the item was made in (Exchange); TOPdesk items take the room's zone.
    pub time_zone: Option<TimeZoneName>,
    /// Organizer (Exchange) or requester's e-mail (TOPdesk).
    pub organizer: EmailAddress,
    /// Who made it, when not the organizer (a secretary or delegate).
    pub booked_by: Option<EmailAddress>,
    /// Attendees / participants (rooms and the organizer are filtered out by the planner).
    pub participants: Vec<EmailAddress>,
    /// Subject / brief description, as the side holds it.
    pub subject: Option<String>,
    /// Location text shown in Outlook (not synced).
    pub location_text: Option<String>,
    /// Live, cancelled or deleted.
    pub lifecycle: Lifecycle,
    /// The room's answer (Exchange); `Accepted` for TOPdesk.
    pub room_response: RoomResponse,
    /// The side's modification time of this version (Graph `lastModifiedDateTime`, TOPdesk
    /// `modificationDate`).
    pub modified_at: DateTime<Utc>,
    /// Single, occurrence or exception.
    pub appointment_type: AppointmentType,
    /// For occurrences: the series and original start.
    pub series: Option<SeriesRef>,
    /// Fields ORB does not sync (body, importance, services, ...): never part of the fingerprint.
    pub unsynced: BTreeMap<String, String>,
    /// The other side's current state, when the engine has it at hand (a sweep that read both sides).
    /// Lets the planner see that both sides changed (rule 5).
    pub counterpart: Option<Box<Observation>>,
}
