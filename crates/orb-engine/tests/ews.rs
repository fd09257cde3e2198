//! End to end for a tenant on Exchange Server on-premises: the same engine (planner, record, executor,
//! sweep, TOPdesk side) reaching Exchange through EWS instead of Graph, against the EWS and TOPdesk
//! emulators over real HTTP, on SQLite and PostgreSQL. Every world checks on drop that no EWS request ORB
//! made asked for a body.

mod support;

use std::collections::BTreeSet;

use chrono::Duration;
use chrono::Weekday;
use orb_core::{Clock as _, Policy, Side, SyncStatus};
use orb_emulators::ews::{Knobs, PushKnobs, RoomSettings};
use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_engine::settings::EwsAuth;
use orb_ews::model::{CalendarItem, ResponseType};
use orb_ews::model::{MeetingChange, NewMeeting};
use orb_ews::push::{Event as PushEvent, EventKind, Notification, notification_document};
use orb_ews::series::{DayOfWeek, Pattern, Range, Recurrence};
use orb_store::JobStatus;
use orb_topdesk::wire::ReservationStatus;
use support::ews_world::{ALICE, EWS_ROOM, EWS_ROOM5, EwsWorld, MARK, SAM};
use support::mail;
use support::world::at;
use support::{TestStore, eventually};

async fn on_every_store<F, Fut>(scenario: F)
where
    F: Fn(EwsWorld) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for sut in TestStore::every().await {
        eprintln!("-- EWS tenant on {}", sut.name);
        scenario(EwsWorld::start(sut, Policy::default()).await).await;
    }
}

fn has_room(item: &CalendarItem) -> bool {
    item.resources
        .iter()
        .any(|r| r.mailbox.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(EWS_ROOM)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_booked_in_outlook_is_pushed_to_topdesk_and_its_retime_and_cancel_follow() {
    on_every_store(booked_retimed_cancelled).await;
}

/// The same scenario with ORB signing in by NTLM (Windows authentication), once (on the first store):
/// every request of ORB's service account ran on an NTLM-authenticated connection, and connections were
/// reused rather than authenticated per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_ntlm_a_meeting_booked_in_outlook_is_pushed_to_topdesk_and_follows() {
    let sut = TestStore::every().await.into_iter().next().expect("a store");
    let w = EwsWorld::start_with_auth(sut, Policy::default(), EwsAuth::Ntlm).await;
    let em = w.em.clone();
    booked_retimed_cancelled(w).await;
    let orb: Vec<_> = em.requests().into_iter().filter(|r| r.account.as_deref() == Some("svc-orb")).collect();
    assert!(orb.len() > 4, "ORB worked: {}", orb.len());
    let how = |step: &str| orb.iter().filter(|r| r.auth.as_deref() == Some(step)).count();
    assert_eq!(how("ntlm-authenticate") + how("ntlm-connection"), orb.len(), "all over NTLM");
    assert!(
        how("ntlm-authenticate") * 2 < orb.len(),
        "connections reused: {} handshakes, {} requests",
        how("ntlm-authenticate"),
        orb.len()
    );
}

async fn booked_retimed_cancelled(w: EwsWorld) {
    let id = w.book_in_outlook("Budget review", at("2026-09-03T08:00:00Z"), at("2026-09-03T09:00:00Z")).await;
    // The room accepted; Exchange pushes the room's new item to ORB (no sweep).
    let reservation = w.live_reservation().await;
    w.settled().await;
    assert_eq!(reservation.planned_start_date, Some(at("2026-09-03T08:00:00Z")));
    assert_eq!(reservation.planned_end_date, Some(at("2026-09-03T09:00:00Z")));
    assert_eq!(reservation.requester.as_ref().and_then(|p| p.id), Some(w.alice), "Alice reserved it");
    let record = w.bookings().await.pop().expect("a record");
    assert_eq!(record.processor_created, Side::Exchange);
    assert_eq!(record.organizer.as_str(), ALICE);
    // The room's copy stands for the meeting (its subject is the meeting's): the organizer's item is not
    // read, as for a Graph tenant.
    assert!(record.exchange.room_event_id.is_some(), "the room's copy");
    assert!(record.exchange.ical_uid.is_some(), "the UID read with GetItem");
    let heard = w.subscription().await;
    assert!(heard.watermark.is_some(), "the subscription's watermark is kept");

    // Alice moves it an hour later.
    w.clock.advance(Duration::minutes(5));
    w.retime_in_outlook(&id.id, at("2026-09-03T10:00:00Z"), at("2026-09-03T11:00:00Z")).await;
    eventually("the reservation rescheduled", || async {
        let r = w.reservations().into_iter().find(|r| r.id == reservation.id).unwrap();
        (r.planned_start_date == Some(at("2026-09-03T10:00:00Z"))).then_some(())
    })
    .await;
    w.settled().await;

    // Alice cancels it.
    w.clock.advance(Duration::minutes(5));
    w.cancel_in_outlook(&id.id).await;
    eventually("the reservation cancelled", || async {
        let r = w.reservations().into_iter().find(|r| r.id == reservation.id).unwrap();
        (r.status == Some(ReservationStatus::Cancelled)).then_some(())
    })
    .await;
    w.settled().await;
    let record = w.bookings().await.pop().unwrap();
    assert!(record.cancelled);
    // The sweep finds nothing left to do.
    let swept = w.sweep().await;
    assert_eq!(swept.jobs.total(), 0, "{swept:?}");
    w.no_dead_jobs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subscription_is_made_again_from_its_watermark_and_the_old_one_is_unsubscribed() {
    on_every_store(|w| async move {
        w.settled().await;
        let before = w.subscription().await;
        assert!(w.ensure_subscriptions().await.is_noop(), "a live subscription is left alone");
        let sweeps_before = w.sweep_jobs().await;
        assert_eq!(sweeps_before, 2, "each room was swept once when first subscribed");
        // No word from Exchange for three status intervals: the subscription is silent.
        w.clock.advance(Duration::minutes(16));
        let report = w.ensure_subscriptions().await;
        assert_eq!(report.remade, 2, "both rooms' subscriptions: {report:?}");
        assert_eq!(report.created, 0, "{report:?}");
        let after = w.subscription().await;
        assert_ne!(after.id, before.id, "a new subscription");
        assert!(after.watermark.is_some(), "resumed from a watermark");
        assert!(after.expires_at > w.clock.now(), "a fresh silence deadline");
        assert_eq!(w.sweep_jobs().await, sweeps_before + 2, "the rooms are swept: {report:?}");
        // Exchange still calls the old subscription too: ORB answers Unsubscribe and Exchange drops it; the
        // change arrives through the new one.
        w.book_in_outlook("Retro", at("2026-09-05T08:00:00Z"), at("2026-09-05T09:00:00Z")).await;
        w.live_reservation().await;
        eventually("the old subscription dropped by Exchange", || async {
            let subs: Vec<_> = w.em.subscriptions().into_iter().filter(|s| s.mailbox == EWS_ROOM).collect();
            (subs.len() == 1 && subs[0].id == after.id).then_some(())
        })
        .await;
        w.settled().await;
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_events_keep_a_quiet_subscription_alive() {
    on_every_store(|w| async move {
        w.settled().await;
        let before = w.subscription().await;
        // Nothing happens for a status interval: Exchange sends a StatusEvent.
        w.clock.advance(Duration::minutes(6));
        w.em.tick().await;
        let after = eventually("the status event heard", || async {
            let row = w.subscription().await;
            (row.expires_at > before.expires_at).then_some(row)
        })
        .await;
        assert_eq!(after.id, before.id);
        assert_eq!(after.expires_at, orb_engine::ews_push::silent_at(w.clock.now()));
        w.settled().await;
        assert!(w.ensure_subscriptions().await.is_noop(), "still alive");
        assert!(w.bookings().await.is_empty(), "a status event syncs nothing");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_made_in_topdesk_becomes_a_meeting_in_the_organizers_exchange_calendar() {
    on_every_store(|w| async move {
        let mut create = orb_topdesk::wire::CreateReservationDto::new(
            w.alice,
            &w.room.topdesk_location_id,
            at("2026-09-04T12:00:00Z"),
            at("2026-09-04T13:00:00Z"),
        );
        create.brief_description = Some("Quarterly planning".into());
        let made = w.topdesk.create_reservation(&create).await.unwrap();
        w.push(&made.id.unwrap().to_string()).await;
        let record = eventually("the meeting written to Exchange", || async {
            w.bookings().await.into_iter().find(|r| r.exchange.organizer_event_id.is_some())
        })
        .await;
        w.settled().await;
        assert_eq!(record.processor_created, Side::Topdesk);
        let id = record.exchange.organizer_event_id.clone().unwrap();
        let item = w.alice_item(&id).await;
        let uid = item.uid.clone();
        assert_eq!(item.subject.as_deref(), Some("Quarterly planning"));
        assert_eq!(item.start, Some(at("2026-09-04T12:00:00Z")));
        assert!(has_room(&item), "the room is invited: {:?}", item.resources);
        assert_eq!(item.match_id.as_deref(), Some(record.id.to_string().as_str()), "ORB's match id");
        let room_copy = w.em.items(EWS_ROOM);
        assert!(
            room_copy.iter().any(|i| Some(i.uid.as_str()) == item.uid.as_deref()),
            "the room's copy (auto-accepted) shares the UID"
        );
        let accepted = item.resources.iter().find_map(|r| r.response);
        assert_eq!(accepted, Some(ResponseType::Accept), "the room accepted");

        // The desk moves it in TOPdesk.
        w.clock.advance(Duration::minutes(5));
        let reservation_id = made.id.unwrap();
        w.topdesk
            .reschedule_reservation(reservation_id, at("2026-09-04T14:00:00Z"), at("2026-09-04T15:00:00Z"))
            .await
            .unwrap();
        w.push(&reservation_id.to_string()).await;
        eventually("the meeting moved in Exchange", || async {
            let item = w.alice_item(&id).await;
            (item.start == Some(at("2026-09-04T14:00:00Z"))).then_some(())
        })
        .await;
        w.settled().await;

        // And cancels it.
        w.clock.advance(Duration::minutes(5));
        w.topdesk.cancel_reservation(reservation_id, &orb_topdesk::Reason::Default).await.unwrap();
        w.push(&reservation_id.to_string()).await;
        eventually("the meeting cancelled in Exchange", || async {
            let item = w.alice_item_if_any(&id).await;
            item.is_none_or(|i| i.is_cancelled == Some(true)).then_some(())
        })
        .await;
        let copies = w.em.items(EWS_ROOM);
        assert!(
            copies.iter().all(|c| c.is_cancelled || c.deleted || Some(c.uid.as_str()) != uid.as_deref()),
            "the room's copy is cancelled too"
        );
        w.settled().await;
        let record = w.bookings().await.pop().unwrap();
        assert!(record.cancelled);
        assert_eq!(record.exchange_status, SyncStatus::Cancelled, "{record:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_change_in_outlook_moves_the_reservation_and_one_in_topdesk_moves_the_meeting() {
    on_every_store(|w| async move {
        let id =
            w.book_in_outlook("Design review", at("2026-09-07T08:00:00Z"), at("2026-09-07T09:00:00Z")).await;
        let reservation = w.live_reservation().await;
        w.settled().await;
        // Alice takes room 5 instead.
        w.clock.advance(Duration::minutes(5));
        let change = MeetingChange {
            room: Some(mail(EWS_ROOM5)),
            location: Some("Room 5".into()),
            ..MeetingChange::default()
        };
        w.change_in_outlook(&id.id, change).await;
        eventually("the reservation moved to room 5", || async {
            let r = w.reservations().into_iter().find(|r| r.id == reservation.id).unwrap();
            (r.location_ids() == [w.room5.topdesk_location_id.clone()]).then_some(())
        })
        .await;
        w.settled().await;
        assert_eq!(w.reservations().len(), 1, "moved, not cancelled and made again");
        let record = w.bookings().await.pop().unwrap();
        assert_eq!(record.room_id, w.room5.id);
        assert!(!record.cancelled);

        // The desk moves it back to room 4.12 in TOPdesk: Alice's meeting invites room 4.12 again.
        w.clock.advance(Duration::minutes(5));
        w.topdesk
            .move_room(reservation.id.unwrap(), &w.room5.topdesk_location_id, &w.room.topdesk_location_id)
            .await
            .unwrap();
        w.push(&reservation.id.unwrap().to_string()).await;
        eventually("the meeting in room 4.12 again", || async {
            let item = w.alice_item(&id.id).await;
            (has_room(&item) && !item.resources.iter().any(|r| r.mailbox.email.as_deref() == Some(EWS_ROOM5)))
                .then_some(())
        })
        .await;
        w.settled().await;
        let record = w.bookings().await.pop().unwrap();
        assert_eq!(record.room_id, w.room.id);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secretary_booking_in_her_managers_calendar_reserves_in_the_managers_name() {
    on_every_store(|w| async move {
        // Sam works in Mark's calendar as his delegate: Mark is the organizer, Sam attends.
        let meeting = NewMeeting {
            subject: "Board prep".into(),
            match_id: "stripped-below".into(),
            start: at("2026-09-08T09:00:00Z"),
            end: at("2026-09-08T10:00:00Z"),
            location: Some("Room 4.12".into()),
            room: Some(mail(EWS_ROOM)),
            attendees: vec![mail(SAM)],
            time_zone: Some("W. Europe Standard Time".into()),
            recurrence: None,
        };
        w.create_in_outlook(MARK, &meeting).await;
        let reservation = w.live_reservation().await;
        w.settled().await;
        assert_eq!(
            reservation.requester.as_ref().and_then(|p| p.id),
            Some(w.mark),
            "the manager is the requester"
        );
        let record = w.bookings().await.pop().unwrap();
        assert_eq!(record.organizer, mail(MARK));
        assert_eq!(record.participants, [mail(SAM)], "the secretary attends");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_series_becomes_reservations_and_follows_a_moved_and_a_cancelled_occurrence() {
    on_every_store(|w| async move {
        let meeting = NewMeeting {
            subject: "Weekly sync".into(),
            match_id: "stripped-below".into(),
            start: at("2026-09-08T07:00:00Z"),
            end: at("2026-09-08T08:00:00Z"),
            location: Some("Room 4.12".into()),
            room: Some(mail(EWS_ROOM)),
            attendees: Vec::new(),
            time_zone: Some("W. Europe Standard Time".into()),
            recurrence: Some(Recurrence {
                pattern: Pattern::Weekly {
                    interval: 1,
                    days: vec![DayOfWeek::Day(Weekday::Tue)],
                    first_day_of_week: Some(Weekday::Mon),
                },
                range: Range::Numbered {
                    start: chrono::NaiveDate::from_ymd_opt(2026, 9, 8).unwrap(),
                    count: 5,
                },
            }),
        };
        let master = w.create_in_outlook(ALICE, &meeting).await;
        let weeks: Vec<_> = (0..5).map(|i| at("2026-09-08T07:00:00Z") + Duration::weeks(i)).collect();
        eventually("five reservations", || async {
            let mut starts: Vec<_> = w
                .reservations()
                .into_iter()
                .filter(|r| r.status.is_some_and(|s| s.is_active()))
                .filter_map(|r| r.planned_start_date)
                .collect();
            starts.sort();
            (starts == weeks).then_some(())
        })
        .await;
        w.settled().await;

        // The third is an hour later this once; the fourth is cancelled.
        w.clock.advance(Duration::minutes(5));
        let third = MeetingChange {
            start: Some(weeks[2] + Duration::hours(1)),
            end: Some(weeks[2] + Duration::hours(2)),
            ..MeetingChange::default()
        };
        w.change_occurrence_in_outlook(&master.id, 3, third).await;
        w.cancel_occurrence_in_outlook(&master.id, 4).await;
        let expected = vec![weeks[0], weeks[1], weeks[2] + Duration::hours(1), weeks[4]];
        eventually("the moved and the cancelled occurrence in TOPdesk", || async {
            let mut starts: Vec<_> = w
                .reservations()
                .into_iter()
                .filter(|r| r.status.is_some_and(|s| s.is_active()))
                .filter_map(|r| r.planned_start_date)
                .collect();
            starts.sort();
            (starts == expected).then_some(())
        })
        .await;
        w.settled().await;
        let live: Vec<_> = w.bookings().await.into_iter().filter(|r| !r.cancelled).collect();
        assert_eq!(live.len(), 4, "{live:?}");
        assert!(live.iter().all(|r| r.series_id.is_some()), "occurrences of one series");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_subject_drop_an_outlook_subject_reaches_neither_topdesk_nor_the_database() {
    const SECRET_SUBJECT: &str = "Secret merger talk";
    let policy = Policy { subject: orb_core::SubjectPolicy::Drop, ..Policy::default() };
    for sut in TestStore::every().await {
        eprintln!("-- EWS tenant on {}", sut.name);
        let w = EwsWorld::start(sut, policy.clone()).await;
        w.book_in_outlook(SECRET_SUBJECT, at("2026-09-09T08:00:00Z"), at("2026-09-09T09:00:00Z")).await;
        let reservation = w.live_reservation().await;
        w.settled().await;
        assert_ne!(reservation.brief_description.as_deref(), Some(SECRET_SUBJECT), "not in TOPdesk");
        let record = w.bookings().await.pop().unwrap();
        assert_eq!(record.subject, None, "not in the record");
        let dump = w._store.dump().await;
        assert!(!dump.contains(SECRET_SUBJECT), "the subject is nowhere in the database");
        w.no_dead_jobs().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_moving_an_outlook_meeting_to_another_day_moves_it_in_exchange() {
    on_every_store(|w| async move {
        // A meeting made in Outlook carries no ORB match id: ORB finds it in Exchange by its UID, around
        // where it was before the move as well as where it goes.
        let id =
            w.book_in_outlook("Supplier call", at("2026-09-10T08:00:00Z"), at("2026-09-10T09:00:00Z")).await;
        let reservation = w.live_reservation().await;
        w.settled().await;
        w.clock.advance(Duration::minutes(5));
        let reservation_id = reservation.id.unwrap();
        w.topdesk
            .reschedule_reservation(reservation_id, at("2026-09-15T12:00:00Z"), at("2026-09-15T13:00:00Z"))
            .await
            .unwrap();
        w.push(&reservation_id.to_string()).await;
        eventually("the meeting moved five days on in Exchange", || async {
            let item = w.alice_item(&id.id).await;
            (item.start == Some(at("2026-09-15T12:00:00Z"))).then_some(())
        })
        .await;
        w.settled().await;
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_subject_hide_topdesk_shows_the_neutral_text_and_never_writes_its_own_back() {
    const SUBJECT: &str = "Quarterly numbers";
    let policy = Policy {
        subject: orb_core::SubjectPolicy::HideOnRoom { text: "Booked".into() },
        ..Policy::default()
    };
    for sut in TestStore::every().await {
        eprintln!("-- EWS tenant on {}", sut.name);
        let w = EwsWorld::start(sut, policy.clone()).await;
        let id = w.book_in_outlook(SUBJECT, at("2026-09-11T08:00:00Z"), at("2026-09-11T09:00:00Z")).await;
        let reservation = w.live_reservation().await;
        w.settled().await;
        assert_eq!(reservation.brief_description.as_deref(), Some("Booked"), "the neutral text in TOPdesk");
        let record = w.bookings().await.pop().unwrap();
        assert_eq!(record.subject.as_deref(), Some(SUBJECT), "the meeting's own subject is kept on its side");

        // The desk writes its own text on the reservation and moves it: the move reaches Exchange, the
        // text does not.
        w.clock.advance(Duration::minutes(5));
        let reservation_id = reservation.id.unwrap();
        let dto = orb_topdesk::wire::UpdateReservationDto {
            brief_description: Some("Desk: reserved for the finance team".into()),
            ..Default::default()
        };
        w.topdesk.update_reservation(reservation_id, &dto, None).await.unwrap();
        w.topdesk
            .reschedule_reservation(reservation_id, at("2026-09-11T10:00:00Z"), at("2026-09-11T11:00:00Z"))
            .await
            .unwrap();
        w.push(&reservation_id.to_string()).await;
        let item = eventually("the meeting moved in Exchange", || async {
            let item = w.alice_item(&id.id).await;
            (item.start == Some(at("2026-09-11T10:00:00Z"))).then_some(item)
        })
        .await;
        w.settled().await;
        assert_eq!(item.subject.as_deref(), Some(SUBJECT), "the desk's text never reaches Outlook");
        let record = w.bookings().await.pop().unwrap();
        assert_eq!(record.subject.as_deref(), Some(SUBJECT), "nor the record");

        // Alice renames the meeting: TOPdesk never shows her subject.
        w.clock.advance(Duration::minutes(5));
        let renamed = "Quarterly numbers (moved to Q4)";
        let pushed = w.em.deliveries().len();
        w.change_in_outlook(
            &id.id,
            MeetingChange { subject: Some(renamed.into()), ..MeetingChange::default() },
        )
        .await;
        eventually("Exchange to push the change", || async {
            (w.em.deliveries().iter().skip(pushed).any(|d| d.outcome == "ok")).then_some(())
        })
        .await;
        w.settled().await;
        let r = w.reservations().into_iter().find(|r| r.id == reservation.id).unwrap();
        assert!(r.brief_description.as_deref().is_some_and(|d| !d.contains("Quarterly")), "{r:?}");

        // The desk moves it again: the rename (which TOPdesk never saw) does not make the desk's move lose
        // (different fields: both kept), and Outlook keeps the new subject.
        w.clock.advance(Duration::minutes(5));
        w.topdesk
            .reschedule_reservation(reservation_id, at("2026-09-11T15:00:00Z"), at("2026-09-11T16:00:00Z"))
            .await
            .unwrap();
        w.push(&reservation_id.to_string()).await;
        let item = eventually("the second move in Exchange", || async {
            let item = w.alice_item(&id.id).await;
            (item.start == Some(at("2026-09-11T15:00:00Z"))).then_some(item)
        })
        .await;
        w.settled().await;
        assert_eq!(item.subject.as_deref(), Some(renamed));
        let r = w.reservations().into_iter().find(|r| r.id == reservation.id).unwrap();
        assert_eq!(r.planned_start_date, Some(at("2026-09-11T15:00:00Z")), "the desk's move held");
        w.no_dead_jobs().await;
    }
}

/// The ids of the emulator's streaming subscriptions, once every one is served by a connection.
async fn streamed(w: &EwsWorld) -> BTreeSet<String> {
    eventually("both rooms streamed over a served connection", || async {
        let subs = w.em.streaming_subscriptions();
        (subs.len() == 2 && subs.iter().all(|s| s.connected))
            .then(|| subs.into_iter().map(|s| s.id).collect())
    })
    .await
}

/// Cuts ORB's streaming connection and keeps every new one refused until the plan is lifted.
async fn cut_streams(w: &EwsWorld) {
    w.em.set_fault_plan(FaultPlan::new(
        7,
        vec![
            FaultRule::new(FaultKind::Status { status: 503, body: BodyStyle::Auto, retry_after_secs: None })
                .operation("GetStreamingEvents"),
        ],
    ));
    w.em.reset_streams();
    eventually("no connection serves the rooms", || async {
        w.em.streaming_subscriptions().iter().all(|s| !s.connected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_streaming_changes_arrive_over_orbs_own_connection_and_gaps_and_lost_subscriptions_heal() {
    for sut in TestStore::every().await {
        eprintln!("-- EWS tenant on {}", sut.name);
        let w = EwsWorld::start_streaming(sut, Policy::default()).await;
        let first = streamed(&w).await;
        assert!(w.em.subscriptions().is_empty(), "no push subscription: Exchange need not reach ORB");
        let rows = w.store.list_subscriptions(w.tenant.id).await.unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows.iter().all(|r| r.resource.starts_with("ews:stream:")), "{rows:?}");

        // A meeting booked in Outlook reaches TOPdesk through the streamed notification.
        let id =
            w.book_in_outlook("Board prep", at("2026-09-04T08:00:00Z"), at("2026-09-04T09:00:00Z")).await;
        let reservation = w.live_reservation().await;
        w.settled().await;
        assert_eq!(reservation.planned_start_date, Some(at("2026-09-04T08:00:00Z")));

        // The connection is cut and refused for a while; a change made then is not replayed by Exchange,
        // so the sweep after the reconnection finds it.
        cut_streams(&w).await;
        w.clock.advance(Duration::minutes(5));
        w.retime_in_outlook(&id.id, at("2026-09-04T13:00:00Z"), at("2026-09-04T14:00:00Z")).await;
        w.em.set_fault_plan(FaultPlan::new(7, Vec::new()));
        assert_eq!(streamed(&w).await, first, "the same subscriptions, served again");
        eventually("the change made in the gap reaches TOPdesk", || async {
            let r = w.reservations().into_iter().find(|r| r.id == reservation.id).unwrap();
            (r.planned_start_date == Some(at("2026-09-04T13:00:00Z"))).then_some(())
        })
        .await;
        w.settled().await;

        // Exchange forgets the subscriptions (left without a connection past their expiry): ORB makes
        // them again and hears the next change.
        cut_streams(&w).await;
        w.clock.advance(Duration::minutes(31));
        w.em.set_fault_plan(FaultPlan::new(7, Vec::new()));
        let second = streamed(&w).await;
        assert!(second.is_disjoint(&first), "new subscriptions: {first:?} then {second:?}");
        eventually("the rows name the new subscriptions only", || async {
            let rows = w.store.list_subscriptions(w.tenant.id).await.unwrap();
            let ids: BTreeSet<String> = rows.into_iter().map(|r| r.id).collect();
            (ids == second).then_some(())
        })
        .await;
        w.book_in_outlook("Budget", at("2026-09-05T08:00:00Z"), at("2026-09-05T09:00:00Z")).await;
        eventually("the new meeting reserved", || async {
            w.reservations()
                .into_iter()
                .find(|r| r.planned_start_date == Some(at("2026-09-05T08:00:00Z")))
                .map(|_| ())
        })
        .await;
        w.settled().await;
        w.no_dead_jobs().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_room_only_mode_a_desk_reservation_is_an_appointment_in_the_rooms_own_calendar() {
    let policy = Policy { mode: orb_core::Mode::RoomOnly, ..Policy::default() };
    for sut in TestStore::every().await {
        eprintln!("-- EWS tenant on {}", sut.name);
        let w = EwsWorld::start(sut, policy.clone()).await;
        let room_items = |start| {
            w.em.items(EWS_ROOM)
                .into_iter()
                .filter(move |i| i.start == start && !i.deleted)
                .collect::<Vec<_>>()
        };
        let mut create = orb_topdesk::wire::CreateReservationDto::new(
            w.alice,
            &w.room.topdesk_location_id,
            at("2026-09-07T12:00:00Z"),
            at("2026-09-07T13:00:00Z"),
        );
        create.brief_description = Some("Desk booking".into());
        let made = w.topdesk.create_reservation(&create).await.unwrap();
        let reservation_id = made.id.unwrap();
        w.push(&reservation_id.to_string()).await;
        let record = eventually("the appointment written to the room's calendar", || async {
            w.bookings().await.into_iter().find(|r| r.exchange.room_event_id.is_some())
        })
        .await;
        w.settled().await;
        assert_eq!(record.exchange.organizer_event_id, None, "nothing in Alice's calendar");
        let items = room_items(at("2026-09-07T12:00:00Z"));
        assert_eq!(items.len(), 1, "{items:?}");
        let item = &items[0];
        assert!(
            item.resources.is_empty() && item.required.is_empty(),
            "an appointment, nobody invited: {item:?}"
        );
        assert!(!item.is_cancelled);
        assert_eq!(item.subject, "Desk booking");
        let alice: Vec<_> = w.em.items(ALICE).into_iter().filter(|i| !i.deleted).collect();
        assert!(alice.is_empty(), "Alice's calendar is left alone: {alice:?}");

        // The desk moves it: the appointment moves; then cancels it: the appointment goes.
        w.clock.advance(Duration::minutes(5));
        w.topdesk
            .reschedule_reservation(reservation_id, at("2026-09-07T14:00:00Z"), at("2026-09-07T15:00:00Z"))
            .await
            .unwrap();
        w.push(&reservation_id.to_string()).await;
        eventually("the appointment moved", || async {
            (room_items(at("2026-09-07T14:00:00Z")).len() == 1).then_some(())
        })
        .await;
        w.settled().await;
        assert!(room_items(at("2026-09-07T12:00:00Z")).is_empty(), "not left at the old time");
        w.clock.advance(Duration::minutes(5));
        w.topdesk.cancel_reservation(reservation_id, &orb_topdesk::Reason::Default).await.unwrap();
        w.push(&reservation_id.to_string()).await;
        eventually("the appointment gone from the room's calendar", || async {
            room_items(at("2026-09-07T14:00:00Z")).iter().all(|i| i.is_cancelled).then_some(())
        })
        .await;
        w.settled().await;
        assert!(w.bookings().await.iter().all(|r| r.cancelled));

        // A meeting booked in Outlook still reserves the room in TOPdesk.
        w.clock.advance(Duration::minutes(5));
        w.book_in_outlook("Team sync", at("2026-09-08T08:00:00Z"), at("2026-09-08T09:00:00Z")).await;
        eventually("the Outlook meeting reserved", || async {
            w.reservations()
                .into_iter()
                .find(|r| {
                    r.planned_start_date == Some(at("2026-09-08T08:00:00Z"))
                        && r.status.is_some_and(|s| s.is_active())
                })
                .map(|_| ())
        })
        .await;
        w.settled().await;
        w.no_dead_jobs().await;
    }
}

/// The room's live copies and Alice's live meetings in the room: their starts.
fn live_in_exchange(
    w: &EwsWorld,
) -> (Vec<chrono::DateTime<chrono::Utc>>, Vec<chrono::DateTime<chrono::Utc>>) {
    let room = w.em.items(EWS_ROOM).into_iter().filter(|i| !i.is_cancelled).map(|i| i.start).collect();
    let alice =
        w.em.items(ALICE)
            .into_iter()
            .filter(|i| !i.is_cancelled && i.resources.iter().any(|r| r.email.eq_ignore_ascii_case(EWS_ROOM)))
            .map(|i| i.start)
            .collect();
    (room, alice)
}

/// EWS versions items by `LastModifiedTime`, in whole seconds. A sweep lists the room's calendar (Alice's
/// move of a meeting, whose push was lost) and in the same second Alice cancels the meeting; the
/// cancellation's push is processed before the sweep's job runs (it arrived while the sweep was still
/// reading). The listing carries the cancellation's version, so it cannot be told older: the sweep's job
/// reads the item again when it runs, and the cancelled booking stays cancelled on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweeps_listing_from_the_second_of_a_cancellation_does_not_reopen_the_booking() {
    on_every_store(|w| async move {
        let id = w.book_in_outlook("Planning", at("2026-09-03T08:00:00Z"), at("2026-09-03T09:00:00Z")).await;
        let reservation = w.live_reservation().await.id.unwrap();
        w.stop_worker().await;
        // Alice moves the meeting; Exchange's push of it is lost on the way.
        w.clock.advance(Duration::minutes(5));
        let lost = PushKnobs { drop_percent: 100, ..PushKnobs::default() };
        w.em.set_knobs(Knobs { push: lost, ..Knobs::default() });
        w.retime_in_outlook(&id.id, at("2026-09-03T10:00:00Z"), at("2026-09-03T11:00:00Z")).await;
        // The sweep lists the moved meeting: one job, run later (below).
        let swept = w.sweep().await;
        assert_eq!(swept.jobs.changed, 1, "{swept:?}");
        let listing = w.take_next_job().await;
        // In the same second Alice cancels the meeting; that push arrives and is processed first.
        w.em.set_knobs(Knobs::default());
        w.cancel_in_outlook(&id.id).await;
        eventually("the cancellation's push", || async {
            let queued = w.store.list_jobs(w.tenant.id, JobStatus::Queued).await.unwrap();
            (!queued.is_empty()).then_some(())
        })
        .await;
        w.run_jobs().await;
        let cancelled =
            |r: &orb_topdesk::wire::ReservationDto| r.status == Some(ReservationStatus::Cancelled);
        assert!(w.reservations().iter().any(|r| r.id == Some(reservation) && cancelled(r)));
        // Then the sweep's job runs.
        w.store.enqueue(&listing, w.clock.now()).await.unwrap();
        w.run_jobs().await;
        let records = w.bookings().await;
        assert_eq!(records.len(), 1);
        assert!(records[0].cancelled, "the booking stays cancelled: {:?}", records[0]);
        let live: Vec<_> = w.reservations().into_iter().filter(|r| !cancelled(r)).collect();
        assert!(live.is_empty(), "no live reservation: {live:?}");
        assert_eq!(live_in_exchange(&w), (vec![], vec![]), "nothing live in Exchange");
        w.no_dead_jobs().await;
    })
    .await;
}

/// A room's copy lagging behind its organizer's move (the room's booking attendant has not processed the
/// update yet) is no move back. The desk moves an Outlook meeting a week on and ORB moves Alice's meeting;
/// a late push names the room's copy, which still shows the old time, with the version of ORB's write (all
/// in one second: EWS versions have whole seconds). EWS finds a meeting by time, so the organizer's
/// meeting is read by the id ORB knows (and searched where the record holds it), not only around the
/// copy's old time, where it is no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_copy_lagging_behind_a_move_does_not_move_the_meeting_back() {
    on_every_store(|w| async move {
        let (before, after) = (at("2026-09-03T08:00:00Z"), at("2026-09-10T08:00:00Z"));
        let id = w.book_in_outlook("Review", before, before + Duration::hours(1)).await;
        let reservation = w.live_reservation().await.id.unwrap();
        w.settled().await;
        let uid = w.alice_item(&id.id).await.uid.expect("a UID");
        let copy = w.em.items(EWS_ROOM).into_iter().find(|i| i.uid == uid).expect("the room's copy");
        // The room's attendant falls behind: Alice's meeting changes, its copy does not (yet).
        let behind = RoomSettings { auto_accept: false, ..RoomSettings::default() };
        assert!(w.em.set_room_settings(EWS_ROOM, behind));
        w.topdesk.reschedule_reservation(reservation, after, after + Duration::hours(1)).await.unwrap();
        w.push(&reservation.to_string()).await;
        eventually("Alice's meeting moved a week on", || async {
            (w.alice_item(&id.id).await.start == Some(after)).then_some(())
        })
        .await;
        w.settled().await;
        let record = w.bookings().await.pop().unwrap();
        assert!(record.exchange.organizer_event_id.is_some(), "ORB wrote Alice's meeting: {record:?}");
        assert_eq!(live_in_exchange(&w), (vec![before], vec![after]), "the room's copy lags behind");

        // A late push naming the room's copy (Exchange retries, or a push held back).
        let sub = w.em.subscriptions().into_iter().find(|s| s.mailbox == EWS_ROOM).unwrap();
        let late = Notification {
            subscription_id: sub.id.clone(),
            previous_watermark: None,
            more_events: false,
            events: vec![PushEvent {
                kind: EventKind::Modified,
                watermark: None,
                timestamp: Some(w.clock.now()),
                item_id: Some(orb_ews::model::ItemId { id: copy.id.clone(), change_key: None }),
                folder_id: None,
                parent_folder_id: None,
                unread_count: None,
                old_item_id: None,
                old_parent_folder_id: None,
            }],
        };
        let answer = w
            .http
            .post(&sub.url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(notification_document(&late))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        eventually("the late push handled", || async {
            let done = w.store.list_jobs(w.tenant.id, JobStatus::Done).await.unwrap();
            done.iter().any(|j| j.kind == "ews.notification").then_some(())
        })
        .await;
        w.settled().await;
        let moved = w.reservations().into_iter().find(|r| r.id == Some(reservation)).unwrap();
        assert_eq!(moved.planned_start_date, Some(after), "the reservation stays moved");
        assert_eq!(w.alice_item(&id.id).await.start, Some(after), "Alice's meeting stays moved");
        assert_eq!(w.bookings().await.pop().unwrap().start, after);
        w.no_dead_jobs().await;
    })
    .await;
}

/// EWS versions items in whole seconds: Alice moving her meeting in the second of ORB's last look at it
/// leaves the version ORB holds. A sweep finding the room's copy at another time with that version must
/// take it for her change (read again when its job runs), not for a copy that drifted from ORB's record:
/// re-driving it would write the old time over her move (found by the EWS chaos run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_in_outlook_in_the_second_orb_last_saw_the_meeting_is_no_drift() {
    on_every_store(|w| async move {
        let (booked, moved) = (at("2026-09-03T08:00:00Z"), at("2026-09-03T10:00:00Z"));
        let id = w.book_in_outlook("Standup", booked, booked + Duration::hours(1)).await;
        let reservation = w.live_reservation().await.id.unwrap();
        // Every push Exchange queued so far is delivered and handled (a late one would read the move).
        eventually("no push waiting", || async {
            w.em.subscriptions().iter().all(|s| s.queued == 0).then_some(())
        })
        .await;
        w.settled().await;
        // In the same second (the clock stands still), Alice moves it; Exchange's push is lost.
        let lost = PushKnobs { drop_percent: 100, ..PushKnobs::default() };
        w.em.set_knobs(Knobs { push: lost, ..Knobs::default() });
        w.retime_in_outlook(&id.id, moved, moved + Duration::hours(1)).await;
        let swept = w.sweep().await;
        assert_eq!((swept.jobs.changed, swept.jobs.redriven), (1, 0), "a change, not a drift: {swept:?}");
        w.settled().await;
        assert_eq!(w.alice_item(&id.id).await.start, Some(moved), "Alice's move holds");
        let r = w.reservations().into_iter().find(|r| r.id == Some(reservation)).unwrap();
        assert_eq!(r.planned_start_date, Some(moved), "the reservation follows");
        assert_eq!(w.bookings().await.pop().unwrap().start, moved);
        w.no_dead_jobs().await;
    })
    .await;
}
