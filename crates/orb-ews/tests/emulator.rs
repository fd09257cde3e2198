//! The client against the EWS emulator over real HTTP: meetings made as the organizer through
//! impersonation reach the room, updates are conditional on the change key, cancellations reach the
//! room, calendar views, SyncFolderItems, push notifications to a local receiver, throttling and
//! impersonation refusals.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use orb_core::{CorrelationId, FixedClock};
use orb_emulators::ews::{self, EwsEmulator, Knobs, RoomSettings, Scope, Served};
use orb_ews::model::{MeetingChange, NewMeeting, PushRequest, ResponseType, SyncChange, Window};
use orb_ews::push::{self, EventKind, SubscriptionStatus};
use orb_ews::{Auth, EwsClient, EwsConfig, EwsError, Target};
use secrecy::SecretString;
use tokio::sync::mpsc;

mod support;
use support::{ALICE, ROOM, addr, at, client, start_clock, target};

const BOB: &str = "bob@contoso.com";
const ROOM5: &str = "room-5@contoso.com";

struct World {
    em: EwsEmulator,
    served: Served,
    clock: FixedClock,
    orb: EwsClient,
    /// A person acting in Outlook (an account that may act for everyone).
    outlook: EwsClient,
}

async fn world() -> World {
    let clock = start_clock();
    let em = EwsEmulator::new(Arc::new(clock.clone()));
    em.add_user(ALICE, "Alice Example");
    em.add_user(BOB, "Bob");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    em.add_room(
        ROOM5,
        "Room 5",
        RoomSettings { delete_subject: false, add_organizer_to_subject: false, ..RoomSettings::default() },
    );
    let scope: BTreeSet<String> = [ALICE, ROOM, ROOM5].iter().map(|s| s.to_string()).collect();
    em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
    em.add_account("outlook", "outlook-password", Scope::All);
    em.add_account("norole", "norole-password", Scope::None);
    em.add_room_list("Building 1 Rooms", "bldg1rooms@contoso.com", &[ROOM, ROOM5]);
    let served = ews::serve(em.clone()).await.unwrap();
    let orb = client(&served, "svc-orb", "orb-password");
    let outlook = client(&served, "outlook", "outlook-password");
    World { em, served, clock, orb, outlook }
}

fn meeting(room: &str, start: DateTime<Utc>, match_id: &str) -> NewMeeting {
    NewMeeting {
        subject: "Project sync".into(),
        match_id: match_id.into(),
        start,
        end: start + Duration::hours(1),
        location: Some("Room".into()),
        room: Some(addr(room)),
        attendees: Vec::new(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: None,
    }
}

fn window(from: DateTime<Utc>, days: i64) -> Window {
    Window { start: from, end: from + Duration::days(days) }
}

#[tokio::test]
async fn a_meeting_made_as_the_organizer_reaches_the_room_and_is_updated_and_cancelled() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let correlation = CorrelationId::generate(at(1, 0));
    let org = Target { mailbox: &alice, correlation };
    let created = w.orb.create_meeting(org, &meeting(ROOM, at(1, 8), "match-1")).await.unwrap();

    // The room's own copy: same UID, subject replaced by the organizer's name, no match id (U9).
    let view = w.orb.calendar_view(target(&room), window(at(1, 0), 1)).await.unwrap();
    assert!(view.includes_last);
    assert_eq!(view.items.len(), 1);
    let listed = &view.items[0];
    assert_eq!(listed.subject.as_deref(), Some("Alice Example"));
    assert_eq!((listed.start, listed.end), (Some(at(1, 8)), Some(at(1, 9))));
    assert_eq!(listed.organizer.as_ref().unwrap().email, None, "FindItem shows the organizer's name only");
    let copy = w.orb.get_item(target(&room), &listed.item_id).await.unwrap();
    let organizers = w.orb.get_item(org, &created).await.unwrap();
    assert_eq!(copy.uid, organizers.uid);
    assert_ne!(copy.item_id.id, organizers.item_id.id);
    assert_eq!(copy.match_id, None);
    assert_eq!(copy.my_response, Some(ResponseType::Accept));
    assert_eq!(organizers.match_id.as_deref(), Some("match-1"));
    assert_eq!(organizers.resources[0].response, Some(ResponseType::Accept));
    assert_eq!(organizers.resources[0].mailbox.email.as_deref(), Some(ROOM));

    // The room's answer changed the organizer's item after the create's answer: its change key is stale.
    let stale = w
        .orb
        .update_meeting(
            org,
            &created,
            &MeetingChange { start: Some(at(1, 10)), end: Some(at(1, 11)), ..Default::default() },
        )
        .await;
    assert!(
        matches!(stale, Err(EwsError::Changed { ref code }) if code == "ErrorIrresolvableConflict"),
        "{stale:?}"
    );
    assert_eq!(w.em.items(ROOM)[0].start, at(1, 8), "a refused update changes nothing");

    // With the change key just read, the update lands and reaches the room.
    let change = MeetingChange { start: Some(at(1, 10)), end: Some(at(1, 11)), ..Default::default() };
    let updated = w.orb.update_meeting(org, &organizers.item_id, &change).await.unwrap();
    assert_ne!(updated.change_key, organizers.item_id.change_key);
    assert_eq!(w.em.items(ROOM)[0].start, at(1, 10));

    // A person changes another field in Outlook; ORB's write with its older change key is refused
    // (NeverOverwrite), though the fields differ.
    let fresh = w.outlook.get_item(org, &updated).await.unwrap();
    let person = MeetingChange { subject: Some("Renamed by Alice".into()), ..Default::default() };
    w.outlook.update_meeting(org, &fresh.item_id, &person).await.unwrap();
    let orb_late = MeetingChange { location: Some("Room 4.12".into()), ..Default::default() };
    let refused = w.orb.update_meeting(org, &fresh.item_id, &orb_late).await;
    assert!(matches!(refused, Err(EwsError::Changed { .. })), "{refused:?}");

    // Cancel: the organizer's item goes, the room's copy stays, cancelled (U17).
    w.orb.cancel_meeting(org, &updated).await.unwrap();
    assert!(matches!(w.orb.get_item(org, &updated).await, Err(EwsError::NotFound { .. })));
    let copy = w.orb.get_item(target(&room), &copy.item_id).await.unwrap();
    assert_eq!(copy.is_cancelled, Some(true));
    assert_eq!(copy.appointment_state, Some(1 | 2 | 4));

    // Every request carried ORB's correlation id or its own, the anchor mailbox, and none asked for a body.
    let log = w.em.requests();
    assert!(w.em.body_requests().is_empty(), "{:?}", w.em.body_requests());
    let first = &log[0];
    assert_eq!(first.operation, "CreateItem");
    assert_eq!(first.client_request_id.as_deref(), Some(correlation.to_string().as_str()));
    assert_eq!(first.anchor_mailbox.as_deref(), Some(ALICE));
    assert_eq!(first.mailbox.as_deref(), Some(ALICE));
    assert_eq!(first.account.as_deref(), Some("svc-orb"));
    drop(w.served);
}

#[tokio::test]
async fn a_conflicting_request_is_declined_and_the_room_keeps_one_booking() {
    let w = world().await;
    let alice = addr(ALICE);
    let first = w.orb.create_meeting(target(&alice), &meeting(ROOM, at(2, 8), "m-1")).await.unwrap();
    let overlapping = NewMeeting {
        start: at(2, 8) + Duration::minutes(30),
        end: at(2, 9) + Duration::minutes(30),
        ..meeting(ROOM, at(2, 8), "m-2")
    };
    let second = w.orb.create_meeting(target(&alice), &overlapping).await.unwrap();
    let items = w.em.items(ROOM);
    assert_eq!(items.len(), 1, "the declined request left no copy");
    let got = w.orb.get_items(target(&alice), &[first.clone(), second.clone()]).await.unwrap();
    let responses: Vec<_> = got.iter().map(|r| r.as_ref().unwrap().resources[0].response).collect();
    assert_eq!(responses, [Some(ResponseType::Accept), Some(ResponseType::Decline)]);
    // Room 5 keeps subjects (DeleteSubject off).
    w.orb.create_meeting(target(&alice), &meeting(ROOM5, at(2, 8), "m-3")).await.unwrap();
    assert_eq!(w.em.items(ROOM5)[0].subject, "Project sync");
}

#[tokio::test]
async fn calendar_views_keep_to_their_window_and_say_when_they_are_cut() {
    let w = world().await;
    let alice = addr(ALICE);
    for (day, id) in [(3, "a"), (4, "b"), (5, "c"), (9, "d")] {
        w.orb.create_meeting(target(&alice), &meeting(ROOM, at(day, 8), id)).await.unwrap();
    }
    let room = addr(ROOM);
    let view = w.orb.calendar_view(target(&room), window(at(3, 9), 3)).await.unwrap();
    // Day 3 ends at 9:00 = the window's start (excluded); 4 and 5 in; 9 out.
    let starts: Vec<_> = view.items.iter().map(|i| i.start.unwrap()).collect();
    assert_eq!(starts, [at(4, 8), at(5, 8)]);
    let narrow = EwsClient::new(EwsConfig {
        max_entries: 2,
        allow_plain_http: true,
        ..EwsConfig::new(
            w.served.ews_url().parse().unwrap(),
            Auth::Basic { username: "svc-orb".into(), password: SecretString::from("orb-password") },
        )
    })
    .unwrap();
    let cut = narrow.calendar_view(target(&room), window(at(1, 0), 14)).await.unwrap();
    assert_eq!(cut.items.len(), 2);
    assert!(!cut.includes_last);
    // Bad windows are refused before anything is sent.
    let before = w.em.requests().len();
    let backwards = Window { start: at(5, 0), end: at(4, 0) };
    assert!(matches!(w.orb.calendar_view(target(&room), backwards).await, Err(EwsError::Invalid { .. })));
    assert!(matches!(
        w.orb.calendar_view(target(&room), window(at(1, 0), 800)).await,
        Err(EwsError::Invalid { .. })
    ));
    assert_eq!(w.em.requests().len(), before);
}

#[tokio::test]
async fn sync_folder_items_reports_creates_updates_and_deletes_once() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let a = w.orb.create_meeting(target(&alice), &meeting(ROOM, at(6, 8), "a")).await.unwrap();
    w.orb.create_meeting(target(&alice), &meeting(ROOM, at(6, 10), "b")).await.unwrap();
    // First sync, one change per page.
    let mut state = None;
    let mut creates = 0;
    loop {
        let page = w.orb.sync_calendar(target(&room), state.as_deref(), 1).await.unwrap();
        assert!(page.changes.len() <= 1);
        creates += page.changes.iter().filter(|c| matches!(c, SyncChange::Create(_))).count();
        state = Some(page.sync_state);
        if page.includes_last {
            break;
        }
    }
    assert_eq!(creates, 2);
    let nothing = w.orb.sync_calendar(target(&room), state.as_deref(), 512).await.unwrap();
    assert!(nothing.changes.is_empty() && nothing.includes_last);
    // Retime one, cancel it: one Update (coalesced).
    let fresh = w.orb.get_item(target(&alice), &a).await.unwrap();
    let moved = w
        .orb
        .update_meeting(
            target(&alice),
            &fresh.item_id,
            &MeetingChange { start: Some(at(6, 12)), end: Some(at(6, 13)), ..Default::default() },
        )
        .await
        .unwrap();
    w.orb.cancel_meeting(target(&alice), &moved).await.unwrap();
    let page = w.orb.sync_calendar(target(&room), state.as_deref(), 512).await.unwrap();
    assert_eq!(page.changes.len(), 1, "{:?}", page.changes);
    assert!(
        matches!(&page.changes[0], SyncChange::Update(i) if i.item_type == Some(orb_ews::model::CalendarItemType::Single))
    );
    // The organizer's calendar shows a Delete for the cancelled meeting.
    let org = w.orb.sync_calendar(target(&alice), None, 512).await.unwrap();
    assert_eq!(org.changes.len(), 1, "created and deleted since: only the live one");
    let page = w.orb.sync_calendar(target(&alice), Some(&org.sync_state), 512).await.unwrap();
    assert!(page.changes.is_empty());
    // A garbage state, or another mailbox's, is refused.
    for bad in ["garbage", org.sync_state.as_str()] {
        let r = w.orb.sync_calendar(target(&room), Some(bad), 10).await;
        assert!(matches!(r, Err(EwsError::SyncStateInvalid { .. })), "{bad}: {r:?}");
    }
}

/// A local push receiver: records every body, answers as told.
#[derive(Clone)]
struct Receiver {
    tx: mpsc::UnboundedSender<String>,
    answer: Arc<Mutex<(u16, SubscriptionStatus)>>,
}

async fn receiver() -> (
    String,
    mpsc::UnboundedReceiver<String>,
    Arc<Mutex<(u16, SubscriptionStatus)>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let answer = Arc::new(Mutex::new((200, SubscriptionStatus::Ok)));
    let state = Receiver { tx, answer: answer.clone() };
    let app = axum::Router::new()
        .route(
            "/hooks/ews/t1",
            axum::routing::post(
                |axum::extract::State(r): axum::extract::State<Receiver>, body: String| async move {
                    let _ = r.tx.send(body);
                    let (status, answer) = *r.answer.lock().unwrap();
                    (axum::http::StatusCode::from_u16(status).unwrap(), push::notification_result(answer))
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/ews/t1", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx, answer, task)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> Vec<push::Notification> {
    let body =
        tokio::time::timeout(StdDuration::from_secs(20), rx.recv()).await.expect("a notification").unwrap();
    push::parse_notification(&body).unwrap()
}

async fn wait_for_deliveries(em: &EwsEmulator, n: usize) {
    for _ in 0..400 {
        if em.deliveries().len() >= n {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    panic!("{} deliveries, expected {n}", em.deliveries().len());
}

#[tokio::test]
async fn push_notifications_reach_a_local_receiver_and_failures_are_retried_until_the_subscription_dies() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let (url, mut rx, answer, _task) = receiver().await;
    let sub = w
        .orb
        .subscribe_push(target(&room), &PushRequest { url, status_frequency_minutes: 1, watermark: None })
        .await
        .unwrap();
    w.orb.create_meeting(target(&alice), &meeting(ROOM, at(7, 8), "p")).await.unwrap();
    let n = next(&mut rx).await;
    assert_eq!(n[0].subscription_id, sub.id);
    assert_eq!(n[0].previous_watermark, sub.watermark);
    assert_eq!(n[0].events[0].kind, EventKind::Created);
    let copy_id = w.em.items(ROOM)[0].id.clone();
    assert_eq!(n[0].events[0].item_id.as_ref().unwrap().id, copy_id);
    wait_for_deliveries(&w.em, 1).await;
    assert_eq!(w.em.deliveries()[0].outcome, "ok");

    // Idle for StatusFrequency: a status ping, carrying the last watermark.
    w.clock.advance(Duration::minutes(1));
    w.em.tick().await;
    let ping = next(&mut rx).await;
    assert_eq!(ping[0].events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Status]);
    assert_eq!(ping[0].events[0].watermark, n[0].last_watermark().map(str::to_owned));
    wait_for_deliveries(&w.em, 2).await;

    // The receiver fails: retried after 30 s, then 60 s; the next (120 s) would exceed StatusFrequency
    // (1 min), so the subscription silently disappears.
    *answer.lock().unwrap() = (500, SubscriptionStatus::Ok);
    let before = w.em.deliveries().len();
    let fresh = w
        .orb
        .get_item(
            target(&alice),
            &w.orb.calendar_view(target(&alice), window(at(7, 0), 1)).await.unwrap().items[0].item_id,
        )
        .await
        .unwrap();
    w.orb
        .update_meeting(
            target(&alice),
            &fresh.item_id,
            &MeetingChange { start: Some(at(7, 9)), end: Some(at(7, 10)), ..Default::default() },
        )
        .await
        .unwrap();
    wait_for_deliveries(&w.em, before + 1).await;
    assert_eq!(w.em.subscriptions()[0].failures, 1);
    w.em.tick().await;
    assert_eq!(w.em.deliveries().len(), before + 1, "nothing is retried before its time");
    w.clock.advance(Duration::seconds(30));
    w.em.tick().await;
    assert_eq!(w.em.subscriptions()[0].failures, 2);
    w.clock.advance(Duration::seconds(60));
    w.em.tick().await;
    assert!(w.em.subscriptions().is_empty(), "{:?}", w.em.subscriptions());
    let outcomes: Vec<_> = w.em.deliveries()[before..].iter().map(|d| d.outcome.clone()).collect();
    assert_eq!(outcomes, ["failed", "failed", "failed"]);
}

#[tokio::test]
async fn unsubscribe_answers_and_the_operation_end_subscriptions() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let (url, mut rx, answer, _task) = receiver().await;
    let req = PushRequest { url: url.clone(), status_frequency_minutes: 5, watermark: None };
    w.orb.subscribe_push(target(&room), &req).await.unwrap();
    *answer.lock().unwrap() = (200, SubscriptionStatus::Unsubscribe);
    w.orb.create_meeting(target(&alice), &meeting(ROOM, at(8, 8), "u")).await.unwrap();
    next(&mut rx).await;
    wait_for_deliveries(&w.em, 1).await;
    assert!(w.em.subscriptions().is_empty());
    // The Unsubscribe operation; a second time it is gone.
    let sub = w.orb.subscribe_push(target(&room), &req).await.unwrap();
    w.orb.unsubscribe(target(&room), &sub.id).await.unwrap();
    assert!(matches!(
        w.orb.unsubscribe(target(&room), &sub.id).await,
        Err(EwsError::SubscriptionLost { .. })
    ));
    // A watermark from another mailbox is refused.
    let bad = PushRequest { watermark: Some("bm9wZXwx".into()), ..req };
    assert!(matches!(
        w.orb.subscribe_push(target(&room), &bad).await,
        Err(EwsError::SubscriptionLost { .. })
    ));
}

#[tokio::test]
async fn server_busy_back_offs_are_waited_out_or_handed_back() {
    let w = world().await;
    let room = addr(ROOM);
    w.em.set_knobs(Knobs { busy_count: 1, back_off_ms: 20, ..Knobs::default() });
    w.orb.calendar_view(target(&room), window(at(1, 0), 1)).await.unwrap();
    let codes: Vec<_> = w.em.requests().iter().map(|r| r.response_code.clone()).collect();
    assert_eq!(codes, ["ErrorServerBusy", "NoError"]);

    w.em.set_knobs(Knobs { busy_count: 1, back_off_ms: 120_000, ..Knobs::default() });
    let e = w.orb.calendar_view(target(&room), window(at(1, 0), 1)).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(StdDuration::from_secs(120)));
    assert_eq!(w.em.requests().len(), 3, "a long back-off is not waited out in the client");

    // A 503's Retry-After is honoured like a back-off: handed back when longer than the client waits.
    let auth = Auth::Basic { username: "svc-orb".into(), password: SecretString::from("orb-password") };
    let base = EwsConfig::new(w.served.ews_url().parse().unwrap(), auth);
    let impatient = EwsClient::new(EwsConfig {
        allow_plain_http: true,
        max_inline_back_off: StdDuration::from_secs(1),
        ..base
    })
    .unwrap();
    w.em.set_knobs(Knobs { unavailable_count: 1, retry_after_secs: Some(7), ..Knobs::default() });
    let e = impatient.calendar_view(target(&room), window(at(1, 0), 1)).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(StdDuration::from_secs(7)));
    // And waited out when short.
    w.em.set_knobs(Knobs { unavailable_count: 1, retry_after_secs: Some(1), ..Knobs::default() });
    impatient.calendar_view(target(&room), window(at(1, 0), 1)).await.unwrap();
    w.em.set_knobs(Knobs { unavailable_count: 1, ..Knobs::default() });
    let e = w.orb.calendar_view(target(&room), window(at(1, 0), 1)).await.unwrap_err();
    assert!(matches!(e, EwsError::Transient { status: Some(503), .. }), "{e:?}");
}

#[tokio::test]
async fn impersonation_outside_the_scope_is_refused_clearly_and_changes_nothing() {
    let w = world().await;
    let bob = addr(BOB);
    let e = w.orb.create_meeting(target(&bob), &meeting(ROOM, at(1, 8), "x")).await.unwrap_err();
    let EwsError::ImpersonationDenied { code, .. } = &e else { panic!("{e:?}") };
    assert_eq!(code, "ErrorImpersonateUserDenied");
    let text = e.to_string();
    assert!(
        text.contains(BOB) && text.contains("ApplicationImpersonation") && text.contains("management scope"),
        "{text}"
    );
    assert!(w.em.items(BOB).is_empty() && w.em.items(ROOM).is_empty());

    let ghost = addr("ghost@contoso.com");
    let e = w.orb.calendar_view(target(&ghost), window(at(1, 0), 1)).await.unwrap_err();
    assert!(
        matches!(&e, EwsError::ImpersonationDenied { code, .. } if code == "ErrorNonExistentMailbox"),
        "{e:?}"
    );

    let norole = client(&w.served, "norole", "norole-password");
    let e = norole.calendar_view(target(&addr(ROOM)), window(at(1, 0), 1)).await.unwrap_err();
    assert!(
        matches!(&e, EwsError::ImpersonationDenied { code, .. } if code == "ErrorImpersonationDenied"),
        "{e:?}"
    );

    let wrong = client(&w.served, "svc-orb", "wrong");
    let e = wrong.calendar_view(target(&addr(ROOM)), window(at(1, 0), 1)).await.unwrap_err();
    assert_eq!(e, EwsError::Unauthorized { status: 401 });
    assert!(!e.to_string().contains("wrong"));
}

#[tokio::test]
async fn rooms_are_discovered_and_bearer_tokens_work() {
    let w = world().await;
    w.em.add_bearer_token("token-1", "svc-orb");
    let auth = Auth::Bearer(SecretString::from("token-1"));
    let bearer = EwsClient::new(EwsConfig {
        allow_plain_http: true,
        ..EwsConfig::new(w.served.ews_url().parse().unwrap(), auth)
    })
    .unwrap();
    let room = addr(ROOM);
    let lists = bearer.room_lists(target(&room)).await.unwrap();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].email, "bldg1rooms@contoso.com");
    let rooms = bearer.rooms(target(&room), &addr(&lists[0].email)).await.unwrap();
    assert_eq!(rooms.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(), [ROOM, ROOM5]);
    assert_eq!(rooms[0].name, "Room 4.12");
    let e = bearer.rooms(target(&room), &addr("nolist@contoso.com")).await.unwrap_err();
    assert!(matches!(&e, EwsError::Rejected { code, .. } if code == "ErrorNameResolutionNoResults"));
}

#[tokio::test]
async fn invalid_input_is_refused_before_anything_is_sent() {
    let w = world().await;
    let alice = addr(ALICE);
    let backwards = NewMeeting { end: at(1, 7), ..meeting(ROOM, at(1, 8), "m") };
    assert!(matches!(w.orb.create_meeting(target(&alice), &backwards).await, Err(EwsError::Invalid { .. })));
    let no_match = meeting(ROOM, at(1, 8), " ");
    assert!(matches!(w.orb.create_meeting(target(&alice), &no_match).await, Err(EwsError::Invalid { .. })));
    let id = orb_ews::model::ItemId { id: "x".into(), change_key: None };
    let change = MeetingChange { subject: Some("s".into()), ..Default::default() };
    assert!(matches!(
        w.orb.update_meeting(target(&alice), &id, &change).await,
        Err(EwsError::Invalid { .. })
    ));
    let id = orb_ews::model::ItemId::new("x", "y");
    assert!(matches!(
        w.orb.update_meeting(target(&alice), &id, &MeetingChange::default()).await,
        Err(EwsError::Invalid { .. })
    ));
    let plain = PushRequest { url: "not a url".into(), status_frequency_minutes: 5, watermark: None };
    assert!(matches!(w.orb.subscribe_push(target(&alice), &plain).await, Err(EwsError::Invalid { .. })));
    assert!(w.em.requests().is_empty());
}
