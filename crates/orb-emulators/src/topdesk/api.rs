//! The TOPdesk REST surface (`/tas/api/…`): auth, faults, counters, and one handler per operation.

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LAST_MODIFIED, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine;
use orb_topdesk::datetime;
use orb_topdesk::fiql::{Field, Fiql};
use orb_topdesk::wire::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::TopdeskEmulator;
use super::state::{ApiError, Reservation, SeriesOp, State as Td, project, reject};
use crate::faults::{self, BodyStyle, FaultKind, Injection};

type Params = Query<Vec<(String, String)>>;

#[derive(Clone)]
struct Login(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Rejected(errors) => {
                (StatusCode::BAD_REQUEST, axum::Json(ErrorResponseEntity { errors })).into_response()
            }
            ApiError::BadRequestMessage(message) => {
                (StatusCode::BAD_REQUEST, axum::Json(json!([{ "message": message }]))).into_response()
            }
            ApiError::BadRequest => StatusCode::BAD_REQUEST.into_response(),
            ApiError::NotFound => StatusCode::NOT_FOUND.into_response(),
            ApiError::NotFoundMessage(message) => {
                (StatusCode::NOT_FOUND, axum::Json(json!([{ "message": message }]))).into_response()
            }
        }
    }
}

pub(super) fn router(emulator: TopdeskEmulator) -> Router {
    Router::new()
        .route("/tas/api/version", get(version))
        .route("/tas/api/productVersion", get(product_version))
        .route("/tas/api/operators/current", get(current_operator))
        .route("/tas/api/persons", get(persons))
        .route("/tas/api/locations", get(locations))
        .route("/tas/api/locations/id/{id}", get(location))
        .route("/tas/api/reservableLocations", get(reservable_locations))
        .route("/tas/api/reservableLocations/{id}", get(reservable_location))
        .route("/tas/api/reservationCancellationReasons", get(cancellation_reasons))
        .route("/tas/api/reservationRejectionReasons", get(rejection_reasons))
        .route("/tas/api/reservations", get(list_reservations).post(create_reservation))
        .route("/tas/api/reservations/{identifier}", get(get_reservation).patch(patch_reservation))
        .route("/tas/api/reservations/{identifier}/reschedule", post(reschedule))
        .route("/tas/api/reservations/{identifier}/cancel", post(cancel))
        .route("/tas/api/reservations/{identifier}/reject", post(reject_request))
        .route("/tas/api/reservations/{identifier}/reservedFacilities/move", post(move_facility))
        .route("/tas/api/reservations/{identifier}/participants/add", post(add_participants))
        .route("/tas/api/reservations/{identifier}/participants/remove", post(remove_participants))
        .route("/tas/api/reservations/{identifier}/makeRecurrent/dates", post(make_recurrent))
        .route(
            "/tas/api/reservations/{identifier}/occurrences/dates",
            post(add_occurrences).put(set_occurrences),
        )
        .route_layer(middleware::from_fn_with_state(emulator.clone(), gate))
        .with_state(emulator)
}

enum Fault {
    None,
    Throttle(u64),
    Unavailable,
    Planned(Injection),
}

/// Counts the request, applies latency and faults, then checks Basic auth.
async fn gate(
    State(emu): State<TopdeskEmulator>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = format!("{} {}", req.method(), matched.as_ref().map_or(req.uri().path(), |m| m.as_str()));
    let (latency, fault) = {
        let mut shared = emu.lock();
        shared.counts.total += 1;
        *shared.counts.by_route.entry(route).or_default() += 1;
        let latency = shared.faults.latency_ms;
        let fault = if shared.faults.throttle_next > 0 {
            shared.faults.throttle_next -= 1;
            Fault::Throttle(shared.faults.retry_after_secs)
        } else if shared.faults.error_next > 0 {
            shared.faults.error_next -= 1;
            Fault::Unavailable
        } else if shared.faults.error_rate > 0.0 || shared.faults.throttle_rate > 0.0 {
            // xorshift64: deterministic for a given sequence of requests.
            let mut x = shared.rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shared.rng = x;
            let draw = (x >> 11) as f64 / (1u64 << 53) as f64;
            if draw < shared.faults.error_rate {
                Fault::Unavailable
            } else if draw < shared.faults.error_rate + shared.faults.throttle_rate {
                Fault::Throttle(shared.faults.retry_after_secs)
            } else {
                Fault::None
            }
        } else {
            Fault::None
        };
        let fault = match fault {
            Fault::None => shared
                .faults
                .plan
                .decide(req.method().as_str(), req.uri().path())
                .map_or(Fault::None, Fault::Planned),
            other => other,
        };
        let (status, kind, after) = match &fault {
            Fault::None => (None, None, false),
            Fault::Throttle(_) => {
                shared.counts.injected_throttles += 1;
                (Some(429), Some("status"), false)
            }
            Fault::Unavailable => {
                shared.counts.injected_errors += 1;
                (Some(503), Some("status"), false)
            }
            Fault::Planned(injection) => {
                shared.counts.injected_faults += 1;
                (injection.fault.status_code(), Some(injection.fault.label()), injection.after_handling)
            }
        };
        let login = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|text| text.split_once(':').map(|(login, _)| login.to_owned()));
        shared.log.push(super::RequestRecord {
            method: req.method().to_string(),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            login,
            fault: status,
            fault_kind: kind.map(str::to_owned),
            fault_after_handling: after,
        });
        (latency, fault)
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    match fault {
        Fault::Throttle(secs) => {
            (StatusCode::TOO_MANY_REQUESTS, [(RETRY_AFTER, secs.to_string())]).into_response()
        }
        Fault::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!([{ "message": "Service unavailable" }])))
                .into_response()
        }
        Fault::Planned(injection) => faults::apply(&injection, authorized(emu, req, next), error_page).await,
        Fault::None => authorized(emu, req, next).await,
    }
}

/// Checks Basic auth (401 in TOPdesk's shape otherwise), then handles the request.
async fn authorized(emu: TopdeskEmulator, mut req: Request, next: Next) -> Response {
    let now = emu.now();
    let login = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|text| {
            let (login, password) = text.split_once(':')?;
            let shared = emu.lock();
            let account = shared.state.accounts.get(login)?;
            let valid = !account.archived
                && account
                    .passwords
                    .iter()
                    .any(|(p, expires)| p == password && expires.is_none_or(|e| e > now));
            valid.then(|| login.to_owned())
        });
    let Some(login) = login else {
        emu.lock().counts.unauthorized += 1;
        let message = if req.headers().contains_key(AUTHORIZATION) {
            "Invalid login name or application password"
        } else {
            "No authentication token provided"
        };
        return (StatusCode::UNAUTHORIZED, axum::Json(json!([{ "message": message }]))).into_response();
    };
    req.extensions_mut().insert(Login(login));
    next.run(req).await
}

/// An injected error status as TOPdesk (behind IIS) sends it: IIS HTML pages for 502 and 504 and for about
/// half of the 500s (the injection's seeded coin), `[{"message"}]` JSON otherwise.
fn error_page(fault: &FaultKind, coin: bool) -> Response {
    let FaultKind::Status { status, body, retry_after_secs } = fault else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let html = match body {
        BodyStyle::Auto => matches!(status, 502 | 504) || (*status == 500 && coin),
        BodyStyle::Html => true,
        BodyStyle::Json | BodyStyle::Empty => false,
    };
    let (content_type, text) = if *body == BodyStyle::Empty {
        (None, String::new())
    } else if html {
        (Some("text/html"), iis_page(*status))
    } else {
        let message = match status {
            500 => "An internal error occurred. Contact your application manager.",
            502 => "Bad gateway",
            503 => "Service unavailable",
            504 => "Gateway timeout",
            _ => "The request could not be processed",
        };
        (Some("application/json"), json!([{ "message": message }]).to_string())
    };
    faults::error_page(*status, content_type, text, *retry_after_secs)
}

/// IIS's error pages (as IIS 10 and Application Request Routing render them, shortened).
fn iis_page(status: u16) -> String {
    let (title, detail) = match status {
        500 => (
            "500 - Internal server error.",
            "There is a problem with the resource you are looking for, and it cannot be displayed.",
        ),
        502 => (
            "502 - Web server received an invalid response while acting as a gateway or proxy server.",
            "There is a problem with the page you are looking for, and it cannot be displayed. When the Web server (while acting as a gateway or proxy) contacted the upstream content server, it received an invalid response from the content server.",
        ),
        503 => ("Service Unavailable", "HTTP Error 503. The service is unavailable."),
        200 => ("TOPdesk maintenance", "TOPdesk is being updated. Please try again in a few minutes."),
        504 => (
            "504 - Gateway Timeout",
            "The gateway did not receive a timely response from the upstream server or application.",
        ),
        _ => ("Error", "The request could not be processed."),
    };
    format!(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\">\n<head>\n<meta http-equiv=\"Content-Type\" \
         content=\"text/html; charset=iso-8859-1\"/>\n<title>{title}</title>\n</head>\n<body>\n\
         <div id=\"header\"><h1>Server Error</h1></div>\n<div id=\"content\">\n<div class=\"content-container\">\
         <fieldset>\n<h2>{title}</h2>\n<h3>{detail}</h3>\n</fieldset></div>\n</div>\n</body>\n</html>\n"
    )
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn params<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

fn flag(params: &[(String, String)], name: &str) -> Result<bool, ApiError> {
    match param(params, name) {
        None => Ok(false),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(reject("invalidParameter", Some(name), format!("'{other}' is not a boolean"))),
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| reject("invalidRequestBody", None, format!("The request body is malformed: {e}")))
}

fn optional_body<T: DeserializeOwned>(bytes: &Bytes) -> Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) { Ok(None) } else { body(bytes).map(Some) }
}

fn top(params: &[(String, String)]) -> Result<usize, ApiError> {
    match param(params, "$top") {
        None => Ok(1000),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err(reject("invalidParameter", Some("$top"), "$top must be a number from 1 to 10000")),
        },
    }
}

fn reservation_response(status: StatusCode, dto: &ReservationDto, fields: Option<&str>) -> Response {
    let value = serde_json::to_value(dto).unwrap_or(Value::Null);
    let value = fields.map_or(value.clone(), |f| project(&value, f));
    let mut response = (status, axum::Json(value)).into_response();
    if let Some(at) = dto.modification_date
        && let Ok(header) = HeaderValue::from_str(&datetime::format_http(&at))
    {
        response.headers_mut().insert(LAST_MODIFIED, header);
    }
    response
}

fn parse_fiql(text: &str) -> Result<Fiql, ApiError> {
    Fiql::parse(text).map_err(|e| reject("invalidQuery", Some("query"), e.to_string()))
}

async fn version() -> Response {
    axum::Json(VersionDto { version: "3.0.0".into() }).into_response()
}

async fn product_version() -> Response {
    axum::Json(json!({"major": 2025, "minor": 10, "patch": 0})).into_response()
}

async fn current_operator(
    State(emu): State<TopdeskEmulator>,
    Extension(Login(login)): Extension<Login>,
) -> Response {
    let shared = emu.lock();
    let Some(a) = shared.state.accounts.get(&login) else {
        return ApiError::NotFoundMessage("Entity not found".into()).into_response();
    };
    axum::Json(OperatorDto {
        id: Some(a.id),
        status: Some("operator".into()),
        account_type: Some(AccountType::Regular),
        api_account: Some(true),
        has_application_passwords: Some(!a.passwords.is_empty()),
        sur_name: Some(a.sur_name.clone()),
        first_name: Some(a.first_name.clone()),
        dynamic_name: Some(format!("{}, {}", a.sur_name, a.first_name)),
        email: a.email.clone(),
        login_name: Some(a.login.clone()),
        login_permission: Some(true),
        reservations_operator: Some(true),
    })
    .into_response()
}

fn person_field(p: &super::Person, selector: &str) -> Option<Vec<Field>> {
    let text = |v: Option<String>| vec![v.map_or(Field::Null, Field::Text)];
    Some(match selector {
        "id" => vec![Field::Text(p.id.to_string())],
        "email" => text(p.email.clone()),
        "archived" => vec![Field::Bool(p.archived)],
        "firstName" => text(Some(p.first_name.clone())),
        "surName" => text(Some(p.sur_name.clone())),
        "dynamicName" => text(p.to_dto().dynamic_name),
        "tasLoginName" => text(p.tas_login_name.clone()),
        "branch.id" => text(p.branch.as_ref().and_then(|b| b.id).map(|i| i.to_string())),
        "branch.name" => text(p.branch.as_ref().and_then(|b| b.name.clone())),
        _ => return None,
    })
}

async fn persons(State(emu): State<TopdeskEmulator>, headers: HeaderMap, Query(q): Params) -> Response {
    let v2 = headers
        .get(ACCEPT)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.contains(orb_topdesk::PERSONS_V2_ACCEPT));
    let bad = |m: &str| ApiError::BadRequestMessage(m.to_owned()).into_response();
    let shared = emu.lock();
    let state = &shared.state;
    let filter = match param(&q, "query").map(Fiql::parse).transpose() {
        Ok(f) => f,
        Err(_) => return bad("Input parameters malformed"),
    };
    if let Some(f) = &filter
        && state.persons.first().is_some_and(|p| f.selectors().iter().any(|s| person_field(p, s).is_none()))
    {
        return bad("Input parameters malformed");
    }
    let case = state.settings.text_case_sensitive;
    let mut matching: Vec<&super::Person> = state
        .persons
        .iter()
        .filter(|p| match &filter {
            Some(f) => f.eval(&|s| person_field(p, s).unwrap_or_else(|| vec![Field::Null]), case),
            // v2 lists everyone by default, v1 only active persons.
            None => v2 || !p.archived,
        })
        .collect();
    matching.sort_by_key(|p| p.to_dto().dynamic_name);
    let number = |name: &str, default: usize| param(&q, name).map_or(Ok(default), |v| v.parse::<usize>());
    let (start, size) = if v2 {
        (number("pageStart", 0), number("pageSize", 50))
    } else {
        (number("start", 0), number("page_size", 10))
    };
    let (Ok(start), Ok(size)) = (start, size) else { return bad("Input parameters malformed") };
    if !(1..=5000).contains(&size) {
        return bad("Input parameters malformed");
    }
    let more = matching.len() > start + size;
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(size)
        .map(|p| {
            let value = serde_json::to_value(p.to_dto()).unwrap_or(Value::Null);
            let fields = if v2 {
                param(&q, "fields").unwrap_or("id,dynamicName,email")
            } else {
                param(&q, "$fields").unwrap_or("")
            };
            if fields == "*" || fields == "all" { value } else { project(&value, fields) }
        })
        .collect();
    let status = if more { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    if !v2 {
        if page.is_empty() {
            return StatusCode::NO_CONTENT.into_response();
        }
        return (status, axum::Json(Value::Array(page))).into_response();
    }
    let mut body = json!({"item": page, "size": page.len()});
    if more {
        let mut next = format!("/tas/api/persons?pageStart={}&pageSize={size}", start + size);
        for (key, value) in q.iter().filter(|(k, _)| k == "query" || k == "fields") {
            next.push_str(&format!("&{key}={}", url_encode(value)));
        }
        body["next"] = Value::String(next);
    }
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(orb_topdesk::PERSONS_V2_ACCEPT));
    response
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn location_field(room: &super::Room, selector: &str) -> Option<Vec<Field>> {
    let text = |v: Option<String>| vec![v.map_or(Field::Null, Field::Text)];
    Some(match selector {
        "id" => vec![Field::Text(room.id.to_string())],
        "name" => text(Some(room.name.clone())),
        "roomNumber" => text(room.room_number.clone()),
        "capacity" => vec![room.capacity.map_or(Field::Null, |c| Field::Number(f64::from(c)))],
        "archived" => vec![Field::Bool(room.archived)],
        "branch.id" => text(room.branch.as_ref().and_then(|b| b.id).map(|i| i.to_string())),
        "branch.name" => text(room.branch.as_ref().and_then(|b| b.name.clone())),
        "optionalFields1.text1" => text(room.text1.clone()),
        "reservationManagement.reservable" => vec![Field::Bool(room.reservable)],
        "reservationManagement.blockTime" => vec![Field::Number(f64::from(room.block_minutes))],
        _ => return None,
    })
}

async fn locations(State(emu): State<TopdeskEmulator>, Query(q): Params) -> Result<Response, ApiError> {
    let shared = emu.lock();
    let filter = param(&q, "query").map(parse_fiql).transpose()?;
    if let Some(f) = &filter
        && let Some(room) = shared.state.rooms.first()
        && let Some(bad) = f.selectors().into_iter().find(|s| location_field(room, s).is_none())
    {
        return Err(reject(
            "invalidQuery",
            Some("query"),
            format!("The field '{bad}' cannot be used in a query"),
        ));
    }
    let size = match param(&q, "pageSize").map(str::parse::<usize>).transpose() {
        Ok(size) => size.unwrap_or(usize::MAX),
        Err(_) => return Err(reject("invalidParameter", Some("pageSize"), "pageSize must be a number")),
    };
    let case = shared.state.settings.text_case_sensitive;
    let fields = param(&q, "$fields").unwrap_or("id,name,roomNumber,branch");
    let list: Vec<Value> = shared
        .state
        .rooms
        .iter()
        .filter(|room| match &filter {
            Some(f) => f.eval(&|s| location_field(room, s).unwrap_or_else(|| vec![Field::Null]), case),
            None => !room.archived,
        })
        .take(size)
        .map(|room| project(&serde_json::to_value(room.to_extended()).unwrap_or(Value::Null), fields))
        .collect();
    Ok(axum::Json(Value::Array(list)).into_response())
}

async fn location(State(emu): State<TopdeskEmulator>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let shared = emu.lock();
    let room = shared.state.room(&id).ok_or_else(|| ApiError::NotFoundMessage("Entity not found".into()))?;
    Ok(axum::Json(room.to_extended()).into_response())
}

async fn reservable_locations(
    State(emu): State<TopdeskEmulator>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let top = top(&q).map_err(|_| ApiError::BadRequest)?;
    let branches = params(&q, "branchId");
    let shared = emu.lock();
    let results: Vec<Value> = shared
        .state
        .rooms
        .iter()
        .filter(|r| r.reservable && !r.archived)
        .filter(|r| {
            branches.is_empty()
                || r.branch
                    .as_ref()
                    .and_then(|b| b.id)
                    .is_some_and(|id| branches.iter().any(|b| b.eq_ignore_ascii_case(&id.to_string())))
        })
        .take(top)
        .map(|r| {
            let value = serde_json::to_value(r.to_reservable()).unwrap_or(Value::Null);
            param(&q, "$fields").map_or(value.clone(), |f| project(&value, f))
        })
        .collect();
    Ok(axum::Json(json!({ "results": results })).into_response())
}

async fn reservable_location(
    State(emu): State<TopdeskEmulator>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    if uuid::Uuid::parse_str(&id).is_err() {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let shared = emu.lock();
    match shared.state.room(&id).filter(|r| r.reservable && !r.archived) {
        Some(room) => {
            let value = serde_json::to_value(room.to_reservable()).unwrap_or(Value::Null);
            axum::Json(param(&q, "$fields").map_or(value.clone(), |f| project(&value, f))).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn search_list(items: &[super::SearchItem], q: &[(String, String)]) -> Response {
    let archived = param(q, "archived") == Some("true");
    let results: Vec<IdName> = items
        .iter()
        .filter(|r| r.archived == archived)
        .map(|r| IdName { id: Some(r.id), name: Some(r.name.clone()) })
        .collect();
    axum::Json(SearchListEnvelope { results }).into_response()
}

async fn cancellation_reasons(State(emu): State<TopdeskEmulator>, Query(q): Params) -> Response {
    search_list(&emu.lock().state.cancellation_reasons, &q)
}

async fn rejection_reasons(State(emu): State<TopdeskEmulator>, Query(q): Params) -> Response {
    search_list(&emu.lock().state.rejection_reasons, &q)
}

fn legacy_filter(state: &Td, r: &Reservation, q: &[(String, String)]) -> Result<bool, ApiError> {
    let date = |name: &str| {
        param(q, name)
            .map(|t| {
                datetime::parse(t).ok_or_else(|| {
                    reject("invalidParameter", Some(name), format!("'{t}' is not a date-time"))
                })
            })
            .transpose()
    };
    let bool_param = |name: &str| match param(q, name) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(reject("invalidParameter", Some(name), format!("'{other}' is not a boolean"))),
    };
    let _ = state;
    let mut keep = true;
    if let Some(from) = date("plannedFrom")? {
        keep &= r.end > from;
    }
    if let Some(to) = date("plannedTo")? {
        keep &= r.start < to;
    }
    let rooms = params(q, "locationId");
    if !rooms.is_empty() {
        keep &= r.rooms.iter().any(|(_, room)| rooms.iter().any(|x| room.as_str().eq_ignore_ascii_case(x)));
    }
    if let Some(series) = param(q, "seriesId") {
        keep &= r.series.is_some_and(|s| s.to_string().eq_ignore_ascii_case(series));
    }
    if let Some(requester) = param(q, "requesterId") {
        keep &= r.requester.to_string().eq_ignore_ascii_case(requester);
    }
    if let Some(link_id) = param(q, "externalLinkId") {
        keep &= r.external_link.as_ref().is_some_and(|l| l.id == link_id);
    }
    if let Some(link_type) = param(q, "externalLinkType") {
        keep &= r.external_link.as_ref().is_some_and(|l| l.kind == link_type);
    }
    if let Some(archived) = bool_param("archived")? {
        keep &= r.archived == archived;
    }
    if let Some(cancelled) = bool_param("cancelled")? {
        keep &= (r.status == ReservationStatus::Cancelled) == cancelled;
    }
    if let Some(rejected) = bool_param("rejected")? {
        keep &= (r.status == ReservationStatus::RejectedRequest) == rejected;
    }
    if let Some(conflicting) = bool_param("conflicting")? {
        let is =
            matches!(r.status, ReservationStatus::ConflictingPlanned | ReservationStatus::ConflictingRequest);
        keep &= is == conflicting;
    }
    Ok(keep)
}

async fn list_reservations(State(emu): State<TopdeskEmulator>, Query(q): Params) -> Response {
    // The spec documents the 400 of this endpoint without a body.
    list(&emu, &q).unwrap_or_else(|_| ApiError::BadRequest.into_response())
}

fn list(emu: &TopdeskEmulator, q: &[(String, String)]) -> Result<Response, ApiError> {
    let q = q.to_vec();
    let top = top(&q)?;
    let shared = emu.lock();
    let state = &shared.state;
    let filter = param(&q, "query").map(parse_fiql).transpose()?;
    if let Some(f) = &filter {
        state.check_reservation_selectors(f)?;
    }
    let case = state.settings.text_case_sensitive;
    let mut matching = Vec::new();
    for r in state.reservations.values() {
        let keep = match &filter {
            Some(f) => f.eval(&|s| state.reservation_field(r, s).unwrap_or_else(|| vec![Field::Null]), case),
            None => legacy_filter(state, r, &q)?,
        };
        if keep {
            matching.push(r);
        }
    }
    matching.sort_by_key(|r| (r.start, r.number.clone()));
    let partial = matching.len() > top;
    let fields = param(&q, "$fields");
    let results: Vec<Value> = matching
        .into_iter()
        .take(top)
        .map(|r| {
            let value = serde_json::to_value(state.to_dto(r)).unwrap_or(Value::Null);
            fields.map_or(value.clone(), |f| project(&value, f))
        })
        .collect();
    let status = if partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    Ok((status, axum::Json(json!({ "results": results }))).into_response())
}

async fn get_reservation(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let shared = emu.lock();
    let id = shared.state.find(&identifier)?;
    let dto = shared.state.to_dto(&shared.state.reservations[&id]);
    Ok(reservation_response(StatusCode::OK, &dto, param(&q, "$fields")))
}

async fn create_reservation(State(emu): State<TopdeskEmulator>, bytes: Bytes) -> Result<Response, ApiError> {
    let dto: CreateReservationDto = body(&bytes)?;
    let now = emu.now();
    let mut shared = emu.lock();
    let id = shared.state.create(dto, now)?;
    if shared.faults.fail_after_commit_next > 0 {
        shared.faults.fail_after_commit_next -= 1;
        return Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!([{ "message": "Service unavailable" }])),
        )
            .into_response());
    }
    let dto = shared.state.to_dto(&shared.state.reservations[&id]);
    let mut response = reservation_response(StatusCode::CREATED, &dto, None);
    if let Ok(location) = HeaderValue::from_str(&format!("/tas/api/reservations/{id}")) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// Runs a state change on the addressed reservation and answers with the reservation.
fn change(
    emu: &TopdeskEmulator,
    identifier: &str,
    f: impl FnOnce(&mut Td, orb_topdesk::ReservationId, chrono::DateTime<chrono::Utc>) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let now = emu.now();
    let mut shared = emu.lock();
    let id = shared.state.find(identifier)?;
    f(&mut shared.state, id, now)?;
    let dto = shared.state.to_dto(&shared.state.reservations[&id]);
    Ok(reservation_response(StatusCode::OK, &dto, None))
}

async fn patch_reservation(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    Query(q): Params,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let dto: UpdateReservationDto = body(&bytes)?;
    let future = match param(&q, "occurrences") {
        None | Some("current") => false,
        Some("future") => true,
        Some(other) => {
            return Err(reject(
                "invalidParameter",
                Some("occurrences"),
                format!("'{other}' is not current or future"),
            ));
        }
    };
    change(&emu, &identifier, |s, id, now| s.patch(id, dto, future, now))
}

async fn reschedule(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let dto: RescheduleReservationDto = body(&bytes)?;
    change(&emu, &identifier, |s, id, now| s.reschedule(id, dto, now))
}

async fn move_facility(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let dto: MoveFacilityDto = body(&bytes)?;
    change(&emu, &identifier, |s, id, now| s.move_facility(id, dto, now))
}

async fn cancel(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let reason: Option<LookupByName> = optional_body(&bytes)?;
    let now = emu.now();
    let mut shared = emu.lock();
    let id = shared.state.find(&identifier)?;
    shared.state.cancel(id, reason, now)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn reject_request(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let reason: Option<LookupByName> = optional_body(&bytes)?;
    change(&emu, &identifier, |s, id, now| s.reject(id, reason, now))
}

async fn add_participants(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let dto: EditParticipantsDto = body(&bytes)?;
    change(&emu, &identifier, |s, id, now| s.participants(id, dto, true, now))
}

async fn remove_participants(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let dto: EditParticipantsDto = body(&bytes)?;
    change(&emu, &identifier, |s, id, now| s.participants(id, dto, false, now))
}

fn series(
    emu: &TopdeskEmulator,
    identifier: &str,
    q: &[(String, String)],
    bytes: &Bytes,
    op: SeriesOp,
) -> Result<Response, ApiError> {
    let dto: RecurrencyDatesDto = body(bytes)?;
    let allow = flag(q, "allowConflicts")?;
    let now = emu.now();
    let mut shared = emu.lock();
    let id = shared.state.find(identifier)?;
    let ids = shared.state.series(id, dto.dates, op, allow, now)?;
    let results: Vec<ReservationDto> = ids
        .iter()
        .map(|id| {
            let r = &shared.state.reservations[id];
            ReservationDto {
                id: Some(r.id),
                number: Some(r.number.clone()),
                status: Some(r.status),
                series: r.series.map(|s| SeriesDto { id: Some(s) }),
                planned_start_date: Some(r.start),
                planned_end_date: Some(r.end),
                ..ReservationDto::default()
            }
        })
        .collect();
    Ok(axum::Json(ReservationList { results }).into_response())
}

async fn make_recurrent(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    Query(q): Params,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    series(&emu, &identifier, &q, &bytes, SeriesOp::Make)
}

async fn add_occurrences(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    Query(q): Params,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    series(&emu, &identifier, &q, &bytes, SeriesOp::Add)
}

async fn set_occurrences(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    Query(q): Params,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    series(&emu, &identifier, &q, &bytes, SeriesOp::Set)
}
