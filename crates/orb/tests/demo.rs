//! `orb demo --listen ADDR` serves the portal's `/login` with a strict Content-Security-Policy, prints the
//! portal address and the demo administrator's credentials, and those credentials log in (to the second
//! factor's enrolment, which the demo tenant requires).

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
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
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
