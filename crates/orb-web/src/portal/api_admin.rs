//! The admin JSON API's changes: rooms (map, enable, disable, suggestions), held mass deletions (list,
//! approve, reject), settings (read the form, save values, hidden fields), write-only secrets, the TOPdesk
//! push token, and the tenant's users (invite, role, second-factor reset, disable, enable). The same
//! [`Scope`](super::scope::Scope) methods and backend calls as the pages, so the same role checks and the
//! same one audit row per action; a read-scope token gets `403`.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use orb_core::{EmailAddress, RoomId};
use orb_store::{NewUser, Role, UserId};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::{ActionOut, ApiScope, RoomOut};
use super::backend::{BackendError, HeldDeletion, RoomSuggestion, SettingsSection};
use super::error::{ApiError, PortalError};
use super::pages::rooms::{RoomForm, new_room};

fn room_out(r: orb_store::Room) -> RoomOut {
    RoomOut {
        id: r.id.to_string(),
        mailbox: r.mailbox.to_string(),
        topdesk_location_id: r.topdesk_location_id.to_string(),
        name: r.display_name,
        enabled: r.enabled,
    }
}

fn room_id(text: &str) -> Result<RoomId, ApiError> {
    text.parse().map_err(|_| ApiError(PortalError::NotFound))
}

/// A room to map.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewRoomIn {
    /// The Exchange room mailbox.
    pub mailbox: String,
    /// The TOPdesk location id.
    pub topdesk_location_id: String,
    /// A name to show.
    #[serde(default)]
    pub name: Option<String>,
}

/// Maps a room (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/rooms", request_body = NewRoomIn,
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 201, body = RoomOut), (status = 400), (status = 403)))]
pub async fn add_room(
    ApiScope(scope): ApiScope,
    Json(body): Json<NewRoomIn>,
) -> Result<(StatusCode, Json<RoomOut>), ApiError> {
    scope.require_write()?;
    let form = RoomForm::new(body.mailbox, body.topdesk_location_id, body.name);
    let created = scope.add_room(&new_room(&form)?).await?;
    Ok((StatusCode::CREATED, Json(room_out(created))))
}

/// Syncs a room again (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/rooms/{room}/enable",
    params(("tenant" = String, Path, description = "tenant name"), ("room" = String, Path, description = "room id")),
    responses((status = 200, body = RoomOut), (status = 403), (status = 404)))]
pub async fn enable_room(
    ApiScope(scope): ApiScope,
    Path((_, room)): Path<(String, String)>,
) -> Result<Json<RoomOut>, ApiError> {
    Ok(Json(room_out(scope.set_room_enabled(room_id(&room)?, true).await?)))
}

/// Stops syncing a room (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/rooms/{room}/disable",
    params(("tenant" = String, Path, description = "tenant name"), ("room" = String, Path, description = "room id")),
    responses((status = 200, body = RoomOut), (status = 403), (status = 404)))]
pub async fn disable_room(
    ApiScope(scope): ApiScope,
    Path((_, room)): Path<(String, String)>,
) -> Result<Json<RoomOut>, ApiError> {
    Ok(Json(room_out(scope.set_room_enabled(room_id(&room)?, false).await?)))
}

/// Unmapped Exchange rooms and TOPdesk locations that look alike (write scope: it asks both sides).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/rooms/suggestions",
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = [RoomSuggestion]), (status = 403)))]
pub async fn room_suggestions(ApiScope(scope): ApiScope) -> Result<Json<Vec<RoomSuggestion>>, ApiError> {
    scope.require_write()?;
    Ok(Json(scope.state().backend.room_suggestions(scope.tenant.id).await?))
}

/// Deletions held by the mass-deletion guard.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/deletions",
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = [HeldDeletion])))]
pub async fn deletions(ApiScope(scope): ApiScope) -> Result<Json<Vec<HeldDeletion>>, ApiError> {
    Ok(Json(scope.state().backend.held_deletions(scope.tenant.id).await?))
}

/// Carries out a room's held deletions (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/deletions/{room}/approve",
    params(("tenant" = String, Path, description = "tenant name"), ("room" = String, Path, description = "room id")),
    responses((status = 200, body = ActionOut), (status = 403), (status = 404)))]
pub async fn approve_deletions(
    ApiScope(scope): ApiScope,
    Path((_, room)): Path<(String, String)>,
) -> Result<Json<ActionOut>, ApiError> {
    Ok(Json(ActionOut { done: scope.decide_deletions(room_id(&room)?, true).await? }))
}

/// Refuses a room's held deletions (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/deletions/{room}/reject",
    params(("tenant" = String, Path, description = "tenant name"), ("room" = String, Path, description = "room id")),
    responses((status = 200, body = ActionOut), (status = 403), (status = 404)))]
pub async fn reject_deletions(
    ApiScope(scope): ApiScope,
    Path((_, room)): Path<(String, String)>,
) -> Result<Json<ActionOut>, ApiError> {
    Ok(Json(ActionOut { done: scope.decide_deletions(room_id(&room)?, false).await? }))
}

/// The settings form with the current values (write scope; secrets are never part of it).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/settings",
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = [SettingsSection]), (status = 403)))]
pub async fn settings(ApiScope(scope): ApiScope) -> Result<Json<Vec<SettingsSection>>, ApiError> {
    scope.require_write()?;
    Ok(Json(scope.state().backend.settings_form(scope.tenant.id).await?))
}

fn invalid_is_400(e: BackendError) -> ApiError {
    match e {
        BackendError::Invalid(message) => ApiError(PortalError::BadRequest(message)),
        e => ApiError(e.into()),
    }
}

/// Saves settings: dotted keys of the form to new values (lists one item per line); keys not given keep
/// their value (write scope). The whole document is checked first; nothing is stored when a value is wrong.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/settings", request_body = BTreeMap<String, String>,
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = ActionOut), (status = 400, description = "names the wrong field"), (status = 403)))]
pub async fn save_settings(
    ApiScope(scope): ApiScope,
    Json(values): Json<BTreeMap<String, String>>,
) -> Result<Json<ActionOut>, ApiError> {
    scope.require_write()?;
    let audit = scope.audit("settings.save", values.keys().cloned().collect::<Vec<_>>().join(", "));
    scope.state().backend.save_settings(scope.tenant.id, &values, &audit).await.map_err(invalid_is_400)?;
    Ok(Json(ActionOut { done: "settings saved".into() }))
}

/// Sets the booking fields hidden for everyone (write scope).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/settings/hidden-fields", request_body = [String],
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = ActionOut), (status = 400), (status = 403)))]
pub async fn save_hidden_fields(
    ApiScope(scope): ApiScope,
    Json(fields): Json<BTreeSet<String>>,
) -> Result<Json<ActionOut>, ApiError> {
    scope.require_write()?;
    if let Some(bad) = fields.iter().find(|f| !super::view::is_field(f)) {
        return Err(ApiError(PortalError::BadRequest(format!("{bad:?} is not a booking field"))));
    }
    let audit = scope.audit("settings.hidden_fields", fields.iter().cloned().collect::<Vec<_>>().join(", "));
    scope
        .state()
        .backend
        .save_hidden_fields(scope.tenant.id, &fields, &audit)
        .await
        .map_err(invalid_is_400)?;
    Ok(Json(ActionOut { done: format!("{} field(s) hidden", fields.len()) }))
}

/// A secret's value.
#[derive(Deserialize, ToSchema)]
pub struct SecretIn {
    /// The value (write-only: never returned).
    pub value: String,
}

/// Stores a secret; it is never returned (write scope).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/secrets/{name}", request_body = SecretIn,
    params(("tenant" = String, Path, description = "tenant name"), ("name" = String, Path, description = "secret name")),
    responses((status = 200, body = ActionOut), (status = 400), (status = 403), (status = 404)))]
pub async fn set_secret(
    ApiScope(scope): ApiScope,
    Path((_, name)): Path<(String, String)>,
    Json(body): Json<SecretIn>,
) -> Result<Json<ActionOut>, ApiError> {
    scope.require_write()?;
    let backend = &scope.state().backend;
    let field = backend
        .secret_fields()
        .into_iter()
        .find(|f| f.name == name)
        .ok_or(ApiError(PortalError::NotFound))?;
    if body.value.trim().is_empty() {
        return Err(ApiError(PortalError::BadRequest(format!("{}: the value is empty", field.label))));
    }
    let audit = scope.audit("secret.set", field.name);
    backend
        .set_secret(scope.tenant.id, field.name, SecretString::from(body.value), &audit)
        .await
        .map_err(invalid_is_400)?;
    Ok(Json(ActionOut { done: format!("{} stored", field.name) }))
}

/// A new push token.
#[derive(Serialize, ToSchema)]
pub struct PushTokenOut {
    /// The token (shown once).
    pub token: String,
    /// Where TOPdesk sends it.
    pub hook: String,
}

/// Makes (or rotates) the TOPdesk push token; the answer is the only time it is shown (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/push-token",
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 200, body = PushTokenOut), (status = 403)))]
pub async fn rotate_push_token(ApiScope(scope): ApiScope) -> Result<Json<PushTokenOut>, ApiError> {
    let token = scope.rotate_push_token().await?;
    Ok(Json(PushTokenOut { token, hook: format!("/hooks/topdesk/{}", scope.tenant.name) }))
}

/// What a connection test found.
#[derive(Serialize, ToSchema)]
pub struct ConnectionOut {
    /// Whether the side answered as it should.
    pub ok: bool,
    /// What was tried and what came back, in words (never a secret).
    pub detail: String,
}

/// Tries the tenant's saved settings and secrets against one side (`exchange` or `topdesk`), as the
/// settings page's "Test connection" button does (write scope; audited `settings.test_connection`).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/settings/test/{side}",
    params(("tenant" = String, Path, description = "tenant name"),
        ("side" = String, Path, description = "`exchange` or `topdesk`")),
    responses((status = 200, body = ConnectionOut), (status = 403), (status = 404)))]
pub async fn test_connection(
    ApiScope(scope): ApiScope,
    Path((_, side)): Path<(String, String)>,
) -> Result<Json<ConnectionOut>, ApiError> {
    scope.require_write()?;
    let side: orb_core::Side = side.parse().map_err(|_| ApiError(PortalError::NotFound))?;
    let check = scope.state().backend.test_connection(scope.tenant.id, side).await;
    let outcome = if check.ok { "ok" } else { "failed" };
    scope.record("settings.test_connection", format!("{side}: {outcome}")).await?;
    Ok(Json(ConnectionOut { ok: check.ok, detail: check.detail }))
}

/// A user to invite.
#[derive(Deserialize, ToSchema)]
pub struct InviteIn {
    /// Their e-mail address (their login).
    pub email: String,
    /// `tenant-admin` or `tenant-viewer`.
    pub role: String,
    /// Single sign-on only (no password).
    #[serde(default)]
    pub sso: bool,
}

/// An invited user.
#[derive(Serialize, ToSchema)]
pub struct InvitedOut {
    /// Their id.
    pub id: i64,
    /// Their one-time password (shown once; none for single sign-on).
    pub one_time_password: Option<String>,
}

fn tenant_role(text: &str) -> Result<Role, ApiError> {
    match text.parse::<Role>() {
        Ok(Role::TenantAdmin) => Ok(Role::TenantAdmin),
        Ok(Role::TenantViewer) => Ok(Role::TenantViewer),
        _ => Err(ApiError(PortalError::BadRequest(format!(
            "role {text:?}: use tenant-admin or tenant-viewer"
        )))),
    }
}

/// Invites a user into the tenant (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users", request_body = InviteIn,
    params(("tenant" = String, Path, description = "tenant name")),
    responses((status = 201, body = InvitedOut), (status = 400), (status = 403)))]
pub async fn invite(
    ApiScope(scope): ApiScope,
    Json(body): Json<InviteIn>,
) -> Result<(StatusCode, Json<InvitedOut>), ApiError> {
    scope.require_write()?;
    let email = EmailAddress::parse(body.email.trim()).map_err(|_| {
        ApiError(PortalError::BadRequest(format!("{:?} is not an e-mail address", body.email)))
    })?;
    let role = tenant_role(&body.role)?;
    let password = (!body.sso).then(orb_auth::generate_password);
    let password_hash = match &password {
        Some(p) => {
            Some(orb_auth::hash_password(p).map_err(|e| ApiError(PortalError::BadRequest(e.to_string())))?)
        }
        None => None,
    };
    let password_temporary = password_hash.is_some();
    let invited =
        NewUser { tenant_id: Some(scope.tenant.id), email, role, password_hash, password_temporary };
    let user = scope.add_user(invited).await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitedOut { id: user.id.0, one_time_password: password.map(|p| p.expose_secret().to_owned()) }),
    ))
}

fn user_id(text: &str) -> Result<UserId, ApiError> {
    text.parse::<i64>().map(UserId).map_err(|_| ApiError(PortalError::NotFound))
}

/// A new role.
#[derive(Deserialize, ToSchema)]
pub struct RoleIn {
    /// `tenant-admin` or `tenant-viewer`.
    pub role: String,
}

/// Changes a user's role (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{id}/role", request_body = RoleIn,
    params(("tenant" = String, Path, description = "tenant name"), ("id" = i64, Path, description = "user id")),
    responses((status = 200, body = ActionOut), (status = 400), (status = 403), (status = 404)))]
pub async fn set_role(
    ApiScope(scope): ApiScope,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<RoleIn>,
) -> Result<Json<ActionOut>, ApiError> {
    let role = tenant_role(&body.role)?;
    scope.set_user_role(user_id(&id)?, role).await?;
    Ok(Json(ActionOut { done: format!("role is now {role}") }))
}

/// Removes a user's second factor: they enrol again at their next login (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{id}/reset-mfa",
    params(("tenant" = String, Path, description = "tenant name"), ("id" = i64, Path, description = "user id")),
    responses((status = 200, body = ActionOut), (status = 403), (status = 404)))]
pub async fn reset_mfa(
    ApiScope(scope): ApiScope,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ActionOut>, ApiError> {
    scope.reset_user_mfa(user_id(&id)?).await?;
    Ok(Json(ActionOut { done: "second factor reset".into() }))
}

/// Disables a user: their sessions and API tokens end (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{id}/disable",
    params(("tenant" = String, Path, description = "tenant name"), ("id" = i64, Path, description = "user id")),
    responses((status = 200, body = ActionOut), (status = 400), (status = 403), (status = 404)))]
pub async fn disable_user(
    ApiScope(scope): ApiScope,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ActionOut>, ApiError> {
    scope.set_user_disabled(user_id(&id)?, true).await?;
    Ok(Json(ActionOut { done: "user disabled".into() }))
}

/// Enables a user again (write scope).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users/{id}/enable",
    params(("tenant" = String, Path, description = "tenant name"), ("id" = i64, Path, description = "user id")),
    responses((status = 200, body = ActionOut), (status = 403), (status = 404)))]
pub async fn enable_user(
    ApiScope(scope): ApiScope,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ActionOut>, ApiError> {
    scope.set_user_disabled(user_id(&id)?, false).await?;
    Ok(Json(ActionOut { done: "user enabled".into() }))
}
