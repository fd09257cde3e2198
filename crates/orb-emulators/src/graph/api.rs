//! The Graph v1.0 surface (`/v1.0/...`) and the token endpoint (`/{tenant}/oauth2/v2.0/token`).
//!
//! Every `/v1.0` request needs a bearer token the emulator issued (not expired), may only reach mailboxes
//! of the token's tenant, is logged with its `client-request-id`, and passes the per-mailbox throttle:
//! past [`Knobs::max_concurrent_per_mailbox`](super::Knobs) requests in flight, past the mailbox's budget
//! in its window, or during a configured storm, it is answered `429` with `Retry-After`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use orb_graph::model::{
    CancelRequest, Collection, ErrorResponse, Event, Room, SendMailRequest, TokenResponse,
};
use serde_json::Value;

use super::GraphEmulator;
use super::auth::{self, TokenRequest};
use super::calendar::{self, CalError, DeltaToken, IdFormat, View};
use super::select::{self, Read};
use super::state::{DeltaExpiry, RequestRecord, SentMail};

/// An error answer in Graph's shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorResponse,
    headers: Vec<(header::HeaderName, String)>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: ErrorResponse::new(code, message),
            headers: vec![],
        }
    }

    fn with_header(mut self, name: header::HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<CalError> for ApiError {
    fn from(e: CalError) -> Self {
        Self::new(e.status, e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parsed `Prefer` headers (several headers or one comma-separated list; reference U12).
#[derive(Debug, Default)]
struct Prefer {
    timezone: Option<String>,
    immutable: bool,
    max_page_size: Option<usize>,
}

fn prefer(headers: &HeaderMap) -> Prefer {
    let mut out = Prefer::default();
    for value in headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()) {
        for item in value.split(',') {
            let Some((k, v)) = item.split_once('=') else { continue };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "outlook.timezone" => out.timezone = Some(v.to_owned()),
                "idtype" => out.immutable = v.eq_ignore_ascii_case("ImmutableId"),
                "odata.maxpagesize" => out.max_page_size = v.parse().ok().filter(|n| *n > 0),
                _ => {}
            }
        }
    }
    out
}

/// The request's `If-Match` header (a conditional write of an event), if any.
fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

/// One authorised request: its tenant, rendering options, base URL, and its place in the mailbox's
/// in-flight count (released on drop).
pub(crate) struct Ctx {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) mailbox: Option<String>,
    pub(crate) view: View,
    pub(crate) page_size: Option<usize>,
    pub(crate) base: String,
    _flight: Option<Flight>,
}

/// Holds one in-flight slot of a mailbox.
pub(crate) struct Flight {
    em: GraphEmulator,
    mailbox: String,
}

impl Drop for Flight {
    fn drop(&mut self) {
        let mut inner = self.em.lock();
        if let Some(c) = inner.counters.get_mut(&self.mailbox) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

pub(crate) async fn begin(
    em: &GraphEmulator,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    user: Option<&str>,
) -> ApiResult<Ctx> {
    let now = em.now();
    let pref = prefer(headers);
    if let Some(tz) = &pref.timezone
        && orb_core::zones::resolve_graph_zone(tz).is_err()
    {
        return Err(ApiError::new(
            400,
            "ErrorTimeZoneNotSupported",
            format!("Time zone '{tz}' is not supported."),
        ));
    }
    let (tenant, client_id, mailbox, latency) = {
        let mut inner = em.lock();
        super::subscriptions::sweep(&mut inner, now);
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::new(401, "InvalidAuthenticationToken", "Access token is empty."))?;
        let issued = inner.tokens.get(token).filter(|t| t.expires > now).cloned().ok_or_else(|| {
            ApiError::new(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        })?;
        if let Some(needed) = super::auth::required_role(method.as_str(), uri.path())
            && !needed.iter().any(|role| issued.roles.iter().any(|r| r == role))
        {
            return Err(ApiError::new(
                403,
                "ErrorAccessDenied",
                format!("Access is denied. Check credentials and try again. (needs {})", needed[0]),
            ));
        }
        let mailbox = match user {
            None => None,
            Some(user) => {
                let key = inner
                    .mailbox_key(user)
                    .filter(|k| inner.mailboxes[k].tenant == issued.tenant)
                    .ok_or_else(|| {
                        ApiError::new(
                            404,
                            "ErrorInvalidUser",
                            format!("The requested user '{user}' is invalid."),
                        )
                    })?;
                let app = inner.apps.get(&(issued.tenant.clone(), issued.client_id.clone()));
                if let Some(allowed) = app.and_then(|a| a.access_policy.as_ref())
                    && !allowed.contains(&key)
                {
                    return Err(ApiError::new(403, "ErrorAccessDenied", "Access to OData is disabled."));
                }
                Some(key)
            }
        };
        // A request the fault plan picked is already in the log (see `super::inject_faults`).
        let logged = !headers.contains_key(super::FAULT_LOGGED);
        if logged {
            inner.requests.push(RequestRecord {
                method: method.to_string(),
                path: uri.path().to_owned(),
                mailbox: mailbox.clone(),
                client_request_id: headers
                    .get("client-request-id")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned),
                fault: None,
                fault_kind: None,
                fault_after_handling: false,
                query: super::query_of(uri),
                select: super::select_of(uri),
            });
        }
        let injected = |inner: &mut super::state::Inner, status: u16| {
            if let Some(record) = inner.requests.last_mut().filter(|_| logged) {
                record.fault = Some(status);
                record.fault_kind = Some("status".to_owned());
            }
        };
        let every = inner.knobs.error_every;
        if every > 0 && (inner.requests.len() as u64).is_multiple_of(every) {
            injected(&mut inner, 500);
            return Err(ApiError::new(500, "generalException", "An unexpected error occurred (injected)."));
        }
        let every = inner.knobs.throttle_every;
        if every > 0 && (inner.requests.len() as u64).is_multiple_of(every) {
            injected(&mut inner, 429);
            return Err(ApiError::new(429, "ApplicationThrottled", "Application is throttled (injected).")
                .with_header(header::RETRY_AFTER, inner.knobs.retry_after_secs.to_string()));
        }
        if let Some(mb) = &mailbox {
            throttle(&mut inner, mb, now)?;
        }
        (issued.tenant, issued.client_id, mailbox, inner.knobs.latency_ms)
    };
    let flight = mailbox.clone().map(|mailbox| Flight { em: em.clone(), mailbox });
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    Ok(Ctx {
        tenant,
        client_id,
        mailbox,
        view: View {
            tz: pref.timezone,
            ids: if pref.immutable { IdFormat::Immutable } else { IdFormat::Rest },
            expand_props: None,
        },
        page_size: pref.max_page_size,
        base: base_url(headers),
        _flight: flight,
    })
}

/// Counts the request against the mailbox and refuses it with `429` when over a limit; otherwise takes an
/// in-flight slot (the caller's [`Flight`] gives it back).
fn throttle(inner: &mut super::state::Inner, mb: &str, now: DateTime<Utc>) -> ApiResult<()> {
    let knobs = inner.knobs.clone();
    let counters = inner.counters.entry(mb.to_owned()).or_default();
    counters.requests += 1;
    let retry = |counters: &mut super::state::MailboxCounters, why: &str| {
        counters.throttled += 1;
        ApiError::new(429, "ApplicationThrottled", why.to_owned())
            .with_header(header::RETRY_AFTER, knobs.retry_after_secs.to_string())
    };
    if let Some(left) = inner.knobs.storm.get_mut(mb)
        && *left > 0
    {
        *left -= 1;
        return Err(retry(counters, "Application is over its MailboxConcurrency limit."));
    }
    counters.max_attempted = counters.max_attempted.max(counters.in_flight + 1);
    if counters.in_flight >= knobs.max_concurrent_per_mailbox {
        counters.concurrency_refusals += 1;
        return Err(retry(counters, "Application is over its MailboxConcurrency limit."));
    }
    let window = Duration::seconds(i64::try_from(knobs.budget_window_secs).unwrap_or(600));
    let budget = inner.budgets.entry(mb.to_owned()).or_insert((now, 0));
    if now - budget.0 >= window {
        *budget = (now, 0);
    }
    if budget.1 >= knobs.mailbox_budget {
        return Err(retry(counters, "Application is over its mailbox request budget."));
    }
    budget.1 += 1;
    counters.in_flight += 1;
    counters.max_in_flight = counters.max_in_flight.max(counters.in_flight);
    Ok(())
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(400, "RequestBodyRead", format!("The request body could not be read: {e}"))
    })
}

/// `$expand=singleValueExtendedProperties($filter=id eq '…')`: the property ids asked for.
fn expand_props(query: &HashMap<String, String>) -> Option<Vec<String>> {
    let expand = query.get("$expand")?;
    if !expand.to_ascii_lowercase().contains("singlevalueextendedproperties") {
        return None;
    }
    Some(quoted(expand))
}

fn quoted(text: &str) -> Vec<String> {
    text.split('\'').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The `$filter`s `GET events` supports.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EventFilter {
    /// `singleValueExtendedProperties/Any(ep: ep/id eq 'ID' and ep/value eq 'V')`.
    ExtendedProperty { id: String, value: String },
    /// `iCalUId eq 'UID'`.
    ICalUid(String),
}

impl EventFilter {
    fn keeps(&self, e: &Event) -> bool {
        match self {
            Self::ExtendedProperty { id, value } => e.extended_property(id) == Some(value.as_str()),
            Self::ICalUid(uid) => e.ical_uid.as_deref() == Some(uid.as_str()),
        }
    }
}

fn event_filter(query: &HashMap<String, String>) -> ApiResult<Option<EventFilter>> {
    let Some(filter) = query.get("$filter") else { return Ok(None) };
    let q = quoted(filter);
    let lower = filter.to_ascii_lowercase();
    match (q.as_slice(), lower.contains("singlevalueextendedproperties/any")) {
        ([id, value], true) => {
            Ok(Some(EventFilter::ExtendedProperty { id: id.clone(), value: value.clone() }))
        }
        ([uid], false) if lower.trim_start().starts_with("icaluid eq ") => {
            Ok(Some(EventFilter::ICalUid(uid.clone())))
        }
        _ => Err(ApiError::new(
            400,
            "ErrorInvalidUrlQueryFilter",
            "Only the extended-property and iCalUId filters are supported.",
        )),
    }
}

fn parse_instant(query: &HashMap<String, String>, name: &str) -> ApiResult<DateTime<Utc>> {
    let text = query.get(name).ok_or_else(|| {
        ApiError::new(400, "ErrorInvalidParameter", format!("This request requires a time window specified by the query string parameters StartDateTime and EndDateTime; {name} is missing."))
    })?;
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| orb_graph::model::parse_local(text).map(|n: NaiveDateTime| n.and_utc()))
        .map_err(|_| ApiError::new(400, "ErrorInvalidParameter", format!("{name} is not a valid date-time.")))
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(em): State<GraphEmulator>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let mut req = TokenRequest {
        grant_type: form.get("grant_type").cloned(),
        client_id: form.get("client_id").cloned(),
        client_secret: form.get("client_secret").cloned(),
        assertion_type: form.get("client_assertion_type").cloned(),
        assertion: form.get("client_assertion").cloned(),
        scope: form.get("scope").cloned(),
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if let Some((id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) {
        req.client_id.get_or_insert_with(|| id.to_owned());
        req.client_secret.get_or_insert_with(|| secret.to_owned());
    }
    let audience = format!("{}/{tenant}/oauth2/v2.0/token", base_url(&headers));
    let now = em.now();
    let result = auth::issue(&mut em.lock(), &tenant, &audience, &req, now);
    match result {
        Ok((access_token, expires_in)) => Json(TokenResponse {
            token_type: "Bearer".to_owned(),
            expires_in,
            ext_expires_in: Some(expires_in),
            access_token,
        })
        .into_response(),
        Err(e) => {
            let mut body = *e.body;
            body.timestamp = Some(now.format("%Y-%m-%d %H:%M:%SZ").to_string());
            body.trace_id = Some(uuid::Uuid::new_v4().to_string());
            body.correlation_id = Some(uuid::Uuid::new_v4().to_string());
            (StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), Json(body)).into_response()
        }
    }
}

/// `GET /v1.0/places/microsoft.graph.room` (`$top`, `$skip`; pages of 100 by default).
pub async fn rooms(
    State(em): State<GraphEmulator>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Collection<Room>>> {
    let ctx = begin(&em, &headers, &method, &uri, None).await?;
    let top: usize = query.get("$top").and_then(|t| t.parse().ok()).unwrap_or(100).max(1);
    let skip: usize = query.get("$skip").and_then(|t| t.parse().ok()).unwrap_or(0);
    let inner = em.lock();
    let all: Vec<Room> = inner
        .mailboxes
        .values()
        .filter(|m| m.tenant == ctx.tenant)
        .filter_map(|m| {
            let info = m.room.as_ref()?;
            Some(Room {
                odata_type: Some("#microsoft.graph.room".to_owned()),
                id: m.id.clone(),
                display_name: m.display_name.clone(),
                address: None,
                geo_coordinates: None,
                is_wheel_chair_accessible: Some(false),
                label: None,
                parent_id: None,
                phone: None,
                place_id: Some(m.id.clone()),
                tags: Some(vec![]),
                audio_device_name: None,
                booking_type: Some(orb_graph::model::BookingType::Standard),
                building: info.building.clone(),
                capacity: info.capacity,
                display_device_name: None,
                email_address: Some(m.address.clone()),
                floor_label: None,
                floor_number: info.floor_number,
                nickname: Some(m.display_name.clone()),
                teams_enabled_state: Some(orb_graph::model::PlaceFeatureEnablement::Unknown),
                video_device_name: None,
            })
        })
        .collect();
    let more = all.len() > skip + top;
    let mut page = Collection::of(all.into_iter().skip(skip).take(top).collect());
    page.odata_context = Some(format!("{}/v1.0/$metadata#places/microsoft.graph.room", ctx.base));
    if more {
        page.next_link =
            Some(format!("{}/v1.0/places/microsoft.graph.room?$top={top}&$skip={}", ctx.base, skip + top));
    }
    Ok(Json(page))
}

/// `GET /v1.0/users/{user}/events` (singles and series masters; optional extended-property or `iCalUId`
/// filter; `$select` as Graph applies it, see [`select`]).
pub async fn list_events(
    State(em): State<GraphEmulator>,
    Path(user): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Collection<Value>>> {
    let mut ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    let filter = event_filter(&query)?;
    ctx.view.expand_props = expand_props(&query);
    let mb = ctx.mailbox.clone().unwrap_or_default();
    let inner = em.lock();
    let mut view_all = ctx.view.clone();
    view_all.expand_props = Some(vec![]);
    let events = calendar::list(&inner, &mb, &view_all)?;
    let keep: Vec<Event> = events
        .into_iter()
        .filter(|e| filter.as_ref().is_none_or(|f| f.keeps(e)))
        .map(|mut e| {
            e.single_value_extended_properties = match &ctx.view.expand_props {
                None => None,
                Some(ids) => e.single_value_extended_properties.map(|props| {
                    props
                        .into_iter()
                        .filter(|p| ids.is_empty() || ids.iter().any(|i| i.eq_ignore_ascii_case(&p.id)))
                        .collect()
                }),
            };
            e
        })
        .collect();
    Ok(Json(Collection::of(select::project_all(&keep, select::requested(&query).as_deref(), Read::Events))))
}

/// `POST /v1.0/users/{user}/events` → `201`. A repeated `transactionId` returns the first event.
pub async fn create_event(
    State(em): State<GraphEmulator>,
    Path(user): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    let input: Event = json_body(&body)?;
    let mb = ctx.mailbox.clone().unwrap_or_default();
    let event = em.create_in(&mb, &input, &ctx.view)?;
    Ok((StatusCode::CREATED, Json(event)).into_response())
}

/// `GET /v1.0/users/{user}/events/{id}` (optional `$expand` of extended properties, `$select`).
pub async fn get_event(
    State(em): State<GraphEmulator>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let mut ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    ctx.view.expand_props = expand_props(&query);
    let mb = ctx.mailbox.clone().unwrap_or_default();
    let event = calendar::get(&em.lock(), &mb, &id, &ctx.view)?;
    Ok(Json(select::project(&event, select::requested(&query).as_deref(), Read::Events)))
}

/// `PATCH /v1.0/users/{user}/events/{id}` → `200` + event; with `If-Match` naming an older version of
/// the event, `412` and nothing changes.
pub async fn update_event(
    State(em): State<GraphEmulator>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> ApiResult<Json<Event>> {
    let ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    let input: Event = json_body(&body)?;
    let mb = ctx.mailbox.clone().unwrap_or_default();
    Ok(Json(em.update_in_if(&mb, &id, &input, &ctx.view, if_match(&headers))?))
}

/// `DELETE /v1.0/users/{user}/events/{id}` → `204` (`412` on a stale `If-Match`).
pub async fn delete_event(
    State(em): State<GraphEmulator>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
) -> ApiResult<StatusCode> {
    let ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    em.remove_in_if(ctx.mailbox.as_deref().unwrap_or_default(), &id, false, if_match(&headers))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1.0/users/{user}/events/{id}/cancel` → `202` (organizer only; `412` on a stale `If-Match`).
pub async fn cancel_event(
    State(em): State<GraphEmulator>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    if !body.is_empty() {
        let _: CancelRequest = json_body(&body)?;
    }
    em.remove_in_if(ctx.mailbox.as_deref().unwrap_or_default(), &id, true, if_match(&headers))?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /v1.0/users/{user}/events/{id}/instances?startDateTime&endDateTime` (`$select`).
pub async fn instances(
    State(em): State<GraphEmulator>,
    Path((user, id)): Path<(String, String)>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Collection<Value>>> {
    let ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    let (from, to) = (parse_instant(&query, "startDateTime")?, parse_instant(&query, "endDateTime")?);
    let mb = ctx.mailbox.clone().unwrap_or_default();
    let events = calendar::series_instances(&em.lock(), &mb, &id, from, to, &ctx.view)?;
    Ok(Json(Collection::of(select::project_all(&events, select::requested(&query).as_deref(), Read::Events))))
}

/// `GET /v1.0/users/{user}/calendarView?startDateTime&endDateTime` (`$select`, except `createdDateTime`
/// and `lastModifiedDateTime`).
pub async fn calendar_view(
    State(em): State<GraphEmulator>,
    Path(user): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Collection<Value>>> {
    let ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    let (from, to) = (parse_instant(&query, "startDateTime")?, parse_instant(&query, "endDateTime")?);
    let mb = ctx.mailbox.clone().unwrap_or_default();
    let events = calendar::calendar_view(&em.lock(), &mb, from, to, &ctx.view)?;
    Ok(Json(Collection::of(select::project_all(
        &events,
        select::requested(&query).as_deref(),
        Read::CalendarView,
    ))))
}

/// `GET /v1.0/users/{user}/calendarView/delta` (initial with a range, or `$skiptoken` / `$deltatoken`).
pub async fn delta(
    State(em): State<GraphEmulator>,
    Path(user): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Collection<Event>>> {
    let ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    let mb = ctx.mailbox.clone().unwrap_or_default();
    let inner = em.lock();
    let generation = inner.mailboxes[&mb].delta_generation;
    let given = query.get("$skiptoken").or_else(|| query.get("$deltatoken"));
    let token = match given {
        Some(text) => DeltaToken::decode(text)
            .filter(|t| t.mb == mb)
            .ok_or_else(|| ApiError::new(400, "ErrorInvalidUrlQuery", "The delta token is malformed."))?,
        None => DeltaToken {
            mb: mb.clone(),
            start: parse_instant(&query, "startDateTime")?,
            end: parse_instant(&query, "endDateTime")?,
            since: 0,
            generation,
            upto: None,
            skip: 0,
        },
    };
    let link = |q: String| format!("{}/v1.0/users/{user}/calendarView/delta?{q}", ctx.base);
    if token.generation != generation {
        let fresh = link(format!(
            "startDateTime={}&endDateTime={}",
            token.start.format("%Y-%m-%dT%H:%M:%SZ"),
            token.end.format("%Y-%m-%dT%H:%M:%SZ")
        ));
        return Err(match inner.mailboxes[&mb].delta_expiry {
            DeltaExpiry::Gone => ApiError::new(
                410,
                "resyncRequired",
                "Resync required. Replace any local cached data with the items returned by the Location URL.",
            )
            .with_header(header::LOCATION, fresh),
            DeltaExpiry::SyncStateNotFound => ApiError::new(
                400,
                "syncStateNotFound",
                "The sync state generation is not found. Do a full sync.",
            ),
        });
    }
    let upto = token.upto.unwrap_or(inner.seq);
    let items = calendar::delta_items(&inner, &token, upto, &ctx.view)?;
    let size = ctx.page_size.unwrap_or(100);
    let end = (token.skip + size).min(items.len());
    let mut page = Collection::of(items.get(token.skip..end).map(<[Event]>::to_vec).unwrap_or_default());
    if end < items.len() {
        let next = DeltaToken { upto: Some(upto), skip: end, ..token.clone() };
        page.next_link = Some(link(format!("$skiptoken={}", next.encode())));
    } else {
        let next = DeltaToken { since: upto, upto: None, skip: 0, ..token.clone() };
        page.delta_link = Some(link(format!("$deltatoken={}", next.encode())));
    }
    Ok(Json(page))
}

/// `POST /v1.0/users/{user}/sendMail` → `202`; the message lands in the outbox.
pub async fn send_mail(
    State(em): State<GraphEmulator>,
    Path(user): Path<String>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let ctx = begin(&em, &headers, &method, &uri, Some(&user)).await?;
    let req: SendMailRequest = json_body(&body)?;
    if req.message.to_recipients.as_deref().unwrap_or_default().is_empty() {
        return Err(ApiError::new(400, "ErrorInvalidRecipients", "At least one recipient is not valid."));
    }
    let now = em.now();
    em.lock().outbox.push(SentMail {
        from: ctx.mailbox.clone().unwrap_or_default(),
        message: req.message,
        save_to_sent_items: req.save_to_sent_items.unwrap_or(true),
        at: now,
    });
    Ok(StatusCode::ACCEPTED)
}

/// An injected error status as Graph sends it: `{"error":{"code","message"}}` for all but 502, which a
/// gateway in front of Graph answers with an HTML page (and a 200 with a sign-in page, when asked for).
pub(crate) fn fault_page(fault: &crate::faults::FaultKind, _coin: bool) -> Response {
    use crate::faults::{BodyStyle, FaultKind};
    let FaultKind::Status { status, body, retry_after_secs } = fault else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let html = match body {
        BodyStyle::Auto => *status == 502,
        BodyStyle::Html => true,
        BodyStyle::Json | BodyStyle::Empty => false,
    };
    let (content_type, text) = if *body == BodyStyle::Empty {
        (None, String::new())
    } else if html {
        let reason = StatusCode::from_u16(*status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
        let page = if *status == 200 {
            "<!DOCTYPE html>\r\n<html><head><title>Sign in to your account</title></head><body>\
             <form method=\"post\" action=\"/common/login\"></form></body></html>\r\n"
                .to_owned()
        } else {
            format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} \
             {reason}</h1></center>\r\n<hr><center>Microsoft-Azure-Application-Gateway/v2</center>\r\n\
             </body>\r\n</html>\r\n"
            )
        };
        (Some("text/html"), page)
    } else {
        let (code, message) = match status {
            500 => ("generalException", "General exception while processing."),
            502 => ("badGateway", "The gateway received an invalid response."),
            503 => ("serviceNotAvailable", "The service is temporarily unavailable. Try again later."),
            504 => ("timeout", "The operation timed out."),
            429 => ("TooManyRequests", "Too many requests."),
            _ => ("generalException", "The request could not be processed."),
        };
        let body = serde_json::to_string(&ErrorResponse::new(code, message)).unwrap_or_default();
        (Some("application/json"), body)
    };
    crate::faults::error_page(*status, content_type, text, *retry_after_secs)
}
