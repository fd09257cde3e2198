//! The EWS emulator's state and Exchange's meeting semantics on it: mailboxes with items, change keys
//! with history, room copies processed by the booking attendant, the per-mailbox change log that
//! SyncFolderItems and subscriptions read.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use orb_ews::series::Recurrence;
use serde::{Deserialize, Serialize};

/// Which mailboxes an account may impersonate (its ApplicationImpersonation role assignment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// No ApplicationImpersonation role: every impersonation is `ErrorImpersonationDenied`.
    None,
    /// The role without a management scope: every mailbox.
    All,
    /// The role with a management scope of these addresses (lower case); others are
    /// `ErrorImpersonateUserDenied`.
    Mailboxes(BTreeSet<String>),
}

/// A service account.
#[derive(Debug, Clone)]
pub struct Account {
    pub(crate) password: String,
    pub(crate) scope: Scope,
}

/// A room's calendar processing (`Set-CalendarProcessing`), the parts the emulator models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// `AutomateProcessing AutoAccept` (false: `None`, requests are not processed and no copy appears).
    pub auto_accept: bool,
    /// `AllowConflicts`.
    pub allow_conflicts: bool,
    /// `DeleteSubject`.
    pub delete_subject: bool,
    /// `AddOrganizerToSubject`.
    pub add_organizer_to_subject: bool,
    /// `DeleteComments` (the body is removed from the room's copy).
    pub delete_comments: bool,
    /// `BookingWindowInDays`: requests starting later are declined; a series is checked for conflicts
    /// within it.
    pub booking_window_days: u32,
}

impl Default for RoomSettings {
    /// Exchange's defaults for a room made in the admin centre: AutoAccept, no conflicts, subject
    /// replaced by the organizer's name, comments deleted.
    fn default() -> Self {
        Self {
            auto_accept: true,
            allow_conflicts: false,
            delete_subject: true,
            add_organizer_to_subject: true,
            delete_comments: true,
            booking_window_days: 180,
        }
    }
}

/// An attendee on an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Att {
    /// Display name.
    pub name: String,
    /// Address (lower case).
    pub email: String,
    /// `ResponseType`.
    pub response: String,
}

/// Key of an extended property: (property set GUID lower case, name, type).
pub type PropKey = (String, String, String);

/// `CalendarItemType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// A single item.
    Single,
    /// An occurrence of a series (never stored: made from the master on the fly).
    Occurrence,
    /// A changed occurrence (stored in its master).
    Exception,
    /// A series master.
    RecurringMaster,
}

impl Kind {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "Single",
            Self::Occurrence => "Occurrence",
            Self::Exception => "Exception",
            Self::RecurringMaster => "RecurringMaster",
        }
    }
}

/// A changed occurrence, kept in its master by original start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exception {
    /// Its own change key.
    pub change_key: String,
    /// `Start`.
    pub start: DateTime<Utc>,
    /// `End`.
    pub end: DateTime<Utc>,
    /// `Subject`.
    pub subject: String,
    /// `Location`.
    pub location: Option<String>,
}

/// One calendar item (a tombstone once deleted, for SyncFolderItems).
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// `ItemId`.
    pub id: String,
    /// Current `ChangeKey`.
    pub change_key: String,
    /// Every change key this item had, with the fields changed *to reach* it (for AutoResolve).
    #[serde(skip)]
    pub history: Vec<(String, Vec<String>)>,
    /// `Subject`.
    pub subject: String,
    /// `Body` text, if any (only returned when a request asks for it).
    pub body: Option<String>,
    /// `Start`.
    pub start: DateTime<Utc>,
    /// `End`.
    pub end: DateTime<Utc>,
    /// `Location`.
    pub location: Option<String>,
    /// `UID` (shared by the organizer's item and the room copies).
    pub uid: String,
    /// Organizer (name, address).
    pub organizer: (String, String),
    /// `RequiredAttendees`.
    pub required: Vec<Att>,
    /// `Resources`.
    pub resources: Vec<Att>,
    /// `IsCancelled`.
    pub is_cancelled: bool,
    /// `MyResponseType`.
    pub my_response: String,
    /// Whether this is a meeting (has attendees), for `AppointmentState`.
    pub is_meeting: bool,
    /// Whether this copy was received (an attendee's / room's copy).
    pub received: bool,
    /// `LegacyFreeBusyStatus`.
    pub free_busy: String,
    /// `StartTimeZone` id.
    pub time_zone: Option<String>,
    /// Extended properties (only on the item where they were set: not copied to room copies, U9).
    #[serde(skip)]
    pub ext: BTreeMap<PropKey, String>,
    /// Extended properties for the control API.
    pub extended: BTreeMap<String, String>,
    /// `LastModifiedTime`.
    pub last_modified: DateTime<Utc>,
    /// Change-log position of the creation.
    pub created_seq: u64,
    /// Change-log position of the last change.
    pub changed_seq: u64,
    /// Deleted (kept as a tombstone).
    pub deleted: bool,
    /// `CalendarItemType`.
    pub kind: Kind,
    /// `OriginalStart` (occurrences and exceptions).
    pub original_start: Option<DateTime<Utc>>,
    /// A master's `Recurrence`.
    #[serde(skip)]
    pub recurrence: Option<Recurrence>,
    /// A master's exceptions by original start.
    pub exceptions: BTreeMap<DateTime<Utc>, Exception>,
    /// A master's deleted (or cancelled) occurrences, by original start.
    pub deleted_occurrences: BTreeSet<DateTime<Utc>>,
}

impl Item {
    /// A new single item with these core fields (the rest empty).
    pub(crate) fn new(
        subject: String,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        uid: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: String::new(),
            change_key: String::new(),
            history: Vec::new(),
            subject,
            body: None,
            start,
            end,
            location: None,
            uid,
            organizer: (String::new(), String::new()),
            required: Vec::new(),
            resources: Vec::new(),
            is_cancelled: false,
            my_response: "Unknown".into(),
            is_meeting: false,
            received: false,
            free_busy: "Busy".into(),
            time_zone: None,
            ext: BTreeMap::new(),
            extended: BTreeMap::new(),
            last_modified: now,
            created_seq: 0,
            changed_seq: 0,
            deleted: false,
            kind: Kind::Single,
            original_start: None,
            recurrence: None,
            exceptions: BTreeMap::new(),
            deleted_occurrences: BTreeSet::new(),
        }
    }

    /// `AppointmentState`: 1 meeting, 2 received, 4 cancelled.
    pub fn appointment_state(&self) -> u32 {
        u32::from(self.is_meeting) | (u32::from(self.received) << 1) | (u32::from(self.is_cancelled) << 2)
    }

    fn sync_extended(&mut self) {
        self.extended =
            self.ext.iter().map(|((set, name, _), v)| (format!("{{{set}}}{name}"), v.clone())).collect();
    }
}

/// One entry of a mailbox's event log.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// Position (the watermark encodes it).
    pub seq: u64,
    /// `CreatedEvent`, `ModifiedEvent`, `DeletedEvent`.
    pub kind: &'static str,
    /// The item.
    pub item_id: String,
    /// Its change key after the change.
    pub change_key: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A mailbox.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Address (lower case).
    pub address: String,
    /// Display name.
    pub name: String,
    /// Room settings (a room mailbox) or none (a user).
    pub room: Option<RoomSettings>,
    /// Items by id, tombstones included.
    pub items: BTreeMap<String, Item>,
    /// The change log's last position.
    pub seq: u64,
    /// The event log (for subscriptions with a watermark).
    pub events: Vec<LoggedEvent>,
}

/// What a request did, for tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// The operation (body root local name), empty when the body was unreadable.
    pub operation: String,
    /// The authenticated account, if any.
    pub account: Option<String>,
    /// The impersonated mailbox, if any.
    pub mailbox: Option<String>,
    /// `client-request-id`.
    pub client_request_id: Option<String>,
    /// `X-AnchorMailbox`.
    pub anchor_mailbox: Option<String>,
    /// `X-PreferServerAffinity: true` was sent (the answer then sets the affinity cookie).
    pub prefer_server_affinity: bool,
    /// The `X-BackEndOverrideCookie` value sent back (as a cookie or, like exchangelib, a header).
    pub affinity_cookie: Option<String>,
    /// Whether the request could return an item body (`item:Body` named, or a base shape other than
    /// `IdOnly`).
    pub asks_for_body: bool,
    /// The response code answered (`NoError` or the error).
    pub response_code: String,
    /// The HTTP status answered (0 for a fault that answers none: a timeout or a reset).
    pub status: u16,
    /// The fault plan's fault on this request (`serverBusy`, `status`, `reset`, …), if any.
    pub fault: Option<String>,
    /// Whether the request was handled before the fault (a write applied, its answer lost).
    pub fault_after_handling: bool,
    /// How the request authenticated ([`super::ntlm`]): `basic`, `bearer`, `ntlm-negotiate` (a
    /// NEGOTIATE answered with a CHALLENGE), `ntlm-authenticate` (the AUTHENTICATE that authenticated its
    /// connection), `ntlm-connection` (no header, on an authenticated connection), or why it was refused
    /// (`none`, `ntlm-refused`, `ntlm-no-challenge`, `ntlm-disabled`, …). `None` when not authenticated
    /// (a fault answered first).
    pub auth: Option<String>,
    /// The TCP connection's serial ([`super::ConnId::serial`]), when served by [`super::serve`].
    pub connection: Option<u64>,
}

/// Throttling and failure knobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knobs {
    /// The next this many SOAP requests get an `ErrorServerBusy` fault.
    pub busy_count: u32,
    /// Their `BackOffMilliseconds`.
    pub back_off_ms: u64,
    /// The next this many SOAP requests get HTTP 503.
    pub unavailable_count: u32,
    /// `Retry-After` seconds sent with those 503s (none when absent).
    pub retry_after_secs: Option<u64>,
    /// How long one `ConnectionTimeout` minute of a streaming connection lasts, in milliseconds
    /// (default 60 000; tests shorten it). Keep-alives come every three quarters of it.
    #[serde(default)]
    pub stream_minute_ms: Option<u64>,
    /// Minutes a streaming subscription survives without a connection before
    /// `ErrorExpiredSubscription` (default 30; injected clock).
    #[serde(default)]
    pub stream_expiry_minutes: Option<u32>,
    /// Push delivery faults: dropped, doubled, held back (see [`super::push`]).
    #[serde(default)]
    pub push: super::push::PushKnobs,
    /// Windows authentication off: `401`s offer only Basic and NTLM / Negotiate tokens are refused
    /// (an EWS virtual directory with `-WindowsAuthentication $false`).
    #[serde(default)]
    pub ntlm_disabled: bool,
}

/// A room list (`New-DistributionGroup -RoomList`).
#[derive(Debug, Clone)]
pub struct RoomList {
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) rooms: Vec<String>,
}

/// All state behind the emulator's one mutex.
#[derive(Debug, Default)]
pub struct Inner {
    pub(crate) accounts: BTreeMap<String, Account>,
    pub(crate) bearer_tokens: BTreeMap<String, String>,
    pub(crate) mailboxes: BTreeMap<String, Mailbox>,
    pub(crate) room_lists: Vec<RoomList>,
    pub(crate) next_id: u64,
    pub(crate) knobs: Knobs,
    pub(crate) requests: Vec<RequestRecord>,
    pub(crate) push: super::push::Subscriptions,
    pub(crate) streaming: super::streaming::Streams,
    pub(crate) fault_plan: crate::faults::FaultPlan,
    pub(crate) outbox: Vec<super::mail::SentMail>,
    pub(crate) ntlm: super::ntlm::Conns,
}

/// An Exchange error code with its message, answered in a `ResponseMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `ResponseCode`.
    pub code: &'static str,
    /// `MessageText`.
    pub message: String,
}

pub(crate) fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

/// What a meeting-changing call did to the organizer's item.
pub(crate) struct Written {
    pub(crate) id: String,
    pub(crate) change_key: String,
}

impl Inner {
    pub(crate) fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn new_change_key(&mut self) -> String {
        format!("DwAAAB{:010x}", self.next())
    }

    /// Records a change of `item_id` in `mailbox`: new change key, log position, event.
    pub(crate) fn touch(
        &mut self,
        mailbox: &str,
        item_id: &str,
        fields: Vec<String>,
        kind: &'static str,
        now: DateTime<Utc>,
    ) {
        let ck = self.new_change_key();
        let Some(mb) = self.mailboxes.get_mut(mailbox) else { return };
        mb.seq += 1;
        let seq = mb.seq;
        if let Some(item) = mb.items.get_mut(item_id) {
            item.change_key = ck.clone();
            item.history.push((ck.clone(), fields));
            item.changed_seq = seq;
            item.last_modified = now;
            item.sync_extended();
        }
        let event = LoggedEvent { seq, kind, item_id: item_id.to_owned(), change_key: ck, at: now };
        mb.events.push(event.clone());
        self.push.record(mailbox, &event);
        self.streaming.record(mailbox, &event);
    }

    /// Adds a new item to `mailbox` and logs its creation.
    pub(crate) fn insert(&mut self, mailbox: &str, mut item: Item, now: DateTime<Utc>) -> String {
        let id = format!("AAMkAD{:010x}", self.next());
        item.id = id.clone();
        if let Some(mb) = self.mailboxes.get_mut(mailbox) {
            item.created_seq = mb.seq + 1;
            mb.items.insert(id.clone(), item);
        }
        self.touch(mailbox, &id, Vec::new(), "CreatedEvent", now);
        id
    }

    /// The live item `id` of `mailbox`.
    pub(crate) fn live(&self, mailbox: &str, id: &str) -> Result<&Item, Refusal> {
        self.mailboxes
            .get(mailbox)
            .and_then(|m| m.items.get(id))
            .filter(|i| !i.deleted)
            .ok_or_else(|| refuse("ErrorItemNotFound", "The specified object was not found in the store."))
    }

    pub(crate) fn live_mut(&mut self, mailbox: &str, id: &str) -> Result<&mut Item, Refusal> {
        self.mailboxes
            .get_mut(mailbox)
            .and_then(|m| m.items.get_mut(id))
            .filter(|i| !i.deleted)
            .ok_or_else(|| refuse("ErrorItemNotFound", "The specified object was not found in the store."))
    }

    /// Deletes (tombstones) an item.
    pub(crate) fn delete(&mut self, mailbox: &str, id: &str, now: DateTime<Utc>) {
        if let Ok(item) = self.live_mut(mailbox, id) {
            item.deleted = true;
            self.touch(mailbox, id, Vec::new(), "DeletedEvent", now);
        }
    }

    /// The booking attendant of every room among the organizer's item's `Resources`, and a cancellation
    /// for rooms in `dropped` (rooms no longer invited).
    pub(crate) fn process_rooms(
        &mut self,
        organizer_mb: &str,
        item_id: &str,
        dropped: &[String],
        now: DateTime<Utc>,
    ) {
        for room in dropped {
            self.cancel_room_copy(room, organizer_mb, item_id, now);
        }
        let Ok(item) = self.live(organizer_mb, item_id) else { return };
        let item = item.clone();
        for (idx, res) in item.resources.iter().enumerate() {
            let Some(settings) = self.mailboxes.get(&res.email).and_then(|m| m.room) else { continue };
            if !settings.auto_accept {
                continue;
            }
            let response = self.attend(&res.email, &item, settings, now);
            let current = self
                .live(organizer_mb, item_id)
                .ok()
                .and_then(|i| i.resources.get(idx))
                .map(|a| a.response.clone());
            if current.as_deref() != Some(response) {
                if let Ok(it) = self.live_mut(organizer_mb, item_id) {
                    it.resources[idx].response = response.to_owned();
                }
                self.touch(organizer_mb, item_id, vec!["calendar:Resources".into()], "ModifiedEvent", now);
            }
        }
    }

    fn room_copy_of(&self, room: &str, uid: &str) -> Option<String> {
        self.mailboxes.get(room)?.items.values().find(|i| !i.deleted && i.uid == uid).map(|i| i.id.clone())
    }

    /// The room's attendant: accept (create or update the room's copy) or decline (no copy). A request
    /// starting beyond the booking window is declined; a series is declined as a whole when any of its
    /// occurrences within the window conflicts (Exchange's default `MaximumConflictInstances` 0, as the
    /// Graph emulator does).
    fn attend(&mut self, room: &str, org: &Item, settings: RoomSettings, now: DateTime<Utc>) -> &'static str {
        let existing = self.room_copy_of(room, &org.uid);
        let window_end = now + Duration::days(i64::from(settings.booking_window_days));
        let beyond = org.start >= window_end;
        let conflict = !settings.allow_conflicts
            && self.mailboxes.get(room).is_some_and(|m| {
                let mine = super::series::instances(org, org.start.min(now), window_end.max(org.end));
                m.items.values().filter(|i| !i.deleted && !i.is_cancelled && i.uid != org.uid).any(|i| {
                    let theirs = super::series::instances(i, org.start.min(now), window_end.max(org.end));
                    mine.iter().any(|a| theirs.iter().any(|b| a.start < b.end && b.start < a.end))
                })
            });
        if beyond || conflict {
            if let Some(copy) = existing {
                self.delete(room, &copy, now);
            }
            return "Decline";
        }
        let subject = rewrite_subject(settings, &org.organizer.0, &org.subject);
        let body = if settings.delete_comments { None } else { org.body.clone() };
        match existing {
            Some(copy_id) => {
                // A copy cancelled earlier (the room was dropped, then invited again) is booked again.
                let changed = self.live(room, &copy_id).is_ok_and(|c| {
                    c.is_cancelled
                        || c.required != org.required
                        || c.start != org.start
                        || c.end != org.end
                        || c.subject != subject
                        || c.location != org.location
                        || c.recurrence != org.recurrence
                        || c.deleted_occurrences != org.deleted_occurrences
                        || !same_exceptions(c, org)
                });
                if changed {
                    let exceptions = self.copied_exceptions(org, settings);
                    if let Ok(c) = self.live_mut(room, &copy_id) {
                        c.start = org.start;
                        c.end = org.end;
                        c.subject = subject;
                        c.location = org.location.clone();
                        c.required = org.required.clone();
                        if c.is_cancelled {
                            c.is_cancelled = false;
                            c.free_busy = "Busy".into();
                        }
                        c.body = body;
                        c.recurrence = org.recurrence.clone();
                        c.kind = org.kind;
                        c.exceptions = exceptions;
                        c.deleted_occurrences = org.deleted_occurrences.clone();
                    }
                    self.touch(room, &copy_id, vec!["calendar:Start".into()], "ModifiedEvent", now);
                }
            }
            None => {
                let copy = Item {
                    subject,
                    body,
                    location: org.location.clone(),
                    organizer: org.organizer.clone(),
                    required: org.required.clone(),
                    resources: org.resources.clone(),
                    my_response: "Accept".into(),
                    is_meeting: true,
                    received: true,
                    time_zone: org.time_zone.clone(),
                    kind: org.kind,
                    recurrence: org.recurrence.clone(),
                    exceptions: self.copied_exceptions(org, settings),
                    deleted_occurrences: org.deleted_occurrences.clone(),
                    ..Item::new(String::new(), org.start, org.end, org.uid.clone(), now)
                };
                self.insert(room, copy, now);
            }
        }
        "Accept"
    }

    /// The organizer's exceptions for a room's copy: same times, subjects rewritten like the series',
    /// the copy's own change keys.
    fn copied_exceptions(
        &mut self,
        org: &Item,
        settings: RoomSettings,
    ) -> BTreeMap<DateTime<Utc>, Exception> {
        let mut out = BTreeMap::new();
        for (at, ex) in &org.exceptions {
            let subject = rewrite_subject(settings, &org.organizer.0, &ex.subject);
            out.insert(*at, Exception { change_key: self.new_change_key(), subject, ..ex.clone() });
        }
        out
    }

    /// The organizer's cancellation reaching a room: its copy stays, marked cancelled (U17).
    pub(crate) fn cancel_room_copy(
        &mut self,
        room: &str,
        organizer_mb: &str,
        item_id: &str,
        now: DateTime<Utc>,
    ) {
        let Some(uid) =
            self.mailboxes.get(organizer_mb).and_then(|m| m.items.get(item_id)).map(|i| i.uid.clone())
        else {
            return;
        };
        if let Some(copy) = self.room_copy_of(room, &uid)
            && let Ok(c) = self.live_mut(room, &copy)
            && !c.is_cancelled
        {
            c.is_cancelled = true;
            c.free_busy = "Free".into();
            self.touch(room, &copy, vec!["calendar:IsCancelled".into()], "ModifiedEvent", now);
        }
    }

    /// The organizer cancels the meeting: every room copy cancelled, the organizer's item deleted.
    pub(crate) fn cancel_meeting(
        &mut self,
        organizer_mb: &str,
        item_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let item = self.live(organizer_mb, item_id)?.clone();
        if item.my_response != "Organizer" {
            return Err(refuse("ErrorCalendarIsNotOrganizer", "Only the organizer can cancel the meeting."));
        }
        for res in &item.resources {
            self.cancel_room_copy(&res.email, organizer_mb, item_id, now);
        }
        self.delete(organizer_mb, item_id, now);
        Ok(())
    }

    /// A written item's id and current change key.
    pub(crate) fn written(&self, mailbox: &str, id: &str) -> Written {
        let ck = self.mailboxes.get(mailbox).and_then(|m| m.items.get(id)).map(|i| i.change_key.clone());
        Written { id: id.to_owned(), change_key: ck.unwrap_or_default() }
    }
}

/// The room copy's subject per `DeleteSubject` / `AddOrganizerToSubject`.
fn rewrite_subject(settings: RoomSettings, organizer: &str, subject: &str) -> String {
    match (settings.delete_subject, settings.add_organizer_to_subject) {
        (true, true) => organizer.to_owned(),
        (true, false) => String::new(),
        (false, true) => format!("{organizer} {subject}"),
        (false, false) => subject.to_owned(),
    }
}

/// Whether a room copy's exceptions are at the organizer's times (change keys differ by design).
fn same_exceptions(copy: &Item, org: &Item) -> bool {
    copy.exceptions.len() == org.exceptions.len()
        && copy.exceptions.iter().zip(&org.exceptions).all(|((a, x), (b, y))| {
            a == b && x.start == y.start && x.end == y.end && x.location == y.location
        })
}
