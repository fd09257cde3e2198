//! TOPdesk's rules in the emulator, over HTTP: statuses and the archived flag, no DELETE, double booking
//! per room, block times, series limit, `modificationDate`, application passwords, the control API and the
//! fault knobs.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use orb_core::{Clock, FixedClock};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

struct T {
    served: ServedEmulator,
    http: reqwest::Client,
    clock: FixedClock,
    anna: String,
}

impl T {
    async fn new() -> Self {
        let clock = FixedClock::new(at("2026-03-01T08:00:00Z"));
        let emulator = TopdeskEmulator::new(Arc::new(clock.clone()));
        emulator.add_account("orb-api", "secret");
        let anna = emulator.add_person("Anna", "Bakker", Some("anna@contoso.com")).to_string();
        let served = emulator.serve().await.unwrap();
        Self { served, http: reqwest::Client::new(), clock, anna }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.served.base_url));
        if let Some((login, password)) = auth {
            request = request.basic_auth(login, Some(password));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        (status, headers, value)
    }

    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, _, value) =
            self.raw(method, &format!("/tas/api{path}"), Some(("orb-api", "secret")), body).await;
        (status, value)
    }

    async fn control(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, value) = self.raw(method, &format!("/_emulator{path}"), None, Some(body)).await;
        (status, value)
    }

    async fn room(&self, name: &str, block: i32, mode: &str) -> String {
        let (status, room) = self
            .control(Method::POST, "/rooms", json!({"name": name, "blockTime": block, "doubleBooking": mode}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        room["id"].as_str().unwrap().to_owned()
    }

    async fn book(&self, room: &str, start: &str, end: &str) -> (StatusCode, Value) {
        let body = json!({"requester": {"id": self.anna}, "plannedStartDate": start, "plannedEndDate": end,
                          "reservedFacilities": [{"location": {"id": room}}]});
        self.api(Method::POST, "/reservations", Some(body)).await
    }
}

#[tokio::test]
async fn double_booking_is_refused_or_stored_as_conflicting_per_room_and_block_times_count() {
    let t = T::new().await;
    let refusing = t.room("Refusing", 30, "refuse").await;
    let storing = t.room("Storing", 0, "storeAsConflicting").await;
    let check = |got: (StatusCode, Value), status: StatusCode, res_status: Option<&str>| {
        assert_eq!(got.0, status, "{}", got.1);
        if let Some(s) = res_status {
            assert_eq!(got.1["status"], s, "{}", got.1);
        }
    };
    check(
        t.book(&refusing, "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z").await,
        StatusCode::CREATED,
        Some("planned"),
    );
    // 10:15 starts inside the 30-minute block after 10:00.
    let refused = t.book(&refusing, "2026-03-02T10:15:00Z", "2026-03-02T11:00:00Z").await;
    check(refused.clone(), StatusCode::BAD_REQUEST, None);
    assert_eq!(refused.1["errors"][0]["errorCode"], "reservationConflict");
    check(
        t.book(&refusing, "2026-03-02T10:30:00Z", "2026-03-02T11:00:00Z").await,
        StatusCode::CREATED,
        Some("planned"),
    );

    check(
        t.book(&storing, "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z").await,
        StatusCode::CREATED,
        Some("planned"),
    );
    check(
        t.book(&storing, "2026-03-02T09:30:00Z", "2026-03-02T10:30:00Z").await,
        StatusCode::CREATED,
        Some("conflictingPlanned"),
    );
    check(
        t.book(&storing, "2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z").await,
        StatusCode::CREATED,
        Some("conflictingPlanned"),
    );

    // Switch the refusing room to storing via the control API.
    let (status, _) = t
        .control(
            Method::PUT,
            &format!("/rooms/{refusing}/doubleBooking"),
            json!({"mode": "storeAsConflicting"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    check(
        t.book(&refusing, "2026-03-02T09:00:00Z", "2026-03-02T09:30:00Z").await,
        StatusCode::CREATED,
        Some("conflictingPlanned"),
    );
    assert_eq!(
        t.served.emulator.with_state(|s| s
            .rooms
            .iter()
            .find(|r| r.id.as_str() == refusing)
            .unwrap()
            .double_booking),
        DoubleBooking::StoreAsConflicting
    );
}

#[tokio::test]
async fn no_delete_status_model_archived_flag_and_modification_dates() {
    let t = T::new().await;
    let room = t.room("R", 0, "refuse").await;
    let (_, r) = t.book(&room, "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z").await;
    let id = r["id"].as_str().unwrap().to_owned();
    let mut last = r["modificationDate"].as_str().unwrap().to_owned();

    let (status, _) = t.api(Method::DELETE, &format!("/reservations/{id}"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "TOPdesk has no DELETE");

    // Every change moves modificationDate, even at the same clock instant.
    for (method, path, body) in [
        (Method::PATCH, format!("/reservations/{id}"), json!({"notes": "n"})),
        (Method::POST, format!("/reservations/{id}/participants/add"), json!({"persons": [{"id": t.anna}]})),
        (
            Method::POST,
            format!("/reservations/{id}/reschedule"),
            json!({"plannedStartDate": "2026-03-02T09:30:00Z", "plannedEndDate": "2026-03-02T10:30:00Z"}),
        ),
    ] {
        let (status, after) = t.api(method, &path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {after}");
        let now = after["modificationDate"].as_str().unwrap().to_owned();
        assert!(now > last, "{path}: {now} should be after {last}");
        last = now;
    }
    // A request can only be rejected; a planned one only cancelled.
    let (status, body) = t.api(Method::POST, &format!("/reservations/{id}/reject"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["errorCode"], "invalidStatusForAction");

    // Archived reservations cannot be cancelled.
    let (status, _, _) =
        t.raw(Method::POST, &format!("/_emulator/reservations/{id}/archive"), None, None).await;
    assert_eq!(status, StatusCode::OK);
    t.served.emulator.add_cancellation_reason("Default", true);
    let (status, body) = t.api(Method::POST, &format!("/reservations/{id}/cancel"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["errorCode"], "reservationArchived");
    let (_, got) = t.api(Method::GET, &format!("/reservations/{id}"), None).await;
    assert_eq!((got["archived"].as_bool(), got["status"].as_str()), (Some(true), Some("planned")));
    assert!(got["modificationDate"].as_str().unwrap() > last.as_str());
}

#[tokio::test]
async fn series_are_capped_at_999_and_top_at_10000() {
    let t = T::new().await;
    let room = t.room("R", 0, "refuse").await;
    let (_, r) = t.book(&room, "2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z").await;
    let id = r["id"].as_str().unwrap().to_owned();
    let dates = |n: i64| -> Vec<String> {
        (1..=n).map(|d| (at("2026-03-02T00:00:00Z") + Duration::days(d)).date_naive().to_string()).collect()
    };
    let (status, body) = t
        .api(
            Method::POST,
            &format!("/reservations/{id}/makeRecurrent/dates"),
            Some(json!({"dates": dates(999)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "1 + 999 occurrences is too many");
    assert_eq!(body["errors"][0]["errorCode"], "seriesTooLong");
    let (status, body) = t
        .api(
            Method::POST,
            &format!("/reservations/{id}/makeRecurrent/dates"),
            Some(json!({"dates": dates(998)})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"].as_array().unwrap().len(), 999);

    let (status, _) = t.api(Method::GET, "/reservations?$top=10000", None).await;
    assert_eq!(status, StatusCode::OK, "999 < 10000");
    let (status, body) = t.api(Method::GET, "/reservations?$top=998&$fields=id", None).await;
    assert_eq!((status, body["results"].as_array().unwrap().len()), (StatusCode::PARTIAL_CONTENT, 998));
    assert_eq!(body["results"][0].as_object().unwrap().len(), 1, "$fields=id");
    let (status, _) = t.api(Method::GET, "/reservations?$top=10001", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn application_passwords_per_account() {
    let t = T::new().await;
    let expires = (t.clock.now() + Duration::days(1)).to_rfc3339();
    let (status, _) = t
        .control(
            Method::POST,
            "/accounts",
            json!({"loginName": "orb-api", "applicationPassword": "second", "expires": expires}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    t.control(
        Method::POST,
        "/accounts",
        json!({"loginName": "gone", "applicationPassword": "pw", "archived": true}),
    )
    .await;
    let who = |login: &'static str, pw: &'static str| {
        let t = &t;
        async move { t.raw(Method::GET, "/tas/api/operators/current", Some((login, pw)), None).await.0 }
    };
    assert_eq!(who("orb-api", "secret").await, StatusCode::OK);
    assert_eq!(who("orb-api", "second").await, StatusCode::OK);
    assert_eq!(who("orb-api", "other").await, StatusCode::UNAUTHORIZED);
    assert_eq!(who("gone", "pw").await, StatusCode::UNAUTHORIZED, "archived account");
    t.clock.advance(Duration::days(2));
    assert_eq!(who("orb-api", "second").await, StatusCode::UNAUTHORIZED, "expired application password");
    let (status, _, body) = t.raw(Method::GET, "/tas/api/reservations", None, None).await;
    assert_eq!(
        (status, body[0]["message"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("No authentication token provided"))
    );
}

#[tokio::test]
async fn control_api_acts_as_an_operator_and_counts_requests() {
    let t = T::new().await;
    let a = t.room("A", 0, "refuse").await;
    let b = t.room("B", 0, "refuse").await;
    let create = json!({"requester": {"id": t.anna}, "briefDescription": "Walk-in", "plannedStartDate": "2026-03-03T09:00:00Z",
                        "plannedEndDate": "2026-03-03T10:00:00Z", "reservedFacilities": [{"location": {"id": a}}]});
    let (status, made) = t.control(Method::POST, "/reservations", create).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = made["id"].as_str().unwrap().to_owned();
    let (status, r) = t
        .control(
            Method::POST,
            &format!("/reservations/{id}/reschedule"),
            json!({"plannedStartDate": "2026-03-03T11:00:00Z", "plannedEndDate": "2026-03-03T12:00:00Z"}),
        )
        .await;
    assert_eq!((status, r["plannedStartDate"].as_str()), (StatusCode::OK, Some("2026-03-03T11:00:00.000Z")));
    let (status, r) = t
        .control(
            Method::POST,
            &format!("/reservations/{id}/move"),
            json!({"from": {"location": {"id": a}}, "to": {"location": {"id": b}}}),
        )
        .await;
    assert_eq!(
        (status, r["reservedFacilities"][0]["location"]["id"].as_str()),
        (StatusCode::OK, Some(b.as_str()))
    );
    let (status, r) = t
        .control(Method::POST, &format!("/reservations/{id}/makeRecurrent"), json!({"dates": ["2026-03-10"]}))
        .await;
    assert_eq!((status, r["results"].as_array().unwrap().len()), (StatusCode::OK, 2));
    t.control(Method::POST, "/cancellationReasons", json!({"name": "Operator cancelled"})).await;
    let (status, r) = t
        .control(Method::POST, &format!("/reservations/{id}/cancel"), json!({"name": "Operator cancelled"}))
        .await;
    assert_eq!((status, r["status"].as_str()), (StatusCode::OK, Some("cancelled")));

    // The API sees the operator's changes; control calls are not counted.
    let (_, list) =
        t.api(Method::GET, &format!("/reservations?query=reservedFacilities.location.id=={b}"), None).await;
    let statuses: Vec<&str> =
        list["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["cancelled", "planned"]);
    let (_, _, counts) = t.raw(Method::GET, "/_emulator/requests", None, None).await;
    assert_eq!(counts["total"], 1);
    assert_eq!(counts["byRoute"]["GET /tas/api/reservations"], 1);
    let (_, _, state) = t.raw(Method::GET, "/_emulator/state", None, None).await;
    assert_eq!(state["reservations"].as_array().unwrap().len(), 2);
    assert_eq!(state["rooms"].as_array().unwrap().len(), 2);
    let (status, _, _) = t.raw(Method::DELETE, "/_emulator/requests", None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(t.served.emulator.request_counts().total, 0);
}

#[tokio::test]
async fn fault_knobs_throttle_fail_and_delay() {
    let t = T::new().await;
    t.control(Method::PUT, "/faults", json!({"throttleNext": 1, "retryAfterSecs": 7})).await;
    let (status, headers, _) =
        t.raw(Method::GET, "/tas/api/version", Some(("orb-api", "secret")), None).await;
    assert_eq!(
        (status, headers.get("retry-after").and_then(|v| v.to_str().ok())),
        (StatusCode::TOO_MANY_REQUESTS, Some("7"))
    );
    assert_eq!(t.api(Method::GET, "/version", None).await.0, StatusCode::OK, "only the next one");

    let (status, _) = t.control(Method::PUT, "/faults", json!({"errorRate": 1.0})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(t.api(Method::GET, "/version", None).await.0, StatusCode::SERVICE_UNAVAILABLE);
    t.control(Method::PUT, "/faults", json!({"errorRate": 0.5})).await;
    let mut failures = 0;
    for _ in 0..40 {
        if t.api(Method::GET, "/version", None).await.0 == StatusCode::SERVICE_UNAVAILABLE {
            failures += 1;
        }
    }
    assert!((8..=32).contains(&failures), "about half fail: {failures}");
    assert_eq!(t.control(Method::PUT, "/faults", json!({"errorRate": 2.0})).await.0, StatusCode::BAD_REQUEST);

    t.control(Method::PUT, "/faults", json!({"latencyMs": 150})).await;
    let started = std::time::Instant::now();
    assert_eq!(t.api(Method::GET, "/version", None).await.0, StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
}
