//! Streaming subscriptions against the EWS emulator over real HTTP: changes in a room (a meeting
//! created, moved, deleted; a series and an occurrence cancelled) arrive in order with chained
//! watermarks on one open connection; the connection ends with `ConnectionStatus` `Closed` after its
//! (shortened) timeout; bad, lost and expired ids are named per id; a reset mid-stream is retryable;
//! the affinity cookie travels from `Subscribe` to `GetStreamingEvents`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Utc, Weekday};
use futures::{Stream, StreamExt};
use orb_core::{EmailAddress, FixedClock};
use orb_emulators::ews::{self, EwsEmulator, Knobs, RoomSettings, Scope, Served};
use orb_emulators::faults::{FaultKind, FaultPlan, FaultRule};
use orb_ews::model::{MeetingChange, NewMeeting};
use orb_ews::push::{EventKind, Notification};
use orb_ews::series::{DayOfWeek, ItemRef, Pattern, Range, Recurrence};
use orb_ews::streaming::{ConnectionStatus, ConnectionTimeout, StreamBatch};
use orb_ews::{EwsClient, EwsError};
use tokio::sync::mpsc;

mod support;
use support::{ALICE, ROOM, addr, at, client, start_clock, target};

/// A stream read by its own task (a stream sends its request only when polled), with its items
/// forwarded here; dropping it aborts the task, which drops the stream and so the connection.
struct Events {
    rx: mpsc::UnboundedReceiver<Result<StreamBatch, EwsError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Events {
    fn new(stream: impl Stream<Item = Result<StreamBatch, EwsError>> + Send + 'static) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut stream = Box::pin(stream);
            while let Some(item) = stream.next().await {
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        Self { rx, task }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct World {
    em: EwsEmulator,
    clock: FixedClock,
    orb: EwsClient,
    outlook: EwsClient,
    _served: Served,
}

/// An emulator whose streaming minute lasts `minute_ms`.
async fn world(minute_ms: u64) -> World {
    let clock = start_clock();
    let em = EwsEmulator::new(Arc::new(clock.clone()));
    em.add_user(ALICE, "Alice Example");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    let scope: BTreeSet<String> = [ALICE, ROOM].iter().map(|s| s.to_string()).collect();
    em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
    em.add_account("outlook", "outlook-password", Scope::All);
    em.set_knobs(Knobs { stream_minute_ms: Some(minute_ms), ..Knobs::default() });
    let served = ews::serve(em.clone()).await.unwrap();
    let orb = client(&served, "svc-orb", "orb-password");
    let outlook = client(&served, "outlook", "outlook-password");
    World { em, clock, orb, outlook, _served: served }
}

fn meeting(start: DateTime<Utc>, match_id: &str) -> NewMeeting {
    NewMeeting {
        subject: "Project sync".into(),
        match_id: match_id.into(),
        start,
        end: start + Duration::hours(1),
        location: Some("Room 4.12".into()),
        room: Some(addr(ROOM)),
        attendees: Vec::new(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: None,
    }
}

fn tuesdays(count: u32) -> NewMeeting {
    NewMeeting {
        subject: "Jour fixe".into(),
        recurrence: Some(Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![DayOfWeek::Day(Weekday::Tue)],
                first_day_of_week: None,
            },
            range: Range::Numbered { start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(), count },
        }),
        ..meeting(at(1, 8), "series-1")
    }
}

fn open(w: &World, room: &EmailAddress, ids: &[String], minutes: u32) -> Events {
    Events::new(w.orb.stream_events(target(room), ids, ConnectionTimeout::minutes(minutes).unwrap(), None))
}

/// The next item of the stream, failing the test if none comes within 20 s (a deadline, not a timing
/// assertion).
async fn next(events: &mut Events) -> Option<Result<StreamBatch, EwsError>> {
    tokio::time::timeout(StdDuration::from_secs(20), events.rx.recv()).await.expect("the stream went silent")
}

/// Waits until the emulator serves `id` on an open connection.
async fn until_connected(em: &EwsEmulator, id: &str) {
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(20);
    while !em.streaming_subscriptions().iter().any(|s| s.id == id && s.connected) {
        assert!(tokio::time::Instant::now() < deadline, "the connection never opened");
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}

/// Reads notifications until `count` item events have come (keep-alives skipped).
async fn notifications(events: &mut Events, count: usize) -> Vec<Notification> {
    let mut out: Vec<Notification> = Vec::new();
    while out.iter().map(|n| n.events.len()).sum::<usize>() < count {
        let batch = next(events).await.expect("the stream ended").expect("a stream error");
        assert!(batch.failure.is_none(), "{batch:?}");
        assert_ne!(batch.status, Some(ConnectionStatus::Closed), "closed before {count} events");
        out.extend(batch.notifications);
    }
    out
}

#[tokio::test]
async fn room_changes_arrive_in_order_with_chained_watermarks() {
    let w = world(60_000).await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let sub = w.orb.subscribe_streaming(target(&room), None).await.unwrap();
    let affinity = sub.affinity.clone().expect("the emulator sets the affinity cookie");
    let mut events = Events::new(w.orb.stream_events(
        target(&room),
        std::slice::from_ref(&sub.id),
        ConnectionTimeout::minutes(30).unwrap(),
        Some(&affinity),
    ));
    until_connected(&w.em, &sub.id).await;

    // A meeting reaches the room, is moved, then the room's copy is deleted in Outlook.
    let created = w.orb.create_meeting(target(&alice), &meeting(at(1, 8), "m-1")).await.unwrap();
    let copy = w.em.items(ROOM)[0].id.clone();
    let got = notifications(&mut events, 1).await;
    let change = MeetingChange { start: Some(at(1, 10)), end: Some(at(1, 11)), ..Default::default() };
    let fresh = w.orb.get_item(target(&alice), &created).await.unwrap().item_id;
    w.orb.update_meeting(target(&alice), &fresh, &change).await.unwrap();
    let got = [got, notifications(&mut events, 1).await].concat();
    let listed = w.orb.get_item(target(&room), &orb_ews::model::ItemId::new(copy.clone(), "")).await.unwrap();
    w.outlook.delete_item(target(&room), &listed.item_id).await.unwrap();
    let got = [got, notifications(&mut events, 1).await].concat();

    // A series reaches the room; cancelling one occurrence changes the room's master.
    let master = w.orb.create_meeting(target(&alice), &tuesdays(3)).await.unwrap();
    let got = [got, notifications(&mut events, 1).await].concat();
    let room_master = w.em.items(ROOM)[0].id.clone();
    w.orb.delete_item(target(&alice), ItemRef::Occurrence { master, index: 2 }).await.unwrap();
    let got = [got, notifications(&mut events, 1).await].concat();

    let seen: Vec<(EventKind, String)> = got
        .iter()
        .flat_map(|n| n.events.iter())
        .map(|e| (e.kind, e.item_id.as_ref().unwrap().id.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (EventKind::Created, copy.clone()),
            (EventKind::Modified, copy.clone()),
            (EventKind::Deleted, copy),
            (EventKind::Created, room_master.clone()),
            (EventKind::Modified, room_master),
        ]
    );
    // Every event has a watermark; each notification continues from the previous one's last.
    let mut last: Option<String> = None;
    for n in &got {
        assert_eq!(n.subscription_id, sub.id);
        assert!(n.events.iter().all(|e| e.watermark.is_some() && e.timestamp.is_some()));
        if let Some(prev) = &last {
            assert_eq!(n.previous_watermark.as_ref(), Some(prev));
        }
        last = n.last_watermark().map(str::to_owned);
    }
    let marks: BTreeSet<_> = got.iter().flat_map(|n| n.events.iter()).map(|e| e.watermark.clone()).collect();
    assert_eq!(marks.len(), 5, "watermarks are distinct");

    // Affinity: Subscribe asked for it, GetStreamingEvents sent the cookie back with the anchor mailbox.
    let log = w.em.requests();
    let subscribe = log.iter().find(|r| r.operation == "Subscribe").unwrap();
    assert!(subscribe.prefer_server_affinity);
    let stream = log.iter().find(|r| r.operation == "GetStreamingEvents").unwrap();
    assert!(stream.prefer_server_affinity);
    assert_eq!(stream.affinity_cookie.as_deref(), Some(affinity.as_str()));
    assert_eq!(stream.anchor_mailbox.as_deref(), Some(ROOM));
    assert_eq!(stream.response_code, "NoError");

    // Dropping the stream closes the connection: the emulator no longer serves the subscription.
    drop(events);
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(20);
    while w.em.streaming_subscriptions().iter().any(|s| s.connected) {
        assert!(tokio::time::Instant::now() < deadline, "the dropped connection is still served");
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_connection_ends_with_closed_after_its_timeout_and_reopens() {
    // One ConnectionTimeout minute lasts 300 ms here.
    let w = world(300).await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let sub = w.orb.subscribe_streaming(target(&room), None).await.unwrap();
    let ids = vec![sub.id.clone()];
    let mut events = open(&w, &room, &ids, 1);
    let mut batches = Vec::new();
    while let Some(b) = next(&mut events).await {
        batches.push(b.unwrap());
    }
    let (last, before) = batches.split_last().expect("at least the Closed envelope");
    assert!(last.is_closed(), "{last:?}");
    assert!(before.iter().all(|b| b.status == Some(ConnectionStatus::Ok) && b.notifications.is_empty()));

    // Reconnect for the same id: the next change arrives on the new connection.
    let mut events = open(&w, &room, &ids, 30);
    until_connected(&w.em, &sub.id).await;
    w.orb.create_meeting(target(&alice), &meeting(at(2, 8), "m-2")).await.unwrap();
    let got = notifications(&mut events, 1).await;
    assert_eq!(got[0].events[0].kind, EventKind::Created);
}

#[tokio::test]
async fn bad_lost_and_expired_ids_are_named_per_id() {
    let w = world(300).await;
    let room = addr(ROOM);
    let good = w.orb.subscribe_streaming(target(&room), None).await.unwrap().id;
    let gone = w.orb.subscribe_streaming(target(&room), None).await.unwrap().id;
    w.orb.unsubscribe(target(&room), &gone).await.unwrap();
    let ids = vec![good.clone(), "not-a-subscription".to_owned(), gone.clone()];
    let mut events = open(&w, &room, &ids, 1);
    let mut failures = Vec::new();
    let mut closed = false;
    while let Some(b) = next(&mut events).await {
        let b = b.unwrap();
        closed |= b.is_closed();
        failures.extend(b.failure);
    }
    assert!(closed, "the good id keeps the connection until Closed");
    let named: Vec<(&str, Vec<String>)> =
        failures.iter().map(|f| (f.code.as_str(), f.subscription_ids.clone())).collect();
    assert_eq!(
        named,
        [
            ("ErrorInvalidSubscription", vec!["not-a-subscription".to_owned()]),
            ("ErrorSubscriptionNotFound", vec![gone.clone()]),
        ]
    );
    assert!(failures.iter().all(|f| matches!(f.error(), EwsError::SubscriptionLost { .. })));

    // Left without a connection past the expiry (30 minutes on the injected clock): expired. When
    // every id is bad, the answer ends after naming them (no error, no Closed).
    w.clock.advance(Duration::minutes(31));
    let mut events = open(&w, &room, std::slice::from_ref(&good), 1);
    let batch = next(&mut events).await.unwrap().unwrap();
    let failure = batch.failure.expect("a failure");
    assert_eq!((failure.code.as_str(), failure.subscription_ids), ("ErrorExpiredSubscription", vec![good]));
    assert!(next(&mut events).await.is_none());

    // Only the creator may stream a subscription.
    let theirs = w.outlook.subscribe_streaming(target(&room), None).await.unwrap().id;
    let mut events = open(&w, &room, std::slice::from_ref(&theirs), 1);
    let failure = next(&mut events).await.unwrap().unwrap().failure.unwrap();
    assert_eq!(failure.code, "ErrorSubscriptionAccessDenied");
}

#[tokio::test]
async fn a_reset_mid_stream_is_retryable() {
    let w = world(60_000).await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let sub = w.orb.subscribe_streaming(target(&room), None).await.unwrap();
    let ids = vec![sub.id.clone()];
    let mut events = open(&w, &room, &ids, 30);
    until_connected(&w.em, &sub.id).await;
    w.em.reset_streams();
    let err = next(&mut events).await.expect("an error, not an end").unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(next(&mut events).await.is_none(), "the stream ends after the error");

    // The fault plan: a reset after handling cuts the answer after its first envelope.
    w.em.set_fault_plan(FaultPlan::new(
        7,
        vec![FaultRule::new(FaultKind::Reset).operation("GetStreamingEvents").after_handling().next(1)],
    ));
    let mut events = open(&w, &room, &ids, 30);
    until_connected(&w.em, &sub.id).await;
    w.orb.create_meeting(target(&alice), &meeting(at(3, 8), "m-3")).await.unwrap();
    let first = next(&mut events).await.unwrap().unwrap();
    assert_eq!(first.notifications[0].events[0].kind, EventKind::Created);
    let err = next(&mut events).await.expect("an error, not an end").unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let logged = w.em.requests().into_iter().rfind(|r| r.operation == "GetStreamingEvents").unwrap();
    assert_eq!(logged.fault.as_deref(), Some("reset"));

    // A fault before handling (ErrorServerBusy) comes back as the stream's only item.
    w.em.set_fault_plan(FaultPlan::new(
        7,
        vec![
            FaultRule::new(FaultKind::ServerBusy { back_off_ms: 50 }).operation("GetStreamingEvents").next(1),
        ],
    ));
    let mut events = open(&w, &room, &ids, 30);
    let err = next(&mut events).await.unwrap().unwrap_err();
    assert!(matches!(err, EwsError::Busy { back_off: Some(_), .. }), "{err:?}");
    assert!(next(&mut events).await.is_none());
}
