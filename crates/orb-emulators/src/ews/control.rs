//! The test-only control API under `/_emulator/` (no authentication).
//!
//! | route | does |
//! |---|---|
//! | `GET /requests` | the request log (operation, account, mailbox, `client-request-id`, `X-AnchorMailbox`, `asksForBody`, code, status, `auth` step, `connection`) |
//! | `GET /mailboxes/{m}/items` | a mailbox's live items, extended properties included |
//! | `GET /outbox` | every mail sent through EWS (sender, recipients, subject, body, when) |
//! | `GET /knobs`, `PUT /knobs` | `busy_count` + `back_off_ms` (ErrorServerBusy), `unavailable_count` + `retry_after_secs` (503), `ntlm_disabled` (Basic only) |
//! | `GET /subscriptions`, `GET /deliveries` | push subscriptions; every POST to a callback URL with its outcome |
//! | `GET /streamingSubscriptions`, `POST /streams/reset` | streaming subscriptions; cut every open `GetStreamingEvents` connection (a reset mid-stream) |
//! | `POST /tick` | status pings and delivery retries due at the clock's time |
//! | `GET /faultPlan`, `PUT /faultPlan` | the fault plan ([`crate::faults`]), rules keyed by SOAP `operation`; a bad plan is `400` saying which rule and what to change |

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{EwsEmulator, Knobs};
use crate::faults::FaultPlan;

pub(crate) fn router() -> Router<EwsEmulator> {
    Router::new()
        .route("/requests", get(|State(em): State<EwsEmulator>| async move { Json(em.requests()) }))
        .route(
            "/mailboxes/{mb}/items",
            get(|State(em): State<EwsEmulator>, Path(mb): Path<String>| async move {
                if em.mailboxes().contains(&mb.to_ascii_lowercase()) {
                    Ok(Json(em.items(&mb)))
                } else {
                    Err((StatusCode::NOT_FOUND, format!("no mailbox {mb}")))
                }
            }),
        )
        .route(
            "/knobs",
            get(|State(em): State<EwsEmulator>| async move { Json(em.knobs()) }).put(
                |State(em): State<EwsEmulator>, Json(k): Json<Knobs>| async move {
                    em.set_knobs(k);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/faultPlan",
            get(|State(em): State<EwsEmulator>| async move { Json(em.fault_plan()) }).put(
                |State(em): State<EwsEmulator>, Json(plan): Json<FaultPlan>| async move {
                    match plan.validate() {
                        Ok(()) => {
                            em.set_fault_plan(plan);
                            Ok(StatusCode::NO_CONTENT)
                        }
                        Err(e) => Err((StatusCode::BAD_REQUEST, e)),
                    }
                },
            ),
        )
        .route("/outbox", get(|State(em): State<EwsEmulator>| async move { Json(em.outbox()) }))
        .route("/subscriptions", get(|State(em): State<EwsEmulator>| async move { Json(em.subscriptions()) }))
        .route(
            "/streamingSubscriptions",
            get(|State(em): State<EwsEmulator>| async move { Json(em.streaming_subscriptions()) }),
        )
        .route(
            "/streams/reset",
            post(|State(em): State<EwsEmulator>| async move {
                em.reset_streams();
                StatusCode::NO_CONTENT
            }),
        )
        .route("/deliveries", get(|State(em): State<EwsEmulator>| async move { Json(em.deliveries()) }))
        .route(
            "/tick",
            post(|State(em): State<EwsEmulator>| async move {
                em.tick().await;
                StatusCode::NO_CONTENT
            }),
        )
}
