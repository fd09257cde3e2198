//! The world of `orb serve` tests: the Graph and TOPdesk emulators in the test process, and one ORB
//! installation (data dir, master key, database) configured through the CLI, whose `orb serve` runs as a
//! real child process.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, DurationRound, Utc};
use orb_core::{Clock, RoomMailbox, SystemClock, TopdeskLocationId};
use orb_emulators::graph::{GraphEmulator, RoomInfo, Served};
use orb_emulators::topdesk::{DoubleBooking, ServedEmulator, TopdeskEmulator};
use orb_testkit::check_convergence;
use orb_topdesk::wire::CreateReservationDto;
use orb_topdesk::{PersonId, ReservationId, TopdeskClient, TopdeskConfig};
use secrecy::SecretString;
use serde_json::{Value, json};

pub mod burst;
pub mod chaos;
pub mod ews_site;

pub const TENANT: &str = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d";
pub const CLIENT_ID: &str = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
pub const CLIENT_SECRET: &str = "serve-test-graph-secret";
pub const TD_LOGIN: &str = "orb-api";
pub const TD_PASSWORD: &str = "serve-test-topdesk-password";
pub const ANNA: &str = "anna@contoso.com";
pub const ROOMS: &[&str] = &["room1@contoso.com", "room2@contoso.com", "room3@contoso.com"];

/// How ORB proves itself to Graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphCredential {
    /// The client secret (the emulator's app knows only it).
    Secret,
    /// A certificate (the emulator's app knows only it): `graph.certificate`, no client secret at all.
    Certificate,
}

/// Which database the installation uses.
pub enum Db {
    Sqlite,
    Postgres(String),
}

impl Db {
    /// The database's name in figures.
    pub fn name(&self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres(_) => "PostgreSQL",
        }
    }
}

/// A tiny deterministic generator (the seed is printed, so a failure can be replayed).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }

    pub fn pick(&mut self, len: usize) -> usize {
        self.next(len as u64) as usize
    }
}

pub fn databases() -> Vec<Db> {
    // The same PostgreSQL URL (and the same "never skipped under CI" rule) as every crate's store tests.
    let mut dbs = vec![Db::Sqlite];
    dbs.extend(orb_testkit::stores::postgres_url().map(Db::Postgres));
    dbs
}

pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A running `orb serve` child process; killed when dropped, so a failing test leaves no process behind.
pub struct Orb(pub Child);

impl std::ops::Deref for Orb {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Orb {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Orb {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Emulators plus one ORB installation (a data dir, a master key, a database) configured through the CLI.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub vars: Vec<(String, String)>,
    pub graph_em: GraphEmulator,
    pub graph: Served,
    pub td: ServedEmulator,
    pub topdesk: TopdeskClient,
    pub anna: PersonId,
    pub rooms: Vec<(RoomMailbox, TopdeskLocationId)>,
    pub http: reqwest::Client,
    pub log: PathBuf,
    /// The `graph.certificate` PEM bundle, when the site uses a certificate.
    pub certificate_pem: Option<String>,
}

impl Drop for Site {
    fn drop(&mut self) {
        // Every end-to-end test (the chaos test's edits, serve, demo) proves the privacy promise on the way
        // out: no Graph read ORB made could have returned a meeting's body or listed meetings other than
        // the booking's own.
        if !std::thread::panicking() {
            let findings = self.graph_em.privacy_findings();
            assert!(findings.is_empty(), "Graph reads broke the privacy promise:\n{}", findings.join("\n"));
        }
    }
}

impl Site {
    pub async fn new(db: &Db, instance: &str) -> Self {
        Self::new_with(db, instance, GraphCredential::Secret).await
    }

    pub async fn new_with(db: &Db, instance: &str, credential: GraphCredential) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let graph_em = GraphEmulator::new(clock.clone());
        let certificate_pem = match credential {
            GraphCredential::Secret => {
                graph_em.add_app_secret(TENANT, CLIENT_ID, CLIENT_SECRET);
                None
            }
            GraphCredential::Certificate => {
                let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
                let cert = rcgen::CertificateParams::new(vec!["orb.test".to_owned()])
                    .unwrap()
                    .self_signed(&key)
                    .unwrap();
                graph_em.add_app_certificate(TENANT, CLIENT_ID, cert.der());
                Some(format!("{}{}", key.serialize_pem(), cert.pem()))
            }
        };
        graph_em.add_user(TENANT, ANNA, "Anna Bakker");
        graph_em.add_user(TENANT, "orb@contoso.com", "ORB");
        for (i, room) in ROOMS.iter().enumerate() {
            graph_em.add_room(TENANT, room, &format!("Room {}", i + 1), RoomInfo::default());
        }
        let graph = orb_emulators::graph::serve(graph_em.clone()).await.unwrap();
        let td_em = TopdeskEmulator::new(clock.clone());
        td_em.add_account(TD_LOGIN, TD_PASSWORD);
        let anna = td_em.add_person("Anna", "Bakker", Some(ANNA));
        td_em.add_cancellation_reason("No longer needed", true);
        let rooms: Vec<_> = ROOMS
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let loc = td_em.add_room(&format!("Room {}", i + 1), 0, DoubleBooking::Refuse);
                (RoomMailbox::parse(r).unwrap(), loc)
            })
            .collect();
        let td = td_em.serve().await.unwrap();
        let mut config = TopdeskConfig::new(
            url::Url::parse(&td.base_url).unwrap(),
            TD_LOGIN,
            SecretString::from(TD_PASSWORD),
            clock,
        );
        config.retry.max_retries = 5;
        let topdesk = TopdeskClient::new(config).unwrap();

        let dir = tempfile::tempdir().unwrap();
        let port = orb_testkit::free_port();
        let db_url = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("orb.db").display()),
            Db::Postgres(url) => {
                let name = format!("orb_serve_{}", unique());
                let admin = sqlx::PgPool::connect(url).await.expect("PostgreSQL reachable");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                let (base, _) = url.rsplit_once('/').expect("a URL with a database name");
                format!("{base}/{name}")
            }
        };
        let vars = vec![
            ("ORB__DATA__DIR".to_owned(), dir.path().join("data").display().to_string()),
            ("ORB__DATABASE__URL".to_owned(), db_url),
            ("ORB__SERVER__LISTEN".to_owned(), format!("127.0.0.1:{port}")),
            ("ORB__SERVER__PUBLIC_URL".to_owned(), format!("http://127.0.0.1:{port}")),
            ("ORB__GRAPH__CUSTOM_CLOUD_ROOT".to_owned(), graph.base_url.clone()),
            // The TOPdesk emulator is on http://127.0.0.1: this installation allows exactly that.
            ("ORB__TOPDESK__ALLOW_HTTP".to_owned(), "true".to_owned()),
            ("ORB__TOPDESK__ALLOW_CIDRS".to_owned(), "127.0.0.0/8".to_owned()),
            ("ORB__SERVER__INSTANCE".to_owned(), instance.to_owned()),
            ("ORB__SCHEDULE__NEAR_POLL_SECONDS".to_owned(), "1".to_owned()),
            ("ORB__SCHEDULE__SUBSCRIPTIONS_SECONDS".to_owned(), "1".to_owned()),
            ("ORB__SCHEDULE__RECONCILE_SECONDS".to_owned(), "3".to_owned()),
            ("ORB__SCHEDULE__RELOAD_SECONDS".to_owned(), "1".to_owned()),
            // A dead instance's jobs wait this long for another instance.
            ("ORB__SERVER__JOB_LEASE_SECONDS".to_owned(), "10".to_owned()),
            ("ORB__LOG__LEVEL".to_owned(), "info".to_owned()),
        ];
        let log = dir.path().join("serve.log");
        let http = reqwest::Client::new();
        let mut site =
            Self { dir, vars, graph_em, graph, td, topdesk, anna, rooms, http, log, certificate_pem };
        let key = site.dir.path().join("master.key");
        site.ok(&["keys", "generate", "--out", key.to_str().unwrap()], None);
        site.vars.push(("ORB_MASTER_KEY_FILE".into(), key.display().to_string()));
        site.configure();
        site
    }

    pub fn base(&self) -> String {
        let listen = &self.vars.iter().find(|(k, _)| k == "ORB__SERVER__LISTEN").unwrap().1;
        format!("http://{listen}")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orb"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "orb {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Tenant, settings, secrets and the first two rooms, as an operator would.
    pub fn configure(&self) {
        self.ok(&["tenant", "add", "contoso"], None);
        let out = self.tenant_settings("");
        assert!(out.contains("still needed: the secret graph.client_secret"), "{out}");
        match &self.certificate_pem {
            None => {
                self.ok(&["secret", "set", "--tenant", "contoso", "graph.client_secret"], Some(CLIENT_SECRET))
            }
            Some(pem) => self.ok(&["secret", "set", "--tenant", "contoso", "graph.certificate"], Some(pem)),
        };
        self.ok(&["secret", "set", "--tenant", "contoso", "topdesk.app_password"], Some(TD_PASSWORD));
        for (mailbox, loc) in &self.rooms[..2] {
            self.add_room(mailbox, loc);
        }
    }

    /// Writes the tenant's settings (`orb tenant settings --file`): the Graph and TOPdesk sections every
    /// site needs, then `extra` (more TOML sections, e.g. `[portal]`); returns what the command printed.
    pub fn tenant_settings(&self, extra: &str) -> String {
        let settings = self.dir.path().join("contoso.toml");
        std::fs::write(
            &settings,
            format!(
                "[graph]\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT_ID}\"\nmail_sender = \
                 \"orb@contoso.com\"\ncloud = \"custom\"\n\n[topdesk]\nurl = \
                 \"{t}\"\nusername = \"{TD_LOGIN}\"\nlink_type = 7\n\n{extra}",
                t = self.td.base_url
            ),
        )
        .unwrap();
        self.ok(&["tenant", "settings", "--tenant", "contoso", "--file", settings.to_str().unwrap()], None)
    }

    /// Adds a portal user of tenant contoso with `orb user add --password-stdin` (`role`: `tenant-admin`
    /// or `tenant-viewer`); returns the password, a long random one. Given by the operator, it is not
    /// temporary: the tests log in with it as often as they need (a generated one must be replaced at
    /// the first login; crates/orb-web/tests/portal.rs and the CLI test cover that).
    pub fn add_user(&self, email: &str, role: &str) -> String {
        let password = format!("pw-{}", secrecy::ExposeSecret::expose_secret(&orb_auth::generate_password()));
        let args =
            ["user", "add", "--tenant", "contoso", "--email", email, "--role", role, "--password-stdin"];
        let out = self.ok(&args, Some(&password));
        assert!(out.contains(&format!("added portal user {email}")), "{out}");
        assert!(!out.contains(&password), "the CLI never prints a password it was given:\n{out}");
        password
    }

    /// Lets a browser use the portal of `orb serve` on http://127.0.0.1: the portal's origin (checked
    /// against `Origin` on every form post) is the plain-http base URL instead of `https://` + `Host`.
    /// The `__Host-orb_session` cookie (`Secure`) works as it is: Chromium treats http://127.0.0.1 as a
    /// potentially trustworthy origin.
    pub fn portal_for_browsers(&mut self) {
        let base = self.base();
        self.set_var("ORB__PORTAL__ORIGIN", &base);
    }

    pub fn add_room(&self, mailbox: &RoomMailbox, loc: &TopdeskLocationId) {
        self.ok(
            &[
                "room",
                "add",
                "--tenant",
                "contoso",
                "--mailbox",
                mailbox.as_str(),
                "--topdesk-location",
                loc.as_str(),
            ],
            None,
        );
    }

    pub fn spawn(&self) -> Orb {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        Orb(self.command(&["serve"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap())
    }

    /// A second `orb serve` of the same installation (same database and public URL, as behind a load
    /// balancer) listening on `port` under another instance name; its log goes to `log`.
    pub fn spawn_second(&self, port: u16, instance: &str, log: &std::path::Path) -> Orb {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        Orb(self
            .command(&["serve"])
            .env("ORB__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("ORB__SERVER__INSTANCE", instance)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn healthy(&self, child: &mut Child) {
        let url = format!("{}/healthz", self.base());
        let deadline = Instant::now() + StdDuration::from_secs(30);
        loop {
            // `/healthz` answers only `ok` (the listener opens after the engine is loaded); how many tenants
            // are synced is in the log.
            if let Ok(resp) = self.http.get(&url).send().await
                && resp.status().is_success()
                && resp.text().await.unwrap_or_default() == "ok"
                && self.log_text().contains("1 of 1 tenant(s) synced")
            {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("orb serve exited with {status}:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "orb serve did not become healthy:\n{}", self.log_text());
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    }

    pub async fn eventually<T>(&self, what: &str, secs: u64, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + StdDuration::from_secs(secs);
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; ORB's log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    }

    pub fn subscribed(&self, room: &str) -> bool {
        self.graph_em.subscriptions().iter().any(|s| s.resource.to_ascii_lowercase().contains(room))
    }

    /// Anna books `room` in Outlook; returns her event's id.
    pub async fn book(&self, room: &str, start: DateTime<Utc>, subject: &str) -> String {
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let resp = self
            .http
            .post(format!("{}/_emulator/book", self.graph.base_url))
            .json(&json!({"organizer": ANNA, "room": room, "subject": subject,
                "start": fmt(start), "end": fmt(start + Duration::hours(1))}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let event: Value = resp.json().await.unwrap();
        event["id"].as_str().unwrap().to_owned()
    }

    pub async fn retime(&self, id: &str, start: DateTime<Utc>) {
        let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let resp = self
            .http
            .patch(format!("{}/_emulator/mailboxes/{ANNA}/events/{id}", self.graph.base_url))
            .json(&json!({"start": {"dateTime": fmt(start), "timeZone": "UTC"},
                "end": {"dateTime": fmt(start + Duration::hours(1)), "timeZone": "UTC"}}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
    }

    pub async fn reserve(&self, room: usize, start: DateTime<Utc>) -> ReservationId {
        let mut create =
            CreateReservationDto::new(self.anna, &self.rooms[room].1, start, start + Duration::hours(1));
        create.brief_description = Some("Made in TOPdesk".into());
        self.topdesk.create_reservation(&create).await.unwrap().id.unwrap()
    }

    pub fn converged(&self) -> orb_testkit::Convergence {
        let now = Utc::now();
        check_convergence(
            &self.graph_em,
            &self.td.emulator,
            &self.rooms,
            (now - Duration::days(1), now + Duration::days(120)),
        )
    }
}

pub fn sigterm(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

pub async fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + StdDuration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "orb serve did not stop within {secs} s");
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// Tomorrow, 00:00 UTC.
pub fn tomorrow() -> DateTime<Utc> {
    (Utc::now() + Duration::days(1)).duration_trunc(Duration::days(1)).unwrap()
}

/// Helpers for the chaos and cost tests (`tests/chaos.rs`).
impl Site {
    /// Sets an `ORB__…` variable of the ORB process (replacing an earlier value); takes effect at `spawn`.
    pub fn set_var(&mut self, key: &str, value: &str) {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.to_owned(), value.to_owned()));
    }

    /// Maps the rooms `Site::new` left unmapped (room 3), so every room of [`ROOMS`] is synced.
    pub fn map_all_rooms(&self) {
        for (mailbox, loc) in &self.rooms[2..] {
            self.add_room(mailbox, loc);
        }
    }

    /// Anna cancels her meeting `id` in Outlook ("Cancel meeting": attendees and rooms are told).
    pub async fn cancel_meeting(&self, id: &str) {
        let resp = self
            .http
            .post(format!("{}/_emulator/mailboxes/{ANNA}/events/{id}/cancel", self.graph.base_url))
            .json(&json!({"comment": "No longer needed"}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "cancelling {id}: {}", resp.status());
    }

    /// Anna's live meeting in `room` starting at `start`, if her calendar shows one: its id.
    pub fn meeting_at(&self, room: &str, start: DateTime<Utc>) -> Option<String> {
        let events = self.graph_em.calendar_view(ANNA, start, start + Duration::minutes(1)).ok()?;
        events
            .into_iter()
            .filter(|e| e.is_cancelled != Some(true))
            .filter(|e| e.start.as_ref().and_then(|s| s.to_utc().ok()) == Some(start))
            .find(|e| {
                e.attendees
                    .iter()
                    .flatten()
                    .filter_map(|a| a.email_address.as_ref()?.address.as_deref())
                    .any(|address| address.eq_ignore_ascii_case(room))
            })
            .and_then(|e| e.id)
    }

    /// The active TOPdesk reservation of room `room` (index into `rooms`) starting at `start`, if any.
    pub fn reservation_at(&self, room: usize, start: DateTime<Utc>) -> Option<ReservationId> {
        let loc = self.rooms[room].1.clone();
        self.td.emulator.with_state(|s| {
            s.reservations
                .values()
                .find(|r| r.status.is_active() && r.start == start && r.rooms.iter().any(|(_, l)| *l == loc))
                .map(|r| r.id)
        })
    }

    /// The live reservations of the mapped rooms in `window`, each slot with how often it is held.
    pub fn topdesk_slots(
        &self,
        window: (DateTime<Utc>, DateTime<Utc>),
    ) -> std::collections::BTreeMap<orb_testkit::Slot, usize> {
        orb_testkit::topdesk_slots(&self.td.emulator, &self.rooms, window)
    }

    /// The database URL the ORB process uses.
    pub fn database_url(&self) -> String {
        self.vars.iter().find(|(k, _)| k == "ORB__DATABASE__URL").map(|(_, v)| v.clone()).unwrap()
    }

    /// ORB's database opened in this process, for read-only checks (only list calls, never migrations).
    pub async fn open_store(&self) -> Arc<dyn orb_store::Store> {
        let url = self.database_url();
        if url.starts_with("sqlite:") {
            Arc::new(orb_store::SqliteStore::connect(&url, 2).await.unwrap())
        } else {
            Arc::new(orb_store::PgStore::connect(&url, 2).await.unwrap())
        }
    }
}
