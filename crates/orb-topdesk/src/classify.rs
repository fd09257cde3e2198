//! Failure classification: the one place where what TOPdesk (or whatever stands in front of it) answered
//! becomes a [`TopdeskError`] class — by evidence, not by hope.
//!
//! | evidence | class | retryable |
//! |---|---|---|
//! | connection refused/reset, timeout (connect, request or body), body cut off mid-way | `Transient` | yes |
//! | 2xx with a JSON (or empty) body | success | — |
//! | 3xx but 304 (redirects are never followed) | `Permanent`, naming the URL and where it points | no |
//! | 2xx with an HTML page where JSON was expected (proxy, login or maintenance page) | `Transient` | yes |
//! | 401 | `Unauthorized` | no |
//! | 403 | `Forbidden` | no |
//! | 404 | `NotFound` | no |
//! | 408, 425, 429, 500, 502, 503, 504, any other 5xx but 501/505 — with `Retry-After` | `Throttled { Some }` | yes |
//! | 429 without `Retry-After` | `Throttled { None }` | yes |
//! | 408, 425, 5xx (as above) without `Retry-After` | `Transient` | yes |
//! | an HTML page on any other error status (IIS/proxy error page) | `Transient` | yes |
//! | 400, 409, 422 with TOPdesk's JSON (or plain text) reason | `Rejected { reason, codes }` | no |
//! | anything else (405, 406, 410, 413, 501, 505, …) | `Permanent` | no |
//!
//! `Retry-After` is read as seconds or as an HTTP-date (against the injected clock) and capped at the
//! retry policy's `max_retry_after`. A 401/403/404 keeps its class even with an HTML body (TOPdesk sends
//! HTML 401 pages, reference §2.5), because the status alone says what to fix.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};

use crate::error::{TopdeskError, parse_error_body};

/// What a classification needs besides the answer itself.
pub(crate) struct Context<'a> {
    /// What ORB tried, e.g. `creating a reservation`.
    pub(crate) action: &'a str,
    /// What was asked for, for `NotFound`.
    pub(crate) what: &'a str,
    /// The URL asked (for a redirect's message; its query is never shown).
    pub(crate) url: &'a url::Url,
    /// The API account's login name, for `Unauthorized`.
    pub(crate) login: &'a str,
    /// Now, to turn an HTTP-date `Retry-After` into a delay.
    pub(crate) now: DateTime<Utc>,
    /// The longest `Retry-After` honoured.
    pub(crate) max_retry_after: Duration,
}

/// Statuses that say "not now" rather than "not this": worth trying again.
pub(crate) fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429)
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// Classifies one HTTP answer: `Ok(())` for a usable success, otherwise the error it means.
pub(crate) fn classify(
    cx: &Context<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), TopdeskError> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let html = is_html(content_type, body);
    if status.is_success() {
        if html {
            return Err(TopdeskError::Transient {
                action: cx.action.into(),
                detail: format!(
                    "TOPdesk answered HTTP {status} with an HTML page ({}) instead of JSON — a proxy, login or \
                     maintenance page",
                    html_summary(body)
                ),
                source: None,
            });
        }
        return Ok(());
    }
    if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
        let location = headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
        return Err(TopdeskError::Permanent {
            action: cx.action.into(),
            detail: format!(
                "{} answered HTTP {status}, a redirect to {location}; ORB does not follow redirects: set \
                 topdesk.url to the address TOPdesk itself serves",
                shown_url(cx.url)
            ),
            source: None,
        });
    }
    let reason = || {
        if html {
            format!("an HTML page ({})", html_summary(body))
        } else {
            parse_error_body(&String::from_utf8_lossy(body)).0
        }
    };
    match status {
        StatusCode::UNAUTHORIZED => {
            return Err(TopdeskError::Unauthorized { login: cx.login.into(), detail: reason() });
        }
        StatusCode::FORBIDDEN => {
            return Err(TopdeskError::Forbidden { action: cx.action.into(), detail: reason() });
        }
        StatusCode::NOT_FOUND => return Err(TopdeskError::NotFound { what: cx.what.into() }),
        _ => {}
    }
    if is_transient_status(status) || html {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|text| retry_after(text, cx.now))
            .map(|d| d.min(cx.max_retry_after));
        if retry_after.is_some() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(TopdeskError::Throttled { retry_after });
        }
        return Err(TopdeskError::Transient {
            action: cx.action.into(),
            detail: format!("HTTP {status}: {}", reason()),
            source: None,
        });
    }
    if matches!(status.as_u16(), 400 | 409 | 422) {
        let (reason, codes) = parse_error_body(&String::from_utf8_lossy(body));
        return Err(TopdeskError::Rejected { action: cx.action.into(), reason, codes });
    }
    Err(TopdeskError::Permanent {
        action: cx.action.into(),
        detail: format!("unexpected HTTP {status}: {}", reason()),
        source: None,
    })
}

/// A URL for messages: scheme, host, port and path; never a query (it may hold names) or credentials.
pub(crate) fn shown_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

/// Classifies a failure below HTTP (no answer, or an answer cut off): connection errors, timeouts and
/// bodies that break off are transient; a request ORB could not even build, or a redirect loop, is not.
pub(crate) fn transport(action: &str, e: reqwest::Error) -> TopdeskError {
    if e.is_builder() || e.is_redirect() {
        TopdeskError::Permanent { action: action.into(), detail: e.to_string(), source: Some(Box::new(e)) }
    } else {
        let detail = if e.is_timeout() {
            format!("no answer in time ({e})")
        } else if e.is_body() || e.is_decode() {
            format!("the answer broke off ({e})")
        } else {
            e.to_string()
        };
        TopdeskError::Transient { action: action.into(), detail, source: Some(e) }
    }
}

/// A `Retry-After` value: a delay in seconds or an HTTP-date.
pub(crate) fn retry_after(text: &str, now: DateTime<Utc>) -> Option<Duration> {
    let text = text.trim();
    match text.parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => {
            let at = crate::datetime::parse_http(text)?;
            Some((at - now).to_std().unwrap_or(Duration::ZERO))
        }
    }
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
    use reqwest::header::HeaderValue;

    const JSON: Option<&str> = Some("application/json");
    const HTML: Option<&str> = Some("text/html; charset=utf-8");
    const IIS_502: &str = "<!DOCTYPE html><html><head><title>502 - Web server received an invalid response \
                           while acting as a gateway or proxy server.</title></head><body>…</body></html>";
    const ROOM_TAKEN: &str = r#"{"errors":[{"errorCode":"facilityOccupied","appliesTo":["facility"],"errorMessage":"Room already reserved"}]}"#;

    /// One answer: status, `Content-Type`, body, `Retry-After`.
    type Row = (u16, Option<&'static str>, &'static str, Option<&'static str>);

    fn now() -> DateTime<Utc> {
        crate::datetime::parse("2026-03-01T08:00:00Z").unwrap()
    }

    fn run((status, content_type, body, after): Row) -> Result<(), TopdeskError> {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        if let Some(after) = after {
            headers.insert(RETRY_AFTER, HeaderValue::from_static(after));
        }
        let url = url::Url::parse("https://contoso.topdesk.net/tas/api/reservations?query=secret").unwrap();
        let cx = Context {
            action: "creating a reservation",
            what: "reservation 1",
            url: &url,
            login: "orb-api",
            now: now(),
            max_retry_after: Duration::from_secs(60),
        };
        classify(&cx, StatusCode::from_u16(status).unwrap(), &headers, body.as_bytes())
    }

    /// The expected class: the variant's name, whether it is retryable, and its `retry_after()`.
    fn check(row: Row, variant: &str, retryable: bool, after: Option<u64>) {
        let got = run(row);
        let (name, is_retryable, got_after) = match &got {
            Ok(()) => ("ok", false, None),
            Err(e) => {
                let name = match e {
                    TopdeskError::NotFound { .. } => "NotFound",
                    TopdeskError::Rejected { .. } => "Rejected",
                    TopdeskError::Unauthorized { .. } => "Unauthorized",
                    TopdeskError::Forbidden { .. } => "Forbidden",
                    TopdeskError::Throttled { .. } => "Throttled",
                    TopdeskError::Transient { .. } => "Transient",
                    TopdeskError::Invalid { .. } => "Invalid",
                    TopdeskError::Permanent { .. } => "Permanent",
                };
                (name, e.is_retryable(), e.retry_after().map(|d| d.as_secs()))
            }
        };
        assert_eq!((name, is_retryable, got_after), (variant, retryable, after), "{row:?} → {got:?}");
    }

    #[test]
    fn every_answer_has_one_class() {
        // Success, and HTML where JSON was expected.
        check((200, JSON, r#"{"id":"x"}"#, None), "ok", false, None);
        check((201, JSON, r#"{"id":"x"}"#, None), "ok", false, None);
        check((204, None, "", None), "ok", false, None);
        check((206, JSON, r#"{"results":[]}"#, None), "ok", false, None);
        check((200, HTML, "<html><title>Maintenance</title></html>", None), "Transient", true, None);
        check((200, None, "  <!DOCTYPE html><html>Sign in</html>", None), "Transient", true, None);
        // Transient statuses, JSON or HTML, with and without Retry-After.
        for status in [408, 425, 500, 502, 503, 504, 507, 520] {
            check((status, JSON, r#"[{"message":"Internal error"}]"#, None), "Transient", true, None);
            check((status, HTML, IIS_502, None), "Transient", true, None);
            check((status, None, "", None), "Transient", true, None);
            check((status, JSON, "", Some("7")), "Throttled", true, Some(7));
        }
        check((429, None, "", None), "Throttled", true, None);
        check((429, None, "", Some("3")), "Throttled", true, Some(3));
        check((503, HTML, IIS_502, Some("Sun, 01 Mar 2026 08:00:30 GMT")), "Throttled", true, Some(30));
        check((503, None, "", Some("Sun, 01 Mar 2026 07:00:00 GMT")), "Throttled", true, Some(0));
        check((503, None, "", Some("86400")), "Throttled", true, Some(60));
        check((500, None, "", Some("soon")), "Transient", true, None);
        // Business refusals carry TOPdesk's reason; an HTML page on those statuses is not TOPdesk's reason.
        check((400, JSON, ROOM_TAKEN, None), "Rejected", false, None);
        check((400, JSON, r#"[{"message":"Person is archived"}]"#, None), "Rejected", false, None);
        check((409, JSON, r#"[{"message":"Duplicate link"}]"#, None), "Rejected", false, None);
        check((422, Some("text/plain"), "Field not updatable", None), "Rejected", false, None);
        check((400, None, "", None), "Rejected", false, None);
        check(
            (400, HTML, "<html><title>Bad Request - Invalid Hostname</title></html>", None),
            "Transient",
            true,
            None,
        );
        // Credentials, rights and absence keep their own variants, whatever the body.
        check((401, JSON, r#"[{"message":"Invalid login"}]"#, None), "Unauthorized", false, None);
        check((401, HTML, "<html><title>Login failed</title></html>", None), "Unauthorized", false, None);
        check((403, JSON, r#"[{"message":"No permission"}]"#, None), "Forbidden", false, None);
        check((403, HTML, "<html><title>403.6 IP denied</title></html>", None), "Forbidden", false, None);
        check((404, None, "", None), "NotFound", false, None);
        check((404, HTML, "<html><title>Not found</title></html>", Some("5")), "NotFound", false, None);
        // A redirect is never followed: whatever it says, ORB talks only to the configured address.
        for status in [301, 302, 303, 307, 308] {
            check((status, HTML, "<html>Moved</html>", None), "Permanent", false, None);
            check((status, None, "", Some("1")), "Permanent", false, None);
        }
        // Anything else is not going to get better by itself.
        for status in [405, 406, 410, 413, 415, 501, 505] {
            check((status, JSON, r#"[{"message":"no"}]"#, None), "Permanent", false, None);
        }
    }

    #[test]
    fn errors_say_what_happened() {
        let text = |row: Row| run(row).unwrap_err().to_string();
        let moved = text((301, None, "", None));
        assert!(
            moved.contains("https://contoso.topdesk.net/tas/api/reservations answered HTTP 301")
                && moved.contains("does not follow redirects")
                && moved.contains("topdesk.url")
                && !moved.contains("secret"),
            "{moved}"
        );
        let rejected = run((400, JSON, ROOM_TAKEN, None)).unwrap_err();
        assert_eq!(
            rejected.rejection_reason(),
            Some("Room already reserved [facilityOccupied] (applies to facility)")
        );
        assert!(
            text((502, HTML, IIS_502, None))
                .contains("HTTP 502 Bad Gateway: an HTML page (title \"502 - Web server")
        );
        assert!(
            text((200, HTML, "<html><body><h1>Down for maintenance</h1></body></html>", None))
                .contains("HTML page (\"Down for maintenance\") instead of JSON")
        );
        assert!(
            text((500, JSON, r#"[{"message":"NullPointerException"}]"#, None))
                .contains("NullPointerException")
        );
        assert!(text((401, JSON, r#"[{"message":"Invalid login"}]"#, None)).contains("\"orb-api\""));
    }
}
