//! The Exchange Web Services emulator: SOAP 1.1 at `POST /EWS/Exchange.asmx` for the operations ORB's
//! `orb-ews` client uses, behaving like Exchange Server 2019 / SE as the project's EWS reference
//! describes it, with a control API under `/_emulator/`.
//!
//! - [`ntlm`]: authentication as IIS answers it: NTLM (or raw NTLM in `Negotiate`) bound to the TCP
//!   connection, Basic and bearer; `401` offers `Negotiate`, `NTLM` and `Basic` (only `Basic` with
//!   [`Knobs::ntlm_disabled`]).
//! - [`soap`]: authentication ([`ntlm`]), `RequestServerVersion`
//!   checked, `ExchangeImpersonation` checked against the account's ApplicationImpersonation scope
//!   (`ErrorImpersonationDenied` without the role, `ErrorImpersonateUserDenied` outside the scope,
//!   `ErrorNonExistentMailbox` for unknown addresses — SOAP faults, as Exchange answers them), the
//!   throttling knobs (`ErrorServerBusy` with `BackOffMilliseconds`, HTTP 503 with or without
//!   `Retry-After`), `ServerVersionInfo` on every answer, and a request log that records whether each
//!   request could return an item body.
//! - [`find`]: FindItem — a `CalendarView` (series expanded: window, `MaxEntriesReturned`,
//!   `IncludesLastItemInRange`, the two-year limit; no body, no recipient lists, organizer name only) or
//!   an `IndexedPageItemView` (stored single items and masters, never occurrences, paged) with a
//!   `Restriction` `IsEqualTo` on an extended property (ORB's match-id lookup); other restrictions are
//!   refused (`ErrorUnsupportedQueryFilter`), a restriction with a `CalendarView` too
//!   (`ErrorInvalidRestriction`, U8).
//! - [`ops`]: GetItem (explicit properties and extended properties; the body only when asked),
//!   CreateItem (meetings with `SendMeetingInvitations` required, schema order of `CalendarItem` enforced
//!   with `ErrorSchemaValidation`; people kept as `RequiredAttendees` and returned by GetItem, no person
//!   copies made; an appointment without attendees, e.g. written with `SendToNone` straight into a
//!   room's calendar, is that mailbox's own item, not seen by the booking attendant; `CancelCalendarItem`;
//!   messages go to [`mail`]),
//!   UpdateItem (`NeverOverwrite` / `AutoResolve` / `AlwaysOverwrite` against the change-key history,
//!   `ErrorIrresolvableConflict`, `ErrorInvalidChangeKey`, `ErrorChangeKeyRequiredForWriteOperations`;
//!   `RequiredAttendees` / `Resources` replaced as a whole by `SetItemField`, removed by
//!   `DeleteItemField`: a dropped room, with a `Send…` mode, gets a cancellation and its copy is left
//!   `IsCancelled` like a cancelled meeting's; invited again, the copy is booked again),
//!   DeleteItem (cancellations; an appointment is simply deleted, whatever `SendMeetingCancellations`).
//! - [`mail`]: CreateItem of a `t:Message` (`MessageDisposition` `SendOnly` / `SendAndSaveCopy`) kept in
//!   the outbox ([`EwsEmulator::outbox`]), answered `Success` with an empty `Items` like Exchange.
//! - [`folders`]: GetRoomLists / GetRooms, SyncFolderItems (opaque state, coalesced Create / Update /
//!   Delete, paging, `ErrorInvalidSyncStateData`), Subscribe (push and streaming) / Unsubscribe.
//! - [`state`]: mailboxes, items with change keys, and the booking attendant: a meeting sent to a room
//!   is accepted (the room gets its own copy with the same `UID`, the subject rewritten per
//!   `DeleteSubject` / `AddOrganizerToSubject`, no body under `DeleteComments`, no extended properties,
//!   U9) or declined on a conflict or beyond `BookingWindowInDays` (no copy); the organizer's `Resources` show the answer (a new change
//!   key after the create's answer); a cancellation leaves the room copy `IsCancelled` (U17).
//! - [`push`]: push notifications with watermarks, `SendNotificationResult` read, retries at 30 s
//!   doubling until `StatusFrequency` is exceeded, status pings; driven by [`EwsEmulator::tick`] on the
//!   injected clock and after every request.
//! - [`streaming`]: streaming subscriptions: `GetStreamingEvents` held open (chunked), an envelope per
//!   batch of changes, `ConnectionStatus` `OK` / `Closed`, per-id errors, the affinity cookie.
//! - [`control`]: the control API.
//! - `faults`: the fault plan ([`crate::faults`]) keyed by SOAP operation, with EWS's own faults
//!   (`ErrorServerBusy` storms, SOAP faults, IIS's HTML 503).
//!
//! - `series`: recurring masters (orb-core's expansion in the master's `StartTimeZone`), occurrences
//!   made on the fly with ids naming master and original start, `OccurrenceItemId` /
//!   `RecurringMasterItemId`, exceptions (a changed occurrence) and deleted occurrences kept in the
//!   master; a room's copy of a series follows its organizer's, and a series with any conflicting
//!   occurrence within the room's booking window is declined as a whole (as the Graph emulator does).
//! - `render`: item shapes and rendering (FindItem's limits, a master's series details).
//!
//! ## Invariants
//! - All state sits in one [`std::sync::Mutex`]; no lock is held across an `.await`.
//! - Time comes from the injected [`Clock`], never from the wall clock.
//! - Deleted items are tombstones, so SyncFolderItems can report them.

pub mod control;
pub(crate) mod faults;
pub mod find;
pub mod folders;
pub mod mail;
pub mod ntlm;
pub mod ops;
pub mod people;
pub mod push;
pub(crate) mod render;
pub(crate) mod series;
pub mod soap;
pub mod state;
pub mod streaming;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::routing::post;
use chrono::{DateTime, Utc};
use orb_core::Clock;

pub use mail::SentMail;
pub use ntlm::ConnId;
pub use people::outlook_create_meeting;
pub use push::{DeliveryRecord, PushFaults, PushKnobs, SubscriptionInfo};
pub use state::{Item, Knobs, RequestRecord, RoomSettings, Scope};
pub use streaming::StreamingInfo;

/// A handle on one EWS emulator's state. Clones share the state.
#[derive(Clone)]
pub struct EwsEmulator {
    inner: Arc<Mutex<state::Inner>>,
    clock: Arc<dyn Clock>,
    pub(crate) http: reqwest::Client,
}

impl std::fmt::Debug for EwsEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsEmulator").finish_non_exhaustive()
    }
}

impl EwsEmulator {
    /// An empty emulator that tells time by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(5))
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

    /// Adds a service account (user name compared case-insensitively) with its impersonation scope.
    pub fn add_account(&self, username: &str, password: &str, scope: Scope) {
        let scope = match scope {
            Scope::Mailboxes(set) => {
                Scope::Mailboxes(set.into_iter().map(|m| m.to_ascii_lowercase()).collect())
            }
            other => other,
        };
        self.lock()
            .accounts
            .insert(username.to_ascii_lowercase(), state::Account { password: password.to_owned(), scope });
    }

    /// Accepts `token` as an OAuth bearer token for `account`.
    pub fn add_bearer_token(&self, token: &str, account: &str) {
        self.lock().bearer_tokens.insert(token.to_owned(), account.to_ascii_lowercase());
    }

    fn add_mailbox(&self, address: &str, name: &str, room: Option<RoomSettings>) {
        let address = address.trim().to_ascii_lowercase();
        self.lock().mailboxes.insert(
            address.clone(),
            state::Mailbox {
                address,
                name: name.to_owned(),
                room,
                items: BTreeMap::new(),
                seq: 0,
                events: Vec::new(),
            },
        );
    }

    /// Adds a user mailbox.
    pub fn add_user(&self, address: &str, name: &str) {
        self.add_mailbox(address, name, None);
    }

    /// Adds a room mailbox with its calendar processing.
    pub fn add_room(&self, address: &str, name: &str, settings: RoomSettings) {
        self.add_mailbox(address, name, Some(settings));
    }

    /// Changes a room's calendar processing. False if there is no such room.
    pub fn set_room_settings(&self, address: &str, settings: RoomSettings) -> bool {
        let mut inner = self.lock();
        match inner.mailboxes.get_mut(&address.to_ascii_lowercase()).and_then(|m| m.room.as_mut()) {
            Some(room) => {
                *room = settings;
                true
            }
            None => false,
        }
    }

    /// Adds a room list holding `rooms`.
    pub fn add_room_list(&self, name: &str, address: &str, rooms: &[&str]) {
        self.lock().room_lists.push(state::RoomList {
            name: name.to_owned(),
            email: address.to_ascii_lowercase(),
            rooms: rooms.iter().map(|r| r.to_ascii_lowercase()).collect(),
        });
    }

    /// The knobs.
    pub fn knobs(&self) -> Knobs {
        self.lock().knobs.clone()
    }

    /// Replaces the knobs.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.lock().knobs = knobs;
    }

    /// The fault plan (rules keyed by SOAP operation; see [`crate::faults`]).
    pub fn fault_plan(&self) -> crate::faults::FaultPlan {
        self.lock().fault_plan.clone()
    }

    /// Replaces the fault plan (after [`crate::faults::FaultPlan::validate`]).
    pub fn set_fault_plan(&self, plan: crate::faults::FaultPlan) {
        self.lock().fault_plan = plan;
    }

    /// Forgets every NTLM-authenticated connection and pending challenge (IIS recycled): the next request
    /// on such a connection gets `401` and the client must authenticate again.
    pub fn forget_ntlm_connections(&self) {
        self.lock().ntlm = ntlm::Conns::default();
    }

    /// Every SOAP request so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.clone()
    }

    /// The requests that could have returned an item body (an empty list: none did).
    pub fn body_requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.iter().filter(|r| r.asks_for_body).cloned().collect()
    }

    /// Every mail sent through EWS (`CreateItem` of a `t:Message`), in order.
    pub fn outbox(&self) -> Vec<SentMail> {
        self.lock().outbox.clone()
    }

    /// A mailbox's live items (empty for an unknown mailbox).
    pub fn items(&self, mailbox: &str) -> Vec<Item> {
        let inner = self.lock();
        inner
            .mailboxes
            .get(&mailbox.to_ascii_lowercase())
            .map(|m| m.items.values().filter(|i| !i.deleted).cloned().collect())
            .unwrap_or_default()
    }

    /// The push subscriptions.
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        self.lock().push.infos()
    }

    /// The streaming subscriptions.
    pub fn streaming_subscriptions(&self) -> Vec<StreamingInfo> {
        self.lock().streaming.infos()
    }

    /// Cuts every open `GetStreamingEvents` connection mid-stream (a connection reset).
    pub fn reset_streams(&self) {
        self.lock().streaming.reset_all();
    }

    /// Every POST to a callback URL so far.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.lock().push.log.clone()
    }

    /// What the push delivery fault knobs ([`Knobs::push`]) did so far.
    pub fn push_faults(&self) -> PushFaults {
        self.lock().push.faults
    }

    /// Runs what is due at the clock's time: status pings and retries of failed deliveries; a
    /// notification held back by the reorder knobs goes out once they are off.
    pub async fn tick(&self) {
        push::deliver_due(self).await;
        push::release_held_if_calm(self).await;
    }

    /// The addresses of the known mailboxes.
    pub fn mailboxes(&self) -> BTreeSet<String> {
        self.lock().mailboxes.keys().cloned().collect()
    }
}

/// The emulator's axum app: EWS at `/EWS/Exchange.asmx` (under the fault plan), the control API under
/// `/_emulator`.
pub fn router(em: EwsEmulator) -> Router {
    Router::new()
        .route(
            "/EWS/Exchange.asmx",
            post(soap::handle).layer(axum::middleware::from_fn_with_state(em.clone(), faults::inject)),
        )
        .nest("/_emulator", control::router())
        .with_state(em)
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct Served {
    /// `http://127.0.0.1:{port}`.
    pub base_url: String,
    /// The server task.
    pub task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// The EWS URL (`{base}/EWS/Exchange.asmx`).
    pub fn ews_url(&self) -> String {
        format!("{}/EWS/Exchange.asmx", self.base_url)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the emulator on `127.0.0.1:0`, each TCP connection identified by a [`ConnId`] (NTLM binds
/// to it).
pub async fn serve(em: EwsEmulator) -> std::io::Result<Served> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let app = router(em).into_make_service_with_connect_info::<ConnId>();
    let task = tokio::spawn(async move {
        // A serve error ends the task; requests then fail with connection errors, which tests see.
        let _ = axum::serve(listener, app).await;
    });
    Ok(Served { base_url, task })
}
