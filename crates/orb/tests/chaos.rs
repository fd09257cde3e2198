//! Chaos and cost of a real `orb serve` (one child process, configured through the CLI) between the Graph
//! and TOPdesk emulators of this test process, on SQLite and on PostgreSQL (when `ORB_TEST_POSTGRES_URL`
//! is set).
//!
//! - **Chaos**: 2,000 seeded random edits on both sides (Outlook bookings, retimes and cancellations through
//!   the Graph emulator's control API; TOPdesk creates, reschedules and cancellations through the TOPdesk
//!   API as a person at the service desk) while 10% of the change notifications are dropped, 10% are
//!   delivered twice, 10% are held back behind the next one (reordered), and 5% of the API calls on both
//!   sides fail with 429 or 5xx. Every edit takes a fresh hour slot, so no two edits ever claim the same
//!   room at the same time: ORB is not judged on real conflicts. After the burst the faults stop and the
//!   reconciliation sweeps must heal what was lost: the convergence checker finds both sides equal to each
//!   other *and* to the test's own model of what the edits left (nothing lost, nothing resurrected),
//!   nothing doubled, and ORB's database holds no two live records for one slot.
//!   `ORB_CHAOS_SEED` / `ORB_CHAOS_EDITS` replay or resize a run.
//! - **Cost**: without faults, one change of each kind at a time (Outlook create / retime / cancel,
//!   TOPdesk create / reschedule / cancel); the emulators' request logs attribute every call ORB made to the
//!   change it served or to the scheduled background work (TOPdesk window polls, sweeps, subscription
//!   upkeep), and the test prints calls per change kind, background calls per minute and calls per synced
//!   change.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use orb_core::{SystemClock, TenantId, TenantName};
use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_emulators::graph::{Knobs, NotificationKnobs};
use orb_emulators::topdesk::Faults;
use orb_graph::model::LifecycleEventType;
use orb_store::{BookingFilter, BookingKey, JobStatus, Store};
use orb_testkit::{Slot, exchange_slots, topdesk_slots};
use orb_topdesk::wire::CreateReservationDto;
use orb_topdesk::{Reason, ReservationId, TopdeskClient, TopdeskConfig};
use secrecy::SecretString;
use support::{ROOMS, Site, TD_LOGIN, databases, tomorrow};

/// The TOPdesk account the test acts with (a person at the service desk), so ORB's own calls can be told
/// apart in the emulator's request log.
const DESK_LOGIN: &str = "service-desk";
const DESK_PASSWORD: &str = "service-desk-application-password";

/// A tiny deterministic generator (the seed is printed, so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }

    fn pick(&mut self, len: usize) -> usize {
        self.next(len as u64) as usize
    }
}

/// What the test did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Edit {
    OutlookBook,
    OutlookRetime,
    OutlookCancel,
    TopdeskCreate,
    TopdeskReschedule,
    TopdeskCancel,
}

impl Edit {
    const ALL: [Edit; 6] = [
        Edit::OutlookBook,
        Edit::OutlookRetime,
        Edit::OutlookCancel,
        Edit::TopdeskCreate,
        Edit::TopdeskReschedule,
        Edit::TopdeskCancel,
    ];

    fn name(self) -> &'static str {
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
struct Booking {
    room: usize,
    start: DateTime<Utc>,
}

/// Fresh hour slots per room: never used twice, so no edit ever competes for a room with another.
struct Slots {
    base: DateTime<Utc>,
    next: Vec<i64>,
}

impl Slots {
    fn new(rooms: usize) -> Self {
        Self { base: tomorrow(), next: vec![0; rooms] }
    }

    fn fresh(&mut self, room: usize) -> DateTime<Utc> {
        let k = self.next[room];
        self.next[room] += 1;
        self.base + Duration::hours(k)
    }
}

fn slot(room: usize, start: DateTime<Utc>) -> Slot {
    Slot { room: ROOMS[room].to_owned(), start, end: start + Duration::hours(1) }
}

/// The window the checks look at (the one `Site::converged` uses).
fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    (now - Duration::days(1), now + Duration::days(120))
}

/// A TOPdesk client for the service-desk person (its own account; retries throttling and 503s).
fn desk_client(site: &Site) -> TopdeskClient {
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
async fn desk_create(site: &Site, desk: &TopdeskClient, room: usize, start: DateTime<Utc>) -> ReservationId {
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

/// The tenant's live records in ORB's database that share a (room, start) with another: (room, start,
/// count). Also returns the number of live records.
async fn doubled_records(store: &dyn Store) -> (usize, Vec<(String, DateTime<Utc>, usize)>) {
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

/// What ORB's database and log say about the slots that are wrong, for the failure message.
async fn diagnose(site: &Site, store: &dyn Store, slots: &[Slot]) -> String {
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
    for s in slots.iter().take(6) {
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

/// The chaos test's API faults for one emulator, about 5% of the calls: server errors on writes and reads
/// (500, 502 with an HTML page, 504), a 200 with an HTML maintenance page, resets mid-body, no answer for
/// 1.5 s then a dropped connection, slow bodies; on the paths in `orb_only` (writes only ORB makes) also
/// resets after the write was made, so ORB cannot know whether it happened.
fn chaos_fault_plan(seed: u64, root: &str, orb_only: &[&str]) -> FaultPlan {
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

fn fault_label(kind: &str, status: Option<u16>, after_handling: bool) -> String {
    let base = match (kind, status) {
        ("status", Some(s)) => s.to_string(),
        (k, _) => k.to_owned(),
    };
    if after_handling { format!("{base} after the write") } else { base }
}

fn describe(faults: &BTreeMap<String, usize>) -> String {
    faults.iter().map(|(k, n)| format!("{n}× {k}")).collect::<Vec<_>>().join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_2000_edits_with_lost_doubled_reordered_notifications_and_failing_calls_converge() {
    let edits: usize = std::env::var("ORB_CHAOS_EDITS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rate: f64 = std::env::var("ORB_CHAOS_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(50.0);
    let seed: u64 = std::env::var("ORB_CHAOS_SEED")
        .ok()
        .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0xC4A0_5EED_2026);
    // The sweep beat: after the faults stop, both sides must be equal within one beat plus the time the
    // burst's backlog (queued notifications and retries, some 20 s here) and one sweep take: 60 s allowed.
    // Measured over seeds 0x5eed0001…a on a 2-core machine: SQLite 11.5–21.1 s (median 20.5), PostgreSQL
    // 20.3–49.0 s (median 25.4).
    let beat = StdDuration::from_secs(
        std::env::var("ORB_CHAOS_BEAT_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30),
    );
    let heal_limit = beat + StdDuration::from_secs(60);
    // Every database is run (and its figures printed) before the test fails.
    let mut failures: Vec<String> = Vec::new();
    for db in databases() {
        let db_name = match db {
            support::Db::Sqlite => "SQLite",
            support::Db::Postgres(_) => "PostgreSQL",
        };
        let test_started = Instant::now();
        let mut rng = Lcg(seed);
        let mut site = Site::new(&db, "chaos-test").await;
        site.set_var("ORB__SCHEDULE__RECONCILE_SECONDS", &beat.as_secs().to_string());
        site.set_var("ORB__SCHEDULE__HORIZON_POLL_SECONDS", "5");
        site.map_all_rooms();
        let desk = desk_client(&site);
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        site.eventually("the subscriptions", 30, || ROOMS.iter().all(|r| site.subscribed(r)).then_some(()))
            .await;

        // Faults on: 10% of the notifications dropped, 10% doubled, 10% held back behind the next one; and
        // on both sides, for reads and writes, the ways servers fail (chaos_fault_plan): 500, 502 with an
        // HTML page, 504, a 200 with an HTML maintenance page, resets mid-body (for writes also after the
        // write was made), no answer, slow bodies, and 429 / 503 with Retry-After.
        let graph_before = site.graph_em.requests().len();
        let notif_before = site.graph_em.notification_faults();
        let td_before = site.td.emulator.request_log().len();
        site.graph_em.set_knobs(Knobs {
            throttle_every: 41,
            retry_after_secs: 1,
            notifications: NotificationKnobs {
                drop_percent: 10,
                duplicate_percent: 10,
                reorder_percent: 10,
                ..NotificationKnobs::default()
            },
            fault_plan: chaos_fault_plan(
                seed,
                "/v1.0",
                &["/v1.0/users/*/events", "/v1.0/users/*/events/*", "/v1.0/users/*/events/*/cancel"],
            ),
            ..Knobs::default()
        });
        site.td.emulator.set_faults(Faults {
            error_rate: 0.0125,
            throttle_rate: 0.0125,
            retry_after_secs: 1,
            // ORB's own writes the service desk does not make: their answers may be lost after the write.
            plan: chaos_fault_plan(
                seed ^ 0x7d,
                "/tas/api",
                &["/tas/api/reservations/*", "/tas/api/reservations/*/reservedFacilities/move"],
            ),
            ..Faults::default()
        });

        let store = site.open_store().await;
        let tenant = store.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap().id;
        let burst = Instant::now();
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
            // An edit of an existing booking is made on a side that shows the booking where the model has
            // it, once ORB has linked both sides of it (its record holds the item the edit acts on: ORB's
            // sync of it is done); otherwise a few other bookings are tried, then it becomes a create on
            // that side. So no edit races ORB on one booking: both sides are never edited at once. (An
            // Outlook meeting ORB made is visible before ORB has its answer; a person deleting it then,
            // while that answer is lost, is a race no sync can see: ORB's retried create finds nothing.)
            let mut target = None;
            if !matches!(wanted, Edit::OutlookBook | Edit::TopdeskCreate) {
                for _ in 0..6 {
                    let i = rng.pick(live.len().max(1));
                    let Some(b) = live.get(i) else { continue };
                    let found = match wanted {
                        Edit::OutlookRetime | Edit::OutlookCancel => {
                            synced_meeting(&site, &*store, tenant, b.room, b.start).await.map(Target::Meeting)
                        }
                        _ => synced_reservation(&site, &*store, tenant, b.room, b.start)
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
                    site.retime(&id, start).await;
                    live[i].start = start;
                    Edit::OutlookRetime
                }
                (Edit::OutlookCancel, Some((i, Target::Meeting(id)))) => {
                    site.cancel_meeting(&id).await;
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
                    site.book(ROOMS[room], start, &format!("Chaos {n}")).await;
                    live.push(Booking { room, start });
                    Edit::OutlookBook
                }
                (Edit::TopdeskCreate | Edit::TopdeskReschedule | Edit::TopdeskCancel, _) => {
                    not_yet_synced += usize::from(wanted != Edit::TopdeskCreate);
                    let room = rng.pick(ROOMS.len());
                    let start = slots.fresh(room);
                    desk_create(&site, &desk, room, start).await;
                    live.push(Booking { room, start });
                    Edit::TopdeskCreate
                }
            };
            *done.entry(kind).or_default() += 1;
            // A steady pace ORB can follow, so its work on the burst happens while the faults are on.
            let due = burst + StdDuration::from_secs_f64((n + 1) as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            if let Ok(Some(status)) = orb.try_wait() {
                panic!("orb serve exited with {status} during the burst:\n{}", site.log_text());
            }
        }
        let burst_time = burst.elapsed();

        // Faults off; the sweeps must heal what was lost.
        let graph_after = site.graph_em.requests().len();
        let notif = site.graph_em.notification_faults();
        site.graph_em.set_knobs(Knobs::default());
        site.td.emulator.set_faults(Faults::default());
        let td_log = site.td.emulator.request_log();
        let td_after = td_log.len();

        let model: BTreeSet<Slot> = live.iter().map(|b| slot(b.room, b.start)).collect();
        let settle = Instant::now();
        let deadline = settle + StdDuration::from_secs(180);
        // When the two sides last changed (so a run that gets stuck still says how long catching up took).
        let mut last_state: Option<(BTreeMap<Slot, usize>, BTreeMap<Slot, usize>)> = None;
        let mut settled = StdDuration::ZERO;
        // What was still wrong one sweep beat (+ 30 s) after the faults stopped, to explain a late heal.
        let mut late: Option<Vec<Slot>> = None;
        let (exchange, topdesk) = loop {
            let w = window();
            let exchange = exchange_slots(&site.graph_em, &site.rooms, w);
            let topdesk = topdesk_slots(&site.td.emulator, &site.rooms, w);
            if last_state.as_ref() != Some(&(exchange.clone(), topdesk.clone())) {
                settled = settle.elapsed();
                last_state = Some((exchange.clone(), topdesk.clone()));
            }
            let equal = |side: &BTreeMap<Slot, usize>| {
                side.len() == model.len() && side.iter().all(|(s, n)| *n == 1 && model.contains(s))
            };
            if (equal(&exchange) && equal(&topdesk)) || Instant::now() >= deadline {
                break (exchange, topdesk);
            }
            if late.is_none() && settle.elapsed() > heal_limit {
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
                panic!("orb serve exited with {status} after the burst:\n{}", site.log_text());
            }
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        };
        let converge_time = settle.elapsed();

        // Figures.
        let graph_requests = graph_after - graph_before;
        let graph_burst = &site.graph_em.requests()[graph_before..graph_after];
        let graph_faults: BTreeMap<String, usize> = graph_burst
            .iter()
            .filter_map(|r| r.fault_kind.as_ref().map(|k| fault_label(k, r.fault, r.fault_after_handling)))
            .fold(BTreeMap::new(), |mut m, k| {
                *m.entry(k).or_default() += 1;
                m
            });
        let td_burst = &td_log[td_before..];
        let td_faults_of = |login: &str| -> BTreeMap<String, usize> {
            td_burst
                .iter()
                .filter(|r| r.login.as_deref() == Some(login))
                .filter_map(|r| {
                    let kind = r.fault_kind.clone().or_else(|| r.fault.map(|_| "status".to_owned()))?;
                    Some(fault_label(&kind, r.fault, r.fault_after_handling))
                })
                .fold(BTreeMap::new(), |mut m, k| {
                    *m.entry(k).or_default() += 1;
                    m
                })
        };
        let td_calls = |login: &str| td_burst.iter().filter(|r| r.login.as_deref() == Some(login)).count();
        let deliveries = site.graph_em.deliveries();
        let delivered = deliveries.iter().filter(|d| d.outcome == "delivered").count();
        let (records, doubled) = doubled_records(&*store).await;

        let missing_in_exchange: Vec<Slot> =
            model.iter().filter(|s| !exchange.contains_key(s)).cloned().collect();
        let missing_in_topdesk: Vec<Slot> =
            model.iter().filter(|s| !topdesk.contains_key(s)).cloned().collect();
        let extra_in_exchange: Vec<Slot> = exchange.keys().filter(|s| !model.contains(s)).cloned().collect();
        let extra_in_topdesk: Vec<Slot> = topdesk.keys().filter(|s| !model.contains(s)).cloned().collect();
        let doubled_sides: Vec<(&str, Slot, usize)> = exchange
            .iter()
            .map(|(s, n)| ("Exchange", s, n))
            .chain(topdesk.iter().map(|(s, n)| ("TOPdesk", s, n)))
            .filter(|(_, _, n)| **n > 1)
            .map(|(side, s, n)| (side, s.clone(), *n))
            .collect();

        let mut fig = String::new();
        let _ = writeln!(
            fig,
            "chaos figures ({db_name}, seed {seed:#x}, {edits} edits over {} rooms, paced at {rate} edits/s):",
            ROOMS.len()
        );
        for kind in Edit::ALL {
            let _ = writeln!(fig, "  {:<20} {:>5}", kind.name(), done.get(&kind).copied().unwrap_or(0));
        }
        let _ = writeln!(
            fig,
            "  ({not_yet_synced} edits of existing bookings became creates: no booking shown in sync on that side)"
        );
        let _ = writeln!(
            fig,
            "  notifications: {} queued during the burst, {} dropped, {} duplicated, {} held back (reordered); \
             {} POSTs delivered in all",
            notif.queued - notif_before.queued,
            notif.dropped - notif_before.dropped,
            notif.duplicated - notif_before.duplicated,
            notif.reordered - notif_before.reordered,
            delivered
        );
        let total = |m: &BTreeMap<String, usize>| m.values().sum::<usize>();
        let (td_orb, td_desk) = (td_faults_of(TD_LOGIN), td_faults_of(DESK_LOGIN));
        let _ = writeln!(
            fig,
            "  API faults injected: Graph {} of {graph_requests} requests by ORB ({:.1}%): {}",
            total(&graph_faults),
            100.0 * total(&graph_faults) as f64 / graph_requests.max(1) as f64,
            describe(&graph_faults)
        );
        let _ = writeln!(
            fig,
            "  TOPdesk {} of {} requests by ORB ({:.1}%): {}; {} of {} requests by the test's service desk",
            total(&td_orb),
            td_calls(TD_LOGIN),
            100.0 * total(&td_orb) as f64 / td_calls(TD_LOGIN).max(1) as f64,
            describe(&td_orb),
            total(&td_desk),
            td_calls(DESK_LOGIN),
        );
        let graph_later = site.graph_em.requests().len() - graph_after;
        let td_later = site.td.emulator.request_log()[td_after..]
            .iter()
            .filter(|r| r.login.as_deref() == Some(TD_LOGIN))
            .count();
        let _ = writeln!(
            fig,
            "  ORB's calls while the faults were on: Graph {graph_requests}, TOPdesk {}; after (catching up and \
             healing, with a sweep every {} s): Graph {graph_later}, TOPdesk {td_later}",
            td_calls(TD_LOGIN),
            beat.as_secs()
        );
        let _ = writeln!(
            fig,
            "  burst {:.1} s ({:.0} edits/s); {} {:.1} s after the faults stopped (both sides last changed at \
             {:.1} s); whole test {:.1} s",
            burst_time.as_secs_f64(),
            edits as f64 / burst_time.as_secs_f64(),
            if converge_time.as_secs() >= 180 { "gave up" } else { "converged" },
            converge_time.as_secs_f64(),
            settled.as_secs_f64(),
            test_started.elapsed().as_secs_f64()
        );
        let _ = writeln!(
            fig,
            "  final: model {} live bookings; Exchange {} slots, TOPdesk {} slots; ORB {} live records; \
             missing in Exchange {}, missing in TOPdesk {}, extra in Exchange {}, extra in TOPdesk {}, \
             doubled on a side {}, doubled records {}",
            model.len(),
            exchange.len(),
            topdesk.len(),
            records,
            missing_in_exchange.len(),
            missing_in_topdesk.len(),
            extra_in_exchange.len(),
            extra_in_topdesk.len(),
            doubled_sides.len(),
            doubled.len()
        );
        eprint!("{fig}");

        let wrong: Vec<Slot> = missing_in_exchange
            .iter()
            .chain(&missing_in_topdesk)
            .chain(&extra_in_exchange)
            .chain(&extra_in_topdesk)
            .chain(doubled_sides.iter().map(|(_, s, _)| s))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !wrong.is_empty() || !doubled.is_empty() {
            let mut detail = String::new();
            for (what, list) in [
                ("missing in Exchange", &missing_in_exchange),
                ("missing in TOPdesk", &missing_in_topdesk),
                ("extra in Exchange", &extra_in_exchange),
                ("extra in TOPdesk", &extra_in_topdesk),
            ] {
                for s in list.iter().take(8) {
                    let _ = writeln!(detail, "  {what}: {s}");
                }
            }
            for (side, s, n) in doubled_sides.iter().take(8) {
                let _ = writeln!(detail, "  {n}× in {side}: {s}");
            }
            for (room, at, n) in doubled.iter().take(8) {
                let _ = writeln!(detail, "  {n} live records for {room} at {at}");
            }
            let _ = orb.kill();
            let _ = orb.wait();
            let diagnosis = diagnose(&site, &*store, &wrong).await;
            let kept = if std::env::var_os("ORB_CHAOS_KEEP").is_some() {
                let mut site = site;
                let dir = std::mem::replace(&mut site.dir, tempfile::tempdir().unwrap());
                format!("ORB's data dir, database and log (serve.log) are kept in {}", dir.keep().display())
            } else {
                "set ORB_CHAOS_KEEP=1 to keep ORB's data dir, database and log".to_owned()
            };
            let failure = format!(
                "{db_name}: no convergence within 180 s after the burst (seed {seed:#x}):\n{detail}\n{diagnosis}\n{kept}"
            );
            eprintln!("{failure}");
            failures.push(failure);
            continue;
        }
        if converge_time > heal_limit {
            let diagnosis = diagnose(&site, &*store, late.as_deref().unwrap_or_default()).await;
            let failure = format!(
                "{db_name}: converged {:.1} s after the faults stopped, later than one sweep beat ({} s) and 60 s \
                 for the backlog and the sweep's own work (seed {seed:#x}); still wrong then:\n{diagnosis}",
                converge_time.as_secs_f64(),
                beat.as_secs()
            );
            eprintln!("{failure}");
            failures.push(failure);
        }
        assert!(model.len() > edits / 10, "the burst left bookings: {}", model.len());
        assert_eq!(records, model.len(), "ORB's live records match the live bookings");
        orb.kill().unwrap();
        orb.wait().unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of the databases did not converge:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Anna's meeting in `room` at `start` whose booking ORB has linked on both sides (a live record with the
/// meeting's `iCalUId` and a reservation).
async fn synced_meeting(
    site: &Site,
    store: &dyn Store,
    tenant: TenantId,
    room: usize,
    start: DateTime<Utc>,
) -> Option<String> {
    let events = site.graph_em.calendar_view(support::ANNA, start, start + Duration::minutes(1)).ok()?;
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

/// The live reservation in `room` at `start` whose booking ORB has linked on both sides (a live record with
/// the reservation and an Outlook meeting).
async fn synced_reservation(
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

/// What an edit of an existing booking acts on.
enum Target {
    Meeting(String),
    Reservation(ReservationId),
}

// ---- cost ----

/// Overall per-change bound asserted by the cost test. The target is 1.3 API calls per synced change; the
/// engine spends more today (see the printed table), so this is the current figure rounded up: a change
/// that makes sync more expensive fails here. Lower it as the engine gets cheaper. (3.72 when a booking
/// made at the TOPdesk desk got ORB's external link; 3.56 with a cancel sent without a read first; 2.89
/// since a first try at a new booking creates without the guard look-up and a room's copy that shows the
/// meeting's own subject answers for it without a read of the organizer's copy; 1.89 since the poll's list
/// carries what an observation needs and ORB's own Exchange writes come back without a read; 1.72 since a
/// reservation ORB cancels is not read back.)
const COST_BOUND: f64 = 1.8;

/// Changes of each kind the cost test makes.
const COST_REPS: usize = 3;

/// One ORB request, in words: its shape (ids replaced) and whether it is scheduled background work.
fn graph_shape(r: &orb_emulators::graph::RequestRecord) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut after = "";
    for seg in r.path.split('/').filter(|s| !s.is_empty()) {
        let shown = match after {
            "users" if ROOMS.iter().any(|room| room.eq_ignore_ascii_case(seg)) => "{room}".to_owned(),
            "users" => "{user}".to_owned(),
            "events" | "subscriptions" => "{id}".to_owned(),
            _ => seg.to_owned(),
        };
        after = if matches!(seg, "users" | "events" | "subscriptions") { seg } else { "" };
        parts.push(shown);
    }
    let path = parts.join("/");
    // Subscription upkeep is background; a room's calendarView is the sweep's only at its beat (3600 s
    // here, so not while changes are measured): the worker reads the organizer's calendarView per change.
    let background = path.starts_with("v1.0/subscriptions");
    (format!("Graph {} /{path}", r.method), background)
}

fn topdesk_shape(r: &orb_emulators::topdesk::RequestRecord) -> (String, bool) {
    let path: Vec<String> = r
        .path
        .trim_start_matches("/tas/api/")
        .split('/')
        .map(|seg| {
            if seg.len() >= 32 || seg.chars().all(|c| c.is_ascii_digit()) {
                "{id}".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect();
    let path = path.join("/");
    let query = r.query.as_deref().unwrap_or_default();
    let (what, background) = match (r.method.as_str(), path.as_str()) {
        ("GET", "reservations") if query.contains("plannedEndDate") => {
            (" (window list: poll or sweep)", true)
        }
        ("GET", "reservations") if query.contains("externalLinks") => (" (by external link)", false),
        ("GET", "persons") => (" (by e-mail)", false),
        _ => ("", false),
    };
    (format!("TOPdesk {} /{path}{what}", r.method), background)
}

/// Where the request logs stood.
#[derive(Debug, Clone, Copy)]
struct Mark {
    graph: usize,
    topdesk: usize,
    at: Instant,
}

fn mark(site: &Site) -> Mark {
    Mark {
        graph: site.graph_em.requests().len(),
        topdesk: site.td.emulator.request_log().len(),
        at: Instant::now(),
    }
}

/// ORB's requests between two marks: (shape, background) of each, Graph first.
fn orb_requests(site: &Site, from: Mark, to: Mark) -> Vec<(String, bool)> {
    let graph = site.graph_em.requests();
    let td = site.td.emulator.request_log();
    graph[from.graph..to.graph]
        .iter()
        .map(graph_shape)
        .chain(
            td[from.topdesk..to.topdesk]
                .iter()
                .filter(|r| r.login.as_deref() == Some(TD_LOGIN))
                .map(topdesk_shape),
        )
        .collect()
}

/// Waits until both sides show exactly `model`, then until ORB is quiet: its queue empty and two more
/// TOPdesk window polls done (the poll is where ORB sees its own TOPdesk writes come back).
async fn synced_and_quiet(site: &Site, store: &dyn Store, model: &BTreeSet<Slot>, what: &str) {
    site.eventually(what, 30, || {
        let w = window();
        let exchange: BTreeSet<Slot> = exchange_slots(&site.graph_em, &site.rooms, w).into_keys().collect();
        let topdesk: BTreeSet<Slot> = topdesk_slots(&site.td.emulator, &site.rooms, w).into_keys().collect();
        (exchange == *model && topdesk == *model).then_some(())
    })
    .await;
    let polls = |site: &Site| {
        site.td
            .emulator
            .request_log()
            .iter()
            .filter(|r| r.login.as_deref() == Some(TD_LOGIN) && topdesk_shape(r).1)
            .count()
    };
    let tenant = store.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap();
    let first = polls(site);
    let deadline = Instant::now() + StdDuration::from_secs(30);
    loop {
        let busy = store.list_jobs(tenant.id, JobStatus::Queued).await.unwrap().len()
            + store.list_jobs(tenant.id, JobStatus::Running).await.unwrap().len();
        if busy == 0 && polls(site) >= first + 2 {
            return;
        }
        assert!(Instant::now() < deadline, "ORB did not become quiet after {what}:\n{}", site.log_text());
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
}

fn tally(into: &mut BTreeMap<String, usize>, requests: &[(String, bool)]) {
    for (shape, _) in requests {
        *into.entry(shape.clone()).or_default() += 1;
    }
}

fn listing(calls: &BTreeMap<String, usize>, per: f64) -> String {
    calls
        .iter()
        .map(|(shape, n)| format!("{shape} ×{}", trim(*n as f64 / per)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn trim(x: f64) -> String {
    let text = format!("{x:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cost_of_steady_state_sync_per_change() {
    const NEAR_POLL_SECONDS: u64 = 2;
    const IDLE_SECONDS: u64 = 20;
    let mut failures: Vec<String> = Vec::new();
    for db in databases() {
        let db_name = match db {
            support::Db::Sqlite => "SQLite",
            support::Db::Postgres(_) => "PostgreSQL",
        };
        let test_started = Instant::now();
        let mut site = Site::new(&db, "cost-test").await;
        // The rooms are set up as `orb check` asks where the policy keeps subjects: their copies keep the
        // meeting's subject (no `DeleteSubject`, no `AddOrganizerToSubject`), so the room's copy answers
        // for the meeting. (A room that rewrites subjects costs one read of the organizer's copy per
        // Outlook change.)
        for room in ROOMS {
            let keep = orb_emulators::graph::RoomSettings {
                delete_subject: false,
                add_organizer_to_subject: false,
                ..Default::default()
            };
            assert!(site.graph_em.set_room_settings(room, keep));
        }
        // Production beats, but the near poll at 2 s (default 10 s) so a TOPdesk change is seen quickly.
        site.set_var("ORB__SCHEDULE__NEAR_POLL_SECONDS", &NEAR_POLL_SECONDS.to_string());
        site.set_var("ORB__SCHEDULE__HORIZON_POLL_SECONDS", "300");
        site.set_var("ORB__SCHEDULE__SUBSCRIPTIONS_SECONDS", "300");
        site.set_var("ORB__SCHEDULE__RECONCILE_SECONDS", "3600");
        site.set_var("ORB__SCHEDULE__RELOAD_SECONDS", "10");
        let desk = desk_client(&site);
        let begin = mark(&site);
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        site.eventually("the subscriptions", 30, || {
            (site.subscribed(ROOMS[0]) && site.subscribed(ROOMS[1])).then_some(())
        })
        .await;
        let store = site.open_store().await;
        let mut model: BTreeSet<Slot> = BTreeSet::new();
        synced_and_quiet(&site, &*store, &model, "start-up").await;
        let idle_from = mark(&site);
        let startup = orb_requests(&site, begin, idle_from);

        // Idle: only the scheduled background work.
        tokio::time::sleep(StdDuration::from_secs(IDLE_SECONDS)).await;
        let idle_to = mark(&site);
        let idle = orb_requests(&site, idle_from, idle_to);
        let idle_minutes = (idle_to.at - idle_from.at).as_secs_f64() / 60.0;

        // One change at a time; each kind acts on the booking the one before it made (create, retime,
        // cancel on each side).
        let mut slots = Slots::new(ROOMS.len());
        let mut per_kind: BTreeMap<Edit, BTreeMap<String, usize>> = BTreeMap::new();
        let mut background: BTreeMap<String, usize> = BTreeMap::new();
        let mut background_time = StdDuration::ZERO;
        let mut changes = 0_usize;
        let mut current = slot(0, slots.base);
        for rep in 0..COST_REPS {
            let room = rep % 2;
            for kind in Edit::ALL {
                let from = mark(&site);
                match kind {
                    Edit::OutlookBook | Edit::TopdeskCreate => {
                        let start = slots.fresh(room);
                        if kind == Edit::OutlookBook {
                            site.book(ROOMS[room], start, &format!("Cost {rep}")).await;
                        } else {
                            desk_create(&site, &desk, room, start).await;
                        }
                        current = slot(room, start);
                        model.insert(current.clone());
                    }
                    Edit::OutlookRetime | Edit::OutlookCancel => {
                        let id = site.meeting_at(ROOMS[room], current.start).expect("Anna's meeting");
                        model.remove(&current);
                        if kind == Edit::OutlookRetime {
                            let start = slots.fresh(room);
                            site.retime(&id, start).await;
                            current = slot(room, start);
                            model.insert(current.clone());
                        } else {
                            site.cancel_meeting(&id).await;
                        }
                    }
                    Edit::TopdeskReschedule | Edit::TopdeskCancel => {
                        let id = site.reservation_at(room, current.start).expect("the reservation");
                        model.remove(&current);
                        if kind == Edit::TopdeskReschedule {
                            let start = slots.fresh(room);
                            desk.reschedule_reservation(id, start, start + Duration::hours(1)).await.unwrap();
                            current = slot(room, start);
                            model.insert(current.clone());
                        } else {
                            desk.cancel_reservation(id, &Reason::Default).await.unwrap();
                        }
                    }
                }
                synced_and_quiet(&site, &*store, &model, kind.name()).await;
                let to = mark(&site);
                let requests = orb_requests(&site, from, to);
                let (bg, own): (Vec<_>, Vec<_>) =
                    requests.into_iter().partition(|(_, background)| *background);
                tally(per_kind.entry(kind).or_default(), &own);
                tally(&mut background, &bg);
                background_time += to.at - from.at;
                changes += 1;
            }
        }

        // One reconciliation sweep of both rooms holding a few live bookings (4 made in Outlook, 4 in
        // TOPdesk), triggered as Graph's `missed` lifecycle event does it: what a sweep costs.
        for i in 0..8 {
            let room = i % 2;
            let start = slots.fresh(room);
            if i < 4 {
                site.book(ROOMS[room], start, &format!("Kept {i}")).await;
            } else {
                desk_create(&site, &desk, room, start).await;
            }
            model.insert(slot(room, start));
        }
        synced_and_quiet(&site, &*store, &model, "8 bookings kept").await;
        let tenant = store.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap();
        let jobs_before = store.list_jobs(tenant.id, JobStatus::Done).await.unwrap().len();
        let from = mark(&site);
        for sub in site.graph_em.subscriptions() {
            assert!(site.graph_em.send_lifecycle(&sub.id, LifecycleEventType::Missed));
        }
        site.eventually("the sweeps after `missed`", 30, || {
            let log = site.log_text();
            (log.matches("missed notifications of").count() >= 2).then_some(())
        })
        .await;
        synced_and_quiet(&site, &*store, &model, "the sweeps").await;
        let sweep_requests = orb_requests(&site, from, mark(&site));
        let sweep_jobs = store.list_jobs(tenant.id, JobStatus::Done).await.unwrap().len() - jobs_before;
        let records = store.list_bookings(tenant.id, &BookingFilter::default()).await.unwrap().len();

        // The table.
        let count = |calls: &BTreeMap<String, usize>, side: &str| -> usize {
            calls.iter().filter(|(s, _)| s.starts_with(side)).map(|(_, n)| n).sum()
        };
        let mut total = 0;
        let mut table = String::new();
        let _ = writeln!(
            table,
            "cost figures ({db_name}; near poll every {NEAR_POLL_SECONDS} s, horizon poll 300 s, subscriptions \
             300 s, sweep 3600 s; {COST_REPS} changes of each kind, one at a time, each waited for):"
        );
        let _ = writeln!(
            table,
            "  {:<20} {:>6} {:>8} {:>7}   where the calls go (per change)",
            "change", "Graph", "TOPdesk", "total"
        );
        for kind in Edit::ALL {
            let calls = per_kind.get(&kind).cloned().unwrap_or_default();
            let (g, t) = (count(&calls, "Graph"), count(&calls, "TOPdesk"));
            total += g + t;
            let per = COST_REPS as f64;
            let _ = writeln!(
                table,
                "  {:<20} {:>6} {:>8} {:>7}   {}",
                kind.name(),
                trim(g as f64 / per),
                trim(t as f64 / per),
                trim((g + t) as f64 / per),
                listing(&calls, per)
            );
        }
        let per_change = total as f64 / changes as f64;
        let _ = writeln!(
            table,
            "  overall: {total} calls for {changes} synced changes = {per_change:.2} calls per synced change"
        );
        // This runs the default policy, exchange-wins. Where a TOPdesk change can win a conflict
        // (topdesk-wins, latest-wins), ORB reads the reservation before writing an Outlook change over it:
        // one GET more per Outlook retime or cancel (orb-engine tests/conflicts.rs measures it per policy);
        // the If-Match on Graph writes costs nothing under every policy.
        let overwrites =
            Edit::ALL.iter().filter(|k| matches!(k, Edit::OutlookRetime | Edit::OutlookCancel)).count()
                * COST_REPS;
        let other = (total + overwrites) as f64 / changes as f64;
        let _ = writeln!(
            table,
            "  per policy: exchange-wins {per_change:.2}; topdesk-wins and latest-wins {other:.2} ({overwrites} reads \
             of a reservation before an Outlook change is written over it)"
        );
        let mut idle_calls = BTreeMap::new();
        tally(&mut idle_calls, &idle);
        let idle_change: usize = idle.iter().filter(|(_, bg)| !bg).count();
        let _ = writeln!(
            table,
            "  background while idle: {} calls/min ({}){}",
            trim(idle.len() as f64 / idle_minutes),
            listing(&idle_calls, idle_minutes),
            if idle_change > 0 {
                format!("; {idle_change} of them not classed as background")
            } else {
                String::new()
            }
        );
        let minutes = background_time.as_secs_f64() / 60.0;
        let _ = writeln!(
            table,
            "  background during the changes: {} calls/min ({})",
            trim(background.values().sum::<usize>() as f64 / minutes),
            listing(&background, minutes)
        );
        let mut startup_calls = BTreeMap::new();
        tally(&mut startup_calls, &startup);
        let _ = writeln!(
            table,
            "  start-up (subscriptions, first polls and sweep): {} calls ({})",
            startup.len(),
            listing(&startup_calls, 1.0)
        );
        let mut sweep_calls = BTreeMap::new();
        tally(&mut sweep_calls, &sweep_requests);
        let _ = writeln!(
            table,
            "  one sweep of both rooms ({records} live records; after Graph's `missed`): {} calls, {} jobs \
             ({})",
            sweep_requests.len(),
            sweep_jobs,
            listing(&sweep_calls, 1.0)
        );
        let _ = writeln!(table, "  whole test {:.1} s", test_started.elapsed().as_secs_f64());
        eprint!("{table}");
        orb.kill().unwrap();
        orb.wait().unwrap();
        if per_change > COST_BOUND {
            failures.push(format!(
                "{db_name}: steady-state sync spends {per_change:.2} API calls per synced change (bound {COST_BOUND})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- regressions: what the chaos test found, each reproduced deterministically ----

/// Starts ORB with slow background beats (near poll 1 s; horizon poll, sweep and subscriptions rare) and
/// waits for both rooms' subscriptions.
async fn quiet_site(db: &support::Db, instance: &str) -> (Site, support::Orb) {
    let mut site = Site::new(db, instance).await;
    site.set_var("ORB__SCHEDULE__HORIZON_POLL_SECONDS", "3600");
    site.set_var("ORB__SCHEDULE__RECONCILE_SECONDS", "3600");
    site.set_var("ORB__SCHEDULE__SUBSCRIPTIONS_SECONDS", "300");
    let mut orb = site.spawn();
    site.healthy(&mut orb).await;
    site.eventually("the subscriptions", 30, || {
        (site.subscribed(ROOMS[0]) && site.subscribed(ROOMS[1])).then_some(())
    })
    .await;
    (site, orb)
}

/// Lost update (found by the chaos test): a TOPdesk change ORB has not seen yet (outside the near window,
/// before the horizon poll) must not be masked when ORB then writes to the same reservation. ORB used to
/// store the `modificationDate` of its own write's answer as its watermark, so neither the poll nor a sweep
/// saw the earlier change again; now an answer that shows more than ORB wrote is not taken as the
/// watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topdesk_change_is_not_masked_by_orbs_own_later_write() {
    let db = support::Db::Sqlite;
    let (mut site, mut orb) = quiet_site(&db, "repro-lost-update").await;
    let desk = desk_client(&site);
    // The room keeps the subject on its copy, so a renamed meeting reaches ORB through the room's
    // subscription (Exchange's default, DeleteSubject, leaves the room copy unchanged by a rename).
    let keep = orb_emulators::graph::RoomSettings { delete_subject: false, ..Default::default() };
    assert!(site.graph_em.set_room_settings(ROOMS[0], keep));
    tokio::time::sleep(StdDuration::from_secs(2)).await; // the sweeps after subscribing are done
    let start = tomorrow() + Duration::days(5) + Duration::hours(10);
    let moved = start + Duration::hours(4);
    let id = site.book(ROOMS[0], start, "Quarterly planning").await;
    let reservation = site.eventually("the reservation", 20, || site.reservation_at(0, start)).await;
    // The service desk moves the reservation; ORB does not see it yet (5 days out: not in the near window).
    desk.reschedule_reservation(reservation, moved, moved + Duration::hours(1)).await.unwrap();
    // Anna renames her meeting; ORB writes the new subject to the same reservation.
    let resp = site
        .http
        .patch(format!("{}/_emulator/mailboxes/{}/events/{id}", site.graph.base_url, support::ANNA))
        .json(&serde_json::json!({"subject": "Quarterly planning (moved?)"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    site.eventually("ORB's subject write", 20, || {
        site.td
            .emulator
            .reservations()
            .into_iter()
            .any(|r| r.brief_description.as_deref() == Some("Quarterly planning (moved?)"))
            .then_some(())
    })
    .await;
    // Now every poll and sweep runs often: they must find the reschedule.
    orb.kill().unwrap();
    orb.wait().unwrap();
    site.set_var("ORB__SCHEDULE__HORIZON_POLL_SECONDS", "1");
    site.set_var("ORB__SCHEDULE__RECONCILE_SECONDS", "2");
    let mut orb = site.spawn();
    site.healthy(&mut orb).await;
    tokio::time::sleep(StdDuration::from_secs(10)).await;
    let c = site.converged();
    let in_room: Vec<Slot> = exchange_slots(&site.graph_em, &site.rooms, window()).into_keys().collect();
    orb.kill().unwrap();
    orb.wait().unwrap();
    assert!(
        c.is_clean() && in_room == vec![slot(0, moved)],
        "the service desk's reschedule to {moved} was lost: room calendar {in_room:?}; {c}"
    );
}

/// A sweep that finds a booking made in Outlook before the booking's notification was processed (or when
/// it was lost) sees the *room copy's* subject, which Exchange rewrote (`DeleteSubject` /
/// `AddOrganizerToSubject`: "Anna Bakker"). The reservation must get the meeting's subject (the organizer's
/// copy), not that text; in the chaos run the rewrite used to make ORB write the subject back and forth on
/// every sweep (found by the chaos test).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sweep_takes_the_meetings_subject_not_the_room_copys() {
    let db = support::Db::Sqlite;
    let (mut site, mut orb) = quiet_site(&db, "repro-subject").await;
    orb.kill().unwrap();
    orb.wait().unwrap();
    site.set_var("ORB__SCHEDULE__RECONCILE_SECONDS", "2");
    let mut orb = site.spawn();
    site.healthy(&mut orb).await;
    // The booking's notification is lost: only the sweep can find it.
    site.graph_em.set_knobs(Knobs {
        notifications: NotificationKnobs { drop_next: 1, ..NotificationKnobs::default() },
        ..Knobs::default()
    });
    let start = tomorrow() + Duration::hours(9);
    site.book(ROOMS[0], start, "Quarterly planning").await;
    let made = site
        .eventually("the reservation made by the sweep", 20, || {
            site.td.emulator.reservations().into_iter().find(|r| r.planned_start_date == Some(start))
        })
        .await;
    orb.kill().unwrap();
    orb.wait().unwrap();
    assert_eq!(made.brief_description.as_deref(), Some("Quarterly planning"), "the meeting's subject");
}
