use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orb_store::StoreError;
use thiserror::Error;

use crate::refusals::Refusal;

/// The one body of [`WebError::NoSuchHook`], whatever the reason.
pub const NO_SUCH_HOOK: &str =
    "no such webhook: check the tenant name in the URL and, for TOPdesk, the push token\n";

/// Why the intake refused a request, in ORB's words. Messages say what the sender should do and never
/// contain a secret (clientState, push token) or a body.
#[derive(Debug, Error)]
pub enum WebError {
    /// The URL names no tenant ORB knows, or (TOPdesk) the bearer token is missing or wrong, or the tenant
    /// has no push token. One answer for all of them, so the intake does not tell which tenants exist.
    #[error("no such webhook: check the tenant name in the URL and, for TOPdesk, the push token")]
    NoSuchHook,
    /// The sender's address is outside the tenant's webhook allow-list.
    #[error("webhooks for this tenant are not accepted from your address; ask its administrator to allow it")]
    AddressRefused,
    /// EWS: the callback URL's key (`k`) is missing or is not the notification's subscription's.
    #[error(
        "the key in this callback URL is not the subscription's; notifications for it are not accepted here"
    )]
    BadSubscriptionKey,
    /// Over the per-address or per-tenant rate limit.
    #[error("too many webhook requests; retry after {retry_after_secs} seconds")]
    RateLimited {
        /// When the sender may try again, in whole seconds.
        retry_after_secs: u64,
    },
    /// The body is larger than the endpoint accepts.
    #[error("the request body is larger than {limit} bytes; send smaller batches")]
    BodyTooLarge {
        /// The endpoint's limit, in bytes.
        limit: usize,
    },
    /// The body could not be read (the connection broke while sending it).
    #[error("the request body could not be read completely; send it again")]
    BodyUnreadable,
    /// The body is not what the endpoint expects.
    #[error("the request body is not {expected}; fix the sender")]
    MalformedBody {
        /// What the endpoint expects, e.g. `a changeNotificationCollection (JSON)`.
        expected: &'static str,
    },
    /// A TOPdesk push body is JSON of the right shape but its hints break the rules.
    #[error("invalid reservation hints: {reason}; send 1 to 100 ids or numbers of at most 64 characters")]
    InvalidHints {
        /// What is wrong (counts and positions only, never the values).
        reason: String,
    },
    /// The store could not be read or written: nothing was kept.
    #[error("the webhook could not be stored ({source}); nothing was kept, the sender should retry")]
    Store {
        /// The store's error.
        #[from]
        source: StoreError,
    },
}

impl WebError {
    /// Whether the sender sending the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store { .. } | Self::BodyUnreadable | Self::RateLimited { .. })
    }

    /// The refusal this error counts as; `None` for a store failure (the sender retries it) and for the
    /// refusals the intake counts itself ([`WebError::NoSuchHook`], [`WebError::RateLimited`]).
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::BodyTooLarge { .. } => Some(Refusal::BodyTooLarge),
            Self::BodyUnreadable => Some(Refusal::BodyUnreadable),
            Self::MalformedBody { .. } => Some(Refusal::MalformedBody),
            Self::InvalidHints { .. } => Some(Refusal::InvalidHints),
            Self::AddressRefused => Some(Refusal::AddressNotAllowed),
            Self::BadSubscriptionKey => Some(Refusal::BadClientState),
            Self::NoSuchHook | Self::RateLimited { .. } | Self::Store { .. } => None,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoSuchHook => StatusCode::NOT_FOUND,
            Self::AddressRefused | Self::BadSubscriptionKey => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyUnreadable | Self::MalformedBody { .. } | Self::InvalidHints { .. } => {
                StatusCode::BAD_REQUEST
            }
            // 503 so Graph (and TOPdesk) retry: the item was not kept.
            Self::Store { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The text sent back: the message, except that a store failure's details (database internals) stay in
    /// the server's log.
    fn public_message(&self) -> String {
        match self {
            Self::Store { .. } => "the webhook could not be stored; nothing was kept, retry later".to_owned(),
            Self::NoSuchHook => NO_SUCH_HOOK.to_owned(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let Self::Store { source } = &self {
            tracing::error!(error = %source, "webhook intake: store failure, answering 503");
        }
        let status = self.status();
        let mut response = (status, self.public_message()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        match self {
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::Store { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_retryability() {
        let check = |err: WebError, status: u16, retryable: bool, says: &str| {
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert_eq!(err.is_retryable(), retryable, "{err}");
            assert!(err.public_message().contains(says), "{err}");
        };
        check(WebError::NoSuchHook, 404, false, "check the tenant name");
        check(WebError::RateLimited { retry_after_secs: 7 }, 429, true, "retry after 7 seconds");
        check(WebError::BadSubscriptionKey, 403, false, "key in this callback URL");
        check(WebError::BodyTooLarge { limit: 10 }, 413, false, "larger than 10 bytes");
        check(WebError::BodyUnreadable, 400, true, "send it again");
        check(WebError::MalformedBody { expected: "JSON" }, 400, false, "not JSON");
        check(WebError::InvalidHints { reason: "none".into() }, 400, false, "1 to 100");
        let store = StoreError::Corrupt { what: "secret db detail".into(), reason: "x".into() };
        let err = WebError::from(store);
        check(err, 503, true, "retry later");
        let err = WebError::from(StoreError::Corrupt { what: "secret db detail".into(), reason: "x".into() });
        assert!(!err.public_message().contains("secret db detail"), "store internals stay in the log");
    }
}
