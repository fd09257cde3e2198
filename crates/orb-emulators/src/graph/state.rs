//! The emulator's in-memory world: tenants' apps, issued tokens, the mailbox directory (users and rooms),
//! calendars, the sent-mail outbox and request counters. Everything sits behind one mutex in
//! [`super::GraphEmulator`]; functions here take `&mut Inner` and never block or await.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use orb_graph::model::{
    Attendee, FreeBusyStatus, ItemBody, Location, Message, PatternedRecurrence, Recipient, ResponseType,
    SingleValueExtendedProperty,
};
use serde::{Deserialize, Serialize};

use super::subscriptions::{NotificationKnobs, Notifier};
use crate::faults::FaultPlan;

/// How a room mailbox's calendar attendant (`Set-CalendarProcessing`) treats meeting requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoomSettings {
    /// `DeleteSubject` (Exchange Online default `true`): the room copy does not keep the subject.
    pub delete_subject: bool,
    /// `AddOrganizerToSubject` (default `true`): the organizer's name is put in the room copy's subject.
    pub add_organizer_to_subject: bool,
    /// `AllowConflicts` (default `false`): accept meetings that overlap existing bookings.
    pub allow_conflicts: bool,
    /// `BookingWindowInDays` (default 180): meetings starting later are declined.
    pub booking_window_days: u32,
    /// `RemoveCanceledMeetings` (Exchange Online default `false`): cancelled meetings are removed from the
    /// room calendar instead of being kept, marked cancelled.
    pub remove_canceled_meetings: bool,
    /// `AutomateProcessing AutoAccept` (default `true`): the room answers meeting requests itself. When
    /// `false` (`AutoUpdate`) requests wait for a delegate: the room neither accepts nor declines, and its
    /// calendar holds no copy.
    pub auto_accept: bool,
}

impl Default for RoomSettings {
    fn default() -> Self {
        Self {
            delete_subject: true,
            add_organizer_to_subject: true,
            allow_conflicts: false,
            booking_window_days: 180,
            remove_canceled_meetings: false,
            auto_accept: true,
        }
    }
}

impl RoomSettings {
    /// The subject the room's copy shows, following Exchange's rules: `DeleteSubject` drops the organizer's
    /// subject, `AddOrganizerToSubject` puts the organizer's name first (alone when the subject was deleted).
    pub fn room_subject(&self, subject: Option<&str>, organizer_name: &str) -> String {
        let subject = if self.delete_subject { "" } else { subject.unwrap_or_default() };
        match (self.add_organizer_to_subject, subject.is_empty()) {
            (true, true) => organizer_name.to_owned(),
            (true, false) => format!("{organizer_name} {subject}"),
            (false, _) => subject.to_owned(),
        }
    }
}

/// Descriptive place data of a room (what `GET /places/microsoft.graph.room` shows).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoomInfo {
    /// Capacity.
    pub capacity: Option<i32>,
    /// Building.
    pub building: Option<String>,
    /// Floor.
    pub floor_number: Option<i32>,
    /// Calendar attendant settings.
    pub settings: RoomSettings,
}

/// A mailbox: a user or a room.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Tenant id it belongs to.
    pub tenant: String,
    /// Directory object id (GUID).
    pub id: String,
    /// SMTP address, lower case.
    pub address: String,
    /// Display name.
    pub display_name: String,
    /// Set for room mailboxes.
    pub room: Option<RoomInfo>,
    /// Calendar items by key (tombstones included, for delta).
    pub events: BTreeMap<String, StoredEvent>,
    /// Bumped to invalidate every delta token of this mailbox.
    pub delta_generation: u64,
    /// How an invalidated delta token is answered.
    pub delta_expiry: DeltaExpiry,
}

/// How the emulator answers a delta token it has invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeltaExpiry {
    /// `410 Gone` with `Location` = a fresh initial URL (tenant maintenance).
    #[default]
    Gone,
    /// `400` with error code `syncStateNotFound` (token fell out of the sync-state cache).
    SyncStateNotFound,
}

/// A modified occurrence of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct ExceptionData {
    /// New start.
    pub start: DateTime<Utc>,
    /// New end.
    pub end: DateTime<Utc>,
    /// New subject, if changed.
    pub subject: Option<String>,
    /// New location, if changed.
    pub location: Option<Location>,
    /// The occurrence's own attendee list, when it differs from the series' (e.g. another room for this
    /// occurrence only).
    pub attendees: Option<Vec<Attendee>>,
}

/// A calendar item as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Key inside the mailbox (rendered into an id by the id format).
    pub key: String,
    /// Shared by every copy of the meeting.
    pub ical_uid: String,
    /// The organizer.
    pub organizer: Recipient,
    /// Whether this mailbox organizes it.
    pub is_organizer: bool,
    /// This mailbox's response.
    pub response: ResponseType,
    /// Subject.
    pub subject: Option<String>,
    /// Body.
    pub body: Option<ItemBody>,
    /// Start (of the series' first occurrence for masters).
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
    /// Zone the start was given in.
    pub start_zone: String,
    /// Zone the end was given in.
    pub end_zone: String,
    /// Location.
    pub location: Option<Location>,
    /// Attendees with their responses.
    pub attendees: Vec<Attendee>,
    /// Recurrence (series masters).
    pub recurrence: Option<PatternedRecurrence>,
    /// Modified occurrences by original start.
    pub exceptions: BTreeMap<DateTime<Utc>, ExceptionData>,
    /// Cancelled occurrences by original start.
    pub cancelled: BTreeSet<DateTime<Utc>>,
    /// A room's copy of a series the room is invited to for some occurrences only: its instances are its
    /// exceptions, not the pattern's occurrences.
    pub exceptions_only: bool,
    /// Cancelled by the organizer (kept in attendee calendars).
    pub is_cancelled: bool,
    /// Free/busy.
    pub show_as: FreeBusyStatus,
    /// Client idempotency key.
    pub transaction_id: Option<String>,
    /// Extended properties.
    pub extended: Vec<SingleValueExtendedProperty>,
    /// Categories.
    pub categories: Vec<String>,
    /// Created.
    pub created: DateTime<Utc>,
    /// Last modified.
    pub modified: DateTime<Utc>,
    /// Change sequence in this mailbox (delta cursor and change key).
    pub seq: u64,
    /// Deleted: kept as a tombstone so delta can report `@removed`.
    pub deleted: bool,
}

/// A sent message, as captured in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMail {
    /// Mailbox that sent it.
    pub from: String,
    /// The message.
    pub message: Message,
    /// Whether a copy went to Sent Items.
    pub save_to_sent_items: bool,
    /// When.
    pub at: DateTime<Utc>,
}

/// A registered app (client credentials).
#[derive(Debug, Clone, Default)]
pub struct App {
    /// Valid client secrets.
    pub secrets: Vec<String>,
    /// Registered certificates (DER).
    pub certificates: Vec<Vec<u8>>,
    /// The application permissions granted with admin consent (the token's `roles` claim); `None`: the
    /// three ORB needs ([`DEFAULT_APP_ROLES`]).
    pub roles: Option<Vec<String>>,
    /// An application access policy (`New-ApplicationAccessPolicy -AccessRight RestrictAccess`): the only
    /// mailboxes (lower-case addresses) the app may reach through mailbox permissions; `None`: no policy.
    /// Like Exchange, it does not apply to `Place.Read.All` (the places API names no mailbox).
    pub access_policy: Option<std::collections::BTreeSet<String>>,
}

/// The application permissions an app is granted unless a test says otherwise: exactly what ORB needs.
pub const DEFAULT_APP_ROLES: &[&str] = &["Calendars.ReadWrite", "Mail.Send", "Place.Read.All"];

impl App {
    /// The permissions the app's tokens carry.
    pub fn roles(&self) -> Vec<String> {
        self.roles.clone().unwrap_or_else(|| DEFAULT_APP_ROLES.iter().map(|r| (*r).to_owned()).collect())
    }
}

/// An access token the emulator issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Tenant.
    pub tenant: String,
    /// App.
    pub client_id: String,
    /// Expiry.
    pub expires: DateTime<Utc>,
    /// The permissions the token carries (its `roles` claim); requests needing another are refused `403`.
    pub roles: Vec<String>,
}

/// One request as seen by the emulator (for tests to inspect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Target mailbox, if any.
    pub mailbox: Option<String>,
    /// The `client-request-id` header.
    pub client_request_id: Option<String>,
    /// The status an injected fault answered with (`errorEvery`, `throttleEvery`, or the fault plan's
    /// `status` faults).
    #[serde(default)]
    pub fault: Option<u16>,
    /// The kind of injected fault: `status`, `timeout`, `reset` or `slowBody`.
    #[serde(default)]
    pub fault_kind: Option<String>,
    /// Whether the fault came after the request was handled (its write applied).
    #[serde(default)]
    pub fault_after_handling: bool,
    /// The query string as sent (percent-decoded), e.g. `$filter=…&$select=…`.
    #[serde(default)]
    pub query: Option<String>,
    /// The properties the request's `$select` named (`None`: no `$select`, so an event read returned
    /// every property, the body included).
    #[serde(default)]
    pub select: Option<Vec<String>>,
}

impl RequestRecord {
    /// Whether this request read events (a GET of `/events`, an event, its instances, `calendarView` or
    /// its delta).
    pub fn reads_events(&self) -> bool {
        self.method == "GET" && (self.path.contains("/events") || self.path.contains("/calendarView"))
    }

    /// Whether this request's answer could have carried a meeting's body: an event read that does not
    /// `$select`, or selects `body`, `bodyPreview` or `uniqueBody`.
    pub fn could_return_body(&self) -> bool {
        if !self.reads_events() {
            return false;
        }
        match &self.select {
            None => true,
            Some(fields) => fields.iter().any(|f| {
                ["body", "bodyPreview", "uniqueBody", "attachments"].iter().any(|b| b.eq_ignore_ascii_case(f))
            }),
        }
    }
}

/// Per-mailbox request counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxCounters {
    /// Requests received.
    pub requests: u64,
    /// Requests answered 429.
    pub throttled: u64,
    /// Requests in flight now.
    pub in_flight: u32,
    /// Highest number in flight at once (admitted requests only: never above the limit).
    pub max_in_flight: u32,
    /// Highest number of requests at the mailbox at once counting the arriving one, refused or not: above
    /// the limit exactly when a client sent more concurrent requests than allowed.
    pub max_attempted: u32,
    /// Requests refused with 429 because the mailbox already had the maximum in flight.
    pub concurrency_refusals: u64,
}

/// Throttling and fault knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Knobs {
    /// Concurrent requests per mailbox before `429` (Graph: 4).
    pub max_concurrent_per_mailbox: u32,
    /// Requests per mailbox per budget window before `429` (Graph: 10,000 per 10 minutes).
    pub mailbox_budget: u64,
    /// Budget window in seconds.
    pub budget_window_secs: u64,
    /// `Retry-After` seconds sent with a `429`.
    pub retry_after_secs: u64,
    /// Answer the next N requests to a mailbox with 429 (a throttling storm), per mailbox.
    pub storm: BTreeMap<String, u32>,
    /// Extra latency per Graph request, milliseconds.
    pub latency_ms: u64,
    /// Lifetime of issued access tokens, seconds.
    pub token_lifetime_secs: u64,
    /// Answer every Nth `/v1.0` request with `500 generalException` (0 = never).
    pub error_every: u64,
    /// Answer every Nth `/v1.0` request with `429` + `Retry-After` (0 = never; `error_every` goes first
    /// when both hit the same request).
    pub throttle_every: u64,
    /// How long a validation handshake may take, milliseconds (Graph: 10 s).
    pub handshake_timeout_ms: u64,
    /// Send `reauthorizationRequired` this many minutes before a subscription expires (0 = never).
    pub reauthorize_before_expiry_minutes: i64,
    /// Notification delivery faults.
    pub notifications: NotificationKnobs,
    /// Answer `$batch` with the sub-responses in reverse completion order (Graph promises no order).
    pub batch_responses_reversed: bool,
    /// Faults per endpoint and method: error statuses with Graph's bodies, timeouts, resets mid-body, slow
    /// bodies, before or after handling (see [`crate::faults`]). Applies to every request but the control
    /// API (the token endpoint and `$batch` envelopes included; not to sub-requests inside a batch).
    pub fault_plan: FaultPlan,
    /// How long rooms take to answer a meeting request, milliseconds. Exchange's booking attendant answers
    /// after the organizer's write has returned (reference §6.2: "treat booking as asynchronous"): the
    /// write's response shows the room not yet answered, and later the room's copy appears and the
    /// organizer's item changes (the answer recorded, a new `@odata.etag`), each with its notification.
    /// 0 (the default) answers inside the write, which keeps tests that do not look at this deterministic.
    pub room_answer_delay_ms: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            max_concurrent_per_mailbox: 4,
            mailbox_budget: 10_000,
            budget_window_secs: 600,
            retry_after_secs: 1,
            storm: BTreeMap::new(),
            latency_ms: 0,
            token_lifetime_secs: 3599,
            error_every: 0,
            throttle_every: 0,
            handshake_timeout_ms: 10_000,
            reauthorize_before_expiry_minutes: 15,
            notifications: NotificationKnobs::default(),
            batch_responses_reversed: false,
            fault_plan: FaultPlan::default(),
            room_answer_delay_ms: 0,
        }
    }
}

/// Everything the emulator holds.
#[derive(Debug, Default)]
pub struct Inner {
    /// Apps by (tenant, client id).
    pub apps: HashMap<(String, String), App>,
    /// Issued tokens.
    pub tokens: HashMap<String, IssuedToken>,
    /// Assertion ids already used (replay protection).
    pub used_jti: HashSet<String>,
    /// Mailboxes by lower-case address.
    pub mailboxes: BTreeMap<String, Mailbox>,
    /// Id counter.
    pub next_id: u64,
    /// Global change counter.
    pub seq: u64,
    /// Sent mail.
    pub outbox: Vec<SentMail>,
    /// Requests seen.
    pub requests: Vec<RequestRecord>,
    /// Per-mailbox counters.
    pub counters: BTreeMap<String, MailboxCounters>,
    /// Per-mailbox budget windows: (window start, count).
    pub budgets: HashMap<String, (DateTime<Utc>, u64)>,
    /// Knobs.
    pub knobs: Knobs,
    /// Subscriptions and notification delivery.
    pub notifier: Notifier,
}

impl Inner {
    /// A fresh id number.
    pub fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh change sequence number.
    pub fn bump(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The mailbox for an address or directory id (case-insensitive).
    pub fn mailbox_key(&self, user: &str) -> Option<String> {
        let lower = user.trim().to_ascii_lowercase();
        if self.mailboxes.contains_key(&lower) {
            return Some(lower);
        }
        self.mailboxes.values().find(|m| m.id.eq_ignore_ascii_case(&lower)).map(|m| m.address.clone())
    }
}
