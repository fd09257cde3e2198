//! Cross-site request forgery: every request that may change something (any method but GET and HEAD) must
//! come from the portal's own origin (`Origin`, or `Referer` when a browser sends no `Origin`), and, when it
//! carries a session cookie, the session's CSRF token (`X-CSRF-Token` header, as htmx sends it from the
//! page's `hx-headers`, or the `_csrf` form field). API requests with a bearer token carry no cookie and are
//! checked by their token alone. The token is an HMAC of the session id under a key of this process.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::PortalState;
use super::error::PortalError;
use super::session::{bearer_token, cookie_token, current_session};

/// The password step of the login, whose form carries no CSRF token (see [`check`]).
pub const LOGIN_PATH: &str = "/login";

/// The largest form the portal accepts (a PEM bundle fits easily).
pub const MAX_FORM: usize = 256 * 1024;

/// The origin the portal expects in `Origin`.
pub fn expected_origin(state: &PortalState, headers: &HeaderMap) -> Option<String> {
    if let Some(origin) = &state.config.origin {
        return Some(origin.clone());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = if state.config.secure_cookies { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// The CSRF check (see the module docs), as a middleware.
pub async fn check(State(state): State<PortalState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let bearer = bearer_token(headers).is_some();
    let has_cookie = cookie_token(headers, state.config.secure_cookies).is_some();
    if bearer && !has_cookie {
        return next.run(request).await;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
    let Some(expected) = expected_origin(&state, headers) else {
        return PortalError::Csrf.into_response();
    };
    if !orb_auth::origin_allowed(origin, referer, &expected) {
        return PortalError::Csrf.into_response();
    }
    if !has_cookie || request.uri().path() == LOGIN_PATH {
        // Login forms: no session yet, the Origin check is the guard (SameSite=Strict does the rest). The
        // password step also comes with the cookie of a login left half-way (second factor not given,
        // enrolment abandoned): its form has no token, and it starts a new session anyway.
        return next.run(request).await;
    }
    let session = match current_session(&state, request.headers()).await {
        Ok(Some((session, _))) => session,
        // An ended session: the handler answers "log in again".
        Ok(None) => return next.run(request).await,
        Err(e) => return e.into_response(),
    };
    let header_token = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(token) = header_token {
        return if state.csrf.verify(session.id, &token) {
            next.run(request).await
        } else {
            PortalError::Csrf.into_response()
        };
    }
    // The form field: read the body (bounded), look, and hand it on unchanged.
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM).await else {
        return PortalError::BadRequest(format!("the form is larger than {MAX_FORM} bytes")).into_response();
    };
    let token = url::form_urlencoded::parse(&bytes).find(|(k, _)| k == "_csrf").map(|(_, v)| v.into_owned());
    match token {
        Some(token) if state.csrf.verify(session.id, &token) => {
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        _ => PortalError::Csrf.into_response(),
    }
}
