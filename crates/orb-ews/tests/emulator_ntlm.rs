//! NTLM against the EWS emulator over real HTTP: the three-leg handshake on one connection, then
//! requests on the authenticated connection without a new handshake (read from the emulator's request
//! log), the user name forms, a wrong password (one refusal, no loop), a server that offers only Basic,
//! a server that forgot the connection (one new handshake), parallel calls, and streaming.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use futures::StreamExt;
use orb_emulators::ews::{self, EwsEmulator, Knobs, RequestRecord, RoomSettings, Scope, Served};
use orb_ews::model::{NewMeeting, Window};
use orb_ews::streaming::ConnectionTimeout;
use orb_ews::{Auth, EwsClient, EwsConfig, EwsError};
use secrecy::SecretString;

mod support;
use support::{ALICE, ROOM, addr, at, start_clock, target};

async fn emulator() -> (EwsEmulator, Served) {
    let em = EwsEmulator::new(Arc::new(start_clock()));
    em.add_user(ALICE, "Alice Example");
    em.add_room(ROOM, "Room 4.12", RoomSettings::default());
    let scope: BTreeSet<String> = [ALICE, ROOM].iter().map(|s| s.to_string()).collect();
    em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
    let served = ews::serve(em.clone()).await.unwrap();
    (em, served)
}

fn ntlm(served: &Served, domain: Option<&str>, user: &str, password: &str) -> EwsClient {
    let auth = Auth::Ntlm {
        domain: domain.map(str::to_owned),
        username: user.into(),
        password: SecretString::from(password.to_owned()),
    };
    let config = EwsConfig {
        allow_plain_http: true,
        request_timeout: StdDuration::from_secs(10),
        ..EwsConfig::new(served.ews_url().parse().unwrap(), auth)
    };
    EwsClient::new(config).unwrap()
}

fn meeting() -> NewMeeting {
    NewMeeting {
        subject: "Project sync".into(),
        match_id: "m-1".into(),
        start: at(1, 8),
        end: at(1, 9),
        location: Some("Room 4.12".into()),
        room: Some(addr(ROOM)),
        attendees: Vec::new(),
        time_zone: Some("W. Europe Standard Time".into()),
        recurrence: None,
    }
}

fn window() -> Window {
    Window { start: at(1, 0), end: at(2, 0) }
}

/// The auth steps of the log, in order.
fn steps(log: &[RequestRecord]) -> Vec<&str> {
    log.iter().map(|r| r.auth.as_deref().unwrap_or("-")).collect()
}

fn connections(log: &[RequestRecord]) -> BTreeSet<u64> {
    log.iter().filter_map(|r| r.connection).collect()
}

#[tokio::test]
async fn one_handshake_authenticates_the_connection_for_the_requests_after_it() {
    // Every form of the service account's name reaches the same account.
    let forms: &[(Option<&str>, &str)] =
        &[(None, "CONTOSO\\svc-orb"), (Some("CONTOSO"), "svc-orb"), (None, "svc-orb")];
    for (domain, user) in forms {
        let (em, served) = emulator().await;
        let orb = ntlm(&served, *domain, user, "orb-password");
        let alice = addr(ALICE);
        let id = orb.create_meeting(target(&alice), &meeting()).await.unwrap();
        let item = orb.get_item(target(&alice), id.clone()).await.unwrap();
        assert_eq!(item.match_id.as_deref(), Some("m-1"), "{user}");
        let page = orb.calendar_view(target(&addr(ROOM)), window()).await.unwrap();
        assert_eq!(page.items.len(), 1, "{user}: the room accepted");

        let log = em.requests();
        assert_eq!(
            steps(&log),
            ["ntlm-negotiate", "ntlm-authenticate", "ntlm-connection", "ntlm-connection"],
            "{user}: one handshake, then the connection carries the rest"
        );
        assert_eq!(log[0].status, 401);
        assert!(
            log[1..].iter().all(|r| r.status == 200 && r.account.as_deref() == Some("svc-orb")),
            "{log:?}"
        );
        assert_eq!(connections(&log).len(), 1, "{user}: all on one connection: {log:?}");
        // The handshake's first leg did nothing: one meeting made, by the third leg.
        assert_eq!(em.items(ALICE).len(), 1);
        assert_eq!(log.iter().filter(|r| r.operation == "CreateItem" && r.status == 200).count(), 1);
    }
}

#[tokio::test]
async fn a_wrong_password_is_one_clear_refusal_not_a_loop() {
    let (em, served) = emulator().await;
    let wrong = ntlm(&served, Some("CONTOSO"), "svc-orb", "not-the-password");
    let e = wrong.calendar_view(target(&addr(ROOM)), window()).await.unwrap_err();
    assert_eq!(e, EwsError::Unauthorized { status: 401 });
    assert!(!e.is_retryable());
    let text = e.to_string();
    assert!(text.contains("user name and password") && !text.contains("not-the-password"), "{text}");
    assert_eq!(steps(&em.requests()), ["ntlm-negotiate", "ntlm-refused"]);
    // The next call tries once more (one handshake), and is refused again.
    wrong.calendar_view(target(&addr(ROOM)), window()).await.unwrap_err();
    assert_eq!(em.requests().len(), 4);
}

#[tokio::test]
async fn a_server_offering_only_basic_is_named_in_the_error() {
    let (em, served) = emulator().await;
    em.set_knobs(Knobs { ntlm_disabled: true, ..Knobs::default() });
    let orb = ntlm(&served, Some("CONTOSO"), "svc-orb", "orb-password");
    let e = orb.calendar_view(target(&addr(ROOM)), window()).await.unwrap_err();
    let EwsError::AuthNotOffered { wanted, offered } = &e else { panic!("{e:?}") };
    assert_eq!((wanted.as_str(), offered.as_str()), ("NTLM", "Basic"));
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("-WindowsAuthentication $true"), "{e}");
    assert_eq!(steps(&em.requests()), ["ntlm-disabled"], "asked once, not again");
}

#[tokio::test]
async fn a_forgotten_connection_is_authenticated_again_once() {
    let (em, served) = emulator().await;
    let orb = ntlm(&served, None, "CONTOSO\\svc-orb", "orb-password");
    let room = addr(ROOM);
    orb.calendar_view(target(&room), window()).await.unwrap();
    em.forget_ntlm_connections();
    orb.calendar_view(target(&room), window()).await.unwrap();
    let log = em.requests();
    assert_eq!(
        steps(&log),
        ["ntlm-negotiate", "ntlm-authenticate", "none", "ntlm-negotiate", "ntlm-authenticate"],
        "the 401 on the kept connection leads to one new handshake"
    );
    assert_eq!(connections(&log[3..]).len(), 1);
    assert!(!connections(&log[..3]).is_superset(&connections(&log[3..])), "on a new connection: {log:?}");
}

#[tokio::test]
async fn parallel_calls_use_their_own_connections_and_keep_them() {
    let (em, served) = emulator().await;
    let orb = ntlm(&served, Some("CONTOSO"), "svc-orb", "orb-password");
    let room = addr(ROOM);
    let views = || futures::future::join_all((0..3).map(|_| orb.calendar_view(target(&room), window())));
    for r in views().await {
        r.unwrap();
    }
    let handshakes =
        |em: &EwsEmulator| steps(&em.requests()).iter().filter(|s| **s == "ntlm-negotiate").count();
    let first = handshakes(&em);
    assert!((1..=3).contains(&first), "{first}");
    // One call at a time now: each finds a kept connection (however many the parallel round needed).
    for _ in 0..3 {
        orb.calendar_view(target(&room), window()).await.unwrap();
    }
    assert_eq!(handshakes(&em), first, "the later calls went over the kept connections");
}

#[tokio::test]
async fn streaming_works_over_an_authenticated_connection() {
    let (em, served) = emulator().await;
    em.set_knobs(Knobs { stream_minute_ms: Some(1_500), ..Knobs::default() });
    let orb = ntlm(&served, Some("CONTOSO"), "svc-orb", "orb-password");
    let room = addr(ROOM);
    let sub = orb.subscribe_streaming(target(&room), None).await.unwrap();
    let mut stream = Box::pin(orb.stream_events(
        target(&room),
        std::slice::from_ref(&sub.id),
        ConnectionTimeout::minutes(1).unwrap(),
        None,
    ));
    let writer = ntlm(&served, Some("CONTOSO"), "svc-orb", "orb-password");
    let alice = addr(ALICE);
    let reader = tokio::spawn(async move {
        let mut notes = 0;
        while let Some(batch) = stream.next().await {
            let batch = batch.unwrap();
            notes += batch.notifications.len();
            if batch.is_closed() {
                break;
            }
        }
        notes
    });
    // A change is streamed only while a connection serves the subscription.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    while !em.streaming_subscriptions().iter().any(|s| s.id == sub.id && s.connected) {
        assert!(std::time::Instant::now() < deadline, "the stream never connected");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    writer
        .create_meeting(
            target(&alice),
            &NewMeeting { start: at(1, 10), end: at(1, 10) + Duration::hours(1), ..meeting() },
        )
        .await
        .unwrap();
    let notes = tokio::time::timeout(StdDuration::from_secs(10), reader).await.unwrap().unwrap();
    assert!(notes >= 1, "the room's change arrived on the stream");
    let log = em.requests();
    let get = log.iter().find(|r| r.operation == "GetStreamingEvents").unwrap();
    assert_eq!(get.auth.as_deref(), Some("ntlm-connection"), "{log:?}");
}
