//! The webhook intake: what Graph and TOPdesk POST to ORB, checked cheaply and kept durably.
//!
//! Per request, in this order:
//! 1. Graph only: `?validationToken=` → `200 text/plain` with the URL-decoded token. Nothing else happens.
//! 2. Rate limits, per source address and then per tenant name ([`crate::ratelimit`]): over either →
//!    `429` with `Retry-After`, counted, no store access.
//! 3. The tenant named in the URL must exist.
//! 4. TOPdesk only: `Authorization: Bearer <token>`; SHA-256 of the token compared in constant time with the
//!    tenant's stored hash. The body is not read before this.
//!
//!    An unknown tenant (either endpoint), a missing or wrong token and a tenant without a push token all get
//!    the **same answer**: `404` with one fixed body ([`WebError::NoSuchHook`]), so the intake cannot be
//!    used to learn which tenants exist. Graph retries a failed delivery for at most a few hours and ORB's
//!    own subscriptions never point at an unknown tenant, so Graph does not retry this forever.
//! 5. The body is read up to the endpoint's limit (else `413`) and its shape checked (else `400`).
//! 6. Graph: each item is screened: its subscription must be the tenant's and SHA-256 of its `clientState`
//!    must equal the subscription's stored hash (constant time). Each accepted item is kept with its job
//!    (one transaction each); a refused item is counted and not kept. The POST is answered `202` even when
//!    every item was refused (Graph would otherwise retry it for hours).
//!    TOPdesk: the hints are kept as one inbox item with one job on the tenant lane, `202`.
//!
//! **Refusals are counted, not written one by one** ([`crate::refusals`]): every refused request or item
//! adds to an in-memory counter per tenant, minute and reason, and [`HooksState::flush_refusals`] (run by
//! [`run_refusal_flusher`]) writes one audit row per tenant and minute with the counts by reason. Refusals
//! that name no tenant ORB knows go to a process-wide counter, logged once per minute, with no audit row.
//!
//! A store failure at any step answers `503` so the sender retries; whatever was already kept stays kept
//! (a replayed notification is harmless, design §6). A store failure is not a refusal.
//!
//! Graph items are classified one by one: an item with a `lifecycleEvent` is kept as
//! [`InboxSource::GraphLifecycle`] with a `graph.lifecycle` job, any other as [`InboxSource::Graph`] with a
//! `graph.notification` job, whichever of the two Graph URLs it arrived on (so nothing is lost if both URLs
//! were configured the same).
//!
//! EWS push notifications (`POST /hooks/ews/{tenant}?k=`, Exchange Server on-premises) are admitted the
//! same way and answered in SOAP: see [`ews`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use orb_core::{Clock, CorrelationId, TenantId, TenantName};
use orb_graph::model::ChangeNotification;
use orb_graph::notifications::{MAX_NOTIFICATION_BODY, parse_notification_collection, validation_token};
use orb_store::jobs::{GraphLifecycleJob, GraphNotificationJob, JobPayload as _, TopdeskHintJob};
use orb_store::{InboxSource, Lane, NewAuditEntry, NewInboxItem, Store, StoreError, SubscriptionRow};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::WebError;
use crate::ratelimit::{HookLimiter, RateLimits};
use crate::refusals::{Refusal, RefusalCounter, Sources, minute_of};

pub mod ews;

/// Default largest Graph notification body (1 MiB; also the most orb-graph's parser reads).
pub const DEFAULT_GRAPH_BODY_LIMIT: usize = MAX_NOTIFICATION_BODY;
/// Default largest EWS push body (1 MiB: a `SendNotification` holds a few events of a few hundred bytes).
pub const DEFAULT_EWS_BODY_LIMIT: usize = 1024 * 1024;
/// Default largest TOPdesk push body (100 hints of 64 characters fit easily).
pub const DEFAULT_TOPDESK_BODY_LIMIT: usize = 16 * 1024;
/// Most reservation hints one TOPdesk push may carry.
pub const MAX_TOPDESK_HINTS: usize = 100;
/// Longest reservation hint (an id or a number), in characters.
pub const MAX_TOPDESK_HINT_LEN: usize = 64;
/// How often [`run_refusal_flusher`] writes the summaries of finished minutes.
pub const REFUSAL_FLUSH_EVERY: Duration = Duration::from_secs(10);

/// Audit actor of every intake entry.
pub const AUDIT_ACTOR: &str = "webhook";
/// Audit action of the per-tenant, per-minute refusal summary.
pub const AUDIT_REFUSED: &str = "webhook.refused";

/// Size limits of the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Graph notification body, in bytes (at most [`MAX_NOTIFICATION_BODY`]).
    pub graph_body: usize,
    /// Largest TOPdesk push body, in bytes.
    pub topdesk_body: usize,
    /// Largest EWS push (`SendNotification`) body, in bytes.
    pub ews_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            graph_body: DEFAULT_GRAPH_BODY_LIMIT,
            topdesk_body: DEFAULT_TOPDESK_BODY_LIMIT,
            ews_body: DEFAULT_EWS_BODY_LIMIT,
        }
    }
}

/// What the intake handlers share. Clones share the rate limiters and the refusal counters.
#[derive(Debug, Clone)]
pub struct HooksState {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    limiter: Arc<HookLimiter>,
    refusals: Arc<RefusalCounter>,
    policies: Option<Arc<dyn crate::portal::PortalBackend>>,
    trusted_proxies: orb_auth::IpAllowList,
    wake: Option<Arc<tokio::sync::Notify>>,
}

/// What one [`HooksState::flush_refusals`] wrote and logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Audit rows written (one per tenant and minute).
    pub rows: usize,
    /// Refusals naming no known tenant, logged without an audit row.
    pub unattributed: u64,
}

impl HooksState {
    /// Intake over `store`, reading time from `clock`, with the default [`Limits`] and [`RateLimits`].
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        let limiter = Arc::new(HookLimiter::new(RateLimits::default(), clock.clone()));
        Self {
            store,
            clock,
            limits: Limits::default(),
            limiter,
            refusals: Arc::default(),
            policies: None,
            trusted_proxies: orb_auth::IpAllowList::default(),
            wake: None,
        }
    }

    /// Enforces each tenant's webhook allow-list ([`crate::portal::backend::TenantPolicy::webhook_allow`]),
    /// with the sender's address taken from the socket, or from `X-Forwarded-For` when the socket peer is
    /// one of `trusted_proxies`.
    #[must_use]
    pub fn with_allow_lists(
        mut self,
        policies: Arc<dyn crate::portal::PortalBackend>,
        trusted_proxies: orb_auth::IpAllowList,
    ) -> Self {
        self.policies = Some(policies);
        self.trusted_proxies = trusted_proxies;
        self
    }

    /// Rings `wake` after each item kept, so this process's idle workers start on it at once.
    #[must_use]
    pub fn with_wakeup(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Wakes this process's idle workers (an item was kept).
    fn ring(&self) {
        if let Some(wake) = &self.wake {
            wake.notify_waiters();
        }
    }

    /// The same with other limits (the Graph limit is capped at [`MAX_NOTIFICATION_BODY`]).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Limits {
            graph_body: limits.graph_body.min(MAX_NOTIFICATION_BODY),
            topdesk_body: limits.topdesk_body,
            ews_body: limits.ews_body,
        };
        self
    }

    /// The same with other rate limits (fresh buckets).
    #[must_use]
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.limiter = Arc::new(HookLimiter::new(limits, self.clock.clone()));
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Refusals that named no tenant ORB knows, since the process started.
    pub fn unattributed_refusals(&self) -> u64 {
        self.refusals.unattributed_total()
    }

    /// Writes one audit row per tenant and minute for the counted refusals of finished minutes (`all`:
    /// of the current minute too, e.g. at shutdown) and logs the refusals that named no known tenant.
    /// A row that cannot be written is kept in memory and tried again at the next flush.
    pub async fn flush_refusals(&self, all: bool) -> Result<FlushReport, StoreError> {
        let before = (!all).then(|| minute_of(self.clock.now()));
        let taken = self.refusals.take(before);
        let mut report = FlushReport::default();
        for (minute, n) in taken.unattributed {
            report.unattributed += n;
            tracing::warn!(
                refusals = n,
                since_start = self.refusals.unattributed_total(),
                "webhook intake: {n} request(s) for unknown tenants refused in the minute from {minute}"
            );
        }
        let mut failed = None;
        for ((minute, name), summary) in taken.tenants {
            if failed.is_some() {
                self.refusals.put_back(minute, name, summary);
                continue;
            }
            let tenant = match self.store.tenant_by_name(&name).await {
                Ok(tenant) => tenant,
                Err(StoreError::NotFound { .. }) => {
                    // Rate-limited requests are counted before the tenant is looked up.
                    let n = summary.total();
                    self.refusals.unattribute(minute, n);
                    report.unattributed += n;
                    tracing::warn!(
                        refusals = n,
                        "webhook intake: {n} request(s) for unknown tenants refused in the minute from {minute}"
                    );
                    continue;
                }
                Err(e) => {
                    self.refusals.put_back(minute, name, summary);
                    failed = Some(e);
                    continue;
                }
            };
            let target = summary.to_json();
            let entry = NewAuditEntry {
                tenant_id: Some(tenant.id),
                at: minute,
                actor: AUDIT_ACTOR.to_owned(),
                action: AUDIT_REFUSED.to_owned(),
                target: target.clone(),
                ip: match summary.sources {
                    Sources::One(ip) => Some(ip.to_string()),
                    Sources::Unknown | Sources::Many => None,
                },
            };
            match self.store.append_audit(&entry).await {
                Ok(_) => {
                    report.rows += 1;
                    tracing::info!(
                        tenant = %name,
                        "webhook intake refused {} request(s) or item(s) in the minute from {minute}: {target}",
                        summary.total()
                    );
                }
                Err(e) => {
                    self.refusals.put_back(minute, name, summary);
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    fn count(&self, tenant: Option<&TenantName>, reason: Refusal, address: Option<IpAddr>, n: u64) {
        tracing::debug!(tenant = ?tenant.map(TenantName::as_str), ?address, reason = reason.as_str(), n, "webhook intake refused");
        self.refusals.count(self.clock.now(), tenant, reason, address, n);
        metrics::counter!("orb_notifications_refused_total", "reason" => reason.as_str()).increment(n);
    }
}

/// Flushes the refusal summaries of finished minutes every `every` and forgets idle rate-limit buckets,
/// until `stop` is cancelled. Flush once more with `flush_refusals(true)` after the listener has stopped.
pub async fn run_refusal_flusher(state: HooksState, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(e) = state.flush_refusals(false).await {
            tracing::warn!(error = %e, "webhook intake: writing the refusal summaries failed; trying again later");
        }
        state.limiter.forget_idle();
    }
}

/// The intake's routes. Serve them with [`crate::listener::serve_public`] (or with
/// `into_make_service_with_connect_info::<SocketAddr>()`) so the rate limits and kept items see the
/// sender's address.
pub fn router(state: HooksState) -> Router {
    Router::new()
        .route("/hooks/graph/{tenant}", post(graph_notifications))
        .route("/hooks/graph/{tenant}/lifecycle", post(graph_lifecycle))
        .route("/hooks/topdesk/{tenant}", post(topdesk_push))
        .route("/hooks/ews/{tenant}", post(ews::ews_push))
        .with_state(state)
}

/// Whether SHA-256 of `received` equals `stored_hash`, compared in constant time. A missing value never
/// matches.
pub fn secret_matches_hash(received: Option<&str>, stored_hash: &[u8]) -> bool {
    received
        .is_some_and(|r| verify_slices_are_equal(digest(&SHA256, r.as_bytes()).as_ref(), stored_hash).is_ok())
}

// ---- Graph ----

#[derive(Debug, Clone, Copy)]
enum GraphUrl {
    Notifications,
    Lifecycle,
}

async fn graph_notifications(
    State(state): State<HooksState>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let answer = graph_intake(&state, &tenant, request, GraphUrl::Notifications)
        .await
        .unwrap_or_else(|e| e.into_response());
    observe_intake(started);
    answer
}

async fn graph_lifecycle(
    State(state): State<HooksState>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let answer = graph_intake(&state, &tenant, request, GraphUrl::Lifecycle)
        .await
        .unwrap_or_else(|e| e.into_response());
    observe_intake(started);
    answer
}

async fn graph_intake(
    state: &HooksState,
    tenant: &str,
    request: Request,
    url: GraphUrl,
) -> Result<Response, WebError> {
    if let Some(token) = validation_token(request.uri().query()) {
        return Ok(handshake(token));
    }
    let intake = Intake::admit(state, tenant, remote_ip(state, &request)).await?;
    let body = intake.guard(read_body(request.into_body(), state.limits.graph_body).await)?;
    let parsed = parse_notification_collection(&body)
        .ok()
        .zip(serde_json::from_slice::<Value>(&body).ok())
        .and_then(|(typed, raw)| match raw {
            Value::Object(mut top) => match top.remove("value") {
                Some(Value::Array(items)) if items.len() == typed.value.len() => {
                    Some((typed.value, items, typed.validation_tokens))
                }
                _ => None,
            },
            _ => None,
        })
        .ok_or(WebError::MalformedBody { expected: "a changeNotificationCollection (JSON)" });
    let (items, raw_items, validation_tokens) = intake.guard(parsed)?;

    let mut subscriptions: HashMap<String, Option<SubscriptionRow>> = HashMap::new();
    let (mut unknown, mut mismatched) = (0_u64, 0_u64);
    for (item, raw) in items.iter().zip(raw_items) {
        let subscription = match item.subscription_id.as_deref() {
            None => None,
            Some(id) => match subscriptions.get(id) {
                Some(known) => known.clone(),
                None => {
                    let found = match state.store.get_subscription(intake.tenant, id).await {
                        Ok(row) => Some(row),
                        Err(StoreError::NotFound { .. }) => None,
                        Err(e) => return Err(e.into()),
                    };
                    subscriptions.insert(id.to_owned(), found.clone());
                    found
                }
            },
        };
        match subscription {
            None => unknown += 1,
            Some(s) if !secret_matches_hash(item.client_state.as_deref(), &s.client_state_hash) => {
                mismatched += 1
            }
            Some(subscription) => {
                keep_graph_item(state, &intake, item, raw, validation_tokens.as_deref(), &subscription)
                    .await?
            }
        }
    }
    for (reason, n) in [(Refusal::UnknownSubscription, unknown), (Refusal::BadClientState, mismatched)] {
        if n > 0 {
            state.count(Some(&intake.name), reason, intake.address, n);
        }
    }
    if unknown + mismatched > 0 {
        let kind = match url {
            GraphUrl::Notifications => "graph",
            GraphUrl::Lifecycle => "graph lifecycle",
        };
        tracing::debug!(tenant = %intake.name, unknown, mismatched, "{kind}: items refused");
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn keep_graph_item(
    state: &HooksState,
    intake: &Intake<'_>,
    item: &ChangeNotification,
    mut raw: Value,
    validation_tokens: Option<&[String]>,
    subscription: &SubscriptionRow,
) -> Result<(), WebError> {
    // The clear clientState is never stored (the store keeps only its hash), and the worker does not need it.
    // Graph signs a POST's items with the POST's `validationTokens`; each kept item carries them, so the
    // worker can check the tokens of exactly the items it processes.
    if let Value::Object(fields) = &mut raw {
        fields.remove("clientState");
        if let Some(tokens) = validation_tokens {
            fields.insert("validationTokens".to_owned(), Value::from(tokens.to_vec()));
        }
    }
    let lane = Lane::room(intake.tenant, subscription.room_id);
    let correlation = Some(CorrelationId::generate(intake.now));
    // The store adds the inbox item's id to the job's payload.
    let (source, job) = if item.lifecycle_event.is_some() {
        let payload = GraphLifecycleJob { subscription_id: Some(subscription.id.clone()), inbox_id: None };
        (InboxSource::GraphLifecycle, payload.to_job(lane, correlation, None))
    } else {
        let payload = GraphNotificationJob { subscription_id: subscription.id.clone(), inbox_id: None };
        (InboxSource::Graph, payload.to_job(lane, correlation, None))
    };
    let inbox = NewInboxItem {
        tenant_id: intake.tenant,
        source,
        received_at: intake.now,
        remote_ip: intake.address.map(|a| a.to_string()),
        payload: raw,
    };
    state.store.accept_inbox(&inbox, &job, intake.now).await?;
    state.ring();
    metrics::counter!("orb_notifications_received_total", "source" => source.as_str()).increment(1);
    Ok(())
}

fn handshake(token: String) -> Response {
    let mut response = (StatusCode::OK, token).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

// ---- TOPdesk ----

/// What a TOPdesk action sequence POSTs: the reservations that changed, by id or number.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    reservations: Vec<String>,
}

async fn topdesk_push(
    State(state): State<HooksState>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let answer = topdesk_intake(&state, &tenant, request).await.unwrap_or_else(|e| e.into_response());
    observe_intake(started);
    answer
}

async fn topdesk_intake(state: &HooksState, tenant: &str, request: Request) -> Result<Response, WebError> {
    let intake = Intake::admit(state, tenant, remote_ip(state, &request)).await?;
    let stored = state.store.push_token_hash(intake.tenant).await?;
    let refusal = match (bearer_token(request.headers()), stored) {
        (None, _) => Some(Refusal::MissingToken),
        (Some(_), None) => Some(Refusal::NoPushToken),
        (Some(token), Some(hash)) if secret_matches_hash(Some(token), &hash) => None,
        (Some(_), Some(_)) => Some(Refusal::BadToken),
    };
    if let Some(refusal) = refusal {
        state.count(Some(&intake.name), refusal, intake.address, 1);
        return Err(WebError::NoSuchHook);
    }
    let body = intake.guard(read_body(request.into_body(), state.limits.topdesk_body).await)?;
    let hints = serde_json::from_slice::<PushBody>(&body)
        .map_err(|_| WebError::MalformedBody {
            expected: r#"{"reservations": ["<id or number>", ...]} (JSON)"#,
        })
        .and_then(|b| check_hints(b.reservations));
    let hints = intake.guard(hints)?;
    let count = hints.len();
    let now = intake.now;
    let inbox = NewInboxItem {
        tenant_id: intake.tenant,
        source: InboxSource::Topdesk,
        received_at: now,
        remote_ip: intake.address.map(|a| a.to_string()),
        payload: json!({ "reservations": hints }),
    };
    let job = TopdeskHintJob { hints: count, inbox_id: None }.to_job(
        Lane::tenant(intake.tenant),
        Some(CorrelationId::generate(now)),
        None,
    );
    state.store.accept_inbox(&inbox, &job, now).await?;
    state.ring();
    metrics::counter!("orb_notifications_received_total", "source" => InboxSource::Topdesk.as_str())
        .increment(1);
    Ok(StatusCode::ACCEPTED.into_response())
}

fn check_hints(hints: Vec<String>) -> Result<Vec<String>, WebError> {
    let invalid = |reason: String| WebError::InvalidHints { reason };
    if hints.is_empty() || hints.len() > MAX_TOPDESK_HINTS {
        return Err(invalid(format!("{} hints", hints.len())));
    }
    let hints: Vec<String> = hints.into_iter().map(|h| h.trim().to_owned()).collect();
    for (i, hint) in hints.iter().enumerate() {
        let len = hint.chars().count();
        if len == 0 || len > MAX_TOPDESK_HINT_LEN || hint.chars().any(char::is_control) {
            return Err(invalid(format!("hint {} is empty, too long or has control characters", i + 1)));
        }
    }
    Ok(hints)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), if any.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

// ---- shared ----

/// A request past the rate limits, for a tenant that exists.
struct Intake<'a> {
    state: &'a HooksState,
    name: TenantName,
    tenant: TenantId,
    address: Option<IpAddr>,
    now: DateTime<Utc>,
}

impl<'a> Intake<'a> {
    /// Checks the rate limits (no store access) and then that the tenant exists. Refusals are counted.
    async fn admit(state: &'a HooksState, tenant: &str, address: Option<IpAddr>) -> Result<Self, WebError> {
        let now = state.clock.now();
        let name = TenantName::parse(tenant).ok();
        if let Err(wait) = state.limiter.check(address, name.as_ref()) {
            state.count(name.as_ref(), Refusal::RateLimited, address, 1);
            let retry_after_secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
            return Err(WebError::RateLimited { retry_after_secs });
        }
        let Some(name) = name else {
            state.count(None, Refusal::UnknownTenant, address, 1);
            return Err(WebError::NoSuchHook);
        };
        let tenant = match state.store.tenant_by_name(&name).await {
            Ok(tenant) => tenant.id,
            Err(StoreError::NotFound { .. }) => {
                state.count(None, Refusal::UnknownTenant, address, 1);
                return Err(WebError::NoSuchHook);
            }
            Err(e) => return Err(e.into()),
        };
        if let (Some(policies), Some(ip)) = (&state.policies, address) {
            let allowed = match policies.policy(tenant).await {
                Ok(policy) => policy.webhook_allow.allows(ip),
                Err(e) => {
                    // The policy cannot be read: refuse nothing on its account (the sender would lose
                    // changes), but say so.
                    tracing::warn!(tenant = %name, error = %e, "webhook allow-list unreadable; admitting");
                    true
                }
            };
            if !allowed {
                state.count(Some(&name), Refusal::AddressNotAllowed, address, 1);
                return Err(WebError::AddressRefused);
            }
        }
        Ok(Self { state, name, tenant, address, now })
    }

    /// Passes `result` through, counting a refusal when it is one (store failures are not refusals: the
    /// sender retries them).
    fn guard<T>(&self, result: Result<T, WebError>) -> Result<T, WebError> {
        if let Err(e) = &result
            && let Some(reason) = e.refusal()
        {
            self.state.count(Some(&self.name), reason, self.address, 1);
        }
        result
    }
}

/// Records `orb_intake_seconds` (request → answer). A duration of this process, not a date: the monotonic
/// clock, not the injected one.
fn observe_intake(started: Instant) {
    metrics::histogram!("orb_intake_seconds").record(started.elapsed().as_secs_f64());
}

/// The sender's address: the socket's, or `X-Forwarded-For`'s when the socket peer is a trusted proxy.
fn remote_ip(state: &HooksState, request: &Request) -> Option<IpAddr> {
    let socket = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())?;
    let forwarded = request.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    Some(orb_auth::client_ip(socket, forwarded, &state.trusted_proxies))
}

/// Reads at most `limit` bytes of `body`; stops reading as soon as it has more.
async fn read_body(mut body: Body, limit: usize) -> Result<Vec<u8>, WebError> {
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(|_| WebError::BodyUnreadable)?.into_data() else { continue };
        if bytes.len() + data.len() > limit {
            return Err(WebError::BodyTooLarge { limit });
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_compared_by_hash() {
        let hash = digest(&SHA256, b"s3cret").as_ref().to_vec();
        assert!(secret_matches_hash(Some("s3cret"), &hash));
        assert!(!secret_matches_hash(Some("s3cret "), &hash));
        assert!(!secret_matches_hash(None, &hash));
        assert!(!secret_matches_hash(Some("s3cret"), &hash[..31]));
    }

    #[test]
    fn bearer_tokens_and_hints_are_checked() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);

        assert_eq!(check_hints(vec![" R1 ".into()]).unwrap(), vec!["R1".to_owned()]);
        assert!(check_hints(vec![]).is_err());
        assert!(check_hints(vec!["x".repeat(65)]).is_err());
        assert!(check_hints(vec!["x".repeat(64)]).is_ok());
        assert!(check_hints(vec!["a\nb".into()]).is_err());
        assert!(check_hints(vec!["r".into(); 101]).is_err());
    }
}
