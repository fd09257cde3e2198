//! `orb bench`: ORB's speed and memory, measured in one process against the Graph and TOPdesk emulators.
//!
//! The run, in order (progress goes to standard error; the table, then with `--json` one JSON object as the
//! last line, to standard output):
//! 1. **RSA-2048**: OAEP-SHA1 decryptions (the rich-notification key unwrap) on every core for 2 s, before
//!    anything else runs: the yardstick for the pipeline.
//! 2. **Idle memory**: a bulk tenant with `--rooms` rooms (in the store, in both emulators) and the engine
//!    loaded from the store (every tenant's runtime built); `VmRSS` then. No subscriptions, no bookings.
//! 3. **Backfill**: `--bookings` Outlook bookings in each bulk room, then what `orb backfill` does (a sweep
//!    of every room, workers until the queue is empty): seconds, writes per booking, CPU share.
//!    The bulk rooms are disabled afterwards so the live phase below does not serve them.
//! 4. **Live**: a second tenant with a few rooms, `orb serve` running in this process exactly as in
//!    production (encrypted rich notifications, workers, schedulers, the configuration's beats):
//!    the pipeline (many Outlook bookings at once, until every reservation is written and its record
//!    committed), the added latency (single Outlook changes until their TOPdesk write lands), TOPdesk →
//!    Outlook with push hints and with polling only, API calls per change from the emulators' request
//!    logs, and last the webhook acknowledgement under `--rate` notifications/s for `--seconds`.
//!
//! Every figure is measured in the run; one that cannot be is `null` in the JSON and "n/a (why)" in the
//! table. Nothing here asserts a speed: these machines are noisy, so figures are printed, not tested.
//!
//! Must not: touch a database that holds tenants (`--store postgres` refuses one), or keep running after
//! the figures are printed.

mod measure;
mod report;
mod site;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result, bail};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use orb_core::{Clock, SyncStatus, SystemClock, TenantId};
use orb_crypto::{KeyRing, MasterKey};
use orb_engine::reconcile::{SweepOptions, sweep_room_with};
use orb_engine::runtime::SyncDeps;
use orb_engine::worker::{Worker, WorkerOptions};
use orb_graph::model::{ChangeNotification, ChangeNotificationCollection, ChangeType, ResourceData};
use orb_store::{BookingFilter, NewAuditEntry, Store};
use tokio_util::sync::CancellationToken;

use self::measure::{AckRun, cores, cpu_seconds, percentile, rss_mb};
pub(crate) use self::report::Figures;
use self::site::{BenchTenant, Site, Slots};
use crate::config::{Backend, Config, DatabaseUrl};
use crate::serve::{Bind, Env, ServeOptions, load, serve};

/// Rooms of the live tenant (each room's work runs in its own lane).
const LIVE_ROOMS: usize = 8;
/// Outlook bookings made at once for the pipeline figure.
const PIPELINE_BOOKINGS: usize = 160;
/// Single Outlook changes for the added latency, one every [`SAMPLE_SPACING`].
const LATENCY_SAMPLES: usize = 20;
/// TOPdesk reservations for each of push and polling.
const TOPDESK_SAMPLES: usize = 10;
/// Time between two single changes.
const SAMPLE_SPACING: StdDuration = StdDuration::from_millis(250);
/// How often the watchers look at the emulators.
const WATCH_EVERY: StdDuration = StdDuration::from_millis(2);

/// The store the bench runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BenchStore {
    /// A fresh SQLite file under `<data.dir>/bench/`.
    Sqlite,
    /// The configured PostgreSQL database (`database.url` / `ORB__DATABASE__URL`), which must hold no tenant.
    Postgres,
}

/// `orb bench`'s arguments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Print one JSON object as the last line.
    pub json: bool,
    /// Rooms of the bulk tenant (idle memory, backfill).
    pub rooms: usize,
    /// Outlook bookings per bulk room for the backfill.
    pub bookings: usize,
    /// Webhook notifications per second for the acknowledgement figures.
    pub rate: u32,
    /// How long the acknowledgement load runs.
    pub seconds: u64,
    /// The store.
    pub store: BenchStore,
}

/// Runs the bench (see the module docs).
pub(crate) async fn run(config: &Config, opts: Options) -> Result<()> {
    if opts.rooms == 0 || opts.bookings == 0 || opts.rate == 0 || opts.seconds == 0 {
        bail!("--rooms, --bookings, --rate and --seconds must each be at least 1");
    }
    let started = Instant::now();
    let mut config = config.clone();
    let dir = config.data.dir.join("bench");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove the old {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    match opts.store {
        BenchStore::Sqlite => config.database.url = DatabaseUrl::sqlite(&dir.join("bench.db")),
        BenchStore::Postgres => {
            if !matches!(config.database.url.backend(), Backend::Postgres { .. }) {
                bail!(
                    "--store postgres needs a PostgreSQL database: set database.url in the configuration or \
                     ORB__DATABASE__URL=postgres://… (an empty scratch database: the bench creates tenants)"
                );
            }
        }
    }
    // The bench measures the intake, not its rate limiter.
    config.server.hooks_per_minute_per_address = 1_000_000;
    config.server.hooks_per_minute_per_tenant = 1_000_000;
    let store = crate::commands::open_store(&config).await?;
    if opts.store == BenchStore::Postgres && !store.list_tenants().await?.is_empty() {
        bail!(
            "the database {} holds tenants; `orb bench --store postgres` runs only on an empty scratch database",
            config.database.url.redacted()
        );
    }
    let mut figures = Figures::new(opts, config.database.url.redacted(), config.server.workers);

    // 1. RSA-2048 on every core, before anything else runs.
    progress("RSA-2048 OAEP decryptions on every core for 2 s");
    let rsa = tokio::task::spawn_blocking(|| measure::rsa2048_decrypts_per_s(StdDuration::from_secs(2)))
        .await
        .context("the RSA measurement failed")??;
    figures.rsa2048_decrypt_per_s = Some(rsa);
    figures.rss_base_mb = rss_mb();

    // 2. The site, the bulk tenant, the engine loaded: idle memory.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let key = MasterKey::generate()?;
    let site = Site::start(clock.clone()).await?;
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("cannot listen on 127.0.0.1")?;
    let public_url = format!("http://{}", listener.local_addr()?);
    crate::demo::use_emulators(&mut config, &site.graph.base_url, &public_url)?;
    let run_id = Utc::now().timestamp();
    progress(&format!("adding {} rooms to the store and the emulators", opts.rooms));
    let bulk =
        site.add_tenant(&*store, &key, &format!("bench-bulk-{run_id}"), opts.rooms, Utc::now()).await?;
    let env = Env::new(&config, store.clone(), KeyRing::new(key.clone()), clock.clone());
    let deps = load(&env).await?.deps;
    figures.rss_mb = rss_mb();
    progress(&format!(
        "idle RSS with {} rooms loaded: {:.1} MiB (before the emulators and rooms: {:.1} MiB)",
        opts.rooms,
        figures.rss_mb.unwrap_or(f64::NAN),
        figures.rss_base_mb.unwrap_or(f64::NAN)
    ));

    // 3. Backfill.
    progress(&format!("backfill of {} rooms × {} Outlook bookings", opts.rooms, opts.bookings));
    // Bookings from the day after tomorrow on, beyond TOPdesk's near window; the polled ones come sooner.
    let mut slots = Slots::from_day(Utc::now(), 3);
    let mut bulk_slots = Vec::with_capacity(opts.bookings);
    for _ in 0..opts.bookings {
        bulk_slots.push(slots.take());
    }
    for (r, room) in bulk.rooms.iter().enumerate() {
        for (b, start) in bulk_slots.iter().enumerate() {
            site.book_in_outlook(site.bulk_organizer(r + b), room, *start, &format!("Backfill {r}/{b}"))?;
        }
    }
    let before = site.mark();
    let cpu_before = cpu_seconds();
    let machine_before = measure::machine_ticks();
    let t = Instant::now();
    let dead = backfill(&config, &deps, &*store, &bulk, &*clock).await?;
    let seconds = t.elapsed().as_secs_f64();
    let calls = site.calls(before, site.mark());
    let bookings = opts.rooms * opts.bookings;
    figures.backfill_seconds = Some(seconds);
    figures.backfill_writes_per_booking = Some(calls.writes as f64 / bookings as f64);
    figures.backfill_reservations = Some(site.reservation_starts().len());
    figures.backfill_dead_jobs = Some(dead);
    figures.backfill_calls = Some(calls.per_change + calls.background);
    figures.backfill_throttled = Some(calls.throttled);
    figures.backfill_shapes = calls.shapes;
    figures.backfill_cpu_share = cpu_share(cpu_before, seconds);
    figures.backfill_machine_busy = measure::machine_busy(machine_before, measure::machine_ticks());
    progress(&format!(
        "backfill: {seconds:.1} s, {:.2} writes per booking, {} requests, {} throttled",
        calls.writes as f64 / bookings as f64,
        calls.per_change + calls.background,
        calls.throttled
    ));
    drop(deps);
    for room in store.list_rooms(bulk.tenant.id).await? {
        store.set_room_enabled(bulk.tenant.id, room.id, false, Utc::now()).await?;
    }

    // 4. Live: ORB serving a second tenant.
    let live =
        site.add_tenant(&*store, &key, &format!("bench-live-{run_id}"), LIVE_ROOMS, Utc::now()).await?;
    let push_token = set_push_token(&*store, &live).await?;
    let stop = CancellationToken::new();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let server = {
        let (config, store, stop, clock) = (config.clone(), store.clone(), stop.clone(), clock.clone());
        let ring = KeyRing::new(key.clone());
        tokio::spawn(async move {
            serve(
                &config,
                store,
                ring,
                clock,
                ServeOptions::default(),
                async move { stop.cancelled().await },
                Bind { listener: Some(listener), bound: Some(bound_tx) },
            )
            .await
        })
    };
    let _ = bound_rx.await;
    progress("ORB serving; waiting for the live rooms' subscriptions");
    let live_mailboxes: Vec<String> = live.rooms.iter().map(|r| r.mailbox.as_str().to_owned()).collect();
    wait_until("the live rooms' subscriptions", StdDuration::from_secs(90), || {
        let subs = site.graph_em.subscriptions();
        live_mailboxes.iter().all(|m| subs.iter().any(|s| s.mailbox.eq_ignore_ascii_case(m)))
    })
    .await?;
    wait_idle(&*store, live.tenant.id, StdDuration::from_secs(60)).await?;
    let outcome =
        live_phase(&site, &*store, &live, &config, &push_token, &public_url, opts, &mut slots, &mut figures)
            .await;
    stop.cancel();
    match tokio::time::timeout(StdDuration::from_secs(60), server).await {
        Ok(joined) => joined.context("the server task failed")??,
        Err(_) => progress("ORB did not stop within 60 s; leaving it"),
    }
    outcome?;
    figures.total_seconds = Some(started.elapsed().as_secs_f64());
    report::print(&figures, opts.json)
}

/// The live measurements, with ORB serving.
#[allow(clippy::too_many_arguments)]
async fn live_phase(
    site: &Site,
    store: &dyn Store,
    live: &BenchTenant,
    config: &Config,
    push_token: &str,
    public_url: &str,
    opts: Options,
    slots: &mut Slots,
    figures: &mut Figures,
) -> Result<()> {
    // The pipeline: many Outlook bookings at once, until every one is written to TOPdesk and recorded.
    progress(&format!("pipeline: {PIPELINE_BOOKINGS} Outlook bookings at once"));
    let calls_from = site.mark();
    let starts: Vec<DateTime<Utc>> = (0..PIPELINE_BOOKINGS).map(|_| slots.take()).collect();
    let cpu_before = cpu_seconds();
    let machine_before = measure::machine_ticks();
    let t = Instant::now();
    for (i, start) in starts.iter().enumerate() {
        site.book_in_outlook(
            site.organizer(i),
            &live.rooms[i % live.rooms.len()],
            *start,
            &format!("Pipeline {i}"),
        )?;
    }
    wait_until("the pipeline's reservations", StdDuration::from_secs(300), || {
        let have = site.reservation_starts();
        starts.iter().all(|s| have.contains(s))
    })
    .await?;
    let filter = BookingFilter::default();
    let deadline = Instant::now() + StdDuration::from_secs(60);
    loop {
        let records = store.list_bookings(live.tenant.id, &filter).await?;
        let committed = records
            .iter()
            .filter(|r| r.topdesk_status == SyncStatus::Synced && starts.contains(&r.start))
            .count();
        if committed >= starts.len() {
            break;
        }
        if Instant::now() >= deadline {
            bail!("only {committed} of {} pipeline records were committed within 60 s", starts.len());
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    figures.pipeline_per_s = Some(PIPELINE_BOOKINGS as f64 / elapsed);
    figures.pipeline_cpu_share = cpu_share(cpu_before, elapsed);
    figures.pipeline_machine_busy = measure::machine_busy(machine_before, measure::machine_ticks());
    let mut changes = PIPELINE_BOOKINGS;

    // Added latency: single Outlook changes until their TOPdesk write lands.
    progress(&format!("added latency: {LATENCY_SAMPLES} single Outlook bookings"));
    let samples = sample(
        LATENCY_SAMPLES,
        StdDuration::from_secs(60),
        |i| {
            let start = slots.take();
            site.book_in_outlook(
                site.organizer(i),
                &live.rooms[i % live.rooms.len()],
                start,
                &format!("Single {i}"),
            )?;
            Ok(start)
        },
        || site.reservation_starts(),
        |have, start| have.contains(start),
    )
    .await?;
    changes += samples.len();
    figures.added_latency_p50_ms = percentile(&samples, 50.0);
    figures.added_latency_p95_ms = percentile(&samples, 95.0);
    figures.added_latency_samples = samples.len();

    // TOPdesk → Outlook with push hints.
    progress(&format!("TOPdesk → Outlook: {TOPDESK_SAMPLES} reservations with push hints"));
    let http = reqwest::Client::new();
    let hook = format!("{public_url}/hooks/topdesk/{}", live.tenant.name);
    let samples = sample(
        TOPDESK_SAMPLES,
        StdDuration::from_secs(60),
        |i| {
            let start = slots.take();
            let id = site.reserve_in_topdesk(
                site.person(i),
                &live.rooms[i % live.rooms.len()],
                start,
                &format!("Desk {i}"),
            )?;
            let request =
                http.post(&hook).bearer_auth(push_token).json(&serde_json::json!({ "reservations": [id] }));
            tokio::spawn(async move {
                if let Err(e) = request.send().await.and_then(reqwest::Response::error_for_status) {
                    tracing::warn!(error = %e, "a TOPdesk push hint was not accepted");
                }
            });
            Ok((site.organizer(i), start))
        },
        || (),
        |(), (organizer, start)| site.has_meeting_at(organizer, *start),
    )
    .await?;
    changes += samples.len();
    figures.topdesk_push_p95_ms = percentile(&samples, 95.0);
    figures.topdesk_push_samples = samples.len();
    let calls = site.calls(calls_from, site.mark());
    figures.api_calls_per_change = Some(calls.per_change as f64 / changes as f64);
    figures.api_changes = changes;
    figures.api_shapes = calls.shapes;

    // TOPdesk → Outlook by polling only, spread over one near-poll period.
    let poll = StdDuration::from_secs(config.schedule.near_poll_seconds.into());
    figures.near_poll_seconds = config.schedule.near_poll_seconds;
    progress(&format!(
        "TOPdesk → Outlook: {TOPDESK_SAMPLES} reservations found by polling only (near poll every {} s)",
        poll.as_secs()
    ));
    let spacing = poll / u32::try_from(TOPDESK_SAMPLES).unwrap_or(1);
    let mut soon = Slots::soon(Utc::now());
    let samples = sample_spaced(
        TOPDESK_SAMPLES,
        spacing,
        poll * 3 + StdDuration::from_secs(30),
        |i| {
            let start = soon.take();
            site.reserve_in_topdesk(
                site.person(i),
                &live.rooms[i % live.rooms.len()],
                start,
                &format!("Polled {i}"),
            )?;
            Ok((site.organizer(i), start))
        },
        || (),
        |(), (organizer, start)| site.has_meeting_at(organizer, *start),
    )
    .await?;
    figures.topdesk_poll_p95_ms = percentile(&samples, 95.0);
    figures.topdesk_poll_samples = samples.len();

    // Webhook acknowledgement under load: valid-shaped notifications of a live room's subscription.
    progress(&format!("acknowledgement: {} notifications/s for {} s", opts.rate, opts.seconds));
    let machine_before = measure::machine_ticks();
    let sub = site
        .graph_em
        .subscriptions()
        .into_iter()
        .find(|s| s.mailbox.eq_ignore_ascii_case(live.rooms[0].mailbox.as_str()))
        .context("the live room's subscription is gone")?;
    let client_state = site
        .graph_em
        .client_state(&sub.id)
        .context("the Graph emulator lost the subscription's clientState")?;
    // Each notification names a real meeting of the room, so the jobs behind the 202s are ordinary work
    // (read the organizer's copy; nothing changed, nothing written).
    let event_id = site
        .graph_em
        .events(live.rooms[0].mailbox.as_str())
        .ok()
        .and_then(|events| events.into_iter().find_map(|e| e.id))
        .context("the live room has no meeting to notify about")?;
    let url = format!("{public_url}/hooks/graph/{}", live.tenant.name);
    let client = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let run = measure::post_at_rate(&client, &url, opts.rate, StdDuration::from_secs(opts.seconds), |_| {
        notification_body(&sub.id, &client_state, &sub.mailbox, &event_id)
    })
    .await?;
    record_ack(figures, &run);
    figures.ack_machine_busy = measure::machine_busy(machine_before, measure::machine_ticks());
    Ok(())
}

/// A Graph change notification of `event` for `subscription`, shaped as Graph posts it, without the
/// encrypted resource data (the intake does not open it; the worker reads the event instead).
fn notification_body(subscription: &str, client_state: &str, mailbox: &str, event: &str) -> String {
    let resource = format!("Users/{mailbox}/Events/{event}");
    let item = ChangeNotification {
        change_type: Some(ChangeType::Updated),
        client_state: Some(client_state.to_owned()),
        resource: Some(resource.clone()),
        resource_data: Some(ResourceData {
            odata_type: Some("#Microsoft.Graph.Event".to_owned()),
            odata_id: Some(resource),
            odata_etag: None,
            id: Some(event.to_owned()),
            other: Default::default(),
        }),
        subscription_expiration_date_time: Some(Utc::now() + Duration::hours(1)),
        subscription_id: Some(subscription.to_owned()),
        tenant_id: Some(crate::demo::ENTRA_TENANT.to_owned()),
        ..ChangeNotification::default()
    };
    serde_json::to_string(&ChangeNotificationCollection { validation_tokens: None, value: vec![item] })
        .unwrap_or_default()
}

fn record_ack(figures: &mut Figures, run: &AckRun) {
    figures.ack_p50_ms = percentile(&run.latencies_ms, 50.0);
    figures.ack_p99_ms = percentile(&run.latencies_ms, 99.0);
    figures.ack_p999_ms = percentile(&run.latencies_ms, 99.9);
    figures.ack_accepted = run.accepted;
    figures.ack_other = run.other;
    figures.ack_achieved_rate = Some(run.achieved_rate);
}

/// The share of all cores this process used over the last `seconds`, from `cpu_before`.
fn cpu_share(cpu_before: Option<f64>, seconds: f64) -> Option<f64> {
    let used = cpu_seconds()? - cpu_before?;
    Some(used / (seconds * cores() as f64))
}

/// Sets a random push token for `live` and returns it.
async fn set_push_token(store: &dyn Store, live: &BenchTenant) -> Result<String> {
    let mut bytes = [0_u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the operating system's random generator failed; try again"))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let audit = NewAuditEntry {
        tenant_id: Some(live.tenant.id),
        at: Utc::now(),
        actor: "bench".into(),
        action: "push_token.create".into(),
        target: "topdesk push token".into(),
        ip: None,
    };
    store.set_push_token_hash(live.tenant.id, digest(&SHA256, token.as_bytes()).as_ref(), &audit).await?;
    Ok(token)
}

/// What `orb backfill` does for the bulk tenant: workers run while every room is swept; then until the
/// tenant's queue is empty. The dead jobs left.
async fn backfill(
    config: &Config,
    deps: &Arc<SyncDeps>,
    store: &dyn Store,
    bulk: &BenchTenant,
    clock: &dyn Clock,
) -> Result<u64> {
    let tenant = bulk.tenant.id;
    let horizon = deps.tenant(tenant)?.policy.horizon;
    let cancel = CancellationToken::new();
    let mut workers = Vec::new();
    for i in 0..config.server.workers {
        let mut options = WorkerOptions::new(format!("bench/backfill/w{i}"));
        options.idle_max = StdDuration::from_millis(100);
        options.idle_min = StdDuration::from_millis(20);
        let worker = Worker::new(deps.clone(), options);
        let token = cancel.clone();
        workers.push(tokio::spawn(async move { worker.run(token).await }));
    }
    for room in store.list_rooms(tenant).await? {
        let now = clock.now();
        sweep_room_with(
            deps,
            tenant,
            room.id,
            (now - Duration::days(1), now + horizon),
            now,
            SweepOptions::default(),
        )
        .await
        .with_context(|| format!("sweeping {}", room.mailbox))?;
    }
    let result = wait_idle(store, tenant, StdDuration::from_secs(3600)).await;
    cancel.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    result?;
    Ok(store.tenant_queue_stats(tenant, clock.now()).await?.dead)
}

/// Waits until `tenant` has no queued or running job.
async fn wait_idle(store: &dyn Store, tenant: TenantId, timeout: StdDuration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = store.tenant_queue_stats(tenant, Utc::now()).await?;
        if stats.queued == 0 && stats.running == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the queue did not empty within {} s ({} queued, {} running)",
                timeout.as_secs(),
                stats.queued,
                stats.running
            );
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

/// Waits until `done` holds, looking every [`WATCH_EVERY`].
async fn wait_until(what: &str, timeout: StdDuration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            bail!("{what}: not done within {} s", timeout.as_secs());
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
    Ok(())
}

/// [`sample_spaced`] with the usual [`SAMPLE_SPACING`].
async fn sample<K, S>(
    count: usize,
    timeout: StdDuration,
    issue: impl FnMut(usize) -> Result<K>,
    snapshot: impl Fn() -> S,
    landed: impl Fn(&S, &K) -> bool,
) -> Result<Vec<f64>> {
    sample_spaced(count, SAMPLE_SPACING, timeout, issue, snapshot, landed).await
}

/// Makes `count` changes, one every `spacing` (`issue(i)` makes change `i` and says what to look for),
/// and times each until `landed` sees it in a `snapshot` of the other side, looking every
/// [`WATCH_EVERY`]. Latencies in ms; a change that does not land within `timeout` of the last change is
/// left out (progress says so).
async fn sample_spaced<K, S>(
    count: usize,
    spacing: StdDuration,
    timeout: StdDuration,
    mut issue: impl FnMut(usize) -> Result<K>,
    snapshot: impl Fn() -> S,
    landed: impl Fn(&S, &K) -> bool,
) -> Result<Vec<f64>> {
    let t0 = Instant::now();
    let mut issued = 0;
    let mut pending: Vec<(K, Instant)> = Vec::new();
    let mut samples = Vec::with_capacity(count);
    let mut deadline = None;
    loop {
        while issued < count && t0.elapsed() >= spacing * u32::try_from(issued).unwrap_or(u32::MAX) {
            let at = Instant::now();
            pending.push((issue(issued)?, at));
            issued += 1;
            if issued == count {
                deadline = Some(Instant::now() + timeout);
            }
        }
        let seen = snapshot();
        pending.retain(|(key, at)| {
            let done = landed(&seen, key);
            if done {
                samples.push(at.elapsed().as_secs_f64() * 1000.0);
            }
            !done
        });
        if issued == count && pending.is_empty() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            progress(&format!(
                "{} of {count} changes did not arrive within {} s",
                pending.len(),
                timeout.as_secs()
            ));
            break;
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
    Ok(samples)
}

/// A progress line on standard error (standard output keeps the table and the JSON).
fn progress(what: &str) {
    eprintln!("orb bench: {what}");
}
