//! The world the engine's end-to-end tests run in: both emulators on `127.0.0.1:0`, the orb-web intake as
//! the notification URL of a rich subscription for the room, a store under test, and the `Worker` running
//! in the background (cancelled when the world is dropped). Scenario files add their own `impl World`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::{StoreUnderTest, eventually, mail, postgres, sha256, sqlite};
use chrono::{DateTime, Duration, Utc};
use orb_core::{
    BookingRecord, Clock as _, FixedClock, Policy, RoomMailbox, RoomMap, RoomMapping, TenantName,
    TimeZoneName,
};
use orb_crypto::{CertificateRing, EncryptionCertificate, NotificationPrivateKey};
use orb_emulators::graph::{DeliveryKind, GraphEmulator, RoomInfo, Served, serve};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use orb_engine::sync::{SyncDeps, TenantRuntime};
use orb_engine::worker::{Worker, WorkerOptions};
use orb_graph::model::ChangeType;
use orb_graph::{
    AppRegistration, ClientOptions, Credential, Endpoints, GraphClient, JwksCache, JwksCacheOptions,
    RICH_EVENT_SELECT, RichNotifications, SubscriptionRequest, events_resource, generate_client_state,
    subscription_expiry,
};
use orb_store::{BookingFilter, JobStatus, NewRoom, Room, Store, SubscriptionRow, Tenant};
use orb_topdesk::{PersonId, Reason, RetryPolicy, TopdeskClient, TopdeskConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const TENANT: &str = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d";
pub const CLIENT_ID: &str = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
pub const SECRET: &str = "emulator-secret-value";
pub const ROOM: &str = "room1@contoso.com";
pub const ANNA: &str = "anna@contoso.com";
pub const LINK_TYPE: i64 = 7;
pub const PUSH_TOKEN: &str = "push-token-for-tests";

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// Runs `scenario` on SQLite, then on PostgreSQL when configured.
pub async fn on_every_store<F, Fut>(scenario: F)
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

pub struct World {
    pub clock: FixedClock,
    pub graph_em: GraphEmulator,
    pub graph_served: Served,
    pub td: ServedEmulator,
    pub topdesk: TopdeskClient,
    pub store: Arc<dyn Store>,
    pub _store: StoreUnderTest,
    pub tenant: Tenant,
    pub room: Room,
    pub intake: String,
    pub ring: CertificateRing,
    pub subscription: String,
    pub client_state: SecretString,
    pub anna: PersonId,
    pub cancel: CancellationToken,
    pub deps: Arc<SyncDeps>,
    pub http: reqwest::Client,
}

impl Drop for World {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl World {
    pub async fn start(sut: StoreUnderTest) -> Self {
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
            intake,
            ring,
            subscription,
            client_state,
            anna,
            cancel,
            deps,
            http: reqwest::Client::new(),
        }
    }

    pub fn graph_control(&self, path: &str) -> String {
        format!("{}/_emulator/{path}", self.graph_served.base_url)
    }

    /// A person books the room in Outlook; returns the organizer's event.
    pub async fn book(&self, subject: &str, start: &str, end: &str) -> Value {
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

    pub async fn bookings(&self) -> Vec<BookingRecord> {
        let filter = BookingFilter { include_cancelled: true, ..BookingFilter::default() };
        self.store.list_bookings(self.tenant.id, &filter).await.unwrap()
    }

    /// The only booking, once it satisfies `ok`.
    pub async fn booking_where(&self, what: &str, ok: impl Fn(&BookingRecord) -> bool) -> BookingRecord {
        eventually(what, || async {
            let all = self.bookings().await;
            (all.len() == 1 && ok(&all[0])).then(|| all[0].clone())
        })
        .await
    }

    /// Waits until no job is queued or running and every notification was delivered.
    pub async fn settled(&self) {
        eventually("the queue to drain", || async {
            let queued = self.store.list_jobs(self.tenant.id, JobStatus::Queued).await.unwrap();
            let running = self.store.list_jobs(self.tenant.id, JobStatus::Running).await.unwrap();
            let pending = self.graph_em.deliveries().iter().any(|d| d.outcome == "pending");
            (queued.is_empty() && running.is_empty() && !pending).then_some(())
        })
        .await;
    }

    /// Waits until nothing runs and nothing is runnable now (jobs scheduled for later may wait).
    pub async fn settled_except_scheduled(&self) {
        eventually("the runnable jobs to drain", || async {
            let now = self.clock.now();
            let queued = self.store.list_jobs(self.tenant.id, JobStatus::Queued).await.unwrap();
            let running = self.store.list_jobs(self.tenant.id, JobStatus::Running).await.unwrap();
            (queued.iter().all(|j| j.run_at > now) && running.is_empty()).then_some(())
        })
        .await;
    }

    pub async fn jobs(&self, status: JobStatus) -> Vec<orb_store::Job> {
        self.store.list_jobs(self.tenant.id, status).await.unwrap()
    }

    pub fn reservations(&self) -> Vec<orb_topdesk::wire::ReservationDto> {
        self.td.emulator.reservations()
    }

    pub fn change_notifications_delivered(&self) -> usize {
        self.graph_em
            .deliveries()
            .iter()
            .filter(|d| d.kind == DeliveryKind::Change && d.url.contains("/hooks/graph/contoso"))
            .filter(|d| d.outcome == "delivered")
            .count()
    }
}
