//! The TOPdesk emulator: TOPdesk's reservations, supporting-files and general REST API under `/tas/api/`,
//! with TOPdesk's rules, plus a control API under `/_emulator/`.
//!
//! What it does like TOPdesk (reference `topdesk.md`): Basic auth with application passwords per account
//! (401 otherwise); the reservation status model (`request`, `planned`, `cancelled`, `rejectedRequest`,
//! `conflictingPlanned`, `conflictingRequest`) with a separate `archived` flag; no DELETE (cancel and
//! reject instead); one external link, set at create (or by PATCH while none is set) and immutable
//! afterwards; series of specific dates (at most 999 occurrences); FIQL `query=`, `$fields`, `$top` up to
//! 10,000 with 206 when more match; `modificationDate` changed on every change (strictly increasing);
//! block times widening a room's busy window; errors in TOPdesk's body shapes.
//!
//! Where TOPdesk's behaviour is not documented, the emulator lets tests choose: double booking per room
//! ([`DoubleBooking`]), case-sensitivity of FIQL text ([`Settings::text_case_sensitive`]), a default
//! cancellation reason. The `errorCode` values it sends are its own (TOPdesk documents none).
//!
//! Control API (no auth): `GET /_emulator/state`, `GET|DELETE /_emulator/requests` (counters),
//! `POST /_emulator/accounts|persons|rooms|cancellationReasons|rejectionReasons`,
//! `GET /_emulator/log` (the request log), `PUT /_emulator/rooms/{id}/doubleBooking`,
//! `PUT /_emulator/settings`, `GET|PUT /_emulator/faults` (knobs and plan), `GET|PUT /_emulator/faultPlan`
//! (the plan only, see [`crate::faults`]), and
//! operator actions `POST /_emulator/reservations[/{id}/reschedule|move|cancel|makeRecurrent|archive]`.
//!
//! Invariants: state lives behind one mutex that is never held across an `.await`; time comes only from
//! the injected [`Clock`]; responses never contain `null` (the specs declare nothing nullable).
//!
//! Must not depend on: orb-engine, orb-web.

mod api;
mod control;
mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use chrono::{DateTime, Utc};
use orb_core::{Clock, TopdeskLocationId};
use orb_topdesk::wire::{IdName, PersonId, ReservationDto};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::faults::FaultPlan;

pub use state::{
    Account, ApiError, DoubleBooking, MAX_SERIES, Person, Room, SearchItem, Settings, State, project,
};

/// Fault injection knobs (apply to `/tas/api/` only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Delay added to every request, in milliseconds.
    pub latency_ms: u64,
    /// Share of requests (0.0–1.0) answered 503 before they are handled (deterministic pseudo-random).
    pub error_rate: f64,
    /// Share of requests (0.0–1.0) answered 429 with `Retry-After` before they are handled (drawn with the
    /// same deterministic pseudo-random number as `error_rate`, so the two shares add up).
    pub throttle_rate: f64,
    /// The next N requests are answered 429 with `Retry-After`.
    pub throttle_next: u32,
    /// `Retry-After` seconds sent with 429.
    pub retry_after_secs: u64,
    /// The next N requests are answered 503 (without `Retry-After`) before they are handled.
    pub error_next: u32,
    /// The next N creates (`POST /reservations`) are stored and then answered 503, as if the answer was lost.
    pub fail_after_commit_next: u32,
    /// Faults per endpoint and method: error statuses with TOPdesk's/IIS's bodies, timeouts, resets
    /// mid-body, slow bodies, before or after handling (see [`crate::faults`]). Consulted after the knobs
    /// above, for requests they left alone.
    pub plan: FaultPlan,
}

/// Per-route request counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    /// All `/tas/api/` requests.
    pub total: u64,
    /// By `METHOD /route/template`.
    pub by_route: BTreeMap<String, u64>,
    /// Requests refused for bad credentials.
    pub unauthorized: u64,
    /// Requests answered 429 by a fault knob (`throttle_next`, `throttle_rate`).
    pub injected_throttles: u64,
    /// Requests answered 503 by a fault knob (`error_next`, `error_rate`; not `fail_after_commit_next`).
    pub injected_errors: u64,
    /// Requests the fault plan ([`Faults::plan`]) injected a fault into.
    #[serde(default)]
    pub injected_faults: u64,
}

/// One `/tas/api/` request as the emulator saw it (the request log, for tests that attribute calls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path (e.g. `/tas/api/reservations/123`).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The login name of the Basic credentials sent (not checked yet; never the password).
    pub login: Option<String>,
    /// The status a fault knob or the fault plan answered with (429 or 503 from the knobs; the plan's
    /// `status` faults), instead of handling the request unless `fault_after_handling`.
    pub fault: Option<u16>,
    /// The kind of injected fault: `status` (knobs or plan), `timeout`, `reset` or `slowBody` (plan).
    #[serde(default)]
    pub fault_kind: Option<String>,
    /// Whether the fault came after the request was handled (its write applied).
    #[serde(default)]
    pub fault_after_handling: bool,
}

pub(crate) struct Shared {
    pub(crate) state: State,
    pub(crate) faults: Faults,
    pub(crate) counts: RequestCounts,
    pub(crate) log: Vec<RequestRecord>,
    pub(crate) rng: u64,
}

/// A handle on one emulated TOPdesk. Clones share the same state.
#[derive(Clone)]
pub struct TopdeskEmulator {
    shared: Arc<Mutex<Shared>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TopdeskEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopdeskEmulator").finish_non_exhaustive()
    }
}

/// A running emulator (stopped when dropped).
#[derive(Debug)]
pub struct ServedEmulator {
    /// `http://127.0.0.1:<port>` — the TOPdesk instance URL (the API is under `/tas/api/`).
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The state handle.
    pub emulator: TopdeskEmulator,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServedEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TopdeskEmulator {
    /// An empty TOPdesk whose time comes from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        let shared = Shared {
            state: State::default(),
            faults: Faults::default(),
            counts: RequestCounts::default(),
            log: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
        };
        Self { shared: Arc::new(Mutex::new(shared)), clock }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs `f` on the state (for inspection and direct edits in tests).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.lock().state)
    }

    /// Adds an API operator account with one application password (no expiry); returns the operator id.
    pub fn add_account(&self, login: &str, application_password: &str) -> Uuid {
        let id = Uuid::new_v4();
        let account = Account {
            id,
            login: login.to_owned(),
            passwords: vec![(application_password.to_owned(), None)],
            first_name: "API".into(),
            sur_name: login.to_owned(),
            email: None,
            archived: false,
        };
        self.lock().state.accounts.insert(login.to_owned(), account);
        id
    }

    /// Adds a person card (e-mail kept exactly as given).
    pub fn add_person(&self, first_name: &str, sur_name: &str, email: Option<&str>) -> PersonId {
        let id = PersonId(Uuid::new_v4());
        self.lock().state.persons.push(Person {
            id,
            first_name: first_name.to_owned(),
            sur_name: sur_name.to_owned(),
            email: email.map(str::to_owned),
            archived: false,
            branch: None,
            tas_login_name: None,
        });
        id
    }

    /// Adds a reservable room with a block time (minutes) and a double-booking behaviour.
    pub fn add_room(
        &self,
        name: &str,
        block_minutes: i32,
        double_booking: DoubleBooking,
    ) -> TopdeskLocationId {
        let id =
            TopdeskLocationId::parse(&Uuid::new_v4().to_string()).expect("a UUID is a valid location id");
        let now = self.now();
        self.lock().state.rooms.push(Room {
            id: id.clone(),
            name: name.to_owned(),
            room_number: Some(name.to_owned()),
            capacity: Some(8),
            branch: Some(IdName { id: Some(Uuid::nil()), name: Some("Head office".into()) }),
            reservable: true,
            archived: false,
            block_minutes,
            double_booking,
            text1: None,
            modification_date: now,
        });
        id
    }

    /// Adds a cancellation reason; `default` makes it TOPdesk's default (used by a cancel without body).
    pub fn add_cancellation_reason(&self, name: &str, default: bool) -> Uuid {
        let id = Uuid::new_v4();
        let mut shared = self.lock();
        shared.state.cancellation_reasons.push(SearchItem { id, name: name.to_owned(), archived: false });
        if default {
            shared.state.settings.default_cancellation_reason = Some(id);
        }
        id
    }

    /// Sets the fault knobs (the fault plan included, which restarts from its seed).
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Replaces only the fault plan (restarting from its seed); the other knobs stay. Not validated: see
    /// [`FaultPlan::validate`].
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        self.lock().faults.plan = plan;
    }

    /// The fault plan as it stands (bursts counted down).
    pub fn fault_plan(&self) -> FaultPlan {
        self.lock().faults.plan.clone()
    }

    /// The request counters.
    pub fn request_counts(&self) -> RequestCounts {
        self.lock().counts.clone()
    }

    /// Every `/tas/api/` request so far, in arrival order.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }

    /// Every reservation (full `ReservationDto`), ordered by start.
    pub fn reservations(&self) -> Vec<ReservationDto> {
        let shared = self.lock();
        let mut all: Vec<_> = shared.state.reservations.values().collect();
        all.sort_by_key(|r| (r.start, r.number.clone()));
        all.into_iter().map(|r| shared.state.to_dto(r)).collect()
    }

    /// Serves the emulator on `127.0.0.1:0`.
    pub async fn serve(self) -> std::io::Result<ServedEmulator> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = router(self.clone());
        let task = tokio::spawn(async move {
            // The server runs until the task is aborted; an accept error ends it.
            let _ = axum::serve(listener, app).await;
        });
        Ok(ServedEmulator { base_url: format!("http://{addr}"), addr, emulator: self, task })
    }
}

/// The emulator as an axum app: the TOPdesk API under `/tas/api/` and the control API under `/_emulator/`.
pub fn router(emulator: TopdeskEmulator) -> Router {
    api::router(emulator.clone()).merge(control::router(emulator))
}
