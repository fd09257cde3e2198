//! The Graph emulator's subscription rules (refusals), app scoping and the 5xx knob, over raw HTTP.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orb_core::FixedClock;
use orb_emulators::graph::{GraphEmulator, Knobs, RoomInfo, serve};
use serde_json::{Value, json};

const TENANT: &str = "7d2a5c1e-0b9f-4c1a-9f77-3e1f2a4b5c6d";

async fn echo(uri: axum::http::Uri) -> String {
    orb_graph::notifications::validation_token(uri.query()).unwrap_or_default()
}

async fn token(http: &reqwest::Client, base: &str, client_id: &str) -> String {
    let form = [
        ("client_id", client_id),
        ("client_secret", "s"),
        ("grant_type", "client_credentials"),
        ("scope", "https://graph.microsoft.com/.default"),
    ];
    let resp: Value = http
        .post(format!("{base}/{TENANT}/oauth2/v2.0/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    format!("Bearer {}", resp["access_token"].as_str().unwrap())
}

#[tokio::test]
async fn subscription_requests_follow_graphs_rules() {
    let now = DateTime::parse_from_rfc3339("2026-09-01T06:00:00Z").unwrap().with_timezone(&Utc);
    let em = GraphEmulator::new(Arc::new(FixedClock::new(now)));
    em.add_app_secret(TENANT, "app-1", "s");
    em.add_app_secret(TENANT, "app-2", "s");
    em.add_room(TENANT, "room1@contoso.com", "Room 1", RoomInfo::default());
    let served = serve(em.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(echo));
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let base = served.base_url.clone();
    let (one, two) = (token(&http, &base, "app-1").await, token(&http, &base, "app-2").await);

    let valid = json!({"changeType": "created,updated", "notificationUrl": hook, "resource": "users/room1@contoso.com/events",
        "expirationDateTime": "2026-09-03T06:00:00Z", "clientState": "c"});
    let post = |body: Value, bearer: &str| {
        http.post(format!("{base}/v1.0/subscriptions")).header("Authorization", bearer).json(&body).send()
    };
    let with = |changes: Value| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().extend(changes.as_object().unwrap().clone());
        body
    };
    let cases = [
        ("valid", with(json!({})), 201, ""),
        ("unknown change type", with(json!({"changeType": "moved"})), 400, "changeType"),
        (
            "other resource",
            with(json!({"resource": "users/room1@contoso.com/messages"})),
            400,
            "not supported",
        ),
        (
            "unknown mailbox",
            with(json!({"resource": "users/nobody@contoso.com/events"})),
            404,
            "does not exist",
        ),
        ("rich without $select", with(json!({"includeResourceData": true})), 400, "$select"),
        (
            "rich selecting body",
            with(
                json!({"includeResourceData": true, "resource": "users/room1@contoso.com/events?$select=subject,body"}),
            ),
            400,
            "Body",
        ),
        (
            "rich without certificate",
            with(
                json!({"includeResourceData": true, "resource": "users/room1@contoso.com/events?$select=subject"}),
            ),
            400,
            "encryptionCertificate",
        ),
        ("long clientState", with(json!({"clientState": "x".repeat(129)})), 400, "128"),
        ("beyond 7 days", with(json!({"expirationDateTime": "2026-09-08T06:01:00Z"})), 400, "10080 minutes"),
        ("no expiry", with(json!({"expirationDateTime": null})), 400, "expirationDateTime"),
    ];
    let mut created = None;
    for (name, body, status, says) in cases {
        let resp = post(body, &one).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let answer: Value = resp.json().await.unwrap();
        if status == 201 {
            assert_eq!(answer["clientState"], "c", "the create response echoes clientState");
            created = answer["id"].as_str().map(str::to_owned);
        } else {
            assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{name}: {answer}");
        }
    }
    let id = created.unwrap();

    // Another app of the tenant neither sees nor changes it.
    let other = http
        .get(format!("{base}/v1.0/subscriptions/{id}"))
        .header("Authorization", &two)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
    let mine =
        http.get(format!("{base}/v1.0/subscriptions")).header("Authorization", &two).send().await.unwrap();
    assert_eq!(mine.json::<Value>().await.unwrap()["value"], json!([]));
    // The lifecycle URL can only be set at creation.
    let patch = http
        .patch(format!("{base}/v1.0/subscriptions/{id}"))
        .header("Authorization", &one)
        .json(&json!({"lifecycleNotificationUrl": hook}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status().as_u16(), 400);

    // The 5xx knob: every 2nd Graph request fails.
    em.set_knobs(Knobs { error_every: 2, ..Knobs::default() });
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let resp = http
            .get(format!("{base}/v1.0/subscriptions"))
            .header("Authorization", &one)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 2, "{statuses:?}");
    receiver.abort();
}
