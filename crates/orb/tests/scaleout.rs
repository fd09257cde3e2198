//! Scale-out: three `orb serve` processes on one PostgreSQL under a burst of changes, one of them killed
//! (SIGKILL) half-way. Both sides converge; from the three JSON logs, no lane ever ran on two workers at
//! once (each job's claim-to-finish interval, per lane, never overlaps another's), and each scheduled task
//! ran at most once per beat across the instances (the store leases).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use support::{Db, ROOMS, Site, sigterm, tomorrow, wait_exit};

/// One job's hold of its lane, from a log.
#[derive(Debug, Clone)]
struct Hold {
    instance: &'static str,
    job: String,
    start: DateTime<Utc>,
    end: Option<DateTime<Utc>>,
}

fn time(v: &serde_json::Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?).ok().map(|t| t.to_utc())
}

/// The holds (per lane) and scheduled runs (per task and tenant) in one instance's log.
fn read_log(
    instance: &'static str,
    path: &Path,
    holds: &mut BTreeMap<String, Vec<Hold>>,
    runs: &mut BTreeMap<String, Vec<(DateTime<Utc>, &'static str)>>,
) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut open: BTreeMap<String, (String, DateTime<Utc>)> = BTreeMap::new();
    let mut lines = 0;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        lines += 1;
        let message = v["fields"]["message"].as_str().unwrap_or_default();
        let job = v["span"]["job"].as_str().unwrap_or_default().to_owned();
        match message {
            "job started" => {
                let lane = v["span"]["lane"].as_str().expect("the worker span names the lane").to_owned();
                open.insert(job, (lane, time(&v["fields"]["claimed_at"]).expect("claimed_at")));
            }
            "job done"
            | "job failed; retried later"
            | "job failed for good"
            | "lease lost while running; job abandoned" => {
                if let Some((lane, start)) = open.remove(&job) {
                    let end = time(&v["fields"]["finished_at"]).expect("finished_at");
                    holds.entry(lane).or_default().push(Hold { instance, job, start, end: Some(end) });
                }
            }
            "scheduled task ran" => {
                let key = format!(
                    "{} {}",
                    v["fields"]["task"].as_str().unwrap(),
                    v["fields"]["tenant"].as_str().unwrap()
                );
                runs.entry(key).or_default().push((time(&v["fields"]["ran_at"]).expect("ran_at"), instance));
            }
            _ => {}
        }
    }
    // Jobs a killed instance never finished: held until it died (the end is filled in by the caller).
    for (job, (lane, start)) in open {
        holds.entry(lane).or_default().push(Hold { instance, job, start, end: None });
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_postgres_one_killed_converge_without_running_a_lane_twice() {
    let Some(url) = orb_testkit::stores::postgres_url() else {
        eprintln!("ORB_TEST_POSTGRES_URL not set: the scale-out test needs PostgreSQL (CI always has it)");
        return;
    };
    let mut site = Site::new(&Db::Postgres(url), "instance-a").await;
    site.set_var("ORB__LOG__LEVEL", "info,orb_engine::worker=debug,orb_engine::scheduler=debug");
    let mut a = site.spawn();
    site.healthy(&mut a).await;
    let free = || orb_testkit::free_port();
    let (port_b, port_c) = (free(), free());
    let (log_b, log_c) = (site.dir.path().join("serve-b.log"), site.dir.path().join("serve-c.log"));
    let b = site.spawn_second(port_b, "instance-b", &log_b);
    let c = site.spawn_second(port_c, "instance-c", &log_c);
    for port in [port_b, port_c] {
        site.eventually("the other instances to listen", 30, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
    }
    site.eventually("the subscriptions", 30, || {
        (site.subscribed(ROOMS[0]) && site.subscribed(ROOMS[1])).then_some(())
    })
    .await;

    let book = |i: i64| {
        let site = &site;
        async move {
            let start = tomorrow() + Duration::hours(7) + Duration::days(i / 8) + Duration::hours(i % 8);
            if i % 2 == 0 {
                site.book(ROOMS[(i as usize / 2) % 2], start, &format!("Meeting {i}")).await;
            } else {
                site.reserve((i as usize / 2) % 2, start).await;
            }
        }
    };
    let total = 32;
    for i in 0..total / 2 {
        book(i).await;
    }
    // Half-way through the burst, the instance that has done the most work so far dies without a word
    // (a worker that just finished a job claims the next at once, so one or two instances may carry a
    // small burst while the others' idle workers sleep).
    let started =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_default().matches("\"job started\"").count();
    let mut instances = vec![("a", a, site.log.clone()), ("b", b, log_b.clone()), ("c", c, log_c.clone())];
    instances.sort_by_key(|(_, _, log)| std::cmp::Reverse(started(log)));
    let (victim, mut dead, _) = instances.remove(0);
    assert!(dead.0.try_wait().unwrap().is_none(), "instance {victim} is still running before the kill");
    dead.0.kill().unwrap();
    dead.0.wait().unwrap();
    let killed_at = Utc::now();
    for i in total / 2..total {
        book(i).await;
    }
    let n = usize::try_from(total).unwrap();
    let convergence = site
        .eventually("both sides to converge with one instance dead", 150, || {
            let c = site.converged();
            (c.is_clean() && c.exchange == n && c.topdesk == n).then_some(c)
        })
        .await;
    // A few more beats with two instances, then a clean stop.
    tokio::time::sleep(StdDuration::from_secs(4)).await;
    for (_, orb, _) in &instances {
        sigterm(orb);
    }
    for (name, orb, _) in &mut instances {
        assert!(wait_exit(orb, 20).await.success(), "instance {name} stopped cleanly");
    }

    let mut holds = BTreeMap::new();
    let mut runs = BTreeMap::new();
    let lines = read_log("a", &site.log, &mut holds, &mut runs)
        + read_log("b", &log_b, &mut holds, &mut runs)
        + read_log("c", &log_c, &mut holds, &mut runs);
    // No lane ran twice at once: per lane, each hold ends before the next begins.
    let mut jobs = 0;
    let mut by_instance: BTreeMap<&str, usize> = BTreeMap::new();
    for (lane, list) in &mut holds {
        for h in list.iter_mut() {
            if h.end.is_none() {
                assert_eq!(h.instance, victim, "only the killed instance leaves a job unfinished: {h:?}");
                h.end = Some(killed_at);
            }
        }
        list.sort_by_key(|h| h.start);
        for pair in list.windows(2) {
            assert!(
                pair[1].start >= pair[0].end.unwrap(),
                "lane {lane} ran jobs {} and {} on two workers at once: {:?} and {:?}",
                pair[0].job,
                pair[1].job,
                pair[0],
                pair[1]
            );
        }
        jobs += list.len();
        for h in list.iter() {
            *by_instance.entry(h.instance).or_default() += 1;
        }
    }
    assert!(jobs >= n, "every change was a job: {jobs} jobs for {n} changes");
    assert!(by_instance.len() >= 2, "the work was shared: {by_instance:?}");
    assert!(
        by_instance.contains_key(victim),
        "the killed instance ({victim}) had taken work: {by_instance:?}"
    );
    // Each task ran at most once per beat: between two runs of a tenant's task, whatever instance ran
    // them, at least half a beat passed.
    let beats: BTreeMap<&str, f64> =
        [("poll-near", 1.0), ("subscriptions", 1.0), ("reconcile", 3.0)].into_iter().collect();
    let mut checked_runs = 0;
    for (key, list) in &mut runs {
        let task = key.split(' ').next().unwrap();
        let Some(beat) = beats.get(task) else { continue };
        list.sort();
        for pair in list.windows(2) {
            let gap = (pair[1].0 - pair[0].0).num_milliseconds() as f64 / 1000.0;
            assert!(gap >= beat / 2.0, "{key} ran twice within {gap:.3} s (beat {beat} s): {pair:?}");
        }
        checked_runs += list.len();
    }
    assert!(checked_runs > 10, "the scheduled tasks ran: {runs:?}");
    eprintln!(
        "figures: instance {victim} killed; {lines} log lines; {jobs} jobs on {} lanes, per instance {by_instance:?}; {checked_runs} \
         scheduled runs checked; converged with {victim} dead: {convergence}",
        holds.len()
    );
}
