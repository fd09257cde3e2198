//! The dashboard: subscription health and expiry per room, the last TOPdesk poll, queue depth and the
//! oldest job, dead jobs, failures per side, bookings synced today, held mass deletions.

use askama::Template;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use orb_core::Side;
use orb_store::{BookingFilter, JobStatus};
use serde::Serialize;

use super::{Layout, Notice, render};
use crate::portal::backend::HeldDeletion;
use crate::portal::error::PortalError;
use crate::portal::scope::Scope;
use crate::portal::view::when;

/// One room's subscription state.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoomHealth {
    /// The room mailbox.
    pub mailbox: String,
    /// Whether the room is synced.
    pub enabled: bool,
    /// `ok`, `expiring` (within 12 hours), `expired` or `missing`.
    pub state: &'static str,
    /// When its subscription expires, if it has one.
    pub expires: Option<String>,
}

/// The dashboard's figures (also the API's `dashboard`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// Rooms and their subscriptions.
    pub rooms: Vec<RoomHealth>,
    /// When the last TOPdesk poll finished.
    pub last_topdesk_poll: Option<String>,
    /// Jobs queued.
    pub queued: u64,
    /// Jobs running.
    pub running: u64,
    /// Dead jobs.
    pub dead: u64,
    /// How long the oldest due job has waited, in seconds.
    pub oldest_wait_seconds: Option<i64>,
    /// Bookings with a failure on the Exchange side.
    pub failed_exchange: usize,
    /// Bookings with a failure on the TOPdesk side.
    pub failed_topdesk: usize,
    /// Bookings ORB changed since midnight (the tenant's zone).
    pub synced_today: u64,
    /// Deletions held by the mass-deletion guard.
    pub held: Vec<HeldDeletion>,
    /// Paused sides.
    pub paused: Vec<String>,
    /// Whether the tenant has settings.
    pub configured: bool,
}

fn subscription_state(expires: Option<DateTime<Utc>>, now: DateTime<Utc>) -> &'static str {
    match expires {
        None => "missing",
        Some(at) if at <= now => "expired",
        Some(at) if at - now < Duration::hours(12) => "expiring",
        Some(_) => "ok",
    }
}

/// Gathers the dashboard of a scope.
pub async fn gather(scope: &Scope) -> Result<Dashboard, PortalError> {
    let now = scope.now();
    let policy = scope.policy().await?;
    let status = scope.state().backend.status(scope.tenant.id).await?;
    let subscriptions = scope.subscriptions().await?;
    let rooms = scope
        .rooms()
        .await?
        .into_iter()
        .map(|room| {
            let expires = subscriptions.iter().filter(|s| s.room_id == room.id).map(|s| s.expires_at).max();
            RoomHealth {
                mailbox: room.mailbox.to_string(),
                enabled: room.enabled,
                state: subscription_state(expires, now),
                expires: expires.map(|at| when(at, policy.zone)),
            }
        })
        .collect();
    let queue = scope.queue().await?;
    let failed = scope.bookings(&BookingFilter { failed_only: true, ..BookingFilter::default() }).await?;
    let midnight = now
        .with_timezone(&policy.zone)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(policy.zone).earliest())
        .map_or(now - Duration::hours(24), |t| t.with_timezone(&Utc));
    Ok(Dashboard {
        rooms,
        last_topdesk_poll: status.last_topdesk_poll.map(|at| when(at, policy.zone)),
        queued: queue.queued,
        running: queue.running,
        dead: scope.jobs(JobStatus::Dead).await?.len() as u64,
        oldest_wait_seconds: queue.oldest_due.map(|at| (now - at).num_seconds().max(0)),
        failed_exchange: failed.iter().filter(|b| b.failed_processor == Some(Side::Exchange)).count(),
        failed_topdesk: failed.iter().filter(|b| b.failed_processor == Some(Side::Topdesk)).count(),
        synced_today: scope.changed_since(midnight).await?,
        held: scope.state().backend.held_deletions(scope.tenant.id).await?,
        paused: status.paused,
        configured: status.configured,
    })
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    d: Dashboard,
}

/// `GET /t/{tenant}`.
pub async fn page(scope: Scope, Query(n): Query<Notice>) -> Result<Response, PortalError> {
    let d = gather(&scope).await?;
    Ok(render(&DashboardPage { layout: Layout::of(&scope, "dashboard", n.notice), d })?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_states() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z").unwrap().with_timezone(&Utc);
        let check = |expires: Option<i64>, expected: &str| {
            assert_eq!(subscription_state(expires.map(|h| now + Duration::hours(h)), now), expected);
        };
        check(None, "missing");
        check(Some(-1), "expired");
        check(Some(0), "expired");
        check(Some(11), "expiring");
        check(Some(13), "ok");
    }
}
