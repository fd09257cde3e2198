//! Series through the client against the EWS emulator over real HTTP: a weekly series made as the
//! organizer reaches the room as its own series copy, CalendarView expands it within the window,
//! occurrences are read by index and by id, their master by an occurrence's id, changing one makes an
//! exception, deleting one adds a deleted occurrence (in the room's copy too), a conflicting series is
//! declined as a whole, and stale change keys are refused.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc, Weekday};
use orb_emulators::ews::{self, EwsEmulator, RoomSettings, Scope, Served};
use orb_ews::model::{
    CalendarItemType, ItemId, MeetingChange, NewMeeting, PushRequest, ResponseType, SyncChange, Window,
};
use orb_ews::push::{self, EventKind, SubscriptionStatus};
use orb_ews::series::{DayOfWeek, ItemRef, Pattern, Range, Recurrence};
use orb_ews::{Auth, EwsClient, EwsConfig, EwsError};
use secrecy::SecretString;

mod support;
use support::{ALICE, ROOM, addr, at, start_clock, target};

struct World {
    em: EwsEmulator,
    _served: Served,
    orb: EwsClient,
}

async fn world() -> World {
    let clock = start_clock();
    let em = EwsEmulator::new(Arc::new(clock));
    em.add_user(ALICE, "Alice Example");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    let scope: BTreeSet<String> = [ALICE, ROOM].iter().map(|s| s.to_string()).collect();
    em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
    let served = ews::serve(em.clone()).await.unwrap();
    let auth =
        Auth::Basic { username: "svc-orb".into(), password: SecretString::from("orb-password".to_owned()) };
    let config =
        EwsConfig { allow_plain_http: true, ..EwsConfig::new(served.ews_url().parse().unwrap(), auth) };
    World { em, _served: served, orb: EwsClient::new(config).unwrap() }
}

/// Tuesdays 10:00–11:00 Amsterdam time, `count` times from 1 September 2026.
fn tuesdays(count: u32, match_id: &str) -> NewMeeting {
    NewMeeting {
        subject: "Jour fixe".into(),
        match_id: match_id.into(),
        start: at(1, 8),
        end: at(1, 9),
        location: Some("Room 4.12".into()),
        room: Some(addr(ROOM)),
        attendees: Vec::new(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: Some(Recurrence {
            pattern: Pattern::Weekly {
                interval: 1,
                days: vec![DayOfWeek::Day(Weekday::Tue)],
                first_day_of_week: None,
            },
            range: Range::Numbered { start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(), count },
        }),
    }
}

fn september() -> Window {
    Window { start: at(1, 0), end: at(30, 0) }
}

fn starts(items: &[orb_ews::model::CalendarItem]) -> Vec<DateTime<Utc>> {
    items.iter().map(|i| i.start.unwrap()).collect()
}

#[tokio::test]
async fn a_series_reaches_the_room_and_its_occurrences_change_one_by_one() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let org = || target(&alice);
    let master = w.orb.create_meeting(org(), &tuesdays(4, "series-1")).await.unwrap();

    // CalendarView expands the series within the window: occurrences only, no master.
    let view = w.orb.calendar_view(org(), september()).await.unwrap();
    assert_eq!(starts(&view.items), [at(1, 8), at(8, 8), at(15, 8), at(22, 8)]);
    assert!(view.items.iter().all(|i| i.item_type == Some(CalendarItemType::Occurrence)));
    let narrow = w.orb.calendar_view(org(), Window { start: at(8, 0), end: at(16, 0) }).await.unwrap();
    assert_eq!(starts(&narrow.items), [at(8, 8), at(15, 8)], "only what the window holds");

    // The master, read by id: its recurrence as sent, first and last occurrence.
    let m = w.orb.get_item(org(), &master).await.unwrap();
    assert_eq!(m.item_type, Some(CalendarItemType::RecurringMaster));
    assert_eq!(m.recurrence, tuesdays(4, "x").recurrence);
    assert_eq!(m.first_occurrence.as_ref().unwrap().start, at(1, 8));
    assert_eq!(m.last_occurrence.as_ref().unwrap().start, at(22, 8));
    assert_eq!(m.start_time_zone.as_deref(), Some("W. Europe Standard Time"));
    assert_eq!(m.resources[0].response, Some(ResponseType::Accept), "the room accepted the series");

    // The room holds its own series copy (same UID, its own ids), expanded the same way.
    let room_view = w.orb.calendar_view(target(&room), september()).await.unwrap();
    assert_eq!(starts(&room_view.items), [at(1, 8), at(8, 8), at(15, 8), at(22, 8)]);
    let room_occ = w.orb.get_item(target(&room), &room_view.items[1].item_id).await.unwrap();
    assert_eq!(room_occ.uid, m.uid, "occurrences share the series' UID");
    assert_eq!(room_occ.original_start, Some(at(8, 8)));
    assert_ne!(room_occ.item_id.id, view.items[1].item_id.id);
    let room_master =
        w.orb.get_item(target(&room), ItemRef::MasterOf(room_occ.item_id.clone())).await.unwrap();
    assert_eq!(room_master.item_type, Some(CalendarItemType::RecurringMaster));
    assert_eq!(room_master.match_id, None, "the match id stays on the organizer's item (U9)");

    // Occurrences by index (1-based) and the master of an occurrence.
    let second =
        w.orb.get_item(org(), ItemRef::Occurrence { master: master.clone(), index: 2 }).await.unwrap();
    assert_eq!((second.item_type, second.start), (Some(CalendarItemType::Occurrence), Some(at(8, 8))));
    assert_eq!(second.item_id, view.items[1].item_id, "the index names the occurrence the view listed");
    let back = w.orb.get_item(org(), ItemRef::MasterOf(second.item_id.clone())).await.unwrap();
    assert_eq!(back.item_id.id, master.id);
    let out = w.orb.get_item(org(), ItemRef::Occurrence { master: master.clone(), index: 5 }).await;
    assert!(
        matches!(&out, Err(EwsError::Rejected { code, .. }) if code == "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange"),
        "{out:?}"
    );
    let not_occ = w.orb.get_item(org(), ItemRef::MasterOf(master.clone())).await;
    assert!(
        matches!(&not_occ, Err(EwsError::Rejected { code, .. }) if code == "ErrorCalendarCannotUseIdForOccurrenceId"),
        "{not_occ:?}"
    );

    // The room's sync state before the series changes.
    let before = w.orb.sync_calendar(target(&room), None, 100).await.unwrap();

    // Moving the second occurrence an hour later makes it an exception, in the room's copy too.
    let moved = MeetingChange { start: Some(at(8, 9)), end: Some(at(8, 10)), ..Default::default() };
    let stale = w
        .orb
        .update_meeting(
            org(),
            ItemId { change_key: Some("DwAAAB-stale".into()), ..second.item_id.clone() },
            &moved,
        )
        .await;
    assert!(matches!(stale, Err(EwsError::Changed { .. })), "{stale:?}");
    let ex = w.orb.update_meeting(org(), &second.item_id, &moved).await.unwrap();
    assert_eq!(ex.id, second.item_id.id, "an exception keeps its occurrence's id");
    assert_ne!(ex.change_key, second.item_id.change_key, "and gets a new change key");
    let m = w.orb.get_item(org(), &master).await.unwrap();
    assert_eq!(m.modified_occurrences.len(), 1);
    assert_eq!(m.modified_occurrences[0].original_start, at(8, 8));
    assert_eq!(m.modified_occurrences[0].start, at(8, 9));
    let room_view = w.orb.calendar_view(target(&room), september()).await.unwrap();
    assert_eq!(starts(&room_view.items), [at(1, 8), at(8, 9), at(15, 8), at(22, 8)]);
    assert_eq!(room_view.items[1].item_type, Some(CalendarItemType::Exception));
    // Crossing a neighbour is refused and changes nothing.
    let across = MeetingChange { start: Some(at(15, 9)), end: Some(at(15, 10)), ..Default::default() };
    let third =
        w.orb.get_item(org(), ItemRef::Occurrence { master: m.item_id.clone(), index: 3 }).await.unwrap();
    let refused = w
        .orb
        .update_meeting(org(), ItemRef::Occurrence { master: m.item_id.clone(), index: 2 }, &across)
        .await;
    assert!(
        matches!(&refused, Err(EwsError::Rejected { code, .. }) if code == "ErrorOccurrenceCrossingBoundary"),
        "{refused:?}"
    );

    // Deleting the third occurrence (with cancellations) adds it to DeletedOccurrences, in the room too.
    w.orb.delete_item(org(), ItemRef::Occurrence { master: m.item_id.clone(), index: 3 }).await.unwrap();
    let m = w.orb.get_item(org(), &master).await.unwrap();
    assert_eq!(m.deleted_occurrences, [at(15, 8)]);
    let room_view = w.orb.calendar_view(target(&room), september()).await.unwrap();
    assert_eq!(starts(&room_view.items), [at(1, 8), at(8, 9), at(22, 8)]);
    let room_master =
        w.orb.get_item(target(&room), ItemRef::MasterOf(room_view.items[0].item_id.clone())).await.unwrap();
    assert_eq!(room_master.deleted_occurrences, [at(15, 8)]);
    let gone = w.orb.get_item(org(), &third.item_id).await;
    assert!(matches!(gone, Err(EwsError::NotFound { .. })), "{gone:?}");
    let deleted = w.orb.get_item(org(), ItemRef::Occurrence { master: m.item_id.clone(), index: 3 }).await;
    assert!(
        matches!(&deleted, Err(EwsError::Rejected { code, .. }) if code == "ErrorCalendarOccurrenceIsDeletedFromRecurrence"),
        "{deleted:?}"
    );

    // The room's change log reports the series' changes as updates of its master (U12).
    let after = w.orb.sync_calendar(target(&room), Some(&before.sync_state), 100).await.unwrap();
    assert_eq!(after.changes.len(), 1, "{:?}", after.changes);
    let SyncChange::Update(changed) = &after.changes[0] else { panic!("{:?}", after.changes) };
    assert_eq!(changed.item_type, Some(CalendarItemType::RecurringMaster));

    // Moving the whole series an hour later resets its exceptions and deleted occurrences.
    let later = MeetingChange { start: Some(at(1, 9)), end: Some(at(1, 10)), ..Default::default() };
    let moved_series = w.orb.update_meeting(org(), &m.item_id, &later).await.unwrap();
    let m = w.orb.get_item(org(), &moved_series).await.unwrap();
    assert!(m.modified_occurrences.is_empty() && m.deleted_occurrences.is_empty(), "{m:?}");
    let room_view = w.orb.calendar_view(target(&room), september()).await.unwrap();
    assert_eq!(starts(&room_view.items), [at(1, 9), at(8, 9), at(15, 9), at(22, 9)]);

    // Cancelling the series (the master's id) cancels the room's copy.
    w.orb.cancel_meeting(org(), &m.item_id).await.unwrap();
    let copies = w.em.items(ROOM);
    assert_eq!(copies.len(), 1);
    assert!(copies[0].is_cancelled);
    assert!(w.em.body_requests().is_empty());
}

#[tokio::test]
async fn a_series_conflicting_once_is_declined_and_a_bad_one_is_refused() {
    let w = world().await;
    let alice = addr(ALICE);
    // A single meeting on the third Tuesday holds the room.
    let single = NewMeeting { recurrence: None, start: at(15, 8), end: at(15, 9), ..tuesdays(1, "single") };
    w.orb.create_meeting(target(&alice), &single).await.unwrap();
    let series = w.orb.create_meeting(target(&alice), &tuesdays(4, "series-2")).await.unwrap();
    let m = w.orb.get_item(target(&alice), &series).await.unwrap();
    assert_eq!(m.resources[0].response, Some(ResponseType::Decline), "one conflict declines the series");
    let room_items = w.em.items(ROOM);
    assert_eq!(room_items.len(), 1, "no copy of the declined series: {room_items:?}");

    // What the client refuses before sending, and what the emulator refuses.
    let zero = NewMeeting {
        recurrence: Some(Recurrence {
            pattern: Pattern::Daily { interval: 0 },
            range: Range::NoEnd { start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap() },
        }),
        ..tuesdays(1, "bad")
    };
    assert!(matches!(w.orb.create_meeting(target(&alice), &zero).await, Err(EwsError::Invalid { .. })));
    let no_zone = NewMeeting { time_zone: None, ..tuesdays(2, "bad") };
    let e = w.orb.create_meeting(target(&alice), &no_zone).await.unwrap_err();
    assert!(e.to_string().contains("time zone"), "{e}");
    let before = w.em.requests().len();
    let _ = w.orb.create_meeting(target(&alice), &zero).await;
    assert_eq!(w.em.requests().len(), before, "nothing was sent");
    // A series far beyond the booking window is declined too.
    // 56 weeks on: Tuesday 28 September 2027.
    let mut late = NewMeeting {
        start: at(1, 8) + Duration::days(392),
        end: at(1, 9) + Duration::days(392),
        ..tuesdays(2, "late")
    };
    if let Some(rec) = late.recurrence.as_mut() {
        rec.range = Range::Numbered { start: NaiveDate::from_ymd_opt(2027, 9, 28).unwrap(), count: 2 };
    }
    let late = w.orb.create_meeting(target(&alice), &late).await.unwrap();
    let late = w.orb.get_item(target(&alice), &late).await.unwrap();
    assert_eq!(late.resources[0].response, Some(ResponseType::Decline));
}

/// A local push receiver: every body it gets, answered `OK`.
async fn receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app = axum::Router::new().route(
        "/hooks/ews/t1",
        axum::routing::post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                push::notification_result(SubscriptionStatus::Ok)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/ews/t1", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx, task)
}

/// The events of the next notification(s), until `kind` about `item` arrives (20 s at most).
async fn until_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, kind: EventKind, item: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body =
            tokio::time::timeout_at(deadline, rx.recv()).await.expect("a notification in time").unwrap();
        let found = push::parse_notification(&body).unwrap().iter().any(|n| {
            n.events.iter().any(|e| e.kind == kind && e.item_id.as_ref().is_some_and(|i| i.id == item))
        });
        if found {
            return;
        }
    }
}

#[tokio::test]
async fn series_changes_are_pushed_as_changes_of_the_rooms_master() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let (url, mut rx, _task) = receiver().await;
    w.orb
        .subscribe_push(target(&room), &PushRequest { url, status_frequency_minutes: 5, watermark: None })
        .await
        .unwrap();
    let master = w.orb.create_meeting(target(&alice), &tuesdays(3, "pushed")).await.unwrap();
    let copy = w.em.items(ROOM).into_iter().next().unwrap();
    until_event(&mut rx, EventKind::Created, &copy.id).await;
    // Cancelling one occurrence changes the room's series copy: a ModifiedEvent on its master.
    w.orb.delete_item(target(&alice), ItemRef::Occurrence { master, index: 2 }).await.unwrap();
    until_event(&mut rx, EventKind::Modified, &copy.id).await;
    assert_eq!(w.em.items(ROOM)[0].deleted_occurrences.len(), 1);
}

#[tokio::test]
async fn a_master_off_its_pattern_starts_at_its_first_occurrence() {
    let w = world().await;
    let alice = addr(ALICE);
    // Second Tuesday of each month, asked for from Tuesday 1 September: the first is 8 September.
    let mut second_tuesdays = tuesdays(1, "monthly");
    second_tuesdays.recurrence = Some(Recurrence {
        pattern: Pattern::RelativeMonthly {
            interval: 1,
            day: DayOfWeek::Day(Weekday::Tue),
            index: orb_core::recurrence::WeekIndex::Second,
        },
        range: Range::Numbered { start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(), count: 3 },
    });
    let id = w.orb.create_meeting(target(&alice), &second_tuesdays).await.unwrap();
    let m = w.orb.get_item(target(&alice), &id).await.unwrap();
    assert_eq!((m.start, m.end), (Some(at(8, 8)), Some(at(8, 9))));
    let view = w
        .orb
        .calendar_view(target(&alice), Window { start: at(1, 0), end: at(1, 0) + Duration::days(92) })
        .await
        .unwrap();
    let days: Vec<String> =
        view.items.iter().map(|i| i.start.unwrap().format("%m-%d %H:%M").to_string()).collect();
    // 10:00 Amsterdam time: 08:00Z in summer, 09:00Z after the October change.
    assert_eq!(days, ["09-08 08:00", "10-13 08:00", "11-10 09:00"]);
}
