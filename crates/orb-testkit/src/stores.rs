//! **The stores under test**, the same way in every crate's tests: a fresh SQLite database in a temporary
//! directory, and a fresh PostgreSQL schema in the database named by `ORB_TEST_POSTGRES_URL` (required
//! when `CI` is set, skipped with a note otherwise), each opened and migrated.
//!
//! - [`TestStore::sqlite`], [`TestStore::postgres`], [`TestStore::every`] (both, for "on every store" tests);
//! - [`TestStore::second_store`]: a second, independent pool on the same database (a second ORB process);
//! - [`TestStore::raw`]: statements outside the `Store` API (what the database itself enforces);
//! - [`TestStore::dump`]: everything the database holds, as text, for "never stored" checks (SQLite's
//!   files read raw; every row of every table of the PostgreSQL schema).
//!
//! Everything here panics on failure: it is test set-up, and a failure names what to fix (the URL, the
//! server).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use orb_store::{BackendKind, PgStore, SqliteStore, Store};
use sqlx::postgres::PgConnectOptions;

/// The environment variable naming the PostgreSQL server tests use.
pub const POSTGRES_URL_VAR: &str = "ORB_TEST_POSTGRES_URL";

/// Connections per test store's pool.
pub const POOL_SIZE: u32 = 8;

/// Connections of a [`TestStore::second_store`]'s pool.
pub const SECOND_POOL_SIZE: u32 = 4;

/// The PostgreSQL URL tests use, `None` when none is configured — allowed only outside CI: under `CI` an
/// unset URL panics, so the PostgreSQL run is never skipped silently there.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {POSTGRES_URL_VAR} is not: the PostgreSQL run must not be skipped"
            );
            eprintln!("{POSTGRES_URL_VAR} not set: skipping the PostgreSQL run");
            None
        }
    }
}

/// A fresh, empty schema on the server at `url` (named `orb_test_<uuid>`), and the options that connect
/// to it.
pub async fn fresh_postgres_schema(url: &str) -> (String, PgConnectOptions) {
    let admin = sqlx::PgPool::connect(url)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e}"));
    let schema = format!("orb_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .unwrap_or_else(|e| panic!("creating the test schema {schema} failed: {e}"));
    admin.close().await;
    let options = PgConnectOptions::from_str(url)
        .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is not a PostgreSQL URL: {e}"))
        .options([("search_path", schema.as_str())]);
    (schema, options)
}

/// A connection outside the `Store` API, to run statements the API does not offer.
#[derive(Debug)]
pub enum Raw {
    /// SQLite.
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL (the test's schema).
    Pg(sqlx::PgPool),
}

impl Raw {
    /// Runs a statement (to prove what the database itself enforces); the rows it changed.
    pub async fn execute(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        match self {
            Raw::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|r| r.rows_affected()),
            Raw::Pg(pool) => sqlx::query(sql).execute(pool).await.map(|r| r.rows_affected()),
        }
    }

    /// Runs a query returning one `BIGINT` (e.g. a `COUNT(*)`).
    pub async fn scalar(&self, sql: &'static str) -> i64 {
        match self {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Raw::Pg(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

/// Where a test store's database is.
#[derive(Debug)]
enum Location {
    Sqlite { path: PathBuf, _dir: tempfile::TempDir },
    Postgres { url: String, schema: String, options: Box<PgConnectOptions> },
}

/// One migrated store of a test, on its own database (see the module docs). The database lives as long as
/// this value (the SQLite directory is removed on drop; PostgreSQL schemas stay, named `orb_test_*`).
pub struct TestStore {
    /// `"sqlite"` or `"postgres"`, for messages.
    pub name: &'static str,
    /// The back-end.
    pub kind: BackendKind,
    /// The store.
    pub store: Arc<dyn Store>,
    location: Location,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore").field("name", &self.name).field("location", &self.location).finish()
    }
}

impl TestStore {
    /// A fresh SQLite store in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory for the SQLite database");
        let path = dir.path().join("orb.db");
        let store = SqliteStore::open(&path, POOL_SIZE).await.expect("the SQLite test database opens");
        store.migrate().await.expect("the SQLite migrations apply");
        Self {
            name: "sqlite",
            kind: BackendKind::Sqlite,
            store: Arc::new(store),
            location: Location::Sqlite { path, _dir: dir },
        }
    }

    /// A fresh PostgreSQL store in a new schema; `None` when no PostgreSQL is configured ([`postgres_url`]).
    pub async fn postgres() -> Option<Self> {
        let url = postgres_url()?;
        let (schema, options) = fresh_postgres_schema(&url).await;
        let store =
            PgStore::connect_with(options.clone(), POOL_SIZE).await.expect("the test schema connects");
        store.migrate().await.expect("the PostgreSQL migrations apply");
        Some(Self {
            name: "postgres",
            kind: BackendKind::Postgres,
            store: Arc::new(store),
            location: Location::Postgres { url, schema, options: Box::new(options) },
        })
    }

    /// SQLite, and PostgreSQL when configured: for tests that must hold on every store.
    pub async fn every() -> Vec<Self> {
        let mut stores = vec![Self::sqlite().await];
        stores.extend(Self::postgres().await);
        stores
    }

    /// The SQLite database file (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.location {
            Location::Sqlite { path, .. } => Some(path),
            Location::Postgres { .. } => None,
        }
    }

    /// The PostgreSQL server URL and the test's schema (`None` on SQLite).
    pub fn postgres_schema(&self) -> Option<(&str, &str)> {
        match &self.location {
            Location::Postgres { url, schema, .. } => Some((url, schema)),
            Location::Sqlite { .. } => None,
        }
    }

    /// A second, independent store (its own pool of [`SECOND_POOL_SIZE`] connections) on the same database:
    /// stands in for a second ORB process.
    pub async fn second_store(&self) -> Arc<dyn Store> {
        let pool = SECOND_POOL_SIZE;
        match &self.location {
            Location::Sqlite { path, .. } => Arc::new(SqliteStore::open(path, pool).await.unwrap()),
            Location::Postgres { options, .. } => {
                Arc::new(PgStore::connect_with((**options).clone(), pool).await.unwrap())
            }
        }
    }

    /// A connection outside the `Store` API.
    pub async fn raw(&self) -> Raw {
        match &self.location {
            Location::Sqlite { path, .. } => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path).foreign_keys(true);
                Raw::Sqlite(sqlx::SqlitePool::connect_with(opts).await.unwrap())
            }
            Location::Postgres { options, .. } => {
                Raw::Pg(sqlx::PgPool::connect_with((**options).clone()).await.unwrap())
            }
        }
    }

    /// Everything the database holds, as text: SQLite's files (database, WAL, shared memory) read raw, or
    /// every row of every table of the PostgreSQL schema as text. For "never stored" checks.
    pub async fn dump(&self) -> String {
        match &self.location {
            Location::Postgres { schema, options, .. } => {
                let pool = sqlx::PgPool::connect_with((**options).clone()).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                )
                .bind(schema)
                .fetch_all(&pool)
                .await
                .unwrap();
                assert!(
                    tables.iter().any(|t| t == "bookings"),
                    "the schema's tables were listed: {tables:?}"
                );
                let mut out = String::new();
                for table in tables {
                    let sql = format!("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t");
                    let rows: String =
                        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap();
                    out.push_str(&format!("== {table}\n{rows}\n"));
                }
                pool.close().await;
                out
            }
            Location::Sqlite { _dir: dir, .. } => {
                let mut out = String::new();
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    let path = entry.unwrap().path();
                    out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                }
                assert!(out.contains("bookings"), "the SQLite files were read");
                out
            }
        }
    }
}
