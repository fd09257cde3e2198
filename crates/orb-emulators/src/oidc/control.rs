//! The control API under `/_emulator/`: register clients, add users, inspect state. No auth.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::OidcEmulator;

pub(super) fn router(emulator: OidcEmulator) -> Router {
    Router::new()
        .route("/_emulator/clients", post(add_client))
        .route("/_emulator/users", post(add_user))
        .route("/_emulator/state", get(state))
        .with_state(emulator)
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_request", "error_description": message })))
        .into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("The request body is malformed: {e}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewClient {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    redirect_uris: Vec<String>,
}

async fn add_client(State(emu): State<OidcEmulator>, body: Bytes) -> Response {
    let client: NewClient = match parse(&body) {
        Ok(client) => client,
        Err(message) => return bad_request(message),
    };
    if client.client_id.is_empty() || client.redirect_uris.is_empty() {
        return bad_request("A client needs a clientId and at least one redirect URI.".to_owned());
    }
    let uris: Vec<&str> = client.redirect_uris.iter().map(String::as_str).collect();
    emu.add_client(&client.client_id, client.client_secret.as_deref(), &uris);
    (StatusCode::CREATED, Json(json!({ "clientId": client.client_id }))).into_response()
}

fn verified_by_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
    #[serde(default = "verified_by_default")]
    email_verified: bool,
    #[serde(default)]
    subject: Option<String>,
}

async fn add_user(State(emu): State<OidcEmulator>, body: Bytes) -> Response {
    let user: NewUser = match parse(&body) {
        Ok(user) => user,
        Err(message) => return bad_request(message),
    };
    let subject = match user.subject {
        Some(subject) if !subject.is_empty() => {
            emu.add_user_with_subject(&subject, &user.email, &user.password, user.email_verified);
            subject
        }
        Some(_) => return bad_request("subject must not be empty.".to_owned()),
        None => emu.add_user(&user.email, &user.password, user.email_verified),
    };
    (StatusCode::CREATED, Json(json!({ "subject": subject }))).into_response()
}

async fn state(State(emu): State<OidcEmulator>) -> Response {
    let state = emu.lock();
    let clients: Vec<_> = state
        .clients
        .values()
        .map(|c| json!({ "clientId": c.id, "confidential": c.secret.is_some(), "redirectUris": c.redirect_uris }))
        .collect();
    let users: Vec<_> = state
        .users
        .iter()
        .map(|u| json!({ "subject": u.subject, "email": u.email, "emailVerified": u.email_verified }))
        .collect();
    Json(json!({
        "issuer": state.issuer,
        "clients": clients,
        "users": users,
        "codesIssued": state.codes_issued,
        "tokensIssued": state.tokens_issued,
    }))
    .into_response()
}
