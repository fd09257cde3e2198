//! The checks of a tenant that reaches Exchange Server on-premises through EWS (`[exchange] kind = "ews"`),
//! in the findings style of the Graph ones. Every call goes through the tenant's runtime
//! (`runtime.exchange`, the same [`orb_engine::exchange::EwsExchange`] the sync uses, impersonating the
//! mailbox each call is about):
//!
//! - **ews.signin**: `GetRoomLists` (as ORB's sender) answers: the URL is reachable (TLS included) and the
//!   service account's credentials are accepted. A 401 names the account and the authentication methods to
//!   check; a connection or TLS failure names the URL.
//! - **ews.version**: what is known of the server's version: that it accepts ORB's
//!   `RequestServerVersion`. The server's own build (`ServerVersionInfo` in every answer's SOAP header) is
//!   not exposed by `orb-ews`'s client, so it is not reported (never guessed).
//! - **ews.impersonation**: a one-day calendar view of each enabled room and of the mail sender, each
//!   impersonating that mailbox: a mailbox outside the service account's management scope is named, with
//!   the cmdlets that add it.
//! - **ews.rooms**: each mapped room is in one of Exchange's room lists (a warning otherwise); listed rooms
//!   that are not mapped are reported too (like `graph.places`).
//! - **webhook** (with `server.public_url` set): `{public_url}/hooks/ews/{tenant}` is ORB's EWS push
//!   endpoint, reached from here ([`push_url`]).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use orb_core::{CorrelationId, EmailAddress};
use orb_engine::exchange::{DirectoryRoom, ExchangeError};
use orb_engine::runtime::TenantRuntime;
use orb_engine::settings::{EwsAuth, EwsSettings};
use orb_ews::EwsError;

use super::{Report, Status};

/// Runs the EWS checks; returns the mailboxes ORB may act for (rooms and the sender), or `None` when
/// Exchange cannot be reached or refuses the credentials (nothing else can be checked then).
pub(super) async fn check(
    runtime: &TenantRuntime,
    ews: &EwsSettings,
    tenant: &str,
    rooms: &[orb_store::Room],
    now: DateTime<Utc>,
    report: &mut Report,
) -> Option<BTreeSet<EmailAddress>> {
    let listed = signin(runtime, ews, tenant, now, report).await?;
    report.ok(
        "ews.version",
        format!(
            "{} accepts ORB's requests at RequestServerVersion {} (Exchange 2013 SP1 and later: 2016, 2019, \
             SE); the server's own build (ServerVersionInfo) is not read by ORB's EWS client",
            ews.url,
            orb_ews::model::REQUEST_SERVER_VERSION
        ),
        "ORB uses only operations that exist at this version",
    );
    let usable = impersonation(runtime, ews, rooms, now, report).await;
    if let Some(listed) = listed {
        room_lists(&listed, rooms, report);
    }
    Some(usable)
}

/// `ews.signin`: `Some(the rooms of the room lists)`, `Some(None)` when the credentials are accepted but
/// the lists cannot be read as the sender (the impersonation finding says why), `None` when Exchange is
/// out of reach.
async fn signin(
    runtime: &TenantRuntime,
    ews: &EwsSettings,
    tenant: &str,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Option<Option<Vec<DirectoryRoom>>> {
    let url = &ews.url;
    let user = &ews.username;
    let why = "without it ORB cannot read or write any room calendar";
    let e = match runtime.exchange.list_rooms(CorrelationId::generate(now)).await {
        Ok(listed) => {
            report.ok(
                "ews.signin",
                format!("{url} answers and accepts the service account {user}"),
                "ORB signs in to Exchange",
            );
            return Some(Some(listed));
        }
        Err(ExchangeError::Ews(e)) => e,
        Err(e) => {
            report.add("ews.signin", Status::Error, format!("{url}: {e}"), why, "check the [ews] settings");
            return None;
        }
    };
    match &e {
        EwsError::Unauthorized { status } => {
            let fix = match ews.auth {
                EwsAuth::Basic => format!(
                    "check ews.username (DOMAIN\\user or the UPN) and the password (`orb secret set --tenant \
                     {tenant} ews.password`); the EWS virtual directory must allow Basic authentication \
                     (Set-WebServicesVirtualDirectory -BasicAuthentication $true), and an EWS access policy \
                     (Set-OrganizationConfig -EwsApplicationAccessPolicy) must not block ORB"
                ),
                EwsAuth::Ntlm => format!(
                    "check ews.username (DOMAIN\\user or the UPN) and the password (`orb secret set --tenant \
                     {tenant} ews.password`); the EWS virtual directory must allow Windows authentication \
                     (Set-WebServicesVirtualDirectory -WindowsAuthentication $true), and an EWS access policy \
                     (Set-OrganizationConfig -EwsApplicationAccessPolicy) must not block ORB"
                ),
                EwsAuth::Bearer => format!(
                    "the token may have expired: set a new one (`orb secret set --tenant {tenant} ews.token`); \
                     the EWS virtual directory must allow OAuth (Set-WebServicesVirtualDirectory \
                     -OAuthAuthentication $true)"
                ),
            };
            report.add(
                "ews.signin",
                Status::Error,
                format!("{url} refused the credentials of the service account {user} (HTTP {status})"),
                why,
                &fix,
            );
            None
        }
        EwsError::AuthNotOffered { wanted, offered } => {
            report.add(
                "ews.signin",
                Status::Error,
                format!("{url} does not offer {wanted} sign-in (it offers: {offered})"),
                why,
                "enable Windows authentication on the EWS virtual directory (Set-WebServicesVirtualDirectory \
                 -WindowsAuthentication $true), or set ews.auth to a method it offers",
            );
            None
        }
        EwsError::ImpersonationDenied { .. } => {
            // The credentials passed; acting as the sender did not (ews.impersonation names it).
            report.ok(
                "ews.signin",
                format!("{url} answers and accepts the service account {user}"),
                "ORB signs in to Exchange",
            );
            Some(None)
        }
        EwsError::Transient { status: None, what } => {
            report.add(
                "ews.signin",
                Status::Error,
                format!("{url} cannot be reached from here ({what})"),
                why,
                "check ews.url (https://HOST/EWS/Exchange.asmx), that this machine resolves HOST and reaches it \
                 on port 443, and that it trusts the server's certificate (one from the organisation's own CA: \
                 give that CA as ews.ca_file in ORB's configuration)",
            );
            None
        }
        e => {
            report.add(
                "ews.signin",
                Status::Error,
                format!("{url} did not answer GetRoomLists: {e}"),
                why,
                "check that ews.url is the EWS endpoint (https://HOST/EWS/Exchange.asmx) of an Exchange Server \
                 2016, 2019 or SE, and run the check again",
            );
            None
        }
    }
}

/// `ews.impersonation`: a one-day calendar view of each enabled room and of the sender, as that mailbox.
async fn impersonation(
    runtime: &TenantRuntime,
    ews: &EwsSettings,
    rooms: &[orb_store::Room],
    now: DateTime<Utc>,
    report: &mut Report,
) -> BTreeSet<EmailAddress> {
    let user = &ews.username;
    let sender = &runtime.mail_sender;
    let mut mailboxes: Vec<(&EmailAddress, bool)> =
        rooms.iter().filter(|r| r.enabled).map(|r| (r.mailbox.address(), true)).collect();
    if !mailboxes.iter().any(|(m, _)| *m == sender) {
        mailboxes.push((sender, false));
    }
    let mut usable = BTreeSet::new();
    for (mailbox, is_room) in &mailboxes {
        let read = runtime.exchange.calendar_view(
            mailbox,
            now,
            now + Duration::days(1),
            CorrelationId::generate(now),
        );
        let why = if *is_room {
            "ORB reads and books a room as the room itself; outside the scope it can neither see nor book it"
        } else {
            "ORB sends its mails and reads the room lists as ews.mail_sender"
        };
        match read.await {
            Ok(_) => {
                usable.insert((*mailbox).clone());
            }
            Err(ExchangeError::Ews(EwsError::ImpersonationDenied { code, .. })) => {
                let fix = match code.as_str() {
                    "ErrorImpersonateUserDenied" => format!(
                        "add {mailbox} to the management scope of {user}'s ApplicationImpersonation role \
                         assignment (Set-ManagementScope SCOPE -RecipientRestrictionFilter …, or \
                         New-ManagementScope and New-ManagementRoleAssignment -Role ApplicationImpersonation \
                         -User {user} -CustomRecipientWriteScope SCOPE); Get-ManagementRoleAssignment -Role \
                         ApplicationImpersonation -GetEffectiveUsers shows the assignments"
                    ),
                    "ErrorNonExistentMailbox" => format!(
                        "{mailbox} is no mailbox in this Exchange organisation: check the address (`orb room \
                         list`, ews.mail_sender)"
                    ),
                    _ => format!(
                        "give {user} the ApplicationImpersonation role, scoped to the rooms and ORB's sender: \
                         New-ManagementScope -Name SCOPE -RecipientRestrictionFilter …, then \
                         New-ManagementRoleAssignment -Role ApplicationImpersonation -User {user} \
                         -CustomRecipientWriteScope SCOPE"
                    ),
                };
                report.add(
                    "ews.impersonation",
                    Status::Error,
                    format!("the service account {user} may not act for {mailbox} ({code})"),
                    why,
                    &fix,
                );
            }
            Err(e) => report.add(
                "ews.impersonation",
                Status::Error,
                format!("the calendar of {mailbox} cannot be read: {e}"),
                why,
                "check the address, and run the check again",
            ),
        }
    }
    if usable.len() == mailboxes.len() {
        let rooms = mailboxes.iter().filter(|(_, room)| *room).count();
        report.ok(
            "ews.impersonation",
            format!(
                "the service account {user} may act for all {} mailbox(es): {rooms} room(s) and the mail \
                 sender {sender}",
                mailboxes.len()
            ),
            "ApplicationImpersonation covers the rooms and the sender",
        );
    }
    usable
}

/// `ews.rooms`: the mapped rooms against Exchange's room lists.
fn room_lists(listed: &[DirectoryRoom], rooms: &[orb_store::Room], report: &mut Report) {
    report.ok(
        "ews.rooms",
        format!("Exchange's room lists hold {} room(s)", listed.len()),
        "ORB suggests room mappings from them",
    );
    let known: BTreeSet<EmailAddress> =
        listed.iter().filter_map(|r| EmailAddress::parse(&r.email).ok()).collect();
    for room in rooms {
        if !known.contains(room.mailbox.address()) {
            report.add(
                "ews.rooms",
                Status::Warning,
                format!("mapped room {} is not in any of Exchange's room lists", room.mailbox),
                "a room outside the room lists is not offered by Outlook's room finder (nor by ORB's room \
                 suggestions); a mailbox that is no room mailbox does not answer meetings as a room",
                "check the mailbox address; add the room to a room list (Add-DistributionGroupMember -Identity \
                 ROOMLIST -Member ROOM; a room list is made with New-DistributionGroup -RoomList)",
            );
        }
    }
    let mapped: BTreeSet<&EmailAddress> = rooms.iter().map(|r| r.mailbox.address()).collect();
    for mailbox in &known {
        if !mapped.contains(mailbox) {
            report.add(
                "ews.rooms",
                Status::Warning,
                format!("room {mailbox} is in Exchange's room lists but not mapped"),
                "its bookings do not reach TOPdesk",
                "map it with `orb room add`, or ignore this if it should not be synced",
            );
        }
    }
}

/// The `webhook` finding of an EWS tenant: how `url` answered an empty push notification (`Err`: not at
/// all). ORB's EWS push endpoint refuses an unreadable notification with 400.
pub(super) fn push_url(url: &str, answer: Result<u16, reqwest::Error>, report: &mut Report) {
    let why = "Exchange pushes calendar changes to this URL; without it ORB notices them only at its sweeps";
    match answer {
        Ok(400) => report.ok(
            "webhook",
            format!("{url} is ORB's EWS push endpoint (it refuses an empty notification with HTTP 400)"),
            "push notifications",
        ),
        Ok(403) => report.add(
            "webhook",
            Status::Warning,
            format!("{url} refused this machine (HTTP 403)"),
            "the tenant's webhook allow-list (portal.webhook_allow_cidrs) may not list this machine; Exchange's \
             servers must be on it",
            "make sure portal.webhook_allow_cidrs holds the Exchange servers' addresses",
        ),
        Ok(status) => report.add(
            "webhook",
            Status::Error,
            format!("{url} answered an empty push notification with HTTP {status}, not as ORB's EWS push endpoint"),
            why,
            "route {public_url}/hooks/ to ORB's server.listen address, unchanged (no rewriting proxy)",
        ),
        Err(e) => report.add(
            "webhook",
            Status::Warning,
            format!("{url} is not reachable from here ({e}); is `orb serve` running?"),
            why,
            "start `orb serve` and check again; make sure the Exchange servers can reach server.public_url",
        ),
    }
}
