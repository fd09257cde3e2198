//! The fault plans of both emulators over real HTTP: what a plain HTTP client sees for each fault kind,
//! that a fault before handling leaves the state alone while one after handling does not, the request log,
//! the control API, and determinism (same seed, same requests → same faults).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orb_core::FixedClock;
use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_emulators::graph::{GraphEmulator, RoomInfo, Served, serve};
use orb_emulators::topdesk::{DoubleBooking, Faults, ServedEmulator, TopdeskEmulator};
use reqwest::Method;
use serde_json::{Value, json};

const TENANT: &str = "tenant-1";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// What a plain HTTP client (1 s timeout) saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// A whole answer: status, body form (`json`, `html`, `empty`), `Retry-After`, and a piece of the body.
    Answer { status: u16, form: &'static str, retry_after: Option<String>, says: String },
    /// The status line and headers, then the body broke off (connection aborted).
    BrokeOff { status: u16 },
    /// No answer within the client's timeout (or a connection closed without one).
    NoAnswer,
}

fn answer(status: u16, form: &'static str, says: &str) -> Seen {
    Seen::Answer { status, form, retry_after: None, says: says.to_owned() }
}

async fn observe(request: reqwest::RequestBuilder) -> Seen {
    let response = match request.timeout(Duration::from_secs(1)).send().await {
        Ok(response) => response,
        Err(e) => {
            assert!(e.is_timeout() || e.is_request() || e.is_connect(), "{e:?}");
            return Seen::NoAnswer;
        }
    };
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) if e.is_timeout() => return Seen::NoAnswer,
        Err(_) => return Seen::BrokeOff { status },
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    let form = match content_type.as_deref() {
        _ if body.is_empty() => "empty",
        Some(ct) if ct.contains("html") => "html",
        Some(ct) if ct.contains("json") => "json",
        other => panic!("unexpected content type {other:?}: {text}"),
    };
    // What the body says: an HTML page's title, a Graph error code, a TOPdesk message; nothing for others.
    let says = match form {
        "html" => {
            let start = text.find("<title>").expect("an HTML page has a title") + 7;
            text[start..start + text[start..].find("</title>").unwrap()].to_owned()
        }
        "json" => {
            let value: Value = serde_json::from_str(&text).unwrap();
            let said = value["error"]["code"].as_str().or(value[0]["message"].as_str());
            said.unwrap_or_default().to_owned()
        }
        _ => String::new(),
    };
    Seen::Answer { status, form, retry_after, says }
}

// ---- TOPdesk ----

struct Desk {
    served: ServedEmulator,
    http: reqwest::Client,
    room: String,
    anna: String,
}

impl Desk {
    async fn new() -> Self {
        let clock = FixedClock::new(at("2026-03-01T08:00:00Z"));
        let emulator = TopdeskEmulator::new(Arc::new(clock));
        emulator.add_account("orb-api", "secret");
        let anna = emulator.add_person("Anna", "Bakker", Some("anna@contoso.com")).to_string();
        let room = emulator.add_room("Room A", 0, DoubleBooking::StoreAsConflicting).to_string();
        let served = emulator.serve().await.unwrap();
        Self { served, http: reqwest::Client::new(), room, anna }
    }

    fn request(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}/tas/api{path}", self.served.base_url))
            .basic_auth("orb-api", Some("secret"));
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    }

    fn booking(&self, hour: u32) -> Value {
        json!({
            "requester": {"id": self.anna},
            "plannedStartDate": format!("2026-03-02T{hour:02}:00:00.000Z"),
            "plannedEndDate": format!("2026-03-02T{hour:02}:30:00.000Z"),
            "reservedFacilities": [{"location": {"id": self.room}}],
        })
    }
}

fn only(rule: FaultRule) -> FaultPlan {
    FaultPlan::new(1, vec![rule])
}

#[tokio::test]
async fn topdesk_faults_look_like_iis_and_topdesk() {
    let desk = Desk::new().await;
    let json500 = "An internal error occurred. Contact your application manager.";
    let cases: Vec<(FaultKind, bool, Seen)> = vec![
        (FaultKind::status_with(500, BodyStyle::Json), false, answer(500, "json", json500)),
        (
            FaultKind::status_with(500, BodyStyle::Html),
            false,
            answer(500, "html", "500 - Internal server error."),
        ),
        (
            FaultKind::status(502),
            false,
            answer(
                502,
                "html",
                "502 - Web server received an invalid response while acting as a gateway or proxy server.",
            ),
        ),
        (FaultKind::status(504), false, answer(504, "html", "504 - Gateway Timeout")),
        (FaultKind::status_with(504, BodyStyle::Empty), false, answer(504, "empty", "")),
        (
            FaultKind::Status { status: 503, body: BodyStyle::Auto, retry_after_secs: Some(3) },
            false,
            Seen::Answer {
                status: 503,
                form: "json",
                retry_after: Some("3".into()),
                says: "Service unavailable".into(),
            },
        ),
        (FaultKind::status(408), false, answer(408, "json", "The request could not be processed")),
        (FaultKind::status_with(200, BodyStyle::Html), false, answer(200, "html", "TOPdesk maintenance")),
        (FaultKind::timeout(Duration::from_secs(10)), false, Seen::NoAnswer),
        (FaultKind::timeout(Duration::from_secs(10)), true, Seen::NoAnswer),
        (FaultKind::Reset, false, Seen::BrokeOff { status: 200 }),
        (FaultKind::Reset, true, Seen::BrokeOff { status: 200 }),
        (FaultKind::SlowBody { chunk_bytes: 1, delay_ms: 100 }, false, Seen::NoAnswer),
        (FaultKind::SlowBody { chunk_bytes: 64, delay_ms: 5 }, false, answer(200, "json", "")),
    ];
    for (fault, after, expected) in cases {
        let mut rule = FaultRule::new(fault.clone()).method("GET").path("/tas/api/operators/current").next(1);
        rule.after_handling = after;
        desk.served.emulator.set_fault_plan(only(rule));
        let seen = observe(desk.request(Method::GET, "/operators/current", None)).await;
        assert_eq!(seen, expected, "{fault:?} after handling: {after}");
        let logged = desk.served.emulator.request_log().pop().unwrap();
        assert_eq!(
            (logged.fault, logged.fault_kind.as_deref(), logged.fault_after_handling),
            (fault.status_code(), Some(fault.label()), after),
            "{fault:?} is in the request log"
        );
        // The burst is spent: the next request is answered normally.
        let again = observe(desk.request(Method::GET, "/operators/current", None)).await;
        assert!(matches!(again, Seen::Answer { status: 200, .. }), "{fault:?}: {again:?}");
    }
    assert_eq!(desk.served.emulator.request_counts().injected_faults, 14);
}

#[tokio::test]
async fn a_topdesk_fault_before_handling_changes_nothing_and_after_handling_the_write_stands() {
    let desk = Desk::new().await;
    let cases = [
        (FaultKind::status(500), false, 0),
        (FaultKind::status(502), false, 0),
        (FaultKind::timeout(Duration::from_secs(10)), false, 0),
        (FaultKind::Reset, false, 0),
        (FaultKind::status(500), true, 1),
        (FaultKind::status(504), true, 1),
        (FaultKind::timeout(Duration::from_secs(10)), true, 1),
        (FaultKind::Reset, true, 1),
        (FaultKind::SlowBody { chunk_bytes: 1, delay_ms: 100 }, false, 1),
    ];
    for (hour, (fault, after, applied)) in (6..).zip(cases) {
        let mut rule = FaultRule::new(fault.clone()).method("POST").path("/tas/api/reservations").next(1);
        rule.after_handling = after;
        desk.served.emulator.set_fault_plan(only(rule));
        let before = desk.served.emulator.reservations().len();
        let seen = observe(desk.request(Method::POST, "/reservations", Some(desk.booking(hour)))).await;
        assert!(
            !matches!(seen, Seen::Answer { status: 201, .. }),
            "{fault:?}: the answer is not the real one"
        );
        assert_eq!(
            desk.served.emulator.reservations().len() - before,
            applied,
            "{fault:?} after handling: {after}"
        );
    }
}

#[tokio::test]
async fn topdesk_faults_are_set_by_the_control_api_as_a_burst_and_checked() {
    let desk = Desk::new().await;
    let control = format!("{}/_emulator", desk.served.base_url);
    let plan = json!({"seed": 7, "rules": [
        {"method": "POST", "path": "/tas/api/reservations", "next": 3, "fault": {"kind": "status", "status": 500}}
    ]});
    let put = desk.http.put(format!("{control}/faultPlan")).json(&plan).send().await.unwrap();
    assert_eq!(put.status(), 204);
    let mut statuses = Vec::new();
    for hour in 8..13 {
        let seen = observe(desk.request(Method::POST, "/reservations", Some(desk.booking(hour)))).await;
        let Seen::Answer { status, .. } = seen else { panic!("{seen:?}") };
        statuses.push(status);
        let list = observe(desk.request(Method::GET, "/reservations", None)).await;
        assert!(matches!(list, Seen::Answer { status: 200, .. }), "GETs are not in the burst");
    }
    assert_eq!(statuses, [500, 500, 500, 201, 201], "the next 3 POSTs answer 500");
    let left: Value =
        desk.http.get(format!("{control}/faultPlan")).send().await.unwrap().json().await.unwrap();
    assert_eq!(left["rules"][0]["next"], 0, "the burst is spent");
    let log: Value = desk.http.get(format!("{control}/log")).send().await.unwrap().json().await.unwrap();
    let faulted = log.as_array().unwrap().iter().filter(|r| r["fault"] == 500).count();
    assert_eq!(faulted, 3);
    assert_eq!(log[0]["faultKind"], "status");

    // The same plan inside the knobs, and refusals that say what to change.
    let faults = json!({"plan": plan});
    let put = desk.http.put(format!("{control}/faults")).json(&faults).send().await.unwrap();
    assert_eq!(put.status(), 204);
    assert_eq!(desk.served.emulator.fault_plan().rules[0].next, Some(3), "set again: the burst starts over");
    for (route, body, says) in [
        ("faultPlan", json!({"rules": [{"rate": 1.5, "fault": {"kind": "reset"}}]}), "between 0 and 1"),
        ("faultPlan", json!({"rules": [{"fault": {"kind": "status", "status": 302}}]}), "error status"),
        ("faults", json!({"plan": {"rules": [{"fault": {"kind": "nap"}}]}}), "unknown variant"),
    ] {
        let refused = desk.http.put(format!("{control}/{route}")).json(&body).send().await.unwrap();
        assert_eq!(refused.status(), 400, "{body}");
        let text = refused.text().await.unwrap();
        assert!(text.contains(says), "{text} should say {says:?}");
    }
    desk.served.emulator.set_faults(Faults::default());
    assert!(!desk.served.emulator.fault_plan().is_active(), "Faults::default() clears the plan");
}

/// The faults a sequence of 60 mixed requests got: (request index, status or kind).
async fn topdesk_fault_sequence(seed: u64) -> Vec<(usize, String)> {
    let desk = Desk::new().await;
    desk.served.emulator.set_fault_plan(FaultPlan::new(
        seed,
        vec![
            FaultRule::new(FaultKind::status(500)).method("read").rate(0.2),
            FaultRule::new(FaultKind::status(502)).method("write").rate(0.3),
            FaultRule::new(FaultKind::Reset).rate(0.1),
        ],
    ));
    for i in 0..60 {
        let request = if i % 3 == 0 {
            desk.request(Method::POST, "/reservations", Some(desk.booking(6 + (i % 12) as u32)))
        } else {
            desk.request(Method::GET, "/operators/current", None)
        };
        observe(request).await;
    }
    desk.served
        .emulator
        .request_log()
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let what = r.fault.map(|s| s.to_string()).or(r.fault_kind.clone())?;
            Some((i, what))
        })
        .collect()
}

#[tokio::test]
async fn the_same_seed_gives_the_same_topdesk_faults() {
    let first = topdesk_fault_sequence(11).await;
    assert_eq!(first, topdesk_fault_sequence(11).await);
    assert_ne!(first, topdesk_fault_sequence(12).await);
    for kind in ["500", "502", "reset"] {
        assert!(first.iter().any(|(_, k)| k == kind), "{kind} in {first:?}");
    }
}

// ---- Graph ----

struct Graph {
    em: GraphEmulator,
    served: Served,
    http: reqwest::Client,
    bearer: String,
}

impl Graph {
    async fn new() -> Self {
        let em = GraphEmulator::new(Arc::new(FixedClock::new(at("2026-09-01T06:00:00Z"))));
        em.add_app_secret(TENANT, "app", "s3");
        em.add_user(TENANT, "anna@contoso.com", "Anna Bakker");
        em.add_room(TENANT, "room1@contoso.com", "Room 1", RoomInfo::default());
        let served = serve(em.clone()).await.unwrap();
        let http = reqwest::Client::new();
        let token: Value = http
            .post(format!("{}/{TENANT}/oauth2/v2.0/token", served.base_url))
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
        let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
        Self { em, served, http, bearer }
    }

    fn request(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}/v1.0{path}", self.served.base_url))
            .header("Authorization", &self.bearer);
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
    }

    fn meeting(hour: u32) -> Value {
        json!({
            "subject": "Review",
            "start": {"dateTime": format!("2026-09-02T{hour:02}:00:00"), "timeZone": "UTC"},
            "end": {"dateTime": format!("2026-09-02T{hour:02}:30:00"), "timeZone": "UTC"},
            "attendees": [{"type": "resource", "emailAddress": {"address": "room1@contoso.com"}}],
        })
    }

    fn events(&self) -> usize {
        self.em.events("anna@contoso.com").unwrap().len()
    }
}

#[tokio::test]
async fn graph_faults_look_like_graph_and_its_gateway() {
    let graph = Graph::new().await;
    let cases: Vec<(FaultKind, bool, Seen)> = vec![
        (FaultKind::status(500), false, answer(500, "json", "generalException")),
        (FaultKind::status(502), false, answer(502, "html", "502 Bad Gateway")),
        (
            FaultKind::Status { status: 503, body: BodyStyle::Auto, retry_after_secs: Some(2) },
            false,
            Seen::Answer {
                status: 503,
                form: "json",
                retry_after: Some("2".into()),
                says: "serviceNotAvailable".into(),
            },
        ),
        (FaultKind::status(504), false, answer(504, "json", "timeout")),
        (FaultKind::status_with(200, BodyStyle::Html), false, answer(200, "html", "Sign in to your account")),
        (
            FaultKind::status_with(500, BodyStyle::Html),
            true,
            answer(500, "html", "500 Internal Server Error"),
        ),
        (FaultKind::timeout(Duration::from_secs(10)), false, Seen::NoAnswer),
        (FaultKind::Reset, false, Seen::BrokeOff { status: 200 }),
        (FaultKind::Reset, true, Seen::BrokeOff { status: 200 }),
        (FaultKind::SlowBody { chunk_bytes: 1, delay_ms: 100 }, true, Seen::NoAnswer),
        (FaultKind::SlowBody { chunk_bytes: 64, delay_ms: 5 }, false, answer(200, "json", "")),
    ];
    for (fault, after, expected) in cases {
        let mut rule = FaultRule::new(fault.clone()).method("GET").path("/v1.0/users/*/events").next(1);
        rule.after_handling = after;
        graph.em.set_fault_plan(only(rule));
        let seen = observe(graph.request(Method::GET, "/users/anna@contoso.com/events", None)).await;
        assert_eq!(seen, expected, "{fault:?} after handling: {after}");
        let logged = graph.em.requests().pop().unwrap();
        assert_eq!(
            (logged.fault, logged.fault_kind.as_deref(), logged.fault_after_handling),
            (fault.status_code(), Some(fault.label()), after),
            "{fault:?} is in the request log once"
        );
        assert_eq!(logged.mailbox.as_deref(), Some("anna@contoso.com"));
        let again = observe(graph.request(Method::GET, "/users/anna@contoso.com/events", None)).await;
        assert!(matches!(again, Seen::Answer { status: 200, .. }), "{fault:?}: {again:?}");
    }
}

#[tokio::test]
async fn a_graph_fault_before_handling_changes_nothing_and_after_handling_the_write_stands() {
    let graph = Graph::new().await;
    let cases = [
        (FaultKind::status(500), false, 0),
        (FaultKind::status(502), false, 0),
        (FaultKind::timeout(Duration::from_secs(10)), false, 0),
        (FaultKind::Reset, false, 0),
        (FaultKind::status(503), true, 1),
        (FaultKind::timeout(Duration::from_secs(10)), true, 1),
        (FaultKind::Reset, true, 1),
        (FaultKind::SlowBody { chunk_bytes: 1, delay_ms: 100 }, false, 1),
    ];
    for (hour, (fault, after, applied)) in (6..).zip(cases) {
        let mut rule = FaultRule::new(fault.clone()).method("write").path("/v1.0/users/*/events").next(1);
        rule.after_handling = after;
        graph.em.set_fault_plan(only(rule));
        let before = graph.events();
        let requests_before = graph.em.counters().get("anna@contoso.com").map_or(0, |c| c.requests);
        let seen = observe(graph.request(
            Method::POST,
            "/users/anna@contoso.com/events",
            Some(Graph::meeting(hour)),
        ))
        .await;
        assert!(
            !matches!(seen, Seen::Answer { status: 201, .. }),
            "{fault:?}: the answer is not the real one"
        );
        assert_eq!(graph.events() - before, applied, "{fault:?} after handling: {after}");
        let handled = graph.em.counters().get("anna@contoso.com").map_or(0, |c| c.requests) - requests_before;
        assert_eq!(handled, applied as u64, "{fault:?}: counted by the mailbox only when handled");
    }
}

#[tokio::test]
async fn graph_faults_by_control_api_knobs_and_seed() {
    let graph = Graph::new().await;
    let control = format!("{}/_emulator", graph.served.base_url);
    // "5 % of all Graph writes answer 502 HTML" (here 50 %, to see some in 40 writes).
    let plan = json!({"seed": 3, "rules": [
        {"method": "write", "path": "/v1.0/**", "rate": 0.5, "fault": {"kind": "status", "status": 502, "body": "html"}}
    ]});
    let put = graph.http.put(format!("{control}/faultPlan")).json(&plan).send().await.unwrap();
    assert_eq!(put.status(), 204);
    let mut sequence = Vec::new();
    for i in 0..40 {
        let meeting = Graph::meeting(6 + i % 12);
        let seen =
            observe(graph.request(Method::POST, "/users/anna@contoso.com/events", Some(meeting))).await;
        let read = observe(graph.request(Method::GET, "/users/anna@contoso.com/events", None)).await;
        assert!(matches!(read, Seen::Answer { status: 200, .. }), "reads are left alone");
        let Seen::Answer { status, form, .. } = seen else { panic!("{seen:?}") };
        sequence.push((status, form));
    }
    let failed = sequence.iter().filter(|s| **s == (502, "html")).count();
    assert!((8..32).contains(&failed), "about half of 40 writes: {failed}");
    assert_eq!(failed + sequence.iter().filter(|s| s.0 == 201).count(), 40);

    // Same seed, same sequence of requests, same faults — set through the knobs this time.
    let knobs = json!({"faultPlan": plan});
    let put = graph.http.put(format!("{control}/knobs")).json(&knobs).send().await.unwrap();
    assert_eq!(put.status(), 204);
    let mut again = Vec::new();
    for i in 0..40 {
        let meeting = Graph::meeting(6 + i % 12);
        let seen =
            observe(graph.request(Method::POST, "/users/anna@contoso.com/events", Some(meeting))).await;
        observe(graph.request(Method::GET, "/users/anna@contoso.com/events", None)).await;
        let Seen::Answer { status, form, .. } = seen else { panic!("{seen:?}") };
        again.push((status, form));
    }
    assert_eq!(again, sequence);

    let refused = graph
        .http
        .put(format!("{control}/faultPlan"))
        .json(&json!({"rules": [{"path": "v1.0", "fault": {"kind": "reset"}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("must start with '/'"));
    let current: Value =
        graph.http.get(format!("{control}/faultPlan")).send().await.unwrap().json().await.unwrap();
    assert_eq!(current["seed"], 3, "a refused plan leaves the current one");
}
