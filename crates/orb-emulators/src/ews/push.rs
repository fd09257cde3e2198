//! Push subscriptions: events queued per subscription with watermarks, `SendNotification` POSTed to the
//! callback URL, the listener's `SendNotificationResult` read (`OK` / `Unsubscribe`), failed deliveries
//! retried after 30 s doubling until the next retry would exceed `StatusFrequency` minutes (then the
//! subscription silently disappears), and a `StatusEvent` when idle for `StatusFrequency` minutes —
//! all on the injected clock ([`super::EwsEmulator::tick`] runs what is due).

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use orb_ews::model::ItemId;
use orb_ews::push::{self as wire, EventKind, Notification, SubscriptionStatus};
use serde::Serialize;

use super::EwsEmulator;
use super::state::LoggedEvent;

/// A watermark: opaque to clients, it names the mailbox and a position in its event log.
pub(crate) fn watermark(mailbox: &str, seq: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{mailbox}|{seq}"))
}

/// The position a watermark names in `mailbox`, if it is one of its watermarks.
pub(crate) fn parse_watermark(mailbox: &str, wm: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::STANDARD.decode(wm.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (mb, seq) = text.rsplit_once('|')?;
    (mb == mailbox).then(|| seq.parse().ok()).flatten()
}

#[derive(Debug, Clone)]
pub(crate) struct Queued {
    kind: &'static str,
    watermark: String,
    at: DateTime<Utc>,
    item: Option<(String, String)>,
}

/// One push subscription.
#[derive(Debug, Clone)]
pub(crate) struct PushSub {
    pub(crate) account: String,
    pub(crate) mailbox: String,
    pub(crate) url: String,
    pub(crate) status_frequency: u32,
    pub(crate) event_types: Vec<String>,
    queue: Vec<Queued>,
    last_watermark: String,
    failures: u32,
    next_attempt: Option<DateTime<Utc>>,
    last_sent: DateTime<Utc>,
    in_flight: bool,
}

/// One POST to a callback URL, for tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    /// The subscription.
    pub subscription_id: String,
    /// Where.
    pub url: String,
    /// The event kinds sent.
    pub events: Vec<String>,
    /// `ok`, `unsubscribe` or `failed`.
    pub outcome: String,
    /// The listener's HTTP status, if it answered.
    pub status: Option<u16>,
    /// When (emulator clock).
    pub at: DateTime<Utc>,
}

/// A subscription as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionInfo {
    /// `SubscriptionId`.
    pub id: String,
    /// The mailbox.
    pub mailbox: String,
    /// The callback URL.
    pub url: String,
    /// Events waiting.
    pub queued: usize,
    /// Failed deliveries in a row.
    pub failures: u32,
    /// When the next retry is due.
    pub next_attempt: Option<DateTime<Utc>>,
}

/// The subscriptions and the delivery log.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    pub(crate) subs: BTreeMap<String, PushSub>,
    pub(crate) log: Vec<DeliveryRecord>,
}

impl Subscriptions {
    /// Queues a mailbox event for every subscription on that mailbox that wants its kind.
    pub(crate) fn record(&mut self, mailbox: &str, event: &LoggedEvent) {
        for sub in self.subs.values_mut().filter(|s| s.mailbox == mailbox) {
            if sub.event_types.iter().any(|t| t == event.kind) {
                sub.queue.push(Queued {
                    kind: event.kind,
                    watermark: watermark(mailbox, event.seq),
                    at: event.at,
                    item: Some((event.item_id.clone(), event.change_key.clone())),
                });
            }
        }
    }

    /// Adds a subscription; `resume` are the logged events after the client's watermark.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        id: String,
        account: &str,
        mailbox: &str,
        url: String,
        status_frequency: u32,
        event_types: Vec<String>,
        current: String,
        resume: &[LoggedEvent],
        now: DateTime<Utc>,
    ) {
        let mut sub = PushSub {
            account: account.to_owned(),
            mailbox: mailbox.to_owned(),
            url,
            status_frequency,
            event_types,
            queue: Vec::new(),
            last_watermark: current,
            failures: 0,
            next_attempt: None,
            last_sent: now,
            in_flight: false,
        };
        for e in resume {
            if sub.event_types.iter().any(|t| t == e.kind) {
                sub.queue.push(Queued {
                    kind: e.kind,
                    watermark: watermark(mailbox, e.seq),
                    at: e.at,
                    item: Some((e.item_id.clone(), e.change_key.clone())),
                });
            }
        }
        self.subs.insert(id, sub);
    }

    pub(crate) fn infos(&self) -> Vec<SubscriptionInfo> {
        self.subs
            .iter()
            .map(|(id, s)| SubscriptionInfo {
                id: id.clone(),
                mailbox: s.mailbox.clone(),
                url: s.url.clone(),
                queued: s.queue.len(),
                failures: s.failures,
                next_attempt: s.next_attempt,
            })
            .collect()
    }

    /// Queues a `StatusEvent` on every idle subscription whose `StatusFrequency` has passed.
    fn status_pings(&mut self, now: DateTime<Utc>) {
        for sub in self.subs.values_mut() {
            let idle = sub.queue.is_empty() && sub.next_attempt.is_none() && !sub.in_flight;
            if idle && now - sub.last_sent >= Duration::minutes(i64::from(sub.status_frequency)) {
                sub.queue.push(Queued {
                    kind: "StatusEvent",
                    watermark: sub.last_watermark.clone(),
                    at: now,
                    item: None,
                });
            }
        }
    }
}

/// At most this many events per notification (the rest follow with `MoreEvents`).
const BATCH: usize = 50;

pub(crate) fn kind_of(k: &str) -> EventKind {
    match k {
        "CreatedEvent" => EventKind::Created,
        "DeletedEvent" => EventKind::Deleted,
        "StatusEvent" => EventKind::Status,
        _ => EventKind::Modified,
    }
}

struct Due {
    id: String,
    url: String,
    body: String,
    sent: usize,
    kinds: Vec<String>,
    last_watermark: String,
}

fn take_due(em: &EwsEmulator, now: DateTime<Utc>) -> Vec<Due> {
    let mut inner = em.lock();
    inner.push.status_pings(now);
    let mut out = Vec::new();
    for (id, sub) in inner.push.subs.iter_mut() {
        let due = sub.next_attempt.is_none_or(|t| t <= now);
        if sub.in_flight || sub.queue.is_empty() || !due {
            continue;
        }
        let batch: Vec<Queued> = sub.queue.iter().take(BATCH).cloned().collect();
        let n = Notification {
            subscription_id: id.clone(),
            previous_watermark: Some(sub.last_watermark.clone()),
            more_events: sub.queue.len() > batch.len(),
            events: batch
                .iter()
                .map(|q| wire::Event {
                    kind: kind_of(q.kind),
                    watermark: Some(q.watermark.clone()),
                    timestamp: Some(q.at),
                    item_id: q.item.as_ref().map(|(i, ck)| ItemId::new(i.clone(), ck.clone())),
                    folder_id: None,
                    parent_folder_id: q.item.as_ref().map(|_| "calendar".to_owned()),
                    unread_count: None,
                })
                .collect(),
        };
        sub.in_flight = true;
        out.push(Due {
            id: id.clone(),
            url: sub.url.clone(),
            body: wire::notification_document(&n),
            sent: batch.len(),
            kinds: batch.iter().map(|q| q.kind.to_owned()).collect(),
            last_watermark: batch.last().map(|q| q.watermark.clone()).unwrap_or_default(),
        });
    }
    out
}

/// Delivers every due notification (and repeats while deliveries succeed with more queued).
pub(crate) async fn deliver_due(em: &EwsEmulator) {
    loop {
        let now = em.now();
        let due = take_due(em, now);
        if due.is_empty() {
            return;
        }
        let mut progressed = false;
        for d in due {
            let sent = em
                .http
                .post(&d.url)
                .header("content-type", "text/xml; charset=utf-8")
                .timeout(StdDuration::from_secs(5))
                .body(d.body)
                .send()
                .await;
            let (status, answer) = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    let parsed =
                        (status == 200).then(|| wire::parse_notification_result(&text).ok()).flatten();
                    (Some(status), parsed)
                }
                Err(_) => (None, None),
            };
            let mut inner = em.lock();
            let outcome = match answer {
                Some(SubscriptionStatus::Ok) => "ok",
                Some(SubscriptionStatus::Unsubscribe) => "unsubscribe",
                None => "failed",
            };
            inner.push.log.push(DeliveryRecord {
                subscription_id: d.id.clone(),
                url: d.url.clone(),
                events: d.kinds.clone(),
                outcome: outcome.to_owned(),
                status,
                at: now,
            });
            let Some(sub) = inner.push.subs.get_mut(&d.id) else { continue };
            sub.in_flight = false;
            match answer {
                Some(SubscriptionStatus::Ok) => {
                    sub.queue.drain(..d.sent.min(sub.queue.len()));
                    sub.last_watermark = d.last_watermark;
                    sub.failures = 0;
                    sub.next_attempt = None;
                    sub.last_sent = now;
                    progressed = true;
                }
                Some(SubscriptionStatus::Unsubscribe) => {
                    inner.push.subs.remove(&d.id);
                }
                None => {
                    sub.failures += 1;
                    // 30 s, 60 s, 120 s, …; a retry that would come later than StatusFrequency is not sent.
                    let delay = Duration::seconds(30 * (1_i64 << (sub.failures - 1).min(20)));
                    if delay > Duration::minutes(i64::from(sub.status_frequency)) {
                        inner.push.subs.remove(&d.id);
                    } else {
                        sub.next_attempt = Some(now + delay);
                    }
                }
            }
        }
        if !progressed {
            return;
        }
    }
}
