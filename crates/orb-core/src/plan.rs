//! The planner's output: actions, the new ORB record and timeline entries.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    BookingId, BookingRecord, ConflictPolicy, EmailAddress, MailTemplate, RoomId, RoomMailbox, SeriesId,
    Side, TimeZoneName, TopdeskLocationId,
};

/// Who a TOPdesk reservation is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Requester {
    /// The organizer, a known TOPdesk person.
    Person {
        /// TOPdesk person id.
        person_id: String,
        /// The person's e-mail.
        email: EmailAddress,
    },
    /// The tenant's fallback person, because the organizer is not a TOPdesk person.
    Fallback {
        /// TOPdesk person id of the fallback person.
        person_id: String,
        /// The fallback person's e-mail.
        email: EmailAddress,
        /// The organizer the reservation is really for.
        organizer: EmailAddress,
    },
}

impl Requester {
    /// The e-mail TOPdesk will show as requester.
    pub fn email(&self) -> &EmailAddress {
        match self {
            Self::Person { email, .. } | Self::Fallback { email, .. } => email,
        }
    }
}

/// Where an Exchange write goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeTarget {
    /// The organizer's calendar (organizer mode), with the room as resource attendee and location.
    Organizer {
        /// The organizer's mailbox.
        mailbox: EmailAddress,
    },
    /// The room mailbox's own calendar (room-only mode).
    RoomOnly {
        /// The room's mailbox.
        mailbox: RoomMailbox,
    },
}

/// How an Exchange meeting is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeCancel {
    /// Cancel the meeting (attendees are told).
    CancelMeeting,
    /// Remove only the room from the meeting.
    RemoveRoom,
    /// Delete the event in the room's calendar (room-only mode).
    DeleteRoomEvent,
}

/// What changes in an Exchange update. `None` = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeChanges {
    /// New room (resource attendee + location).
    pub room: Option<RoomMailbox>,
    /// New start and end.
    pub times: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// New attendee list (without the room).
    pub participants: Option<Vec<EmailAddress>>,
    /// New subject (`Some(None)` clears it).
    pub subject: Option<Option<String>>,
}

/// What changes in a TOPdesk `PATCH`. `None` = unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationChanges {
    /// New requester.
    pub requester: Option<Requester>,
    /// New participants.
    pub participants: Option<Vec<EmailAddress>>,
    /// New brief description (`Some(None)` clears it).
    pub brief_description: Option<Option<String>>,
}

/// One thing the executor must do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `POST /reservations` with the match id as external link.
    CreateReservation {
        /// Match id (external link).
        booking: BookingId,
        /// Room.
        location: TopdeskLocationId,
        /// Start.
        start: DateTime<Utc>,
        /// End.
        end: DateTime<Utc>,
        /// Requester.
        requester: Requester,
        /// Participants.
        participants: Vec<EmailAddress>,
        /// Brief description (≤ 100 characters).
        brief_description: Option<String>,
        /// The ORB series the occurrence belongs to (grouped into TOPdesk series by the executor).
        series: Option<SeriesId>,
    },
    /// `PATCH /reservations/{id}`.
    UpdateReservation {
        /// Match id.
        booking: BookingId,
        /// Reservation id, when known.
        reservation_id: Option<String>,
        /// What changes.
        changes: ReservationChanges,
    },
    /// `POST /reservations/{id}/reschedule`.
    RescheduleReservation {
        /// Match id.
        booking: BookingId,
        /// Reservation id, when known.
        reservation_id: Option<String>,
        /// New start.
        start: DateTime<Utc>,
        /// New end.
        end: DateTime<Utc>,
    },
    /// `POST /reservations/{id}/reservedFacilities/move`.
    MoveReservationRoom {
        /// Match id.
        booking: BookingId,
        /// Reservation id, when known.
        reservation_id: Option<String>,
        /// Old room.
        from: TopdeskLocationId,
        /// New room.
        to: TopdeskLocationId,
    },
    /// Set ORB's match id as the external link of a reservation made at the TOPdesk desk, once its
    /// Outlook meeting exists: both sides then carry the match id, so a lost database can be rebuilt by
    /// pairing on ids. TOPdesk takes the first link by PATCH; one already set is left as it is.
    LinkReservation {
        /// The booking (its match id is the link's id).
        booking: BookingId,
        /// The reservation.
        reservation_id: Option<String>,
    },
    /// `POST /reservations/{id}/cancel`.
    CancelReservation {
        /// Match id.
        booking: BookingId,
        /// Reservation id, when known.
        reservation_id: Option<String>,
    },
    /// Create the meeting in Exchange (`transactionId` = match id).
    CreateExchangeEvent {
        /// Match id.
        booking: BookingId,
        /// Organizer's calendar or the room's.
        target: ExchangeTarget,
        /// The room.
        room: RoomMailbox,
        /// Start.
        start: DateTime<Utc>,
        /// End.
        end: DateTime<Utc>,
        /// The zone to write the times in.
        time_zone: TimeZoneName,
        /// Organizer.
        organizer: EmailAddress,
        /// Attendees (without the room).
        participants: Vec<EmailAddress>,
        /// Subject.
        subject: Option<String>,
    },
    /// `PATCH` the meeting.
    UpdateExchangeEvent {
        /// Match id.
        booking: BookingId,
        /// Where the event is.
        target: ExchangeTarget,
        /// Event id, when known.
        event_id: Option<String>,
        /// What changes.
        changes: ExchangeChanges,
    },
    /// Cancel the meeting / remove the room / delete the room event.
    CancelExchangeEvent {
        /// Match id.
        booking: BookingId,
        /// Where the event is.
        target: ExchangeTarget,
        /// Event id, when known.
        event_id: Option<String>,
        /// How.
        how: ExchangeCancel,
    },
    /// Send a mail from a named template.
    SendMail {
        /// Template.
        template: MailTemplate,
        /// Recipient.
        to: EmailAddress,
        /// The booking it is about.
        booking: BookingId,
        /// The side's own reason, for mails about a refused write (never holds a subject).
        detail: Option<String>,
    },
    /// Both sides changed; the policy chose a winner and the loser's change is overwritten.
    RaiseConflict {
        /// Booking.
        booking: BookingId,
        /// The side whose change stands.
        winner: Side,
        /// The side whose change is overwritten.
        loser: Side,
        /// The policy that decided.
        policy: ConflictPolicy,
        /// Names of the fields the loser had changed differently.
        fields: Vec<String>,
    },
    /// The mass-deletion guard stopped a sweep; an admin must approve.
    MassDeletionAlert {
        /// Room.
        room: RoomId,
        /// How many bookings the sweep would cancel.
        cancelling: u32,
        /// How many future bookings the room has.
        future_bookings: u32,
    },
    /// Retry the failed write later (transient failures only).
    ScheduleRetry {
        /// Booking.
        booking: BookingId,
        /// The side whose write failed.
        side: Side,
        /// Wait this long.
        after: Duration,
    },
    /// Nothing to do, and why.
    Nothing {
        /// The reason.
        reason: NothingReason,
    },
}

/// What kind of change a write carries, as a person would name it: the planner answers a failed write
/// according to it (a refused create is "could not be made", a refused retime "the room is still booked at
/// the old time", a cancel is never answered with "pick another room").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WriteKind {
    /// A new reservation or meeting.
    Create,
    /// New start or end.
    Retime,
    /// Another room.
    Move,
    /// Other fields: requester, participants, subject.
    Change,
    /// A cancellation (or the room removed from the meeting).
    Cancel,
}

impl WriteKind {
    /// A short name for timelines and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Retime => "retime",
            Self::Move => "move",
            Self::Change => "change",
            Self::Cancel => "cancel",
        }
    }
}

impl Action {
    /// The action's name, for logs: names what ORB does, never a subject or an address.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::CreateReservation { .. } => "create-reservation",
            Self::UpdateReservation { .. } => "update-reservation",
            Self::RescheduleReservation { .. } => "reschedule-reservation",
            Self::MoveReservationRoom { .. } => "move-reservation",
            Self::LinkReservation { .. } => "link-reservation",
            Self::CancelReservation { .. } => "cancel-reservation",
            Self::CreateExchangeEvent { .. } => "create-event",
            Self::UpdateExchangeEvent { .. } => "update-event",
            Self::CancelExchangeEvent { .. } => "cancel-event",
            Self::SendMail { .. } => "send-mail",
            Self::RaiseConflict { .. } => "raise-conflict",
            Self::MassDeletionAlert { .. } => "mass-deletion-alert",
            Self::ScheduleRetry { .. } => "schedule-retry",
            Self::Nothing { .. } => "nothing",
        }
    }

    /// What kind of change this write carries (`None` for anything but a write). An Exchange update that
    /// moves the meeting to another room is a move, one that changes its times a retime.
    pub fn write_kind(&self) -> Option<WriteKind> {
        Some(match self {
            Self::CreateReservation { .. } | Self::CreateExchangeEvent { .. } => WriteKind::Create,
            Self::RescheduleReservation { .. } => WriteKind::Retime,
            Self::MoveReservationRoom { .. } => WriteKind::Move,
            Self::UpdateReservation { .. } | Self::LinkReservation { .. } => WriteKind::Change,
            Self::UpdateExchangeEvent { changes, .. } => {
                if changes.room.is_some() {
                    WriteKind::Move
                } else if changes.times.is_some() {
                    WriteKind::Retime
                } else {
                    WriteKind::Change
                }
            }
            Self::CancelReservation { .. } | Self::CancelExchangeEvent { .. } => WriteKind::Cancel,
            _ => return None,
        })
    }

    /// Whether the action writes to Exchange or TOPdesk.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Self::CreateReservation { .. }
                | Self::UpdateReservation { .. }
                | Self::RescheduleReservation { .. }
                | Self::MoveReservationRoom { .. }
                | Self::CancelReservation { .. }
                | Self::LinkReservation { .. }
                | Self::CreateExchangeEvent { .. }
                | Self::UpdateExchangeEvent { .. }
                | Self::CancelExchangeEvent { .. }
        )
    }

    /// Whether the action writes over an item the side already holds (an update, retime, move or
    /// cancellation; not a create, nor the external link ORB adds to a reservation), so a change made there
    /// since ORB last saw it would be lost.
    pub fn overwrites(&self) -> bool {
        self.is_write()
            && !matches!(
                self,
                Self::CreateReservation { .. }
                    | Self::CreateExchangeEvent { .. }
                    | Self::LinkReservation { .. }
            )
    }

    /// The side the action writes to.
    pub fn target_side(&self) -> Option<Side> {
        match self {
            Self::CreateReservation { .. }
            | Self::UpdateReservation { .. }
            | Self::RescheduleReservation { .. }
            | Self::MoveReservationRoom { .. }
            | Self::CancelReservation { .. }
            | Self::LinkReservation { .. } => Some(Side::Topdesk),
            Self::CreateExchangeEvent { .. }
            | Self::UpdateExchangeEvent { .. }
            | Self::CancelExchangeEvent { .. } => Some(Side::Exchange),
            _ => None,
        }
    }
}

/// Why a plan does nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NothingReason {
    /// The observation is what ORB last wrote or saw on that side (rule 3).
    Echo,
    /// The observation is older than a version ORB already processed on that side.
    Stale,
    /// A cancelled or deleted item ORB never tracked.
    NotTracked,
    /// The room is not a mapped, enabled room.
    UnmanagedRoom,
    /// The booking starts beyond the horizon.
    BeyondHorizon,
    /// The booking has already ended.
    InPast,
    /// The room has not answered the meeting yet.
    AwaitingRoomResponse,
    /// The room declined the meeting (rule 8).
    RoomDeclined,
    /// The item carries ORB's match id but there is no record (purged, or another tenant's).
    OrbItemWithoutRecord,
    /// The booking is already cancelled.
    AlreadyCancelled,
    /// Only fields ORB does not sync changed.
    NoSyncedFieldChanged,
    /// The organizer is not a TOPdesk person and no fallback person is configured.
    NoRequester,
    /// The end is not after the start.
    InvalidTimes,
    /// The mass-deletion guard holds this cancellation (rule 12).
    HeldByMassDeletionGuard,
    /// The failed write will not be retried (permanent failure).
    GivenUp,
}

impl NothingReason {
    /// A stable snake_case name (metrics labels, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Stale => "stale",
            Self::NotTracked => "not_tracked",
            Self::UnmanagedRoom => "unmanaged_room",
            Self::BeyondHorizon => "beyond_horizon",
            Self::InPast => "in_past",
            Self::AwaitingRoomResponse => "awaiting_room_response",
            Self::RoomDeclined => "room_declined",
            Self::OrbItemWithoutRecord => "orb_item_without_record",
            Self::AlreadyCancelled => "already_cancelled",
            Self::NoSyncedFieldChanged => "no_synced_field_changed",
            Self::NoRequester => "no_requester",
            Self::InvalidTimes => "invalid_times",
            Self::HeldByMassDeletionGuard => "held_by_mass_deletion_guard",
            Self::GivenUp => "given_up",
        }
    }
}

/// What happens to the ORB record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordChange {
    /// Nothing changes.
    Unchanged,
    /// A new record.
    Create(Box<BookingRecord>),
    /// The record's new state (the store checks `version`).
    Update(Box<BookingRecord>),
}

impl RecordChange {
    /// The record after the plan, if it changed.
    pub fn record(&self) -> Option<&BookingRecord> {
        match self {
            Self::Unchanged => None,
            Self::Create(r) | Self::Update(r) => Some(r),
        }
    }
}

/// The kind of a timeline entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimelineKind {
    /// An observation was received.
    Observed,
    /// A decision to write.
    Decision,
    /// A conflict was resolved by policy.
    Conflict,
    /// An alert (mass deletion).
    Alert,
    /// A mail is sent.
    Mail,
    /// A write failed.
    Failure,
    /// Nothing was done.
    Skipped,
}

/// One line of a booking's timeline. Details never contain a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When (the planner's `now`).
    pub at: DateTime<Utc>,
    /// Kind.
    pub kind: TimelineKind,
    /// The side it is about.
    pub side: Option<Side>,
    /// Human-readable detail (field names, never values of subjects).
    pub detail: String,
}

/// The planner's decision for one observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// The record after the plan.
    pub record: RecordChange,
    /// Timeline entries to append.
    pub timeline: Vec<TimelineEntry>,
}

impl Plan {
    /// The writes to the sides.
    pub fn writes(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.is_write())
    }

    /// Whether the plan writes over an item `side` already holds ([`Action::overwrites`]).
    pub fn overwrites(&self, side: Side) -> bool {
        self.actions.iter().any(|a| a.overwrites() && a.target_side() == Some(side))
    }

    /// The reason, when the plan does nothing.
    pub fn nothing_reason(&self) -> Option<NothingReason> {
        self.actions.iter().find_map(|a| match a {
            Action::Nothing { reason } => Some(*reason),
            _ => None,
        })
    }
}
