//! The provider's HTTP endpoints: discovery, JWKS, the sign-in page, the token endpoint, userinfo.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use url::{Url, form_urlencoded};

use super::OidcEmulator;
use super::state::{AuthorizeError, AuthorizeRequest, ClientAuth, TokenError, TokenRequest};

pub(super) fn router(emulator: OidcEmulator) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize_page).post(sign_in))
        .route("/token", axum::routing::post(token))
        .route("/userinfo", get(userinfo).post(userinfo))
        .with_state(emulator)
}

async fn discovery(State(emu): State<OidcEmulator>) -> Response {
    let issuer = emu.issuer();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified"],
    }))
    .into_response()
}

async fn jwks(State(emu): State<OidcEmulator>) -> Response {
    Json(emu.signer().jwks()).into_response()
}

/// 32 random bytes as base64url (codes, access tokens).
fn random_text() -> Option<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// An HTML answer with a policy that forbids scripts, styles and framing.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn page(title: &str, content: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} – OIDC emulator</title></head>\
         <body><main><h1>{title}</h1>{content}</main></body></html>\n",
        title = escape(title),
    )
}

fn error_page(message: &str) -> Response {
    let content =
        format!("<p role=\"alert\">{}</p><p>Go back to the application and try again.</p>", escape(message));
    html(StatusCode::BAD_REQUEST, page("Sign-in request refused", &content))
}

fn sign_in_page(status: StatusCode, request: &AuthorizeRequest, error: Option<&str>) -> Response {
    let mut content = format!(
        "<p>to continue to <strong>{}</strong></p>",
        escape(request.client_id.as_deref().unwrap_or_default())
    );
    if let Some(error) = error {
        content.push_str(&format!("<p role=\"alert\">{}</p>", escape(error)));
    }
    content.push_str("<form method=\"post\" action=\"/authorize\">");
    for (name, value) in request.pairs() {
        content.push_str(&format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(value)));
    }
    content.push_str(
        "<p><label>E-mail address <input type=\"email\" name=\"email\" autocomplete=\"username\" required></label></p>\
         <p><label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label></p>\
         <p><button type=\"submit\">Sign in</button></p></form>",
    );
    html(status, page("Sign in", &content))
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => error_page("The redirect URI cannot be sent in a Location header."),
    }
}

/// `redirect_uri` with `pairs` appended to its query.
fn redirect_with(redirect_uri: &str, pairs: &[(&str, Option<&str>)]) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page("The registered redirect URI is not a URL.");
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
    }
    see_other(url.as_str())
}

fn refuse(error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page { message } => error_page(&message),
        AuthorizeError::Redirect { redirect_uri, error, description, state } => redirect_with(
            &redirect_uri,
            &[("error", Some(error)), ("error_description", Some(&description)), ("state", state.as_deref())],
        ),
    }
}

async fn authorize_page(State(emu): State<OidcEmulator>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let request = AuthorizeRequest::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let checked = emu.lock().validate_authorize(&request);
    match checked {
        Ok(_) => sign_in_page(StatusCode::OK, &request, None),
        Err(error) => refuse(error),
    }
}

async fn sign_in(State(emu): State<OidcEmulator>, body: Bytes) -> Response {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let request = AuthorizeRequest::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let field =
        |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    let Some(code) = random_text() else {
        return error_page("The provider could not make a code (random number generator failed).");
    };
    let now = emu.now();
    let outcome = {
        let mut state = emu.lock();
        match state.validate_authorize(&request) {
            Err(error) => Err(Some(error)),
            Ok(redirect_uri) => {
                match state.authenticate(field("email"), field("password")).map(|u| u.subject.clone()) {
                    None => Err(None),
                    Some(subject) => {
                        state.issue_code(&request, &subject, code.clone(), now);
                        Ok(redirect_uri)
                    }
                }
            }
        }
    };
    match outcome {
        Ok(redirect_uri) => {
            redirect_with(&redirect_uri, &[("code", Some(&code)), ("state", request.state.as_deref())])
        }
        Err(Some(error)) => refuse(error),
        Err(None) => sign_in_page(
            StatusCode::UNAUTHORIZED,
            &request,
            Some("The e-mail address or the password is wrong."),
        ),
    }
}

/// An RFC 6749 §5.2 error answer; `invalid_client` is 401 (with a Basic challenge when the client tried
/// Basic), `invalid_token` 401 with a Bearer challenge (RFC 6750 §3), the rest 400.
fn oauth_error(error: TokenError, tried_basic: bool) -> Response {
    let status = match error.error {
        "invalid_client" | "invalid_token" => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut response =
        (status, Json(json!({ "error": error.error, "error_description": error.description })))
            .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if error.error == "invalid_token" {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    } else if error.error == "invalid_client" && tried_basic {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"oidc-emulator\""));
    }
    response
}

/// `%XX` and `+` decoding (RFC 6749 §2.3.1: Basic credentials are form-encoded before base64).
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The Basic credentials in `Authorization`, if that is how the client authenticated.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), TokenError>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let malformed = || TokenError {
        error: "invalid_client",
        description: "The Basic credentials are malformed.".to_owned(),
    };
    let decoded = STANDARD.decode(encoded.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    let parsed = decoded
        .as_deref()
        .and_then(|d| d.split_once(':'))
        .and_then(|(id, secret)| Some((form_decode(id)?, form_decode(secret)?)));
    Some(parsed.ok_or_else(malformed))
}

async fn token(State(emu): State<OidcEmulator>, headers: HeaderMap, body: Bytes) -> Response {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let invalid_request = |why: &str| TokenError { error: "invalid_request", description: why.to_owned() };
    let mut seen = std::collections::HashSet::new();
    if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return oauth_error(invalid_request(&format!("The parameter {name} is repeated.")), false);
    }
    let field = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let basic = basic_credentials(&headers);
    let tried_basic = basic.is_some();
    let auth = match (basic, field("client_secret")) {
        (Some(Err(error)), _) => return oauth_error(error, true),
        (Some(Ok(_)), Some(_)) => {
            return oauth_error(invalid_request("Use one client authentication method, not two."), true);
        }
        (Some(Ok((id, secret))), None) => {
            if field("client_id").is_some_and(|form_id| form_id != id) {
                return oauth_error(invalid_request("client_id differs from the Basic credentials."), true);
            }
            ClientAuth::Basic { id, secret }
        }
        (None, Some(secret)) => match field("client_id") {
            Some(id) => ClientAuth::Post { id, secret },
            None => return oauth_error(invalid_request("client_secret without client_id."), false),
        },
        (None, None) => ClientAuth::None { id: field("client_id") },
    };
    let request = TokenRequest {
        grant_type: field("grant_type"),
        code: field("code"),
        redirect_uri: field("redirect_uri"),
        code_verifier: field("code_verifier"),
    };
    let Some(access_token) = random_text() else {
        return oauth_error(
            TokenError { error: "server_error", description: "No randomness.".into() },
            false,
        );
    };
    let now = emu.now();
    let issued = emu.lock().redeem(&auth, &request, access_token, now);
    let issued = match issued {
        Ok(issued) => issued,
        Err(error) => return oauth_error(error, tried_basic),
    };
    let id_token = match emu.signer().sign_claims(&issued.id_token_claims) {
        Ok(token) => token,
        Err(e) => {
            let error = TokenError { error: "server_error", description: format!("Signing failed: {e}") };
            return oauth_error(error, false);
        }
    };
    let mut response = Json(json!({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": super::ACCESS_TOKEN_LIFETIME.num_seconds(),
        "scope": issued.scope,
        "id_token": id_token,
    }))
    .into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn userinfo(State(emu): State<OidcEmulator>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = bearer else {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let now = emu.now();
    let claims = emu.lock().userinfo(&token, now);
    match claims {
        Ok(claims) => Json(claims).into_response(),
        Err(error) => oauth_error(error, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_html_specials() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn form_decode_table() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("plain").as_deref(), Some("plain"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
        assert_eq!(form_decode("%C3%A9").as_deref(), Some("é"));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        assert!(basic_credentials(&headers).is_none());
        let encoded = STANDARD.encode("my%20client:p%3Ass");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {encoded}")).unwrap());
        assert_eq!(basic_credentials(&headers), Some(Ok(("my client".to_owned(), "p:ss".to_owned()))));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&headers).unwrap().unwrap_err().error, "invalid_client");
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(basic_credentials(&headers).is_none());
    }
}
