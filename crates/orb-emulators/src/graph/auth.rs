//! The emulated Microsoft identity platform token endpoint (client credentials).
//!
//! Accepts a client secret (form field or HTTP Basic) or a `private_key_jwt` client assertion signed with
//! a certificate registered for the app: `PS256` with `x5t#S256` (current documentation) and `RS256` with
//! `x5t` (older documentation; reference U1). The assertion's signature is verified with aws-lc-rs against
//! the registered certificate's public key; `aud`, `iss`, `sub`, `exp`, `nbf` and `jti` (no replay) are
//! checked. Errors carry Entra's error codes (`invalid_client`, AADSTS numbers).

use aws_lc_rs::{digest, signature};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use orb_graph::model::TokenErrorResponse;
use serde_json::Value;

use super::state::{Inner, IssuedToken};

/// The only scope app-only Graph tokens are issued for.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// `client_assertion_type` for certificate credentials.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A refused token request: status and Entra error body.
#[derive(Debug)]
pub struct TokenError {
    /// HTTP status (400 or 401).
    pub status: u16,
    /// Body.
    pub body: Box<TokenErrorResponse>,
}

fn refuse(status: u16, error: &str, code: i64, text: &str) -> TokenError {
    TokenError {
        status,
        body: Box::new(TokenErrorResponse {
            error: error.to_owned(),
            error_description: format!("AADSTS{code}: {text}"),
            error_codes: vec![code],
            ..TokenErrorResponse::default()
        }),
    }
}

/// The parsed form of a token request.
#[derive(Debug, Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `client_id` (form or Basic user).
    pub client_id: Option<String>,
    /// `client_secret` (form or Basic password).
    pub client_secret: Option<String>,
    /// `client_assertion_type`.
    pub assertion_type: Option<String>,
    /// `client_assertion`.
    pub assertion: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
}

/// Handles a token request for `tenant`; `audience` is this endpoint's own URL (the assertion's `aud`).
pub fn issue(
    inner: &mut Inner,
    tenant: &str,
    audience: &str,
    req: &TokenRequest,
    now: DateTime<Utc>,
) -> Result<(String, u64), TokenError> {
    if req.grant_type.as_deref() != Some("client_credentials") {
        return Err(refuse(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        ));
    }
    if req.scope.as_deref() != Some(GRAPH_SCOPE) {
        return Err(refuse(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        ));
    }
    let client_id = req.client_id.clone().ok_or_else(|| {
        refuse(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    })?;
    let app = inner.apps.get(&(tenant.to_owned(), client_id.clone())).cloned().ok_or_else(|| {
        refuse(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        )
    })?;
    match (&req.client_secret, &req.assertion) {
        (Some(secret), None) => {
            let ok = app.secrets.iter().any(|s| constant_time_eq(s.as_bytes(), secret.as_bytes()));
            if !ok {
                return Err(refuse(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                ));
            }
        }
        (None, Some(assertion)) => {
            if req.assertion_type.as_deref() != Some(ASSERTION_TYPE) {
                return Err(refuse(400, "invalid_request", 50027, "Invalid client_assertion_type."));
            }
            let jti = verify_assertion(assertion, &client_id, audience, &app.certificates, now)?;
            if !inner.used_jti.insert(jti) {
                return Err(refuse(
                    400,
                    "invalid_client",
                    50013,
                    "Assertion failed signature validation or was replayed (jti already used).",
                ));
            }
        }
        _ => {
            return Err(refuse(
                400,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        }
    }
    let lifetime = inner.knobs.token_lifetime_secs;
    let expires = now + Duration::seconds(i64::try_from(lifetime).unwrap_or(3599));
    let roles = app.roles();
    let token = access_token(tenant, &client_id, &roles, now, expires);
    inner.tokens.insert(token.clone(), IssuedToken { tenant: tenant.to_owned(), client_id, expires, roles });
    Ok((token, lifetime))
}

/// An access token shaped like Entra's (a compact JWT whose payload carries `aud`, `iss`, `tid`, `appid`,
/// `roles`, `iat`, `nbf`, `exp` and a unique `uti`). The signature part is random bytes: the emulator knows
/// its tokens by their text, and a client may only read the claims, never verify them.
fn access_token(
    tenant: &str,
    client_id: &str,
    roles: &[String],
    now: DateTime<Utc>,
    expires: DateTime<Utc>,
) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "emulator"});
    let claims = serde_json::json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "tid": tenant,
        "appid": client_id,
        "idtyp": "app",
        "roles": roles,
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "exp": expires.timestamp(),
        "uti": uuid::Uuid::new_v4().simple().to_string(),
    });
    let signature = uuid::Uuid::new_v4();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature.as_bytes())
    )
}

/// The permission a Graph request needs (app-only), by its path; `None`: no permission is checked.
pub fn required_role(method: &str, path: &str) -> Option<&'static [&'static str]> {
    let path = path.strip_prefix("/v1.0/").unwrap_or(path);
    if path.starts_with("places/") {
        return Some(&["Place.Read.All"]);
    }
    let rest = path.strip_prefix("users/")?;
    let (_, rest) = rest.split_once('/')?;
    if rest == "sendMail" {
        Some(&["Mail.Send"])
    } else if rest.starts_with("events") || rest.starts_with("calendarView") || rest.starts_with("calendar") {
        if method == "GET" {
            Some(&["Calendars.ReadWrite", "Calendars.Read"])
        } else {
            Some(&["Calendars.ReadWrite"])
        }
    } else {
        None
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bad_assertion(text: &str) -> TokenError {
    refuse(401, "invalid_client", 700027, &format!("Client assertion failed signature validation: {text}."))
}

/// Verifies a client assertion; returns its `jti`.
fn verify_assertion(
    jwt: &str,
    client_id: &str,
    audience: &str,
    certificates: &[Vec<u8>],
    now: DateTime<Utc>,
) -> Result<String, TokenError> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad_assertion("not a compact JWS"));
    };
    let json = |part: &str| -> Result<Value, TokenError> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| bad_assertion("bad base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| bad_assertion("bad JSON"))
    };
    let header = json(h)?;
    let claims = json(p)?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad_assertion("bad signature encoding"))?;
    type Thumbprint = fn(&[u8]) -> String;
    let (alg, thumb_of): (&'static dyn signature::VerificationAlgorithm, Thumbprint) =
        match header["alg"].as_str() {
            Some("PS256") => (&signature::RSA_PSS_2048_8192_SHA256, x5t_s256),
            Some("RS256") => (&signature::RSA_PKCS1_2048_8192_SHA256, x5t_sha1),
            _ => return Err(bad_assertion("alg must be PS256 (or RS256)")),
        };
    let thumb = header["x5t#S256"]
        .as_str()
        .filter(|_| header["alg"] == "PS256")
        .or_else(|| header["x5t"].as_str())
        .ok_or_else(|| bad_assertion("no x5t#S256 / x5t header"))?;
    let cert = certificates
        .iter()
        .find(|c| thumb_of(c) == thumb)
        .ok_or_else(|| refuse(401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application."))?;
    let key = rsa_public_key(cert).ok_or_else(|| bad_assertion("registered certificate has no RSA key"))?;
    let signed = &jwt[..h.len() + 1 + p.len()];
    signature::UnparsedPublicKey::new(alg, key)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| bad_assertion("signature does not verify"))?;
    if claims["aud"].as_str() != Some(audience) {
        return Err(refuse(
            400,
            "invalid_client",
            700212,
            &format!("No matching federated identity record / audience; expected aud {audience}."),
        ));
    }
    if claims["iss"].as_str() != Some(client_id) || claims["sub"].as_str() != Some(client_id) {
        return Err(bad_assertion("iss and sub must be the client id"));
    }
    let ts = now.timestamp();
    let exp = claims["exp"].as_i64().ok_or_else(|| bad_assertion("no exp"))?;
    if exp <= ts {
        return Err(refuse(
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf > ts + 300) {
        return Err(refuse(
            400,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    claims["jti"].as_str().map(str::to_owned).ok_or_else(|| bad_assertion("no jti"))
}

/// `x5t#S256`: base64url(SHA-256(DER)).
pub fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der))
}

/// `x5t`: base64url(SHA-1(DER)).
pub fn x5t_sha1(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der))
}

/// Decodes standard base64 (certificates in control-API bodies).
pub fn b64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.trim()).ok()
}

/// One DER TLV: (tag, content, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The PKCS#1 `RSAPublicKey` inside an X.509 certificate (DER), found by walking
/// `Certificate → tbsCertificate → subjectPublicKeyInfo → subjectPublicKey`.
pub fn rsa_public_key(cert: &[u8]) -> Option<&[u8]> {
    let (_, cert, _) = der(cert)?;
    let (_, tbs, _) = der(cert)?;
    let mut rest = tbs;
    let (tag, _, after) = der(rest)?;
    if tag == 0xA0 {
        rest = after; // explicit version
    }
    // serialNumber, signature, issuer, validity, subject
    for _ in 0..5 {
        rest = der(rest)?.2;
    }
    let (_, spki, _) = der(rest)?;
    let (_, _, after_alg) = der(spki)?;
    let (tag, bits, _) = der(after_alg)?;
    (tag == 0x03 && bits.first() == Some(&0)).then(|| &bits[1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_graph_path_needs_its_permission() {
        let calendars: &[&str] = &["Calendars.ReadWrite"];
        for (method, path, expected) in [
            ("GET", "/v1.0/places/microsoft.graph.room", Some(&["Place.Read.All"][..])),
            ("POST", "/v1.0/users/orb@contoso.com/sendMail", Some(&["Mail.Send"][..])),
            ("POST", "/v1.0/users/orb@contoso.com/events", Some(calendars)),
            ("DELETE", "/v1.0/users/orb@contoso.com/events/AAA", Some(calendars)),
            (
                "GET",
                "/v1.0/users/room1@contoso.com/calendarView",
                Some(&["Calendars.ReadWrite", "Calendars.Read"][..]),
            ),
            ("POST", "/v1.0/subscriptions", None),
            ("POST", "/v1.0/$batch", None),
        ] {
            assert_eq!(required_role(method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn tokens_are_jwts_whose_payload_names_the_roles() {
        let now = Utc::now();
        let roles = vec!["Mail.Send".to_owned()];
        let token = access_token("t1", "c1", &roles, now, now + Duration::hours(1));
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["roles"], serde_json::json!(["Mail.Send"]));
        assert_eq!(claims["tid"], "t1");
        assert_eq!(claims["appid"], "c1");
        assert_ne!(token, access_token("t1", "c1", &roles, now, now + Duration::hours(1)), "unique");
    }
}
