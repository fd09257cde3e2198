//! Shared by the engine's end-to-end tests: bounded polling and the stores under test (SQLite in a tempdir;
//! PostgreSQL in a fresh schema when `ORB_TEST_POSTGRES_URL` is set, required when `CI` is set).

#![allow(dead_code)]

pub mod ews_world;
pub mod sweeps;
pub mod world;

use std::future::Future;
use std::time::Duration as StdDuration;

use orb_core::EmailAddress;
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

/// The stores under test (SQLite in a tempdir; PostgreSQL in a fresh schema when `ORB_TEST_POSTGRES_URL`
/// is set, required when `CI` is set): one implementation for every crate's tests, in orb-testkit.
pub use orb_testkit::stores::TestStore;
