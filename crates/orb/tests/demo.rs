//! `orb demo --listen ADDR` serves the portal's `/login` with a strict Content-Security-Policy, prints the
//! portal address and the demo administrator's credentials, and those credentials log in (to the second
//! factor's enrolment, which the demo tenant requires). A bounded run of the simulation shows changes
//! crossing both ways, one line each, while the metrics move and the log goes to its file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    orb_testkit::free_port()
}

#[tokio::test]
async fn demo_serves_the_portal_and_prints_working_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orb"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--for", "1"])
        .current_dir(dir.path())
        .env_remove("ORB_MASTER_KEY")
        .env_remove("ORB_MASTER_KEY_FILE")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _child = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let portal_line = loop {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("the demo prints its portal line");
        if line.trim_start().starts_with("portal") {
            break line;
        }
    };
    let words: Vec<&str> = portal_line.split_whitespace().collect();
    let url = words[1];
    assert_eq!(url, format!("http://127.0.0.1:{port}/login"), "{portal_line}");
    let user = words[words.iter().position(|w| *w == "user").unwrap() + 1];
    let password = words[words.iter().position(|w| *w == "password").unwrap() + 1];

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.text().await.unwrap().contains("name=\"password\""));

    let origin = format!("http://127.0.0.1:{port}");
    let login = http
        .post(url)
        .header("origin", &origin)
        .form(&[("email", user), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/login/enrol", "the demo tenant requires a second factor");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("orb_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    let wrong = http
        .post(url)
        .header("origin", &origin)
        .form(&[("email", user), ("password", "not the password")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

/// The sum of every sample of counter `name` in a Prometheus text page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(url: &str) -> String {
    reqwest::get(url).await.unwrap().error_for_status().unwrap().text().await.unwrap()
}

#[tokio::test]
async fn a_bounded_demo_run_shows_changes_crossing_both_ways_and_the_metrics_move() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orb"))
        .args(["demo", "--pace", "0.5", "--for", "30", "--seed", "12"])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .current_dir(dir.path())
        .env_remove("ORB_MASTER_KEY")
        .env_remove("ORB_MASTER_KEY_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<String>>()
    });
    let mut child = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let next = |lines: &mut Vec<String>| -> Option<String> {
        let line = rx.recv_timeout(Duration::from_secs(180)).ok()?;
        lines.push(line.clone());
        Some(line)
    };
    let crossed = |line: &str, way: &str| line.contains(way) && line.ends_with(" s");

    // The start: the metrics address as asked, then the simulation's header once ORB has onboarded.
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    while let Some(line) = next(&mut lines) {
        if line.trim_start().starts_with("time ") {
            break;
        }
    }
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("metrics") && l.contains(&metrics_url)),
        "the demo prints the Prometheus address: {lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("ORB copied or paired them all")), "onboarding: {lines:#?}");
    let first = scrape(&metrics_url).await;

    // Changes cross; the metrics are scraped again once some did, both ways.
    while let Some(line) = next(&mut lines) {
        let both = lines.iter().any(|l| crossed(l, "Outlook → TOPdesk"))
            && lines.iter().any(|l| crossed(l, "TOPdesk → Outlook"));
        if both || line.contains("change(s) made") {
            break;
        }
    }
    let second = scrape(&metrics_url).await;
    for name in ["orb_writes_total", "orb_jobs_finished_total", "orb_plans_total"] {
        assert!(
            counter(&second, name) > counter(&first, name),
            "{name} moved: {} then {}",
            counter(&first, name),
            counter(&second, name)
        );
    }

    // The run ends by itself with its summary.
    while next(&mut lines).is_some() {}
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}: {lines:#?}");
    let to_topdesk = lines.iter().filter(|l| crossed(l, "Outlook → TOPdesk")).count();
    let to_outlook = lines.iter().filter(|l| crossed(l, "TOPdesk → Outlook")).count();
    assert!(to_topdesk >= 1 && to_outlook >= 1, "crossed both ways: {lines:#?}");
    let summary = lines.iter().find(|l| l.contains("change(s) made")).expect("the summary");
    assert!(
        summary.contains(&format!("{to_topdesk} crossed Outlook → TOPdesk"))
            && summary.contains(&format!("{to_outlook} crossed TOPdesk → Outlook")),
        "the summary counts the lines: {summary}"
    );
    assert!(lines.iter().any(|l| l.starts_with("median crossing time ")), "{lines:#?}");
    for word in [" INFO ", " WARN ", " ERROR ", " DEBUG ", " TRACE "] {
        assert!(!lines.iter().any(|l| l.contains(word)), "no log lines on stdout: {lines:#?}");
    }
    // The log went to its file (said at the start), not to the terminal.
    let log = std::fs::read_to_string(dir.path().join("orb-data/demo.log")).expect("the log file");
    assert!(log.lines().filter(|l| l.contains(" INFO ")).count() > 10, "{log}");
    assert!(log.contains("engine loaded"), "{log}");
    assert!(lines.iter().any(|l| l.trim_start().starts_with("log") && l.contains("demo.log")));
    let stderr = stderr.join().unwrap();
    assert!(stderr.is_empty(), "nothing on standard error: {stderr:#?}");
}

/// `orb demo --exchange ews`: the same organisation on Exchange Server (the EWS emulator); changes cross
/// both ways through EWS push notifications and TOPdesk, and no EWS request could have read a body.
#[test]
fn an_ews_demo_run_shows_changes_crossing_both_ways_and_reads_no_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orb"))
        .args(["demo", "--exchange", "ews", "--pace", "0.5", "--for", "30", "--seed", "12"])
        .current_dir(dir.path())
        .env_remove("ORB_MASTER_KEY")
        .env_remove("ORB_MASTER_KEY_FILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<String>>()
    });
    let mut child = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(180)) {
        lines.push(line);
    }
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}: {lines:#?}");

    // The header names Exchange Server and ORB's EWS webhook.
    assert!(lines[0].contains("Exchange Server (EWS)"), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("Exchange")
            && l.contains("Exchange Server (EWS emulator) http://127.0.0.1:")
            && l.contains("/EWS/Exchange.asmx")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.trim_start().starts_with("ORB webhooks") && l.contains("/hooks/ews/demo")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("/hooks/graph/")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("ORB copied or paired them all")), "onboarding: {lines:#?}");

    // Changes crossed both ways, as the summary counts them.
    let crossed =
        |line: &str, way: &str| line.contains(way) && line.ends_with(" s") && !line.contains("NOT ARRIVED");
    let to_topdesk = lines.iter().filter(|l| crossed(l, "Outlook → TOPdesk")).count();
    let to_outlook = lines.iter().filter(|l| crossed(l, "TOPdesk → Outlook")).count();
    assert!(to_topdesk >= 1 && to_outlook >= 1, "crossed both ways: {lines:#?}");
    let summary = lines.iter().find(|l| l.contains("change(s) made")).expect("the summary");
    assert!(
        summary.contains(&format!("{to_topdesk} crossed Outlook → TOPdesk"))
            && summary.contains(&format!("{to_outlook} crossed TOPdesk → Outlook")),
        "the summary counts the lines: {summary}"
    );
    assert!(lines.iter().any(|l| l.starts_with("median crossing time ")), "{lines:#?}");

    // The privacy promise over EWS: the emulator's request log has no request that could return a body.
    let bodies = lines
        .iter()
        .find_map(|l| l.strip_prefix("EWS requests asking for an item body: "))
        .expect("the EWS summary line");
    let (asked, all) = bodies.split_once(" of ").unwrap();
    assert_eq!(asked, "0", "{bodies}");
    assert!(all.parse::<usize>().unwrap() > 0, "{bodies}");

    let log = std::fs::read_to_string(dir.path().join("orb-data/demo.log")).expect("the log file");
    assert!(log.contains("engine loaded"), "{log}");
    let stderr = stderr.join().unwrap();
    assert!(stderr.is_empty(), "nothing on standard error: {stderr:#?}");
}
