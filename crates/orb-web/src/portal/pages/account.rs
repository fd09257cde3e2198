//! The user's own account: password, second factor (enrol, new recovery codes), sessions (revoke any), and
//! API tokens for `/api/v1` (scoped read or write, revocable, shown once).

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use orb_store::{ApiScope, NewApiToken, NewAuditEntry};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{Layout, Notice, back, render};
use crate::portal::PortalState;
use crate::portal::error::PortalError;
use crate::portal::login::{confirm_enrolment, pending_secret};
use crate::portal::session::{Principal, timed_out};
use crate::portal::view::when;

/// A session as listed.
#[derive(Debug, Clone)]
pub struct SessionLine {
    /// Id.
    pub id: i64,
    /// Started.
    pub created: String,
    /// Last used.
    pub seen: String,
    /// From.
    pub ip: String,
    /// Browser.
    pub agent: String,
    /// The one in use.
    pub current: bool,
}

/// An API token as listed.
#[derive(Debug, Clone)]
pub struct TokenLine {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: String,
    /// Created.
    pub created: String,
    /// Expires.
    pub expires: String,
    /// Last used.
    pub used: String,
    /// Revoked.
    pub revoked: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    /// The zone the page's times are in: the user's tenant's, UTC for an operator.
    zone: String,
    mfa: bool,
    recovery_left: u32,
    enrol: Option<(String, String)>,
    sessions: Vec<SessionLine>,
    tokens: Vec<TokenLine>,
    shown_once: Option<(String, Vec<String>)>,
    /// The password was set by someone else: choose one first.
    temporary_password: bool,
}

fn audit(state: &PortalState, p: &Principal, action: &str, target: &str) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: p.user.tenant_id,
        at: state.now(),
        actor: p.actor(),
        action: action.to_owned(),
        target: target.to_owned(),
        ip: Some(p.ip.0.to_string()),
    }
}

async fn show(
    state: &PortalState,
    p: &Principal,
    notice: Option<String>,
    shown_once: Option<(String, Vec<String>)>,
) -> Result<Response, PortalError> {
    let user = state.store.get_user(p.user.id).await?;
    // The tenant's zone, as on its other pages; an operator has no tenant: UTC, labelled so.
    let zone = match user.tenant_id {
        Some(tenant) => state.backend.policy(tenant).await?.zone,
        None => chrono_tz::UTC,
    };
    let enrol = if user.totp_enabled {
        None
    } else {
        let secret = pending_secret(state, &user).await?;
        let uri = orb_auth::otpauth_uri(&secret, &state.config.totp_issuer, user.email.as_str());
        Some((orb_auth::qr_svg(&uri), secret.to_base32()))
    };
    let current = p.session_id();
    // Sessions past their timeouts are not listed; they are ended now (a request with one would end it).
    let now = state.now();
    let mut live = Vec::new();
    for session in state.store.list_sessions(user.id).await? {
        if timed_out(state, &session, now) {
            state.store.delete_user_session(user.id, session.id).await?;
        } else {
            live.push(session);
        }
    }
    let sessions = live
        .into_iter()
        .map(|s| SessionLine {
            id: s.id,
            created: when(s.created_at, zone),
            seen: when(s.last_seen_at, zone),
            ip: s.source_ip.unwrap_or_default(),
            agent: s.user_agent.unwrap_or_default(),
            current: Some(s.id) == current,
        })
        .collect();
    let tokens = state
        .store
        .list_api_tokens(user.id)
        .await?
        .into_iter()
        .map(|t| TokenLine {
            id: t.id,
            name: t.name,
            scope: t.scope.to_string(),
            created: when(t.created_at, zone),
            expires: t.expires_at.map(|at| when(at, zone)).unwrap_or_else(|| "never".into()),
            used: t.last_used_at.map(|at| when(at, zone)).unwrap_or_default(),
            revoked: t.revoked,
        })
        .collect();
    let page = AccountPage {
        layout: Layout::plain(state, p, "account", notice),
        zone: zone.name().to_owned(),
        mfa: user.totp_enabled,
        recovery_left: state.store.count_recovery_codes(user.id).await?,
        enrol,
        sessions,
        tokens,
        shown_once,
        temporary_password: user.password_temporary,
    };
    Ok(render(&page)?.into_response())
}

/// `GET /account`.
pub async fn page(
    State(state): State<PortalState>,
    p: Principal,
    Query(n): Query<Notice>,
) -> Result<Response, PortalError> {
    show(&state, &p, n.notice, None).await
}

/// The password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
}

/// `POST /account/password`.
pub async fn change_password(
    State(state): State<PortalState>,
    p: Principal,
    Form(form): Form<PasswordForm>,
) -> Result<Response, PortalError> {
    let current = SecretString::from(form.current);
    let new = SecretString::from(form.new);
    let user = state.store.get_user(p.user.id).await?;
    if let Some(hash) = &user.password_hash {
        let ok = orb_auth::verify_password(&current, hash).unwrap_or(false);
        if !ok {
            state
                .store
                .append_audit(&audit(&state, &p, "password.change_failed", "wrong current password"))
                .await?;
            return Err(PortalError::BadRequest(
                "the current password is not right; nothing was changed".into(),
            ));
        }
    }
    orb_auth::check_new_password(&new).map_err(|e| PortalError::BadRequest(e.to_string()))?;
    if user.password_temporary && new.expose_secret() == current.expose_secret() {
        return Err(PortalError::BadRequest(
            "choose a password of your own, not the one you were given; nothing was changed".into(),
        ));
    }
    let hash = orb_auth::hash_password(&new).map_err(|e| PortalError::BadRequest(e.to_string()))?;
    let entry = audit(&state, &p, "password.change", "own");
    state.store.set_user_password(user.id, &hash, false, &entry).await?;
    if user.password_temporary {
        return Ok(back("/", "Password changed: it is your own now."));
    }
    Ok(back("/account", "Password changed."))
}

/// The enrolment form.
#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

/// `POST /account/mfa`: confirms the second factor shown on the page.
pub async fn enrol_mfa(
    State(state): State<PortalState>,
    p: Principal,
    Form(form): Form<CodeForm>,
) -> Result<Response, PortalError> {
    let user = state.store.get_user(p.user.id).await?;
    match confirm_enrolment(&state, &user, &form.code, p.ip).await? {
        Some(codes) => {
            show(&state, &p, Some("Second factor on.".into()), Some(("Recovery codes".into(), codes))).await
        }
        None => {
            Err(PortalError::BadRequest("that code is not valid; enter the code your app shows now".into()))
        }
    }
}

/// `POST /account/recovery-codes`: ten new codes (the old ones stop working), shown once.
pub async fn new_recovery_codes(
    State(state): State<PortalState>,
    p: Principal,
) -> Result<Response, PortalError> {
    if !p.user.totp_enabled {
        return Err(PortalError::BadRequest("turn the second factor on first".into()));
    }
    let codes = orb_auth::generate_recovery_codes(10);
    let hashes: Vec<Vec<u8>> =
        codes.iter().map(|c| orb_auth::hash_recovery_code(c.expose_secret())).collect();
    state
        .store
        .replace_recovery_codes(p.user.id, &hashes, &audit(&state, &p, "mfa.recovery_codes", "10 new codes"))
        .await?;
    let codes = codes.iter().map(|c| c.expose_secret().to_owned()).collect();
    show(&state, &p, None, Some(("Recovery codes".into(), codes))).await
}

/// `POST /account/sessions/{id}/revoke`.
pub async fn revoke_session(
    State(state): State<PortalState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Response, PortalError> {
    if !state.store.delete_user_session(p.user.id, id).await? {
        return Err(PortalError::NotFound);
    }
    state.store.append_audit(&audit(&state, &p, "session.revoke", &id.to_string())).await?;
    if p.session_id() == Some(id) {
        return Ok(axum::response::Redirect::to("/login").into_response());
    }
    Ok(back("/account", "Session ended."))
}

/// The new-token form.
#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
    scope: String,
    #[serde(default)]
    days: Option<String>,
}

/// `POST /account/tokens`: a new API token, shown once.
pub async fn create_token(
    State(state): State<PortalState>,
    p: Principal,
    Form(form): Form<TokenForm>,
) -> Result<Response, PortalError> {
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(PortalError::BadRequest("give the token a name of 1 to 100 characters".into()));
    }
    let scope: ApiScope =
        form.scope.parse().map_err(|_| PortalError::BadRequest("scope: use read or write".into()))?;
    if scope == ApiScope::Write && !p.user.role.can_write() {
        return Err(PortalError::Forbidden);
    }
    let days = match form.days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => Some(90),
        Some("never") => None,
        Some(d) => Some(d.parse::<i64>().ok().filter(|d| (1..=730).contains(d)).ok_or_else(|| {
            PortalError::BadRequest("expiry: a number of days from 1 to 730, or never".into())
        })?),
    };
    let (token, hash) = orb_auth::random_token();
    let now = state.now();
    let row = state
        .store
        .create_api_token(
            &NewApiToken {
                user_id: p.user.id,
                name: name.to_owned(),
                token_hash: hash,
                scope,
                expires_at: days.map(|d| now + Duration::days(d)),
            },
            &audit(&state, &p, "api_token.create", name),
            now,
        )
        .await?;
    let shown = (format!("API token {:?}", row.name), vec![token.expose_secret().to_owned()]);
    show(&state, &p, Some("Token made. Copy it now: it is not shown again.".into()), Some(shown)).await
}

/// `POST /account/tokens/{id}/revoke`.
pub async fn revoke_token(
    State(state): State<PortalState>,
    p: Principal,
    Path(id): Path<i64>,
) -> Result<Response, PortalError> {
    state
        .store
        .revoke_api_token(p.user.id, id, &audit(&state, &p, "api_token.revoke", &id.to_string()))
        .await?;
    Ok(back("/account", "Token revoked."))
}
