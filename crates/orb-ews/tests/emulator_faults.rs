//! The client against the EWS emulator's fault plans over real HTTP: each fault Exchange or IIS can
//! answer is classified as the caller must treat it (`is_retryable`, `retry_after`), rules are keyed by
//! SOAP operation, storms are waited out or returned, after-handling faults leave the write applied,
//! and the control API takes plans as JSON and refuses bad ones.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use orb_emulators::ews::{self, EwsEmulator, RoomSettings, Scope, Served};
use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_ews::model::{NewMeeting, Window};
use orb_ews::{Auth, EwsClient, EwsConfig, EwsError};
use secrecy::SecretString;

mod support;
use support::{ALICE, ROOM, addr, at, start_clock, target};

struct World {
    em: EwsEmulator,
    served: Served,
}

async fn world() -> World {
    let em = EwsEmulator::new(Arc::new(start_clock()));
    em.add_user(ALICE, "Alice Example");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    let scope: BTreeSet<String> = [ALICE, ROOM].iter().map(|s| s.to_string()).collect();
    em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
    let served = ews::serve(em.clone()).await.unwrap();
    World { em, served }
}

/// A client that waits out `busy_retries` short back-offs itself and gives up on a request after 2 s.
fn client(w: &World, busy_retries: u32) -> EwsClient {
    let auth =
        Auth::Basic { username: "svc-orb".into(), password: SecretString::from("orb-password".to_owned()) };
    let config = EwsConfig {
        allow_plain_http: true,
        busy_retries,
        request_timeout: StdDuration::from_secs(2),
        ..EwsConfig::new(w.served.ews_url().parse().unwrap(), auth)
    };
    EwsClient::new(config).unwrap()
}

fn september() -> Window {
    Window { start: at(1, 0), end: at(30, 0) }
}

fn meeting(start: DateTime<Utc>, match_id: &str) -> NewMeeting {
    NewMeeting {
        subject: "Project sync".into(),
        match_id: match_id.into(),
        start,
        end: start + Duration::hours(1),
        location: None,
        room: Some(addr(ROOM)),
        attendees: Vec::new(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: None,
    }
}

fn plan(rules: Vec<FaultRule>) -> FaultPlan {
    FaultPlan::new(7, rules)
}

#[tokio::test]
async fn every_injected_fault_is_classified_as_the_caller_must_treat_it() {
    let w = world().await;
    let orb = client(&w, 0);
    let room = addr(ROOM);
    let view = || orb.calendar_view(target(&room), september());
    let one = |fault: FaultKind| plan(vec![FaultRule::new(fault).operation("FindItem").next(1)]);

    // ErrorServerBusy with BackOffMilliseconds: busy, wait what Exchange said.
    w.em.set_fault_plan(one(FaultKind::ServerBusy { back_off_ms: 297_749 }));
    let e = view().await.unwrap_err();
    assert!(matches!(&e, EwsError::Busy { code, .. } if code == "ErrorServerBusy"), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(StdDuration::from_millis(297_749)));

    // IIS's HTML 503, with and without Retry-After.
    w.em.set_fault_plan(one(FaultKind::Status {
        status: 503,
        body: BodyStyle::Auto,
        retry_after_secs: Some(7),
    }));
    let e = view().await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(e.retry_after(), Some(StdDuration::from_secs(7)));
    w.em.set_fault_plan(one(FaultKind::status(503)));
    let e = view().await.unwrap_err();
    assert!(matches!(e, EwsError::Transient { status: Some(503), .. }), "{e:?}");
    assert_eq!(e.retry_after(), None);

    // 500: a SOAP fault ErrorInternalServerError; 502 / 504: IIS pages. All transient.
    for status in [500, 502, 504] {
        w.em.set_fault_plan(one(FaultKind::status(status)));
        let e = view().await.unwrap_err();
        assert!(e.is_retryable(), "{status}: {e:?}");
        assert_eq!(e.retry_after(), None, "{status}");
    }

    // Other SOAP faults keep their meaning: transient codes retry, a schema refusal does not.
    w.em.set_fault_plan(one(FaultKind::SoapFault { code: "ErrorInternalServerTransientError".into() }));
    assert!(view().await.unwrap_err().is_retryable());
    w.em.set_fault_plan(one(FaultKind::SoapFault { code: "ErrorSchemaValidation".into() }));
    let e = view().await.unwrap_err();
    assert!(matches!(&e, EwsError::Rejected { code, .. } if code == "ErrorSchemaValidation"), "{e:?}");
    assert!(!e.is_retryable());

    // A maintenance page with 200 is not EWS: a protocol error telling what to check.
    w.em.set_fault_plan(one(FaultKind::status_with(200, BodyStyle::Html)));
    let e = view().await.unwrap_err();
    assert!(matches!(e, EwsError::Protocol { .. }), "{e:?}");

    // A connection held past the client's timeout, and one broken off mid-body: transient.
    w.em.set_fault_plan(one(FaultKind::timeout(StdDuration::from_secs(30))));
    let e = view().await.unwrap_err();
    assert!(matches!(e, EwsError::Transient { status: None, .. }), "{e:?}");
    w.em.set_fault_plan(one(FaultKind::Reset));
    let e = view().await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");

    // A slow body is the real answer, just slow.
    w.em.set_fault_plan(one(FaultKind::SlowBody { chunk_bytes: 256, delay_ms: 5 }));
    assert!(view().await.unwrap().items.is_empty());

    // Every fault is in the request log with its kind.
    let faults: Vec<String> = w.em.requests().iter().filter_map(|r| r.fault.clone()).collect();
    assert_eq!(
        faults,
        [
            "serverBusy",
            "status",
            "status",
            "status",
            "status",
            "status",
            "soapFault",
            "soapFault",
            "status",
            "timeout",
            "reset",
            "slowBody"
        ]
    );
    assert!(w.em.requests().iter().all(|r| r.operation == "FindItem"));
}

#[tokio::test]
async fn storms_are_waited_out_or_returned_and_rules_follow_the_operation() {
    let w = world().await;
    let (alice, room) = (addr(ALICE), addr(ROOM));
    let orb = client(&w, 2);
    // Five busy answers to FindItem only, 20 ms back-off each.
    w.em.set_fault_plan(plan(vec![
        FaultRule::new(FaultKind::ServerBusy { back_off_ms: 20 }).operation("finditem").next(5),
    ]));
    // Other operations pass untouched during the storm.
    let id = orb.create_meeting(target(&alice), &meeting(at(1, 8), "m-1")).await.unwrap();
    orb.get_item(target(&alice), &id).await.unwrap();
    // The first view waits out two back-offs, then returns the third busy answer to its caller.
    let e = orb.calendar_view(target(&room), september()).await.unwrap_err();
    assert_eq!(e.retry_after(), Some(StdDuration::from_millis(20)));
    // The second meets the storm's last two answers, waits them out and succeeds.
    let page = orb.calendar_view(target(&room), september()).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let finds: Vec<Option<String>> =
        w.em.requests().iter().filter(|r| r.operation == "FindItem").map(|r| r.fault.clone()).collect();
    assert_eq!(finds.len(), 6);
    assert!(finds[..5].iter().all(|f| f.as_deref() == Some("serverBusy")));
    assert_eq!(finds[5], None);
    assert!(!w.em.fault_plan().is_active(), "the storm is spent");
}

#[tokio::test]
async fn writes_fail_before_or_after_they_are_applied() {
    let w = world().await;
    let alice = addr(ALICE);
    let orb = client(&w, 0);
    // Before handling: the 502 means nothing was created.
    w.em.set_fault_plan(plan(vec![FaultRule::new(FaultKind::status(502)).operation("write").next(1)]));
    assert!(orb.create_meeting(target(&alice), &meeting(at(1, 8), "m-1")).await.unwrap_err().is_retryable());
    assert!(w.em.items(ALICE).is_empty());
    assert!(w.em.items(ROOM).is_empty());
    // After handling: the answer breaks off, but the meeting exists and reached the room.
    w.em.set_fault_plan(plan(vec![
        FaultRule::new(FaultKind::Reset).operation("CreateItem").after_handling().next(1),
    ]));
    assert!(orb.create_meeting(target(&alice), &meeting(at(2, 8), "m-2")).await.unwrap_err().is_retryable());
    assert_eq!(w.em.items(ALICE).len(), 1);
    assert_eq!(w.em.items(ROOM).len(), 1);
    let last = w.em.requests().last().cloned().unwrap();
    assert_eq!((last.fault.as_deref(), last.fault_after_handling), (Some("reset"), true));
    assert_eq!(last.response_code, "NoError", "it was handled");
    // Reads are not writes.
    w.em.set_fault_plan(plan(vec![FaultRule::new(FaultKind::status(500)).operation("write")]));
    orb.calendar_view(target(&alice), september()).await.unwrap();
}

#[tokio::test]
async fn the_control_api_takes_plans_as_json_and_refuses_bad_ones() {
    let w = world().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("{}/_emulator/faultPlan", w.served.base_url);
    let ok = http
        .put(&url)
        .json(&serde_json::json!({"seed": 3, "rules": [
            {"operation": "FindItem", "next": 5, "fault": {"kind": "serverBusy", "backOffMs": 30000}},
            {"operation": "write", "rate": 0.02, "afterHandling": true, "fault": {"kind": "reset"}}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    let plan = w.em.fault_plan();
    assert_eq!(plan.rules[0].fault, FaultKind::ServerBusy { back_off_ms: 30_000 });
    assert_eq!(plan.rules[1].operation.as_deref(), Some("write"));
    let got: FaultPlan = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, plan);
    for (rules, says) in [
        (serde_json::json!([{"fault": {"kind": "soapFault", "code": "oops"}}]), "EWS response code"),
        (serde_json::json!([{"fault": {"kind": "serverBusy", "backOffMs": 99_999_999u64}}]), "at most"),
        (serde_json::json!([{"operation": " ", "fault": {"kind": "reset"}}]), "operation must not be empty"),
    ] {
        let resp = http.put(&url).json(&serde_json::json!({"rules": rules})).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let text = resp.text().await.unwrap();
        assert!(text.contains(says), "{text}");
    }
    assert_eq!(w.em.fault_plan(), plan, "a refused plan changes nothing");
}
