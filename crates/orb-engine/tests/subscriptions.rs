//! Subscriptions over real HTTP: the Graph emulator on `127.0.0.1:0`, the orb-web intake (port 0) as the
//! notification and lifecycle URL, a real store (SQLite in a tempdir; PostgreSQL too when
//! `ORB_TEST_POSTGRES_URL` is set, required when `CI` is set) and the `Worker` in the background.
//! `ensure_subscriptions` creates, renews, recreates and deletes; lifecycle notifications sent through the
//! emulator's control API are processed by the worker.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use orb_core::{Clock as _, FixedClock, Policy, RoomMailbox, RoomMap, RoomMapping, TenantName, TimeZoneName};
use orb_crypto::{CertificateRing, EncryptionCertificate, NotificationPrivateKey};
use orb_emulators::graph::{GraphEmulator, RoomInfo, Served, SubscriptionInfo, serve};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use orb_engine::runtime::{AUDIT_NOTIFICATION_REFUSED, SyncDeps, TenantRuntime};
use orb_engine::subscriptions::{
    AUDIT_SUBSCRIPTION_LIFECYCLE_UNKNOWN, AUDIT_SUBSCRIPTION_MISSED, EnsureReport, ensure_subscriptions,
};
use orb_engine::worker::{Worker, WorkerOptions};
use orb_graph::{
    AppRegistration, ClientOptions, Credential, Endpoints, GraphClient, JwksCache, JwksCacheOptions,
};
use orb_store::jobs::JobKind;
use orb_store::{
    InboxSource, JobStatus, Lane, NewInboxItem, NewJob, NewRoom, Room, Store, SubscriptionRow, Tenant,
};
use orb_topdesk::{Reason, RetryPolicy, TopdeskClient, TopdeskConfig};
use secrecy::SecretString;
use serde_json::json;
use support::{TestStore, eventually, mail};
use tokio_util::sync::CancellationToken;

const TENANT: &str = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d";
const CLIENT_ID: &str = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const SECRET: &str = "emulator-secret-value";
const ROOM: &str = "room1@contoso.com";
const ROOM2: &str = "room2@contoso.com";
const LINK_TYPE: i64 = 7;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

/// Runs `scenario` on SQLite, then on PostgreSQL when configured.
async fn on_every_store<F, Fut>(scenario: F)
where
    F: Fn(World) -> Fut,
    Fut: Future<Output = ()>,
{
    for s in TestStore::every().await {
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
    _td: ServedEmulator,
    store: Arc<dyn Store>,
    _store: TestStore,
    tenant: Tenant,
    room: Room,
    room2: Room,
    intake: String,
    ring: CertificateRing,
    deps: Arc<SyncDeps>,
    cancel: CancellationToken,
    http: reqwest::Client,
}

impl Drop for World {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl World {
    async fn start(sut: TestStore) -> Self {
        let clock = FixedClock::new(at("2026-09-01T06:00:00Z"));
        let arc_clock: Arc<dyn orb_core::Clock> = Arc::new(clock.clone());

        let graph_em = GraphEmulator::new(arc_clock.clone());
        graph_em.add_app_secret(TENANT, CLIENT_ID, SECRET);
        graph_em.add_user(TENANT, "anna@contoso.com", "Anna Bakker");
        graph_em.add_room(TENANT, ROOM, "Room 1", RoomInfo::default());
        graph_em.add_room(TENANT, ROOM2, "Room 2", RoomInfo::default());
        let graph_served = serve(graph_em.clone()).await.unwrap();
        let app = AppRegistration {
            tenant: TENANT.into(),
            client_id: CLIENT_ID.into(),
            credential: Arc::new(Credential::Secret(SecretString::from(SECRET))),
        };
        let endpoints = Endpoints::from_root(&graph_served.base_url).unwrap();
        let options =
            ClientOptions { max_retry_after: StdDuration::from_secs(1), ..ClientOptions::default() };
        let graph = Arc::new(GraphClient::new(endpoints, app, arc_clock.clone(), options).unwrap());

        let em = TopdeskEmulator::new(arc_clock.clone());
        em.add_account("orb-api", "app-secret-1");
        let location = em.add_room("Room A", 0, DoubleBooking::Refuse);
        let location2 = em.add_room("Room B", 0, DoubleBooking::Refuse);
        let td = em.serve().await.unwrap();
        let mut config = TopdeskConfig::new(
            url::Url::parse(&td.base_url).unwrap(),
            "orb-api",
            SecretString::from("app-secret-1"),
            arc_clock.clone(),
        );
        config.retry = RetryPolicy {
            max_retries: 1,
            min_delay: StdDuration::from_millis(5),
            max_delay: StdDuration::from_millis(20),
            max_retry_after: StdDuration::from_millis(50),
        };
        let topdesk = TopdeskClient::new(config).unwrap();

        let store = sut.store.clone();
        let now = clock.now();
        let tenant = store.create_tenant(&TenantName::parse("contoso").unwrap(), now).await.unwrap();
        let mut rooms = Vec::new();
        for (mailbox, loc) in [(ROOM, &location), (ROOM2, &location2)] {
            let new = NewRoom {
                mailbox: RoomMailbox::parse(mailbox).unwrap(),
                topdesk_location_id: loc.clone(),
                display_name: None,
            };
            rooms.push(store.add_room(tenant.id, &new, now).await.unwrap());
        }
        // Room 2 is disabled: it must get no subscription.
        let room2 = store.set_room_enabled(tenant.id, rooms[1].id, false, now).await.unwrap();
        let room = rooms[0].clone();

        let app = orb_web::router(orb_web::HooksState::new(store.clone(), arc_clock.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let intake = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });

        let key = NotificationPrivateKey::generate().unwrap();
        let cert =
            EncryptionCertificate::generate(key, now - Duration::hours(1), now + Duration::days(30)).unwrap();
        let ring = CertificateRing::from_entries([cert]).unwrap();

        let mapping = |r: &Room, loc: &orb_core::TopdeskLocationId| RoomMapping {
            id: r.id,
            mailbox: r.mailbox.clone(),
            location: loc.clone(),
            time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
            enabled: true,
            name: None,
        };
        let jwks = JwksCache::new(
            reqwest::Client::new(),
            url::Url::parse(&graph_served.jwks_url()).unwrap(),
            arc_clock.clone(),
            JwksCacheOptions::default(),
        );
        let runtime = TenantRuntime {
            jwks: Some(Arc::new(jwks)),
            tenant_id: tenant.id,
            policy: Policy::new(),
            rooms: RoomMap::new(vec![mapping(&room, &location), mapping(&room2, &location2)]),
            exchange: Arc::new(orb_engine::exchange::GraphExchange::new(graph.clone())),
            graph: Some(graph),
            topdesk,
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
            _td: td,
            store,
            _store: sut,
            tenant,
            room,
            room2,
            intake,
            ring,
            deps,
            cancel,
            http: reqwest::Client::new(),
        }
    }

    fn runtime(&self) -> Arc<TenantRuntime> {
        self.deps.tenants[&self.tenant.id].clone()
    }

    async fn ensure(&self) -> EnsureReport {
        let runtime = self.runtime();
        ensure_subscriptions(&self.deps, &runtime, &self.intake, self.clock.now()).await.unwrap()
    }

    fn graph_subs(&self) -> Vec<SubscriptionInfo> {
        self.graph_em.subscriptions()
    }

    async fn rows(&self) -> Vec<SubscriptionRow> {
        self.store.list_subscriptions(self.tenant.id).await.unwrap()
    }

    /// The only subscription, in the emulator and the store (same id, room 1).
    async fn only_subscription(&self) -> (SubscriptionInfo, SubscriptionRow) {
        let subs = self.graph_subs();
        let rows = self.rows().await;
        assert_eq!(subs.len(), 1, "{subs:?}");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(subs[0].id, rows[0].id);
        assert_eq!(rows[0].room_id, self.room.id);
        (subs[0].clone(), rows[0].clone())
    }

    async fn lifecycle(&self, id: &str, event: &str) {
        let url = format!("{}/_emulator/subscriptions/{id}/lifecycle", self.graph_served.base_url);
        let resp = self.http.post(url).json(&json!({ "event": event })).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 202, "{event}");
    }

    async fn audit(&self) -> Vec<orb_store::AuditEntry> {
        self.store.list_audit(self.tenant.id, 200).await.unwrap()
    }

    /// How many jobs of `kind` the tenant ever had, each counted once by its id: the worker can move a job
    /// from one status to the next between the per-status reads.
    async fn jobs_of_kind(&self, kind: &str) -> usize {
        let mut ids = std::collections::BTreeSet::new();
        for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Done, JobStatus::Dead] {
            let jobs = self.store.list_jobs(self.tenant.id, status).await.unwrap();
            ids.extend(jobs.iter().filter(|j| j.kind == kind).map(|j| j.id));
        }
        ids.len()
    }
}

// ---- scenarios ----

#[tokio::test]
async fn ensure_creates_one_per_enabled_room_and_is_idempotent() {
    on_every_store(|w| async move {
        let report = w.ensure().await;
        assert_eq!(report.created, vec![w.room.id], "{report:?}");
        assert!(report.deleted.is_empty() && report.renewed.is_empty());
        let (sub, row) = w.only_subscription().await;
        assert_eq!(sub.mailbox.to_ascii_lowercase(), ROOM, "room 2 is disabled: no subscription");
        assert!(sub.rich);
        let current = w.ring.current().unwrap().id().to_owned();
        assert_eq!(sub.certificate_id.as_deref(), Some(current.as_str()));
        assert_eq!(row.encryption_certificate_id.as_deref(), Some(current.as_str()));
        assert!(sub.resource.contains("$select=subject,"), "{}", sub.resource);
        assert!(!sub.resource.to_ascii_lowercase().contains("body"));
        assert_eq!(row.client_state_hash.len(), 32);
        assert!(sub.expires > w.clock.now() + Duration::hours(20), "{}", sub.expires);
        assert!(!w.rows().await.iter().any(|r| r.room_id == w.room2.id));

        // A second run changes nothing: no new Graph subscription, same row.
        let again = w.ensure().await;
        assert!(again.is_noop(), "{again:?}");
        assert_eq!(again.unchanged, 1);
        let (sub2, row2) = w.only_subscription().await;
        assert_eq!(sub2, sub);
        assert_eq!(row2.client_state_hash, row.client_state_hash);
        assert_eq!(row2.expires_at, row.expires_at);

        // The stored hash is the hash of the clientState the emulator holds: a notification passes the
        // intake's clientState check (a mismatch is refused and enqueues nothing).
        let resp = w
            .http
            .post(format!("{}/_emulator/book", w.graph_served.base_url))
            .json(&json!({"organizer": "anna@contoso.com", "room": ROOM, "subject": "Standup",
                          "start": "2026-09-02T09:00:00", "end": "2026-09-02T09:30:00"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        eventually("a notification accepted by the intake", || async {
            (w.jobs_of_kind(JobKind::GraphNotification.as_str()).await > 0).then_some(())
        })
        .await;
        let refused: Vec<_> =
            w.audit().await.into_iter().filter(|a| a.action == AUDIT_NOTIFICATION_REFUSED).collect();
        assert!(refused.iter().all(|a| !a.target.contains("clientState")), "{refused:?}");
    })
    .await;
}

#[tokio::test]
async fn subscriptions_near_expiry_are_renewed_and_gone_ones_recreated() {
    on_every_store(|w| async move {
        w.ensure().await;
        let (before, _) = w.only_subscription().await;

        // Not yet due: nothing happens.
        w.clock.advance(Duration::hours(6));
        assert!(w.ensure().await.is_noop());

        // Less than half the lifetime left: renewed, expiry moved in Graph and the store.
        w.clock.advance(Duration::hours(7));
        let report = w.ensure().await;
        assert_eq!(report.renewed, vec![before.id.clone()], "{report:?}");
        let (after, row) = w.only_subscription().await;
        assert_eq!(after.id, before.id);
        assert!(
            after.expires > before.expires + Duration::hours(12),
            "{} vs {}",
            after.expires,
            before.expires
        );
        assert_eq!(row.expires_at, after.expires);
        assert!(w.ensure().await.is_noop(), "a fresh renewal is not renewed again");

        // Graph forgets it (deleted behind ORB's back): the next due renewal gets 404 and recreates it.
        let runtime = w.runtime();
        runtime
            .graph_client()
            .unwrap()
            .delete_subscription(&after.id, orb_core::CorrelationId::generate(w.clock.now()))
            .await
            .unwrap();
        assert!(w.graph_subs().is_empty());
        w.clock.advance(Duration::hours(13));
        let report = w.ensure().await;
        assert_eq!(report.recreated, vec![w.room.id], "{report:?}");
        let (new, _) = w.only_subscription().await;
        assert_ne!(new.id, after.id);
    })
    .await;
}

#[tokio::test]
async fn a_disabled_room_loses_its_subscription() {
    on_every_store(|w| async move {
        w.ensure().await;
        let (sub, _) = w.only_subscription().await;
        w.store.set_room_enabled(w.tenant.id, w.room.id, false, w.clock.now()).await.unwrap();
        let report = w.ensure().await;
        assert_eq!(report.deleted, vec![sub.id.clone()], "{report:?}");
        assert!(w.graph_subs().is_empty(), "deleted in Graph");
        assert!(w.rows().await.is_empty(), "deleted in the store");
        assert!(w.ensure().await.is_noop());

        // Enabled again: a new one.
        w.store.set_room_enabled(w.tenant.id, w.room.id, true, w.clock.now()).await.unwrap();
        assert_eq!(w.ensure().await.created, vec![w.room.id]);
        w.only_subscription().await;
    })
    .await;
}

#[tokio::test]
async fn subscription_removed_is_recreated_by_the_worker() {
    on_every_store(|w| async move {
        w.ensure().await;
        let (old, _) = w.only_subscription().await;
        w.lifecycle(&old.id, "subscriptionRemoved").await;
        let new = eventually("a new subscription for room 1", || async {
            let subs = w.graph_subs();
            let rows = w.rows().await;
            (subs.len() == 1 && subs[0].id != old.id && rows.len() == 1 && rows[0].id == subs[0].id)
                .then(|| subs[0].clone())
        })
        .await;
        assert_eq!(new.mailbox.to_ascii_lowercase(), ROOM);
        assert!(new.rich);
        // The recreated subscription is a normal one: ensure leaves it alone.
        assert!(w.ensure().await.is_noop());
    })
    .await;
}

#[tokio::test]
async fn reauthorization_required_is_answered() {
    on_every_store(|w| async move {
        w.ensure().await;
        let (sub, _) = w.only_subscription().await;
        w.lifecycle(&sub.id, "reauthorizationRequired").await;
        assert!(
            w.graph_subs().iter().any(|s| s.id == sub.id && s.reauthorization_required),
            "the emulator marks it until ORB acts"
        );
        eventually("the reauthorization flag cleared", || async {
            w.graph_subs().iter().any(|s| s.id == sub.id && !s.reauthorization_required).then_some(())
        })
        .await;
        let (after, _) = w.only_subscription().await;
        assert_eq!(after.id, sub.id, "reauthorized, not recreated");
    })
    .await;
}

#[tokio::test]
async fn missed_notifications_are_audited_for_the_room() {
    on_every_store(|w| async move {
        w.ensure().await;
        let (sub, _) = w.only_subscription().await;
        w.lifecycle(&sub.id, "missed").await;
        let entry = eventually("a subscription.missed audit entry", || async {
            w.audit().await.into_iter().find(|a| a.action == AUDIT_SUBSCRIPTION_MISSED)
        })
        .await;
        assert!(entry.target.contains(ROOM), "{}", entry.target);
        assert!(entry.target.contains(&sub.id), "{}", entry.target);
        // The item is processed: nothing is left queued, and the subscription is untouched.
        eventually("the lifecycle job to finish", || async {
            let queued = w.store.list_jobs(w.tenant.id, JobStatus::Queued).await.unwrap();
            let running = w.store.list_jobs(w.tenant.id, JobStatus::Running).await.unwrap();
            (queued.is_empty() && running.is_empty()).then_some(())
        })
        .await;
        assert!(w.store.list_jobs(w.tenant.id, JobStatus::Dead).await.unwrap().is_empty());
        assert_eq!(w.only_subscription().await.0, sub);
    })
    .await;
}

#[tokio::test]
async fn a_new_current_certificate_moves_the_subscription_at_once() {
    on_every_store(|w| async move {
        w.ensure().await;
        let (before, _) = w.only_subscription().await;
        // A certificate that became valid later is the ring's current one.
        let mut ring = w.ring.clone();
        let now = w.clock.now();
        let key = NotificationPrivateKey::generate().unwrap();
        ring.insert(EncryptionCertificate::generate(key, now, now + Duration::days(30)).unwrap()).unwrap();
        let new_current = ring.current().unwrap().id().to_owned();
        assert_ne!(Some(new_current.as_str()), before.certificate_id.as_deref());
        let deps = SyncDeps {
            store: w.store.clone(),
            clock: w.deps.clock.clone(),
            tenants: w.deps.tenants.clone(),
            certificates: Arc::new(ring),
            require_validation_tokens: true,
            max_conflict_tries: 3,
        };
        let runtime = w.runtime();
        // Not due by expiry, but on an old certificate: renewed and moved.
        let report = ensure_subscriptions(&deps, &runtime, &w.intake, now).await.unwrap();
        assert_eq!(report.renewed, vec![before.id.clone()], "{report:?}");
        let (after, row) = w.only_subscription().await;
        assert_eq!(after.id, before.id);
        assert_eq!(after.certificate_id.as_deref(), Some(new_current.as_str()));
        assert_eq!(row.encryption_certificate_id.as_deref(), Some(new_current.as_str()));
        assert!(ensure_subscriptions(&deps, &runtime, &w.intake, now).await.unwrap().is_noop());
    })
    .await;
}

#[tokio::test]
async fn a_change_to_the_subject_policy_moves_the_subscriptions_to_the_new_select() {
    on_every_store(|w| async move {
        w.ensure().await;
        let (before, _) = w.only_subscription().await;
        assert!(before.resource.contains("subject"), "{}", before.resource);
        // The tenant switches to `drop`: Graph must no longer send the subject, not even encrypted.
        let old = w.runtime();
        let mut policy = old.policy.clone();
        policy.subject = orb_core::SubjectPolicy::Drop;
        let runtime = TenantRuntime {
            tenant_id: old.tenant_id,
            policy,
            rooms: old.rooms.clone(),
            exchange: old.exchange.clone(),
            graph: old.graph.clone(),
            topdesk: old.topdesk.clone(),
            link_type: old.link_type,
            mail_sender: old.mail_sender.clone(),
            portal_base_url: old.portal_base_url.clone(),
            cancel_reason: old.cancel_reason.clone(),
            persons: orb_engine::runtime::PersonCache::default(),
            notification_base_url: old.notification_base_url.clone(),
            writes: old.writes.clone(),
            jwks: old.jwks.clone(),
        };
        let report = ensure_subscriptions(&w.deps, &runtime, &w.intake, w.clock.now()).await.unwrap();
        assert_eq!(report.recreated, vec![w.room.id], "{report:?}");
        let (after, row) = w.only_subscription().await;
        assert_ne!(after.id, before.id, "a new subscription: Graph cannot change a resource");
        assert!(!after.resource.contains("subject"), "{}", after.resource);
        assert_eq!(row.resource, after.resource);
        assert!(ensure_subscriptions(&w.deps, &runtime, &w.intake, w.clock.now()).await.unwrap().is_noop());
    })
    .await;
}

#[tokio::test]
async fn lifecycle_items_of_unknown_subscriptions_or_events_are_audited() {
    on_every_store(|w| async move {
        w.ensure().await;
        let (sub, _) = w.only_subscription().await;
        let now = w.clock.now();
        // Kept items the worker must check itself (the row may have gone since the intake accepted them).
        let keep = |subscription: &str, event: &str| {
            let item = NewInboxItem {
                tenant_id: w.tenant.id,
                source: InboxSource::GraphLifecycle,
                received_at: now,
                remote_ip: None,
                payload: json!({"subscriptionId": subscription, "lifecycleEvent": event, "tenantId": TENANT}),
            };
            let job = NewJob {
                lane: Lane::room(w.tenant.id, w.room.id),
                kind: JobKind::GraphLifecycle.as_str().to_owned(),
                payload: json!({ "subscription_id": subscription }),
                correlation_id: None,
                run_at: None,
            };
            (item, job)
        };
        let (item, job) = keep("not-a-subscription-of-ours", "subscriptionRemoved");
        let (unknown_inbox, _) = w.store.accept_inbox(&item, &job, now).await.unwrap();
        let (item, job) = keep(&sub.id, "somethingNew");
        let (new_event_inbox, _) = w.store.accept_inbox(&item, &job, now).await.unwrap();
        eventually("both items processed", || async {
            let a = w.store.get_inbox(w.tenant.id, unknown_inbox).await.unwrap();
            let b = w.store.get_inbox(w.tenant.id, new_event_inbox).await.unwrap();
            (a.processed_at.is_some() && b.processed_at.is_some()).then_some(())
        })
        .await;
        let audit = w.audit().await;
        assert!(
            audit
                .iter()
                .any(|a| a.action == AUDIT_NOTIFICATION_REFUSED
                    && a.target.contains("not-a-subscription-of-ours")),
            "{audit:?}"
        );
        assert!(
            audit.iter().any(|a| a.action == AUDIT_SUBSCRIPTION_LIFECYCLE_UNKNOWN
                && a.target.contains("somethingNew")
                && a.target.contains(ROOM)),
            "{audit:?}"
        );
        // Neither touched the subscription.
        assert_eq!(w.only_subscription().await.0, sub);
    })
    .await;
}
