//! **Tenant scoping below the handlers.** A handler never names a tenant id to the store: it gets a
//! [`Scope`], made only here from the session's [`Principal`] and the tenant named in the URL, after the
//! check that the principal may see that tenant (operators: every tenant; everyone else: their own). The
//! scope's methods pass its tenant to every store call, so a handler cannot read or change another tenant's
//! rows even by mistake; a tenant the principal may not see answers 404, the same as one that does not exist.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use orb_core::{BookingId, BookingRecord, RoomId, TenantName};
use orb_store::{
    AdminGuard, AuditEntry, AuditFilter, BookingEvent, BookingFilter, Job, JobId, JobStatus, NewAuditEntry,
    NewRoom, NewUser, QueueStats, Role, Room, SubscriptionRow, Tenant, User, UserId,
};

use super::PortalState;
use super::backend::TenantPolicy;
use super::error::PortalError;
use super::session::Principal;

/// One tenant, as one principal may see it (see the module docs).
#[derive(Debug, Clone)]
pub struct Scope {
    state: PortalState,
    /// The tenant.
    pub tenant: Tenant,
    /// Who is asking.
    pub principal: Principal,
}

impl FromRequestParts<PortalState> for Scope {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, state: &PortalState) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| PortalError::NotFound)?;
        let name = params.get("tenant").ok_or(PortalError::NotFound)?;
        Scope::resolve(state, principal, name).await
    }
}

impl Scope {
    /// The scope of `name` for `principal`, or 404 when it may not see it.
    pub async fn resolve(state: &PortalState, principal: Principal, name: &str) -> Result<Self, PortalError> {
        let name = TenantName::parse(name).map_err(|_| PortalError::NotFound)?;
        let tenant = match state.store.tenant_by_name(&name).await {
            Ok(t) => t,
            Err(orb_store::StoreError::NotFound { .. }) => return Err(PortalError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let allowed = match principal.user.role {
            Role::Operator => true,
            Role::TenantAdmin | Role::TenantViewer => principal.user.tenant_id == Some(tenant.id),
        };
        if !allowed {
            return Err(PortalError::NotFound);
        }
        Ok(Self { state: state.clone(), tenant, principal })
    }

    /// Refuses unless the principal may change things (operator or tenant-admin; API tokens with write
    /// scope).
    pub fn require_write(&self) -> Result<(), PortalError> {
        if self.principal.can_write() { Ok(()) } else { Err(PortalError::Forbidden) }
    }

    /// Whether the principal may change things (for showing buttons).
    pub fn can_write(&self) -> bool {
        self.principal.can_write()
    }

    /// An audit entry of this tenant for an action of the principal.
    pub fn audit(&self, action: &str, target: impl Into<String>) -> NewAuditEntry {
        NewAuditEntry {
            tenant_id: Some(self.tenant.id),
            at: self.state.now(),
            actor: self.principal.actor(),
            action: action.to_owned(),
            target: target.into(),
            ip: Some(self.principal.ip.0.to_string()),
        }
    }

    /// Appends an audit entry of this tenant.
    pub async fn record(&self, action: &str, target: impl Into<String>) -> Result<(), PortalError> {
        self.state.store.append_audit(&self.audit(action, target)).await?;
        Ok(())
    }

    /// Now, from the portal's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.state.now()
    }

    /// The tenant's portal policy.
    pub async fn policy(&self) -> Result<TenantPolicy, PortalError> {
        Ok(self.state.backend.policy(self.tenant.id).await?)
    }

    /// The portal state (for the backend).
    pub fn state(&self) -> &PortalState {
        &self.state
    }

    // ---- reads ----

    /// Bookings matching a filter.
    pub async fn bookings(&self, filter: &BookingFilter) -> Result<Vec<BookingRecord>, PortalError> {
        Ok(self.state.store.list_bookings(self.tenant.id, filter).await?)
    }

    /// One booking and its timeline.
    pub async fn booking(&self, id: BookingId) -> Result<(BookingRecord, Vec<BookingEvent>), PortalError> {
        let record = self.state.store.get_booking(self.tenant.id, id).await?;
        let timeline = self.state.store.timeline(self.tenant.id, id).await?;
        Ok((record, timeline))
    }

    /// The tenant's rooms.
    pub async fn rooms(&self) -> Result<Vec<Room>, PortalError> {
        Ok(self.state.store.list_rooms(self.tenant.id).await?)
    }

    /// The tenant's subscriptions.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, PortalError> {
        Ok(self.state.store.list_subscriptions(self.tenant.id).await?)
    }

    /// The tenant's jobs in a state.
    pub async fn jobs(&self, status: JobStatus) -> Result<Vec<Job>, PortalError> {
        Ok(self.state.store.list_jobs(self.tenant.id, status).await?)
    }

    /// The tenant's queue figures.
    pub async fn queue(&self) -> Result<QueueStats, PortalError> {
        Ok(self.state.store.tenant_queue_stats(self.tenant.id, self.now()).await?)
    }

    /// Bookings changed since `since`.
    pub async fn changed_since(&self, since: DateTime<Utc>) -> Result<u64, PortalError> {
        Ok(self.state.store.count_bookings_updated_since(self.tenant.id, since).await?)
    }

    /// The tenant's audit log.
    pub async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, PortalError> {
        Ok(self.state.store.search_audit(Some(self.tenant.id), filter).await?)
    }

    /// The tenant's users.
    pub async fn users(&self) -> Result<Vec<User>, PortalError> {
        Ok(self.state.store.list_users(Some(self.tenant.id)).await?)
    }

    /// One user of the tenant (404 for a user of another tenant).
    pub async fn user(&self, id: UserId) -> Result<User, PortalError> {
        let user = self.state.store.get_user(id).await?;
        if user.tenant_id == Some(self.tenant.id) { Ok(user) } else { Err(PortalError::NotFound) }
    }

    // ---- writes (each checks the role and writes its audit row) ----

    /// Puts one dead job back in the queue.
    pub async fn retry_job(&self, job: JobId) -> Result<u64, PortalError> {
        self.require_write()?;
        let audit = self.audit("job.retry", job.to_string());
        let n =
            self.state.store.retry_dead_jobs(self.tenant.id, Some(job), self.now(), &audit).await.map_err(
                |e| match e {
                    orb_store::StoreError::NotFound { .. } | orb_store::StoreError::NotDead { .. } => {
                        job_gone(job)
                    }
                    e => e.into(),
                },
            )?;
        if n == 0 {
            return Err(job_gone(job));
        }
        Ok(n)
    }

    /// Dismisses one dead job.
    pub async fn dismiss_job(&self, job: JobId) -> Result<(), PortalError> {
        self.require_write()?;
        let audit = self.audit("job.dismiss", job.to_string());
        self.state.store.dismiss_dead_job(self.tenant.id, job, &audit).await.map_err(|e| match e {
            orb_store::StoreError::NotFound { .. } | orb_store::StoreError::NotDead { .. } => job_gone(job),
            e => e.into(),
        })?;
        Ok(())
    }

    /// Maps a room.
    pub async fn add_room(&self, room: &NewRoom) -> Result<Room, PortalError> {
        self.require_write()?;
        let created =
            self.state.store.add_room(self.tenant.id, room, self.now()).await.map_err(|e| match e {
                orb_store::StoreError::AlreadyExists { what } => {
                    PortalError::BadRequest(format!("{what}: each mailbox and TOPdesk location maps once"))
                }
                e => e.into(),
            })?;
        self.record("room.add", format!("{} ↔ {}", created.mailbox, created.topdesk_location_id)).await?;
        Ok(created)
    }

    /// Enables or disables a room.
    pub async fn set_room_enabled(&self, room: RoomId, enabled: bool) -> Result<Room, PortalError> {
        self.require_write()?;
        let changed = self.state.store.set_room_enabled(self.tenant.id, room, enabled, self.now()).await?;
        self.record(if enabled { "room.enable" } else { "room.disable" }, changed.mailbox.to_string())
            .await?;
        Ok(changed)
    }

    /// Invites a user into the tenant (never an operator).
    pub async fn add_user(&self, user: NewUser) -> Result<User, PortalError> {
        self.require_write()?;
        if user.role == Role::Operator || user.tenant_id != Some(self.tenant.id) {
            return Err(PortalError::Forbidden);
        }
        let audit = self.audit("user.add", format!("{} ({})", user.email, user.role));
        self.state.store.create_user(&user, &audit, self.now()).await.map_err(|e| match e {
            orb_store::StoreError::AlreadyExists { .. } => {
                PortalError::BadRequest(format!("a user with the address {} exists already", user.email))
            }
            e => e.into(),
        })
    }

    /// Changes a tenant user's role (never to operator).
    pub async fn set_user_role(&self, id: UserId, role: Role) -> Result<(), PortalError> {
        self.require_write()?;
        if role == Role::Operator {
            return Err(PortalError::Forbidden);
        }
        let user = self.user(id).await?;
        let audit = self.audit("user.role", format!("{} → {role}", user.email));
        self.state.store.set_user_role(user.id, role, self.admin_guard(), &audit).await.map_err(last_admin)
    }

    /// Resets a tenant user's second factor (they enrol again at their next login).
    pub async fn reset_user_mfa(&self, id: UserId) -> Result<(), PortalError> {
        self.require_write()?;
        let user = self.user(id).await?;
        let audit = self.audit("user.reset_mfa", user.email.to_string());
        self.state.store.set_user_totp(user.id, None, false, Some(&audit)).await?;
        Ok(())
    }

    /// A tenant-admin may not demote or disable the tenant's last enabled tenant-admin: the tenant would
    /// have no one left to manage it from the portal. The store checks it in the write's own transaction.
    /// (An operator may; operators manage tenants with `orb user` too.)
    fn admin_guard(&self) -> AdminGuard {
        if self.principal.user.role == Role::Operator { AdminGuard::Off } else { AdminGuard::KeepOne }
    }

    /// Disables or enables a tenant user.
    pub async fn set_user_disabled(&self, id: UserId, disabled: bool) -> Result<(), PortalError> {
        self.require_write()?;
        let user = self.user(id).await?;
        if user.id == self.principal.user.id {
            return Err(PortalError::BadRequest("you cannot disable yourself".into()));
        }
        let action = if disabled { "user.disable" } else { "user.enable" };
        let audit = self.audit(action, user.email.to_string());
        self.state
            .store
            .set_user_disabled(user.id, disabled, self.admin_guard(), &audit)
            .await
            .map_err(last_admin)
    }

    /// Approves (`approve`) or rejects the mass deletions held for one of the tenant's rooms (404 for a
    /// room of another tenant or none); returns what was done, in words.
    pub async fn decide_deletions(&self, room: RoomId, approve: bool) -> Result<String, PortalError> {
        self.require_write()?;
        if !self.rooms().await?.iter().any(|r| r.id == room) {
            return Err(PortalError::NotFound);
        }
        let backend = &self.state.backend;
        Ok(if approve {
            let audit = self.audit("deletions.approve", room.to_string());
            backend.approve_deletions(self.tenant.id, room, &audit).await?
        } else {
            let audit = self.audit("deletions.reject", room.to_string());
            backend.reject_deletions(self.tenant.id, room, &audit).await?
        })
    }

    /// Sets (or rotates) the TOPdesk push token: returns the new token, to be shown once.
    pub async fn rotate_push_token(&self) -> Result<String, PortalError> {
        use secrecy::ExposeSecret;
        self.require_write()?;
        let (token, hash) = orb_auth::random_token();
        let audit = self.audit("push_token.rotate", "topdesk");
        self.state.store.set_push_token_hash(self.tenant.id, &hash, &audit).await?;
        Ok(token.expose_secret().to_owned())
    }

    /// Whether the tenant has a push token.
    pub async fn has_push_token(&self) -> Result<bool, PortalError> {
        Ok(self.state.store.push_token_hash(self.tenant.id).await?.is_some())
    }
}

/// The answer for a job that is not a dead job of the tenant (never was, another tenant's, or retried or
/// dismissed meanwhile: one answer for all).
fn job_gone(job: JobId) -> PortalError {
    PortalError::Gone(format!(
        "job {} is not among the dead jobs (any more): it may have been retried or dismissed meanwhile; \
         reload the page",
        job.0
    ))
}

/// The store's refusal to remove a tenant's last enabled administrator is the caller's mistake (400, with the
/// store's words: who, and what to do first); other store errors keep their own mapping.
fn last_admin(e: orb_store::StoreError) -> PortalError {
    match e {
        e @ orb_store::StoreError::LastAdmin { .. } => PortalError::BadRequest(e.to_string()),
        e => e.into(),
    }
}
