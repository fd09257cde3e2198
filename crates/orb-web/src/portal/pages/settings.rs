//! Settings: the tenant's settings form (Graph, TOPdesk, sync policy, mails, portal: MFA, allow-lists, SSO;
//! retention), the booking fields hidden for everyone, the write-only secrets (never rendered back, not even
//! as a masked length), "test connection" per side, and the TOPdesk push token (created or rotated, shown
//! once). Everything here needs a tenant-admin (or operator); each save leaves one audit row.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use orb_core::Side;
use secrecy::SecretString;

use super::{Layout, Notice, back, render};
use crate::portal::backend::{ConnectionCheck, SecretField, SettingsSection};
use crate::portal::error::{PortalError, html_escape};
use crate::portal::scope::Scope;
use crate::portal::view::BOOKING_FIELDS;

/// A hideable field, with whether it is hidden now.
#[derive(Debug, Clone)]
pub struct HideableField {
    /// Key.
    pub key: &'static str,
    /// Label.
    pub label: &'static str,
    /// Hidden now.
    pub hidden: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    sections: Vec<SettingsSection>,
    secrets: Vec<SecretField>,
    fields: Vec<HideableField>,
    has_push_token: bool,
    error: Option<String>,
}

async fn show(scope: &Scope, notice: Option<String>, error: Option<String>) -> Result<Response, PortalError> {
    scope.require_write()?;
    let backend = &scope.state().backend;
    let policy = scope.policy().await?;
    let sections = backend.settings_form(scope.tenant.id).await?;
    let fields = BOOKING_FIELDS
        .iter()
        .map(|&(key, label)| HideableField { key, label, hidden: policy.hidden_fields.contains(key) })
        .collect();
    let page = SettingsPage {
        layout: Layout::of(scope, "settings", notice),
        sections,
        secrets: backend.secret_fields(),
        fields,
        has_push_token: scope.has_push_token().await?,
        error: error.clone(),
    };
    let mut response = render(&page)?.into_response();
    if error.is_some() {
        *response.status_mut() = axum::http::StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

/// `GET /t/{tenant}/settings`.
pub async fn page(scope: Scope, Query(n): Query<Notice>) -> Result<Response, PortalError> {
    show(&scope, n.notice, None).await
}

fn here(scope: &Scope) -> String {
    format!("/t/{}/settings", scope.tenant.name)
}

/// `POST /t/{tenant}/settings`: the form's fields (the CSRF field aside) as dotted keys.
pub async fn save(scope: Scope, Form(form): Form<Vec<(String, String)>>) -> Result<Response, PortalError> {
    scope.require_write()?;
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form.into_iter().filter(|(k, _)| k != "_csrf") {
        // Multi-choice fields come as several values of one key: one per line.
        values
            .entry(k)
            .and_modify(|old| {
                old.push('\n');
            })
            .or_default()
            .push_str(&v);
    }
    let keys = values.keys().cloned().collect::<Vec<_>>().join(", ");
    let audit = scope.audit("settings.save", keys);
    match scope.state().backend.save_settings(scope.tenant.id, &values, &audit).await {
        Ok(()) => Ok(back(&here(&scope), "Settings saved.")),
        Err(crate::portal::backend::BackendError::Invalid(message)) => {
            show(&scope, None, Some(message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /t/{tenant}/settings/hidden-fields`: every checked `field` is hidden for everyone.
pub async fn save_hidden(
    scope: Scope,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PortalError> {
    scope.require_write()?;
    let mut hidden = BTreeSet::new();
    for (k, v) in form {
        if k == "field" {
            if !crate::portal::view::is_field(&v) {
                return Err(PortalError::BadRequest(format!("{v:?} is not a booking field")));
            }
            hidden.insert(v);
        }
    }
    let audit = scope.audit("settings.hidden_fields", hidden.iter().cloned().collect::<Vec<_>>().join(", "));
    scope.state().backend.save_hidden_fields(scope.tenant.id, &hidden, &audit).await?;
    Ok(back(&here(&scope), "Hidden fields saved."))
}

/// The secret form: one value.
#[derive(serde::Deserialize)]
pub struct SecretForm {
    value: String,
}

/// `POST /t/{tenant}/secrets/{name}`: seals and stores a secret; it is never shown again.
pub async fn set_secret(
    scope: Scope,
    Path((_, name)): Path<(String, String)>,
    Form(form): Form<SecretForm>,
) -> Result<Response, PortalError> {
    scope.require_write()?;
    let backend = &scope.state().backend;
    let field = backend.secret_fields().into_iter().find(|f| f.name == name).ok_or(PortalError::NotFound)?;
    if form.value.trim().is_empty() {
        return show(
            &scope,
            None,
            Some(format!("{}: enter a value (empty values are not stored)", field.label)),
        )
        .await;
    }
    let audit = scope.audit("secret.set", field.name);
    match backend.set_secret(scope.tenant.id, field.name, SecretString::from(form.value), &audit).await {
        Ok(()) => Ok(back(&here(&scope), &format!("{} saved. It will not be shown again.", field.label))),
        Err(crate::portal::backend::BackendError::Invalid(message)) => {
            show(&scope, None, Some(message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /t/{tenant}/settings/test/{side}` (`exchange` or `topdesk`); answers a fragment for htmx.
pub async fn test_connection(
    scope: Scope,
    headers: HeaderMap,
    Path((_, side)): Path<(String, String)>,
) -> Result<Response, PortalError> {
    scope.require_write()?;
    let side: Side = side.parse().map_err(|_| PortalError::NotFound)?;
    let ConnectionCheck { ok, detail } = scope.state().backend.test_connection(scope.tenant.id, side).await;
    scope.record("settings.test_connection", format!("{side}: {}", if ok { "ok" } else { "failed" })).await?;
    let message = format!("{}: {detail}", if ok { "Connected" } else { "Failed" });
    if headers.contains_key("hx-request") {
        let class = if ok { "done" } else { "error" };
        return Ok(Html(format!("<span class=\"{class}\">{}</span>", html_escape(&message))).into_response());
    }
    Ok(back(&here(&scope), &message))
}

#[derive(Template)]
#[template(path = "push_token.html")]
struct PushTokenPage {
    layout: Layout,
    token: String,
    hook: String,
}

/// `POST /t/{tenant}/push-token`: a new token (the old one stops working), shown once.
pub async fn rotate_push_token(scope: Scope) -> Result<Response, PortalError> {
    let token = scope.rotate_push_token().await?;
    let page = PushTokenPage {
        layout: Layout::of(&scope, "settings", None),
        token,
        hook: format!("/hooks/topdesk/{}", scope.tenant.name),
    };
    Ok(render(&page)?.into_response())
}
