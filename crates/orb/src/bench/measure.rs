//! The measuring instruments of `orb bench`: RSA-2048 decryptions on every core, the process's resident
//! memory and CPU time, percentiles of latency samples, and the open-loop webhook load generator.
//!
//! Pure helpers (percentiles, `/proc` parsing) are unit-tested; nothing here asserts a speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};

/// The p-th percentile (0–100) of `samples` by nearest rank; `None` without samples.
pub(crate) fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Nearest rank: the smallest value with at least p % of the samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The number of cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// RSA-2048 OAEP-SHA1 decryptions (the rich-notification key unwrap) per second, one thread per core, each
/// decrypting for `run`. One key pair and one wrapped 32-byte key, as Graph sends them.
pub(crate) fn rsa2048_decrypts_per_s(run: Duration) -> Result<f64> {
    let private = PrivateDecryptingKey::generate(KeySize::Rsa2048)
        .map_err(|e| anyhow!("cannot generate an RSA-2048 key: {e}"))?;
    let public = OaepPublicEncryptingKey::new(private.public_key())
        .map_err(|e| anyhow!("cannot use the RSA public key: {e}"))?;
    let mut wrapped = vec![0_u8; public.ciphertext_size()];
    let wrapped_len = public
        .encrypt(&OAEP_SHA1_MGF1SHA1, &[7_u8; 32], &mut wrapped, None)
        .map_err(|e| anyhow!("cannot wrap a key: {e}"))?
        .len();
    wrapped.truncate(wrapped_len);
    let oaep =
        Arc::new(OaepPrivateDecryptingKey::new(private).map_err(|e| anyhow!("cannot use the RSA key: {e}"))?);
    let wrapped = Arc::new(wrapped);
    let count = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..cores())
        .map(|_| {
            let (oaep, wrapped, count, failed) =
                (oaep.clone(), wrapped.clone(), count.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut out = vec![0_u8; oaep.min_output_size()];
                let mut done = 0_u64;
                while started.elapsed() < run {
                    match oaep.decrypt(&OAEP_SHA1_MGF1SHA1, &wrapped, &mut out, None) {
                        Ok(plain) if plain.len() == 32 => done += 1,
                        _ => {
                            failed.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                }
                count.fetch_add(done, Ordering::Relaxed);
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| anyhow!("an RSA measuring thread panicked"))?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if failed.load(Ordering::Relaxed) {
        return Err(anyhow!("an RSA-OAEP decryption failed"));
    }
    Ok(count.load(Ordering::Relaxed) as f64 / elapsed)
}

/// `VmRSS` of this process in MiB (Linux `/proc/self/status`); `None` where there is no `/proc`.
pub(crate) fn rss_mb() -> Option<f64> {
    std::fs::read_to_string("/proc/self/status").ok().as_deref().and_then(vm_rss_mb)
}

/// The `VmRSS:` line of a `/proc/<pid>/status` text, in MiB.
fn vm_rss_mb(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds this process used so far (user + system, Linux `/proc/self/stat`, clock ticks of 1/100 s).
pub(crate) fn cpu_seconds() -> Option<f64> {
    std::fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(stat_cpu_seconds)
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds (USER_HZ = 100 on Linux).
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name may hold spaces and parentheses: fields are counted after its closing ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the whole line, so utime (14) and stime (15) are at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// The machine's CPU time so far (every process): (busy, total) clock ticks from `/proc/stat`.
pub(crate) fn machine_ticks() -> Option<(u64, u64)> {
    std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(stat_ticks)
}

/// (busy, total) of the `cpu` line of `/proc/stat`: busy is everything but idle and iowait.
fn stat_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|t| t.parse().ok()).collect();
    if ticks.len() < 5 {
        return None;
    }
    let total: u64 = ticks.iter().sum();
    let idle = ticks[3] + ticks[4];
    Some((total - idle, total))
}

/// The share of the machine's cores busy (every process) between two [`machine_ticks`] readings.
pub(crate) fn machine_busy(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((b0, t0), (b1, t1)) = (before?, after?);
    let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
    Some(b1.saturating_sub(b0) as f64 / total as f64)
}

/// What the load generator saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct AckRun {
    /// Latency of each answered request (ms), from its scheduled send time to the answer's status line.
    pub latencies_ms: Vec<f64>,
    /// Requests answered `202`.
    pub accepted: usize,
    /// Requests answered otherwise, or not at all.
    pub other: usize,
    /// Requests actually sent per second.
    pub achieved_rate: f64,
}

/// Posts `body(i)` to `url` at `rate` requests per second for `run`, open loop: each request starts at its
/// scheduled time whatever the ones before it are doing, and its latency counts from that time (so a
/// stalled server shows in the figures instead of slowing the generator down).
pub(crate) async fn post_at_rate(
    client: &reqwest::Client,
    url: &str,
    rate: u32,
    run: Duration,
    body: impl Fn(u64) -> String,
) -> Result<AckRun> {
    let total = (u64::from(rate) as f64 * run.as_secs_f64()).round() as u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for i in 0..total {
        let due = started + period.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let request = client.post(url).header("content-type", "application/json").body(body(i));
        tasks.push(tokio::spawn(async move {
            let answer = request.send().await;
            let latency = due.elapsed().as_secs_f64() * 1000.0;
            (answer.map(|r| r.status().as_u16()).ok(), latency)
        }));
    }
    let sent_for = started.elapsed().as_secs_f64();
    let mut out = AckRun { achieved_rate: total as f64 / sent_for.max(1e-9), ..AckRun::default() };
    for task in tasks {
        let (status, latency) = task.await.context("a load-generator task failed")?;
        match status {
            Some(202) => {
                out.accepted += 1;
                out.latencies_ms.push(latency);
            }
            Some(_) => {
                out.other += 1;
                out.latencies_ms.push(latency);
            }
            None => out.other += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(samples: &[f64], p: f64, expected: Option<f64>) {
        assert_eq!(percentile(samples, p), expected, "p{p} of {samples:?}");
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        check(&hundred, 50.0, Some(50.0));
        check(&hundred, 99.0, Some(99.0));
        check(&hundred, 99.9, Some(100.0));
        check(&hundred, 100.0, Some(100.0));
        check(&[3.0, 1.0, 2.0], 50.0, Some(2.0));
        check(&[5.0], 99.9, Some(5.0));
        check(&[], 50.0, None);
    }

    #[test]
    fn vm_rss_is_read_in_mib() {
        assert_eq!(vm_rss_mb("Name:\torb\nVmRSS:\t  20480 kB\nThreads: 4\n"), Some(20.0));
        assert_eq!(vm_rss_mb("Name:\torb\n"), None);
    }

    #[test]
    fn cpu_time_is_utime_plus_stime_after_the_command_name() {
        let stat = "42 (orb (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 1 2 3";
        assert_eq!(stat_cpu_seconds(stat), Some(3.0));
        assert_eq!(stat_cpu_seconds("garbage"), None);
    }

    #[test]
    fn machine_busy_share_leaves_out_idle_and_iowait() {
        let before = stat_ticks("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4 5\n");
        assert_eq!(before, Some((200, 1000)));
        let after = stat_ticks("cpu  250 0 150 1250 150 0 0 0 0 0\n");
        assert_eq!(machine_busy(before, after), Some(0.25));
        assert_eq!(machine_busy(before, before), None);
        assert_eq!(stat_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn the_rsa_figure_counts_real_decryptions() {
        let per_s = rsa2048_decrypts_per_s(Duration::from_millis(100)).unwrap();
        assert!(per_s > 0.0, "{per_s}");
    }

    #[test]
    fn this_process_has_a_resident_size_and_cpu_time() {
        assert!(rss_mb().is_some_and(|mb| mb > 0.0));
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
