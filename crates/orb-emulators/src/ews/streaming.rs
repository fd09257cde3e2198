//! Streaming subscriptions (ews.md §4.2): `Subscribe` with a `StreamingSubscriptionRequest` answers a
//! `SubscriptionId` only; `GetStreamingEvents` holds its answer open (chunked) and writes one SOAP
//! envelope per batch of changes to the subscribed mailboxes as they happen (each event with its
//! watermark), `ConnectionStatus` `OK` when idle for three quarters of a minute and `Closed` when its
//! `ConnectionTimeout` has passed. Bad ids get an `Error` envelope naming them in `ErrorSubscriptionIds`
//! (`ErrorInvalidSubscription` for ids that are not streaming ids, `ErrorSubscriptionNotFound`,
//! `ErrorExpiredSubscription` for one left without a connection longer than the expiry,
//! `ErrorSubscriptionAccessDenied` for another account's); when every id is bad the answer ends
//! there. A subscription is served by its newest connection only, and only while one serves it: events
//! in a gap between connections are dropped (not replayable, ews.md §4.2), and the next notification's
//! `PreviousWatermark` still names the last one delivered, so a client can see the gap.
//!
//! An open connection lives in real time (tokio's clock): [`super::Knobs::stream_minute_ms`] shortens
//! its minutes for tests. Expiry and event times follow the injected clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration as StdDuration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use orb_ews::model::ItemId;
use orb_ews::push::{Event, Notification};
use orb_ews::streaming::{
    ConnectionStatus, MAX_SUBSCRIPTION_IDS, StreamBatch, StreamFailure, response_element,
};
use orb_ews::xml::{Element, MESSAGES, TYPES};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::EwsEmulator;
use super::ops::{Ctx, Fault, schema};
use super::push::{kind_of, watermark};
use super::state::{Inner, LoggedEvent};

/// At most this many events per notification (the rest follow in the next envelope, `MoreEvents`).
const BATCH: usize = 50;

/// The prefix inside a streaming subscription id (ids are base64, like Exchange's).
const ID_PREFIX: &str = "stream|";

/// One streaming subscription.
#[derive(Debug, Clone)]
pub(crate) struct StreamSub {
    pub(crate) account: String,
    mailbox: String,
    event_types: Vec<String>,
    queue: VecDeque<LoggedEvent>,
    last_watermark: String,
    owner: Option<u64>,
    idle_since: DateTime<Utc>,
}

/// A streaming subscription as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamingInfo {
    /// `SubscriptionId`.
    pub id: String,
    /// The mailbox.
    pub mailbox: String,
    /// Events waiting for a connection.
    pub queued: usize,
    /// Whether a `GetStreamingEvents` connection serves it now.
    pub connected: bool,
}

/// The streaming subscriptions and the signal that wakes open connections.
#[derive(Debug)]
pub(crate) struct Streams {
    pub(crate) subs: BTreeMap<String, StreamSub>,
    expired: BTreeSet<String>,
    changed: watch::Sender<u64>,
    resets: u64,
    next_connection: u64,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            subs: BTreeMap::new(),
            expired: BTreeSet::new(),
            changed: watch::channel(0).0,
            resets: 0,
            next_connection: 0,
        }
    }
}

impl Streams {
    fn wake(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Queues a mailbox event for every streaming subscription on that mailbox that wants its kind.
    pub(crate) fn record(&mut self, mailbox: &str, event: &LoggedEvent) {
        let mut any = false;
        // Only a served subscription gets events: those in a gap are not replayed (ews.md §4.2).
        for sub in self.subs.values_mut().filter(|s| s.mailbox == mailbox && s.owner.is_some()) {
            if sub.event_types.iter().any(|t| t == event.kind) {
                sub.queue.push_back(event.clone());
                any = true;
            }
        }
        if any {
            self.wake();
        }
    }

    /// A new subscription on `mailbox`; its first notification's `PreviousWatermark` is `current`.
    pub(crate) fn add(
        &mut self,
        account: &str,
        mailbox: &str,
        event_types: Vec<String>,
        current: String,
        now: DateTime<Utc>,
    ) -> String {
        let raw = format!("{ID_PREFIX}{}", uuid::Uuid::new_v4());
        let id = base64::engine::general_purpose::STANDARD.encode(raw);
        let sub = StreamSub {
            account: account.to_owned(),
            mailbox: mailbox.to_owned(),
            event_types,
            queue: VecDeque::new(),
            last_watermark: current,
            owner: None,
            idle_since: now,
        };
        self.subs.insert(id.clone(), sub);
        id
    }

    /// Ends a subscription (`Unsubscribe`); its connection stops serving it.
    pub(crate) fn remove(&mut self, id: &str) -> bool {
        let removed = self.subs.remove(id).is_some();
        self.wake();
        removed
    }

    pub(crate) fn infos(&self) -> Vec<StreamingInfo> {
        self.subs
            .iter()
            .map(|(id, s)| StreamingInfo {
                id: id.clone(),
                mailbox: s.mailbox.clone(),
                queued: s.queue.len(),
                connected: s.owner.is_some(),
            })
            .collect()
    }

    /// Cuts every open connection (a reset mid-stream).
    pub(crate) fn reset_all(&mut self) {
        self.resets += 1;
        self.wake();
    }
}

fn is_stream_id(id: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(id)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|s| s.starts_with(ID_PREFIX))
}

/// The refusal for one id, or none when it may be served by `account` now.
fn check(
    inner: &mut Inner,
    account: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Option<(&'static str, &'static str)> {
    let expiry = Duration::minutes(i64::from(inner.knobs.stream_expiry_minutes.unwrap_or(30)));
    let streams = &mut inner.streaming;
    match streams.subs.get(id) {
        Some(s) if s.account != account => {
            Some(("ErrorSubscriptionAccessDenied", "Only the creator of a subscription may use it."))
        }
        Some(s) if s.owner.is_none() && now - s.idle_since > expiry => {
            streams.subs.remove(id);
            streams.expired.insert(id.to_owned());
            Some(("ErrorExpiredSubscription", "The subscription has expired."))
        }
        Some(_) => None,
        None if streams.expired.contains(id) => {
            Some(("ErrorExpiredSubscription", "The subscription has expired."))
        }
        None if is_stream_id(id) => {
            Some(("ErrorSubscriptionNotFound", "The specified subscription was not found."))
        }
        None => Some((
            "ErrorInvalidSubscription",
            "The subscription is not valid for streaming (not a streaming subscription id).",
        )),
    }
}

/// Opens a `GetStreamingEvents` connection: the chunked answer, and the response code to log.
pub(crate) fn open(
    em: &EwsEmulator,
    inner: &mut Inner,
    ctx: &Ctx<'_>,
    op: &Element,
) -> Result<(Response, String), Fault> {
    let ids: Vec<String> = op
        .find(MESSAGES, "SubscriptionIds")
        .map(|l| {
            l.children
                .iter()
                .filter(|c| c.name == "SubscriptionId" && (c.ns == TYPES || c.ns == MESSAGES))
                .map(|c| c.text.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(schema("SubscriptionIds needs at least one SubscriptionId"));
    }
    if ids.len() > MAX_SUBSCRIPTION_IDS {
        return Err(schema(format!("at most {MAX_SUBSCRIPTION_IDS} SubscriptionIds per GetStreamingEvents")));
    }
    let minutes: u64 = op
        .child_text(MESSAGES, "ConnectionTimeout")
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| (1..=30).contains(n))
        .ok_or_else(|| schema("ConnectionTimeout must be 1–30 (minutes)"))?;
    let mut failures: Vec<StreamFailure> = Vec::new();
    let mut good = Vec::new();
    for id in ids {
        match check(inner, ctx.account, &id, ctx.now) {
            None if !good.contains(&id) => good.push(id),
            None => {}
            Some((code, message)) => match failures.iter_mut().find(|f| f.code == code) {
                Some(f) => f.subscription_ids.push(id),
                None => failures.push(StreamFailure {
                    code: code.to_owned(),
                    message: message.to_owned(),
                    subscription_ids: vec![id],
                }),
            },
        }
    }
    let code = failures.first().map_or_else(|| "NoError".to_owned(), |f| f.code.clone());
    inner.streaming.next_connection += 1;
    let connection = inner.streaming.next_connection;
    for id in &good {
        if let Some(s) = inner.streaming.subs.get_mut(id) {
            s.owner = Some(connection);
        }
    }
    // Wake the connection that served these ids before, so it lets them go.
    inner.streaming.wake();
    let minute = StdDuration::from_millis(inner.knobs.stream_minute_ms.unwrap_or(60_000).max(1));
    let beat = minute * 3 / 4;
    let now = Instant::now();
    let conn = Connection {
        guard: Guard { em: em.clone(), connection, ids: good },
        pending: failures
            .into_iter()
            .map(|f| StreamBatch { failure: Some(f), ..StreamBatch::default() })
            .collect(),
        deadline: now + minute * u32::try_from(minutes).unwrap_or(30),
        beat,
        next_beat: now + beat,
        resets: inner.streaming.resets,
        rx: inner.streaming.changed.subscribe(),
        done: false,
    };
    let body = Body::from_stream(futures::stream::unfold(conn, step));
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/xml; charset=utf-8"));
    Ok((resp, code))
}

/// Releases the connection's subscriptions when the answer ends or the client goes away.
struct Guard {
    em: EwsEmulator,
    connection: u64,
    ids: Vec<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let now = self.em.now();
        let mut inner = self.em.lock();
        for id in &self.ids {
            if let Some(s) = inner.streaming.subs.get_mut(id)
                && s.owner == Some(self.connection)
            {
                s.owner = None;
                s.idle_since = now;
                s.queue.clear();
            }
        }
    }
}

struct Connection {
    guard: Guard,
    pending: VecDeque<StreamBatch>,
    deadline: Instant,
    beat: StdDuration,
    next_beat: Instant,
    resets: u64,
    rx: watch::Receiver<u64>,
    done: bool,
}

type Chunk = Result<Bytes, std::io::Error>;

fn chunk(batch: &StreamBatch) -> Chunk {
    Ok(Bytes::from(super::soap::envelope(response_element(batch))))
}

/// The notifications waiting for this connection's subscriptions (`None`: the connection was reset).
fn take(conn: &Connection) -> Option<Vec<Notification>> {
    let mut inner = conn.guard.em.lock();
    if inner.streaming.resets != conn.resets {
        return None;
    }
    let mut out = Vec::new();
    for id in &conn.guard.ids {
        let Some(sub) = inner.streaming.subs.get_mut(id) else { continue };
        if sub.owner != Some(conn.guard.connection) || sub.queue.is_empty() {
            continue;
        }
        let n = sub.queue.len().min(BATCH);
        let batch: Vec<LoggedEvent> = sub.queue.drain(..n).collect();
        let previous = std::mem::replace(
            &mut sub.last_watermark,
            batch.last().map(|e| watermark(&sub.mailbox, e.seq)).unwrap_or_default(),
        );
        out.push(Notification {
            subscription_id: id.clone(),
            previous_watermark: Some(previous),
            more_events: !sub.queue.is_empty(),
            events: batch
                .iter()
                .map(|e| Event {
                    kind: kind_of(e.kind),
                    watermark: Some(watermark(&sub.mailbox, e.seq)),
                    timestamp: Some(e.at),
                    item_id: Some(ItemId::new(e.item_id.clone(), e.change_key.clone())),
                    folder_id: None,
                    parent_folder_id: Some("calendar".to_owned()),
                    unread_count: None,
                    old_item_id: None,
                    old_parent_folder_id: None,
                })
                .collect(),
        });
    }
    Some(out)
}

async fn step(mut conn: Connection) -> Option<(Chunk, Connection)> {
    if let Some(batch) = conn.pending.pop_front() {
        return Some((chunk(&batch), conn));
    }
    if conn.done || conn.guard.ids.is_empty() {
        return None;
    }
    loop {
        let Some(notifications) = take(&conn) else {
            conn.done = true;
            let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "emulator: streams reset");
            return Some((Err(reset), conn));
        };
        let now = Instant::now();
        if !notifications.is_empty() {
            conn.next_beat = now + conn.beat;
            let batch = StreamBatch { notifications, ..StreamBatch::default() };
            return Some((chunk(&batch), conn));
        }
        if now >= conn.deadline {
            conn.done = true;
            let batch = StreamBatch { status: Some(ConnectionStatus::Closed), ..StreamBatch::default() };
            return Some((chunk(&batch), conn));
        }
        if now >= conn.next_beat {
            conn.next_beat = now + conn.beat;
            let batch = StreamBatch { status: Some(ConnectionStatus::Ok), ..StreamBatch::default() };
            return Some((chunk(&batch), conn));
        }
        let wake_at = conn.deadline.min(conn.next_beat);
        tokio::select! {
            changed = conn.rx.changed() => {
                if changed.is_err() {
                    tokio::time::sleep_until(wake_at).await;
                }
            }
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}
