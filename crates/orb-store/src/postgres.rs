//! The PostgreSQL back-end: for production and for several ORB instances sharing one database. Job claims
//! use `FOR UPDATE SKIP LOCKED`; migrations take an advisory lock so concurrent start-ups are safe.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::migrate::{Migration, impl_migrations};

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/postgres/0001_init.sql") },
    Migration { version: 2, name: "intake", sql: include_str!("../migrations/postgres/0002_intake.sql") },
    Migration { version: 3, name: "runtime", sql: include_str!("../migrations/postgres/0003_runtime.sql") },
    Migration {
        version: 4,
        name: "retention",
        sql: include_str!("../migrations/postgres/0004_retention.sql"),
    },
    Migration { version: 5, name: "portal", sql: include_str!("../migrations/postgres/0005_portal.sql") },
    Migration { version: 6, name: "ews", sql: include_str!("../migrations/postgres/0006_ews.sql") },
    Migration {
        version: 7,
        name: "temporary_passwords",
        sql: include_str!("../migrations/postgres/0007_temporary_passwords.sql"),
    },
];

const CLAIM_SQL: &str = "SELECT j.id FROM jobs j \
     WHERE j.status = 'queued' AND j.run_at <= $1 \
     AND j.id = (SELECT MIN(k.id) FROM jobs k WHERE k.tenant_id = j.tenant_id AND k.lane = j.lane \
                 AND k.status IN ('queued', 'running')) \
     ORDER BY j.run_at, j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED";

/// ORB's store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host/db`).
    pub async fn connect(url: &str, max_connections: u32) -> crate::Result<Self> {
        let options =
            PgConnectOptions::from_str(url).map_err(crate::StoreError::db("reading the PostgreSQL URL"))?;
        Self::connect_with(options, max_connections).await
    }

    /// Connects with explicit options (e.g. a `search_path`).
    pub async fn connect_with(options: PgConnectOptions, max_connections: u32) -> crate::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(|source| crate::StoreError::Unavailable {
            message: "connecting to PostgreSQL".into(),
            source,
        })?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> crate::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(crate::StoreError::db("starting a transaction"))
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_migrations!(
    PgStore,
    MIGRATIONS,
    lock = Some("SELECT pg_advisory_xact_lock(7262001)"),
    table = "CREATE TABLE IF NOT EXISTS orb_schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
);

crate::backend::impl_store!(
    store = PgStore,
    db = sqlx::Postgres,
    kind = BackendKind::Postgres,
    claim_sql = CLAIM_SQL,
    gate_open = "SELECT set_config('orb.gate', $1, true)",
    gate_close = "SELECT set_config('orb.gate', '', true)",
    after_erase = None,
);
