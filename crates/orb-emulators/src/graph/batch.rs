//! `POST /v1.0/$batch`: Graph's JSON batching.
//!
//! The envelope needs a valid bearer token and is checked before anything runs; a malformed one is a `400`
//! in Graph's error shape and no sub-request is executed:
//! - the body is `{"requests": [...]}` with 1 to [`BATCH_MAX`] items;
//! - every `id` is non-empty and unique (case-insensitive);
//! - `method` is one of `GET`, `POST`, `PATCH`, `PUT`, `DELETE`;
//! - `url` is relative to the version root (`/users/…` or `users/…`), never absolute;
//! - a `body` comes with `headers` holding `Content-Type`;
//! - `dependsOn` names ids of the same batch, without cycles.
//!
//! Each sub-request then goes through the same axum routes as a direct request (the router is called as a
//! tower service with a synthetic request carrying the envelope's `Authorization`, `Host` and
//! `client-request-id` plus the item's own headers), so auth, tenant scoping, the per-mailbox throttle,
//! the request log and the counters apply per item. Like Graph, at most [`BATCH_PARALLELISM`] sub-requests
//! of one batch run at once, whatever their mailbox. An item runs only after everything it `dependsOn`
//! has finished; if one of those did not succeed (non-2xx), the item is answered `424 Failed Dependency`
//! without running. The answer is `200` with `{"responses": [...]}` in completion order (reversed with the
//! `batchResponsesReversed` knob, to exercise clients: Graph promises no order).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use axum::response::IntoResponse;
use axum::{Json, Router};
use orb_graph::model::{BATCH_MAX, BatchRequest, BatchRequestItem, BatchResponse, BatchResponseItem};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::GraphEmulator;
use super::api::{ApiError, begin};

/// Sub-requests of one batch that run at once (Graph: up to 4, regardless of mailbox).
pub const BATCH_PARALLELISM: usize = 4;

const METHODS: [&str; 5] = ["GET", "POST", "PATCH", "PUT", "DELETE"];

/// Headers of the envelope that every sub-request inherits.
const INHERITED: [HeaderName; 3] =
    [header::AUTHORIZATION, header::HOST, HeaderName::from_static("client-request-id")];

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

/// Checks the envelope; returns the items with upper-case methods and `/`-prefixed urls.
pub(crate) fn validate(body: &[u8]) -> Result<Vec<BatchRequestItem>, ApiError> {
    let batch: BatchRequest =
        serde_json::from_slice(body).map_err(|e| bad(format!("Invalid batch payload format: {e}")))?;
    let mut items = batch.requests;
    if items.is_empty() {
        return Err(bad("The batch contains no requests."));
    }
    if items.len() > BATCH_MAX {
        return Err(bad(format!(
            "The batch has {} requests; at most {BATCH_MAX} are allowed in one batch.",
            items.len()
        )));
    }
    let mut seen = HashSet::new();
    for item in &mut items {
        if item.id.trim().is_empty() {
            return Err(bad("Every request in a batch needs a non-empty id."));
        }
        if !seen.insert(item.id.to_ascii_lowercase()) {
            return Err(bad(format!("Request id '{}' is used more than once in the batch.", item.id)));
        }
        let method = item.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(bad(format!("Request '{}' has an unsupported method '{}'.", item.id, item.method)));
        }
        item.method = method;
        let lower = item.url.to_ascii_lowercase();
        if item.url.is_empty() || lower.contains("://") || lower.starts_with("//") {
            return Err(bad(format!(
                "Request '{}' must have a url relative to the version root (like /users/…), not '{}'.",
                item.id, item.url
            )));
        }
        if !item.url.starts_with('/') {
            item.url.insert(0, '/');
        }
        if item.url.parse::<Uri>().is_err() {
            return Err(bad(format!("Request '{}' has an invalid url '{}'.", item.id, item.url)));
        }
        if item.body.is_some() {
            let typed = item
                .headers
                .as_ref()
                .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")));
            if !typed {
                return Err(bad(format!(
                    "Request '{}' has a body but no Content-Type header; headers are required with a body.",
                    item.id
                )));
            }
        }
    }
    for item in &items {
        for dep in item.depends_on.iter().flatten() {
            if !seen.contains(&dep.to_ascii_lowercase()) {
                return Err(bad(format!(
                    "Request '{}' depends on '{dep}', which is not in the batch.",
                    item.id
                )));
            }
        }
    }
    // Kahn's algorithm: every item must become ready at some point.
    let mut done: HashSet<String> = HashSet::new();
    while done.len() < items.len() {
        let ready: Vec<String> = items
            .iter()
            .filter(|i| !done.contains(&i.id.to_ascii_lowercase()))
            .filter(|i| i.depends_on.iter().flatten().all(|d| done.contains(&d.to_ascii_lowercase())))
            .map(|i| i.id.to_ascii_lowercase())
            .collect();
        if ready.is_empty() {
            return Err(bad("The dependsOn references of the batch form a cycle."));
        }
        done.extend(ready);
    }
    Ok(items)
}

fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Runs one sub-request through `app` and turns the answer into a batch response item.
async fn dispatch(app: Router, envelope: Arc<HeaderMap>, item: BatchRequestItem) -> BatchResponseItem {
    let mut builder = Request::builder().method(item.method.as_str()).uri(format!("/v1.0{}", item.url));
    for name in INHERITED {
        if let Some(value) = envelope.get(&name) {
            builder = builder.header(name, value);
        }
    }
    for (name, value) in item.headers.iter().flatten() {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            builder = builder.header(n, v);
        }
    }
    let body = match &item.body {
        Some(json) => Body::from(serde_json::to_vec(json).unwrap_or_default()),
        None => Body::empty(),
    };
    let resp = match builder.body(body) {
        Ok(req) => match app.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        },
        Err(e) => bad(format!("Request '{}' could not be built: {e}", item.id)).into_response(),
    };
    let status = resp.status().as_u16();
    let mut headers = BTreeMap::new();
    for (name, value) in resp.headers() {
        if name == header::CONTENT_LENGTH {
            continue;
        }
        if let Ok(v) = value.to_str() {
            headers.insert(title_case(name.as_str()), v.to_owned());
        }
    }
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap_or_default();
    let body = if bytes.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    };
    BatchResponseItem { id: item.id, status, headers: (!headers.is_empty()).then_some(headers), body }
}

/// A sub-request no route matches (Graph: `400 BadRequest`, "Resource not found for the segment").
async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        400,
        "BadRequest",
        format!("Resource not found for the segment in {method} {}.", uri.path().trim_start_matches("/v1.0")),
    )
}

fn failed_dependency(item: &BatchRequestItem, dep: &str) -> BatchResponseItem {
    let body = orb_graph::model::ErrorResponse::new(
        "FailedDependency",
        format!("Request '{}' was not run because request '{dep}' it depends on failed.", item.id),
    );
    BatchResponseItem {
        id: item.id.clone(),
        status: 424,
        headers: Some(BTreeMap::from([("Content-Type".to_owned(), "application/json".to_owned())])),
        body: serde_json::to_value(body).ok(),
    }
}

/// `POST /v1.0/$batch`.
pub async fn batch(
    axum::extract::State(em): axum::extract::State<GraphEmulator>,
    headers: HeaderMap,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> Result<Json<BatchResponse>, ApiError> {
    drop(begin(&em, &headers, &method, &uri, None).await?);
    let items = validate(&body)?;
    let app = super::v1_routes().fallback(unknown_route).with_state(em.clone());
    let envelope = Arc::new(headers);
    let gate = Arc::new(Semaphore::new(BATCH_PARALLELISM));
    let mut status: HashMap<String, u16> = HashMap::new();
    let mut pending = items;
    let mut responses = Vec::new();
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|i| {
            i.depends_on.iter().flatten().all(|d| status.contains_key(&d.to_ascii_lowercase()))
        });
        pending = waiting;
        if ready.is_empty() {
            // `validate` refuses cycles; this is only a guard against looping forever.
            return Err(ApiError::new(500, "generalException", "The batch could not be ordered."));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for item in ready {
            let failed = item
                .depends_on
                .iter()
                .flatten()
                .find(|d| !(200..300).contains(&status[&d.to_ascii_lowercase()]));
            if let Some(dep) = failed {
                let answer = failed_dependency(&item, dep);
                status.insert(answer.id.to_ascii_lowercase(), answer.status);
                responses.push(answer);
                continue;
            }
            let (app, envelope, gate) = (app.clone(), envelope.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                dispatch(app, envelope, item).await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let answer = joined.map_err(|e| {
                ApiError::new(500, "generalException", format!("A batch sub-request failed: {e}"))
            })?;
            status.insert(answer.id.to_ascii_lowercase(), answer.status);
            responses.push(answer);
        }
    }
    if em.lock().knobs.batch_responses_reversed {
        responses.reverse();
    }
    Ok(Json(BatchResponse { responses }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(body: serde_json::Value, says: &str) {
        let err = validate(&serde_json::to_vec(&body).unwrap()).expect_err("refused");
        let text = format!("{err:?}");
        assert!(text.contains(says), "{text} should say {says:?}");
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let get = |id: &str| json!({"id": id, "method": "GET", "url": "/users/a@x.com/events"});
        refused(json!({"requests": (0..21).map(|i| get(&i.to_string())).collect::<Vec<_>>()}), "at most 20");
        refused(json!({"requests": []}), "no requests");
        refused(json!({"requests": [get("a"), get("A")]}), "more than once");
        refused(json!({"requests": [get("")]}), "non-empty id");
        refused(json!({"requests": [{"id": "1", "method": "TRACE", "url": "/me"}]}), "unsupported method");
        refused(
            json!({"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"}]}),
            "relative",
        );
        refused(
            json!({"requests": [{"id": "1", "method": "POST", "url": "/x", "body": {}}]}),
            "Content-Type",
        );
        refused(
            json!({"requests": [{"id": "1", "method": "GET", "url": "/x", "dependsOn": ["9"]}]}),
            "not in",
        );
        refused(
            json!({"requests": [
                {"id": "1", "method": "GET", "url": "/x", "dependsOn": ["2"]},
                {"id": "2", "method": "GET", "url": "/x", "dependsOn": ["1"]}]}),
            "cycle",
        );
        refused(json!({"requests": "nope"}), "Invalid batch payload");
    }

    #[test]
    fn good_envelopes_are_normalised() {
        let items = validate(
            &serde_json::to_vec(&json!({"requests": [
                {"id": "1", "method": "get", "url": "users/a@x.com/events"},
                {"id": "2", "method": "PATCH", "url": "/users/a@x.com/events/E", "dependsOn": ["1"],
                 "headers": {"content-type": "application/json"}, "body": {"subject": "S"}}]}))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(items[0].method, "GET");
        assert_eq!(items[0].url, "/users/a@x.com/events");
        assert_eq!(title_case("retry-after"), "Retry-After");
    }
}
