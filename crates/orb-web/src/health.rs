//! The public health check: `GET /healthz` answers `200 text/plain` `ok` and nothing else.
//!
//! It reads no store and reports no detail (tenant counts, database state): the public listener tells a
//! load balancer that the process serves, and an outsider nothing more. The operator reads the details in
//! the log (`orb serve` logs how many tenants are synced at every load and reload, and why a tenant is not).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// `GET /healthz`.
pub fn router() -> Router {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz() -> Response {
    let mut response = "ok".into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
