//! Security headers on every portal response, the installation allow-list, and the static assets (the
//! vendored htmx and the style sheet), served from the binary with long cache lifetimes under versioned names.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

use super::PortalState;
use super::error::PortalError;
use super::session::ClientIp;

/// The portal's Content-Security-Policy: nothing inline, nothing from elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The vendored htmx (2.0.11, BSD-2-Clause; see `static/htmx-LICENSE`).
pub const HTMX_PATH: &str = "/static/htmx-2.0.11.min.js";
const HTMX: &str = include_str!("../../static/htmx-2.0.11.min.js");
/// The style sheet.
pub const CSS_PATH: &str = "/static/portal.css";
const CSS: &str = include_str!("../../static/portal.css");
/// The small script that wires the pages (no inline handlers anywhere).
pub const JS_PATH: &str = "/static/portal.js";
const JS: &str = include_str!("../../static/portal.js");

/// Adds the security headers to every response, and refuses addresses outside the installation's
/// allow-list before any handler runs.
pub async fn secure(State(state): State<PortalState>, mut request: Request, next: Next) -> Response {
    let socket = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let ip = ClientIp::of(request.headers(), socket, &state);
    request.extensions_mut().insert(ip);
    let mut response = if state.config.allow.allows(ip.0) {
        next.run(request).await
    } else {
        PortalError::AddressRefused.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if state.config.secure_cookies {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        body,
    )
        .into_response()
}

/// `GET /static/htmx-….min.js`.
pub async fn htmx() -> Response {
    asset("text/javascript; charset=utf-8", HTMX)
}

/// `GET /static/portal.css`.
pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /static/portal.js`.
pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}
