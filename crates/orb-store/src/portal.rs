//! Rows of the admin portal: users, their login sessions, recovery codes, login-failure counters, API
//! tokens, OpenID Connect login flows, and the audit search filter.
//!
//! The store only keeps these rows; deciding is the authentication layer's job (Argon2id hashing, TOTP
//! verification, the lockout policy). What the store guarantees is what must hold across processes: one
//! user per e-mail address, the role/tenant invariant ([`Role::Operator`] exactly when there is no
//! tenant), atomic one-time use (a TOTP step, a recovery code, an OIDC flow) and that disabling a user ends
//! its sessions and API tokens in the same transaction.
//!
//! Secrets never appear here in clear: passwords as PHC hash strings, TOTP secrets sealed by the caller,
//! session and API tokens, recovery codes and OIDC `state` values as hashes. `Debug` of every type that
//! carries one of them redacts it.
//!
//! Must not depend on: any crypto or authentication crate (the caller hashes and seals).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use orb_core::{EmailAddress, TenantId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A text form that is not one of a portal type's accepted values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} {input:?}; use one of: {expected}")]
pub struct PortalParseError {
    /// What was parsed, e.g. `role`.
    pub what: &'static str,
    /// The text given.
    pub input: String,
    /// The accepted values, comma-separated.
    pub expected: &'static str,
}

/// A portal user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = PortalParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse().map(Self).map_err(|_| PortalParseError {
            what: "user id",
            input: s.to_owned(),
            expected: "a whole number",
        })
    }
}

/// Portal roles (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the installation: every tenant, no tenant of its own.
    Operator,
    /// Manages one tenant (rooms, settings, users, tokens).
    TenantAdmin,
    /// Reads one tenant's state, changes nothing.
    TenantViewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Operator, Role::TenantAdmin, Role::TenantViewer];

    /// The stored and shown text: `operator`, `tenant-admin`, `tenant-viewer`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::TenantAdmin => "tenant-admin",
            Self::TenantViewer => "tenant-viewer",
        }
    }

    /// Whether the role may change things (operator, tenant admin).
    pub const fn can_write(self) -> bool {
        matches!(self, Self::Operator | Self::TenantAdmin)
    }

    /// Whether a user of this role must belong to a tenant (every role but [`Role::Operator`]).
    pub const fn needs_tenant(self) -> bool {
        !matches!(self, Self::Operator)
    }
}

/// Whether a change of a user's role or a disabling may leave the user's tenant without an enabled
/// tenant-admin (no one left to manage the tenant from the portal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminGuard {
    /// Refuse such a change with [`StoreError::LastAdmin`](crate::StoreError::LastAdmin): what a tenant
    /// administrator does in the portal or the API. The check and the write are one transaction, serialised
    /// per tenant, so two administrators demoting each other at the same moment cannot both succeed.
    KeepOne,
    /// Allow it: an operator (who manages tenants with `orb user` too).
    Off,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = PortalParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| PortalParseError {
            what: "role",
            input: s.to_owned(),
            expected: "operator, tenant-admin, tenant-viewer",
        })
    }
}

/// A sealed TOTP secret (sealed by the caller under the master key; this crate never sees it in clear).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedTotp {
    /// The sealed envelope.
    pub sealed: Vec<u8>,
    /// Id of the master key that sealed it.
    pub key_id: String,
}

impl fmt::Debug for SealedTotp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedTotp")
            .field("sealed_len", &self.sealed.len())
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// A portal user to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The tenant; `None` exactly when `role` is [`Role::Operator`].
    pub tenant_id: Option<TenantId>,
    /// Login name, unique across the installation.
    pub email: EmailAddress,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string; `None`: SSO only, or set later.
    pub password_hash: Option<String>,
    /// The password was made for them (an invitation, `orb user add`): they choose their own at the first
    /// login.
    pub password_temporary: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("tenant_id", &self.tenant_id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A stored portal user. Serialising leaves out the password hash, the sealed TOTP secret and the last
/// TOTP step.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// The tenant; `None` exactly when `role` is [`Role::Operator`].
    pub tenant_id: Option<TenantId>,
    /// Login name, unique across the installation.
    pub email: EmailAddress,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string; `None`: SSO only or not set yet. `Debug` redacts it.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// The password was set by someone else: the portal lets them do nothing but choose their own.
    pub password_temporary: bool,
    /// The TOTP secret, sealed; `None`: no second factor enrolled (or enrolment started and reset).
    #[serde(skip)]
    pub totp: Option<SealedTotp>,
    /// Whether TOTP enrolment was confirmed with a valid code.
    pub totp_enabled: bool,
    /// The last TOTP time step accepted (replay guard).
    #[serde(skip)]
    pub last_totp_step: Option<i64>,
    /// A disabled user cannot log in and has no sessions or usable API tokens.
    pub disabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("password_hash", &self.password_hash.as_ref().map(|_| "<redacted>"))
            .field("totp", &self.totp)
            .field("totp_enabled", &self.totp_enabled)
            .field("last_totp_step", &self.last_totp_step)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("last_login_at", &self.last_login_at)
            .finish()
    }
}

/// Where a session is in the login: password (or SSO) accepted but the second factor still owed, or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionStage {
    /// The first factor was accepted; only the second-factor page may be used.
    SecondFactor,
    /// Logged in.
    Full,
}

impl SessionStage {
    /// The stored text: `second-factor`, `full`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SecondFactor => "second-factor",
            Self::Full => "full",
        }
    }
}

impl fmt::Display for SessionStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionStage {
    type Err = PortalParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "second-factor" => Ok(Self::SecondFactor),
            "full" => Ok(Self::Full),
            _ => Err(PortalParseError {
                what: "session stage",
                input: s.to_owned(),
                expected: "second-factor, full",
            }),
        }
    }
}

/// A login session to create. The cookie carries the token; the store keeps only its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Hash of the session token (the lookup key).
    pub token_hash: Vec<u8>,
    /// Whose session.
    pub user_id: UserId,
    /// Login stage.
    pub stage: SessionStage,
    /// The client's address when it logged in.
    pub source_ip: Option<String>,
    /// The client's `User-Agent` when it logged in.
    pub user_agent: Option<String>,
}

impl fmt::Debug for NewSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSession")
            .field("user_id", &self.user_id)
            .field("stage", &self.stage)
            .field("source_ip", &self.source_ip)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// A stored login session. `Debug` leaves the token hash out.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Id (shown in the user's session list, to end one).
    pub id: i64,
    /// Hash of the session token.
    pub token_hash: Vec<u8>,
    /// Whose session.
    pub user_id: UserId,
    /// Login stage.
    pub stage: SessionStage,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last request seen with it.
    pub last_seen_at: DateTime<Utc>,
    /// The client's address when it logged in.
    pub source_ip: Option<String>,
    /// The client's `User-Agent` when it logged in.
    pub user_agent: Option<String>,
}

impl fmt::Debug for SessionRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("stage", &self.stage)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("source_ip", &self.source_ip)
            .field("user_agent", &self.user_agent)
            .finish_non_exhaustive()
    }
}

/// Failed logins counted under one key (`user:42`, `ip:192.0.2.7`); the policy is the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LoginThrottle {
    /// Failures since the counter was last cleared.
    pub failures: u32,
    /// When the last one happened.
    pub last_failure_at: DateTime<Utc>,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiScope {
    /// Read only.
    Read,
    /// Read and change (within what the owner's role allows).
    Write,
}

impl ApiScope {
    /// Every scope.
    pub const ALL: [ApiScope; 2] = [ApiScope::Read, ApiScope::Write];

    /// The stored and shown text: `read`, `write`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

impl fmt::Display for ApiScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApiScope {
    type Err = PortalParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| PortalParseError {
            what: "API scope",
            input: s.to_owned(),
            expected: "read, write",
        })
    }
}

/// An API token to create. The caller shows the token once; the store keeps only its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiToken {
    /// Owner.
    pub user_id: UserId,
    /// The owner's name for it.
    pub name: String,
    /// Hash of the token (the lookup key).
    pub token_hash: Vec<u8>,
    /// What it may do.
    pub scope: ApiScope,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for NewApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiToken")
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A stored API token (without its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiTokenRow {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: UserId,
    /// The owner's name for it.
    pub name: String,
    /// What it may do.
    pub scope: ApiScope,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last request made with it.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revoked by its owner, an admin, or by disabling the owner.
    pub revoked: bool,
}

impl ApiTokenRow {
    /// Whether the token may be used at `now`: not revoked and not expired (`expires_at <= now` is
    /// expired). The owner's `disabled` flag is the caller's to check as well.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.revoked && self.expires_at.is_none_or(|e| e > now)
    }
}

/// An OpenID Connect login under way: kept between the redirect to the identity provider and its answer,
/// looked up by the hash of `state`, taken (deleted) once.
#[derive(Clone, PartialEq, Eq)]
pub struct OidcFlow {
    /// Hash of the `state` parameter.
    pub state_hash: Vec<u8>,
    /// The tenant whose identity provider the login goes to.
    pub tenant_id: TenantId,
    /// The `nonce` sent (checked against the ID token). `Debug` redacts it.
    pub nonce: String,
    /// The PKCE code verifier. `Debug` redacts it.
    pub pkce_verifier: String,
    /// The portal page to return to after login.
    pub return_to: Option<String>,
    /// When the flow started (flows older than the caller's limit are refused and purged).
    pub created_at: DateTime<Utc>,
}

impl fmt::Debug for OidcFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcFlow")
            .field("tenant_id", &self.tenant_id)
            .field("nonce", &"<redacted>")
            .field("pkce_verifier", &"<redacted>")
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Which audit rows to show on the portal's audit page. Every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only rows by this actor (exact).
    pub actor: Option<String>,
    /// Only actions starting with this text (case-sensitive), e.g. `user.` or `secret.set`.
    pub action_prefix: Option<String>,
    /// Only rows at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only rows before this instant.
    pub until: Option<DateTime<Utc>>,
    /// At most this many rows (newest first).
    pub limit: u32,
}

impl AuditFilter {
    /// The default row limit.
    pub const DEFAULT_LIMIT: u32 = 200;
}

impl Default for AuditFilter {
    fn default() -> Self {
        Self { actor: None, action_prefix: None, since: None, until: None, limit: Self::DEFAULT_LIMIT }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_errors_name_the_accepted_values() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.as_str()));
        }
        for s in ApiScope::ALL {
            assert_eq!(s.as_str().parse::<ApiScope>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for s in [SessionStage::SecondFactor, SessionStage::Full] {
            assert_eq!(s.as_str().parse::<SessionStage>().unwrap(), s);
        }
        let err = "admin".parse::<Role>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown role \"admin\"; use one of: operator, tenant-admin, tenant-viewer"
        );
        assert!("delete".parse::<ApiScope>().unwrap_err().to_string().contains("read, write"));
        assert_eq!("42".parse::<UserId>().unwrap(), UserId(42));
        assert!("x".parse::<UserId>().is_err());
        assert_eq!(UserId(7).to_string(), "7");
        assert_eq!(serde_json::to_value(UserId(7)).unwrap(), serde_json::json!(7));
    }

    #[test]
    fn only_operators_and_tenant_admins_write() {
        assert!(Role::Operator.can_write());
        assert!(Role::TenantAdmin.can_write());
        assert!(!Role::TenantViewer.can_write());
        assert!(!Role::Operator.needs_tenant());
        assert!(Role::TenantViewer.needs_tenant());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let user = User {
            id: UserId(1),
            tenant_id: None,
            email: EmailAddress::parse("op@example.com").unwrap(),
            role: Role::Operator,
            password_hash: Some("$argon2id$v=19$SECRETHASH".into()),
            password_temporary: false,
            totp: Some(SealedTotp { sealed: b"SEALEDBYTES".to_vec(), key_id: "k1".into() }),
            totp_enabled: true,
            last_totp_step: Some(5),
            disabled: false,
            created_at: at,
            last_login_at: None,
        };
        let shown = format!("{user:?}");
        assert!(!shown.contains("SECRETHASH") && !shown.contains("83, 69"), "{shown}");
        assert!(shown.contains("sealed_len: 11") && shown.contains("k1"), "{shown}");
        let json = serde_json::to_string(&user).unwrap();
        assert!(!json.contains("SECRETHASH") && !json.contains("sealed"), "{json}");
        let flow = OidcFlow {
            state_hash: vec![9; 32],
            tenant_id: TenantId::generate(at),
            nonce: "NONCEVALUE".into(),
            pkce_verifier: "VERIFIERVALUE".into(),
            return_to: None,
            created_at: at,
        };
        let shown = format!("{flow:?}");
        assert!(!shown.contains("NONCEVALUE") && !shown.contains("VERIFIERVALUE"), "{shown}");
        let session = SessionRow {
            id: 1,
            token_hash: vec![0xAB; 4],
            user_id: UserId(1),
            stage: SessionStage::Full,
            created_at: at,
            last_seen_at: at,
            source_ip: None,
            user_agent: None,
        };
        assert!(!format!("{session:?}").contains("171"), "{session:?}");
    }

    #[test]
    fn a_token_is_active_until_it_expires_or_is_revoked() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let mut row = ApiTokenRow {
            id: 1,
            user_id: UserId(1),
            name: "ci".into(),
            scope: ApiScope::Read,
            created_at: at,
            expires_at: Some(at + chrono::Duration::hours(1)),
            last_used_at: None,
            revoked: false,
        };
        assert!(row.is_active(at));
        assert!(!row.is_active(at + chrono::Duration::hours(1)));
        row.expires_at = None;
        assert!(row.is_active(at + chrono::Duration::days(1000)));
        row.revoked = true;
        assert!(!row.is_active(at));
    }
}
