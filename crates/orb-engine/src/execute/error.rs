//! What can go wrong carrying out a write, in ORB's words, and how it maps onto the planner's
//! [`WriteFailure`].

use std::time::Duration;

use crate::exchange::{ExchangeError, Failure};
use orb_core::{RoomId, Side, WriteFailure};
#[cfg(test)]
use orb_graph::GraphError;
use orb_topdesk::TopdeskError;
use thiserror::Error;

/// The remote client's error behind an [`ExecError`] (only ever a `#[source]`).
pub type RemoteError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A write (or mail) that failed. Foreign errors are only ever the `#[source]`.
#[derive(Debug, Error)]
pub enum ExecError {
    /// The side asked ORB to slow down.
    #[error("{side} is throttling ORB while {action}{}; the write is retried later", after(*retry_after))]
    Throttled {
        /// The side.
        side: Side,
        /// What ORB tried.
        action: &'static str,
        /// How long the side asked to wait, when it said.
        retry_after: Option<Duration>,
        /// The client's error.
        #[source]
        source: RemoteError,
    },
    /// A connection error, timeout or 5xx: may succeed later.
    #[error("{side} is unreachable or temporarily failing while {action}; the write is retried later")]
    Unavailable {
        /// The side.
        side: Side,
        /// What ORB tried.
        action: &'static str,
        /// The client's error.
        #[source]
        source: RemoteError,
    },
    /// The side refused the write for good (e.g. TOPdesk: the room is occupied).
    #[error("{side} refused {action}: {reason}")]
    Refused {
        /// The side.
        side: Side,
        /// What ORB tried.
        action: &'static str,
        /// The side's own reason.
        reason: String,
        /// The client's error.
        #[source]
        source: RemoteError,
    },
    /// The item the write is about no longer exists on the side (and is not something a cancel can
    /// treat as done).
    #[error("{side} no longer holds {what}; the booking has to be observed again")]
    Gone {
        /// The side.
        side: Side,
        /// What was looked for.
        what: String,
    },
    /// ORB's credentials or rights on the side are not good enough: an admin must act.
    #[error("{side} denied ORB {action}; check the tenant's credentials and the API account's rights")]
    Denied {
        /// The side.
        side: Side,
        /// What ORB tried.
        action: &'static str,
        /// The client's error.
        #[source]
        source: RemoteError,
    },
    /// The item changed on the side since the version ORB last saw (Graph refused the conditional write,
    /// `412`): nothing was written. The engine reads the item and plans again with it; failing that, the
    /// write is retried like a transient failure.
    #[error("{side} refused {action}: the item changed since ORB last read it; it is read and planned again")]
    Changed {
        /// The side.
        side: Side,
        /// What ORB tried.
        action: &'static str,
        /// The client's error.
        #[source]
        source: RemoteError,
    },
    /// The booking's room is not (or no longer) in the tenant's room map.
    #[error("room {room} is not in the tenant's room map; map the room again or resubmit the booking")]
    UnmappedRoom {
        /// The room.
        room: RoomId,
    },
    /// The action or record holds something the side cannot take (an id that is not a UUID, …).
    #[error("cannot {action} in {side}: {reason}")]
    Invalid {
        /// The side.
        side: Side,
        /// What ORB tried.
        action: &'static str,
        /// Why.
        reason: String,
    },
    /// Any other failure that retrying will not fix.
    #[error("{side} failed while {action}")]
    Failed {
        /// The side.
        side: Side,
        /// What ORB tried.
        action: &'static str,
        /// The client's error.
        #[source]
        source: RemoteError,
    },
}

fn after(d: Option<Duration>) -> String {
    d.map(|d| format!(" (retry after {} s)", d.as_secs())).unwrap_or_default()
}

/// How a failed write is to be handled: maps onto [`WriteFailure`] for [`orb_core::plan_write_failure`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureClass {
    /// Retry later, after `retry_after` if the side said.
    Transient {
        /// The side's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Refused for good; `reason` is shown in the portal (never contains a subject).
    Permanent {
        /// Why.
        reason: String,
    },
    /// The item the write was for is gone from the side: its deletion is carried over when observed.
    Gone {
        /// What was looked for.
        what: String,
    },
    /// The side denied ORB's credentials or rights (401 / 403): a configuration failure of the tenant, not
    /// of the booking. The engine pauses the tenant's writes to the side ([`crate::pause`]) and puts the
    /// job back; nobody is mailed.
    Config {
        /// What the side said, and what to check.
        reason: String,
    },
}

impl FailureClass {
    /// The planner's view of this failure (`None` for a configuration failure, which the engine handles
    /// without the planner).
    pub fn to_write_failure(&self) -> Option<WriteFailure> {
        match self {
            Self::Transient { retry_after } => Some(WriteFailure::Transient {
                retry_after: retry_after.and_then(|d| chrono::Duration::from_std(d).ok()),
            }),
            Self::Permanent { reason } => Some(WriteFailure::Permanent { reason: reason.clone() }),
            Self::Gone { what } => Some(WriteFailure::Gone { what: what.clone() }),
            Self::Config { .. } => None,
        }
    }
}

impl ExecError {
    /// Whether the same write can succeed later without changes.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable { .. })
    }

    /// The side the failed write was for (`None` for a room-map problem found before any call).
    pub fn side(&self) -> Option<Side> {
        match self {
            Self::Throttled { side, .. }
            | Self::Unavailable { side, .. }
            | Self::Refused { side, .. }
            | Self::Changed { side, .. }
            | Self::Gone { side, .. }
            | Self::Denied { side, .. }
            | Self::Invalid { side, .. }
            | Self::Failed { side, .. } => Some(*side),
            Self::UnmappedRoom { .. } => None,
        }
    }

    /// Transient (retry) or permanent (give up, tell the organizer). A refusal carries the side's own reason.
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Throttled { retry_after, .. } => FailureClass::Transient { retry_after: *retry_after },
            Self::Unavailable { .. } | Self::Changed { .. } => FailureClass::Transient { retry_after: None },
            Self::Refused { reason, .. } => FailureClass::Permanent { reason: reason.clone() },
            Self::Denied { .. } => FailureClass::Config { reason: self.to_string() },
            Self::Gone { what, .. } => FailureClass::Gone { what: what.clone() },
            other => FailureClass::Permanent { reason: other.to_string() },
        }
    }

    pub(crate) fn exchange(action: &'static str) -> impl FnOnce(ExchangeError) -> Self {
        move |e| {
            let side = Side::Exchange;
            match e.failure() {
                Failure::Throttled { retry_after } => {
                    Self::Throttled { side, action, retry_after, source: Box::new(e) }
                }
                Failure::Transient => Self::Unavailable { side, action, source: Box::new(e) },
                Failure::NotFound { what } => Self::Gone { side, what },
                Failure::Rejected { reason } => Self::Refused { side, action, reason, source: Box::new(e) },
                Failure::Changed => Self::Changed { side, action, source: Box::new(e) },
                Failure::Denied => Self::Denied { side, action, source: Box::new(e) },
                Failure::Permanent => Self::Failed { side, action, source: Box::new(e) },
            }
        }
    }

    pub(crate) fn topdesk(action: &'static str) -> impl FnOnce(TopdeskError) -> Self {
        move |e| {
            let side = Side::Topdesk;
            match e {
                TopdeskError::Throttled { retry_after } => {
                    Self::Throttled { side, action, retry_after, source: Box::new(e) }
                }
                e if e.is_retryable() => Self::Unavailable { side, action, source: Box::new(e) },
                TopdeskError::NotFound { what } => Self::Gone { side, what },
                TopdeskError::Rejected { ref reason, .. } => {
                    Self::Refused { side, action, reason: reason.clone(), source: Box::new(e) }
                }
                TopdeskError::Invalid { what, reason } => {
                    Self::Invalid { side, action, reason: format!("invalid {what}: {reason}") }
                }
                TopdeskError::Unauthorized { .. } | TopdeskError::Forbidden { .. } => {
                    Self::Denied { side, action, source: Box::new(e) }
                }
                e => Self::Failed { side, action, source: Box::new(e) },
            }
        }
    }

    pub(crate) fn is_gone(&self) -> bool {
        matches!(self, Self::Gone { .. })
    }

    /// Whether the side refused the write because the item changed since ORB last saw it.
    pub fn is_changed(&self) -> bool {
        matches!(self, Self::Changed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_clients() {
        let throttled = ExecError::exchange("creating")(
            GraphError::Throttled { retry_after: Duration::from_secs(7) }.into(),
        );
        assert!(throttled.is_retryable());
        assert_eq!(throttled.class(), FailureClass::Transient { retry_after: Some(Duration::from_secs(7)) });
        assert_eq!(
            throttled.class().to_write_failure(),
            Some(WriteFailure::Transient { retry_after: Some(chrono::Duration::seconds(7)) })
        );
        let denied = ExecError::topdesk("creating")(TopdeskError::Unauthorized {
            login: "orb-api".into(),
            detail: "expired".into(),
        });
        assert!(matches!(denied.class(), FailureClass::Config { .. }));
        assert_eq!(denied.class().to_write_failure(), None, "not the planner's business");
        let refused = ExecError::topdesk("creating")(TopdeskError::Rejected {
            action: "creating a reservation".into(),
            reason: "Room occupied".into(),
            codes: vec![],
        });
        assert!(!refused.is_retryable());
        assert_eq!(refused.class(), FailureClass::Permanent { reason: "Room occupied".into() });
        let down = ExecError::topdesk("x")(TopdeskError::Transient {
            action: "a".into(),
            detail: "503".into(),
            source: None,
        });
        assert_eq!(down.class(), FailureClass::Transient { retry_after: None });
        let changed = ExecError::exchange("updating")(GraphError::Conflict { message: "412".into() }.into());
        assert!(changed.is_changed() && !changed.is_retryable(), "read and planned again, not resent as is");
        assert_eq!(changed.class(), FailureClass::Transient { retry_after: None }, "else retried later");
        let gone = ExecError::exchange("x")(GraphError::NotFound { what: "event 1".into() }.into());
        assert!(gone.is_gone() && !gone.is_retryable());
        assert_eq!(gone.class().to_write_failure(), Some(WriteFailure::Gone { what: "event 1".into() }));
        assert_eq!(gone.side(), Some(Side::Exchange));
    }
}
