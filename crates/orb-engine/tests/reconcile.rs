//! The reconciliation sweep ([`orb_engine::reconcile`]) end to end over real HTTP: the Graph and TOPdesk
//! emulators on `127.0.0.1:0`, the orb-web intake as the notification URL of a rich subscription for the
//! room, a real store (SQLite in a tempdir; PostgreSQL too when `ORB_TEST_POSTGRES_URL` is set, required
//! when `CI` is set) and the `Worker` in the background. Notifications are lost with the Graph emulator's
//! `drop_next` knob (a person acts in Outlook while Graph's POSTs go nowhere) and TOPdesk changes are made
//! without a poll or push; the test then calls `sweep_room` (or sends a lifecycle event) and asserts on the
//! sweep's report, the queue, the store, the audit log and both emulators.

mod support;

use chrono::{DateTime, Duration, Utc};
use orb_core::{BookingRecord, Clock as _, Side};
use orb_emulators::graph::RoomSettings;
use orb_engine::reconcile::{
    self, AUDIT_MASS_DELETION_HELD, Difference, JobsByKind, SweepOptions, sweep_room_with, sweep_tenant,
};
use orb_engine::subscriptions::AUDIT_SUBSCRIPTION_MISSED;
use orb_graph::model::LifecycleEventType;
use orb_store::jobs::JobKind;
use orb_store::{BookingKey, JobStatus, Lane};
use orb_topdesk::ReservationStatus;
use orb_topdesk::wire::ReservationDto;
use serde_json::{Value, json};
use support::eventually;
use support::world::*;

// ---- sweep helpers ----

impl World {
    /// A person books the room in Outlook while Graph's notifications are lost; returns the organizer's event.
    async fn book_unnotified(&self, subject: &str, start: &str, end: &str) -> Value {
        self.drop_notifications(true);
        let event = self.book(subject, start, end).await;
        self.drop_notifications(false);
        event
    }

    /// The organizer deletes her meeting in Outlook.
    async fn delete_in_outlook(&self, event: &Value) {
        let id = event["id"].as_str().unwrap();
        let resp = self
            .http
            .delete(self.graph_control(&format!("mailboxes/{ANNA}/events/{id}")))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    /// An operator books the room in TOPdesk for Anna (no push, no poll).
    async fn reserve_in_topdesk(&self, subject: &str, start: &str, end: &str) -> ReservationDto {
        let mut create = orb_topdesk::wire::CreateReservationDto::new(
            self.anna,
            &self.room.topdesk_location_id,
            at(start),
            at(end),
        );
        create.brief_description = Some(subject.into());
        self.topdesk.create_reservation(&create).await.unwrap()
    }

    /// Every `sync.observation` job, whatever its state, once each.
    async fn sweep_jobs(&self) -> Vec<orb_store::Job> {
        let mut all = std::collections::BTreeMap::new();
        for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Done, JobStatus::Dead] {
            for job in self.jobs(status).await.into_iter().filter(|j| j.kind == JobKind::SyncObservation) {
                all.insert(job.id, job);
            }
        }
        all.into_values().collect()
    }

    /// The start of Anna's meeting with `subject`.
    fn annas_meeting_start(&self, subject: &str) -> Option<DateTime<Utc>> {
        self.graph_em
            .events(ANNA)
            .unwrap()
            .into_iter()
            .find(|e| e.subject.as_deref() == Some(subject))
            .and_then(|e| e.start.as_ref().map(|s| s.to_utc().unwrap()))
    }

    async fn record_of(&self, reservation: &ReservationDto) -> Option<BookingRecord> {
        let id = reservation.id.unwrap().to_string();
        self.store.find_booking(self.tenant.id, &BookingKey::TopdeskReservation(&id)).await.unwrap()
    }

    /// Ten meetings in Outlook, one a day from 2 September, each synced to TOPdesk by its notification.
    async fn ten_synced_bookings(&self) -> Vec<Value> {
        let mut events = Vec::new();
        for day in 2..12 {
            let start = format!("2026-09-{day:02}T09:00:00");
            let end = format!("2026-09-{day:02}T10:00:00");
            events.push(self.book(&format!("Meeting {day}"), &start, &end).await);
        }
        eventually("ten synced bookings", || async {
            let all = self.bookings().await;
            (all.len() == 10 && all.iter().all(|r| r.topdesk.reservation_id.is_some())).then_some(())
        })
        .await;
        self.settled().await;
        assert_eq!(self.reservations().len(), 10);
        events
    }

    fn active_reservations(&self) -> usize {
        self.reservations().iter().filter(|r| r.status != Some(ReservationStatus::Cancelled)).count()
    }
}

fn jobs(new: usize, changed: usize, deleted: usize) -> JobsByKind {
    JobsByKind { new, changed, deleted, redriven: 0 }
}

// ---- scenarios ----

#[tokio::test]
async fn a_booking_whose_notification_was_lost_is_synced_by_the_sweep() {
    on_every_store(|w| async move {
        w.book_unnotified("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.settled().await;
        assert!(w.bookings().await.is_empty(), "the notification was lost: no record");
        assert!(w.reservations().is_empty());

        let report = w.sweep().await;
        assert!(report.swept);
        assert_eq!((report.events_read, report.reservations_read, report.records), (1, 0, 0), "{report:?}");
        assert_eq!(report.jobs, jobs(1, 0, 0), "{report:?}");
        let queued = w.sweep_jobs().await;
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(queued[0].lane, Lane::room(w.tenant.id, w.room.id).key, "in the room's lane");
        assert_eq!(queued[0].payload["observation"]["source"], "Sweep");

        let record =
            w.booking_where("the swept booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1, "one reservation: {reservations:?}");
        assert_eq!(reservations[0].requester.as_ref().and_then(|p| p.id), Some(w.anna));
        assert_eq!(reservations[0].planned_start_date, Some(at("2026-09-03T09:00:00Z")));
        assert_eq!(w.bookings().await.len(), 1, "exactly one record");
        assert_eq!(record.processor_created, Side::Exchange);

        // Healed: the next sweep finds nothing to do.
        let again = w.sweep().await;
        assert_eq!(again.jobs.total(), 0, "{again:?}");
        assert_eq!((again.records, again.unchanged), (1, 2), "{again:?}");
        assert_eq!(w.reservations().len(), 1);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn an_outlook_deletion_whose_notification_was_lost_cancels_the_reservation() {
    on_every_store(|w| async move {
        // The room removes cancelled meetings from its calendar: the deleted meeting is simply gone.
        w.graph_em.set_room_settings(
            ROOM,
            RoomSettings { remove_canceled_meetings: true, ..RoomSettings::default() },
        );
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let record =
            w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;

        w.clock.advance(Duration::minutes(1));
        w.drop_notifications(true);
        w.delete_in_outlook(&event).await;
        w.drop_notifications(false);
        assert!(w.graph_em.events(ROOM).unwrap().is_empty(), "gone from the room's calendar");
        w.settled().await;
        assert!(!w.bookings().await[0].cancelled, "the deletion was not notified");

        let report = w.sweep().await;
        assert_eq!(report.jobs, jobs(0, 0, 1), "{report:?}");
        assert_eq!((report.events_read, report.held_deletions), (0, 0), "{report:?}");
        let cancelled = w.booking_where("the deletion to be synced", |r| r.cancelled).await;
        w.settled().await;
        assert_eq!(cancelled.id, record.id, "the same record, kept and marked cancelled");
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1);
        assert_eq!(reservations[0].status, Some(ReservationStatus::Cancelled), "{reservations:?}");

        let again = w.sweep().await;
        assert_eq!(again.jobs.total(), 0, "{again:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_meeting_moved_out_of_the_window_is_followed_not_cancelled() {
    on_every_store(|w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;

        // Moved beyond the sweep's window while the notification was lost: the room's copy is not listed.
        w.clock.advance(Duration::minutes(1));
        w.drop_notifications(true);
        w.retime_in_outlook(&event, "2026-10-20T13:00:00", "2026-10-20T14:00:00").await;
        w.drop_notifications(false);

        let report = w.sweep().await;
        assert_eq!(report.events_read, 0, "{report:?}");
        assert_eq!(report.jobs, jobs(0, 1, 0), "looked up by id and found moved: {report:?}");
        w.booking_where("the move to be synced", |r| r.start == at("2026-10-20T13:00:00Z")).await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 1);
        assert_eq!(
            reservations[0].status,
            Some(ReservationStatus::Planned),
            "not cancelled: {reservations:?}"
        );
        assert_eq!(reservations[0].planned_start_date, Some(at("2026-10-20T13:00:00Z")));
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_topdesk_reservation_made_or_changed_without_a_poll_is_followed_by_the_sweep() {
    on_every_store(|w| async move {
        let made = w.reserve_in_topdesk("Team sync", "2026-09-04T09:00:00Z", "2026-09-04T10:00:00Z").await;
        let report = w.sweep().await;
        assert_eq!((report.events_read, report.reservations_read), (0, 1), "{report:?}");
        assert_eq!(report.jobs, jobs(1, 0, 0), "{report:?}");
        let record = w
            .booking_where("the reservation to be synced", |r| r.exchange.organizer_event_id.is_some())
            .await;
        w.settled().await;
        assert_eq!(record.processor_created, Side::Topdesk);
        assert_eq!(record.topdesk.reservation_id, made.id.map(|i| i.to_string()));
        assert_eq!(w.annas_meeting_start("Team sync"), Some(at("2026-09-04T09:00:00Z")));

        // Rescheduled in TOPdesk, nobody polls: the sweep sees the newer modificationDate.
        w.clock.advance(Duration::minutes(1));
        w.topdesk
            .reschedule_reservation(made.id.unwrap(), at("2026-09-04T13:00:00Z"), at("2026-09-04T14:30:00Z"))
            .await
            .unwrap();
        let report = w.sweep().await;
        assert_eq!(report.jobs, jobs(0, 1, 0), "{report:?}");
        eventually("the meeting to move", || async {
            (w.annas_meeting_start("Team sync") == Some(at("2026-09-04T13:00:00Z"))).then_some(())
        })
        .await;
        w.settled().await;
        assert_eq!(w.graph_em.events(ANNA).unwrap().len(), 1, "moved, not duplicated");
        assert_eq!(w.reservations().len(), 1);
        assert_eq!(w.bookings().await.len(), 1);

        let again = w.sweep().await;
        assert_eq!(again.jobs.total(), 0, "{again:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn an_outlook_move_of_a_topdesk_booking_keeps_topdesks_subject() {
    on_every_store(|w| async move {
        let made = w.reserve_in_topdesk("Team sync", "2026-09-04T09:00:00Z", "2026-09-04T10:00:00Z").await;
        assert_eq!(w.sweep().await.jobs, jobs(1, 0, 0));
        w.booking_where("the reservation to be synced", |r| r.exchange.organizer_event_id.is_some()).await;
        w.settled().await;
        let room_copy = &w.graph_em.events(ROOM).unwrap()[0];
        assert_ne!(
            room_copy.subject.as_deref(),
            Some("Team sync"),
            "Exchange rewrites the room copy's subject"
        );

        // Anna moves the meeting ORB made in her calendar; the room copy's notification is lost.
        let meeting = w.graph_em.events(ANNA).unwrap()[0].clone();
        w.clock.advance(Duration::minutes(1));
        w.drop_notifications(true);
        w.retime_in_outlook(&json!({"id": meeting.id}), "2026-09-04T15:00:00", "2026-09-04T16:00:00").await;
        w.drop_notifications(false);

        let report = w.sweep().await;
        assert_eq!(report.jobs, jobs(0, 1, 0), "{report:?}");
        w.booking_where("the move to be synced", |r| r.start == at("2026-09-04T15:00:00Z")).await;
        w.settled().await;
        let reservation = w.reservation_by_id(made.id);
        assert_eq!(reservation.planned_start_date, Some(at("2026-09-04T15:00:00Z")));
        assert_eq!(
            reservation.brief_description.as_deref(),
            Some("Team sync"),
            "the room copy's rewritten subject is not a change of the booking's subject"
        );
        assert_eq!(w.sweep().await.jobs.total(), 0);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_meeting_orb_cannot_book_is_recorded_as_refused_mailed_once_and_heals_when_the_person_exists() {
    on_every_store(|w| async move {
        // Bob is no TOPdesk person and the tenant has no fallback person: the notification's sync records
        // the booking with TOPdesk refused and mails Bob once.
        w.graph_em.add_user(TENANT, "bob@contoso.com", "Bob de Vries");
        let resp = w
            .http
            .post(w.graph_control("book"))
            .json(&json!({"organizer": "bob@contoso.com", "room": ROOM, "subject": "Bob's meeting",
                          "start": "2026-09-03T09:00:00", "end": "2026-09-03T10:00:00"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        eventually("the notification's job", || async {
            let done = w.jobs(JobStatus::Done).await;
            done.iter().any(|j| j.kind == "graph.notification").then_some(())
        })
        .await;
        w.settled().await;
        let records = w.bookings().await;
        assert_eq!(records.len(), 1, "the refused booking is recorded");
        let record = &records[0];
        assert_eq!(record.topdesk_status, orb_core::SyncStatus::Failed);
        assert_eq!((record.failed_processor, record.failed_count), (Some(Side::Topdesk), 1));
        let refusals = |w: &World| {
            let to_bob = |m: &&orb_emulators::graph::SentMail| {
                m.message.to_recipients.iter().flatten().any(|r| r.address() == Some("bob@contoso.com"))
            };
            w.graph_em.outbox().iter().filter(to_bob).count()
        };
        assert_eq!(refusals(&w), 1, "Bob is told once");

        // Sweeps re-drive the refused side with a growing back-off and mail nobody again.
        for _ in 0..5 {
            w.sweep().await;
            w.settled().await;
        }
        let record = w.bookings().await.remove(0);
        assert_eq!(record.topdesk_status, orb_core::SyncStatus::Failed);
        assert_eq!(
            record.failed_count,
            reconcile::REDRIVE_FREE_FAILURES + 1,
            "re-driven at the next sweeps until the back-off starts"
        );
        assert_eq!(w.sweep().await.jobs.total(), 0, "backing off: the next sweep leaves it alone");
        assert_eq!(refusals(&w), 1, "no refusal mail per sweep");
        assert!(w.reservations().is_empty());

        // Bob becomes a TOPdesk person: the next re-drive books the room.
        w.td.emulator.add_person("Bob", "de Vries", Some("bob@contoso.com"));
        w.clock.advance(Duration::minutes(2));
        w.sweep().await;
        w.settled().await;
        let record = w.bookings().await.remove(0);
        assert_eq!(record.topdesk_status, orb_core::SyncStatus::Synced, "{record:?}");
        assert_eq!(w.reservations().len(), 1);
        assert_eq!(refusals(&w), 1);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn bookings_on_both_sides_before_orb_knew_the_room_are_matched_not_duplicated() {
    on_every_store(|w| async move {
        // Before ORB watched the room: a meeting in Outlook and the same booking in TOPdesk (Anna is the
        // requester, same times), plus a meeting that exists in Outlook only.
        w.book_unnotified("Board meeting", "2026-09-07T09:00:00", "2026-09-07T10:00:00").await;
        w.book_unnotified("Outlook only", "2026-09-08T09:00:00", "2026-09-08T10:00:00").await;
        let existing =
            w.reserve_in_topdesk("Board meeting", "2026-09-07T09:00:00Z", "2026-09-07T10:00:00Z").await;
        w.settled().await;
        assert!(w.bookings().await.is_empty());

        // `orb sync --dry-run`: the same comparison, listed, and nothing written or enqueued.
        let dry = SweepOptions { dry_run: true, ..SweepOptions::default() };
        let window = w.sweep_window();
        let plan =
            sweep_room_with(&w.deps, w.tenant.id, w.room.id, window, w.clock.now(), dry).await.unwrap();
        let listed: Vec<(Difference, String)> =
            plan.planned.iter().map(|p| (p.difference, p.action())).collect();
        assert_eq!(
            listed,
            vec![
                (Difference::Paired, "on both sides already: link them, write nothing".to_owned()),
                (Difference::New, "new in Exchange: create it in TOPdesk".to_owned()),
            ],
            "{plan:?}"
        );
        assert_eq!(plan.planned[0].start, at("2026-09-07T09:00:00Z"));
        assert_eq!(plan.planned[1].organizer.as_str(), ANNA);
        assert!(w.bookings().await.is_empty(), "a dry run onboards nothing");
        assert!(w.jobs(JobStatus::Queued).await.is_empty(), "a dry run enqueues nothing");
        assert_eq!(w.store.get_cursor(w.tenant.id, &reconcile::cursor_name(w.room.id)).await.unwrap(), None);

        let report = w.sweep().await;
        assert_eq!((report.events_read, report.reservations_read, report.records), (2, 1, 0), "{report:?}");
        assert_eq!(report.paired, 1, "{report:?}");
        assert_eq!(report.jobs, jobs(1, 0, 0), "only the Outlook-only meeting is new: {report:?}");

        let paired = w.record_of(&existing).await.expect("one record for the pair, at once");
        assert!(paired.exchange.room_event_id.is_some(), "linked to the room's event: {paired:?}");
        assert_eq!(paired.exchange_status, orb_core::SyncStatus::Synced);
        assert_eq!(paired.topdesk_status, orb_core::SyncStatus::Synced);
        assert_eq!(paired.start, at("2026-09-07T09:00:00Z"));
        assert_eq!(
            paired.subject.as_deref(),
            Some("Board meeting"),
            "TOPdesk's subject, not the room copy's"
        );
        let timeline = w.store.timeline(w.tenant.id, paired.id).await.unwrap();
        assert!(timeline.iter().any(|e| e.detail.to_string().contains("onboarded")), "{timeline:?}");

        eventually("the Outlook-only meeting to be synced", || async {
            let all = w.bookings().await;
            (all.len() == 2 && all.iter().all(|r| r.topdesk.reservation_id.is_some())).then_some(())
        })
        .await;
        w.settled().await;
        let reservations = w.reservations();
        assert_eq!(reservations.len(), 2, "no second reservation for the pair: {reservations:?}");
        assert_eq!(w.graph_em.events(ANNA).unwrap().len(), 2, "no second meeting for the pair");
        assert_eq!(w.graph_em.events(ROOM).unwrap().len(), 2);
        let unchanged = w.reservation_by_id(existing.id);
        assert_eq!(unchanged.modification_date, existing.modification_date, "nothing written to TOPdesk");

        // The pair is a normal booking now: a second sweep is quiet, and a TOPdesk change reaches Outlook.
        let again = w.sweep().await;
        assert_eq!((again.jobs.total(), again.paired), (0, 0), "{again:?}");
        w.clock.advance(Duration::minutes(1));
        w.topdesk
            .reschedule_reservation(
                existing.id.unwrap(),
                at("2026-09-07T13:00:00Z"),
                at("2026-09-07T14:00:00Z"),
            )
            .await
            .unwrap();
        let report = w.sweep().await;
        assert_eq!(report.jobs, jobs(0, 1, 0), "{report:?}");
        eventually("the onboarded meeting to move", || async {
            (w.annas_meeting_start("Board meeting") == Some(at("2026-09-07T13:00:00Z"))).then_some(())
        })
        .await;
        w.settled().await;
        assert_eq!(w.graph_em.events(ANNA).unwrap().len(), 2);
        assert_eq!(w.reservations().len(), 2);
        assert_eq!(w.bookings().await.len(), 2);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_sweep_that_would_cancel_most_of_a_room_by_absence_is_held_until_approved() {
    on_every_store(|w| async move {
        // The room removes cancelled meetings: the deleted meetings are simply not listed any more (and 404
        // by id), so the sweep infers the deletions from absence, which is what the guard is for.
        w.graph_em.set_room_settings(
            ROOM,
            RoomSettings { remove_canceled_meetings: true, ..RoomSettings::default() },
        );
        let events = w.ten_synced_bookings().await;
        w.clock.advance(Duration::minutes(1));
        w.drop_notifications(true);
        for event in &events[..8] {
            w.delete_in_outlook(event).await;
        }
        w.drop_notifications(false);

        let report = w.sweep().await;
        assert_eq!(report.future_bookings, 10, "{report:?}");
        assert_eq!(report.held_deletions, 8, "{report:?}");
        assert_eq!(report.jobs.total(), 0, "nothing enqueued for the held deletions: {report:?}");
        let audit = w.store.list_audit(w.tenant.id, 50).await.unwrap();
        let held: Vec<_> = audit.iter().filter(|a| a.action == AUDIT_MASS_DELETION_HELD).collect();
        assert_eq!(held.len(), 1, "{audit:?}");
        assert!(held[0].target.contains(ROOM) && held[0].target.contains("8 of 10"), "{}", held[0].target);
        w.settled().await;
        assert_eq!(w.active_reservations(), 10, "every TOPdesk reservation is still active");
        assert!(w.bookings().await.iter().all(|r| !r.cancelled));

        // Nothing is lost while an admin decides: the next sweep holds them again.
        let again = w.sweep().await;
        assert_eq!((again.held_deletions, again.jobs.total()), (8, 0), "{again:?}");
        assert_eq!(w.active_reservations(), 10);

        // Approved: the cancellations go through.
        let approved = SweepOptions { approve_mass_deletion: true, ..SweepOptions::default() };
        let window = w.sweep_window();
        let report =
            sweep_room_with(&w.deps, w.tenant.id, w.room.id, window, w.clock.now(), approved).await.unwrap();
        assert_eq!((report.jobs, report.held_deletions), (jobs(0, 0, 8), 0), "{report:?}");
        eventually("eight cancellations", || async { (w.active_reservations() == 2).then_some(()) }).await;
        w.settled().await;
        assert_eq!(w.bookings().await.iter().filter(|r| r.cancelled).count(), 8);
        w.no_dead_jobs().await;
    })
    .await;
}

impl World {
    /// Both sides agree on the room: every booking in the room's calendar is a reservation and the other
    /// way round, none twice.
    fn assert_converged(&self) {
        let rooms = [(self.room.mailbox.clone(), self.room.topdesk_location_id.clone())];
        let report =
            orb_testkit::check_convergence(&self.graph_em, &self.td.emulator, &rooms, self.sweep_window());
        assert!(report.is_clean(), "{report}");
    }

    /// The live events of the room's calendar.
    fn live_room_events(&self) -> usize {
        self.graph_em.events(ROOM).unwrap().iter().filter(|e| e.is_cancelled != Some(true)).count()
    }

    /// A held deletion rejected: the sweep restores them.
    async fn reject_held_deletions(&self) -> reconcile::SweepReport {
        self.sweep_with(SweepOptions { restore_held_deletions: true, ..SweepOptions::default() }).await
    }

    /// After a restore: a sweep finds nothing to do, holds nothing and restores nothing.
    async fn nothing_left_to_do(&self) {
        let again = self.sweep().await;
        assert_eq!((again.jobs.total(), again.held_deletions, again.restored), (0, 0, 0), "{again:?}");
        assert!(again.owed.is_empty(), "{again:?}");
        let twice = self.reject_held_deletions().await;
        assert_eq!((twice.jobs.total(), twice.held_deletions, twice.restored), (0, 0, 0), "{twice:?}");
    }
}

#[tokio::test]
async fn a_rejected_mass_deletion_in_exchange_writes_the_bookings_to_exchange_again() {
    on_every_store(|w| async move {
        // The room removes cancelled meetings, so the lost meetings are simply not listed (and 404 by id):
        // deletions inferred from absence, held by the guard.
        w.graph_em.set_room_settings(
            ROOM,
            RoomSettings { remove_canceled_meetings: true, ..RoomSettings::default() },
        );
        let events = w.ten_synced_bookings().await;
        let before: std::collections::BTreeMap<_, _> =
            w.bookings().await.into_iter().map(|r| (r.id, r)).collect();
        w.clock.advance(Duration::minutes(1));
        w.drop_notifications(true);
        for event in &events[..8] {
            w.delete_in_outlook(event).await;
        }
        w.drop_notifications(false);
        assert_eq!(w.live_room_events(), 2);
        let held = w.sweep().await;
        assert_eq!((held.held_deletions, held.jobs.total()), (8, 0), "{held:?}");

        // A dry run says what a rejection would do, and does nothing.
        let dry = SweepOptions { restore_held_deletions: true, dry_run: true, ..SweepOptions::default() };
        let plan = w.sweep_with(dry).await;
        assert_eq!((plan.restored, plan.held_deletions, plan.jobs.redriven), (8, 0, 8), "{plan:?}");
        let restores: Vec<_> = plan.planned.iter().filter(|p| p.difference == Difference::Restored).collect();
        assert_eq!(restores.len(), 8, "{plan:?}");
        assert!(restores.iter().all(|p| p.side == Side::Exchange), "{plan:?}");
        assert!(
            restores[0].action().contains("write it to Exchange again from TOPdesk"),
            "{}",
            restores[0].action()
        );
        assert_eq!(w.live_room_events(), 2, "a dry run writes nothing");

        // Rejected: each vanished booking is written to Exchange again, from TOPdesk.
        let audit_before = w.store.list_audit(w.tenant.id, 100).await.unwrap().len();
        let report = w.reject_held_deletions().await;
        assert_eq!((report.restored, report.held_deletions), (8, 0), "{report:?}");
        assert_eq!(report.jobs, JobsByKind { redriven: 8, ..JobsByKind::default() }, "{report:?}");
        let audit = w.store.list_audit(w.tenant.id, 100).await.unwrap();
        assert_eq!(audit.len(), audit_before, "a restore holds nothing: {audit:?}");
        eventually("the room's ten meetings back", || async { (w.live_room_events() == 10).then_some(()) })
            .await;
        w.settled().await;
        w.no_dead_jobs().await;
        w.assert_converged();
        assert_eq!(w.active_reservations(), 10, "nothing cancelled in TOPdesk");
        assert_eq!(w.reservations().len(), 10, "no reservation made twice");
        let after = w.bookings().await;
        assert_eq!(after.len(), 10, "no booking recorded twice");
        let room_events = w.graph_em.events(ROOM).unwrap();
        for record in &after {
            assert!(!record.cancelled, "{record:?}");
            assert_eq!(record.failed_count, 0, "written back, not failed: {record:?}");
            assert_eq!(
                (record.exchange_status, record.topdesk_status),
                (orb_core::SyncStatus::Synced, orb_core::SyncStatus::Synced),
                "{record:?}"
            );
            let old = &before[&record.id];
            assert_eq!(record.topdesk.reservation_id, old.topdesk.reservation_id, "TOPdesk's item kept");
            assert!(record.exchange.room_event_id.is_some(), "room copy linked: {record:?}");
            // (The emulator lists REST ids, ORB keeps immutable ones: the meeting is found by its iCalUId.)
            let ical = record.exchange.ical_uid.as_deref().expect("meeting linked");
            assert!(
                room_events
                    .iter()
                    .any(|e| e.ical_uid.as_deref() == Some(ical) && e.is_cancelled != Some(true)),
                "the record points at a live room event: {record:?}"
            );
        }
        let relinked =
            after.iter().filter(|r| r.exchange.ical_uid != before[&r.id].exchange.ical_uid).count();
        assert_eq!(relinked, 8, "the eight restored records point at the new meetings");

        // Idempotent: nothing more to do, nothing held, ORB's new meetings not taken for new bookings.
        w.nothing_left_to_do().await;
        w.settled().await;
        assert_eq!(w.bookings().await.len(), 10);
        w.assert_converged();
    })
    .await;
}

#[tokio::test]
async fn a_rejected_mass_deletion_in_topdesk_writes_the_reservations_again() {
    on_every_store(|w| async move {
        w.ten_synced_bookings().await;
        let before: std::collections::BTreeMap<_, _> =
            w.bookings().await.into_iter().map(|r| (r.id, r)).collect();
        // Eight reservations vanish from TOPdesk (purged by mistake): not listed, 404 by id.
        w.clock.advance(Duration::minutes(1));
        let mut gone = Vec::new();
        for record in before.values().take(8) {
            let id: orb_topdesk::ReservationId =
                record.topdesk.reservation_id.as_deref().unwrap().parse().unwrap();
            assert!(w.td.emulator.with_state(|s| s.reservations.remove(&id)).is_some());
            gone.push(record.id);
        }
        assert_eq!(w.reservations().len(), 2);
        let held = w.sweep().await;
        assert_eq!((held.held_deletions, held.jobs.total()), (8, 0), "{held:?}");
        let rooms_events = w.live_room_events();

        let report = w.reject_held_deletions().await;
        assert_eq!((report.restored, report.held_deletions, report.jobs.redriven), (8, 0, 8), "{report:?}");
        eventually("ten reservations again", || async { (w.active_reservations() == 10).then_some(()) })
            .await;
        w.settled().await;
        w.no_dead_jobs().await;
        w.assert_converged();
        assert_eq!(w.reservations().len(), 10, "no reservation made twice");
        assert_eq!(w.live_room_events(), rooms_events, "nothing cancelled (or made) in Exchange");
        let after = w.bookings().await;
        assert_eq!(after.len(), 10);
        let reservations = w.reservations();
        for record in &after {
            assert!(!record.cancelled, "{record:?}");
            assert_eq!(record.failed_count, 0, "written back, not failed: {record:?}");
            assert_eq!(
                (record.exchange_status, record.topdesk_status),
                (orb_core::SyncStatus::Synced, orb_core::SyncStatus::Synced),
                "{record:?}"
            );
            let old = &before[&record.id];
            assert_eq!(record.exchange.room_event_id, old.exchange.room_event_id, "Exchange's item kept");
            let id = record.topdesk.reservation_id.as_deref().expect("linked");
            assert!(
                reservations.iter().any(|r| r.id.map(|i| i.to_string()).as_deref() == Some(id)),
                "{record:?}"
            );
            assert_eq!(
                id != old.topdesk.reservation_id.as_deref().unwrap(),
                gone.contains(&record.id),
                "{record:?}"
            );
        }

        w.nothing_left_to_do().await;
        w.settled().await;
        assert_eq!(w.reservations().len(), 10);
        w.assert_converged();
    })
    .await;
}

#[tokio::test]
async fn cancellations_the_calendar_confirms_are_not_held_by_the_mass_deletion_guard() {
    on_every_store(|w| async move {
        let events = w.ten_synced_bookings().await;
        w.clock.advance(Duration::minutes(1));
        w.drop_notifications(true);
        for event in &events[..8] {
            w.delete_in_outlook(event).await;
        }
        w.drop_notifications(false);
        // Exchange's default: the room keeps the cancelled copies, listed and marked cancelled. That is the
        // side confirming each cancellation, not a listing that lost them.
        let room_copies = w.graph_em.events(ROOM).unwrap();
        assert_eq!(room_copies.iter().filter(|e| e.is_cancelled == Some(true)).count(), 8);

        let dry = SweepOptions { dry_run: true, ..SweepOptions::default() };
        let window = w.sweep_window();
        let plan =
            sweep_room_with(&w.deps, w.tenant.id, w.room.id, window, w.clock.now(), dry).await.unwrap();
        assert_eq!((plan.held_deletions, plan.jobs), (0, jobs(0, 0, 8)), "{plan:?}");
        assert!(plan.planned.iter().all(|p| p.difference == Difference::Deleted), "{plan:?}");

        let report = w.sweep().await;
        assert_eq!((report.future_bookings, report.held_deletions), (10, 0), "{report:?}");
        assert_eq!(report.jobs, jobs(0, 0, 8), "{report:?}");
        eventually("eight cancellations", || async { (w.active_reservations() == 2).then_some(()) }).await;
        w.settled().await;
        assert_eq!(w.bookings().await.iter().filter(|r| r.cancelled).count(), 8);
        let audit = w.store.list_audit(w.tenant.id, 50).await.unwrap();
        assert!(audit.iter().all(|a| a.action != AUDIT_MASS_DELETION_HELD), "{audit:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_sweep_that_cancels_one_of_ten_goes_through() {
    on_every_store(|w| async move {
        let events = w.ten_synced_bookings().await;
        w.clock.advance(Duration::minutes(1));
        w.drop_notifications(true);
        w.delete_in_outlook(&events[4]).await;
        w.drop_notifications(false);

        // The room keeps the cancelled copy (Exchange's default): it is listed, marked cancelled.
        let report = w.sweep().await;
        assert_eq!((report.future_bookings, report.held_deletions), (10, 0), "{report:?}");
        assert_eq!(report.jobs, jobs(0, 0, 1), "{report:?}");
        eventually("the cancellation", || async { (w.active_reservations() == 9).then_some(()) }).await;
        w.settled().await;
        let cancelled: Vec<_> = w.bookings().await.into_iter().filter(|r| r.cancelled).collect();
        assert_eq!(cancelled.len(), 1);
        assert_eq!(cancelled[0].start, at("2026-09-06T09:00:00Z"));
        let audit = w.store.list_audit(w.tenant.id, 50).await.unwrap();
        assert!(audit.iter().all(|a| a.action != AUDIT_MASS_DELETION_HELD), "{audit:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_missed_lifecycle_event_sweeps_the_room() {
    on_every_store(|w| async move {
        w.book_unnotified("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.settled().await;
        assert!(w.bookings().await.is_empty());

        assert!(w.graph_em.send_lifecycle(&w.subscription, LifecycleEventType::Missed));
        let record =
            w.booking_where("the swept booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        assert_eq!(w.reservations().len(), 1);
        assert_eq!(record.processor_created, Side::Exchange);
        let audit = w.store.list_audit(w.tenant.id, 50).await.unwrap();
        assert!(
            audit.iter().any(|a| a.action == AUDIT_SUBSCRIPTION_MISSED && a.target.contains(ROOM)),
            "the audit entry is kept: {audit:?}"
        );
        let done = w.jobs(JobStatus::Done).await;
        assert!(done.iter().any(|j| j.kind == JobKind::GraphLifecycle), "{done:?}");
        assert!(done.iter().any(|j| j.kind == JobKind::SyncObservation), "the sweep's job: {done:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_removed_subscription_is_recreated_and_the_room_swept() {
    on_every_store(|w| async move {
        w.book_unnotified("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.settled().await;
        assert!(w.bookings().await.is_empty());

        assert!(w.graph_em.send_lifecycle(&w.subscription, LifecycleEventType::SubscriptionRemoved));
        w.booking_where("the swept booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let subs = w.graph_em.subscriptions();
        assert_eq!(subs.len(), 1, "{subs:?}");
        assert_ne!(subs[0].id, w.subscription, "a new subscription");
        assert_eq!(w.reservations().len(), 1);
        // Graph's new subscription reports only later changes: the booking came from the sweep.
        let done = w.jobs(JobStatus::Done).await;
        assert!(done.iter().any(|j| j.kind == JobKind::SyncObservation), "the sweep's job: {done:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_sweep_with_nothing_different_enqueues_nothing() {
    on_every_store(|w| async move {
        // One booking made in Outlook, one made in TOPdesk, both synced the normal way.
        w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let made = w.reserve_in_topdesk("Team sync", "2026-09-04T09:00:00Z", "2026-09-04T10:00:00Z").await;
        let resp = w
            .http
            .post(format!("{}/hooks/topdesk/contoso", w.intake))
            .bearer_auth(PUSH_TOKEN)
            .json(&json!({"reservations": [made.id.unwrap().to_string()]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
        eventually("both bookings synced", || async {
            let all = w.bookings().await;
            (all.len() == 2
                && all
                    .iter()
                    .all(|r| r.topdesk.reservation_id.is_some() && r.exchange.room_event_id.is_some()))
            .then_some(())
        })
        .await;
        w.settled().await;

        let first = w.sweep().await;
        let jobs_after_first = w.sweep_jobs().await.len();
        w.settled().await;
        let second = w.sweep().await;
        assert_eq!((second.events_read, second.reservations_read, second.records), (2, 2, 2), "{second:?}");
        assert_eq!(second.jobs.total(), 0, "{second:?}");
        assert_eq!((second.paired, second.held_deletions), (0, 0), "{second:?}");
        assert_eq!(w.sweep_jobs().await.len(), jobs_after_first, "the second sweep enqueued nothing");
        assert_eq!(first.jobs.total(), 0, "already in sync, so even the first sweep is quiet: {first:?}");

        // The tenant sweep covers the room the same way.
        let tenant = sweep_tenant(&w.deps, w.tenant.id, w.sweep_window(), w.clock.now()).await.unwrap();
        assert!(tenant.failed.is_empty(), "{:?}", tenant.failed);
        assert_eq!(tenant.rooms.len(), 1);
        assert_eq!(tenant.rooms[0].jobs.total(), 0, "{:?}", tenant.rooms[0]);
        assert_eq!(w.reservations().len(), 2);
        assert_eq!(w.graph_em.events(ANNA).unwrap().len(), 2);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn the_scheduled_sweep_runs_as_a_job_in_the_rooms_lane() {
    on_every_store(|w| async move {
        w.book_unnotified("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.settled().await;
        assert!(w.reservations().is_empty(), "the notification was lost");

        let runtime = w.deps.tenant(w.tenant.id).unwrap().clone();
        let enqueued = orb_engine::scheduler::enqueue_sweeps(&w.deps, &runtime, w.clock.now()).await.unwrap();
        assert_eq!(enqueued, 1, "one enabled room");
        eventually("the swept booking's reservation", || async {
            (w.reservations().len() == 1).then_some(())
        })
        .await;
        w.settled().await;
        let done = w.jobs(JobStatus::Done).await;
        let sweep = done.iter().find(|j| j.kind == "reconcile.sweep").expect("the sweep ran as a job");
        assert_eq!(sweep.lane, Lane::room(w.tenant.id, w.room.id).key, "in the room's lane");
        assert_eq!(sweep.payload["room"], w.room.id.to_string());
        assert_eq!(w.bookings().await.len(), 1);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn lost_notifications_of_a_series_and_of_one_occurrence_heal_at_the_next_sweep() {
    on_every_store(|w| async move {
        // Anna books a weekly series of four while every notification is lost.
        w.drop_notifications(true);
        let resp = w
            .http
            .post(w.graph_control("book"))
            .json(&json!({
                "organizer": ANNA, "room": ROOM, "subject": "Weekly sync",
                "start": "2026-09-08T09:00:00", "end": "2026-09-08T10:00:00", "timeZone": "UTC",
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"], "firstDayOfWeek": "monday"},
                    "range": {"type": "numbered", "startDate": "2026-09-08", "numberOfOccurrences": 4,
                              "recurrenceTimeZone": "UTC"}
                }
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        w.settled().await;
        assert!(w.reservations().is_empty(), "nothing was notified");

        w.sweep().await;
        w.settled().await;
        let records = w.bookings().await;
        assert_eq!(records.len(), 4, "one booking per occurrence: {records:?}");
        assert!(records.iter().all(|r| r.series_id.is_some() && r.series_id == records[0].series_id));
        assert_eq!(w.reservations().len(), 4);

        // A minute later Anna moves the second occurrence an hour later; that notification is lost too.
        w.clock.advance(Duration::minutes(1));
        let week2 = at("2026-09-15T09:00:00Z");
        let instances = w.graph_em.calendar_view(ANNA, at("2026-09-01T00:00:00Z"), at("2026-10-01T00:00:00Z")).unwrap();
        let id = instances.iter().find(|e| e.original_start == Some(week2)).and_then(|e| e.id.clone()).unwrap();
        let resp = w
            .http
            .patch(w.graph_control(&format!("mailboxes/{ANNA}/events/{id}")))
            .json(&json!({"start": {"dateTime": "2026-09-15T10:00:00", "timeZone": "UTC"},
                          "end": {"dateTime": "2026-09-15T11:00:00", "timeZone": "UTC"}}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        w.settled().await;
        let moved = |w: &World| {
            w.reservations().into_iter().filter(|r| r.planned_start_date == Some(at("2026-09-15T10:00:00Z"))).count()
        };
        assert_eq!(moved(&w), 0, "not yet: the notification was lost");

        w.sweep().await;
        w.settled().await;
        assert_eq!(moved(&w), 1, "the sweep carried the occurrence's new time over");
        assert_eq!(w.reservations().len(), 4, "no reservation doubled");
        assert_eq!(w.bookings().await.len(), 4);
        w.no_dead_jobs().await;
    })
    .await;
}
