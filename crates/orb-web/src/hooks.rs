//! The webhook intake: what Graph and TOPdesk POST to ORB, checked cheaply and kept durably.
//!
//! Per request, in this order:
//! 1. Graph only: `?validationToken=` → `200 text/plain` with the URL-decoded token. Nothing else happens.
//! 2. The tenant named in the URL must exist (else `404`, no audit: there is no tenant to record it for).
//! 3. TOPdesk only: `Authorization: Bearer <token>`; SHA-256 of the token compared in constant time with the
//!    tenant's stored hash (else `401` + audit). The body is not read before this.
//! 4. The body is read up to the endpoint's limit (else `413` + audit) and its shape checked (else `400` +
//!    audit).
//! 5. Graph: each item is screened: its subscription must be the tenant's and SHA-256 of its `clientState`
//!    must equal the subscription's stored hash (constant time). Each accepted item is kept with its job
//!    (one transaction each); each refused item is recorded in the audit log and not kept. The POST is
//!    answered `202` even when every item was refused (Graph would otherwise retry it for hours).
//!    TOPdesk: the hints are kept as one inbox item with one job on the tenant lane, `202`.
//!
//! A store failure at any step answers `503` so the sender retries; whatever was already kept stays kept
//! (a replayed notification is harmless, design §6).
//!
//! Graph items are classified one by one: an item with a `lifecycleEvent` is kept as
//! [`InboxSource::GraphLifecycle`] with a `graph.lifecycle` job, any other as [`InboxSource::Graph`] with a
//! `graph.notification` job, whichever of the two Graph URLs it arrived on (so nothing is lost if both URLs
//! were configured the same).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

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
use orb_store::{InboxSource, Lane, NewAuditEntry, NewInboxItem, NewJob, Store, StoreError, SubscriptionRow};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::WebError;

/// Default largest Graph notification body (1 MiB; also the most orb-graph's parser reads).
pub const DEFAULT_GRAPH_BODY_LIMIT: usize = MAX_NOTIFICATION_BODY;
/// Default largest TOPdesk push body (100 hints of 64 characters fit easily).
pub const DEFAULT_TOPDESK_BODY_LIMIT: usize = 16 * 1024;
/// Most reservation hints one TOPdesk push may carry.
pub const MAX_TOPDESK_HINTS: usize = 100;
/// Longest reservation hint (an id or a number), in characters.
pub const MAX_TOPDESK_HINT_LEN: usize = 64;
/// Refused items of one Graph POST recorded one by one in the audit log; the rest are summed up in one more
/// entry, so a flood of bogus items cannot flood the audit log.
pub const MAX_AUDITED_REFUSALS_PER_POST: usize = 20;

/// Audit actor of every intake entry.
pub const AUDIT_ACTOR: &str = "webhook";
/// Audit action of every refusal.
pub const AUDIT_REFUSED: &str = "webhook.refused";
/// Job kind of a kept Graph change notification.
pub const JOB_GRAPH_NOTIFICATION: &str = "graph.notification";
/// Job kind of a kept Graph lifecycle notification.
pub const JOB_GRAPH_LIFECYCLE: &str = "graph.lifecycle";
/// Job kind of a kept TOPdesk push.
pub const JOB_TOPDESK_HINT: &str = "topdesk.hint";

/// Size limits of the intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest Graph notification body, in bytes (at most [`MAX_NOTIFICATION_BODY`]).
    pub graph_body: usize,
    /// Largest TOPdesk push body, in bytes.
    pub topdesk_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { graph_body: DEFAULT_GRAPH_BODY_LIMIT, topdesk_body: DEFAULT_TOPDESK_BODY_LIMIT }
    }
}

/// What the intake handlers share.
#[derive(Debug, Clone)]
pub struct HooksState {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

impl HooksState {
    /// Intake over `store`, reading time from `clock`, with the default [`Limits`].
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, limits: Limits::default() }
    }

    /// The same with other limits (the Graph limit is capped at [`MAX_NOTIFICATION_BODY`]).
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Limits {
            graph_body: limits.graph_body.min(MAX_NOTIFICATION_BODY),
            topdesk_body: limits.topdesk_body,
        };
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// The intake's routes. Serve them with `into_make_service_with_connect_info::<SocketAddr>()` so refusals
/// and kept items record the sender's address.
pub fn router(state: HooksState) -> Router {
    Router::new()
        .route("/hooks/graph/{tenant}", post(graph_notifications))
        .route("/hooks/graph/{tenant}/lifecycle", post(graph_lifecycle))
        .route("/hooks/topdesk/{tenant}", post(topdesk_push))
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

impl GraphUrl {
    fn label(self) -> &'static str {
        match self {
            Self::Notifications => "graph",
            Self::Lifecycle => "graph lifecycle",
        }
    }
}

async fn graph_notifications(
    State(state): State<HooksState>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    graph_intake(&state, &tenant, request, GraphUrl::Notifications)
        .await
        .unwrap_or_else(|e| e.into_response())
}

async fn graph_lifecycle(
    State(state): State<HooksState>,
    Path(tenant): Path<String>,
    request: Request,
) -> Response {
    graph_intake(&state, &tenant, request, GraphUrl::Lifecycle).await.unwrap_or_else(|e| e.into_response())
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
    let now = state.clock.now();
    let auditor = Auditor::new(state, tenant_id(state, tenant).await?, remote_ip(&request), now);
    let body =
        auditor.guard(read_body(request.into_body(), state.limits.graph_body).await, url.label()).await?;
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
    let (items, raw_items, validation_tokens) = auditor.guard(parsed, url.label()).await?;

    let mut subscriptions: HashMap<String, Option<SubscriptionRow>> = HashMap::new();
    let mut refused = 0_usize;
    for (item, raw) in items.iter().zip(raw_items) {
        let subscription = match item.subscription_id.as_deref() {
            None => None,
            Some(id) => match subscriptions.get(id) {
                Some(known) => known.clone(),
                None => {
                    let found = match state.store.get_subscription(auditor.tenant, id).await {
                        Ok(row) => Some(row),
                        Err(StoreError::NotFound { .. }) => None,
                        Err(e) => return Err(e.into()),
                    };
                    subscriptions.insert(id.to_owned(), found.clone());
                    found
                }
            },
        };
        let kind = if item.lifecycle_event.is_some() { "lifecycle notification" } else { "notification" };
        let reason = match &subscription {
            None => Some(format!("unknown subscription {}", quoted(item.subscription_id.as_deref()))),
            Some(s) if !secret_matches_hash(item.client_state.as_deref(), &s.client_state_hash) => {
                Some(format!("clientState mismatch for subscription {}", quoted(Some(&s.id))))
            }
            Some(_) => None,
        };
        match (reason, subscription) {
            (None, Some(subscription)) => {
                keep_graph_item(state, &auditor, item, raw, validation_tokens.as_deref(), &subscription)
                    .await?
            }
            (reason, _) => {
                refused += 1;
                if refused <= MAX_AUDITED_REFUSALS_PER_POST {
                    let reason = reason.unwrap_or_default();
                    auditor.record(&format!("{}: {kind} refused: {reason}", url.label())).await?;
                }
            }
        }
    }
    if refused > MAX_AUDITED_REFUSALS_PER_POST {
        let more = refused - MAX_AUDITED_REFUSALS_PER_POST;
        auditor.record(&format!("{}: {more} more items of the same POST refused", url.label())).await?;
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn keep_graph_item(
    state: &HooksState,
    auditor: &Auditor<'_>,
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
    let (source, kind) = if item.lifecycle_event.is_some() {
        (InboxSource::GraphLifecycle, JOB_GRAPH_LIFECYCLE)
    } else {
        (InboxSource::Graph, JOB_GRAPH_NOTIFICATION)
    };
    let inbox = NewInboxItem {
        tenant_id: auditor.tenant,
        source,
        received_at: auditor.now,
        remote_ip: auditor.ip.clone(),
        payload: raw,
    };
    let job = NewJob {
        lane: Lane::room(auditor.tenant, subscription.room_id),
        kind: kind.to_owned(),
        payload: json!({ "subscription_id": subscription.id }),
        correlation_id: Some(CorrelationId::generate(auditor.now)),
        run_at: None,
    };
    state.store.accept_inbox(&inbox, &job, auditor.now).await?;
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
    topdesk_intake(&state, &tenant, request).await.unwrap_or_else(|e| e.into_response())
}

async fn topdesk_intake(state: &HooksState, tenant: &str, request: Request) -> Result<Response, WebError> {
    let now = state.clock.now();
    let auditor = Auditor::new(state, tenant_id(state, tenant).await?, remote_ip(&request), now);
    let stored = state.store.push_token_hash(auditor.tenant).await?;
    let authorized = match (bearer_token(request.headers()), stored) {
        (None, _) => Err(WebError::Unauthorized { reason: "the request carries no bearer token" }),
        (Some(_), None) => {
            Err(WebError::Unauthorized { reason: "no TOPdesk push token is configured for this tenant" })
        }
        (Some(token), Some(hash)) if secret_matches_hash(Some(token), &hash) => Ok(()),
        (Some(_), Some(_)) => Err(WebError::Unauthorized { reason: "the bearer token is wrong" }),
    };
    auditor.guard(authorized, "topdesk").await?;
    let body =
        auditor.guard(read_body(request.into_body(), state.limits.topdesk_body).await, "topdesk").await?;
    let hints = serde_json::from_slice::<PushBody>(&body)
        .map_err(|_| WebError::MalformedBody {
            expected: r#"{"reservations": ["<id or number>", ...]} (JSON)"#,
        })
        .and_then(|b| check_hints(b.reservations));
    let hints = auditor.guard(hints, "topdesk").await?;
    let count = hints.len();
    let inbox = NewInboxItem {
        tenant_id: auditor.tenant,
        source: InboxSource::Topdesk,
        received_at: now,
        remote_ip: auditor.ip.clone(),
        payload: json!({ "reservations": hints }),
    };
    let job = NewJob {
        lane: Lane::tenant(auditor.tenant),
        kind: JOB_TOPDESK_HINT.to_owned(),
        payload: json!({ "hints": count }),
        correlation_id: Some(CorrelationId::generate(now)),
        run_at: None,
    };
    state.store.accept_inbox(&inbox, &job, now).await?;
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

async fn tenant_id(state: &HooksState, name: &str) -> Result<TenantId, WebError> {
    let name = TenantName::parse(name).map_err(|_| WebError::UnknownTenant)?;
    match state.store.tenant_by_name(&name).await {
        Ok(tenant) => Ok(tenant.id),
        Err(StoreError::NotFound { .. }) => Err(WebError::UnknownTenant),
        Err(e) => Err(e.into()),
    }
}

fn remote_ip(request: &Request) -> Option<String> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string())
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

/// A sender-controlled text, shortened and stripped of control characters for the audit log.
fn quoted(text: Option<&str>) -> String {
    const MAX: usize = 64;
    match text {
        None => "(none)".to_owned(),
        Some(text) => {
            let clean: String = text.chars().filter(|c| !c.is_control()).take(MAX).collect();
            let ellipsis = if text.chars().count() > MAX { "…" } else { "" };
            format!("\"{clean}{ellipsis}\"")
        }
    }
}

/// Records the refusals of one request in the audit log.
struct Auditor<'a> {
    store: &'a dyn Store,
    tenant: TenantId,
    ip: Option<String>,
    now: DateTime<Utc>,
}

impl<'a> Auditor<'a> {
    fn new(state: &'a HooksState, tenant: TenantId, ip: Option<String>, now: DateTime<Utc>) -> Self {
        Self { store: state.store.as_ref(), tenant, ip, now }
    }

    async fn record(&self, target: &str) -> Result<(), WebError> {
        tracing::warn!(tenant = %self.tenant, ip = ?self.ip, "webhook intake refused: {target}");
        let entry = NewAuditEntry {
            tenant_id: Some(self.tenant),
            at: self.now,
            actor: AUDIT_ACTOR.to_owned(),
            action: AUDIT_REFUSED.to_owned(),
            target: target.to_owned(),
            ip: self.ip.clone(),
        };
        self.store.append_audit(&entry).await?;
        Ok(())
    }

    /// Passes `result` through, recording a refusal first when it is one (store failures are not refusals:
    /// the sender retries them).
    async fn guard<T>(&self, result: Result<T, WebError>, endpoint: &str) -> Result<T, WebError> {
        match result {
            Err(e @ WebError::Store { .. }) => Err(e),
            Err(e) => {
                self.record(&format!("{endpoint}: request refused ({}): {e}", e.status().as_u16())).await?;
                Err(e)
            }
            ok => ok,
        }
    }
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

    #[test]
    fn sender_text_is_shortened_for_the_audit_log() {
        assert_eq!(quoted(None), "(none)");
        assert_eq!(quoted(Some("a\nb")), "\"ab\"");
        assert_eq!(quoted(Some(&"x".repeat(100))), format!("\"{}…\"", "x".repeat(64)));
    }
}
