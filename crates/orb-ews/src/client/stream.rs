//! Streaming notifications over HTTP: `Subscribe` with a `StreamingSubscriptionRequest` (with
//! notification affinity), and `GetStreamingEvents` read as one long chunked answer whose envelopes
//! are parsed as each completes ([`crate::streaming`]), as a [`futures::Stream`] of [`StreamBatch`]es.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::Stream;
use reqwest::header::CONTENT_TYPE;

use super::transport::{Incoming, Outgoing};
use super::{EwsClient, Routing, Target};
use crate::error::EwsError;
use crate::request;
use crate::response::{self, HttpAnswer};
use crate::streaming::{
    self, Affinity, ConnectionTimeout, EnvelopeSplitter, StreamBatch, StreamingSubscription,
};

/// How much longer than its `ConnectionTimeout` a connection may take before the client gives up.
const CONNECTION_MARGIN: Duration = Duration::from_secs(30);

struct Reading {
    idle: Duration,
    limit: usize,
    mailbox: String,
    /// The ids no failure has named yet: when a failure names the last of them, the answer may end.
    alive: BTreeSet<String>,
}

enum State {
    Send(Box<(EwsClient, Outgoing)>, Reading),
    Read(Box<Incoming>, EnvelopeSplitter, Reading),
    Done,
}

fn transient(what: impl Into<String>) -> EwsError {
    EwsError::Transient { status: None, what: what.into() }
}

impl EwsClient {
    /// A streaming subscription on the impersonated mailbox's calendar (the event types push uses),
    /// sent with `X-PreferServerAffinity: true` and the group's affinity cookie if one is known; the
    /// answer's cookie (or the one sent) comes back in [`StreamingSubscription::affinity`] for the
    /// group's later `Subscribe` and `GetStreamingEvents`.
    pub async fn subscribe_streaming(
        &self,
        target: Target<'_>,
        affinity: Option<&Affinity>,
    ) -> Result<StreamingSubscription, EwsError> {
        let (answer, cookie) =
            self.call_routed(target, streaming::subscribe_request(), Routing::Affinity(affinity)).await?;
        let sub = response::subscribe(&answer, Some(target.mailbox.as_str()))?;
        Ok(StreamingSubscription { id: sub.id, affinity: cookie.or_else(|| affinity.cloned()) })
    }

    /// `GetStreamingEvents` for up to 200 subscriptions (impersonating `target`, the group's anchor
    /// mailbox): each envelope is yielded as soon as it is complete. The stream ends after the batch
    /// with `ConnectionStatus` `Closed` (reconnect at once for the same ids, then re-sync the rooms:
    /// events in a gap are not replayed), after an error (retryable ones such as a reset or silence for
    /// [`super::EwsConfig::stream_idle_timeout`] are [`EwsError::Transient`]), or when a failure has named
    /// every id. Each envelope is held to [`super::EwsConfig::max_response_bytes`]; the whole connection
    /// to its `ConnectionTimeout` plus 30 s. Dropping the stream closes the connection.
    pub fn stream_events(
        &self,
        target: Target<'_>,
        subscription_ids: &[String],
        timeout: ConnectionTimeout,
        affinity: Option<&Affinity>,
    ) -> impl Stream<Item = Result<StreamBatch, EwsError>> + Send + 'static {
        let reading = Reading {
            idle: self.config.stream_idle_timeout,
            limit: self.config.max_response_bytes,
            mailbox: target.mailbox.as_str().to_owned(),
            alive: subscription_ids.iter().cloned().collect(),
        };
        let start = self.streaming_request(&target, subscription_ids, timeout, affinity);
        let first = match start {
            Ok(out) => Ok(State::Send(Box::new((self.clone(), out)), reading)),
            Err(e) => Err(e),
        };
        futures::stream::unfold(Some(first), |state| async move {
            let mut state = match state? {
                Ok(s) => s,
                Err(e) => return Some((Err(e), None)),
            };
            loop {
                state = match state {
                    State::Done => return None,
                    State::Send(send, reading) => match open(&send.0, &send.1, &reading).await {
                        Ok(resp) => {
                            let split = EnvelopeSplitter::new(reading.limit);
                            State::Read(Box::new(resp), split, reading)
                        }
                        Err(e) => return Some((Err(e), Some(Ok(State::Done)))),
                    },
                    State::Read(mut resp, mut split, mut reading) => {
                        match split.next_envelope() {
                            Err(e) => return Some((Err(e), Some(Ok(State::Done)))),
                            Ok(Some(doc)) => {
                                let batch = match streaming::parse_envelope(&doc) {
                                    Ok(b) => b,
                                    Err(e) => return Some((Err(e), Some(Ok(State::Done)))),
                                };
                                if let Some(f) = &batch.failure {
                                    for id in &f.subscription_ids {
                                        reading.alive.remove(id);
                                    }
                                }
                                let next = if batch.is_closed() {
                                    // The answer ends here: read its end in the background so the
                                    // connection (an NTLM-authenticated one too) can be used again.
                                    let idle = reading.idle;
                                    tokio::spawn(async move {
                                        let mut resp = resp;
                                        let _ = tokio::time::timeout(idle, async {
                                            while let Ok(Some(_)) = resp.chunk().await {}
                                        })
                                        .await;
                                    });
                                    State::Done
                                } else {
                                    State::Read(resp, split, reading)
                                };
                                return Some((Ok(batch), Some(Ok(next))));
                            }
                            Ok(None) => {}
                        }
                        match tokio::time::timeout(reading.idle, resp.chunk()).await {
                            Err(_) => {
                                let what = format!(
                                    "no streaming message for {:?} (Exchange sends one at least every 45 s)",
                                    reading.idle
                                );
                                return Some((Err(transient(what)), Some(Ok(State::Done))));
                            }
                            Ok(Err(e)) => return Some((Err(e), Some(Ok(State::Done)))),
                            Ok(Ok(None)) if reading.alive.is_empty() && !split.holds_partial() => {
                                return None;
                            }
                            Ok(Ok(None)) => {
                                let what = "the streaming answer ended without ConnectionStatus Closed";
                                return Some((Err(transient(what)), Some(Ok(State::Done))));
                            }
                            Ok(Ok(Some(bytes))) => {
                                split.push(&bytes);
                                State::Read(resp, split, reading)
                            }
                        }
                    }
                };
            }
        })
    }

    fn streaming_request(
        &self,
        target: &Target<'_>,
        ids: &[String],
        timeout: ConnectionTimeout,
        affinity: Option<&Affinity>,
    ) -> Result<Outgoing, EwsError> {
        let op = streaming::get_streaming_events_request(ids, timeout)?;
        let headers = self.headers("GetStreamingEvents", target, Routing::Affinity(affinity))?;
        let body = request::envelope(Some(target.mailbox), op).to_document();
        let whole = Duration::from_secs(u64::from(timeout.get()) * 60) + CONNECTION_MARGIN;
        Ok(Outgoing { headers, body: body.into(), timeout: whole })
    }
}

/// Sends the request; anything but a `200` with XML is read whole (capped) and classified like any
/// other answer (faults, throttling, HTML pages).
async fn open(client: &EwsClient, out: &Outgoing, reading: &Reading) -> Result<Incoming, EwsError> {
    let mut resp = client.transport.send(out).await?;
    let status = resp.status;
    let content_type = resp.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let html = content_type.as_deref().is_some_and(|c| c.to_ascii_lowercase().contains("html"));
    if status == 200 && !html {
        return Ok(resp);
    }
    if (300..400).contains(&status) {
        return Err(EwsError::Transient {
            status: Some(status),
            what: format!("HTTP {status} redirect (not followed)"),
        });
    }
    let retry_after = resp
        .headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut bytes = Vec::new();
    loop {
        match tokio::time::timeout(reading.idle, resp.chunk()).await {
            Err(_) => return Err(transient("the error answer stalled")),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                if bytes.len() + chunk.len() > reading.limit {
                    return Err(EwsError::TooLarge { limit: reading.limit });
                }
                bytes.extend_from_slice(&chunk);
            }
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let answer = HttpAnswer { status, content_type: content_type.as_deref(), retry_after, body: &text };
    match response::operation_response(&answer, Some(&reading.mailbox)) {
        Err(e) => Err(e),
        Ok(_) => Err(EwsError::Protocol { reason: format!("HTTP {status} for GetStreamingEvents") }),
    }
}
