//! Headless Chromium for the portal's browser tests: a `chromedriver` child process per test (in its own
//! process group, which also holds the Chromium it starts; the group is killed when the [`Browser`] is
//! dropped, so a failing test leaves no process behind) and one WebDriver session, with the few steps the
//! tests repeat (fill, click, read, wait, screenshot).
//!
//! Missing `/usr/bin/chromium` or `/usr/bin/chromedriver` is a failure that says what to install, never a
//! skipped test.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The chromedriver process group; killed (with the Chromium it started) when dropped.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The child leads its own process group: end the group, Chromium included, by its id.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium session on the portal at `base`.
pub struct Browser {
    pub client: Client,
    base: String,
    shots: PathBuf,
    _driver: Driver,
}

fn free_port() -> u16 {
    orb_testkit::free_port()
}

/// Where the screenshots go: `$CARGO_TARGET_DIR/portal-screenshots`, else `<workspace>/target/…`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("portal-screenshots")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session for the portal at `base`.
    pub async fn start(base: &str) -> Self {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the portal's browser tests need headless Chromium. Run .ci/run (it \
                 installs them), or `apt-get install chromium chromium-driver` ({what})"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}; run .ci/run to install it"));
        let driver = Driver { child };
        let url = format!("http://127.0.0.1:{port}");
        let caps = serde_json::json!({
            "browserName": "chrome",
            // `data-confirm` forms ask window.confirm(): a person would click OK.
            "unhandledPromptBehavior": "accept",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1280,1024", "--no-first-run", "--disable-extensions"],
            },
        });
        let serde_json::Value::Object(caps) = caps else { unreachable!("a JSON object") };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::rustls().unwrap().capabilities(caps.clone()).connect(&url).await {
                Ok(client) => break client,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromedriver on {url} gave no Chromium session: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let shots = screenshot_dir();
        std::fs::create_dir_all(&shots).unwrap();
        Self { client, base: base.trim_end_matches('/').to_owned(), shots, _driver: driver }
    }

    /// Ends the session (Chromium exits); the process group is killed on drop anyway.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Opens `path` of the portal.
    pub async fn open(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// The current path (and query).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The element `css` (which must be there, or appear within 10 s).
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.wait_for(css).await
    }

    async fn path_now(&self) -> String {
        self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default()
    }

    /// Types `value` into the input `css` (cleared first).
    pub async fn fill(&self, css: &str, value: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }

    /// Clicks `css` (a button or link that stays on the page: htmx, a `<details>`).
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Clicks `css`, a button or link that loads another page, and waits until that page has loaded (the
    /// old document is gone and the new one is complete).
    pub async fn submit(&self, css: &str) {
        let old = self.find("html").await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match old.tag_name().await {
                Err(e) if e.is_stale_element_reference() || detached(&e) => break,
                Err(e) => panic!("after clicking {css}: {e}"),
                Ok(_) => {}
            }
            assert!(Instant::now() < deadline, "clicking {css} loaded no page within 15 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let state = self.client.execute("return document.readyState", vec![]).await.unwrap();
            if state == "complete" {
                return;
            }
            assert!(Instant::now() < deadline, "the page after clicking {css} did not finish loading");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 10 s) for the element `css` to appear (an htmx swap, a page still loading).
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let found = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
        match found {
            Ok(element) => element,
            Err(e) => {
                let page = self.client.source().await.unwrap_or_default();
                panic!("{css} did not appear on {}: {e}\n{page}", self.path_now().await)
            }
        }
    }

    /// The visible text of `css` (found again when the page was replaced while reading it).
    pub async fn text(&self, css: &str) -> String {
        let mut tries = 0;
        loop {
            match self.wait_for(css).await.text().await {
                Ok(text) => return text,
                Err(e) if (e.is_stale_element_reference() || detached(&e)) && tries < 20 => tries += 1,
                Err(e) => panic!("reading {css}: {e}"),
            }
        }
    }

    /// The visible text of the whole page.
    pub async fn page_text(&self) -> String {
        self.text("body").await
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Waits (up to `secs`) until the page's text contains `needle`, reloading it every half second when
    /// `reload` (for what the server does in the background).
    pub async fn wait_for_text(&self, needle: &str, secs: u64, reload: bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.page_text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} did not show on {} within {secs} s; the page says:\n{text}",
                self.path_now().await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            if reload {
                self.client.refresh().await.unwrap();
            }
        }
    }

    /// Saves a PNG of the viewport as `<name>.png` in [`screenshot_dir`].
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// The password step of the login form.
    pub async fn log_in(&self, email: &str, password: &str) {
        self.open("/login").await;
        self.fill("input[name=email]", email).await;
        self.fill("input[name=password]", password).await;
        self.submit("#login").await;
    }

    /// The second-factor step: `code` into the form, submitted.
    pub async fn second_factor(&self, code: &str) {
        self.fill("input[name=code]", code).await;
        self.submit("#verify").await;
    }

    /// Logs out through the header's button.
    pub async fn log_out(&self) {
        self.submit("form[action='/logout'] button").await;
        assert_eq!(self.path().await, "/login?message=logged-out");
    }
}

/// Decodes an RFC 4648 base32 text (the enrolment page's key; `=` padding and spaces ignored).
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("{text:?} is not base32"));
        buffer = (buffer << 5) | u32::try_from(value).unwrap();
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
        }
    }
    out
}

#[test]
fn base32_decodes_rfc_4648_test_vectors() {
    let check = |input: &str, expected: &[u8]| assert_eq!(base32_decode(input), expected, "{input}");
    check("", b"");
    check("MY======", b"f");
    check("MZXQ====", b"fo");
    check("MZXW6===", b"foo");
    check("MZXW6YQ=", b"foob");
    check("MZXW6YTB", b"fooba");
    check("MZXW6YTBOI======", b"foobar");
    check("mzxw 6ytb oi", b"foobar");
}

/// Whether Chromium answered a question about an element of a page that is being replaced with "the node
/// is not in the document" instead of "stale element reference" (it does so now and then while the new
/// document loads): the old document is gone either way.
fn detached(e: &fantoccini::error::CmdError) -> bool {
    let text = e.to_string();
    text.contains("does not belong to the document") || text.contains("No node with given id")
}
