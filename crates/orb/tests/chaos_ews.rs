//! Chaos for a tenant on Exchange Server on-premises (EWS): a real `orb serve` (one child process,
//! configured through the CLI with `[exchange] kind = "ews"`) between the EWS and TOPdesk emulators of this
//! test process, on SQLite and on PostgreSQL (when `ORB_TEST_POSTGRES_URL` is set).
//!
//! 400 seeded random edits on both sides (Anna's Outlook meetings made without ORB's extended property,
//! moved and cancelled through EWS; TOPdesk creates, reschedules and cancellations at the service desk),
//! every edit in a fresh hour slot, while
//! - Exchange's push notifications are lost on the way (10%, Exchange takes them as delivered), delivered
//!   twice (10%) and held back behind the next one (10%, reordered);
//! - EWS fails about 6% of the calls, ORB's and the person's in Outlook alike: `ErrorServerBusy` with a
//!   `BackOffMilliseconds`, a transient SOAP fault, a SOAP `ErrorInternalServerError`, IIS's HTML 503 (some
//!   with `Retry-After`), resets (of writes also after Exchange made the change, so the answer is lost), no
//!   answer for 1.5 s, slow bodies; and every 100 edits an `ErrorServerBusy` storm (the next 25 calls);
//! - TOPdesk fails as in the Graph chaos test (`support::chaos::topdesk_faults`).
//!
//! Then the faults stop and the sweeps heal: both sides equal to each other and to the test's model (every
//! slot a person's last edit left), nothing doubled on a side, one live ORB record per booking, no dead
//! job. The burst, the wait and the verdict are the Graph chaos test's (`support/chaos.rs`).
//! `ORB_CHAOS_SEED` (hex) replays a run, `ORB_CHAOS_EDITS` makes it longer.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration as StdDuration, Instant};

use orb_emulators::ews::{Knobs, PushKnobs, RequestRecord};
use orb_emulators::faults::{BodyStyle, FaultKind, FaultPlan, FaultRule};
use orb_emulators::topdesk::Faults;
use support::chaos::{
    DESK_LOGIN, Verdict, burst, describe, desk_client, diagnose, fault_label, from_env, keep_dir,
    seed_from_env, settle, tally, topdesk_faults, topdesk_faults_of,
};
use support::ews_site::EwsSite;
use support::{Lcg, ROOMS, TD_LOGIN, databases};

/// The EWS faults, on every operation (about 6% of the calls), before handling unless said.
fn ews_rules() -> Vec<FaultRule> {
    let held = FaultKind::timeout(StdDuration::from_millis(1500));
    vec![
        FaultRule::new(FaultKind::ServerBusy { back_off_ms: 150 }).rate(0.02),
        FaultRule::new(FaultKind::SoapFault { code: "ErrorInternalServerTransientError".into() }).rate(0.005),
        FaultRule::new(FaultKind::status(500)).operation("write").rate(0.005),
        FaultRule::new(FaultKind::status_with(503, BodyStyle::Html)).rate(0.01),
        FaultRule::new(FaultKind::Status { status: 503, body: BodyStyle::Html, retry_after_secs: Some(1) })
            .rate(0.005),
        FaultRule::new(FaultKind::Reset).operation("read").rate(0.005),
        FaultRule::new(FaultKind::Reset).operation("write").rate(0.01).after_handling(),
        FaultRule::new(held).rate(0.002),
        FaultRule::new(FaultKind::SlowBody { chunk_bytes: 256, delay_ms: 5 }).operation("read").rate(0.005),
    ]
}

/// The plan for the `storm`th stretch of the burst: the faults above, led by an `ErrorServerBusy` storm of
/// the next 25 calls (none for stretch 0).
fn ews_fault_plan(seed: u64, storm: u64) -> FaultPlan {
    let mut rules = Vec::new();
    if storm > 0 {
        rules.push(FaultRule::new(FaultKind::ServerBusy { back_off_ms: 300 }).next(25));
    }
    rules.extend(ews_rules());
    FaultPlan::new(seed.wrapping_add(storm), rules)
}

/// An EWS fault as the figures name it.
fn ews_fault(r: &RequestRecord) -> Option<String> {
    let kind = r.fault.as_deref()?;
    // A slow body is the real answer, sent slowly: handled first by its nature.
    Some(fault_label(kind, Some(r.status), r.fault_after_handling && kind != "slowBody"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ews_chaos_with_lost_doubled_reordered_pushes_failing_calls_and_busy_storms_converges() {
    let edits: usize = from_env("ORB_CHAOS_EDITS", 400);
    let rate: f64 = from_env("ORB_CHAOS_RATE", 8.0);
    let seed = seed_from_env(0xE45_C4A0_2026);
    let beat = from_env("ORB_CHAOS_BEAT_SECONDS", 15_u64);
    const STORM_EVERY: usize = 100;
    let mut failures: Vec<String> = Vec::new();
    for db in databases() {
        let db_name = db.name();
        let test_started = Instant::now();
        let mut rng = Lcg(seed);
        let mut site = EwsSite::new(&db, "chaos-ews-test").await;
        site.set_var("ORB__SCHEDULE__RECONCILE_SECONDS", &beat.to_string());
        site.set_var("ORB__SCHEDULE__HORIZON_POLL_SECONDS", "5");
        let desk = desk_client(&site);
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        site.all_subscribed().await;

        let ews_before = site.em.requests().len();
        let deliveries_before = site.em.deliveries().len();
        let push_before = site.em.push_faults();
        let td_before = site.td.emulator.request_log().len();
        site.em.set_knobs(Knobs {
            push: PushKnobs {
                drop_percent: 10,
                duplicate_percent: 10,
                reorder_percent: 10,
                ..PushKnobs::default()
            },
            ..Knobs::default()
        });
        site.em.set_fault_plan(ews_fault_plan(seed, 0));
        site.td.emulator.set_faults(topdesk_faults(seed));

        let store = site.open_store().await;
        let tenant = site.tenant_id(&*store).await;
        let em = site.em.clone();
        let mut storms = 0_u64;
        let storm = |n: usize| {
            if (n + 1).is_multiple_of(STORM_EVERY) {
                storms += 1;
                em.set_fault_plan(ews_fault_plan(seed, storms));
            }
        };
        let burst = burst(&site, &desk, &*store, tenant, &mut rng, edits, rate, &mut orb, storm).await;

        // Faults off; the sweeps must heal what was lost.
        let ews_after = site.em.requests().len();
        let push = site.em.push_faults();
        site.em.set_knobs(Knobs::default());
        site.em.set_fault_plan(FaultPlan::default());
        site.td.emulator.set_faults(Faults::default());
        let td_log = site.td.emulator.request_log();
        let model = burst.model();
        let settled =
            settle(&site, &model, StdDuration::from_secs(beat + 60), StdDuration::from_secs(180), &mut orb)
                .await;
        let verdict = Verdict::of(&settled, &model, &*store).await;

        // Figures.
        let ews_burst = &site.em.requests()[ews_before..ews_after];
        let by = |orb: bool| -> (BTreeMap<String, usize>, usize) {
            let mine: Vec<&RequestRecord> = ews_burst.iter().filter(|r| site.by_orb(r) == orb).collect();
            (tally(mine.iter().filter_map(|r| ews_fault(r))), mine.len())
        };
        let ((ews_orb, ews_orb_calls), (ews_outlook, ews_outlook_calls)) = (by(true), by(false));
        let total = |m: &BTreeMap<String, usize>| m.values().sum::<usize>();
        let deliveries = &site.em.deliveries()[deliveries_before..];
        let posted = deliveries.iter().filter(|d| d.fault.as_deref() != Some("dropped")).count();
        let td_burst = &td_log[td_before..];
        let ((td_orb, td_orb_calls), (td_desk, td_desk_calls)) =
            (topdesk_faults_of(td_burst, TD_LOGIN), topdesk_faults_of(td_burst, DESK_LOGIN));
        let mut fig = String::new();
        let _ = writeln!(
            fig,
            "EWS chaos figures ({db_name}, seed {seed:#x}, {edits} edits over {} rooms, paced at {rate} edits/s):",
            ROOMS.len()
        );
        fig.push_str(&burst.table());
        let _ = writeln!(
            fig,
            "  push notifications: {} due during the burst, {} lost on the way, {} delivered twice, {} held back \
             (reordered); {posted} POSTs to ORB in all",
            push.queued - push_before.queued,
            push.dropped - push_before.dropped,
            push.duplicated - push_before.duplicated,
            push.reordered - push_before.reordered,
        );
        let _ = writeln!(
            fig,
            "  EWS faults injected: {} of {ews_orb_calls} requests by ORB ({:.1}%): {}",
            total(&ews_orb),
            100.0 * total(&ews_orb) as f64 / ews_orb_calls.max(1) as f64,
            describe(&ews_orb)
        );
        let _ = writeln!(
            fig,
            "    and {} of {ews_outlook_calls} requests by Anna's Outlook ({}); {storms} ErrorServerBusy storms of \
             25 calls",
            total(&ews_outlook),
            describe(&ews_outlook)
        );
        let _ = writeln!(
            fig,
            "  TOPdesk faults injected: {} of {td_orb_calls} requests by ORB ({:.1}%): {}; {} of {td_desk_calls} \
             requests by the service desk",
            total(&td_orb),
            100.0 * total(&td_orb) as f64 / td_orb_calls.max(1) as f64,
            describe(&td_orb),
            total(&td_desk),
        );
        let _ = writeln!(
            fig,
            "  burst {:.1} s; {} {:.1} s after the faults stopped (sweep every {beat} s; both sides last changed \
             at {:.1} s); whole run {:.1} s",
            burst.time.as_secs_f64(),
            if settled.gave_up { "gave up" } else { "converged" },
            settled.time.as_secs_f64(),
            settled.last_change.as_secs_f64(),
            test_started.elapsed().as_secs_f64()
        );
        let _ = writeln!(fig, "  {}", verdict.summary(&model, &settled));
        eprint!("{fig}");

        assert!(model.len() > edits / 10, "the burst left bookings: {}", model.len());
        if !verdict.converged() || verdict.records != model.len() || !verdict.dead_jobs.is_empty() {
            let _ = orb.kill();
            let _ = orb.wait();
            let diagnosis = diagnose(&site, &*store, &verdict.wrong(), &model).await;
            let kept = keep_dir(&mut site);
            let failure = format!(
                "{db_name} (seed {seed:#x}): {} wrong slots, {} live records for {} bookings, {} dead jobs:\n{}\n\
                 {diagnosis}\n{kept}",
                verdict.wrong().len(),
                verdict.records,
                model.len(),
                verdict.dead_jobs.len(),
                verdict.detail()
            );
            eprintln!("{failure}");
            failures.push(failure);
            continue;
        }
        orb.kill().unwrap();
        orb.wait().unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
