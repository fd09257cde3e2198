//! The Graph emulator's meeting semantics, control API and throttling.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orb_core::FixedClock;
use orb_emulators::graph::{GraphEmulator, Knobs, RoomInfo, RoomSettings, View, serve};
use orb_graph::model::{Attendee, DateTimeTimeZone, Event, Location, ResponseType};
use serde_json::{Value, json};

const TENANT: &str = "tenant-1";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn world() -> GraphEmulator {
    let em = GraphEmulator::new(Arc::new(FixedClock::new(at("2026-09-01T06:00:00Z"))));
    em.add_user(TENANT, "anna@contoso.com", "Anna Bakker");
    em.add_user(TENANT, "bob@contoso.com", "Bob de Vries");
    em.add_room(TENANT, "room1@contoso.com", "Room 1", RoomInfo::default());
    em
}

fn meeting(subject: &str, start: &str, end: &str) -> Event {
    let dt = |t: &str| Some(DateTimeTimeZone { date_time: t.to_owned(), time_zone: Some("UTC".to_owned()) });
    Event {
        subject: Some(subject.to_owned()),
        start: dt(start),
        end: dt(end),
        location: Some(Location::room("Room 1", "room1@contoso.com")),
        attendees: Some(vec![Attendee::resource("room1@contoso.com", Some("Room 1"))]),
        ..Event::default()
    }
}

fn room_items(em: &GraphEmulator) -> Vec<Event> {
    em.calendar_view("room1@contoso.com", at("2026-09-01T00:00:00Z"), at("2027-09-01T00:00:00Z")).unwrap()
}

#[test]
fn room_settings_decide_what_the_room_copy_shows_and_whether_it_conflicts() {
    struct Case {
        settings: RoomSettings,
        subject: &'static str,
        second_meeting: ResponseType,
    }
    fn check(case: Case) {
        let em = world();
        em.set_room_settings("room1@contoso.com", case.settings.clone());
        let first = em
            .create_in(
                "anna@contoso.com",
                &meeting("Budget", "2026-09-02T09:00:00", "2026-09-02T10:00:00"),
                &View::default(),
            )
            .unwrap();
        assert_eq!(
            first.attendee_response("room1@contoso.com"),
            Some(ResponseType::None),
            "the create response shows the room's answer as not yet given"
        );
        let copy = &room_items(&em)[0];
        assert_eq!(copy.subject.as_deref(), Some(case.subject), "{:?}", case.settings);
        let second = em
            .create_in(
                "bob@contoso.com",
                &meeting("Clash", "2026-09-02T09:30:00", "2026-09-02T10:30:00"),
                &View::default(),
            )
            .unwrap();
        let second = em.events("bob@contoso.com").unwrap().into_iter().find(|e| e.id == second.id).unwrap();
        assert_eq!(
            second.attendee_response("room1@contoso.com"),
            Some(case.second_meeting),
            "{:?}",
            case.settings
        );
    }
    let base = RoomSettings::default();
    check(Case { settings: base.clone(), subject: "Anna Bakker", second_meeting: ResponseType::Declined });
    check(Case {
        settings: RoomSettings { add_organizer_to_subject: false, ..base.clone() },
        subject: "",
        second_meeting: ResponseType::Declined,
    });
    check(Case {
        settings: RoomSettings { delete_subject: false, add_organizer_to_subject: false, ..base.clone() },
        subject: "Budget",
        second_meeting: ResponseType::Declined,
    });
    check(Case {
        settings: RoomSettings { delete_subject: false, ..base.clone() },
        subject: "Anna Bakker Budget",
        second_meeting: ResponseType::Declined,
    });
    check(Case {
        settings: RoomSettings { allow_conflicts: true, ..base },
        subject: "Anna Bakker",
        second_meeting: ResponseType::Accepted,
    });
}

#[test]
fn meetings_beyond_the_booking_window_are_declined_and_cancellations_follow_the_setting() {
    let em = world();
    let far = em
        .create_in(
            "anna@contoso.com",
            &meeting("Far", "2027-06-01T09:00:00", "2027-06-01T10:00:00"),
            &View::default(),
        )
        .unwrap();
    let far = em.events("anna@contoso.com").unwrap().into_iter().find(|e| e.id == far.id).unwrap();
    assert_eq!(far.attendee_response("room1@contoso.com"), Some(ResponseType::Declined));
    assert!(room_items(&em).is_empty());

    let near = em
        .create_in(
            "anna@contoso.com",
            &meeting("Near", "2026-09-02T09:00:00", "2026-09-02T10:00:00"),
            &View::default(),
        )
        .unwrap();
    em.remove_in("anna@contoso.com", near.id.as_deref().unwrap(), true).unwrap();
    assert_eq!(room_items(&em)[0].is_cancelled, Some(true), "kept as cancelled by default");

    em.set_room_settings(
        "room1@contoso.com",
        RoomSettings { remove_canceled_meetings: true, ..RoomSettings::default() },
    );
    let other = em
        .create_in(
            "anna@contoso.com",
            &meeting("Other", "2026-09-03T09:00:00", "2026-09-03T10:00:00"),
            &View::default(),
        )
        .unwrap();
    em.remove_in("anna@contoso.com", other.id.as_deref().unwrap(), false).unwrap();
    assert_eq!(room_items(&em).len(), 1, "RemoveCanceledMeetings removes the cancelled copy");
}

#[test]
fn an_occurrence_moved_to_another_room_leaves_the_first_room_and_joins_the_other() {
    let em = world();
    em.add_room(TENANT, "room2@contoso.com", "Room 2", RoomInfo::default());
    let mut series = meeting("Weekly", "2026-09-08T09:00:00", "2026-09-08T10:00:00");
    series.recurrence = Some(
        serde_json::from_value(json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
            "range": {"type": "numbered", "startDate": "2026-09-08", "numberOfOccurrences": 4}
        }))
        .unwrap(),
    );
    em.create_in("anna@contoso.com", &series, &View::default()).unwrap();
    let view =
        |mb: &str| em.calendar_view(mb, at("2026-09-01T00:00:00Z"), at("2026-10-15T00:00:00Z")).unwrap();
    let second = view("anna@contoso.com")[1].clone();
    let moved = Event {
        location: Some(Location::room("Room 2", "room2@contoso.com")),
        attendees: Some(vec![Attendee::resource("room2@contoso.com", Some("Room 2"))]),
        ..Event::default()
    };
    em.update_in("anna@contoso.com", second.id.as_deref().unwrap(), &moved, &View::default()).unwrap();

    let organizer = view("anna@contoso.com");
    assert_eq!(organizer.len(), 4);
    assert_eq!(organizer[1].attendee_response("room2@contoso.com"), Some(ResponseType::Accepted));
    assert_eq!(organizer[1].attendee_response("room1@contoso.com"), None, "room 1 is not on that occurrence");
    let starts = |items: &[Event]| items.iter().map(|e| e.original_start.unwrap()).collect::<Vec<_>>();
    let room1 = view("room1@contoso.com");
    assert_eq!(
        starts(&room1),
        [at("2026-09-08T09:00:00Z"), at("2026-09-22T09:00:00Z"), at("2026-09-29T09:00:00Z")],
        "room 1 no longer holds the moved occurrence"
    );
    let room2 = view("room2@contoso.com");
    assert_eq!(starts(&room2), [at("2026-09-15T09:00:00Z")], "room 2 holds only the moved occurrence");
    assert_eq!(room2[0].kind, Some(orb_graph::model::EventType::Exception));
    assert_eq!(room2[0].ical_uid, organizer[1].ical_uid, "the occurrence's iCalUId in every calendar");
    assert_eq!(room2[0].series_master_id, em.events("room2@contoso.com").unwrap()[0].id);
}

/// An `Authorization` header value for the app `app` (secret `s3`), from the emulator's token endpoint.
async fn bearer(http: &reqwest::Client, base_url: &str) -> String {
    let token: Value = http
        .post(format!("{base_url}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "app"),
            ("client_secret", "s3"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    format!("Bearer {}", token["access_token"].as_str().unwrap())
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> reqwest::Response {
    http.post(url).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn the_control_api_acts_as_a_person_in_outlook() {
    let em = GraphEmulator::new(Arc::new(FixedClock::new(at("2026-09-01T06:00:00Z"))));
    let served = serve(em.clone()).await.unwrap();
    let c = format!("{}/_emulator", served.base_url);
    let http = reqwest::Client::new();
    assert_eq!(
        post(&http, format!("{c}/apps"), json!({"tenant": TENANT, "clientId": "app", "secret": "s3"}))
            .await
            .status(),
        204
    );
    post(
        &http,
        format!("{c}/users"),
        json!({"tenant": TENANT, "address": "anna@contoso.com", "displayName": "Anna"}),
    )
    .await;
    post(
        &http,
        format!("{c}/rooms"),
        json!({"tenant": TENANT, "address": "room1@contoso.com", "displayName": "Room 1",
        "info": {"capacity": 6, "settings": {"deleteSubject": false, "addOrganizerToSubject": false}}}),
    )
    .await;

    let booked = post(&http, format!("{c}/book"), json!({"organizer": "anna@contoso.com", "room": "room1@contoso.com",
        "subject": "Stand-up", "start": "2026-09-02T09:00:00", "end": "2026-09-02T09:15:00",
        "recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2026-09-02", "numberOfOccurrences": 3}}})).await;
    assert_eq!(booked.status(), 201);
    let booked: Value = booked.json().await.unwrap();
    assert_eq!(booked["type"], "seriesMaster");
    let master = booked["id"].as_str().unwrap().to_owned();
    assert_eq!(room_items(&em).len(), 3, "the room holds three occurrences");
    assert_eq!(
        room_items(&em)[0].subject.as_deref(),
        Some("Stand-up"),
        "room keeps the subject as configured"
    );

    // Move the second occurrence (an exception) and cancel the third.
    let occurrences =
        em.calendar_view("anna@contoso.com", at("2026-09-01T00:00:00Z"), at("2026-09-10T00:00:00Z")).unwrap();
    let second = occurrences[1].id.clone().unwrap();
    let third = occurrences[2].id.clone().unwrap();
    let moved = http
        .patch(format!("{c}/mailboxes/anna@contoso.com/events/{second}"))
        .json(&json!({"start": {"dateTime": "2026-09-03T11:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-09-03T11:15:00", "timeZone": "UTC"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    assert_eq!(
        post(&http, format!("{c}/mailboxes/anna@contoso.com/events/{third}/cancel"), json!({}))
            .await
            .status(),
        202
    );
    let starts: Vec<_> =
        room_items(&em).iter().map(|e| e.start.as_ref().unwrap().to_utc().unwrap()).collect();
    assert_eq!(starts, vec![at("2026-09-02T09:00:00Z"), at("2026-09-03T11:00:00Z")]);

    let listed: Value = http
        .get(format!("{c}/mailboxes/anna@contoso.com/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap()[0]["id"], master.as_str());
    assert_eq!(listed[0]["cancelledOccurrences"].as_array().unwrap().len(), 1);

    let deleted =
        http.delete(format!("{c}/mailboxes/anna@contoso.com/events/{master}")).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(
        room_items(&em).iter().all(|e| e.is_cancelled == Some(true)),
        "deleting the series cancels the room's copy"
    );

    let knobs: Value = http.get(format!("{c}/knobs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(knobs["maxConcurrentPerMailbox"], 4);
    let unknown =
        post(&http, format!("{c}/mailboxes/nobody@contoso.com/expire-delta"), json!({"mode": "gone"})).await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_emulator_refuses_a_fifth_concurrent_request_and_a_spent_budget() {
    let em = world();
    em.add_app_secret(TENANT, "app", "s3");
    em.set_knobs(Knobs { latency_ms: 150, retry_after_secs: 7, ..Knobs::default() });
    let served = serve(em.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let bearer = bearer(&http, &served.base_url).await;
    let url = format!(
        "{}/v1.0/users/room1@contoso.com/calendarView?startDateTime=2026-09-01T00:00:00Z&endDateTime=2026-09-02T00:00:00Z",
        served.base_url
    );
    let calls: Vec<_> = (0..8).map(|_| http.get(&url).header("Authorization", &bearer).send()).collect();
    let answers = futures_join(calls).await;
    let throttled: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(throttled.len(), 4, "four admitted, four refused");
    assert_eq!(throttled[0].headers()["retry-after"], "7");
    let counters = em.counters()["room1@contoso.com"].clone();
    assert_eq!((counters.max_in_flight, counters.concurrency_refusals, counters.max_attempted), (4, 4, 5));

    em.set_knobs(Knobs { mailbox_budget: 4, ..Knobs::default() });
    let after = http.get(&url).header("Authorization", &bearer).send().await.unwrap();
    assert_eq!(after.status(), 429, "the four admitted requests spent a budget of four");
    let unauthenticated = http.get(&url).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

async fn futures_join(
    calls: Vec<impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static>,
) -> Vec<reqwest::Response> {
    let handles: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out
}

#[tokio::test]
async fn a_write_with_a_stale_if_match_is_refused_with_412_and_graphs_error_body() {
    let em = world();
    em.add_app_secret(TENANT, "app", "s3");
    let served = serve(em.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let bearer = bearer(&http, &served.base_url).await;
    let made = em
        .create_in(
            "anna@contoso.com",
            &meeting("Sync", "2026-09-02T09:00:00", "2026-09-02T10:00:00"),
            &View::default(),
        )
        .unwrap();
    let id = made.id.unwrap();
    let url = format!("{}/v1.0/users/anna@contoso.com/events/{id}", served.base_url);
    let etag = |em: &GraphEmulator| {
        let events = em.events("anna@contoso.com").unwrap();
        events.into_iter().find(|e| e.id.as_deref() == Some(id.as_str())).and_then(|e| e.odata_etag).unwrap()
    };
    let first = etag(&em);
    em.update_in(
        "anna@contoso.com",
        &id,
        &Event { subject: Some("Renamed".into()), ..Event::default() },
        &View::default(),
    )
    .unwrap();
    let second = etag(&em);
    assert_ne!(first, second, "a change gives the event a new etag");
    let rename = json!({"subject": "ORB's"});
    for (method, path) in [("PATCH", ""), ("POST", "/cancel"), ("DELETE", "")] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = http
            .request(method.clone(), format!("{url}{path}"))
            .header("Authorization", &bearer)
            .header("If-Match", &first);
        if method != reqwest::Method::DELETE {
            request = request.json(&rename);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(refused.status(), 412, "{method} {path}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "ErrorIrresolvableConflict", "{method} {path}: {body}");
        assert_eq!(etag(&em), second, "{method} {path}: nothing changed");
    }
    let landed = http
        .patch(&url)
        .header("Authorization", &bearer)
        .header("If-Match", &second)
        .json(&rename)
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 200);
    let landed: Value = landed.json().await.unwrap();
    assert_ne!(landed["@odata.etag"].as_str(), Some(second.as_str()), "the write made a new version");
    assert_eq!(landed["subject"], "ORB's");
}

#[tokio::test]
async fn reads_without_select_return_the_body_and_the_log_shows_which_reads_could() {
    let em = world();
    em.add_app_secret(TENANT, "app", "s3");
    let served = serve(em.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let bearer = bearer(&http, &served.base_url).await;
    let mut with_body = meeting("Sync", "2026-09-02T09:00:00", "2026-09-02T10:00:00");
    with_body.body = Some(orb_graph::model::ItemBody {
        content_type: Some(orb_graph::model::BodyType::Html),
        content: Some("<p>door code 4711</p>".into()),
    });
    let made = em.create_in("anna@contoso.com", &with_body, &View::default()).unwrap();
    let id = made.id.unwrap();
    let ical = made.ical_uid.unwrap();
    let base = format!("{}/v1.0/users", served.base_url);
    let get = |url: String| {
        let (http, bearer) = (http.clone(), bearer.clone());
        async move {
            let answer = http.get(url).header("Authorization", bearer).send().await.unwrap();
            assert_eq!(answer.status(), 200);
            answer.json::<Value>().await.unwrap()
        }
    };
    let window = "startDateTime=2026-09-01T00:00:00Z&endDateTime=2026-09-03T00:00:00Z";

    // ORB's kind of reads: each names its fields, finds one meeting, lists only a room.
    let one =
        get(format!("{base}/anna@contoso.com/events/{id}?$select=subject,start,lastModifiedDateTime")).await;
    assert!(one.get("body").is_none() && one.get("bodyPreview").is_none(), "{one}");
    assert!(one["lastModifiedDateTime"].is_string(), "selectable on an event read: {one}");
    let found =
        get(format!("{base}/anna@contoso.com/events?$filter=iCalUId eq '{ical}'&$select=subject,iCalUId"))
            .await;
    assert_eq!(found["value"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["value"][0]["iCalUId"], ical.as_str());
    let view =
        get(format!("{base}/room1@contoso.com/calendarView?{window}&$select=start,lastModifiedDateTime"))
            .await;
    let listed = &view["value"][0];
    assert!(listed.get("lastModifiedDateTime").is_none(), "not selectable on calendarView: {listed}");
    assert!(listed["start"].is_object() && listed.get("body").is_none(), "{listed}");
    assert!(em.privacy_findings().is_empty(), "{:?}", em.privacy_findings());

    // Reads that break the promise return the body, and the log names each of them.
    let full = get(format!("{base}/anna@contoso.com/events/{id}")).await;
    assert_eq!(full["body"]["content"], "<p>door code 4711</p>");
    assert_eq!(full["bodyPreview"], "<p>door code 4711</p>");
    get(format!("{base}/anna@contoso.com/calendarView?{window}&$select=subject")).await;
    get(format!("{base}/room1@contoso.com/events?$select=subject")).await;
    get(format!("{base}/anna@contoso.com/events/{id}?$select=subject,bodyPreview")).await;
    let findings = em.privacy_findings();
    assert_eq!(findings.len(), 4, "{findings:#?}");
    assert!(findings[0].contains("could return the body"), "{}", findings[0]);
    assert!(findings[1].contains("lists a person's calendar"), "{}", findings[1]);
    assert!(findings[2].contains("lists every event"), "{}", findings[2]);
    assert!(findings[3].contains("could return the body"), "{}", findings[3]);
    let selects: Vec<_> =
        em.requests().iter().filter(|r| r.reads_events()).map(|r| r.select.clone()).collect();
    assert_eq!(
        selects[0].as_deref(),
        Some(&["subject".to_owned(), "start".into(), "lastModifiedDateTime".into()][..])
    );
    assert_eq!(selects[3], None);
}

#[tokio::test]
async fn with_a_late_booking_attendant_the_room_answers_after_the_write_and_the_organizers_etag_moves() {
    let em = world();
    em.add_app_secret(TENANT, "app", "s3");
    em.set_knobs(Knobs { room_answer_delay_ms: 300, ..Knobs::default() });
    let served = serve(em.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let bearer = bearer(&http, &served.base_url).await;
    let body = json!({
        "subject": "Late", "start": {"dateTime": "2026-09-02T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-09-02T10:00:00", "timeZone": "UTC"},
        "location": {"displayName": "Room 1", "locationEmailAddress": "room1@contoso.com"},
        "attendees": [{"emailAddress": {"address": "room1@contoso.com"}, "type": "resource"}]
    });
    let made = http
        .post(format!("{}/v1.0/users/anna@contoso.com/events", served.base_url))
        .header("Authorization", &bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.unwrap();
    let id = made["id"].as_str().unwrap().to_owned();
    let organizer = |em: &GraphEmulator| {
        em.events("anna@contoso.com")
            .unwrap()
            .into_iter()
            .find(|e| e.id.as_deref() == Some(id.as_str()))
            .unwrap()
    };
    // Right after the write: no answer, no room copy, the etag the response showed is current.
    let first = organizer(&em);
    assert_eq!(first.attendee_response("room1@contoso.com"), Some(ResponseType::None));
    assert!(room_items(&em).is_empty(), "the room has not answered yet");
    assert_eq!(first.odata_etag.as_deref(), made["@odata.etag"].as_str());
    // Later: the room's copy, the answer on the organizer's item, and a new etag there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while room_items(&em).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the room never answered");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let answered = organizer(&em);
    assert_eq!(answered.attendee_response("room1@contoso.com"), Some(ResponseType::Accepted));
    assert_ne!(answered.odata_etag, first.odata_etag, "recording the answer is a change of the item");
    // So a write naming the version the create showed is refused, as against Exchange.
    let stale = http
        .patch(format!("{}/v1.0/users/anna@contoso.com/events/{id}", served.base_url))
        .header("Authorization", &bearer)
        .header("If-Match", made["@odata.etag"].as_str().unwrap())
        .json(&json!({"subject": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    // A cancellation is answered late too: the room's copy stays live until the attendant gets to it.
    em.remove_in("anna@contoso.com", &id, true).unwrap();
    assert_eq!(room_items(&em).iter().filter(|e| e.is_cancelled != Some(true)).count(), 1);
    while room_items(&em).iter().any(|e| e.is_cancelled != Some(true)) {
        assert!(std::time::Instant::now() < deadline, "the room never took the cancellation");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
