//! What `orb bench` prints: the table of figures against the targets, a closing note saying what bounds
//! each missed target (from the run's own measurements), and with `--json` one JSON object as the last
//! line. A figure the run could not measure is `null` in the JSON and "n/a (why)" in the table.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{Value, json};

use super::measure::cores;
use super::{LIVE_ROOMS, Options, PIPELINE_BOOKINGS};

/// Every figure of one run, with the run's parameters.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    opts: Options,
    store: String,
    workers: u32,
    /// RSA-2048 OAEP-SHA1 decryptions per second on every core.
    pub rsa2048_decrypt_per_s: Option<f64>,
    /// `VmRSS` before the emulators and the bulk tenant existed.
    pub rss_base_mb: Option<f64>,
    /// `VmRSS` with the bulk tenant's rooms loaded.
    pub rss_mb: Option<f64>,
    /// Backfill wall time.
    pub backfill_seconds: Option<f64>,
    /// Writes (both sides) per backfilled booking.
    pub backfill_writes_per_booking: Option<f64>,
    /// TOPdesk reservations after the backfill.
    pub backfill_reservations: Option<usize>,
    /// Jobs dead after the backfill.
    pub backfill_dead_jobs: Option<u64>,
    /// ORB's requests during the backfill.
    pub backfill_calls: Option<usize>,
    /// Requests refused with 429 during the backfill.
    pub backfill_throttled: Option<usize>,
    /// The backfill's requests by shape.
    pub backfill_shapes: BTreeMap<String, usize>,
    /// Share of all cores used during the backfill.
    pub backfill_cpu_share: Option<f64>,
    /// Share of the machine's cores busy (every process) during the backfill.
    pub backfill_machine_busy: Option<f64>,
    /// Rich notifications carried end to end per second.
    pub pipeline_per_s: Option<f64>,
    /// Share of all cores used during the pipeline.
    pub pipeline_cpu_share: Option<f64>,
    /// Share of the machine's cores busy (every process) during the pipeline.
    pub pipeline_machine_busy: Option<f64>,
    /// Outlook change → TOPdesk write landed, median.
    pub added_latency_p50_ms: Option<f64>,
    /// … 95th percentile.
    pub added_latency_p95_ms: Option<f64>,
    /// Samples behind the added latency.
    pub added_latency_samples: usize,
    /// TOPdesk change → Outlook event with push hints, 95th percentile.
    pub topdesk_push_p95_ms: Option<f64>,
    /// Samples behind it.
    pub topdesk_push_samples: usize,
    /// TOPdesk change → Outlook event by polling only, 95th percentile.
    pub topdesk_poll_p95_ms: Option<f64>,
    /// Samples behind it.
    pub topdesk_poll_samples: usize,
    /// The near-poll beat of the run.
    pub near_poll_seconds: u32,
    /// API calls per change.
    pub api_calls_per_change: Option<f64>,
    /// Changes behind it.
    pub api_changes: usize,
    /// The changes' requests by shape.
    pub api_shapes: BTreeMap<String, usize>,
    /// Webhook acknowledgement latency, median.
    pub ack_p50_ms: Option<f64>,
    /// … 99th percentile.
    pub ack_p99_ms: Option<f64>,
    /// … 99.9th percentile.
    pub ack_p999_ms: Option<f64>,
    /// Notifications answered 202.
    pub ack_accepted: usize,
    /// Notifications answered otherwise or not at all.
    pub ack_other: usize,
    /// Notifications actually sent per second.
    pub ack_achieved_rate: Option<f64>,
    /// Share of the machine's cores busy (every process) during the load.
    pub ack_machine_busy: Option<f64>,
    /// The whole run.
    pub total_seconds: Option<f64>,
}

impl Figures {
    /// No figure measured yet.
    pub(crate) fn new(opts: Options, store: String, workers: u32) -> Self {
        Self {
            opts,
            store,
            workers,
            rsa2048_decrypt_per_s: None,
            rss_base_mb: None,
            rss_mb: None,
            backfill_seconds: None,
            backfill_writes_per_booking: None,
            backfill_reservations: None,
            backfill_dead_jobs: None,
            backfill_calls: None,
            backfill_throttled: None,
            backfill_shapes: BTreeMap::new(),
            backfill_cpu_share: None,
            backfill_machine_busy: None,
            pipeline_per_s: None,
            pipeline_cpu_share: None,
            pipeline_machine_busy: None,
            added_latency_p50_ms: None,
            added_latency_p95_ms: None,
            added_latency_samples: 0,
            topdesk_push_p95_ms: None,
            topdesk_push_samples: 0,
            topdesk_poll_p95_ms: None,
            topdesk_poll_samples: 0,
            near_poll_seconds: 0,
            api_calls_per_change: None,
            api_changes: 0,
            api_shapes: BTreeMap::new(),
            ack_p50_ms: None,
            ack_p99_ms: None,
            ack_p999_ms: None,
            ack_accepted: 0,
            ack_other: 0,
            ack_achieved_rate: None,
            ack_machine_busy: None,
            total_seconds: None,
        }
    }

    /// pipeline ÷ RSA.
    fn pipeline_ratio(&self) -> Option<f64> {
        Some(self.pipeline_per_s? / self.rsa2048_decrypt_per_s?)
    }

    /// The JSON object (the last line with `--json`).
    pub(crate) fn to_json(&self) -> Value {
        let o = &self.opts;
        json!({
            "ack_p50_ms": self.ack_p50_ms,
            "ack_p99_ms": self.ack_p99_ms,
            "ack_p999_ms": self.ack_p999_ms,
            "ack_rate_per_s": self.ack_achieved_rate,
            "ack_accepted": self.ack_accepted,
            "ack_other": self.ack_other,
            "ack_machine_busy": self.ack_machine_busy,
            "pipeline_per_s": self.pipeline_per_s,
            "rsa2048_decrypt_per_s": self.rsa2048_decrypt_per_s,
            "pipeline_to_rsa_ratio": self.pipeline_ratio(),
            "pipeline_cpu_share": self.pipeline_cpu_share,
            "pipeline_machine_busy": self.pipeline_machine_busy,
            "added_latency_p50_ms": self.added_latency_p50_ms,
            "added_latency_p95_ms": self.added_latency_p95_ms,
            "topdesk_to_exchange_p95_ms": {
                "push": self.topdesk_push_p95_ms,
                "polling": self.topdesk_poll_p95_ms,
            },
            "api_calls_per_change": self.api_calls_per_change,
            "backfill_seconds": self.backfill_seconds,
            "backfill_writes_per_booking": self.backfill_writes_per_booking,
            "backfill_cpu_share": self.backfill_cpu_share,
            "backfill_machine_busy": self.backfill_machine_busy,
            "backfill_throttled": self.backfill_throttled,
            "backfill_dead_jobs": self.backfill_dead_jobs,
            "rss_mb": self.rss_mb,
            "rss_base_mb": self.rss_base_mb,
            "total_seconds": self.total_seconds,
            "params": {
                "rooms": o.rooms,
                "bookings": o.bookings,
                "rate": o.rate,
                "seconds": o.seconds,
                "store": match o.store { super::BenchStore::Sqlite => "sqlite", super::BenchStore::Postgres => "postgres" },
                "cores": cores(),
                "workers": self.workers,
                "live_rooms": LIVE_ROOMS,
                "pipeline_bookings": PIPELINE_BOOKINGS,
                "near_poll_seconds": self.near_poll_seconds,
                "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            },
        })
    }
}

/// A number with a unit, or "n/a (why)".
fn shown(value: Option<f64>, unit: &str, why: &str) -> String {
    match value {
        Some(v) if v >= 100.0 => format!("{v:.0} {unit}"),
        Some(v) if v >= 10.0 => format!("{v:.1} {unit}"),
        Some(v) => format!("{v:.2} {unit}"),
        None => format!("n/a ({why})"),
    }
}

/// A target's verdict: met, missed, or not comparable (the run was not at the target's size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Met,
    Missed,
    NotComparable,
    Unknown,
}

fn verdict(met: Option<bool>, at_target_size: bool) -> Verdict {
    match met {
        None => Verdict::Unknown,
        Some(_) if !at_target_size => Verdict::NotComparable,
        Some(true) => Verdict::Met,
        Some(false) => Verdict::Missed,
    }
}

fn verdict_text(v: Verdict, size: &str) -> String {
    match v {
        Verdict::Met => "met".to_owned(),
        Verdict::Missed => "MISSED".to_owned(),
        Verdict::NotComparable => format!("(target at {size})"),
        Verdict::Unknown => "-".to_owned(),
    }
}

/// The top request shapes per change, in words.
fn top_shapes(shapes: &BTreeMap<String, usize>, per: f64) -> String {
    let mut list: Vec<(&String, &usize)> = shapes.iter().collect();
    list.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    list.iter()
        .take(6)
        .map(|(s, n)| format!("{s} ×{:.2}", **n as f64 / per.max(1.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints the table, the closing note and (with `json`) the JSON line.
pub(crate) fn print(f: &Figures, json: bool) -> Result<()> {
    let o = &f.opts;
    let cores = cores();
    let ack_size = o.rate >= 1000;
    let backfill_size = o.rooms >= 1000 && o.bookings >= 50;
    let rss_size = o.rooms >= 10_000;
    let pct = |x: Option<f64>| x.map_or_else(|| "n/a".to_owned(), |x| format!("{:.0} %", x * 100.0));
    let rows: Vec<(String, String, &str, Verdict, &str)> = vec![
        (
            format!("webhook ack p50 / p99 / p99.9 at {:.0}/s", f.ack_achieved_rate.unwrap_or(0.0)),
            format!(
                "{} / {} / {}",
                shown(f.ack_p50_ms, "ms", "no answer"),
                shown(f.ack_p99_ms, "ms", "no answer"),
                shown(f.ack_p999_ms, "ms", "no answer")
            ),
            "p99 ≤ 10 ms",
            verdict(f.ack_p99_ms.map(|v| v <= 10.0), ack_size),
            "1,000/s",
        ),
        (
            format!("pipeline ({PIPELINE_BOOKINGS} rich notifications, {LIVE_ROOMS} rooms)"),
            format!(
                "{}; cores busy {} (machine {})",
                shown(f.pipeline_per_s, "/s", "did not finish"),
                pct(f.pipeline_cpu_share),
                pct(f.pipeline_machine_busy)
            ),
            "≥ 0.5 × RSA",
            verdict(f.pipeline_ratio().map(|r| r >= 0.5), true),
            "",
        ),
        (
            format!("RSA-2048 OAEP decryptions ({cores} cores)"),
            shown(f.rsa2048_decrypt_per_s, "/s", "failed"),
            "",
            Verdict::Unknown,
            "",
        ),
        (
            format!("added latency p50 / p95 ({} changes)", f.added_latency_samples),
            format!(
                "{} / {}",
                shown(f.added_latency_p50_ms, "ms", "no change arrived"),
                shown(f.added_latency_p95_ms, "ms", "no change arrived")
            ),
            "p95 ≤ 250 ms",
            verdict(f.added_latency_p95_ms.map(|v| v <= 250.0), true),
            "",
        ),
        (
            format!("TOPdesk → Outlook p95, push hints ({} changes)", f.topdesk_push_samples),
            shown(f.topdesk_push_p95_ms, "ms", "no change arrived"),
            "",
            Verdict::Unknown,
            "",
        ),
        (
            format!(
                "TOPdesk → Outlook p95, polling only ({} changes, poll {} s)",
                f.topdesk_poll_samples, f.near_poll_seconds
            ),
            shown(f.topdesk_poll_p95_ms, "ms", "no change arrived"),
            "",
            Verdict::Unknown,
            "",
        ),
        (
            format!("API calls per change ({} changes)", f.api_changes),
            shown(f.api_calls_per_change, "", "no change measured"),
            "≤ 1.3",
            verdict(f.api_calls_per_change.map(|v| v <= 1.3), true),
            "",
        ),
        (
            format!("backfill {} rooms × {} bookings", o.rooms, o.bookings),
            format!(
                "{}; cores busy {} (machine {}); {} throttled",
                shown(f.backfill_seconds, "s", "did not finish"),
                pct(f.backfill_cpu_share),
                pct(f.backfill_machine_busy),
                f.backfill_throttled.unwrap_or(0)
            ),
            "Graph-bound",
            Verdict::Unknown,
            "",
        ),
        (
            "backfill writes per booking".to_owned(),
            shown(f.backfill_writes_per_booking, "", "did not finish"),
            "≤ 1.05",
            verdict(f.backfill_writes_per_booking.map(|v| v <= 1.05), backfill_size),
            "1,000 × 50",
        ),
        (
            format!("RSS idle, {} rooms loaded", o.rooms),
            format!(
                "{} (before: {})",
                shown(f.rss_mb, "MiB", "no /proc"),
                shown(f.rss_base_mb, "MiB", "no /proc")
            ),
            "≤ 150 MiB",
            verdict(f.rss_mb.map(|v| v <= 150.0), rss_size),
            "10,000 rooms",
        ),
    ];
    let build = if cfg!(debug_assertions) { "debug build" } else { "release build" };
    out!(
        "orb bench: {} rooms × {} bookings, {}/s for {} s, {} ({}), {cores} cores, {} workers, {build}",
        o.rooms,
        o.bookings,
        o.rate,
        o.seconds,
        match o.store {
            super::BenchStore::Sqlite => "SQLite",
            super::BenchStore::Postgres => "PostgreSQL",
        },
        f.store,
        f.workers
    );
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let vwidth = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (label, value, target, v, size) in &rows {
        let pad = width - label.chars().count();
        let vpad = vwidth - value.chars().count();
        out!(
            "  {label}{}  {value}{}  {:<14} {}",
            " ".repeat(pad),
            " ".repeat(vpad),
            target,
            verdict_text(*v, size)
        );
    }
    for line in closing_note(f, &rows.iter().map(|r| (r.0.clone(), r.3)).collect::<Vec<_>>()) {
        out!("{line}");
    }
    if let Some(total) = f.total_seconds {
        out!("whole run {total:.1} s");
    }
    if json {
        out!("{}", f.to_json());
    }
    Ok(())
}

/// What bounds each missed target, from this run's measurements.
fn closing_note(f: &Figures, rows: &[(String, Verdict)]) -> Vec<String> {
    let missed = |prefix: &str| rows.iter().any(|(l, v)| l.starts_with(prefix) && *v == Verdict::Missed);
    let mut note = Vec::new();
    let busy =
        |x: Option<f64>| x.map_or_else(|| "an unknown share".to_owned(), |x| format!("{:.0} %", x * 100.0));
    let saturated = |x: Option<f64>| x.is_some_and(|x| x >= 0.9);
    if missed("webhook ack") {
        note.push(format!(
            "- ack: every accepted item is one store write transaction (inbox row + job) before the 202, and the \
             store takes one writer at a time; the load generator, both emulators and the workers draining the \
             {} accepted items share the same {} cores, which were {} busy (every process){}",
            f.ack_accepted,
            cores(),
            busy(f.ack_machine_busy),
            if saturated(f.ack_machine_busy) { ": CPU-bound on this machine" } else { "" }
        ));
    }
    if missed("pipeline") {
        let bound = if saturated(f.pipeline_machine_busy) {
            "the machine's cores were saturated (other processes included), so it is CPU-bound here"
        } else {
            "it waits more than it computes"
        };
        note.push(format!(
            "- pipeline: ORB used {} of the cores, the machine {}: {bound}. Each notification is a job (idle \
             workers poll the queue with pauses of 200 ms growing to 2 s), a Graph read of the organizer's copy, \
             a TOPdesk write and a store commit, and a room's jobs run one at a time in its lane ({LIVE_ROOMS} \
             rooms, {} workers); the RSA unwrap is about {} of the CPU time",
            busy(f.pipeline_cpu_share),
            busy(f.pipeline_machine_busy),
            f.workers,
            match (f.rsa2048_decrypt_per_s, f.pipeline_per_s, f.pipeline_cpu_share) {
                (Some(rsa), Some(p), Some(share)) if share > 0.0 =>
                    format!("{:.1} %", 100.0 * p / (rsa * share)),
                _ => "an unknown share".to_owned(),
            }
        ));
    }
    if missed("added latency") {
        // Workers that found nothing pause 200 ms, doubling up to 2 s (`ServeOptions::worker_idle_max`).
        let beyond_polling = f.added_latency_p50_ms.is_some_and(|p50| p50 > 2000.0);
        note.push(if beyond_polling {
            format!(
                "- added latency: the median is beyond the longest idle pause of a worker (2 s), so changes queue \
                 behind other work: the pipeline ran at {} with the machine's cores {} busy",
                shown(f.pipeline_per_s, "/s", "unknown"),
                busy(f.pipeline_machine_busy)
            )
        } else {
            "- added latency: a notification's job waits for a worker's next look at the queue (workers that found \
             nothing pause 200 ms, doubling up to 2 s; the intake does not wake them), then reads the organizer's \
             copy before writing"
                .to_owned()
        });
    }
    if missed("API calls") {
        note.push(format!("- API calls per change: {}", top_shapes(&f.api_shapes, f.api_changes as f64)));
    }
    if missed("backfill writes") {
        let bookings = (f.opts.rooms * f.opts.bookings) as f64;
        note.push(format!("- backfill writes: {}", top_shapes(&f.backfill_shapes, bookings)));
    }
    if f.backfill_throttled.unwrap_or(0) == 0 && f.backfill_seconds.is_some() {
        note.push(format!(
            "- backfill: no request was throttled (the emulator enforces Graph's 4 in flight and 10,000 per 10 \
             minutes per mailbox); ORB used {} of the cores, the machine {}: bound by {}",
            busy(f.backfill_cpu_share),
            busy(f.backfill_machine_busy),
            if saturated(f.backfill_machine_busy) {
                "CPU (ORB and the emulators in one process, and the machine's other work), not by Graph's limits"
            } else {
                "round trips and the rooms' lanes, not by Graph's limits"
            }
        ));
    }
    if missed("RSS") {
        note.push(format!(
            "- RSS: the process also holds both emulators' state for {} rooms (before them: {})",
            f.opts.rooms,
            shown(f.rss_base_mb, "MiB", "unknown")
        ));
    }
    if !note.is_empty() {
        note.insert(0, "what bounds the figures:".to_owned());
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            json: true,
            rooms: 2,
            bookings: 3,
            rate: 50,
            seconds: 2,
            store: super::super::BenchStore::Sqlite,
        }
    }

    #[test]
    fn unmeasured_figures_are_null_and_the_topdesk_figure_has_both_modes() {
        let mut f = Figures::new(opts(), "sqlite://x".into(), 4);
        f.topdesk_push_p95_ms = Some(12.0);
        let j = f.to_json();
        assert_eq!(j["ack_p99_ms"], Value::Null);
        assert_eq!(j["topdesk_to_exchange_p95_ms"]["push"], json!(12.0));
        assert_eq!(j["topdesk_to_exchange_p95_ms"]["polling"], Value::Null);
        assert_eq!(j["params"]["rooms"], json!(2));
    }

    #[test]
    fn verdicts_need_the_targets_size() {
        assert_eq!(verdict(Some(true), true), Verdict::Met);
        assert_eq!(verdict(Some(false), true), Verdict::Missed);
        assert_eq!(verdict(Some(false), false), Verdict::NotComparable);
        assert_eq!(verdict(None, true), Verdict::Unknown);
    }

    #[test]
    fn numbers_are_shown_with_sensible_precision_or_why_not() {
        assert_eq!(shown(Some(1234.4), "ms", ""), "1234 ms");
        assert_eq!(shown(Some(12.34), "ms", ""), "12.3 ms");
        assert_eq!(shown(Some(1.234), "", ""), "1.23 ");
        assert_eq!(shown(None, "ms", "no answer"), "n/a (no answer)");
    }
}
