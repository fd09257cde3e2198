//! The [`Store`](crate::Store) implementation shared by both back-ends.
//!
//! sqlx's two drivers have different types but accept the same SQL here (`$n` placeholders, `RETURNING`,
//! `ON CONFLICT`), so the implementation is written once as a macro and instantiated per back-end. What
//! really differs is passed in: how a write transaction starts (`BEGIN IMMEDIATE` on SQLite), the claim
//! query (`FOR UPDATE SKIP LOCKED` on PostgreSQL) and the migration lock.

use chrono::{DateTime, TimeZone, Utc};

use crate::StoreError;

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
        use $crate::queue::{ClaimedJob, Job, JobId, JobOutcome, JobStatus, Lease, NewJob};
        use $crate::types::*;
        use $crate::{BackendKind, Result, Store, StoreError};

        type DbRow = <$db as sqlx::Database>::Row;
        type Tx = sqlx::Transaction<'static, $db>;

        fn tenant_from_row(row: &DbRow) -> Result<Tenant> {
            Ok(Tenant {
                id: TenantId::from_uuid(row.try_get("id").map_err(StoreError::db("reading tenant"))?),
                name: parse(&row.try_get::<String, _>("name").map_err(StoreError::db("reading tenant"))?, "tenant name")?,
                created_at: from_ts(row.try_get("created_at").map_err(StoreError::db("reading tenant"))?, "tenant created_at")?,
            })
        }

        fn room_from_row(row: &DbRow) -> Result<Room> {
            let e = StoreError::db;
            Ok(Room {
                id: RoomId::from_uuid(row.try_get("id").map_err(e("reading room"))?),
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e("reading room"))?),
                mailbox: parse::<RoomMailbox>(&row.try_get::<String, _>("mailbox").map_err(e("reading room"))?, "room mailbox")?,
                topdesk_location_id: parse(
                    &row.try_get::<String, _>("topdesk_location_id").map_err(e("reading room"))?,
                    "room topdesk_location_id",
                )?,
                display_name: row.try_get("display_name").map_err(e("reading room"))?,
                enabled: row.try_get("enabled").map_err(e("reading room"))?,
                created_at: from_ts(row.try_get("created_at").map_err(e("reading room"))?, "room created_at")?,
                updated_at: from_ts(row.try_get("updated_at").map_err(e("reading room"))?, "room updated_at")?,
            })
        }

        fn series_from_row(row: &DbRow) -> Result<Series> {
            let e = || StoreError::db("reading series");
            let pattern: String = row.try_get("pattern").map_err(e())?;
            Ok(Series {
                id: SeriesId::from_uuid(row.try_get("id").map_err(e())?),
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e())?),
                room_id: RoomId::from_uuid(row.try_get("room_id").map_err(e())?),
                organizer: parse(&row.try_get::<String, _>("organizer").map_err(e())?, "series organizer")?,
                ical_uid: row.try_get("ical_uid").map_err(e())?,
                exchange_master_event_id: row.try_get("exchange_master_event_id").map_err(e())?,
                topdesk_series_id: row.try_get("topdesk_series_id").map_err(e())?,
                pattern: serde_json::from_str(&pattern)
                    .map_err(|err| StoreError::Corrupt { what: "series pattern".into(), reason: err.to_string() })?,
                time_zone: parse(&row.try_get::<String, _>("time_zone").map_err(e())?, "series time_zone")?,
                created_at: from_ts(row.try_get("created_at").map_err(e())?, "series created_at")?,
                updated_at: from_ts(row.try_get("updated_at").map_err(e())?, "series updated_at")?,
            })
        }

        fn booking_from_row(row: &DbRow) -> Result<BookingRecord> {
            let e = || StoreError::db("reading booking");
            let s = |name: &str| -> Result<String> { row.try_get::<String, _>(name).map_err(e()) };
            let os = |name: &str| -> Result<Option<String>> { row.try_get::<Option<String>, _>(name).map_err(e()) };
            let i = |name: &str| -> Result<i64> { row.try_get::<i64, _>(name).map_err(e()) };
            let oi = |name: &str| -> Result<Option<i64>> { row.try_get::<Option<i64>, _>(name).map_err(e()) };
            let participants: Vec<EmailAddress> = serde_json::from_str(&s("participants")?)
                .map_err(|err| StoreError::Corrupt { what: "booking participants".into(), reason: err.to_string() })?;
            Ok(BookingRecord {
                id: BookingId::from_uuid(row.try_get("id").map_err(e())?),
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e())?),
                correlation_id: CorrelationId::from_uuid(row.try_get("correlation_id").map_err(e())?),
                appointment_type: parse(&s("appointment_type")?, "booking appointment_type")?,
                series_id: row.try_get::<Option<Uuid>, _>("series_id").map_err(e())?.map(SeriesId::from_uuid),
                original_start: opt_ts(oi("original_start")?, "booking original_start")?,
                organizer: parse(&s("organizer")?, "booking organizer")?,
                original_organizer: parse(&s("original_organizer")?, "booking original_organizer")?,
                booked_by: opt_parse(os("booked_by")?, "booking booked_by")?,
                location_text: os("location_text")?,
                room_id: RoomId::from_uuid(row.try_get("room_id").map_err(e())?),
                participants,
                subject: os("subject")?,
                start: from_ts(i("start_at")?, "booking start")?,
                end: from_ts(i("end_at")?, "booking end")?,
                time_zone: parse(&s("time_zone")?, "booking time_zone")?,
                cancelled: row.try_get("cancelled").map_err(e())?,
                complexity_index: count(i("complexity_index")?, "booking complexity_index")?,
                created_at: from_ts(i("created_at")?, "booking created_at")?,
                processor_created: parse(&s("processor_created")?, "booking processor_created")?,
                last_updated_at: from_ts(i("last_updated_at")?, "booking last_updated_at")?,
                last_updated_processor: opt_parse(os("last_updated_processor")?, "booking last_updated_processor")?,
                failed_at: opt_ts(oi("failed_at")?, "booking failed_at")?,
                failed_processor: opt_parse(os("failed_processor")?, "booking failed_processor")?,
                failed_count: count(i("failed_count")?, "booking failed_count")?,
                retry_count: count(i("retry_count")?, "booking retry_count")?,
                exchange_status: parse(&s("exchange_status")?, "booking exchange_status")?,
                topdesk_status: parse(&s("topdesk_status")?, "booking topdesk_status")?,
                exchange: ExchangeLink {
                    organizer_event_id: os("exchange_organizer_event_id")?,
                    room_event_id: os("exchange_room_event_id")?,
                    ical_uid: os("exchange_ical_uid")?,
                    change_key: os("exchange_change_key")?,
                    modified_at: opt_ts(oi("exchange_modified_at")?, "booking exchange_modified_at")?,
                },
                topdesk: TopdeskLink {
                    reservation_id: os("topdesk_reservation_id")?,
                    reservation_number: os("topdesk_reservation_number")?,
                    modification_date: opt_ts(oi("topdesk_modification_date")?, "booking topdesk_modification_date")?,
                },
                exchange_fingerprint: opt_parse::<Fingerprint>(os("exchange_fingerprint")?, "booking exchange_fingerprint")?,
                topdesk_fingerprint: opt_parse::<Fingerprint>(os("topdesk_fingerprint")?, "booking topdesk_fingerprint")?,
                version: i("version")?,
            })
        }

        fn event_from_row(row: &DbRow) -> Result<BookingEvent> {
            let e = || StoreError::db("reading booking event");
            let detail: String = row.try_get("detail").map_err(e())?;
            Ok(BookingEvent {
                id: row.try_get("id").map_err(e())?,
                booking_id: BookingId::from_uuid(row.try_get("booking_id").map_err(e())?),
                correlation_id: CorrelationId::from_uuid(row.try_get("correlation_id").map_err(e())?),
                at: from_ts(row.try_get("at").map_err(e())?, "booking event at")?,
                kind: row.try_get("kind").map_err(e())?,
                side: opt_parse(row.try_get("side").map_err(e())?, "booking event side")?,
                detail: serde_json::from_str(&detail)
                    .map_err(|err| StoreError::Corrupt { what: "booking event detail".into(), reason: err.to_string() })?,
            })
        }

        fn audit_from_row(row: &DbRow) -> Result<AuditEntry> {
            let e = || StoreError::db("reading audit entry");
            Ok(AuditEntry {
                id: row.try_get("id").map_err(e())?,
                tenant_id: row.try_get::<Option<Uuid>, _>("tenant_id").map_err(e())?.map(TenantId::from_uuid),
                at: from_ts(row.try_get("at").map_err(e())?, "audit at")?,
                actor: row.try_get("actor").map_err(e())?,
                action: row.try_get("action").map_err(e())?,
                target: row.try_get("target").map_err(e())?,
                ip: row.try_get("ip").map_err(e())?,
            })
        }

        fn secret_from_row(row: &DbRow) -> Result<SealedSecretRow> {
            let e = || StoreError::db("reading secret");
            Ok(SealedSecretRow {
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e())?),
                name: row.try_get("name").map_err(e())?,
                key_id: row.try_get("key_id").map_err(e())?,
                nonce: row.try_get("nonce").map_err(e())?,
                ciphertext: row.try_get("ciphertext").map_err(e())?,
                updated_at: from_ts(row.try_get("updated_at").map_err(e())?, "secret updated_at")?,
            })
        }

        fn subscription_from_row(row: &DbRow) -> Result<SubscriptionRow> {
            let e = || StoreError::db("reading a subscription");
            Ok(SubscriptionRow {
                id: row.try_get("id").map_err(e())?,
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e())?),
                room_id: RoomId::from_uuid(row.try_get("room_id").map_err(e())?),
                resource: row.try_get("resource").map_err(e())?,
                client_state_hash: row.try_get("client_state_hash").map_err(e())?,
                rich: row.try_get("rich").map_err(e())?,
                encryption_certificate_id: row.try_get("encryption_certificate_id").map_err(e())?,
                expires_at: from_ts(row.try_get("expires_at").map_err(e())?, "subscription expires_at")?,
                created_at: from_ts(row.try_get("created_at").map_err(e())?, "subscription created_at")?,
                updated_at: from_ts(row.try_get("updated_at").map_err(e())?, "subscription updated_at")?,
            })
        }

        fn tenant_settings_from_row(row: &DbRow) -> Result<TenantSettingsRow> {
            let e = || StoreError::db("reading tenant settings");
            Ok(TenantSettingsRow {
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e())?),
                document: row.try_get("document").map_err(e())?,
                version: row.try_get("version").map_err(e())?,
                updated_at: from_ts(row.try_get("updated_at").map_err(e())?, "tenant settings updated_at")?,
            })
        }

        fn encryption_key_from_row(row: &DbRow) -> Result<EncryptionKeyRow> {
            let e = || StoreError::db("reading an encryption key");
            Ok(EncryptionKeyRow {
                id: row.try_get("id").map_err(e())?,
                certificate_der: row.try_get("certificate").map_err(e())?,
                thumbprint: row.try_get("thumbprint").map_err(e())?,
                not_before: from_ts(row.try_get("not_before").map_err(e())?, "encryption key not_before")?,
                not_after: from_ts(row.try_get("not_after").map_err(e())?, "encryption key not_after")?,
                key_id: row.try_get("key_id").map_err(e())?,
                sealed_private_key: row.try_get("sealed_private_key").map_err(e())?,
                created_at: from_ts(row.try_get("created_at").map_err(e())?, "encryption key created_at")?,
            })
        }

        fn inbox_from_row(row: &DbRow) -> Result<InboxItem> {
            let e = || StoreError::db("reading an inbox item");
            let payload: String = row.try_get("payload").map_err(e())?;
            Ok(InboxItem {
                id: row.try_get("id").map_err(e())?,
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e())?),
                source: row.try_get::<String, _>("source").map_err(e())?.parse()?,
                received_at: from_ts(row.try_get("received_at").map_err(e())?, "inbox received_at")?,
                remote_ip: row.try_get("remote_ip").map_err(e())?,
                payload: serde_json::from_str(&payload)
                    .map_err(|err| StoreError::Corrupt { what: "inbox payload".into(), reason: err.to_string() })?,
                processed_at: opt_ts(row.try_get("processed_at").map_err(e())?, "inbox processed_at")?,
            })
        }

        fn job_from_row(row: &DbRow) -> Result<Job> {
            let e = || StoreError::db("reading job");
            let payload: String = row.try_get("payload").map_err(e())?;
            Ok(Job {
                id: JobId(row.try_get("id").map_err(e())?),
                tenant_id: TenantId::from_uuid(row.try_get("tenant_id").map_err(e())?),
                lane: row.try_get("lane").map_err(e())?,
                kind: row.try_get("kind").map_err(e())?,
                payload: serde_json::from_str(&payload)
                    .map_err(|err| StoreError::Corrupt { what: "job payload".into(), reason: err.to_string() })?,
                correlation_id: row.try_get::<Option<Uuid>, _>("correlation_id").map_err(e())?.map(CorrelationId::from_uuid),
                status: row.try_get::<String, _>("status").map_err(e())?.parse()?,
                attempts: count(row.try_get("attempts").map_err(e())?, "job attempts")?,
                run_at: from_ts(row.try_get("run_at").map_err(e())?, "job run_at")?,
                lease_owner: row.try_get("lease_owner").map_err(e())?,
                lease_expires_at: opt_ts(row.try_get("lease_expires_at").map_err(e())?, "job lease_expires_at")?,
                last_error: row.try_get("last_error").map_err(e())?,
                created_at: from_ts(row.try_get("created_at").map_err(e())?, "job created_at")?,
                finished_at: opt_ts(row.try_get("finished_at").map_err(e())?, "job finished_at")?,
            })
        }

        async fn insert_events(
            tx: &mut Tx,
            record: &BookingRecord,
            events: &[NewBookingEvent],
        ) -> Result<()> {
            for ev in events {
                sqlx::query(
                    "INSERT INTO booking_events (tenant_id, booking_id, correlation_id, at, kind, side, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(record.tenant_id.as_uuid())
                .bind(record.id.as_uuid())
                .bind(record.correlation_id.as_uuid())
                .bind(ts(ev.at))
                .bind(ev.kind.clone())
                .bind(ev.side.map(|s| s.as_str()))
                .bind(ev.detail.to_string())
                .execute(&mut **tx)
                .await
                .map_err(StoreError::db("appending a booking event"))?;
            }
            Ok(())
        }

        async fn insert_job(tx: &mut Tx, job: &NewJob, now: DateTime<Utc>) -> Result<JobId> {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO jobs (tenant_id, lane, kind, payload, correlation_id, status, attempts, run_at, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $7) RETURNING id",
            )
            .bind(job.lane.tenant_id.as_uuid())
            .bind(job.lane.key.clone())
            .bind(job.kind.clone())
            .bind(job.payload.to_string())
            .bind(job.correlation_id.map(|c| c.as_uuid()))
            .bind(ts(job.run_at.unwrap_or(now)))
            .bind(ts(now))
            .fetch_one(&mut **tx)
            .await
            .map_err(StoreError::db("enqueueing a job"))?;
            Ok(JobId(id))
        }

        async fn insert_audit(tx: &mut Tx, entry: &NewAuditEntry) -> Result<AuditEntry> {
            let row = sqlx::query(
                "INSERT INTO audit_log (tenant_id, at, actor, action, target, ip) VALUES ($1, $2, $3, $4, $5, $6) \
                 RETURNING *",
            )
            .bind(entry.tenant_id.map(|t| t.as_uuid()))
            .bind(ts(entry.at))
            .bind(entry.actor.clone())
            .bind(entry.action.clone())
            .bind(entry.target.clone())
            .bind(entry.ip.clone())
            .fetch_one(&mut **tx)
            .await
            .map_err(StoreError::db("appending to the audit log"))?;
            audit_from_row(&row)
        }

        async fn commit(tx: Tx, context: &'static str) -> Result<()> {
            tx.commit().await.map_err(StoreError::db(context))
        }

        fn require<T>(value: Option<T>, what: impl FnOnce() -> String) -> Result<T> {
            value.ok_or_else(|| StoreError::NotFound { what: what() })
        }

        /// The lease holder's update touched no row: the lease is gone (expired and re-queued, or re-claimed).
        fn check_lease(done: <$db as sqlx::Database>::QueryResult, lease: &Lease) -> Result<()> {
            if done.rows_affected() == 0 {
                return Err(StoreError::LeaseLost { job: lease.job_id.0 });
            }
            Ok(())
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> BackendKind {
                $kind
            }

            async fn migrate(&self) -> Result<()> {
                self.run_migrations().await
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
                     ORDER BY start_at, id",
                )
                .bind(tenant.as_uuid())
                .bind(filter.room.map(|r| r.as_uuid()))
                .bind(filter.series.map(|s| s.as_uuid()))
                .bind(filter.from.map(ts))
                .bind(filter.to.map(ts))
                .bind(filter.include_cancelled)
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
                     encryption_certificate_id, expires_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (id) DO UPDATE SET room_id = excluded.room_id, resource = excluded.resource, \
                     client_state_hash = excluded.client_state_hash, rich = excluded.rich, \
                     encryption_certificate_id = excluded.encryption_certificate_id, \
                     expires_at = excluded.expires_at, updated_at = excluded.updated_at \
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
                let mut tx = self.begin_write().await?;
                let id = insert_job(&mut tx, job, now).await?;
                commit(tx, "enqueueing a job").await?;
                Ok(id)
            }

            async fn claim_job(&self, worker: &str, now: DateTime<Utc>, lease: Duration) -> Result<Option<ClaimedJob>> {
                let mut tx = self.begin_write().await?;
                let id: Option<i64> = sqlx::query_scalar($claim_sql)
                    .bind(ts(now))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::db("claiming a job"))?;
                let Some(id) = id else {
                    return Ok(None);
                };
                let token = Uuid::new_v4();
                let claimed = sqlx::query(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = $2, lease_token = $3, \
                     lease_expires_at = $4, updated_at = $5 WHERE id = $1 AND status = 'queued' RETURNING *",
                )
                .bind(id)
                .bind(worker.to_owned())
                .bind(token)
                .bind(ts(now + lease))
                .bind(ts(now))
                .fetch_optional(&mut *tx)
                .await;
                let row = match claimed {
                    Ok(Some(row)) => row,
                    Ok(None) => return Ok(None),
                    // Another process started a job of this lane between our read and our write: the
                    // partial unique index kept the lane invariant; this worker simply finds nothing now.
                    Err(err) if is_unique_violation(&err) => return Ok(None),
                    Err(err) => return Err(StoreError::db("claiming a job")(err)),
                };
                let job = job_from_row(&row)?;
                commit(tx, "claiming a job").await?;
                Ok(Some(ClaimedJob { lease: Lease { job_id: job.id, token }, job }))
            }

            async fn heartbeat(&self, lease: &Lease, now: DateTime<Utc>, extend: Duration) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE jobs SET lease_expires_at = $3, updated_at = $4 \
                     WHERE id = $1 AND lease_token = $2 AND status = 'running'",
                )
                .bind(lease.job_id.0)
                .bind(lease.token)
                .bind(ts(now + extend))
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("extending a lease"))?;
                check_lease(done, lease)?;
                commit(tx, "extending a lease").await
            }

            async fn complete_job(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE jobs SET status = 'done', finished_at = $3, updated_at = $3, lease_owner = NULL, \
                     lease_token = NULL, lease_expires_at = NULL \
                     WHERE id = $1 AND lease_token = $2 AND status = 'running'",
                )
                .bind(lease.job_id.0)
                .bind(lease.token)
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("completing a job"))?;
                check_lease(done, lease)?;
                commit(tx, "completing a job").await
            }

            async fn fail_job(
                &self,
                lease: &Lease,
                error: &str,
                retry_at: Option<DateTime<Utc>>,
                now: DateTime<Utc>,
            ) -> Result<JobOutcome> {
                let mut tx = self.begin_write().await?;
                let error = error.chars().take(4000).collect::<String>();
                // A retry goes back to `queued` at `retry_at`; no retry means `dead`, finished now.
                let done = sqlx::query(
                    "UPDATE jobs SET status = CASE WHEN $4 IS NULL THEN 'dead' ELSE 'queued' END, \
                     run_at = COALESCE($4, run_at), \
                     finished_at = CASE WHEN $4 IS NULL THEN $3 ELSE NULL END, \
                     updated_at = $3, last_error = $5, lease_owner = NULL, lease_token = NULL, \
                     lease_expires_at = NULL \
                     WHERE id = $1 AND lease_token = $2 AND status = 'running'",
                )
                .bind(lease.job_id.0)
                .bind(lease.token)
                .bind(ts(now))
                .bind(retry_at.map(ts))
                .bind(error)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("failing a job"))?;
                check_lease(done, lease)?;
                commit(tx, "failing a job").await?;
                Ok(retry_at.map_or(JobOutcome::Dead, JobOutcome::RetryAt))
            }

            async fn requeue_expired(&self, now: DateTime<Utc>, max_attempts: u32) -> Result<u64> {
                let mut tx = self.begin_write().await?;
                let dead = sqlx::query(
                    "UPDATE jobs SET status = 'dead', finished_at = $1, updated_at = $1, \
                     last_error = 'lease expired after the last allowed attempt (worker stopped or hung)', \
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
                     WHERE status = 'running' AND lease_expires_at < $1 AND attempts >= $2",
                )
                .bind(ts(now))
                .bind(i64::from(max_attempts))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("requeueing expired jobs"))?;
                let requeued = sqlx::query(
                    "UPDATE jobs SET status = 'queued', updated_at = $1, \
                     last_error = 'lease expired (worker stopped or hung); run again', \
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
                     WHERE status = 'running' AND lease_expires_at < $1",
                )
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("requeueing expired jobs"))?;
                commit(tx, "requeueing expired jobs").await?;
                Ok(dead.rows_affected() + requeued.rows_affected())
            }

            async fn release_jobs_of(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64> {
                if owner_prefix.is_empty() {
                    return Err(StoreError::InvalidArgument {
                        reason: "an empty lease-owner prefix would release every instance's jobs".into(),
                    });
                }
                let mut tx = self.begin_write().await?;
                let released = sqlx::query(
                    "UPDATE jobs SET status = 'queued', updated_at = $1, \
                     last_error = 'the instance running it started again; run again', \
                     lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
                     WHERE status = 'running' AND substr(lease_owner, 1, length($2)) = $2",
                )
                .bind(ts(now))
                .bind(owner_prefix)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("releasing an instance's jobs"))?;
                commit(tx, "releasing an instance's jobs").await?;
                Ok(released.rows_affected())
            }

            async fn get_job(&self, tenant: TenantId, job: JobId) -> Result<Job> {
                let row = sqlx::query("SELECT * FROM jobs WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(job.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a job"))?;
                job_from_row(&require(row, || format!("job {job}"))?)
            }

            async fn list_jobs(&self, tenant: TenantId, status: JobStatus) -> Result<Vec<Job>> {
                let rows = sqlx::query("SELECT * FROM jobs WHERE tenant_id = $1 AND status = $2 ORDER BY id")
                    .bind(tenant.as_uuid())
                    .bind(status.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing jobs"))?;
                rows.iter().map(job_from_row).collect()
            }

            async fn retry_dead_jobs(
                &self,
                tenant: TenantId,
                job: Option<JobId>,
                now: DateTime<Utc>,
                audit: &NewAuditEntry,
            ) -> Result<u64> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $3, finished_at = NULL, \
                     updated_at = $3 WHERE tenant_id = $1 AND status = 'dead' AND ($2 IS NULL OR id = $2)",
                )
                .bind(tenant.as_uuid())
                .bind(job.map(|j| j.0))
                .bind(ts(now))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::db("retrying dead jobs"))?;
                let count = done.rows_affected();
                if count == 0 {
                    // Nothing written; say why when one job was named.
                    if let Some(job) = job {
                        return Err(not_dead(&mut tx, tenant, job).await);
                    }
                    return Ok(0);
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, "retrying dead jobs").await?;
                Ok(count)
            }

            async fn dismiss_dead_job(&self, tenant: TenantId, job: JobId, audit: &NewAuditEntry) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM jobs WHERE tenant_id = $1 AND id = $2 AND status = 'dead'")
                    .bind(tenant.as_uuid())
                    .bind(job.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::db("dismissing a dead job"))?;
                if done.rows_affected() == 0 {
                    return Err(not_dead(&mut tx, tenant, job).await);
                }
                insert_audit(&mut tx, audit).await?;
                commit(tx, "dismissing a dead job").await
            }

            async fn purge_expired(
                &self,
                tenant: TenantId,
                cutoffs: &orb_core::PurgeCutoffs,
                actor: &str,
                now: DateTime<Utc>,
                dry_run: bool,
            ) -> Result<PurgeCounts> {
                let mut tx = self.begin_write().await?;
                ensure_tenant(&mut tx, tenant).await?;
                open_gate(&mut tx, "purge").await?;
                let delete = |sql: &'static str, cutoff: DateTime<Utc>| {
                    sqlx::query(sql).bind(tenant.as_uuid()).bind(ts(cutoff))
                };
                let what = "purging expired rows";
                let counts = PurgeCounts {
                    inbox: delete($crate::sql::PURGE_INBOX, cutoffs.finished_jobs)
                        .execute(&mut *tx).await.map_err(StoreError::db(what))?.rows_affected(),
                    done_jobs: delete($crate::sql::PURGE_DONE_JOBS, cutoffs.finished_jobs)
                        .execute(&mut *tx).await.map_err(StoreError::db(what))?.rows_affected(),
                    dead_jobs: delete($crate::sql::PURGE_DEAD_JOBS, cutoffs.bookings)
                        .execute(&mut *tx).await.map_err(StoreError::db(what))?.rows_affected(),
                    booking_events: delete($crate::sql::PURGE_BOOKING_EVENTS, cutoffs.bookings)
                        .execute(&mut *tx).await.map_err(StoreError::db(what))?.rows_affected(),
                    bookings: delete($crate::sql::PURGE_BOOKINGS, cutoffs.bookings)
                        .execute(&mut *tx).await.map_err(StoreError::db(what))?.rows_affected(),
                    series: delete($crate::sql::PURGE_SERIES, cutoffs.bookings)
                        .execute(&mut *tx).await.map_err(StoreError::db(what))?.rows_affected(),
                    audit: delete($crate::sql::PURGE_AUDIT, cutoffs.audit)
                        .execute(&mut *tx).await.map_err(StoreError::db(what))?.rows_affected(),
                };
                close_gate(&mut tx).await?;
                if dry_run {
                    tx.rollback().await.map_err(StoreError::db("rolling a dry-run purge back"))?;
                    return Ok(counts);
                }
                if counts.total() > 0 {
                    let entry = NewAuditEntry {
                        tenant_id: Some(tenant),
                        at: now,
                        actor: actor.to_owned(),
                        action: "retention.purged".into(),
                        target: counts.to_string(),
                        ip: None,
                    };
                    insert_audit(&mut tx, &entry).await?;
                }
                commit(tx, what).await?;
                Ok(counts)
            }

            async fn person_data(&self, tenant: TenantId, address: &EmailAddress) -> Result<PersonData> {
                let mut tx = self.pool.begin().await.map_err(StoreError::db("starting a transaction"))?;
                ensure_tenant(&mut tx, tenant).await?;
                let data = read_person(&mut tx, tenant, address).await?;
                tx.rollback().await.map_err(StoreError::db("reading a person's data"))?;
                Ok(data.0)
            }

            async fn erase_person(
                &self,
                tenant: TenantId,
                address: &EmailAddress,
                pseudonym: &EmailAddress,
                actor: &str,
                now: DateTime<Utc>,
            ) -> Result<ErasureCounts> {
                if address == pseudonym || orb_core::privacy::mentions(pseudonym.as_str(), address) {
                    return Err(StoreError::InvalidArgument {
                        reason: "the pseudonym must differ from the address it replaces".into(),
                    });
                }
                let mut tx = self.begin_write().await?;
                ensure_tenant(&mut tx, tenant).await?;
                let (data, raw) = read_person(&mut tx, tenant, address).await?;
                open_gate(&mut tx, "erase").await?;
                let with = pseudonym.as_str();
                let swap = |a: &EmailAddress| if a == address { pseudonym.clone() } else { a.clone() };
                let text = |t: &Option<String>| {
                    t.as_deref().map(|t| orb_core::privacy::replace_address(t, address, with).unwrap_or_else(|| t.to_owned()))
                };
                let what = "erasing a person";
                let mut counts = ErasureCounts::default();
                for r in &data.bookings {
                    let participants: Vec<EmailAddress> = r.participants.iter().map(swap).collect();
                    sqlx::query($crate::sql::ERASE_BOOKING)
                        .bind(tenant.as_uuid())
                        .bind(r.id.as_uuid())
                        .bind(swap(&r.organizer).as_str().to_owned())
                        .bind(swap(&r.original_organizer).as_str().to_owned())
                        .bind(r.booked_by.as_ref().map(|b| swap(b).as_str().to_owned()))
                        .bind(serde_json::to_string(&participants).unwrap_or_else(|_| "[]".to_owned()))
                        .bind(text(&r.subject))
                        .bind(text(&r.location_text))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(what))?;
                    counts.bookings += 1;
                }
                for s in &data.series {
                    sqlx::query("UPDATE series SET organizer = $3 WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_uuid())
                        .bind(s.id.as_uuid())
                        .bind(swap(&s.organizer).as_str().to_owned())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(what))?;
                    counts.series += 1;
                }
                let replaced = |t: &str| orb_core::privacy::replace_address(t, address, with);
                for (id, detail) in &raw.booking_events {
                    let Some(detail) = replaced(detail) else { continue };
                    sqlx::query("UPDATE booking_events SET detail = $3 WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_uuid())
                        .bind(*id)
                        .bind(detail)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(what))?;
                    counts.booking_events += 1;
                }
                for a in &data.audit {
                    sqlx::query("UPDATE audit_log SET actor = $3, target = $4 WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_uuid())
                        .bind(a.id)
                        .bind(replaced(&a.actor).unwrap_or_else(|| a.actor.clone()))
                        .bind(replaced(&a.target).unwrap_or_else(|| a.target.clone()))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(what))?;
                    counts.audit += 1;
                }
                for (id, payload, last_error) in &raw.jobs {
                    sqlx::query("UPDATE jobs SET payload = $3, last_error = $4 WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_uuid())
                        .bind(*id)
                        .bind(replaced(payload).unwrap_or_else(|| payload.clone()))
                        .bind(text(last_error))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(what))?;
                    counts.jobs += 1;
                }
                for (id, payload) in &raw.inbox {
                    let Some(payload) = replaced(payload) else { continue };
                    sqlx::query("UPDATE inbox SET payload = $3 WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_uuid())
                        .bind(*id)
                        .bind(payload)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::db(what))?;
                    counts.inbox += 1;
                }
                close_gate(&mut tx).await?;
                let entry = NewAuditEntry {
                    tenant_id: Some(tenant),
                    at: now,
                    actor: actor.to_owned(),
                    action: "privacy.erased".into(),
                    target: format!("{pseudonym}: {counts}"),
                    ip: None,
                };
                insert_audit(&mut tx, &entry).await?;
                commit(tx, what).await?;
                let after: Option<&'static str> = $after_erase;
                if let Some(sql) = after {
                    // Best effort: old page images in the write-ahead log are dropped now, not at some
                    // later checkpoint; a busy reader only delays it.
                    if let Err(err) = sqlx::query(sql).execute(&self.pool).await {
                        tracing::warn!(error = %err, "checkpoint after an erasure failed; the next one drops the old pages");
                    }
                }
                Ok(counts)
            }
        }

        /// [`StoreError::NotFound`] unless the tenant exists.
        async fn ensure_tenant(tx: &mut Tx, tenant: TenantId) -> Result<()> {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1")
                .bind(tenant.as_uuid())
                .fetch_optional(&mut **tx)
                .await
                .map_err(StoreError::db("looking up a tenant"))?;
            require(exists, || format!("tenant {tenant}")).map(|_| ())
        }

        /// Lets this transaction delete (`purge`) or update (`erase`) the append-only tables (migration 4).
        async fn open_gate(tx: &mut Tx, mode: &'static str) -> Result<()> {
            sqlx::query($gate_open).bind(mode).execute(&mut **tx).await.map_err(StoreError::db("opening the append-only gate"))?;
            Ok(())
        }

        /// Shuts the gate again before the transaction commits.
        async fn close_gate(tx: &mut Tx) -> Result<()> {
            sqlx::query($gate_close).execute(&mut **tx).await.map_err(StoreError::db("closing the append-only gate"))?;
            Ok(())
        }

        /// The raw text columns an erasure rewrites: `(id, detail)` of timeline entries, `(id, payload,
        /// last_error)` of jobs, `(id, payload)` of inbox items — each naming the person.
        #[derive(Default)]
        struct RawPersonRows {
            booking_events: Vec<(i64, String)>,
            jobs: Vec<(i64, String, Option<String>)>,
            inbox: Vec<(i64, String)>,
        }

        /// Everything naming `address` in the tenant's tables, parsed and (for an erasure) as stored text.
        async fn read_person(tx: &mut Tx, tenant: TenantId, address: &EmailAddress) -> Result<(PersonData, RawPersonRows)> {
            use orb_core::privacy::mentions;
            let pattern = $crate::sql::like_pattern(address.as_str());
            let what = "reading a person's data";
            let fetch = |sql: &'static str| sqlx::query(sql).bind(tenant.as_uuid()).bind(pattern.clone());
            let names = |t: &Option<String>| t.as_deref().is_some_and(|t| mentions(t, address));
            let mut data = PersonData::default();
            let mut raw = RawPersonRows::default();
            for row in fetch($crate::sql::PERSON_BOOKINGS).fetch_all(&mut **tx).await.map_err(StoreError::db(what))? {
                let r = booking_from_row(&row)?;
                if r.organizer == *address
                    || r.original_organizer == *address
                    || r.booked_by.as_ref() == Some(address)
                    || r.participants.contains(address)
                    || names(&r.subject)
                    || names(&r.location_text)
                {
                    data.bookings.push(r);
                }
            }
            let mut events = std::collections::BTreeMap::new();
            for r in &data.bookings {
                let rows = sqlx::query("SELECT * FROM booking_events WHERE tenant_id = $1 AND booking_id = $2 ORDER BY id")
                    .bind(tenant.as_uuid())
                    .bind(r.id.as_uuid())
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(StoreError::db(what))?;
                for row in rows {
                    let e = event_from_row(&row)?;
                    events.insert(e.id, e);
                }
            }
            for row in fetch($crate::sql::PERSON_BOOKING_EVENTS).fetch_all(&mut **tx).await.map_err(StoreError::db(what))? {
                let detail: String = row.try_get("detail").map_err(StoreError::db(what))?;
                if mentions(&detail, address) {
                    let e = event_from_row(&row)?;
                    raw.booking_events.push((e.id, detail));
                    events.insert(e.id, e);
                }
            }
            data.booking_events = events.into_values().collect();
            for row in fetch($crate::sql::PERSON_SERIES).fetch_all(&mut **tx).await.map_err(StoreError::db(what))? {
                let s = series_from_row(&row)?;
                if s.organizer == *address {
                    data.series.push(s);
                }
            }
            for row in fetch($crate::sql::PERSON_AUDIT).fetch_all(&mut **tx).await.map_err(StoreError::db(what))? {
                let a = audit_from_row(&row)?;
                if mentions(&a.actor, address) || mentions(&a.target, address) {
                    data.audit.push(a);
                }
            }
            for row in fetch($crate::sql::PERSON_JOBS).fetch_all(&mut **tx).await.map_err(StoreError::db(what))? {
                let payload: String = row.try_get("payload").map_err(StoreError::db(what))?;
                let last_error: Option<String> = row.try_get("last_error").map_err(StoreError::db(what))?;
                if mentions(&payload, address) || names(&last_error) {
                    let job = job_from_row(&row)?;
                    raw.jobs.push((job.id.0, payload, last_error));
                    data.jobs.push(job);
                }
            }
            for row in fetch($crate::sql::PERSON_INBOX).fetch_all(&mut **tx).await.map_err(StoreError::db(what))? {
                let payload: String = row.try_get("payload").map_err(StoreError::db(what))?;
                if mentions(&payload, address) {
                    let item = inbox_from_row(&row)?;
                    raw.inbox.push((item.id, payload));
                    data.inbox.push(item);
                }
            }
            Ok((data, raw))
        }

        /// Why an operator action on the dead job `job` touched no row: it is unknown for this tenant
        /// ([`StoreError::NotFound`]) or not dead ([`StoreError::NotDead`]).
        async fn not_dead(tx: &mut Tx, tenant: TenantId, job: JobId) -> StoreError {
            let status: std::result::Result<Option<String>, _> =
                sqlx::query_scalar("SELECT status FROM jobs WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(job.0)
                    .fetch_optional(&mut **tx)
                    .await;
            match status {
                Err(err) => StoreError::db("reading a job")(err),
                Ok(None) => StoreError::NotFound { what: format!("job {job}") },
                Ok(Some(status)) => match status.parse::<JobStatus>() {
                    Ok(status) => StoreError::NotDead { job: job.0, status: status.as_str() },
                    Err(err) => err,
                },
            }
        }
    };
}
pub(crate) use impl_store;
