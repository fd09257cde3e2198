//! What can go wrong talking to TOPdesk, in ORB's words, and how TOPdesk's error bodies are read.

use std::time::Duration;

use thiserror::Error;

use crate::wire::{ErrorMessage, ErrorResponseEntity};

/// A failed TOPdesk call.
///
/// Only [`TopdeskError::Throttled`] and [`TopdeskError::Transient`] are worth retrying
/// ([`TopdeskError::is_retryable`]); everything else needs a change of input, configuration or rights.
/// Which answer becomes which variant is decided in one place, by evidence (status, `Content-Type`, body,
/// `Retry-After`, transport error); the table is in the crate's `classify` module and its test.
#[derive(Debug, Error)]
pub enum TopdeskError {
    /// The record does not exist (or branch filters hide it from this account).
    #[error("TOPdesk has no {what}; it may have been deleted, or the API account's branch filters hide it")]
    NotFound {
        /// What was asked for, e.g. `reservation 3fa8…`.
        what: String,
    },
    /// TOPdesk refused the request (400, 409, 422 with TOPdesk's JSON or text reason: room unavailable,
    /// person archived, field not updatable, …): `reason` is TOPdesk's own message. Not retryable.
    #[error("TOPdesk rejected {action}: {reason}")]
    Rejected {
        /// What ORB tried, e.g. `creating a reservation`.
        action: String,
        /// TOPdesk's message(s), with the stable error code and the fields they apply to when given.
        reason: String,
        /// TOPdesk's stable error codes (shape 1 bodies), for programmatic decisions.
        codes: Vec<String>,
    },
    /// The login name or application password was not accepted (401).
    #[error(
        "TOPdesk did not accept the credentials of login {login:?} ({detail}); check the login name and the \
         application password (they expire), and that the account is not archived"
    )]
    Unauthorized {
        /// The login name used.
        login: String,
        /// What TOPdesk said.
        detail: String,
    },
    /// Authenticated, but the account lacks a permission (403).
    #[error(
        "TOPdesk refused {action} for lack of permission ({detail}); give the API account the reservations \
         management, persons and locations rights and check its branch filters"
    )]
    Forbidden {
        /// What ORB tried.
        action: String,
        /// What TOPdesk said.
        detail: String,
    },
    /// TOPdesk (or a proxy in front of it) asked ORB to slow down or wait: 429, or any transient failure
    /// (408, 425, 5xx but 501/505, HTML error page) that came with `Retry-After` (seconds or HTTP-date,
    /// capped at the retry policy's `max_retry_after`).
    #[error("TOPdesk is throttling requests or asked ORB to wait{}; ORB retries later", fmt_after(*retry_after))]
    Throttled {
        /// How long TOPdesk asked to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// A temporary failure that may pass: connection refused or reset, timeout, an answer that broke off
    /// mid-body, 408/425/500/502/503/504 (any 5xx but 501/505) without `Retry-After`, or an HTML page (IIS,
    /// proxy, maintenance) where TOPdesk's JSON was expected — also on a 200.
    #[error("TOPdesk is unreachable or temporarily unavailable while {action}: {detail}; ORB retries later")]
    Transient {
        /// What ORB tried.
        action: String,
        /// What happened.
        detail: String,
        /// The HTTP client's error, when there was one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// ORB was about to send something TOPdesk cannot accept; nothing was sent.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// Why.
        reason: String,
    },
    /// Any other failure that retrying will not fix (unexpected status, unreadable body, bad configuration).
    #[error("TOPdesk call failed while {action}: {detail}")]
    Permanent {
        /// What ORB tried.
        action: String,
        /// What happened.
        detail: String,
        /// The underlying error, when there was one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

fn fmt_after(after: Option<Duration>) -> String {
    after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default()
}

impl TopdeskError {
    /// Whether trying again later may succeed (throttling and transient failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Transient { .. })
    }

    /// How long TOPdesk asked to wait before the next try.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// TOPdesk's reason, for [`TopdeskError::Rejected`].
    pub fn rejection_reason(&self) -> Option<&str> {
        match self {
            Self::Rejected { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// Reads any of TOPdesk's three error body shapes (reference §2.5) into one human-readable reason and the
/// stable error codes: shape 1 `{"errors":[{errorCode, appliesTo, errorMessage}]}`, shape 2
/// `[{"message"}]`, shape 3 `[{errorCode, appliesTo, errorMessage}]`; anything else (an HTML 401 page, plain
/// text) is kept as trimmed text.
pub fn parse_error_body(body: &str) -> (String, Vec<String>) {
    let describe = |errors: &[crate::wire::ErrorDescription]| {
        let codes = errors.iter().map(|e| e.error_code.clone()).collect();
        let text = errors
            .iter()
            .map(|e| {
                let mut line = e.error_message.clone().unwrap_or_else(|| e.error_code.clone());
                if e.error_message.is_some() {
                    line.push_str(&format!(" [{}]", e.error_code));
                }
                if let Some(fields) = e.applies_to.as_ref().filter(|f| !f.is_empty()) {
                    line.push_str(&format!(" (applies to {})", fields.join(", ")));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("; ");
        (text, codes)
    };
    if let Ok(entity) = serde_json::from_str::<ErrorResponseEntity>(body)
        && !entity.errors.is_empty()
    {
        return describe(&entity.errors);
    }
    if let Ok(errors) = serde_json::from_str::<Vec<crate::wire::ErrorDescription>>(body)
        && !errors.is_empty()
    {
        return describe(&errors);
    }
    if let Ok(messages) = serde_json::from_str::<Vec<ErrorMessage>>(body) {
        let text: Vec<String> = messages.into_iter().filter_map(|m| m.message).collect();
        if !text.is_empty() {
            return (text.join("; "), Vec::new());
        }
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return ("no details given".to_owned(), Vec::new());
    }
    let mut text: String = trimmed.chars().take(300).collect();
    if trimmed.chars().count() > 300 {
        text.push('…');
    }
    (text, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, reason: &str, codes: &[&str]) {
        let (got, got_codes) = parse_error_body(body);
        assert_eq!(got, reason, "body {body}");
        assert_eq!(got_codes, codes, "body {body}");
    }

    #[test]
    fn reads_all_three_shapes_and_falls_back_to_text() {
        check(
            r#"{"errors":[{"errorCode":"plannedEndDateBeforeStart","appliesTo":["plannedEndDate"],"errorMessage":"End before start"}]}"#,
            "End before start [plannedEndDateBeforeStart] (applies to plannedEndDate)",
            &["plannedEndDateBeforeStart"],
        );
        check(r#"{"errors":[{"errorCode":"x"}]}"#, "x", &["x"]);
        check(r#"[{"message":"Input parameters malformed"}]"#, "Input parameters malformed", &[]);
        check(
            r#"[{"errorCode":"notFound","errorMessage":"Person not found"},{"errorCode":"b","appliesTo":[]}]"#,
            "Person not found [notFound]; b",
            &["notFound", "b"],
        );
        check("<html><body>Login failed</body></html>", "<html><body>Login failed</body></html>", &[]);
        check("  ", "no details given", &[]);
    }

    #[test]
    fn only_throttling_and_transient_failures_are_retryable() {
        assert!(TopdeskError::Throttled { retry_after: None }.is_retryable());
        assert!(
            TopdeskError::Transient { action: "a".into(), detail: "d".into(), source: None }.is_retryable()
        );
        assert!(
            !TopdeskError::Rejected { action: "a".into(), reason: "r".into(), codes: vec![] }.is_retryable()
        );
        assert!(!TopdeskError::Unauthorized { login: "l".into(), detail: "d".into() }.is_retryable());
        assert!(!TopdeskError::NotFound { what: "x".into() }.is_retryable());
        let throttled = TopdeskError::Throttled { retry_after: Some(Duration::from_secs(3)) };
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(3)));
        assert!(throttled.to_string().contains("retry after 3s"));
    }
}
