//! The job queue (lanes, leases, retries, dead jobs) for both back-ends (see [`super`] and `crate::queue`).

/// Inherent methods the [`Store`](crate::Store) implementation forwards to, and their helpers.
macro_rules! impl_queue {
    (
        store = $store:ident,
        claim_sql = $claim_sql:expr,
    ) => {
        impl $store {
            pub(crate) async fn enqueue_in(&self, job: &NewJob, now: DateTime<Utc>) -> Result<JobId> {
                let mut tx = self.begin_write().await?;
                let id = insert_job(&mut tx, job, now).await?;
                commit(tx, "enqueueing a job").await?;
                $crate::backend::count_enqueued([job]);
                Ok(id)
            }

            pub(crate) async fn claim_job_in(&self, worker: &str, now: DateTime<Utc>, lease: Duration) -> Result<Option<ClaimedJob>> {
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

            pub(crate) async fn heartbeat_in(&self, lease: &Lease, now: DateTime<Utc>, extend: Duration) -> Result<()> {
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

            pub(crate) async fn complete_job_in(&self, lease: &Lease, now: DateTime<Utc>) -> Result<()> {
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

            pub(crate) async fn fail_job_in(
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

            pub(crate) async fn requeue_expired_in(&self, now: DateTime<Utc>, max_attempts: u32) -> Result<u64> {
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

            pub(crate) async fn release_jobs_of_in(&self, owner_prefix: &str, now: DateTime<Utc>) -> Result<u64> {
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

            pub(crate) async fn get_job_in(&self, tenant: TenantId, job: JobId) -> Result<Job> {
                let row = sqlx::query("SELECT * FROM jobs WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_uuid())
                    .bind(job.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a job"))?;
                job_from_row(&require(row, || format!("job {job}"))?)
            }

            pub(crate) async fn queue_stats_in(&self, now: DateTime<Utc>) -> Result<QueueStats> {
                let row = sqlx::query(
                    "SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'queued') AS queued, \
                     (SELECT COUNT(*) FROM jobs WHERE status = 'running') AS running, \
                     (SELECT COUNT(*) FROM jobs WHERE status = 'dead') AS dead, \
                     (SELECT MIN(run_at) FROM jobs WHERE status = 'queued' AND run_at <= $1) AS oldest_due",
                )
                .bind(ts(now))
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::db("counting the queue's jobs"))?;
                let count = |name: &str| -> Result<u64> {
                    let n: i64 = row.try_get(name).map_err(StoreError::db("counting the queue's jobs"))?;
                    Ok(u64::try_from(n).unwrap_or(0))
                };
                let oldest: Option<i64> =
                    row.try_get("oldest_due").map_err(StoreError::db("counting the queue's jobs"))?;
                Ok(QueueStats {
                    queued: count("queued")?,
                    running: count("running")?,
                    dead: count("dead")?,
                    oldest_due: opt_ts(oldest, "jobs.run_at")?,
                })
            }

            pub(crate) async fn list_jobs_in(&self, tenant: TenantId, status: JobStatus) -> Result<Vec<Job>> {
                let rows = sqlx::query("SELECT * FROM jobs WHERE tenant_id = $1 AND status = $2 ORDER BY id")
                    .bind(tenant.as_uuid())
                    .bind(status.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db("listing jobs"))?;
                rows.iter().map(job_from_row).collect()
            }

            pub(crate) async fn retry_dead_jobs_in(
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

            pub(crate) async fn dismiss_dead_job_in(&self, tenant: TenantId, job: JobId, audit: &NewAuditEntry) -> Result<()> {
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
pub(crate) use impl_queue;
