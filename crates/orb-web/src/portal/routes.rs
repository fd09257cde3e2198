//! The portal's routes, in one table: the router is built from it ([`book`]), and the same table is what
//! the isolation test walks (every route with a `{tenant}` segment, asked by another tenant's user) and
//! what [`RouteInfo`] lists for documentation.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post, put};

use super::{PortalState, api, api_admin, csrf, headers, login, pages};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login pages, static assets, the OpenAPI document).
    Public,
    /// A logged-in user (session cookie; API routes also take a bearer token).
    User,
    /// An operator (the installation's pages); a tenant's user is refused with 403.
    Operator,
}

/// One route of the portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Its method.
    pub method: Method,
    /// Its path, with `{param}` segments as axum writes them.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// The router and the table it was built from.
pub struct RouteBook {
    /// The router (state applied, middleware layered).
    pub router: Router,
    /// Every route.
    pub routes: Vec<RouteInfo>,
}

struct Builder {
    router: Router<PortalState>,
    routes: Vec<RouteInfo>,
}

impl Builder {
    fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        route: MethodRouter<PortalState>,
    ) -> Self {
        self.router = self.router.route(path, route);
        self.routes.push(RouteInfo { method, path, access });
        self
    }

    fn get<H: Handler<T, PortalState>, T: 'static>(self, path: &'static str, access: Access, h: H) -> Self {
        self.add(Method::GET, path, access, get(h))
    }

    fn post<H: Handler<T, PortalState>, T: 'static>(self, path: &'static str, access: Access, h: H) -> Self {
        self.add(Method::POST, path, access, post(h))
    }

    fn put<H: Handler<T, PortalState>, T: 'static>(self, path: &'static str, access: Access, h: H) -> Self {
        self.add(Method::PUT, path, access, put(h))
    }
}

/// Builds the portal's router and its route table.
pub fn book(state: PortalState) -> RouteBook {
    use Access::{Operator, Public, User};
    let b = Builder { router: Router::new(), routes: Vec::new() }
        // Static assets.
        .get(headers::HTMX_PATH, Public, headers::htmx)
        .get(headers::CSS_PATH, Public, headers::css)
        .get(headers::JS_PATH, Public, headers::js)
        // Login.
        .get("/login", Public, login::login_page)
        .post("/login", Public, login::login_submit)
        .get("/login/second-factor", Public, login::second_factor_page)
        .post("/login/second-factor", Public, login::second_factor_submit)
        .get("/login/enrol", Public, login::enrol_page)
        .post("/login/enrol", Public, login::enrol_submit)
        .get("/login/sso", Public, login::sso_start)
        .get("/login/sso/callback", Public, login::sso_callback)
        .post("/logout", User, login::logout)
        // Pages.
        .get("/", User, pages::home)
        .get("/audit", Operator, pages::installation::page)
        .get("/audit/export", Operator, pages::installation::export)
        .get("/account", User, pages::account::page)
        .post("/account/password", User, pages::account::change_password)
        .post("/account/mfa", User, pages::account::enrol_mfa)
        .post("/account/recovery-codes", User, pages::account::new_recovery_codes)
        .post("/account/sessions/{id}/revoke", User, pages::account::revoke_session)
        .post("/account/tokens", User, pages::account::create_token)
        .post("/account/tokens/{id}/revoke", User, pages::account::revoke_token)
        .get("/t/{tenant}", User, pages::dashboard::page)
        .get("/t/{tenant}/bookings", User, pages::bookings::list)
        .get("/t/{tenant}/bookings/{id}", User, pages::bookings::detail)
        .get("/t/{tenant}/failures", User, pages::failures::page)
        .post("/t/{tenant}/jobs/{id}/retry", User, pages::failures::retry)
        .post("/t/{tenant}/jobs/{id}/dismiss", User, pages::failures::dismiss)
        .post("/t/{tenant}/deletions/{room}/approve", User, pages::failures::approve)
        .post("/t/{tenant}/deletions/{room}/reject", User, pages::failures::reject)
        .get("/t/{tenant}/rooms", User, pages::rooms::page)
        .post("/t/{tenant}/rooms", User, pages::rooms::add)
        .post("/t/{tenant}/rooms/{room}/enable", User, pages::rooms::enable)
        .post("/t/{tenant}/rooms/{room}/disable", User, pages::rooms::disable)
        .get("/t/{tenant}/settings", User, pages::settings::page)
        .post("/t/{tenant}/settings", User, pages::settings::save)
        .post("/t/{tenant}/settings/hidden-fields", User, pages::settings::save_hidden)
        .post("/t/{tenant}/secrets/{name}", User, pages::settings::set_secret)
        .post("/t/{tenant}/settings/test/{side}", User, pages::settings::test_connection)
        .post("/t/{tenant}/push-token", User, pages::settings::rotate_push_token)
        .get("/t/{tenant}/audit", User, pages::audit::page)
        .get("/t/{tenant}/audit/export", User, pages::audit::export)
        .get("/t/{tenant}/users", User, pages::users::page)
        .post("/t/{tenant}/users", User, pages::users::add)
        .post("/t/{tenant}/users/{id}/role", User, pages::users::set_role)
        .post("/t/{tenant}/users/{id}/reset-mfa", User, pages::users::reset_mfa)
        .post("/t/{tenant}/users/{id}/disable", User, pages::users::disable)
        .post("/t/{tenant}/users/{id}/enable", User, pages::users::enable)
        // The JSON API.
        .get("/api/openapi.json", Public, api::openapi)
        .get("/api/v1/tenants", User, api::tenants)
        .get("/api/v1/audit", Operator, pages::installation::api)
        .get("/api/v1/tenants/{tenant}/dashboard", User, api::dashboard)
        .get("/api/v1/tenants/{tenant}/bookings", User, api::bookings)
        .get("/api/v1/tenants/{tenant}/bookings/{id}", User, api::booking)
        .get("/api/v1/tenants/{tenant}/jobs", User, api::jobs)
        .post("/api/v1/tenants/{tenant}/jobs/{id}/retry", User, api::retry_job)
        .post("/api/v1/tenants/{tenant}/jobs/{id}/dismiss", User, api::dismiss_job)
        .get("/api/v1/tenants/{tenant}/rooms", User, api::rooms)
        .get("/api/v1/tenants/{tenant}/audit", User, api::audit)
        .get("/api/v1/tenants/{tenant}/users", User, api::users)
        .post("/api/v1/tenants/{tenant}/rooms", User, api_admin::add_room)
        .get("/api/v1/tenants/{tenant}/rooms/suggestions", User, api_admin::room_suggestions)
        .post("/api/v1/tenants/{tenant}/rooms/{room}/enable", User, api_admin::enable_room)
        .post("/api/v1/tenants/{tenant}/rooms/{room}/disable", User, api_admin::disable_room)
        .get("/api/v1/tenants/{tenant}/deletions", User, api_admin::deletions)
        .post("/api/v1/tenants/{tenant}/deletions/{room}/approve", User, api_admin::approve_deletions)
        .post("/api/v1/tenants/{tenant}/deletions/{room}/reject", User, api_admin::reject_deletions)
        .get("/api/v1/tenants/{tenant}/settings", User, api_admin::settings)
        .put("/api/v1/tenants/{tenant}/settings", User, api_admin::save_settings)
        .put("/api/v1/tenants/{tenant}/settings/hidden-fields", User, api_admin::save_hidden_fields)
        .put("/api/v1/tenants/{tenant}/secrets/{name}", User, api_admin::set_secret)
        .post("/api/v1/tenants/{tenant}/settings/test/{side}", User, api_admin::test_connection)
        .post("/api/v1/tenants/{tenant}/push-token", User, api_admin::rotate_push_token)
        .post("/api/v1/tenants/{tenant}/users", User, api_admin::invite)
        .post("/api/v1/tenants/{tenant}/users/{id}/role", User, api_admin::set_role)
        .post("/api/v1/tenants/{tenant}/users/{id}/reset-mfa", User, api_admin::reset_mfa)
        .post("/api/v1/tenants/{tenant}/users/{id}/disable", User, api_admin::disable_user)
        .post("/api/v1/tenants/{tenant}/users/{id}/enable", User, api_admin::enable_user);
    let routes = b.routes;
    let router = b
        .router
        .layer(axum::middleware::from_fn_with_state(state.clone(), csrf::check))
        .layer(axum::middleware::from_fn_with_state(state.clone(), headers::secure))
        .with_state(state);
    RouteBook { router, routes }
}
