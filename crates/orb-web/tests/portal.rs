//! The admin portal over real HTTP, on every store: login with password + TOTP (and a replayed code
//! refused), the lockout, CSRF and Origin checks, the IP allow-lists of the portal and the webhooks, tenant
//! isolation on every route of the router, one audit row per action, API tokens and the OpenAPI document,
//! write-only secrets and hidden fields. The rest of ORB is a small in-memory [`PortalBackend`] here; the
//! binary's backend and the browser are tested in `crates/orb/tests`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use orb_auth::{IpAllowList, TotpSecret};
use orb_core::{
    AppointmentType, BookingRecord, Clock, EmailAddress, FixedClock, NewBooking, RoomId, RoomMailbox, Side,
    TenantId, TenantName, TimeZoneName, TopdeskLocationId,
};
use orb_store::{
    AuditFilter, JobStatus, Lane, NewAuditEntry, NewJob, NewRoom, NewUser, Role, SealedTotp, Store, UserId,
};
use orb_testkit::stores::TestStore;
use orb_web::portal::backend::{
    BackendError, ConnectionCheck, FieldKind, HeldDeletion, PortalBackend, RoomSuggestion, SecretField,
    SettingsField, SettingsSection, TenantPolicy, TenantStatus,
};
use orb_web::portal::{PortalConfig, PortalState, routes};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------------------
// A small backend: policies and secrets in memory.

#[derive(Debug, Default)]
struct TestBackend {
    /// Where the backend's own audit rows go (the real backend writes them in its store transaction).
    store: Mutex<Option<Arc<dyn Store>>>,
    policies: Mutex<HashMap<TenantId, TenantPolicy>>,
    secrets: Mutex<HashMap<(TenantId, String), String>>,
    hidden: Mutex<HashMap<TenantId, BTreeSet<String>>>,
    approved: Mutex<Vec<RoomId>>,
    held: Mutex<Vec<HeldDeletion>>,
}

impl TestBackend {
    async fn audit(&self, entry: &NewAuditEntry) {
        let store = self.store.lock().unwrap().clone().expect("the harness gives the backend its store");
        store.append_audit(entry).await.unwrap();
    }

    fn set_policy(&self, tenant: TenantId, f: impl FnOnce(&mut TenantPolicy)) {
        let mut policies = self.policies.lock().unwrap();
        f(policies.entry(tenant).or_default());
    }
}

#[async_trait]
impl PortalBackend for TestBackend {
    async fn policy(&self, tenant: TenantId) -> Result<TenantPolicy, BackendError> {
        let mut policy = self.policies.lock().unwrap().get(&tenant).cloned().unwrap_or_default();
        policy.hidden_fields = self.hidden.lock().unwrap().get(&tenant).cloned().unwrap_or_default();
        Ok(policy)
    }
    async fn status(&self, _: TenantId) -> Result<TenantStatus, BackendError> {
        Ok(TenantStatus { configured: true, ..TenantStatus::default() })
    }
    async fn settings_form(&self, _: TenantId) -> Result<Vec<SettingsSection>, BackendError> {
        Ok(vec![SettingsSection {
            title: "Sync policy".into(),
            fields: vec![SettingsField {
                key: "sync.mode".into(),
                label: "Mode".into(),
                help: "".into(),
                kind: FieldKind::Choice(vec!["organizer".into(), "room-only".into()]),
                value: "organizer".into(),
            }],
        }])
    }
    async fn save_settings(
        &self,
        _: TenantId,
        values: &BTreeMap<String, String>,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError> {
        if values.get("sync.mode").is_some_and(|m| m != "organizer" && m != "room-only") {
            return Err(BackendError::Invalid("Mode: use one of organizer, room-only".into()));
        }
        self.audit(audit).await;
        Ok(())
    }
    async fn save_hidden_fields(
        &self,
        tenant: TenantId,
        fields: &BTreeSet<String>,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError> {
        self.hidden.lock().unwrap().insert(tenant, fields.clone());
        self.audit(audit).await;
        Ok(())
    }
    fn secret_fields(&self) -> Vec<SecretField> {
        vec![SecretField {
            name: "graph.client_secret",
            label: "Graph client secret",
            help: "",
            multiline: false,
        }]
    }
    async fn set_secret(
        &self,
        tenant: TenantId,
        name: &str,
        value: SecretString,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError> {
        self.secrets.lock().unwrap().insert((tenant, name.to_owned()), value.expose_secret().to_owned());
        self.audit(audit).await;
        Ok(())
    }
    async fn test_connection(&self, _: TenantId, side: Side) -> ConnectionCheck {
        ConnectionCheck { ok: side == Side::Exchange, detail: format!("{side} answered") }
    }
    async fn room_suggestions(&self, _: TenantId) -> Result<Vec<RoomSuggestion>, BackendError> {
        Ok(Vec::new())
    }
    async fn held_deletions(&self, _: TenantId) -> Result<Vec<HeldDeletion>, BackendError> {
        Ok(self.held.lock().unwrap().clone())
    }
    async fn approve_deletions(
        &self,
        _: TenantId,
        room: RoomId,
        audit: &NewAuditEntry,
    ) -> Result<String, BackendError> {
        self.approved.lock().unwrap().push(room);
        self.audit(audit).await;
        Ok("approved".into())
    }
    async fn reject_deletions(
        &self,
        _: TenantId,
        _: RoomId,
        audit: &NewAuditEntry,
    ) -> Result<String, BackendError> {
        self.audit(audit).await;
        Ok("rejected".into())
    }
    fn seal_totp(&self, _: UserId, secret: &[u8]) -> Result<SealedTotp, BackendError> {
        Ok(SealedTotp { sealed: secret.to_vec(), key_id: "test".into() })
    }
    fn open_totp(&self, _: UserId, sealed: &SealedTotp) -> Result<Vec<u8>, BackendError> {
        Ok(sealed.sealed.clone())
    }
    async fn sso_client_secret(&self, _: TenantId) -> Result<Option<SecretString>, BackendError> {
        Ok(None)
    }
}

// ---------------------------------------------------------------------------------------------------------
// The harness: a portal and the webhook intake on one real listener.

const PASSWORD: &str = "correct horse battery staple";

struct Site {
    store: Arc<dyn Store>,
    clock: FixedClock,
    backend: Arc<TestBackend>,
    state: PortalState,
    base: String,
    stop: CancellationToken,
    _db: TestStore,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Account {
    email: String,
    secret: TotpSecret,
}

impl Site {
    async fn start(db: TestStore, config: PortalConfig) -> Self {
        let store = db.store.clone();
        let clock = FixedClock::new(DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap().to_utc());
        let backend = Arc::new(TestBackend::default());
        *backend.store.lock().unwrap() = Some(store.clone());
        let state = PortalState::new(store.clone(), Arc::new(clock.clone()), backend.clone(), config);
        let hooks = orb_web::HooksState::new(store.clone(), Arc::new(clock.clone()))
            .with_allow_lists(backend.clone(), IpAllowList::default());
        let app = orb_web::router(hooks).merge(orb_web::portal::router(state.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(orb_web::serve_public(listener, app, orb_web::ListenerLimits::default(), stop.clone()));
        Self { store, clock, backend, state, base: format!("http://{addr}"), stop, _db: db }
    }

    async fn every(config: impl Fn() -> PortalConfig) -> Vec<Self> {
        let mut out = Vec::new();
        for db in TestStore::every().await {
            out.push(Self::start(db, config()).await);
        }
        out
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn tenant(&self, name: &str) -> TenantId {
        self.store.create_tenant(&TenantName::parse(name).unwrap(), self.now()).await.unwrap().id
    }

    async fn user(&self, tenant: Option<TenantId>, email: &str, role: Role) -> Account {
        let audit = NewAuditEntry {
            tenant_id: tenant,
            at: self.now(),
            actor: "test".into(),
            action: "user.add".into(),
            target: email.into(),
            ip: None,
        };
        let hash = orb_auth::hash_password(&SecretString::from(PASSWORD)).unwrap();
        let user = self
            .store
            .create_user(
                &NewUser {
                    tenant_id: tenant,
                    email: EmailAddress::parse(email).unwrap(),
                    role,
                    password_hash: Some(hash),
                    password_temporary: false,
                },
                &audit,
                self.now(),
            )
            .await
            .unwrap();
        let secret = TotpSecret::generate();
        let sealed = SealedTotp { sealed: secret.expose_bytes().to_vec(), key_id: "test".into() };
        self.store.set_user_totp(user.id, Some(&sealed), true, None).await.unwrap();
        Account { email: email.to_owned(), secret }
    }

    fn browser(&self) -> Browser {
        Browser {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            base: self.base.clone(),
            cookie: None,
            csrf: None,
        }
    }

    /// A browser logged in as `account` (password, then TOTP at the current step).
    async fn login(&self, account: &Account) -> Browser {
        let mut b = self.browser();
        let r = b.post("/login", &[("email", &account.email), ("password", PASSWORD)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "password step");
        assert_eq!(location(&r), "/login/second-factor");
        let page = b.get("/login/second-factor").await.text().await.unwrap();
        b.csrf = Some(csrf_of(&page));
        let code = orb_auth::code_at(&account.secret, self.now());
        let r = b.post("/login/second-factor", &[("code", &code)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "second factor");
        assert_eq!(location(&r), "/");
        let home = b.get("/account").await.text().await.unwrap();
        b.csrf = Some(csrf_of(&home));
        b
    }

    async fn audit_count(&self, tenant: TenantId, action: &str) -> usize {
        let filter =
            AuditFilter { action_prefix: Some(action.to_owned()), limit: 1000, ..AuditFilter::default() };
        self.store
            .search_audit(Some(tenant), &filter)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action == action)
            .count()
    }

    async fn all_audit(&self, tenant: TenantId) -> usize {
        self.store
            .search_audit(Some(tenant), &AuditFilter { limit: 10_000, ..AuditFilter::default() })
            .await
            .unwrap()
            .len()
    }

    /// A room, a booking with a timeline entry, and a dead job in `tenant`.
    async fn seed(&self, tenant: TenantId, n: u32) -> Seeded {
        let now = self.now();
        let room = self
            .store
            .add_room(
                tenant,
                &NewRoom {
                    mailbox: RoomMailbox::parse(&format!("room{n}@t{n}.example")).unwrap(),
                    topdesk_location_id: TopdeskLocationId::parse(&format!("loc-{n}")).unwrap(),
                    display_name: Some(format!("Room {n}")),
                },
                now,
            )
            .await
            .unwrap();
        let record = BookingRecord::new(
            NewBooking {
                tenant_id: tenant,
                appointment_type: AppointmentType::Single,
                series_id: None,
                original_start: None,
                organizer: EmailAddress::parse(&format!("organizer{n}@t{n}.example")).unwrap(),
                booked_by: None,
                location_text: None,
                room_id: room.id,
                participants: vec![],
                subject: Some(format!("Secret plans {n}")),
                start: now + Duration::days(1),
                end: now + Duration::days(1) + Duration::hours(1),
                time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                processor_created: Side::Exchange,
            },
            now,
        );
        let event = orb_store::NewBookingEvent {
            at: now,
            kind: "observed".into(),
            side: Some(Side::Exchange),
            detail: serde_json::json!({"organizer": format!("organizer{n}@t{n}.example"), "rule": "create"}),
        };
        let booking = self.store.insert_booking(&record, &[event], &[], now).await.unwrap();
        let job = NewJob {
            lane: Lane::room(tenant, room.id),
            kind: "sync".into(),
            payload: serde_json::json!({}),
            correlation_id: None,
            run_at: None,
        };
        self.store.enqueue(&job, now).await.unwrap();
        let claimed = self.store.claim_job("w", now, Duration::seconds(60)).await.unwrap().unwrap();
        self.store.fail_job(&claimed.lease, "boom", None, now).await.unwrap();
        Seeded { room: room.id, booking: booking.id.to_string(), job: claimed.job.id.0 }
    }
}

struct Seeded {
    room: RoomId,
    booking: String,
    job: i64,
}

struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn keep_cookie(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            if pair.ends_with('=') { self.cookie = None } else { self.cookie = Some(pair.to_owned()) }
        }
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        r
    }

    async fn send(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
        csrf: bool,
    ) -> reqwest::Response {
        let mut pairs: Vec<(String, String)> =
            form.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        if csrf && let Some(t) = &self.csrf {
            pairs.push(("_csrf".into(), t.clone()));
        }
        let mut req = self.http.post(format!("{}{path}", self.base)).form(&pairs);
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        r
    }

    /// A JSON request with the session cookie and CSRF header (as htmx or a script on the page sends it).
    async fn json(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let mut req =
            self.http.request(method, format!("{}{path}", self.base)).json(body).header(ORIGIN, &self.base);
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send().await.unwrap()
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let origin = self.base.clone();
        self.send(path, form, Some(&origin), true).await
    }
}

/// Makes an API token of `scope` on the account page and reads it from the page (shown once).
async fn api_token(b: &mut Browser, scope: &str) -> String {
    let page = b.post("/account/tokens", &[("name", scope), ("scope", scope)]).await.text().await.unwrap();
    let pattern = "id=\"shown-once\"><li><code>";
    let at = page.find(pattern).expect("the token on the page") + pattern.len();
    page[at..].split('<').next().unwrap().to_owned()
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"_csrf\" value=\"").expect("a CSRF field on the page") + 20;
    page[at..].split('"').next().unwrap().to_owned()
}

fn demo_config() -> PortalConfig {
    PortalConfig { secure_cookies: false, ..PortalConfig::default() }
}

// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn password_and_totp_log_in_and_a_replayed_code_is_refused() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let page = b.get("/t/alpha").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("Dashboard"));
        assert_eq!(site.audit_count(a, "login").await, 1, "one audit row per login");

        // Log out; the same code (same 30-second step) cannot be used again.
        let r = b.post("/logout", &[]).await;
        assert_eq!(location(&r), "/login?message=logged-out");
        assert_eq!(b.get("/t/alpha").await.status(), StatusCode::SEE_OTHER, "the session ended");
        let mut again = site.browser();
        again.post("/login", &[("email", &admin.email), ("password", PASSWORD)]).await;
        let page = again.get("/login/second-factor").await.text().await.unwrap();
        again.csrf = Some(csrf_of(&page));
        let code = orb_auth::code_at(&admin.secret, site.now());
        let r = again.post("/login/second-factor", &[("code", &code)]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{}: a replayed code is refused", site._db.name);
        assert!(r.text().await.unwrap().contains("was used already"));
        assert_eq!(site.audit_count(a, "login.failed").await, 1);
        // The next step's code works.
        site.clock.advance(Duration::seconds(30));
        let code = orb_auth::code_at(&admin.secret, site.now());
        let r = again.post("/login/second-factor", &[("code", &code)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(site.audit_count(a, "login").await, 2);
    }
}

#[tokio::test]
async fn twenty_wrong_passwords_lock_the_account_with_growing_back_off() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.browser();
        let mut waits = Vec::new();
        for attempt in 1..=20 {
            let r = b.post("/login", &[("email", &admin.email), ("password", "wrong password!")]).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {attempt} is checked");
            if attempt < 5 {
                continue; // the first failures are free: no wait
            }
            // Right after a failure past the free ones, even the right password waits (and is not checked).
            let r = b.post("/login", &[("email", &admin.email), ("password", PASSWORD)]).await;
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "attempt {attempt}: blocked");
            let wait: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            waits.push(wait);
            site.clock.advance(Duration::seconds(wait + 1));
        }
        // Locked, now past the lock: the right password works again, and clears the counters.
        let r = b.post("/login", &[("email", &admin.email), ("password", PASSWORD)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "after the lock");
        eprintln!("figures ({}): Retry-After after failures 5..=20: {waits:?} s", site._db.name);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "the back-off grows: {waits:?}");
        assert!(waits.last().unwrap() > &waits[0], "and it grew: {waits:?}");
        assert!(
            *waits.last().unwrap() >= 30 * 60 - 1,
            "20 failures lock the account for 30 minutes: {waits:?}"
        );
        assert!(site.audit_count(a, "login.failed").await >= 16);
        // A blocked attempt is refused by the account's counter (the address's allowance is far larger):
        // audited in the account's tenant, once per attempt.
        let blocked =
            AuditFilter { action_prefix: Some("login.blocked".into()), limit: 100, ..AuditFilter::default() };
        let rows = site.store.search_audit(Some(a), &blocked).await.unwrap();
        assert_eq!(rows.len(), 16);
        assert!(rows.iter().all(|e| e.target == "account"), "{rows:?}");
    }
}

#[tokio::test]
async fn a_post_without_csrf_token_or_from_a_foreign_origin_is_refused() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let seeded = site.seed(a, 1).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let path = format!("/t/alpha/jobs/{}/retry", seeded.job);
        let own = site.base.clone();
        let r = b.send(&path, &[], Some(&own), false).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "no token");
        let r = b.send(&path, &[], Some("https://evil.example"), true).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "foreign origin");
        let r = b.send(&path, &[], None, true).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "no origin and no referer");
        b.csrf = Some("forged".into());
        let r = b.send(&path, &[], Some(&own), true).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "a wrong token");
        assert_eq!(site.store.list_jobs(a, JobStatus::Dead).await.unwrap().len(), 1, "nothing was retried");
        assert_eq!(site.audit_count(a, "job.retry").await, 0);
    }
}

#[tokio::test]
async fn the_allow_lists_refuse_the_portal_and_the_webhooks_from_elsewhere() {
    // The installation's list: nothing but 10.0.0.0/8, so 127.0.0.1 is refused before any page.
    let outside =
        || PortalConfig { allow: IpAllowList::parse(&["10.0.0.0/8".to_owned()]).unwrap(), ..demo_config() };
    for site in Site::every(outside).await {
        let r = site.browser().get("/login").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers().contains_key("content-security-policy"));
    }
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        // The tenant narrows it: the running session is refused, and so is a new login.
        let ten = IpAllowList::parse(&["10.0.0.0/8".to_owned()]).unwrap();
        site.backend.set_policy(a, |p| p.portal_allow = ten.clone());
        assert_eq!(b.get("/t/alpha").await.status(), StatusCode::FORBIDDEN);
        let mut fresh = site.browser();
        let r = fresh.post("/login", &[("email", &admin.email), ("password", PASSWORD)]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(site.audit_count(a, "login.refused_address").await, 1);
        // Webhooks: the tenant's list refuses the TOPdesk push from here.
        site.backend.set_policy(a, |p| {
            p.portal_allow = IpAllowList::default();
            p.webhook_allow = ten.clone();
        });
        let r = reqwest::Client::new()
            .post(format!("{}/hooks/topdesk/alpha", site.base))
            .bearer_auth("whatever")
            .json(&serde_json::json!({"reservations": ["x"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // And an EWS push, before its body or its subscription is looked at.
        let r = reqwest::Client::new()
            .post(format!("{}/hooks/ews/alpha?k=whatever", site.base))
            .header("content-type", "text/xml; charset=utf-8")
            .body("<not-even-xml")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "the EWS intake honours the webhook allow-list");
        assert_eq!(b.get("/t/alpha").await.status(), StatusCode::OK, "the portal is open again");
    }
}

/// Fills a route's path for tenant `tenant` with ids of `s`.
fn fill(path: &str, tenant: &str, s: &Seeded, user: i64) -> String {
    let id = if path.contains("/jobs/") {
        s.job.to_string()
    } else if path.contains("/users/") {
        user.to_string()
    } else {
        s.booking.clone()
    };
    path.replace("{tenant}", tenant)
        .replace("{id}", &id)
        .replace("{room}", &s.room.to_string())
        .replace("{name}", "graph.client_secret")
        .replace("{side}", "exchange")
}

#[tokio::test]
async fn a_user_of_one_tenant_gets_nothing_of_another_on_any_route() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let b = site.tenant("beta").await;
        let _ = site.seed(a, 1).await;
        let theirs = site.seed(b, 2).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let other = site.user(Some(b), "admin@beta.example", Role::TenantAdmin).await;
        let other_id =
            site.store.user_by_email(&EmailAddress::parse(&other.email).unwrap()).await.unwrap().id.0;
        let mut browser = site.login(&admin).await;
        let book = routes::book(site.state.clone());
        let mut checked = 0;
        for route in book.routes.iter().filter(|r| r.path.contains("{tenant}")) {
            let path = fill(route.path, "beta", &theirs, other_id);
            let r = if route.method == reqwest::Method::GET {
                browser.get(&path).await
            } else if route.path.starts_with("/api/") {
                let body = serde_json::json!({"value": "x", "role": "tenant-viewer", "mailbox": "r@x.example",
                    "topdesk_location_id": "l", "email": "x@x.example"});
                browser.json(route.method.clone(), &path, &body).await
            } else {
                browser
                    .post(
                        &path,
                        &[
                            ("value", "x"),
                            ("role", "tenant-viewer"),
                            ("mailbox", "r@x.example"),
                            ("topdesk_location_id", "l"),
                            ("email", "x@x.example"),
                            ("field", "organizer"),
                        ],
                    )
                    .await
            };
            assert!(
                matches!(r.status(), StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
                "{} {} answered {} to another tenant's user",
                route.method,
                route.path,
                r.status()
            );
            checked += 1;
        }
        // The installation's routes: a tenant's user is refused on each.
        for route in book.routes.iter().filter(|r| r.access == routes::Access::Operator) {
            let r = browser.get(route.path).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{} to a tenant's user", route.path);
            checked += 1;
        }
        // The routes without a tenant that name a row by id: another user's session and API token.
        let mut theirs_browser = site.login(&other).await;
        theirs_browser.post("/account/tokens", &[("name", "t"), ("scope", "read")]).await;
        let other_user = site.store.user_by_email(&EmailAddress::parse(&other.email).unwrap()).await.unwrap();
        let session = site.store.list_sessions(other_user.id).await.unwrap()[0].id;
        let token = site.store.list_api_tokens(other_user.id).await.unwrap()[0].id;
        for route in book.routes.iter().filter(|r| r.path.starts_with("/account/") && r.path.contains("{id}"))
        {
            let id = if route.path.contains("sessions") { session } else { token };
            let r = browser.post(&route.path.replace("{id}", &id.to_string()), &[]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{} with another user's id", route.path);
            checked += 1;
        }
        assert_eq!(site.store.list_sessions(other_user.id).await.unwrap().len(), 1, "their session lives");
        assert!(!site.store.list_api_tokens(other_user.id).await.unwrap()[0].revoked, "their token lives");
        println!("{}: {checked} routes checked, each refused", site._db.name);
        assert!(checked >= 50, "the router has its tenant routes: {checked}");
        // Nothing of beta changed.
        assert_eq!(site.store.list_jobs(b, JobStatus::Dead).await.unwrap().len(), 1);
        assert!(site.store.list_rooms(b).await.unwrap().iter().all(|r| r.enabled));
        assert_eq!(site.store.list_rooms(b).await.unwrap().len(), 1);
        assert!(site.backend.secrets.lock().unwrap().is_empty());
        let beta_audit = site
            .store
            .search_audit(Some(b), &AuditFilter { limit: 100, ..AuditFilter::default() })
            .await
            .unwrap();
        assert!(
            beta_audit.iter().all(|e| e.actor == "test" || e.actor == other.email),
            "nothing alpha did reached beta: {beta_audit:?}"
        );
        // And the tenant list of the API shows only alpha.
        let list: Vec<String> = browser.get("/api/v1/tenants").await.json().await.unwrap();
        assert_eq!(list, vec!["alpha".to_owned()]);
    }
}

/// An action of the audit test: its audit action, path, form and whether it is a POST.
type Step<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, bool);

#[tokio::test]
async fn each_action_leaves_exactly_one_audit_row() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let s = site.seed(a, 1).await;
        let second = site.seed(a, 3).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let steps: Vec<Step> = vec![
            ("booking.view", format!("/t/alpha/bookings/{}", s.booking), vec![], false),
            ("job.retry", format!("/t/alpha/jobs/{}/retry", s.job), vec![], true),
            ("job.dismiss", format!("/t/alpha/jobs/{}/dismiss", second.job), vec![], true),
            (
                "settings.hidden_fields",
                "/t/alpha/settings/hidden-fields".into(),
                vec![("field", "subject")],
                true,
            ),
            ("settings.save", "/t/alpha/settings".into(), vec![("sync.mode", "room-only")], true),
            (
                "secret.set",
                "/t/alpha/secrets/graph.client_secret".into(),
                vec![("value", "s3cret-value-123")],
                true,
            ),
            ("room.disable", format!("/t/alpha/rooms/{}/disable", s.room), vec![], true),
            ("deletions.approve", format!("/t/alpha/deletions/{}/approve", s.room), vec![], true),
        ];
        for (action, path, form, post) in steps {
            let before = site.all_audit(a).await;
            let r = if post { b.post(&path, &form).await } else { b.get(&path).await };
            assert!(r.status().is_success() || r.status().is_redirection(), "{action}: {}", r.status());
            assert_eq!(site.all_audit(a).await, before + 1, "{action}: one row in all");
            assert_eq!(site.audit_count(a, action).await, 1, "{action}");
        }
    }
}

#[tokio::test]
async fn api_tokens_are_scoped_and_revocable_and_the_openapi_document_lists_every_api_route() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let s = site.seed(a, 1).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let page = b.post("/account/tokens", &[("name", "reports"), ("scope", "read"), ("days", "30")]).await;
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        let pattern = "id=\"shown-once\"><li><code>";
        let at = page.find(pattern).expect("the token on the page") + pattern.len();
        let token = page[at..].split('<').next().unwrap().to_owned();
        assert_eq!(site.audit_count(a, "api_token.create").await, 1);
        let api = reqwest::Client::new();
        let get = |path: &str| api.get(format!("{}{path}", site.base)).bearer_auth(&token).send();
        let r = get("/api/v1/tenants/alpha/bookings").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let rows: Vec<serde_json::Value> = r.json().await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["id"], s.booking);
        assert_eq!(rows[0]["organizer"], "organizer1@t1.example");
        // Read scope: no retry; no CSRF needed for a bearer request, and none offered.
        let r = api
            .post(format!("{}/api/v1/tenants/alpha/jobs/{}/retry", site.base, s.job))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("role does not allow"));
        assert_eq!(site.store.list_jobs(a, JobStatus::Dead).await.unwrap().len(), 1);
        // Another tenant: 404, as JSON.
        let r = get("/api/v1/tenants/nope/bookings").await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // Revoked: 401 with a Bearer challenge.
        let id = site
            .store
            .list_api_tokens(
                site.store.user_by_email(&EmailAddress::parse(&admin.email).unwrap()).await.unwrap().id,
            )
            .await
            .unwrap()[0]
            .id;
        b.post(&format!("/account/tokens/{id}/revoke"), &[]).await;
        let r = get("/api/v1/tenants/alpha/bookings").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        // The OpenAPI document names every API route of the router.
        let doc: serde_json::Value =
            api.get(format!("{}/api/openapi.json", site.base)).send().await.unwrap().json().await.unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let book = routes::book(site.state.clone());
        let api_routes: Vec<_> = book.routes.iter().filter(|r| r.path.starts_with("/api/v1/")).collect();
        assert!(api_routes.len() >= 10);
        for route in api_routes {
            let method = route.method.as_str().to_lowercase();
            assert!(
                doc["paths"][route.path][&method].is_object(),
                "{} {} is not in the OpenAPI document",
                route.method,
                route.path
            );
        }
    }
}

#[tokio::test]
async fn a_saved_secret_is_never_shown_again_and_a_viewer_cannot_change_anything() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let s = site.seed(a, 1).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let viewer = site.user(Some(a), "viewer@alpha.example", Role::TenantViewer).await;
        let mut b = site.login(&admin).await;
        let secret = "Sup3r-s3cret-client-value";
        let r = b.post("/t/alpha/secrets/graph.client_secret", &[("value", secret)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(site.backend.secrets.lock().unwrap()[&(a, "graph.client_secret".to_owned())], secret);
        for path in [
            "/t/alpha/settings",
            "/t/alpha",
            "/t/alpha/audit",
            "/t/alpha/audit/export?format=json",
            &location(&r),
        ] {
            let page = b.get(path).await.text().await.unwrap();
            assert!(!page.contains(secret), "{path} shows the secret");
            assert!(!page.contains("Sup3r"), "{path} shows part of it");
        }
        // An empty value is refused and stores nothing.
        let r = b.post("/t/alpha/secrets/graph.client_secret", &[("value", "  ")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(site.audit_count(a, "secret.set").await, 1);
        // A viewer sees the bookings but changes nothing.
        let mut v = site.login(&viewer).await;
        assert_eq!(v.get("/t/alpha/bookings").await.status(), StatusCode::OK);
        for (path, form) in [
            (format!("/t/alpha/jobs/{}/retry", s.job), vec![]),
            ("/t/alpha/secrets/graph.client_secret".to_owned(), vec![("value", "x")]),
            (format!("/t/alpha/rooms/{}/disable", s.room), vec![]),
            ("/t/alpha/settings/hidden-fields".to_owned(), vec![("field", "subject")]),
        ] {
            assert_eq!(v.post(&path, &form).await.status(), StatusCode::FORBIDDEN, "{path}");
        }
        assert_eq!(v.get("/t/alpha/settings").await.status(), StatusCode::FORBIDDEN);
        assert_eq!(site.store.list_jobs(a, JobStatus::Dead).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_field_an_admin_hides_is_hidden_for_everyone_in_pages_timeline_and_api() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let s = site.seed(a, 1).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let viewer = site.user(Some(a), "viewer@alpha.example", Role::TenantViewer).await;
        let mut v = site.login(&viewer).await;
        let detail = format!("/t/alpha/bookings/{}", s.booking);
        assert!(v.get(&detail).await.text().await.unwrap().contains("organizer1@t1.example"));
        let mut b = site.login(&admin).await;
        let r = b
            .post(
                "/t/alpha/settings/hidden-fields",
                &[("field", "organizer"), ("field", "original_organizer"), ("field", "subject")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        for path in [detail.as_str(), "/t/alpha/bookings", "/api/v1/tenants/alpha/bookings"] {
            for who in [&mut v, &mut b] {
                let page = who.get(path).await.text().await.unwrap();
                assert!(!page.contains("organizer1@t1.example"), "{path} shows the organizer");
                assert!(!page.contains("Secret plans"), "{path} shows the subject");
                assert!(page.contains("(hidden)"), "{path} says what is hidden");
            }
        }
        // A field that does not exist is refused.
        let r = b.post("/t/alpha/settings/hidden-fields", &[("field", "salary")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_someone_else_set_must_be_replaced_before_anything_else() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        // Invitations make temporary passwords (SSO-only users have none).
        let mut b = site.login(&admin).await;
        let r = b.post("/t/alpha/users", &[("email", "new@alpha.example"), ("role", "tenant-viewer")]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("they choose their own"));
        let invited =
            site.store.user_by_email(&EmailAddress::parse("new@alpha.example").unwrap()).await.unwrap();
        assert!(invited.password_temporary, "an invited user's password is temporary");
        let r = b
            .post(
                "/t/alpha/users",
                &[("email", "sso@alpha.example"), ("role", "tenant-viewer"), ("login", "sso")],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let sso = site.store.user_by_email(&EmailAddress::parse("sso@alpha.example").unwrap()).await.unwrap();
        assert!(!sso.password_temporary);

        // A user whose password an operator reset logs in and gets nothing but their account page.
        let viewer = site.user(Some(a), "viewer@alpha.example", Role::TenantViewer).await;
        let id = site.store.user_by_email(&EmailAddress::parse(&viewer.email).unwrap()).await.unwrap().id;
        let hash = orb_auth::hash_password(&SecretString::from(PASSWORD)).unwrap();
        let reset = NewAuditEntry {
            tenant_id: Some(a),
            at: site.now(),
            actor: "cli".into(),
            action: "user.reset_password".into(),
            target: viewer.email.clone(),
            ip: None,
        };
        site.store.set_user_password(id, &hash, true, &reset).await.unwrap();
        let mut v = site.login(&viewer).await;
        for path in ["/", "/t/alpha", "/t/alpha/bookings"] {
            let r = v.get(path).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(location(&r), "/account", "{path}");
        }
        // The JSON API (with the session's cookie) says why, as JSON.
        let r = v.get("/api/v1/tenants/alpha/dashboard").await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().await.unwrap().contains("temporary"));
        let r = v.post("/account/tokens", &[("name", "cli"), ("scope", "read")]).await;
        assert_eq!(location(&r), "/account", "no API token before the password is their own");
        let page = v.get("/account").await.text().await.unwrap();
        assert!(page.contains("Choose your own password"), "{page}");
        // The same password again is refused; their own is taken and lets them in.
        let r = v.post("/account/password", &[("current", PASSWORD), ("new", PASSWORD)]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(site.store.get_user(id).await.unwrap().password_temporary, "nothing changed");
        let own = "a passphrase of my own";
        let r = v.post("/account/password", &[("current", PASSWORD), ("new", own)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(location(&r).starts_with("/?notice="), "{}", location(&r));
        let user = site.store.get_user(id).await.unwrap();
        assert!(!user.password_temporary);
        assert!(
            orb_auth::verify_password(&SecretString::from(own), user.password_hash.as_deref().unwrap())
                .unwrap()
        );
        assert_eq!(v.get("/t/alpha/bookings").await.status(), StatusCode::OK);
        assert!(!v.get("/account").await.text().await.unwrap().contains("Choose your own password"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installation_audit_log_is_for_operators_and_shows_the_rows_of_no_tenant() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let _b = site.tenant("beta").await;
        let ops = site.user(None, "ops@example.com", Role::Operator).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        // A failed login for an address no account has belongs to no tenant.
        let r = site
            .browser()
            .post("/login", &[("email", "nobody@example.com"), ("password", "wrong guess")])
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let mut alpha = site.login(&admin).await;
        let mut op = site.login(&ops).await;

        // Pages, export and API: operators only; a tenant's admin is refused and leaves no row.
        let everything = AuditFilter { limit: 10_000, ..AuditFilter::default() };
        let rows_before = site.store.search_audit(None, &everything).await.unwrap().len();
        for path in ["/audit", "/audit/export?format=csv", "/api/v1/audit"] {
            assert_eq!(alpha.get(path).await.status(), StatusCode::FORBIDDEN, "{path}");
        }
        assert_eq!(site.store.search_audit(None, &everything).await.unwrap().len(), rows_before);

        let page = op.get("/audit").await;
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(page.contains("Installation audit log") && page.contains("login.failed"), "{page}");
        let all: Vec<serde_json::Value> = op.get("/api/v1/audit").await.json().await.unwrap();
        assert!(
            all.iter().any(|r| r["tenant"] == "-" && r["action"] == "login.failed"),
            "the failed login of no tenant is there: {all:?}"
        );
        assert!(
            all.iter()
                .any(|r| r["tenant"] == "-" && r["action"] == "login" && r["actor"] == "ops@example.com")
        );
        assert!(all.iter().any(|r| r["tenant"] == "alpha" && r["actor"] == "admin@alpha.example"));
        let only: Vec<serde_json::Value> = op.get("/api/v1/audit?tenant=alpha").await.json().await.unwrap();
        assert!(!only.is_empty() && only.iter().all(|r| r["tenant"] == "alpha"), "{only:?}");
        assert_eq!(op.get("/api/v1/audit?tenant=gamma").await.status(), StatusCode::BAD_REQUEST);
        // The page's filter form shows what it filters by, the tenant included.
        let filtered = op.get("/audit?tenant=alpha&actor=admin%40alpha.example&action=login").await;
        let filtered = filtered.text().await.unwrap();
        for field in [
            r#"<option value="alpha" selected>"#,
            r#"name="actor" value="admin@alpha.example""#,
            r#"name="action" value="login""#,
        ] {
            assert!(filtered.contains(field), "{field}: {filtered}");
        }
        assert!(
            filtered.contains("<td>admin@alpha.example</td>")
                && !filtered.contains("<td>ops@example.com</td>"),
            "only alpha's admin's rows: {filtered}"
        );

        // The export carries the tenant column and is itself an installation row.
        let csv = op.get("/audit/export?format=csv&tenant=alpha").await;
        assert_eq!(csv.status(), StatusCode::OK);
        let csv = csv.text().await.unwrap();
        assert!(csv.starts_with("tenant,id,at,actor,action,target,ip\n"), "{csv}");
        assert!(csv.lines().skip(1).all(|l| l.starts_with("alpha,")), "{csv}");
        let filter =
            AuditFilter { action_prefix: Some("audit.export".into()), limit: 10, ..AuditFilter::default() };
        let exports = site.store.search_audit(None, &filter).await.unwrap();
        assert_eq!(exports.len(), 1, "one row per export");
        assert_eq!(exports[0].tenant_id, None);
        assert_eq!(exports[0].actor, "ops@example.com");
        assert!(exports[0].target.starts_with("installation: csv, "), "{}", exports[0].target);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_tests_a_sides_connection_as_the_settings_page_does() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let write = api_token(&mut b, "write").await;
        let read = api_token(&mut b, "read").await;
        let api = reqwest::Client::new();
        let test = |token: &str, side: &str| {
            api.post(format!("{}/api/v1/tenants/alpha/settings/test/{side}", site.base))
                .bearer_auth(token)
                .send()
        };
        let before = site.all_audit(a).await;
        // The stand-in back-end's Exchange answers, its TOPdesk does not: the API says which.
        let r = test(&write, "exchange").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"ok": true, "detail": "exchange answered"}));
        let body: serde_json::Value = test(&write, "topdesk").await.unwrap().json().await.unwrap();
        assert_eq!(body["ok"], false);
        let filter = AuditFilter { limit: 2, ..AuditFilter::default() };
        let rows = site.store.search_audit(Some(a), &filter).await.unwrap();
        let actions: Vec<(String, String)> = rows.into_iter().map(|e| (e.action, e.target)).collect();
        assert_eq!(
            actions,
            [
                ("settings.test_connection".to_owned(), "topdesk: failed".to_owned()),
                ("settings.test_connection".to_owned(), "exchange: ok".to_owned())
            ]
        );
        assert_eq!(site.all_audit(a).await, before + 2, "one audit row per test");
        // An unknown side is not a route; a read token may not test (it is a change of nothing, but it
        // uses the tenant's secrets against the outside world).
        assert_eq!(test(&write, "oracle").await.unwrap().status(), StatusCode::NOT_FOUND);
        assert_eq!(test(&read, "exchange").await.unwrap().status(), StatusCode::FORBIDDEN);
        assert_eq!(site.all_audit(a).await, before + 2, "a refused test leaves no row");
    }
}

#[tokio::test]
async fn the_json_api_changes_what_the_pages_change_and_a_read_token_changes_nothing() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let s = site.seed(a, 1).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let write = api_token(&mut b, "write").await;
        let read = api_token(&mut b, "read").await;
        let api = reqwest::Client::new();
        let call = |token: &str, method: reqwest::Method, path: &str, body: serde_json::Value| {
            api.request(method, format!("{}{path}", site.base)).bearer_auth(token).json(&body).send()
        };
        use reqwest::Method;
        // Map a room, disable it, invite a user, save settings and a secret: each with the write token.
        let r = call(&write, Method::POST, "/api/v1/tenants/alpha/rooms",
            serde_json::json!({"mailbox": "room9@alpha.example", "topdesk_location_id": "loc-9", "name": "Nine"})).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let room: serde_json::Value = r.json().await.unwrap();
        assert_eq!(room["mailbox"], "room9@alpha.example");
        let r = call(
            &write,
            Method::POST,
            &format!("/api/v1/tenants/alpha/rooms/{}/disable", room["id"].as_str().unwrap()),
            serde_json::json!({}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = call(
            &write,
            Method::POST,
            "/api/v1/tenants/alpha/rooms",
            serde_json::json!({"mailbox": "not a mailbox", "topdesk_location_id": "loc-10"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = call(
            &write,
            Method::POST,
            "/api/v1/tenants/alpha/users",
            serde_json::json!({"email": "new@alpha.example", "role": "tenant-viewer"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let invited: serde_json::Value = r.json().await.unwrap();
        assert_eq!(invited["one_time_password"].as_str().unwrap().len(), 19);
        let r = call(
            &write,
            Method::POST,
            "/api/v1/tenants/alpha/users",
            serde_json::json!({"email": "op@alpha.example", "role": "operator"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "no operators from a tenant");
        let r = call(
            &write,
            Method::PUT,
            "/api/v1/tenants/alpha/settings",
            serde_json::json!({"sync.mode": "both"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("organizer, room-only"));
        let r = call(
            &write,
            Method::PUT,
            "/api/v1/tenants/alpha/secrets/graph.client_secret",
            serde_json::json!({"value": "v4lue"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!r.text().await.unwrap().contains("v4lue"));
        let r = call(&write, Method::POST, "/api/v1/tenants/alpha/push-token", serde_json::json!({}))
            .await
            .unwrap();
        let token: serde_json::Value = r.json().await.unwrap();
        assert!(token["token"].as_str().unwrap().len() >= 40);
        assert!(site.store.push_token_hash(a).await.unwrap().is_some());
        // The read token: every change refused, nothing changed.
        let before = site.all_audit(a).await;
        for (method, path) in [
            (Method::POST, format!("/api/v1/tenants/alpha/rooms/{}/disable", s.room)),
            (Method::POST, "/api/v1/tenants/alpha/users".to_owned()),
            (Method::PUT, "/api/v1/tenants/alpha/settings".to_owned()),
            (Method::PUT, "/api/v1/tenants/alpha/secrets/graph.client_secret".to_owned()),
            (Method::POST, "/api/v1/tenants/alpha/push-token".to_owned()),
            (Method::POST, format!("/api/v1/tenants/alpha/deletions/{}/approve", s.room)),
        ] {
            let r = call(
                &read,
                method,
                &path,
                serde_json::json!({"value": "x", "email": "y@alpha.example", "role": "tenant-viewer"}),
            )
            .await
            .unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        }
        assert_eq!(site.all_audit(a).await, before, "a refused request leaves no row");
        assert!(site.store.list_rooms(a).await.unwrap().iter().any(|r| r.id == s.room && r.enabled));
        assert!(site.backend.approved.lock().unwrap().is_empty());
    }
}

/// Inserts `n` bookings of `organizer` in `room`, a day apart from tomorrow on.
async fn more_bookings(site: &Site, tenant: TenantId, room: RoomId, organizer: &str, n: i64) {
    let now = site.now();
    for i in 0..n {
        let start = now + Duration::days(2 + i);
        let record = BookingRecord::new(
            NewBooking {
                tenant_id: tenant,
                appointment_type: AppointmentType::Single,
                series_id: None,
                original_start: None,
                organizer: EmailAddress::parse(organizer).unwrap(),
                booked_by: None,
                location_text: None,
                room_id: room,
                participants: vec![],
                subject: Some(format!("Meeting {i}")),
                start,
                end: start + Duration::hours(1),
                time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                processor_created: Side::Exchange,
            },
            now,
        );
        site.store.insert_booking(&record, &[], &[], now).await.unwrap();
    }
}

/// The `href` of the link whose `rel` is `rel`, unescaped.
fn link_of(page: &str, rel: &str) -> Option<String> {
    let end = page.find(&format!("\" rel=\"{rel}\""))?;
    let start = page[..end].rfind("href=\"")? + 6;
    Some(page[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

#[tokio::test]
async fn the_pager_of_a_filtered_list_keeps_the_filters_also_after_an_htmx_filter_change() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let s = site.seed(a, 1).await;
        // 60 bookings of one organizer, 5 of another: the filtered list has two pages.
        more_bookings(&site, a, s.room, "many+1@alpha.example", 60).await;
        more_bookings(&site, a, s.room, "few@alpha.example", 5).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let filtered = "/t/alpha/bookings?organizer=many%2B1%40alpha.example&status=all";
        let page = b.get(filtered).await.text().await.unwrap();
        assert_eq!(link_of(&page, "prev"), None, "the first page has no previous page");
        let next = link_of(&page, "next").expect("a full page has a next link");
        assert_eq!(next, "/t/alpha/bookings?organizer=many%2B1%40alpha.example&status=all&page=1");
        let second = b.get(&next).await.text().await.unwrap();
        assert_eq!(second.matches("many+1@alpha.example").count(), 10 + 1, "10 rows and the filter field");
        assert!(!second.contains("few@alpha.example"), "the second page is still filtered");
        assert_eq!(
            link_of(&second, "prev").as_deref(),
            Some("/t/alpha/bookings?organizer=many%2B1%40alpha.example&status=all&page=0")
        );
        assert_eq!(link_of(&second, "next"), None);
        // An htmx filter change gets the table and the pager, with the new filter in its links.
        let mut req = b.http.get(format!("{}{filtered}", b.base)).header("hx-request", "true");
        req = req.header(COOKIE, b.cookie.clone().unwrap());
        let fragment = req.send().await.unwrap().text().await.unwrap();
        assert!(!fragment.contains("<html"), "a fragment");
        assert!(fragment.contains("id=\"rows\""), "{fragment}");
        assert_eq!(link_of(&fragment, "next").as_deref(), Some(next.as_str()));
        // The page swaps both: the htmx target holds the table and the pager.
        assert!(page.contains("hx-target=\"#results\""));
        let results = &page[page.find("<div id=\"results\">").unwrap()..];
        assert!(results.find("class=\"pager\"").unwrap() < results.find("</div>").unwrap());
    }
}

#[tokio::test]
async fn retrying_or_dismissing_a_job_that_is_gone_answers_a_message_the_page_can_show() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let s = site.seed(a, 1).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let retry = format!("/t/alpha/jobs/{}/retry", s.job);
        assert!(b.post(&retry, &[]).await.status().is_redirection(), "the first retry works");
        let dead_job = s.job.to_string();
        for (path, job) in [
            (retry, dead_job.as_str()),
            (format!("/t/alpha/jobs/{}/dismiss", s.job), dead_job.as_str()),
            ("/t/alpha/jobs/999999/retry".to_owned(), "999999"),
        ] {
            let r = b.post(&path, &[]).await;
            let status = r.status();
            let body = r.text().await.unwrap();
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            let message = format!(
                "<p class=\"error\">job {job} is not among the dead jobs (any more): it may have been retried \
                 or dismissed meanwhile; reload the page</p>"
            );
            assert!(body.contains(&message), "{path}: {body}");
        }
        // The static script shows such an answer to the admin, as text, in an alert.
        let js = b.get("/static/portal.js").await.text().await.unwrap();
        for needle in ["htmx:responseError", "role\", \"alert\"", "textContent = failureText"] {
            assert!(js.contains(needle), "portal.js has no {needle:?}");
        }
        assert!(!js.contains("innerHTML"), "the message is never inserted as HTML");
    }
}

#[tokio::test]
async fn a_hidden_organizer_cannot_be_searched_for_in_the_pages_or_the_api() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        site.seed(a, 1).await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let viewer = site.user(Some(a), "viewer@alpha.example", Role::TenantViewer).await;
        let mut v = site.login(&viewer).await;
        let search = "/t/alpha/bookings?organizer=organizer1%40t1.example";
        let api = "/api/v1/tenants/alpha/bookings?organizer=organizer1%40t1.example";
        // Visible: the filter finds the booking.
        assert!(v.get(search).await.text().await.unwrap().contains("Secret plans 1"));
        let mut b = site.login(&admin).await;
        let r = b.post("/t/alpha/settings/hidden-fields", &[("field", "organizer")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let token = api_token(&mut b, "read").await;
        // Hidden: refused, saying why, whatever the answer would have been.
        for (who, path) in [(&mut v, search), (&mut b, "/t/alpha/bookings?organizer=nobody%40t1.example")] {
            let r = who.get(path).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
            let body = r.text().await.unwrap();
            assert!(body.contains("the organizer is hidden in this tenant"), "{body}");
            assert!(!body.contains("Secret plans"), "{body}");
        }
        let r = reqwest::Client::new()
            .get(format!("{}{api}", site.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("cannot be searched by organizer"), "{body}");
        // The list without that filter works, and offers no organizer filter.
        let page = v.get("/t/alpha/bookings?organizer=&status=all").await.text().await.unwrap();
        assert!(page.contains("Secret plans 1"), "{page}");
        assert!(page.contains("(hidden: cannot be searched)"), "{page}");
        assert!(page.contains("name=\"organizer\" value=\"\" disabled"), "{page}");
    }
}

#[tokio::test]
async fn one_address_has_a_larger_allowance_that_a_login_does_not_reset_and_that_decays() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let typist = site.user(Some(a), "typist@alpha.example", Role::TenantViewer).await;
        let colleague = site.user(Some(a), "colleague@alpha.example", Role::TenantViewer).await;
        let office = site.browser();
        let login = |email: &str, password: &str| {
            let form = [("email", email.to_owned()), ("password", password.to_owned())];
            office.http.post(format!("{}/login", office.base)).header(ORIGIN, &office.base).form(&form).send()
        };
        let attempt = |email: &str, password: &str| {
            let sent = login(email, password);
            async move { sent.await.unwrap().status() }
        };
        // One person's five typos block their account, not the office's address.
        for _ in 0..5 {
            assert_eq!(attempt(&typist.email, "typo typo typo").await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(
            attempt(&typist.email, PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS,
            "the account waits"
        );
        assert_eq!(attempt(&colleague.email, PASSWORD).await, StatusCode::SEE_OTHER, "a colleague does not");

        // Guesses at other accounts from the address; a valid login in between does not reset its count.
        let free = orb_auth::ADDRESS_FREE_FAILURES;
        for n in 5..free - 1 {
            let r = attempt(&format!("guess{n}@alpha.example"), "guess").await;
            assert_eq!(r, StatusCode::UNAUTHORIZED, "guess {n}");
        }
        assert_eq!(attempt(&colleague.email, PASSWORD).await, StatusCode::SEE_OTHER);
        assert_eq!(attempt("last-guess@alpha.example", "guess").await, StatusCode::UNAUTHORIZED);
        // The address's free failures are used up: even a right password from it waits now.
        let r = login(&colleague.email, PASSWORD).await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "the success did not clear the address");
        let wait: i64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert_eq!(wait, 2, "the address's first back-off");
        let rows = site
            .store
            .search_audit(
                None,
                &AuditFilter {
                    action_prefix: Some("login.blocked".into()),
                    limit: 100,
                    ..AuditFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(rows.iter().filter(|e| e.target == "address").count(), 1, "{rows:?}");

        // After the block and a quiet window the address's failures are forgotten: one more failure is
        // the first again (free), not the 26th.
        site.clock.advance(Duration::seconds(wait) + orb_auth::ADDRESS_FORGET_AFTER);
        assert_eq!(attempt("again@alpha.example", "guess").await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            attempt(&colleague.email, PASSWORD).await,
            StatusCode::SEE_OTHER,
            "forgotten, not blocked"
        );
    }
}

#[tokio::test]
async fn audit_rows_held_deletions_and_the_account_page_show_the_tenant_s_zone_or_say_utc() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let s = site.seed(a, 1).await;
        site.backend.set_policy(a, |p| p.zone = chrono_tz::Europe::Amsterdam);
        site.backend.held.lock().unwrap().push(HeldDeletion {
            room_id: s.room,
            mailbox: "room1@t1.example".into(),
            count: 7,
            held_at: site.now(),
        });
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let operator = site.user(None, "op@orb.example", Role::Operator).await;
        let mut b = site.login(&admin).await;
        // 09:00 UTC is 10:00 in Amsterdam (December).
        let (utc, local) = ("2026-12-01 09:00:00", "2026-12-01 10:00:00");
        let audit = b.get("/t/alpha/audit").await.text().await.unwrap();
        assert!(audit.contains("<th>When (Europe/Amsterdam)</th>"), "{audit}");
        let filtered = b.get("/t/alpha/audit?actor=system&from=2026-12-01").await.text().await.unwrap();
        for field in [r#"name="actor" value="system""#, r#"name="from" value="2026-12-01""#] {
            assert!(filtered.contains(field), "the filter form keeps {field}: {filtered}");
        }
        assert!(audit.contains(&format!("<td>{local}</td>")) && !audit.contains(utc), "{audit}");
        let failures = b.get("/t/alpha/failures").await.text().await.unwrap();
        let held = &failures[failures.find("id=\"held\"").expect("the held table")..];
        assert!(held.contains(&format!("<td>{local}</td>")) && !held.contains("UTC"), "{held}");
        let account = b.get("/account").await.text().await.unwrap();
        assert!(account.contains("Times in Europe/Amsterdam."), "{account}");
        assert!(account.contains(&format!("<td>{local}</td>")) && !account.contains(utc), "{account}");
        // The export and the API stay in UTC.
        let csv = b.get("/t/alpha/audit/export?format=csv").await.text().await.unwrap();
        assert!(csv.contains(utc), "{csv}");
        // An operator has no tenant: UTC, and the page says so.
        let mut o = site.login(&operator).await;
        let account = o.get("/account").await.text().await.unwrap();
        assert!(account.contains("Times in UTC."), "{account}");
        assert!(account.contains(&format!("<td>{utc}</td>")), "{account}");
    }
}

#[tokio::test]
async fn the_second_factor_field_takes_letters_for_recovery_codes_on_phones_too() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.browser();
        b.post("/login", &[("email", &admin.email), ("password", PASSWORD)]).await;
        let page = b.get("/login/second-factor").await.text().await.unwrap();
        let at = page.find("name=\"code\"").expect("the code field");
        let field = &page[page[..at].rfind('<').unwrap()..at + page[at..].find('>').unwrap()];
        assert!(field.contains("autocomplete=\"one-time-code\""), "{field}");
        // A numeric keypad has no letters; recovery codes have them.
        assert!(!field.contains("inputmode=\"numeric\""), "{field}");
        assert!(field.contains("inputmode=\"text\""), "{field}");
    }
}

#[tokio::test]
async fn a_tenant_admin_cannot_demote_or_disable_the_tenant_s_last_enabled_admin() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let mut b = site.login(&admin).await;
        let id_of = |email: &'static str| {
            let store = site.store.clone();
            async move { store.user_by_email(&EmailAddress::parse(email).unwrap()).await.unwrap() }
        };
        let me = id_of("admin@alpha.example").await.id.0;
        let last = "admin@alpha.example is the tenant's last enabled administrator; make another user \
                    tenant-admin first";
        // The page: demoting oneself, the only admin, is refused, saying why; nothing changes.
        let r = b.post(&format!("/t/alpha/users/{me}/role"), &[("role", "tenant-viewer")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let page = r.text().await.unwrap();
        assert!(page.contains(&last.replace('\'', "&#39;")), "{page}");
        // The API: the same.
        let token = api_token(&mut b, "write").await;
        let api = reqwest::Client::new();
        let r = api
            .post(format!("{}/api/v1/tenants/alpha/users/{me}/role", site.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({"role": "tenant-viewer"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], last);
        assert_eq!(id_of("admin@alpha.example").await.role, Role::TenantAdmin);
        assert_eq!(site.audit_count(a, "user.role").await, 0);

        // With a second enabled admin either may be demoted or disabled, until one is left.
        site.user(Some(a), "second@alpha.example", Role::TenantAdmin).await;
        let second = id_of("second@alpha.example").await.id.0;
        let r = b.post(&format!("/t/alpha/users/{second}/disable"), &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "another admin stays");
        let r = b.post(&format!("/t/alpha/users/{me}/role"), &[("role", "tenant-viewer")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a disabled admin does not count");
        let r = b.post(&format!("/t/alpha/users/{second}/enable"), &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = b.post(&format!("/t/alpha/users/{second}/role"), &[("role", "tenant-viewer")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "demoting the other admin leaves this one");
        assert_eq!(id_of("second@alpha.example").await.role, Role::TenantViewer);
        let r = b.post(&format!("/t/alpha/users/{me}/role"), &[("role", "tenant-viewer")]).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "and that one is the last again");
        assert_eq!(id_of("admin@alpha.example").await.role, Role::TenantAdmin);
    }
}

#[tokio::test]
async fn the_session_list_shows_no_timed_out_session_and_ends_them() {
    for site in Site::every(demo_config).await {
        let a = site.tenant("alpha").await;
        let admin = site.user(Some(a), "admin@alpha.example", Role::TenantAdmin).await;
        let user = site.store.user_by_email(&EmailAddress::parse(&admin.email).unwrap()).await.unwrap().id;
        let _old = site.login(&admin).await;
        site.clock.advance(Duration::minutes(20));
        let mut b = site.login(&admin).await;
        assert_eq!(site.store.list_sessions(user).await.unwrap().len(), 2);
        // The first session has been idle 35 minutes (the timeout is 30), the second 15.
        site.clock.advance(Duration::minutes(15));
        let page = b.get("/account").await.text().await.unwrap();
        let sessions =
            &page[page.find("<h2>Sessions</h2>").unwrap()..page.find("<h2>API tokens</h2>").unwrap()];
        assert_eq!(sessions.matches("/revoke\"").count(), 1, "only the live session is listed: {sessions}");
        assert!(sessions.contains("this one"), "{sessions}");
        let left = site.store.list_sessions(user).await.unwrap();
        assert_eq!(left.len(), 1, "the timed-out session was ended: {left:?}");
    }
}
