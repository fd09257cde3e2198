//! What the portal needs from the rest of ORB that is not a store row: the tenant's portal policy (read from
//! its settings document), the settings form and its validation, sealing secrets under the master key,
//! talking to Graph and TOPdesk ("test connection", room suggestions) and running a sweep that approves held
//! deletions. The binary implements [`PortalBackend`] over the engine; orb-web stays free of it.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use orb_auth::IpAllowList;
use orb_core::{RoomId, Side, TenantId};
use orb_store::{NewAuditEntry, SealedTotp, UserId};
use secrecy::SecretString;
use serde::Serialize;
use thiserror::Error;
use url::Url;

/// A tenant's portal policy: the `[portal]` part of its settings.
#[derive(Debug, Clone)]
pub struct TenantPolicy {
    /// Every user of the tenant must use a second factor (TOTP); users without one enrol at their next
    /// login before they see anything.
    pub mfa_required: bool,
    /// Booking fields hidden from display for everyone, admins included (keys of
    /// [`crate::portal::view::BOOKING_FIELDS`]).
    pub hidden_fields: BTreeSet<String>,
    /// Addresses the tenant's users may use the portal and API from (empty: anywhere).
    pub portal_allow: IpAllowList,
    /// Addresses the tenant's webhooks are accepted from (empty: anywhere).
    pub webhook_allow: IpAllowList,
    /// Single sign-on through the tenant's OpenID provider, when configured.
    pub sso: Option<SsoSettings>,
    /// The tenant's time zone: times are shown in it.
    pub zone: chrono_tz::Tz,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        Self {
            mfa_required: true,
            hidden_fields: BTreeSet::new(),
            portal_allow: IpAllowList::default(),
            webhook_allow: IpAllowList::default(),
            sso: None,
            zone: chrono_tz::UTC,
        }
    }
}

/// A tenant's OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSettings {
    /// The issuer (discovery at `{issuer}/.well-known/openid-configuration`).
    pub issuer: Url,
    /// ORB's client id at the provider (its secret is the tenant secret `portal.sso_client_secret`).
    pub client_id: String,
}

/// One input of the settings form.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsField {
    /// The dotted key, e.g. `sync.subject`: the form field's name.
    pub key: String,
    /// What the admin reads.
    pub label: String,
    /// What the value means and what is accepted.
    pub help: String,
    /// How it is entered.
    pub kind: FieldKind,
    /// The current value, as text (lists: one item per line).
    pub value: String,
}

/// How a settings field is entered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case", tag = "type", content = "options")]
pub enum FieldKind {
    /// One line of text.
    Text,
    /// A whole number.
    Number,
    /// One of these values.
    Choice(Vec<String>),
    /// Any of these values (one per line in [`SettingsField::value`]).
    Multi(Vec<String>),
    /// Several lines (lists such as CIDR ranges, one per line).
    Lines,
    /// On or off (`true` / `false`).
    Toggle,
}

impl FieldKind {
    /// The kind's name, as the settings template tells inputs apart: `text`, `number`, `choice`, `multi`,
    /// `lines`, `toggle`.
    pub fn input(&self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::Choice(_) => "choice",
            Self::Multi(_) => "multi",
            Self::Lines => "lines",
            Self::Toggle => "toggle",
        }
    }

    /// The values to choose from (empty for free input).
    pub fn options(&self) -> &[String] {
        match self {
            Self::Choice(o) | Self::Multi(o) => o,
            _ => &[],
        }
    }
}

impl SettingsField {
    /// Whether one line of the value equals `option` (multi-choice fields).
    pub fn has_line(&self, option: &str) -> bool {
        self.value.lines().any(|l| l == option)
    }
}

/// A group of fields with a heading (`Graph`, `TOPdesk`, `Sync policy`, ...).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SettingsSection {
    /// The heading.
    pub title: String,
    /// Its fields.
    pub fields: Vec<SettingsField>,
}

/// A write-only secret the settings page offers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SecretField {
    /// The tenant secret's name, e.g. `graph.client_secret`.
    pub name: &'static str,
    /// What the admin reads.
    pub label: &'static str,
    /// What to paste.
    pub help: &'static str,
    /// Whether it is several lines (a PEM bundle).
    pub multiline: bool,
}

/// The answer of a "test connection".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionCheck {
    /// Whether the side answered as it should.
    pub ok: bool,
    /// What was tried and what came back, in words (never a secret).
    pub detail: String,
}

/// A proposed room mapping: an Exchange room and a TOPdesk location that look alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RoomSuggestion {
    /// The room mailbox (Graph Places).
    pub mailbox: String,
    /// Its display name in Exchange.
    pub exchange_name: String,
    /// The TOPdesk location id.
    pub topdesk_location_id: String,
    /// Its name in TOPdesk.
    pub topdesk_name: String,
    /// Why they were paired (same name, same e-mail, ...).
    pub reason: String,
}

/// Deletions a sweep held back because of the mass-deletion guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HeldDeletion {
    /// The room.
    #[schema(value_type = String)]
    pub room_id: RoomId,
    /// Its mailbox.
    pub mailbox: String,
    /// How many bookings the sweep would cancel.
    pub count: usize,
    /// When the guard last held them.
    #[schema(value_type = String, format = DateTime)]
    pub held_at: DateTime<Utc>,
}

/// Live state of a tenant's sync the store does not hold as rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TenantStatus {
    /// When the last TOPdesk poll finished.
    pub last_topdesk_poll: Option<DateTime<Utc>>,
    /// Sides whose work is paused (a 401/403 from it), with the reason.
    pub paused: Vec<String>,
    /// Whether the tenant has settings at all (a new tenant has none until an admin saves them).
    pub configured: bool,
}

/// Why the backend could not do what the portal asked.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The admin's input is wrong; the message says which field and what is accepted.
    #[error("{0}")]
    Invalid(String),
    /// Nothing to act on (no held deletions in that room, no settings yet).
    #[error("{0}")]
    NotFound(String),
    /// Something failed that the admin cannot fix by changing input (store, crypto, network).
    #[error("{message}")]
    Failed {
        /// What failed and what to do.
        message: String,
    },
}

impl BackendError {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }
}

/// Name of the tenant secret holding ORB's client secret at the tenant's OpenID provider.
pub const SECRET_SSO_CLIENT: &str = "portal.sso_client_secret";

/// The rest of ORB, as the portal sees it (see the module docs).
#[async_trait]
pub trait PortalBackend: Send + Sync + std::fmt::Debug + 'static {
    /// The tenant's portal policy (defaults when it has no settings yet).
    async fn policy(&self, tenant: TenantId) -> Result<TenantPolicy, BackendError>;
    /// Live state for the dashboard.
    async fn status(&self, tenant: TenantId) -> Result<TenantStatus, BackendError>;
    /// The settings form with the current values (defaults when the tenant has none yet).
    async fn settings_form(&self, tenant: TenantId) -> Result<Vec<SettingsSection>, BackendError>;
    /// Validates and stores new values for the form's keys (keys not given keep their value), with
    /// `audit`. [`BackendError::Invalid`] names the field; nothing is stored then.
    async fn save_settings(
        &self,
        tenant: TenantId,
        values: &BTreeMap<String, String>,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError>;
    /// Stores hidden booking fields (a subset of the field keys), with `audit`.
    async fn save_hidden_fields(
        &self,
        tenant: TenantId,
        fields: &BTreeSet<String>,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError>;
    /// The secrets the settings page offers (write-only).
    fn secret_fields(&self) -> Vec<SecretField>;
    /// Checks, seals and stores a secret, with `audit`; the value is never shown again.
    async fn set_secret(
        &self,
        tenant: TenantId,
        name: &str,
        value: SecretString,
        audit: &NewAuditEntry,
    ) -> Result<(), BackendError>;
    /// Tries the side with the stored settings and secrets.
    async fn test_connection(&self, tenant: TenantId, side: Side) -> ConnectionCheck;
    /// Exchange rooms and TOPdesk locations not mapped yet, paired where they look alike.
    async fn room_suggestions(&self, tenant: TenantId) -> Result<Vec<RoomSuggestion>, BackendError>;
    /// Deletions held by the mass-deletion guard, per room.
    async fn held_deletions(&self, tenant: TenantId) -> Result<Vec<HeldDeletion>, BackendError>;
    /// Carries out the held deletions of a room (a sweep of it with the guard lifted), with `audit`;
    /// returns what the sweep did, in words.
    async fn approve_deletions(
        &self,
        tenant: TenantId,
        room: RoomId,
        audit: &NewAuditEntry,
    ) -> Result<String, BackendError>;
    /// Refuses the held deletions of a room: the bookings gone on one side are written to it again, with
    /// `audit`; returns what was done, in words.
    async fn reject_deletions(
        &self,
        tenant: TenantId,
        room: RoomId,
        audit: &NewAuditEntry,
    ) -> Result<String, BackendError>;
    /// Seals a user's TOTP secret under the master key (bound to the user).
    fn seal_totp(&self, user: UserId, secret: &[u8]) -> Result<SealedTotp, BackendError>;
    /// Opens a sealed TOTP secret.
    fn open_totp(&self, user: UserId, sealed: &SealedTotp) -> Result<Vec<u8>, BackendError>;
    /// ORB's client secret at the tenant's OpenID provider, when set.
    async fn sso_client_secret(&self, tenant: TenantId) -> Result<Option<SecretString>, BackendError>;
}
