//! The SIGKILL crash test for a tenant on Exchange Server on-premises: a real `orb serve` (one child process,
//! configured through the CLI with `[exchange] kind = "ews"`) between the EWS and TOPdesk emulators of this
//! test process, killed with SIGKILL at random moments during a burst of changes on both sides and started
//! again; both sides must converge, on SQLite and on PostgreSQL (when `ORB_TEST_POSTGRES_URL` is set).
//! (The EWS chaos test — lost, doubled and reordered pushes with failing calls — is `tests/chaos_ews.rs`.)

mod support;

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use orb_topdesk::{Reason, ReservationId};
use support::ews_site::EwsSite;
use support::{Lcg, ROOMS, databases, tomorrow};

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

        let started = Instant::now();
        let (mut kills, mut actions) = (0, 0);
        let mut slot = 0_i64;
        let mut next_slot = || {
            slot += 1;
            tomorrow() + Duration::days(slot / 10) + Duration::hours(8 + slot % 10)
        };
        let mut outlook: Vec<String> = Vec::new();
        let mut topdesk: Vec<ReservationId> = Vec::new();
        while kills < KILLS {
            for _ in 0..(1 + rng.next(4)) {
                actions += 1;
                match rng.next(100) {
                    0..40 => {
                        let room = ROOMS[rng.next(3) as usize];
                        outlook.push(site.book(room, next_slot(), &format!("Burst {actions}")).await);
                    }
                    40..65 => topdesk.push(site.reserve(rng.next(3) as usize, next_slot()).await),
                    65..85 if !outlook.is_empty() => {
                        let id = outlook[rng.next(outlook.len() as u64) as usize].clone();
                        site.retime(&id, next_slot()).await;
                    }
                    _ if !topdesk.is_empty() => {
                        let id = topdesk.swap_remove(rng.next(topdesk.len() as u64) as usize);
                        site.topdesk.cancel_reservation(id, &Reason::Default).await.unwrap();
                    }
                    _ => outlook.push(site.book(ROOMS[0], next_slot(), &format!("Burst {actions}")).await),
                }
                tokio::time::sleep(StdDuration::from_millis(20 + rng.next(150))).await;
            }
            // Kill at a random moment of the work those changes caused, then start again.
            tokio::time::sleep(StdDuration::from_millis(rng.next(400))).await;
            orb.kill().unwrap();
            orb.wait().unwrap();
            kills += 1;
            tokio::time::sleep(StdDuration::from_millis(rng.next(300))).await;
            orb = site.spawn();
        }
        site.healthy(&mut orb).await;
        let burst = started.elapsed();
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
            "EWS crash figures ({}, seed {seed:#x}): {kills} SIGKILLs during {actions} changes over {:.1} s \
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
