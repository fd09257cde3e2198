//! `orb demo`: ORB running for real against the Graph and TOPdesk emulators, on embedded SQLite.
//!
//! The emulators run in this process on `127.0.0.1` ports of their own, a demo tenant is configured
//! against them (settings, sealed secrets, three rooms), and [`crate::serve::serve`] runs exactly as in
//! production: webhook intake on its own port, workers, schedulers, subscriptions with encrypted rich
//! notifications. A short script then acts as people in Outlook and TOPdesk and shows each change arrive
//! on the other side. Afterwards ORB keeps running (until Ctrl-C, or `--for SECONDS`) so you can make
//! your own changes through the emulators' control APIs.
//!
//! The demo database (`<data.dir>/demo.db`) starts fresh on every run, since the emulators forget
//! everything when the process ends.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use orb_core::{Clock, RoomMailbox, SystemClock, TenantName};
use orb_crypto::KeyRing;
use orb_crypto::secrecy::{ExposeSecret, SecretString};
use orb_emulators::graph::{GraphEmulator, RoomInfo};
use orb_emulators::topdesk::{DoubleBooking, TopdeskEmulator};
use orb_engine::settings::{SECRET_GRAPH_CLIENT_SECRET, SECRET_TOPDESK_PASSWORD, TenantSettings};
use orb_store::{NewAuditEntry, NewRoom, Store};
use orb_topdesk::{Reason, TopdeskClient, TopdeskConfig};
use serde_json::{Value, json};

use crate::config::{Config, DatabaseUrl};
use crate::serve::{Bind, ServeOptions, serve};
use crate::{commands, secrets};

pub(crate) const ENTRA_TENANT: &str = "5f1c2a9e-7b3d-4e8f-9a6b-2c4d6e8f0a1b";
const CLIENT_ID: &str = "b7e2d4c6-1a3f-4b5d-8e9f-0a2b4c6d8e0f";
const CLIENT_SECRET: &str = "demo-graph-client-secret";
pub(crate) const TOPDESK_LOGIN: &str = "orb-api";
const TOPDESK_PASSWORD: &str = "demo-topdesk-application-password";
const SENDER: &str = "orb@orb-demo.example";
const ANNA: &str = "anna@orb-demo.example";
const BOB: &str = "bob@orb-demo.example";
/// The demo tenant's portal administrator.
const DEMO_ADMIN: &str = "admin@orb-demo.example";
const ROOMS: &[(&str, &str)] = &[
    ("room-1.01@rooms.orb-demo.example", "Amsterdam 1.01 (6 seats)"),
    ("room-2.14@rooms.orb-demo.example", "Amsterdam 2.14 (12 seats)"),
    ("boardroom@rooms.orb-demo.example", "Boardroom (20 seats)"),
];
/// How long the script waits for one change to arrive on the other side.
const STEP_TIMEOUT: StdDuration = StdDuration::from_secs(60);

/// Runs the demo (see the module docs). `run_for`: seconds to keep running after the script (`None`:
/// until Ctrl-C).
pub async fn demo(config: &Config, run_for: Option<u64>, listen: Option<std::net::SocketAddr>) -> Result<()> {
    std::fs::create_dir_all(&config.data.dir)
        .with_context(|| format!("cannot create the data directory {}", config.data.dir.display()))?;
    let (key, key_origin) = commands::demo_key(config)?;
    let db = config.data.dir.join("demo.db");
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove the old {}", path.display()))?;
        }
    }
    let mut config = config.clone();
    config.database.url = DatabaseUrl::sqlite(&db);
    let store = commands::open_store(&config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    // The emulators.
    let graph_em = GraphEmulator::new(clock.clone());
    let td_em = TopdeskEmulator::new(clock.clone());
    register_orb(&graph_em, &td_em);
    graph_em.add_user(ENTRA_TENANT, ANNA, "Anna de Vries");
    graph_em.add_user(ENTRA_TENANT, BOB, "Bob Jansen");
    for (mailbox, name) in ROOMS {
        graph_em.add_room(ENTRA_TENANT, mailbox, name, RoomInfo::default());
    }
    let graph = orb_emulators::graph::serve(graph_em.clone()).await.context("starting the Graph emulator")?;
    td_em.add_person("Anna", "de Vries", Some(ANNA));
    let bob = td_em.add_person("Bob", "Jansen", Some(BOB));
    let mut locations = Vec::new();
    for (_, name) in ROOMS {
        locations.push(td_em.add_room(name, 0, DoubleBooking::Refuse));
    }
    let topdesk = td_em.clone().serve().await.context("starting the TOPdesk emulator")?;

    // ORB's web server on a port of its own; Graph posts notifications there.
    let listen = listen.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (--listen)"))?;
    // Plain http is fine for a browser only on a loopback address; elsewhere the portal's cookie is
    // `Secure` and needs https in front (a reverse proxy), as in production.
    let plain_http_portal = listen.ip().is_loopback();
    let public_url = format!("http://{}", listener.local_addr()?);
    use_emulators(&mut config, &graph.base_url, &public_url)?;
    config.schedule.near_poll_seconds = 2;
    config.schedule.subscriptions_seconds = 30;

    // The demo tenant, configured like a customer would.
    let now = Utc::now();
    let tenant = configure_tenant(&*store, &key, "demo", &topdesk.base_url, now).await?;
    for ((mailbox, name), location) in ROOMS.iter().zip(&locations) {
        let new = NewRoom {
            mailbox: RoomMailbox::parse(mailbox)?,
            topdesk_location_id: location.clone(),
            display_name: Some((*name).to_owned()),
        };
        store.add_room(tenant.id, &new, now).await?;
    }

    // The demo tenant's administrator: a one-time password; the second factor is enrolled at first login.
    let admin_password = orb_auth::generate_password();
    let admin = orb_store::NewUser {
        tenant_id: Some(tenant.id),
        email: orb_core::EmailAddress::parse(DEMO_ADMIN)?,
        role: orb_store::Role::TenantAdmin,
        password_hash: Some(orb_auth::hash_password(&admin_password).map_err(|e| anyhow::anyhow!("{e}"))?),
    };
    let audit = NewAuditEntry {
        tenant_id: Some(tenant.id),
        at: now,
        actor: "demo".into(),
        action: "user.add".into(),
        target: DEMO_ADMIN.into(),
        ip: None,
    };
    store.create_user(&admin, &audit, now).await?;

    out!("ORB demo: ORB running against the Graph and TOPdesk emulators");
    out!(
        "  portal         {public_url}/login   user {DEMO_ADMIN}   password {}",
        admin_password.expose_secret()
    );
    out!("                 (set up the second factor with an authenticator app at the first login)");
    if !plain_http_portal {
        out!(
            "                 note: on a non-loopback address browsers send the portal's cookie over https only"
        );
    }
    out!("  database       {} (fresh on every run)", config.database.url.redacted());
    out!("  master key     {} ({key_origin})", key.id());
    out!("  ORB webhooks   {public_url}/hooks/graph/demo   health: {public_url}/healthz");
    if let Some(addr) = config.observability.listen {
        out!("  operator       http://{addr}/metrics  /healthz  /readyz");
    }
    out!("  Graph          {}  (control API: {}/_emulator/)", graph.base_url, graph.base_url);
    out!("  TOPdesk        {}  (control API: {}/_emulator/)", topdesk.base_url, topdesk.base_url);
    out!();

    let stop = tokio_util::sync::CancellationToken::new();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let server = {
        let (config, store, stop) = (config.clone(), store.clone(), stop.clone());
        let options = ServeOptions {
            worker_idle_max: StdDuration::from_millis(300),
            plain_http_portal,
            ..ServeOptions::default()
        };
        tokio::spawn(async move {
            serve(
                &config,
                store,
                KeyRing::new(key),
                clock,
                options,
                async move { stop.cancelled().await },
                Bind { listener: Some(listener), bound: Some(bound_tx) },
            )
            .await
        })
    };
    let _ = bound_rx.await;

    let script = Script {
        http: reqwest::Client::new(),
        graph_url: graph.base_url.clone(),
        graph_em: graph_em.clone(),
        td_em: td_em.clone(),
        topdesk: TopdeskClient::new(TopdeskConfig::new(
            url::Url::parse(&topdesk.base_url)?,
            TOPDESK_LOGIN,
            SecretString::from(TOPDESK_PASSWORD),
            Arc::new(SystemClock),
        ))?,
    };
    let outcome = script.run(bob, &locations, &*store, tenant.id).await;
    if let Err(e) = &outcome {
        out!("the demo script stopped: {e:#}");
    } else {
        out!();
        out!("Your turn: book a room through the Graph emulator, e.g.");
        out!(
            "  curl -s -X POST {}/_emulator/book -H 'content-type: application/json' \\\n    -d \
             '{{\"organizer\":\"{ANNA}\",\"room\":\"{}\",\"subject\":\"Try-out\",\"start\":\"{}\",\"end\":\"{}\"}}'",
            graph.base_url,
            ROOMS[1].0,
            slot(2, 14).format("%Y-%m-%dT%H:%M:%S"),
            slot(2, 15).format("%Y-%m-%dT%H:%M:%S")
        );
        out!(
            "  then: curl -s -u {TOPDESK_LOGIN}:{TOPDESK_PASSWORD} '{}/tas/api/reservations?pageSize=10'",
            topdesk.base_url
        );
    }
    match run_for {
        Some(secs) => {
            tokio::time::sleep(StdDuration::from_secs(secs)).await;
            stop.cancel();
        }
        None => out!("ORB keeps running; press Ctrl-C to stop."),
    }
    server.await.context("the server task failed")??;
    drop((graph, topdesk));
    outcome
}

/// Registers ORB's app (client secret) and mail sender in the Graph emulator, and its API account and a
/// default cancellation reason in the TOPdesk emulator (shared with `orb bench`).
pub(crate) fn register_orb(graph_em: &GraphEmulator, td_em: &TopdeskEmulator) {
    graph_em.add_app_secret(ENTRA_TENANT, CLIENT_ID, CLIENT_SECRET);
    graph_em.add_user(ENTRA_TENANT, SENDER, "ORB");
    td_em.add_account(TOPDESK_LOGIN, TOPDESK_PASSWORD);
    td_em.add_cancellation_reason("No longer needed", true);
}

/// Points `config` at in-process emulators: ORB's webhooks under `public_url`, the Graph emulator as the
/// installation's custom cloud (endpoints are never tenant settings), and TOPdesk on http://127.0.0.1
/// allowed (exactly what the emulator needs).
pub(crate) fn use_emulators(config: &mut Config, graph_base_url: &str, public_url: &str) -> Result<()> {
    config.server.public_url = Some(public_url.to_owned());
    config.server.portal_url = public_url.to_owned();
    config.graph.custom_cloud_root = Some(url::Url::parse(graph_base_url)?);
    config.topdesk.addresses =
        orb_topdesk::AddressPolicy::new(orb_topdesk::AddressPolicy::parse_cidrs("127.0.0.0/8")?, true);
    Ok(())
}

/// Creates tenant `name` configured against the emulators as a customer would: its settings (the
/// emulators' app and account, zone Europe/Amsterdam) and its secrets sealed under `key`. Rooms are the
/// caller's.
pub(crate) async fn configure_tenant(
    store: &dyn Store,
    key: &orb_crypto::MasterKey,
    name: &str,
    topdesk_base_url: &str,
    now: DateTime<Utc>,
) -> Result<orb_store::Tenant> {
    let tenant = store.create_tenant(&TenantName::parse(name)?, now).await?;
    let settings = TenantSettings::from_toml(&format!(
        r#"
[graph]
tenant_id = "{ENTRA_TENANT}"
client_id = "{CLIENT_ID}"
mail_sender = "{SENDER}"
cloud = "custom"

[topdesk]
url = "{topdesk_base_url}"
username = "{TOPDESK_LOGIN}"
link_type = 1

[sync]
time_zone = "Europe/Amsterdam"
"#
    ))?;
    let audit = NewAuditEntry {
        tenant_id: Some(tenant.id),
        at: now,
        actor: "demo".into(),
        action: "tenant.settings".into(),
        target: name.to_owned(),
        ip: None,
    };
    store.put_tenant_settings(tenant.id, &settings.to_json(), Some(0), now, &audit).await?;
    for (secret, value) in
        [(SECRET_GRAPH_CLIENT_SECRET, CLIENT_SECRET), (SECRET_TOPDESK_PASSWORD, TOPDESK_PASSWORD)]
    {
        secrets::set(store, key, tenant.id, secret, &SecretString::from(value), now).await?;
    }
    Ok(tenant)
}

/// Today + `days` at `hour`:00 UTC.
fn slot(days: i64, hour: u32) -> DateTime<Utc> {
    let day = (Utc::now() + Duration::days(days)).date_naive();
    day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).expect("a valid hour")).and_utc()
}

struct Script {
    http: reqwest::Client,
    graph_url: String,
    graph_em: GraphEmulator,
    td_em: TopdeskEmulator,
    topdesk: TopdeskClient,
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(found) = check() {
            return Ok(found);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{what} did not happen within {} s", STEP_TIMEOUT.as_secs());
        }
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}

impl Script {
    async fn run(
        &self,
        bob: orb_topdesk::PersonId,
        locations: &[orb_core::TopdeskLocationId],
        store: &dyn Store,
        tenant: orb_core::TenantId,
    ) -> Result<()> {
        wait_for("the subscriptions of the three rooms", || {
            (self.graph_em.subscriptions().len() >= ROOMS.len()).then_some(())
        })
        .await?;
        out!("1. ORB subscribed to the {} room mailboxes (encrypted rich notifications).", ROOMS.len());

        // Outlook → TOPdesk.
        let (start, end) = (slot(1, 9), slot(1, 10));
        let resp = self
            .http
            .post(format!("{}/_emulator/book", self.graph_url))
            .json(&json!({"organizer": ANNA, "room": ROOMS[0].0, "subject": "Sprint planning",
                "start": start.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "end": end.format("%Y-%m-%dT%H:%M:%S").to_string()}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("booking in the Graph emulator failed: {}", resp.status());
        }
        let event: Value = resp.json().await?;
        let reservation = wait_for("the Outlook booking to reach TOPdesk", || {
            self.td_em.reservations().into_iter().find(|r| r.planned_start_date == Some(start))
        })
        .await?;
        out!(
            "2. Anna booked {} in Outlook for {start} → TOPdesk reservation {} ({:?}) appeared.",
            ROOMS[0].1,
            reservation.number.as_deref().unwrap_or("?"),
            reservation.brief_description.as_deref().unwrap_or_default()
        );

        // TOPdesk → Outlook.
        let mut create =
            orb_topdesk::wire::CreateReservationDto::new(bob, &locations[2], slot(1, 13), slot(1, 14));
        create.brief_description = Some("Board review".into());
        let made = self.topdesk.create_reservation(&create).await?;
        wait_for("the TOPdesk reservation to reach Bob's calendar", || {
            let events = self.graph_em.events(BOB).ok()?;
            events.into_iter().find(|e| e.subject.as_deref() == Some("Board review"))
        })
        .await?;
        out!(
            "3. Bob reserved the {} in TOPdesk ({}) → the meeting is in Bob's Outlook calendar, room invited.",
            ROOMS[2].1,
            made.number.as_deref().unwrap_or("?")
        );

        // A retime in Outlook.
        let id = event["id"].as_str().context("the booked event has no id")?;
        let (new_start, new_end) = (slot(1, 11), slot(1, 12));
        let resp = self
            .http
            .patch(format!("{}/_emulator/mailboxes/{ANNA}/events/{id}", self.graph_url))
            .json(&json!({
                "start": {"dateTime": new_start.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
                "end": {"dateTime": new_end.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": "UTC"},
            }))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("moving the meeting in the Graph emulator failed: {}", resp.status());
        }
        let number = reservation.number.clone();
        wait_for("the retime to reach TOPdesk", || {
            self.td_em
                .reservations()
                .into_iter()
                .find(|r| r.number == number && r.planned_start_date == Some(new_start))
        })
        .await?;
        out!("4. Anna moved her meeting to {new_start} in Outlook → the TOPdesk reservation moved along.");

        // A cancellation in TOPdesk.
        let made_id = made.id.context("TOPdesk gave the reservation no id")?;
        let _already = self.topdesk.cancel_reservation(made_id, &Reason::Default).await?;
        wait_for("the TOPdesk cancellation to reach Outlook", || {
            let events = self.graph_em.events(BOB).ok()?;
            let gone = events
                .iter()
                .all(|e| e.subject.as_deref() != Some("Board review") || e.is_cancelled == Some(true));
            gone.then_some(())
        })
        .await?;
        out!("5. The board review was cancelled in TOPdesk → the meeting was cancelled in Outlook.");
        let bookings = store
            .list_bookings(
                tenant,
                &orb_store::BookingFilter { include_cancelled: true, ..Default::default() },
            )
            .await?;
        out!("   ORB now holds {} booking records; every step is in each record's timeline.", bookings.len());
        Ok(())
    }
}
