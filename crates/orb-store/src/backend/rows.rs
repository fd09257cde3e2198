//! Row mapping and the transaction helpers every area of the store uses (see [`super`]).

/// The `*_from_row` functions and shared helpers, for one back-end's row type.
macro_rules! impl_rows {
    (db = $db:ty,) => {
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
                watermark: row.try_get("watermark").map_err(e())?,
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

    };
}
pub(crate) use impl_rows;
