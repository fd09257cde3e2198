//! TOPdesk change detection by polling ([`orb_engine::poller`]) end to end over real HTTP: the Graph and
//! TOPdesk emulators on `127.0.0.1:0`, the orb-web intake as the notification URL of a rich subscription
//! (for the room's echoes and Outlook bookings), a real store (SQLite in a tempdir; PostgreSQL too when
//! `ORB_TEST_POSTGRES_URL` is set, required when `CI` is set) and the `Worker` in the background. An
//! operator acts in TOPdesk through its API; the test calls `poll_topdesk` and asserts on the poll's
//! report, the queue, the store and both emulators.

mod support;

use chrono::{DateTime, Duration, Utc};
use orb_core::{Clock as _, Side};
use orb_emulators::topdesk::DoubleBooking;
use orb_engine::poller::{CURSOR_NEAR, PollReport, poll_topdesk};
use orb_graph::model::ResponseType;
use orb_store::jobs::JobKind;
use orb_store::{BookingKey, JobStatus, Lane};
use support::eventually;
use support::world::*;

// ---- polling helpers ----

impl World {
    fn reservations_location(&self) -> orb_core::TopdeskLocationId {
        self.room.topdesk_location_id.clone()
    }

    /// The near window around the test clock: a day back, a week ahead.
    fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let now = self.clock.now();
        (now - Duration::days(1), now + Duration::days(7))
    }

    async fn poll(&self) -> PollReport {
        poll_topdesk(&self.deps, self.tenant.id, self.window(), self.clock.now()).await.unwrap()
    }

    /// An operator books `location` in TOPdesk for Anna.
    async fn reserve_in_topdesk(
        &self,
        location: &orb_core::TopdeskLocationId,
        subject: &str,
        start: &str,
        end: &str,
    ) -> orb_topdesk::wire::ReservationDto {
        let mut create =
            orb_topdesk::wire::CreateReservationDto::new(self.anna, location, at(start), at(end));
        create.brief_description = Some(subject.into());
        self.topdesk.create_reservation(&create).await.unwrap()
    }

    /// Every `sync.observation` job of the tenant, whatever its status.
    /// Every `sync.observation` job, whatever its state, once each (a job can move on between the
    /// per-state queries while the worker runs, so the lists are merged by id).
    async fn observation_jobs(&self) -> Vec<orb_store::Job> {
        let mut all = std::collections::BTreeMap::new();
        for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Done, JobStatus::Dead] {
            for job in self.jobs(status).await.into_iter().filter(|j| j.kind == JobKind::SyncObservation) {
                all.insert(job.id, job);
            }
        }
        all.into_values().collect()
    }

    /// The start of Anna's only meeting.
    fn annas_meeting_start(&self) -> Option<DateTime<Utc>> {
        let events = self.graph_em.events(ANNA).unwrap();
        assert!(events.len() <= 1, "at most one meeting in the organizer's calendar: {events:?}");
        events.first().and_then(|e| e.start.as_ref()).map(|s| s.to_utc().unwrap())
    }
}

// ---- scenarios ----

#[tokio::test]
async fn a_reservation_made_in_topdesk_is_polled_into_outlook_and_its_reschedule_follows() {
    on_every_store(|w| async move {
        let made = w
            .reserve_in_topdesk(
                &w.reservations_location(),
                "Team sync",
                "2026-09-04T09:00:00Z",
                "2026-09-04T10:00:00Z",
            )
            .await;
        assert!(w.bookings().await.is_empty(), "nothing happens before a poll");

        // First poll: the reservation is new.
        let report = w.poll().await;
        assert_eq!(report, PollReport { listed: 1, enqueued: 1, unchanged: 0, skipped: 0 });
        let jobs = w.observation_jobs().await;
        assert_eq!(jobs.len(), 1, "one sync.observation job: {jobs:?}");
        assert_eq!(jobs[0].lane, Lane::room(w.tenant.id, w.room.id).key, "in the room's lane");
        let cursor = w.store.get_cursor(w.tenant.id, CURSOR_NEAR).await.unwrap();
        assert_eq!(cursor, Some(w.clock.now().to_rfc3339()), "the poll is recorded");

        let record = w
            .booking_where("the polled reservation to be synced", |r| r.exchange.organizer_event_id.is_some())
            .await;
        w.settled().await;
        assert_eq!(record.processor_created, Side::Topdesk);
        assert_eq!(record.topdesk.reservation_id, made.id.map(|i| i.to_string()));
        let events = w.graph_em.events(ANNA).unwrap();
        assert_eq!(events.len(), 1, "one meeting in the organizer's calendar: {events:?}");
        assert_eq!(events[0].subject.as_deref(), Some("Team sync"));
        assert_eq!(
            events[0].attendee_response(ROOM),
            Some(ResponseType::Accepted),
            "the room is on the meeting: {:?}",
            events[0].attendees
        );
        assert_eq!(w.annas_meeting_start(), Some(at("2026-09-04T09:00:00Z")));

        // Second poll: nothing changed in TOPdesk, nothing is enqueued.
        w.clock.advance(Duration::seconds(5));
        let report = w.poll().await;
        assert_eq!(report, PollReport { listed: 1, enqueued: 0, unchanged: 1, skipped: 0 });
        assert_eq!(w.observation_jobs().await.len(), 1, "no second job");

        // The operator reschedules it in TOPdesk: the next poll sees a newer modificationDate.
        w.clock.advance(Duration::minutes(1));
        w.topdesk
            .reschedule_reservation(made.id.unwrap(), at("2026-09-04T13:00:00Z"), at("2026-09-04T14:30:00Z"))
            .await
            .unwrap();
        let report = w.poll().await;
        assert_eq!(report, PollReport { listed: 1, enqueued: 1, unchanged: 0, skipped: 0 });
        eventually("the meeting to move", || async {
            (w.annas_meeting_start() == Some(at("2026-09-04T13:00:00Z"))).then_some(())
        })
        .await;
        w.settled().await;
        let events = w.graph_em.events(ANNA).unwrap();
        assert_eq!(events.len(), 1, "moved, not duplicated: {events:?}");
        let end = events[0].end.as_ref().map(|e| e.to_utc().unwrap());
        assert_eq!(end, Some(at("2026-09-04T14:30:00Z")));
        let record = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
        assert_eq!(record.start, at("2026-09-04T13:00:00Z"));
        assert_eq!(w.reservations().len(), 1, "still one reservation");

        // And the poll after that is quiet again.
        w.clock.advance(Duration::seconds(5));
        let report = w.poll().await;
        assert_eq!(report, PollReport { listed: 1, enqueued: 0, unchanged: 1, skipped: 0 });
        assert_eq!(w.observation_jobs().await.len(), 2);
        assert!(w.jobs(JobStatus::Dead).await.is_empty(), "{:?}", w.jobs(JobStatus::Dead).await);
    })
    .await;
}

#[tokio::test]
async fn a_reservation_in_an_unmapped_room_is_not_synced() {
    on_every_store(|w| async move {
        let unmapped = w.td.emulator.add_room("Room B", 0, DoubleBooking::Refuse);
        let other = w
            .reserve_in_topdesk(&unmapped, "Elsewhere", "2026-09-04T09:00:00Z", "2026-09-04T10:00:00Z")
            .await;
        let mapped = w
            .reserve_in_topdesk(
                &w.reservations_location(),
                "Here",
                "2026-09-04T11:00:00Z",
                "2026-09-04T12:00:00Z",
            )
            .await;
        assert_eq!(w.reservations().len(), 2);

        let report = w.poll().await;
        assert_eq!(report.enqueued, 1, "only the mapped room's reservation: {report:?}");
        assert_eq!(report.listed, report.enqueued + report.unchanged + report.skipped, "{report:?}");
        assert_eq!(
            report.listed - report.skipped,
            1,
            "the unmapped room's reservation is not a booking: {report:?}"
        );
        let jobs = w.observation_jobs().await;
        assert_eq!(jobs.len(), 1, "{jobs:?}");

        let record = w
            .booking_where("the mapped reservation to be synced", |r| r.exchange.organizer_event_id.is_some())
            .await;
        w.settled().await;
        assert_eq!(record.topdesk.reservation_id, mapped.id.map(|i| i.to_string()));
        let other_id = other.id.unwrap().to_string();
        let found =
            w.store.find_booking(w.tenant.id, &BookingKey::TopdeskReservation(&other_id)).await.unwrap();
        assert!(found.is_none(), "no record for the unmapped room's reservation");
        let events = w.graph_em.events(ANNA).unwrap();
        assert_eq!(events.len(), 1, "only the mapped room's meeting: {events:?}");
        assert_eq!(events[0].subject.as_deref(), Some("Here"));
    })
    .await;
}

#[tokio::test]
async fn orbs_own_reservation_is_unchanged_until_a_person_edits_it_in_topdesk() {
    on_every_store(|w| async move {
        w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let record =
            w.booking_where("the Outlook booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1);
        let links = reservations[0].external_links.clone().unwrap_or_default();
        assert!(links.iter().any(|l| l.id == record.id.to_string()), "ORB made it: {links:?}");

        // ORB's own, just-written reservation: the record holds its modificationDate.
        let report = w.poll().await;
        assert_eq!(report, PollReport { listed: 1, enqueued: 0, unchanged: 1, skipped: 0 });
        assert!(w.observation_jobs().await.is_empty(), "the poll enqueued nothing");

        // A person edits it in TOPdesk later: now it is changed.
        w.clock.advance(Duration::minutes(1));
        w.topdesk
            .reschedule_reservation(
                reservations[0].id.unwrap(),
                at("2026-09-03T13:00:00Z"),
                at("2026-09-03T14:00:00Z"),
            )
            .await
            .unwrap();
        let report = w.poll().await;
        assert_eq!(report, PollReport { listed: 1, enqueued: 1, unchanged: 0, skipped: 0 });
        let jobs = w.observation_jobs().await;
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        eventually("the job to run", || async {
            let done = w.jobs(JobStatus::Done).await;
            done.iter().any(|j| j.kind == JobKind::SyncObservation).then_some(())
        })
        .await;
        w.settled_except_scheduled().await;
        let after = w.store.get_booking(w.tenant.id, record.id).await.unwrap();
        assert!(
            after.topdesk.modification_date > record.topdesk.modification_date,
            "the edit was observed: {:?} → {:?}",
            record.topdesk.modification_date,
            after.topdesk.modification_date
        );
        assert!(w.jobs(JobStatus::Dead).await.is_empty(), "{:?}", w.jobs(JobStatus::Dead).await);
    })
    .await;
}

#[tokio::test]
async fn orbs_own_cancel_is_not_read_back_and_costs_the_poll_nothing() {
    on_every_store(|w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.booking_where("the Outlook booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        // Anna cancels her meeting; ORB cancels the reservation without reading it back.
        w.clock.advance(Duration::minutes(1));
        let id = event["id"].as_str().unwrap();
        let resp = w
            .http
            .post(w.graph_control(&format!("mailboxes/{ANNA}/events/{id}/cancel")))
            .json(&serde_json::json!({"comment": "No longer needed"}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
        let cancelled = w.booking_where("the cancellation to be synced", |r| r.cancelled).await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations[0].status, Some(orb_topdesk::ReservationStatus::Cancelled));
        let reads =
            w.td.emulator
                .request_log()
                .iter()
                .filter(|r| r.method == "GET" && r.path.contains(&reservations[0].id.unwrap().to_string()))
                .count();
        assert_eq!(reads, 0, "the cancelled reservation is not read back by id");
        assert!(
            cancelled.topdesk.modification_date
                < reservations[0].modification_date.map(orb_core::stored_precision),
            "the record keeps the watermark it had"
        );
        // The poll lists the cancelled reservation (newer than the record's watermark) and leaves it: a
        // cancelled reservation of a cancelled booking has nothing left to sync.
        let report = w.poll().await;
        assert_eq!(report, PollReport { listed: 1, enqueued: 0, unchanged: 1, skipped: 0 });
        assert!(w.observation_jobs().await.is_empty(), "the poll enqueued nothing");
    })
    .await;
}

#[tokio::test]
async fn under_subject_drop_a_polled_subject_never_reaches_the_job_table() {
    let mut options = WorldOptions::default();
    options.policy.subject = orb_core::SubjectPolicy::Drop;
    on_every_store_with(&options, |w| async move {
        let loc = w.reservations_location();
        w.reserve_in_topdesk(&loc, "Secret merger talk", "2026-09-03T09:00:00Z", "2026-09-03T10:00:00Z")
            .await;
        let report = w.poll().await;
        assert_eq!(report.enqueued, 1, "{report:?}");
        let jobs = w.observation_jobs().await;
        assert_eq!(jobs.len(), 1);
        assert!(
            !jobs[0].payload.to_string().contains("Secret merger"),
            "the subject was stored in the job: {}",
            jobs[0].payload
        );
        assert!(
            jobs[0].payload["observation"]["start"].is_string(),
            "the rest is there: {}",
            jobs[0].payload
        );
        w.settled().await;
        assert!(w.bookings().await.iter().all(|r| r.subject.is_none()));
    })
    .await;
}
