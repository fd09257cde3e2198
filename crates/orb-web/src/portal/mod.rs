//! # The admin portal
//!
//! Server-rendered pages (askama templates, htmx vendored under `/static`, no inline script or style) and the
//! admin JSON API under `/api/v1` (its OpenAPI document at `/api/openapi.json`), served from one router
//! ([`router`]) by `orb serve` and `orb demo`, on the public listener or on a listener of its own.
//!
//! ## Invariants
//! - **Tenant scoping below the handlers**: handlers reach tenant data only through a [`scope::Scope`],
//!   built from the session's principal; a tenant the principal may not see is a 404 ([`scope`]).
//! - **Every state-changing request** (any method but GET/HEAD) passes the Origin check, and, when it comes
//!   with a session cookie, carries the session's CSRF token (form field `_csrf` or header `X-CSRF-Token`)
//!   ([`csrf`]). API requests authenticate with a bearer token and send no cookie.
//! - Every response carries a strict Content-Security-Policy (`script-src 'self'`, `style-src 'self'`, no
//!   inline anything), `X-Frame-Options: DENY`, `Referrer-Policy: same-origin`, `nosniff` and
//!   `Cache-Control: no-store` ([`headers`]).
//! - The installation's allow-list is checked before anything else; a tenant's allow-list once the user is
//!   known (at login and on every request).
//! - Secrets entered in the portal are write-only: sealed by the backend, never rendered back.
//! - Each action leaves exactly one audit row; so does each view of a booking's detail.
//! - Time comes from the injected [`orb_core::Clock`].

pub mod api;
pub mod api_admin;
pub mod backend;
pub mod csrf;
pub mod error;
pub mod headers;
pub mod login;
pub mod pages;
pub mod routes;
pub mod scope;
pub mod session;
pub mod view;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use orb_auth::{CsrfKey, IpAllowList, LockoutPolicy};
use orb_core::Clock;
use orb_store::Store;

pub use backend::PortalBackend;
pub use error::PortalError;
pub use routes::{Access, RouteInfo};

/// How the portal is set up (from the installation's `[portal]` configuration).
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// `__Host-` cookies with `Secure` (always, except `orb demo` on a loopback address over plain http).
    pub secure_cookies: bool,
    /// The portal's origin as browsers see it (`https://orb.example.com`), checked against `Origin`; when
    /// `None`, the request's `Host` with the scheme `secure_cookies` implies.
    pub origin: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (empty: the socket address is the client's).
    pub trusted_proxies: IpAllowList,
    /// The installation's allow-list for the portal (empty: anywhere; tenants narrow it further).
    pub allow: IpAllowList,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    pub absolute_timeout: Duration,
    /// Failed logins of an account: back-off and lockout.
    pub lockout: LockoutPolicy,
    /// Failed logins from one source address (shared by everyone behind one NAT): a higher allowance
    /// ([`LockoutPolicy::for_addresses`]); a success does not clear it, it decays
    /// ([`orb_auth::ADDRESS_FORGET_AFTER`]).
    pub address_lockout: LockoutPolicy,
    /// The issuer name shown in authenticator apps.
    pub totp_issuer: String,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            secure_cookies: true,
            origin: None,
            trusted_proxies: IpAllowList::default(),
            allow: IpAllowList::default(),
            idle_timeout: Duration::minutes(30),
            absolute_timeout: Duration::hours(12),
            lockout: LockoutPolicy::default(),
            address_lockout: LockoutPolicy::for_addresses(),
            totp_issuer: "ORB".to_owned(),
        }
    }
}

/// What every portal handler shares.
#[derive(Clone)]
pub struct PortalState {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    backend: Arc<dyn PortalBackend>,
    config: Arc<PortalConfig>,
    csrf: Arc<CsrfKey>,
    http: reqwest::Client,
}

impl std::fmt::Debug for PortalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalState").field("config", &self.config).finish_non_exhaustive()
    }
}

impl PortalState {
    /// A portal over `store`, asking `backend` for the rest, with a fresh CSRF key (sessions survive a
    /// restart; their forms need a reload).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        backend: Arc<dyn PortalBackend>,
        config: PortalConfig,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { store, clock, backend, config: Arc::new(config), csrf: Arc::new(CsrfKey::generate()), http }
    }

    /// Uses `http` for calls to OpenID providers (tests: trust the emulator).
    #[must_use]
    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The CSRF token of a session.
    pub fn csrf_token(&self, session_id: i64) -> String {
        self.csrf.token(session_id)
    }

    /// The configuration.
    pub fn config(&self) -> &PortalConfig {
        &self.config
    }
}

/// The portal's router: pages, login, the JSON API and its OpenAPI document, static assets.
pub fn router(state: PortalState) -> axum::Router {
    routes::book(state).router
}
