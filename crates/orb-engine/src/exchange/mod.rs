//! **The Exchange seam**: what the engine asks of a tenant's Exchange, whichever protocol reaches it.
//!
//! A tenant's calendars live in Exchange Online (Microsoft Graph, [`GraphExchange`]) or in Exchange Server
//! on-premises (EWS, implemented over `orb-ews`). The planner, the ORB record, the executor's idempotency
//! rules, reconciliation, onboarding and mails are one code path over [`Exchange`]; what differs — how
//! events are read and written, ids, versions, errors, throttling — sits behind it.
//!
//! ## The meeting model
//! The engine's meeting is Graph's `event` resource ([`Event`]): the richer of the two shapes and the one the
//! observation code, the sweep and the executor were written for. A back-end that speaks another protocol
//! converts at the seam (EWS: `CalendarItem` → [`Event`] on reads, [`Event`] → `NewMeeting`/`MeetingChange`
//! on writes), so nothing above the seam knows which protocol answered.
//!
//! ## Contract (every implementation)
//! - **Versions**: an event's `change_key` is the version ORB stores; writes of an existing event take the
//!   stored change key and are refused with [`Failure::Changed`] when the event moved on (Graph: `If-Match`
//!   with the change key's ETag; EWS: the `ChangeKey` with `ConflictResolution="NeverOverwrite"`).
//! - **Idempotent creates**: [`Exchange::create_event`] tags the event with ORB's match id where
//!   [`Exchange::find_by_match_id`] finds it again (single events and series masters).
//! - **Never the body**: no implementation asks for or reads an event's body.
//! - **Errors** are [`ExchangeError`]: the protocol's own error kept whole (its message says what to do),
//!   classified for the engine by [`ExchangeError::failure`].
//!
//! Uses no other engine module (it sits beside [`crate::runtime`] at the bottom of the import graph).

mod ews;
mod graph;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orb_core::{CorrelationId, EmailAddress};
use orb_ews::EwsError;
use orb_graph::GraphError;
use orb_graph::model::{Event, Message};
use thiserror::Error;

pub use ews::{EwsExchange, to_change, to_event, to_new_meeting};
pub use graph::GraphExchange;

/// Which protocol reaches a tenant's Exchange (`[exchange] kind` in the tenant's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeKind {
    /// Exchange Online through Microsoft Graph.
    #[default]
    Graph,
    /// Exchange Server on-premises through EWS.
    Ews,
}

impl ExchangeKind {
    /// The settings value (`graph`, `ews`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graph => "graph",
            Self::Ews => "ews",
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed Exchange call: the protocol's own error, whole.
#[derive(Debug, Error)]
pub enum ExchangeError {
    /// Microsoft Graph failed.
    #[error("Graph: {0}")]
    Graph(#[from] GraphError),
    /// EWS failed.
    #[error("EWS: {0}")]
    Ews(#[from] EwsError),
}

/// What a failed Exchange call means for the engine, whichever protocol failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The item (or mailbox) is not there (any more).
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// The item changed since ORB read it: read it again and plan again.
    Changed,
    /// Throttled: try again after the given time (when the service named one).
    Throttled {
        /// How long to wait.
        retry_after: Option<Duration>,
    },
    /// May succeed later (unreachable, 5xx, an HTML page, a timeout).
    Transient,
    /// The request was refused as invalid: sending it again will not help.
    Rejected {
        /// The service's reason.
        reason: String,
    },
    /// ORB's credentials or rights were refused (the tenant's writes pause).
    Denied,
    /// Anything else that retrying will not fix.
    Permanent,
}

impl ExchangeError {
    /// What the failure means for the engine.
    pub fn failure(&self) -> Failure {
        match self {
            Self::Graph(e) => match e {
                GraphError::NotFound { what } => Failure::NotFound { what: what.clone() },
                GraphError::Conflict { .. } => Failure::Changed,
                GraphError::Throttled { retry_after } => {
                    Failure::Throttled { retry_after: Some(*retry_after) }
                }
                GraphError::Rejected { reason, .. } => Failure::Rejected { reason: reason.clone() },
                GraphError::Unauthorized { .. }
                | GraphError::Forbidden { .. }
                | GraphError::Config { .. } => Failure::Denied,
                e if e.is_retryable() => Failure::Transient,
                _ => Failure::Permanent,
            },
            Self::Ews(e) => match e {
                EwsError::NotFound { code } => Failure::NotFound { what: format!("the item ({code})") },
                EwsError::Changed { .. } => Failure::Changed,
                EwsError::Busy { back_off, .. } => Failure::Throttled { retry_after: *back_off },
                EwsError::Transient { .. } => Failure::Transient,
                EwsError::Rejected { code, message } => {
                    Failure::Rejected { reason: format!("{code}: {message}") }
                }
                EwsError::Invalid { reason } => Failure::Rejected { reason: reason.clone() },
                EwsError::Unauthorized { .. }
                | EwsError::AuthNotOffered { .. }
                | EwsError::ImpersonationDenied { .. }
                | EwsError::Config { .. } => Failure::Denied,
                EwsError::SubscriptionLost { .. }
                | EwsError::SyncStateInvalid { .. }
                | EwsError::Protocol { .. }
                | EwsError::TooLarge { .. } => Failure::Permanent,
            },
        }
    }

    /// The item is not there (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self.failure(), Failure::NotFound { .. })
    }

    /// ORB's credentials or rights were refused.
    pub fn is_denied(&self) -> bool {
        self.failure() == Failure::Denied
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Graph(e) => e.is_retryable(),
            Self::Ews(e) => e.is_retryable(),
        }
    }
}

/// A room mailbox as the directory lists it (Graph Places, EWS room lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryRoom {
    /// Its SMTP address, as the directory spells it.
    pub email: String,
    /// Its display name.
    pub name: String,
}

/// What the engine asks of a tenant's Exchange. Mailboxes are rooms' or organizers' (ORB never lists a
/// person's calendar); ids are the protocol's own, opaque; `change_key` is the version ORB last saw.
#[async_trait]
pub trait Exchange: Send + Sync + fmt::Debug {
    /// Which protocol this is.
    fn kind(&self) -> ExchangeKind;

    /// The EWS back-end, for what is EWS's own outside the seam (push subscriptions).
    fn as_ews(&self) -> Option<&EwsExchange> {
        None
    }

    /// One event (or occurrence), never its body, with ORB's match property when it carries one.
    async fn get_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError>;

    /// The live event ORB created for `match_id` (single events and series masters).
    async fn find_by_match_id(
        &self,
        mailbox: &EmailAddress,
        match_id: &str,
        corr: CorrelationId,
    ) -> Result<Option<Event>, ExchangeError>;

    /// Whether this protocol's item versions are coarse: two changes within one step carry the same
    /// modification time (EWS's `LastModifiedTime` has whole seconds; Graph's `lastModifiedDateTime` has
    /// 100-ns digits), so a listing made just before a change cannot be told older than it by its version.
    /// Then a sweep's finding is read again by id when its job runs (`sync::handlers`), rather than taking
    /// an equal version as stale (which could hide a person's change for good).
    fn coarse_versions(&self) -> bool {
        false
    }

    /// Whether [`Exchange::find_by_ical_uid`] searches by time (then callers give it every time span the
    /// meeting may be at: where ORB last saw it in Exchange, not only where it should go).
    fn finds_by_time(&self) -> bool {
        false
    }

    /// The single event or series master with `ical_uid` in `mailbox` (or, for a protocol that gives each
    /// occurrence its own iCalUId, that occurrence). `around` are the spans the meeting may take place in,
    /// most likely first: a protocol that cannot look up by UID searches there, one span after the other.
    async fn find_by_ical_uid(
        &self,
        mailbox: &EmailAddress,
        ical_uid: &str,
        around: &[(DateTime<Utc>, DateTime<Utc>)],
        corr: CorrelationId,
    ) -> Result<Option<Event>, ExchangeError>;

    /// Occurrences and exceptions of a series in `[from, to)` (not cancelled occurrences).
    async fn instances(
        &self,
        mailbox: &EmailAddress,
        series_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, ExchangeError>;

    /// The expanded calendar of a room mailbox in `[from, to)`.
    async fn calendar_view(
        &self,
        mailbox: &EmailAddress,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, ExchangeError>;

    /// Creates `event` in `mailbox` (a meeting when it invites rooms), tagged with `match_id`.
    async fn create_event(
        &self,
        mailbox: &EmailAddress,
        event: &Event,
        match_id: &str,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError>;

    /// Changes the fields set in `changes`; with `change_key` only if the event is still that version.
    async fn update_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        changes: &Event,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<Event, ExchangeError>;

    /// Cancels a meeting as its organizer (attendees are told, with `comment`); `change_key` as in
    /// [`Exchange::update_event`].
    async fn cancel_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        comment: Option<&str>,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError>;

    /// Deletes an event (from an organizer's calendar this also cancels the meeting).
    async fn delete_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        change_key: Option<&str>,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError>;

    /// Every room mailbox the directory lists (for room mapping suggestions and checks).
    async fn list_rooms(&self, corr: CorrelationId) -> Result<Vec<DirectoryRoom>, ExchangeError>;

    /// Sends a mail from `from` (not kept in its sent items).
    async fn send_mail(
        &self,
        from: &EmailAddress,
        message: &Message,
        corr: CorrelationId,
    ) -> Result<(), ExchangeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_protocols_classify_alike() {
        let check = |e: ExchangeError, expected: Failure, retryable: bool| {
            assert_eq!(e.failure(), expected, "{e}");
            assert_eq!(e.is_retryable(), retryable, "{e}");
        };
        check(
            GraphError::NotFound { what: "event 1".into() }.into(),
            Failure::NotFound { what: "event 1".into() },
            false,
        );
        check(
            EwsError::NotFound { code: "ErrorItemNotFound".into() }.into(),
            Failure::NotFound { what: "the item (ErrorItemNotFound)".into() },
            false,
        );
        check(GraphError::Conflict { message: "412".into() }.into(), Failure::Changed, false);
        check(EwsError::Changed { code: "ErrorIrresolvableConflict".into() }.into(), Failure::Changed, false);
        let wait = Duration::from_millis(1500);
        check(
            GraphError::Throttled { retry_after: wait }.into(),
            Failure::Throttled { retry_after: Some(wait) },
            true,
        );
        check(
            EwsError::Busy { code: "ErrorServerBusy".into(), back_off: Some(wait) }.into(),
            Failure::Throttled { retry_after: Some(wait) },
            true,
        );
        check(EwsError::Transient { status: Some(503), what: "503".into() }.into(), Failure::Transient, true);
        check(
            EwsError::ImpersonationDenied {
                code: "ErrorImpersonateUserDenied".into(),
                mailbox: "room@example.org".into(),
                hint: "add the room to the scope".into(),
            }
            .into(),
            Failure::Denied,
            false,
        );
        check(EwsError::Unauthorized { status: 401 }.into(), Failure::Denied, false);
        check(
            GraphError::Forbidden { code: "ErrorAccessDenied".into(), message: "no".into() }.into(),
            Failure::Denied,
            false,
        );
        check(
            EwsError::Rejected { code: "ErrorCalendarIsCancelledForAccept".into(), message: "no".into() }
                .into(),
            Failure::Rejected { reason: "ErrorCalendarIsCancelledForAccept: no".into() },
            false,
        );
        let denied: ExchangeError = EwsError::Unauthorized { status: 401 }.into();
        assert!(denied.is_denied() && !denied.is_not_found());
        assert!(denied.to_string().starts_with("EWS: "), "the protocol is named: {denied}");
    }
}
