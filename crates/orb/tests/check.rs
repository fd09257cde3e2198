//! `orb check` against the emulators: a well-configured site passes, misconfigured rooms and an app with
//! too few permissions are found, an unknown tenant is refused.

mod support;

use orb_emulators::graph::RoomSettings;
use serde_json::Value;
use support::{CLIENT_ID, Db, ROOMS, Site, TENANT};

/// Runs `orb check --json` (plus `extra`); returns the exit code and the findings.
fn check(site: &Site, extra: &[&str]) -> (i32, Vec<Value>) {
    let mut args = vec!["check", "--json", "--probe-wait", "2"];
    args.extend_from_slice(extra);
    let out = site.command(&args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let findings: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap(), findings.as_array().unwrap().clone())
}

fn with<'a>(findings: &'a [Value], status: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["status"] == status).collect()
}

fn whats(findings: &[&Value]) -> Vec<String> {
    findings.iter().map(|f| format!("{} {}", f["check"], f["what"])).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_configured_site_has_no_errors_and_the_json_holds_every_field() {
    let site = Site::new(&Db::Sqlite, "check-ok").await;
    let (code, findings) = check(&site, &[]);
    assert!(with(&findings, "error").is_empty(), "{:#?}", whats(&with(&findings, "error")));
    assert_eq!(code, 0);
    for f in &findings {
        for key in ["tenant", "check", "status", "what", "why", "fix"] {
            assert!(f[key].is_string(), "{key} missing in {f}");
        }
        assert_eq!(f["tenant"], "contoso");
    }
    let oks = whats(&with(&findings, "ok"));
    for expected in [
        "\"graph.token\" \"a token was issued with the client secret\"",
        "\"graph.roles\" \"the token carries exactly Calendars.ReadWrite, Mail.Send, Place.Read.All\"",
        "\"room.probe\" \"room1@contoso.com accepts meeting requests by itself\"",
        "\"room.probe\" \"room1@contoso.com refuses conflicting meetings\"",
        "\"room.probe\" \"room2@contoso.com accepts meetings 180 days ahead (the sync horizon)\"",
        "\"topdesk.login\" \"the operator logs in\"",
        "\"topdesk.reservations\" \"reservations can be listed\"",
        "\"topdesk.persons\" \"persons can be looked up\"",
    ] {
        assert!(oks.iter().any(|o| o == expected), "no {expected} among {oks:#?}");
    }
    // Room 3 exists on both sides but is not mapped: one warning per side.
    let warnings = whats(&with(&findings, "warning"));
    assert!(
        warnings.iter().any(|w| w.contains("room3@contoso.com is in Outlook but not mapped")),
        "{warnings:#?}"
    );
    assert!(warnings.iter().any(|w| w.contains("reservable location Room 3")), "{warnings:#?}");
    // `orb serve` is not running: the webhook is only a warning.
    assert!(warnings.iter().any(|w| w.starts_with("\"webhook\"") && w.contains("is `orb serve` running?")));
    // The probes are gone again: no live meeting in any room.
    let now = chrono::Utc::now();
    for room in ROOMS {
        let live: Vec<_> = site
            .graph_em
            .calendar_view(room, now, now + chrono::Duration::days(200))
            .unwrap()
            .into_iter()
            .filter(|e| e.is_cancelled != Some(true))
            .collect();
        assert!(live.is_empty(), "probe left in {room}: {live:?}");
    }
    // The text form says the same, with the counts.
    let text = site.ok(&["check", "--no-probe"], None);
    assert!(text.contains("[ok] contoso graph.roles: the token carries exactly"), "{text}");
    assert!(text.contains(" 0 error(s)"), "{text}");
    assert!(!text.contains("room.probe"), "--no-probe books nothing:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_that_allow_conflicts_or_rewrite_subjects_under_keep_are_found() {
    let site = Site::new(&Db::Sqlite, "check-rooms").await;
    let conflicts = RoomSettings {
        allow_conflicts: true,
        delete_subject: false,
        add_organizer_to_subject: false,
        ..RoomSettings::default()
    };
    assert!(site.graph_em.set_room_settings(ROOMS[0], conflicts));
    // Room 2 keeps Exchange's defaults: the subject deleted, the organizer's name put in its place.
    let short_window = RoomSettings { booking_window_days: 30, ..RoomSettings::default() };
    site.add_room(&site.rooms[2].0, &site.rooms[2].1);
    assert!(site.graph_em.set_room_settings(ROOMS[2], short_window));
    let (code, findings) = check(&site, &[]);
    assert_eq!(code, 1, "{findings:#?}");
    let errors = whats(&with(&findings, "error"));
    assert_eq!(
        errors,
        ["\"room.probe\" \"room1@contoso.com accepted a meeting overlapping another one\""],
        "{findings:#?}"
    );
    let warnings = whats(&with(&findings, "warning"));
    for room in ["room2@contoso.com", "room3@contoso.com"] {
        let rewritten = format!(
            "\"room.probe\" \"{room} rewrites meeting subjects on its copy (DeleteSubject / AddOrganizerToSubject)\""
        );
        assert!(warnings.contains(&rewritten), "{warnings:#?}");
    }
    assert!(
        warnings.contains(&"\"room.probe\" \"room3@contoso.com declined a meeting near the end of the 180-day sync horizon\"".to_owned()),
        "{warnings:#?}"
    );
    let oks = whats(&with(&findings, "ok"));
    assert!(
        oks.contains(&"\"room.probe\" \"room1@contoso.com keeps meeting subjects\"".to_owned()),
        "{oks:#?}"
    );
    let fix = findings.iter().find(|f| f["what"].as_str().unwrap().contains("overlapping")).unwrap();
    assert_eq!(fix["fix"], "Set-CalendarProcessing -AllowConflicts $false");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_does_not_answer_by_itself_is_an_error() {
    let site = Site::new(&Db::Sqlite, "check-auto").await;
    assert!(
        site.graph_em
            .set_room_settings(ROOMS[1], RoomSettings { auto_accept: false, ..RoomSettings::default() })
    );
    let (code, findings) = check(&site, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        whats(&with(&findings, "error")),
        ["\"room.probe\" \"room2@contoso.com did not answer a meeting request within 2 s\""]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_outside_the_apps_access_policy_is_an_error_naming_the_policy() {
    let site = Site::new(&Db::Sqlite, "check-policy").await;
    // The policy's group holds room 1 and the organizers, not room 2.
    site.graph_em.set_access_policy(
        TENANT,
        CLIENT_ID,
        Some(&[ROOMS[0], "anna@contoso.com", "orb@contoso.com"]),
    );
    let (code, findings) = check(&site, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        whats(&with(&findings, "error")),
        ["\"room.calendar\" \"an application access policy keeps ORB out of room2@contoso.com\""],
        "{findings:#?}"
    );
    let finding = with(&findings, "error")[0];
    assert!(finding["fix"].as_str().unwrap().contains("Test-ApplicationAccessPolicy"), "{finding}");
    assert!(
        findings.iter().any(|f| f["check"] == "room.calendar"
            && f["status"] == "ok"
            && f["what"].as_str().unwrap().contains(ROOMS[0])),
        "room 1 is inside the policy and readable"
    );
    // With the room added to the group, the check is clean again.
    site.graph_em.set_access_policy(
        TENANT,
        CLIENT_ID,
        Some(&[ROOMS[0], ROOMS[1], "anna@contoso.com", "orb@contoso.com"]),
    );
    let (code, findings) = check(&site, &[]);
    assert_eq!(code, 0, "{findings:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_with_too_few_permissions_is_an_error_naming_them_and_too_many_a_warning() {
    let site = Site::new(&Db::Sqlite, "check-roles").await;
    site.graph_em.set_app_roles(
        TENANT,
        CLIENT_ID,
        &["Calendars.ReadWrite", "Place.Read.All", "User.Read.All"],
    );
    let (code, findings) = check(&site, &["--tenant", "contoso"]);
    assert_eq!(code, 1);
    let errors = whats(&with(&findings, "error"));
    assert_eq!(errors, ["\"graph.roles\" \"the app lacks the permission Mail.Send\""], "{findings:#?}");
    let missing = with(&findings, "error")[0];
    assert_eq!(
        missing["fix"],
        "grant Mail.Send (application permission) to the app in Entra and give admin consent"
    );
    let warnings = whats(&with(&findings, "warning"));
    assert!(
        warnings.contains(
            &"\"graph.roles\" \"the app has permissions ORB does not need: User.Read.All\"".to_owned()
        ),
        "{warnings:#?}"
    );

    // Without Calendars.ReadWrite the calendars cannot be read either (the emulator refuses with 403).
    site.graph_em.set_app_roles(TENANT, CLIENT_ID, &["Mail.Send", "Place.Read.All"]);
    let (code, findings) = check(&site, &[]);
    assert_eq!(code, 1);
    let errors = whats(&with(&findings, "error"));
    assert!(
        errors.contains(&"\"graph.roles\" \"the app lacks the permission Calendars.ReadWrite\"".to_owned())
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("\"room.calendar\" \"the calendar of room1@contoso.com cannot be read")),
        "{errors:#?}"
    );
    assert!(!findings.iter().any(|f| f["check"] == "room.probe"), "no probe without the permissions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tenant_is_refused_by_name() {
    let site = Site::new(&Db::Sqlite, "check-unknown").await;
    let out = site.command(&["check", "--tenant", "fabrikam"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("tenant \"fabrikam\" does not exist; create it with `orb tenant add fabrikam`"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// A tenant on Exchange Server on-premises (EWS), against the EWS emulator.

mod ews {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use orb_core::SystemClock;
    use orb_emulators::ews::{EwsEmulator, RoomSettings, Scope, Served};

    use super::*;

    const SERVICE: &str = "CONTOSO\\svc-orb";
    const PASSWORD: &str = "ews-check-password";

    /// The site with its tenant switched to EWS: an Exchange Server holding the three rooms (one room list),
    /// Anna and ORB's sender; the service account's impersonation scope holds `scope`.
    async fn ews_site(instance: &str, scope: &[&str]) -> (Site, EwsEmulator, Served) {
        ews_site_signing_in(instance, scope, None).await
    }

    /// [`ews_site`] with `ews.auth` set to `auth` (absent: the default, basic).
    async fn ews_site_signing_in(
        instance: &str,
        scope: &[&str],
        auth: Option<&str>,
    ) -> (Site, EwsEmulator, Served) {
        let mut site = Site::new(&Db::Sqlite, instance).await;
        let em = EwsEmulator::new(Arc::new(SystemClock));
        em.add_user(support::ANNA, "Anna Bakker");
        em.add_user("orb@contoso.com", "ORB");
        for (i, room) in ROOMS.iter().enumerate() {
            let keeps = RoomSettings {
                delete_subject: false,
                add_organizer_to_subject: false,
                ..RoomSettings::default()
            };
            em.add_room(room, &format!("Room {}", i + 1), keeps);
        }
        em.add_room_list("Contoso rooms", "rooms@contoso.com", &ROOMS[..2]);
        let scope: BTreeSet<String> = scope.iter().map(|s| (*s).to_owned()).collect();
        em.add_account(SERVICE, PASSWORD, Scope::Mailboxes(scope));
        let served = orb_emulators::ews::serve(em.clone()).await.unwrap();
        // The emulator speaks plain http: this installation allows it (as tests and the demo do).
        site.set_var("ORB__EWS__ALLOW_HTTP", "true");
        let file = site.dir.path().join("contoso-ews.toml");
        let auth = auth.map(|a| format!("auth = \"{a}\"\n")).unwrap_or_default();
        std::fs::write(
            &file,
            format!(
                "[exchange]\nkind = \"ews\"\n\n[ews]\nurl = \"{}\"\n{auth}username = '{SERVICE}'\nmail_sender = \
                 \"orb@contoso.com\"\n\n[topdesk]\nurl = \"{}\"\nusername = \"{}\"\nlink_type = 7\n",
                served.ews_url(),
                site.td.base_url,
                support::TD_LOGIN
            ),
        )
        .unwrap();
        let out =
            site.ok(&["tenant", "settings", "--tenant", "contoso", "--file", file.to_str().unwrap()], None);
        assert!(out.contains("still needed: the secret ews.password"), "{out}");
        site.ok(&["secret", "set", "--tenant", "contoso", "ews.password"], Some(PASSWORD));
        (site, em, served)
    }

    fn everyone() -> Vec<&'static str> {
        vec![ROOMS[0], ROOMS[1], ROOMS[2], support::ANNA, "orb@contoso.com"]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ews_tenant_against_the_ews_emulator_has_no_errors() {
        let (site, em, _served) = ews_site("check-ews-ok", &everyone()).await;
        let (code, findings) = check(&site, &[]);
        assert!(with(&findings, "error").is_empty(), "{:#?}", whats(&with(&findings, "error")));
        assert_eq!(code, 0);
        let url = format!("{}/EWS/Exchange.asmx", _served.base_url);
        let oks = whats(&with(&findings, "ok"));
        for expected in [
            format!("\"ews.signin\" \"{url} answers and accepts the service account CONTOSO\\\\svc-orb\""),
            "\"ews.impersonation\" \"the service account CONTOSO\\\\svc-orb may act for all 3 mailbox(es): 2 \
             room(s) and the mail sender orb@contoso.com\""
                .to_owned(),
            "\"ews.rooms\" \"Exchange's room lists hold 2 room(s)\"".to_owned(),
            "\"room.probe\" \"room1@contoso.com accepts meeting requests by itself\"".to_owned(),
            "\"room.probe\" \"room1@contoso.com refuses conflicting meetings\"".to_owned(),
            "\"room.probe\" \"room1@contoso.com keeps meeting subjects\"".to_owned(),
            "\"room.probe\" \"room2@contoso.com accepts meetings 180 days ahead (the sync horizon)\"".to_owned(),
            "\"topdesk.login\" \"the operator logs in\"".to_owned(),
        ] {
            assert!(oks.contains(&expected), "no {expected} among {oks:#?}");
        }
        let version = with(&findings, "ok").into_iter().find(|f| f["check"] == "ews.version").unwrap();
        assert!(
            version["what"].as_str().unwrap().contains("RequestServerVersion Exchange2013_SP1"),
            "{version}"
        );
        assert!(
            !findings.iter().any(|f| f["check"].as_str().unwrap().starts_with("graph.")),
            "{findings:#?}"
        );
        // `orb serve` is not running: the push URL is only a warning, and it is the EWS one.
        let warnings = whats(&with(&findings, "warning"));
        assert!(
            warnings.iter().any(|w| w.starts_with("\"webhook\"") && w.contains("/hooks/ews/contoso")),
            "{warnings:#?}"
        );
        // The probes are gone again, and no request asked for a body.
        let now = chrono::Utc::now();
        for room in &ROOMS[..2] {
            let live: Vec<_> = em
                .items(room)
                .into_iter()
                .filter(|i| !i.is_cancelled && i.end > now)
                .map(|i| i.subject.clone())
                .collect();
            assert!(live.is_empty(), "probe left in {room}: {live:?}");
        }
        assert!(em.body_requests().is_empty(), "{:?}", em.body_requests());
        let text = site.ok(&["check", "--no-probe"], None);
        assert!(text.contains("[ok] contoso ews.signin:"), "{text}");
        assert!(!text.contains("room.probe"), "--no-probe books nothing:\n{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ntlm_tenant_signs_in_and_a_server_without_windows_authentication_is_named() {
        let (site, em, served) = ews_site_signing_in("check-ews-ntlm", &everyone(), Some("ntlm")).await;
        let url = served.ews_url();
        let (_, findings) = check(&site, &["--no-probe"]);
        let oks = whats(&with(&findings, "ok"));
        let signed_in =
            format!("\"ews.signin\" \"{url} answers and accepts the service account CONTOSO\\\\svc-orb\"");
        assert!(oks.contains(&signed_in), "no {signed_in} among {oks:#?}");
        let steps: BTreeSet<String> = em.requests().iter().filter_map(|r| r.auth.clone()).collect();
        assert!(steps.contains("ntlm-authenticate") && !steps.contains("basic"), "{steps:?}");

        em.set_knobs(orb_emulators::ews::Knobs { ntlm_disabled: true, ..Default::default() });
        let (code, findings) = check(&site, &["--no-probe"]);
        assert_ne!(code, 0);
        let errors = whats(&with(&findings, "error"));
        assert!(
            errors.iter().any(|e| e.starts_with("\"ews.signin\"")
                && e.contains("does not offer NTLM sign-in (it offers: Basic)")),
            "{errors:#?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_room_outside_the_service_accounts_scope_is_named_by_the_impersonation_finding() {
        let scope: Vec<&str> = everyone().into_iter().filter(|m| *m != ROOMS[1]).collect();
        let (site, _em, _served) = ews_site("check-ews-scope", &scope).await;
        let (code, findings) = check(&site, &[]);
        assert_eq!(code, 1, "{findings:#?}");
        assert_eq!(
            whats(&with(&findings, "error")),
            [
                "\"ews.impersonation\" \"the service account CONTOSO\\\\svc-orb may not act for room2@contoso.com \
                 (ErrorImpersonateUserDenied)\""
            ],
            "{findings:#?}"
        );
        let finding = with(&findings, "error")[0];
        let fix = finding["fix"].as_str().unwrap();
        assert!(
            fix.contains("add room2@contoso.com to the management scope")
                && fix.contains("ApplicationImpersonation"),
            "{fix}"
        );
        assert!(
            !findings
                .iter()
                .any(|f| f["check"] == "room.probe" && f["what"].as_str().unwrap().contains(ROOMS[1])),
            "no probe in a room ORB may not act for"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_password_is_the_sign_in_finding() {
        let (site, _em, served) = ews_site("check-ews-password", &everyone()).await;
        site.ok(&["secret", "set", "--tenant", "contoso", "ews.password"], Some("not-the-password"));
        let (code, findings) = check(&site, &["--no-probe"]);
        assert_eq!(code, 1);
        assert_eq!(
            whats(&with(&findings, "error")),
            [format!(
                "\"ews.signin\" \"{} refused the credentials of the service account CONTOSO\\\\svc-orb (HTTP 401)\"",
                served.ews_url()
            )],
            "{findings:#?}"
        );
        let fix = with(&findings, "error")[0]["fix"].as_str().unwrap().to_owned();
        assert!(fix.contains("ews.password") && fix.contains("-BasicAuthentication"), "{fix}");
        assert!(!findings.iter().any(|f| f["check"] == "ews.impersonation"), "nothing more is checked");
        // A server that is not there: the finding names the URL.
        drop(served);
        let (code, findings) = check(&site, &["--no-probe"]);
        assert_eq!(code, 1);
        let errors = whats(&with(&findings, "error"));
        assert!(
            errors.len() == 1
                && errors[0].contains("cannot be reached from here")
                && errors[0].contains("/EWS/Exchange.asmx"),
            "{errors:#?}"
        );
    }
}
