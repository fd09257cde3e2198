//! What can go wrong talking to Graph, in ORB's words.

use std::time::Duration;

use thiserror::Error;

/// A failed Graph call. Foreign errors are only ever a `#[source]`. Which answer becomes which variant is
/// decided in one place, by evidence (status, `Content-Type`, body, `Retry-After`, transport error); the
/// table is in the crate's `classify` module and its test.
#[derive(Debug, Error)]
pub enum GraphError {
    /// The token endpoint refused the app's credentials, or Graph refused the token.
    #[error(
        "Microsoft refused ORB's credentials for tenant {tenant}: {reason}; check the app's client id, \
         client secret or certificate in the tenant's settings (and that admin consent was given)"
    )]
    Unauthorized {
        /// Tenant id or domain.
        tenant: String,
        /// Entra's or Graph's explanation.
        reason: String,
    },
    /// Graph denied access to a mailbox or resource.
    #[error(
        "Graph denied access ({code}): {message}; grant the app the Graph permission and check the \
         mailbox is inside the app's access policy / RBAC scope"
    )]
    Forbidden {
        /// Graph error code, e.g. `ErrorAccessDenied`.
        code: String,
        /// Graph's message.
        message: String,
    },
    /// The item, mailbox or subscription does not exist (any more).
    #[error("{what} was not found in Graph; it may have been deleted meanwhile")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// Someone else changed the item first.
    #[error("Graph reported a conflict: {message}; reload the item and plan again")]
    Conflict {
        /// Graph's message.
        message: String,
    },
    /// Graph (or ORB's own per-mailbox budget) throttled the call (429, 503), or a transient failure (408,
    /// 425, 5xx but 501/505, HTML error page) came with `Retry-After`; try again after `retry_after`.
    #[error("Graph throttled the request; try again in {} s", retry_after.as_secs_f64())]
    Throttled {
        /// How long to wait.
        retry_after: Duration,
    },
    /// May succeed later: connection refused or reset, timeout, an answer that broke off mid-body, 408, 425,
    /// 5xx (but 501/505) without `Retry-After`, or an HTML page (gateway, sign-in, maintenance) where
    /// Graph's JSON was expected — also on a 200.
    #[error("Graph is temporarily unreachable or failing ({message}); the call will be retried later")]
    Transient {
        /// What happened.
        message: String,
        /// The HTTP client's error, if any.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// Graph refused the request as invalid; sending it again will not help.
    #[error("Graph rejected the request ({code}): {reason}; the request has to change before it can succeed")]
    Rejected {
        /// Graph error code.
        code: String,
        /// Graph's message.
        reason: String,
    },
    /// A delta token is no longer valid (410 or `syncStateNotFound`) even after a fresh start.
    #[error("the calendar delta of {mailbox} had to restart twice in one round; run a full resync later")]
    SyncReset {
        /// The mailbox.
        mailbox: String,
    },
    /// Any other failure that retrying will not fix.
    #[error("Graph failed (HTTP {status}, {code}): {message}")]
    Permanent {
        /// HTTP status.
        status: u16,
        /// Graph error code.
        code: String,
        /// Graph's message.
        message: String,
    },
    /// Graph's answer did not have the expected shape.
    #[error("Graph's response could not be read as {what}: {source}; report this to the ORB developers")]
    Decode {
        /// What was expected.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Graph refused to create a subscription because ORB's notification (or lifecycle) endpoint failed the
    /// validation handshake.
    #[error(
        "Graph could not validate the notification endpoint {url}: {reason}; make sure ORB's webhook URL is \
         reachable from Microsoft over HTTPS and answers `?validationToken=` with 200, text/plain and the \
         decoded token within 10 seconds"
    )]
    EndpointValidation {
        /// The notification URL that was asked for.
        url: String,
        /// Graph's message.
        reason: String,
    },
    /// A change notification (or a whole POST) failed ORB's checks: unknown subscription, wrong
    /// clientState, a bad validationToken, or content that does not decrypt.
    #[error(
        "a change notification was refused: {reason}; it is ignored (if this keeps happening, check the \
         subscription's clientState, the JWKS URL and the encryption certificates, or someone is forging \
         notifications)"
    )]
    NotificationRefused {
        /// Which check failed.
        reason: String,
        /// The crypto error behind it, if any.
        #[source]
        source: Option<orb_crypto::CryptoError>,
    },
    /// A validationToken names a signing key the cached JWKS does not have: refetch the JWKS and check
    /// again (at most once; [`crate::JwksCache`] does this).
    #[error(
        "a validationToken is signed with key {kid:?}, which the cached JWKS does not hold; refetch the JWKS"
    )]
    UnknownSigningKey {
        /// The token's `kid`.
        kid: String,
    },
    /// The client's configuration is unusable.
    #[error("invalid Graph client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl GraphError {
    /// Whether the same call can succeed later without changes.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. }
                | Self::Transient { .. }
                | Self::SyncReset { .. }
                | Self::UnknownSigningKey { .. }
        )
    }

    /// How long to wait before retrying, if Graph said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(err: GraphError, retryable: bool, says: &str) {
        assert_eq!(err.is_retryable(), retryable, "{err}");
        assert!(err.to_string().contains(says), "{err:?} should say {says:?}");
    }

    #[test]
    fn errors_name_the_fix_and_classify() {
        check(GraphError::Throttled { retry_after: Duration::from_secs(3) }, true, "try again in 3 s");
        check(GraphError::Transient { message: "503".into(), source: None }, true, "retried later");
        check(GraphError::NotFound { what: "event X".into() }, false, "event X was not found");
        check(
            GraphError::Rejected { code: "ErrorInvalidRequest".into(), reason: "bad".into() },
            false,
            "has to change",
        );
        check(
            GraphError::Unauthorized { tenant: "t".into(), reason: "AADSTS7000215".into() },
            false,
            "client secret",
        );
        check(GraphError::Conflict { message: "etag".into() }, false, "reload");
        check(
            GraphError::EndpointValidation { url: "https://x/hook".into(), reason: "timed out".into() },
            false,
            "validationToken",
        );
        check(
            GraphError::NotificationRefused { reason: "clientState differs".into(), source: None },
            false,
            "clientState differs",
        );
        check(GraphError::UnknownSigningKey { kid: "k9".into() }, true, "refetch the JWKS");
    }
}
