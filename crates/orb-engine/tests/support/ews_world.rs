//! The world of the EWS tenant's end-to-end tests: the EWS emulator (Exchange Server on-premises, a
//! service account with ApplicationImpersonation scoped to the room, the people and ORB's sender), the
//! TOPdesk emulator, the orb-web intake, a store under test and the `Worker`, with the tenant's Exchange
//! reached through [`orb_engine::exchange::EwsExchange`] — the same engine code path as a Graph tenant's.

use orb_engine::ews_stream::{BoxFuture, EwsStreamer, NotificationSink, StreamOptions};
use orb_ews::streaming::ConnectionTimeout;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use orb_core::{
    Clock as _, CorrelationId, FixedClock, Policy, RoomMailbox, RoomMap, RoomMapping, TenantName,
    TimeZoneName,
};
use orb_crypto::CertificateRing;
use orb_emulators::ews::{EwsEmulator, RoomSettings, Scope, Served};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use orb_engine::ews_push::ensure_ews_subscriptions;
use orb_engine::exchange::EwsExchange;
use orb_engine::reconcile::{SweepOptions, SweepReport, sweep_room_with};
use orb_engine::runtime::{SyncDeps, TenantRuntime};
use orb_engine::settings::EwsAuth;
use orb_engine::worker::{Worker, WorkerOptions};
use orb_ews::model::{CalendarItem, ItemId, MeetingChange, NewMeeting};
use orb_ews::{Auth, EwsClient, EwsConfig, Target};
use orb_store::{BookingFilter, JobStatus, NewRoom, Room, Store, Tenant};
use orb_topdesk::wire::ReservationDto;
use orb_topdesk::{PersonId, Reason, RetryPolicy, TopdeskClient, TopdeskConfig};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use super::{TestStore, eventually, mail, sha256};

pub const EWS_ROOM: &str = "room-4.12@contoso.com";
pub const ALICE: &str = "alice@contoso.com";
pub const EWS_ROOM5: &str = "room-5@contoso.com";
pub const MARK: &str = "mark@contoso.com";
pub const SAM: &str = "sam@contoso.com";
pub const SENDER: &str = "orb@contoso.com";
pub const EWS_LINK_TYPE: i64 = 7;
pub const EWS_PUSH_TOKEN: &str = "push-token-for-ews-tests";

/// An EWS client signing in to the emulator as `user`.
pub fn ews_client(served: &Served, user: &str, password: &str) -> EwsClient {
    let auth = Auth::Basic { username: user.into(), password: SecretString::from(password.to_owned()) };
    let config =
        EwsConfig { allow_plain_http: true, ..EwsConfig::new(served.ews_url().parse().unwrap(), auth) };
    EwsClient::new(config).unwrap()
}

pub struct EwsWorld {
    pub clock: FixedClock,
    pub em: EwsEmulator,
    pub served: Served,
    /// A person acting in Outlook (an account that may act for everyone).
    pub outlook: EwsClient,
    pub td: ServedEmulator,
    pub topdesk: TopdeskClient,
    pub store: Arc<dyn Store>,
    pub _store: TestStore,
    pub tenant: Tenant,
    pub room: Room,
    pub room5: Room,
    pub intake: String,
    pub alice: PersonId,
    pub mark: PersonId,
    pub cancel: CancellationToken,
    pub deps: Arc<SyncDeps>,
    pub http: reqwest::Client,
}

impl Drop for EwsWorld {
    fn drop(&mut self) {
        self.cancel.cancel();
        // The privacy promise over EWS: no request ORB made asked for a body.
        if !std::thread::panicking() {
            let asked = self.em.body_requests();
            assert!(asked.is_empty(), "EWS requests asked for the body: {asked:?}");
        }
    }
}

impl EwsWorld {
    pub async fn start(sut: TestStore, policy: Policy) -> Self {
        Self::start_with(sut, policy, EwsAuth::Basic, false).await
    }

    /// A world whose tenant hears of changes over ORB's own streaming connections
    /// (`[ews] notifications = "streaming"`) instead of push.
    pub async fn start_streaming(sut: TestStore, policy: Policy) -> Self {
        Self::start_with(sut, policy, EwsAuth::Basic, true).await
    }

    /// The world with ORB signing in to EWS by `auth` (`Basic` as `svc-orb`; `Ntlm` as
    /// `CONTOSO\svc-orb`, the form an admin writes; `Bearer` with a token the emulator accepts).
    pub async fn start_with_auth(sut: TestStore, policy: Policy, auth: EwsAuth) -> Self {
        Self::start_with(sut, policy, auth, false).await
    }

    async fn start_with(sut: TestStore, policy: Policy, auth: EwsAuth, streaming: bool) -> Self {
        let clock = FixedClock::new(super::world::at("2026-09-01T08:00:00Z"));
        let arc_clock: Arc<dyn orb_core::Clock> = Arc::new(clock.clone());

        // Exchange Server.
        let em = EwsEmulator::new(arc_clock.clone());
        em.add_user(ALICE, "Alice Example");
        em.add_user(SENDER, "ORB");
        em.add_user(MARK, "Mark Visser");
        em.add_user(SAM, "Sam Smit");
        em.add_room(EWS_ROOM, "Room 4.12", RoomSettings::default());
        em.add_room(EWS_ROOM5, "Room 5", RoomSettings::default());
        em.add_room_list("Building 1 Rooms", "bldg1rooms@contoso.com", &[EWS_ROOM, EWS_ROOM5]);
        let scope: BTreeSet<String> =
            [ALICE, MARK, SAM, EWS_ROOM, EWS_ROOM5, SENDER].iter().map(|s| s.to_string()).collect();
        em.add_account("svc-orb", "orb-password", Scope::Mailboxes(scope));
        em.add_account("outlook", "outlook-password", Scope::All);
        let served = orb_emulators::ews::serve(em.clone()).await.unwrap();
        let outlook = ews_client(&served, "outlook", "outlook-password");
        // As `build_runtime` makes it: under `drop` the subject is not even asked for.
        let orb = {
            let password = SecretString::from("orb-password");
            let auth = match auth {
                EwsAuth::Basic => Auth::Basic { username: "svc-orb".into(), password },
                EwsAuth::Ntlm => Auth::Ntlm { domain: None, username: "CONTOSO\\svc-orb".into(), password },
                EwsAuth::Bearer => {
                    em.add_bearer_token("orb-token", "svc-orb");
                    Auth::Bearer(SecretString::from("orb-token"))
                }
            };
            let mut config = EwsConfig {
                allow_plain_http: true,
                ..EwsConfig::new(served.ews_url().parse().unwrap(), auth)
            };
            config.shape.subject = !matches!(policy.subject, orb_core::SubjectPolicy::Drop);
            EwsClient::new(config).unwrap()
        };

        // TOPdesk.
        let tde = TopdeskEmulator::new(arc_clock.clone());
        tde.add_account("orb-api", "app-secret-1");
        let alice = tde.add_person("Alice", "Example", Some("Alice@Contoso.com"));
        let mark = tde.add_person("Mark", "Visser", Some(MARK));
        tde.add_person("Sam", "Smit", Some(SAM));
        let location = tde.add_room("Room 4.12", 0, DoubleBooking::Refuse);
        let location5 = tde.add_room("Room 5", 0, DoubleBooking::Refuse);
        tde.add_cancellation_reason("No longer needed", true);
        let td = tde.serve().await.unwrap();
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

        // The store.
        let store = sut.store.clone();
        let now = clock.now();
        let tenant = store.create_tenant(&TenantName::parse("fabrikam").unwrap(), now).await.unwrap();
        let room = store
            .add_room(
                tenant.id,
                &NewRoom {
                    mailbox: RoomMailbox::parse(EWS_ROOM).unwrap(),
                    topdesk_location_id: location,
                    display_name: Some("Room 4.12".into()),
                },
                now,
            )
            .await
            .unwrap();
        let room5 = store
            .add_room(
                tenant.id,
                &NewRoom {
                    mailbox: RoomMailbox::parse(EWS_ROOM5).unwrap(),
                    topdesk_location_id: location5,
                    display_name: Some("Room 5".into()),
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
        store.set_push_token_hash(tenant.id, &sha256(EWS_PUSH_TOKEN), &audit).await.unwrap();

        // The intake on port 0.
        let hooks = orb_web::HooksState::new(store.clone(), arc_clock.clone());
        let app = orb_web::router(hooks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let intake = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });

        // The engine.
        let rooms = RoomMap::new(
            [&room, &room5]
                .into_iter()
                .map(|r| RoomMapping {
                    id: r.id,
                    mailbox: r.mailbox.clone(),
                    location: r.topdesk_location_id.clone(),
                    time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                    enabled: true,
                    name: r.display_name.clone(),
                })
                .collect(),
        );
        let runtime = TenantRuntime {
            jwks: None,
            tenant_id: tenant.id,
            policy,
            rooms,
            exchange: Arc::new(EwsExchange::new(orb, mail(SENDER)).streaming(streaming)),
            graph: None,
            topdesk: topdesk.clone(),
            link_type: EWS_LINK_TYPE,
            mail_sender: mail(SENDER),
            portal_base_url: "https://orb.example.test".into(),
            cancel_reason: Reason::Default,
            notification_base_url: Some(intake.clone()),
            persons: orb_engine::runtime::PersonCache::default(),
            writes: Arc::default(),
        };
        let deps = Arc::new(SyncDeps {
            store: store.clone(),
            clock: arc_clock,
            tenants: BTreeMap::from([(tenant.id, Arc::new(runtime))]),
            certificates: Arc::new(CertificateRing::new()),
            require_validation_tokens: true,
            max_conflict_tries: 3,
        });
        let mut worker_options = WorkerOptions::new("test-worker");
        worker_options.idle_min = StdDuration::from_millis(10);
        worker_options.idle_max = StdDuration::from_millis(50);
        worker_options.heartbeat_every = StdDuration::from_millis(500);
        let cancel = CancellationToken::new();
        if streaming {
            // ORB's streaming connections, as `orb serve` runs them (the sink is the intake's keeper).
            let mut options = StreamOptions::new("test-streamer");
            options.check_every = StdDuration::from_millis(200);
            options.connection = ConnectionTimeout::minutes(1).unwrap();
            options.max_back_off = StdDuration::from_millis(500);
            let (_, rx) = tokio::sync::watch::channel(deps.clone());
            let streamer = EwsStreamer::new(rx, Arc::new(StreamedToInbox(hooks)), options);
            tokio::spawn(streamer.run(cancel.clone()));
        } else {
            // Push subscriptions for the room, calling the intake back (as the scheduler makes them).
            let made =
                ensure_ews_subscriptions(&deps, deps.tenant(tenant.id).unwrap(), &intake, now).await.unwrap();
            assert_eq!(made.created, 2, "one subscription per room");
        }
        let worker = Worker::new(deps.clone(), worker_options);
        let token = cancel.clone();
        tokio::spawn(async move { worker.run(token).await });

        Self {
            clock,
            em,
            served,
            outlook,
            td,
            topdesk,
            store,
            _store: sut,
            tenant,
            room,
            room5,
            intake,
            alice,
            mark,
            cancel,
            deps,
            http: reqwest::Client::new(),
        }
    }

    fn person<'a>(&self, mailbox: &'a orb_core::EmailAddress) -> Target<'a> {
        Target { mailbox, correlation: CorrelationId::generate(self.clock.now()) }
    }

    /// Alice books the room in Outlook: a meeting in her calendar inviting the room.
    pub async fn book_in_outlook(&self, subject: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> ItemId {
        let meeting = NewMeeting {
            subject: subject.into(),
            match_id: "stripped-below".into(),
            start,
            end,
            location: Some("Room 4.12".into()),
            room: Some(mail(EWS_ROOM)),
            attendees: Vec::new(),
            time_zone: Some("W. Europe Standard Time".into()),
            recurrence: None,
        };
        self.create_in_outlook(ALICE, &meeting).await
    }

    /// `organizer` creates `meeting` in Outlook (in their own calendar, or a delegate in it).
    pub async fn create_in_outlook(&self, organizer: &str, meeting: &NewMeeting) -> ItemId {
        let organizer = mail(organizer);
        // As Outlook writes it: without ORB's extended property.
        let op = orb_emulators::ews::outlook_create_meeting(meeting);
        let target = self.person(&organizer);
        let answer = self.outlook.call(target, op).await.unwrap();
        orb_ews::response::written_item(&answer, Some(organizer.as_str())).unwrap()
    }

    /// Alice changes her meeting in Outlook.
    pub async fn change_in_outlook(&self, id: &str, change: MeetingChange) {
        let alice = mail(ALICE);
        let current = self.alice_item(id).await;
        self.outlook.update_meeting(self.person(&alice), current.item_id, &change).await.unwrap();
    }

    /// Alice changes one occurrence (`index`, 1-based) of her series in Outlook.
    pub async fn change_occurrence_in_outlook(&self, master: &str, index: u32, change: MeetingChange) {
        let alice = mail(ALICE);
        let current = self.alice_item(master).await;
        let occurrence = orb_ews::series::ItemRef::Occurrence { master: current.item_id, index };
        let item = self.outlook.get_item(self.person(&alice), occurrence).await.unwrap();
        self.outlook.update_meeting(self.person(&alice), item.item_id, &change).await.unwrap();
    }

    /// Alice deletes one occurrence (`index`, 1-based) of her series in Outlook (the room is told).
    pub async fn cancel_occurrence_in_outlook(&self, master: &str, index: u32) {
        let alice = mail(ALICE);
        let current = self.alice_item(master).await;
        let occurrence = orb_ews::series::ItemRef::Occurrence { master: current.item_id, index };
        self.outlook.delete_item(self.person(&alice), occurrence).await.unwrap();
    }

    /// Alice's item as Exchange holds it now.
    pub async fn alice_item(&self, id: &str) -> CalendarItem {
        let alice = mail(ALICE);
        self.outlook.get_item(self.person(&alice), ItemId { id: id.into(), change_key: None }).await.unwrap()
    }

    /// Alice's item, `None` once it left her calendar (a cancelled meeting goes to Deleted Items).
    pub async fn alice_item_if_any(&self, id: &str) -> Option<CalendarItem> {
        let alice = mail(ALICE);
        match self.outlook.get_item(self.person(&alice), ItemId { id: id.into(), change_key: None }).await {
            Ok(item) => Some(item),
            Err(orb_ews::EwsError::NotFound { .. }) => None,
            Err(e) => panic!("reading Alice's item: {e}"),
        }
    }

    /// Alice moves her meeting in Outlook.
    pub async fn retime_in_outlook(&self, id: &str, start: DateTime<Utc>, end: DateTime<Utc>) {
        let alice = mail(ALICE);
        let current = self.alice_item(id).await;
        let change = MeetingChange { start: Some(start), end: Some(end), ..MeetingChange::default() };
        self.outlook.update_meeting(self.person(&alice), current.item_id, &change).await.unwrap();
    }

    /// Alice cancels her meeting in Outlook.
    pub async fn cancel_in_outlook(&self, id: &str) {
        let alice = mail(ALICE);
        let current = self.alice_item(id).await;
        self.outlook.cancel_meeting(self.person(&alice), &current.item_id).await.unwrap();
    }

    /// Sweeps the room now (a day back, thirty days ahead), as the scheduler does.
    pub async fn sweep(&self) -> SweepReport {
        let now = self.clock.now();
        sweep_room_with(
            &self.deps,
            self.tenant.id,
            self.room.id,
            (now - chrono::Duration::days(1), now + chrono::Duration::days(30)),
            now,
            SweepOptions::default(),
        )
        .await
        .unwrap()
    }

    /// A TOPdesk push naming `id` (what TOPdesk's action sequence sends).
    pub async fn push(&self, id: &str) {
        let resp = self
            .http
            .post(format!("{}/hooks/topdesk/fabrikam", self.intake))
            .bearer_auth(EWS_PUSH_TOKEN)
            .json(&serde_json::json!({"reservations": [id]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202);
    }

    /// The first live reservation in TOPdesk, once there is one.
    pub async fn live_reservation(&self) -> ReservationDto {
        eventually("the reservation in TOPdesk", || async {
            self.reservations().into_iter().find(|r| r.status.is_some_and(|s| s.is_active()))
        })
        .await
    }

    pub fn reservations(&self) -> Vec<ReservationDto> {
        self.td.emulator.reservations()
    }

    pub async fn bookings(&self) -> Vec<orb_core::BookingRecord> {
        let filter = BookingFilter { include_cancelled: true, ..BookingFilter::default() };
        self.store.list_bookings(self.tenant.id, &filter).await.unwrap()
    }

    /// Every queued job ran.
    pub async fn settled(&self) {
        eventually("every job ran", || async {
            let pending = self.store.list_jobs(self.tenant.id, JobStatus::Queued).await.unwrap();
            let running = self.store.list_jobs(self.tenant.id, JobStatus::Running).await.unwrap();
            (pending.is_empty() && running.is_empty()).then_some(())
        })
        .await;
    }

    /// The main room's push subscription row.
    pub async fn subscription(&self) -> orb_store::SubscriptionRow {
        let rows = self.store.list_subscriptions(self.tenant.id).await.unwrap();
        let mine: Vec<_> = rows.into_iter().filter(|r| r.room_id == self.room.id).collect();
        assert_eq!(mine.len(), 1, "{mine:?}");
        mine.into_iter().next().unwrap()
    }

    /// How many `reconcile.sweep` jobs were ever queued for the tenant, once every job ran. The statuses are
    /// read one after another while the worker moves jobs between them, so a job is counted once by its id (it
    /// can show as queued in one read and running in the next).
    pub async fn sweep_jobs(&self) -> usize {
        self.settled().await;
        let mut ids = std::collections::BTreeSet::new();
        for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Done, JobStatus::Dead] {
            let jobs = self.store.list_jobs(self.tenant.id, status).await.unwrap();
            ids.extend(jobs.iter().filter(|j| j.kind == "reconcile.sweep").map(|j| j.id));
        }
        ids.len()
    }

    /// The scheduler's subscriptions beat, now.
    pub async fn ensure_subscriptions(&self) -> orb_engine::ews_push::EwsSubscriptionReport {
        let tenant = self.deps.tenant(self.tenant.id).unwrap();
        ensure_ews_subscriptions(&self.deps, tenant, &self.intake, self.clock.now()).await.unwrap()
    }

    /// Stops the background worker once every job ran: from then on the test runs the jobs itself, in
    /// queue order ([`EwsWorld::run_jobs`]).
    pub async fn stop_worker(&self) {
        self.settled().await;
        self.cancel.cancel();
        // The idle worker sees the cancellation at once; nothing is queued meanwhile.
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }

    /// Runs every runnable job, in queue order (after [`EwsWorld::stop_worker`]); how many ran.
    pub async fn run_jobs(&self) -> usize {
        let worker = Worker::new(self.deps.clone(), WorkerOptions::new("test-steps"));
        let mut ran = 0;
        while worker.run_once().await.unwrap().is_some() {
            ran += 1;
        }
        ran
    }

    /// Takes the next runnable job off the queue unrun (after [`EwsWorld::stop_worker`]) and returns it as
    /// it was enqueued, so the test can enqueue it again later (a job that ran later than it was made).
    pub async fn take_next_job(&self) -> orb_store::NewJob {
        let now = self.clock.now();
        let claimed = self.store.claim_job("test-steps", now, chrono::Duration::minutes(1)).await.unwrap();
        let claimed = claimed.expect("a queued job");
        self.store.complete_job(&claimed.lease, now).await.unwrap();
        let job = claimed.job;
        orb_store::NewJob {
            lane: orb_store::Lane { tenant_id: job.tenant_id, key: job.lane },
            kind: job.kind,
            payload: job.payload,
            correlation_id: job.correlation_id,
            run_at: None,
        }
    }

    pub async fn no_dead_jobs(&self) {
        let dead = self.store.list_jobs(self.tenant.id, JobStatus::Dead).await.unwrap();
        assert!(dead.is_empty(), "{dead:?}");
    }
}

/// Streamed notifications kept by the intake's keeper (as `orb serve` wires it).
struct StreamedToInbox(orb_web::HooksState);

impl NotificationSink for StreamedToInbox {
    fn keep<'a>(
        &'a self,
        subscription: &'a orb_store::SubscriptionRow,
        notification: orb_ews::push::Notification,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0.keep_streamed_ews(subscription, notification).await.map_err(|e| e.to_string())
        })
    }
}
