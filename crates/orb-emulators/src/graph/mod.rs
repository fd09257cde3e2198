//! The Microsoft Graph emulator: an axum app that behaves like Graph v1.0 and the Microsoft identity
//! platform token endpoint for the parts ORB uses, with a control API under `/_emulator/`.
//!
//! - [`auth`]: token endpoint (client secret; certificate assertion verified with aws-lc-rs).
//! - [`calendar`]: events in any mailbox with Exchange meeting semantics (organizer copy + room copies,
//!   room auto-accept / decline on conflict, `DeleteSubject` / `AddOrganizerToSubject` /
//!   `AllowConflicts`), series with exceptions and cancelled occurrences, calendarView and its delta.
//! - [`api`]: the `/v1.0` routes, bearer-token checks, `Prefer` headers, per-mailbox throttling,
//!   conditional writes (`If-Match` on PATCH / cancel / DELETE of an event: `412` when the event changed
//!   since that `@odata.etag`; every change of an event gives it a new one).
//! - [`batch`]: `POST /v1.0/$batch`, each sub-request dispatched through the same `/v1.0` routes.
//! - [`control`]: `/_emulator/…` to set up apps, users and rooms, act as a person in Outlook, inspect
//!   state and counters, and turn knobs.
//! - Faults: [`Knobs::fault_plan`] ([`crate::faults`]) makes requests fail with Graph's error bodies
//!   (an HTML gateway page for 502), time out, break off mid-body or trickle, before or after handling;
//!   `GET|PUT /_emulator/faultPlan`.
//! - [`subscriptions`]: subscriptions with the validation handshake, basic and rich (encrypted, with
//!   validation tokens) change notifications and lifecycle notifications delivered by HTTP, with fault
//!   knobs; the signing keys' JWKS at `/common/discovery/keys`.
//!
//! Wire types are `orb_graph::model`: the client and the emulator share one schema.
//!
//! ## Invariants
//! - All state sits in one [`std::sync::Mutex`]; no lock is held across an `.await`.
//! - Time comes from the injected [`Clock`] (tokens, budgets, timestamps), never from the wall clock.
//! - Nothing is deleted for real: deleted items are tombstones, so delta can report them.
//!
//! ## Must not depend on
//! orb-engine, orb-web, orb-store.

pub mod api;
pub mod auth;
pub mod batch;
pub mod calendar;
pub mod control;
pub mod select;
pub mod state;
pub mod subscriptions;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use orb_core::Clock;
use orb_graph::model::Event;

use crate::faults::FaultPlan;

pub use calendar::{CalError, View};
pub use state::{
    DEFAULT_APP_ROLES, DeltaExpiry, Knobs, MailboxCounters, RequestRecord, RoomInfo, RoomSettings, SentMail,
};
pub use subscriptions::{
    DeliveryKind, DeliveryRecord, NotificationFaults, NotificationKnobs, SubscriptionInfo,
};

/// A handle on one emulator's state. Clones share the state.
#[derive(Clone)]
pub struct GraphEmulator {
    inner: Arc<Mutex<state::Inner>>,
    clock: Arc<dyn Clock>,
    /// For validation handshakes (deliveries use a clone on the delivery task).
    pub(crate) http: reqwest::Client,
}

impl std::fmt::Debug for GraphEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphEmulator").finish_non_exhaustive()
    }
}

impl GraphEmulator {
    /// An empty emulator that tells time by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        // No proxy: the emulator talks to webhooks on this machine. Building fails only without TLS roots,
        // and then the plain default client is as good.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Self { inner: Arc::new(Mutex::new(state::Inner::default())), clock, http }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, state::Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Registers an app in `tenant` that may authenticate with `secret`.
    pub fn add_app_secret(&self, tenant: &str, client_id: &str, secret: &str) {
        let mut inner = self.lock();
        let app = inner.apps.entry((tenant.to_owned(), client_id.to_owned())).or_default();
        app.secrets.push(secret.to_owned());
    }

    /// Registers a certificate (DER) for an app in `tenant` (several may be registered for rotation).
    pub fn add_app_certificate(&self, tenant: &str, client_id: &str, certificate_der: &[u8]) {
        let mut inner = self.lock();
        let app = inner.apps.entry((tenant.to_owned(), client_id.to_owned())).or_default();
        app.certificates.push(certificate_der.to_vec());
    }

    /// Grants an app exactly `roles` (application permissions, its tokens' `roles` claim) from its next
    /// token on; an app never given roles has [`state::DEFAULT_APP_ROLES`].
    pub fn set_app_roles(&self, tenant: &str, client_id: &str, roles: &[&str]) {
        let mut inner = self.lock();
        let app = inner.apps.entry((tenant.to_owned(), client_id.to_owned())).or_default();
        app.roles = Some(roles.iter().map(|r| (*r).to_owned()).collect());
    }

    /// Restricts an app to `mailboxes` with an application access policy (`RestrictAccess`); `None`
    /// removes the policy. Denied calls answer `403 ErrorAccessDenied` "Access to OData is disabled." as
    /// Exchange Online does (reference §7.3).
    pub fn set_access_policy(&self, tenant: &str, client_id: &str, mailboxes: Option<&[&str]>) {
        let mut inner = self.lock();
        let app = inner.apps.entry((tenant.to_owned(), client_id.to_owned())).or_default();
        app.access_policy = mailboxes.map(|m| m.iter().map(|a| a.trim().to_ascii_lowercase()).collect());
    }

    fn add_mailbox(&self, tenant: &str, address: &str, display_name: &str, room: Option<RoomInfo>) -> String {
        let mut inner = self.lock();
        let address = address.trim().to_ascii_lowercase();
        let id = uuid::Uuid::new_v4().to_string();
        inner.mailboxes.insert(
            address.clone(),
            state::Mailbox {
                tenant: tenant.to_owned(),
                id: id.clone(),
                address,
                display_name: display_name.to_owned(),
                room,
                events: BTreeMap::new(),
                delta_generation: 0,
                delta_expiry: DeltaExpiry::Gone,
            },
        );
        id
    }

    /// Adds a user mailbox; returns its directory id.
    pub fn add_user(&self, tenant: &str, address: &str, display_name: &str) -> String {
        self.add_mailbox(tenant, address, display_name, None)
    }

    /// Adds a room mailbox (listed by the Places API); returns its directory id.
    pub fn add_room(&self, tenant: &str, address: &str, display_name: &str, info: RoomInfo) -> String {
        self.add_mailbox(tenant, address, display_name, Some(info))
    }

    /// Changes a room's calendar-attendant settings. Returns false if there is no such room.
    pub fn set_room_settings(&self, address: &str, settings: RoomSettings) -> bool {
        let mut inner = self.lock();
        let key = address.trim().to_ascii_lowercase();
        match inner.mailboxes.get_mut(&key).and_then(|m| m.room.as_mut()) {
            Some(room) => {
                room.settings = settings;
                true
            }
            None => false,
        }
    }

    /// The current knobs.
    pub fn knobs(&self) -> Knobs {
        self.lock().knobs.clone()
    }

    /// Replaces the knobs (notifications held back by [`NotificationKnobs::hold`] leave when it is
    /// cleared).
    pub fn set_knobs(&self, knobs: Knobs) {
        let mut inner = self.lock();
        inner.knobs = knobs;
        subscriptions::release_held(&mut inner);
    }

    /// Replaces only the fault plan (restarting from its seed); the other knobs stay. Not validated: see
    /// [`FaultPlan::validate`].
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        self.lock().knobs.fault_plan = plan;
    }

    /// The fault plan as it stands (bursts counted down).
    pub fn fault_plan(&self) -> FaultPlan {
        self.lock().knobs.fault_plan.clone()
    }

    /// Invalidates every delta token of a mailbox; they will be answered as `how` says.
    pub fn expire_delta_tokens(&self, mailbox: &str, how: DeltaExpiry) -> bool {
        let mut inner = self.lock();
        let Some(key) = inner.mailbox_key(mailbox) else { return false };
        let m = inner.mailboxes.get_mut(&key).expect("key just found");
        m.delta_generation += 1;
        m.delta_expiry = how;
        true
    }

    /// Per-mailbox request counters.
    pub fn counters(&self) -> BTreeMap<String, MailboxCounters> {
        self.lock().counters.clone()
    }

    /// Every `/v1.0` request seen, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// The event reads in the request log that broke ORB's privacy promise (an empty list: none did):
    /// a read that could have returned a meeting's body (no `$select`, or one naming `body`,
    /// `bodyPreview`, `uniqueBody` or attachments), a calendarView or delta of a person's mailbox (it
    /// lists that person's other meetings; only room mailboxes may be listed), and a list of `/events`
    /// without a `$filter` (every event of the mailbox).
    pub fn privacy_findings(&self) -> Vec<String> {
        let inner = self.lock();
        let is_room = |mb: &Option<String>| {
            mb.as_ref().and_then(|k| inner.mailboxes.get(k)).is_some_and(|m| m.room.is_some())
        };
        let mut out = Vec::new();
        for (n, r) in inner.requests.iter().enumerate() {
            if !r.reads_events() {
                continue;
            }
            let what = format!("request {n}: {} {}?{}", r.method, r.path, r.query.as_deref().unwrap_or(""));
            if r.could_return_body() {
                out.push(format!("{what}: could return the body (no $select, or it names the body)"));
            }
            if r.path.contains("/calendarView") && !is_room(&r.mailbox) {
                out.push(format!("{what}: lists a person's calendar"));
            }
            let filtered = r.query.as_deref().is_some_and(|q| q.contains("$filter="));
            if r.path.ends_with("/events") && !filtered {
                out.push(format!("{what}: lists every event of the mailbox"));
            }
        }
        out
    }

    /// Mail sent through `sendMail`.
    pub fn outbox(&self) -> Vec<SentMail> {
        self.lock().outbox.clone()
    }

    /// A mailbox's live items (singles and series masters, with all extended properties), as Graph would
    /// render them in UTC with regular ids.
    pub fn events(&self, mailbox: &str) -> Result<Vec<Event>, CalError> {
        let inner = self.lock();
        let key = inner.mailbox_key(mailbox).unwrap_or_default();
        calendar::list(&inner, &key, &View { expand_props: Some(vec![]), ..View::default() })
    }

    /// A mailbox's instances in `[from, to)` (what Outlook's calendar shows).
    pub fn calendar_view(
        &self,
        mailbox: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Event>, CalError> {
        let inner = self.lock();
        let key = inner.mailbox_key(mailbox).unwrap_or_default();
        calendar::calendar_view(&inner, &key, from, to, &View::default())
    }

    fn resolve(&self, mailbox: &str) -> Result<String, CalError> {
        self.lock().mailbox_key(mailbox).ok_or_else(|| {
            CalError::new(404, "ErrorInvalidUser", format!("The requested user '{mailbox}' is invalid."))
        })
    }

    /// Creates an item as the mailbox's owner would in Outlook (a meeting when it invites rooms). Returns
    /// the organizer's copy as the create response shows it (rooms not yet answered).
    pub fn create_in(&self, mailbox: &str, input: &Event, view: &View) -> Result<Event, CalError> {
        let mb = self.resolve(mailbox)?;
        let now = self.now();
        let mut inner = self.lock();
        let (key, existed) = calendar::create(&mut inner, &mb, input, now)?;
        let shown = calendar::render(&inner.mailboxes[&mb].events[&key], view);
        if !existed {
            self.answer_rooms(&mut inner, &mb, &key, now);
        }
        subscriptions::collect(&mut inner, now);
        Ok(shown)
    }

    /// Changes an item or one occurrence (by id) as its owner would in Outlook.
    pub fn update_in(&self, mailbox: &str, id: &str, input: &Event, view: &View) -> Result<Event, CalError> {
        self.update_in_if(mailbox, id, input, view, None)
    }

    /// [`Self::update_in`] as a conditional request: with `if_match` (the `If-Match` header), refused
    /// with `412` unless it names the item's current version ([`calendar::check_if_match`]).
    pub fn update_in_if(
        &self,
        mailbox: &str,
        id: &str,
        input: &Event,
        view: &View,
        if_match: Option<&str>,
    ) -> Result<Event, CalError> {
        let mb = self.resolve(mailbox)?;
        let now = self.now();
        let mut inner = self.lock();
        calendar::check_if_match(&inner, &mb, id, if_match)?;
        let key = calendar::update(&mut inner, &mb, id, input, now)?;
        let shown = calendar::get(&inner, &mb, id, view)?;
        self.answer_rooms(&mut inner, &mb, &key, now);
        subscriptions::collect(&mut inner, now);
        Ok(shown)
    }

    /// Deletes an item or occurrence; with `cancel`, as the organizer's "Cancel meeting" (refused for
    /// attendees' copies).
    pub fn remove_in(&self, mailbox: &str, id: &str, cancel: bool) -> Result<(), CalError> {
        self.remove_in_if(mailbox, id, cancel, None)
    }

    /// [`Self::remove_in`] as a conditional request: with `if_match` (the `If-Match` header), refused
    /// with `412` unless it names the item's current version ([`calendar::check_if_match`]).
    pub fn remove_in_if(
        &self,
        mailbox: &str,
        id: &str,
        cancel: bool,
        if_match: Option<&str>,
    ) -> Result<(), CalError> {
        let mb = self.resolve(mailbox)?;
        let now = self.now();
        let mut inner = self.lock();
        calendar::check_if_match(&inner, &mb, id, if_match)?;
        let key = calendar::remove(&mut inner, &mb, id, cancel, now)?;
        self.answer_rooms(&mut inner, &mb, &key, now);
        subscriptions::collect(&mut inner, now);
        Ok(())
    }

    /// Lets the rooms answer the organizer's item `key` in `mb` ([`calendar::process_meeting`]): inside
    /// the write, or [`Knobs::room_answer_delay_ms`] later on a task of its own (inline when no Tokio
    /// runtime runs). A late answer reads the item as it is by then, so an answer overtaken by a later
    /// write of the same item answers that write (and the later task finds nothing left to change).
    fn answer_rooms(&self, inner: &mut state::Inner, mb: &str, key: &str, now: DateTime<Utc>) {
        let delay = inner.knobs.room_answer_delay_ms;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if delay > 0 => {
                let em = self.clone();
                let (mb, key) = (mb.to_owned(), key.to_owned());
                runtime.spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    let now = em.now();
                    let mut inner = em.lock();
                    calendar::process_meeting(&mut inner, &mb, &key, now);
                    subscriptions::collect(&mut inner, now);
                });
            }
            _ => calendar::process_meeting(inner, mb, key, now),
        }
    }

    /// The subscriptions.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        let inner = self.lock();
        inner.notifier.subscriptions.values().map(|s| s.info(&inner)).collect()
    }

    /// The `clientState` subscription `id` was made with (Graph echoes it in every notification), so a load
    /// generator (`orb bench`) can post notifications ORB accepts. `None`: no such subscription, or none set.
    pub fn client_state(&self, id: &str) -> Option<String> {
        self.lock().notifier.subscriptions.get(id).and_then(|s| s.client_state.clone())
    }

    /// Sends a lifecycle notification for subscription `id` (`subscriptionRemoved` also removes it).
    /// Returns false if there is no such subscription.
    pub fn send_lifecycle(&self, id: &str, event: orb_graph::model::LifecycleEventType) -> bool {
        subscriptions::lifecycle(&mut self.lock(), id, event)
    }

    /// Runs the subscription sweep at the clock's time (also done on every Graph request).
    pub fn tick(&self) {
        let now = self.now();
        subscriptions::sweep(&mut self.lock(), now);
    }

    /// Every outgoing POST so far (handshakes, notifications), with its outcome.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.lock().notifier.log.clone()
    }

    /// What the notification fault knobs did so far (queued, dropped, duplicated, held back).
    pub fn notification_faults(&self) -> NotificationFaults {
        self.lock().notifier.faults
    }

    /// The JWKS that verifies the emulator's validation tokens.
    pub fn jwks(&self) -> Result<orb_crypto::Jwks, CalError> {
        self.lock().notifier.jwks().map_err(|e| CalError::new(500, "generalException", format!("{e:?}")))
    }

    /// Starts signing validation tokens with a new key (the old one stays in the JWKS); returns its kid.
    pub fn rotate_signing_key(&self) -> Result<String, api::ApiError> {
        self.lock().notifier.rotate()
    }
}

/// The `/v1.0` Graph routes a sub-request of a batch may reach (everything under `/v1.0` except `$batch`
/// itself: batches do not nest).
pub(crate) fn v1_routes() -> Router<GraphEmulator> {
    Router::new()
        .route("/v1.0/places/microsoft.graph.room", get(api::rooms))
        .route("/v1.0/users/{user}/events", get(api::list_events).post(api::create_event))
        .route(
            "/v1.0/users/{user}/events/{id}",
            get(api::get_event).patch(api::update_event).delete(api::delete_event),
        )
        .route("/v1.0/users/{user}/events/{id}/cancel", post(api::cancel_event))
        .route("/v1.0/users/{user}/events/{id}/instances", get(api::instances))
        .route("/v1.0/users/{user}/calendarView", get(api::calendar_view))
        .route("/v1.0/users/{user}/calendarView/delta", get(api::delta))
        .route("/v1.0/users/{user}/sendMail", post(api::send_mail))
        .route("/v1.0/subscriptions", get(subscriptions::list).post(subscriptions::create))
        .route(
            "/v1.0/subscriptions/{id}",
            get(subscriptions::get).patch(subscriptions::update).delete(subscriptions::delete),
        )
        .route("/v1.0/subscriptions/{id}/reauthorize", post(subscriptions::reauthorize))
}

/// The emulator's axum app: Graph under `/v1.0` (with `$batch`), the token endpoint under
/// `/{tenant}/oauth2/v2.0/token`, the control API under `/_emulator`; the fault plan in front of all but
/// the control API.
pub fn router(em: GraphEmulator) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(api::token))
        .route("/v1.0/$batch", post(batch::batch))
        .route("/common/discovery/keys", get(subscriptions::jwks))
        .nest("/_emulator", control::router())
        .merge(v1_routes())
        .layer(axum::middleware::from_fn_with_state(em.clone(), inject_faults))
        .with_state(em)
}

/// Marks a request the fault plan picked and logged, so that [`api::begin`] does not log it again.
pub(crate) const FAULT_LOGGED: &str = "x-orb-emulator-fault-logged";

/// Applies the fault plan ([`Knobs::fault_plan`]): logs the picked request with its fault, then answers
/// with an error status in Graph's shape, holds, breaks off or trickles — before or after handling.
async fn inject_faults(
    axum::extract::State(em): axum::extract::State<GraphEmulator>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_emulator/") {
        return next.run(req).await;
    }
    let injection = {
        let mut inner = em.lock();
        let injection = inner.knobs.fault_plan.decide(req.method().as_str(), &path);
        if let Some(injection) = &injection {
            let mut segments = path.split('/').skip(1);
            let user = match (segments.next(), segments.next(), segments.next()) {
                (Some("v1.0"), Some(users), Some(user)) if users.eq_ignore_ascii_case("users") => Some(user),
                _ => None,
            };
            let mailbox = user.and_then(|u| inner.mailbox_key(u));
            let client_request_id =
                req.headers().get("client-request-id").and_then(|h| h.to_str().ok()).map(str::to_owned);
            inner.requests.push(RequestRecord {
                method: req.method().to_string(),
                path: path.clone(),
                mailbox,
                client_request_id,
                fault: injection.fault.status_code(),
                fault_kind: Some(injection.fault.label().to_owned()),
                fault_after_handling: injection.after_handling,
                query: query_of(req.uri()),
                select: select_of(req.uri()),
            });
        }
        injection
    };
    let Some(injection) = injection else { return next.run(req).await };
    req.headers_mut().insert(FAULT_LOGGED, axum::http::HeaderValue::from_static("1"));
    crate::faults::apply(&injection, next.run(req), api::fault_page).await
}

/// A running emulator. Dropping it stops the server and the notification delivery task.
#[derive(Debug)]
pub struct Served {
    /// `http://127.0.0.1:{port}`: the login base URL; Graph's is this plus `/v1.0`.
    pub base_url: String,
    /// The server task (aborting it stops the server).
    pub task: tokio::task::JoinHandle<()>,
    /// The notification delivery task (`None` when another served instance already delivers).
    pub delivery: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    /// The JWKS URL of the emulator's validation-token signing keys (Microsoft's path).
    pub fn jwks_url(&self) -> String {
        format!("{}/common/discovery/keys", self.base_url)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(delivery) = &self.delivery {
            delivery.abort();
        }
    }
}

/// Serves the emulator on `127.0.0.1:0` and returns its base URL.
pub async fn serve(em: GraphEmulator) -> std::io::Result<Served> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let receiver = em.lock().notifier.take_receiver();
    let delivery = receiver.map(|rx| {
        tokio::spawn(subscriptions::run_deliveries(rx, em.http.clone(), Arc::downgrade(&em.inner)))
    });
    let app = router(em);
    let task = tokio::spawn(async move {
        // A serve error ends the task; requests then fail with connection errors, which tests see.
        let _ = axum::serve(listener, app).await;
    });
    Ok(Served { base_url, task, delivery })
}

/// The percent-decoded query string of a request, for the request log.
pub(crate) fn query_of(uri: &axum::http::Uri) -> Option<String> {
    let q = uri.query()?;
    Some(percent_decode(q))
}

/// The `$select` of a request, for the request log.
pub(crate) fn select_of(uri: &axum::http::Uri) -> Option<Vec<String>> {
    let q = uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "$select")
        .map(|(_, v)| select::parse(v.as_ref()))
}

fn percent_decode(q: &str) -> String {
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| if v.is_empty() { k.into_owned() } else { format!("{k}={v}") })
        .collect::<Vec<_>>()
        .join("&")
}
