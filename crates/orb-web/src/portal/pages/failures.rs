//! Failures and dead jobs: retry now or dismiss a dead job; bookings with a failure; deletions held by the
//! mass-deletion guard, to approve or reject. Each action leaves one audit row.

use askama::Template;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use orb_core::RoomId;
use orb_store::{BookingFilter, Job, JobId, JobStatus};
use serde::Serialize;

use super::bookings::room_names;
use super::{Layout, Notice, back, render};
use crate::portal::backend::HeldDeletion;
use crate::portal::error::PortalError;
use crate::portal::scope::Scope;
use crate::portal::view::{BookingView, when};

/// A dead job as shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadJob {
    /// Id.
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// When it died.
    pub died: String,
    /// Attempts made.
    pub attempts: u32,
    /// Its last error.
    pub error: String,
    /// Its correlation id.
    pub correlation_id: String,
}

/// Dead jobs as shown, in the tenant's zone.
pub fn dead_jobs(jobs: &[Job], zone: chrono_tz::Tz) -> Vec<DeadJob> {
    jobs.iter()
        .map(|j| DeadJob {
            id: j.id.0,
            kind: j.kind.clone(),
            died: j.finished_at.map(|at| when(at, zone)).unwrap_or_default(),
            attempts: j.attempts,
            error: j.last_error.clone().unwrap_or_default(),
            correlation_id: j.correlation_id.map(|c| c.to_string()).unwrap_or_default(),
        })
        .collect()
}

/// Deletions held by the guard as shown: the room, how many, since when (in the tenant's zone).
struct HeldRow {
    room_id: String,
    mailbox: String,
    count: usize,
    since: String,
}

#[derive(Template)]
#[template(path = "failures.html")]
struct FailuresPage {
    layout: Layout,
    dead: Vec<DeadJob>,
    failed: Vec<BookingView>,
    held: Vec<HeldRow>,
}

/// `GET /t/{tenant}/failures`.
pub async fn page(scope: Scope, Query(n): Query<Notice>) -> Result<Response, PortalError> {
    let policy = scope.policy().await?;
    let dead = dead_jobs(&scope.jobs(JobStatus::Dead).await?, policy.zone);
    let rooms = room_names(&scope).await?;
    let failed = scope
        .bookings(&BookingFilter { failed_only: true, limit: Some(200), ..BookingFilter::default() })
        .await?
        .iter()
        .map(|b| BookingView::new(b, &rooms, &policy.hidden_fields, policy.zone))
        .collect();
    let held = scope
        .state()
        .backend
        .held_deletions(scope.tenant.id)
        .await?
        .into_iter()
        .map(|h: HeldDeletion| HeldRow {
            room_id: h.room_id.to_string(),
            mailbox: h.mailbox,
            count: h.count,
            since: when(h.held_at, policy.zone),
        })
        .collect();
    let layout = Layout::of(&scope, "failures", n.notice);
    Ok(render(&FailuresPage { layout, dead, failed, held })?.into_response())
}

fn job_id(text: &str) -> Result<JobId, PortalError> {
    text.parse::<i64>().map(JobId).map_err(|_| PortalError::NotFound)
}

fn room_id(text: &str) -> Result<RoomId, PortalError> {
    text.parse().map_err(|_| PortalError::NotFound)
}

fn here(scope: &Scope) -> String {
    format!("/t/{}/failures", scope.tenant.name)
}

/// htmx requests get the message to swap in; others are redirected back with it.
fn answer(scope: &Scope, headers: &HeaderMap, message: &str) -> Response {
    if headers.contains_key("hx-request") {
        let escaped = crate::portal::error::html_escape(message);
        axum::response::Html(format!("<span class=\"done\">{escaped}</span>")).into_response()
    } else {
        back(&here(scope), message)
    }
}

/// `POST /t/{tenant}/jobs/{id}/retry`.
pub async fn retry(
    scope: Scope,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, PortalError> {
    let id = job_id(&id)?;
    scope.retry_job(id).await?;
    Ok(answer(&scope, &headers, &format!("Job {} is queued again.", id.0)))
}

/// `POST /t/{tenant}/jobs/{id}/dismiss`.
pub async fn dismiss(
    scope: Scope,
    headers: HeaderMap,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, PortalError> {
    let id = job_id(&id)?;
    scope.dismiss_job(id).await?;
    Ok(answer(&scope, &headers, &format!("Job {} is dismissed.", id.0)))
}

/// `POST /t/{tenant}/deletions/{room}/approve`.
pub async fn approve(
    scope: Scope,
    headers: HeaderMap,
    Path((_, room)): Path<(String, String)>,
) -> Result<Response, PortalError> {
    let done = scope.decide_deletions(room_id(&room)?, true).await?;
    Ok(answer(&scope, &headers, &done))
}

/// `POST /t/{tenant}/deletions/{room}/reject`.
pub async fn reject(
    scope: Scope,
    headers: HeaderMap,
    Path((_, room)): Path<(String, String)>,
) -> Result<Response, PortalError> {
    let done = scope.decide_deletions(room_id(&room)?, false).await?;
    Ok(answer(&scope, &headers, &done))
}
