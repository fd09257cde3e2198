//! The portal's pages, one module per page. Each handler takes a [`Scope`] (tenant pages) or a
//! [`Principal`] (account, home), renders an askama template with a [`Layout`], and writes its audit row
//! through the scope. State-changing handlers answer with a redirect back to their page (post/redirect/get)
//! carrying a short notice, or, for htmx requests, with the fragment to swap in.

pub mod account;
pub mod audit;
pub mod bookings;
pub mod dashboard;
pub mod failures;
pub mod installation;
pub mod rooms;
pub mod settings;
pub mod users;

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use orb_store::Role;

use super::PortalState;
use super::error::PortalError;
use super::scope::Scope;
use super::session::Principal;

/// Renders a template.
pub fn render<T: Template>(template: &T) -> Result<Html<String>, PortalError> {
    Ok(Html(template.render()?))
}

/// What every page's frame shows: who is logged in, the tenant, the navigation, the CSRF token for forms
/// and htmx requests, and a notice from the last action.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The user's e-mail address.
    pub user: String,
    /// The user's role.
    pub role: String,
    /// The tenant whose pages these are.
    pub tenant: Option<String>,
    /// The session's CSRF token.
    pub csrf: String,
    /// Whether the user may change things (shows the buttons that do).
    pub can_write: bool,
    /// Which navigation entry is current.
    pub active: &'static str,
    /// A notice from the last action (post/redirect/get), if any.
    pub notice: Option<String>,
    /// Whether the user is an operator (sees the tenant list).
    pub operator: bool,
}

impl Layout {
    /// The frame of a tenant page.
    pub fn of(scope: &Scope, active: &'static str, notice: Option<String>) -> Self {
        let mut layout = Self::plain(scope.state(), &scope.principal, active, notice);
        layout.tenant = Some(scope.tenant.name.to_string());
        layout
    }

    /// The frame of a page outside any tenant.
    pub fn plain(
        state: &PortalState,
        principal: &Principal,
        active: &'static str,
        notice: Option<String>,
    ) -> Self {
        Self {
            user: principal.user.email.to_string(),
            role: principal.user.role.to_string(),
            tenant: None,
            csrf: principal.session_id().map(|id| state.csrf_token(id)).unwrap_or_default(),
            can_write: principal.can_write(),
            active,
            notice,
            operator: principal.user.role == Role::Operator,
        }
    }
}

/// Query carrying a notice after a redirect.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Notice {
    /// The notice text.
    #[serde(default)]
    pub notice: Option<String>,
}

/// Redirects to `to` with a notice.
pub fn back(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let encoded: String = url::form_urlencoded::byte_serialize(notice.as_bytes()).collect();
    Redirect::to(&format!("{to}{sep}notice={encoded}")).into_response()
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    tenants: Vec<String>,
}

/// `GET /`: a tenant user goes to their tenant's dashboard; an operator picks a tenant.
pub async fn home(State(state): State<PortalState>, principal: Principal) -> Result<Response, PortalError> {
    if principal.user.role != Role::Operator {
        let tenant = principal.user.tenant_id.ok_or(PortalError::Forbidden)?;
        let tenants = state.store.list_tenants().await?;
        let name = tenants.into_iter().find(|t| t.id == tenant).ok_or(PortalError::NotFound)?.name;
        return Ok(Redirect::to(&format!("/t/{name}")).into_response());
    }
    let tenants = state.store.list_tenants().await?.into_iter().map(|t| t.name.to_string()).collect();
    let layout = Layout::plain(&state, &principal, "home", None);
    Ok(render(&HomePage { layout, tenants })?.into_response())
}
