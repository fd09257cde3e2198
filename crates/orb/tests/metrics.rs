//! The operator listener of a real `orb serve` process (`--metrics-listen`): Prometheus `/metrics` whose
//! counters and histograms move when a booking is synced, `/readyz` and `/healthz`, and none of them on
//! the public webhook listener. On SQLite, and on PostgreSQL when `ORB_TEST_POSTGRES_URL` is set.

mod support;

use std::process::Stdio;

use chrono::Duration;
use support::{Orb, ROOMS, Site, databases, sigterm, tomorrow, wait_exit};

/// The sum of the samples of `name` whose labels include every `k="v"` of `labels` (0 when none).
fn sample(page: &str, name: &str, labels: &[&str]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.iter().all(|kv| rest.contains(kv)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Whether the page has a sample line of `name` at all.
fn has(page: &str, name: &str) -> bool {
    page.lines().any(|l| {
        !l.starts_with('#') && (l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
    })
}

async fn get(site: &Site, url: &str) -> (u16, String) {
    let resp = site.http.get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// What must have moved after one Outlook booking reached TOPdesk: (metric, labels).
const MOVED: &[(&str, &[&str])] = &[
    ("orb_notifications_received_total", &["source=\"graph\""]),
    ("orb_intake_seconds_count", &[]),
    ("orb_jobs_enqueued_total", &["kind=\"graph.notification\""]),
    ("orb_jobs_finished_total", &["outcome=\"done\""]),
    ("orb_plans_total", &["outcome=\"writes\""]),
    ("orb_writes_total", &["side=\"topdesk\"", "kind=\"create\"", "result=\"done\""]),
    ("orb_api_calls_total", &["side=\"exchange\"", "status=\"200\""]),
    ("orb_api_calls_total", &["side=\"topdesk\""]),
    ("orb_change_to_write_seconds_count", &[]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_listener_serves_metrics_that_move_and_readiness_but_not_on_the_public_listener() {
    for db in databases() {
        let site = Site::new(&db, "metrics-test").await;
        let port = orb_testkit::free_port();
        let operator = format!("http://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&site.log).unwrap();
        let mut orb = Orb(site
            .command(&["serve", "--metrics-listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap());
        site.healthy(&mut orb.0).await;
        site.eventually("the rooms' subscriptions", 20, || {
            (site.subscribed(ROOMS[0]) && site.subscribed(ROOMS[1])).then_some(())
        })
        .await;

        // Readiness and liveness on the operator listener.
        let mut ready = (0, String::new());
        for _ in 0..100 {
            ready = get(&site, &format!("{operator}/readyz")).await;
            if ready.0 == 200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(ready, (200, "ready".to_owned()), "{}", site.log_text());
        assert_eq!(get(&site, &format!("{operator}/healthz")).await, (200, "ok".to_owned()));
        // None of the operator's pages on the public listener (its /healthz stays).
        for path in ["/metrics", "/readyz"] {
            let (status, _) = get(&site, &format!("{}{path}", site.base())).await;
            assert_eq!(status, 404, "{path} must not be served on the public listener");
        }

        // The subscription pass sets its gauges after it has stored what it made (the emulator sees the
        // subscriptions a moment earlier), and the queue gauges come on their own beat: wait for both.
        let mut before = String::new();
        for _ in 0..200 {
            let (status, text) = get(&site, &format!("{operator}/metrics")).await;
            assert_eq!(status, 200);
            before = text;
            if has(&before, "orb_subscription_expiry_seconds")
                && has(&before, "orb_queue_depth")
                && sample(&before, "orb_subscriptions", &["tenant=\"contoso\"", "state=\"active\""]) == 2.0
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for gauge in [
            "orb_queue_depth",
            "orb_queue_oldest_seconds",
            "orb_subscriptions",
            "orb_subscription_expiry_seconds",
        ] {
            assert!(has(&before, gauge), "{gauge} missing:\n{before}");
        }
        assert_eq!(
            sample(&before, "orb_subscriptions", &["tenant=\"contoso\"", "state=\"active\""]),
            2.0,
            "{before}"
        );

        // One booking in Outlook, synced to TOPdesk.
        let start = tomorrow() + Duration::hours(10);
        site.book(ROOMS[0], start, "Metrics review").await;
        site.eventually("the reservation", 20, || {
            site.td.emulator.reservations().into_iter().find(|r| r.planned_start_date == Some(start))
        })
        .await;
        // The counters move once the job is finished; scrape until they have.
        let mut after = String::new();
        for _ in 0..100 {
            after = get(&site, &format!("{operator}/metrics")).await.1;
            if MOVED.iter().all(|(name, labels)| sample(&after, name, labels) > sample(&before, name, labels))
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for (name, labels) in MOVED {
            let (b, a) = (sample(&before, name, labels), sample(&after, name, labels));
            assert!(a > b, "{name}{labels:?} did not move ({b} → {a}):\n{after}");
        }
        assert!(has(&after, "orb_topdesk_poll_seconds_count"), "the poller's histogram:\n{after}");
        // Labels are low-cardinality: no address or subject reaches the page.
        assert!(!after.contains('@') && !after.contains("Metrics review"), "{after}");

        sigterm(&orb.0);
        assert!(wait_exit(&mut orb.0, 20).await.success(), "{}", site.log_text());
    }
}
