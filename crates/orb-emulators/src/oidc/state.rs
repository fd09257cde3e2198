//! The provider's state and rules, without HTTP: registered clients and users, the authorization
//! request's checks, sign-in, code redemption (client authentication, PKCE, one-time codes that expire),
//! access tokens for `/userinfo`. Every function takes `now`.

use std::collections::{BTreeMap, HashMap};

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// How long an authorization code can be redeemed.
pub const CODE_LIFETIME: Duration = Duration::seconds(60);
/// How long an ID token is valid.
pub const ID_TOKEN_LIFETIME: Duration = Duration::minutes(10);
/// How long an access token is valid at `/userinfo`.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::hours(1);

/// A registered relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// The client secret; `None` for a public client (PKCE only, no client authentication).
    pub secret: Option<String>,
    /// Redirect URIs, matched exactly (no prefix, no normalisation).
    pub redirect_uris: Vec<String>,
}

/// A person who can sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable subject identifier (`sub`).
    pub subject: String,
    /// E-mail address (sign-in name; compared case-insensitively).
    pub email: String,
    /// Password, in clear (it is an emulator).
    pub password: String,
    /// The `email_verified` claim.
    pub email_verified: bool,
}

/// The parameters of an authorization request (query of `GET /authorize`, form of `POST /authorize`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthorizeRequest {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `response_type`.
    pub response_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
}

impl AuthorizeRequest {
    /// The request's parameters from form-encoded pairs (other names ignored; a repeated one: the last).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut request = Self::default();
        for (name, value) in pairs {
            let slot = match name {
                "client_id" => &mut request.client_id,
                "redirect_uri" => &mut request.redirect_uri,
                "response_type" => &mut request.response_type,
                "scope" => &mut request.scope,
                "state" => &mut request.state,
                "nonce" => &mut request.nonce,
                "code_challenge" => &mut request.code_challenge,
                "code_challenge_method" => &mut request.code_challenge_method,
                _ => continue,
            };
            *slot = Some(value.to_owned());
        }
        request
    }

    /// The parameters as pairs (for the sign-in form's hidden fields), in a fixed order.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("response_type", &self.response_type),
            ("scope", &self.scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

/// Why an authorization request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: show an error page, never redirect
    /// (OAuth 2.0 §4.1.2.1).
    Page {
        /// What is wrong, for the page.
        message: String,
    },
    /// Send the browser back to the client with `error` (and `state`).
    Redirect {
        /// The validated redirect URI.
        redirect_uri: String,
        /// OAuth error code.
        error: &'static str,
        /// `error_description`.
        description: String,
        /// The request's `state`, echoed.
        state: Option<String>,
    },
}

/// An OAuth error at the token or userinfo endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// OAuth error code (`invalid_request`, `invalid_client`, `invalid_grant`, `unsupported_grant_type`,
    /// `invalid_token`).
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
}

impl TokenError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self { error, description: description.into() }
    }
}

/// How a client authenticated at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` (already decoded).
    Basic {
        /// The id from the header.
        id: String,
        /// The secret from the header.
        secret: String,
    },
    /// `client_secret_post`.
    Post {
        /// `client_id` from the form.
        id: String,
        /// `client_secret` from the form.
        secret: String,
    },
    /// No client authentication: a public client naming itself with `client_id`.
    None {
        /// `client_id` from the form, if any.
        id: Option<String>,
    },
}

/// What `POST /token` was given (after client authentication was read from the request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_verifier`.
    pub code_verifier: Option<String>,
}

/// A successful token response's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The access token (for `/userinfo`).
    pub access_token: String,
    /// The ID token's claims, to be signed.
    pub id_token_claims: Map<String, Value>,
    /// The granted scope.
    pub scope: String,
}

#[derive(Debug, Clone)]
struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    nonce: Option<String>,
    scope: String,
    subject: String,
    issued_at: DateTime<Utc>,
    used: bool,
}

#[derive(Debug, Clone)]
struct AccessGrant {
    subject: String,
    scope: String,
    expires_at: DateTime<Utc>,
    code: String,
}

/// Everything the provider knows.
#[derive(Debug, Default)]
pub struct State {
    /// The issuer identifier (`http://127.0.0.1:<port>` once served).
    pub issuer: String,
    /// Registered clients by id.
    pub clients: BTreeMap<String, Client>,
    /// Users, in the order added.
    pub users: Vec<User>,
    codes: HashMap<String, CodeGrant>,
    access_tokens: HashMap<String, AccessGrant>,
    /// Codes issued so far.
    pub codes_issued: u64,
    /// Token responses issued so far.
    pub tokens_issued: u64,
}

/// A PKCE verifier's form (RFC 7636 §4.1): 43–128 unreserved characters.
fn verifier_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier: base64url(SHA-256(verifier)), unpadded.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

fn scope_has(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

impl State {
    /// Checks an authorization request (OAuth 2.0 §4.1.1, PKCE S256 required, `openid` scope required).
    /// Returns the client's validated redirect URI.
    pub fn validate_authorize(&self, request: &AuthorizeRequest) -> Result<String, AuthorizeError> {
        let page = |message: &str| AuthorizeError::Page { message: message.to_owned() };
        let client_id =
            request.client_id.as_deref().ok_or_else(|| page("The request names no client (client_id)."))?;
        let client =
            self.clients.get(client_id).ok_or_else(|| page("The client (client_id) is not registered."))?;
        let redirect_uri =
            request.redirect_uri.as_deref().ok_or_else(|| page("The request has no redirect_uri."))?;
        if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
            return Err(page("The redirect_uri is not registered for this client."));
        }
        let back = |error: &'static str, description: &str| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.to_owned(),
            error,
            description: description.to_owned(),
            state: request.state.clone(),
        };
        match request.response_type.as_deref() {
            Some("code") => {}
            Some(_) => {
                return Err(back("unsupported_response_type", "Only response_type=code is supported."));
            }
            None => return Err(back("invalid_request", "response_type is missing.")),
        }
        if !request.scope.as_deref().is_some_and(|s| scope_has(s, "openid")) {
            return Err(back("invalid_scope", "The scope must include openid."));
        }
        match (request.code_challenge.as_deref(), request.code_challenge_method.as_deref()) {
            (Some(challenge), Some("S256")) if challenge.len() == 43 => {}
            (Some(_), Some("S256")) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge is not a base64url SHA-256 (43 characters).",
                ));
            }
            (Some(_), _) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted).",
                ));
            }
            (None, _) => {
                return Err(back("invalid_request", "PKCE is required: send code_challenge (S256)."));
            }
        }
        Ok(redirect_uri.to_owned())
    }

    /// The user with this e-mail address (case-insensitive) and password.
    pub fn authenticate(&self, email: &str, password: &str) -> Option<&User> {
        self.users.iter().find(|u| u.email.eq_ignore_ascii_case(email.trim()) && u.password == password)
    }

    /// Issues a one-time code for a validated request and a signed-in user.
    pub fn issue_code(
        &mut self,
        request: &AuthorizeRequest,
        subject: &str,
        code: String,
        now: DateTime<Utc>,
    ) {
        self.codes.insert(
            code,
            CodeGrant {
                client_id: request.client_id.clone().unwrap_or_default(),
                redirect_uri: request.redirect_uri.clone().unwrap_or_default(),
                code_challenge: request.code_challenge.clone().unwrap_or_default(),
                nonce: request.nonce.clone(),
                scope: request.scope.clone().unwrap_or_default(),
                subject: subject.to_owned(),
                issued_at: now,
                used: false,
            },
        );
        self.codes_issued += 1;
    }

    /// Authenticates the client (`invalid_client` otherwise; a client with a secret must present it).
    fn authenticate_client(&self, auth: &ClientAuth) -> Result<&Client, TokenError> {
        let invalid = || TokenError::new("invalid_client", "Client authentication failed.");
        let (id, presented) = match auth {
            ClientAuth::Basic { id, secret } | ClientAuth::Post { id, secret } => {
                (id.as_str(), Some(secret.as_str()))
            }
            ClientAuth::None { id: Some(id) } => (id.as_str(), None),
            ClientAuth::None { id: None } => {
                return Err(TokenError::new("invalid_request", "The request names no client (client_id)."));
            }
        };
        let client = self.clients.get(id).ok_or_else(invalid)?;
        match (&client.secret, presented) {
            (Some(expected), Some(given)) if expected == given => Ok(client),
            (None, None) => Ok(client),
            _ => Err(invalid()),
        }
    }

    /// Redeems a code (authorization_code grant). A code is consumed by its first redemption attempt by
    /// the right client, whatever the outcome; a second attempt is `invalid_grant` and revokes the
    /// access tokens the first one got (OAuth 2.0 §4.1.2).
    pub fn redeem(
        &mut self,
        auth: &ClientAuth,
        request: &TokenRequest,
        access_token: String,
        now: DateTime<Utc>,
    ) -> Result<Issued, TokenError> {
        let client_id = self.authenticate_client(auth)?.id.clone();
        match request.grant_type.as_deref() {
            Some("authorization_code") => {}
            Some(_) => {
                return Err(TokenError::new(
                    "unsupported_grant_type",
                    "Only authorization_code is supported.",
                ));
            }
            None => return Err(TokenError::new("invalid_request", "grant_type is missing.")),
        }
        let code =
            request.code.as_deref().ok_or_else(|| TokenError::new("invalid_request", "code is missing."))?;
        let bad_grant = |why: &str| TokenError::new("invalid_grant", why);
        let grant = self.codes.get_mut(code).ok_or_else(|| bad_grant("The code is unknown."))?;
        if grant.client_id != client_id {
            return Err(bad_grant("The code was issued to another client."));
        }
        if grant.used {
            self.access_tokens.retain(|_, a| a.code != code);
            return Err(bad_grant("The code has already been used."));
        }
        grant.used = true;
        let grant = grant.clone();
        if now - grant.issued_at > CODE_LIFETIME {
            return Err(bad_grant("The code has expired."));
        }
        if request.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
            return Err(bad_grant("redirect_uri differs from the authorization request's."));
        }
        let verifier = request
            .code_verifier
            .as_deref()
            .ok_or_else(|| TokenError::new("invalid_request", "code_verifier is missing (PKCE)."))?;
        if !verifier_well_formed(verifier) || s256_challenge(verifier) != grant.code_challenge {
            return Err(bad_grant("The code_verifier does not match the code_challenge."));
        }
        let user = self
            .users
            .iter()
            .find(|u| u.subject == grant.subject)
            .ok_or_else(|| bad_grant("The user is gone."))?;
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(user.subject));
        claims.insert("aud".into(), json!(client_id));
        claims.insert("iat".into(), json!(now.timestamp()));
        claims.insert("exp".into(), json!((now + ID_TOKEN_LIFETIME).timestamp()));
        claims.insert("auth_time".into(), json!(grant.issued_at.timestamp()));
        if let Some(nonce) = &grant.nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        if scope_has(&grant.scope, "email") {
            claims.insert("email".into(), json!(user.email));
            claims.insert("email_verified".into(), json!(user.email_verified));
        }
        self.access_tokens.insert(
            access_token.clone(),
            AccessGrant {
                subject: user.subject.clone(),
                scope: grant.scope.clone(),
                expires_at: now + ACCESS_TOKEN_LIFETIME,
                code: code.to_owned(),
            },
        );
        self.tokens_issued += 1;
        Ok(Issued { access_token, id_token_claims: claims, scope: grant.scope })
    }

    /// The userinfo claims for a bearer access token (`invalid_token` when unknown, revoked or expired).
    pub fn userinfo(&self, access_token: &str, now: DateTime<Utc>) -> Result<Value, TokenError> {
        let invalid = || TokenError::new("invalid_token", "The access token is invalid or has expired.");
        let grant =
            self.access_tokens.get(access_token).filter(|g| now < g.expires_at).ok_or_else(invalid)?;
        let user = self.users.iter().find(|u| u.subject == grant.subject).ok_or_else(invalid)?;
        let mut claims = json!({ "sub": user.subject });
        if scope_has(&grant.scope, "email") {
            claims["email"] = json!(user.email);
            claims["email_verified"] = json!(user.email_verified);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T09:00:00Z").unwrap().to_utc()
    }

    fn state() -> State {
        let mut s = State { issuer: "http://127.0.0.1:1".into(), ..State::default() };
        s.clients.insert(
            "orb".into(),
            Client {
                id: "orb".into(),
                secret: Some("s3cret".into()),
                redirect_uris: vec!["https://orb/cb".into()],
            },
        );
        s.clients.insert(
            "public".into(),
            Client { id: "public".into(), secret: None, redirect_uris: vec!["https://orb/cb".into()] },
        );
        s.users.push(User {
            subject: "u1".into(),
            email: "Anna@Contoso.com".into(),
            password: "pw".into(),
            email_verified: true,
        });
        s
    }

    fn request(client: &str) -> AuthorizeRequest {
        AuthorizeRequest {
            client_id: Some(client.into()),
            redirect_uri: Some("https://orb/cb".into()),
            response_type: Some("code".into()),
            scope: Some("openid email".into()),
            state: Some("st".into()),
            nonce: Some("n0".into()),
            code_challenge: Some(s256_challenge(VERIFIER)),
            code_challenge_method: Some("S256".into()),
        }
    }

    fn token_request(code: &str) -> TokenRequest {
        TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some(code.into()),
            redirect_uri: Some("https://orb/cb".into()),
            code_verifier: Some(VERIFIER.into()),
        }
    }

    fn basic() -> ClientAuth {
        ClientAuth::Basic { id: "orb".into(), secret: "s3cret".into() }
    }

    #[test]
    fn rfc_7636_s256_example() {
        assert_eq!(s256_challenge(VERIFIER), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn authorize_request_checks() {
        let s = state();
        assert_eq!(s.validate_authorize(&request("orb")), Ok("https://orb/cb".to_owned()));
        let page = |mutate: fn(&mut AuthorizeRequest)| {
            let mut r = request("orb");
            mutate(&mut r);
            matches!(s.validate_authorize(&r), Err(AuthorizeError::Page { .. }))
        };
        assert!(page(|r| r.client_id = None));
        assert!(page(|r| r.client_id = Some("nobody".into())));
        assert!(page(|r| r.redirect_uri = None));
        assert!(page(|r| r.redirect_uri = Some("https://orb/cb/".into())), "exact match only");
        assert!(page(|r| r.redirect_uri = Some("https://evil/cb".into())));
        let back = |mutate: fn(&mut AuthorizeRequest)| {
            let mut r = request("orb");
            mutate(&mut r);
            match s.validate_authorize(&r) {
                Err(AuthorizeError::Redirect { error, state, .. }) => {
                    assert_eq!(state.as_deref(), Some("st"));
                    error
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(back(|r| r.response_type = Some("token".into())), "unsupported_response_type");
        assert_eq!(back(|r| r.response_type = None), "invalid_request");
        assert_eq!(back(|r| r.scope = Some("email".into())), "invalid_scope");
        assert_eq!(back(|r| r.code_challenge = None), "invalid_request");
        assert_eq!(back(|r| r.code_challenge_method = Some("plain".into())), "invalid_request");
        assert_eq!(back(|r| r.code_challenge_method = None), "invalid_request");
        assert_eq!(back(|r| r.code_challenge = Some("short".into())), "invalid_request");
    }

    #[test]
    fn a_code_is_redeemed_once_with_the_right_verifier_client_and_redirect() {
        let mut s = state();
        s.issue_code(&request("orb"), "u1", "c1".into(), t0());
        let issued =
            s.redeem(&basic(), &token_request("c1"), "at1".into(), t0() + Duration::seconds(5)).unwrap();
        let c = &issued.id_token_claims;
        assert_eq!(c["iss"], "http://127.0.0.1:1");
        assert_eq!(c["sub"], "u1");
        assert_eq!(c["aud"], "orb");
        assert_eq!(c["nonce"], "n0");
        assert_eq!(c["email"], "Anna@Contoso.com");
        assert_eq!(c["email_verified"], true);
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
        assert_eq!(s.userinfo("at1", t0()).unwrap()["sub"], "u1");

        let again = s.redeem(&basic(), &token_request("c1"), "at2".into(), t0() + Duration::seconds(6));
        assert_eq!(again.unwrap_err().error, "invalid_grant");
        assert_eq!(s.userinfo("at1", t0()).unwrap_err().error, "invalid_token", "reuse revokes");
    }

    #[test]
    fn redemption_refusals() {
        let check = |auth: ClientAuth, mutate: fn(&mut TokenRequest), after: i64, expected: &str| {
            let mut s = state();
            s.issue_code(&request("orb"), "u1", "c1".into(), t0());
            s.issue_code(&request("public"), "u1", "p1".into(), t0());
            let mut req = token_request("c1");
            mutate(&mut req);
            let got = s.redeem(&auth, &req, "at".into(), t0() + Duration::seconds(after));
            assert_eq!(got.map(|_| "ok").unwrap_or_else(|e| e.error), expected);
        };
        check(basic(), |_| {}, 60, "ok");
        check(basic(), |_| {}, 61, "invalid_grant"); // expired
        check(ClientAuth::Post { id: "orb".into(), secret: "s3cret".into() }, |_| {}, 0, "ok");
        check(ClientAuth::Basic { id: "orb".into(), secret: "wrong".into() }, |_| {}, 0, "invalid_client");
        check(ClientAuth::Basic { id: "ghost".into(), secret: "x".into() }, |_| {}, 0, "invalid_client");
        check(ClientAuth::None { id: Some("orb".into()) }, |_| {}, 0, "invalid_client"); // secret required
        check(ClientAuth::None { id: None }, |_| {}, 0, "invalid_request");
        check(ClientAuth::None { id: Some("public".into()) }, |r| r.code = Some("p1".into()), 0, "ok");
        check(ClientAuth::None { id: Some("public".into()) }, |_| {}, 0, "invalid_grant"); // other client's code
        check(basic(), |r| r.code_verifier = Some(format!("{VERIFIER}x")), 0, "invalid_grant");
        check(basic(), |r| r.code_verifier = Some("short".into()), 0, "invalid_grant");
        check(basic(), |r| r.code_verifier = None, 0, "invalid_request");
        check(basic(), |r| r.redirect_uri = Some("https://orb/other".into()), 0, "invalid_grant");
        check(basic(), |r| r.redirect_uri = None, 0, "invalid_grant");
        check(basic(), |r| r.code = Some("nope".into()), 0, "invalid_grant");
        check(basic(), |r| r.code = None, 0, "invalid_request");
        check(basic(), |r| r.grant_type = Some("password".into()), 0, "unsupported_grant_type");
        check(basic(), |r| r.grant_type = None, 0, "invalid_request");
    }

    #[test]
    fn without_the_email_scope_there_are_no_email_claims() {
        let mut s = state();
        let mut r = request("orb");
        r.scope = Some("openid".into());
        s.issue_code(&r, "u1", "c1".into(), t0());
        let issued = s.redeem(&basic(), &token_request("c1"), "at".into(), t0()).unwrap();
        assert!(!issued.id_token_claims.contains_key("email"));
        assert_eq!(s.userinfo("at", t0()).unwrap(), json!({ "sub": "u1" }));
        assert_eq!(s.userinfo("at", t0() + ACCESS_TOKEN_LIFETIME).unwrap_err().error, "invalid_token");
    }

    #[test]
    fn authenticate_matches_email_case_insensitively_and_password_exactly() {
        let s = state();
        assert!(s.authenticate("anna@contoso.com", "pw").is_some());
        assert!(s.authenticate(" ANNA@contoso.com ", "pw").is_some());
        assert!(s.authenticate("anna@contoso.com", "PW").is_none());
        assert!(s.authenticate("bob@contoso.com", "pw").is_none());
    }
}
