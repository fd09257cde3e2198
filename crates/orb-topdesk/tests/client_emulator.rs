//! The TOPdesk client against the TOPdesk emulator over real HTTP on `127.0.0.1:0`: every client operation,
//! 206 paging where many reservations share one start, idempotent create, cancel with and without a
//! default reason, mixed-case e-mail lookup, authentication failure, and bad input → `Rejected{reason}`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use orb_core::{FixedClock, TopdeskLocationId};
use orb_emulators::topdesk::{DoubleBooking, Faults, ServedEmulator, TopdeskEmulator};
use orb_topdesk::wire::{CreateReservationDto, UpdateReservationDto};
use orb_topdesk::*;
use secrecy::SecretString;
use url::Url;

fn at(text: &str) -> DateTime<Utc> {
    orb_topdesk::datetime::parse(text).unwrap()
}

struct World {
    served: ServedEmulator,
    client: TopdeskClient,
    clock: FixedClock,
    anna: PersonId,
    room_a: TopdeskLocationId,
    room_b: TopdeskLocationId,
}

fn client_for(base: &str, login: &str, password: &str, clock: &FixedClock) -> TopdeskClient {
    let mut config = TopdeskConfig::new(
        Url::parse(base).unwrap(),
        login,
        SecretString::from(password.to_owned()),
        Arc::new(clock.clone()),
    );
    config.retry = RetryPolicy {
        max_retries: 3,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_millis(50),
    };
    TopdeskClient::new(config).unwrap()
}

async fn world() -> World {
    let clock = FixedClock::new(at("2026-03-01T08:00:00Z"));
    let emulator = TopdeskEmulator::new(Arc::new(clock.clone()));
    emulator.add_account("orb-api", "app-secret-1");
    let anna = emulator.add_person("Anna", "Bakker", Some("Anna.Bakker@Contoso.com"));
    let room_a = emulator.add_room("Room A", 0, DoubleBooking::Refuse);
    let room_b = emulator.add_room("Room B", 15, DoubleBooking::StoreAsConflicting);
    let served = emulator.serve().await.unwrap();
    let client = client_for(&served.base_url, "orb-api", "app-secret-1", &clock);
    World { served, client, clock, anna, room_a, room_b }
}

fn booking(w: &World, room: &TopdeskLocationId, start: &str, end: &str) -> CreateReservationDto {
    let mut dto = CreateReservationDto::new(w.anna, room, at(start), at(end));
    dto.brief_description = Some("Project sync".into());
    dto
}

fn rejected_reason(err: TopdeskError) -> String {
    match err {
        TopdeskError::Rejected { reason, .. } => reason,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn credentials_are_checked_and_a_wrong_password_is_a_clear_error() {
    let w = world().await;
    let me = w.client.current_operator().await.unwrap();
    assert_eq!(me.login_name.as_deref(), Some("orb-api"));
    assert_eq!(w.client.version().await.unwrap().version, "3.0.0");

    let wrong = client_for(&w.served.base_url, "orb-api", "not-the-password", &w.clock);
    let err = wrong.current_operator().await.unwrap_err();
    assert!(matches!(err, TopdeskError::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("orb-api") && text.contains("application password"), "{text}");
    assert!(!text.contains("not-the-password"), "the password must never be printed: {text}");
    assert_eq!(w.served.emulator.request_counts().unauthorized, 1);
}

#[tokio::test]
async fn create_get_patch_reschedule_move_and_participants() {
    let w = world().await;
    let created = w
        .client
        .create_reservation(&booking(&w, &w.room_a, "2026-03-02T09:00:30Z", "2026-03-02T10:00:00Z"))
        .await
        .unwrap();
    let id = created.id.unwrap();
    assert_eq!(created.status, Some(ReservationStatus::Planned));
    assert_eq!(created.planned_start_date, Some(at("2026-03-02T09:00:00Z")), "truncated to whole minutes");
    assert_eq!(created.requester.as_ref().and_then(|r| r.email.as_deref()), Some("Anna.Bakker@Contoso.com"));
    let first_modified = created.modification_date.unwrap();

    let got = w.client.get_reservation(id).await.unwrap();
    assert_eq!(got, created);
    let by_number = w.client.get_reservation_by_number(created.number.as_deref().unwrap()).await.unwrap();
    assert_eq!(by_number.id, Some(id));

    let patched = w
        .client
        .update_reservation(
            id,
            &UpdateReservationDto { brief_description: Some("Renamed".into()), ..Default::default() },
            None,
        )
        .await
        .unwrap();
    assert_eq!(patched.brief_description.as_deref(), Some("Renamed"));
    assert!(patched.modification_date.unwrap() > first_modified, "modificationDate moves on every change");

    let moved_time = w
        .client
        .reschedule_reservation(id, at("2026-03-02T11:00:00Z"), at("2026-03-02T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(moved_time.planned_end_date, Some(at("2026-03-02T12:00:00Z")));

    let moved_room = w.client.move_room(id, &w.room_a, &w.room_b).await.unwrap();
    assert_eq!(moved_room.location_ids(), vec![w.room_b.clone()]);
    let facility = &moved_room.reserved_facilities.as_ref().unwrap()[0];
    assert_eq!(
        facility.start_date_block,
        Some(at("2026-03-02T10:45:00Z")),
        "room B has 15 minutes block time"
    );

    let bob = w.served.emulator.add_person("Bob", "Visser", Some("bob@contoso.com"));
    let with = w.client.add_participants(id, &[bob]).await.unwrap();
    let persons = with.participants.unwrap().persons.unwrap();
    assert_eq!(persons.iter().map(|p| p.id).collect::<Vec<_>>(), vec![Some(bob.0)]);
    let without = w.client.remove_participants(id, &[bob]).await.unwrap();
    assert!(without.participants.unwrap().persons.unwrap().is_empty());

    let missing = w.client.get_reservation(ReservationId(uuid::Uuid::new_v4())).await.unwrap_err();
    assert!(matches!(missing, TopdeskError::NotFound { .. }), "{missing:?}");
}

#[tokio::test]
async fn paging_across_206_when_many_reservations_share_one_start() {
    let w = world().await;
    // 7 reservations at 09:00 in room B (double bookings stored as conflicting), 3 later ones.
    for _ in 0..7 {
        w.client
            .create_reservation(&booking(&w, &w.room_b, "2026-03-03T09:00:00Z", "2026-03-03T10:00:00Z"))
            .await
            .unwrap();
    }
    for hour in ["11", "13", "15"] {
        let start = format!("2026-03-03T{hour}:00:00Z");
        let end = format!("2026-03-03T{hour}:30:00Z");
        w.client.create_reservation(&booking(&w, &w.room_a, &start, &end)).await.unwrap();
    }
    let page = w.client.list_reservations(None, Some("id"), Some(3)).await.unwrap();
    assert!(!page.complete, "more than $top matched: 206");
    assert_eq!(page.reservations.len(), 3);

    let before =
        w.served.emulator.request_counts().by_route.get("GET /tas/api/reservations").copied().unwrap_or(0);
    let all = w
        .client
        .reservations_in_window(
            None,
            at("2026-03-03T00:00:00Z"),
            at("2026-03-04T00:00:00Z"),
            Some("id,status"),
            3,
        )
        .await
        .unwrap();
    let calls = w.served.emulator.request_counts().by_route["GET /tas/api/reservations"] - before;
    assert_eq!(all.len(), 10, "every reservation exactly once");
    let mut ids: Vec<_> = all.iter().map(|r| r.id.unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "no duplicates across pages");
    assert!(calls >= 3, "paging needed several calls, made {calls}");
    assert!(all.windows(2).all(|p| p[0].planned_start_date <= p[1].planned_start_date), "ordered by start");

    let room_a_only = Fiql::eq("reservedFacilities.location.id", w.room_a.as_str());
    let only_a = w
        .client
        .reservations_in_window(
            Some(&room_a_only),
            at("2026-03-03T00:00:00Z"),
            at("2026-03-04T00:00:00Z"),
            None,
            2,
        )
        .await
        .unwrap();
    assert_eq!(only_a.len(), 3);
}

#[tokio::test]
async fn a_retried_create_finds_the_first_by_its_external_link() {
    let w = world().await;
    let link = ExternalLink::new("0190f0e4-7d1c-7a3b-9a6f-2b1c3d4e5f60", 7301).unwrap();
    // The first create is stored but its answer is lost (503).
    w.served.emulator.set_faults(Faults { fail_after_commit_next: 1, ..Faults::default() });
    let ensured = w
        .client
        .ensure_reservation(
            &booking(&w, &w.room_a, "2026-03-04T09:00:00Z", "2026-03-04T10:00:00Z"),
            &link,
            None,
        )
        .await
        .unwrap();
    assert!(!ensured.created, "the retry found the reservation the lost create had made");
    assert!(link.is_on(&ensured.reservation));
    assert_eq!(w.served.emulator.reservations().len(), 1, "no second reservation");
    assert_eq!(w.served.emulator.request_counts().by_route["POST /tas/api/reservations"], 1);

    // Asking again is harmless too.
    let again = w
        .client
        .ensure_reservation(
            &booking(&w, &w.room_a, "2026-03-04T09:00:00Z", "2026-03-04T10:00:00Z"),
            &link,
            None,
        )
        .await
        .unwrap();
    assert_eq!(again.reservation.id, ensured.reservation.id);
    let found = w.client.find_by_external_link(&link).await.unwrap().unwrap();
    assert_eq!(found.id, ensured.reservation.id);
    let other = ExternalLink::new("something-else", 7301).unwrap();
    assert!(w.client.find_by_external_link(&other).await.unwrap().is_none());
}

#[tokio::test]
async fn a_first_try_creates_without_looking_and_its_retry_still_looks() {
    let w = world().await;
    let lookups = |w: &World| {
        w.served.emulator.request_counts().by_route.get("GET /tas/api/reservations").copied().unwrap_or(0)
    };
    let posts = |w: &World| w.served.emulator.request_counts().by_route["POST /tas/api/reservations"];
    // A first try at a booking nobody made before: one call, the create.
    let first = ExternalLink::new("0190f0e4-7d1c-7a3b-9a6f-2b1c3d4e5f61", 7301).unwrap();
    let before = lookups(&w);
    let made = w
        .client
        .ensure_reservation_looking(
            &booking(&w, &w.room_a, "2026-03-05T09:00:00Z", "2026-03-05T10:00:00Z"),
            &first,
            None,
            false,
        )
        .await
        .unwrap();
    assert!(made.created);
    assert_eq!(lookups(&w), before, "no look-up before a first create");
    // Where an earlier run may have made it, the look-up comes first (the route the count above watches).
    let guarded = ExternalLink::new("0190f0e4-7d1c-7a3b-9a6f-2b1c3d4e5f63", 7301).unwrap();
    let booked = booking(&w, &w.room_a, "2026-03-07T09:00:00Z", "2026-03-07T10:00:00Z");
    w.client.ensure_reservation_looking(&booked, &guarded, None, true).await.unwrap();
    assert_eq!(lookups(&w), before + 1, "one look-up before a guarded create");
    // Its answer lost (stored, then 503): the retry looks first and finds it, so nothing is doubled.
    let second = ExternalLink::new("0190f0e4-7d1c-7a3b-9a6f-2b1c3d4e5f62", 7301).unwrap();
    w.served.emulator.set_faults(Faults { fail_after_commit_next: 1, ..Faults::default() });
    let posts_before = posts(&w);
    let ensured = w
        .client
        .ensure_reservation_looking(
            &booking(&w, &w.room_a, "2026-03-06T09:00:00Z", "2026-03-06T10:00:00Z"),
            &second,
            None,
            false,
        )
        .await
        .unwrap();
    assert!(!ensured.created, "the retry found what the lost create had made");
    assert_eq!(posts(&w), posts_before + 1, "one create");
    let linked = w.served.emulator.reservations().into_iter().filter(|r| second.is_on(r)).count();
    assert_eq!(linked, 1, "no second reservation");
}

#[tokio::test]
async fn cancel_with_a_reason_and_with_or_without_a_default() {
    let w = world().await;
    let a = w
        .client
        .create_reservation(&booking(&w, &w.room_a, "2026-03-05T09:00:00Z", "2026-03-05T10:00:00Z"))
        .await
        .unwrap();
    let b = w
        .client
        .create_reservation(&booking(&w, &w.room_a, "2026-03-05T11:00:00Z", "2026-03-05T12:00:00Z"))
        .await
        .unwrap();
    let c = w
        .client
        .create_reservation(&booking(&w, &w.room_a, "2026-03-05T13:00:00Z", "2026-03-05T14:00:00Z"))
        .await
        .unwrap();
    let (a, b, c) = (a.id.unwrap(), b.id.unwrap(), c.id.unwrap());

    // No default reason configured: a cancel without body is refused, with TOPdesk's reason.
    let err = w.client.cancel_reservation(a, &Reason::Default).await.unwrap_err();
    assert!(rejected_reason(err).contains("no default cancellation reason"));

    let moved = w.served.emulator.add_cancellation_reason("Meeting moved", false);
    let reasons = w.client.cancellation_reasons().await.unwrap();
    assert_eq!(reasons.iter().map(|r| r.name.clone().unwrap()).collect::<Vec<_>>(), vec!["Meeting moved"]);
    w.client.cancel_reservation(a, &Reason::Id(moved)).await.unwrap();
    w.client.cancel_reservation(b, &Reason::Name("Meeting moved".into())).await.unwrap();
    w.served.emulator.add_cancellation_reason("Cancelled in Outlook", true);
    w.client.cancel_reservation(c, &Reason::Default).await.unwrap();
    for id in [a, b, c] {
        assert_eq!(w.client.get_reservation(id).await.unwrap().status, Some(ReservationStatus::Cancelled));
    }
    // Cancelling again is idempotent for the client (TOPdesk refuses, the reservation is cancelled already).
    w.client.cancel_reservation(a, &Reason::Default).await.unwrap();
    // A cancelled reservation cannot be rescheduled.
    let err = w
        .client
        .reschedule_reservation(a, at("2026-03-06T09:00:00Z"), at("2026-03-06T10:00:00Z"))
        .await
        .unwrap_err();
    assert!(rejected_reason(err).contains("status 'cancelled'"));
}

#[tokio::test]
async fn a_request_is_rejected_not_cancelled() {
    let w = world().await;
    let mut dto = booking(&w, &w.room_a, "2026-03-07T09:00:00Z", "2026-03-07T10:00:00Z");
    dto.status = Some(ReservationStatus::Request);
    let id = w.client.create_reservation(&dto).await.unwrap().id.unwrap();
    let err = w.client.cancel_reservation(id, &Reason::Default).await.unwrap_err();
    assert!(matches!(err, TopdeskError::Rejected { .. }), "{err:?}");
    w.served.emulator.with_state(|s| {
        s.rejection_reasons.push(orb_emulators::topdesk::SearchItem {
            id: uuid::Uuid::new_v4(),
            name: "Room unavailable".into(),
            archived: false,
        })
    });
    let rejected = w.client.reject_reservation(id, &Reason::Name("Room unavailable".into())).await.unwrap();
    assert_eq!(rejected.status, Some(ReservationStatus::RejectedRequest));
}

#[tokio::test]
async fn series_of_specific_dates() {
    let w = world().await;
    let id = w
        .client
        .create_reservation(&booking(&w, &w.room_a, "2026-03-09T09:00:00Z", "2026-03-09T10:00:00Z"))
        .await
        .unwrap()
        .id
        .unwrap();
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let series = w
        .client
        .make_recurrent(id, &[d("2026-03-09"), d("2026-03-16"), d("2026-03-23")], false)
        .await
        .unwrap();
    assert_eq!(series.len(), 3, "the original's own date is ignored");
    let series_id = series[0].series.as_ref().and_then(|s| s.id).unwrap();
    assert!(series.iter().all(|r| r.series.as_ref().and_then(|s| s.id) == Some(series_id)));
    assert_eq!(series[2].planned_start_date, Some(at("2026-03-23T09:00:00Z")), "same time of day");
    assert!(series[0].brief_description.is_none(), "series answers carry reduced fields only");

    let more = w.client.add_occurrences(id, &[d("2026-03-23"), d("2026-03-30")], false).await.unwrap();
    assert_eq!(more.len(), 4, "existing dates are ignored");
    let set = w.client.set_occurrences(id, &[d("2026-03-30")], false).await.unwrap();
    assert_eq!(set.len(), 2, "PUT deletes later occurrences not listed");

    let listed = w
        .client
        .list_reservations(Some(&Fiql::eq("series.id", series_id.to_string())), None, None)
        .await
        .unwrap();
    assert_eq!(listed.reservations.len(), 2);

    let err = w.client.make_recurrent(id, &[d("2026-04-06")], false).await.unwrap_err();
    assert!(rejected_reason(err).contains("already part of a recurrent series"));
    // An occurrence's room cannot be moved.
    let err = w.client.move_room(id, &w.room_a, &w.room_b).await.unwrap_err();
    assert!(rejected_reason(err).contains("recurring"));
}

#[tokio::test]
async fn persons_by_mixed_case_email_and_rooms() {
    let w = world().await;
    let found = w.client.find_persons_by_email("  ANNA.bakker@contoso.COM ").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, Some(w.anna));
    assert!(w.client.find_persons_by_email("nobody@contoso.com").await.unwrap().is_empty());
    assert!(matches!(
        w.client.find_persons_by_email("not an address").await,
        Err(TopdeskError::Invalid { .. })
    ));

    // A TOPdesk that compares case-sensitively still finds the card when spelled as on the card.
    w.served.emulator.with_state(|s| s.settings.text_case_sensitive = true);
    assert!(w.client.find_persons_by_email("anna.bakker@contoso.com").await.unwrap().is_empty());
    assert_eq!(w.client.find_persons_by_email("Anna.Bakker@Contoso.com").await.unwrap().len(), 1);

    let rooms = w.client.reservable_locations(&[]).await.unwrap();
    assert_eq!(rooms.len(), 2);
    let b = w.client.reservable_location(&w.room_b).await.unwrap();
    assert_eq!(b.name.as_deref(), Some("Room B"));
    let card = w.client.location(&w.room_b).await.unwrap();
    assert_eq!(card.reservation_management.and_then(|m| m.block_time), Some(15));
    let by_name = w.client.locations(Some(&Fiql::eq("name", "Room A")), Some("id,name"), None).await.unwrap();
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].id.as_ref(), Some(&w.room_a));
    assert!(by_name[0].branch.is_none(), "$fields honoured");
}

#[tokio::test]
async fn bad_input_is_rejected_with_topdesks_reason() {
    let w = world().await;
    let check = |err: TopdeskError, expected: &str| {
        let reason = rejected_reason(err);
        assert!(reason.contains(expected), "reason {reason:?} should contain {expected:?}");
    };
    // End before start.
    let err = w
        .client
        .create_reservation(&booking(&w, &w.room_a, "2026-03-10T10:00:00Z", "2026-03-10T09:00:00Z"))
        .await
        .unwrap_err();
    check(err, "end date must be after the planned start date");
    // Unknown room.
    let unknown = TopdeskLocationId::parse(&uuid::Uuid::new_v4().to_string()).unwrap();
    let err = w
        .client
        .create_reservation(&booking(&w, &unknown, "2026-03-10T09:00:00Z", "2026-03-10T10:00:00Z"))
        .await
        .unwrap_err();
    check(err, "No location found");
    // Brief description over 100 characters.
    let mut long = booking(&w, &w.room_a, "2026-03-10T09:00:00Z", "2026-03-10T10:00:00Z");
    long.brief_description = Some("x".repeat(101));
    let err = w.client.create_reservation(&long).await.unwrap_err();
    check(err, "at most 100 characters");
    // Changing the external link.
    let link = ExternalLink::new("first", 7301).unwrap();
    let made = w
        .client
        .ensure_reservation(
            &booking(&w, &w.room_a, "2026-03-10T09:00:00Z", "2026-03-10T10:00:00Z"),
            &link,
            None,
        )
        .await
        .unwrap();
    let change = UpdateReservationDto {
        external_link: Some(ExternalLink::new("second", 7301).unwrap().to_dto(None)),
        ..Default::default()
    };
    let err = w.client.update_reservation(made.reservation.id.unwrap(), &change, None).await.unwrap_err();
    check(err, "cannot be changed");
    // A double booking in a room that refuses them.
    let err = w
        .client
        .create_reservation(&booking(&w, &w.room_a, "2026-03-10T09:30:00Z", "2026-03-10T10:30:00Z"))
        .await
        .unwrap_err();
    check(err, "already reserved");
    assert_eq!(w.served.emulator.reservations().len(), 1, "nothing bad was stored");
}

#[tokio::test]
async fn throttling_is_retried_honouring_retry_after_and_errors_are_not() {
    let w = world().await;
    w.served.emulator.set_faults(Faults { throttle_next: 2, retry_after_secs: 0, ..Faults::default() });
    w.client.current_operator().await.unwrap();
    assert_eq!(
        w.served.emulator.request_counts().by_route["GET /tas/api/operators/current"],
        3,
        "2 × 429, then 200"
    );

    w.served.emulator.set_faults(Faults { error_next: 10, ..Faults::default() });
    let err = w.client.current_operator().await.unwrap_err();
    assert!(matches!(err, TopdeskError::Transient { .. }), "{err:?}");
    assert_eq!(
        w.served.emulator.request_counts().by_route["GET /tas/api/operators/current"],
        3 + 4,
        "1 try + 3 retries"
    );

    // A 400 is never retried.
    w.served.emulator.set_faults(Faults::default());
    let before = w.served.emulator.request_counts().total;
    let _ = w
        .client
        .create_reservation(&booking(&w, &w.room_a, "2026-03-11T10:00:00Z", "2026-03-11T09:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(w.served.emulator.request_counts().total, before + 1);
}

#[tokio::test]
async fn the_concurrency_cap_holds_requests_back() {
    let w = world().await;
    let mut config = TopdeskConfig::new(
        Url::parse(&w.served.base_url).unwrap(),
        "orb-api",
        SecretString::from("app-secret-1"),
        Arc::new(w.clock.clone()),
    );
    config.max_concurrency = 1;
    let capped = TopdeskClient::new(config).unwrap();
    w.served.emulator.set_faults(Faults { latency_ms: 150, ..Faults::default() });
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..4).map(|_| capped.current_operator()).collect();
    for result in futures_join(calls).await {
        result.unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(600), "one at a time: {:?}", started.elapsed());

    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..4).map(|_| w.client.current_operator()).collect();
    for result in futures_join(calls).await {
        result.unwrap();
    }
    assert!(started.elapsed() < Duration::from_millis(550), "4 in parallel: {:?}", started.elapsed());
}

async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    join_all(futures.into_iter().map(Box::pin).collect()).await
}

async fn join_all<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if results[i].is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    Poll::Ready(v) => results[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    results.into_iter().map(|r| r.expect("ready")).collect()
}

#[tokio::test]
async fn persons_by_id_return_the_known_ones_only() {
    let w = world().await;
    let bob = w.served.emulator.add_person("Bob", "Jansen", Some("bob@contoso.com"));
    let no_mail = w.served.emulator.add_person("Visitor", "Desk", None);
    let unknown: PersonId = "00000000-0000-4000-8000-000000000001".parse().unwrap();
    let mut found = w.client.find_persons_by_ids(&[bob, unknown, w.anna, no_mail]).await.unwrap();
    found.sort_by_key(|p| p.sur_name.clone());
    let got: Vec<_> = found.iter().map(|p| (p.id, p.email.clone())).collect();
    assert_eq!(
        got,
        vec![
            (Some(w.anna), Some("Anna.Bakker@Contoso.com".to_owned())),
            (Some(no_mail), None),
            (Some(bob), Some("bob@contoso.com".to_owned())),
        ]
    );
    assert!(w.client.find_persons_by_ids(&[]).await.unwrap().is_empty());
    let many = vec![bob; 101];
    assert!(matches!(w.client.find_persons_by_ids(&many).await, Err(TopdeskError::Invalid { .. })));
}
