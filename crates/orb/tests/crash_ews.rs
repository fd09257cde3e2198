//! The SIGKILL crash test for a tenant on Exchange Server on-premises: a real `orb serve` (one child process,
//! configured through the CLI with `[exchange] kind = "ews"`) between the EWS and TOPdesk emulators of this
//! test process, killed with SIGKILL at random moments during a burst of changes on both sides and started
//! again; both sides must converge, on SQLite and on PostgreSQL (when `ORB_TEST_POSTGRES_URL` is set).
//! (The EWS chaos test — lost, doubled and reordered pushes with failing calls — is `tests/chaos_ews.rs`.)

mod support;

use std::time::Instant;

use support::ews_site::EwsSite;
use support::{Lcg, databases};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ews_serve_killed_with_sigkill_10_times_during_a_burst_converges() {
    const KILLS: usize = 10;
    for db in databases() {
        let seed = 0x05ee_de45_u64;
        let mut rng = Lcg(seed);
        let site = EwsSite::new(&db, "crash-ews-test").await;
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        site.all_subscribed().await;

        let support::burst::Burst { mut orb, changes: actions, took: burst } =
            support::burst::with_kills(&site, orb, 3, KILLS, &mut rng).await;
        let settle = Instant::now();
        let convergence = site
            .eventually("both sides to converge after the kills", 120, || {
                let c = site.converged();
                c.is_clean().then_some(c)
            })
            .await;
        let log = site.log_text();
        let restarts_with_work = log.matches("jobs of this instance's earlier run put back").count();
        let failed = site.em.deliveries().iter().filter(|d| d.outcome != "ok").count();
        eprintln!(
            "EWS crash figures ({}, seed {seed:#x}): {KILLS} SIGKILLs during {actions} changes over {:.1} s \
             ({restarts_with_work} kills cut off running jobs, {failed} push deliveries not answered OK by a \
             dead ORB); converged {:.1} s after the last restart: {convergence}",
            db.name(),
            burst.as_secs_f64(),
            settle.elapsed().as_secs_f64()
        );
        assert!(convergence.exchange >= actions / 3, "the burst made bookings: {convergence}");
        orb.kill().unwrap();
        orb.wait().unwrap();
    }
}
