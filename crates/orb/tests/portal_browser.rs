//! The admin portal in a real browser: headless Chromium (through chromedriver, [`driver`]) against a real
//! `orb serve` child process, which syncs against the Graph and TOPdesk emulators (the [`support::Site`]
//! harness). Each test is one flow a person would follow, asserting on what the pages show and, where it
//! matters, on the store and the audit log. Each test takes a PNG screenshot at its key point into
//! `$CARGO_TARGET_DIR/portal-screenshots/` (test artifacts, not committed).
//!
//! The tests need `/usr/bin/chromium` and `/usr/bin/chromedriver` (`.ci/run` installs them) and fail,
//! saying so, without them. They run on SQLite, and on PostgreSQL too when `ORB_TEST_POSTGRES_URL` is set.
//!
//! `orb serve` always sets `__Host-orb_session` with `Secure`; Chromium keeps such a cookie on
//! http://127.0.0.1 (a potentially trustworthy origin), so the only change the tests make for plain http
//! is the portal's origin ([`support::Site::portal_for_browsers`]).

#[path = "portal_browser/driver.rs"]
mod driver;
mod support;

use std::sync::Arc;

use chrono::{Duration, Utc};
use driver::Browser;
use orb_core::TenantId;
use orb_store::jobs::{JobPayload as _, ReconcileSweepJob};
use orb_store::{JobStatus, Lane, Store};
use support::{Db, Orb, Site};

const ADMIN: &str = "admin@contoso.com";
const VIEWER: &str = "viewer@contoso.com";
/// Tenant settings for the tests that are not about the second factor: passwords alone.
const NO_MFA: &str = "[portal]\nmfa_required = false\n";

/// A site configured for a browser, with `settings` (extra tenant TOML) and `users` (e-mail, role) added
/// through the CLI before `orb serve` starts; returns the site, the running ORB, the users' one-time
/// passwords (in order), the store and the tenant.
async fn world(
    db: &Db,
    instance: &str,
    settings: &str,
    users: &[(&str, &str)],
) -> (Site, Orb, Vec<String>, Arc<dyn Store>, TenantId) {
    let mut site = Site::new(db, instance).await;
    site.portal_for_browsers();
    if !settings.is_empty() {
        site.tenant_settings(settings);
    }
    let passwords = users.iter().map(|(email, role)| site.add_user(email, role)).collect();
    let mut orb = site.spawn();
    site.healthy(&mut orb).await;
    let store = site.open_store().await;
    let tenant = store.list_tenants().await.unwrap().remove(0).id;
    (site, orb, passwords, store, tenant)
}

async fn audit_actions(store: &dyn Store, tenant: TenantId) -> Vec<orb_store::AuditEntry> {
    store.list_audit(tenant, 500).await.unwrap()
}

/// Logs in with the password; the tenant does not ask for a second factor.
async fn log_in_with_password(browser: &Browser, email: &str, password: &str) {
    browser.log_in(email, password).await;
    assert_eq!(browser.path().await, "/t/contoso", "after the login: {}", browser.page_text().await);
}

/// First login where the tenant requires a second factor: the enrolment page's key, a code from it, the
/// recovery codes. Returns the secret and the recovery codes.
async fn enrol(browser: &Browser, email: &str, password: &str) -> (orb_auth::TotpSecret, Vec<String>) {
    browser.log_in(email, password).await;
    assert_eq!(browser.path().await, "/login/enrol", "{}", browser.page_text().await);
    let key = browser.text("#totp-secret").await;
    let otpauth = browser.text("#otpauth").await;
    assert!(
        otpauth.starts_with("otpauth://totp/") && otpauth.contains(&format!("secret={key}")),
        "{otpauth}"
    );
    assert!(browser.find(".qr svg").await.attr("role").await.unwrap().is_some(), "a QR code is shown");
    let secret = orb_auth::TotpSecret::from_bytes(driver::base32_decode(&key));
    browser.fill("input[name=code]", &orb_auth::code_at(&secret, Utc::now())).await;
    browser.submit("#enrol").await;
    let codes: Vec<String> = {
        let list = browser.find("#recovery-codes").await;
        let mut codes = Vec::new();
        for item in list.find_all(fantoccini::Locator::Css("li")).await.unwrap() {
            codes.push(item.text().await.unwrap().trim().to_owned());
        }
        codes
    };
    (secret, codes)
}

/// A code for a later time step than any claimed so far (codes of the next step are accepted).
fn next_code(secret: &orb_auth::TotpSecret) -> String {
    orb_auth::code_at(secret, Utc::now() + Duration::seconds(30))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_totp_log_in_and_a_replayed_code_is_refused() {
    for db in support::databases() {
        let (site, _orb, pw, store, tenant) =
            world(&db, "browser-totp", "", &[(ADMIN, "tenant-admin")]).await;
        let browser = Browser::start(&site.base()).await;
        let (secret, _) = enrol(&browser, ADMIN, &pw[0]).await;
        browser.submit("#continue").await;
        browser.log_out().await;

        // Password, then the code of the next step.
        browser.log_in(ADMIN, &pw[0]).await;
        assert_eq!(browser.path().await, "/login/second-factor");
        let code = next_code(&secret);
        browser.second_factor(&code).await;
        assert_eq!(browser.path().await, "/t/contoso", "{}", browser.page_text().await);
        assert!(browser.text("header .who").await.contains(ADMIN));
        assert!(browser.text("h1").await.len() > 1, "the dashboard shows");
        browser.screenshot("totp-logged-in").await;
        browser.log_out().await;

        // The same code again: refused, still at the second factor.
        browser.log_in(ADMIN, &pw[0]).await;
        browser.second_factor(&code).await;
        assert_eq!(browser.path().await, "/login/second-factor");
        let alert = browser.text("[role=alert]").await;
        assert!(alert.contains("not valid (or was used already)"), "{alert}");
        browser.screenshot("totp-replay-refused").await;
        browser.open("/t/contoso").await;
        assert!(browser.path().await.starts_with("/login"), "no session after a refused code");

        let audit = audit_actions(&*store, tenant).await;
        let logins = audit.iter().filter(|e| e.action == "login" && e.actor == ADMIN).count();
        assert_eq!(logins, 2, "the enrolment login and the TOTP login: {audit:?}");
        assert!(
            audit.iter().any(|e| e.action == "login.failed" && e.target == "second factor"),
            "the replay is audited: {audit:?}"
        );
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_is_enrolled_at_the_first_login_when_the_tenant_requires_it() {
    for db in support::databases() {
        let (site, _orb, pw, store, tenant) =
            world(&db, "browser-enrol", "[portal]\nmfa_required = true\n", &[(ADMIN, "tenant-admin")]).await;
        let browser = Browser::start(&site.base()).await;
        browser.log_in(ADMIN, &pw[0]).await;
        assert_eq!(browser.path().await, "/login/enrol");
        // A wrong code first: the page says so and keeps the same key.
        let key = browser.text("#totp-secret").await;
        browser.fill("input[name=code]", "000000").await;
        browser.submit("#enrol").await;
        let alert = browser.text("[role=alert]").await;
        assert!(alert.contains("That code is not valid"), "{alert}");
        assert_eq!(browser.text("#totp-secret").await, key, "the pending key stays");
        browser.screenshot("enrol-page").await;
        browser.open("/t/contoso").await;
        assert!(browser.path().await.starts_with("/login"), "not logged in before the code");
        // Log in again, and enrol with a right code (`enrol` reads the key from the page again).
        let (_secret, codes) = enrol(&browser, ADMIN, &pw[0]).await;
        assert_eq!(codes.len(), 10, "{codes:?}");
        assert!(codes.iter().all(|c| c.len() >= 10), "{codes:?}");
        browser.screenshot("enrol-recovery-codes").await;
        browser.submit("#continue").await;
        assert_eq!(browser.path().await, "/t/contoso");
        let user = store.user_by_email(&orb_core::EmailAddress::parse(ADMIN).unwrap()).await.unwrap();
        assert!(user.totp_enabled, "the second factor is on in the store");
        // A recovery code stands in for the app's code, once.
        browser.log_out().await;
        browser.log_in(ADMIN, &pw[0]).await;
        browser.second_factor(&codes[0]).await;
        assert_eq!(browser.path().await, "/t/contoso", "{}", browser.page_text().await);
        let audit = audit_actions(&*store, tenant).await;
        // The enrolment (with its recovery codes) is one action and one audit row.
        let enrolments: Vec<_> = audit.iter().filter(|e| e.action.starts_with("mfa.")).collect();
        assert_eq!(enrolments.len(), 1, "{audit:?}");
        assert_eq!((enrolments[0].action.as_str(), enrolments[0].actor.as_str()), ("mfa.enrol", ADMIN));
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_booking_is_explained_by_its_timeline() {
    for db in support::databases() {
        let (site, _orb, pw, store, tenant) =
            world(&db, "browser-explain", NO_MFA, &[(ADMIN, "tenant-admin")]).await;
        let start = support::tomorrow() + Duration::hours(9);
        site.book(support::ROOMS[0], start, "Budget review").await;
        site.eventually("the booking in TOPdesk", 30, || site.reservation_at(0, start)).await;

        let browser = Browser::start(&site.base()).await;
        log_in_with_password(&browser, ADMIN, &pw[0]).await;
        browser.open("/t/contoso/bookings").await;
        let rows = browser.wait_for_text(support::ANNA, 20, true).await;
        assert!(rows.contains(support::ROOMS[0]), "{rows}");
        browser.submit("#rows a").await;
        assert!(browser.path().await.starts_with("/t/contoso/bookings/"));
        assert_eq!(browser.text("dd[data-field=organizer]").await, support::ANNA);
        assert_eq!(browser.text("dd[data-field=room]").await, support::ROOMS[0]);
        let timeline = browser.find("#timeline").await;
        let entries = timeline.find_all(fantoccini::Locator::Css("tbody tr")).await.unwrap();
        assert!(entries.len() >= 2, "an observation and what ORB did: {}", timeline.text().await.unwrap());
        let text = timeline.text().await.unwrap();
        assert!(text.to_lowercase().contains("topdesk"), "the TOPdesk write is in the timeline:\n{text}");
        browser.screenshot("booking-explained").await;
        let audit = audit_actions(&*store, tenant).await;
        assert!(
            audit.iter().any(|e| e.action == "booking.view" && e.actor == ADMIN),
            "each view of a booking's detail is audited: {audit:?}"
        );
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_an_admin_hides_shows_as_hidden_to_a_viewer() {
    for db in support::databases() {
        let (site, _orb, pw, store, tenant) =
            world(&db, "browser-hidden", NO_MFA, &[(ADMIN, "tenant-admin"), (VIEWER, "tenant-viewer")]).await;
        let start = support::tomorrow() + Duration::hours(10);
        site.book(support::ROOMS[1], start, "Hiring panel").await;
        site.eventually("the booking in TOPdesk", 30, || site.reservation_at(1, start)).await;

        let browser = Browser::start(&site.base()).await;
        log_in_with_password(&browser, ADMIN, &pw[0]).await;
        browser.open("/t/contoso/settings").await;
        browser.click("#hidden-fields input[value=organizer]").await;
        browser.submit("#save-hidden").await;
        assert!(browser.text("[role=status]").await.contains("Hidden fields saved."));
        assert!(browser.find("#hidden-fields input[value=organizer]").await.is_selected().await.unwrap());
        browser.log_out().await;

        log_in_with_password(&browser, VIEWER, &pw[1]).await;
        browser.open("/t/contoso/bookings").await;
        let page = browser.wait_for_text(support::ROOMS[1], 20, true).await;
        let rows = browser.text("#rows").await;
        assert!(rows.contains("(hidden)"), "{rows}");
        assert!(!rows.contains(support::ANNA), "the organizer is not in the list: {rows}");
        assert!(!page.contains("Settings"), "a viewer has no settings page in the menu");
        browser.screenshot("hidden-field-list").await;
        browser.submit("#rows a").await;
        let organizer = browser.find("dd[data-field=organizer]").await;
        assert_eq!(organizer.text().await.unwrap(), "(hidden)");
        assert_eq!(organizer.attr("class").await.unwrap().as_deref(), Some("hidden-field"));
        browser.screenshot("hidden-field-detail").await;
        // A viewer cannot change it back.
        browser.open("/t/contoso/settings").await;
        assert!(!browser.source().await.contains("id=\"hidden-fields\""), "no settings form for a viewer");

        let audit = audit_actions(&*store, tenant).await;
        let saved = audit.iter().find(|e| e.action == "settings.hidden_fields").expect("audited");
        assert_eq!((saved.actor.as_str(), saved.target.as_str()), (ADMIN, "organizer"));
        browser.close().await;
    }
}

/// Makes a dead `reconcile.sweep` job of room 1 (claimed once, failed without a retry) before ORB runs.
async fn dead_sweep_job(store: &dyn Store, tenant: TenantId) -> orb_store::JobId {
    let room = store.list_rooms(tenant).await.unwrap().remove(0);
    let job = ReconcileSweepJob { room: room.id }.to_job(Lane::room(tenant, room.id), None, None);
    let id = store.enqueue(&job, Utc::now()).await.unwrap();
    let claimed = store.claim_job("test", Utc::now(), Duration::minutes(1)).await.unwrap().unwrap();
    assert_eq!(claimed.job.id, id, "the only runnable job");
    store
        .fail_job(&claimed.lease, "TOPdesk answered 502 (made by the test)", None, Utc::now())
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_a_job_that_is_gone_meanwhile_shows_the_server_s_answer() {
    for db in support::databases() {
        let mut site = Site::new(&db, "browser-gone-job").await;
        site.portal_for_browsers();
        site.tenant_settings(NO_MFA);
        let pw = site.add_user(ADMIN, "tenant-admin");
        let store = site.open_store().await;
        let tenant = store.list_tenants().await.unwrap().remove(0).id;
        let job = dead_sweep_job(&*store, tenant).await;
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;

        let browser = Browser::start(&site.base()).await;
        log_in_with_password(&browser, ADMIN, &pw).await;
        browser.open("/t/contoso/failures").await;
        browser.find(&format!("#job-{} button.retry", job.0)).await;
        // Someone else retries it while the page is open.
        let audit = orb_store::NewAuditEntry {
            tenant_id: Some(tenant),
            at: Utc::now(),
            actor: "someone-else@contoso.com".into(),
            action: "job.retry".into(),
            target: job.to_string(),
            ip: None,
        };
        assert_eq!(store.retry_dead_jobs(tenant, Some(job), Utc::now(), &audit).await.unwrap(), 1);
        browser.click(&format!("#job-{} button.retry", job.0)).await;
        let alert = browser.text(&format!("#job-{} [role=alert]", job.0)).await;
        assert_eq!(
            alert,
            format!(
                "Not done (404): job {} is not among the dead jobs (any more): it may have been retried or \
                 dismissed meanwhile; reload the page",
                job.0
            )
        );
        browser.screenshot("gone-job-retried").await;
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_retried_in_the_portal_leaves_the_dead_list() {
    for db in support::databases() {
        let mut site = Site::new(&db, "browser-dead-job").await;
        site.portal_for_browsers();
        site.tenant_settings(NO_MFA);
        let pw = site.add_user(ADMIN, "tenant-admin");
        let store = site.open_store().await;
        let tenant = store.list_tenants().await.unwrap().remove(0).id;
        let job = dead_sweep_job(&*store, tenant).await;
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;

        let browser = Browser::start(&site.base()).await;
        log_in_with_password(&browser, ADMIN, &pw).await;
        browser.open("/t/contoso/failures").await;
        let row = browser.text(&format!("#job-{}", job.0)).await;
        assert!(row.contains("reconcile.sweep") && row.contains("TOPdesk answered 502"), "{row}");
        browser.screenshot("dead-job").await;
        browser.click(&format!("#job-{} button.retry", job.0)).await;
        let done = browser.text(&format!("#job-{} .done", job.0)).await;
        assert_eq!(done, format!("Job {} is queued again.", job.0));
        browser.screenshot("dead-job-retried").await;
        browser.open("/t/contoso/failures").await;
        browser.wait_for_text("No dead jobs.", 20, true).await;
        assert!(store.list_jobs(tenant, JobStatus::Dead).await.unwrap().is_empty());
        let audit = audit_actions(&*store, tenant).await;
        let retry = audit.iter().find(|e| e.action == "job.retry").expect("audited");
        assert_eq!((retry.actor.as_str(), retry.target.as_str()), (ADMIN, job.to_string().as_str()));
        browser.close().await;
    }
}

/// Six meetings booked in Outlook in the first room tomorrow 08:00–14:00 and synced; then two of their
/// reservations vanish from TOPdesk without a trace (no cancellation, no change): the sweep can only infer
/// the deletions from absence, and 2 of 6 is above the guard's 30 %, so it holds them. The admin is logged
/// in and sees them held on the failures page.
struct HeldDeletions {
    site: Site,
    _orb: Orb,
    store: Arc<dyn Store>,
    tenant: TenantId,
    browser: Browser,
    room: &'static str,
    day: chrono::DateTime<Utc>,
    hours: std::ops::Range<i64>,
    /// The six reservations, in hour order; the first two vanished.
    reservations: Vec<orb_topdesk::ReservationId>,
}

impl HeldDeletions {
    async fn new(db: &Db, instance: &str) -> Self {
        let (site, orb, pw, store, tenant) = world(db, instance, NO_MFA, &[(ADMIN, "tenant-admin")]).await;
        let room = support::ROOMS[0];
        let day = support::tomorrow();
        let hours = 8..14;
        for hour in hours.clone() {
            site.book(room, day + Duration::hours(hour), "Team meeting").await;
        }
        let mut reservations = Vec::new();
        for hour in hours.clone() {
            let start = day + Duration::hours(hour);
            reservations
                .push(site.eventually("the booking in TOPdesk", 60, || site.reservation_at(0, start)).await);
        }
        site.td.emulator.with_state(|s| {
            for id in &reservations[..2] {
                s.reservations.remove(id);
            }
        });
        let browser = Browser::start(&site.base()).await;
        log_in_with_password(&browser, ADMIN, &pw[0]).await;
        browser.open("/t/contoso/failures").await;
        browser.wait_for_text(room, 30, true).await;
        let held = browser.text("#held").await;
        assert!(held.contains(room), "{held}");
        HeldDeletions { site, _orb: orb, store, tenant, browser, room, day, hours, reservations }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_mass_deletion_approved_in_the_portal_is_carried_out() {
    for db in support::databases() {
        let HeldDeletions { site, _orb, store, tenant, browser, room, day, hours, .. } =
            HeldDeletions::new(&db, "browser-mass-deletion").await;
        browser.screenshot("mass-deletion-held").await;
        for hour in hours.clone() {
            let start = day + Duration::hours(hour);
            assert!(site.meeting_at(room, start).is_some(), "held, not cancelled in Outlook ({hour}:00)");
        }
        browser.click("#held button.approve").await;
        let done = browser.text("#held .done").await;
        assert!(done.starts_with("Approved:"), "{done}");
        browser.screenshot("mass-deletion-approved").await;
        for hour in hours.clone().take(2) {
            let start = day + Duration::hours(hour);
            site.eventually("the meeting cancelled in Outlook", 30, || {
                site.meeting_at(room, start).is_none().then_some(())
            })
            .await;
        }
        for hour in hours.clone().skip(2) {
            assert!(site.meeting_at(room, day + Duration::hours(hour)).is_some(), "kept ({hour}:00)");
        }
        browser.open("/t/contoso/failures").await;
        browser.wait_for_text("Nothing is held.", 20, true).await;
        let audit = audit_actions(&*store, tenant).await;
        let approval =
            audit.iter().find(|e| e.action == "reconcile.mass_deletion_approved").expect("audited");
        assert_eq!(approval.actor, ADMIN);
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_mass_deletion_rejected_in_the_portal_is_written_back() {
    for db in support::databases() {
        let HeldDeletions { site, _orb, store, tenant, browser, room, day, hours, reservations } =
            HeldDeletions::new(&db, "browser-mass-deletion-reject").await;
        browser.click("#held button.reject").await;
        let done = browser.text("#held .done").await;
        assert!(done.starts_with("Rejected: 2 booking(s) are written back to TOPdesk"), "{done}");
        browser.screenshot("mass-deletion-rejected").await;
        // Written back: a new reservation for each vanished one; nothing cancelled in Outlook, nothing doubled.
        for (hour, old) in hours.clone().zip(&reservations).take(2) {
            let start = day + Duration::hours(hour);
            let new = site
                .eventually("the reservation written back to TOPdesk", 30, || site.reservation_at(0, start))
                .await;
            assert_ne!(new, *old, "a new reservation ({hour}:00)");
        }
        for (hour, old) in hours.clone().zip(&reservations).skip(2) {
            assert_eq!(site.reservation_at(0, day + Duration::hours(hour)), Some(*old), "kept ({hour}:00)");
        }
        for hour in hours.clone() {
            assert!(
                site.meeting_at(room, day + Duration::hours(hour)).is_some(),
                "kept in Outlook ({hour}:00)"
            );
        }
        let location = site.rooms[0].1.clone();
        let live = || {
            site.td.emulator.with_state(|s| {
                s.reservations
                    .values()
                    .filter(|r| r.status.is_active() && r.rooms.iter().any(|(_, l)| *l == location))
                    .count()
            })
        };
        assert_eq!(live(), 6, "no reservation made twice");
        browser.open("/t/contoso/failures").await;
        browser.wait_for_text("Nothing is held.", 20, true).await;
        let audit = audit_actions(&*store, tenant).await;
        let rejection =
            audit.iter().find(|e| e.action == "reconcile.mass_deletion_rejected").expect("audited");
        assert_eq!(rejection.actor, ADMIN);
        let records = store.list_bookings(tenant, &orb_store::BookingFilter::default()).await.unwrap();
        for id in &reservations[..2] {
            assert!(
                records.iter().all(|r| r.topdesk.reservation_id.as_deref() != Some(id.to_string().as_str())),
                "no record points at a vanished reservation"
            );
        }
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_mapped_from_a_suggestion_shows_in_the_rooms_table() {
    for db in support::databases() {
        let (site, _orb, pw, store, tenant) =
            world(&db, "browser-rooms", NO_MFA, &[(ADMIN, "tenant-admin")]).await;
        let unmapped = support::ROOMS[2];
        let browser = Browser::start(&site.base()).await;
        log_in_with_password(&browser, ADMIN, &pw[0]).await;
        browser.open("/t/contoso/rooms").await;
        assert!(!browser.text("#rooms").await.contains(unmapped), "room 3 is not mapped yet");
        let suggestions = browser.text("#suggestions").await;
        assert!(suggestions.contains(unmapped) && suggestions.contains("Room 3"), "{suggestions}");
        browser.screenshot("room-suggestion").await;
        browser.submit(&format!("#suggestions form:has(input[value='{unmapped}']) button.map")).await;
        let rooms = browser.text("#rooms").await;
        let line = rooms.lines().find(|l| l.contains(unmapped)).unwrap_or_else(|| panic!("{rooms}"));
        assert!(line.contains(site.rooms[2].1.as_str()) && line.contains("yes"), "{line}");
        browser.screenshot("room-mapped").await;
        let mapped = store.list_rooms(tenant).await.unwrap();
        assert!(
            mapped.iter().any(|r| r.mailbox.as_str() == unmapped && r.topdesk_location_id == site.rooms[2].1),
            "{mapped:?}"
        );
        site.eventually("room 3 subscribed", 30, || site.subscribed(unmapped).then_some(())).await;
        let audit = audit_actions(&*store, tenant).await;
        assert!(audit.iter().any(|e| e.action == "room.add" && e.actor == ADMIN), "{audit:?}");
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_saved_in_settings_never_shows_on_a_page() {
    for db in support::databases() {
        let (site, _orb, pw, store, tenant) =
            world(&db, "browser-secret", NO_MFA, &[(ADMIN, "tenant-admin")]).await;
        let value = format!("never-shown-{}", support::unique());
        let browser = Browser::start(&site.base()).await;
        log_in_with_password(&browser, ADMIN, &pw[0]).await;
        browser.open("/t/contoso/settings").await;
        let form = "form[id='secret-portal.sso_client_secret']";
        browser.fill(&format!("{form} input[name=value]"), &value).await;
        browser.submit(&format!("{form} button")).await;
        let notice = browser.text("[role=status]").await;
        assert!(notice.contains("saved. It will not be shown again."), "{notice}");
        browser.screenshot("secret-saved").await;
        for path in
            ["/t/contoso/settings", "/t/contoso", "/t/contoso/audit", "/t/contoso/bookings", "/account"]
        {
            browser.open(path).await;
            let source = browser.source().await;
            assert!(!source.contains(&value), "the secret is in the page source of {path}");
            assert!(!source.contains(&value[..16]), "part of the secret is in the page source of {path}");
        }
        let audit = audit_actions(&*store, tenant).await;
        let set = audit.iter().find(|e| e.action == "secret.set").expect("audited");
        assert_eq!((set.actor.as_str(), set.target.as_str()), (ADMIN, "portal.sso_client_secret"));
        assert!(!audit.iter().any(|e| e.target.contains(&value)), "not in the audit log");
        assert!(!site.log_text().contains(&value), "not in ORB's log");
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_through_the_tenants_openid_provider() {
    for db in support::databases() {
        let clock: Arc<dyn orb_core::Clock> = Arc::new(orb_core::SystemClock);
        let idp = orb_emulators::oidc::OidcEmulator::new(clock).serve().await.unwrap();
        // The provider on another site than the portal (localhost, not 127.0.0.1), as in production.
        let issuer = idp.base_url.replace("127.0.0.1", "localhost");
        idp.emulator.set_issuer(&issuer);
        let sso_user = "sso.user@contoso.com";
        idp.emulator.add_user(sso_user, "idp-password", true);

        let mut site = Site::new(&db, "browser-sso").await;
        site.portal_for_browsers();
        idp.emulator.add_client(
            "orb-portal",
            Some("sso-client-secret"),
            &[&format!("{}/login/sso/callback", site.base())],
        );
        site.tenant_settings(&format!(
            "[portal]\nsso_issuer = \"{issuer}\"\nsso_client_id = \"orb-portal\"\n"
        ));
        site.ok(
            &["secret", "set", "--tenant", "contoso", "portal.sso_client_secret"],
            Some("sso-client-secret"),
        );
        let out = site.ok(
            &["user", "add", "--tenant", "contoso", "--email", sso_user, "--role", "tenant-viewer", "--sso"],
            None,
        );
        assert!(!out.contains("one-time password"), "{out}");
        let mut orb = site.spawn();
        site.healthy(&mut orb).await;
        let store = site.open_store().await;
        let tenant = store.list_tenants().await.unwrap().remove(0).id;

        let browser = Browser::start(&site.base()).await;
        browser.open("/login").await;
        browser.click("details.sso summary").await;
        browser.fill("input[name=tenant]", "contoso").await;
        browser.submit("#sso").await;
        // The portal's page moves on to the provider by itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while browser.client.current_url().await.unwrap().origin().ascii_serialization() != issuer {
            assert!(
                std::time::Instant::now() < deadline,
                "not at the provider: {}",
                browser.page_text().await
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        browser.wait_for("form[action='/authorize']").await;
        browser.screenshot("sso-provider").await;
        browser.fill("input[name=email]", sso_user).await;
        browser.fill("input[name=password]", "idp-password").await;
        browser.submit("button[type=submit]").await;
        // Back at the portal, whose page moves on to the dashboard by itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while browser.path().await != "/t/contoso" {
            assert!(std::time::Instant::now() < deadline, "not logged in: {}", browser.page_text().await);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(browser.text("header .who").await.contains(sso_user));
        browser.screenshot("sso-logged-in").await;
        browser.open("/t/contoso/bookings").await;
        assert_eq!(browser.path().await, "/t/contoso/bookings", "the session holds");

        let audit = audit_actions(&*store, tenant).await;
        let login = audit.iter().find(|e| e.action == "login.sso").expect("audited");
        assert_eq!(login.actor, sso_user);
        browser.close().await;
    }
}
