//! `orb check`: the pre-flight check of a tenant (or every tenant) against the real services.
//!
//! Each check yields a [`Finding`]: which check, its status (`ok`, `warning`, `error`), what was found, why
//! it matters and how to fix it. The checks:
//!
//! - **setup**: the tenant has settings and the secrets ORB needs, and a runtime can be built from them.
//! - **graph.token**, **graph.roles**: a token can be obtained with the stored credential (client secret
//!   or certificate); its `roles` claim (the JWT payload, decoded without verifying: advisory only) holds
//!   `Calendars.ReadWrite`, `Mail.Send` and `Place.Read.All` — a missing one is an error, one more is a
//!   warning (least privilege). No mail is sent to prove `Mail.Send`.
//! - **graph.places**: the rooms can be listed (`Place.Read.All` usable); a mapped room Graph does not list,
//!   a listed room that is not mapped, and a room whose `bookingType` is `reserved` are reported.
//! - **room.calendar**: each mapped room's calendar can be read (calendarView over 15 minutes, with ORB's
//!   own `$select`: `Calendars.ReadWrite` usable, the mailbox in the app's scope).
//! - **ews.signin**, **ews.version**, **ews.impersonation**, **ews.rooms**: instead of the `graph.*` and
//!   `room.calendar` checks for a tenant on Exchange Server (EWS): see [`ews`].
//! - **room.probe** (skipped with `--no-probe`; through the tenant's Exchange, Graph or EWS alike): Exchange
//!   does not expose a room's calendar processing to ORB
//!   (`DeleteSubject`, `AddOrganizerToSubject`, `AllowConflicts`, `AutomateProcessing`,
//!   `BookingWindowInDays`), so a probe books it: a 15-minute meeting from the tenant's `mail_sender` at
//!   02:00 UTC two weeks ahead — does the room answer, does its copy keep the subject (under the `keep`
//!   subject policy) — a second, overlapping one — is it accepted anyway — and one at the end of the sync
//!   horizon — is it declined (booking window shorter than the horizon). Every probe is deleted again.
//! - **topdesk.login**, **topdesk.reservations**, **topdesk.persons**: the operator can log in, list
//!   reservations and look persons up; **topdesk.location**: each mapped room's location is a reservable
//!   location; reservable locations no room is mapped to are listed.
//! - **webhook**: `server.public_url` is https (or loopback) and answers Graph's validation handshake
//!   (only while `orb serve` runs: unreachable is a warning); for an EWS tenant, where a public URL is set,
//!   `{public_url}/hooks/ews/{tenant}` answers as ORB's EWS push endpoint.
//! - **clock**: the `Date` header of a Graph and a TOPdesk answer against ORB's clock (more than 60 s
//!   apart is a warning; EWS's is not read).
//!
//! Nothing is written to the store. The probe meetings are real meetings in the room's calendar for a few
//! seconds: a running `orb serve` may sync them to TOPdesk and cancel them again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use orb_core::{Clock, CorrelationId, EmailAddress, RoomMailbox, SystemClock};
use orb_crypto::{KeyRing, MasterKey};
use orb_engine::exchange::ExchangeKind;
use orb_engine::runtime::TenantRuntime;
use orb_engine::settings::TenantSettings;
use orb_graph::GraphClient;
use orb_graph::model::{BookingType, Room};
use orb_store::Tenant;
use serde::Serialize;

use crate::commands::{find_tenant, open_store};
use crate::config::Config;
use crate::serve::Env;

mod ews;
mod probe;

use probe::Probe;

/// The application permissions ORB needs, exactly.
pub const REQUIRED_ROLES: &[&str] = &["Calendars.ReadWrite", "Mail.Send", "Place.Read.All"];

/// The largest clock difference to a service that is not reported.
pub const MAX_SKEW: Duration = Duration::seconds(60);

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As it should be.
    Ok,
    /// ORB works, but something will bite later or is wider than needed.
    Warning,
    /// ORB cannot work (or will make mistakes) until this is fixed.
    Error,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The tenant's name.
    pub tenant: String,
    /// Which check (`graph.roles`, `room.probe`, …).
    pub check: String,
    /// How bad.
    pub status: Status,
    /// What was found.
    pub what: String,
    /// Why it matters.
    pub why: String,
    /// What to do (for `ok`: nothing).
    pub fix: String,
}

/// What `orb check` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// One JSON document instead of text.
    pub json: bool,
    /// Skip the probe bookings.
    pub no_probe: bool,
    /// How long to wait for a room to answer a probe.
    pub probe_wait: StdDuration,
}

/// Collects the findings of one tenant.
struct Report {
    tenant: String,
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, check: &str, status: Status, what: String, why: &str, fix: &str) {
        self.findings.push(Finding {
            tenant: self.tenant.clone(),
            check: check.to_owned(),
            status,
            what,
            why: why.to_owned(),
            fix: if status == Status::Ok { "nothing to do".to_owned() } else { fix.to_owned() },
        });
    }

    fn ok(&mut self, check: &str, what: String, why: &str) {
        self.add(check, Status::Ok, what, why, "");
    }
}

/// Runs `orb check` (see the module docs); fails (exit 1) when a finding is an error.
pub async fn run(config: &Config, options: Options) -> Result<()> {
    let master = MasterKey::from_process_env()?;
    let store = open_store(config).await?;
    let tenants = match &options.tenant {
        Some(name) => vec![find_tenant(&*store, name).await?],
        None => store.list_tenants().await?,
    };
    if tenants.is_empty() {
        bail!("there is no tenant to check; add one with `orb tenant add NAME`");
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let env = Env::new(config, store.clone(), KeyRing::new(master), clock.clone());
    let mut findings = Vec::new();
    for tenant in &tenants {
        let mut report = Report { tenant: tenant.name.to_string(), findings: Vec::new() };
        check_tenant(&env, config, tenant, &options, &mut report).await?;
        findings.extend(report.findings);
    }
    if options.json {
        out!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            out!("[{}] {} {}: {}", f.status.label(), f.tenant, f.check, f.what);
            if f.status != Status::Ok {
                out!("    why: {}", f.why);
                out!("    fix: {}", f.fix);
            }
        }
        let count = |s| findings.iter().filter(|f| f.status == s).count();
        out!(
            "{} ok, {} warning(s), {} error(s)",
            count(Status::Ok),
            count(Status::Warning),
            count(Status::Error)
        );
    }
    let errors = findings.iter().filter(|f| f.status == Status::Error).count();
    if errors > 0 {
        bail!("{errors} check(s) failed; fix what the findings above say and run `orb check` again");
    }
    Ok(())
}

async fn check_tenant(
    env: &Env,
    config: &Config,
    tenant: &Tenant,
    options: &Options,
    report: &mut Report,
) -> Result<()> {
    let Some((runtime, settings)) = setup(env, tenant, report).await? else { return Ok(()) };
    let clock = env.clock.clone();
    let rooms = env.store.list_rooms(tenant.id).await?;
    let fix = match &runtime.graph {
        Some(_) => "grant Calendars.ReadWrite and check graph.mail_sender; or skip the probe with --no-probe",
        None => {
            "put ews.mail_sender into the service account's impersonation scope and check its calendar; or \
             skip the probe with --no-probe"
        }
    };
    let probe = |room| Probe { runtime: &runtime, clock: &*clock, room, wait: options.probe_wait, fix };
    let listed = match runtime.graph.clone() {
        Some(graph) => {
            let roles_ok = graph_token(&graph, report).await;
            let listed = graph_places(&graph, &rooms, report).await;
            for room in rooms.iter().filter(|r| r.enabled) {
                let readable = room_calendar(&graph, &room.mailbox, clock.now(), report).await;
                if readable && roles_ok && !options.no_probe {
                    probe(&room.mailbox).run(clock.now(), report).await;
                }
            }
            listed.is_some()
        }
        None => {
            let ews = settings.ews.as_ref().expect("an EWS tenant's settings have [ews]");
            let checked =
                ews::check(&runtime, ews, &tenant.name.to_string(), &rooms, clock.now(), report).await;
            if let Some(usable) = &checked
                && !options.no_probe
                && usable.contains(&runtime.mail_sender)
            {
                for room in rooms.iter().filter(|r| r.enabled && usable.contains(r.mailbox.address())) {
                    probe(&room.mailbox).run(clock.now(), report).await;
                }
            }
            checked.is_some()
        }
    };
    if listed && rooms.is_empty() {
        report.add(
            "setup",
            Status::Warning,
            "no room is mapped".to_owned(),
            "ORB syncs only mapped rooms",
            &format!(
                "map rooms with `orb room add --tenant {} --mailbox … --topdesk-location …`",
                tenant.name
            ),
        );
    }
    topdesk(&runtime, &rooms, report).await;
    if runtime.exchange.as_ews().is_some_and(orb_engine::exchange::EwsExchange::streams) {
        report.ok(
            "webhook",
            "streaming notifications: ORB connects to Exchange, no push URL is needed".to_owned(),
            "with `[ews] notifications = \"streaming\"` Exchange never calls ORB",
        );
    } else {
        webhook(config, tenant, runtime.exchange.kind(), report).await;
    }
    clocks(&runtime, clock.now(), report).await;
    Ok(())
}

/// Settings, secrets and a runtime; `None` (with an error finding) when the tenant cannot be synced.
async fn setup(
    env: &Env,
    tenant: &Tenant,
    report: &mut Report,
) -> Result<Option<(TenantRuntime, TenantSettings)>> {
    let name = &tenant.name;
    let Some(row) = env.store.get_tenant_settings(tenant.id).await? else {
        report.add(
            "setup",
            Status::Error,
            "the tenant has no settings".to_owned(),
            "without settings ORB does not know the tenant's Graph app or TOPdesk",
            &format!("write them with `orb tenant settings --tenant {name} --file FILE`"),
        );
        return Ok(None);
    };
    let settings = match TenantSettings::from_json(&row.document) {
        Ok(settings) => settings,
        Err(e) => {
            report.add(
                "setup",
                Status::Error,
                format!("the stored settings are not valid: {e}"),
                "ORB does not sync a tenant whose settings it cannot read",
                &format!("write them again with `orb tenant settings --tenant {name} --file FILE`"),
            );
            return Ok(None);
        }
    };
    let secrets: BTreeSet<String> =
        env.store.list_secrets(tenant.id).await?.into_iter().map(|s| s.name).collect();
    if let Some(secret) = settings.missing_secret(|name| secrets.contains(name)) {
        report.add(
            "setup",
            Status::Error,
            format!("the secret {secret} is not set"),
            match settings.exchange.kind {
                ExchangeKind::Graph => "ORB cannot reach Graph and TOPdesk without their credentials",
                ExchangeKind::Ews => "ORB cannot reach Exchange and TOPdesk without their credentials",
            },
            &format!("set it with `orb secret set --tenant {name} NAME` (the value is read from stdin)"),
        );
        return Ok(None);
    }
    match crate::serve::tenant_runtime(env, tenant).await {
        Ok(Some(runtime)) => {
            report.ok("setup", "settings and secrets are complete".to_owned(), "ORB can sync the tenant");
            Ok(Some((runtime, settings)))
        }
        Ok(None) => {
            report.add(
                "setup",
                Status::Error,
                "the tenant cannot be loaded".to_owned(),
                "ORB does not sync it",
                "see the log line above for what is missing",
            );
            Ok(None)
        }
        Err(e) => {
            report.add(
                "setup",
                Status::Error,
                format!("the tenant cannot be loaded: {e:#}"),
                "ORB does not sync it",
                "correct the setting or secret the message names",
            );
            Ok(None)
        }
    }
}

/// A token, and the permissions it carries; true when every required role is there.
async fn graph_token(graph: &GraphClient, report: &mut Report) -> bool {
    let credential = match &*graph.app().credential {
        orb_graph::auth::Credential::Secret(_) => "client secret",
        orb_graph::auth::Credential::Certificate(_) => "certificate",
    };
    let token = match graph.tokens().token(graph.app()).await {
        Ok(token) => token,
        Err(e) => {
            report.add(
                "graph.token",
                Status::Error,
                format!("no token with the {credential}: {e}"),
                "without a token ORB cannot read or write any room calendar",
                "check graph.tenant_id and graph.client_id in the settings and the credential in the app \
                 registration (a client secret may have expired; a certificate must be uploaded to the app)",
            );
            return false;
        }
    };
    report.ok("graph.token", format!("a token was issued with the {credential}"), "ORB signs in to Graph");
    let Some(roles) = token_roles(token.secret()) else {
        report.add(
            "graph.roles",
            Status::Warning,
            "the token's permissions cannot be read (it is not a JWT with a roles claim)".to_owned(),
            "ORB cannot tell whether the app has the permissions it needs",
            "check the app's API permissions in Entra: Calendars.ReadWrite, Mail.Send and Place.Read.All \
             (application), with admin consent",
        );
        return true;
    };
    let mut all = true;
    for finding in judge_roles(&roles) {
        all &= finding.0 != Status::Error;
        report.add("graph.roles", finding.0, finding.1, finding.2, &finding.3);
    }
    all
}

/// The `roles` claim of a JWT access token (its payload decoded, not verified).
pub fn token_roles(token: &str) -> Option<Vec<String>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get("roles") {
        None => Some(Vec::new()),
        Some(roles) => roles.as_array()?.iter().map(|r| r.as_str().map(str::to_owned)).collect(),
    }
}

/// The findings for a token's roles: one error per missing permission, one warning for those beyond
/// [`REQUIRED_ROLES`], or one `ok`.
pub fn judge_roles(roles: &[String]) -> Vec<(Status, String, &'static str, String)> {
    let has = |r: &str| roles.iter().any(|x| x == r);
    let mut out = Vec::new();
    for needed in REQUIRED_ROLES.iter().filter(|r| !has(r)) {
        let why = match *needed {
            "Calendars.ReadWrite" => "ORB reads and writes the rooms' and organizers' calendars",
            "Mail.Send" => "ORB mails organizers when TOPdesk refuses or changes their booking",
            _ => "ORB lists the tenant's rooms",
        };
        out.push((
            Status::Error,
            format!("the app lacks the permission {needed}"),
            why,
            format!("grant {needed} (application permission) to the app in Entra and give admin consent"),
        ));
    }
    let extra: Vec<&str> = roles.iter().map(String::as_str).filter(|r| !REQUIRED_ROLES.contains(r)).collect();
    if !extra.is_empty() {
        out.push((
            Status::Warning,
            format!("the app has permissions ORB does not need: {}", extra.join(", ")),
            "least privilege: a leaked credential can do no more than ORB needs",
            format!("remove {} from the app's API permissions in Entra", extra.join(", ")),
        ));
    }
    if out.is_empty() {
        out.push((
            Status::Ok,
            format!("the token carries exactly {}", REQUIRED_ROLES.join(", ")),
            "ORB can read and write calendars, list rooms and send mail",
            String::new(),
        ));
    }
    out
}

/// The rooms Graph lists, compared with the mapped ones (`None` when they cannot be listed).
async fn graph_places(
    graph: &GraphClient,
    rooms: &[orb_store::Room],
    report: &mut Report,
) -> Option<Vec<Room>> {
    let listed = match graph.list_rooms(corr(graph)).await {
        Ok(listed) => listed,
        Err(e) => {
            report.add(
                "graph.places",
                Status::Error,
                format!("the rooms cannot be listed: {e}"),
                "ORB lists rooms to check mappings and for the portal",
                "grant Place.Read.All (application permission) with admin consent",
            );
            return None;
        }
    };
    report.ok("graph.places", format!("Graph lists {} room(s)", listed.len()), "Place.Read.All is usable");
    let address = |r: &Room| r.email_address.as_deref().and_then(|a| EmailAddress::parse(a).ok());
    let known: BTreeSet<EmailAddress> = listed.iter().filter_map(address).collect();
    for room in rooms {
        if !known.contains(room.mailbox.address()) {
            report.add(
                "graph.places",
                Status::Warning,
                format!("mapped room {} is not among the rooms Graph lists", room.mailbox),
                "a mailbox that is no room (or is hidden) does not answer meetings as a room",
                "check the mailbox address, or make it a room mailbox (Set-Mailbox -Type Room)",
            );
        }
    }
    let mapped: BTreeSet<&EmailAddress> = rooms.iter().map(|r| r.mailbox.address()).collect();
    for room in &listed {
        let Some(mailbox) = address(room) else { continue };
        if room.booking_type == Some(BookingType::Reserved) && mapped.contains(&mailbox) {
            report.add(
                "graph.places",
                Status::Error,
                format!("mapped room {mailbox} has bookingType reserved"),
                "a reserved room is first-come, first-served and cannot be booked",
                "make the room bookable in Exchange, or unmap it",
            );
        }
        if !mapped.contains(&mailbox) {
            report.add(
                "graph.places",
                Status::Warning,
                format!("room {mailbox} is in Outlook but not mapped"),
                "its bookings do not reach TOPdesk",
                "map it with `orb room add`, or ignore this if it should not be synced",
            );
        }
    }
    Some(listed)
}

/// Reads 15 minutes of a room's calendar with ORB's `$select`.
async fn room_calendar(
    graph: &GraphClient,
    room: &RoomMailbox,
    now: DateTime<Utc>,
    report: &mut Report,
) -> bool {
    match graph.calendar_view(room.address(), now, now + Duration::minutes(15), corr(graph)).await {
        Ok(_) => {
            report.ok("room.calendar", format!("the calendar of {room} is readable"), "ORB reads it to sync");
            true
        }
        Err(orb_graph::GraphError::Forbidden { message, .. }) if message.contains("OData is disabled") => {
            report.add(
                "room.calendar",
                Status::Error,
                format!("an application access policy keeps ORB out of {room}"),
                "the app is scoped to a group of mailboxes and this room is not in it: ORB cannot see or \
                 book it",
                "add the room to the mail-enabled security group of the app's access policy \
                 (Test-ApplicationAccessPolicy -Identity ROOM -AppId APP shows the result; changes can take \
                 an hour), or to the management scope of its RBAC for Applications role assignment",
            );
            false
        }
        Err(e) => {
            report.add(
                "room.calendar",
                Status::Error,
                format!("the calendar of {room} cannot be read: {e}"),
                "ORB cannot see the room's bookings",
                "grant Calendars.ReadWrite; if an application access policy scopes the app, add the room \
                 to its group; check the address",
            );
            false
        }
    }
}

/// A correlation id for one Graph call, on the client's clock.
fn corr(graph: &GraphClient) -> CorrelationId {
    CorrelationId::generate(graph.clock().now())
}

async fn topdesk(runtime: &TenantRuntime, rooms: &[orb_store::Room], report: &mut Report) {
    let td = &runtime.topdesk;
    if let Err(e) = td.current_operator().await {
        report.add(
            "topdesk.login",
            Status::Error,
            format!("the operator cannot log in: {e}"),
            "ORB cannot read or write reservations",
            "check topdesk.username and the application password (orb secret set … topdesk.app_password)",
        );
        return;
    }
    report.ok("topdesk.login", "the operator logs in".to_owned(), "ORB reaches TOPdesk");
    match td.list_reservations(None, Some("id"), Some(1)).await {
        Ok(_) => report.ok("topdesk.reservations", "reservations can be listed".to_owned(), "ORB polls them"),
        Err(e) => report.add(
            "topdesk.reservations",
            Status::Error,
            format!("reservations cannot be listed: {e}"),
            "ORB polls reservations to bring desk changes to Outlook",
            "give the operator's permission group read and write rights on Reservations",
        ),
    }
    match td.find_persons_by_email(runtime.mail_sender.as_str()).await {
        Ok(_) => report.ok("topdesk.persons", "persons can be looked up".to_owned(), "requesters"),
        Err(e) => report.add(
            "topdesk.persons",
            Status::Error,
            format!("persons cannot be looked up: {e}"),
            "ORB books reservations for the TOPdesk person of the meeting's organizer",
            "give the operator's permission group read rights on Persons",
        ),
    }
    let mut mapped = BTreeSet::new();
    for room in rooms {
        mapped.insert(room.topdesk_location_id.clone());
        match td.reservable_location(&room.topdesk_location_id).await {
            Ok(_) => report.ok(
                "topdesk.location",
                format!("{} is mapped to reservable location {}", room.mailbox, room.topdesk_location_id),
                "mapping",
            ),
            Err(e) => report.add(
                "topdesk.location",
                Status::Error,
                format!(
                    "{} is mapped to location {}, which is not reservable: {e}",
                    room.mailbox, room.topdesk_location_id
                ),
                "ORB cannot book the room in TOPdesk",
                "map the room to a reservable location id (orb room add … --topdesk-location ID)",
            ),
        }
    }
    match td.reservable_locations(&[]).await {
        Ok(all) => {
            for loc in all {
                let Some(id) = loc.id else { continue };
                if !mapped.contains(&id) {
                    report.add(
                        "topdesk.location",
                        Status::Warning,
                        format!(
                            "reservable location {} ({id}) is not mapped to a room",
                            loc.name.unwrap_or_default()
                        ),
                        "its reservations do not reach Outlook",
                        "map it with `orb room add`, or ignore this if it has no room mailbox",
                    );
                }
            }
        }
        Err(e) => report.add(
            "topdesk.location",
            Status::Warning,
            format!("reservable locations cannot be listed: {e}"),
            "unmapped TOPdesk rooms cannot be found",
            "give the operator's permission group read rights on Reservations",
        ),
    }
}

/// Whether a public URL may serve Graph's webhooks: https, or http on a loopback host (tests, a proxy on
/// the same machine).
pub fn webhook_url_allowed(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

async fn webhook(config: &Config, tenant: &Tenant, kind: ExchangeKind, report: &mut Report) {
    let Some(public) = &config.server.public_url else {
        // An EWS tenant is checked only where a public URL is set (its changes are also noticed without
        // push, at the sweeps).
        if kind == ExchangeKind::Graph {
            report.add(
                "webhook",
                Status::Error,
                "server.public_url is not set".to_owned(),
                "Graph cannot deliver change notifications; ORB only notices changes at its sweeps",
                "set server.public_url (ORB__SERVER__PUBLIC_URL) to the https address Graph reaches ORB at",
            );
        }
        return;
    };
    let parsed = match url::Url::parse(public) {
        Ok(url) if webhook_url_allowed(&url) => url,
        _ => {
            report.add(
                "webhook",
                Status::Error,
                format!("server.public_url {public} is not an https URL"),
                match kind {
                    ExchangeKind::Graph => "Graph delivers notifications only to https endpoints",
                    ExchangeKind::Ews => "Exchange's push notifications carry booking data: only over https",
                },
                "set server.public_url to an https URL (a loopback http URL only for tests)",
            );
            return;
        }
    };
    let base = parsed.as_str().trim_end_matches('/');
    let client = reqwest::Client::builder().timeout(StdDuration::from_secs(10)).build();
    match kind {
        ExchangeKind::Graph => {
            let url = format!("{base}/hooks/graph/{}", tenant.id);
            let answer = match client {
                Ok(client) => client.post(&url).query(&[("validationToken", "orb-check")]).send().await,
                Err(e) => Err(e),
            };
            graph_handshake(&url, answer, report).await;
        }
        ExchangeKind::Ews => {
            let url = format!("{base}/hooks/ews/{}", tenant.name);
            let answer = match client {
                Ok(client) => {
                    client.post(&url).header("content-type", "text/xml; charset=utf-8").body("").send().await
                }
                Err(e) => Err(e),
            };
            ews::push_url(&url, answer.map(|r| r.status().as_u16()), report);
        }
    }
}

/// Graph's validation handshake at `url`: the token must come back as the body.
async fn graph_handshake(url: &str, answer: reqwest::Result<reqwest::Response>, report: &mut Report) {
    match answer {
        Ok(resp) if resp.status().as_u16() == 200 => match resp.text().await {
            Ok(body) if body == "orb-check" => {
                report.ok("webhook", format!("{url} answers Graph's validation handshake"), "notifications")
            }
            _ => report.add(
                "webhook",
                Status::Error,
                format!("{url} answered the validation handshake with another body"),
                "Graph refuses a subscription whose endpoint does not echo the token",
                "route {public_url}/hooks/ to ORB unchanged (no rewriting proxy)",
            ),
        },
        Ok(resp) => report.add(
            "webhook",
            Status::Error,
            format!("{url} answered the validation handshake with HTTP {}", resp.status().as_u16()),
            "Graph refuses a subscription whose endpoint does not echo the token",
            "route {public_url}/hooks/ to ORB's server.listen address",
        ),
        Err(e) => report.add(
            "webhook",
            Status::Warning,
            format!("{url} is not reachable from here ({e}); is `orb serve` running?"),
            "Graph must reach this URL to deliver notifications",
            "start `orb serve` and check again; make sure Graph can reach server.public_url",
        ),
    }
}

async fn clocks(runtime: &TenantRuntime, now: DateTime<Utc>, report: &mut Report) {
    if let Some(graph) = &runtime.graph {
        let graph = graph.server_date().await.map_err(|e| e.to_string());
        report_skew("Graph", graph, now, report);
    }
    let topdesk = runtime.topdesk.server_date().await.map_err(|e| e.to_string());
    report_skew("TOPdesk", topdesk, now, report);
}

fn report_skew(
    service: &str,
    date: Result<Option<DateTime<Utc>>, String>,
    now: DateTime<Utc>,
    report: &mut Report,
) {
    let (status, what) = judge_skew(service, date, now);
    report.add(
        "clock",
        status,
        what,
        "ORB compares modification times and decides time windows by its own clock",
        "synchronise this machine's clock (NTP)",
    );
}

/// The finding of one service's clock (`date`: its `Date` header, or why it was not read) against `now`.
pub fn judge_skew(
    service: &str,
    date: Result<Option<DateTime<Utc>>, String>,
    now: DateTime<Utc>,
) -> (Status, String) {
    match date {
        Ok(Some(theirs)) => {
            let skew = (theirs - now).num_seconds();
            if (theirs - now).abs() > MAX_SKEW {
                (Status::Warning, format!("{service}'s clock is {skew:+} s from this machine's"))
            } else {
                (
                    Status::Ok,
                    format!("{service}'s clock is within {} s of this machine's", MAX_SKEW.num_seconds()),
                )
            }
        }
        Ok(None) => (Status::Warning, format!("{service} sent no Date header; the clock cannot be compared")),
        Err(e) => (Status::Warning, format!("{service}'s clock cannot be read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &serde_json::Value) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn roles_are_read_from_the_payload_and_judged() {
        let exact = jwt(&serde_json::json!({"roles": REQUIRED_ROLES}));
        let roles = token_roles(&exact).unwrap();
        assert_eq!(judge_roles(&roles).iter().map(|f| f.0).collect::<Vec<_>>(), [Status::Ok]);

        let few = token_roles(&jwt(&serde_json::json!({"roles": ["Place.Read.All"]}))).unwrap();
        let found = judge_roles(&few);
        let errors: Vec<&str> = found.iter().filter(|f| f.0 == Status::Error).map(|f| f.1.as_str()).collect();
        assert_eq!(
            errors,
            ["the app lacks the permission Calendars.ReadWrite", "the app lacks the permission Mail.Send"]
        );

        let wide = token_roles(&jwt(&serde_json::json!({"roles": [
            "Calendars.ReadWrite", "Mail.Send", "Place.Read.All", "User.Read.All"]})))
        .unwrap();
        let found = judge_roles(&wide);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Status::Warning);
        assert!(found[0].1.contains("User.Read.All"), "{}", found[0].1);

        assert_eq!(token_roles(&jwt(&serde_json::json!({}))), Some(vec![]));
        assert_eq!(token_roles("not-a-jwt"), None);
        assert_eq!(token_roles("a.!!!.c"), None);
    }

    #[test]
    fn clock_skew_above_a_minute_is_a_warning() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let cases = [
            (Ok(Some(now + Duration::seconds(60))), Status::Ok),
            (Ok(Some(now - Duration::seconds(59))), Status::Ok),
            (Ok(Some(now + Duration::seconds(61))), Status::Warning),
            (Ok(Some(now - Duration::seconds(300))), Status::Warning),
            (Ok(None), Status::Warning),
            (Err("connection refused".to_owned()), Status::Warning),
        ];
        for (date, expected) in cases {
            let (status, what) = judge_skew("Graph", date.clone(), now);
            assert_eq!(status, expected, "{date:?}: {what}");
        }
        assert_eq!(
            judge_skew("Graph", Ok(Some(now - Duration::seconds(300))), now).1,
            "Graph's clock is -300 s from this machine's"
        );
    }

    #[test]
    fn webhook_urls_must_be_https_or_loopback() {
        for (url, ok) in [
            ("https://orb.example.com", true),
            ("http://127.0.0.1:8080", true),
            ("http://[::1]:8080", true),
            ("http://localhost:8080", true),
            ("http://orb.example.com", false),
            ("http://10.0.0.1", false),
            ("ftp://orb.example.com", false),
        ] {
            assert_eq!(webhook_url_allowed(&url::Url::parse(url).unwrap()), ok, "{url}");
        }
    }
}
