//! # orb-store
//!
//! ORB's persistence: one [`Store`] API, two back-ends ([`SqliteStore`], embedded, the default; and
//! [`PgStore`], for production and for several ORB instances sharing one database), one conformance suite
//! (`tests/conformance.rs`) that runs unchanged on both.
//!
//! ## What lives here
//! tenants, rooms (Exchange room mailbox ↔ TOPdesk location), series, bookings (the ORB record),
//! booking_events (append-only timeline), cursors, audit_log (append-only), secrets (ciphertext only),
//! jobs (the durable queue, see [`queue`]; the job kinds and their payloads, shared by the intake and the
//! engine, in [`jobs`]), the webhook intake (subscriptions of Graph and EWS, with the last EWS watermark
//! (migration 6); inbox; push tokens), tenant
//! settings (one versioned JSON document per tenant), encryption keys (installation-wide certificates for
//! Graph rich notifications, private keys sealed by the caller) and named leases (one holder at a time,
//! across processes). For the admin portal ([`portal`], migration 5): users (installation-wide, one per
//! e-mail address), user_sessions (looked up by the hash of the cookie's token), recovery_codes (hashes),
//! login_failures (counters per throttling key), api_tokens (hashes) and oidc_flows (OpenID Connect logins
//! under way, taken once).
//!
//! ## Invariants
//! - **Every query is scoped by tenant in the API itself**: each method that touches tenant data takes a
//!   [`TenantId`] and puts it in the `WHERE` clause, so a handler cannot read another tenant's rows by
//!   passing a foreign id.
//! - **Optimistic concurrency** on bookings: [`Store::update_booking`] succeeds only when the caller's
//!   [`BookingRecord::version`] is the stored one, and bumps it; otherwise [`StoreError::Conflict`].
//! - **Transactional outbox**: a booking change, its timeline entries and the follow-up jobs commit in one
//!   transaction, or none of them does.
//! - **Set-once fields** of a booking (match id, tenant, creation date, processor created, original
//!   organizer) are never written by an update.
//! - **Append-only**: `audit_log` and `booking_events` reject updates and deletes, by database triggers,
//!   except inside [`Store::purge_expired`] (deletes of expired rows) and [`Store::erase_person`] (an
//!   address replaced by its pseudonym), whose transactions open a gate the triggers check (migration 4:
//!   a one-row gate table on SQLite, the transaction-local setting `orb.gate` on PostgreSQL); migrations are append-only too: an applied migration whose text changed is an error
//!   at start-up ([`StoreError::MigrationChanged`]).
//! - **Queue lanes**: at most one running job per lane, enforced by a partial unique index, and jobs of a
//!   lane run in enqueue order.
//! - Secrets are stored only as ciphertext ([`SealedSecretRow`], and the private keys of
//!   [`EncryptionKeyRow`]); this crate never sees a plaintext secret and does not depend on the crypto crate.
//! - **Leases**: [`Store::try_lease`] is one atomic statement, so of several processes asking for the same
//!   free lease at the same time exactly one gets it.
//! - **Retention and erasure** are tenant-scoped, one transaction each, audited in it; SQLite runs with
//!   `secure_delete`, so deleted or overwritten personal data leaves no copy in free pages.
//! - **Portal users**: an e-mail address belongs to one user across the installation; a user has no tenant
//!   exactly when its role is [`Role::Operator`] (checked before writing and by a `CHECK` constraint, and a
//!   role change across that line is refused). Passwords are stored as the caller's PHC hash strings, TOTP
//!   secrets only sealed by the caller ([`SealedTotp`]), session and API tokens, recovery codes and OIDC
//!   `state` values only as hashes; the `Debug` of every row holding one redacts it.
//! - **One-time use is atomic**: [`Store::claim_totp_step`], [`Store::use_recovery_code`] and
//!   [`Store::take_oidc_flow`] are single statements, so of concurrent uses exactly one succeeds;
//!   [`Store::record_login_failure`] counts with one upsert, so no concurrent failure is lost.
//! - **A disabled user has no way in**: [`Store::set_user_disabled`] deletes the user's sessions and revokes
//!   its API tokens in the same transaction, and session or token creation locks the user's row while it
//!   checks that the user is enabled, so a login racing the disabling cannot leave a session behind.
//! - Time comes in as a parameter (`now`); this crate never reads the wall clock.
//!
//! ## Must not depend on
//! orb-graph, orb-topdesk, orb-web, orb-crypto (the binary or engine seals and opens secrets).

mod backend;
mod error;
pub mod jobs;
mod migrate;
pub mod portal;
mod postgres;
pub mod queue;
mod sql;
mod sqlite;
mod types;

pub use error::StoreError;
pub use portal::{
    AdminGuard, ApiScope, ApiTokenRow, AuditFilter, LoginThrottle, NewApiToken, NewSession, NewUser,
    OidcFlow, PortalParseError, Role, SealedTotp, SessionRow, SessionStage, User, UserId,
};
pub use postgres::PgStore;
pub use queue::{
    ClaimedJob, Job, JobId, JobOutcome, JobStatus, Lane, Lease, NewJob, QueueStats, RetryPolicy,
};
pub use sqlite::SqliteStore;
pub use types::{
    AuditEntry, BookingEvent, BookingFilter, BookingKey, EncryptionKeyRow, ErasureCounts, InboxItem,
    InboxSource, NewAuditEntry, NewBookingEvent, NewInboxItem, NewRoom, PersonData, PurgeCounts, Room,
    SealedSecretRow, SecretMeta, Series, SubscriptionRow, Tenant, TenantSettingsRow,
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use orb_core::{
    BookingId, BookingRecord, EmailAddress, PurgeCutoffs, RoomId, RoomMailbox, SeriesId, TenantId, TenantName,
};

/// Result type of every store call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Embedded SQLite (one file).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The persistence API of ORB. See the crate docs for the invariants every implementation keeps.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which back-end this is.
    fn backend(&self) -> BackendKind;

    /// Applies pending migrations (idempotent; safe to run from several processes at once).
    async fn migrate(&self) -> Result<()>;
    /// How many of this build's migrations the database has not applied (0: the schema is current). Reads
    /// only; a database that was never migrated is an error.
    async fn pending_migrations(&self) -> Result<u32>;

    // ---- tenants ----

    /// Creates a tenant; [`StoreError::AlreadyExists`] if the name is taken.
    async fn create_tenant(&self, name: &TenantName, now: DateTime<Utc>) -> Result<Tenant>;
    /// Looks a tenant up by name.
    async fn tenant_by_name(&self, name: &TenantName) -> Result<Tenant>;
    /// Every tenant, by name.
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;

    // ---- rooms ----

    /// Maps a room; [`StoreError::AlreadyExists`] if the mailbox or the TOPdesk location is mapped already.
    async fn add_room(&self, tenant: TenantId, room: &NewRoom, now: DateTime<Utc>) -> Result<Room>;
    /// The tenant's rooms, by mailbox.
    async fn list_rooms(&self, tenant: TenantId) -> Result<Vec<Room>>;
    /// One room by id.
    async fn get_room(&self, tenant: TenantId, room: RoomId) -> Result<Room>;
    /// One room by its Exchange mailbox.
    async fn room_by_mailbox(&self, tenant: TenantId, mailbox: &RoomMailbox) -> Result<Room>;
    /// Enables or disables syncing of a room.
    async fn set_room_enabled(
        &self,
        tenant: TenantId,
        room: RoomId,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Room>;

    // ---- series ----

    /// Inserts or replaces a series row.
    async fn upsert_series(&self, series: &Series) -> Result<()>;
    /// One series by id.
    async fn get_series(&self, tenant: TenantId, series: SeriesId) -> Result<Series>;

    // ---- bookings ----

    /// Inserts a new ORB record (stored with version 1) with its first timeline entries and follow-up jobs,
    /// in one transaction. Returns the stored record.
    async fn insert_booking(
        &self,
        record: &BookingRecord,
        events: &[NewBookingEvent],
        jobs: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<BookingRecord>;

    /// Updates a record whose stored version equals `record.version`, appends timeline entries and enqueues
    /// jobs, in one transaction. Returns the record with its new version. A stale version gives
    /// [`StoreError::Conflict`] and changes nothing.
    async fn update_booking(
        &self,
        record: &BookingRecord,
        events: &[NewBookingEvent],
        jobs: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<BookingRecord>;

    /// One record by match id.
    async fn get_booking(&self, tenant: TenantId, booking: BookingId) -> Result<BookingRecord>;
    /// Finds a record by one of the sides' ids.
    async fn find_booking(&self, tenant: TenantId, key: &BookingKey<'_>) -> Result<Option<BookingRecord>>;
    /// Records matching a filter, by start time.
    async fn list_bookings(&self, tenant: TenantId, filter: &BookingFilter) -> Result<Vec<BookingRecord>>;
    /// A booking's timeline, oldest first.
    async fn timeline(&self, tenant: TenantId, booking: BookingId) -> Result<Vec<BookingEvent>>;

    // ---- cursors ----

    /// A named cursor (delta link, TOPdesk poll position, ...).
    async fn get_cursor(&self, tenant: TenantId, name: &str) -> Result<Option<String>>;
    /// Sets a named cursor.
    async fn set_cursor(&self, tenant: TenantId, name: &str, value: &str, now: DateTime<Utc>) -> Result<()>;

    // ---- audit log ----

    /// Appends an audit entry (tenant `None`: an operator action across tenants).
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry>;
    /// The tenant's audit log, newest first, at most `limit` entries.
    async fn list_audit(&self, tenant: TenantId, limit: u32) -> Result<Vec<AuditEntry>>;

    // ---- secrets (ciphertext only) ----

    /// Stores or replaces a sealed secret and appends the audit entry, in one transaction.
    async fn put_secret(&self, row: &SealedSecretRow, audit: &NewAuditEntry) -> Result<()>;
    /// One sealed secret.
    async fn get_secret(&self, tenant: TenantId, name: &str) -> Result<SealedSecretRow>;
    /// Names and key ids of a tenant's secrets (never the values).
    async fn list_secrets(&self, tenant: TenantId) -> Result<Vec<SecretMeta>>;
    /// Every sealed secret of every tenant: for master-key rotation only (an operator action).
    async fn all_secrets_for_rotation(&self) -> Result<Vec<SealedSecretRow>>;
    /// Replaces sealed secrets in one transaction (key rotation). Each row must still carry the key id it
    /// is replacing (`previous_key_id`), so a concurrent change is detected as [`StoreError::Conflict`] and
    /// nothing is written.
    async fn rotate_secrets(&self, rows: &[(SealedSecretRow, String)], audit: &NewAuditEntry) -> Result<()>;

    // ---- webhook intake ----

    /// Inserts or replaces a subscription row (create, renewal, certificate switch, and for EWS the last
    /// watermark received: every field but the tenant and the creation time is replaced).
    async fn upsert_subscription(&self, subscription: &SubscriptionRow) -> Result<()>;
    /// One subscription by its id (Graph's, or EWS's `SubscriptionId`).
    async fn get_subscription(&self, tenant: TenantId, id: &str) -> Result<SubscriptionRow>;
    /// The tenant's subscriptions, by expiry.
    async fn list_subscriptions(&self, tenant: TenantId) -> Result<Vec<SubscriptionRow>>;
    /// Forgets a subscription (deleted or removed by Graph).
    async fn delete_subscription(&self, tenant: TenantId, id: &str) -> Result<()>;
    /// Keeps a received item and enqueues the job that will process it, in one transaction: the intake's
    /// only write. The job's payload gets `"inbox_id"` set to the new item's id.
    async fn accept_inbox(
        &self,
        item: &NewInboxItem,
        job: &NewJob,
        now: DateTime<Utc>,
    ) -> Result<(i64, JobId)>;
    /// One inbox item.
    async fn get_inbox(&self, tenant: TenantId, id: i64) -> Result<InboxItem>;
    /// Marks an inbox item processed.
    async fn mark_inbox_processed(&self, tenant: TenantId, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// Sets the SHA-256 of the tenant's TOPdesk push token, with an audit entry, in one transaction.
    async fn set_push_token_hash(&self, tenant: TenantId, hash: &[u8], audit: &NewAuditEntry) -> Result<()>;
    /// The SHA-256 of the tenant's TOPdesk push token, if one is set.
    async fn push_token_hash(&self, tenant: TenantId) -> Result<Option<Vec<u8>>>;
    /// Forgets the tenant's TOPdesk push token (the intake refuses every push from then on), with an audit
    /// entry, in one transaction; [`StoreError::NotFound`] (and nothing written) if none is set.
    async fn delete_push_token(&self, tenant: TenantId, audit: &NewAuditEntry) -> Result<()>;

    // ---- tenant settings ----

    /// A tenant's settings document, if any was stored.
    async fn get_tenant_settings(&self, tenant: TenantId) -> Result<Option<TenantSettingsRow>>;
    /// Stores `document` as the tenant's settings (version + 1) together with `audit`, in one transaction.
    /// `expected_version`: `Some(v)` = optimistic — fail with [`StoreError::Conflict`] unless the stored
    /// version is `v` (`Some(0)` = "must not exist yet"); `None` = overwrite whatever is there. On a
    /// conflict nothing is written (neither the document nor the audit entry). An unknown tenant is
    /// [`StoreError::NotFound`].
    async fn put_tenant_settings(
        &self,
        tenant: TenantId,
        document: &str,
        expected_version: Option<i64>,
        now: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<TenantSettingsRow>;

    // ---- encryption keys (installation-wide; private keys sealed by the caller) ----

    /// Every stored encryption key, oldest `not_before` first.
    async fn list_encryption_keys(&self) -> Result<Vec<EncryptionKeyRow>>;
    /// Adds a key, with the audit entry in the same transaction; an existing id is
    /// [`StoreError::AlreadyExists`].
    async fn insert_encryption_key(&self, row: &EncryptionKeyRow, audit: &NewAuditEntry) -> Result<()>;
    /// Deletes a key that is no longer used (destroys the sealed private key), with the audit entry in the
    /// same transaction; [`StoreError::NotFound`] if absent.
    async fn delete_encryption_key(&self, id: &str, audit: &NewAuditEntry) -> Result<()>;
    /// Master-key rotation: replaces `(key_id, sealed_private_key)` of each listed key id — rows are
    /// `(id, new key_id, new sealed bytes)` — in one transaction with the audit entry. All or nothing: an
    /// unknown id fails the whole call with [`StoreError::NotFound`] and changes nothing.
    async fn reseal_encryption_keys(
        &self,
        rows: &[(String, String, Vec<u8>)],
        audit: &NewAuditEntry,
    ) -> Result<()>;

    // ---- leases (one holder per name, across processes) ----

    /// Takes or renews the lease `name` for `holder` until `now + ttl` when it is free, expired
    /// (`expires_at <= now`), or already held by `holder`; returns whether `holder` holds it now. One atomic
    /// statement: of several callers racing for a free lease exactly one gets `true`.
    async fn try_lease(&self, name: &str, holder: &str, now: DateTime<Utc>, ttl: Duration) -> Result<bool>;
    /// Gives the lease up if `holder` holds it (no error otherwise).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    // ---- jobs ----

    /// Enqueues one job on its own.
    async fn enqueue(&self, job: &NewJob, now: DateTime<Utc>) -> Result<JobId>;
    /// Claims the next runnable job of any lane whose head it is, with a lease until `now + lease`.
    async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ClaimedJob>>;
    /// Extends a lease; [`StoreError::LeaseLost`] if the job is no longer ours.
    async fn heartbeat(&self, lease: &Lease, now: DateTime<Utc>, extend: Duration) -> Result<()>;
    /// Marks a claimed job done.
    async fn complete_job(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()>;
    /// Records a failure: with `retry_at` the job is queued again for then, without it the job is dead
    /// with `error` kept.
    async fn fail_job(
        &self,
        lease: &Lease,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<JobOutcome>;
    /// Puts jobs whose lease expired before `now` back in the queue (or marks them dead once they used up
    /// `max_attempts`). Returns how many were touched.
    async fn requeue_expired(&self, now: DateTime<Utc>, max_attempts: u32) -> Result<u64>;
    /// Puts every running job whose lease owner starts with `owner_prefix` back in the queue at once, lease
    /// or not: for an instance with a stable name that starts again after it was killed (its earlier run
    /// holds leases nobody will renew). Attempts are kept. Returns how many were put back. An empty prefix
    /// is refused with [`StoreError::InvalidArgument`] (it would release every instance's jobs).
    async fn release_jobs_of(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64>;
    /// One job.
    async fn get_job(&self, tenant: TenantId, job: JobId) -> Result<Job>;
    /// A tenant's jobs in one state, oldest first.
    async fn list_jobs(&self, tenant: TenantId, status: JobStatus) -> Result<Vec<Job>>;
    /// The whole queue at a glance, every tenant together (for the operator's metrics): how many jobs are
    /// queued (due or waiting for their `run_at`), running and dead, and the earliest `run_at` of a queued
    /// job that is due at `now` (how long the longest-waiting runnable job has waited). Reads only.
    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats>;
    /// Puts dead jobs back in the queue — `Some(job)`: that one, `None`: every dead job of the tenant — with
    /// attempts reset to 0, `run_at = now` and their last error kept until they run again, together with
    /// `audit`, in one transaction. A retried job keeps its id, so it is again the head of its lane if
    /// nothing older is unfinished. Returns how many were put back; when that is 0 (no dead job) nothing is
    /// written, not even the audit entry. `Some(job)` of another tenant or unknown is
    /// [`StoreError::NotFound`], a job that is not dead is [`StoreError::NotDead`]; both change nothing.
    async fn retry_dead_jobs(
        &self,
        tenant: TenantId,
        job: Option<JobId>,
        now: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<u64>;
    /// Removes a dead job the operator gave up on (it no longer shows as dead), with `audit`, in one
    /// transaction: the audit entry is what remains of it. Unknown (for this tenant) is
    /// [`StoreError::NotFound`], a job that is not dead is [`StoreError::NotDead`]; both change nothing.
    async fn dismiss_dead_job(&self, tenant: TenantId, job: JobId, audit: &NewAuditEntry) -> Result<()>;

    // ---- retention and privacy ----

    /// Deletes the tenant's rows that `cutoffs` say expired, in one transaction: inbox items processed and
    /// done jobs finished before [`PurgeCutoffs::finished_jobs`]; dead jobs that died, bookings that ended
    /// (with their timelines) and series left without bookings and unchanged before
    /// [`PurgeCutoffs::bookings`]; audit rows written before [`PurgeCutoffs::audit`]. Queued and running
    /// jobs and unprocessed inbox items are never touched. When something was deleted, an audit entry
    /// `retention.purged` (actor `actor`, the counts as target) is written in the same transaction. With
    /// `dry_run` the same statements run and are rolled back: the counts are exact and nothing changes.
    /// An unknown tenant is [`StoreError::NotFound`].
    async fn purge_expired(
        &self,
        tenant: TenantId,
        cutoffs: &PurgeCutoffs,
        actor: &str,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PurgeCounts>;

    /// Everything the tenant's tables hold that names `address` (see [`PersonData`]); matching is by whole
    /// address, in any letter case. An unknown tenant is [`StoreError::NotFound`].
    async fn person_data(&self, tenant: TenantId, address: &EmailAddress) -> Result<PersonData>;

    /// Replaces `address` with `pseudonym` everywhere in the tenant's tables, in one transaction: the
    /// records (organizer, the set-once original organizer, booker, participants, subject and location
    /// text; each changed record's version is bumped, so a sync holding it replans), series, timelines,
    /// audit rows, job payloads and errors, inbox items. Then appends the audit entry `privacy.erased`
    /// (actor `actor`, target: the pseudonym and the counts, never the address). An unknown tenant is
    /// [`StoreError::NotFound`], a pseudonym equal to the address [`StoreError::InvalidArgument`]; both
    /// change nothing.
    async fn erase_person(
        &self,
        tenant: TenantId,
        address: &EmailAddress,
        pseudonym: &EmailAddress,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ErasureCounts>;

    // ---- portal ----
    // The admin portal's rows (see [`portal`]). Users are installation-wide (an operator has no tenant, the
    // others one each); sessions, recovery codes and API tokens belong to a user and are looked up by a
    // hash, never by what a client sends in clear.

    /// Creates a portal user, with `audit`, in one transaction. An e-mail address already used by any user
    /// is [`StoreError::AlreadyExists`]; a role and tenant that do not fit ([`Role::Operator`] with a
    /// tenant, another role without one) is [`StoreError::InvalidArgument`]; an unknown tenant is
    /// [`StoreError::NotFound`]. None of them writes anything.
    async fn create_user(&self, user: &NewUser, audit: &NewAuditEntry, now: DateTime<Utc>) -> Result<User>;
    /// The user who logs in with `email`; [`StoreError::NotFound`] if none.
    async fn user_by_email(&self, email: &EmailAddress) -> Result<User>;
    /// One user; [`StoreError::NotFound`] if unknown.
    async fn get_user(&self, id: UserId) -> Result<User>;
    /// Users by e-mail address: `Some(tenant)` that tenant's only, `None` every user (operators too).
    async fn list_users(&self, tenant: Option<TenantId>) -> Result<Vec<User>>;
    /// Sets a user's password hash (an Argon2id PHC string), with `audit`, in one transaction;
    /// [`StoreError::NotFound`] if unknown. `temporary`: someone else chose it (a reset by an operator), so
    /// its owner must choose their own at the next login ([`User::password_temporary`]); their own choice
    /// clears it.
    async fn set_user_password(
        &self,
        id: UserId,
        password_hash: &str,
        temporary: bool,
        audit: &NewAuditEntry,
    ) -> Result<()>;
    /// Sets (enrolment, confirmation) or clears (MFA reset) a user's sealed TOTP secret, with `audit` if
    /// given, in one transaction. Clearing (`totp: None`) also deletes the user's recovery codes and forgets
    /// the last accepted TOTP step. `enabled` without a secret is [`StoreError::InvalidArgument`]; an
    /// unknown user [`StoreError::NotFound`].
    async fn set_user_totp(
        &self,
        id: UserId,
        totp: Option<&SealedTotp>,
        enabled: bool,
        audit: Option<&NewAuditEntry>,
    ) -> Result<()>;
    /// Changes a user's role, with `audit`, in one transaction. A change to or from [`Role::Operator`] would
    /// break the role/tenant invariant and is [`StoreError::InvalidArgument`] (create a new user instead);
    /// an unknown user is [`StoreError::NotFound`]; under [`AdminGuard::KeepOne`], demoting the tenant's
    /// last enabled tenant-admin is [`StoreError::LastAdmin`].
    async fn set_user_role(
        &self,
        id: UserId,
        role: Role,
        guard: AdminGuard,
        audit: &NewAuditEntry,
    ) -> Result<()>;
    /// Disables or enables a user, with `audit`, in one transaction. Disabling also deletes every session
    /// of the user and revokes every API token of the user in that transaction (enabling again brings
    /// neither back). An unknown user is [`StoreError::NotFound`]; under [`AdminGuard::KeepOne`], disabling
    /// the tenant's last enabled tenant-admin is [`StoreError::LastAdmin`].
    async fn set_user_disabled(
        &self,
        id: UserId,
        disabled: bool,
        guard: AdminGuard,
        audit: &NewAuditEntry,
    ) -> Result<()>;
    /// Accepts TOTP time step `step` for the user once: one atomic statement sets the last accepted step to
    /// `step` only when none was accepted yet or the last one is older; `true` if it did. Of two concurrent
    /// claims of the same step exactly one is `true` (a replayed code is refused). An unknown user is
    /// [`StoreError::NotFound`].
    async fn claim_totp_step(&self, id: UserId, step: i64) -> Result<bool>;
    /// Records a successful login at `now`; [`StoreError::NotFound`] if unknown.
    async fn record_login(&self, id: UserId, now: DateTime<Utc>) -> Result<()>;

    /// Replaces the user's recovery codes (hashes only) with `hashes`, with `audit`, in one transaction
    /// (duplicates are kept once); [`StoreError::NotFound`] if the user is unknown.
    async fn replace_recovery_codes(
        &self,
        id: UserId,
        hashes: &[Vec<u8>],
        audit: &NewAuditEntry,
    ) -> Result<()>;
    /// Uses a recovery code: deletes it in one atomic statement; `true` if it existed. A code works once,
    /// also under concurrent use.
    async fn use_recovery_code(&self, id: UserId, hash: &[u8]) -> Result<bool>;
    /// How many unused recovery codes the user has.
    async fn count_recovery_codes(&self, id: UserId) -> Result<u32>;

    /// Counts a failed login under `key` (`user:42`, `ip:192.0.2.7`) at `now`, atomically (concurrent
    /// failures are all counted), and returns the counter after it. The policy is the caller's.
    async fn record_login_failure(&self, key: &str, now: DateTime<Utc>) -> Result<LoginThrottle>;
    /// The failures counted under `key` since it was last cleared; `None` if none.
    async fn login_throttle(&self, key: &str) -> Result<Option<LoginThrottle>>;
    /// Forgets the failures counted under `key` (after a successful login, or an admin's unlock).
    async fn clear_login_failures(&self, key: &str) -> Result<()>;

    /// Creates a login session at `now`. A user that is disabled (also one disabled concurrently) is
    /// [`StoreError::UserDisabled`], an unknown one [`StoreError::NotFound`], a token hash in use
    /// [`StoreError::AlreadyExists`].
    async fn create_session(&self, session: &NewSession, now: DateTime<Utc>) -> Result<SessionRow>;
    /// The session whose token hashes to `token_hash`, if any.
    async fn session_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<SessionRow>>;
    /// Records activity on a session at `now`; [`StoreError::NotFound`] if it is gone.
    async fn touch_session(&self, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// Ends a session (logout); ending one that is gone is not an error.
    async fn delete_session(&self, id: i64) -> Result<()>;
    /// The user's sessions, newest first.
    async fn list_sessions(&self, user: UserId) -> Result<Vec<SessionRow>>;
    /// Ends session `id` only if it is `user`'s; `false` if the user has no such session.
    async fn delete_user_session(&self, user: UserId, id: i64) -> Result<bool>;
    /// Ends every session of the user; how many there were.
    async fn delete_sessions_of(&self, user: UserId) -> Result<u64>;

    /// Creates an API token (its hash) at `now`, with `audit`, in one transaction. A disabled owner is
    /// [`StoreError::UserDisabled`], an unknown one [`StoreError::NotFound`], a token hash in use
    /// [`StoreError::AlreadyExists`].
    async fn create_api_token(
        &self,
        token: &NewApiToken,
        audit: &NewAuditEntry,
        now: DateTime<Utc>,
    ) -> Result<ApiTokenRow>;
    /// The API token whose hash is `token_hash`, revoked and expired ones too (see
    /// [`ApiTokenRow::is_active`]).
    async fn api_token_by_hash(&self, token_hash: &[u8]) -> Result<Option<ApiTokenRow>>;
    /// Records a request made with a token at `now`; [`StoreError::NotFound`] if unknown.
    async fn touch_api_token(&self, id: i64, now: DateTime<Utc>) -> Result<()>;
    /// The user's API tokens (revoked ones too), oldest first.
    async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiTokenRow>>;
    /// Revokes token `id` of `user`, with `audit`, in one transaction; [`StoreError::NotFound`] (and nothing
    /// written) if the user has no such token. Revoking a revoked token again is allowed (and audited).
    async fn revoke_api_token(&self, user: UserId, id: i64, audit: &NewAuditEntry) -> Result<()>;

    /// Keeps an OpenID Connect login flow until its answer arrives; a `state_hash` in use is
    /// [`StoreError::AlreadyExists`], an unknown tenant [`StoreError::NotFound`].
    async fn put_oidc_flow(&self, flow: &OidcFlow) -> Result<()>;
    /// Takes the flow whose `state` hashes to `state_hash`: deletes and returns it in one atomic statement,
    /// so a second take (a replayed answer) is `None`.
    async fn take_oidc_flow(&self, state_hash: &[u8]) -> Result<Option<OidcFlow>>;
    /// Deletes flows created before `older_than` (abandoned logins); how many.
    async fn purge_oidc_flows(&self, older_than: DateTime<Utc>) -> Result<u64>;

    /// Audit rows matching `filter`, newest first, at most `filter.limit`: `Some(tenant)` that tenant's rows
    /// only, `None` every row (the operator's view, installation-wide rows included).
    async fn search_audit(&self, tenant: Option<TenantId>, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;

    /// [`Store::queue_stats`] for one tenant's jobs.
    async fn tenant_queue_stats(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<QueueStats>;
    /// How many of the tenant's bookings ORB changed at or after `since`.
    async fn count_bookings_updated_since(&self, tenant: TenantId, since: DateTime<Utc>) -> Result<u64>;
}
