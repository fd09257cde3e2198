//! Users of a tenant: invite (a one-time password shown once to the inviting admin, or none for single
//! sign-on), change roles, reset a second factor, disable and enable. Tenant-admins and operators only;
//! operators are managed with `orb user`, never from a tenant's page.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use orb_core::EmailAddress;
use orb_store::{NewUser, Role, UserId};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Layout, Notice, back, render};
use crate::portal::error::PortalError;
use crate::portal::scope::Scope;

/// A user as shown.
#[derive(Debug, Clone)]
pub struct UserRow {
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
    /// Last login.
    pub last_login: String,
    /// Whether this is the one looking.
    pub me: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    created: Option<(String, String)>,
}

async fn show(
    scope: &Scope,
    notice: Option<String>,
    created: Option<(String, String)>,
) -> Result<Response, PortalError> {
    scope.require_write()?;
    let zone = scope.policy().await?.zone;
    let users = scope
        .users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            id: u.id.0,
            email: u.email.to_string(),
            role: u.role.to_string(),
            mfa: u.totp_enabled,
            disabled: u.disabled,
            last_login: u.last_login_at.map(|at| crate::portal::view::when(at, zone)).unwrap_or_default(),
            me: u.id == scope.principal.user.id,
        })
        .collect();
    let layout = Layout::of(scope, "users", notice);
    Ok(render(&UsersPage { layout, users, created })?.into_response())
}

/// `GET /t/{tenant}/users`.
pub async fn page(scope: Scope, Query(n): Query<Notice>) -> Result<Response, PortalError> {
    show(&scope, n.notice, None).await
}

/// The invite form.
#[derive(Debug, Deserialize)]
pub struct InviteForm {
    email: String,
    role: String,
    /// `password` (a one-time password is made) or `sso` (no password: single sign-on only).
    #[serde(default)]
    login: Option<String>,
}

fn tenant_role(text: &str) -> Result<Role, PortalError> {
    match text.parse::<Role>() {
        Ok(Role::Operator) | Err(_) => {
            Err(PortalError::BadRequest(format!("role {text:?}: use tenant-admin or tenant-viewer")))
        }
        Ok(role) => Ok(role),
    }
}

/// `POST /t/{tenant}/users`.
pub async fn add(scope: Scope, Form(form): Form<InviteForm>) -> Result<Response, PortalError> {
    scope.require_write()?;
    let email = EmailAddress::parse(form.email.trim())
        .map_err(|_| PortalError::BadRequest(format!("{:?} is not an e-mail address", form.email)))?;
    let role = tenant_role(&form.role)?;
    let sso = form.login.as_deref() == Some("sso");
    let (password, password_hash) = if sso {
        (None, None)
    } else {
        let password = orb_auth::generate_password();
        let hash = orb_auth::hash_password(&password).map_err(|e| PortalError::BadRequest(e.to_string()))?;
        (Some(password), Some(hash))
    };
    // The password is the inviting admin's to pass on, theirs to replace at the first login.
    let password_temporary = password_hash.is_some();
    let invited =
        NewUser { tenant_id: Some(scope.tenant.id), email, role, password_hash, password_temporary };
    let user = scope.add_user(invited).await?;
    let created = password.map(|p: SecretString| (user.email.to_string(), p.expose_secret().to_owned()));
    let notice = if created.is_some() {
        format!(
            "{} can log in with the one-time password below (it is not shown again); they choose their own \
             at the first login.",
            user.email
        )
    } else {
        format!("{} can log in with single sign-on.", user.email)
    };
    show(&scope, Some(notice), created).await
}

fn user_id(text: &str) -> Result<UserId, PortalError> {
    text.parse::<i64>().map(UserId).map_err(|_| PortalError::NotFound)
}

fn here(scope: &Scope) -> String {
    format!("/t/{}/users", scope.tenant.name)
}

/// The role form.
#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: String,
}

/// `POST /t/{tenant}/users/{id}/role`.
pub async fn set_role(
    scope: Scope,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> Result<Response, PortalError> {
    let role = tenant_role(&form.role)?;
    scope.set_user_role(user_id(&id)?, role).await?;
    Ok(back(&here(&scope), "Role changed."))
}

/// `POST /t/{tenant}/users/{id}/reset-mfa`.
pub async fn reset_mfa(scope: Scope, Path((_, id)): Path<(String, String)>) -> Result<Response, PortalError> {
    scope.reset_user_mfa(user_id(&id)?).await?;
    Ok(back(&here(&scope), "Second factor reset: the user enrols again at the next login."))
}

/// `POST /t/{tenant}/users/{id}/disable`.
pub async fn disable(scope: Scope, Path((_, id)): Path<(String, String)>) -> Result<Response, PortalError> {
    scope.set_user_disabled(user_id(&id)?, true).await?;
    Ok(back(&here(&scope), "User disabled; their sessions and API tokens ended."))
}

/// `POST /t/{tenant}/users/{id}/enable`.
pub async fn enable(scope: Scope, Path((_, id)): Path<(String, String)>) -> Result<Response, PortalError> {
    scope.set_user_disabled(user_id(&id)?, false).await?;
    Ok(back(&here(&scope), "User enabled."))
}
