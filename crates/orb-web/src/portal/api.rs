//! The admin JSON API under `/api/v1`: the same data and actions as the pages, with the same authorisation
//! (a bearer token per user, read or write scope, revocable; or the browser session) and the same audit
//! rows, and its OpenAPI document at `/api/openapi.json`, generated from these handlers' annotations.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use orb_store::{JobId, JobStatus, Role};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};

use super::PortalState;
use super::error::ApiError;
use super::pages::audit::{AuditQuery, AuditRow, rows};
use super::pages::bookings::{BookingQuery, booking_id, explain, search};
use super::pages::dashboard::{Dashboard, gather};
use super::pages::failures::{DeadJob, dead_jobs};
use super::scope::Scope;
use super::session::Principal;

/// A [`Scope`] whose refusals are answered as JSON.
pub struct ApiScope(pub Scope);

impl FromRequestParts<PortalState> for ApiScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        Ok(Self(Scope::from_request_parts(parts, state).await?))
    }
}

/// A [`Principal`] whose refusals are answered as JSON.
pub struct ApiPrincipal(pub Principal);

impl FromRequestParts<PortalState> for ApiPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        Ok(Self(Principal::from_request_parts(parts, state).await?))
    }
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "ORB admin API", description = "Bookings, failures, rooms, audit and users of the tenants \
        you may see. Authenticate with `Authorization: Bearer <token>` (make one on your account page)."),
    paths(tenants, dashboard, bookings, booking, jobs, retry_job, dismiss_job, rooms, audit, users,
        super::pages::installation::api,
        super::api_admin::add_room, super::api_admin::enable_room, super::api_admin::disable_room,
        super::api_admin::room_suggestions, super::api_admin::deletions, super::api_admin::approve_deletions,
        super::api_admin::reject_deletions, super::api_admin::settings, super::api_admin::save_settings,
        super::api_admin::save_hidden_fields, super::api_admin::set_secret, super::api_admin::test_connection,
        super::api_admin::rotate_push_token,
        super::api_admin::invite, super::api_admin::set_role, super::api_admin::reset_mfa,
        super::api_admin::disable_user, super::api_admin::enable_user),
    components(schemas(Dashboard, DeadJob, AuditRow, RoomOut, UserOut, ActionOut,
        super::api_admin::NewRoomIn, super::api_admin::SecretIn, super::api_admin::PushTokenOut,
        super::api_admin::ConnectionOut,
        super::api_admin::InviteIn, super::api_admin::InvitedOut, super::api_admin::RoleIn,
        super::backend::RoomSuggestion, super::backend::SettingsSection, super::backend::SettingsField,
        super::backend::FieldKind,
        super::pages::dashboard::RoomHealth, super::backend::HeldDeletion,
        super::pages::bookings::TimelineEntry, super::pages::installation::InstallationAuditRow)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The tenants the caller may see.
#[utoipa::path(get, path = "/api/v1/tenants", responses((status = 200, description = "tenant names", body = [String])))]
pub async fn tenants(
    State(state): State<PortalState>,
    ApiPrincipal(p): ApiPrincipal,
) -> Result<Json<Vec<String>>, ApiError> {
    let all = state.store.list_tenants().await?;
    Ok(Json(
        all.into_iter()
            .filter(|t| p.user.role == Role::Operator || p.user.tenant_id == Some(t.id))
            .map(|t| t.name.to_string())
            .collect(),
    ))
}

/// The dashboard's figures.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/dashboard",
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = Dashboard), (status = 404, description = "no such tenant (for you)")))]
pub async fn dashboard(ApiScope(scope): ApiScope) -> Result<Json<Dashboard>, ApiError> {
    Ok(Json(gather(&scope).await?))
}

/// Bookings matching the filters (50 per page); hidden fields show as `(hidden)`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/bookings",
    params(("tenant" = String, Path, description = "tenant name"),
        ("room" = Option<String>, Query, description = "room id"),
        ("organizer" = Option<String>, Query, description = "organizer's e-mail address"),
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD, in the tenant's zone"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD, in the tenant's zone"),
        ("status" = Option<String>, Query, description = "all or failed"),
        ("cancelled" = Option<String>, Query, description = "1: include cancelled"),
        ("page" = Option<u32>, Query, description = "page, from 0")),
    responses((status = 200, description = "bookings, each an object of field → value", body = [Object]),
        (status = 400, description = "a filter is invalid")))]
pub async fn bookings(
    ApiScope(scope): ApiScope,
    Query(q): Query<BookingQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(search(&scope, &q).await?.iter().map(super::view::BookingView::to_json).collect()))
}

/// One booking and its timeline ("explain this booking"); the view is audited.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/bookings/{id}",
    params(("tenant" = String, Path, description = "tenant name"), ("id" = String, Path, description = "match id")),
    responses((status = 200, description = "the booking's fields and timeline", body = Object), (status = 404)))]
pub async fn booking(
    ApiScope(scope): ApiScope,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (view, timeline) = explain(&scope, booking_id(&id)?).await?;
    Ok(Json(json!({ "booking": view.to_json(), "timeline": timeline })))
}

/// Dead jobs.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/jobs",
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = [DeadJob])))]
pub async fn jobs(ApiScope(scope): ApiScope) -> Result<Json<Vec<DeadJob>>, ApiError> {
    let zone = scope.policy().await?.zone;
    Ok(Json(dead_jobs(&scope.jobs(JobStatus::Dead).await?, zone)))
}

/// What an action did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionOut {
    /// In words.
    pub done: String,
}

fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse::<i64>().map(JobId).map_err(|_| ApiError(super::error::PortalError::NotFound))
}

/// Puts a dead job back in the queue (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/jobs/{id}/retry",
    params(("tenant" = String, Path, description = "tenant name"), ("id" = i64, Path, description = "job id")),
    responses((status = 200, body = ActionOut), (status = 403), (status = 404)))]
pub async fn retry_job(
    ApiScope(scope): ApiScope,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ActionOut>, ApiError> {
    let id = job_id(&id)?;
    scope.retry_job(id).await?;
    Ok(Json(ActionOut { done: format!("job {} queued again", id.0) }))
}

/// Dismisses a dead job (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/jobs/{id}/dismiss",
    params(("tenant" = String, Path, description = "tenant name"), ("id" = i64, Path, description = "job id")),
    responses((status = 200, body = ActionOut), (status = 403), (status = 404)))]
pub async fn dismiss_job(
    ApiScope(scope): ApiScope,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ActionOut>, ApiError> {
    let id = job_id(&id)?;
    scope.dismiss_job(id).await?;
    Ok(Json(ActionOut { done: format!("job {} dismissed", id.0) }))
}

/// A room mapping.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomOut {
    /// Id.
    pub id: String,
    /// Exchange room mailbox.
    pub mailbox: String,
    /// TOPdesk location id.
    pub topdesk_location_id: String,
    /// Name.
    pub name: Option<String>,
    /// Synced.
    pub enabled: bool,
}

/// The tenant's rooms.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/rooms",
    params(("tenant" = String, Path, description = "tenant name")), responses((status = 200, body = [RoomOut])))]
pub async fn rooms(ApiScope(scope): ApiScope) -> Result<Json<Vec<RoomOut>>, ApiError> {
    Ok(Json(
        scope
            .rooms()
            .await?
            .into_iter()
            .map(|r| RoomOut {
                id: r.id.to_string(),
                mailbox: r.mailbox.to_string(),
                topdesk_location_id: r.topdesk_location_id.to_string(),
                name: r.display_name,
                enabled: r.enabled,
            })
            .collect(),
    ))
}

/// The tenant's audit log, newest first (at most 1,000 rows).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/audit",
    params(("tenant" = String, Path, description = "tenant name"),
        ("actor" = Option<String>, Query, description = "who"),
        ("action" = Option<String>, Query, description = "action prefix"),
        ("from" = Option<String>, Query, description = "first day, YYYY-MM-DD, in the tenant's zone"),
        ("to" = Option<String>, Query, description = "last day, YYYY-MM-DD, in the tenant's zone")),
    responses((status = 200, body = [AuditRow])))]
pub async fn audit(
    ApiScope(scope): ApiScope,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    let zone = scope.policy().await?.zone;
    Ok(Json(rows(&scope.audit_log(&q.filter(1000, zone)?).await?, chrono_tz::UTC)))
}

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    /// Id.
    pub id: i64,
    /// E-mail.
    pub email: String,
    /// Role.
    pub role: String,
    /// Second factor on.
    pub mfa: bool,
    /// Disabled.
    pub disabled: bool,
}

/// The tenant's users (tenant-admins and operators).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/users",
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = [UserOut]), (status = 403)))]
pub async fn users(ApiScope(scope): ApiScope) -> Result<Json<Vec<UserOut>>, ApiError> {
    if !scope.principal.user.role.can_write() {
        return Err(ApiError(super::error::PortalError::Forbidden));
    }
    Ok(Json(
        scope
            .users()
            .await?
            .into_iter()
            .map(|u| UserOut {
                id: u.id.0,
                email: u.email.to_string(),
                role: u.role.to_string(),
                mfa: u.totp_enabled,
                disabled: u.disabled,
            })
            .collect(),
    ))
}
