//! **EWS push subscriptions**: an EWS tenant's change detection (ews.md §4.1). One push subscription per
//! mapped, enabled room mailbox, on its calendar folder, calling back `{public}/hooks/ews/{tenant}?k={key}`
//! (the key is ORB's secret for that subscription, kept only as a hash in the subscription row: Exchange has
//! no clientState, so the URL carries it).
//!
//! - **Alive or silent**: Exchange sends a `StatusEvent` every `StatusFrequency` minutes when nothing
//!   happens, and retries a failed delivery until the next retry would pass that frequency, then drops the
//!   subscription without telling anyone. The row's `expires_at` is therefore the *silence deadline*: the
//!   last time ORB heard from the subscription plus [`SILENT_AFTER_FREQUENCIES`] frequencies; each
//!   notification (status events included) moves it on ([`heard`]).
//! - **A silent subscription is made again from its last watermark** (the events since are delivered),
//!   then the room is swept, which covers whatever the watermark could not (an expired watermark: the
//!   subscription is made without one). The old subscription's id is forgotten: if Exchange still calls
//!   it, the intake answers `Unsubscribe`.
//! - **Rooms no longer mapped or enabled**: their rows are forgotten, with the same effect; so are all of a
//!   tenant's push rows once it is switched to streaming notifications ([`crate::ews_stream`]).
//!
//! The intake (`orb-web`) keeps each notification in the inbox with an `ews.notification` job; the job
//! (`crate::sync`) reads the items named and syncs them, then calls [`heard`].

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use orb_core::{CorrelationId, TenantId};
use orb_ews::model::PushRequest;
use orb_ews::{EwsError, Target};
use orb_store::jobs::{JobPayload as _, ReconcileSweepJob};
use orb_store::{Lane, StoreError, SubscriptionRow};
use secrecy::{ExposeSecret as _, SecretString};

use crate::exchange::{EwsExchange, ExchangeError};
use crate::runtime::{SyncDeps, SyncError, TenantRuntime};

/// `StatusFrequency` asked for, in minutes: a keep-alive at least this often.
pub const STATUS_FREQUENCY_MINUTES: u32 = 5;
/// How many status intervals without a word make a subscription silent.
pub const SILENT_AFTER_FREQUENCIES: i32 = 3;
/// The `resource` of an EWS push row: which mailbox it watches.
pub fn resource_of(mailbox: &orb_core::RoomMailbox) -> String {
    format!("ews:push:{}", mailbox.as_str())
}

/// When a subscription last heard at `at` turns silent.
pub fn silent_at(at: DateTime<Utc>) -> DateTime<Utc> {
    at + Duration::minutes(i64::from(STATUS_FREQUENCY_MINUTES) * i64::from(SILENT_AFTER_FREQUENCIES))
}

/// What [`ensure_ews_subscriptions`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EwsSubscriptionReport {
    /// Rooms subscribed for the first time.
    pub created: usize,
    /// Silent subscriptions made again (and their rooms swept).
    pub remade: usize,
    /// Rows of rooms no longer synced, forgotten.
    pub forgotten: usize,
}

impl EwsSubscriptionReport {
    /// Nothing was done.
    pub fn is_noop(&self) -> bool {
        *self == Self::default()
    }
}

fn sha256(text: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref().to_vec()
}

fn new_key() -> Result<SecretString, SyncError> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0_u8; 32];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| SyncError::BadPayload {
        kind: "ews.subscriptions".into(),
        reason: "the system random generator failed; no subscription key can be made".into(),
    })?;
    Ok(SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

fn ews(tenant: &TenantRuntime) -> Result<&EwsExchange, SyncError> {
    tenant.exchange.as_ews().ok_or(SyncError::BadPayload {
        kind: "ews.subscriptions".into(),
        reason: format!("tenant {} does not reach Exchange through EWS", tenant.tenant_id),
    })
}

/// Subscribes `room`'s calendar, resuming from `watermark` when given (an expired watermark: without).
async fn subscribe(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    tenant_name: &str,
    base_url: &str,
    room: &orb_store::Room,
    watermark: Option<String>,
    now: DateTime<Utc>,
) -> Result<SubscriptionRow, SyncError> {
    let client = ews(tenant)?.client();
    let key = new_key()?;
    let url = format!("{}/hooks/ews/{tenant_name}?k={}", base_url.trim_end_matches('/'), key.expose_secret());
    let target = Target { mailbox: room.mailbox.address(), correlation: CorrelationId::generate(now) };
    let request = |watermark| PushRequest {
        url: url.clone(),
        status_frequency_minutes: STATUS_FREQUENCY_MINUTES,
        watermark,
    };
    let made = match client.subscribe_push(target, &request(watermark.clone())).await {
        Err(EwsError::SubscriptionLost { code }) if watermark.is_some() => {
            tracing::info!(room = %room.mailbox, %code, "the watermark expired; subscribing without it");
            client.subscribe_push(target, &request(None)).await
        }
        other => other,
    }
    .map_err(ExchangeError::from)?;
    let row = SubscriptionRow {
        id: made.id,
        tenant_id: tenant.tenant_id,
        room_id: room.id,
        resource: resource_of(&room.mailbox),
        client_state_hash: sha256(key.expose_secret()),
        rich: false,
        encryption_certificate_id: None,
        expires_at: silent_at(now),
        created_at: now,
        updated_at: now,
        watermark: made.watermark.or(watermark),
    };
    deps.store.upsert_subscription(&row).await?;
    Ok(row)
}

/// Enqueues a sweep of `room` in its lane, to run at `at` (`None`: now).
pub(crate) async fn enqueue_sweep(
    deps: &SyncDeps,
    tenant: TenantId,
    room: orb_core::RoomId,
    now: DateTime<Utc>,
    at: Option<DateTime<Utc>>,
) -> Result<(), SyncError> {
    let job =
        ReconcileSweepJob { room }.to_job(Lane::room(tenant, room), Some(CorrelationId::generate(now)), at);
    deps.store.enqueue(&job, now).await?;
    Ok(())
}

/// Brings an EWS tenant's push subscriptions in line with its rooms (see the module docs).
pub async fn ensure_ews_subscriptions(
    deps: &SyncDeps,
    tenant: &TenantRuntime,
    base_url: &str,
    now: DateTime<Utc>,
) -> Result<EwsSubscriptionReport, SyncError> {
    let name = deps
        .store
        .list_tenants()
        .await?
        .into_iter()
        .find(|t| t.id == tenant.tenant_id)
        .map(|t| t.name.to_string())
        .ok_or(SyncError::UnknownTenant { tenant: tenant.tenant_id })?;
    let rooms: Vec<orb_store::Room> = deps
        .store
        .list_rooms(tenant.tenant_id)
        .await?
        .into_iter()
        .filter(|r| r.enabled && tenant.rooms.by_id(r.id).is_some_and(|m| m.enabled))
        // A tenant on streaming notifications wants no push subscription: those left from before go.
        .filter(|_| !ews(tenant).is_ok_and(EwsExchange::streams))
        .collect();
    let rows: Vec<SubscriptionRow> = deps
        .store
        .list_subscriptions(tenant.tenant_id)
        .await?
        .into_iter()
        .filter(|r| r.resource.starts_with("ews:push:"))
        .collect();
    let mut report = EwsSubscriptionReport::default();
    for row in &rows {
        let wanted = rooms.iter().any(|r| r.id == row.room_id && resource_of(&r.mailbox) == row.resource);
        if !wanted {
            forget(deps, row).await?;
            report.forgotten += 1;
        }
    }
    for room in &rooms {
        let current = rows.iter().find(|r| r.room_id == room.id && r.resource == resource_of(&room.mailbox));
        match current {
            None => {
                subscribe(deps, tenant, &name, base_url, room, None, now).await?;
                // What changed before the subscription existed (or while the room had none) is swept.
                enqueue_sweep(deps, tenant.tenant_id, room.id, now, None).await?;
                report.created += 1;
            }
            Some(row) if now >= row.expires_at => {
                tracing::warn!(room = %room.mailbox, subscription = %row.id, "the push subscription went silent; making it again");
                subscribe(deps, tenant, &name, base_url, room, row.watermark.clone(), now).await?;
                forget(deps, row).await?;
                enqueue_sweep(deps, tenant.tenant_id, room.id, now, None).await?;
                report.remade += 1;
            }
            Some(_) => {}
        }
    }
    Ok(report)
}

/// Deletes a subscription row (one already gone is fine).
pub(crate) async fn forget(deps: &SyncDeps, row: &SubscriptionRow) -> Result<(), SyncError> {
    match deps.store.delete_subscription(row.tenant_id, &row.id).await {
        Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The subscription spoke (a change or a status event): its watermark and silence deadline move on. A row
/// the subscriptions beat forgot meanwhile (the subscription was made again) stays forgotten.
pub async fn heard(deps: &SyncDeps, row: &SubscriptionRow, watermark: Option<&str>) -> Result<(), SyncError> {
    let now = deps.clock.now();
    let current = match deps.store.get_subscription(row.tenant_id, &row.id).await {
        Ok(current) => current,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let updated = SubscriptionRow {
        watermark: watermark.map(str::to_owned).or_else(|| current.watermark.clone()),
        expires_at: silent_at(now),
        updated_at: now,
        ..current
    };
    deps.store.upsert_subscription(&updated).await?;
    Ok(())
}
