//! App-only tokens (OAuth 2.0 client credentials) from the Microsoft identity platform.
//!
//! Two credentials: a client secret ([`Credential::Secret`], a [`SecretString`]) or a certificate
//! ([`Credential::Certificate`]): a `private_key_jwt` assertion signed `PS256` with the `x5t#S256` header
//! (reference §1.2), built with aws-lc-rs. Tokens are cached per (tenant, client id) and fetched again
//! `min(5 min, lifetime / 2)` before they expire, or at once after Graph answered `401`
//! ([`TokenProvider::invalidate`]). Time comes from the injected [`Clock`].
//!
//! Secrets never appear in `Debug` output or error messages.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{digest, rand::SystemRandom, rsa::KeyPair, signature};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use orb_core::Clock;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

use crate::GraphError;
use crate::classify;
use crate::model::{TokenErrorResponse, TokenResponse};

/// The scope of app-only Graph tokens.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The largest token answer read (a token response is a few kB).
const TOKEN_MAX_BYTES: u64 = 1024 * 1024;

/// A certificate credential: the certificate (DER, as registered in the app) and its RSA private key.
pub struct CertificateCredential {
    certificate_der: Vec<u8>,
    key: KeyPair,
}

impl CertificateCredential {
    /// From the certificate's DER and the private key's PKCS#8 DER. Fails if the key is not a usable RSA
    /// key (2048–8192 bits).
    pub fn from_der(certificate_der: Vec<u8>, private_key_pkcs8: &[u8]) -> Result<Self, GraphError> {
        let key = KeyPair::from_pkcs8(private_key_pkcs8).map_err(|e| GraphError::Config {
            reason: format!(
                "the certificate's private key is not an RSA PKCS#8 key ({e}); export it as PKCS#8"
            ),
        })?;
        Ok(Self { certificate_der, key })
    }

    /// From a PEM bundle holding the PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`) and the
    /// certificate registered in the app (the first `-----BEGIN CERTIFICATE-----`; later ones, a chain,
    /// are ignored). Checks that the key is a usable RSA key, that the certificate parses as X.509, and
    /// that the certificate's public key is the key's (a probe signed with the key verifies with the
    /// certificate). Every refusal says what to fix.
    pub fn from_pem(bundle: &[u8]) -> Result<Self, GraphError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

        let refuse = |reason: String| GraphError::Config { reason };
        let text = String::from_utf8_lossy(bundle);
        let key = match PrivatePkcs8KeyDer::from_pem_slice(bundle) {
            Ok(key) => key,
            Err(_) if text.contains("BEGIN RSA PRIVATE KEY") => {
                return Err(refuse(
                    "the private key is PKCS#1 (BEGIN RSA PRIVATE KEY): convert it to PKCS#8 with `openssl \
                     pkcs8 -topk8 -nocrypt -in key.pem` and send the key and the certificate together"
                        .to_owned(),
                ));
            }
            Err(_) if text.contains("BEGIN ENCRYPTED PRIVATE KEY") => {
                return Err(refuse(
                    "the private key is encrypted: send it unencrypted (ORB seals it under the master key), \
                     e.g. `openssl pkcs8 -topk8 -nocrypt -in key.pem`"
                        .to_owned(),
                ));
            }
            Err(e) => {
                return Err(refuse(format!(
                    "no PKCS#8 private key (-----BEGIN PRIVATE KEY-----) in the PEM bundle ({e}): send the \
                     app certificate's private key followed by the certificate"
                )));
            }
        };
        let certificate = match CertificateDer::pem_slice_iter(bundle).next() {
            Some(Ok(cert)) => cert,
            Some(Err(e)) => return Err(refuse(format!("the certificate's PEM is broken ({e})"))),
            None => {
                return Err(refuse(
                    "no certificate (-----BEGIN CERTIFICATE-----) in the PEM bundle: send the private key \
                     followed by the certificate uploaded to the app registration"
                        .to_owned(),
                ));
            }
        };
        let parsed = webpki::EndEntityCert::try_from(&certificate)
            .map_err(|e| refuse(format!("the certificate is not a valid X.509 certificate ({e:?})")))?;
        let credential = Self::from_der(certificate.to_vec(), key.secret_pkcs8_der())?;
        let probe = b"orb certificate credential check";
        let mut sig = vec![0u8; credential.key.public_modulus_len()];
        credential
            .key
            .sign(&signature::RSA_PSS_SHA256, &SystemRandom::new(), probe, &mut sig)
            .map_err(|_| refuse("the private key cannot sign".to_owned()))?;
        parsed
            .verify_signature(webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY, probe, &sig)
            .map_err(|_| {
                refuse(
                    "the certificate does not belong to the private key (its public key is another): send \
                     the certificate made for this key"
                        .to_owned(),
                )
            })?;
        Ok(credential)
    }

    /// `x5t#S256`: base64url of the SHA-256 of the certificate's DER.
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &self.certificate_der))
    }

    /// A fresh signed client assertion for `audience` (the token endpoint URL).
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: DateTime<Utc>,
    ) -> Result<String, GraphError> {
        let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256()});
        let ts = now.timestamp();
        let claims = json!({
            "aud": audience, "iss": client_id, "sub": client_id, "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": ts, "iat": ts, "exp": ts + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&signature::RSA_PSS_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut sig)
            .map_err(|_| GraphError::Config { reason: "signing the client assertion failed".to_owned() })?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential").field("x5t#S256", &self.x5t_s256()).finish_non_exhaustive()
    }
}

/// How the app proves who it is.
#[derive(Debug)]
pub enum Credential {
    /// A client secret (`Debug` shows `[REDACTED]`).
    Secret(SecretString),
    /// A certificate assertion.
    Certificate(CertificateCredential),
}

/// One app registration in one tenant.
#[derive(Debug, Clone)]
pub struct AppRegistration {
    /// Tenant id (GUID) or verified domain.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Its credential.
    pub credential: Arc<Credential>,
}

/// A bearer token and when ORB stops using it.
#[derive(Clone)]
pub struct AccessToken {
    token: SecretString,
    refresh_at: DateTime<Utc>,
}

impl AccessToken {
    /// The token text (for the `Authorization` header only).
    pub fn secret(&self) -> &str {
        self.token.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("refresh_at", &self.refresh_at).finish_non_exhaustive()
    }
}

/// Fetches and caches tokens for any number of app registrations.
#[derive(Debug)]
pub struct TokenProvider {
    http: reqwest::Client,
    login_base: Url,
    clock: Arc<dyn Clock>,
    cache: tokio::sync::Mutex<HashMap<(String, String), AccessToken>>,
    request_timeout: std::time::Duration,
}

impl TokenProvider {
    /// A provider asking `login_base` (e.g. `https://login.microsoftonline.com`); each token request may
    /// take at most 30 s ([`Self::with_request_timeout`]).
    pub fn new(http: reqwest::Client, login_base: Url, clock: Arc<dyn Clock>) -> Self {
        Self {
            http,
            login_base,
            clock,
            cache: tokio::sync::Mutex::new(HashMap::new()),
            request_timeout: std::time::Duration::from_secs(30),
        }
    }

    /// The same provider with another timeout per token request (whatever the HTTP client's own is).
    pub fn with_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The token endpoint of `tenant`.
    pub fn token_endpoint(&self, tenant: &str) -> Result<Url, GraphError> {
        let mut url = self.login_base.clone();
        url.path_segments_mut()
            .map_err(|_| GraphError::Config {
                reason: format!("login base URL {} cannot have a path", self.login_base),
            })?
            .pop_if_empty()
            .extend([tenant, "oauth2", "v2.0", "token"]);
        Ok(url)
    }

    /// A valid token for `app`: the cached one, or a new one when it is close to expiry.
    pub async fn token(&self, app: &AppRegistration) -> Result<AccessToken, GraphError> {
        let key = (app.tenant.clone(), app.client_id.clone());
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.get(&key)
            && self.clock.now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let fresh = self.fetch(app).await?;
        cache.insert(key, fresh.clone());
        Ok(fresh)
    }

    /// Forgets the cached token of `app` (after Graph answered `401`).
    pub async fn invalidate(&self, app: &AppRegistration) {
        self.cache.lock().await.remove(&(app.tenant.clone(), app.client_id.clone()));
    }

    async fn fetch(&self, app: &AppRegistration) -> Result<AccessToken, GraphError> {
        let endpoint = self.token_endpoint(&app.tenant)?;
        let now = self.clock.now();
        let mut form: Vec<(&str, String)> = vec![
            ("client_id", app.client_id.clone()),
            ("scope", GRAPH_SCOPE.to_owned()),
            ("grant_type", "client_credentials".to_owned()),
        ];
        match app.credential.as_ref() {
            Credential::Secret(secret) => form.push(("client_secret", secret.expose_secret().to_owned())),
            Credential::Certificate(cert) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ));
                form.push(("client_assertion", cert.assertion(&app.client_id, endpoint.as_str(), now)?));
            }
        }
        let what = "the token request";
        let resp = self
            .http
            .post(endpoint)
            .timeout(self.request_timeout)
            .form(&form)
            .send()
            .await
            .map_err(|e| classify::transport(what, e))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = classify::read_capped(what, resp, TOKEN_MAX_BYTES, "1 MiB for token answers").await?;
        if classify::is_transient_status(status.as_u16())
            || classify::is_html(content_type.as_deref(), &bytes)
        {
            return Err(GraphError::Transient {
                message: format!("the token endpoint answered {status}"),
                source: None,
            });
        }
        if !status.is_success() {
            let body: TokenErrorResponse = serde_json::from_slice(&bytes).unwrap_or_default();
            let reason = if body.error_description.is_empty() {
                format!("HTTP {status}")
            } else {
                body.error_description
            };
            return Err(GraphError::Unauthorized {
                tenant: app.tenant.clone(),
                reason: format!("{}: {reason}", body.error),
            });
        }
        let body: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|source| GraphError::Decode { what: "a token response", source })?;
        let lifetime = Duration::seconds(i64::try_from(body.expires_in).unwrap_or(3599));
        let margin = (lifetime / 2).min(Duration::minutes(5));
        Ok(AccessToken { token: SecretString::from(body.access_token), refresh_at: now + lifetime - margin })
    }
}
