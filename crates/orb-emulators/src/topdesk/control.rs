//! The control API under `/_emulator/`: seed and inspect state, count and log requests, set faults (knobs
//! and the fault plan), and act as a
//! service-desk operator in TOPdesk (create, reschedule, move, cancel, make a series, archive). No auth;
//! never counted in the request counters; TOPdesk's rules apply to operator actions as to API calls.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use orb_topdesk::wire::*;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::state::{ApiError, DoubleBooking, SearchItem, SeriesOp, Settings, reject};
use super::{Account, Faults, Person, TopdeskEmulator};
use crate::faults::FaultPlan;

pub(super) fn router(emulator: TopdeskEmulator) -> Router {
    Router::new()
        .route("/_emulator/state", get(state))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/requests", delete(reset_requests))
        .route("/_emulator/accounts", post(add_account))
        .route("/_emulator/persons", post(add_person))
        .route("/_emulator/rooms", post(add_room))
        .route("/_emulator/rooms/{id}/doubleBooking", put(set_double_booking))
        .route("/_emulator/cancellationReasons", post(add_cancellation_reason))
        .route("/_emulator/rejectionReasons", post(add_rejection_reason))
        .route("/_emulator/settings", put(set_settings))
        .route("/_emulator/faults", get(get_faults).put(set_faults))
        .route("/_emulator/faultPlan", get(get_fault_plan).put(set_fault_plan))
        .route("/_emulator/log", get(request_log))
        .route("/_emulator/reservations", post(operator_create))
        .route("/_emulator/reservations/{identifier}/reschedule", post(operator_reschedule))
        .route("/_emulator/reservations/{identifier}/move", post(operator_move))
        .route("/_emulator/reservations/{identifier}/cancel", post(operator_cancel))
        .route("/_emulator/reservations/{identifier}/makeRecurrent", post(operator_make_recurrent))
        .route("/_emulator/reservations/{identifier}/archive", post(operator_archive))
        .with_state(emulator)
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| reject("invalidRequestBody", None, format!("The request body is malformed: {e}")))
}

async fn state(State(emu): State<TopdeskEmulator>) -> Response {
    let reservations = emu.reservations();
    let shared = emu.lock();
    let s = &shared.state;
    Json(json!({
        "reservations": reservations,
        "persons": s.persons,
        "rooms": s.rooms,
        "accounts": s.accounts.keys().collect::<Vec<_>>(),
        "cancellationReasons": s.cancellation_reasons,
        "rejectionReasons": s.rejection_reasons,
        "settings": s.settings,
        "faults": shared.faults,
    }))
    .into_response()
}

async fn requests(State(emu): State<TopdeskEmulator>) -> Response {
    Json(emu.request_counts()).into_response()
}

async fn reset_requests(State(emu): State<TopdeskEmulator>) -> StatusCode {
    let mut shared = emu.lock();
    shared.counts = Default::default();
    shared.log.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAccount {
    login_name: String,
    application_password: String,
    #[serde(default)]
    expires: Option<DateTime<Utc>>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    archived: bool,
}

async fn add_account(State(emu): State<TopdeskEmulator>, bytes: Bytes) -> Result<Response, ApiError> {
    let new: NewAccount = parse(&bytes)?;
    let mut shared = emu.lock();
    let accounts = &mut shared.state.accounts;
    let id = accounts.get(&new.login_name).map_or_else(Uuid::new_v4, |a| a.id);
    let account = accounts.entry(new.login_name.clone()).or_insert_with(|| Account {
        id,
        login: new.login_name.clone(),
        passwords: Vec::new(),
        first_name: "API".into(),
        sur_name: new.login_name.clone(),
        email: None,
        archived: false,
    });
    account.passwords.push((new.application_password, new.expires));
    account.email = new.email.or(account.email.take());
    account.archived = new.archived;
    Ok((StatusCode::CREATED, Json(json!({ "id": id, "loginName": new.login_name }))).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewPerson {
    first_name: String,
    sur_name: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    tas_login_name: Option<String>,
}

async fn add_person(State(emu): State<TopdeskEmulator>, bytes: Bytes) -> Result<Response, ApiError> {
    let new: NewPerson = parse(&bytes)?;
    let person = Person {
        id: PersonId(Uuid::new_v4()),
        first_name: new.first_name,
        sur_name: new.sur_name,
        email: new.email,
        archived: new.archived,
        branch: None,
        tas_login_name: new.tas_login_name,
    };
    let dto = person.to_dto();
    emu.lock().state.persons.push(person);
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewRoom {
    name: String,
    #[serde(default)]
    block_time: i32,
    #[serde(default)]
    double_booking: DoubleBooking,
    #[serde(default)]
    capacity: Option<i32>,
    #[serde(default = "yes")]
    reservable: bool,
    #[serde(default)]
    mailbox: Option<String>,
}

fn yes() -> bool {
    true
}

async fn add_room(State(emu): State<TopdeskEmulator>, bytes: Bytes) -> Result<Response, ApiError> {
    let new: NewRoom = parse(&bytes)?;
    let id = emu.add_room(&new.name, new.block_time, new.double_booking);
    let dto = emu.with_state(|s| {
        let room = s.rooms.iter_mut().find(|r| r.id == id).expect("just added");
        room.capacity = new.capacity.or(room.capacity);
        room.reservable = new.reservable;
        room.text1 = new.mailbox;
        room.to_extended()
    });
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

#[derive(Deserialize)]
struct Mode {
    mode: DoubleBooking,
}

async fn set_double_booking(
    State(emu): State<TopdeskEmulator>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let mode: Mode = parse(&bytes)?;
    emu.with_state(|s| {
        let room = s.rooms.iter_mut().find(|r| r.id.as_str() == id).ok_or(ApiError::NotFound)?;
        room.double_booking = mode.mode;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

#[derive(Deserialize)]
struct NewReason {
    name: String,
    #[serde(default)]
    default: bool,
}

async fn add_cancellation_reason(
    State(emu): State<TopdeskEmulator>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let new: NewReason = parse(&bytes)?;
    let id = emu.add_cancellation_reason(&new.name, new.default);
    Ok((StatusCode::CREATED, Json(IdName { id: Some(id), name: Some(new.name) })).into_response())
}

async fn add_rejection_reason(
    State(emu): State<TopdeskEmulator>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let new: NewReason = parse(&bytes)?;
    let id = Uuid::new_v4();
    emu.with_state(|s| {
        s.rejection_reasons.push(SearchItem { id, name: new.name.clone(), archived: false });
        if new.default {
            s.settings.default_rejection_reason = Some(id);
        }
    });
    Ok((StatusCode::CREATED, Json(IdName { id: Some(id), name: Some(new.name) })).into_response())
}

async fn set_settings(State(emu): State<TopdeskEmulator>, bytes: Bytes) -> Result<Response, ApiError> {
    let settings: Settings = parse(&bytes)?;
    emu.with_state(|s| s.settings = settings);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_faults(State(emu): State<TopdeskEmulator>) -> Response {
    Json(emu.lock().faults.clone()).into_response()
}

async fn set_faults(State(emu): State<TopdeskEmulator>, bytes: Bytes) -> Result<Response, ApiError> {
    let faults: Faults = parse(&bytes)?;
    if !(0.0..=1.0).contains(&faults.error_rate) {
        return Err(reject("invalidValue", Some("errorRate"), "errorRate must be between 0 and 1"));
    }
    faults.plan.validate().map_err(|e| reject("invalidValue", Some("plan"), e))?;
    emu.set_faults(faults);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_fault_plan(State(emu): State<TopdeskEmulator>) -> Response {
    Json(emu.fault_plan()).into_response()
}

async fn set_fault_plan(State(emu): State<TopdeskEmulator>, bytes: Bytes) -> Result<Response, ApiError> {
    let plan: FaultPlan = parse(&bytes)?;
    plan.validate().map_err(|e| reject("invalidValue", Some("rules"), e))?;
    emu.set_fault_plan(plan);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn request_log(State(emu): State<TopdeskEmulator>) -> Response {
    Json(emu.request_log()).into_response()
}

fn answer(emu: &TopdeskEmulator, id: ReservationId) -> Response {
    let shared = emu.lock();
    Json(shared.state.to_dto(&shared.state.reservations[&id])).into_response()
}

async fn operator_create(State(emu): State<TopdeskEmulator>, bytes: Bytes) -> Result<Response, ApiError> {
    let dto: CreateReservationDto = parse(&bytes)?;
    let now = emu.now();
    let id = emu.with_state(|s| s.create(dto, now))?;
    Ok((StatusCode::CREATED, answer(&emu, id)).into_response())
}

fn act(
    emu: &TopdeskEmulator,
    identifier: &str,
    f: impl FnOnce(&mut super::State, ReservationId, DateTime<Utc>) -> Result<(), ApiError>,
) -> Result<Response, ApiError> {
    let now = emu.now();
    let id = emu.with_state(|s| {
        let id = s.find(identifier)?;
        f(s, id, now).map(|()| id)
    })?;
    Ok(answer(emu, id))
}

async fn operator_reschedule(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let dto: RescheduleReservationDto = parse(&bytes)?;
    act(&emu, &identifier, |s, id, now| s.reschedule(id, dto, now))
}

async fn operator_move(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let dto: MoveFacilityDto = parse(&bytes)?;
    act(&emu, &identifier, |s, id, now| s.move_facility(id, dto, now))
}

async fn operator_cancel(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let reason: Option<LookupByName> = if bytes.is_empty() { None } else { Some(parse(&bytes)?) };
    act(&emu, &identifier, |s, id, now| s.cancel(id, reason, now))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MakeRecurrent {
    dates: Vec<chrono::NaiveDate>,
    #[serde(default)]
    allow_conflicts: bool,
}

async fn operator_make_recurrent(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body: MakeRecurrent = parse(&bytes)?;
    let now = emu.now();
    let ids = emu.with_state(|s| {
        let id = s.find(&identifier)?;
        s.series(id, body.dates, SeriesOp::Make, body.allow_conflicts, now)
    })?;
    let shared = emu.lock();
    let list: Vec<Value> = ids
        .iter()
        .map(|id| {
            serde_json::to_value(shared.state.to_dto(&shared.state.reservations[id])).unwrap_or(Value::Null)
        })
        .collect();
    Ok(Json(json!({ "results": list })).into_response())
}

#[derive(Deserialize, Default)]
struct ArchiveQuery {
    #[serde(default)]
    archived: Option<bool>,
}

async fn operator_archive(
    State(emu): State<TopdeskEmulator>,
    Path(identifier): Path<String>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    act(&emu, &identifier, |s, id, now| {
        let at = s.touch(now);
        let r = s.reservations.get_mut(&id).expect("found");
        r.archived = q.archived.unwrap_or(true);
        r.modification_date = at;
        Ok(())
    })
}
