//! `orb sync --dry-run`, `orb sync --retry-failed` and `orb backfill`: onboarding rooms whose bookings
//! already exist on both sides, and repairing records a side owes.
//!
//! All of them compare each selected room's calendar, its TOPdesk reservations and ORB's records over the
//! window from a day back to the tenant's horizon — the reconciliation sweep ([`orb_engine::reconcile`]).
//! The dry run lists every difference and what ORB would do about it, and every record a side owes (a write
//! that failed, was cut off or drifted: booking, room, side, since when, the last error in its timeline),
//! and writes nothing. The backfill records the matching pairs (one record each, nothing written to either
//! side), enqueues the rest in the rooms' lanes — re-drives of owed records whose back-off is over included
//! — and runs workers until they are done, with a progress bar; `--retry-failed` does the same but
//! re-drives every owed record at once, ignoring the back-off; `--approve-mass-deletion` (one room) lets
//! the cancellations the mass-deletion guard would hold through and audits the approval;
//! `--reject-mass-deletion` (one room) cancels none of them but writes the bookings gone on one side to it
//! again, from the side that still has them, and audits the rejection. A running `orb serve` may take part of the
//! work, which is fine (lanes keep a room's work in order).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context, Result, bail};
use chrono::{Duration, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use orb_core::{BookingId, Clock, RoomMailbox, Side, SystemClock, TenantId};
use orb_crypto::{KeyRing, MasterKey};
use orb_engine::reconcile::{OwedBooking, SweepOptions, sweep_room_with};
use orb_engine::runtime::SyncDeps;
use orb_engine::worker::{Worker, WorkerOptions};
use orb_store::{JobStatus, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::commands::{audit, find_tenant, open_store};
use crate::config::Config;
use crate::serve::{Env, instance_name, load};

/// The audit action of `orb sync --approve-mass-deletion` (the guard's own entry is
/// [`orb_engine::reconcile::AUDIT_MASS_DELETION_HELD`]).
pub const AUDIT_MASS_DELETION_APPROVED: &str = "reconcile.mass_deletion_approved";

/// The audit action of `orb sync --reject-mass-deletion` (the portal's "Reject" writes the same).
pub const AUDIT_MASS_DELETION_REJECTED: &str = "reconcile.mass_deletion_rejected";

/// Which rooms.
pub struct Selection {
    /// Only this tenant (by name).
    pub tenant: Option<String>,
    /// Only this room mailbox.
    pub room: Option<String>,
}

/// What to do with them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    /// Only print.
    pub dry_run: bool,
    /// Re-drive every owed record now (ignoring the back-off).
    pub retry_failed: bool,
    /// Carry out the cancellations the mass-deletion guard would hold (one room; audited).
    pub approve_mass_deletion: bool,
    /// Restore instead the bookings those deletions would cancel: written to the side they vanished from
    /// again (one room; audited).
    pub reject_mass_deletion: bool,
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Exchange => "Exchange",
        Side::Topdesk => "TOPdesk",
    }
}

/// The last failure in a booking's timeline, in words (the side's own message when a write failed).
async fn last_error(store: &dyn Store, tenant: TenantId, booking: BookingId) -> Result<Option<String>> {
    let timeline = store.timeline(tenant, booking).await?;
    Ok(timeline.iter().rev().find(|e| e.kind == "failure" || e.kind == "write-failed").and_then(|e| {
        let text = e.detail.get("error").or_else(|| e.detail.get("detail"))?.as_str()?;
        Some(text.to_owned())
    }))
}

/// One line per owed record.
async fn print_owed(
    store: &dyn Store,
    tenant: TenantId,
    room: &RoomMailbox,
    owed: &OwedBooking,
) -> Result<()> {
    let state = match (&owed.waiting, owed.redriven) {
        (_, true) => "re-driven now".to_owned(),
        (Some(why), false) if owed.due > Utc::now() => {
            format!("waiting ({why}) until {}", owed.due.format("%Y-%m-%d %H:%M UTC"))
        }
        (Some(why), false) => format!("waiting ({why})"),
        (None, false) => "waiting".to_owned(),
    };
    let reason = last_error(store, tenant, owed.booking).await?.unwrap_or_else(|| "-".to_owned());
    out!(
        "  owed: booking {}  {}  {} – {}  {} {} since {}; {}; last error: {}",
        owed.booking,
        room,
        owed.start.format("%Y-%m-%d %H:%M"),
        owed.end.format("%H:%M UTC"),
        side_name(owed.side),
        owed.owing.as_str(),
        owed.since.format("%Y-%m-%d %H:%M UTC"),
        state,
        reason
    );
    Ok(())
}

/// Runs the sweep of every selected room (see the module docs).
pub async fn run(config: &Config, selection: Selection, run: Run) -> Result<()> {
    let master = MasterKey::from_process_env()?;
    let store = open_store(config).await?;
    let room_filter = selection.room.as_deref().map(RoomMailbox::parse).transpose()?;
    // A tenant or room that does not exist is refused by name, before anything is read or written.
    if let Some(name) = selection.tenant.as_deref() {
        let tenant = find_tenant(&*store, name).await?;
        if let Some(mailbox) = &room_filter
            && let Err(err) = store.room_by_mailbox(tenant.id, mailbox).await
        {
            if matches!(err, StoreError::NotFound { .. }) {
                bail!(
                    "tenant {} has no room {mailbox}; see `orb room list --tenant {}`",
                    tenant.name,
                    tenant.name
                );
            }
            return Err(err.into());
        }
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let env = Env::new(config, store.clone(), KeyRing::new(master), clock.clone());
    let deps = load(&env).await?.deps;
    let mut selected = Vec::new();
    for tenant in store.list_tenants().await? {
        if selection.tenant.as_deref().is_some_and(|t| t != tenant.name.as_str()) {
            continue;
        }
        let Some(runtime) = deps.tenants.get(&tenant.id) else {
            if selection.tenant.is_some() {
                bail!(
                    "tenant {} cannot be synced: its settings or secrets are incomplete (see `orb tenant \
                     settings --tenant {}` and `orb secret list --tenant {}`)",
                    tenant.name,
                    tenant.name,
                    tenant.name
                );
            }
            continue;
        };
        for room in runtime.rooms.iter().filter(|r| r.enabled) {
            if room_filter.as_ref().is_some_and(|m| m != &room.mailbox) {
                continue;
            }
            selected.push((tenant.clone(), room.clone(), runtime.policy.horizon));
        }
    }
    if selected.is_empty() {
        bail!("no enabled room matches; see `orb room list --tenant NAME`");
    }
    let options = SweepOptions {
        dry_run: run.dry_run,
        redrive_now: run.retry_failed,
        approve_mass_deletion: run.approve_mass_deletion,
        restore_held_deletions: run.reject_mass_deletion,
    };
    let mut approved = 0;
    let mut restored = 0;
    let mut enqueued = 0;
    let mut redriven = 0;
    let mut owed = 0;
    for (tenant, room, horizon) in &selected {
        let now = clock.now();
        let window = (now - Duration::days(1), now + *horizon);
        let report = sweep_room_with(&deps, tenant.id, room.id, window, now, options)
            .await
            .with_context(|| format!("sweeping {} of tenant {}", room.mailbox, tenant.name))?;
        out!(
            "{} / {}: {} event(s), {} reservation(s), {} record(s); {} to link, {} new, {} changed, {} to cancel, \
             {} held by the mass-deletion guard, {} to write back (deletions rejected), {} to write again ({} owed)",
            tenant.name,
            room.mailbox,
            report.events_read,
            report.reservations_read,
            report.records,
            report.paired,
            report.jobs.new,
            report.jobs.changed,
            report.jobs.deleted,
            report.held_deletions,
            report.restored,
            report.jobs.redriven - report.restored,
            report.owed.len()
        );
        for change in &report.planned {
            out!(
                "  {} – {}  {:<28} {}",
                change.start.format("%Y-%m-%d %H:%M"),
                change.end.format("%H:%M UTC"),
                change.organizer.as_str(),
                change.action()
            );
        }
        for entry in &report.owed {
            print_owed(&*store, tenant.id, &room.mailbox, entry).await?;
        }
        if run.approve_mass_deletion && !run.dry_run {
            // Who approved what, and when: the cancellations are enqueued, the workers below carry them out.
            let target = format!(
                "room {} ({}): an admin approved the sweep's {} cancellation(s) of {} record(s)",
                room.mailbox, room.id, report.jobs.deleted, report.records
            );
            store.append_audit(&audit(tenant, AUDIT_MASS_DELETION_APPROVED, &target)).await?;
            approved += report.jobs.deleted;
        }
        if run.reject_mass_deletion && !run.dry_run {
            // Who rejected what, and when: the bookings are written back by the workers below.
            let target = format!(
                "room {} ({}): an admin rejected the held deletions; {} booking(s) written back, {} still held",
                room.mailbox, room.id, report.restored, report.held_deletions
            );
            store.append_audit(&audit(tenant, AUDIT_MASS_DELETION_REJECTED, &target)).await?;
            restored += report.restored;
        }
        enqueued += report.jobs.total();
        redriven += report.jobs.redriven;
        owed += report.owed.len();
    }
    if run.dry_run {
        out!("dry run: nothing was written; run `orb backfill` with the same options to carry it out");
        if owed > 0 {
            out!(
                "{owed} owed record(s); `orb sync --retry-failed` writes them again now, ignoring the back-off"
            );
        }
        return Ok(());
    }
    drain(config, &deps, &store, &selected, enqueued).await?;
    if run.retry_failed {
        out!("re-drove {redriven} owed record(s)");
    }
    if run.approve_mass_deletion {
        out!("mass deletion approved: carried out {approved} cancellation(s)");
    }
    if run.reject_mass_deletion {
        out!("mass deletion rejected: wrote {restored} booking(s) back to the side they had vanished from");
    }
    Ok(())
}

/// Runs workers until the selected tenants have no queued or running job left.
async fn drain(
    config: &Config,
    deps: &Arc<SyncDeps>,
    store: &Arc<dyn Store>,
    selected: &[(orb_store::Tenant, orb_core::RoomMapping, Duration)],
    enqueued: usize,
) -> Result<()> {
    let mut tenants: Vec<_> = selected.iter().map(|(t, _, _)| t.id).collect();
    tenants.dedup();
    let bar = ProgressBar::new(enqueued as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} jobs  {elapsed}  {msg}")
            .expect("a valid template"),
    );
    let cancel = CancellationToken::new();
    let instance = instance_name(config);
    let mut handles = Vec::new();
    for i in 0..config.server.workers {
        let mut options = WorkerOptions::new(format!("{instance}/backfill/w{i}"));
        options.idle_max = StdDuration::from_millis(200);
        let worker = Worker::new(deps.clone(), options);
        let token = cancel.clone();
        handles.push(tokio::spawn(async move { worker.run(token).await }));
    }
    loop {
        let mut open = 0;
        let mut dead = 0;
        for tenant in &tenants {
            open += store.list_jobs(*tenant, JobStatus::Queued).await?.len();
            open += store.list_jobs(*tenant, JobStatus::Running).await?.len();
            dead += store.list_jobs(*tenant, JobStatus::Dead).await?.len();
        }
        bar.set_position(enqueued.saturating_sub(open) as u64);
        bar.set_message(if dead > 0 { format!("{dead} dead job(s) in the queue") } else { String::new() });
        if open == 0 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    bar.finish();
    cancel.cancel();
    for handle in handles {
        let _ = handle.await;
    }
    out!("backfill done at {}", Utc::now().format("%Y-%m-%d %H:%M:%S UTC"));
    Ok(())
}
