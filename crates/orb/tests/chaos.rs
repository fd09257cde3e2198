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
//!   `ORB_CHAOS_SEED` / `ORB_CHAOS_EDITS` replay or resize a run. (The burst, the wait and the verdict are
//!   shared with the EWS chaos test, `tests/chaos_ews.rs`: `support/chaos.rs`.)
//! - **Cost**: without faults, one change of each kind at a time (Outlook create / retime / cancel,
//!   TOPdesk create / reschedule / cancel); the emulators' request logs attribute every call ORB made to the
//!   change it served or to the scheduled background work (TOPdesk window polls, sweeps, subscription
//!   upkeep), and the test prints calls per change kind, background calls per minute and calls per synced
//!   change.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use orb_core::TenantName;
use orb_emulators::graph::{Knobs, NotificationKnobs};
use orb_emulators::topdesk::Faults;
use orb_graph::model::LifecycleEventType;
use orb_store::{BookingFilter, JobStatus, Store};

/// The tests of this file each run an `orb serve` with both emulators under load; side by side on a
/// 2-core machine they starved each other (a CI run saw SQLite writers wait 30 s for a connection and the
/// chaos test miss its time limit with 1,388 jobs still queued). One at a time, each measures ORB, not
/// its neighbour.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
use orb_testkit::{Slot, exchange_slots, topdesk_slots};
use orb_topdesk::Reason;
use support::chaos::{
    DESK_LOGIN, Edit, Settled, Slots, Verdict, burst, chaos_fault_plan, describe, desk_client, desk_create,
    diagnose, fault_label, from_env, keep_dir, seed_from_env, settle, slot, topdesk_faults,
    topdesk_faults_of, window,
};
use support::{Lcg, ROOMS, Site, TD_LOGIN, databases, tomorrow};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_2000_edits_with_lost_doubled_reordered_notifications_and_failing_calls_converge() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let edits: usize = from_env("ORB_CHAOS_EDITS", 2000);
    let rate: f64 = from_env("ORB_CHAOS_RATE", 50.0);
    let seed = seed_from_env(0xC4A0_5EED_2026);
    // The sweep beat: after the faults stop, both sides must be equal within one beat plus the time the
    // burst's backlog (queued notifications and retries, some 20 s here) and one sweep take: 60 s allowed.
    // Measured over seeds 0x5eed0001…a on a 2-core machine: SQLite 11.5–21.1 s (median 20.5), PostgreSQL
    // 20.3–49.0 s (median 25.4).
    let beat = StdDuration::from_secs(from_env("ORB_CHAOS_BEAT_SECONDS", 30));
    let heal_limit = beat + StdDuration::from_secs(60);
    // Every database is run (and its figures printed) before the test fails.
    let mut failures: Vec<String> = Vec::new();
    for db in databases() {
        let db_name = db.name();
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
        site.td.emulator.set_faults(topdesk_faults(seed));

        let store = site.open_store().await;
        let tenant = store.tenant_by_name(&TenantName::parse("contoso").unwrap()).await.unwrap().id;
        let burst = burst(&site, &desk, &*store, tenant, &mut rng, edits, rate, &mut orb, |_| {}).await;

        // Faults off; the sweeps must heal what was lost.
        let graph_after = site.graph_em.requests().len();
        let notif = site.graph_em.notification_faults();
        site.graph_em.set_knobs(Knobs::default());
        site.td.emulator.set_faults(Faults::default());
        let td_log = site.td.emulator.request_log();
        let td_after = td_log.len();

        let model = burst.model();
        let settled = settle(&site, &model, heal_limit, StdDuration::from_secs(180), &mut orb).await;

        // Figures.
        let graph_requests = graph_after - graph_before;
        let graph_burst = &site.graph_em.requests()[graph_before..graph_after];
        let graph_faults =
            support::chaos::tally(graph_burst.iter().filter_map(|r| {
                r.fault_kind.as_ref().map(|k| fault_label(k, r.fault, r.fault_after_handling))
            }));
        let td_burst = &td_log[td_before..];
        let deliveries = site.graph_em.deliveries();
        let delivered = deliveries.iter().filter(|d| d.outcome == "delivered").count();
        let verdict = Verdict::of(&settled, &model, &*store).await;

        let mut fig = String::new();
        let _ = writeln!(
            fig,
            "chaos figures ({db_name}, seed {seed:#x}, {edits} edits over {} rooms, paced at {rate} edits/s):",
            ROOMS.len()
        );
        fig.push_str(&burst.table());
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
        let ((td_orb, td_orb_calls), (td_desk, td_desk_calls)) =
            (topdesk_faults_of(td_burst, TD_LOGIN), topdesk_faults_of(td_burst, DESK_LOGIN));
        let _ = writeln!(
            fig,
            "  API faults injected: Graph {} of {graph_requests} requests by ORB ({:.1}%): {}",
            total(&graph_faults),
            100.0 * total(&graph_faults) as f64 / graph_requests.max(1) as f64,
            describe(&graph_faults)
        );
        let _ = writeln!(
            fig,
            "  TOPdesk {} of {td_orb_calls} requests by ORB ({:.1}%): {}; {} of {td_desk_calls} requests by the \
             test's service desk",
            total(&td_orb),
            100.0 * total(&td_orb) as f64 / td_orb_calls.max(1) as f64,
            describe(&td_orb),
            total(&td_desk),
        );
        let graph_later = site.graph_em.requests().len() - graph_after;
        let td_later = site.td.emulator.request_log()[td_after..]
            .iter()
            .filter(|r| r.login.as_deref() == Some(TD_LOGIN))
            .count();
        let _ = writeln!(
            fig,
            "  ORB's calls while the faults were on: Graph {graph_requests}, TOPdesk {td_orb_calls}; after \
             (catching up and healing, with a sweep every {} s): Graph {graph_later}, TOPdesk {td_later}",
            beat.as_secs()
        );
        let _ = writeln!(fig, "  {}", timing(&burst, &settled, edits, test_started));
        let _ = writeln!(fig, "  {}", verdict.summary(&model, &settled));
        eprint!("{fig}");

        if !verdict.converged() {
            let _ = orb.kill();
            let _ = orb.wait();
            let diagnosis = diagnose(&site, &*store, &verdict.wrong(), &model).await;
            let kept = keep_dir(&mut site);
            let failure = format!(
                "{db_name}: no convergence within 180 s after the burst (seed {seed:#x}):\n{}\n{diagnosis}\n{kept}",
                verdict.detail()
            );
            eprintln!("{failure}");
            failures.push(failure);
            continue;
        }
        if settled.time > heal_limit {
            let diagnosis =
                diagnose(&site, &*store, settled.late.as_deref().unwrap_or_default(), &model).await;
            let failure = format!(
                "{db_name}: converged {:.1} s after the faults stopped, later than one sweep beat ({} s) and 60 s \
                 for the backlog and the sweep's own work (seed {seed:#x}); still wrong then:\n{diagnosis}",
                settled.time.as_secs_f64(),
                beat.as_secs()
            );
            eprintln!("{failure}");
            failures.push(failure);
        }
        assert!(model.len() > edits / 10, "the burst left bookings: {}", model.len());
        if verdict.records != model.len() {
            let diagnosis = diagnose(&site, &*store, &[], &model).await;
            failures.push(format!(
                "{db_name} (seed {seed:#x}): ORB has {} live records for {} live bookings:\n{diagnosis}",
                verdict.records,
                model.len()
            ));
        }
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

/// The burst's and the heal's times, in words.
fn timing(burst: &support::chaos::Burst, settled: &Settled, edits: usize, started: Instant) -> String {
    format!(
        "burst {:.1} s ({:.0} edits/s); {} {:.1} s after the faults stopped (both sides last changed at {:.1} \
         s); whole test {:.1} s",
        burst.time.as_secs_f64(),
        edits as f64 / burst.time.as_secs_f64(),
        if settled.gave_up { "gave up" } else { "converged" },
        settled.time.as_secs_f64(),
        settled.last_change.as_secs_f64(),
        started.elapsed().as_secs_f64()
    )
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
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    const NEAR_POLL_SECONDS: u64 = 2;
    const IDLE_SECONDS: u64 = 20;
    let mut failures: Vec<String> = Vec::new();
    for db in databases() {
        let db_name = db.name();
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
        // `ORB_COST_ROOM_ANSWER_MS=500`: rooms answer half a second after the write, as Exchange's booking
        // attendant does (reference §6.2), instead of inside it (the figure a reader compares with).
        if let Some(ms) = std::env::var("ORB_COST_ROOM_ANSWER_MS").ok().and_then(|v| v.parse().ok()) {
            site.graph_em
                .set_knobs(orb_emulators::graph::Knobs { room_answer_delay_ms: ms, ..site.graph_em.knobs() });
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
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
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
    // A few beats find it on an idle machine (about 4 s); a loaded one gets a minute before the reschedule
    // counts as lost.
    let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
    let (c, in_room) = loop {
        let c = site.converged();
        let in_room: Vec<Slot> = exchange_slots(&site.graph_em, &site.rooms, window()).into_keys().collect();
        if (c.is_clean() && in_room == vec![slot(0, moved)]) || std::time::Instant::now() > deadline {
            break (c, in_room);
        }
        tokio::time::sleep(StdDuration::from_millis(500)).await;
    };
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
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
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
