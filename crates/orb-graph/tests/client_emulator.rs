//! ORB's Graph client against the Graph emulator over real HTTP on port 0.

mod support;

use std::time::{Duration, Instant};

use orb_emulators::graph::{DeltaExpiry, Knobs};
use orb_graph::model::{
    Attendee, DateTimeTimeZone, Event, EventType, Location, Message, PatternedRecurrence, Recipient,
    ResponseType,
};
use orb_graph::{
    CertificateCredential, ClientOptions, Credential, DeltaCursor, GraphError, ORB_MATCH_PROPERTY_ID,
};
use secrecy::SecretString;
use support::{CLIENT_ID, TENANT, World, addr, at, certificate, corr, meeting};

#[tokio::test]
async fn tokens_by_secret_and_certificate_wrong_ones_refused() {
    let world = World::start().await;
    let (registered_cert, registered_key) = certificate();
    let (other_cert, other_key) = certificate();
    world.em.add_app_certificate(TENANT, CLIENT_ID, &registered_cert);

    async fn check(world: &World, name: &str, credential: Credential, refused_with: Option<&str>) {
        let client = world.client_with(credential, ClientOptions::default());
        let result = client.tokens().token(client.app()).await;
        match (result, refused_with) {
            (Ok(_), None) => {}
            (Err(GraphError::Unauthorized { reason, .. }), Some(code)) => {
                assert!(reason.contains(code), "{name}: {reason:?} should name {code}")
            }
            (other, want) => panic!("{name}: got {other:?}, wanted refusal {want:?}"),
        }
    }
    check(&world, "right secret", Credential::Secret(SecretString::from(support::SECRET)), None).await;
    check(&world, "wrong secret", Credential::Secret(SecretString::from("guess")), Some("AADSTS7000215"))
        .await;
    let good = CertificateCredential::from_der(registered_cert.clone(), &registered_key).unwrap();
    check(&world, "registered certificate", Credential::Certificate(good), None).await;
    let unknown = CertificateCredential::from_der(other_cert, &other_key).unwrap();
    check(&world, "unregistered certificate", Credential::Certificate(unknown), Some("AADSTS700027")).await;
    // A registered certificate's thumbprint with another key's signature is refused too.
    let forged = CertificateCredential::from_der(registered_cert, &other_key).unwrap();
    check(&world, "forged signature", Credential::Certificate(forged), Some("signature")).await;
}

#[tokio::test]
async fn tokens_are_cached_and_refreshed_before_expiry() {
    let world = World::start().await;
    let client = world.client();
    let first = client.tokens().token(client.app()).await.unwrap();
    let again = client.tokens().token(client.app()).await.unwrap();
    assert_eq!(first.secret(), again.secret(), "a fresh token is reused");
    world.clock.advance(chrono::Duration::minutes(56)); // 3599 s lifetime, refreshed 5 min early
    let later = client.tokens().token(client.app()).await.unwrap();
    assert_ne!(first.secret(), later.secret(), "a token close to expiry is replaced");
}

#[tokio::test]
async fn meeting_makes_an_accepted_room_copy_and_a_conflict_is_declined() {
    let world = World::start().await;
    let client = world.client();
    let (anna, bob, room) = (addr("anna@contoso.com"), addr("bob@contoso.com"), addr("room1@contoso.com"));
    let input = meeting("Project review", "room1@contoso.com", "2026-09-02T09:00:00", "2026-09-02T10:00:00");
    let created = client.create_event(&anna, &input, "match-1", corr()).await.unwrap();
    assert_eq!(created.transaction_id.as_deref(), Some("match-1"));
    let id = created.id.clone().unwrap();

    let organizer_copy = client.get_event(&anna, &id, corr()).await.unwrap();
    assert_eq!(organizer_copy.attendee_response("room1@contoso.com"), Some(ResponseType::Accepted));
    assert_eq!(organizer_copy.extended_property(ORB_MATCH_PROPERTY_ID), Some("match-1"));

    let room_view = client
        .calendar_view(&room, at("2026-09-02T00:00:00Z"), at("2026-09-03T00:00:00Z"), corr())
        .await
        .unwrap();
    assert_eq!(room_view.len(), 1);
    let room_copy = &room_view[0];
    assert_eq!(room_copy.ical_uid, organizer_copy.ical_uid, "same meeting");
    assert_ne!(room_copy.id, organizer_copy.id, "different mailbox item");
    assert_eq!(room_copy.response_status.as_ref().and_then(|s| s.response), Some(ResponseType::Accepted));
    assert_eq!(room_copy.subject.as_deref(), Some("Anna Bakker"), "DeleteSubject + AddOrganizerToSubject");
    assert_eq!(room_copy.extended_property(ORB_MATCH_PROPERTY_ID), None);

    // A retried create with the same match id returns the first event instead of a second one.
    let retried = client.create_event(&anna, &input, "match-1", corr()).await.unwrap();
    assert_eq!(retried.id, created.id);
    let found = client.find_by_match_id(&anna, "match-1", corr()).await.unwrap().expect("found by match id");
    assert_eq!(found.id, created.id);
    assert!(client.find_by_match_id(&anna, "match-2", corr()).await.unwrap().is_none());

    let clash = meeting("Clash", "room1@contoso.com", "2026-09-02T09:30:00", "2026-09-02T10:30:00");
    let declined = client.create_event(&bob, &clash, "match-2", corr()).await.unwrap();
    let declined = client.get_event(&bob, declined.id.as_deref().unwrap(), corr()).await.unwrap();
    assert_eq!(declined.attendee_response("room1@contoso.com"), Some(ResponseType::Declined));
    let room_view = client
        .calendar_view(&room, at("2026-09-02T00:00:00Z"), at("2026-09-03T00:00:00Z"), corr())
        .await
        .unwrap();
    assert_eq!(room_view.len(), 1, "a declined meeting leaves no room copy");
}

#[tokio::test]
async fn retime_move_and_cancel_reach_the_room_copies() {
    let world = World::start().await;
    let client = world.client();
    let (anna, room1, room2) =
        (addr("anna@contoso.com"), addr("room1@contoso.com"), addr("room2@contoso.com"));
    let day = (at("2026-09-02T00:00:00Z"), at("2026-09-03T00:00:00Z"));
    let created = client
        .create_event(
            &anna,
            &meeting("Sync", "room1@contoso.com", "2026-09-02T09:00:00", "2026-09-02T10:00:00"),
            "m-7",
            corr(),
        )
        .await
        .unwrap();
    let id = created.id.unwrap();

    let retime = Event {
        start: Some(DateTimeTimeZone {
            date_time: "2026-09-02T13:00:00".into(),
            time_zone: Some("UTC".into()),
        }),
        end: Some(DateTimeTimeZone {
            date_time: "2026-09-02T14:00:00".into(),
            time_zone: Some("UTC".into()),
        }),
        ..Event::default()
    };
    client.update_event(&anna, &id, &retime, None, corr()).await.unwrap();
    let room_view = client.calendar_view(&room1, day.0, day.1, corr()).await.unwrap();
    assert_eq!(room_view[0].start.as_ref().unwrap().to_utc().unwrap(), at("2026-09-02T13:00:00Z"));

    let move_to_room2 = Event {
        location: Some(Location::room("Room 2", "room2@contoso.com")),
        attendees: Some(vec![Attendee::resource("room2@contoso.com", None)]),
        ..Event::default()
    };
    client.update_event(&anna, &id, &move_to_room2, None, corr()).await.unwrap();
    let old = client.calendar_view(&room1, day.0, day.1, corr()).await.unwrap();
    assert_eq!(
        old[0].is_cancelled,
        Some(true),
        "the old room's copy is cancelled (RemoveCanceledMeetings off)"
    );
    assert!(old[0].subject.as_deref().unwrap().starts_with("Canceled:"));
    let new = client.calendar_view(&room2, day.0, day.1, corr()).await.unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].is_cancelled, Some(false));

    let room_copy_id = new[0].id.clone().unwrap();
    let refused = client.cancel_event(&room2, &room_copy_id, None, None, corr()).await.unwrap_err();
    assert!(matches!(refused, GraphError::Rejected { .. }), "only the organizer cancels: {refused:?}");

    client.cancel_event(&anna, &id, Some("No longer needed"), None, corr()).await.unwrap();
    let after = client.calendar_view(&room2, day.0, day.1, corr()).await.unwrap();
    assert_eq!(after[0].is_cancelled, Some(true));
    let gone = client.get_event(&anna, &id, corr()).await.unwrap_err();
    assert!(matches!(gone, GraphError::NotFound { .. }), "{gone:?}");
}

fn weekly(start_date: &str, count: i32) -> PatternedRecurrence {
    serde_json::from_value(serde_json::json!({
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["wednesday"], "firstDayOfWeek": "sunday"},
        "range": {"type": "numbered", "startDate": start_date, "numberOfOccurrences": count}
    }))
    .unwrap()
}

#[tokio::test]
async fn series_with_an_exception_and_a_cancelled_occurrence() {
    let world = World::start().await;
    let client = world.client();
    let (anna, room) = (addr("anna@contoso.com"), addr("room1@contoso.com"));
    let mut input = meeting("Weekly", "room1@contoso.com", "2026-09-02T09:00:00", "2026-09-02T10:00:00");
    input.recurrence = Some(weekly("2026-09-02", 4));
    let master = client.create_event(&anna, &input, "series-1", corr()).await.unwrap();
    assert_eq!(master.kind, Some(EventType::SeriesMaster));
    let master_id = master.id.unwrap();
    let window = (at("2026-09-01T00:00:00Z"), at("2026-10-01T00:00:00Z"));

    let occurrences = client.instances(&anna, &master_id, window.0, window.1, corr()).await.unwrap();
    assert_eq!(occurrences.len(), 4);
    assert!(occurrences.iter().all(|o| o.series_master_id.as_deref() == Some(master_id.as_str())));
    let icals: std::collections::BTreeSet<_> = occurrences.iter().map(|o| o.ical_uid.clone()).collect();
    assert_eq!(icals.len(), 4, "each occurrence has its own iCalUId");

    let moved = Event {
        start: Some(DateTimeTimeZone {
            date_time: "2026-09-09T14:00:00".into(),
            time_zone: Some("UTC".into()),
        }),
        end: Some(DateTimeTimeZone {
            date_time: "2026-09-09T15:00:00".into(),
            time_zone: Some("UTC".into()),
        }),
        ..Event::default()
    };
    client.update_event(&anna, occurrences[1].id.as_deref().unwrap(), &moved, None, corr()).await.unwrap();
    client.delete_event(&anna, occurrences[2].id.as_deref().unwrap(), None, corr()).await.unwrap();

    let after = client.instances(&anna, &master_id, window.0, window.1, corr()).await.unwrap();
    let kinds: Vec<_> = after.iter().map(|o| o.kind.unwrap()).collect();
    assert_eq!(kinds, vec![EventType::Occurrence, EventType::Exception, EventType::Occurrence]);
    assert_eq!(after[1].start.as_ref().unwrap().to_utc().unwrap(), at("2026-09-09T14:00:00Z"));
    let master = client.get_event(&anna, &master_id, corr()).await.unwrap();
    // ORB's reads name their fields: the master comes without the properties ORB does not ask for.
    assert!(master.recurrence.is_some() && master.cancelled_occurrences.is_none() && master.body.is_none());

    let room_view = client.calendar_view(&room, window.0, window.1, corr()).await.unwrap();
    let room_starts: Vec<_> = room_view.iter().map(|e| e.start.as_ref().unwrap().to_utc().unwrap()).collect();
    assert_eq!(
        room_starts,
        vec![at("2026-09-02T09:00:00Z"), at("2026-09-09T14:00:00Z"), at("2026-09-23T09:00:00Z")],
        "the room's copy follows the exception and the cancellation"
    );
}

#[tokio::test]
async fn delta_round_trip_with_paging_and_restarts() {
    let world = World::start().await;
    let options = ClientOptions { page_size: 2, ..ClientOptions::default() };
    let client = world.client_with(Credential::Secret(SecretString::from(support::SECRET)), options);
    let (anna, room) = (addr("anna@contoso.com"), addr("room1@contoso.com"));
    for (i, hour) in [8, 10, 12].iter().enumerate() {
        let m = meeting(
            &format!("M{i}"),
            "room1@contoso.com",
            &format!("2026-09-03T{hour:02}:00:00"),
            &format!("2026-09-03T{hour:02}:30:00"),
        );
        client.create_event(&anna, &m, &format!("d-{i}"), corr()).await.unwrap();
    }
    let cursor = DeltaCursor::initial(at("2026-09-01T00:00:00Z"), at("2026-10-01T00:00:00Z"));
    let first = client.delta(&room, &cursor, corr()).await.unwrap();
    assert_eq!(first.changed.len(), 3, "initial round over two pages");
    assert!(!first.restarted);
    let pages = world.em.requests().iter().filter(|r| r.path.ends_with("/calendarView/delta")).count();
    assert_eq!(pages, 2, "page size 2 makes two pages");

    let quiet = client.delta(&room, &first.cursor, corr()).await.unwrap();
    assert!(quiet.changed.is_empty() && quiet.removed.is_empty(), "nothing changed: {quiet:?}");

    let organizer_events = client.calendar_view(&anna, cursor.start, cursor.end, corr()).await.unwrap();
    client.delete_event(&anna, organizer_events[0].id.as_deref().unwrap(), None, corr()).await.unwrap();
    let extra = meeting("New", "room1@contoso.com", "2026-09-04T08:00:00", "2026-09-04T09:00:00");
    client.create_event(&anna, &extra, "d-new", corr()).await.unwrap();
    let second = client.delta(&room, &quiet.cursor, corr()).await.unwrap();
    let subjects: Vec<_> = second.changed.iter().map(|e| e.subject.clone().unwrap_or_default()).collect();
    // The deleted meeting's room copy is kept as cancelled (RemoveCanceledMeetings off) and the new one added.
    assert_eq!(second.changed.len(), 2, "{subjects:?}");
    assert!(second.changed.iter().any(|e| e.is_cancelled == Some(true)));

    world.em.expire_delta_tokens("room1@contoso.com", DeltaExpiry::Gone);
    let restarted = client.delta(&room, &second.cursor, corr()).await.unwrap();
    assert!(restarted.restarted, "410 Gone starts a full sync");
    assert_eq!(restarted.changed.len(), 4);

    world.em.expire_delta_tokens("room1@contoso.com", DeltaExpiry::SyncStateNotFound);
    let again = client.delta(&room, &restarted.cursor, corr()).await.unwrap();
    assert!(again.restarted, "syncStateNotFound starts a full sync");
    assert_eq!(again.changed.len(), 4);

    // Removal shows up as @removed when an item is deleted from the room calendar itself.
    let room_item = again.changed[0].id.clone().unwrap();
    client.delete_event(&room, &room_item, None, corr()).await.unwrap();
    let removed = client.delta(&room, &again.cursor, corr()).await.unwrap();
    assert_eq!(removed.removed, vec![room_item]);
}

async fn storm(concurrency: usize) -> (orb_emulators::graph::MailboxCounters, Duration) {
    let world = World::start().await;
    let mut storm = std::collections::BTreeMap::new();
    storm.insert("room1@contoso.com".to_owned(), 6);
    world.em.set_knobs(Knobs { latency_ms: 40, retry_after_secs: 1, storm, ..Knobs::default() });
    let options = ClientOptions { per_mailbox_concurrency: concurrency, ..ClientOptions::default() };
    let client = std::sync::Arc::new(
        world.client_with(Credential::Secret(SecretString::from(support::SECRET)), options),
    );
    let room = addr("room1@contoso.com");
    let started = Instant::now();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let (client, room) = (client.clone(), room.clone());
            tokio::spawn(async move {
                client
                    .calendar_view(&room, at("2026-09-01T00:00:00Z"), at("2026-09-02T00:00:00Z"), corr())
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("every call succeeds after the storm");
    }
    (world.em.counters()["room1@contoso.com"].clone(), started.elapsed())
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_with_at_most_four_in_flight() {
    let (counters, elapsed) = storm(4).await;
    assert_eq!(counters.throttled, 6, "only the storm's 429s, no concurrency breach: {counters:?}");
    assert_eq!(counters.requests, 18, "12 calls + 6 retries");
    assert_eq!(counters.concurrency_refusals, 0);
    assert!(counters.max_attempted <= 4, "never more than 4 requests at the mailbox at once: {counters:?}");
    assert!(elapsed >= Duration::from_secs(1), "Retry-After was honoured");
}

#[tokio::test]
async fn the_emulator_counters_catch_a_client_that_does_not_cap_concurrency() {
    let (counters, _) = storm(12).await;
    assert!(counters.max_attempted > 4, "{counters:?}");
    assert!(counters.concurrency_refusals > 0, "{counters:?}");
}

#[tokio::test]
async fn rooms_mail_prefer_headers_and_correlation_ids() {
    let world = World::start().await;
    let options =
        ClientOptions { time_zone: Some("W. Europe Standard Time".into()), ..ClientOptions::default() };
    let client = world.client_with(Credential::Secret(SecretString::from(support::SECRET)), options);
    let rooms = client.list_rooms(corr()).await.unwrap();
    let mut addresses: Vec<_> = rooms.iter().filter_map(|r| r.email_address.clone()).collect();
    addresses.sort();
    assert_eq!(addresses, vec!["room1@contoso.com", "room2@contoso.com"]);

    let id = orb_core::CorrelationId::generate(at("2026-09-01T06:00:00Z"));
    let message = Message {
        subject: Some("Your room booking".into()),
        to_recipients: Some(vec![Recipient::new("anna@contoso.com", None)]),
        ..Message::default()
    };
    client.send_mail(&addr("bob@contoso.com"), &message, false, id).await.unwrap();
    let outbox = world.em.outbox();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].from, "bob@contoso.com");
    assert!(!outbox[0].save_to_sent_items);
    let logged = world.em.requests().into_iter().find(|r| r.path.ends_with("/sendMail")).unwrap();
    assert_eq!(
        logged.client_request_id,
        Some(id.to_string()),
        "client-request-id carries the correlation id"
    );

    let created = client
        .create_event(
            &addr("anna@contoso.com"),
            &meeting("TZ", "room1@contoso.com", "2026-09-02T09:00:00", "2026-09-02T10:00:00"),
            "tz-1",
            corr(),
        )
        .await
        .unwrap();
    let start = created.start.unwrap();
    assert_eq!(start.date_time, "2026-09-02T11:00:00.0000000", "shown in the preferred zone");
    assert_eq!(start.time_zone.as_deref(), Some("W. Europe Standard Time"));
    assert!(created.id.unwrap().starts_with("AAkALg"), "immutable id requested and given");
}

/// A conditional write of an event (`If-Match`) as the engine makes it.
#[derive(Debug, Clone, Copy)]
enum Write {
    Update,
    Cancel,
    Delete,
}

/// What the write names in `If-Match`.
#[derive(Debug, Clone, Copy)]
enum Condition {
    /// No `If-Match`.
    Unconditional,
    /// The version read before a person changed the meeting.
    ReadBeforeTheChange,
    /// The version after it.
    Current,
    /// `*`: any version.
    Any,
}

#[tokio::test]
async fn a_conditional_write_is_refused_with_412_when_the_event_changed_since_it_was_read() {
    use Condition::*;
    use Write::*;
    let world = World::start().await;
    let client = world.client();
    let anna = addr("anna@contoso.com");
    let cases = [
        (Update, ReadBeforeTheChange, false),
        (Update, Current, true),
        (Update, Any, true),
        (Update, Unconditional, true),
        (Cancel, ReadBeforeTheChange, false),
        (Cancel, Current, true),
        (Delete, ReadBeforeTheChange, false),
        (Delete, Current, true),
        (Delete, Unconditional, true),
    ];
    for (n, (write, condition, lands)) in cases.into_iter().enumerate() {
        let day = 2 + u32::try_from(n).unwrap();
        let (start, end) = (format!("2026-09-{day:02}T09:00:00"), format!("2026-09-{day:02}T10:00:00"));
        let made = client
            .create_event(
                &anna,
                &meeting("Sync", "room1@contoso.com", &start, &end),
                &format!("m-{n}"),
                corr(),
            )
            .await
            .unwrap();
        let id = made.id.clone().unwrap();
        let before = client.get_event(&anna, &id, corr()).await.unwrap();
        // A person renames the meeting in Outlook: a new version.
        let rename = Event { subject: Some("Sync (moved?)".into()), ..Event::default() };
        world.em.update_in("anna@contoso.com", &id, &rename, &Default::default()).unwrap();
        let changed = client.get_event(&anna, &id, corr()).await.unwrap();
        assert_ne!(changed.odata_etag, before.odata_etag, "every change gives the event a new etag");
        assert_eq!(
            changed.odata_etag.as_deref(),
            Some(orb_graph::etag_for_change_key(changed.change_key.as_deref().unwrap()).as_str()),
            "the etag is W/\"<changeKey>\""
        );
        let etag = match condition {
            Unconditional => None,
            ReadBeforeTheChange => before.odata_etag.clone(),
            Current => changed.odata_etag.clone(),
            Any => Some("*".to_owned()),
        };
        let retime = Event {
            start: Some(DateTimeTimeZone {
                date_time: start.replace("T09", "T11"),
                time_zone: Some("UTC".into()),
            }),
            end: Some(DateTimeTimeZone {
                date_time: end.replace("T10", "T12"),
                time_zone: Some("UTC".into()),
            }),
            ..Event::default()
        };
        let result = match write {
            Update => client.update_event(&anna, &id, &retime, etag.as_deref(), corr()).await.map(drop),
            Cancel => client.cancel_event(&anna, &id, None, etag.as_deref(), corr()).await,
            Delete => client.delete_event(&anna, &id, etag.as_deref(), corr()).await,
        };
        let case = format!("{write:?} {condition:?}");
        if lands {
            result.unwrap_or_else(|e| panic!("{case}: {e:?}"));
            continue;
        }
        match result {
            Err(GraphError::Conflict { message }) => {
                assert!(message.contains("ErrorIrresolvableConflict"), "{case}: {message}")
            }
            other => panic!("{case}: expected 412 Conflict, got {other:?}"),
        }
        assert!(
            !GraphError::Conflict { message: String::new() }.is_retryable(),
            "{case}: read again instead"
        );
        let after = client.get_event(&anna, &id, corr()).await.unwrap();
        assert_eq!(after, changed, "{case}: a refused write changes nothing");
    }
}
