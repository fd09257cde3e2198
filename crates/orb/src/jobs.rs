//! `orb jobs list | retry | dismiss`: the operator's view of the durable job queue.
//!
//! A listing never shows a job's payload (it may name people); a retry puts dead jobs back in the queue
//! with their attempts reset, due now; a dismissal removes a dead job that should not run again. Both are
//! audited (actor `cli`) in the same transaction as the change. Job ids are global, so a job named by id is
//! looked up tenant by tenant, and every change is made through the tenant-scoped store calls.

use anyhow::{Result, bail};
use chrono::Utc;
use orb_store::{Job, JobId, JobStatus, Store, StoreError, Tenant};

use crate::JobsCommand;
use crate::commands::{audit, find_tenant};

/// Runs one `orb jobs` command.
pub async fn run(store: &dyn Store, cmd: JobsCommand) -> Result<()> {
    match cmd {
        JobsCommand::List { tenant, dead } => list(store, tenant.as_deref(), dead).await,
        JobsCommand::Retry { id: Some(id), .. } => {
            let (tenant, job) = find_job(store, id).await?;
            let entry = audit(&tenant, "jobs.retry", &describe(&job));
            store.retry_dead_jobs(tenant.id, Some(job.id), Utc::now(), &entry).await?;
            out!("job {} of tenant {} is queued again (attempts reset, due now)", job.id, tenant.name);
            Ok(())
        }
        JobsCommand::Retry { id: None, tenant, .. } => {
            let mut total = 0;
            for tenant in tenants(store, tenant.as_deref()).await? {
                let dead = store.list_jobs(tenant.id, JobStatus::Dead).await?;
                if dead.is_empty() {
                    continue;
                }
                let ids: Vec<String> = dead.iter().map(|j| j.id.to_string()).collect();
                let entry =
                    audit(&tenant, "jobs.retry", &format!("every dead job (jobs {})", ids.join(", ")));
                let count = store.retry_dead_jobs(tenant.id, None, Utc::now(), &entry).await?;
                out!("tenant {}: {count} dead job(s) queued again (attempts reset, due now)", tenant.name);
                total += count;
            }
            if total == 0 {
                out!("no dead jobs; nothing to retry");
            }
            Ok(())
        }
        JobsCommand::Dismiss { id } => {
            let (tenant, job) = find_job(store, id).await?;
            store
                .dismiss_dead_job(tenant.id, job.id, &audit(&tenant, "jobs.dismiss", &describe(&job)))
                .await?;
            out!("dismissed dead job {} of tenant {}; it will not run again", job.id, tenant.name);
            Ok(())
        }
    }
}

/// The tenant named, or every tenant.
async fn tenants(store: &dyn Store, name: Option<&str>) -> Result<Vec<Tenant>> {
    Ok(match name {
        Some(name) => vec![find_tenant(store, name).await?],
        None => store.list_tenants().await?,
    })
}

/// The job with this id and its tenant; an unknown id is refused.
async fn find_job(store: &dyn Store, id: i64) -> Result<(Tenant, Job)> {
    for tenant in store.list_tenants().await? {
        match store.get_job(tenant.id, JobId(id)).await {
            Ok(job) => return Ok((tenant, job)),
            Err(StoreError::NotFound { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    bail!("there is no job {id}; see `orb jobs list --dead` for the dead jobs")
}

/// What the audit log keeps of a job: id, kind, lane and last error (not the payload).
fn describe(job: &Job) -> String {
    format!(
        "job {} ({}, lane {}, {} attempt(s), last error: {})",
        job.id,
        job.kind,
        job.lane,
        job.attempts,
        one_line(job.last_error.as_deref().unwrap_or("-"))
    )
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn list(store: &dyn Store, tenant: Option<&str>, dead_only: bool) -> Result<()> {
    let statuses: &[JobStatus] = if dead_only {
        &[JobStatus::Dead]
    } else {
        &[JobStatus::Queued, JobStatus::Running, JobStatus::Dead]
    };
    let mut rows = Vec::new();
    for tenant in tenants(store, tenant).await? {
        for status in statuses {
            for job in store.list_jobs(tenant.id, *status).await? {
                rows.push((tenant.name.clone(), job));
            }
        }
    }
    if rows.is_empty() {
        out!("{}", if dead_only { "no dead jobs" } else { "no queued, running or dead jobs" });
        return Ok(());
    }
    rows.sort_by_key(|(_, job)| job.id);
    out!("id\ttenant\tkind\tlane\tstatus\tattempts\trun_at\tlast_error");
    for (tenant, job) in rows {
        out!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            job.id,
            tenant,
            job.kind,
            job.lane,
            job.status.as_str(),
            job.attempts,
            job.run_at.format("%Y-%m-%d %H:%M:%S UTC"),
            one_line(job.last_error.as_deref().unwrap_or("-"))
        );
    }
    Ok(())
}
