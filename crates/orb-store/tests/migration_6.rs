//! Migrations 6 (`0006_ews`) and 7 (`0007_temporary_passwords`) on a database that is at migration 5 and
//! holds rows, on SQLite and on PostgreSQL (when `ORB_TEST_POSTGRES_URL` is set): the rows survive (a
//! portal user's password is not made temporary), subscriptions get an empty
//! `watermark`, the inbox accepts `ews` items (SQLite rebuilds the table: its indexes come back and an
//! inbox id is never handed out twice).

use chrono::{DateTime, TimeZone, Utc};
use orb_core::{RoomMailbox, TenantName, TopdeskLocationId};
use orb_store::jobs::{EwsNotificationJob, GraphNotificationJob, JobPayload as _, TopdeskHintJob};
use orb_store::{InboxSource, Lane, NewInboxItem, NewRoom, PgStore, SqliteStore, Store};
use serde_json::json;

/// The migrations this build had before EWS, per back-end.
const SQLITE_1_TO_5: [&str; 5] = [
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_intake.sql"),
    include_str!("../migrations/sqlite/0003_runtime.sql"),
    include_str!("../migrations/sqlite/0004_retention.sql"),
    include_str!("../migrations/sqlite/0005_portal.sql"),
];
const POSTGRES_1_TO_5: [&str; 5] = [
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_intake.sql"),
    include_str!("../migrations/postgres/0003_runtime.sql"),
    include_str!("../migrations/postgres/0004_retention.sql"),
    include_str!("../migrations/postgres/0005_portal.sql"),
];
const NAMES: [&str; 5] = ["init", "intake", "runtime", "retention", "portal"];

/// The store's migration checksum (FNV-1a 64, `src/migrate.rs`): a database migrated by the previous
/// release records exactly this.
fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 1, 8, 0, 0).unwrap()
}

/// Statements for one back-end.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Db {
    async fn run(&self, sql: &'static str) {
        match self {
            Db::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Db::Pg(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    async fn count(&self, sql: &'static str) -> i64 {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Db::Pg(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    /// Applies migrations 1 to 5 as the previous release did, recording them.
    async fn at_migration_5(&self) {
        let (migrations, table) = match self {
            Db::Sqlite(_) => (
                SQLITE_1_TO_5,
                "CREATE TABLE orb_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
                 checksum TEXT NOT NULL, applied_at INTEGER NOT NULL DEFAULT 0)",
            ),
            Db::Pg(_) => (
                POSTGRES_1_TO_5,
                "CREATE TABLE orb_schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
                 checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            ),
        };
        self.run(table).await;
        for (i, sql) in migrations.into_iter().enumerate() {
            self.run(sql).await;
            let record = "INSERT INTO orb_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)";
            let version = i64::try_from(i).unwrap() + 1;
            match self {
                Db::Sqlite(p) => sqlx::query(record)
                    .bind(version)
                    .bind(NAMES[i])
                    .bind(checksum(sql))
                    .execute(p)
                    .await
                    .map(drop),
                Db::Pg(p) => sqlx::query(record)
                    .bind(version)
                    .bind(NAMES[i])
                    .bind(checksum(sql))
                    .execute(p)
                    .await
                    .map(drop),
            }
            .unwrap();
        }
    }
}

async fn migrates_with_rows(db: Db, store: &dyn Store) {
    let sqlite = matches!(db, Db::Sqlite(_));
    db.at_migration_5().await;
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        2,
        "the database is at migration 5 (6 and 7 to come)"
    );

    // Rows written by the previous release (through the API where it has not changed).
    let tenant = store.create_tenant(&TenantName::parse("contoso").unwrap(), t0()).await.unwrap();
    let room = NewRoom {
        mailbox: RoomMailbox::parse("room-4.12@contoso.com").unwrap(),
        topdesk_location_id: TopdeskLocationId::parse("loc-412").unwrap(),
        display_name: Some("Room 4.12".into()),
    };
    let room = store.add_room(tenant.id, &room, t0()).await.unwrap();
    db.run(if sqlite {
        "INSERT INTO subscriptions (id, tenant_id, room_id, resource, client_state_hash, rich, \
         encryption_certificate_id, expires_at, created_at, updated_at) \
         SELECT 'sub-old', tenant_id, id, 'users/room-4.12@contoso.com/events', X'ABABAB', 1, 'enc-1', \
         1790000000000000, 1780000000000000, 1780000000000001 FROM rooms"
    } else {
        "INSERT INTO subscriptions (id, tenant_id, room_id, resource, client_state_hash, rich, \
         encryption_certificate_id, expires_at, created_at, updated_at) \
         SELECT 'sub-old', tenant_id, id, 'users/room-4.12@contoso.com/events', '\\xababab'::bytea, TRUE, \
         'enc-1', 1790000000000000, 1780000000000000, 1780000000000001 FROM rooms"
    })
    .await;
    // A portal user of the previous release: migration 7 gives them `password_temporary = false` (their
    // password is theirs; nobody is sent to their account page by an upgrade).
    db.run(if sqlite {
        "INSERT INTO users (tenant_id, email, role, password_hash, totp_enabled, disabled, created_at) \
         SELECT id, 'it@contoso.com', 'tenant-admin', '$argon2id$kept', 0, 0, 1780000000000000 FROM tenants"
    } else {
        "INSERT INTO users (tenant_id, email, role, password_hash, totp_enabled, disabled, created_at) \
         SELECT id, 'it@contoso.com', 'tenant-admin', '$argon2id$kept', FALSE, FALSE, 1780000000000000 \
         FROM tenants"
    })
    .await;
    let lane = Lane::room(tenant.id, room.id);
    let item = |source, payload| NewInboxItem {
        tenant_id: tenant.id,
        source,
        received_at: t0(),
        remote_ip: Some("192.0.2.7".into()),
        payload,
    };
    let graph = item(InboxSource::Graph, json!({"subscriptionId": "sub-old", "changeType": "updated"}));
    let graph_job = GraphNotificationJob { subscription_id: "sub-old".into(), inbox_id: None };
    let (graph_id, graph_job_id) =
        store.accept_inbox(&graph, &graph_job.to_job(lane.clone(), None, None), t0()).await.unwrap();
    store.mark_inbox_processed(tenant.id, graph_id, t0()).await.unwrap();
    let topdesk = item(InboxSource::Topdesk, json!({"reservations": ["R1"]}));
    let topdesk_job = TopdeskHintJob { hints: 1, inbox_id: None }.to_job(Lane::tenant(tenant.id), None, None);
    let (topdesk_id, _) = store.accept_inbox(&topdesk, &topdesk_job, t0()).await.unwrap();
    // The newest item is gone (purged): its id must not come back after the rebuild.
    let (gone_id, _) =
        store.accept_inbox(&graph, &graph_job.to_job(lane.clone(), None, None), t0()).await.unwrap();
    db.run("DELETE FROM inbox WHERE id = (SELECT MAX(id) FROM inbox)").await;
    // Before migration 6 the database refuses an `ews` item.
    let ews = item(InboxSource::Ews, json!({"subscription_id": "ews-1", "events": []}));
    let ews_job = EwsNotificationJob { subscription_id: "ews-1".into(), inbox_id: None };
    assert!(store.accept_inbox(&ews, &ews_job.to_job(lane.clone(), None, None), t0()).await.is_err());

    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);

    // Everything survived.
    assert_eq!(store.tenant_by_name(&tenant.name).await.unwrap(), tenant);
    let user = store.user_by_email(&orb_core::EmailAddress::parse("it@contoso.com").unwrap()).await.unwrap();
    assert_eq!(user.password_hash.as_deref(), Some("$argon2id$kept"));
    assert!(!user.password_temporary, "an upgrade makes no password temporary");
    assert_eq!(store.get_room(tenant.id, room.id).await.unwrap(), room);
    let sub = store.get_subscription(tenant.id, "sub-old").await.unwrap();
    assert_eq!((sub.room_id, sub.resource.as_str()), (room.id, "users/room-4.12@contoso.com/events"));
    assert_eq!((sub.client_state_hash.as_slice(), sub.rich), (&[0xab_u8, 0xab, 0xab][..], true));
    assert_eq!(sub.encryption_certificate_id.as_deref(), Some("enc-1"));
    assert_eq!(sub.watermark, None, "existing subscriptions have no watermark");
    let kept = store.get_inbox(tenant.id, graph_id).await.unwrap();
    assert_eq!(
        (kept.source, &kept.payload, kept.processed_at),
        (InboxSource::Graph, &graph.payload, Some(t0()))
    );
    assert_eq!(kept.remote_ip.as_deref(), Some("192.0.2.7"));
    let kept = store.get_inbox(tenant.id, topdesk_id).await.unwrap();
    assert_eq!(
        (kept.source, &kept.payload, kept.processed_at),
        (InboxSource::Topdesk, &topdesk.payload, None)
    );
    let job = store.get_job(tenant.id, graph_job_id).await.unwrap();
    assert_eq!(GraphNotificationJob::of(&job).unwrap().inbox_id, Some(graph_id));

    // The new things work.
    let (ews_id, ews_job_id) =
        store.accept_inbox(&ews, &ews_job.to_job(lane.clone(), None, None), t0()).await.unwrap();
    assert!(ews_id > gone_id, "inbox ids are never reused ({ews_id} after {gone_id})");
    assert_eq!(store.get_inbox(tenant.id, ews_id).await.unwrap().source, InboxSource::Ews);
    assert_eq!(
        EwsNotificationJob::of(&store.get_job(tenant.id, ews_job_id).await.unwrap()).unwrap().inbox_id,
        Some(ews_id)
    );
    store.mark_inbox_processed(tenant.id, ews_id, t0()).await.unwrap();
    let with_watermark = orb_store::SubscriptionRow { watermark: Some("w-1".into()), ..sub };
    store.upsert_subscription(&with_watermark).await.unwrap();
    assert_eq!(store.get_subscription(tenant.id, "sub-old").await.unwrap(), with_watermark);
    let indexes = if sqlite {
        db.count(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'inbox' \
             AND name IN ('inbox_unprocessed', 'inbox_processed')",
        )
        .await
    } else {
        db.count(
            "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'inbox' \
             AND indexname IN ('inbox_unprocessed', 'inbox_processed')",
        )
        .await
    };
    assert_eq!(indexes, 2, "the inbox's indexes are there");
    if sqlite {
        assert_eq!(db.count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'inbox_new'").await, 0);
        assert_eq!(db.count("SELECT COUNT(*) FROM pragma_foreign_key_check").await, 0);
    }
    // Running again changes nothing.
    store.migrate().await.unwrap();
}

#[tokio::test]
async fn migration_6_keeps_the_rows_of_a_database_at_5_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orb.db");
    let store = SqliteStore::open(&path, 4).await.unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).foreign_keys(true);
    let raw = sqlx::SqlitePool::connect_with(options).await.unwrap();
    migrates_with_rows(Db::Sqlite(raw), &store).await;
}

#[tokio::test]
async fn migration_6_keeps_the_rows_of_a_database_at_5_on_postgres() {
    let Some(url) = orb_testkit::stores::postgres_url() else { return };
    let (_schema, options) = orb_testkit::stores::fresh_postgres_schema(&url).await;
    let store = PgStore::connect_with(options.clone(), 4).await.unwrap();
    let raw = sqlx::PgPool::connect_with(options).await.unwrap();
    migrates_with_rows(Db::Pg(raw), &store).await;
}
