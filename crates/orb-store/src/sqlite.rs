//! The SQLite back-end: one file, WAL journal, foreign keys on, every write transaction `BEGIN IMMEDIATE`
//! (so two writers queue on the busy timeout instead of failing on a read-to-write upgrade), `secure_delete`
//! on (deleted content is zeroed); after an erasure the write-ahead log is checkpointed and truncated.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::migrate::{Migration, impl_migrations};

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "init", sql: include_str!("../migrations/sqlite/0001_init.sql") },
    Migration { version: 2, name: "intake", sql: include_str!("../migrations/sqlite/0002_intake.sql") },
    Migration { version: 3, name: "runtime", sql: include_str!("../migrations/sqlite/0003_runtime.sql") },
    Migration { version: 4, name: "retention", sql: include_str!("../migrations/sqlite/0004_retention.sql") },
    Migration { version: 5, name: "portal", sql: include_str!("../migrations/sqlite/0005_portal.sql") },
    Migration { version: 6, name: "ews", sql: include_str!("../migrations/sqlite/0006_ews.sql") },
    Migration {
        version: 7,
        name: "temporary_passwords",
        sql: include_str!("../migrations/sqlite/0007_temporary_passwords.sql"),
    },
];

const CLAIM_SQL: &str = "SELECT j.id FROM jobs j \
     WHERE j.status = 'queued' AND j.run_at <= $1 \
     AND j.id = (SELECT MIN(k.id) FROM jobs k WHERE k.tenant_id = j.tenant_id AND k.lane = j.lane \
                 AND k.status IN ('queued', 'running')) \
     ORDER BY j.run_at, j.id LIMIT 1";

/// ORB's store on an embedded SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/to/orb.db`).
    pub async fn connect(url: &str, max_connections: u32) -> crate::Result<Self> {
        let options =
            SqliteConnectOptions::from_str(url).map_err(crate::StoreError::db("reading the SQLite URL"))?;
        Self::connect_with(options, max_connections).await
    }

    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path, max_connections: u32) -> crate::Result<Self> {
        Self::connect_with(SqliteConnectOptions::new().filename(path), max_connections).await
    }

    async fn connect_with(options: SqliteConnectOptions, max_connections: u32) -> crate::Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Deleted and overwritten content is zeroed on disk, so a purge or an erasure leaves no copy
            // of a person's data in free pages of the file.
            .pragma("secure_delete", "on")
            .busy_timeout(StdDuration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .map_err(|source| crate::StoreError::Unavailable {
                message: "opening the SQLite database".into(),
                source,
            })?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> crate::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(crate::StoreError::db("starting a transaction"))
    }

    /// Closes the pool (checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_migrations!(
    SqliteStore,
    MIGRATIONS,
    lock = None,
    table = "CREATE TABLE IF NOT EXISTS orb_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, \
             checksum TEXT NOT NULL, applied_at INTEGER NOT NULL DEFAULT (unixepoch('subsec') * 1000000))"
);

crate::backend::impl_store!(
    store = SqliteStore,
    db = sqlx::Sqlite,
    kind = BackendKind::Sqlite,
    claim_sql = CLAIM_SQL,
    gate_open = "UPDATE append_only_gate SET mode = $1 WHERE id = 1",
    gate_close = "UPDATE append_only_gate SET mode = NULL WHERE id = 1",
    after_erase = Some("PRAGMA wal_checkpoint(TRUNCATE)"),
);
