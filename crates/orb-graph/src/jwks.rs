//! A small cache of the JWKS that signs Graph's `validationTokens` (reference §3.4), fetched over HTTP
//! from a configurable URL: Microsoft's [`orb_crypto::MICROSOFT_JWKS_URL`] in production, the emulator's
//! `/common/discovery/keys` in tests. An OpenID configuration document (with `jwks_uri`) is followed too.
//!
//! ## Invariants
//! - One fetch at a time (the cache's async mutex is held across the fetch); every caller shares the
//!   result.
//! - The cache is refreshed when older than [`JwksCacheOptions::max_age`] (keys rotate about daily).
//! - An unknown `kid` triggers one refetch, and at most one per [`JwksCacheOptions::min_refetch_interval`],
//!   so forged kids cannot make ORB hammer the key endpoint.
//! - Time comes from the injected [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use orb_core::Clock;
use orb_crypto::{Jwks, ValidatedToken, ValidationTokenExpectations};
use tokio::sync::Mutex;
use url::Url;

use crate::GraphError;
use crate::classify;
use crate::model::ChangeNotificationCollection;
use crate::notifications::check_validation_tokens;

/// Refresh and refetch timing.
#[derive(Debug, Clone, Copy)]
pub struct JwksCacheOptions {
    /// Refetch a JWKS older than this before using it.
    pub max_age: Duration,
    /// Refetch after an unknown `kid` only if the last fetch is at least this old.
    pub min_refetch_interval: Duration,
    /// Timeout of one fetch (whatever the HTTP client's own is).
    pub request_timeout: std::time::Duration,
    /// The largest JWKS (or OpenID configuration) document read (default 1 MiB); a larger one is a
    /// permanent error naming the cap.
    pub max_response_bytes: u64,
}

impl Default for JwksCacheOptions {
    fn default() -> Self {
        Self {
            max_age: Duration::hours(24),
            min_refetch_interval: Duration::minutes(5),
            request_timeout: std::time::Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct Cached {
    jwks: Option<Arc<Jwks>>,
    fetched_at: Option<DateTime<Utc>>,
}

/// The JWKS cache, shared by all tenants of a process.
#[derive(Debug)]
pub struct JwksCache {
    http: reqwest::Client,
    url: Url,
    clock: Arc<dyn Clock>,
    options: JwksCacheOptions,
    cached: Mutex<Cached>,
    fetches: AtomicU64,
}

impl JwksCache {
    /// A cache of the JWKS at `url` (a JWKS or an OpenID configuration with `jwks_uri`).
    pub fn new(http: reqwest::Client, url: Url, clock: Arc<dyn Clock>, options: JwksCacheOptions) -> Self {
        Self { http, url, clock, options, cached: Mutex::new(Cached::default()), fetches: AtomicU64::new(0) }
    }

    /// How many times the JWKS was fetched (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Where the keys are fetched from.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The cached JWKS, fetched first when there is none or it is older than `max_age`.
    pub async fn current(&self) -> Result<Arc<Jwks>, GraphError> {
        let now = self.clock.now();
        let mut cached = self.cached.lock().await;
        if let (Some(jwks), Some(at)) = (&cached.jwks, cached.fetched_at)
            && now - at < self.options.max_age
        {
            return Ok(jwks.clone());
        }
        self.fetch_into(&mut cached, now).await
    }

    /// Refetches after an unknown `kid` unless the last fetch is younger than `min_refetch_interval`
    /// (then `None`: the kid stays unknown).
    async fn refetch(&self) -> Result<Option<Arc<Jwks>>, GraphError> {
        let now = self.clock.now();
        let mut cached = self.cached.lock().await;
        if cached.fetched_at.is_some_and(|at| now - at < self.options.min_refetch_interval) {
            return Ok(None);
        }
        self.fetch_into(&mut cached, now).await.map(Some)
    }

    async fn fetch_into(&self, cached: &mut Cached, now: DateTime<Utc>) -> Result<Arc<Jwks>, GraphError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        // Counted as a fetch even if it fails, so a failing endpoint is not asked again at once.
        cached.fetched_at = Some(now);
        let mut document = self.get_json(self.url.clone()).await?;
        if let Some(uri) = document.get("jwks_uri").and_then(serde_json::Value::as_str) {
            let uri = Url::parse(uri)
                .map_err(|e| bad_jwks(&self.url, format!("its jwks_uri is not a URL: {e}")))?;
            document = self.get_json(uri).await?;
        }
        let bytes = serde_json::to_vec(&document).unwrap_or_default();
        let jwks = Jwks::from_json(&bytes).map_err(|e| bad_jwks(&self.url, e.to_string()))?;
        let jwks = Arc::new(jwks);
        cached.jwks = Some(jwks.clone());
        Ok(jwks)
    }

    async fn get_json(&self, url: Url) -> Result<serde_json::Value, GraphError> {
        let what = format!("fetching the JWKS from {url}");
        let resp = self
            .http
            .get(url.clone())
            .timeout(self.options.request_timeout)
            .send()
            .await
            .map_err(|e| classify::transport(&what, e))?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let cap = self.options.max_response_bytes;
        let bytes = classify::read_capped(&what, resp, cap, "JwksCacheOptions::max_response_bytes").await?;
        if classify::is_transient_status(status.as_u16())
            || classify::is_html(content_type.as_deref(), &bytes)
        {
            return Err(GraphError::Transient {
                message: format!("the JWKS endpoint {url} answered {status}"),
                source: None,
            });
        }
        if !status.is_success() {
            return Err(bad_jwks(&url, format!("it answered {status}")));
        }
        serde_json::from_slice(&bytes).map_err(|e| bad_jwks(&url, format!("it is not JSON ({e})")))
    }

    /// [`check_validation_tokens`] with the cached JWKS; on an unknown signing key the JWKS is refetched
    /// once (rate-limited) and the tokens checked again. A key that stays unknown refuses the POST.
    pub async fn check_validation_tokens(
        &self,
        collection: &ChangeNotificationCollection,
        expected: &ValidationTokenExpectations,
    ) -> Result<Vec<ValidatedToken>, GraphError> {
        if !crate::notifications::needs_validation_tokens(collection) {
            return check_validation_tokens(collection, &Jwks { keys: vec![] }, expected, self.clock.now());
        }
        let jwks = self.current().await?;
        match check_validation_tokens(collection, &jwks, expected, self.clock.now()) {
            Err(GraphError::UnknownSigningKey { kid }) => {
                let still_unknown = || GraphError::NotificationRefused {
                    reason: format!(
                        "a validationToken is signed with key {kid:?}, which Microsoft does not publish"
                    ),
                    source: None,
                };
                let Some(fresh) = self.refetch().await? else { return Err(still_unknown()) };
                match check_validation_tokens(collection, &fresh, expected, self.clock.now()) {
                    Err(GraphError::UnknownSigningKey { .. }) => Err(still_unknown()),
                    other => other,
                }
            }
            other => other,
        }
    }
}

fn bad_jwks(url: &Url, why: String) -> GraphError {
    GraphError::Permanent {
        status: 200,
        code: "invalidJwks".to_owned(),
        message: format!("{url} does not serve a usable JWKS: {why}; check the configured JWKS URL"),
    }
}
