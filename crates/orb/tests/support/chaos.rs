//! What the chaos tests share (`tests/chaos.rs` for a Graph tenant, `tests/chaos_ews.rs` for an EWS tenant):
//! the test's model of the bookings (fresh hour slots, so no two edits ever claim one room at one time),
//! the burst of random edits by people in Outlook and at the TOPdesk desk ([`burst`]), the wait for both
//! sides to settle once the faults stop ([`settle`]), the verdict against the model ([`Verdict`]), and
//! what ORB's database and log say about a wrong slot ([`diagnose`]). What differs per protocol — how a
//! person acts in Outlook and what the room calendars hold — is the [`ChaosSite`] trait.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use orb_core::{SystemClock, TenantId, TenantName};
use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_store::{BookingFilter, BookingKey, JobStatus, Store};
use orb_testkit::Slot;
use orb_topdesk::wire::CreateReservationDto;
use orb_topdesk::{Reason, ReservationId, TopdeskClient, TopdeskConfig};
use secrecy::SecretString;

use super::{Lcg, Orb, ROOMS, Site, tomorrow};

/// The TOPdesk account the tests act with (a person at the service desk), so ORB's own calls can be told
/// apart in the emulator's request log.
pub const DESK_LOGIN: &str = "service-desk";
const DESK_PASSWORD: &str = "service-desk-application-password";

/// A seed from `ORB_CHAOS_SEED` (hex, `0x` optional), else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var("ORB_CHAOS_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(default)
}

/// A number from the environment variable `name`, else `default`.
pub fn from_env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the test did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Edit {
    OutlookBook,
    OutlookRetime,
    OutlookCancel,
    TopdeskCreate,
    TopdeskReschedule,
    TopdeskCancel,
}

impl Edit {
    pub const ALL: [Edit; 6] = [
        Edit::OutlookBook,
        Edit::OutlookRetime,
        Edit::OutlookCancel,
        Edit::TopdeskCreate,
        Edit::TopdeskReschedule,
        Edit::TopdeskCancel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Edit::OutlookBook => "Outlook create",
            Edit::OutlookRetime => "Outlook retime",
            Edit::OutlookCancel => "Outlook cancel",
            Edit::TopdeskCreate => "TOPdesk create",
            Edit::TopdeskReschedule => "TOPdesk reschedule",
            Edit::TopdeskCancel => "TOPdesk cancel",
        }
    }
}

/// One live booking of the test's model: its room (index into `ROOMS`) and its start (one hour long).
#[derive(Debug, Clone, Copy)]
pub struct Booking {
    pub room: usize,
    pub start: DateTime<Utc>,
}

/// Fresh hour slots per room: never used twice, so no edit ever competes for a room with another.
pub struct Slots {
    pub base: DateTime<Utc>,
    next: Vec<i64>,
}

impl Slots {
    pub fn new(rooms: usize) -> Self {
        Self { base: tomorrow(), next: vec![0; rooms] }
    }

    pub fn fresh(&mut self, room: usize) -> DateTime<Utc> {
        let k = self.next[room];
        self.next[room] += 1;
        self.base + Duration::hours(k)
    }
}

pub fn slot(room: usize, start: DateTime<Utc>) -> Slot {
    Slot { room: ROOMS[room].to_owned(), start, end: start + Duration::hours(1) }
}

/// The window the checks look at (the one `Site::converged` uses).
pub fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    (now - Duration::days(1), now + Duration::days(120))
}

/// A TOPdesk client for the service-desk person (its own account; retries throttling and 503s).
pub fn desk_client(site: &Site) -> TopdeskClient {
    site.td.emulator.add_account(DESK_LOGIN, DESK_PASSWORD);
    let mut config = TopdeskConfig::new(
        url::Url::parse(&site.td.base_url).unwrap(),
        DESK_LOGIN,
        SecretString::from(DESK_PASSWORD),
        Arc::new(SystemClock),
    );
    config.retry.max_retries = 8;
    config.retry.min_delay = StdDuration::from_millis(20);
    TopdeskClient::new(config).unwrap()
}

/// Creates a reservation as the service desk. `create_reservation` is not retried by the client (a lost
/// answer could hide a create); the emulator's faults refuse a request *before* handling it, so retrying a
/// refused create here cannot make a second one.
pub async fn desk_create(
    site: &Site,
    desk: &TopdeskClient,
    room: usize,
    start: DateTime<Utc>,
) -> ReservationId {
    let mut create =
        CreateReservationDto::new(site.anna, &site.rooms[room].1, start, start + Duration::hours(1));
    create.brief_description = Some("Made in TOPdesk".into());
    for _ in 0..20 {
        match desk.create_reservation(&create).await {
            Ok(made) => return made.id.unwrap(),
            Err(e) if e.is_retryable() => tokio::time::sleep(StdDuration::from_millis(20)).await,
            Err(e) => panic!("the service desk could not create a reservation at {start}: {e}"),
        }
    }
    panic!("the service desk could not create a reservation at {start}: 20 refusals in a row");
}

/// The live reservation in `room` at `start` whose booking ORB has linked on both sides (a live record with
/// the reservation and an Outlook meeting).
pub async fn synced_reservation(
    site: &Site,
    store: &dyn Store,
    tenant: TenantId,
    room: usize,
    start: DateTime<Utc>,
) -> Option<ReservationId> {
    let id = site.reservation_at(room, start)?;
    let text = id.to_string();
    match store.find_booking(tenant, &BookingKey::TopdeskReservation(&text)).await {
        Ok(Some(record)) if !record.cancelled && record.exchange.ical_uid.is_some() => Some(id),
        _ => None,
    }
}

/// The chaos test's API faults for one emulator, about 5% of the calls: server errors on writes and reads
/// (500, 502 with an HTML page, 504), a 200 with an HTML maintenance page, resets mid-body, no answer for
/// 1.5 s then a dropped connection, slow bodies; on the paths in `orb_only` (writes only ORB makes) also
/// resets after the write was made, so ORB cannot know whether it happened.
pub fn chaos_fault_plan(seed: u64, root: &str, orb_only: &[&str]) -> FaultPlan {
    let all = format!("{root}/**");
    let mut rules = vec![
        FaultRule::new(FaultKind::status(500)).method("write").path(&all).rate(0.01),
        FaultRule::new(FaultKind::status_with(502, BodyStyle::Html)).method("write").path(&all).rate(0.005),
        FaultRule::new(FaultKind::status(504)).method("read").path(&all).rate(0.01),
        FaultRule::new(FaultKind::status_with(200, BodyStyle::Html)).method("read").path(&all).rate(0.005),
        FaultRule::new(FaultKind::Reset).method("read").path(&all).rate(0.005),
        FaultRule::new(FaultKind::timeout(StdDuration::from_millis(1500))).path(&all).rate(0.003),
        FaultRule::new(FaultKind::SlowBody { chunk_bytes: 256, delay_ms: 5 })
            .method("read")
            .path(&all)
            .rate(0.005),
    ];
    for path in orb_only {
        rules.push(FaultRule::new(FaultKind::Reset).method("write").path(path).rate(0.01).after_handling());
    }
    FaultPlan::new(seed, rules)
}

/// TOPdesk's faults in both chaos tests: the plan above on TOPdesk's API (ORB's own writes the service
/// desk does not make may lose their answers after the write), with 429 and 503 with `Retry-After`.
pub fn topdesk_faults(seed: u64) -> orb_emulators::topdesk::Faults {
    orb_emulators::topdesk::Faults {
        error_rate: 0.0125,
        throttle_rate: 0.0125,
        retry_after_secs: 1,
        plan: chaos_fault_plan(
            seed ^ 0x7d,
            "/tas/api",
            &["/tas/api/reservations/*", "/tas/api/reservations/*/reservedFacilities/move"],
        ),
        ..orb_emulators::topdesk::Faults::default()
    }
}

/// A fault as the figures name it: the status for a status fault, else its kind; "after the write" when
/// the request was handled first.
pub fn fault_label(kind: &str, status: Option<u16>, after_handling: bool) -> String {
    let base = match (kind, status) {
        ("status", Some(s)) => s.to_string(),
        (k, _) => k.to_owned(),
    };
    if after_handling { format!("{base} after the write") } else { base }
}

/// Counts of labels.
pub fn tally(labels: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    labels.into_iter().fold(BTreeMap::new(), |mut m, k| {
        *m.entry(k).or_default() += 1;
        m
    })
}

pub fn describe(faults: &BTreeMap<String, usize>) -> String {
    faults.iter().map(|(k, n)| format!("{n}× {k}")).collect::<Vec<_>>().join(", ")
}

/// TOPdesk's faults during the burst on the requests of `login`, and how many requests `login` made.
pub fn topdesk_faults_of(
    log: &[orb_emulators::topdesk::RequestRecord],
    login: &str,
) -> (BTreeMap<String, usize>, usize) {
    let mine: Vec<_> = log.iter().filter(|r| r.login.as_deref() == Some(login)).collect();
    let faults = tally(mine.iter().filter_map(|r| {
        let kind = r.fault_kind.clone().or_else(|| r.fault.map(|_| "status".to_owned()))?;
        Some(fault_label(&kind, r.fault, r.fault_after_handling))
    }));
    (faults, mine.len())
}

/// How people act in Outlook on one site, and what its room calendars hold.
#[allow(async_fn_in_trait)]
pub trait ChaosSite {
    /// The installation (its TOPdesk side, its log, its database).
    fn site(&self) -> &Site;
    /// Anna books room `room` at `start` (one hour).
    async fn book(&self, room: usize, start: DateTime<Utc>, subject: &str);
    /// Anna moves her meeting `id` to `start` (one hour).
    async fn retime(&self, id: &str, start: DateTime<Utc>);
    /// Anna cancels her meeting `id` (the rooms are told).
    async fn cancel_meeting(&self, id: &str);
    /// Anna's meeting in `room` at `start` whose booking ORB has linked on both sides (a live record with
    /// the meeting's UID and a reservation): its id.
    async fn synced_meeting(
        &self,
        store: &dyn Store,
        tenant: TenantId,
        room: usize,
        start: DateTime<Utc>,
    ) -> Option<String>;
    /// The live bookings of the room calendars in `window`, each slot with how often it is held.
    fn exchange_slots(&self, window: (DateTime<Utc>, DateTime<Utc>)) -> BTreeMap<Slot, usize>;
}

/// What an edit of an existing booking acts on.
enum Target {
    Meeting(String),
    Reservation(ReservationId),
}

/// What a burst did.
pub struct Burst {
    /// The live bookings the edits left (the model).
    pub live: Vec<Booking>,
    /// Edits made, by kind.
    pub done: BTreeMap<Edit, usize>,
    /// Edits of existing bookings that became creates (no booking shown in sync on that side).
    pub not_yet_synced: usize,
    /// How long it took.
    pub time: StdDuration,
}

impl Burst {
    /// The model: every live booking's slot.
    pub fn model(&self) -> BTreeSet<Slot> {
        self.live.iter().map(|b| slot(b.room, b.start)).collect()
    }

    /// The table of edits made.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for kind in Edit::ALL {
            let _ = writeln!(out, "  {:<20} {:>5}", kind.name(), self.done.get(&kind).copied().unwrap_or(0));
        }
        let _ = writeln!(
            out,
            "  ({} edits of existing bookings became creates: no booking shown in sync on that side)",
            self.not_yet_synced
        );
        out
    }
}

/// `edits` seeded random edits at `rate` per second: Anna's bookings, retimes and cancellations in Outlook,
/// the service desk's creates, reschedules and cancellations in TOPdesk. An edit of an existing booking is
/// made on a side that shows the booking where the model has it, once ORB has linked both sides of it (its
/// record holds the item the edit acts on: ORB's sync of it is done); otherwise a few other bookings are
/// tried, then it becomes a create on that side. So no edit races ORB on one booking: both sides are never
/// edited at once. (A meeting ORB made is visible before ORB has its answer; a person deleting it then,
/// while that answer is lost, is a race no sync can see: ORB's retried create finds nothing.) `between`
/// runs after each edit (a fault storm, say).
#[allow(clippy::too_many_arguments)]
pub async fn burst<S: ChaosSite>(
    s: &S,
    desk: &TopdeskClient,
    store: &dyn Store,
    tenant: TenantId,
    rng: &mut Lcg,
    edits: usize,
    rate: f64,
    orb: &mut Orb,
    mut between: impl FnMut(usize),
) -> Burst {
    let site = s.site();
    let started = Instant::now();
    let mut slots = Slots::new(ROOMS.len());
    let mut live: Vec<Booking> = Vec::new();
    let mut done: BTreeMap<Edit, usize> = BTreeMap::new();
    let mut not_yet_synced = 0_usize;
    for n in 0..edits {
        let wanted = match rng.next(100) {
            0..25 => Edit::OutlookBook,
            25..40 => Edit::OutlookRetime,
            40..50 => Edit::OutlookCancel,
            50..75 => Edit::TopdeskCreate,
            75..90 => Edit::TopdeskReschedule,
            _ => Edit::TopdeskCancel,
        };
        let mut target = None;
        if !matches!(wanted, Edit::OutlookBook | Edit::TopdeskCreate) {
            for _ in 0..6 {
                let i = rng.pick(live.len().max(1));
                let Some(b) = live.get(i) else { continue };
                let found = match wanted {
                    Edit::OutlookRetime | Edit::OutlookCancel => {
                        s.synced_meeting(store, tenant, b.room, b.start).await.map(Target::Meeting)
                    }
                    _ => synced_reservation(site, store, tenant, b.room, b.start)
                        .await
                        .map(Target::Reservation),
                };
                if let Some(found) = found {
                    target = Some((i, found));
                    break;
                }
            }
        }
        let kind = match (wanted, target) {
            (Edit::OutlookRetime, Some((i, Target::Meeting(id)))) => {
                let start = slots.fresh(live[i].room);
                s.retime(&id, start).await;
                live[i].start = start;
                Edit::OutlookRetime
            }
            (Edit::OutlookCancel, Some((i, Target::Meeting(id)))) => {
                s.cancel_meeting(&id).await;
                live.swap_remove(i);
                Edit::OutlookCancel
            }
            (Edit::TopdeskReschedule, Some((i, Target::Reservation(id)))) => {
                let start = slots.fresh(live[i].room);
                desk.reschedule_reservation(id, start, start + Duration::hours(1)).await.unwrap();
                live[i].start = start;
                Edit::TopdeskReschedule
            }
            (Edit::TopdeskCancel, Some((i, Target::Reservation(id)))) => {
                desk.cancel_reservation(id, &Reason::Default).await.unwrap();
                live.swap_remove(i);
                Edit::TopdeskCancel
            }
            (Edit::OutlookBook | Edit::OutlookRetime | Edit::OutlookCancel, _) => {
                not_yet_synced += usize::from(wanted != Edit::OutlookBook);
                let room = rng.pick(ROOMS.len());
                let start = slots.fresh(room);
                s.book(room, start, &format!("Chaos {n}")).await;
                live.push(Booking { room, start });
                Edit::OutlookBook
            }
            (Edit::TopdeskCreate | Edit::TopdeskReschedule | Edit::TopdeskCancel, _) => {
                not_yet_synced += usize::from(wanted != Edit::TopdeskCreate);
                let room = rng.pick(ROOMS.len());
                let start = slots.fresh(room);
                desk_create(site, desk, room, start).await;
                live.push(Booking { room, start });
                Edit::TopdeskCreate
            }
        };
        *done.entry(kind).or_default() += 1;
        between(n);
        // A steady pace ORB can follow, so its work on the burst happens while the faults are on.
        let due = started + StdDuration::from_secs_f64((n + 1) as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        if let Ok(Some(status)) = orb.try_wait() {
            panic!("orb serve exited with {status} during the burst:\n{}", site.log_text());
        }
    }
    Burst { live, done, not_yet_synced, time: started.elapsed() }
}

/// Both sides as they were when the wait ended.
pub struct Settled {
    pub exchange: BTreeMap<Slot, usize>,
    pub topdesk: BTreeMap<Slot, usize>,
    /// How long after the faults stopped the wait ended.
    pub time: StdDuration,
    /// When the two sides last changed (so a run that gets stuck still says how long catching up took).
    pub last_change: StdDuration,
    /// What was still wrong at `heal_limit`, to explain a late heal.
    pub late: Option<Vec<Slot>>,
    /// Whether the wait gave up.
    pub gave_up: bool,
}

/// Waits (up to `give_up`) until both sides equal the model, nothing doubled.
pub async fn settle<S: ChaosSite>(
    s: &S,
    model: &BTreeSet<Slot>,
    heal_limit: StdDuration,
    give_up: StdDuration,
    orb: &mut Orb,
) -> Settled {
    let started = Instant::now();
    let deadline = started + give_up;
    let mut last_state: Option<(BTreeMap<Slot, usize>, BTreeMap<Slot, usize>)> = None;
    let mut last_change = StdDuration::ZERO;
    let mut late: Option<Vec<Slot>> = None;
    loop {
        let w = window();
        let exchange = s.exchange_slots(w);
        let topdesk = s.site().topdesk_slots(w);
        if last_state.as_ref() != Some(&(exchange.clone(), topdesk.clone())) {
            last_change = started.elapsed();
            last_state = Some((exchange.clone(), topdesk.clone()));
        }
        let equal = |side: &BTreeMap<Slot, usize>| {
            side.len() == model.len() && side.iter().all(|(s, n)| *n == 1 && model.contains(s))
        };
        let done = equal(&exchange) && equal(&topdesk);
        if done || Instant::now() >= deadline {
            return Settled { exchange, topdesk, time: started.elapsed(), last_change, late, gave_up: !done };
        }
        if late.is_none() && started.elapsed() > heal_limit {
            let off = |side: &BTreeMap<Slot, usize>| -> Vec<Slot> {
                model
                    .iter()
                    .filter(|s| side.get(*s) != Some(&1))
                    .chain(side.keys().filter(|s| !model.contains(*s)))
                    .cloned()
                    .collect()
            };
            let mut wrong = off(&exchange);
            wrong.extend(off(&topdesk));
            wrong.sort();
            wrong.dedup();
            late = Some(wrong);
        }
        if let Ok(Some(status)) = orb.try_wait() {
            panic!("orb serve exited with {status} after the burst:\n{}", s.site().log_text());
        }
        tokio::time::sleep(StdDuration::from_millis(500)).await;
    }
}

/// Both sides and ORB's records against the model.
pub struct Verdict {
    pub missing_in_exchange: Vec<Slot>,
    pub missing_in_topdesk: Vec<Slot>,
    pub extra_in_exchange: Vec<Slot>,
    pub extra_in_topdesk: Vec<Slot>,
    /// Slots a side holds more than once.
    pub doubled_sides: Vec<(&'static str, Slot, usize)>,
    /// ORB's live records.
    pub records: usize,
    /// Slots with more than one live record: (room, start, count).
    pub doubled_records: Vec<(String, DateTime<Utc>, usize)>,
    /// Jobs that died: (kind, last error).
    pub dead_jobs: Vec<(String, String)>,
}

impl Verdict {
    pub async fn of(settled: &Settled, model: &BTreeSet<Slot>, store: &dyn Store) -> Self {
        let (exchange, topdesk) = (&settled.exchange, &settled.topdesk);
        let missing = |side: &BTreeMap<Slot, usize>| -> Vec<Slot> {
            model.iter().filter(|s| !side.contains_key(s)).cloned().collect()
        };
        let extra = |side: &BTreeMap<Slot, usize>| -> Vec<Slot> {
            side.keys().filter(|s| !model.contains(s)).cloned().collect()
        };
        let doubled_sides = exchange
            .iter()
            .map(|(s, n)| ("Exchange", s, n))
            .chain(topdesk.iter().map(|(s, n)| ("TOPdesk", s, n)))
            .filter(|(_, _, n)| **n > 1)
            .map(|(side, s, n)| (side, s.clone(), *n))
            .collect();
        let (records, doubled_records) = doubled_records(store).await;
        let tenant = store.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap().id;
        let dead_jobs = store
            .list_jobs(tenant, JobStatus::Dead)
            .await
            .unwrap()
            .into_iter()
            .map(|j| (j.kind, j.last_error.unwrap_or_default()))
            .collect();
        Self {
            missing_in_exchange: missing(exchange),
            missing_in_topdesk: missing(topdesk),
            extra_in_exchange: extra(exchange),
            extra_in_topdesk: extra(topdesk),
            doubled_sides,
            records,
            doubled_records,
            dead_jobs,
        }
    }

    /// The slots that are wrong on either side.
    pub fn wrong(&self) -> Vec<Slot> {
        self.missing_in_exchange
            .iter()
            .chain(&self.missing_in_topdesk)
            .chain(&self.extra_in_exchange)
            .chain(&self.extra_in_topdesk)
            .chain(self.doubled_sides.iter().map(|(_, s, _)| s))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// Both sides equal the model, nothing doubled on a side or among ORB's records.
    pub fn converged(&self) -> bool {
        self.wrong().is_empty() && self.doubled_records.is_empty()
    }

    /// The figures' last line.
    pub fn summary(&self, model: &BTreeSet<Slot>, settled: &Settled) -> String {
        format!(
            "final: model {} live bookings; Exchange {} slots, TOPdesk {} slots; ORB {} live records; missing \
             in Exchange {}, missing in TOPdesk {}, extra in Exchange {}, extra in TOPdesk {}, doubled on a \
             side {}, doubled records {}; dead jobs {}",
            model.len(),
            settled.exchange.len(),
            settled.topdesk.len(),
            self.records,
            self.missing_in_exchange.len(),
            self.missing_in_topdesk.len(),
            self.extra_in_exchange.len(),
            self.extra_in_topdesk.len(),
            self.doubled_sides.len(),
            self.doubled_records.len(),
            self.dead_jobs.len()
        )
    }

    /// What is wrong, slot by slot (at most 8 of each).
    pub fn detail(&self) -> String {
        let mut detail = String::new();
        for (what, list) in [
            ("missing in Exchange", &self.missing_in_exchange),
            ("missing in TOPdesk", &self.missing_in_topdesk),
            ("extra in Exchange", &self.extra_in_exchange),
            ("extra in TOPdesk", &self.extra_in_topdesk),
        ] {
            for s in list.iter().take(8) {
                let _ = writeln!(detail, "  {what}: {s}");
            }
        }
        for (side, s, n) in self.doubled_sides.iter().take(8) {
            let _ = writeln!(detail, "  {n}× in {side}: {s}");
        }
        for (room, at, n) in self.doubled_records.iter().take(8) {
            let _ = writeln!(detail, "  {n} live records for {room} at {at}");
        }
        for (kind, error) in self.dead_jobs.iter().take(8) {
            let _ = writeln!(detail, "  dead job {kind}: {error}");
        }
        detail
    }
}

/// The tenant's live records in ORB's database that share a (room, start) with another: (room, start,
/// count). Also returns the number of live records.
pub async fn doubled_records(store: &dyn Store) -> (usize, Vec<(String, DateTime<Utc>, usize)>) {
    let tenant = store.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap();
    let rooms: BTreeMap<_, _> = store
        .list_rooms(tenant.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.mailbox.to_string()))
        .collect();
    let records = store.list_bookings(tenant.id, &BookingFilter::default()).await.unwrap();
    let live: Vec<_> = records.iter().filter(|r| !r.cancelled).collect();
    let mut by_slot: BTreeMap<(String, DateTime<Utc>), usize> = BTreeMap::new();
    for r in &live {
        let room = rooms.get(&r.room_id).cloned().unwrap_or_else(|| r.room_id.to_string());
        *by_slot.entry((room, r.start)).or_default() += 1;
    }
    let doubled = by_slot.into_iter().filter(|(_, n)| *n > 1).map(|((room, at), n)| (room, at, n)).collect();
    (live.len(), doubled)
}

/// What ORB's database and log say about the slots that are wrong, and about ORB's live records at a slot
/// the model does not hold (a record too many), for the failure message.
pub async fn diagnose(site: &Site, store: &dyn Store, slots: &[Slot], model: &BTreeSet<Slot>) -> String {
    let mut out = String::new();
    let tenant = store.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap();
    let rooms: BTreeMap<_, _> = store
        .list_rooms(tenant.id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.mailbox.to_string()))
        .collect();
    let all = store
        .list_bookings(tenant.id, &BookingFilter { include_cancelled: true, ..BookingFilter::default() })
        .await
        .unwrap();
    let room_of = |r: &orb_core::BookingRecord| rooms.get(&r.room_id).cloned().unwrap_or_default();
    let unexplained: Vec<Slot> = all
        .iter()
        .filter(|r| !r.cancelled)
        .map(|r| Slot { room: room_of(r), start: r.start, end: r.end })
        .filter(|s| !model.contains(s) && !slots.contains(s))
        .collect();
    for s in slots.iter().take(6).chain(unexplained.iter().take(6)) {
        let _ = writeln!(out, "slot {s}:");
        for r in all.iter().filter(|r| r.start == s.start && rooms.get(&r.room_id) == Some(&s.room)) {
            let _ = writeln!(
                out,
                "  record {} cancelled={} created by {:?} exchange={:?}/{:?} topdesk={:?}/{:?} failed_count={}",
                r.id,
                r.cancelled,
                r.processor_created,
                r.exchange_status,
                r.exchange.room_event_id,
                r.topdesk_status,
                r.topdesk.reservation_id,
                r.failed_count
            );
            for e in store.timeline(tenant.id, r.id).await.unwrap_or_default() {
                let _ =
                    writeln!(out, "    {} {} {:?} {}", e.at.format("%H:%M:%S%.3f"), e.kind, e.side, e.detail);
            }
        }
    }
    for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Dead] {
        let jobs = store.list_jobs(tenant.id, status).await.unwrap_or_default();
        let _ = writeln!(out, "jobs {status:?}: {}", jobs.len());
        for j in jobs.iter().take(5) {
            let _ = writeln!(out, "  {} {} attempts={} error={:?}", j.kind, j.lane, j.attempts, j.last_error);
        }
    }
    let log = site.log_text();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    let _ = writeln!(
        out,
        "ORB log: {} lines, {} warnings/errors; the last ones:",
        log.lines().count(),
        warnings.len()
    );
    for line in warnings.iter().rev().take(15).rev() {
        let _ = writeln!(out, "  {line}");
    }
    out
}

/// With `ORB_CHAOS_KEEP` set, keeps ORB's data dir (database and log) past the test and says where.
pub fn keep_dir(site: &mut Site) -> String {
    if std::env::var_os("ORB_CHAOS_KEEP").is_some() {
        let dir = std::mem::replace(&mut site.dir, tempfile::tempdir().unwrap());
        format!("ORB's data dir, database and log (serve.log) are kept in {}", dir.keep().display())
    } else {
        "set ORB_CHAOS_KEEP=1 to keep ORB's data dir, database and log".to_owned()
    }
}

/// A Graph tenant's site: people act through the Graph emulator's control API.
impl ChaosSite for Site {
    fn site(&self) -> &Site {
        self
    }

    async fn book(&self, room: usize, start: DateTime<Utc>, subject: &str) {
        Site::book(self, ROOMS[room], start, subject).await;
    }

    async fn retime(&self, id: &str, start: DateTime<Utc>) {
        Site::retime(self, id, start).await;
    }

    async fn cancel_meeting(&self, id: &str) {
        Site::cancel_meeting(self, id).await;
    }

    async fn synced_meeting(
        &self,
        store: &dyn Store,
        tenant: TenantId,
        room: usize,
        start: DateTime<Utc>,
    ) -> Option<String> {
        let events = self.graph_em.calendar_view(super::ANNA, start, start + Duration::minutes(1)).ok()?;
        for event in events {
            let here = event.is_cancelled != Some(true)
                && event.start.as_ref().and_then(|s| s.to_utc().ok()) == Some(start)
                && event
                    .attendees
                    .iter()
                    .flatten()
                    .filter_map(|a| a.address())
                    .any(|address| address.eq_ignore_ascii_case(ROOMS[room]));
            let (Some(id), Some(ical)) = (event.id.clone(), event.ical_uid.as_deref()) else { continue };
            let key = BookingKey::ICalUid { ical_uid: ical, original_start: None };
            if here
                && let Ok(Some(record)) = store.find_booking(tenant, &key).await
                && !record.cancelled
                && record.topdesk.reservation_id.is_some()
            {
                return Some(id);
            }
        }
        None
    }

    fn exchange_slots(&self, window: (DateTime<Utc>, DateTime<Utc>)) -> BTreeMap<Slot, usize> {
        orb_testkit::exchange_slots(&self.graph_em, &self.rooms, window)
    }
}
