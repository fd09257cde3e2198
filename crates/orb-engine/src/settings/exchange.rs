//! The **Exchange side** of a tenant's settings: which protocol reaches its Exchange (`[exchange]`), and
//! that protocol's section — `[graph]` for Exchange Online through Microsoft Graph, `[ews]` for Exchange
//! Server on-premises — with their defaults and the checks serde cannot make. Re-exported from
//! [`crate::settings`], where the whole document ([`TenantSettings`](super::TenantSettings)) is.
//!
//! ## Invariants
//! - Exactly the section `exchange.kind` names is present (`graph` when `[exchange]` is absent): a missing
//!   section and a section of the other kind are both refused, naming the section (`validate_sections`).
//! - A tenant names a Graph **cloud**, never an endpoint: the endpoints are the installation's
//!   ([`crate::clouds`]). The Entra tenant is its directory id (a GUID), never a domain.
//! - No secret in a section: the Graph credential and the EWS password or token are tenant secrets.
//! - This module uses nothing of its parent; the parent holds these sections and calls
//!   `validate_sections`, whose `Invalid` it turns into [`SettingsError::Invalid`](super::SettingsError).

use orb_core::EmailAddress;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::exchange::ExchangeKind;

/// A value these sections refuse: the dotted key and what is wrong (the parent's
/// `SettingsError::Invalid`).
#[derive(Debug)]
pub(super) struct Invalid {
    /// The dotted key.
    pub(super) key: &'static str,
    /// What is wrong and what is accepted.
    pub(super) reason: String,
}

/// Checks that the section `exchange.kind` names is there, alone, and its values.
pub(super) fn validate_sections(
    exchange: &ExchangeSettings,
    graph: Option<&GraphSettings>,
    ews: Option<&EwsSettings>,
) -> Result<(), Invalid> {
    let invalid = |key, reason: &str| Err(Invalid { key, reason: reason.to_owned() });
    match (exchange.kind, graph, ews) {
        (ExchangeKind::Graph, Some(graph), None) => graph.validate(),
        (ExchangeKind::Ews, None, Some(ews)) => ews.validate(),
        (ExchangeKind::Graph, None, _) => {
            invalid("graph", "exchange.kind is graph: give the [graph] section")
        }
        (ExchangeKind::Ews, _, None) => invalid("ews", "exchange.kind is ews: give the [ews] section"),
        (ExchangeKind::Graph, Some(_), Some(_)) => {
            invalid("ews", "exchange.kind is graph: remove the [ews] section (or set kind = \"ews\")")
        }
        (ExchangeKind::Ews, Some(_), Some(_)) => {
            invalid("graph", "exchange.kind is ews: remove the [graph] section (or set kind = \"graph\")")
        }
    }
}

/// `[exchange]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSettings {
    /// `graph` (default) or `ews`.
    #[serde(default)]
    pub kind: ExchangeKind,
}

/// How ORB signs in to EWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EwsAuth {
    /// `Authorization: Basic` over TLS with the service account's password
    /// ([`SECRET_EWS_PASSWORD`](super::SECRET_EWS_PASSWORD)). The default when `auth` is absent (existing
    /// settings keep working); `ntlm` is recommended.
    #[default]
    Basic,
    /// NTLM (NTLMv2, Windows authentication: Exchange on-premises' default and the recommended choice)
    /// with the service account's password ([`SECRET_EWS_PASSWORD`](super::SECRET_EWS_PASSWORD)); the user
    /// name as `DOMAIN\user` or the UPN `user@domain`. Over TLS (plain http only where plain http is
    /// allowed, as for Basic).
    Ntlm,
    /// An OAuth bearer token ([`SECRET_EWS_TOKEN`](super::SECRET_EWS_TOKEN); hybrid modern
    /// authentication).
    Bearer,
}

/// How an EWS tenant hears of changes in its rooms (ews.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EwsNotifications {
    /// Exchange POSTs to ORB's public `/hooks/ews/{tenant}` ([`crate::ews_push`]): needs `server.public_url`
    /// reachable from the Exchange server.
    #[default]
    Push,
    /// ORB keeps a `GetStreamingEvents` connection open to Exchange ([`crate::ews_stream`]): outbound only,
    /// for a server that cannot reach ORB.
    Streaming,
}

/// `[ews]`: Exchange Server on-premises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EwsSettings {
    /// The EWS endpoint, `https://{host}/EWS/Exchange.asmx`.
    pub url: Url,
    /// The service account (`DOMAIN\user` or its UPN) holding ApplicationImpersonation, scoped to the
    /// room mailboxes, the organizers and the mail sender.
    pub username: String,
    /// How ORB signs in.
    #[serde(default)]
    pub auth: EwsAuth,
    /// The mailbox ORB's mails to users are sent from (inside the impersonation scope).
    pub mail_sender: EmailAddress,
    /// Push (default) or streaming notifications.
    #[serde(default)]
    pub notifications: EwsNotifications,
}

/// `[graph]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSettings {
    /// The Entra tenant (directory) id: the GUID shown in the Entra admin center under Overview. A
    /// verified domain is refused (resolving it needs the internet at save time, and the id never changes).
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The mailbox ORB's mails to users are sent from (needs `Mail.Send`).
    pub mail_sender: EmailAddress,
    /// Microsoft's cloud the tenant lives in (`global` by default, `usgov-l4`, `usgov-dod`, `china`), or
    /// `custom` where the operator's installation configuration defines one (emulators, tests). Endpoints
    /// are never tenant settings ([`crate::clouds`]).
    #[serde(default = "default_cloud")]
    pub cloud: String,
}

impl GraphSettings {
    fn validate(&self) -> Result<(), Invalid> {
        let invalid = |key, reason: &str| Err(Invalid { key, reason: reason.to_owned() });
        if self.tenant_id.trim().is_empty() {
            return invalid("graph.tenant_id", "it is empty: give the Entra directory id");
        }
        let id = &self.tenant_id;
        if id.len() != 36 || uuid::Uuid::try_parse(id).is_err() {
            return Err(Invalid {
                key: "graph.tenant_id",
                reason: format!(
                    "{id:?} is not a directory (tenant) id: give the GUID shown as Tenant ID in the \
                     Microsoft Entra admin center > Overview, e.g. 7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d (a \
                     domain name is not accepted)"
                ),
            });
        }
        if self.client_id.trim().is_empty() {
            return invalid("graph.client_id", "it is empty: give the app registration's client id");
        }
        let cloud_ok =
            orb_graph::Cloud::from_name(&self.cloud).is_some() || self.cloud == crate::clouds::CUSTOM_CLOUD;
        if !cloud_ok {
            return invalid(
                "graph.cloud",
                "use global, usgov-l4, usgov-dod or china (or custom, where the installation defines it)",
            );
        }
        Ok(())
    }
}

impl EwsSettings {
    fn validate(&self) -> Result<(), Invalid> {
        let invalid = |key, reason: &str| Err(Invalid { key, reason: reason.to_owned() });
        if !matches!(self.url.scheme(), "https" | "http") {
            return invalid(
                "ews.url",
                "use the https:// URL of the EWS endpoint, ending in /EWS/Exchange.asmx",
            );
        }
        if self.username.trim().is_empty() {
            return invalid(
                "ews.username",
                "it is empty: give the service account (DOMAIN\\user or its UPN)",
            );
        }
        Ok(())
    }
}

fn default_cloud() -> String {
    orb_graph::Cloud::Global.name().to_owned()
}

#[cfg(test)]
mod tests {
    use super::{EwsAuth, EwsNotifications};
    use crate::exchange::ExchangeKind;
    use crate::settings::TenantSettings;
    use crate::settings::tests::{EWS, MINIMAL};

    #[test]
    fn bad_graph_settings_are_refused_with_the_key_named() {
        // Endpoints are not tenant settings: a tenant names a cloud, never a host.
        for (from, to, needle) in [
            ("[topdesk]", "cloud = \"https://evil.example\"\n[topdesk]", "graph.cloud"),
            ("[topdesk]", "login_url = \"https://evil.example\"\n[topdesk]", "login_url"),
            ("[topdesk]", "graph_url = \"https://evil.example/v1.0\"\n[topdesk]", "graph_url"),
        ] {
            let text = MINIMAL.replacen(from, to, 1);
            let err = TenantSettings::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        for cloud in ["global", "usgov-l4", "usgov-dod", "china", "custom"] {
            let text = MINIMAL.replacen("[topdesk]", &format!("cloud = \"{cloud}\"\n[topdesk]"), 1);
            assert_eq!(TenantSettings::from_toml(&text).unwrap().graph.unwrap().cloud, cloud);
        }
        let no_sender = MINIMAL.replace("mail_sender = \"ORB@Contoso.com\"\n", "");
        assert!(TenantSettings::from_toml(&no_sender).unwrap_err().to_string().contains("mail_sender"));
        // The directory id, never a domain (resolving one needs the internet at save time).
        for tenant_id in ["contoso.onmicrosoft.com", "contoso.com", "7d2a5c1e0b9f4c1a9f773e1f2a4b5c6d", "{x}"]
        {
            let text = MINIMAL.replace("7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d", tenant_id);
            let err = TenantSettings::from_toml(&text).unwrap_err().to_string();
            assert!(
                err.contains("graph.tenant_id") && err.contains("Entra admin center > Overview"),
                "{err}"
            );
        }
        let bad_mail = MINIMAL.replace("ORB@Contoso.com", "not-an-address");
        assert!(TenantSettings::from_toml(&bad_mail).is_err());
    }

    #[test]
    fn an_ews_tenant_names_its_server_instead_of_graph() {
        let s = TenantSettings::from_toml(EWS).unwrap();
        assert_eq!(s.exchange.kind, ExchangeKind::Ews);
        let ews = s.ews.as_ref().unwrap();
        assert_eq!(ews.username, "FABRIKAM\\svc-orb");
        assert_eq!(ews.auth, EwsAuth::Basic, "basic is the default");
        assert_eq!(ews.notifications, EwsNotifications::Push, "push is the default");
        let streaming = TenantSettings::from_toml(&EWS.replace(
            "mail_sender = \"orb@fabrikam.com\"",
            "mail_sender = \"orb@fabrikam.com\"\nnotifications = \"streaming\"",
        ))
        .unwrap();
        assert_eq!(streaming.ews.as_ref().unwrap().notifications, EwsNotifications::Streaming);
        assert_eq!(TenantSettings::from_toml(&streaming.to_toml()).unwrap(), streaming);
        let ntlm = TenantSettings::from_toml(
            &EWS.replace("username = 'FABRIKAM", "auth = \"ntlm\"\nusername = 'FABRIKAM"),
        )
        .unwrap();
        assert_eq!(ntlm.ews.as_ref().unwrap().auth, EwsAuth::Ntlm);
        assert_eq!(TenantSettings::from_toml(&ntlm.to_toml()).unwrap(), ntlm);
        assert!(s.graph.is_none());
        assert_eq!(TenantSettings::from_json(&s.to_json()).unwrap(), s, "the stored form round-trips");
        assert_eq!(TenantSettings::from_toml(&s.to_toml()).unwrap(), s);
        // A Graph tenant's document without [exchange] is still a Graph tenant.
        assert_eq!(TenantSettings::from_toml(MINIMAL).unwrap().exchange.kind, ExchangeKind::Graph);

        let refused = |text: &str, key: &str| {
            let err = TenantSettings::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{err:?} should name {key:?}");
        };
        refused(&EWS.replace("[ews]", "[other]"), "other");
        refused(&EWS.replace("kind = \"ews\"", "kind = \"graph\""), "graph");
        refused(&EWS.replace("kind = \"ews\"", "kind = \"exchange2003\""), "exchange2003");
        refused(
            &format!(
                "{EWS}\n[graph]\ntenant_id = \"7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d\"\nclient_id = \"x\"\nmail_sender = \"a@b.c\"\n"
            ),
            "remove the [graph] section",
        );
        refused(&EWS.replace("'FABRIKAM\\svc-orb'", "' '"), "ews.username");
        refused(&EWS.replace("https://mail", "ftp://mail"), "ews.url");
        let room_only = TenantSettings::from_toml(&format!("{EWS}\n[sync]\nmode = \"room-only\"\n")).unwrap();
        assert_eq!(room_only.sync.mode, orb_core::Mode::RoomOnly, "room only is offered for EWS too");
        refused(
            &EWS.replace(
                "mail_sender = \"orb@fabrikam.com\"",
                "mail_sender = \"orb@fabrikam.com\"\nnotifications = \"pull\"",
            ),
            "pull",
        );
        refused(&MINIMAL.replace("[graph]", "[exchange]\nkind = \"ews\"\n[graph]"), "[ews] section");
    }
}
