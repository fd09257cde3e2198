//! Queue throughput benchmark: enqueue N jobs over L lanes, drain them with W workers, print the median
//! of R runs (jobs per second, claim+complete round trips) for SQLite and, when `ORB_TEST_POSTGRES_URL` is
//! set, PostgreSQL.
//!
//! ```sh
//! cargo run --release -p orb-store --example queue_bench -- [jobs] [lanes] [workers] [runs]
//! ```
//! Defaults: 2000 jobs, 20 lanes, 8 workers, 5 runs. It prints figures; it asserts nothing about speed.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use orb_core::{RoomMailbox, TenantName, TopdeskLocationId};
use orb_store::{Lane, NewJob, NewRoom, PgStore, SqliteStore, Store};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let jobs = args.first().copied().unwrap_or(2000);
    let lanes = args.get(1).copied().unwrap_or(20);
    let workers = args.get(2).copied().unwrap_or(8);
    let runs = args.get(3).copied().unwrap_or(5);
    println!("queue_bench: {jobs} jobs, {lanes} lanes, {workers} workers, median of {runs} runs");

    let mut sqlite = Vec::new();
    for _ in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("bench.db"), 8).await.unwrap();
        store.migrate().await.unwrap();
        sqlite.push(run(Arc::new(store), jobs, lanes, workers).await);
    }
    report("sqlite", &mut sqlite);

    if let Ok(url) = std::env::var("ORB_TEST_POSTGRES_URL") {
        let mut pg = Vec::new();
        for _ in 0..runs {
            let admin = sqlx::PgPool::connect(&url).await.unwrap();
            let schema = format!("orb_bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin)
                .await
                .unwrap();
            let options = sqlx::postgres::PgConnectOptions::from_str(&url)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            let store = PgStore::connect_with(options, 8).await.unwrap();
            store.migrate().await.unwrap();
            pg.push(run(Arc::new(store), jobs, lanes, workers).await);
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&admin)
                .await
                .unwrap();
        }
        report("postgres", &mut pg);
    }
}

/// (enqueue jobs/s, drain jobs/s)
async fn run(store: Arc<dyn Store>, jobs: usize, lanes: usize, workers: usize) -> (f64, f64) {
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    let tenant = store.create_tenant(&TenantName::parse("bench").unwrap(), now).await.unwrap();
    let mut lane_list = Vec::new();
    for i in 0..lanes {
        let room = NewRoom {
            mailbox: RoomMailbox::parse(&format!("room-{i}@bench.example")).unwrap(),
            topdesk_location_id: TopdeskLocationId::parse(&format!("loc-{i}")).unwrap(),
            display_name: None,
        };
        let room = store.add_room(tenant.id, &room, now).await.unwrap();
        lane_list.push(Lane::room(tenant.id, room.id));
    }
    let start = Instant::now();
    for i in 0..jobs {
        let job = NewJob {
            lane: lane_list[i % lanes].clone(),
            kind: "bench".into(),
            payload: serde_json::json!({ "i": i }),
            correlation_id: None,
            run_at: None,
        };
        store.enqueue(&job, now).await.unwrap();
    }
    let enqueue = jobs as f64 / start.elapsed().as_secs_f64();
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for w in 0..workers {
        let (store, done) = (store.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let name = format!("w{w}");
            while done.load(Ordering::SeqCst) < jobs {
                match store.claim_job(&name, now, Duration::minutes(1)).await.unwrap() {
                    Some(c) => {
                        store.complete_job(&c.lease, now).await.unwrap();
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    None => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (enqueue, jobs as f64 / start.elapsed().as_secs_f64())
}

fn report(name: &str, results: &mut [(f64, f64)]) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let enq = median(results.iter().map(|r| r.0).collect());
    let drain = median(results.iter().map(|r| r.1).collect());
    println!("{name:>9}: enqueue {enq:>8.0} jobs/s   claim+complete {drain:>8.0} jobs/s");
}
