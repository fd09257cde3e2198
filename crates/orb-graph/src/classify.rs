//! Failure classification: the one place where what Graph (or a gateway in front of it) answered becomes
//! a [`GraphError`] class — for direct calls, `$batch` envelopes and batch items alike.
//!
//! | evidence | class | retryable |
//! |---|---|---|
//! | connection refused/reset, timeout (connect, request or body), body cut off mid-way | `Transient` | yes |
//! | 2xx with a JSON (or empty) body | success | — |
//! | 2xx with an HTML page where JSON was expected (gateway, sign-in or maintenance page) | `Transient` | yes |
//! | 401 | `Unauthorized` (the client refreshes its token once first) | no |
//! | 403 | `Forbidden` | no |
//! | 404 | `NotFound` | no |
//! | 410 | `Permanent { status: 410 }` (a delta token that is gone: the delta restarts) | no |
//! | 429, 503 | `Throttled { Retry-After, else the back-off }` | yes |
//! | 408, 425, 500, 502, 504, any other 5xx but 501/505 — with `Retry-After` | `Throttled { Retry-After }` | yes |
//! | the same without `Retry-After` | `Transient` | yes |
//! | an HTML page on any other error status (gateway error page) | `Transient` | yes |
//! | 400, 422 | `Rejected { code, reason }` | no |
//! | 409, 412 | `Conflict` | no |
//! | anything else (405, 406, 413, 501, 505, …) | `Permanent` | no |
//!
//! `Retry-After` is read as seconds or as an HTTP-date (against the injected clock); whether a long one is
//! waited out is the caller's decision ([`crate::ClientOptions::max_retry_after`]). The token endpoint and the
//! JWKS endpoint use the same transient rules ([`is_transient_status`], [`is_html`]); any other refusal
//! of the token endpoint is `Unauthorized`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::GraphError;
use crate::model::ErrorResponse;

/// What a classification needs besides the answer itself.
pub(crate) struct Context<'a> {
    /// The tenant, for `Unauthorized`.
    pub(crate) tenant: &'a str,
    /// Now, to turn an HTTP-date `Retry-After` into a delay.
    pub(crate) now: DateTime<Utc>,
    /// The wait reported for a 429/503 without `Retry-After` (the caller's back-off).
    pub(crate) backoff: Duration,
}

/// One HTTP answer, as far as classification cares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer<'a> {
    /// The status.
    pub(crate) status: u16,
    /// The `Content-Type` header.
    pub(crate) content_type: Option<&'a str>,
    /// The `Retry-After` header.
    pub(crate) retry_after: Option<&'a str>,
    /// The body.
    pub(crate) body: &'a [u8],
}

/// Statuses that say "not now" rather than "not this": worth trying again.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

/// Whether Graph said the request was not processed (throttled or refused at the door), so that even a
/// non-idempotent call may be sent again.
pub(crate) fn not_processed(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// Classifies one HTTP answer: `Ok(())` for a usable success, otherwise the error it means. `what` names
/// the request (e.g. `GET /v1.0/users/x/events/y`) for `NotFound` and `Transient`.
pub(crate) fn classify(
    cx: &Context<'_>,
    answer: Answer<'_>,
    what: impl FnOnce() -> String,
) -> Result<(), GraphError> {
    let Answer { status, content_type, retry_after: after, body } = answer;
    let html = is_html(content_type, body);
    if (200..300).contains(&status) {
        if html {
            return Err(GraphError::Transient {
                message: format!(
                    "{} answered {status} with an HTML page ({}) instead of JSON — a gateway, sign-in or \
                     maintenance page",
                    what(),
                    html_summary(body)
                ),
                source: None,
            });
        }
        return Ok(());
    }
    let (code, message) = match serde_json::from_slice::<ErrorResponse>(body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) if html => (String::new(), format!("an HTML page ({})", html_summary(body))),
        Err(_) => (String::new(), String::from_utf8_lossy(body).chars().take(200).collect()),
    };
    match status {
        401 => {
            return Err(GraphError::Unauthorized {
                tenant: cx.tenant.to_owned(),
                reason: format!("{code}: {message}"),
            });
        }
        403 => return Err(GraphError::Forbidden { code, message }),
        404 => return Err(GraphError::NotFound { what: what() }),
        410 => return Err(GraphError::Permanent { status, code, message }),
        _ => {}
    }
    if is_transient_status(status) || html {
        let after = after.and_then(|text| retry_after(text, cx.now));
        if let Some(retry_after) = after {
            return Err(GraphError::Throttled { retry_after });
        }
        if not_processed(status) {
            return Err(GraphError::Throttled { retry_after: cx.backoff });
        }
        let code = if code.is_empty() { String::new() } else { format!(" {code}") };
        return Err(GraphError::Transient {
            message: format!("{} answered {status}{code}: {message}", what()),
            source: None,
        });
    }
    Err(match status {
        400 | 422 => GraphError::Rejected { code, reason: message },
        409 | 412 => GraphError::Conflict { message: format!("{code}: {message}") },
        s => GraphError::Permanent { status: s, code, message },
    })
}

/// Reads an answer's body, stopping with a permanent error that names the cap (`cap_name`, the option
/// that sets it) as soon as it is longer than `cap` bytes — whatever `Content-Length` claims.
pub(crate) async fn read_capped(
    what: &str,
    mut response: reqwest::Response,
    cap: u64,
    cap_name: &str,
) -> Result<Vec<u8>, GraphError> {
    let status = response.status().as_u16();
    let too_large = || GraphError::Permanent {
        status,
        code: "responseTooLarge".to_owned(),
        message: format!(
            "the answer to {what} is larger than the cap of {cap} bytes ({cap_name}); ORB did not read it"
        ),
    };
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(what, e))? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Classifies a failure below HTTP (no answer, or an answer cut off): transient, except a request ORB
/// could not even build.
pub(crate) fn transport(what: &str, e: reqwest::Error) -> GraphError {
    if e.is_builder() {
        return GraphError::Config { reason: format!("{what} cannot be sent: {e}") };
    }
    let message = if e.is_timeout() {
        format!("{what} got no answer in time")
    } else if e.is_body() || e.is_decode() {
        format!("the answer to {what} broke off")
    } else {
        format!("{what} failed")
    };
    GraphError::Transient { message, source: Some(e) }
}

/// A `Retry-After` value: a delay in seconds or an HTTP-date.
pub(crate) fn retry_after(text: &str, now: DateTime<Utc>) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(text).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Whether a body is an HTML page: declared as HTML, or undeclared/non-JSON text that starts with a tag.
pub(crate) fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    let declared = content_type.map(str::to_ascii_lowercase);
    if declared.as_deref().is_some_and(|ct| ct.contains("json")) {
        return false;
    }
    if declared.as_deref().is_some_and(|ct| ct.contains("html")) {
        return true;
    }
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

/// A short human summary of an HTML page: its `<title>`, else its text without tags (at most 200 chars).
pub(crate) fn html_summary(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    if let Some(start) = lower.find("<title>")
        && let Some(len) = lower[start + 7..].find("</title>")
    {
        let title = text[start + 7..start + 7 + len].split_whitespace().collect::<Vec<_>>().join(" ");
        if !title.is_empty() {
            return format!("title {title:?}");
        }
    }
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                plain.push(' ');
            }
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let plain: String = plain.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
    if plain.is_empty() { "no text".to_owned() } else { format!("{plain:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");
    const HTML: Option<&str> = Some("text/html");
    const GATEWAY_502: &str = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad \
                               Gateway</h1></center></body></html>";

    /// One answer: status, `Content-Type`, body, `Retry-After`.
    type Row<'a> = (u16, Option<&'a str>, &'a str, Option<&'a str>);

    fn run((status, content_type, body, retry_after): Row<'_>) -> Result<(), GraphError> {
        let now = DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let cx = Context { tenant: "contoso", now, backoff: Duration::from_millis(1500) };
        let answer = Answer { status, content_type, retry_after, body: body.as_bytes() };
        classify(&cx, answer, || "PATCH /v1.0/users/anna@contoso.com/events/AAMk".to_owned())
    }

    fn graph(code: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"{code} happened"}}}}"#)
    }

    /// The expected class: the variant's name, whether it is retryable, and its `retry_after()` in ms.
    fn check(row: Row<'_>, variant: &str, retryable: bool, after_ms: Option<u128>) {
        let got = run(row);
        let (name, is_retryable, got_after) = match &got {
            Ok(()) => ("ok", false, None),
            Err(e) => {
                let name = match e {
                    GraphError::Unauthorized { .. } => "Unauthorized",
                    GraphError::Forbidden { .. } => "Forbidden",
                    GraphError::NotFound { .. } => "NotFound",
                    GraphError::Conflict { .. } => "Conflict",
                    GraphError::Throttled { .. } => "Throttled",
                    GraphError::Transient { .. } => "Transient",
                    GraphError::Rejected { .. } => "Rejected",
                    GraphError::Permanent { .. } => "Permanent",
                    other => panic!("classify never answers {other:?}"),
                };
                (name, e.is_retryable(), e.retry_after().map(|d| d.as_millis()))
            }
        };
        assert_eq!((name, is_retryable, got_after), (variant, retryable, after_ms), "{row:?} → {got:?}");
    }

    #[test]
    fn every_answer_has_one_class() {
        let general = &graph("generalException");
        let unavailable = &graph("serviceNotAvailable");
        let timeout = &graph("timeout");
        let invalid = &graph("ErrorInvalidRequest");
        let denied = &graph("ErrorAccessDenied");
        // Success, and HTML where JSON was expected.
        check((200, JSON, r#"{"id":"AAMk"}"#, None), "ok", false, None);
        check((201, Some("application/json; odata.metadata=minimal"), "{}", None), "ok", false, None);
        check((202, None, "", None), "ok", false, None);
        check((204, None, "", None), "ok", false, None);
        check(
            (200, HTML, "<html><title>Sign in to your account</title></html>", None),
            "Transient",
            true,
            None,
        );
        check((200, None, "<!DOCTYPE html><html>…</html>", None), "Transient", true, None);
        // Throttling: Retry-After in seconds or as an HTTP-date, else the caller's back-off.
        check((429, JSON, &graph("ApplicationThrottled"), Some("7")), "Throttled", true, Some(7000));
        check((429, JSON, "", None), "Throttled", true, Some(1500));
        check((503, JSON, unavailable, Some("2")), "Throttled", true, Some(2000));
        check((503, JSON, unavailable, None), "Throttled", true, Some(1500));
        check(
            (503, HTML, "<html>Service Unavailable</html>", Some("Tue, 01 Sep 2026 06:00:30 GMT")),
            "Throttled",
            true,
            Some(30_000),
        );
        check((503, None, "", Some("Tue, 01 Sep 2026 05:00:00 GMT")), "Throttled", true, Some(0));
        // Other transient statuses: Transient, or Throttled when Graph said how long to wait.
        for (status, body) in
            [(408, ""), (425, ""), (500, general), (502, GATEWAY_502), (504, timeout), (507, ""), (599, "")]
        {
            let ct = if body.starts_with('<') { HTML } else { JSON };
            check((status, ct, body, None), "Transient", true, None);
            check((status, ct, body, Some("4")), "Throttled", true, Some(4000));
        }
        check((502, HTML, GATEWAY_502, Some("later")), "Transient", true, None);
        check((418, HTML, "<html><title>I'm a teapot proxy</title></html>", None), "Transient", true, None);
        // Refusals that name a reason, conflicts, and what the status alone decides.
        check((400, JSON, invalid, None), "Rejected", false, None);
        check((422, JSON, invalid, None), "Rejected", false, None);
        check((400, JSON, &graph("syncStateNotFound"), None), "Rejected", false, None);
        check((409, JSON, &graph("ErrorIrresolvableConflict"), None), "Conflict", false, None);
        check((412, JSON, &graph("ErrorIrresolvableConflict"), None), "Conflict", false, None);
        check((401, JSON, &graph("InvalidAuthenticationToken"), None), "Unauthorized", false, None);
        check((401, HTML, "<html>401</html>", None), "Unauthorized", false, None);
        check((403, JSON, denied, None), "Forbidden", false, None);
        check((403, HTML, "<html>403</html>", Some("5")), "Forbidden", false, None);
        check((404, JSON, &graph("ErrorItemNotFound"), None), "NotFound", false, None);
        check((404, HTML, "<html>404</html>", None), "NotFound", false, None);
        check((410, JSON, &graph("resyncRequired"), None), "Permanent", false, None);
        for status in [405, 406, 413, 501, 505] {
            check((status, JSON, general, None), "Permanent", false, None);
        }
    }

    #[test]
    fn errors_say_what_happened() {
        let text = |row: Row<'_>| run(row).unwrap_err().to_string();
        assert!(
            text((502, HTML, GATEWAY_502, None))
                .contains("answered 502: an HTML page (title \"502 Bad Gateway\")")
        );
        assert!(
            text((500, JSON, &graph("generalException"), None)).contains("answered 500 generalException")
        );
        assert!(
            text((200, HTML, "<html><body>Down for maintenance</body></html>", None))
                .contains("HTML page (\"Down for maintenance\") instead of JSON")
        );
        match run((400, JSON, &graph("ErrorInvalidRequest"), None)) {
            Err(GraphError::Rejected { code, reason }) => {
                assert_eq!(
                    (code.as_str(), reason.as_str()),
                    ("ErrorInvalidRequest", "ErrorInvalidRequest happened")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
