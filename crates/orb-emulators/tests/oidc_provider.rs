//! The OIDC provider emulator over HTTP, on its own (the relying party's side of the flow is tested in
//! `orb-auth`): discovery and JWKS, the control API, the authorization endpoint's error handling, the
//! token endpoint's OAuth errors and client authentication, and userinfo.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::DateTime;
use orb_core::FixedClock;
use orb_emulators::oidc::{OidcEmulator, ServedEmulator, s256_challenge};
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

const REDIRECT: &str = "https://orb.contoso.com/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct T {
    served: ServedEmulator,
    http: reqwest::Client,
}

impl T {
    async fn new() -> Self {
        let clock = FixedClock::new(DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z").unwrap().to_utc());
        let served = OidcEmulator::new(Arc::new(clock)).serve().await.unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let t = Self { served, http };
        let created = t
            .post_json(
                "/_emulator/clients",
                json!({ "clientId": "orb", "clientSecret": "s3cret", "redirectUris": [REDIRECT] }),
            )
            .await;
        assert_eq!(created, (StatusCode::CREATED, json!({ "clientId": "orb" })));
        let (status, user) = t
            .post_json(
                "/_emulator/users",
                json!({ "email": "anna@contoso.com", "password": "pw", "subject": "anna-sub" }),
            )
            .await;
        assert_eq!((status, user), (StatusCode::CREATED, json!({ "subject": "anna-sub" })));
        t
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base_url)
    }

    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        (response.status(), response.json().await.unwrap_or(Value::Null))
    }

    fn authorize_query(&self, skip: &str) -> Vec<(&'static str, String)> {
        [
            ("client_id", "orb".to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("response_type", "code".to_owned()),
            ("scope", "openid email".to_owned()),
            ("state", "st-1".to_owned()),
            ("nonce", "n-1".to_owned()),
            ("code_challenge", s256_challenge(VERIFIER)),
            ("code_challenge_method", "S256".to_owned()),
        ]
        .into_iter()
        .filter(|(name, _)| *name != skip)
        .collect()
    }

    /// Signs Anna in through the form; returns the code.
    async fn code(&self) -> String {
        let mut form = self.authorize_query("");
        form.push(("email", "anna@contoso.com".to_owned()));
        form.push(("password", "pw".to_owned()));
        let response = self.http.post(self.url("/authorize")).form(&form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(REDIRECT));
        let param = |n: &str| location.query_pairs().find(|(k, _)| k == n).map(|(_, v)| v.into_owned());
        assert_eq!(param("state").as_deref(), Some("st-1"));
        param("code").unwrap()
    }

    async fn token(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.post(self.url("/token")).form(form);
        if let Some((id, secret)) = basic {
            request = request
                .header("authorization", format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))));
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap())
    }
}

/// A token request's Basic credentials (if any), form, and the expected status and `error`.
type TokenCase<'a> = (Option<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>, StatusCode, &'a str);

fn redeem_form(code: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]
}

fn jwt_payload(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_and_jwks_describe_the_provider() {
    let t = T::new().await;
    let doc: Value =
        t.http.get(t.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["issuer"], t.served.base_url);
    assert_eq!(doc["token_endpoint"], t.url("/token"));
    assert_eq!(doc["jwks_uri"], t.url("/jwks"));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256"]));
    let jwks: Value = t.http.get(t.url("/jwks")).send().await.unwrap().json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["alg"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap().len(), 256, "RSA-2048");
}

#[tokio::test]
async fn the_state_shows_no_secrets_and_bad_control_requests_are_refused() {
    let t = T::new().await;
    let state: Value = t.http.get(t.url("/_emulator/state")).send().await.unwrap().json().await.unwrap();
    let text = state.to_string();
    assert!(!text.contains("s3cret") && !text.contains("\"pw\""), "{text}");
    assert_eq!(state["clients"][0]["confidential"], true);
    assert_eq!(state["users"][0]["emailVerified"], true, "verified unless said otherwise");
    let (status, body) =
        t.post_json("/_emulator/clients", json!({ "clientId": "x", "redirectUris": [] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = t.post_json("/_emulator/users", json!({ "email": "a@b.c" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_sign_in_page_is_a_plain_form_under_a_strict_policy() {
    let t = T::new().await;
    let response = t.http.get(t.url("/authorize")).query(&t.authorize_query("")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    let page = response.text().await.unwrap();
    assert!(page.contains("<form method=\"post\" action=\"/authorize\">"), "{page}");
    assert!(page.contains("name=\"code_challenge\""), "{page}");
    assert!(!page.contains("<script") && !page.contains("style"), "{page}");
}

#[tokio::test]
async fn authorization_errors_go_back_to_a_trusted_redirect_uri_only() {
    let t = T::new().await;
    // Missing PKCE: back to the client with error and state.
    let response =
        t.http.get(t.url("/authorize")).query(&t.authorize_query("code_challenge")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert!(pairs.contains(&("error".into(), "invalid_request".into())), "{pairs:?}");
    assert!(pairs.contains(&("state".into(), "st-1".into())), "{pairs:?}");
    // Unknown client: an error page, no redirect.
    let mut query = t.authorize_query("client_id");
    query.push(("client_id", "ghost".to_owned()));
    let response = t.http.get(t.url("/authorize")).query(&query).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn the_token_endpoint_issues_a_signed_id_token_and_userinfo_answers_for_the_access_token() {
    let t = T::new().await;
    let code = t.code().await;
    let (status, headers, body) = t.token(Some(("orb", "s3cret")), &redeem_form(&code)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    let claims = jwt_payload(body["id_token"].as_str().unwrap());
    assert_eq!(claims["iss"], t.served.base_url);
    assert_eq!(claims["sub"], "anna-sub");
    assert_eq!(claims["aud"], "orb");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], "anna@contoso.com");
    assert_eq!(claims["email_verified"], true);

    let access = body["access_token"].as_str().unwrap();
    let info: Value =
        t.http.get(t.url("/userinfo")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(info, json!({ "sub": "anna-sub", "email": "anna@contoso.com", "email_verified": true }));
    let refused = t.http.get(t.url("/userinfo")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer error=\"invalid_token\"");
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let t = T::new().await;
    let code = t.code().await;
    // (Basic credentials, form, status, error)
    let secret_in_form =
        [redeem_form(&code), vec![("client_id", "orb"), ("client_secret", "s3cret")]].concat();
    let both = [redeem_form(&code), vec![("client_secret", "s3cret")]].concat();
    let repeated = [redeem_form(&code), vec![("code", "again")]].concat();
    let password_grant = vec![("grant_type", "password"), ("username", "anna"), ("password", "pw")];
    let cases: Vec<TokenCase<'_>> = vec![
        (Some(("orb", "wrong")), redeem_form(&code), StatusCode::UNAUTHORIZED, "invalid_client"),
        (None, redeem_form(&code), StatusCode::BAD_REQUEST, "invalid_request"), // no client named
        (Some(("orb", "s3cret")), both, StatusCode::BAD_REQUEST, "invalid_request"),
        (Some(("orb", "s3cret")), repeated, StatusCode::BAD_REQUEST, "invalid_request"),
        (Some(("orb", "s3cret")), password_grant, StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        (None, secret_in_form, StatusCode::OK, ""), // client_secret_post redeems the code
        (Some(("orb", "s3cret")), redeem_form(&code), StatusCode::BAD_REQUEST, "invalid_grant"), // used
    ];
    for (basic, form, status, error) in cases {
        let (got_status, headers, body) = t.token(basic, &form).await;
        assert_eq!(got_status, status, "{form:?}: {body}");
        if !error.is_empty() {
            assert_eq!(body["error"], error, "{form:?}");
            assert!(body["error_description"].is_string());
        }
        if error == "invalid_client" {
            assert_eq!(headers["www-authenticate"], "Basic realm=\"oidc-emulator\"");
        }
    }
}
