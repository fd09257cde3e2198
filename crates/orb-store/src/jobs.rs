//! **Job kinds and their payloads**, shared by everyone who queues or runs a job (the intake in orb-web,
//! the engine's sync, sweep, poller and scheduler, the CLI), so a kind is never a string typed twice and a
//! payload never JSON read field by field.
//!
//! The queue stores a job's kind as text and its payload as JSON ([`crate::NewJob`], [`crate::Job`]);
//! [`JobKind`] names the text and one payload struct per kind ([`JobPayload`]) is the JSON. The JSON
//! shape is the one the queue has always held (`tests/job_payloads.rs` parses literal payloads of
//! earlier releases), so jobs queued by a running installation parse after an upgrade: fields are
//! never renamed, new fields have defaults, and unknown fields are ignored.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use orb_core::{BookingId, CorrelationId, Observation, RoomId, Side, SweepStats};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::queue::{Job, Lane, NewJob};

/// What a job does: the queue's `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    /// A Graph change notification kept by the intake (payload [`GraphNotificationJob`]).
    GraphNotification,
    /// A Graph lifecycle notification kept by the intake (payload [`GraphLifecycleJob`]).
    GraphLifecycle,
    /// A TOPdesk push kept by the intake, on the tenant lane (payload [`TopdeskHintJob`]).
    TopdeskHint,
    /// An EWS push notification kept by the intake, in its room's lane (payload [`EwsNotificationJob`];
    /// the inbox item holds an [`EwsNotificationItem`]).
    EwsNotification,
    /// Sync one observation in its room's lane: a TOPdesk hint fans out into these, the poller and the
    /// sweep queue them, so a booking's work always runs in its room's lane (payload [`SyncObservationJob`]).
    SyncObservation,
    /// A sync retried after a write failed, committed with the record (payload [`SyncRetryJob`]).
    SyncRetry,
    /// The reconciliation sweep of one room, in that room's lane, so it never runs beside the room's
    /// notifications (payload [`ReconcileSweepJob`]).
    ReconcileSweep,
}

impl JobKind {
    /// Every kind, in the order of the error message that lists them.
    pub const ALL: [Self; 7] = [
        Self::GraphNotification,
        Self::GraphLifecycle,
        Self::TopdeskHint,
        Self::EwsNotification,
        Self::SyncRetry,
        Self::SyncObservation,
        Self::ReconcileSweep,
    ];

    /// The kind as the queue stores it (`"graph.notification"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::GraphNotification => "graph.notification",
            Self::GraphLifecycle => "graph.lifecycle",
            Self::TopdeskHint => "topdesk.hint",
            Self::EwsNotification => "ews.notification",
            Self::SyncObservation => "sync.observation",
            Self::SyncRetry => "sync.retry",
            Self::ReconcileSweep => "reconcile.sweep",
        }
    }

    /// The kind a stored `kind` names; an unknown text is [`UnknownJobKind`].
    pub fn parse(kind: &str) -> Result<Self, UnknownJobKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| UnknownJobKind { kind: kind.to_owned() })
    }

    /// The stored kinds, comma-separated (for messages that list what is known).
    pub fn known() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = UnknownJobKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl PartialEq<JobKind> for String {
    fn eq(&self, other: &JobKind) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<JobKind> for str {
    fn eq(&self, other: &JobKind) -> bool {
        self == other.as_str()
    }
}

/// A job kind no version of ORB queues (or one newer than this binary).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("job kind {kind:?} is not one ORB knows (known: {known}); the job cannot run", known = JobKind::known())]
pub struct UnknownJobKind {
    /// The stored kind.
    pub kind: String,
}

/// A job's payload that is not what its kind needs.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} job has a bad payload: {reason}")]
pub struct BadJobPayload {
    /// The job's kind.
    pub kind: JobKind,
    /// What is wrong.
    pub reason: String,
}

/// The payload of one job kind: serialized into [`NewJob::payload`], parsed back from [`Job::payload`].
pub trait JobPayload: Serialize + DeserializeOwned {
    /// The kind whose payload this is.
    const KIND: JobKind;

    /// The job that carries this payload.
    fn to_job(
        &self,
        lane: Lane,
        correlation_id: Option<CorrelationId>,
        run_at: Option<DateTime<Utc>>,
    ) -> NewJob {
        NewJob {
            lane,
            kind: Self::KIND.as_str().to_owned(),
            // Payloads are plain data (strings, numbers, ids, observations: no maps with non-string keys),
            // which serde_json always serializes.
            payload: serde_json::to_value(self).expect("a job payload serializes to JSON"),
            correlation_id,
            run_at,
        }
    }

    /// This kind's payload of `job`; a job of another kind, or a payload that does not parse, is
    /// [`BadJobPayload`].
    fn of(job: &Job) -> Result<Self, BadJobPayload> {
        if job.kind != Self::KIND {
            let reason = format!("it is a {:?} job", job.kind);
            return Err(BadJobPayload { kind: Self::KIND, reason });
        }
        Self::from_value(&job.payload)
    }

    /// This kind's payload parsed from its stored JSON.
    fn from_value(payload: &serde_json::Value) -> Result<Self, BadJobPayload> {
        Self::deserialize(payload).map_err(|e| BadJobPayload { kind: Self::KIND, reason: e.to_string() })
    }
}

/// The id of the inbox item a job processes, or the error its kind reports without one.
fn need_inbox(kind: JobKind, inbox_id: Option<i64>) -> Result<i64, BadJobPayload> {
    inbox_id.ok_or_else(|| BadJobPayload { kind, reason: "no \"inbox_id\"".to_owned() })
}

/// `graph.notification`: `{"subscription_id": "…", "inbox_id": 7}`. The intake writes the subscription;
/// [`crate::Store::accept_inbox`] adds the inbox item's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNotificationJob {
    /// The Graph subscription the notification came for.
    pub subscription_id: String,
    /// The inbox item holding the notification (set by the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<i64>,
}

impl GraphNotificationJob {
    /// The inbox item, or a bad payload when the job names none.
    pub fn inbox_id(&self) -> Result<i64, BadJobPayload> {
        need_inbox(Self::KIND, self.inbox_id)
    }
}

impl JobPayload for GraphNotificationJob {
    const KIND: JobKind = JobKind::GraphNotification;
}

/// `graph.lifecycle`: `{"subscription_id": "…", "inbox_id": 7}`, as [`GraphNotificationJob`]; the
/// subscription is optional (the item names its own; when both are there they must agree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphLifecycleJob {
    /// The Graph subscription the intake received the notification for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The inbox item holding the notification (set by the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<i64>,
}

impl GraphLifecycleJob {
    /// The inbox item, or a bad payload when the job names none.
    pub fn inbox_id(&self) -> Result<i64, BadJobPayload> {
        need_inbox(Self::KIND, self.inbox_id)
    }
}

impl JobPayload for GraphLifecycleJob {
    const KIND: JobKind = JobKind::GraphLifecycle;
}

/// `topdesk.hint`: `{"hints": 3, "inbox_id": 7}`; the hinted reservations are in the inbox item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopdeskHintJob {
    /// How many reservations the push hinted (for the operator; the list is in the inbox item).
    #[serde(default)]
    pub hints: usize,
    /// The inbox item holding the hints (set by the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<i64>,
}

impl TopdeskHintJob {
    /// The inbox item, or a bad payload when the job names none.
    pub fn inbox_id(&self) -> Result<i64, BadJobPayload> {
        need_inbox(Self::KIND, self.inbox_id)
    }
}

impl JobPayload for TopdeskHintJob {
    const KIND: JobKind = JobKind::TopdeskHint;
}

/// `ews.notification`: `{"subscription_id": "…", "inbox_id": 7}`, as [`GraphNotificationJob`]: the intake
/// writes the EWS `SubscriptionId`; [`crate::Store::accept_inbox`] adds the inbox item's id. The item's
/// payload is an [`EwsNotificationItem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EwsNotificationJob {
    /// The EWS push subscription the notification came for.
    pub subscription_id: String,
    /// The inbox item holding the notification (set by the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<i64>,
}

impl EwsNotificationJob {
    /// The inbox item, or a bad payload when the job names none.
    pub fn inbox_id(&self) -> Result<i64, BadJobPayload> {
        need_inbox(Self::KIND, self.inbox_id)
    }
}

impl JobPayload for EwsNotificationJob {
    const KIND: JobKind = JobKind::EwsNotification;
}

/// The payload of an `ews` inbox item: **one** EWS push `Notification` (`POST /hooks/ews/{tenant}`), as the
/// intake read it with `orb_ews::push::parse_notification`, for the `ews.notification` job to deserialize.
/// JSON, for example:
///
/// ```json
/// {"subscription_id": "83826921-…", "previous_watermark": "ygwAAAAAAAA=", "more_events": false,
///  "events": [{"kind": "CreatedEvent", "watermark": "ywwAAAAAAAA=", "timestamp": "2026-08-20T09:12:44Z",
///              "item_id": {"id": "AAMkA…", "change_key": "DwAAA…"}, "parent_folder_id": "AQMkA…"}]}
/// ```
///
/// - A notification whose only event is a `StatusEvent` (Exchange's keep-alive every `StatusFrequency`
///   minutes) is kept like any other: it carries the current watermark and says the subscription is alive.
/// - Items are **not deduplicated** by the intake or the store: Exchange re-sends a notification it got no
///   answer for, and a delivery answered `503` is sent again, so the same events (same watermarks) can be
///   kept twice. The worker skips events at or before the subscription's stored watermark
///   ([`crate::SubscriptionRow::watermark`]).
/// - Absent optional fields are left out of the JSON; unknown fields are ignored when read.
/// - Never holds a secret (the callback URL's `k` is checked and dropped by the intake).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EwsNotificationItem {
    /// `SubscriptionId`.
    pub subscription_id: String,
    /// `PreviousWatermark`: the watermark before this notification's first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_watermark: Option<String>,
    /// `MoreEvents`: more queued events follow in further notifications.
    #[serde(default)]
    pub more_events: bool,
    /// The events, in the order Exchange sent them.
    #[serde(default)]
    pub events: Vec<EwsEventItem>,
}

impl EwsNotificationItem {
    /// The watermark to keep after handling this notification: the last event's that has one.
    pub fn last_watermark(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|e| e.watermark.as_deref())
    }

    /// Whether the notification is only a keep-alive (every event is a [`EwsEventKind::Status`]).
    pub fn is_status_only(&self) -> bool {
        self.events.iter().all(|e| e.kind == EwsEventKind::Status)
    }
}

/// One event of an [`EwsNotificationItem`] (EWS `BaseNotificationEventType` and its subtypes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EwsEventItem {
    /// Which event (its element name).
    pub kind: EwsEventKind,
    /// `Watermark` (Exchange sends one with every push event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// `TimeStamp` (not on `StatusEvent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// `ItemId` with its `ChangeKey` (item events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<EwsItemRef>,
    /// `FolderId`'s `Id` (folder events, e.g. the calendar's `ModifiedEvent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_id: Option<String>,
    /// `ParentFolderId`'s `Id`: the folder the item or folder is in now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    /// `OldItemId` (`MovedEvent`, `CopiedEvent` of an item): the item's id before the move or copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_item_id: Option<EwsItemRef>,
    /// `OldParentFolderId`'s `Id` (`MovedEvent`, `CopiedEvent`): where it was before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_parent_folder_id: Option<String>,
}

/// The kind of an [`EwsEventItem`], stored as the EWS element name (`"CreatedEvent"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EwsEventKind {
    /// `CreatedEvent`.
    #[serde(rename = "CreatedEvent")]
    Created,
    /// `ModifiedEvent`.
    #[serde(rename = "ModifiedEvent")]
    Modified,
    /// `DeletedEvent`.
    #[serde(rename = "DeletedEvent")]
    Deleted,
    /// `MovedEvent`.
    #[serde(rename = "MovedEvent")]
    Moved,
    /// `CopiedEvent`.
    #[serde(rename = "CopiedEvent")]
    Copied,
    /// `NewMailEvent`.
    #[serde(rename = "NewMailEvent")]
    NewMail,
    /// `FreeBusyChangedEvent`.
    #[serde(rename = "FreeBusyChangedEvent")]
    FreeBusyChanged,
    /// `StatusEvent`: the keep-alive, carrying only a watermark.
    #[serde(rename = "StatusEvent")]
    Status,
}

/// An EWS item id with its change key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EwsItemRef {
    /// `Id`.
    pub id: String,
    /// `ChangeKey` (absent on some events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
}

/// `sync.observation`: `{"observation": {…}}`, from the sweep also `"room_copy"`, `"sweep"` and
/// `"redrive"`. The observation is scrubbed by the tenant's privacy policy before it is queued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncObservationJob {
    /// What to sync.
    pub observation: Observation,
    /// The observation is a room's copy of a meeting someone else organizes, whose subject Exchange
    /// rewrote: the worker must not take that subject for the meeting's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_copy: bool,
    /// What the sweep that queued it is doing to the room (the mass-deletion guard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepStats>,
    /// A re-drive: the side that owes the booking a write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive: Option<Side>,
}

impl SyncObservationJob {
    /// A job syncing `observation` (already scrubbed), as a hint or the poller queues it.
    pub fn new(observation: Observation) -> Self {
        Self { observation, room_copy: false, sweep: None, redrive: None }
    }
}

impl JobPayload for SyncObservationJob {
    const KIND: JobKind = JobKind::SyncObservation;
}

/// `sync.retry`: `{"booking_id": "…", "side": "topdesk", "observation": {…}}`, committed with the record
/// whose write failed, to run at the planner's back-off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRetryJob {
    /// The booking whose write failed.
    pub booking_id: BookingId,
    /// The side whose write failed.
    pub side: Side,
    /// The observation to plan again.
    pub observation: Observation,
    /// As [`SyncObservationJob::room_copy`] (never written for a retry; read for symmetry).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_copy: bool,
}

impl JobPayload for SyncRetryJob {
    const KIND: JobKind = JobKind::SyncRetry;
}

/// `reconcile.sweep`: `{"room": "<room id>"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileSweepJob {
    /// The room to sweep.
    pub room: RoomId,
}

impl JobPayload for ReconcileSweepJob {
    const KIND: JobKind = JobKind::ReconcileSweep;
}
