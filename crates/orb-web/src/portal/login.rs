//! Logging in: password (Argon2id) then TOTP or a recovery code, enrolment of a second factor where the
//! tenant requires one, single sign-on through the tenant's OpenID provider, and logging out.
//!
//! ## Invariants
//! - Failed attempts count per account and per source address; past the [`orb_auth::LockoutPolicy`]'s free
//!   failures each further attempt waits a growing back-off, and from its `lock_after` the account is
//!   locked. A blocked attempt is refused before the password is even checked.
//! - A source address has its own, higher allowance (`PortalConfig::address_lockout`: an office behind
//!   NAT is one address), and a successful login does not clear its count (one valid account must not
//!   reset the count of guesses at others); its failures are forgotten after a quiet window instead
//!   ([`orb_auth::ADDRESS_FORGET_AFTER`]).
//! - An unknown address, a disabled user and a wrong password get the same answer, in about the same time.
//! - A TOTP code is accepted once: its time step is claimed atomically in the store.
//! - Each login and each failed login leaves one audit row (`login`, `login.sso`, `login.failed`,
//!   `login.blocked`, `login.refused_address`).
//! - Passing the second factor starts a new session (new token); the half-logged-in one is deleted.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use orb_auth::{ADDRESS_FORGET_AFTER, Failures, OidcConfig, OidcPending, OidcRelyingParty, TotpSecret};
use orb_core::{EmailAddress, TenantName};
use orb_store::{NewAuditEntry, OidcFlow, Role, SessionStage, User};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::PortalState;
use super::error::PortalError;
use super::pages::render;
use super::session::{ClientIp, Principal, clear_cookie, current_session, start_session};

const GENERIC_FAILURE: &str = "That e-mail address and password do not match an account that may log in.";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    message: Option<String>,
    email: String,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorPage {
    csrf: String,
    message: Option<String>,
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage {
    csrf: String,
    message: Option<String>,
    qr_svg: String,
    secret_base32: String,
    otpauth: String,
    action: &'static str,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryCodesPage {
    codes: Vec<String>,
}

/// Query of the login page.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    message: Option<String>,
}

/// `GET /login`.
pub async fn login_page(
    State(state): State<PortalState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PortalError> {
    if let Some((session, _)) = current_session(&state, &headers).await?
        && session.stage == SessionStage::Full
    {
        return Ok(Redirect::to("/").into_response());
    }
    let message = q.message.map(|m| match m.as_str() {
        "logged-out" => "You are logged out.".to_owned(),
        "sso-failed" => "Single sign-on did not complete; try again or use your password.".to_owned(),
        _ => "Log in to continue.".to_owned(),
    });
    Ok(render(&LoginPage { message, email: String::new() })?.into_response())
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

fn audit(
    state: &PortalState,
    user: Option<&User>,
    action: &str,
    ip: ClientIp,
    target: &str,
) -> NewAuditEntry {
    NewAuditEntry {
        tenant_id: user.and_then(|u| u.tenant_id),
        at: state.now(),
        actor: user.map_or_else(|| "unknown".to_owned(), |u| u.email.to_string()),
        action: action.to_owned(),
        target: target.to_owned(),
        ip: Some(ip.0.to_string()),
    }
}

fn user_key(user: &User) -> String {
    format!("user:{}", user.id)
}

fn ip_key(ip: ClientIp) -> String {
    format!("ip:{}", ip.0)
}

/// Whether the account `key` is blocked now; the time it is blocked until.
async fn blocked(
    state: &PortalState,
    key: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, PortalError> {
    let Some(t) = state.store.login_throttle(key).await? else { return Ok(None) };
    let until =
        state.config.lockout.blocked_until(&Failures { count: t.failures, last_at: t.last_failure_at });
    Ok(until.filter(|until| *until > state.now()))
}

/// The failures of a source address that still count (none once they are forgotten).
async fn address_failures(state: &PortalState, ip: ClientIp) -> Result<Option<Failures>, PortalError> {
    let Some(t) = state.store.login_throttle(&ip_key(ip)).await? else { return Ok(None) };
    let failures = Failures { count: t.failures, last_at: t.last_failure_at };
    let forgotten = state.config.address_lockout.forgets(&failures, state.now(), ADDRESS_FORGET_AFTER);
    Ok((!forgotten).then_some(failures))
}

/// Whether the source address is blocked now; the time it is blocked until.
async fn address_blocked(
    state: &PortalState,
    ip: ClientIp,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, PortalError> {
    let Some(failures) = address_failures(state, ip).await? else { return Ok(None) };
    let until = state.config.address_lockout.blocked_until(&failures);
    Ok(until.filter(|until| *until > state.now()))
}

/// Counts a failure of the source address; a forgotten count starts again from one.
async fn record_address_failure(state: &PortalState, ip: ClientIp) -> Result<(), PortalError> {
    if address_failures(state, ip).await?.is_none() {
        state.store.clear_login_failures(&ip_key(ip)).await?;
    }
    state.store.record_login_failure(&ip_key(ip), state.now()).await?;
    Ok(())
}

fn blocked_page(
    email: &str,
    until: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Response {
    let seconds = (until - now).num_seconds().max(1);
    let wait =
        if seconds < 120 { format!("{seconds} seconds") } else { format!("{} minutes", seconds / 60 + 1) };
    let page = LoginPage {
        message: Some(format!("Too many failed attempts. Try again in {wait}.")),
        email: email.to_owned(),
    };
    let mut response = render(&page).into_response();
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// `POST /login`: the password step.
pub async fn login_submit(
    State(state): State<PortalState>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PortalError> {
    let now = state.now();
    let password = SecretString::from(form.password);
    let shown_email: String = form.email.chars().take(254).collect();
    if let Some(until) = address_blocked(&state, ip).await? {
        state.store.append_audit(&audit(&state, None, "login.blocked", ip, "address")).await?;
        return Ok(blocked_page(&shown_email, until, now));
    }
    let user = match EmailAddress::parse(form.email.trim()) {
        Ok(email) => match state.store.user_by_email(&email).await {
            Ok(user) => Some(user),
            Err(orb_store::StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        Err(_) => None,
    };
    let failed = |user: Option<User>| {
        let state = state.clone();
        let shown_email = shown_email.clone();
        async move {
            record_address_failure(&state, ip).await?;
            if let Some(user) = &user {
                state.store.record_login_failure(&user_key(user), now).await?;
            }
            state.store.append_audit(&audit(&state, user.as_ref(), "login.failed", ip, "password")).await?;
            let page = LoginPage { message: Some(GENERIC_FAILURE.to_owned()), email: shown_email };
            let mut response = render(&page)?.into_response();
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            Ok::<Response, PortalError>(response)
        }
    };
    let Some(user) = user.filter(|u| !u.disabled && u.password_hash.is_some()) else {
        orb_auth::verify_dummy(&password);
        return failed(None).await;
    };
    if let Some(until) = blocked(&state, &user_key(&user)).await? {
        state.store.append_audit(&audit(&state, Some(&user), "login.blocked", ip, "account")).await?;
        return Ok(blocked_page(&shown_email, until, now));
    }
    let hash = user.password_hash.clone().unwrap_or_default();
    let ok = orb_auth::verify_password(&password, &hash).map_err(|e| {
        tracing::error!(user = %user.id, error = %e, "stored password hash is malformed");
        PortalError::BadRequest("your password cannot be checked; ask an administrator to reset it".into())
    })?;
    if !ok {
        return failed(Some(user)).await;
    }
    if let Some(tenant) = user.tenant_id {
        let policy = state.backend.policy(tenant).await?;
        if !policy.portal_allow.allows(ip.0) {
            state
                .store
                .append_audit(&audit(&state, Some(&user), "login.refused_address", ip, "portal"))
                .await?;
            return Err(PortalError::AddressRefused);
        }
    }
    // The account's count only: the address's decays (one valid account must not reset it).
    state.store.clear_login_failures(&user_key(&user)).await?;
    let needs_factor = user.totp_enabled || mfa_required(&state, &user).await?;
    if needs_factor {
        let (_, cookie) = start_session(&state, &user, SessionStage::SecondFactor, ip, &headers).await?;
        let to = if user.totp_enabled { "/login/second-factor" } else { "/login/enrol" };
        return Ok(([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response());
    }
    finish_login(&state, &user, ip, &headers, "login", "password").await
}

/// Whether the user must have a second factor: operators always; tenant users when their tenant says so.
async fn mfa_required(state: &PortalState, user: &User) -> Result<bool, PortalError> {
    match (user.role, user.tenant_id) {
        (Role::Operator, _) | (_, None) => Ok(true),
        (_, Some(tenant)) => Ok(state.backend.policy(tenant).await?.mfa_required),
    }
}

/// Starts the full session, records the login and redirects home.
async fn finish_login(
    state: &PortalState,
    user: &User,
    ip: ClientIp,
    headers: &HeaderMap,
    action: &str,
    how: &str,
) -> Result<Response, PortalError> {
    let (_, cookie) = start_session(state, user, SessionStage::Full, ip, headers).await?;
    state.store.record_login(user.id, state.now()).await?;
    state.store.append_audit(&audit(state, Some(user), action, ip, how)).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

/// The half-logged-in session of a request (password passed, second factor owed).
async fn pending(
    state: &PortalState,
    headers: &HeaderMap,
) -> Result<(orb_store::SessionRow, User), PortalError> {
    match current_session(state, headers).await? {
        Some((session, user)) if session.stage == SessionStage::SecondFactor => Ok((session, user)),
        _ => Err(PortalError::Unauthenticated),
    }
}

/// `GET /login/second-factor`.
pub async fn second_factor_page(
    State(state): State<PortalState>,
    headers: HeaderMap,
) -> Result<Response, PortalError> {
    let (session, user) = pending(&state, &headers).await?;
    if !user.totp_enabled {
        return Ok(Redirect::to("/login/enrol").into_response());
    }
    Ok(render(&SecondFactorPage { csrf: state.csrf_token(session.id), message: None })?.into_response())
}

/// The second-factor form: a TOTP code or a recovery code.
#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

/// Checks a TOTP code for `user` (claiming its step) or, failing that, a recovery code.
pub(crate) async fn check_code(state: &PortalState, user: &User, code: &str) -> Result<bool, PortalError> {
    let code = code.trim();
    if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        let Some(sealed) = &user.totp else { return Ok(false) };
        let secret = TotpSecret::from_bytes(state.backend.open_totp(user.id, sealed)?);
        return match orb_auth::verify_code(&secret, code, state.now()) {
            Some(step) => Ok(state.store.claim_totp_step(user.id, step).await?),
            None => Ok(false),
        };
    }
    if code.len() >= 10 && user.totp_enabled {
        return Ok(state.store.use_recovery_code(user.id, &orb_auth::hash_recovery_code(code)).await?);
    }
    Ok(false)
}

/// `POST /login/second-factor`.
pub async fn second_factor_submit(
    State(state): State<PortalState>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, PortalError> {
    let (session, user) = pending(&state, &headers).await?;
    let now = state.now();
    if let Some(until) = blocked(&state, &user_key(&user)).await? {
        state.store.append_audit(&audit(&state, Some(&user), "login.blocked", ip, "account")).await?;
        let seconds = (until - now).num_seconds().max(1);
        let page = SecondFactorPage {
            csrf: state.csrf_token(session.id),
            message: Some(format!("Too many failed attempts. Try again in {seconds} seconds.")),
        };
        let mut response = render(&page)?.into_response();
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return Ok(response);
    }
    if check_code(&state, &user, &form.code).await? {
        state.store.clear_login_failures(&user_key(&user)).await?;
        state.store.delete_session(session.id).await?;
        return finish_login(&state, &user, ip, &headers, "login", "password+totp").await;
    }
    state.store.record_login_failure(&user_key(&user), now).await?;
    state.store.append_audit(&audit(&state, Some(&user), "login.failed", ip, "second factor")).await?;
    let page = SecondFactorPage {
        csrf: state.csrf_token(session.id),
        message: Some("That code is not valid (or was used already). Enter the current code.".into()),
    };
    let mut response = render(&page)?.into_response();
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    Ok(response)
}

/// The user's pending TOTP secret: the one stored but not confirmed yet, or a new one (stored sealed).
pub(crate) async fn pending_secret(state: &PortalState, user: &User) -> Result<TotpSecret, PortalError> {
    if let (Some(sealed), false) = (&user.totp, user.totp_enabled) {
        return Ok(TotpSecret::from_bytes(state.backend.open_totp(user.id, sealed)?));
    }
    let secret = TotpSecret::generate();
    let sealed = state.backend.seal_totp(user.id, secret.expose_bytes())?;
    state.store.set_user_totp(user.id, Some(&sealed), false, None).await?;
    Ok(secret)
}

/// The enrolment page's QR code, URI and secret.
pub(crate) fn enrol_view(
    state: &PortalState,
    user: &User,
    secret: &TotpSecret,
    csrf: String,
    message: Option<String>,
    action: &'static str,
) -> Result<axum::response::Html<String>, PortalError> {
    let otpauth = orb_auth::otpauth_uri(secret, &state.config.totp_issuer, user.email.as_str());
    render(&EnrolPage {
        csrf,
        message,
        qr_svg: orb_auth::qr_svg(&otpauth),
        secret_base32: secret.to_base32(),
        otpauth,
        action,
    })
}

/// Confirms an enrolment with a code: enables TOTP, makes recovery codes; returns them, or `None` when the
/// code was wrong.
pub(crate) async fn confirm_enrolment(
    state: &PortalState,
    user: &User,
    code: &str,
    ip: ClientIp,
) -> Result<Option<Vec<String>>, PortalError> {
    let Some(sealed) = user.totp.clone().filter(|_| !user.totp_enabled) else { return Ok(None) };
    let secret = TotpSecret::from_bytes(state.backend.open_totp(user.id, &sealed)?);
    let Some(step) = orb_auth::verify_code(&secret, code.trim(), state.now()) else { return Ok(None) };
    if !state.store.claim_totp_step(user.id, step).await? {
        return Ok(None);
    }
    // One action, one audit row: the enrolment (its recovery codes are part of it).
    state.store.set_user_totp(user.id, Some(&sealed), true, None).await?;
    let codes = orb_auth::generate_recovery_codes(10);
    let hashes: Vec<Vec<u8>> =
        codes.iter().map(|c| orb_auth::hash_recovery_code(c.expose_secret())).collect();
    let enrol = audit(state, Some(user), "mfa.enrol", ip, "totp, 10 recovery codes");
    state.store.replace_recovery_codes(user.id, &hashes, &enrol).await?;
    Ok(Some(codes.iter().map(|c| c.expose_secret().to_owned()).collect()))
}

/// `GET /login/enrol`: a second factor the tenant requires, set up during login.
pub async fn enrol_page(
    State(state): State<PortalState>,
    headers: HeaderMap,
) -> Result<Response, PortalError> {
    let (session, user) = pending(&state, &headers).await?;
    if user.totp_enabled {
        return Ok(Redirect::to("/login/second-factor").into_response());
    }
    let secret = pending_secret(&state, &user).await?;
    let user = state.store.get_user(user.id).await?;
    Ok(enrol_view(&state, &user, &secret, state.csrf_token(session.id), None, "/login/enrol")?
        .into_response())
}

/// `POST /login/enrol`.
pub async fn enrol_submit(
    State(state): State<PortalState>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Result<Response, PortalError> {
    let (session, user) = pending(&state, &headers).await?;
    match confirm_enrolment(&state, &user, &form.code, ip).await? {
        Some(codes) => {
            state.store.delete_session(session.id).await?;
            let (_, cookie) = start_session(&state, &user, SessionStage::Full, ip, &headers).await?;
            state.store.record_login(user.id, state.now()).await?;
            state
                .store
                .append_audit(&audit(&state, Some(&user), "login", ip, "password+totp enrolment"))
                .await?;
            Ok(([(header::SET_COOKIE, cookie)], render(&RecoveryCodesPage { codes })?).into_response())
        }
        None => {
            state
                .store
                .append_audit(&audit(&state, Some(&user), "login.failed", ip, "enrolment code"))
                .await?;
            let secret = pending_secret(&state, &user).await?;
            let message = Some("That code is not valid. Enter the code your app shows now.".to_owned());
            let mut response =
                enrol_view(&state, &user, &secret, state.csrf_token(session.id), message, "/login/enrol")?
                    .into_response();
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(response)
        }
    }
}

/// `POST /logout`.
pub async fn logout(State(state): State<PortalState>, principal: Principal) -> Result<Response, PortalError> {
    if let Some(id) = principal.session_id() {
        state.store.delete_session(id).await?;
    }
    state
        .store
        .append_audit(&audit(&state, Some(&principal.user), "logout", principal.ip, "session"))
        .await?;
    Ok((
        [(header::SET_COOKIE, clear_cookie(state.config.secure_cookies))],
        Redirect::to("/login?message=logged-out"),
    )
        .into_response())
}

/// Query of `GET /login/sso`.
#[derive(Deserialize)]
pub struct SsoQuery {
    tenant: String,
}

fn callback_url(state: &PortalState, headers: &HeaderMap) -> Result<Url, PortalError> {
    let origin = super::csrf::expected_origin(state, headers).ok_or(PortalError::NotFound)?;
    Url::parse(&format!("{origin}/login/sso/callback")).map_err(|_| PortalError::NotFound)
}

async fn relying_party(
    state: &PortalState,
    tenant: orb_core::TenantId,
    headers: &HeaderMap,
) -> Result<OidcRelyingParty, PortalError> {
    let policy = state.backend.policy(tenant).await?;
    let sso = policy.sso.ok_or(PortalError::NotFound)?;
    let config = OidcConfig {
        issuer: sso.issuer,
        client_id: sso.client_id,
        client_secret: state.backend.sso_client_secret(tenant).await?,
        redirect_uri: callback_url(state, headers)?,
    };
    OidcRelyingParty::discover(config, state.http.clone()).await.map_err(|e| {
        tracing::warn!(error = %e, "OpenID provider discovery failed");
        PortalError::BadRequest(format!("the tenant's single sign-on provider cannot be reached: {e}"))
    })
}

/// `GET /login/sso?tenant=NAME`: off to the tenant's OpenID provider.
pub async fn sso_start(
    State(state): State<PortalState>,
    headers: HeaderMap,
    Query(q): Query<SsoQuery>,
) -> Result<Response, PortalError> {
    let name = TenantName::parse(q.tenant.trim()).map_err(|_| PortalError::NotFound)?;
    let tenant = state.store.tenant_by_name(&name).await.map_err(|_| PortalError::NotFound)?;
    let rp = relying_party(&state, tenant.id, &headers).await?;
    let (url, pending) = rp.begin();
    let now = state.now();
    state.store.purge_oidc_flows(now - chrono::Duration::minutes(10)).await?;
    state
        .store
        .put_oidc_flow(&OidcFlow {
            state_hash: orb_auth::hash_token(&pending.state),
            tenant_id: tenant.id,
            nonce: pending.nonce.clone(),
            pkce_verifier: pending.pkce_verifier.clone(),
            return_to: None,
            created_at: now,
        })
        .await?;
    // Not a redirect: the SSO form is a form submission, and browsers apply the portal's CSP
    // `form-action 'self'` to the redirects that follow one, so a redirect to the provider is blocked.
    Ok(moving_on(url.as_str(), "Continue to your organisation's sign-in"))
}

/// A page that moves on to `url` by itself (meta refresh, and a link saying `label`), for the two hops
/// of single sign-on a redirect cannot make (see [`sso_start`] and [`sso_callback`]).
fn moving_on(url: &str, label: &str) -> Response {
    let url = super::error::html_escape(url);
    axum::response::Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>Single sign-on · ORB</title></head>\
         <body><p><a href=\"{url}\" id=\"moving-on\">{label}</a></p></body></html>"
    ))
    .into_response()
}

/// Query of the SSO callback.
#[derive(Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
}

/// `GET /login/sso/callback`: back from the provider with a code.
pub async fn sso_callback(
    State(state): State<PortalState>,
    ip: ClientIp,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, PortalError> {
    let fail = || Ok(Redirect::to("/login?message=sso-failed").into_response());
    let (Some(code), Some(flow_state)) = (q.code, q.state) else { return fail() };
    let Some(flow) = state.store.take_oidc_flow(&orb_auth::hash_token(&flow_state)).await? else {
        return fail();
    };
    if state.now() - flow.created_at > chrono::Duration::minutes(10) {
        return fail();
    }
    let rp = relying_party(&state, flow.tenant_id, &headers).await?;
    let pending = OidcPending {
        state: flow_state,
        nonce: flow.nonce.clone(),
        pkce_verifier: flow.pkce_verifier.clone(),
    };
    let identity = match rp.finish(&code, &pending).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on refused");
            let entry = NewAuditEntry {
                tenant_id: Some(flow.tenant_id),
                at: state.now(),
                actor: "unknown".into(),
                action: "login.failed".into(),
                target: "sso".into(),
                ip: Some(ip.0.to_string()),
            };
            state.store.append_audit(&entry).await?;
            return fail();
        }
    };
    let user = match state.store.user_by_email(&identity.email).await {
        Ok(u) if u.tenant_id == Some(flow.tenant_id) && !u.disabled => u,
        _ => {
            let entry = NewAuditEntry {
                tenant_id: Some(flow.tenant_id),
                at: state.now(),
                actor: identity.email.to_string(),
                action: "login.failed".into(),
                target: "sso: no such user in this tenant".into(),
                ip: Some(ip.0.to_string()),
            };
            state.store.append_audit(&entry).await?;
            return fail();
        }
    };
    let policy = state.backend.policy(flow.tenant_id).await?;
    if !policy.portal_allow.allows(ip.0) {
        state.store.append_audit(&audit(&state, Some(&user), "login.refused_address", ip, "portal")).await?;
        return Err(PortalError::AddressRefused);
    }
    // The session cookie is SameSite=Strict: on a redirect chain that started at the provider (another
    // site) the browser would not send it to `/`, and the user would land on the login page. A page of
    // the portal's own moves on instead, and its navigation carries the cookie.
    let login = finish_login(&state, &user, ip, &headers, "login.sso", "sso").await?;
    let mut response = moving_on("/", "Continue to the portal");
    if let Some(cookie) = login.headers().get(header::SET_COOKIE) {
        response.headers_mut().insert(header::SET_COOKIE, cookie.clone());
    }
    Ok(response)
}
