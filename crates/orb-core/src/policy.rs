//! A tenant's sync policy and room map: the configurable half of the planner's rules (DESIGN §4).

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::{EmailAddress, RoomId, RoomMailbox, Side, TimeZoneName, TopdeskLocationId};

/// Where ORB creates Exchange meetings for reservations made in TOPdesk (rule 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// In the organizer's calendar, with the room as resource attendee and location.
    Organizer,
    /// Only in the room mailbox's calendar.
    RoomOnly,
}

/// What happens to meeting subjects (rule 13). Applied before anything is stored, written or logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectPolicy {
    /// Subjects are stored and synced as they are.
    Keep,
    /// The room side (the TOPdesk reservation, and the room's calendar in room-only mode) shows `text`;
    /// subjects read from the room side are never taken over.
    HideOnRoom {
        /// The neutral text, e.g. `Booked`.
        text: String,
    },
    /// Subjects are never stored, logged or sent anywhere.
    Drop,
}

/// Who wins when both sides changed since the last sync (rule 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictPolicy {
    /// Exchange is the dominant system.
    ExchangeWins,
    /// TOPdesk is the dominant system.
    TopdeskWins,
    /// The change with the later modification time wins; a tie goes to Exchange.
    LatestWins,
}

impl ConflictPolicy {
    /// Whether a change made on `side` can win a conflict under this policy. Before ORB overwrites a side
    /// it must know whether that side changed since the record's watermark only when such a change could
    /// win: under `exchange-wins` an Exchange change is written to TOPdesk without reading the
    /// reservation first (TOPdesk has no conditional write, so knowing would cost a read per change).
    pub const fn can_win(self, side: Side) -> bool {
        match self {
            Self::ExchangeWins => matches!(side, Side::Exchange),
            Self::TopdeskWins => matches!(side, Side::Topdesk),
            Self::LatestWins => true,
        }
    }
}

/// What a TOPdesk cancellation does to the Exchange meeting in organizer mode (rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancellationPolicy {
    /// Cancel the whole meeting, so every attendee is told.
    CancelMeeting,
    /// Remove only the room (resource attendee and location); the meeting itself stays.
    RemoveRoom,
}

/// What happens when TOPdesk refuses a booking made in Outlook (the room is blocked or taken in TOPdesk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopdeskRefusal {
    /// The organizer is mailed; the meeting keeps the room in Outlook and the record stays failed for an
    /// operator (the sides disagree until someone acts).
    #[default]
    Mail,
    /// TOPdesk is the dominant system for room availability: the room is released in Outlook (removed from
    /// the meeting in organizer mode, the room's event deleted in room-only mode), the organizer is mailed
    /// why, and the booking ends converged (neither side holds it).
    ReleaseRoom,
}

/// A named mail template ORB can send to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MailTemplate {
    /// The organizer is unknown in TOPdesk; the reservation was made for the fallback person.
    FallbackPersonUsed,
    /// The room declined the meeting; there is no reservation.
    RoomDeclined,
    /// Both sides changed; the organizer's change on the losing side was overwritten.
    ConflictOverwritten,
    /// The other side refused the booking for good (e.g. the room is occupied in TOPdesk).
    BookingRefused,
    /// The meeting moved to a room ORB does not manage; the reservation was cancelled.
    MovedToUnmanagedRoom,
    /// The other side refused a change of an existing booking (new time, other room, …) for good: the room
    /// is still booked as before.
    ChangeNotCarriedOver,
    /// TOPdesk refused the booking and decides room availability: the room was released in Outlook.
    RoomReleased,
}

impl MailTemplate {
    /// Every template.
    pub const ALL: &'static [Self] = &[
        Self::FallbackPersonUsed,
        Self::RoomDeclined,
        Self::ConflictOverwritten,
        Self::BookingRefused,
        Self::MovedToUnmanagedRoom,
        Self::ChangeNotCarriedOver,
        Self::RoomReleased,
    ];

    /// The template's stable name (the file name of the template in the engine).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FallbackPersonUsed => "fallback-person-used",
            Self::RoomDeclined => "room-declined",
            Self::ConflictOverwritten => "conflict-overwritten",
            Self::BookingRefused => "booking-refused",
            Self::MovedToUnmanagedRoom => "moved-to-unmanaged-room",
            Self::ChangeNotCarriedOver => "change-not-carried-over",
            Self::RoomReleased => "room-released",
        }
    }
}

/// The TOPdesk person a reservation is made for when its organizer is not a TOPdesk person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FallbackPerson {
    /// TOPdesk person id.
    pub person_id: String,
    /// The person's e-mail as TOPdesk shows it as requester.
    pub email: EmailAddress,
}

/// The mass-deletion guard (rule 12): a sweep may not cancel more than `max_share_percent` of a room's
/// future bookings without an admin's approval. Rooms with at most `min_bookings` future bookings are
/// never guarded (cancelling 2 of 3 is normal life, not an incident).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MassDeletionGuard {
    /// Largest share (percent) of a room's future bookings one sweep may cancel.
    pub max_share_percent: u8,
    /// Rooms with this many future bookings or fewer are not guarded.
    pub min_bookings: u32,
}

impl MassDeletionGuard {
    /// Whether a sweep that cancels `cancelling` of `future_bookings` must stop.
    pub fn trips(&self, cancelling: u32, future_bookings: u32) -> bool {
        future_bookings > self.min_bookings
            && u64::from(cancelling) * 100 > u64::from(self.max_share_percent) * u64::from(future_bookings)
    }
}

/// A tenant's sync policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Organizer or room-only mode.
    pub mode: Mode,
    /// Subject privacy.
    pub subject: SubjectPolicy,
    /// Conflict resolution.
    pub conflict: ConflictPolicy,
    /// What a TOPdesk cancellation does in Exchange.
    pub cancellation: CancellationPolicy,
    /// Requester for reservations whose organizer is not a TOPdesk person.
    pub fallback_person: Option<FallbackPerson>,
    /// Mass-deletion guard.
    pub mass_deletion: MassDeletionGuard,
    /// How far ahead bookings are synced (default 180 days).
    pub horizon: Duration,
    /// Which events send which mail.
    pub mail: BTreeSet<MailTemplate>,
    /// What a booking TOPdesk refuses does in Outlook.
    pub topdesk_refusal: TopdeskRefusal,
}

impl Policy {
    /// The defaults of DESIGN: organizer mode, keep subjects, Exchange wins, cancel the meeting, a guard at
    /// 30 % of more than 5 bookings, a horizon of 180 days, every mail on, no fallback person.
    pub fn new() -> Self {
        Self {
            mode: Mode::Organizer,
            subject: SubjectPolicy::Keep,
            conflict: ConflictPolicy::ExchangeWins,
            cancellation: CancellationPolicy::CancelMeeting,
            fallback_person: None,
            mass_deletion: MassDeletionGuard { max_share_percent: 30, min_bookings: 5 },
            horizon: Duration::days(180),
            mail: MailTemplate::ALL.iter().copied().collect(),
            topdesk_refusal: TopdeskRefusal::Mail,
        }
    }

    /// Whether `template` is to be sent.
    pub fn mails(&self, template: MailTemplate) -> bool {
        self.mail.contains(&template)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

/// One mapped room: Exchange room mailbox ↔ TOPdesk location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMapping {
    /// ORB's id of the mapping.
    pub id: RoomId,
    /// The room mailbox (the stable key on the Exchange side).
    pub mailbox: RoomMailbox,
    /// The TOPdesk location.
    pub location: TopdeskLocationId,
    /// The room's zone (for bookings made in TOPdesk, which only knows UTC).
    pub time_zone: TimeZoneName,
    /// Only enabled rooms are synced.
    pub enabled: bool,
    /// The room's name as people know it (mails name the room by it, never by its mailbox address).
    #[serde(default)]
    pub name: Option<String>,
}

/// The tenant's mapped rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMap {
    rooms: Vec<RoomMapping>,
}

impl RoomMap {
    /// A room map from its mappings.
    pub fn new(rooms: Vec<RoomMapping>) -> Self {
        Self { rooms }
    }

    /// Every mapping, enabled or not, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &RoomMapping> {
        self.rooms.iter()
    }

    /// The enabled mapping for a room mailbox.
    pub fn by_mailbox(&self, mailbox: &EmailAddress) -> Option<&RoomMapping> {
        self.rooms.iter().find(|r| r.enabled && r.mailbox.address() == mailbox)
    }

    /// The enabled mapping for a TOPdesk location.
    pub fn by_location(&self, location: &TopdeskLocationId) -> Option<&RoomMapping> {
        self.rooms.iter().find(|r| r.enabled && &r.location == location)
    }

    /// The mapping with this id (enabled or not).
    pub fn by_id(&self, id: RoomId) -> Option<&RoomMapping> {
        self.rooms.iter().find(|r| r.id == id)
    }

    /// Whether `address` is any mapped room's mailbox (rooms are not participants).
    pub fn is_room_address(&self, address: &EmailAddress) -> bool {
        self.rooms.iter().any(|r| r.mailbox.address() == address)
    }
}

/// What ORB knows of TOPdesk persons: e-mail → person id (looked up by the engine before planning).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonDirectory {
    persons: BTreeMap<EmailAddress, String>,
}

impl PersonDirectory {
    /// A directory from `(e-mail, person id)` pairs.
    pub fn new(persons: impl IntoIterator<Item = (EmailAddress, String)>) -> Self {
        Self { persons: persons.into_iter().collect() }
    }

    /// The TOPdesk person id for an e-mail address.
    pub fn person_id(&self, email: &EmailAddress) -> Option<&str> {
        self.persons.get(email).map(String::as_str)
    }
}
