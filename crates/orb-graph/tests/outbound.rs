//! Answer-size caps on every Graph request ORB makes: Graph calls (`ClientOptions::max_response_bytes`)
//! against the emulator, and the JWKS fetch (`JwksCacheOptions::max_response_bytes`, 1 MiB by default)
//! against a tiny local server serving an oversized key set.

mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use orb_core::FixedClock;
use orb_graph::{ClientOptions, Credential, GraphError, JwksCache, JwksCacheOptions};
use secrecy::SecretString;
use support::{World, at, corr};

#[tokio::test]
async fn a_graph_answer_over_the_cap_is_a_permanent_error_naming_the_cap() {
    let world = World::start().await;
    let secret = || Credential::Secret(SecretString::from(support::SECRET));
    // The room list is a few hundred bytes: under a 100-byte cap it is refused, not retried.
    let small = ClientOptions { max_response_bytes: 100, max_attempts: 3, ..ClientOptions::default() };
    let err = world.client_with(secret(), small).list_rooms(corr()).await.unwrap_err();
    assert!(matches!(err, GraphError::Permanent { .. }), "{err:?}");
    assert!(!err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("larger than the cap of 100 bytes (ClientOptions::max_response_bytes)"), "{text}");
    // The default cap (16 MiB) reads it.
    assert_eq!(
        world.client_with(secret(), ClientOptions::default()).list_rooms(corr()).await.unwrap().len(),
        2
    );
}

async fn serve_keys(body: String) -> url::Url {
    let app = Router::new().route("/keys", get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url::Url::parse(&format!("http://127.0.0.1:{port}/keys")).unwrap()
}

#[tokio::test]
async fn a_jwks_over_one_mib_is_refused_and_a_small_one_is_read() {
    let clock = Arc::new(FixedClock::new(at("2026-09-01T06:00:00Z")));
    let padding = "x".repeat(1024 * 1024);
    let huge = serve_keys(format!(r#"{{"keys":[],"padding":"{padding}"}}"#)).await;
    let cache = JwksCache::new(reqwest::Client::new(), huge, clock.clone(), JwksCacheOptions::default());
    let err = cache.current().await.unwrap_err();
    assert!(err.to_string().contains("larger than the cap of 1048576 bytes"), "{err}");
    let small = serve_keys(r#"{"keys":[]}"#.to_owned()).await;
    let cache = JwksCache::new(reqwest::Client::new(), small, clock, JwksCacheOptions::default());
    assert!(cache.current().await.unwrap().keys.is_empty());
}
