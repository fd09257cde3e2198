//! Typed values of the EWS operations ORB uses (the subset of `types.xsd` it reads and writes).

use chrono::{DateTime, SecondsFormat, Utc};
use orb_core::EmailAddress;

use crate::series::{OccurrenceInfo, Recurrence};

/// The `RequestServerVersion` ORB sends: every operation it uses exists at this level, and Exchange
/// 2016 / 2019 / SE accept it (ews.md §1.3).
pub const REQUEST_SERVER_VERSION: &str = "Exchange2013_SP1";

/// The property set of ORB's extended properties: the same GUID as the Graph client's
/// `singleValueExtendedProperties` id, so that Graph and EWS read and write one MAPI named property.
pub const ORB_PROPERTY_SET_ID: &str = "6c1f3a52-8f0e-4d4b-9b7e-0a5d2c9e4f11";
/// The name of the extended property holding ORB's match id.
pub const ORB_MATCH_PROPERTY_NAME: &str = "OrbMatchId";

/// An EWS item id with its change key (opaque, case-sensitive; a new change key on every change).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemId {
    /// `Id`.
    pub id: String,
    /// `ChangeKey` (absent in some answers, e.g. `Delete` changes).
    pub change_key: Option<String>,
}

impl ItemId {
    /// An id with a change key.
    pub fn new(id: impl Into<String>, change_key: impl Into<String>) -> Self {
        Self { id: id.into(), change_key: Some(change_key.into()) }
    }
}

/// `CalendarItemType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarItemType {
    /// A single appointment.
    Single,
    /// An occurrence of a series.
    Occurrence,
    /// A changed occurrence.
    Exception,
    /// A series master.
    RecurringMaster,
}

impl CalendarItemType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "Single",
            Self::Occurrence => "Occurrence",
            Self::Exception => "Exception",
            Self::RecurringMaster => "RecurringMaster",
        }
    }

    /// Parses the wire value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Single" => Self::Single,
            "Occurrence" => Self::Occurrence,
            "Exception" => Self::Exception,
            "RecurringMaster" => Self::RecurringMaster,
            _ => return None,
        })
    }
}

/// `ResponseType` / `MyResponseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseType {
    /// `Unknown`.
    Unknown,
    /// `Organizer`.
    Organizer,
    /// `Tentative`.
    Tentative,
    /// `Accept`.
    Accept,
    /// `Decline`.
    Decline,
    /// `NoResponseReceived`.
    NoResponseReceived,
}

impl ResponseType {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Organizer => "Organizer",
            Self::Tentative => "Tentative",
            Self::Accept => "Accept",
            Self::Decline => "Decline",
            Self::NoResponseReceived => "NoResponseReceived",
        }
    }

    /// Parses the wire value (anything unknown is `Unknown`).
    pub fn parse(s: &str) -> Self {
        match s {
            "Organizer" => Self::Organizer,
            "Tentative" => Self::Tentative,
            "Accept" => Self::Accept,
            "Decline" => Self::Decline,
            "NoResponseReceived" => Self::NoResponseReceived,
            _ => Self::Unknown,
        }
    }
}

/// A mailbox as EWS shows it (`t:Mailbox`): FindItem gives only the name; GetItem also the address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mailbox {
    /// `Name`.
    pub name: Option<String>,
    /// `EmailAddress` (with `RoutingType` `SMTP`; an `EX` address is kept as text, U19).
    pub email: Option<String>,
}

/// An attendee with its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attendee {
    /// Who.
    pub mailbox: Mailbox,
    /// `ResponseType`, if shown.
    pub response: Option<ResponseType>,
}

/// A calendar item as read (FindItem or GetItem): only what was asked for is `Some`. There is no body
/// field: ORB never asks for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarItem {
    /// Id and change key.
    pub item_id: ItemId,
    /// `Subject` (a room copy's may be the organizer's name, §7).
    pub subject: Option<String>,
    /// ORB's match id from the extended property, if set on this item.
    pub match_id: Option<String>,
    /// `LastModifiedTime`.
    pub last_modified: Option<DateTime<Utc>>,
    /// `UID` (shared by the organizer's item and the room's copy, U9).
    pub uid: Option<String>,
    /// `Start`.
    pub start: Option<DateTime<Utc>>,
    /// `End`.
    pub end: Option<DateTime<Utc>>,
    /// `Location`.
    pub location: Option<String>,
    /// `IsCancelled`.
    pub is_cancelled: Option<bool>,
    /// `CalendarItemType`.
    pub item_type: Option<CalendarItemType>,
    /// `MyResponseType`.
    pub my_response: Option<ResponseType>,
    /// `LegacyFreeBusyStatus`.
    pub free_busy: Option<String>,
    /// `Organizer`.
    pub organizer: Option<Mailbox>,
    /// `RequiredAttendees`.
    pub required_attendees: Vec<Attendee>,
    /// `Resources` (rooms).
    pub resources: Vec<Attendee>,
    /// `AppointmentState` bitmask (1 meeting, 2 received, 4 cancelled).
    pub appointment_state: Option<u32>,
    /// `OriginalStart` of an occurrence or exception: where the pattern put it, its identity in the
    /// series (with the shared `UID`, what ties it to its master).
    pub original_start: Option<DateTime<Utc>>,
    /// `Recurrence` of a master.
    pub recurrence: Option<Recurrence>,
    /// `FirstOccurrence` of a master.
    pub first_occurrence: Option<OccurrenceInfo>,
    /// `LastOccurrence` of a master (none for a series without end).
    pub last_occurrence: Option<OccurrenceInfo>,
    /// `ModifiedOccurrences` of a master: its exceptions.
    pub modified_occurrences: Vec<OccurrenceInfo>,
    /// `DeletedOccurrences` of a master: the original starts of deleted or cancelled occurrences.
    pub deleted_occurrences: Vec<DateTime<Utc>>,
    /// `StartTimeZone` `Id` (the zone the series is evaluated in).
    pub start_time_zone: Option<String>,
}

/// A meeting ORB creates in an organizer's calendar, inviting one room and any people; or, without a
/// room, a plain appointment ORB creates in a room's own calendar ("room only": ORB writes nothing but
/// the room's calendar, impersonating the room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMeeting {
    /// Subject.
    pub subject: String,
    /// ORB's match id (the extended property).
    pub match_id: String,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// End (UTC), after `start`.
    pub end: DateTime<Utc>,
    /// `Location` text (the room's display name).
    pub location: Option<String>,
    /// The room, invited as a `Resources` attendee with invitations sent (`SendToAllAndSaveCopy`), so
    /// its booking attendant answers. `None`: a plain appointment (no `Resources`, no attendees,
    /// `SendToNone`) in the impersonated mailbox, which is then the room itself: the room's own item,
    /// not processed by its attendant (ews.md §3.4).
    pub room: Option<EmailAddress>,
    /// The people invited (`RequiredAttendees`), in order, each once; none without a `room`.
    pub attendees: Vec<EmailAddress>,
    /// Windows time zone id for `StartTimeZone`/`EndTimeZone` (the room's zone), e.g. `W. Europe Standard Time`.
    /// A series is evaluated in it: give one with every recurrence.
    pub time_zone: Option<String>,
    /// A series: `start`/`end` are the first occurrence's, the range's start date is that day in
    /// `time_zone`.
    pub recurrence: Option<Recurrence>,
}

impl NewMeeting {
    /// The most people one meeting may invite: Exchange's default `MaxRecipientEnvelopeLimit` (500), which
    /// the invitation would otherwise hit in transport after the item was saved.
    pub const MAX_ATTENDEES: usize = 500;

    /// Checks the people and the room (times, match id and series are checked by the client); the
    /// message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.room.is_none() && !self.attendees.is_empty() {
            return Err("a room-only appointment (no room) invites nobody: it is written straight into the \
                        room's calendar without invitations; give the room to invite people, or drop the \
                        attendees"
                .into());
        }
        check_people(&self.attendees, self.room.as_ref())
    }
}

/// People for `RequiredAttendees`: at most [`NewMeeting::MAX_ATTENDEES`], each once, not the room.
fn check_people(people: &[EmailAddress], room: Option<&EmailAddress>) -> Result<(), String> {
    if people.len() > NewMeeting::MAX_ATTENDEES {
        return Err(format!(
            "a meeting may invite at most {} people ({} given)",
            NewMeeting::MAX_ATTENDEES,
            people.len()
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for p in people {
        if !seen.insert(p.as_str().to_ascii_lowercase()) {
            return Err(format!("{p} is among the attendees twice; list each person once"));
        }
        if room.is_some_and(|r| r.as_str().eq_ignore_ascii_case(p.as_str())) {
            return Err(format!(
                "{p} is the meeting's room; a room is invited as the room, not as an attendee"
            ));
        }
    }
    Ok(())
}

/// The changes of one `UpdateItem` (each `Some` becomes one `SetItemField`; removals are
/// `DeleteItemField`s).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeetingChange {
    /// New subject.
    pub subject: Option<String>,
    /// New start.
    pub start: Option<DateTime<Utc>>,
    /// New end.
    pub end: Option<DateTime<Utc>>,
    /// New location text.
    pub location: Option<String>,
    /// New room (replaces `Resources` as a whole; the old room gets a cancellation).
    pub room: Option<EmailAddress>,
    /// New people (`RequiredAttendees`, replaced as a whole, ews.md §3.5; updates go to all, so people
    /// left out get a cancellation). An empty list removes them all (`DeleteItemField`: the schema allows
    /// no empty attendee list).
    pub attendees: Option<Vec<EmailAddress>>,
    /// Drop the room (`DeleteItemField` of `calendar:Resources`): it gets a cancellation and its copy is
    /// cancelled; the organizer's item keeps no room. Not together with `room`.
    pub remove_rooms: bool,
    /// New match id.
    pub match_id: Option<String>,
}

impl MeetingChange {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Checks what cannot be sent; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.remove_rooms && self.room.is_some() {
            return Err("an update either sets a new room or removes the rooms, not both; to replace the \
                        room, set `room` alone (the old room gets a cancellation)"
                .into());
        }
        match &self.attendees {
            Some(people) => check_people(people, self.room.as_ref()),
            None => Ok(()),
        }
    }
}

/// A time window for a `CalendarView` (`[start, end)`, at most two years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `StartDate`.
    pub start: DateTime<Utc>,
    /// `EndDate`.
    pub end: DateTime<Utc>,
}

/// One page of a `FindItem` `CalendarView`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarPage {
    /// The items (singles, occurrences, exceptions).
    pub items: Vec<CalendarItem>,
    /// `IncludesLastItemInRange`: false means the window held more than `MaxEntriesReturned`.
    pub includes_last: bool,
}

/// One change reported by `SyncFolderItems`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncChange {
    /// A new item.
    Create(CalendarItem),
    /// A changed item.
    Update(CalendarItem),
    /// A deleted item (id only).
    Delete(ItemId),
}

/// One page of `SyncFolderItems`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    /// The state to persist and send next time.
    pub sync_state: String,
    /// False while more pages follow.
    pub includes_last: bool,
    /// The changes, in order.
    pub changes: Vec<SyncChange>,
}

/// A room list or room (`t:Address` / `t:Room/t:Id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// `Name`.
    pub name: String,
    /// `EmailAddress`.
    pub email: String,
}

/// A push subscription ORB asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    /// Where Exchange POSTs (`URL`), e.g. `https://orb.example/hooks/ews/{tenant}`.
    pub url: String,
    /// `StatusFrequency` in minutes (1–1440).
    pub status_frequency_minutes: u32,
    /// Resume point (`Watermark`); Microsoft recommends none after a lost subscription.
    pub watermark: Option<String>,
}

/// A created subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `SubscriptionId`.
    pub id: String,
    /// `Watermark`.
    pub watermark: Option<String>,
}

/// A plain-text mail ORB sends to people (confirmations, refusals), from the impersonated sender mailbox
/// ([`crate::EwsClient::send_mail`]). Its body is ORB's own text, never a person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// `ToRecipients` (at least one).
    pub to: Vec<EmailAddress>,
    /// `Subject` (one line, not blank).
    pub subject: String,
    /// `Body BodyType="Text"`.
    pub body_text: String,
}

impl OutgoingMail {
    /// The most recipients one mail may name: Exchange's default `MaxRecipientEnvelopeLimit` (500); a
    /// larger list is refused before sending rather than by the transport after it.
    pub const MAX_RECIPIENTS: usize = 500;

    /// Checks what Exchange would refuse or mangle; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.to.is_empty() {
            return Err("a mail needs at least one recipient".into());
        }
        if self.to.len() > Self::MAX_RECIPIENTS {
            return Err(format!(
                "a mail may name at most {} recipients ({} given); send several mails",
                Self::MAX_RECIPIENTS,
                self.to.len()
            ));
        }
        if self.subject.trim().is_empty() {
            return Err("a mail ORB sends needs a subject".into());
        }
        if self.subject.contains(['\r', '\n']) {
            return Err("a mail's subject is one line; it contains a line break".into());
        }
        for (what, text) in [("subject", &self.subject), ("body", &self.body_text)] {
            if !crate::xml::is_xml_text(text) {
                return Err(format!(
                    "the mail's {what} contains a control character XML cannot carry; remove it"
                ));
            }
        }
        Ok(())
    }
}

/// `xs:dateTime` in UTC with a `Z`, whole seconds (what ORB sends).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an `xs:dateTime` that carries a zone (`Z` or an offset; EWS answers always carry one).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}
