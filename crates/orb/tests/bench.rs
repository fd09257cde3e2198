//! `orb bench` at a tiny size: it prints its table and, with `--json`, one JSON object as the last line
//! holding every figure, each measured (a positive number) in a run where everything works. No figure is
//! compared with a target here: speed is measured by the bench, never asserted by a timed test.

use std::process::{Command, Output};

use serde_json::Value;

fn orb_bench(args: &[&str], envs: &[(&str, &str)]) -> (Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_orb"));
    command
        .arg("bench")
        .args(args)
        .current_dir(dir.path())
        .env_remove("ORB_MASTER_KEY")
        .env_remove("ORB_MASTER_KEY_FILE")
        .env_remove("ORB__DATABASE__URL")
        .env("ORB__LOG__LEVEL", "error");
    for (name, value) in envs {
        command.env(name, value);
    }
    (command.output().unwrap(), dir)
}

fn number(json: &Value, path: &[&str]) -> f64 {
    let mut at = json;
    for key in path {
        at = at.get(key).unwrap_or_else(|| panic!("no key {path:?} in {json}"));
    }
    at.as_f64().unwrap_or_else(|| panic!("{path:?} is not a number (null: not measured) in {json}"))
}

#[test]
fn a_tiny_bench_prints_the_table_and_every_figure_as_json() {
    // The near poll at 2 s so the polling-only figure takes seconds, not tens of them.
    let (out, _dir) = orb_bench(
        &["--json", "--rooms", "2", "--bookings", "3", "--rate", "50", "--seconds", "2"],
        &[("ORB__SCHEDULE__NEAR_POLL_SECONDS", "2")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "orb bench failed:\n{stdout}\n{stderr}");
    for row in [
        "webhook ack",
        "pipeline",
        "RSA-2048",
        "added latency",
        "TOPdesk → Outlook",
        "API calls",
        "backfill",
        "RSS",
    ] {
        assert!(stdout.contains(row), "the table has no {row:?} row:\n{stdout}");
    }
    let last = stdout.lines().last().unwrap_or_default();
    let json: Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("the last line is not JSON ({e}): {last}"));

    for key in [
        "ack_p50_ms",
        "ack_p99_ms",
        "ack_p999_ms",
        "pipeline_per_s",
        "rsa2048_decrypt_per_s",
        "added_latency_p50_ms",
        "added_latency_p95_ms",
        "api_calls_per_change",
        "backfill_seconds",
        "rss_mb",
    ] {
        assert!(number(&json, &[key]) > 0.0, "{key} is not positive in {json}");
    }
    for mode in ["push", "polling"] {
        assert!(number(&json, &["topdesk_to_exchange_p95_ms", mode]) > 0.0, "{mode}: {json}");
    }
    // The percentiles are of one sample set, so they are ordered.
    assert!(number(&json, &["ack_p50_ms"]) <= number(&json, &["ack_p99_ms"]));
    assert!(number(&json, &["ack_p99_ms"]) <= number(&json, &["ack_p999_ms"]));
    assert!(number(&json, &["added_latency_p50_ms"]) <= number(&json, &["added_latency_p95_ms"]));
    // Every valid-shaped notification was acknowledged with 202: 50/s for 2 s.
    assert_eq!(number(&json, &["ack_accepted"]), 100.0, "{json}");
    assert_eq!(number(&json, &["ack_other"]), 0.0, "{json}");
    // Every backfilled Outlook booking needs its TOPdesk reservation written, and none failed for good.
    assert!(number(&json, &["backfill_writes_per_booking"]) >= 1.0, "{json}");
    assert_eq!(number(&json, &["backfill_dead_jobs"]), 0.0, "{json}");
    assert_eq!(number(&json, &["params", "rooms"]), 2.0);
    assert_eq!(number(&json, &["params", "bookings"]), 3.0);
    assert_eq!(json["params"]["store"], "sqlite");
}

#[test]
fn postgres_without_a_postgres_url_and_empty_sizes_are_refused_clearly() {
    let (out, _dir) = orb_bench(&["--store", "postgres"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("ORB__DATABASE__URL"), "{stderr}");

    let (out, _dir) = orb_bench(&["--rooms", "0"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("at least 1"), "{stderr}");
}
