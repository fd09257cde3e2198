//! The [`Store`](crate::Store) implementation shared by both back-ends.
//!
//! sqlx's two drivers have different types but accept the same SQL here (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`), so the implementation is written once as a macro and instantiated per back-end. What
//! really differs is passed in: how a write transaction starts (`BEGIN IMMEDIATE` on SQLite), the claim
//! query (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and the migration lock. The areas with their own file:
//! `rows` (row mapping, transaction helpers), `queue`, `privacy` (purge, export, erasure) and `portal`
//! (users, sessions, tokens, the audit search and dashboard figures).

use chrono::{DateTime, TimeZone, Utc};

use crate::StoreError;

mod portal;
mod privacy;
mod queue;
mod rows;

pub(crate) use portal::impl_portal;
pub(crate) use privacy::impl_privacy;
pub(crate) use queue::impl_queue;
pub(crate) use rows::impl_rows;

/// Counts committed jobs in `orb_jobs_enqueued_total{kind}` (a no-op without a metrics recorder). Called
/// after the transaction that inserted them commits, so a rolled-back insert is not counted.
pub(crate) fn count_enqueued<'a>(jobs: impl IntoIterator<Item = &'a crate::NewJob>) {
    for job in jobs {
        metrics::counter!("orb_jobs_enqueued_total", "kind" => job.kind.clone()).increment(1);
    }
}

/// Instants are stored as microseconds since the Unix epoch on both back-ends.
pub(crate) fn ts(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_ts(micros: i64, what: &str) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_micros(micros)
        .single()
        .ok_or_else(|| StoreError::Corrupt { what: what.to_owned(), reason: format!("timestamp {micros}") })
}

pub(crate) fn opt_ts(micros: Option<i64>, what: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    micros.map(|m| from_ts(m, what)).transpose()
}

pub(crate) fn parse<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| StoreError::Corrupt { what: what.to_owned(), reason: e.to_string() })
}

pub(crate) fn opt_parse<T: std::str::FromStr>(
    value: Option<String>,
    what: &str,
) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    value.map(|v| parse(&v, what)).transpose()
}

pub(crate) fn count(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt { what: what.to_owned(), reason: format!("{value}") })
}

/// Binds the 32 mutable booking columns in the order of [`crate::sql`].
macro_rules! bind_mutable {
    ($q:expr, $r:expr, $updated_at:expr) => {{
        let r: &orb_core::BookingRecord = $r;
        $q.bind(r.appointment_type.as_str())
            .bind(r.series_id.map(|s| s.as_uuid()))
            .bind(r.original_start.map($crate::backend::ts))
            .bind(r.organizer.as_str().to_owned())
            .bind(r.booked_by.as_ref().map(|e| e.as_str().to_owned()))
            .bind(r.location_text.clone())
            .bind(r.room_id.as_uuid())
            .bind(serde_json::to_string(&r.participants).unwrap_or_else(|_| "[]".to_owned()))
            .bind(r.subject.clone())
            .bind($crate::backend::ts(r.start))
            .bind($crate::backend::ts(r.end))
            .bind(r.time_zone.as_str().to_owned())
            .bind(r.cancelled)
            .bind(i64::from(r.complexity_index))
            .bind($crate::backend::ts($updated_at))
            .bind(r.last_updated_processor.map(|s| s.as_str()))
            .bind(r.failed_at.map($crate::backend::ts))
            .bind(r.failed_processor.map(|s| s.as_str()))
            .bind(i64::from(r.failed_count))
            .bind(i64::from(r.retry_count))
            .bind(r.exchange_status.as_str())
            .bind(r.topdesk_status.as_str())
            .bind(r.exchange.organizer_event_id.clone())
            .bind(r.exchange.room_event_id.clone())
            .bind(r.exchange.ical_uid.clone())
            .bind(r.exchange.change_key.clone())
            .bind(r.exchange.modified_at.map($crate::backend::ts))
            .bind(r.topdesk.reservation_id.clone())
            .bind(r.topdesk.reservation_number.clone())
            .bind(r.topdesk.modification_date.map($crate::backend::ts))
            .bind(r.exchange_fingerprint.as_ref().map(|f| f.as_str().to_owned()))
            .bind(r.topdesk_fingerprint.as_ref().map(|f| f.as_str().to_owned()))
    }};
}
pub(crate) use bind_mutable;

/// Implements [`Store`](crate::Store) for a back-end. See the module docs.
macro_rules! impl_store {
    (
        store = $store:ident,
        db = $db:ty,
        kind = $kind:expr,
        claim_sql = $claim_sql:expr,
        gate_open = $gate_open:expr,
        gate_close = $gate_close:expr,
        after_erase = $after_erase:expr,
    ) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Duration, Utc};
        use orb_core::{
            BookingId, BookingRecord, CorrelationId, EmailAddress, ExchangeLink, Fingerprint, RoomId,
            RoomMailbox, SeriesId, TenantId, TenantName, TopdeskLink,
        };
        use sqlx::Row as _;
        use uuid::Uuid;

        use $crate::backend::{bind_mutable, count, from_ts, opt_parse, opt_ts, parse, ts};
        use $crate::error::is_unique_violation;
        use $crate::queue::{ClaimedJob, Job, JobId, JobOutcome, JobStatus, Lease, NewJob, QueueStats};
        use $crate::portal::*;
        use $crate::types::*;
        use $crate::{BackendKind, Result, Store, StoreError};

        type DbRow = <$db as sqlx::Database>::Row;
        type Tx = sqlx::Transaction<'static, $db>;

        $crate::backend::impl_rows!(db = $db,);

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> BackendKind {
                $kind
            }

            async fn migrate(&self) -> Result<()> {
                self.run_migrations().await
            }

            async fn pending_migrations(&self) -> Result<u32> {
                self.count_pending_migrations().await
            }

            async fn create_tenant(&self, name: &TenantName, now: DateTime<Utc>) -> Result<Tenant> {
                let id = TenantId::generate(now);
                let mut tx = self.begin_write().await?;
                let row = sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) RETURNING *")
                    .bind(id.as_uuid())
                    .bind(name.as_str().to_owned())
                    .bind(ts(now))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::unique_or_db("creating a tenant", || format!("tenant {:?}", name.as_str())))?;
                let tenant = tenant_from_row(&row)?;
                commit(tx, "creating a tenant").await?;
                Ok(tenant)
            }

            async fn tenant_by_name(&self, name: &TenantName) -> Result<Tenant> {
                let row = sqlx::query("SELECT * FROM tenants WHERE name = $1")
                    .bind(name.as_str().to_owned())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("looking up a tenant"))?;
                tenant_from_row(&require(row, || format!("tenant {:?}", name.as_str()))?)
            }

            async fn list_tenants(&self) -> Result<Vec<Tenant>> {
                let rows = sqlx::query("SELECT * FROM tenants ORDER BY name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing tenants"))?;
                rows.iter().map(tenant_from_row).collect()
            }

            async fn add_room(&self, tenant: TenantId, room: &NewRoom, now: DateTime<Utc>) -> Result<Room> {
                let id = RoomId::generate(now);
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(
                    "INSERT INTO rooms (id, tenant_id, mailbox, topdesk_location_id, display_name, enabled, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING *",
                )
                .bind(id.as_uuid())
                .bind(tenant.as_uuid())
                .bind(room.mailbox.as_str().to_owned())
                .bind(room.topdesk_location_id.as_str().to_owned())
                .bind(room.display_name.clone())
                .bind(true)
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::unique_or_db("adding a room", || format!(
                                "a room with mailbox {} or TOPdesk location {}",
                                room.mailbox,
                                room.topdesk_location_id
                            )))?;
                let room = room_from_row(&row)?;
                commit(tx, "adding a room").await?;
                Ok(room)
            }

            async fn list_rooms(&self, tenant: TenantId) -> Result<Vec<Room>> {
                let rows = sqlx::query("SELECT * FROM rooms WHERE tenant_id = $1 ORDER BY mailbox")
                    .bind(tenant.as_uuid())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing rooms"))?;
                rows.iter().map(room_from_row).collect()
            }

            async fn get_room(&self, tenant: TenantId, room: RoomId) -> Result<Room> {
                let row = sqlx::query("SELECT * FROM rooms WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(room.as_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a room"))?;
                room_from_row(&require(row, || format!("room {room}"))?)
            }

            async fn room_by_mailbox(&self, tenant: TenantId, mailbox: &RoomMailbox) -> Result<Room> {
                let row = sqlx::query("SELECT * FROM rooms WHERE tenant_id = $1 AND mailbox = $2")
                    .bind(tenant.as_uuid())
                    .bind(mailbox.as_str().to_owned())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("looking up a room"))?;
                room_from_row(&require(row, || format!("room {mailbox}"))?)
            }

            async fn set_room_enabled(
                &self,
                tenant: TenantId,
                room: RoomId,
                enabled: bool,
                now: DateTime<Utc>,
            ) -> Result<Room> {
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(
                    "UPDATE rooms SET enabled = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2 RETURNING *",
                )
                .bind(tenant.as_uuid())
                .bind(room.as_uuid())
                .bind(enabled)
                .bind(ts(now))
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::db("enabling or disabling a room"))?;
                let room = room_from_row(&require(row, || format!("room {room}"))?)?;
                commit(tx, "enabling or disabling a room").await?;
                Ok(room)
            }

            async fn upsert_series(&self, series: &Series) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "INSERT INTO series (id, tenant_id, room_id, organizer, ical_uid, exchange_master_event_id, \
                     topdesk_series_id, pattern, time_zone, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET room_id = excluded.room_id, organizer = excluded.organizer, \
                     ical_uid = excluded.ical_uid, exchange_master_event_id = excluded.exchange_master_event_id, \
                     topdesk_series_id = excluded.topdesk_series_id, pattern = excluded.pattern, \
                     time_zone = excluded.time_zone, updated_at = excluded.updated_at \
                     WHERE series.tenant_id = excluded.tenant_id",
                )
                .bind(series.id.as_uuid())
                .bind(series.tenant_id.as_uuid())
                .bind(series.room_id.as_uuid())
                .bind(series.organizer.as_str().to_owned())
                .bind(series.ical_uid.clone())
                .bind(series.exchange_master_event_id.clone())
                .bind(series.topdesk_series_id.clone())
                .bind(series.pattern.to_string())
                .bind(series.time_zone.as_str().to_owned())
                .bind(ts(series.created_at))
                .bind(ts(series.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("saving a series"))?;
                if done.rows_affected() != 1 {
                    // The id is taken by another tenant's row: the `WHERE` kept it, nothing was written.
                    return Err(StoreError::AlreadyExists { what: format!("series {} of another tenant", series.id) });
                }
                commit(tx, "saving a series").await
            }

            async fn get_series(&self, tenant: TenantId, series: SeriesId) -> Result<Series> {
                let row = sqlx::query("SELECT * FROM series WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(series.as_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a series"))?;
                series_from_row(&require(row, || format!("series {series}"))?)
            }

            async fn insert_booking(
                &self,
                record: &BookingRecord,
                events: &[NewBookingEvent],
                jobs: &[NewJob],
                now: DateTime<Utc>,
            ) -> Result<BookingRecord> {
                let mut tx = self.begin_write().await?;
                let q = sqlx::query($crate::sql::INSERT_BOOKING)
                    .bind(record.id.as_uuid())
                    .bind(record.tenant_id.as_uuid())
                    .bind(record.correlation_id.as_uuid())
                    .bind(record.original_organizer.as_str().to_owned())
                    .bind(ts(record.created_at))
                    .bind(record.processor_created.as_str())
                    .bind(1_i64);
                bind_mutable!(q, record, record.last_updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unique_or_db("inserting a booking", || format!("booking {} or its TOPdesk reservation", record.id)))?;
                insert_events(&mut tx, record, events).await?;
                for job in jobs {
                    insert_job(&mut tx, job, now).await?;
                }
                commit(tx, "inserting a booking").await?;
                $crate::backend::count_enqueued(jobs);
                Ok(BookingRecord { version: 1, ..record.clone() })
            }

            async fn update_booking(
                &self,
                record: &BookingRecord,
                events: &[NewBookingEvent],
                jobs: &[NewJob],
                now: DateTime<Utc>,
            ) -> Result<BookingRecord> {
                let mut tx = self.begin_write().await?;
                let q = sqlx::query($crate::sql::UPDATE_BOOKING)
                    .bind(record.tenant_id.as_uuid())
                    .bind(record.id.as_uuid())
                    .bind(record.version);
                let done = bind_mutable!(q, record, now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::unique_or_db("updating a booking", || format!("a booking with the TOPdesk reservation of {}", record.id)))?;
                if done.rows_affected() == 0 {
                    let actual: Option<i64> =
                        sqlx::query_scalar("SELECT version FROM bookings WHERE tenant_id = $1 AND id = $2")
                            .bind(record.tenant_id.as_uuid())
                            .bind(record.id.as_uuid())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(StoreError::db("updating a booking"))?;
                    return Err(match actual {
                        None => StoreError::NotFound { what: format!("booking {}", record.id) },
                        Some(actual) => StoreError::Conflict {
                            what: format!("booking {}", record.id),
                            expected: record.version,
                            actual,
                        },
                    });
                }
                insert_events(&mut tx, record, events).await?;
                for job in jobs {
                    insert_job(&mut tx, job, now).await?;
                }
                commit(tx, "updating a booking").await?;
                $crate::backend::count_enqueued(jobs);
                Ok(BookingRecord { version: record.version + 1, last_updated_at: now, ..record.clone() })
            }

            async fn get_booking(&self, tenant: TenantId, booking: BookingId) -> Result<BookingRecord> {
                let row = sqlx::query("SELECT * FROM bookings WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(booking.as_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a booking"))?;
                booking_from_row(&require(row, || format!("booking {booking}"))?)
            }

            async fn find_booking(&self, tenant: TenantId, key: &BookingKey<'_>) -> Result<Option<BookingRecord>> {
                let q = match key {
                    BookingKey::TopdeskReservation(id) => {
                        sqlx::query("SELECT * FROM bookings WHERE tenant_id = $1 AND topdesk_reservation_id = $2")
                            .bind(tenant.as_uuid())
                            .bind(id.to_string())
                    }
                    BookingKey::ExchangeEvent(id) => sqlx::query(
                        "SELECT * FROM bookings WHERE tenant_id = $1 \
                         AND (exchange_organizer_event_id = $2 OR exchange_room_event_id = $2) \
                         ORDER BY created_at, id LIMIT 1",
                    )
                    .bind(tenant.as_uuid())
                    .bind(id.to_string()),
                    BookingKey::ICalUid { ical_uid, original_start: Some(start) } => sqlx::query(
                        "SELECT * FROM bookings WHERE tenant_id = $1 AND exchange_ical_uid = $2 \
                         AND original_start = $3 ORDER BY created_at, id LIMIT 1",
                    )
                    .bind(tenant.as_uuid())
                    .bind(ical_uid.to_string())
                    .bind(ts(*start)),
                    BookingKey::ICalUid { ical_uid, original_start: None } => sqlx::query(
                        "SELECT * FROM bookings WHERE tenant_id = $1 AND exchange_ical_uid = $2 \
                         AND original_start IS NULL ORDER BY created_at, id LIMIT 1",
                    )
                    .bind(tenant.as_uuid())
                    .bind(ical_uid.to_string()),
                };
                let row = q.fetch_optional(&self.pool).await.map_err(StoreError::db("finding a booking"))?;
                row.as_ref().map(booking_from_row).transpose()
            }

            async fn list_bookings(&self, tenant: TenantId, filter: &BookingFilter) -> Result<Vec<BookingRecord>> {
                let rows = sqlx::query(
                    "SELECT * FROM bookings WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR room_id = $2) \
                     AND ($3 IS NULL OR series_id = $3) \
                     AND ($4 IS NULL OR end_at > $4) \
                     AND ($5 IS NULL OR start_at < $5) \
                     AND ($6 OR NOT cancelled) \
                     AND ($7 IS NULL OR organizer = $7) \
                     AND (NOT $8 OR failed_count > 0 OR exchange_status = 'failed' OR topdesk_status = 'failed') \
                     ORDER BY start_at, id LIMIT $9 OFFSET $10",
                )
                .bind(tenant.as_uuid())
                .bind(filter.room.map(|r| r.as_uuid()))
                .bind(filter.series.map(|s| s.as_uuid()))
                .bind(filter.from.map(ts))
                .bind(filter.to.map(ts))
                .bind(filter.include_cancelled)
                .bind(filter.organizer.as_ref().map(|o| o.as_str().to_owned()))
                .bind(filter.failed_only)
                // No limit is the largest one: SQLite and PostgreSQL spell "no limit" differently.
                .bind(filter.limit.map_or(i64::MAX, i64::from))
                .bind(i64::from(filter.offset))
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::db("listing bookings"))?;
                rows.iter().map(booking_from_row).collect()
            }

            async fn timeline(&self, tenant: TenantId, booking: BookingId) -> Result<Vec<BookingEvent>> {
                let rows = sqlx::query("SELECT * FROM booking_events WHERE tenant_id = $1 AND booking_id = $2 ORDER BY id")
                    .bind(tenant.as_uuid())
                    .bind(booking.as_uuid())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a timeline"))?;
                rows.iter().map(event_from_row).collect()
            }

            async fn get_cursor(&self, tenant: TenantId, name: &str) -> Result<Option<String>> {
                sqlx::query_scalar("SELECT value FROM cursors WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_uuid())
                    .bind(name.to_owned())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a cursor"))
            }

            async fn set_cursor(&self, tenant: TenantId, name: &str, value: &str, now: DateTime<Utc>) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO cursors (tenant_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(tenant.as_uuid())
                .bind(name.to_owned())
                .bind(value.to_owned())
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("saving a cursor"))?;
                commit(tx, "saving a cursor").await
            }

            async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry> {
                let mut tx = self.begin_write().await?;
                let stored = insert_audit(&mut tx, entry).await?;
                commit(tx, "appending to the audit log").await?;
                Ok(stored)
            }

            async fn list_audit(&self, tenant: TenantId, limit: u32) -> Result<Vec<AuditEntry>> {
                let rows = sqlx::query("SELECT * FROM audit_log WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(tenant.as_uuid())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("reading the audit log"))?;
                rows.iter().map(audit_from_row).collect()
            }

            async fn put_secret(&self, row: &SealedSecretRow, audit: &NewAuditEntry) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO secrets (tenant_id, name, key_id, nonce, ciphertext, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, name) DO UPDATE SET \
                     key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                     updated_at = excluded.updated_at",
                )
                .bind(row.tenant_id.as_uuid())
                .bind(row.name.clone())
                .bind(row.key_id.clone())
                .bind(row.nonce.clone())
                .bind(row.ciphertext.clone())
                .bind(ts(row.updated_at))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("storing a secret"))?;
                insert_audit(&mut tx, audit).await?;
                commit(tx, "storing a secret").await
            }

            async fn get_secret(&self, tenant: TenantId, name: &str) -> Result<SealedSecretRow> {
                let row = sqlx::query("SELECT * FROM secrets WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.as_uuid())
                    .bind(name.to_owned())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a secret"))?;
                secret_from_row(&require(row, || format!("secret {name:?}"))?)
            }

            async fn list_secrets(&self, tenant: TenantId) -> Result<Vec<SecretMeta>> {
                let rows = sqlx::query("SELECT name, key_id, updated_at FROM secrets WHERE tenant_id = $1 ORDER BY name")
                    .bind(tenant.as_uuid())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing secrets"))?;
                rows.iter()
                    .map(|row| {
                        let e = || StoreError::db("listing secrets");
                        Ok(SecretMeta {
                            name: row.try_get("name").map_err(e())?,
                            key_id: row.try_get("key_id").map_err(e())?,
                            updated_at: from_ts(row.try_get("updated_at").map_err(e())?, "secret updated_at")?,
                        })
                    })
                    .collect()
            }

            async fn all_secrets_for_rotation(&self) -> Result<Vec<SealedSecretRow>> {
                let rows = sqlx::query("SELECT * FROM secrets ORDER BY tenant_id, name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("reading secrets for rotation"))?;
                rows.iter().map(secret_from_row).collect()
            }

            async fn rotate_secrets(&self, rows: &[(SealedSecretRow, String)], audit: &NewAuditEntry) -> Result<()> {
                let mut tx = self.begin_write().await?;
                for (row, previous_key_id) in rows {
                    let done = sqlx::query(
                        "UPDATE secrets SET key_id = $3, nonce = $4, ciphertext = $5, updated_at = $6 \
                         WHERE tenant_id = $1 AND name = $2 AND key_id = $7",
                    )
                    .bind(row.tenant_id.as_uuid())
                    .bind(row.name.clone())
                    .bind(row.key_id.clone())
                    .bind(row.nonce.clone())
                    .bind(row.ciphertext.clone())
                    .bind(ts(row.updated_at))
                    .bind(previous_key_id.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("rotating secrets"))?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::Conflict {
                            what: format!("secret {:?} of tenant {} (sealed under another key meanwhile)", row.name, row.tenant_id),
                            expected: 1,
                            actual: 0,
                        });
                    }
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, "rotating secrets").await
            }

            async fn upsert_subscription(&self, sub: &SubscriptionRow) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "INSERT INTO subscriptions (id, tenant_id, room_id, resource, client_state_hash, rich, \
                     encryption_certificate_id, expires_at, created_at, updated_at, watermark) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (id) DO UPDATE SET room_id = excluded.room_id, resource = excluded.resource, \
                     client_state_hash = excluded.client_state_hash, rich = excluded.rich, \
                     encryption_certificate_id = excluded.encryption_certificate_id, \
                     expires_at = excluded.expires_at, updated_at = excluded.updated_at, \
                     watermark = excluded.watermark \
                     WHERE subscriptions.tenant_id = excluded.tenant_id",
                )
                .bind(sub.id.clone())
                .bind(sub.tenant_id.as_uuid())
                .bind(sub.room_id.as_uuid())
                .bind(sub.resource.clone())
                .bind(sub.client_state_hash.clone())
                .bind(sub.rich)
                .bind(sub.encryption_certificate_id.clone())
                .bind(ts(sub.expires_at))
                .bind(ts(sub.created_at))
                .bind(ts(sub.updated_at))
                .bind(sub.watermark.clone())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("saving a subscription"))?;
                if done.rows_affected() != 1 {
                    // The id is taken by another tenant's row: the `WHERE` kept it, nothing was written.
                    return Err(StoreError::AlreadyExists { what: format!("subscription {} of another tenant", sub.id) });
                }
                commit(tx, "saving a subscription").await
            }

            async fn get_subscription(&self, tenant: TenantId, id: &str) -> Result<SubscriptionRow> {
                let row = sqlx::query("SELECT * FROM subscriptions WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(id.to_owned())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a subscription"))?;
                subscription_from_row(&require(row, || format!("subscription {id:?}"))?)
            }

            async fn list_subscriptions(&self, tenant: TenantId) -> Result<Vec<SubscriptionRow>> {
                let rows = sqlx::query("SELECT * FROM subscriptions WHERE tenant_id = $1 ORDER BY expires_at, id")
                    .bind(tenant.as_uuid())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing subscriptions"))?;
                rows.iter().map(subscription_from_row).collect()
            }

            async fn delete_subscription(&self, tenant: TenantId, id: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM subscriptions WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(id.to_owned())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("deleting a subscription"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound { what: format!("subscription {id:?}") });
                }
                commit(tx, "deleting a subscription").await
            }

            async fn accept_inbox(&self, item: &NewInboxItem, job: &NewJob, now: DateTime<Utc>) -> Result<(i64, JobId)> {
                let mut tx = self.begin_write().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO inbox (tenant_id, source, received_at, remote_ip, payload) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(item.tenant_id.as_uuid())
                .bind(item.source.as_str())
                .bind(ts(item.received_at))
                .bind(item.remote_ip.clone())
                .bind(item.payload.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::db("keeping a received notification"))?;
                let mut job = job.clone();
                match &mut job.payload {
                    serde_json::Value::Object(map) => {
                        map.insert("inbox_id".into(), serde_json::Value::from(id));
                    }
                    other => *other = serde_json::json!({ "inbox_id": id }),
                }
                let job_id = insert_job(&mut tx, &job, now).await?;
                commit(tx, "keeping a received notification").await?;
                $crate::backend::count_enqueued([&job]);
                Ok((id, job_id))
            }

            async fn get_inbox(&self, tenant: TenantId, id: i64) -> Result<InboxItem> {
                let row = sqlx::query("SELECT * FROM inbox WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading an inbox item"))?;
                inbox_from_row(&require(row, || format!("inbox item {id}"))?)
            }

            async fn mark_inbox_processed(&self, tenant: TenantId, id: i64, now: DateTime<Utc>) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("UPDATE inbox SET processed_at = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(id)
                    .bind(ts(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("marking an inbox item processed"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound { what: format!("inbox item {id}") });
                }
                commit(tx, "marking an inbox item processed").await
            }

            async fn set_push_token_hash(&self, tenant: TenantId, hash: &[u8], audit: &NewAuditEntry) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO push_tokens (tenant_id, token_hash, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET token_hash = excluded.token_hash, \
                     updated_at = excluded.updated_at",
                )
                .bind(tenant.as_uuid())
                .bind(hash.to_vec())
                .bind(ts(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("saving a push token"))?;
                insert_audit(&mut tx, audit).await?;
                commit(tx, "saving a push token").await
            }

            async fn push_token_hash(&self, tenant: TenantId) -> Result<Option<Vec<u8>>> {
                sqlx::query_scalar("SELECT token_hash FROM push_tokens WHERE tenant_id = $1")
                    .bind(tenant.as_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a push token"))
            }

            async fn delete_push_token(&self, tenant: TenantId, audit: &NewAuditEntry) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM push_tokens WHERE tenant_id = $1")
                    .bind(tenant.as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("deleting a push token"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound { what: "a TOPdesk push token for this tenant".into() });
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, "deleting a push token").await
            }

            async fn get_tenant_settings(&self, tenant: TenantId) -> Result<Option<TenantSettingsRow>> {
                let row = sqlx::query("SELECT * FROM tenant_settings WHERE tenant_id = $1")
                    .bind(tenant.as_uuid())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading tenant settings"))?;
                row.as_ref().map(tenant_settings_from_row).transpose()
            }

            async fn put_tenant_settings(
                &self,
                tenant: TenantId,
                document: &str,
                expected_version: Option<i64>,
                now: DateTime<Utc>,
                audit: &NewAuditEntry,
            ) -> Result<TenantSettingsRow> {
                let mut tx = self.begin_write().await?;
                let q = match expected_version {
                    None => sqlx::query($crate::sql::UPSERT_TENANT_SETTINGS),
                    Some(0) => sqlx::query($crate::sql::INSERT_TENANT_SETTINGS),
                    Some(_) => sqlx::query($crate::sql::UPDATE_TENANT_SETTINGS),
                };
                let q = q.bind(tenant.as_uuid()).bind(document.to_owned()).bind(ts(now));
                let q = match expected_version {
                    Some(v) if v != 0 => q.bind(v),
                    _ => q,
                };
                let row = q
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::parent_or_db("storing tenant settings", || format!("tenant {tenant}")))?;
                let Some(row) = row else {
                    // Only the optimistic forms return nothing: the stored version is not the expected one.
                    let expected = expected_version.unwrap_or_default();
                    let actual: Option<i64> =
                        sqlx::query_scalar("SELECT version FROM tenant_settings WHERE tenant_id = $1")
                            .bind(tenant.as_uuid())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(StoreError::db("storing tenant settings"))?;
                    if actual.is_none() {
                        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
                            .bind(tenant.as_uuid())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(StoreError::db("storing tenant settings"))?;
                        if exists.is_none() {
                            return Err(StoreError::NotFound { what: format!("tenant {tenant}") });
                        }
                    }
                    return Err(StoreError::Conflict {
                        what: format!("settings of tenant {tenant}"),
                        expected,
                        actual: actual.unwrap_or(0),
                    });
                };
                let stored = tenant_settings_from_row(&row)?;
                insert_audit(&mut tx, audit).await?;
                commit(tx, "storing tenant settings").await?;
                Ok(stored)
            }

            async fn list_encryption_keys(&self) -> Result<Vec<EncryptionKeyRow>> {
                let rows = sqlx::query("SELECT * FROM encryption_keys ORDER BY not_before, id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing encryption keys"))?;
                rows.iter().map(encryption_key_from_row).collect()
            }

            async fn insert_encryption_key(&self, row: &EncryptionKeyRow, audit: &NewAuditEntry) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO encryption_keys (id, certificate, thumbprint, not_before, not_after, key_id, \
                     sealed_private_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(row.id.clone())
                .bind(row.certificate_der.clone())
                .bind(row.thumbprint.clone())
                .bind(ts(row.not_before))
                .bind(ts(row.not_after))
                .bind(row.key_id.clone())
                .bind(row.sealed_private_key.clone())
                .bind(ts(row.created_at))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::unique_or_db("storing an encryption key", || format!("encryption key {:?}", row.id)))?;
                insert_audit(&mut tx, audit).await?;
                commit(tx, "storing an encryption key").await
            }

            async fn delete_encryption_key(&self, id: &str, audit: &NewAuditEntry) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM encryption_keys WHERE id = $1")
                    .bind(id.to_owned())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("deleting an encryption key"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound { what: format!("encryption key {id:?}") });
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, "deleting an encryption key").await
            }

            async fn reseal_encryption_keys(&self, rows: &[(String, String, Vec<u8>)], audit: &NewAuditEntry) -> Result<()> {
                let mut tx = self.begin_write().await?;
                for (id, key_id, sealed) in rows {
                    let done = sqlx::query("UPDATE encryption_keys SET key_id = $2, sealed_private_key = $3 WHERE id = $1")
                        .bind(id.clone())
                        .bind(key_id.clone())
                        .bind(sealed.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db("resealing encryption keys"))?;
                    if done.rows_affected() == 0 {
                        // Dropping the transaction rolls back the keys already resealed: all or nothing.
                        return Err(StoreError::NotFound { what: format!("encryption key {id:?}") });
                    }
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, "resealing encryption keys").await
            }

            async fn try_lease(&self, name: &str, holder: &str, now: DateTime<Utc>, ttl: Duration) -> Result<bool> {
                let until = now.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC);
                let mut tx = self.begin_write().await?;
                let held: Option<String> = sqlx::query_scalar($crate::sql::TRY_LEASE)
                    .bind(name.to_owned())
                    .bind(holder.to_owned())
                    .bind(ts(until))
                    .bind(ts(now))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::db("taking a lease"))?;
                commit(tx, "taking a lease").await?;
                Ok(held.is_some())
            }

            async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(name.to_owned())
                    .bind(holder.to_owned())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("releasing a lease"))?;
                commit(tx, "releasing a lease").await
            }

            async fn enqueue(&self, job: &NewJob, now: DateTime<Utc>) -> Result<JobId> {
                self.enqueue_in(job, now).await
            }

            async fn claim_job(&self, worker: &str, now: DateTime<Utc>, lease: Duration) -> Result<Option<ClaimedJob>> {
                self.claim_job_in(worker, now, lease).await
            }

            async fn heartbeat(&self, lease: &Lease, now: DateTime<Utc>, extend: Duration) -> Result<()> {
                self.heartbeat_in(lease, now, extend).await
            }

            async fn complete_job(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
                self.complete_job_in(lease, now).await
            }

            async fn fail_job(
                &self,
                lease: &Lease,
                error: &str,
                retry_at: Option<DateTime<Utc>>,
                now: DateTime<Utc>,
            ) -> Result<JobOutcome> {
                self.fail_job_in(lease, error, retry_at, now).await
            }

            async fn requeue_expired(&self, now: DateTime<Utc>, max_attempts: u32) -> Result<u64> {
                self.requeue_expired_in(now, max_attempts).await
            }

            async fn release_jobs_of(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64> {
                self.release_jobs_of_in(owner_prefix, now).await
            }

            async fn get_job(&self, tenant: TenantId, job: JobId) -> Result<Job> {
                self.get_job_in(tenant, job).await
            }

            async fn list_jobs(&self, tenant: TenantId, status: JobStatus) -> Result<Vec<Job>> {
                self.list_jobs_in(tenant, status).await
            }

            async fn queue_stats(&self, now: DateTime<Utc>) -> Result<QueueStats> {
                self.queue_stats_in(now).await
            }

            async fn retry_dead_jobs(
                &self,
                tenant: TenantId,
                job: Option<JobId>,
                now: DateTime<Utc>,
                audit: &NewAuditEntry,
            ) -> Result<u64> {
                self.retry_dead_jobs_in(tenant, job, now, audit).await
            }

            async fn dismiss_dead_job(&self, tenant: TenantId, job: JobId, audit: &NewAuditEntry) -> Result<()> {
                self.dismiss_dead_job_in(tenant, job, audit).await
            }

            async fn purge_expired(
                &self,
                tenant: TenantId,
                cutoffs: &orb_core::PurgeCutoffs,
                actor: &str,
                now: DateTime<Utc>,
                dry_run: bool,
            ) -> Result<PurgeCounts> {
                self.purge_expired_in(tenant, cutoffs, actor, now, dry_run).await
            }

            async fn person_data(&self, tenant: TenantId, address: &EmailAddress) -> Result<PersonData> {
                self.person_data_in(tenant, address).await
            }

            async fn erase_person(
                &self,
                tenant: TenantId,
                address: &EmailAddress,
                pseudonym: &EmailAddress,
                actor: &str,
                now: DateTime<Utc>,
            ) -> Result<ErasureCounts> {
                self.erase_person_in(tenant, address, pseudonym, actor, now).await
            }

            async fn create_user(&self, user: &NewUser, audit: &NewAuditEntry, now: DateTime<Utc>) -> Result<User> {
                self.create_user_in(user, audit, now).await
            }

            async fn user_by_email(&self, email: &EmailAddress) -> Result<User> {
                self.user_by_email_in(email).await
            }

            async fn get_user(&self, id: UserId) -> Result<User> {
                self.get_user_in(id).await
            }

            async fn list_users(&self, tenant: Option<TenantId>) -> Result<Vec<User>> {
                self.list_users_in(tenant).await
            }

            async fn set_user_password(
                &self,
                id: UserId,
                password_hash: &str,
                temporary: bool,
                audit: &NewAuditEntry,
            ) -> Result<()> {
                self.set_user_password_in(id, password_hash, temporary, audit).await
            }

            async fn set_user_totp(&self, id: UserId, totp: Option<&SealedTotp>, enabled: bool, audit: Option<&NewAuditEntry>) -> Result<()> {
                self.set_user_totp_in(id, totp, enabled, audit).await
            }

            async fn set_user_role(
                &self,
                id: UserId,
                role: Role,
                guard: AdminGuard,
                audit: &NewAuditEntry,
            ) -> Result<()> {
                self.set_user_role_in(id, role, guard, audit).await
            }

            async fn set_user_disabled(
                &self,
                id: UserId,
                disabled: bool,
                guard: AdminGuard,
                audit: &NewAuditEntry,
            ) -> Result<()> {
                self.set_user_disabled_in(id, disabled, guard, audit).await
            }

            async fn claim_totp_step(&self, id: UserId, step: i64) -> Result<bool> {
                self.claim_totp_step_in(id, step).await
            }

            async fn record_login(&self, id: UserId, now: DateTime<Utc>) -> Result<()> {
                self.record_login_in(id, now).await
            }

            async fn replace_recovery_codes(&self, id: UserId, hashes: &[Vec<u8>], audit: &NewAuditEntry) -> Result<()> {
                self.replace_recovery_codes_in(id, hashes, audit).await
            }

            async fn use_recovery_code(&self, id: UserId, hash: &[u8]) -> Result<bool> {
                self.use_recovery_code_in(id, hash).await
            }

            async fn count_recovery_codes(&self, id: UserId) -> Result<u32> {
                self.count_recovery_codes_in(id).await
            }

            async fn record_login_failure(&self, key: &str, now: DateTime<Utc>) -> Result<LoginThrottle> {
                self.record_login_failure_in(key, now).await
            }

            async fn login_throttle(&self, key: &str) -> Result<Option<LoginThrottle>> {
                self.login_throttle_in(key).await
            }

            async fn clear_login_failures(&self, key: &str) -> Result<()> {
                self.clear_login_failures_in(key).await
            }

            async fn create_session(&self, session: &NewSession, now: DateTime<Utc>) -> Result<SessionRow> {
                self.create_session_in(session, now).await
            }

            async fn session_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
                self.session_by_token_hash_in(token_hash).await
            }

            async fn touch_session(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
                self.touch_session_in(id, now).await
            }

            async fn delete_session(&self, id: i64) -> Result<()> {
                self.delete_session_in(id).await
            }

            async fn list_sessions(&self, user: UserId) -> Result<Vec<SessionRow>> {
                self.list_sessions_in(user).await
            }

            async fn delete_user_session(&self, user: UserId, id: i64) -> Result<bool> {
                self.delete_user_session_in(user, id).await
            }

            async fn delete_sessions_of(&self, user: UserId) -> Result<u64> {
                self.delete_sessions_of_in(user).await
            }

            async fn create_api_token(&self, token: &NewApiToken, audit: &NewAuditEntry, now: DateTime<Utc>) -> Result<ApiTokenRow> {
                self.create_api_token_in(token, audit, now).await
            }

            async fn api_token_by_hash(&self, token_hash: &[u8]) -> Result<Option<ApiTokenRow>> {
                self.api_token_by_hash_in(token_hash).await
            }

            async fn touch_api_token(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
                self.touch_api_token_in(id, now).await
            }

            async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiTokenRow>> {
                self.list_api_tokens_in(user).await
            }

            async fn revoke_api_token(&self, user: UserId, id: i64, audit: &NewAuditEntry) -> Result<()> {
                self.revoke_api_token_in(user, id, audit).await
            }

            async fn put_oidc_flow(&self, flow: &OidcFlow) -> Result<()> {
                self.put_oidc_flow_in(flow).await
            }

            async fn take_oidc_flow(&self, state_hash: &[u8]) -> Result<Option<OidcFlow>> {
                self.take_oidc_flow_in(state_hash).await
            }

            async fn purge_oidc_flows(&self, older_than: DateTime<Utc>) -> Result<u64> {
                self.purge_oidc_flows_in(older_than).await
            }

            async fn search_audit(&self, tenant: Option<TenantId>, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
                self.search_audit_in(tenant, filter).await
            }

            async fn tenant_queue_stats(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<QueueStats> {
                self.tenant_queue_stats_in(tenant, now).await
            }

            async fn count_bookings_updated_since(&self, tenant: TenantId, since: DateTime<Utc>) -> Result<u64> {
                self.count_bookings_updated_since_in(tenant, since).await
            }
        }

        $crate::backend::impl_portal!(store = $store, db = $db,);

        $crate::backend::impl_privacy!(
            store = $store,
            gate_open = $gate_open,
            gate_close = $gate_close,
            after_erase = $after_erase,
        );

        $crate::backend::impl_queue!(store = $store, claim_sql = $claim_sql,);
    };
}
pub(crate) use impl_store;
