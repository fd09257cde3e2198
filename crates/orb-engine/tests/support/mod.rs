//! Shared by the engine's end-to-end tests: bounded polling and the stores under test (SQLite in a tempdir;
//! PostgreSQL in a fresh schema when `ORB_TEST_POSTGRES_URL` is set, required when `CI` is set).

#![allow(dead_code)]

pub mod sweeps;
pub mod world;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use orb_core::EmailAddress;
use orb_store::{PgStore, SqliteStore, Store};
use sha2::{Digest, Sha256};

/// Longest wait of [`eventually`].
pub const WAIT: StdDuration = StdDuration::from_secs(15);

/// A parsed e-mail address.
pub fn mail(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

/// SHA-256 of a text (how ORB stores clientStates and push tokens).
pub fn sha256(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// Polls `check` every 20 ms until it returns `Some`, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

// ---- stores ----

pub struct StoreUnderTest {
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    pub _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the server URL and the test's schema.
    pub postgres: Option<(String, String)>,
}

impl StoreUnderTest {
    /// Everything the database holds, as text: SQLite's files (database, WAL, shared memory) read raw, or
    /// every row of every table of the PostgreSQL schema as text. For "never stored" checks.
    pub async fn dump(&self) -> String {
        if let Some((url, schema)) = &self.postgres {
            let options = sqlx::postgres::PgConnectOptions::from_str(url)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            let pool = sqlx::PgPool::connect_with(options).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            )
            .bind(schema)
            .fetch_all(&pool)
            .await
            .unwrap();
            assert!(tables.iter().any(|t| t == "bookings"), "{tables:?}");
            let mut out = String::new();
            for table in tables {
                let sql = format!("SELECT COALESCE(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t");
                let rows: String =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap();
                out.push_str(&format!("== {table}\n{rows}\n"));
            }
            pool.close().await;
            return out;
        }
        let dir = self._dir.as_ref().expect("SQLite lives in a tempdir");
        let mut out = String::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
        }
        assert!(out.contains("bookings"), "the SQLite files were read");
        out
    }
}

pub async fn sqlite() -> StoreUnderTest {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("orb.db"), 8).await.unwrap();
    store.migrate().await.unwrap();
    StoreUnderTest { name: "sqlite", store: Arc::new(store), _dir: Some(dir), postgres: None }
}

/// `None` when no PostgreSQL is configured (allowed only outside CI).
pub async fn postgres() -> Option<StoreUnderTest> {
    let url = match std::env::var("ORB_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but ORB_TEST_POSTGRES_URL is not: the PostgreSQL run must not be skipped"
            );
            eprintln!("ORB_TEST_POSTGRES_URL not set: skipping the PostgreSQL run");
            return None;
        }
    };
    let admin = sqlx::PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("ORB_TEST_POSTGRES_URL is set but PostgreSQL is unreachable: {e}"));
    let schema = format!("orb_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.unwrap();
    admin.close().await;
    let options =
        sqlx::postgres::PgConnectOptions::from_str(&url).unwrap().options([("search_path", schema.as_str())]);
    let store = PgStore::connect_with(options, 8).await.unwrap();
    store.migrate().await.unwrap();
    Some(StoreUnderTest {
        name: "postgres",
        store: Arc::new(store),
        _dir: None,
        postgres: Some((url, schema)),
    })
}
