//! JSON batching (`POST /v1.0/$batch`) for bulk work: [`GraphClient::batch`] and
//! [`GraphClient::get_events_batch`].
//!
//! ## Behaviour
//! - Any number of [`BatchCall`]s is split into batches of at most [`BATCH_MAX`] (20); up to
//!   [`BATCHES_IN_FLIGHT`] batches of one call are in flight at once. Results come back in the caller's
//!   order, whatever order Graph answers in (the sub-request `id` is the caller's index).
//! - Each item's answer is mapped to the same [`GraphError`] a direct request would give (one mapping,
//!   the crate's `classify`). Items answered `429` or `503` are re-sent, alone, in a new batch after the
//!   longest `Retry-After` among them (exponential back-off without one); other transient items (408, 425,
//!   5xx, HTML) are re-sent only when idempotent. Retries are bounded by [`ClientOptions::max_attempts`](crate::ClientOptions) and
//!   `max_retry_after`; an item still throttled then fails with [`GraphError::Throttled`].
//! - Every sub-request carries the client's `Prefer` header (Graph does not document whether the
//!   envelope's headers reach sub-requests, so ORB does not rely on it); the envelope carries
//!   `client-request-id` and the token.
//! - An envelope-level failure (token refused, `400` malformed batch, network error or 5xx after retries)
//!   fails the whole call: earlier batches of the call may already have been applied, so batched writes
//!   should be idempotent (creates carry `transactionId`).
//!
//! ## Per-mailbox concurrency
//! Graph runs up to [`GRAPH_BATCH_PARALLELISM`] (4) sub-requests of one batch in parallel, whatever their
//! mailbox, and they count against each mailbox's limit of 4 concurrent requests. So while a batch is in
//! flight it holds, for every mailbox it touches, `min(items for that mailbox, 4, per_mailbox_concurrency)`
//! permits of that mailbox's semaphore (the same semaphore direct calls use), taken in address order so
//! that concurrent batches cannot deadlock. When `per_mailbox_concurrency` is below 4, a batch carries at
//! most that many items per mailbox. Together, ORB never has more requests running at one mailbox than
//! the cap, however direct calls and batches mix. Each item also spends one unit of the mailbox's budget
//! per attempt. The mailbox of a call is read from a `/users/{address}/…` URL or set with
//! [`BatchCall::for_mailbox`].

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use orb_core::{CorrelationId, EmailAddress};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use url::Url;

use crate::classify;
use crate::client::{Reply, transient};
use crate::model::{BATCH_MAX, BatchRequest, BatchRequestItem, BatchResponse, Event};
use crate::{GraphClient, GraphError};

/// How many sub-requests of one batch Graph runs in parallel (regardless of mailbox).
pub const GRAPH_BATCH_PARALLELISM: usize = 4;

/// How many batches one [`GraphClient::batch`] call keeps in flight at once.
pub const BATCHES_IN_FLIGHT: usize = 4;

/// One request to send inside a `$batch`.
#[derive(Debug, Clone)]
pub struct BatchCall {
    method: Method,
    /// Only path and query are used (relative to the version root).
    url: Url,
    mailbox: Option<EmailAddress>,
    body: Option<Value>,
    idempotent: bool,
}

impl BatchCall {
    /// A call to `/{segments…}` below the version root (segments are percent-encoded). A
    /// `users/{address}/…` call counts against that mailbox.
    pub fn new(method: Method, segments: &[&str]) -> Self {
        let mut url = Url::parse("https://graph.invalid/").expect("constant URL");
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        let mailbox = match segments {
            [users, address, ..] if users.eq_ignore_ascii_case("users") => EmailAddress::parse(address).ok(),
            _ => None,
        };
        let idempotent = method != Method::POST;
        Self { method, url, mailbox, body: None, idempotent }
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(name, value);
        self
    }

    /// Sets a JSON body (sent with `Content-Type: application/json`).
    pub fn json<B: Serialize>(mut self, body: &B) -> Result<Self, GraphError> {
        self.body = Some(
            serde_json::to_value(body)
                .map_err(|source| GraphError::Decode { what: "a request body", source })?,
        );
        Ok(self)
    }

    /// Names the mailbox the call counts against (when the URL does not name it by address).
    pub fn for_mailbox(mut self, mailbox: EmailAddress) -> Self {
        self.mailbox = Some(mailbox);
        self
    }

    /// Whether sending it twice is harmless (default: all but `POST`); only idempotent items are re-sent
    /// after a `5xx` other than `503`.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL relative to the version root, as sent (`/users/…?…`).
    pub fn relative_url(&self) -> &str {
        &self.url[url::Position::BeforePath..]
    }

    /// The mailbox it counts against.
    pub fn mailbox(&self) -> Option<&EmailAddress> {
        self.mailbox.as_ref()
    }
}

/// A successful (2xx) sub-response.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchReply {
    /// HTTP status.
    pub status: u16,
    /// Headers as Graph sent them (look them up with [`BatchReply::header`]: the case varies).
    pub headers: BTreeMap<String, String>,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl BatchReply {
    /// A header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body read as `T` (`what` names it in the error).
    pub fn json<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, GraphError> {
        serde_json::from_value(self.body.clone().unwrap_or(Value::Null))
            .map_err(|source| GraphError::Decode { what, source })
    }
}

/// The outcome of one [`BatchCall`]: its reply, or the error a direct request would have failed with.
pub type BatchItemResult = Result<BatchReply, GraphError>;

fn header<'a>(headers: Option<&'a BTreeMap<String, String>>, name: &str) -> Option<&'a str> {
    headers?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

impl GraphClient {
    /// Sends `calls` as `$batch` requests (≤ 20 each) and returns one result per call, in order. See the
    /// module docs for retries and the per-mailbox cap. `Err` only when a whole batch failed.
    pub async fn batch(
        &self,
        calls: Vec<BatchCall>,
        corr: CorrelationId,
    ) -> Result<Vec<BatchItemResult>, GraphError> {
        let n = calls.len();
        let chunks = self.chunks(calls);
        let mut results: Vec<Option<BatchItemResult>> = (0..n).map(|_| None).collect();
        let mut runs = futures::stream::iter(chunks.into_iter().map(|chunk| self.run_chunk(chunk, corr)))
            .buffer_unordered(BATCHES_IN_FLIGHT);
        let mut failure = None;
        while let Some(run) = runs.next().await {
            match run {
                Ok(done) => done.into_iter().for_each(|(i, r)| results[i] = Some(r)),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(transient("the batch item got no result", None))))
            .collect())
    }

    /// Reads several events of one mailbox (match property expanded) in batches; one result per id, in
    /// order (a missing event is [`GraphError::NotFound`]).
    pub async fn get_events_batch(
        &self,
        mailbox: &EmailAddress,
        ids: &[&str],
        corr: CorrelationId,
    ) -> Result<Vec<Result<Event, GraphError>>, GraphError> {
        let calls = ids
            .iter()
            .map(|id| {
                let mut call = BatchCall::new(Method::GET, &["users", mailbox.as_str(), "events", id])
                    .for_mailbox(mailbox.clone());
                self.expand_match(&mut call.url);
                call
            })
            .collect();
        let replies = self.batch(calls, corr).await?;
        Ok(replies.into_iter().map(|r| r.and_then(|reply| reply.json("an event"))).collect())
    }

    /// Splits calls (with their indices) into batches of ≤ 20, and of ≤ the per-mailbox cap per mailbox
    /// when that cap is below Graph's batch parallelism.
    fn chunks(&self, calls: Vec<BatchCall>) -> Vec<Vec<(usize, BatchCall)>> {
        let cap = self.options.per_mailbox_concurrency.max(1);
        let per_mailbox = if cap >= GRAPH_BATCH_PARALLELISM { usize::MAX } else { cap };
        let mut chunks = Vec::new();
        let mut chunk: Vec<(usize, BatchCall)> = Vec::new();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (i, call) in calls.into_iter().enumerate() {
            let key = call.mailbox.as_ref().map(|m| m.as_str().to_owned());
            let over = key.as_ref().is_some_and(|k| counts.get(k).copied().unwrap_or(0) >= per_mailbox);
            if chunk.len() >= BATCH_MAX || over {
                chunks.push(std::mem::take(&mut chunk));
                counts.clear();
            }
            if let Some(k) = key {
                *counts.entry(k).or_default() += 1;
            }
            chunk.push((i, call));
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        chunks
    }

    /// The mailbox permits a batch of `items` needs, taken in address order.
    async fn batch_permits(
        &self,
        items: &[(usize, BatchCall)],
    ) -> Result<Vec<OwnedSemaphorePermit>, GraphError> {
        let mut per_mailbox: BTreeMap<&str, (&EmailAddress, usize)> = BTreeMap::new();
        for mb in items.iter().filter_map(|(_, c)| c.mailbox.as_ref()) {
            per_mailbox.entry(mb.as_str()).or_insert((mb, 0)).1 += 1;
        }
        let cap = self.options.per_mailbox_concurrency.max(1);
        let mut permits = Vec::with_capacity(per_mailbox.len());
        for (mb, count) in per_mailbox.into_values() {
            let want = count.min(cap).min(GRAPH_BATCH_PARALLELISM);
            let want = u32::try_from(want).unwrap_or(1);
            let slot = self.slot(mb);
            permits.push(
                slot.acquire_many_owned(want).await.map_err(|_| transient("mailbox slot closed", None))?,
            );
        }
        Ok(permits)
    }

    /// Sends one batch's items, re-sending the throttled ones, until each has a result.
    async fn run_chunk(
        &self,
        mut todo: Vec<(usize, BatchCall)>,
        corr: CorrelationId,
    ) -> Result<Vec<(usize, BatchItemResult)>, GraphError> {
        let mut done = Vec::with_capacity(todo.len());
        let url = self.url(&["$batch"]);
        let prefer = self.prefer(false);
        let mut refreshed = false;
        let mut attempt = 0u32;
        while !todo.is_empty() {
            attempt += 1;
            let last = attempt >= self.options.max_attempts;
            let mut sendable = Vec::with_capacity(todo.len());
            for (i, call) in todo.drain(..) {
                match call.mailbox.as_ref().map(|mb| self.spend_budget(mb)).transpose() {
                    Ok(_) => sendable.push((i, call)),
                    Err(e) => done.push((i, Err(e))),
                }
            }
            todo = sendable;
            if todo.is_empty() {
                break;
            }
            let requests = todo
                .iter()
                .map(|(i, call)| {
                    let mut headers = BTreeMap::new();
                    if let Some(prefer) = &prefer {
                        headers.insert("Prefer".to_owned(), prefer.clone());
                    }
                    if call.body.is_some() {
                        headers.insert("Content-Type".to_owned(), "application/json".to_owned());
                    }
                    BatchRequestItem {
                        id: i.to_string(),
                        method: call.method.to_string(),
                        url: call.relative_url().to_owned(),
                        headers: (!headers.is_empty()).then_some(headers),
                        body: call.body.clone(),
                        depends_on: None,
                    }
                })
                .collect();
            let envelope = BatchRequest { requests };
            let all_idempotent = todo.iter().all(|(_, c)| c.idempotent);
            let permits = self.batch_permits(&todo).await?;
            let token = self.tokens.token(&self.app).await?;
            let what = || format!("POST {}", url.path());
            let request = self
                .http
                .post(url.clone())
                .timeout(self.options.request_timeout)
                .bearer_auth(token.secret())
                .header("client-request-id", corr.to_string())
                .json(&envelope);
            let read = async {
                let resp = request.send().await.map_err(|e| classify::transport(&what(), e))?;
                let (status, headers) = (resp.status(), resp.headers().clone());
                let cap = self.options.max_response_bytes;
                let body =
                    classify::read_capped(&what(), resp, cap, crate::client::MAX_RESPONSE_OPTION).await?;
                Ok::<_, GraphError>(Reply { status, headers, body })
            };
            let sent = read.await;
            drop(permits);
            let outcome = match sent {
                Ok(reply) => {
                    let status = reply.status.as_u16();
                    self.classify_reply(attempt, &reply, what).map(|()| reply).map_err(|e| (e, Some(status)))
                }
                Err(e) => Err((e, None)),
            };
            let reply = match outcome {
                Ok(reply) => reply,
                Err((error, status)) => {
                    if status == Some(401) && !refreshed {
                        refreshed = true;
                        self.tokens.invalidate(&self.app).await;
                        continue;
                    }
                    match self.retry_wait(&error, status, all_idempotent, attempt) {
                        Some(wait) => {
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        None => return Err(error),
                    }
                }
            };
            let answer: BatchResponse = serde_json::from_slice(&reply.body)
                .map_err(|source| GraphError::Decode { what: "a batch response", source })?;
            let mut by_id: HashMap<String, _> =
                answer.responses.into_iter().map(|r| (r.id.to_ascii_lowercase(), r)).collect();
            let mut again = Vec::new();
            let mut wait = std::time::Duration::ZERO;
            for (i, call) in todo.drain(..) {
                let what = || format!("{} {}{}", call.method, self.graph_base.path(), call.url.path());
                let Some(item) = by_id.remove(&i.to_string()) else {
                    if call.idempotent && !last {
                        wait = wait.max(self.backoff(attempt));
                        again.push((i, call));
                    } else {
                        done.push((
                            i,
                            Err(transient(format!("{} got no answer in the batch", what()), None)),
                        ));
                    }
                    continue;
                };
                let body = item.body.as_ref().map(|b| serde_json::to_vec(b).unwrap_or_default());
                let answer = classify::Answer {
                    status: item.status,
                    content_type: header(item.headers.as_ref(), "content-type"),
                    retry_after: header(item.headers.as_ref(), "retry-after"),
                    body: body.as_deref().unwrap_or_default(),
                };
                match classify::classify(&self.classify_context(attempt), answer, what) {
                    Ok(()) => {
                        let headers = item.headers.unwrap_or_default();
                        done.push((i, Ok(BatchReply { status: item.status, headers, body: item.body })));
                    }
                    Err(e) => match self.retry_wait(&e, Some(item.status), call.idempotent, attempt) {
                        Some(after) => {
                            wait = wait.max(after);
                            again.push((i, call));
                        }
                        None => done.push((i, Err(e))),
                    },
                }
            }
            todo = again;
            if !todo.is_empty() {
                tokio::time::sleep(wait).await;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_build_relative_urls_and_find_their_mailbox() {
        let call = BatchCall::new(Method::GET, &["users", "Room1@Contoso.com", "events", "AA/MK=="])
            .query("$select", "subject,start");
        assert_eq!(
            call.relative_url(),
            "/users/Room1@Contoso.com/events/AA%2FMK==?%24select=subject%2Cstart"
        );
        assert_eq!(call.mailbox().map(EmailAddress::as_str), Some("room1@contoso.com"));
        assert!(call.idempotent);
        let rooms = BatchCall::new(Method::POST, &["places", "microsoft.graph.room"]);
        assert_eq!(rooms.mailbox(), None);
        assert!(!rooms.idempotent);
    }

    #[test]
    fn reply_headers_are_case_insensitive() {
        let reply = BatchReply {
            status: 200,
            headers: BTreeMap::from([("Content-Type".to_owned(), "application/json".to_owned())]),
            body: None,
        };
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert!(reply.json::<Event>("an event").is_err(), "no body is not an event");
    }
}
