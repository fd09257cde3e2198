//! Healing what failed writes and lost records left behind, end to end over real HTTP (the Graph and
//! TOPdesk emulators, the orb-web intake, a real store — SQLite, and PostgreSQL when `ORB_TEST_POSTGRES_URL`
//! is set — and the `Worker` in the background):
//!
//! - a side whose write was refused for good (`Failed`) is **re-driven** by the reconciliation sweep, with
//!   back-off, until both sides hold what ORB decided ([`orb_engine::reconcile`], "re-drive");
//! - a `reconcile.sweep` job that fails on a passing error completes, so its room's lane moves on;
//! - after the store is **restored to an older state** (records lost or rewound), one sweep makes every
//!   booking one record again, linked to both sides, without a second item on either side.

mod support;

use chrono::{DateTime, Duration, Utc};
use orb_core::{BookingRecord, Clock as _, Side, SyncStatus};
use orb_emulators::graph::RoomSettings;
use orb_emulators::topdesk::Faults;
use orb_engine::reconcile::{
    AUDIT_SWEEP_FAILED, Difference, JobsByKind, Owing, PAYLOAD_REDRIVE, REDRIVE_FREE_FAILURES, SweepOptions,
    SweepReport,
};
use orb_store::JobStatus;
use orb_store::jobs::JobKind;
use orb_topdesk::wire::ReservationDto;
use orb_topdesk::{PersonId, Reason, ReservationId, ReservationStatus};
use serde_json::{Value, json};
use support::eventually;
use support::world::*;

// ---- helpers ----

impl World {
    async fn dry_run(&self) -> SweepReport {
        self.sweep_with(SweepOptions { dry_run: true, ..SweepOptions::default() }).await
    }

    async fn emulator_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) {
        let mut request = self.http.request(method, self.graph_control(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.text().await.unwrap());
    }

    /// Anna cancels her meeting in Outlook ("Cancel meeting": the room is told).
    async fn cancel_in_outlook(&self, event: &Value) {
        let id = event["id"].as_str().unwrap();
        let body = json!({"comment": "No longer needed"});
        self.emulator_call(
            reqwest::Method::POST,
            &format!("mailboxes/{ANNA}/events/{id}/cancel"),
            Some(body),
        )
        .await;
    }

    /// A TOPdesk operator books the room for `person` (no push, no poll).
    async fn reserve_for(&self, person: PersonId, subject: &str, start: &str, end: &str) -> ReservationDto {
        let mut create = orb_topdesk::wire::CreateReservationDto::new(
            person,
            &self.room.topdesk_location_id,
            at(start),
            at(end),
        );
        create.brief_description = Some(subject.into());
        self.topdesk.create_reservation(&create).await.unwrap()
    }

    /// TOPdesk tells ORB about a reservation (the push webhook).
    async fn push(&self, reservation: &ReservationDto) {
        let resp = self
            .http
            .post(format!("{}/hooks/topdesk/contoso", self.intake))
            .bearer_auth(PUSH_TOKEN)
            .json(&json!({"reservations": [reservation.id.unwrap().to_string()]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
    }

    /// The operator archives (or un-archives) a reservation.
    async fn archive(&self, id: ReservationId, archived: bool) {
        let url = format!("{}/_emulator/reservations/{id}/archive?archived={archived}", self.td.base_url);
        let resp = self.http.post(url).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    fn live_reservations(&self) -> Vec<ReservationDto> {
        self.reservations().into_iter().filter(|r| r.status != Some(ReservationStatus::Cancelled)).collect()
    }

    /// Anna's live meetings' starts.
    fn annas_meetings(&self) -> Vec<DateTime<Utc>> {
        let mut starts: Vec<_> = self
            .graph_em
            .events(ANNA)
            .unwrap()
            .into_iter()
            .filter(|e| e.is_cancelled != Some(true))
            .filter_map(|e| e.start.as_ref().map(|s| s.to_utc().unwrap()))
            .collect();
        starts.sort();
        starts
    }

    async fn queued_observations(&self) -> Vec<orb_store::Job> {
        let queued = self.jobs(JobStatus::Queued).await;
        queued.into_iter().filter(|j| j.kind == JobKind::SyncObservation).collect()
    }

    /// "Restores an older backup": every record not in `backup` is forgotten (with its timeline), every
    /// record in it is put back as it was then.
    async fn restore(&self, backup: &[BookingRecord]) {
        for now in self.bookings().await {
            match backup.iter().find(|b| b.id == now.id) {
                Some(then) => {
                    let rewound = BookingRecord { version: now.version, ..then.clone() };
                    self.store.update_booking(&rewound, &[], &[], self.clock.now()).await.unwrap();
                }
                None => self.forget(&now).await,
            }
        }
    }

    /// Deletes a record and its timeline directly in the database, as a lost database would (ORB itself
    /// deletes records only in its retention purge). The timeline is append-only, so the deletion opens the
    /// purge's gate in its transaction, as the purge does (migration 4).
    async fn forget(&self, record: &BookingRecord) {
        let reservation = record.topdesk.reservation_id.clone().expect("a synced record");
        let statements = [
            "DELETE FROM booking_events WHERE booking_id IN \
             (SELECT id FROM bookings WHERE topdesk_reservation_id = $1)",
            "DELETE FROM bookings WHERE topdesk_reservation_id = $1",
        ];
        if let Some((url, schema)) = self._store.postgres_schema() {
            let options = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)
                .unwrap()
                .options([("search_path", schema)]);
            let pool = sqlx::PgPool::connect_with(options).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT set_config('orb.gate', 'purge', true)").execute(&mut *tx).await.unwrap();
            for sql in statements {
                sqlx::query(sql).bind(&reservation).execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
            pool.close().await;
        } else {
            let path = self._store.sqlite_path().expect("SQLite when not PostgreSQL");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("UPDATE append_only_gate SET mode = 'purge'").execute(&mut *tx).await.unwrap();
            for sql in statements {
                sqlx::query(sql).bind(&reservation).execute(&mut *tx).await.unwrap();
            }
            sqlx::query("UPDATE append_only_gate SET mode = NULL").execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            pool.close().await;
        }
    }
}

fn redriven(n: usize) -> JobsByKind {
    JobsByKind { redriven: n, ..JobsByKind::default() }
}

// ---- re-drives ----

#[tokio::test]
async fn a_topdesk_refusal_is_redriven_by_one_sweep_once_the_room_is_free() {
    on_every_store(|w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let synced =
            w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let reservation_id: Option<ReservationId> =
            synced.topdesk.reservation_id.as_deref().map(|i| i.parse().unwrap());

        // A TOPdesk operator blocks 13:00–14:00 for facility work (a person without e-mail: not a booking
        // ORB syncs). Anna moves her meeting there: TOPdesk refuses the reschedule, the room is occupied.
        let facility = w.td.emulator.add_person("Facility", "Desk", None);
        let blocker =
            w.reserve_for(facility, "Maintenance", "2026-09-03T13:00:00Z", "2026-09-03T14:00:00Z").await;
        w.clock.advance(Duration::minutes(1));
        let mails = w.graph_em.outbox().len();
        w.retime_in_outlook(&event, "2026-09-03T13:00:00", "2026-09-03T14:00:00").await;
        let failed = w.booking_where("the refusal", |r| r.topdesk_status == SyncStatus::Failed).await;
        w.settled().await;
        assert_eq!(failed.start, at("2026-09-03T13:00:00Z"), "the record keeps what ORB decided");
        assert_eq!(w.reservation_by_id(reservation_id).planned_start_date, Some(at("2026-09-03T09:00:00Z")));
        assert_eq!(w.graph_em.outbox().len(), mails + 1, "one refusal mail");
        let failed_at = failed.failed_at.expect("the failure's time");

        // The sweep sees it (no watermark moved, so comparing watermarks alone never would) and re-drives it
        // at once: a passing fault heals within one beat. The room is still blocked, so TOPdesk refuses
        // again — nobody is mailed a second time — until the back-off starts.
        let mut last = failed.clone();
        while last.failed_count <= REDRIVE_FREE_FAILURES {
            assert_eq!(w.sweep().await.jobs, redriven(1), "failure {}", last.failed_count);
            let count = last.failed_count;
            last = w.booking_where("the refusal again", |r| r.failed_count == count + 1).await;
            w.settled().await;
            assert_eq!(last.topdesk_status, SyncStatus::Failed);
        }
        assert_eq!(w.graph_em.outbox().len(), mails + 1, "a refused re-drive mails nobody");
        assert!(last.failed_at > Some(failed_at) || last.failed_at == Some(failed_at));
        let early = w.sweep().await;
        assert_eq!(early.jobs.total(), 0, "{early:?}");
        assert_eq!(early.owed.len(), 1, "{early:?}");
        let owed = &early.owed[0];
        assert_eq!((owed.booking, owed.side, owed.owing), (failed.id, Side::Topdesk, Owing::Failed));
        assert!(!owed.redriven);
        let last_at = last.failed_at.expect("the failure's time");
        assert_eq!(owed.due, last_at + Duration::minutes(2), "back-off after {} failures", last.failed_count);

        // Once the back-off is over the sweep tries again; refused again, the next try waits longer.
        w.clock.advance(Duration::minutes(2));
        assert_eq!(w.sweep().await.jobs, redriven(1));
        let refused_again =
            w.booking_where("the next refusal", |r| r.failed_count == last.failed_count + 1).await;
        w.settled().await;
        assert_eq!(refused_again.topdesk_status, SyncStatus::Failed);
        assert_eq!(w.graph_em.outbox().len(), mails + 1, "a refused re-drive mails nobody");
        let waiting = w.sweep().await;
        assert_eq!(waiting.jobs.total(), 0, "{waiting:?}");
        let next = refused_again.failed_at.unwrap() + Duration::minutes(4);
        assert_eq!(waiting.owed[0].due, next, "{waiting:?}");

        // The operator frees the room; the back-off passes.
        w.topdesk.cancel_reservation(blocker.id.unwrap(), &Reason::Default).await.unwrap();
        w.clock.advance(Duration::minutes(4));

        // `orb sync --dry-run`: listed, nothing written or enqueued.
        let dry = w.dry_run().await;
        assert_eq!(dry.jobs, redriven(1), "{dry:?}");
        let planned: Vec<_> = dry.planned.iter().map(|p| (p.difference, p.side, p.action())).collect();
        assert_eq!(
            planned,
            vec![(
                Difference::Redrive,
                Side::Topdesk,
                "TOPdesk does not hold the booking as ORB decided: write it to TOPdesk again".to_owned()
            )],
            "{dry:?}"
        );
        assert!(dry.owed[0].redriven, "{dry:?}");
        assert!(w.queued_observations().await.is_empty(), "a dry run enqueues nothing");
        assert_eq!(w.reservation_by_id(reservation_id).planned_start_date, Some(at("2026-09-03T09:00:00Z")));
        assert_eq!(w.bookings().await[0].version, refused_again.version, "a dry run changes no record");

        // One sweep re-drives it: TOPdesk gets the booking's time, both sides are equal.
        let report = w.sweep().await;
        assert_eq!(report.jobs, redriven(1), "{report:?}");
        let job = w.jobs(JobStatus::Queued).await.into_iter().chain(w.jobs(JobStatus::Done).await);
        let job: Vec<_> = job.filter(|j| j.payload.get(PAYLOAD_REDRIVE).is_some()).collect();
        assert_eq!(job[0].payload[PAYLOAD_REDRIVE], "topdesk", "{:?}", job[0].payload);
        let healed = w.booking_where("the re-drive", |r| r.topdesk_status == SyncStatus::Synced).await;
        w.settled().await;
        let reservation = w.reservation_by_id(reservation_id);
        assert_eq!(reservation.planned_start_date, Some(at("2026-09-03T13:00:00Z")), "{reservation:?}");
        assert_eq!(reservation.status, Some(ReservationStatus::Planned));
        assert_eq!(w.annas_meetings(), vec![at("2026-09-03T13:00:00Z")]);
        assert_eq!((healed.start, healed.exchange_status), (at("2026-09-03T13:00:00Z"), SyncStatus::Synced));
        assert_eq!(w.live_reservations().len(), 1, "the same reservation moved, nothing new");
        assert_eq!(w.graph_em.outbox().len(), mails + 1, "no further refusal mail");

        let again = w.sweep().await;
        assert_eq!((again.jobs.total(), again.owed.len()), (0, 0), "{again:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn retry_failed_redrives_at_once_ignoring_the_back_off() {
    on_every_store(|w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let facility = w.td.emulator.add_person("Facility", "Desk", None);
        let blocker =
            w.reserve_for(facility, "Maintenance", "2026-09-03T13:00:00Z", "2026-09-03T14:00:00Z").await;
        w.clock.advance(Duration::minutes(1));
        w.retime_in_outlook(&event, "2026-09-03T13:00:00", "2026-09-03T14:00:00").await;
        let mut last = w.booking_where("the refusal", |r| r.topdesk_status == SyncStatus::Failed).await;
        w.settled().await;
        // The free re-drives are refused too, then the back-off starts.
        while last.failed_count <= REDRIVE_FREE_FAILURES {
            assert_eq!(w.sweep().await.jobs, redriven(1));
            let count = last.failed_count;
            last = w.booking_where("the refusal again", |r| r.failed_count == count + 1).await;
            w.settled().await;
        }
        w.topdesk.cancel_reservation(blocker.id.unwrap(), &Reason::Default).await.unwrap();

        // Within the back-off the scheduled sweep waits; `orb sync --retry-failed` does not.
        assert_eq!(w.sweep().await.jobs.total(), 0);
        let now = SweepOptions { redrive_now: true, ..SweepOptions::default() };
        let report = w.sweep_with(now).await;
        assert_eq!(report.jobs, redriven(1), "{report:?}");
        w.booking_where("the re-drive", |r| r.topdesk_status == SyncStatus::Synced).await;
        w.settled().await;
        let live = w.live_reservations();
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0].planned_start_date, Some(at("2026-09-03T13:00:00Z")));
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_meeting_cancelled_in_outlook_whose_topdesk_cancellation_failed_for_good_is_cancelled_by_a_sweep() {
    on_every_store(|w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let synced =
            w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let id: ReservationId = synced.topdesk.reservation_id.as_deref().unwrap().parse().unwrap();

        // The reservation is archived in TOPdesk, which refuses to cancel an archived reservation. Anna's
        // cancellation reaches ORB; TOPdesk refuses it, every retry too. Outlook says cancelled, the room
        // stays reserved in TOPdesk: the issue "every failed write heals" is about.
        w.archive(id, true).await;
        w.clock.advance(Duration::minutes(1));
        let mails = w.graph_em.outbox().len();
        w.cancel_in_outlook(&event).await;
        w.booking_where("the refusal", |r| r.topdesk_status == SyncStatus::Failed).await;
        w.settled_except_scheduled().await;
        let waiting = w.dry_run().await;
        assert_eq!(waiting.owed.len(), 1, "{waiting:?}");
        assert_eq!(
            waiting.owed[0].waiting.as_deref(),
            Some("changed in TOPdesk since; planned as that change"),
            "archiving moved the reservation's modificationDate: {waiting:?}"
        );
        for _ in 0..10 {
            let retries = w.jobs(JobStatus::Queued).await;
            if retries.is_empty() {
                break;
            }
            w.clock.advance(Duration::seconds(61));
            w.settled_except_scheduled().await;
        }
        w.settled().await;
        let given_up = w.bookings().await.remove(0);
        assert_eq!(given_up.topdesk_status, SyncStatus::Failed, "{given_up:?}");
        assert_eq!(w.reservation_by_id(Some(id)).status, Some(ReservationStatus::Planned), "still reserved");
        assert_eq!(w.graph_em.outbox().len(), mails, "a refused cancellation mails nobody");

        // The desk un-archives it (a change of the reservation: its modificationDate moves). One sweep sees
        // the meeting cancelled and the reservation live, and carries the cancellation over; a cancellation
        // Outlook lists is not held by the mass-deletion guard.
        w.archive(id, false).await;
        w.clock.advance(Duration::minutes(1));
        let report = w.sweep().await;
        assert_eq!((report.jobs.total(), report.held_deletions), (1, 0), "{report:?}");
        w.booking_where("the cancellation", |r| r.topdesk_status == SyncStatus::Cancelled).await;
        w.settled().await;
        assert_eq!(w.reservation_by_id(Some(id)).status, Some(ReservationStatus::Cancelled));
        assert!(w.bookings().await[0].cancelled);
        assert!(w.annas_meetings().is_empty());
        let again = w.sweep().await;
        assert_eq!((again.jobs.total(), again.owed.len()), (0, 0), "{again:?}");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_side_left_pending_is_redriven_and_found_in_step() {
    on_every_store(|w| async move {
        w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let synced =
            w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let id: Option<ReservationId> = synced.topdesk.reservation_id.as_deref().map(|i| i.parse().unwrap());
        let modified = w.reservation_by_id(id).modification_date;
        // The record says its TOPdesk write is still pending (a job cut off between its write and its
        // commit), and has said so for longer than any job lease.
        let stuck = BookingRecord { topdesk_status: SyncStatus::Pending, ..synced.clone() };
        w.store.update_booking(&stuck, &[], &[], w.clock.now()).await.unwrap();
        w.clock.advance(Duration::minutes(16));

        let report = w.sweep().await;
        assert_eq!(report.jobs, redriven(1), "{report:?}");
        assert_eq!((report.owed[0].side, report.owed[0].owing), (Side::Topdesk, Owing::Stuck), "{report:?}");
        let healed = w.booking_where("the re-drive", |r| r.topdesk_status == SyncStatus::Synced).await;
        w.settled().await;
        assert_eq!(
            w.reservation_by_id(id).modification_date,
            modified,
            "TOPdesk held it already: nothing written"
        );
        assert_eq!(healed.start, synced.start);
        let timeline = w.store.timeline(w.tenant.id, synced.id).await.unwrap();
        assert!(
            timeline.iter().any(|e| e.kind == "failure" && e.detail.to_string().contains("left pending")),
            "{timeline:?}"
        );
        assert_eq!(w.sweep().await.jobs.total(), 0);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn a_reservation_that_drifted_without_a_newer_modification_date_is_written_again() {
    on_every_store(|w| async move {
        w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let synced =
            w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        let id: ReservationId = synced.topdesk.reservation_id.as_deref().unwrap().parse().unwrap();
        // The reservation's time changed while its modificationDate did not (what a watermark comparison
        // alone can never see).
        w.td.emulator.with_state(|s| {
            let r = s.reservations.get_mut(&id).unwrap();
            r.start = at("2026-09-03T07:00:00Z");
            r.end = at("2026-09-03T08:00:00Z");
        });
        w.clock.advance(Duration::minutes(1));

        let report = w.sweep().await;
        assert_eq!(report.jobs, redriven(1), "{report:?}");
        assert_eq!(
            (report.owed[0].side, report.owed[0].owing),
            (Side::Topdesk, Owing::Drifted),
            "{report:?}"
        );
        eventually("TOPdesk back at the booking's time", || async {
            (w.reservation_by_id(Some(id)).planned_start_date == Some(at("2026-09-03T09:00:00Z")))
                .then_some(())
        })
        .await;
        w.settled().await;
        let record = w.bookings().await.remove(0);
        assert_eq!((record.start, record.topdesk_status), (synced.start, SyncStatus::Synced), "{record:?}");
        assert_eq!(w.annas_meetings(), vec![at("2026-09-03T09:00:00Z")], "Outlook untouched");
        assert_eq!(w.sweep().await.jobs.total(), 0);
        w.no_dead_jobs().await;
    })
    .await;
}

// ---- the sweep job in its lane ----

#[tokio::test]
async fn a_sweep_job_that_fails_on_a_passing_error_completes_and_the_lane_moves_on() {
    on_every_store(|w| async move {
        // TOPdesk answers the sweep's list (and the client's two retries) with 503.
        w.td.emulator.set_faults(Faults { error_next: 3, ..Faults::default() });
        let runtime = w.deps.tenant(w.tenant.id).unwrap().clone();
        assert_eq!(orb_engine::scheduler::enqueue_sweeps(&w.deps, &runtime, w.clock.now()).await.unwrap(), 1);
        // A booking made meanwhile waits in the same lane behind the sweep.
        w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        w.booking_where("the booking behind the sweep", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;

        let done = w.jobs(JobStatus::Done).await;
        let sweep = done.iter().find(|j| j.kind == JobKind::ReconcileSweep).expect("the sweep job completed");
        assert_eq!(sweep.attempts, 1, "not retried in the lane: {sweep:?}");
        let audit = w.store.list_audit(w.tenant.id, 50).await.unwrap();
        let failed: Vec<_> = audit.iter().filter(|a| a.action == AUDIT_SWEEP_FAILED).collect();
        assert_eq!(failed.len(), 1, "{audit:?}");
        assert!(failed[0].target.contains(&w.room.id.to_string()), "{}", failed[0].target);
        assert_eq!(w.live_reservations().len(), 1);
        w.no_dead_jobs().await;
    })
    .await;
}

// ---- a restored database ----

#[tokio::test]
async fn after_a_restore_one_sweep_makes_every_booking_one_record_linked_to_both_sides() {
    on_every_store(|w| async move {
        // Before the backup: one booking made in Outlook, one in TOPdesk, both synced.
        let a = w.book("Made in Outlook before", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let b = w
            .reserve_for(w.anna, "Made in TOPdesk before", "2026-09-04T09:00:00Z", "2026-09-04T10:00:00Z")
            .await;
        w.push(&b).await;
        eventually("two synced bookings", || async {
            let all = w.bookings().await;
            (all.len() == 2
                && all
                    .iter()
                    .all(|r| r.topdesk.reservation_id.is_some() && r.exchange.room_event_id.is_some()))
            .then_some(())
        })
        .await;
        w.settled().await;
        let backup = w.bookings().await;

        // After it: two more bookings, and both earlier ones moved (on their own sides).
        w.clock.advance(Duration::minutes(1));
        w.book("Made in Outlook after", "2026-09-05T09:00:00", "2026-09-05T10:00:00").await;
        let d = w
            .reserve_for(w.anna, "Made in TOPdesk after", "2026-09-06T09:00:00Z", "2026-09-06T10:00:00Z")
            .await;
        w.push(&d).await;
        w.retime_in_outlook(&a, "2026-09-03T11:00:00", "2026-09-03T12:00:00").await;
        w.topdesk
            .reschedule_reservation(b.id.unwrap(), at("2026-09-04T13:00:00Z"), at("2026-09-04T14:00:00Z"))
            .await
            .unwrap();
        w.push(&b).await;
        eventually("four synced bookings, moved", || async {
            let all = w.bookings().await;
            let moved = all.iter().filter(|r| r.start.format("%H").to_string() != "09").count();
            (all.len() == 4 && moved == 2 && all.iter().all(|r| r.exchange.room_event_id.is_some()))
                .then_some(())
        })
        .await;
        // What the restore and the sweep then find must not race a late notification (an echo of ORB's own
        // write delivered after the queue looked drained would update a restored record before the sweep):
        // Graph's notifications are lost from here until the sweep is done.
        w.drop_notifications(true);
        w.settled().await;
        let before_restore = w.bookings().await;
        let reservations = w.reservations().len();
        let meetings = w.annas_meetings();
        assert_eq!((reservations, meetings.len()), (4, 4));

        // The database is restored to the backup: two records are lost, two are old.
        w.restore(&backup).await;
        assert_eq!(w.bookings().await.len(), 2);

        // Both lost bookings carry ORB's match id in TOPdesk (the external link: a reservation ORB made, or
        // one made at the desk that ORB linked), so they are paired by it; the two old records see both of
        // their sides changed since (the same change: nothing to write).
        let dry = w.dry_run().await;
        let kinds: Vec<Difference> = dry.planned.iter().map(|p| p.difference).collect();
        assert_eq!(
            kinds,
            vec![Difference::Relinked, Difference::Relinked, Difference::Changed, Difference::Changed],
            "{dry:?}"
        );
        assert_eq!((dry.paired, dry.jobs.new, dry.jobs.redriven), (2, 0, 0), "{dry:?}");
        assert_eq!(w.bookings().await.len(), 2, "a dry run records nothing");

        let report = w.sweep().await;
        assert_eq!((report.paired, report.jobs.new, report.recreated), (2, 0, 0), "{report:?}");
        w.settled().await;
        let after = w.bookings().await;
        assert_eq!(after.len(), 4, "{after:?}");
        for record in &after {
            assert!(
                record.exchange.room_event_id.is_some() && record.topdesk.reservation_id.is_some(),
                "{record:?}"
            );
            let was =
                before_restore.iter().find(|r| r.topdesk.reservation_id == record.topdesk.reservation_id);
            let was = was.expect("the same reservation");
            assert_eq!(record.id, was.id, "the booking keeps its match id");
            assert_eq!((record.start, record.end), (was.start, was.end), "{record:?}");
        }
        assert_eq!(w.reservations().len(), reservations, "no second reservation");
        assert_eq!(w.annas_meetings(), meetings, "no second meeting");
        assert_eq!(w.graph_em.events(ROOM).unwrap().len(), 4);

        w.drop_notifications(false);
        // Linked for real: a change on one side reaches the other, and the next sweep is quiet.
        let c_record = after.iter().find(|r| r.start == at("2026-09-05T09:00:00Z")).unwrap().clone();
        let c_reservation: Option<ReservationId> =
            c_record.topdesk.reservation_id.as_deref().map(|i| i.parse().unwrap());
        let c_meeting = w
            .graph_em
            .events(ANNA)
            .unwrap()
            .into_iter()
            .find(|e| e.subject.as_deref() == Some("Made in Outlook after"))
            .unwrap();
        w.clock.advance(Duration::minutes(1));
        w.retime_in_outlook(&json!({"id": c_meeting.id}), "2026-09-05T15:00:00", "2026-09-05T16:00:00").await;
        eventually("the move to reach TOPdesk", || async {
            (w.reservation_by_id(c_reservation).planned_start_date == Some(at("2026-09-05T15:00:00Z")))
                .then_some(())
        })
        .await;
        w.settled().await;
        let again = w.sweep().await;
        assert_eq!((again.jobs.total(), again.paired), (0, 0), "{again:?}");
        assert_eq!(w.bookings().await.len(), 4);
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn orbs_reservation_whose_record_was_lost_follows_the_meeting_it_was_made_for() {
    on_every_store(|w| async move {
        // Two Outlook bookings ORB made reservations for (each carries ORB's match id as external link).
        let kept = w.book("Still planned", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let cancelled = w.book("Called off", "2026-09-04T09:00:00", "2026-09-04T10:00:00").await;
        eventually("two synced bookings", || async {
            let all = w.bookings().await;
            (all.len() == 2 && all.iter().all(|r| r.topdesk.reservation_id.is_some())).then_some(())
        })
        .await;
        w.settled().await;
        let before = w.bookings().await;

        // Both records are lost (a restore to before they existed); meanwhile Anna cancels one meeting and
        // the notification is lost too. The room keeps the cancelled copy (Exchange's default).
        w.restore(&[]).await;
        w.clock.advance(Duration::minutes(1));
        w.drop_notifications(true);
        w.cancel_in_outlook(&cancelled).await;
        w.drop_notifications(false);
        let _ = kept;

        let report = w.sweep().await;
        assert_eq!(report.paired, 1, "the live meeting and its reservation: {report:?}");
        assert_eq!(
            report.jobs.deleted, 1,
            "the cancelled one: ORB's reservation is recorded and cancelled: {report:?}"
        );
        assert_eq!(report.held_deletions, 0, "{report:?}");
        w.settled().await;
        let after = w.bookings().await;
        assert_eq!(after.len(), 2, "{after:?}");
        for record in &after {
            let was =
                before.iter().find(|r| r.topdesk.reservation_id == record.topdesk.reservation_id).unwrap();
            assert_eq!(record.id, was.id, "recorded under ORB's match id");
        }
        let live = w.live_reservations();
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0].planned_start_date, Some(at("2026-09-03T09:00:00Z")));
        assert_eq!(w.annas_meetings(), vec![at("2026-09-03T09:00:00Z")], "no meeting made again");
        w.no_dead_jobs().await;
    })
    .await;
}

#[tokio::test]
async fn orbs_reservation_whose_record_and_meeting_are_gone_gets_its_meeting_back() {
    let options = WorldOptions {
        room_settings: RoomSettings { remove_canceled_meetings: true, ..RoomSettings::default() },
        ..WorldOptions::default()
    };
    on_every_store_with(&options, |w| async move {
        let event = w.book("Quarterly planning", "2026-09-03T09:00:00", "2026-09-03T10:00:00").await;
        let record =
            w.booking_where("the booking to be synced", |r| r.topdesk.reservation_id.is_some()).await;
        w.settled().await;
        // The record is lost, and the meeting vanishes from the room's calendar without a trace ORB sees.
        w.restore(&[]).await;
        w.drop_notifications(true);
        w.emulator_call(
            reqwest::Method::DELETE,
            &format!("mailboxes/{ANNA}/events/{}", event["id"].as_str().unwrap()),
            None,
        )
        .await;
        w.drop_notifications(false);
        assert!(w.graph_em.events(ROOM).unwrap().is_empty());

        // ORB's reservation still carries the booking's match id: the sweep records it again under that id
        // and makes the missing side again, as for any booking whose other side is missing.
        let dry = w.dry_run().await;
        assert_eq!(dry.recreated, 1, "{dry:?}");
        assert_eq!(dry.planned[0].difference, Difference::Recreated, "{dry:?}");
        assert_eq!(
            dry.planned[0].action(),
            "ORB's item in TOPdesk, its record lost and Exchange's gone: record it, create it in Exchange"
        );
        let report = w.sweep().await;
        assert_eq!((report.recreated, report.jobs.new), (1, 1), "{report:?}");
        let again =
            w.booking_where("the meeting made again", |r| r.exchange.organizer_event_id.is_some()).await;
        w.settled().await;
        assert_eq!(again.id, record.id, "the same match id");
        assert_eq!(w.live_reservations().len(), 1, "the same reservation");
        assert_eq!(w.annas_meetings(), vec![at("2026-09-03T09:00:00Z")]);
        w.no_dead_jobs().await;
    })
    .await;
}
