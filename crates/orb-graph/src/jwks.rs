//! A small cache of the JWKS that signs Graph's `validationTokens` (reference §3.4), fetched over HTTP
//! from a configurable URL: Microsoft's [`orb_crypto::MICROSOFT_JWKS_URL`] in production, the emulator's
//! `/common/discovery/keys` in tests. An OpenID configuration document (with `jwks_uri`) is followed too.
//!
//! ## Invariants
//! - One fetch at a time (single flight: callers that need a fetch queue on an async gate and take the
//!   result of the one before them), and no lock on the cached keys is held while a fetch waits on the
//!   network: a caller whose keys are fresh never waits for another caller's refetch.
//! - The cache is refreshed when older than [`JwksCacheOptions::max_age`] (keys rotate about daily).
//! - An unknown `kid` triggers one refetch, and at most one per [`JwksCacheOptions::min_refetch_interval`],
//!   so forged kids cannot make ORB hammer the key endpoint.
//! - Time comes from the injected [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use orb_core::Clock;
use orb_crypto::{Jwks, ValidatedToken, ValidationTokenExpectations};
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
    /// The keys; locked only to read or replace them, never across an `.await`.
    cached: std::sync::Mutex<Cached>,
    /// The single-flight gate, held across a fetch.
    fetching: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl JwksCache {
    /// A cache of the JWKS at `url` (a JWKS or an OpenID configuration with `jwks_uri`).
    pub fn new(http: reqwest::Client, url: Url, clock: Arc<dyn Clock>, options: JwksCacheOptions) -> Self {
        Self {
            http,
            url,
            clock,
            options,
            cached: std::sync::Mutex::new(Cached::default()),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the JWKS was fetched (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Where the keys are fetched from.
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The keys when they are younger than `max_age`.
    fn fresh(&self, now: DateTime<Utc>) -> Option<Arc<Jwks>> {
        let cached = self.cached();
        match (&cached.jwks, cached.fetched_at) {
            (Some(jwks), Some(at)) if now - at < self.options.max_age => Some(jwks.clone()),
            _ => None,
        }
    }

    fn fetched_within(&self, now: DateTime<Utc>, interval: Duration) -> bool {
        self.cached().fetched_at.is_some_and(|at| now - at < interval)
    }

    /// The cached JWKS, fetched first when there is none or it is older than `max_age`.
    pub async fn current(&self) -> Result<Arc<Jwks>, GraphError> {
        if let Some(jwks) = self.fresh(self.clock.now()) {
            return Ok(jwks);
        }
        let _flight = self.fetching.lock().await;
        // Fetched by the caller before us while we waited?
        if let Some(jwks) = self.fresh(self.clock.now()) {
            return Ok(jwks);
        }
        self.fetch(self.clock.now()).await
    }

    /// Refetches after an unknown `kid` unless the last fetch is younger than `min_refetch_interval`
    /// (then `None`: the kid stays unknown). A caller that waited for another's refetch takes its result.
    async fn refetch(&self) -> Result<Option<Arc<Jwks>>, GraphError> {
        let interval = self.options.min_refetch_interval;
        let asked_at = self.clock.now();
        if self.fetched_within(asked_at, interval) {
            return Ok(None);
        }
        let _flight = self.fetching.lock().await;
        if self.fetched_within(asked_at, interval) {
            // Someone refetched while we waited: their keys are the newest there are.
            return Ok(self.cached().jwks.clone());
        }
        self.fetch(self.clock.now()).await.map(Some)
    }

    /// One fetch (the caller holds the single-flight gate); the cached keys are locked only to store.
    async fn fetch(&self, now: DateTime<Utc>) -> Result<Arc<Jwks>, GraphError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        // Counted as a fetch even if it fails, so a failing endpoint is not asked again at once.
        self.cached().fetched_at = Some(now);
        let mut document = self.get_json(self.url.clone()).await?;
        if let Some(uri) = document.get("jwks_uri").and_then(serde_json::Value::as_str) {
            let uri = Url::parse(uri)
                .map_err(|e| bad_jwks(&self.url, format!("its jwks_uri is not a URL: {e}")))?;
            document = self.get_json(uri).await?;
        }
        let bytes = serde_json::to_vec(&document).unwrap_or_default();
        let jwks = Jwks::from_json(&bytes).map_err(|e| bad_jwks(&self.url, e.to_string()))?;
        let jwks = Arc::new(jwks);
        self.cached().jwks = Some(jwks.clone());
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use axum::Router;
    use axum::routing::get;
    use tokio::sync::Semaphore;

    use super::*;

    /// A key endpoint that counts its requests and answers each only when the test releases one answer.
    async fn held_keys() -> (Url, Arc<AtomicUsize>, Arc<Semaphore>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(Semaphore::new(0));
        let (a, s) = (asked.clone(), answers.clone());
        let app = Router::new().route(
            "/keys",
            get(move || {
                let (a, s) = (a.clone(), s.clone());
                async move {
                    a.fetch_add(1, Ordering::SeqCst);
                    s.acquire().await.expect("open").forget();
                    r#"{"keys":[]}"#
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/keys", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, asked, answers)
    }

    fn cache(url: Url, clock: &orb_core::FixedClock) -> Arc<JwksCache> {
        let clock: Arc<dyn Clock> = Arc::new(clock.clone());
        Arc::new(JwksCache::new(reqwest::Client::new(), url, clock, JwksCacheOptions::default()))
    }

    #[tokio::test]
    async fn callers_that_need_keys_share_one_fetch() {
        let (url, asked, answers) = held_keys().await;
        let clock = orb_core::FixedClock::new(Utc::now());
        let cache = cache(url, &clock);
        let callers: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn({
                    let cache = cache.clone();
                    async move { cache.current().await }
                })
            })
            .collect();
        // Wait until the one fetch is asked, then answer it; every caller gets its keys.
        while asked.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        answers.add_permits(1);
        for caller in callers {
            caller.await.unwrap().unwrap();
        }
        assert_eq!((asked.load(Ordering::SeqCst), cache.fetch_count()), (1, 1), "single flight");
    }

    #[tokio::test]
    async fn a_refetch_in_flight_holds_back_nobody_whose_keys_are_fresh() {
        let (url, asked, answers) = held_keys().await;
        let clock = orb_core::FixedClock::new(Utc::now());
        let cache = cache(url, &clock);
        answers.add_permits(1);
        cache.current().await.unwrap();
        // An unknown kid, past the refetch interval: a refetch starts and its answer is held.
        clock.advance(Duration::minutes(10));
        let refetch = tokio::spawn({
            let cache = cache.clone();
            async move { cache.refetch().await }
        });
        while asked.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // The keys are still fresh (younger than a day): this returns while the refetch waits. Were the
        // keys locked across the fetch it would wait for the held answer for ever; the generous bound only
        // turns that hang into a failure.
        let fresh = tokio::time::timeout(std::time::Duration::from_secs(60), cache.current()).await;
        fresh.expect("a fresh-keyed caller waited for another caller's refetch").unwrap();
        assert!(!refetch.is_finished(), "the refetch is still waiting for its answer");
        answers.add_permits(1);
        assert!(refetch.await.unwrap().unwrap().is_some());
        assert_eq!(cache.fetch_count(), 2);
    }
}
