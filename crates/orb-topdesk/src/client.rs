//! The TOPdesk REST client: Basic auth with an application password, typed calls, error mapping (one
//! function: `classify`), retries with back-off on transient failures only (connection errors,
//! timeouts, broken-off answers, 408/425/429/5xx but 501/505, HTML error pages), and a cap on concurrent
//! requests.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, NaiveDate, Utc};
use orb_core::{Clock, EmailAddress, TopdeskLocationId};
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;
use uuid::Uuid;

use crate::address::{AddressPolicy, GuardedResolver};
use crate::classify;
use crate::error::TopdeskError;
use crate::fiql::Fiql;
use crate::wire::*;

/// `Accept` for persons 2.x lists.
pub const PERSONS_V2_ACCEPT: &str = "application/x.topdesk-collection-person-v2+json";
/// The most reservations TOPdesk returns in one list call (`$top` maximum).
pub const MAX_TOP: u32 = 10_000;
/// Default of [`TopdeskConfig::max_response_bytes`]: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// How failed calls are retried (transient failures only, see [`TopdeskError::is_retryable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: usize,
    /// First back-off delay.
    pub min_delay: Duration,
    /// Longest back-off delay.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a longer one is cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// Everything the client needs. `Debug` never shows the application password.
#[derive(Debug, Clone)]
pub struct TopdeskConfig {
    /// The TOPdesk instance, e.g. `https://customer.topdesk.net` (the client adds `/tas/api/` unless the
    /// path already ends in `/tas/api`).
    pub base_url: Url,
    /// Login name of the API operator.
    pub login: String,
    /// The operator's application password (never the interactive one).
    pub application_password: SecretString,
    /// At most this many requests in flight at once (at least 1).
    pub max_concurrency: usize,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP attempt, from sending the request to the last byte of the answer (a body
    /// trickling in slower than this counts as a timeout: transient).
    pub request_timeout: Duration,
    /// Timeout of establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// The largest answer body read (default [`DEFAULT_MAX_RESPONSE_BYTES`]); a larger one is a permanent
    /// error naming the cap, and is not read further.
    pub max_response_bytes: u64,
    /// Where the client may connect ([`AddressPolicy`]): `Some` resolves host names through the policy
    /// at every connection (ORB's tenants always get one); `None` connects anywhere (tests of the client).
    pub address_policy: Option<AddressPolicy>,
    /// Extra trusted root certificates (DER), e.g. an on-premises TOPdesk's own CA
    /// ([`crate::tls::parse_ca_bundle`]); added to the built-in roots.
    pub extra_roots: Vec<Vec<u8>>,
    /// Used only to turn an HTTP-date `Retry-After` into a delay.
    pub clock: Arc<dyn Clock>,
}

impl TopdeskConfig {
    /// A configuration with default limits (4 concurrent requests, default retries, 30 s request timeout,
    /// 10 s connect timeout, 16 MiB answers), no address policy and no extra roots.
    pub fn new(
        base_url: Url,
        login: impl Into<String>,
        password: SecretString,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            base_url,
            login: login.into(),
            application_password: password,
            max_concurrency: 4,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            address_policy: None,
            extra_roots: Vec::new(),
            clock,
        }
    }
}

/// ORB's key on a reservation: the external link `{id, type}` set at create.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalLink {
    id: String,
    kind: i64,
}

impl ExternalLink {
    /// `id`: 1 to 450 characters; `kind`: the tenant's non-zero integer link type.
    pub fn new(id: impl Into<String>, kind: i64) -> Result<Self, TopdeskError> {
        let id = id.into();
        let invalid =
            |reason: &str| TopdeskError::Invalid { what: "external link".into(), reason: reason.into() };
        if id.trim().is_empty() || id.chars().count() > 450 {
            return Err(invalid("its id must be 1 to 450 characters long"));
        }
        if kind == 0 {
            return Err(invalid("its type must be a non-zero integer"));
        }
        Ok(Self { id, kind })
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The link type.
    pub fn kind(&self) -> i64 {
        self.kind
    }

    /// As a wire object, with the synchronisation date.
    pub fn to_dto(&self, date: Option<DateTime<Utc>>) -> ExternalLinkDto {
        ExternalLinkDto { id: self.id.clone(), kind: self.kind.to_string(), date }
    }

    /// Whether a reservation carries this link.
    pub fn is_on(&self, reservation: &ReservationDto) -> bool {
        let kind = self.kind.to_string();
        reservation.external_links.iter().flatten().any(|l| l.id == self.id && l.kind == kind)
    }
}

/// A cancellation or rejection reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No body: TOPdesk uses its configured default reason (400 if it has none).
    Default,
    /// A reason by id.
    Id(Uuid),
    /// A reason by name (ambiguous names are refused by TOPdesk).
    Name(String),
}

/// One page of `GET /reservations`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationPage {
    /// The reservations, ordered by `plannedStartDate`.
    pub reservations: Vec<ReservationDto>,
    /// `false` when TOPdesk answered 206: more matched than `$top`.
    pub complete: bool,
}

/// What [`TopdeskClient::ensure_reservation`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensured {
    /// The reservation carrying the external link.
    pub reservation: ReservationDto,
    /// `true` if this call created it; `false` if an earlier attempt had.
    pub created: bool,
}

/// Where a series update applies (`PATCH …?occurrences=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrences {
    /// Only the addressed occurrence.
    Current,
    /// The addressed occurrence and all later ones.
    Future,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// A typed TOPdesk client. Cheap to clone; clones share the connection pool and the concurrency cap.
#[derive(Clone)]
pub struct TopdeskClient {
    http: reqwest::Client,
    api: Url,
    login: String,
    password: SecretString,
    permits: Arc<Semaphore>,
    retry: RetryPolicy,
    max_response_bytes: u64,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TopdeskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopdeskClient")
            .field("api", &self.api.as_str())
            .field("login", &self.login)
            .field("application_password", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Reads an answer's body, stopping (with a permanent error naming the cap) as soon as it is longer than
/// `cap` bytes — whatever `Content-Length` claims.
async fn read_capped(
    action: &str,
    mut response: reqwest::Response,
    cap: u64,
) -> Result<Vec<u8>, TopdeskError> {
    let origin = classify::shown_url(response.url());
    let too_large = || TopdeskError::Permanent {
        action: action.into(),
        detail: format!(
            "the answer from {origin} is larger than the cap of {cap} bytes \
             (TopdeskConfig::max_response_bytes); ask for fewer records per call"
        ),
        source: None,
    };
    if response.content_length().is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify::transport(action, e))? {
        if (body.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The HTTP client of every TOPdesk request: timeouts, no redirects, the address policy's resolver
/// (when given) and the extra roots.
pub(crate) fn http_client(
    policy: Option<AddressPolicy>,
    extra_roots: &[Vec<u8>],
    request_timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(request_timeout)
        .connect_timeout(connect_timeout.min(request_timeout))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(policy) = policy {
        builder = builder.dns_resolver(GuardedResolver { policy: Arc::new(policy) });
    }
    let roots =
        extra_roots.iter().map(|der| reqwest::Certificate::from_der(der)).collect::<Result<Vec<_>, _>>()?;
    if !roots.is_empty() {
        builder = builder.tls_certs_merge(roots);
    }
    builder.build()
}

pub(crate) fn api_url(base: &Url) -> Url {
    let mut api = base.clone();
    let path = api.path().trim_end_matches('/').to_owned();
    if path.ends_with("/tas/api") {
        api.set_path(&format!("{path}/"));
    } else {
        api.set_path(&format!("{path}/tas/api/"));
    }
    api
}

impl TopdeskClient {
    /// Builds a client. Fails only if the TLS back-end cannot be set up or an extra root is not a
    /// certificate. The client never follows a redirect (a 3xx answer is a permanent error naming it).
    pub fn new(config: TopdeskConfig) -> Result<Self, TopdeskError> {
        let http = http_client(
            config.address_policy,
            &config.extra_roots,
            config.request_timeout,
            config.connect_timeout,
        )
        .map_err(|e| TopdeskError::Permanent {
            action: "setting up the HTTP client".into(),
            detail: e.to_string(),
            source: Some(Box::new(e)),
        })?;
        Ok(Self {
            http,
            api: api_url(&config.base_url),
            login: config.login,
            password: config.application_password,
            permits: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
            retry: config.retry,
            max_response_bytes: config.max_response_bytes,
            clock: config.clock,
        })
    }

    /// The API root this client calls (`…/tas/api/`).
    pub fn api_url(&self) -> &Url {
        &self.api
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_jitter()
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_once(
        &self,
        action: &str,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        accept: &str,
    ) -> Result<Reply, TopdeskError> {
        let url = self.api.join(path).map_err(|e| TopdeskError::Permanent {
            action: action.into(),
            detail: format!("cannot build the URL for {path:?}: {e}"),
            source: Some(Box::new(e)),
        })?;
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(&self.login, Some(self.password.expose_secret()))
            .header(ACCEPT, accept);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let permit = self.permits.acquire().await.map_err(|e| TopdeskError::Permanent {
            action: action.into(),
            detail: "the client is shutting down".into(),
            source: Some(Box::new(e)),
        })?;
        let response = request.send().await.map_err(|e| classify::transport(action, e))?;
        let status = response.status();
        metrics::counter!("orb_api_calls_total", "side" => "topdesk", "status" => status.as_str().to_owned())
            .increment(1);
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            metrics::counter!("orb_throttled_total", "side" => "topdesk").increment(1);
        }
        let headers = response.headers().clone();
        let url = response.url().clone();
        let bytes = read_capped(action, response, self.max_response_bytes).await?;
        drop(permit);
        let cx = classify::Context {
            action,
            what,
            url: &url,
            login: &self.login,
            now: self.clock.now(),
            max_retry_after: self.retry.max_retry_after,
        };
        classify::classify(&cx, status, &headers, &bytes)?;
        Ok(Reply { status, headers, body: bytes.to_vec() })
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        action: &str,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        accept: &str,
    ) -> Result<Reply, TopdeskError> {
        let max_after = self.retry.max_retry_after;
        (|| self.send_once(action, what, method.clone(), path, query, body, accept))
            .retry(self.backoff())
            .when(TopdeskError::is_retryable)
            .adjust(move |e, planned| planned.map(|d| e.retry_after().map_or(d, |a| a.min(max_after))))
            .await
    }

    fn to_body<T: Serialize>(action: &str, body: &T) -> Result<serde_json::Value, TopdeskError> {
        serde_json::to_value(body).map_err(|e| TopdeskError::Permanent {
            action: action.into(),
            detail: format!("cannot encode the request body: {e}"),
            source: Some(Box::new(e)),
        })
    }

    fn decode<T: DeserializeOwned>(action: &str, reply: &Reply) -> Result<T, TopdeskError> {
        serde_json::from_slice(&reply.body).map_err(|e| TopdeskError::Permanent {
            action: action.into(),
            detail: format!("TOPdesk answered HTTP {} with a body ORB cannot read: {e}", reply.status),
            source: Some(Box::new(e)),
        })
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        action: &str,
        what: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, TopdeskError> {
        let reply = self.send(action, what, Method::GET, path, query, None, "application/json").await?;
        Self::decode(action, &reply)
    }

    async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        action: &str,
        what: &str,
        path: &str,
        query: &[(&str, String)],
        body: &B,
    ) -> Result<T, TopdeskError> {
        let body = Self::to_body(action, body)?;
        let reply =
            self.send(action, what, Method::POST, path, query, Some(&body), "application/json").await?;
        Self::decode(action, &reply)
    }

    // ---- credentials and general ----

    /// `GET /operators/current`: checks the credentials and returns the API operator's card.
    pub async fn current_operator(&self) -> Result<OperatorDto, TopdeskError> {
        self.get_json("checking the credentials", "current operator", "operators/current", &[]).await
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<VersionDto, TopdeskError> {
        self.get_json("reading the API version", "version", "version", &[]).await
    }

    /// `GET /version`, answering the time on TOPdesk's clock: its HTTP `Date` header (`None` when the
    /// answer had none or an unreadable one). For a clock-skew check.
    pub async fn server_date(&self) -> Result<Option<DateTime<Utc>>, TopdeskError> {
        let reply = self
            .send("reading the API version", "version", Method::GET, "version", &[], None, "application/json")
            .await?;
        Ok(http_date(&reply.headers))
    }

    // ---- reservations: read ----

    /// One `GET /reservations` call: `filter` as FIQL `query`, `$fields`, `$top` (1–10000).
    pub async fn list_reservations(
        &self,
        filter: Option<&Fiql>,
        fields: Option<&str>,
        top: Option<u32>,
    ) -> Result<ReservationPage, TopdeskError> {
        let mut query = Vec::new();
        if let Some(filter) = filter {
            query.push(("query", filter.to_string()));
        }
        if let Some(fields) = fields {
            query.push(("$fields", fields.to_owned()));
        }
        if let Some(top) = top {
            query.push(("$top", top.to_string()));
        }
        self.list_raw(&query).await
    }

    async fn list_raw(&self, query: &[(&str, String)]) -> Result<ReservationPage, TopdeskError> {
        let action = "listing reservations";
        let reply = self
            .send(action, "reservations", Method::GET, "reservations", query, None, "application/json")
            .await?;
        if reply.status == StatusCode::NO_CONTENT || reply.body.is_empty() {
            return Ok(ReservationPage { reservations: Vec::new(), complete: true });
        }
        let list: ReservationList = Self::decode(action, &reply)?;
        Ok(ReservationPage {
            reservations: list.results,
            complete: reply.status != StatusCode::PARTIAL_CONTENT,
        })
    }

    /// All reservations overlapping `[from, to)` that also match `filter`, following 206 paging: the next
    /// page asks for `plannedStartDate=ge=<latest start seen>` and drops ids already returned (several
    /// reservations can share one start); if a whole page shares one start, `$top` is raised (up to 10000).
    /// `fields` always gets `id` and `plannedStartDate` added, because paging needs them.
    pub async fn reservations_in_window(
        &self,
        filter: Option<&Fiql>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        fields: Option<&str>,
        page_size: u32,
    ) -> Result<Vec<ReservationDto>, TopdeskError> {
        let fields = fields.map(|f| {
            let mut list: Vec<&str> = f.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            for needed in ["id", "plannedStartDate"] {
                if !list.contains(&needed) {
                    list.push(needed);
                }
            }
            list.join(",")
        });
        let window =
            Fiql::gt("plannedEndDate", Fiql::date(&from)).and(Fiql::lt("plannedStartDate", Fiql::date(&to)));
        let base = match filter {
            Some(f) => f.clone().and(window),
            None => window,
        };
        let mut top = page_size.clamp(1, MAX_TOP);
        let mut lower: Option<DateTime<Utc>> = None;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        loop {
            let query = match lower {
                Some(at) => base.clone().and(Fiql::ge("plannedStartDate", Fiql::date(&at))),
                None => base.clone(),
            };
            let page = self.list_reservations(Some(&query), fields.as_deref(), Some(top)).await?;
            let latest = page.reservations.iter().filter_map(|r| r.planned_start_date).max();
            for reservation in page.reservations {
                let fresh = match reservation.id {
                    Some(id) => seen.insert(id),
                    None => true,
                };
                if fresh {
                    out.push(reservation);
                }
            }
            if page.complete {
                return Ok(out);
            }
            let Some(latest) = latest else {
                return Err(TopdeskError::Permanent {
                    action: "listing reservations".into(),
                    detail: "TOPdesk answered 206 without any plannedStartDate to continue from".into(),
                    source: None,
                });
            };
            if Some(latest) == lower {
                if top == MAX_TOP {
                    return Err(TopdeskError::Permanent {
                        action: "listing reservations".into(),
                        detail: format!(
                            "more than {MAX_TOP} reservations start at {latest}; narrow the filter (e.g. per room)"
                        ),
                        source: None,
                    });
                }
                top = top.saturating_mul(2).min(MAX_TOP);
            }
            lower = Some(latest);
        }
    }

    /// `GET /reservations/{id}`.
    pub async fn get_reservation(&self, id: ReservationId) -> Result<ReservationDto, TopdeskError> {
        self.get_json(
            "reading a reservation",
            &format!("reservation {id}"),
            &format!("reservations/{id}"),
            &[],
        )
        .await
    }

    /// `GET /reservations/{number}` (the identifier may be the human-readable number).
    pub async fn get_reservation_by_number(&self, number: &str) -> Result<ReservationDto, TopdeskError> {
        let mut path = String::from("reservations/");
        for b in number.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                path.push(char::from(b));
            } else {
                path.push_str(&format!("%{b:02X}"));
            }
        }
        self.get_json("reading a reservation", &format!("reservation number {number:?}"), &path, &[]).await
    }

    /// The reservation carrying `link`, if any: FIQL `externalLinks.type==…;externalLinks.id=='…'`; if the
    /// server refuses that field path (reference §10 U6), the legacy `externalLinkId`/`externalLinkType`
    /// filters are used instead.
    pub async fn find_by_external_link(
        &self,
        link: &ExternalLink,
    ) -> Result<Option<ReservationDto>, TopdeskError> {
        let fiql = Fiql::eq("externalLinks.type", link.kind.to_string())
            .and(Fiql::eq("externalLinks.id", link.id.clone()));
        let page = match self.list_reservations(Some(&fiql), None, Some(10)).await {
            Ok(page) => page,
            Err(TopdeskError::Rejected { .. }) => {
                self.list_raw(&[
                    ("externalLinkId", link.id.clone()),
                    ("externalLinkType", link.kind.to_string()),
                    ("$top", "10".into()),
                ])
                .await?
            }
            Err(other) => return Err(other),
        };
        Ok(page.reservations.into_iter().find(|r| link.is_on(r)))
    }

    // ---- reservations: write ----

    /// `POST /reservations`, once (no retry: a lost answer could hide a created reservation — use
    /// [`Self::ensure_reservation`] for idempotent creates).
    pub async fn create_reservation(
        &self,
        create: &CreateReservationDto,
    ) -> Result<ReservationDto, TopdeskError> {
        let action = "creating a reservation";
        let body = Self::to_body(action, create)?;
        let reply = self
            .send_once(
                action,
                "reservation",
                Method::POST,
                "reservations",
                &[],
                Some(&body),
                "application/json",
            )
            .await?;
        Self::decode(action, &reply)
    }

    /// Idempotent create: each attempt first looks for a reservation carrying `link` and returns it if found;
    /// otherwise it creates one with `link` as its external link. Attempts are retried (with back-off) on
    /// transient failures (timeouts, resets, 5xx, …), so a create whose answer was lost is found, not repeated.
    pub async fn ensure_reservation(
        &self,
        create: &CreateReservationDto,
        link: &ExternalLink,
        link_date: Option<DateTime<Utc>>,
    ) -> Result<Ensured, TopdeskError> {
        self.ensure_reservation_looking(create, link, link_date, true).await
    }

    /// [`Self::ensure_reservation`]; with `look_first` false the first attempt creates without looking
    /// for the link (the caller knows no earlier run can have made it), every retry still looks first (a
    /// create whose answer was lost may have landed).
    pub async fn ensure_reservation_looking(
        &self,
        create: &CreateReservationDto,
        link: &ExternalLink,
        link_date: Option<DateTime<Utc>>,
        look_first: bool,
    ) -> Result<Ensured, TopdeskError> {
        let mut create = create.clone();
        create.external_link = Some(link.to_dto(link_date));
        let tried = std::sync::atomic::AtomicBool::new(false);
        let attempt = || async {
            let retry = tried.swap(true, std::sync::atomic::Ordering::SeqCst);
            if (look_first || retry)
                && let Some(reservation) = self.find_by_external_link(link).await?
            {
                return Ok(Ensured { reservation, created: false });
            }
            let reservation = self.create_reservation(&create).await?;
            Ok(Ensured { reservation, created: true })
        };
        let max_after = self.retry.max_retry_after;
        attempt
            .retry(self.backoff())
            .when(TopdeskError::is_retryable)
            .adjust(move |e: &TopdeskError, planned| {
                planned.map(|d| e.retry_after().map_or(d, |a| a.min(max_after)))
            })
            .await
    }

    /// `PATCH /reservations/{id}` (descriptive fields; `occurrences` for series members).
    pub async fn update_reservation(
        &self,
        id: ReservationId,
        update: &UpdateReservationDto,
        occurrences: Option<Occurrences>,
    ) -> Result<ReservationDto, TopdeskError> {
        let action = "updating a reservation";
        let body = Self::to_body(action, update)?;
        let mut query = Vec::new();
        if let Some(o) = occurrences {
            query.push((
                "occurrences",
                if o == Occurrences::Future { "future" } else { "current" }.to_owned(),
            ));
        }
        let what = format!("reservation {id}");
        let reply = self
            .send(
                action,
                &what,
                Method::PATCH,
                &format!("reservations/{id}"),
                &query,
                Some(&body),
                "application/json",
            )
            .await?;
        Self::decode(action, &reply)
    }

    /// `POST /reservations/{id}/reschedule`.
    pub async fn reschedule_reservation(
        &self,
        id: ReservationId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ReservationDto, TopdeskError> {
        let body = RescheduleReservationDto { planned_start_date: Some(start), planned_end_date: Some(end) };
        self.post_json(
            "rescheduling a reservation",
            &format!("reservation {id}"),
            &format!("reservations/{id}/reschedule"),
            &[],
            &body,
        )
        .await
    }

    /// `POST /reservations/{id}/reservedFacilities/move`: replaces room `from` by room `to`.
    pub async fn move_room(
        &self,
        id: ReservationId,
        from: &TopdeskLocationId,
        to: &TopdeskLocationId,
    ) -> Result<ReservationDto, TopdeskError> {
        let body = MoveFacilityDto {
            from: ReservedFacilityLookup::location(from),
            to: ReservedFacilityLookup::location(to),
        };
        let path = format!("reservations/{id}/reservedFacilities/move");
        self.post_json(
            "moving a reservation to another room",
            &format!("reservation {id}"),
            &path,
            &[],
            &body,
        )
        .await
    }

    /// `POST /reservations/{id}/cancel` (204). Idempotent: if TOPdesk refuses because the reservation is
    /// already cancelled (e.g. a retried call whose first answer was lost), this succeeds. `Ok(true)`: it was
    /// cancelled already (the refusal was read back), `Ok(false)`: this call cancelled it. Nothing is read
    /// before the cancel.
    pub async fn cancel_reservation(&self, id: ReservationId, reason: &Reason) -> Result<bool, TopdeskError> {
        let action = "cancelling a reservation";
        let body = reason_body(reason);
        let what = format!("reservation {id}");
        let result = self
            .send(
                action,
                &what,
                Method::POST,
                &format!("reservations/{id}/cancel"),
                &[],
                body.as_ref(),
                "application/json",
            )
            .await;
        match result {
            Ok(_) => Ok(false),
            Err(rejected @ TopdeskError::Rejected { .. }) => {
                let current = self.get_reservation(id).await?;
                if current.status == Some(ReservationStatus::Cancelled) { Ok(true) } else { Err(rejected) }
            }
            Err(other) => Err(other),
        }
    }

    /// `POST /reservations/{id}/reject` (a request, not a planned reservation).
    pub async fn reject_reservation(
        &self,
        id: ReservationId,
        reason: &Reason,
    ) -> Result<ReservationDto, TopdeskError> {
        let action = "rejecting a reservation request";
        let body = reason_body(reason);
        let what = format!("reservation {id}");
        let reply = self
            .send(
                action,
                &what,
                Method::POST,
                &format!("reservations/{id}/reject"),
                &[],
                body.as_ref(),
                "application/json",
            )
            .await?;
        Self::decode(action, &reply)
    }

    /// `POST /reservations/{id}/participants/add` (already linked persons are ignored by TOPdesk).
    pub async fn add_participants(
        &self,
        id: ReservationId,
        persons: &[PersonId],
    ) -> Result<ReservationDto, TopdeskError> {
        let body = participants(persons);
        let path = format!("reservations/{id}/participants/add");
        self.post_json("adding participants", &format!("reservation {id}"), &path, &[], &body).await
    }

    /// `POST /reservations/{id}/participants/remove` (persons not linked are ignored by TOPdesk).
    pub async fn remove_participants(
        &self,
        id: ReservationId,
        persons: &[PersonId],
    ) -> Result<ReservationDto, TopdeskError> {
        let body = participants(persons);
        let path = format!("reservations/{id}/participants/remove");
        self.post_json("removing participants", &format!("reservation {id}"), &path, &[], &body).await
    }

    /// `POST /reservations/{id}/makeRecurrent/dates`: a series on specific dates (same times of day).
    /// Returns every series member with reduced fields (id, number, status, series, planned dates).
    pub async fn make_recurrent(
        &self,
        id: ReservationId,
        dates: &[NaiveDate],
        allow_conflicts: bool,
    ) -> Result<Vec<ReservationDto>, TopdeskError> {
        let body = RecurrencyDatesDto { dates: dates.to_vec() };
        let query = [("allowConflicts", allow_conflicts.to_string())];
        let path = format!("reservations/{id}/makeRecurrent/dates");
        let list: ReservationList = self
            .post_json("making a reservation recurrent", &format!("reservation {id}"), &path, &query, &body)
            .await?;
        Ok(list.results)
    }

    /// `POST /reservations/{id}/occurrences/dates`: adds dates to the series (existing dates are ignored).
    pub async fn add_occurrences(
        &self,
        id: ReservationId,
        dates: &[NaiveDate],
        allow_conflicts: bool,
    ) -> Result<Vec<ReservationDto>, TopdeskError> {
        let body = RecurrencyDatesDto { dates: dates.to_vec() };
        let query = [("allowConflicts", allow_conflicts.to_string())];
        let path = format!("reservations/{id}/occurrences/dates");
        let list: ReservationList = self
            .post_json("adding occurrences to a series", &format!("reservation {id}"), &path, &query, &body)
            .await?;
        Ok(list.results)
    }

    /// `PUT /reservations/{id}/occurrences/dates`: sets the dates after this occurrence (later occurrences
    /// not listed are deleted by TOPdesk).
    pub async fn set_occurrences(
        &self,
        id: ReservationId,
        dates: &[NaiveDate],
        allow_conflicts: bool,
    ) -> Result<Vec<ReservationDto>, TopdeskError> {
        let action = "setting the dates of a series";
        let body = Self::to_body(action, &RecurrencyDatesDto { dates: dates.to_vec() })?;
        let query = [("allowConflicts", allow_conflicts.to_string())];
        let path = format!("reservations/{id}/occurrences/dates");
        let reply = self
            .send(
                action,
                &format!("reservation {id}"),
                Method::PUT,
                &path,
                &query,
                Some(&body),
                "application/json",
            )
            .await?;
        let list: ReservationList = Self::decode(action, &reply)?;
        Ok(list.results)
    }

    // ---- rooms, persons, reasons ----

    /// `GET /reservableLocations` (reservable, non-archived rooms), optionally of some branches only.
    pub async fn reservable_locations(
        &self,
        branches: &[Uuid],
    ) -> Result<Vec<ReservableLocation>, TopdeskError> {
        let mut query = vec![("$top", MAX_TOP.to_string())];
        query.extend(branches.iter().map(|b| ("branchId", b.to_string())));
        let list: ReservableLocationList = self
            .get_json("listing reservable rooms", "reservable locations", "reservableLocations", &query)
            .await?;
        Ok(list.results)
    }

    /// `GET /reservableLocations/{id}`.
    pub async fn reservable_location(
        &self,
        id: &TopdeskLocationId,
    ) -> Result<ReservableLocation, TopdeskError> {
        let path = format!("reservableLocations/{id}");
        self.get_json("reading a reservable room", &format!("reservable location {id}"), &path, &[]).await
    }

    /// `GET /locations` (supporting files) with an optional FIQL filter; `fields` defaults to TOPdesk's
    /// `id,name,roomNumber,branch`.
    pub async fn locations(
        &self,
        filter: Option<&Fiql>,
        fields: Option<&str>,
        page_size: Option<u32>,
    ) -> Result<Vec<ExtendedLocationDto>, TopdeskError> {
        let mut query = Vec::new();
        if let Some(filter) = filter {
            query.push(("query", filter.to_string()));
        }
        if let Some(fields) = fields {
            query.push(("$fields", fields.to_owned()));
        }
        if let Some(size) = page_size {
            query.push(("pageSize", size.to_string()));
        }
        self.get_json("listing locations", "locations", "locations", &query).await
    }

    /// `GET /locations/id/{id}` (supporting files).
    pub async fn location(&self, id: &TopdeskLocationId) -> Result<ExtendedLocationDto, TopdeskError> {
        self.get_json("reading a location", &format!("location {id}"), &format!("locations/id/{id}"), &[])
            .await
    }

    /// Active persons whose e-mail equals `email`, compared case-insensitively.
    ///
    /// The address is normalised ([`EmailAddress`]); the query asks for both the normalised and the given
    /// spelling (`email=in=(…)`, whether TOPdesk compares case-sensitively is unverified, reference §10 U7)
    /// and the answer is filtered again client-side. E-mail is not unique in TOPdesk: 0, 1 or more persons.
    pub async fn find_persons_by_email(&self, email: &str) -> Result<Vec<PersonV2Dto>, TopdeskError> {
        let wanted = EmailAddress::parse(email)
            .map_err(|e| TopdeskError::Invalid { what: "e-mail address".into(), reason: e.to_string() })?;
        let mut spellings = vec![wanted.as_str().to_owned()];
        let given = email.trim();
        if given != wanted.as_str() {
            spellings.push(given.to_owned());
        }
        let filter = Fiql::is_in("email", spellings).and(Fiql::eq("archived", "false"));
        let query = [
            ("query", filter.to_string()),
            ("fields", "id,firstName,surName,dynamicName,email,archived,tasLoginName,branch".to_owned()),
            ("pageSize", "10".to_owned()),
        ];
        let action = "looking up a person by e-mail";
        let reply =
            self.send(action, "persons", Method::GET, "persons", &query, None, PERSONS_V2_ACCEPT).await?;
        if reply.status == StatusCode::NO_CONTENT || reply.body.is_empty() {
            return Ok(Vec::new());
        }
        let list: ListOfPersonsV2 = Self::decode(action, &reply)?;
        Ok(list
            .item
            .into_iter()
            .filter(|p| {
                p.email.as_deref().and_then(|e| EmailAddress::parse(e).ok()).as_ref() == Some(&wanted)
            })
            .collect())
    }

    /// Persons by id (`GET /persons` v2 with `id=in=(…)`), e.g. a reservation's participants, which
    /// TOPdesk names by id only. Ids TOPdesk does not know are simply absent from the answer; at most 100
    /// ids per call (more is an `Invalid` error: split the call).
    pub async fn find_persons_by_ids(&self, ids: &[PersonId]) -> Result<Vec<PersonV2Dto>, TopdeskError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > 100 {
            return Err(TopdeskError::Invalid {
                what: "person ids".into(),
                reason: format!("{} ids in one look-up; at most 100", ids.len()),
            });
        }
        let filter = Fiql::is_in("id", ids.iter().map(ToString::to_string));
        let query = [
            ("query", filter.to_string()),
            ("fields", "id,firstName,surName,dynamicName,email,archived".to_owned()),
            ("pageSize", "100".to_owned()),
        ];
        let action = "looking up persons by id";
        let reply =
            self.send(action, "persons", Method::GET, "persons", &query, None, PERSONS_V2_ACCEPT).await?;
        if reply.status == StatusCode::NO_CONTENT || reply.body.is_empty() {
            return Ok(Vec::new());
        }
        let list: ListOfPersonsV2 = Self::decode(action, &reply)?;
        Ok(list.item.into_iter().filter(|p| p.id.is_some_and(|id| ids.contains(&id))).collect())
    }

    /// `GET /reservationCancellationReasons?archived=false`.
    pub async fn cancellation_reasons(&self) -> Result<Vec<IdName>, TopdeskError> {
        let query = [("archived", "false".to_owned())];
        let list: SearchListEnvelope = self
            .get_json(
                "listing cancellation reasons",
                "cancellation reasons",
                "reservationCancellationReasons",
                &query,
            )
            .await?;
        Ok(list.results)
    }
}

fn reason_body(reason: &Reason) -> Option<serde_json::Value> {
    match reason {
        Reason::Default => None,
        Reason::Id(id) => Some(serde_json::json!({ "id": id.to_string() })),
        Reason::Name(name) => Some(serde_json::json!({ "name": name })),
    }
}

fn participants(persons: &[PersonId]) -> EditParticipantsDto {
    EditParticipantsDto { persons: Some(persons.iter().map(Lookup::id).collect()), visitors: None }
}

/// The time in an HTTP `Date` header (RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(headers: &reqwest::header::HeaderMap) -> Option<DateTime<Utc>> {
    let text = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(text).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_header_is_read_as_utc() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(http_date(&headers), None);
        for (text, expected) in [
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some("1994-11-06T08:49:37+00:00")),
            ("Tue, 01 Jan 2030 00:00:00 +0100", Some("2029-12-31T23:00:00+00:00")),
            ("yesterday", None),
        ] {
            headers.insert(reqwest::header::DATE, text.parse().unwrap());
            assert_eq!(http_date(&headers).map(|d| d.to_rfc3339()).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn api_url_gets_tas_api_once() {
        for (base, expected) in [
            ("https://x.topdesk.net", "https://x.topdesk.net/tas/api/"),
            ("https://x.topdesk.net/", "https://x.topdesk.net/tas/api/"),
            ("https://x.topdesk.net/tas/api", "https://x.topdesk.net/tas/api/"),
            ("https://x.topdesk.net/tas/api/", "https://x.topdesk.net/tas/api/"),
            ("http://127.0.0.1:9/prefix", "http://127.0.0.1:9/prefix/tas/api/"),
        ] {
            assert_eq!(api_url(&Url::parse(base).unwrap()).as_str(), expected, "{base}");
        }
    }

    #[test]
    fn external_links_are_checked() {
        assert!(ExternalLink::new("", 7).is_err());
        assert!(ExternalLink::new("x".repeat(451), 7).is_err());
        assert!(ExternalLink::new("m-1", 0).is_err());
        let link = ExternalLink::new("x".repeat(450), -3).unwrap();
        assert_eq!(link.to_dto(None).kind, "-3");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let config = TopdeskConfig::new(
            Url::parse("https://x.topdesk.net").unwrap(),
            "api",
            SecretString::from("hunter2-app-password"),
            Arc::new(orb_core::SystemClock),
        );
        let client = TopdeskClient::new(config.clone()).unwrap();
        for text in [format!("{config:?}"), format!("{client:?}")] {
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}
