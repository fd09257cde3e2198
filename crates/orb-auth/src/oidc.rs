//! OpenID Connect single sign-on, relying-party side: authorization code flow with PKCE (S256) over the
//! `openidconnect` crate, speaking HTTP through ORB's own reqwest client.
//!
//! Flow: [`OidcRelyingParty::discover`] once per tenant configuration; [`OidcRelyingParty::begin`] gives
//! the provider URL to redirect the browser to and an [`OidcPending`] the caller keeps server-side (by
//! the hash of its `state`); when the browser comes back to the redirect URI, the caller looks the
//! pending flow up by the returned `state` (that is the CSRF check of the flow, and it is the caller's),
//! then calls [`OidcRelyingParty::finish`] with the `code`, which exchanges it (with the PKCE verifier)
//! and verifies the ID token: RS256 signature against the provider's published keys, issuer, audience
//! (this client), expiry (on the injected [`Clock`]) and nonce. Only a verified e-mail address signs
//! anyone in.
//!
//! HTTP: requests go through a small wrapper implementing `openidconnect`'s `AsyncHttpClient` over the
//! caller's `reqwest::Client`: a per-request timeout, a response size cap, and a response that arrives
//! from another URL than asked (the client followed a redirect) is refused, so a provider cannot bounce
//! ORB's server-side requests elsewhere. [`http_client`] builds a client that does not follow redirects
//! in the first place.
//!
//! State, nonce and PKCE verifier are 32 random bytes each from aws-lc-rs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreErrorResponseType, CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DiscoveryError,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardErrorResponse,
    TokenResponse as _,
};
use orb_core::{Clock, CoreError, EmailAddress, SystemClock};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::AuthError;
use crate::random;

/// Time allowed for one request to the provider, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest provider response read (discovery document, key set, token response).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A tenant's single sign-on settings.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL (discovery is at `<issuer>/.well-known/openid-configuration`).
    pub issuer: Url,
    /// ORB's client id at the provider.
    pub client_id: String,
    /// ORB's client secret, for a confidential client (sent with HTTP Basic, or in the form when the
    /// provider supports only `client_secret_post`); `None` for a public client (PKCE only).
    pub client_secret: Option<SecretString>,
    /// Where the provider sends the browser back; registered at the provider exactly so.
    pub redirect_uri: Url,
}

/// An authorization flow begun and not yet finished: what the caller keeps (server-side, looked up by
/// the hash of `state`) between [`OidcRelyingParty::begin`] and [`OidcRelyingParty::finish`].
/// `Debug` shows none of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcPending {
    /// The `state` parameter sent; the browser brings it back with the code.
    pub state: String,
    /// The `nonce` sent; the ID token must carry it.
    pub nonce: String,
    /// The PKCE code verifier whose S256 challenge was sent.
    pub pkce_verifier: String,
}

impl fmt::Debug for OidcPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OidcPending([redacted])")
    }
}

/// Who signed in, as the provider vouches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The provider's stable subject identifier (`sub`).
    pub subject: String,
    /// The account's e-mail address.
    pub email: EmailAddress,
    /// Whether the provider verified the address (always `true`: an unverified one is an error).
    pub email_verified: bool,
}

/// A reqwest client fit for talking to identity providers: follows no redirect, times out after
/// [`REQUEST_TIMEOUT`], rustls.
pub fn http_client() -> Result<reqwest::Client, AuthError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| AuthError::OidcConfig { reason: format!("cannot build the HTTP client ({e})") })
}

/// What went wrong talking HTTP to the provider.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("the request could not be built ({0})")]
    Build(String),
    #[error("the provider could not be reached ({0})")]
    Transport(String),
    #[error("the provider redirected {asked} to {landed}; ORB follows no redirects, use the final URL")]
    Redirected { asked: String, landed: String },
    #[error("the provider's answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

/// `openidconnect`'s async HTTP client over ORB's reqwest client (see the module docs).
#[derive(Debug, Clone)]
struct Http {
    client: reqwest::Client,
}

impl Http {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let mut request = reqwest::Request::try_from(request).map_err(|e| HttpError::Build(e.to_string()))?;
        *request.timeout_mut() = Some(REQUEST_TIMEOUT);
        let asked = request.url().clone();
        let mut response =
            self.client.execute(request).await.map_err(|e| HttpError::Transport(e.to_string()))?;
        if response.url() != &asked {
            return Err(HttpError::Redirected {
                asked: asked.to_string(),
                landed: response.url().to_string(),
            });
        }
        let mut builder = openidconnect::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| HttpError::Transport(e.to_string()))? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        builder.body(body).map_err(|e| HttpError::Build(e.to_string()))
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// The discovered client: authorization endpoint known; token and userinfo endpoints as the provider
/// published them.
type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A relying party for one provider and client registration.
pub struct OidcRelyingParty {
    client: DiscoveredClient,
    http: Http,
    clock: Arc<dyn Clock>,
    issuer: String,
}

impl fmt::Debug for OidcRelyingParty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcRelyingParty")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client.client_id().as_str())
            .finish_non_exhaustive()
    }
}

/// The issuer as the provider spells it: a root URL without the trailing `/` that `Url` adds
/// (`https://idp.example.com`), any other URL as it is.
fn issuer_text(issuer: &Url) -> String {
    let text = issuer.as_str();
    if issuer.path() == "/" && issuer.query().is_none() && issuer.fragment().is_none() {
        text.trim_end_matches('/').to_owned()
    } else {
        text.to_owned()
    }
}

fn discovery_error(issuer: &str, error: DiscoveryError<HttpError>) -> AuthError {
    let (reason, retryable) = match &error {
        DiscoveryError::Request(HttpError::Transport(_)) => (error_chain(&error), true),
        DiscoveryError::Response(status, _, message) => (message.clone(), status.is_server_error()),
        _ => (error_chain(&error), false),
    };
    AuthError::OidcDiscovery { issuer: issuer.to_owned(), reason, retryable }
}

/// An error and its sources, `: `-separated (the crate's errors put the detail in the source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn token_error(
    error: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> AuthError {
    match &error {
        RequestTokenError::ServerResponse(response) => {
            let mut reason = response.error().as_ref().to_owned();
            if let Some(description) = response.error_description() {
                reason.push_str(": ");
                reason.push_str(description);
            }
            AuthError::OidcTokenExchange { reason, retryable: false }
        }
        RequestTokenError::Request(HttpError::Transport(_)) => {
            AuthError::OidcTokenExchange { reason: error_chain(&error), retryable: true }
        }
        _ => AuthError::OidcTokenExchange { reason: error_chain(&error), retryable: false },
    }
}

impl OidcRelyingParty {
    /// Fetches the provider's discovery document and key set (issuer must match `config.issuer`) and
    /// sets the client up. `http` should follow no redirects (see [`http_client`]); a redirected answer
    /// is refused either way. Expiry is checked on the system clock unless [`Self::with_clock`] says
    /// otherwise.
    pub async fn discover(config: OidcConfig, http: reqwest::Client) -> Result<Self, AuthError> {
        let issuer_text = issuer_text(&config.issuer);
        let issuer = IssuerUrl::new(issuer_text.clone())
            .map_err(|e| AuthError::OidcConfig { reason: format!("the issuer URL is not valid ({e})") })?;
        let redirect = RedirectUrl::new(config.redirect_uri.to_string())
            .map_err(|e| AuthError::OidcConfig { reason: format!("the redirect URI is not valid ({e})") })?;
        let http = Http { client: http };
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| discovery_error(&issuer_text, e))?;
        if metadata.token_endpoint().is_none() {
            return Err(AuthError::OidcConfig {
                reason:
                    "the provider publishes no token endpoint, so the authorization code flow cannot be used"
                        .to_owned(),
            });
        }
        // Basic is the default and what every provider supports unless it says otherwise.
        let post_only = metadata.token_endpoint_auth_methods_supported().is_some_and(|methods| {
            !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && methods.contains(&CoreClientAuthMethod::ClientSecretPost)
        });
        let secret = config.client_secret.as_ref().map(|s| ClientSecret::new(s.expose_secret().to_owned()));
        let mut client =
            CoreClient::from_provider_metadata(metadata, ClientId::new(config.client_id), secret)
                .set_redirect_uri(redirect);
        if post_only {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        Ok(Self { client, http, clock: Arc::new(SystemClock), issuer: issuer_text })
    }

    /// The clock the ID token's expiry is checked against (tests, the demo).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Starts a sign-in: the provider URL to send the browser to (response type `code`, scopes `openid
    /// email`, a fresh `state` and `nonce`, PKCE S256) and the [`OidcPending`] to keep.
    ///
    /// # Panics
    /// When the system random number generator fails.
    pub fn begin(&self) -> (Url, OidcPending) {
        let pending = OidcPending {
            state: random::base64url::<32>(),
            nonce: random::base64url::<32>(),
            pkce_verifier: random::base64url::<32>(),
        };
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            pending.pkce_verifier.clone(),
        ));
        let (state, nonce) = (pending.state.clone(), pending.nonce.clone());
        let (url, _, _) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scope(Scope::new("email".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        (url, pending)
    }

    /// Finishes a sign-in: exchanges `code` (with `pending`'s PKCE verifier) at the token endpoint and
    /// verifies the ID token (signature, issuer, audience, expiry, `pending`'s nonce). The caller has
    /// already matched the returned `state` to `pending`.
    ///
    /// Errors: the provider's refusal ([`AuthError::OidcTokenExchange`], e.g. `invalid_grant` for a
    /// used, expired or mismatched code), a refused ID token ([`AuthError::OidcIdToken`]), no e-mail
    /// ([`AuthError::OidcEmailMissing`]), an e-mail not verified by the provider
    /// ([`AuthError::OidcEmailNotVerified`]) or not a valid address ([`AuthError::OidcEmailInvalid`]).
    pub async fn finish(&self, code: &str, pending: &OidcPending) -> Result<OidcIdentity, AuthError> {
        let request = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| AuthError::OidcConfig { reason: e.to_string() })?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
        let response = request.request_async(&self.http).await.map_err(token_error)?;
        let id_token = response.id_token().ok_or_else(|| AuthError::OidcIdToken {
            reason: "the token response holds no ID token".to_owned(),
        })?;
        let clock = Arc::clone(&self.clock);
        let verifier = self.client.id_token_verifier().set_time_fn(move || clock.now());
        let nonce = Nonce::new(pending.nonce.clone());
        let claims = id_token
            .claims(&verifier, &nonce)
            .map_err(|e| AuthError::OidcIdToken { reason: error_chain(&e) })?;
        let email = claims.email().ok_or(AuthError::OidcEmailMissing)?;
        if claims.email_verified() != Some(true) {
            return Err(AuthError::OidcEmailNotVerified);
        }
        let email = EmailAddress::parse(email.as_str()).map_err(|e| match e {
            CoreError::InvalidEmail { reason, .. } => {
                AuthError::OidcEmailInvalid { reason: reason.to_owned() }
            }
            other => AuthError::OidcEmailInvalid { reason: other.to_string() },
        })?;
        Ok(OidcIdentity { subject: claims.subject().as_str().to_owned(), email, email_verified: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_text_drops_only_the_root_slash() {
        let check = |input: &str, expected: &str| {
            assert_eq!(issuer_text(&Url::parse(input).expect("valid")), expected, "{input}");
        };
        check("https://idp.example.com", "https://idp.example.com");
        check("https://idp.example.com/", "https://idp.example.com");
        check("http://127.0.0.1:4711", "http://127.0.0.1:4711");
        check("https://login.example.com/tenant/v2.0", "https://login.example.com/tenant/v2.0");
        check("https://login.example.com/tenant/", "https://login.example.com/tenant/");
    }

    #[test]
    fn pending_debug_is_redacted_and_it_round_trips_through_json() {
        let pending = OidcPending { state: "s".into(), nonce: "n".into(), pkce_verifier: "v".into() };
        assert_eq!(format!("{pending:?}"), "OidcPending([redacted])");
        let json = serde_json::to_string(&pending).expect("serialises");
        assert_eq!(serde_json::from_str::<OidcPending>(&json).expect("parses"), pending);
    }

    #[test]
    fn error_chain_joins_sources() {
        let error = AuthError::OidcTokenExchange { reason: "x".into(), retryable: true };
        assert_eq!(error_chain(&error), error.to_string());
    }
}
