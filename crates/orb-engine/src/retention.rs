//! **Retention**: the purge of what outlived its purpose (DESIGN §6), for one tenant at a time, with the
//! periods of the tenant's `[retention]` settings ([`crate::settings::RetentionSettings`]). The scheduler
//! runs it on its own beat under a store lease ([`crate::scheduler::Task::Purge`]); `orb purge` runs it on
//! demand, also as a dry run. What is deleted, and in which transaction, is the store's
//! [`Store::purge_expired`].
//!
//! ## Invariants
//! - A tenant without settings is purged with the default periods; a tenant whose stored settings do not
//!   parse is not purged at all ([`RetentionError::Settings`]): a typo never shortens a period.
//! - `now` is a parameter; nothing here reads the clock.

use chrono::{DateTime, Utc};
use orb_core::{Retention, TenantId};
use orb_store::{PurgeCounts, Store, StoreError};
use thiserror::Error;

use crate::settings::{SettingsError, TenantSettings};

/// Why a tenant was not purged.
#[derive(Debug, Error)]
pub enum RetentionError {
    /// The store failed (or the tenant is unknown).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tenant's stored settings do not parse; nothing was purged.
    #[error(
        "tenant {tenant}: nothing purged, its settings cannot be read ({source}); fix them with `orb tenant settings`"
    )]
    Settings {
        /// The tenant.
        tenant: TenantId,
        /// What is wrong with the settings.
        source: SettingsError,
    },
}

/// The tenant's retention periods: its `[retention]` settings, or the defaults when it has no settings.
pub async fn retention_of(store: &dyn Store, tenant: TenantId) -> Result<Retention, RetentionError> {
    match store.get_tenant_settings(tenant).await? {
        None => Ok(Retention::default()),
        Some(row) => TenantSettings::from_json(&row.document)
            .map(|s| s.retention.retention())
            .map_err(|source| RetentionError::Settings { tenant, source }),
    }
}

/// Purges the tenant's expired rows as of `now` (see [`Store::purge_expired`]); `actor` is recorded in the
/// audit entry. With `dry_run` only counts.
pub async fn purge_tenant(
    store: &dyn Store,
    tenant: TenantId,
    actor: &str,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PurgeCounts, RetentionError> {
    let cutoffs = retention_of(store, tenant).await?.cutoffs(now);
    Ok(store.purge_expired(tenant, &cutoffs, actor, now, dry_run).await?)
}
