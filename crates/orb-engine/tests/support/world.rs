//! The world the engine's end-to-end tests run in: both emulators on `127.0.0.1:0`, the orb-web intake as
//! the notification URL of a rich subscription for the room, a store under test, and the `Worker` running
//! in the background (cancelled when the world is dropped). Scenario files add their own `impl World`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::{TestStore, eventually, mail, sha256};
use chrono::{DateTime, Duration, Utc};
use orb_core::{
    BookingRecord, Clock as _, FixedClock, Policy, RoomMailbox, RoomMap, RoomMapping, TenantName,
    TimeZoneName,
};
use orb_crypto::{CertificateRing, EncryptionCertificate, NotificationPrivateKey};
use orb_emulators::graph::{DeliveryKind, GraphEmulator, RoomInfo, RoomSettings, Served, serve};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use orb_engine::exchange::GraphExchange;
use orb_engine::runtime::{SyncDeps, TenantRuntime};
use orb_engine::worker::{Worker, WorkerOptions};
use orb_graph::model::ChangeType;
use orb_graph::{
    AppRegistration, ClientOptions, Credential, Endpoints, GraphClient, JwksCache, JwksCacheOptions,
    RichNotifications, SubscriptionRequest, events_resource, generate_client_state, rich_event_select,
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
    on_every_store_with(&WorldOptions::default(), scenario).await;
}

/// [`on_every_store`] in a world built with `options`.
pub async fn on_every_store_with<F, Fut>(options: &WorldOptions, scenario: F)
where
    F: Fn(World) -> Fut,
    Fut: Future<Output = ()>,
{
    for s in TestStore::every().await {
        eprintln!("-- store: {}", s.name);
        let world = World::start_with(s, options.clone()).await;
        scenario(world).await;
    }
}

// ---- options ----

/// A room mailbox besides [`ROOM`].
#[derive(Debug, Clone)]
pub struct ExtraRoom {
    /// Its SMTP address.
    pub address: &'static str,
    /// Its display name (Graph and TOPdesk).
    pub name: &'static str,
    /// Mapped: a TOPdesk room, a mapping in the store and the engine, and a rich subscription. Unmapped:
    /// only a room mailbox in Exchange.
    pub mapped: bool,
    /// Its calendar attendant's settings.
    pub settings: RoomSettings,
}

impl ExtraRoom {
    /// A mapped room with Exchange's default settings.
    pub fn mapped(address: &'static str, name: &'static str) -> Self {
        Self { address, name, mapped: true, settings: RoomSettings::default() }
    }

    /// A room mailbox ORB does not manage.
    pub fn unmapped(address: &'static str, name: &'static str) -> Self {
        Self { address, name, mapped: false, settings: RoomSettings::default() }
    }
}

/// A person besides Anna: a mailbox, and a TOPdesk person card (with the same e-mail) when `in_topdesk`.
#[derive(Debug, Clone)]
pub struct ExtraPerson {
    /// E-mail address.
    pub address: &'static str,
    /// Display name ("First Last").
    pub name: &'static str,
    /// Whether TOPdesk knows the person.
    pub in_topdesk: bool,
}

/// How [`World::start_with`] builds the world. The default is [`World::start`]'s world.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    /// The tenant's policy (the fallback person, if [`Self::fallback_person`] is set, is filled in).
    pub policy: Policy,
    /// Settings of [`ROOM`]'s calendar attendant.
    pub room_settings: RoomSettings,
    /// More rooms.
    pub rooms: Vec<ExtraRoom>,
    /// More people.
    pub people: Vec<ExtraPerson>,
    /// The e-mail of a TOPdesk person ("Service Desk") made the policy's fallback person.
    pub fallback_person: Option<&'static str>,
    /// The JWKS the tenant's notifications are checked against (`None`: the Graph emulator's, the tenant's
    /// own cloud); another URL puts the tenant in another cloud than the one that signs its notifications.
    pub jwks_url: Option<String>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            policy: Policy::new(),
            room_settings: RoomSettings::default(),
            rooms: Vec::new(),
            people: Vec::new(),
            fallback_person: None,
            jwks_url: None,
        }
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
    pub _store: TestStore,
    pub tenant: Tenant,
    pub room: Room,
    pub intake: String,
    pub ring: CertificateRing,
    pub subscription: String,
    pub client_state: SecretString,
    pub anna: PersonId,
    /// Every mapped room (including [`ROOM`]) by mailbox address.
    pub rooms: BTreeMap<String, Room>,
    /// TOPdesk person ids by e-mail (Anna, the extra people TOPdesk knows, the fallback person).
    pub persons: BTreeMap<String, PersonId>,
    pub cancel: CancellationToken,
    pub deps: Arc<SyncDeps>,
    pub http: reqwest::Client,
}

impl Drop for World {
    fn drop(&mut self) {
        self.cancel.cancel();
        // Every scenario proves the privacy promise on the way out: no Graph read ORB made could have
        // returned a meeting's body or listed meetings other than the booking's own.
        if !std::thread::panicking() {
            let findings = self.graph_em.privacy_findings();
            assert!(findings.is_empty(), "Graph reads broke the privacy promise:\n{}", findings.join("\n"));
        }
    }
}

impl World {
    pub async fn start(sut: TestStore) -> Self {
        Self::start_with(sut, WorldOptions::default()).await
    }

    pub async fn start_with(sut: TestStore, options: WorldOptions) -> Self {
        let clock = FixedClock::new(at("2026-09-01T06:00:00Z"));
        let arc_clock: Arc<dyn orb_core::Clock> = Arc::new(clock.clone());

        // Graph.
        let graph_em = GraphEmulator::new(arc_clock.clone());
        graph_em.add_app_secret(TENANT, CLIENT_ID, SECRET);
        graph_em.add_user(TENANT, ANNA, "Anna Bakker");
        graph_em.add_user(TENANT, "orb@contoso.com", "ORB");
        graph_em.add_room(
            TENANT,
            ROOM,
            "Room 1",
            RoomInfo { settings: options.room_settings.clone(), ..RoomInfo::default() },
        );
        for extra in &options.rooms {
            let info = RoomInfo { settings: extra.settings.clone(), ..RoomInfo::default() };
            graph_em.add_room(TENANT, extra.address, extra.name, info);
        }
        for person in &options.people {
            graph_em.add_user(TENANT, person.address, person.name);
        }
        let graph_served = serve(graph_em.clone()).await.unwrap();
        let app = AppRegistration {
            tenant: TENANT.into(),
            client_id: CLIENT_ID.into(),
            credential: Arc::new(Credential::Secret(SecretString::from(SECRET))),
        };
        let endpoints = Endpoints::from_root(&graph_served.base_url).unwrap();
        // A Retry-After longer than a second is not waited out: the write fails as throttled (transient).
        // The client's own retries are few and quick (like TOPdesk's below), so a burst of failures
        // reaches the engine's retries, which run on the test's clock.
        let drop_subject = matches!(options.policy.subject, orb_core::SubjectPolicy::Drop);
        let client_options = ClientOptions {
            // As `build_runtime` sets it: under `drop` the subject is not even asked for.
            read_subject: !drop_subject,
            max_retry_after: StdDuration::from_secs(1),
            max_attempts: 3,
            backoff_base: StdDuration::from_millis(5),
            ..ClientOptions::default()
        };
        let graph = Arc::new(GraphClient::new(endpoints, app, arc_clock.clone(), client_options).unwrap());

        // TOPdesk.
        let em = TopdeskEmulator::new(arc_clock.clone());
        em.add_account("orb-api", "app-secret-1");
        let anna = em.add_person("Anna", "Bakker", Some("Anna@Contoso.com"));
        let location = em.add_room("Room A", 0, DoubleBooking::Refuse);
        let mut persons = BTreeMap::from([(ANNA.to_owned(), anna)]);
        for person in options.people.iter().filter(|p| p.in_topdesk) {
            let (first, last) = person.name.split_once(' ').unwrap_or((person.name, ""));
            persons.insert(person.address.to_owned(), em.add_person(first, last, Some(person.address)));
        }
        let mut policy = options.policy.clone();
        if let Some(email) = options.fallback_person {
            let id = em.add_person("Service", "Desk", Some(email));
            persons.insert(email.to_owned(), id);
            policy.fallback_person =
                Some(orb_core::FallbackPerson { person_id: id.to_string(), email: mail(email) });
        }
        let extra_locations: Vec<_> = options
            .rooms
            .iter()
            .filter(|r| r.mapped)
            .map(|r| (r.address, em.add_room(r.name, 0, DoubleBooking::Refuse)))
            .collect();
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
        let mut rooms = BTreeMap::from([(ROOM.to_owned(), room.clone())]);
        for (address, loc) in &extra_locations {
            let name = options.rooms.iter().find(|r| r.address == *address).map(|r| r.name.to_owned());
            let added = store
                .add_room(
                    tenant.id,
                    &NewRoom {
                        mailbox: RoomMailbox::parse(address).unwrap(),
                        topdesk_location_id: loc.clone(),
                        display_name: name,
                    },
                    now,
                )
                .await
                .unwrap();
            rooms.insert((*address).to_owned(), added);
        }
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

        // A rich subscription for each mapped room, notifying the intake.
        let key = NotificationPrivateKey::generate().unwrap();
        let cert =
            EncryptionCertificate::generate(key, now - Duration::hours(1), now + Duration::days(30)).unwrap();
        let ring = CertificateRing::from_entries([cert]).unwrap();
        let client_state = generate_client_state().unwrap();
        let current = ring.current().unwrap();
        let mut subscription = String::new();
        for (address, mapped) in &rooms {
            let request = SubscriptionRequest {
                resource: events_resource(&mail(address), Some(&rich_event_select(!drop_subject))),
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
            let id = sub.id.clone().unwrap();
            store
                .upsert_subscription(&SubscriptionRow {
                    id: id.clone(),
                    tenant_id: tenant.id,
                    room_id: mapped.id,
                    resource: request.resource.clone(),
                    client_state_hash: sha256(client_state.expose_secret()),
                    rich: true,
                    encryption_certificate_id: Some(current.id().to_owned()),
                    expires_at: sub.expiration_date_time.unwrap_or(request.expiration),
                    created_at: now,
                    updated_at: now,
                    watermark: None,
                })
                .await
                .unwrap();
            if address == ROOM {
                subscription = id;
            }
        }

        // The engine.
        let room_map = RoomMap::new(
            rooms
                .values()
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
        let jwks = JwksCache::new(
            reqwest::Client::new(),
            url::Url::parse(&options.jwks_url.clone().unwrap_or_else(|| graph_served.jwks_url())).unwrap(),
            arc_clock.clone(),
            JwksCacheOptions::default(),
        );
        let runtime = TenantRuntime {
            jwks: Some(Arc::new(jwks)),
            tenant_id: tenant.id,
            policy,
            rooms: room_map,
            exchange: Arc::new(GraphExchange::new(graph.clone())),
            graph: Some(graph),
            topdesk: topdesk.clone(),
            link_type: LINK_TYPE,
            mail_sender: mail("orb@contoso.com"),
            portal_base_url: "https://orb.example.test".into(),
            cancel_reason: Reason::Default,
            notification_base_url: Some(intake.clone()),
            persons: orb_engine::runtime::PersonCache::default(),
            writes: std::sync::Arc::default(),
        };
        let deps = Arc::new(SyncDeps {
            store: store.clone(),
            clock: arc_clock,
            tenants: BTreeMap::from([(tenant.id, Arc::new(runtime))]),
            certificates: Arc::new(ring.clone()),
            // The intake copies the POST's validationTokens onto each kept item: rich items without them
            // are refused.
            require_validation_tokens: true,
            max_conflict_tries: 3,
        });
        let mut worker_options = WorkerOptions::new("test-worker");
        worker_options.idle_min = StdDuration::from_millis(10);
        worker_options.idle_max = StdDuration::from_millis(50);
        worker_options.heartbeat_every = StdDuration::from_millis(500);
        let worker = Worker::new(deps.clone(), worker_options);
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
            rooms,
            persons,
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
