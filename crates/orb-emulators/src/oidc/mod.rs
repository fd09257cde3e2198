//! A small OpenID Provider: the authorization code flow with PKCE, for ORB's single sign-on tests and
//! the demo.
//!
//! Endpoints (issuer = `http://127.0.0.1:<port>` once served):
//! - `GET /.well-known/openid-configuration` — discovery (RS256, `code`, S256, `client_secret_basic` /
//!   `client_secret_post` / `none`);
//! - `GET /jwks` — the signing key (RSA-2048 made at start with aws-lc-rs);
//! - `GET /authorize` — checks `client_id`, `redirect_uri` (exactly as registered), `response_type=code`,
//!   scope `openid`, `code_challenge` with `code_challenge_method=S256`; answers a sign-in page (plain
//!   HTML form, no script, no style) or, for an untrusted client or redirect URI, an error page (never a
//!   redirect); other errors go back to the redirect URI as `error=…&state=…`;
//! - `POST /authorize` — the form: e-mail + password of a seeded user → `303` to
//!   `redirect_uri?code=…&state=…`, or the page again with an error (`401`);
//! - `POST /token` — `authorization_code` grant: client authentication, PKCE verifier, `redirect_uri`,
//!   one-time codes expiring after 60 s; an ID token with `iss`, `sub`, `aud`, `exp`, `iat`, `nonce`,
//!   `email`, `email_verified`; errors as RFC 6749 §5.2 JSON;
//! - `GET|POST /userinfo` — bearer access token → `sub`, `email`, `email_verified`.
//!
//! Control API (no auth): `POST /_emulator/clients` (`clientId`, `clientSecret`, `redirectUris`),
//! `POST /_emulator/users` (`email`, `password`, `emailVerified`, optional `subject`), `GET
//! /_emulator/state` (no secrets, no passwords).
//!
//! Invariants: state lives behind one mutex never held across an `.await`; time comes only from the
//! injected [`Clock`].
//!
//! Must not depend on: orb-auth, orb-engine, orb-web (it stands in for the outside world).

mod api;
mod control;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use chrono::{DateTime, Utc};
use orb_core::Clock;
use orb_crypto::ValidationTokenSigner;
use uuid::Uuid;

pub use state::{
    ACCESS_TOKEN_LIFETIME, AuthorizeError, AuthorizeRequest, CODE_LIFETIME, Client, ClientAuth,
    ID_TOKEN_LIFETIME, Issued, State, TokenError, TokenRequest, User, s256_challenge,
};

/// The key id of the emulator's signing key.
pub const KEY_ID: &str = "oidc-emulator-1";

/// A handle on one emulated provider. Clones share the same state and key.
#[derive(Clone)]
pub struct OidcEmulator {
    shared: Arc<Mutex<State>>,
    signer: Arc<ValidationTokenSigner>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OidcEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcEmulator").field("issuer", &self.issuer()).finish_non_exhaustive()
    }
}

/// A running emulator (stopped when dropped).
#[derive(Debug)]
pub struct ServedEmulator {
    /// `http://127.0.0.1:<port>`: the issuer and base URL.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The state handle.
    pub emulator: OidcEmulator,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServedEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OidcEmulator {
    /// An empty provider (no clients, no users) with a fresh RSA-2048 signing key, whose time comes from
    /// `clock`. Its issuer is set by [`Self::serve`], or by [`Self::set_issuer`] when mounted elsewhere.
    ///
    /// # Panics
    /// When aws-lc-rs cannot make an RSA key (a broken random number generator).
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let signer = ValidationTokenSigner::generate(KEY_ID)
            .expect("aws-lc-rs could not make an RSA-2048 key: the system random number generator failed");
        Self { shared: Arc::new(Mutex::new(State::default())), signer: Arc::new(signer), clock }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn signer(&self) -> &ValidationTokenSigner {
        &self.signer
    }

    /// The issuer identifier (empty until served or set).
    pub fn issuer(&self) -> String {
        self.lock().issuer.clone()
    }

    /// Sets the issuer identifier: the base URL the endpoints are reached at, without a trailing `/`.
    pub fn set_issuer(&self, issuer: &str) {
        self.lock().issuer = issuer.trim_end_matches('/').to_owned();
    }

    /// Registers a client: `secret` `None` makes it public (PKCE only). Redirect URIs are matched
    /// exactly. Replaces a client with the same id.
    pub fn add_client(&self, id: &str, secret: Option<&str>, redirect_uris: &[&str]) {
        let client = Client {
            id: id.to_owned(),
            secret: secret.map(str::to_owned),
            redirect_uris: redirect_uris.iter().map(|r| (*r).to_owned()).collect(),
        };
        self.lock().clients.insert(id.to_owned(), client);
    }

    /// Adds a user who can sign in; returns the subject identifier (a fresh UUID).
    pub fn add_user(&self, email: &str, password: &str, email_verified: bool) -> String {
        let subject = Uuid::new_v4().to_string();
        self.add_user_with_subject(&subject, email, password, email_verified);
        subject
    }

    /// Adds a user with a chosen subject identifier.
    pub fn add_user_with_subject(&self, subject: &str, email: &str, password: &str, email_verified: bool) {
        self.lock().users.push(User {
            subject: subject.to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
            email_verified,
        });
    }

    /// Runs `f` on the state (inspection and direct edits in tests).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.lock())
    }

    /// Serves the provider on `127.0.0.1:0` and sets the issuer to its base URL.
    pub async fn serve(self) -> std::io::Result<ServedEmulator> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        self.set_issuer(&base_url);
        let app = router(self.clone());
        let task = tokio::spawn(async move {
            // The server runs until the task is aborted; an accept error ends it.
            let _ = axum::serve(listener, app).await;
        });
        Ok(ServedEmulator { base_url, addr, emulator: self, task })
    }
}

/// The emulator as an axum app: the provider's endpoints and the control API under `/_emulator/`.
pub fn router(emulator: OidcEmulator) -> Router {
    api::router(emulator.clone()).merge(control::router(emulator))
}
