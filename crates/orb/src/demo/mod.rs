//! `orb demo`: ORB running for real against the Graph (or, with `--exchange ews`, the EWS) and TOPdesk
//! emulators, on embedded SQLite, with a believable organisation that keeps booking.
//!
//! The emulators run in this process on `127.0.0.1` ports of their own; [`outlook`] is the Exchange side
//! ([`graph`] or [`ews`]). [`org`] puts an organisation in
//! them (two buildings, twelve rooms, forty people, a secretary, meetings and reservations that exist
//! before ORB, weekly series among them), a demo tenant is configured against them (settings, sealed
//! secrets, the rooms mapped), and [`crate::serve::serve`] runs exactly as in production: webhook intake
//! on its own port, workers, schedulers, subscriptions with encrypted rich notifications, the portal and
//! the operator listener (`/metrics`). ORB's onboarding sweep pairs and copies what exists; then
//! [`simulate`] makes a change every `--pace` seconds and the terminal shows one line per change that
//! crossed ([`mod@line`]), until Ctrl-C or `--for SECONDS`, then a summary.
//!
//! The demo database (`<data.dir>/demo.db`) and log (`<data.dir>/demo.log`, unless `--verbose`) start
//! fresh on every run, since the emulators forget everything when the process ends.

mod ews;
mod graph;
mod line;
mod org;
mod outlook;
mod simulate;
mod slots;

pub use outlook::ExchangeKind;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use orb_core::{Clock, SystemClock, TenantName};
use orb_crypto::KeyRing;
use orb_crypto::secrecy::{ExposeSecret, SecretString};
use orb_emulators::graph::GraphEmulator;
use orb_emulators::topdesk::TopdeskEmulator;
use orb_engine::settings::{
    ClientTuning, SECRET_EWS_PASSWORD, SECRET_GRAPH_CLIENT_SECRET, SECRET_TOPDESK_PASSWORD, TenantSettings,
};
use orb_store::{NewAuditEntry, Store};
use orb_topdesk::{TopdeskClient, TopdeskConfig};
use tokio::sync::mpsc;

use crate::config::{Config, DatabaseUrl};
use crate::serve::{Bind, ServeOptions, serve};
use crate::{commands, secrets};

pub(crate) const ENTRA_TENANT: &str = "5f1c2a9e-7b3d-4e8f-9a6b-2c4d6e8f0a1b";
const CLIENT_ID: &str = "b7e2d4c6-1a3f-4b5d-8e9f-0a2b4c6d8e0f";
const CLIENT_SECRET: &str = "demo-graph-client-secret";
pub(crate) const TOPDESK_LOGIN: &str = "orb-api";
const TOPDESK_PASSWORD: &str = "demo-topdesk-application-password";
/// The TOPdesk desk operator's API login (not ORB's: the desk is a person).
const DESK_LOGIN: &str = "desk";
const DESK_PASSWORD: &str = "demo-desk-application-password";
const SENDER: &str = "orb@orb-demo.example";
/// The demo tenant's portal administrator.
const DEMO_ADMIN: &str = "admin@orb-demo.example";
/// How long ORB may take to onboard what exists before the simulation starts anyway.
const ONBOARDING_DEADLINE: StdDuration = StdDuration::from_secs(90);
/// How long the demo waits at the end for changes still on their way.
const DRAIN: StdDuration = StdDuration::from_secs(15);

/// `orb demo`'s flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the webhooks and the portal listen (default: a free port on 127.0.0.1).
    pub listen: Option<SocketAddr>,
    /// Stop this long after the simulation started (default: at Ctrl-C).
    pub run_for: Option<u64>,
    /// Seconds between two simulated changes.
    pub pace: f64,
    /// The simulation's seed (default: from the clock).
    pub seed: Option<u64>,
    /// Logs go to standard error instead of `<data.dir>/demo.log`.
    pub verbose: bool,
    /// Which Exchange people book in (`--exchange`).
    pub exchange: ExchangeKind,
}

/// The log file of a demo run in `data_dir` (`None` with `--verbose`: logs go to standard error).
pub(crate) fn log_file(data_dir: &std::path::Path, verbose: bool) -> Option<PathBuf> {
    (!verbose).then(|| data_dir.join("demo.log"))
}

/// Reads `--pace`: seconds between changes, a positive number up to an hour (fractions allowed).
pub(crate) fn parse_pace(text: &str) -> Result<f64, String> {
    let pace: f64 =
        text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds, e.g. 4 or 0.5"))?;
    if !(pace.is_finite() && (0.05..=3600.0).contains(&pace)) {
        return Err(format!("--pace must be between 0.05 and 3600 seconds, not {text}"));
    }
    Ok(pace)
}

/// Runs the demo (see the module docs).
pub async fn demo(config: &Config, options: Options) -> Result<()> {
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
    config.observability.listen = Some(metrics_address(config.observability.listen)?);
    let store = commands::open_store(&config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let seed = options
        .seed
        .unwrap_or_else(|| u64::try_from(Utc::now().timestamp_micros()).unwrap_or_default() % 1_000_000);
    let mut rng = slots::Rng::new(seed);

    // The emulators and the demo tenant, configured like a customer would.
    let td_em = TopdeskEmulator::new(clock.clone());
    register_topdesk(&td_em);
    td_em.add_account(DESK_LOGIN, DESK_PASSWORD);
    let exchange = outlook::Outlook::start(options.exchange, clock.clone()).await?;
    let topdesk = td_em.clone().serve().await.context("starting the TOPdesk emulator")?;
    let now = Utc::now();
    let tenant = match &exchange {
        outlook::Outlook::Graph(_) => configure_tenant(&*store, &key, "demo", &topdesk.base_url, now).await?,
        outlook::Outlook::Ews(e) => {
            let section = format!(
                "[exchange]\nkind = \"ews\"\n\n[ews]\nurl = \"{}\"\nusername = \"{}\"\nauth = \"basic\"\n\
                 mail_sender = \"{SENDER}\"\n",
                e.ews_url(),
                ews::SERVICE_ACCOUNT
            );
            let secrets = [(SECRET_EWS_PASSWORD, ews::SERVICE_PASSWORD)];
            configure_tenant_with(&*store, &key, "demo", &topdesk.base_url, &section, &secrets, now).await?
        }
    };
    let org = org::build(&exchange, &td_em, &*store, tenant.id, now).await?;
    let desk = TopdeskClient::new(TopdeskConfig::new(
        url::Url::parse(&topdesk.base_url)?,
        DESK_LOGIN,
        SecretString::from(DESK_PASSWORD),
        Arc::new(SystemClock),
    ))?;
    let sides = org::Sides {
        outlook: exchange.clone(),
        td_em: td_em.clone(),
        desk: Arc::new(desk),
        org: Arc::new(org),
    };
    let seeded = org::seed(&sides, &mut rng, now).await?;

    // ORB's web server on a port of its own; Graph posts notifications there.
    let listen = options.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (--listen)"))?;
    // Plain http is fine for a browser only on a loopback address; elsewhere the portal's cookie is
    // `Secure` and needs https in front (a reverse proxy), as in production.
    let plain_http_portal = listen.ip().is_loopback();
    let public_url = format!("http://{}", listener.local_addr()?);
    match &exchange {
        outlook::Outlook::Graph(g) => use_emulators(&mut config, &g.served.base_url, &public_url)?,
        outlook::Outlook::Ews(_) => use_topdesk_emulator(&mut config, &public_url)?,
    }
    config.schedule.near_poll_seconds = 2;
    config.schedule.horizon_poll_seconds = 5;
    config.schedule.subscriptions_seconds = 30;

    let admin_password = add_admin(&*store, tenant.id, now).await?;
    let org = sides.org.clone();
    out!("{}", exchange.title());
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
    if let Some(addr) = config.observability.listen {
        out!("  metrics        http://{addr}/metrics   (Prometheus; also /healthz and /readyz)");
    }
    match log_file(&config.data.dir, options.verbose) {
        Some(path) => {
            out!("  log            {}   (fresh on every run; --verbose logs here instead)", path.display())
        }
        None => out!("  log            standard error (--verbose)"),
    }
    out!(
        "  pace           a change every {} s, seed {seed} (orb demo --seed {seed} makes the same choices)",
        options.pace
    );
    out!(
        "  organisation   2 buildings (Amsterdam, Utrecht), {} rooms, {} people; {} books for {} and {}",
        org.rooms.len(),
        org.people.len(),
        org.secretary().short,
        org.people[org.directors()[0]].short,
        org.people[org.directors()[1]].short
    );
    out!("  database       {} (fresh on every run)", config.database.url.redacted());
    out!("  master key     {} ({key_origin})", key.id());
    out!("  ORB webhooks   {public_url}{}   health: {public_url}/healthz", exchange.hook_path());
    out!("{}", exchange.header_line());
    out!("  TOPdesk        {}  (control API: {}/_emulator/)", topdesk.base_url, topdesk.base_url);
    out!();

    let stop = tokio_util::sync::CancellationToken::new();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let server = {
        let (config, store, stop) = (config.clone(), store.clone(), stop.clone());
        let mut options = ServeOptions {
            worker_idle_max: StdDuration::from_millis(300),
            plain_http_portal,
            ..ServeOptions::default()
        };
        if matches!(exchange, outlook::Outlook::Ews(_)) {
            // The EWS emulator speaks plain http on 127.0.0.1 (a real Exchange Server: https only).
            options.tuning = ClientTuning { ews_allow_plain_http: true, ..ClientTuning::default() };
        }
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

    let outcome = run(&sides, &seeded, rng, options.pace, options.run_for).await;
    if let Err(e) = &outcome {
        out!("the demo stopped: {e:#}");
    }
    stop.cancel();
    server.await.context("the server task failed")??;
    drop((exchange, topdesk));
    outcome
}

/// The operator listener's address: the configured one, with a free port picked when it names none
/// (`:0`), or a free port on 127.0.0.1 when none is configured (so the demo always shows its metrics).
fn metrics_address(configured: Option<SocketAddr>) -> Result<SocketAddr> {
    let wanted = configured.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    if wanted.port() != 0 {
        return Ok(wanted);
    }
    let probe = std::net::TcpListener::bind(wanted)
        .with_context(|| format!("cannot find a free port for the metrics on {}", wanted.ip()))?;
    Ok(probe.local_addr()?)
}

/// The demo tenant's administrator with a one-time password (printed; the second factor is enrolled at
/// the first login).
async fn add_admin(
    store: &dyn Store,
    tenant: orb_core::TenantId,
    now: DateTime<Utc>,
) -> Result<SecretString> {
    let admin_password = orb_auth::generate_password();
    let admin = orb_store::NewUser {
        tenant_id: Some(tenant),
        email: orb_core::EmailAddress::parse(DEMO_ADMIN)?,
        role: orb_store::Role::TenantAdmin,
        password_hash: Some(orb_auth::hash_password(&admin_password).map_err(|e| anyhow::anyhow!("{e}"))?),
        // The demo prints its credentials to whoever runs it; asking them to choose a password first
        // would only stand between them and the portal.
        password_temporary: false,
    };
    let audit = NewAuditEntry {
        tenant_id: Some(tenant),
        at: now,
        actor: "demo".into(),
        action: "user.add".into(),
        target: DEMO_ADMIN.into(),
        ip: None,
    };
    store.create_user(&admin, &audit, now).await?;
    Ok(admin_password)
}

/// Completes at Ctrl-C (`true`: ORB is stopping too), or after `run_for` seconds (`false`).
async fn stopped(run_for: Option<u64>) -> bool {
    let timer = async {
        match run_for {
            Some(secs) => tokio::time::sleep(StdDuration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => true,
        () = timer => false,
    }
}

/// Waits for the onboarding, then simulates until stopped, printing each change's line and the summary.
async fn run(
    sides: &org::Sides,
    seeded: &org::Seeded,
    rng: slots::Rng,
    pace: f64,
    run_for: Option<u64>,
) -> Result<()> {
    let rooms = sides.org.rooms.len();
    let began = tokio::time::Instant::now();
    let subscribed = poll_until(ONBOARDING_DEADLINE, || sides.outlook.subscriptions() >= rooms).await;
    if !subscribed {
        bail!(
            "ORB did not subscribe to the {rooms} room mailboxes within {} s: see the log",
            ONBOARDING_DEADLINE.as_secs()
        );
    }
    let total = seeded.outlook.len() + seeded.series.len() + seeded.topdesk.len() + seeded.both.len();
    let onboarded = || {
        let to_topdesk = seeded
            .outlook
            .iter()
            .chain(&seeded.series)
            .filter(|b| sides.reservation_at(b.room, b.start, b.end).is_some())
            .count();
        let to_outlook = seeded.topdesk.iter().filter(|b| sides.room_has(b.room, b.start, b.end)).count();
        let paired = seeded
            .both
            .iter()
            .filter(|b| {
                let reservations = sides.live_reservations(&sides.org.rooms[b.room].location);
                let in_topdesk = reservations.iter().filter(|r| r.0 == b.start && r.1 == b.end).count();
                let in_outlook = sides
                    .room_calendar(b.room, b.start, b.end)
                    .iter()
                    .filter(|m| **m == (b.start, b.end))
                    .count();
                in_topdesk == 1 && in_outlook == 1
            })
            .count();
        to_topdesk + to_outlook + paired
    };
    let all_there = poll_until(ONBOARDING_DEADLINE, || onboarded() == total).await;
    let took = began.elapsed().as_secs_f64();
    out!(
        "Onboarding: {} Outlook meetings, {} weekly series, {} desk reservations and {} meetings on both \
         sides existed before ORB;",
        seeded.outlook.len(),
        seeded.series.len(),
        seeded.topdesk.len(),
        seeded.both.len()
    );
    if all_there {
        out!("            ORB copied or paired them all in {took:.1} s (the paired ones are not doubled).");
    } else {
        out!(
            "            after {took:.0} s {} of {total} are on both sides; the simulation starts anyway (see the log).",
            onboarded()
        );
    }
    out!();
    out!(
        "time      direction          what       room                when             who               took"
    );

    let mut existing = seeded.outlook.clone();
    existing.extend(seeded.topdesk.iter().cloned());
    existing.extend(seeded.both.iter().cloned());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sim = simulate::Simulation::new(sides.clone(), rng, existing, tx);
    let mut tally = line::Tally::default();
    let mut in_flight = 0usize;
    let mut tick = tokio::time::interval(StdDuration::from_secs_f64(pace));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = stopped(run_for);
    tokio::pin!(stop);
    let interrupted = loop {
        tokio::select! {
            interrupted = &mut stop => break interrupted,
            _ = tick.tick() => match sim.step().await {
                Ok(true) => {
                    tally.made += 1;
                    in_flight += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    let at = Utc::now().with_timezone(&org::ZONE).format("%H:%M:%S");
                    out!("{at}  (a change could not be made: {e:#})");
                }
            },
            Some(done) = rx.recv() => {
                in_flight -= 1;
                report(&mut sim, &mut tally, &done)?;
            }
        }
    };
    // The changes still on their way get a little time to arrive (not after Ctrl-C: ORB stops with it).
    let drain = tokio::time::sleep(if interrupted { StdDuration::ZERO } else { DRAIN });
    tokio::pin!(drain);
    while in_flight > 0 {
        tokio::select! {
            () = &mut drain => break,
            Some(done) = rx.recv() => {
                in_flight -= 1;
                report(&mut sim, &mut tally, &done)?;
            }
        }
    }
    out!();
    for summary_line in tally.summary(in_flight) {
        out!("{summary_line}");
    }
    if let Some(own) = sides.outlook.summary_line() {
        out!("{own}");
    }
    Ok(())
}

fn report(sim: &mut simulate::Simulation, tally: &mut line::Tally, done: &simulate::Done) -> Result<()> {
    sim.settle(done);
    tally.record(done.change.direction, done.arrival);
    out!("{}", line::line(done.seen_at, &done.change, done.arrival, org::ZONE));
    Ok(())
}

/// Polls `check` every 100 ms until it holds (`true`) or `deadline` passes (`false`).
async fn poll_until(deadline: StdDuration, mut check: impl FnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

/// Registers ORB's app (client secret) and mail sender in the Graph emulator, and its API account and a
/// default cancellation reason in the TOPdesk emulator (shared with `orb bench`).
pub(crate) fn register_orb(graph_em: &GraphEmulator, td_em: &TopdeskEmulator) {
    graph::register_app(graph_em);
    register_topdesk(td_em);
}

/// Registers ORB's API account and a default cancellation reason in the TOPdesk emulator.
fn register_topdesk(td_em: &TopdeskEmulator) {
    td_em.add_account(TOPDESK_LOGIN, TOPDESK_PASSWORD);
    td_em.add_cancellation_reason("No longer needed", true);
}

/// Points `config` at in-process emulators: ORB's webhooks under `public_url`, the Graph emulator as the
/// installation's custom cloud (endpoints are never tenant settings), and TOPdesk on http://127.0.0.1
/// allowed (exactly what the emulator needs).
pub(crate) fn use_emulators(config: &mut Config, graph_base_url: &str, public_url: &str) -> Result<()> {
    use_topdesk_emulator(config, public_url)?;
    config.graph.custom_cloud_root = Some(url::Url::parse(graph_base_url)?);
    Ok(())
}

/// Points `config` at ORB's webhooks under `public_url` and allows TOPdesk on http://127.0.0.1.
fn use_topdesk_emulator(config: &mut Config, public_url: &str) -> Result<()> {
    config.server.public_url = Some(public_url.to_owned());
    config.server.portal_url = public_url.to_owned();
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
    let graph = format!(
        r#"
[graph]
tenant_id = "{ENTRA_TENANT}"
client_id = "{CLIENT_ID}"
mail_sender = "{SENDER}"
cloud = "custom"
"#
    );
    let secrets = [(SECRET_GRAPH_CLIENT_SECRET, CLIENT_SECRET)];
    configure_tenant_with(store, key, name, topdesk_base_url, &graph, &secrets, now).await
}

/// [`configure_tenant`] with the Exchange side's settings (`exchange`: TOML sections) and secrets.
async fn configure_tenant_with(
    store: &dyn Store,
    key: &orb_crypto::MasterKey,
    name: &str,
    topdesk_base_url: &str,
    exchange: &str,
    exchange_secrets: &[(&str, &str)],
    now: DateTime<Utc>,
) -> Result<orb_store::Tenant> {
    let tenant = store.create_tenant(&TenantName::parse(name)?, now).await?;
    let settings = TenantSettings::from_toml(&format!(
        r#"{exchange}
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
        exchange_secrets.iter().copied().chain([(SECRET_TOPDESK_PASSWORD, TOPDESK_PASSWORD)])
    {
        secrets::set(store, key, tenant.id, secret, &SecretString::from(value), now).await?;
    }
    Ok(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<f64, &str>) {
        assert_eq!(parse_pace(input), expected.map_err(str::to_owned), "{input}");
    }

    #[test]
    fn pace_takes_fractions_and_refuses_nonsense() {
        check("4", Ok(4.0));
        check("0.5", Ok(0.5));
        check(" 2.25 ", Ok(2.25));
        check("0", Err("--pace must be between 0.05 and 3600 seconds, not 0"));
        check("-1", Err("--pace must be between 0.05 and 3600 seconds, not -1"));
        check("NaN", Err("--pace must be between 0.05 and 3600 seconds, not NaN"));
        check("fast", Err("`fast` is not a number of seconds, e.g. 4 or 0.5"));
    }

    #[test]
    fn logs_go_to_the_data_directory_unless_verbose() {
        let dir = std::path::Path::new("/srv/orb");
        assert_eq!(log_file(dir, false), Some(PathBuf::from("/srv/orb/demo.log")));
        assert_eq!(log_file(dir, true), None);
    }

    #[test]
    fn the_metrics_address_always_has_a_port() {
        let chosen = metrics_address(None).unwrap();
        assert!(chosen.ip().is_loopback() && chosen.port() != 0, "{chosen}");
        let fixed = SocketAddr::from(([127, 0, 0, 1], 9464));
        assert_eq!(metrics_address(Some(fixed)).unwrap(), fixed);
    }
}
