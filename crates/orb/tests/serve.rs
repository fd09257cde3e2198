//! `orb serve` as an operator runs it: a real `orb` process, configured with the CLI (tenant, settings,
//! sealed secrets, rooms), syncing between the Graph and TOPdesk emulators (in this test process, over
//! real HTTP), on SQLite and on PostgreSQL (when `ORB_TEST_POSTGRES_URL` is set; CI sets it).
//!
//! - both directions, a room added while it runs (reload), graceful stop on SIGTERM;
//! - `orb sync --dry-run` / `orb backfill` onboarding rooms whose bookings exist on both sides;
//! - two instances on one database: one subscription per room (scheduler leases), and when one instance
//!   is killed the other takes its scheduled work over and heals what was sent to the dead one;
//! - **crash**: the process is killed with SIGKILL at random moments during a burst of changes on both
//!   sides, at least 20 times, and restarted; afterwards the convergence checker (orb-testkit) finds both
//!   sides equal with nothing doubled.

mod support;

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use support::{ANNA, CLIENT_SECRET, Lcg, ROOMS, Site, TD_PASSWORD, databases, sigterm, tomorrow, wait_exit};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_syncs_both_ways_picks_up_a_new_room_and_stops_on_sigterm() {
    for db in databases() {
        let site = Site::new(&db, "serve-test").await;
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        site.eventually("the rooms' subscriptions", 20, || {
            (site.subscribed(ROOMS[0]) && site.subscribed(ROOMS[1])).then_some(())
        })
        .await;
        assert!(!site.subscribed(ROOMS[2]), "room 3 is not mapped yet");

        // Outlook → TOPdesk.
        let start = tomorrow() + Duration::hours(9);
        site.book(ROOMS[0], start, "Quarterly planning").await;
        let made = site
            .eventually("the reservation", 20, || {
                site.td.emulator.reservations().into_iter().find(|r| r.planned_start_date == Some(start))
            })
            .await;
        assert_eq!(
            made.requester.as_ref().and_then(|r| r.email.clone()).as_deref().map(str::to_ascii_lowercase),
            Some(ANNA.to_owned())
        );

        // TOPdesk → Outlook (found by the poller: no push configured).
        let start2 = tomorrow() + Duration::hours(13);
        site.reserve(1, start2).await;
        site.eventually("the meeting in Anna's calendar", 20, || {
            let events = site.graph_em.events(ANNA).ok()?;
            events.into_iter().find(|e| e.subject.as_deref() == Some("Made in TOPdesk"))
        })
        .await;

        // A room mapped while ORB runs is picked up without a restart.
        site.add_room(&site.rooms[2].0, &site.rooms[2].1);
        site.eventually("room 3's subscription", 20, || site.subscribed(ROOMS[2]).then_some(())).await;

        let convergence = site
            .eventually("both sides equal", 30, || {
                let c = site.converged();
                c.is_clean().then_some(c)
            })
            .await;
        assert_eq!((convergence.exchange, convergence.topdesk), (2, 2), "{convergence}");

        sigterm(&orb);
        let status = wait_exit(&mut orb, 20).await;
        assert!(status.success(), "orb serve ended with {status} after SIGTERM:\n{}", site.log_text());
        let log = site.log_text();
        assert!(log.contains("SIGTERM received") && log.contains("stopped"), "{log}");
        assert!(!log.contains(CLIENT_SECRET) && !log.contains(TD_PASSWORD), "a secret reached the log");
        // `orb serve` logs JSON unless told otherwise: one object per line, with level and message.
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{line}");
        }

        // Master-key rotation reseals the notification certificates too; ORB runs on with the new key and
        // still opens what Graph encrypts for the same certificate.
        let new_key = site.dir.path().join("master-2.key");
        let out = site.ok(&["keys", "rotate", "--new-key-file", new_key.to_str().unwrap()], None);
        assert!(out.contains("re-encrypted 2 secret(s), 1 notification certificate key(s)"), "{out}");
        let mut site = site;
        site.vars.retain(|(k, _)| k != "ORB_MASTER_KEY_FILE");
        site.vars.push(("ORB_MASTER_KEY_FILE".into(), new_key.display().to_string()));
        let out = site.ok(&["keys", "check"], None);
        assert!(
            out.contains("all 2 secret(s) open") && out.contains("all 1 notification certificate"),
            "{out}"
        );
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        let start3 = tomorrow() + Duration::hours(15);
        site.book(ROOMS[2], start3, "After the key rotation").await;
        site.eventually("the reservation after the key rotation", 20, || {
            site.td.emulator.reservations().into_iter().find(|r| r.planned_start_date == Some(start3))
        })
        .await;
        sigterm(&orb);
        assert!(wait_exit(&mut orb, 20).await.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_killed_with_sigkill_20_times_during_a_burst_converges() {
    const KILLS: usize = 20;
    for db in databases() {
        let seed = 0x0_5eed_2026_u64;
        let mut rng = Lcg(seed);
        let site = Site::new(&db, "crash-test").await;
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        site.eventually("the subscriptions", 20, || {
            (site.subscribed(ROOMS[0]) && site.subscribed(ROOMS[1])).then_some(())
        })
        .await;

        let support::burst::Burst { mut orb, changes: actions, took: burst } =
            support::burst::with_kills(&site, orb, 2, KILLS, &mut rng).await;
        let settle = Instant::now();
        let convergence = site
            .eventually("both sides to converge after the kills", 120, || {
                let c = site.converged();
                c.is_clean().then_some(c)
            })
            .await;
        let log = site.log_text();
        let restarts_with_work = log.matches("jobs of this instance's earlier run put back").count();
        let lost = site.graph_em.deliveries().iter().filter(|d| d.outcome != "delivered").count();
        eprintln!(
            "figures (seed {seed:#x}): {KILLS} SIGKILLs during {actions} changes over {:.1} s ({restarts_with_work} \
             kills cut off running jobs, {lost} notifications not delivered to a dead ORB); converged {:.1} s \
             after the last restart: {convergence}",
            burst.as_secs_f64(),
            settle.elapsed().as_secs_f64()
        );
        assert!(convergence.exchange >= actions / 3, "the burst made bookings: {convergence}");
        orb.kill().unwrap();
        orb.wait().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_dry_run_lists_the_onboarding_plan_and_backfill_carries_it_out() {
    for db in databases() {
        let site = Site::new(&db, "backfill-test").await;
        // Before ORB syncs anything: the same booking on both sides, one only in Outlook, one only in
        // TOPdesk (no subscription exists, so no notification reaches anyone).
        let both = tomorrow() + Duration::hours(9);
        site.book(ROOMS[0], both, "Board meeting").await;
        site.reserve(0, both).await;
        site.book(ROOMS[0], tomorrow() + Duration::hours(11), "Outlook only").await;
        site.reserve(0, tomorrow() + Duration::hours(14)).await;
        let (events, reservations) =
            (site.graph_em.events(ROOMS[0]).unwrap().len(), site.td.emulator.reservations().len());

        let plan = site.ok(&["sync", "--dry-run", "--tenant", "contoso", "--room", ROOMS[0]], None);
        assert!(plan.contains("1 to link, 2 new, 0 changed, 0 to cancel"), "{plan}");
        assert!(plan.contains("on both sides already: link them, write nothing"), "{plan}");
        assert!(plan.contains("new in Exchange: create it in TOPdesk"), "{plan}");
        assert!(plan.contains("new in TOPdesk: create it in Exchange"), "{plan}");
        assert!(plan.contains("dry run: nothing was written"), "{plan}");
        assert!(!plan.contains(ROOMS[1]), "only the selected room: {plan}");
        assert_eq!(
            (site.graph_em.events(ROOMS[0]).unwrap().len(), site.td.emulator.reservations().len()),
            (events, reservations),
            "a dry run writes nothing"
        );
        let again = site.ok(&["sync", "--dry-run", "--tenant", "contoso", "--room", ROOMS[0]], None);
        assert_eq!(again, plan, "and leaves nothing behind that would change the next plan");

        let out = site.ok(&["backfill", "--tenant", "contoso"], None);
        assert!(out.contains("backfill done"), "{out}");
        let convergence = site.converged();
        assert!(convergence.is_clean(), "{convergence}");
        assert_eq!((convergence.exchange, convergence.topdesk), (3, 3), "the pair was linked, not doubled");
        let after = site.ok(&["sync", "--dry-run", "--tenant", "contoso"], None);
        assert!(after.contains("0 to link, 0 new, 0 changed, 0 to cancel"), "{after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_do_not_double_and_the_survivor_takes_over() {
    for db in databases() {
        let site = Site::new(&db, "instance-a").await;
        let mut a = site.spawn();
        site.healthy(&mut a).await;
        let port = orb_testkit::free_port();
        let log_b = site.dir.path().join("serve-b.log");
        let mut b = site.spawn_second(port, "instance-b", &log_b);
        site.eventually("instance b to listen", 30, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
        let health = site.http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap();
        assert_eq!(health.text().await.unwrap(), "ok");
        let log = std::fs::read_to_string(&log_b).unwrap_or_default();
        assert!(log.contains("1 of 1 tenant(s) synced"), "{log}");
        site.eventually("the subscriptions", 20, || {
            (site.subscribed(ROOMS[0]) && site.subscribed(ROOMS[1])).then_some(())
        })
        .await;
        // Both run schedulers; the leases let only one of them make each room's subscription.
        tokio::time::sleep(StdDuration::from_secs(3)).await;
        let subs = site.graph_em.subscriptions();
        assert_eq!(subs.len(), 2, "one subscription per room, not one per instance: {subs:?}");

        let book = |i: i64| {
            let site = &site;
            async move {
                let start = tomorrow() + Duration::hours(8) + Duration::days(i / 6) + Duration::hours(i % 6);
                if i % 2 == 0 {
                    site.book(ROOMS[(i as usize / 2) % 2], start, &format!("Meeting {i}")).await;
                } else {
                    site.reserve((i as usize / 2) % 2, start).await;
                }
            }
        };
        for i in 0..6 {
            book(i).await;
        }
        let converged = |n: usize| {
            let site = &site;
            move || {
                let c = site.converged();
                (c.is_clean() && c.exchange == n && c.topdesk == n).then_some(c)
            }
        };
        site.eventually("both sides equal", 60, converged(6)).await;

        // Instance a dies (its scheduler leases and the notification URL with it); b carries on alone:
        // its schedulers take over once a's leases expire, and its sweeps heal the notifications that
        // went to the dead instance.
        a.kill().unwrap();
        a.wait().unwrap();
        for i in 6..12 {
            book(i).await;
        }
        let c = site.eventually("instance b to sync the rest alone", 120, converged(12)).await;
        let log_b_text = std::fs::read_to_string(&log_b).unwrap();
        eprintln!(
            "figures: after instance a died, b synced to {c}; b ran {} jobs",
            log_b_text.matches("job done").count()
        );
        assert_eq!(site.graph_em.subscriptions().len(), 2, "still one subscription per room");
        sigterm(&b);
        assert!(wait_exit(&mut b, 20).await.success());
    }
}

/// `[schedule]` changes in the configuration file take effect at the next reload, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_sweep_beat_in_the_configuration_file_applies_without_a_restart() {
    for db in databases() {
        let mut site = Site::new(&db, "beat-test").await;
        site.vars.retain(|(k, _)| k != "ORB__SCHEDULE__RECONCILE_SECONDS");
        let config = site.dir.path().join("orb.toml");
        std::fs::write(&config, "[schedule]\nreconcile_seconds = 3600\n").unwrap();
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        let store = site.open_store().await;
        let tenant = store.list_tenants().await.unwrap().remove(0).id;
        let sweeps = || {
            let store = store.clone();
            async move {
                let done = store.list_jobs(tenant, orb_store::JobStatus::Done).await.unwrap();
                done.iter().filter(|j| j.kind == "reconcile.sweep").count()
            }
        };
        // The first beat sweeps each room at start; with an hour's beat nothing more comes.
        let mut first = 0;
        for _ in 0..150 {
            first = sweeps().await;
            if first >= 2 {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        assert_eq!(first, 2, "one sweep per room at start:\n{}", site.log_text());
        tokio::time::sleep(StdDuration::from_secs(3)).await;
        assert_eq!(sweeps().await, 2, "an hour's beat: no second sweep yet");

        // The operator shortens the beat in the file; the running service follows.
        std::fs::write(&config, "[schedule]\nreconcile_seconds = 2\n").unwrap();
        let mut now = 0;
        for _ in 0..200 {
            now = sweeps().await;
            if now >= 6 {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        assert!(now >= 6, "sweeps every 2 s after the change: {now}\n{}", site.log_text());
        assert!(site.log_text().contains("[schedule] changed"), "the change is logged");
        sigterm(&orb);
        wait_exit(&mut orb, 30).await;
    }
}
