//! Fault plans: the emulators fail like the real services when told to — per endpoint and method (for
//! EWS: per SOAP operation), for reads and writes, as a burst or at a rate, deterministically from a seed.
//!
//! A [`FaultPlan`] is a seed and a list of [`FaultRule`]s. For each request (control API excluded) the
//! rules are tried in order; the first rule that matches the method and path *and fires* decides the
//! request's fault. A rule fires for every match (`rate` 1, the default) or for a share of them drawn from
//! the plan's generator (xorshift64*, seeded): the same seed and the same sequence of requests give the
//! same faults. `next: N` makes a burst: the rule fires for the next N matching requests only, then is
//! spent. Each injected fault is in the emulator's request log (`fault`, `faultKind`,
//! `faultAfterHandling`).
//!
//! | kind | what the client sees | write applied? |
//! |---|---|---|
//! | `status` | the status (or 200 with `body: html`: a maintenance/sign-in page) with a realistic body: TOPdesk — IIS HTML page for 502/504 and for about half of the 500s (seeded), `[{"message"}]` JSON otherwise; Graph — `{"error":{"code","message"}}` for all but 502, which gets an HTML gateway page; `Retry-After` if `retryAfterSecs` | only with `afterHandling` |
//! | `timeout` | nothing: the connection is held open for `holdMs` (default 60 s, the client gives up first), then dropped | only with `afterHandling` |
//! | `reset` | the headers and part of the body, then the connection is aborted (before handling: a 200 whose JSON breaks off) | only with `afterHandling` |
//! | `slowBody` | the real answer, its body trickled `chunkBytes` every `delayMs` | **always** (it is the real answer, sent slowly) |
//! | `serverBusy` (EWS) | HTTP 500 with the SOAP fault `ErrorServerBusy` and `BackOffMilliseconds` = `backOffMs`; a storm is `next: N` | only with `afterHandling` |
//! | `soapFault` (EWS) | HTTP 500 with a SOAP fault of `code` (e.g. `ErrorInternalServerTransientError`) | only with `afterHandling` |
//!
//! EWS answers `status` faults as Exchange and IIS do: 500 a SOAP fault `ErrorInternalServerError`
//! (`body: json` also means "the service's own error body", a SOAP fault, for EWS), 502/503/504 and other
//! statuses IIS's HTML page (`text/html`). Every request to EWS is a `POST` to one path, so EWS rules
//! name the SOAP `operation` (the body's root element: `FindItem`, `GetItem`, `CreateItem`,
//! `UpdateItem`, `DeleteItem`, `SyncFolderItems`, `Subscribe`, …), or `read` / `write` (reads:
//! FindItem, GetItem, SyncFolderItems, GetRoomLists, GetRooms). A rule with an `operation` never
//! matches Graph or TOPdesk requests; `serverBusy` and `soapFault` are EWS's (the other emulators answer
//! them with a bare 500).
//!
//! Without `afterHandling` a fault happens before the emulator handles the request, so its state does not
//! change. With `afterHandling: true` the request is handled (a write is applied) and then its answer is
//! replaced, held back or broken off: the nasty real-world case where the client cannot know whether its
//! write happened.
//!
//! Control API (every emulator): `GET|PUT /_emulator/faultPlan` with a plan as JSON, e.g. "the next 3
//! `POST /tas/api/reservations` answer 500":
//!
//! ```json
//! {"seed": 7, "rules": [
//!   {"method": "POST", "path": "/tas/api/reservations", "next": 3, "fault": {"kind": "status", "status": 500}}
//! ]}
//! ```
//!
//! "5 % of all Graph writes answer 502 with an HTML page" and "the next create is applied, then its answer
//! breaks off":
//!
//! ```json
//! {"seed": 1, "rules": [
//!   {"method": "POST", "path": "/v1.0/users/*/events", "next": 1, "afterHandling": true, "fault": {"kind": "reset"}},
//!   {"method": "write", "path": "/v1.0/**", "rate": 0.05, "fault": {"kind": "status", "status": 502, "body": "html"}}
//! ]}
//! ```
//!
//! An `ErrorServerBusy` storm on EWS calendar views, then 2 % of EWS writes lost after they were applied:
//!
//! ```json
//! {"seed": 3, "rules": [
//!   {"operation": "FindItem", "next": 5, "fault": {"kind": "serverBusy", "backOffMs": 30000}},
//!   {"operation": "write", "rate": 0.02, "afterHandling": true, "fault": {"kind": "reset"}}
//! ]}
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The longest a `timeout` fault may hold a connection (10 minutes), so no task is held forever.
pub const MAX_HOLD_MS: u64 = 600_000;

/// The longest `BackOffMilliseconds` a `serverBusy` fault may ask for (one hour; Exchange's are minutes).
pub const MAX_BACK_OFF_MS: u64 = 3_600_000;

/// A seeded list of fault rules. `Default` is the empty plan (no faults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultPlan {
    /// Seed of the plan's draws (rates, HTML-or-JSON choices).
    pub seed: u64,
    /// The rules, tried in order; the first that matches and fires decides.
    pub rules: Vec<FaultRule>,
    /// The generator's state (`None` until the first draw: then it starts from `seed`).
    #[serde(skip)]
    state: Option<u64>,
}

/// Which requests fail, how often and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// `GET`, `POST`, … (any case), `read` (GET, HEAD) or `write` (any other method); none = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The path, e.g. `/tas/api/reservations`; a segment `*` matches any one segment and a last segment
    /// `**` matches any rest (also none), e.g. `/v1.0/users/*/events/**`. Compared case-insensitively;
    /// none = any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Share of matching requests that fail, 0 to 1 (drawn from the plan's seed); default 1: all.
    #[serde(default = "always")]
    pub rate: f64,
    /// EWS only: the SOAP operation (`FindItem`, `CreateItem`, …, any case), or `read` / `write`; none = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// A burst: only the next N requests this rule fires for; counts down to 0 (spent). None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u32>,
    /// Fail only after the emulator has handled the request (the write is applied; its answer is lost).
    #[serde(default)]
    pub after_handling: bool,
    /// The fault.
    pub fault: FaultKind,
}

fn always() -> f64 {
    1.0
}

impl FaultRule {
    /// A rule for every request with `fault`, before handling (narrow it with the builder methods).
    pub fn new(fault: FaultKind) -> Self {
        Self {
            method: None,
            path: None,
            operation: None,
            rate: 1.0,
            next: None,
            after_handling: false,
            fault,
        }
    }

    /// Only requests with this method (`GET`, `POST`, …, `read` or `write`).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_owned());
        self
    }

    /// Only requests whose path matches `pattern` (see [`FaultRule::path`]).
    pub fn path(mut self, pattern: &str) -> Self {
        self.path = Some(pattern.to_owned());
        self
    }

    /// Only this SOAP operation (EWS), or `read` / `write`.
    pub fn operation(mut self, operation: &str) -> Self {
        self.operation = Some(operation.to_owned());
        self
    }

    /// Only a share of the matching requests.
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    /// Only the next `n` matching requests.
    pub fn next(mut self, n: u32) -> Self {
        self.next = Some(n);
        self
    }

    /// After the request was handled.
    pub fn after_handling(mut self) -> Self {
        self.after_handling = true;
        self
    }

    /// Whether the rule is about this request (spent or not).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.matches_soap(method, path, None)
    }

    /// Whether the rule is about this request, which carries `soap` (EWS) or not (Graph, TOPdesk).
    pub fn matches_soap(&self, method: &str, path: &str, soap: Option<SoapOperation<'_>>) -> bool {
        let operation_ok = match (self.operation.as_deref(), soap) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(wanted), Some(op)) if wanted.eq_ignore_ascii_case("read") => op.read,
            (Some(wanted), Some(op)) if wanted.eq_ignore_ascii_case("write") => !op.read,
            (Some(wanted), Some(op)) => wanted.eq_ignore_ascii_case(op.name),
        };
        let method_ok = match self.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None => true,
            Some("READ") => matches!(method, "GET" | "HEAD"),
            Some("WRITE") => !matches!(method, "GET" | "HEAD"),
            Some(wanted) => method.eq_ignore_ascii_case(wanted),
        };
        operation_ok && method_ok && self.path.as_deref().is_none_or(|pattern| path_matches(pattern, path))
    }
}

/// The SOAP operation of an EWS request, for rules with an `operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoapOperation<'a> {
    /// The body's root element's local name (`FindItem`, `CreateItem`, …).
    pub name: &'a str,
    /// Whether it only reads.
    pub read: bool,
}

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum FaultKind {
    /// An error status (400–599) with a realistic body — or 200 with an HTML page where JSON belongs (a
    /// proxy's maintenance or sign-in page).
    Status {
        /// The status, e.g. 500, 502, 504 (or 200 with `body: html`).
        status: u16,
        /// The body's form; `auto` follows the service (see the module docs).
        #[serde(default)]
        body: BodyStyle,
        /// Send `Retry-After` with this many seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// Accept the request and never answer: hold the connection, then drop it.
    Timeout {
        /// How long to hold before dropping (default 60 s, at most [`MAX_HOLD_MS`]).
        #[serde(default = "default_hold")]
        hold_ms: u64,
    },
    /// Send the headers and part of the body, then abort the connection.
    Reset,
    /// Send the real answer slowly: `chunk_bytes` at a time, each after `delay_ms`.
    SlowBody {
        /// Bytes per chunk (default 16).
        #[serde(default = "default_chunk")]
        chunk_bytes: usize,
        /// Delay before each chunk.
        delay_ms: u64,
    },
    /// EWS: HTTP 500 with the SOAP fault `ErrorServerBusy` and `BackOffMilliseconds`.
    ServerBusy {
        /// `BackOffMilliseconds`.
        back_off_ms: u64,
    },
    /// EWS: HTTP 500 with a SOAP fault of this response code.
    SoapFault {
        /// The response code, e.g. `ErrorInternalServerTransientError`.
        code: String,
    },
}

fn default_hold() -> u64 {
    60_000
}

fn default_chunk() -> usize {
    16
}

impl FaultKind {
    /// `status` with `status` and the service's usual body.
    pub fn status(status: u16) -> Self {
        Self::Status { status, body: BodyStyle::Auto, retry_after_secs: None }
    }

    /// `status` with an explicit body form.
    pub fn status_with(status: u16, body: BodyStyle) -> Self {
        Self::Status { status, body, retry_after_secs: None }
    }

    /// A `timeout` holding the connection for `hold`.
    pub fn timeout(hold: Duration) -> Self {
        Self::Timeout { hold_ms: u64::try_from(hold.as_millis()).unwrap_or(MAX_HOLD_MS) }
    }

    /// The name in the request log: `status`, `timeout`, `reset`, `slowBody`, `serverBusy` or
    /// `soapFault`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::Timeout { .. } => "timeout",
            Self::Reset => "reset",
            Self::SlowBody { .. } => "slowBody",
            Self::ServerBusy { .. } => "serverBusy",
            Self::SoapFault { .. } => "soapFault",
        }
    }

    /// The status a `status` fault answers with.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::ServerBusy { .. } | Self::SoapFault { .. } => Some(500),
            _ => None,
        }
    }
}

/// The form of an injected error body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BodyStyle {
    /// What the service usually sends for that status (see the module docs).
    #[default]
    Auto,
    /// The service's JSON error body.
    Json,
    /// An HTML error page (IIS for TOPdesk, a gateway for Graph).
    Html,
    /// No body.
    Empty,
}

/// The fault a plan chose for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// What goes wrong.
    pub fault: FaultKind,
    /// Whether the request is handled first.
    pub after_handling: bool,
    /// A seeded coin flip, for where the real service varies (TOPdesk answers some 500s with an HTML
    /// page, others with JSON).
    pub coin: bool,
    /// The index of the rule that fired.
    pub rule: usize,
}

impl FaultPlan {
    /// A plan of `rules` drawing from `seed`.
    pub fn new(seed: u64, rules: Vec<FaultRule>) -> Self {
        Self { seed, rules, state: None }
    }

    /// Whether any rule can still fire.
    pub fn is_active(&self) -> bool {
        self.rules.iter().any(|r| r.next != Some(0) && r.rate > 0.0)
    }

    /// Checks the values a control-API caller may get wrong; the message says which rule and what to
    /// change.
    pub fn validate(&self) -> Result<(), String> {
        for (i, rule) in self.rules.iter().enumerate() {
            let bad = |what: String| Err(format!("fault rule {i}: {what}"));
            if !(0.0..=1.0).contains(&rule.rate) {
                return bad(format!("rate {} must be between 0 and 1", rule.rate));
            }
            if let Some(path) = &rule.path
                && !path.starts_with('/')
            {
                return bad(format!("path {path:?} must start with '/'"));
            }
            if rule.method.as_deref().is_some_and(|m| m.trim().is_empty()) {
                return bad("method must not be empty (leave it out to match any)".to_owned());
            }
            if rule.operation.as_deref().is_some_and(|o| o.trim().is_empty()) {
                return bad("operation must not be empty (leave it out to match any)".to_owned());
            }
            match &rule.fault {
                FaultKind::Status { status: 200, body: BodyStyle::Html, .. } => {}
                FaultKind::Status { status, .. } if !(400..=599).contains(status) => {
                    return bad(format!(
                        "status {status} must be an error status (400 to 599), or 200 with body \"html\" (a \
                         maintenance or sign-in page)"
                    ));
                }
                FaultKind::Timeout { hold_ms } if *hold_ms > MAX_HOLD_MS => {
                    return bad(format!("holdMs {hold_ms} must be at most {MAX_HOLD_MS}"));
                }
                FaultKind::SlowBody { chunk_bytes: 0, .. } => {
                    return bad("chunkBytes must be at least 1".to_owned());
                }
                FaultKind::ServerBusy { back_off_ms } if *back_off_ms > MAX_BACK_OFF_MS => {
                    return bad(format!("backOffMs {back_off_ms} must be at most {MAX_BACK_OFF_MS}"));
                }
                FaultKind::SoapFault { code }
                    if !code.starts_with("Error") || !code.chars().all(|c| c.is_ascii_alphanumeric()) =>
                {
                    return bad(format!(
                        "code {code:?} must be an EWS response code such as \"ErrorInternalServerTransientError\""
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The fault for one request, if any (advances bursts and the generator).
    pub fn decide(&mut self, method: &str, path: &str) -> Option<Injection> {
        self.decide_soap(method, path, None)
    }

    /// The fault for one request carrying `soap` (EWS), if any.
    pub fn decide_soap(
        &mut self,
        method: &str,
        path: &str,
        soap: Option<SoapOperation<'_>>,
    ) -> Option<Injection> {
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            if rule.next == Some(0) || !rule.matches_soap(method, path, soap) {
                continue;
            }
            let rate = rule.rate;
            let fires = rate >= 1.0 || (rate > 0.0 && self.draw() < rate);
            if !fires {
                continue;
            }
            let coin = self.draw() < 0.5;
            let rule = &mut self.rules[i];
            if let Some(left) = rule.next.as_mut() {
                *left -= 1;
            }
            return Some(Injection {
                fault: rule.fault.clone(),
                after_handling: rule.after_handling,
                coin,
                rule: i,
            });
        }
        None
    }

    /// A number in `[0, 1)` from the seeded xorshift64* generator.
    fn draw(&mut self) -> f64 {
        let mut x = *self.state.get_or_insert_with(|| splitmix64(self.seed));
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = Some(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A well-mixed non-zero start from any seed (0 included).
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

fn path_matches(pattern: &str, path: &str) -> bool {
    fn go(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (Some(&"**"), _) if pattern.len() == 1 => true,
            (Some(&"**"), _) => (0..=path.len()).any(|skip| go(&pattern[1..], &path[skip..])),
            (Some(&"*"), Some(_)) => go(&pattern[1..], &path[1..]),
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(got) && go(&pattern[1..], &path[1..]),
            (None, None) => true,
            _ => false,
        }
    }
    let split =
        |p: &'_ str| -> Vec<String> { p.trim_end_matches('/').split('/').map(str::to_owned).collect() };
    let (pattern, path) = (split(pattern), split(path));
    let pattern: Vec<&str> = pattern.iter().map(String::as_str).collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    go(&pattern, &path)
}

/// Carries out a non-`status` injection (or a `status` one, by `status_page`): runs `handle` first when
/// the injection says so (and always for `slowBody`), then holds, breaks off or trickles the answer.
pub(crate) async fn apply<F>(
    injection: &Injection,
    handle: F,
    status_page: impl FnOnce(&FaultKind, bool) -> Response,
) -> Response
where
    F: Future<Output = Response>,
{
    let handled = match (&injection.fault, injection.after_handling) {
        (FaultKind::SlowBody { .. }, _) | (_, true) => Some(handle.await),
        _ => None,
    };
    match &injection.fault {
        FaultKind::Status { .. } | FaultKind::ServerBusy { .. } | FaultKind::SoapFault { .. } => {
            status_page(&injection.fault, injection.coin)
        }
        FaultKind::Timeout { hold_ms } => {
            drop(handled);
            tokio::time::sleep(Duration::from_millis((*hold_ms).min(MAX_HOLD_MS))).await;
            dropped()
        }
        FaultKind::Reset => reset(handled).await,
        FaultKind::SlowBody { chunk_bytes, delay_ms } => match handled {
            Some(resp) => slow(resp, (*chunk_bytes).max(1), Duration::from_millis(*delay_ms)).await,
            None => dropped(),
        },
    }
}

/// A connection-dropping answer: the body fails at once, so the server aborts the connection.
fn dropped() -> Response {
    let fail = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "injected: dropped"))
    });
    let mut resp = Response::new(Body::from_stream(fail));
    resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from_static("64"));
    resp
}

/// The headers and the first half of the body, then an aborted connection. A bodiless answer (or none,
/// before handling) becomes a 200 whose JSON breaks off.
async fn reset(handled: Option<Response>) -> Response {
    let (mut parts, bytes) = match handled {
        Some(resp) => {
            let (parts, body) = resp.into_parts();
            (parts, axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default())
        }
        None => (Response::new(Body::empty()).into_parts().0, Bytes::new()),
    };
    let body = if bytes.len() < 2 || matches!(parts.status.as_u16(), 204 | 304) {
        parts.status = StatusCode::OK;
        parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Bytes::from_static(
            br#"{"results":[{"id":"3fa8c2d1-0b6e-4c6f-9a0e-7d2b5e9f1c40","status":"planned"}]}"#,
        )
    } else {
        bytes
    };
    let partial = body.slice(..body.len() / 2);
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let stream = futures::stream::unfold(0u8, move |step| {
        let partial = partial.clone();
        async move {
            match step {
                0 => Some((Ok(partial), 1)),
                1 => {
                    // Let the server flush what it has before the connection is aborted.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((
                        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected: reset")),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The answer with its body sent `chunk` bytes at a time, each after `delay`.
async fn slow(resp: Response, chunk: usize, delay: Duration) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let stream = futures::stream::unfold(0usize, move |at| {
        let bytes = bytes.clone();
        async move {
            if at >= bytes.len() {
                return None;
            }
            tokio::time::sleep(delay).await;
            let end = (at + chunk).min(bytes.len());
            Some((Ok::<_, Infallible>(bytes.slice(at..end)), end))
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// An error answer with a body and, if asked, `Retry-After`.
pub(crate) fn error_page(
    status: u16,
    content_type: Option<&'static str>,
    body: String,
    retry_after_secs: Option<u64>,
) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body).into_response();
    match content_type {
        Some(ct) => {
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        None => {
            resp.headers_mut().remove(CONTENT_TYPE);
        }
    }
    if let Some(secs) = retry_after_secs {
        resp.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, path: &str, expected: bool) {
        assert_eq!(path_matches(pattern, path), expected, "{pattern} vs {path}");
    }

    #[test]
    fn paths_match_exactly_or_by_wildcard() {
        check("/tas/api/reservations", "/tas/api/reservations", true);
        check("/tas/api/reservations", "/tas/api/reservations/", true);
        check("/tas/api/reservations", "/tas/api/reservations/1/cancel", false);
        check("/tas/api/reservations/*/cancel", "/tas/api/reservations/1/cancel", true);
        check("/tas/api/reservations/*/cancel", "/tas/api/reservations/1/reject", false);
        check("/tas/api/**", "/tas/api/reservations/1/cancel", true);
        check("/tas/api/**", "/tas/api", true);
        check("/v1.0/users/*/events", "/v1.0/users/Room1@Contoso.com/events", true);
        check("/v1.0/USERS/*/events/**", "/v1.0/users/a@b/events/X/cancel", true);
        check("/v1.0/**/cancel", "/v1.0/users/a@b/events/X/cancel", true);
        check("/v1.0/**/cancel", "/v1.0/users/a@b/events/X", false);
    }

    fn rule(method: Option<&str>, fault: FaultKind) -> FaultRule {
        let rule = FaultRule::new(fault);
        match method {
            Some(m) => rule.method(m),
            None => rule,
        }
    }

    #[test]
    fn methods_match_by_name_or_by_read_and_write() {
        for (wanted, method, expected) in [
            (None, "PATCH", true),
            (Some("post"), "POST", true),
            (Some("POST"), "GET", false),
            (Some("read"), "GET", true),
            (Some("read"), "POST", false),
            (Some("write"), "DELETE", true),
            (Some("write"), "HEAD", false),
        ] {
            assert_eq!(rule(wanted, FaultKind::Reset).matches(method, "/x"), expected, "{wanted:?} {method}");
        }
    }

    fn sequence(plan: &mut FaultPlan, n: usize) -> Vec<Option<(usize, bool)>> {
        (0..n).map(|_| plan.decide("POST", "/tas/api/reservations").map(|i| (i.rule, i.coin))).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let rules = vec![
            FaultRule::new(FaultKind::status(500)).rate(0.2),
            FaultRule::new(FaultKind::Reset).rate(0.1),
        ];
        let first = sequence(&mut FaultPlan::new(42, rules.clone()), 500);
        assert_eq!(first, sequence(&mut FaultPlan::new(42, rules.clone()), 500));
        assert_ne!(first, sequence(&mut FaultPlan::new(43, rules), 500));
        let by_rule = |r: usize| first.iter().filter(|f| f.is_some_and(|(rule, _)| rule == r)).count();
        assert!((70..130).contains(&by_rule(0)), "about 20 % of 500: {}", by_rule(0));
        assert!((25..65).contains(&by_rule(1)), "about 10 % of the other 80 %: {}", by_rule(1));
    }

    #[test]
    fn a_burst_hits_the_next_matching_requests_only() {
        let mut plan = FaultPlan::new(
            0,
            vec![FaultRule::new(FaultKind::status(500)).method("POST").path("/tas/api/reservations").next(3)],
        );
        assert!(plan.is_active());
        assert!(plan.decide("GET", "/tas/api/reservations").is_none(), "another method");
        assert!(plan.decide("POST", "/tas/api/reservations/1/cancel").is_none(), "another path");
        let hits: Vec<bool> =
            (0..5).map(|_| plan.decide("POST", "/tas/api/reservations").is_some()).collect();
        assert_eq!(hits, [true, true, true, false, false]);
        assert!(!plan.is_active());
        assert_eq!(plan.rules[0].next, Some(0));
    }

    #[test]
    fn plans_read_from_json_and_are_checked() {
        let plan: FaultPlan = serde_json::from_str(
            r#"{"seed": 7, "rules": [
                {"method": "POST", "path": "/tas/api/reservations", "next": 3, "fault": {"kind": "status", "status": 500}},
                {"method": "write", "rate": 0.05, "fault": {"kind": "status", "status": 502, "body": "html", "retryAfterSecs": 3}},
                {"afterHandling": true, "fault": {"kind": "reset"}},
                {"fault": {"kind": "timeout"}},
                {"fault": {"kind": "slowBody", "delayMs": 50}}]}"#,
        )
        .unwrap();
        assert_eq!(plan.rules[0].fault, FaultKind::status(500));
        assert_eq!(
            plan.rules[1].fault,
            FaultKind::Status { status: 502, body: BodyStyle::Html, retry_after_secs: Some(3) }
        );
        assert!(plan.rules[2].after_handling);
        assert_eq!(plan.rules[3].fault, FaultKind::Timeout { hold_ms: 60_000 });
        assert_eq!(plan.rules[4].fault, FaultKind::SlowBody { chunk_bytes: 16, delay_ms: 50 });
        plan.validate().unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(serde_json::from_value::<FaultPlan>(json).unwrap(), plan, "round trip");

        let refused = |text: &str, says: &str| {
            let err = match serde_json::from_str::<FaultPlan>(text) {
                Ok(plan) => plan.validate().unwrap_err(),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(says), "{text}: {err} should say {says:?}");
        };
        refused(r#"{"rules": [{"rate": 2, "fault": {"kind": "reset"}}]}"#, "between 0 and 1");
        refused(r#"{"rules": [{"fault": {"kind": "status", "status": 200}}]}"#, "error status");
        refused(r#"{"rules": [{"path": "tas", "fault": {"kind": "reset"}}]}"#, "start with '/'");
        refused(r#"{"rules": [{"fault": {"kind": "timeout", "holdMs": 9999999}}]}"#, "at most");
        refused(
            r#"{"rules": [{"fault": {"kind": "slowBody", "chunkBytes": 0, "delayMs": 1}}]}"#,
            "at least 1",
        );
        refused(r#"{"rules": [{"fault": {"kind": "explode"}}]}"#, "unknown variant");
        refused(r#"{"rules": [{"methd": "GET", "fault": {"kind": "reset"}}]}"#, "unknown field");
    }
}
