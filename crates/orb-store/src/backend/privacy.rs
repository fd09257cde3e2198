//! The retention purge and per-person export and erasure (migration 4's gate), for both back-ends (see
//! [`super`]): the only statements allowed to delete from or update the append-only tables.

/// Inherent methods the [`Store`](crate::Store) implementation forwards to, and their helpers.
macro_rules! impl_privacy {
    (
        store = $store:ident,
        gate_open = $gate_open:expr,
        gate_close = $gate_close:expr,
        after_erase = $after_erase:expr,
    ) => {
        impl $store {
            pub(crate) async fn purge_expired_in(
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

            pub(crate) async fn person_data_in(&self, tenant: TenantId, address: &EmailAddress) -> Result<PersonData> {
                let mut tx = self.pool.begin().await.map_err(StoreError::db("starting a transaction"))?;
                ensure_tenant(&mut tx, tenant).await?;
                let data = read_person(&mut tx, tenant, address).await?;
                tx.rollback().await.map_err(StoreError::db("reading a person's data"))?;
                Ok(data.0)
            }

            pub(crate) async fn erase_person_in(
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

    };
}
pub(crate) use impl_privacy;
