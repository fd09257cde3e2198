//! `orb serve`: the web server (webhook intake, health), the queue workers and the schedulers in one
//! process, with graceful shutdown.
//!
//! - **Loading.** Every tenant with settings, the TOPdesk password and a Graph credential (certificate or
//!   client secret) gets a runtime ([`orb_engine::settings`]);
//!   a tenant that lacks something is skipped with a log line saying what to set, and picked up by the
//!   next reload once it is complete. The encryption certificate ring is read from the store (sealed under
//!   the master key); a first certificate is made when there is none.
//! - **Reload.** Every `schedule.reload_seconds` the *generation* of the configuration (tenants, settings
//!   versions, rooms, secrets, certificates) is read; when it changed, the engine is rebuilt, the
//!   schedulers see the new one at their next beat, and the workers are replaced: the old ones finish the
//!   job in hand, the new ones start.
//! - **Restart.** With a stable `server.instance` name, the jobs an earlier run of the same instance held
//!   when it was killed are put back in the queue at start (their leases would otherwise block their lanes
//!   until they expire), and the scheduler leases it held are its own again at once.
//! - **Web.** The webhook intake and `/healthz` (which answers only `ok`; how many tenants are synced is in
//!   the log at every load and reload) are served by `orb_web::serve_public` with the `[server]` header and
//!   request timeouts, connection limit and webhook rate limits; refusal counts are written as one audit row
//!   per tenant and minute by a flusher task, and once more at shutdown.
//! - **Shutdown** (SIGTERM, Ctrl-C, or the caller's future): the web server stops accepting and finishes
//!   the requests in hand, workers finish their current job, schedulers give their leases up. A job cut off
//!   by a hard kill is run again after its lease expires (every write is idempotent).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result};
use orb_core::Clock;
use orb_crypto::{KeyRing, RotationPolicy};
use orb_engine::clouds::Clouds;
use orb_engine::ews_stream::{EwsStreamer, NotificationSink, StreamOptions};
use orb_engine::keys;
use orb_engine::runtime::{SyncDeps, TenantRuntime};
use orb_engine::scheduler::{Beats, Scheduler, SchedulerOptions};
use orb_engine::settings::{
    ClientTuning, InstallationUrls, SECRET_EWS_PASSWORD, SECRET_EWS_TOKEN, SECRET_GRAPH_CERTIFICATE,
    SECRET_GRAPH_CLIENT_SECRET, SECRET_TOPDESK_PASSWORD, TenantSecrets, TenantSettings, build_runtime,
};
use orb_engine::worker::{Worker, WorkerOptions};
use orb_store::Store;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ScheduleConfig};
use crate::secrets;

/// Re-reads the `[schedule]` section of the configuration (its file and environment), at each reload.
pub type ScheduleSource = Arc<dyn Fn() -> Result<ScheduleConfig> + Send + Sync>;

/// Knobs of a serve run that are not configuration (the demo and tests set them).
#[derive(Clone)]
pub struct ServeOptions {
    /// Client limits.
    pub tuning: ClientTuning,
    /// Certificate rotation.
    pub rotation: RotationPolicy,
    /// Longest idle pause of a worker (default 2 s).
    pub worker_idle_max: StdDuration,
    /// Where changed `[schedule]` beats come from while serving (`None`: the beats stay as started).
    pub schedule_source: Option<ScheduleSource>,
    /// The portal's session cookie without `Secure` and the `__Host-` prefix: only for `orb demo` on a
    /// loopback address over plain http.
    pub plain_http_portal: bool,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("tuning", &self.tuning)
            .field("rotation", &self.rotation)
            .field("worker_idle_max", &self.worker_idle_max)
            .field("schedule_source", &self.schedule_source.is_some())
            .finish()
    }
}

/// The scheduler's beats for a `[schedule]` section.
fn beats_of(s: &ScheduleConfig) -> Beats {
    Beats {
        poll_near_every: StdDuration::from_secs(s.near_poll_seconds.into()),
        poll_horizon_every: StdDuration::from_secs(s.horizon_poll_seconds.into()),
        subscriptions_every: StdDuration::from_secs(s.subscriptions_seconds.into()),
        reconcile_every: Some(StdDuration::from_secs(s.reconcile_seconds.into())),
        purge_every: Some(StdDuration::from_secs(s.purge_seconds.into())),
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            tuning: ClientTuning::default(),
            rotation: RotationPolicy::default(),
            worker_idle_max: StdDuration::from_secs(2),
            schedule_source: None,
            plain_http_portal: false,
        }
    }
}

/// What the engine was built from; a change means a reload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Generation(Vec<String>);

async fn generation(store: &dyn Store) -> Result<Generation> {
    let mut parts = Vec::new();
    for tenant in store.list_tenants().await? {
        let settings = store.get_tenant_settings(tenant.id).await?.map(|s| s.version);
        parts.push(format!("tenant {} settings {settings:?}", tenant.id));
        for room in store.list_rooms(tenant.id).await? {
            parts.push(format!("room {} {} {}", room.id, room.enabled, room.updated_at.timestamp_micros()));
        }
        for secret in store.list_secrets(tenant.id).await? {
            parts.push(format!("secret {} {}", secret.name, secret.updated_at.timestamp_micros()));
        }
    }
    for key in store.list_encryption_keys().await? {
        parts.push(format!("key {} {}", key.id, key.key_id));
    }
    Ok(Generation(parts))
}

/// The engine as loaded from the store.
pub(crate) struct Loaded {
    pub(crate) deps: Arc<SyncDeps>,
    generation: Generation,
}

/// Everything [`load`] needs.
pub(crate) struct Env {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) master: KeyRing,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) urls: InstallationUrls,
    pub(crate) options: ServeOptions,
    /// The clouds tenants may name, with one key cache per cloud (kept across reloads).
    pub(crate) clouds: Arc<Clouds>,
}

impl Env {
    /// The environment of a command that builds the engine from `config`.
    pub(crate) fn new(
        config: &Config,
        store: Arc<dyn Store>,
        master: KeyRing,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let urls = InstallationUrls {
            notification_base_url: config.server.public_url.clone(),
            portal_base_url: config.server.portal_url.clone(),
            topdesk: config.topdesk.outbound(),
        };
        let clouds = Arc::new(Clouds::new(config.graph.custom_cloud_root.as_ref(), clock.clone()));
        let mut options = ServeOptions::default();
        config.ews.apply(&mut options.tuning);
        Self { store, master, clock, urls, options, clouds }
    }
}

/// The runtime of one tenant; `None` (with a log line saying what to set) when it lacks settings or a secret.
pub(crate) async fn tenant_runtime(env: &Env, tenant: &orb_store::Tenant) -> Result<Option<TenantRuntime>> {
    let Some(row) = env.store.get_tenant_settings(tenant.id).await? else {
        tracing::warn!(
            tenant = %tenant.name,
            "tenant is not synced: it has no settings yet (orb tenant settings --tenant {} --file FILE)",
            tenant.name
        );
        return Ok(None);
    };
    let settings = TenantSettings::from_json(&row.document)
        .with_context(|| format!("the stored settings of tenant {} are not valid", tenant.name))?;
    let mut opened = BTreeMap::new();
    for name in TenantSecrets::NAMES {
        if let Some(value) = secrets::open(&*env.store, &env.master, tenant.id, name).await? {
            opened.insert(name, value);
        }
    }
    if let Some(name) = settings.missing_secret(|name| opened.contains_key(name)) {
        tracing::warn!(
            tenant = %tenant.name,
            "tenant is not synced: secret {name} is not set (orb secret set --tenant {} NAME)",
            tenant.name
        );
        return Ok(None);
    }
    let secrets = TenantSecrets {
        graph_client_secret: opened.remove(SECRET_GRAPH_CLIENT_SECRET),
        graph_certificate: opened.remove(SECRET_GRAPH_CERTIFICATE),
        ews_password: opened.remove(SECRET_EWS_PASSWORD),
        ews_token: opened.remove(SECRET_EWS_TOKEN),
        topdesk_password: opened.remove(SECRET_TOPDESK_PASSWORD).expect("checked above"),
    };
    let rooms = env.store.list_rooms(tenant.id).await?;
    let runtime = build_runtime(
        tenant.id,
        &settings,
        secrets,
        &rooms,
        env.clock.clone(),
        &env.urls,
        &env.options.tuning,
        &env.clouds,
    )
    .await?;
    Ok(Some(runtime))
}

pub(crate) async fn load(env: &Env) -> Result<Loaded> {
    let generation = generation(&*env.store).await?;
    let ring = keys::load_ring(&*env.store, &env.master).await?;
    let mut tenants = BTreeMap::new();
    for tenant in env.store.list_tenants().await? {
        match tenant_runtime(env, &tenant).await {
            Ok(Some(runtime)) => {
                tenants.insert(tenant.id, Arc::new(runtime));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(tenant = %tenant.name, error = %format!("{e:#}"), "tenant is not synced")
            }
        }
    }
    let deps = SyncDeps {
        store: env.store.clone(),
        clock: env.clock.clone(),
        tenants,
        certificates: Arc::new(ring),
        require_validation_tokens: true,
        max_conflict_tries: 3,
    };
    Ok(Loaded { deps: Arc::new(deps), generation })
}

/// This instance's name in leases.
pub(crate) fn instance_name(config: &Config) -> String {
    config.server.instance.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
        let host = if host.is_empty() { "orb".to_owned() } else { host };
        format!("{host}-{}", std::process::id())
    })
}

/// A running set of workers over one engine generation.
struct Workers {
    cancel: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

fn start_workers(
    deps: &Arc<SyncDeps>,
    config: &Config,
    instance: &str,
    gen_no: u64,
    options: &ServeOptions,
    wake: &Arc<Notify>,
) -> Workers {
    let count = config.server.workers;
    let lease = StdDuration::from_secs(config.server.job_lease_seconds.into());
    let cancel = CancellationToken::new();
    let handles = (0..count)
        .map(|i| {
            let mut opts = WorkerOptions::new(format!("{instance}/g{gen_no}/w{i}"));
            opts.lease = chrono::Duration::from_std(lease).unwrap_or(opts.lease);
            opts.heartbeat_every = lease / 4;
            opts.requeue_every = lease / 2;
            opts.idle_max = options.worker_idle_max;
            opts.idle_min = opts.idle_min.min(options.worker_idle_max);
            opts.wake = Some(wake.clone());
            let worker = Worker::new(deps.clone(), opts);
            let token = cancel.clone();
            tokio::spawn(async move { worker.run(token).await })
        })
        .collect();
    Workers { cancel, handles }
}

impl Workers {
    async fn stop(self) {
        self.cancel.cancel();
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

/// Where the web server listens.
#[derive(Debug, Default)]
pub struct Bind {
    /// A listener bound by the caller (the demo); `None` binds `server.listen`.
    pub listener: Option<tokio::net::TcpListener>,
    /// Learns the address once the server listens.
    pub bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
}

/// Runs ORB until `shutdown` completes (or SIGTERM / Ctrl-C). The web server uses `listener`, or binds
/// `server.listen`; `bound` learns its address once it listens.
pub async fn serve(
    config: &Config,
    store: Arc<dyn Store>,
    master: KeyRing,
    clock: Arc<dyn Clock>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bind: Bind,
) -> Result<()> {
    let Bind { listener, bound } = bind;
    let instance = instance_name(config);
    let mut options = options;
    config.ews.apply(&mut options.tuning);
    let env = Env { options, ..Env::new(config, store.clone(), master.clone(), clock.clone()) };

    // The operator listener first, so /readyz says "engine not loaded" while ORB starts.
    let operator_stop = CancellationToken::new();
    let readiness = crate::observability::Readiness::new(store.clone());
    let operator = match config.observability.listen {
        Some(addr) => Some(start_operator(addr, &store, &clock, &readiness, &operator_stop).await?),
        None => None,
    };

    // A first certificate when there is none (and a due rotation), before anything subscribes.
    let (_, report) = keys::rotate_certificates(&*store, &master, &env.options.rotation, clock.now())
        .await
        .context("preparing the notification encryption certificates")?;
    if let Some(id) = report.created {
        tracing::info!(certificate = %id, "encryption certificate created");
    }
    // A stable instance name that starts again was killed before: its jobs run again now, not only
    // once their leases expire.
    if config.server.instance.is_some() {
        let released = store.release_jobs_of(&format!("{instance}/"), clock.now()).await?;
        if released > 0 {
            tracing::warn!(jobs = released, "jobs of this instance's earlier run put back in the queue");
        }
    }
    let loaded = load(&env).await?;
    tracing::info!(
        instance = %instance,
        "engine loaded: {} of {} tenant(s) synced",
        loaded.deps.tenants.len(),
        store.list_tenants().await.map_or(0, |t| t.len())
    );
    readiness.engine_loaded();
    let (deps_tx, deps_rx) = watch::channel(loaded.deps.clone());
    let mut generation = loaded.generation;

    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => {}
                () = signal() => {}
            }
            stop.cancel();
        });
    }

    // Web.
    let listener = match listener {
        Some(listener) => listener,
        None => tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {} (server.listen)", config.server.listen))?,
    };
    let addr = listener.local_addr()?;
    // The intake rings this when it keeps an item: idle workers of this process start on it at once.
    let wake = Arc::new(Notify::new());
    // The portal's view of the engine; it also gives the intake each tenant's webhook allow-list.
    let backend = Arc::new(crate::portal::EngineBackend::new(
        Arc::new(Env::new(config, store.clone(), master.clone(), clock.clone())),
        Some(deps_rx.clone()),
    ));
    let hooks = orb_web::HooksState::new(store.clone(), clock.clone())
        .with_rate_limits(config.server.rate_limits())
        .with_wakeup(wake.clone())
        .with_allow_lists(backend.clone(), config.portal.trusted_proxies());
    let portal = orb_web::portal::router(orb_web::portal::PortalState::new(
        store.clone(),
        clock.clone(),
        backend,
        config.portal.portal_config(!env.options.plain_http_portal),
    ));
    let mut app = orb_web::router(hooks.clone()).merge(orb_web::health::router());
    let portal_web = match config.portal.listen {
        None => {
            app = app.merge(portal);
            None
        }
        Some(portal_addr) => {
            let portal_listener = tokio::net::TcpListener::bind(portal_addr)
                .await
                .with_context(|| format!("cannot listen on {portal_addr} (portal.listen)"))?;
            tracing::info!(address = %portal_listener.local_addr()?, "portal listening");
            Some(tokio::spawn(orb_web::serve_public(
                portal_listener,
                portal,
                config.server.listener_limits(),
                stop.clone(),
            )))
        }
    };
    let web =
        tokio::spawn(orb_web::serve_public(listener, app, config.server.listener_limits(), stop.clone()));
    let flusher = tokio::spawn(orb_web::run_refusal_flusher(
        hooks.clone(),
        orb_web::hooks::REFUSAL_FLUSH_EVERY,
        stop.clone(),
    ));
    tracing::info!(address = %addr, public_url = ?config.server.public_url, "listening");
    if let Some(ca_file) = &config.topdesk.ca_file {
        let count = config.topdesk.ca_roots.len();
        tracing::info!(ca_file = %ca_file.display(), count, "TOPdesk: trusting the CA certificates of ca_file too");
    }
    if let Some(bound) = bound {
        let _ = bound.send(addr);
    }

    // Schedulers.
    let reload_now = Arc::new(Notify::new());
    let mut sched_options = SchedulerOptions::new(instance.clone());
    let mut beats = beats_of(&config.schedule);
    sched_options.poll_near_every = beats.poll_near_every;
    sched_options.poll_horizon_every = beats.poll_horizon_every;
    sched_options.subscriptions_every = beats.subscriptions_every;
    sched_options.reconcile_every = beats.reconcile_every;
    sched_options.purge_every = beats.purge_every;
    sched_options.rotation = env.options.rotation;
    let (beats_tx, beats_rx) = watch::channel(beats);
    let changed = {
        let reload_now = reload_now.clone();
        Arc::new(move || reload_now.notify_one())
    };
    let scheduler = Scheduler::new(deps_rx.clone(), sched_options)
        .with_beats(beats_rx)
        .with_certificates(master.clone(), changed);
    let sched = tokio::spawn(scheduler.run(stop.clone()));
    // EWS tenants on streaming notifications: ORB's own connections, each notification kept as a push is.
    let streamer = EwsStreamer::new(
        deps_rx.clone(),
        Arc::new(StreamedToInbox(hooks.clone())),
        StreamOptions::new(instance.clone()),
    );
    let streams = tokio::spawn(streamer.run(stop.clone()));

    // Workers, replaced on reload.
    let mut gen_no = 0;
    let mut workers = start_workers(&loaded.deps, config, &instance, gen_no, &env.options, &wake);
    let reload_every = StdDuration::from_secs(config.schedule.reload_seconds.into());
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(reload_every) => {}
            () = reload_now.notified() => {}
        }
        if let Some(source) = &env.options.schedule_source {
            match source() {
                Ok(schedule) if beats_of(&schedule) != beats => {
                    beats = beats_of(&schedule);
                    tracing::info!(?beats, "[schedule] changed: new beats apply now");
                    let _ = beats_tx.send(beats);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "re-reading [schedule] failed; the beats stay")
                }
            }
        }
        let now_gen = match generation_of(&store).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reading the configuration generation failed");
                continue;
            }
        };
        if now_gen == generation {
            continue;
        }
        match load(&env).await {
            Ok(loaded) => {
                tracing::info!(
                    "configuration changed: engine reloaded: {} of {} tenant(s) synced",
                    loaded.deps.tenants.len(),
                    store.list_tenants().await.map_or(0, |t| t.len())
                );
                generation = loaded.generation;
                let _ = deps_tx.send(loaded.deps.clone());
                gen_no += 1;
                let old = std::mem::replace(
                    &mut workers,
                    start_workers(&loaded.deps, config, &instance, gen_no, &env.options, &wake),
                );
                old.stop().await;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "reloading the engine failed; the old one runs on")
            }
        }
    }
    tracing::info!("shutting down: finishing the jobs in hand");
    workers.stop().await;
    let _ = sched.await;
    let _ = streams.await;
    if let Err(e) = web.await {
        tracing::warn!(error = %e, "web server task failed");
    }
    if let Some(portal_web) = portal_web
        && let Err(e) = portal_web.await
    {
        tracing::warn!(error = %e, "portal server task failed");
    }
    let _ = flusher.await;
    if let Err(e) = hooks.flush_refusals(true).await {
        tracing::warn!(error = %e, "writing the last webhook refusal summaries failed");
    }
    operator_stop.cancel();
    for task in operator.into_iter().flatten() {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Installs the metrics recorder and starts the operator listener on `addr` and the queue sampler; their
/// tasks stop with `stop`.
async fn start_operator(
    addr: SocketAddr,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    readiness: &crate::observability::Readiness,
    stop: &CancellationToken,
) -> Result<[tokio::task::JoinHandle<()>; 2]> {
    use crate::observability as obs;
    let handle = obs::install_recorder()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (observability.listen or --metrics-listen)"))?;
    let bound = listener.local_addr()?;
    let app = obs::router(handle.clone(), readiness.clone());
    let web = tokio::spawn(obs::serve_operator(listener, app, stop.clone()));
    let sampler =
        tokio::spawn(obs::run_sampler(store.clone(), clock.clone(), handle, obs::SAMPLE_EVERY, stop.clone()));
    tracing::info!(address = %bound, "operator listener: /metrics, /healthz, /readyz");
    Ok([web, sampler])
}

async fn generation_of(store: &Arc<dyn Store>) -> Result<Generation> {
    generation(&**store).await
}

/// Completes on SIGTERM or Ctrl-C.
async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// Streamed EWS notifications go into the inbox through the intake's own keeper.
struct StreamedToInbox(orb_web::HooksState);

impl NotificationSink for StreamedToInbox {
    fn keep<'a>(
        &'a self,
        subscription: &'a orb_store::SubscriptionRow,
        notification: orb_ews::push::Notification,
    ) -> orb_engine::ews_stream::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0.keep_streamed_ews(subscription, notification).await.map_err(|e| e.to_string())
        })
    }
}
