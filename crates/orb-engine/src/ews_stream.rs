//! **EWS streaming notifications**: the change detection of an EWS tenant whose Exchange server cannot
//! reach ORB (`[ews] notifications = "streaming"`, ews.md §4.2). ORB subscribes each mapped, enabled room
//! mailbox's calendar with a streaming subscription and keeps one outbound `GetStreamingEvents`
//! connection per group of up to 200 rooms open; each notification that arrives is kept exactly as a
//! pushed one — an inbox item with an `ews.notification` job in the room's lane, in one transaction,
//! through the [`NotificationSink`] (the `orb-web` intake's own keeper) — so the worker handles both
//! alike ([`crate::sync`]).
//!
//! - **One streamer per tenant across instances**: [`EwsStreamer::run`] checks every
//!   [`StreamOptions::check_every`] which tenants stream and holds the store lease `ews-stream/{tenant}`
//!   for each it runs; with several ORB instances on one PostgreSQL exactly one of them streams a tenant,
//!   and another takes over once the holder's lease has expired. A change of the tenant's rooms restarts
//!   its streamer (new subscriptions, and the rooms swept).
//! - **No gap goes unseen**: events between two connections are not replayed (§4.2), so every
//!   (re)connection is followed by a reconciliation sweep of the group's rooms, enqueued [`SWEEP_AFTER`]
//!   after it opened (once the new connection serves the subscriptions; a connection that fails sooner
//!   leaves it to the next one).
//! - **Lost subscriptions** (`ErrorSubscriptionNotFound`, `ErrorExpiredSubscription`, … named per id) are
//!   made again at once, then the rooms swept. A connection that ends with `Closed` (its
//!   `ConnectionTimeout`) is opened again at once; one that fails (a reset, silence, a 503, throttling)
//!   after a back-off doubling from 1 s to [`StreamOptions::max_back_off`].
//! - Each streaming subscription has a row in the subscriptions table (`resource` `ews:stream:{mailbox}`,
//!   no key), so the `ews.notification` job finds its room and keeps its watermark as for push.
//!
//! Everything here stops when its cancellation token is cancelled (shutdown, lease lost, rooms changed).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use futures::StreamExt as _;
pub use futures::future::BoxFuture;
use orb_core::{CorrelationId, RoomId, TenantId};
use orb_ews::push::Notification;
use orb_ews::streaming::{Affinity, ConnectionTimeout, MAX_SUBSCRIPTION_IDS};
use orb_ews::{EwsError, Target};
use orb_store::SubscriptionRow;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ews_push::{enqueue_sweep, forget};
use crate::exchange::{EwsExchange, ExchangeError};
use crate::runtime::{SyncDeps, SyncError};

/// The `resource` of an EWS streaming row: which mailbox it watches.
pub fn resource_of(mailbox: &orb_core::RoomMailbox) -> String {
    format!("ews:stream:{}", mailbox.as_str())
}

/// How long after a (re)connection the rooms' sweeps run: the new connection serves the subscriptions by
/// then, so a change the sweep misses reaches the connection.
pub const SWEEP_AFTER: StdDuration = StdDuration::from_secs(3);

/// Keeps a notification that arrived over a streaming connection as the push intake keeps a pushed one.
pub trait NotificationSink: Send + Sync {
    /// Keeps `notification` of `subscription` durably (inbox item + `ews.notification` job in the room's
    /// lane, one transaction) and wakes the workers. An error means nothing was kept.
    fn keep<'a>(
        &'a self,
        subscription: &'a SubscriptionRow,
        notification: Notification,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The streamer's timing.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// This instance's name in leases (unique per running instance).
    pub holder: String,
    /// How often the tenants, their rooms and the leases are checked (default 10 s).
    pub check_every: StdDuration,
    /// `ConnectionTimeout` of each `GetStreamingEvents` (default 30 minutes, the most Exchange allows).
    pub connection: ConnectionTimeout,
    /// The longest wait after a failed connection (default 60 s).
    pub max_back_off: StdDuration,
}

impl StreamOptions {
    /// The defaults above.
    pub fn new(holder: impl Into<String>) -> Self {
        Self {
            holder: holder.into(),
            check_every: StdDuration::from_secs(10),
            connection: ConnectionTimeout::MAX,
            max_back_off: StdDuration::from_secs(60),
        }
    }
}

/// Runs the streaming connections of every tenant on streaming notifications (see the module docs).
pub struct EwsStreamer {
    deps: watch::Receiver<Arc<SyncDeps>>,
    sink: Arc<dyn NotificationSink>,
    options: StreamOptions,
}

impl std::fmt::Debug for EwsStreamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsStreamer").field("options", &self.options).finish_non_exhaustive()
    }
}

struct Running {
    rooms: String,
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

fn lease_name(tenant: TenantId) -> String {
    format!("ews-stream/{tenant}")
}

/// The tenant's EWS back-end when it streams.
fn streaming(runtime: &crate::runtime::TenantRuntime) -> Option<&EwsExchange> {
    runtime.exchange.as_ews().filter(|e| e.streams())
}

/// The rooms a tenant's streamer watches, as text that changes when they change.
fn room_key(runtime: &crate::runtime::TenantRuntime) -> String {
    let rooms: BTreeSet<String> =
        runtime.rooms.iter().filter(|r| r.enabled).map(|r| format!("{}={}", r.id, r.mailbox)).collect();
    rooms.into_iter().collect::<Vec<_>>().join(",")
}

impl EwsStreamer {
    /// A streamer over the engine's current deps, keeping notifications through `sink`.
    pub fn new(
        deps: watch::Receiver<Arc<SyncDeps>>,
        sink: Arc<dyn NotificationSink>,
        options: StreamOptions,
    ) -> Self {
        Self { deps, sink, options }
    }

    /// Runs until `cancel` is cancelled, then stops every connection and gives the leases up.
    pub async fn run(self, cancel: CancellationToken) {
        let mut running: HashMap<TenantId, Running> = HashMap::new();
        let mut wait = StdDuration::ZERO;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            wait = self.options.check_every;
            let deps = self.deps.borrow().clone();
            let mut wanted: BTreeMap<TenantId, String> = BTreeMap::new();
            for (tenant, runtime) in &deps.tenants {
                if streaming(runtime).is_none() {
                    continue;
                }
                let ttl = Duration::from_std(self.options.check_every * 3)
                    .unwrap_or(Duration::minutes(1))
                    .max(Duration::seconds(30));
                match deps
                    .store
                    .try_lease(&lease_name(*tenant), &self.options.holder, deps.clock.now(), ttl)
                    .await
                {
                    Ok(true) => {
                        wanted.insert(*tenant, room_key(runtime));
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, error = %e, "EWS streaming: the lease could not be checked")
                    }
                }
            }
            // Stop what is no longer wanted here (or watches other rooms now), start what is missing.
            let stale: Vec<TenantId> = running
                .iter()
                .filter(|(t, r)| wanted.get(t) != Some(&r.rooms) || r.handle.is_finished())
                .map(|(t, _)| *t)
                .collect();
            for tenant in stale {
                if let Some(r) = running.remove(&tenant) {
                    r.cancel.cancel();
                    let _ = r.handle.await;
                }
            }
            for (tenant, rooms) in wanted {
                if running.contains_key(&tenant) {
                    continue;
                }
                tracing::info!(tenant = %tenant, "EWS streaming: starting the tenant's connections");
                let token = cancel.child_token();
                let task = TenantStream {
                    tenant,
                    deps: self.deps.clone(),
                    sink: self.sink.clone(),
                    options: self.options.clone(),
                };
                let handle = tokio::spawn(task.run(token.clone()));
                running.insert(tenant, Running { rooms, cancel: token, handle });
            }
        }
        for (_, r) in running.drain() {
            r.cancel.cancel();
            let _ = r.handle.await;
        }
        let deps = self.deps.borrow().clone();
        for tenant in deps.tenants.keys() {
            let _ = deps.store.release_lease(&lease_name(*tenant), &self.options.holder).await;
        }
        tracing::info!("EWS streaming stopped");
    }
}

/// How one connection ended.
enum Ended {
    /// Cancelled: stop.
    Cancelled,
    /// `ConnectionStatus` `Closed`: open it again at once.
    Closed,
    /// Exchange named subscriptions it no longer has: make them again.
    Lost(EwsError),
}

/// One streaming subscription of a room.
#[derive(Clone)]
struct Sub {
    room: RoomId,
    row: SubscriptionRow,
}

/// The connections of one tenant.
struct TenantStream {
    tenant: TenantId,
    deps: watch::Receiver<Arc<SyncDeps>>,
    sink: Arc<dyn NotificationSink>,
    options: StreamOptions,
}

impl TenantStream {
    async fn run(self, cancel: CancellationToken) {
        let mut subs: BTreeMap<RoomId, Sub> = BTreeMap::new();
        let mut affinity: Option<Affinity> = None;
        let mut back_off = StdDuration::from_secs(1);
        let mut lost_in_a_row = 0_u32;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let deps = self.deps.borrow().clone();
            let ended = self.connect(&deps, &mut subs, &mut affinity, &cancel).await;
            let failed = match ended {
                Ok(Ended::Cancelled) => return,
                Ok(Ended::Closed) => {
                    back_off = StdDuration::from_secs(1);
                    lost_in_a_row = 0;
                    continue;
                }
                Ok(Ended::Lost(e)) => {
                    lost_in_a_row += 1;
                    tracing::info!(tenant = %self.tenant, error = %e, "EWS streaming: subscriptions lost; making them again");
                    // At once the first time; a server that keeps losing them is not hammered.
                    if lost_in_a_row == 1 {
                        continue;
                    }
                    e.to_string()
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(tenant = %self.tenant, error = %failed, retry_in = ?back_off, "EWS streaming connection failed");
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(back_off) => {}
            }
            back_off = (back_off * 2).min(self.options.max_back_off);
        }
    }

    /// Subscribes the rooms that have no subscription, opens the connections, and keeps what they bring
    /// until one of them ends.
    async fn connect(
        &self,
        deps: &SyncDeps,
        subs: &mut BTreeMap<RoomId, Sub>,
        affinity: &mut Option<Affinity>,
        cancel: &CancellationToken,
    ) -> Result<Ended, SyncError> {
        let Some(runtime) = deps.tenants.get(&self.tenant) else { return Ok(Ended::Cancelled) };
        let Some(ews) = streaming(runtime) else { return Ok(Ended::Cancelled) };
        let client = ews.client();
        let now = deps.clock.now();
        let rooms: Vec<orb_store::Room> = deps
            .store
            .list_rooms(self.tenant)
            .await?
            .into_iter()
            .filter(|r| r.enabled && runtime.rooms.by_id(r.id).is_some_and(|m| m.enabled))
            .collect();
        // Rows of rooms no longer watched (or of an earlier run) go: their subscriptions are not served.
        let keep: BTreeSet<&str> = subs.values().map(|s| s.row.id.as_str()).collect();
        for row in deps.store.list_subscriptions(self.tenant).await? {
            if row.resource.starts_with("ews:stream:") && !keep.contains(row.id.as_str()) {
                forget(deps, &row).await?;
            }
        }
        subs.retain(|room, _| rooms.iter().any(|r| r.id == *room));
        for room in &rooms {
            if subs.contains_key(&room.id) {
                continue;
            }
            let target =
                Target { mailbox: room.mailbox.address(), correlation: CorrelationId::generate(now) };
            let made =
                client.subscribe_streaming(target, affinity.as_ref()).await.map_err(ExchangeError::from)?;
            if made.affinity.is_some() {
                affinity.clone_from(&made.affinity);
            }
            let row = SubscriptionRow {
                id: made.id,
                tenant_id: self.tenant,
                room_id: room.id,
                resource: resource_of(&room.mailbox),
                client_state_hash: Vec::new(),
                rich: false,
                encryption_certificate_id: None,
                expires_at: now,
                created_at: now,
                updated_at: now,
                watermark: None,
            };
            subs.insert(room.id, Sub { room: room.id, row });
        }
        if subs.is_empty() {
            // Nothing to watch: wait for the rooms to change (the streamer restarts this then).
            cancel.cancelled().await;
            return Ok(Ended::Cancelled);
        }
        // The rows say until when each subscription is served at least (a metric and the portal show it).
        let until = now + Duration::minutes(i64::from(self.options.connection.get()));
        for sub in subs.values_mut() {
            sub.row.expires_at = until;
            sub.row.updated_at = now;
            deps.store.upsert_subscription(&sub.row).await?;
        }

        // One connection per group of up to 200 subscriptions, anchored at the group's first room.
        let rooms_by_id: BTreeMap<RoomId, &orb_store::Room> = rooms.iter().map(|r| (r.id, r)).collect();
        let list: Vec<&Sub> = subs.values().collect();
        let mut connections = Vec::new();
        for group in list.chunks(MAX_SUBSCRIPTION_IDS) {
            let Some(anchor) = rooms_by_id.get(&group[0].room) else { continue };
            let by_id: BTreeMap<String, SubscriptionRow> =
                group.iter().map(|s| (s.row.id.clone(), s.row.clone())).collect();
            let ids: Vec<String> = by_id.keys().cloned().collect();
            let target =
                Target { mailbox: anchor.mailbox.address(), correlation: CorrelationId::generate(now) };
            let stream = client.stream_events(target, &ids, self.options.connection, affinity.as_ref());
            connections.push(Box::pin(self.serve(stream, by_id)));
        }
        // The rooms are swept once the connections serve them (a job in the room's lane now; one dated
        // later would hold the lane's notifications back until then).
        let swept_rooms: Vec<RoomId> = subs.values().map(|s| s.room).collect();
        let sweep = async {
            tokio::time::sleep(SWEEP_AFTER).await;
            let now = deps.clock.now();
            for room in swept_rooms {
                enqueue_sweep(deps, self.tenant, room, now, None).await?;
            }
            Ok::<(), SyncError>(())
        };
        let mut sweep = std::pin::pin!(sweep);
        let mut connections = futures::future::select_all(connections);
        let mut swept = false;
        let ended = loop {
            tokio::select! {
                () = cancel.cancelled() => return Ok(Ended::Cancelled),
                done = &mut sweep, if !swept => {
                    swept = true;
                    done?;
                }
                (ended, _, _) = &mut connections => break ended?,
            }
        };
        if let Ended::Lost(_) = &ended {
            // The lost ids were dropped from the rows by `serve`; their rooms subscribe again next time.
            let rows: BTreeSet<String> =
                deps.store.list_subscriptions(self.tenant).await?.into_iter().map(|r| r.id).collect();
            subs.retain(|_, s| rows.contains(&s.row.id));
        }
        Ok(ended)
    }

    /// Keeps what one connection brings until it ends.
    async fn serve(
        &self,
        stream: impl futures::Stream<Item = Result<orb_ews::streaming::StreamBatch, EwsError>>,
        rows: BTreeMap<String, SubscriptionRow>,
    ) -> Result<Ended, SyncError> {
        let mut stream = std::pin::pin!(stream);
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(ExchangeError::from)?;
            let closed = batch.is_closed();
            for notification in batch.notifications {
                let Some(row) = rows.get(&notification.subscription_id) else {
                    tracing::debug!(subscription = %notification.subscription_id, "EWS streaming: a notification of another connection's subscription");
                    continue;
                };
                self.sink.keep(row, notification).await.map_err(|reason| SyncError::BadPayload {
                    kind: "ews.streaming".into(),
                    reason: format!("a streamed notification could not be kept: {reason}"),
                })?;
            }
            if let Some(failure) = batch.failure {
                let deps = self.deps.borrow().clone();
                for id in &failure.subscription_ids {
                    if let Some(row) = rows.get(id) {
                        forget(&deps, row).await?;
                    }
                }
                return Ok(Ended::Lost(failure.error()));
            }
            if closed {
                return Ok(Ended::Closed);
            }
        }
        // The stream ended without `Closed`: every id failed (handled above) or the server hung up.
        Ok(Ended::Closed)
    }
}
