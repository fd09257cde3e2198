//! The portal's failure modes and how each is answered: a short HTML page for the browser, JSON for the API
//! ([`ApiError`]). Messages say what to do next and never contain a secret or another tenant's data.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use orb_store::StoreError;
use serde_json::json;
use thiserror::Error;

use super::backend::BackendError;

/// Why a portal request was refused or failed.
#[derive(Debug, Error)]
pub enum PortalError {
    /// No (valid) session or token: log in first.
    #[error("you are not logged in, or your session ended; log in again")]
    Unauthenticated,
    /// Logged in, but the role does not allow this.
    #[error("your role does not allow this; ask a tenant administrator")]
    Forbidden,
    /// The thing does not exist, or belongs to a tenant the user cannot see (one answer for both).
    #[error("not found")]
    NotFound,
    /// Like [`PortalError::NotFound`] (the same answer whether the thing never existed, was of another
    /// tenant, or is gone), with a message saying what to do next.
    #[error("{0}")]
    Gone(String),
    /// The request's address is outside the allow-list.
    #[error(
        "the portal cannot be used from your address; ask your administrator to add it to the allow-list"
    )]
    AddressRefused,
    /// A state-changing request without a valid CSRF token or from a foreign origin.
    #[error("the form expired or came from another site; reload the page and try again")]
    Csrf,
    /// The input is wrong; the message says which field and what is accepted.
    #[error("{0}")]
    BadRequest(String),
    /// The store failed: nothing was changed.
    #[error("the database could not be reached ({0}); nothing was changed, try again shortly")]
    Store(#[source] StoreError),
    /// The backend failed.
    #[error("{0}")]
    Backend(#[source] BackendError),
    /// A page could not be rendered (a bug).
    #[error("the page could not be rendered; this is a bug in ORB, please report it")]
    Render(#[source] askama::Error),
    /// The user's password was set by someone else: they choose their own (on their account page) first.
    #[error("the password you were given is temporary: choose your own on your account page first")]
    PasswordChangeRequired,
}

impl PortalError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Backend(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::AddressRefused | Self::Csrf | Self::PasswordChangeRequired => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound | Self::Gone(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Backend(BackendError::Invalid(_)) => StatusCode::BAD_REQUEST,
            Self::Backend(BackendError::NotFound(_)) => StatusCode::NOT_FOUND,
            Self::Store(StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Self::Store(_) | Self::Backend(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn public_message(&self) -> String {
        match self {
            // A store "not found" names the row; the portal says only that.
            Self::Store(StoreError::NotFound { .. }) => Self::NotFound.to_string(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for PortalError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<BackendError> for PortalError {
    fn from(e: BackendError) -> Self {
        Self::Backend(e)
    }
}

impl From<askama::Error> for PortalError {
    fn from(e: askama::Error) -> Self {
        Self::Render(e)
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "portal request failed");
        }
        if matches!(self, Self::Unauthenticated) {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
        }
        if matches!(self, Self::PasswordChangeRequired) {
            return (StatusCode::SEE_OTHER, [(header::LOCATION, "/account")]).into_response();
        }
        let message = self.public_message();
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ORB: {code}</title>\
             <link rel=\"stylesheet\" href=\"/static/portal.css\"></head><body><main class=\"narrow\">\
             <h1>{code}</h1><p class=\"error\">{msg}</p><p><a href=\"/\">Back to the portal</a></p></main>\
             </body></html>",
            code = status.as_u16(),
            msg = html_escape(&message),
        );
        (status, Html(body)).into_response()
    }
}

/// A [`PortalError`] answered as JSON (`{"error": "...", "status": 404}`), for `/api/v1`.
#[derive(Debug)]
pub struct ApiError(pub PortalError);

impl<E: Into<PortalError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::error!(error = %self.0, "portal API request failed");
        }
        let body = json!({ "error": self.0.public_message(), "status": status.as_u16() });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Escapes text for HTML (the error page is not a template).
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
