//! The portal's settings page over HTTP against a real `orb serve` (the [`support::Site`] harness): an admin
//! switches the tenant from Exchange Online (Graph) to Exchange Server on-premises (EWS) and back, the stored
//! document holds exactly the chosen section, the page shows the EWS fields, a saved password is never
//! shown back, and "Test Exchange" reaches the EWS emulator.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use orb_core::SystemClock;
use orb_emulators::ews::{EwsEmulator, RoomSettings, Scope};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::Value;
use support::{CLIENT_ID, Db, ROOMS, Site, TENANT};

const ADMIN: &str = "admin@contoso.com";
const SERVICE: &str = "CONTOSO\\svc-orb";
const EWS_PASSWORD: &str = "ews-portal-password-7f3a";

/// A browser without one: the session cookie and the page's CSRF token, kept by hand.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Browser {
    fn keep_cookie(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all(SET_COOKIE) {
            let pair = v.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = if pair.ends_with('=') { None } else { Some(pair) };
        }
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        (r.status(), r.text().await.unwrap())
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.send(path, form, false).await
    }

    /// A form post as htmx sends it (the answer is a fragment).
    async fn post_hx(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.send(path, form, true).await
    }

    async fn send(&mut self, path: &str, form: &[(&str, &str)], hx: bool) -> reqwest::Response {
        let mut pairs: Vec<(String, String)> =
            form.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        if let Some(t) = &self.csrf {
            pairs.push(("_csrf".into(), t.clone()));
        }
        let mut req = self.http.post(format!("{}{path}", self.base)).form(&pairs).header(ORIGIN, &self.base);
        if hx {
            req = req.header("hx-request", "true");
        }
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await.unwrap();
        self.keep_cookie(&r);
        r
    }

    /// The settings page, its CSRF token kept.
    async fn settings(&mut self) -> String {
        let (status, page) = self.get("/t/contoso/settings").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let at = page.find("name=\"_csrf\" value=\"").expect("a CSRF field on the page") + 20;
        self.csrf = Some(page[at..].split('"').next().unwrap().to_owned());
        page
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// The stored settings document of the tenant.
async fn stored(site: &Site) -> Value {
    let store = site.open_store().await;
    let tenant = store.list_tenants().await.unwrap().remove(0).id;
    let row = store.get_tenant_settings(tenant).await.unwrap().unwrap();
    serde_json::from_str(&row.document).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_switches_the_tenant_to_ews_and_back_and_the_password_is_never_shown() {
    // Exchange Server: two rooms in a room list, ORB's sender, a service account scoped to them.
    let em = EwsEmulator::new(Arc::new(SystemClock));
    em.add_user("orb@contoso.com", "ORB");
    for room in &ROOMS[..2] {
        em.add_room(room, room, RoomSettings::default());
    }
    em.add_room_list("Contoso rooms", "rooms@contoso.com", &ROOMS[..2]);
    let scope: BTreeSet<String> =
        [ROOMS[0], ROOMS[1], "orb@contoso.com"].iter().map(|s| (*s).to_owned()).collect();
    em.add_account(SERVICE, EWS_PASSWORD, Scope::Mailboxes(scope));
    let served = orb_emulators::ews::serve(em.clone()).await.unwrap();
    let ews_url = served.ews_url();

    let mut site = Site::new(&Db::Sqlite, "portal-ews").await;
    site.portal_for_browsers();
    site.set_var("ORB__EWS__ALLOW_HTTP", "true");
    site.tenant_settings("[portal]\nmfa_required = false\n");
    let password = site.add_user(ADMIN, "tenant-admin");
    let mut orb = site.spawn();
    site.healthy(&mut orb).await;

    let mut b = Browser {
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        base: site.base(),
        cookie: None,
        csrf: None,
    };
    let r = b.post("/login", &[("email", ADMIN), ("password", &password)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());

    // A Graph tenant's page offers both groups, the kind set to graph.
    let page = b.settings().await;
    for needle in [
        "<legend>Exchange Online (Microsoft Graph)</legend>",
        "<legend>Exchange Server on-premises (EWS)</legend>",
        "name=\"exchange.kind\"",
        "<option value=\"graph\" selected>graph</option>",
        "name=\"ews.url\" value=\"\"",
        "<option value=\"basic\" selected>basic</option>",
        "id=\"secret-ews.password\"",
        "id=\"secret-ews.token\"",
    ] {
        assert!(page.contains(needle), "no {needle:?} on the page:\n{page}");
    }

    // Switching with a bad URL is refused on the form, nothing stored.
    let graph_fields = [
        ("graph.cloud", "custom"),
        ("graph.tenant_id", TENANT),
        ("graph.client_id", CLIENT_ID),
        ("graph.mail_sender", "orb@contoso.com"),
    ];
    let ews_fields = |url: &'static str| {
        [
            ("exchange.kind", "ews"),
            ("ews.url", url),
            ("ews.username", SERVICE),
            ("ews.auth", "basic"),
            ("ews.mail_sender", "orb@contoso.com"),
        ]
    };
    let mut form: Vec<(&str, &str)> = graph_fields.to_vec();
    form.extend(ews_fields("ftp://mail.contoso.com/EWS/Exchange.asmx"));
    let r = b.post("/t/contoso/settings", &form).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let refused = r.text().await.unwrap();
    assert!(refused.contains("id=\"settings-error\"") && refused.contains("ews.url"), "{refused}");
    assert_eq!(stored(&site).await["exchange"]["kind"], "graph");

    // The whole form as a browser posts it (the Graph fields too), kind = ews.
    let url: &'static str = Box::leak(ews_url.clone().into_boxed_str());
    let mut form: Vec<(&str, &str)> = graph_fields.to_vec();
    form.extend(ews_fields(url));
    let r = b.post("/t/contoso/settings", &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    assert!(location(&r).starts_with("/t/contoso/settings"), "{}", location(&r));
    let doc = stored(&site).await;
    assert_eq!(doc["exchange"]["kind"], "ews", "{doc}");
    assert!(doc.get("graph").is_none(), "no [graph] section for an EWS tenant: {doc}");
    assert_eq!(doc["ews"]["url"], ews_url.as_str());
    assert_eq!(doc["ews"]["username"], SERVICE);
    assert_eq!(doc["ews"]["auth"], "basic");

    // The password, write-only; the page shows the EWS fields and never the password.
    b.settings().await;
    let r = b.post("/t/contoso/secrets/ews.password", &[("value", EWS_PASSWORD)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let page = b.settings().await;
    for needle in [
        "<option value=\"ews\" selected>ews</option>",
        &format!("name=\"ews.url\" value=\"{ews_url}\""),
        "name=\"ews.username\" value=\"CONTOSO\\svc-orb\"",
        "name=\"ews.mail_sender\" value=\"orb@contoso.com\"",
        "<option value=\"global\" selected>global</option>",
    ] {
        assert!(page.contains(needle), "no {needle:?} on the page:\n{page}");
    }
    assert!(!page.contains(EWS_PASSWORD), "the password is never shown back");

    // "Test Exchange" signs in to the EWS emulator.
    let r = b.post_hx("/t/contoso/settings/test/exchange", &[]).await;
    let answer = r.text().await.unwrap();
    assert!(answer.contains("Connected: signed in; 2 room(s) in Exchange"), "{answer}");
    assert!(!answer.contains(EWS_PASSWORD));

    // And back to Graph: the [ews] section goes.
    b.settings().await;
    let mut form: Vec<(&str, &str)> = graph_fields.to_vec();
    form.extend(ews_fields(url));
    form[4] = ("exchange.kind", "graph");
    let r = b.post("/t/contoso/settings", &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let doc = stored(&site).await;
    assert_eq!(doc["exchange"]["kind"], "graph", "{doc}");
    assert!(doc.get("ews").is_none(), "no [ews] section for a Graph tenant: {doc}");
    assert_eq!(doc["graph"]["tenant_id"], TENANT);
    support::sigterm(&orb);
    support::wait_exit(&mut orb, 30).await;
}

/// A site with `orb serve` running and an admin logged in (no second factor), on `db`.
async fn logged_in(db: &Db, instance: &str) -> (Site, support::Orb, Browser) {
    let mut site = Site::new(db, instance).await;
    site.portal_for_browsers();
    site.tenant_settings("[portal]\nmfa_required = false\n");
    let password = site.add_user(ADMIN, "tenant-admin");
    let mut orb = site.spawn();
    site.healthy(&mut orb).await;
    let mut b = Browser {
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        base: site.base(),
        cookie: None,
        csrf: None,
    };
    let r = b.post("/login", &[("email", ADMIN), ("password", &password)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    (site, orb, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_the_fallback_person_on_the_form_and_bad_input_saves_nothing() {
    const ID: &str = "sync.fallback_person.person_id";
    const EMAIL: &str = "sync.fallback_person.email";
    for db in support::databases() {
        let (site, orb, mut b) = logged_in(&db, "portal-fallback").await;
        let page = b.settings().await;
        for needle in ["name=\"sync.fallback_person.person_id\" value=\"\"", "Fallback person (e-mail)"] {
            assert!(page.contains(needle), "no {needle:?} on the page:\n{page}");
        }
        assert!(stored(&site).await["sync"].get("fallback_person").is_none());

        // Bad input: a clear error on the form, nothing stored.
        for (form, expected) in [
            ([(ID, "p-desk"), (EMAIL, "not an address")], "Fallback person (e-mail)"),
            ([(ID, "p-desk"), (EMAIL, "")], "give both its TOPdesk id and its e-mail address, or neither"),
            ([(ID, ""), (EMAIL, "desk@contoso.com")], "give both its TOPdesk id and its e-mail address"),
        ] {
            let r = b.post("/t/contoso/settings", &form).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{form:?}");
            let refused = r.text().await.unwrap();
            assert!(refused.contains("id=\"settings-error\"") && refused.contains(expected), "{refused}");
            assert!(stored(&site).await["sync"].get("fallback_person").is_none(), "{form:?} saved");
        }

        // Both: saved, and shown back.
        let r = b.post("/t/contoso/settings", &[(ID, " p-desk "), (EMAIL, "Desk@Contoso.com")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
        let doc = stored(&site).await;
        assert_eq!(doc["sync"]["fallback_person"]["person_id"], "p-desk", "{doc}");
        assert_eq!(doc["sync"]["fallback_person"]["email"], "desk@contoso.com", "{doc}");
        let page = b.settings().await;
        for needle in [
            "name=\"sync.fallback_person.person_id\" value=\"p-desk\"",
            "name=\"sync.fallback_person.email\" value=\"desk@contoso.com\"",
        ] {
            assert!(page.contains(needle), "no {needle:?} on the page:\n{page}");
        }
        // Both emptied: no fallback person any more.
        let r = b.post("/t/contoso/settings", &[(ID, ""), (EMAIL, "")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
        assert!(stored(&site).await["sync"].get("fallback_person").is_none());
        support::sigterm(&orb);
        let mut orb = orb;
        support::wait_exit(&mut orb, 30).await;
    }
}
