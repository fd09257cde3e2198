//! The client's transport limits against a local misbehaving server: request timeout, no redirects,
//! the response-size cap, HTML pages where SOAP was expected.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use chrono::{TimeZone, Utc};
use orb_core::{CorrelationId, EmailAddress};
use orb_ews::model::Window;
use orb_ews::{Auth, EwsClient, EwsConfig, EwsError, Target};
use secrecy::SecretString;

async fn server() -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/redirect",
            post(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ews/genericerrorpage.htm")], "") }),
        )
        .route(
            "/big",
            post(|| async { ([(header::CONTENT_TYPE, "text/xml")], "x".repeat(10_000)).into_response() }),
        )
        .route(
            "/html",
            post(|| async {
                ([(header::CONTENT_TYPE, "text/html")], "<html><body>Server Error</body></html>")
            }),
        )
        .route(
            "/html500",
            post(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html>Runtime Error</html>",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, task)
}

fn client(url: String, cap: usize, ntlm: bool) -> EwsClient {
    let auth = if ntlm {
        Auth::Ntlm { domain: None, username: "CONTOSO\\svc".into(), password: SecretString::from("pw") }
    } else {
        Auth::Basic { username: "svc".into(), password: SecretString::from("pw") }
    };
    EwsClient::new(EwsConfig {
        allow_plain_http: true,
        request_timeout: Duration::from_millis(300),
        max_response_bytes: cap,
        ..EwsConfig::new(url.parse().unwrap(), auth)
    })
    .unwrap()
}

/// The same failures over both transports (reqwest for Basic, the NTLM connections): a server that
/// answers the first leg with something other than a `401` is classified like any answer.
#[tokio::test]
async fn transport_failures_are_classified() {
    for ntlm in [false, true] {
        transport_failures_are_classified_over(ntlm).await;
    }
}

async fn transport_failures_are_classified_over(ntlm: bool) {
    let (base, _task) = server().await;
    let room = EmailAddress::parse("room@contoso.com").unwrap();
    let start = Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap();
    let target = Target { mailbox: &room, correlation: CorrelationId::generate(start) };
    let window = Window { start, end: start + chrono::Duration::days(1) };
    let call = |path: &str, cap: usize| {
        let c = client(format!("{base}{path}"), cap, ntlm);
        async move { c.calendar_view(target, window).await.unwrap_err() }
    };
    let slow = call("/slow", 1 << 20).await;
    assert!(matches!(&slow, EwsError::Transient { what, .. } if what == "timed out"), "{slow:?}");
    let redirect = call("/redirect", 1 << 20).await;
    assert!(matches!(redirect, EwsError::Transient { status: Some(302), .. }), "{redirect:?}");
    assert_eq!(call("/big", 1000).await, EwsError::TooLarge { limit: 1000 });
    assert!(matches!(call("/html", 1 << 20).await, EwsError::Protocol { .. }));
    let html500 = call("/html500", 1 << 20).await;
    assert!(html500.is_retryable(), "{html500:?}");
}
