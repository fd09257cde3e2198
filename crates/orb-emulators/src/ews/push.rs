//! Push subscriptions: events queued per subscription with watermarks, `SendNotification` POSTed to the
//! callback URL, the listener's `SendNotificationResult` read (`OK` / `Unsubscribe`), failed deliveries
//! retried after 30 s doubling until the next retry would exceed `StatusFrequency` minutes (then the
//! subscription silently disappears), and a `StatusEvent` when idle for `StatusFrequency` minutes —
//! all on the injected clock ([`super::EwsEmulator::tick`] runs what is due).
//!
//! The delivery fault knobs ([`PushKnobs`], in [`super::Knobs::push`]) drop, duplicate or hold back
//! (reorder) notification POSTs, counted or at a seeded rate, like the Graph emulator's
//! `NotificationKnobs`. A dropped notification is *lost on the way*: Exchange thinks it was delivered
//! (`OK`), moves its watermark on and never retries it — only a sweep or a subscription remade from an
//! older watermark heals it. A held-back one is also taken as delivered; it is POSTed after the next POST
//! (to any subscription), or at the next [`super::EwsEmulator::tick`] once reordering is switched off.
//! Every POST (and every dropped one) is in the delivery log with its fault.

use std::collections::BTreeMap;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use orb_ews::model::ItemId;
use orb_ews::push::{self as wire, EventKind, Notification, SubscriptionStatus};
use serde::{Deserialize, Serialize};

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
    /// The delivery fault knob that acted on this POST, if any: `dropped` (not sent), `duplicate` (the
    /// second copy), `reordered` (sent after the next POST).
    pub fault: Option<String>,
}

/// Fault knobs for push deliveries (see the module docs). The counted ones act first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushKnobs {
    /// Lose the next N notification POSTs on the way (Exchange takes them as delivered).
    pub drop_next: u32,
    /// POST each of the next N notifications twice.
    pub duplicate_next: u32,
    /// Hold back the next N notifications until the next POST was sent (swaps neighbours).
    pub reorder_next: u32,
    /// Lose each notification with this probability, in percent (seeded: the same sequence each run).
    pub drop_percent: u32,
    /// POST each notification twice with this probability, in percent.
    pub duplicate_percent: u32,
    /// Hold each notification back behind the next POST with this probability, in percent.
    pub reorder_percent: u32,
}

impl PushKnobs {
    fn reorders(&self) -> bool {
        self.reorder_next > 0 || self.reorder_percent > 0
    }
}

/// What the push fault knobs did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushFaults {
    /// Notifications due for a POST (before faults; retries of failed ones count again).
    pub queued: u64,
    /// Lost on the way.
    pub dropped: u64,
    /// POSTed twice.
    pub duplicated: u64,
    /// Held back behind the next POST.
    pub reordered: u64,
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
    /// What the fault knobs did.
    pub(crate) faults: PushFaults,
    /// A notification held back by the reorder knobs.
    held: Option<Due>,
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

#[derive(Debug, Clone)]
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
                    old_item_id: None,
                    old_parent_folder_id: None,
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

/// A deterministic percentage draw: the `n`th value of a splitmix64 sequence, below 100.
fn percent_draw(n: u64) -> u32 {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    u32::try_from((z ^ (z >> 31)) % 100).unwrap_or(0)
}

/// What the fault knobs do with one due notification.
#[derive(Debug, Clone, Copy, Default)]
struct Fate {
    drop: bool,
    duplicate: bool,
    reorder: bool,
}

fn fate(inner: &mut super::state::Inner) -> Fate {
    let knobs = &mut inner.knobs.push;
    let faults = &mut inner.push.faults;
    let n = faults.queued;
    faults.queued += 1;
    let (d, u, r) = (percent_draw(3 * n), percent_draw(3 * n + 1), percent_draw(3 * n + 2));
    let mut fate = Fate::default();
    if knobs.drop_next > 0 || d < knobs.drop_percent {
        knobs.drop_next = knobs.drop_next.saturating_sub(1);
        faults.dropped += 1;
        fate.drop = true;
        return fate;
    }
    if knobs.duplicate_next > 0 || u < knobs.duplicate_percent {
        knobs.duplicate_next = knobs.duplicate_next.saturating_sub(1);
        faults.duplicated += 1;
        fate.duplicate = true;
    }
    if (knobs.reorder_next > 0 || r < knobs.reorder_percent) && inner.push.held.is_none() {
        knobs.reorder_next = knobs.reorder_next.saturating_sub(1);
        faults.reordered += 1;
        fate.reorder = true;
    }
    fate
}

/// POSTs one notification document; the listener's status and answer.
async fn post(em: &EwsEmulator, url: &str, body: &str) -> (Option<u16>, Option<SubscriptionStatus>) {
    let sent = em
        .http
        .post(url)
        .header("content-type", "text/xml; charset=utf-8")
        .timeout(StdDuration::from_secs(5))
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let parsed = (status == 200).then(|| wire::parse_notification_result(&text).ok()).flatten();
            (Some(status), parsed)
        }
        Err(_) => (None, None),
    }
}

fn outcome_of(answer: Option<SubscriptionStatus>) -> &'static str {
    match answer {
        Some(SubscriptionStatus::Ok) => "ok",
        Some(SubscriptionStatus::Unsubscribe) => "unsubscribe",
        None => "failed",
    }
}

fn log(
    inner: &mut super::state::Inner,
    d: &Due,
    outcome: &str,
    status: Option<u16>,
    at: DateTime<Utc>,
    fault: Option<&str>,
) {
    inner.push.log.push(DeliveryRecord {
        subscription_id: d.id.clone(),
        url: d.url.clone(),
        events: d.kinds.clone(),
        outcome: outcome.to_owned(),
        status,
        at,
        fault: fault.map(str::to_owned),
    });
}

/// Sends the held-back notification, if any (after another POST, or when reordering stopped).
async fn release_held(em: &EwsEmulator) {
    let Some(held) = em.lock().push.held.take() else { return };
    let (status, answer) = post(em, &held.url, &held.body).await;
    let mut inner = em.lock();
    log(&mut inner, &held, outcome_of(answer), status, em.now(), Some("reordered"));
    if answer == Some(SubscriptionStatus::Unsubscribe) {
        inner.push.subs.remove(&held.id);
    }
}

/// Sends the held-back notification once the reorder knobs are off (from [`EwsEmulator::tick`]).
pub(crate) async fn release_held_if_calm(em: &EwsEmulator) {
    let calm = !em.lock().knobs.push.reorders();
    if calm {
        release_held(em).await;
    }
}

/// Logs one delivery and moves its subscription on (delivered, unsubscribed or to be retried); whether it
/// was delivered.
fn settle(
    inner: &mut super::state::Inner,
    d: &Due,
    fate: Fate,
    status: Option<u16>,
    answer: Option<SubscriptionStatus>,
    now: DateTime<Utc>,
) -> bool {
    if fate.drop {
        log(inner, d, "dropped", None, now, Some("dropped"));
    } else if fate.reorder {
        // Doubled too: one copy goes now (below), the other after the next POST.
        inner.push.held = Some(d.clone());
    } else {
        log(inner, d, outcome_of(answer), status, now, None);
    }
    let Some(sub) = inner.push.subs.get_mut(&d.id) else { return false };
    sub.in_flight = false;
    match answer {
        Some(SubscriptionStatus::Ok) => {
            sub.queue.drain(..d.sent.min(sub.queue.len()));
            sub.last_watermark = d.last_watermark.clone();
            sub.failures = 0;
            sub.next_attempt = None;
            sub.last_sent = now;
            return true;
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
    false
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
            let fate = fate(&mut em.lock());
            let (status, answer) = if fate.drop || fate.reorder {
                // Lost on the way, or on its way late: Exchange takes it as delivered.
                (None, Some(SubscriptionStatus::Ok))
            } else {
                let first = post(em, &d.url, &d.body).await;
                if fate.duplicate {
                    let again = post(em, &d.url, &d.body).await;
                    log(&mut em.lock(), &d, outcome_of(again.1), again.0, now, Some("duplicate"));
                }
                first
            };
            progressed |= settle(&mut em.lock(), &d, fate, status, answer, now);
            if fate.reorder && fate.duplicate {
                let (status, answer) = post(em, &d.url, &d.body).await;
                log(&mut em.lock(), &d, outcome_of(answer), status, now, Some("duplicate"));
            } else if !fate.reorder && !fate.drop {
                // Another POST went out: the held-back one follows it.
                release_held(em).await;
            }
        }
        if !progressed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::routing::post;
    use orb_core::FixedClock;

    use super::*;
    use crate::ews::Knobs;

    const MAILBOX: &str = "room1@contoso.com";

    /// A listener that keeps every body and answers `OK`.
    async fn listener() -> (String, Arc<Mutex<Vec<Notification>>>) {
        let got: Arc<Mutex<Vec<Notification>>> = Arc::default();
        let keep = got.clone();
        let app = Router::new().route(
            "/hook",
            post(move |body: String| {
                let keep = keep.clone();
                async move {
                    keep.lock().unwrap().extend(wire::parse_notification(&body).unwrap());
                    wire::notification_result(SubscriptionStatus::Ok)
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        (url, got)
    }

    struct Bed {
        em: EwsEmulator,
        got: Arc<Mutex<Vec<Notification>>>,
        seq: u64,
    }

    impl Bed {
        async fn new(push: PushKnobs) -> Self {
            let clock = FixedClock::new("2026-09-01T08:00:00Z".parse().unwrap());
            let em = EwsEmulator::new(Arc::new(clock.clone()));
            let (url, got) = listener().await;
            let now = orb_core::Clock::now(&clock);
            em.lock().push.add(
                "sub-1".into(),
                "svc",
                MAILBOX,
                url,
                30,
                vec!["CreatedEvent".into()],
                watermark(MAILBOX, 0),
                &[],
                now,
            );
            em.set_knobs(Knobs { push, ..Knobs::default() });
            Self { em, got, seq: 0 }
        }

        /// One created item; the emulator then delivers what is due.
        async fn event(&mut self) -> String {
            self.seq += 1;
            let id = format!("item-{}", self.seq);
            let event = LoggedEvent {
                seq: self.seq,
                kind: "CreatedEvent",
                item_id: id.clone(),
                change_key: "ck".into(),
                at: self.em.now(),
            };
            self.em.lock().push.record(MAILBOX, &event);
            deliver_due(&self.em).await;
            id
        }

        /// The item ids received, in order.
        fn received(&self) -> Vec<String> {
            let got = self.got.lock().unwrap();
            got.iter()
                .flat_map(|n| n.events.iter().filter_map(|e| e.item_id.as_ref().map(|i| i.id.clone())))
                .collect()
        }

        fn faults(&self) -> Vec<Option<String>> {
            self.em.deliveries().into_iter().map(|d| d.fault).collect()
        }
    }

    #[tokio::test]
    async fn a_dropped_delivery_is_lost_on_the_way_and_exchange_moves_on() {
        let mut bed = Bed::new(PushKnobs { drop_next: 1, ..PushKnobs::default() }).await;
        bed.event().await;
        assert!(bed.received().is_empty(), "nothing reached the listener");
        let log = bed.em.deliveries();
        assert_eq!((log[0].outcome.as_str(), log[0].status), ("dropped", None));
        // Exchange took it as delivered: nothing queued, no retry due, the watermark moved on.
        let info = &bed.em.subscriptions()[0];
        assert_eq!((info.queued, info.failures, info.next_attempt), (0, 0, None));
        bed.event().await;
        assert_eq!(bed.received(), vec!["item-2"]);
        let n = &bed.got.lock().unwrap()[0];
        assert_eq!(
            n.previous_watermark.as_deref(),
            Some(watermark(MAILBOX, 1).as_str()),
            "after the lost one"
        );
        assert_eq!(bed.em.push_faults(), PushFaults { queued: 2, dropped: 1, duplicated: 0, reordered: 0 });
    }

    #[tokio::test]
    async fn a_duplicated_delivery_arrives_twice() {
        let mut bed = Bed::new(PushKnobs { duplicate_next: 1, ..PushKnobs::default() }).await;
        bed.event().await;
        bed.event().await;
        assert_eq!(bed.received(), vec!["item-1", "item-1", "item-2"]);
        assert_eq!(bed.faults(), vec![Some("duplicate".to_owned()), None, None]);
        assert!(bed.em.deliveries().iter().all(|d| d.outcome == "ok"));
        assert_eq!(bed.em.push_faults().duplicated, 1);
    }

    #[tokio::test]
    async fn a_held_back_delivery_follows_the_next_one_or_the_next_tick_once_calm() {
        let mut bed = Bed::new(PushKnobs { reorder_next: 1, ..PushKnobs::default() }).await;
        bed.event().await;
        assert!(bed.received().is_empty(), "held back");
        assert_eq!(bed.em.subscriptions()[0].queued, 0, "taken as delivered");
        bed.event().await;
        assert_eq!(bed.received(), vec!["item-2", "item-1"], "swapped");
        assert_eq!(bed.faults(), vec![None, Some("reordered".to_owned())]);

        // Held while reordering is on; the tick after it was switched off sends it.
        bed.em.set_knobs(Knobs {
            push: PushKnobs { reorder_percent: 100, ..PushKnobs::default() },
            ..Knobs::default()
        });
        bed.event().await;
        bed.em.tick().await;
        assert_eq!(bed.received().len(), 2, "still held while the knob is on");
        bed.em.set_knobs(Knobs::default());
        bed.em.tick().await;
        assert_eq!(bed.received(), vec!["item-2", "item-1", "item-3"]);
        assert_eq!(bed.em.push_faults().reordered, 2);
    }

    #[tokio::test]
    async fn percentages_are_seeded_and_every_event_is_accounted_for() {
        let knobs = PushKnobs {
            drop_percent: 10,
            duplicate_percent: 10,
            reorder_percent: 10,
            ..PushKnobs::default()
        };
        let mut bed = Bed::new(knobs.clone()).await;
        for _ in 0..300 {
            bed.event().await;
        }
        bed.em.set_knobs(Knobs::default());
        bed.em.tick().await;
        let f = bed.em.push_faults();
        assert_eq!(f.queued, 300);
        for (what, n) in [("dropped", f.dropped), ("duplicated", f.duplicated), ("reordered", f.reordered)] {
            assert!((12..=50).contains(&n), "{what}: {n} of 300 at 10%");
        }
        // Every event reached the listener unless it was dropped; the doubled ones twice.
        let received = bed.received();
        let distinct: std::collections::BTreeSet<_> = received.iter().collect();
        assert_eq!(distinct.len() as u64, 300 - f.dropped);
        assert_eq!(received.len() as u64, 300 - f.dropped + f.duplicated);
        let dropped = bed.em.deliveries().iter().filter(|d| d.outcome == "dropped").count() as u64;
        assert_eq!(dropped, f.dropped);
        // The same knobs give the same faults.
        let mut again = Bed::new(knobs).await;
        for _ in 0..300 {
            again.event().await;
        }
        again.em.set_knobs(Knobs::default());
        again.em.tick().await;
        assert_eq!(again.em.push_faults(), f);
    }
}
