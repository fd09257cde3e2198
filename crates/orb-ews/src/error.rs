//! The client's errors, classified by evidence (HTTP status, SOAP fault, per-message `ResponseCode`) in
//! one place: [`classify_code`] maps a response code the same way whether it came in a fault or in a
//! `ResponseMessage` (both transports carry every code, ews.md §6.2).

use std::time::Duration;

/// What went wrong talking to Exchange, and what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EwsError {
    /// Throttled (`ErrorServerBusy`, or HTTP 503 with `Retry-After`): wait `back_off` (when Exchange
    /// named one) before the next request for this account.
    #[error("Exchange is busy ({code}); wait {back_off:?} before the next request for this account")]
    Busy {
        /// The response code.
        code: String,
        /// `BackOffMilliseconds` (or `Retry-After`), if given.
        back_off: Option<Duration>,
    },
    /// A failure that passes: 5xx, an HTML error page, a timeout, a reset, a transient response code.
    #[error("transient failure talking to Exchange ({what}); retry with back-off")]
    Transient {
        /// The HTTP status, if there was an answer.
        status: Option<u16>,
        /// What happened (status and code, or the network error; never a secret).
        what: String,
    },
    /// The item changed since ORB read it (`ErrorIrresolvableConflict`, `ErrorStaleObject`,
    /// `ErrorInvalidChangeKey`, `ErrorChangeKeyRequired…`).
    #[error("the item changed since ORB read it ({code}); re-read it with GetItem and re-plan")]
    Changed {
        /// The response code.
        code: String,
    },
    /// The service account may not act for the mailbox.
    #[error("the service account may not act for {mailbox} ({code}): {hint}")]
    ImpersonationDenied {
        /// The response code.
        code: String,
        /// The mailbox ORB tried to act for.
        mailbox: String,
        /// Which role or scope is missing.
        hint: String,
    },
    /// `ErrorItemNotFound`: gone, or not visible to this account.
    #[error("the item is gone ({code}); treat it as deleted and re-sync the folder")]
    NotFound {
        /// The response code.
        code: String,
    },
    /// HTTP 401.
    #[error(
        "Exchange refused the credentials (HTTP {status}); check the service account's user name and password \
         (or token), and that the EWS virtual directory allows this authentication method"
    )]
    Unauthorized {
        /// The HTTP status.
        status: u16,
    },
    /// Exchange's `401` does not offer the configured authentication method (e.g. NTLM when only Basic
    /// is enabled on the EWS virtual directory).
    #[error(
        "Exchange does not offer {wanted} authentication at the EWS URL (it offers: {offered}); enable it on \
         the EWS virtual directory (for NTLM: Set-WebServicesVirtualDirectory -WindowsAuthentication $true) \
         or configure an authentication method it offers"
    )]
    AuthNotOffered {
        /// The configured method.
        wanted: String,
        /// The schemes of Exchange's `WWW-Authenticate` headers.
        offered: String,
    },
    /// The subscription is lost (`ErrorSubscriptionNotFound`, `ErrorInvalidWatermark`, …).
    #[error(
        "the subscription is gone ({code}); subscribe again without the old watermark and re-sync the folder"
    )]
    SubscriptionLost {
        /// The response code.
        code: String,
    },
    /// `ErrorInvalidSyncStateData` / `ErrorSyncFolderNotFound`.
    #[error("the sync state is not valid ({code}); restart SyncFolderItems without a state")]
    SyncStateInvalid {
        /// The response code.
        code: String,
    },
    /// A permanent refusal: a SOAP fault such as `ErrorSchemaValidation`, or a per-message error that
    /// retrying will not change.
    #[error(
        "Exchange refused the request ({code}: {message}); retrying will not help, the request must change"
    )]
    Rejected {
        /// The response code.
        code: String,
        /// Exchange's message text.
        message: String,
    },
    /// The answer is not an EWS answer ORB can read.
    #[error(
        "Exchange answered something ORB cannot read ({reason}); check the EWS URL points at /EWS/Exchange.asmx"
    )]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The answer is larger than the configured cap.
    #[error("Exchange's answer exceeds {limit} bytes; ask for fewer items per request or raise the cap")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The client is configured in a way ORB refuses.
    #[error("EWS client configuration: {reason}")]
    Config {
        /// What to change.
        reason: String,
    },
    /// The caller's input cannot be sent (nothing was sent), or a lookup's input cannot be answered
    /// (only reads were sent, e.g. a [`crate::EwsClient::find_by_uid`] window too full to prove an
    /// absence). Nothing was written either way.
    #[error("invalid EWS request: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

impl EwsError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Busy { .. } | Self::Transient { .. })
    }

    /// How long Exchange asked ORB to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Busy { back_off, .. } => *back_off,
            _ => None,
        }
    }
}

const TRANSIENT: &[&str] = &[
    "ErrorInternalServerTransientError",
    "ErrorInternalServerError",
    "ErrorMailboxStoreUnavailable",
    "ErrorMailboxMoveInProgress",
    "ErrorTimeoutExpired",
    "ErrorExceededConnectionCount",
    "ErrorConnectionFailed",
];

const CHANGED: &[&str] = &[
    "ErrorIrresolvableConflict",
    "ErrorStaleObject",
    "ErrorInvalidChangeKey",
    "ErrorChangeKeyRequired",
    "ErrorChangeKeyRequiredForWriteOperations",
];

const SUBSCRIPTION_LOST: &[&str] = &[
    "ErrorInvalidSubscription",
    "ErrorSubscriptionNotFound",
    "ErrorExpiredSubscription",
    "ErrorSubscriptionAccessDenied",
    "ErrorSubscriptionDelegateAccessNotSupported",
    "ErrorInvalidWatermark",
    "ErrorReadEventsFailed",
    "ErrorMissedNotificationEvents",
];

/// Maps an EWS response code to an error. `mailbox` is the impersonated mailbox (for the message),
/// `back_off` the `BackOffMilliseconds` if the answer carried one.
pub fn classify_code(
    code: &str,
    message: &str,
    mailbox: Option<&str>,
    back_off: Option<Duration>,
) -> EwsError {
    let code_s = code.to_owned();
    let mailbox = mailbox.unwrap_or("(no mailbox)").to_owned();
    match code {
        "ErrorServerBusy" => EwsError::Busy { code: code_s, back_off },
        c if TRANSIENT.contains(&c) => EwsError::Transient { status: None, what: code_s },
        c if CHANGED.contains(&c) => EwsError::Changed { code: code_s },
        "ErrorImpersonateUserDenied" => EwsError::ImpersonationDenied {
            code: code_s,
            mailbox,
            hint: "the mailbox is outside the management scope of the account's ApplicationImpersonation \
                   role assignment; add it to the scope (New-ManagementScope … -RecipientRestrictionFilter, \
                   New-ManagementRoleAssignment -Role ApplicationImpersonation -CustomRecipientWriteScope)"
                .into(),
        },
        "ErrorImpersonationDenied" | "ErrorImpersonationFailed" => EwsError::ImpersonationDenied {
            code: code_s,
            mailbox,
            hint: "the account has no ApplicationImpersonation role assignment (or Exchange could not apply \
                   it); assign it with New-ManagementRoleAssignment -Role ApplicationImpersonation"
                .into(),
        },
        "ErrorNonExistentMailbox" => EwsError::ImpersonationDenied {
            code: code_s,
            mailbox,
            hint:
                "the address does not resolve to a mailbox in this Exchange organisation; check the room's \
                   or organizer's address in ORB's settings"
                    .into(),
        },
        "ErrorItemNotFound" => EwsError::NotFound { code: code_s },
        c if SUBSCRIPTION_LOST.contains(&c) => EwsError::SubscriptionLost { code: code_s },
        "ErrorInvalidSyncStateData" | "ErrorSyncFolderNotFound" => {
            EwsError::SyncStateInvalid { code: code_s }
        }
        _ => EwsError::Rejected { code: code_s, message: message.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_what_the_caller_must_do() {
        let cases: &[(&str, bool, &str)] = &[
            ("ErrorServerBusy", true, "Busy"),
            ("ErrorInternalServerTransientError", true, "Transient"),
            ("ErrorMailboxStoreUnavailable", true, "Transient"),
            ("ErrorIrresolvableConflict", false, "Changed"),
            ("ErrorInvalidChangeKey", false, "Changed"),
            ("ErrorStaleObject", false, "Changed"),
            ("ErrorImpersonateUserDenied", false, "ImpersonationDenied"),
            ("ErrorNonExistentMailbox", false, "ImpersonationDenied"),
            ("ErrorItemNotFound", false, "NotFound"),
            ("ErrorInvalidWatermark", false, "SubscriptionLost"),
            ("ErrorInvalidSyncStateData", false, "SyncStateInvalid"),
            ("ErrorSchemaValidation", false, "Rejected"),
            ("ErrorCalendarIsNotOrganizer", false, "Rejected"),
        ];
        for (code, retryable, kind) in cases {
            let e = classify_code(code, "m", Some("room@x.example"), Some(Duration::from_millis(5)));
            assert_eq!(e.is_retryable(), *retryable, "{code}");
            assert!(format!("{e:?}").starts_with(kind), "{code}: {e:?}");
        }
        let busy = classify_code("ErrorServerBusy", "", None, Some(Duration::from_millis(297_749)));
        assert_eq!(busy.retry_after(), Some(Duration::from_millis(297_749)));
    }

    #[test]
    fn impersonation_messages_name_the_role_and_the_scope() {
        let e = classify_code("ErrorImpersonateUserDenied", "", Some("bob@contoso.com"), None).to_string();
        assert!(e.contains("bob@contoso.com") && e.contains("ApplicationImpersonation"), "{e}");
        assert!(e.contains("management scope") && e.contains("CustomRecipientWriteScope"), "{e}");
    }
}
