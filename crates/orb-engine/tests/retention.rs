//! The retention purge as the engine runs it: the scheduler's `retention.purge` task purges every tenant
//! under a store lease and audits the counts; a tenant's `[retention]` settings set the periods, and a
//! tenant whose settings cannot be read is not purged at all.

mod support;

use std::time::Duration as StdDuration;

use chrono::Duration;
use orb_core::Clock as _;
use orb_engine::retention::{RetentionError, purge_tenant};
use orb_engine::scheduler::{Scheduler, SchedulerOptions, Task};
use orb_engine::settings::TenantSettings;
use orb_store::NewAuditEntry;
use support::eventually;
use support::world::*;

impl World {
    /// An audit row of the tenant, `days` old.
    async fn audit_row(&self, days: i64, target: &str) {
        let entry = NewAuditEntry {
            tenant_id: Some(self.tenant.id),
            at: self.clock.now() - Duration::days(days),
            actor: "test".into(),
            action: "room.add".into(),
            target: target.into(),
            ip: None,
        };
        self.store.append_audit(&entry).await.unwrap();
    }

    async fn audit_targets(&self) -> Vec<String> {
        self.store.list_audit(self.tenant.id, 100).await.unwrap().into_iter().map(|a| a.target).collect()
    }
}

const SETTINGS: &str = r#"
[graph]
tenant_id = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d"
client_id = "0f3b6a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
mail_sender = "orb@contoso.com"

[topdesk]
url = "https://contoso.topdesk.net"
username = "orb-api"
link_type = 7
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduled_purge_runs_under_a_lease_and_audits_its_counts() {
    on_every_store(|w| async move {
        w.audit_row(500, "expired").await;
        w.audit_row(300, "kept").await;
        let mut options = SchedulerOptions::new("instance-a");
        options.poll_near_every = StdDuration::from_secs(3600);
        options.poll_horizon_every = StdDuration::from_secs(3600);
        options.subscriptions_every = StdDuration::from_secs(3600);
        options.reconcile_every = None;
        options.purge_every = Some(StdDuration::from_millis(50));
        let (_tx, rx) = tokio::sync::watch::channel(w.deps.clone());
        let cancel = tokio_util::sync::CancellationToken::new();
        let run = tokio::spawn(Scheduler::new(rx, options).run(cancel.clone()));

        let log = eventually("the purge's audit entry", || async {
            let log = w.store.list_audit(w.tenant.id, 100).await.unwrap();
            log.iter().any(|a| a.action == "retention.purged").then_some(log)
        })
        .await;
        let purged = log.iter().find(|a| a.action == "retention.purged").unwrap();
        assert_eq!(purged.actor, "system");
        assert!(purged.target.contains("1 audit row(s)"), "{}", purged.target);
        let targets = w.audit_targets().await;
        assert!(
            !targets.iter().any(|t| t == "expired") && targets.iter().any(|t| t == "kept"),
            "{targets:?}"
        );
        // This instance holds the tenant's purge lease: another instance does not run it meanwhile.
        let lease = format!("{}/{}", Task::Purge.name(), w.tenant.id);
        let other =
            w.store.try_lease(&lease, "instance-b", w.clock.now(), Duration::minutes(1)).await.unwrap();
        assert!(!other, "the lease is held by the running scheduler");
        // Later beats find nothing more and audit nothing more.
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        let runs = w.store.list_audit(w.tenant.id, 100).await.unwrap();
        assert_eq!(runs.iter().filter(|a| a.action == "retention.purged").count(), 1);
        cancel.cancel();
        run.await.unwrap();
        // On shutdown the lease is given up.
        assert!(w.store.try_lease(&lease, "instance-b", w.clock.now(), Duration::minutes(1)).await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tenants_retention_settings_set_the_periods_and_bad_settings_purge_nothing() {
    on_every_store(|w| async move {
        w.audit_row(40, "forty days").await;
        w.audit_row(20, "twenty days").await;
        let now = w.clock.now();
        let audit = |target: &str| NewAuditEntry {
            tenant_id: Some(w.tenant.id),
            at: now,
            actor: "test".into(),
            action: "settings.set".into(),
            target: target.into(),
            ip: None,
        };
        // Without settings: the defaults (400 days) keep both.
        assert_eq!(purge_tenant(&*w.store, w.tenant.id, "cli", now, false).await.unwrap().total(), 0);
        // Settings that cannot be read (stored by an older build, say): nothing is purged.
        w.store.put_tenant_settings(w.tenant.id, "{\"graph\": 1}", None, now, &audit("bad")).await.unwrap();
        let err = purge_tenant(&*w.store, w.tenant.id, "cli", now, false).await.unwrap_err();
        assert!(matches!(err, RetentionError::Settings { .. }), "{err:?}");
        assert!(err.to_string().contains("orb tenant settings"), "{err}");
        assert!(w.audit_targets().await.iter().any(|t| t == "forty days"));
        // `audit_days = 30`: the 40-day-old row goes, the 20-day-old one stays; a dry run first changes nothing.
        let settings =
            TenantSettings::from_toml(&format!("{SETTINGS}\n[retention]\naudit_days = 30\n")).unwrap();
        w.store
            .put_tenant_settings(w.tenant.id, &settings.to_json(), None, now, &audit("good"))
            .await
            .unwrap();
        assert_eq!(purge_tenant(&*w.store, w.tenant.id, "cli", now, true).await.unwrap().audit, 1);
        assert!(w.audit_targets().await.iter().any(|t| t == "forty days"), "a dry run changes nothing");
        assert_eq!(purge_tenant(&*w.store, w.tenant.id, "cli", now, false).await.unwrap().audit, 1);
        let targets = w.audit_targets().await;
        assert!(!targets.iter().any(|t| t == "forty days"), "{targets:?}");
        assert!(targets.iter().any(|t| t == "twenty days"), "{targets:?}");
    })
    .await;
}
