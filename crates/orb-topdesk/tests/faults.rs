//! The TOPdesk client against the emulator's fault plan over real HTTP: every fault kind gets the right
//! class (transient or permanent), retried reads and writes succeed once a burst ends, and creates stay
//! single when an answer is lost after the write was applied.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orb_core::{FixedClock, TopdeskLocationId};
use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use orb_topdesk::wire::{CreateReservationDto, UpdateReservationDto};
use orb_topdesk::*;
use secrecy::SecretString;
use url::Url;

fn at(text: &str) -> DateTime<Utc> {
    orb_topdesk::datetime::parse(text).unwrap()
}

struct World {
    served: ServedEmulator,
    clock: FixedClock,
    anna: PersonId,
    room: TopdeskLocationId,
}

async fn world() -> World {
    let clock = FixedClock::new(at("2026-03-01T08:00:00Z"));
    let emulator = TopdeskEmulator::new(Arc::new(clock.clone()));
    emulator.add_account("orb-api", "app-secret-1");
    let anna = emulator.add_person("Anna", "Bakker", Some("anna@contoso.com"));
    let room = emulator.add_room("Room A", 0, DoubleBooking::Refuse);
    let served = emulator.serve().await.unwrap();
    World { served, clock, anna, room }
}

impl World {
    /// A client with a 300 ms request timeout and `retries` quick retries.
    fn client(&self, retries: usize) -> TopdeskClient {
        let mut config = TopdeskConfig::new(
            Url::parse(&self.served.base_url).unwrap(),
            "orb-api",
            SecretString::from("app-secret-1"),
            Arc::new(self.clock.clone()),
        );
        config.request_timeout = Duration::from_millis(300);
        config.retry = RetryPolicy {
            max_retries: retries,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_millis(50),
        };
        TopdeskClient::new(config).unwrap()
    }

    fn plan(&self, rules: Vec<FaultRule>) {
        self.served.emulator.set_fault_plan(FaultPlan::new(5, rules));
    }

    fn booking(&self, hour: u32) -> CreateReservationDto {
        let start = at(&format!("2026-03-02T{hour:02}:00:00Z"));
        let mut dto =
            CreateReservationDto::new(self.anna, &self.room, start, start + chrono::Duration::minutes(30));
        dto.brief_description = Some("Project sync".into());
        dto
    }

    /// (faulted requests, all requests) on `method path` so far.
    fn calls(&self, method: &str, path_start: &str) -> (usize, usize) {
        let log = self.served.emulator.request_log();
        let mine: Vec<_> =
            log.iter().filter(|r| r.method == method && r.path.starts_with(path_start)).collect();
        (mine.iter().filter(|r| r.fault_kind.is_some()).count(), mine.len())
    }
}

/// The variant's name and whether it is retryable (`ok` for success).
fn class<T>(result: &Result<T, TopdeskError>) -> (&'static str, bool) {
    match result {
        Ok(_) => ("ok", false),
        Err(e) => {
            let name = match e {
                TopdeskError::NotFound { .. } => "NotFound",
                TopdeskError::Rejected { .. } => "Rejected",
                TopdeskError::Unauthorized { .. } => "Unauthorized",
                TopdeskError::Forbidden { .. } => "Forbidden",
                TopdeskError::Throttled { .. } => "Throttled",
                TopdeskError::Transient { .. } => "Transient",
                TopdeskError::Invalid { .. } => "Invalid",
                TopdeskError::Permanent { .. } => "Permanent",
            };
            (name, e.is_retryable())
        }
    }
}

fn status(code: u16, body: BodyStyle) -> FaultKind {
    FaultKind::status_with(code, body)
}

#[tokio::test]
async fn every_fault_kind_gets_its_class() {
    let w = world().await;
    let client = w.client(0);
    let hold = FaultKind::timeout(Duration::from_secs(10));
    let cases: Vec<(FaultKind, bool, (&str, bool))> = vec![
        (status(500, BodyStyle::Json), false, ("Transient", true)),
        (status(500, BodyStyle::Html), false, ("Transient", true)),
        (status(502, BodyStyle::Auto), false, ("Transient", true)),
        (status(504, BodyStyle::Auto), false, ("Transient", true)),
        (status(504, BodyStyle::Empty), true, ("Transient", true)),
        (status(503, BodyStyle::Auto), false, ("Transient", true)),
        (
            FaultKind::Status { status: 503, body: BodyStyle::Html, retry_after_secs: Some(2) },
            false,
            ("Throttled", true),
        ),
        (
            FaultKind::Status { status: 500, body: BodyStyle::Json, retry_after_secs: Some(1) },
            false,
            ("Throttled", true),
        ),
        (status(429, BodyStyle::Empty), false, ("Throttled", true)),
        (status(408, BodyStyle::Auto), false, ("Transient", true)),
        (status(425, BodyStyle::Auto), false, ("Transient", true)),
        (status(200, BodyStyle::Html), false, ("Transient", true)),
        (hold.clone(), false, ("Transient", true)),
        (hold, true, ("Transient", true)),
        (FaultKind::Reset, false, ("Transient", true)),
        (FaultKind::Reset, true, ("Transient", true)),
        (FaultKind::SlowBody { chunk_bytes: 1, delay_ms: 100 }, false, ("Transient", true)),
        (FaultKind::SlowBody { chunk_bytes: 64, delay_ms: 1 }, false, ("ok", false)),
        (status(400, BodyStyle::Json), false, ("Rejected", false)),
        (status(409, BodyStyle::Json), false, ("Rejected", false)),
        (status(422, BodyStyle::Json), false, ("Rejected", false)),
        (status(401, BodyStyle::Html), false, ("Unauthorized", false)),
        (status(403, BodyStyle::Json), false, ("Forbidden", false)),
        (status(404, BodyStyle::Html), false, ("NotFound", false)),
        (status(501, BodyStyle::Json), false, ("Permanent", false)),
    ];
    for (fault, after, expected) in cases {
        let mut rule = FaultRule::new(fault.clone()).path("/tas/api/operators/current").next(1);
        rule.after_handling = after;
        w.plan(vec![rule]);
        let result = client.current_operator().await;
        assert_eq!(class(&result), expected, "{fault:?} after handling: {after} → {result:?}");
        assert_eq!(w.served.emulator.fault_plan().rules[0].next, Some(0), "{fault:?} was injected");
    }
    assert!(client.current_operator().await.is_ok(), "and once the faults are spent, calls work");
}

#[tokio::test]
async fn a_retried_read_and_write_succeed_once_a_burst_ends() {
    let w = world().await;
    let client = w.client(3);
    let made = client.create_reservation(&w.booking(9)).await.unwrap();
    let id = made.id.unwrap();

    // Reads: three failures of three kinds, then the answer.
    w.plan(vec![
        FaultRule::new(status(500, BodyStyle::Html)).method("GET").next(1),
        FaultRule::new(FaultKind::Reset).method("GET").next(1),
        FaultRule::new(status(502, BodyStyle::Auto)).method("GET").next(1),
    ]);
    let read = client.get_reservation(id).await.unwrap();
    assert_eq!(read.id, Some(id));
    assert_eq!(w.calls("GET", "/tas/api/reservations/"), (3, 4), "3 faults, then 200");

    // A PATCH answered 504 twice and then applied.
    w.plan(vec![FaultRule::new(status(504, BodyStyle::Auto)).method("PATCH").next(2)]);
    let change = UpdateReservationDto { brief_description: Some("Renamed".into()), ..Default::default() };
    let updated = client.update_reservation(id, &change, None).await.unwrap();
    assert_eq!(updated.brief_description.as_deref(), Some("Renamed"));
    assert_eq!(w.calls("PATCH", "/tas/api/reservations/"), (2, 3));

    // A burst longer than the client's retries: still transient, for the engine to retry later.
    w.plan(vec![FaultRule::new(status(500, BodyStyle::Json)).method("GET").next(10)]);
    let err = client.get_reservation(id).await.unwrap_err();
    assert!(matches!(err, TopdeskError::Transient { .. }) && err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn an_idempotent_create_stays_single_whatever_happens_to_its_answers() {
    let w = world().await;
    let client = w.client(3);
    let hold = FaultKind::timeout(Duration::from_secs(10));
    // (fault on the POST, after handling) — the create is retried until it is found or made, once.
    let cases = [
        (status(500, BodyStyle::Json), false),
        (status(502, BodyStyle::Auto), false),
        (status(500, BodyStyle::Html), true),
        (FaultKind::Reset, true),
        (hold.clone(), true),
        (hold, false),
        (FaultKind::SlowBody { chunk_bytes: 1, delay_ms: 100 }, false),
    ];
    for (hour, (fault, after)) in (8..).zip(cases) {
        let link = ExternalLink::new(format!("match-{hour}"), 7301).unwrap();
        let mut rule = FaultRule::new(fault.clone()).method("POST").path("/tas/api/reservations").next(1);
        rule.after_handling = after;
        let applied = after || matches!(fault, FaultKind::SlowBody { .. });
        w.plan(vec![rule]);
        let before = w.served.emulator.reservations().len();
        let ensured = client.ensure_reservation(&w.booking(hour), &link, None).await.unwrap();
        assert!(link.is_on(&ensured.reservation));
        assert_eq!(
            ensured.created, !applied,
            "{fault:?} after {after}: found the lost create instead of repeating it"
        );
        assert_eq!(
            w.served.emulator.reservations().len(),
            before + 1,
            "{fault:?} after {after}: exactly one"
        );
    }
    // A plain create is not retried: its failure is the caller's to resolve (by the link).
    w.plan(vec![FaultRule::new(status(502, BodyStyle::Auto)).method("POST").after_handling().next(1)]);
    let before = w.served.emulator.reservations().len();
    let err = client.create_reservation(&w.booking(20)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(w.served.emulator.reservations().len(), before + 1, "applied although the answer was a 502");
}
