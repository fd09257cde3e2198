//! The Graph client for one tenant's app registration.
//!
//! ## Invariants
//! - At most [`ClientOptions::per_mailbox_concurrency`] (Graph's limit: 4) requests to one mailbox are in
//!   flight at once, across all tasks sharing the client (one [`tokio::sync::Semaphore`] per mailbox).
//! - A per-mailbox budget ([`ClientOptions::mailbox_budget`] per [`ClientOptions::budget_window`]) is kept
//!   on the client side: past it, calls fail at once with [`GraphError::Throttled`] instead of adding to
//!   Graph's throttling.
//! - Answers are classified in one place (the crate's `classify`). `429` and `503` are retried after the
//!   `Retry-After` Graph sends (exponential back-off without one); the mailbox's slot is released while
//!   waiting. Other transient failures (network errors, timeouts, answers cut off, 408/425/5xx, HTML pages
//!   where JSON was expected) are retried only for idempotent calls (creates are idempotent through
//!   `transactionId`), honouring a `Retry-After` if one came.
//! - Every request carries `client-request-id` = the caller's [`CorrelationId`].
//! - Writes of an existing event may be conditional (`If-Match` with the `@odata.etag` the caller last saw):
//!   Graph answers `412` when the event changed since, classified as [`GraphError::Conflict`] (not
//!   retried: the caller reads the event and decides again).
//! - Events are created with `transactionId` = ORB's match id and a single-value extended property holding
//!   the same match id ([`ClientOptions::match_property_id`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use orb_core::{Clock, CorrelationId, EmailAddress};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;

use crate::GraphError;
use crate::auth::{AppRegistration, TokenProvider};
use crate::classify;
use crate::model::{
    CancelRequest, Collection, Event, Message, Room, SendMailRequest, SingleValueExtendedProperty,
};

/// The `@odata.etag` of an item whose `changeKey` is `change_key` (`W/"<changeKey>"`): what an `If-Match`
/// names to write only that version of the item.
pub fn etag_for_change_key(change_key: &str) -> String {
    format!("W/\"{change_key}\"")
}

/// ORB's extended property holding a booking's match id (a fixed GUID namespace for ORB).
pub const ORB_MATCH_PROPERTY_ID: &str = "String {6c1f3a52-8f0e-4d4b-9b7e-0a5d2c9e4f11} Name OrbMatchId";

/// The event properties ORB reads: what an observation of a booking needs, never `body`, `bodyPreview`,
/// `uniqueBody` or attachments. Every event read names them in `$select` (Graph returns every property,
/// the body included, to a read without one); `subject` is left out under the subject policy `drop`
/// ([`ClientOptions::read_subject`]).
pub const EVENT_FIELDS: &[&str] = &[
    "subject",
    "start",
    "end",
    "organizer",
    "attendees",
    "location",
    "locations",
    "isCancelled",
    "isOrganizer",
    "type",
    "seriesMasterId",
    "originalStart",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "iCalUId",
    "changeKey",
    "lastModifiedDateTime",
    "responseStatus",
    "transactionId",
    "recurrence",
    "importance",
    "sensitivity",
    "showAs",
    "isAllDay",
    "isOnlineMeeting",
    "isDraft",
    "hasAttachments",
];

/// Properties `calendarView` cannot `$select` (reference §6.5): a listing leaves them out, and a reader
/// that needs them (the watermark) reads the event by id.
pub const NOT_SELECTABLE_ON_CALENDAR_VIEW: &[&str] = &["createdDateTime", "lastModifiedDateTime"];

/// The option that caps answers, for messages.
pub(crate) const MAX_RESPONSE_OPTION: &str = "ClientOptions::max_response_bytes";

/// Tunables; the defaults follow Graph's documented Outlook limits.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Requests in flight per mailbox (Graph: 4).
    pub per_mailbox_concurrency: usize,
    /// Requests per mailbox per window (Graph: 10,000 per 10 minutes).
    pub mailbox_budget: u64,
    /// The budget's window.
    pub budget_window: Duration,
    /// Attempts per call (first try included) for throttled or transient failures.
    pub max_attempts: u32,
    /// A `Retry-After` longer than this is not waited out: the call fails with `Throttled`.
    pub max_retry_after: Duration,
    /// First back-off when Graph gives no `Retry-After` (doubles per attempt).
    pub backoff_base: Duration,
    /// `Prefer: outlook.timezone` (Windows or IANA name); `None` = UTC.
    pub time_zone: Option<String>,
    /// `Prefer: IdType="ImmutableId"`.
    pub immutable_ids: bool,
    /// `Prefer: odata.maxpagesize` for delta and lists.
    pub page_size: u32,
    /// Id of the extended property holding ORB's match id.
    pub match_property_id: String,
    /// Timeout of one HTTP request, from sending it to the last byte of the answer (a body trickling in
    /// slower than this counts as a timeout: transient). Also bounds token requests.
    pub request_timeout: Duration,
    /// Timeout of establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// The largest answer body read (default 16 MiB); a larger one is a permanent error naming the cap,
    /// and is not read further.
    pub max_response_bytes: u64,
    /// Whether event reads ask for `subject` (`false` under the subject policy `drop`: the subject is
    /// then never read, not only never stored).
    pub read_subject: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            per_mailbox_concurrency: 4,
            mailbox_budget: 10_000,
            budget_window: Duration::from_secs(600),
            max_attempts: 8,
            max_retry_after: Duration::from_secs(120),
            backoff_base: Duration::from_millis(500),
            time_zone: None,
            immutable_ids: true,
            page_size: 50,
            match_property_id: ORB_MATCH_PROPERTY_ID.to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_bytes: 16 * 1024 * 1024,
            read_subject: true,
        }
    }
}

/// Where Graph and the identity platform are (configurable for national clouds and the emulator).
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// e.g. `https://login.microsoftonline.com`.
    pub login_base: Url,
    /// e.g. `https://graph.microsoft.com/v1.0`.
    pub graph_base: Url,
}

impl Endpoints {
    /// Microsoft's global cloud.
    pub fn global() -> Self {
        Self {
            login_base: Url::parse("https://login.microsoftonline.com").expect("constant URL"),
            graph_base: Url::parse("https://graph.microsoft.com/v1.0").expect("constant URL"),
        }
    }

    /// Both bases from one root (`{root}` for login, `{root}/v1.0` for Graph), as the emulator serves them.
    pub fn from_root(root: &str) -> Result<Self, GraphError> {
        let parse = |s: &str| {
            Url::parse(s).map_err(|e| GraphError::Config { reason: format!("{s:?} is not a URL: {e}") })
        };
        let root = root.trim_end_matches('/');
        Ok(Self { login_base: parse(root)?, graph_base: parse(&format!("{root}/v1.0"))? })
    }
}

/// Where a calendarView delta stands for one mailbox: the fixed range and, after a round, the deltaLink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaCursor {
    /// Range start.
    pub start: DateTime<Utc>,
    /// Range end.
    pub end: DateTime<Utc>,
    /// The last round's `@odata.deltaLink`; `None` = start with a full sync.
    pub delta_link: Option<String>,
}

impl DeltaCursor {
    /// A cursor that starts with a full sync of `[start, end)`.
    pub fn initial(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end, delta_link: None }
    }
}

/// One complete delta round.
#[derive(Debug, Clone)]
pub struct DeltaRound {
    /// Created or changed instances (may repeat an id; the last one wins).
    pub changed: Vec<Event>,
    /// Ids reported `@removed`.
    pub removed: Vec<String>,
    /// The cursor for the next round.
    pub cursor: DeltaCursor,
    /// The stored token was refused (410 / `syncStateNotFound`) and this round is a full sync: whatever
    /// is not in `changed` is gone.
    pub restarted: bool,
}

/// The Graph client of one tenant. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct GraphClient {
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: Arc<TokenProvider>,
    pub(crate) app: AppRegistration,
    pub(crate) graph_base: Url,
    clock: Arc<dyn Clock>,
    pub(crate) options: ClientOptions,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    budgets: Mutex<HashMap<String, (DateTime<Utc>, u64)>>,
}

pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) mailbox: Option<&'a EmailAddress>,
    pub(crate) body: Option<serde_json::Value>,
    pub(crate) corr: CorrelationId,
    pub(crate) idempotent: bool,
    pub(crate) paged: bool,
    /// `If-Match`: the version of the item the write is meant for.
    pub(crate) if_match: Option<String>,
}

/// A success answer, read in full.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn transient(message: impl Into<String>, source: Option<reqwest::Error>) -> GraphError {
    GraphError::Transient { message: message.into(), source }
}

impl GraphClient {
    /// A client for `app` at `endpoints`, with its own HTTP client and token provider.
    pub fn new(
        endpoints: Endpoints,
        app: AppRegistration,
        clock: Arc<dyn Clock>,
        options: ClientOptions,
    ) -> Result<Self, GraphError> {
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout.min(options.request_timeout))
            .build()
            .map_err(|e| GraphError::Config { reason: format!("cannot build the HTTP client: {e}") })?;
        let tokens = Arc::new(
            TokenProvider::new(http.clone(), endpoints.login_base, clock.clone())
                .with_request_timeout(options.request_timeout),
        );
        Ok(Self::with_parts(http, tokens, endpoints.graph_base, app, clock, options))
    }

    /// A client sharing an HTTP client and token provider with others (one per tenant). Every Graph request
    /// still gets [`ClientOptions::request_timeout`]; give `http` a connect timeout.
    pub fn with_parts(
        http: reqwest::Client,
        tokens: Arc<TokenProvider>,
        graph_base: Url,
        app: AppRegistration,
        clock: Arc<dyn Clock>,
        options: ClientOptions,
    ) -> Self {
        Self {
            http,
            tokens,
            app,
            graph_base,
            clock,
            options,
            slots: Mutex::new(HashMap::new()),
            budgets: Mutex::new(HashMap::new()),
        }
    }

    /// The token provider (to check credentials without calling Graph).
    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// The app registration.
    pub fn app(&self) -> &AppRegistration {
        &self.app
    }

    /// The clock the client tells time by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The time on Graph's clock: the HTTP `Date` header of an unauthenticated `GET` of the service root
    /// (any answer carries one; `None` when it is missing or unreadable). For a clock-skew check.
    pub async fn server_date(&self) -> Result<Option<DateTime<Utc>>, GraphError> {
        let response = self
            .http
            .get(self.graph_base.clone())
            .timeout(self.options.request_timeout)
            .send()
            .await
            .map_err(|e| transient("reading Graph's clock", Some(e)))?;
        let date = response.headers().get(reqwest::header::DATE).and_then(|h| h.to_str().ok());
        Ok(date.and_then(|d| DateTime::parse_from_rfc2822(d).ok()).map(|t| t.with_timezone(&Utc)))
    }

    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.graph_base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    pub(crate) fn slot(&self, mailbox: &EmailAddress) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(mailbox.as_str().to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.options.per_mailbox_concurrency.max(1))))
            .clone()
    }

    pub(crate) fn spend_budget(&self, mailbox: &EmailAddress) -> Result<(), GraphError> {
        let now = self.clock.now();
        let window =
            chrono::Duration::from_std(self.options.budget_window).unwrap_or(chrono::Duration::minutes(10));
        let mut budgets = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        let entry = budgets.entry(mailbox.as_str().to_owned()).or_insert((now, 0));
        if now - entry.0 >= window {
            *entry = (now, 0);
        }
        if entry.1 >= self.options.mailbox_budget {
            let retry_after = (entry.0 + window - now).to_std().unwrap_or(Duration::from_secs(1));
            return Err(GraphError::Throttled { retry_after });
        }
        entry.1 += 1;
        Ok(())
    }

    pub(crate) fn prefer(&self, paged: bool) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(tz) = &self.options.time_zone {
            parts.push(format!("outlook.timezone=\"{tz}\""));
        }
        if self.options.immutable_ids {
            parts.push("IdType=\"ImmutableId\"".to_owned());
        }
        if paged {
            parts.push(format!("odata.maxpagesize={}", self.options.page_size));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        self.options.backoff_base.saturating_mul(1u32 << attempt.min(6))
    }

    /// The context [`classify::classify`] needs for an answer to the `attempt`-th try.
    pub(crate) fn classify_context(&self, attempt: u32) -> classify::Context<'_> {
        classify::Context { tenant: &self.app.tenant, now: self.clock.now(), backoff: self.backoff(attempt) }
    }

    /// Classifies one read answer (see [`classify`]).
    pub(crate) fn classify_reply(
        &self,
        attempt: u32,
        reply: &Reply,
        what: impl FnOnce() -> String,
    ) -> Result<(), GraphError> {
        let header =
            |name| reply.headers.get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok());
        let answer = classify::Answer {
            status: reply.status.as_u16(),
            content_type: header(reqwest::header::CONTENT_TYPE),
            retry_after: header(reqwest::header::RETRY_AFTER),
            body: &reply.body,
        };
        classify::classify(&self.classify_context(attempt), answer, what)
    }

    /// Whether a failed attempt is tried again, and after how long: only retryable failures, only while
    /// attempts are left, only for idempotent calls unless Graph said it did not process the request (429,
    /// 503), and never past a `Retry-After` longer than [`ClientOptions::max_retry_after`].
    pub(crate) fn retry_wait(
        &self,
        error: &GraphError,
        status: Option<u16>,
        idempotent: bool,
        attempt: u32,
    ) -> Option<Duration> {
        let last = attempt >= self.options.max_attempts;
        if last || !error.is_retryable() || !(idempotent || status.is_some_and(classify::not_processed)) {
            return None;
        }
        match error.retry_after() {
            Some(wait) if wait > self.options.max_retry_after => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(attempt)),
        }
    }

    /// Sends a call with throttling, retries and token refresh; returns a success answer, read in full
    /// (so that an answer breaking off mid-body is retried like any other transient failure).
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Reply, GraphError> {
        let what = || format!("{} {}", call.method, call.url.path());
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = match call.mailbox {
                Some(mb) => {
                    self.spend_budget(mb)?;
                    let slot = self.slot(mb);
                    Some(slot.acquire_owned().await.map_err(|_| transient("mailbox slot closed", None))?)
                }
                None => None,
            };
            let token = self.tokens.token(&self.app).await?;
            let mut req = self
                .http
                .request(call.method.clone(), call.url.clone())
                .timeout(self.options.request_timeout)
                .bearer_auth(token.secret())
                .header("client-request-id", call.corr.to_string());
            if let Some(prefer) = self.prefer(call.paged) {
                req = req.header("Prefer", prefer);
            }
            if let Some(etag) = &call.if_match {
                req = req.header(reqwest::header::IF_MATCH, etag);
            }
            if let Some(body) = &call.body {
                req = req.json(body);
            }
            let read = async {
                let resp = req.send().await.map_err(|e| classify::transport(&what(), e))?;
                let (status, headers) = (resp.status(), resp.headers().clone());
                metrics::counter!("orb_api_calls_total", "side" => "exchange", "status" => status.as_str().to_owned())
                    .increment(1);
                if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    metrics::counter!("orb_throttled_total", "side" => "exchange").increment(1);
                }
                let cap = self.options.max_response_bytes;
                let body = classify::read_capped(&what(), resp, cap, MAX_RESPONSE_OPTION).await?;
                Ok::<_, GraphError>(Reply { status, headers, body })
            };
            let result = read.await;
            drop(permit);
            let (error, status) = match result {
                Ok(reply) => match self.classify_reply(attempt, &reply, what) {
                    Ok(()) => return Ok(reply),
                    Err(e) => (e, Some(reply.status.as_u16())),
                },
                Err(e) => (e, None),
            };
            if status == Some(401) && !refreshed {
                refreshed = true;
                self.tokens.invalidate(&self.app).await;
                continue;
            }
            match self.retry_wait(&error, status, call.idempotent, attempt) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(error),
            }
        }
    }

    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        what: &'static str,
    ) -> Result<T, GraphError> {
        let reply = self.send(call).await?;
        serde_json::from_slice(&reply.body).map_err(|source| GraphError::Decode { what, source })
    }

    pub(crate) fn call<'a>(
        &self,
        method: Method,
        url: Url,
        mailbox: Option<&'a EmailAddress>,
        corr: CorrelationId,
    ) -> Call<'a> {
        let idempotent = method != Method::POST;
        Call { method, url, mailbox, body: None, corr, idempotent, paged: false, if_match: None }
    }

    pub(crate) fn with_body<'a, B: Serialize>(mut call: Call<'a>, body: &B) -> Result<Call<'a>, GraphError> {
        call.body = Some(
            serde_json::to_value(body)
                .map_err(|source| GraphError::Decode { what: "a request body", source })?,
        );
        Ok(call)
    }

    pub(crate) async fn pages<T: DeserializeOwned>(
        &self,
        mut url: Url,
        mailbox: Option<&EmailAddress>,
        corr: CorrelationId,
        what: &'static str,
    ) -> Result<Vec<T>, GraphError> {
        let mut out = Vec::new();
        loop {
            let mut call = self.call(Method::GET, url, mailbox, corr);
            call.paged = true;
            let page: Collection<T> = self.json(call, what).await?;
            out.extend(page.value);
            match page.next_link {
                Some(next) => url = parse_link(&next)?,
                None => return Ok(out),
            }
        }
    }

    /// The `$select` of an event read (`listing`: a calendarView, which cannot select the timestamps).
    pub fn event_select(&self, listing: bool) -> String {
        EVENT_FIELDS
            .iter()
            .filter(|f| self.options.read_subject || **f != "subject")
            .filter(|f| !listing || !NOT_SELECTABLE_ON_CALENDAR_VIEW.contains(f))
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    }

    fn select(&self, url: &mut Url, listing: bool) {
        url.query_pairs_mut().append_pair("$select", &self.event_select(listing));
    }

    pub(crate) fn expand_match(&self, url: &mut Url) {
        let id = &self.options.match_property_id;
        url.query_pairs_mut()
            .append_pair("$expand", &format!("singleValueExtendedProperties($filter=id eq '{id}')"));
    }

    /// Creates an event in `mailbox` (a meeting when it invites rooms), tagged with ORB's `match_id` as
    /// `transactionId` and extended property. Retrying with the same match id returns the first event.
    pub async fn create_event(
        &self,
        mailbox: &EmailAddress,
        event: &Event,
        match_id: &str,
        corr: CorrelationId,
    ) -> Result<Event, GraphError> {
        let mut body = event.clone();
        body.transaction_id = Some(match_id.to_owned());
        let mut props = body.single_value_extended_properties.take().unwrap_or_default();
        props.retain(|p| !p.id.eq_ignore_ascii_case(&self.options.match_property_id));
        props.push(SingleValueExtendedProperty {
            id: self.options.match_property_id.clone(),
            value: Some(match_id.to_owned()),
        });
        body.single_value_extended_properties = Some(props);
        let mut call =
            self.call(Method::POST, self.url(&["users", mailbox.as_str(), "events"]), Some(mailbox), corr);
        call.idempotent = true; // transactionId makes a retried create return the first event
        self.json(Self::with_body(call, &body)?, "an event").await
    }

    /// Reads one event (or occurrence), its [`EVENT_FIELDS`] with ORB's match property expanded.
    pub async fn get_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        corr: CorrelationId,
    ) -> Result<Event, GraphError> {
        let mut url = self.url(&["users", mailbox.as_str(), "events", id]);
        self.select(&mut url, false);
        self.expand_match(&mut url);
        self.json(self.call(Method::GET, url, Some(mailbox), corr), "an event").await
    }

    /// Finds the live event ORB created for `match_id` (single items and series masters).
    pub async fn find_by_match_id(
        &self,
        mailbox: &EmailAddress,
        match_id: &str,
        corr: CorrelationId,
    ) -> Result<Option<Event>, GraphError> {
        let mut url = self.url(&["users", mailbox.as_str(), "events"]);
        let id = &self.options.match_property_id;
        let value = match_id.replace('\'', "''");
        url.query_pairs_mut().append_pair(
            "$filter",
            &format!("singleValueExtendedProperties/Any(ep: ep/id eq '{id}' and ep/value eq '{value}')"),
        );
        self.select(&mut url, false);
        self.expand_match(&mut url);
        let found: Vec<Event> = self.pages(url, Some(mailbox), corr, "a list of events").await?;
        Ok(found.into_iter().next())
    }

    /// Finds the single event or series master with `ical_uid` in `mailbox` (`$filter` on `iCalUId`: only
    /// that meeting is read, never the mailbox's other events). Occurrences are not listed by `/events`:
    /// find their master, then its [`Self::instances`].
    pub async fn find_by_ical_uid(
        &self,
        mailbox: &EmailAddress,
        ical_uid: &str,
        corr: CorrelationId,
    ) -> Result<Option<Event>, GraphError> {
        let mut url = self.url(&["users", mailbox.as_str(), "events"]);
        let value = ical_uid.replace('\'', "''");
        url.query_pairs_mut().append_pair("$filter", &format!("iCalUId eq '{value}'"));
        self.select(&mut url, false);
        self.expand_match(&mut url);
        let found: Vec<Event> = self.pages(url, Some(mailbox), corr, "a list of events").await?;
        Ok(found.into_iter().find(|e| e.ical_uid.as_deref() == Some(ical_uid)))
    }

    /// Changes an event (only the fields set in `changes`). With `if_match` (an `@odata.etag`, e.g.
    /// [`etag_for_change_key`]) the change is made only if the event is still that version; otherwise Graph
    /// answers `412` ([`GraphError::Conflict`]) and nothing changes.
    pub async fn update_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        changes: &Event,
        if_match: Option<&str>,
        corr: CorrelationId,
    ) -> Result<Event, GraphError> {
        let mut call = self.call(
            Method::PATCH,
            self.url(&["users", mailbox.as_str(), "events", id]),
            Some(mailbox),
            corr,
        );
        call.if_match = if_match.map(str::to_owned);
        self.json(Self::with_body(call, changes)?, "an event").await
    }

    /// Cancels a meeting as its organizer (attendees are told, with `comment`); `if_match` as in
    /// [`Self::update_event`].
    pub async fn cancel_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        comment: Option<&str>,
        if_match: Option<&str>,
        corr: CorrelationId,
    ) -> Result<(), GraphError> {
        let url = self.url(&["users", mailbox.as_str(), "events", id, "cancel"]);
        let mut call = self.call(Method::POST, url, Some(mailbox), corr);
        call.if_match = if_match.map(str::to_owned);
        let body = CancelRequest { comment: comment.map(str::to_owned) };
        self.send(Self::with_body(call, &body)?).await.map(drop)
    }

    /// Deletes an event (from an organizer's calendar this also cancels the meeting); `if_match` as in
    /// [`Self::update_event`].
    pub async fn delete_event(
        &self,
        mailbox: &EmailAddress,
        id: &str,
        if_match: Option<&str>,
        corr: CorrelationId,
    ) -> Result<(), GraphError> {
        let url = self.url(&["users", mailbox.as_str(), "events", id]);
        let mut call = self.call(Method::DELETE, url, Some(mailbox), corr);
        call.if_match = if_match.map(str::to_owned);
        self.send(call).await.map(drop)
    }

    /// Occurrences and exceptions of a series in `[from, to)` (not cancelled occurrences).
    pub async fn instances(
        &self,
        mailbox: &EmailAddress,
        series_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, GraphError> {
        let mut url = self.url(&["users", mailbox.as_str(), "events", series_id, "instances"]);
        window(&mut url, from, to);
        self.select(&mut url, false);
        self.pages(url, Some(mailbox), corr, "a list of instances").await
    }

    /// The expanded calendar of `mailbox` in `[from, to)`: [`EVENT_FIELDS`] but the ones calendarView cannot
    /// select ([`NOT_SELECTABLE_ON_CALENDAR_VIEW`]; Graph may still send them). Only for room mailboxes:
    /// ORB never lists a person's calendar.
    pub async fn calendar_view(
        &self,
        mailbox: &EmailAddress,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        corr: CorrelationId,
    ) -> Result<Vec<Event>, GraphError> {
        let mut url = self.url(&["users", mailbox.as_str(), "calendarView"]);
        window(&mut url, from, to);
        self.select(&mut url, true);
        self.pages(url, Some(mailbox), corr, "a calendar view").await
    }

    /// One calendarView delta round: follows `@odata.nextLink` to the `@odata.deltaLink`. A refused token
    /// (`410 Gone` or `syncStateNotFound`) starts over with a full sync of the cursor's range, once.
    pub async fn delta(
        &self,
        mailbox: &EmailAddress,
        cursor: &DeltaCursor,
        corr: CorrelationId,
    ) -> Result<DeltaRound, GraphError> {
        let initial = || {
            let mut url = self.url(&["users", mailbox.as_str(), "calendarView", "delta"]);
            window(&mut url, cursor.start, cursor.end);
            url
        };
        let mut url = match &cursor.delta_link {
            Some(link) => parse_link(link)?,
            None => initial(),
        };
        let mut restarted = false;
        let (mut changed, mut removed) = (Vec::new(), Vec::new());
        loop {
            let mut call = self.call(Method::GET, url.clone(), Some(mailbox), corr);
            call.paged = true;
            let page: Collection<Event> = match self.json(call, "a delta page").await {
                Ok(page) => page,
                Err(e) if is_sync_reset(&e) => {
                    if restarted {
                        return Err(GraphError::SyncReset { mailbox: mailbox.to_string() });
                    }
                    restarted = true;
                    changed.clear();
                    removed.clear();
                    url = initial();
                    continue;
                }
                Err(e) => return Err(e),
            };
            for item in page.value {
                match (&item.removed, &item.id) {
                    (Some(_), Some(id)) => removed.push(id.clone()),
                    _ => changed.push(item),
                }
            }
            if let Some(next) = page.next_link {
                url = parse_link(&next)?;
                continue;
            }
            let Some(delta_link) = page.delta_link else {
                return Err(GraphError::Permanent {
                    status: 200,
                    code: "noDeltaLink".to_owned(),
                    message: "a delta page had neither nextLink nor deltaLink".to_owned(),
                });
            };
            let cursor = DeltaCursor { delta_link: Some(delta_link), ..cursor.clone() };
            return Ok(DeltaRound { changed, removed, cursor, restarted });
        }
    }

    /// All room mailboxes of the tenant (`GET /places/microsoft.graph.room`, every page).
    pub async fn list_rooms(&self, corr: CorrelationId) -> Result<Vec<Room>, GraphError> {
        self.pages(self.url(&["places", "microsoft.graph.room"]), None, corr, "a list of rooms").await
    }

    /// Sends a mail from `from` (`202 Accepted`: queued, not yet delivered).
    pub async fn send_mail(
        &self,
        from: &EmailAddress,
        message: &Message,
        save_to_sent_items: bool,
        corr: CorrelationId,
    ) -> Result<(), GraphError> {
        let url = self.url(&["users", from.as_str(), "sendMail"]);
        let body = SendMailRequest { message: message.clone(), save_to_sent_items: Some(save_to_sent_items) };
        self.send(Self::with_body(self.call(Method::POST, url, Some(from), corr), &body)?).await.map(drop)
    }
}

fn is_sync_reset(e: &GraphError) -> bool {
    match e {
        GraphError::Permanent { status: 410, .. } => true,
        GraphError::Rejected { code, .. } | GraphError::Permanent { code, .. } => {
            code.eq_ignore_ascii_case("syncStateNotFound") || code.eq_ignore_ascii_case("resyncRequired")
        }
        _ => false,
    }
}

fn window(url: &mut Url, from: DateTime<Utc>, to: DateTime<Utc>) {
    url.query_pairs_mut()
        .append_pair("startDateTime", &from.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .append_pair("endDateTime", &to.format("%Y-%m-%dT%H:%M:%SZ").to_string());
}

fn parse_link(link: &str) -> Result<Url, GraphError> {
    Url::parse(link).map_err(|e| GraphError::Permanent {
        status: 200,
        code: "badLink".to_owned(),
        message: format!("Graph sent an unusable paging link {link:?}: {e}"),
    })
}
