//! The test-only control API under `/_emulator/`: no authentication, no throttling.
//!
//! | route | does |
//! |---|---|
//! | `POST /apps` `{tenant, clientId, secret?, certificate?}` | registers an app (certificate: base64 DER) |
//! | `POST /users` `{tenant, address, displayName}` | adds a user mailbox |
//! | `POST /rooms` `{tenant, address, displayName, info?}` | adds a room mailbox (settings in `info.settings`) |
//! | `PUT /rooms/{address}/settings` | changes a room's DeleteSubject / AddOrganizerToSubject / AllowConflicts … |
//! | `POST /book` `{organizer, room, subject, start, end, timeZone?, recurrence?}` | a person books a room in Outlook |
//! | `POST /mailboxes/{m}/events`, `PATCH …/{id}`, `DELETE …/{id}`, `POST …/{id}/cancel` | a person creates, retimes or moves (PATCH), deletes or cancels an item or one occurrence |
//! | `GET /mailboxes/{m}/events` | the mailbox's items with extended properties |
//! | `POST /mailboxes/{m}/expire-delta` `{mode: gone \| syncStateNotFound}` | invalidates its delta tokens |
//! | `GET /counters`, `GET /requests`, `GET /outbox` | per-mailbox counters, request log, sent mail |
//! | `GET /knobs`, `PUT /knobs` | throttling and fault knobs (notification faults in `notifications`, the fault plan in `faultPlan`) |
//! | `GET /faultPlan`, `PUT /faultPlan` | only the fault plan ([`crate::faults`]): error statuses, timeouts, resets, slow bodies |
//! | `GET /subscriptions` | the subscriptions (id, mailbox, expiry, rich, pending reauthorization) |
//! | `POST /subscriptions/{id}/lifecycle` `{event}` | sends a lifecycle notification (`subscriptionRemoved` also removes it) |
//! | `POST /tick` | runs the expiry sweep at the clock's time (expired removed, `reauthorizationRequired` sent) |
//! | `GET /notifications` | every outgoing POST: handshakes, change and lifecycle notifications, with outcome |
//! | `GET /jwks`, `POST /jwks/rotate` | the validation-token signing keys; a new signing key |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use orb_graph::model::{
    Attendee, DateTimeTimeZone, Event, LifecycleEventType, Location, PatternedRecurrence,
};
use serde::Deserialize;

use super::api::ApiError;
use super::{DeltaExpiry, GraphEmulator, Knobs, RoomInfo, RoomSettings, View};
use crate::faults::FaultPlan;

pub(crate) fn router() -> Router<GraphEmulator> {
    Router::new()
        .route("/apps", post(add_app))
        .route("/users", post(add_user))
        .route("/rooms", post(add_room))
        .route("/rooms/{address}/settings", put(room_settings))
        .route("/book", post(book))
        .route("/mailboxes/{mb}/events", get(list).post(create))
        .route("/mailboxes/{mb}/events/{id}", patch(update).delete(delete))
        .route("/mailboxes/{mb}/events/{id}/cancel", post(cancel))
        .route("/mailboxes/{mb}/expire-delta", post(expire_delta))
        .route("/counters", get(|State(em): State<GraphEmulator>| async move { Json(em.counters()) }))
        .route("/requests", get(|State(em): State<GraphEmulator>| async move { Json(em.requests()) }))
        .route("/outbox", get(|State(em): State<GraphEmulator>| async move { Json(em.outbox()) }))
        .route("/knobs", get(get_knobs).put(put_knobs))
        .route("/faultPlan", get(get_fault_plan).put(put_fault_plan))
        .route(
            "/subscriptions",
            get(|State(em): State<GraphEmulator>| async move { Json(em.subscriptions()) }),
        )
        .route("/subscriptions/{id}/lifecycle", post(lifecycle))
        .route(
            "/tick",
            post(|State(em): State<GraphEmulator>| async move {
                em.tick();
                StatusCode::NO_CONTENT
            }),
        )
        .route("/notifications", get(|State(em): State<GraphEmulator>| async move { Json(em.deliveries()) }))
        .route("/jwks", get(super::subscriptions::jwks))
        .route("/jwks/rotate", post(rotate))
}

#[derive(Deserialize)]
struct Lifecycle {
    event: LifecycleEventType,
}

async fn lifecycle(
    State(em): State<GraphEmulator>,
    Path(id): Path<String>,
    Json(body): Json<Lifecycle>,
) -> Result<StatusCode, ApiError> {
    if em.send_lifecycle(&id, body.event) {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::new(404, "ResourceNotFound", format!("no subscription {id}")))
    }
}

async fn rotate(State(em): State<GraphEmulator>) -> Result<Json<String>, ApiError> {
    Ok(Json(em.rotate_signing_key()?))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewApp {
    tenant: String,
    client_id: String,
    secret: Option<String>,
    certificate: Option<String>,
}

async fn add_app(State(em): State<GraphEmulator>, Json(app): Json<NewApp>) -> Result<StatusCode, ApiError> {
    if let Some(secret) = &app.secret {
        em.add_app_secret(&app.tenant, &app.client_id, secret);
    }
    if let Some(cert) = &app.certificate {
        let der = super::auth::b64(cert)
            .ok_or_else(|| ApiError::new(400, "BadCertificate", "certificate must be base64 of the DER"))?;
        em.add_app_certificate(&app.tenant, &app.client_id, &der);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewMailbox {
    tenant: String,
    address: String,
    display_name: String,
    #[serde(default)]
    info: RoomInfo,
}

async fn add_user(State(em): State<GraphEmulator>, Json(m): Json<NewMailbox>) -> Json<String> {
    Json(em.add_user(&m.tenant, &m.address, &m.display_name))
}

async fn add_room(State(em): State<GraphEmulator>, Json(m): Json<NewMailbox>) -> Json<String> {
    Json(em.add_room(&m.tenant, &m.address, &m.display_name, m.info))
}

async fn room_settings(
    State(em): State<GraphEmulator>,
    Path(address): Path<String>,
    Json(settings): Json<RoomSettings>,
) -> Result<StatusCode, ApiError> {
    if em.set_room_settings(&address, settings) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(404, "NoSuchRoom", format!("no room mailbox {address}")))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Booking {
    organizer: String,
    room: String,
    subject: String,
    start: String,
    end: String,
    time_zone: Option<String>,
    recurrence: Option<PatternedRecurrence>,
}

async fn book(State(em): State<GraphEmulator>, Json(b): Json<Booking>) -> Result<Response, ApiError> {
    let zone = b.time_zone.unwrap_or_else(|| "UTC".to_owned());
    let room_name = em.lock().mailboxes.get(&b.room.to_ascii_lowercase()).map(|m| m.display_name.clone());
    let room_name = room_name.unwrap_or_else(|| b.room.clone());
    let input = Event {
        subject: Some(b.subject),
        start: Some(DateTimeTimeZone { date_time: b.start, time_zone: Some(zone.clone()) }),
        end: Some(DateTimeTimeZone { date_time: b.end, time_zone: Some(zone) }),
        location: Some(Location::room(&room_name, &b.room)),
        attendees: Some(vec![Attendee::resource(&b.room, Some(&room_name))]),
        recurrence: b.recurrence,
        ..Event::default()
    };
    let created = em.create_in(&b.organizer, &input, &View::default())?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list(State(em): State<GraphEmulator>, Path(mb): Path<String>) -> Result<Json<Vec<Event>>, ApiError> {
    Ok(Json(em.events(&mb)?))
}

async fn create(
    State(em): State<GraphEmulator>,
    Path(mb): Path<String>,
    Json(input): Json<Event>,
) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(em.create_in(&mb, &input, &View::default())?)).into_response())
}

async fn update(
    State(em): State<GraphEmulator>,
    Path((mb, id)): Path<(String, String)>,
    Json(input): Json<Event>,
) -> Result<Json<Event>, ApiError> {
    Ok(Json(em.update_in(&mb, &id, &input, &View::default())?))
}

async fn delete(
    State(em): State<GraphEmulator>,
    Path((mb, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    em.remove_in(&mb, &id, false)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn cancel(
    State(em): State<GraphEmulator>,
    Path((mb, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    em.remove_in(&mb, &id, true)?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Expire {
    mode: DeltaExpiry,
}

async fn expire_delta(
    State(em): State<GraphEmulator>,
    Path(mb): Path<String>,
    body: Option<Json<Expire>>,
) -> Result<StatusCode, ApiError> {
    let how = body.map(|Json(e)| e.mode).unwrap_or_default();
    if em.expire_delta_tokens(&mb, how) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(404, "ErrorInvalidUser", format!("no mailbox {mb}")))
    }
}

async fn get_knobs(State(em): State<GraphEmulator>) -> Json<Knobs> {
    Json(em.knobs())
}

async fn put_knobs(
    State(em): State<GraphEmulator>,
    Json(knobs): Json<Knobs>,
) -> Result<StatusCode, ApiError> {
    knobs.fault_plan.validate().map_err(|e| ApiError::new(400, "invalidFaultPlan", e))?;
    em.set_knobs(knobs);
    Ok(StatusCode::NO_CONTENT)
}

async fn get_fault_plan(State(em): State<GraphEmulator>) -> Json<FaultPlan> {
    Json(em.fault_plan())
}

async fn put_fault_plan(
    State(em): State<GraphEmulator>,
    Json(plan): Json<FaultPlan>,
) -> Result<StatusCode, ApiError> {
    plan.validate().map_err(|e| ApiError::new(400, "invalidFaultPlan", e))?;
    em.set_fault_plan(plan);
    Ok(StatusCode::NO_CONTENT)
}
