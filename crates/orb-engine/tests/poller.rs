//! TOPdesk change detection by polling ([`orb_engine::poller`]) end to end over real HTTP: the Graph and
//! TOPdesk emulators on `127.0.0.1:0`, the orb-web intake as the notification URL of a rich subscription
//! (for the room's echoes and Outlook bookings), a real store (SQLite in a tempdir; PostgreSQL too when
//! `ORB_TEST_POSTGRES_URL` is set, required when `CI` is set) and the `Worker` in the background. An
//! operator acts in TOPdesk through its API; the test calls `poll_topdesk` and asserts on the poll's
//! report, the queue, the store and both emulators.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use orb_core::{
    BookingRecord, Clock as _, FixedClock, Policy, RoomMailbox, RoomMap, RoomMapping, Side, TenantName,
    TimeZoneName,
};
use orb_crypto::{CertificateRing, EncryptionCertificate, NotificationPrivateKey};
use orb_emulators::graph::{GraphEmulator, RoomInfo, Served, serve};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use orb_engine::poller::{CURSOR_NEAR, PollReport, poll_topdesk};
use orb_engine::sync::{JOB_SYNC_OBSERVATION, SyncDeps, TenantRuntime};
use orb_engine::worker::{Worker, WorkerOptions};
use orb_graph::model::{ChangeType, ResponseType};
use orb_graph::{
    AppRegistration, ClientOptions, Credential, Endpoints, GraphClient, JwksCache, JwksCacheOptions,
    RICH_EVENT_SELECT, RichNotifications, SubscriptionRequest, events_resource, generate_client_state,
    subscription_expiry,
};
use orb_store::{BookingFilter, BookingKey, JobStatus, Lane, NewRoom, Room, Store, SubscriptionRow, Tenant};
use orb_topdesk::{PersonId, Reason, RetryPolicy, TopdeskClient, TopdeskConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use support::{StoreUnderTest, eventually, mail, postgres, sha256, sqlite};
use tokio_util::sync::CancellationToken;

const TENANT: &str = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d";
const CLIENT_ID: &str = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const SECRET: &str = "emulator-secret-value";
const ROOM: &str = "room1@contoso.com";
const ANNA: &str = "anna@contoso.com";
const LINK_TYPE: i64 = 7;
const PUSH_TOKEN: &str = "push-token-for-tests";

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// Runs `scenario` on SQLite, then on PostgreSQL when configured.
async fn on_every_store<F, Fut>(scenario: F)
where
    F: Fn(World) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stores = vec![sqlite().await];
    stores.extend(postgres().await);
    for s in stores {
        eprintln!("-- store: {}", s.name);
        let world = World::start(s).await;
        scenario(world).await;
    }
}

// ---- the world ----

struct World {
    clock: FixedClock,
    graph_em: GraphEmulator,
    graph_served: Served,
    td: ServedEmulator,
    topdesk: TopdeskClient,
    store: Arc<dyn Store>,
    _store: StoreUnderTest,
    tenant: Tenant,
    room: Room,
    anna: PersonId,
    cancel: CancellationToken,
    http: reqwest::Client,
    deps: Arc<SyncDeps>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl World {
    async fn start(sut: StoreUnderTest) -> Self {
        let clock = FixedClock::new(at("2026-09-01T06:00:00Z"));
        let arc_clock: Arc<dyn orb_core::Clock> = Arc::new(clock.clone());

        // Graph.
        let graph_em = GraphEmulator::new(arc_clock.clone());
        graph_em.add_app_secret(TENANT, CLIENT_ID, SECRET);
        graph_em.add_user(TENANT, ANNA, "Anna Bakker");
        graph_em.add_user(TENANT, "orb@contoso.com", "ORB");
        graph_em.add_room(TENANT, ROOM, "Room 1", RoomInfo::default());
        let graph_served = serve(graph_em.clone()).await.unwrap();
        let app = AppRegistration {
            tenant: TENANT.into(),
            client_id: CLIENT_ID.into(),
            credential: Arc::new(Credential::Secret(SecretString::from(SECRET))),
        };
        let endpoints = Endpoints::from_root(&graph_served.base_url).unwrap();
        // A Retry-After longer than a second is not waited out: the write fails as throttled (transient).
        let options =
            ClientOptions { max_retry_after: StdDuration::from_secs(1), ..ClientOptions::default() };
        let graph = Arc::new(GraphClient::new(endpoints, app, arc_clock.clone(), options).unwrap());

        // TOPdesk.
        let em = TopdeskEmulator::new(arc_clock.clone());
        em.add_account("orb-api", "app-secret-1");
        let anna = em.add_person("Anna", "Bakker", Some("Anna@Contoso.com"));
        let location = em.add_room("Room A", 0, DoubleBooking::Refuse);
        em.add_cancellation_reason("No longer needed", true);
        let td = em.serve().await.unwrap();
        let mut config = TopdeskConfig::new(
            url::Url::parse(&td.base_url).unwrap(),
            "orb-api",
            SecretString::from("app-secret-1"),
            arc_clock.clone(),
        );
        config.retry = RetryPolicy {
            max_retries: 2,
            min_delay: StdDuration::from_millis(5),
            max_delay: StdDuration::from_millis(20),
            max_retry_after: StdDuration::from_millis(50),
        };
        let topdesk = TopdeskClient::new(config).unwrap();

        // The store: tenant, room, push token.
        let store = sut.store.clone();
        let now = clock.now();
        let tenant = store.create_tenant(&TenantName::parse("contoso").unwrap(), now).await.unwrap();
        let room = store
            .add_room(
                tenant.id,
                &NewRoom {
                    mailbox: RoomMailbox::parse(ROOM).unwrap(),
                    topdesk_location_id: location.clone(),
                    display_name: Some("Room 1".into()),
                },
                now,
            )
            .await
            .unwrap();
        let audit = orb_store::NewAuditEntry {
            tenant_id: Some(tenant.id),
            at: now,
            actor: "test".into(),
            action: "push_token.set".into(),
            target: "topdesk".into(),
            ip: None,
        };
        store.set_push_token_hash(tenant.id, &sha256(PUSH_TOKEN), &audit).await.unwrap();

        // The intake on port 0.
        let app = orb_web::router(orb_web::HooksState::new(store.clone(), arc_clock.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let intake = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });

        // A rich subscription for the room, notifying the intake.
        let key = NotificationPrivateKey::generate().unwrap();
        let cert =
            EncryptionCertificate::generate(key, now - Duration::hours(1), now + Duration::days(30)).unwrap();
        let ring = CertificateRing::from_entries([cert]).unwrap();
        let client_state = generate_client_state().unwrap();
        let current = ring.current().unwrap();
        let request = SubscriptionRequest {
            resource: events_resource(&mail(ROOM), Some(RICH_EVENT_SELECT)),
            change_types: vec![ChangeType::Created, ChangeType::Updated, ChangeType::Deleted],
            notification_url: url::Url::parse(&format!("{intake}/hooks/graph/contoso")).unwrap(),
            lifecycle_notification_url: Some(
                url::Url::parse(&format!("{intake}/hooks/graph/contoso/lifecycle")).unwrap(),
            ),
            client_state: client_state.clone(),
            expiration: subscription_expiry(now, Duration::days(1), true, Duration::minutes(30)),
            rich: Some(RichNotifications::for_certificate(current)),
        };
        let corr = orb_core::CorrelationId::generate(now);
        let sub = graph.create_subscription(&request, corr).await.unwrap();
        let subscription = sub.id.clone().unwrap();
        store
            .upsert_subscription(&SubscriptionRow {
                id: subscription.clone(),
                tenant_id: tenant.id,
                room_id: room.id,
                resource: request.resource.clone(),
                client_state_hash: sha256(client_state.expose_secret()),
                rich: true,
                encryption_certificate_id: Some(current.id().to_owned()),
                expires_at: sub.expiration_date_time.unwrap_or(request.expiration),
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();

        // The engine.
        let rooms = RoomMap::new(vec![RoomMapping {
            id: room.id,
            mailbox: room.mailbox.clone(),
            location,
            time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
            enabled: true,
        }]);
        let runtime = TenantRuntime {
            tenant_id: tenant.id,
            policy: Policy::new(),
            rooms,
            graph,
            topdesk: topdesk.clone(),
            link_type: LINK_TYPE,
            mail_sender: mail("orb@contoso.com"),
            portal_base_url: "https://orb.example.test".into(),
            cancel_reason: Reason::Default,
            notification_base_url: Some(intake.clone()),
        };
        let jwks = JwksCache::new(
            reqwest::Client::new(),
            url::Url::parse(&graph_served.jwks_url()).unwrap(),
            arc_clock.clone(),
            JwksCacheOptions::default(),
        );
        let deps = Arc::new(SyncDeps {
            store: store.clone(),
            clock: arc_clock,
            tenants: BTreeMap::from([(tenant.id, Arc::new(runtime))]),
            certificates: Arc::new(ring.clone()),
            jwks: Arc::new(jwks),
            // The intake copies the POST's validationTokens onto each kept item: rich items without them
            // are refused.
            require_validation_tokens: true,
            max_conflict_tries: 3,
        });
        let mut options = WorkerOptions::new("test-worker");
        options.idle_min = StdDuration::from_millis(10);
        options.idle_max = StdDuration::from_millis(50);
        options.heartbeat_every = StdDuration::from_millis(500);
        let worker = Worker::new(deps.clone(), options);
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        tokio::spawn(async move { worker.run(token).await });

        Self {
            clock,
            graph_em,
            graph_served,
            td,
            topdesk,
            store,
            _store: sut,
            tenant,
            room,
            anna,
            cancel,
            http: reqwest::Client::new(),
            deps,
        }
    }

    fn graph_control(&self, path: &str) -> String {
        format!("{}/_emulator/{path}", self.graph_served.base_url)
    }

    /// A person books the room in Outlook; returns the organizer's event.
    async fn book(&self, subject: &str, start: &str, end: &str) -> Value {
        let resp = self
            .http
            .post(self.graph_control("book"))
            .json(&json!({"organizer": ANNA, "room": ROOM, "subject": subject, "start": start, "end": end}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        resp.json().await.unwrap()
    }

    async fn bookings(&self) -> Vec<BookingRecord> {
        let filter = BookingFilter { include_cancelled: true, ..BookingFilter::default() };
        self.store.list_bookings(self.tenant.id, &filter).await.unwrap()
    }

    /// The only booking, once it satisfies `ok`.
    async fn booking_where(&self, what: &str, ok: impl Fn(&BookingRecord) -> bool) -> BookingRecord {
        eventually(what, || async {
            let all = self.bookings().await;
            (all.len() == 1 && ok(&all[0])).then(|| all[0].clone())
        })
        .await
    }

    /// Waits until no job is queued or running and every notification was delivered.
    async fn settled(&self) {
        eventually("the queue to drain", || async {
            let queued = self.store.list_jobs(self.tenant.id, JobStatus::Queued).await.unwrap();
            let running = self.store.list_jobs(self.tenant.id, JobStatus::Running).await.unwrap();
            let pending = self.graph_em.deliveries().iter().any(|d| d.outcome == "pending");
            (queued.is_empty() && running.is_empty() && !pending).then_some(())
        })
        .await;
    }

    /// Waits until nothing runs and nothing is runnable now (jobs scheduled for later may wait).
    async fn settled_except_scheduled(&self) {
        eventually("the runnable jobs to drain", || async {
            let now = self.clock.now();
            let queued = self.store.list_jobs(self.tenant.id, JobStatus::Queued).await.unwrap();
            let running = self.store.list_jobs(self.tenant.id, JobStatus::Running).await.unwrap();
            (queued.iter().all(|j| j.run_at > now) && running.is_empty()).then_some(())
        })
        .await;
    }

    async fn jobs(&self, status: JobStatus) -> Vec<orb_store::Job> {
        self.store.list_jobs(self.tenant.id, status).await.unwrap()
    }

    fn reservations(&self) -> Vec<orb_topdesk::wire::ReservationDto> {
        self.td.emulator.reservations()
    }
}

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
            for job in self.jobs(status).await.into_iter().filter(|j| j.kind == JOB_SYNC_OBSERVATION) {
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
            done.iter().any(|j| j.kind == JOB_SYNC_OBSERVATION).then_some(())
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
