//! The Graph client against the emulator's fault plan over real HTTP: every fault kind gets the right
//! class (transient or permanent), retried reads and idempotent writes succeed once a burst ends, a
//! non-idempotent POST is not repeated blindly, and a create whose answer is lost stays single.

mod support;

use std::time::Duration;

use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_graph::model::{Message, Recipient};
use orb_graph::{ClientOptions, Credential, GraphClient, GraphError};
use secrecy::SecretString;
use support::{World, addr, at, corr, meeting};

/// A client with a 300 ms request timeout, 5 ms back-off and `attempts` tries per call.
fn client(world: &World, attempts: u32) -> GraphClient {
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        backoff_base: Duration::from_millis(5),
        max_attempts: attempts,
        max_retry_after: Duration::from_secs(1),
        ..ClientOptions::default()
    };
    world.client_with(Credential::Secret(SecretString::from(support::SECRET)), options)
}

fn plan(world: &World, rules: Vec<FaultRule>) {
    world.em.set_fault_plan(FaultPlan::new(9, rules));
}

/// The variant's name and whether it is retryable (`ok` for success).
fn class<T>(result: &Result<T, GraphError>) -> (&'static str, bool) {
    match result {
        Ok(_) => ("ok", false),
        Err(e) => {
            let name = match e {
                GraphError::Unauthorized { .. } => "Unauthorized",
                GraphError::Forbidden { .. } => "Forbidden",
                GraphError::NotFound { .. } => "NotFound",
                GraphError::Conflict { .. } => "Conflict",
                GraphError::Throttled { .. } => "Throttled",
                GraphError::Transient { .. } => "Transient",
                GraphError::Rejected { .. } => "Rejected",
                GraphError::Permanent { .. } => "Permanent",
                GraphError::Decode { .. } => "Decode",
                other => panic!("unexpected {other:?}"),
            };
            (name, e.is_retryable())
        }
    }
}

fn status(code: u16, body: BodyStyle) -> FaultKind {
    FaultKind::status_with(code, body)
}

/// (faulted requests, all requests) to paths starting with `path_start` with `method`.
fn calls(world: &World, method: &str, path_start: &str) -> (usize, usize) {
    let log = world.em.requests();
    let mine: Vec<_> = log.iter().filter(|r| r.method == method && r.path.starts_with(path_start)).collect();
    (mine.iter().filter(|r| r.fault_kind.is_some()).count(), mine.len())
}

#[tokio::test]
async fn every_fault_kind_gets_its_class() {
    let world = World::start().await;
    let client = client(&world, 1);
    let room = addr("room1@contoso.com");
    let hold = FaultKind::timeout(Duration::from_secs(10));
    let cases: Vec<(FaultKind, bool, (&str, bool))> = vec![
        (status(500, BodyStyle::Auto), false, ("Transient", true)),
        (status(500, BodyStyle::Html), true, ("Transient", true)),
        (status(502, BodyStyle::Auto), false, ("Transient", true)),
        (status(504, BodyStyle::Auto), false, ("Transient", true)),
        (status(504, BodyStyle::Empty), false, ("Transient", true)),
        (status(503, BodyStyle::Auto), false, ("Throttled", true)),
        (
            FaultKind::Status { status: 503, body: BodyStyle::Auto, retry_after_secs: Some(30) },
            false,
            ("Throttled", true),
        ),
        (
            FaultKind::Status { status: 502, body: BodyStyle::Html, retry_after_secs: Some(30) },
            false,
            ("Throttled", true),
        ),
        (status(429, BodyStyle::Auto), false, ("Throttled", true)),
        (status(408, BodyStyle::Auto), false, ("Transient", true)),
        (status(425, BodyStyle::Auto), false, ("Transient", true)),
        (status(200, BodyStyle::Html), false, ("Transient", true)),
        (hold.clone(), false, ("Transient", true)),
        (hold, true, ("Transient", true)),
        (FaultKind::Reset, false, ("Transient", true)),
        (FaultKind::Reset, true, ("Transient", true)),
        (FaultKind::SlowBody { chunk_bytes: 1, delay_ms: 100 }, false, ("Transient", true)),
        (FaultKind::SlowBody { chunk_bytes: 64, delay_ms: 1 }, false, ("ok", false)),
        (status(400, BodyStyle::Auto), false, ("Rejected", false)),
        (status(422, BodyStyle::Auto), false, ("Rejected", false)),
        (status(409, BodyStyle::Auto), false, ("Conflict", false)),
        (status(401, BodyStyle::Auto), false, ("Unauthorized", false)),
        (status(403, BodyStyle::Html), false, ("Forbidden", false)),
        (status(404, BodyStyle::Html), false, ("NotFound", false)),
        (status(501, BodyStyle::Auto), false, ("Permanent", false)),
    ];
    for (fault, after, expected) in cases {
        // Two in a row: a 401 is tried once more with a fresh token before it counts.
        let mut rule = FaultRule::new(fault.clone()).path("/v1.0/users/*/calendarView").next(2);
        rule.after_handling = after;
        plan(&world, vec![rule]);
        let result =
            client.calendar_view(&room, at("2026-09-01T00:00:00Z"), at("2026-09-02T00:00:00Z"), corr()).await;
        assert_eq!(class(&result), expected, "{fault:?} after handling: {after} → {result:?}");
        if let (FaultKind::Status { retry_after_secs: Some(secs), .. }, Err(e)) = (&fault, &result) {
            assert_eq!(
                e.retry_after(),
                Some(Duration::from_secs(*secs)),
                "Retry-After is read (and too long to wait out)"
            );
        }
    }
}

#[tokio::test]
async fn retried_reads_and_idempotent_writes_succeed_once_a_burst_ends() {
    let world = World::start().await;
    let client = client(&world, 4);
    let anna = addr("anna@contoso.com");
    let room = addr("room1@contoso.com");

    // A read: three failures of three kinds, then the answer.
    plan(
        &world,
        vec![
            FaultRule::new(status(502, BodyStyle::Auto)).method("GET").path("/v1.0/**").next(1),
            FaultRule::new(FaultKind::Reset).method("GET").path("/v1.0/**").next(1),
            FaultRule::new(status(504, BodyStyle::Auto)).method("GET").path("/v1.0/**").next(1),
        ],
    );
    let view =
        client.calendar_view(&room, at("2026-09-01T00:00:00Z"), at("2026-09-02T00:00:00Z"), corr()).await;
    assert!(view.unwrap().is_empty());
    assert_eq!(calls(&world, "GET", "/v1.0/users/room1@contoso.com/calendarView"), (3, 4));

    // A create whose first answers are lost after it was applied: transactionId makes the retry return
    // the first event, so the mailbox holds one.
    plan(
        &world,
        vec![
            FaultRule::new(FaultKind::Reset)
                .method("POST")
                .path("/v1.0/users/*/events")
                .after_handling()
                .next(1),
            FaultRule::new(status(500, BodyStyle::Auto))
                .method("POST")
                .path("/v1.0/users/*/events")
                .after_handling()
                .next(1),
        ],
    );
    let input = meeting("Review", "room1@contoso.com", "2026-09-02T09:00:00", "2026-09-02T10:00:00");
    let created = client.create_event(&anna, &input, "match-1", corr()).await.unwrap();
    assert_eq!(created.transaction_id.as_deref(), Some("match-1"));
    assert_eq!(world.em.events("anna@contoso.com").unwrap().len(), 1, "one event, not three");
    assert_eq!(calls(&world, "POST", "/v1.0/users/anna@contoso.com/events"), (2, 3));

    // An update answered 503 with a short Retry-After, then 504: waited out and retried.
    plan(
        &world,
        vec![
            FaultRule::new(FaultKind::Status {
                status: 503,
                body: BodyStyle::Auto,
                retry_after_secs: Some(0),
            })
            .method("PATCH")
            .next(1),
            FaultRule::new(status(504, BodyStyle::Auto)).method("PATCH").next(1),
        ],
    );
    let id = created.id.unwrap();
    let change = orb_graph::model::Event { subject: Some("Renamed".into()), ..Default::default() };
    let updated = client.update_event(&anna, &id, &change, None, corr()).await.unwrap();
    assert_eq!(updated.subject.as_deref(), Some("Renamed"));

    // A burst longer than the client's attempts stays transient, for the engine to retry later.
    plan(&world, vec![FaultRule::new(status(500, BodyStyle::Auto)).method("GET").path("/v1.0/**").next(10)]);
    let err = client.get_event(&anna, &id, corr()).await.unwrap_err();
    assert!(matches!(err, GraphError::Transient { .. }) && err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn a_non_idempotent_post_is_repeated_only_when_graph_did_not_process_it() {
    let world = World::start().await;
    let client = client(&world, 4);
    let bob = addr("bob@contoso.com");
    let message = Message {
        subject: Some("Your room booking".into()),
        to_recipients: Some(vec![Recipient::new("anna@contoso.com", None)]),
        ..Message::default()
    };
    // (fault, after handling) → (class, requests sent, mails sent)
    let cases = [
        (status(502, BodyStyle::Auto), false, ("Transient", true), 1, 0),
        (status(500, BodyStyle::Auto), true, ("Transient", true), 1, 1),
        (FaultKind::Reset, true, ("Transient", true), 1, 1),
        (status(503, BodyStyle::Auto), false, ("ok", false), 2, 1),
        (status(429, BodyStyle::Auto), false, ("ok", false), 2, 1),
    ];
    for (fault, after, expected, requests, mails) in cases {
        let mut rule = FaultRule::new(fault.clone()).method("POST").path("/v1.0/users/*/sendMail").next(1);
        rule.after_handling = after;
        plan(&world, vec![rule]);
        let (sent_before, outbox_before) =
            (calls(&world, "POST", "/v1.0/users/bob").1, world.em.outbox().len());
        let result = client.send_mail(&bob, &message, false, corr()).await;
        assert_eq!(class(&result), expected, "{fault:?} after {after}: {result:?}");
        assert_eq!(
            calls(&world, "POST", "/v1.0/users/bob").1 - sent_before,
            requests,
            "{fault:?} after {after}"
        );
        assert_eq!(world.em.outbox().len() - outbox_before, mails, "{fault:?} after {after}");
    }
}
