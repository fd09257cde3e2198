//! The `orb` binary as an operator uses it: real processes, a real SQLite file (and a real PostgreSQL
//! database when `ORB_TEST_POSTGRES_URL` is set), real encryption. The `sync` / `backfill` tests run it
//! against the Graph and TOPdesk emulators in this test process (`support::Site`), with no `orb serve`
//! running: only the commands under test sync anything.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use orb_crypto::secrecy::ExposeSecret;
use orb_crypto::{KeyRing, MasterKey, SealedSecret, SecretAad};
use orb_store::{SqliteStore, Store};

/// The associated-data kind ORB seals tenant secrets with (a storage-format contract).
const SECRET_KIND: &str = "secrets.ciphertext";

struct Env {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Self { vars: vec![("ORB__DATA__DIR".into(), data.display().to_string())], dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.vars.retain(|(k, _)| k != key);
        self.vars.push((key.into(), value.into()));
        self
    }

    fn with_new_key(&mut self, file: &str) -> PathBuf {
        let path = self.path(file);
        let out = self.orb(&["keys", "generate", "--out", path.to_str().unwrap()], None);
        assert!(out.status.success(), "{}", stderr(&out));
        self.set("ORB_MASTER_KEY_FILE", path.to_str().unwrap());
        path
    }

    fn orb(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orb"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.orb(args, stdin);
        assert!(out.status.success(), "orb {args:?} failed: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with exactly one `error:` line containing `needle`.
    fn fails(&self, args: &[&str], stdin: Option<&str>, needle: &str) {
        let out = self.orb(args, stdin);
        assert!(!out.status.success(), "orb {args:?} should fail");
        let err = stderr(&out);
        let errors: Vec<_> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "one clear message expected, got: {err}");
        assert!(errors[0].contains(needle), "message {:?} should contain {needle:?}", errors[0]);
        assert!(!err.contains("panicked"), "{err}");
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("data").join("orb.db")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every byte the SQLite database keeps on disk (main file, WAL, shared memory).
fn files_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.file_name().unwrap().to_str().unwrap().starts_with("orb.db") {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn tenants_and_rooms_round_trip_and_disable() {
    let env = Env::new();
    assert!(env.ok(&["tenant", "list"], None).contains("no tenants yet"));
    env.ok(&["tenant", "add", "contoso"], None);
    env.ok(
        &[
            "room",
            "add",
            "--tenant",
            "contoso",
            "--mailbox",
            "Room-1@Contoso.com",
            "--topdesk-location",
            "loc-1",
        ],
        None,
    );
    env.ok(
        &[
            "room",
            "add",
            "--tenant",
            "contoso",
            "--mailbox",
            "room-2@contoso.com",
            "--topdesk-location",
            "loc-2",
            "--name",
            "Two",
        ],
        None,
    );
    let rooms = env.ok(&["room", "list", "--tenant", "contoso"], None);
    assert_eq!(rooms.lines().count(), 2);
    assert!(rooms.contains("room-1@contoso.com\tloc-1\tenabled"), "mailbox normalised: {rooms}");
    env.ok(&["room", "disable", "--tenant", "contoso", "room-1@contoso.com"], None);
    assert!(
        env.ok(&["room", "list", "--tenant", "contoso"], None)
            .contains("room-1@contoso.com\tloc-1\tdisabled")
    );
    env.fails(&["tenant", "add", "contoso"], None, "tenant \"contoso\" already exists");
    env.fails(&["room", "list", "--tenant", "fabrikam"], None, "orb tenant add fabrikam");
    env.fails(
        &["room", "disable", "--tenant", "contoso", "room-9@contoso.com"],
        None,
        "has no room room-9@contoso.com",
    );
    // Output closed early (`| head -1`) ends the command quietly.
    let mut child = Command::new(env!("CARGO_BIN_EXE_orb"))
        .args(["room", "list", "--tenant", "contoso"])
        .current_dir(env.dir.path())
        .env_clear()
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn bad_input_gets_one_clear_message_and_writes_nothing() {
    let mut env = Env::new();
    env.ok(&["tenant", "add", "contoso"], None);
    env.fails(&["tenant", "add", "Contoso Ltd"], None, "invalid tenant name");
    env.fails(
        &["room", "add", "--tenant", "contoso", "--mailbox", "room-1.contoso.com", "--topdesk-location", "l"],
        None,
        "invalid e-mail address \"room-1.contoso.com\": it has no '@'",
    );
    assert!(env.ok(&["room", "list", "--tenant", "contoso"], None).contains("has no rooms"));
    assert_eq!(env.ok(&["tenant", "list"], None).lines().count(), 1);

    // A secret without a master key: refused before anything is read or written.
    env.fails(&["secret", "set", "--tenant", "contoso", "graph.client_secret"], Some("v\n"), "no master key");
    env.with_new_key("k1");
    assert_eq!(env.ok(&["secret", "list", "--tenant", "contoso"], None), "", "nothing was stored");
    env.fails(&["secret", "set", "--tenant", "contoso", "Bad Name"], Some("v"), "invalid secret name");
    env.fails(&["secret", "set", "--tenant", "contoso", "graph.client_secret"], Some(""), "no secret value");
    assert_eq!(env.ok(&["secret", "list", "--tenant", "contoso"], None), "");

    // Configuration mistakes name the key or the scheme.
    let mut bad = Env::new();
    bad.set("ORB__DATABSE__URL", "sqlite://x.db");
    bad.fails(&["tenant", "list"], None, "unknown configuration key ORB__DATABSE__URL");
    let mut bad = Env::new();
    bad.set("ORB__DATABASE__URL", "mysql://db/orb");
    bad.fails(&["tenant", "list"], None, "the scheme \"mysql\" is not supported");
    let bad = Env::new();
    std::fs::write(bad.path("orb.toml"), "[database]\nurll = \"sqlite://x.db\"\n").unwrap();
    bad.fails(&["tenant", "list"], None, "unknown configuration key \"database.urll\"");
    bad.fails(&["--config", "missing.toml", "tenant", "list"], None, "missing.toml");
    assert!(!bad.db_path().exists(), "a refused configuration creates no database");
    let mut bad = Env::new();
    bad.set("ORB_MASTER_KEY", "c2hvcnQ=");
    bad.ok(&["tenant", "add", "contoso"], None);
    bad.fails(&["secret", "set", "--tenant", "contoso", "x"], Some("v"), "32 bytes");
}

/// A stand-in TOPdesk on 127.0.0.1 answering every request with `answer`; the runtime keeps it serving.
fn topdesk_stub(answer: fn() -> axum::response::Response) -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(move || async move { answer() });
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rt, format!("http://127.0.0.1:{port}"))
}

fn version_answer() -> axum::response::Response {
    use axum::response::IntoResponse as _;
    axum::Json(serde_json::json!({"version": "3.0.0"})).into_response()
}

/// Settings naming the TOPdesk at `url`, with `extra` appended.
fn settings_for(url: &str, extra: &str) -> String {
    format!(
        "[graph]\ntenant_id = \"7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d\"\nclient_id = \"c-1\"\nmail_sender = \
         \"ORB@Contoso.com\"\n\n[topdesk]\nurl = \"{url}\"\nusername = \"orb-api\"\nlink_type = 7\n\n{extra}"
    )
}

/// Lets the installation call the stand-in TOPdesk on http://127.0.0.1 (as the test site and the demo do).
fn allow_local_topdesk(env: &mut Env) {
    env.set("ORB__TOPDESK__ALLOW_HTTP", "true");
    env.set("ORB__TOPDESK__ALLOW_CIDRS", "127.0.0.0/8");
}

#[test]
fn tenant_settings_are_checked_before_they_are_stored_and_shown_back() {
    let (_rt, topdesk) = topdesk_stub(version_answer);
    let mut env = Env::new();
    allow_local_topdesk(&mut env);
    env.ok(&["tenant", "add", "contoso"], None);
    assert!(env.ok(&["tenant", "settings", "--tenant", "contoso"], None).contains("has no settings yet"));
    let good = settings_for(&topdesk, "[sync]\nsubject = \"drop\"\n");
    for (name, text, needle) in [
        ("typo.toml", good.replace("[sync]", "[sink]"), "sink"),
        ("mode.toml", good.replace("subject = \"drop\"", "mode = \"sometimes\""), "sometimes"),
        ("horizon.toml", good.replace("subject = \"drop\"", "horizon_days = 0"), "sync.horizon_days"),
        ("link.toml", good.replace("link_type = 7", "link_type = -1"), "topdesk.link_type"),
        (
            "domain.toml",
            good.replace("7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d", "contoso.onmicrosoft.com"),
            "Entra admin center > Overview",
        ),
    ] {
        std::fs::write(env.path(name), text).unwrap();
        env.fails(&["tenant", "settings", "--tenant", "contoso", "--file", name], None, needle);
    }
    env.fails(&["tenant", "settings", "--tenant", "contoso", "--file", "nope.toml"], None, "nope.toml");
    env.fails(&["tenant", "settings", "--tenant", "nobody", "--file", "typo.toml"], None, "sink");
    assert!(
        env.ok(&["tenant", "settings", "--tenant", "contoso"], None).contains("has no settings yet"),
        "nothing was stored by the refused files"
    );
    std::fs::write(env.path("good.toml"), &good).unwrap();
    let out = env.ok(&["tenant", "settings", "--tenant", "contoso", "--file", "good.toml"], None);
    assert!(out.contains("(version 1)"), "{out}");
    assert!(out.contains("still needed: the secret graph.client_secret"), "{out}");
    assert!(out.contains("or instead the certificate graph.certificate"), "{out}");
    assert!(out.contains("still needed: the secret topdesk.app_password"), "{out}");
    let shown = env.ok(&["tenant", "settings", "--tenant", "contoso"], None);
    assert!(shown.contains("version 1"), "{shown}");
    assert!(shown.contains("mail_sender = \"orb@contoso.com\""), "validated and lower-cased: {shown}");
    assert!(shown.contains("subject = \"drop\""), "{shown}");
    assert!(shown.contains("horizon_days = 180"), "defaults are shown: {shown}");
    // What is shown can be stored again as it is.
    std::fs::write(env.path("again.toml"), shown).unwrap();
    let out = env.ok(&["tenant", "settings", "--tenant", "contoso", "--file", "again.toml"], None);
    assert!(out.contains("(version 2)"), "{out}");
}

#[test]
fn topdesk_urls_outside_the_installations_policy_or_redirecting_are_refused_and_nothing_changes() {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse as _;
    let (_rt1, topdesk) = topdesk_stub(version_answer);
    let (_rt2, redirecting) = topdesk_stub(|| {
        (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "http://169.254.169.254/latest/meta-data")])
            .into_response()
    });
    let https_local = topdesk.replace("http://", "https://");
    // (installation allows the local stand-ins, URL, what the one error line says)
    let cases: &[(bool, &str, &str)] = &[
        (false, &topdesk, "is not an https:// URL"),
        (false, "https://169.254.169.254", "169.254.169.254, a cloud metadata address"),
        (false, &https_local, "127.0.0.1, a loopback address"),
        (false, "https://[::ffff:127.0.0.1]:8443", "loopback"),
        (false, "https://10.1.2.3", "allow_cidrs = \"10.1.2.3/32\""),
        (true, "http://169.254.169.254", "cloud metadata"),
        (true, &redirecting, "answered HTTP 301"),
        (true, "http://127.0.0.1:9", "cannot reach http://127.0.0.1:9/tas/api/version"),
        (true, "https://no-such-host.invalid", "cannot be resolved"),
    ];
    let strict = Env::new();
    strict.ok(&["tenant", "add", "contoso"], None);
    let mut lenient = Env::new();
    allow_local_topdesk(&mut lenient);
    lenient.ok(&["tenant", "add", "contoso"], None);
    // The lenient installation already holds good settings: a refused file leaves them as they are.
    std::fs::write(lenient.path("good.toml"), settings_for(&topdesk, "")).unwrap();
    lenient.ok(&["tenant", "settings", "--tenant", "contoso", "--file", "good.toml"], None);
    let before = lenient.ok(&["tenant", "settings", "--tenant", "contoso"], None);
    for (i, &(allowed, url, needle)) in cases.iter().enumerate() {
        let env = if allowed { &lenient } else { &strict };
        let name = format!("case-{i}.toml");
        std::fs::write(env.path(&name), settings_for(url, "")).unwrap();
        let out = env.orb(&["tenant", "settings", "--tenant", "contoso", "--file", &name], None);
        assert!(!out.status.success(), "{url} was accepted");
        let err = stderr(&out);
        assert!(err.contains(needle) && err.contains("topdesk.url"), "{url}: {err}");
        assert!(err.contains("was not stored"), "{url}: {err}");
    }
    assert!(strict.ok(&["tenant", "settings", "--tenant", "contoso"], None).contains("has no settings yet"));
    assert_eq!(lenient.ok(&["tenant", "settings", "--tenant", "contoso"], None), before, "unchanged");
}

#[test]
fn a_certificate_credential_is_checked_before_it_is_stored() {
    let mut env = Env::new();
    env.with_new_key("k");
    env.ok(&["tenant", "add", "contoso"], None);
    let pair = || {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["orb.test".to_owned()]).unwrap().self_signed(&key).unwrap();
        (key.serialize_pem(), cert.pem())
    };
    let (key, cert) = pair();
    let (_, other_cert) = pair();
    let set = ["secret", "set", "--tenant", "contoso", "graph.certificate"];
    for (bundle, needle) in [
        (cert.clone(), "no PKCS#8 private key"),
        (key.clone(), "no certificate"),
        (format!("{key}{other_cert}"), "does not belong to the private key"),
        ("not pem".to_owned(), "nothing was stored"),
    ] {
        env.fails(&set, Some(&bundle), needle);
    }
    assert_eq!(env.ok(&["secret", "list", "--tenant", "contoso"], None), "", "nothing was stored");
    let out = env.ok(&set, Some(&format!("{key}{cert}")));
    assert!(out.contains("stored secret graph.certificate"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_with_only_a_certificate_syncs_against_the_graph_emulator() {
    // The emulator's app knows only the certificate: a client secret would be refused.
    let site =
        support::Site::new_with(&support::Db::Sqlite, "cert-test", support::GraphCredential::Certificate)
            .await;
    let secrets = site.ok(&["secret", "list", "--tenant", "contoso"], None);
    assert!(secrets.contains("graph.certificate") && !secrets.contains("graph.client_secret"), "{secrets}");
    let start = support::tomorrow() + chrono::Duration::hours(9);
    site.book(support::ROOMS[0], start, "Certificate sync").await;
    let out = site.ok(&["backfill", "--tenant", "contoso"], None);
    assert!(out.contains("backfill done"), "{out}");
    let convergence = site.converged();
    assert!(convergence.is_clean(), "{convergence}");
    assert_eq!((convergence.exchange, convergence.topdesk), (1, 1), "the Outlook booking reached TOPdesk");
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let mut env = Env::new();
    env.with_new_key("k");
    env.ok(&["tenant", "add", "contoso"], None);
    // `backfill` loads the tenants and logs (warn) that contoso has no settings yet.
    let out = env.orb(&["backfill"], None);
    let err = stderr(&out);
    assert!(err.contains("tenant is not synced"), "{err}");
    assert!(!err.contains("\x1b["), "ANSI escape codes in piped logs: {err:?}");
}

#[test]
fn secrets_are_encrypted_at_rest_and_survive_key_rotation() {
    let mut env = Env::new();
    let first_key_file = env.with_new_key("first.key");
    env.ok(&["tenant", "add", "contoso"], None);
    env.ok(&["tenant", "add", "fabrikam"], None);
    let canary = format!("canary-{}", uuid_like());
    let values = [
        ("contoso", "graph.client_secret", format!("{canary}-graph")),
        ("contoso", "topdesk.app_password", format!("{canary}-topdesk")),
        ("fabrikam", "graph.client_secret", format!("{canary}-fabrikam")),
    ];
    for (tenant, name, value) in &values {
        let out = env.ok(&["secret", "set", "--tenant", tenant, name], Some(&format!("{value}\n")));
        assert!(!out.contains(value.as_str()), "the value is never echoed");
    }
    let listed = env.ok(&["secret", "list", "--tenant", "contoso"], None);
    assert!(listed.contains("graph.client_secret") && !listed.contains(&canary), "{listed}");

    // The raw database files hold no trace of any value, but do hold the (non-secret) names.
    let raw = files_bytes(env.db_path().parent().unwrap());
    assert!(contains(&raw, "topdesk.app_password"), "the scan does see the secrets table");
    assert!(!contains(&raw, &canary), "a secret value is stored in clear");

    // A wrong master key is refused with a clear message and stores nothing.
    env.with_new_key("wrong.key");
    let check = env.orb(&["keys", "check"], None);
    assert!(!check.status.success());
    assert!(stderr(&check).contains("3 of 3 secrets cannot be opened"), "{}", stderr(&check));
    assert!(stderr(&check).contains("the master key is wrong or missing"), "{}", stderr(&check));
    env.fails(&["secret", "set", "--tenant", "contoso", "new.one"], Some("v"), "sealed under master key");
    env.fails(&["keys", "rotate", "--new-key-file", "never.key"], None, "cannot open secret");

    // Rotate from the right key to a new one: everything reads back with the new key only — the portal
    // users' second factors too (sealed like the portal seals them: no tenant, kind `users.totp`, the
    // user's id as the row).
    env.set("ORB_MASTER_KEY_FILE", first_key_file.to_str().unwrap());
    env.ok(&["user", "add", "--role", "operator", "--email", "ops@example.com"], None);
    let totp_plain = b"twenty-byte-secret!!".to_vec();
    let totp_aad_row = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = SqliteStore::open(&env.db_path(), 1).await.unwrap();
            let user = store
                .user_by_email(&orb_core::EmailAddress::parse("ops@example.com").unwrap())
                .await
                .unwrap();
            let first = MasterKey::from_file(&first_key_file).unwrap();
            let row = user.id.to_string();
            let aad = SecretAad::new(orb_core::TenantId::from_uuid(uuid::Uuid::nil()), "users.totp", &row);
            let sealed = KeyRing::new(first).seal(&aad, &totp_plain).unwrap();
            let mut bytes = sealed.nonce.to_vec();
            bytes.extend_from_slice(&sealed.ciphertext);
            let totp = orb_store::SealedTotp { sealed: bytes, key_id: sealed.key_id };
            store.set_user_totp(user.id, Some(&totp), true, None).await.unwrap();
            row
        })
    };
    let new_key_path = env.path("second.key");
    let out = env.ok(&["keys", "rotate", "--new-key-file", new_key_path.to_str().unwrap()], None);
    assert!(out.contains("re-encrypted 3 secret(s)") && out.contains("1 portal second factor(s)"), "{out}");
    env.fails(&["keys", "check"], None, "3 of 3 secrets cannot be opened");
    env.set("ORB_MASTER_KEY_FILE", new_key_path.to_str().unwrap());
    assert!(env.ok(&["keys", "check"], None).contains("all 3 secret(s) open"));
    let new_key = MasterKey::from_file(&new_key_path).unwrap();
    let old_key = MasterKey::from_file(&first_key_file).unwrap();
    let read_back = read_secrets(&env.db_path(), &new_key);
    for (tenant, name, value) in &values {
        assert_eq!(read_back.get(&(tenant.to_string(), name.to_string())), Some(value), "{tenant}/{name}");
    }
    assert!(!contains(&files_bytes(env.db_path().parent().unwrap()), &canary));
    // The old key opens nothing any more.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(&env.db_path(), 1).await.unwrap();
        for row in store.all_secrets_for_rotation().await.unwrap() {
            assert_eq!(row.key_id, new_key.id());
            let sealed =
                SealedSecret::from_parts(row.key_id.clone(), &row.nonce, row.ciphertext.clone()).unwrap();
            let aad = SecretAad::new(row.tenant_id, SECRET_KIND, &row.name);
            assert!(KeyRing::new(old_key.clone()).open(&aad, &sealed).is_err());
        }
    });
    // The second factor opens with the new key and still works as enrolled.
    rt.block_on(async {
        let store = SqliteStore::open(&env.db_path(), 1).await.unwrap();
        let user =
            store.user_by_email(&orb_core::EmailAddress::parse("ops@example.com").unwrap()).await.unwrap();
        assert!(user.totp_enabled, "rotation keeps the enrolment");
        let totp = user.totp.unwrap();
        assert_eq!(totp.key_id, new_key.id());
        let (nonce, ciphertext) = totp.sealed.split_at(12);
        let sealed = SealedSecret::from_parts(totp.key_id.clone(), nonce, ciphertext.to_vec()).unwrap();
        let aad =
            SecretAad::new(orb_core::TenantId::from_uuid(uuid::Uuid::nil()), "users.totp", &totp_aad_row);
        let opened = KeyRing::new(new_key.clone()).open_bytes(&aad, &sealed).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&opened), totp_plain.as_slice());
        assert!(KeyRing::new(old_key.clone()).open_bytes(&aad, &sealed).is_err());
    });
    // Rotating again to the same key is refused.
    env.fails(
        &["keys", "rotate", "--new-key-file", new_key_path.to_str().unwrap()],
        None,
        "already configured",
    );
}

/// Opens every secret in the SQLite database with `key`: (tenant name, secret name) → value.
fn read_secrets(db: &Path, key: &MasterKey) -> std::collections::HashMap<(String, String), String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(db, 1).await.unwrap();
        let names: std::collections::HashMap<_, _> =
            store.list_tenants().await.unwrap().into_iter().map(|t| (t.id, t.name.to_string())).collect();
        let ring = KeyRing::new(key.clone());
        let mut out = std::collections::HashMap::new();
        for row in store.all_secrets_for_rotation().await.unwrap() {
            let sealed =
                SealedSecret::from_parts(row.key_id.clone(), &row.nonce, row.ciphertext.clone()).unwrap();
            let value = ring.open(&SecretAad::new(row.tenant_id, SECRET_KIND, &row.name), &sealed).unwrap();
            out.insert((names[&row.tenant_id].clone(), row.name.clone()), value.expose_secret().to_owned());
        }
        out
    })
}

fn uuid_like() -> String {
    MasterKey::generate().unwrap().id().trim_start_matches("k-").to_owned()
}

/// With PostgreSQL: a full `pg_dump` of ORB's database contains no secret value.
#[test]
fn postgres_dump_holds_no_secret_value() {
    let Some(url) = std::env::var("ORB_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL variant: set ORB_TEST_POSTGRES_URL"
        );
        eprintln!("ORB_TEST_POSTGRES_URL not set: skipping");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = format!("orb_cli_{}", uuid_like());
    rt.block_on(async {
        let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&admin).await.unwrap();
    });
    let (base, _) = url.rsplit_once('/').expect("URL with a database name");
    let db_url = format!("{base}/{db}");
    let mut env = Env::new();
    env.set("ORB__DATABASE__URL", &db_url);
    env.with_new_key("pg.key");
    env.ok(&["tenant", "add", "contoso"], None);
    let canary = format!("pg-canary-{}", uuid_like());
    env.ok(&["secret", "set", "--tenant", "contoso", "graph.client_secret"], Some(&canary));
    assert!(env.ok(&["keys", "check"], None).contains("all 1 secret(s) open"));
    let dump = Command::new("pg_dump").arg("--data-only").arg(&db_url).output().expect("pg_dump installed");
    assert!(dump.status.success(), "pg_dump: {}", stderr(&dump));
    assert!(contains(&dump.stdout, "graph.client_secret"), "the dump does include the secrets table");
    assert!(!contains(&dump.stdout, &canary), "a secret value appears in the PostgreSQL dump");
    assert!(!env.db_path().exists(), "the PostgreSQL URL was used, not the SQLite default");
    rt.block_on(async {
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)")))
            .execute(&admin)
            .await;
    });
}

// ---- owed records and restores: `orb sync --dry-run`, `--retry-failed`, `orb backfill` ----

/// Anna's TOPdesk-side refusal: her booking synced by a backfill, then moved onto a slot an operator
/// blocked in TOPdesk for facility work (a person without e-mail: nothing ORB syncs), so TOPdesk refuses
/// the reschedule. Returns the booking's new start and the blocking reservation.
async fn refused_move(site: &support::Site) -> (chrono::DateTime<chrono::Utc>, orb_topdesk::ReservationId) {
    use chrono::Duration;
    let start = support::tomorrow() + Duration::hours(9);
    let moved = support::tomorrow() + Duration::hours(13);
    let event = site.book(support::ROOMS[0], start, "Quarterly planning").await;
    let out = site.ok(&["backfill", "--tenant", "contoso"], None);
    assert!(out.contains("backfill done"), "{out}");
    assert!(site.reservation_at(0, start).is_some(), "synced by the backfill");
    let facility = site.td.emulator.add_person("Facility", "Desk", None);
    let mut block = orb_topdesk::wire::CreateReservationDto::new(
        facility,
        &site.rooms[0].1,
        moved,
        moved + Duration::hours(1),
    );
    block.brief_description = Some("Maintenance".into());
    let blocker = site.topdesk.create_reservation(&block).await.unwrap().id.unwrap();
    site.retime(&event, moved).await;
    let out = site.ok(&["backfill", "--tenant", "contoso"], None);
    assert!(out.contains("0 new, 1 changed"), "the move is found and carried out: {out}");
    assert!(site.reservation_at(0, start).is_some(), "TOPdesk refused: still at the old time");
    (moved, blocker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_dry_run_lists_a_failed_record_and_retry_failed_writes_it_again() {
    for db in support::databases() {
        let site = support::Site::new(&db, "cli-redrive").await;
        let (moved, blocker) = refused_move(&site).await;
        let store = site.open_store().await;
        let tenant = store.list_tenants().await.unwrap().remove(0);
        let filter = orb_store::BookingFilter::default();
        let record = store.list_bookings(tenant.id, &filter).await.unwrap().remove(0);
        assert_eq!(record.topdesk_status, orb_core::SyncStatus::Failed, "{record:?}");

        // The dry run lists it: booking, room, side, since when, where it stands, the last error.
        let plan = site.ok(&["sync", "--dry-run", "--tenant", "contoso"], None);
        let line = plan.lines().find(|l| l.contains("owed: booking")).unwrap_or_else(|| panic!("{plan}"));
        assert!(line.contains(&record.id.to_string()), "{line}");
        assert!(line.contains(support::ROOMS[0]), "{line}");
        assert!(line.contains("TOPdesk failed since"), "{line}");
        assert!(line.contains("waiting (back-off") || line.contains("re-driven now"), "{line}");
        let reason = line.split("last error: ").nth(1).unwrap_or_default();
        assert!(!reason.is_empty() && reason != "-", "the refusal's reason: {line}");
        assert!(plan.contains("1 owed record(s); `orb sync --retry-failed`"), "{plan}");
        assert!(plan.contains("dry run: nothing was written"), "{plan}");
        let before = moved - chrono::Duration::hours(4);
        assert!(site.reservation_at(0, before).is_some(), "a dry run writes nothing");

        // The room is freed; `--retry-failed` writes the booking to TOPdesk again at once.
        site.topdesk.cancel_reservation(blocker, &orb_topdesk::Reason::Default).await.unwrap();
        let out = site.ok(&["sync", "--retry-failed", "--tenant", "contoso"], None);
        assert!(out.contains("re-drove 1 owed record(s)"), "{out}");
        assert!(site.reservation_at(0, moved).is_some(), "TOPdesk holds the new time: {out}");
        assert!(site.reservation_at(0, before).is_none(), "moved, not made again: {out}");
        let convergence = site.converged();
        assert!(convergence.is_clean(), "{convergence}");
        assert_eq!((convergence.exchange, convergence.topdesk), (1, 1), "moved, not doubled");
        let after = site.ok(&["sync", "--dry-run", "--tenant", "contoso"], None);
        assert!(!after.contains("owed: booking"), "{after}");
        assert!(after.contains("0 to write again (0 owed)"), "{after}");
    }
}

/// Every file of the SQLite database (main file, WAL, shared memory) copied from `from` to `to`; files `to`
/// has that `from` lacks are removed.
fn copy_database(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let source = PathBuf::from(format!("{}{suffix}", from.display()));
        let target = PathBuf::from(format!("{}{suffix}", to.display()));
        if source.exists() {
            std::fs::copy(&source, &target).unwrap();
        } else if target.exists() {
            std::fs::remove_file(&target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_restored_sqlite_file_backfill_makes_every_booking_one_record_again() {
    use chrono::Duration;
    let site = support::Site::new(&support::Db::Sqlite, "cli-restore").await;
    let day = support::tomorrow();
    // Before the backup: one booking made in Outlook, one in TOPdesk, both synced by a backfill.
    let first = site.book(support::ROOMS[0], day + Duration::hours(9), "Made in Outlook").await;
    site.reserve(0, day + Duration::hours(11)).await;
    site.ok(&["backfill", "--tenant", "contoso"], None);
    assert!(site.converged().is_clean());
    let live = site.dir.path().join("orb.db");
    let backup = site.dir.path().join("backup.db");
    copy_database(&live, &backup);

    // After it: two more bookings and a move, all synced.
    site.book(support::ROOMS[0], day + Duration::hours(13), "Made in Outlook later").await;
    site.reserve(0, day + Duration::hours(15)).await;
    site.retime(&first, day + Duration::hours(8)).await;
    site.ok(&["backfill", "--tenant", "contoso"], None);
    let convergence = site.converged();
    assert!(convergence.is_clean(), "{convergence}");
    assert_eq!((convergence.exchange, convergence.topdesk), (4, 4));

    // The database is restored from the backup: two records are lost, one is old.
    copy_database(&backup, &live);
    let plan = site.ok(&["sync", "--dry-run", "--tenant", "contoso", "--room", support::ROOMS[0]], None);
    assert!(plan.contains("2 to link, 0 new, 1 changed, 0 to cancel"), "{plan}");
    assert_eq!(plan.matches("its record lost: link them again, write nothing").count(), 2, "{plan}");

    let out = site.ok(&["backfill", "--tenant", "contoso"], None);
    assert!(out.contains("backfill done"), "{out}");
    let convergence = site.converged();
    assert!(convergence.is_clean(), "{convergence}");
    assert_eq!((convergence.exchange, convergence.topdesk), (4, 4), "nothing doubled on either side");
    let store = site.open_store().await;
    let tenant = store.list_tenants().await.unwrap().remove(0);
    let records = store.list_bookings(tenant.id, &orb_store::BookingFilter::default()).await.unwrap();
    assert_eq!(records.len(), 4, "{records:?}");
    for r in &records {
        assert!(r.exchange.room_event_id.is_some() && r.topdesk.reservation_id.is_some(), "{r:?}");
    }
    assert!(
        records.iter().any(|r| r.start == day + Duration::hours(8)),
        "the old record caught up: {records:?}"
    );
    let after = site.ok(&["sync", "--dry-run", "--tenant", "contoso"], None);
    assert!(after.contains("0 to link, 0 new, 0 changed, 0 to cancel"), "{after}");
}

// ---- operator commands: `orb push-token`, `orb jobs`, `orb sync --approve-mass-deletion` ----

/// Runs a command of `site` that must fail with exactly one `error:` line containing `needle`.
fn site_fails(site: &support::Site, args: &[&str], needle: &str) {
    let out = site.command(args).stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success(), "orb {args:?} should fail");
    let err = stderr(&out);
    let errors: Vec<_> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one clear message expected, got: {err}");
    assert!(errors[0].contains(needle), "message {:?} should contain {needle:?}", errors[0]);
}

/// The audit actions of the first tenant, oldest first, with their actor.
async fn audit_actions(store: &dyn Store) -> Vec<(String, String)> {
    let tenant = store.list_tenants().await.unwrap().remove(0);
    let mut log = store.list_audit(tenant.id, 1000).await.unwrap();
    log.reverse();
    log.into_iter().map(|e| (e.action, e.actor)).collect()
}

/// The token `orb push-token create|rotate` printed (the line after the heading), and the whole output.
fn printed_token(out: &str) -> String {
    let mut lines = out.lines();
    let heading = lines.next().unwrap_or_default();
    assert!(heading.contains("shown only now"), "{out}");
    lines.next().unwrap_or_else(|| panic!("{out}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_token_is_shown_once_accepted_at_the_intake_and_refused_once_rotated_or_revoked() {
    let site = support::Site::new(&support::Db::Sqlite, "cli-push-token").await;
    let store = site.open_store().await;
    let tenant = store.list_tenants().await.unwrap().remove(0);
    let audit_before = audit_actions(&*store).await.len();
    // Refused, writing nothing: an unknown tenant, nothing to rotate or revoke yet.
    site_fails(&site, &["push-token", "create", "--tenant", "nosuch"], "tenant \"nosuch\" does not exist");
    site_fails(&site, &["push-token", "rotate", "--tenant", "contoso"], "has no TOPdesk push token");
    site_fails(&site, &["push-token", "revoke", "--tenant", "contoso"], "has no TOPdesk push token");
    assert_eq!(audit_actions(&*store).await.len(), audit_before);
    assert_eq!(store.push_token_hash(tenant.id).await.unwrap(), None);

    let out = site.ok(&["push-token", "create", "--tenant", "contoso"], None);
    let first = printed_token(&out);
    assert!(first.len() >= 43, "32 random bytes: {first:?}");
    let endpoint = format!("POST {}/hooks/topdesk/contoso", site.base());
    assert!(out.contains(&endpoint) && out.contains("Authorization: Bearer <token>"), "{out}");
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, first.as_bytes());
    assert_eq!(store.push_token_hash(tenant.id).await.unwrap().as_deref(), Some(hash.as_ref()));
    site_fails(&site, &["push-token", "create", "--tenant", "contoso"], "has a TOPdesk push token already");

    let mut orb = site.spawn();
    site.healthy(&mut orb).await;
    let push = |token: String| {
        let request = site
            .http
            .post(format!("{}/hooks/topdesk/contoso", site.base()))
            .bearer_auth(token)
            .json(&serde_json::json!({"reservations": ["R-1"]}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(push(first.clone()).await, 202, "the printed token is accepted at the intake");
    // A wrong token gets the same answer as an unknown tenant: 404.
    assert_eq!(push("not-the-token".into()).await, 404);

    // Rotated: the old token is refused at once, the new one accepted.
    let out = site.ok(&["push-token", "rotate", "--tenant", "contoso"], None);
    let second = printed_token(&out);
    assert_ne!(second, first);
    assert!(out.contains("the old token is refused from now on"), "{out}");
    assert_eq!(push(first.clone()).await, 404);
    assert_eq!(push(second.clone()).await, 202);

    // Revoked: every push is refused.
    let out = site.ok(&["push-token", "revoke", "--tenant", "contoso"], None);
    assert!(out.contains("revoked the TOPdesk push token of tenant contoso"), "{out}");
    assert_eq!(push(second.clone()).await, 404);
    assert_eq!(store.push_token_hash(tenant.id).await.unwrap(), None);
    support::sigterm(&orb);
    support::wait_exit(&mut orb, 30).await;

    let actions = audit_actions(&*store).await;
    for action in ["push_token.create", "push_token.rotate", "push_token.revoke"] {
        assert!(actions.contains(&(action.to_owned(), "cli".to_owned())), "{action}: {actions:?}");
    }
    // The three refused pushes are summed up per minute (one row, two if a minute ended between them),
    // written at the latest at shutdown.
    let summaries: Vec<_> = store
        .list_audit(tenant.id, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "webhook.refused")
        .collect();
    assert!((1..=2).contains(&summaries.len()), "{summaries:#?}");
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for entry in &summaries {
        let row: std::collections::BTreeMap<String, u64> = serde_json::from_str(&entry.target).unwrap();
        for (reason, n) in row {
            *counts.entry(reason).or_default() += n;
        }
    }
    assert_eq!(counts, [("bad_token".to_owned(), 2), ("no_push_token".to_owned(), 1)].into());
    // The tokens were shown once and are kept nowhere: not in the database, not in the service's log.
    let db = files_bytes(site.dir.path());
    for token in [&first, &second] {
        assert!(!contains(&db, token), "a push token is stored in clear");
        assert!(!site.log_text().contains(token.as_str()), "a push token is in the log");
    }
}

/// Enqueues a job and lets it die (claimed once, failed without a retry).
async fn dead_job(store: &dyn Store, lane: &orb_store::Lane, kind: &str, error: &str) -> orb_store::JobId {
    use chrono::{Duration, Utc};
    let job = orb_store::NewJob {
        lane: lane.clone(),
        kind: kind.into(),
        payload: serde_json::json!({"organizer": "anna@contoso.com"}),
        correlation_id: None,
        run_at: None,
    };
    let id = store.enqueue(&job, Utc::now()).await.unwrap();
    let claimed = store.claim_job("test", Utc::now(), Duration::minutes(1)).await.unwrap().unwrap();
    assert_eq!(claimed.job.id, id);
    store.fail_job(&claimed.lease, error, None, Utc::now()).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_are_listed_without_payload_and_dead_ones_retried_or_dismissed() {
    use orb_store::{JobStatus, Lane, StoreError};
    let env = Env::new();
    env.ok(&["tenant", "add", "contoso"], None);
    let store = SqliteStore::open(&env.db_path(), 1).await.unwrap();
    let tenant = store.list_tenants().await.unwrap().remove(0);
    let lane = Lane::tenant(tenant.id);
    let by_id = dead_job(&store, &lane, "graph.notification", "Graph answered 500\nthen 503").await;
    let dismissed = dead_job(&store, &lane, "topdesk.poll", "TOPdesk answered 500").await;
    let by_all = dead_job(&store, &lane, "reconcile.sweep", "TOPdesk answered 502").await;
    let later = orb_store::NewJob {
        lane: lane.clone(),
        kind: "topdesk.poll".into(),
        payload: serde_json::json!({"organizer": "anna@contoso.com"}),
        correlation_id: None,
        run_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
    };
    let queued = store.enqueue(&later, chrono::Utc::now()).await.unwrap();

    let all = env.ok(&["jobs", "list"], None);
    assert!(all.starts_with("id\ttenant\tkind\tlane\tstatus\tattempts\trun_at\tlast_error\n"), "{all}");
    assert_eq!(all.lines().count(), 5, "{all}");
    let line = all.lines().find(|l| l.starts_with(&format!("{by_id}\t"))).unwrap();
    assert!(line.contains("contoso\tgraph.notification\ttenant\tdead\t1\t"), "{line}");
    assert!(line.ends_with("Graph answered 500 then 503"), "one line per job: {line}");
    assert!(all.contains(&format!("{queued}\tcontoso\ttopdesk.poll\ttenant\tqueued\t0\t")), "{all}");
    assert!(!all.contains("anna@contoso.com"), "never the payload: {all}");
    let dead = env.ok(&["jobs", "list", "--dead", "--tenant", "contoso"], None);
    assert_eq!(dead.lines().count(), 4, "{dead}");
    assert!(!dead.contains("queued"), "{dead}");

    // Refusals: one message each, nothing written.
    let mut before = Vec::new();
    for id in [by_id, dismissed, by_all, queued] {
        before.push(store.get_job(tenant.id, id).await.unwrap());
    }
    let audits_before = store.list_audit(tenant.id, 100).await.unwrap().len();
    let q = queued.to_string();
    let not_dead = format!("job {queued} is queued, not dead");
    let refusals: &[(&[&str], &str)] = &[
        (&["jobs", "retry", "987654"], "there is no job 987654"),
        (&["jobs", "dismiss", "987654"], "there is no job 987654"),
        (&["jobs", "retry", &q], &not_dead),
        (&["jobs", "dismiss", &q], &not_dead),
        (&["jobs", "list", "--tenant", "nosuch"], "tenant \"nosuch\" does not exist"),
        (&["jobs", "retry", "--all-dead", "--tenant", "nosuch"], "tenant \"nosuch\" does not exist"),
        (&["jobs", "retry"], "required arguments were not provided"),
        (&["jobs", "retry", "1", "--all-dead"], "cannot be used with"),
    ];
    for (args, needle) in refusals {
        env.fails(args, None, needle);
    }
    for job in &before {
        assert_eq!(&store.get_job(tenant.id, job.id).await.unwrap(), job, "a refusal changes nothing");
    }
    assert_eq!(store.list_audit(tenant.id, 100).await.unwrap().len(), audits_before);

    // Retry one by id: queued again, attempts reset, due now.
    let out = env.ok(&["jobs", "retry", &by_id.to_string()], None);
    assert!(out.contains(&format!("job {by_id} of tenant contoso is queued again")), "{out}");
    let job = store.get_job(tenant.id, by_id).await.unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Queued, 0));
    assert!(job.run_at <= chrono::Utc::now() && job.finished_at.is_none(), "{job:?}");
    // Dismiss one: gone from the dead jobs.
    let out = env.ok(&["jobs", "dismiss", &dismissed.to_string()], None);
    assert!(out.contains(&format!("dismissed dead job {dismissed}")), "{out}");
    assert!(matches!(store.get_job(tenant.id, dismissed).await, Err(StoreError::NotFound { .. })));
    // Every remaining dead job.
    let out = env.ok(&["jobs", "retry", "--all-dead"], None);
    assert!(out.contains("tenant contoso: 1 dead job(s) queued again"), "{out}");
    assert_eq!(store.get_job(tenant.id, by_all).await.unwrap().status, JobStatus::Queued);
    assert!(env.ok(&["jobs", "list", "--dead"], None).contains("no dead jobs"));
    assert!(env.ok(&["jobs", "retry", "--all-dead"], None).contains("no dead jobs; nothing to retry"));

    let log = store.list_audit(tenant.id, 100).await.unwrap();
    let entries: Vec<_> = log.iter().filter(|e| e.action.starts_with("jobs.")).collect();
    assert_eq!(entries.len(), 3, "{log:?}");
    assert!(entries.iter().all(|e| e.actor == "cli"), "{entries:?}");
    let dismissal = entries.iter().find(|e| e.action == "jobs.dismiss").unwrap();
    assert!(dismissal.target.contains(&format!("job {dismissed} (topdesk.poll")), "{dismissal:?}");
    assert!(!log.iter().any(|e| e.target.contains("anna@contoso.com")), "no payload in the audit log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mass_deletion_is_held_until_an_admin_approves_it_for_one_room() {
    use chrono::Duration;
    let site = support::Site::new(&support::Db::Sqlite, "cli-mass-deletion").await;
    let day = support::tomorrow();
    let room = support::ROOMS[0];
    let mut events = Vec::new();
    for hour in 8..14 {
        events.push((site.book(room, day + Duration::hours(hour), "Team meeting").await, hour));
    }
    site.ok(&["backfill", "--tenant", "contoso"], None);
    assert!(site.converged().is_clean());
    // Two of six future bookings cancelled in Outlook, in a room that removes cancelled meetings: the
    // sweep can only infer the deletions from absence, which is what the guard holds (above its 30 %).
    let removes = orb_emulators::graph::RoomSettings { remove_canceled_meetings: true, ..Default::default() };
    assert!(site.graph_em.set_room_settings(room, removes));
    for (id, _) in &events[..2] {
        site.cancel_meeting(id).await;
    }
    let out = site.ok(&["sync", "--tenant", "contoso", "--room", room], None);
    assert!(out.contains("2 held by the mass-deletion guard"), "{out}");
    assert!(site.reservation_at(0, day + Duration::hours(8)).is_some(), "held, not cancelled");

    let store = site.open_store().await;
    let audit_before = audit_actions(&*store).await.len();
    let refusals: &[(&[&str], &str)] = &[
        (&["sync", "--approve-mass-deletion", "--tenant", "contoso"], "required arguments were not provided"),
        (&["sync", "--approve-mass-deletion", "--room", room], "required arguments were not provided"),
        (
            &["sync", "--approve-mass-deletion", "--tenant", "nosuch", "--room", room],
            "tenant \"nosuch\" does not exist",
        ),
        (
            &["sync", "--approve-mass-deletion", "--tenant", "contoso", "--room", "nosuch@contoso.com"],
            "tenant contoso has no room nosuch@contoso.com",
        ),
    ];
    for (args, needle) in refusals {
        site_fails(&site, args, needle);
    }
    assert_eq!(audit_actions(&*store).await.len(), audit_before, "a refusal writes nothing");
    assert!(site.reservation_at(0, day + Duration::hours(8)).is_some());

    let out = site.ok(&["sync", "--approve-mass-deletion", "--tenant", "contoso", "--room", room], None);
    assert!(out.contains("0 held by the mass-deletion guard"), "{out}");
    assert!(out.contains("mass deletion approved: carried out 2 cancellation(s)"), "{out}");
    for (_, hour) in &events[..2] {
        assert!(
            site.reservation_at(0, day + Duration::hours(*hour)).is_none(),
            "cancelled in TOPdesk: {out}"
        );
    }
    for (_, hour) in &events[2..] {
        assert!(site.reservation_at(0, day + Duration::hours(*hour)).is_some(), "kept: {out}");
    }
    let convergence = site.converged();
    assert!(convergence.is_clean(), "{convergence}");
    let tenant = store.list_tenants().await.unwrap().remove(0);
    let log = store.list_audit(tenant.id, 100).await.unwrap();
    let approval = log.iter().find(|e| e.action == "reconcile.mass_deletion_approved").expect("audited");
    assert_eq!(approval.actor, "cli");
    assert!(approval.target.contains(room) && approval.target.contains("2 cancellation(s)"), "{approval:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_mass_deletion_rejected_for_one_room_is_written_back() {
    use chrono::Duration;
    let site = support::Site::new(&support::Db::Sqlite, "cli-mass-deletion-reject").await;
    let day = support::tomorrow();
    let room = support::ROOMS[0];
    let mut events = Vec::new();
    for hour in 8..14 {
        events.push((site.book(room, day + Duration::hours(hour), "Team meeting").await, hour));
    }
    site.ok(&["backfill", "--tenant", "contoso"], None);
    assert!(site.converged().is_clean());
    // Two of six meetings gone from Outlook by mistake, in a room that removes cancelled meetings: the
    // sweep infers the deletions from absence and the guard holds them.
    let removes = orb_emulators::graph::RoomSettings { remove_canceled_meetings: true, ..Default::default() };
    assert!(site.graph_em.set_room_settings(room, removes));
    for (id, _) in &events[..2] {
        site.cancel_meeting(id).await;
    }
    let out = site.ok(&["sync", "--tenant", "contoso", "--room", room], None);
    assert!(out.contains("2 held by the mass-deletion guard"), "{out}");

    let store = site.open_store().await;
    let audit_before = audit_actions(&*store).await.len();
    let refusals: &[(&[&str], &str)] = &[
        (&["sync", "--reject-mass-deletion", "--tenant", "contoso"], "required arguments were not provided"),
        (
            &[
                "sync",
                "--reject-mass-deletion",
                "--approve-mass-deletion",
                "--tenant",
                "contoso",
                "--room",
                room,
            ],
            "cannot be used with",
        ),
    ];
    for (args, needle) in refusals {
        site_fails(&site, args, needle);
    }
    assert_eq!(audit_actions(&*store).await.len(), audit_before, "a refusal writes nothing");

    let out = site.ok(&["sync", "--reject-mass-deletion", "--tenant", "contoso", "--room", room], None);
    assert!(out.contains("0 held by the mass-deletion guard, 2 to write back"), "{out}");
    assert!(out.contains("mass deletion rejected: wrote 2 booking(s) back"), "{out}");
    for (_, hour) in &events {
        let start = day + Duration::hours(*hour);
        assert!(site.meeting_at(room, start).is_some(), "in Outlook again ({hour}:00): {out}");
        assert!(site.reservation_at(0, start).is_some(), "not cancelled in TOPdesk ({hour}:00): {out}");
    }
    let convergence = site.converged();
    assert!(convergence.is_clean(), "{convergence}");
    let tenant = store.list_tenants().await.unwrap().remove(0);
    let log = store.list_audit(tenant.id, 100).await.unwrap();
    let rejection = log.iter().find(|e| e.action == "reconcile.mass_deletion_rejected").expect("audited");
    assert_eq!(rejection.actor, "cli");
    assert!(
        rejection.target.contains(room) && rejection.target.contains("2 booking(s) written back"),
        "{rejection:?}"
    );
    // Nothing left: no held deletion, nothing to write.
    let out = site.ok(&["sync", "--dry-run", "--tenant", "contoso", "--room", room], None);
    assert!(
        out.contains("0 new, 0 changed, 0 to cancel, 0 held by the mass-deletion guard, 0 to write back"),
        "{out}"
    );
}

// ---- retention and privacy: `orb purge`, `orb privacy export | erase` ----

/// Seeds the tenant's data about Anna (organizer of one booking, participant of another, named in a
/// timeline entry, an audit row and a queued job) and a booking of Bob's that does not name her; returns
/// (Anna's bookings, Bob's booking).
async fn seed_people(store: &dyn Store, tenant: &str) -> (Vec<orb_core::BookingId>, orb_core::BookingId) {
    use orb_core::{
        AppointmentType, BookingRecord, EmailAddress, NewBooking, Side, TenantName, TimeZoneName,
    };
    let tenant = store.tenant_by_name(&TenantName::parse(tenant).unwrap()).await.unwrap();
    let room = store.list_rooms(tenant.id).await.unwrap().remove(0);
    let now = chrono::Utc::now();
    let mail = |s: &str| EmailAddress::parse(s).unwrap();
    let booking = |organizer: &str, participants: &[&str], hours: i64| {
        BookingRecord::new(
            NewBooking {
                tenant_id: tenant.id,
                appointment_type: AppointmentType::Single,
                series_id: None,
                original_start: None,
                organizer: mail(organizer),
                booked_by: None,
                location_text: None,
                room_id: room.id,
                participants: participants.iter().map(|p| mail(p)).collect(),
                subject: Some("Planning".into()),
                start: now + chrono::Duration::hours(hours),
                end: now + chrono::Duration::hours(hours + 1),
                time_zone: TimeZoneName::parse("Europe/Amsterdam").unwrap(),
                processor_created: Side::Exchange,
            },
            now,
        )
    };
    let event = |detail: serde_json::Value| orb_store::NewBookingEvent {
        at: now,
        kind: "observed".into(),
        side: Some(Side::Exchange),
        detail,
    };
    let lane = orb_store::Lane::room(tenant.id, room.id);
    let job = orb_store::NewJob {
        lane,
        kind: "sync.observation".into(),
        payload: serde_json::json!({"observation": {"organizer": "Anna@Contoso.com"}}),
        correlation_id: None,
        run_at: Some(now + chrono::Duration::days(1)),
    };
    let a = booking("anna@contoso.com", &["bob@contoso.com"], 24);
    store
        .insert_booking(&a, &[event(serde_json::json!({"organizer": "anna@contoso.com"}))], &[job], now)
        .await
        .unwrap();
    let b = booking("carl@contoso.com", &["anna@contoso.com"], 26);
    store.insert_booking(&b, &[event(serde_json::json!({"k": 1}))], &[], now).await.unwrap();
    let c = booking("bob@contoso.com", &[], 28);
    store
        .insert_booking(&c, &[event(serde_json::json!({"organizer": "bob@contoso.com"}))], &[], now)
        .await
        .unwrap();
    store
        .append_audit(&orb_store::NewAuditEntry {
            tenant_id: Some(tenant.id),
            at: now,
            actor: "system".into(),
            action: "mail.sent".into(),
            target: "booking-refused to anna@contoso.com".into(),
            ip: None,
        })
        .await
        .unwrap();
    (vec![a.id, b.id], c.id)
}

fn sqlite_store(env: &Env) -> (tokio::runtime::Runtime, SqliteStore) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(SqliteStore::open(&env.db_path(), 1)).unwrap();
    (rt, store)
}

fn lower(bytes: &[u8]) -> Vec<u8> {
    bytes.to_ascii_lowercase()
}

#[test]
fn privacy_export_holds_one_person_and_erase_leaves_no_trace_in_the_sqlite_files() {
    let env = Env::new();
    env.ok(&["tenant", "add", "contoso"], None);
    env.ok(
        &[
            "room",
            "add",
            "--tenant",
            "contoso",
            "--mailbox",
            "room-1@contoso.com",
            "--topdesk-location",
            "l1",
        ],
        None,
    );
    let (rt, store) = sqlite_store(&env);
    let (annas, bobs) = rt.block_on(seed_people(&store, "contoso"));
    rt.block_on(store.close());
    let dir = env.db_path().parent().unwrap().to_owned();
    assert!(contains(&lower(&files_bytes(&dir)), "anna@contoso.com"), "seeded");

    // The export: everything about Anna, nothing about Bob's own booking.
    let json = env.ok(&["privacy", "export", "--tenant", "contoso", "--email", "Anna@Contoso.com"], None);
    let export: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(export["email"], "anna@contoso.com");
    let ids: Vec<String> = export["data"]["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, annas.iter().map(ToString::to_string).collect::<Vec<_>>());
    assert_eq!(export["data"]["booking_events"].as_array().unwrap().len(), 2, "their two timelines");
    assert_eq!(export["data"]["audit"].as_array().unwrap().len(), 1);
    assert_eq!(export["data"]["jobs"].as_array().unwrap().len(), 1);
    assert!(!json.contains(&bobs.to_string()), "Bob's own booking is not in Anna's export");
    let file = env.path("anna.json");
    let out = env.ok(
        &[
            "privacy",
            "export",
            "--tenant",
            "contoso",
            "--email",
            "anna@contoso.com",
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.contains("wrote"), "{out}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("\"bookings\""));
    env.fails(
        &[
            "privacy",
            "export",
            "--tenant",
            "contoso",
            "--email",
            "anna@contoso.com",
            "--out",
            file.to_str().unwrap(),
        ],
        None,
        "must not exist yet",
    );

    // Bad input: one clear message, nothing changed.
    env.fails(
        &["privacy", "erase", "--tenant", "contoso", "--email", "not-an-address"],
        None,
        "give the person's e-mail address",
    );
    env.fails(
        &["privacy", "erase", "--tenant", "nobody", "--email", "anna@contoso.com"],
        None,
        "does not exist",
    );
    assert!(contains(&lower(&files_bytes(&dir)), "anna@contoso.com"));

    // The erasure: her address is in no byte of the database files; Bob's booking is untouched.
    let out = env.ok(&["privacy", "erase", "--tenant", "contoso", "--email", "ANNA@contoso.com"], None);
    assert!(out.contains("replaced the address with erased-") && out.contains("2 booking(s)"), "{out}");
    let bytes = lower(&files_bytes(&dir));
    assert!(!contains(&bytes, "anna@contoso.com"), "Anna's address is still in the SQLite files");
    assert!(contains(&bytes, "bob@contoso.com"));
    let json = env.ok(&["privacy", "export", "--tenant", "contoso", "--email", "anna@contoso.com"], None);
    let export: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(export["data"]["bookings"].as_array().unwrap().is_empty(), "{json}");
    let (rt, store) = sqlite_store(&env);
    let tenant = rt.block_on(store.list_tenants()).unwrap().remove(0);
    let log = rt.block_on(store.list_audit(tenant.id, 10)).unwrap();
    assert!(log.iter().any(|a| a.action == "privacy.erased" && a.target.starts_with("erased-")), "{log:?}");
    assert!(log.iter().all(|a| !a.target.to_ascii_lowercase().contains("anna@")), "{log:?}");
}

#[test]
fn purge_prints_the_counts_and_its_dry_run_deletes_nothing() {
    let env = Env::new();
    env.ok(&["tenant", "add", "contoso"], None);
    env.ok(
        &[
            "room",
            "add",
            "--tenant",
            "contoso",
            "--mailbox",
            "room-1@contoso.com",
            "--topdesk-location",
            "l1",
        ],
        None,
    );
    let (rt, store) = sqlite_store(&env);
    let tenant = rt.block_on(store.list_tenants()).unwrap().remove(0);
    let entry = orb_store::NewAuditEntry {
        tenant_id: Some(tenant.id),
        at: chrono::Utc::now() - chrono::Duration::days(500),
        actor: "cli".into(),
        action: "room.add".into(),
        target: "long ago".into(),
        ip: None,
    };
    rt.block_on(store.append_audit(&entry)).unwrap();
    let rows = |store: &SqliteStore| rt.block_on(store.list_audit(tenant.id, 100)).unwrap().len();
    let before = rows(&store);
    rt.block_on(store.close());

    let out = env.ok(&["purge", "--dry-run"], None);
    assert!(out.contains("tenant contoso: would delete") && out.contains("1 audit row(s)"), "{out}");
    let store = rt.block_on(SqliteStore::open(&env.db_path(), 1)).unwrap();
    assert_eq!(rows(&store), before, "a dry run deletes nothing");
    let out = env.ok(&["purge", "--tenant", "contoso"], None);
    assert!(out.contains("tenant contoso: deleted") && out.contains("1 audit row(s)"), "{out}");
    let log = rt.block_on(store.list_audit(tenant.id, 100)).unwrap();
    assert!(!log.iter().any(|a| a.target == "long ago"));
    assert_eq!(log[0].action, "retention.purged");
    assert!(env.ok(&["purge"], None).contains("deleted 0 inbox item(s)"));
    env.fails(&["purge", "--tenant", "nobody"], None, "does not exist");
}

/// With PostgreSQL: after `orb privacy erase` a full `pg_dump` holds the address nowhere.
#[test]
fn postgres_dump_holds_no_erased_address() {
    let Some(url) = std::env::var("ORB_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PostgreSQL variant: set ORB_TEST_POSTGRES_URL"
        );
        eprintln!("ORB_TEST_POSTGRES_URL not set: skipping");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = format!("orb_cli_{}", uuid_like().replace('-', "_"));
    rt.block_on(async {
        let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL reachable");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&admin).await.unwrap();
    });
    let (base, _) = url.rsplit_once('/').expect("URL with a database name");
    let db_url = format!("{base}/{db}");
    let mut env = Env::new();
    env.set("ORB__DATABASE__URL", &db_url);
    env.ok(&["tenant", "add", "contoso"], None);
    env.ok(
        &[
            "room",
            "add",
            "--tenant",
            "contoso",
            "--mailbox",
            "room-1@contoso.com",
            "--topdesk-location",
            "l1",
        ],
        None,
    );
    rt.block_on(async {
        let store = orb_store::PgStore::connect(&db_url, 1).await.unwrap();
        seed_people(&store, "contoso").await;
        store.close().await;
    });
    let dump = || {
        let out =
            Command::new("pg_dump").arg("--data-only").arg(&db_url).output().expect("pg_dump installed");
        assert!(out.status.success(), "pg_dump: {}", stderr(&out));
        lower(&out.stdout)
    };
    assert!(contains(&dump(), "anna@contoso.com"), "the dump holds the seeded data");
    env.ok(&["privacy", "erase", "--tenant", "contoso", "--email", "anna@contoso.com"], None);
    let after = dump();
    assert!(!contains(&after, "anna@contoso.com"), "an erased address appears in the PostgreSQL dump");
    assert!(contains(&after, "bob@contoso.com") && contains(&after, "erased-"));
    rt.block_on(async {
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)")))
            .execute(&admin)
            .await;
    });
}

/// The one-time password `orb user add` / `reset-password` prints.
fn printed_password(out: &str) -> String {
    let line = out.lines().find(|l| l.contains("password")).expect("a password line");
    line.rsplit(' ').next().unwrap().trim().to_owned()
}

#[test]
fn portal_users_are_added_reset_disabled_and_listed_from_the_cli() {
    let env = Env::new();
    env.ok(&["tenant", "add", "contoso"], None);
    let out = env.ok(&["user", "add", "--role", "operator", "--email", "Ops@Example.com"], None);
    let password = printed_password(&out);
    assert_eq!(password.len(), 19, "{out}");
    env.ok(
        &["user", "add", "--tenant", "contoso", "--role", "tenant-admin", "--email", "it@contoso.com"],
        None,
    );
    let sso = env.ok(
        &[
            "user",
            "add",
            "--tenant",
            "contoso",
            "--role",
            "tenant-viewer",
            "--email",
            "v@contoso.com",
            "--sso",
        ],
        None,
    );
    assert!(sso.contains("single sign-on") && !sso.contains("password"), "{sso}");
    // Bad input: one clear message, nothing stored.
    env.fails(
        &["user", "add", "--tenant", "contoso", "--role", "operator", "--email", "x@contoso.com"],
        None,
        "leave out --tenant",
    );
    env.fails(&["user", "add", "--role", "tenant-admin", "--email", "x@contoso.com"], None, "give --tenant");
    env.fails(
        &["user", "add", "--role", "boss", "--email", "x@contoso.com", "--tenant", "contoso"],
        None,
        "tenant-admin",
    );
    env.fails(&["user", "add", "--role", "operator", "--email", "ops@example.com"], None, "exists");
    env.fails(
        &["user", "add", "--role", "operator", "--email", "short@example.com", "--password-stdin"],
        Some("short"),
        "12",
    );
    let list = env.ok(&["user", "list"], None);
    assert_eq!(list.lines().count(), 4, "{list}");
    assert!(list.contains("ops@example.com") && list.contains("operator"), "{list}");
    assert!(!list.contains("x@contoso.com") && !list.contains("short@"), "{list}");
    let only = env.ok(&["user", "list", "--tenant", "contoso"], None);
    assert_eq!(only.lines().count(), 3, "{only}");
    // The stored hash is Argon2id of the printed password, and it never shows.
    let (rt, store) = sqlite_store(&env);
    let ops =
        rt.block_on(store.user_by_email(&orb_core::EmailAddress::parse("ops@example.com").unwrap())).unwrap();
    let hash = ops.password_hash.clone().unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(ops.password_temporary, "a password ORB made is replaced at the first login");
    assert!(orb_auth::verify_password(&secrecy::SecretString::from(password.clone()), &hash).unwrap());
    assert!(!list.contains(&hash) && !list.contains(&password));
    // Reset the password: a new one works, the old one not.
    let out = env.ok(&["user", "reset-password", "--email", "ops@example.com"], None);
    let new = printed_password(&out);
    let ops = rt.block_on(store.user_by_email(&ops.email)).unwrap();
    assert!(ops.password_temporary, "so is one a reset made");
    let hash = ops.password_hash.unwrap();
    assert!(orb_auth::verify_password(&secrecy::SecretString::from(new), &hash).unwrap());
    assert!(!orb_auth::verify_password(&secrecy::SecretString::from(password), &hash).unwrap());
    env.ok(&["user", "reset-mfa", "--email", "it@contoso.com"], None);
    env.ok(&["user", "disable", "--email", "it@contoso.com"], None);
    assert!(
        env.ok(&["user", "list"], None)
            .lines()
            .any(|l| l.contains("it@contoso.com") && l.contains("disabled"))
    );
    env.fails(&["user", "reset-mfa", "--email", "nobody@contoso.com"], None, "no portal user");
    let actions: Vec<String> = rt
        .block_on(store.search_audit(None, &orb_store::AuditFilter { limit: 100, ..Default::default() }))
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .filter(|a| a.starts_with("user."))
        .collect();
    assert_eq!(
        actions,
        ["user.disable", "user.reset_mfa", "user.reset_password", "user.add", "user.add", "user.add"]
    );
}

#[test]
fn the_audit_log_is_read_per_tenant_or_for_the_installation_and_an_export_is_audited() {
    let env = Env::new();
    env.ok(&["tenant", "add", "contoso"], None);
    env.ok(&["tenant", "add", "fabrikam"], None);
    env.ok(&["user", "add", "--role", "operator", "--email", "ops@example.com"], None);
    env.ok(
        &["user", "add", "--tenant", "contoso", "--role", "tenant-admin", "--email", "it@contoso.com"],
        None,
    );
    env.ok(
        &["user", "add", "--tenant", "fabrikam", "--role", "tenant-admin", "--email", "it@fabrikam.com"],
        None,
    );
    env.ok(&["user", "reset-mfa", "--email", "it@contoso.com"], None);

    // The whole installation, newest first: the operator's row has no tenant ("-").
    let all = env.ok(&["audit", "--action", "user."], None);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 4, "{all}");
    assert!(lines[0].contains("contoso") && lines[0].contains("user.reset_mfa"), "{all}");
    assert!(
        lines[3].contains(" - ") && lines[3].contains("user.add") && lines[3].contains("ops@example.com"),
        "{all}"
    );
    assert!(all.contains("fabrikam"), "{all}");

    // One tenant: only its rows.
    let contoso = env.ok(&["audit", "--tenant", "contoso", "--action", "user."], None);
    assert_eq!(contoso.lines().count(), 2, "{contoso}");
    assert!(!contoso.contains("fabrikam") && !contoso.contains("ops@example.com"), "{contoso}");
    assert_eq!(env.ok(&["audit", "--actor", "nobody@example.com"], None).trim(), "no audit rows match");
    assert_eq!(env.ok(&["audit", "--action", "user.", "--limit", "1"], None).lines().count(), 1);

    // CSV and JSON carry the same rows, and each export leaves one audit row.
    let csv = env.ok(&["audit", "--tenant", "contoso", "--action", "user.", "--format", "csv"], None);
    let mut csv_lines = csv.lines();
    assert_eq!(csv_lines.next(), Some("id,at,tenant,actor,action,target,ip"));
    assert_eq!(csv_lines.filter(|l| l.contains(",contoso,cli,user.")).count(), 2, "{csv}");
    let json = env.ok(&["audit", "--action", "user.", "--format", "json"], None);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 4, "{json}");
    assert_eq!(rows[3]["tenant"], "-");
    assert_eq!(rows[3]["target"].as_str().map(|t| t.contains("ops@example.com")), Some(true), "{json}");
    let exports = env.ok(&["audit", "--action", "audit.export"], None);
    assert_eq!(exports.lines().count(), 2, "{exports}");
    assert!(exports.contains("csv, 2 rows") && exports.contains("json, 4 rows"), "{exports}");

    // Dates: a day given to --until includes that day.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let until_today = env.ok(&["audit", "--action", "user.", "--since", &today, "--until", &today], None);
    assert_eq!(until_today.lines().count(), 4, "{until_today}");

    // Bad input: one clear message, nothing written.
    let before = env.ok(&["audit", "--limit", "100000"], None);
    env.fails(&["audit", "--since", "yesterday"], None, "is not a date");
    env.fails(
        &["audit", "--since", "2026-12-06", "--until", "2026-12-01"],
        None,
        "--since must be before --until",
    );
    env.fails(&["audit", "--tenant", "nope"], None, "does not exist");
    env.fails(&["audit", "--limit", "0"], None, "--limit 0");
    assert_eq!(env.ok(&["audit", "--limit", "100000"], None), before);
}
