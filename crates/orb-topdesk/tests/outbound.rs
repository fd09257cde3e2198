//! What the TOPdesk client refuses on the way out, against tiny local servers: it never follows a
//! redirect (a 3xx is a permanent error naming the URL), it stops reading an answer past its size cap
//! (declared or streamed), and under an address policy it does not connect to a name that resolves to a
//! refused address.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use orb_core::FixedClock;
use orb_topdesk::{AddressPolicy, RetryPolicy, TopdeskClient, TopdeskConfig, TopdeskError};
use secrecy::SecretString;
use url::Url;

/// Serves `answer` for every request on 127.0.0.1; returns the base URL and the request counter.
async fn serve(answer: fn() -> Response) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { answer() }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}"), hits)
}

fn client(base: &str, tune: impl FnOnce(&mut TopdeskConfig)) -> TopdeskClient {
    let clock = FixedClock::new(chrono::Utc::now());
    let mut config =
        TopdeskConfig::new(Url::parse(base).unwrap(), "orb-api", SecretString::from("pw"), Arc::new(clock));
    config.retry = RetryPolicy {
        max_retries: 2,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_retry_after: Duration::from_millis(2),
    };
    tune(&mut config);
    TopdeskClient::new(config).unwrap()
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_a_permanent_error_naming_the_url() {
    let (base, hits) = serve(|| {
        (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "http://169.254.169.254/latest/meta-data")])
            .into_response()
    })
    .await;
    let err = client(&base, |_| {}).version().await.unwrap_err();
    assert!(matches!(err, TopdeskError::Permanent { .. }), "{err:?}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains(&format!("{base}/tas/api/version answered HTTP 301")), "{text}");
    assert!(text.contains("169.254.169.254") && text.contains("does not follow redirects"), "{text}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "asked once, not retried, not followed");
}

#[tokio::test]
async fn an_answer_over_the_cap_is_a_permanent_error_naming_the_cap() {
    // Declared by Content-Length.
    let (base, _) = serve(|| (StatusCode::OK, "x".repeat(2048)).into_response()).await;
    let err = client(&base, |c| c.max_response_bytes = 1024).version().await.unwrap_err();
    assert!(matches!(err, TopdeskError::Permanent { .. }), "{err:?}");
    assert!(err.to_string().contains("larger than the cap of 1024 bytes"), "{err}");
    // Streamed without a length: reading stops past the cap.
    let (base, _) = serve(|| {
        let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512]));
        Response::new(Body::from_stream(futures::stream::iter(chunks)))
    })
    .await;
    let err = client(&base, |c| c.max_response_bytes = 4096).version().await.unwrap_err();
    assert!(err.to_string().contains("larger than the cap of 4096 bytes"), "{err}");
    // At the cap is fine.
    let (base, _) = serve(|| (StatusCode::OK, r#"{"version":"3.0.0"}"#).into_response()).await;
    assert_eq!(client(&base, |c| c.max_response_bytes = 19).version().await.unwrap().version, "3.0.0");
}

#[tokio::test]
async fn under_a_policy_a_name_resolving_to_a_refused_address_is_not_connected_to() {
    let (base, hits) = serve(|| (StatusCode::OK, r#"{"version":"3.0.0"}"#).into_response()).await;
    let by_name = base.replace("127.0.0.1", "localhost");
    let strict_but_http = AddressPolicy::new(Vec::new(), true);
    let err = client(&by_name, |c| c.address_policy = Some(strict_but_http)).version().await.unwrap_err();
    assert!(format!("{err:?}").contains("addresses ORB does not call"), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request reached the server");
    // With the loopback range allowed, the same name is fine.
    let allowed = AddressPolicy::new(AddressPolicy::parse_cidrs("127.0.0.0/8,::1").unwrap(), true);
    let version = client(&by_name, |c| c.address_policy = Some(allowed)).version().await.unwrap();
    assert_eq!(version.version, "3.0.0");
}

#[tokio::test]
async fn the_save_time_probe_refuses_a_redirect_and_no_answer_and_accepts_a_login_prompt() {
    let emulators = AddressPolicy::new(AddressPolicy::parse_cidrs("127.0.0.0/8").unwrap(), true);
    let probe = |base: String| {
        let policy = emulators.clone();
        async move { policy.probe(&Url::parse(&base).unwrap(), &[], Duration::from_secs(5)).await }
    };
    let (moved, hits) =
        serve(|| (StatusCode::FOUND, [(header::LOCATION, "https://elsewhere.example/")]).into_response())
            .await;
    let err = probe(moved.clone()).await.unwrap_err().to_string();
    assert!(err.contains(&format!("{moved}/tas/api/version answered HTTP 302")), "{err}");
    assert!(err.contains("topdesk.url") && err.contains("elsewhere.example"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let (login, _) = serve(|| StatusCode::UNAUTHORIZED.into_response()).await;
    probe(login).await.unwrap();
    // Nothing listens on port 9 of 127.0.0.1 (discard is not served here).
    let err = probe("http://127.0.0.1:9".to_owned()).await.unwrap_err().to_string();
    assert!(err.contains("cannot reach http://127.0.0.1:9/tas/api/version"), "{err}");
}
