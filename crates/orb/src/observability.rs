//! The operator listener: Prometheus `/metrics`, `/healthz` and `/readyz`, on its own address
//! (`[observability] listen`, `orb serve --metrics-listen`), never on the public webhook listener.
//!
//! - **Recorder.** The `metrics` crate's recorder is process-global: [`install_recorder`] installs the
//!   Prometheus recorder once (the binary's `serve` calls it when an operator listener is configured); the
//!   library crates only call the `metrics::counter!` / `histogram!` / `gauge!` macros, which are no-ops
//!   without a recorder. `/metrics` renders the recorder's handle in ORB's own axum router (the exporter's
//!   own HTTP listener is not built).
//! - **Readiness.** `/readyz` answers `200 ready` only when the store answers, its migrations are current
//!   and the engine is loaded; otherwise `503` with a short plain-text reason (details go to the log, so
//!   the answer never carries a database error). `/healthz` answers `ok` without reading anything.
//! - **Queue gauges.** [`run_sampler`] reads [`orb_store::Store::queue_stats`] on its beat and sets
//!   `orb_queue_depth{status}` and `orb_queue_oldest_seconds`; it also runs the recorder's upkeep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use orb_core::Clock;
use orb_store::Store;
use tokio_util::sync::CancellationToken;

/// How often the queue gauges are sampled from the store.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// How long `/readyz` waits for the store.
const READY_STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// Histogram buckets in seconds: from a fast intake answer (milliseconds) to a change that waited an hour.
const BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's `metrics` recorder, once; later calls return the same
/// handle. Fails when another recorder was installed first.
pub fn install_recorder() -> Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .context("configuring the metrics histogram buckets")?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("another metrics recorder is installed in this process"))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// What `/readyz` looks at.
#[derive(Clone)]
pub struct Readiness {
    store: Arc<dyn Store>,
    engine_loaded: Arc<AtomicBool>,
}

impl Readiness {
    /// Not ready until [`Readiness::engine_loaded`] is called.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, engine_loaded: Arc::new(AtomicBool::new(false)) }
    }

    /// The engine is loaded (after the first load; a failed reload keeps the old engine running).
    pub fn engine_loaded(&self) {
        self.engine_loaded.store(true, Ordering::Release);
    }

    /// `Ok(())` when ready, otherwise the reason in a few words.
    pub async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(READY_STORE_TIMEOUT, self.store.pending_migrations()).await {
            Err(_) => return Err("store not answering (timed out)".to_owned()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the store did not answer");
                return Err("store not answering".to_owned());
            }
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => return Err(format!("{n} migration(s) pending: run orb migrate")),
        }
        if !self.engine_loaded.load(Ordering::Acquire) {
            return Err("engine not loaded".to_owned());
        }
        Ok(())
    }
}

#[derive(Clone)]
struct OperatorState {
    handle: PrometheusHandle,
    ready: Readiness,
}

/// The operator routes: `/metrics`, `/healthz`, `/readyz`.
pub fn router(handle: PrometheusHandle, ready: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { plain(StatusCode::OK, "ok".to_owned()) }))
        .route("/readyz", get(readyz))
        .with_state(OperatorState { handle, ready })
}

fn plain(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn metrics_page(State(state): State<OperatorState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.handle.render(),
    )
        .into_response()
}

async fn readyz(State(state): State<OperatorState>) -> Response {
    match state.ready.check().await {
        Ok(()) => plain(StatusCode::OK, "ready".to_owned()),
        Err(reason) => plain(StatusCode::SERVICE_UNAVAILABLE, reason),
    }
}

/// Serves `app` on `listener` until `stop` is cancelled.
pub async fn serve_operator(listener: tokio::net::TcpListener, app: Router, stop: CancellationToken) {
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await {
        tracing::warn!(error = %e, "operator listener failed");
    }
}

/// Sets the queue gauges from the store every `every` (at once first), and runs the recorder's upkeep,
/// until `stop` is cancelled.
pub async fn run_sampler(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    handle: PrometheusHandle,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        let now = clock.now();
        match store.queue_stats(now).await {
            Ok(stats) => {
                for (status, n) in
                    [("queued", stats.queued), ("running", stats.running), ("dead", stats.dead)]
                {
                    #[allow(clippy::cast_precision_loss)]
                    metrics::gauge!("orb_queue_depth", "status" => status).set(n as f64);
                }
                let waited =
                    stats.oldest_due.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1000.0);
                metrics::gauge!("orb_queue_oldest_seconds").set(waited);
            }
            Err(e) => tracing::warn!(error = %e, "sampling the job queue for metrics failed"),
        }
        handle.run_upkeep();
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orb_testkit::stores::TestStore;

    #[tokio::test]
    async fn readyz_waits_for_the_engine_and_current_migrations() {
        let h = TestStore::sqlite().await;
        let ready = Readiness::new(h.store.clone());
        assert_eq!(ready.check().await, Err("engine not loaded".to_owned()), "before the first load");
        ready.engine_loaded();
        assert_eq!(ready.check().await, Ok(()));
        h.raw().await.execute("DELETE FROM orb_schema_migrations WHERE version = 1").await.unwrap();
        let reason = ready.check().await.unwrap_err();
        assert_eq!(reason, "1 migration(s) pending: run orb migrate");
        h.raw().await.execute("DROP TABLE orb_schema_migrations").await.unwrap();
        assert_eq!(ready.check().await, Err("store not answering".to_owned()), "no database error shown");
    }
}
