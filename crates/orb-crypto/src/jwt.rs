//! `validationTokens`: the JWTs Graph puts in a `changeNotificationCollection` with resource data, one per
//! (app, tenant) pair in the POST (reference `microsoft-graph.md` §3.4). ORB validates them; the Graph
//! emulator issues them with [`ValidationTokenSigner`].
//!
//! The checks and the JWKS cache contract are documented on [`validate_validation_token`].
//!
//! # Why not the `jsonwebtoken` crate
//! RS256 verification is one aws-lc-rs call; what remains is claim logic that `jsonwebtoken` does not cover
//! anyway (two issuer formats per tenant, `azp`/`appid` publisher check, key lookup reporting an unknown
//! kid), and its expiry check reads the system clock, while this crate takes the time as an argument.
//! Doing it here keeps one crypto library and no extra dependency.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::CryptoError;

/// The app id of Microsoft Graph's change-notification publisher, which `azp` / `appid` of every
/// validation token must carry (reference §3.4, from the Graph docs and the Java SDK).
pub const GRAPH_NOTIFICATION_PUBLISHER_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// Microsoft identity platform signing keys, as used by the .NET and Java Graph SDKs. (The docs' JavaScript
/// sample uses `https://login.microsoftonline.com/common/discovery/v2.0/keys`; both serve the signing keys.)
pub const MICROSOFT_JWKS_URL: &str = "https://login.microsoftonline.com/common/discovery/keys";

/// The only signature algorithm accepted.
const ALG: &str = "RS256";

/// Longest claim value quoted in an error message.
const QUOTE_MAX: usize = 120;

/// One key of a JSON Web Key Set (RFC 7517). Unknown members (`x5c`, `issuer`, ...) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type; only `RSA` keys are used.
    pub kty: String,
    /// Key id, matched against the token header's `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use; a key with a `use` other than `sig` is not used.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Algorithm; when present it must be `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Base64url SHA-1 thumbprint of the key's certificate (Microsoft sets it equal to `kid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
}

/// A JSON Web Key Set: `{"keys":[...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document.
    pub fn from_json(json: &[u8]) -> Result<Self, CryptoError> {
        serde_json::from_slice(json).map_err(|e| CryptoError::InvalidJwks { reason: e.to_string() })
    }

    /// The document as JSON, for serving it (emulator).
    pub fn to_json(&self) -> String {
        // Serializing plain strings and vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The RSA signing key with this key id (or, failing that, this `x5t`).
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        let usable = |k: &&Jwk| k.kty == "RSA" && k.use_.as_deref().is_none_or(|u| u == "sig");
        let keys = || self.keys.iter().filter(usable);
        keys()
            .find(|k| k.kid.as_deref() == Some(kid))
            .or_else(|| keys().find(|k| k.x5t.as_deref() == Some(kid)))
    }

    /// Adds the keys of `other` that this set does not hold yet (for a signer rotation in the emulator).
    pub fn merged(mut self, other: Jwks) -> Self {
        for key in other.keys {
            if !self.keys.contains(&key) {
                self.keys.push(key);
            }
        }
        self
    }
}

/// Why a validation token was refused (the `reason` of [`CryptoError::InvalidValidationToken`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRejection {
    /// Not three base64url parts of JSON, or a claim of the wrong type.
    Malformed {
        /// What is wrong.
        detail: String,
    },
    /// A header `alg` other than `RS256`, or a key whose `alg` is not `RS256`.
    UnsupportedAlgorithm {
        /// The algorithm named.
        alg: String,
    },
    /// The JWKS key with the token's kid has no usable RSA modulus / exponent.
    UnusableKey {
        /// The key id.
        kid: String,
    },
    /// The signature does not verify with the key named by `kid`.
    BadSignature,
    /// A required claim is absent.
    MissingClaim {
        /// Its name.
        claim: &'static str,
    },
    /// `exp` has passed (beyond the allowed clock skew).
    Expired {
        /// The token's `exp`.
        expired_at: DateTime<Utc>,
    },
    /// `nbf` is still ahead (beyond the allowed clock skew).
    NotYetValid {
        /// The token's `nbf`.
        not_before: DateTime<Utc>,
    },
    /// `iss` is not a Microsoft issuer for an expected tenant.
    WrongIssuer {
        /// The token's `iss` (shortened).
        issuer: String,
    },
    /// `aud` names none of ORB's app ids.
    WrongAudience {
        /// The token's `aud` (shortened).
        audience: String,
    },
    /// `azp` / `appid` is not Microsoft Graph's notification publisher.
    WrongPublisher {
        /// The app id found (shortened).
        app_id: String,
    },
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { detail } => write!(f, "the token is malformed ({detail})"),
            Self::UnsupportedAlgorithm { alg } => write!(f, "algorithm {alg:?} is not accepted, only {ALG}"),
            Self::UnusableKey { kid } => write!(f, "signing key {kid:?} in the JWKS is not a usable RSA key"),
            Self::BadSignature => f.write_str("the signature does not verify"),
            Self::MissingClaim { claim } => write!(f, "the claim {claim:?} is missing"),
            Self::Expired { expired_at } => write!(f, "it expired at {expired_at}"),
            Self::NotYetValid { not_before } => write!(f, "it is not valid before {not_before}"),
            Self::WrongIssuer { issuer } => {
                write!(f, "issuer {issuer:?} is not Microsoft for an expected tenant")
            }
            Self::WrongAudience { audience } => write!(f, "audience {audience:?} is not this app"),
            Self::WrongPublisher { app_id } => {
                write!(
                    f,
                    "app id {app_id:?} is not Graph's notification publisher {GRAPH_NOTIFICATION_PUBLISHER_APP_ID}"
                )
            }
        }
    }
}

/// What a validation token must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationTokenExpectations {
    /// ORB's application (client) ids: `aud` must be one of them (several when apps share the URL).
    pub app_ids: Vec<String>,
    /// The tenants the notification POST is about: the issuer must be Microsoft for one of them.
    pub tenant_ids: Vec<String>,
    /// The publisher app id required in `azp` / `appid`; normally
    /// [`GRAPH_NOTIFICATION_PUBLISHER_APP_ID`].
    pub publisher_app_id: String,
    /// Leeway for `exp` and `nbf`.
    pub clock_skew: Duration,
}

impl ValidationTokenExpectations {
    /// Expectations for one app and one tenant, Microsoft's publisher and 5 minutes of clock skew.
    pub fn new(app_id: impl Into<String>, tenant_id: impl Into<String>) -> Self {
        Self {
            app_ids: vec![app_id.into()],
            tenant_ids: vec![tenant_id.into()],
            publisher_app_id: GRAPH_NOTIFICATION_PUBLISHER_APP_ID.to_owned(),
            clock_skew: Duration::minutes(5),
        }
    }
}

/// What a valid token established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToken {
    /// The tenant of the issuer (as written in `iss`).
    pub tenant_id: String,
    /// The app id from `aud` that matched.
    pub app_id: String,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
    /// The key that signed it.
    pub kid: String,
}

/// Validates one `validationTokens` JWT against `jwks` at time `now`.
///
/// # Checks, in order
/// 1. Shape: three base64url parts, JSON header and claims.
/// 2. Header `alg` is `RS256` (anything else, `none` and `HS256` included, is refused).
/// 3. The key: `kid` (or, without `kid`, `x5t`) names an RSA signing key of `jwks`; when none matches the
///    result is [`CryptoError::UnknownKid`], not a rejection.
/// 4. RS256 signature (RSASSA-PKCS1-v1_5, SHA-256, 2048 to 8192 bits) over `header.claims`.
/// 5. Only for a valid signature, the claims: `exp` (required) and `nbf` (if present) with
///    [`ValidationTokenExpectations::clock_skew`] of leeway; `iss` is `https://sts.windows.net/{tenant}/`
///    (v1) or `https://login.microsoftonline.com/{tenant}/v2.0` (v2) for one of the expected tenants;
///    `aud` (string or array) holds one of ORB's app ids; the publisher: `azp` and `appid`, whichever are
///    present (at least one must be), equal the expected publisher app id.
///
/// Every failure other than an unknown kid is [`CryptoError::InvalidValidationToken`] with a
/// [`TokenRejection`] saying which check failed.
///
/// # JWKS cache and refresh (the caller's side, orb-graph)
/// This function does no I/O. The caller fetches the JWKS (by default from [`MICROSOFT_JWKS_URL`],
/// configurable; the emulator serves [`ValidationTokenSigner::jwks`]), parses it with [`Jwks::from_json`]
/// and caches it, shared by all tenants. On [`CryptoError::UnknownKid`] (the only retryable error of this
/// crate) it fetches the JWKS once more and validates again; if the kid is still unknown the token is
/// refused. So that forged kids cannot make ORB hammer the key endpoint, it refetches at most once per few
/// minutes (one fetch in flight at a time); besides, it refreshes the cache about daily, as the keys
/// rotate.
///
/// Callers validate every token of a POST and require one valid token per (app, tenant) pair in its
/// items ([`ValidatedToken`] tells which pair a token covers).
pub fn validate_validation_token(
    token: &str,
    jwks: &Jwks,
    expected: &ValidationTokenExpectations,
    now: DateTime<Utc>,
) -> Result<ValidatedToken, CryptoError> {
    let reject = |reason: TokenRejection| CryptoError::InvalidValidationToken { reason };
    let malformed = |detail: &str| reject(TokenRejection::Malformed { detail: detail.to_owned() });

    let mut parts = token.trim().split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three dot-separated parts"));
    };
    let header = decode_json(header_b64).ok_or_else(|| malformed("the header is not base64url JSON"))?;
    let signature =
        URL_SAFE_NO_PAD.decode(signature_b64).map_err(|_| malformed("the signature is not base64url"))?;

    let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default();
    if alg != ALG {
        return Err(reject(TokenRejection::UnsupportedAlgorithm { alg: shorten(alg) }));
    }
    let kid = ["kid", "x5t"]
        .iter()
        .find_map(|name| header.get(*name).and_then(Value::as_str))
        .ok_or_else(|| malformed("the header names no key (kid or x5t)"))?;
    let key = jwks.find(kid).ok_or_else(|| CryptoError::UnknownKid { kid: shorten(kid) })?;
    if let Some(key_alg) = key.alg.as_deref()
        && key_alg != ALG
    {
        return Err(reject(TokenRejection::UnsupportedAlgorithm { alg: shorten(key_alg) }));
    }
    let unusable = || reject(TokenRejection::UnusableKey { kid: shorten(kid) });
    let n = key.n.as_deref().and_then(decode_integer).ok_or_else(unusable)?;
    let e = key.e.as_deref().and_then(decode_integer).ok_or_else(unusable)?;
    let signed = &token.trim()[..header_b64.len() + 1 + claims_b64.len()];
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
        .map_err(|_| reject(TokenRejection::BadSignature))?;

    // From here on the claims are Microsoft's (or the emulator's); now check they are meant for us.
    let claims = decode_json(claims_b64).ok_or_else(|| malformed("the claims are not base64url JSON"))?;
    let expires_at =
        time_claim(&claims, "exp")?.ok_or_else(|| reject(TokenRejection::MissingClaim { claim: "exp" }))?;
    if now >= expires_at + expected.clock_skew {
        return Err(reject(TokenRejection::Expired { expired_at: expires_at }));
    }
    if let Some(not_before) = time_claim(&claims, "nbf")?
        && now + expected.clock_skew < not_before
    {
        return Err(reject(TokenRejection::NotYetValid { not_before }));
    }

    let issuer =
        string_claim(&claims, "iss")?.ok_or_else(|| reject(TokenRejection::MissingClaim { claim: "iss" }))?;
    let tenant_id = issuer_tenant(issuer)
        .and_then(|tenant| expected.tenant_ids.iter().find(|t| t.eq_ignore_ascii_case(tenant)))
        .ok_or_else(|| reject(TokenRejection::WrongIssuer { issuer: shorten(issuer) }))?;

    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(malformed("the aud claim is neither a string nor an array")),
        None => return Err(reject(TokenRejection::MissingClaim { claim: "aud" })),
    };
    let app_id = expected
        .app_ids
        .iter()
        .find(|app| audiences.iter().any(|aud| aud.eq_ignore_ascii_case(app)))
        .ok_or_else(|| reject(TokenRejection::WrongAudience { audience: shorten(&audiences.join(",")) }))?;

    let publishers = [string_claim(&claims, "azp")?, string_claim(&claims, "appid")?];
    if publishers.iter().all(Option::is_none) {
        return Err(reject(TokenRejection::MissingClaim { claim: "azp/appid" }));
    }
    if let Some(other) =
        publishers.iter().flatten().find(|p| !p.eq_ignore_ascii_case(&expected.publisher_app_id))
    {
        return Err(reject(TokenRejection::WrongPublisher { app_id: shorten(other) }));
    }

    Ok(ValidatedToken {
        tenant_id: tenant_id.clone(),
        app_id: app_id.clone(),
        expires_at,
        kid: kid.to_owned(),
    })
}

/// Issuer formats of Microsoft identity tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IssuerFormat {
    /// `https://sts.windows.net/{tenant}/`, `ver` 1.0, publisher in `appid` (the Graph docs' example).
    #[default]
    V1,
    /// `https://login.microsoftonline.com/{tenant}/v2.0`, `ver` 2.0, publisher in `azp`.
    V2,
}

impl IssuerFormat {
    /// The `iss` value for `tenant_id`.
    pub fn issuer(self, tenant_id: &str) -> String {
        match self {
            Self::V1 => format!("https://sts.windows.net/{tenant_id}/"),
            Self::V2 => format!("https://login.microsoftonline.com/{tenant_id}/v2.0"),
        }
    }
}

/// What the emulator puts into a validation token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationTokenClaims {
    /// The subscribing app (`aud`).
    pub app_id: String,
    /// The tenant (`iss`, `tid`).
    pub tenant_id: String,
    /// `appid` (V1) or `azp` (V2); Graph uses [`GRAPH_NOTIFICATION_PUBLISHER_APP_ID`].
    pub publisher_app_id: String,
    /// `iat` and `nbf`.
    pub issued_at: DateTime<Utc>,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
    /// Token version and issuer format.
    pub format: IssuerFormat,
}

impl ValidationTokenClaims {
    /// Claims as Graph issues them: Microsoft's publisher, V1 format, valid 8 hours from `issued_at` (as
    /// in the docs' example; the real lifetime is unverified, reference U3).
    pub fn graph(app_id: impl Into<String>, tenant_id: impl Into<String>, issued_at: DateTime<Utc>) -> Self {
        Self {
            app_id: app_id.into(),
            tenant_id: tenant_id.into(),
            publisher_app_id: GRAPH_NOTIFICATION_PUBLISHER_APP_ID.to_owned(),
            issued_at,
            expires_at: issued_at + Duration::hours(8),
            format: IssuerFormat::V1,
        }
    }

    /// The JSON claims set.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut claims = json!({
            "aud": self.app_id,
            "iss": self.format.issuer(&self.tenant_id),
            "iat": self.issued_at.timestamp(),
            "nbf": self.issued_at.timestamp(),
            "exp": self.expires_at.timestamp(),
            "appidacr": "2",
            "idp": self.format.issuer(&self.tenant_id),
            "tid": self.tenant_id,
        });
        let mut map = claims.as_object_mut().map(std::mem::take).unwrap_or_default();
        match self.format {
            IssuerFormat::V1 => {
                map.insert("appid".to_owned(), json!(self.publisher_app_id));
                map.insert("ver".to_owned(), json!("1.0"));
            }
            IssuerFormat::V2 => {
                map.insert("azp".to_owned(), json!(self.publisher_app_id));
                map.insert("ver".to_owned(), json!("2.0"));
            }
        }
        map
    }
}

/// Issues RS256 validation tokens and publishes the matching JWKS (for the Graph emulator and tests).
///
/// `Debug` shows only the key id.
pub struct ValidationTokenSigner {
    kid: String,
    key: RsaKeyPair,
}

impl ValidationTokenSigner {
    /// A signer with a fresh RSA-2048 key.
    pub fn generate(kid: impl Into<String>) -> Result<Self, CryptoError> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(CryptoError::Random)?;
        Ok(Self { kid: kid.into(), key })
    }

    /// A signer with a stored RSA key (unencrypted PKCS#8 DER).
    pub fn from_pkcs8_der(kid: impl Into<String>, pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let key = RsaKeyPair::from_pkcs8(pkcs8)
            .map_err(|e| CryptoError::InvalidPrivateKey { reason: format!("not an RSA PKCS#8 key ({e})") })?;
        Ok(Self { kid: kid.into(), key })
    }

    /// The key as PKCS#8 DER, so the emulator can keep its key across restarts.
    pub fn to_pkcs8_der(&self) -> Result<SecretSlice<u8>, CryptoError> {
        let der = self.key.as_der().map_err(|_| CryptoError::Internal { context: "exporting an RSA key" })?;
        Ok(SecretSlice::from(der.as_ref().to_vec()))
    }

    /// The key id put into every token header and into the JWK.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty` RSA, `use` sig, `alg` RS256, `kid`, `n`, `e`).
    pub fn jwk(&self) -> Jwk {
        let public = self.key.public_key();
        Jwk {
            kty: "RSA".to_owned(),
            kid: Some(self.kid.clone()),
            use_: Some("sig".to_owned()),
            alg: Some(ALG.to_owned()),
            n: Some(URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero())),
            e: Some(URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero())),
            x5t: None,
        }
    }

    /// A JWKS holding just this key.
    pub fn jwks(&self) -> Jwks {
        Jwks { keys: vec![self.jwk()] }
    }

    /// A token as Graph issues it for `claims`.
    pub fn issue(&self, claims: &ValidationTokenClaims) -> Result<String, CryptoError> {
        self.sign_claims(&claims.to_json())
    }

    /// Signs an arbitrary claims set (tests and fault injection: wrong audience, missing `exp`, ...).
    pub fn sign_claims(&self, claims: &Map<String, Value>) -> Result<String, CryptoError> {
        let header = json!({ "typ": "JWT", "alg": ALG, "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|_| CryptoError::Internal { context: "signing a validation token" })?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

impl fmt::Debug for ValidationTokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidationTokenSigner").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// The tenant in a Microsoft issuer of either format, or `None`.
fn issuer_tenant(issuer: &str) -> Option<&str> {
    let tenant = issuer
        .strip_prefix("https://sts.windows.net/")
        .and_then(|rest| rest.strip_suffix('/'))
        .or_else(|| {
            issuer.strip_prefix("https://login.microsoftonline.com/").and_then(|r| r.strip_suffix("/v2.0"))
        })?;
    (!tenant.is_empty() && !tenant.contains('/')).then_some(tenant)
}

fn decode_json(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// A base64url big-endian integer (JWK `n`, `e`), tolerating padding and leading zero bytes.
fn decode_integer(text: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
    let start = bytes.iter().position(|b| *b != 0)?;
    Some(bytes[start..].to_vec())
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, CryptoError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(CryptoError::InvalidValidationToken {
            reason: TokenRejection::Malformed { detail: format!("the {name} claim is not a string") },
        }),
    }
}

/// A NumericDate claim (seconds since 1970, possibly fractional).
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<DateTime<Utc>>, CryptoError> {
    let malformed = || CryptoError::InvalidValidationToken {
        reason: TokenRejection::Malformed { detail: format!("the {name} claim is not a NumericDate") },
    };
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let secs = n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64));
            secs.and_then(|s| DateTime::from_timestamp(s, 0)).map(Some).ok_or_else(malformed)
        }
        Some(_) => Err(malformed()),
    }
}

/// A claim value short enough to quote in an error message.
fn shorten(value: &str) -> String {
    if value.chars().count() <= QUOTE_MAX {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(QUOTE_MAX).collect();
        short.push('…');
        short
    }
}
