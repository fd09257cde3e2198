//! The OIDC relying party against the emulated provider over real HTTP on 127.0.0.1: the full
//! authorization code + PKCE flow (the sign-in page's form followed as a browser would), and the
//! refusals: wrong PKCE verifier, reused code, expired code, wrong nonce, expired ID token, unregistered
//! redirect URI, unverified e-mail, wrong password, a provider that redirects ORB's server-side requests.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use orb_auth::oidc::http_client;
use orb_auth::{AuthError, OidcConfig, OidcPending, OidcRelyingParty};
use orb_core::{EmailAddress, FixedClock};
use orb_emulators::oidc::{OidcEmulator, ServedEmulator};
use reqwest::StatusCode;
use secrecy::SecretString;
use url::Url;

const REDIRECT: &str = "https://orb.contoso.com/auth/oidc/callback";
const CLIENT: &str = "orb-portal";
const SECRET: &str = "client-secret-1";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z").unwrap().to_utc()
}

struct World {
    served: ServedEmulator,
    clock: FixedClock,
    browser: reqwest::Client,
    anna: String,
}

impl World {
    async fn new() -> Self {
        let clock = FixedClock::new(t0());
        let emulator = OidcEmulator::new(Arc::new(clock.clone()));
        emulator.add_client(CLIENT, Some(SECRET), &[REDIRECT]);
        emulator.add_client("public-portal", None, &[REDIRECT]);
        let anna = emulator.add_user("Anna.Bakker@Contoso.com", "anna-password", true);
        emulator.add_user("bob@contoso.com", "bob-password", false);
        let served = emulator.serve().await.unwrap();
        let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { served, clock, browser, anna }
    }

    fn config(&self, client_id: &str, secret: Option<&str>, redirect: &str) -> OidcConfig {
        OidcConfig {
            issuer: Url::parse(&self.served.base_url).unwrap(),
            client_id: client_id.to_owned(),
            client_secret: secret.map(|s| SecretString::from(s.to_owned())),
            redirect_uri: Url::parse(redirect).unwrap(),
        }
    }

    async fn rp(&self, config: OidcConfig) -> OidcRelyingParty {
        OidcRelyingParty::discover(config, http_client().unwrap())
            .await
            .unwrap()
            .with_clock(Arc::new(self.clock.clone()))
    }

    async fn confidential(&self) -> OidcRelyingParty {
        self.rp(self.config(CLIENT, Some(SECRET), REDIRECT)).await
    }

    /// Opens the authorization URL, fills the sign-in form and submits it, as a browser would; returns
    /// the status and the `Location` (the redirect back to ORB) or the page.
    async fn sign_in(
        &self,
        auth_url: &Url,
        email: &str,
        password: &str,
    ) -> (StatusCode, Result<Url, String>) {
        let page = self.browser.get(auth_url.clone()).send().await.unwrap();
        let status = page.status();
        let html = page.text().await.unwrap();
        if status != StatusCode::OK {
            return (status, Err(html));
        }
        let action = attribute(html.split("<form").nth(1).expect("a form"), "action").expect("an action");
        let mut fields = hidden_fields(&html);
        fields.push(("email".into(), email.into()));
        fields.push(("password".into(), password.into()));
        let answer = self.browser.post(auth_url.join(&action).unwrap()).form(&fields).send().await.unwrap();
        let status = answer.status();
        match answer.headers().get("location") {
            Some(location) => (status, Ok(Url::parse(location.to_str().unwrap()).unwrap())),
            None => (status, Err(answer.text().await.unwrap())),
        }
    }

    /// The whole browser part for Anna: returns the code, after checking the state came back.
    async fn code_for(&self, rp: &OidcRelyingParty, email: &str, password: &str) -> (String, OidcPending) {
        let (url, pending) = rp.begin();
        let (status, callback) = self.sign_in(&url, email, password).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let callback = callback.unwrap();
        assert_eq!(callback.as_str().split('?').next(), Some(REDIRECT));
        assert_eq!(query(&callback, "state").as_deref(), Some(pending.state.as_str()), "state comes back");
        (query(&callback, "code").expect("a code"), pending)
    }
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(n, _)| n == name).map(|(_, v)| v.into_owned())
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `name="…"` in the first tag of `tag_text`.
fn attribute(tag_text: &str, name: &str) -> Option<String> {
    let tag = &tag_text[..tag_text.find('>')?];
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Every `<input type="hidden">` of the page as (name, value).
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input")
        .skip(1)
        .filter(|tag| attribute(tag, "type").as_deref() == Some("hidden"))
        .map(|tag| (attribute(tag, "name").unwrap(), attribute(tag, "value").unwrap_or_default()))
        .collect()
}

fn token_refusal(result: Result<orb_auth::OidcIdentity, AuthError>) -> String {
    match result {
        Err(AuthError::OidcTokenExchange { reason, retryable: false }) => reason,
        other => panic!("expected a token exchange refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_full_code_and_pkce_flow_signs_anna_in() {
    let world = World::new().await;
    let rp = world.confidential().await;
    let (url, pending) = rp.begin();
    let param = |name| query(&url, name).unwrap_or_else(|| panic!("{name} in {url}"));
    assert_eq!(param("response_type"), "code");
    assert_eq!(param("client_id"), CLIENT);
    assert_eq!(param("redirect_uri"), REDIRECT);
    assert_eq!(param("code_challenge_method"), "S256");
    assert_eq!(param("code_challenge"), orb_emulators::oidc::s256_challenge(&pending.pkce_verifier));
    let scopes: Vec<String> = param("scope").split(' ').map(str::to_owned).collect();
    assert!(scopes.contains(&"openid".into()) && scopes.contains(&"email".into()), "{scopes:?}");
    assert_eq!(param("state"), pending.state);
    assert_eq!(param("nonce"), pending.nonce);
    assert_ne!(pending.state, pending.nonce);
    assert!(pending.pkce_verifier.len() >= 43);

    let (status, callback) = world.sign_in(&url, "anna.bakker@contoso.com", "anna-password").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let callback = callback.unwrap();
    assert_eq!(query(&callback, "state").as_deref(), Some(pending.state.as_str()));
    let code = query(&callback, "code").unwrap();

    // The portal holds the relying party in shared state and awaits it in axum handlers.
    fn shareable<T: Send + Sync>(_: &T) {}
    fn sendable<T: Send>(_: &T) {}
    shareable(&rp);
    let finishing = rp.finish(&code, &pending);
    sendable(&finishing);
    let identity = finishing.await.unwrap();
    assert_eq!(identity.subject, world.anna);
    assert_eq!(identity.email, EmailAddress::parse("anna.bakker@contoso.com").unwrap());
    assert!(identity.email_verified);
}

#[tokio::test]
async fn a_public_client_signs_in_with_pkce_alone() {
    let world = World::new().await;
    let rp = world.rp(world.config("public-portal", None, REDIRECT)).await;
    let (code, pending) = world.code_for(&rp, "anna.bakker@contoso.com", "anna-password").await;
    assert_eq!(rp.finish(&code, &pending).await.unwrap().subject, world.anna);
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused() {
    let world = World::new().await;
    let rp = world.confidential().await;
    let (code, pending) = world.code_for(&rp, "anna.bakker@contoso.com", "anna-password").await;
    let (_, other) = rp.begin();
    let forged = OidcPending { pkce_verifier: other.pkce_verifier, ..pending };
    let reason = token_refusal(rp.finish(&code, &forged).await);
    assert!(reason.starts_with("invalid_grant"), "{reason}");
}

#[tokio::test]
async fn a_code_works_once() {
    let world = World::new().await;
    let rp = world.confidential().await;
    let (code, pending) = world.code_for(&rp, "anna.bakker@contoso.com", "anna-password").await;
    rp.finish(&code, &pending).await.unwrap();
    let reason = token_refusal(rp.finish(&code, &pending).await);
    assert!(reason.starts_with("invalid_grant"), "{reason}");
}

#[tokio::test]
async fn a_code_expires_after_60_seconds() {
    let world = World::new().await;
    let rp = world.confidential().await;
    let (code, pending) = world.code_for(&rp, "anna.bakker@contoso.com", "anna-password").await;
    world.clock.advance(Duration::seconds(61));
    let reason = token_refusal(rp.finish(&code, &pending).await);
    assert!(reason.contains("expired"), "{reason}");
}

#[tokio::test]
async fn a_wrong_nonce_is_refused() {
    let world = World::new().await;
    let rp = world.confidential().await;
    let (code, pending) = world.code_for(&rp, "anna.bakker@contoso.com", "anna-password").await;
    let replayed = OidcPending { nonce: "some-other-flows-nonce".into(), ..pending };
    match rp.finish(&code, &replayed).await {
        Err(AuthError::OidcIdToken { reason }) => {
            assert!(reason.to_lowercase().contains("nonce"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_expired_id_token_is_refused_on_the_injected_clock() {
    let world = World::new().await;
    // The relying party's clock is 11 minutes ahead of the provider's; ID tokens live 10.
    let late = FixedClock::new(t0() + Duration::minutes(11));
    let rp = world.confidential().await.with_clock(Arc::new(late));
    let (code, pending) = world.code_for(&rp, "anna.bakker@contoso.com", "anna-password").await;
    match rp.finish(&code, &pending).await {
        Err(AuthError::OidcIdToken { reason }) => {
            assert!(reason.to_lowercase().contains("expir"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect() {
    let world = World::new().await;
    let rp = world.rp(world.config(CLIENT, Some(SECRET), "https://evil.example/callback")).await;
    let (url, _) = rp.begin();
    let (status, page) = world.sign_in(&url, "anna.bakker@contoso.com", "anna-password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let page = page.expect_err("no redirect");
    assert!(page.contains("redirect_uri is not registered"), "{page}");
    assert!(!page.contains("<script") && !page.contains("style"), "{page}");
}

#[tokio::test]
async fn an_unverified_email_is_refused() {
    let world = World::new().await;
    let rp = world.confidential().await;
    let (code, pending) = world.code_for(&rp, "bob@contoso.com", "bob-password").await;
    assert!(matches!(rp.finish(&code, &pending).await, Err(AuthError::OidcEmailNotVerified)));
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again() {
    let world = World::new().await;
    let rp = world.confidential().await;
    let (url, _) = rp.begin();
    let (status, page) = world.sign_in(&url, "anna.bakker@contoso.com", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let page = page.expect_err("no redirect");
    assert!(page.contains("password is wrong") && page.contains("<form"), "{page}");
}

#[tokio::test]
async fn discovery_of_a_wrong_issuer_fails_and_says_what_to_check() {
    let world = World::new().await;
    let mut config = world.config(CLIENT, Some(SECRET), REDIRECT);
    config.issuer = Url::parse(&format!("{}/tenant-that-does-not-exist", world.served.base_url)).unwrap();
    let error = OidcRelyingParty::discover(config, http_client().unwrap()).await.unwrap_err();
    assert!(matches!(error, AuthError::OidcDiscovery { retryable: false, .. }), "{error:?}");
    assert!(error.to_string().contains("check the issuer URL"), "{error}");
}

/// A "provider" whose discovery URL redirects to the real one: ORB must not follow, whether or not the
/// reqwest client it was handed would.
#[tokio::test]
async fn a_redirected_discovery_request_is_refused() {
    let world = World::new().await;
    let target = format!("{}/.well-known/openid-configuration", world.served.base_url);
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let target = target.clone();
            async move { axum::response::Redirect::temporary(&target) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut config = world.config(CLIENT, Some(SECRET), REDIRECT);
    config.issuer = Url::parse(&format!("http://{addr}")).unwrap();

    let following = reqwest::Client::new(); // follows redirects by default
    let error = OidcRelyingParty::discover(config.clone(), following).await.unwrap_err();
    assert!(error.to_string().contains("follows no redirects"), "{error}");
    let error = OidcRelyingParty::discover(config, http_client().unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("307"), "{error}");
    server.abort();
}

#[tokio::test]
async fn an_oversized_provider_answer_is_refused() {
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(|| async {
            ([("content-type", "application/json")], " ".repeat(2 * 1024 * 1024))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let config = OidcConfig {
        issuer: Url::parse(&format!("http://{addr}")).unwrap(),
        client_id: CLIENT.to_owned(),
        client_secret: None,
        redirect_uri: Url::parse(REDIRECT).unwrap(),
    };
    let error = OidcRelyingParty::discover(config, http_client().unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("larger than 1048576 bytes"), "{error}");
    server.abort();
}
