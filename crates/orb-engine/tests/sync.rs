//! The sync engine end to end over real HTTP: the Graph and TOPdesk emulators on `127.0.0.1:0`, the orb-web
//! intake as the notification URL of a rich subscription (certificate from a `CertificateRing`), a real
//! store (SQLite in a tempdir; PostgreSQL too when `ORB_TEST_POSTGRES_URL` is set, required when `CI` is
//! set) and the `Worker` running in the background. Each scenario acts as a person would (Outlook through
//! the Graph emulator's control API, TOPdesk through its API) and asserts on both emulators and the store.

mod support;

use std::collections::BTreeMap;

use chrono::Duration;
use orb_core::{Clock as _, Side};
use orb_emulators::graph::{Knobs, NotificationKnobs};
use orb_engine::runtime::AUDIT_NOTIFICATION_REFUSED;
use orb_graph::model::ResponseType;
use orb_store::{InboxSource, JobStatus, Lane, NewInboxItem, NewJob};
use orb_topdesk::ReservationStatus;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use support::world::*;
use support::{eventually, mail};

fn graph_requests(world: &World) -> u64 {
    world.graph_em.counters().values().map(|c| c.requests).sum()
}

// ---- scenarios ----

#[tokio::test]
async fn an_outlook_booking_appears_in_topdesk_with_the_organizer_as_requester() {
    on_every_store(|w| async move {
        let (graph_before, td_before) = (graph_requests(&w), w.td.emulator.request_counts().total);
        w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;

        let record = w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1, "one reservation: {reservations:?}");
        let r = &reservations[0];
        assert_eq!(r.requester.as_ref().and_then(|p| p.id), Some(w.anna), "requester = the organizer");
        let links = r.external_links.clone().unwrap_or_default();
        assert!(
            links.iter().any(|l| l.id == record.id.to_string() && l.kind == LINK_TYPE.to_string()),
            "ORB's match id is the external link: {links:?}"
        );
        assert_eq!(r.planned_start_date, Some(at("2026-09-03T09:00:00Z")));
        assert_eq!(r.planned_end_date, Some(at("2026-09-03T10:00:00Z")));
        assert_eq!(r.status, Some(ReservationStatus::Planned));
        assert_eq!(
            r.brief_description.as_deref(),
            Some("Quarterly planning"),
            "the organizer's subject, not the room copy's (Exchange rewrites it to the organizer's name)"
        );

        assert_eq!(record.processor_created, Side::Exchange);
        assert_eq!(record.original_organizer, mail(ANNA));
        assert_eq!(record.organizer, mail(ANNA));
        assert_eq!(record.complexity_index, 0);
        assert_eq!(record.topdesk_status, orb_core::SyncStatus::Synced, "the create succeeded");
        assert_eq!(record.exchange_status, orb_core::SyncStatus::Synced);
        assert_eq!(record.topdesk.reservation_id, r.id.map(|i| i.to_string()));
        assert!(record.topdesk_fingerprint.is_some() && record.exchange_fingerprint.is_some());

        // Timeline: the planner's entries and the executed write, committed with the record.
        let timeline = w.store.timeline(w.tenant.id, record.id).await.unwrap();
        let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
        assert!(kinds.contains(&"observed") && kinds.contains(&"decision"), "{kinds:?}");
        assert!(kinds.contains(&"written"), "{kinds:?}");
        assert!(timeline.iter().all(|e| e.correlation_id == record.correlation_id));

        // The job and its inbox item are done.
        let done = w.jobs(JobStatus::Done).await;
        assert!(done.iter().any(|j| j.kind == "graph.notification"), "{done:?}");
        assert!(w.jobs(JobStatus::Dead).await.is_empty());

        let graph_calls = graph_requests(&w) - graph_before;
        let td_calls = w.td.emulator.request_counts().total - td_before;
        eprintln!(
            "figures: one Outlook booking synced = {td_calls} TOPdesk calls, {graph_calls} Graph calls (incl. the \
             organizer's own booking), {} notification(s)",
            w.change_notifications_delivered()
        );
        eprintln!("TOPdesk routes: {:?}", w.td.emulator.request_counts().by_route);
        assert!(td_calls <= 4, "person look-up + link look-up + create (+ token): {td_calls}");
    })
    .await;
}

#[tokio::test]
async fn the_same_notification_delivered_twice_makes_one_reservation() {
    on_every_store(|w| async move {
        w.graph_em.set_knobs(Knobs {
            notifications: NotificationKnobs { duplicate_next: 1, ..NotificationKnobs::default() },
            ..w.graph_em.knobs()
        });
        w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        eventually("two deliveries", || async { (w.change_notifications_delivered() >= 2).then_some(()) })
            .await;
        w.settled().await;

        let done: Vec<_> =
            w.jobs(JobStatus::Done).await.into_iter().filter(|j| j.kind == "graph.notification").collect();
        assert!(done.len() >= 2, "both deliveries were processed: {done:?}");
        assert_eq!(w.reservations().len(), 1, "still one reservation");
        let record = w.booking_where("one booking", |_| true).await;
        assert_eq!(record.complexity_index, 0, "an echo is not a change");
        assert!(w.jobs(JobStatus::Dead).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_retime_in_outlook_reschedules_the_reservation() {
    on_every_store(|w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;

        let td_before = w.td.emulator.request_counts();
        let id = event["id"].as_str().unwrap();
        let resp = w
            .http
            .patch(w.graph_control(&format!("mailboxes/{ANNA}/events/{id}")))
            .json(&json!({
                "start": {"dateTime": "2026-09-03T13:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-09-03T14:30:00", "timeZone": "UTC"}
            }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());

        let record = w.booking_where("the retime to be synced", |r| r.complexity_index >= 1).await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1);
        assert_eq!(reservations[0].planned_start_date, Some(at("2026-09-03T13:00:00Z")));
        assert_eq!(reservations[0].planned_end_date, Some(at("2026-09-03T14:30:00Z")));
        let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
        assert_eq!(record.complexity_index, 1, "one real change");
        assert_eq!(record.start, at("2026-09-03T13:00:00Z"));
        let td_after = w.td.emulator.request_counts();
        let writes: Vec<_> = td_after
            .by_route
            .iter()
            .filter(|(route, n)| route.starts_with("POST") && td_before.by_route.get(*route) != Some(n))
            .map(|(route, _)| route.clone())
            .collect();
        eprintln!(
            "figures: one Outlook retime synced = {} TOPdesk calls ({:?})",
            td_after.total - td_before.total,
            writes
        );
        assert_eq!(writes.len(), 1, "one write, the reschedule: {writes:?}");
        assert!(writes[0].contains("reschedule"), "{writes:?}");
        assert!(w.jobs(JobStatus::Dead).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_cancellation_in_outlook_cancels_the_reservation_and_keeps_the_record() {
    on_every_store(|w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;

        let id = event["id"].as_str().unwrap();
        let resp = w
            .http
            .post(w.graph_control(&format!("mailboxes/{ANNA}/events/{id}/cancel")))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());

        let record = w.booking_where("the cancellation to be synced", |r| r.cancelled).await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1);
        assert_eq!(reservations[0].status, Some(ReservationStatus::Cancelled));
        assert!(record.cancelled, "the record is kept, marked cancelled");
        assert_eq!(w.bookings().await.len(), 1);
        assert!(w.jobs(JobStatus::Dead).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_topdesk_reservation_appears_in_the_organizers_calendar_with_the_room() {
    on_every_store(|w| async move {
        let mut create = orb_topdesk::wire::CreateReservationDto::new(
            w.anna,
            &w.reservations_location(),
            at("2026-09-04T09:00:00Z"),
            at("2026-09-04T10:00:00Z"),
        );
        create.brief_description = Some("Team sync".into());
        let made = w.topdesk.create_reservation(&create).await.unwrap();
        let number = made.number.clone().unwrap();
        let (graph_before, td_before) = (graph_requests(&w), w.td.emulator.request_counts().total);

        // TOPdesk pushes the hint (by number) to the intake.
        let resp = w
            .http
            .post(format!("{}/hooks/topdesk/contoso", w.intake))
            .bearer_auth(PUSH_TOKEN)
            .json(&json!({"reservations": [number]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);

        let record = w
            .booking_where("the reservation to be synced", |r| r.exchange.organizer_event_id.is_some())
            .await;
        // The room accepts, Graph notifies the room's copy: that echo must not create anything.
        eventually("the room's notification", || async {
            (w.change_notifications_delivered() >= 1).then_some(())
        })
        .await;
        w.settled().await;

        eprintln!(
            "figures: one TOPdesk reservation synced (push + echo) = {} Graph calls, {} TOPdesk calls",
            graph_requests(&w) - graph_before,
            w.td.emulator.request_counts().total - td_before
        );
        let events = w.graph_em.events(ANNA).unwrap();
        assert_eq!(events.len(), 1, "one meeting in the organizer's calendar: {events:?}");
        let meeting = &events[0];
        assert_eq!(meeting.subject.as_deref(), Some("Team sync"));
        assert_eq!(
            meeting.attendee_response(ROOM),
            Some(ResponseType::Accepted),
            "the room is on the meeting and accepted: {:?}",
            meeting.attendees
        );
        assert_eq!(w.graph_em.events(ROOM).unwrap().len(), 1, "the room's calendar holds it");
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1, "no second reservation from the echo");
        assert_eq!(
            reservations[0].brief_description.as_deref(),
            Some("Team sync"),
            "the room copy's rewritten subject (the organizer's name) does not overwrite TOPdesk's"
        );

        let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
        assert_eq!(record.processor_created, Side::Topdesk);
        assert_eq!(record.complexity_index, 0, "the echo changed nothing");
        assert_eq!(record.topdesk.reservation_id, made.id.map(|i| i.to_string()));
        let done = w.jobs(JobStatus::Done).await;
        assert!(done.iter().any(|j| j.kind == "topdesk.hint"), "{done:?}");
        assert!(done.iter().any(|j| j.kind == "graph.notification"), "the echo was processed: {done:?}");
        assert!(w.jobs(JobStatus::Dead).await.is_empty(), "{:?}", w.jobs(JobStatus::Dead).await);
    })
    .await;
}

impl World {
    fn reservations_location(&self) -> orb_core::TopdeskLocationId {
        self.room.topdesk_location_id.clone()
    }

    /// A rich notification item for the room's subscription, built by hand.
    fn forged_item(&self, encrypted: Value) -> Value {
        json!({
            "subscriptionId": self.subscription,
            "subscriptionExpirationDateTime": "2026-09-02T06:00:00Z",
            "changeType": "created",
            "clientState": self.client_state.expose_secret(),
            "resource": format!("Users/{ROOM}/Events/AAMkForged="),
            "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "id": "AAMkForged="},
            "tenantId": TENANT,
            "encryptedContent": encrypted,
        })
    }
}

#[tokio::test]
async fn a_tampered_notification_is_refused_by_the_worker_and_nothing_is_written() {
    on_every_store(|w| async move {
        let cert = w.ring.current().unwrap();
        let flipped = w.forged_item(json!({
            "data": "dGFtcGVyZWQgZGF0YQ==",
            "dataKey": "AAAA",
            "dataSignature": "c2lnbmF0dXJl",
            "encryptionCertificateId": cert.id(),
            "encryptionCertificateThumbprint": cert.thumbprint(),
        }));
        let unknown_cert = w.forged_item(json!({
            "data": "dGFtcGVyZWQgZGF0YQ==",
            "dataKey": "AAAA",
            "dataSignature": "c2lnbmF0dXJl",
            "encryptionCertificateId": "not-our-certificate",
            "encryptionCertificateThumbprint": "0000",
        }));
        let body = json!({"value": [flipped, unknown_cert], "validationTokens": ["not.a.jwt"]});
        let resp = w.http.post(format!("{}/hooks/graph/contoso", w.intake)).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 202, "the intake keeps them (its checks passed)");

        // An item carrying a wrong validationToken (as the intake will keep them once it copies the POST's
        // tokens onto each item) is refused at the token check.
        let mut with_token = w.forged_item(json!({
            "data": "AAAA", "dataKey": "AAAA", "dataSignature": "AAAA",
            "encryptionCertificateId": cert.id(), "encryptionCertificateThumbprint": cert.thumbprint(),
        }));
        with_token["validationTokens"] = json!(["eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln"]);
        let now = w.clock.now();
        w.store
            .accept_inbox(
                &NewInboxItem {
                    tenant_id: w.tenant.id,
                    source: InboxSource::Graph,
                    received_at: now,
                    remote_ip: None,
                    payload: with_token,
                },
                &NewJob {
                    lane: Lane::room(w.tenant.id, w.room.id),
                    kind: "graph.notification".into(),
                    payload: json!({"subscription_id": w.subscription}),
                    correlation_id: None,
                    run_at: None,
                },
                now,
            )
            .await
            .unwrap();

        let refusals = eventually("three refusals in the audit log", || async {
            let audit = w.store.list_audit(w.tenant.id, 50).await.unwrap();
            let refused: Vec<_> =
                audit.into_iter().filter(|a| a.action == AUDIT_NOTIFICATION_REFUSED).collect();
            (refused.len() == 3).then_some(refused)
        })
        .await;
        w.settled().await;
        assert!(refusals.iter().all(|a| a.actor == "worker"));
        assert!(
            refusals.iter().any(|a| a.target.contains("validationToken")),
            "the bad token is named: {refusals:?}"
        );
        let jobs = w.jobs(JobStatus::Done).await;
        assert_eq!(jobs.len(), 3, "the jobs ran to completion (refusal is not a failure): {jobs:?}");
        for job in &jobs {
            let inbox = job.payload["inbox_id"].as_i64().unwrap();
            assert!(w.store.get_inbox(w.tenant.id, inbox).await.unwrap().processed_at.is_some());
        }
        assert!(w.bookings().await.is_empty(), "no booking");
        assert!(w.reservations().is_empty(), "nothing in TOPdesk");
        assert!(w.jobs(JobStatus::Dead).await.is_empty());
        assert_eq!(
            w.td.emulator.request_counts().by_route.keys().filter(|k| k.starts_with("POST")).count(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn an_unknown_job_kind_is_dead_with_a_clear_error() {
    on_every_store(|w| async move {
        let now = w.clock.now();
        w.store
            .enqueue(
                &NewJob {
                    lane: Lane::tenant(w.tenant.id),
                    kind: "graph.mystery".into(),
                    payload: json!({}),
                    correlation_id: None,
                    run_at: None,
                },
                now,
            )
            .await
            .unwrap();
        let dead = eventually("the job to be dead", || async {
            let dead = w.jobs(JobStatus::Dead).await;
            (!dead.is_empty()).then_some(dead)
        })
        .await;
        assert_eq!(dead[0].kind, "graph.mystery");
        let error = dead[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("graph.mystery") && error.contains("not handled"), "{error}");
        assert_eq!(dead[0].attempts, 1, "a permanent error is not retried");
    })
    .await;
}

impl World {
    /// A person makes a reservation in TOPdesk and TOPdesk pushes the hint; returns the reservation.
    async fn reserve_in_topdesk_and_push(&self, start: &str, end: &str) -> orb_topdesk::wire::ReservationDto {
        let mut create = orb_topdesk::wire::CreateReservationDto::new(
            self.anna,
            &self.reservations_location(),
            at(start),
            at(end),
        );
        create.brief_description = Some("Team sync".into());
        let made = self.topdesk.create_reservation(&create).await.unwrap();
        let resp = self
            .http
            .post(format!("{}/hooks/topdesk/contoso", self.intake))
            .bearer_auth(PUSH_TOKEN)
            .json(&json!({"reservations": [made.id.unwrap().to_string()]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        made
    }
}

#[tokio::test]
async fn a_throttled_write_is_retried_later_and_the_observation_is_not_lost() {
    on_every_store(|w| async move {
        // Graph throttles the organizer's mailbox with a Retry-After of 10 minutes: the create fails.
        w.graph_em.set_knobs(Knobs {
            storm: BTreeMap::from([(ANNA.to_owned(), 1)]),
            retry_after_secs: 600,
            ..w.graph_em.knobs()
        });
        let made = w.reserve_in_topdesk_and_push("2026-09-04T09:00:00Z", "2026-09-04T10:00:00Z").await;
        let failed = w.booking_where("the failure to be recorded", |r| r.failed_count == 1).await;
        w.settled_except_scheduled().await;
        assert_eq!(failed.exchange_status, orb_core::SyncStatus::Failed);
        assert_eq!(failed.failed_processor, Some(Side::Exchange));
        assert_eq!(failed.retry_count, 1);
        assert_eq!(failed.exchange_fingerprint, None, "the failed side keeps its old (no) fingerprint");
        assert_eq!(failed.topdesk_fingerprint, None, "the observed side too, so the retry is not an echo");
        assert_eq!(failed.topdesk.reservation_id, made.id.map(|i| i.to_string()));
        assert!(w.graph_em.events(ANNA).unwrap().is_empty(), "nothing in Outlook yet");
        let queued = w.jobs(JobStatus::Queued).await;
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(queued[0].kind, "sync.retry");
        assert_eq!(queued[0].run_at, w.clock.now() + Duration::minutes(10), "Graph's Retry-After");
        let kinds: Vec<String> =
            w.store.timeline(w.tenant.id, failed.id).await.unwrap().into_iter().map(|e| e.kind).collect();
        assert!(
            kinds.contains(&"write-failed".to_owned()) && kinds.contains(&"failure".to_owned()),
            "{kinds:?}"
        );

        // Ten minutes later the retry runs and creates the meeting (same match id), once.
        w.clock.advance(Duration::minutes(11));
        let synced = w
            .booking_where("the retry to create the meeting", |r| r.exchange.organizer_event_id.is_some())
            .await;
        w.settled().await;
        assert_eq!(synced.id, failed.id, "the same booking");
        let synced = w.store.get_booking(w.tenant.id, synced.id).await.unwrap();
        assert_eq!(synced.exchange_status, orb_core::SyncStatus::Synced);
        assert_eq!(w.graph_em.events(ANNA).unwrap().len(), 1, "one meeting");
        assert_eq!(w.reservations().len(), 1);
        assert_eq!(synced.complexity_index, 0);
        let done = w.jobs(JobStatus::Done).await;
        assert!(done.iter().any(|j| j.kind == "sync.retry"), "{done:?}");
        assert!(w.jobs(JobStatus::Dead).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_refused_write_is_recorded_and_the_organizer_is_told() {
    on_every_store(|w| async move {
        // The room is taken in TOPdesk already.
        let occupied = orb_topdesk::wire::CreateReservationDto::new(
            w.anna,
            &w.reservations_location(),
            at("2026-09-03T08:30:00Z"),
            at("2026-09-03T09:30:00Z"),
        );
        w.topdesk.create_reservation(&occupied).await.unwrap();
        w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;

        let record = w.booking_where("the refusal to be recorded", |r| r.failed_count >= 1).await;
        w.settled().await;
        assert_eq!(record.topdesk_status, orb_core::SyncStatus::Failed);
        assert_eq!(record.failed_processor, Some(Side::Topdesk));
        assert_eq!(record.topdesk.reservation_id, None);
        assert_eq!(w.reservations().len(), 1, "only the occupying reservation");
        assert!(w.jobs(JobStatus::Queued).await.is_empty(), "a permanent refusal is not retried");
        let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
        assert_eq!(record.failed_count, 1, "the room's later notifications of the same meeting are echoes");
        let outbox = w.graph_em.outbox();
        assert_eq!(outbox.len(), 1, "the organizer is mailed once (booking refused): {outbox:?}");
        assert!(w.jobs(JobStatus::Dead).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_organizer_who_books_again_is_looked_up_in_topdesk_once() {
    on_every_store(|w| async move {
        w.book("First", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        eventually("the first reservation", || async { (w.reservations().len() == 1).then_some(()) }).await;
        w.settled().await;
        let lookups =
            |w: &World| w.td.emulator.request_counts().by_route.get("GET /tas/api/persons").copied();
        let after_first = lookups(&w);
        assert_eq!(after_first, Some(1), "{:?}", w.td.emulator.request_counts().by_route);
        w.book("Second", "2026-09-04T09:00:00", "2026-09-04T10:00:00").await;
        eventually("the second reservation", || async { (w.reservations().len() == 2).then_some(()) }).await;
        w.settled().await;
        assert_eq!(lookups(&w), after_first, "the person id is reused by the next job");
        assert!(w.reservations().iter().all(|r| r.requester.as_ref().and_then(|p| p.id) == Some(w.anna)));
    })
    .await;
}

#[tokio::test]
async fn a_notification_signed_in_one_cloud_is_refused_for_a_tenant_of_another() {
    // Another cloud: a second Graph service with its own validation-token signing keys. The tenant's
    // runtime checks tokens against that cloud's keys (its own cloud), so the notifications the first one
    // signs are refused, and nothing is synced from them.
    let clock: std::sync::Arc<dyn orb_core::Clock> =
        std::sync::Arc::new(orb_core::FixedClock::new(at("2026-09-01T06:00:00Z")));
    let other_cloud =
        orb_emulators::graph::serve(orb_emulators::graph::GraphEmulator::new(clock)).await.unwrap();
    let options = WorldOptions { jwks_url: Some(other_cloud.jwks_url()), ..WorldOptions::default() };
    on_every_store_with(&options, |w| async move {
        w.book("Signed elsewhere", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let refused = eventually("the notification refused at its token check", || async {
            let audit = w.store.list_audit(w.tenant.id, 50).await.unwrap();
            let refused: Vec<_> =
                audit.into_iter().filter(|a| a.action == AUDIT_NOTIFICATION_REFUSED).collect();
            (!refused.is_empty()).then_some(refused)
        })
        .await;
        w.settled().await;
        assert!(
            refused.iter().any(|a| a.target.contains("validationToken is invalid")),
            "refused at the token check: {refused:?}"
        );
        assert!(w.bookings().await.is_empty(), "nothing synced from a notification of another cloud");
        assert!(w.reservations().is_empty());
    })
    .await;
}
