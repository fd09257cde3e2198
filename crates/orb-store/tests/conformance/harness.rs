//! Opens a fresh, isolated store per test: a temporary SQLite file, or a new schema in the PostgreSQL
//! database named by `ORB_TEST_POSTGRES_URL` (the shared helpers of `orb_testkit::stores`).

pub use orb_testkit::stores::TestStore as Harness;

pub async fn sqlite() -> Harness {
    Harness::sqlite().await
}

/// `None` when no PostgreSQL is configured for tests (allowed only outside CI).
pub async fn postgres() -> Option<Harness> {
    Harness::postgres().await
}
