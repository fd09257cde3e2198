//! Who is asking: the session cookie (or an API bearer token) turned into a [`Principal`], with the
//! session's idle and absolute timeouts, the client's address and the allow-lists checked on the way.
//!
//! ## Invariants
//! - The cookie carries a random token; the store keeps only its SHA-256, so a stolen database gives no
//!   session. A new session (login, second factor passed) always gets a new token (no fixation).
//! - The cookie is `__Host-orb_session`, `Secure; HttpOnly; SameSite=Strict; Path=/`; only `orb demo` on a
//!   loopback address may use the plain-http name `orb_session` without `Secure`
//!   ([`super::PortalConfig::secure_cookies`]).
//! - A session past its idle or absolute timeout is deleted when it is next seen, and counts as none.
//! - A disabled user has no sessions or tokens (the store deletes them when it disables), and is refused
//!   here too.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use chrono::{DateTime, Duration, Utc};
use orb_store::{ApiScope, ApiTokenRow, NewSession, SessionRow, SessionStage, User};
use secrecy::ExposeSecret;

use super::PortalState;
use super::error::PortalError;

/// The client's address as the portal trusts it (socket, or `X-Forwarded-For` behind trusted proxies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// Resolves the address of a request.
    pub fn of(parts_headers: &HeaderMap, socket: Option<SocketAddr>, state: &PortalState) -> Self {
        let socket_ip = socket.map_or(IpAddr::from([127, 0, 0, 1]), |s| s.ip());
        let xff = parts_headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        Self(orb_auth::client_ip(socket_ip, xff, &state.config.trusted_proxies))
    }
}

impl FromRequestParts<PortalState> for ClientIp {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            return Ok(*ip);
        }
        let socket = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        Ok(Self::of(&parts.headers, socket, state))
    }
}

/// How the principal authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A browser session (cookie).
    Session(SessionRow),
    /// An API bearer token.
    Token(ApiTokenRow),
}

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user.
    pub user: User,
    /// Cookie session or API token.
    pub credential: Credential,
    /// Where the request came from.
    pub ip: ClientIp,
}

impl Principal {
    /// Whether this principal may change things: an operator or tenant-admin role, and, for API tokens, a
    /// write scope.
    pub fn can_write(&self) -> bool {
        let token_allows = match &self.credential {
            Credential::Session(_) => true,
            Credential::Token(t) => t.scope == ApiScope::Write,
        };
        self.user.role.can_write() && token_allows
    }

    /// The session id, for a cookie session.
    pub fn session_id(&self) -> Option<i64> {
        match &self.credential {
            Credential::Session(s) => Some(s.id),
            Credential::Token(_) => None,
        }
    }

    /// Who, for audit rows: the user's e-mail address.
    pub fn actor(&self) -> String {
        self.user.email.to_string()
    }
}

/// The cookie's name.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-orb_session" } else { "orb_session" }
}

/// The `Set-Cookie` value for a new session token.
pub fn session_cookie(secure: bool, token: &str) -> HeaderValue {
    let secure_attr = if secure { "; Secure" } else { "" };
    let value = format!("{}={token}; Path=/; HttpOnly; SameSite=Strict{secure_attr}", cookie_name(secure));
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let secure_attr = if secure { "; Secure" } else { "" };
    let value =
        format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure_attr}", cookie_name(secure));
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The session token in a request's cookies, if any.
pub fn cookie_token(headers: &HeaderMap, secure: bool) -> Option<String> {
    let name = cookie_name(secure);
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
        cookies.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_owned())
        })
    })
}

/// Starts a session for `user` at `stage`; returns the row and the `Set-Cookie` header value.
pub async fn start_session(
    state: &PortalState,
    user: &User,
    stage: SessionStage,
    ip: ClientIp,
    headers: &HeaderMap,
) -> Result<(SessionRow, HeaderValue), PortalError> {
    let (token, hash) = orb_auth::random_token();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect());
    let row = state
        .store
        .create_session(
            &NewSession {
                token_hash: hash,
                user_id: user.id,
                stage,
                source_ip: Some(ip.0.to_string()),
                user_agent,
            },
            state.now(),
        )
        .await?;
    Ok((row, session_cookie(state.config.secure_cookies, token.expose_secret())))
}

/// Whether a session is past its idle or absolute timeout at `now`.
pub fn expired(session: &SessionRow, now: DateTime<Utc>, idle: Duration, absolute: Duration) -> bool {
    now - session.last_seen_at > idle || now - session.created_at > absolute
}

/// Whether a session is past the timeouts of its stage at `now` (half a login waits at most ten minutes
/// for its second factor).
pub fn timed_out(state: &PortalState, session: &SessionRow, now: DateTime<Utc>) -> bool {
    let stage_idle = match session.stage {
        SessionStage::Full => state.config.idle_timeout,
        SessionStage::SecondFactor => state.config.idle_timeout.min(Duration::minutes(10)),
    };
    expired(session, now, stage_idle, state.config.absolute_timeout)
}

/// The session a request's cookie names, if it is live (an expired one is deleted). Any stage.
pub async fn current_session(
    state: &PortalState,
    headers: &HeaderMap,
) -> Result<Option<(SessionRow, User)>, PortalError> {
    let Some(token) = cookie_token(headers, state.config.secure_cookies) else { return Ok(None) };
    let Some(session) = state.store.session_by_token_hash(&orb_auth::hash_token(&token)).await? else {
        return Ok(None);
    };
    let now = state.now();
    if timed_out(state, &session, now) {
        state.store.delete_session(session.id).await?;
        return Ok(None);
    }
    let user = match state.store.get_user(session.user_id).await {
        Ok(user) => user,
        Err(orb_store::StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if user.disabled {
        state.store.delete_session(session.id).await?;
        return Ok(None);
    }
    // Touch at most once a minute: the idle timeout needs no finer grain.
    if now - session.last_seen_at > Duration::minutes(1) {
        state.store.touch_session(session.id, now).await?;
    }
    Ok(Some((session, user)))
}

/// Checks the tenant allow-list for a user (operators: the installation's list only, checked earlier).
pub async fn check_user_address(state: &PortalState, user: &User, ip: ClientIp) -> Result<(), PortalError> {
    if let Some(tenant) = user.tenant_id {
        let policy = state.backend.policy(tenant).await?;
        if !policy.portal_allow.allows(ip.0) {
            return Err(PortalError::AddressRefused);
        }
    }
    Ok(())
}

/// A logged-in user with a full session: every page but the login pages requires one.
impl FromRequestParts<PortalState> for Principal {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let ip = ClientIp::from_request_parts(parts, state).await?;
        let principal = if let Some(bearer) = bearer_token(&parts.headers) {
            let Some(token) = state.store.api_token_by_hash(&orb_auth::hash_token(bearer)).await? else {
                return Err(PortalError::Unauthenticated);
            };
            let now = state.now();
            if token.revoked || token.expires_at.is_some_and(|at| at <= now) {
                return Err(PortalError::Unauthenticated);
            }
            let user = state.store.get_user(token.user_id).await.map_err(|_| PortalError::Unauthenticated)?;
            if user.disabled {
                return Err(PortalError::Unauthenticated);
            }
            if token.last_used_at.is_none_or(|at| now - at > Duration::minutes(1)) {
                state.store.touch_api_token(token.id, now).await?;
            }
            Principal { user, credential: Credential::Token(token), ip }
        } else {
            match current_session(state, &parts.headers).await? {
                Some((session, user)) if session.stage == SessionStage::Full => {
                    if user.password_temporary
                        && !allowed_with_temporary_password(&parts.method, parts.uri.path())
                    {
                        return Err(PortalError::PasswordChangeRequired);
                    }
                    Principal { user, credential: Credential::Session(session), ip }
                }
                _ => return Err(PortalError::Unauthenticated),
            }
        };
        check_user_address(state, &principal.user, ip).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// What a user whose password someone else set (an invitation, a reset) may do before choosing their own:
/// see their account page, change the password, log out. Everything else sends them to the account page.
fn allowed_with_temporary_password(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    matches!((method, path), (&Method::GET, "/account") | (&Method::POST, "/account/password" | "/logout"))
}

/// The bearer token of an `Authorization` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_host_prefixed_secure_httponly_and_strict_unless_demo() {
        let secure = session_cookie(true, "abc");
        assert_eq!(
            secure.to_str().unwrap(),
            "__Host-orb_session=abc; Path=/; HttpOnly; SameSite=Strict; Secure"
        );
        let demo = session_cookie(false, "abc");
        assert_eq!(demo.to_str().unwrap(), "orb_session=abc; Path=/; HttpOnly; SameSite=Strict");
    }

    #[test]
    fn the_token_is_read_from_the_right_cookie_only() {
        let check = |cookie: &str, secure: bool, expected: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
            assert_eq!(cookie_token(&headers, secure).as_deref(), expected, "{cookie}");
        };
        check("__Host-orb_session=t1", true, Some("t1"));
        check("a=b; __Host-orb_session=t2; c=d", true, Some("t2"));
        check("orb_session=t3", true, None);
        check("orb_session=t3", false, Some("t3"));
        check("__Host-orb_session=", true, None);
        check("x__Host-orb_session=t4", true, None);
    }

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z").unwrap().with_timezone(&Utc);
        let row = |created: i64, seen: i64| SessionRow {
            id: 1,
            token_hash: vec![],
            user_id: orb_store::UserId(1),
            stage: SessionStage::Full,
            created_at: t0 + Duration::minutes(created),
            last_seen_at: t0 + Duration::minutes(seen),
            source_ip: None,
            user_agent: None,
        };
        let idle = Duration::minutes(30);
        let absolute = Duration::hours(12);
        let now = t0 + Duration::hours(1);
        assert!(!expired(&row(0, 40), now, idle, absolute));
        assert!(expired(&row(0, 20), now, idle, absolute));
        assert!(expired(&row(0, 12 * 60), t0 + Duration::hours(12) + Duration::minutes(1), idle, absolute));
        assert!(!expired(&row(0, 12 * 60), t0 + Duration::hours(12), idle, absolute));
    }

    #[test]
    fn bearer_tokens_are_parsed_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
    }
}
