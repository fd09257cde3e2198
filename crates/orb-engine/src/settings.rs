//! **Tenant settings**: what one customer's sync needs besides its rooms and secrets — the Entra app
//! registration, the TOPdesk instance, the sync policy — as one typed document, parsed and validated at the
//! boundary ([`TenantSettings::from_toml`] / [`TenantSettings::from_json`]), stored as JSON in the store's
//! `tenant_settings` table, and turned into a [`TenantRuntime`] by [`build_runtime`].
//!
//! ## Invariants
//! - **No secret in the document.** The Graph credential (a client secret or a certificate) and the TOPdesk
//!   application password are tenant secrets ([`SECRET_GRAPH_CLIENT_SECRET`], [`SECRET_GRAPH_CERTIFICATE`],
//!   [`SECRET_TOPDESK_PASSWORD`]), sealed under the master key and handed to [`build_runtime`] already
//!   opened ([`TenantSecrets`]); the document is shown back to admins.
//! - **The TOPdesk URL is tenant data, so it is checked against the installation's address policy**
//!   ([`orb_topdesk::address`]): when settings are saved ([`check_topdesk_url`]: resolved, and probed for
//!   a redirect) and again whenever [`build_runtime`] builds the tenant's runtime from stored settings
//!   (resolved; the client then resolves through the policy at every connection).
//! - Unknown keys are errors that name the key (`deny_unknown_fields`), so a typo never silently falls back
//!   to a default; every value is checked before anything is stored ([`TenantSettings::validate`]).
//! - Nothing here reads the clock or the environment.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::exchange::{EwsExchange, Exchange, ExchangeKind, GraphExchange};
use chrono::Duration;
use orb_core::{
    CancellationPolicy, Clock, ConflictPolicy, EmailAddress, FallbackPerson, MailTemplate, MassDeletionGuard,
    Mode, Policy, Retention, RoomMap, RoomMapping, SubjectPolicy, TenantId, TimeZoneName, TopdeskRefusal,
};
use orb_graph::{AppRegistration, CertificateCredential, ClientOptions, Credential, GraphClient, JwksCache};
use orb_store::Room;
use orb_topdesk::{AddressPolicy, Reason, TopdeskClient, TopdeskConfig};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::Url;

use crate::clouds::Clouds;
use crate::runtime::TenantRuntime;

mod exchange;

pub use exchange::{EwsAuth, EwsNotifications, EwsSettings, ExchangeSettings, GraphSettings};

/// Name of the tenant secret holding the Graph app registration's client secret.
pub const SECRET_GRAPH_CLIENT_SECRET: &str = "graph.client_secret";
/// Name of the tenant secret holding the app registration's certificate credential: a PEM bundle of the
/// PKCS#8 private key and the X.509 certificate uploaded to the app (checked when set). When present it
/// is used instead of the client secret.
pub const SECRET_GRAPH_CERTIFICATE: &str = "graph.certificate";
/// Name of the tenant secret holding the EWS service account's password (`[ews] auth = "ntlm"` or
/// `"basic"`).
pub const SECRET_EWS_PASSWORD: &str = "ews.password";
/// Name of the tenant secret holding the OAuth bearer token for EWS (`[ews] auth = "bearer"`, hybrid modern
/// authentication).
pub const SECRET_EWS_TOKEN: &str = "ews.token";
/// Name of the tenant secret holding the TOPdesk operator's application password.
pub const SECRET_TOPDESK_PASSWORD: &str = "topdesk.app_password";

/// A tenant's settings document (see the module docs). The TOML form an admin writes:
///
/// ```toml
/// [exchange]
/// kind = "graph"              # or "ews" (Exchange Server on-premises: an [ews] section instead of [graph])
///
/// [graph]
/// tenant_id = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d"   # the Entra directory (tenant) id, a GUID
/// client_id = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
/// mail_sender = "orb@contoso.com"                       # mailbox ORB's mails are sent from
/// cloud = "global"                                     # or usgov-l4, usgov-dod, china
///
/// [topdesk]
/// url = "https://contoso.topdesk.net"
/// username = "orb-api"
/// link_type = 7                                         # the external-link type reserved for ORB
///
/// [sync]
/// mode = "organizer"          # or "room-only"
/// subject = "keep"            # "keep" | "hide" | "drop"
/// time_zone = "Europe/Amsterdam"
///
/// # For kind = "ews":
/// # [ews]
/// # url = "https://mail.contoso.com/EWS/Exchange.asmx"
/// # username = "CONTOSO\\svc-orb"   # the service account with ApplicationImpersonation
/// # auth = "ntlm"                   # recommended on-premises (Windows authentication); or "basic"
/// #                                 # (the default when absent) or "bearer"; the secret is
/// #                                 # ews.password (ntlm, basic) or ews.token (bearer)
/// # mail_sender = "orb@contoso.com" # inside the impersonation scope
/// # notifications = "push"          # or "streaming" (outbound only: Exchange need not reach ORB)
///
/// [retention]                 # optional; these are the defaults
/// jobs_hours = 24             # finished jobs and processed inbox items
/// bookings_days = 90          # records and timelines after the booking ended; dead jobs
/// audit_days = 400            # audit rows
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Which protocol reaches the tenant's Exchange.
    #[serde(default)]
    pub exchange: ExchangeSettings,
    /// Exchange Online through Microsoft Graph (`exchange.kind = "graph"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSettings>,
    /// Exchange Server on-premises through EWS (`exchange.kind = "ews"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ews: Option<EwsSettings>,
    /// TOPdesk.
    pub topdesk: TopdeskSettings,
    /// The sync policy.
    #[serde(default)]
    pub sync: SyncSettings,
    /// How long stored data is kept.
    #[serde(default)]
    pub retention: RetentionSettings,
    /// The admin portal: second factor, hidden fields, allow-lists, single sign-on.
    #[serde(default)]
    pub portal: PortalSettings,
}

/// `[portal]`: how the tenant's users reach the admin portal and what they see. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSettings {
    /// Every user must use a second factor (TOTP); default on.
    #[serde(default = "default_true")]
    pub mfa_required: bool,
    /// Booking fields hidden from display for everyone, admins included (the portal's field keys).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub hidden_fields: BTreeSet<String>,
    /// Addresses (CIDR) the tenant's users may use the portal from; empty: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_cidrs: Vec<String>,
    /// Addresses (CIDR) the tenant's webhooks are accepted from; empty: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_allow_cidrs: Vec<String>,
    /// Single sign-on: the OpenID provider's issuer URL (with `sso_client_id`; the client secret is the
    /// tenant secret `portal.sso_client_secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_issuer: Option<Url>,
    /// Single sign-on: ORB's client id at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso_client_id: Option<String>,
}

fn default_true() -> bool {
    true
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self {
            mfa_required: true,
            hidden_fields: BTreeSet::new(),
            allow_cidrs: Vec::new(),
            webhook_allow_cidrs: Vec::new(),
            sso_issuer: None,
            sso_client_id: None,
        }
    }
}

/// `[retention]`: how long ORB keeps what it stored (see `docs/PRIVACY.md`). Every key is optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Hours finished jobs and processed inbox items are kept (1–720, default 24).
    #[serde(default = "default_jobs_hours")]
    pub jobs_hours: u32,
    /// Days a booking's record and timeline are kept after it ended, and a dead job after it died
    /// (1–3650, default 90).
    #[serde(default = "default_bookings_days")]
    pub bookings_days: u32,
    /// Days audit rows are kept (30–3650, default 400).
    #[serde(default = "default_audit_days")]
    pub audit_days: u32,
}

fn default_jobs_hours() -> u32 {
    Retention::DEFAULT_JOBS_HOURS
}
fn default_bookings_days() -> u32 {
    Retention::DEFAULT_BOOKINGS_DAYS
}
fn default_audit_days() -> u32 {
    Retention::DEFAULT_AUDIT_DAYS
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            jobs_hours: default_jobs_hours(),
            bookings_days: default_bookings_days(),
            audit_days: default_audit_days(),
        }
    }
}

impl RetentionSettings {
    /// The periods as orb-core's [`Retention`].
    pub fn retention(&self) -> Retention {
        Retention {
            jobs_hours: self.jobs_hours,
            bookings_days: self.bookings_days,
            audit_days: self.audit_days,
        }
    }
}

/// `[topdesk]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopdeskSettings {
    /// The TOPdesk instance, e.g. `https://contoso.topdesk.net`.
    pub url: Url,
    /// Login name of the API operator (its application password is the secret
    /// [`SECRET_TOPDESK_PASSWORD`]).
    pub username: String,
    /// The external-link type reserved for ORB (ORB's match id is the link's id).
    pub link_type: i64,
    /// Name of the cancellation reason ORB gives; default: TOPdesk's configured default reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
}

/// Subject privacy as written in the settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectSetting {
    /// Subjects are synced as they are.
    #[default]
    Keep,
    /// The room side shows [`SyncSettings::hidden_subject`].
    Hide,
    /// Subjects are never stored, logged or sent.
    Drop,
}

/// `[sync]`: the policy (DESIGN §4). Every key has the default of [`Policy::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// `organizer` (default) or `room-only`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// `keep` (default), `hide` or `drop`.
    #[serde(default)]
    pub subject: SubjectSetting,
    /// The text the room side shows when `subject = "hide"` (default `Booked`).
    #[serde(default = "default_hidden_subject")]
    pub hidden_subject: String,
    /// `exchange-wins` (default), `topdesk-wins` or `latest-wins`.
    #[serde(default = "default_conflict")]
    pub conflict: ConflictPolicy,
    /// `cancel-meeting` (default) or `remove-room`.
    #[serde(default = "default_cancellation")]
    pub cancellation: CancellationPolicy,
    /// Requester for organizers unknown to TOPdesk: the person's TOPdesk id and e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_person: Option<FallbackPerson>,
    /// The rooms' time zone (IANA; TOPdesk only knows UTC). Default `Europe/Amsterdam`.
    #[serde(default = "default_time_zone")]
    pub time_zone: TimeZoneName,
    /// How many days ahead bookings are synced (1–730, default 180).
    #[serde(default = "default_horizon_days")]
    pub horizon_days: u32,
    /// Mass-deletion guard: the largest share (percent) of a room's future bookings one sweep may cancel.
    #[serde(default = "default_guard_percent")]
    pub mass_deletion_percent: u8,
    /// Mass-deletion guard: rooms with at most this many future bookings are not guarded.
    #[serde(default = "default_guard_min")]
    pub mass_deletion_min_bookings: u32,
    /// Mails ORB sends to users (default: all of them).
    #[serde(default = "default_mails")]
    pub mails: BTreeSet<MailTemplate>,
    /// `mail` (default): a booking TOPdesk refuses is mailed to its organizer and stays failed;
    /// `release-room`: TOPdesk is dominant, the room is released in Outlook and the organizer told.
    #[serde(default)]
    pub topdesk_refusal: TopdeskRefusal,
}

fn default_mode() -> Mode {
    Mode::Organizer
}
fn default_hidden_subject() -> String {
    "Booked".to_owned()
}
fn default_conflict() -> ConflictPolicy {
    ConflictPolicy::ExchangeWins
}
fn default_cancellation() -> CancellationPolicy {
    CancellationPolicy::CancelMeeting
}
fn default_time_zone() -> TimeZoneName {
    TimeZoneName::parse("Europe/Amsterdam").expect("a zone chrono-tz knows")
}
fn default_horizon_days() -> u32 {
    180
}
fn default_guard_percent() -> u8 {
    30
}
fn default_guard_min() -> u32 {
    5
}
fn default_mails() -> BTreeSet<MailTemplate> {
    MailTemplate::ALL.iter().copied().collect()
}

/// `booking-refused` once covered every refusal; settings stored before it was split name only it, so it
/// still switches the refusal mails that came out of it (`change-not-carried-over`, `room-released`).
fn with_split_templates(mails: &BTreeSet<MailTemplate>) -> BTreeSet<MailTemplate> {
    let mut out = mails.clone();
    if mails.contains(&MailTemplate::BookingRefused) {
        out.insert(MailTemplate::ChangeNotCarriedOver);
        out.insert(MailTemplate::RoomReleased);
    }
    out
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            mode: default_mode(),
            subject: SubjectSetting::default(),
            hidden_subject: default_hidden_subject(),
            conflict: default_conflict(),
            cancellation: default_cancellation(),
            fallback_person: None,
            time_zone: default_time_zone(),
            horizon_days: default_horizon_days(),
            mass_deletion_percent: default_guard_percent(),
            mass_deletion_min_bookings: default_guard_min(),
            mails: default_mails(),
            topdesk_refusal: TopdeskRefusal::default(),
        }
    }
}

/// Why settings were refused. Every message names the key and says what is accepted.
#[derive(Debug, Error)]
pub enum SettingsError {
    /// The TOML or JSON does not parse, has an unknown key or a value of the wrong kind.
    #[error("the tenant settings are not valid: {0}; see `orb tenant settings --help` for the keys")]
    Parse(String),
    /// A value is out of range.
    #[error("invalid tenant setting {key}: {reason}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// The tenant has no settings yet.
    #[error(
        "tenant {tenant} has no settings yet: write them with `orb tenant settings --tenant NAME --file \
         settings.toml`"
    )]
    Missing {
        /// The tenant.
        tenant: TenantId,
    },
    /// The TOPdesk URL is refused by the installation's address policy, does not resolve, redirects or
    /// does not answer.
    #[error("{0}; nothing was stored")]
    TopdeskUrl(String),
    /// A client could not be built from the settings.
    #[error("tenant {tenant}: cannot set up the {side} client: {reason}")]
    Client {
        /// The tenant.
        tenant: TenantId,
        /// `Graph` or `TOPdesk`.
        side: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl SettingsError {
    /// Settings errors are fixed by an admin, never by trying again.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl From<exchange::Invalid> for SettingsError {
    fn from(e: exchange::Invalid) -> Self {
        SettingsError::Invalid { key: e.key, reason: e.reason }
    }
}

impl TenantSettings {
    /// Parses the TOML form an admin writes, and validates it.
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        let settings: Self =
            toml::from_str(text).map_err(|e| SettingsError::Parse(e.message().to_owned()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses the stored JSON form, and validates it.
    pub fn from_json(text: &str) -> Result<Self, SettingsError> {
        let settings: Self = serde_json::from_str(text).map_err(|e| SettingsError::Parse(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The stored JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("settings always serialise")
    }

    /// The TOML form (for showing to an admin; it holds no secret).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("settings always serialise")
    }

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason: &str| Err(SettingsError::Invalid { key, reason: reason.to_owned() });
        exchange::validate_sections(&self.exchange, self.graph.as_ref(), self.ews.as_ref())?;
        if !matches!(self.topdesk.url.scheme(), "https" | "http") {
            return invalid("topdesk.url", "use the https:// URL of the TOPdesk instance");
        }
        if self.topdesk.username.trim().is_empty() {
            return invalid("topdesk.username", "it is empty: give the API operator's login name");
        }
        if self.topdesk.link_type <= 0 {
            return invalid("topdesk.link_type", "use the positive external-link type reserved for ORB");
        }
        if !(1..=730).contains(&self.sync.horizon_days) {
            return invalid("sync.horizon_days", "use a number of days from 1 to 730");
        }
        if self.sync.mass_deletion_percent == 0 || self.sync.mass_deletion_percent > 100 {
            return invalid("sync.mass_deletion_percent", "use a percentage from 1 to 100");
        }
        if self.sync.subject == SubjectSetting::Hide && self.sync.hidden_subject.trim().is_empty() {
            return invalid("sync.hidden_subject", "it is empty: give the text the room side shows");
        }
        if !(1..=720).contains(&self.retention.jobs_hours) {
            return invalid("retention.jobs_hours", "use a number of hours from 1 to 720");
        }
        if !(1..=3650).contains(&self.retention.bookings_days) {
            return invalid("retention.bookings_days", "use a number of days from 1 to 3650");
        }
        if !(30..=3650).contains(&self.retention.audit_days) {
            return invalid("retention.audit_days", "use a number of days from 30 to 3650");
        }
        for (key, list) in [
            ("portal.allow_cidrs", &self.portal.allow_cidrs),
            ("portal.webhook_allow_cidrs", &self.portal.webhook_allow_cidrs),
        ] {
            orb_auth::IpAllowList::parse(list).map_err(|e| SettingsError::Invalid {
                key,
                reason: format!("{e}; write one CIDR range per entry, e.g. 192.0.2.0/24"),
            })?;
        }
        match (&self.portal.sso_issuer, &self.portal.sso_client_id) {
            (None, None) => {}
            (Some(issuer), Some(client)) => {
                if issuer.scheme() != "https"
                    && !matches!(issuer.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
                {
                    return invalid("portal.sso_issuer", "use the provider's https:// issuer URL");
                }
                if client.trim().is_empty() {
                    return invalid(
                        "portal.sso_client_id",
                        "it is empty: give ORB's client id at the provider",
                    );
                }
            }
            (Some(_), None) => {
                return invalid("portal.sso_client_id", "single sign-on needs the client id too");
            }
            (None, Some(_)) => {
                return invalid("portal.sso_issuer", "single sign-on needs the issuer URL too");
            }
        }
        Ok(())
    }

    /// The planner's policy.
    pub fn policy(&self) -> Policy {
        let s = &self.sync;
        Policy {
            mode: s.mode,
            subject: match s.subject {
                SubjectSetting::Keep => SubjectPolicy::Keep,
                SubjectSetting::Hide => SubjectPolicy::HideOnRoom { text: s.hidden_subject.clone() },
                SubjectSetting::Drop => SubjectPolicy::Drop,
            },
            conflict: s.conflict,
            cancellation: s.cancellation,
            fallback_person: s.fallback_person.clone(),
            mass_deletion: MassDeletionGuard {
                max_share_percent: s.mass_deletion_percent,
                min_bookings: s.mass_deletion_min_bookings,
            },
            horizon: Duration::days(i64::from(s.horizon_days)),
            mail: with_split_templates(&s.mails),
            topdesk_refusal: s.topdesk_refusal,
        }
    }
}

/// A tenant's opened secrets, for [`build_runtime`]. `Debug` shows no value. A Graph tenant needs one of
/// the Graph credentials (the certificate wins when both are), an EWS tenant the one its `auth` names.
pub struct TenantSecrets {
    /// [`SECRET_GRAPH_CLIENT_SECRET`].
    pub graph_client_secret: Option<SecretString>,
    /// [`SECRET_GRAPH_CERTIFICATE`] (the PEM bundle).
    pub graph_certificate: Option<SecretString>,
    /// [`SECRET_EWS_PASSWORD`].
    pub ews_password: Option<SecretString>,
    /// [`SECRET_EWS_TOKEN`].
    pub ews_token: Option<SecretString>,
    /// [`SECRET_TOPDESK_PASSWORD`].
    pub topdesk_password: SecretString,
}

impl TenantSecrets {
    /// The names of every tenant secret the sync uses.
    pub const NAMES: [&str; 5] = [
        SECRET_GRAPH_CLIENT_SECRET,
        SECRET_GRAPH_CERTIFICATE,
        SECRET_EWS_PASSWORD,
        SECRET_EWS_TOKEN,
        SECRET_TOPDESK_PASSWORD,
    ];
}

impl TenantSettings {
    /// The secret (or choice of secrets) these settings need that `have` does not hold.
    pub fn missing_secret(&self, have: impl Fn(&str) -> bool) -> Option<String> {
        if !have(SECRET_TOPDESK_PASSWORD) {
            return Some(SECRET_TOPDESK_PASSWORD.to_owned());
        }
        match self.exchange.kind {
            ExchangeKind::Graph => (!have(SECRET_GRAPH_CLIENT_SECRET) && !have(SECRET_GRAPH_CERTIFICATE))
                .then(|| format!("{SECRET_GRAPH_CERTIFICATE} (or {SECRET_GRAPH_CLIENT_SECRET})")),
            ExchangeKind::Ews => {
                let needed = match self.ews.as_ref().map(|e| e.auth) {
                    Some(EwsAuth::Bearer) => SECRET_EWS_TOKEN,
                    _ => SECRET_EWS_PASSWORD,
                };
                (!have(needed)).then(|| needed.to_owned())
            }
        }
    }
}

impl fmt::Debug for TenantSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantSecrets([REDACTED])")
    }
}

/// What [`build_runtime`] needs from the installation (not the tenant).
#[derive(Debug, Clone)]
pub struct InstallationUrls {
    /// ORB's public base URL, where Graph posts notifications (`None`: subscriptions cannot be made).
    pub notification_base_url: Option<String>,
    /// The admin portal's base URL (links in mails).
    pub portal_base_url: String,
    /// Where tenants' TOPdesk URLs may point, and extra trust roots.
    pub topdesk: TopdeskOutbound,
}

/// The installation's rules for requests to tenants' TOPdesk instances (`[topdesk]` in ORB's
/// configuration). The default is the strict policy with no extra roots.
#[derive(Debug, Clone, Default)]
pub struct TopdeskOutbound {
    /// `allow_cidrs` and `allow_http`.
    pub addresses: AddressPolicy,
    /// The certificates of `ca_file` (DER), trusted besides the built-in roots.
    pub extra_roots: Vec<Vec<u8>>,
}

/// The save-time check of a tenant's TOPdesk URL: the address policy, with the host name resolved (a
/// name that does not resolve is refused: it cannot be checked), then one probe without credentials that
/// refuses a redirect or no answer ([`AddressPolicy::probe`]).
pub async fn check_topdesk_url(
    settings: &TenantSettings,
    outbound: &TopdeskOutbound,
    timeout: StdDuration,
) -> Result<(), SettingsError> {
    let url = &settings.topdesk.url;
    outbound.addresses.resolve_and_check(url).await.map_err(|e| SettingsError::TopdeskUrl(e.to_string()))?;
    outbound
        .addresses
        .probe(url, &outbound.extra_roots, timeout)
        .await
        .map_err(|e| SettingsError::TopdeskUrl(e.to_string()))
}

/// The Graph credential of `secrets`: the certificate when set (checked again: stored secrets are
/// re-checked at every build), else the client secret.
fn graph_credential(tenant: TenantId, secrets: &mut TenantSecrets) -> Result<Credential, SettingsError> {
    use secrecy::ExposeSecret as _;
    if let Some(pem) = secrets.graph_certificate.take() {
        let cert = CertificateCredential::from_pem(pem.expose_secret().as_bytes()).map_err(|e| {
            SettingsError::Client {
                tenant,
                side: "Graph",
                reason: format!("the stored secret {SECRET_GRAPH_CERTIFICATE} is not usable: {e}"),
            }
        })?;
        return Ok(Credential::Certificate(cert));
    }
    match secrets.graph_client_secret.take() {
        Some(secret) => Ok(Credential::Secret(secret)),
        None => Err(SettingsError::Client {
            tenant,
            side: "Graph",
            reason: format!(
                "it has no Graph credential: set {SECRET_GRAPH_CERTIFICATE} or {SECRET_GRAPH_CLIENT_SECRET} \
                 with `orb secret set`"
            ),
        }),
    }
}

/// Client limits the installation may tune (tests shorten them).
#[derive(Debug, Clone, Default)]
pub struct ClientTuning {
    /// EWS: allow credentials over plain `http://` (the emulator, tests and the demo only).
    pub ews_allow_plain_http: bool,
    /// EWS: extra trusted CA certificates (PEM) for on-premises Exchange certificates from an internal CA.
    pub ews_extra_roots_pem: Vec<Vec<u8>>,
    /// Graph client options; `None` = the defaults.
    pub graph: Option<ClientOptions>,
    /// TOPdesk retry policy; `None` = the defaults.
    pub topdesk_retry: Option<orb_topdesk::RetryPolicy>,
    /// TOPdesk request timeout; `None` = the default.
    pub topdesk_timeout: Option<StdDuration>,
}

/// What reaches a tenant's Exchange.
struct ExchangeParts {
    exchange: Arc<dyn Exchange>,
    graph: Option<Arc<GraphClient>>,
    jwks: Option<Arc<JwksCache>>,
    mail_sender: EmailAddress,
}

fn graph_exchange(
    tenant: TenantId,
    settings: &TenantSettings,
    graph: &GraphSettings,
    secrets: &mut TenantSecrets,
    clock: Arc<dyn Clock>,
    tuning: &ClientTuning,
    clouds: &Clouds,
) -> Result<ExchangeParts, SettingsError> {
    let cloud_err = |reason: String| SettingsError::Invalid { key: "graph.cloud", reason };
    let endpoints = clouds.endpoints(&graph.cloud).map_err(cloud_err)?;
    let jwks = clouds.jwks(&graph.cloud).map_err(cloud_err)?;
    let app = AppRegistration {
        tenant: graph.tenant_id.clone(),
        client_id: graph.client_id.clone(),
        credential: Arc::new(graph_credential(tenant, secrets)?),
    };
    let mut options = tuning.graph.clone().unwrap_or_default();
    // Under `drop` the subject is not even asked for.
    options.read_subject = !matches!(settings.policy().subject, orb_core::SubjectPolicy::Drop);
    let client = GraphClient::new(endpoints.client_endpoints(), app, clock, options)
        .map(Arc::new)
        .map_err(|e| SettingsError::Client { tenant, side: "Graph", reason: e.to_string() })?;
    Ok(ExchangeParts {
        exchange: Arc::new(GraphExchange::new(client.clone())),
        graph: Some(client),
        jwks: Some(jwks),
        mail_sender: graph.mail_sender.clone(),
    })
}

fn ews_exchange(
    tenant: TenantId,
    settings: &TenantSettings,
    ews: &EwsSettings,
    secrets: &mut TenantSecrets,
    tuning: &ClientTuning,
) -> Result<ExchangeParts, SettingsError> {
    let err = |reason: String| SettingsError::Client { tenant, side: "EWS", reason };
    let auth = match ews.auth {
        EwsAuth::Basic => orb_ews::Auth::Basic {
            username: ews.username.clone(),
            password: secrets
                .ews_password
                .take()
                .ok_or_else(|| err(format!("set {SECRET_EWS_PASSWORD} with `orb secret set`")))?,
        },
        EwsAuth::Ntlm => orb_ews::Auth::Ntlm {
            domain: None,
            username: ews.username.clone(),
            password: secrets
                .ews_password
                .take()
                .ok_or_else(|| err(format!("set {SECRET_EWS_PASSWORD} with `orb secret set`")))?,
        },
        EwsAuth::Bearer => orb_ews::Auth::Bearer(
            secrets
                .ews_token
                .take()
                .ok_or_else(|| err(format!("set {SECRET_EWS_TOKEN} with `orb secret set`")))?,
        ),
    };
    let mut config = orb_ews::EwsConfig::new(ews.url.clone(), auth);
    config.allow_plain_http = tuning.ews_allow_plain_http;
    config.extra_roots_pem = tuning.ews_extra_roots_pem.clone();
    // Under `drop` the subject is not even asked for.
    config.shape.subject = !matches!(settings.policy().subject, orb_core::SubjectPolicy::Drop);
    let client = orb_ews::EwsClient::new(config).map_err(|e| err(e.to_string()))?;
    Ok(ExchangeParts {
        exchange: Arc::new(
            EwsExchange::new(client, ews.mail_sender.clone())
                .streaming(ews.notifications == EwsNotifications::Streaming),
        ),
        graph: None,
        jwks: None,
        mail_sender: ews.mail_sender.clone(),
    })
}

/// Builds a tenant's runtime: the policy and room map from its settings and rooms (enabled and disabled:
/// the room map knows which are synced), and its Graph and TOPdesk clients. The stored TOPdesk URL is
/// checked against the installation's address policy again, its host name resolved: a refused address
/// refuses the build; a name that does not resolve right now does not (DNS may be down for a moment), since
/// the TOPdesk client resolves through the policy at every connection anyway.
#[expect(
    clippy::too_many_arguments,
    reason = "each is a separate installation input; a struct of them is the portal issue's settings split"
)]
pub async fn build_runtime(
    tenant: TenantId,
    settings: &TenantSettings,
    mut secrets: TenantSecrets,
    rooms: &[Room],
    clock: Arc<dyn Clock>,
    urls: &InstallationUrls,
    tuning: &ClientTuning,
    clouds: &Clouds,
) -> Result<TenantRuntime, SettingsError> {
    let client_err = |side, reason: String| SettingsError::Client { tenant, side, reason };
    let topdesk_url = &settings.topdesk.url;
    match urls.topdesk.addresses.resolve_and_check(topdesk_url).await {
        Ok(()) => {}
        Err(e) if e.is_unresolved() => {
            tracing::warn!(%tenant, error = %e, "TOPdesk's host does not resolve now")
        }
        Err(e) => return Err(SettingsError::Client { tenant, side: "TOPdesk", reason: e.to_string() }),
    }
    let exchange = match (settings.exchange.kind, &settings.graph, &settings.ews) {
        (ExchangeKind::Graph, Some(graph), _) => {
            graph_exchange(tenant, settings, graph, &mut secrets, clock.clone(), tuning, clouds)?
        }
        (ExchangeKind::Ews, _, Some(ews)) => ews_exchange(tenant, settings, ews, &mut secrets, tuning)?,
        (kind, _, _) => {
            return Err(SettingsError::Invalid {
                key: "exchange.kind",
                reason: format!("it is {kind} but that section is missing"),
            });
        }
    };
    let mut config = TopdeskConfig::new(
        settings.topdesk.url.clone(),
        settings.topdesk.username.clone(),
        secrets.topdesk_password,
        clock,
    );
    if let Some(retry) = tuning.topdesk_retry {
        config.retry = retry;
    }
    if let Some(timeout) = tuning.topdesk_timeout {
        config.request_timeout = timeout;
    }
    config.address_policy = Some(urls.topdesk.addresses.clone());
    config.extra_roots = urls.topdesk.extra_roots.clone();
    let topdesk = TopdeskClient::new(config).map_err(|e| client_err("TOPdesk", e.to_string()))?;
    let rooms = RoomMap::new(
        rooms
            .iter()
            .map(|r| RoomMapping {
                id: r.id,
                mailbox: r.mailbox.clone(),
                location: r.topdesk_location_id.clone(),
                time_zone: settings.sync.time_zone.clone(),
                enabled: r.enabled,
                name: r.display_name.clone(),
            })
            .collect(),
    );
    Ok(TenantRuntime {
        jwks: exchange.jwks,
        tenant_id: tenant,
        policy: settings.policy(),
        rooms,
        exchange: exchange.exchange,
        graph: exchange.graph,
        topdesk,
        link_type: settings.topdesk.link_type,
        mail_sender: exchange.mail_sender,
        portal_base_url: urls.portal_base_url.clone(),
        cancel_reason: settings
            .topdesk
            .cancel_reason
            .as_ref()
            .map_or(Reason::Default, |name| Reason::Name(name.clone())),
        notification_base_url: urls.notification_base_url.clone(),
        persons: crate::runtime::PersonCache::default(),
        writes: Arc::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const MINIMAL: &str = r#"
[graph]
tenant_id = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d"
client_id = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
mail_sender = "ORB@Contoso.com"

[topdesk]
url = "https://contoso.topdesk.net"
username = "orb-api"
link_type = 7
"#;

    /// Parses `extra` appended to the minimal document; `Ok` carries the policy, `Err` the message.
    fn check(extra: &str, expected: Result<fn(&TenantSettings), &str>) {
        let text = format!("{MINIMAL}{extra}");
        match (TenantSettings::from_toml(&text), expected) {
            (Ok(s), Ok(assert)) => {
                assert(&s);
                // The stored form round-trips exactly.
                assert_eq!(TenantSettings::from_json(&s.to_json()).unwrap(), s);
                assert_eq!(TenantSettings::from_toml(&s.to_toml()).unwrap(), s);
            }
            (Err(e), Err(needle)) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
            }
            (Ok(s), Err(needle)) => panic!("accepted {s:?}, expected an error mentioning {needle:?}"),
            (Err(e), Ok(_)) => panic!("refused: {e}"),
        }
    }

    #[test]
    fn defaults_are_the_policy_defaults() {
        check(
            "",
            Ok(|s| {
                let mut expected = Policy::new();
                expected.horizon = Duration::days(180);
                assert_eq!(s.policy(), expected);
                assert_eq!(s.graph.as_ref().unwrap().mail_sender.as_str(), "orb@contoso.com");
                assert_eq!(
                    s.graph.as_ref().unwrap().cloud,
                    "global",
                    "Microsoft's global cloud unless the tenant names another"
                );
            }),
        );
    }

    #[test]
    fn every_policy_key_is_read() {
        check(
            r#"
[sync]
mode = "room-only"
subject = "hide"
hidden_subject = "Gereserveerd"
conflict = "latest-wins"
cancellation = "remove-room"
time_zone = "America/New_York"
horizon_days = 30
mass_deletion_percent = 50
mass_deletion_min_bookings = 2
mails = ["room-declined"]
fallback_person = { person_id = "p-1", email = "desk@contoso.com" }
"#,
            Ok(|s| {
                let p = s.policy();
                assert_eq!(p.mode, Mode::RoomOnly);
                assert_eq!(p.subject, SubjectPolicy::HideOnRoom { text: "Gereserveerd".into() });
                assert_eq!(p.conflict, ConflictPolicy::LatestWins);
                assert_eq!(p.cancellation, CancellationPolicy::RemoveRoom);
                assert_eq!(p.horizon, Duration::days(30));
                assert_eq!(p.mass_deletion, MassDeletionGuard { max_share_percent: 50, min_bookings: 2 });
                assert_eq!(p.mail, [MailTemplate::RoomDeclined].into_iter().collect());
                assert_eq!(p.fallback_person.unwrap().email.as_str(), "desk@contoso.com");
                assert_eq!(s.sync.time_zone.as_str(), "America/New_York");
            }),
        );
        check("[sync]\nsubject = \"drop\"\n", Ok(|s| assert_eq!(s.policy().subject, SubjectPolicy::Drop)));
    }

    #[test]
    fn retention_has_defaults_and_every_key_is_read() {
        check("", Ok(|s| assert_eq!(s.retention.retention(), Retention::default())));
        check(
            "[retention]\njobs_hours = 2\nbookings_days = 30\naudit_days = 365\n",
            Ok(|s| {
                let r = s.retention.retention();
                assert_eq!((r.jobs_hours, r.bookings_days, r.audit_days), (2, 30, 365));
            }),
        );
        check("[retention]\nbookings_days = 7\n", Ok(|s| assert_eq!(s.retention.jobs_hours, 24)));
    }

    #[test]
    fn bad_settings_are_refused_with_the_key_named() {
        check("[sync]\nmodee = \"organizer\"\n", Err("modee"));
        check("[sync]\nmode = \"everywhere\"\n", Err("everywhere"));
        check("[sync]\nhorizon_days = 0\n", Err("sync.horizon_days"));
        check("[sync]\nhorizon_days = 1000\n", Err("sync.horizon_days"));
        check("[sync]\ntime_zone = \"Mars/Olympus\"\n", Err("Mars/Olympus"));
        check("[sync]\nmass_deletion_percent = 0\n", Err("sync.mass_deletion_percent"));
        check("[sync]\nsubject = \"hide\"\nhidden_subject = \" \"\n", Err("sync.hidden_subject"));
        check("[sync]\nmails = [\"spam\"]\n", Err("spam"));
        check("[graph2]\nx = 1\n", Err("graph2"));
        check("[retention]\njobs_hours = 0\n", Err("retention.jobs_hours"));
        check("[retention]\njobs_hours = 721\n", Err("retention.jobs_hours"));
        check("[retention]\nbookings_days = 0\n", Err("retention.bookings_days"));
        check("[retention]\nbookings_days = 4000\n", Err("retention.bookings_days"));
        check("[retention]\naudit_days = 29\n", Err("retention.audit_days"));
        check("[retention]\naudit_days = -1\n", Err("-1"));
        check("[retention]\nkeep_forever = true\n", Err("keep_forever"));
        let bad_link = MINIMAL.replace("link_type = 7", "link_type = 0");
        assert!(TenantSettings::from_toml(&bad_link).unwrap_err().to_string().contains("topdesk.link_type"));
        let ftp = MINIMAL.replace("https://contoso.topdesk.net", "ftp://contoso.topdesk.net");
        assert!(TenantSettings::from_toml(&ftp).unwrap_err().to_string().contains("topdesk.url"));
    }

    fn with_url(url: &str) -> TenantSettings {
        TenantSettings::from_toml(&MINIMAL.replace("https://contoso.topdesk.net", url)).unwrap()
    }

    fn secrets(client_secret: bool, certificate: Option<String>) -> TenantSecrets {
        TenantSecrets {
            graph_client_secret: client_secret.then(|| SecretString::from("gcs-value")),
            graph_certificate: certificate.map(SecretString::from),
            ews_password: None,
            ews_token: None,
            topdesk_password: SecretString::from("tdp-value"),
        }
    }

    pub(super) const EWS: &str = r#"
[exchange]
kind = "ews"

[ews]
url = "https://mail.fabrikam.com/EWS/Exchange.asmx"
username = 'FABRIKAM\svc-orb'
mail_sender = "orb@fabrikam.com"

[topdesk]
url = "https://fabrikam.topdesk.net"
username = "orb-api"
link_type = 7
"#;

    #[test]
    fn each_kind_names_the_secret_it_lacks() {
        let graph = TenantSettings::from_toml(MINIMAL).unwrap();
        let ews = TenantSettings::from_toml(EWS).unwrap();
        let bearer = TenantSettings::from_toml(
            &EWS.replace("username = 'FABRIKAM", "auth = \"bearer\"\nusername = 'FABRIKAM"),
        )
        .unwrap();
        let having = |names: &'static [&'static str]| move |n: &str| names.contains(&n);
        assert_eq!(graph.missing_secret(having(&[])).as_deref(), Some(SECRET_TOPDESK_PASSWORD));
        assert!(
            graph
                .missing_secret(having(&[SECRET_TOPDESK_PASSWORD]))
                .unwrap()
                .contains(SECRET_GRAPH_CLIENT_SECRET)
        );
        assert_eq!(graph.missing_secret(having(&[SECRET_TOPDESK_PASSWORD, SECRET_GRAPH_CERTIFICATE])), None);
        assert_eq!(
            ews.missing_secret(having(&[SECRET_TOPDESK_PASSWORD])).as_deref(),
            Some(SECRET_EWS_PASSWORD)
        );
        assert_eq!(ews.missing_secret(having(&[SECRET_TOPDESK_PASSWORD, SECRET_EWS_PASSWORD])), None);
        assert_eq!(
            bearer.missing_secret(having(&[SECRET_TOPDESK_PASSWORD, SECRET_EWS_PASSWORD])).as_deref(),
            Some(SECRET_EWS_TOKEN),
            "a bearer tenant needs its token, not a password"
        );
        let ntlm = TenantSettings::from_toml(
            &EWS.replace("username = 'FABRIKAM", "auth = \"ntlm\"\nusername = 'FABRIKAM"),
        )
        .unwrap();
        assert_eq!(
            ntlm.missing_secret(having(&[SECRET_TOPDESK_PASSWORD, SECRET_EWS_TOKEN])).as_deref(),
            Some(SECRET_EWS_PASSWORD),
            "an NTLM tenant needs the password"
        );
    }

    #[tokio::test]
    async fn an_ews_tenant_reaches_exchange_through_ews_and_needs_tls_for_its_password() {
        let settings =
            TenantSettings::from_toml(&EWS.replace("https://fabrikam.topdesk.net", "http://127.0.0.1:9"))
                .unwrap();
        let local = TopdeskOutbound {
            addresses: AddressPolicy::new(AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap(), true),
            extra_roots: Vec::new(),
        };
        let clock: Arc<dyn Clock> = Arc::new(orb_core::FixedClock::new(chrono::Utc::now()));
        let clouds = Clouds::new(None, clock.clone());
        let urls = InstallationUrls {
            notification_base_url: None,
            portal_base_url: "https://orb.example.com".to_owned(),
            topdesk: local,
        };
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(1));
        let with_password =
            || TenantSecrets { ews_password: Some(SecretString::from("svc-pass")), ..secrets(false, None) };
        let built = build_runtime(
            tenant,
            &settings,
            with_password(),
            &[],
            clock.clone(),
            &urls,
            &ClientTuning::default(),
            &clouds,
        )
        .await
        .unwrap();
        assert_eq!(built.exchange.kind(), ExchangeKind::Ews);
        assert!(built.graph.is_none() && built.jwks.is_none(), "no Graph parts for an EWS tenant");
        assert_eq!(built.mail_sender.as_str(), "orb@fabrikam.com");
        assert!(built.exchange.as_ews().is_some_and(|e| !e.streams()), "push unless streaming is chosen");
        let err = build_runtime(
            tenant,
            &settings,
            secrets(false, None),
            &[],
            clock.clone(),
            &urls,
            &ClientTuning::default(),
            &clouds,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains(SECRET_EWS_PASSWORD), "{err}");
        let plain = TenantSettings::from_toml(
            &EWS.replace("https://fabrikam.topdesk.net", "http://127.0.0.1:9")
                .replace("https://mail", "http://mail"),
        )
        .unwrap();
        let err = build_runtime(
            tenant,
            &plain,
            with_password(),
            &[],
            clock,
            &urls,
            &ClientTuning::default(),
            &clouds,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("EWS") && err.contains("http"),
            "a password is never sent over plain http: {err}"
        );
    }

    /// `build_runtime` with `outbound`; `Err` carries the message.
    async fn build(
        settings: &TenantSettings,
        secrets: TenantSecrets,
        outbound: TopdeskOutbound,
    ) -> Result<(), String> {
        let clock: Arc<dyn Clock> = Arc::new(orb_core::FixedClock::new(chrono::Utc::now()));
        let clouds = Clouds::new(None, clock.clone());
        let urls = InstallationUrls {
            notification_base_url: None,
            portal_base_url: "https://orb.example.com".to_owned(),
            topdesk: outbound,
        };
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(1));
        build_runtime(tenant, settings, secrets, &[], clock, &urls, &ClientTuning::default(), &clouds)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn build_runtime_checks_the_stored_topdesk_url_again() {
        let strict = TopdeskOutbound::default();
        let local = TopdeskOutbound {
            addresses: AddressPolicy::new(AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap(), true),
            extra_roots: Vec::new(),
        };
        // (stored URL, installation, expected: Ok or a needle of the error)
        let cases: [(&str, &TopdeskOutbound, Result<(), &str>); 6] = [
            ("https://169.254.169.254", &strict, Err("cloud metadata")),
            ("http://127.0.0.1:9", &strict, Err("not an https:// URL")),
            ("https://localhost:9", &strict, Err("resolves to")),
            ("http://127.0.0.1:9", &local, Ok(())),
            ("https://[fd00:ec2::254]", &local, Err("cloud metadata")),
            // DNS may be down for a moment: the client resolves through the policy at every connection.
            ("https://no-such-host.invalid", &strict, Ok(())),
        ];
        for (url, outbound, expected) in cases {
            let got = build(&with_url(url), secrets(true, None), outbound.clone()).await;
            match (got, expected) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(needle)) => {
                    assert!(e.contains(needle) && e.contains("topdesk.url"), "{url}: {e}")
                }
                (got, _) => panic!("{url}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[tokio::test]
    async fn build_runtime_takes_the_certificate_or_the_client_secret_and_needs_one() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["orb.test".to_owned()]).unwrap().self_signed(&key).unwrap();
        let pem = format!("{}{}", key.serialize_pem(), cert.pem());
        let settings = with_url("https://8.8.8.8");
        let open = TopdeskOutbound::default;
        assert_eq!(build(&settings, secrets(false, Some(pem.clone())), open()).await, Ok(()));
        assert_eq!(build(&settings, secrets(true, Some(pem)), open()).await, Ok(()));
        assert_eq!(build(&settings, secrets(true, None), open()).await, Ok(()));
        let err = build(&settings, secrets(false, None), open()).await.unwrap_err();
        assert!(err.contains("no Graph credential") && err.contains("graph.certificate"), "{err}");
        let err = build(&settings, secrets(true, Some(cert.pem())), open()).await.unwrap_err();
        assert!(
            err.contains("graph.certificate is not usable"),
            "a broken stored bundle is not skipped: {err}"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = TenantSecrets {
            graph_client_secret: Some(SecretString::from("gcs-value")),
            graph_certificate: Some(SecretString::from("cert-value")),
            ews_password: Some(SecretString::from("ews-value")),
            ews_token: None,
            topdesk_password: SecretString::from("tdp-value"),
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("gcs-value")
                && !shown.contains("tdp-value")
                && !shown.contains("cert-value")
                && !shown.contains("ews-value"),
            "{shown}"
        );
    }
}
