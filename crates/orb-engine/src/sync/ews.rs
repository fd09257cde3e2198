//! The `ews.notification` job: one EWS push notification kept by the intake, turned into syncs of the room
//! items it names. Each changed item is read now (a notification names items, never their content), so a
//! doubled, late or reordered notification reads the same current state and changes nothing twice.
//!
//! - `CreatedEvent`, `ModifiedEvent`, `CopiedEvent`: the item is read and synced; gone meanwhile (404): the
//!   item ended.
//! - `DeletedEvent`: the item ended. `MovedEvent`: the item left the calendar under its old id (cancelled
//!   meetings go to Deleted Items; an item moved *into* the calendar is rare and is found by the next sweep).
//! - `StatusEvent`, `NewMailEvent`, `FreeBusyChangedEvent`: nothing to sync.
//!
//! Every notification moves the subscription's watermark and silence deadline on ([`crate::ews_push::heard`]).

use orb_core::CorrelationId;
use orb_store::jobs::{EwsEventKind, EwsNotificationItem, EwsNotificationJob, JobPayload as _};
use orb_store::{ClaimedJob, StoreError};

use super::cache::JobCache;
use super::handlers::{RoomChange, refuse, room_change};
use crate::runtime::{JobResult, SyncDeps, SyncError};

/// What one notification asks to sync: item ids in the order first named, each with whether it is gone.
fn changed_items(item: &EwsNotificationItem) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut note = |id: &str, gone: bool| match out.iter_mut().find(|(known, _)| known == id) {
        Some(entry) => entry.1 = gone,
        None => out.push((id.to_owned(), gone)),
    };
    for event in &item.events {
        match event.kind {
            EwsEventKind::Created | EwsEventKind::Modified | EwsEventKind::Copied => {
                if let Some(id) = &event.item_id {
                    note(&id.id, false);
                }
            }
            EwsEventKind::Deleted => {
                if let Some(id) = &event.item_id {
                    note(&id.id, true);
                }
            }
            EwsEventKind::Moved => {
                if let Some(old) = &event.old_item_id {
                    note(&old.id, true);
                }
            }
            EwsEventKind::NewMail | EwsEventKind::FreeBusyChanged | EwsEventKind::Status => {}
        }
    }
    out
}

pub(crate) async fn ews_notification(deps: &SyncDeps, job: &ClaimedJob) -> Result<JobResult, SyncError> {
    let tenant_id = job.job.tenant_id;
    let payload = EwsNotificationJob::of(&job.job)?;
    let inbox_id = payload.inbox_id()?;
    let inbox = deps.store.get_inbox(tenant_id, inbox_id).await?;
    if inbox.processed_at.is_some() {
        return Ok(JobResult::Ignored { reason: format!("inbox item {inbox_id} was processed already") });
    }
    let tenant = deps.tenant(tenant_id)?;
    let row = match deps.store.get_subscription(tenant_id, &payload.subscription_id).await {
        Ok(row) => row,
        Err(StoreError::NotFound { .. }) => {
            deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
            return Ok(JobResult::Ignored {
                reason: format!("subscription {} is gone", payload.subscription_id),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let item: EwsNotificationItem = match serde_json::from_value(inbox.payload.clone()) {
        Ok(item) => item,
        Err(e) => return refuse(deps, tenant_id, inbox_id, format!("not an EWS notification ({e})")).await,
    };
    let room = deps.store.get_room(tenant_id, row.room_id).await?;
    let mailbox = room.mailbox.address().clone();
    let corr = job.job.correlation_id.unwrap_or_else(|| CorrelationId::generate(deps.clock.now()));
    let cache = JobCache::for_job(&job.job);
    let mut outcomes = Vec::new();
    for (id, gone) in changed_items(&item) {
        let change = if gone {
            RoomChange::Gone(id)
        } else {
            match tenant.exchange.get_event(&mailbox, &id, corr).await {
                Ok(event) => RoomChange::Item(Box::new(event)),
                Err(e) if e.is_not_found() => RoomChange::Gone(id),
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(done) = room_change(deps, tenant, &cache, &room, change, corr).await? {
            outcomes.extend(done);
        }
    }
    crate::ews_push::heard(deps, &row, item.last_watermark()).await?;
    deps.store.mark_inbox_processed(tenant_id, inbox_id, deps.clock.now()).await?;
    if outcomes.is_empty() {
        return Ok(JobResult::Ignored { reason: "nothing ORB tracks changed".into() });
    }
    Ok(JobResult::Synced(outcomes))
}

#[cfg(test)]
mod tests {
    use orb_store::jobs::{EwsEventItem, EwsItemRef};

    use super::*;

    fn event(kind: EwsEventKind, id: Option<&str>, old: Option<&str>) -> EwsEventItem {
        let item = |i: &str| EwsItemRef { id: i.to_owned(), change_key: None };
        EwsEventItem {
            kind,
            watermark: Some("w".into()),
            timestamp: None,
            item_id: id.map(item),
            folder_id: None,
            parent_folder_id: None,
            old_item_id: old.map(item),
            old_parent_folder_id: None,
        }
    }

    #[test]
    fn each_item_is_synced_once_with_its_last_state() {
        let check = |events: Vec<EwsEventItem>, expected: &[(&str, bool)]| {
            let item = EwsNotificationItem {
                subscription_id: "s".into(),
                previous_watermark: None,
                more_events: false,
                events,
            };
            let got = changed_items(&item);
            let want: Vec<(String, bool)> = expected.iter().map(|(i, g)| ((*i).to_owned(), *g)).collect();
            assert_eq!(got, want);
        };
        use EwsEventKind as K;
        check(vec![event(K::Status, None, None)], &[]);
        check(vec![event(K::Created, Some("a"), None), event(K::Modified, Some("a"), None)], &[("a", false)]);
        check(vec![event(K::Created, Some("a"), None), event(K::Deleted, Some("a"), None)], &[("a", true)]);
        check(vec![event(K::Moved, Some("new"), Some("old"))], &[("old", true)]);
        check(
            vec![
                event(K::Modified, Some("b"), None),
                event(K::NewMail, Some("m"), None),
                event(K::Created, Some("c"), None),
            ],
            &[("b", false), ("c", false)],
        );
    }
}
