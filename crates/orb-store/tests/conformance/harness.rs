//! Opens a fresh, isolated store per test: a temporary SQLite file, or a new schema in the PostgreSQL
//! database named by `ORB_TEST_POSTGRES_URL`.

use std::str::FromStr;
use std::sync::Arc;

use orb_store::{PgStore, SqliteStore, Store};
use sqlx::postgres::PgConnectOptions;

pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    /// Runs a statement outside the Store API (to prove what the database itself enforces).
    pub async fn execute(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        match self {
            Raw::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|r| r.rows_affected()),
            Raw::Pg(pool) => sqlx::query(sql).execute(pool).await.map(|r| r.rows_affected()),
        }
    }

    /// Runs a query returning one `BIGINT` (e.g. a `COUNT(*)`) outside the Store API.
    pub async fn scalar(&self, sql: &'static str) -> i64 {
        match self {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Raw::Pg(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

pub struct Harness {
    pub store: Arc<dyn Store>,
    pub kind: orb_store::BackendKind,
    sqlite_path: Option<std::path::PathBuf>,
    pg_options: Option<PgConnectOptions>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// A second, independent store (its own connection pool) on the same database: stands in for a
    /// second ORB process.
    pub async fn second_store(&self) -> Arc<dyn Store> {
        if let Some(path) = &self.sqlite_path {
            Arc::new(SqliteStore::open(path, 4).await.unwrap())
        } else {
            Arc::new(PgStore::connect_with(self.pg_options.clone().unwrap(), 4).await.unwrap())
        }
    }

    pub async fn raw(&self) -> Raw {
        if let Some(path) = &self.sqlite_path {
            let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path).foreign_keys(true);
            Raw::Sqlite(sqlx::SqlitePool::connect_with(opts).await.unwrap())
        } else {
            Raw::Pg(sqlx::PgPool::connect_with(self.pg_options.clone().unwrap()).await.unwrap())
        }
    }
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orb.db");
    let store = SqliteStore::open(&path, 8).await.unwrap();
    store.migrate().await.unwrap();
    Harness {
        store: Arc::new(store),
        kind: orb_store::BackendKind::Sqlite,
        sqlite_path: Some(path),
        pg_options: None,
        _dir: Some(dir),
    }
}

/// `None` when no PostgreSQL is configured for tests (allowed only outside CI).
pub async fn postgres() -> Option<Harness> {
    let url = match std::env::var("ORB_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but ORB_TEST_POSTGRES_URL is not: the PostgreSQL conformance run must not be skipped"
            );
            eprintln!("ORB_TEST_POSTGRES_URL not set: skipping the PostgreSQL run of this test");
            return None;
        }
    };
    let admin = sqlx::PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("ORB_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}"));
    let schema = format!("orb_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.unwrap();
    admin.close().await;
    let options = PgConnectOptions::from_str(&url).unwrap().options([("search_path", schema.as_str())]);
    let store = PgStore::connect_with(options.clone(), 8).await.unwrap();
    store.migrate().await.unwrap();
    Some(Harness {
        store: Arc::new(store),
        kind: orb_store::BackendKind::Postgres,
        sqlite_path: None,
        pg_options: Some(options),
        _dir: None,
    })
}
